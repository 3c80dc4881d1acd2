"""Workload samplers: draw one workflow per episode from a plain, configuration-friendly spec.

A spec is what a Hydra YAML group gives (dicts, lists, strings, numbers), or workflows:

* ``{"generator": "layered", "n_tasks": [20, 60], "width": [2, 8], "density": 0.3}``: a new
  generated workflow per episode (see :data:`~wass_env.workloads.generators.GENERATORS`). A
  scalar parameter given as a pair ``[lo, hi]`` is drawn per episode: integers inclusive for
  the integer parameters (``n_tasks``, ``width``, ``stages``, ``jump``), uniform for the others
  (``density``, ``ccr``); ``{"loguniform": [lo, hi]}`` (``0 < lo <= hi``) draws a float
  parameter log-uniformly, so that every factor of ten in the range is equally likely (a CCR
  from 0.05 to 10). The size ranges ``work``, ``data``, ``cores`` and ``memory`` are
  handed to the generator as they are (the generator draws from them per task or per edge).
  Missing ``n_tasks`` defaults to ``[20, 100]``.
* ``{"recipe": "montage", "n_tasks": 100, "pool": 8}``: a pool of ``pool`` WfCommons recipe
  instances (default 8; ``n_tasks`` defaults to ``max(100, the recipe's minimum)`` and may be
  a range). On first use the pool's seeds (and sizes) are drawn from the episode generator, or
  from ``"seed"`` when the spec has one (then every copy of the sampler, e.g. in each
  subprocess environment, has the same pool); each instance is generated the first time it is
  picked and kept in memory (:data:`RECIPE_CACHE_SIZE` instances per process; recipes take
  tens to hundreds of milliseconds).
* ``{"files": ["../shared/data/dax/*.xml", ...]}``: WfFormat or DAX files, or glob patterns
  (relative to the current directory, ``**`` allowed), loaded once when the sampler is built;
  one is picked uniformly per episode.
* ``{"mix": [spec, spec, ...], "weights": [...]}``: one sub-spec drawn per episode with the
  given weights (default: equal). ``mix`` may also be a mapping ``{label: spec, ...}`` (labels
  such as workflow families); then ``weights`` may be a mapping too, and ``"exclude": [label,
  ...]`` (or one label) leaves those entries out: a leave-one-family-out training set is the
  full mix with ``exclude: <family>``. Excluding a label that is not in the mix is an error, so
  a typo cannot silently train on everything.
* A list of specs: a mix with equal weights. A :class:`~wass_env.sim.workflow.Workflow` or a
  list of them: picked uniformly.
* A string: a generator name (default sizes), a recipe name (default size and pool) or a file
  path or glob pattern.

Any dict spec may also have ``"ccr": x`` (a number or a range): when :meth:`sample` is given a
cluster, the drawn workflow's edge bytes are rescaled with :func:`wass_env.sim.problem.with_ccr`
so that its CCR on that cluster is exactly ``x``. A generator spec also passes ``ccr`` to the
generator (which sets it on the reference network when no cluster is given).

Samplers hold plain data only, so they pickle (environments run in subprocesses). The only
state a sampler keeps between draws is its recipe pools; :meth:`WorkloadSampler.reset` forgets
them, so that the next draw depends on the generator alone (evaluation instances are then a
function of their seed, whatever else was drawn before).
"""

from __future__ import annotations

import glob
import inspect
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from wass_env.limits import MAX_COUNT, whole_number
from wass_env.sim.cluster import Cluster
from wass_env.sim.problem import with_ccr
from wass_env.sim.workflow import Workflow, WorkflowError
from wass_env.workloads.errors import WorkloadError
from wass_env.workloads.generators import GENERATORS
from wass_env.workloads.loader import load_workflow
from wass_env.workloads.recipes import RECIPES, recipe_min_tasks, recipe_workflow

__all__ = ["RECIPE_CACHE_SIZE", "WorkloadSampler", "make_sampler"]

