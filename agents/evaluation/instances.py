"""The fixed instances of an evaluation cell, each a function of its seed alone.

A cell is a workload spec on a cluster spec. Its instance for seed ``s`` is what
``WassSchedEnv(workload=..., cluster=...).reset(seed=s)`` draws (the cluster first when the spec
stands for several, then the workflow); a seeded reset forgets the sampler's recipe pools
first (:meth:`~wass_env.workloads.WorkloadSampler.reset`), so the instance does not depend on
which other seeds are evaluated, or in which order, and a pool cannot make two seeds share a
workflow. Every scheduler, every training seed and every variant is scored on these same
instances.

A workload spec with ``per_file: true`` (and ``files``) is instead evaluated once per file, in
sorted order: instance ``i`` is file ``i``, at the spec's ``ccr`` if it has one (a number), else
at its own; its seed (``first + i``) only draws the cluster, the noise and the schedulers'
randomness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from agents.evaluation.config import EvaluationError
from wass_env.sim.cluster import ClusterError, cluster_from_spec, expand_cluster_spec
from wass_env.sim.problem import Problem, with_ccr
from wass_env.sim.workflow import WorkflowError
from wass_env.workloads import make_sampler
from wass_env.workloads.errors import WorkloadError

__all__ = ["cell_problems", "cluster_choices", "episode_problems"]


def episode_problems(env_kwargs: Mapping[str, Any], seeds: Iterable[int]) -> list[Problem]:
    """The problems ``WassSchedEnv(**env_kwargs).reset(seed=s)`` draws for each seed, each one
    from a sampler whose recipe pools were reset (see the module docstring)."""
    from wass_env.envs.wass_sched import WassSchedEnv

    kwargs = {
        k: v
        for k, v in env_kwargs.items()
        if k in ("workload", "cluster", "max_nodes", "insertion", "task_order")
    }
    env = WassSchedEnv(**kwargs)
    out = []
    for s in seeds:
        env.reset(seed=int(s))  # a seeded reset forgets the recipe pools first
        assert env.problem is not None
        out.append(env.problem)
    return out


def cluster_choices(label: str, spec: Any) -> list[Any]:
    """The plain cluster specs of ``clusters.<label>`` (one, or several drawn per episode).

    Raises:
        EvaluationError: naming ``clusters.<label>`` and the spec.
    """
    try:
        choices = expand_cluster_spec(spec)
        for c in choices:
            cluster_from_spec(c)
    except (ClusterError, TypeError, ValueError) as exc:
        raise EvaluationError(f"clusters.{label}", str(exc), spec) from None
    return choices


def _workload_error(label: str, exc: WorkloadError) -> EvaluationError:
    sub = exc.field
    if sub == "workload" or sub.startswith(("workload.", "workload[")):
        sub = sub[len("workload") :]
    elif sub:
        sub = "." + sub
    where = f" ({exc.source})" if exc.source else ""
    return EvaluationError(f"workloads.{label}{sub}", exc.problem + where)


def _per_file(label: str, spec: Mapping[str, Any], clusters: Sequence[Any], first: int) -> list:
    rest = {k: v for k, v in spec.items() if k not in ("per_file", "ccr")}
    if set(rest) != {"files"}:
        raise EvaluationError(
            f"workloads.{label}", "per_file needs a files spec (files and ccr only)", dict(spec)
        )
    ccr = spec.get("ccr")
    if ccr is not None and (isinstance(ccr, bool) or not isinstance(ccr, (int, float))):
        raise EvaluationError(f"workloads.{label}.ccr", "per_file takes one number", ccr)
    workflows = make_sampler({"files": rest["files"]}).workflows
    assert workflows is not None  # a files spec loads its workflows
    built = [cluster_from_spec(c) for c in clusters]
    out = []
    for i, wf in enumerate(workflows):
        seed = first + i
        rng = np.random.default_rng(seed)
        cluster = built[int(rng.integers(len(built)))] if len(built) > 1 else built[0]
        out.append((seed, Problem(wf if ccr is None else with_ccr(wf, cluster, ccr), cluster)))
    return out


def cell_problems(
    label: str, spec: Any, cluster_label: str, clusters: Sequence[Any], seeds: Sequence[int]
) -> list[tuple[int, Problem]]:
    """``(seed, problem)`` of every instance of a cell (see the module docstring).

    Args:
        label: Workload label (for error messages).
        spec: Workload spec.
        cluster_label: Cluster label (for error messages).
        clusters: The cluster's plain specs (:func:`cluster_choices`).
        seeds: The grid's seeds (a ``per_file`` workload uses only the first).

    Raises:
        EvaluationError: on a bad spec or a workload that does not fit the cluster, naming
            ``workloads.<label>``.
    """
    try:
        if isinstance(spec, Mapping) and spec.get("per_file"):
            return _per_file(label, spec, clusters, int(seeds[0]))
        kwargs = {"workload": spec, "cluster": list(clusters)}
        return list(zip(seeds, episode_problems(kwargs, seeds), strict=True))
    except WorkloadError as exc:
        if "fits on no node" in exc.problem:
            raise EvaluationError(
                f"workloads.{label}", f"does not fit cluster {cluster_label!r}: {exc.problem}"
            ) from None
        raise _workload_error(label, exc) from None
    except WorkflowError as exc:
        raise EvaluationError(
            f"workloads.{label}", f"does not fit cluster {cluster_label!r}: {exc}"
        ) from None
