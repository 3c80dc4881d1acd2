"""Workloads that exercise every part of the replay, and a measure of agreement.

:func:`stress_workflow` draws a random DAG that uses each feature the simulator models at once:
multi-core tasks, zero-length tasks, external inputs, edges of zero and of many bytes, several
entry and exit tasks. :func:`agreement` measures how far two schedules of the same plan are apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wass_env.sim.plan import Schedule
from wass_env.sim.workflow import Workflow

__all__ = ["TIME_FLOOR", "Agreement", "agreement", "stress_workflow"]

#: Below this many seconds, time differences are compared against it instead of the time itself.
TIME_FLOOR = 1e-6  # [s]


def stress_workflow(
    n_tasks: int,
    rng: np.random.Generator,
    *,
    max_parents: int = 3,
    entry_fraction: float = 0.05,
    zero_fraction: float = 0.05,
    input_fraction: float = 0.3,
    core_choices: tuple[int, ...] = (1, 1, 1, 2, 4),
    mean_bytes: float = 1e8,
    name: str = "stress",
) -> Workflow:
    """A random DAG mixing every feature of the cost model.

    Task ``j`` gets between 1 and ``max_parents`` parents among the tasks before it (drawn
    towards recent ones, so the DAG is deep as well as wide), or none with probability
    ``entry_fraction``; task 0 is always an entry task.

    Args:
        n_tasks: Number of tasks (>= 1).
        rng: Random generator (every draw comes from it).
        max_parents: Most parents per task.
        entry_fraction: Probability that a task other than the first has no parents.
        zero_fraction: Probability that a task has zero work.
        input_fraction: Probability that a task reads external input.
        core_choices: Core counts drawn uniformly per task.
        mean_bytes: Mean bytes per edge and per external input [bytes].
        name: Workflow name.

    Raises:
        ValueError: if ``n_tasks < 1`` or ``max_parents < 1``.
    """
    if n_tasks < 1 or max_parents < 1:
        raise ValueError(f"need n_tasks >= 1 and max_parents >= 1, got {n_tasks}, {max_parents}")
    edges: list[tuple[int, int]] = []
    for j in range(1, n_tasks):
        if rng.random() < entry_fraction:
            continue
        k = int(rng.integers(1, max_parents + 1))
        # Parents drawn geometrically back from j: mostly recent tasks, sometimes far ones.
        back = 1 + rng.geometric(p=min(1.0, 4.0 / j), size=k)
        parents = sorted({max(0, j - int(b)) for b in back})
        edges.extend((i, j) for i in parents)
    work = rng.lognormal(mean=1.0, sigma=1.0, size=n_tasks)  # [s] at speed 1.0
    work[rng.random(n_tasks) < zero_fraction] = 0.0
    cores = rng.choice(np.asarray(core_choices), size=n_tasks)
    edge_bytes = rng.exponential(mean_bytes, size=len(edges))  # [bytes]
    edge_bytes[rng.random(len(edges)) < 0.1] = 0.0
    input_bytes = np.where(
        rng.random(n_tasks) < input_fraction, rng.exponential(mean_bytes, size=n_tasks), 0.0
    )  # [bytes]
    return Workflow.from_arrays(
        work,
        np.asarray(edges, dtype=np.int64).reshape(-1, 2),
        edge_bytes,
        cores=cores,
        input_bytes=input_bytes,
        name=name,
        family="stress",
    )


@dataclass(frozen=True)
class Agreement:
    """How far a schedule is from a reference schedule of the same plan.

    Attributes:
        max_abs: Largest absolute difference of a start or finish time [s].
        max_rel: Largest relative difference of a start or finish time, each difference divided
            by ``max(|reference time|, TIME_FLOOR)``.
        makespan_rel: Relative difference of the makespans.
        worst_task: Task with the largest relative difference (-1 if none differ).
    """

    max_abs: float
    max_rel: float
    makespan_rel: float
    worst_task: int


def agreement(schedule: Schedule, reference: Schedule) -> Agreement:
    """Compare two schedules of the same plan task by task.

    Raises:
        ValueError: if the schedules differ in size or node assignment.
    """
    if schedule.start.shape != reference.start.shape or not np.array_equal(
        schedule.node, reference.node
    ):
        raise ValueError("schedules of different plans cannot be compared")
    times = np.concatenate([schedule.start, schedule.finish])
    ref = np.concatenate([reference.start, reference.finish])
    diff = np.abs(times - ref)
    rel = diff / np.maximum(np.abs(ref), TIME_FLOOR)
    n = schedule.start.size
    worst = int(np.argmax(rel)) % n if rel.size and rel.max() > 0 else -1
    ms_ref = reference.makespan
    return Agreement(
        max_abs=float(diff.max(initial=0.0)),
        max_rel=float(rel.max(initial=0.0)),
        makespan_rel=abs(schedule.makespan - ms_ref) / max(abs(ms_ref), TIME_FLOOR),
        worst_task=worst,
    )