#: Generator parameters drawn as integers when given as ``[lo, hi]``.
INT_PARAMS = frozenset({"n_tasks", "width", "stages", "jump"})
#: Generator parameters that are ranges in their own right (passed through, never drawn here).
RANGE_PARAMS = frozenset({"work", "data", "cores", "memory"})
#: Default ``n_tasks`` for generators that take one.
DEFAULT_N_TASKS = (20, 100)
#: Default recipe pool size.
DEFAULT_POOL = 8
_RECIPE_DEFAULT_TASKS = 100
_GLOB_CHARS = frozenset("*?[")


# ---------------------------------------------------------------------------------------------
# spec helpers


def _plain(spec: Any) -> Any:
    """Mappings and sequences (e.g. OmegaConf containers) as plain dicts and lists."""
    if isinstance(spec, Workflow | str | bytes):
        return spec
    if isinstance(spec, Mapping):
        return {str(k): _plain(v) for k, v in spec.items()}
    if isinstance(spec, Sequence):
        return [_plain(v) for v in spec]
    return spec


def _is_number(x: Any) -> bool:
    """A real number that converts to a float (Python ints beyond 1.8e308 do not)."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        return False
    try:
        float(x)
    except OverflowError:
        return False
    return True


class _Param:
    """A parameter value: fixed, a range ``[lo, hi]`` drawn per episode (uniformly), or
    ``{"loguniform": [lo, hi]}`` (log-uniformly, floats only)."""

    __slots__ = ("hi", "integer", "lo", "log", "value")

    def __init__(self, value: Any, field: str, integer: bool) -> None:
        self.value: Any = value
        self.integer = integer
        self.lo: float | int | None = None
        self.hi: float | int | None = None
        self.log = False
        if isinstance(value, Mapping):
            if integer or list(value) != ["loguniform"]:
                raise WorkloadError(
                    "expected a number, a range [lo, hi] or {loguniform: [lo, hi]}"
                    + (" (integer parameters take no loguniform)" if integer else "")
                    + f", got {value!r}",
                    field=field,
                )
            pair = value["loguniform"]
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not all(_is_number(v) and math.isfinite(v) for v in pair)
                or not 0 < pair[0] <= pair[1]
            ):
                raise WorkloadError(
                    f"loguniform needs [lo, hi] with 0 < lo <= hi, got {pair!r}", field=field
                )
            self.lo, self.hi, self.log = float(pair[0]), float(pair[1]), True
        elif isinstance(value, (list, tuple)):
            if len(value) != 2 or not all(_is_number(v) for v in value):
                raise WorkloadError(
                    f"expected a number or a range [lo, hi] of two numbers, got {value!r}",
                    field=field,
                )
            lo, hi = value
            if integer:
                try:  # before the cast: int(inf) fails and int64(1e19) wraps
                    for v in value:
                        whole_number(v, low=-MAX_COUNT)
                except ValueError as exc:
                    raise WorkloadError(
                        f"an integer range needs whole numbers: {exc}", field=field
                    ) from None
            if lo > hi:
                raise WorkloadError(f"range needs lo <= hi, got {value!r}", field=field)
            self.lo, self.hi = (int(lo), int(hi)) if integer else (float(lo), float(hi))

    @property
    def is_range(self) -> bool:
        return self.lo is not None

    def end(self, high: bool) -> Any:
        """The fixed value, or one end of the range."""
        if not self.is_range:
            return self.value
        return self.hi if high else self.lo

    def draw(self, rng: np.random.Generator) -> Any:
        if not self.is_range:
            return self.value
        if self.integer:
            return int(rng.integers(self.lo, self.hi, endpoint=True))  # type: ignore[arg-type]
        if self.log:
            return float(np.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))  # type: ignore[arg-type]
        return float(rng.uniform(self.lo, self.hi))  # type: ignore[arg-type]


def _check_keys(spec: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    for key in spec:
        if key not in valid:
            raise WorkloadError(
                f"unknown key {key!r}; valid keys: {', '.join(sorted(valid))}",
                field=f"{where}.{key}",
            )


# ---------------------------------------------------------------------------------------------
# sources


class _Source:
    """Base: draws a workflow; applies an exact CCR on the cluster when the spec has one."""

    def __init__(self, ccr: Any, where: str) -> None:
        self.where = where
        self.ccr = None if ccr is None else _Param(ccr, f"{where}.ccr", integer=False)
        if self.ccr is not None:
            values = [self.ccr.lo, self.ccr.hi] if self.ccr.is_range else [self.ccr.value]
            for v in values:
                if not _is_number(v) or not math.isfinite(v) or v < 0:  # type: ignore[arg-type,operator]
                    raise WorkloadError(
                        f"must be a number >= 0 or a range of them, got {ccr!r}",
                        field=f"{where}.ccr",
                    )

    def sample(self, rng: np.random.Generator, cluster: Cluster | None) -> Workflow:
        ccr = None if self.ccr is None else float(self.ccr.draw(rng))
        wf = self._draw(rng, ccr, cluster)
        if ccr is not None and cluster is not None:
            try:
                wf = with_ccr(wf, cluster, ccr)
            except WorkflowError as exc:
                raise WorkloadError(
                    f"cannot give workflow {wf.name!r} CCR {ccr} on cluster "
                    f"{cluster.name!r}: {exc}",
                    field=f"{self.where}.ccr",
                ) from None
        return wf

    def _draw(
        self, rng: np.random.Generator, ccr: float | None, cluster: Cluster | None
    ) -> Workflow:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget lazily drawn state (recipe pools); stateless sources have none."""


