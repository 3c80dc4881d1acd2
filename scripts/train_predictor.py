"""Stage 2: train the teacher's encoder and predictor on a knowledge base.

Writes, under ``--out`` (default ``runs/teacher``): ``model.wtm`` (the model), ``kb.wkb`` (the
base re-keyed with the model's state embeddings, which the teacher needs) and ``report.json``
(MSE and R^2 of makespan / lower bound on held-out workflow instances, on a held-out family
with ``--holdout-family``, without retrieval context, and with the continuation policy
unknown).

Examples::

    python scripts/train_predictor.py                       # runs/kb/default.wkb -> runs/teacher
    python scripts/train_predictor.py --holdout-family montage --out runs/teacher/holdout_montage
    python scripts/train_predictor.py --rekey runs/kb/large.wkb --model runs/teacher/model.wtm \\
        --out runs/teacher/large --index hnsw                 # re-key another base

The logic lives in :func:`teacher.training.train_teacher`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from teacher.kb import KnowledgeBase
from teacher.predictor import PredictorConfig, TeacherModel
from teacher.training import TrainConfig, embed_records, train_teacher
from wass_env.cli import ArgumentParser, check_output_dir, cli
from wass_env.io import atomic_write
from wass_env.limits import MAX_COUNT


def _table(report: dict) -> str:
    lines = [f"{'set':<28} {'n':>8} {'MSE':>9} {'R^2':>7} {'pairs':>6} {'pair acc':>8}"]
    for block, label in (
        ("context", ""),
        ("no_context", " (no context)"),
        ("unknown_policy", " (policy unknown)"),
    ):
        for name, m in report.get(block, {}).items():
            if not m.get("n"):
                continue
            pairs = m.get("pairs", "")
            acc = m.get("pair_accuracy")
            acc_s = f"{acc:8.3f}" if isinstance(acc, float) and acc == acc else f"{'':>8}"
            lines.append(
                f"{name + label:<28} {m['n']:>8} {m['mse']:9.4f} {m['r2']:7.3f} "
                f"{pairs!s:>6} {acc_s}"
            )
    return "\n".join(lines)


def _compare(model: TeacherModel, kb: KnowledgeBase, n: int, seed: int) -> dict:
    """HEFT, the teacher's greedy policy and baselines on ``n`` fresh workflows."""
    import numpy as np

    from teacher.build import PROFILES
    from teacher.policies import make_policy
    from teacher.teacher import Teacher, TeacherScheduler
    from teacher.training import compare_policies
    from wass_env.sim.cluster import cluster_from_spec
    from wass_env.sim.problem import Problem
    from wass_env.workloads import make_sampler

    cfg = PROFILES["default"]
    sampler = make_sampler(cfg.workload)
    clusters = [cluster_from_spec(c) for c in cfg.clusters]
    rng = np.random.default_rng([seed, 987_654])  # not a seed the build uses
    problems = []
    for _ in range(n):
        cl = clusters[int(rng.integers(len(clusters)))]
        problems.append(Problem(sampler.sample(rng, cl), cl))
    schedulers = {
        "heft": make_policy("heft"),
        "teacher (greedy)": TeacherScheduler(Teacher(model, kb)),
        "data_locality": make_policy("data_locality"),
        "slurm": make_policy("slurm"),
        "random": make_policy("random", seed=seed),
    }
    return compare_policies(problems, schedulers)


@cli
def main(argv: list[str] | None = None) -> int:
    """Train (or re-key) and write the outputs."""
    ap = ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", type=Path, default=Path("runs/kb/default.wkb"))
    ap.add_argument("--out", type=Path, default=Path("runs/teacher"))
    ap.add_argument("--holdout-family", help="hold out this workflow family entirely")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--context-epochs", type=int, default=TrainConfig.context_epochs)
    ap.add_argument("--k", type=int, default=5, help="retrieved cases per decision")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument(
        "--index",
        default="flat",
        choices=["flat", "hnsw", "ivf"],
        help="index stored with the re-keyed base (flat: exact)",
    )
    ap.add_argument(
        "--eval-episodes",
        type=int,
        default=30,
        help="fresh workflows on which to compare the teacher's own choices with HEFT (0: skip)",
    )
    ap.add_argument("--rekey", type=Path, help="only re-key this base with --model")
    ap.add_argument("--model", type=Path, help="model for --rekey")
    args = ap.parse_args(argv)
    for flag, value, low, high in (
        ("--epochs", args.epochs, 1, MAX_COUNT),
        ("--context-epochs", args.context_epochs, 0, MAX_COUNT),
        ("--k", args.k, 0, MAX_COUNT),
        ("--threads", args.threads, 1, 1024),
        ("--eval-episodes", args.eval_episodes, 0, MAX_COUNT),
        ("--seed", args.seed, 0, 2**32 - 1),  # torch and NumPy seeds
    ):
        if not low <= value <= high:
            ap.error(f"{flag} must be in [{low}, {high}], got {value}")
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
    kb = KnowledgeBase.load(args.kb)
    config = TrainConfig(
        predictor=PredictorConfig(k=args.k),
        epochs=args.epochs,
        context_epochs=args.context_epochs,
        holdout_family=args.holdout_family,
        seed=args.seed,
        threads=args.threads,
    )
    result = train_teacher(kb, config, progress=lambda s: print(s, flush=True))
    result.model.save(args.out / "model.wtm")
    kb.set_keys(result.keys, result.model.key_model)
    kb.index(args.index)
    kb.save(args.out / "kb.wkb")
    text = json.dumps(result.report, indent=2, default=str)
    atomic_write(args.out / "report.json", text)
    r = result.report
    print(_table(r))
    if args.eval_episodes > 0:
        cmp = _compare(result.model, kb, args.eval_episodes, args.seed)
        r["greedy_policies"] = cmp
        print(
            f"on {args.eval_episodes} fresh workflows (default profile's workloads and clusters):"
        )
        for name, m in cmp.items():
            print(
                f"  {name:<16} makespan / lower bound {m['mean_ratio_to_lb']:.3f} "
                f"(worst {m['max_ratio_to_lb']:.2f}), / HEFT {m['mean_ratio_to_heft']:.3f}"
            )
        text = json.dumps(r, indent=2, default=str)
        atomic_write(args.out / "report.json", text)
    print(
        f"instances: {r['instances']}; trained in {r['seconds']:.1f} s; "
        f"wrote {args.out / 'model.wtm'}, {args.out / 'kb.wkb'}, {args.out / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
