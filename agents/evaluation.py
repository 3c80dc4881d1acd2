"""Scoring schedulers honestly: same instances, same noise, same simulator, several seeds.

Every scheduler plans each problem with :meth:`~wass_env.scheduling.Scheduler.plan`; the plan
is then executed by :func:`wass_env.sim.execute` with runtime noise drawn from a generator seeded
by the episode seed, so on one episode all schedulers face the same actual runtimes. Results are
rows of plain dicts (one per scheduler x episode), summarised as mean and 95% confidence interval.

Ratios to a reference scheduler (HEFT, CP-SAT) are *paired*: each row is divided by the
reference's makespan on the same episode (:func:`add_paired_ratios`), and the per-episode ratios
are then averaged. The grid over workloads x clusters x seeds built on these functions is in
:mod:`agents.experiment`.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from scipy import stats

from wass_env.io import atomic_write
from wass_env.scheduling import Scheduler
from wass_env.sim.execute import realize
from wass_env.sim.metrics import schedule_metrics
from wass_env.sim.plan import Plan, Schedule
from wass_env.sim.problem import Problem

__all__ = [
    "add_paired_ratios",
    "ci95",
    "episode_problems",
    "evaluate",
    "format_mean_ci",
    "markdown_table",
    "run_episode",
    "run_episode_schedule",
    "summarize",
    "write_csv",
    "write_text",
]


def episode_problems(env_kwargs: Mapping[str, Any], seeds: Iterable[int]) -> list[Problem]:
    """The problems ``WassSchedEnv(**env_kwargs).reset(seed=s)`` draws for each seed."""
    from wass_env.envs.wass_sched import WassSchedEnv

    kwargs = {k: v for k, v in env_kwargs.items() if k != "render_mode"}
    env = WassSchedEnv(**kwargs)
    out = []
    for s in seeds:
        env.reset(seed=int(s))
        assert env.problem is not None
        out.append(env.problem)
    return out


def run_episode(
    scheduler: Scheduler,
    problem: Problem,
    *,
    seed: int,
    noise: float = 0.0,
    insertion: bool = True,
) -> dict[str, Any]:
    """Plan ``problem`` with ``scheduler``, execute the plan, return one result row.

    Args:
        scheduler: The scheduler (re-seeded with ``seed``).
        problem: The instance.
        seed: Episode seed: seeds the scheduler and the runtime noise.
        noise: Sigma of the mean-one lognormal runtime noise.
        insertion: Insertion policy of the plan builder.
    """
    row, _plan, _realized = run_episode_schedule(
        scheduler, problem, seed=seed, noise=noise, insertion=insertion
    )
    return row


def run_episode_schedule(
    scheduler: Scheduler,
    problem: Problem,
    *,
    seed: int,
    noise: float = 0.0,
    insertion: bool = True,
) -> tuple[dict[str, Any], Plan, Schedule]:
    """Like :func:`run_episode`, and also return the plan and the realized schedule.

    Returns:
        ``(row, plan, realized)``; without noise on a contention-free network ``realized`` is
        ``plan`` itself (see :func:`wass_env.sim.execute.realize`).
    """
    scheduler.reset(seed)
    t0 = time.perf_counter()
    plan = scheduler.plan(problem, insertion=insertion)
    plan_time = time.perf_counter() - t0
    realized = realize(plan, noise=noise, rng=np.random.default_rng(seed))
    row: dict[str, Any] = {
        "scheduler": scheduler.name,
        "workflow": problem.workflow.name,
        "family": problem.workflow.family,
        "cluster": problem.cluster.name,
        "n_tasks": problem.n_tasks,
        "n_nodes": problem.n_nodes,
        "seed": seed,
        "planned_makespan": plan.makespan,
        "plan_seconds": plan_time,
    }
    row.update(schedule_metrics(realized).as_dict())
    return row, plan, realized


def evaluate(
    schedulers: Mapping[str, Scheduler],
    problems: Sequence[Problem],
    seeds: Sequence[int],
    *,
    noise: float = 0.0,
    insertion: bool = True,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every scheduler on every (problem, seed) pair; one row each.

    Args:
        schedulers: ``{name: scheduler}`` (the name overrides ``scheduler.name`` in the rows).
        problems: The instances; ``problems[i]`` is run with ``seeds[i]``.
        seeds: Episode seeds, one per problem.
        noise: Runtime noise sigma.
        insertion: Insertion policy.
        progress: Show a progress bar.
    """
    if len(problems) != len(seeds):
        raise ValueError(f"{len(problems)} problems but {len(seeds)} seeds")
    jobs = [
        (p, s, n, sch)
        for p, s in zip(problems, seeds, strict=True)
        for n, sch in schedulers.items()
    ]
    iterator: Iterable[tuple[Problem, int, str, Scheduler]] = jobs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(jobs, desc="evaluate", unit="episode", leave=False)
    rows = []
    for problem, seed, name, sch in iterator:
        row = run_episode(sch, problem, seed=int(seed), noise=noise, insertion=insertion)
        row["scheduler"] = name
        rows.append(row)
    return rows


def ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval (0 for one value)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if x.size < 2:
        return mean, 0.0
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, half


def add_paired_ratios(
    rows: Sequence[dict[str, Any]],
    reference: str,
    *,
    episode: Sequence[str] = ("workflow", "cluster", "seed"),
    metric: str = "makespan",
    column: str | None = None,
) -> None:
    """Add ``row[column] = row[metric] / reference's metric on the same episode`` to every row.

    Rows of an episode without a ``reference`` row get NaN. The reference's own rows get exactly
    1.0.

    Args:
        rows: Result rows (modified in place).
        reference: Scheduler name of the reference rows.
        episode: Columns that identify an episode (the reference has one row per episode).
        metric: The column to divide.
        column: Name of the new column (default ``f"ratio_to_{reference}"``).

    Raises:
        ValueError: if the reference has two rows for one episode (the key is ambiguous).
    """
    column = column or f"ratio_to_{reference}"
    ref: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if r["scheduler"] == reference:
            key = tuple(r[k] for k in episode)
            if key in ref:
                raise ValueError(
                    f"two {reference!r} rows for episode {dict(zip(episode, key, strict=True))}: "
                    f"the columns {list(episode)} do not identify an episode"
                )
            ref[key] = float(r[metric])
    for r in rows:
        value = ref.get(tuple(r[k] for k in episode))
        if value is None:
            r[column] = math.nan
        elif r["scheduler"] == reference:
            r[column] = 1.0
        else:
            r[column] = float(r[metric]) / value if value > 0 else math.nan


def summarize(
    rows: Sequence[Mapping[str, Any]],
    *,
    by: Sequence[str] = ("scheduler",),
    metrics: Sequence[str] = (
        "makespan",
        "ratio_to_lower_bound",
        "mean_wait",
        "utilization",
        "cross_node_bytes",
    ),
    reference: str | None = None,
) -> list[dict[str, Any]]:
    """Mean and 95% CI of ``metrics`` per group, plus the ratio of makespans to ``reference``.

    The ratio to the reference scheduler is computed per episode (same workflow, cluster and
    seed) and then averaged, so it is a paired comparison.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    ref_ms: dict[tuple[Any, ...], float] = {}
    if reference is not None:
        for r in rows:
            if r["scheduler"] == reference:
                ref_ms[(r["workflow"], r["cluster"], r["seed"])] = float(r["makespan"])
    out = []
    for key, rs in groups.items():
        entry: dict[str, Any] = dict(zip(by, key, strict=True))
        entry["episodes"] = len(rs)
        for m in metrics:
            entry[m], entry[f"{m}_ci95"] = ci95([float(r[m]) for r in rs])
        if reference is not None:
            ratios = [
                float(r["makespan"]) / ref_ms[k]
                for r in rs
                if (k := (r["workflow"], r["cluster"], r["seed"])) in ref_ms
            ]
            if ratios:
                entry[f"ratio_to_{reference}"], entry[f"ratio_to_{reference}_ci95"] = ci95(ratios)
        out.append(entry)
    return out


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"
    return f"{x:.3e}"


def format_mean_ci(mean: float, half: float) -> str:
    """``"mean ± half"`` with four significant digits, as :func:`markdown_table` prints it."""
    return f"{_fmt(mean)} ± {_fmt(half)}"


def markdown_table(summary: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table; a column ``m`` with a ``m_ci95`` entry prints as ``mean ± ci``."""
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for e in summary:
        cells = []
        for c in columns:
            v = e.get(c, "")
            if isinstance(v, (float, np.floating)):
                cell = _fmt(float(v))
                if f"{c}_ci95" in e:
                    cell += f" ± {_fmt(float(e[f'{c}_ci95']))}"
            else:
                cell = str(v)
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write ``rows`` (dicts; the union of their keys, in first-seen order) as CSV atomically."""
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)

    def write(f: IO[str]) -> None:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    return atomic_write(path, write, binary=False)


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, text)
