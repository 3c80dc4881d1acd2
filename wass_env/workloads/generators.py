"""Seeded synthetic workflow generators.

Every generator takes the number of tasks (where it makes sense) and a
``numpy.random.Generator`` and returns a :class:`~wass_env.sim.workflow.Workflow` with ``family``
set to the generator's name. The same generator state gives the same workflow.

Shapes:

* :func:`chain`: ``t0 -> t1 -> ... -> t(n-1)`` (``n - 1`` edges).
* :func:`fan_in`: ``n - 1`` sources feeding one sink (``n - 1`` edges).
* :func:`fan_out`: one source feeding ``n - 1`` sinks (``n - 1`` edges).
* :func:`fork_join`: source -> ``width`` parallel tasks -> join, repeated ``stages`` times (the
  join of a stage is the fork of the next): ``1 + stages * (width + 1)`` tasks and
  ``2 * stages * width`` edges.
* :func:`layered`: a random layered DAG (see its docstring).
* :func:`cybershake`: the CyberShake seismic-hazard workflow at any size.
* :func:`genomics49`: a 49-task Epigenomics-like genomics pipeline.

Common keyword arguments of the shape generators (a "range" is a number or a pair ``(lo, hi)``):

* ``work``: range of task runtimes on a speed-1.0 node [s], drawn per task (default
  ``(1, 100)``); ``work_dist`` chooses how: ``"uniform"`` on ``[lo, hi]`` or ``"lognormal"``
  with ``[lo, hi]`` as its central 90% interval (5th and 95th percentiles; needs ``lo > 0``).
* ``data``: range of bytes per edge, drawn uniformly per edge (default ``(1e6, 1e8)``).
* ``ccr``: if given, the drawn edge bytes are rescaled (all by one factor, or set equal when they
  are all 0) so that the communication-to-computation ratio on the *reference network* is exactly
  ``ccr``: ``mean over edges of (REF_LATENCY + bytes / REF_BANDWIDTH)`` divided by ``mean over
  tasks of work / REF_SPEED`` equals ``ccr``, with ``REF_BANDWIDTH = 1.25e9`` bytes/s (10 Gb/s),
  ``REF_LATENCY = 1e-4`` s and ``REF_SPEED = 1.0``. This is the CCR that
  :meth:`wass_env.sim.problem.Problem.ccr` reports on a cluster of speed-1.0 nodes with that
  network; use :func:`wass_env.sim.problem.with_ccr` for an exact CCR on another cluster.
* ``cores``: integer range of cores per task, inclusive (default 1).
* ``memory``: range of memory per task [bytes] (default 0).
* ``name``: workflow name (default: family and size, e.g. ``"chain-20"``).

Random numbers are drawn in this order: structure (layered, cybershake), work, cores (only when
the range is not a single value), memory (likewise), edge bytes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.limits import MAX_COUNT, whole_number
from wass_env.sim.workflow import Workflow
from wass_env.workloads.errors import WorkloadError

__all__ = [
    "GENERATORS",
    "REF_BANDWIDTH",
    "REF_LATENCY",
    "REF_SPEED",
    "chain",
    "cybershake",
    "fan_in",
    "fan_out",
    "fork_join",
    "genomics49",
    "layered",
    "scale_to_ccr",
]

REF_BANDWIDTH = 1.25e9  # [bytes/s] reference network for ``ccr`` (10 Gb/s)
REF_LATENCY = 1e-4  # [s] reference link latency
REF_SPEED = 1.0  # reference node speed

RangeLike = float | Sequence[float]
FloatArray = NDArray[np.float64]

_Z95 = 1.6448536269514722  # 95th percentile of the standard normal
_MAX_FLOAT_INT = int(sys.float_info.max)  # larger Python ints do not convert to a float


# ---------------------------------------------------------------------------------------------
# argument checks and size draws


def _count(name: str, value: Any, minimum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not minimum <= value <= MAX_COUNT
    ):
        raise WorkloadError(
            f"must be an integer >= {minimum}, got {value!r}"
            + (f" (more than {MAX_COUNT})" if isinstance(value, int) and value > MAX_COUNT else ""),
            field=name,
        )
    return int(value)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise WorkloadError(f"must be a number in [0, 1], got {value!r}", field=name)
    if not 0.0 <= float(value) <= 1.0:
        raise WorkloadError(f"must be a number in [0, 1], got {value!r}", field=name)
    return float(value)


def _range(name: str, value: Any, *, integer: bool = False, minimum: float = 0.0) -> tuple:
    """``(lo, hi)`` from a number or a pair, checked: finite, ``minimum <= lo <= hi``."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = (value[0], value[1])
    else:
        raise WorkloadError(f"expected a number or a pair [lo, hi], got {value!r}", field=name)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise WorkloadError(f"expected numbers, got {value!r}", field=name)
        if integer:
            try:
                whole_number(v, low=int(minimum))  # before any cast: int64(1e19) wraps
            except ValueError as exc:
                raise WorkloadError(f"values {exc}", field=name) from None
        elif (isinstance(v, int) and abs(v) > _MAX_FLOAT_INT) or not math.isfinite(v):
            raise WorkloadError(f"values must be finite, got {value!r}", field=name)
        if v < minimum:
            raise WorkloadError(
                f"values must be finite and >= {minimum}, got {value!r}", field=name
            )
    lo, hi = (int(v) for v in pair) if integer else (float(v) for v in pair)
    if lo > hi:
        raise WorkloadError(f"lo must be <= hi, got {value!r}", field=name)
    return lo, hi


