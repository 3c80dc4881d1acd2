"""What the teacher's own judgement is worth: the greedy teacher against HEFT and the best
heuristic on fixed instances.

:func:`greedy_evaluation` runs the greedy teacher (``a*_t`` at every decision,
:class:`~teacher.teacher.TeacherScheduler`), HEFT and ``best_heuristic`` on the cells of the
generalisation experiment (``conf/experiment/generalisation.yaml``): every family of the
training mix at exactly CCR 0.1, 1 and 5, on het16 and on 4 to 8 heterogeneous nodes (one drawn
per instance), instance ``i`` of a cell being evaluation seed ``10^9 + i``: workflows no build
or training run draws. Ratios are paired per instance; a family that the knowledge base left
out is an *unseen* family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from agents.evaluation import Grid, SchedulerEntry, eval_seeds, run_grid, summarize
from agents.evaluation.stats import ci95
from wass_env.scheduling import Scheduler

__all__ = ["GENERALISATION_CCRS", "GENERALISATION_CLUSTERS", "greedy_evaluation"]

#: The generalisation experiment's clusters (conf/experiment/generalisation.yaml).
GENERALISATION_CLUSTERS: dict[str, Any] = {
    "het16": "het16",
    "het4-8": {"kind": "heterogeneous", "n_nodes": [4, 5, 6, 7, 8]},
}
#: ... and its CCRs.
GENERALISATION_CCRS: tuple[float, ...] = (0.1, 1.0, 5.0)


def greedy_evaluation(
    scheduler: Scheduler | Mapping[str, Any],
    families: Mapping[str, Mapping[str, Any]],
    *,
    episodes: int = 30,
    ccrs: Sequence[float] = GENERALISATION_CCRS,
    clusters: Mapping[str, Any] | None = None,
    baselines: Sequence[str] = ("heft", "best_heuristic"),
    name: str = "teacher",
    seed: int | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """The greedy teacher (or any scheduler) and baselines on the generalisation cells.

    Args:
        scheduler: The scheduler to measure (an instance, or a spec such as ``{"scheduler":
            "teacher", "kb": ..., "model": ...}``, which ``workers > 1`` needs).
        families: Family label -> workload spec (a family of the training mix).
        episodes: Instances per cell (seeds ``10^9 ...``).
        ccrs: CCRs of the cells.
        clusters: Cluster label -> spec (default :data:`GENERALISATION_CLUSTERS`).
        baselines: Schedulers it is compared with (HEFT first: the reference).
        name: Its column name.
        seed: First instance seed (default: the evaluation range's first).
        workers: Processes running cells.

    Returns:
        ``{"rows": [...], "summary": [...], "families": {family: {ratio_to_heft, ci95, ...}},
        "ratio_to_heft": mean over families, "ratio_to_best_heuristic": ..., "instances": n}``;
        per family the mean paired ratio over its cells' instances with its 95% CI and the
        wins/ties/losses; the overall figures weigh every family the same (CI over families).
    """
    entry: Any
    if isinstance(scheduler, Scheduler):
        entry = SchedulerEntry(name, scheduler)
    else:
        entry = {"name": name, **dict(scheduler)}
    workloads = {
        f"{fam}@ccr{float(c):g}": {**dict(spec), "ccr": float(c)}
        for fam, spec in families.items()
        for c in ccrs
    }
    grid = Grid(
        workloads=workloads,
        clusters=dict(clusters or GENERALISATION_CLUSTERS),
        seeds=eval_seeds(episodes) if seed is None else eval_seeds(episodes, seed),
        schedulers=[entry, *baselines],
        reference=str(baselines[0]),
    )
    # spawn: the caller has usually run FAISS and torch (OpenMP) already, see run_grid
    result = run_grid(grid, workers=workers, start_method="spawn")
    rows = result.rows
    for r in rows:
        r["held_out"] = str(r["workload"]).split("@", 1)[0]
    summary = summarize(rows, by=("held_out", "scheduler"), order=result.names)
    per_family: dict[str, dict[str, Any]] = {}
    for e in summary:
        if e["scheduler"] != name:
            continue
        per_family[e["held_out"]] = {
            k: e[k]
            for k in e
            if k.startswith(("ratio_to_", "wins_", "ties_", "losses_", "vs_")) or k == "episodes"
        }
    out: dict[str, Any] = {
        "rows": rows,
        "summary": summary,
        "families": per_family,
        "instances": sum(1 for r in rows if r["scheduler"] == name),
    }
    for ref in baselines:
        col = f"ratio_to_{ref}"
        vals = [f[col] for f in per_family.values() if math.isfinite(f.get(col, math.nan))]
        out[col], out[f"{col}_ci95"] = ci95(vals) if vals else (math.nan, math.nan)
        # Over every instance of every family as well (the wins/ties/losses add up).
        w = sum(int(f.get(f"wins_{ref}", 0)) for f in per_family.values())
        t = sum(int(f.get(f"ties_{ref}", 0)) for f in per_family.values())
        lo = sum(int(f.get(f"losses_{ref}", 0)) for f in per_family.values())
        out[f"vs_{ref}"] = f"{w}/{t}/{lo}"
    return out