class _GeneratorSource(_Source):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        name = spec["generator"]
        if name not in GENERATORS:
            raise WorkloadError(
                f"unknown generator {name!r}; valid generators: {', '.join(sorted(GENERATORS))}",
                field=f"{where}.generator",
            )
        self.name = str(name)
        accepted = [p for p in inspect.signature(GENERATORS[name]).parameters if p != "rng"]
        _check_keys(spec, ["generator", *accepted], where)
        super().__init__(spec.get("ccr"), where)
        params = {k: v for k, v in spec.items() if k not in ("generator", "ccr")}
        if "n_tasks" in accepted and "n_tasks" not in params and "width" not in params:
            params["n_tasks"] = list(DEFAULT_N_TASKS)
        if "n_tasks" in accepted and "n_tasks" not in params:
            params["n_tasks"] = None  # fork_join sized by its width
        self.fixed: dict[str, Any] = {}
        self.params: dict[str, _Param] = {}
        for key, value in params.items():
            if key in RANGE_PARAMS or key == "name" or value is None:
                self.fixed[key] = tuple(value) if isinstance(value, list) else value
            else:
                self.params[key] = _Param(value, f"{where}.{key}", key in INT_PARAMS)
        # Fail now on bad values rather than in the middle of training: build one workflow with
        # the low ends of the ranges and one with the high ends. Generators with gaps in the
        # sizes they can build have them just above their minimum (CyberShake: 5, then 7+), so
        # the size one above the low end is tried too.
        for high in (False, True):
            ends = {k: p.end(high) for k, p in self.params.items()}
            ccr = None if self.ccr is None else self.ccr.end(high)
            self._call(np.random.default_rng(0), ends, ccr)
        size = self.params.get("n_tasks")
        if size is not None and size.lo is not None and size.hi is not None and size.lo < size.hi:
            low1 = {k: p.end(False) for k, p in self.params.items()}
            low1["n_tasks"] = int(size.lo) + 1
            self._call(np.random.default_rng(0), low1, None)

    def _call(self, rng: np.random.Generator, params: dict[str, Any], ccr: Any) -> Workflow:
        kwargs = {**self.fixed, **params}
        if ccr is not None:
            kwargs["ccr"] = ccr
        n_tasks = kwargs.pop("n_tasks", "absent")
        args = () if n_tasks == "absent" else (n_tasks,)
        try:
            return GENERATORS[self.name](*args, rng, **kwargs)
        except WorkloadError as exc:
            field = f"{self.where}.{exc.field}" if exc.field else self.where
            raise WorkloadError(exc.problem, field=field) from None

    def _draw(
        self, rng: np.random.Generator, ccr: float | None, cluster: Cluster | None
    ) -> Workflow:
        params = {k: p.draw(rng) for k, p in self.params.items()}
        return self._call(rng, params, ccr)