def _lognormal(rng: np.random.Generator, mean: float, sd: float, size: int) -> FloatArray:
    """Lognormal draws with the given mean and standard deviation."""
    sigma2 = math.log1p((sd / mean) ** 2)
    return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), size)


@dataclass(frozen=True)
class _Sizes:
    """The size arguments shared by the shape generators, checked."""

    work: tuple[float, float]
    work_dist: str
    data: tuple[float, float]
    ccr: float | None
    cores: tuple[int, int]
    memory: tuple[float, float]

    @classmethod
    def check(
        cls,
        work: RangeLike,
        work_dist: str,
        data: RangeLike,
        ccr: float | None,
        cores: RangeLike,
        memory: RangeLike,
    ) -> _Sizes:
        if work_dist not in ("uniform", "lognormal"):
            raise WorkloadError(
                f"must be 'uniform' or 'lognormal', got {work_dist!r}", field="work_dist"
            )
        w = _range("work", work)
        if work_dist == "lognormal" and w[0] <= 0:
            raise WorkloadError(f"lognormal work needs lo > 0, got {work!r}", field="work")
        if ccr is not None and (
            isinstance(ccr, bool)
            or not isinstance(ccr, (int, float, np.number))
            or not math.isfinite(ccr)
            or ccr < 0
        ):
            raise WorkloadError(f"must be a finite number >= 0, got {ccr!r}", field="ccr")
        return cls(
            work=w,
            work_dist=work_dist,
            data=_range("data", data),
            ccr=None if ccr is None else float(ccr),
            cores=_range("cores", cores, integer=True, minimum=1),
            memory=_range("memory", memory),
        )

    def tasks(self, n: int, rng: np.random.Generator) -> dict[str, NDArray[Any]]:
        lo, hi = self.work
        if self.work_dist == "uniform":
            work = rng.uniform(lo, hi, n)
        else:
            mu = 0.5 * (math.log(lo) + math.log(hi))
            sigma = (math.log(hi) - math.log(lo)) / (2 * _Z95)
            work = rng.lognormal(mu, sigma, n)
        clo, chi = self.cores
        cores = np.full(n, clo) if clo == chi else rng.integers(clo, chi, n, endpoint=True)
        mlo, mhi = self.memory
        memory = np.full(n, mlo) if mlo == mhi else rng.uniform(mlo, mhi, n)
        return {"work": work, "cores": cores, "memory": memory}

    def edges(self, m: int, rng: np.random.Generator, work: FloatArray) -> FloatArray:
        nbytes = rng.uniform(self.data[0], self.data[1], m)
        if self.ccr is not None and m:
            nbytes = scale_to_ccr(work, nbytes, self.ccr)
        return nbytes


