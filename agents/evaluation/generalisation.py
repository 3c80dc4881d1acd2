"""Leave-one-family-out: can a policy schedule a workflow family it never saw?

The training mix (``conf/workload/mix.yaml``) is a mix by label, one label per family. For each
held-out family ``F`` a policy is trained on the mix with ``exclude: F``
(``python scripts/train.py -m workload=mix workload.exclude=F,...``, see the README), and saved
as ``<checkpoints>/<F>/model.zip``. The evaluation then scores it on ``F`` only, beside every
baseline:

* cells ``F@ccr<c>`` for every family and every ``c`` of ``ccrs``: the family's spec from the
  mix at exactly CCR ``c``, on every cluster of the experiment;
* cells ``real@own`` and ``real@ccr<c>`` (``real_ccrs``): every real workflow once (``per_file``),
  at its recorded CCR or rescaled, scored with the policy trained on the whole mix
  (``<checkpoints>/<full_mix>/model.zip``).

A family directory may instead hold one sub-directory per training seed, each with its
checkpoint: each becomes a column ``policy@<sub-directory>``. Families without a checkpoint
get no policy column (the report lists them).

:func:`expand` turns the ``generalisation`` config into grid cells and scheduler entries;
:func:`heldout_sections` writes the summary over held-out families: per family, over all its
cells and over the cells at CCR >= 1, the mean paired ratio with its 95% CI and the
wins/ties/losses, the floor (the mean of the instances' best lower bounds ÷ the reference), and a
last row averaging the families (each family weighs the same; the CI is over families).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from agents.evaluation.config import EvaluationError
from agents.evaluation.optimality import BOUND_COLUMNS
from agents.evaluation.specs import SchedulerEntry, checkpoint_entry
from agents.evaluation.stats import ci95, summarize
from agents.evaluation.tables import Column, format_cell, markdown_table, pivot

__all__ = ["REAL", "cell_labels", "expand", "find_checkpoints", "heldout_sections"]

#: Family label of the real-workflow cells.
REAL = "real"


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


def _families(gen: Any) -> dict[str, Any]:
    mix = _plain(gen.get("mix"))
    if not isinstance(mix, Mapping) or not isinstance(mix.get("mix"), Mapping):
        raise EvaluationError(
            "generalisation.mix", "expected a mix by label ({mix: {family: spec, ...}})", mix
        )
    specs = dict(mix["mix"])
    chosen = _plain(gen.get("families"))
    if chosen is None:
        return specs
    unknown = [f for f in chosen if f not in specs]
    if unknown:
        raise EvaluationError(
            "generalisation.families", f"not a family of the mix ({', '.join(specs)})", unknown[0]
        )
    return {f: specs[f] for f in chosen}


def _ccr_label(c: Any) -> str:
    return "own" if c == "own" else f"ccr{float(c):g}"


def cell_labels(gen: Any) -> dict[str, tuple[str, Any]]:
    """Workload label -> ``(family, ccr)`` of every generalisation cell (ccr ``"own"`` for the
    real workflows at their recorded CCR)."""
    out: dict[str, tuple[str, Any]] = {}
    for fam in _families(gen):
        for c in gen.ccrs:
            out[f"{fam}@{_ccr_label(c)}"] = (fam, float(c))
    if _plain(gen.get("real")) is not None:
        for c in gen.real_ccrs:
            out[f"{REAL}@{_ccr_label(c)}"] = (REAL, c if c == "own" else float(c))
    return out


def find_checkpoints(root: Path, name: str, file: str) -> dict[str, Path]:
    """Column suffix -> checkpoint under ``root/name``: ``{"": root/name/file}``, or one per
    sub-directory holding ``file`` (training seeds), or nothing."""
    direct = root / name / file
    if direct.is_file():
        return {"": direct}
    return {p.parent.name: p for p in sorted((root / name).glob(f"*/{file}"))}


def expand(gen: Any) -> tuple[dict[str, Any], list[SchedulerEntry]]:
    """The cells (workload label -> spec) and policy entries of a ``generalisation`` config.

    Raises:
        EvaluationError: on a mix that is not by label, an unknown family, a bad CCR, or a
            checkpoint directory that does not exist or holds no checkpoint at all.
    """
    families = _families(gen)
    for i, c in enumerate(gen.ccrs):
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise EvaluationError(f"generalisation.ccrs[{i}]", "must be a number >= 0", c)
    workloads: dict[str, Any] = {}
    labels = cell_labels(gen)
    for label, (fam, c) in labels.items():
        if fam == REAL:
            spec = dict(_plain(gen.real))
            spec["per_file"] = True
            if c != "own":
                spec["ccr"] = c
        else:
            spec = {**dict(families[fam]), "ccr": c}
        workloads[label] = spec
    entries: list[SchedulerEntry] = []
    if gen.get("checkpoints") is None:
        return workloads, entries
    root = Path(str(gen.checkpoints))
    if not root.is_dir():
        raise EvaluationError(
            "generalisation.checkpoints", f"no such directory (relative to {Path.cwd()})", str(root)
        )
    held = [*families, *([REAL] if REAL in {f for f, _ in labels.values()} else [])]
    for fam in held:
        sub = str(gen.full_mix) if fam == REAL else fam
        cells = [w for w, (f, _c) in labels.items() if f == fam]
        for suffix, path in find_checkpoints(root, sub, str(gen.checkpoint_file)).items():
            name = str(gen.policy_name) + (f"@{suffix}" if suffix else "")
            where = f"generalisation.checkpoints ({sub})"
            entries.append(checkpoint_entry(str(path), name, where, cells))
    if not entries:
        raise EvaluationError(
            "generalisation.checkpoints",
            f"no <family>/{gen.checkpoint_file} (or <family>/<seed>/{gen.checkpoint_file}) "
            f"under it; families: {', '.join(held)}",
            str(root),
        )
    return workloads, entries


def _floors(rows: Sequence[Mapping[str, Any]], reference: str) -> dict[str, list[float]]:
    """Per held-out family, each instance's floor ÷ ``reference``'s makespan: the largest lower
    bound in the instance's rows (:data:`~agents.evaluation.optimality.BOUND_COLUMNS`)."""
    ref: dict[tuple[Any, ...], float] = {}
    bound: dict[tuple[Any, ...], float] = {}
    for r in rows:
        key = (r["held_out"], r["workload"], r["cluster"], r["seed"], r["episode"])
        if r["scheduler"] == reference:
            ref[key] = float(r["makespan"])
        for col in BOUND_COLUMNS:
            x = float(r.get(col, math.nan))
            if math.isfinite(x) and not x <= bound.get(key, -math.inf):
                bound[key] = x
    out: dict[str, list[float]] = {}
    for key, span in ref.items():
        if key in bound and span > 0:
            out.setdefault(key[0], []).append(bound[key] / span)
    return out


