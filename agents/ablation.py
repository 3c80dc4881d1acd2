"""The paper's ablation: MaskablePPO with and without the Knowledge-Guided Teacher, several seeds.

Every variant (``conf/ablation.yaml``: a label and the ``train`` overrides that define it)
trains on the same configuration (``conf/train.yaml`` plus ``overrides``) for the same number of
steps with each seed, and is evaluated on the same unseen episodes against HEFT. The table
reports the trained policy's makespan / HEFT and / lower bound (mean and 95% CI over seeds of
the per-seed means) and how fast it learned: makespan / lower bound of the training episodes,
over all of training and over its last quarter.

:func:`run_ablation` takes a composed ``ablation`` config and an output directory; ``wass
ablation`` (:mod:`agents.apps`) is the command line. The teacher's variants need its files
(``wass build-kb && wass train-predictor``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from agents.evaluation import markdown_table, summarize, write_csv, write_text
from agents.evaluation.tables import Column
from agents.train import check_config
from wass_env.cli import compose_config
from wass_env.errors import WassError

__all__ = ["AblationError", "ablation_runs", "check_ablation", "run_ablation"]

log = logging.getLogger(__name__)

#: Columns of the ablation table (summary keys of :func:`run_ablation`).
METRICS = ("ratio_to_heft", "ratio_to_lower_bound", "train_mean", "train_last", "seconds")


class AblationError(WassError):
    """A bad ablation setting (the message names the field and its value)."""


def _selected(cfg: DictConfig) -> list[str]:
    names = list(cfg.variants)
    chosen = names if cfg.run is None else [str(v) for v in cfg.run]
    unknown = [v for v in chosen if v not in cfg.variants]
    if unknown:
        raise AblationError(f"run: unknown variant {unknown[0]!r}; choose from {names}")
    if not chosen:
        raise AblationError("run: no variant selected (an empty list)")
    return chosen


def ablation_runs(cfg: DictConfig) -> list[tuple[str, int, DictConfig]]:
    """``(variant, seed, composed train config)`` of every run, each checked.

    Raises:
        AblationError: on a bad count or variant name.
        agents.train.TrainConfigError: on a bad override (named, with its value).
    """
    for field in ("seeds", "steps", "episodes"):
        if int(cfg[field]) < 1:
            raise AblationError(f"{field}: must be >= 1, got {cfg[field]!r}")
    common = [
        f"train.total_timesteps={int(cfg.steps)}",
        f"eval.episodes={int(cfg.episodes)}",
        "train.progress_bar=false",
        *[str(o) for o in cfg.overrides],
    ]
    runs = []
    for name in _selected(cfg):
        extra = [str(o) for o in cfg.variants[name].overrides]
        for seed in range(int(cfg.seeds)):
            train_cfg = compose_config("train", [*common, *extra, f"seed={seed}"])
            check_config(train_cfg)
            runs.append((name, seed, train_cfg))
    return runs


def check_ablation(cfg: DictConfig) -> None:
    """Compose and check every run's config (what the command line does before it starts)."""
    ablation_runs(cfg)


def run_ablation(cfg: DictConfig, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Train and evaluate every variant with every seed; write ``runs.csv`` and ``ablation.md``.

    Args:
        cfg: A composed ``ablation`` config.
        out_dir: Output directory; run ``<variant>/seed<k>`` trains in its own sub-directory.

    Returns:
        ``{"rows": [...], "summary": [...], "table": markdown}``.
    """
    from tqdm.auto import tqdm

    from agents.train import run_training

    out = Path(out_dir)
    # Every run's config is composed and checked before the first one trains.
    runs = ablation_runs(cfg)
    rows = []
    for name, seed, train_cfg in tqdm(runs, desc="ablation", unit="run"):
        t0 = time.perf_counter()
        result = run_training(train_cfg, out / name / f"seed{seed}", quiet=True)
        agent = next(e for e in result["summary"] if e["scheduler"] == "maskable_ppo")
        curve = [r for _, r in result["train_episodes"]] or [float("nan")]
        last = curve[-max(len(curve) // 4, 1) :]
        rows.append(
            {
                "variant": name,
                "label": str(cfg.variants[name].label or name),
                "seed": seed,
                "ratio_to_heft": agent["ratio_to_heft"],
                "ratio_to_lower_bound": agent["ratio_to_lower_bound"],
                "makespan": agent["makespan"],
                "train_mean": sum(curve) / len(curve),
                "train_last": sum(last) / len(last),
                "seconds": time.perf_counter() - t0,
            }
        )
        log.info("%s, seed %d: %.3f x HEFT", name, seed, agent["ratio_to_heft"])
    write_csv(rows, out / "runs.csv")
    summary = summarize(rows, by=("label",), metrics=METRICS, compare=())
    for e in summary:
        e["seeds"] = e.pop("episodes")
    table = markdown_table(
        summary,
        [Column("label", "variant"), Column("seeds"), *(Column(m, decimals=3) for m in METRICS)],
    )
    write_text(table + "\n", out / "ablation.md")
    log.info(
        "%d training steps per run; mean ± 95%% CI over seeds. ratio_to_heft and "
        "ratio_to_lower_bound: the trained (deterministic) policy on %d unseen episodes; "
        "train_mean / train_last: makespan / lower bound of the training episodes (stochastic "
        "policy), over all of training / its last quarter:\n%s\nResults: %s",
        int(cfg.steps),
        int(cfg.episodes),
        table,
        out,
    )
    return {"rows": rows, "summary": summary, "table": table}
