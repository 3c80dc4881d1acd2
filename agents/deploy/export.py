"""Export a trained MaskablePPO policy to ONNX: one decision in microseconds, without torch.

:func:`export_policy` (``wass export CKPT -o policy.onnx``) traces the policy's own forward pass
from observations to action logits (Stable-Baselines3's ``get_distribution`` path:
``extract_features`` with the actor's features extractor, ``mlp_extractor.forward_actor``,
``action_net``), whatever modules make it up, and adds sb3-contrib's masking and the decision
inside the graph: infeasible nodes get :data:`MASKED_LOGIT` (as ``MaskableCategorical`` does),
``probs`` is their softmax and ``action`` the argmax. The graph interface and the metadata that
travels with it are described in :mod:`agents.deploy.onnx_policy`, which runs it. The batch axis
is dynamic.

Exporter: torch's TorchScript-based exporter (``dynamo=False``). Its ``torch.export``-based
successor also translates the graph network's ``index_add_`` correctly, but takes 15-30 s per
policy on a 2-core machine against about 1 s. The TorchScript exporter's own rule for
``index_add`` is wrong for repeated indices (it emits ``ScatterElements`` without a reduction,
so a task with several parents would receive one message), so :func:`export_policy` replaces it,
for the duration of the export, with ``ScatterElements(reduction="add")`` (opset >= 16), the
same sums as torch's.

Nothing is written unless the exported graph, run by onnxruntime, chooses the torch policy's
node on every one of ``verify`` sampled states (:func:`sample_states`), up to ties under float
rounding (:func:`compare_decisions`), and its probabilities agree within
:data:`PROB_TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from agents.deploy.onnx_policy import (
    META_ENV_KWARGS,
    META_FORMAT,
    META_INPUTS,
    META_MAX_NODES,
    OBSERVATION_KWARGS,
    ONNX_FORMAT,
    OUTPUTS,
    is_onnx,
)
from agents.ppo import MaskablePPOAgent
from wass_env.envs.wass_sched import WassSchedEnv
from wass_env.errors import WassError
from wass_env.io import atomic_write

__all__ = [
    "DEFAULT_OPSET",
    "FAMILIES",
    "INPUT_ORDER",
    "MASKED_LOGIT",
    "PROB_TOLERANCE",
    "Agreement",
    "ExportError",
    "ExportReport",
    "compare_decisions",
    "export_policy",
    "input_names",
    "sample_states",
    "torch_decisions",
]

#: The logit sb3-contrib's ``MaskableCategorical.apply_masking`` gives infeasible actions.
MASKED_LOGIT = -1e8
#: ONNX opset of the export (``ScatterElements`` has ``reduction="add"`` from 16 on).
DEFAULT_OPSET = 17
#: Largest difference of a probability between onnxruntime and torch that the export accepts.
PROB_TOLERANCE = 1e-5
#: Preferred input order (observation keys); other keys of a policy's space follow, in its order.
INPUT_ORDER: tuple[str, ...] = (
    "task",
    "nodes",
    "lookahead",
    "context",
    "graph_tasks",
    "graph_edges",
)
#: Workload families of the verification states (shapes up to 40 tasks, and the genomics DAG).
FAMILIES: tuple[str, ...] = ("layered", "fork_join", "fan_out", "fan_in", "chain", "genomics49")


class ExportError(WassError):
    """A checkpoint that cannot be exported, or an export that does not reproduce the policy."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_policy` wrote and checked.

    Attributes:
        path: The ``.onnx`` file.
        inputs: Graph input names, in order (observation keys, then ``action_mask``).
        max_nodes: The policy's action space size.
        opset: ONNX opset.
        size: File size [bytes].
        states: States on which onnxruntime and torch were compared.
        same_node: On how many of them they chose the same node.
        ties: On how many the other one chose a node the torch policy rates as likely as its
            own up to :data:`PROB_TOLERANCE` (a tie under float rounding; see
            :func:`compare_decisions`). ``same_node + ties == states``, or nothing is written.
        max_prob_diff: Largest difference of a probability between the two.
    """

    path: Path
    inputs: tuple[str, ...]
    max_nodes: int
    opset: int
    size: int
    states: int
    same_node: int
    ties: int
    max_prob_diff: float


@dataclass(frozen=True)
class Agreement:
    """How two runs of a policy's decision agree on a batch of states (:func:`compare_decisions`).

    Attributes:
        states: Number of states.
        same_node: States where both chose the same node.
        ties: States where they chose different nodes that the reference rates as equally likely
            up to the tolerance.
        other_node: States where they chose different nodes, one clearly more likely.
        max_prob_diff: Largest difference of a probability.
    """

    states: int
    same_node: int
    ties: int
    other_node: int
    max_prob_diff: float


def compare_decisions(
    action: NDArray[np.integer[Any]],
    probs: NDArray[np.floating[Any]],
    ref_action: NDArray[np.integer[Any]],
    ref_probs: NDArray[np.floating[Any]],
    *,
    tol: float = PROB_TOLERANCE,
) -> Agreement:
    """Compare decisions (``action``, ``probs``) with reference ones (torch's).

    Two float32 implementations of one network round differently (onnxruntime's GEMM kernels
    sum in another order than torch's): where the reference's best two nodes are within
    rounding of each other, either may come out on top. A different node counts as a tie when
    the reference's probability of it is within ``tol`` of that of its own choice.
    """
    rows = np.arange(len(ref_action))
    differ = action != ref_action
    gap = ref_probs[rows, ref_action] - ref_probs[rows, action]
    ties = int((differ & (gap <= tol)).sum())
    return Agreement(
        states=len(ref_action),
        same_node=int((~differ).sum()),
        ties=ties,
        other_node=int(differ.sum()) - ties,
        max_prob_diff=float(np.abs(probs - ref_probs).max()),
    )


def input_names(observation_space: spaces.Dict) -> list[str]:
    """The graph's inputs for a policy with this observation space: its keys in
    :data:`INPUT_ORDER` (then any others), then ``action_mask``."""
    keys = list(observation_space.spaces)
    ordered = [k for k in INPUT_ORDER if k in keys] + [k for k in keys if k not in INPUT_ORDER]
    return [*ordered, "action_mask"]


class _Decision(nn.Module):
    """The policy's decision as one module: observations and mask to (action, probs)."""

    def __init__(self, policy: BasePolicy, keys: Sequence[str]) -> None:
        super().__init__()
        self.policy = policy
        self.keys = tuple(keys)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs = dict(zip(self.keys, inputs[:-1], strict=True))
        mask = inputs[-1]
        p: Any = self.policy
        # MaskableActorCriticPolicy.get_distribution, up to the logits:
        features = BasePolicy.extract_features(p, obs, p.pi_features_extractor)
        logits = p.action_net(p.mlp_extractor.forward_actor(features))
        masked = torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))
        return torch.argmax(masked, dim=-1), torch.softmax(masked, dim=-1)


