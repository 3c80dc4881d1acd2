"""The knowledge base K of past scheduling runs, with cosine-similarity retrieval.

Granularity. K holds two linked tables:

* **episodes**, one per scheduled workflow run: the paper's record ``k_i = (G_i, A_i, M_i)``.
  ``G_i`` is the workflow graph on its cluster (per-task static features and the DAG's edges, as
  :class:`~teacher.features.ProblemFeatures` computes them, plus whole-graph features), ``A_i``
  the actions in decision order (the decision records of the episode) and ``M_i`` the final
  makespan, with its lower bound. Metadata for explanations: workflow name, family, instance id,
  cluster name and the policy that produced the run.
* **decision records**, one per placement: episode, step, task, the node chosen, the state
  features, the chosen node's action features, the target (final makespan / lower bound of the
  run that followed this decision) and the retrieval key. A record is the (state, action, final
  makespan) example the predictor trains on, and the unit of retrieval: a query is a state, its
  neighbours are similar states met in past runs. *Branch* records are counterfactuals: at a
  sampled decision of a run, another node was tried and the run continued with the same policy;
  their target is that branch's makespan. Every record names its *continuation policy*
  (``rec_cont``, an index into :attr:`KnowledgeBase.continuations`): the policy that made the
  decisions after it. A main-run record continues with the run's own policy; a branch with the
  deterministic policy that completed it (HEFT by default), so that its target is a function of
  the state and the action, and records of one decision with one continuation are a same-state
  comparison of actions.

Keys. ``keys`` are L2-normalised float32 vectors searched by inner product (cosine similarity).
A freshly built base is keyed by :func:`~teacher.features.descriptor` (``key_model ==
"descriptor"``); training the teacher re-keys it with the state encoder's embeddings
(:meth:`KnowledgeBase.set_keys`), and the teacher refuses a base keyed by another model.

Files. :meth:`KnowledgeBase.save` writes one checksummed container (see :mod:`teacher.storage`)
atomically; :meth:`KnowledgeBase.load` refuses a corrupt, truncated, foreign or
version-mismatched file with a :class:`KnowledgeBaseError` naming the file and the problem.
:meth:`KnowledgeBase.append_file` adds records to a saved base (continual learning) by writing a
new file over it atomically; the old base stays intact until the new one is complete. An
approximate index (HNSW, IVF) is stored with the base so it is not rebuilt on every load: as
plain arrays (the HNSW graph, the IVF centroids), each checked before FAISS reads it, never as
FAISS's own serialisation, whose reader trusts its input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from teacher.features import (
    ACTION_FEATURES,
    DAG_TASK_FEATURES,
    GRAPH_FEATURES,
    STATE_FEATURES,
    ProblemFeatures,
)
from teacher.retrieval import FaissRetriever, NumpyRetriever, make_retriever, normalize
from teacher.storage import StorageError, read_arrays, write_arrays

__all__ = [
    "FORMAT_VERSION",
    "KIND",
    "EpisodeRecords",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "concat",
]

KIND = "wass-knowledge-base"
#: Version of the file layout; bump it when arrays or their meaning change.
FORMAT_VERSION = 2
DESCRIPTOR_KEYS = "descriptor"

_QUERY_PARAMS = ("ef_search", "nprobe")  # index parameters that can change without a rebuild
_EPISODE_STR = ("name", "family", "instance", "cluster", "policy")
_FEATURES = {
    "task_features": list(DAG_TASK_FEATURES),
    "graph_features": list(GRAPH_FEATURES),
    "state_features": list(STATE_FEATURES),
    "action_features": list(ACTION_FEATURES),
}


class KnowledgeBaseError(StorageError):
    """A knowledge base file or request is invalid (the message names the file and problem)."""


@dataclass
class EpisodeRecords:
    """The decision records of one run, as collected while it is planned.

    Attributes:
        step: Decision index of each record (branch records repeat their decision's index).
        task: Task placed.
        action: Node chosen.
        state: ``(n, len(STATE_FEATURES))`` state features.
        action_features: ``(n, len(ACTION_FEATURES))`` features of the chosen node.
        keys: ``(n, key_dim)`` retrieval keys.
        target: Final makespan / lower bound of the run that followed each decision.
        branch: True for counterfactual records.
        task_rank: ``(n_tasks,)`` decision index of every task in the main run.
        cont: ``(n,)`` continuation policy of each record, an index into ``cont_names``
            (``None``: every record continues with the run's own policy).
        cont_names: The continuation policies ``cont`` refers to.
    """

    step: NDArray[np.int32]
    task: NDArray[np.int32]
    action: NDArray[np.int32]
    state: NDArray[np.float32]
    action_features: NDArray[np.float32]
    keys: NDArray[np.float32]
    target: NDArray[np.float32]
    branch: NDArray[np.bool_]
    task_rank: NDArray[np.int32]
    cont: NDArray[np.int32] | None = None
    cont_names: tuple[str, ...] = ()


# Column name -> (dtype, per-row shape source). Record columns first, then episode and task ones.
_RECORD_COLS = {
    "rec_episode": np.int32,
    "rec_step": np.int32,
    "rec_task": np.int32,
    "rec_action": np.int32,
    "rec_branch": np.bool_,
    "rec_target": np.float32,
    "rec_cont": np.int32,
    "rec_state": np.float32,
    "rec_action_features": np.float32,
    "keys": np.float32,
}
_EPISODE_COLS = {
    "ep_graph": np.float32,
    "ep_makespan": np.float64,
    "ep_lower_bound": np.float64,
    "ep_n_nodes": np.int32,
    "ep_n_tasks": np.int64,
    "ep_n_edges": np.int64,
}
_TASK_COLS = {"task_features": np.float32, "task_rank": np.int32}
_EDGE_COLS = {"edge_src": np.int32, "edge_dst": np.int32}


class KnowledgeBase:
    """Past runs and their decision records, searchable by state similarity.

    Args:
        key_dim: Dimension of the retrieval keys.
        key_model: What made the keys (``"descriptor"`` or a model fingerprint).

    Attributes:
        key_dim: Dimension of the keys.
        key_model: What made the keys.
        meta: Free-form JSON metadata (build profile, seed, ...), saved with the base.
    """

    def __init__(self, key_dim: int, key_model: str = DESCRIPTOR_KEYS) -> None:
        if key_dim < 1:
            raise KnowledgeBaseError(f"key_dim must be >= 1, got {key_dim}")
        self.key_dim = int(key_dim)
        self.key_model = str(key_model)
        self.meta: dict[str, Any] = {}
        self._cols: dict[str, list[np.ndarray]] = {
            c: [] for c in (*_RECORD_COLS, *_EPISODE_COLS, *_TASK_COLS, *_EDGE_COLS)
        }
        self._str: dict[str, list[str]] = {c: [] for c in _EPISODE_STR}
        self._cont_names: list[str] = []
        self._cont_index: dict[str, int] = {}
        self._n_records = 0
        self._n_episodes = 0
        self._index: NumpyRetriever | FaissRetriever | None = None
        self._index_spec: dict[str, Any] = {"kind": "flat"}

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        """Number of decision records."""
        return self._n_records

    @property
    def n_records(self) -> int:
        """Number of decision records."""
        return self._n_records

    @property
    def n_episodes(self) -> int:
        """Number of runs."""
        return self._n_episodes

    # ------------------------------------------------------------------ columns
    def column(self, name: str) -> np.ndarray:
        """A stored column, concatenated (see the module docstring for the names)."""
        parts = self._cols.get(name)
        if parts is None:
            raise KeyError(f"no column {name!r}; columns are {sorted(self._cols)}")
        if len(parts) != 1:
            dtype = {**_RECORD_COLS, **_EPISODE_COLS, **_TASK_COLS, **_EDGE_COLS}[name]
            width = self._width(name)
            parts[:] = [
                np.concatenate(parts) if parts else np.zeros((0, *width), dtype=dtype)  # type: ignore[call-overload]
            ]
        return parts[0]

    def _width(self, name: str) -> tuple[int, ...]:
        return {
            "rec_state": (len(STATE_FEATURES),),
            "rec_action_features": (len(ACTION_FEATURES),),
            "keys": (self.key_dim,),
            "ep_graph": (len(GRAPH_FEATURES),),
            "task_features": (len(DAG_TASK_FEATURES),),
        }.get(name, ())

    @property
    def keys(self) -> NDArray[np.float32]:
        """``(n_records, key_dim)`` L2-normalised retrieval keys."""
        return self.column("keys")

    @property
    def targets(self) -> NDArray[np.float32]:
        """Final makespan / lower bound of each record's run."""
        return self.column("rec_target")

    def episode_strings(self, field: str) -> list[str]:
        """Per-episode strings: ``name``, ``family``, ``instance``, ``cluster`` or ``policy``."""
        if field not in self._str:
            raise KeyError(f"no episode field {field!r}; fields are {_EPISODE_STR}")
        return self._str[field]

    @property
    def continuations(self) -> tuple[str, ...]:
        """The continuation policies that ``rec_cont`` indexes."""
        return tuple(self._cont_names)

    def record_continuations(self) -> list[str]:
        """The continuation policy of every record (see the module docstring)."""
        names = self._cont_names
        return [names[i] for i in self.column("rec_cont").tolist()]

    def record_families(self) -> NDArray[np.str_]:
        """The workflow family of every record's run."""
        fam = np.asarray(self._str["family"], dtype=str)
        return fam[self.column("rec_episode")] if len(fam) else np.zeros(0, dtype=str)

    def _cont_id(self, name: str) -> int:
        i = self._cont_index.get(name)
        if i is None:
            i = self._cont_index[name] = len(self._cont_names)
            self._cont_names.append(name)
        return i

    def record_info(self, rec: int) -> dict[str, Any]:
        """Everything known about record ``rec``, for explanations."""
        if not 0 <= rec < self._n_records:
            raise IndexError(f"record {rec} out of range 0..{self._n_records - 1}")
        ep = int(self.column("rec_episode")[rec])
        info: dict[str, Any] = {f: self._str[f][ep] for f in _EPISODE_STR}
        info.update(
            record=rec,
            episode=ep,
            step=int(self.column("rec_step")[rec]),
            task=int(self.column("rec_task")[rec]),
            action=int(self.column("rec_action")[rec]),
            branch=bool(self.column("rec_branch")[rec]),
            continuation=self._cont_names[int(self.column("rec_cont")[rec])],
            target=float(self.column("rec_target")[rec]),
            makespan=float(self.column("ep_makespan")[ep]),
            lower_bound=float(self.column("ep_lower_bound")[ep]),
            n_tasks=int(self.column("ep_n_tasks")[ep]),
            n_nodes=int(self.column("ep_n_nodes")[ep]),
        )
        return info

    def episode_slices(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """``(task_ptr, edge_ptr)``: episode ``i``'s tasks are rows ``task_ptr[i]:task_ptr[i+1]``
        of ``task_features``; its edges rows ``edge_ptr[i]:edge_ptr[i+1]`` of ``edge_src``."""
        z = np.zeros(1, dtype=np.int64)
        return (
            np.concatenate([z, np.cumsum(self.column("ep_n_tasks"))]),
            np.concatenate([z, np.cumsum(self.column("ep_n_edges"))]),
        )

    # ------------------------------------------------------------------ adding
    def add_episode(
        self,
        pf: ProblemFeatures,
        records: EpisodeRecords,
        *,
        makespan: float,
        policy: str,
        instance: str = "",
    ) -> int:
        """Add one run and its decision records.

        Args:
            pf: Static features of the run's problem (the graph ``G_i``).
            records: Its decision records (``A_i`` and the per-decision targets).
            makespan: Final makespan of the main run [s] (``M_i``).
            policy: Name of the policy that produced it.
            instance: Id of the workflow instance (for splits by instance; default: its name).

        Returns:
            The episode index.
        """
        n = int(records.step.size)
        if records.keys.shape != (n, self.key_dim):
            raise KnowledgeBaseError(
                f"keys have shape {records.keys.shape}, expected ({n}, {self.key_dim})"
            )
        if records.task_rank.size != pf.n_tasks:
            raise KnowledgeBaseError(
                f"task_rank has {records.task_rank.size} entries for {pf.n_tasks} tasks"
            )
        ep = self._n_episodes
        wf, cl = pf.problem.workflow, pf.problem.cluster
        c = self._cols
        c["rec_episode"].append(np.full(n, ep, dtype=np.int32))
        c["rec_step"].append(records.step.astype(np.int32))
        c["rec_task"].append(records.task.astype(np.int32))
        c["rec_action"].append(records.action.astype(np.int32))
        c["rec_branch"].append(records.branch.astype(np.bool_))
        c["rec_target"].append(records.target.astype(np.float32))
        if records.cont is None:
            cont = np.full(n, self._cont_id(policy), dtype=np.int32)
        else:
            if records.cont.shape != (n,):
                raise KnowledgeBaseError(f"cont has shape {records.cont.shape}, expected ({n},)")
            table = np.array([self._cont_id(p) for p in records.cont_names], dtype=np.int32)
            if n and (records.cont.min() < 0 or records.cont.max() >= table.size):
                raise KnowledgeBaseError("cont indexes past cont_names")
            cont = table[records.cont] if n else np.zeros(0, dtype=np.int32)
        c["rec_cont"].append(cont)
        c["rec_state"].append(records.state.astype(np.float32))
        c["rec_action_features"].append(records.action_features.astype(np.float32))
        c["keys"].append(normalize(records.keys) if n else records.keys.astype(np.float32))
        c["ep_graph"].append(pf.graph[None, :].astype(np.float32))
        c["ep_makespan"].append(np.array([makespan], dtype=np.float64))
        c["ep_lower_bound"].append(np.array([pf.scale], dtype=np.float64))
        c["ep_n_nodes"].append(np.array([cl.n_nodes], dtype=np.int32))
        c["ep_n_tasks"].append(np.array([wf.n_tasks], dtype=np.int64))
        c["ep_n_edges"].append(np.array([wf.n_edges], dtype=np.int64))
        c["task_features"].append(pf.task.astype(np.float32))
        c["task_rank"].append(records.task_rank.astype(np.int32))
        c["edge_src"].append(pf.edge_src.astype(np.int32))
        c["edge_dst"].append(pf.edge_dst.astype(np.int32))
        self._str["name"].append(wf.name)
        self._str["family"].append(wf.family)
        self._str["instance"].append(instance or wf.name)
        self._str["cluster"].append(cl.name)
        self._str["policy"].append(policy)
        self._n_records += n
        self._n_episodes += 1
        if self._index is not None and n:
            self._index.add(c["keys"][-1])
        return ep

    def extend(self, other: KnowledgeBase) -> None:
        """Append every episode and record of ``other`` (same features and key model).

        Raises:
            KnowledgeBaseError: if the key dimension or key model differ.
        """
        if other.key_dim != self.key_dim or other.key_model != self.key_model:
            raise KnowledgeBaseError(
                f"cannot merge a base keyed by {other.key_model!r} (dim {other.key_dim}) into "
                f"one keyed by {self.key_model!r} (dim {self.key_dim}); re-key one of them"
            )
        if other.n_episodes == 0:
            return
        remap = np.array([self._cont_id(p) for p in other._cont_names], dtype=np.int32)
        for name in self._cols:
            col = other.column(name)
            if name == "rec_episode":
                col = col + np.int32(self._n_episodes)
            elif name == "rec_cont":
                col = remap[col] if col.size else col
            self._cols[name].append(col)
        for f in _EPISODE_STR:
            self._str[f].extend(other._str[f])
        if self._index is not None and len(other):
            self._index.add(other.keys)
        self._n_records += other._n_records
        self._n_episodes += other._n_episodes

    def set_keys(self, keys: ArrayLike, key_model: str) -> None:
        """Replace every key (re-index), e.g. with a trained encoder's state embeddings.

        Args:
            keys: ``(n_records, dim)`` new keys (normalised here).
            key_model: Fingerprint of what made them.
        """
        k = normalize(keys)
        if k.shape[0] != self._n_records:
            raise KnowledgeBaseError(f"{k.shape[0]} keys for {self._n_records} records")
        self.key_dim = int(k.shape[1])
        self.key_model = str(key_model)
        self._cols["keys"] = [k]
        self._index = None

    # ------------------------------------------------------------------ retrieval
    def index(self, kind: str | None = None, **params: Any) -> NumpyRetriever | FaissRetriever:
        """The retriever over the keys, built on first use.

        Asking again for the same kind with other query-time parameters (``ef_search``,
        ``nprobe``) retunes the existing index; other parameters or another kind rebuild it.

        Args:
            kind: ``"flat"`` (exact, default), ``"hnsw"``, ``"ivf"`` or ``"numpy"``; ``None``
                keeps the current one (or the one stored with the base).
            **params: Index parameters (see :class:`~teacher.retrieval.FaissRetriever`).
        """
        spec = {**self._index_spec, **params} if kind is None else {"kind": kind, **params}
        cur = self._index_spec
        build = {k: v for k, v in spec.items() if k not in _QUERY_PARAMS}
        same_build = build == {k: v for k, v in cur.items() if k not in _QUERY_PARAMS}
        if self._index is not None and same_build:
            if isinstance(self._index, FaissRetriever):
                if "ef_search" in spec:
                    self._index.set_ef_search(int(spec["ef_search"]))
                if "nprobe" in spec:
                    self._index.set_nprobe(int(spec["nprobe"]))
            self._index_spec = dict(spec)
            return self._index
        r = make_retriever(
            self.key_dim, spec["kind"], **{k: v for k, v in spec.items() if k != "kind"}
        )
        if len(self):
            r.add(self.keys)
        self._index = r
        self._index_spec = dict(spec)
        return self._index

    def search(self, queries: ArrayLike, k: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Top-``k`` records by cosine similarity of their keys to each query.

        Returns:
            ``(similarities, record_ids)``, shape ``(n_queries, min(k, len(self)))``.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.key_dim:
            raise KnowledgeBaseError(
                f"queries must have shape (n, {self.key_dim}) for keys made by "
                f"{self.key_model!r}, got {q.shape}"
            )
        return self.index().search(q, k)

    # ------------------------------------------------------------------ files
    def _arrays(self, include_index: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {name: self.column(name) for name in self._cols}
        meta: dict[str, Any] = {
            "key_dim": self.key_dim,
            "key_model": self.key_model,
            "n_records": self._n_records,
            "n_episodes": self._n_episodes,
            "episodes": {f: self._str[f] for f in _EPISODE_STR},
            "continuations": list(self._cont_names),
            "features": _FEATURES,
            "index": self._index_spec,
            "user": self.meta,
        }
        idx = self._index
        if include_index and isinstance(idx, FaissRetriever) and idx.kind != "flat" and len(idx):
            # The index's structure as plain arrays, never FAISS's own serialisation: reading
            # that back trusts the bytes (see load).
            arrays.update({f"index_{k}": v for k, v in idx.to_arrays().items()})
        return arrays, meta

    def save(self, path: str | os.PathLike[str], *, include_index: bool = True) -> None:
        """Write the base to ``path`` atomically (temporary file + ``os.replace``).

        Args:
            path: Destination file (conventionally ``*.wkb``).
            include_index: Also store an approximate index (HNSW/IVF), if one was built.
        """
        arrays, meta = self._arrays(include_index)
        write_arrays(path, arrays, kind=KIND, version=FORMAT_VERSION, meta=meta)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, index: str | None = None, **params: Any
    ) -> KnowledgeBase:
        """Read a base written by :meth:`save`.

        Args:
            path: The file.
            index: Index kind to use (default: the one saved with the base, else ``"flat"``).
            **params: Index parameters when ``index`` is given.

        Raises:
            KnowledgeBaseError: naming the file and the problem (missing, corrupt, truncated,
                other format version, other features).
        """
        arrays, meta = read_arrays(
            path, kind=KIND, version=FORMAT_VERSION, error=KnowledgeBaseError
        )
        try:
            if meta["features"] != _FEATURES:
                raise KnowledgeBaseError(
                    f"{path}: built with other features than this code computes; rebuild it"
                )
            kb = cls(int(meta["key_dim"]), str(meta["key_model"]))
            n_rec, n_ep = int(meta["n_records"]), int(meta["n_episodes"])
            for name in kb._cols:
                kb._cols[name] = [np.array(arrays[name])]
            strings = meta["episodes"]
            for f in _EPISODE_STR:
                kb._str[f] = [str(s) for s in strings[f]]
            for name in meta["continuations"]:
                kb._cont_id(str(name))
            kb.meta = dict(meta.get("user", {}))
            stored_spec = dict(meta.get("index", {"kind": "flat"}))
        except KnowledgeBaseError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise KnowledgeBaseError(
                f"{path}: corrupted metadata ({type(exc).__name__}: {exc})"
            ) from None
        kb._n_records, kb._n_episodes = n_rec, n_ep
        kb._check(path)
        if index is None:
            kb._index_spec = stored_spec
            stored = {k[6:]: v for k, v in arrays.items() if k.startswith("index_")}
            stored.pop("blob", None)  # an older version's FAISS blob: rebuilt on first use
            if stored and stored_spec.get("kind") in ("hnsw", "ivf"):
                # Checked array by array before FAISS uses them; a FAISS blob written by an
                # older version ("index_blob") is never deserialised: the index is rebuilt.
                p = {k: v for k, v in stored_spec.items() if k != "kind"}
                try:
                    kb._index = FaissRetriever.from_arrays(
                        stored, kb.keys, stored_spec["kind"], **p
                    )
                except (TypeError, ValueError) as exc:
                    raise KnowledgeBaseError(f"{path}: corrupted stored index ({exc})") from None
        else:
            kb.index(index, **params)
        return kb

    def _check(self, path: str | os.PathLike[str]) -> None:
        n, e = self._n_records, self._n_episodes
        lengths = {name: len(self.column(name)) for name in _RECORD_COLS}
        lengths.update({name: len(self.column(name)) for name in _EPISODE_COLS})
        want = {**dict.fromkeys(_RECORD_COLS, n), **dict.fromkeys(_EPISODE_COLS, e)}
        t = int(self.column("ep_n_tasks").sum())
        m = int(self.column("ep_n_edges").sum())
        for name in _TASK_COLS:
            lengths[name], want[name] = len(self.column(name)), t
        for name in _EDGE_COLS:
            lengths[name], want[name] = len(self.column(name)), m
        bad = [
            f"{k} has {lengths[k]} rows, expected {want[k]}" for k in want if lengths[k] != want[k]
        ]
        if any(len(self._str[f]) != e for f in _EPISODE_STR):
            bad.append("episode strings do not match the episode count")
        if self.keys.ndim != 2 or self.keys.shape[1] != self.key_dim:
            bad.append(f"keys have shape {self.keys.shape}, expected (n, {self.key_dim})")
        if n and (self.column("rec_episode").min() < 0 or self.column("rec_episode").max() >= e):
            bad.append("a record points to a missing episode")
        cont = self.column("rec_cont")
        if n and (cont.min() < 0 or cont.max() >= len(self._cont_names)):
            bad.append("a record names a missing continuation policy")
        if bad:
            raise KnowledgeBaseError(f"{path}: inconsistent contents: " + "; ".join(bad))

    @classmethod
    def append_file(
        cls,
        path: str | os.PathLike[str],
        new: KnowledgeBase,
    ) -> KnowledgeBase:
        """Add the records of ``new`` to the base saved at ``path`` (continual learning).

        The saved base is read (and checked) first; the merged base then replaces it atomically,
        so a failure at any point leaves the old file as it was. A stored approximate index is
        extended, not rebuilt.

        Returns:
            The merged base.
        """
        kb = cls.load(path)
        if new.key_model != kb.key_model or new.key_dim != kb.key_dim:
            raise KnowledgeBaseError(
                f"{path}: keyed by {kb.key_model!r} (dim {kb.key_dim}); the new records are "
                f"keyed by {new.key_model!r} (dim {new.key_dim}): re-key them with the same "
                "model first"
            )
        kb.extend(new)
        kb.save(path)
        return kb

    def __repr__(self) -> str:
        return (
            f"KnowledgeBase(records={self._n_records}, episodes={self._n_episodes}, "
            f"keys={self.key_model!r}x{self.key_dim})"
        )


def concat(bases: Iterable[KnowledgeBase]) -> KnowledgeBase:
    """One base holding every episode of ``bases`` (in order)."""
    bases = list(bases)
    if not bases:
        raise KnowledgeBaseError("nothing to concatenate")
    out = KnowledgeBase(bases[0].key_dim, bases[0].key_model)
    out.meta = dict(bases[0].meta)
    for b in bases:
        out.extend(b)
    return out
