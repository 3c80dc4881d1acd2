"""The performance predictor: an MLP from (state, action, retrieved context) to final makespan.

Inputs, for one decision and one candidate node:

* ``e_t``: the state embedding (:mod:`teacher.encoder`);
* the action embedding: the candidate node's :data:`~teacher.features.ACTION_FEATURES` (speed,
  data-ready time, earliest finish if placed there, local input bytes, lower bound after the
  placement, ...);
* the retrieved context ``C_t``, in one of two forms (``PredictorConfig.context``):

  - ``"expectation"`` (default, the paper's ``E_{k ~ C_t}[Predict(M | G_t, a)]``): one
    prediction per retrieved case ``k``, each from that case alone (:func:`case_contexts`: its
    key, its log target, its similarity and the features of the node it chose), averaged with
    the cases' similarity weights (:func:`similarity_weights`);
  - ``"mean"``: one prediction from a single averaged context (:func:`context_vector`): the mean
    of the top-K retrieved keys, the mean, minimum and similarity-weighted mean of their log
    targets, and the mean similarity;
* the *continuation policy*: a one-hot over the policies that produced the base (plus an
  "unknown" slot). A record's target is the makespan of the run that followed the decision, so
  it depends on how the remaining decisions were taken; naming that policy makes the target a
  function of the inputs (for deterministic policies) instead of a mixture. The teacher asks
  for a reference policy (by default HEFT: "the makespan if we place the task here and continue
  like HEFT") or for "unknown" (the mixture the base holds); training drops the policy to
  "unknown" for a fraction of the records so that both questions are answered.

Output: the predicted final makespan / lower bound, as ``1 + softplus(z)``: no schedule beats
the lower bound, so the ratio is at least 1.

The first layer is split into a state part (``[e_t, C_t]``, shared by every candidate) and an
action part, so that scoring all nodes of a decision is one ``(n_nodes, n_action_features)``
product plus a broadcast: the teacher scores every candidate in one batched pass.

:class:`TeacherModel` bundles the exported encoder and predictor weights for NumPy inference,
saves and loads them atomically (:mod:`teacher.storage`) and names itself by a fingerprint of
its weights, which the knowledge base keys record.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from teacher.encoder import EncoderConfig, EpisodeEncoding, GraphEncoder, NumpyEncoder
from teacher.features import (
    ACTION_FEATURES,
    DAG_TASK_FEATURES,
    GRAPH_FEATURES,
    STATE_FEATURES,
    DecisionFeatures,
    ProblemFeatures,
)
from teacher.storage import StorageError, read_arrays, write_arrays

__all__ = [
    "CASE_STATS",
    "CONTEXT_MODES",
    "CONTEXT_STATS",
    "MODEL_FORMAT_VERSION",
    "ModelError",
    "Predictor",
    "PredictorConfig",
    "TeacherModel",
    "case_contexts",
    "context_dim",
    "context_vector",
    "context_vectors",
    "similarity_weights",
]

MODEL_KIND = "wass-teacher-model"
MODEL_FORMAT_VERSION = 2
#: Scalar context statistics appended to the mean retrieved key (``context="mean"``).
CONTEXT_STATS = ("mean_log_target", "min_log_target", "weighted_log_target", "mean_similarity")
#: What one retrieved case adds to its key (``context="expectation"``), then the features of
#: the node that case chose (:data:`~teacher.features.ACTION_FEATURES`).
CASE_STATS = ("log_target", "similarity")
#: Accepted values of ``PredictorConfig.context``.
CONTEXT_MODES = ("expectation", "mean")

F32 = NDArray[np.float32]


class ModelError(StorageError):
    """A teacher model file is missing, damaged or incompatible."""


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of the predictor.

    Attributes:
        hidden: Width of the two hidden layers.
        k: Number of retrieved cases in the context (0: no retrieval).
        policies: Continuation policies the model knows (the one-hot's slots, "unknown" last).
        context: How retrieved cases enter (:data:`CONTEXT_MODES`, see the module docstring).
    """

    hidden: int = 64
    k: int = 5
    policies: tuple[str, ...] = ()
    context: str = "expectation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", tuple(str(p) for p in self.policies))
        if self.context not in CONTEXT_MODES:
            raise ValueError(f"context must be one of {CONTEXT_MODES}, got {self.context!r}")

    def policy_index(self, policy: str | None) -> int:
        """Slot of ``policy`` in the one-hot (the "unknown" slot for ``None`` or a stranger)."""
        try:
            return self.policies.index(policy) if policy is not None else len(self.policies)
        except ValueError:
            return len(self.policies)


