"""A policy exported to ONNX (``wass export``) as a scheduler, run by onnxruntime without torch.

``make_scheduler("policy", checkpoint="policy.onnx")`` and ``wass plan --scheduler
policy:policy.onnx`` use :class:`OnnxPolicy`: the observation of each decision is encoded by the
environment's own code (:meth:`WassSchedEnv.observe`, NumPy), and the exported graph returns the
masked argmax. This module imports neither torch nor Stable-Baselines3 (importing them takes
seconds), so a planning command that loads an ``.onnx`` file starts in about the time HEFT does.

The ``.onnx`` file carries what the decision needs besides the network, in the model's
``metadata_props`` (see :mod:`agents.deploy.export`): :data:`META_FORMAT`,
:data:`META_ENV_KWARGS` (the env settings the policy was trained with, the JSON of the
checkpoint's ``model.env_kwargs.json``), :data:`META_MAX_NODES` and :data:`META_INPUTS` (the
observation keys, in input order, then ``action_mask``).

Graph interface: inputs ``task``, ``nodes`` and, when the policy was trained with them,
``lookahead``, ``context``, ``graph_tasks`` and ``graph_edges`` (float32, the observation's shapes
with a leading batch axis of any size), and ``action_mask`` (bool, ``(batch, max_nodes)``);
outputs ``action`` (int64, ``(batch,)``: the feasible node of highest probability, first on ties)
and ``probs`` (float32, ``(batch, max_nodes)``: the masked action distribution, 0 on infeasible
nodes up to float rounding).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.envs.wass_sched import WassSchedEnv
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "META_ENV_KWARGS",
    "META_FORMAT",
    "META_INPUTS",
    "META_MAX_NODES",
    "ONNX_FORMAT",
    "OUTPUTS",
    "OnnxPolicy",
    "OnnxPolicyError",
    "is_onnx",
    "observer_env",
]

#: Value of :data:`META_FORMAT` in files written by :func:`agents.deploy.export.export_policy`.
ONNX_FORMAT = "wass-onnx-policy/1"
#: ``metadata_props`` keys of an exported policy.
META_FORMAT = "wass.format"
META_ENV_KWARGS = "wass.env_kwargs"
META_MAX_NODES = "wass.max_nodes"
META_INPUTS = "wass.inputs"
#: Output names of the exported graph.
OUTPUTS: tuple[str, str] = ("action", "probs")
#: The env settings that shape the observation (the rest, such as rewards, do not matter for
#: a decision); the same as :meth:`agents.ppo.MaskablePPOAgent.observer` passes on.
OBSERVATION_KWARGS: tuple[str, ...] = (
    "task_order",
    "lookahead",
    "plan_hints",
    "plan_hint_candidates",
    "graph_window",
)


class OnnxPolicyError(WassError):
    """An ``.onnx`` file that is not a policy exported by ``wass export``, or cannot be read."""


def is_onnx(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an ONNX file (by its ``.onnx`` suffix)."""
    return Path(path).suffix.lower() == ".onnx"


def observer_env(env_kwargs: dict[str, Any], max_nodes: int, insertion: bool) -> WassSchedEnv:
    """A private environment with a policy's observation settings, to observe any partial plan
    (:meth:`WassSchedEnv.observe` switches it to the builder's problem)."""
    return WassSchedEnv(
        workload="chain",  # placeholders: observe() switches to the builder's problem
        cluster={"kind": "homogeneous", "n_nodes": 1},
        max_nodes=max_nodes,
        insertion=insertion,
        **{k: env_kwargs[k] for k in OBSERVATION_KWARGS if k in env_kwargs},
    )


