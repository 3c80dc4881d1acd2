"""The state encoder: a graph neural network over the workflow DAG, in plain torch.

The scheduling state is the DAG (task features, :data:`~teacher.features.DAG_TASK_FEATURES`), the
cluster and the partial plan. Encoding it takes two stages, so that a decision costs a few small
matrix products instead of a graph pass:

1. **Per episode** (the DAG and cluster do not change): message passing over the DAG. Each of
   ``layers`` rounds updates every task from itself, the mean of its parents and the mean of its
   children (separate weights per direction, residual connection, ReLU)::

       h_v <- h_v + relu(W_self h_v + W_par mean_{p in parents(v)} h_p
                         + W_child mean_{c in children(v)} h_c + b)

   giving task embeddings ``H`` and a graph readout ``[mean(H), max(H)]``.
2. **Per decision**: the state embedding ``e_t`` is an MLP of ``[graph features, readout,
   H[task], mean of H over the unplaced tasks, state features]``; the mean over the unplaced
   tasks is how the partial plan enters the graph part (what is left to schedule), and the
   state features (:data:`~teacher.features.STATE_FEATURES`) carry the plan's timing and load.

A *family head* maps the per-episode part (graph features and readout) to a ``family_dim``
vector ``z``, trained to classify the workflow's family (cosine prototypes, see
:mod:`teacher.training`). It is part of the retrieval key (:meth:`TeacherModel.key
<teacher.predictor.TeacherModel.key>`), so that retrieved cases come from workflows of the same
kind; a state embedding alone, trained only to predict makespans, mixes families whose makespan
ratios look alike.

:class:`GraphEncoder` is the trainable torch module; :class:`NumpyEncoder` runs the same
computation in NumPy from exported weights (no torch at inference, so environment workers stay
light) and is checked against the torch module in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from teacher.features import DAG_TASK_FEATURES, GRAPH_FEATURES, STATE_FEATURES

__all__ = ["EncoderConfig", "EpisodeEncoding", "GraphEncoder", "NumpyEncoder"]

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the encoder.

    Attributes:
        hidden: Width of task embeddings and of the state MLP.
        layers: Message-passing rounds (each widens the receptive field by one hop each way).
        embed_dim: Size of the state embedding ``e_t``.
        family_dim: Size of the family embedding ``z`` (0: no family head).
        family_share: Share of the family part in the keys' cosine similarity: a key is
            ``[sqrt(s) * unit(z), sqrt(1 - s) * unit(e_t - centre)]``.
    """

    hidden: int = 64
    layers: int = 2
    embed_dim: int = 32
    family_dim: int = 16
    family_share: float = 0.7

    @property
    def key_dim(self) -> int:
        """Size of the retrieval keys."""
        return self.embed_dim + self.family_dim


def _mean_aggregate(h: Tensor, src: Tensor, dst: Tensor, inv_deg: Tensor) -> Tensor:
    """Mean over incoming edges ``src -> dst`` of ``h[src]`` (0 for tasks with none)."""
    out = torch.zeros_like(h)
    out.index_add_(0, dst, h[src])
    return out * inv_deg


