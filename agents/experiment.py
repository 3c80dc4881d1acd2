"""The evaluation grid behind ``scripts/evaluate.py``: workloads x clusters x seeds x schedulers.

One *cell* is a (workload, cluster) pair; one *episode* is a cell and a seed. For each episode
the workflow and cluster are drawn exactly as ``WassSchedEnv(...).reset(seed=seed)`` draws them
(:func:`agents.evaluation.episode_problems`), and every scheduler plans that same problem; the
plans are executed by the same simulator with the same runtime noise (seeded by the episode
seed). So every comparison is paired: ratios to HEFT and to CP-SAT divide makespans of one
episode before averaging.

CP-SAT runs only on small instances (``cpsat.max_tasks`` tasks and ``cpsat.max_nodes`` nodes at
most): elsewhere it has no row. Its status (``OPTIMAL``/``FEASIBLE``/``HEFT``), whether the plan
is proven optimal for the simulator's (not rounded) durations, and its lower bound are copied
to every row of the episode (``cpsat_status``, ``cpsat_optimal``, ``cpsat_lower_bound``).

A trained MaskablePPO checkpoint (``agents.ppo.MaskablePPOAgent.save``) joins the grid as one
more scheduler; it plans with the insertion policy and task order it was trained with (read from
the checkpoint's sidecar JSON).

Outputs (:func:`run_evaluation`), all written atomically:

* ``episodes.csv``: one row per scheduler x episode, deterministic (same config -> same bytes
  whenever every CP-SAT solve ends before its wall-clock limit, or ``cpsat.deterministic_time``
  is set). Columns: ``workload``, ``cluster`` (the grid's labels), ``seed``, ``episode``,
  ``scheduler``, ``insertion``, ``workflow``, ``family``, ``cluster_name``, ``n_tasks``,
  ``n_nodes``, ``ccr``, ``planned_makespan`` and the realized schedule's metrics
  (:func:`wass_env.sim.metrics.schedule_metrics`: ``makespan`` [s], ``mean_wait`` [s],
  ``utilization``, ``cross_node_bytes``, ``locality_hit_rate``, ``slr``, ``lower_bound`` [s],
  ``ratio_to_lower_bound``), the episode's ``cpsat_status``, ``cpsat_optimal`` and
  ``cpsat_lower_bound`` [s], and the paired ``ratio_to_heft`` and ``ratio_to_cpsat`` (NaN where
  CP-SAT did not run);
* ``timings.csv``: planning wall time per row [s] (kept apart because it is not deterministic);
* ``summary.csv`` and ``results.md``: mean and 95% CI per workload x cluster x scheduler;
* ``makespan.png``, ``ratio_to_heft.png`` and ``gantt/<scheduler>.png`` (one instance).

:func:`run_evaluation` takes a composed ``conf/evaluate.yaml`` config; :func:`run_grid` is the
same without Hydra.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.evaluation import (
    add_paired_ratios,
    ci95,
    episode_problems,
    format_mean_ci,
    markdown_table,
    run_episode_schedule,
    write_csv,
    write_text,
)
from agents.registry import SCHEDULERS
from wass_env.cli import run_cli
from wass_env.errors import WassError
from wass_env.io import atomic_path
from wass_env.scheduling import Scheduler
from wass_env.sim.cluster import Cluster, ClusterError, cluster_from_spec
from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import WorkflowError
from wass_env.workloads.errors import WorkloadError

__all__ = [
    "DEFAULT_SCHEDULERS",
    "EPISODE_KEY",
    "CPSATConfig",
    "EvaluateConfig",
    "EvaluationError",
    "GanttConfig",
    "Grid",
    "GridResult",
    "check_config",
    "grid_from_config",
    "grid_markdown",
    "main",
    "plot_gantts",
    "plot_makespans",
    "register_configs",
    "run_evaluation",
    "run_grid",
    "summarize_grid",
    "write_csv",
    "write_text",
]

#: Every baseline of :mod:`agents.registry`, in table order.
DEFAULT_SCHEDULERS: tuple[str, ...] = tuple(SCHEDULERS)  # registry order is table order
#: Columns that identify an episode in the rows.
EPISODE_KEY: tuple[str, ...] = ("workload", "cluster", "seed")
GB = 1e9  # [bytes] cross-node volume is reported in GB


# ---------------------------------------------------------------------------------------------
# configuration


class EvaluationError(WassError):
    """Bad evaluation input: the message names the config field and its value.

    Attributes:
        field: The config field (``"checkpoint"``, ``"schedulers[2]"``, ``"workloads.chain"``).
        value: The offending value (``None`` when the problem is not one value).
        problem: What is wrong.
    """

    def __init__(self, field: str, problem: str, value: Any = None) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        head = field if value is None else f"{field}={value!r}"
        super().__init__(f"{head}: {problem}")


@dataclass
class CPSATConfig:
    """CP-SAT, run on small instances only (see :class:`agents.cpsat.CPSATScheduler`)."""

    time_limit: float = 10.0  # [s] wall-clock limit per solve
    deterministic_time: float | None = None  # CP-SAT work limit: reproducible stops
    workers: int = 1
    max_tasks: int = 40  # larger instances get no CP-SAT row
    max_nodes: int = 8


@dataclass
class GanttConfig:
    """Which episode gets a Gantt chart per scheduler."""

    enabled: bool = True
    workload: str | None = None  # default: the first workload
    cluster: str | None = None  # default: the first cluster
    episode: int = 0  # index into the seeds


@dataclass
class EvaluateConfig:
    """``scripts/evaluate.py`` (``conf/evaluate.yaml``; experiments in ``conf/experiment/``)."""

    name: str = "custom"  # experiment name, used in titles
    description: str = ""
    seed: int = 1000  # episode seeds: seed, seed + 1, ..., seed + episodes - 1
    episodes: int = 5
    workloads: dict[str, Any] = field(default_factory=dict)  # label -> workload spec
    clusters: dict[str, Any] = field(default_factory=dict)  # label -> cluster spec
    schedulers: list[str] = field(default_factory=lambda: list(DEFAULT_SCHEDULERS))
    reference: str = "heft"  # makespan ratios are paired against this scheduler
    checkpoint: str | None = None  # a MaskablePPO model.zip
    checkpoint_name: str = "maskable_ppo"  # its name in the tables
    checkpoints: dict[str, str] = field(default_factory=dict)  # more: name -> model.zip
    noise: float = 0.0  # sigma of the lognormal runtime noise at execution
    insertion: bool = True  # insertion policy of the baselines' plan builder
    cpsat: CPSATConfig = field(default_factory=CPSATConfig)
    gantt: GanttConfig = field(default_factory=GanttConfig)
    plots: bool = True
    progress: bool = True


def register_configs() -> None:
    """Register the ``evaluate_schema`` structured config with Hydra (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)


