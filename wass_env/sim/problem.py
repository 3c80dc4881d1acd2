"""A scheduling problem: one workflow on one cluster, with its cost model.

:class:`Problem` turns a :class:`~wass_env.sim.workflow.Workflow` and a
:class:`~wass_env.sim.cluster.Cluster` into the numbers every scheduler and the simulator share:

* ``exec_time[t, n]``: seconds task ``t`` runs on node ``n`` (``work / effective speed``, or an
  explicit cost matrix, as in the classic HEFT examples);
* ``fits[t, n]``: whether node ``n`` has enough cores and memory for task ``t`` (never on a node
  marked down);
* consumption: while a task runs it holds its cores and its memory on its node (memory in whole
  bytes, rounded up: :meth:`memory_demand`, :meth:`memory_capacity`), so the tasks running at
  once on a node never need more of either than the node has;
* communication: an edge's bytes cost ``latency + bytes / bandwidth`` between distinct nodes and
  nothing within a node; external inputs cost a node-independent stage-in time.

It also derives the quantities several parts need (upward/downward ranks, the critical path, the
lower bound), computed once and cached.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wass_env.sim.bounds import fork_join_bound
from wass_env.sim.cluster import Cluster
from wass_env.sim.workflow import Workflow, WorkflowError

__all__ = ["MAX_TIME_RANGE", "Problem"]

#: Largest accepted ratio of the serial time to the longest task (see :meth:`Problem.serial_time`).
MAX_TIME_RANGE = 1e100

FloatArray = NDArray[np.float64]


class Problem:
    """One workflow on one cluster.

    Args:
        workflow: The workflow.
        cluster: The cluster.
        cost_matrix: Optional explicit ``(n_tasks, n_nodes)`` runtime matrix [s]; replaces
            ``work / speed``.

    Raises:
        WorkflowError: if a task fits on no node (too many cores or too much memory), or the cost
            matrix has the wrong shape or a negative or non-finite entry.
    """

    def __init__(
        self,
        workflow: Workflow,
        cluster: Cluster,
        cost_matrix: ArrayLike | None = None,
    ) -> None:
        self.workflow = workflow
        self.cluster = cluster
        wf, cl = workflow, cluster
        where = f" in {wf.source}" if wf.source else ""
        if cost_matrix is None:
            if cl.type_speedup:
                speed = np.stack([cl.speed_for(t) for t in wf.task_type])
            else:
                speed = np.broadcast_to(cl.speed, (wf.n_tasks, cl.n_nodes))
            with np.errstate(over="ignore"):  # an overflow is reported by _check_finite
                exec_time = wf.work[:, None] / speed
            self.explicit_costs = False
        else:
            exec_time = np.array(cost_matrix, dtype=np.float64)
            if exec_time.shape != (wf.n_tasks, cl.n_nodes):
                raise WorkflowError(
                    f"cost matrix for {wf.name!r} must have shape "
                    f"({wf.n_tasks}, {cl.n_nodes}), got {exec_time.shape}"
                )
            bad = np.argwhere(~np.isfinite(exec_time) | (exec_time < 0))
            if bad.size:
                t, n = (int(x) for x in bad[0])
                raise WorkflowError(
                    f"cost matrix for {wf.name!r}: entry (task {wf.ids[t]!r}, node {n}) must be "
                    f"finite and >= 0, got {exec_time[t, n]!r}"
                )
            self.explicit_costs = True
        exec_time = np.ascontiguousarray(exec_time)
        exec_time.setflags(write=False)
        self.exec_time: FloatArray = exec_time
        fits = (wf.cores[:, None] <= cl.cores[None, :]) & (wf.memory[:, None] <= cl.memory[None, :])
        if cl.down.any():
            fits &= ~cl.down[None, :]  # a node marked down takes no task
        nowhere = np.flatnonzero(~fits.any(axis=1))
        if nowhere.size:
            t = int(nowhere[0])
            up = ~cl.down
            raise WorkflowError(
                f"task {wf.ids[t]!r}{where} fits on no node of cluster {cl.name!r}: it needs "
                f"{int(wf.cores[t])} cores and {wf.memory[t]:.4g} bytes of memory; the largest "
                f"{'node' if not cl.down.any() else 'node not marked down'} has "
                f"{int(cl.cores[up].max())} cores and {cl.memory[up].max():.4g} bytes"
            )
        fits.setflags(write=False)
        self.fits: NDArray[np.bool_] = fits
        self.stage_in: FloatArray = (
            np.array([cl.stage_in_time(b) for b in wf.input_bytes.tolist()], dtype=np.float64)
            if wf.input_bytes.any()
            else np.zeros(wf.n_tasks)  # no external input: what stage_in_time(0) gives each
        )
        # Mean cost of each edge over pairs of distinct nodes [s] (HEFT's c-bar).
        with np.errstate(over="ignore"):  # an overflow is reported by _check_finite
            self.mean_comm: FloatArray = np.asarray(cl.mean_transfer_time(wf.edge_bytes))
        self._cache: dict[str, Any] = {}
        self._check_finite(where)

    def _check_finite(self, where: str) -> None:
        """Refuse an instance whose derived times overflow: finite inputs can have infinite
        quotients (``work / speed``, ``bytes / bandwidth``) and sums, and an infinite lower bound
        turns every observation and reward into NaN."""
        wf, cl = self.workflow, self.cluster
        on = f"workflow {wf.name!r}{where} on cluster {cl.name!r}"
        bad = np.argwhere(~np.isfinite(self.exec_time))
        if bad.size:
            t, n = (int(x) for x in bad[0])
            raise WorkflowError(
                f"{on}: task {wf.ids[t]!r} would run {float(self.exec_time[t, n])!r} s on node "
                f"{n} (field 'work' {float(wf.work[t])!r} / speed "
                f"{float(cl.speed_for(wf.task_type[t])[n])!r})"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            slowest = np.where(self.fits, self.exec_time, 0.0).max(axis=1)  # [s]
            if cl.bandwidth is not None and cl.latency is not None:
                # Also on one node, where no edge crosses a link: edge_delay() still holds it.
                transfer = cl.latency + wf.edge_bytes / cl.bandwidth
            elif cl.n_nodes == 1:
                transfer = np.zeros(wf.n_edges)  # [s] no link to cross
            else:
                off = ~np.eye(cl.n_nodes, dtype=bool)
                transfer = float(cl.latency_matrix[off].max()) + wf.edge_bytes * float(
                    (1.0 / cl.bandwidth_matrix[off]).max()
                )
            parts = {
                "runtimes (field 'work' / node speed)": float(slowest.sum()),
                "stage-in times (field 'input_bytes' / storage bandwidth)": float(
                    self.stage_in.sum()
                ),
                "transfer times (edge field 'bytes' / bandwidth)": float(transfer.sum()),
                "core-seconds (field 'work' x field 'cores')": float(
                    (wf.work * wf.cores).sum() + (slowest * wf.cores).sum()
                ),
            }
        for what, total in parts.items():
            if not np.isfinite(total):
                raise WorkflowError(f"{on}: the {what} sum to {total!r}; they must be finite")
        if cl.n_nodes == 1:  # no edge crosses a link (the check above covers edge_delay())
            parts["transfer times (edge field 'bytes' / bandwidth)"] = 0.0
        total = sum(v for k, v in parts.items() if not k.startswith("core"))
        if not np.isfinite(total):
            raise WorkflowError(f"{on}: runtimes, stage-in and transfer times sum to {total!r} s")
        # No time in a plan exceeds the serial time and the lower bound is at least the longest
        # task (with its stage-in): bounding their ratio keeps every time / lower bound (the
        # env's observations and rewards, the ratio metrics) finite, noise included.
        longest = float(np.max(self.min_exec + self.stage_in))  # [s]
        if longest > 0 and total > MAX_TIME_RANGE * longest:
            raise WorkflowError(
                f"{on}: the times span too wide a range: the serial time ({total!r} s) is more "
                f"than {MAX_TIME_RANGE:g} times the longest task ({longest!r} s)"
            )
        self._serial_time = total

    # ------------------------------------------------------------------ sizes
    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return self.workflow.n_tasks

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.cluster.n_nodes

    def comm_time(self, edge: int, src_node: int, dst_node: int) -> float:
        """Seconds for edge ``edge``'s bytes to go from ``src_node`` to ``dst_node``."""
        return self.cluster.transfer_time(float(self.workflow.edge_bytes[edge]), src_node, dst_node)

    def arrival_times(
        self, edges: slice, parent_nodes: NDArray[np.int64], parent_finish: FloatArray
    ) -> FloatArray:
        """Arrival time at every node of each input edge: shape ``(n_edges, n_nodes)`` [s].

        Args:
            edges: Slice of the workflow's edge arrays (a task's parent edges).
            parent_nodes: Node of each edge's parent.
            parent_finish: Finish time of each edge's parent [s].
        """
        cl = self.cluster
        nbytes = self.workflow.edge_bytes[edges]
        if cl.bandwidth is not None and cl.latency is not None:
            remote = parent_finish + (cl.latency + nbytes / cl.bandwidth)
            out = np.repeat(remote[:, None], cl.n_nodes, axis=1)
        else:
            out = parent_finish[:, None] + (
                cl.latency_matrix[parent_nodes]
                + nbytes[:, None] / cl.bandwidth_matrix[parent_nodes]
            )
        out[np.arange(parent_nodes.size), parent_nodes] = parent_finish
        return out

    # ------------------------------------------------------------------ derived, cached
    def edge_delay(self) -> FloatArray | None:
        """Transfer time of every edge between distinct nodes [s], or None when it depends on
        the node pair (matrix network)."""
        if "edge_delay" not in self._cache:
            cl = self.cluster
            self._cache["edge_delay"] = (
                cl.latency + self.workflow.edge_bytes / cl.bandwidth
                if cl.bandwidth is not None and cl.latency is not None
                else None
            )
        return self._cache["edge_delay"]  # type: ignore[no-any-return]

    def memory_demand(self) -> list[int]:
        """Memory each task holds while it runs, in whole bytes rounded up (cached).

        Integers so that the planner, the executor and CP-SAT add and compare them exactly.
        """
        if "mem_demand" not in self._cache:
            self._cache["mem_demand"] = [math.ceil(m) for m in self.workflow.memory.tolist()]
        return self._cache["mem_demand"]  # type: ignore[no-any-return]

    def memory_capacity(self) -> list[int | None]:
        """Memory of each node in whole bytes rounded up, or None where it is unlimited (cached).

        Rounded up like :meth:`memory_demand`, so a task that fits a node (``fits``) also fits
        it in whole bytes.
        """
        if "mem_cap" not in self._cache:
            self._cache["mem_cap"] = [
                math.ceil(m) if math.isfinite(m) else None for m in self.cluster.memory.tolist()
            ]
        return self._cache["mem_cap"]  # type: ignore[no-any-return]

    @property
    def memory_bound(self) -> bool:
        """True when memory can limit concurrency: some task needs memory and some node has a
        finite amount."""
        if "mem_bound" not in self._cache:
            self._cache["mem_bound"] = bool(
                self.workflow.memory.max(initial=0.0) > 0 and np.isfinite(self.cluster.memory).any()
            )
        return self._cache["mem_bound"]  # type: ignore[no-any-return]

    def static_lists(self) -> dict[str, list[Any]]:
        """Per-task data as Python lists, for the planner's scalar hot paths (cached)."""
        if "lists" not in self._cache:
            wf = self.workflow
            cptr = wf.child_ptr.tolist()
            dst = wf.edge_dst[wf.child_edges].tolist()
            self._cache["lists"] = {
                "parent_ptr": wf.parent_ptr.tolist(),
                "edge_src": wf.edge_src.tolist(),
                "children": [dst[cptr[i] : cptr[i + 1]] for i in range(wf.n_tasks)],
                "stage_in": self.stage_in.tolist(),
                "partial_fit": (~self.fits).any(axis=1).tolist(),
                "zero_len": (self.exec_time == 0).any(axis=1).tolist(),
            }
        return self._cache["lists"]  # type: ignore[no-any-return]

    @property
    def mean_exec(self) -> FloatArray:
        """Mean runtime of each task over the nodes it fits on [s] (HEFT's w-bar)."""
        if "mean_exec" not in self._cache:
            et = np.where(self.fits, self.exec_time, 0.0)
            self._cache["mean_exec"] = et.sum(axis=1) / self.fits.sum(axis=1)
        return self._cache["mean_exec"]  # type: ignore[no-any-return]

    @property
    def min_exec(self) -> FloatArray:
        """Fastest runtime of each task over the nodes it fits on [s]."""
        if "min_exec" not in self._cache:
            self._cache["min_exec"] = np.where(self.fits, self.exec_time, np.inf).min(axis=1)
        return self._cache["min_exec"]  # type: ignore[no-any-return]

    def upward_rank(self) -> FloatArray:
        """HEFT's upward rank: ``w-bar(t) + max over children (c-bar(t, c) + rank(c))`` [s]."""
        if "rank_u" not in self._cache:
            self._cache["rank_u"] = self._longest_path_to_exit(self.mean_exec, self.mean_comm)
        return self._cache["rank_u"]  # type: ignore[no-any-return]

    def downward_rank(self) -> FloatArray:
        """Downward rank: longest ``w-bar + c-bar`` path from an entry task, excluding ``t`` [s]."""
        if "rank_d" not in self._cache:
            wf = self.workflow
            w = self.mean_exec.tolist()
            c = self.mean_comm.tolist()
            src = wf.edge_src.tolist()
            ptr = wf.parent_ptr.tolist()
            rank = [0.0] * wf.n_tasks
            for v in wf.topo_order.tolist():
                best = 0.0
                for e in range(ptr[v], ptr[v + 1]):
                    p = src[e]
                    val = rank[p] + w[p] + c[e]
                    if val > best:
                        best = val
                rank[v] = best
            self._cache["rank_d"] = np.asarray(rank)
        return self._cache["rank_d"]  # type: ignore[no-any-return]

    def optimistic_cost(self) -> FloatArray:
        """PEFT's optimistic cost table, shape ``(n_tasks, n_nodes)`` [s] (cached).

        ``OCT[t, p] = max over children c of min over nodes w of
        (OCT[c, w] + exec[c, w] + (mean_comm(t, c) if w != p else 0))``, and 0 for exit tasks;
        nodes a child does not fit on are excluded from its minimum (Arabnejad & Barbosa 2014).
        """
        if "oct" not in self._cache:
            wf = self.workflow
            oct_ = np.zeros((self.n_tasks, self.n_nodes))
            cost = np.where(self.fits, self.exec_time, np.inf)  # [s]
            cptr = wf.child_ptr.tolist()
            cedges = wf.child_edges
            dst = wf.edge_dst
            comm = self.mean_comm  # [s]
            for t in reversed(wf.topo_order.tolist()):
                lo, hi = cptr[t], cptr[t + 1]
                if lo == hi:
                    continue
                edges = cedges[lo:hi]
                via = oct_[dst[edges]] + cost[dst[edges]]  # (n_children, n_nodes): child on w
                remote = via.min(axis=1) + comm[edges]  # child on its best node, data moved [s]
                oct_[t] = np.minimum(via, remote[:, None]).max(axis=0)
            oct_.setflags(write=False)
            self._cache["oct"] = oct_
        return self._cache["oct"]  # type: ignore[no-any-return]

    def _longest_path_to_exit(self, w: FloatArray, c: FloatArray | None) -> FloatArray:
        wf = self.workflow
        wl = w.tolist()
        cl = c.tolist() if c is not None else None
        dst = wf.edge_dst.tolist()
        cptr = wf.child_ptr.tolist()
        cedges = wf.child_edges.tolist()
        rank = [0.0] * wf.n_tasks
        for v in reversed(wf.topo_order.tolist()):
            best = 0.0
            for k in range(cptr[v], cptr[v + 1]):
                e = cedges[k]
                val = rank[dst[e]] + (cl[e] if cl is not None else 0.0)
                if val > best:
                    best = val
            rank[v] = wl[v] + best
        return np.asarray(rank)

    def critical_path(self) -> float:
        """Longest path with every task on its fastest node and no communication [s].

        Stage-in of external inputs is node-independent, so it is included.
        """
        if "cp" not in self._cache:
            self._cache["cp"] = float(self.earliest_finish().max())
        return self._cache["cp"]  # type: ignore[no-any-return]

    def earliest_finish(self) -> FloatArray:
        """Each task's finish on the critical path's terms: every task on its fastest node, no
        communication, stage-in included [s] (cached, read-only)."""
        if "ef" not in self._cache:
            wf = self.workflow
            w = self.min_exec.tolist()
            s = self.stage_in.tolist()
            src = wf.edge_src.tolist()
            ptr = wf.parent_ptr.tolist()
            finish = [0.0] * wf.n_tasks
            for v in wf.topo_order.tolist():
                start = s[v]
                for e in range(ptr[v], ptr[v + 1]):
                    f = finish[src[e]]
                    if f > start:
                        start = f
                finish[v] = start + w[v]
            ef = np.asarray(finish)
            ef.setflags(write=False)
            self._cache["ef"] = ef
        return self._cache["ef"]  # type: ignore[no-any-return]

    def path_after(self) -> FloatArray:
        """The longest path after each task finishes, on the critical path's terms (fastest
        nodes, no communication) [s] (cached, read-only)."""
        if "after" not in self._cache:
            after = self._longest_path_to_exit(self.min_exec, None) - self.min_exec
            after.setflags(write=False)
            self._cache["after"] = after
        return self._cache["after"]  # type: ignore[no-any-return]

    def work_bound(self) -> float:
        """Total work over total capacity [s].

        With speed-derived costs (no explicit matrix, no type speedups) this is the fluid bound
        ``sum(work * cores) / sum(speed * cores)``; otherwise the weaker but always valid
        ``sum(min_exec * cores) / sum(cores)``. When every node has finite memory, the memory
        area ``sum(memory * min_exec) / sum(node memory)`` is a bound too, and the larger one
        is returned (it only matters when memory, not cores, limits how many tasks run at once).
        """
        if "wb" not in self._cache:
            wf, cl = self.workflow, self.cluster
            if not self.explicit_costs and not cl.type_speedup:
                with np.errstate(over="ignore"):  # infinite capacity: a bound of 0, still valid
                    val = float((wf.work * wf.cores).sum() / (cl.speed * cl.cores).sum())
            else:
                val = float((self.min_exec * wf.cores).sum() / cl.cores.sum())
            caps = self.memory_capacity()
            if self.memory_bound and all(c is not None for c in caps):
                area = float((wf.memory * self.min_exec).sum())  # [byte s]
                val = max(val, area / float(sum(c for c in caps if c is not None)))
            self._cache["wb"] = val
        return self._cache["wb"]  # type: ignore[no-any-return]

    def serial_time(self) -> float:
        """Every task on its slowest feasible node, every stage-in and every edge's slowest
        transfer, added up [s].

        Finite (checked on construction), and at least every path in the problem: the upward and
        downward ranks, the critical path, the lower bound, and any finish time of a plan that
        never waits for nothing.
        """
        return self._serial_time

    def lower_bound(self) -> float:
        """``max(critical_path(), work_bound())``: no schedule can finish sooner [s]."""
        return max(self.critical_path(), self.work_bound())

    def fork_join_bound(self) -> float:
        """A lower bound that counts data movement at forks and joins (cached) [s].

        Every plan either keeps a task's children (parents) on its node, where they share its
        cores, or pays their transfers; see :mod:`wass_env.sim.bounds`. Often far above
        :meth:`lower_bound` where data is heavy, 0 without edges or on one node. Not part of
        :meth:`lower_bound`, which observations and rewards are normalised by.
        """
        if "fjb" not in self._cache:
            self._cache["fjb"] = fork_join_bound(self)
        return self._cache["fjb"]  # type: ignore[no-any-return]

    def ccr(self) -> float:
        """Communication-to-computation ratio: mean edge cost / mean task runtime.

        Both means are over distinct-node pairs and over the nodes a task fits on; 0 when the
        workflow has no edges.
        """
        if self.workflow.n_edges == 0:
            return 0.0
        return float(self.mean_comm.mean() / max(self.mean_exec.mean(), 1e-300))

    def __repr__(self) -> str:
        return f"Problem({self.workflow!r}, {self.cluster!r})"