def _index_add(g: Any, self: Any, dim: Any, index: Any, source: Any, alpha: Any = None) -> Any:
    """``aten::index_add`` as ``ScatterElements(reduction="add")``: repeated indices sum."""
    from torch.onnx import symbolic_helper as sh

    d = sh._get_const(dim, "i", "dim")
    rank = source.type().dim()
    if rank is None:
        raise ExportError("index_add: the rank of its source is unknown at export")
    d = d + rank if d < 0 else d
    if alpha is not None and not sh._is_none(alpha):
        a = sh._maybe_get_const(alpha, "f")
        if not isinstance(a, (int, float)):
            raise ExportError("index_add: a non-constant alpha cannot be exported")
        if a != 1:
            source = g.op("Mul", source, g.op("Constant", value_t=torch.tensor(float(a))))
    # index (k,) -> shape 1, ..., k (at dim), ..., 1 -> broadcast to source's shape
    shape = [1] * rank
    shape[d] = -1
    idx = g.op("Reshape", index, g.op("Constant", value_t=torch.tensor(shape, dtype=torch.int64)))
    idx = g.op("Expand", idx, g.op("Shape", source))
    return g.op("ScatterElements", self, idx, source, axis_i=d, reduction_s="add")


@contextlib.contextmanager
def _scatter_add_index_add(opset: int) -> Iterator[None]:
    torch.onnx.register_custom_op_symbolic("aten::index_add", _index_add, opset)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::index_add", opset)


