"""Retrieval latency and recall: approximate FAISS indexes against exact search, same run.

Builds an exact index (``IndexFlatIP``) and the approximate ones (HNSW, IVF) over the same
vectors, then times single-vector queries (what the teacher issues, one per decision) and
measures recall@k of each approximate index against the exact answers: as the fraction of the
exact top-k ids found, and counting ties (a found record as similar as the exact k-th
neighbour is correct; duplicate keys make the id sets ambiguous). Prints the latencies, their
ratio to exact search, recall and build times.

Vectors (``--vectors``):

* ``clustered`` (default): a mixture of 1,000 Gaussian clusters on the unit sphere, like state
  embeddings of many similar decisions; queries are fresh draws from the same mixture;
* ``random``: uniform on the unit sphere (no structure: the hardest case for approximate search);
* ``kb``: the keys of a knowledge base (``--kb``); queries are perturbed copies of held-out keys,
  or with ``--queries-kb`` the keys of another base keyed by the same model (decisions of other
  instances: what the teacher asks during training).

    python scripts/bench_retrieval.py                     # 1,000,000 x 32, clustered
    python scripts/bench_retrieval.py --records 100000 --vectors random
    python scripts/bench_retrieval.py --vectors kb --kb runs/teacher/kb.wkb
    python scripts/bench_retrieval.py --vectors kb --kb BIG.wkb --queries-kb OTHER.wkb
    python scripts/bench_retrieval.py --vectors kb --kb runs/teacher/huge/kb.wkb \
        --ef-search 16,32,64 --nprobe 8,16 --index-cache runs/retrieval   # reuse the indexes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from teacher.retrieval import FaissRetriever, normalize
from wass_env.io import atomic_path


def _vectors(
    kind: str,
    n: int,
    n_q: int,
    dim: int,
    rng: np.random.Generator,
    kb: str | None,
    queries_kb: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if kind == "random":
        return normalize(rng.standard_normal((n, dim))), normalize(rng.standard_normal((n_q, dim)))
    if kind == "clustered":
        centers = normalize(rng.standard_normal((1000, dim)))

        def draw(m: int) -> np.ndarray:
            c = centers[rng.integers(len(centers), size=m)]
            return normalize(c + 0.15 * rng.standard_normal((m, dim)).astype(np.float32))

        return draw(n), draw(n_q)
    from teacher.kb import KnowledgeBase

    if kb is None:
        raise ValueError("--vectors kb needs --kb PATH")
    base_kb = KnowledgeBase.load(kb)
    keys = base_kb.keys
    if queries_kb is not None:
        other = KnowledgeBase.load(queries_kb)
        if other.key_model != base_kb.key_model:
            raise ValueError(
                f"--queries-kb {queries_kb} is keyed by {other.key_model!r}, --kb {kb} by "
                f"{base_kb.key_model!r}: re-key one with the other's model"
            )
        q = other.keys[rng.permutation(len(other.keys))[:n_q]]
        return keys[:n], q
    idx = rng.permutation(len(keys))
    base, held = keys[idx[n_q:]][:n], keys[idx[:n_q]]
    return base, normalize(held + 0.01 * rng.standard_normal(held.shape).astype(np.float32))


def _time_queries(index: Any, queries: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Mean seconds per single-vector query, and the ids found."""
    ids = np.empty((len(queries), k), dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(len(queries)):
        ids[i] = index.search(queries[i : i + 1], k)[1][0]
    return (time.perf_counter() - t0) / len(queries), ids


def _built(
    kind: str, params: dict[str, Any], base: np.ndarray, cache: Path | None, tag: str
) -> FaissRetriever:
    """An index of ``kind`` over ``base``, read from ``cache`` when this script saved it there
    for the same vectors, else built (and saved there)."""
    import faiss

    name = "-".join([kind, *(f"{k}{v}" for k, v in sorted(params.items())), tag]) + ".faiss"
    path = None if cache is None or kind == "flat" else cache / name
    if path is not None and path.exists():
        r = FaissRetriever(base.shape[1], kind, **params)
        r._index = faiss.read_index(str(path))
        r._n = int(r._index.ntotal)
        return r
    r = FaissRetriever(base.shape[1], kind, **params)
    r.add(base)
    if path is not None:
        with atomic_path(path, suffix=".faiss") as tmp:
            faiss.write_index(r._index, str(tmp))
    return r


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k ids found."""
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def recall_at_k_ties(
    found: np.ndarray, base: np.ndarray, queries: np.ndarray, kth: np.ndarray
) -> float:
    """Mean fraction of the k found records that are as similar as the true k-th neighbour.

    The distance-threshold recall of ANN benchmarks: where several records tie at the k-th
    similarity (duplicate keys: a knowledge base stores a decision and its counterfactual
    branches under one key), any of them is a correct answer, which id sets would not credit.
    """
    valid = found >= 0
    sims = np.einsum("qd,qkd->qk", queries, base[np.where(valid, found, 0)])
    tol = 1e-6 * np.maximum(np.abs(kth), 1.0)  # float32 rounding of the inner products
    return float(np.mean(valid & (sims >= (kth - tol)[:, None])))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32, help="vector dimension (the teacher's: 32)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--vectors", choices=["clustered", "random", "kb"], default="clustered")
    ap.add_argument("--kb", help="knowledge base for --vectors kb")
    ap.add_argument("--queries-kb", help="with --vectors kb: query with this base's keys")
    ap.add_argument("--ef-search", default="64", help="HNSW query beam width(s), e.g. 32,64")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--nprobe", default="16", help="IVF cells visited per query, e.g. 8,16")
    ap.add_argument("--threads", type=int, default=0, help="FAISS build threads (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--index-cache",
        type=Path,
        help="keep built indexes in this directory and reuse them (files this script wrote)",
    )
    args = ap.parse_args(argv)
    import faiss

    try:
        efs = [int(x) for x in str(args.ef_search).split(",")]
        nprobes = [int(x) for x in str(args.nprobe).split(",")]
    except ValueError:
        print("error: --ef-search and --nprobe take integers, e.g. 32,64", file=sys.stderr)
        return 2
    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    try:
        base, queries = _vectors(
            args.vectors, args.records, args.queries, args.dim, rng, args.kb, args.queries_kb
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n, dim = base.shape
    print(f"{n} records x {dim} dims ({args.vectors} vectors), {len(queries)} queries, k={args.k}")
    results = []
    builds: list[tuple[str, dict[str, Any], str, list[int]]] = [
        ("flat", {}, "", [0]),
        ("hnsw", {"hnsw_m": args.hnsw_m}, "ef_search", efs),
        ("ivf", {}, "nprobe", nprobes),
    ]
    truth = None
    kth = None
    source = args.vectors
    if args.vectors == "kb":
        st = Path(args.kb).stat()
        source = f"kb{st.st_size}-{st.st_mtime_ns}{'-q' if args.queries_kb else ''}"
    for kind, params, knob, values in builds:
        t0 = time.perf_counter()
        r = _built(kind, params, base, args.index_cache, f"{source}-{args.records}-{args.seed}")
        build = time.perf_counter() - t0
        for v in values:
            if knob == "ef_search":
                r.set_ef_search(v)
            elif knob == "nprobe":
                r.set_nprobe(v)
            # Single queries, one thread: what each environment worker does.
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            lat, ids = _time_queries(r, queries, args.k)
            faiss.omp_set_num_threads(threads)
            if truth is None:
                truth = ids
                kth = np.einsum("qd,qd->q", queries, base[ids[:, -1]])
            assert kth is not None
            rec_ties = recall_at_k_ties(ids, base, queries, kth)
            shown = {**params, knob: v} if knob else params
            results.append((kind, shown, build, lat, recall_at_k(ids, truth), rec_ties))
    exact = results[0][3]
    print(
        f"{'index':<6} {'params':<26} {'build [s]':>9} {'query [ms]':>10} {'vs exact':>9} "
        f"{'recall@' + str(args.k):>9} {'with ties':>9}"
    )
    for kind, params, build, lat, rec, rec_ties in results:
        p = ", ".join(f"{k}={v}" for k, v in params.items()) or "exact"
        print(
            f"{kind:<6} {p:<26} {build:9.1f} {lat * 1e3:10.3f} {exact / lat:8.1f}x {rec:9.3f} "
            f"{rec_ties:9.3f}"
        )
    if args.vectors == "kb":
        dup = 1.0 - len(np.unique(base, axis=0)) / len(base)
        print(f"duplicate keys in the base: {dup:.1%} of the records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