@dataclass
class Grid:
    """A fully specified evaluation grid (plain Python; no Hydra needed).

    Attributes:
        workloads: Label -> workload spec (anything :func:`wass_env.workloads.make_sampler`
            takes, including workflows).
        clusters: Label -> cluster spec (anything
            :func:`~wass_env.sim.cluster.cluster_from_spec` takes).
        seeds: Episode seeds, the same for every cell.
        schedulers: Registry names (:data:`agents.registry.SCHEDULERS`), in table order.
        reference: Scheduler the ``ratio_to_<reference>`` column divides by.
        checkpoints: Name -> MaskablePPO checkpoint path (each becomes one more scheduler).
        noise: Runtime noise sigma at execution.
        insertion: Insertion policy of the baselines' plans.
        cpsat: CP-SAT settings and size limits.
        checkpoint_fields: Checkpoint name -> the config field it came from, for error messages
            (default ``checkpoints.<name>``).
    """

    workloads: dict[str, Any]
    clusters: dict[str, Any]
    seeds: list[int]
    schedulers: list[str] = field(default_factory=lambda: list(DEFAULT_SCHEDULERS))
    reference: str = "heft"
    checkpoints: dict[str, str] = field(default_factory=dict)
    noise: float = 0.0
    insertion: bool = True
    cpsat: CPSATConfig = field(default_factory=CPSATConfig)
    checkpoint_fields: dict[str, str] = field(default_factory=dict)

    def checkpoint_field(self, name: str) -> str:
        """The config field checkpoint ``name`` came from."""
        return self.checkpoint_fields.get(name, f"checkpoints.{name}")

    @property
    def names(self) -> list[str]:
        """Every scheduler column, in table order (checkpoints last)."""
        return [*self.schedulers, *self.checkpoints]


