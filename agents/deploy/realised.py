"""Running a job set on a real Slurm and reading back what happened.

:func:`submit_job_set` runs a job set's ``submit.sh``; :func:`wait_for_jobs` polls Slurm until
every job has ended (or was cancelled); :func:`read_run` combines the job ids, Slurm's final job
states and nodes (``squeue --states=all``: finished jobs stay visible while Slurm keeps their
records, ``MinJobAge``) and the start and end times each job script recorded, into a
:class:`RealisedRun`: per task where and when it ran, the realised makespan, and the delay
between each dependent task's last parent ending and its start (what Slurm's dependency release
and dispatch cost; the cluster parameter ``dispatch_latency`` models it).

:func:`simulate` replays a deploy plan's node assignment and per-node order on the simulator
with a given dispatch latency, which is what a realised run is compared with.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.deploy.plan import DeployPlan
from wass_env.errors import WassError
from wass_env.sim.execute import execute
from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem

__all__ = [
    "TERMINAL_STATES",
    "RealisedRun",
    "SlurmError",
    "read_run",
    "simulate",
    "slurm_cluster_spec",
    "slurm_nodes",
    "submit_job_set",
    "wait_for_jobs",
]

#: Slurm job states after which a job never runs again.
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)


class SlurmError(WassError):
    """Slurm could not be used (no commands, a failed submission, a job that never ended)."""


def _run(cmd: Sequence[str], *, timeout: float = 60.0, env: Mapping[str, str] | None = None) -> str:
    try:
        out = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False, env=env
        )
    except FileNotFoundError:
        raise SlurmError(
            f"{cmd[0]} not found: is Slurm installed (scripts/start_slurm.sh)?"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s") from None
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise SlurmError(f"{' '.join(cmd)} failed: {msg[-1] if msg else out.returncode}")
    return out.stdout


def slurm_nodes() -> list[tuple[str, str, int, int]]:
    """The running Slurm's nodes, sorted by name: ``(name, state, CPUs, memory [MB])``.

    Raises:
        SlurmError: if ``sinfo`` is missing or fails.
    """
    out = _run(["sinfo", "--noheader", "--Node", "--format=%N %T %c %m"], timeout=10.0)
    rows: dict[str, tuple[str, str, int, int]] = {}
    for line in out.splitlines():
        name, state, cpus, mem = line.split()
        rows[name] = (name, state, int(cpus), int(mem))
    return [rows[k] for k in sorted(rows)]


def slurm_cluster_spec(speeds: Sequence[float], **fields: Any) -> dict[str, Any]:
    """A cluster file's content (see :mod:`wass_env.sim.cluster_file`) for the running Slurm's
    first ``len(speeds)`` nodes, with these speeds; ``fields`` adds top-level fields
    (``dispatch_latency=...``).

    Raises:
        SlurmError: if Slurm has fewer nodes than speeds given.
    """
    nodes = slurm_nodes()
    if len(nodes) < len(speeds):
        raise SlurmError(f"Slurm has {len(nodes)} nodes, {len(speeds)} are needed")
    return {
        **fields,
        "nodes": [
            {"name": name, "speed": float(v), "cores": cpus, "memory_gib": mem / 1024}
            for (name, _, cpus, mem), v in zip(nodes, speeds, strict=False)
        ],
    }


def submit_job_set(
    directory: str | os.PathLike[str], *, workdir: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """Run ``submit.sh`` of a job set; returns the job id of every task (by task id).

    Args:
        directory: The job set directory.
        workdir: Where the jobs run (default: the job set directory).

    Raises:
        SlurmError: if the submission fails.
    """
    d = Path(directory).resolve()
    env = dict(os.environ, WASS_WORKDIR=str(Path(workdir or d).resolve()))
    _run(["bash", str(d / "submit.sh")], env=env, timeout=600.0)
    return {task: job for task, _, job in _job_table(d)}


def _job_table(directory: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in (directory / "jobids.tsv").read_text().splitlines():
        task, script, job = line.split("\t")
        rows.append((task, script, job))
    return rows


def _states(job_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``job id -> (state, node list)`` for jobs Slurm still knows."""
    ids = ",".join(job_ids)
    out = _run(["squeue", "--noheader", "--states=all", f"--jobs={ids}", "--format=%i|%T|%N"])
    states: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        job, state, nodes = [*line.split("|"), "", ""][:3]
        states[job.strip()] = (state.strip(), nodes.strip())
    return states


