"""Simulation against a real Slurm: the sim-to-real comparison of ``wass plan`` job sets.

Two steps, both run as ordinary job sets on a Slurm cluster (the single-host one of
``scripts/start_slurm.sh`` in the tests):

1. :func:`measure_dispatch_latency`: a calibration workflow of independent chains of short sleep
   tasks; the delay from each task's parent ending to the task starting is what Slurm spends on
   dependency release and dispatch. Its mean is the cluster's ``dispatch_latency``.
2. :func:`sim_to_real`: a workflow planned on the cluster (with that dispatch latency), run with
   each job sleeping its estimated runtime; the realised makespan (last end minus first start)
   against the simulated makespan of the same assignment without and with the dispatch latency.

On the single-host Slurm (``bf_interval=1,sched_interval=1``) a job whose dependencies are met
starts at the controller's next scheduling pass, about once a second, so single delays are
spread over about 0-1 s; the calibration chains use runtimes spread over more than a second so
that the mean is not biased by one phase.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from agents.deploy.plan import DeployPlan, make_deploy_plan
from agents.deploy.realised import RealisedRun, read_run, simulate, submit_job_set, wait_for_jobs
from agents.deploy.slurm import write_job_set
from wass_env.sim.cluster import Cluster
from wass_env.sim.workflow import Workflow
from wass_env.workloads.generators import layered

__all__ = [
    "SimToReal",
    "calibration_workflow",
    "fidelity_workflow",
    "measure_dispatch_latency",
    "run_job_set",
    "sim_to_real",
]


def calibration_workflow(
    n_chains: int = 4, length: int = 8, *, seed: int = 0, runtime: tuple[float, float] = (0.3, 1.8)
) -> Workflow:
    """Independent chains of tasks with runtimes drawn uniformly from ``runtime`` [s].

    Works are given for a speed-1 node; :func:`measure_dispatch_latency` plans them on the
    cluster, so the sleeps are these divided by the node's speed.
    """
    rng = np.random.default_rng(seed)
    n = n_chains * length
    work = rng.uniform(*runtime, size=n)
    edges = [
        (c * length + i, c * length + i + 1) for c in range(n_chains) for i in range(length - 1)
    ]
    ids = [f"c{c}_{i}" for c in range(n_chains) for i in range(length)]
    return Workflow.from_arrays(work, edges, ids=ids, name="dispatch-calibration", family="chain")


def fidelity_workflow(seed: int = 4, n_tasks: int = 20) -> Workflow:
    """A random layered DAG of sleep-sized tasks (6-18 s of reference work, 1-2 cores, 0.1-2 GB,
    no data) whose HEFT plan on the test cluster takes 34-46 s (seeds 0-5)."""
    return layered(
        n_tasks,
        np.random.default_rng(seed),
        width=4,
        work=(6.0, 18.0),
        data=0.0,
        cores=(1, 2),
        memory=(1e8, 2e9),
        name=f"layered-{n_tasks}-seed{seed}",
    )


def run_job_set(
    dp: DeployPlan,
    directory: str | os.PathLike[str],
    *,
    placement: str = "nodelist",
    keep_order: bool = True,
    timeout: float = 600.0,
) -> RealisedRun:
    """Write ``dp``'s job set with sleeping jobs, submit it, wait for it, and read the run."""
    d = write_job_set(dp, directory, placement=placement, sleep=True, keep_order=keep_order)
    ids = submit_job_set(d)
    states = wait_for_jobs(list(ids.values()), timeout=timeout)
    return read_run(dp, d, states)


def measure_dispatch_latency(
    cluster: Cluster,
    directory: str | os.PathLike[str],
    *,
    seed: int = 0,
    timeout: float = 300.0,
) -> NDArray[np.float64]:
    """Per-dependency delays of a calibration run (see the module docstring) [s].

    Args:
        cluster: The cluster (its own ``dispatch_latency`` is ignored for the calibration plan).
        directory: A new directory for the calibration job set.
        seed: Seed of the calibration runtimes.
        timeout: Longest wait for the run [s].
    """
    base = copy.copy(cluster)
    base.dispatch_latency = 0.0
    dp = make_deploy_plan(calibration_workflow(seed=seed), base, "heft")
    run = run_job_set(dp, directory, timeout=timeout)
    return run.dispatch_delays(dp)


@dataclass(frozen=True, eq=False)
class SimToReal:
    """One workflow, simulated and realised.

    Attributes:
        plan: The deploy plan that was submitted.
        run: What Slurm did.
        simulated: Makespan of the plan's assignment, simulated without dispatch latency [s].
        simulated_dl: The same, with the cluster's dispatch latency [s].
        realised: The realised makespan [s].
    """

    plan: DeployPlan
    run: RealisedRun
    simulated: float
    simulated_dl: float
    realised: float

    @property
    def error_dl(self) -> float:
        """``realised / simulated_dl - 1``."""
        return self.realised / self.simulated_dl - 1.0

    @property
    def error(self) -> float:
        """``realised / simulated - 1``."""
        return self.realised / self.simulated - 1.0


def sim_to_real(
    workflow: Workflow,
    cluster: Cluster,
    directory: str | os.PathLike[str],
    *,
    scheduler: str = "heft",
    placement: str = "nodelist",
    keep_order: bool = True,
    timeout: float = 600.0,
) -> SimToReal:
    """Plan ``workflow`` on ``cluster``, run it on Slurm, and compare (see the module docstring).

    Raises:
        SlurmError: if Slurm cannot run the job set.
    """
    dp = make_deploy_plan(workflow, cluster, scheduler)
    run = run_job_set(
        dp, Path(directory), placement=placement, keep_order=keep_order, timeout=timeout
    )
    return SimToReal(
        plan=dp,
        run=run,
        simulated=simulate(dp, 0.0).makespan,
        simulated_dl=simulate(dp).makespan,
        realised=run.makespan,
    )