@dataclass
class GridResult:
    """What :func:`run_grid` returns.

    Attributes:
        rows: One dict per scheduler x episode (the ``episodes.csv`` rows).
        timings: Planning wall time per row (``timings.csv``).
        schedules: For the kept episode, scheduler -> (problem, realized schedule).
        cells: ``(workload, cluster)`` labels in grid order.
        names: Scheduler names in table order.
    """

    rows: list[dict[str, Any]]
    timings: list[dict[str, Any]]
    schedules: dict[str, tuple[Problem, Schedule]]
    cells: list[tuple[str, str]]
    names: list[str]


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


def grid_from_config(cfg: DictConfig) -> Grid:
    """The :class:`Grid` a composed ``evaluate`` config describes.

    Raises:
        EvaluationError: on a bad field (named, with its value).
    """
    episodes = int(cfg.episodes)
    if episodes < 1:
        raise EvaluationError("episodes", "must be >= 1", episodes)
    checkpoints = {str(k): str(v) for k, v in dict(_plain(cfg.checkpoints) or {}).items()}
    if cfg.checkpoint is not None:
        name = str(cfg.checkpoint_name)
        if name in checkpoints:
            raise EvaluationError("checkpoint_name", "also a key of checkpoints", name)
        checkpoints = {name: str(cfg.checkpoint), **checkpoints}
    fields = {} if cfg.checkpoint is None else {str(cfg.checkpoint_name): "checkpoint"}
    cp = cfg.cpsat
    return Grid(
        workloads=dict(_plain(cfg.workloads) or {}),
        clusters=dict(_plain(cfg.clusters) or {}),
        seeds=[int(cfg.seed) + i for i in range(episodes)],
        schedulers=[str(s) for s in cfg.schedulers],
        reference=str(cfg.reference),
        checkpoints=checkpoints,
        noise=float(cfg.noise),
        insertion=bool(cfg.insertion),
        cpsat=CPSATConfig(
            time_limit=float(cp.time_limit),
            deterministic_time=None
            if cp.deterministic_time is None
            else float(cp.deterministic_time),
            workers=int(cp.workers),
            max_tasks=int(cp.max_tasks),
            max_nodes=int(cp.max_nodes),
        ),
        checkpoint_fields=fields,
    )


def check_config(cfg: DictConfig) -> None:
    """Check a composed ``evaluate`` config without running anything (what the command line
    does before it starts).

    Raises:
        EvaluationError: on a bad field (named, with its value).
    """
    _check_names(grid_from_config(cfg))


# ---------------------------------------------------------------------------------------------
# building the grid


def _check_names(grid: Grid) -> None:

    if not grid.workloads:
        raise EvaluationError("workloads", "no workload to evaluate on (choose an experiment)")
    if not grid.clusters:
        raise EvaluationError("clusters", "no cluster to evaluate on (choose an experiment)")
    if not grid.seeds:
        raise EvaluationError("episodes", "no seed to evaluate on", len(grid.seeds))
    if not (math.isfinite(grid.noise) and grid.noise >= 0):
        raise EvaluationError("noise", "must be a finite number >= 0", grid.noise)
    seen: set[str] = set()
    for i, name in enumerate(grid.schedulers):
        if name not in SCHEDULERS:
            raise EvaluationError(
                f"schedulers[{i}]",
                f"unknown scheduler; valid names: {', '.join(sorted(SCHEDULERS))}",
                name,
            )
        if name in seen:
            raise EvaluationError(f"schedulers[{i}]", "listed twice", name)
        seen.add(name)
    if grid.reference not in seen:
        raise EvaluationError(
            "reference", f"not among the schedulers {grid.schedulers}", grid.reference
        )
    for name, path in grid.checkpoints.items():
        what = grid.checkpoint_field(name)
        if name in seen:
            raise EvaluationError(what, f"its name {name!r} is also a baseline's name", path)
        if not Path(path).is_file():
            raise EvaluationError(what, f"no such file (relative to {Path.cwd()})", path)
    cp = grid.cpsat
    if not cp.time_limit > 0:
        raise EvaluationError("cpsat.time_limit", "must be > 0 [s]", cp.time_limit)
    if cp.deterministic_time is not None and not cp.deterministic_time > 0:
        raise EvaluationError("cpsat.deterministic_time", "must be > 0", cp.deterministic_time)
    if cp.workers < 1:
        raise EvaluationError("cpsat.workers", "must be >= 1", cp.workers)