def scale_to_ccr(
    work: FloatArray,
    edge_bytes: FloatArray,
    ccr: float,
    *,
    bandwidth: float = REF_BANDWIDTH,
    latency: float = REF_LATENCY,
    speed: float = REF_SPEED,
) -> FloatArray:
    """Rescale edge bytes so that the CCR on a reference network is exactly ``ccr``.

    The CCR is ``mean(latency + bytes / bandwidth) / mean(work / speed)``. All bytes are
    multiplied by one factor (so their proportions stay), or set equal when they are all 0.

    Args:
        work: Task runtimes on a speed-1.0 node [s].
        edge_bytes: Bytes per edge [bytes].
        ccr: The wanted communication-to-computation ratio (>= 0).
        bandwidth: Reference bandwidth [bytes/s].
        latency: Reference latency [s].
        speed: Reference node speed.

    Raises:
        WorkloadError: if ``ccr`` is below what latency alone gives.
    """
    b = np.asarray(edge_bytes, dtype=np.float64)
    if b.size == 0:
        return b
    mean_exec = float(np.mean(work)) / speed  # [s]
    want = (ccr * mean_exec - latency) * bandwidth  # [bytes] mean bytes per edge
    if want < 0:
        raise WorkloadError(
            f"ccr {ccr} is unreachable: latency alone gives {latency / mean_exec:.3g} "
            f"(mean task runtime {mean_exec:.3g} s)",
            field="ccr",
        )
    mean_b = float(b.mean())
    return b * (want / mean_b) if mean_b > 0 else np.full(b.size, want)


def _finish(
    family: str,
    name: str,
    n: int,
    edges: NDArray[np.int64],
    rng: np.random.Generator,
    sizes: _Sizes,
    ids: Sequence[str] | None = None,
) -> Workflow:
    per_task = sizes.tasks(n, rng)
    nbytes = sizes.edges(len(edges), rng, per_task["work"])
    return Workflow.from_arrays(
        per_task["work"],
        edges,
        nbytes,
        ids=ids,
        cores=per_task["cores"],
        memory=per_task["memory"],
        name=name,
        family=family,
        source=f"generator:{family}",
    )


# ---------------------------------------------------------------------------------------------
# shapes


def chain(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    work: RangeLike = (1.0, 100.0),
    work_dist: str = "uniform",
    data: RangeLike = (1e6, 1e8),
    ccr: float | None = None,
    cores: RangeLike = 1,
    memory: RangeLike = 0.0,
    name: str | None = None,
) -> Workflow:
    """A chain ``t0 -> t1 -> ... -> t(n-1)``: ``n_tasks`` tasks, ``n_tasks - 1`` edges.

    Args:
        n_tasks: Number of tasks (>= 1).
        rng: Source of randomness.
        work, work_dist, data, ccr, cores, memory, name: See the module docstring.

    Raises:
        WorkloadError: on a bad argument.
    """
    sizes = _Sizes.check(work, work_dist, data, ccr, cores, memory)
    n = _count("n_tasks", n_tasks, 1)
    i = np.arange(n - 1)
    edges = np.column_stack([i, i + 1])
    return _finish("chain", name or f"chain-{n}", n, edges, rng, sizes)


def fan_in(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    work: RangeLike = (1.0, 100.0),
    work_dist: str = "uniform",
    data: RangeLike = (1e6, 1e8),
    ccr: float | None = None,
    cores: RangeLike = 1,
    memory: RangeLike = 0.0,
    name: str | None = None,
) -> Workflow:
    """``n_tasks - 1`` sources ``t0 .. t(n-2)`` feeding one sink ``t(n-1)``.

    Args:
        n_tasks: Number of tasks (>= 2).
        rng: Source of randomness.
        work, work_dist, data, ccr, cores, memory, name: See the module docstring.

    Raises:
        WorkloadError: on a bad argument.
    """
    sizes = _Sizes.check(work, work_dist, data, ccr, cores, memory)
    n = _count("n_tasks", n_tasks, 2)
    edges = np.column_stack([np.arange(n - 1), np.full(n - 1, n - 1)])
    return _finish("fan_in", name or f"fan_in-{n}", n, edges, rng, sizes)


def fan_out(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    work: RangeLike = (1.0, 100.0),
    work_dist: str = "uniform",
    data: RangeLike = (1e6, 1e8),
    ccr: float | None = None,
    cores: RangeLike = 1,
    memory: RangeLike = 0.0,
    name: str | None = None,
) -> Workflow:
    """One source ``t0`` feeding ``n_tasks - 1`` sinks ``t1 .. t(n-1)``.

    Args:
        n_tasks: Number of tasks (>= 2).
        rng: Source of randomness.
        work, work_dist, data, ccr, cores, memory, name: See the module docstring.

    Raises:
        WorkloadError: on a bad argument.
    """
    sizes = _Sizes.check(work, work_dist, data, ccr, cores, memory)
    n = _count("n_tasks", n_tasks, 2)
    edges = np.column_stack([np.zeros(n - 1, dtype=np.int64), np.arange(1, n)])
    return _finish("fan_out", name or f"fan_out-{n}", n, edges, rng, sizes)


