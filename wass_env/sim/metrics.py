"""Schedule metrics and the lower bound.

Definitions (all from one :class:`~wass_env.sim.plan.Schedule`):

* ``makespan``: finish time of the last task [s].
* ``mean_wait``: mean over tasks of ``start - release``, where ``release`` is when the task's last
  parent finished (0 for entry tasks): the time a task waits for its data and for cores [s].
* ``utilization``: core-seconds of work done / (makespan x total cores), in [0, 1].
* ``cross_node_bytes``: bytes on edges whose parent and child ran on different nodes.
* ``locality_hit_rate``: fraction of the bytes read from parents that were already local
  (1.0 when the workflow moves no bytes between tasks).
* ``slr``: schedule length ratio, makespan / critical path with every task on its fastest node
  and no communication.
* ``lower_bound``: max(critical path, total work / total capacity); see
  :meth:`~wass_env.sim.problem.Problem.lower_bound`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem

__all__ = ["ScheduleMetrics", "lower_bound", "schedule_metrics"]


@dataclass(frozen=True)
class ScheduleMetrics:
    """Metrics of one schedule (see the module docstring for definitions)."""

    makespan: float
    mean_wait: float
    utilization: float
    cross_node_bytes: float
    locality_hit_rate: float
    slr: float
    lower_bound: float
    ratio_to_lower_bound: float

    def as_dict(self) -> dict[str, float]:
        """The metrics as a plain dict."""
        return asdict(self)


def lower_bound(problem: Problem) -> float:
    """No schedule of ``problem`` finishes before this [s]."""
    return problem.lower_bound()


def schedule_metrics(schedule: Schedule) -> ScheduleMetrics:
    """Compute every metric of ``schedule``."""
    p = schedule.problem
    wf, cl = p.workflow, p.cluster
    makespan = schedule.makespan
    wait = float(np.mean(schedule.start - schedule.release))
    busy = float(((schedule.finish - schedule.start) * wf.cores).sum())
    util = busy / (makespan * cl.total_cores) if makespan > 0 else 0.0
    if wf.n_edges:
        remote = schedule.node[wf.edge_src] != schedule.node[wf.edge_dst]
        cross = float(wf.edge_bytes[remote].sum())
        total = float(wf.edge_bytes.sum())
        hit = 1.0 - cross / total if total > 0 else 1.0
    else:
        cross, hit = 0.0, 1.0
    cp = p.critical_path()
    lb = p.lower_bound()
    return ScheduleMetrics(
        makespan=makespan,
        mean_wait=wait,
        utilization=util,
        cross_node_bytes=cross,
        locality_hit_rate=hit,
        slr=makespan / cp if cp > 0 else 1.0,
        lower_bound=lb,
        ratio_to_lower_bound=makespan / lb if lb > 0 else 1.0,
    )
