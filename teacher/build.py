"""Stage 1 of the pipeline: seed the knowledge base with runs of many policies.

For each workflow *instance* (a workflow drawn from the workload sampler, on a cluster drawn from
the configured ones) a few policies (see :mod:`teacher.policies`: heuristics, HEFT with
lookahead, CP-SAT on small instances, the rollout expert, trained checkpoints, epsilon-perturbed
versions) plan it decision by decision; every decision becomes a record (state features, the
chosen node's features, descriptor key) and every run an episode (graph, actions, final
makespan, policy).

With ``branch_prob > 0`` some decisions are also *branched*: several nodes (the chosen one, the
``branch_k`` earliest-finish nodes, the continuation policy's own node, the data-local nodes and
``branch_random`` random feasible nodes) are each tried and the plan completed by one deterministic
*continuation* policy (``continuation``, HEFT by default). These counterfactual records have an
exact target (no continuation noise) and, for one decision, form a same-state comparison of
actions: the pairs the predictor learns to rank. A run of the rollout expert (``pilot``) already
completes its candidates with HEFT at every decision; its branches are those completions, at no
extra cost.

Everything is seeded: instance ``i`` draws from ``default_rng([seed, i])``, so the same config
gives the same base whatever the number of worker processes (CP-SAT is stopped by its
deterministic time limit, not the wall clock, for the same reason).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agents.imitation import PilotExpert
from teacher.features import DESCRIPTOR_DIM, FeatureTracker, ProblemFeatures, descriptor
from teacher.kb import EpisodeRecords, KnowledgeBase, concat
from teacher.policies import PilotScheduler, make_policy, parse_policy
from wass_env.errors import WassError
from wass_env.limits import MAX_COUNT
from wass_env.scheduling import Scheduler
from wass_env.sim.cluster import Cluster
from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow
from wass_env.workers import process_pool

__all__ = [
    "DEFAULT_HOLDOUT",
    "PROFILES",
    "BuildConfig",
    "BuildConfigError",
    "WorkflowSampler",
    "build_knowledge_base",
    "experience_summary",
    "instance_id",
    "mix_workload",
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
        policies: Policy specs (``"heft"``, ``"heft~0.2"``, ``"pilot2"``, ``"cpsat"``,
            ``"policy:PATH"``, ...) drawn per instance.
        policies_per_instance: How many distinct policies of ``policies`` run each instance
            (drawn at random among those that apply to it).
        always: Policy specs run on every instance they apply to, besides the drawn ones.
        instances: Number of workflow instances.
        branch_prob: Probability that a decision is branched (see the module docstring).
        branch_k: Earliest-finish nodes tried at a branched decision.
        branch_random: Uniformly random other feasible nodes tried there as well (coverage
            of the choices a learning agent makes, far from the earliest-finish ones).
        continuation: Deterministic policy completing every branch.
        insertion: Insertion policy of the plan builder (the environment's default is True).
        cpsat_max_tasks: ``cpsat`` runs on instances with at most this many tasks ...
        cpsat_max_nodes: ... and nodes.
        cpsat_time: CP-SAT's deterministic time limit per solve (CP-SAT's own units, about
            seconds; deterministic, unlike a wall-clock limit).
        seed: Master seed.
        workers: Worker processes (1: in this process).
    """

    workload: Any = "layered"
    clusters: tuple[Any, ...] = ("het16",)
    policies: tuple[str, ...] = ("heft", "heft~0.1", "heft~0.3", "data_locality", "slurm", "random")
    policies_per_instance: int = 3
    always: tuple[str, ...] = ()
    instances: int = 100
    branch_prob: float = 0.0
    branch_k: int = 3
    branch_random: int = 2
    continuation: str = "heft"
    insertion: bool = True
    cpsat_max_tasks: int = 30
    cpsat_max_nodes: int = 8
    cpsat_time: float = 1.0
    seed: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.instances < 1:
            raise BuildConfigError(f"instances must be >= 1, got {self.instances}")
        if self.seed < 0:
            raise BuildConfigError(f"seed must be >= 0, got {self.seed}")
        if not self.policies:
            raise BuildConfigError("policies is empty")
        for p in (*self.policies, *self.always):
            parse_policy(p)
        cont = parse_policy(self.continuation)
        if not cont.deterministic or cont.name in ("policy", "cpsat", "teacher", "pilot"):
            raise BuildConfigError(
                f"continuation must be a deterministic heuristic (heft, heft_lookahead, ...), "
                f"got {self.continuation!r}"
            )
        if not 1 <= self.policies_per_instance <= len(self.policies):
            raise BuildConfigError(
                f"policies_per_instance must be in 1..{len(self.policies)}, "
                f"got {self.policies_per_instance}"
            )
        if not 0.0 <= self.branch_prob <= 1.0:
            raise BuildConfigError(f"branch_prob must be in [0, 1], got {self.branch_prob}")
        if not 1 <= self.branch_k <= MAX_COUNT:
            raise BuildConfigError(f"branch_k must be >= 1, got {self.branch_k}")
        if not 0 <= self.branch_random <= MAX_COUNT:
            raise BuildConfigError(f"branch_random must be >= 0, got {self.branch_random}")
        if not self.clusters:
            raise BuildConfigError("clusters is empty")
        if not 1 <= self.workers <= 1024:
            raise BuildConfigError(f"workers must be in [1, 1024], got {self.workers}")
        if self.instances > MAX_COUNT:
            raise BuildConfigError(f"instances must be <= {MAX_COUNT}, got {self.instances}")
        if not self.cpsat_time > 0:
            raise BuildConfigError(f"cpsat_time must be > 0, got {self.cpsat_time}")