def context_vectors(
    sims: NDArray[np.floating], ids: NDArray[np.integer], keys: F32, log_targets: F32
) -> F32:
    """Context of a batch of queries from their retrieved records.

    Args:
        sims: ``(B, k)`` similarities of the retrieved records (``-inf`` where missing).
        ids: ``(B, k)`` their record ids (``-1`` where missing).
        keys: ``(n_records, dim)`` keys of the base.
        log_targets: ``(n_records,)`` log of the records' targets.

    Returns:
        ``(B, dim + len(CONTEXT_STATS))``: mean key, then :data:`CONTEXT_STATS`; all zeros
        for a query with nothing retrieved.
    """
    b, k = ids.shape
    dim = keys.shape[1]
    out = np.zeros((b, dim + len(CONTEXT_STATS)), dtype=np.float32)
    if k == 0:
        return out
    valid = ids >= 0
    cnt = valid.sum(axis=1)
    safe = np.where(valid, ids, 0)
    kv = keys[safe] * valid[..., None]
    tv = np.where(valid, log_targets[safe], 0.0)
    s = np.where(valid, sims, 0.0).astype(np.float64)
    denom = np.maximum(cnt, 1)[:, None]
    out[:, :dim] = kv.sum(axis=1) / denom
    out[:, dim] = tv.sum(axis=1) / denom[:, 0]
    out[:, dim + 1] = np.where(valid, tv, np.inf).min(axis=1)
    w = np.maximum(s, 0.0)
    wsum = w.sum(axis=1)
    out[:, dim + 2] = np.where(
        wsum > 0, (w * tv).sum(axis=1) / np.maximum(wsum, 1e-12), out[:, dim]
    )
    out[:, dim + 3] = s.sum(axis=1) / denom[:, 0]
    out[cnt == 0] = 0.0
    return out


def context_vector(
    sims: NDArray[np.floating], ids: NDArray[np.integer], keys: F32, log_targets: F32
) -> F32:
    """:func:`context_vectors` for one query (1-D ``sims`` and ``ids``), on a fast path."""
    if ids.size == 0 or ids[-1] < 0 or not np.isfinite(sims[-1]):
        return context_vectors(sims[None, :], ids[None, :], keys, log_targets)[0]
    dim = keys.shape[1]
    out = np.empty(dim + len(CONTEXT_STATS), dtype=np.float32)
    k = ids.size
    kv = keys[ids]
    np.divide(kv.sum(axis=0), k, out=out[:dim])
    tv = log_targets[ids].tolist()
    s = sims.tolist()
    w = [x if x > 0.0 else 0.0 for x in s]
    wsum = sum(w)
    mean_t = sum(tv) / k
    out[dim] = mean_t
    out[dim + 1] = min(tv)
    out[dim + 2] = sum(a * b for a, b in zip(w, tv, strict=True)) / wsum if wsum > 0 else mean_t
    out[dim + 3] = sum(s) / k
    return out


def context_dim(key_dim: int, mode: str) -> int:
    """Width of one context vector for keys of ``key_dim`` in ``mode``."""
    if mode == "mean":
        return key_dim + len(CONTEXT_STATS)
    return key_dim + len(CASE_STATS) + len(ACTION_FEATURES)


