"""The graph part of the observation: the current task's neighbourhood in the DAG, padded.

A graph neural network needs the DAG; Stable-Baselines3 needs fixed shapes. The whole workflow
does not fit a fixed shape for every size, and most of it does not bear on where the current
task should go; its *neighbourhood* does: its children (which will read its output), their other
parents (whose data pulls the children toward their nodes), its parents, its grandchildren and
its siblings. The window lists up to ``size`` tasks in that order (breadth first, the current task
in row 0), with the DAG edges among them, so the cost of an observation and of the network does
not grow with the workflow. Global structure reaches the policy through the task features (upward
rank, depth) and the lookahead node features.

Arrays (float32, padded with zeros):

* ``graph_tasks``: ``(size, len(GRAPH_TASK_FEATURES))``, one row per task of the window.
* ``graph_edges``: ``(4 * size, len(GRAPH_EDGE_FEATURES))``: ``src`` and ``dst`` (row indices in
  the window), ``valid`` (1 for a real edge) and the edge's transfer time / scale.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["GRAPH_EDGE_FEATURES", "GRAPH_TASK_FEATURES", "RELATIONS", "GraphWindow"]

#: How a window task relates to the current task (one-hot columns of ``graph_tasks``).
RELATIONS: tuple[str, ...] = ("current", "child", "parent", "co_parent", "grandchild", "sibling")
#: Names of the columns of ``obs["graph_tasks"]``.
GRAPH_TASK_FEATURES: tuple[str, ...] = (
    "valid",
    *(f"is_{r}" for r in RELATIONS),
    "placed",  # 1 once the task has a node
    "ready",  # all parents placed, not placed itself
    "mean_runtime",  # / scale
    "upward_rank",  # / scale
    "finish",  # placed tasks: planned finish after the current task's release / scale
    "out_comm",  # mean transfer time of its outputs / scale
    "n_children",  # min(children, 16) / 16
)
#: Names of the columns of ``obs["graph_edges"]``.
GRAPH_EDGE_FEATURES: tuple[str, ...] = ("src", "dst", "valid", "comm")


class GraphWindow:
    """Builds the padded neighbourhood arrays for one problem.

    Args:
        problem: The problem.
        size: Tasks per window (rows of ``graph_tasks``); edges get ``4 * size`` rows.
        clip: Upper bound of the time features.
    """

    def __init__(self, problem: Problem, size: int, clip: float) -> None:
        self.problem = problem
        self.size = int(size)
        self.max_edges = 4 * self.size
        self.clip = float(clip)
        wf = problem.workflow
        self._parents = [wf.parents(t).tolist() for t in range(wf.n_tasks)]
        self._children = [wf.children(t).tolist() for t in range(wf.n_tasks)]
        # Edge id of every (parent, child) pair, for the edge features.
        self._edge = {
            (s, d): e
            for e, (s, d) in enumerate(zip(wf.edge_src.tolist(), wf.edge_dst.tolist(), strict=True))
        }
        out_comm = np.zeros(wf.n_tasks)
        if wf.n_edges:
            np.add.at(out_comm, wf.edge_src, problem.mean_comm)
        self._static = np.stack(
            [
                problem.mean_exec,
                problem.upward_rank(),
                out_comm,
                np.minimum(wf.n_children, 16) / 16.0,
            ],
            axis=1,
        )
        self._comm = problem.mean_comm

    def window(self, task: int) -> list[tuple[int, int]]:
        """``(task, relation index)`` of the window's tasks, current task first."""
        seen = {task}
        rows = [(task, 0)]
        size = self.size

        def add(tasks: list[int], rel: int) -> bool:
            for u in tasks:
                if u not in seen:
                    seen.add(u)
                    rows.append((u, rel))
                    if len(rows) >= size:
                        return False
            return True

        kids = self._children[task]
        parents = self._parents[task]
        if not add(kids, 1) or not add(parents, 2):
            return rows
        for c in kids:
            if not add(self._parents[c], 3):
                return rows
        for c in kids:
            if not add(self._children[c], 4):
                return rows
        for q in parents:
            if not add(self._children[q], 5):
                return rows
        return rows

    def __call__(
        self, builder: PlanBuilder, task: int, release: float, scale: float
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(graph_tasks, graph_edges)`` for the current ``task``."""
        rows = self.window(task)
        n_f = len(GRAPH_TASK_FEATURES)
        tasks = np.zeros((self.size, n_f), dtype=np.float32)
        edges = np.zeros((self.max_edges, len(GRAPH_EDGE_FEATURES)), dtype=np.float32)
        ids = [u for u, _ in rows]
        idx = np.asarray(ids)
        k = len(rows)
        inv = 1.0 / scale
        tasks[:k, 0] = 1.0
        tasks[np.arange(k), 1 + np.asarray([r for _, r in rows])] = 1.0
        node = builder.node[idx]
        placed = node >= 0
        tasks[:k, 7] = placed
        tasks[:k, 8] = [u in builder.ready for u in ids]
        st = self._static[idx]
        tasks[:k, 9] = st[:, 0] * inv
        tasks[:k, 10] = st[:, 1] * inv
        fin = np.where(placed, builder.finish[idx] - release, 0.0)
        tasks[:k, 11] = np.maximum(fin, 0.0) * inv
        tasks[:k, 12] = st[:, 2] * inv
        tasks[:k, 13] = st[:, 3]
        np.clip(tasks, 0.0, self.clip, out=tasks)
        pos = {u: i for i, u in enumerate(ids)}
        j = 0
        for u in ids:
            for c in self._children[u]:
                if c in pos:
                    if j >= self.max_edges:
                        break
                    edges[j] = (
                        pos[u],
                        pos[c],
                        1.0,
                        min(self._comm[self._edge[(u, c)]] * inv, self.clip),
                    )
                    j += 1
        return tasks, edges
