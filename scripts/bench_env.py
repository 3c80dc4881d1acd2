"""Environment throughput, as a ratio to CartPole-v1 measured in the same run.

A random masked policy (``action_space.sample(mask=info["action_mask"])``) drives each env through
``gym.make``; resets are included. Rounds alternate between CartPole and the env being measured so
machine noise hits both alike; the reported ratios are medians over rounds:

* ``ratio``: steps/s of policy + env against CartPole's (policy: ``action_space.sample()``);
  the bar applies to it. Gymnasium's masked sampling alone costs about two CartPole steps.
* ``env only``: the same, counting only the time inside ``step`` and ``reset`` for both.

    python scripts/bench_env.py            # 100 x 16 and 1000 x 128, 5 rounds of 2 s
    python scripts/bench_env.py --rounds 3 --seconds 1
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import gymnasium as gym

import wass_env  # noqa: F401  (registers WassSched-v0)
from wass_env.bench import rates

CASES: tuple[tuple[str, dict[str, Any], float], ...] = (
    # name, env kwargs, bar (minimum ratio to CartPole)
    (
        "100 tasks x 16 nodes",
        {"workload": {"generator": "layered", "n_tasks": 100}, "cluster": "het16"},
        0.25,
    ),
    (
        "1000 tasks x 128 nodes",
        {"workload": {"generator": "layered", "n_tasks": 1000}, "cluster": "het128"},
        0.15,
    ),
)


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    cartpole = gym.make("CartPole-v1")
    print(
        f"{'case':<24} {'steps/s':>8} {'CartPole':>8} {'ratio':>6} {'bar':>5} "
        f"{'env only':>9} {'CartPole':>8} {'ratio':>6}"
    )
    failed = False
    for name, kwargs, bar in CASES:
        env = gym.make("WassSched-v0", **kwargs)
        rows = []
        rates(env, 0.3, 0)  # warm-up (imports, caches)
        for r in range(args.rounds):
            ref, ref_env = rates(cartpole, args.seconds / 2, r, masked=False)
            rate, rate_env = rates(env, args.seconds, r)
            rows.append((rate, ref, rate / ref, rate_env, ref_env, rate_env / ref_env))
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        ok = med[2] >= bar
        failed |= not ok
        print(
            f"{name:<24} {med[0]:>8.0f} {med[1]:>8.0f} {med[2]:>6.3f} {bar:>5.2f} "
            f"{med[3]:>9.0f} {med[4]:>8.0f} {med[5]:>6.3f} {'ok' if ok else 'BELOW BAR'}"
        )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