class _RecipeSource(_Source):
    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        _check_keys(spec, ["recipe", "n_tasks", "pool", "seed", "ccr"], where)
        super().__init__(spec.get("ccr"), where)
        name = str(spec["recipe"]).lower()
        if name not in RECIPES:
            raise WorkloadError(
                f"unknown recipe {spec['recipe']!r}; valid recipes: {', '.join(sorted(RECIPES))}",
                field=f"{where}.recipe",
            )
        self.name = name
        minimum = recipe_min_tasks(name)
        n_tasks = spec.get("n_tasks", max(_RECIPE_DEFAULT_TASKS, minimum))
        self.n_tasks = _Param(n_tasks, f"{where}.n_tasks", integer=True)
        for end in (self.n_tasks.end(high=False), self.n_tasks.end(high=True)):
            try:
                whole_number(end, low=minimum)  # before any cast: int64(1e19) wraps
            except ValueError as exc:
                below = _is_number(end) and end < minimum
                raise WorkloadError(
                    f"recipe {name!r} needs at least {minimum} tasks, got {n_tasks!r}"
                    if below
                    else f"recipe {name!r}: the number of tasks {exc}",
                    field=f"{where}.n_tasks",
                ) from None
        pool = spec.get("pool", DEFAULT_POOL)
        if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= MAX_COUNT:
            raise WorkloadError(f"must be an integer >= 1, got {pool!r}", field=f"{where}.pool")
        seed = spec.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise WorkloadError(f"must be an integer, got {seed!r}", field=f"{where}.seed")
        self.pool = pool
        self.seed = seed
        self.slots: list[tuple[int, int]] | None = None  # (seed, n_tasks) per pool entry

    def _draw(
        self, rng: np.random.Generator, ccr: float | None, cluster: Cluster | None
    ) -> Workflow:
        if self.slots is None:
            src = rng if self.seed is None else np.random.default_rng(self.seed)
            self.slots = [
                (int(src.integers(2**32)), int(self.n_tasks.draw(src))) for _ in range(self.pool)
            ]
        seed, n = self.slots[int(rng.integers(self.pool))]
        return _recipe_instance(self.name, n, seed)

    def reset(self) -> None:
        # A fixed pool seed draws the same pool again: nothing to forget.
        if self.seed is None:
            self.slots = None


#: Recipe instances kept in memory per process, across samplers (a 200-task instance takes
#: 0.05-0.2 s to generate and tens of kB to keep). Large enough for every pool of a training
#: mix (9 recipes x 16), so pools are generated once per process.
RECIPE_CACHE_SIZE = 512


@lru_cache(maxsize=RECIPE_CACHE_SIZE)
def _recipe_instance(name: str, n_tasks: int, seed: int) -> Workflow:
    return recipe_workflow(name, n_tasks, seed)


class _FixedSource(_Source):
    def __init__(self, workflows: Sequence[Workflow], ccr: Any, where: str) -> None:
        super().__init__(ccr, where)
        if not workflows:
            raise WorkloadError("no workflows to sample from", field=where)
        self.workflows = list(workflows)

    def _draw(
        self, rng: np.random.Generator, ccr: float | None, cluster: Cluster | None
    ) -> Workflow:
        return self.workflows[int(rng.integers(len(self.workflows)))]


def _expand(patterns: Any, where: str) -> list[str]:
    items = [patterns] if isinstance(patterns, str) else patterns
    if not isinstance(items, list) or not items:
        raise WorkloadError(
            f"expected a path, a glob pattern or a non-empty list of them, got {patterns!r}",
            field=where,
        )
    paths: list[str] = []
    for i, pattern in enumerate(items):
        field = f"{where}[{i}]" if not isinstance(patterns, str) else where
        if not isinstance(pattern, str):
            raise WorkloadError(f"expected a path or glob pattern, got {pattern!r}", field=field)
        if _GLOB_CHARS & set(pattern):
            found = sorted(glob.glob(pattern, recursive=True))
            found = [f for f in found if Path(f).is_file()]
            if not found:
                raise WorkloadError(
                    f"no file matches {pattern!r} (relative to {Path.cwd()})", field=field
                )
            paths.extend(found)
        elif Path(pattern).is_file():
            paths.append(pattern)
        else:
            raise WorkloadError(
                f"no such file: {pattern!r} (relative to {Path.cwd()})", field=field
            )
    return paths


