"""Optimal plans for small instances with OR-Tools CP-SAT.

The model (one per problem):

* a boolean ``x[t, n]`` per task and node it fits on, exactly one true per task;
* a start ``s[t]`` and end ``e[t] = s[t] + sum_n d[t, n] * x[t, n]`` per task, with an optional
  interval of size ``d[t, n]`` per (task, node), present when ``x[t, n]``;
* per node, a cumulative constraint on cores (a no-overlap constraint when no two of its tasks
  fit side by side) and, on nodes with finite memory, one on memory (whole bytes, as
  :meth:`~wass_env.sim.problem.Problem.memory_demand`); zero-length tasks take neither, as in
  the simulator;
* precedence ``s[c] >= e[p]`` for every edge, plus the transfer time (latency + bytes /
  bandwidth of the link) when parent and child are on different nodes;
* ``s[t] >=`` the stage-in time of the task's external inputs;
* objective: minimise the makespan ``max e[t]``.

Integer time. CP-SAT works on integers, so every duration (runtimes, transfers, stage-in) is
expressed in ticks of ``1 / ticks_per_second`` seconds and rounded *up*. By default the smallest
power of ten (from 1 tick per second) that makes every duration a whole number of ticks is used,
so integer-valued instances are modelled exactly; when no power of ten up to the one that gives
HEFT's makespan at least :data:`TARGET_TICKS` ticks is exact, that one is used and durations are
rounded up (``CPSATResult.rounded``).

From ticks back to the simulator. The solution's node assignment is turned into a real plan by
placing the tasks in the solver's start order with :class:`~wass_env.sim.plan.PlanBuilder`
(insertion policy). Every task then starts no later than the solver said: when it is placed, the
tasks placed before it started no later than in the solver's schedule and run no longer than their
rounded durations, so the solver's slot is still free. The reported makespan is that plan's, which
:func:`~wass_env.sim.execute.execute` reproduces exactly; it is at most the solver's objective.

Guarantees. The solver starts from HEFT's plan as a hint and an upper bound, and the result is
never worse than HEFT: if the solver's plan replays worse than HEFT's (possible only through
rounding), HEFT's plan is returned with status ``"HEFT"``.

Determinism. With ``workers=1`` (the default) and a fixed ``seed``, the search is deterministic
up to the time limit; a run that stops on ``time_limit`` stops after a wall-clock time, which may
cut the search at a different point on a busy machine. ``deterministic_time`` stops after a fixed
amount of CP-SAT's deterministic work instead, for exactly reproducible results. With
``workers > 1`` the parallel portfolio is used; ``interleave_search=True`` makes it deterministic.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from agents.heft import HEFTScheduler
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "MAX_NODES",
    "MAX_TASKS",
    "TARGET_TICKS",
    "CPSATResult",
    "CPSATScheduler",
    "InstanceTooLargeError",
]

#: Largest instance solved without ``force=True``.
MAX_TASKS = 40
MAX_NODES = 8
#: Resolution target when durations must be rounded: HEFT's makespan spans at least this many
#: ticks, so each rounding costs at most ``1 / TARGET_TICKS`` of it.
TARGET_TICKS = 1_000
#: A scaled duration within this relative distance of an integer counts as that integer.
_INT_RTOL = 1e-9


class InstanceTooLargeError(WassError):
    """Raised when an instance is beyond the exact solver's intended size."""


@dataclass(frozen=True, eq=False)
class CPSATResult:
    """Outcome of one CP-SAT solve.

    Attributes:
        plan: The returned plan (the solver's, or HEFT's when ``status == "HEFT"``).
        makespan: Makespan of ``plan`` in the simulator [s].
        status: ``"OPTIMAL"`` (proven optimal for the integer model), ``"FEASIBLE"`` (time limit
            reached with a solution), or ``"HEFT"`` (HEFT's plan returned: the solver found
            nothing better in time, or its plan replayed worse).
        solver_status: CP-SAT's own status name.
        objective: The solver's makespan in the integer model [s] (NaN without a solution).
        bound: The solver's best lower bound on the integer model's makespan [s].
        lower_bound: A lower bound on the true optimum [s]: the larger of the problem's
            critical-path/work bound and ``bound`` (minus the largest possible rounding gain,
            two ticks per task, when durations were rounded).
        heft_makespan: Makespan of HEFT's plan on the same problem [s].
        ticks_per_second: Time resolution of the integer model.
        rounded: Whether some duration was rounded up to a whole tick.
        wall_time: Solver wall time [s].
    """

    plan: Plan
    makespan: float
    status: str
    solver_status: str
    objective: float
    bound: float
    lower_bound: float
    heft_makespan: float
    ticks_per_second: float
    rounded: bool
    wall_time: float

    @property
    def optimal(self) -> bool:
        """True when ``makespan`` is proven optimal (solver optimal on an exact model)."""
        return self.status == "OPTIMAL" and not self.rounded

    @property
    def gap(self) -> float:
        """Relative distance to the lower bound: ``makespan / lower_bound - 1``."""
        return self.makespan / self.lower_bound - 1.0 if self.lower_bound > 0 else 0.0


