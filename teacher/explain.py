"""Explanations of the teacher's judgement of one decision.

:func:`explain` returns, for a decision, the top-K past cases the teacher retrieved (similarity,
workflow, family, cluster, policy, where that run ended as makespan / lower bound, and what was
done: the node chosen) and the predicted makespan / lower bound of every candidate node, with
``a*_t`` marked. ``str(explanation)`` prints both as tables. :func:`explain_step` replays a
policy on a problem up to a given decision and explains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teacher.teacher import Evaluation, Teacher, TeacherConfigError
from wass_env.scheduling import Scheduler
from wass_env.sim.ordering import ReadyQueue
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["Case", "Explanation", "NodeScore", "explain", "explain_step"]


@dataclass(frozen=True)
class Case:
    """One retrieved past decision."""

    rank: int
    record: int
    similarity: float
    workflow: str
    family: str
    cluster: str
    policy: str
    step: int
    action: int
    branch: bool
    ratio: float  # makespan / lower bound the run reached after that decision


@dataclass(frozen=True)
class NodeScore:
    """The teacher's prediction for one candidate node."""

    node: int
    node_type: str
    speed: float
    finish: float  # [s] earliest finish of the task there
    predicted: float  # predicted makespan / lower bound (inf where the task does not fit)
    best: bool


@dataclass(frozen=True)
class Explanation:
    """Why the teacher scores a decision as it does."""

    workflow: str
    cluster: str
    task: str
    step: int
    reference: str | None
    cases: tuple[Case, ...]
    nodes: tuple[NodeScore, ...]
    best: int

    def table(self) -> str:
        """Both tables as text."""
        ref = self.reference or "unknown (the base's mixture)"
        lines = [
            f"decision {self.step} of {self.workflow} on {self.cluster}: place task {self.task!r}",
            f"continuation policy assumed: {ref}",
            "",
            f"top-{len(self.cases)} retrieved cases:",
        ]
        head = (
            f"{'#':>2}  {'sim':>6}  {'workflow':<22} {'family':<12} {'cluster':<8} "
            f"{'policy':<18} {'step':>4} {'node':>4}  {'ratio':>6}"
        )
        lines.append(head)
        for c in self.cases:
            tag = "*" if c.branch else " "
            lines.append(
                f"{c.rank:>2}  {c.similarity:6.3f}  {c.workflow[:22]:<22} {c.family[:12]:<12} "
                f"{c.cluster[:8]:<8} {c.policy[:18]:<18} {c.step:>4} {c.action:>4}{tag} "
                f"{c.ratio:6.3f}"
            )
        if not self.cases:
            lines.append("    (none: empty knowledge base or k = 0)")
        elif any(c.branch for c in self.cases):
            lines.append("    * counterfactual branch: another node was tried at that decision")
        lines += [
            "",
            "predicted makespan / lower bound per node (a* marked):",
            f"{'node':>4}  {'type':<10} {'speed':>5}  {'finish [s]':>11}  {'predicted':>9}",
        ]
        for n in self.nodes:
            pred = f"{n.predicted:9.3f}" if np.isfinite(n.predicted) else f"{'n/a':>9}"
            fin = f"{n.finish:11.2f}" if np.isfinite(n.finish) else f"{'-':>11}"
            mark = "  <- a*" if n.best else ""
            lines.append(f"{n.node:>4}  {n.node_type[:10]:<10} {n.speed:5.2f}  {fin}  {pred}{mark}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _explanation(teacher: Teacher, problem: Problem, ev: Evaluation, step: int) -> Explanation:
    cases: list[Case] = []
    kb = teacher.kb
    if kb is not None:
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
                    workflow=info["name"],
                    family=info["family"],
                    cluster=info["cluster"],
                    policy=info["policy"],
                    step=info["step"],
                    action=info["action"],
                    branch=info["branch"],
                    ratio=info["target"],
                )
            )
    cl = problem.cluster
    nodes = tuple(
        NodeScore(
            node=n,
            node_type=cl.node_type[n],
            speed=float(cl.speed[n]),
            finish=float(ev.features.finish[n]),
            predicted=float(ev.pred[n]),
            best=n == ev.best,
        )
        for n in range(problem.n_nodes)
    )
    return Explanation(
        workflow=problem.workflow.name,
        cluster=cl.name,
        task=problem.workflow.ids[ev.task],
        step=step,
        reference=teacher.reference,
        cases=tuple(cases),
        nodes=nodes,
        best=ev.best,
    )


def explain(teacher: Teacher, builder: PlanBuilder, task: int) -> Explanation:
    """Explain the teacher's scores for placing ready ``task`` on the partial plan ``builder``.

    For state features that summarise the run so far, the teacher should have evaluated the
    earlier decisions of this plan too (as :func:`explain_step` does).
    """
    ev = teacher.evaluate(builder, task)
    return _explanation(teacher, builder.problem, ev, builder.n_placed)


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
        ValueError: if ``step`` is not in ``0 .. n_tasks - 1``.
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
