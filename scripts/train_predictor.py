"""Stage 2: train the teacher's encoder and predictor on a knowledge base, and measure it.

Writes, under ``--out`` (default ``runs/teacher``): ``model.wtm`` (the model), ``kb.wkb`` (the
base re-keyed with the model's keys, which the teacher needs) and ``report.json``: at the top
level ``r2``, ``pair_accuracy`` and ``family_hit_rate`` on held-out workflow instances of the
base's families, and ``greedy_ratio_to_heft`` / ``greedy_ratio_to_best_heuristic``, the greedy
teacher on the generalisation cells of the families the base left out; the details under
``training`` and ``greedy``.

Examples::

    python scripts/train_predictor.py                       # runs/kb/default.wkb -> runs/teacher
    python scripts/train_predictor.py --context mean --out runs/teacher/mean   # averaged context
    python scripts/train_predictor.py --rank-weight 0 --out runs/teacher/regression
    python scripts/train_predictor.py --rekey runs/kb/large.wkb --model runs/teacher/model.wtm \\
        --out runs/teacher/large --index hnsw                 # re-key another base

The logic lives in :func:`teacher.pipeline.run_stage2`.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from teacher.build import DEFAULT_HOLDOUT
from teacher.encoder import EncoderConfig
from teacher.kb import KnowledgeBase
from teacher.predictor import CONTEXT_MODES, PredictorConfig, TeacherModel
from teacher.training import TrainConfig, embed_records
from wass_env.cli import ArgumentParser, check_output_dir, cli
from wass_env.limits import MAX_COUNT


def _summary(r: dict) -> str:
    t = r["training"]
    lines = [f"{'set':<26} {'n':>8} {'MSE':>9} {'R^2':>7} {'pairs':>7} {'pair acc':>8}"]
    for block, label in (("context", ""), ("no_context", " (no context)")):
        for name, m in t.get(block, {}).items():
            if not m.get("n"):
                continue
            acc = m.get("pair_accuracy", float("nan"))
            lines.append(
                f"{name + label:<26} {m['n']:>8} {m['mse']:9.4f} {m['r2']:7.3f} "
                f"{m.get('pairs', 0):>7} {acc:8.3f}"
            )
    sim = r.get("similarity", {})
    lines.append(
        f"retrieval (held-out instances): family hit rate {r['family_hit_rate']:.3f}; "
        f"similarity top-1 {sim.get('sim_top1_mean', float('nan')):.3f}, top-k "
        f"{sim.get('sim_topk_mean', float('nan')):.3f}, random pair "
        f"{sim.get('sim_random_mean', float('nan')):.3f}"
    )
    for part, prefix in (("unseen", "greedy_"), ("seen", "greedy_seen_")):
        g = r.get("greedy", {}).get(part)
        if not g:
            continue
        lines.append(
            f"greedy teacher, {part} families ({', '.join(g['families'])}; {g['instances']} "
            f"instances): {r[prefix + 'ratio_to_heft']:.3f} ± "
            f"{r[prefix + 'ratio_to_heft_ci95']:.3f} x HEFT ({r[prefix + 'vs_heft']}), "
            f"{r[prefix + 'ratio_to_best_heuristic']:.3f} x best heuristic"
        )
    return "\n".join(lines)


@cli
def main(argv: list[str] | None = None) -> int:
    """Train (or re-key) and write the outputs."""
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", type=Path, default=Path("runs/kb/default.wkb"))
    ap.add_argument("--out", type=Path, default=Path("runs/teacher"))
    ap.add_argument("--holdout-family", nargs="*", default=[], help="families held out of training")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--context-epochs", type=int, default=TrainConfig.context_epochs)
    ap.add_argument("--k", type=int, default=5, help="retrieved cases per decision")
    ap.add_argument("--context", default="expectation", choices=CONTEXT_MODES)
    ap.add_argument("--rank-weight", type=float, default=TrainConfig.rank_weight)
    ap.add_argument("--family-weight", type=float, default=TrainConfig.family_weight)
    ap.add_argument("--family-dim", type=int, default=EncoderConfig.family_dim)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument(
        "--index",
        default="flat",
        choices=["flat", "hnsw", "ivf"],
        help="index stored with the re-keyed base (flat: exact)",
    )
    ap.add_argument(
        "--unseen",
        nargs="*",
        default=list(DEFAULT_HOLDOUT),
        help="families the base left out, on which the greedy teacher is measured",
    )
    ap.add_argument(
        "--eval-episodes",
        type=int,
        default=30,
        help="instances per generalisation cell of an unseen family (0: skip)",
    )
    ap.add_argument(
        "--seen-episodes",
        type=int,
        default=5,
        help="instances per generalisation cell of a family the base holds (0: skip)",
    )
    ap.add_argument("--workers", type=int, default=1, help="processes of the greedy evaluation")
    ap.add_argument("--rekey", type=Path, help="only re-key this base with --model")
    ap.add_argument("--model", type=Path, help="model for --rekey")
    args = ap.parse_args(argv)
    for flag, value, low, high in (
        ("--epochs", args.epochs, 1, MAX_COUNT),
        ("--context-epochs", args.context_epochs, 0, MAX_COUNT),
        ("--k", args.k, 0, MAX_COUNT),
        ("--threads", args.threads, 1, 1024),
        ("--workers", args.workers, 1, 1024),
        ("--eval-episodes", args.eval_episodes, 0, MAX_COUNT),
        ("--seen-episodes", args.seen_episodes, 0, MAX_COUNT),
        ("--family-dim", args.family_dim, 0, 4096),
        ("--seed", args.seed, 0, 2**32 - 1),  # torch and NumPy seeds
    ):
        if not low <= value <= high:
            ap.error(f"{flag} must be in [{low}, {high}], got {value}")
    for flag, value in (
        ("--rank-weight", args.rank_weight),
        ("--family-weight", args.family_weight),
    ):
        if not 0.0 <= value < float("inf"):
            ap.error(f"{flag} must be a finite number >= 0, got {value}")
    if args.rekey is not None and args.model is None:
        ap.error("--rekey needs --model")
    check_output_dir(args.out, "--out")  # a bad --out fails before any training
    if args.rekey is not None:
        model = TeacherModel.load(args.model)
        kb = KnowledgeBase.load(args.rekey)
        kb.set_keys(embed_records(kb, model, threads=args.threads), model.key_model)
        kb.index(args.index)
        kb.save(args.out / "kb.wkb")
        print(f"{args.out / 'kb.wkb'}: {len(kb)} records keyed by {model.key_model}")
        return 0
    from teacher.pipeline import run_stage2

    kb = KnowledgeBase.load(args.kb)
    config = TrainConfig(
        encoder=replace(EncoderConfig(), family_dim=args.family_dim),
        predictor=PredictorConfig(k=args.k, context=args.context),
        epochs=args.epochs,
        context_epochs=args.context_epochs,
        holdout_families=tuple(args.holdout_family),
        rank_weight=args.rank_weight,
        family_weight=args.family_weight,
        seed=args.seed,
        threads=args.threads,
    )
    report = run_stage2(
        kb,
        args.out,
        config,
        index=args.index,
        unseen=args.unseen,
        unseen_episodes=args.eval_episodes,
        seen_episodes=args.seen_episodes,
        workers=args.workers,
        progress=lambda s: print(s, flush=True),
    )
    print(_summary(report))
    t = report["training"]
    print(
        f"instances: {t['instances']}; trained in {t['seconds']:.1f} s; wrote "
        f"{args.out / 'model.wtm'}, {args.out / 'kb.wkb'}, {args.out / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
