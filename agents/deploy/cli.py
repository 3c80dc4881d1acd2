"""``wass plan``: a workflow file and a cluster into a plan and a Slurm job set.

::

    wass plan WORKFLOW --cluster CLUSTER [--scheduler NAME[:CHECKPOINT]] [--explain]
              [-o plan.json] [--slurm DIR [--placement nodelist|plugin]
              [--command TEMPLATE | --sleep]]

The logic lives in :mod:`agents.deploy` (:func:`~agents.deploy.plan.make_deploy_plan`,
:func:`~agents.deploy.write.write_deployment`); this module only parses arguments and reports.
It runs behind the command-line boundary (:mod:`wass_env.cli`): bad input (a missing or
malformed file, a bad cluster field, an unknown scheduler, a bad template, a directory in the
way) prints one line naming the file, field and value, exits with code 2 and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agents.deploy.plan import make_deploy_plan
from agents.deploy.slurm import PLACEHOLDERS, PLACEMENTS, JobSetError
from agents.deploy.write import write_deployment
from wass_env.cli import ArgumentParser, check_output_file, cli
from wass_env.scheduling import scheduler_names
from wass_env.sim.cluster_file import load_cluster
from wass_env.workloads.loader import load_workflow

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wass plan``."""
    p = ArgumentParser(
        prog="wass plan",
        description="Plan a workflow on a cluster; write plan.json and a Slurm job set.",
        epilog="command placeholders: "
        + "; ".join(f"{{{k}}} {v}" for k, v in PLACEHOLDERS.items()),
    )
    p.add_argument("workflow", metavar="WORKFLOW", help="WfFormat JSON or Pegasus DAX file")
    p.add_argument(
        "--cluster",
        required=True,
        metavar="CLUSTER",
        help="cluster file (YAML/JSON: nodes by hostname) or preset name (het16, ...)",
    )
    p.add_argument(
        "--scheduler",
        default="heft",
        metavar="NAME[:CHECKPOINT]",
        help=f"a registered scheduler ({', '.join(scheduler_names())}), or NAME:CHECKPOINT for "
        "one that loads a checkpoint (default: heft)",
    )
    p.add_argument("--explain", action="store_true", help="add per-task explanations to the plan")
    p.add_argument(
        "-o", "--output", metavar="PLAN_JSON", help="write the plan here (default: stdout)"
    )
    p.add_argument("--slurm", metavar="DIR", help="write a Slurm job set into this new directory")
    p.add_argument(
        "--placement",
        choices=PLACEMENTS,
        default="nodelist",
        help="how a job carries its node: --nodelist (default), or a comment the job_submit.lua "
        "plugin applies after a resource check",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--command", metavar="TEMPLATE", help="command template for every job (see below)"
    )
    what.add_argument(
        "--sleep", action="store_true", help="each job sleeps for its estimated runtime"
    )
    p.add_argument(
        "--free-order",
        action="store_true",
        help="let Slurm start a job ahead of one planned before it on its node (default: "
        "such jobs wait with --dependency=after: until that one has started)",
    )
    p.add_argument(
        "--no-insertion",
        dest="insertion",
        action="store_false",
        help="each node starts its tasks in placement order (no insertion into idle gaps)",
    )
    return p


@cli
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wass plan`` with ``argv``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error already reported on one line
        return int(stop.code or 0)
    if args.placement != "nodelist" and args.slurm is None:
        raise JobSetError("--placement needs --slurm DIR")
    if args.output is not None:
        check_output_file(args.output, "-o")
    workflow = load_workflow(args.workflow)
    cluster = load_cluster(args.cluster)
    dp = make_deploy_plan(workflow, cluster, args.scheduler, insertion=args.insertion)
    text = write_deployment(
        dp,
        output=args.output,
        slurm=args.slurm,
        explain=args.explain,
        placement=args.placement,
        command=args.command,
        sleep=args.sleep,
        keep_order=not args.free_order,
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        where = f"; job set in {args.slurm} (run {args.slurm}/submit.sh)" if args.slurm else ""
        print(
            f"wass plan: {workflow.n_tasks} tasks on {cluster.n_nodes} nodes, estimated makespan "
            f"{dp.makespan:.3f} s ({dp.scheduler}, {dp.n_fallbacks} fallbacks); plan in "
            f"{args.output}{where}"
        )
    return 0