#: Families the default profiles leave out of the base, so that the greedy teacher and the
#: policies trained with it can be measured on families they never saw.
DEFAULT_HOLDOUT = ("fork_join", "montage", "epigenomics")

_MIX_FILE = Path(__file__).resolve().parents[1] / "conf" / "workload" / "mix.yaml"


def mix_workload(
    exclude: Sequence[str] = DEFAULT_HOLDOUT,
    *,
    max_tasks: int | None = None,
    pool: int | None = None,
    pool_seed: int | None = None,
    path: str | Path = _MIX_FILE,
) -> dict[str, Any]:
    """The training mix (``conf/workload/mix.yaml``) as a workload spec, for the base.

    Args:
        exclude: Families left out.
        max_tasks: Cap on every family's largest size (never below its smallest): the base's
            cost grows with the size, its features are per task.
        pool: Recipe pool size (default: the file's).
        pool_seed: Fixed seed of every recipe pool (family ``i`` uses ``pool_seed + i``), so
            that worker processes draw from the same pools.
        path: The mix file.

    Raises:
        BuildConfigError: if the file is missing or is not a mix by label.
    """
    import yaml

    try:
        spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BuildConfigError(f"{path}: cannot read the workload mix ({exc})") from None
    mix = spec.get("mix") if isinstance(spec, dict) else None
    if not isinstance(mix, dict):
        raise BuildConfigError(f"{path}: expected a mix by label ({{mix: {{family: spec}}}})")
    out: dict[str, Any] = {}
    for i, (label, sub) in enumerate(mix.items()):
        sub = copy.deepcopy(dict(sub))
        n = sub.get("n_tasks")
        if max_tasks is not None and isinstance(n, list) and len(n) == 2:
            sub["n_tasks"] = [n[0], max(int(n[0]), min(int(n[1]), int(max_tasks)))]
        if "recipe" in sub:
            if pool is not None:
                sub["pool"] = int(pool)
            if pool_seed is not None:
                sub["seed"] = int(pool_seed) + i
        out[label] = sub
    unknown = [f for f in exclude if f not in out]
    if unknown:
        raise BuildConfigError(f"exclude: {unknown[0]!r} is not a family of {path}: {list(out)}")
    result = {"mix": out, "exclude": list(exclude)}
    if "ccr" in spec:
        result["ccr"] = spec["ccr"]
    return result


