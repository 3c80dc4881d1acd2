"""Write what ``wass plan`` produces: plan.json and a Slurm job set, all or nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from agents.deploy.plan import DeployPlan, plan_document
from agents.deploy.slurm import check_destination, render_job_set, write_job_set
from wass_env.io import atomic_write

__all__ = ["write_deployment"]


def write_deployment(
    dp: DeployPlan,
    *,
    output: str | os.PathLike[str] | None = None,
    slurm: str | os.PathLike[str] | None = None,
    explain: bool = False,
    placement: str = "nodelist",
    command: str | None = None,
    sleep: bool = False,
    keep_order: bool = True,
) -> str:
    """Write plan.json (to ``output``) and the Slurm job set (into ``slurm``).

    Everything is checked before anything is written (the job set's commands and template, the
    job set directory), so a mistake leaves no file behind; each file appears whole.

    Args:
        dp: The deploy plan.
        output: Where to write plan.json (None: nowhere).
        slurm: A new directory for the job set (None: no job set).
        explain: Add the per-task explanation to plan.json.
        placement, command, sleep, keep_order: How the job scripts place and run tasks
            (see :func:`agents.deploy.slurm.render_job_set`).

    Returns:
        plan.json's text (also when it is not written to a file).

    Raises:
        JobSetError: for a bad template, a task without a command, or a directory in the way.
        OSError: if a file cannot be written.
    """
    text = json.dumps(plan_document(dp, explain=explain), indent=1) + "\n"
    if slurm is not None:
        # Validate before writing anything.
        render_job_set(dp, placement=placement, command=command, sleep=sleep, keep_order=keep_order)
        check_destination(slurm)
    written: Path | None = None
    if slurm is not None:
        written = write_job_set(
            dp, slurm, placement=placement, command=command, sleep=sleep, keep_order=keep_order
        )
    try:
        if output is not None:
            atomic_write(output, text)
    except BaseException:
        if written is not None:
            shutil.rmtree(written, ignore_errors=True)
        raise
    return text
