"""Stage 1: seed the teacher's knowledge base with runs of many policies.

Examples::

    python scripts/build_kb.py            # default profile -> runs/kb/default.wkb
    python scripts/build_kb.py --profile large --out runs/kb/large.wkb
    python scripts/build_kb.py --profile tiny --instances 50 --seed 3 --append
    # continual knowledge integration: runs of a trained policy (raw and rollout-improved),
    # added to the saved base
    python scripts/build_kb.py --instances 100 --seed 1 --append \
        --policies policy:runs/train/latest/model.zip policy+rollout2:runs/train/latest/model.zip

The logic lives in :func:`teacher.build.build_knowledge_base`; profiles in
:data:`teacher.build.PROFILES`.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from teacher.build import PROFILES, build_knowledge_base
from teacher.kb import KnowledgeBase
from wass_env.cli import ArgumentParser, check_output_file, cli


@cli
def main(argv: list[str] | None = None) -> int:
    """Build (or extend) a knowledge base and print what it holds."""
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--out", type=Path, help="base file (default: runs/kb/<profile>.wkb)")
    ap.add_argument("--instances", type=int, help="override the profile's instance count")
    ap.add_argument("--workers", type=int, help="worker processes")
    ap.add_argument("--seed", type=int, help="master seed (default: the profile's, 0)")
    ap.add_argument("--branch-prob", type=float, help="counterfactual branch probability")
    ap.add_argument(
        "--policies",
        nargs="+",
        metavar="SPEC",
        help="policy specs instead of the profile's (heft, heft~0.2, pilot2, cpsat, "
        "policy:PATH, policy+rollout2:PATH, ...; see teacher.policies)",
    )
    ap.add_argument(
        "--always", nargs="*", metavar="SPEC", help="specs run on every instance they apply to"
    )
    ap.add_argument("--policies-per-instance", type=int, help="policies drawn per instance")
    ap.add_argument("--append", action="store_true", help="add the records to the base at --out")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path("runs/kb") / f"{args.profile}.wkb"
    overrides = {
        k: v
        for k, v in {
            "instances": args.instances,
            "workers": args.workers,
            "seed": args.seed,
            "branch_prob": args.branch_prob,
            "policies": None if args.policies is None else tuple(args.policies),
            "always": None if args.always is None else tuple(args.always),
            "policies_per_instance": args.policies_per_instance,
        }.items()
        if v is not None
    }
    if args.policies is not None and args.policies_per_instance is None:
        base = PROFILES[args.profile].policies_per_instance
        overrides["policies_per_instance"] = min(base, len(args.policies))
    config = replace(PROFILES[args.profile], **overrides)
    # Check the target before building anything: the build takes minutes.
    check_output_file(args.out, "--out")
    if args.append:
        KnowledgeBase.load(args.out)
    kb = build_knowledge_base(config, progress=lambda s: print(s, flush=True))
    secs = kb.meta["build_seconds"]
    experience = kb.meta["experience"]  # of the runs just built (before any --append)
    if args.append:
        kb = KnowledgeBase.append_file(args.out, kb)
    else:
        kb.save(args.out)
    print("policy                 runs  makespan/HEFT  better  worse  (same instance)")
    for spec, e in experience.items():
        print(
            f"{spec:<22} {e['runs']:>4}  {e['ratio_to_heft']:>13.3f}  "
            f"{e['better_than_heft']:>6.0%}  {e['worse_than_heft']:>5.0%}"
        )
    print(
        f"{args.out}: {kb.n_records} records, {kb.n_episodes} runs "
        f"(built in {secs:.1f} s, profile {args.profile!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
