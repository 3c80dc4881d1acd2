"""Imitation experts side by side: the makespan each one reaches when it acts from the start.

Every expert of :mod:`agents.imitation` runs the same instances (paired) of the training environment
(the main job's ``conf/train.yaml`` with any overrides: ``workload.exclude=...`` or a single
family such as ``workload=montage``), seeded from the evaluation range, acting alone (no learner).
Per expert: the paired ratio to HEFT's makespan (mean +- 95% CI, wins/ties/losses), the paired
ratio to the first expert, and the seconds per instance. The expert with the best replayed plan
is what behaviour cloning can at best reach.

    python scripts/compare_experts.py                                   # 60 mix instances
    python scripts/compare_experts.py --instances 30 workload.exclude=[montage]
    python scripts/compare_experts.py --expert '{"kind": "heuristic", "base": "heft"}' \\
        --expert '{"kind": "plans", "cpsat_max_tasks": 40}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

import wass_env  # noqa: F401  (registers the environments)
from agents.evaluation.seeds import EVAL_SEED
from agents.evaluation.stats import ci95, outcome_counts
from agents.evaluation.tables import format_mean_ci
from wass_env.cli import user_error

DEFAULT_EXPERTS = [
    {"kind": "heuristic", "base": "heft_lookahead"},
    {"kind": "plans"},
    {"kind": "plans", "cpsat_max_tasks": 40},
]


def run(experts: list[dict[str, Any]], overrides: list[str], n: int) -> list[dict[str, Any]]:
    """One row per expert: its per-instance ratios to HEFT and timing."""
    from agents.config import register_configs
    from agents.imitation import collect, make_expert
    from agents.train import env_kwargs_from_config
    from wass_env.cli import compose_config

    register_configs()
    kw = env_kwargs_from_config(compose_config("train", overrides))
    kw["reference"] = "heft"
    env = gym.make("WassSched-v0", **kw)
    seeds = list(range(EVAL_SEED, EVAL_SEED + n))
    rows = []
    for spec in experts:
        expert = make_expert(spec)
        t0 = time.perf_counter()
        # collect's seeded resets forget the recipe pools: every instance is a function of
        # its seed alone, the same for every expert (as in the evaluation).
        info = collect(env, seeds, expert).info
        rows.append(
            {
                "expert": json.dumps(spec, separators=(",", ":")),
                "ratio": np.array([i["ratio_to_reference"] for i in info]),
                "family": [i["family"] for i in info],
                "seconds": (time.perf_counter() - t0) / n,
                "chosen": dict(getattr(expert, "chosen", {})),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    ref = rows[0]["ratio"]
    out = [
        "| expert | ÷ HEFT | W/T/L vs HEFT | ÷ first expert | s / instance | plans chosen |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, t, lo = outcome_counts(r["ratio"])
        ratio = format_mean_ci(*ci95(r["ratio"]), decimals=4)
        paired = format_mean_ci(*ci95(r["ratio"] / ref), decimals=4)
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(r["chosen"].items())) or "—"
        out.append(
            f"| `{r['expert']}` | {ratio} | {w}/{t}/{lo} | {paired} | {r['seconds']:.2f} "
            f"| {chosen} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=60, help="instances (evaluation seeds)")
    ap.add_argument(
        "--expert",
        action="append",
        type=json.loads,
        default=None,
        help="expert settings as JSON (agents.imitation.make_expert), once per expert; the "
        "first is the reference (default: heft_lookahead, plans, plans with CP-SAT)",
    )
    ap.add_argument("overrides", nargs="*", help="conf/train.yaml overrides (Hydra syntax)")
    args = ap.parse_args(argv)
    if args.instances < 2:
        print(f"compare_experts: --instances must be >= 2, got {args.instances}", file=sys.stderr)
        return 2
    try:
        rows = run(args.expert or DEFAULT_EXPERTS, args.overrides, args.instances)
    except Exception as exc:
        msg = user_error(exc)
        if msg is None:
            raise
        print(f"compare_experts: {msg}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
