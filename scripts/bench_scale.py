"""Scale: the environment's cost per step at 100,000 tasks against 1,000, and ``execute`` under
the ``nic`` network against SimGrid on the same plan.

Part ``env``: ``gym.make("WassSched-v0")`` on random layered DAGs (the generator's defaults) on
het16, driven by two policies: a random masked one (``action_space.sample(mask=...)``) and one
that puts every task on the lowest-index feasible node (all tasks pile onto one node). The cost
per step is wall time over steps for whole episodes, resets (drawing the workflow) and the
end-of-episode execution included. The small size runs before and after each large episode, and
the ratio is large over the median of the small rounds, so machine noise hits both alike.

Part ``nic``: HEFT's plan of a stress DAG (``wass_env.sim.reference.stress_workflow``) on het64
under ``"nic"``; ``execute`` (best of ``--repeat``) against one SimGrid replay of the same plan
on the star platform (engine time, and the whole subprocess call). Both must agree to 1e-6.

    python scripts/bench_scale.py                    # both parts (several minutes)
    python scripts/bench_scale.py --part env --large 30000
    python scripts/bench_scale.py --part nic --tasks 10000 --ccr 0.1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

import wass_env  # noqa: F401  (registers WassSched-v0)
from wass_env.sim import Problem, execute, make_cluster, with_ccr
from wass_env.sim.reference import (
    agreement,
    replay,
    simgrid_available,
    simgrid_python,
    simgrid_version,
    stress_workflow,
)

Policy = Callable[[Any, dict[str, Any]], int]


def random_policy(env: Any, info: dict[str, Any]) -> int:
    """A uniformly random feasible node."""
    return int(env.action_space.sample(mask=info["action_mask"]))


def one_node_policy(env: Any, info: dict[str, Any]) -> int:
    """The lowest-index feasible node: every task lands on the same node when it fits."""
    return int(np.argmax(info["action_mask"]))


POLICIES: dict[str, Policy] = {"random": random_policy, "one_node": one_node_policy}


def seconds_per_step(
    n_tasks: int, policy: Policy, seed: int, min_steps: int, cluster: str = "het16"
) -> float:
    """Wall seconds per step over whole episodes (at least ``min_steps`` steps) [s]."""
    env = gym.make(
        "WassSched-v0", workload={"generator": "layered", "n_tasks": n_tasks}, cluster=cluster
    )
    env.action_space.seed(seed)
    steps = 0
    t0 = time.perf_counter()
    episode = 0
    while steps < min_steps:
        _, info = env.reset(seed=seed + episode)
        episode += 1
        while True:
            _, _, terminated, truncated, info = env.step(policy(env, info))
            steps += 1
            if terminated or truncated:
                break
    return (time.perf_counter() - t0) / steps


def env_part(small: int, large: int, rounds: int) -> bool:
    """Print the per-step table; True when every ratio meets the bar (<= 3)."""
    print(f"env: cost per step, layered DAGs on het16, resets included ({rounds} large rounds)")
    print(f"{'policy':<10} {small:>10,} tasks [us] {large:>10,} tasks [us] {'ratio':>7} bar")
    ok = True
    for name, policy in POLICIES.items():
        seconds_per_step(small, policy, 0, small)  # warm-up: imports, caches
        smalls, larges = [], []
        for r in range(rounds):
            smalls.append(seconds_per_step(small, policy, 100 + r, 20 * small))
            larges.append(seconds_per_step(large, policy, 200 + r, large))
            smalls.append(seconds_per_step(small, policy, 300 + r, 20 * small))
        s, lg = statistics.median(smalls), statistics.median(larges)
        ratio = lg / s
        ok &= ratio <= 3.0
        print(
            f"{name:<10} {s * 1e6:>16.1f} {lg * 1e6:>16.1f} {ratio:>7.2f} <= 3 "
            f"{'ok' if ratio <= 3.0 else 'ABOVE BAR'}"
        )
    return ok


def nic_part(n_tasks: int, n_nodes: int, ccr: float, repeat: int, seed: int) -> bool:
    """Print execute vs SimGrid on one plan; True when the ratio meets the bar (>= 20)."""
    if not simgrid_available():
        print(f"nic: skipped, SimGrid is not importable by {simgrid_python()}", file=sys.stderr)
        return True
    from agents.heft import HEFTScheduler

    cluster = make_cluster("heterogeneous", n_nodes, network="nic")
    wf = with_ccr(stress_workflow(n_tasks, np.random.default_rng(seed)), cluster, ccr)
    plan = HEFTScheduler().plan(Problem(wf, cluster))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        ours = execute(plan)
        best = min(best, time.perf_counter() - t0)
    run = replay([plan], max_tasks_per_call=n_tasks)
    agree = agreement(ours, run.schedules[0])
    print(
        f"\nnic: HEFT's plan of a {n_tasks}-task stress DAG (seed {seed}, CCR {ccr:g}) on "
        f"het{n_nodes}; makespan {ours.makespan:.1f} s executed, {plan.makespan:.1f} s planned "
        f"(contention-free estimates); SimGrid {simgrid_version()}, max relative difference "
        f"{agree.max_rel:.1e}"
    )
    print(f"{'':<40} {'seconds':>9} {'x execute':>10}")
    rows = [
        (f"wass_env.sim.execute (best of {repeat})", best),
        ("SimGrid engine run (in process)", run.run_s),
        ("SimGrid subprocess call, total", run.wall_s),
    ]
    for label, sec in rows:
        print(f"{label:<40} {sec:>9.3f} {sec / best:>10.1f}")
    ok = run.run_s / best >= 20.0 and agree.max_rel <= 1e-6
    print(f"bar: SimGrid engine run >= 20 x execute: {'ok' if ok else 'BELOW BAR'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the parts, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("env", "nic", "all"), default="all")
    ap.add_argument("--small", type=int, default=1000, help="tasks of the reference size")
    ap.add_argument("--large", type=int, default=100_000, help="tasks of the large size")
    ap.add_argument("--rounds", type=int, default=1, help="large episodes per policy")
    ap.add_argument("--tasks", type=int, default=10_000, help="nic part: tasks of the plan")
    ap.add_argument("--nodes", type=int, default=64, help="nic part: het nodes")
    ap.add_argument("--ccr", type=float, default=1.0, help="nic part: CCR of the DAG")
    ap.add_argument("--repeat", type=int, default=3, help="nic part: execute runs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ok = True
    if args.part in ("env", "all"):
        ok &= env_part(args.small, args.large, args.rounds)
    if args.part in ("nic", "all"):
        ok &= nic_part(args.tasks, args.nodes, args.ccr, args.repeat, args.seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
