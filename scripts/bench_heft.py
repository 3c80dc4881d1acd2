"""Planning time of HEFT (and the other list schedulers), as a ratio to a reference in the same run.

Reference: one ``np.argsort`` of 10^6 seeded uniform floats (median of the rounds). Each case is a
random layered DAG (:func:`wass_env.workloads.generators.layered`, task work uniform in
[10, 100] s, edge bytes rescaled to CCR 1 on the cluster) on a heterogeneous preset cluster; the
time covers the whole ``plan`` call on a fresh :class:`~wass_env.sim.problem.Problem`, rank
computation included (median of the rounds). The CP-SAT row solves a 30-task, 4-node instance
once, with its default single worker, and reports its wall time, status, makespan relative to
HEFT and the distance to its lower bound.

    python scripts/bench_heft.py              # 5 rounds
    python scripts/bench_heft.py --rounds 3 --no-cpsat
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from agents.cpsat import CPSATScheduler
from agents.registry import make_scheduler
from wass_env.sim import Cluster, Problem, Workflow, preset, with_ccr
from wass_env.workloads.generators import layered

WORK = (10.0, 100.0)  # [s] task work range


def layered_dag(n_tasks: int, cluster: Cluster, rng: np.random.Generator) -> Workflow:
    """A layered DAG about 30 layers deep with sparse extra edges, at CCR 1 on ``cluster``."""
    width = max(4, n_tasks // 30)
    wf = layered(n_tasks, rng, width=width, density=min(0.3, 3.0 / width), work=WORK)
    return with_ccr(wf, cluster, 1.0)


def median_time(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``fn()`` over ``rounds`` calls [s]."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cpsat", action="store_true", help="skip the CP-SAT row")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    data = np.random.default_rng(args.seed).random(1_000_000)
    ref = median_time(lambda: np.argsort(data), args.rounds)
    print(f"reference: np.argsort of 1e6 floats = {ref * 1e3:.1f} ms (median of {args.rounds})")
    print(f"{'scheduler':<18} {'tasks x nodes':>14} {'time [s]':>10} {'x reference':>12}")

    cases: list[tuple[str, int, str]] = [("heft", 100, "het16"), ("heft", 1000, "het128")]
    cases += [(s, 1000, "het128") for s in ("cpop", "peft", "min_min", "max_min")]
    cases += [("data_locality", 1000, "het128")]
    # Schedulers that replay plans: one HEFT-with-lookahead trial per candidate node, and pilot
    # passes (the main job's plan hint).
    cases += [("heft_lookahead", 100, "het16"), ("improved_portfolio", 100, "het16")]
    workflows: dict[tuple[int, str], tuple[Workflow, Cluster]] = {}
    for name, n_tasks, cname in cases:
        if (n_tasks, cname) not in workflows:
            cl = preset(cname)
            workflows[n_tasks, cname] = (layered_dag(n_tasks, cl, rng), cl)
        wf, cl = workflows[n_tasks, cname]
        sched = make_scheduler(name)
        t = median_time(lambda: sched.plan(Problem(wf, cl)), args.rounds)  # noqa: B023
        label = f"{n_tasks} x {cl.n_nodes}"
        print(f"{name:<18} {label:>14} {t:>10.3f} {t / ref:>12.2f}")

    if not args.no_cpsat:
        cl = Cluster([2.0, 1.0, 1.0, 0.5], [2, 1, 2, 1], bandwidth=1.25e9, latency=1e-4)
        wf = layered_dag(30, cl, rng)
        res = CPSATScheduler(time_limit=60.0).solve(Problem(wf, cl))
        print(
            f"{'cpsat':<18} {'30 x 4':>14} {res.wall_time:>10.3f} {res.wall_time / ref:>12.1f}"
            f"   {res.status}, makespan / HEFT = {res.makespan / res.heft_makespan:.3f}, "
            f"gap to lower bound = {res.gap:.2%}"
        )


if __name__ == "__main__":
    main()
