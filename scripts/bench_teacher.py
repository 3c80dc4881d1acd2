"""Throughput of the RAG-wrapped environment against the bare one, measured in the same run.

A random masked policy drives ``WassSched-v0`` bare and wrapped in
:class:`~teacher.wrapper.RAGRewardWrapper` (resets included); rounds alternate between the two so
that machine noise hits both alike, and the reported ratio is the median over rounds. The target
is a wrapped/bare ratio of at least 0.5 with a 100,000-record base. Also printed: the ratio of
the environments alone (without the random policy's masked sampling), the mean teacher time per
step and its retrieval part.

    python scripts/bench_teacher.py --kb runs/teacher/large/kb.wkb --model runs/teacher/model.wtm
    python scripts/bench_teacher.py --kb ... --model ... --lookahead   # the main job's observation
    python scripts/bench_teacher.py --kb ... --model ... --index flat --rounds 3

The teacher's action features include the environment's lookahead columns (HEFT with
lookahead's node scores among them, one trial placement per candidate node). Both compute them
through one shared instance per problem, so with ``--lookahead`` (the policy's observation in the
main job, ``env.lookahead=true``) the teacher reuses the environment's columns; without it the
teacher pays for them alone, against a bare environment that does not compute them.

The base must be keyed by the model (``scripts/train_predictor.py`` writes one; ``--rekey``
re-keys another base, e.g. the ``large`` profile's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np

import wass_env  # noqa: F401  (registers WassSched-v0)
from teacher.kb import KnowledgeBase
from teacher.predictor import TeacherModel
from teacher.teacher import REWARD_MODES, Teacher
from teacher.wrapper import RAGRewardWrapper
from wass_env.bench import rates


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kb", required=True, help="knowledge base keyed by --model")
    ap.add_argument("--model", required=True)
    ap.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf", "numpy"])
    ap.add_argument("--ef-search", type=int, default=32, help="HNSW query beam width")
    ap.add_argument("--mode", default="eq3", choices=REWARD_MODES)
    ap.add_argument("--workload", default="layered", help="generator name for the episodes")
    ap.add_argument("--n-tasks", default="20,60", help="task count range lo,hi")
    ap.add_argument("--cluster", default="het16")
    ap.add_argument(
        "--lookahead",
        action="store_true",
        help="both environments observe the lookahead features (the main job's observation)",
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time, as in an environment worker
    try:
        model = TeacherModel.load(args.model)
        t0 = time.perf_counter()
        kb = KnowledgeBase.load(args.kb)
        params = {"ef_search": args.ef_search} if args.index in ("hnsw", "auto") else {}
        teacher = Teacher(model, kb, mode=args.mode, index=args.index, **params)
        load_s = time.perf_counter() - t0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lo, hi = (int(x) for x in args.n_tasks.split(","))
    spec = {"generator": args.workload, "n_tasks": [lo, hi], "ccr": 1.0}
    env_kw: dict[str, Any] = {
        "workload": spec,
        "cluster": args.cluster,
        "lookahead": args.lookahead,
    }
    bare = gym.make("WassSched-v0", **env_kw)
    wrapped = RAGRewardWrapper(gym.make("WassSched-v0", **env_kw), teacher, lam=0.1)
    print(
        f"base: {len(kb)} records ({args.index} index, loaded in {load_s:.1f} s); "
        f"episodes: {args.workload} {lo}-{hi} tasks on {args.cluster}; mode {args.mode}"
    )
    rates(bare, 0.5, 0)  # warm-up
    rates(wrapped, 0.5, 0)
    rows = []
    times: list[float] = []
    for r in range(args.rounds):
        b, b_env = rates(bare, args.seconds, r)
        w, w_env = rates(wrapped, args.seconds, r, on_info=lambda i: _teacher_times(i, times))
        rows.append((b, w, w / b, w_env / b_env))
        print(
            f"round {r + 1}: bare {b:8.0f} steps/s, wrapped {w:8.0f} steps/s, ratio "
            f"{w / b:.3f} (env alone {w_env / b_env:.3f})"
        )
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    t = np.asarray(times).reshape(-1, 2)
    print(
        f"median: bare {med[0]:.0f} steps/s, wrapped {med[1]:.0f} steps/s, ratio {med[2]:.3f} "
        f"(target >= 0.5; without the policy's sampling {med[3]:.3f}); teacher "
        f"{t[:, 0].mean() * 1e3:.0f} us/step, of which retrieval {t[:, 1].mean() * 1e3:.0f} us"
    )
    return 0


def _teacher_times(info: dict[str, Any], times: list[float]) -> None:
    if "teacher" in info:
        times.append(info["teacher"]["teacher_ms"])
        times.append(info["teacher"]["retrieval_ms"])


if __name__ == "__main__":
    sys.exit(main())
