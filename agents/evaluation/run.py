"""Running schedulers: one episode (:func:`run_episode`), and a whole grid (:func:`run_grid`).

Every scheduler plans each instance with :meth:`~wass_env.scheduling.Scheduler.plan`; the plan
is executed by :func:`wass_env.sim.execute` with runtime noise drawn from a generator seeded by
the episode seed, so on one episode all schedulers face the same actual runtimes. The schedulers
are re-seeded with the episode seed too: the same grid gives the same rows.

CP-SAT runs only on small instances (``cpsat.max_tasks`` tasks and ``cpsat.max_nodes`` nodes at
most): elsewhere it has no row. Its status (``OPTIMAL``/``FEASIBLE``/``HEFT``), whether the plan
is proven optimal for the simulator's (not rounded) durations, and its lower bound are copied
to every row of the episode (``cpsat_status``, ``cpsat_optimal``, ``cpsat_lower_bound``).

Rows (``episodes.csv``): ``workload``, ``cluster`` (the grid's labels), ``seed``, ``episode``,
``scheduler``, ``insertion``, ``workflow``, ``family``, ``cluster_name``, ``n_tasks``,
``n_nodes``, ``ccr``, ``planned_makespan`` and the realized schedule's metrics
(:func:`wass_env.sim.metrics.schedule_metrics`: ``makespan`` [s], ``mean_wait`` [s],
``utilization``, ``cross_node_bytes``, ``locality_hit_rate``, ``slr``, ``lower_bound`` [s],
``ratio_to_lower_bound``), ``fork_join_bound`` [s] (the problem's communication-aware bound,
:meth:`~wass_env.sim.problem.Problem.fork_join_bound`, for its own durations), the CP-SAT
columns, and the paired ``ratio_to_<x>`` of the reference,
of every comparison scheduler and of CP-SAT (NaN where that scheduler has no row).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.evaluation.config import CPSATConfig, EvaluationError
from agents.evaluation.grid import Grid, cells, check_grid
from agents.evaluation.instances import cell_problems, cluster_choices
from agents.evaluation.specs import SchedulerEntry
from agents.evaluation.stats import add_paired_ratios
from wass_env.scheduling import Scheduler
from wass_env.sim.execute import realize
from wass_env.sim.metrics import schedule_metrics
from wass_env.sim.plan import Plan, Schedule
from wass_env.sim.problem import Problem
from wass_env.workers import process_pool

__all__ = ["Episode", "GridResult", "run_episode", "run_grid", "worker_start_method"]


@dataclass
class Episode:
    """One scheduler on one instance.

    Attributes:
        plan: The plan.
        realized: The executed schedule (``plan`` itself without noise on a contention-free
            network, see :func:`wass_env.sim.execute.realize`).
        metrics: :func:`~wass_env.sim.metrics.schedule_metrics` of ``realized``.
        plan_seconds: Wall time of planning [s].
    """

    plan: Plan
    realized: Schedule
    metrics: dict[str, Any]
    plan_seconds: float


def run_episode(
    scheduler: Scheduler,
    problem: Problem,
    *,
    seed: int,
    noise: float = 0.0,
    insertion: bool = True,
) -> Episode:
    """Plan ``problem`` with ``scheduler`` (re-seeded with ``seed``) and execute the plan.

    Args:
        scheduler: The scheduler.
        problem: The instance.
        seed: Episode seed: seeds the scheduler and the runtime noise.
        noise: Sigma of the mean-one lognormal runtime noise.
        insertion: Insertion policy of the plan builder.
    """
    scheduler.reset(seed)
    t0 = time.perf_counter()
    plan = scheduler.plan(problem, insertion=insertion)
    seconds = time.perf_counter() - t0
    # The plan itself when execution reproduces it (no noise, a contention-free network).
    realized = realize(plan, noise=noise, rng=np.random.default_rng(seed))
    return Episode(plan, realized, schedule_metrics(realized).as_dict(), seconds)


@dataclass
class GridResult:
    """What :func:`run_grid` returns.

    Attributes:
        rows: One dict per scheduler x episode (the ``episodes.csv`` rows).
        timings: Planning wall time per row (``timings.csv``; not deterministic).
        schedules: For the kept episode, scheduler -> (problem, realized schedule).
        cells: ``(workload, cluster)`` labels in grid order.
        names: Scheduler names in table order.
    """

    rows: list[dict[str, Any]]
    timings: list[dict[str, Any]]
    schedules: dict[str, tuple[Problem, Schedule]]
    cells: list[tuple[str, str]]
    names: list[str]


def _cpsat_applies(cp: CPSATConfig, problem: Problem) -> bool:
    return problem.n_tasks <= cp.max_tasks and problem.n_nodes <= cp.max_nodes


def _proven_optimal(result: Any) -> bool:
    """Whether a CP-SAT plan is proven optimal for the simulator's own durations.

    Either the solver proved optimality on an exact (unrounded) integer model, or the plan's
    makespan meets a valid lower bound (which also covers rounded models).
    """
    tol = 1e-9 * max(abs(result.makespan), 1.0)  # [s] float noise
    return bool(result.optimal or result.makespan <= result.lower_bound + tol)


def _build(entry: SchedulerEntry, cp: CPSATConfig) -> Scheduler:
    defaults: dict[str, Any] = {}
    if entry.registered == "cpsat":
        defaults = {
            "time_limit": cp.time_limit,
            "workers": cp.workers,
            "deterministic_time": cp.deterministic_time,
            "max_tasks": cp.max_tasks,
            "max_nodes": cp.max_nodes,
        }
    return entry.build(**defaults)


def _max_nodes(entry: SchedulerEntry, sch: Scheduler) -> int | None:
    """The largest cluster a scheduler loaded from a checkpoint acts on: its ``max_nodes``, or
    the size of its SB3 model's action space (None for other schedulers: any size)."""
    if entry.checkpoint is None:
        return None
    n = getattr(sch, "max_nodes", None)
    if isinstance(n, int):
        return n
    model = getattr(sch, "model", None)
    space = getattr(model, "action_space", None)
    return int(space.n) if space is not None and hasattr(space, "n") else None


