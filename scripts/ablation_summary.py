"""Summaries of training runs on one evaluation set: an ablation sweep, or runs side by side.

The ablation itself is a Hydra multirun of ``scripts/train.py`` (one job per variant and
seed; see ``conf/ablation/reduced.yaml`` and the README)::

    python scripts/train.py -m +ablation=reduced \\
        +variant=sparse,dense,rag_eq3,rag_history,rag_potential,bc,bc_rag seed=0,1,2,3,4
    python scripts/ablation_summary.py runs/ablation/reduced      # table + learning curves

prints per variant the final quality (the trained policy's paired makespan / HEFT on the fixed
evaluation instances, mean ± 95% CI over seeds, on all, seen and held-out families) and the
sample efficiency (environment steps to HEFT parity on the training distribution), and writes
``ablation.md``, ``ablation.csv`` and ``curves.png`` into the sweep directory.

    python scripts/ablation_summary.py runs/ablation/reduced \\
        --reference runs/ablation/ref heft_lookahead

also pairs every seed with one scheduler of another run on the same instances (here the untrained
policy's rule, HEFT with lookahead, from a run with ``eval.baselines`` holding it).

    python scripts/ablation_summary.py --runs plain=runs/rag/plain rag=runs/rag/rag

puts single runs side by side (what ``make rag`` ends with). The logic is in
:mod:`teacher.ablation`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from agents.evaluation import write_csv, write_text
from teacher.ablation import (
    ablation_table,
    collect_runs,
    compare_runs,
    plot_curves,
    reference_rows,
    summarize_ablation,
)
from wass_env.cli import ArgumentParser, cli

#: Table order of the variants (conf/variant/).
ORDER = ("sparse", "dense", "rag_eq3", "rag_history", "rag_potential", "bc", "bc_rag")


@cli
def main(argv: list[str] | None = None) -> int:
    """Print (and write) the summary."""
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", nargs="?", type=Path, help="a sweep directory (Hydra multirun)")
    ap.add_argument(
        "--runs", nargs="+", metavar="LABEL=DIR", help="single runs to put side by side"
    )
    ap.add_argument(
        "--window", type=int, default=50, help="training episodes averaged for HEFT parity"
    )
    ap.add_argument(
        "--reference",
        nargs=2,
        metavar=("DIR", "SCHEDULER"),
        help="also pair every seed with SCHEDULER's rows in the run DIR (same instances)",
    )
    args = ap.parse_args(argv)
    if (args.sweep is None) == (args.runs is None):
        ap.error("give a sweep directory or --runs LABEL=DIR ..., not both")
    if args.window < 1:
        ap.error(f"--window must be >= 1, got {args.window}")
    if args.runs is not None:
        pairs = {}
        for item in args.runs:
            label, sep, path = item.partition("=")
            if not sep or not label or not path:
                ap.error(f"--runs: expected LABEL=DIR, got {item!r}")
            pairs[label] = path
        _, table = compare_runs(pairs)
        first = next(iter(pairs))
        print(
            "\nThe trained policies side by side on the same fixed evaluation instances "
            f"(paired ratios, mean ± 95% CI, (wins/ties/losses); ÷ policy ({first}) pairs "
            "each instance with that run's policy):\n"
        )
        print(table)
        return 0
    runs = collect_runs(args.sweep)
    reference = None
    if args.reference is not None:
        run, name = args.reference
        reference = (name, reference_rows(run, name))
    summary = summarize_ablation(runs, window=args.window, order=ORDER, reference=reference)
    table = ablation_table(summary)
    write_text(table + "\n", args.sweep / "ablation.md")
    write_csv(summary, args.sweep / "ablation.csv")
    png = plot_curves(runs, args.sweep / "curves.png", window=args.window)
    # The families left out of training that the evaluation set holds (the others do not count).
    held = sorted(
        {x["family"] for r in runs for x in r.agent_rows() if x.get("family") in r.held_out}
    )
    print(
        f"\n{len(runs)} runs. Trained policy ÷ HEFT on {summary[0]['instances']} fixed "
        f"evaluation instances per run, mean ± 95% CI over seeds (held-out families: "
        f"{', '.join(held) or 'none'}); steps to HEFT parity: the first step where the last "
        f"{args.window} training episodes average <= 1 x HEFT, mean ± 95% CI over the seeds "
        "that got there (imitation steps included):\n"
    )
    print(table)
    print(f"\nWrote {args.sweep / 'ablation.md'}, {args.sweep / 'ablation.csv'}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
