"""The paper's ablation: MaskablePPO with and without the Knowledge-Guided Teacher, several seeds.

Every variant trains on the same configuration (``conf/train.yaml`` plus the common overrides)
for the same number of steps, with each seed, and is evaluated on the same unseen episodes
against HEFT; the table reports the trained policy's makespan / HEFT and / lower bound (mean
and 95% CI over seeds of the per-seed means), and how fast it learned: makespan / lower bound of
the training episodes, over all of training and over its last quarter. Variants default to the
paper's sparse reward (``-makespan`` at the end) with and without ``lambda * R_RAG``.

    python scripts/ablation.py                       # 3 seeds x 5 variants, 30,000 steps each
    python scripts/ablation.py --seeds 5 --steps 50000 --set workload=fan_out cluster=het8
    python scripts/ablation.py --variants --variant defaults --variant "8 envs" train.n_envs=8 \
        agent.n_steps=128                            # any settings, paired the same way

Needs the teacher's files (``python scripts/build_kb.py && python scripts/train_predictor.py``).
Writes ``runs/ablation/<timestamp>/{runs.csv,ablation.md}``.
"""

from __future__ import annotations

import time
from pathlib import Path

from hydra import initialize_config_dir

from agents.config import register_configs
from agents.evaluation import ci95, markdown_table, write_csv, write_text
from agents.train import check_config, run_training
from wass_env.cli import ArgumentParser, check_output_dir, cli, compose_overrides

REPO = Path(__file__).resolve().parents[1]
SPARSE = "env.reward_weights={makespan:1.0,progress:0.0,illegal:1.0}"
DENSE = "env.reward_weights={makespan:0.0,progress:1.0,illegal:1.0}"
VARIANTS: dict[str, list[str]] = {
    "DRL w/o RAG (sparse)": [SPARSE, "teacher=none"],
    "RAG eq3, lambda 0.1 (sparse)": [SPARSE, "teacher=rag", "teacher.lam=0.1"],
    "RAG eq3, lambda 1 (sparse)": [SPARSE, "teacher=rag", "teacher.lam=1.0"],
    "RAG potential, lambda 1 (sparse)": [
        SPARSE,
        "teacher=rag",
        "teacher.mode=potential",
        "teacher.lam=1.0",
    ],
    "dense progress reward, no RAG": [DENSE, "teacher=none"],
}


@cli
def main(argv: list[str] | None = None) -> int:
    """Run every variant with every seed and print the comparison."""
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--episodes", type=int, default=10, help="unseen evaluation episodes")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), metavar="NAME")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="OVERRIDE",
        help="Hydra overrides applied to every variant",
    )
    ap.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "OVERRIDE"),
        help="an extra variant: its name, then its Hydra overrides (repeatable)",
    )
    ap.add_argument(
        "--out", type=Path, default=Path("runs/ablation") / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    args = ap.parse_args(argv)
    variants = dict(VARIANTS)
    for name, *overrides in args.variant:
        variants[name] = overrides
    args.variants = [*args.variants, *(v[0] for v in args.variant)]
    unknown = [v for v in args.variants if v not in variants]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}; choose from {list(variants)}")
    for flag, value in (("--seeds", args.seeds), ("--steps", args.steps)):
        if value < 1:
            ap.error(f"{flag} must be >= 1, got {value}")
    check_output_dir(args.out, "--out")
    register_configs()
    common = [
        f"train.total_timesteps={args.steps}",
        f"eval.episodes={args.episodes}",
        "train.progress_bar=false",
        *args.set,
    ]
    rows = []
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        # Every run's config is composed and checked before the first one trains.
        runs = [
            (name, seed, compose_overrides("train", [*common, *variants[name], f"seed={seed}"]))
            for name in args.variants
            for seed in range(args.seeds)
        ]
        for _, _, cfg in runs:
            check_config(cfg)
        for name, seed, cfg in runs:
            t0 = time.perf_counter()
            out = run_training(cfg, args.out / _slug(name) / f"seed{seed}", quiet=True)
            agent = next(e for e in out["summary"] if e["scheduler"] == "maskable_ppo")
            curve = [r for _, r in out["train_episodes"]]
            rows.append(
                {
                    "variant": name,
                    "seed": seed,
                    "ratio_to_heft": agent["ratio_to_heft"],
                    "ratio_to_lower_bound": agent["ratio_to_lower_bound"],
                    "makespan": agent["makespan"],
                    "train_mean": sum(curve) / len(curve),
                    "train_last": sum(curve[-len(curve) // 4 :]) / len(curve[-len(curve) // 4 :]),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(f"{name}, seed {seed}: {agent['ratio_to_heft']:.3f} x HEFT", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "runs.csv")
    summary = []
    for name in args.variants:
        rs = [r for r in rows if r["variant"] == name]
        entry = {"variant": name, "seeds": len(rs)}
        for key in ("ratio_to_heft", "ratio_to_lower_bound", "train_mean", "train_last", "seconds"):
            entry[key], entry[f"{key}_ci95"] = ci95([r[key] for r in rs])
        summary.append(entry)
    table = markdown_table(
        summary,
        [
            "variant",
            "seeds",
            "ratio_to_heft",
            "ratio_to_lower_bound",
            "train_mean",
            "train_last",
            "seconds",
        ],
    )
    write_text(table + "\n", args.out / "ablation.md")
    print(
        f"\n{args.steps} training steps per run; mean ± 95% CI over seeds. ratio_to_heft and "
        f"ratio_to_lower_bound: the trained (deterministic) policy on {args.episodes} unseen "
        "episodes; train_mean / train_last: makespan / lower bound of the training episodes "
        "(stochastic policy), over all of training / its last quarter:\n"
    )
    print(table)
    print(f"\nResults: {args.out}")
    return 0


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


if __name__ == "__main__":
    raise SystemExit(main())