def _insertion(sch: Scheduler, default: bool) -> bool:
    """The insertion policy ``sch`` plans with: a learned scheduler's training env's (its own
    ``env_kwargs`` or its agent's), else ``default``."""
    for owner in (sch, getattr(sch, "agent", None)):
        env_kwargs = getattr(owner, "env_kwargs", None)
        if isinstance(env_kwargs, dict) and "insertion" in env_kwargs:
            return bool(env_kwargs["insertion"])
    return default


@dataclass
class _CellJob:
    workload: str
    cluster: str
    problems: list[tuple[int, Problem]]
    entries: list[SchedulerEntry]
    noise: float
    insertion: bool
    cpsat: CPSATConfig
    keep_seed: int | None


def _run_cell(
    job: _CellJob, schedulers: dict[int, Scheduler] | None = None, bar: Any = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, tuple[Problem, Schedule]]]:
    """Rows, timings and kept schedules of one cell (in a worker process or in place)."""
    if schedulers is None:
        schedulers = {i: _build(e, job.cpsat) for i, e in enumerate(job.entries)}
    wl, cl = job.workload, job.cluster
    rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    kept: dict[str, tuple[Problem, Schedule]] = {}
    for episode, (seed, problem) in enumerate(job.problems):
        if bar is not None:
            bar.set_postfix_str(f"{wl} x {cl} seed {seed}", refresh=False)
        ccr = problem.ccr()
        episode_rows = []
        cpsat_info: dict[str, Any] = {
            "cpsat_status": "",
            "cpsat_optimal": False,
            "cpsat_lower_bound": math.nan,
        }
        bounds = {"fork_join_bound": problem.fork_join_bound()}
        for i, entry in enumerate(job.entries):
            sch = schedulers[i]
            is_cpsat = getattr(sch, "name", "") == "cpsat"
            if not entry.runs_on(wl) or (is_cpsat and not _cpsat_applies(job.cpsat, problem)):
                continue
            insertion = _insertion(sch, job.insertion)
            ep = run_episode(sch, problem, seed=seed, noise=job.noise, insertion=insertion)
            if is_cpsat:
                res = sch.last_result  # type: ignore[attr-defined]
                cpsat_info = {
                    "cpsat_status": res.status,
                    "cpsat_optimal": _proven_optimal(res),
                    "cpsat_lower_bound": float(res.lower_bound),
                }
            timings.append(
                {
                    "workload": wl,
                    "cluster": cl,
                    "seed": seed,
                    "scheduler": entry.name,
                    "plan_seconds": ep.plan_seconds,
                }
            )
            row: dict[str, Any] = {
                "workload": wl,
                "cluster": cl,
                "seed": seed,
                "episode": episode,
                "scheduler": entry.name,
                "insertion": insertion,
                "workflow": problem.workflow.name,
                "family": problem.workflow.family,
                "cluster_name": problem.cluster.name,
                "n_tasks": problem.n_tasks,
                "n_nodes": problem.n_nodes,
                "ccr": ccr,
                "planned_makespan": ep.plan.makespan,
                **ep.metrics,
            }
            episode_rows.append(row)
            if seed == job.keep_seed:
                kept[entry.name] = (problem, ep.realized)
            if bar is not None:
                bar.update()
        for r in episode_rows:
            r.update(bounds)
            r.update(cpsat_info)
        rows.extend(episode_rows)
    return rows, timings, kept


