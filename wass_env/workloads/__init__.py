"""Workloads: synthetic generators, WfFormat/DAX loaders, WfCommons recipes and samplers.

Typical use::

    import numpy as np
    from wass_env.workloads import layered, load_workflow, make_sampler

    wf = layered(50, np.random.default_rng(0), width=5, density=0.2, ccr=1.0)
    montage = load_workflow("../shared/data/dax/Montage_25.xml")
    sampler = make_sampler({"generator": "layered", "n_tasks": [20, 60], "ccr": 1.0})
    episode_wf = sampler.sample(np.random.default_rng(1), cluster)
"""

from wass_env.workloads.dax import load_dax
from wass_env.workloads.errors import WorkloadError
from wass_env.workloads.generators import (
    GENERATORS,
    REF_BANDWIDTH,
    REF_LATENCY,
    REF_SPEED,
    chain,
    cybershake,
    fan_in,
    fan_out,
    fork_join,
    genomics49,
    layered,
    scale_to_ccr,
)
from wass_env.workloads.loader import load_workflow
from wass_env.workloads.recipes import (
    RECIPE_SHORTFALL,
    RECIPES,
    recipe_min_tasks,
    recipe_workflow,
)
from wass_env.workloads.sampler import WorkloadSampler, make_sampler
from wass_env.workloads.wfformat import SUPPORTED_VERSIONS, load_wfformat, parse_wfformat

__all__ = [
    "GENERATORS",
    "RECIPES",
    "RECIPE_SHORTFALL",
    "REF_BANDWIDTH",
    "REF_LATENCY",
    "REF_SPEED",
    "SUPPORTED_VERSIONS",
    "WorkloadError",
    "WorkloadSampler",
    "chain",
    "cybershake",
    "fan_in",
    "fan_out",
    "fork_join",
    "genomics49",
    "layered",
    "load_dax",
    "load_wfformat",
    "load_workflow",
    "make_sampler",
    "parse_wfformat",
    "recipe_min_tasks",
    "recipe_workflow",
    "scale_to_ccr",
]
