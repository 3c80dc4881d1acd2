"""Realistic synthetic workflows through the ``wfcommons`` package's WfChef recipes.

:func:`recipe_workflow` builds an instance of a recipe (Montage, Epigenomics, 1000Genome,
Seismology, Blast, Cycles, SoyKB, SRASearch, BWA) in memory, turns it into WfFormat JSON with
``wfcommons``' own writer (``Workflow.generate_json``, schema 1.6) and reads that through
:func:`~wass_env.workloads.wfformat.parse_wfformat`. Nothing is written to disk.

Determinism: ``wfcommons`` draws from the global ``random`` module (structure) and NumPy's global
``RandomState`` (through ``scipy.stats``: runtimes and file sizes). Both are seeded from
``rng_or_seed`` for the duration of the call and restored afterwards, so the caller's global
random state is left as it was and the same seed gives the same workflow. (File names are
random UUIDs, but they do not reach the :class:`~wass_env.sim.workflow.Workflow`.) Because of
the global state, do not call this from several threads at once.

Size: WfChef replicates sub-structures of a real base graph up to the requested number of
tasks, never beyond. The result has ``n_tasks`` tasks or slightly fewer: a recipe adds whole
sub-structures, so it may stop up to ``RECIPE_SHORTFALL`` tasks short (measured over sizes
up to 1100 with wfcommons 1.6: at most 3 below for most recipes, up to 15 for Montage and SoyKB,
whose sub-structures are larger; 0 for 1000Genome, Seismology, Blast and BWA). Below a recipe's
smallest base graph (:func:`recipe_min_tasks`) no instance exists.
"""

from __future__ import annotations

import importlib
import json
import logging
import random
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from wass_env.sim.workflow import Workflow
from wass_env.workloads.errors import WorkloadError
from wass_env.workloads.wfformat import parse_wfformat

__all__ = ["RECIPES", "RECIPE_SHORTFALL", "recipe_min_tasks", "recipe_workflow"]

#: Recipe names (also the workflow families) and the ``wfcommons.wfchef.recipes`` classes.
RECIPES: dict[str, str] = {
    "montage": "MontageRecipe",
    "epigenomics": "EpigenomicsRecipe",
    "1000genome": "GenomeRecipe",
    "seismology": "SeismologyRecipe",
    "blast": "BlastRecipe",
    "cycles": "CyclesRecipe",
    "soykb": "SoykbRecipe",
    "srasearch": "SrasearchRecipe",
    "bwa": "BwaRecipe",
}

#: Most tasks a recipe instance may fall short of the requested size (see the module docstring).
RECIPE_SHORTFALL: dict[str, int] = {
    "montage": 15,
    "epigenomics": 3,
    "1000genome": 0,
    "seismology": 0,
    "blast": 0,
    "cycles": 3,
    "soykb": 15,
    "srasearch": 1,
    "bwa": 0,
}

# WfChef graphs carry two pseudo-tasks (SRC and DST) that are not written out.
_PSEUDO_TASKS = 2


def _check_name(name: str) -> str:
    key = str(name).lower()
    if key not in RECIPES:
        raise WorkloadError(
            f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}",
            field="recipe",
        )
    return key


def _recipe_class(name: str) -> Any:
    try:
        module = importlib.import_module("wfcommons.wfchef.recipes")
    except ImportError as exc:
        raise ImportError(
            f"workflow recipes need the 'wfcommons' package (pip install 'wfcommons>=1.6'): {exc}"
        ) from None
    return getattr(module, RECIPES[name])


@cache
def recipe_min_tasks(name: str) -> int:
    """Smallest number of tasks the recipe ``name`` can generate (its smallest base graph).

    Raises:
        WorkloadError: on an unknown recipe name.
    """
    key = _check_name(name)
    cls = _recipe_class(key)
    module = importlib.import_module(cls.__module__)
    summary = Path(str(module.__file__)).parent / "microstructures" / "summary.json"
    orders = [g["order"] for g in json.loads(summary.read_text())["base_graphs"].values()]
    return int(min(orders)) - _PSEUDO_TASKS


def recipe_workflow(
    name: str,
    n_tasks: int,
    rng_or_seed: np.random.Generator | int,
) -> Workflow:
    """A synthetic instance of a WfCommons recipe with about ``n_tasks`` tasks.

    Args:
        name: Recipe name (see :data:`RECIPES`), case-insensitive.
        n_tasks: Requested number of tasks: the result has between
            ``n_tasks - RECIPE_SHORTFALL[name]`` and ``n_tasks`` tasks.
        rng_or_seed: A generator (one integer is drawn from it) or an integer seed.

    Returns:
        The workflow, with ``family`` = the recipe name and ``name`` = ``"{recipe}-{n}-s{seed}"``.

    Raises:
        WorkloadError: on an unknown recipe or an ``n_tasks`` below the recipe's minimum.
        ImportError: if ``wfcommons`` is not installed.
    """
    key = _check_name(name)
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)):
        raise WorkloadError(f"must be an integer, got {n_tasks!r}", field="n_tasks")
    minimum = recipe_min_tasks(key)
    if n_tasks < minimum:
        raise WorkloadError(
            f"recipe {key!r} needs at least {minimum} tasks, got {n_tasks}", field="n_tasks"
        )
    if isinstance(rng_or_seed, np.random.Generator):
        seed = int(rng_or_seed.integers(2**32))
    elif isinstance(rng_or_seed, (int, np.integer)) and not isinstance(rng_or_seed, bool):
        seed = int(rng_or_seed) % 2**32
    else:
        raise WorkloadError(
            f"expected a numpy Generator or an integer seed, got {rng_or_seed!r}",
            field="rng_or_seed",
        )
    cls = _recipe_class(key)
    from wfcommons import WorkflowGenerator

    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    wfc_logger = logging.getLogger("wfcommons")
    level = wfc_logger.level
    try:
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 -- wfcommons draws from the global RandomState
        # WfChef counts its two pseudo-tasks in the requested size.
        recipe = cls.from_num_tasks(int(n_tasks) + _PSEUDO_TASKS)
        # wfcommons warns about every file id it sees twice with different sizes.
        wfc_logger.setLevel(logging.ERROR)
        instance = WorkflowGenerator(recipe).build_workflow()
        instance.generate_json()
        document = instance.workflow_json
    finally:
        wfc_logger.setLevel(level)
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    label = f"{key}-{n_tasks}-s{seed}"
    return parse_wfformat(document, source=f"wfcommons:{label}", name=label, family=key)
