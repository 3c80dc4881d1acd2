"""Online execution: tasks are dispatched one at a time while simulated time advances.

A static plan (:mod:`wass_env.sim.plan`) decides every placement before anything runs and
:func:`~wass_env.sim.execute.execute` replays it. :class:`OnlineSim` instead runs the cluster
and stops whenever a decision can be made, the way a batch system's dispatcher works:

* a task is **ready** when all its parents have *finished executing* (not merely been placed);
* a decision is due when some ready task has a node that **can take it now**: the node has the
  task's cores and memory free (a zero-length task takes neither) and the task fits there;
* :meth:`OnlineSim.dispatch` gives the task to such a node: its cores and memory are reserved
  at once, its inputs start moving (from each parent's node, and its external input from
  shared storage) through the cluster's network model (:func:`~wass_env.sim.network.make_network`:
  under ``"nic"`` and ``"shared_nic"`` concurrent transfers share the NICs by max-min fairness),
  and it starts when every input has arrived and the cluster's ``dispatch_latency`` has passed
  since its last parent finished;
* :meth:`OnlineSim.advance` runs the events (transfers completing first at equal times, then
  tasks finishing) until the next decision is due or everything has finished.

Runtimes are **revealed by execution**: a task on node ``n`` runs ``exec_time[t, n] *
factor[t]`` seconds, where ``factor`` is the mean-one lognormal noise of
:func:`~wass_env.sim.execute.runtime_noise` (the same per-task factors ``execute(noise=...)``
draws, so a static plan and an online run can be compared on the same realised runtimes). A
decision only sees the estimates (``exec_time``), the actual finishes of the tasks that have
finished, and the clock. :meth:`OnlineSim.estimate` gives, per node, contention-free estimates
of when the task could start and finish there, which the online dispatch rules of the
schedulers (``Scheduler.dispatch``) and the online environment's observation use.

Compared with :func:`execute` on the same placements, stage-in from storage starts at dispatch
(not at time 0: the node is not known before), and a dispatched task holds its cores while its
inputs arrive (an allocation, as a batch system makes it); with no external input, no noise and
a contention-free network, a task dispatched as soon as its parents finish onto an idle node
starts exactly when the static plan would start it.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wass_env.sim.network import STORAGE, make_network
from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem

__all__ = ["OnlineError", "OnlineSim"]

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

    def __init__(self, problem: Problem, factors: ArrayLike | None = None) -> None:
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
        """Nodes that can take ``task`` now (it fits, and its cores and memory are free)."""
        p = self.problem
        room = (self.free_cores >= self._cores[task]) & (self.free_memory >= self._mem[task])
        return p.fits[task] & (room | ~self._takes[task])  # type: ignore[no-any-return]

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
        can = self.takers(task)
        free_at = np.where(can, now, np.inf)
        need_c, need_m = int(self._cores[task]), int(self._mem[task])
        for n in np.flatnonzero(p.fits[task] & ~can).tolist():
            c, m = int(self.free_cores[n]), int(self.free_memory[n])
            for end, t in sorted((e, t) for t, e in self.holding[n].items()):
                c += int(self._cores[t])
                m += int(self._mem[t])
                if c >= need_c and m >= need_m:
                    free_at[n] = max(end, now)
                    break
        ready = np.full(n_n, max(now + float(p.stage_in[task]), self._earliest_bound(task)))
        sl = wf.parent_edge_slice(task)
        if sl.stop > sl.start:
            parents = wf.edge_src[sl]
            arrive = p.arrival_times(sl, self.node[parents], np.full(parents.size, now))
            np.maximum(ready, arrive.max(axis=0), out=ready)
        ready[~p.fits[task]] = np.inf
        return free_at, ready

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
        free_at, ready = self.estimate_for(task, node)
        if self._takes[task, node]:
            self.free_cores[node] -= self._cores[task]
            self.free_memory[node] -= self._mem[task]
            self.holding[node][task] = max(free_at, ready) + est
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
        self._try_start(task)

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
        if self._started[task] or self._pending[task] > 0:
            return
        now = self.now
        if self._earliest[task] > now:
            self._push(self._earliest[task], _WAKE, task)
            return
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
