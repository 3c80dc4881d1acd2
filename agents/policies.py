"""A node-scoring policy for MaskablePPO: one shared network scores every node.

A plain ``MultiInputPolicy`` flattens the ``(max_nodes, features)`` node table into one vector,
so it must learn the same rule separately for every node index. Here a shared MLP embeds each
node row together with the task features (:class:`NodeSetExtractor`), and the action logits are
a shared linear score of each node's embedding plus a pooled summary (:class:`NodeScoreHead`):
the policy is permutation-equivariant over nodes and works for any cluster up to ``max_nodes``.
The value function reads the same embeddings through an ordinary MLP.

Use it with ``MaskablePPO(NodeScoringPolicy, env)`` or ``policy: node_scoring`` in
``conf/agent/maskable_ppo.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["NodeScoreHead", "NodeScoringPolicy", "NodeSetExtractor"]


class NodeSetExtractor(BaseFeaturesExtractor):
    """Embeds every node row with the task features by one shared MLP.

    Output: the per-node embeddings flattened (``max_nodes * embed_dim``) followed by their mean
    over valid nodes (``embed_dim``).

    Args:
        observation_space: The env's ``Dict`` space with ``"task"`` and ``"nodes"``.
        embed_dim: Size of a node embedding.
        hidden: Hidden layer size of the shared MLP.
    """

    def __init__(self, observation_space: spaces.Dict, embed_dim: int = 32, hidden: int = 64):
        n_nodes, f_node = observation_space["nodes"].shape  # type: ignore[misc]
        (f_task,) = observation_space["task"].shape  # type: ignore[misc]
        super().__init__(observation_space, features_dim=n_nodes * embed_dim + embed_dim)
        self.n_nodes = int(n_nodes)
        self.embed_dim = embed_dim
        self.node_mlp = nn.Sequential(
            nn.Linear(f_node + f_task, hidden),
            nn.ReLU(),
            nn.Linear(hidden, embed_dim),
            nn.ReLU(),
        )

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(batch, features_dim)`` embeddings."""
        nodes = observations["nodes"]
        task = observations["task"].unsqueeze(1).expand(-1, nodes.shape[1], -1)
        h = self.node_mlp(torch.cat([nodes, task], dim=-1))
        valid = nodes[..., :1]  # column 0 of the node table is the "valid" flag
        pooled = (h * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)
        return torch.cat([h.flatten(1), pooled], dim=1)


class NodeScoreHead(nn.Module):
    """Action logits: a shared linear score of ``[node embedding, pooled embedding]`` per node."""

    def __init__(self, n_nodes: int, embed_dim: int) -> None:
        super().__init__()
        self.n_nodes = n_nodes
        self.embed_dim = embed_dim
        self.score = nn.Linear(2 * embed_dim, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """``(batch, n_nodes)`` logits from the extractor's features."""
        n, d = self.n_nodes, self.embed_dim
        h = latent[:, : n * d].reshape(-1, n, d)
        pooled = latent[:, n * d :].unsqueeze(1).expand(-1, n, -1)
        return self.score(torch.cat([h, pooled], dim=-1)).squeeze(-1)


class NodeScoringPolicy(MaskableMultiInputActorCriticPolicy):
    """MaskablePPO policy with a permutation-equivariant action head over nodes.

    Keyword arguments are those of ``MaskableMultiInputActorCriticPolicy``; ``net_arch`` only
    shapes the value network (the policy head reads the node embeddings directly).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        vf = kwargs.pop("net_arch", None)
        if isinstance(vf, dict):
            vf = vf.get("vf", [64, 64])
        kwargs["net_arch"] = {"pi": [], "vf": list(vf) if vf is not None else [64, 64]}
        kwargs.setdefault("features_extractor_class", NodeSetExtractor)
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        ext = self.features_extractor
        assert isinstance(ext, NodeSetExtractor)
        self.action_net = NodeScoreHead(ext.n_nodes, ext.embed_dim)
        if self.ortho_init:
            self.action_net.apply(lambda m: self.init_weights(m, gain=0.01))
        # The optimizer must see the new head's parameters.
        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
