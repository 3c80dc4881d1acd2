"""Bounds on the counts wass accepts, checked before any value is cast to an integer type.

A count read from a file or a config (the cores of a task or a node) arrives as a Python number
or a float64. ``float(1e19)`` is a whole number ``>= 1``, yet ``numpy.int64(1e19)`` wraps to a
negative value; so every count is checked against :data:`MAX_COUNT` while it is still a float
or a Python int. ``2**31 - 1`` leaves room to spare: the sum of a count over ``2**20`` tasks or
nodes stays below ``2**53``, where float64 stops representing every integer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_COUNT", "bad_counts", "whole_number"]

#: Largest count (cores of a task or a node) accepted anywhere.
MAX_COUNT: int = 2**31 - 1


def bad_counts(values: NDArray[np.float64], low: int = 1) -> NDArray[np.intp]:
    """Indices of the entries of ``values`` that are not whole numbers in ``[low, MAX_COUNT]``."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v >= low) & (v <= MAX_COUNT) & (v == np.round(v))
    return np.flatnonzero(~ok)


def whole_number(value: Any, low: int = 1, high: int = MAX_COUNT) -> int:
    """``value`` as an int when it is a whole number in ``[low, high]`` (``2.0`` counts).

    Raises:
        ValueError: naming the value and the range, for anything else (a fraction, a bool, a
            string, NaN, a number out of range); callers re-raise it as their own error.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"must be a whole number in [{low}, {high}], got {value!r}")
    if isinstance(value, (int, np.integer)):
        ok = low <= int(value) <= high
    else:
        f = float(value)
        ok = math.isfinite(f) and f == math.floor(f) and low <= f <= high
    if not ok:
        raise ValueError(f"must be a whole number in [{low}, {high}], got {value!r}")
    return int(value)
