"""Stage 1: seed the teacher's knowledge base with runs of heuristic policies.

Examples::

    python scripts/build_kb.py            # default profile -> runs/kb/default.wkb
    python scripts/build_kb.py --profile large --out runs/kb/large.wkb
    python scripts/build_kb.py --profile tiny --instances 50 --seed 3 --append

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
        }.items()
        if v is not None
    }
    config = replace(PROFILES[args.profile], **overrides)
    # Check the target before building anything: the build takes minutes.
    check_output_file(args.out, "--out")
    if args.append:
        KnowledgeBase.load(args.out)
    kb = build_knowledge_base(config, progress=lambda s: print(s, flush=True))
    secs = kb.meta["build_seconds"]
    if args.append:
        kb = KnowledgeBase.append_file(args.out, kb)
    else:
        kb.save(args.out)
    print(
        f"{args.out}: {kb.n_records} records, {kb.n_episodes} runs "
        f"(built in {secs:.1f} s, profile {args.profile!r})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
