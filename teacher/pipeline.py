"""Stage 2 end to end: train on a base, re-key it, measure the teacher, write the outputs.

:func:`run_stage2` is what ``scripts/train_predictor.py`` (and ``make teacher``) runs: it trains
the encoder and predictor (:func:`teacher.training.train_teacher`), re-keys the base with the
model, saves ``model.wtm``, ``kb.wkb`` and ``report.json`` in the output directory, then measures
the greedy teacher (:func:`teacher.evaluate.greedy_evaluation`) against HEFT and the best
heuristic on the generalisation experiment's cells of the families the base left out (unseen
families) and, with fewer instances, of the families it holds (new instances).

``report.json`` holds the headline figures at the top level:

* ``r2``: R^2 of the predicted makespan / lower bound on held-out instances of seen families;
* ``pair_accuracy``: how often two actions of one state (same continuation policy) are ordered
  like their outcomes, on those instances; ``pair_accuracy_earliest_finish`` is the same for
  the rule "the earliest finish wins", and ``hard_pair_accuracy`` the predictor's on the pairs
  that rule gets wrong (what it knows beyond it);
* ``family_hit_rate``: the share of retrieved cases from the query's family, on those instances;
* ``greedy_ratio_to_heft`` / ``greedy_ratio_to_best_heuristic``: the greedy teacher's paired
  makespan ratio on the unseen families (mean over families, with ``_ci95``), and
  ``greedy_seen_ratio_to_heft`` on the seen families;

and the details under ``training`` (every split, with and without context, the similarity
spread) and ``greedy`` (per family).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from teacher.build import DEFAULT_HOLDOUT, mix_workload
from teacher.evaluate import greedy_evaluation
from teacher.kb import KnowledgeBase
from teacher.teacher import Teacher, TeacherScheduler
from teacher.training import PredictorTrainConfig, train_teacher
from wass_env.io import atomic_write

__all__ = ["headline", "run_stage2"]


def headline(training: dict[str, Any], greedy: dict[str, Any] | None) -> dict[str, Any]:
    """The top-level figures of ``report.json`` (see the module docstring)."""
    val = training.get("context", {}).get("val", {})
    ret = training.get("retrieval", {}).get("val", {})
    out: dict[str, Any] = {
        "r2": val.get("r2", math.nan),
        "pair_accuracy": val.get("pair_accuracy", math.nan),
        "hard_pair_accuracy": val.get("hard_pair_accuracy", math.nan),
        "pair_accuracy_earliest_finish": training.get("pair_baselines", {})
        .get("earliest_finish", {})
        .get("val", math.nan),
        "family_hit_rate": ret.get("family_hit_rate", math.nan),
        "similarity": {k: v for k, v in ret.items() if k.startswith("sim_")},
    }
    for part in ("unseen", "seen"):
        g = (greedy or {}).get(part)
        prefix = "greedy_" if part == "unseen" else "greedy_seen_"
        for ref in ("heft", "best_heuristic"):
            col = f"ratio_to_{ref}"
            out[f"{prefix}{col}"] = g[col] if g else math.nan
            out[f"{prefix}{col}_ci95"] = g[f"{col}_ci95"] if g else math.nan
            out[f"{prefix}vs_{ref}"] = g[f"vs_{ref}"] if g else "-"
    return out


def run_stage2(
    kb: KnowledgeBase,
    out: str | Path,
    config: PredictorTrainConfig,
    *,
    index: str = "flat",
    unseen: Sequence[str] = DEFAULT_HOLDOUT,
    unseen_episodes: int = 10,
    seen_episodes: int = 2,
    workers: int = 1,
    margin: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train, re-key, save and measure (see the module docstring).

    Args:
        kb: The base (stage 1's), re-keyed in place.
        out: Output directory (``model.wtm``, ``kb.wkb``, ``report.json``).
        config: Training settings.
        index: Index kind stored with the re-keyed base.
        unseen: Families of the training mix the base left out: the greedy teacher's unseen
            families (those the base does hold are skipped).
        unseen_episodes: Instances per cell on unseen families (0: skip).
        seen_episodes: Instances per cell on the base's families (0: skip).
        workers: Processes for the greedy evaluation.
        margin: The greedy teacher's trust region (:class:`~teacher.teacher.TeacherScheduler`:
            HEFT's node unless ``a*_t`` is predicted more than ``margin`` shorter; 0: plain
            ``a*_t``), recorded as ``greedy_margin``.
        progress: Called with status lines.

    Returns:
        The report written to ``report.json``.
    """
    say = progress or (lambda s: None)
    out = Path(out)
    result = train_teacher(kb, config, progress=progress)
    result.model.save(out / "model.wtm")
    kb.set_keys(result.keys, result.model.key_model)
    kb.index(index)
    kb.save(out / "kb.wkb")
    training = result.report
    report: dict[str, Any] = {**headline(training, None), "training": training}
    atomic_write(out / "report.json", json.dumps(report, indent=2, default=str))
    held = set(kb.episode_strings("family"))
    mix = mix_workload(exclude=())["mix"]
    sets = {
        "unseen": ({f: mix[f] for f in unseen if f in mix and f not in held}, unseen_episodes),
        "seen": ({f: s for f, s in mix.items() if f in held}, seen_episodes),
    }
    greedy: dict[str, Any] = {}
    spec = {
        "scheduler": "teacher",
        "kb": str(out / "kb.wkb"),
        "model": str(out / "model.wtm"),
        "margin": float(margin),
    }
    for part, (families, episodes) in sets.items():
        if not families or episodes <= 0:
            continue
        say(f"greedy teacher on {len(families)} {part} families, {episodes} instances per cell")
        sch: Any = (
            spec
            if workers > 1
            else TeacherScheduler(Teacher(result.model, kb), margin=float(margin))
        )
        g = greedy_evaluation(sch, families, episodes=episodes, workers=workers)
        g.pop("rows")
        g.pop("summary")
        greedy[part] = g
    report = {
        **headline(training, greedy),
        "greedy_margin": float(margin),
        "training": training,
        "greedy": greedy,
    }
    atomic_write(out / "report.json", json.dumps(report, indent=2, default=str))
    return report
