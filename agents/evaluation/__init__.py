"""Scoring schedulers honestly: fixed paired instances, disjoint seeds, strong baselines, CIs.

Every scheduler (heuristic, CP-SAT, learned policy) plans the same fixed instances, is executed
by the same simulator with the same runtime noise, and is compared per instance (paired) with
HEFT and with the best heuristic of that instance. The modules, one concern each:

* :mod:`~agents.evaluation.seeds`: the disjoint training / validation / evaluation seed ranges;
* :mod:`~agents.evaluation.config`: the typed config of ``scripts/evaluate.py`` and its error;
* :mod:`~agents.evaluation.specs`: scheduler columns by name, ``_target_`` or checkpoint;
* :mod:`~agents.evaluation.instances`: the instances of a cell, each a function of its seed;
* :mod:`~agents.evaluation.grid`: workloads x clusters x seeds x schedulers, and its checks;
* :mod:`~agents.evaluation.run`: :func:`run_episode` (the one episode runner) and
  :func:`run_grid`;
* :mod:`~agents.evaluation.stats`: the one paired-ratio routine and the one summariser;
* :mod:`~agents.evaluation.tables`: the one table formatter and the Markdown report;
* :mod:`~agents.evaluation.plots`, :mod:`~agents.evaluation.outputs`: figures and files;
* :mod:`~agents.evaluation.generalisation`: leave-one-family-out;
* :mod:`~agents.evaluation.app`: :func:`run_evaluation`, what ``scripts/evaluate.py`` runs.
"""

from __future__ import annotations

from agents.evaluation.app import check_config, main, run_evaluation
from agents.evaluation.config import (
    DEFAULT_SCHEDULERS,
    CPSATConfig,
    EvaluateConfig,
    EvaluationError,
    GanttConfig,
    GeneralisationConfig,
    register_configs,
)
from agents.evaluation.grid import Grid, check_grid, grid_from_config
from agents.evaluation.instances import cell_problems, episode_problems
from agents.evaluation.outputs import write_csv, write_text
from agents.evaluation.run import Episode, GridResult, run_episode, run_grid
from agents.evaluation.seeds import EVAL_SEED, TRAIN_SEEDS, VALIDATION_SEED, eval_seeds
from agents.evaluation.specs import (
    SchedulerEntry,
    checkpoint_entry,
    checkpoint_spec,
    parse_scheduler,
)
from agents.evaluation.stats import (
    COMPARE,
    EPISODE_KEY,
    TIE_RTOL,
    add_paired_ratios,
    ci95,
    outcome_counts,
    summarize,
)
from agents.evaluation.tables import Column, format_mean_ci, grid_markdown, markdown_table

__all__ = [
    "COMPARE",
    "DEFAULT_SCHEDULERS",
    "EPISODE_KEY",
    "EVAL_SEED",
    "TIE_RTOL",
    "TRAIN_SEEDS",
    "VALIDATION_SEED",
    "CPSATConfig",
    "Column",
    "Episode",
    "EvaluateConfig",
    "EvaluationError",
    "GanttConfig",
    "GeneralisationConfig",
    "Grid",
    "GridResult",
    "SchedulerEntry",
    "add_paired_ratios",
    "cell_problems",
    "check_config",
    "check_grid",
    "checkpoint_entry",
    "checkpoint_spec",
    "ci95",
    "episode_problems",
    "eval_seeds",
    "format_mean_ci",
    "grid_from_config",
    "grid_markdown",
    "main",
    "markdown_table",
    "outcome_counts",
    "parse_scheduler",
    "register_configs",
    "run_episode",
    "run_evaluation",
    "run_grid",
    "summarize",
    "write_csv",
    "write_text",
]
