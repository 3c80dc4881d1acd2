"""Stage 1 of the pipeline: seed the knowledge base with runs of heuristic policies.

For each workflow *instance* (a workflow drawn from the workload sampler, on a cluster drawn from
the configured ones) a few policies (see :mod:`teacher.policies`) plan it decision by decision;
every decision becomes a record (state features, the chosen node's features, descriptor key) and
every run an episode (graph, actions, final makespan). With ``branch_prob > 0`` some decisions
are also tried with another feasible node (half the time the earliest-finish node when the
policy chose another, else a uniformly random one), the run continuing with the same policy:
these counterfactual *branch* records show the predictor the effect of the action itself.

Everything is seeded: instance ``i`` draws from ``default_rng([seed, i])``, so the same config
gives the same base whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from teacher.features import DESCRIPTOR_DIM, FeatureTracker, ProblemFeatures, descriptor
from teacher.kb import EpisodeRecords, KnowledgeBase, concat
from teacher.policies import make_policy, parse_policy
from wass_env.errors import WassError
from wass_env.limits import MAX_COUNT
from wass_env.scheduling import Scheduler
from wass_env.sim.cluster import Cluster
from wass_env.sim.ordering import ReadyQueue
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow

__all__ = [
    "PROFILES",
    "BuildConfig",
    "BuildConfigError",
    "WorkflowSampler",
    "build_knowledge_base",
    "instance_id",
    "record_episode",
]


class WorkflowSampler(Protocol):
    """Anything that draws a workflow for a cluster (``wass_env.workloads`` samplers do)."""

    def sample(self, rng: np.random.Generator, cluster: Cluster) -> Workflow:
        """A workflow drawn with ``rng``."""
        ...


class BuildConfigError(WassError):
    """An invalid stage-1 setting (the message names the field and its value)."""


@dataclass(frozen=True)
class BuildConfig:
    """What stage 1 runs.

    Attributes:
        workload: Workload spec for :func:`wass_env.workloads.make_sampler` (a name, a dict, or
            a list of them: one is drawn per instance).
        clusters: Cluster presets or specs; one is drawn per instance.
        policies: Policy specs (``"heft"``, ``"heft~0.2"``, ...).
        policies_per_instance: How many distinct policies run each instance (drawn at random).
        instances: Number of workflow instances.
        branch_prob: Probability that a decision also gets a counterfactual branch.
        insertion: Insertion policy of the plan builder (the environment's default is True).
        seed: Master seed.
        workers: Worker processes (1: in this process).
    """

    workload: Any = "layered"
    clusters: tuple[Any, ...] = ("het16",)
    policies: tuple[str, ...] = ("heft", "heft~0.1", "heft~0.3", "data_locality", "slurm", "random")
    policies_per_instance: int = 3
    instances: int = 100
    branch_prob: float = 0.0
    insertion: bool = True
    seed: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise BuildConfigError(f"instances must be >= 1, got {self.instances}")
        if self.seed < 0:
            raise BuildConfigError(f"seed must be >= 0, got {self.seed}")
        if not self.policies:
            raise BuildConfigError("policies is empty")
        for p in self.policies:
            parse_policy(p)
        if not 1 <= self.policies_per_instance <= len(self.policies):
            raise BuildConfigError(
                f"policies_per_instance must be in 1..{len(self.policies)}, "
                f"got {self.policies_per_instance}"
            )
        if not 0.0 <= self.branch_prob <= 1.0:
            raise BuildConfigError(f"branch_prob must be in [0, 1], got {self.branch_prob}")
        if not self.clusters:
            raise BuildConfigError("clusters is empty")
        if not 1 <= self.workers <= 1024:
            raise BuildConfigError(f"workers must be in [1, 1024], got {self.workers}")
        if self.instances > MAX_COUNT:
            raise BuildConfigError(f"instances must be <= {MAX_COUNT}, got {self.instances}")


_CCR = [0.1, 2.0]
#: Synthetic shapes and application-like workflows, communication-to-computation ratio drawn in
#: [0.1, 2] per instance. Recipe pools are seeded so that every worker process sees the same
#: instances.
_WORKLOAD: list[dict[str, Any]] = [
    *({"generator": g, "n_tasks": [10, 80], "ccr": _CCR} for g in ("layered", "chain", "fan_in")),
    *({"generator": g, "n_tasks": [10, 80], "ccr": _CCR} for g in ("fan_out", "fork_join")),
    {"generator": "cybershake", "n_tasks": [30, 90], "ccr": _CCR},
    {"generator": "genomics49", "ccr": _CCR},
    {"recipe": "montage", "n_tasks": [58, 120], "pool": 12, "seed": 11, "ccr": _CCR},
    {"recipe": "epigenomics", "n_tasks": [41, 100], "pool": 12, "seed": 12, "ccr": _CCR},
    {"recipe": "1000genome", "n_tasks": [52, 110], "pool": 12, "seed": 13, "ccr": _CCR},
]
_CLUSTERS = ("het16", "hom16", "het32")
_POLICIES = (
    "heft",
    "heft~0.05",
    "heft~0.2",
    "data_locality",
    "data_locality~0.2",
    "slurm",
    "random",
)

#: Named build profiles. ``default``: about 75,000 records in under a minute on 2 cores;
#: ``large``: about 110,000; ``huge``: about 1,000,000 (some minutes).
PROFILES: dict[str, BuildConfig] = {
    "tiny": BuildConfig(
        workload={"generator": "layered", "n_tasks": [8, 20], "ccr": _CCR},
        clusters=("het16",),
        policies=("heft", "heft~0.3", "random"),
        policies_per_instance=2,
        instances=12,
        branch_prob=0.1,
    ),
    "default": BuildConfig(
        workload=_WORKLOAD,
        clusters=_CLUSTERS,
        policies=_POLICIES,
        policies_per_instance=2,
        instances=500,
        branch_prob=0.3,
        workers=2,
    ),
    "large": BuildConfig(
        workload=_WORKLOAD,
        clusters=_CLUSTERS,
        policies=_POLICIES,
        policies_per_instance=2,
        instances=750,
        branch_prob=0.3,
        workers=2,
    ),
    "huge": BuildConfig(
        workload=_WORKLOAD,
        clusters=(*_CLUSTERS, "het64"),
        policies=_POLICIES,
        policies_per_instance=2,
        instances=7000,
        branch_prob=0.3,
        workers=2,
    ),
}


@dataclass
class _Trace:
    step: list[int] = field(default_factory=list)
    task: list[int] = field(default_factory=list)
    action: list[int] = field(default_factory=list)
    state: list[np.ndarray] = field(default_factory=list)
    action_features: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    branch: list[bool] = field(default_factory=list)


def _plan(
    problem: Problem,
    policy: Scheduler,
    insertion: bool,
    prefix: Sequence[tuple[int, int]] = (),
    on_decision: Callable[[PlanBuilder, int, int, int], None] | None = None,
) -> tuple[PlanBuilder, list[tuple[int, int]]]:
    """Plan ``problem`` with ``policy``, first replaying the ``(task, node)`` decisions of
    ``prefix``; ``on_decision(builder, step, task, node)`` runs before each policy decision is
    applied. Returns the finished builder and every decision made."""
    b = PlanBuilder(problem, insertion=insertion)
    q = ReadyQueue(b, policy.priority(problem))
    decisions: list[tuple[int, int]] = []
    step = 0
    while not b.done:
        task = q.pop()
        if step < len(prefix):
            t0, node = prefix[step]
            if t0 != task:  # pragma: no cover - the queue is deterministic
                raise RuntimeError(f"replay diverged at step {step}: task {task} != {t0}")
        else:
            node = policy.select_node(b, task)
            if on_decision is not None:
                on_decision(b, step, task, node)
        b.assign(task, node)
        decisions.append((task, node))
        q.update()
        step += 1
    return b, decisions


def record_episode(
    problem: Problem,
    policy_spec: str,
    rng: np.random.Generator,
    *,
    insertion: bool = True,
    branch_prob: float = 0.0,
    pf: ProblemFeatures | None = None,
) -> tuple[EpisodeRecords, float]:
    """Plan ``problem`` with a policy and record every decision.

    Args:
        problem: The workflow on its cluster.
        policy_spec: Policy spec (see :mod:`teacher.policies`).
        rng: Source of the policy's seed and of the branch choices.
        insertion: Insertion policy of the plan builder.
        branch_prob: Probability that a decision also gets a counterfactual branch.
        pf: Static features of ``problem`` (computed if not given).

    Returns:
        ``(records, makespan)``: the episode's records (main run first, then branches) and the
        main run's makespan [s].
    """
    pf = pf or ProblemFeatures(problem)
    policy = make_policy(policy_spec, seed=int(rng.integers(2**63)))
    policy.begin(problem)
    tracker = FeatureTracker(pf)
    tr = _Trace()
    branches: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int]] = []

    def record(b: PlanBuilder, step: int, task: int, node: int) -> None:
        d = tracker.decision(b, task)
        key = descriptor(pf, d)
        tr.step.append(step)
        tr.task.append(task)
        tr.action.append(node)
        tr.state.append(d.state)
        tr.action_features.append(d.actions[node])
        tr.keys.append(key)
        if branch_prob > 0 and rng.random() < branch_prob:
            others = np.flatnonzero(d.feasible)
            others = others[others != node]
            if others.size:
                # Half the branches try the earliest-finish node (a close, strong rival of the
                # chosen one), half a uniformly random node (coverage of every kind of choice).
                best = int(np.argmin(np.where(d.feasible, d.finish, np.inf)))
                if best != node and rng.random() < 0.5:
                    alt = best
                else:
                    alt = int(others[rng.integers(others.size)])
                branches.append((step, task, d.state, d.actions[alt], key, alt))

    builder, decisions = _plan(problem, policy, insertion, on_decision=record)
    makespan = float(builder.max_finish)
    tr.target = [makespan / pf.scale] * len(tr.step)
    tr.branch = [False] * len(tr.step)
    for step, task, state, act, key, alt in branches:
        policy.reset(int(rng.integers(2**63)))
        policy.begin(problem)
        prefix = [*decisions[:step], (task, alt)]
        b2, _ = _plan(problem, policy, insertion, prefix=prefix)
        tr.step.append(step)
        tr.task.append(task)
        tr.action.append(alt)
        tr.state.append(state)
        tr.action_features.append(act)
        tr.keys.append(key)
        tr.target.append(float(b2.max_finish) / pf.scale)
        tr.branch.append(True)
    n_s = len(tr.state)
    records = EpisodeRecords(
        step=np.asarray(tr.step, dtype=np.int32),
        task=np.asarray(tr.task, dtype=np.int32),
        action=np.asarray(tr.action, dtype=np.int32),
        state=np.asarray(tr.state, dtype=np.float32).reshape(n_s, -1),
        action_features=np.asarray(tr.action_features, dtype=np.float32).reshape(n_s, -1),
        keys=np.asarray(tr.keys, dtype=np.float32).reshape(n_s, DESCRIPTOR_DIM),
        target=np.asarray(tr.target, dtype=np.float32),
        branch=np.asarray(tr.branch, dtype=bool),
        task_rank=builder.decision.astype(np.int32),
    )
    return records, makespan


def instance_id(wf: Workflow) -> str:
    """Id of a workflow's structure: family plus a hash of its tasks' work and its edges.

    Edge sizes are left out, so one structure rescaled to several CCRs (or drawn twice from a
    recipe pool) is one instance, and splits by instance keep all of its runs on one side.
    """
    h = hashlib.sha1()
    for a in (wf.work, wf.edge_src, wf.edge_dst, wf.cores):
        h.update(np.ascontiguousarray(a).tobytes())
    return f"{wf.family or 'workflow'}:{h.hexdigest()[:12]}"


def _sampler(workload: Any) -> WorkflowSampler:
    if hasattr(workload, "sample"):
        return workload  # type: ignore[no-any-return]
    from wass_env.workloads import make_sampler

    return make_sampler(workload)  # type: ignore[no-any-return]


def _clusters(specs: Sequence[Any]) -> list[Cluster]:
    from wass_env.sim.cluster import cluster_from_spec

    return [c if isinstance(c, Cluster) else cluster_from_spec(c) for c in specs]


def _build_range(config: BuildConfig, start: int, stop: int) -> KnowledgeBase:
    sampler = _sampler(config.workload)
    clusters = _clusters(config.clusters)
    kb = KnowledgeBase(DESCRIPTOR_DIM)
    for i in range(start, stop):
        rng = np.random.default_rng([config.seed, i])
        cluster = clusters[int(rng.integers(len(clusters)))]
        wf = sampler.sample(rng, cluster)
        problem = Problem(wf, cluster)
        pf = ProblemFeatures(problem)
        chosen = rng.choice(len(config.policies), config.policies_per_instance, replace=False)
        instance = instance_id(wf)
        for j in sorted(chosen.tolist()):
            spec = config.policies[j]
            records, makespan = record_episode(
                problem,
                spec,
                np.random.default_rng([config.seed, i, j]),
                insertion=config.insertion,
                branch_prob=config.branch_prob,
                pf=pf,
            )
            kb.add_episode(pf, records, makespan=makespan, policy=spec, instance=instance)
    return kb


def build_knowledge_base(
    config: BuildConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> KnowledgeBase:
    """Run stage 1: plan ``config.instances`` instances with the configured policies.

    Args:
        config: What to run.
        progress: Called with a short status line after each chunk of instances.

    Returns:
        The knowledge base, keyed by :func:`~teacher.features.descriptor` vectors; its ``meta``
        records the config and the build time.
    """
    t0 = time.perf_counter()
    n = config.instances
    chunk = max(1, min(50, -(-n // (4 * config.workers)))) if n else 1
    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    parts: list[KnowledgeBase] = []
    if config.workers == 1 or len(bounds) <= 1:
        for s, e in bounds:
            parts.append(_build_range(config, s, e))
            if progress:
                progress(f"instances {e}/{n}, records {sum(len(p) for p in parts)}")
    else:
        with ProcessPoolExecutor(max_workers=config.workers) as pool:
            futures = [pool.submit(_build_range, config, s, e) for s, e in bounds]
            for (_, e), fut in zip(bounds, futures, strict=True):
                parts.append(fut.result())
                if progress:
                    progress(f"instances {e}/{n}, records {sum(len(p) for p in parts)}")
    kb = concat(parts) if parts else KnowledgeBase(DESCRIPTOR_DIM)
    cfg = asdict(config)
    kb.meta = {
        "build": {k: v for k, v in cfg.items() if k != "workload"}
        | {"workload": repr(config.workload)},
        "build_seconds": time.perf_counter() - t0,
    }
    return kb
