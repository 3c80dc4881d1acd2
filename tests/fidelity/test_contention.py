"""Bandwidth sharing only delays a fixed plan.

A contention-free plan replayed by SimGrid with shared links, per node pair
(``sharing="shared"``, a model ``wass_env.sim`` does not have) or per node on a star network
(``topology="star"``: the ``"nic"`` model, which ``tests/fidelity/test_schedulers.py`` checks
``execute`` against), must not start or finish any task earlier than without sharing, and with
CCR 1 some plans finish measurably later. (``scripts/bench_simgrid.py --contention`` prints the
size of the effect.)
"""

from __future__ import annotations

import numpy as np

from wass_env.sim import Problem, preset, with_ccr
from wass_env.sim.reference import replay, stress_workflow

SLACK = 1e-9  # relative rounding allowance [-]


def test_bandwidth_sharing_only_delays_a_fixed_plan(simgrid: str) -> None:
    from agents.baselines import RandomScheduler, SlurmScheduler

    cl = preset("het16")
    wf = with_ccr(stress_workflow(60, np.random.default_rng(3)), cl, 1.0)
    problem = Problem(wf, cl)
    plans = [
        RandomScheduler(seed=1).plan(problem),
        RandomScheduler(seed=2).plan(problem, insertion=False),
        SlurmScheduler().plan(problem),
    ]
    free = replay(plans, python=simgrid).schedules
    variants = {
        "pair-shared": replay(plans, sharing="shared", python=simgrid).schedules,
        "star": replay(plans, topology="star", python=simgrid).schedules,
    }
    for name, scheds in variants.items():
        ratios = []
        for f, s in zip(free, scheds, strict=True):
            floor = f.finish.max() * SLACK  # [s]
            assert np.all(s.start >= f.start - floor), name
            assert np.all(s.finish >= f.finish - floor), name
            ratios.append(s.makespan / f.makespan)
        assert max(ratios) > 1.01, f"{name}: sharing changed no makespan by 1% ({ratios})"