class GraphEncoder(nn.Module):
    """Trainable encoder (see the module docstring).

    Args:
        config: Sizes.
    """

    def __init__(self, config: EncoderConfig = EncoderConfig()) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.inp = nn.Linear(len(DAG_TASK_FEATURES), h)
        self.self_w = nn.ModuleList(nn.Linear(h, h) for _ in range(config.layers))
        self.par_w = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(config.layers))
        self.child_w = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(config.layers))
        self.state_in = nn.Linear(len(GRAPH_FEATURES) + 4 * h + len(STATE_FEATURES), h)
        self.state_out = nn.Linear(h, config.embed_dim)
        if config.family_dim > 0:
            self.family = nn.Linear(len(GRAPH_FEATURES) + 2 * h, config.family_dim)

    def task_embeddings(self, x: Tensor, src: Tensor, dst: Tensor) -> Tensor:
        """Message passing over a DAG (or a disjoint union of DAGs).

        Args:
            x: ``(n_tasks, len(DAG_TASK_FEATURES))`` task features.
            src, dst: Edge endpoints (parent, child), int64.

        Returns:
            ``(n_tasks, hidden)`` task embeddings ``H``.
        """
        n = x.shape[0]
        ones = torch.ones(src.shape[0], dtype=x.dtype)
        in_deg = torch.zeros(n, dtype=x.dtype).index_add_(0, dst, ones)
        out_deg = torch.zeros(n, dtype=x.dtype).index_add_(0, src, ones)
        inv_in = (1.0 / in_deg.clamp(min=1.0))[:, None]
        inv_out = (1.0 / out_deg.clamp(min=1.0))[:, None]
        h = torch.relu(self.inp(x))
        for ws, wp, wc in zip(self.self_w, self.par_w, self.child_w, strict=True):
            par = _mean_aggregate(h, src, dst, inv_in)
            child = _mean_aggregate(h, dst, src, inv_out)
            h = h + torch.relu(ws(h) + wp(par) + wc(child))
        return h

    def family_embedding(self, graph: Tensor, readout: Tensor) -> Tensor:
        """The family embedding ``z`` of a batch of graphs, ``(G, family_dim)``.

        Args:
            graph: ``(G, len(GRAPH_FEATURES))`` graph features.
            readout: ``(G, 2 * hidden)`` ``[mean(H), max(H)]``.
        """
        return self.family(torch.cat([graph, readout], dim=1))  # type: ignore[no-any-return]

    def state_embedding(
        self,
        graph: Tensor,
        readout: Tensor,
        task_h: Tensor,
        unplaced_h: Tensor,
        state: Tensor,
    ) -> Tensor:
        """``e_t`` for a batch of decisions.

        Args:
            graph: ``(B, len(GRAPH_FEATURES))`` graph features.
            readout: ``(B, 2 * hidden)`` ``[mean(H), max(H)]`` of each decision's graph.
            task_h: ``(B, hidden)`` embedding of the task to place.
            unplaced_h: ``(B, hidden)`` mean embedding of the unplaced tasks.
            state: ``(B, len(STATE_FEATURES))`` state features.
        """
        z = torch.cat([graph, readout, task_h, unplaced_h, state], dim=1)
        return self.state_out(torch.relu(self.state_in(z)))

    def export(self) -> dict[str, F32]:
        """Weights as float32 NumPy arrays, keyed like :class:`NumpyEncoder` expects."""
        return {
            f"encoder.{k}": v.detach().cpu().numpy().astype(np.float32)
            for k, v in self.state_dict().items()
        }


@dataclass(frozen=True)
class EpisodeEncoding:
    """What the encoder computes once per episode.

    Attributes:
        task_h: ``(n_tasks, hidden)`` task embeddings.
        static_pre: The part of the state MLP's first layer fixed for the episode (graph
            features and readout, plus the bias), shape ``(hidden,)``.
        unplaced_sum: Sum of ``task_h`` over all tasks (the unplaced sum before any placement).
        family: The family embedding ``z`` (empty without a family head).
    """

    task_h: F32
    static_pre: F32
    unplaced_sum: F32
    family: F32 = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class _SegmentSum:
    """Sums of rows grouped by an index, exactly as ``np.add.at`` adds them (each group in
    edge order, starting from 0), in ``max group size`` vectorised rounds instead of one
    scalar update per row: round ``k`` adds every group's ``k``-th row, and no group appears
    twice in a round. Built once per DAG, used by every message-passing layer.
    """

    def __init__(self, index: NDArray[np.int64], n: int) -> None:
        self.n = n
        order = np.argsort(index, kind="stable")
        counts = np.bincount(index, minlength=n)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.empty(index.size, dtype=np.int64)
        rank[order] = np.arange(index.size) - starts[index[order]]  # position in its group
        self.rounds: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        if index.size:
            by_rank = np.argsort(rank, kind="stable")
            bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
            for k in range(len(bounds) - 1):
                rows = by_rank[bounds[k] : bounds[k + 1]]
                self.rounds.append((index[rows], rows))

    def __call__(self, values: F32) -> F32:
        """``out[g] = sum of values[e] over the rows e of group g`` (``values``: per row)."""
        out = np.zeros((self.n, values.shape[1]), dtype=values.dtype)
        for groups, rows in self.rounds:
            out[groups] += values[rows]
        return out


