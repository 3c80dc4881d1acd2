"""The scheduling policy for MaskablePPO: every node scored by one shared network.

A plain ``MultiInputPolicy`` flattens the ``(max_nodes, features)`` node table into one vector,
so it must learn the same rule separately for every node index and cannot be used on another
cluster size. Here:

* :class:`SchedExtractor` (an SB3 ``BaseFeaturesExtractor``) embeds each node row (the basic node
  features, plus the lookahead features when the observation has them) together with a global
  vector: the task features, the instance context and, when the observation has the graph part,
  a :class:`WindowGNN` embedding of the current task's neighbourhood in the DAG.
* :class:`NodeHeads` (the policy's ``mlp_extractor``, built through SB3's
  ``_build_mlp_extractor`` hook) turns the node embeddings into one logit per node with a shared
  scorer, and pools them over valid nodes (mean and max) for the value function.
* Optionally (``features_extractor_kwargs={"prior": "lookahead_gap"}``, the default in
  ``conf/agent/maskable_ppo.yaml``) a heuristic's criterion
  is a prior on the logits: each node's logit is the scorer's output minus ``w`` times that
  lookahead column, with ``w`` learned (initially ``prior_weight``). The network then learns
  corrections to a rule that holds on every workflow (the lowest ``lookahead_gap`` is HEFT
  with lookahead's choice) rather than the rule itself, which it may not recover on a family it
  never saw.
* With the plan hints in the observation (``env.plan_hints=true``) the prior is gated between
  two rules: ``lookahead_gap`` and ``plan_gap`` (0 on the node the single_node plan uses),
  weighted by ``g = sigmoid(k (plan_share - 1/2))`` with ``k`` learned (initially
  :data:`GATE_SHARPNESS`): where the one-node plan is shorter than HEFT with lookahead's, the
  untrained policy follows it, elsewhere HEFT with lookahead. That is the portfolio of the two
  rules (:class:`agents.imitation.PortfolioExpert` with its default candidates); the network
  learns where to depart from it. With ``env.plan_hint_candidates`` the other rule is the
  shortest of several plans (:func:`wass_env.envs.hints.plan_portfolio`, the ``plan_portfolio``
  scheduler); where none is shorter than HEFT with lookahead's, ``plan_gap`` marks that plan's
  own node (``plan_share`` 1/2, the gate half open), which breaks the ties of
  ``lookahead_gap`` the way HEFT with lookahead did.

The policy is permutation-equivariant over nodes, its value is size-agnostic, and one network
works on any cluster up to ``max_nodes`` and any DAG size. Use it with
``MaskablePPO(NodeScoringPolicy, env)`` or ``policy: node_scoring`` in
``conf/agent/maskable_ppo.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from wass_env.envs.lookahead import LOOKAHEAD_FEATURES, lookahead_column
from wass_env.envs.wass_sched import (
    CONTEXT_FEATURES,
    PLAN_HINT_FEATURES,
    PLAN_HINT_NODE_FEATURES,
)

__all__ = ["GATE_SHARPNESS", "NodeHeads", "NodeScoringPolicy", "SchedExtractor", "WindowGNN"]

#: Initial sharpness of the gated prior, in effect a step: the gate is above 0.99 wherever the
#: other plan is more than 2e-5 (relative) shorter than HEFT with lookahead's (``plan_share``
#: above 0.5 + 5e-6), so the untrained policy follows that plan exactly, and 1/2 at a tie,
#: where the two rules agree on the plan's path. (At 200, the value before, a plan 1% shorter
#: opened the gate only to 0.6, and the mixed prior followed neither plan.)
GATE_SHARPNESS = 1e6
_SHARE_COL = len(CONTEXT_FEATURES) + PLAN_HINT_FEATURES.index("plan_share")
_PLAN_COL = len(LOOKAHEAD_FEATURES) + PLAN_HINT_NODE_FEATURES.index("plan_gap")


def _mlp(sizes: list[int], *, last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if last_act or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class WindowGNN(nn.Module):
    """Message passing over the padded DAG window of the observation (plain torch).

    Each round, every task adds the mean of its parents' and of its children's messages (two
    separate linear maps, so direction matters; edges carry their transfer time) to a linear map
    of itself. The output is the current task's embedding (row 0) and the mean over the window.

    Args:
        task_features: Columns of ``graph_tasks``.
        dim: Embedding size.
        rounds: Message-passing rounds (2 reaches the children's other parents).
    """

    def __init__(self, task_features: int, dim: int = 32, rounds: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.inp = nn.Linear(task_features, dim)
        self.self_lin = nn.ModuleList(nn.Linear(dim, dim) for _ in range(rounds))
        self.down = nn.ModuleList(nn.Linear(dim + 1, dim) for _ in range(rounds))
        self.up = nn.ModuleList(nn.Linear(dim + 1, dim) for _ in range(rounds))

    @property
    def out_dim(self) -> int:
        """Size of the output."""
        return 2 * self.dim

    def forward(self, tasks: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """``(batch, 2 * dim)`` from ``(batch, W, F)`` task rows and ``(batch, E, 4)`` edges."""
        b, w, _ = tasks.shape
        valid_t = tasks[..., :1]
        x = torch.relu(self.inp(tasks)) * valid_t
        offset = (torch.arange(b, device=tasks.device) * w).unsqueeze(1)
        src = (edges[..., 0].long() + offset).reshape(-1)
        dst = (edges[..., 1].long() + offset).reshape(-1)
        ev = edges[..., 2].reshape(-1, 1)
        comm = edges[..., 3].reshape(-1, 1)
        ones = torch.ones_like(ev)
        deg_in = torch.zeros(b * w, 1, device=tasks.device).index_add_(0, dst, ev * ones)
        deg_out = torch.zeros(b * w, 1, device=tasks.device).index_add_(0, src, ev * ones)
        deg_in = deg_in.clamp(min=1.0)
        deg_out = deg_out.clamp(min=1.0)
        for self_lin, down, up in zip(self.self_lin, self.down, self.up, strict=True):
            flat = x.reshape(b * w, self.dim)
            to_child = down(torch.cat([flat[src], comm], dim=1)) * ev
            to_parent = up(torch.cat([flat[dst], comm], dim=1)) * ev
            agg = torch.zeros_like(flat).index_add_(0, dst, to_child) / deg_in
            agg = agg + torch.zeros_like(flat).index_add_(0, src, to_parent) / deg_out
            x = torch.relu(self_lin(flat) + agg).reshape(b, w, self.dim) * valid_t
        pooled = x.sum(dim=1) / valid_t.sum(dim=1).clamp(min=1.0)
        return torch.cat([x[:, 0], pooled], dim=1)


class SchedExtractor(BaseFeaturesExtractor):
    """Embeds every node row together with the global (task, context, graph) vector.

    Output: the per-node embeddings flattened (``max_nodes * embed_dim``), then the ``valid``
    flag of every node (``max_nodes``), so the heads can pool over real nodes only, then (with
    a ``prior``) that lookahead column of every node (``max_nodes``), then (with a prior and
    the plan hints observed: the gated prior) the ``plan_gap`` column (``max_nodes``) and
    the ``plan_share`` (1).

    Args:
        observation_space: The env's ``Dict`` space (``task`` and ``nodes``; optionally
            ``lookahead``, ``context``, ``graph_tasks`` and ``graph_edges``).
        embed_dim: Size of a node embedding.
        hidden: Hidden layer size of the shared node MLP.
        gnn_dim: Embedding size of the graph network (when the observation has a graph part).
        gnn_rounds: Message-passing rounds.
        prior: A column of :data:`~wass_env.envs.lookahead.LOOKAHEAD_FEATURES` (lower is
            better) passed to the heads as a prior on the logits, or None. Without lookahead
            features in the observation there is no prior.
        prior_weight: Initial weight of the prior (logits per unit of the column).

    Raises:
        ValueError: on an unknown ``prior``.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        embed_dim: int = 64,
        hidden: int = 128,
        gnn_dim: int = 32,
        gnn_rounds: int = 2,
        prior: str | None = None,
        prior_weight: float = 20.0,
    ) -> None:
        sp = observation_space.spaces
        n_nodes, f_node = sp["nodes"].shape  # type: ignore[misc]
        try:
            self._prior_col = lookahead_column(prior) if prior is not None else -1
        except ValueError as exc:
            raise ValueError(f"features_extractor_kwargs.prior: {exc}") from None
        if "lookahead" not in sp:
            prior = None  # the column it reads is not observed: no prior
        # The plan hints (env plan_hints=true) extend the lookahead table and the context.
        self.gated = (
            prior is not None
            and sp["lookahead"].shape[1] > _PLAN_COL  # type: ignore[index]
            and "context" in sp
            and sp["context"].shape[0] > _SHARE_COL  # type: ignore[index]
        )
        width = n_nodes * (embed_dim + 1) + (n_nodes if prior is not None else 0)
        width += n_nodes + 1 if self.gated else 0
        super().__init__(observation_space, features_dim=width)
        self.prior = prior
        self.prior_weight = float(prior_weight)
        self.n_nodes = int(n_nodes)
        self.embed_dim = embed_dim
        self.has_lookahead = "lookahead" in sp
        self.has_context = "context" in sp
        self.has_graph = "graph_tasks" in sp
        node_in = f_node + (sp["lookahead"].shape[1] if self.has_lookahead else 0)  # type: ignore[index]
        glob_in = sp["task"].shape[0] + (sp["context"].shape[0] if self.has_context else 0)  # type: ignore[index]
        self.gnn: WindowGNN | None = None
        if self.has_graph:
            self.gnn = WindowGNN(sp["graph_tasks"].shape[1], gnn_dim, gnn_rounds)  # type: ignore[index]
            glob_in += self.gnn.out_dim
        self.node_mlp = _mlp([node_in + glob_in, hidden, hidden, embed_dim])

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, features_dim)``."""
        nodes = observations["nodes"]
        if self.has_lookahead:
            nodes = torch.cat([nodes, observations["lookahead"]], dim=-1)
        glob = [observations["task"]]
        if self.has_context:
            glob.append(observations["context"])
        if self.gnn is not None:
            glob.append(self.gnn(observations["graph_tasks"], observations["graph_edges"]))
        g = torch.cat(glob, dim=-1).unsqueeze(1).expand(-1, nodes.shape[1], -1)
        h = self.node_mlp(torch.cat([nodes, g], dim=-1))
        valid = nodes[..., 0]  # column 0 of the node table is the "valid" flag
        out = [h.flatten(1), valid]
        if self.prior is not None:
            out.append(observations["lookahead"][..., self._prior_col])
        if self.gated:
            out.append(observations["lookahead"][..., _PLAN_COL])
            out.append(observations["context"][..., _SHARE_COL : _SHARE_COL + 1])
        return torch.cat(out, dim=1)


class NodeHeads(nn.Module):
    """The policy's ``mlp_extractor``: per-node logits and a pooled value latent.

    ``forward_actor`` returns one score per node (a shared MLP on ``[node embedding, mean and
    max over valid nodes]``); the policy's ``action_net`` is the identity, so these are the
    logits. ``forward_critic`` returns an MLP of the pooled embeddings (``latent_dim_vf``).
    With ``prior_weight`` set, the features end with a prior column per node and the logits are
    the scores minus a learned weight (initially ``prior_weight``) times it. With ``gated`` too,
    they end with a second prior column and the gate's input, and the prior is
    ``(1 - g) * first + g * second`` with ``g = sigmoid(k (share - 1/2))``, ``k`` learned
    (initially :data:`GATE_SHARPNESS`). The logits are divided by ``temperature``: the greedy
    action is the same for any temperature, the sampled one is more random above 1.
    """

    def __init__(
        self,
        n_nodes: int,
        embed_dim: int,
        vf_arch: list[int],
        prior_weight: float | None = None,
        gated: bool = False,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.n_nodes = n_nodes
        self.embed_dim = embed_dim
        self.prior_w: nn.Parameter | None = None
        self.gate_k: nn.Parameter | None = None
        if prior_weight is not None:
            self.prior_w = nn.Parameter(torch.tensor(float(prior_weight)))
            if gated:
                self.gate_k = nn.Parameter(torch.tensor(GATE_SHARPNESS))
        self.score = _mlp([3 * embed_dim, embed_dim, 1], last_act=False)
        self.value = _mlp([2 * embed_dim, *vf_arch])
        self.latent_dim_pi = n_nodes
        self.latent_dim_vf = vf_arch[-1] if vf_arch else 2 * embed_dim

    def _split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, d = self.n_nodes, self.embed_dim
        h = features[:, : n * d].reshape(-1, n, d)
        valid = features[:, n * d : n * (d + 1)].unsqueeze(-1)
        mean = (h * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)
        mx = torch.where(valid > 0, h, torch.full_like(h, -1e4)).max(dim=1).values
        return h, mean, mx

    def actor_parts(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The learned scores and the prior term, ``(batch, n_nodes)`` each (None: no prior).

        The logits are the scores minus the prior term; behaviour cloning can penalise the
        scores alone (``agents.imitation.bc_train``'s ``residual_coef``).
        """
        h, mean, mx = self._split(features)
        pooled = torch.cat([mean, mx], dim=1).unsqueeze(1).expand(-1, h.shape[1], -1)
        scores = self.score(torch.cat([h, pooled], dim=-1)).squeeze(-1)
        if self.prior_w is None:
            return scores, None
        n, d = self.n_nodes, self.embed_dim
        prior = features[:, n * (d + 1) : n * (d + 2)]
        if self.gate_k is not None:
            second = features[:, n * (d + 2) : n * (d + 3)]
            g = torch.sigmoid(self.gate_k * (features[:, n * (d + 3) :] - 0.5))
            prior = (1.0 - g) * prior + g * second
        return scores, self.prior_w * prior

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, n_nodes)`` node logits: (scores - prior term) / temperature."""
        scores, prior = self.actor_parts(features)
        logits = scores if prior is None else scores - prior
        return logits if self.temperature == 1.0 else logits / self.temperature

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, latent_dim_vf)`` value latent."""
        _, mean, mx = self._split(features)
        return self.value(torch.cat([mean, mx], dim=1))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both latents (SB3's ``mlp_extractor`` interface)."""
        return self.forward_actor(features), self.forward_critic(features)


class NodeScoringPolicy(MaskableMultiInputActorCriticPolicy):
    """MaskablePPO policy with a shared per-node scorer (see the module docstring).

    Keyword arguments are those of ``MaskableMultiInputActorCriticPolicy``; ``net_arch`` shapes
    the value head only (a list, or ``{"vf": [...]}``); ``features_extractor_kwargs`` go to
    :class:`SchedExtractor`; ``temperature`` (default 1) divides the logits
    (:class:`NodeHeads`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._initial_temperature = float(kwargs.pop("temperature", 1.0))  # for the heads
        vf = kwargs.pop("net_arch", None)
        if isinstance(vf, dict):
            vf = vf.get("vf", [64, 64])
        self._vf_arch = list(vf) if vf is not None else [64, 64]
        kwargs["net_arch"] = {"pi": [], "vf": self._vf_arch}
        kwargs.setdefault("features_extractor_class", SchedExtractor)
        super().__init__(*args, **kwargs)
        # The per-node scores are the logits: no linear map over node indices on top (that
        # would tie the policy to one cluster size). The optimizer must not hold the unused
        # default layer.
        self.action_net = nn.Identity()
        lr_schedule = args[2] if len(args) > 2 else kwargs["lr_schedule"]
        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    @property
    def temperature(self) -> float:
        """The logits' divisor (:class:`NodeHeads`); set it to change how the policy samples."""
        heads = self.mlp_extractor
        assert isinstance(heads, NodeHeads)
        return heads.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"temperature: must be > 0, got {value!r}")
        heads = self.mlp_extractor
        assert isinstance(heads, NodeHeads)
        heads.temperature = float(value)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["temperature"] = self.temperature
        return data

    def _build_mlp_extractor(self) -> None:
        """SB3's hook for a custom ``mlp_extractor``: the node heads."""
        ext = self.features_extractor
        assert isinstance(ext, SchedExtractor)
        self.mlp_extractor = NodeHeads(  # type: ignore[assignment]
            ext.n_nodes,
            ext.embed_dim,
            self._vf_arch,
            prior_weight=ext.prior_weight if ext.prior is not None else None,
            gated=ext.gated,
            temperature=self._initial_temperature,
        )