def similarity_weights(sims: NDArray[np.floating], ids: NDArray[np.integer]) -> F32:
    """The weights of ``E_{k ~ C_t}``: each retrieved case's similarity (clipped at 0) over
    their sum; uniform over the retrieved cases when every similarity is <= 0; 0 for a missing
    case (``ids < 0``). A query with no case at all puts weight 1 on its first slot, whose
    context (:func:`case_contexts`) is all zeros: the prediction without retrieval. Shape of
    ``ids``; rows sum to 1.
    """
    ids = np.asarray(ids)
    if ids.ndim == 1 and ids.size and ids.min() >= 0:
        # One query with every case found (the teacher's step): the same values, fewer calls.
        # A found case has a finite similarity, so nan_to_num would change nothing.
        w = np.maximum(np.asarray(sims), 0.0).astype(np.float64)
        tot = w.sum()
        out = w / max(tot, 1e-300) if tot > 0 else np.full(ids.size, 1.0 / ids.size)
        return out.astype(np.float32)  # type: ignore[no-any-return]
    valid = ids >= 0
    w = np.where(valid, np.maximum(np.nan_to_num(sims, neginf=0.0), 0.0), 0.0).astype(np.float64)
    tot = w.sum(axis=-1, keepdims=True)
    cnt = valid.sum(axis=-1, keepdims=True)
    uniform = valid / np.maximum(cnt, 1)
    out = np.where(tot > 0, w / np.maximum(tot, 1e-300), uniform)
    if ids.shape[-1]:
        out[..., 0] = np.where(cnt[..., 0] == 0, 1.0, out[..., 0])
    return out.astype(np.float32)


def case_contexts(
    sims: NDArray[np.floating],
    ids: NDArray[np.integer],
    keys: F32,
    log_targets: F32,
    actions: F32,
) -> F32:
    """One context vector per retrieved case (``context="expectation"``).

    Args:
        sims: ``(..., k)`` similarities of the retrieved records.
        ids: ``(..., k)`` their record ids (``-1`` where missing).
        keys: ``(n_records, dim)`` keys of the base.
        log_targets: ``(n_records,)`` log of the records' targets.
        actions: ``(n_records, len(ACTION_FEATURES))`` features of the node each record chose.

    Returns:
        ``(..., k, dim + len(CASE_STATS) + len(ACTION_FEATURES))``: the case's key, its log
        target, its similarity, its chosen node's features; zeros where missing.
    """
    ids = np.asarray(ids)
    dim = keys.shape[1]
    if ids.ndim == 1 and ids.size and ids.min() >= 0:
        # One query with every case found (the teacher's step): the same values, fewer calls.
        one = np.empty((ids.size, context_dim(dim, "expectation")), dtype=np.float32)
        one[:, :dim] = keys[ids]
        one[:, dim] = log_targets[ids]
        one[:, dim + 1] = sims
        one[:, dim + 2 :] = actions[ids]
        return one
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    out = np.zeros((*ids.shape, context_dim(dim, "expectation")), dtype=np.float32)
    out[..., :dim] = keys[safe]
    out[..., dim] = log_targets[safe]
    out[..., dim + 1] = np.nan_to_num(sims, neginf=0.0)
    out[..., dim + 2 :] = actions[safe]
    out[~valid] = 0.0
    return out


