"""Run plans in SimGrid, the simulation core under WRENCH, to cross-check :func:`execute`.

SimGrid's Python bindings are built for the system interpreter (Debian's ``python3-simgrid``
for ``/usr/bin/python3``), so the simulation runs in a subprocess of that interpreter: this
module turns plans into a JSON description, runs ``simgrid_runner.py`` on it and reads back
when every task started and finished. Many plans share one subprocess call (each in its own
network zone of one simulation), so a test suite pays the interpreter start-up once.

The translation, in SimGrid's terms:

* a node of speed ``s`` is a host of ``s * REFERENCE_SPEED`` flop/s with the node's cores; a
  task of ``c`` cores and runtime ``d`` on it runs ``c`` parallel executions of
  ``d * s * REFERENCE_SPEED`` flop each (one per core, SimGrid's model of a multi-threaded
  execution); a zero-length task runs nothing and takes no cores;
* a cross-node edge is a host-to-host transfer of its bytes, started when the parent finishes;
  a same-node edge is free; a task's external input is a transfer from a storage host;
* the network model is SimGrid's analytic CM02 model with TCP window and cross-traffic effects
  off (``DEFAULT_CONFIG``), so a transfer of ``b`` bytes over one link of bandwidth ``B`` and
  latency ``L`` takes exactly ``L + b / B`` seconds while it has the link to itself;
* the platform follows the cluster's network model (``topology=None``), or ``topology`` for
  every plan:

  - ``"pairs"`` (``"contention_free"``): one link per ordered node pair; by default the links
    are fat pipes (``sharing="fatpipe"``: no bandwidth sharing at all). ``sharing="shared"``
    makes concurrent transfers between the same two nodes share their link (a model
    ``wass_env.sim`` does not have, offered to measure it). External inputs come from the
    storage host over a fat pipe per node.
  - ``"star"`` (``"nic"``): each node and the storage host sit behind one split-duplex link
    (an up and a down direction of the cluster's bandwidth; storage's has
    ``storage_bandwidth``) to a switch; a transfer crosses up(src) and down(dst).
  - ``"shared_star"`` (``"shared_nic"``): the same with one shared link per host for both
    directions.

  On the stars, CM02 shares each link by max-min fairness between the flows that have paid
  their latency, weighting each flow by the inverse of its route's latency (TCP's RTT
  unfairness; ``network/weight-S`` is 0 under CM02). ``wass_env.sim`` shares without weights,
  so every route is given the same latency ``Lc = min(latency, storage_latency)`` (half of it
  on each link it crosses), and a transfer whose route should have more waits the difference
  before it is posted; a flow then takes bandwidth from ``start + latency`` on, as in
  :mod:`wass_env.sim.network`. SimGrid bounds a flow's rate by ``TCP-gamma / (2 x route
  latency)`` whenever that latency is positive; ``TCP-gamma`` 0 makes the bound 0, which its
  max-min solver reads as "no bound", so only the links limit a flow (as its route's smallest
  bandwidth would anyway).
* memory: a task also waits until its node has its memory free (whole bytes, as
  :meth:`~wass_env.sim.problem.Problem.memory_demand`); SimGrid has no memory model, so the
  runner keeps the count.

Bytes and flops are scaled by powers of two (exact in floating point): SimGrid takes integer
byte counts, so bytes are multiplied by ``2**k`` (and bandwidths with them) before rounding,
with ``k`` as large as keeps the largest count below ``2**52``, where SimGrid's doubles still
hold every integer. The rounding error is then below ``2**-(k+1)`` bytes: for the largest
transfer of a plan, a relative 1e-16.

Example::

    from wass_env.sim.reference import replay
    run = replay([plan_a, plan_b])
    run.schedules[0].makespan
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from wass_env.sim.plan import Plan, Schedule

__all__ = [
    "DEFAULT_CONFIG",
    "FULL_UPDATE",
    "REFERENCE_SPEED",
    "SIMGRID_PYTHON_ENV",
    "TOPOLOGIES",
    "ReferenceRun",
    "SimGridError",
    "SimGridUnavailable",
    "plan_case",
    "replay",
    "simgrid_available",
    "simgrid_python",
    "simgrid_version",
]

#: Flop/s of a speed-1.0 node; a power of two so that ``work * REF / (speed * REF)`` is exact.
REFERENCE_SPEED = 2.0**30
#: SimGrid options for the analytic ``latency + bytes / bandwidth`` network model. (The default
#: LV08 model multiplies latency by 13.01 and bandwidth by 0.97, and bounds the rate by a TCP
#: window over the round-trip time.)
DEFAULT_CONFIG: tuple[str, ...] = (
    "network/model:CM02",
    "network/TCP-gamma:0",
    "network/crosstraffic:0",
)
#: Added to ``config`` when a call has a star platform. SimGrid's default "Lazy" network
#: update re-solves only the links it marks as modified, and 3.32 (and later, as of this writing)
#: misses some: when two flows end their latency at the same instant and the first link of the
#: second is already marked (``System::update_modified_cnst_set_from_variable`` only follows the
#: first link of a variable), that flow's other link is never re-solved, so flows on it keep
#: their old rates and the link carries more than its bandwidth
#: (``tests/fidelity/test_hand_computed.py`` shows a case). "Full" re-solves every link at every
#: event.
FULL_UPDATE = "network/optim:Full"
#: Most tasks per subprocess call on star platforms (the Full update's cost per event grows
#: with the flows of the whole call; about 800 tasks was fastest for the fidelity suite).
STAR_TASKS_PER_CALL = 800
#: Environment variable naming the interpreter that has SimGrid's bindings.
SIMGRID_PYTHON_ENV = "WASS_SIMGRID_PYTHON"
_DEFAULT_PYTHON = "/usr/bin/python3"
_RUNNER = Path(__file__).with_name("simgrid_runner.py")
_INSTALL_HINT = (
    "install it with scripts/install_simgrid.sh (Debian: apt-get install python3-simgrid)"
)
_MAX_BYTE_SHIFT = 40  # bytes are scaled by at most 2**40 before rounding to integers ...
_BYTE_BITS = 52  # ... and so that the largest count stays below 2**52 (exact in a double)


class SimGridUnavailable(RuntimeError):
    """Raised when no interpreter with SimGrid's Python bindings is found."""


