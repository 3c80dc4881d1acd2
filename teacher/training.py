"""Stage 2 of the pipeline: train the encoder and the predictor on the knowledge base.

Training runs in two phases, because the retrieval keys are the encoder's own embeddings:

1. **Encoder + predictor, no context.** Mini-batches of whole episodes: the GNN runs over the
   batch's DAGs (a disjoint union), every decision record of those episodes is embedded and the
   predictor regresses the final makespan / lower bound from ``[e_t, action, 0]``. Three more
   terms shape it:

   * **ranking** (``rank_weight``): records of one decision with one continuation policy (a
     counterfactual group, see :mod:`teacher.build`) are a same-state comparison of actions;
     a logistic (RankNet) loss on every pair of the group, on the difference of the log
     predictions, teaches the predictor which of two actions is better, which a squared error
     dominated by the state's own level barely does;
   * **pair difference** (``pair_weight``): the squared error of the predicted difference of a
     pair against the observed one (the state's share of the error cancels);
   * **family** (``family_weight``): the family head's embedding ``z`` of each workflow is
     classified into its family by cosine similarity to learned prototypes, so that the keys,
     which contain ``z``, retrieve cases of the same kind of workflow.

2. **Predictor with context, encoder frozen.** Every record is embedded once; these embeddings
   (with ``z``) become the base's keys. Each training record retrieves its top-K neighbours from
   the *other half* of the training instances (two folds split by instance, so that no record
   retrieves itself or its own run's twins, which a held-out workflow could not do either);
   held-out records retrieve from all training records. The predictor then trains on
   ``[e_t, action, C_t]``: one prediction per retrieved case, averaged with similarity weights
   (``context="expectation"``, the paper's ``E_{k ~ C_t}``), or one prediction from the
   averaged context (``"mean"``).

Splits are by workflow *instance* (all runs of one workflow, whatever the policy or branch, fall
on one side), so the held-out figures are for workflows never seen in training; whole families
can be held out as well. :func:`train_teacher` returns the model, the re-keyed embeddings for
every record, and a report: MSE and R^2 (on the ratio makespan / lower bound) for the held-out
instances and families, with and without context, the pairwise ordering accuracy on
same-state pairs, the share of retrieved cases from the query's family and the spread of the
similarities.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from teacher.encoder import EncoderConfig, GraphEncoder
from teacher.features import ACTION_FEATURES
from teacher.kb import KnowledgeBase, KnowledgeBaseError
from teacher.predictor import (
    Predictor,
    PredictorConfig,
    TeacherModel,
    case_contexts,
    context_vectors,
    similarity_weights,
)
from teacher.retrieval import make_retriever
from wass_env.scheduling import Scheduler
from wass_env.sim.problem import Problem

__all__ = [
    "PredictorTrainConfig",
    "TrainResult",
    "compare_policies",
    "embed_records",
    "regression_metrics",
    "train_teacher",
]

#: Pairs whose targets differ by less than this (relative) count as ties: left out of the
#: ranking loss and of the ordering accuracy.
PAIR_TOLERANCE = 0.01
_FAMILY_TEMPERATURE = 0.1  # cosine-prototype logits are cos / T


@dataclass(frozen=True)
class PredictorTrainConfig:
    """How stage 2 trains.

    Attributes:
        encoder: Encoder sizes (and the family head).
        predictor: Predictor sizes, K (the retrieved cases per decision) and the context mode.
        epochs: Phase-1 epochs (encoder + predictor, no context).
        context_epochs: Phase-2 epochs (predictor with context, encoder frozen).
        batch_episodes: Episodes per phase-1 mini-batch.
        batch_rows: Records per phase-2 mini-batch.
        lr: Adam learning rate (cosine-decayed to 5% over each phase).
        weight_decay: Adam weight decay.
        val_fraction: Fraction of the (non held-out-family) instances held out.
        holdout_families: Workflow families held out entirely.
        max_episodes: Train on at most this many episodes (sampled), for very large bases.
        index: Index kind used to retrieve training context (``"flat"``: exact).
        loss: ``"ratio"``: squared error on makespan / lower bound (what R^2 measures);
            ``"log"``: on its logarithm (relative errors).
        policy_dropout: Fraction of records trained with the continuation policy "unknown"
            (see :mod:`teacher.predictor`).
        pair_weight: Weight of the pair-difference term.
        rank_weight: Weight of the pairwise ranking term.
        rank_scale: Sharpness of the ranking loss: ``softplus(-rank_scale * (log p_worse -
            log p_better))``, so a 1/rank_scale relative gap is one unit of the logit.
        family_weight: Weight of the family classification term (0: no family head training).
        seed: Seed of splits, initialisation and shuffling.
        threads: Torch CPU threads.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    epochs: int = 30
    context_epochs: int = 15
    batch_episodes: int = 8
    batch_rows: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.2
    holdout_families: tuple[str, ...] = ()
    max_episodes: int | None = None
    index: str = "flat"
    loss: str = "ratio"
    policy_dropout: float = 0.2
    pair_weight: float = 1.0
    rank_weight: float = 0.05
    rank_scale: float = 50.0
    family_weight: float = 0.2
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "holdout_families", tuple(self.holdout_families))