_CCR = [0.1, 2.0]
_CLUSTERS: tuple[Any, ...] = (
    "het16",
    "hom16",
    "het32",
    {"kind": "heterogeneous", "n_nodes": 4},
    {"kind": "heterogeneous", "n_nodes": 8},
    {"kind": "homogeneous", "n_nodes": 8},
)
_POLICIES = (
    "heft",
    "heft~0.2",
    "heft_lookahead",
    "best_heuristic",
    "pilot2",
    "data_locality",
    "data_locality~0.2",
    "slurm",
    "random",
)


def _profile(instances: int, workers: int = 2, **kw: Any) -> BuildConfig:
    return BuildConfig(
        workload=mix_workload(max_tasks=120, pool=12, pool_seed=11),
        clusters=_CLUSTERS,
        policies=_POLICIES,
        policies_per_instance=2,
        always=("cpsat",),
        instances=instances,
        branch_prob=0.15,
        branch_k=2,
        branch_random=3,
        workers=workers,
        **kw,
    )


#: Named build profiles. Every profile but ``tiny`` draws from the training mix without
#: :data:`DEFAULT_HOLDOUT` (at most 120 tasks, CCR 0.05-10) on 4 to 32 nodes.
PROFILES: dict[str, BuildConfig] = {
    "tiny": BuildConfig(
        workload={"generator": "layered", "n_tasks": [8, 20], "ccr": _CCR},
        clusters=("het16",),
        policies=("heft", "heft~0.3", "random"),
        policies_per_instance=2,
        instances=12,
        branch_prob=0.1,
    ),
    "default": _profile(400),
    "large": _profile(1200),
    "huge": _profile(10000),
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
    cont: list[int] = field(default_factory=list)


def _plan(
    problem: Problem,
    policy: Scheduler,
    insertion: bool,
    on_decision: Callable[[PlanBuilder, int, int, int], None] | None = None,
) -> PlanBuilder:
    """Plan ``problem`` with ``policy``; ``on_decision(builder, step, task, node)`` runs before
    each decision is applied. Returns the finished builder."""
    b = PlanBuilder(problem, insertion=insertion)
    q = ReadyQueue(b, policy.priority(problem))
    step = 0
    while not b.done:
        task = q.pop()
        node = policy.select_node(b, task)
        if on_decision is not None:
            on_decision(b, step, task, node)
        b.assign(task, node)
        q.update()
        step += 1
    return b


def _complete(
    builder: PlanBuilder, task: int, node: int, sch: Scheduler, priority: np.ndarray
) -> float:
    """Makespan [s] of placing ``task`` on ``node``, then completing the plan with ``sch``."""
    b = builder.copy()
    b.assign(task, node)
    q = ReadyQueue(b, priority)
    while not b.done:
        t = q.pop()
        b.assign(t, sch.select_node(b, t))
        q.update()
    return float(b.max_finish)


def record_episode(
    problem: Problem,
    policy_spec: str,
    rng: np.random.Generator,
    *,
    insertion: bool = True,
    branch_prob: float = 0.0,
    branch_k: int = 3,
    branch_random: int = 2,
    continuation: str = "heft",
    pf: ProblemFeatures | None = None,
    policy: Scheduler | None = None,
) -> tuple[EpisodeRecords, float]:
    """Plan ``problem`` with a policy and record every decision.

    Args:
        problem: The workflow on its cluster.
        policy_spec: Policy spec (see :mod:`teacher.policies`), recorded as the main run's
            continuation policy.
        rng: Source of the policy's seed and of the branch choices.
        insertion: Insertion policy of the plan builder.
        branch_prob: Probability that a decision is branched (see the module docstring).
        branch_k: Earliest-finish nodes tried at a branched decision.
        branch_random: Uniformly random other feasible nodes tried there.
        continuation: Deterministic policy completing the branches.
        pf: Static features of ``problem`` (computed if not given).
        policy: The scheduler of ``policy_spec``, if already made (it is re-seeded).

    Returns:
        ``(records, makespan)``: the episode's records (main run first, then branches) and the
        main run's makespan [s].
    """
    pf = pf or ProblemFeatures(problem)
    seed = int(rng.integers(2**63))
    if policy is None:
        policy = make_policy(policy_spec, seed=seed)
    else:
        policy.reset(seed)
    policy.begin(problem)
    tracker = FeatureTracker(pf)
    tr = _Trace()
    names = (policy_spec, continuation)  # continuation slots: 0 = the run's policy, 1 = branches
    same = policy_spec == continuation
    cont_sched = make_policy(continuation)
    cont_sched.begin(problem)
    cont_prio = task_priority(problem, cont_sched.task_order)
    expert = PilotExpert(k=branch_k, base=cont_sched)
    pilot_scores = isinstance(policy, PilotScheduler) and policy.base_name == continuation
    branches: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray, float, int]] = []

    def record(b: PlanBuilder, step: int, task: int, node: int) -> None:
        d = tracker.decision(b, task)
        key = descriptor(pf, d)
        tr.step.append(step)
        tr.task.append(task)
        tr.action.append(node)
        tr.state.append(d.state)
        tr.action_features.append(d.actions[node])
        tr.keys.append(key)
        if branch_prob <= 0 or rng.random() >= branch_prob:
            return
        if pilot_scores:
            assert isinstance(policy, PilotScheduler) and policy.last_scores is not None
            scores = policy.last_scores.copy()
        else:
            scores = expert.scores(b, task, cont_prio)
        feasible = np.flatnonzero(d.feasible)
        untried = feasible[~np.isfinite(scores[feasible])]
        extra = [node] if not np.isfinite(scores[node]) else []
        if untried.size and branch_random > 0:  # coverage of every kind of choice
            pick = rng.choice(untried, min(branch_random, untried.size), replace=False)
            extra += [int(x) for x in pick.tolist()]
        for n in dict.fromkeys(extra):
            scores[n] = _complete(b, task, n, cont_sched, cont_prio)
        for n in np.flatnonzero(np.isfinite(scores)).tolist():
            if same and n == node:
                continue  # the main run itself
            branches.append((step, task, d.state, d.actions[n], key, scores[n], n))

    builder = _plan(problem, policy, insertion, on_decision=record)
    makespan = float(builder.max_finish)
    n_main = len(tr.step)
    tr.target = [makespan / pf.scale] * n_main
    tr.branch = [False] * n_main
    tr.cont = [0] * n_main
    for step, task, state, act, key, span, alt in branches:
        tr.step.append(step)
        tr.task.append(task)
        tr.action.append(alt)
        tr.state.append(state)
        tr.action_features.append(act)
        tr.keys.append(key)
        tr.target.append(float(span) / pf.scale)
        tr.branch.append(True)
        tr.cont.append(1)
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
        cont=np.asarray(tr.cont, dtype=np.int32),
        cont_names=names,
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