def fork_join(
    n_tasks: int | None,
    rng: np.random.Generator,
    *,
    width: int | None = None,
    stages: int = 1,
    work: RangeLike = (1.0, 100.0),
    work_dist: str = "uniform",
    data: RangeLike = (1e6, 1e8),
    ccr: float | None = None,
    cores: RangeLike = 1,
    memory: RangeLike = 0.0,
    name: str | None = None,
) -> Workflow:
    """Fork-join (diamond) stages: source -> parallel tasks -> join, ``stages`` times in a row.

    Task order: the source, then per stage its parallel tasks followed by its join (which is the
    source of the next stage).

    Give either ``n_tasks`` or ``width``:

    * ``width``: every stage has ``width`` parallel tasks: ``1 + stages * (width + 1)`` tasks and
      ``2 * stages * width`` edges.
    * ``n_tasks``: exactly ``n_tasks`` tasks; the ``n_tasks - 1 - stages`` parallel tasks are
      spread evenly over the stages (the first stages get one more when it does not divide):
      ``2 * (n_tasks - 1 - stages)`` edges. Needs ``n_tasks >= 2 * stages + 1``.

    Args:
        n_tasks: Number of tasks, or None when ``width`` is given.
        rng: Source of randomness.
        width: Parallel tasks per stage (>= 1), or None when ``n_tasks`` is given.
        stages: Number of fork-join stages (>= 1).
        work, work_dist, data, ccr, cores, memory, name: See the module docstring.

    Raises:
        WorkloadError: on a bad argument (both or neither of ``n_tasks`` and ``width``, too few
            tasks for the stages).
    """
    sizes = _Sizes.check(work, work_dist, data, ccr, cores, memory)
    s = _count("stages", stages, 1)
    if (n_tasks is None) == (width is None):
        raise WorkloadError(
            f"give exactly one of n_tasks and width, got n_tasks={n_tasks!r}, width={width!r}",
            field="n_tasks",
        )
    if width is not None:
        widths = [_count("width", width, 1)] * s
    else:
        n = _count("n_tasks", n_tasks, 2 * s + 1)
        q, rem = divmod(n - 1 - s, s)
        widths = [q + (1 if k < rem else 0) for k in range(s)]
    edges: list[tuple[int, int]] = []
    fork = 0
    nxt = 1
    for w in widths:
        join = nxt + w
        for t in range(nxt, join):
            edges.append((fork, t))
            edges.append((t, join))
        fork, nxt = join, join + 1
    n = nxt
    arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return _finish("fork_join", name or f"fork_join-{n}x{s}", n, arr, rng, sizes)


