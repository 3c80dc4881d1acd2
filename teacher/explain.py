"""Explanations of the teacher's judgement of one decision, for an HPC engineer.

:func:`explain` returns, for a decision (place ready task ``t`` on the partial plan):

* the task: its type, its parents (and the node each runs on), the bytes it reads from them
  and from shared storage;
* every candidate node: its type and speed, the task's earliest finish there, the bytes that
  would move to it (inputs from parents on other nodes, plus the external inputs, which always
  come from shared storage), the predicted makespan / lower bound (``E_{k ~ C_t}`` over the
  retrieved cases) and its spread over those cases (the lowest and highest per-case
  prediction), with ``a*_t`` marked;
* the retrieved past cases (similarity, workflow, family, cluster, policy, the node chosen and
  where that run ended as makespan / lower bound), those of the query's own family first;
* one sentence saying why ``a*_t`` wins: against the runner-up and against the earliest-finish
  node, in seconds and bytes.

``str(explanation)`` prints all of it. :func:`explain_step` replays a policy on a problem up to a
given decision and explains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teacher.teacher import Evaluation, Teacher, TeacherConfigError
from wass_env.scheduling import Scheduler
from wass_env.sim.ordering import ReadyQueue
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["Case", "Explanation", "NodeScore", "Parent", "explain", "explain_step"]


@dataclass(frozen=True)
class Case:
    """One retrieved past decision."""

    rank: int
    record: int
    similarity: float
    weight: float  # its weight in E_{k ~ C_t} (0 with an averaged context)
    workflow: str
    family: str
    cluster: str
    policy: str
    continuation: str
    step: int
    action: int
    branch: bool
    ratio: float  # makespan / lower bound the run reached after that decision


@dataclass(frozen=True)
class Parent:
    """A parent of the task being placed."""

    task: str
    node: int  # the node it runs on
    bytes: float  # [bytes] it sends to the task


@dataclass(frozen=True)
class NodeScore:
    """The teacher's view of one candidate node."""

    node: int
    node_type: str
    speed: float
    finish: float  # [s] earliest finish of the task there (inf where it does not fit)
    moved: float  # [bytes] that would move to the node: remote parents' data + external inputs
    predicted: float  # predicted makespan / lower bound (inf where the task does not fit)
    low: float  # lowest per-case prediction
    high: float  # highest per-case prediction
    best: bool


