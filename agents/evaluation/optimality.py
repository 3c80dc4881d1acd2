"""Schedulers against CP-SAT's proven optima (``scripts/optimality_summary.py``).

Reads an evaluation's ``episodes.csv`` (or several, matched by instance: a new policy scored
against an earlier run's optima); only instances whose ``cpsat`` row is proven optimal for the
simulator's own durations (``cpsat_optimal``) count.

:func:`floor_table` asks the opposite question, over every instance with a ``cpsat`` row: how far
below a reference (HEFT) could any plan go? Per instance the floor is the optimum where it is
proven and otherwise the best lower bound known (the critical-path/work bound, the fork-join
bound or CP-SAT's own: ``lower_bound``, ``fork_join_bound``, ``cpsat_lower_bound``); every
scheduler's mean ratio to the reference is at least the mean of these floors, so a target below
it cannot be met on those instances. With ``every_instance`` it also covers instances CP-SAT did
not run on (too large), from the bounds alone.
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

__all__ = ["OptimalityError", "floor_table", "load_floors", "load_proven", "optimality_table"]

REQUIRED = ("workload", "cluster", "seed", "episode", "scheduler", "makespan", "cpsat_optimal")
#: Columns holding a lower bound on an instance's optimum [s].
BOUND_COLUMNS = ("lower_bound", "fork_join_bound", "cpsat_lower_bound")
#: Relative slack of a bound over a plan that is floating-point rounding, not a wrong bound.
ROUNDING = 1e-9


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
    bound: float  # the best lower bound on the optimum in the row (nan: none)


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
                _bound(path, i, r),
            )
        )
    return rows


def _bound(path: Path, line: int, r: dict[str, str]) -> float:
    """The largest of the row's ``lower_bound``, ``fork_join_bound`` and ``cpsat_lower_bound``
    (absent or empty: nan)."""
    best = math.nan
    for col in BOUND_COLUMNS:
        text = r.get(col) or ""
        if not text:
            continue
        try:
            x = float(text)
        except ValueError:
            raise OptimalityError(f"{path}: line {line}: {col} {text!r} is not a number") from None
        if math.isfinite(x) and not x <= best:
            best = x
    return best


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


def load_floors(
    path: Path, reference: str = "heft", *, every_instance: bool = False
) -> dict[tuple[str, str], list[tuple[float, float, bool]]]:
    """``{(workload, cluster): [(floor, best, proven), ...]}`` per instance with a ``cpsat`` and a
    ``reference`` row in one evaluation's ``episodes.csv``, both ÷ the reference's makespan.

    ``floor`` is the optimum where CP-SAT proves it (its makespan) and otherwise the largest lower
    bound in the instance's rows; ``best`` is CP-SAT's plan (the best known). With
    ``every_instance``, instances without a ``cpsat`` row count too: their floor is the largest
    bound and their best known plan the shortest of the file's schedulers. An instance with
    neither a proof nor a bound is refused: it has no floor; so is a bound above a plan (beyond
    rounding), which would be a wrong bound.
    """
    rows = _read(path)
    by_inst: dict[tuple[tuple[str, str], tuple[str, str]], dict[str, _Row]] = defaultdict(dict)
    bounds: dict[tuple[tuple[str, str], tuple[str, str]], float] = {}
    for r in rows:
        key = (r.cell, r.instance)
        by_inst[key][r.scheduler] = r
        if math.isfinite(r.bound) and not r.bound <= bounds.get(key, -math.inf):
            bounds[key] = r.bound
    out: dict[tuple[str, str], list[tuple[float, float, bool]]] = defaultdict(list)
    for key, v in by_inst.items():
        if reference not in v or ("cpsat" not in v and not every_instance):
            continue
        ref = v[reference].makespan
        where = f"workload={key[0][0]} cluster={key[0][1]} seed={key[1][0]} episode={key[1][1]}"
        if not ref > 0:
            raise OptimalityError(f"{path}: {reference} makespan {ref!r} for {where} is not > 0")
        cp = v.get("cpsat")
        shortest = min(r.makespan for r in v.values())
        best = cp.makespan if cp is not None else shortest
        if key in bounds and bounds[key] > shortest * (1.0 + ROUNDING):
            raise OptimalityError(
                f"{path}: a lower bound ({bounds[key]!r} s) above a plan ({shortest!r} s) for "
                f"{where}: columns {', '.join(BOUND_COLUMNS)}"
            )
        if cp is not None and cp.optimal:
            floor = cp.makespan
        elif key in bounds:
            floor = min(bounds[key], best)
        else:
            raise OptimalityError(
                f"{path}: no proven optimum and no lower bound for {where} "
                f"(columns {', '.join(BOUND_COLUMNS)})"
            )
        out[key[0]].append((floor / ref, best / ref, cp is not None and cp.optimal))
    if not out:
        what = reference if every_instance else f"both cpsat and {reference}"
        raise OptimalityError(f"{path}: no instance with {what} rows")
    return dict(out)


def floor_table(
    floors: dict[tuple[str, str], list[tuple[float, float, bool]]], reference: str = "heft"
) -> str:
    """How far below ``reference`` any plan can go, per cell and pooled (:func:`load_floors`)."""
    out = [
        f"The floor under every scheduler, ÷ {reference} (per instance the proven optimum, "
        "else the best lower bound): no scheduler's mean ratio can be below the floor's mean",
        "",
        f"| workload | cluster | instances | proven | floor ÷ {reference}, mean [lowest] "
        f"| best known (CP-SAT, else the best scheduler) ÷ {reference} |",
        "|---|---|---|---|---|---|",
    ]
    pooled: list[tuple[float, float, bool]] = []
    for (wl, cl), xs in floors.items():
        pooled.extend(xs)
        out.append(_floor_row(f"{wl} | {cl}", xs))
    if len(floors) > 1:
        out.append(_floor_row("**all** | ", pooled))
    return "\n".join(out)


def _floor_row(label: str, xs: list[tuple[float, float, bool]]) -> str:
    floor = [f for f, _, _ in xs]
    best = [b for _, b, _ in xs]
    proven = sum(p for _, _, p in xs)
    return (
        f"| {label} | {len(xs)} | {proven} | {sum(floor) / len(floor):.3f} [{min(floor):.3f}] "
        f"| {format_mean_ci(*ci95(best), decimals=3)} |"
    )
