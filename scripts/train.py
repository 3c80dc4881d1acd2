"""Train an agent on WassSched-v0 and compare it with baselines (Hydra app over conf/train.yaml)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.config import register_configs
from agents.train import main as train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    """Entry point: ``python scripts/train.py [overrides]``."""
    code = train(cfg, HydraConfig.get().runtime.output_dir)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
