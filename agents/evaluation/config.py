"""Typed configs of ``scripts/evaluate.py`` (``conf/evaluate.yaml``) and the evaluation's error.

The experiments in ``conf/experiment/`` fill these schemas; :func:`register_configs` stores the
schema in Hydra's ``ConfigStore`` as ``evaluate_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.evaluation.seeds import EVAL_SEED
from wass_env.errors import WassError

__all__ = [
    "DEFAULT_SCHEDULERS",
    "CPSATConfig",
    "EvaluateConfig",
    "EvaluationError",
    "GanttConfig",
    "GeneralisationConfig",
    "register_configs",
]

#: Every baseline, in table order: trivial ones first, then list schedulers, the best heuristic
#: per instance, and CP-SAT (small instances only).
DEFAULT_SCHEDULERS: tuple[str, ...] = (
    "random",
    "round_robin",
    "slurm",
    "data_locality",
    "single_node",
    "heft",
    "heft_lookahead",
    "cpop",
    "peft",
    "min_min",
    "max_min",
    "best_heuristic",
    "cpsat",
)


class EvaluationError(WassError):
    """Bad evaluation input: the message names the config field and its value.

    Attributes:
        field: The config field (``"checkpoint"``, ``"schedulers[2]"``, ``"workloads.chain"``).
        value: The offending value (``None`` when the problem is not one value).
        problem: What is wrong.
    """

    def __init__(self, field: str, problem: str, value: Any = None) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        head = field if value is None else f"{field}={value!r}"
        super().__init__(f"{head}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors raised in worker processes travel back pickled.
        return (type(self), (self.field, self.problem, self.value))


@dataclass
class CPSATConfig:
    """CP-SAT, run on small instances only (see :class:`agents.cpsat.CPSATScheduler`).

    Attributes:
        workers: CP-SAT search workers per solve.
        max_nodes: larger clusters get no CP-SAT row.
    """

    time_limit: float = 10.0  # [s] wall-clock limit per solve
    deterministic_time: float | None = None  # CP-SAT work limit: reproducible stops
    workers: int = 1
    max_tasks: int = 40  # larger instances get no CP-SAT row
    max_nodes: int = 8


@dataclass
class GanttConfig:
    """Which episode gets a Gantt chart per scheduler.

    Attributes:
        enabled: Draw the Gantt charts.
    """

    enabled: bool = True
    workload: str | None = None  # default: the first workload
    cluster: str | None = None  # default: the first cluster
    episode: int = 0  # index into the seeds


@dataclass
class GeneralisationConfig:
    """Leave-one-family-out (see :mod:`agents.evaluation.generalisation`).

    Attributes:
        ccrs: Communication-to-computation ratios of the held-out instances.
        checkpoint_file: File name of each fold's checkpoint.
    """

    mix: Any = None  # the training mix (conf/workload/mix.yaml): its labels are the families
    families: list[str] | None = None  # held-out families to score (default: every label)
    ccrs: list[float] = field(default_factory=lambda: [0.1, 1.0, 5.0])
    real: Any = None  # a files spec: every real workflow once, at each of real_ccrs
    real_ccrs: list[Any] = field(default_factory=lambda: ["own", 1.0])  # "own": as recorded
    checkpoints: str | None = None  # <dir>/<family>/<checkpoint_file>, <dir>/<full_mix>/...
    checkpoint_file: str = "model.zip"
    full_mix: str = "all"  # sub-directory of the policy trained on every family
    policy_name: str = "policy"  # its column in the tables


@dataclass
class EvaluateConfig:
    """``scripts/evaluate.py`` (``conf/evaluate.yaml``; experiments in ``conf/experiment/``).

    Attributes:
        description: Experiment description, printed at the top of results.md.
        episodes: Instances per cell (>= 30 for a headline number).
        compare: Schedulers every table counts wins/ties/losses against.
        generalisation: Leave-one-family-out settings (experiment=generalisation).
        cpsat: CP-SAT settings (small instances only).
        gantt: Which episode gets a Gantt chart per scheduler.
        plots: Write the makespan and ratio plots and the Gantt charts.
        progress: Show a progress bar.
    """

    name: str = "custom"  # experiment name, used in titles
    description: str = ""
    seed: int = EVAL_SEED  # instance i of every cell is seed + i (see agents.evaluation.seeds)
    episodes: int = 30
    workloads: dict[str, Any] = field(default_factory=dict)  # label -> workload spec
    clusters: dict[str, Any] = field(default_factory=dict)  # label -> cluster spec(s)
    # Registered names or mappings: {name: col, _target_: pkg.Class, ...} or
    # {name: col, scheduler: registered_name, ...} (keyword arguments besides).
    schedulers: list[Any] = field(default_factory=lambda: list(DEFAULT_SCHEDULERS))
    reference: str = "heft"  # makespan ratios are paired against this scheduler
    compare: list[str] = field(default_factory=lambda: ["heft", "best_heuristic"])
    checkpoint: str | None = None  # a trained policy's checkpoint (model.zip)
    checkpoint_name: str = "policy"  # its name in the tables
    checkpoints: dict[str, str] = field(default_factory=dict)  # more: name -> model.zip
    generalisation: GeneralisationConfig | None = None
    noise: float = 0.0  # sigma of the lognormal runtime noise at execution
    insertion: bool = True  # insertion policy of the baselines' plan builder
    workers: int = 1  # processes running cells in parallel (results do not depend on it)
    cpsat: CPSATConfig = field(default_factory=CPSATConfig)
    gantt: GanttConfig = field(default_factory=GanttConfig)
    plots: bool = True
    details: bool = True  # one table per cell with every metric in results.md
    progress: bool = True


def register_configs() -> None:
    """Register the ``evaluate_schema`` structured config with Hydra (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)
