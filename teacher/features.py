"""Features of a scheduling state, read from the simulator (no torch).

The teacher describes a decision (place ready ``task`` given the partial plan of a
:class:`~wass_env.sim.plan.PlanBuilder`) at three levels:

* :class:`ProblemFeatures` (once per episode): per-task static features of the workflow DAG on
  this cluster (:data:`DAG_TASK_FEATURES`), whole-graph features (:data:`GRAPH_FEATURES`) and the
  DAG's edges, which the graph encoder consumes;
* the state of the partial plan (:data:`STATE_FEATURES`), one vector per decision;
* every candidate node (:data:`ACTION_FEATURES`), one row per node: the "action embedding" the
  predictor scores.

Times are divided by the problem's lower bound on the makespan (``scale``), so that one model fits
tiny and huge workflows; the predictor's target, makespan / lower bound, uses the same unit.
Everything is computed from ``Problem``, ``PlanBuilder`` and the task index, so the knowledge
base is built without an environment and the reward wrapper reads the same numbers from the
environment's builder.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wass_env.envs.lookahead import LOOKAHEAD_FEATURES, Lookahead
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "ACTION_FEATURES",
    "DAG_TASK_FEATURES",
    "DESCRIPTOR_DIM",
    "GRAPH_FEATURES",
    "STATE_FEATURES",
    "DecisionFeatures",
    "FeatureTracker",
    "ProblemFeatures",
    "decision_features",
    "descriptor",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: Static per-task features of the whole DAG, the graph encoder's node inputs (times in units
#: of the lower bound). Not the environment's ``wass_env.envs.TASK_FEATURES``, which describe
#: the one task being placed.
DAG_TASK_FEATURES: tuple[str, ...] = (
    "mean_runtime",  # mean runtime over the nodes it fits on
    "min_runtime",  # runtime on its fastest node
    "upward_rank",  # HEFT rank: mean runtime + mean communication to the exit
    "downward_rank",  # longest mean path from an entry task, excluding the task
    "criticality",  # (upward + downward rank) / longest such path: 1 on the critical path
    "depth",  # level / deepest level
    "log_parents",  # log(1 + number of parents)
    "log_children",  # log(1 + number of children)
    "input_comm",  # mean transfer time of its parents' data
    "output_comm",  # mean transfer time of the data it sends to its children
    "stage_in",  # time to read its external inputs
    "cores",  # cores / largest node's cores
    "memory",  # memory / largest node's memory (0 when unlimited)
    "log_heterogeneity",  # log(mean runtime / fastest runtime)
    "fit_fraction",  # fraction of the nodes it fits on
    "tail_bound",  # longest fastest-runtime chain from it to an exit, itself included
)
#: Whole-problem features.
GRAPH_FEATURES: tuple[str, ...] = (
    "log_tasks",  # log(number of tasks)
    "edges_per_task",  # edges / tasks
    "depth_ratio",  # levels / tasks: 1 for a chain, ~0 for a wide bag of tasks
    "log_ccr",  # log(1 + communication-to-computation ratio)
    "log_nodes",  # log(number of nodes)
    "speed_cv",  # coefficient of variation of node speeds
    "cores_cv",  # coefficient of variation of node core counts
    "path_share",  # critical path / lower bound (1 when the path binds)
    "work_share",  # work bound / lower bound (1 when capacity binds)
    "log_parallelism",  # log(total mean runtime / critical path)
    "fit_fraction",  # mean over tasks of the fraction of nodes they fit on
    "log_cores",  # log(total cores)
)
#: Features of the partial plan when ``task`` is to be placed (times / lower bound).
STATE_FEATURES: tuple[str, ...] = (
    "progress",  # tasks placed / tasks
    "work_left",  # mean core-seconds of unplaced tasks / all tasks
    "partial_makespan",  # latest finish placed so far
    "frontier_bound",  # lower bound on the final makespan given the placed tasks
    "release",  # when the task's last parent finishes
    "best_finish",  # the task's earliest finish over the nodes
    "ready_fraction",  # ready tasks / tasks
    "mean_load",  # core-seconds placed / total cores
    "load_spread",  # std over nodes of core-seconds placed per core
    "slowdown",  # runtime placed / fastest runtime of the placed tasks, minus 1
    "remote_bytes",  # fraction of the bytes between placed tasks that cross nodes
    "utilization",  # core-seconds placed / (partial makespan x total cores)
    "capacity_left",  # fastest core-seconds of unplaced tasks / total cores
    "frontier_gap",  # frontier bound - partial makespan
    "greedy_rate",  # fraction of the decisions seen so far that took an earliest-finish node
    "choice_gap",  # mean over those decisions of (finish there - best finish)
    "locality_rate",  # fraction of them (with input bytes) that took a most-local node
)
#: Features of placing ``task`` on each node (times / lower bound).
ACTION_FEATURES: tuple[str, ...] = (
    "finish",  # earliest finish there
    "finish_gap",  # earliest finish minus the best over the nodes
    "queue_wait",  # start minus data-ready time (waiting for cores)
    "data_wait",  # data-ready time minus release (waiting for transfers)
    "log_slowdown",  # log(runtime there / fastest runtime)
    "speed",  # node speed / fastest node
    "cores",  # node cores / largest node's cores
    "local_input",  # fraction of the task's input bytes already on the node
    "load",  # core-seconds placed on the node per core
    "makespan_increase",  # growth of the partial makespan
    "bound_after",  # lower bound on the final makespan after this placement
    "bound_increase",  # bound_after - frontier bound
    "is_best",  # 1 where the earliest finish is the best over the nodes
    # What the placement leaves for later (wass_env.envs.lookahead, the environment's own
    # lookahead columns): PEFT's optimistic cost to the exit, the children's data locality and
    # the latest child's best finish if the task goes there (HEFT with lookahead's criterion).
    *(f"lookahead_{name}" for name in LOOKAHEAD_FEATURES),
)
_CLIP = 100.0  # features are clipped to [-_CLIP, _CLIP]: infinite or huge values stay finite


def _tail_bound(problem: Problem, runtime: F64) -> F64:
    """Longest ``runtime`` chain from each task to an exit, the task included, no transfers [s]."""
    wf = problem.workflow
    rt = runtime.tolist()
    dst = wf.edge_dst.tolist()
    cptr = wf.child_ptr.tolist()
    cedges = wf.child_edges.tolist()
    out = [0.0] * wf.n_tasks
    for v in reversed(wf.topo_order.tolist()):
        best = 0.0
        for k in range(cptr[v], cptr[v + 1]):
            val = out[dst[cedges[k]]]
            if val > best:
                best = val
        out[v] = rt[v] + best
    return np.asarray(out)


class ProblemFeatures:
    """Static features of one problem, computed once per episode.

    Args:
        problem: The workflow on its cluster.

    Attributes:
        problem: The problem.
        scale: Lower bound on the makespan [s]; the time unit of every feature.
        task: ``(n_tasks, len(DAG_TASK_FEATURES))`` float32.
        graph: ``(len(GRAPH_FEATURES),)`` float32.
        edge_src, edge_dst: The DAG's edges (parent, child), sorted by child.
        tail: Longest fastest-runtime chain from each task to an exit [s].
    """

    def __init__(self, problem: Problem) -> None:
        p = problem
        wf, cl = p.workflow, p.cluster
        self.problem = p
        self.scale = float(p.lower_bound()) or 1.0  # [s]
        inv = 1.0 / self.scale
        n = wf.n_tasks
        mean_exec, min_exec = p.mean_exec, p.min_exec
        rank_u, rank_d = p.upward_rank(), p.downward_rank()
        self.tail = _tail_bound(p, min_exec)
        # Per-task sums over edges, in edge order from 0 (as np.add.at adds them).
        in_comm = np.bincount(wf.edge_dst, weights=p.mean_comm, minlength=n)
        out_comm = np.bincount(wf.edge_src, weights=p.mean_comm, minlength=n)
        in_bytes = np.bincount(wf.edge_dst, weights=wf.edge_bytes, minlength=n)
        longest = float(np.max(rank_u + rank_d)) or 1.0
        mem = cl.memory[np.isfinite(cl.memory)]
        max_mem = float(mem.max()) if mem.size else 0.0
        fit_frac = p.fits.mean(axis=1)
        x = np.empty((n, len(DAG_TASK_FEATURES)))
        x[:, 0] = mean_exec * inv
        x[:, 1] = min_exec * inv
        x[:, 2] = rank_u * inv
        x[:, 3] = rank_d * inv
        x[:, 4] = (rank_u + rank_d) / longest
        x[:, 5] = wf.levels / max(int(wf.levels.max()), 1)
        x[:, 6] = np.log1p(wf.n_parents)
        x[:, 7] = np.log1p(wf.n_children)
        x[:, 8] = in_comm * inv
        x[:, 9] = out_comm * inv
        x[:, 10] = p.stage_in * inv
        x[:, 11] = wf.cores / float(cl.cores.max())
        x[:, 12] = wf.memory / max_mem if max_mem > 0 else 0.0
        x[:, 13] = np.log(np.where(min_exec > 0, mean_exec / np.maximum(min_exec, 1e-300), 1.0))
        x[:, 14] = fit_frac
        x[:, 15] = self.tail * inv
        self.task: F32 = np.clip(x, -_CLIP, _CLIP).astype(np.float32)

        def cv(a: NDArray[np.floating]) -> float:
            m = float(np.mean(a))
            return float(np.std(a) / m) if m > 0 else 0.0

        cp, wb = p.critical_path(), p.work_bound()
        g = np.array(
            [
                np.log(n),
                wf.n_edges / n,
                (int(wf.levels.max()) + 1) / n,
                np.log1p(p.ccr()),
                np.log(cl.n_nodes),
                cv(cl.speed),
                cv(cl.cores),
                cp * inv,
                wb * inv,
                np.log(max(float(mean_exec.sum()) / cp, 1e-12)) if cp > 0 else 0.0,
                float(fit_frac.mean()),
                np.log(cl.total_cores),
            ]
        )
        self.graph: F32 = np.clip(g, -_CLIP, _CLIP).astype(np.float32)
        self.edge_src = wf.edge_src
        self.edge_dst = wf.edge_dst
        # Per-decision helpers.
        self._edge_bytes = wf.edge_bytes
        self._entries = wf.entry_tasks
        self._min_exec = min_exec
        self._mean_work = mean_exec * wf.cores  # [core-s]
        self._min_work = min_exec * wf.cores  # [core-s]
        self._mean_work_total = float(self._mean_work.sum()) or 1.0
        self._total_cores = float(cl.total_cores)
        self._node_cores = cl.cores.astype(np.float64)
        self._speed = cl.speed / float(cl.speed.max())
        self._cores = cl.cores / float(cl.cores.max())
        self._fits_all: list[bool] = np.all(p.fits, axis=1).tolist()  # type: ignore[assignment]
        # Python lists: the tracker reads them one element at a time.
        self._stage_l = p.stage_in.tolist()
        self._tail_l = self.tail.tolist()
        self._src_l = wf.edge_src.tolist()
        self._bytes_l = wf.edge_bytes.tolist()
        self._in_bytes_l = in_bytes.tolist()
        self._pptr_l = wf.parent_ptr.tolist()
        self._cptr_l = wf.child_ptr.tolist()
        self._children_l = wf.edge_dst[wf.child_edges].tolist()
        self._mean_work_l = self._mean_work.tolist()
        self._min_work_l = self._min_work.tolist()
        self._min_exec_l = min_exec.tolist()
        with np.errstate(divide="ignore"):
            ratio = p.exec_time / np.maximum(min_exec, 1e-300)[:, None]
            self._log_slowdown = np.where(
                p.fits & (min_exec[:, None] > 0), np.log(np.maximum(ratio, 1e-300)), 0.0
            )
        self.lookahead = Lookahead.of(problem, _CLIP)  # per-node lookahead columns

    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return self.problem.n_tasks

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.problem.n_nodes


@dataclass(frozen=True)
class DecisionFeatures:
    """Everything the teacher reads about one decision.

    Attributes:
        task: The task to place.
        state: ``(len(STATE_FEATURES),)`` float32.
        actions: ``(n_nodes, len(ACTION_FEATURES))`` float32 (zero rows where it does not fit).
        feasible: ``(n_nodes,)`` bool: the nodes the task fits on.
        finish: Earliest finish per node [s] (``inf`` where it does not fit).
        unplaced: ``(n_tasks,)`` bool: tasks not placed yet (the task itself included).
    """

    task: int
    state: F32
    actions: F32
    feasible: NDArray[np.bool_]
    finish: F64
    unplaced: NDArray[np.bool_]


class FeatureTracker:
    """Decision features of one episode, kept up to date placement by placement.

    Sums over the placed tasks and the frontier bound (a heap of "task ``c`` cannot finish its
    chain to an exit before ``v``" entries, dropped lazily once ``c`` is placed) are updated from
    each new placement instead of being recomputed over the whole DAG, so a decision costs a few
    vector operations over the nodes. The tracker follows one :class:`PlanBuilder`: it reads the
    placements made since its last call from ``builder.decision``.

    It also summarises how the run has behaved so far (``greedy_rate``, ``choice_gap``,
    ``locality_rate``): when the task of its last :meth:`decision` call gets placed, it notes
    whether the chosen node had the earliest finish and the most local input. Placements made
    without a :meth:`decision` call before them are not counted, so call it at every decision.

    Args:
        pf: Static features of the problem.
    """

    def __init__(self, pf: ProblemFeatures) -> None:
        self.pf = pf
        self._builder: PlanBuilder | None = None
        self._reset()

    def _reset(self) -> None:
        pf = self.pf
        self._count = 0  # placements folded in so far
        self._mean_left = pf._mean_work_total  # [core-s]
        self._min_left = float(pf._min_work.sum())  # [core-s]
        self._runtime = 0.0  # [s] planned runtime of the placed tasks
        self._fastest = 0.0  # [s] their fastest runtime
        self._moved = 0.0  # [bytes] between placed tasks
        self._remote = 0.0  # [bytes] of those, across nodes
        heap = [(-(pf._stage_l[e] + pf._tail_l[e]), e) for e in pf._entries.tolist()]
        heapq.heapify(heap)
        self._heap = heap
        self._seen = 0  # decisions whose choice was observed
        self._greedy = 0.0  # of those, choices of an earliest-finish node
        self._gap = 0.0  # sum of (finish there - best finish) / scale
        self._local_seen = 0  # observed decisions of tasks with input bytes
        self._local = 0.0  # of those, choices of a most-local node
        self._last_task = -1
        self._last_a: np.ndarray | None = None  # rows finish_gap, is_best of the last decision
        self._last_local: np.ndarray | None = None
        self._block = np.empty((len(ACTION_FEATURES), pf.n_nodes))
        self._block_dirty = True  # rows speed, cores need filling

    def _sync(self, builder: PlanBuilder) -> None:
        if builder is not self._builder or builder.n_placed < self._count:
            if builder.problem is not self.pf.problem:
                raise ValueError("the builder plans another problem than this tracker's")
            self._builder = builder
            self._reset()
        k = builder.n_placed
        if k == self._count:
            return
        last = self._last_task
        if k == self._count + 1 and last >= 0 and builder.node[last] >= 0:
            placed = [last]  # the common case: the task of the last decision() call
        else:
            dec = builder.decision
            new = np.flatnonzero(dec >= self._count)
            placed = new[np.argsort(dec[new])].tolist()
        pf = self.pf
        node = builder.node
        exec_time = pf.problem.exec_time
        src, nbytes = pf._src_l, pf._bytes_l
        pptr, cptr, children = pf._pptr_l, pf._cptr_l, pf._children_l
        tail = pf._tail_l
        heap = self._heap
        for t in placed:
            nt = int(node[t])
            ft = float(builder.finish[t])
            self._mean_left -= pf._mean_work_l[t]
            self._min_left -= pf._min_work_l[t]
            self._runtime += float(exec_time[t, nt])
            self._fastest += pf._min_exec_l[t]
            for e in range(pptr[t], pptr[t + 1]):
                self._moved += nbytes[e]
                if int(node[src[e]]) != nt:
                    self._remote += nbytes[e]
            for k2 in range(cptr[t], cptr[t + 1]):
                c = children[k2]
                heapq.heappush(heap, (-(ft + tail[c]), c))
            if t == self._last_task:
                self._seen += 1
                self._greedy += float(self._last_a[1, nt])  # type: ignore[index]
                self._gap += float(self._last_a[0, nt])  # type: ignore[index]
                if self._last_local is not None:
                    self._local_seen += 1
                    self._local += float(self._last_local[nt])
                self._last_task = -1
        self._count = k

    def _bounds(self, builder: PlanBuilder, task: int) -> tuple[float, float]:
        """``(other, own)``: the frontier bound from every unplaced task but ``task``, and from
        ``task`` alone [s]."""
        pf = self.pf
        node = builder.node
        heap = self._heap
        own = pf._stage_l[task] + pf._tail_l[task]
        held = []
        while heap:
            v, c = heap[0]
            if node[c] >= 0:
                heapq.heappop(heap)
            elif c == task:
                held.append(heapq.heappop(heap))
                own = max(own, -v)
            else:
                break
        other = max(float(builder.max_finish), -heap[0][0] if heap else 0.0)
        for item in held:
            heapq.heappush(heap, item)
        return other, own

    def decision(self, builder: PlanBuilder, task: int) -> DecisionFeatures:
        """State and per-node action features for placing ready ``task`` now.

        Args:
            builder: The partial plan (of this tracker's problem).
            task: A ready task.
        """
        self._sync(builder)
        pf = self.pf
        p = pf.problem
        inv = 1.0 / pf.scale
        est = builder.earliest_start(task)
        eft = est + p.exec_time[task]
        drt = builder.data_ready(task)
        feasible = p.fits[task]
        release = builder.release_time(task)
        max_finish = float(builder.max_finish)
        other, own = self._bounds(builder, task)
        bound = max(other, own)  # [s] lower bound on the final makespan
        busy = builder.node_busy
        total_busy = float(busy.sum())
        n_placed = builder.n_placed
        n = pf.n_tasks
        if pf._fits_all[task]:
            eft_f = eft
            best = float(eft.min())
        else:
            eft_f = np.where(feasible, eft, np.inf)
            best = float(eft_f.min())
            eft_f[~feasible] = best
        per_core = busy / pf._node_cores
        mean_pc = total_busy / pf._total_cores  # not the mean of per_core: weighted by cores
        m1 = float(per_core.sum()) / pf.n_nodes
        spread = math.sqrt(max(float(per_core @ per_core) / pf.n_nodes - m1 * m1, 0.0))
        state32 = np.array(
            [
                n_placed / n,
                self._mean_left / pf._mean_work_total,
                max_finish * inv,
                bound * inv,
                release * inv,
                best * inv,
                len(builder.ready) / n,
                mean_pc * inv,
                spread * inv,
                self._runtime / self._fastest - 1.0 if self._fastest > 0 else 0.0,
                self._remote / self._moved if self._moved > 0 else 0.0,
                total_busy / (max_finish * pf._total_cores) if max_finish > 0 else 0.0,
                max(self._min_left, 0.0) / pf._total_cores * inv,
                (bound - max_finish) * inv,
                self._greedy / self._seen if self._seen else 0.0,
                self._gap / self._seen if self._seen else 0.0,
                self._local / self._local_seen if self._local_seen else 0.0,
            ],
            dtype=np.float32,  # each value rounded once, as float64 then float32 would
        )
        n_nodes = pf.n_nodes
        # One (features x nodes) float64 block, filled row by row in place; the node rows
        # (speed, cores) stay from the last call unless infeasible columns were zeroed.
        a = self._block
        if self._block_dirty:
            a[5] = pf._speed
            a[6] = pf._cores
            self._block_dirty = False
        np.multiply(eft_f, inv, out=a[0])
        np.subtract(a[0], best * inv, out=a[1])
        np.subtract(est, drt, out=a[2])  # inf where the task does not fit: zeroed below
        np.subtract(drt, release, out=a[3])
        a[2:4] *= inv
        a[4] = pf._log_slowdown[task]
        total_in = pf._in_bytes_l[task]
        if total_in > 0:
            lo, hi = pf._pptr_l[task], pf._pptr_l[task + 1]
            local = a[7]
            if hi - lo <= 8:
                # Summed in edge order from 0, as np.bincount does.
                node_l, src, nbytes = builder.node, pf._src_l, pf._bytes_l
                acc: dict[int, float] = {}
                for e in range(lo, hi):
                    k = int(node_l[src[e]])
                    acc[k] = acc.get(k, 0.0) + nbytes[e]
                local.fill(0.0)
                for k, v in acc.items():
                    local[k] = v / total_in
            else:
                local[:] = np.bincount(
                    builder.node[pf.edge_src[lo:hi]],
                    weights=pf._edge_bytes[lo:hi],
                    minlength=n_nodes,
                )
                local /= total_in
            top = float(local.max() if pf._fits_all[task] else local[feasible].max())
            self._last_local = local >= top - 1e-12
        else:
            a[7] = 0.0
            self._last_local = None
        np.multiply(per_core, inv, out=a[8])
        mf = max_finish * inv
        np.maximum(a[0], mf, out=a[9])
        a[9] -= mf
        np.add(a[0], (pf._tail_l[task] - pf._min_exec_l[task]) * inv, out=a[10])
        np.maximum(a[10], other * inv, out=a[10])
        np.subtract(a[10], bound * inv, out=a[11])
        np.less_equal(a[1], 1e-9 * (best * inv) + 1e-12, out=a[12])
        a[13:] = pf.lookahead(builder, task, eft, release, pf.scale).T
        self._last_task = task
        if not pf._fits_all[task]:
            a[:, ~feasible] = 0.0
            self._block_dirty = True
        # Read back when the task gets placed (is_best, finish_gap): the columns it needs.
        self._last_a = a[[1, 12]]
        # Every feature is >= 0 by construction; only cap the large ones.
        actions = a.T.astype(np.float32)
        np.minimum(actions, _CLIP, out=actions)
        np.minimum(state32, _CLIP, out=state32)
        return DecisionFeatures(
            task=task,
            state=state32,
            actions=actions,
            feasible=feasible,
            finish=eft,
            unplaced=builder.node < 0,
        )


def decision_features(pf: ProblemFeatures, builder: PlanBuilder, task: int) -> DecisionFeatures:
    """State and per-node action features for placing ready ``task`` now (one-off).

    Step-by-step callers keep a :class:`FeatureTracker` instead: it does the same in time
    independent of the number of placed tasks.
    """
    return FeatureTracker(pf).decision(builder, task)


#: Length of :func:`descriptor` vectors.
DESCRIPTOR_DIM = len(GRAPH_FEATURES) + len(DAG_TASK_FEATURES) + len(STATE_FEATURES)


def descriptor(pf: ProblemFeatures, d: DecisionFeatures) -> F32:
    """A parameter-free state vector: graph, task and state features side by side.

    It keys the knowledge base before an encoder is trained (see :mod:`teacher.kb`).
    """
    return np.concatenate([pf.graph, pf.task[d.task], d.state])
