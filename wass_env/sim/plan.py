"""Building a plan decision by decision.

A *plan* maps every task to a node and a start time. :class:`PlanBuilder` builds one incrementally,
as a list scheduler (or the environment) does: a task is *ready* once all its parents are placed;
placing a ready task on a node starts it at the earliest time when

* all its inputs have arrived there (parents' finish + transfer time, and the stage-in of its
  external inputs), and
* the cluster's ``dispatch_latency`` has passed since its last parent finished (0 by default),
  and
* the node has ``cores[task]`` cores free for the whole runtime (a zero-length task takes no
  cores: it only waits for its inputs and, under the queue policy, for its turn).

Two policies decide which slots count (``insertion``):

* ``insertion=False`` (queue): each node starts its tasks in the order they were placed, like a
  batch queue; a task never starts before one placed earlier on the same node.
* ``insertion=True`` (HEFT's insertion policy): a task may go into any idle gap of the node's core
  profile that is long enough, even before tasks placed earlier.

Per node the builder keeps a step profile of busy cores over time, so both policies handle
multi-core nodes and multi-core tasks; a node never runs more cores than it has. Queries are
vectorised over nodes; an exact gap search only runs on nodes where a gap can matter.
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.problem import Problem

__all__ = ["Plan", "PlanBuilder", "PlanError", "Schedule"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


#: Up to this many parents, ``data_ready`` loops over them in Python instead of using arrays.
_SCALAR_PARENTS = 8


class PlanError(ValueError):
    """Raised on an invalid placement (task not ready, node infeasible, plan incomplete)."""


@dataclass(frozen=True, eq=False)
class Schedule:
    """Where and when every task ran (or is planned to run).

    Attributes:
        problem: The problem it schedules.
        node: Node of every task.
        start: Start time of every task [s].
        finish: Finish time of every task [s].
        release: When every task's parents had all finished (0 for entry tasks) [s]; the time a
            workflow-agnostic batch system would see the task become eligible.
    """

    problem: Problem
    node: IntArray
    start: FloatArray
    finish: FloatArray
    release: FloatArray

    @property
    def makespan(self) -> float:
        """Finish time of the last task [s]."""
        return float(self.finish.max())

    def node_tasks(self, node: int) -> IntArray:
        """Tasks on ``node`` in start order (ties by task index)."""
        idx = np.flatnonzero(self.node == node)
        return idx[np.lexsort((idx, self.start[idx]))]


@dataclass(frozen=True, eq=False)
class Plan(Schedule):
    """A complete plan built by :class:`PlanBuilder` (or from an explicit assignment).

    Attributes:
        decision: Rank of each task in the placement order (ties in start time on one node are
            broken by it when the plan is executed).
        insertion: The insertion policy the plan was built with.
    """

    decision: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    insertion: bool = False

    def node_order(self, node: int) -> IntArray:
        """Tasks on ``node`` in the order execution starts them: by start, then decision."""
        idx = np.flatnonzero(self.node == node)
        return idx[np.lexsort((self.decision[idx], self.start[idx]))]

    @classmethod
    def from_assignment(
        cls,
        problem: Problem,
        node: NDArray[np.integer],
        order: NDArray[np.integer] | None = None,
        *,
        insertion: bool = True,
    ) -> Plan:
        """Plan that places tasks on the given nodes, at their earliest slots.

        Args:
            problem: The problem.
            node: Node of every task.
            order: Placement order (a topological order; default: the workflow's).
            insertion: Insertion policy used while placing.
        """
        b = PlanBuilder(problem, insertion=insertion)
        seq = problem.workflow.topo_order if order is None else np.asarray(order)
        for t in seq.tolist():
            b.assign(int(t), int(node[t]))
        return b.plan()


class _NodeProfile:
    """Busy cores of one node over time, as a step function.

    ``usage[k]`` cores are busy on ``[times[k], times[k+1])``; after ``times[-1]`` nothing runs.
    """

    __slots__ = ("cap", "times", "usage")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.times: list[float] = [0.0]
        self.usage: list[int] = [0]

    def add(self, s: float, e: float, c: int) -> None:
        if e <= s:
            return  # a zero-length task occupies nothing
        times, usage = self.times, self.usage
        i = bisect_right(times, s) - 1
        if times[i] != s:
            times.insert(i + 1, s)
            usage.insert(i + 1, usage[i])
            i += 1
        j = bisect_right(times, e) - 1
        if times[j] != e:
            times.insert(j + 1, e)
            usage.insert(j + 1, usage[j])
            j += 1
        for k in range(i, j):
            usage[k] += c

    def earliest_fit(self, r: float, d: float, c: int) -> float:
        """Earliest ``s >= r`` with at most ``cap - c`` cores busy on ``[s, s + d)``, ``d > 0``."""
        times, usage = self.times, self.usage
        limit = self.cap - c
        nseg = len(times)
        k = bisect_right(times, r) - 1
        s = r
        while True:
            end = s + d
            j = k
            ok = True
            while True:
                if usage[j] > limit:
                    ok = False
                    break
                j += 1
                if j >= nseg or times[j] >= end:
                    break
            if ok:
                return s
            k = j + 1
            while usage[k] > limit:  # the last segment has usage 0, so this stops
                k += 1
            s = times[k]

    def tails(self, cmax: int) -> list[float]:
        """``out[c]``: earliest time after which ``c`` cores stay free for good (c = 0..cmax)."""
        cap = self.cap
        out = [0.0] * (cmax + 1)
        for c in range(cap + 1, cmax + 1):
            out[c] = float("inf")
        times, usage = self.times, self.usage
        seen = 0  # highest usage over the segments after k
        for k in range(len(times) - 2, -1, -1):
            u = usage[k]
            if u > seen:
                # c cores are blocked on segment k iff u > cap - c, i.e. c > cap - u.
                for c in range(max(cap - u + 1, 1), min(cap - seen, cmax) + 1):
                    out[c] = times[k + 1]
                seen = u
                if seen >= cap:
                    break
        return out

    def copy(self) -> _NodeProfile:
        """An independent copy."""
        other = _NodeProfile.__new__(_NodeProfile)
        other.cap = self.cap
        other.times = self.times.copy()
        other.usage = self.usage.copy()
        return other

    def max_window(self) -> float:
        """Longest stretch before the last breakpoint with at least one core free."""
        times, usage = self.times, self.usage
        cap = self.cap
        best = 0.0
        open_at = -1.0
        for k in range(len(times) - 1):
            if usage[k] < cap:
                if open_at < 0:
                    open_at = times[k]
            elif open_at >= 0:
                best = max(best, times[k] - open_at)
                open_at = -1.0
        if open_at >= 0:
            best = max(best, times[-1] - open_at)
        return best


class PlanBuilder:
    """Builds a plan one placement at a time.

    Args:
        problem: The problem to plan.
        insertion: Use the insertion policy (see the module docstring).

    Attributes:
        node: Node of every placed task (-1 while unplaced).
        start, finish: Planned times of placed tasks [s] (NaN while unplaced).
        ready: Tasks whose parents are all placed and that are not placed yet.
        newly_ready: Tasks that became ready with the last placement (initially: entry tasks).
    """

    def __init__(self, problem: Problem, *, insertion: bool = False) -> None:
        self.problem = problem
        self.insertion = insertion
        wf, cl = problem.workflow, problem.cluster
        n_t, n_n = wf.n_tasks, cl.n_nodes
        self.node: IntArray = np.full(n_t, -1, dtype=np.int64)
        self.start: FloatArray = np.full(n_t, np.nan)
        self.finish: FloatArray = np.full(n_t, np.nan)
        self.decision: IntArray = np.full(n_t, -1, dtype=np.int64)
        self.n_placed = 0
        self._missing = wf.n_parents.tolist()
        self.ready: set[int] = {i for i, m in enumerate(self._missing) if m == 0}
        self.newly_ready: list[int] = sorted(self.ready)  # tasks the last placement made ready
        self._cores = wf.cores.tolist()
        self._n_nodes = n_n
        self._psrc = wf.edge_src
        st = problem.static_lists()
        self._pptr = st["parent_ptr"]
        self._stage = st["stage_in"]
        self._children = st["children"]
        self._partial_fit = st["partial_fit"]
        self._zero_len = st["zero_len"]
        self._delay = problem.edge_delay()
        self._dispatch = cl.dispatch_latency  # [s]
        self._no_fit = ~problem.fits
        self._cmax = int(wf.cores.max())
        self._profiles = [_NodeProfile(int(c)) for c in cl.cores.tolist()]
        # _tail[n, c]: earliest time after which c cores of node n stay free for good.
        self._tail = np.zeros((n_n, self._cmax + 1))
        self._tail[:, 1:][cl.cores[:, None] < np.arange(1, self._cmax + 1)[None, :]] = np.inf
        # _tail_top[c]: the largest finite _tail[:, c] (tails only grow as tasks are added).
        self._tail_top = [0.0] * (self._cmax + 1)
        self._window = np.zeros(n_n)  # longest gap with a core free, per node (insertion filter)
        # The filter's threshold: a task of runtime d can use a gap on nodes where d <= this
        # (the window is a difference of times, so allow for its rounding) [s].
        self._window_ok = self._window * (1 + 1e-9) + 1e-12
        self._last_start = np.zeros(n_n)  # queue policy: latest start on each node
        self.node_busy = np.zeros(n_n)  # core-seconds placed per node
        self.max_finish = 0.0
        # Scalar mirrors of node/finish and edge data for the per-parent loops of data_ready.
        self._node_l: list[int] = [-1] * n_t
        self._finish_l: list[float] = [np.nan] * n_t
        self._psrc_l: list[int] = st["edge_src"]
        self._delay_l: list[float] | None = None if self._delay is None else self._delay.tolist()
        self._query_task = -1
        self._query_est: FloatArray | None = None
        self._query_drt: FloatArray | None = None
        self._drt_floor: float | None = None  # min of the last data_ready result, when known

    def copy(self) -> PlanBuilder:
        """An independent copy of the partial plan (to try a continuation without changing this
        one: a rollout, a counterfactual branch). Static problem data is shared."""
        other = copy.copy(self)
        for name in (
            "node",
            "start",
            "finish",
            "decision",
            "_tail",
            "_window",
            "_window_ok",
            "_last_start",
            "_node_l",
            "_finish_l",
            "_tail_top",
        ):
            setattr(other, name, getattr(self, name).copy())
        other.node_busy = self.node_busy.copy()
        other._missing = self._missing.copy()
        other.ready = set(self.ready)
        other.newly_ready = list(self.newly_ready)
        other._profiles = [p.copy() for p in self._profiles]
        other._query_task = -1
        other._query_est = other._query_drt = None
        return other

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """True once every task is placed."""
        return self.n_placed == self.problem.n_tasks

    def free_from(self, cores: int) -> FloatArray:
        """Per node, the time after which ``cores`` cores stay free for good [s].

        ``inf`` on nodes with fewer cores. Under the queue policy a task placed now also waits
        for the node's latest start; :meth:`start_times` accounts for both.
        """
        return self._tail[:, cores]

    def release_time(self, task: int) -> float:
        """When all parents of ``task`` finish (0 for entry tasks) [s]."""
        lo, hi = self._pptr[task], self._pptr[task + 1]
        if lo == hi:
            return 0.0
        if hi - lo <= _SCALAR_PARENTS and not self._missing[task]:
            fin, src = self._finish_l, self._psrc_l
            best = fin[src[lo]]
            for e in range(lo + 1, hi):
                f = fin[src[e]]
                if f > best:
                    best = f
            return best
        return float(self.finish[self._psrc[lo:hi]].max())

    def data_ready(self, task: int) -> FloatArray:
        """When all inputs of ``task`` would be on each node: shape ``(n_nodes,)`` [s].

        Raises:
            PlanError: if a parent of ``task`` is not placed yet.
        """
        if task == self._query_task and self._query_drt is not None:
            return self._query_drt
        if self._missing[task] > 0:
            wf = self.problem.workflow
            missing = next(wf.ids[p] for p in wf.parents(task).tolist() if self.node[p] < 0)
            raise PlanError(f"task {wf.ids[task]!r} is not ready: parent {missing!r} is unplaced")
        stage = self._stage[task]
        lo, hi = self._pptr[task], self._pptr[task + 1]
        drt = np.empty(self._n_nodes)
        if lo == hi:
            drt.fill(stage)
            self._drt_floor = stage
            return drt
        delay = self._delay_l
        if delay is not None and hi - lo <= _SCALAR_PARENTS:
            # Same latency and bandwidth everywhere: every node but one sees the latest remote
            # arrival; only the node holding that parent sees something earlier. Few parents:
            # a scalar loop beats a dozen small array operations.
            src, fin, nod = self._psrc_l, self._finish_l, self._node_l
            top = -np.inf
            k = -1
            for e in range(lo, hi):
                p = src[e]
                r = fin[p] + delay[e]
                if r > top:  # the first maximum, like argmax
                    top, k = r, nod[p]
            best = -np.inf
            last = -np.inf  # the last parent's finish
            for e in range(lo, hi):
                p = src[e]
                f = fin[p]
                v = f if nod[p] == k else f + delay[e]
                if v > best:
                    best = v
                if f > last:
                    last = f
            if stage > top:
                top = stage
            if stage > best:
                best = stage
            if self._dispatch > 0:
                # The batch system releases a dependent task this long after its last parent.
                ready = last + self._dispatch
                if ready > top:
                    top = ready
                if ready > best:
                    best = ready
            drt.fill(top)
            drt[k] = best
            self._drt_floor = best  # best <= top
            return drt
        parents = self._psrc[lo:hi]
        pf = self.finish[parents]
        pn = self.node[parents]
        if self._delay is None:  # per-pair network: the general (parents x nodes) form
            drt = self.problem.arrival_times(slice(lo, hi), pn, pf).max(axis=0)
        else:
            remote = pf + self._delay[lo:hi]
            i = int(remote.argmax())
            drt.fill(float(remote[i]))
            k = int(pn[i])
            on = pn == k
            best = float(pf[on].max())
            if not on.all():
                best = max(best, float(remote[~on].max()))
            drt[k] = best
        if stage > 0:
            np.maximum(drt, stage, out=drt)
        if self._dispatch > 0:
            # The batch system releases a dependent task this long after its last parent ends.
            np.maximum(drt, float(pf.max()) + self._dispatch, out=drt)
        self._drt_floor = None
        return drt

    def start_times(self, task: int, ready: FloatArray) -> FloatArray:
        """Earliest start of ``task`` on every node, given when its inputs are there [s].

        Nodes the task does not fit on get ``inf``.
        """
        return self._start_times(task, ready, None)

    def _start_times(self, task: int, ready: FloatArray, floor: float | None) -> FloatArray:
        """:meth:`start_times`; ``floor``, when given, is ``ready.min()``."""
        c = self._cores[task]
        d = self.problem.exec_time[task]
        tail = self._tail[:, c]
        if self._zero_len[task]:
            tail = np.where(d > 0, tail, 0.0)  # a zero-length task takes no cores
        est = np.maximum(ready, tail)
        if self.insertion:
            # A gap before the tail can only help where the inputs arrive before the tail and the
            # node has a window with a free core at least as long as the task. (Infinite tails
            # are on nodes with too few cores, which the task does not fit on.)
            if floor is not None and floor >= self._tail_top[c]:
                pass  # no input arrives before any finite tail
            elif (early := ready < tail).any():
                early &= self._window_ok >= d
                if self._partial_fit[task]:
                    early &= self.problem.fits[task]
                profiles = self._profiles
                for n in np.flatnonzero(early).tolist():
                    est[n] = profiles[n].earliest_fit(float(ready[n]), float(d[n]), c)
        else:
            np.maximum(est, self._last_start, out=est)
        if self._partial_fit[task]:
            est[self._no_fit[task]] = np.inf
        return est

    def earliest_start(self, task: int) -> FloatArray:
        """Earliest start of ``task`` on every node (``inf`` where it does not fit) [s]."""
        if task != self._query_task or self._query_est is None:
            drt = self.data_ready(task)
            self._query_est = self._start_times(task, drt, self._drt_floor)
            self._query_drt = drt
            self._query_task = task
        return self._query_est

    def earliest_finish(self, task: int) -> FloatArray:
        """Earliest finish of ``task`` on every node (``inf`` where it does not fit) [s]."""
        return self.earliest_start(task) + self.problem.exec_time[task]

    # ------------------------------------------------------------------ placing
    def assign(self, task: int, node: int) -> tuple[float, float]:
        """Place ready ``task`` on ``node`` at its earliest start there.

        Returns:
            ``(start, finish)`` [s].

        Raises:
            PlanError: if the task is not ready or does not fit on the node.
        """
        p = self.problem
        if task not in self.ready:
            state = "already placed" if self.node[task] >= 0 else "not ready (parents unplaced)"
            raise PlanError(f"task {p.workflow.ids[task]!r} is {state}")
        if not 0 <= node < p.n_nodes or not p.fits[task, node]:
            raise PlanError(
                f"task {p.workflow.ids[task]!r} cannot run on node {node}: "
                + ("no such node" if not 0 <= node < p.n_nodes else "not enough cores or memory")
            )
        s = float(self.earliest_start(task)[node])
        f = s + float(p.exec_time[task, node])
        c = self._cores[task]
        self.node[task] = node
        self.start[task] = s
        self.finish[task] = f
        self._node_l[task] = node
        self._finish_l[task] = f
        self.decision[task] = self.n_placed
        self.n_placed += 1
        self.node_busy[node] += (f - s) * c
        if f > self.max_finish:
            self.max_finish = f
        prof = self._profiles[node]
        prof.add(s, f, c)
        tails = prof.tails(self._cmax)
        self._tail[node] = tails
        top = self._tail_top
        for k in range(1, self._cmax + 1):
            v = tails[k]
            if v > top[k] and v != np.inf:
                top[k] = v
        if self.insertion:
            w = prof.max_window()
            self._window[node] = w
            self._window_ok[node] = w * (1 + 1e-9) + 1e-12
        elif s > self._last_start[node]:
            self._last_start[node] = s
        self.ready.discard(task)
        newly: list[int] = []
        for ch in self._children[task]:
            self._missing[ch] -= 1
            if self._missing[ch] == 0:
                newly.append(ch)
        self.ready.update(newly)
        self.newly_ready = newly
        self._query_task = -1
        return s, f

    def plan(self) -> Plan:
        """The finished plan.

        Raises:
            PlanError: if some task is not placed yet.
        """
        if not self.done:
            left = self.problem.n_tasks - self.n_placed
            raise PlanError(f"plan incomplete: {left} of {self.problem.n_tasks} tasks unplaced")
        wf = self.problem.workflow
        release = np.zeros(wf.n_tasks)
        if wf.n_edges:
            np.maximum.at(release, wf.edge_dst, self.finish[wf.edge_src])
        return Plan(
            problem=self.problem,
            node=self.node.copy(),
            start=self.start.copy(),
            finish=self.finish.copy(),
            release=release,
            decision=self.decision.copy(),
            insertion=self.insertion,
        )