def sample_states(
    env_kwargs: dict[str, Any],
    max_nodes: int,
    n: int,
    *,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    cluster_sizes: Sequence[int] | None = None,
    n_tasks: tuple[int, int] = (6, 40),
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.bool_]]:
    """``n`` observations a policy meets, with their masks, from seeded random partial plans.

    Episodes of an environment with the policy's observation settings, on a mix of workload
    families (CCR 0.1-5) and heterogeneous clusters of several sizes up to ``max_nodes``, driven
    by uniformly random feasible actions (so the states are varied, not one policy's).

    Args:
        env_kwargs: The policy's env settings (``task_order``, ``lookahead``, ``graph_window``,
            ``insertion`` are used).
        max_nodes: The policy's action space size.
        n: Number of states.
        seed: Seed of the episodes and the actions.
        families: Workload generators.
        cluster_sizes: Node counts (default 2, a quarter, half and all of ``max_nodes``).
        n_tasks: Task-count range of the shape generators.

    Returns:
        The observations by key, each ``(n, ...)`` float32, and the masks ``(n, max_nodes)``.
    """
    sizes = cluster_sizes or sorted({2, max(2, max_nodes // 4), max(2, max_nodes // 2), max_nodes})
    mix = [
        {"generator": f, "ccr": [0.1, 5.0]}
        if f == "genomics49"
        else {"generator": f, "n_tasks": list(n_tasks), "ccr": [0.1, 5.0]}
        for f in families
    ]
    env = WassSchedEnv(
        workload={"mix": mix},
        cluster=[{"kind": "heterogeneous", "n_nodes": int(k)} for k in sizes],
        max_nodes=max_nodes,
        insertion=bool(env_kwargs.get("insertion", True)),
        **{k: env_kwargs[k] for k in OBSERVATION_KWARGS if k in env_kwargs},
    )
    rng = np.random.default_rng(seed)
    obs_list: list[dict[str, NDArray[np.float32]]] = []
    masks: list[NDArray[np.bool_]] = []
    obs, info = env.reset(seed=seed)
    while len(masks) < n:
        mask = info["action_mask"].astype(bool)
        obs_list.append({k: v.copy() for k, v in obs.items()})
        masks.append(mask)
        obs, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        if done:
            obs, info = env.reset()
    batch = {k: np.stack([o[k] for o in obs_list]) for k in obs_list[0]}
    return batch, np.stack(masks)


def torch_decisions(
    policy: MaskableActorCriticPolicy, obs: dict[str, NDArray[np.float32]], mask: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The torch policy's own choices (its distribution's mode) and masked probabilities for a
    batch of observations, through sb3-contrib's ``get_distribution``, as ``predict`` uses it."""
    obs_t = {k: torch.as_tensor(v) for k, v in obs.items()}
    with torch.no_grad():
        dist = policy.get_distribution(obs_t, action_masks=mask)
        action = dist.mode()
        probs = dist.distribution.probs  # type: ignore[union-attr]
    return action.numpy().astype(np.int64), probs.numpy()


def _onnx_bytes(
    policy: MaskableActorCriticPolicy,
    names: list[str],
    example: tuple[torch.Tensor, ...],
    opset: int,
) -> bytes:
    buf = io.BytesIO()
    axes = {name: {0: "batch"} for name in [*names, *OUTPUTS]}
    with _scatter_add_index_add(opset), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (see the module docstring).
        warnings.filterwarnings(
            "ignore", message="You are using the legacy TorchScript-based ONNX export"
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        torch.onnx.export(
            _Decision(policy, names[:-1]),
            example,
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects too
            dynamo=False,
            input_names=names,
            output_names=list(OUTPUTS),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    return buf.getvalue()


def _with_metadata(raw: bytes, agent: MaskablePPOAgent, names: list[str], source: str) -> bytes:
    import onnx

    model = onnx.load_from_string(raw)
    props = {
        META_FORMAT: ONNX_FORMAT,
        META_ENV_KWARGS: json.dumps(agent.env_kwargs, sort_keys=True, default=str),
        META_MAX_NODES: str(agent.max_nodes),
        META_INPUTS: json.dumps(names),
        "wass.source": source,
    }
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "wass"
    model.doc_string = (
        f"wass policy exported from {source}: inputs {', '.join(names)}; outputs action "
        "(masked argmax) and probs (masked probabilities)"
    )
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_policy(
    checkpoint: str | os.PathLike[str] | MaskablePPOAgent,
    output: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    verify: int = 256,
    seed: int = 0,
) -> ExportReport:
    """Export a policy to ``output`` (an ``.onnx`` file) after checking it against torch.

    Args:
        checkpoint: A ``model.zip`` saved by training (with its ``model.env_kwargs.json``), or a
            loaded agent.
        output: The ``.onnx`` file to write (atomically).
        opset: ONNX opset (>= 16).
        verify: Number of sampled states (:func:`sample_states`) on which onnxruntime must
            choose the torch policy's node and give its probabilities within
            :data:`PROB_TOLERANCE` (at least 1).
        seed: Seed of those states.

    Raises:
        FileNotFoundError, CheckpointError: for a missing or damaged checkpoint.
        ExportError: for an output name without ``.onnx``, an opset below 16, a policy that is
            not a maskable discrete one, or an export that does not reproduce the policy
            (nothing is written then).
    """
    out = Path(output)
    if not is_onnx(out):
        raise ExportError(f"-o: {str(out)!r}: the exported policy's name must end in .onnx")
    if opset < 16:
        raise ExportError(f"--opset: {opset} is below 16 (ScatterElements with reduction)")
    if verify < 1:
        raise ExportError(f"--verify: must be >= 1 state, got {verify}")
    if isinstance(checkpoint, MaskablePPOAgent):
        agent, source = checkpoint, "an in-memory agent"
    else:
        if is_onnx(checkpoint):
            raise ExportError(f"{checkpoint}: is already an ONNX file; give the model.zip")
        agent, source = MaskablePPOAgent.load(checkpoint), Path(checkpoint).name
    if agent.model is None:
        raise ExportError("the agent has no model: train it or load a checkpoint")
    policy = agent.model.policy
    space = policy.observation_space
    if not (
        isinstance(policy, MaskableActorCriticPolicy)
        and isinstance(space, spaces.Dict)
        and isinstance(policy.action_space, spaces.Discrete)
    ):
        raise ExportError(
            f"{source}: expected a maskable actor-critic policy with a Dict observation and a "
            f"Discrete action space, got {type(policy).__name__} with "
            f"{type(space).__name__} and {type(policy.action_space).__name__}"
        )
    policy.set_training_mode(False)
    names = input_names(space)
    obs, mask = sample_states(agent.env_kwargs, agent.max_nodes, max(verify, 2), seed=seed)
    if set(obs) != set(names[:-1]):
        raise ExportError(
            f"{source}: the policy observes {names[:-1]} but its env settings "
            f"({ {k: agent.env_kwargs.get(k) for k in OBSERVATION_KWARGS} }) give {sorted(obs)}"
        )
    example = (*(torch.as_tensor(obs[k][:2]) for k in names[:-1]), torch.as_tensor(mask[:2]))
    data = _with_metadata(_onnx_bytes(policy, names, example, opset), agent, names, source)

    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed: dict[str, Any] = {k: obs[k][:verify] for k in names[:-1]}
    feed["action_mask"] = mask[:verify]
    action, probs = session.run(list(OUTPUTS), feed)
    ref_action, ref_probs = torch_decisions(
        policy, {k: obs[k][:verify] for k in obs}, mask[:verify]
    )
    check = compare_decisions(action, probs, ref_action, ref_probs)
    if check.other_node or check.max_prob_diff > PROB_TOLERANCE:
        raise ExportError(
            f"{source}: the exported graph does not reproduce the policy on {verify} states: "
            f"{check.other_node} other nodes chosen, probabilities within "
            f"{check.max_prob_diff:.3g} (tolerance {PROB_TOLERANCE:g})"
        )
    atomic_write(out, data)
    return ExportReport(
        path=out,
        inputs=tuple(names),
        max_nodes=agent.max_nodes,
        opset=opset,
        size=len(data),
        states=verify,
        same_node=check.same_node,
        ties=check.ties,
        max_prob_diff=check.max_prob_diff,
    )
