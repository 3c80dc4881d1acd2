"""The benchmark helpers: the zero-cost replay env and the training-throughput measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from agents.bench import training_throughput
from agents.config import register_configs
from wass_env.bench import ReplayEnv
from wass_env.envs import WassSchedEnv

REPO = Path(__file__).resolve().parents[1]
SPEC = {"generator": "layered", "n_tasks": [6, 12]}


def _make() -> WassSchedEnv:
    return WassSchedEnv(workload=SPEC, cluster="het16")


def test_replay_env_hands_back_the_recorded_episodes() -> None:
    replay = ReplayEnv(_make, steps=40, seed=3)
    assert replay.observation_space == _make().observation_space
    assert replay.action_space == _make().action_space
    lengths = replay.episode_lengths
    assert sum(lengths) >= 40 and sum(lengths[:-1]) < 40  # whole episodes, no more than needed
    # The same seed and the same random masked policy on the real env give the same episodes.
    env = _make()
    rng = np.random.default_rng(3)
    obs, _ = env.reset(seed=3)
    for ep, length in enumerate(lengths):
        r_obs, _ = replay.reset()
        if ep:
            obs, _ = env.reset()
        assert length == env.problem.n_tasks
        for _ in range(length):
            np.testing.assert_array_equal(r_obs["nodes"], obs["nodes"])
            np.testing.assert_array_equal(replay.action_masks(), env.action_masks())
            obs, reward, done, _, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            r_obs, r_reward, r_done, _, _ = replay.step(0)  # the action is ignored
            assert r_reward == reward and r_done == done
        assert done
    # After the last episode it starts over with the first.
    np.testing.assert_array_equal(replay.reset()[0]["task"], replay._episodes[0][0][0]["task"])


def test_training_throughput_counts_the_timed_rollouts() -> None:
    register_configs()
    overrides = [
        "agent.n_steps=16",
        "agent.batch_size=16",
        "agent.n_epochs=1",
        "workload=layered",
        "cluster=het16",
        "workload.n_tasks=[6,10]",
        "env.reference=null",
        "env.reward_scale=lower_bound",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    for env in ("real", "replay"):
        r = training_throughput(cfg, n_envs=2, subproc=False, env=env, rollouts=2, replay_steps=64)
        assert r["steps"] == 2 * 16 * 2
        assert 0 < r["rollout_s"] + r["update_s"] <= r["seconds"]
        assert r["steps_per_s"] == r["steps"] / r["seconds"]
