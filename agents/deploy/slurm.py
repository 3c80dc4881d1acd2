"""Slurm job sets: one batch script per task of a deploy plan, and a script that submits them.

:func:`write_job_set` writes, into a new directory:

* one job script per task, ``0001-<task>.sh``, ... in submission order, with ``#SBATCH``
  lines for ``--job-name``, ``--nodes=1``, ``--ntasks=1``, ``--cpus-per-task`` (the task's
  cores), ``--mem`` (its memory in MiB, at least 1: ``--mem=0`` would mean "all of the node's
  memory") and ``--kill-on-invalid-dep=yes`` (a job whose parent failed is cancelled, not left
  pending), and the plan's node in one of two ways (``placement``):

  - ``"nodelist"``: ``--nodelist=<node>``; Slurm runs the job there or not at all;
  - ``"plugin"``: ``--comment=wass:node=<node>``; the ``job_submit.lua`` plugin sets the
    nodelist after checking that the node can take the job (it exists, is up, has the CPUs and
    memory), and otherwise leaves the choice to Slurm.

  The command runs under ``bash -c`` (so any text a workflow file gives stays one command).
  The script records the time it starts and ends (``date +%s.%N``), the node and the exit code
  in ``times/<script>.tsv``, so a run can be compared with the plan without Slurm accounting;
* ``submit.sh``: submits every job held, in topological order (planned start, then placement
  order), each with ``--dependency=afterok:<parent job ids>`` (and ``after:<job ids>`` where a
  job must not overtake one planned ahead of it on its node: :func:`node_order_guards`),
  records the job ids in ``jobids.tsv`` (task id, script, job id), then releases them
  together. If a submission fails, the jobs already submitted are cancelled. Jobs run in
  ``$WASS_WORKDIR`` (default: the directory ``submit.sh`` is run from); their output goes to
  ``log/``.

The command a job runs is the task's command from the workflow file, or a ``command`` template
(placeholders: see :data:`PLACEHOLDERS`; ``{{`` and ``}}`` for literal braces), or with
``sleep=True`` a sleep for the runtime the plan estimates on the task's node (dry runs and tests).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

from agents.deploy.plan import DeployPlan
from wass_env.errors import WassError
from wass_env.io import atomic_write

__all__ = [
    "PLACEHOLDERS",
    "PLACEMENTS",
    "JobSetError",
    "check_destination",
    "node_order_guards",
    "render_job_set",
    "write_job_set",
]

#: Ways a job script carries the plan's node.
PLACEMENTS: tuple[str, ...] = ("nodelist", "plugin")

#: Placeholders of a command template, and what they stand for.
PLACEHOLDERS: dict[str, str] = {
    "id": "the task id",
    "name": "the job name (the task id with characters other than letters, digits, '.', '_' "
    "and '-' replaced by '_')",
    "type": "the task type (program name)",
    "command": "the task's command from the workflow file",
    "node": "the planned node",
    "cores": "the task's cores",
    "memory_mb": "the task's memory [MiB]",
    "runtime": "the estimated runtime on the planned node [s]",
}

MIB = 1024.0**2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class JobSetError(WassError):
    """A job set cannot be written (bad template, missing commands, directory in the way)."""


def _job_name(task_id: str) -> str:
    return _UNSAFE.sub("_", task_id)[:100] or "task"


def _check_template(template: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise JobSetError(f"--command: bad template {template!r}: {exc}") from None
    for f in fields:
        key = re.split(r"[.\[!:]", f, maxsplit=1)[0]
        if key not in PLACEHOLDERS:
            raise JobSetError(
                f"--command: unknown placeholder {{{f}}} in {template!r}; known: "
                + ", ".join(f"{{{k}}}" for k in PLACEHOLDERS)
                + " (write {{ and }} for literal braces)"
            )


def render_job_set(
    dp: DeployPlan,
    *,
    placement: str = "nodelist",
    command: str | None = None,
    sleep: bool = False,
    keep_order: bool = True,
) -> dict[str, str]:
    """The job set's files, by name (nothing is written).

    Args:
        dp: The deploy plan.
        placement: ``"nodelist"`` or ``"plugin"`` (see the module docstring).
        command: A command template (see :data:`PLACEHOLDERS`); default: each task's command
            from the workflow file.
        sleep: Each job sleeps for its estimated runtime instead (exclusive with ``command``).
        keep_order: Keep each node's planned order (see :func:`node_order_guards`).

    Raises:
        JobSetError: on an unknown placement, a bad template, both ``command`` and ``sleep``,
            or a task with no command when neither is given.
    """
    if placement not in PLACEMENTS:
        raise JobSetError(
            f"--placement: expected one of {', '.join(PLACEMENTS)}, got {placement!r}"
        )
    if command is not None and sleep:
        raise JobSetError("--command and --sleep exclude each other")
    if command is not None:
        _check_template(command)
    wf, cl, p = dp.workflow, dp.cluster, dp.plan
    order = dp.submission_order().tolist()
    if command is None and not sleep:
        missing = [wf.ids[t] for t in order if not wf.command[t].strip()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            src = f" in {wf.source}" if wf.source else ""
            raise JobSetError(
                f"task {missing[0]!r}{src} has no command{more}; give --command TEMPLATE or --sleep"
            )
    width = max(4, len(str(len(order))))
    stems = {t: f"{k + 1:0{width}d}-{_job_name(wf.ids[t])}" for k, t in enumerate(order)}
    files: dict[str, str] = {}
    for t in order:
        node = cl.node_name[int(p.node[t])]
        runtime = float(p.finish[t] - p.start[t])  # [s]
        mem_mb = max(1, math.ceil(float(wf.memory[t]) / MIB))
        values: dict[str, Any] = {
            "id": wf.ids[t],
            "name": _job_name(wf.ids[t]),
            "type": wf.task_type[t],
            "command": wf.command[t],
            "node": node,
            "cores": int(wf.cores[t]),
            "memory_mb": mem_mb,
            "runtime": f"{runtime:.3f}",
        }
        if sleep:
            body = f"sleep {runtime:.3f}"
        elif command is not None:
            try:
                body = command.format(**values)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                raise JobSetError(f"--command: cannot fill {command!r}: {exc}") from None
        else:
            body = wf.command[t]
        where = (
            f"#SBATCH --nodelist={node}"
            if placement == "nodelist"
            else f"#SBATCH --comment=wass:node={node}"
        )
        files[f"{stems[t]}.sh"] = "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --job-name={values['name']}",
                "#SBATCH --nodes=1",
                "#SBATCH --ntasks=1",
                f"#SBATCH --cpus-per-task={int(wf.cores[t])}",
                f"#SBATCH --mem={mem_mb}M",
                where,
                "#SBATCH --kill-on-invalid-dep=yes",
                f"# Task {_comment(wf.ids[t])} of workflow {_comment(wf.name)}: planned on {node} "
                f"from {float(p.start[t]):.3f} s to {float(p.finish[t]):.3f} s ({dp.scheduler}).",
                f'times="${{SLURM_SUBMIT_DIR:-.}}/times/{stems[t]}.tsv"',
                "printf 'start\\t%s\\t%s\\n' \"$(date +%s.%N)\" "
                '"${SLURMD_NODENAME:-$(hostname -s)}" >"$times"',
                f"bash -c {shlex.quote(body)}",
                "rc=$?",
                'printf \'end\\t%s\\t%s\\n\' "$(date +%s.%N)" "$rc" >>"$times"',
                'exit "$rc"',
                "",
            ]
        )
    files["submit.sh"] = _submit_script(dp, order, stems, keep_order)
    return files


def _comment(text: str) -> str:
    """``text`` quoted for a one-line shell comment."""
    return repr(text.replace("\n", " "))


def node_order_guards(dp: DeployPlan) -> dict[int, list[int]]:
    """Per task, the tasks ahead of it on its node that it could otherwise overtake.

    Slurm starts a job as soon as its dependencies are met and its node has room, whatever the
    plan's order on that node. A task whose parents all finish before those of a task planned
    ahead of it on the same node (the plan kept room for that one) could take its place. For each
    such pair the later task gets ``--dependency=after:<earlier>`` (start after it has started),
    so Slurm keeps each node's planned order, as the simulator executes plans.

    Returns:
        ``{task: [tasks ahead of it on its node whose parents finish later]}`` (only non-empty).
    """
    p = dp.plan
    out: dict[int, list[int]] = {}
    for n in range(dp.cluster.n_nodes):
        seq = p.node_order(n).tolist()
        for j, t in enumerate(seq):
            ahead = [k for k in seq[:j] if p.release[k] > p.release[t] + 1e-9]
            if ahead:
                out[t] = ahead
    return out


def _submit_script(
    dp: DeployPlan, order: list[int], stems: dict[int, str], keep_order: bool = True
) -> str:
    wf = dp.workflow
    lines = [
        "#!/bin/bash",
        f"# Submit workflow {_comment(wf.name)} to Slurm: {len(order)} jobs, estimated makespan "
        f"{dp.makespan:.3f} s ({dp.scheduler}).",
        "#",
        "#   bash submit.sh    (jobs run in $WASS_WORKDIR, default: the directory you run it from)",
        "#",
        "# Every job is submitted held, in topological order, depending (afterok) on its",
        "# parents' jobs; then all are released together. A failed submission cancels the jobs",
        "# submitted so far. Job ids: jobids.tsv (task id, script, job id); output: log/;",
        "# start and end times: times/.",
        "set -euo pipefail",
        'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        'workdir="$(cd "${WASS_WORKDIR:-$PWD}" && pwd)"',
        'cd "$here"',
        "if [ -e jobids.tsv ]; then",
        '    echo "submit.sh: $here/jobids.tsv exists: this job set was submitted already" >&2',
        "    exit 1",
        "fi",
        "mkdir -p log times",
        ": >jobids.tsv.partial",
        "jobs=()",
        "abort() {",
        '    echo "submit.sh: $1; cancelling the ${#jobs[@]} jobs submitted so far" >&2',
        '    [ "${#jobs[@]}" -eq 0 ] || scancel "${jobs[@]}" || true',
        "    rm -f jobids.tsv.partial",
        "    exit 1",
        "}",
        "submit() {  # submit TASK_ID SCRIPT [DEPENDENCY]: sets $job",
        "    local out",
        '    out="$(sbatch --parsable --hold --chdir="$workdir" --output="$here/log/${2%.sh}.out" '
        '${3:+--dependency=$3} "$here/$2")" || abort "sbatch $2 failed"',
        '    job="${out%%;*}"',
        '    jobs+=("$job")',
        '    printf \'%s\\t%s\\t%s\\n\' "$1" "$2" "$job" >>jobids.tsv.partial',
        "}",
    ]
    index = {t: k + 1 for k, t in enumerate(order)}
    ahead = node_order_guards(dp) if keep_order else {}
    for t in order:
        parents = sorted(index[q] for q in wf.parents(t).tolist())
        deps = []
        if parents:
            deps.append("afterok" + "".join(f":$j{k}" for k in parents))
        if ahead.get(t):
            deps.append("after" + "".join(f":$j{k}" for k in sorted(index[q] for q in ahead[t])))
        dep = f" {','.join(deps)}" if deps else ""
        lines.append(
            f"submit {shlex.quote(wf.ids[t])} {shlex.quote(stems[t] + '.sh')}{dep}; "
            f"j{index[t]}=$job"
        )
    lines += [
        "mv jobids.tsv.partial jobids.tsv",
        'scontrol release "$(IFS=,; echo "${jobs[*]}")" || abort "scontrol release failed"',
        'echo "submit.sh: ${#jobs[@]} jobs submitted; job ids in $here/jobids.tsv"',
        "",
    ]
    return "\n".join(lines)


def check_destination(directory: str | os.PathLike[str]) -> Path:
    """The job set directory, if it can be created.

    Raises:
        JobSetError: if it exists and is not an empty directory.
    """
    d = Path(directory)
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise JobSetError(
            f"--slurm: {d} exists and is not an empty directory; choose a new one "
            "(a job set is never written over another)"
        )
    return d


def write_job_set(
    dp: DeployPlan,
    directory: str | os.PathLike[str],
    *,
    placement: str = "nodelist",
    command: str | None = None,
    sleep: bool = False,
    keep_order: bool = True,
) -> Path:
    """Write the job set of ``dp`` into the new directory ``directory``.

    The files are written into a temporary directory next to it, which is then renamed: either
    the whole job set appears or nothing does.

    Args:
        dp: The deploy plan.
        directory: Where to write; must not exist, or be an empty directory.
        placement, command, sleep, keep_order: See :func:`render_job_set`.

    Returns:
        The directory.

    Raises:
        JobSetError: see :func:`render_job_set` and :func:`check_destination`.
    """
    files = render_job_set(
        dp, placement=placement, command=command, sleep=sleep, keep_order=keep_order
    )
    dest = check_destination(directory)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for name, text in files.items():
            atomic_write(tmp / name, text)
            os.chmod(tmp / name, 0o755)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