class NumpyEncoder:
    """Inference-only encoder in NumPy, from :meth:`GraphEncoder.export` weights.

    Args:
        weights: Exported weights.
        config: The sizes they were trained with.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], config: EncoderConfig) -> None:
        self.config = config
        g = lambda k: np.ascontiguousarray(weights[f"encoder.{k}"], dtype=np.float32)  # noqa: E731
        h = config.hidden
        self._inp_w, self._inp_b = g("inp.weight").T.copy(), g("inp.bias")
        self._layers = [
            (
                g(f"self_w.{i}.weight").T.copy(),
                g(f"self_w.{i}.bias"),
                g(f"par_w.{i}.weight").T.copy(),
                g(f"child_w.{i}.weight").T.copy(),
            )
            for i in range(config.layers)
        ]
        w_in = g("state_in.weight").T.copy()  # (in, hidden)
        n_g = len(GRAPH_FEATURES)
        self._w_graph = w_in[: n_g + 2 * h]
        self._w_task = w_in[n_g + 2 * h : n_g + 3 * h]
        self._w_unplaced = w_in[n_g + 3 * h : n_g + 4 * h]
        self._w_state = w_in[n_g + 4 * h :]
        self._b_in = g("state_in.bias")
        self._w_out, self._b_out = g("state_out.weight").T.copy(), g("state_out.bias")
        self._w_fam: F32 | None = None
        if config.family_dim > 0:
            self._w_fam, self._b_fam = g("family.weight").T.copy(), g("family.bias")

    def encode_episode(
        self,
        task_features: F32,
        edge_src: NDArray[np.integer],
        edge_dst: NDArray[np.integer],
        graph: F32,
    ) -> EpisodeEncoding:
        """Message passing and readout for one DAG (see :class:`GraphEncoder`)."""
        x = np.asarray(task_features, dtype=np.float32)
        n = x.shape[0]
        src = np.asarray(edge_src, dtype=np.int64)
        dst = np.asarray(edge_dst, dtype=np.int64)
        inv_in = (1.0 / np.maximum(np.bincount(dst, minlength=n), 1)).astype(np.float32)[:, None]
        inv_out = (1.0 / np.maximum(np.bincount(src, minlength=n), 1)).astype(np.float32)[:, None]
        h = np.maximum(x @ self._inp_w + self._inp_b, 0.0)
        to_child, to_parent = _SegmentSum(dst, n), _SegmentSum(src, n)
        for ws, bs, wp, wc in self._layers:
            par = to_child(h[src])  # sum over each task's parents
            child = to_parent(h[dst])  # sum over each task's children
            h = h + np.maximum(h @ ws + bs + (par * inv_in) @ wp + (child * inv_out) @ wc, 0.0)
        readout = np.concatenate([h.mean(axis=0), h.max(axis=0)])
        z = np.concatenate([np.asarray(graph, dtype=np.float32), readout])
        static_pre = z @ self._w_graph + self._b_in
        fam = np.zeros(0, dtype=np.float32)
        if self._w_fam is not None:
            fam = (z @ self._w_fam + self._b_fam).astype(np.float32)
        return EpisodeEncoding(
            task_h=np.ascontiguousarray(h, dtype=np.float32),
            static_pre=static_pre.astype(np.float32),
            unplaced_sum=h.sum(axis=0).astype(np.float32),
            family=fam,
        )

    def embed(
        self, enc: EpisodeEncoding, task: int, unplaced: NDArray[np.bool_], state: F32
    ) -> F32:
        """The state embedding ``e_t``, shape ``(embed_dim,)``.

        Args:
            enc: The episode's encoding.
            task: The task to place.
            unplaced: ``(n_tasks,)`` bool, tasks not placed yet.
            state: State features.
        """
        cnt = int(np.count_nonzero(unplaced))
        mean_unplaced = (unplaced.astype(np.float32) @ enc.task_h) / max(cnt, 1)
        pre = (
            enc.static_pre
            + enc.task_h[task] @ self._w_task
            + mean_unplaced @ self._w_unplaced
            + state @ self._w_state
        )
        return np.maximum(pre, 0.0) @ self._w_out + self._b_out  # type: ignore[no-any-return]