def with_ccr(workflow: Workflow, cluster: Cluster, ccr: float) -> Workflow:
    """Rescale edge bytes so that the workflow has ``ccr`` on ``cluster``.

    The communication-to-computation ratio is the mean edge transfer time (over pairs of distinct
    nodes, latency included) divided by the mean task runtime (see :meth:`Problem.ccr`). Edges with
    0 bytes get an equal share when every edge has 0 bytes.

    Raises:
        WorkflowError: if ``ccr`` is negative, or the target cannot be reached because latency
            alone already exceeds it.
    """
    if not np.isfinite(ccr) or ccr < 0:
        raise WorkflowError(f"ccr must be finite and >= 0, got {ccr!r}")
    if workflow.n_edges == 0 or cluster.n_nodes == 1:
        return workflow
    problem = Problem(workflow, cluster)
    target = ccr * float(problem.mean_exec.mean())  # mean edge cost wanted [s]
    lat, per_byte = cluster.mean_link()  # [s], [s/byte]
    if target < lat - 1e-15:
        raise WorkflowError(
            f"ccr {ccr} is unreachable on {cluster.name!r}: latency alone gives "
            f"{lat / float(problem.mean_exec.mean()):.3g}"
        )
    want_bytes = (target - lat) / per_byte  # mean bytes per edge
    b = workflow.edge_bytes
    mean_b = float(b.mean())
    new = b * (want_bytes / mean_b) if mean_b > 0 else np.full(b.size, want_bytes)
    return workflow.replace(edge_bytes=new)