def _applies(config: BuildConfig, spec: str, sch: Scheduler, problem: Problem) -> bool:
    """Whether policy ``spec`` can plan ``problem`` (CP-SAT: small instances; a checkpoint: at
    most its ``max_nodes``)."""
    name = parse_policy(spec).name
    if name == "cpsat":
        return (
            problem.n_tasks <= config.cpsat_max_tasks and problem.n_nodes <= config.cpsat_max_nodes
        )
    limit = getattr(getattr(sch, "base", sch), "max_nodes", None)
    return limit is None or problem.n_nodes <= int(limit)


def _make(config: BuildConfig, spec: str) -> Scheduler:
    if parse_policy(spec).name == "cpsat":
        return make_policy(
            spec,
            seed=0,
            time_limit=max(10.0 * config.cpsat_time, 5.0),  # [s] a backstop only
            deterministic_time=config.cpsat_time,
            max_tasks=config.cpsat_max_tasks,
            max_nodes=config.cpsat_max_nodes,
        )
    return make_policy(spec, seed=0)


def _build_range(config: BuildConfig, start: int, stop: int) -> KnowledgeBase:
    sampler = _sampler(config.workload)
    clusters = _clusters(config.clusters)
    specs = list(dict.fromkeys((*config.policies, *config.always)))
    made = {spec: _make(config, spec) for spec in specs}  # checkpoints load once per process
    drawn_from = [s for s in config.policies if s not in config.always]
    heft = make_policy("heft")
    kb = KnowledgeBase(DESCRIPTOR_DIM)
    rows: list[tuple[str, float]] = []  # (policy, makespan / HEFT's on the instance)
    for i in range(start, stop):
        rng = np.random.default_rng([config.seed, i])
        cluster = clusters[int(rng.integers(len(clusters)))]
        wf = sampler.sample(rng, cluster)
        problem = Problem(wf, cluster)
        pf = ProblemFeatures(problem)
        ok = [s for s in drawn_from if _applies(config, s, made[s], problem)]
        n_draw = min(config.policies_per_instance, len(ok))
        chosen = [ok[j] for j in sorted(rng.choice(len(ok), n_draw, replace=False).tolist())]
        chosen += [s for s in config.always if _applies(config, s, made[s], problem)]
        instance = instance_id(wf)
        heft_span = float(_plan(problem, heft, config.insertion).max_finish)  # [s]
        for spec in chosen:
            records, makespan = record_episode(
                problem,
                spec,
                np.random.default_rng([config.seed, i, specs.index(spec)]),
                insertion=config.insertion,
                branch_prob=config.branch_prob,
                branch_k=config.branch_k,
                branch_random=config.branch_random,
                continuation=config.continuation,
                pf=pf,
                policy=made[spec],
            )
            kb.add_episode(pf, records, makespan=makespan, policy=spec, instance=instance)
            rows.append((spec, makespan / heft_span))
    kb.meta = {"experience_rows": rows}
    return kb