def _count_runs(job: _CellJob, schedulers: dict[int, Scheduler]) -> int:
    n = 0
    for _seed, p in job.problems:
        for i, e in enumerate(job.entries):
            cp = getattr(schedulers[i], "name", "") == "cpsat"
            n += e.runs_on(job.workload) and (not cp or _cpsat_applies(job.cpsat, p))
    return n


def _one_thread_worker() -> None:
    """Initialise a worker of :func:`run_grid`: one OpenMP / torch thread, since the workers
    already fill the cores (oversubscribed thread pools spin and slow everyone down)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def worker_start_method(start_method: str | None = None) -> str | None:
    """How :func:`run_grid`'s worker processes start: ``start_method`` if given, else
    ``"spawn"`` once torch or FAISS is loaded in this process (their OpenMP thread pools do not
    survive a fork), else None (the platform's default)."""
    if start_method is None and ("torch" in sys.modules or "faiss" in sys.modules):
        return "spawn"
    return start_method


def run_grid(
    grid: Grid,
    *,
    progress: bool = False,
    keep: tuple[str, str, int] | None = None,
    workers: int = 1,
    start_method: str | None = None,
) -> GridResult:
    """Run every scheduler on every episode of ``grid``.

    Args:
        grid: The grid.
        progress: Show a tqdm progress bar (on stderr).
        keep: ``(workload, cluster, seed)`` of the episode whose realized schedules are returned
            (for Gantt charts); None keeps none.
        workers: Processes that run cells in parallel; the rows do not depend on it. Schedulers
            given as instances (not names or specs) need ``workers=1``.
        start_method: How worker processes start (``"spawn"``, ``"fork"``, ``"forkserver"``;
            None: ``"spawn"`` once torch or FAISS is loaded in this process (building a
            checkpoint's scheduler loads torch), else the platform's default). A forked child
            of a process with an OpenMP thread pool (FAISS, torch) can hang in its first
            parallel region.

    Returns:
        The rows (see the module docstring for the columns), timings and kept schedules.

    Raises:
        EvaluationError: on bad input (unknown scheduler, missing checkpoint, a workload that
            does not fit a cluster, a policy too small for a cluster, ...), before any
            scheduler runs.
    """
    entries = check_grid(grid)
    if workers < 1:
        raise EvaluationError("workers", "must be >= 1", workers)
    if workers > 1 and any(isinstance(e.spec, Scheduler) for e in entries):
        raise EvaluationError("workers", "schedulers given as instances need workers=1", workers)
    clusters = {label: cluster_choices(label, spec) for label, spec in grid.clusters.items()}
    # Build every scheduler and every instance first: all input errors surface here.
    schedulers = {i: _build(e, grid.cpsat) for i, e in enumerate(entries)}
    jobs = []
    for wl, cl in cells(grid):
        problems = cell_problems(wl, grid.workloads[wl], cl, clusters[cl], grid.seeds)
        for i, e in enumerate(entries):
            limit = _max_nodes(e, schedulers[i])
            big = max(p.n_nodes for _s, p in problems)
            if e.runs_on(wl) and limit is not None and big > limit:
                raise EvaluationError(
                    e.field,
                    f"the policy acts on at most {limit} nodes; clusters.{cl} has {big}",
                    e.checkpoint or e.name,
                )
        keep_seed = keep[2] if keep is not None and keep[:2] == (wl, cl) else None
        jobs.append(
            _CellJob(wl, cl, problems, entries, grid.noise, grid.insertion, grid.cpsat, keep_seed)
        )
    from tqdm import tqdm

    total = sum(_count_runs(j, schedulers) for j in jobs)
    bar = tqdm(total=total, desc="evaluate", unit="run", disable=not progress, file=sys.stderr)
    results: list[Any] = []
    try:
        if workers == 1:
            results = [_run_cell(j, schedulers, bar) for j in jobs]
        else:
            method = worker_start_method(start_method)
            with process_pool(workers, method, initializer=_one_thread_worker) as pool:
                futures = [pool.submit(_run_cell, j) for j in jobs]
                for j, fut in zip(jobs, futures, strict=True):
                    results.append(fut.result())
                    bar.update(_count_runs(j, schedulers))
    finally:
        bar.close()
    rows = [r for res in results for r in res[0]]
    timings = [t for res in results for t in res[1]]
    kept = {k: v for res in results for k, v in res[2].items()}
    names = list(dict.fromkeys(e.name for e in entries))
    _add_ratios(rows, names, grid.reference, grid.compare)
    return GridResult(rows, timings, kept, list(cells(grid)), names)


def _add_ratios(
    rows: list[dict[str, Any]], names: Sequence[str], reference: str, compare: Sequence[str]
) -> None:
    for other in dict.fromkeys([reference, *compare, "cpsat"]):
        if other == reference or other in names or other == "cpsat":
            add_paired_ratios(rows, other)
