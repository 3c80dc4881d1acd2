"""Worker pools started from inside a worker of joblib's loky backend (Hydra's joblib launcher)."""

from __future__ import annotations


def _pool_in_worker(method: str | None) -> tuple[str | None, list[int]]:
    import multiprocessing as mp

    from wass_env.workers import process_pool

    before = mp.get_start_method(allow_none=True)
    with process_pool(2, method) as ex:
        return before, list(ex.map(abs, [-1, -2, -3]))


def test_a_process_pool_starts_inside_a_loky_worker() -> None:
    # Without wass_env.workers.standard_start_method the pool's children die at start-up
    # ("cannot find context for 'loky'") and the map raises BrokenProcessPool.
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=2, backend="loky")(delayed(_pool_in_worker)(m) for m in ("spawn", None))
    assert [r for _, r in out] == [[1, 2, 3], [1, 2, 3]]
    assert "loky" in {before for before, _ in out}  # the case the helper exists for was hit
