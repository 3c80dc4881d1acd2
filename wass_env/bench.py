"""Throughput measurement shared by the benchmark scripts (``scripts/bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["steps_per_second"]


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
    _, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(64):  # check the clock every 64 steps
            action = (
                env.action_space.sample(mask=info["action_mask"])
                if masked
                else env.action_space.sample()
            )
            _, _, terminated, truncated, info = env.step(action)
            n += 1
            if on_info is not None:
                on_info(info)
            if terminated or truncated:
                _, info = env.reset()
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)
