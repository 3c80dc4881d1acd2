"""Schedulers against CP-SAT's proven optima (``scripts/optimality_summary.py``).

Reads an evaluation's ``episodes.csv``; only instances whose ``cpsat`` row is proven optimal for
the simulator's own durations (``cpsat_optimal``) count.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from agents.evaluation.stats import ci95
from agents.evaluation.tables import format_mean_ci
from wass_env.errors import WassError

__all__ = ["OptimalityError", "load_proven", "optimality_table"]

REQUIRED = ("workload", "cluster", "seed", "episode", "scheduler", "makespan", "cpsat_optimal")


class OptimalityError(WassError, ValueError):
    """Bad input: the message names the file and what is wrong."""


def load_proven(path: Path) -> dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]]:
    """``{(workload, cluster): {(seed, episode): {scheduler: makespan}}}`` of proven instances,
    with the optimum under the key ``"cpsat"``."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise OptimalityError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
    except OSError as exc:
        raise OptimalityError(f"{path}: {exc.strerror or exc}") from None
    cells: dict[tuple[str, str], dict[tuple[str, str], dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    unproven: set[tuple[str, str, str, str]] = set()  # (workload, cluster, seed, episode)
    for i, r in enumerate(rows, start=2):
        try:
            span = float(r["makespan"])
        except ValueError:
            raise OptimalityError(
                f"{path}: line {i}: makespan {r['makespan']!r} is not a number"
            ) from None
        cells[(r["workload"], r["cluster"])][(r["seed"], r["episode"])][r["scheduler"]] = span
        if r["scheduler"] == "cpsat" and r["cpsat_optimal"] != "True":
            unproven.add((r["workload"], r["cluster"], r["seed"], r["episode"]))
    if not any(r["scheduler"] == "cpsat" for r in rows):
        raise OptimalityError(f"{path}: no cpsat rows (evaluate with cpsat among the schedulers)")
    return {
        cell: {k: v for k, v in inst.items() if "cpsat" in v and (*cell, *k) not in unproven}
        for cell, inst in cells.items()
    }


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
