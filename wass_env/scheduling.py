"""The one scheduler interface every policy implements, and the registry of schedulers by name.

This module sits below the environment, the agents and the teacher: all of them import it, it
imports none of them. A :class:`Scheduler` can be used two ways:

* **whole-workflow**: ``plan(problem)`` returns a complete :class:`~wass_env.sim.plan.Plan`;
* **step-wise** inside ``WassSched-v0``: ``act(obs, mask, env)`` returns the node for the task the
  environment is asking about (the environment decides which ready task comes next);
* **online**: ``run_online(problem, factors=...)`` runs the workflow on the simulated cluster
  (:class:`~wass_env.sim.online.OnlineSim`) and asks :meth:`Scheduler.dispatch` for the node of
  each ready task when a node can take it; inside ``WassSchedOnline-v0``, ``act`` does the same
  for the task the environment asks about. Schedulers without an online rule raise
  ``NotImplementedError`` from ``dispatch``.

List schedulers only implement :meth:`Scheduler.select_node`; the base class turns it into both
uses. Schedulers with their own static task ranking (HEFT, CPOP, PEFT) override
:meth:`Scheduler.priority`; those that choose the next task dynamically (Min-Min, Max-Min) override
:meth:`Scheduler.plan`.

**Registry.** Schedulers are found by short name (``make_scheduler("heft")``). Packages declare
theirs in the ``wass.schedulers`` entry-point group (``heft = "agents.heft:HEFTScheduler"`` in
their ``pyproject.toml``), so another package can add schedulers without this one knowing it;
:func:`register_scheduler` adds one at run time. Entries are imported only when used. A spec may
also be a mapping with ``_target_`` (an import path, as in Hydra configs) and keyword arguments.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.errors import WassError
from wass_env.sim.online import OnlineSim
from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import Plan, PlanBuilder, Schedule
from wass_env.sim.problem import Problem

__all__ = [
    "ENTRY_POINT_GROUP",
    "SCHEDULERS",
    "Scheduler",
    "UnknownSchedulerError",
    "env_core",
    "make_scheduler",
    "register_scheduler",
    "resolve_target",
    "scheduler_names",
]


def env_core(env: Any) -> Any:
    """The innermost ``WassSchedEnv`` under any wrappers."""
    return getattr(env, "unwrapped", env)


class Scheduler(abc.ABC):
    """Base class of all schedulers.

    Args:
        seed: Seed of the scheduler's own random generator (used by randomised policies).

    Attributes:
        name: Short name used in tables and configs.
        task_order: Priority rule for the next ready task in :meth:`plan` (see
            :func:`wass_env.sim.ordering.task_priority`).
        contention: Plan with contention-aware transfer estimates on NIC networks (the
            ``contention`` option of :class:`~wass_env.sim.plan.PlanBuilder`); False (the
            default) estimates every transfer as on a contention-free network.
    """

    name: ClassVar[str] = "scheduler"
    #: Constructor arguments a name alone cannot supply (a trained policy needs its
    #: ``checkpoint``); empty for schedulers that ``make_scheduler(name)`` builds as is.
    requires: ClassVar[tuple[str, ...]] = ()
    task_order: str = "rank"
    contention: bool = False

    def __init__(self, seed: int | None = None) -> None:
        self._problem: Problem | None = None
        self.reset(seed)

    # ------------------------------------------------------------------ life cycle
    def reset(self, seed: int | None = None) -> None:
        """Re-seed the scheduler's random generator and forget per-problem state."""
        self.rng = np.random.default_rng(seed)
        self._problem = None

    def begin(self, problem: Problem) -> None:
        """Hook called once per problem before its first decision (precompute ranks here)."""

    def _ensure(self, problem: Problem) -> None:
        if problem is not self._problem:
            self._problem = problem
            self.begin(problem)

    # ------------------------------------------------------------------ decisions
    @abc.abstractmethod
    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """Node for ready ``task``, given the partial plan in ``builder``."""

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the node for the task ``env`` currently asks about.

        Args:
            obs: The observation (unused by heuristics, which read the simulator state).
            mask: Feasible nodes (bool, padded to the action space size).
            env: The environment (wrapped or not).
        """
        core = env_core(env)
        self._ensure(core.problem)
        sim = getattr(core, "sim", None)
        if isinstance(sim, OnlineSim):
            return self.dispatch(sim, core.current_task)
        return self.select_node(core.builder, core.current_task)

    def dispatch(self, sim: OnlineSim, task: int) -> int:
        """Online use: the node for ready ``task``, among ``sim.takers(task)`` (the nodes that
        can take it now), given the running cluster ``sim``.

        Raises:
            NotImplementedError: for a scheduler without an online rule (the base class).
        """
        raise NotImplementedError(
            f"scheduler {self.name!r} has no online dispatch rule (Scheduler.dispatch)"
        )

    def run_online(self, problem: Problem, *, factors: Any = None, mode: str = "queue") -> Schedule:
        """Online use: run ``problem`` on its simulated cluster, dispatching as it runs.

        Whenever ready tasks have a node that can take them, the one of highest
        :meth:`priority` (ties: lowest index) goes to the node :meth:`dispatch` picks; node
        queues run their tasks in the same priority order.

        Args:
            problem: The problem to run.
            factors: Per-task runtime factors (see :class:`~wass_env.sim.online.OnlineSim`);
                default: runtimes as estimated.
            mode: ``"queue"`` (a task may wait in a busy node's queue) or ``"idle"`` (only
                nodes that can start it now), see :data:`~wass_env.sim.online.DISPATCH_MODES`.

        Returns:
            The realised schedule.
        """
        self._ensure(problem)
        priority = np.asarray(self.priority(problem), dtype=np.float64)
        sim = OnlineSim(problem, factors, mode=mode, priority=priority)
        key = (-priority).tolist()
        while sim.advance():
            task = sim.next_task(key)
            sim.dispatch(task, self.dispatch(sim, task))
        return sim.schedule()

    def priority(self, problem: Problem) -> NDArray[np.float64]:
        """Priority of every task in :meth:`plan`: among ready tasks, the highest goes first.

        The default follows :attr:`task_order`; list schedulers with their own ranking (CPOP,
        PEFT, ...) override this instead of :meth:`plan`.
        """
        return task_priority(problem, self.task_order)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """Whole-workflow use: place every task, highest-priority ready task first.

        Args:
            problem: The problem to schedule.
            insertion: Insertion policy of the plan builder (see :mod:`wass_env.sim.plan`).
        """
        self._ensure(problem)
        builder = PlanBuilder(problem, insertion=insertion, contention=self.contention)
        queue = ReadyQueue(builder, self.priority(problem))
        while not builder.done:
            task = queue.pop()
            builder.assign(task, self.select_node(builder, task))
            queue.update()
        return builder.plan()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ---------------------------------------------------------------------------- registry
#: Entry-point group where packages declare their schedulers (name = "module:Class").
ENTRY_POINT_GROUP = "wass.schedulers"


class UnknownSchedulerError(WassError):
    """Raised for a scheduler name that is not registered (the message lists the names)."""


class _Registry(Mapping[str, type[Scheduler]]):
    """Scheduler factories by name: entry points (imported on first use) and run-time additions."""

    def __init__(self) -> None:
        self._refs: dict[str, str | Callable[..., Scheduler]] = {}
        self._loaded: dict[str, Callable[..., Scheduler]] = {}
        self._scanned = False

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._refs.setdefault(ep.name, ep.value)

    def register(
        self, name: str, factory: str | Callable[..., Scheduler], *, replace: bool = False
    ) -> None:
        self._scan()
        if not replace and name in self._refs and self._refs[name] != factory:
            raise ValueError(f"scheduler name {name!r} is already registered")
        self._refs[name] = factory
        self._loaded.pop(name, None)

    def __getitem__(self, name: str) -> type[Scheduler]:
        self._scan()
        if name not in self._loaded:
            ref = self._refs[name]  # KeyError for unknown names
            self._loaded[name] = resolve_target(ref) if isinstance(ref, str) else ref
        return self._loaded[name]  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        self._scan()
        return iter(sorted(self._refs))

    def __len__(self) -> int:
        self._scan()
        return len(self._refs)


#: Every registered scheduler factory by short name (a read-only mapping; classes are imported
#: when looked up).
SCHEDULERS = _Registry()


def register_scheduler(
    name: str, factory: str | Callable[..., Scheduler], *, replace: bool = False
) -> None:
    """Register a scheduler factory (a class, a callable or a ``"module:attr"`` path) by name.

    Raises:
        ValueError: if ``name`` is taken by another factory and ``replace`` is False.
    """
    SCHEDULERS.register(name, factory, replace=replace)


def scheduler_names(*, standalone: bool = False) -> list[str]:
    """The registered scheduler names, sorted.

    Args:
        standalone: Only those that need no constructor arguments (see
            :attr:`Scheduler.requires`); this imports every registered class.
    """
    if not standalone:
        return list(SCHEDULERS)
    return [n for n in SCHEDULERS if not getattr(SCHEDULERS[n], "requires", ())]


def resolve_target(path: str) -> Any:
    """The object at an import path, ``"pkg.module:attr"`` or ``"pkg.module.attr"``.

    Raises:
        UnknownSchedulerError: if the module or attribute does not exist.
    """
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UnknownSchedulerError(f"cannot import {path!r}: {exc}") from None
    return obj


def make_scheduler(spec: str | Mapping[str, Any] | Scheduler, **kwargs: Any) -> Scheduler:
    """A new scheduler from a registered name, a ``_target_`` mapping, or an instance.

    Args:
        spec: A registered name (``"heft"``, ``"min_min"``, ``"policy"``), a mapping
            ``{"_target_": "my_pkg.MyScheduler", **kwargs}``, or a :class:`Scheduler` (returned
            as is).
        **kwargs: Passed to the factory (``seed=...``, ``time_limit=...``); for a mapping they
            are added to its own arguments.

    Raises:
        UnknownSchedulerError: if the name is not registered (the message lists the names) or
            the target cannot be imported.
    """
    if isinstance(spec, Scheduler):
        return spec
    if isinstance(spec, Mapping):
        args = dict(spec)
        target = args.pop("_target_", None)
        if not isinstance(target, str):
            raise UnknownSchedulerError(
                f"a scheduler mapping needs a '_target_' import path, got {dict(spec)!r}"
            )
        args.update(kwargs)
        factory = resolve_target(target)
        sch = factory(**args)
    else:
        try:
            factory = SCHEDULERS[spec]
        except (KeyError, TypeError):
            raise UnknownSchedulerError(
                f"unknown scheduler {spec!r}; valid names: {', '.join(SCHEDULERS)}"
            ) from None
        sch = factory(**kwargs)
    if not isinstance(sch, Scheduler):
        raise UnknownSchedulerError(f"{spec!r} did not make a Scheduler, got {type(sch).__name__}")
    return sch
