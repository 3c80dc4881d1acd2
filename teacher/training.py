"""Stage 2 of the pipeline: train the encoder and the predictor on the knowledge base.

Training runs in two phases, because the retrieval keys are the encoder's own embeddings:

1. **Encoder + predictor, no context.** Mini-batches of whole episodes: the GNN runs over the
   batch's DAGs (a disjoint union), every decision record of those episodes is embedded and the
   predictor regresses ``log(final makespan / lower bound)`` from ``[e_t, action, 0]``.
2. **Predictor with context, encoder frozen.** Every record is embedded once; these embeddings
   become the base's keys. Each training record retrieves its top-K neighbours from the *other
   half* of the training instances (two folds split by instance, so that no record retrieves
   itself or its own run's twins, which a held-out workflow could not do either); held-out
   records retrieve from all training records. The predictor then trains on
   ``[e_t, action, C_t]``.

Splits are by workflow *instance* (all runs of one workflow, whatever the policy or branch, fall
on one side), so the held-out figures are for workflows never seen in training; optionally a
whole family is held out as well. :func:`train_teacher` returns the model, the re-keyed
embeddings for every record, and a report with MSE and R^2 (on the ratio makespan / lower bound)
for the held-out instances, the held-out family, and the same without context (ablation), plus
the pairwise ranking accuracy on counterfactual pairs (same state, two actions).
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
from teacher.kb import KnowledgeBase, KnowledgeBaseError
from teacher.predictor import Predictor, PredictorConfig, TeacherModel, context_vectors
from teacher.retrieval import make_retriever, normalize
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


@dataclass(frozen=True)
class PredictorTrainConfig:
    """How stage 2 trains.

    Attributes:
        encoder: Encoder sizes.
        predictor: Predictor sizes (and K, the retrieved cases per decision).
        epochs: Phase-1 epochs (encoder + predictor, no context).
        context_epochs: Phase-2 epochs (predictor with context, encoder frozen).
        batch_episodes: Episodes per phase-1 mini-batch.
        batch_rows: Records per phase-2 mini-batch.
        lr: Adam learning rate (cosine-decayed to 5% over each phase).
        weight_decay: Adam weight decay.
        val_fraction: Fraction of the (non held-out-family) instances held out.
        holdout_family: A workflow family held out entirely (``None``: none).
        max_episodes: Train on at most this many episodes (sampled), for very large bases.
        index: Index kind used to retrieve training context (``"flat"``: exact).
        policy_dropout: Fraction of records trained with the continuation policy "unknown"
            (see :mod:`teacher.predictor`).
        pair_weight: Weight of the counterfactual-pair term (see ``_pair_loss``).
        loss: ``"ratio"``: squared error on makespan / lower bound (what R^2 measures);
            ``"log"``: on its logarithm (relative errors).
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
    holdout_family: str | None = None
    max_episodes: int | None = None
    index: str = "flat"
    loss: str = "ratio"
    policy_dropout: float = 0.2
    pair_weight: float = 1.0
    seed: int = 0
    threads: int = 1


