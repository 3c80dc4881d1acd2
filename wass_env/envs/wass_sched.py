"""``WassSched-v0``: place each ready task of a workflow on a node of a cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from wass_env.envs.graph import GRAPH_EDGE_FEATURES, GRAPH_TASK_FEATURES, GraphWindow
from wass_env.envs.hints import plan_portfolio
from wass_env.envs.lookahead import LOOKAHEAD_FEATURES, Lookahead
from wass_env.errors import WassError
from wass_env.limits import whole_number
from wass_env.scheduling import Scheduler, make_scheduler, scheduler_names
from wass_env.sim.cluster import Cluster, ClusterError, cluster_from_spec
from wass_env.sim.execute import realize
from wass_env.sim.metrics import schedule_metrics
from wass_env.sim.ordering import TASK_ORDERS, ReadyQueue, argmin_first, task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow

__all__ = [
    "NODE_FEATURES",
    "RESET_OPTIONS",
    "REWARD_TERMS",
    "TASK_FEATURES",
    "ActionError",
    "EnvConfigError",
    "WassSchedEnv",
]

#: Names of the columns of ``obs["task"]``.
TASK_FEATURES: tuple[str, ...] = (
    "mean_runtime",  # mean runtime over feasible nodes / scale
    "cores",  # cores / largest node's cores
    "memory",  # memory / largest node's memory (0 when memory is unlimited)
    "n_parents",  # min(parents, 16) / 16
    "n_children",  # min(children, 16) / 16
    "upward_rank",  # upward rank / scale
    "depth",  # level / deepest level
    "input_comm",  # mean transfer time of its inputs / scale
    "placed_fraction",  # tasks placed so far / tasks
    "partial_makespan",  # latest finish placed so far / scale
    "release",  # when its last parent finishes / scale
)
#: Names of the columns of ``obs["nodes"]`` (one row per node, padded to ``max_nodes``).
NODE_FEATURES: tuple[str, ...] = (
    # static for a given task
    "valid",  # 1 for a real node, 0 for padding
    "feasible",  # 1 if the task fits (the action mask)
    "speed",  # relative speed for this task: its fastest feasible runtime / its runtime here
    "cores",  # cores / largest node's cores
    "runtime",  # runtime there / scale
    # depend on the partial plan
    "free_at",  # when the node has the task's cores free for good, after release / scale
    "data_ready",  # when the task's inputs would be there, after release / scale
    "start",  # earliest start there, after release / scale
    "finish",  # earliest finish there, after release / scale
    "finish_gap",  # earliest finish minus the best earliest finish / scale
    "local_input",  # fraction of the task's input bytes already on the node
    "load",  # core-seconds placed on the node / (cores x scale)
)
_N_STATIC = 5  # leading NODE_FEATURES columns that depend only on the task
#: Names of ``obs["context"]`` (with ``lookahead=True``): the instance and the progress.
CONTEXT_FEATURES: tuple[str, ...] = (
    "log_ccr",  # log(1 + communication-to-computation ratio)
    "n_nodes",  # nodes / max_nodes
    "heterogeneity",  # spread of relative node speeds
    "ready",  # ready tasks / tasks
    "remaining",  # unplaced tasks / tasks
)
#: Extra ``obs["context"]`` entries with ``plan_hints=True``: what two reference plans of the
#: instance achieve, planned once per problem, so the policy can tell an instance where another
#: plan beats HEFT with lookahead (by default the single_node plan: communication-heavy DAGs that
#: one node runs faster than HEFT with lookahead spreads them; with ``plan_hint_candidates`` the
#: shortest of several plans, :func:`wass_env.envs.hints.plan_portfolio`).
PLAN_HINT_FEATURES: tuple[str, ...] = (
    "lookahead_makespan",  # HEFT with lookahead's planned makespan / scale
    "plan_makespan",  # the other plan's makespan / scale
    "plan_share",  # lookahead's / (lookahead's + the other plan's): > 0.5 when the other wins
)
#: The extra ``obs["lookahead"]`` column with ``plan_hints=True``: 0 on the node the other plan
#: puts the task on (by default the single_node plan's choice: its one node, or the earliest
#: finish where the task does not fit there; with ``plan_hint_candidates`` the winning plan's
#: node), 1 on other feasible nodes (the Box bound on infeasible ones, like every lookahead
#: column).
PLAN_HINT_NODE_FEATURES: tuple[str, ...] = ("plan_gap",)
#: The schedulers behind the default plan hints.
PLAN_HINT_SCHEDULERS: tuple[str, ...] = ("heft_lookahead", "single_node")
#: Time units the reward terms are divided by (``reward_scale``).
REWARD_SCALES: tuple[str, ...] = ("lower_bound", "reference")
#: Named reward terms reported in ``info["rewards"]``.
REWARD_TERMS: tuple[str, ...] = ("makespan", "progress", "illegal")
_CLIP = 100.0  # features are clipped to [0, _CLIP] so the Box bounds hold
_CLIP_0D = np.array(_CLIP)  # the same as a 0-d float64 array (see _node_obs)
_CLIP_0D.setflags(write=False)


_TINY = float(np.finfo(np.float64).tiny)  # smallest normal float: 1 / _TINY is finite
#: Largest accepted magnitude of a reward weight (rewards stay finite: every term is bounded).
MAX_REWARD_WEIGHT = 1e6
#: Keys ``reset(options=...)`` accepts.
RESET_OPTIONS: tuple[str, ...] = ("problem", "workflow", "cluster")


class EnvConfigError(WassError):
    """An invalid environment argument (the message names it and its value)."""


class ActionError(WassError):
    """An action that is not a node index, or (with ``illegal_action="raise"``) a masked one."""


def _node_index(action: Any) -> int:
    """The node an action names: a Python or NumPy integer, or an integer array of size 1.

    Anything else (a float, even ``2.0``; a bool; a string; NaN; a longer array) is refused,
    so that no action silently becomes another node.
    """
    if type(action) is int or type(action) is np.int64:  # the common cases, checked first
        return int(action)
    a = action
    if isinstance(a, np.ndarray) and a.size == 1 and np.issubdtype(a.dtype, np.integer):
        a = a.reshape(()).item()
    if isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)):
        return int(a)
    shape = f" of shape {a.shape} and dtype {a.dtype}" if isinstance(a, np.ndarray) else ""
    raise ActionError(
        f"action: expected a node index (a Python or NumPy integer, or an integer array of "
        f"size 1), got {_short(action)} ({type(action).__name__}{shape})"
    )


def _reset_options(options: Any) -> dict[str, Any]:
    """``reset``'s ``options``, checked: a dict with known keys and values of the right type."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise EnvConfigError(
            f"reset: options must be a dict with keys from {RESET_OPTIONS}, got "
            f"{_short(options)} ({type(options).__name__})"
        )
    unknown = [k for k in options if k not in RESET_OPTIONS]
    if unknown:
        raise EnvConfigError(f"reset: unknown option {unknown[0]!r}; options are {RESET_OPTIONS}")
    if "problem" in options and len(options) > 1:
        raise EnvConfigError(
            "reset: options['problem'] is a whole instance; it cannot be combined with "
            f"{sorted(k for k in options if k != 'problem')}"
        )
    for key, kind in (("problem", Problem), ("workflow", Workflow)):
        if key in options and not isinstance(options[key], kind):
            raise EnvConfigError(
                f"reset: options[{key!r}] must be a {kind.__name__}, got "
                f"{_short(options[key])} ({type(options[key]).__name__})"
            )
    return dict(options)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class WassSchedEnv(gym.Env[dict[str, NDArray[np.float32]], np.int64]):
    """Workflow scheduling on a simulated heterogeneous cluster.

    ## Description
    An episode schedules one workflow (a DAG of tasks exchanging files) on one cluster, both
    drawn from the configured distributions with the environment's seeded RNG. Tasks become
    *ready* once all their parents are placed; the environment presents ready tasks one at a
    time (highest upward rank first by default) and the agent picks the node for each. The task
    starts on that node at the earliest time its inputs have arrived and the node has its cores
    free (see :mod:`wass_env.sim.plan`). When every task is placed, the plan is executed (with
    optional runtime noise) and the realized makespan ends the episode.

    ## Action Space
    ``Discrete(max_nodes)``: the node for the current task. Nodes the task does not fit on, and
    padding beyond the cluster's size, are masked: ``action_masks()`` returns the bool mask and
    ``info["action_mask"]`` the same mask as a read-only int8 array
    (``action_space.sample(mask=...)`` accepts it).

    An action is a node index: a Python ``int``, a NumPy integer (what ``action_space.sample()``
    and SB3 give) or an integer array of size 1 (what ``model.predict`` gives for one
    observation). Anything else raises :class:`ActionError` naming the action and its type:
    floats (even ``2.0``: a policy that emits floats has a bug that rounding would hide), bools,
    strings, NaN, arrays of other sizes or dtypes. An integer outside the mask, however large or
    negative, is an illegal action (below).

    ## Observation Space
    ``Dict`` of fixed-shape ``Box``es (float32, clipped to [0, 100]); times are divided by the
    episode's lower bound on the makespan (its serial time when no task has work), so one scale
    fits tiny and huge workflows:

    * ``"task"``: ``(len(TASK_FEATURES),)``: the task to place (see :data:`TASK_FEATURES`).
    * ``"nodes"``: ``(max_nodes, len(NODE_FEATURES))``: per node, what placing the task there
      would mean (see :data:`NODE_FEATURES`); padding rows are zero.

    ## Rewards
    A weighted sum of named terms, each reported in ``info["rewards"]``:

    * ``"makespan"``: at the last step, ``-realized makespan / lower bound`` (<= -1); else 0.
    * ``"progress"``: ``-(increase of the planned makespan) / lower bound`` at every step; over an
      episode it sums to ``-planned makespan / lower bound`` (a dense alternative; weight 0 by
      default).
    * ``"illegal"``: -1 when the action was masked (see below), else 0.

    ## Illegal actions
    An action outside the mask (padding, or a node the task does not fit on) does not corrupt
    the schedule: with ``illegal_action="fallback"`` (default) the task goes to the lowest-index
    feasible node, ``info["illegal_action"]`` is True and the ``"illegal"`` term is -1; with
    ``"raise"`` an :class:`ActionError` (a ``ValueError``) is raised.

    ## Episode End
    Terminates when every task is placed (episode length = number of tasks). Never truncates.
    The last ``info`` carries every metric: ``makespan`` (realized), ``planned_makespan``,
    ``mean_wait``, ``utilization``, ``cross_node_bytes``, ``locality_hit_rate``, ``slr``,
    ``lower_bound``, ``ratio_to_lower_bound``, plus ``n_tasks``, ``n_nodes``, ``workflow``,
    ``family`` and ``cluster``.

    ## Arguments
    * ``workload``: a workload spec for :func:`wass_env.workloads.make_sampler` (a generator or
      recipe name, a dict such as ``{"generator": "layered", "n_tasks": [20, 60]}``, files), a
      ``Workflow`` or a list of them.
    * ``cluster``: a preset name (``"het16"``), a dict for
      :func:`~wass_env.sim.cluster.cluster_from_spec`, a ``Cluster``, or a list of those (one is
      drawn per episode).
    * ``max_nodes``: action space size (default: the largest cluster's node count).
    * ``insertion``: HEFT-style insertion into idle gaps (default True) or per-node queues.
    * ``task_order``: ``"rank"`` (upward rank, default) or ``"fifo"`` (file order).
    * ``noise``: sigma of the mean-one lognormal runtime noise at execution (default 0).
    * ``reward_weights``: weights of the reward terms (default
      ``{"makespan": 1, "progress": 0, "illegal": 1}``), finite numbers of magnitude at most
      :data:`MAX_REWARD_WEIGHT`.
    * ``illegal_action``: ``"fallback"`` or ``"raise"``.
    * ``reference``: a baseline :class:`~wass_env.scheduling.Scheduler` or its registered name
      (``"heft"``, see :func:`wass_env.scheduling.make_scheduler`); at
      the end of each episode it plans the same instance and the last ``info`` adds
      ``reference_makespan`` and ``ratio_to_reference`` (planned makespan / the baseline's
      planned makespan). Default None (no extra work).
    * ``lookahead``: add ``obs["lookahead"]`` (``(max_nodes, len(LOOKAHEAD_FEATURES))``: what
      placing the task on each node means for its children and the path to the exit, see
      :mod:`wass_env.envs.lookahead`) and ``obs["context"]`` (:data:`CONTEXT_FEATURES`).
    * ``plan_hints``: with ``lookahead``, append :data:`PLAN_HINT_FEATURES` to
      ``obs["context"]`` (HEFT with lookahead's and the single_node plan's makespans of the
      instance, planned once per problem and kept with it) and :data:`PLAN_HINT_NODE_FEATURES` to
      ``obs["lookahead"]`` (which node the single_node plan uses).
    * ``plan_hint_candidates``: with ``plan_hints``, registered scheduler names: the hints then
      describe the shortest plan among HEFT with lookahead's and these schedulers' (their rules
      acting in the environment's task order and their own plans replayed in it; HEFT with
      lookahead's among tied ones: :func:`wass_env.envs.hints.plan_portfolio`), e.g.
      :data:`~wass_env.envs.hints.PORTFOLIO_PLAN_CANDIDATES`. Default None: the single_node plan.
    * ``plan_hint_improve``: with ``plan_hint_candidates``, pilot passes that make the winning
      plan shorter before it becomes the hint (:mod:`wass_env.sim.improve`; 0, the default:
      none). The hint is then never longer than the portfolio's plan.
    * ``plan_hint_follow``: with ``plan_hint_improve``, also the passes that move a task with
      its followers, the children that read most of their input from it (default False).
    * ``graph_window``: if > 0, add the current task's neighbourhood in the DAG, padded to that
      many tasks: ``obs["graph_tasks"]`` and ``obs["graph_edges"]`` (see
      :mod:`wass_env.envs.graph`), for a graph network.
    * ``reward_scale``: time unit of the rewards: ``"lower_bound"`` (default, like the
      observations) or ``"reference"`` (the reference scheduler's planned makespan, planned at
      reset, so the episode's return is minus the makespan relative to, e.g., HEFT's).
    * ``render_mode``: ``"ansi"`` (text Gantt) or ``"rgb_array"`` (Gantt image).

    ``reset(options=...)`` accepts ``{"workflow": Workflow, "cluster": spec}`` (either key
    alone, the other drawn as usual) or ``{"problem": Problem}`` to schedule a given instance
    instead of a sampled one; ``None`` or ``{}`` draws both. Anything else (another key, a
    value of the wrong type, ``problem`` together with another key, options that are not a
    dict) raises :class:`EnvConfigError` naming the option and its value.

    ## Version History
    * v0: initial version.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        *,
        workload: Any = "layered",
        cluster: Any = "het16",
        max_nodes: int | None = None,
        insertion: bool = True,
        task_order: str = "rank",
        noise: float = 0.0,
        reward_weights: Mapping[str, float] | None = None,
        illegal_action: str = "fallback",
        reference: str | Scheduler | None = None,
        lookahead: bool = False,
        plan_hints: bool = False,
        plan_hint_candidates: Sequence[str] | None = None,
        plan_hint_improve: int = 0,
        plan_hint_follow: bool = False,
        graph_window: int = 0,
        reward_scale: str = "lower_bound",
        render_mode: str | None = None,
    ) -> None:
        from wass_env.workloads import make_sampler

        self.workload = make_sampler(workload)
        specs = list(cluster) if isinstance(cluster, (list, tuple)) else [cluster]
        if not specs:
            raise EnvConfigError("cluster: expected at least one cluster spec, got an empty list")
        self.clusters: list[Cluster] = [cluster_from_spec(c) for c in specs]
        largest = max(c.n_nodes for c in self.clusters)
        if max_nodes is None:
            max_nodes = largest
        try:
            max_nodes = whole_number(max_nodes)
        except ValueError as exc:
            raise EnvConfigError(f"max_nodes: {exc}") from None
        if max_nodes < largest:
            raise EnvConfigError(
                f"max_nodes={max_nodes} is smaller than the largest cluster ({largest} nodes)"
            )
        if task_order not in TASK_ORDERS:
            raise EnvConfigError(f"task_order must be one of {TASK_ORDERS}, got {task_order!r}")
        if not (_is_real(noise) and np.isfinite(noise) and noise >= 0):
            raise EnvConfigError(f"noise must be finite and >= 0, got {noise!r}")
        if illegal_action not in ("fallback", "raise"):
            raise EnvConfigError(
                f"illegal_action must be 'fallback' or 'raise', got {illegal_action!r}"
            )
        weights = {"makespan": 1.0, "progress": 0.0, "illegal": 1.0}
        for k, v in dict(reward_weights or {}).items():
            if k not in weights:
                raise EnvConfigError(
                    f"reward_weights: unknown term {k!r}; terms are {REWARD_TERMS}"
                )
            try:
                w = float(v)
            except (TypeError, ValueError, OverflowError):
                w = float("nan")
            if not (np.isfinite(w) and abs(w) <= MAX_REWARD_WEIGHT):
                raise EnvConfigError(
                    f"reward_weights[{k!r}]: must be a number in "
                    f"[-{MAX_REWARD_WEIGHT:g}, {MAX_REWARD_WEIGHT:g}], got {v!r}"
                )
            weights[k] = w
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvConfigError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.max_nodes = int(max_nodes)
        self.insertion = bool(insertion)
        self.task_order = task_order
        self.noise = float(noise)
        self.reward_weights = weights
        self.illegal_action = illegal_action
        self.reference = reference
        self._reference: Scheduler | None = None
        if reference is not None:
            self._reference = make_scheduler(reference)
        self.render_mode = render_mode
        if not (isinstance(graph_window, (int, np.integer)) and 0 <= graph_window <= 4096):
            raise EnvConfigError(
                f"graph_window must be an integer in [0, 4096], got {graph_window!r}"
            )
        self.lookahead = bool(lookahead)
        self.plan_hints = bool(plan_hints)
        if self.plan_hints and not self.lookahead:
            raise EnvConfigError(
                "plan_hints=True needs lookahead=True "
                "(the hints extend obs['context'] and obs['lookahead'])"
            )
        self._n_context = len(CONTEXT_FEATURES) + (
            len(PLAN_HINT_FEATURES) if self.plan_hints else 0
        )
        self._n_lookahead = len(LOOKAHEAD_FEATURES) + (
            len(PLAN_HINT_NODE_FEATURES) if self.plan_hints else 0
        )
        self.plan_hint_candidates: tuple[str, ...] | None = None
        if plan_hint_candidates is not None:
            if not self.plan_hints:
                raise EnvConfigError(
                    "plan_hint_candidates needs plan_hints=True, got "
                    f"plan_hint_candidates={list(plan_hint_candidates)!r}"
                )
            names = (
                [plan_hint_candidates]
                if isinstance(plan_hint_candidates, str)
                else list(plan_hint_candidates)
            )
            for name in names:
                if not isinstance(name, str) or name not in scheduler_names():
                    raise EnvConfigError(
                        f"plan_hint_candidates: {name!r} is not a registered scheduler "
                        f"(known: {', '.join(scheduler_names())})"
                    )
            self.plan_hint_candidates = tuple(names)
        if (
            isinstance(plan_hint_improve, bool)
            or not isinstance(plan_hint_improve, (int, np.integer))
            or not 0 <= plan_hint_improve <= 100
        ):
            raise EnvConfigError(
                f"plan_hint_improve must be an integer in [0, 100], got {plan_hint_improve!r}"
            )
        if plan_hint_improve and self.plan_hint_candidates is None:
            raise EnvConfigError(
                "plan_hint_improve needs plan_hint_candidates (it improves the portfolio's "
                f"plan), got plan_hint_improve={plan_hint_improve!r}"
            )
        self.plan_hint_improve = int(plan_hint_improve)
        if not isinstance(plan_hint_follow, (bool, np.bool_)):
            raise EnvConfigError(
                f"plan_hint_follow must be true or false, got {plan_hint_follow!r}"
            )
        if plan_hint_follow and not plan_hint_improve:
            raise EnvConfigError(
                "plan_hint_follow needs plan_hint_improve > 0 (it adds passes to the pilot "
                "passes), got plan_hint_improve=0"
            )
        self.plan_hint_follow = bool(plan_hint_follow)
        self._hint_schedulers = (
            [make_scheduler(name) for name in PLAN_HINT_SCHEDULERS]
            if self.plan_hints and self.plan_hint_candidates is None
            else []
        )
        self._one_node = -1  # the single_node plan's node of the current problem
        self._hint_nodes: NDArray[np.int64] | None = None  # the winning plan's nodes
        self.graph_window = int(graph_window)
        if reward_scale not in REWARD_SCALES:
            raise EnvConfigError(
                f"reward_scale must be one of {REWARD_SCALES}, got {reward_scale!r}"
            )
        if reward_scale == "reference" and reference is None:
            raise EnvConfigError("reward_scale='reference' needs a reference scheduler")
        self.reward_scale = reward_scale

        self.action_space = spaces.Discrete(self.max_nodes)
        obs_spaces: dict[str, spaces.Space[Any]] = {
            "task": spaces.Box(0.0, _CLIP, (len(TASK_FEATURES),), np.float32),
            "nodes": spaces.Box(0.0, _CLIP, (self.max_nodes, len(NODE_FEATURES)), np.float32),
        }
        if self.lookahead:
            obs_spaces["lookahead"] = spaces.Box(
                0.0, _CLIP, (self.max_nodes, self._n_lookahead), np.float32
            )
            obs_spaces["context"] = spaces.Box(0.0, _CLIP, (self._n_context,), np.float32)
        if self.graph_window:
            w = self.graph_window
            obs_spaces["graph_tasks"] = spaces.Box(
                0.0, _CLIP, (w, len(GRAPH_TASK_FEATURES)), np.float32
            )
            obs_spaces["graph_edges"] = spaces.Box(
                0.0, max(_CLIP, float(w)), (4 * w, len(GRAPH_EDGE_FEATURES)), np.float32
            )
        self.observation_space = spaces.Dict(obs_spaces)  # type: ignore[assignment]
        # Episode state (set by reset).
        self.problem: Problem | None = None
        self.builder: PlanBuilder | None = None
        self.current_task: int = -1
        self._queue: ReadyQueue | None = None
        self._mask = np.zeros(self.max_nodes, dtype=bool)
        self._noise_rng: np.random.Generator | None = None

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, Any]]:
        """Start an episode on a freshly drawn (or given) workflow and cluster."""
        super().reset(seed=seed)
        if seed is not None or self._noise_rng is None:
            # Runtime noise has its own stream, so the workflows an env draws do not depend on
            # whether (or how much) noise is on.
            self._noise_rng = np.random.default_rng(None if seed is None else [seed, 0x6E6F6973])
        options = _reset_options(options)
        if "problem" in options:
            problem = options["problem"]
        else:
            if "cluster" in options:
                try:
                    cluster = cluster_from_spec(options["cluster"])
                except ClusterError as exc:
                    raise EnvConfigError(f"reset: options['cluster']: {exc}") from None
            else:
                cluster = self.clusters[int(self.np_random.integers(len(self.clusters)))]
            if "workflow" in options:
                workflow = options["workflow"]
            else:
                if seed is not None:
                    # Recipe pools are drawn lazily from the episode's generator; forgotten at
                    # every seeded reset, the episode is a function of its seed alone (the same
                    # as a fresh env's), whatever this env drew before.
                    self.workload.reset()
                workflow = self.workload.sample(self.np_random, cluster)
            problem = Problem(workflow, cluster)
        if problem.n_nodes > self.max_nodes:
            raise EnvConfigError(
                f"cluster {problem.cluster.name!r} has {problem.n_nodes} nodes; this env was "
                f"built with max_nodes={self.max_nodes}"
            )
        self._start_episode(problem)
        obs = self._get_obs()
        info = self._get_info()
        return obs, info

    def step(
        self, action: Any
    ) -> tuple[dict[str, NDArray[np.float32]], SupportsFloat, bool, bool, dict[str, Any]]:
        """Place the current task on node ``action``."""
        if self.builder is None or self.problem is None:
            raise RuntimeError("call reset() before step()")
        if self.current_task < 0:
            raise RuntimeError("the episode is over; call reset()")
        b = self.builder
        node = _node_index(action)
        illegal = not (0 <= node < self.max_nodes and self._mask[node])
        if illegal:
            if self.illegal_action == "raise":
                task_id = self.problem.workflow.ids[self.current_task]
                raise ActionError(
                    f"illegal action {node} for task {task_id!r}: feasible nodes are "
                    f"{np.flatnonzero(self._mask).tolist()}"
                )
            node = int(np.argmax(self._mask))
        before = b.max_finish
        b.assign(self.current_task, node)
        self._placed(self.current_task, node)
        rewards = {
            "makespan": 0.0,
            "progress": -(b.max_finish - before) / self._reward_unit,
            "illegal": -1.0 if illegal else 0.0,
        }
        terminated = b.done
        if terminated:
            self.current_task = -1
            metrics = self._finish_episode()
            rewards["makespan"] = -metrics["makespan"] / self._reward_unit
        else:
            self._queue.update()  # type: ignore[union-attr]
            self.current_task = self._queue.pop()  # type: ignore[union-attr]
            metrics = {}
        self._prepare()
        return self._step_result(rewards, illegal, metrics, terminated)

    def _step_result(
        self, rewards: dict[str, float], illegal: bool, metrics: dict[str, Any], terminated: bool
    ) -> tuple[dict[str, NDArray[np.float32]], float, bool, bool, dict[str, Any]]:
        """What ``step`` returns: the weighted reward, the observation and the info."""
        w = self.reward_weights
        # Summed in this order from 0, as sum() would (so -0.0 never appears).
        reward = (
            0
            + w["makespan"] * rewards["makespan"]
            + w["progress"] * rewards["progress"]
            + w["illegal"] * rewards["illegal"]
        )
        obs = self._get_obs()
        info = self._get_info()
        info["rewards"] = rewards
        info["illegal_action"] = illegal
        if metrics:
            info.update(metrics)
        return obs, float(reward), terminated, False, info

    @property
    def reward_unit_per_lower_bound(self) -> float:
        """The current episode's lower bound divided by its reward unit (``reward_scale``): 1.0
        with ``"lower_bound"``; a reward term in makespan / lower bound units times this is in
        the environment's reward units (what a reward wrapper such as the teacher's needs)."""
        return self._scale / self._reward_unit

    def observe(self, builder: PlanBuilder, task: int) -> dict[str, NDArray[np.float32]]:
        """The observation the agent would see with ``task`` to place in the partial plan
        ``builder`` (of any problem that fits ``max_nodes``), without changing the episode.

        This is how a trained policy acts as a scheduler outside the environment's own loop
        (``Scheduler.select_node``). When ``builder`` plans another problem than the current
        episode's, that problem becomes the current one (as after a ``reset``).
        """
        if builder.problem is not self.problem:
            if builder.problem.n_nodes > self.max_nodes:
                raise EnvConfigError(
                    f"cluster {builder.problem.cluster.name!r} has {builder.problem.n_nodes} "
                    f"nodes; this env was built with max_nodes={self.max_nodes}"
                )
            self._start_episode(builder.problem)
        if builder is self.builder and task == self.current_task:
            return self._get_obs()
        saved = (self.builder, self.current_task)
        self.builder, self.current_task = builder, task
        try:
            self._follow(builder)
            self._prepare()
            return self._get_obs()
        finally:
            self.builder, self.current_task = saved
            self._follow(self.builder)
            self._prepare()

    def action_masks(self) -> NDArray[np.bool_]:
        """Bool mask of the nodes the current task may go to (what MaskablePPO reads)."""
        return self._mask.copy()

    def render(self) -> str | NDArray[np.uint8] | None:
        """A Gantt chart of the plan so far (``ansi``: text; ``rgb_array``: image)."""
        if self.render_mode is None or self.builder is None or self.problem is None:
            return None
        from wass_env.render import gantt_rgb, gantt_text

        b = self.builder
        if self.render_mode == "ansi":
            return gantt_text(self.problem, b.node, b.start, b.finish)
        return gantt_rgb(self.problem, b.node, b.start, b.finish)

    # ------------------------------------------------------------------ internals
    #
    # Per episode, everything that does not depend on the partial plan is tabulated once
    # (_start_episode): the task features, the task-only node columns (valid .. runtime), the
    # masks. Per step, _prepare() computes what the mask, the observation and the placement
    # share (release, data-ready, earliest start and finish on every node) once; the builder
    # keeps the earliest starts, so placing the task reuses them. Columns that change on one
    # node per placement ("load") are updated in place. To add an observation part, give it a
    # Box in observation_space and an entry in _get_obs; to add a node column, extend
    # NODE_FEATURES and fill it in _episode_tables (task-only) or _node_obs (plan-dependent).

    def _start_episode(self, problem: Problem) -> None:
        self.problem = problem
        self.builder = PlanBuilder(problem, insertion=self.insertion)
        self._queue = ReadyQueue(self.builder, task_priority(problem, self.task_order))
        self.current_task = self._queue.pop()
        # [s] time unit of observations and rewards: the lower bound (the serial time when there
        # is no work). Problem bounds every time by 1e100 of them; the floor keeps 1 / scale finite.
        lb = problem.lower_bound()
        self._scale = max(lb if lb > 0 else problem.serial_time(), _TINY)
        self._inv = 1.0 / self._scale
        self._reference_makespan: float | None = None
        self._reward_unit = self._scale
        if self.reward_scale == "reference":
            assert self._reference is not None
            self._reference_makespan = self._reference.plan(
                problem, insertion=self.insertion
            ).makespan
            self._reward_unit = self._reference_makespan or self._scale
        self._episode_tables(problem)
        self._prepare()

    def _episode_tables(self, problem: Problem) -> None:
        """Per-episode tables: task features, task-only node columns, masks, scratch space."""
        wf, cl = problem.workflow, problem.cluster
        n = problem.n_nodes
        self._n = n
        self._valid = np.zeros(self.max_nodes, dtype=bool)
        self._valid[:n] = True
        self._valid.setflags(write=False)
        inv = self._inv
        max_cores = float(cl.cores.max())
        mem = cl.memory[np.isfinite(cl.memory)]
        max_mem = float(mem.max()) if mem.size else 0.0
        # Relative speed for the task: its fastest feasible runtime / its runtime there (1 on
        # the fastest node; a zero runtime counts as fastest).
        et = problem.exec_time
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_speed = np.where(et > 0, problem.min_exec[:, None] / et, 1.0)
        # Stored (task, column, node), so that each column is written in contiguous rows;
        # _node_static is the (task, node, column) view, the layout of obs["nodes"].
        static = np.empty((wf.n_tasks, _N_STATIC, n), dtype=np.float32)
        static[:, 0] = 1.0
        static[:, 1] = problem.fits
        static[:, 2] = np.minimum(rel_speed, 1.0)
        static[:, 3] = cl.cores / max_cores
        static[:, 4] = np.minimum(problem.exec_time * inv, _CLIP)
        self._static_cols = static
        # Sums over each task's parent edges, in edge order from 0 (like np.add.at).
        input_comm = np.bincount(wf.edge_dst, weights=problem.mean_comm, minlength=wf.n_tasks)
        input_bytes = np.bincount(wf.edge_dst, weights=wf.edge_bytes, minlength=wf.n_tasks)
        task_static = np.zeros((wf.n_tasks, len(TASK_FEATURES)))
        task_static[:, 0] = problem.mean_exec * inv
        task_static[:, 1] = wf.cores / max_cores
        task_static[:, 2] = wf.memory / max_mem if max_mem > 0 else 0.0
        task_static[:, 3] = np.minimum(wf.n_parents, 16) / 16.0
        task_static[:, 4] = np.minimum(wf.n_children, 16) / 16.0
        task_static[:, 5] = problem.upward_rank() * inv
        task_static[:, 6] = wf.levels / max(int(wf.levels.max()), 1)
        task_static[:, 7] = input_comm * inv
        self._task_static = np.clip(task_static, 0.0, _CLIP).astype(np.float32)
        self._load_scale = 1.0 / (cl.cores * self._scale)  # [1 / core-s]
        masks = np.zeros((wf.n_tasks, self.max_nodes), dtype=bool)
        masks[:, :n] = problem.fits
        masks.setflags(write=False)
        self._masks = masks
        masks_i8 = masks.astype(np.int8)
        masks_i8.setflags(write=False)
        self._masks_i8 = masks_i8
        self._valid_i8 = self._valid.astype(np.int8)
        self._valid_i8.setflags(write=False)
        # Inputs of each task for the local-input column, as Python lists (few per task).
        self._input_bytes = input_bytes.tolist()
        self._pptr = wf.parent_ptr.tolist()
        self._psrc = wf.edge_src.tolist()
        self._pbytes = wf.edge_bytes.tolist()
        self._n_tasks = wf.n_tasks
        self._cores_l = wf.cores.tolist()
        # The plan-dependent node columns (free_at .. load) of the current task, one row per
        # column, float64: rows 0-4 are recomputed every step, row 5 (local_input) is set on the
        # nodes holding the task's parents (and cleared again on those nodes next step), row 6
        # (load) changes on one node per placement.
        self._dyn = np.zeros((len(NODE_FEATURES) - _N_STATIC, n))
        self._local_nodes: list[int] = []
        self._node_of = [-1] * wf.n_tasks  # node of every placed task
        # The Box row of padding: zero.
        self._node_template = np.zeros((self.max_nodes, len(NODE_FEATURES)), dtype=np.float32)
        # _node_obs assembles obs["nodes"] in this work array (padding rows stay zero) and returns
        # a copy.
        self._node_work = self._node_template.copy()
        self._make_views()
        self._load_scale_l = self._load_scale.tolist()
        self._release_0d = np.zeros(())
        self._best_0d = np.zeros(())
        self._inv_0d = np.array(inv)
        # The optional observation parts.
        self._lookahead = Lookahead.of(problem, _CLIP) if self.lookahead else None
        self._graph = GraphWindow(problem, self.graph_window, _CLIP) if self.graph_window else None
        if self.lookahead:
            speed = problem.min_exec[:, None] / np.where(
                problem.exec_time > 0, problem.exec_time, 1.0
            )
            ctx = [
                np.log1p(problem.ccr()),  # how communication-heavy the instance is
                n / self.max_nodes,
                float(np.std(np.where(problem.fits, speed, 0.0))),  # node heterogeneity
                0.0,
                0.0,
            ]
            if self.plan_hint_candidates is not None:
                # Kept with the problem (plan_portfolio caches it): every policy evaluated on it,
                # the portfolio expert and the plan_portfolio scheduler share the plans.
                choice = plan_portfolio(
                    problem,
                    self.plan_hint_candidates,
                    insertion=self.insertion,
                    priority=task_priority(problem, self.task_order),
                    improve=self.plan_hint_improve,
                    follow=self.plan_hint_follow,
                )
                self._hint_nodes = choice.nodes
                ref, other = choice.rule_makespan, choice.makespan
                total = ref + other
                ctx += [ref * inv, other * inv, ref / total if total > 0 else 0.5]
            elif self.plan_hints:
                # Kept with the problem: every policy evaluated on it shares the two plans.
                key = f"plan_hints:{self.insertion}"
                if key not in problem._cache:
                    ref_sch, one_sch = self._hint_schedulers
                    ref_plan = ref_sch.plan(problem, insertion=self.insertion)
                    one_plan = one_sch.plan(problem, insertion=self.insertion)
                    problem._cache[key] = (
                        ref_plan.makespan,
                        one_plan.makespan,
                        one_sch.best_node,  # type: ignore[attr-defined]
                    )
                ref, one, self._one_node = problem._cache[key]
                total = ref + one
                ctx += [ref * inv, one * inv, ref / total if total > 0 else 0.5]
            self._context_static = np.array(ctx)
            self._total_work = float(problem.mean_exec.sum()) or 1.0

    _VIEWS = (
        "_node_static",
        "_work_static",
        "_work_dyn",
        "_dyn_rows",
        "_dyn_times",
        "_dyn_after_release",
    )

    def _make_views(self) -> None:
        """Views of ``_dyn`` and ``_node_work`` that ``_node_obs`` writes through (and of
        ``_static_cols``), made once per episode: on 16 nodes NumPy's fixed cost per indexing or
        call is what a step spends, not the arithmetic."""
        n = self._n
        self._node_static = self._static_cols.transpose(0, 2, 1)
        self._work_static = self._node_work[:n, :_N_STATIC].T  # (columns, nodes)
        self._work_dyn = self._node_work[:n, _N_STATIC:].T  # (columns, nodes), like _dyn
        self._dyn_rows = list(self._dyn)
        self._dyn_times = self._dyn[:5]
        self._dyn_after_release = self._dyn[:4]

    def __getstate__(self) -> dict[str, Any]:
        # Views do not survive pickling (they would become copies): drop them, remake them.
        state = self.__dict__.copy()
        for k in self._VIEWS:
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_node_work" in state:
            self._make_views()

    def _prepare(self) -> None:
        """Mask and shared per-step quantities for the current task (once per step)."""
        t = self.current_task
        if t < 0:
            self._mask = self._valid
            return
        self._mask = self._masks[t]
        b = self.builder
        assert b is not None
        self._release = b.release_time(t)
        # earliest_start computes the data-ready times once and keeps both for assign().
        self._est = b.earliest_start(t)
        self._drt = b.data_ready(t)

    def _get_obs(self) -> dict[str, NDArray[np.float32]]:
        t = self.current_task
        if t < 0:
            node_obs = np.zeros((self.max_nodes, len(NODE_FEATURES)), dtype=np.float32)
            node_obs[:, 0] = self._valid
            obs = {"task": np.zeros(len(TASK_FEATURES), dtype=np.float32), "nodes": node_obs}
            self._add_extra_obs(obs, -1, None, 0.0)
            return obs
        obs = {"task": self._task_obs(t), "nodes": self._node_obs(t)}
        if self.lookahead or self.graph_window:
            eft = self._est + self.problem.exec_time[t]  # type: ignore[union-attr]
            self._add_extra_obs(obs, t, eft, self._release)
        return obs

    def _task_obs(self, t: int) -> NDArray[np.float32]:
        b = self.builder
        assert b is not None
        inv = self._inv
        task_obs = self._task_static[t].copy()
        task_obs[8] = b.n_placed / self._n_tasks
        mf = b.max_finish * inv
        task_obs[9] = _CLIP if mf > _CLIP else mf  # min(mf, _CLIP), without the call
        rel = self._release * inv
        task_obs[10] = _CLIP if rel > _CLIP else rel
        return task_obs

    def _node_obs(self, t: int) -> NDArray[np.float32]:
        b = self.builder
        assert b is not None
        release = self._release
        est = self._est
        d0, d1, d2, eft, gap = self._dyn_rows[:5]
        # Times after the release, per node: cores free, inputs there, start, finish; then the
        # finish gap. Every entry is >= 0 by construction (no input arrives before the
        # release); infeasible nodes have infinite times: cap at the Box bound. Computed in
        # float64 in _dyn and rounded to float32 once, on the copy into the work array.
        # The scalars go in as 0-d float64 arrays: a ufunc converts a Python float operand anew
        # at every call, which costs more than the operation on 16 nodes (same float64 result).
        rel = self._release_0d
        rel[...] = release
        np.maximum(b.free_from(self._cores_l[t]), rel, out=d0)
        d1[...] = self._drt
        d2[...] = est
        np.add(est, self.problem.exec_time[t], out=eft)  # type: ignore[union-attr]
        best = self._best_0d
        np.minimum.reduce(eft, out=best)
        np.subtract(eft, best, out=gap)
        after = self._dyn_after_release
        np.subtract(after, rel, out=after)
        times = self._dyn_times
        np.multiply(times, self._inv_0d, out=times)
        np.minimum(times, _CLIP_0D, out=times)
        self._local_input(t)
        self._work_static[...] = self._static_cols[t]
        self._work_dyn[...] = self._dyn
        return self._node_work.copy()

    def _local_input(self, t: int) -> None:
        """Row 5 of the dynamic columns: the fraction of ``t``'s input bytes on each node."""
        local = self._dyn_rows[5]
        for k in self._local_nodes:
            local[k] = 0.0
        self._local_nodes = []
        total = self._input_bytes[t]
        if total <= 0:
            return
        lo, hi = self._pptr[t], self._pptr[t + 1]
        if hi - lo == 1:
            k = self._node_of[self._psrc[lo]]
            local[k] = min(self._pbytes[lo] / total, _CLIP)
            self._local_nodes = [k]
        elif hi - lo <= 8:
            # Summed in edge order from 0, as np.bincount does.
            node_of, src, nbytes = self._node_of, self._psrc, self._pbytes
            acc: dict[int, float] = {}
            for e in range(lo, hi):
                k = node_of[src[e]]
                acc[k] = acc.get(k, 0.0) + nbytes[e]
            for k, v in acc.items():
                local[k] = min(v / total, _CLIP)
            self._local_nodes = list(acc)
        else:
            wf = self.problem.workflow  # type: ignore[union-attr]
            sl = slice(lo, hi)
            node = self.builder.node  # type: ignore[union-attr]
            acc_a = np.bincount(
                node[wf.edge_src[sl]], weights=wf.edge_bytes[sl], minlength=self._n
            ).astype(np.float64, copy=False)  # weighted counts are float64 already
            acc_a /= total
            np.minimum(acc_a, _CLIP, out=local)
            self._local_nodes = np.flatnonzero(local).tolist()

    def _follow(self, builder: PlanBuilder | None) -> None:
        """Rebuild the incrementally kept columns from ``builder``'s placements (when the
        observation is asked for another partial plan than the episode's own)."""
        if builder is None:
            return
        self._node_of = builder.node.tolist()
        np.minimum(builder.node_busy * self._load_scale, _CLIP, out=self._dyn[6])
        self._dyn[5] = 0.0
        self._local_nodes = []

    def _placed(self, task: int, node: int) -> None:
        """Update what placing ``task`` on ``node`` changes: the node's load."""
        b = self.builder
        assert b is not None
        self._node_of[task] = node
        load = b.node_busy.item(node) * self._load_scale_l[node]
        self._dyn_rows[6][node] = _CLIP if load > _CLIP else load

    def _add_extra_obs(
        self,
        obs: dict[str, NDArray[np.float32]],
        t: int,
        eft: NDArray[np.float64] | None,
        release: float,
    ) -> None:
        """The optional lookahead, context and graph parts of the observation."""
        if self.lookahead:
            look = np.zeros((self.max_nodes, self._n_lookahead), dtype=np.float32)
            ctx = np.zeros(self._n_context, dtype=np.float32)
            if t >= 0:
                b, p = self.builder, self.problem
                assert b is not None and p is not None and eft is not None
                n_look = len(LOOKAHEAD_FEATURES)
                look[: p.n_nodes, :n_look] = self._lookahead(b, t, eft, release, self._scale)  # type: ignore[misc]
                if self.plan_hints:
                    col = look[: p.n_nodes, n_look]
                    col[:] = np.where(p.fits[t], 1.0, _CLIP)
                    if self._hint_nodes is not None:
                        col[self._hint_nodes[t]] = 0.0  # the winning plan's node
                    else:
                        # single_node's choice (SingleNodeScheduler.select_node) from what the
                        # step has computed: its node, or the earliest finish where the task
                        # does not fit.
                        one = self._one_node
                        col[one if p.fits[t, one] else argmin_first(eft)] = 0.0
                ctx[:] = self._context_static
                ctx[3] = len(b.ready) / p.n_tasks
                ctx[4] = 1.0 - b.n_placed / p.n_tasks
                np.clip(ctx, 0.0, _CLIP, out=ctx)
            obs["lookahead"] = look
            obs["context"] = ctx
        if self._graph is not None or self.graph_window:
            w = self.graph_window
            if t >= 0 and self._graph is not None:
                assert self.builder is not None
                gt, ge = self._graph(self.builder, t, release, self._scale)
            else:
                gt = np.zeros((w, len(GRAPH_TASK_FEATURES)), dtype=np.float32)
                ge = np.zeros((4 * w, len(GRAPH_EDGE_FEATURES)), dtype=np.float32)
            obs["graph_tasks"] = gt
            obs["graph_edges"] = ge

    def _get_info(self) -> dict[str, Any]:
        p = self.problem
        assert p is not None
        t = self.current_task
        if t < 0:
            return {"action_mask": self._valid_i8}
        return {"action_mask": self._masks_i8[t], "task": p.workflow.ids[t]}

    def _finish_episode(self) -> dict[str, Any]:
        b, p = self.builder, self.problem
        assert b is not None and p is not None
        plan = b.plan()
        # The plan itself when execution reproduces it (no noise, contention-free network).
        realized = realize(plan, noise=self.noise, rng=self._noise_rng)
        m: dict[str, Any] = dict(schedule_metrics(realized).as_dict())
        m["planned_makespan"] = plan.makespan
        if self._reference is not None:
            ref = self._reference_makespan
            if ref is None:
                ref = self._reference.plan(p, insertion=self.insertion).makespan
            m["reference_makespan"] = ref
            m["ratio_to_reference"] = plan.makespan / ref if ref > 0 else 1.0
        m.update(
            n_tasks=p.n_tasks,
            n_nodes=p.n_nodes,
            workflow=p.workflow.name,
            family=p.workflow.family,
            cluster=p.cluster.name,
        )
        self.last_plan = plan
        self.last_schedule = realized
        return m