def _build_clusters(grid: Grid) -> dict[str, Cluster]:
    out = {}
    for label, spec in grid.clusters.items():
        try:
            out[label] = cluster_from_spec(spec)
        except (ClusterError, TypeError, ValueError) as exc:
            raise EvaluationError(f"clusters.{label}", str(exc), spec) from None
    return out


def _workload_error(label: str, exc: WorkloadError) -> EvaluationError:
    sub = exc.field
    if sub == "workload" or sub.startswith(("workload.", "workload[")):
        sub = sub[len("workload") :]
    elif sub:
        sub = "." + sub
    where = f" ({exc.source})" if exc.source else ""
    return EvaluationError(f"workloads.{label}{sub}", exc.problem + where)


def _build_problems(
    grid: Grid, clusters: Mapping[str, Cluster]
) -> dict[tuple[str, str], list[Problem]]:
    """Every cell's problems, one per seed; all input errors surface here, before any run."""
    out: dict[tuple[str, str], list[Problem]] = {}
    for wl, spec in grid.workloads.items():
        for cl, cluster in clusters.items():
            try:
                out[wl, cl] = episode_problems({"workload": spec, "cluster": cluster}, grid.seeds)
            except WorkloadError as exc:
                err = _workload_error(wl, exc)
                if "fits on no node" in exc.problem:
                    err = EvaluationError(
                        f"workloads.{wl}", f"does not fit cluster {cl!r}: {exc.problem}"
                    )
                raise err from None
            except WorkflowError as exc:
                raise EvaluationError(
                    f"workloads.{wl}", f"does not fit cluster {cl!r}: {exc}"
                ) from None
    return out


def _load_checkpoints(grid: Grid, clusters: Mapping[str, Cluster]) -> dict[str, Scheduler]:
    if not grid.checkpoints:
        return {}
    from agents.ppo import MaskablePPOAgent

    out: dict[str, Scheduler] = {}
    for name, path in grid.checkpoints.items():
        what = grid.checkpoint_field(name)
        try:
            agent = MaskablePPOAgent.load(path)
        except Exception as exc:  # a corrupt or foreign file: report it as bad input
            raise EvaluationError(what, f"cannot load a MaskablePPO model: {exc}", path) from None
        assert agent.model is not None
        max_nodes = int(agent.model.action_space.n)  # type: ignore[attr-defined]
        for cl, cluster in clusters.items():
            if cluster.n_nodes > max_nodes:
                raise EvaluationError(
                    what,
                    f"the policy acts on at most {max_nodes} nodes; clusters.{cl} has "
                    f"{cluster.n_nodes}",
                    path,
                )
        out[name] = agent
    return out


def _make_schedulers(grid: Grid) -> dict[str, Scheduler]:
    from agents.registry import make_scheduler

    out: dict[str, Scheduler] = {}
    for name in grid.schedulers:
        if name == "cpsat":
            cp = grid.cpsat
            out[name] = make_scheduler(
                "cpsat",
                time_limit=cp.time_limit,
                workers=cp.workers,
                deterministic_time=cp.deterministic_time,
                max_tasks=cp.max_tasks,
                max_nodes=cp.max_nodes,
            )
        else:
            out[name] = make_scheduler(name)
    return out


def _cpsat_applies(cp: CPSATConfig, problem: Problem) -> bool:
    return problem.n_tasks <= cp.max_tasks and problem.n_nodes <= cp.max_nodes


def _proven_optimal(result: Any) -> bool:
    """Whether a CP-SAT plan is proven optimal for the simulator's own durations.

    Either the solver proved optimality on an exact (unrounded) integer model, or the plan's
    makespan meets a valid lower bound (which also covers rounded models).
    """
    tol = 1e-9 * max(abs(result.makespan), 1.0)  # [s] float noise
    return bool(result.optimal or result.makespan <= result.lower_bound + tol)


# ---------------------------------------------------------------------------------------------
# running the grid