class _MixSource(_Source):
    def __init__(
        self,
        children: list[_Source],
        weights: Any,
        ccr: Any,
        where: str,
        labels: list[str] | None = None,
    ) -> None:
        super().__init__(ccr, where)
        if not children:
            raise WorkloadError("needs at least one spec", field=f"{where}.mix")
        self.children = children
        self.labels = labels
        if isinstance(weights, Mapping):
            if labels is None:
                raise WorkloadError(
                    f"weights by label need a mix by label ({{label: spec}}), got {weights!r}",
                    field=f"{where}.weights",
                )
            unknown = [k for k in weights if k not in labels]
            if unknown:
                raise WorkloadError(
                    f"unknown label {unknown[0]!r}; labels: {', '.join(labels)}",
                    field=f"{where}.weights.{unknown[0]}",
                )
            weights = [weights.get(k, 1.0) for k in labels]
        if weights is None:
            w = np.full(len(children), 1.0)
        else:
            if (
                not isinstance(weights, list)
                or len(weights) != len(children)
                or not all(_is_number(x) and np.isfinite(x) and x >= 0 for x in weights)
                or sum(weights) <= 0
            ):
                raise WorkloadError(
                    f"expected one number >= 0 per spec ({len(children)}), with a positive sum, "
                    f"got {weights!r}",
                    field=f"{where}.weights",
                )
            w = np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()

    def _draw(
        self, rng: np.random.Generator, ccr: float | None, cluster: Cluster | None
    ) -> Workflow:
        k = int(rng.choice(len(self.children), p=self.weights))
        return self.children[k].sample(rng, cluster)

    def reset(self) -> None:
        for child in self.children:
            child.reset()


def _mix_entries(spec: Mapping[str, Any], where: str) -> tuple[list[Any], list[str] | None]:
    """The mix's specs (and labels, for a mix by label) after ``exclude``."""
    mix = spec["mix"]
    exclude = spec.get("exclude")
    if exclude is None:
        exclude = []
    elif isinstance(exclude, str):
        exclude = [exclude]
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise WorkloadError(
            f"expected a label or a list of labels, got {spec['exclude']!r}",
            field=f"{where}.exclude",
        )
    if isinstance(mix, Mapping):
        labels = [str(k) for k in mix]
        unknown = [x for x in exclude if x not in labels]
        if unknown:
            raise WorkloadError(
                f"unknown label {unknown[0]!r}; labels: {', '.join(labels)}",
                field=f"{where}.exclude",
            )
        kept = [k for k in labels if k not in exclude]
        if not kept:
            raise WorkloadError(
                f"excludes every entry of the mix ({', '.join(labels)})", field=f"{where}.exclude"
            )
        return [mix[k] for k in kept], kept
    if not isinstance(mix, list):
        raise WorkloadError(
            f"expected a list of specs or a mapping of labels to specs, got {mix!r}",
            field=f"{where}.mix",
        )
    if exclude:
        raise WorkloadError(
            "exclude needs a mix by label ({label: spec, ...}), not a list",
            field=f"{where}.exclude",
        )
    return list(mix), None


_FORMS = ("generator", "recipe", "files", "mix")