def _ticks(x: NDArray[np.float64], scale: float) -> tuple[NDArray[np.int64], bool]:
    """Durations ``x`` [s] in whole ticks, rounded up; and whether any was rounded."""
    y = np.asarray(x, dtype=np.float64) * scale
    near = np.round(y)
    exact = np.abs(y - near) <= _INT_RTOL * np.maximum(np.abs(y), 1.0)
    out = np.where(exact, near, np.ceil(y)).astype(np.int64)
    return out, bool(not exact.all())


class _IntModel:
    """The problem's durations in ticks."""

    def __init__(self, problem: Problem, scale: float) -> None:
        self.scale = scale
        et = np.where(problem.fits, problem.exec_time, 0.0)
        self.dur, r1 = _ticks(et, scale)  # (n_tasks, n_nodes)
        self.stage, r2 = _ticks(problem.stage_in, scale)
        sec = _transfer_seconds(problem)
        self.comm, r3 = _ticks(sec, scale)  # (n_edges,) or (n_edges, n_nodes, n_nodes)
        if self.comm.ndim == 3:
            self.comm[:, np.arange(problem.n_nodes), np.arange(problem.n_nodes)] = 0
        self.mem, self.mem_cap, r4 = _memory_units(problem)
        self.rounded = r1 or r2 or r3 or r4

    def delay(self, edge: int, src: int, dst: int) -> int:
        """Transfer ticks of ``edge`` from node ``src`` to node ``dst``."""
        if src == dst:
            return 0
        if self.comm.ndim == 1:
            return int(self.comm[edge])
        return int(self.comm[edge, src, dst])


