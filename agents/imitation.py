"""Imitation learning for the scheduling policy: an expert, DAgger data collection, behaviour
cloning of an SB3 policy.

**The expert** (:class:`PilotExpert`) answers "where should this task go?" from *any* state of
the environment, which DAgger needs: it tries the current task on each of its ``k`` most
promising nodes (earliest finish first, plus the completion heuristic's own choice), completes
each partial plan with HEFT's rule in the environment's task order, and labels every node whose
completed makespan is within a relative ``tie`` of the best. This is a *pilot method* (a rollout
algorithm, Bertsekas et al. 1997): because the base rule's own node is always tried and HEFT
completed in order is sequentially consistent, following the expert from the start is never
worse than the base rule, and usually much better where HEFT's greedy choice moves data that a
later stage pays for. :class:`HeuristicExpert` is one heuristic's own choice at every state, and
:class:`PlanExpert` replays, per instance, the best of complete plans (HEFT, HEFT with lookahead,
PEFT, CPOP and, on small instances, CP-SAT) through the environment.

**Collection** (:func:`collect`) runs episodes of a ``WassSchedEnv``; at every state it records
the observation, the mask, the expert's label distribution (uniform over its tied best nodes) and
the reward, and then acts with the expert (probability ``beta``) or the learner: DAgger (Ross,
Gordon & Bagnell 2011) with ``beta`` decaying to 0 relabels exactly the states the learner
reaches.

**Behaviour cloning** (:func:`bc_train`) trains an SB3 maskable policy in place: cross-entropy
of its masked action distribution against the label distribution, plus a value loss on the
episodes' discounted returns so that PPO fine-tuning starts with a sensible critic. It is written
here (about 40 lines) because the ``imitation`` package pins an older Stable-Baselines3.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.envs.hints import HINT_RULE, plan_portfolio, play
from wass_env.errors import WassError
from wass_env.io import atomic_write
from wass_env.scheduling import Scheduler, make_scheduler
from wass_env.sim.improve import local_nodes
from wass_env.sim.ordering import ReadyQueue, argmin_first, task_priority
from wass_env.sim.plan import PlanBuilder

__all__ = [
    "Dataset",
    "HeuristicExpert",
    "ImitationError",
    "PilotExpert",
    "PlanExpert",
    "PortfolioExpert",
    "bc_train",
    "collect",
    "collect_parallel",
    "discounted_returns",
    "expert_dataset",
    "make_expert",
    "run_imitation",
]


class ImitationError(WassError):
    """Bad imitation settings (the message names the field and value)."""


def _schedulers(candidates: tuple[str, ...] | list[str]) -> list[Scheduler]:
    """The candidate schedulers of a per-instance expert (at least one)."""
    if not candidates:
        raise ImitationError("imitation.expert.candidates: needs at least one scheduler")
    return [make_scheduler(c) for c in candidates]


class PilotExpert:
    """Per-state expert: one-step lookahead with a heuristic completing the plan.

    Args:
        k: Candidate nodes tried per decision (those with the earliest finish times); the base
            heuristic's own node is always among them. ``k <= 0`` tries every feasible node.
        fortify: Names of stronger (slower) heuristics: at every decision each one's own node is
            also tried, completed by that heuristic itself, so following the expert from the
            start is never worse than any of them either (a fortified rollout).
        locality: Also try the nodes that keep data local (the one holding most of the task's
            inputs, the one holding most of its children's other inputs): earliest-finish
            candidates alone never propose gathering a fan-in on few nodes.
        base: Registered name, spec or instance of the completion heuristic (its
            ``select_node`` is used in the environment's task order).
        tie: Relative tolerance under which two completed makespans count as equal.
    """

    def __init__(
        self,
        k: int = 4,
        base: str | Mapping[str, Any] | Scheduler = "heft",
        tie: float = 1e-9,
        locality: bool = True,
        fortify: tuple[str, ...] | list[str] = (),
    ):
        self.k = int(k)
        self.locality = bool(locality)
        self.fortify: list[Scheduler] = [make_scheduler(f) for f in fortify]
        self.base: Scheduler = make_scheduler(base)
        self.tie = float(tie)
        self.completions = 0  # completed rollouts so far (a cost counter)

    def scores(
        self, builder: PlanBuilder, task: int, priority: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Completed makespan [s] of placing ``task`` on each node (``inf`` where not tried).

        Args:
            builder: The partial plan (not modified).
            task: The ready task to place.
            priority: The environment's task priority (the order the completion follows).
        """
        problem = builder.problem
        self.base._ensure(problem)
        eft = builder.earliest_finish(task)
        order = np.argsort(eft, kind="stable")
        feasible = order[np.isfinite(eft[order])]
        cand = feasible if self.k <= 0 else feasible[: self.k]
        extra = [self.base.select_node(builder, task)]
        if self.locality:
            extra += self._local_nodes(builder, task)
        for n in extra:
            if n not in cand and np.isfinite(eft[n]):
                cand = np.append(cand, n)
        out = np.full(problem.n_nodes, np.inf)
        for n in cand.tolist():
            out[n] = self._complete(builder, task, n, self.base, priority)
        for other in self.fortify:
            # A stronger, slower heuristic: its own choice, completed by itself.
            other._ensure(problem)
            n = other.select_node(builder, task)
            out[n] = min(out[n], self._complete(builder, task, n, other, priority))
        return out

    def _complete(
        self,
        builder: PlanBuilder,
        task: int,
        node: int,
        sch: Scheduler,
        priority: NDArray[np.float64],
    ) -> float:
        b = builder.copy()
        b.assign(task, node)
        q = ReadyQueue(b, priority)
        while not b.done:
            t = q.pop()
            b.assign(t, sch.select_node(b, t))
            q.update()
        self.completions += 1
        return float(b.max_finish)

    @staticmethod
    def _local_nodes(builder: PlanBuilder, task: int) -> list[int]:
        """Nodes that keep data local (:func:`wass_env.sim.improve.local_nodes`)."""
        return local_nodes(builder, task)

    def label(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """The label distribution: uniform over the nodes tied for the best score."""
        best = float(scores.min())
        tied = scores <= best + self.tie * max(abs(best), 1.0)
        return tied / tied.sum()


class HeuristicExpert(PilotExpert):
    """A heuristic as the expert: its own node at every state (cheap; no rollouts).

    Following it from any state is exactly the heuristic, so DAgger's labels are consistent
    with the expert's own trajectories. With ``heft_lookahead`` this is the strongest single
    heuristic of the evaluation at a fraction of a rollout expert's cost.

    Args:
        base: Registered name (or spec) of the heuristic.
    """

    def __init__(self, base: str | Mapping[str, Any] = "heft_lookahead") -> None:
        super().__init__(k=1, base=base, locality=False)

    def scores(
        self, builder: PlanBuilder, task: int, priority: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """0 on the heuristic's node, ``inf`` elsewhere."""
        self.base._ensure(builder.problem)
        out = np.full(builder.problem.n_nodes, np.inf)
        out[self.base.select_node(builder, task)] = 0.0
        return out


class PlanExpert(PilotExpert):
    """Per instance, the best of several complete plans, replayed through the environment.

    At the first decision of an instance each candidate scheduler plans the whole workflow twice:
    its rule placing the tasks in the environment's order (the order the policy acts in), and
    its own plan (in its own order, which for PEFT or CPOP is not the environment's), whose node
    assignment is then replayed in the environment's order. The plan with the shortest
    makespan becomes the instance's target (the first in ``candidates`` order among tied ones:
    nodes mixed from tied plans make a worse plan). The label of a task is its node in that
    plan, in any state: on the expert's own trajectory this
    reproduces the best plan exactly; in states the learner reached by leaving it, DAgger
    teaches it to go back to the plan's assignment. Not a rollout from the state, so cheap: one
    plan per candidate per instance.

    Args:
        candidates: Registered names (or specs) of the planners compared per instance.
        cpsat_max_tasks: Also try CP-SAT on instances of at most this many tasks (0: never).
        cpsat_deterministic_time: CP-SAT's limit per instance in its deterministic time units
            (the same stopping point on every run, so the labels are reproducible).
        tie: Relative tolerance under which two replayed makespans count as equal.
    """

    def __init__(
        self,
        candidates: tuple[str, ...] | list[str] = ("heft", "heft_lookahead", "peft", "cpop"),
        cpsat_max_tasks: int = 0,
        cpsat_deterministic_time: float = 2.0,
        tie: float = 1e-9,
    ) -> None:
        super().__init__(k=1, base="heft", locality=False, tie=tie)
        self.candidates: list[Scheduler] = _schedulers(candidates)
        self.cpsat_max_tasks = int(cpsat_max_tasks)
        self.cpsat_deterministic_time = float(cpsat_deterministic_time)
        self._cpsat: Any = (
            make_scheduler("cpsat", time_limit=600.0, deterministic_time=cpsat_deterministic_time)
            if self.cpsat_max_tasks > 0
            else None
        )
        self._problem: Any = None
        self._nodes: NDArray[np.int64] = np.zeros(0, np.int64)  # the target plan's nodes
        self.chosen: dict[str, int] = {}  # how often each candidate was the target (a report)

    def replay(
        self, builder: PlanBuilder, nodes: NDArray[np.integer], priority: NDArray[np.float64]
    ) -> float:
        """Makespan [s] of placing every task on ``nodes[task]`` in ``priority`` order."""
        return float(_play(builder, priority, lambda b, t: int(nodes[t])).max_finish)

    @staticmethod
    def rollout(builder: PlanBuilder, sch: Scheduler, priority: NDArray[np.float64]) -> PlanBuilder:
        """The plan ``sch.select_node`` makes placing every task in ``priority`` order."""
        sch._ensure(builder.problem)
        return _play(builder, priority, sch.select_node)

    def _targets(self, builder: PlanBuilder, priority: NDArray[np.float64]) -> None:
        problem = builder.problem
        plans: list[tuple[str, NDArray[np.int64]]] = []
        own: list[tuple[str, Any]] = []  # plans made in their own order: replayed below
        spans: list[float] = []
        for sch in self.candidates:
            # The candidate's rule acting in the environment's order (what a heuristic expert
            # would do), then its own plan (its own task order), replayed in that order.
            acted = self.rollout(builder, sch, priority)
            plans.append((sch.name, acted.node.astype(np.int64)))
            spans.append(float(acted.max_finish))
            own.append((f"{sch.name} (own order)", sch.plan(problem, insertion=builder.insertion)))
        cp = self._cpsat
        if cp is not None and (
            problem.workflow.n_tasks <= min(self.cpsat_max_tasks, cp.max_tasks)
            and problem.n_nodes <= cp.max_nodes
        ):
            own.append(("cpsat", cp.plan(problem)))
        for name, plan in own:
            plans.append((name, np.asarray(plan.node, dtype=np.int64)))
            spans.append(self.replay(builder, plans[-1][1], priority))
        # One plan, even among tied ones: mixing tied plans task by task is no plan at all.
        name, self._nodes = plans[argmin_first(np.asarray(spans), self.tie)]
        self.chosen[name] = self.chosen.get(name, 0) + 1
        self._problem = problem

    def scores(
        self, builder: PlanBuilder, task: int, priority: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """0 on the target plan's node for ``task``, ``inf`` elsewhere."""
        if builder.problem is not self._problem:
            self._targets(builder, priority)
        out = np.full(builder.problem.n_nodes, np.inf)
        out[self._nodes[task]] = 0.0
        return out


class PortfolioExpert(PilotExpert):
    """Per instance, the heuristic whose own run is shortest; its choice labels every state.

    At the first decision of an instance each candidate's rule places every task in the
    environment's order; the shortest plan's scheduler (the first in ``candidates`` order among
    tied ones) is the instance's expert, and its ``select_node`` from the state at hand is the
    label. Unlike :class:`PlanExpert`, whose label is a fixed plan's node even in states the
    learner reached by leaving that plan, a rule answers from any state, so DAgger's labels
    stay consistent with the expert's own trajectories, as with :class:`HeuristicExpert`.
    With ``[heft_lookahead, single_node]`` it is HEFT with lookahead except on the instances
    where moving no data at all is shorter.

    With ``plans=True`` it is the expert of the plan hints with ``plan_hint_candidates``
    (:func:`wass_env.envs.hints.plan_portfolio`, the same plans through the problem's cache):
    ``candidates`` are then the plans compared with HEFT with lookahead's; where one of them is
    strictly shorter its node is the label in every state, elsewhere HEFT with lookahead's
    choice from the state at hand.

    Args:
        candidates: Registered names (or specs) of the heuristics compared per instance (with
            ``plans``: registered names of the candidate plans).
        tie: Relative tolerance under which two makespans count as equal.
        plans: Compare complete plans as the plan hints do (see above), in the order of the
            priorities the expert is asked with (the environment's).
        improve: With ``plans``, the pilot passes the hints make over the winning plan
            (``env.plan_hint_improve``): the improved plan's node is then the label wherever
            the passes changed it.
        follow: With ``improve``, the hints' group passes too (``env.plan_hint_follow``).
    """

    def __init__(
        self,
        candidates: tuple[str, ...] | list[str] = ("heft_lookahead", "single_node"),
        tie: float = 1e-9,
        plans: bool = False,
        improve: int = 0,
        follow: bool = False,
    ) -> None:
        super().__init__(k=1, base="heft", locality=False, tie=tie)
        self.plans = bool(plans)
        self.improve = int(improve)
        self.follow = bool(follow) and self.improve > 0
        if self.improve and not self.plans:
            raise ImitationError(
                f"imitation.expert.improve: {improve!r} improves the plan hints' plan; it "
                "needs plans: true"
            )
        self.plan_candidates = tuple(str(c) for c in candidates) if self.plans else ()
        self.candidates: list[Scheduler] = _schedulers(
            (HINT_RULE,) if self.plans else tuple(candidates)
        )
        self._problem: Any = None
        self._nodes: NDArray[np.int64] | None = None  # with plans: a winning candidate's nodes
        self.rule: Scheduler = self.candidates[0]  # the current instance's expert
        self.chosen: dict[str, int] = {}  # how often each candidate was the expert (a report)

    def _choose(self, builder: PlanBuilder, priority: NDArray[np.float64]) -> None:
        if self.plans:
            choice = plan_portfolio(
                builder.problem,
                self.plan_candidates,
                insertion=builder.insertion,
                priority=priority,
                tie=self.tie,
                improve=self.improve,
                follow=self.follow,
            )
            self._nodes = None if choice.name == HINT_RULE else choice.nodes
            name = choice.name
        else:
            spans = [
                PlanExpert.rollout(builder, sch, priority).max_finish for sch in self.candidates
            ]
            self.rule = self.candidates[argmin_first(np.asarray(spans), self.tie)]
            name = self.rule.name
        self.chosen[name] = self.chosen.get(name, 0) + 1
        self._problem = builder.problem

    def scores(
        self, builder: PlanBuilder, task: int, priority: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """0 on the instance's expert's node for ``task`` in this state, ``inf`` elsewhere."""
        if builder.problem is not self._problem:
            self._choose(builder, priority)
        out = np.full(builder.problem.n_nodes, np.inf)
        if self._nodes is not None:
            out[int(self._nodes[task])] = 0.0
            return out
        self.rule._ensure(builder.problem)
        out[self.rule.select_node(builder, task)] = 0.0
        return out


def _play(
    builder: PlanBuilder,
    priority: NDArray[np.float64],
    choose: Callable[[PlanBuilder, int], int],
) -> PlanBuilder:
    """A new plan of ``builder``'s problem (same insertion policy): every task in ``priority``
    order, on the node ``choose(plan, task)`` gives."""
    return play(builder.problem, priority, choose, insertion=builder.insertion)


def make_expert(spec: Mapping[str, Any] | None = None) -> PilotExpert:
    """An expert from its settings: ``{"kind": "pilot", k, base, locality, fortify, tie}``
    (default), ``{"kind": "heuristic", "base": "heft_lookahead"}``, ``{"kind": "plans",
    "candidates": [...], "cpsat_max_tasks": 0}`` or ``{"kind": "portfolio", "candidates":
    [...]}``."""
    kw = dict(spec or {})
    kind = kw.pop("kind", "pilot")
    kinds: dict[str, type[PilotExpert]] = {
        "pilot": PilotExpert,
        "heuristic": HeuristicExpert,
        "plans": PlanExpert,
        "portfolio": PortfolioExpert,
    }
    if kind not in kinds:
        raise ImitationError(
            "imitation.expert.kind: must be 'pilot', 'heuristic', 'plans' or 'portfolio', "
            f"got {kind!r}"
        )
    try:
        return kinds[kind](**kw)
    except TypeError as exc:
        raise ImitationError(
            f"imitation.expert: bad settings {dict(spec or {})!r} ({exc})"
        ) from None


@dataclass
class Dataset:
    """Observations, masks, labels and returns of collected states (arrays, one row per state).

    Attributes:
        obs: Observation arrays by key.
        mask: Bool action masks.
        label: Label distributions over actions (rows sum to 1).
        ret: Discounted return from each state under the behaviour policy.
        family: Workflow family of each state's episode.
        episodes: Number of episodes collected.
        info: Per-episode summaries (makespans of the behaviour policy, HEFT, ...).
    """

    obs: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    mask: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    label: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    ret: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    family: NDArray[np.str_] = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    episodes: int = 0
    info: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ret.shape[0])

    def extend(self, other: Dataset) -> Dataset:
        """This dataset with ``other``'s rows appended (a new object)."""
        if not len(self):
            return other
        return Dataset(
            obs={k: np.concatenate([v, other.obs[k]]) for k, v in self.obs.items()},
            mask=np.concatenate([self.mask, other.mask]),
            label=np.concatenate([self.label, other.label]),
            ret=np.concatenate([self.ret, other.ret]),
            family=np.concatenate([self.family, other.family]),
            episodes=self.episodes + other.episodes,
            info=[*self.info, *other.info],
        )

    def without_families(self, families: Iterable[str]) -> Dataset:
        """The rows (and episode summaries) of every family but ``families``."""
        drop = {str(f) for f in families}
        if not drop or not len(self):
            return self
        keep = ~np.isin(self.family, sorted(drop))
        info = [i for i in self.info if i.get("family") not in drop]
        return Dataset(
            obs={k: v[keep] for k, v in self.obs.items()},
            mask=self.mask[keep],
            label=self.label[keep],
            ret=self.ret[keep],
            family=self.family[keep],
            episodes=len(info),
            info=info,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the dataset as a compressed ``.npz`` (atomically)."""
        arrays: dict[str, NDArray[Any]] = {f"obs.{k}": v for k, v in self.obs.items()}
        arrays.update(mask=self.mask, label=self.label, ret=self.ret, family=self.family)
        arrays["info"] = np.asarray(json.dumps(self.info))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return atomic_write(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a dataset written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            return cls(
                obs={k[4:]: z[k] for k in z.files if k.startswith("obs.")},
                mask=z["mask"],
                label=z["label"],
                ret=z["ret"],
                family=z["family"],
                episodes=len(info),
                info=info,
            )


def discounted_returns(rewards: Iterable[float], gamma: float) -> NDArray[np.float32]:
    """``G_t = r_t + gamma * G_{t+1}`` for one episode."""
    r = np.asarray(list(rewards), dtype=np.float64)
    out = np.zeros_like(r)
    acc = 0.0
    for i in range(r.size - 1, -1, -1):
        acc = r[i] + gamma * acc
        out[i] = acc
    return out.astype(np.float32)


def collect(
    env: Any,
    seeds: Iterable[int],
    expert: PilotExpert,
    *,
    learner: Callable[[dict[str, NDArray[np.float32]], NDArray[np.bool_]], int] | None = None,
    beta: float = 1.0,
    gamma: float = 0.99,
    rng: np.random.Generator | None = None,
    label_fraction: float = 1.0,
    progress: Callable[[int], None] | None = None,
) -> Dataset:
    """Run one episode per seed, labelling the states with the expert.

    Args:
        env: A ``WassSchedEnv`` (or a wrapper of one).
        seeds: Episode seeds (``env.reset(seed=...)``).
        expert: The labeller.
        learner: ``(obs, mask) -> action`` of the policy being trained; None acts with the
            expert only.
        beta: Probability of acting with the expert at each step (1 with no learner).
        gamma: Discount of the recorded returns.
        rng: Source of the expert/learner coin flips.
        label_fraction: Share of the learner's states that are labelled and kept (the expert's
            are always labelled: it needs its own answer to act). Labels are the expensive part;
            DAgger needs a sample of the learner's states, not all of them.
        progress: Called with 1 after every episode.
    """
    core = getattr(env, "unwrapped", env)
    rng = rng or np.random.default_rng(0)
    obs_rows: dict[str, list[NDArray[np.float32]]] = {}
    masks: list[NDArray[np.bool_]] = []
    labels: list[NDArray[np.float64]] = []
    returns: list[NDArray[np.float32]] = []
    families: list[str] = []
    info_rows: list[dict[str, Any]] = []
    n_eps = 0
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        prio = task_priority(core.problem, core.task_order)
        rewards: list[float] = []
        kept: list[int] = []
        expert_steps = 0
        t0 = time.perf_counter()
        while True:
            mask = core.action_masks()
            by_expert = learner is None or rng.random() < beta
            label = None
            if by_expert or label_fraction >= 1.0 or rng.random() < label_fraction:
                scores = expert.scores(core.builder, core.current_task, prio)
                label = np.zeros(mask.shape[0])
                label[: scores.size] = expert.label(scores)
                for k, v in obs.items():
                    obs_rows.setdefault(k, []).append(np.asarray(v, dtype=np.float32))
                masks.append(mask)
                labels.append(label)
                kept.append(len(rewards))
            if by_expert:
                assert label is not None
                action = int(np.argmax(label))
                expert_steps += 1
            else:
                action = int(learner(obs, mask))  # type: ignore[misc]
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        returns.append(discounted_returns(rewards, gamma)[kept])
        families.extend([str(info.get("family", ""))] * len(kept))
        info_rows.append(
            {
                "seed": int(seed),
                "family": str(info.get("family", "")),
                "makespan": float(info["makespan"]),
                "ratio_to_lower_bound": float(info["ratio_to_lower_bound"]),
                "steps": len(rewards),
                "expert_steps": expert_steps,
                "seconds": time.perf_counter() - t0,
                **(
                    {"ratio_to_reference": info["ratio_to_reference"]}
                    if "ratio_to_reference" in info
                    else {}
                ),
            }
        )
        n_eps += 1
        if progress is not None:
            progress(1)
    if not masks:
        return Dataset()
    return Dataset(
        obs={k: np.stack(v) for k, v in obs_rows.items()},
        mask=np.stack(masks),
        label=np.stack(labels).astype(np.float32),
        ret=np.concatenate(returns),
        family=np.asarray(families),
        episodes=n_eps,
        info=info_rows,
    )


def bc_train(
    policy: Any,
    data: Dataset,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    value_coef: float = 0.5,
    seed: int = 0,
    max_grad_norm: float = 1.0,
    residual_coef: float = 0.0,
) -> list[float]:
    """Behaviour cloning of ``policy`` (an SB3 ``MaskableActorCriticPolicy``) on ``data``.

    Loss per state: ``-sum_a label(a) log pi(a | s, mask)`` plus ``value_coef`` times the squared
    error of the value head against the recorded return, plus (``residual_coef > 0``) that
    coefficient times the variance of the learned scores over the feasible nodes: the logits
    are the scores minus the prior term (:meth:`agents.policies.NodeHeads.actor_parts`), so
    the penalty keeps the policy at its prior unless the labels pay for leaving it (the prior's
    own weight and gate stay free). Trains in place with Adam.

    Returns:
        The mean loss of every epoch.

    Raises:
        ValueError: ``residual_coef > 0`` and the policy's heads have no prior.
    """
    import torch

    if residual_coef > 0 and getattr(policy.mlp_extractor, "prior_w", None) is None:
        raise ValueError(
            f"imitation.residual_coef: {residual_coef} needs a policy with a prior "
            "(NodeScoringPolicy with env.lookahead=true and features_extractor_kwargs.prior)"
        )

    gen = torch.Generator().manual_seed(seed)
    device = policy.device
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    n = len(data)
    history: list[float] = []
    policy.set_training_mode(True)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).numpy()
        total = 0.0
        for lo in range(0, n, batch_size):
            idx = perm[lo : lo + batch_size]
            obs = {k: torch.as_tensor(v[idx], device=device) for k, v in data.obs.items()}
            mask = data.mask[idx]
            target = torch.as_tensor(data.label[idx], device=device)
            if residual_coef > 0:
                # get_distribution's own steps, with the logits taken apart: one actor pass
                # gives the distribution and the scores the penalty reads.
                features = policy.extract_features(obs, policy.pi_features_extractor)
                scores, prior = policy.mlp_extractor.actor_parts(features)
                dist = policy._get_action_dist_from_latent(scores - prior)
                dist.apply_masking(mask)
            else:
                dist = policy.get_distribution(obs, action_masks=mask)
            logp = dist.distribution.logits  # normalised log-probabilities, masked
            ce = -(target * torch.where(target > 0, logp, torch.zeros_like(logp))).sum(-1).mean()
            values = policy.predict_values(obs).squeeze(-1)
            vloss = torch.mean((values - torch.as_tensor(data.ret[idx], device=device)) ** 2)
            loss = ce + value_coef * vloss
            if residual_coef > 0:
                loss = loss + residual_coef * _score_variance(scores, mask)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            opt.step()
            total += float(loss.detach()) * idx.size
        history.append(total / n)
    policy.set_training_mode(False)
    return history


def _score_variance(scores: Any, mask: NDArray[np.bool_]) -> Any:
    """Mean over the batch of the node scores' variance over the feasible nodes."""
    import torch

    m = torch.as_tensor(mask, device=scores.device, dtype=scores.dtype)
    n = m.sum(-1).clamp(min=1.0)
    mean = (scores * m).sum(-1) / n
    return ((((scores - mean.unsqueeze(-1)) ** 2) * m).sum(-1) / n).mean()


def _collect_job(
    job: tuple[dict[str, Any], list[int], dict[str, Any], str | None, float, float, int, float],
) -> Dataset:
    env_kwargs, seeds, expert_kwargs, learner_path, beta, gamma, rng_seed, fraction = job
    import gymnasium as gym
    import torch

    import wass_env  # noqa: F401  (registers the env in a fresh process)

    torch.set_num_threads(1)
    env = gym.make("WassSched-v0", **env_kwargs)
    learner = None
    if learner_path is not None:
        from sb3_contrib import MaskablePPO

        model = MaskablePPO.load(learner_path, device="cpu")

        def learner(obs: dict[str, NDArray[np.float32]], mask: NDArray[np.bool_]) -> int:
            action, _ = model.predict(obs, action_masks=mask, deterministic=True)
            return int(action)

    return collect(
        env,
        seeds,
        make_expert(expert_kwargs),
        learner=learner,
        beta=beta,
        gamma=gamma,
        rng=np.random.default_rng(rng_seed),
        label_fraction=fraction,
    )


def collect_parallel(
    env_kwargs: Mapping[str, Any],
    seeds: Iterable[int],
    *,
    expert: Mapping[str, Any] | None = None,
    learner_path: str | None = None,
    beta: float = 1.0,
    gamma: float = 0.99,
    n_jobs: int = 1,
    rng_seed: int = 0,
    label_fraction: float = 1.0,
) -> Dataset:
    """:func:`collect` over ``seeds`` split between ``n_jobs`` worker processes.

    The result is the same whatever ``n_jobs`` is: seeds are dealt to fixed chunks (one per
    8 seeds, each with its own coin-flip stream) and the chunks are concatenated in order.

    Args:
        env_kwargs: ``WassSchedEnv`` arguments (each worker builds its own env).
        seeds: Episode seeds.
        expert: :class:`PilotExpert` arguments.
        learner_path: A saved MaskablePPO model acting with probability ``1 - beta``.
        beta: See :func:`collect`.
        gamma: Discount of the recorded returns.
        n_jobs: Worker processes (1: in this process).
        rng_seed: Seed of the coin flips.
        label_fraction: See :func:`collect`.
    """
    seeds = [int(s) for s in seeds]
    chunks = [seeds[i : i + 8] for i in range(0, len(seeds), 8)]
    jobs = [
        (
            dict(env_kwargs),
            chunk,
            dict(expert or {}),
            learner_path,
            beta,
            gamma,
            rng_seed * 100_003 + i,
            float(label_fraction),
        )
        for i, chunk in enumerate(chunks)
    ]
    if n_jobs <= 1 or len(jobs) <= 1:
        parts = [_collect_job(j) for j in jobs]
    else:
        from wass_env.workers import process_pool

        with process_pool(n_jobs, "spawn") as ex:
            parts = list(ex.map(_collect_job, jobs))
    out = Dataset()
    for part in parts:
        out = out.extend(part)
    return out


#: Version of the cached expert episodes (bump when the observation, the labels or the episodes
#: a seed draws change; 5: a seeded reset forgets the recipe pools).
CACHE_VERSION = 5


def expert_dataset(
    env_kwargs: Mapping[str, Any],
    seeds: Iterable[int],
    *,
    expert: Mapping[str, Any] | None = None,
    gamma: float = 0.99,
    n_jobs: int = 1,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Expert episodes (the expert acting and labelling), from ``cache_dir`` when present.

    The cache key is a hash of everything the episodes depend on: the environment arguments,
    the observation's shapes (so a change of the observation never loads stale arrays), the
    seeds, the expert's settings, ``gamma`` and :data:`CACHE_VERSION`.
    """
    seeds = [int(s) for s in seeds]
    path: Path | None = None
    if cache_dir is not None:
        import hashlib

        from wass_env.envs import WassSchedEnv

        space = WassSchedEnv(**env_kwargs).observation_space
        key = json.dumps(
            {
                "env": dict(env_kwargs),
                "obs": {k: list(v.shape) for k, v in space.spaces.items()},  # type: ignore[attr-defined]
                "seeds": seeds,
                "expert": dict(expert or {}),
                "gamma": gamma,
                "version": CACHE_VERSION,
            },
            sort_keys=True,
            default=str,
        )
        path = Path(cache_dir) / f"expert-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
        if path.exists():
            return Dataset.load(path)
    data = collect_parallel(
        env_kwargs, seeds, expert=expert, gamma=gamma, n_jobs=n_jobs, rng_seed=seed
    )
    if path is not None:
        data.save(path)
    return data


def run_imitation(
    model: Any,
    env_kwargs: Mapping[str, Any],
    *,
    seeds: Iterable[int],
    dagger_seeds: Iterable[Iterable[int]] = (),
    expert: Mapping[str, Any] | None = None,
    epochs: int = 15,
    dagger_epochs: int = 8,
    batch_size: int = 256,
    lr: float = 1e-3,
    gamma: float = 0.99,
    n_jobs: int = 1,
    seed: int = 0,
    label_fraction: float = 1.0,
    residual_coef: float = 0.0,
    cache_dir: str | os.PathLike[str] | None = None,
    expert_env_kwargs: Mapping[str, Any] | None = None,
    exclude_families: Iterable[str] = (),
    work_dir: str | None = None,
    logger: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Behaviour cloning on expert episodes, then DAgger rounds on the learner's own states.

    Args:
        model: A MaskablePPO model whose policy is trained in place.
        env_kwargs: Environment arguments.
        seeds: Seeds of the expert episodes.
        dagger_seeds: One seed list per DAgger round (the learner acts; the expert labels).
        expert: :class:`PilotExpert` arguments.
        epochs, dagger_epochs: Passes over the data after the expert episodes / each round.
        batch_size, lr: Behaviour cloning optimiser settings.
        gamma: Discount of the value targets.
        n_jobs: Collection worker processes.
        seed: Seed of the coin flips and minibatch order.
        label_fraction: Share of the learner's states the expert labels in DAgger rounds.
        residual_coef: Penalty on the learned scores' spread (:func:`bc_train`).
        cache_dir: If given, the expert episodes are kept there (keyed by the environment
            arguments, seeds and expert settings) and reused by later runs with the same key.
        expert_env_kwargs: Environment of the expert episodes (default ``env_kwargs``), and
        exclude_families: families whose expert states are dropped: leave-one-family-out runs
            collect (and cache) the expert episodes of the whole mix once and each drops its
            held-out family; the DAgger rounds run on ``env_kwargs`` itself.
        work_dir: Where the learner is saved for the collection workers (a temp dir if None).
        logger: An SB3 logger; ``imitation/*`` values are recorded with the round as the step.
        log: Called with one line per stage.

    Returns:
        ``{"states": ..., "rounds": [{"round", "states", "loss", "ratio_to_reference"}...],
        "seconds": ...}``; ``ratio_to_reference`` is the behaviour policy's mean planned
        makespan / the env's reference (HEFT) over that round's episodes (round 0: the expert).
    """
    import tempfile

    t0 = time.perf_counter()
    rounds: list[dict[str, Any]] = []

    def record(r: int, data: Dataset, new: Dataset, loss: list[float]) -> None:
        ratios = [i["ratio_to_reference"] for i in new.info if "ratio_to_reference" in i]
        row = {
            "round": r,
            "states": len(data),
            "loss": loss[-1] if loss else float("nan"),
            "ratio_to_reference": float(np.mean(ratios)) if ratios else float("nan"),
            "seconds": time.perf_counter() - t0,
        }
        rounds.append(row)
        if logger is not None:
            for k in ("states", "loss", "ratio_to_reference"):
                logger.record(f"imitation/{k}", row[k])
            logger.dump(step=r)
        if log is not None:
            who = "expert" if r == 0 else "learner"
            log(
                f"imitation round {r}: {len(new)} new states ({who} acting, "
                f"{row['ratio_to_reference']:.3f} x reference), {len(data)} in all, "
                f"loss {row['loss']:.3f}, {row['seconds']:.0f} s"
            )

    data = expert_dataset(
        expert_env_kwargs or env_kwargs,
        seeds,
        expert=expert,
        gamma=gamma,
        n_jobs=n_jobs,
        seed=seed,
        cache_dir=cache_dir,
    ).without_families(exclude_families)
    loss = bc_train(
        model.policy,
        data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        residual_coef=residual_coef,
    )
    record(0, data, data, loss)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for r, round_seeds in enumerate(dagger_seeds, start=1):
            path = f"{tmp}/learner.zip"
            model.save(path)
            new = collect_parallel(
                env_kwargs,
                round_seeds,
                expert=expert,
                learner_path=path,
                beta=0.0,
                gamma=gamma,
                n_jobs=n_jobs,
                rng_seed=seed + r,
                label_fraction=label_fraction,
            )
            data = data.extend(new)
            loss = bc_train(
                model.policy,
                data,
                epochs=dagger_epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed + r,
                residual_coef=residual_coef,
            )
            record(r, data, new, loss)
    return {"states": len(data), "rounds": rounds, "seconds": time.perf_counter() - t0}