@dataclass(frozen=True)
class Explanation:
    """Why the teacher scores a decision as it does."""

    workflow: str
    family: str
    cluster: str
    task: str
    task_type: str
    parents: tuple[Parent, ...]
    input_bytes: float  # [bytes] from the parents
    stage_in_bytes: float  # [bytes] of external inputs (shared storage)
    step: int
    reference: str | None
    cases: tuple[Case, ...]
    nodes: tuple[NodeScore, ...]
    best: int
    reason: str

    def table(self) -> str:
        """The whole explanation as text."""
        ref = self.reference or "unknown (the base's mixture)"
        par = ", ".join(f"{p.task} on n{p.node} ({_bytes(p.bytes)})" for p in self.parents)
        lines = [
            f"decision {self.step} of {self.workflow} ({self.family}) on {self.cluster}: "
            f"place task {self.task!r} (type {self.task_type or '-'})",
            f"  parents: {par or 'none'}; input {_bytes(self.input_bytes)} from parents, "
            f"{_bytes(self.stage_in_bytes)} from shared storage",
            f"  continuation policy assumed: {ref}",
            "",
            "per node (predicted makespan / lower bound over the retrieved cases; a* marked):",
            f"{'node':>4}  {'type':<10} {'speed':>5}  {'finish [s]':>11}  {'moves':>9}  "
            f"{'predicted':>9}  {'cases low-high':>15}",
        ]
        for n in self.nodes:
            if not np.isfinite(n.predicted):
                lines.append(
                    f"{n.node:>4}  {n.node_type[:10]:<10} {n.speed:5.2f}  {'-':>11}  {'-':>9}  "
                    f"{'n/a':>9}  {'':>15}"
                )
                continue
            spread = f"{n.low:.3f}-{n.high:.3f}" if n.high > n.low else f"{'-':>15}"
            mark = "  <- a*" if n.best else ""
            lines.append(
                f"{n.node:>4}  {n.node_type[:10]:<10} {n.speed:5.2f}  {n.finish:11.2f}  "
                f"{_bytes(n.moved):>9}  {n.predicted:9.3f}  {spread:>15}{mark}"
            )
        lines += ["", self.reason, "", f"top-{len(self.cases)} retrieved cases:"]
        lines.append(
            f"{'#':>2}  {'sim':>6} {'weight':>6}  {'workflow':<22} {'family':<12} {'cluster':<8} "
            f"{'policy':<16} {'step':>4} {'node':>4}  {'ratio':>6}"
        )
        for c in self.cases:
            tag = "*" if c.branch else " "
            lines.append(
                f"{c.rank:>2}  {c.similarity:6.3f} {c.weight:6.3f}  {c.workflow[:22]:<22} "
                f"{c.family[:12]:<12} {c.cluster[:8]:<8} {c.policy[:16]:<16} {c.step:>4} "
                f"{c.action:>4}{tag} {c.ratio:6.3f}"
            )
        if not self.cases:
            lines.append("    (none: empty knowledge base or k = 0)")
        elif any(c.branch for c in self.cases):
            lines.append(
                "    * counterfactual: that node was tried at that decision and the plan "
                "completed by the case's continuation policy"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _bytes(x: float) -> str:
    """Bytes with a binary-free SI unit (1 kB = 1000 B), three significant digits."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f} B"


def _reason(nodes: tuple[NodeScore, ...], best: int, scale: float) -> str:
    """One sentence: why ``best`` wins against the runner-up and the earliest-finish node."""
    feas = [n for n in nodes if np.isfinite(n.predicted)]
    b = nodes[best]
    if len(feas) == 1:
        return f"n{b.node} wins: it is the only node the task fits on."
    others = sorted((n for n in feas if n.node != best), key=lambda n: n.predicted)
    second = others[0]
    eft = min(feas, key=lambda n: (n.finish, n.node))
    gap = (second.predicted - b.predicted) * scale  # [s] predicted makespan difference
    text = (
        f"n{b.node} wins: predicted makespan {b.predicted:.3f} x the lower bound, "
        f"{gap:.3g} s shorter than on n{second.node} ({second.predicted:.3f})"
    )
    if eft.node == best:
        text += "; it is also the earliest-finish node"
        if b.moved < second.moved:
            text += f", and moves {_bytes(b.moved)} instead of {_bytes(second.moved)}"
        return text + "."
    late = b.finish - eft.finish
    text += f"; the task finishes {late:.3g} s later than on the earliest-finish node n{eft.node}, "
    if b.moved < eft.moved:
        text += f"but moves {_bytes(b.moved)} instead of {_bytes(eft.moved)}"
    else:
        text += "but the predicted plan that follows is shorter"
    return text + "."


def _explanation(
    teacher: Teacher, problem: Problem, ev: Evaluation, builder: PlanBuilder
) -> Explanation:
    wf, cl = problem.workflow, problem.cluster
    kb = teacher.kb
    cases: list[Case] = []
    if kb is not None:
        weights = ev.weights if ev.weights.size == ev.neighbours.size else None
        for rank, (rec, sim) in enumerate(
            zip(ev.neighbours.tolist(), ev.similarities.tolist(), strict=True), start=1
        ):
            if rec < 0:
                continue
            info = kb.record_info(rec)
            cases.append(
                Case(
                    rank=rank,
                    record=rec,
                    similarity=float(sim),
                    weight=float(weights[rank - 1]) if weights is not None else 0.0,
                    workflow=info["name"],
                    family=info["family"],
                    cluster=info["cluster"],
                    policy=info["policy"],
                    continuation=info["continuation"],
                    step=info["step"],
                    action=info["action"],
                    branch=info["branch"],
                    ratio=info["target"],
                )
            )
    # The query's family first, each group in retrieval order.
    cases.sort(key=lambda c: (c.family != wf.family, c.rank))
    # Per-case predictions of every candidate: the spread behind E_{k ~ C_t}.
    d = ev.features
    cand = np.flatnonzero(d.feasible)
    low = np.array(ev.pred, dtype=np.float64)
    high = low.copy()
    if ev.context.ndim == 2 and ev.context.shape[0] > 1 and cand.size:
        valid = ev.weights > 0
        per = teacher.model.predict_cases(
            ev.embedding, d.actions[cand], ev.context[valid], teacher.reference
        )
        low[cand], high[cand] = per.min(axis=0), per.max(axis=0)
    sl = wf.parent_edge_slice(ev.task)
    src, nbytes = wf.edge_src[sl], wf.edge_bytes[sl]
    where = builder.node[src]
    parents = tuple(
        Parent(wf.ids[int(p)], int(n), float(x))
        for p, n, x in zip(src.tolist(), where.tolist(), nbytes.tolist(), strict=True)
    )
    in_bytes = float(nbytes.sum())
    stage = float(wf.input_bytes[ev.task])
    local = np.bincount(where, weights=nbytes, minlength=problem.n_nodes) if src.size else None
    nodes = tuple(
        NodeScore(
            node=n,
            node_type=cl.node_type[n],
            speed=float(cl.speed[n]),
            finish=float(d.finish[n]) if d.feasible[n] else float("inf"),
            moved=in_bytes - (float(local[n]) if local is not None else 0.0) + stage,
            predicted=float(ev.pred[n]),
            low=float(low[n]),
            high=float(high[n]),
            best=n == ev.best,
        )
        for n in range(problem.n_nodes)
    )
    scale = float(problem.lower_bound()) or 1.0
    return Explanation(
        workflow=wf.name,
        family=wf.family,
        cluster=cl.name,
        task=wf.ids[ev.task],
        task_type=str(wf.task_type[ev.task]),
        parents=parents,
        input_bytes=in_bytes,
        stage_in_bytes=stage,
        step=builder.n_placed,
        reference=teacher.reference,
        cases=tuple(cases),
        nodes=nodes,
        best=ev.best,
        reason=_reason(nodes, ev.best, scale),
    )


def explain(teacher: Teacher, builder: PlanBuilder, task: int) -> Explanation:
    """Explain the teacher's scores for placing ready ``task`` on the partial plan ``builder``.

    For state features that summarise the run so far, the teacher should have evaluated the
    earlier decisions of this plan too (as :func:`explain_step` does).
    """
    ev = teacher.evaluate(builder, task)
    return _explanation(teacher, builder.problem, ev, builder)


def explain_step(
    teacher: Teacher,
    problem: Problem,
    policy: Scheduler,
    step: int,
    *,
    insertion: bool = True,
) -> Explanation:
    """Plan ``problem`` with ``policy`` (tasks in the policy's priority order) and explain
    decision ``step`` (0-based).

    Raises:
        TeacherConfigError: if ``step`` is not in ``0 .. n_tasks - 1``.
    """
    n = problem.n_tasks
    if not 0 <= step < n:
        raise TeacherConfigError(
            f"step must be in 0..{n - 1} for {problem.workflow.name!r}, got {step}"
        )
    teacher.begin(problem)
    policy.begin(problem)
    b = PlanBuilder(problem, insertion=insertion)
    q = ReadyQueue(b, policy.priority(problem))
    for _ in range(step):
        task = q.pop()
        teacher.evaluate(b, task)
        b.assign(task, policy.select_node(b, task))
        q.update()
    return explain(teacher, b, q.pop())