def layered(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    width: int = 4,
    density: float = 0.3,
    jump: int = 2,
    work: RangeLike = (1.0, 100.0),
    work_dist: str = "uniform",
    data: RangeLike = (1e6, 1e8),
    ccr: float | None = None,
    cores: RangeLike = 1,
    memory: RangeLike = 0.0,
    name: str | None = None,
) -> Workflow:
    """A random layered DAG.

    The tasks are spread over ``L = max(1, round(n_tasks / width))`` layers: each layer gets one
    task, and the other ``n_tasks - L`` are dealt out uniformly at random (a multinomial draw),
    so a layer has ``width`` tasks on average. Every task of layer ``l >= 1`` gets one parent
    drawn uniformly from layer ``l - 1``, and every other task of the ``jump`` layers before it
    (layers ``l - jump .. l - 1``) becomes an extra parent with probability ``density``. So the
    entry tasks are exactly layer 0 and the depth of a task (``Workflow.levels``) is its layer.

    Task ids are ``"L{layer}_{k}"`` (``k``: position in the layer); tasks are numbered layer by
    layer.

    Args:
        n_tasks: Number of tasks (>= 1).
        rng: Source of randomness.
        width: Mean number of tasks per layer (>= 1).
        density: Probability of each extra edge, in [0, 1].
        jump: How many layers back an extra parent may be (>= 1).
        work, work_dist, data, ccr, cores, memory, name: See the module docstring.

    Raises:
        WorkloadError: on a bad argument.
    """
    sizes = _Sizes.check(work, work_dist, data, ccr, cores, memory)
    n = _count("n_tasks", n_tasks, 1)
    w = _count("width", width, 1)
    p = _fraction("density", density)
    j = _count("jump", jump, 1)
    n_layers = max(1, round(n / w))
    counts = 1 + rng.multinomial(n - n_layers, np.full(n_layers, 1.0 / n_layers))
    starts = [0, *np.cumsum(counts).tolist()]
    # The draws, layer by layer in the generator's order: one parent in the layer before for
    # each task, then a coin per (task, candidate parent). The edges they give are then found
    # for every layer at once: per layer, the half a dozen NumPy calls on a few dozen entries
    # cost more than the draws. Edge order as layer by layer: by layer, task, candidate.
    mains: list[NDArray[np.int64]] = []
    coins: list[NDArray[np.float64]] = []
    cand_starts: list[int] = []
    for layer in range(1, n_layers):
        lo, hi = starts[layer], starts[layer + 1]
        prev_lo = starts[layer - 1]
        cand_lo = starts[max(0, layer - j)]
        mains.append(rng.integers(0, lo - prev_lo, hi - lo))
        coins.append(rng.random((hi - lo, lo - cand_lo)))
        cand_starts.append(cand_lo)
    if n_layers > 1:
        n_l = n_layers - 1
        lo_a = np.array(starts[1:n_layers], dtype=np.int64)  # first task of each layer
        cand_a = np.array(cand_starts, dtype=np.int64)  # first candidate parent
        main_off = np.array(starts[: n_layers - 1], dtype=np.int64) - cand_a  # layer before
        size_a = counts[1:].astype(np.int64)
        n_cand = lo_a - cand_a
        block_end = np.cumsum(size_a * n_cand)  # [task, candidate] blocks, flattened
        block_start = block_end - size_a * n_cand
        extra = np.concatenate(coins, axis=None) < p
        layer_of = np.repeat(np.arange(n_l), size_a)  # layer of every task after layer 0
        row = np.arange(layer_of.size) - np.repeat(np.cumsum(size_a) - size_a, size_a)
        main = np.concatenate(mains) + main_off[layer_of]
        extra[block_start[layer_of] + row * n_cand[layer_of] + main] = True
        flat = np.flatnonzero(extra)
        in_layer = np.searchsorted(block_end, flat, side="right")
        child, parent = np.divmod(flat - block_start[in_layer], n_cand[in_layer])
        arr = np.empty((flat.size, 2), dtype=np.int64)
        arr[:, 0] = parent + cand_a[in_layer]
        arr[:, 1] = child + lo_a[in_layer]
    else:
        arr = np.zeros((0, 2), dtype=np.int64)
    ids = [f"L{a}_{b}" for a, c in enumerate(counts.tolist()) for b in range(c)]
    return _finish("layered", name or f"layered-{n}", n, arr, rng, sizes, ids=ids)


# ---------------------------------------------------------------------------------------------
# application-like generators

# CyberShake statistics, pooled over the Pegasus generator's CyberShake_30 and CyberShake_50 DAX
# files (Bharathi et al., WORKS 2008): (mean, standard deviation).
_CS_RUNTIME = {  # [s]
    "ExtractSGT": (121.6, 43.4),
    "SeismogramSynthesis": (43.26, 11.94),
    "PeakValCalcOkaya": (1.171, 0.299),
}
_CS_SGT = (2.0e10, 2.1e8)  # [bytes] each of the two SGT files an ExtractSGT reads
_CS_SUB_SGT = (2.298e8, 6.27e7)  # [bytes] each of the two sub-SGT files a synthesis job reads
_CS_VARIATION = (3.665e6, 1.074e6)  # [bytes] rupture variation file of a synthesis job
_CS_GRM = 24000.0  # [bytes] seismogram file
_CS_BSA = 216.0  # [bytes] peak-value file
_CS_ZIPSEIS_RATE = 228180.0  # [bytes/s] ZipSeis runtime = zip size / rate
_CS_ZIPPSA_RATE = 2782.0  # [bytes/s] ZipPSA runtime = zip size / rate
_CS_ZIP_FACTOR = 6.0  # compression: zip size = inputs / factor (times U(0.75, 1.25))
_CS_TASKS_PER_EXTRACT = 12.5  # (n_tasks - 2) / n_extract: 2/13, 4/22, 8/45 extract/synthesis


