"""Disjoint seed ranges for training, validation and evaluation.

A seed names one episode: ``WassSchedEnv.reset(seed=s)`` draws its workflow and cluster from
``s``. Evaluation instances must never be training instances, and every variant (every
scheduler, every training seed of a learned one) must be scored on the same instances, so the
ranges are fixed here, for everyone:

* **training** env seeds in ``[0, 10**6)``: a training run with seed ``s`` and ``n`` envs
  seeds them ``s, s + 1, ..., s + n - 1`` (each env then keeps drawing from its own stream);
* **validation** (the evaluation callback during training) in ``[5 * 10**8, 10**9)``;
* **evaluation** (the final table of a training run, ``scripts/evaluate.py``) from ``10**9``
  on: instance ``i`` of every cell is seed ``10**9 + i``, whatever was trained.

The ranges are far apart, so no training stream starts from an evaluation seed. (A training env
draws many episodes from one stream; a later episode of that stream equals an evaluation
instance only by the chance of a 64-bit collision.)
"""

from __future__ import annotations

__all__ = [
    "EVAL_SEED",
    "TRAIN_SEEDS",
    "VALIDATION_SEED",
    "VALIDATION_SEEDS",
    "eval_seeds",
    "seed_range_problem",
]

#: Env seeds a training run may use (its seed plus its env index).
TRAIN_SEEDS = range(0, 10**6)
#: First validation seed, and the validation range.
VALIDATION_SEED = 5 * 10**8
VALIDATION_SEEDS = range(VALIDATION_SEED, 10**9)
#: First evaluation seed: instance ``i`` of an evaluation cell is ``EVAL_SEED + i``.
EVAL_SEED = 10**9


def eval_seeds(n: int, first: int = EVAL_SEED) -> list[int]:
    """The seeds of ``n`` evaluation instances: ``first, first + 1, ...``."""
    return [first + i for i in range(n)]


def seed_range_problem(kind: str, first: int, count: int = 1) -> str | None:
    """Why seeds ``first .. first + count - 1`` are outside the ``kind`` range, or None.

    Args:
        kind: ``"train"``, ``"validation"`` or ``"eval"``.
        first: The first seed.
        count: How many consecutive seeds are used.
    """
    last = first + count - 1
    if kind == "train":
        lo, hi = TRAIN_SEEDS.start, TRAIN_SEEDS.stop
    elif kind == "validation":
        lo, hi = VALIDATION_SEEDS.start, VALIDATION_SEEDS.stop
    elif kind == "eval":
        lo, hi = EVAL_SEED, None
    else:
        raise ValueError(f"unknown seed range {kind!r}")
    if first < lo or (hi is not None and last >= hi):
        where = f"[{lo}, {hi})" if hi is not None else f"[{lo}, ...)"
        return (
            f"{kind} seeds {first}..{last} leave the {kind} range {where} "
            "(see agents.evaluation.seeds)"
        )
    return None