@dataclass
class TrainResult:
    """What :func:`train_teacher` produces.

    Attributes:
        model: The trained model (NumPy inference).
        keys: ``(n_records, embed_dim)`` state embeddings of every record of the base (the
            new keys: ``kb.set_keys(result.keys, result.model.key_model)``).
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
        self.rec_branch = np.asarray(kb.column("rec_branch"), dtype=bool)
        self.state = torch.from_numpy(np.array(kb.column("rec_state"), dtype=np.float32))
        self.action = torch.from_numpy(np.array(kb.column("rec_action_features"), dtype=np.float32))
        target = np.asarray(kb.column("rec_target"), dtype=np.float64)
        if target.size and not (np.isfinite(target).all() and target.min() > 0):
            raise KnowledgeBaseError("knowledge base targets must be finite and > 0")
        self.target = target
        self.target_t = torch.from_numpy(target.astype(np.float32))
        self.log_target = torch.log(self.target_t)
        by_ep = np.argsort(self.rec_episode, kind="stable")
        ptr = np.searchsorted(self.rec_episode[by_ep], np.arange(kb.n_episodes + 1))
        self.policy = torch.zeros(0, dtype=torch.int64)  # set by train_teacher
        # Counterfactual pairs: (branch row, main row of the same decision).
        main_of = {
            (int(e), int(s)): r
            for r, (e, s, br) in enumerate(
                zip(self.rec_episode, self.rec_step, self.rec_branch, strict=True)
            )
            if not br
        }
        pb, pm = [], []
        for r in np.flatnonzero(self.rec_branch).tolist():
            m = main_of.get((int(self.rec_episode[r]), int(self.rec_step[r])))
            if m is not None:
                pb.append(r)
                pm.append(m)
        self.pair_branch = np.asarray(pb, dtype=np.int64)
        self.pair_main = np.asarray(pm, dtype=np.int64)
        self.rows_of = [by_ep[ptr[e] : ptr[e + 1]] for e in range(kb.n_episodes)]

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
        sel = np.isin(self.rec_episode[self.pair_branch], episodes)
        sorter = np.argsort(rows)
        srt = rows[sorter]
        pair_b = sorter[np.searchsorted(srt, self.pair_branch[sel])]
        pair_m = sorter[np.searchsorted(srt, self.pair_main[sel])]
        return {
            "pair_b": torch.from_numpy(pair_b),
            "pair_m": torch.from_numpy(pair_m),
            "x": self.task_x[torch.from_numpy(tasks)],
            "src": torch.from_numpy(self.edge_src[edges] + shift),
            "dst": torch.from_numpy(self.edge_dst[edges] + shift),
            "order": torch.from_numpy(order),
            "graph_of_task": torch.from_numpy(graph_of_task),
            "n_graphs": int(episodes.size),
            "graph": self.graph[torch.from_numpy(episodes)],
            "rows": rows,
            "row_graph": torch.from_numpy(row_graph),
            "row_task": torch.from_numpy(row_start + self.rec_task[rows]),
            "row_lo": torch.from_numpy(row_start + self.rec_step[rows]),
            "row_hi": torch.from_numpy(row_start + n_t[row_graph]),
            "row_left": torch.from_numpy((n_t[row_graph] - self.rec_step[rows]).astype(np.float32)),
        }


def _embed_batch(enc: GraphEncoder, data: _Data, b: dict[str, Any]) -> Tensor:
    """State embeddings of every record of a batch of episodes."""
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
    return enc.state_embedding(
        b["graph"][rg], readout[rg], h[b["row_task"]], unplaced, data.state[rows]
    )


def _embed_all(
    enc: GraphEncoder, data: _Data, n_records: int, n_episodes: int
) -> NDArray[np.float32]:
    enc.eval()
    emb = np.zeros((n_records, enc.config.embed_dim), dtype=np.float32)
    with torch.no_grad():
        all_eps = np.arange(n_episodes)
        for i in range(0, all_eps.size, 64):
            b = data.batch(all_eps[i : i + 64])
            emb[b["rows"]] = _embed_batch(enc, data, b).numpy()
    return emb


def embed_records(
    kb: KnowledgeBase, model: TeacherModel, *, threads: int = 1
) -> NDArray[np.float32]:
    """Retrieval keys of every record of ``kb`` by ``model`` (its encoder's state embeddings,
    centred and normalised: ``kb.set_keys(embed_records(kb, model), model.key_model)``)."""
    enc = GraphEncoder(model.encoder_config)
    prefix = "encoder."
    enc.load_state_dict(
        {
            k[len(prefix) :]: torch.from_numpy(v.copy())
            for k, v in model.weights.items()
            if k.startswith(prefix)
        }
    )
    if kb.n_records == 0:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    with _torch_threads(threads):
        return model.key(_embed_all(enc, _Data(kb), kb.n_records, kb.n_episodes))


def _split(
    kb: KnowledgeBase, config: PredictorTrainConfig, rng: np.random.Generator
) -> dict[str, NDArray[np.int64]]:
    """Episode ids of the train, validation (held-out instances) and held-out family sets."""
    inst = kb.episode_strings("instance")
    fam = kb.episode_strings("family")
    n = kb.n_episodes
    held_fam = np.array(
        [config.holdout_family is not None and f == config.holdout_family for f in fam], dtype=bool
    )
    if config.holdout_family is not None and not held_fam.any():
        raise KnowledgeBaseError(
            f"holdout_family {config.holdout_family!r} is not in the base; "
            f"families: {sorted(set(fam))}"
        )
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


def _pair_loss(
    out_b: Tensor, out_m: Tensor, data: _Data, rb: Tensor, rm: Tensor, kind: str
) -> Tensor:
    """Squared error of the predicted difference between the two actions of counterfactual
    pairs (branch minus main) against the observed one: the state's share of the error cancels,
    so this term trains the effect of the action itself."""
    if rb.shape[0] == 0:
        return out_b.sum() * 0.0
    if kind == "log":
        d_pred = torch.log(out_b) - torch.log(out_m)
        d_true = data.log_target[rb] - data.log_target[rm]
    else:
        d_pred = out_b - out_m
        d_true = data.target_t[rb] - data.target_t[rm]
    return torch.mean((d_pred - d_true) ** 2)


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
    pred: NDArray[np.float64], data: _Data, rows: NDArray[np.int64]
) -> dict[str, float]:
    """How often the predictor orders the two actions of a counterfactual pair (same state)
    like their observed makespans, over the pairs within ``rows`` whose makespans differ by
    more than 1%."""
    pos = np.full(data.target.size, -1, dtype=np.int64)
    pos[rows] = np.arange(rows.size)
    pb, pm = pos[data.pair_branch], pos[data.pair_main]
    ok = (pb >= 0) & (pm >= 0)
    tb, tm = data.target[data.pair_branch[ok]], data.target[data.pair_main[ok]]
    dt = tb - tm
    big = np.abs(dt) > 0.01 * tm
    dp = pred[pb[ok]] - pred[pm[ok]]
    hits = int((np.sign(dp[big]) == np.sign(dt[big])).sum())
    total = int(big.sum())
    return {"pairs": total, "pair_accuracy": hits / total if total else float("nan")}


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
    vocab = tuple(sorted(set(kb.episode_strings("policy"))))
    n_pol = len(vocab)
    slot = {p: i for i, p in enumerate(vocab)}
    data.policy = torch.from_numpy(
        np.array([slot[p] for p in kb.episode_strings("policy")], dtype=np.int64)[data.rec_episode]
    )
    enc = GraphEncoder(config.encoder)
    pred = Predictor(config.encoder.embed_dim, replace(config.predictor, policies=vocab))
    ctx_dim = config.encoder.embed_dim + 4
    say = progress or (lambda s: None)

    # Phase 1: encoder + predictor, no context.
    opt = torch.optim.Adam(
        [*enc.parameters(), *pred.parameters()], lr=config.lr, weight_decay=config.weight_decay
    )
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
            e = _embed_batch(enc, data, b)
            rows = torch.from_numpy(b["rows"])
            pol = data.policy[rows].clone()
            if config.policy_dropout > 0:  # per episode, so both rows of a pair agree
                drop = rng.random(eps.size) < config.policy_dropout
                pol[torch.from_numpy(drop[b["row_graph"].numpy()])] = n_pol
            out = pred(e, data.action[rows], torch.zeros(rows.shape[0], ctx_dim), pol)
            loss = _loss(out, data, rows, config.loss)
            if config.pair_weight > 0:
                pb, pm = b["pair_b"], b["pair_m"]
                loss = loss + config.pair_weight * _pair_loss(
                    out[pb], out[pm], data, rows[pb], rows[pm], config.loss
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        say(f"phase 1 epoch {epoch + 1}/{config.epochs}: train loss {np.mean(losses):.5f}")

    # Embed every record with the frozen encoder.
    emb = _embed_all(enc, data, kb.n_records, kb.n_episodes)
    emb_t = torch.from_numpy(emb)

    def rows_of(eps: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.concatenate([data.rows_of[e] for e in eps]) if eps.size else np.zeros(0, np.int64)

    def predict(
        rows: NDArray[np.int64], ctx: NDArray[np.float32] | None, known: bool = True
    ) -> NDArray[np.float64]:
        with torch.no_grad():
            r = torch.from_numpy(rows)
            c = torch.zeros(rows.size, ctx_dim) if ctx is None else torch.from_numpy(ctx)
            pol = data.policy[r] if known else torch.full((rows.size,), n_pol, dtype=torch.int64)
            return pred(emb_t[r], data.action[r], c, pol).numpy().astype(np.float64)

    sets = {name: rows_of(split[name]) for name in ("train", "val", "family")}
    report: dict[str, Any] = {"no_context": {}, "context": {}}
    for name in ("val", "family"):
        sel = sets[name]
        report["no_context"][name] = regression_metrics(predict(sel, None), data.target[sel])

    # Phase 2: context from retrieval, predictor only.
    k = config.predictor.k
    # Keys are centred on the training embeddings' mean before normalising: raw embeddings share
    # a large common component, which would make every cosine similarity close to 1.
    center = emb[sets["train"]].mean(axis=0)
    keys = normalize(emb - center)
    log_t = np.log(data.target).astype(np.float32)
    ctx = np.zeros((kb.n_records, ctx_dim), dtype=np.float32)
    inst = kb.episode_strings("instance")
    train_rows = sets["train"]
    if k > 0:
        names = sorted({inst[e] for e in split["train"].tolist()})
        fold_of = dict(zip(names, rng.permutation(len(names)) % 2, strict=True))
        row_fold = np.array([fold_of[inst[e]] for e in data.rec_episode[train_rows].tolist()])
        for f in (0, 1):
            q_rows, db_rows = train_rows[row_fold == f], train_rows[row_fold != f]
            if q_rows.size == 0:
                continue
            r = make_retriever(config.encoder.embed_dim, config.index)
            r.add(keys[db_rows])
            sims, ids = r.search(keys[q_rows], k)
            ids = np.where(ids >= 0, db_rows[np.maximum(ids, 0)], -1)
            ctx[q_rows] = context_vectors(sims, ids, keys, log_t)
        held = np.concatenate([sets["val"], sets["family"]])
        if held.size:
            r = make_retriever(config.encoder.embed_dim, config.index)
            r.add(keys[train_rows])
            sims, ids = r.search(keys[held], k)
            ids = np.where(ids >= 0, train_rows[np.maximum(ids, 0)], -1)
            ctx[held] = context_vectors(sims, ids, keys, log_t)
        opt2 = torch.optim.Adam(pred.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        in_train = np.zeros(kb.n_records, dtype=bool)
        in_train[train_rows] = True
        train_pairs = np.flatnonzero(in_train[data.pair_branch])
        ctx_t = torch.from_numpy(ctx)
        n_b = max(1, -(-train_rows.size // config.batch_rows))
        total2 = config.context_epochs * n_b
        it = 0
        for epoch in range(config.context_epochs):
            perm = rng.permutation(train_rows)
            losses = []
            for i in range(n_b):
                r_idx = torch.from_numpy(perm[i * config.batch_rows : (i + 1) * config.batch_rows])
                for gr in opt2.param_groups:
                    gr["lr"] = _lr_at(config, it / total2)
                it += 1
                pol = _policy_slots(data, r_idx, rng, config.policy_dropout, n_pol)
                out = pred(emb_t[r_idx], data.action[r_idx], ctx_t[r_idx], pol)
                loss = _loss(out, data, r_idx, config.loss)
                if config.pair_weight > 0 and train_pairs.size:
                    sel = train_pairs[rng.integers(train_pairs.size, size=config.batch_rows // 4)]
                    rb = torch.from_numpy(data.pair_branch[sel])
                    rm = torch.from_numpy(data.pair_main[sel])
                    pp = _policy_slots(data, rb, rng, config.policy_dropout, n_pol)
                    ob = pred(emb_t[rb], data.action[rb], ctx_t[rb], pp)
                    om = pred(emb_t[rm], data.action[rm], ctx_t[rm], pp)
                    loss = loss + config.pair_weight * _pair_loss(ob, om, data, rb, rm, config.loss)
                opt2.zero_grad()
                loss.backward()
                opt2.step()
                losses.append(float(loss.detach()))
            say(
                f"phase 2 epoch {epoch + 1}/{config.context_epochs}: "
                f"train loss {np.mean(losses):.5f}"
            )
    use_ctx = ctx if k > 0 else None
    report["unknown_policy"] = {}
    for name in ("train", "val", "family"):
        sel = sets[name]
        c = None if use_ctx is None else use_ctx[sel]
        for key, known in (("context", True), ("unknown_policy", False)):
            p = predict(sel, c, known=known)
            report[key][name] = regression_metrics(p, data.target[sel]) | _pair_accuracy(
                p, data, sel
            )
    report.update(
        config=asdict(config),
        records=kb.n_records,
        episodes={name: int(split[name].size) for name in split},
        instances={name: len({inst[e] for e in split[name].tolist()}) for name in split},
        families=sorted(set(kb.episode_strings("family"))),
        seconds=time.perf_counter() - t0,
    )
    model = TeacherModel.from_torch(enc, pred, center=center, info={"report": report})
    return TrainResult(model=model, keys=keys.astype(np.float32), report=report)


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
