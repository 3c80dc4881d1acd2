"""Worker process pools that also start inside a worker of another pool.

Hydra's joblib launcher (``hydra/launcher=parallel``) runs each job in a worker of joblib's
``loky`` backend, where the process-wide start method is ``"loky"``. A child started with
``spawn`` or ``forkserver`` from there copies that name and cannot set it ("cannot find context
for 'loky'"), so it dies before doing anything and the pool breaks. :func:`standard_start_method`
sets the process-wide method back to one of multiprocessing's own first; every pool wass starts
(evaluation workers, expert collection, the knowledge base build, ``SubprocVecEnv``) goes
through it.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool", "standard_start_method"]

#: multiprocessing's own start methods.
STANDARD = ("fork", "spawn", "forkserver")


def standard_start_method(preferred: str | None = None) -> None:
    """Make the process-wide start method one of :data:`STANDARD` if it is another
    (``preferred``, else ``"spawn"``); leave it alone otherwise."""
    current = mp.get_start_method(allow_none=True)
    if current is not None and current not in STANDARD:
        mp.set_start_method(preferred or "spawn", force=True)


def process_pool(
    max_workers: int,
    start_method: str | None = None,
    initializer: Callable[[], object] | None = None,
) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``max_workers`` processes started by ``start_method`` (None:
    the platform's default), usable from inside a ``loky`` worker (see the module docstring)."""
    standard_start_method(start_method)
    ctx = None if start_method is None else mp.get_context(start_method)
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx, initializer=initializer)
