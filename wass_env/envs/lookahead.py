"""Per-node lookahead features: what placing the current task on a node means for what follows.

The basic node features of ``WassSched-v0`` describe the task itself (when it could start and
finish on each node). A greedy earliest-finish rule reads them directly; what it cannot see is the
cost it leaves for later: children that must fetch the task's output from another node, or a
critical child that cannot start early on any node. These columns describe that, per node ``n``
where the current task ``t`` might go:

* ``oct``: PEFT's optimistic cost to the exit if ``t`` runs on ``n`` (Arabnejad & Barbosa 2014).
* ``eft_oct_gap``: ``EFT(t, n) + OCT(t, n)`` minus its minimum over nodes (PEFT's criterion).
* ``child_local``: share of the children's known input bytes (from placed parents and from ``t``)
  that would already be on ``n`` if ``t`` went there and the children followed.
* ``child_eft``: the latest of the children's best finish times if ``t`` goes to ``n`` (each
  child on its own best node, unplaced other parents ignored): the criterion of HEFT with
  lookahead (Bittencourt, Sakellariou & Madeira 2010), measured from ``t``'s release. A task
  without children counts as its own child: ``child_eft`` is then its finish on ``n``, as HEFT
  with lookahead places such a task by earliest finish. So "lowest ``child_eft``" is one rule
  for every task.
* ``child_eft_gap``: ``child_eft`` minus its minimum over nodes.
* ``child_colocated``: the children's latest finish if they all ran on ``n`` too, minus the
  best ``child_eft`` (without children: ``child_eft_gap``): what keeping the data local would
  cost or save.
* ``lookahead_gap``: HEFT with lookahead's own score of ``n`` (the children placed one by one by
  earliest finish after ``t``, in a copy of the plan, so they compete for nodes, as the
  scheduler does; :class:`~wass_env.sim.child_lookahead.ChildLookahead`) minus its minimum
  over nodes. 0 on the node that heuristic picks (ties aside); a lower bound on nodes that
  cannot win. ``child_eft`` is its cheap approximation over at most :data:`MAX_CHILDREN`
  children that ignore each other.

Times are divided by the instance's time scale (the environment's lower bound), like every other
feature. At most :data:`MAX_CHILDREN` children are considered (those with the largest input
edges from ``t``), so a step costs ``O(children x nodes^2)`` whatever the workflow's size;
``lookahead_gap`` costs what one decision of HEFT with lookahead costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.child_lookahead import ChildLookahead
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["LOOKAHEAD_FEATURES", "MAX_CHILDREN", "Lookahead", "lookahead_column"]

#: Names of the columns of ``obs["lookahead"]``.
LOOKAHEAD_FEATURES: tuple[str, ...] = (
    "oct",
    "eft_oct_gap",
    "child_local",
    "child_eft",
    "child_eft_gap",
    "child_colocated",
    "lookahead_gap",
)
#: Children of the current task considered by the child features (largest edges first).
MAX_CHILDREN = 8


def lookahead_column(name: str) -> int:
    """Index of a :data:`LOOKAHEAD_FEATURES` column.

    Raises:
        ValueError: naming the value and the columns, if there is no such column.
    """
    if name not in LOOKAHEAD_FEATURES:
        raise ValueError(f"{name!r} is not a lookahead column {list(LOOKAHEAD_FEATURES)}")
    return LOOKAHEAD_FEATURES.index(name)


class Lookahead:
    """Computes :data:`LOOKAHEAD_FEATURES` for one problem.

    Args:
        problem: The problem (its static tables are precomputed here once).
        clip: Upper bound of every feature (the observation Box's bound).
    """

    def __init__(self, problem: Problem, clip: float) -> None:
        self.problem = problem
        self.clip = float(clip)
        wf = problem.workflow
        n = problem.n_nodes
        self._oct = problem.optimistic_cost()
        self._cost = np.where(problem.fits, problem.exec_time, np.inf)  # [s]
        delay = problem.edge_delay()
        if delay is None:  # per-pair network: the mean transfer time is the estimate
            delay = problem.mean_comm
        self._delay = np.asarray(delay, dtype=np.float64)  # [s] per edge between distinct nodes
        self._off_diag = ~np.eye(n, dtype=bool)
        # Per task: its child edges, largest bytes first, at most MAX_CHILDREN, and the
        # children's other parent edges, grouped by child (built lazily, once per task).
        self._cptr = wf.child_ptr
        self._cedges = wf.child_edges
        self._per_task: dict[int, tuple[Any, ...]] = {}
        self._cores = wf.cores
        self._cap = problem.cluster.cores
        self._nodes = np.arange(n)
        self._child = ChildLookahead.of(problem)
        self._last: tuple[Any, ...] | None = None  # the last state asked for, and its columns

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the last state's columns (and the plan they belong to)."""
        return {**self.__dict__, "_last": None}

    @classmethod
    def of(cls, problem: Problem, clip: float) -> Lookahead:
        """The problem's shared instance for ``clip`` (made on first use, kept with the
        problem's tables): the environment's observation and the teacher's features ask for
        the same state's columns, and the second request costs nothing."""
        key = f"lookahead/{float(clip)!r}"
        got = problem._cache.get(key)
        if got is None:
            got = problem._cache[key] = cls(problem, clip)
        return got  # type: ignore[no-any-return]

    def _static(self, task: int) -> tuple[Any, ...]:
        """Child edges of ``task`` and its children's other parent edges (cached)."""
        got = self._per_task.get(task)
        if got is not None:
            return got
        wf = self.problem.workflow
        edges = self._cedges[self._cptr[task] : self._cptr[task + 1]]
        if edges.size > MAX_CHILDREN:
            edges = edges[np.argsort(-wf.edge_bytes[edges], kind="stable")[:MAX_CHILDREN]]
        children = wf.edge_dst[edges]
        co_edges: list[int] = []
        starts: list[int] = []
        for c in children.tolist():
            starts.append(len(co_edges) + len(starts))  # one stage-in row leads each group
            sl = wf.parent_edge_slice(c)
            co_edges.extend(e for e in range(sl.start, sl.stop) if wf.edge_src[e] != task)
        co = np.asarray(co_edges, dtype=np.int64)
        # Row layout: per child, a stage-in row then its other parents' edges.
        rows = len(co_edges) + len(starts)
        is_stage = np.zeros(rows, dtype=bool)
        is_stage[starts] = True
        row_edge = np.full(rows, -1, dtype=np.int64)
        row_edge[~is_stage] = co
        row_child = np.cumsum(is_stage) - 1
        got = (
            edges,
            children,
            np.asarray(starts, dtype=np.int64),
            row_edge,
            is_stage,
            self.problem.stage_in[children][row_child],
            self._cost[children],
            self._cores[children],
            self._delay[edges],
            wf.edge_bytes[edges],
        )
        self._per_task[task] = got
        return got

    def __call__(
        self,
        builder: PlanBuilder,
        task: int,
        eft: NDArray[np.float64],
        release: float,
        scale: float,
    ) -> NDArray[np.float64]:
        """The features, shape ``(n_nodes, len(LOOKAHEAD_FEATURES))``, read-only.

        Args:
            builder: The partial plan.
            task: The task to place (ready).
            eft: Its earliest finish time on every node (``inf`` where it does not fit) [s]:
                ``builder.earliest_finish(task)``.
            release: When its last parent finishes [s].
            scale: Time unit of the features [s].
        """
        last = self._last
        if (
            last is not None
            and last[0] is builder
            and last[1:5] == (builder.n_placed, task, release, scale)
        ):
            return last[5]  # type: ignore[no-any-return]
        out = self._columns(builder, task, eft, release, scale)
        out.flags.writeable = False
        # A plan only grows: the builder and its number of placed tasks name the state.
        self._last = (builder, builder.n_placed, task, release, scale, out)
        return out

    def _columns(
        self,
        builder: PlanBuilder,
        task: int,
        eft: NDArray[np.float64],
        release: float,
        scale: float,
    ) -> NDArray[np.float64]:
        p = self.problem
        wf = p.workflow
        n = p.n_nodes
        out = np.zeros((n, len(LOOKAHEAD_FEATURES)))
        inv = 1.0 / scale
        feasible = np.isfinite(eft)
        oct_t = self._oct[task]
        out[:, 0] = oct_t * inv
        crit = np.where(feasible, eft + oct_t, np.inf)
        out[:, 1] = (crit - crit[feasible].min()) * inv
        (edges, _children, starts, row_edge, is_stage, stage, cost, cores_c, d_own, b_own) = (
            self._static(task)
        )
        if edges.size:
            wf = p.workflow
            # Arrival of the children's other placed parents at every node: (rows, n); each
            # child's group starts with its stage-in row, so every group is non-empty.
            arr = np.repeat(stage[:, None], n, axis=1)
            co = row_edge[~is_stage]
            src = wf.edge_src[co]
            pn = builder.node[src]
            placed = pn >= 0
            local = np.zeros(n)
            known = float(b_own.sum())
            if placed.any():
                co_rows = np.flatnonzero(~is_stage)[placed]
                pe = co[placed]
                pnp = pn[placed]
                arr[co_rows] = builder.finish[src[placed]][:, None] + self._delay[pe][:, None] * (
                    pnp[:, None] != self._nodes[None, :]
                )
                pb = wf.edge_bytes[pe]
                local = np.bincount(pnp, weights=pb, minlength=n).astype(np.float64)
                known += float(pb.sum())
            drt_other = np.maximum.reduceat(arr, starts, axis=0)  # (c, n)
            # Data ready of child i on node m if the task runs on node k: (c, k, m).
            own = eft[None, :, None] + d_own[:, None, None] * self._off_diag[None]
            drt = np.maximum(drt_other[:, None, :], own)
            # Per child, when its cores free up on each node (the task's own cores ignored,
            # except that a node too small for both waits for the task).
            avail = np.stack([builder.free_from(int(k)) for k in cores_c.tolist()])
            est = np.maximum(drt, avail[:, None, :])
            both_fit = (self._cap[None, :] - self._cores[task]) >= cores_c[:, None]  # (c, k)
            diag = self._nodes
            est[:, diag, diag] = np.where(
                both_fit, est[:, diag, diag], np.maximum(est[:, diag, diag], eft[None, :])
            )
            child_fin = est + cost[:, None, :]  # (c, k, m)
            best = child_fin.min(axis=2).max(axis=0)  # (k,): latest child at its best
            colocated = child_fin[:, diag, diag].max(axis=0)  # every child on k too
            best = np.where(feasible, best, np.inf)
            finite = np.isfinite(best)
            low = best[finite].min() if finite.any() else 0.0
            out[:, 3] = (best - release) * inv
            out[:, 4] = (best - low) * inv
            out[:, 5] = (colocated - low) * inv
            # Local share of the children's known input bytes if they followed the task to k.
            if known > 0:
                out[:, 2] = (local + float(b_own.sum())) / known
        else:
            # No children: the latest finish of the task and its children is the task's own,
            # so the child columns reduce to its finish (HEFT with lookahead's rule there).
            low = eft[feasible].min()
            out[:, 3] = (eft - release) * inv
            out[:, 4] = (eft - low) * inv
            out[:, 5] = out[:, 4]
        hl = self._child.scores(builder, task, eft)
        out[:, 6] = (hl - hl[feasible].min()) * inv
        out[~feasible] = self.clip
        np.clip(out, 0.0, self.clip, out=out)
        return out
