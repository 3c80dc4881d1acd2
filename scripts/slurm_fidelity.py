"""Sim-to-real on a running Slurm: measured dispatch latency, then simulated vs realised makespans.

Needs a Slurm with at least four nodes (``bash scripts/start_slurm.sh`` makes one on this
machine). Measures the per-dependency dispatch latency with a calibration job set, then plans
and runs one random layered workflow per seed (HEFT, each job sleeping its planned runtime), and
prints a Markdown table: the simulated makespan of the submitted plan without and with the
measured dispatch latency, and the realised makespan (last job end minus first job start). Job
sets are written under ``--out`` (default ``runs/slurm_fidelity/<time>``).

    python scripts/slurm_fidelity.py --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from agents.deploy.fidelity import fidelity_workflow, measure_dispatch_latency, sim_to_real
from agents.deploy.realised import SlurmError, slurm_cluster_spec
from agents.evaluation import ci95
from wass_env.sim.cluster_file import parse_cluster

SPEEDS = (2.0, 1.5, 1.0, 0.5)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--scheduler", default="heft")
    ap.add_argument(
        "--free-order",
        action="store_true",
        help="no after: dependencies keeping each node's planned order",
    )
    ap.add_argument(
        "--out", type=Path, default=Path("runs/slurm_fidelity") / time.strftime("%Y%m%d-%H%M%S")
    )
    args = ap.parse_args(argv)
    try:
        spec = slurm_cluster_spec(SPEEDS, name="slurm")
        delays = measure_dispatch_latency(parse_cluster(spec), args.out / "calibration")
        dl = float(delays.mean())
        print(
            f"dispatch latency: mean {dl:.3f} s, median {np.median(delays):.3f} s, "
            f"sd {delays.std(ddof=1):.3f} s over {delays.size} dependencies"
        )
        cluster = parse_cluster({**spec, "dispatch_latency": dl})
        rows = []
        for seed in args.seeds:
            r = sim_to_real(
                fidelity_workflow(seed),
                cluster,
                args.out / f"seed{seed}",
                scheduler=args.scheduler,
                keep_order=not args.free_order,
            )
            rows.append(r)
            print(f"seed {seed}: done ({r.realised:.2f} s realised)", file=sys.stderr)
    except SlurmError as exc:
        print(f"slurm_fidelity.py: {exc}", file=sys.stderr)
        return 2
    print()
    print(
        "| workflow | tasks | simulated [s] | simulated with dispatch latency [s] | realised [s] "
        "| realised ÷ simulated | realised ÷ simulated with latency |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        wf = r.plan.workflow
        print(
            f"| {wf.name} | {wf.n_tasks} | {r.simulated:.2f} | {r.simulated_dl:.2f} | "
            f"{r.realised:.2f} | {r.realised / r.simulated:.3f} | "
            f"{r.realised / r.simulated_dl:.3f} |"
        )
    cells = []
    for ratios in ([r.realised / r.simulated for r in rows], [r.error_dl + 1 for r in rows]):
        mean, half = ci95(ratios)
        cells.append(f"{mean:.3f} ± {half:.3f} (max {max(ratios):.3f})")
    print(f"| mean ± 95% CI over {len(rows)} | | | | | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
