"""Throughput measurement shared by the benchmark scripts (``scripts/bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

__all__ = ["ReplayEnv", "rates", "steps_per_second"]


def steps_per_second(
    env: Any,
    seconds: float,
    seed: int,
    *,
    masked: bool = True,
    on_info: Callable[[dict[str, Any]], None] | None = None,
) -> float:
    """Steps per second of a random policy over ``seconds`` of wall time, resets included.

    Args:
        env: A Gymnasium environment.
        seconds: Wall time to run [s].
        seed: Seed of the first reset and of the action sampler.
        masked: Sample with ``info["action_mask"]`` (WassSched-v0); False for plain envs.
        on_info: Called with every step's ``info`` (e.g. to collect timings).
    """
    return rates(env, seconds, seed, masked=masked, on_info=on_info)[0]


def rates(
    env: Any,
    seconds: float,
    seed: int,
    *,
    masked: bool = True,
    on_info: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[float, float]:
    """:func:`steps_per_second`, and the steps per second of the environment alone.

    The second figure counts only the time inside ``step`` and ``reset`` (not the policy's
    sampling of the action, which for a masked ``Discrete`` space costs more than a CartPole
    step), so environments with costlier policies compare fairly.

    Returns:
        ``(steps per second of policy + environment, steps per second of the environment)``.
    """
    clock = time.perf_counter
    _, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    n = 0
    inside = 0.0  # [s] in step() and reset()
    t0 = clock()
    deadline = t0 + seconds
    while True:
        for _ in range(64):  # check the clock every 64 steps
            action = (
                env.action_space.sample(mask=info["action_mask"])
                if masked
                else env.action_space.sample()
            )
            a = clock()
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                _, info = env.reset()
            inside += clock() - a
            n += 1
            if on_info is not None:
                on_info(info)
        now = clock()
        if now >= deadline:
            return n / (now - t0), n / inside


class ReplayEnv(gym.Env[Any, Any]):
    """A zero-cost stand-in for an environment: the same spaces, replaying recorded steps.

    At construction it drives ``make_env()`` with a random masked policy for at least ``steps``
    steps (whole episodes) and keeps every observation, mask, reward and ``info``; afterwards
    :meth:`reset` and :meth:`step` hand them back in order (the action is ignored), so a learner
    trained on it pays for everything but the environment: same observations, same masks, same
    episode lengths. Training throughput on it is the ceiling of training on the real one.

    Args:
        make_env: Factory of the environment to imitate (it must have ``action_masks()``).
        steps: Minimum number of recorded steps.
        seed: Seed of the recording.
    """

    def __init__(self, make_env: Callable[[], Any], steps: int = 2048, seed: int = 0) -> None:
        env = make_env()
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        rng = np.random.default_rng(seed)
        self._episodes: list[list[tuple[Any, Any, float, bool, dict[str, Any]]]] = []
        n = 0
        obs, info = env.reset(seed=seed)
        while n < steps:
            mask = np.asarray(env.unwrapped.action_masks(), dtype=bool)
            episode = [(obs, mask, 0.0, False, info)]
            while True:
                obs, reward, terminated, truncated, info = env.step(
                    int(rng.choice(np.flatnonzero(mask)))
                )
                mask = np.asarray(env.unwrapped.action_masks(), dtype=bool)
                episode.append((obs, mask, float(reward), bool(terminated or truncated), info))
                n += 1
                if terminated or truncated:
                    break
            self._episodes.append(episode)
            obs, info = env.reset()
        env.close()
        self._ep = -1
        self._k = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """The first observation of the next recorded episode."""
        super().reset(seed=seed)
        self._ep = (self._ep + 1) % len(self._episodes)
        self._k = 0
        obs, _, _, _, info = self._episodes[self._ep][0]
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The next recorded step (``action`` is ignored)."""
        self._k += 1
        obs, _, reward, done, info = self._episodes[self._ep][self._k]
        return obs, reward, done, False, info

    def action_masks(self) -> NDArray[np.bool_]:
        """The recorded mask of the current step."""
        return self._episodes[self._ep][self._k][1]  # type: ignore[no-any-return]

    @property
    def episode_lengths(self) -> list[int]:
        """Steps of each recorded episode."""
        return [len(ep) - 1 for ep in self._episodes]