def _family_rows(
    summary: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    metric: str,
    outcome: str,
    floors: Mapping[str, Sequence[float]] | None = None,
) -> tuple[list[dict[str, Any]], list[Column]]:
    by = {(e["held_out"], e["scheduler"]): e for e in summary}
    fams = list(dict.fromkeys(e["held_out"] for e in summary))
    present = [n for n in names if any((f, n) in by for f in fams)]
    col = Column(metric, decimals=3, outcome=outcome)
    entries = []
    for f in fams:
        entry: dict[str, Any] = {"held-out family": f}
        entry["instances"] = max(int(by[f, n]["episodes"]) for n in present if (f, n) in by)
        if floors is not None:
            xs = floors.get(f, [])
            entry["floor"] = f"{sum(xs) / len(xs):.3f}" if xs else "-"
        for n in present:
            entry[n] = format_cell(by[f, n], col) if (f, n) in by else "-"
        entries.append(entry)
    # Each family weighs the same; the CI is over families.
    mean_row: dict[str, Any] = {"held-out family": "mean over families", "instances": ""}
    for n in present:
        vals = [float(by[f, n][metric]) for f in fams if (f, n) in by]
        vals = [v for v in vals if math.isfinite(v)]
        if len(vals) == len(fams):
            m, h = ci95(vals)
            mean_row[n] = f"{m:.3f} ± {h:.3f}"
        else:
            mean_row[n] = f"({len(vals)}/{len(fams)} families)" if vals else "-"
    if floors is not None:
        means = [sum(floors[f]) / len(floors[f]) for f in fams if floors.get(f)]
        mean_row["floor"] = f"{sum(means) / len(means):.3f}" if len(means) == len(fams) else "-"
    entries.append(mean_row)
    cols = [Column("held-out family"), Column("instances")]
    cols += [Column("floor")] if floors is not None else []
    return entries, cols + [Column(n) for n in present]