class SimGridError(RuntimeError):
    """Raised when the SimGrid subprocess fails."""


def simgrid_python() -> str:
    """The interpreter that runs SimGrid: ``$WASS_SIMGRID_PYTHON`` or ``/usr/bin/python3``."""
    return os.environ.get(SIMGRID_PYTHON_ENV, _DEFAULT_PYTHON)


@lru_cache(maxsize=4)
def _probe(python: str) -> str | None:
    try:
        res = subprocess.run(
            [python, "-I", "-c", "import simgrid; print(simgrid.simgrid_version)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    lines = res.stdout.strip().splitlines()
    return lines[-1] if lines else "unknown"


def simgrid_available(python: str | None = None) -> bool:
    """True when ``python`` (default :func:`simgrid_python`) can ``import simgrid``."""
    return _probe(python or simgrid_python()) is not None


def simgrid_version(python: str | None = None) -> str:
    """SimGrid's version string.

    Raises:
        SimGridUnavailable: if the interpreter cannot import ``simgrid``.
    """
    py = python or simgrid_python()
    version = _probe(py)
    if version is None:
        raise SimGridUnavailable(f"{py} cannot import simgrid; {_INSTALL_HINT}")
    return version


@dataclass(frozen=True, eq=False)
class ReferenceRun:
    """What one SimGrid subprocess call returned.

    Attributes:
        schedules: The realized schedule of every plan, in input order.
        import_s: Seconds to import ``simgrid`` in the subprocess (summed over calls).
        build_s: Seconds to build the platforms and actors in the subprocess (summed).
        run_s: Seconds SimGrid's engine ran, the simulation proper (summed).
        wall_s: Seconds of the subprocess calls from here: JSON, interpreter start-up,
            everything (summed over calls, also when they ran at once).
        clock: Simulated time when the last case finished [s].
    """

    schedules: tuple[Schedule, ...]
    import_s: float
    build_s: float
    run_s: float
    wall_s: float
    clock: float


def _byte_shift(max_bytes: float) -> int:
    """Power of two to scale bytes by before rounding them to integers."""
    if max_bytes <= 0:
        return _MAX_BYTE_SHIFT
    return max(0, min(_MAX_BYTE_SHIFT, _BYTE_BITS - math.frexp(max_bytes)[1]))


#: Platform of each network model (see the module docstring).
TOPOLOGIES: dict[str, str] = {
    "contention_free": "pairs",
    "nic": "star",
    "shared_nic": "shared_star",
}


def plan_case(
    plan: Plan,
    runtimes: ArrayLike | None = None,
    *,
    topology: str | None = None,
    sharing: str = "fatpipe",
) -> dict[str, Any]:
    """The runner's description of ``plan`` (platform and tasks, in SimGrid units).

    Args:
        plan: The plan to replay.
        runtimes: Actual runtime per task [s], as for :func:`~wass_env.sim.execute`
            (default: the problem's ``exec_time`` on the planned node).
        topology: Platform (default: the one of the cluster's network model,
            :data:`TOPOLOGIES`).
        sharing: Link policy of the ``"pairs"`` platform.

    Raises:
        ValueError: if ``runtimes`` has the wrong length or a negative or non-finite entry, on
            an unknown topology or sharing, or a star for a cluster with per-pair links.
    """
    p = plan.problem
    wf, cl = p.workflow, p.cluster
    n_t = wf.n_tasks
    node = plan.node
    speed = cl.speed[node]  # [speed factor] of each task's node
    if runtimes is not None:
        dur = np.asarray(runtimes, dtype=np.float64).reshape(-1)
        if dur.size != n_t or not np.all(np.isfinite(dur)) or np.any(dur < 0):
            raise ValueError(f"runtimes must be {n_t} finite values >= 0, got shape {dur.shape}")
        flops = dur * speed * REFERENCE_SPEED
    elif not p.explicit_costs and not cl.type_speedup:
        flops = wf.work * REFERENCE_SPEED  # exact: runs work / speed seconds
    else:
        flops = p.exec_time[np.arange(n_t), node] * speed * REFERENCE_SPEED
    max_bytes = max(
        float(wf.edge_bytes.max(initial=0.0)),
        float(wf.input_bytes.max(initial=0.0)),
    )
    scale = 2.0 ** _byte_shift(max_bytes)  # [SimGrid bytes per byte]
    topo = TOPOLOGIES[cl.network] if topology is None else topology
    if topo not in TOPOLOGIES.values():
        raise ValueError(f"topology must be one of {sorted(TOPOLOGIES.values())}, got {topo!r}")
    if sharing not in ("fatpipe", "shared"):
        raise ValueError(f"sharing must be 'fatpipe' or 'shared', got {sharing!r}")
    if topo == "pairs":
        net: dict[str, Any] = {
            "bandwidth": (cl.bandwidth_matrix * scale).tolist(),
            "latency": cl.latency_matrix.tolist(),
            "storage_latency": cl.storage_latency,
        }
    else:
        if not cl.scalar_network:
            raise ValueError(
                f"topology {topo!r} needs one bandwidth and latency for the whole network; "
                f"cluster {cl.name!r} has per-pair values"
            )
        assert cl.bandwidth is not None and cl.latency is not None
        lc = min(cl.latency, cl.storage_latency)  # [s] latency of every route
        net = {
            "bandwidth": cl.bandwidth * scale,
            "route_latency": lc,
            "node_delay": cl.latency - lc,  # [s] waited before a node-to-node transfer
            "storage_delay": cl.storage_latency - lc,  # [s] ... before a read from storage
        }
    mem_cap: list[int | None] = list(p.memory_capacity()) if p.memory_bound else [None] * cl.n_nodes
    return {
        "topology": topo,
        "sharing": sharing,
        "speed": (cl.speed * REFERENCE_SPEED).tolist(),
        "cores": cl.cores.tolist(),
        "memory": mem_cap,
        "task_memory": p.memory_demand() if p.memory_bound else [0] * n_t,
        **net,
        "storage_bandwidth": cl.storage_bandwidth * scale,
        "node": node.tolist(),
        "flops": flops.tolist(),
        "task_cores": wf.cores.tolist(),
        "input_bytes": np.rint(wf.input_bytes * scale).astype(np.int64).tolist(),
        "edge_src": wf.edge_src.tolist(),
        "edge_dst": wf.edge_dst.tolist(),
        "edge_bytes": np.rint(wf.edge_bytes * scale).astype(np.int64).tolist(),
        "order": [plan.node_order(n).tolist() for n in range(cl.n_nodes)],
    }


def replay(
    plans: Sequence[Plan],
    *,
    runtimes: Sequence[ArrayLike | None] | None = None,
    topology: str | None = None,
    sharing: str = "fatpipe",
    config: Sequence[str] = DEFAULT_CONFIG,
    python: str | None = None,
    timeout: float | None = None,
    max_tasks_per_call: int = 4000,
    workers: int = 1,
) -> ReferenceRun:
    """Execute ``plans`` in SimGrid (one subprocess call per ``max_tasks_per_call`` tasks).

    Args:
        plans: The plans; each replays on its own copy of its cluster.
        runtimes: Optional actual runtimes per plan (``None`` entries: planned runtimes).
        topology: ``None`` (default: each plan on the platform of its cluster's network model,
            :data:`TOPOLOGIES`), or ``"pairs"`` (a link per node pair), ``"star"`` (a
            split-duplex link per host to a switch) or ``"shared_star"`` (one shared link per
            host) for every plan.
        sharing: ``"fatpipe"`` (no bandwidth sharing) or ``"shared"`` (fair sharing per link);
            used by ``"pairs"``.
        config: SimGrid ``--cfg`` options (:data:`FULL_UPDATE` is added for star platforms
            unless ``config`` sets ``network/optim`` itself).
        python: Interpreter with SimGrid (default :func:`simgrid_python`).
        timeout: Seconds before a subprocess is killed (default: no limit).
        max_tasks_per_call: Plans are batched into subprocess calls of about this many tasks
            (a plan is never split). SimGrid runs every task as a thread, and its time per task
            grows with the number of threads in one simulation, so huge batches are slower.
            Plans on star platforms are batched apart, at most :data:`STAR_TASKS_PER_CALL`
            tasks per call.
        workers: Subprocess calls run at once (each is single-threaded in effect).

    Returns:
        The schedules SimGrid realized, with timings of the call.

    Raises:
        SimGridUnavailable: if the interpreter cannot import ``simgrid``.
        SimGridError: if the simulation fails.
        ValueError: on an unknown topology or sharing policy, a star topology for a cluster
            with per-pair bandwidths or latencies, or mismatched ``runtimes``.
    """
    if topology is not None and topology not in TOPOLOGIES.values():
        raise ValueError(
            f"topology must be None or one of {sorted(TOPOLOGIES.values())}, got {topology!r}"
        )
    if sharing not in ("fatpipe", "shared"):
        raise ValueError(f"sharing must be 'fatpipe' or 'shared', got {sharing!r}")
    for pl in plans:
        cl = pl.problem.cluster
        topo = TOPOLOGIES[cl.network] if topology is None else topology
        if topo != "pairs" and not cl.scalar_network:
            raise ValueError(
                f"topology {topo!r} needs one bandwidth and latency for the whole network; "
                f"cluster {cl.name!r} has per-pair values"
            )
    if max_tasks_per_call < 1 or workers < 1:
        raise ValueError(
            f"max_tasks_per_call and workers must be >= 1, got {max_tasks_per_call}, {workers}"
        )
    if runtimes is not None and len(runtimes) != len(plans):
        raise ValueError(f"runtimes has {len(runtimes)} entries for {len(plans)} plans")
    py = python or simgrid_python()
    if not simgrid_available(py):
        raise SimGridUnavailable(f"{py} cannot import simgrid; {_INSTALL_HINT}")
    rts = list(runtimes) if runtimes is not None else [None] * len(plans)
    # Plans on star platforms go to calls of their own, and smaller ones: the "Full" network
    # update they need visits every flow of the call at every event.
    batches: list[list[int]] = []
    for star in (False, True):
        limit = min(max_tasks_per_call, STAR_TASKS_PER_CALL) if star else max_tasks_per_call
        size = 0
        group: list[int] = []
        for i, pl in enumerate(plans):
            cl = pl.problem.cluster
            if ((TOPOLOGIES[cl.network] if topology is None else topology) != "pairs") != star:
                continue
            n_t = pl.problem.n_tasks
            if group and size + n_t > limit:
                batches.append(group)
                group, size = [], 0
            group.append(i)
            size += n_t
        if group:
            batches.append(group)

    def one(batch: list[int]) -> ReferenceRun:
        sub = [plans[i] for i in batch]
        return _replay_batch(sub, [rts[i] for i in batch], topology, sharing, config, py, timeout)

    if workers > 1 and len(batches) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(one, batches))
    else:
        parts = [one(b) for b in batches]
    by_plan: dict[int, Schedule] = {}
    totals = dict.fromkeys(("import_s", "build_s", "run_s", "wall_s", "clock"), 0.0)
    for batch, part in zip(batches, parts, strict=True):
        by_plan.update(zip(batch, part.schedules, strict=True))
        for key in ("import_s", "build_s", "run_s", "wall_s"):
            totals[key] += getattr(part, key)
        totals["clock"] = max(totals["clock"], part.clock)
    return ReferenceRun(schedules=tuple(by_plan[i] for i in range(len(plans))), **totals)


def _replay_batch(
    plans: Sequence[Plan],
    runtimes: Sequence[ArrayLike | None],
    topology: str | None,
    sharing: str,
    config: Sequence[str],
    py: str,
    timeout: float | None,
) -> ReferenceRun:
    """One subprocess call simulating ``plans`` together."""
    t0 = time.perf_counter()
    cases = [
        plan_case(pl, rt, topology=topology, sharing=sharing)
        for pl, rt in zip(plans, runtimes, strict=True)
    ]
    cfg = list(config)
    if any(c["topology"] != "pairs" for c in cases) and not any(
        c.startswith("network/optim:") for c in cfg
    ):
        cfg.append(FULL_UPDATE)
    spec = {"config": cfg, "cases": cases}
    with tempfile.TemporaryDirectory(prefix="wass-simgrid-") as tmp:
        src, dst = Path(tmp, "plans.json"), Path(tmp, "times.json")
        src.write_text(json.dumps(spec), encoding="utf-8")
        try:
            res = subprocess.run(
                [py, "-I", str(_RUNNER), str(src), str(dst)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SimGridError(
                f"SimGrid ran longer than {timeout} s on {len(plans)} plans"
            ) from None
        if res.returncode != 0 or not dst.exists():
            tail = "\n".join(res.stderr.strip().splitlines()[-15:])
            raise SimGridError(f"SimGrid runner failed (exit {res.returncode}):\n{tail}")
        out = json.loads(dst.read_text(encoding="utf-8"))
    schedules = []
    for pl, case in zip(plans, out["cases"], strict=True):
        wf = pl.problem.workflow
        finish = np.asarray(case["finish"], dtype=np.float64)
        release = np.zeros(wf.n_tasks)
        if wf.n_edges:
            np.maximum.at(release, wf.edge_dst, finish[wf.edge_src])
        schedules.append(
            Schedule(
                problem=pl.problem,
                node=pl.node.copy(),
                start=np.asarray(case["start"], dtype=np.float64),
                finish=finish,
                release=release,
            )
        )
    return ReferenceRun(
        schedules=tuple(schedules),
        import_s=float(out["import_s"]),
        build_s=float(out["build_s"]),
        run_s=float(out["run_s"]),
        wall_s=time.perf_counter() - t0,
        clock=float(out["clock"]),
    )
