"""Plans of real schedulers replayed by ``execute`` and by SimGrid agree to a relative 1e-6.

Each case is a plan (a scheduler on a workflow and a cluster); SimGrid executes it with the
analytic CM02 network model on the platform of the cluster's network model: a contention-free
one (a fat pipe per node pair), or a star with a split-duplex (``"nic"``) or shared
(``"shared_nic"``) link per host, storage included (see
:mod:`wass_env.sim.reference.simgrid_replay`). Every task's start and finish time, and the
makespan, must agree with ``execute(plan)`` and, without runtime noise on a contention-free
network, with the plan itself. The cases of a sweep run together in a few batched SimGrid calls
made by a module-scoped fixture.

Cases: generated stress DAGs (multi-core and zero-length tasks, external inputs) with CCR 0.1,
1 and 10 on homogeneous and heterogeneous clusters; the same plans with noisy actual runtimes;
a cluster with per-pair bandwidths and latencies and per-type speedups; an explicit cost matrix;
and every workflow of the shared reference data (read by ``wass_env.workloads.load_workflow``;
skipped while it is missing). Under ``"nic"``: every reference workflow at the default bandwidth
and at 1/100 of it, stress DAGs at CCR 0.1, 1 and 10, with noise, and with a storage latency
unlike the nodes' (three schedulers each); a few ``"shared_nic"`` cases. The ``slow`` sweep adds
larger DAGs, 64-node clusters, more CCRs and schedulers, both NIC models throughout.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from wass_env.sim import Cluster, Plan, Problem, Schedule, Workflow, execute, preset, with_ccr
from wass_env.sim.cluster import DEFAULT_BANDWIDTH
from wass_env.sim.reference import agreement, replay, stress_workflow

RTOL = 1e-6  # relative agreement asked of every start and finish time
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

#: name -> (module, class, insertion policy of the plan)
SCHEDULERS: dict[str, tuple[str, str, bool]] = {
    "random": ("agents.baselines", "RandomScheduler", True),
    "random-queue": ("agents.baselines", "RandomScheduler", False),
    "slurm": ("agents.baselines", "SlurmScheduler", True),
    "heft": ("agents.heft", "HEFTScheduler", True),
    "heft-queue": ("agents.heft", "HEFTScheduler", False),
    "cpop": ("agents.heft", "CPOPScheduler", True),
    "peft": ("agents.heft", "PEFTScheduler", True),
    "minmin": ("agents.minmin", "MinMinScheduler", True),
    "locality": ("agents.heuristics", "DataLocalityScheduler", True),
    "heft-contention": ("agents.heft", "ContentionAwareHEFTScheduler", True),
}
DEFAULT_SCHEDULERS = ("random", "random-queue", "slurm", "heft")
NIC_SCHEDULERS = ("random", "slurm", "heft")


class Unavailable(Exception):
    """A case cannot be built here (a scheduler or the workflow loader is missing)."""


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _plan(name: str, problem: Problem, seed: int) -> Plan:
    module, cls, insertion = SCHEDULERS[name]
    try:
        scheduler = getattr(importlib.import_module(module), cls)(seed=seed)
    except (ImportError, AttributeError) as exc:
        raise Unavailable(f"scheduler {module}.{cls} is not available: {exc}") from None
    return scheduler.plan(problem, insertion=insertion)


def _load(path: Path) -> Workflow:
    try:
        loader = importlib.import_module("wass_env.workloads").load_workflow
    except (ImportError, AttributeError):
        raise Unavailable("wass_env.workloads.load_workflow is not available") from None
    wf: Workflow = loader(path)
    return wf


def _noisy(plan: Plan, seed: int) -> NDArray[np.float64]:
    """Actual runtimes: the planned ones times a lognormal factor (sigma 0.3)."""
    p = plan.problem
    planned = p.exec_time[np.arange(p.n_tasks), plan.node]
    return planned * np.random.default_rng(seed).lognormal(-0.045, 0.3, p.n_tasks)


@dataclass(frozen=True)
class Case:
    """A plan to replay: ``build(seed)`` returns the plan and optional actual runtimes."""

    id: str
    build: Callable[[int], tuple[Plan, NDArray[np.float64] | None]]


def _net_tag(network: str, bw_scale: float = 1.0) -> str:
    tag = "" if network == "contention_free" else f"/{network}"
    return tag + ("" if bw_scale == 1.0 else f"/bw{bw_scale:g}")


def _generated(
    n_tasks: int,
    cluster: str,
    ccr: float,
    sched: str,
    noise: bool = False,
    dag_seed: int = 0,
    network: str = "contention_free",
) -> Case:
    cid = (
        f"dag{n_tasks}.{dag_seed}/{cluster}/ccr{ccr:g}/{sched}"
        + ("/noise" if noise else "")
        + _net_tag(network)
    )

    def build(seed: int) -> tuple[Plan, NDArray[np.float64] | None]:
        cl = preset(cluster, network=network)
        rng = np.random.default_rng([n_tasks, dag_seed])  # one DAG per size and seed
        wf = with_ccr(stress_workflow(n_tasks, rng), cl, ccr)
        plan = _plan(sched, Problem(wf, cl), seed)
        return plan, (_noisy(plan, seed) if noise else None)

    return Case(cid, build)


def _irregular(sched: str, cost_matrix: bool) -> Case:
    """Six nodes with per-pair bandwidth and latency, per-type speedups, own storage link."""
    cid = f"irregular/{'cost-matrix' if cost_matrix else 'type-speedup'}/{sched}"

    def build(seed: int) -> tuple[Plan, NDArray[np.float64] | None]:
        rng = np.random.default_rng(7)
        n = 6
        cl = Cluster(
            rng.choice([0.5, 1.0, 2.0], n),
            rng.choice([4, 8], n),
            bandwidth=rng.uniform(1e8, 2e9, (n, n)),  # [bytes/s]
            latency=rng.uniform(1e-5, 1e-3, (n, n)),  # [s]
            type_speedup={"gpu": rng.uniform(0.5, 3.0, n)},
            storage_bandwidth=3e8,
            storage_latency=2e-3,
        )
        wf = stress_workflow(80, rng)
        wf = wf.replace(task_type=tuple(rng.choice(["gpu", "cpu"], wf.n_tasks).tolist()))
        costs = None
        if cost_matrix:
            costs = rng.uniform(0.0, 10.0, (wf.n_tasks, n))  # [s]
            costs[rng.random(costs.shape) < 0.05] = 0.0
        return _plan(sched, Problem(wf, cl, cost_matrix=costs), seed), None

    return Case(cid, build)


def _data(
    path: Path,
    cluster: str,
    sched: str,
    ccr: float | None = None,
    network: str = "contention_free",
    bw_scale: float = 1.0,
) -> Case:
    rel = path.relative_to(DATA_DIR).as_posix()
    cid = (
        f"data:{rel}/{cluster}/{sched}"
        + ("" if ccr is None else f"/ccr{ccr:g}")
        + _net_tag(network, bw_scale)
    )

    def build(seed: int) -> tuple[Plan, NDArray[np.float64] | None]:
        cl = preset(cluster, network=network, bandwidth=DEFAULT_BANDWIDTH * bw_scale)
        wf = _load(path)
        if ccr is not None:
            wf = with_ccr(wf, cl, ccr)
        return _plan(sched, Problem(wf, cl), seed), None

    return Case(cid, build)


def _storage_apart(sched: str, network: str) -> Case:
    """het16 with a slower, farther shared storage (its own latency and bandwidth)."""
    cid = f"storage-apart/{sched}{_net_tag(network)}"

    def build(seed: int) -> tuple[Plan, NDArray[np.float64] | None]:
        base = preset("het16")
        cl = Cluster(
            base.speed,
            base.cores,
            base.memory,
            node_type=base.node_type,
            storage_bandwidth=4e8,  # [bytes/s]
            storage_latency=2e-3,  # [s], 20 x the nodes' latency
            network=network,
        )
        wf = with_ccr(stress_workflow(60, np.random.default_rng(11)), cl, 1.0)
        return _plan(sched, Problem(wf, cl), seed), None

    return Case(cid, build)


def _data_files(legacy: bool) -> list[Path]:
    if not DATA_DIR.is_dir():
        return []
    files = sorted(DATA_DIR.glob("wfinstances/*.json")) + sorted(DATA_DIR.glob("dax/*.xml"))
    if legacy:
        files += sorted(DATA_DIR.glob("wfinstances/legacy/*/*.json"))
    return files


def default_cases() -> list[Case]:
    """About 190 plans and 9,500 tasks: 10 s or so of SimGrid."""
    cases = [
        _generated(60, cl, ccr, s)
        for cl in ("hom16", "het16")
        for ccr in (0.1, 1.0, 10.0)
        for s in DEFAULT_SCHEDULERS
    ]
    cases += [
        _generated(60, cl, 1.0, s, noise=True)
        for cl in ("hom16", "het16")
        for s in DEFAULT_SCHEDULERS
    ]
    cases += [_irregular(s, cm) for cm in (False, True) for s in ("random", "slurm", "heft")]
    cases += [
        _data(f, cl, s)
        for f in _data_files(legacy=False)
        for cl in ("hom16", "het16")
        for s in ("random", "slurm", "heft")
    ]
    return cases


def nic_cases() -> list[Case]:
    """About 145 plans and 8,600 tasks under NIC contention: 13 s or so of SimGrid."""
    # Every reference workflow at the default bandwidth and at 1/100.
    cases = [
        _data(f, "het16", s, network="nic", bw_scale=scale)
        for f in _data_files(legacy=False)
        for scale in (1.0, 0.01)
        for s in ("random", "slurm", "heft")
    ]
    cases += [
        _generated(60, "het16", ccr, s, network="nic")
        for ccr in (0.1, 1.0, 10.0)
        for s in ("random", "slurm", "heft", "heft-contention")
    ]
    cases += [_generated(60, "hom16", 1.0, s, noise=True, network="nic") for s in NIC_SCHEDULERS]
    cases += [_generated(60, "het16", 1.0, s, network="shared_nic") for s in NIC_SCHEDULERS]
    cases += [_storage_apart(s, net) for net in ("nic", "shared_nic") for s in NIC_SCHEDULERS]
    return cases


def slow_cases() -> list[Case]:
    """The wide sweep: bigger DAGs, 64 nodes, five CCRs, every scheduler, data at three CCRs."""
    ccrs = (0.1, 0.3, 1.0, 3.0, 10.0)
    cases = [
        _generated(200, cl, ccr, s, dag_seed=seed)
        for cl in ("hom16", "het16", "hom64", "het64")
        for ccr in ccrs
        for s in SCHEDULERS
        for seed in (1, 2)
    ]
    cases += [
        _generated(200, cl, 1.0, s, noise=True, dag_seed=1)
        for cl in ("hom64", "het64")
        for s in SCHEDULERS
    ]
    cases += [
        _data(f, cl, s, ccr)
        for f in _data_files(legacy=True)
        for cl in ("hom16", "het64")
        for s in ("random", "slurm", "heft")
        for ccr in (0.1, 1.0, 10.0)
    ]
    for net in ("nic", "shared_nic"):
        cases += [
            _generated(200, cl, ccr, s, dag_seed=1, network=net)
            for cl in ("hom16", "het16", "het64")
            for ccr in ccrs
            for s in SCHEDULERS
        ]
        cases += [
            _generated(200, cl, 1.0, s, noise=True, dag_seed=1, network=net)
            for cl in ("hom64", "het64")
            for s in SCHEDULERS
        ]
        cases += [
            _data(f, cl, s, ccr, network=net, bw_scale=scale)
            for f in _data_files(legacy=True)
            for cl in ("hom16", "het64")
            for s in ("random", "slurm", "heft", "heft-contention")
            for ccr in (None, 10.0)
            for scale in (1.0, 0.01)
        ]
    return cases


Outcome = tuple[Plan, NDArray[np.float64] | None, Schedule, Schedule] | str


def _run(cases: Iterable[Case], python: str) -> dict[str, Outcome]:
    """Build every case, replay them all in SimGrid at once; a skip reason for the others."""
    out: dict[str, Outcome] = {}
    built: list[tuple[str, Plan, NDArray[np.float64] | None]] = []
    for case in cases:
        try:
            plan, runtimes = case.build(_seed(case.id))
        except Unavailable as exc:
            out[case.id] = str(exc)
            continue
        built.append((case.id, plan, runtimes))
    if built:
        run = replay(
            [b[1] for b in built],
            runtimes=[b[2] for b in built],
            python=python,
            max_tasks_per_call=2500,
            workers=2,
        )
        for (cid, plan, runtimes), ref in zip(built, run.schedules, strict=True):
            out[cid] = (plan, runtimes, execute(plan, runtimes=runtimes), ref)
    return out


def _check(outcome: Outcome) -> None:
    if isinstance(outcome, str):
        pytest.skip(outcome)
    plan, runtimes, ours, ref = outcome
    a = agreement(ours, ref)
    assert a.max_rel <= RTOL, (
        f"execute and SimGrid differ by {a.max_rel:.3g} (relative), {a.max_abs:.3g} s, worst "
        f"task {plan.problem.workflow.ids[a.worst_task]!r}: execute start/finish "
        f"{ours.start[a.worst_task]!r}/{ours.finish[a.worst_task]!r}, SimGrid "
        f"{ref.start[a.worst_task]!r}/{ref.finish[a.worst_task]!r}"
    )
    assert a.makespan_rel <= RTOL
    if runtimes is None and not plan.problem.cluster.contention:
        # Without noise or contention the plan itself is what both simulators must realize.
        assert agreement(plan, ref).max_rel <= RTOL


DEFAULT = default_cases()
NIC = nic_cases()
SLOW = slow_cases()
# Under ``pytest -n 2 --dist loadgroup`` each group's tests run on one worker, so each sweep's
# SimGrid fixture is computed once (and the two sweeps run side by side).
PAIRS_GROUP = pytest.mark.xdist_group("simgrid-pairs")
STAR_GROUP = pytest.mark.xdist_group("simgrid-star")


@pytest.fixture(scope="module")
def default_outcomes(simgrid: str) -> dict[str, Outcome]:
    return _run(DEFAULT, simgrid)


@pytest.fixture(scope="module")
def nic_outcomes(simgrid: str) -> dict[str, Outcome]:
    return _run(NIC, simgrid)


@pytest.fixture(scope="module")
def slow_outcomes(simgrid: str) -> dict[str, Outcome]:
    return _run(SLOW, simgrid)


@PAIRS_GROUP
@pytest.mark.parametrize("case_id", [c.id for c in DEFAULT])
def test_simgrid_agrees_with_execute(case_id: str, default_outcomes: dict[str, Any]) -> None:
    _check(default_outcomes[case_id])


@STAR_GROUP
@pytest.mark.parametrize("case_id", [c.id for c in NIC])
def test_simgrid_agrees_with_execute_nic(case_id: str, nic_outcomes: dict[str, Any]) -> None:
    _check(nic_outcomes[case_id])


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [c.id for c in SLOW])
def test_simgrid_agrees_with_execute_sweep(case_id: str, slow_outcomes: dict[str, Any]) -> None:
    _check(slow_outcomes[case_id])


@PAIRS_GROUP
def test_default_cases_exercise_the_cost_model(default_outcomes: dict[str, Any]) -> None:
    """The comparison is not vacuous: transfers, stage-in and core waits shape the schedules."""
    plans = [o[0] for o in default_outcomes.values() if not isinstance(o, str)]
    assert len(plans) >= 30
    cross = stage = waits = 0
    for plan in plans:
        wf = plan.problem.workflow
        cross += int(np.sum(plan.node[wf.edge_src] != plan.node[wf.edge_dst]))
        stage += int(np.sum(wf.input_bytes > 0))
        # Tasks that started after all their inputs had arrived waited for cores or their turn.
        ready = plan.problem.stage_in.copy()  # [s] when the task's inputs are on its node
        for e, (s, d) in enumerate(zip(wf.edge_src.tolist(), wf.edge_dst.tolist(), strict=True)):
            arrival = plan.finish[s] + plan.problem.comm_time(e, plan.node[s], plan.node[d])
            ready[d] = max(ready[d], arrival)
        waits += int(np.sum(plan.start > ready + 1e-9))
    assert cross > 1000
    assert stage > 100
    assert waits > 10


@STAR_GROUP
def test_nic_cases_exercise_contention(nic_outcomes: dict[str, Any]) -> None:
    """The NIC cases are not vacuous: sharing links delays most of them, some by far."""
    slowdown = []
    for outcome in nic_outcomes.values():
        if isinstance(outcome, str):
            continue
        plan, runtimes, _, ref = outcome
        if plan.problem.cluster.contention and runtimes is None:
            slowdown.append(ref.makespan / plan.makespan)  # plan: contention-free estimate
    # The real workflows' cases need ../shared/data; without it only the 21 generated ones run.
    assert len(slowdown) >= (100 if DATA_DIR.is_dir() else 20)
    assert float(np.mean(np.asarray(slowdown) > 1.0 + 1e-6)) > 0.5
    assert max(slowdown) > 2.0
