"""Train an agent on WassSched-v0 and compare it with baselines (Hydra app over conf/train.yaml)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.config import register_configs
from agents.train import run_training

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Entry point: ``python scripts/train.py [overrides]``."""
    run_training(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
