"""Explain the teacher's judgement of one decision of a workflow.

Plans the workflow on a cluster with a policy (HEFT by default) up to decision ``--step``
(0-based), then prints the top-K past cases the teacher retrieved for that state (similarity,
workflow, family, cluster, policy, where that run ended as makespan / lower bound) and the
predicted makespan / lower bound of every candidate node, with a*_t marked.

    python scripts/explain.py --kb runs/teacher/kb.wkb --model runs/teacher/model.wtm \\
        --workflow ../shared/data/dax/Montage_25.xml --step 5
    python scripts/explain.py ... --cluster hom32 --policy data_locality --k 8
"""

from __future__ import annotations

import sys

from teacher.explain import explain_step
from teacher.kb import KnowledgeBase
from teacher.policies import make_policy
from teacher.predictor import TeacherModel
from teacher.teacher import Teacher
from wass_env.cli import ArgumentParser, cli
from wass_env.sim.cluster import cluster_from_spec
from wass_env.sim.problem import Problem
from wass_env.workloads import load_workflow


@cli
def main(argv: list[str] | None = None) -> int:
    """Print the explanation; user mistakes give one line on stderr and exit status 2."""
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", required=True, help="knowledge base keyed by --model")
    ap.add_argument("--model", required=True, help="trained teacher model")
    ap.add_argument("--workflow", required=True, help="WfFormat JSON or Pegasus DAX file")
    ap.add_argument("--step", type=int, default=0, help="decision to explain (0-based)")
    ap.add_argument("--cluster", default="het16", help="cluster preset")
    ap.add_argument("--policy", default="heft", help="policy making the earlier decisions")
    ap.add_argument("--k", type=int, help="retrieved cases (default: the model's)")
    ap.add_argument("--reference", default="heft", help="continuation policy ('none': mixture)")
    args = ap.parse_args(argv)
    model = TeacherModel.load(args.model)
    kb = KnowledgeBase.load(args.kb)
    ref = None if args.reference.lower() == "none" else args.reference
    teacher = Teacher(model, kb, k=args.k, reference=ref)
    problem = Problem(load_workflow(args.workflow), cluster_from_spec(args.cluster))
    explanation = explain_step(teacher, problem, make_policy(args.policy), args.step)
    print(explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
