"""The Hydra apps of :mod:`agents`: ``wass train``, ``wass evaluate`` and ``wass ablation``.

Each is a :func:`wass_env.cli.hydra_app` over the packaged config tree
(:data:`wass_env.cli.CONFIG_DIR`): ``main(argv) -> exit code``, declared in the
``wass.commands`` entry-point group; ``scripts/train.py``, ``scripts/evaluate.py`` and
``scripts/ablation.py`` call the same functions. The work itself is in
:func:`agents.train.run_training`, :func:`agents.evaluation.run_evaluation` and
:func:`agents.ablation.run_ablation`, which tests call with a composed config.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents import config as train_configs
from agents import evaluation
from agents.ablation import check_ablation, run_ablation
from agents.train import check_config, run_training
from wass_env.cli import hydra_app

__all__ = ["ablation", "evaluate", "train"]

train_configs.register_configs()
evaluation.register_configs()


@hydra_app(config_name="train", check=check_config)
def train(cfg: DictConfig) -> None:
    """Train an agent on WassSched-v0, then compare it with baselines on fixed instances."""
    run_training(cfg, HydraConfig.get().runtime.output_dir)


@hydra_app(config_name="evaluate", check=evaluation.check_config)
def evaluate(cfg: DictConfig) -> None:
    """Evaluate schedulers on workloads x clusters x seeds: mean, 95% CI, paired ratios."""
    hc = HydraConfig.get()
    command = " ".join(["wass evaluate", *hc.overrides.task])
    evaluation.run_evaluation(cfg, hc.runtime.output_dir, command=command)


@hydra_app(config_name="ablation", check=check_ablation)
def ablation(cfg: DictConfig) -> None:
    """MaskablePPO with and without the Knowledge-Guided Teacher, several seeds."""
    run_ablation(cfg, HydraConfig.get().runtime.output_dir)
