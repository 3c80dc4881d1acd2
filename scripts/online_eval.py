"""Online against static: HEFT's plan replayed rigidly vs HEFT dispatching online.

For each runtime-noise sigma and each network model, the same instances (a workflow drawn from
``--workload`` on ``--cluster`` with that network) and, per instance, the same realised runtimes
(per-task mean-one lognormal factors, :func:`wass_env.sim.execute.runtime_noise`) are run by:

* ``heft (static)``: HEFT's plan (contention-free estimates), replayed by
  :func:`~wass_env.sim.execute.execute` (each node keeps its order; the network model in force);
* ``heft_contention (static)``: the plan with contention-aware estimates, replayed;
* ``single_node (static)``: every task on the best single node (the trivial baseline);
* ``heft (online)``, ``slurm (online)``: :meth:`~wass_env.scheduling.Scheduler.run_online`
  (decisions as tasks become ready, see :mod:`wass_env.sim.online`; ``"queue"`` dispatch: a
  task may wait in a busy node's queue); ``heft (online, idle)``: only nodes that can start the
  task now;
* optionally ``ppo (online)``: MaskablePPO (the ``node_scoring`` policy) trained on
  ``WassSchedOnline-v0`` for ``--ppo-steps`` per seed, ``--ppo-seeds`` seeds, on training
  instances drawn from seeds disjoint from the evaluation ones; its row pools the seeds.

Each row: mean makespan / lower bound ± 95% CI, and the paired ratio to ``heft (static)`` on the
same instance and runtimes (mean ± 95% CI; wins / ties / losses at 1e-9).

    python scripts/online_eval.py                       # 30 instances per cell, no PPO
    python scripts/online_eval.py --ppo-steps 20000 --ppo-seeds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import wass_env  # noqa: F401  (registers the environments)
from agents.evaluation.stats import ci95, outcome_counts
from agents.heft import ContentionAwareHEFTScheduler, HEFTScheduler
from wass_env.errors import WassError
from wass_env.scheduling import make_scheduler
from wass_env.sim import Problem, execute
from wass_env.sim.cluster import cluster_from_spec
from wass_env.sim.execute import runtime_noise
from wass_env.sim.plan import Plan
from wass_env.workloads import make_sampler

REFERENCE = "heft (static)"
EVAL_SEED = 10_000  # evaluation instances use seeds from here; training ones from 0


def replayed(plan: Plan, factors: np.ndarray) -> float:
    """Makespan of ``plan`` executed with actual runtimes ``exec_time * factors`` [s]."""
    p = plan.problem
    runtimes = p.exec_time[np.arange(p.n_tasks), plan.node] * factors
    return execute(plan, runtimes=runtimes).makespan


def instances(
    workload: Any, cluster: Any, network: str, n: int, seed: int
) -> list[tuple[Problem, int]]:
    """``n`` problems (with their instance seed), the same workflows for every network."""
    cl = cluster_from_spec({"preset": cluster, "network": network})
    sampler = make_sampler(workload)
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        out.append((Problem(sampler.sample(rng, cl), cl), seed + i))
    return out


def train_ppo(args: argparse.Namespace, seed: int) -> Callable[[Problem, np.ndarray], float]:
    """A MaskablePPO policy trained online; returns its online makespan function."""
    import torch
    from sb3_contrib import MaskablePPO

    from agents.ppo import POLICIES
    from wass_env.envs import WassSchedOnlineEnv

    clusters = [{"preset": args.cluster, "network": net} for net in args.networks]
    kw = {"workload": args.workload, "cluster": clusters, "noise": args.ppo_noise}
    env = WassSchedOnlineEnv(**kw)
    # Small MLPs: one thread is several times faster than torch's default pool on a shared
    # machine (110 against 15 steps/s measured on 2 busy cores).
    torch.set_num_threads(1)
    env.reset(seed=seed)  # training draws seeds 0.. (disjoint from EVAL_SEED..)
    model = MaskablePPO(
        POLICIES["node_scoring"],
        env,
        policy_kwargs={"net_arch": [64, 64]},
        learning_rate=3e-4,
        n_steps=512,
        batch_size=128,
        ent_coef=0.01,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=args.ppo_steps)
    run_env = WassSchedOnlineEnv(**kw)

    def run(problem: Problem, factors: np.ndarray) -> float:
        obs, info = run_env.reset(options={"problem": problem, "factors": factors})
        while True:
            action, _ = model.predict(obs, action_masks=run_env.action_masks(), deterministic=True)
            obs, _, done, _, info = run_env.step(int(action))
            if done:
                return float(info["makespan"])

    return run


def evaluate(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per (network, sigma, instance, scheduler)."""
    ppo: list[Callable[[Problem, np.ndarray], float]] = []
    t0 = time.perf_counter()
    for s in range(args.ppo_seeds if args.ppo_steps > 0 else 0):
        ppo.append(train_ppo(args, s))
        print(f"# trained PPO seed {s} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    heft, heft_c = HEFTScheduler(), ContentionAwareHEFTScheduler()
    single = make_scheduler("single_node")
    slurm = make_scheduler("slurm")
    for network in args.networks:
        probs = instances(args.workload, args.cluster, network, args.instances, EVAL_SEED)
        plans = [(heft.plan(p), heft_c.plan(p), single.plan(p)) for p, _ in probs]
        for sigma in args.noise:
            for (p, iseed), (ph, phc, ps) in zip(probs, plans, strict=True):
                # The same factors for every network and scheduler of this instance and sigma.
                factors = runtime_noise(
                    p.n_tasks, sigma, np.random.default_rng([iseed, int(sigma * 1000)])
                )
                lb = p.lower_bound()
                res = {
                    REFERENCE: replayed(ph, factors),
                    "heft_contention (static)": replayed(phc, factors),
                    "single_node (static)": replayed(ps, factors),
                    "heft (online)": heft.run_online(p, factors=factors).makespan,
                    "heft (online, idle)": heft.run_online(
                        p, factors=factors, mode="idle"
                    ).makespan,
                    "slurm (online)": slurm.run_online(p, factors=factors).makespan,
                }
                for k, run in enumerate(ppo):
                    res[f"ppo (online) #{k}"] = run(p, factors)
                for name, m in res.items():
                    rows.append(
                        {
                            "network": network,
                            "sigma": sigma,
                            "instance": iseed,
                            "scheduler": name.split(" #")[0],
                            "makespan": m,
                            "slr_lb": m / lb,
                            "ratio": m / res[REFERENCE],
                        }
                    )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table: per cell and scheduler, makespan / LB and the paired ratio."""
    lines = [
        "| network | sigma | scheduler | n | makespan / LB | ratio to heft (static) | W/T/L |",
        "|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["network"], r["sigma"], r["scheduler"]), []).append(r)
    for (net, sigma, name), rs in cells.items():
        m, h = ci95([r["slr_lb"] for r in rs])
        rm, rh = ci95([r["ratio"] for r in rs])
        w, t, loss = outcome_counts([r["ratio"] for r in rs])
        lines.append(
            f"| {net} | {sigma:g} | {name} | {len(rs)} | {m:.3f} ± {h:.3f} | "
            f"{rm:.3f} ± {rh:.3f} | {w}/{t}/{loss} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=30, help="instances per cell")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.3, 0.6])
    ap.add_argument("--networks", nargs="+", default=["contention_free", "nic"])
    ap.add_argument("--cluster", default="het16", help="cluster preset")
    ap.add_argument(
        "--workload",
        type=json.loads,
        default={"generator": "layered", "n_tasks": [20, 60], "ccr": 1.0},
        help="workload spec as JSON (default: layered DAGs of 20-60 tasks at CCR 1)",
    )
    ap.add_argument("--ppo-steps", type=int, default=0, help="PPO steps per seed (0: no PPO)")
    ap.add_argument("--ppo-seeds", type=int, default=5)
    ap.add_argument("--ppo-noise", type=float, default=0.3, help="noise sigma when training")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.instances < 1:
        print(f"online_eval: --instances must be >= 1, got {args.instances}", file=sys.stderr)
        return 2
    try:
        t0 = time.perf_counter()
        rows = evaluate(args)
    except (WassError, ValueError) as exc:
        print(f"online_eval: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    print(f"\n{len(rows)} runs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if args.json:
        from wass_env.io import atomic_write

        atomic_write(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
