"""Schedulers against CP-SAT's proven optima (``scripts/optimality_summary.py``).

Reads an evaluation's ``episodes.csv`` (or several, matched by instance: a new policy scored
against an earlier run's optima); only instances whose ``cpsat`` row is proven optimal for the
simulator's own durations (``cpsat_optimal``) count.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from agents.evaluation.stats import ci95
from agents.evaluation.tables import format_mean_ci
from wass_env.errors import WassError

__all__ = ["OptimalityError", "load_proven", "optimality_table"]

REQUIRED = ("workload", "cluster", "seed", "episode", "scheduler", "makespan", "cpsat_optimal")


class OptimalityError(WassError, ValueError):
    """Bad input: the message names the file and what is wrong."""


def load_proven(
    *paths: Path, check: str = "heft"
) -> dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]]:
    """``{(workload, cluster): {(seed, episode): {scheduler: makespan}}}`` of proven instances,
    with the optimum under the key ``"cpsat"``.

    Several files are matched by instance (workload, cluster, seed, episode), so that a new
    policy evaluated without ``cpsat`` can be scored against the optima of an earlier run: a
    scheduler in a later file replaces the earlier files' rows of that scheduler. That the
    files hold the same instances is checked, not assumed: every later file needs ``check``
    rows (a deterministic scheduler), the earlier files too, and its makespans must equal
    theirs on every instance (relative 1e-9); instances of a later file that no earlier file has are
    refused. The ``check`` scheduler itself keeps the earlier files' rows.
    """
    if not paths:
        raise OptimalityError("no episodes.csv given")
    cells: dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    unproven: set[tuple[str, str, str, str]] = set()  # (workload, cluster, seed, episode)
    has_cpsat = False
    for n, path in enumerate(paths):
        rows = _read(path)
        if n > 0:
            _check_same_instances(path, rows, cells, check)
        # Whole schedulers are replaced (no mix of two policies' rows); the check scheduler's
        # rows agree where the files share instances, so the earlier ones stay.
        replaced = {r.scheduler for r in rows} - {check}
        for by_inst in cells.values():
            for v in by_inst.values():
                for s in replaced & set(v):
                    del v[s]
        for r in rows:
            cells[r.cell][r.instance][r.scheduler] = r.makespan
            if r.scheduler == "cpsat":
                has_cpsat = True
                key = (*r.cell, *r.instance)
                if r.optimal:
                    unproven.discard(key)
                else:
                    unproven.add(key)
    if not has_cpsat:
        names = ", ".join(str(p) for p in paths)
        raise OptimalityError(f"{names}: no cpsat rows (evaluate with cpsat among the schedulers)")
    return {
        cell: {k: v for k, v in inst.items() if "cpsat" in v and (*cell, *k) not in unproven}
        for cell, inst in cells.items()
    }


class _Row(NamedTuple):
    cell: tuple[str, str]  # (workload, cluster)
    instance: tuple[str, str]  # (seed, episode)
    scheduler: str
    makespan: float
    optimal: bool  # cpsat_optimal


def _read(path: Path) -> list[_Row]:
    """The rows of one episodes.csv."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise OptimalityError(f"{path}: missing column(s) {', '.join(missing)}")
            raw = list(reader)
    except OSError as exc:
        raise OptimalityError(f"{path}: {exc.strerror or exc}") from None
    rows = []
    for i, r in enumerate(raw, start=2):
        try:
            span = float(r["makespan"])
        except ValueError:
            raise OptimalityError(
                f"{path}: line {i}: makespan {r['makespan']!r} is not a number"
            ) from None
        rows.append(
            _Row(
                (r["workload"], r["cluster"]),
                (r["seed"], r["episode"]),
                r["scheduler"],
                span,
                r["cpsat_optimal"] == "True",
            )
        )
    return rows


def _check_same_instances(
    path: Path,
    rows: list[_Row],
    cells: dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]],
    check: str,
) -> None:
    """Refuse a later file whose instances are not the earlier files' (see :func:`load_proven`)."""
    if not any(r.scheduler == check for r in rows):
        raise OptimalityError(
            f"{path}: no {check} rows, so it cannot be matched to the earlier file's instances "
            f"(evaluate with {check} among the schedulers)"
        )
    for r in rows:
        where = (
            f"workload={r.cell[0]} cluster={r.cell[1]} seed={r.instance[0]} episode={r.instance[1]}"
        )
        if r.instance not in cells.get(r.cell, {}):
            raise OptimalityError(f"{path}: instance {where} is in no earlier file")
        if r.scheduler != check:
            continue
        before = cells[r.cell][r.instance].get(check)
        if before is None:
            raise OptimalityError(
                f"{path}: the earlier files have no {check} row for {where}, so it cannot be "
                "checked to be the same instance"
            )
        if abs(r.makespan - before) > 1e-9 * max(abs(before), 1.0):
            raise OptimalityError(
                f"{path}: {check} makespan {r.makespan!r} for {where} differs from the "
                f"earlier file's {before!r}: not the same instances"
            )


def optimality_table(cells: dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]]) -> str:
    names = sorted({s for inst in cells.values() for v in inst.values() for s in v if s != "cpsat"})
    head = "| workload | cluster | proven | " + " | ".join(names) + " |"
    out = [
        "Makespan ÷ CP-SAT's proven optimum, mean ± 95% CI [worst; share within 5%]",
        "",
        head,
        "|---|---|---|" + "---|" * len(names),
    ]
    pooled: dict[str, list[float]] = defaultdict(list)
    total = 0
    for (wl, cl), inst in cells.items():
        total += len(inst)
        cols = []
        for s in names:
            ratios = [v[s] / v["cpsat"] for v in inst.values() if s in v and v["cpsat"] > 0]
            pooled[s].extend(ratios)
            cols.append(_cell(ratios))
        out.append(f"| {wl} | {cl} | {len(inst)} | " + " | ".join(cols) + " |")
    out.append(f"| **all** | | {total} | " + " | ".join(_cell(pooled[s]) for s in names) + " |")
    return "\n".join(out)


def _cell(ratios: list[float]) -> str:
    ratios = [x for x in ratios if math.isfinite(x)]
    if not ratios:
        return "—"
    within = sum(x <= 1.05 + 1e-12 for x in ratios) / len(ratios)
    return f"{format_mean_ci(*ci95(ratios), decimals=3)} [{max(ratios):.2f}; {within:.0%}]"