def _memory_units(problem: Problem) -> tuple[list[int], list[int | None], bool]:
    """Memory demands and node capacities in units small enough for CP-SAT's cumulative.

    Whole bytes divided by their greatest common divisor (exact: 300 GiB and 512 GiB become 75
    and 128); if the largest is still above ``2**31`` (its energy, demand x duration, must stay
    within 64 bits), demands are rounded up and capacities down to a coarser unit, which can only
    forbid schedules, and the model is flagged as rounded.
    """
    if not problem.memory_bound:
        return [0] * problem.n_tasks, [None] * problem.n_nodes, False
    dem = problem.memory_demand()
    caps = problem.memory_capacity()
    g = 0
    for v in [*dem, *(c for c in caps if c is not None)]:
        g = math.gcd(g, v)
    g = max(g, 1)
    dem = [d // g for d in dem]
    caps = [None if c is None else c // g for c in caps]
    top = max([*dem, *(c for c in caps if c is not None)])
    if top <= 2**31:
        return dem, caps, False
    unit = -(-top // 2**31)  # ceil: the largest becomes <= 2**31
    return (
        [-(-d // unit) for d in dem],
        [None if c is None else c // unit for c in caps],
        True,
    )


def _transfer_seconds(problem: Problem) -> NDArray[np.float64]:
    """Transfer time of every edge between distinct nodes [s].

    Shape ``(n_edges,)`` on a uniform network, else ``(n_edges, n_nodes, n_nodes)`` (the diagonal
    is meaningless).
    """
    wf, cl = problem.workflow, problem.cluster
    if cl.bandwidth is not None and cl.latency is not None:  # one link type everywhere
        return np.asarray(cl.latency + wf.edge_bytes / cl.bandwidth, dtype=np.float64)
    return (  # type: ignore[no-any-return]
        cl.latency_matrix[None, :, :]
        + wf.edge_bytes[:, None, None] / cl.bandwidth_matrix[None, :, :]
    )


def _quantities(problem: Problem) -> NDArray[np.float64]:
    """Every duration the integer model uses [s] (to choose the resolution)."""
    sec = _transfer_seconds(problem)
    if sec.ndim == 3:
        sec = sec[:, ~np.eye(problem.n_nodes, dtype=bool)]
    return np.concatenate([problem.exec_time[problem.fits], problem.stage_in, sec.reshape(-1)])


def _choose_scale(problem: Problem, heft_makespan: float) -> float:
    """Ticks per second: the smallest power of ten (>= 1) that is exact, else the target one."""
    q = _quantities(problem)
    q = q[q > 0]
    top = max(0, math.ceil(math.log10(TARGET_TICKS / heft_makespan))) if heft_makespan > 0 else 0
    for k in range(top + 1):
        scale = 10.0**k
        if q.size == 0 or not _ticks(q, scale)[1]:
            return scale
    return 10.0**top


def _list_schedule_ticks(
    problem: Problem, im: _IntModel, node: NDArray[np.int64], order: list[int]
) -> NDArray[np.int64]:
    """Integer start times of a fixed assignment, placed in ``order`` at the earliest slot.

    Used to turn HEFT's plan into a feasible solution of the integer model (its durations are
    rounded up, so HEFT's own times may not fit).
    """
    wf, cl = problem.workflow, problem.cluster
    cores = wf.cores
    start = np.zeros(problem.n_tasks, dtype=np.int64)
    end = np.zeros(problem.n_tasks, dtype=np.int64)
    placed: list[list[int]] = [[] for _ in range(cl.n_nodes)]
    mem, mem_cap = im.mem, im.mem_cap
    for t in order:
        n = int(node[t])
        ready = int(im.stage[t])
        for e in range(int(wf.parent_ptr[t]), int(wf.parent_ptr[t + 1])):
            p = int(wf.edge_src[e])
            ready = max(ready, int(end[p]) + im.delay(e, int(node[p]), n))
        d = int(im.dur[t, n])
        s = ready
        if d > 0:
            others = [u for u in placed[n] if end[u] > start[u]]
            cands = sorted({ready} | {int(end[u]) for u in others if end[u] > ready})
            cap = int(cl.cores[n]) - int(cores[t])
            mcap = mem_cap[n]
            mleft = None if mcap is None else mcap - mem[t]
            for s in cands:
                # Usage only rises at starts, so checking s and the starts inside [s, s+d) suffices.
                points = [s] + [int(start[u]) for u in others if s < start[u] < s + d]
                if all(
                    sum(int(cores[u]) for u in others if start[u] <= x < end[u]) <= cap
                    and (
                        mleft is None
                        or sum(mem[u] for u in others if start[u] <= x < end[u]) <= mleft
                    )
                    for x in points
                ):
                    break
        start[t] = s
        end[t] = s + d
        placed[n].append(t)
    return start


class CPSATScheduler(Scheduler):
    """Makespan-optimal plans for small instances (OR-Tools CP-SAT).

    Args:
        time_limit: Wall-clock limit of one solve [s].
        workers: CP-SAT search workers (1: a single deterministic search).
        seed: CP-SAT's ``random_seed`` (and the base class seed).
        deterministic_time: Optional limit in CP-SAT's deterministic time units; unlike
            ``time_limit`` it stops at the same point on every run.
        interleave_search: Deterministic interleaving of the ``workers`` (see CP-SAT's
            ``interleave_search``).
        ticks_per_second: Time resolution of the integer model (default: chosen per problem; see
            the module docstring).
        max_tasks: Largest number of tasks accepted without ``force``.
        max_nodes: Largest number of nodes accepted without ``force``.
        force: Solve bigger instances anyway (the solve may stop on the time limit far from the
            optimum).

    Attributes:
        last_result: The :class:`CPSATResult` of the latest solve.

    Step-wise use: the whole problem is solved once (on the first decision) and each task the
    environment presents goes to the node of the solver's plan.
    """

    name: ClassVar[str] = "cpsat"

    def __init__(
        self,
        time_limit: float = 10.0,
        workers: int = 1,
        seed: int | None = 0,
        *,
        deterministic_time: float | None = None,
        interleave_search: bool = False,
        ticks_per_second: float | None = None,
        max_tasks: int = MAX_TASKS,
        max_nodes: int = MAX_NODES,
        force: bool = False,
    ) -> None:
        if not time_limit > 0:
            raise ValueError(f"CPSATScheduler: time_limit must be > 0 [s], got {time_limit!r}")
        if workers < 1:
            raise ValueError(f"CPSATScheduler: workers must be >= 1, got {workers!r}")
        if deterministic_time is not None and not deterministic_time > 0:
            raise ValueError(
                f"CPSATScheduler: deterministic_time must be > 0, got {deterministic_time!r}"
            )
        if ticks_per_second is not None and not (
            np.isfinite(ticks_per_second) and ticks_per_second > 0
        ):
            raise ValueError(
                f"CPSATScheduler: ticks_per_second must be finite and > 0, got {ticks_per_second!r}"
            )
        self.time_limit = float(time_limit)
        self.workers = int(workers)
        self.solver_seed = 0 if seed is None else int(seed)
        self.deterministic_time = deterministic_time
        self.interleave_search = interleave_search
        self.ticks_per_second = ticks_per_second
        self.max_tasks = max_tasks
        self.max_nodes = max_nodes
        self.force = force
        self.last_result: CPSATResult | None = None
        super().__init__(seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed and forget the current problem's solution."""
        super().reset(seed)
        self._node: NDArray[np.int64] | None = None

    def begin(self, problem: Problem) -> None:
        """Solve the problem (step-wise use reads the nodes from the solution)."""
        self._node = self.solve(problem).plan.node

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The node the solver's plan gives ``task``."""
        self._ensure(builder.problem)
        assert self._node is not None
        return int(self._node[task])

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The solver's plan (never worse than HEFT's under the same insertion policy).

        Args:
            problem: The problem.
            insertion: Insertion policy used to build the plan. The guarantee that the plan is at
                least as good as the solver's schedule holds for ``insertion=True``; with the
                queue policy the comparison with HEFT still applies.
        """
        result = self.solve(problem, insertion=insertion)
        self._problem = problem
        self._node = result.plan.node
        return result.plan

    # ------------------------------------------------------------------ solving
    def check_size(self, problem: Problem) -> None:
        """Refuse instances beyond ``max_tasks`` x ``max_nodes`` unless ``force``.

        Raises:
            InstanceTooLargeError: naming the sizes and the limits.
        """
        if self.force:
            return
        if problem.n_tasks > self.max_tasks or problem.n_nodes > self.max_nodes:
            raise InstanceTooLargeError(
                f"CP-SAT is meant for small instances: workflow {problem.workflow.name!r} has "
                f"{problem.n_tasks} tasks on {problem.n_nodes} nodes, the limits are "
                f"{self.max_tasks} tasks and {self.max_nodes} nodes "
                "(pass force=True or raise max_tasks/max_nodes to solve it anyway)"
            )

    def solve(self, problem: Problem, *, insertion: bool = True) -> CPSATResult:
        """Solve ``problem`` and return the plan with the solver's status and bounds.

        Raises:
            InstanceTooLargeError: if the instance exceeds the size limits (see ``force``).
            ImportError: if OR-Tools is not installed.
        """
        self.check_size(problem)
        try:
            from ortools.sat.python import cp_model
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise ImportError("CPSATScheduler needs OR-Tools: pip install 'ortools>=9.10'") from exc

        heft = HEFTScheduler().plan(problem, insertion=insertion)
        heft_ms = heft.makespan
        scale = self.ticks_per_second or _choose_scale(problem, heft_ms)
        im = _IntModel(problem, scale)
        wf, cl = problem.workflow, problem.cluster
        n_t, n_n = wf.n_tasks, cl.n_nodes

        # HEFT's assignment, re-timed in the integer model: the hint and the horizon.
        heft_order = sorted(range(n_t), key=lambda t: (heft.start[t], heft.decision[t]))
        hint_start = _list_schedule_ticks(problem, im, heft.node, heft_order)
        hint_end = hint_start + im.dur[np.arange(n_t), heft.node]
        horizon = int(hint_end.max())

        m = cp_model.CpModel()
        start = [m.new_int_var(int(im.stage[t]), horizon, f"s{t}") for t in range(n_t)]
        end = [m.new_int_var(0, horizon, f"e{t}") for t in range(n_t)]
        x: dict[tuple[int, int], Any] = {}
        on_node: list[list[tuple[Any, int]]] = [[] for _ in range(n_n)]
        mem_on_node: list[list[tuple[Any, int]]] = [[] for _ in range(n_n)]
        mem, mem_cap = im.mem, im.mem_cap
        for t in range(n_t):
            nodes = np.flatnonzero(problem.fits[t]).tolist()
            for n in nodes:
                x[t, n] = m.new_bool_var(f"x{t}_{n}")
                d = int(im.dur[t, n])
                if d > 0:
                    iv = m.new_optional_fixed_size_interval_var(start[t], d, x[t, n], f"i{t}_{n}")
                    on_node[n].append((iv, int(wf.cores[t])))
                    if mem[t] > 0 and mem_cap[n] is not None:
                        mem_on_node[n].append((iv, mem[t]))
            m.add_exactly_one(x[t, n] for n in nodes)
            m.add(end[t] == start[t] + sum(int(im.dur[t, n]) * x[t, n] for n in nodes))
        for n in range(n_n):
            ivs = on_node[n]
            if not ivs:
                continue
            cap = int(cl.cores[n])
            if all(2 * c > cap for _, c in ivs):  # no two of them can overlap
                m.add_no_overlap(iv for iv, _ in ivs)
            else:
                m.add_cumulative([iv for iv, _ in ivs], [c for _, c in ivs], cap)
            mivs = mem_on_node[n]
            mcap = mem_cap[n]
            if mcap is not None and sum(d for _, d in mivs) > mcap:  # else it never binds
                m.add_cumulative([iv for iv, _ in mivs], [d for _, d in mivs], mcap)
        for e in range(wf.n_edges):
            p, c = int(wf.edge_src[e]), int(wf.edge_dst[e])
            m.add(start[c] >= end[p])
            pn = np.flatnonzero(problem.fits[p]).tolist()
            cn = np.flatnonzero(problem.fits[c]).tolist()
            if im.comm.ndim == 1:
                delay = int(im.comm[e])  # the same on every link
                if delay == 0:
                    continue
                for n in pn:
                    cond = [x[p, n]] + ([x[c, n].Not()] if (c, n) in x else [])
                    m.add(start[c] >= end[p] + delay).only_enforce_if(cond)
            else:
                for i in pn:
                    for j in cn:
                        d = im.delay(e, i, j)
                        if d > 0:
                            m.add(start[c] >= end[p] + d).only_enforce_if([x[p, i], x[c, j]])
        makespan = m.new_int_var(0, horizon, "makespan")
        m.add_max_equality(makespan, [end[t] for t in wf.exit_tasks.tolist()])
        m.minimize(makespan)
        for t in range(n_t):
            for n in np.flatnonzero(problem.fits[t]).tolist():
                m.add_hint(x[t, n], int(heft.node[t]) == n)
            m.add_hint(start[t], int(hint_start[t]))
            m.add_hint(end[t], int(hint_end[t]))
        m.add_hint(makespan, horizon)

        solver = cp_model.CpSolver()
        prm = solver.parameters
        prm.max_time_in_seconds = self.time_limit
        prm.num_workers = self.workers
        prm.random_seed = self.solver_seed
        prm.interleave_search = self.interleave_search
        if self.deterministic_time is not None:
            prm.max_deterministic_time = float(self.deterministic_time)
        t0 = time.perf_counter()
        status = solver.solve(m)
        wall = time.perf_counter() - t0
        status_name = solver.status_name(status)

        lb = problem.lower_bound()
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            objective = solver.objective_value / scale
            bound_ticks = float(solver.best_objective_bound)
            bound = bound_ticks / scale
            slack = 2 * n_t if im.rounded else 0  # [ticks] largest gain from rounding up
            lb = max(lb, (bound_ticks - slack) / scale)
            node = np.array(
                [
                    next(n for n in range(n_n) if (t, n) in x and solver.value(x[t, n]))
                    for t in range(n_t)
                ],
                dtype=np.int64,
            )
            s_val = [solver.value(start[t]) for t in range(n_t)]
            topo_pos = np.empty(n_t, dtype=np.int64)
            topo_pos[wf.topo_order] = np.arange(n_t)
            order = sorted(range(n_t), key=lambda t: (s_val[t], topo_pos[t]))
            plan = Plan.from_assignment(problem, node, np.asarray(order), insertion=insertion)
            tag = "OPTIMAL" if status == cp_model.OPTIMAL else "FEASIBLE"
            if plan.makespan > heft_ms * (1 + 1e-12):
                plan, tag = heft, "HEFT"
        else:
            objective = bound = float("nan")
            plan, tag = heft, "HEFT"
        result = CPSATResult(
            plan=plan,
            makespan=plan.makespan,
            status=tag,
            solver_status=status_name,
            objective=objective,
            bound=bound,
            lower_bound=lb,
            heft_makespan=heft_ms,
            ticks_per_second=scale,
            rounded=im.rounded,
            wall_time=wall,
        )
        self.last_result = result
        return result

    def __repr__(self) -> str:
        return f"CPSATScheduler(time_limit={self.time_limit}, workers={self.workers})"
