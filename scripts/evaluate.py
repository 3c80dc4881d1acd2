"""Evaluate schedulers on workloads x clusters x seeds (Hydra app over conf/evaluate.yaml)."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from agents.evaluation import check_config, register_configs, run_evaluation
from wass_env.cli import hydra_app

register_configs()


@hydra_app(config_path="../conf", config_name="evaluate", check=check_config)
def main(cfg: DictConfig) -> None:
    """Entry point: ``python scripts/evaluate.py [experiment=NAME] [overrides]``."""
    hc = HydraConfig.get()
    command = " ".join(["python scripts/evaluate.py", *hc.overrides.task])
    run_evaluation(cfg, hc.runtime.output_dir, command=command)


if __name__ == "__main__":
    main()
