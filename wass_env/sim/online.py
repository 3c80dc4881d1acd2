"""Online execution: tasks are dispatched one at a time while simulated time advances.

A static plan (:mod:`wass_env.sim.plan`) decides every placement before anything runs and
:func:`~wass_env.sim.execute.execute` replays it. :class:`OnlineSim` instead runs the cluster
and stops whenever a decision can be made, the way a batch system's dispatcher works:

* a task is **ready** when all its parents have *finished executing* (not merely been placed);
* a decision is due when some ready task has a node that **can take it**. Two dispatch modes
  (:data:`DISPATCH_MODES`): ``"queue"`` (default): every node the task fits on can take it;
  the task joins that node's queue, ordered by the given task priority (then dispatch order),
  and starts once its inputs are there and the node has its cores and memory free (a queued
  task that does not fit holds back those behind it; one still waiting for inputs does not).
  ``"idle"``: only a node that can start it now (cores and memory free, nothing queued); the
  cores are the task's from the decision on, while its inputs arrive;
* :meth:`OnlineSim.dispatch` gives the task to a node; its inputs start moving at once (from
  each parent's node, and its external input from shared storage) through the cluster's network
  model (:func:`~wass_env.sim.network.make_network`: under ``"nic"`` and ``"shared_nic"``
  concurrent transfers share the NICs by max-min fairness); it starts no earlier than the
  cluster's ``dispatch_latency`` after its last parent finished; a zero-length task takes no
  cores and no memory;
* :meth:`OnlineSim.advance` runs the events (transfers completing first at equal times, then
  tasks finishing) until the next decision is due or everything has finished.

Runtimes are **revealed by execution**: a task on node ``n`` runs ``exec_time[t, n] *
factor[t]`` seconds, where ``factor`` is the mean-one lognormal noise of
:func:`~wass_env.sim.execute.runtime_noise` (the same per-task factors ``execute(noise=...)``
draws, so a static plan and an online run can be compared on the same realised runtimes). A
decision only sees the estimates (``exec_time``), the actual starts and finishes so far, and
the clock. :meth:`OnlineSim.estimate` gives, per node, contention-free estimates of when the
task would have its cores and its inputs there, which the schedulers' online rules
(``Scheduler.dispatch``) and the online environment's observation use.

What online costs against a static plan on the same placements: a transfer starts when its
consumer is dispatched, i.e. when the last of its parents has finished, not when its own parent
finishes (the destination is not known before), and stage-in from storage starts at dispatch
rather than at time 0; with communication-heavy workflows this delays tasks a plan would start
at once. Without external input, noise or contention, a task dispatched onto a free node starts
exactly when the static plan would start it (``tests/test_online.py`` checks this by hand).
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wass_env.sim.network import STORAGE, make_network
from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem

__all__ = ["DISPATCH_MODES", "OnlineError", "OnlineSim"]

#: ``"queue"``: a ready task may go to any node it fits on, where it waits in the node's FIFO
#: queue for cores; ``"idle"``: only to a node that can start it now (no queues).
DISPATCH_MODES = ("queue", "idle")

_FINISH = 0  # event kinds in the heap
_WAKE = 1
_NO_LIMIT = np.iinfo(np.int64).max // 4  # [bytes] memory of a node without a memory limit


class OnlineError(ValueError):
    """An invalid online decision (task not ready, node that cannot take it now)."""


class OnlineSim:
    """A cluster running one workflow, with placements decided as it runs (module docstring).

    Args:
        problem: The workflow on its cluster.
        factors: Per-task runtime factors (actual runtime = ``exec_time[t, node] * factors[t]``),
            shape ``(n_tasks,)``, finite and >= 0; default all ones (runtimes as estimated).

    Attributes:
        now: The simulated clock [s].
        node: Node of every dispatched task (-1: not dispatched).
        start, finish: Actual start and finish of every task [s] (NaN until it happens).
        ready: Ready tasks not dispatched yet (all parents finished).
        n_dispatched, n_finished: Counters.
    """

    def __init__(
        self,
        problem: Problem,
        factors: ArrayLike | None = None,
        *,
        mode: str = "queue",
        priority: ArrayLike | None = None,
    ) -> None:
        if mode not in DISPATCH_MODES:
            raise ValueError(f"dispatch mode must be one of {DISPATCH_MODES}, got {mode!r}")
        self.mode = mode
        self.problem = problem
        wf, cl = problem.workflow, problem.cluster
        n_t, n_n = wf.n_tasks, cl.n_nodes
        if factors is None:
            fac = np.ones(n_t)
        else:
            fac = np.asarray(factors, dtype=np.float64).reshape(-1)
            if fac.size != n_t or not np.all(np.isfinite(fac)) or np.any(fac < 0):
                raise ValueError(f"factors must be {n_t} finite values >= 0")
        self.factors = fac
        self.now = 0.0
        self.net = make_network(cl)
        self.node = np.full(n_t, -1, dtype=np.int64)
        self.start = np.full(n_t, np.nan)
        self.finish = np.full(n_t, np.nan)
        self.release = np.zeros(n_t)  # [s] when the last parent finished
        self.n_dispatched = 0
        self.n_finished = 0
        self._cores = wf.cores.astype(np.int64)
        self.free_cores = cl.cores.astype(np.int64).copy()
        if problem.memory_bound:
            self._mem = np.asarray(problem.memory_demand(), dtype=np.int64)
            cap = [_NO_LIMIT if m is None else m for m in problem.memory_capacity()]
            self.free_memory = np.asarray(cap, dtype=np.int64)
        else:
            self._mem = np.zeros(n_t, dtype=np.int64)
            self.free_memory = np.full(n_n, _NO_LIMIT, dtype=np.int64)
        # A zero-length task takes no cores and no memory (as in execute and the planner).
        self._takes = problem.exec_time > 0
        self._missing = wf.n_parents.astype(np.int64).tolist()
        self._pending = [0] * n_t  # transfers of a dispatched task not arrived yet
        self._earliest = [0.0] * n_t  # [s] last parent's finish + dispatch latency
        self._started = [False] * n_t
        # Expected end of each task holding cores on each node [s] (estimates, not actuals).
        self.holding: list[dict[int, float]] = [{} for _ in range(n_n)]
        # Tasks dispatched to each node that do not hold its cores yet, in dispatch order.
        self.queue: list[list[int]] = [[] for _ in range(n_n)]
        # Queue order: higher priority first, then dispatch order.
        if priority is None:
            self._qkey = [0.0] * n_t
        else:
            pr = np.asarray(priority, dtype=np.float64).reshape(-1)
            if pr.size != n_t:
                raise ValueError(f"priority must have {n_t} values, got {pr.size}")
            self._qkey = (-pr).tolist()
        self._qseq = [0] * n_t
        self._ready_est = [0.0] * n_t  # [s] estimated inputs-there time, set at dispatch
        self.busy = np.zeros(n_n)  # [core-s] estimated work dispatched to each node
        self.ready: set[int] = {t for t in range(n_t) if self._missing[t] == 0}
        self._events: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._child_ptr = wf.child_ptr.tolist()
        self._child_edges = wf.child_edges.tolist()
        self._edge_dst = wf.edge_dst.tolist()
        self._n_edges = wf.n_edges

    # ------------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """True when every task has finished."""
        return self.n_finished == self.problem.n_tasks

    def takers(self, task: int) -> NDArray[np.bool_]:
        """Nodes that can take ``task`` now: every node it fits on (``"queue"`` mode), or those
        that can start it now, with its cores and memory free and no queue (``"idle"``)."""
        p = self.problem
        if self.mode == "queue":
            return p.fits[task]  # type: ignore[no-any-return]
        return self.can_start(task)

    def can_start(self, task: int) -> NDArray[np.bool_]:
        """Nodes where ``task`` would get its cores and memory at once (it fits, they are
        free, nothing is queued before it; a zero-length task needs neither)."""
        p = self.problem
        room = (self.free_cores >= self._cores[task]) & (self.free_memory >= self._mem[task])
        empty = np.fromiter((not q for q in self.queue), dtype=bool, count=p.n_nodes)
        return p.fits[task] & ((room & empty) | ~self._takes[task])  # type: ignore[no-any-return]

    def candidates(self) -> list[int]:
        """Ready tasks that some node can take now (the tasks a decision may be about), sorted."""
        return [t for t in sorted(self.ready) if self.takers(t).any()]

    def next_task(self, key: list[float]) -> int:
        """The candidate with the smallest ``key[t]`` (ties: lowest index); -1 when none."""
        best, best_t = math.inf, -1
        for t in self.candidates():
            if key[t] < best:
                best, best_t = key[t], t
        return best_t

    def estimate(self, task: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Contention-free estimates, per node, of when ``task`` would have its cores free and
        its inputs there if it were dispatched now [s] (``inf`` where it does not fit).

        Cores: now where the node can take it now, else when the tasks holding the node's
        cores are expected to end (actual start + estimated runtime, at least now) until
        enough are free. Inputs: each parent's data sent from its node now, the external input
        read from storage now, and the dispatch latency after the last parent's finish.
        """
        p = self.problem
        wf = p.workflow
        now = self.now
        n_n = p.n_nodes
        can = self.can_start(task)
        free_at = np.where(can, now, np.inf)
        if self._takes[task].any():
            for n in np.flatnonzero(p.fits[task] & ~can).tolist():
                free_at[n] = self._cores_free_time(n, task)
        ready = np.full(n_n, max(now + float(p.stage_in[task]), self._earliest_bound(task)))
        sl = wf.parent_edge_slice(task)
        if sl.stop > sl.start:
            parents = wf.edge_src[sl]
            arrive = p.arrival_times(sl, self.node[parents], np.full(parents.size, now))
            np.maximum(ready, arrive.max(axis=0), out=ready)
        ready[~p.fits[task]] = np.inf
        return free_at, ready

    def _cores_free_time(self, n: int, task: int) -> float:
        """When ``task`` would have its cores on node ``n`` after the node's queue [s].

        The tasks holding cores end as expected (actual start plus estimated runtime, at least
        now); the queued tasks that would run before ``task`` (higher priority), in queue
        order, each take their cores as soon as enough are free and hold them from when their
        inputs are expected there for their estimated runtime; then ``task``'s cores are free
        when enough have been released.
        """
        et = self.problem.exec_time
        cur = self.now
        c, m = int(self.free_cores[n]), int(self.free_memory[n])
        ends = [(max(e, cur), t) for t, e in self.holding[n].items()]
        heapq.heapify(ends)
        cores, mem, takes = self._cores, self._mem, self._takes
        mine = (self._qkey[task], self.n_dispatched)
        ahead = [q for q in self.queue[n] if (self._qkey[q], self._qseq[q]) < mine]
        for q in [*ahead, task]:
            if not takes[q, n]:
                continue
            need_c, need_m = int(cores[q]), int(mem[q])
            while (c < need_c or m < need_m) and ends:
                e, t = heapq.heappop(ends)
                cur = max(cur, e)
                c += int(cores[t])
                m += int(mem[t])
            if q == task:
                return cur
            begin = max(cur, self._ready_est[q])
            c -= need_c
            m -= need_m
            heapq.heappush(ends, (begin + float(et[q, n]), q))
        return cur  # pragma: no cover - the loop returns at the task

    def _earliest_bound(self, task: int) -> float:
        d = self.problem.cluster.dispatch_latency
        if self.problem.workflow.n_parents[task] == 0:
            return 0.0
        return float(self.release[task]) + d

    # ------------------------------------------------------------------ decisions
    def dispatch(self, task: int, node: int) -> None:
        """Give ready ``task`` to ``node``, which must be able to take it now.

        Raises:
            OnlineError: if the task is not ready (or already dispatched) or the node cannot
                take it now.
        """
        p = self.problem
        if task not in self.ready:
            raise OnlineError(f"task {p.workflow.ids[task]!r} is not ready to dispatch")
        if not (0 <= node < p.n_nodes and self.takers(task)[node]):
            raise OnlineError(
                f"node {node} cannot take task {p.workflow.ids[task]!r} now; nodes that can: "
                f"{np.flatnonzero(self.takers(task)).tolist()}"
            )
        wf = p.workflow
        self.ready.discard(task)
        self.node[task] = node
        self.n_dispatched += 1
        est = float(p.exec_time[task, node])
        _, ready = self.estimate_for(task, node)
        self._ready_est[task] = ready
        self.busy[node] += est * int(self._cores[task])
        self._earliest[task] = self._earliest_bound(task)
        now = self.now
        net = self.net
        sl = wf.parent_edge_slice(task)
        for e in range(sl.start, sl.stop):
            src = int(self.node[wf.edge_src[e]])
            if src != node:
                self._pending[task] += 1
                net.start(src, node, float(wf.edge_bytes[e]), e, now)
        nbytes = float(wf.input_bytes[task])
        if nbytes > 0:
            self._pending[task] += 1
            net.start(STORAGE, node, nbytes, self._n_edges + task, now)
        if self.mode == "idle":
            # The node is taken now: its cores wait for the inputs with the task.
            if self._takes[task, node]:
                self._hold(task, node, max(now, ready) + est)
            self._try_start(task)
        else:
            self._qseq[task] = self.n_dispatched
            q = self.queue[node]
            key = (self._qkey[task], self.n_dispatched)
            i = len(q)
            while i > 0 and (self._qkey[q[i - 1]], self._qseq[q[i - 1]]) > key:
                i -= 1
            q.insert(i, task)
            self._pump(node)

    def _hold(self, task: int, node: int, expected_end: float) -> None:
        self.free_cores[node] -= self._cores[task]
        self.free_memory[node] -= self._mem[task]
        self.holding[node][task] = expected_end

    def _pump(self, n: int) -> None:
        """Queue mode: start node ``n``'s queued tasks whose inputs are there, in queue order
        (priority, then dispatch order), while their cores and memory are free (the first one
        that does not fit waits and holds back those behind it; one whose inputs are not there
        yet does not)."""
        q = self.queue[n]
        now = self.now
        i = 0
        while i < len(q):
            t = q[i]
            if self._pending[t] > 0 or self._earliest[t] > now:
                i += 1
                continue
            if self._takes[t, n]:
                if self.free_cores[n] < self._cores[t] or self.free_memory[n] < self._mem[t]:
                    return
                self._hold(t, n, now + float(self.problem.exec_time[t, n]))
            q.pop(i)
            self._start(t)

    def estimate_for(self, task: int, node: int) -> tuple[float, float]:
        """:meth:`estimate` on one node: (cores free, inputs there) [s]."""
        free_at, ready = self.estimate(task)
        return float(free_at[node]), float(ready[node])

    # ------------------------------------------------------------------ events
    def advance(self) -> bool:
        """Run until a decision is due (True) or every task has finished (False)."""
        net = self.net
        events = self._events
        while True:
            if self.ready and self.candidates():
                return True
            if self.done:
                return False
            t_ev = events[0][0] if events else math.inf
            t = min(net.next_time(), t_ev)
            if t == math.inf:  # pragma: no cover - a dispatched task always completes
                raise RuntimeError(f"online run stalled at {self.now} s")
            self.now = t
            # Transfers first at equal times: a task that finishes then sees its inputs.
            while True:
                for key in net.advance(t):
                    task = self._edge_dst[key] if key < self._n_edges else key - self._n_edges
                    self._pending[task] -= 1
                    self._try_start(task)
                if net.next_time() > t:
                    break
            while events and events[0][0] <= t:
                _, _, kind, task = heapq.heappop(events)
                if kind == _WAKE:
                    self._try_start(task)
                else:
                    self._finished(task)

    def _try_start(self, task: int) -> None:
        """Called when a dispatched task's inputs may all be there."""
        if self._started[task] or self._pending[task] > 0:
            return
        if self._earliest[task] > self.now:
            self._push(self._earliest[task], _WAKE, task)
            return
        if self.mode == "idle":
            self._start(task)
        else:
            self._pump(int(self.node[task]))

    def _start(self, task: int) -> None:
        now = self.now
        self._started[task] = True
        n = int(self.node[task])
        est = float(self.problem.exec_time[task, n])
        self.start[task] = now
        if task in self.holding[n]:
            self.holding[n][task] = now + est
        self._push(now + est * float(self.factors[task]), _FINISH, task)

    def _finished(self, task: int) -> None:
        now = self.now
        self.finish[task] = now
        self.n_finished += 1
        n = int(self.node[task])
        if self.holding[n].pop(task, None) is not None:
            self.free_cores[n] += self._cores[task]
            self.free_memory[n] += self._mem[task]
            self._pump(n)
        for k in range(self._child_ptr[task], self._child_ptr[task + 1]):
            ch = self._edge_dst[self._child_edges[k]]
            if now > self.release[ch]:
                self.release[ch] = now
            self._missing[ch] -= 1
            if self._missing[ch] == 0:
                self.ready.add(ch)

    def _push(self, t: float, kind: int, task: int) -> None:
        heapq.heappush(self._events, (t, self._seq, kind, task))
        self._seq += 1

    # ------------------------------------------------------------------ result
    @property
    def makespan(self) -> float:
        """Finish of the last task [s] (NaN until every task has finished)."""
        return float(self.finish.max()) if self.done else math.nan

    def schedule(self) -> Schedule:
        """The realised schedule (every task must have finished)."""
        if not self.done:
            raise OnlineError(
                f"{self.problem.n_tasks - self.n_finished} tasks have not finished yet"
            )
        return Schedule(
            problem=self.problem,
            node=self.node.copy(),
            start=self.start.copy(),
            finish=self.finish.copy(),
            release=self.release.copy(),
        )
