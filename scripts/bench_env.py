"""Environment throughput, as a ratio to CartPole-v1 measured in the same run.

A random masked policy (``action_space.sample(mask=info["action_mask"])``) drives each env through
``gym.make``; resets are included. Rounds alternate between CartPole and the env being measured so
machine noise hits both alike; the reported ratio is the median over rounds.

    python scripts/bench_env.py            # 100 x 16 and 1000 x 128, 5 rounds of 2 s
    python scripts/bench_env.py --rounds 3 --seconds 1
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import gymnasium as gym

import wass_env  # noqa: F401  (registers WassSched-v0)
from wass_env.bench import steps_per_second

CASES: tuple[tuple[str, dict[str, Any], float], ...] = (
    # name, env kwargs, bar (minimum ratio to CartPole)
    (
        "100 tasks x 16 nodes",
        {"workload": {"generator": "layered", "n_tasks": 100}, "cluster": "het16"},
        0.10,
    ),
    (
        "1000 tasks x 128 nodes",
        {"workload": {"generator": "layered", "n_tasks": 1000}, "cluster": "het128"},
        0.03,
    ),
)


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    cartpole = gym.make("CartPole-v1")
    print(f"{'case':<24} {'steps/s':>10} {'CartPole':>10} {'ratio':>7} {'bar':>5}")
    failed = False
    for name, kwargs, bar in CASES:
        env = gym.make("WassSched-v0", **kwargs)
        rates, refs, ratios = [], [], []
        steps_per_second(env, 0.3, 0)  # warm-up (imports, caches)
        for r in range(args.rounds):
            ref = steps_per_second(cartpole, args.seconds / 2, r, masked=False)
            rate = steps_per_second(env, args.seconds, r)
            rates.append(rate)
            refs.append(ref)
            ratios.append(rate / ref)
        ratio = statistics.median(ratios)
        ok = ratio >= bar
        failed |= not ok
        print(
            f"{name:<24} {statistics.median(rates):>10.0f} {statistics.median(refs):>10.0f} "
            f"{ratio:>7.3f} {bar:>5.2f} {'ok' if ok else 'BELOW BAR'}"
        )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
