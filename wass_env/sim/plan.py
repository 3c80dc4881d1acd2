"""Building a plan decision by decision.

A *plan* maps every task to a node and a start time. :class:`PlanBuilder` builds one incrementally,
as a list scheduler (or the environment) does: a task is *ready* once all its parents are placed;
placing a ready task on a node starts it at the earliest time when

* all its inputs have arrived there (parents' finish + transfer time, and the stage-in of its
  external inputs), and
* the cluster's ``dispatch_latency`` has passed since its last parent finished (0 by default),
  and
* the node has ``cores[task]`` cores and ``memory[task]`` bytes free for the whole runtime (a
  zero-length task takes neither: it only waits for its inputs and, under the queue policy, for
  its turn).

Two policies decide which slots count (``insertion``):

* ``insertion=False`` (queue): each node starts its tasks in the order they were placed, like a
  batch queue; a task never starts before one placed earlier on the same node.
* ``insertion=True`` (HEFT's insertion policy): a task may go into any idle gap of the node's core
  profile that is long enough, even before tasks placed earlier.

Per node the builder keeps a step profile of busy cores (and memory) over time, so both policies
handle multi-core nodes and multi-core tasks; a node never runs more cores, nor holds more memory,
than it has. Queries are vectorised over nodes; an exact gap search only runs on nodes where a gap
can matter. Each placement updates the profile in time proportional to the segments the task
spans, so the cost of a step does not grow with the length of the plan.

Transfer estimates. By default a transfer is estimated as on a contention-free network
(``latency + bytes / bandwidth``), the HEFT literature's model, whatever the cluster's network
model. With ``contention=True`` on a cluster whose network is ``"nic"`` or ``"shared_nic"``,
the builder also keeps, per network link, when the transfers planned so far stop using it, and
estimates a new transfer as served after them at full bandwidth: it starts when its data is
ready plus the latency, its source's up link and its destination's down link (under
``"shared_nic"``: the two nodes' links) are all free, and occupies both for ``bytes /
bandwidth``. A task's inputs are taken in the order their parents finish; reads of external
input from storage queue on storage's link the same way. Links serve transfers in placement
order, without insertion. This is an estimate (the executor shares links by max-min fairness
instead), so a plan built this way is not reproduced exactly by :func:`execute`; it lets a
scheduler see that moving data off a busy node costs more than its bytes alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.problem import Problem

__all__ = ["Plan", "PlanBuilder", "PlanError", "Schedule"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_INF = float("inf")


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
    """Busy cores (and memory) of one node over time, as a step function.

    ``usage[k]`` cores (and ``mem[k]`` bytes, once a task with memory has been placed on a node
    of finite memory) are busy on ``[times[k], times[k+1])``; after ``times[-1]`` nothing runs.

    Besides the step function, :meth:`add` keeps up to date, in time proportional to the
    segments the new task spans (never the node's whole history), what the planner's vectorised
    queries read at every step:

    * ``tail[c]``: the earliest time after which ``c`` cores stay free for good (``c = 0 ..
      cmax``). Usage only grows, so each entry only grows: the new task's segments update it.
    * the *full runs* (merged intervals where every core is busy) and the lengths of the gaps
      between them, in a lazily pruned max-heap, so the longest stretch with a core free
      (:meth:`max_window`) is the heap's top. Full runs also only grow.
    * for memory, the Pareto frontier of ``(segment end, memory in use)`` points: the earliest
      time after which ``m`` bytes stay free for good (:meth:`mem_tail`) is one bisection.
    """

    __slots__ = (
        "_fe",
        "_fs",
        "_gap_heap",
        "_gaps",
        "_mneg",
        "_mt",
        "_open",
        "cap",
        "mem",
        "mem_cap",
        "tail",
        "times",
        "usage",
    )

    def __init__(self, cap: int, cmax: int, mem_cap: int | None = None) -> None:
        self.cap = cap
        self.times: list[float] = [0.0]
        self.usage: list[int] = [0]
        self.tail: list[float] = [0.0 if c <= cap else _INF for c in range(cmax + 1)]
        self._fs: list[float] = []  # starts of the full runs, increasing [s]
        self._fe: list[float] = []  # their ends [s]
        self._gaps: dict[float, float] = {}  # gap between two full runs: start -> length [s]
        self._gap_heap: list[tuple[float, float]] = []  # (-length, start), stale entries kept
        self._open = 0.0  # start of the last gap, which never closes [s]
        self.mem_cap = mem_cap  # [bytes], None: unlimited (not tracked)
        self.mem: list[int] | None = None  # allocated with the first task that holds memory
        self._mt: list[float] = []  # memory frontier: segment ends, increasing [s]
        self._mneg: list[int] = []  # minus the memory in use there, increasing [bytes]

    def copy(self) -> _NodeProfile:
        """An independent copy."""
        other = _NodeProfile.__new__(_NodeProfile)
        other.cap = self.cap
        other.times = self.times.copy()
        other.usage = self.usage.copy()
        other.tail = self.tail.copy()
        other._fs = self._fs.copy()
        other._fe = self._fe.copy()
        other._gaps = self._gaps.copy()
        other._gap_heap = self._gap_heap.copy()
        other._open = self._open
        other.mem_cap = self.mem_cap
        other.mem = None if self.mem is None else self.mem.copy()
        other._mt = self._mt.copy()
        other._mneg = self._mneg.copy()
        return other

    # ------------------------------------------------------------------ updates
    def add(self, s: float, e: float, c: int, m: int = 0) -> None:
        """Occupy ``c`` cores and ``m`` bytes on ``[s, e)`` (the caller checked they fit)."""
        if e <= s:
            return  # a zero-length task occupies nothing
        times, usage = self.times, self.usage
        mem = self.mem
        if m > 0 and self.mem_cap is not None and mem is None:
            mem = self.mem = [0] * len(times)
        elif self.mem_cap is None:
            m = 0
        i = bisect_right(times, s) - 1
        if times[i] != s:
            times.insert(i + 1, s)
            usage.insert(i + 1, usage[i])
            if mem is not None:
                mem.insert(i + 1, mem[i])
            i += 1
        j = bisect_right(times, e) - 1
        if times[j] != e:
            times.insert(j + 1, e)
            usage.insert(j + 1, usage[j])
            if mem is not None:
                mem.insert(j + 1, mem[j])
            j += 1
        cap = self.cap
        run_start = -1  # first segment of the current run of newly full segments
        for k in range(i, j):
            u = usage[k] + c
            usage[k] = u
            if u >= cap > u - c:
                if run_start < 0:
                    run_start = k
            elif run_start >= 0:
                self._fill(times[run_start], times[k])
                run_start = -1
        if run_start >= 0:
            self._fill(times[run_start], times[j])
        # Tails: the last blocking segment of each core count lies in the new task's span or
        # after it (already counted), so scanning the span backwards updates every entry.
        tail = self.tail
        hi = min(cap, len(tail) - 1)
        for k in range(j - 1, i - 1, -1):
            lo = cap - usage[k] + 1
            if lo < 1:
                lo = 1
            if lo <= hi:
                end = times[k + 1]
                for cc in range(lo, hi + 1):
                    if tail[cc] < end:
                        tail[cc] = end
                hi = lo - 1
                if hi < 1:
                    break
        if m > 0 and mem is not None:
            for k in range(i, j):
                mem[k] += m
                self._frontier_add(times[k + 1], mem[k])

    def _fill(self, a: float, b: float) -> None:
        """Record that every core is busy on ``[a, b)`` (which was not full before)."""
        fs, fe, gaps = self._fs, self._fe, self._gaps
        idx = bisect_right(fs, a)
        left = fe[idx - 1] if idx else 0.0  # start of the gap [a, b) lies in
        closed = idx < len(fs)
        if closed:
            gaps.pop(left, None)
        if a > left:
            self._set_gap(left, a - left)
        merge_left = idx > 0 and fe[idx - 1] == a
        if closed:
            right = fs[idx]
            if b < right:
                self._set_gap(b, right - b)
            merge_right = b == right
        else:
            self._open = b
            merge_right = False
        if merge_left and merge_right:
            fe[idx - 1] = fe[idx]
            del fs[idx], fe[idx]
        elif merge_left:
            fe[idx - 1] = b
        elif merge_right:
            fs[idx] = a
        else:
            fs.insert(idx, a)
            fe.insert(idx, b)

    def _set_gap(self, start: float, length: float) -> None:
        self._gaps[start] = length
        heappush(self._gap_heap, (-length, start))

    def _frontier_add(self, t: float, u: int) -> None:
        """Add the point (segment end ``t``, memory in use ``u``) to the memory frontier."""
        mt, mneg = self._mt, self._mneg
        pos = bisect_left(mt, t)
        if pos < len(mt) and -mneg[pos] >= u:
            return  # dominated: as much memory in use until at least as late
        hi = pos + 1 if pos < len(mt) and mt[pos] == t else pos
        lo = bisect_left(mneg, -u, 0, hi)  # points up to t with at most u in use
        del mt[lo:hi], mneg[lo:hi]
        mt.insert(lo, t)
        mneg.insert(lo, -u)

    # ------------------------------------------------------------------ queries
    def mem_peak(self) -> int:
        """Most memory in use at any time [bytes]."""
        return -self._mneg[0] if self._mneg else 0

    def mem_tail(self, m: int) -> float:
        """Earliest time after which ``m`` bytes stay free for good [s]."""
        if self.mem_cap is None:
            return 0.0
        count = bisect_left(self._mneg, m - self.mem_cap)  # points with more than cap - m in use
        return self._mt[count - 1] if count else 0.0

    def earliest_fit(self, r: float, d: float, c: int, m: int = 0) -> float:
        """Earliest ``s >= r`` with at most ``cap - c`` cores (and ``mem_cap - m`` bytes) busy
        on ``[s, s + d)``, ``d > 0``."""
        mem = self.mem
        if m > 0 and mem is not None and self.mem_cap is not None:
            return self._earliest_fit_mem(r, d, c, m, mem, self.mem_cap)
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

    def _earliest_fit_mem(
        self, r: float, d: float, c: int, m: int, mem: list[int], mem_cap: int
    ) -> float:
        times, usage = self.times, self.usage
        limit = self.cap - c
        mlimit = mem_cap - m
        nseg = len(times)
        k = bisect_right(times, r) - 1
        s = r
        while True:
            end = s + d
            j = k
            ok = True
            while True:
                if usage[j] > limit or mem[j] > mlimit:
                    ok = False
                    break
                j += 1
                if j >= nseg or times[j] >= end:
                    break
            if ok:
                return s
            k = j + 1
            while usage[k] > limit or mem[k] > mlimit:  # the last segment is empty
                k += 1
            s = times[k]

    def max_window(self) -> float:
        """Longest stretch before the last breakpoint with at least one core free."""
        heap, gaps = self._gap_heap, self._gaps
        while heap and gaps.get(heap[0][1]) != -heap[0][0]:
            heappop(heap)
        best = -heap[0][0] if heap else 0.0
        last = self.times[-1] - self._open
        return last if last > best else best


class PlanBuilder:
    """Builds a plan one placement at a time.

    Args:
        problem: The problem to plan.
        insertion: Use the insertion policy (see the module docstring).
        contention: Estimate transfers with the NIC links' planned load (see the module
            docstring); no effect on a contention-free cluster.

    Attributes:
        node: Node of every placed task (-1 while unplaced).
        start, finish: Planned times of placed tasks [s] (NaN while unplaced).
        ready: Tasks whose parents are all placed and that are not placed yet.
        newly_ready: Tasks that became ready with the last placement (initially: entry tasks).
    """

    def __init__(
        self, problem: Problem, *, insertion: bool = False, contention: bool = False
    ) -> None:
        self.problem = problem
        self.insertion = insertion
        wf, cl = problem.workflow, problem.cluster
        self.contention = bool(contention) and cl.contention
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
        # Memory is only tracked where it can limit concurrency (see Problem.memory_bound).
        self._mem = problem.memory_demand() if problem.memory_bound else [0] * n_t
        caps = problem.memory_capacity() if problem.memory_bound else [None] * n_n
        self._profiles = [
            _NodeProfile(int(c), self._cmax, cap)
            for c, cap in zip(cl.cores.tolist(), caps, strict=True)
        ]
        # Copy on write: after copy() the two builders share their node profiles, and
        # _own[n] is False in both until one of them places a task on node n and so makes
        # its own copy of that profile (a trial placement touches a few nodes of many).
        self._own = [True] * n_n
        # _mem_slack[n]: bytes node n keeps free at all times so far (inf: unlimited); a task
        # needing no more than that can ignore memory there.
        self._mem_slack = np.array([np.inf if cap is None else float(cap) for cap in caps])
        if self.contention:
            # When each link stops carrying the transfers planned so far [s]. nic: up(i) = i,
            # down(i) = n + i, storage's up link 2n; shared_nic: node i's link i, storage's n.
            n_links = 2 * n_n + 1 if cl.network == "nic" else n_n + 1
            self._link_free = [0.0] * n_links
        # _tail[n, c]: earliest time after which c cores of node n stay free for good.
        self._tail = np.zeros((n_n, self._cmax + 1))
        self._tail[:, 1:][cl.cores[:, None] < np.arange(1, self._cmax + 1)[None, :]] = np.inf
        # _tail_top[c]: the largest finite _tail[:, c] (tails only grow as tasks are added).
        self._tail_top = [0.0] * (self._cmax + 1)
        # Per-step lookups without NumPy indexing (which costs more than the work on 16 nodes):
        # the column views of _tail (it is updated in place), and whether task t fits node n as
        # byte t * n_nodes + n.
        self._tail_cols = [self._tail[:, c] for c in range(self._cmax + 1)]
        self._fits_b = np.ascontiguousarray(problem.fits).tobytes()
        self._n_tasks = n_t
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

    def __getstate__(self) -> dict[str, Any]:
        # Views do not survive pickling (they would become copies of _tail): remake them.
        state = self.__dict__.copy()
        del state["_tail_cols"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tail_cols = [self._tail[:, c] for c in range(self._cmax + 1)]

    def copy(self) -> PlanBuilder:
        """An independent copy of the partial plan (to try a continuation without changing this
        one: a rollout, a counterfactual branch). Static problem data is shared."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)  # copy.copy's result, without its protocol
        for name in (
            "node",
            "start",
            "finish",
            "decision",
            "_tail",
            "_window",
            "_window_ok",
            "_last_start",
            "_mem_slack",
            "_node_l",
            "_finish_l",
            "_tail_top",
        ):
            setattr(other, name, getattr(self, name).copy())
        other._tail_cols = [other._tail[:, c] for c in range(self._cmax + 1)]
        other.node_busy = self.node_busy.copy()
        other._missing = self._missing.copy()
        other.ready = set(self.ready)
        other.newly_ready = list(self.newly_ready)
        other._profiles = list(self._profiles)  # shared until written (assign)
        self._own = [False] * self._n_nodes
        other._own = [False] * self._n_nodes
        if self.contention:
            other._link_free = self._link_free.copy()
        # The last query (earliest starts of one task) holds for the copy too: same state.
        return other

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """True once every task is placed."""
        return self.n_placed == self._n_tasks

    def free_from(self, cores: int, memory: int = 0) -> FloatArray:
        """Per node, the time after which ``cores`` cores (and ``memory`` bytes) stay free for
        good [s].

        ``inf`` on nodes with fewer cores. Under the queue policy a task placed now also waits
        for the node's latest start; :meth:`start_times` accounts for both.
        """
        tail = self._tail_cols[cores]
        if memory > 0:
            tight = np.flatnonzero(memory > self._mem_slack).tolist()
            if tight:
                tail = tail.copy()
                for n in tight:
                    tail[n] = max(tail[n], self._profiles[n].mem_tail(memory))
        return tail

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
        if self.contention:
            self._drt_floor = None
            return np.array([self._contended_ready(task, n) for n in range(self._n_nodes)])
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
            top, k, best, last = self._arrivals(lo, hi, delay)
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

    def _arrivals(self, lo: int, hi: int, delay: list[float]) -> tuple[float, int, float, float]:
        """Inputs over parent edges ``lo:hi`` from placed parents on a uniform network (delay
        per edge between distinct nodes): ``(top, k, best, last)``. ``top`` is the latest
        remote arrival and ``k`` the node of its parent (the first such edge; -1 when no parent
        is placed): every node but ``k`` has all these inputs at ``top``, node ``k`` at
        ``best``. ``last`` is the latest parent finish."""
        src, fin, nod = self._psrc_l, self._finish_l, self._node_l
        top = -_INF
        k = -1
        for e in range(lo, hi):
            p = src[e]
            if nod[p] >= 0:
                r = fin[p] + delay[e]
                if r > top:  # the first maximum, like argmax
                    top, k = r, nod[p]
        best = -_INF
        last = -_INF
        for e in range(lo, hi):
            p = src[e]
            if nod[p] >= 0:
                f = fin[p]
                v = f if nod[p] == k else f + delay[e]
                if v > best:
                    best = v
                if f > last:
                    last = f
        return top, k, best, last

    def placed_parents_ready(self, task: int) -> FloatArray | None:
        """When the inputs from ``task``'s placed parents (and its stage-in) would be on each
        node, the unplaced parents left out [s]; ``None`` where the scalar form does not apply
        (a per-pair network, or more than a few parents: then compute it from
        :meth:`Problem.arrival_times`). The same values as that general form: on a uniform
        network every node but the one holding the latest remote arrival's parent sees that
        arrival."""
        delay = self._delay_l
        lo, hi = self._pptr[task], self._pptr[task + 1]
        if delay is None or hi - lo > _SCALAR_PARENTS:
            return None
        top, k, best, _ = self._arrivals(lo, hi, delay)
        stage = self._stage[task]
        ready = np.empty(self._n_nodes)
        if k < 0:
            ready.fill(stage)
            return ready
        ready.fill(top if top > stage else stage)
        ready[k] = best if best > stage else stage
        return ready

    def start_times(self, task: int, ready: FloatArray) -> FloatArray:
        """Earliest start of ``task`` on every node, given when its inputs are there [s].

        Nodes the task does not fit on get ``inf``.
        """
        return self._start_times(task, ready, None)

    def _start_times(self, task: int, ready: FloatArray, floor: float | None) -> FloatArray:
        """:meth:`start_times`; ``floor``, when given, is ``ready.min()``."""
        c = self._cores[task]
        d = self.problem.exec_time[task]
        tail = self._tail_cols[c]
        if self._zero_len[task]:
            tail = np.where(d > 0, tail, 0.0)  # a zero-length task takes no cores
        m = self._mem[task]
        tight: list[int] = []  # nodes where the task's memory may not be free at some time
        if m > 0:
            tight = np.flatnonzero(
                (m > self._mem_slack) & (d > 0) & self.problem.fits[task]
            ).tolist()
            if tight:
                tail = tail.copy()
                for n in tight:
                    mt = self._profiles[n].mem_tail(m)
                    if mt > tail[n]:
                        tail[n] = mt
        est = np.maximum(ready, tail)
        if self.insertion:
            # A gap before the tail can only help where the inputs arrive before the tail and the
            # node has a window with a free core at least as long as the task. (Infinite tails
            # are on nodes with too few cores, which the task does not fit on.)
            if not tight and floor is not None and floor >= self._tail_top[c]:
                pass  # no input arrives before any finite tail
            elif (early := ready < tail).any():
                early &= self._window_ok >= d
                if self._partial_fit[task]:
                    early &= self.problem.fits[task]
                profiles = self._profiles
                for n in np.flatnonzero(early).tolist():
                    est[n] = profiles[n].earliest_fit(
                        float(ready[n]), float(d[n]), c, m if n in tight else 0
                    )
        else:
            np.maximum(est, self._last_start, out=est)
        if self._partial_fit[task]:
            est[self._no_fit[task]] = np.inf
        return est

    def _ready_on(self, task: int, n: int) -> float:
        """``data_ready(task)[n]`` for one node, by the same operations [s] (no contention)."""
        stage = self._stage[task]
        lo, hi = self._pptr[task], self._pptr[task + 1]
        if lo == hi:
            return stage  # type: ignore[no-any-return]
        delay = self._delay_l
        if delay is not None:  # what data_ready gives node n: best on k, top elsewhere
            top, k, best, last = self._arrivals(lo, hi, delay)
            if n != k:
                best = top
        else:  # per-pair network: Problem.arrival_times' expression, one column
            src, fin, nod = self._psrc_l, self._finish_l, self._node_l
            best = -_INF
            last = -_INF  # the last parent's finish
            cl = self.problem.cluster
            lat, bw = cl.latency_matrix, cl.bandwidth_matrix
            nbytes = self.problem.workflow.edge_bytes
            for e in range(lo, hi):
                p = src[e]
                f = fin[p]
                q = nod[p]
                v = f if q == n else f + (lat.item(q, n) + nbytes.item(e) / bw.item(q, n))
                if v > best:
                    best = v
                if f > last:
                    last = f
        if stage > best:
            best = stage
        if self._dispatch > 0:
            ready = last + self._dispatch
            if ready > best:
                best = ready
        return best  # type: ignore[no-any-return]

    def _start_on(self, task: int, n: int) -> float:
        """``earliest_start(task)[n]`` for one node the task fits on, by the same operations as
        :meth:`_start_times` on that node (a replay places each task on a known node, so the
        other nodes' starts, and their gap searches, are not needed) [s]."""
        ready = self._ready_on(task, n)
        c = self._cores[task]
        d = self.problem.exec_time.item(task, n)
        if d > 0 or not self._zero_len[task]:
            tail = self._tail.item(n, c)
        else:
            tail = 0.0  # a zero-length task takes no cores
        m = self._mem[task]
        tight = m > 0 and m > self._mem_slack.item(n) and d > 0
        if tight:
            mt = self._profiles[n].mem_tail(m)
            if mt > tail:
                tail = mt
        est = ready if ready > tail else tail  # np.maximum's value
        if self.insertion:
            if ready < tail and self._window_ok.item(n) >= d:
                est = self._profiles[n].earliest_fit(ready, d, c, m if tight else 0)
        elif self._last_start.item(n) > est:
            est = self._last_start.item(n)
        return est  # type: ignore[no-any-return]

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
        n_n = self._n_nodes
        if not 0 <= node < n_n or not self._fits_b[task * n_n + node]:
            raise PlanError(
                f"task {p.workflow.ids[task]!r} cannot run on node {node}: "
                + ("no such node" if not 0 <= node < n_n else "not enough cores or memory")
            )
        if task == self._query_task or self.contention:
            s = self.earliest_start(task).item(node)
        else:
            s = self._start_on(task, node)  # one node: what earliest_start(task)[node] is
        f = s + self.problem.exec_time.item(task, node)
        if self.contention:
            self._contended_ready(task, node, commit=True)
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
        if not self._own[node]:
            prof = self._profiles[node] = prof.copy()
            self._own[node] = True
        m = self._mem[task]
        prof.add(s, f, c, m)
        tails = prof.tail
        self._tail[node] = tails
        top = self._tail_top
        for k in range(1, self._cmax + 1):
            v = tails[k]
            if v > top[k] and v != _INF:
                top[k] = v
        if m > 0 and prof.mem_cap is not None and f > s:
            self._mem_slack[node] = float(prof.mem_cap - prof.mem_peak())
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

    def _contended_ready(self, task: int, n: int, commit: bool = False) -> float:
        """When ``task``'s inputs would be on node ``n`` with the links' planned load [s]
        (module docstring); ``commit`` books the transfers on the links."""
        p = self.problem
        cl = p.cluster
        wf = p.workflow
        free = self._link_free
        n_n = self._n_nodes
        nic = cl.network == "nic"
        down = n_n + n if nic else n
        busy: dict[int, float] = {}  # links this query has used: when they free up again [s]
        t_down = free[down]
        ready = 0.0
        in_b = float(wf.input_bytes[task])
        if in_b > 0:
            up = 2 * n_n if nic else n_n
            s = max(cl.storage_latency, free[up], t_down)
            t_down = s + in_b / cl.storage_bandwidth
            busy[up] = t_down
            ready = t_down
        lo, hi = self._pptr[task], self._pptr[task + 1]
        edges = sorted(range(lo, hi), key=lambda e: (self.finish[self._psrc[e]], e))
        lat = cl.latency
        bw = cl.bandwidth
        assert lat is not None and bw is not None  # NIC models have a scalar network
        for e in edges:
            par = int(self._psrc[e])
            f = float(self.finish[par])
            pn = int(self.node[par])
            if pn == n:
                arrival = f
            else:
                nbytes = float(wf.edge_bytes[e])
                if nbytes <= 0:
                    arrival = f + lat  # only the latency: no bandwidth used
                else:
                    s = max(f + lat, busy.get(pn, free[pn]), t_down)
                    t_down = s + nbytes / bw
                    busy[pn] = t_down
                    arrival = t_down
            if self._dispatch > 0:
                arrival = max(arrival, f + self._dispatch)  # the batch system's release
            if arrival > ready:
                ready = arrival
        if commit:
            for lk, t in busy.items():
                free[lk] = t
            free[down] = max(free[down], t_down)
        return ready

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