def _build(spec: Any, where: str) -> _Source:
    if isinstance(spec, Workflow):
        return _FixedSource([spec], None, where)
    if isinstance(spec, str):
        if spec in GENERATORS:
            return _GeneratorSource({"generator": spec}, where)
        if spec.lower() in RECIPES:
            return _RecipeSource({"recipe": spec}, where)
        return _FixedSource([load_workflow(p) for p in _expand(spec, where)], None, where)
    if isinstance(spec, list):
        if spec and all(isinstance(x, Workflow) for x in spec):
            return _FixedSource(spec, None, where)
        children = [_build(x, f"{where}[{i}]") for i, x in enumerate(spec)]
        return _MixSource(children, None, None, where)
    if isinstance(spec, dict):
        forms = [f for f in _FORMS if f in spec]
        if len(forms) != 1:
            what = "none" if not forms else " and ".join(repr(f) for f in forms)
            raise WorkloadError(
                f"a workload spec needs exactly one of {', '.join(map(repr, _FORMS))}, "
                f"got {what} (keys: {', '.join(map(repr, spec))})",
                field=where,
            )
        form = forms[0]
        if form == "generator":
            return _GeneratorSource(spec, where)
        if form == "recipe":
            return _RecipeSource(spec, where)
        if form == "files":
            _check_keys(spec, ["files", "ccr"], where)
            paths = _expand(spec["files"], f"{where}.files")
            return _FixedSource([load_workflow(p) for p in paths], spec.get("ccr"), where)
        _check_keys(spec, ["mix", "weights", "ccr", "exclude"], where)
        entries, labels = _mix_entries(spec, where)
        weights = spec.get("weights")
        if labels is not None:
            children = [_build(x, f"{where}.mix.{k}") for k, x in zip(labels, entries, strict=True)]
            if isinstance(weights, list):
                full = list(spec["mix"])
                if len(weights) != len(full):
                    raise WorkloadError(
                        f"expected one number per entry of the mix ({len(full)}), got {weights!r}",
                        field=f"{where}.weights",
                    )
                weights = [w for k, w in zip(full, weights, strict=True) if k in labels]
        else:
            children = [_build(x, f"{where}.mix[{i}]") for i, x in enumerate(entries)]
        return _MixSource(children, weights, spec.get("ccr"), where, labels)
    raise WorkloadError(
        "expected a dict, a list, a name, a path or a Workflow, "
        f"got {spec!r} ({type(spec).__name__})",
        field=where,
    )


# ---------------------------------------------------------------------------------------------
# public API


class WorkloadSampler:
    """Draws a workflow per episode from a workload spec (see the module docstring).

    Args:
        spec: The spec: a dict, a list, a string, a ``Workflow`` or a list of them. Mappings and
            sequences such as OmegaConf containers are converted to plain dicts and lists.

    Raises:
        WorkloadError: on a bad spec (unknown key or name, bad value, file not found or invalid),
            naming the place in the spec (``workload.mix[1].n_tasks``) and the value.
    """

    def __init__(self, spec: Any) -> None:
        self.spec = _plain(spec)
        self._source = _build(self.spec, "workload")

    def sample(self, rng: np.random.Generator, cluster: Cluster | None = None) -> Workflow:
        """Draw a workflow.

        Args:
            rng: Source of every random choice.
            cluster: The cluster the workflow will run on; needed only to apply a ``ccr``.

        Returns:
            A workflow (for file and recipe specs, possibly the same object as in an earlier
            draw: workflows are immutable).
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return self._source.sample(rng, cluster)

    def reset(self) -> None:
        """Forget the recipe pools drawn so far (pools with a fixed ``seed`` stay as they are).

        The next draw then depends on its generator only: drawing with a fresh generator seeded
        with ``s`` after :meth:`reset` gives the same workflow whatever was drawn before.
        """
        self._source.reset()

    @property
    def workflows(self) -> list[Workflow] | None:
        """The workflows of a files or workflows spec (loaded once), else None."""
        src = self._source
        return list(src.workflows) if isinstance(src, _FixedSource) else None

    @property
    def labels(self) -> list[str] | None:
        """The labels of a top-level mix by label (after ``exclude``), else None."""
        src = self._source
        return list(src.labels) if isinstance(src, _MixSource) and src.labels else None

    def __repr__(self) -> str:
        text = repr(self.spec)
        return f"WorkloadSampler({text if len(text) <= 200 else text[:197] + '...'})"


def make_sampler(spec: Any) -> WorkloadSampler:
    """A :class:`WorkloadSampler` for ``spec`` (returned as is if it already is one).

    Raises:
        WorkloadError: on a bad spec.
    """
    return spec if isinstance(spec, WorkloadSampler) else WorkloadSampler(spec)
