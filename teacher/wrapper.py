"""``RAGRewardWrapper``: adds ``lambda * R_RAG`` to the environment's reward.

The wrapper reads the simulator state of the environment it wraps (``env.unwrapped`` is a
``WassSchedEnv``: ``problem``, ``builder``, ``current_task``), never the observation, so it works
whatever observation the agent sees. Each state is evaluated once, when it appears (after
``reset`` and after every non-final ``step``), and the evaluation is kept for the next ``step``:
R_RAG of ``(s_t, a_t)`` uses the evaluation of ``s_t`` made before ``a_t`` was applied, and the
potential-based mode also uses that of ``s_{t+1}``.

``step`` returns ``reward = env reward + lam * R_RAG``; ``info["rewards"]`` gains the term
``"rag"`` (R_RAG itself, unweighted) and ``info["teacher"]`` holds ``best_action`` (``a*_t``),
``pred_action`` and ``pred_best`` (predicted makespan / lower bound of ``a_t`` and ``a*_t``),
``retrieval_ms``, ``teacher_ms`` (the whole evaluation) and the ``neighbours`` retrieved. With
``lam == 0`` the reward is the environment's, bit for bit ("DRL without RAG"); the teacher still
runs so the ablation logs the same diagnostics, unless ``evaluate_when_off=False``.

The wrapper pickles (for ``SubprocVecEnv``) as long as the wrapped environment does.
"""

from __future__ import annotations

import time
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from teacher.teacher import Evaluation, Teacher, TeacherConfigError

__all__ = ["RAGRewardWrapper", "rag_wrapper"]


class RAGRewardWrapper(gym.Wrapper):  # type: ignore[type-arg]
    """Reward shaping by the Knowledge-Guided Teacher.

    Args:
        env: A ``WassSched-v0`` environment (possibly wrapped).
        teacher: The teacher (its ``mode`` picks eq. 3, history or potential-based shaping).
        lam: Weight of R_RAG in the reward (``lambda``; 0 = the bare environment's reward).
        evaluate_when_off: Run the teacher even when ``lam == 0`` (for its diagnostics).
    """

    def __init__(
        self,
        env: gym.Env,  # type: ignore[type-arg]
        teacher: Teacher,
        lam: float = 0.1,
        *,
        evaluate_when_off: bool = True,
    ) -> None:
        super().__init__(env)
        if not np.isfinite(lam):
            raise TeacherConfigError(f"lam must be finite, got {lam!r}")
        self.teacher = teacher
        self.lam = float(lam)
        self.evaluate_when_off = bool(evaluate_when_off)
        self._ev: Evaluation | None = None
        self._ev_ms = 0.0

    @property
    def _active(self) -> bool:
        return self.lam != 0.0 or self.evaluate_when_off

    def _evaluate(self) -> None:
        core: Any = self.env.unwrapped
        task = int(core.current_task)
        if task < 0:
            self._ev = None
            return
        t0 = time.perf_counter()
        self._ev = self.teacher.evaluate(core.builder, task)
        self._ev_ms = (time.perf_counter() - t0) * 1e3

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the environment and evaluate its first state."""
        obs, info = self.env.reset(**kwargs)
        self._ev = None
        if self._active:
            core: Any = self.env.unwrapped
            self.teacher.begin(core.problem)
            self._evaluate()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the environment; add ``lam * R_RAG`` to its reward."""
        if not self._active:
            return self.env.step(action)
        ev, ev_ms = self._ev, self._ev_ms
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        if done:
            self._ev = None
        else:
            self._evaluate()
        a = int(action)
        if ev is None:
            rag = 0.0
        elif self.teacher.mode == "potential":
            rag = self.teacher.shaping(ev, None if done else self._ev)
        else:
            rag = self.teacher.reward(ev, a)
        # The teacher predicts makespan / lower bound; the env's rewards may be in units of the
        # reference's makespan (reward_scale="reference"): the same unit for both terms.
        unit = getattr(self.env.unwrapped, "reward_unit_per_lower_bound", 1.0)
        if unit != 1.0:
            rag *= unit
        info = dict(info)
        info["rewards"] = {**info.get("rewards", {}), "rag": rag}
        if ev is not None:
            valid = 0 <= a < ev.pred.size
            info["teacher"] = {
                "best_action": ev.best,
                "pred_action": float(ev.pred[a]) if valid else float("inf"),
                "pred_best": ev.best_value,
                "retrieval_ms": ev.retrieval_s * 1e3,
                "teacher_ms": ev_ms,
                "neighbours": ev.neighbours,
            }
        if self.lam != 0.0:
            reward = float(reward) + self.lam * rag
        return obs, reward, terminated, truncated, info


def rag_wrapper(
    env: gym.Env,  # type: ignore[type-arg]
    *,
    kb: str,
    model: str,
    lam: float = 0.1,
    evaluate_when_off: bool = True,
    **teacher_kwargs: Any,
) -> RAGRewardWrapper:
    """Wrap ``env`` with a teacher loaded from saved files (the ``teacher=rag`` config's target).

    The base and the model are loaded once per process and shared between the environments
    of that process (see :func:`teacher.teacher.load_teacher`).

    Args:
        env: The environment to wrap.
        kb: Knowledge base file (keyed by the model).
        model: Teacher model file.
        lam: Weight of R_RAG.
        evaluate_when_off: See :class:`RAGRewardWrapper`.
        **teacher_kwargs: :class:`~teacher.teacher.Teacher` arguments (``mode``, ``k``, ...).
    """
    from teacher.teacher import load_teacher

    return RAGRewardWrapper(
        env, load_teacher(kb, model, **teacher_kwargs), lam=lam, evaluate_when_off=evaluate_when_off
    )