def _cybershake_split(n: int) -> tuple[int, int]:
    """``(n_extract, n_synthesis)`` with ``2 + n_extract + 2 n_synthesis == n``."""
    rem = n - 2
    target = rem / _CS_TASKS_PER_EXTRACT
    # Each ExtractSGT feeds at least one synthesis job (S >= E, i.e. E <= rem / 3), and
    # rem - E must be even.
    candidates = [e for e in range(1, rem // 3 + 1) if (rem - e) % 2 == 0]
    if not candidates:
        raise WorkloadError(
            f"CyberShake has 2 + E + 2*S tasks with S >= E >= 1 (5, 7, 8, 9, ... tasks); got {n}",
            field="n_tasks",
        )
    e = min(candidates, key=lambda c: (abs(c - target), -c))
    return e, (rem - e) // 2


def _deal(total: int, parts: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """``total`` split into ``parts`` counts >= 1, each within about +-25% of the mean."""
    weights = rng.uniform(0.75, 1.25, parts)
    share = (total - parts) * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    left = (total - parts) - int(counts.sum())
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[:left]] += 1
    return np.sort(counts + 1)


def cybershake(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    ccr: float | None = None,
    name: str | None = None,
) -> Workflow:
    """The CyberShake workflow (SCEC seismic hazard) with ``n_tasks`` tasks.

    Structure, as in the Pegasus generator's CyberShake DAX files: ``E`` ``ExtractSGT`` jobs
    (one per rupture variation set) each feed ``k_i`` ``SeismogramSynthesis`` jobs
    (``sum k_i = S``); each synthesis job feeds one ``PeakValCalcOkaya``; all synthesis jobs feed
    ``ZipSeis`` and all peak jobs feed ``ZipPSA``. So ``n_tasks = 2 + E + 2 S`` and there are
    ``4 S`` edges. ``E`` is the value of the right parity closest to ``(n_tasks - 2) / 12.5``,
    which reproduces the DAX files (30 tasks: E=2, S=13; 50: 4, 22; 100: 8, 45); the ``k_i``
    are within about 25% of ``S / E`` and sorted ascending. Every size except 6 is reachable
    from 5 on.

    Sizes and runtimes are lognormal with the mean and standard deviation of each job type pooled
    over ``CyberShake_30.xml`` and ``CyberShake_50.xml`` (ExtractSGT 121.6 +- 43.4 s,
    SeismogramSynthesis 43.3 +- 11.9 s, PeakValCalcOkaya 1.17 +- 0.30 s); an ExtractSGT -> synthesis
    edge carries two sub-SGT files (2 x 230 MB), synthesis -> peak the 24 kB seismogram.
    ExtractSGT reads two ~20 GB SGT files and a synthesis job a ~3.7 MB rupture variation from
    shared storage (``input_bytes``). The zip jobs' runtimes follow their output size
    (inputs / 6, +-25%) at 228180 B/s (ZipSeis) and 2782 B/s (ZipPSA), as in the generator.
    Unlike the DAX files, whose zip jobs declare no input files (so their incoming edges carry 0
    bytes), the edges into ``ZipSeis`` carry the 24 kB seismograms and those into ``ZipPSA``
    the 216-byte peak files. Task ids are ``"ID00000"``-style, types are the job names.

    Args:
        n_tasks: Number of tasks (5 or >= 7).
        rng: Source of randomness.
        ccr: If given, rescale the edge bytes to this CCR on the reference network (see the
            module docstring).
        name: Workflow name (default ``"cybershake-{n_tasks}"``).

    Raises:
        WorkloadError: on an unreachable size or a bad ``ccr``.
    """
    n = _count("n_tasks", n_tasks, 5)
    sizes = _Sizes.check(1.0, "uniform", 0.0, ccr, 1, 0.0)
    n_extract, n_synth = _cybershake_split(n)
    per_extract = _deal(n_synth, n_extract, rng)

    types = ["ZipPSA", "ZipSeis"]
    edges: list[tuple[int, int]] = []
    extract_of_synth: list[int] = []
    for k in per_extract.tolist():
        e = len(types)
        types.append("ExtractSGT")
        for _ in range(k):
            s = len(types)
            types += ["SeismogramSynthesis", "PeakValCalcOkaya"]
            edges += [(e, s), (s, s + 1), (s, 1), (s + 1, 0)]
            extract_of_synth.append(e)
    t = np.asarray(types)
    work = np.zeros(n)
    for job, (mean, sd) in _CS_RUNTIME.items():
        sel = t == job
        work[sel] = _lognormal(rng, mean, sd, int(sel.sum()))  # [s]
    synth = np.flatnonzero(t == "SeismogramSynthesis")
    extract = np.flatnonzero(t == "ExtractSGT")
    sub_sgt = 2 * _lognormal(rng, *_CS_SUB_SGT, n_synth)  # [bytes] per synthesis job
    variation = _lognormal(rng, *_CS_VARIATION, n_synth)  # [bytes]
    sgt = rng.normal(*_CS_SGT, n_extract)  # [bytes]
    input_bytes = np.zeros(n)
    input_bytes[synth] = variation
    # The generator lets an ExtractSGT also read its last synthesis job's variation file.
    last_synth = np.cumsum(per_extract) - 1
    input_bytes[extract] = 2 * sgt + variation[last_synth]
    zip_seis = n_synth * _CS_GRM / _CS_ZIP_FACTOR * rng.uniform(0.75, 1.25)  # [bytes]
    zip_psa = n_synth * _CS_BSA / _CS_ZIP_FACTOR * rng.uniform(0.75, 1.25)  # [bytes]
    work[1] = zip_seis / _CS_ZIPSEIS_RATE
    work[0] = zip_psa / _CS_ZIPPSA_RATE

    arr = np.asarray(edges, dtype=np.int64)
    nbytes = np.empty(len(arr))
    dst_type = t[arr[:, 1]]
    nbytes[dst_type == "SeismogramSynthesis"] = sub_sgt
    nbytes[dst_type == "PeakValCalcOkaya"] = _CS_GRM
    nbytes[dst_type == "ZipSeis"] = _CS_GRM
    nbytes[dst_type == "ZipPSA"] = _CS_BSA
    if sizes.ccr is not None:
        nbytes = scale_to_ccr(work, nbytes, sizes.ccr)
    return Workflow.from_arrays(
        work,
        arr,
        nbytes,
        ids=[f"ID{i:05d}" for i in range(n)],
        task_type=types,
        input_bytes=input_bytes,
        name=name or f"cybershake-{n}",
        family="cybershake",
        source="generator:cybershake",
    )


# Epigenomics statistics from the real WfInstances trace epigenomics-chameleon-ilmn-1seq-100k-001
# (Pegasus, Chameleon Cloud, 2020): runtime (mean, standard deviation) [s] per task type. The
# types seen once in that run (fastqSplit, maqIndex, pileup) and mapMerge (twice) get a 10% sd.
_EPI_RUNTIME = {
    "fastqSplit": (7.121, 0.712),
    "filterContams": (12.73, 8.691),
    "sol2sanger": (8.93, 1.767),
    "fast2bfq": (2.559, 0.5247),
    "map": (60.23, 7.151),
    "mapMerge": (4.277, 0.428),
    "maqIndex": (5.955, 0.596),
    "pileup": (23.11, 2.311),
}
_EPI_CHUNK = (1.504e7, 1.495e6)  # [bytes] a read chunk, fastqSplit -> filterContams
_EPI_FILTERED = 0.868  # filterContams -> sol2sanger bytes / chunk bytes
_EPI_SANGER = 0.735  # sol2sanger -> fast2bfq bytes / its input bytes
_EPI_BFQ = 0.2665  # fast2bfq -> map bytes / its input bytes
_EPI_MAP = 0.4296  # map -> mapMerge bytes / map input bytes
_EPI_MERGED = 0.969  # mapMerge output bytes / sum of its inputs
_EPI_REFERENCE = 4.723e7  # [bytes] chr21 reference read from shared storage by map and pileup
_EPI_AUX = 2.897e5  # [bytes] shared auxiliary file read by sol2sanger, fast2bfq, mapMerge, maqIndex
_GENOMICS49_LANES = (4, 3, 3)  # read chunks per sequencing lane


def genomics49(
    rng: np.random.Generator,
    *,
    ccr: float | None = None,
    name: str | None = None,
) -> Workflow:
    """A 49-task genomics pipeline, modelled on Pegasus Epigenomics.

    The WASS-RAG paper evaluates on "a 49-task genomics pipeline" without describing it. This
    is the Epigenomics structure of ``Epigenomics_46.xml`` (47 jobs: 2 sequencing lanes x 5
    read chunks) with three lanes split into 4, 3 and 3 chunks, which makes exactly 49 tasks:

    * per lane: ``fastqSplit`` (3 tasks), then per chunk the chain ``filterContams ->
      sol2sanger -> fast2bfq -> map`` (4 x 10 tasks), then a per-lane ``mapMerge`` (3);
    * a global ``mapMerge`` of the lanes, ``maqIndex`` and ``pileup`` (3).

    That is 55 edges, 3 entry tasks (the splits), 1 exit task (``pileup``) and 9 levels.

    Runtimes and file sizes come from a real execution rather than from the 2008 synthetic DAX
    files: the WfInstances trace ``epigenomics-chameleon-ilmn-1seq-100k-001`` (Pegasus on
    Chameleon Cloud). Runtimes are lognormal with that trace's per-type mean and standard
    deviation (``map`` 60.2 +- 7.2 s, ``filterContams`` 12.7 +- 8.7 s, ``pileup`` 23.1 s, ...;
    10% sd for the types seen at most twice), about 900 s of work in all. A chunk is
    15.0 +- 1.5 MB (lognormal); along a chunk's chain the bytes keep the trace's ratios
    (``filterContams`` 0.868, ``sol2sanger`` 0.735, ``fast2bfq`` 0.2665, ``map`` 0.4296 of
    its input); a merge outputs 0.969 of the sum of its inputs, and ``maqIndex`` passes the
    merged map on to ``pileup``. From shared storage (``input_bytes``), a lane's split reads
    the sum of its chunks, every ``map`` and the ``pileup`` read the 47.2 MB chr21 reference,
    and the ``sol2sanger``, ``fast2bfq``, ``mapMerge`` and ``maqIndex`` tasks a 290 kB file.

    Args:
        rng: Source of randomness.
        ccr: If given, rescale the edge bytes to this CCR on the reference network (see the
            module docstring).
        name: Workflow name (default ``"genomics49"``).

    Raises:
        WorkloadError: on a bad ``ccr``.
    """
    sizes = _Sizes.check(1.0, "uniform", 0.0, ccr, 1, 0.0)
    types: list[str] = []
    edges: list[tuple[int, int]] = []
    nbytes: list[float] = []
    input_bytes: list[float] = []
    chunk = _lognormal(rng, *_EPI_CHUNK, sum(_GENOMICS49_LANES))  # [bytes]

    def add(kind: str, parents: Sequence[tuple[int, float]] = (), external: float = 0.0) -> int:
        i = len(types)
        types.append(kind)
        input_bytes.append(external)
        for p, b in parents:
            edges.append((p, i))
            nbytes.append(b)
        return i

    lane_merges: list[tuple[int, float]] = []
    c = 0
    for k in _GENOMICS49_LANES:
        split = add("fastqSplit", external=float(chunk[c : c + k].sum()))
        maps: list[tuple[int, float]] = []
        for j in range(k):
            x = float(chunk[c + j])  # [bytes] along the chunk's chain
            f = add("filterContams", [(split, x)])
            x *= _EPI_FILTERED
            s = add("sol2sanger", [(f, x)], external=_EPI_AUX)
            x *= _EPI_SANGER
            q = add("fast2bfq", [(s, x)], external=_EPI_AUX)
            x *= _EPI_BFQ
            m = add("map", [(q, x)], external=_EPI_REFERENCE)
            maps.append((m, x * _EPI_MAP))
        merged = _EPI_MERGED * sum(b for _, b in maps)
        lane_merges.append((add("mapMerge", maps, external=_EPI_AUX), merged))
        c += k
    merged = _EPI_MERGED * sum(b for _, b in lane_merges)
    top = add("mapMerge", lane_merges, external=_EPI_AUX)
    index = add("maqIndex", [(top, merged)], external=_EPI_AUX)
    add("pileup", [(index, merged)], external=_EPI_REFERENCE)

    t = np.asarray(types)
    work = np.zeros(len(types))
    for kind, (mean, sd) in _EPI_RUNTIME.items():
        sel = t == kind
        work[sel] = _lognormal(rng, mean, sd, int(sel.sum()))  # [s]
    edge_bytes = np.asarray(nbytes)
    if sizes.ccr is not None:
        edge_bytes = scale_to_ccr(work, edge_bytes, sizes.ccr)
    return Workflow.from_arrays(
        work,
        np.asarray(edges, dtype=np.int64),
        edge_bytes,
        ids=[f"ID{i:05d}" for i in range(len(types))],
        task_type=types,
        input_bytes=input_bytes,
        name=name or "genomics49",
        family="genomics49",
        source="generator:genomics49",
    )


#: Generators by name (the names the workload sampler accepts).
GENERATORS: dict[str, Callable[..., Workflow]] = {
    "chain": chain,
    "fan_in": fan_in,
    "fan_out": fan_out,
    "fork_join": fork_join,
    "layered": layered,
    "cybershake": cybershake,
    "genomics49": genomics49,
}
