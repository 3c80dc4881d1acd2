"""Benchmark ``wass_env.sim.execute`` against SimGrid on the same plan.

Builds one plan (by default HEFT on a 1000-task stress DAG at CCR 1 on the ``het64`` preset),
replays it with ``execute`` and with SimGrid (``wass_env.sim.reference.replay``), and prints both
times and their ratio. SimGrid's time is measured inside its own process (the engine run; the
platform and actor set-up and the ``import simgrid`` are shown apart); the interpreter start-up
and JSON exchange of the subprocess are reported separately. With ``--contention`` it also
shows how much the makespan of a few contention-free plans changes when SimGrid shares link
bandwidth per node pair (a model ``wass_env.sim`` does not have) or per node on a star network
(the ``"nic"`` model, which ``execute`` reproduces: its column is ``execute`` under ``"nic"``).
``scripts/bench_scale.py`` times ``execute`` under ``"nic"`` against SimGrid.

Usage::

    python scripts/bench_simgrid.py [--tasks 1000] [--nodes 64] [--kind het] [--ccr 1]
                                    [--scheduler heft] [--seed 0] [--repeat 5] [--contention]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time

import numpy as np

from wass_env.sim import Plan, Problem, execute, make_cluster, with_ccr
from wass_env.sim.reference import (
    agreement,
    replay,
    simgrid_available,
    simgrid_python,
    simgrid_version,
    stress_workflow,
)

SCHEDULERS = {
    "heft": ("agents.heft", "HEFTScheduler"),
    "random": ("agents.baselines", "RandomScheduler"),
    "slurm": ("agents.baselines", "SlurmScheduler"),
}


def make_plan(n_tasks: int, n_nodes: int, kind: str, ccr: float, scheduler: str, seed: int) -> Plan:
    """The benchmark plan: ``scheduler`` on a seeded stress DAG with the given CCR."""
    cluster = make_cluster(kind, n_nodes)
    wf = stress_workflow(n_tasks, np.random.default_rng(seed), name=f"stress{n_tasks}")
    wf = with_ccr(wf, cluster, ccr)
    module, cls = SCHEDULERS[scheduler]
    sched = getattr(importlib.import_module(module), cls)(seed=seed)
    plan: Plan = sched.plan(Problem(wf, cluster))
    return plan


def time_execute(plan: Plan, repeat: int) -> float:
    """Best wall time of ``execute(plan)`` over ``repeat`` runs [s]."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        execute(plan)
        best = min(best, time.perf_counter() - t0)
    return best


def contention_table(n_tasks: int, n_nodes: int, kind: str, seed: int) -> None:
    """Makespan under SimGrid's shared links relative to the contention-free model."""
    rows = []
    plans = []
    for ccr in (0.1, 1.0, 10.0):
        for name in SCHEDULERS:
            plans.append(make_plan(n_tasks, n_nodes, kind, ccr, name, seed))
            rows.append(f"ccr {ccr:<4g} {name:<7s}")
    free = replay(plans).schedules
    pair = replay(plans, sharing="shared").schedules
    star = replay(plans, topology="star").schedules
    print(f"\nmakespan with bandwidth sharing / contention-free ({n_tasks} tasks, {kind}{n_nodes})")
    print(
        f"{'plan':<20s} {'free [s]':>10s} {'pair-shared':>12s} {'star (NIC)':>11s} "
        f"{'execute nic':>12s}"
    )
    for row, f, p, s, pl in zip(rows, free, pair, star, plans, strict=True):
        nic = Problem(pl.problem.workflow, pl.problem.cluster.with_network("nic"))
        ours = execute(dataclasses.replace(pl, problem=nic))
        print(
            f"{row:<20s} {f.makespan:10.2f} {p.makespan / f.makespan:12.3f} "
            f"{s.makespan / f.makespan:11.3f} {ours.makespan / f.makespan:12.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--kind", choices=("het", "hom"), default="het")
    ap.add_argument("--ccr", type=float, default=1.0)
    ap.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="heft")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--contention", action="store_true", help="also measure bandwidth sharing")
    args = ap.parse_args(argv)
    if not simgrid_available():
        print(
            f"SimGrid is not importable by {simgrid_python()}: run scripts/install_simgrid.sh",
            file=sys.stderr,
        )
        return 1

    plan = make_plan(args.tasks, args.nodes, args.kind, args.ccr, args.scheduler, args.seed)
    ours = time_execute(plan, args.repeat)
    runs = [replay([plan]) for _ in range(max(1, min(args.repeat, 3)))]
    best = min(runs, key=lambda r: r.run_s)
    startup = best.wall_s - best.import_s - best.build_s - best.run_s
    agree = agreement(execute(plan), best.schedules[0])

    print(
        f"plan: {args.scheduler} on a {args.tasks}-task stress DAG (seed {args.seed}, CCR "
        f"{args.ccr:g}) on {args.kind}{args.nodes}; makespan {best.schedules[0].makespan:.3f} s"
    )
    print(f"SimGrid {simgrid_version()} under {simgrid_python()}")
    print(f"{'':<42s} {'seconds':>10s} {'x execute':>10s}")
    table = [
        (f"wass_env.sim.execute (best of {args.repeat})", ours),
        ("SimGrid engine run (in process)", best.run_s),
        ("SimGrid platform + actor set-up", best.build_s),
        ("SimGrid import", best.import_s),
        ("interpreter start-up + JSON exchange", startup),
        ("SimGrid subprocess call, total", best.wall_s),
    ]
    for label, sec in table:
        print(f"{label:<42s} {sec:10.4f} {sec / ours:10.1f}")
    print(
        f"agreement: max relative difference {agree.max_rel:.2e}, "
        f"max absolute {agree.max_abs:.2e} s, makespan {agree.makespan_rel:.2e}"
    )
    if args.contention:
        contention_table(min(args.tasks, 200), min(args.nodes, 16), args.kind, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
