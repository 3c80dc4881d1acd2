"""Train an agent on WassSched-v0 and compare it with baselines (Hydra app over conf/train.yaml)."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.config import register_configs
from agents.train import check_config, run_training
from wass_env.cli import hydra_app

register_configs()


@hydra_app(config_path="../conf", config_name="train", check=check_config)
def main(cfg: DictConfig) -> None:
    """Entry point: ``python scripts/train.py [overrides]``."""
    run_training(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
