"""The Knowledge-Guided Teacher: scores every candidate node and turns the scores into R_RAG.

At a decision (place ready task ``t`` given the partial plan) the teacher

1. computes the state and per-node action features (:mod:`teacher.features`) and the state
   embedding ``e_t`` (:mod:`teacher.encoder`; the DAG part once per episode);
2. retrieves the top-K most similar past decisions from the knowledge base (cosine similarity of
   the key of ``e_t`` and the workflow's family embedding to the stored keys): the context
   ``C_t``;
3. predicts the final makespan / lower bound of every feasible node in one batched pass
   (:meth:`~teacher.predictor.TeacherModel.predict`), continuing like the reference policy: with
   the default ``context="expectation"`` one prediction per retrieved case, averaged with the
   cases' similarity weights (the paper's ``E_{k ~ C_t}[Predict(M | G_t, a)]``);
4. names ``a*_t``, the feasible node of least predicted makespan.

Rewards (:meth:`Teacher.reward`), in units of makespan / lower bound like the environment's
terminal reward:

* ``"eq3"`` (default): the paper's equation 3, ``R_RAG = Pred(a*_t) - Pred(a_t)``. Since
  ``a*_t`` is the argmin, this is never positive: 0 for the best node, negative otherwise (the
  paper's text says it is positive when the agent beats the historical best; with ``a*_t``
  defined as the argmin of the same predictor, it cannot be).
* ``"history"``: the baseline is what was *done* in the retrieved cases:
  ``R_RAG = E_k[Pred(a_k)] - Pred(a_t)``, where ``a_k`` is the candidate node closest (in action
  features) to the node chosen in retrieved case ``k`` and the expectation weighs the cases by
  similarity. Beating history earns a positive reward.
* ``"potential"``: potential-based shaping (Ng, Harada & Russell 1999), ``F = gamma *
  Phi(s') - Phi(s)`` with ``Phi(s) = -min_a Pred(s, a)`` and ``Phi = 0`` at the end of the
  episode; it cannot change which policies are optimal. The reward wrapper computes it, since
  it needs the next state (:meth:`Teacher.potential`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from teacher.encoder import EpisodeEncoding
from teacher.features import DecisionFeatures, FeatureTracker, ProblemFeatures
from teacher.kb import KnowledgeBase, KnowledgeBaseError
from teacher.predictor import (
    TeacherModel,
    case_contexts,
    context_vector,
    similarity_weights,
)
from teacher.retrieval import auto_index_kind
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "REWARD_MODES",
    "Evaluation",
    "Teacher",
    "TeacherConfigError",
    "TeacherScheduler",
    "load_teacher",
]

#: Accepted values of ``Teacher(mode=...)``.
REWARD_MODES = ("eq3", "history", "potential")
_DEFAULT_REFERENCE = "heft"


class TeacherConfigError(WassError):
    """An invalid teacher setting (mode, gamma, k, reference policy, lambda)."""


@dataclass(frozen=True)
class Evaluation:
    """The teacher's view of one decision.

    Attributes:
        task: The task to place.
        pred: ``(n_nodes,)`` predicted makespan / lower bound per node (``inf`` where the task
            does not fit).
        best: ``a*_t``, the feasible node of least predicted makespan.
        embedding: ``e_t``.
        neighbours: Record ids of the retrieved cases (best first).
        similarities: Their cosine similarities.
        weights: The cases' weights in ``E_{k ~ C_t}`` (empty with an averaged context).
        context: The context the predictions used (``(ctx_dim,)``, or ``(k, ctx_dim)`` per case).
        baseline: The history-mode baseline ``E_k[Pred(a_k)]`` (NaN when nothing was
            retrieved: the baseline then falls back to ``Pred(a*_t)``).
        history_nodes: The candidate node each retrieved case maps to.
        features: The decision's features.
        retrieval_s: Time spent in the index search [s].
    """

    task: int
    pred: NDArray[np.float64]
    best: int
    embedding: NDArray[np.float32]
    neighbours: NDArray[np.int64]
    similarities: NDArray[np.float32]
    weights: NDArray[np.float32]
    context: NDArray[np.float32]
    baseline: float
    history_nodes: NDArray[np.int64]
    features: DecisionFeatures
    retrieval_s: float

    @property
    def best_value(self) -> float:
        """``Pred(a*_t)``."""
        return float(self.pred[self.best])


class Teacher:
    """Knowledge-Guided Teacher.

    Args:
        model: Trained encoder + predictor.
        kb: Knowledge base keyed by ``model`` (``None``: no retrieval, zero context).
        k: Retrieved cases per decision (default: the model's K).
        mode: Reward mode, one of :data:`REWARD_MODES`.
        gamma: Discount of the potential-based mode (use the agent's).
        reference: Continuation policy the predictions assume (``None``: the base's mixture).
            Default: ``"heft"`` when the model knows it.
        index: Index kind for the base (default: the one it was saved with); ``"auto"``:
            exact search for small bases, HNSW for large ones
            (:func:`~teacher.retrieval.auto_index_kind`).
        **index_params: Index parameters (``ef_search=...``, ``nprobe=...``).

    Raises:
        KnowledgeBaseError: if the base is keyed by another model.
    """

    def __init__(
        self,
        model: TeacherModel,
        kb: KnowledgeBase | None = None,
        *,
        k: int | None = None,
        mode: str = "eq3",
        gamma: float = 0.99,
        reference: str | None = _DEFAULT_REFERENCE,
        index: str | None = None,
        **index_params: object,
    ) -> None:
        if mode not in REWARD_MODES:
            raise TeacherConfigError(f"mode must be one of {REWARD_MODES}, got {mode!r}")
        if not 0.0 <= gamma <= 1.0:
            raise TeacherConfigError(f"gamma must be in [0, 1], got {gamma!r}")
        if kb is not None and (kb.key_model != model.key_model or kb.key_dim != model.key_dim):
            raise KnowledgeBaseError(
                f"the knowledge base is keyed by {kb.key_model!r} (dim {kb.key_dim}), the model "
                f"is {model.key_model!r} (dim {model.key_dim}): re-key the base with this "
                "model (scripts/train_predictor.py writes a matching base)"
            )
        self.model = model
        self.kb = kb
        self.k = model.k if k is None else int(k)
        if self.k < 0:
            raise TeacherConfigError(f"k must be >= 0, got {self.k}")
        self.mode = mode
        self.gamma = float(gamma)
        if reference == _DEFAULT_REFERENCE and reference not in model.policies:
            reference = None
        if reference is not None and reference not in model.policies:
            raise TeacherConfigError(
                f"reference policy {reference!r} is unknown to the model; "
                f"it knows {list(model.policies)} (or None for the base's mixture)"
            )
        self.reference = reference
        self._slot = model.predictor_config.policy_index(reference)
        self._index = None
        if kb is not None and len(kb) and self.k > 0:
            if index == "auto":
                index = auto_index_kind(len(kb))
                if index != "hnsw":  # HNSW's parameters mean nothing to an exact index
                    index_params = {}
            self._index = kb.index(index, **index_params)
            self._keys = kb.keys
            self._log_t = np.log(kb.targets).astype(np.float32)
            self._act = np.asarray(kb.column("rec_action_features"), dtype=np.float32)
        self._per_case = model.context == "expectation"
        self._ctx_zero = np.zeros(
            (1, model.ctx_dim) if self._per_case else model.ctx_dim, dtype=np.float32
        )
        self._w_zero = np.ones(1, dtype=np.float32)
        self._problem: Problem | None = None
        self._pf: ProblemFeatures | None = None
        self._tracker: FeatureTracker | None = None
        self._enc: EpisodeEncoding | None = None
        self._all_nodes = np.zeros(0, dtype=np.int64)

    # ------------------------------------------------------------------ episodes
    def begin(self, problem: Problem) -> None:
        """Prepare for a new episode on ``problem`` (the per-episode GNN pass)."""
        self._problem = problem
        self._pf = ProblemFeatures(problem)
        self._tracker = FeatureTracker(self._pf)
        self._enc = self.model.encode_episode(self._pf)
        self._all_nodes = np.arange(problem.n_nodes)

    def _ensure(self, problem: Problem) -> None:
        if problem is not self._problem:
            self.begin(problem)

    # ------------------------------------------------------------------ scoring
    def evaluate(self, builder: PlanBuilder, task: int) -> Evaluation:
        """Score every node for placing ready ``task`` on the partial plan ``builder``.

        Call it at every decision of an episode, in order: the state features summarise the
        choices it has seen (see :class:`~teacher.features.FeatureTracker`).
        """
        self._ensure(builder.problem)
        assert self._tracker is not None and self._enc is not None
        d = self._tracker.decision(builder, task)
        e = self.model.embed(self._enc, d)
        t0 = time.perf_counter()
        w = self._w_zero
        if self._index is not None:
            key = self.model.key(e, self._enc.family)
            sims, ids = self._index.search(key[None, :], self.k)
            sims, ids = sims[0], ids[0]
            if self._per_case:
                ctx = case_contexts(sims, ids, self._keys, self._log_t, self._act)
                w = similarity_weights(sims, ids)
            else:
                ctx = context_vector(sims, ids, self._keys, self._log_t)
        else:
            sims = np.zeros(0, dtype=np.float32)
            ids = np.zeros(0, dtype=np.int64)
            ctx = self._ctx_zero
        dt = time.perf_counter() - t0
        feas = d.feasible
        if self._pf is not None and self._pf._fits_all[task]:
            cand = self._all_nodes
            pred = self.model.predict(e, d.actions, ctx, self._slot, w)
            best = int(np.argmin(pred))
        else:
            pred = np.full(feas.size, np.inf)
            cand = np.flatnonzero(feas)
            pred[cand] = self.model.predict(e, d.actions[cand], ctx, self._slot, w)
            best = int(cand[np.argmin(pred[cand])])
        baseline = float("nan")
        hist = np.zeros(0, dtype=np.int64)
        if self.mode == "history" and ids.size:
            valid = ids >= 0
            ids_v, sims_v = ids[valid], sims[valid]
            past = self._act[ids_v]  # (k, n_action_features): what was chosen in each case
            cand_a = d.actions[cand]
            dist = ((cand_a[None, :, :] - past[:, None, :]) ** 2).sum(axis=2)
            hist = cand[dist.argmin(axis=1)]
            w = np.maximum(sims_v.astype(np.float64), 0.0)
            w = w / w.sum() if w.sum() > 0 else np.full(w.size, 1.0 / max(w.size, 1))
            baseline = float((w * pred[hist]).sum())
        return Evaluation(
            task=task,
            pred=pred,
            best=best,
            embedding=e,
            neighbours=ids,
            similarities=sims,
            weights=w if self._per_case else np.zeros(0, dtype=np.float32),
            context=ctx,
            baseline=baseline,
            history_nodes=hist,
            features=d,
            retrieval_s=dt,
        )

    def reward(self, ev: Evaluation, action: int) -> float:
        """R_RAG for taking ``action`` at the decision ``ev`` (modes ``eq3`` and ``history``).

        An action the task cannot take (padding, or a node it does not fit on) gets 0: the
        environment deals with illegal actions itself.

        Raises:
            ValueError: in ``potential`` mode, which needs the next state (see
                :meth:`potential`).
        """
        if self.mode == "potential":
            raise ValueError("potential-based shaping needs the next state; use potential()")
        if not 0 <= action < ev.pred.size or not np.isfinite(ev.pred[action]):
            return 0.0
        chosen = float(ev.pred[action])
        if self.mode == "history" and np.isfinite(ev.baseline):
            return ev.baseline - chosen
        return ev.best_value - chosen

    @staticmethod
    def potential(ev: Evaluation | None) -> float:
        """``Phi(s) = -min_a Pred(s, a)``; 0 for a terminal state (``ev is None``)."""
        return 0.0 if ev is None else -ev.best_value

    def shaping(self, ev: Evaluation, next_ev: Evaluation | None) -> float:
        """Potential-based term ``gamma * Phi(s') - Phi(s)`` (``next_ev`` None at the end)."""
        return self.gamma * self.potential(next_ev) - self.potential(ev)

    def __repr__(self) -> str:
        n = 0 if self.kb is None else len(self.kb)
        return f"Teacher(mode={self.mode!r}, k={self.k}, records={n}, reference={self.reference!r})"


class TeacherScheduler(Scheduler):
    """The teacher as a policy: each task goes to ``a*_t``, the node of least predicted
    makespan (ties: lowest index). Measures what the teacher's judgement is worth on its own.

    Registered as ``teacher``: ``make_scheduler("teacher", kb=PATH, model=PATH)`` loads the
    files (once per process, see :func:`load_teacher`); ``teacher=`` takes a ready
    :class:`Teacher` instead.

    With ``margin > 0`` it is the teacher's judgement inside a trust region: the task goes to
    the ``fallback`` scheduler's node (HEFT's by default) unless ``a*_t`` is predicted to be
    more than ``margin`` (relative) shorter than it, ``Pred(f) - Pred(a*_t) > margin *
    Pred(f)``. ``margin=0`` is the plain greedy teacher; a very large margin is the fallback.

    Args:
        teacher: The teacher (evaluated at every decision, in order).
        kb: Knowledge base file (keyed by ``model``), when ``teacher`` is not given.
        model: Teacher model file, when ``teacher`` is not given.
        margin: Relative predicted gain ``a*_t`` needs over the fallback's node (>= 0).
        fallback: Scheduler (or registered name) whose node is kept inside the margin.
        seed: Unused (the policy is deterministic); kept for the scheduler interface.
        **teacher_kwargs: :class:`Teacher` arguments with ``kb``/``model`` (``k``,
            ``reference``, ``index``, ...).

    Raises:
        TeacherConfigError: if neither a teacher nor both files are given.
    """

    name: ClassVar[str] = "teacher"
    requires: ClassVar[tuple[str, ...]] = ("kb", "model")

    def __init__(
        self,
        teacher: Teacher | None = None,
        *,
        kb: str | os.PathLike[str] | None = None,
        model: str | os.PathLike[str] | None = None,
        margin: float = 0.0,
        fallback: str | Scheduler = "heft",
        seed: int | None = None,
        **teacher_kwargs: Any,
    ) -> None:
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
            raise TeacherConfigError(f"teacher margin must be a number >= 0, got {margin!r}")
        if teacher is None:
            if kb is None or model is None:
                raise TeacherConfigError(
                    "scheduler 'teacher' needs kb=<knowledge base file> and model=<teacher "
                    f"model file> (got kb={kb!r}, model={model!r}); "
                    "python scripts/train_predictor.py writes both under runs/teacher/"
                )
            teacher = load_teacher(kb, model, **teacher_kwargs)
        elif kb is not None or model is not None or teacher_kwargs:
            raise TeacherConfigError("give either teacher= or kb= and model=, not both")
        self.teacher = teacher
        self.margin = float(margin)
        self._fallback: Scheduler | None = None
        if self.margin > 0:
            from agents.registry import make_scheduler
            from wass_env.scheduling import UnknownSchedulerError

            try:
                self._fallback = make_scheduler(fallback)
            except UnknownSchedulerError as exc:
                raise TeacherConfigError(f"teacher fallback: {exc}") from None
        super().__init__(seed)

    def begin(self, problem: Problem) -> None:
        """Start the teacher's episode."""
        self.teacher.begin(problem)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """``a*_t`` for placing ``task`` (the fallback's node inside the margin)."""
        self._ensure(builder.problem)
        ev = self.teacher.evaluate(builder, task)
        if self._fallback is None:
            return ev.best
        self._fallback._ensure(builder.problem)
        f = int(self._fallback.select_node(builder, task))
        pf = float(ev.pred[f])
        if math.isfinite(pf) and pf - ev.best_value <= self.margin * pf:
            return f
        return ev.best

    def __repr__(self) -> str:
        if self._fallback is None:
            return f"TeacherScheduler({self.teacher!r})"
        return (
            f"TeacherScheduler({self.teacher!r}, margin={self.margin:g}, "
            f"fallback={self._fallback.name!r})"
        )


_CACHE: dict[tuple[Any, ...], tuple[TeacherModel, KnowledgeBase]] = {}


def load_teacher(
    kb: str | os.PathLike[str],
    model: str | os.PathLike[str],
    **kwargs: Any,
) -> Teacher:
    """A :class:`Teacher` from saved files, sharing the loaded model and base between calls
    in one process (several environments in a ``DummyVecEnv`` hold one copy).

    Args:
        kb: Knowledge base file (keyed by the model).
        model: Teacher model file.
        **kwargs: :class:`Teacher` arguments (``mode``, ``k``, ``reference``, ``index``, ...).
    """
    key = tuple(
        (str(os.path.abspath(p)), os.stat(p).st_mtime_ns) if os.path.exists(p) else (str(p), 0)
        for p in (kb, model)
    )
    if key not in _CACHE:
        _CACHE[key] = (TeacherModel.load(model), KnowledgeBase.load(kb))
    m, base = _CACHE[key]
    return Teacher(m, base, **kwargs)
