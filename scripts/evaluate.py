"""Evaluate schedulers on workloads x clusters x seeds (Hydra app over conf/evaluate.yaml)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.evaluation import main as evaluate
from agents.evaluation import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Entry point: ``python scripts/evaluate.py [experiment=NAME] [overrides]``."""
    hc = HydraConfig.get()
    command = " ".join(["python scripts/evaluate.py", *hc.overrides.task])
    code = evaluate(cfg, hc.runtime.output_dir, command=command)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
