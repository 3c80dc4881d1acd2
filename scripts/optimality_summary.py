"""Every scheduler against CP-SAT's proven optima, from an evaluation's ``episodes.csv``.

Only the instances where the ``cpsat`` row is proven optimal for the simulator's own durations
(``cpsat_optimal``) count. Per workload cell and over all of them: how many instances are
proven, and per scheduler the paired makespan ratio to the optimum (mean +- 95% CI), the worst
instance, and the share within 5% of the optimum.

    python scripts/evaluate.py experiment=optimality checkpoint=runs/train/latest/model.zip
    python scripts/optimality_summary.py runs/eval/<run>/episodes.csv [--markdown out.md]

CP-SAT is the expensive part. A later policy is scored against the same optima by evaluating it
on the same instances without ``cpsat`` (HEFT among the schedulers) and passing both files:
the later file's schedulers replace the earlier's, and HEFT's makespans must agree on every
instance (the check that they are the same instances).

A second table, from the first file, is the floor under every scheduler: per instance with a
``cpsat`` row the proven optimum, else the best lower bound, ÷ HEFT. No scheduler's mean ratio to
HEFT can be below the floor's mean, so it says whether a target relative to HEFT is reachable.
``--floors`` prints only that table, over every instance (CP-SAT's or not; the larger ones get
the best lower bound: the critical-path/work bound or the fork-join bound), so it also runs on
an evaluation without ``cpsat``, e.g. the generalisation cells:

    python scripts/evaluate.py experiment=generalisation 'generalisation.families=[bwa]' \
        'generalisation.real_ccrs=[]' 'schedulers=[heft,improved_portfolio]'
    python scripts/optimality_summary.py --floors runs/eval/<run>/episodes.csv

    python scripts/evaluate.py experiment=optimality checkpoint=NEW.zip 'schedulers=[heft]'
    python scripts/optimality_summary.py runs/eval/<cpsat run>/episodes.csv \
        runs/eval/<new run>/episodes.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.evaluation.optimality import (
    OptimalityError,
    floor_table,
    load_floors,
    load_proven,
    optimality_table,
)
from wass_env.io import atomic_write


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "episodes",
        type=Path,
        nargs="+",
        help="episodes.csv of an evaluation run with cpsat, then any later runs on its instances",
    )
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    ap.add_argument(
        "--floors",
        action="store_true",
        help="only the floor table, over every instance of the first file (with or without a "
        "cpsat row: instances too large for CP-SAT get the best lower bound)",
    )
    args = ap.parse_args(argv)
    try:
        if args.floors:
            text = floor_table(load_floors(args.episodes[0], every_instance=True))
        else:
            text = optimality_table(load_proven(*args.episodes))
            text += "\n\n" + floor_table(load_floors(args.episodes[0]))
    except OptimalityError as exc:
        print(f"optimality_summary: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.markdown is not None:
        atomic_write(args.markdown, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
