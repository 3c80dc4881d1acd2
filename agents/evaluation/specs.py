"""Scheduler columns of an evaluation: any scheduler by name, by ``_target_``, or a checkpoint.

An item of a ``schedulers:`` list is one of

* a registered name: ``heft`` (the column is named after it);
* ``{name: ppo, _target_: my_pkg.MyScheduler, ...}``: an import path and its keyword arguments;
* ``{name: ppo, scheduler: policy, checkpoint: runs/x/model.zip}``: a registered name with
  keyword arguments;
* a :class:`~wass_env.scheduling.Scheduler` instance (from Python, e.g. a policy just trained).

Any mapping may also have ``workloads: [label, ...]``: the column then runs only on those
workloads (a policy that held out one family runs on that family only). Two items may share a
column name if their workloads do not overlap.

A checkpoint is one more scheduler: :func:`checkpoint_spec` turns a path into the spec the
registry builds it from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation.config import EvaluationError
from wass_env.scheduling import (
    SCHEDULERS,
    Scheduler,
    UnknownSchedulerError,
    make_scheduler,
    resolve_target,
)

__all__ = ["SchedulerEntry", "checkpoint_entry", "checkpoint_spec", "parse_scheduler"]


@dataclass
class SchedulerEntry:
    """One scheduler column (or part of one, restricted to some workloads).

    Attributes:
        name: Column name in rows and tables.
        spec: What :func:`~wass_env.scheduling.make_scheduler` builds it from: a registered
            name, a ``_target_`` mapping or an instance.
        kwargs: Keyword arguments for a registered name.
        workloads: Workload labels it runs on (None: all).
        field: The config field it came from, for error messages.
        checkpoint: The checkpoint file it loads, if any (checked before anything runs).
    """

    name: str
    spec: str | Mapping[str, Any] | Scheduler
    kwargs: dict[str, Any] = field(default_factory=dict)
    workloads: tuple[str, ...] | None = None
    field: str = "schedulers"
    checkpoint: str | None = None

    @property
    def registered(self) -> str | None:
        """The registered name it is built from (None for ``_target_`` mappings and instances)."""
        return self.spec if isinstance(self.spec, str) else None

    def runs_on(self, workload: str) -> bool:
        """Whether this entry has a column value for ``workload``."""
        return self.workloads is None or workload in self.workloads

    def build(self, **defaults: Any) -> Scheduler:
        """A new scheduler (``defaults`` are keyword arguments the entry does not set).

        Raises:
            EvaluationError: if it cannot be built (unknown name, bad arguments, bad file).
        """
        if isinstance(self.spec, Scheduler):
            return self.spec
        kwargs = {**defaults, **self.kwargs}
        try:
            return make_scheduler(self.spec, **kwargs)
        except UnknownSchedulerError as exc:
            raise EvaluationError(self.field, str(exc), self.checkpoint) from None
        except Exception as exc:  # a corrupt checkpoint, a wrong argument: bad input
            what = "cannot load the checkpoint" if self.checkpoint else "cannot build it"
            raise EvaluationError(self.field, f"{what}: {exc}", self.checkpoint) from None


def checkpoint_spec(path: str) -> tuple[str | dict[str, Any], dict[str, Any]]:
    """``(spec, kwargs)`` that build the scheduler stored in checkpoint ``path``.

    The registered ``policy`` scheduler loads any checkpoint where it is installed; otherwise a
    MaskablePPO checkpoint is loaded with :meth:`agents.ppo.MaskablePPOAgent.load`.
    """
    if "policy" in SCHEDULERS:
        return "policy", {"checkpoint": str(path)}
    return {"_target_": "agents.ppo:MaskablePPOAgent.load", "path": str(path)}, {}


def _target_name(target: str, where: str) -> str:
    try:
        obj = resolve_target(target)
    except UnknownSchedulerError as exc:
        raise EvaluationError(f"{where}._target_", str(exc), target) from None
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    return target.replace(":", ".").rsplit(".", 1)[-1]


def parse_scheduler(item: Any, where: str, *, checkpoint: str | None = None) -> SchedulerEntry:
    """The :class:`SchedulerEntry` of one ``schedulers:`` item (see the module docstring).

    Args:
        item: The item.
        where: Its config field, for error messages.
        checkpoint: The checkpoint file it loads (default: its ``checkpoint`` argument, if
            any); it must exist.

    Raises:
        EvaluationError: naming ``where`` and the value, for an unknown name, a mapping with
            neither ``_target_`` nor ``scheduler``, or bad ``workloads``.
    """
    if isinstance(item, Scheduler):
        return SchedulerEntry(item.name, item, field=where)
    if isinstance(item, str):
        if item not in SCHEDULERS:
            raise EvaluationError(
                where, f"unknown scheduler; valid names: {', '.join(sorted(SCHEDULERS))}", item
            )
        return SchedulerEntry(item, item, field=where)
    if not isinstance(item, Mapping):
        raise EvaluationError(
            where, "expected a scheduler name or a mapping with _target_ or scheduler", item
        )
    args = {str(k): v for k, v in item.items()}
    name = args.pop("name", None)
    workloads = args.pop("workloads", None)
    if workloads is not None:
        if isinstance(workloads, str):
            workloads = [workloads]
        if not isinstance(workloads, list) or not all(isinstance(w, str) for w in workloads):
            raise EvaluationError(f"{where}.workloads", "expected a list of labels", workloads)
        workloads = tuple(workloads)
    if checkpoint is None and args.get("checkpoint") is not None:
        checkpoint = str(args["checkpoint"])
    if "_target_" in args:
        if "scheduler" in args:
            raise EvaluationError(where, "give _target_ or scheduler, not both", dict(item))
        target = args["_target_"]
        if not isinstance(target, str):
            raise EvaluationError(f"{where}._target_", "expected an import path", target)
        default = _target_name(target, where)
        entry = SchedulerEntry(str(name or default), args, field=where, checkpoint=checkpoint)
    elif "scheduler" in args:
        registered = args.pop("scheduler")
        if registered not in SCHEDULERS:
            raise EvaluationError(
                f"{where}.scheduler",
                f"unknown scheduler; valid names: {', '.join(sorted(SCHEDULERS))}",
                registered,
            )
        entry = SchedulerEntry(
            str(name or registered), str(registered), args, field=where, checkpoint=checkpoint
        )
    else:
        raise EvaluationError(
            where, "a scheduler mapping needs _target_ (an import path) or scheduler (a name)", item
        )
    entry.workloads = workloads
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise EvaluationError(
            where, f"no such checkpoint file (relative to {Path.cwd()})", checkpoint
        )
    return entry


def checkpoint_entry(
    path: str, name: str, where: str, workloads: list[str] | None = None
) -> SchedulerEntry:
    """The column of the scheduler stored in checkpoint ``path`` (which must exist).

    Raises:
        EvaluationError: naming ``where`` if the file does not exist.
    """
    spec, kwargs = checkpoint_spec(path)
    item: dict[str, Any] = dict(spec) if isinstance(spec, dict) else {"scheduler": spec}
    item.update(kwargs, name=name)
    if workloads is not None:
        item["workloads"] = workloads
    return parse_scheduler(item, where, checkpoint=str(path))