def run_grid(
    grid: Grid,
    *,
    progress: bool = False,
    keep: tuple[str, str, int] | None = None,
) -> GridResult:
    """Run every scheduler on every episode of ``grid``.

    Args:
        grid: The grid.
        progress: Show a tqdm progress bar (on stderr).
        keep: ``(workload, cluster, seed)`` of the episode whose realized schedules are returned
            (for Gantt charts); None keeps none.

    Returns:
        The rows (see the module docstring for the columns), timings and kept schedules.

    Raises:
        EvaluationError: on bad input (unknown scheduler, missing checkpoint, a workload that
            does not fit a cluster, ...), before any scheduler runs.
    """
    _check_names(grid)
    clusters = _build_clusters(grid)
    problems = _build_problems(grid, clusters)
    schedulers = _make_schedulers(grid)
    agents = _load_checkpoints(grid, clusters)
    schedulers.update(agents)
    names = grid.names

    jobs = 0
    for cell_problems in problems.values():
        for p in cell_problems:
            jobs += sum(1 for n in names if n != "cpsat" or _cpsat_applies(grid.cpsat, p))
    from tqdm import tqdm

    bar = tqdm(total=jobs, desc="evaluate", unit="run", disable=not progress, file=sys.stderr)
    rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    kept: dict[str, tuple[Problem, Schedule]] = {}
    try:
        for (wl, cl), cell_problems in problems.items():
            for episode, (seed, problem) in enumerate(zip(grid.seeds, cell_problems, strict=True)):
                bar.set_postfix_str(f"{wl} x {cl} seed {seed}", refresh=False)
                ccr = problem.ccr()
                episode_rows = []
                cpsat_info: dict[str, Any] = {
                    "cpsat_status": "",
                    "cpsat_optimal": False,
                    "cpsat_lower_bound": math.nan,
                }
                for name in names:
                    sch = schedulers[name]
                    if name == "cpsat" and not _cpsat_applies(grid.cpsat, problem):
                        continue
                    insertion = grid.insertion
                    if name in agents:
                        insertion = bool(getattr(sch, "env_kwargs", {}).get("insertion", True))
                    row, _plan, realized = run_episode_schedule(
                        sch, problem, seed=seed, noise=grid.noise, insertion=insertion
                    )
                    if name == "cpsat":
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
                            "scheduler": name,
                            "plan_seconds": row.pop("plan_seconds"),
                        }
                    )
                    out = {
                        "workload": wl,
                        "cluster": cl,
                        "seed": seed,
                        "episode": episode,
                        "scheduler": name,
                        "insertion": insertion,
                        "workflow": row.pop("workflow"),
                        "family": row.pop("family"),
                        "cluster_name": row.pop("cluster"),
                        "n_tasks": row.pop("n_tasks"),
                        "n_nodes": row.pop("n_nodes"),
                        "ccr": ccr,
                    }
                    row.pop("scheduler")
                    row.pop("seed")
                    out.update(row)
                    episode_rows.append(out)
                    if keep == (wl, cl, seed):
                        kept[name] = (problem, realized)
                    bar.update()
                for r in episode_rows:
                    r.update(cpsat_info)
                rows.extend(episode_rows)
    finally:
        bar.close()
    add_paired_ratios(rows, grid.reference, episode=EPISODE_KEY)
    if grid.reference != "cpsat":
        add_paired_ratios(rows, "cpsat", episode=EPISODE_KEY)
    return GridResult(rows, timings, kept, list(problems), names)


# ---------------------------------------------------------------------------------------------
# summaries and tables


def _finite(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def summarize_grid(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], reference: str = "heft"
) -> list[dict[str, Any]]:
    """Mean and 95% CI per workload x cluster x scheduler, in grid order.

    Each entry has ``workload``, ``cluster``, ``scheduler``, ``episodes``; for every metric
    ``m`` of ``makespan``, ``ratio_to_<reference>``, ``ratio_to_lower_bound``,
    ``ratio_to_cpsat``, ``mean_wait``, ``utilization`` and ``cross_node_bytes``: ``m`` (mean),
    ``m_ci95`` (half-width) and ``m_n`` (episodes with a finite value: ``ratio_to_cpsat`` only
    exists where CP-SAT ran). CP-SAT entries also count its statuses.
    """
    metrics = (
        "makespan",
        f"ratio_to_{reference}",
        "ratio_to_lower_bound",
        "ratio_to_cpsat",
        "mean_wait",
        "utilization",
        "cross_node_bytes",
    )
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    cells: list[tuple[str, str]] = []
    for r in rows:
        cell = (r["workload"], r["cluster"])
        if cell not in cells:
            cells.append(cell)
        groups.setdefault((*cell, r["scheduler"]), []).append(r)
    out = []
    for wl, cl in cells:
        for name in names:
            rs = groups.get((wl, cl, name))
            if not rs:
                continue
            entry: dict[str, Any] = {
                "workload": wl,
                "cluster": cl,
                "scheduler": name,
                "episodes": len(rs),
            }
            for m in metrics:
                vals = _finite(r.get(m) for r in rs)
                entry[f"{m}_n"] = len(vals)
                entry[m], entry[f"{m}_ci95"] = ci95(vals) if vals else (math.nan, math.nan)
            if name == "cpsat":
                statuses = [str(r["cpsat_status"]) for r in rs]
                for s in ("OPTIMAL", "FEASIBLE", "HEFT"):
                    entry[f"cpsat_{s.lower()}"] = statuses.count(s)
                entry["cpsat_proven_optimal"] = sum(bool(r["cpsat_optimal"]) for r in rs)
                entry["cpsat_lower_bound"] = float(np.mean([r["cpsat_lower_bound"] for r in rs]))
                entry["cpsat_gap"] = float(
                    np.mean([r["makespan"] / r["cpsat_lower_bound"] - 1.0 for r in rs])
                )
            out.append(entry)
    return out


