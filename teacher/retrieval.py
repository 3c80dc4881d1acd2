"""Nearest-neighbour retrieval by cosine similarity.

Vectors are L2-normalised float32, so cosine similarity is an inner product. A small
:class:`Retriever` protocol stands in front of the search library:

* :class:`NumpyRetriever`: brute force in NumPy; the reference the FAISS indexes are tested
  against, and enough for a few thousand records.
* :class:`FaissRetriever`: a FAISS index, ``"flat"`` (exact ``IndexFlatIP``, the default),
  ``"hnsw"`` (``IndexHNSWFlat``: graph search, sub-millisecond at a million records) or ``"ivf"``
  (``IndexIVFFlat``: inverted lists over k-means cells, fast to build).

Every retriever returns ``min(k, len(retriever))`` columns; an approximate index that finds fewer
neighbours than that pads with id ``-1`` and similarity ``-inf``. Ties in similarity are broken by
the lower id in :class:`NumpyRetriever`; FAISS gives no such guarantee.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EXACT_MAX_RECORDS",
    "INDEX_KINDS",
    "FaissRetriever",
    "NumpyRetriever",
    "Retriever",
    "auto_index_kind",
    "make_retriever",
    "normalize",
    "row_norms",
]

#: Index kinds accepted by :func:`make_retriever`.
INDEX_KINDS = ("numpy", "flat", "hnsw", "ivf")
#: :func:`auto_index_kind` keeps exact search up to this many records: a flat scan of 32-dim
#: keys costs about 4 ns per record and query (``scripts/bench_retrieval.py``), so up to here
#: it is about as fast as an HNSW search, and exact.
EXACT_MAX_RECORDS = 10_000


def auto_index_kind(n_records: int) -> str:
    """``"flat"`` (exact) for small bases, ``"hnsw"`` above :data:`EXACT_MAX_RECORDS`."""
    return "flat" if n_records <= EXACT_MAX_RECORDS else "hnsw"


F32 = NDArray[np.float32]
I64 = NDArray[np.int64]


def row_norms(x: F32) -> F32:
    """L2 norm of every row, shape ``(n, 1)``: what ``np.linalg.norm(x, axis=1,
    keepdims=True)`` computes for real input (the same operations), without its dispatch."""
    return np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True))  # type: ignore[no-any-return]


def normalize(vectors: ArrayLike) -> F32:
    """Rows scaled to unit L2 norm, as float32 (all-zero rows stay zero), shape ``(n, dim)``."""
    x = np.array(vectors, dtype=np.float32, ndmin=2, copy=True)
    norm = row_norms(x)
    np.divide(x, norm, out=x, where=norm > 0)
    return x


@runtime_checkable
class Retriever(Protocol):
    """Top-k search by cosine similarity over a growing set of vectors."""

    dim: int

    def __len__(self) -> int:
        """Number of stored vectors."""
        ...

    def add(self, vectors: ArrayLike) -> None:
        """Append vectors (normalised internally); their ids continue from ``len(self)``."""
        ...

    def search(self, queries: ArrayLike, k: int) -> tuple[F32, I64]:
        """The ``min(k, len(self))`` most similar stored vectors of each query.

        Returns:
            ``(similarities, ids)``, both of shape ``(n_queries, min(k, len(self)))``, best
            first.
        """
        ...


def _check_queries(queries: ArrayLike, dim: int, k: int) -> F32:
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    q = normalize(queries)
    if q.shape[1] != dim:
        raise ValueError(f"queries have dimension {q.shape[1]}, the retriever holds {dim}")
    return q


class NumpyRetriever:
    """Exact brute-force search in NumPy.

    Args:
        dim: Vector dimension.
    """

    kind = "numpy"

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self._x = np.zeros((0, self.dim), dtype=np.float32)

    def __len__(self) -> int:
        return int(self._x.shape[0])

    def add(self, vectors: ArrayLike) -> None:
        """Append vectors (normalised here)."""
        x = normalize(vectors)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {x.shape[1]}, the retriever holds {self.dim}")
        self._x = np.concatenate([self._x, x]) if len(self) else x

    def search(self, queries: ArrayLike, k: int) -> tuple[F32, I64]:
        """Exact top-k by inner product; ties go to the lower id."""
        q = _check_queries(queries, self.dim, k)
        kk = min(k, len(self))
        if kk == 0:
            return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
        sims = q @ self._x.T
        if kk < sims.shape[1]:
            ids = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            part = np.take_along_axis(sims, ids, axis=1)
            ids = np.take_along_axis(ids, np.lexsort((ids, -part), axis=1), axis=1)
            # The partition may split a run of equal similarities at the k-th place: redo
            # those rows over every tied id so the lower ids win.
            kth = np.take_along_axis(sims, ids[:, -1:], axis=1)
            for i in np.flatnonzero((sims >= kth).sum(axis=1) > kk).tolist():
                cand = np.flatnonzero(sims[i] >= kth[i, 0])
                ids[i] = cand[np.lexsort((cand, -sims[i, cand]))[:kk]]
        else:
            ids = np.lexsort((np.broadcast_to(np.arange(kk), sims.shape), -sims), axis=1)
        return np.take_along_axis(sims, ids, axis=1).astype(np.float32), ids.astype(np.int64)


def _faiss() -> Any:
    # faiss logs at INFO which CPU build it loads; apps that log INFO (Hydra) would print it.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError(
            "FAISS is needed for this index kind: pip install faiss-cpu "
            "(or use kind='numpy' for the brute-force retriever)"
        ) from exc
    return faiss


class FaissRetriever:
    """A FAISS index over normalised vectors (inner product = cosine similarity).

    Args:
        dim: Vector dimension.
        kind: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"`` (approximate).
        hnsw_m: HNSW graph degree (more: better recall, more memory, slower build).
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW query-time beam width (recall/latency trade-off).
        nlist: IVF cells; default ``4 * sqrt(n)`` of the first batch added (which trains the
            quantizer, so add a representative batch first).
        nprobe: IVF cells visited per query.

    The object pickles (the index is serialised), so environments holding one can be sent to
    subprocess workers.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
    ) -> None:
        if kind not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"FAISS index kind must be 'flat', 'hnsw' or 'ivf', got {kind!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.kind = kind
        self.params: dict[str, Any] = {
            "hnsw_m": int(hnsw_m),
            "ef_construction": int(ef_construction),
            "ef_search": int(ef_search),
            "nlist": None if nlist is None else int(nlist),
            "nprobe": int(nprobe),
        }
        self._index: Any = None
        self._n = 0  # vectors held (FAISS's ntotal, read once per add)
        if kind != "ivf":
            self._index = self._make(0)

    def _make(self, n_first: int) -> Any:
        faiss = _faiss()
        p = self.params
        if self.kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.kind == "hnsw":
            idx = faiss.IndexHNSWFlat(self.dim, p["hnsw_m"], faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = p["ef_construction"]
            idx.hnsw.efSearch = p["ef_search"]
            return idx
        nlist = p["nlist"] or max(1, int(4 * np.sqrt(max(n_first, 1))))
        nlist = max(1, min(nlist, n_first))
        idx = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.METRIC_INNER_PRODUCT
        )
        idx.nprobe = min(p["nprobe"], nlist)
        return idx

    def __len__(self) -> int:
        return self._n

    def set_ef_search(self, ef: int) -> None:
        """HNSW query beam width (ignored by other kinds)."""
        self.params["ef_search"] = int(ef)
        if self.kind == "hnsw" and self._index is not None:
            self._index.hnsw.efSearch = int(ef)

    def set_nprobe(self, nprobe: int) -> None:
        """IVF cells visited per query (ignored by other kinds)."""
        self.params["nprobe"] = int(nprobe)
        if self.kind == "ivf" and self._index is not None:
            self._index.nprobe = min(int(nprobe), int(self._index.nlist))

    def add(self, vectors: ArrayLike) -> None:
        """Append vectors (normalised here); the first batch trains an IVF quantizer."""
        x = normalize(vectors)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {x.shape[1]}, the retriever holds {self.dim}")
        if x.shape[0] == 0:
            return
        if self._index is None:
            self._index = self._make(x.shape[0])
            # k-means on a sample is enough to place the cells (FAISS caps at 256 per cell).
            sample = x
            cap = 256 * int(self._index.nlist)
            if x.shape[0] > cap:
                rng = np.random.default_rng(0)
                sample = x[np.sort(rng.choice(x.shape[0], cap, replace=False))]
            self._index.train(sample)
        self._index.add(x)
        self._n = int(self._index.ntotal)

    def search(self, queries: ArrayLike, k: int) -> tuple[F32, I64]:
        """Top-k by inner product (approximate for ``hnsw`` and ``ivf``)."""
        q = _check_queries(queries, self.dim, k)
        kk = min(k, len(self))
        if kk == 0:
            return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
        sims, ids = self._index.search(q, kk)
        if ids.min() < 0:
            sims[ids < 0] = -np.inf
        return sims, ids.astype(np.int64, copy=False)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index's own structure as plain arrays, for :meth:`from_arrays` (the stored
        vectors are not included: the caller keeps them).

        ``hnsw``: the graph (``hnsw_levels``, ``hnsw_offsets``, ``hnsw_neighbors`` and
        ``hnsw_entry`` = ``[entry point, top level]``); ``ivf``: the k-means cells
        (``ivf_centroids``); ``flat``: nothing (rebuilding an exact index is as fast as reading).
        """
        faiss = _faiss()
        if self._index is None or self.kind == "flat" or not len(self):
            return {}
        if self.kind == "hnsw":
            h = self._index.hnsw
            return {
                "hnsw_levels": faiss.vector_to_array(h.levels).astype(np.int32),
                "hnsw_offsets": faiss.vector_to_array(h.offsets).astype(np.uint64),
                "hnsw_neighbors": faiss.vector_to_array(h.neighbors).astype(np.int32),
                "hnsw_entry": np.array([h.entry_point, h.max_level], dtype=np.int64),
            }
        quantizer = faiss.downcast_index(self._index.quantizer)
        return {"ivf_centroids": quantizer.reconstruct_n(0, quantizer.ntotal).astype(np.float32)}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], vectors: ArrayLike, kind: str, **params: Any
    ) -> FaissRetriever:
        """Rebuild an index from :meth:`to_arrays` output and the vectors it holds.

        Every array is checked (shapes, dtypes, every graph offset and neighbour id in range)
        before FAISS sees it, so damaged or hostile arrays are refused instead of being read out
        of bounds: unlike ``faiss.deserialize_index``, nothing here trusts the file.

        Raises:
            ValueError: naming the array that does not fit.
        """
        x = normalize(vectors)
        n, dim = x.shape
        r = cls(dim, kind, **params)
        faiss = _faiss()
        if kind == "hnsw" and n:
            h = r._index.hnsw
            cum = faiss.vector_to_array(h.cum_nneighbor_per_level).astype(np.int64)
            levels = _array(arrays, "hnsw_levels", np.int32, (n,))
            offsets = _array(arrays, "hnsw_offsets", np.uint64, (n + 1,))
            entry = _array(arrays, "hnsw_entry", np.int64, (2,))
            if levels.min() < 1 or levels.max() > cum.size - 1:
                raise ValueError(f"hnsw_levels: levels must be in [1, {cum.size - 1}]")
            if offsets[0] != 0 or np.any(np.diff(offsets.astype(np.int64)) != cum[levels]):
                raise ValueError("hnsw_offsets: do not match the levels and the graph degree")
            neighbors = _array(arrays, "hnsw_neighbors", np.int32, (int(offsets[-1]),))
            if neighbors.size and (neighbors.min() < -1 or neighbors.max() >= n):
                raise ValueError(f"hnsw_neighbors: ids must be in [-1, {n - 1}]")
            ep, top = (int(v) for v in entry)
            if not 0 <= ep < n or top != int(levels.max()) - 1 or int(levels[ep]) - 1 != top:
                raise ValueError(f"hnsw_entry: entry point {ep} at level {top} does not fit")
            faiss.copy_array_to_vector(levels, h.levels)
            faiss.copy_array_to_vector(offsets, h.offsets)
            faiss.copy_array_to_vector(neighbors, h.neighbors)
            h.entry_point, h.max_level = ep, top
            faiss.downcast_index(r._index.storage).add(x)
            r._index.ntotal = n
        elif kind == "ivf" and n:
            cent = arrays.get("ivf_centroids")
            if cent is None or cent.ndim != 2 or cent.shape[1] != dim or not cent.shape[0] >= 1:
                raise ValueError(f"ivf_centroids: expected an (nlist, {dim}) array")
            cent = _array(arrays, "ivf_centroids", np.float32, cent.shape)
            if not np.all(np.isfinite(cent)):
                raise ValueError("ivf_centroids: not finite")
            quantizer = faiss.IndexFlatIP(dim)
            quantizer.add(cent)
            idx = faiss.IndexIVFFlat(quantizer, dim, int(cent.shape[0]), faiss.METRIC_INNER_PRODUCT)
            idx.is_trained = True  # the cells are the stored centroids
            r._index = idx
            r.set_nprobe(r.params["nprobe"])
            idx.add(x)
        else:
            r.add(x)
        r._n = int(r._index.ntotal) if r._index is not None else 0
        return r

    def to_bytes(self) -> bytes:
        """The index serialised by FAISS (empty when nothing was added to an IVF index).

        For pickling within a run only: :meth:`from_bytes` trusts its input.
        """
        if self._index is None:
            return b""
        return bytes(_faiss().serialize_index(self._index).tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, dim: int, kind: str, **params: Any) -> FaissRetriever:
        """Rebuild from :meth:`to_bytes` output (trusted bytes only: FAISS's reader does not
        check them, so files use :meth:`to_arrays` / :meth:`from_arrays` instead)."""
        r = cls(dim, kind, **params)
        if data:
            r._index = _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))
            r._n = int(r._index.ntotal)
            if r._index.d != dim:
                raise ValueError(f"serialised index has dimension {r._index.d}, expected {dim}")
            r.set_ef_search(r.params["ef_search"])
            r.set_nprobe(r.params["nprobe"])
        return r

    def __getstate__(self) -> dict[str, Any]:
        return {"dim": self.dim, "kind": self.kind, "params": self.params, "blob": self.to_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = FaissRetriever.from_bytes(
            state["blob"], state["dim"], state["kind"], **state["params"]
        )
        self.__dict__.update(other.__dict__)

    def __repr__(self) -> str:
        return f"FaissRetriever(dim={self.dim}, kind={self.kind!r}, n={len(self)})"


def _array(arrays: dict[str, np.ndarray], name: str, dtype: Any, shape: tuple[int, ...]) -> Any:
    """``arrays[name]``, which must have ``dtype`` and ``shape``, as a contiguous copy."""
    a = arrays.get(name)
    if a is None:
        raise ValueError(f"{name}: missing")
    if a.dtype != np.dtype(dtype) or a.shape != shape:
        raise ValueError(
            f"{name}: expected {np.dtype(dtype)} of shape {shape}, got {a.dtype} {a.shape}"
        )
    return np.ascontiguousarray(a).copy()


def make_retriever(dim: int, kind: str = "flat", **params: Any) -> NumpyRetriever | FaissRetriever:
    """A retriever by kind: ``"numpy"``, ``"flat"``, ``"hnsw"`` or ``"ivf"`` (see the module)."""
    if kind == "numpy":
        return NumpyRetriever(dim)
    if kind in ("flat", "hnsw", "ivf"):
        return FaissRetriever(dim, kind, **params)
    raise ValueError(f"unknown index kind {kind!r}; choose one of {INDEX_KINDS}")
