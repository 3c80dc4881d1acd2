"""A deployable plan: every task of a workflow on a named node, with estimated times.

:func:`make_deploy_plan` plans a workflow on a cluster (a cluster file's nodes, by hostname) with
any registered scheduler, behind a :class:`~agents.fallback.FallbackScheduler`: a node that cannot
take a task (marked down, too small, not a node) is replaced by HEFT's choice and the plan says
so. :func:`plan_document` turns it into the JSON document ``wass plan`` writes (``plan.json``):

* ``format``, ``workflow`` (name, source, task count), ``cluster`` (name, nodes with speed,
  cores, memory and state, network, ``dispatch_latency``), ``scheduler`` (as given) and
  ``insertion``;
* ``makespan``: the estimated makespan [s]; ``lower_bound`` [s]; ``fallbacks``: how many tasks
  went to the fallback scheduler's node;
* ``tasks``, in submission order (planned start, then placement order: a topological order):
  ``id``, ``node`` (its name), ``cores``, ``memory`` [bytes], ``start``, ``finish`` and
  ``runtime`` [s, from the workflow's start], ``parents`` (ids), ``command``, and ``fallback``
  (null, or why the scheduler's own node was not used);
* with ``explain``, per task an ``explanation``: every feasible node's earliest start and finish
  at the moment of the decision (best first), the nodes that could not take it and why, and a
  sentence saying why the chosen node was chosen.

A scheduler is named as registered (``heft``, ``peft``, ...) or as ``NAME:CHECKPOINT`` for one
that loads a checkpoint (``policy:runs/x/model.zip`` calls ``make_scheduler("policy",
checkpoint="runs/x/model.zip")``; ``policy:policy.onnx``, a policy exported by ``wass export``,
is run by :class:`~agents.deploy.onnx_policy.OnnxPolicy`, without torch).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.deploy.onnx_policy import OnnxPolicy, is_onnx
from agents.fallback import Decision, FallbackScheduler, infeasible_reason
from agents.heuristics import TIE_RTOL
from wass_env.scheduling import SCHEDULERS, Scheduler, UnknownSchedulerError, make_scheduler
from wass_env.sim.cluster import Cluster
from wass_env.sim.plan import Plan
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow

__all__ = [
    "PLAN_FORMAT",
    "DeployPlan",
    "make_deploy_plan",
    "plan_document",
    "scheduler_from_spec",
]

#: The ``format`` field of plan.json.
PLAN_FORMAT = "wass-plan/1"


def scheduler_from_spec(spec: str) -> Scheduler:
    """A scheduler from ``NAME`` or ``NAME:CHECKPOINT`` (see the module docstring).

    Raises:
        UnknownSchedulerError: if the name is not registered (the message lists the names),
            needs a checkpoint that is not given, or its checkpoint cannot be loaded.
    """
    name, sep, checkpoint = spec.partition(":")
    if name not in SCHEDULERS:
        hint = (
            f" ({name!r} takes a checkpoint, so it is a scheduler another package provides; "
            "it is not installed)"
            if sep
            else ""
        )
        raise UnknownSchedulerError(
            f"--scheduler: unknown scheduler {name!r}{hint}; registered: {', '.join(SCHEDULERS)}"
        )
    if sep and not checkpoint:
        raise UnknownSchedulerError(f"--scheduler: {spec!r} names no checkpoint after ':'")
    if not sep:
        if "checkpoint" in getattr(SCHEDULERS[name], "requires", ()):
            raise UnknownSchedulerError(
                f"--scheduler: {name!r} needs a checkpoint: give {name}:PATH/TO/model.zip"
            )
        return make_scheduler(name)
    try:
        if name == "policy" and is_onnx(checkpoint):
            # The exported policy's runtime itself, not PolicyScheduler around it: planning
            # with an .onnx file imports no torch (seconds of start-up).
            return OnnxPolicy(checkpoint)
        return make_scheduler(name, checkpoint=checkpoint)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise UnknownSchedulerError(
            f"--scheduler: cannot load {name!r} from checkpoint {checkpoint!r}: {exc}"
        ) from None


@dataclass(frozen=True, eq=False)
class DeployPlan:
    """A plan with the decisions that made it.

    Attributes:
        plan: The plan (nodes, estimated start and finish per task).
        scheduler: The scheduler as named (``"heft"``, ``"policy:model.zip"``).
        decisions: Every placement, in placement order, as the fallback wrapper recorded it.
        base_name: The wrapped scheduler's short name.
        rule: One line saying how the scheduler chooses (its class docstring's first line).
    """

    plan: Plan
    scheduler: str
    decisions: tuple[Decision, ...]
    base_name: str = ""
    rule: str = ""

    @property
    def problem(self) -> Problem:
        """The problem planned."""
        return self.plan.problem

    @property
    def workflow(self) -> Workflow:
        """The workflow planned."""
        return self.plan.problem.workflow

    @property
    def cluster(self) -> Cluster:
        """The cluster planned on."""
        return self.plan.problem.cluster

    @property
    def makespan(self) -> float:
        """Estimated makespan [s]."""
        return self.plan.makespan

    def submission_order(self) -> NDArray[np.int64]:
        """Tasks by planned start, ties by placement order: a topological order (a child never
        starts before its parents finish, and is placed after them)."""
        p = self.plan
        return np.lexsort((p.decision, p.start)).astype(np.int64)

    @property
    def n_fallbacks(self) -> int:
        """Tasks whose node came from the fallback scheduler."""
        return sum(d.fallback for d in self.decisions)


def make_deploy_plan(
    workflow: Workflow,
    cluster: Cluster,
    scheduler: str | Scheduler = "heft",
    *,
    insertion: bool = True,
) -> DeployPlan:
    """Plan ``workflow`` on ``cluster`` with ``scheduler``, HEFT as the fallback (see the module
    docstring).

    Args:
        workflow: The workflow.
        cluster: The cluster (nodes marked down take no task).
        scheduler: ``NAME``, ``NAME:CHECKPOINT`` or a scheduler instance.
        insertion: Insertion policy of the plan builder.

    Raises:
        UnknownSchedulerError: for an unknown scheduler name.
        WorkflowError: if a task fits on no node that is up.
    """
    base = scheduler_from_spec(scheduler) if isinstance(scheduler, str) else scheduler
    label = scheduler if isinstance(scheduler, str) else base.name
    wrapper = FallbackScheduler(base, record=True)
    plan = wrapper.plan(Problem(workflow, cluster), insertion=insertion)
    doc = (type(base).__doc__ or "").strip()
    return DeployPlan(
        plan=plan,
        scheduler=label,
        decisions=tuple(wrapper.decisions),
        base_name=base.name,
        rule=doc.splitlines()[0].strip() if doc else base.name,
    )


def _r(x: float) -> float:
    """Seconds rounded to the microsecond, for a readable document."""
    return round(float(x), 6)


def _explain(dp: DeployPlan, d: Decision) -> dict[str, Any]:
    cl = dp.cluster
    eft, est = d.earliest_finish, d.earliest_start
    ok = np.flatnonzero(np.isfinite(eft))
    order = ok[np.lexsort((ok, eft[ok]))]
    candidates = [
        {"node": cl.node_name[n], "start": _r(est[n]), "finish": _r(eft[n])} for n in order.tolist()
    ]
    excluded = [
        {"node": cl.node_name[n], "reason": infeasible_reason(dp.problem, d.task, n)}
        for n in np.flatnonzero(~np.isfinite(eft)).tolist()
    ]
    chosen = cl.node_name[d.node]
    f = float(eft[d.node])
    best = int(order[0])
    fbest = float(eft[best])
    tied = f <= fbest + TIE_RTOL * max(abs(fbest), 1.0)
    others = [int(n) for n in order.tolist() if n != d.node]
    if d.fallback:
        why = f"{d.reason}; fell back to the earliest finish: {chosen} at {f:.3f} s"
    elif tied:
        why = f"earliest finish time: {f:.3f} s"
        if others:
            n2 = others[0]
            why += f"; next best {cl.node_name[n2]} at {float(eft[n2]):.3f} s"
    else:
        why = (
            f"chosen by {dp.base_name}: finishes at {f:.3f} s, {f - fbest:.3f} s after the "
            f"earliest finish ({cl.node_name[best]} at {fbest:.3f} s)"
        )
    return {"chosen": chosen, "why": why, "candidates": candidates, "excluded": excluded}


def plan_document(dp: DeployPlan, *, explain: bool = False) -> dict[str, Any]:
    """The JSON document of a deploy plan (see the module docstring)."""
    p, wf, cl = dp.plan, dp.workflow, dp.cluster
    by_task = {d.task: d for d in dp.decisions}
    tasks = []
    for t in dp.submission_order().tolist():
        d = by_task[t]
        entry: dict[str, Any] = {
            "id": wf.ids[t],
            "node": cl.node_name[int(p.node[t])],
            "cores": int(wf.cores[t]),
            "memory": float(wf.memory[t]),
            "start": _r(p.start[t]),
            "finish": _r(p.finish[t]),
            "runtime": _r(p.finish[t] - p.start[t]),
            "parents": [wf.ids[q] for q in wf.parents(t).tolist()],
            "command": wf.command[t],
            "fallback": d.reason or None,
        }
        if explain:
            entry["explanation"] = _explain(dp, d)
        tasks.append(entry)
    doc: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "workflow": {"name": wf.name, "source": wf.source, "n_tasks": wf.n_tasks},
        "cluster": {
            "name": cl.name,
            "nodes": [
                {
                    "name": cl.node_name[n],
                    "speed": float(cl.speed[n]),
                    "cores": int(cl.cores[n]),
                    "memory": float(cl.memory[n]),
                    "down": bool(cl.down[n]),
                }
                for n in range(cl.n_nodes)
            ],
            "dispatch_latency": cl.dispatch_latency,
        },
        "scheduler": dp.scheduler,
        "insertion": p.insertion,
        "makespan": _r(p.makespan),
        "lower_bound": _r(dp.problem.lower_bound()),
        "fallbacks": dp.n_fallbacks,
        "tasks": tasks,
    }
    if explain:
        doc["rule"] = dp.rule
    return doc