def _cell(entry: Mapping[str, Any], m: str, scale: float = 1.0, decimals: int | None = None) -> str:
    """``mean ± half`` of metric ``m`` (``decimals`` fixed, else 4 significant digits)."""
    n = entry.get(f"{m}_n", 0)
    if not n:
        return "-"
    mean, half = entry[m] / scale, entry[f"{m}_ci95"] / scale
    if half <= 1e-12 * abs(mean):  # identical values: the CI is 0, not rounding noise
        half = 0.0
    if decimals is None:
        text = format_mean_ci(mean, half)
    else:
        text = f"{mean:.{decimals}f} ± {half:.{decimals}f}"
    if n < entry["episodes"]:
        text += f" ({n}/{entry['episodes']})"
    return text


def _cpsat_note(entry: Mapping[str, Any]) -> str:
    parts = [
        f"{entry[f'cpsat_{s}']} {s.upper()}"
        for s in ("optimal", "feasible", "heft")
        if entry[f"cpsat_{s}"]
    ]
    return (
        f"{', '.join(parts)}; {entry['cpsat_proven_optimal']} proven optimal; "
        f"mean bound {entry['cpsat_lower_bound']:.4g} s, "
        f"mean gap to it {100 * entry['cpsat_gap']:.1f}%"
    )