class Predictor(nn.Module):
    """Trainable MLP ``[e_t, action, C_t] -> makespan / lower bound``.

    Args:
        embed_dim: Size of ``e_t``.
        config: Sizes and the context mode.
        key_dim: Size of the retrieval keys (default ``embed_dim``).
    """

    def __init__(
        self,
        embed_dim: int,
        config: PredictorConfig = PredictorConfig(),
        key_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.key_dim = embed_dim if key_dim is None else int(key_dim)
        self.ctx_dim = context_dim(self.key_dim, config.context)
        h = config.hidden
        n_in = embed_dim + self.ctx_dim + len(config.policies) + 1
        self.state_w = nn.Linear(n_in, h)
        self.action_w = nn.Linear(len(ACTION_FEATURES), h, bias=False)
        self.hidden_w = nn.Linear(h, h)
        self.out_w = nn.Linear(h, 1)

    def forward(
        self,
        e: Tensor,
        action: Tensor,
        ctx: Tensor,
        policy: Tensor,
        weights: Tensor | None = None,
    ) -> Tensor:
        """Predicted ratio, shape ``(B,)``.

        Args:
            e: ``(B, embed_dim)`` state embeddings.
            action: ``(B, len(ACTION_FEATURES))`` action features.
            ctx: ``(B, ctx_dim)`` contexts, or ``(B, k, ctx_dim)`` per-case contexts.
            policy: ``(B,)`` int64 continuation-policy slots.
            weights: ``(B, k)`` case weights (rows summing to 1) for per-case contexts.
        """
        onehot = nn.functional.one_hot(policy, len(self.config.policies) + 1).to(e.dtype)
        if ctx.dim() == 2:
            shared = self.state_w(torch.cat([e, ctx, onehot], dim=1))
            z = torch.relu(shared + self.action_w(action))
            z = torch.relu(self.hidden_w(z))
            return 1.0 + nn.functional.softplus(self.out_w(z)[:, 0])
        k = ctx.shape[1]
        base = torch.cat([e, onehot], dim=1)
        d = e.shape[1]
        w_in = self.state_w.weight  # (h, embed + ctx + policies)
        shared = base[:, :d] @ w_in[:, :d].T + base[:, d:] @ w_in[:, d + self.ctx_dim :].T
        shared = shared + self.state_w.bias
        per_case = ctx @ w_in[:, d : d + self.ctx_dim].T  # (B, k, h)
        z = torch.relu(per_case + (shared + self.action_w(action))[:, None, :])
        z = torch.relu(self.hidden_w(z))
        out = 1.0 + nn.functional.softplus(self.out_w(z)[..., 0])  # (B, k)
        if weights is None:
            weights = torch.full((out.shape[0], k), 1.0 / max(k, 1), dtype=out.dtype)
        return (out * weights).sum(dim=1)

    def export(self) -> dict[str, F32]:
        """Weights as float32 NumPy arrays."""
        return {
            f"predictor.{k}": v.detach().cpu().numpy().astype(np.float32)
            for k, v in self.state_dict().items()
        }


class TeacherModel:
    """Encoder + predictor for NumPy inference, with atomic save/load.

    Args:
        weights: Exported weights of a :class:`~teacher.encoder.GraphEncoder` and a
            :class:`Predictor` (``encoder.*`` and ``predictor.*``).
        encoder: Encoder sizes.
        predictor: Predictor sizes.
        info: Free-form metadata (training report, ...), saved with the model.
    """

    def __init__(
        self,
        weights: Mapping[str, np.ndarray],
        encoder: EncoderConfig,
        predictor: PredictorConfig,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        self.weights.setdefault("key.center", np.zeros(encoder.embed_dim, dtype=np.float32))
        self._center = self.weights["key.center"]
        self.encoder_config = encoder
        self.predictor_config = predictor
        self.info = dict(info or {})
        self.encoder = NumpyEncoder(self.weights, encoder)
        g = lambda k: self.weights[f"predictor.{k}"]  # noqa: E731
        d = encoder.embed_dim
        w = g("state_w.weight").T.copy()
        c = context_dim(encoder.key_dim, predictor.context)
        if w.shape[0] != d + c + len(predictor.policies) + 1:
            raise ModelError(
                f"the predictor takes {w.shape[0]} inputs; an encoder with keys of "
                f"{encoder.key_dim} and the {predictor.context!r} context need "
                f"{d + c + len(predictor.policies) + 1} (build it with "
                "Predictor(embed_dim, config, key_dim=encoder.config.key_dim))"
            )
        self._w_e, self._w_c, self._w_p = w[:d], w[d : d + c], w[d + c :]
        self.ctx_dim = c
        self._b_s = g("state_w.bias")
        self._w_a = g("action_w.weight").T.copy()
        self._w_h, self._b_h = g("hidden_w.weight").T.copy(), g("hidden_w.bias")
        self._w_o, self._b_o = g("out_w.weight")[0].copy(), float(g("out_w.bias")[0])
        digest = hashlib.sha256()
        for k in sorted(self.weights):
            digest.update(k.encode())
            digest.update(self.weights[k].tobytes())
        self.fingerprint = digest.hexdigest()[:16]

    @property
    def key_model(self) -> str:
        """The name knowledge base keys made by this model carry."""
        return f"encoder:{self.fingerprint}"

    @property
    def embed_dim(self) -> int:
        """Size of the state embedding."""
        return self.encoder_config.embed_dim

    @property
    def key_dim(self) -> int:
        """Size of the retrieval keys (state embedding plus family embedding)."""
        return self.encoder_config.key_dim

    @property
    def context(self) -> str:
        """How retrieved cases enter the prediction (see the module docstring)."""
        return self.predictor_config.context

    @property
    def k(self) -> int:
        """Retrieved cases per decision."""
        return self.predictor_config.k

    @classmethod
    def from_torch(
        cls,
        encoder: GraphEncoder,
        predictor: Predictor,
        *,
        center: NDArray[np.floating] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> TeacherModel:
        """Export trained torch modules (``center``: the key centring vector, default 0)."""
        weights = {**encoder.export(), **predictor.export()}
        if center is not None:
            weights["key.center"] = np.asarray(center, dtype=np.float32)
        return cls(weights, encoder.config, predictor.config, info)

    # ------------------------------------------------------------------ inference
    def encode_episode(self, pf: ProblemFeatures) -> EpisodeEncoding:
        """The per-episode part of the encoder for a problem."""
        return self.encoder.encode_episode(pf.task, pf.edge_src, pf.edge_dst, pf.graph)

    def embed(self, enc: EpisodeEncoding, d: DecisionFeatures) -> F32:
        """The state embedding ``e_t`` of a decision."""
        return self.encoder.embed(enc, d.task, d.unplaced, d.state)

    def key(self, e: NDArray[np.floating], family: NDArray[np.floating] | None = None) -> F32:
        """Retrieval key(s) of state embedding(s) ``e`` (and family embedding(s) ``family``).

        The state part is centred on the training embeddings' mean and L2-normalised (a shared
        component would otherwise make all cosines close to 1); with a family head, the
        normalised family embedding is put in front, the two parts weighted so that the
        family part makes ``family_share`` of the cosine similarity.
        """
        x = np.asarray(e, dtype=np.float32) - self._center
        # np.linalg.norm(x, axis=-1, keepdims=True), the same operations without its dispatch.
        norm = np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=True))
        x = np.asarray(x / np.maximum(norm, 1e-12), dtype=np.float32)  # no copy: float32
        cfg = self.encoder_config
        if cfg.family_dim <= 0:
            return x
        if family is None:
            raise ValueError("this model's keys need the family embedding (enc.family)")
        z = np.broadcast_to(np.asarray(family, dtype=np.float32), (*x.shape[:-1], cfg.family_dim))
        z = np.asarray(
            z / np.maximum(np.sqrt(np.add.reduce(z * z, axis=-1, keepdims=True)), 1e-12),
            dtype=np.float32,
        )
        a = np.float32(np.sqrt(cfg.family_share))
        b = np.float32(np.sqrt(1.0 - cfg.family_share))
        return np.concatenate([a * z, b * x], axis=-1).astype(np.float32)  # type: ignore[no-any-return]

    @property
    def policies(self) -> tuple[str, ...]:
        """Continuation policies the model knows."""
        return self.predictor_config.policies

    def predict_cases(
        self, e: F32, actions: F32, ctx: F32, policy: str | int | None = None
    ) -> NDArray[np.float64]:
        """Predicted makespan / lower bound of every candidate with each context: ``(n,)`` for
        one context ``(ctx_dim,)``, ``(k, n)`` for per-case contexts ``(k, ctx_dim)`` (the
        spread over the retrieved cases that explanations show)."""
        slot = policy if isinstance(policy, int) else self.predictor_config.policy_index(policy)
        shared = e @ self._w_e
        shared += self._w_p[slot]
        shared += self._b_s
        z = actions @ self._w_a
        if ctx.ndim == 1:
            shared += ctx @ self._w_c
            z += shared
        else:
            # (k, 1, h) + (1, n, h): one hidden pass for every case x candidate.
            z = z[None, :, :] + (ctx @ self._w_c + shared)[:, None, :]
        np.maximum(z, 0.0, out=z)
        z2 = z @ self._w_h
        z2 += self._b_h
        np.maximum(z2, 0.0, out=z2)
        out = (z2 @ self._w_o).astype(np.float64)
        out += self._b_o
        return 1.0 + np.logaddexp(0.0, out)  # type: ignore[no-any-return]

    def predict(
        self,
        e: F32,
        actions: F32,
        ctx: F32,
        policy: str | int | None = None,
        weights: F32 | None = None,
    ) -> NDArray[np.float64]:
        """Predicted makespan / lower bound for every candidate, in one batched pass.

        Args:
            e: ``(embed_dim,)`` state embedding.
            actions: ``(n_candidates, len(ACTION_FEATURES))`` action features.
            ctx: ``(ctx_dim,)`` context (``context="mean"``), or ``(k, ctx_dim)`` per-case
                contexts (``"expectation"``: :func:`case_contexts`).
            policy: Continuation policy (``None``: unknown, the base's mixture), or its slot
                (:meth:`PredictorConfig.policy_index`).
            weights: ``(k,)`` case weights (:func:`similarity_weights`; default uniform).

        Returns:
            ``(n_candidates,)`` predicted ratios: with per-case contexts, the weighted mean of
            the per-case predictions, ``E_{k ~ C_t}[Pred(M | s, a, k)]``.
        """
        pred = self.predict_cases(e, actions, ctx, policy)
        if ctx.ndim == 1:
            return pred
        k = pred.shape[0]
        w = np.full(k, 1.0 / max(k, 1)) if weights is None else np.asarray(weights, np.float64)
        return w @ pred  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model atomically (temporary file + ``os.replace``)."""
        meta = {
            "encoder": asdict(self.encoder_config),
            "predictor": asdict(self.predictor_config),
            "features": {
                "task": list(DAG_TASK_FEATURES),
                "graph": list(GRAPH_FEATURES),
                "state": list(STATE_FEATURES),
                "action": list(ACTION_FEATURES),
            },
            "fingerprint": self.fingerprint,
            "info": self.info,
        }
        write_arrays(path, self.weights, kind=MODEL_KIND, version=MODEL_FORMAT_VERSION, meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TeacherModel:
        """Read a model written by :meth:`save`.

        Raises:
            ModelError: naming the file and the problem.
        """
        arrays, meta = read_arrays(
            path, kind=MODEL_KIND, version=MODEL_FORMAT_VERSION, error=ModelError
        )
        try:
            feats = meta["features"]
            if (
                feats["task"] != list(DAG_TASK_FEATURES)
                or feats["graph"] != list(GRAPH_FEATURES)
                or feats["state"] != list(STATE_FEATURES)
                or feats["action"] != list(ACTION_FEATURES)
            ):
                raise ModelError(f"{path}: trained on other features than this code computes")
            model = cls(
                arrays,
                EncoderConfig(**meta["encoder"]),
                PredictorConfig(
                    **{**meta["predictor"], "policies": tuple(meta["predictor"]["policies"])}
                ),
                meta.get("info", {}),
            )
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"{path}: corrupted or incompatible model ({type(exc).__name__}: {exc})"
            ) from None
        if model.fingerprint != meta.get("fingerprint"):
            raise ModelError(f"{path}: weights do not match the stored fingerprint")
        return model

    def __repr__(self) -> str:
        return f"TeacherModel({self.key_model}, k={self.k})"
