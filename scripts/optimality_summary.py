"""Every scheduler against CP-SAT's proven optima, from an evaluation's ``episodes.csv``.

Only the instances where the ``cpsat`` row is proven optimal for the simulator's own durations
(``cpsat_optimal``) count. Per workload cell and over all of them: how many instances are
proven, and per scheduler the paired makespan ratio to the optimum (mean +- 95% CI), the worst
instance, and the share within 5% of the optimum.

    python scripts/evaluate.py experiment=optimality checkpoint=runs/train/latest/model.zip
    python scripts/optimality_summary.py runs/eval/<run>/episodes.csv [--markdown out.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.evaluation.optimality import OptimalityError, load_proven, optimality_table
from wass_env.io import atomic_write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("episodes", type=Path, help="episodes.csv of an evaluation run with cpsat")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    try:
        text = optimality_table(load_proven(args.episodes))
    except OptimalityError as exc:
        print(f"optimality_summary: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.markdown is not None:
        atomic_write(args.markdown, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