def experience_summary(rows: Sequence[tuple[str, float]]) -> dict[str, dict[str, float]]:
    """Per policy: its runs, their mean makespan ratio to HEFT on the same instance, and the
    shares of runs strictly better / worse than HEFT (relative tolerance 1e-9): how much of the
    base knows more than HEFT.

    Args:
        rows: ``(policy spec, makespan / HEFT's makespan)`` per run.
    """
    by: dict[str, list[float]] = {}
    for spec, ratio in rows:
        by.setdefault(str(spec), []).append(float(ratio))
    out: dict[str, dict[str, float]] = {}
    for spec in sorted(by, key=lambda k: float(np.mean(by[k]))):
        r = np.asarray(by[spec])
        out[spec] = {
            "runs": int(r.size),
            "ratio_to_heft": float(r.mean()),
            "better_than_heft": float((r < 1.0 - 1e-9).mean()),
            "worse_than_heft": float((r > 1.0 + 1e-9).mean()),
        }
    return out


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
    for spec in dict.fromkeys((*config.policies, *config.always)):
        _make(config, spec)  # a bad spec or checkpoint fails here, before any worker starts
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
        with process_pool(config.workers) as pool:
            futures = [pool.submit(_build_range, config, s, e) for s, e in bounds]
            for (_, e), fut in zip(bounds, futures, strict=True):
                parts.append(fut.result())
                if progress:
                    progress(f"instances {e}/{n}, records {sum(len(p) for p in parts)}")
    rows = [row for p in parts for row in p.meta.pop("experience_rows", [])]
    kb = concat(parts) if parts else KnowledgeBase(DESCRIPTOR_DIM)
    cfg = asdict(config)
    kb.meta = {
        "build": {k: v for k, v in cfg.items() if k != "workload"}
        | {"workload": repr(config.workload)},
        "build_seconds": time.perf_counter() - t0,
        "experience": experience_summary(rows),
    }
    return kb
