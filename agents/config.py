"""Typed Hydra configs (structured configs registered in Hydra's ``ConfigStore``).

The YAML files under ``conf/`` extend these schemas: ``conf/train.yaml`` starts from
``train_schema``, and the groups ``cluster/``, ``workload/``, ``agent/`` and ``teacher/`` fill
the untyped (``Any``) slots with plain specs that the environment and
:func:`hydra.utils.instantiate` understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = [
    "EnvConfig",
    "EvalConfig",
    "ImitationConfig",
    "LoopConfig",
    "TrainConfig",
    "register_configs",
]


@dataclass
class EnvConfig:
    """``WassSchedEnv`` arguments besides workload and cluster (see its docstring)."""

    insertion: bool = True
    task_order: str = "rank"
    noise: float = 0.0
    max_nodes: int | None = None
    illegal_action: str = "fallback"
    reference: str | None = "heft"  # baseline planned at episode end for sched/ratio_to_<name>
    reward_weights: dict[str, float] = field(
        default_factory=lambda: {"makespan": 1.0, "progress": 0.0, "illegal": 1.0}
    )
    reward_scale: str = "lower_bound"  # or "reference": rewards relative to its makespan
    lookahead: bool = False  # per-node lookahead features and instance context
    graph_window: int = 0  # > 0: the DAG neighbourhood of the current task for a graph network


@dataclass
class LoopConfig:
    """The training loop."""

    total_timesteps: int = 60_000
    n_envs: int = 2
    subproc: bool = False  # SubprocVecEnv instead of DummyVecEnv
    torch_threads: int = 1  # 1 is fastest for these small networks on a few cores
    progress_bar: bool = True
    eval_freq: int = 0  # MaskableEvalCallback every N env steps (0: off)
    eval_episodes: int = 5


@dataclass
class ImitationConfig:
    """Behaviour cloning of the pilot expert, then DAgger, before any PPO steps
    (:func:`agents.imitation.run_imitation`)."""

    episodes: int = 0  # expert episodes (0: no imitation stage)
    dagger_rounds: int = 0  # rounds where the learner acts and the expert relabels
    dagger_episodes: int = 0  # episodes per round
    epochs: int = 15  # passes over the expert data
    dagger_epochs: int = 8  # passes over all data after each round
    batch_size: int = 256
    lr: float = 1e-3
    k: int = 4  # candidate nodes the expert completes per decision
    base: str = "heft"  # the heuristic completing the expert's rollouts
    n_jobs: int = 1  # collection worker processes
    label_fraction: float = 1.0  # share of the learner's states the expert labels (DAgger)
    cache: str | None = None  # directory where expert episodes are kept and reused


@dataclass
class EvalConfig:
    """Evaluation on unseen seeds after training."""

    episodes: int = 10
    seed_offset: int = 1_000_000  # eval seeds: seed + seed_offset + i, never used in training
    noise: float = 0.0
    baselines: list[str] = field(default_factory=lambda: ["random", "slurm", "heft"])
    reference: str = "heft"  # makespan ratios are reported against this scheduler


@dataclass
class TrainConfig:
    """``scripts/train.py``."""

    seed: int = 0
    cluster: Any = MISSING
    workload: Any = MISSING
    agent: Any = MISSING
    teacher: Any = None
    env: EnvConfig = field(default_factory=EnvConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def register_configs() -> None:
    """Register the schemas (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
