"""``WassSchedOnline-v0``: dispatch each ready task while the simulated cluster runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, SupportsFloat

import numpy as np
from numpy.typing import NDArray

from wass_env.envs.wass_sched import (
    _CLIP,
    _N_STATIC,
    NODE_FEATURES,
    TASK_FEATURES,
    ActionError,
    EnvConfigError,
    WassSchedEnv,
    _node_index,
)
from wass_env.sim.execute import runtime_noise
from wass_env.sim.metrics import schedule_metrics
from wass_env.sim.online import DISPATCH_MODES, OnlineSim
from wass_env.sim.ordering import task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem

__all__ = ["WassSchedOnlineEnv"]

_TINY = float(np.finfo(np.float64).tiny)


class WassSchedOnlineEnv(WassSchedEnv):
    """Online workflow scheduling: decisions are made as the simulated cluster runs.

    ## Description
    An episode runs one workflow on one cluster (drawn as in ``WassSched-v0``) on
    :class:`~wass_env.sim.online.OnlineSim`. Simulated time advances; a decision is asked when
    a task is *ready* (all its parents have finished executing) and some node *can take it*
    (``dispatch="queue"``: it fits there, and waits in the node's queue if the node is busy;
    ``"idle"``: the node has its cores and memory free now). Among such tasks the environment
    presents the one of highest priority (``task_order``: upward rank by default, or file
    order), and the agent picks its node. Its inputs then move through the cluster's network
    model (``contention_free``, ``nic`` or ``shared_nic``: concurrent transfers share NICs by
    max-min fairness), and it runs when they have arrived and its cores are free. Runtimes are
    revealed by execution: each task runs its estimated runtime times a seeded mean-one
    lognormal factor (``noise``); observations only show estimates and what has happened so
    far.

    ## Action Space
    ``Discrete(max_nodes)``, as in ``WassSched-v0``; the mask (``action_masks()`` and
    ``info["action_mask"]``) holds the nodes that can take the task now (see ``dispatch``).

    ## Observation Space
    The same ``Dict`` of ``"task"`` and ``"nodes"`` Boxes as ``WassSched-v0`` (the same feature
    names, :data:`~wass_env.envs.wass_sched.TASK_FEATURES` and
    :data:`~wass_env.envs.wass_sched.NODE_FEATURES`), with online meanings: times are relative to
    the clock instead of the task's release; ``partial_makespan`` is the clock, ``release`` when
    the task's last parent finished, ``placed_fraction`` the dispatched fraction, ``feasible``
    the mask; per node ``free_at`` is when the node is expected to have the task's cores free
    (running tasks' actual start plus estimated runtime), ``data_ready`` when its inputs would
    arrive if sent now (contention-free estimate), ``start``/``finish`` follow, ``load`` is the
    estimated core-seconds dispatched there. ``lookahead`` and ``graph_window`` are not offered.

    ## Rewards
    ``"makespan"``: at the last step, ``-makespan / lower bound``; ``"progress"``: ``-(clock
    advance) / lower bound`` at every step (it sums to the same ``-makespan / lower bound``);
    ``"illegal"``: -1 for a masked action (it falls back to the lowest-index node that can take
    the task, or raises with ``illegal_action="raise"``).

    ## Episode End
    Terminates after the last task's decision, once the cluster has run every task (episode
    length = number of tasks). The last ``info`` carries the realised metrics
    (``makespan``, ``mean_wait``, ``utilization``, ...), and with ``reference`` the reference
    scheduler's makespan run online on the same realised runtimes (``reference_makespan``,
    ``ratio_to_reference`` = makespan / reference).

    ## Arguments
    ``workload``, ``cluster``, ``max_nodes``, ``task_order``, ``noise``, ``reward_weights``,
    ``illegal_action``, ``reference`` and ``render_mode`` as in ``WassSched-v0`` (``reference``
    must have an online rule: ``"heft"``, ``"slurm"``, ``"random"``). The noise stream is the
    static environment's, so with the same seed both draw the same per-task factors.
    ``dispatch``: ``"queue"`` (default: the mask is every node the task fits on; on a busy node
    it waits in the node's queue, ordered by ``task_order``'s priority) or ``"idle"`` (the mask
    is the nodes that can start it now). ``reset(options=...)`` also accepts ``"factors"``:
    per-task runtime factors to use instead of the noise draw.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        *,
        workload: Any = "layered",
        cluster: Any = "het16",
        max_nodes: int | None = None,
        task_order: str = "rank",
        noise: float = 0.0,
        reward_weights: Any = None,
        illegal_action: str = "fallback",
        reference: Any = None,
        dispatch: str = "queue",
        render_mode: str | None = None,
    ) -> None:
        if dispatch not in DISPATCH_MODES:
            raise EnvConfigError(f"dispatch must be one of {DISPATCH_MODES}, got {dispatch!r}")
        self.dispatch = dispatch
        super().__init__(
            workload=workload,
            cluster=cluster,
            max_nodes=max_nodes,
            task_order=task_order,
            noise=noise,
            reward_weights=reward_weights,
            illegal_action=illegal_action,
            reference=reference,
            render_mode=render_mode,
        )
        self.sim: OnlineSim | None = None
        self.factors: NDArray[np.float64] = np.ones(0)
        self._given_factors: Any = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, Any]]:
        """Start an episode; ``options`` as in ``WassSched-v0``, plus ``"factors"``: the
        per-task runtime factors to use instead of the seeded noise draw (to replay the same
        realised runtimes under several schedulers)."""
        self._given_factors = None
        if isinstance(options, Mapping) and "factors" in options:
            options = dict(options)
            self._given_factors = options.pop("factors")
        return super().reset(seed=seed, options=options)

    # ------------------------------------------------------------------ episode
    def _start_episode(self, problem: Problem) -> None:
        self.problem = problem
        self.builder = None
        lb = problem.lower_bound()
        self._scale = max(lb if lb > 0 else problem.serial_time(), _TINY)
        self._inv = 1.0 / self._scale
        self._reward_unit = self._scale
        self._reference_makespan = None
        self._episode_tables(problem)
        assert self._noise_rng is not None
        if self._given_factors is not None:
            fac = np.asarray(self._given_factors, dtype=np.float64).reshape(-1)
            if fac.size != problem.n_tasks or not np.all(np.isfinite(fac)) or np.any(fac < 0):
                raise EnvConfigError(
                    f"reset: options['factors'] must be {problem.n_tasks} finite values >= 0, "
                    f"got {fac.size} values"
                )
            self.factors = fac
        else:
            # The static environment's draw: one mean-one factor per task, in task order.
            self.factors = runtime_noise(problem.n_tasks, self.noise, self._noise_rng)
        priority = task_priority(problem, self.task_order)
        self.sim = OnlineSim(problem, self.factors, mode=self.dispatch, priority=priority)
        self._key = (-priority).tolist()
        self._next_decision()

    def _next_decision(self) -> None:
        """Advance the cluster to the next decision; set the current task and its mask."""
        sim = self.sim
        assert sim is not None
        mask = np.zeros(self.max_nodes, dtype=bool)
        if sim.advance():
            self.current_task = sim.next_task(self._key)
            mask[: self._n] = sim.takers(self.current_task)
            self._free_at, self._ready = sim.estimate(self.current_task)
        else:
            self.current_task = -1
            mask = self._valid.copy()
        self._mask = mask
        mask_i8 = mask.astype(np.int8)
        mask_i8.setflags(write=False)
        self._mask_i8 = mask_i8

    def _prepare(self) -> None:
        """Nothing to precompute per step (:meth:`_next_decision` does it)."""

    def step(
        self, action: Any
    ) -> tuple[dict[str, NDArray[np.float32]], SupportsFloat, bool, bool, dict[str, Any]]:
        """Dispatch the current task to node ``action``; run until the next decision."""
        sim, p = self.sim, self.problem
        if sim is None or p is None:
            raise RuntimeError("call reset() before step()")
        if self.current_task < 0:
            raise RuntimeError("the episode is over; call reset()")
        task = self.current_task
        node = _node_index(action)
        illegal = not (0 <= node < self.max_nodes and self._mask[node])
        if illegal:
            if self.illegal_action == "raise":
                raise ActionError(
                    f"illegal action {node} for task {p.workflow.ids[task]!r}: nodes that can "
                    f"take it now are {np.flatnonzero(self._mask).tolist()}"
                )
            node = int(np.argmax(self._mask))
        before = sim.now
        sim.dispatch(task, node)
        self._node_of[task] = node
        self._next_decision()
        terminated = self.current_task < 0
        rewards = {
            "makespan": 0.0,
            "progress": -(sim.now - before) / self._reward_unit,
            "illegal": -1.0 if illegal else 0.0,
        }
        metrics: dict[str, Any] = {}
        if terminated:
            metrics = self._finish_episode()
            rewards["makespan"] = -metrics["makespan"] / self._reward_unit
        return self._step_result(rewards, illegal, metrics, terminated)

    def _finish_episode(self) -> dict[str, Any]:
        sim, p = self.sim, self.problem
        assert sim is not None and p is not None
        realized = sim.schedule()
        m: dict[str, Any] = dict(schedule_metrics(realized).as_dict())
        if self._reference is not None:
            ref = self._reference.run_online(p, factors=self.factors, mode=self.dispatch).makespan
            m["reference_makespan"] = ref
            m["ratio_to_reference"] = realized.makespan / ref if ref > 0 else 1.0
        m.update(
            n_tasks=p.n_tasks,
            n_nodes=p.n_nodes,
            workflow=p.workflow.name,
            family=p.workflow.family,
            cluster=p.cluster.name,
        )
        self.last_schedule = realized
        return m

    # ------------------------------------------------------------------ observation
    def _get_obs(self) -> dict[str, NDArray[np.float32]]:
        t = self.current_task
        if t < 0:
            node_obs = np.zeros((self.max_nodes, len(NODE_FEATURES)), dtype=np.float32)
            node_obs[:, 0] = self._valid
            return {"task": np.zeros(len(TASK_FEATURES), dtype=np.float32), "nodes": node_obs}
        sim, p = self.sim, self.problem
        assert sim is not None and p is not None
        inv, now = self._inv, sim.now
        task_obs = self._task_static[t].copy()
        task_obs[8] = sim.n_dispatched / self._n_tasks
        task_obs[9] = min(now * inv, _CLIP)
        task_obs[10] = min(float(sim.release[t]) * inv, _CLIP)
        dyn = self._dyn
        free_at, ready = self._free_at, self._ready
        with np.errstate(invalid="ignore"):
            dyn[0] = free_at - now
            dyn[1] = ready - now
            np.maximum(dyn[0], dyn[1], out=dyn[2])
            np.add(dyn[2], p.exec_time[t], out=dyn[3])
            finite = dyn[3][np.isfinite(dyn[3])]
            dyn[4] = dyn[3] - float(finite.min())
        times = dyn[:5]
        times *= inv
        np.nan_to_num(times, copy=False, nan=_CLIP, posinf=_CLIP)
        np.clip(times, 0.0, _CLIP, out=times)
        self._local_input(t)
        np.minimum(sim.busy * self._load_scale, _CLIP, out=dyn[6])
        node_obs = self._node_template.copy()
        rows = node_obs[: self._n]
        rows[:, :_N_STATIC] = self._node_static[t]
        rows[:, 1] = self._mask[: self._n]
        rows[:, _N_STATIC:] = dyn.T
        return {"task": task_obs, "nodes": node_obs}

    def _local_input(self, t: int) -> None:
        """Row 5 of the dynamic columns: the fraction of ``t``'s input bytes on each node."""
        local = self._dyn[5]
        local[:] = 0.0
        total = self._input_bytes[t]
        if total <= 0:
            return
        p, sim = self.problem, self.sim
        assert p is not None and sim is not None
        sl = p.workflow.parent_edge_slice(t)
        on = np.bincount(
            sim.node[p.workflow.edge_src[sl]], weights=p.workflow.edge_bytes[sl], minlength=self._n
        )
        np.minimum(on / total, _CLIP, out=local)

    def _get_info(self) -> dict[str, Any]:
        p, sim = self.problem, self.sim
        assert p is not None and sim is not None
        info: dict[str, Any] = {"action_mask": self._mask_i8, "time": sim.now}
        if self.current_task >= 0:
            info["task"] = p.workflow.ids[self.current_task]
        return info

    def observe(self, builder: PlanBuilder, task: int) -> dict[str, NDArray[np.float32]]:
        """Not available online: there is no partial plan to observe (decisions follow the
        running cluster); run the policy in this environment instead."""
        raise EnvConfigError(
            "WassSchedOnline-v0 has no plan-based observation; step the online env instead"
        )

    def render(self) -> str | NDArray[np.uint8] | None:
        """A Gantt chart of what has run so far (running tasks up to the clock)."""
        sim, p = self.sim, self.problem
        if self.render_mode is None or sim is None or p is None:
            return None
        from wass_env.render import gantt_rgb, gantt_text

        started = np.isfinite(sim.start)
        node = np.where(started, sim.node, -1)
        start = np.where(started, sim.start, 0.0)
        finish = np.where(np.isfinite(sim.finish), sim.finish, np.where(started, sim.now, 0.0))
        if self.render_mode == "ansi":
            return gantt_text(p, node, start, finish)
        return gantt_rgb(p, node, start, finish)
