"""A trained checkpoint as a scheduler: raw, guarded, or improved by rollouts.

``make_scheduler("policy", checkpoint="runs/train/latest/model.zip")`` returns a
:class:`PolicyScheduler`. The checkpoint may come from any algorithm
:class:`~agents.sb3_policy.SB3PolicyScheduler` loads (MaskablePPO, PPO, A2C, DQN, QRDQN, TRPO;
read from the file, or ``algo=...``), always acting with the action mask. It plans any
workflow on any cluster up to the policy's ``max_nodes`` (``plan(problem)``) and answers for any
partial plan (``select_node(builder, task)``), so a trained policy can be evaluated, guarded,
explained, deployed and used to seed the knowledge base like every other scheduler.

Three modes, always reported under different names:

* **raw** (default): the policy's own plan (its most likely node for every task, tasks in the
  environment's order).
* **guarded** (``guard="heft"`` or ``"best_heuristic"``, or any scheduler spec): the policy and the
  guard both plan, and the shorter plan is kept, so the result is never worse than the guard's
  (a user who must never lose to HEFT gets that, visibly).
* **rollout** (``rollout=k``): at every decision, the policy's ``k`` most likely nodes and HEFT's
  own node are each tried, the rest of the plan is completed with HEFT, and the node whose
  completed plan is shortest is taken (a pilot method over the policy's proposals; Bertsekas,
  Tsitsiklis & Wu 1997). The final plan is compared with HEFT's own plan and with the raw
  policy's, so the mode is no worse than either by construction; it costs ``k + 1`` HEFT
  completions per decision.

:attr:`PolicyScheduler.last` records, for the last ``plan()``, the raw policy's makespan, the
guard's, and which plan was returned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from agents.deploy.onnx_policy import OnnxPolicy, is_onnx
from agents.ppo import MaskablePPOAgent
from agents.sb3_policy import CheckpointError, SB3PolicyScheduler
from wass_env.scheduling import Scheduler, make_scheduler
from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["PolicyScheduler"]


class PolicyScheduler(Scheduler):
    """A trained checkpoint behind the scheduler interface.

    Args:
        checkpoint: Path of a ``model.zip`` saved by training (its ``model.env_kwargs.json``
            sidecar gives the observation settings), or of a ``.onnx`` file written by ``wass
            export`` (run by onnxruntime: :class:`~agents.deploy.onnx_policy.OnnxPolicy`); or
            pass ``agent``.
        agent: An already loaded :class:`~agents.ppo.MaskablePPOAgent`,
            :class:`~agents.sb3_policy.SB3PolicyScheduler` or ``OnnxPolicy``.
        algo: The checkpoint's algorithm (see :data:`agents.sb3_policy.ALGORITHMS`), or
            ``"auto"``: read from the file.
        env_kwargs: The env settings the policy was trained with, for a checkpoint without
            its settings file (``{}``: the env defaults).
        guard: None, or a scheduler spec (``"heft"``, ``"best_heuristic"``, ...) whose plan is
            returned instead of the policy's when it is shorter.
        rollout: 0 (off), or the number of the policy's most likely nodes tried per decision,
            each completed with ``rollout_base`` (see the module docstring).
        rollout_base: The heuristic completing the rollouts and the final comparison.
        name: Label in tables (default ``policy``, ``policy+<guard>`` or ``policy+rollout<k>``).
        seed: Unused (the policy is deterministic); accepted like every scheduler's.

    Raises:
        FileNotFoundError: if the checkpoint or its settings file is missing.
    """

    name: ClassVar[str] = "policy"
    requires: ClassVar[tuple[str, ...]] = ("checkpoint",)

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        agent: MaskablePPOAgent | SB3PolicyScheduler | OnnxPolicy | None = None,
        algo: str = "auto",
        env_kwargs: Mapping[str, Any] | None = None,
        guard: str | Mapping[str, Any] | None = None,
        rollout: int = 0,
        rollout_base: str = "heft",
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        if agent is None:
            if checkpoint is None:
                raise CheckpointError("scheduler 'policy' needs checkpoint=<path of a model.zip>")
            agent = (
                OnnxPolicy(checkpoint)
                if is_onnx(checkpoint)
                else SB3PolicyScheduler(checkpoint, algo=algo, env_kwargs=env_kwargs)
            )
        self.agent: MaskablePPOAgent | SB3PolicyScheduler | OnnxPolicy = agent
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.guard = None if guard is None else make_scheduler(guard)
        self.rollout = int(rollout)
        if self.rollout < 0:
            raise CheckpointError(f"policy rollout must be an integer >= 0, got {rollout!r}")
        self.rollout_base = make_scheduler(rollout_base)
        label = "policy"
        if self.rollout:
            label += f"+rollout{self.rollout}"
        if self.guard is not None:
            label += f"+{self.guard.name}"
        self.label = name or label
        self.task_order = str(agent.env_kwargs.get("task_order", "rank"))
        self.last: dict[str, Any] = {}
        super().__init__(seed)

    @property
    def max_nodes(self) -> int:
        """Largest cluster the policy can schedule."""
        return self.agent.max_nodes

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The policy's node for ``task`` (rollout mode: the best completed proposal)."""
        if not self.rollout:
            return self.agent.select_node(builder, task)
        probs = self.agent.node_probabilities(builder, task)
        cand = [int(n) for n in np.argsort(-probs, kind="stable")[: self.rollout] if probs[n] > 0]
        base = self.rollout_base
        base._ensure(builder.problem)
        own = base.select_node(builder, task)
        if own not in cand:
            cand.append(own)
        priority = task_priority(builder.problem, self.task_order)
        best, best_node = np.inf, cand[0]
        for n in cand:
            b = builder.copy()
            b.assign(task, n)
            queue = ReadyQueue(b, priority)
            while not b.done:
                t = queue.pop()
                b.assign(t, base.select_node(b, t))
                queue.update()
            if b.max_finish < best * (1 - 1e-12):
                best, best_node = b.max_finish, n
        return best_node

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The policy's plan (guarded or rollout-improved as configured)."""
        if problem.n_nodes > self.max_nodes:
            raise CheckpointError(
                f"the policy was trained for at most {self.max_nodes} nodes; cluster "
                f"{problem.cluster.name!r} has {problem.n_nodes}"
            )
        own = super().plan(problem, insertion=insertion)
        self.last = {"policy_makespan": own.makespan, "chosen": "policy"}
        best = own
        others: list[tuple[str, Plan]] = []
        if self.rollout:
            others.append(("raw_policy", self._raw_plan(problem, insertion)))
            base = self.rollout_base
            others.append((base.name, base.plan(problem, insertion=insertion)))
        if self.guard is not None:
            others.append((self.guard.name, self.guard.plan(problem, insertion=insertion)))
        for label, alt in others:
            self.last[f"{label}_makespan"] = alt.makespan
            if alt.makespan < best.makespan:
                best = alt
                self.last["chosen"] = label
        return best

    def _raw_plan(self, problem: Problem, insertion: bool) -> Plan:
        """The policy's own plan (its most likely node for every task), without rollouts."""
        k, self.rollout = self.rollout, 0
        try:
            return super().plan(problem, insertion=insertion)
        finally:
            self.rollout = k

    def __repr__(self) -> str:
        return f"PolicyScheduler({self.checkpoint!r}, label={self.label!r})"
