"""Paired statistics: the one ratio routine and the one summariser of result rows.

Rows are plain dicts, one per scheduler x episode. :func:`add_paired_ratios` divides each row's
makespan by a reference scheduler's makespan *on the same episode*; :func:`summarize` then
averages per group (mean and 95% Student-t confidence interval) and counts wins, ties and losses
against each comparison scheduler from those same per-episode ratios. A tie is a relative
difference of at most :data:`TIE_RTOL` (1e-9: the same plan, or plans equal up to float
rounding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from agents.heuristics import TIE_RTOL

__all__ = [
    "COMPARE",
    "EPISODE_KEY",
    "METRICS",
    "TIE_RTOL",
    "add_paired_ratios",
    "ci95",
    "outcome_counts",
    "summarize",
]

#: Columns that identify an episode in the rows of a grid.
EPISODE_KEY: tuple[str, ...] = ("workload", "cluster", "seed")
#: Schedulers every summary counts wins, ties and losses against (when they are in the rows).
COMPARE: tuple[str, ...] = ("heft", "best_heuristic")
#: Metrics summarised by default (``ratio_to_<x>`` columns are added when present).
METRICS: tuple[str, ...] = (
    "makespan",
    "ratio_to_lower_bound",
    "mean_wait",
    "utilization",
    "cross_node_bytes",
)


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
    episode: Sequence[str] = EPISODE_KEY,
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


def outcome_counts(ratios: Iterable[float]) -> tuple[int, int, int]:
    """``(wins, ties, losses)`` of paired ratios: below, within or above 1 +- :data:`TIE_RTOL`.

    NaN ratios (no paired reference) count nowhere.
    """
    wins = ties = losses = 0
    for x in ratios:
        if not math.isfinite(x):
            continue
        if x < 1.0 - TIE_RTOL:
            wins += 1
        elif x > 1.0 + TIE_RTOL:
            losses += 1
        else:
            ties += 1
    return wins, ties, losses


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None or isinstance(v, str):
            continue
        f = float(v)
        if math.isfinite(f):
            out.append(f)
    return out


def summarize(
    rows: Sequence[Mapping[str, Any]],
    *,
    by: Sequence[str] = ("workload", "cluster", "scheduler"),
    metrics: Sequence[str] = METRICS,
    compare: Sequence[str] = COMPARE,
    order: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Mean and 95% CI of every metric per group, and wins/ties/losses against ``compare``.

    Each entry has the ``by`` columns, ``episodes`` (rows in the group) and, for every metric
    ``m`` (``metrics`` plus every ``ratio_to_<x>`` column present in the rows): ``m`` (mean),
    ``m_ci95`` (half-width) and ``m_n`` (rows with a finite value: ``ratio_to_cpsat`` exists only
    where CP-SAT ran). For every ``c`` in ``compare`` that has paired ratios in the rows:
    ``wins_<c>``, ``ties_<c>``, ``losses_<c>`` (counted on ``ratio_to_<c>``) and ``vs_<c>``, the
    same as text ``"wins/ties/losses"``. A group of CP-SAT rows (with ``cpsat_status``) also
    counts its solver statuses.

    Args:
        rows: Result rows with paired ``ratio_to_<x>`` columns (:func:`add_paired_ratios`).
        by: Group columns.
        metrics: Metrics to summarise.
        compare: Schedulers to count wins, ties and losses against.
        order: Scheduler names in table order (groups follow it); default first-seen order.
    """
    ratio_cols = sorted({k for r in rows for k in r if k.startswith("ratio_to_")})
    ratio_cols = [c for c in ratio_cols if c not in metrics]
    all_metrics = [*metrics, *ratio_cols]
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    keys = list(groups)
    if order is not None and "scheduler" in by:
        pos = {n: i for i, n in enumerate(order)}
        i_s = list(by).index("scheduler")
        first_seen = {k: i for i, k in enumerate(keys)}
        # Keep the first-seen order of the other columns, schedulers in table order within.
        outer: dict[tuple[Any, ...], int] = {}
        for k in keys:
            outer.setdefault(k[:i_s] + k[i_s + 1 :], len(outer))
        keys.sort(
            key=lambda k: (
                outer[k[:i_s] + k[i_s + 1 :]],
                pos.get(k[i_s], len(pos)),
                first_seen[k],
            )
        )
    out = []
    for key in keys:
        rs = groups[key]
        entry: dict[str, Any] = dict(zip(by, key, strict=True))
        entry["episodes"] = len(rs)
        for m in all_metrics:
            vals = _finite(r.get(m) for r in rs)
            entry[f"{m}_n"] = len(vals)
            entry[m], entry[f"{m}_ci95"] = ci95(vals) if vals else (math.nan, math.nan)
        for c in compare:
            col = f"ratio_to_{c}"
            if col not in ratio_cols:
                continue
            w, t, lo = outcome_counts(float(r.get(col, math.nan)) for r in rs)
            entry[f"wins_{c}"], entry[f"ties_{c}"], entry[f"losses_{c}"] = w, t, lo
            entry[f"vs_{c}"] = f"{w}/{t}/{lo}" if w + t + lo else "-"
        statuses = [str(r["cpsat_status"]) for r in rs if r.get("scheduler") == "cpsat"]
        if statuses and len(statuses) == len(rs):
            for s in ("OPTIMAL", "FEASIBLE", "HEFT"):
                entry[f"cpsat_{s.lower()}"] = statuses.count(s)
            entry["cpsat_proven_optimal"] = sum(bool(r["cpsat_optimal"]) for r in rs)
            entry["cpsat_lower_bound"] = float(np.mean([r["cpsat_lower_bound"] for r in rs]))
            entry["cpsat_gap"] = float(
                np.mean([r["makespan"] / r["cpsat_lower_bound"] - 1.0 for r in rs])
            )
        out.append(entry)
    return out