def heldout_sections(
    rows: Sequence[Mapping[str, Any]],
    gen: Any,
    names: Sequence[str],
    *,
    reference: str = "heft",
    compare: Sequence[str] = ("heft", "best_heuristic"),
    floor: bool = True,
) -> list[str]:
    """Markdown sections summarising the grid by held-out family (see the module docstring).

    With ``floor`` (for noise-free runs: the bounds hold for the problems' own durations) each
    family's table has a ``floor`` column: the mean over its instances of the largest lower
    bound ÷ the table's reference, below which no scheduler's mean can go."""
    labels = cell_labels(gen)
    tagged = []
    for r in rows:
        if r["workload"] not in labels:
            continue
        fam, c = labels[r["workload"]]
        tagged.append({**r, "held_out": fam, "ccr_cell": c})
    if not tagged:
        return []
    synth = [r for r in tagged if r["held_out"] != REAL]
    real = [r for r in tagged if r["held_out"] == REAL]
    out = []
    others = [c for c in compare if c != reference and c in names]  # those that ran
    clusters = ", ".join(dict.fromkeys(str(r["cluster"]) for r in tagged))
    ccrs = "/".join(f"{float(c):g}" for c in gen.ccrs)
    for subset, what in (
        (synth, f"every cell (CCR {ccrs} x {clusters})"),
        ([r for r in synth if float(r["ccr_cell"]) >= 1.0], f"the cells at CCR >= 1 ({clusters})"),
    ):
        if not subset:
            continue
        summary = summarize(subset, by=("held_out", "scheduler"), order=names, compare=compare)
        for c in [reference, *others]:
            floors = _floors(subset, c) if floor else None
            entries, cols = _family_rows(summary, names, f"ratio_to_{c}", c, floors)
            note = (
                " `floor`: the mean of each instance's largest lower bound (`lower_bound`, "
                f"`fork_join_bound`, `cpsat_lower_bound`) ÷ {c}; no scheduler's mean can be below "
                "it."
                if floor
                else ""
            )
            out.append(
                f"## Held-out families, {what}: makespan / {c}\n\n"
                "Mean of the paired ratios over the family's instances ± 95% CI "
                f"(wins/ties/losses against {c}).{note}\n\n" + markdown_table(entries, cols)
            )
    if real:
        summary = summarize(real, by=("workload", "cluster", "scheduler"), order=names)
        for c in [reference, *others]:
            entries, cols = pivot(summary, ("workload", "cluster"), names, f"ratio_to_{c}", c)
            out.append(
                f"## Real workflows (each once): makespan / {c}\n\n" + markdown_table(entries, cols)
            )
    if gen.get("checkpoints") is not None:
        policy = str(gen.policy_name)
        scored = {r["held_out"] for r in tagged if str(r["scheduler"]).split("@")[0] == policy}
        missing = [f for f in dict.fromkeys(r["held_out"] for r in tagged) if f not in scored]
        if missing:
            out.append(f"No checkpoint for: {', '.join(missing)}.")
    return out
