"""The evaluation grid: workloads x clusters x seeds x schedulers, and its checks.

One *cell* is a (workload, cluster) pair; one *episode* is a cell and a seed. :class:`Grid`
describes a grid in plain Python; :func:`grid_from_config` builds one from a composed
``conf/evaluate.yaml``; :func:`check_grid` rejects bad input, naming the field and its value,
before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.evaluation.config import DEFAULT_SCHEDULERS, CPSATConfig, EvaluationError
from agents.evaluation.seeds import eval_seeds
from agents.evaluation.specs import SchedulerEntry, checkpoint_entry, parse_scheduler
from agents.evaluation.stats import COMPARE

__all__ = ["Grid", "cells", "check_grid", "grid_from_config"]


@dataclass
class Grid:
    """A fully specified evaluation grid (plain Python; no Hydra needed).

    Attributes:
        workloads: Label -> workload spec (anything :func:`wass_env.workloads.make_sampler`
            takes, including workflows; ``per_file: true`` evaluates every file once).
        clusters: Label -> cluster spec, or several (a list, ``{"mix": [...]}``, lists of
            ``kind``/``n_nodes``: one is drawn per instance; see
            :func:`~wass_env.sim.cluster.expand_cluster_spec`).
        seeds: Instance seeds, the same for every cell.
        schedulers: Scheduler columns: names, mappings or :class:`SchedulerEntry` (see
            :mod:`agents.evaluation.specs`), in table order.
        reference: Scheduler the ``ratio_to_<reference>`` column divides by.
        compare: Schedulers the summaries count wins, ties and losses against (and give a
            paired ratio to), where present.
        noise: Runtime noise sigma at execution.
        insertion: Insertion policy of the baselines' plans.
        cpsat: CP-SAT settings and size limits.
    """

    workloads: dict[str, Any]
    clusters: dict[str, Any]
    seeds: list[int]
    schedulers: list[Any] = field(default_factory=lambda: list(DEFAULT_SCHEDULERS))
    reference: str = "heft"
    compare: tuple[str, ...] = COMPARE
    noise: float = 0.0
    insertion: bool = True
    cpsat: CPSATConfig = field(default_factory=CPSATConfig)

    def entries(self) -> list[SchedulerEntry]:
        """The scheduler columns as entries (parsing names and mappings).

        Raises:
            EvaluationError: on an unknown or malformed scheduler, naming ``schedulers[i]``.
        """
        return [
            s if isinstance(s, SchedulerEntry) else parse_scheduler(s, f"schedulers[{i}]")
            for i, s in enumerate(self.schedulers)
        ]

    @property
    def names(self) -> list[str]:
        """Every scheduler column, in table order."""
        return list(dict.fromkeys(e.name for e in self.entries()))


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


def grid_from_config(cfg: DictConfig) -> Grid:
    """The :class:`Grid` a composed ``evaluate`` config describes.

    ``checkpoint`` and ``checkpoints`` add one column per checkpoint after ``schedulers``;
    ``generalisation`` adds its held-out-family cells and policies
    (:func:`agents.evaluation.generalisation.expand`).

    Raises:
        EvaluationError: on a bad field (named, with its value).
    """
    episodes = int(cfg.episodes)
    if episodes < 1:
        raise EvaluationError("episodes", "must be >= 1", episodes)
    entries = [parse_scheduler(_plain(s), f"schedulers[{i}]") for i, s in enumerate(cfg.schedulers)]
    checkpoints = [(str(k), str(v), f"checkpoints.{k}") for k, v in dict(cfg.checkpoints).items()]
    if cfg.checkpoint is not None:
        name = str(cfg.checkpoint_name)
        if name in dict(cfg.checkpoints):
            raise EvaluationError("checkpoint_name", "also a key of checkpoints", name)
        checkpoints.insert(0, (name, str(cfg.checkpoint), "checkpoint"))
    entries += [checkpoint_entry(path, name, where) for name, path, where in checkpoints]
    workloads = dict(_plain(cfg.workloads) or {})
    clusters = dict(_plain(cfg.clusters) or {})
    if cfg.get("generalisation") is not None:
        from agents.evaluation.generalisation import expand

        extra, policies = expand(cfg.generalisation)
        clash = sorted(set(extra) & set(workloads))
        if clash:
            raise EvaluationError(f"workloads.{clash[0]}", "also a generalisation cell label")
        workloads.update(extra)
        entries += policies
    cp = cfg.cpsat
    return Grid(
        workloads=workloads,
        clusters=clusters,
        seeds=eval_seeds(episodes, int(cfg.seed)),
        schedulers=entries,
        reference=str(cfg.reference),
        compare=tuple(str(c) for c in cfg.get("compare", COMPARE)),
        noise=float(cfg.noise),
        insertion=bool(cfg.insertion),
        cpsat=CPSATConfig(
            time_limit=float(cp.time_limit),
            deterministic_time=None
            if cp.deterministic_time is None
            else float(cp.deterministic_time),
            workers=int(cp.workers),
            max_tasks=int(cp.max_tasks),
            max_nodes=int(cp.max_nodes),
        ),
    )


def check_grid(grid: Grid) -> list[SchedulerEntry]:
    """Check ``grid`` and return its scheduler entries.

    Raises:
        EvaluationError: on an empty grid, bad noise or CP-SAT settings, an unknown scheduler,
            a column listed twice for one workload, a reference that is not a column, or a
            scheduler restricted to a workload the grid does not have.
    """
    if not grid.workloads:
        raise EvaluationError("workloads", "no workload to evaluate on (choose an experiment)")
    if not grid.clusters:
        raise EvaluationError("clusters", "no cluster to evaluate on (choose an experiment)")
    if not grid.seeds:
        raise EvaluationError("episodes", "no seed to evaluate on", len(grid.seeds))
    if not (math.isfinite(grid.noise) and grid.noise >= 0):
        raise EvaluationError("noise", "must be a finite number >= 0", grid.noise)
    entries = grid.entries()
    seen: dict[str, list[SchedulerEntry]] = {}
    for e in entries:
        for other in seen.get(e.name, []):
            mine = set(grid.workloads) if e.workloads is None else set(e.workloads)
            theirs = set(grid.workloads) if other.workloads is None else set(other.workloads)
            both = sorted(mine & theirs)
            if both:
                raise EvaluationError(
                    e.field,
                    f"column {e.name!r} is listed twice"
                    + (f" for workload {both[0]!r}" if len(grid.workloads) > 1 else ""),
                    e.name,
                )
        unknown = [w for w in e.workloads or () if w not in grid.workloads]
        if unknown:
            raise EvaluationError(
                f"{e.field}.workloads", f"not one of {list(grid.workloads)}", unknown[0]
            )
        seen.setdefault(e.name, []).append(e)
    if grid.reference not in seen:
        raise EvaluationError("reference", f"not among the schedulers {list(seen)}", grid.reference)
    cp = grid.cpsat
    if not cp.time_limit > 0:
        raise EvaluationError("cpsat.time_limit", "must be > 0 [s]", cp.time_limit)
    if cp.deterministic_time is not None and not cp.deterministic_time > 0:
        raise EvaluationError("cpsat.deterministic_time", "must be > 0", cp.deterministic_time)
    if cp.workers < 1:
        raise EvaluationError("cpsat.workers", "must be >= 1", cp.workers)
    return entries


def cells(grid: Grid) -> Sequence[tuple[str, str]]:
    """The grid's (workload, cluster) labels, in grid order."""
    return [(w, c) for w in grid.workloads for c in grid.clusters]