def wait_for_jobs(
    job_ids: Sequence[str], *, timeout: float = 600.0, poll: float = 0.5
) -> dict[str, tuple[str, str]]:
    """Wait until every job has ended; returns ``job id -> (final state, node list)``.

    Raises:
        SlurmError: if some job has not ended after ``timeout`` seconds, or Slurm forgot a job
            (its record was purged: ``MinJobAge`` is too short for the workflow).
    """
    deadline = time.monotonic() + timeout
    while True:
        states = _states(job_ids)
        lost = [j for j in job_ids if j not in states]
        if lost:
            raise SlurmError(
                f"Slurm no longer knows job {lost[0]} ({len(lost)} jobs): records purged before "
                "the workflow ended; raise MinJobAge"
            )
        if all(states[j][0] in TERMINAL_STATES for j in job_ids):
            return states
        if time.monotonic() > deadline:
            left = [j for j in job_ids if states[j][0] not in TERMINAL_STATES]
            raise SlurmError(
                f"{len(left)} jobs still not ended after {timeout:.0f} s, e.g. {left[0]}"
            )
        time.sleep(poll)


@dataclass(frozen=True, eq=False)
class RealisedRun:
    """What a job set did on Slurm.

    Attributes:
        task_ids: Task ids, indexed like the workflow.
        job_id: Slurm job id per task.
        state: Final Slurm state per task (``COMPLETED``, ``FAILED``, ``CANCELLED``, ...).
        node: Node each task ran on ("" if it never ran).
        start, end: When each task's script started and ended, from the earliest start [s]
            (NaN if it never ran).
        exit_code: The command's exit code (-1 if it never ran or did not record one).
        origin: The earliest start, as a Unix time [s].
    """

    task_ids: tuple[str, ...]
    job_id: tuple[str, ...]
    state: tuple[str, ...]
    node: tuple[str, ...]
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    exit_code: NDArray[np.int64]
    origin: float

    @property
    def ran(self) -> NDArray[np.bool_]:
        """Tasks whose script started."""
        return np.isfinite(self.start)

    @property
    def makespan(self) -> float:
        """Last end minus first start [s] (NaN if no task ran)."""
        ran = self.ran
        return float(np.nanmax(self.end[ran])) if ran.any() else math.nan

    def dispatch_delays(self, dp: DeployPlan) -> NDArray[np.float64]:
        """Per task with parents that ran: its start minus its last parent's end [s]."""
        wf = dp.workflow
        out = []
        for t in range(wf.n_tasks):
            parents = wf.parents(t)
            if parents.size and self.ran[t] and np.all(np.isfinite(self.end[parents])):
                out.append(float(self.start[t] - self.end[parents].max()))
        return np.asarray(out)


def read_run(
    dp: DeployPlan, directory: str | os.PathLike[str], states: Mapping[str, tuple[str, str]]
) -> RealisedRun:
    """Combine the job set's records with Slurm's final states (see :func:`wait_for_jobs`)."""
    d = Path(directory)
    wf = dp.workflow
    n = wf.n_tasks
    job = [""] * n
    state = ["UNKNOWN"] * n
    node = [""] * n
    start = np.full(n, np.nan)
    end = np.full(n, np.nan)
    code = np.full(n, -1, dtype=np.int64)
    for task, script, job_id in _job_table(d):
        t = wf.index(task)
        job[t] = job_id
        state[t] = states.get(job_id, ("UNKNOWN", ""))[0]
        times = d / "times" / (Path(script).stem + ".tsv")
        if not times.exists():
            continue
        for line in times.read_text().splitlines():
            kind, stamp, extra = [*line.split("\t"), "", ""][:3]
            if kind == "start":
                start[t] = float(stamp)
                node[t] = extra
            elif kind == "end":
                end[t] = float(stamp)
                code[t] = int(extra) if extra.lstrip("-").isdigit() else -1
    origin = float(np.nanmin(start)) if np.isfinite(start).any() else math.nan
    return RealisedRun(
        task_ids=wf.ids,
        job_id=tuple(job),
        state=tuple(state),
        node=tuple(node),
        start=start - origin,
        end=end - origin,
        exit_code=code,
        origin=origin,
    )


def simulate(dp: DeployPlan, dispatch_latency: float | None = None) -> Schedule:
    """The plan's node assignment and per-node order, executed by the simulator.

    Args:
        dp: The deploy plan.
        dispatch_latency: The cluster's dispatch latency for this replay [s] (default: the
            cluster's own).
    """
    problem = dp.problem
    if dispatch_latency is not None:
        cluster = copy.copy(problem.cluster)
        cluster.dispatch_latency = float(dispatch_latency)
        problem = Problem(problem.workflow, cluster)
    return execute(dataclasses.replace(dp.plan, problem=problem))