def grid_markdown(
    summary: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    names: Sequence[str],
    title: str = "Evaluation",
    reference: str = "heft",
    preamble: str = "",
) -> str:
    """The Markdown report: an overview of ratios to the reference, then one table per cell."""
    ref = f"ratio_to_{reference}"
    cells: list[tuple[str, str]] = []
    for e in summary:
        if (e["workload"], e["cluster"]) not in cells:
            cells.append((e["workload"], e["cluster"]))
    by = {(e["workload"], e["cluster"], e["scheduler"]): e for e in summary}
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    lines += [f"## Makespan / {reference.upper()} (paired per episode; mean ± 95% CI)", ""]
    present = [n for n in names if any((*c, n) in by for c in cells)]
    overview = []
    for wl, cl in cells:
        entry: dict[str, Any] = {"workload": wl, "cluster": cl}
        for n in present:
            found = by.get((wl, cl, n))
            entry[n] = _cell(found, ref, decimals=3) if found else "-"
        overview.append(entry)
    lines += [markdown_table(overview, ["workload", "cluster", *present]), ""]

    headers = [
        "scheduler",
        "episodes",
        "makespan [s]",
        f"÷ {reference.upper()}",
        "÷ lower bound",
        "÷ CP-SAT",
        "mean wait [s]",
        "utilization",
        "cross-node [GB]",
    ]
    for wl, cl in cells:
        cell_rows = [r for r in rows if r["workload"] == wl and r["cluster"] == cl]
        sizes = sorted({int(r["n_tasks"]) for r in cell_rows})
        size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        ccr = float(np.mean([float(r["ccr"]) for r in cell_rows]))
        n_nodes = int(cell_rows[0]["n_nodes"])
        lines += [f"## {wl} x {cl} ({size} tasks, {n_nodes} nodes, CCR {ccr:.3g})", ""]
        table = []
        notes = []
        for n in names:
            found = by.get((wl, cl, n))
            if found is None:
                continue
            e = found
            table.append(
                dict(
                    zip(
                        headers,
                        [
                            n,
                            str(e["episodes"]),
                            _cell(e, "makespan"),
                            _cell(e, ref, decimals=3),
                            _cell(e, "ratio_to_lower_bound", decimals=3),
                            _cell(e, "ratio_to_cpsat", decimals=3),
                            _cell(e, "mean_wait"),
                            _cell(e, "utilization", decimals=3),
                            _cell(e, "cross_node_bytes", GB),
                        ],
                        strict=True,
                    )
                )
            )
            if n == "cpsat":
                notes.append(f"CP-SAT: {_cpsat_note(e)}.")
        lines += [markdown_table(table, headers), ""]
        if "cpsat" in names and (wl, cl, "cpsat") not in by:
            notes.append("CP-SAT: not run (instances above its size limits).")
        if notes:
            lines += [*notes, ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_makespans(
    summary: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    path: Path,
    reference: str = "heft",
) -> list[Path]:
    """Bar charts with 95% CI error bars: makespan per cell, and the ratio to the reference.

    Writes ``path`` (one panel per workload x cluster, makespan [s]) and
    ``ratio_to_<reference>.png`` next to it (one panel per cluster, workloads side by side).

    Returns:
        The files written.
    """
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cells: list[tuple[str, str]] = []
    for e in summary:
        if (e["workload"], e["cluster"]) not in cells:
            cells.append((e["workload"], e["cluster"]))
    workloads = list(dict.fromkeys(w for w, _ in cells))
    clusters = list(dict.fromkeys(c for _, c in cells))
    by = {(e["workload"], e["cluster"], e["scheduler"]): e for e in summary}
    cmap = plt.get_cmap("tab10")
    color = {n: cmap(i % 10) for i, n in enumerate(names)}

    fig, axes = plt.subplots(
        len(workloads),
        len(clusters),
        figsize=(1.0 + 0.55 * len(names) * len(clusters), 2.4 * len(workloads)),
        dpi=90,
        squeeze=False,
    )
    for i, wl in enumerate(workloads):
        for j, cl in enumerate(clusters):
            ax = axes[i][j]
            es = [by[wl, cl, n] for n in names if (wl, cl, n) in by]
            x = np.arange(len(es))
            ax.bar(
                x,
                [e["makespan"] for e in es],
                yerr=[e["makespan_ci95"] for e in es],
                color=[color[e["scheduler"]] for e in es],
                capsize=3,
            )
            ax.set_xticks(x)
            ax.set_xticklabels([e["scheduler"] for e in es], rotation=45, ha="right", fontsize=7)
            ax.set_title(f"{wl} x {cl}", fontsize=9)
            ax.set_ylabel("makespan [s]", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    written = [_save(fig, path)]
    plt.close(fig)

    ref = f"ratio_to_{reference}"
    fig, axes = plt.subplots(
        len(clusters),
        1,
        figsize=(3.0 + 0.12 * len(names) * len(workloads), 2.8 * len(clusters)),
        dpi=90,
        squeeze=False,
    )
    width = 0.8 / max(len(names), 1)
    for j, cl in enumerate(clusters):
        ax = axes[j][0]
        for k, n in enumerate(names):
            xs, ys, errs = [], [], []
            for i, wl in enumerate(workloads):
                found = by.get((wl, cl, n))
                if found is not None and found[f"{ref}_n"]:
                    xs.append(i - 0.4 + width * (k + 0.5))
                    ys.append(found[ref])
                    errs.append(found[f"{ref}_ci95"])
            if xs:
                ax.bar(xs, ys, width, yerr=errs, color=color[n], label=n, capsize=1.5)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(np.arange(len(workloads)))
        ax.set_xticklabels(workloads, fontsize=8)
        ax.set_ylabel(f"makespan / {reference} (log)", fontsize=8)
        ax.set_title(cl, fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0) if lo <= t <= hi])
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    written.append(_save(fig, path.with_name(f"{ref}.png")))
    plt.close(fig)
    return written


def plot_gantts(schedules: Mapping[str, tuple[Problem, Schedule]], out_dir: Path) -> list[Path]:
    """One Gantt chart PNG per scheduler (``out_dir/<scheduler>.png``); returns the files."""
    from wass_env.render import gantt_figure

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (problem, s) in schedules.items():
        fig = gantt_figure(
            problem,
            s.node,
            s.start,
            s.finish,
            title=f"{name}: {problem.workflow.name} on {problem.cluster.name}, "
            f"makespan {s.makespan:.4g} s",
        )
        written.append(_save(fig, out_dir / f"{name}.png"))
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------------------------
# files


