"""Training throughput: MaskablePPO end to end on the real environment and on a zero-cost one.

:func:`training_throughput` trains the configured agent (a composed ``conf/train.yaml``) for a
few rollouts and reports env steps per second, split into rollout collection and updates. With
``env="replay"`` every environment is a :class:`~wass_env.bench.ReplayEnv` of the configured
one (same spaces, recorded observations and masks, no simulation), so the same learner's rate
there is the ceiling and ``1 - rate / ceiling`` is the environment's share of training time.
``scripts/bench_train.py`` runs the grid over vectorisation and settings.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

__all__ = ["training_throughput"]


def _replay_factory(make: Callable[[], Any], steps: int, seed: int) -> Callable[[], Any]:
    from stable_baselines3.common.monitor import Monitor

    from wass_env.bench import ReplayEnv

    def build() -> Any:
        return Monitor(ReplayEnv(make, steps=steps, seed=seed))

    return build


def training_throughput(
    cfg: DictConfig,
    *,
    n_envs: int,
    subproc: bool,
    env: str = "real",
    rollouts: int = 2,
    replay_steps: int = 2048,
) -> dict[str, float]:
    """Steps per second of training the configured agent, after one warm-up rollout.

    The learner, its callbacks (the scheduling metrics of :class:`~agents.ppo.SchedMetricsCallback`)
    and TensorBoard logging are those of the training job (``agents.train``); the progress bar
    is off.

    Args:
        cfg: A composed ``train`` config (its agent must be MaskablePPO).
        n_envs: Number of environments.
        subproc: ``SubprocVecEnv`` (one process per env) instead of ``DummyVecEnv``.
        env: ``"real"`` (the configured env, teacher included) or ``"replay"`` (zero-cost).
        rollouts: Timed rollouts (each ``n_steps * n_envs`` env steps and one update).
        replay_steps: Steps each replay env records.

    Returns:
        ``steps``, ``seconds``, ``steps_per_s``, ``rollout_s`` (collecting, inference
        included) and ``update_s`` (the gradient epochs) of the timed part.
    """
    import torch
    from hydra.utils import instantiate
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from agents.ppo import SchedMetricsCallback, make_env_fn, make_vec
    from agents.train import env_kwargs_from_config, teacher_settings
    from wass_env.sim.cluster import cluster_from_spec

    if env not in ("real", "replay"):
        raise ValueError(f"env must be 'real' or 'replay', got {env!r}")
    seed = int(cfg.seed)
    torch.set_num_threads(int(cfg.train.torch_threads))
    env_kwargs = env_kwargs_from_config(cfg)
    if env_kwargs.get("max_nodes") is None:
        specs = env_kwargs["cluster"]
        specs = specs if isinstance(specs, list) else [specs]
        env_kwargs["max_nodes"] = max(cluster_from_spec(c).n_nodes for c in specs)
    teacher = teacher_settings(cfg)
    wrappers = [teacher] if teacher else []
    if env == "real":
        venv = make_vec(env_kwargs, n_envs, seed, subproc=subproc, wrappers=wrappers)
    else:
        fns = [
            _replay_factory(make_env_fn(env_kwargs, wrappers), replay_steps, seed + i)
            for i in range(n_envs)
        ]
        venv = SubprocVecEnv(fns) if subproc else DummyVecEnv(fns)
    agent = instantiate(cfg.agent, _convert_="all")
    agent.env_kwargs = env_kwargs
    if getattr(agent, "seed", None) is None:
        agent.seed = seed
    per_rollout = int(cfg.agent.n_steps) * n_envs
    try:
        with tempfile.TemporaryDirectory() as tb:
            sched = SchedMetricsCallback(reference_name=str(env_kwargs.get("reference")))
            agent.learn(venv, per_rollout, callback=CallbackList([sched]), tensorboard_log=tb)
            model = agent.model
            timers = {"rollout_s": 0.0, "update_s": 0.0}
            _time_method(model, "collect_rollouts", timers, "rollout_s")
            _time_method(model, "train", timers, "update_s")
            start = model.num_timesteps
            t0 = time.perf_counter()
            model.learn(
                total_timesteps=rollouts * per_rollout,
                callback=CallbackList([sched]),
                reset_num_timesteps=False,
                tb_log_name="maskable_ppo",
            )
            seconds = time.perf_counter() - t0
            steps = model.num_timesteps - start
    finally:
        venv.close()
    return {
        "steps": float(steps),
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        **timers,
    }


def _time_method(obj: Any, name: str, timers: dict[str, float], key: str) -> None:
    """Wrap ``obj.name`` so that its wall time adds up in ``timers[key]``."""
    inner = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            timers[key] += time.perf_counter() - t0

    setattr(obj, name, timed)
