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
  lookahead (Bittencourt, Sakellariou & Madeira 2010), measured from ``t``'s release.
* ``child_eft_gap``: ``child_eft`` minus its minimum over nodes.
* ``child_colocated``: the children's latest finish if they all ran on ``n`` too, minus the
  best ``child_eft``: what keeping the data local would cost or save.

Times are divided by the instance's time scale (the environment's lower bound), like every other
feature. At most :data:`MAX_CHILDREN` children are considered (those with the largest input
edges from ``t``), so a step costs ``O(children x nodes^2)`` whatever the workflow's size.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["LOOKAHEAD_FEATURES", "MAX_CHILDREN", "Lookahead"]

#: Names of the columns of ``obs["lookahead"]``.
LOOKAHEAD_FEATURES: tuple[str, ...] = (
    "oct",
    "eft_oct_gap",
    "child_local",
    "child_eft",
    "child_eft_gap",
    "child_colocated",
)
#: Children of the current task considered by the child features (largest edges first).
MAX_CHILDREN = 8


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
        # Per task: its child edges, largest bytes first, at most MAX_CHILDREN.
        cptr = wf.child_ptr
        cedges = wf.child_edges
        self._child_edges: list[NDArray[np.int64]] = []
        for t in range(wf.n_tasks):
            edges = cedges[cptr[t] : cptr[t + 1]]
            if edges.size > MAX_CHILDREN:
                edges = edges[np.argsort(-wf.edge_bytes[edges], kind="stable")[:MAX_CHILDREN]]
            self._child_edges.append(edges)
        self._cores = wf.cores
        self._cap = problem.cluster.cores

    def __call__(
        self,
        builder: PlanBuilder,
        task: int,
        eft: NDArray[np.float64],
        release: float,
        scale: float,
    ) -> NDArray[np.float64]:
        """The features, shape ``(n_nodes, len(LOOKAHEAD_FEATURES))``.

        Args:
            builder: The partial plan.
            task: The task to place (ready).
            eft: Its earliest finish time on every node (``inf`` where it does not fit) [s].
            release: When its last parent finishes [s].
            scale: Time unit of the features [s].
        """
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
        edges = self._child_edges[task]
        if edges.size:
            children = wf.edge_dst[edges]
            c_n = children.size
            # Other placed parents of each child: arrival at every node, and local bytes.
            drt_other = np.zeros((c_n, n))
            local_other = np.zeros((c_n, n))
            known_bytes = wf.edge_bytes[edges].copy()
            for i, c in enumerate(children.tolist()):
                sl = wf.parent_edge_slice(c)
                stage = p.stage_in[c]
                drt_other[i] = stage
                par = wf.edge_src[sl]
                placed = (builder.node[par] >= 0) & (par != task)
                if placed.any():
                    pe = np.arange(sl.start, sl.stop)[placed]
                    pn = builder.node[par[placed]]
                    pf = builder.finish[par[placed]]
                    arr = pf[:, None] + self._delay[pe][:, None] * (
                        pn[:, None] != np.arange(n)[None, :]
                    )
                    np.maximum(drt_other[i], arr.max(axis=0), out=drt_other[i])
                    pb = wf.edge_bytes[pe]
                    local_other[i] = np.bincount(pn, weights=pb, minlength=n)
                    known_bytes[i] += pb.sum()
            # Data ready of child i on node m if the task runs on node k: (c, k, m).
            own = eft[None, :, None] + self._delay[edges][:, None, None] * self._off_diag[None]
            drt = np.maximum(drt_other[:, None, :], own)
            cores_c = self._cores[children]
            tail = builder.free_from(1)  # [s] when a core frees for good on each node
            # Per child, when its cores free up on each node (the task's own cores ignored,
            # except that a node too small for both waits for the task).
            avail = np.stack([builder.free_from(int(k)) for k in cores_c]) if c_n else tail
            est = np.maximum(drt, avail[:, None, :])
            both_fit = (self._cap[None, :] - self._cores[task]) >= cores_c[:, None]  # (c, k)
            diag = np.arange(n)
            est[:, diag, diag] = np.where(
                both_fit, est[:, diag, diag], np.maximum(est[:, diag, diag], eft[None, :])
            )
            child_fin = est + self._cost[children][:, None, :]  # (c, k, m)
            best = child_fin.min(axis=2).max(axis=0)  # (k,): latest child at its best
            colocated = child_fin[:, diag, diag].max(axis=0)  # every child on k too
            best = np.where(feasible, best, np.inf)
            finite = np.isfinite(best)
            low = best[finite].min() if finite.any() else 0.0
            out[:, 3] = (best - release) * inv
            out[:, 4] = (best - low) * inv
            out[:, 5] = (colocated - low) * inv
            # Local share of the children's known input bytes if they followed the task to k.
            total = known_bytes.sum()
            if total > 0:
                mine = wf.edge_bytes[edges].sum()
                out[:, 2] = (local_other.sum(axis=0) + mine) / total
        out[~feasible] = self.clip
        np.clip(out, 0.0, self.clip, out=out)
        return out