def _save(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ---------------------------------------------------------------------------------------------
# entry points


def _preamble(grid: Grid, cfg: DictConfig, command: str | None) -> str:
    seeds = grid.seeds
    text = []
    if cfg.get("description"):
        text.append(str(cfg.description).strip())
    if command:
        text.append(f"Command: `{command}`")
    text.append(
        f"{len(seeds)} seeds per cell ({seeds[0]}..{seeds[-1]}); runtime noise {grid.noise}; "
        "every scheduler plans the same instances and is scored by the same simulator. "
        "Mean ± 95% confidence interval (Student t) over episodes; ratios are taken per episode "
        '(paired) and then averaged. `slurm` is the workflow-agnostic "traditional Slurm" '
        "baseline and `data_locality` the WASS heuristic. CP-SAT runs only on instances with "
        f"at most {grid.cpsat.max_tasks} tasks and {grid.cpsat.max_nodes} nodes "
        f"(time limit {grid.cpsat.time_limit:g} s"
        + (
            f", deterministic time {grid.cpsat.deterministic_time:g}"
            if grid.cpsat.deterministic_time
            else ""
        )
        + '). Its OPTIMAL status is for its integer model; "proven optimal" counts the plans '
        "proven optimal for the simulator's own durations (no rounding was needed, or the "
        'makespan meets a valid lower bound); "bound" is that lower bound.'
    )
    if len(seeds) < 5:
        text.append(f"Only {len(seeds)} seeds: the confidence intervals are wide.")
    return "\n\n".join(text)


def run_evaluation(
    cfg: DictConfig, out_dir: str | os.PathLike[str], *, command: str | None = None
) -> dict[str, Any]:
    """Run the grid a composed ``evaluate`` config describes and write every output.

    Args:
        cfg: A composed ``conf/evaluate.yaml`` (with an ``experiment``).
        out_dir: Output directory (Hydra's run directory under ``runs/eval/``).
        command: The command line, quoted in the report.

    Returns:
        ``{"rows", "summary", "markdown", "files", "out_dir"}``.

    Raises:
        EvaluationError: on bad input, before anything runs.
    """
    out = Path(out_dir)
    grid = grid_from_config(cfg)
    gantt = cfg.gantt
    keep = None
    if gantt.enabled and cfg.plots:
        wl = gantt.workload if gantt.workload is not None else next(iter(grid.workloads), None)
        cl = gantt.cluster if gantt.cluster is not None else next(iter(grid.clusters), None)
        if wl not in grid.workloads:
            raise EvaluationError("gantt.workload", f"not one of {list(grid.workloads)}", wl)
        if cl not in grid.clusters:
            raise EvaluationError("gantt.cluster", f"not one of {list(grid.clusters)}", cl)
        if not 0 <= int(gantt.episode) < len(grid.seeds):
            raise EvaluationError(
                "gantt.episode", f"must be in [0, {len(grid.seeds) - 1}]", int(gantt.episode)
            )
        keep = (str(wl), str(cl), grid.seeds[int(gantt.episode)])

    result = run_grid(grid, progress=bool(cfg.progress), keep=keep)
    summary = summarize_grid(result.rows, result.names, grid.reference)
    markdown = grid_markdown(
        summary,
        result.rows,
        names=result.names,
        title=f"Evaluation: {cfg.name}",
        reference=grid.reference,
        preamble=_preamble(grid, cfg, command),
    )
    files = [
        write_csv(result.rows, out / "episodes.csv"),
        write_csv(result.timings, out / "timings.csv"),
        write_csv(summary, out / "summary.csv"),
        write_text(markdown, out / "results.md"),
    ]
    if cfg.plots:
        files += plot_makespans(summary, result.names, out / "makespan.png", grid.reference)
        files += plot_gantts(result.schedules, out / "gantt")
    print(markdown)
    print(f"Outputs in {out}/: " + ", ".join(str(f.relative_to(out)) for f in files[:4]) + ", …")
    return {
        "rows": result.rows,
        "summary": summary,
        "markdown": markdown,
        "files": files,
        "out_dir": out,
    }


def main(cfg: DictConfig, out_dir: str | os.PathLike[str], *, command: str | None = None) -> int:
    """:func:`run_evaluation` behind the command-line error boundary (:func:`wass_env.cli.run_cli`).

    Returns:
        0 on success, 2 on bad input (the message names the field and its value).
    """
    return run_cli(run_evaluation, cfg, out_dir, command=command)
