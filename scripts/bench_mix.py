"""How much of a training env's time the mix's workflow generation takes.

One ``WassSched-v0`` on the training mix (``conf/workload/mix.yaml`` on ``conf/cluster/mix.yaml``)
is driven by a random masked policy, as a training env is; the time inside the workload sampler
(generating or fetching the episode's workflow, including the recipes' lazily generated pools)
is reported as a share of the env's total time, phase by phase: in the first phases the pools
are still filling (each recipe instance is generated once, 0.05-0.3 s), later ones are the
steady state.

    python scripts/bench_mix.py                 # 3 phases of 300 episodes
    python scripts/bench_mix.py --episodes 100 --phases 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from wass_env.envs.wass_sched import WassSchedEnv
from wass_env.sim.cluster import expand_cluster_spec

CONF = Path(__file__).resolve().parents[1] / "conf"


def _run(env: WassSchedEnv, episodes: int, rng: np.random.Generator) -> float:
    t0 = time.perf_counter()
    for _ in range(episodes):
        _obs, info = env.reset()
        done = False
        while not done:
            mask = info["action_mask"]
            action = int(rng.choice(np.flatnonzero(mask)))
            _obs, _r, done, _t, info = env.step(action)
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and print the shares."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=300, help="episodes per phase")
    ap.add_argument("--phases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    workload = OmegaConf.to_container(OmegaConf.load(CONF / "workload" / "mix.yaml"))
    clusters = expand_cluster_spec(
        OmegaConf.to_container(OmegaConf.load(CONF / "cluster/mix.yaml"))
    )
    env = WassSchedEnv(workload=workload, cluster=clusters)
    sampler = env.workload
    timer = [0.0]
    inner = sampler.sample

    def timed(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            timer[0] += time.perf_counter() - t0

    sampler.sample = timed  # type: ignore[method-assign]
    env.reset(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"{'episodes':>12} {'total [s]':>10} {'sampler [s]':>12} {'share':>7} {'pool':>9}")
    size = sum(p for p in _pool_sizes(workload))
    for k in range(args.phases):
        timer[0] = 0.0
        total = _run(env, args.episodes, rng)
        span = f"{k * args.episodes + 1}-{(k + 1) * args.episodes}"
        filled = _recipe_cache_size()
        print(
            f"{span:>12} {total:>10.1f} {timer[0]:>12.1f} {timer[0] / total:>7.1%} "
            f"{filled:>4}/{size:<4}"
        )


def _pool_sizes(spec: Any) -> list[int]:
    """Pool size of every recipe in a mix spec."""
    return [int(s.get("pool", 8)) for s in spec["mix"].values() if "recipe" in s]


def _recipe_cache_size() -> int:
    """Recipe instances generated so far in this process."""
    from wass_env.workloads.sampler import _recipe_instance

    return int(_recipe_instance.cache_info().currsize)


if __name__ == "__main__":
    main()
