"""What a training run leaves: validation with the best model, periodic checkpoints, Gantt
images, HParams and the final table in TensorBoard, a resumable checkpoint, a non-empty log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from agents.config import register_configs
from agents.learned import PolicyScheduler
from agents.train import TrainConfigError, check_config, run_training
from wass_env.cli import CONFIG_DIR

# 256 steps in rollouts of 64 x 2 envs; validation, checkpoint and chart every 128 steps.
RUN = [
    "train.total_timesteps=256",
    "train.progress_bar=false",
    "train.eval_freq=128",
    "train.eval_episodes=1",
    "train.checkpoint_freq=128",
    "train.gantt_freq=128",
    "agent.n_steps=64",
    "agent.batch_size=64",
    "eval.episodes=2",
    "eval.baselines=[heft]",
    "workload=layered",
    "workload.n_tasks=[8,12]",
    "cluster=het8",
    "imitation.episodes=0",
]


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_outputs_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_training(_compose(RUN), out, quiet=True)
    # Best model (validation) and the checkpoints at 128 and 256 steps, each with its settings.
    for zip_ in (
        "best/best_model.zip",
        "checkpoints/model_128_steps.zip",
        "checkpoints/model_256_steps.zip",
    ):
        assert (out / zip_).is_file()
        assert (out / zip_.replace(".zip", ".env_kwargs.json")).is_file()
        assert PolicyScheduler(out / zip_).max_nodes == 8  # loadable as a scheduler
    assert (out / "eval" / "evaluations.npz").is_file()
    # TensorBoard: Gantt images at 128 and 256 steps, the hparams, the final table as text.
    (run_dir,) = [p for p in (out / "tb").iterdir() if p.name.startswith("maskable_ppo")]
    acc = _events(run_dir)
    tags = acc.Tags()
    assert [e.step for e in acc.Images("eval/gantt")] == [128, 256]
    assert {"eval/gantt_ratio_to_heft", "eval/mean_reward", "sched/ratio_to_heft"} <= set(
        tags["scalars"]
    )
    assert "eval/final_table/text_summary" in tags["tensors"]
    text = acc.Tensors("eval/final_table/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| maskable_ppo | 2 |" in text and "| heft | 2 |" in text
    from tensorboard.plugins.hparams import plugin_data_pb2

    meta = acc.PluginTagToContent("hparams")
    hp = plugin_data_pb2.HParamsPluginData.FromString(meta["_hparams_/session_start_info"])
    assert hp.session_start_info.hparams["agent.n_steps"].number_value == 64
    assert hp.session_start_info.hparams["cluster.kind"].string_value == "heterogeneous"
    assert result["checkpoint"] == out / "model.zip"

    # Resume from the 128-step checkpoint up to 256 steps: 128 more, counted from 128.
    resumed = tmp_path / "resumed"
    ckpt = out / "checkpoints" / "model_128_steps.zip"
    # The run's PPO settings and agent.temperature apply to the resumed policy (saved with it).
    overrides = [*RUN, f"train.resume={ckpt}", "agent.temperature=2.5"]
    overrides += ["agent.learning_rate=0.00002", "agent.ent_coef=0.0"]
    run_training(_compose(overrides), resumed, quiet=True)
    from sb3_contrib import MaskablePPO

    reloaded = MaskablePPO.load(resumed / "model.zip")
    assert reloaded.num_timesteps == 256
    assert reloaded.policy.mlp_extractor.temperature == 2.5
    assert (reloaded.learning_rate, reloaded.ent_coef) == (2e-5, 0.0)
    assert MaskablePPO.load(ckpt).learning_rate == pytest.approx(_compose(RUN).agent.learning_rate)
    assert MaskablePPO.load(ckpt).policy.mlp_extractor.temperature == 1.0
    (run_dir,) = [p for p in (resumed / "tb").iterdir() if p.name.startswith("maskable_ppo")]
    assert min(e.step for e in _events(run_dir).Scalars("sched/makespan")) > 128
    # A resume file that does not exist, or a policy for another cluster size, is refused.
    with pytest.raises(TrainConfigError, match="train.resume: no checkpoint file"):
        check_config(_compose([*RUN, f"train.resume={tmp_path / 'nope.zip'}"]))
    with pytest.raises(TrainConfigError, match="cannot continue it here"):
        run_training(_compose([*RUN, "cluster=het16", f"train.resume={ckpt}"]), tmp_path / "x")


def test_wass_train_logs_to_its_log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.apps import train

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the app sets sys.argv
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "r"
    argv = [
        "agent=slurm",
        "train.progress_bar=false",
        "eval.episodes=2",
        "workload=layered",
        "workload.n_tasks=[8,12]",
        "cluster=het8",
        f"hydra.run.dir={run}",
    ]
    assert train(argv) == 0
    log = (run / "train.log").read_text()
    assert "Evaluation on 2 fixed instances" in log and "| slurm | 2 |" in log