@dataclass
class TrainResult:
    """What :func:`train_teacher` produces.

    Attributes:
        model: The trained model (NumPy inference).
        keys: ``(n_records, key_dim)`` retrieval keys of every record of the base (the new
            keys: ``kb.set_keys(result.keys, result.model.key_model)``).
        report: Metrics and sizes (JSON-serialisable).
    """

    model: TeacherModel
    keys: NDArray[np.float32]
    report: dict[str, Any]


def regression_metrics(
    pred: NDArray[np.floating], target: NDArray[np.floating]
) -> dict[str, float]:
    """MSE, R^2 and mean absolute percentage error of ``pred`` against ``target``."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if t.size == 0:
        return {"n": 0, "mse": float("nan"), "r2": float("nan"), "mape": float("nan")}
    err = p - t
    sst = float(((t - t.mean()) ** 2).sum())
    return {
        "n": int(t.size),
        "mse": float((err**2).mean()),
        "r2": 1.0 - float((err**2).sum()) / sst if sst > 0 else float("nan"),
        "mape": float(np.mean(np.abs(err) / np.abs(t))),
    }


def _group_pairs(
    episode: NDArray[np.int64], step: NDArray[np.int64], cont: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every pair of records of one decision (episode, step) with one continuation policy."""
    order = np.lexsort((cont, step, episode))
    e, s, c = episode[order], step[order], cont[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (e[1:] != e[:-1]) | (s[1:] != s[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, order.size))
    pa: list[NDArray[np.int64]] = []
    pb: list[NDArray[np.int64]] = []
    for size in np.unique(sizes[sizes >= 2]).tolist():
        first = starts[sizes == size]
        i, j = np.triu_indices(size, k=1)
        pa.append(order[(first[:, None] + i[None, :]).ravel()])
        pb.append(order[(first[:, None] + j[None, :]).ravel()])
    if not pa:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(pa).astype(np.int64), np.concatenate(pb).astype(np.int64)


class _Data:
    """The base's arrays as training tensors, with per-episode lookups."""

    def __init__(self, kb: KnowledgeBase) -> None:
        task_ptr, edge_ptr = kb.episode_slices()
        self.task_ptr = task_ptr
        self.edge_ptr = edge_ptr
        self.n_tasks = np.diff(task_ptr)
        self.task_x = torch.from_numpy(np.array(kb.column("task_features"), dtype=np.float32))
        self.edge_src = np.asarray(kb.column("edge_src"), dtype=np.int64)
        self.edge_dst = np.asarray(kb.column("edge_dst"), dtype=np.int64)
        rank = np.asarray(kb.column("task_rank"), dtype=np.int64)
        ep_of_task = np.repeat(np.arange(kb.n_episodes), self.n_tasks)
        local = np.arange(rank.size) - task_ptr[ep_of_task]
        # order[task_ptr[e] + r]: local index of the task placed r-th in episode e.
        self.order = np.empty(rank.size, dtype=np.int64)
        self.order[task_ptr[ep_of_task] + rank] = local
        self.graph = torch.from_numpy(np.array(kb.column("ep_graph"), dtype=np.float32))
        self.rec_episode = np.asarray(kb.column("rec_episode"), dtype=np.int64)
        self.rec_task = np.asarray(kb.column("rec_task"), dtype=np.int64)
        self.rec_step = np.asarray(kb.column("rec_step"), dtype=np.int64)
        self.rec_cont = np.asarray(kb.column("rec_cont"), dtype=np.int64)
        self.state = torch.from_numpy(np.array(kb.column("rec_state"), dtype=np.float32))
        self.action_np = np.array(kb.column("rec_action_features"), dtype=np.float32)
        self.action = torch.from_numpy(self.action_np)
        target = np.asarray(kb.column("rec_target"), dtype=np.float64)
        if target.size and not (np.isfinite(target).all() and target.min() > 0):
            raise KnowledgeBaseError("knowledge base targets must be finite and > 0")
        self.target = target
        self.target_t = torch.from_numpy(target.astype(np.float32))
        self.log_target = torch.log(self.target_t)
        by_ep = np.argsort(self.rec_episode, kind="stable")
        ptr = np.searchsorted(self.rec_episode[by_ep], np.arange(kb.n_episodes + 1))
        self.policy = torch.zeros(0, dtype=torch.int64)  # set by train_teacher
        self.pair_a, self.pair_b = _group_pairs(self.rec_episode, self.rec_step, self.rec_cont)
        self.rows_of = [by_ep[ptr[e] : ptr[e + 1]] for e in range(kb.n_episodes)]
        self.ep_family = np.zeros(kb.n_episodes, dtype=np.int64)  # set by train_teacher

    def batch(self, episodes: NDArray[np.int64]) -> dict[str, Any]:
        """Tensors for a mini-batch of whole episodes (a disjoint union of their DAGs)."""
        n_t = self.n_tasks[episodes]
        start = np.concatenate([[0], np.cumsum(n_t)[:-1]])
        tasks = np.concatenate(
            [np.arange(self.task_ptr[e], self.task_ptr[e + 1]) for e in episodes]
        )
        e_lo, e_hi = self.edge_ptr[episodes], self.edge_ptr[episodes + 1]
        edges = np.concatenate([np.arange(a, b) for a, b in zip(e_lo, e_hi, strict=True)])
        shift = np.repeat(start, e_hi - e_lo)
        order = np.concatenate(
            [self.order[self.task_ptr[e] : self.task_ptr[e + 1]] for e in episodes]
        )
        order = order + np.repeat(start, n_t)
        graph_of_task = np.repeat(np.arange(episodes.size), n_t)
        rows = np.concatenate([self.rows_of[e] for e in episodes])
        where = {int(e): i for i, e in enumerate(episodes.tolist())}
        row_graph = np.fromiter(
            (where[int(e)] for e in self.rec_episode[rows]), dtype=np.int64, count=rows.size
        )
        row_start = start[row_graph]
        sel = np.isin(self.rec_episode[self.pair_a], episodes)
        sorter = np.argsort(rows)
        srt = rows[sorter]
        pair_a = sorter[np.searchsorted(srt, self.pair_a[sel])]
        pair_b = sorter[np.searchsorted(srt, self.pair_b[sel])]
        return {
            "pair_a": torch.from_numpy(pair_a),
            "pair_b": torch.from_numpy(pair_b),
            "x": self.task_x[torch.from_numpy(tasks)],
            "src": torch.from_numpy(self.edge_src[edges] + shift),
            "dst": torch.from_numpy(self.edge_dst[edges] + shift),
            "order": torch.from_numpy(order),
            "graph_of_task": torch.from_numpy(graph_of_task),
            "n_graphs": int(episodes.size),
            "graph": self.graph[torch.from_numpy(episodes)],
            "episodes": episodes,
            "rows": rows,
            "row_graph": torch.from_numpy(row_graph),
            "row_task": torch.from_numpy(row_start + self.rec_task[rows]),
            "row_lo": torch.from_numpy(row_start + self.rec_step[rows]),
            "row_hi": torch.from_numpy(row_start + n_t[row_graph]),
            "row_left": torch.from_numpy((n_t[row_graph] - self.rec_step[rows]).astype(np.float32)),
        }


def _embed_batch(enc: GraphEncoder, data: _Data, b: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """State embeddings of every record of a batch of episodes, and the family embedding of
    each episode (``(n_graphs, 0)`` without a family head)."""
    h = enc.task_embeddings(b["x"], b["src"], b["dst"])
    hid = h.shape[1]
    g = b["n_graphs"]
    gi = b["graph_of_task"]
    cnt = torch.zeros(g).index_add_(0, gi, torch.ones(gi.shape[0]))
    mean = torch.zeros(g, hid).index_add_(0, gi, h) / cnt[:, None]
    mx = torch.full((g, hid), -torch.inf).scatter_reduce(
        0, gi[:, None].expand(-1, hid), h, reduce="amax", include_self=True
    )
    readout = torch.cat([mean, mx], dim=1)
    prefix = torch.cat([torch.zeros(1, hid), torch.cumsum(h[b["order"]], dim=0)])
    unplaced = (prefix[b["row_hi"]] - prefix[b["row_lo"]]) / b["row_left"][:, None]
    rows = torch.from_numpy(b["rows"])
    rg = b["row_graph"]
    e = enc.state_embedding(
        b["graph"][rg], readout[rg], h[b["row_task"]], unplaced, data.state[rows]
    )
    if enc.config.family_dim > 0:
        z = enc.family_embedding(b["graph"], readout)
    else:
        z = torch.zeros(g, 0)
    return e, z


def _embed_all(
    enc: GraphEncoder, data: _Data, n_records: int, n_episodes: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(state embeddings per record, family embeddings per episode)``."""
    enc.eval()
    emb = np.zeros((n_records, enc.config.embed_dim), dtype=np.float32)
    fam = np.zeros((n_episodes, max(enc.config.family_dim, 0)), dtype=np.float32)
    with torch.no_grad():
        all_eps = np.arange(n_episodes)
        for i in range(0, all_eps.size, 64):
            b = data.batch(all_eps[i : i + 64])
            e, z = _embed_batch(enc, data, b)
            emb[b["rows"]] = e.numpy()
            fam[b["episodes"]] = z.numpy()
    return emb, fam


def _keys(
    config: EncoderConfig,
    emb: NDArray[np.float32],
    fam: NDArray[np.float32],
    rec_episode: NDArray[np.int64],
    center: NDArray[np.floating],
) -> NDArray[np.float32]:
    """Retrieval keys of records (what :meth:`TeacherModel.key` computes, in bulk)."""
    x = emb - center
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if config.family_dim <= 0:
        return x.astype(np.float32)
    z = fam[rec_episode]
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    a, b = np.sqrt(config.family_share), np.sqrt(1.0 - config.family_share)
    return np.concatenate([a * z, b * x], axis=1).astype(np.float32)


def _load_encoder(model: TeacherModel) -> GraphEncoder:
    enc = GraphEncoder(model.encoder_config)
    prefix = "encoder."
    enc.load_state_dict(
        {
            k[len(prefix) :]: torch.from_numpy(v.copy())
            for k, v in model.weights.items()
            if k.startswith(prefix)
        }
    )
    return enc


def embed_records(
    kb: KnowledgeBase, model: TeacherModel, *, threads: int = 1
) -> NDArray[np.float32]:
    """Retrieval keys of every record of ``kb`` by ``model`` (its state and family embeddings,
    as :meth:`TeacherModel.key` makes them: ``kb.set_keys(embed_records(kb, model),
    model.key_model)``)."""
    if kb.n_records == 0:
        return np.zeros((0, model.key_dim), dtype=np.float32)
    enc = _load_encoder(model)
    with _torch_threads(threads):
        data = _Data(kb)
        emb, fam = _embed_all(enc, data, kb.n_records, kb.n_episodes)
    return _keys(model.encoder_config, emb, fam, data.rec_episode, model.weights["key.center"])


def _split(
    kb: KnowledgeBase, config: PredictorTrainConfig, rng: np.random.Generator
) -> dict[str, NDArray[np.int64]]:
    """Episode ids of the train, validation (held-out instances) and held-out family sets."""
    inst = kb.episode_strings("instance")
    fam = kb.episode_strings("family")
    n = kb.n_episodes
    held = set(config.holdout_families)
    missing = sorted(held - set(fam))
    if missing:
        raise KnowledgeBaseError(
            f"holdout family {missing[0]!r} is not in the base; families: {sorted(set(fam))}"
        )
    held_fam = np.array([f in held for f in fam], dtype=bool)
    names = sorted({inst[i] for i in range(n) if not held_fam[i]})
    perm = rng.permutation(len(names))
    n_val = round(config.val_fraction * len(names))
    val_names = {names[i] for i in perm[:n_val]}
    is_val = np.array([inst[i] in val_names for i in range(n)], dtype=bool) & ~held_fam
    train = np.flatnonzero(~is_val & ~held_fam)
    if config.max_episodes is not None and train.size > config.max_episodes:
        train = np.sort(rng.choice(train, config.max_episodes, replace=False))
    return {"train": train, "val": np.flatnonzero(is_val), "family": np.flatnonzero(held_fam)}


def _loss(out: Tensor, data: _Data, rows: Tensor, kind: str) -> Tensor:
    """Mean squared error on the ratio (``"ratio"``) or on its logarithm (``"log"``)."""
    if kind == "log":
        return torch.mean((torch.log(out) - data.log_target[rows]) ** 2)
    return torch.mean((out - data.target_t[rows]) ** 2)


def _pair_terms(
    out_a: Tensor, out_b: Tensor, data: _Data, ra: Tensor, rb: Tensor, config: PredictorTrainConfig
) -> Tensor:
    """Pair-difference and ranking terms of the pairs ``(ra, rb)`` (see the module docstring)."""
    if ra.shape[0] == 0:
        return out_a.sum() * 0.0
    loss = out_a.sum() * 0.0
    if config.pair_weight > 0:
        if config.loss == "log":
            d_pred = torch.log(out_a) - torch.log(out_b)
            d_true = data.log_target[ra] - data.log_target[rb]
        else:
            d_pred = out_a - out_b
            d_true = data.target_t[ra] - data.target_t[rb]
        loss = loss + config.pair_weight * torch.mean((d_pred - d_true) ** 2)
    if config.rank_weight > 0:
        d_true = data.log_target[ra] - data.log_target[rb]
        keep = torch.abs(d_true) > np.log1p(PAIR_TOLERANCE)
        if bool(keep.any()):
            sign = torch.sign(d_true[keep])  # +1: a is worse
            margin = (torch.log(out_a[keep]) - torch.log(out_b[keep])) * sign
            rank = torch.nn.functional.softplus(-config.rank_scale * margin)
            loss = loss + config.rank_weight * rank.mean()
    return loss


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch CPU threads, then restore the previous count. One thread is
    faster for these small networks on 2 cores (measured: 22 s vs 24 s for the default
    profile)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _lr_at(config: PredictorTrainConfig, frac: float) -> float:
    return config.lr * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * min(frac, 1.0))))


def _pair_accuracy(
    pred: NDArray[np.float64],
    data: _Data,
    rows: NDArray[np.int64],
    reference: NDArray[np.floating] | None = None,
) -> dict[str, float]:
    """How often the predictor orders the two actions of a same-state pair (one decision, one
    continuation policy) like their observed makespans, over the pairs within ``rows`` whose
    makespans differ by more than :data:`PAIR_TOLERANCE`.

    With ``reference`` (a score per row of ``rows``, lower is better: the earliest finish)
    also over the *hard* pairs, those the reference orders wrongly: what the predictor knows
    beyond that rule."""
    pos = np.full(data.target.size, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    pa, pb = pos[data.pair_a], pos[data.pair_b]
    ok = (pa >= 0) & (pb >= 0)
    ta, tb = data.target[data.pair_a[ok]], data.target[data.pair_b[ok]]
    dt = ta - tb
    big = np.abs(dt) > PAIR_TOLERANCE * np.minimum(ta, tb)
    dp = pred[pa[ok]] - pred[pb[ok]]
    right = np.sign(dp[big]) == np.sign(dt[big])
    hits = int(right.sum())
    total = int(big.sum())
    out = {"pairs": total, "pair_accuracy": hits / total if total else float("nan")}
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float64)
        wrong = np.sign(ref[pa[ok]] - ref[pb[ok]])[big] != np.sign(dt[big])
        out["hard_pairs"] = int(wrong.sum())
        out["hard_pair_accuracy"] = float(right[wrong].mean()) if wrong.any() else float("nan")
    return out


def _retrieval_report(
    sims: NDArray[np.float32],
    ids: NDArray[np.int64],
    query_family: NDArray[np.str_],
    rec_family: NDArray[np.str_],
    keys_q: NDArray[np.float32],
    keys_db: NDArray[np.float32],
    rng: np.random.Generator,
) -> dict[str, float]:
    """Share of retrieved cases from the query's family, and the spread of similarities:
    top-1 and K-th similarity against the similarity to random records of the base."""
    if ids.size == 0 or ids.shape[1] == 0:
        return {"family_hit_rate": float("nan"), "queries": 0}
    valid = ids >= 0
    same = rec_family[np.maximum(ids, 0)] == query_family[:, None]
    n = min(2000, keys_q.shape[0])
    qi = rng.choice(keys_q.shape[0], n, replace=False)
    di = rng.choice(keys_db.shape[0], n)
    random_sim = np.einsum("ij,ij->i", keys_q[qi], keys_db[di])
    s = np.where(valid, sims, np.nan)
    return {
        "queries": int(ids.shape[0]),
        "family_hit_rate": float(same[valid].mean()) if valid.any() else float("nan"),
        "top1_family_hit_rate": float(same[:, 0][valid[:, 0]].mean()),
        "sim_top1_mean": float(np.nanmean(s[:, 0])),
        "sim_topk_mean": float(np.nanmean(s[:, -1])),
        "sim_topk_p10": float(np.nanpercentile(s[:, -1], 10)),
        "sim_random_mean": float(random_sim.mean()),
        "sim_random_p90": float(np.percentile(random_sim, 90)),
    }


def train_teacher(
    kb: KnowledgeBase,
    config: PredictorTrainConfig = PredictorTrainConfig(),
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train encoder and predictor on ``kb`` (see the module docstring).

    Args:
        kb: The knowledge base (any key model: the keys are recomputed).
        config: Training settings.
        progress: Called with a status line after each epoch.

    Raises:
        KnowledgeBaseError: if the base is empty or a split would be empty.
    """
    if kb.n_records == 0:
        raise KnowledgeBaseError("the knowledge base is empty: build it first (stage 1)")
    with _torch_threads(config.threads):
        return _train(kb, config, progress)


class _Contexts:
    """The retrieved context of every record (phase 2): neighbour ids and similarities, and
    the tensors the predictor takes for a batch of rows."""

    def __init__(
        self, n_records: int, k: int, mode: str, keys: NDArray[np.float32], data: _Data
    ) -> None:
        self.ids = np.full((n_records, k), -1, dtype=np.int64)
        self.sims = np.full((n_records, k), -np.inf, dtype=np.float32)
        self.mode = mode
        self.keys = keys
        self.log_t = np.log(data.target).astype(np.float32)
        self.act = data.action_np
        self.k = k

    def fill(self, rows: NDArray[np.int64], db_rows: NDArray[np.int64], index: str) -> None:
        """Retrieve the top-k of ``rows`` among ``db_rows``."""
        if rows.size == 0 or db_rows.size == 0:
            return
        r = make_retriever(self.keys.shape[1], index)
        r.add(self.keys[db_rows])
        sims, ids = r.search(self.keys[rows], self.k)
        self.ids[rows, : ids.shape[1]] = np.where(ids >= 0, db_rows[np.maximum(ids, 0)], -1)
        self.sims[rows, : sims.shape[1]] = sims

    def tensors(self, rows: NDArray[np.int64]) -> tuple[Tensor, Tensor | None]:
        """``(ctx, weights)`` of ``rows``."""
        ids, sims = self.ids[rows], self.sims[rows]
        if self.mode == "mean":
            return torch.from_numpy(context_vectors(sims, ids, self.keys, self.log_t)), None
        ctx = case_contexts(sims, ids, self.keys, self.log_t, self.act)
        return torch.from_numpy(ctx), torch.from_numpy(similarity_weights(sims, ids))


def _train(
    kb: KnowledgeBase, config: PredictorTrainConfig, progress: Callable[[str], None] | None
) -> TrainResult:
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    data = _Data(kb)
    split = _split(kb, config, rng)
    if split["train"].size == 0:
        raise KnowledgeBaseError("no training episodes left after the held-out splits")
    vocab = kb.continuations
    n_pol = len(vocab)
    data.policy = torch.from_numpy(data.rec_cont.copy())
    ep_fam = kb.episode_strings("family")
    families = sorted({ep_fam[e] for e in split["train"].tolist()})
    fam_id = {f: i for i, f in enumerate(families)}
    data.ep_family = np.array([fam_id.get(f, -1) for f in ep_fam], dtype=np.int64)
    enc = GraphEncoder(config.encoder)
    key_dim = config.encoder.key_dim
    pconf = replace(config.predictor, policies=vocab)
    pred = Predictor(config.encoder.embed_dim, pconf, key_dim=key_dim)
    per_case = pconf.context == "expectation"
    say = progress or (lambda s: None)
    use_family = config.encoder.family_dim > 0 and config.family_weight > 0 and len(families) > 1
    prototypes = torch.nn.Parameter(torch.randn(len(families), max(config.encoder.family_dim, 1)))

    def zero_ctx(n: int) -> tuple[Tensor, Tensor | None]:
        if per_case:
            return torch.zeros(n, 1, pred.ctx_dim), torch.ones(n, 1)
        return torch.zeros(n, pred.ctx_dim), None

    # Phase 1: encoder + predictor, no context.
    params = [*enc.parameters(), *pred.parameters(), *([prototypes] if use_family else [])]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    train_eps = split["train"]
    n_batches = max(1, -(-train_eps.size // config.batch_episodes))
    total = config.epochs * n_batches
    it = 0
    for epoch in range(config.epochs):
        perm = rng.permutation(train_eps)
        losses = []
        for i in range(n_batches):
            eps = np.sort(perm[i * config.batch_episodes : (i + 1) * config.batch_episodes])
            b = data.batch(eps)
            for gr in opt.param_groups:
                gr["lr"] = _lr_at(config, it / total)
            it += 1
            e, z = _embed_batch(enc, data, b)
            rows = torch.from_numpy(b["rows"])
            pol = data.policy[rows].clone()
            if config.policy_dropout > 0:  # per episode, so both rows of a pair agree
                drop = rng.random(eps.size) < config.policy_dropout
                pol[torch.from_numpy(drop[b["row_graph"].numpy()])] = n_pol
            ctx, w = zero_ctx(rows.shape[0])
            out = pred(e, data.action[rows], ctx, pol, w)
            loss = _loss(out, data, rows, config.loss)
            pa, pb = b["pair_a"], b["pair_b"]
            loss = loss + _pair_terms(out[pa], out[pb], data, rows[pa], rows[pb], config)
            if use_family:
                labels = torch.from_numpy(data.ep_family[eps])
                logits = (
                    torch.nn.functional.normalize(z, dim=1)
                    @ torch.nn.functional.normalize(prototypes, dim=1).T
                ) / _FAMILY_TEMPERATURE
                loss = loss + config.family_weight * torch.nn.functional.cross_entropy(
                    logits, labels
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        say(f"phase 1 epoch {epoch + 1}/{config.epochs}: train loss {np.mean(losses):.5f}")

    # Embed every record with the frozen encoder.
    emb, fam_z = _embed_all(enc, data, kb.n_records, kb.n_episodes)
    emb_t = torch.from_numpy(emb)

    def rows_of(eps: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.concatenate([data.rows_of[e] for e in eps]) if eps.size else np.zeros(0, np.int64)

    sets = {name: rows_of(split[name]) for name in ("train", "val", "family")}
    # Keys are centred on the training embeddings' mean before normalising: raw embeddings share
    # a large common component, which would make every cosine similarity close to 1.
    center = emb[sets["train"]].mean(axis=0)
    keys = _keys(config.encoder, emb, fam_z, data.rec_episode, center)
    k = config.predictor.k
    contexts = _Contexts(kb.n_records, k, pconf.context, keys, data)

    def predict(rows: NDArray[np.int64], with_ctx: bool, known: bool = True) -> NDArray[np.float64]:
        out = np.zeros(rows.size)
        with torch.no_grad():
            for lo in range(0, rows.size, 4096):
                rr = rows[lo : lo + 4096]
                r = torch.from_numpy(rr)
                c, w = contexts.tensors(rr) if with_ctx else zero_ctx(rr.size)
                pol = data.policy[r] if known else torch.full((rr.size,), n_pol)
                out[lo : lo + rr.size] = pred(emb_t[r], data.action[r], c, pol, w).numpy()
        return out

    report: dict[str, Any] = {"no_context": {}, "context": {}, "unknown_policy": {}}
    for name in ("val", "family"):
        sel = sets[name]
        p = predict(sel, False)
        report["no_context"][name] = regression_metrics(p, data.target[sel]) | _pair_accuracy(
            p, data, sel
        )

    # Phase 2: context from retrieval, predictor only.
    inst = kb.episode_strings("instance")
    train_rows = sets["train"]
    if k > 0:
        names = sorted({inst[e] for e in split["train"].tolist()})
        fold_of = dict(zip(names, rng.permutation(len(names)) % 2, strict=True))
        row_fold = np.array([fold_of[inst[e]] for e in data.rec_episode[train_rows].tolist()])
        for f in (0, 1):
            contexts.fill(train_rows[row_fold == f], train_rows[row_fold != f], config.index)
        contexts.fill(np.concatenate([sets["val"], sets["family"]]), train_rows, config.index)
        opt2 = torch.optim.Adam(pred.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        in_train = np.zeros(kb.n_records, dtype=bool)
        in_train[train_rows] = True
        train_pairs = np.flatnonzero(in_train[data.pair_a] & in_train[data.pair_b])
        n_b = max(1, -(-train_rows.size // config.batch_rows))
        total2 = config.context_epochs * n_b
        it = 0
        for epoch in range(config.context_epochs):
            perm = rng.permutation(train_rows)
            losses = []
            for i in range(n_b):
                rr = perm[i * config.batch_rows : (i + 1) * config.batch_rows]
                r_idx = torch.from_numpy(rr)
                for gr in opt2.param_groups:
                    gr["lr"] = _lr_at(config, it / total2)
                it += 1
                pol = _policy_slots(data, r_idx, rng, config.policy_dropout, n_pol)
                c, w = contexts.tensors(rr)
                out = pred(emb_t[r_idx], data.action[r_idx], c, pol, w)
                loss = _loss(out, data, r_idx, config.loss)
                if train_pairs.size and (config.pair_weight > 0 or config.rank_weight > 0):
                    sel = train_pairs[rng.integers(train_pairs.size, size=config.batch_rows // 2)]
                    ra, rb = data.pair_a[sel], data.pair_b[sel]
                    ta, tb = torch.from_numpy(ra), torch.from_numpy(rb)
                    pp = _policy_slots(data, ta, rng, config.policy_dropout, n_pol)
                    ca, wa = contexts.tensors(ra)
                    cb, wb = contexts.tensors(rb)
                    oa = pred(emb_t[ta], data.action[ta], ca, pp, wa)
                    ob = pred(emb_t[tb], data.action[tb], cb, pp, wb)
                    loss = loss + _pair_terms(oa, ob, data, ta, tb, config)
                opt2.zero_grad()
                loss.backward()
                opt2.step()
                losses.append(float(loss.detach()))
            say(
                f"phase 2 epoch {epoch + 1}/{config.context_epochs}: "
                f"train loss {np.mean(losses):.5f}"
            )
    rec_family = kb.record_families()
    for name in ("train", "val", "family"):
        sel = sets[name]
        for key, known in (("context", True), ("unknown_policy", False)):
            p = predict(sel, k > 0, known=known)
            eft = data.action_np[sel, ACTION_FEATURES.index("finish")]
            report[key][name] = regression_metrics(p, data.target[sel]) | _pair_accuracy(
                p, data, sel, eft
            )
    # Trivial rankers on the same pairs: the earliest finish wins (HEFT's criterion), the
    # latest child's best finish wins (HEFT with lookahead's).
    report["pair_baselines"] = {
        rule: {
            name: _pair_accuracy(
                data.action_np[sets[name], ACTION_FEATURES.index(col)], data, sets[name]
            )["pair_accuracy"]
            for name in ("val", "family")
        }
        for rule, col in (("earliest_finish", "finish"), ("lookahead", "lookahead_child_eft"))
    }
    report["retrieval"] = {}
    if k > 0:
        for name in ("val", "family"):
            sel = sets[name]
            report["retrieval"][name] = _retrieval_report(
                contexts.sims[sel],
                contexts.ids[sel],
                rec_family[sel],
                rec_family,
                keys[sel],
                keys[train_rows],
                rng,
            )
    report.update(
        config=asdict(config),
        records=kb.n_records,
        pairs={
            name: _pair_accuracy(np.zeros(sets[name].size), data, sets[name])["pairs"]
            for name in sets
        },
        episodes={name: int(split[name].size) for name in split},
        instances={name: len({inst[e] for e in split[name].tolist()}) for name in split},
        families=sorted(set(ep_fam)),
        train_families=families,
        seconds=time.perf_counter() - t0,
    )
    model = TeacherModel.from_torch(enc, pred, center=center, info={"report": report})
    return TrainResult(model=model, keys=keys, report=report)


def _policy_slots(
    data: _Data, rows: Tensor | NDArray[np.int64], rng: np.random.Generator, drop: float, n_pol: int
) -> Tensor:
    """Continuation-policy slots of ``rows``, each replaced by "unknown" with probability
    ``drop``."""
    r = torch.as_tensor(rows)
    pol = data.policy[r].clone()
    if drop > 0:
        mask = torch.from_numpy(rng.random(r.shape[0]) < drop)
        pol[mask] = n_pol
    return pol


def compare_policies(
    problems: Sequence[Problem], schedulers: Mapping[str, Scheduler], *, insertion: bool = True
) -> dict[str, dict[str, float]]:
    """Mean and worst makespan / lower bound of each scheduler over ``problems``, and the mean
    ratio to the first scheduler's makespan (the reference, e.g. HEFT).

    Used to check what the teacher's own choices are worth: a
    :class:`~teacher.teacher.TeacherScheduler` places every task on ``a*_t``.
    """
    ratios: dict[str, list[float]] = {name: [] for name in schedulers}
    spans: dict[str, list[float]] = {name: [] for name in schedulers}
    for p in problems:
        lb = p.lower_bound()
        for name, s in schedulers.items():
            mk = s.plan(p, insertion=insertion).makespan
            spans[name].append(mk)
            ratios[name].append(mk / lb)
    ref = next(iter(schedulers))
    out = {}
    for name in schedulers:
        r = np.asarray(ratios[name])
        rel = np.asarray(spans[name]) / np.asarray(spans[ref])
        out[name] = {
            "mean_ratio_to_lb": float(r.mean()) if r.size else float("nan"),
            "max_ratio_to_lb": float(r.max()) if r.size else float("nan"),
            f"mean_ratio_to_{ref}": float(rel.mean()) if rel.size else float("nan"),
        }
    return out