def _session(path: Path, threads: int, *, batch_one: bool) -> Any:
    """An onnxruntime CPU session of the graph at ``path`` (``batch_one``: the batch axis is 1)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: no optimizer chatter on stderr
    if batch_one:
        opts.add_free_dimension_override_by_name("batch", 1)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxPolicy(Scheduler):
    """An exported policy behind the scheduler interface (the ``policy`` scheduler's ONNX form).

    It chooses what the torch policy it was exported from chooses (its most likely feasible
    node; ``tests/test_export.py`` checks this on thousands of states), tasks in the training
    env's ``task_order``. It also serves as the ``agent`` of
    :class:`~agents.learned.PolicyScheduler` (guarded and rollout modes).

    Args:
        checkpoint: Path of an ``.onnx`` file written by ``wass export``.
        threads: onnxruntime intra-op threads (1: a decision is a few hundred thousand
            multiply-adds, less than a thread pool's hand-off costs).
        seed: Unused (the policy is deterministic); accepted like every scheduler's.

    Raises:
        FileNotFoundError: if the file does not exist.
        OnnxPolicyError: if it is not an ONNX model, or lacks the metadata ``wass export`` writes.
    """

    name: ClassVar[str] = "policy"
    requires: ClassVar[tuple[str, ...]] = ("checkpoint",)

    def __init__(
        self, checkpoint: str | os.PathLike[str], *, threads: int = 1, seed: int | None = None
    ) -> None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"no exported policy at {path}")
        self.threads = int(threads)
        try:
            #: The session of one decision: the batch axis fixed to 1, so that onnxruntime folds
            #: the shape arithmetic of the dynamic axis away (about a quarter of the graph's
            #: nodes; 10-15% of a decision's time).
            self.session = _session(path, self.threads, batch_one=True)
        except Exception as exc:  # onnxruntime's own error types (InvalidProtobuf, Fail, ...)
            raise OnnxPolicyError(f"{path}: not a readable ONNX model ({exc})") from None
        self._batch_session: Any = None
        meta = self.session.get_modelmeta().custom_metadata_map
        fmt = meta.get(META_FORMAT)
        if fmt != ONNX_FORMAT:
            raise OnnxPolicyError(
                f"{path}: metadata {META_FORMAT}={fmt!r}, expected {ONNX_FORMAT!r} (export the "
                "checkpoint with 'wass export CKPT -o policy.onnx')"
            )
        try:
            env_kwargs = json.loads(meta[META_ENV_KWARGS])
            max_nodes = int(meta[META_MAX_NODES])
            inputs = [str(k) for k in json.loads(meta[META_INPUTS])]
        except (KeyError, ValueError, TypeError) as exc:
            raise OnnxPolicyError(f"{path}: damaged wass metadata ({exc!r})") from None
        if not isinstance(env_kwargs, dict):
            raise OnnxPolicyError(f"{path}: metadata {META_ENV_KWARGS} is not a JSON object")
        graph_inputs = [i.name for i in self.session.get_inputs()]
        graph_outputs = [o.name for o in self.session.get_outputs()]
        if graph_inputs != inputs or tuple(graph_outputs[:2]) != OUTPUTS:
            raise OnnxPolicyError(
                f"{path}: graph inputs {graph_inputs} / outputs {graph_outputs} do not match "
                f"its metadata {inputs} / {list(OUTPUTS)}"
            )
        self.checkpoint = str(path)
        self.env_kwargs: dict[str, Any] = env_kwargs
        self.inputs: tuple[str, ...] = tuple(inputs)
        self.obs_keys: tuple[str, ...] = tuple(k for k in inputs if k != "action_mask")
        self._max_nodes = max_nodes
        self._env: WassSchedEnv | None = None
        self._mask = np.zeros((1, max_nodes), dtype=bool)
        super().__init__(seed)
        self.task_order = str(env_kwargs.get("task_order", "rank"))

    @property
    def max_nodes(self) -> int:
        """Largest cluster the policy can schedule (its action space size)."""
        return self._max_nodes

    # ------------------------------------------------------------------ the decision
    def decide(
        self, obs: dict[str, NDArray[np.float32]], mask: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The graph's ``action`` and ``probs`` for a batch of observations.

        Args:
            obs: The observation arrays by key, each with a leading batch axis.
            mask: Feasible nodes, ``(batch, max_nodes)`` (any dtype; nonzero is feasible).
        """
        feed: dict[str, Any] = {k: obs[k] for k in self.obs_keys}
        feed["action_mask"] = np.asarray(mask, dtype=bool)
        session = self.session
        if feed["action_mask"].shape[0] != 1:
            if self._batch_session is None:
                self._batch_session = _session(Path(self.checkpoint), self.threads, batch_one=False)
            session = self._batch_session
        action, probs = session.run(list(OUTPUTS), feed)
        return action, probs

    def observer(self, insertion: bool = True) -> WassSchedEnv:
        """The private environment that encodes observations (see :func:`observer_env`)."""
        if self._env is None or self._env.insertion != insertion:
            self._env = observer_env(self.env_kwargs, self._max_nodes, insertion)
        return self._env

    def _feed(self, builder: PlanBuilder, task: int) -> dict[str, Any]:
        obs = self.observer(builder.insertion).observe(builder, task)
        feed: dict[str, Any] = {k: obs[k][None] for k in self.obs_keys}
        mask = self._mask
        mask[:] = False  # the padding beyond this cluster's nodes (an earlier one may be larger)
        mask[0, : builder.problem.n_nodes] = builder.problem.fits[task]
        feed["action_mask"] = mask
        return feed

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The policy's node for ``task`` given any partial plan (its most likely node)."""
        (action,) = self.session.run(["action"], self._feed(builder, task))
        return int(action[0])

    def node_probabilities(self, builder: PlanBuilder, task: int) -> NDArray[np.float64]:
        """The policy's probability of every node for ``task`` in ``builder``'s partial plan."""
        (probs,) = self.session.run(["probs"], self._feed(builder, task))
        return np.asarray(probs[0, : builder.problem.n_nodes], dtype=np.float64)

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the policy's action for the env's own observation and mask."""
        batch = {k: np.asarray(obs[k], dtype=np.float32)[None] for k in self.obs_keys}
        action, _ = self.decide(batch, np.asarray(mask, dtype=bool)[None])
        return int(action[0])

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The policy's plan: tasks in the training env's order, each on the policy's node.

        Raises:
            OnnxPolicyError: if the cluster is larger than the policy's ``max_nodes``.
        """
        if problem.n_nodes > self._max_nodes:
            raise OnnxPolicyError(
                f"{self.checkpoint}: the policy was trained for at most {self._max_nodes} nodes; "
                f"cluster {problem.cluster.name!r} has {problem.n_nodes}"
            )
        return super().plan(problem, insertion=insertion)

    def __repr__(self) -> str:
        return f"OnnxPolicy({self.checkpoint!r})"
