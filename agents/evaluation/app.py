"""The evaluation behind ``scripts/evaluate.py``: run a configured grid and write every output.

Outputs (:func:`run_evaluation`), all written atomically to the run directory:

* ``episodes.csv``: one row per scheduler x episode (:mod:`agents.evaluation.run`),
  deterministic (same config -> same bytes whenever every CP-SAT solve ends before its
  wall-clock limit, or ``cpsat.deterministic_time`` is set);
* ``timings.csv``: planning wall time per row [s] (apart, because it is not deterministic);
* ``summary.csv`` and ``results.md``: mean and 95% CI per workload x cluster x scheduler, paired
  ratios with wins/ties/losses against HEFT and the best heuristic (and, for the
  ``generalisation`` experiment, the summary by held-out family);
* ``makespan.png``, ``ratio_to_heft.png`` and ``gantt/<scheduler>.png`` (one instance).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from agents.evaluation.config import EvaluationError
from agents.evaluation.grid import Grid, check_grid, grid_from_config
from agents.evaluation.outputs import write_csv, write_text
from agents.evaluation.run import run_grid
from agents.evaluation.stats import TIE_RTOL, summarize
from agents.evaluation.tables import grid_markdown
from wass_env.cli import run_cli

__all__ = ["check_config", "main", "run_evaluation"]


def _preamble(grid: Grid, cfg: DictConfig, command: str | None) -> str:
    seeds = grid.seeds
    text = []
    if cfg.get("description"):
        text.append(str(cfg.description).strip())
    if command:
        text.append(f"Command: `{command}`")
    per_file = [w for w, s in grid.workloads.items() if isinstance(s, dict) and s.get("per_file")]
    text.append(
        f"{len(seeds)} instances per cell (seeds {seeds[0]}..{seeds[-1]}, the evaluation range "
        "of `agents.evaluation.seeds`, disjoint from every training seed)"
        + (f"; {', '.join(per_file)}: every file once" if per_file else "")
        + f"; runtime noise {grid.noise}. Every scheduler plans the same instances and is "
        "scored by the same simulator. Mean ± 95% confidence interval (Student t) over "
        "instances; ratios are taken per instance (paired) and then averaged; "
        "(wins/ties/losses) count the instances where the scheduler is shorter, equal "
        f"(relative difference <= {TIE_RTOL:g}) or longer than the one it is compared with. "
        '`slurm` is the workflow-agnostic "traditional Slurm" baseline, `data_locality` the '
        "WASS heuristic, `single_node` every task on the best single node, `best_heuristic` "
        "the shortest of HEFT, PEFT, CPOP, data_locality and single_node per instance. CP-SAT "
        f"runs only on instances with at most {grid.cpsat.max_tasks} tasks and "
        f"{grid.cpsat.max_nodes} nodes (time limit {grid.cpsat.time_limit:g} s"
        + (
            f", deterministic time {grid.cpsat.deterministic_time:g}"
            if grid.cpsat.deterministic_time
            else ""
        )
        + '). Its OPTIMAL status is for its integer model; "proven optimal" counts the plans '
        "proven optimal for the simulator's own durations (no rounding was needed, or the "
        'makespan meets a valid lower bound); "bound" is that lower bound.'
    )
    if len(seeds) < 30 and not per_file:
        text.append(f"Only {len(seeds)} instances per cell: too few for a headline number.")
    return "\n\n".join(text)


def _gantt_episode(cfg: DictConfig, grid: Grid) -> tuple[str, str, int] | None:
    """``(workload, cluster, seed)`` of the episode drawn as Gantt charts, or None.

    Raises:
        EvaluationError: on a ``gantt`` field that names no workload, cluster or episode.
    """
    gantt = cfg.gantt
    if not (gantt.enabled and cfg.plots):
        return None
    wl = gantt.workload if gantt.workload is not None else next(iter(grid.workloads), None)
    cl = gantt.cluster if gantt.cluster is not None else next(iter(grid.clusters), None)
    if wl not in grid.workloads:
        raise EvaluationError("gantt.workload", f"not one of {list(grid.workloads)}", wl)
    if cl not in grid.clusters:
        raise EvaluationError("gantt.cluster", f"not one of {list(grid.clusters)}", cl)
    if not 0 <= int(gantt.episode) < len(grid.seeds):
        raise EvaluationError(
            "gantt.episode", f"must be in [0, {len(grid.seeds) - 1}]", int(gantt.episode)
        )
    return str(wl), str(cl), grid.seeds[int(gantt.episode)]


def check_config(cfg: DictConfig) -> None:
    """Check a composed ``evaluate`` config without running anything (what the command line
    does before it starts): the fields, the scheduler specs and checkpoints, the Gantt choice.

    Raises:
        EvaluationError: on a bad field (named, with its value).
    """
    grid = grid_from_config(cfg)
    check_grid(grid)
    _gantt_episode(cfg, grid)
    if int(cfg.get("workers", 1)) < 1:
        raise EvaluationError("workers", "must be >= 1", int(cfg.workers))


def run_evaluation(
    cfg: DictConfig, out_dir: str | os.PathLike[str], *, command: str | None = None
) -> dict[str, Any]:
    """Run the grid a composed ``evaluate`` config describes and write every output.

    Args:
        cfg: A composed ``conf/evaluate.yaml`` (with an ``experiment``).
        out_dir: Output directory (Hydra's run directory under ``runs/eval/``).
        command: The command line, quoted in the report.

    Returns:
        ``{"rows", "summary", "markdown", "files", "out_dir"}``.

    Raises:
        EvaluationError: on bad input, before anything runs.
    """
    out = Path(out_dir)
    grid = grid_from_config(cfg)
    keep = _gantt_episode(cfg, grid)

    workers = int(cfg.get("workers", 1))
    result = run_grid(grid, progress=bool(cfg.progress), keep=keep, workers=workers)
    # The measurements first: a summary that fails later must not lose them.
    measured = [
        write_csv(result.rows, out / "episodes.csv"),
        write_csv(result.timings, out / "timings.csv"),
    ]
    summary = summarize(result.rows, order=result.names, compare=grid.compare)
    sections: list[str] = []
    if cfg.get("generalisation") is not None:
        from agents.evaluation.generalisation import heldout_sections

        sections = heldout_sections(
            result.rows,
            cfg.generalisation,
            result.names,
            reference=grid.reference,
            compare=grid.compare,
            floor=grid.noise == 0,
        )
    markdown = grid_markdown(
        summary,
        result.rows,
        names=result.names,
        title=f"Evaluation: {cfg.name}",
        reference=grid.reference,
        compare=grid.compare,
        preamble=_preamble(grid, cfg, command),
        sections=sections,
        details=bool(cfg.get("details", True)),
    )
    files = [
        *measured,
        write_csv(summary, out / "summary.csv"),
        write_text(markdown, out / "results.md"),
    ]
    if cfg.plots:
        from agents.evaluation.plots import plot_gantts, plot_makespans

        files += plot_makespans(summary, result.names, out / "makespan.png", grid.reference)
        files += plot_gantts(result.schedules, out / "gantt")
    print(markdown)
    print(f"Outputs in {out}/: " + ", ".join(str(f.relative_to(out)) for f in files[:4]) + ", …")
    return {
        "rows": result.rows,
        "summary": summary,
        "markdown": markdown,
        "files": files,
        "out_dir": out,
    }


def main(cfg: DictConfig, out_dir: str | os.PathLike[str], *, command: str | None = None) -> int:
    """:func:`run_evaluation` behind the command-line error boundary (:func:`wass_env.cli.run_cli`).

    Returns:
        0 on success, 2 on bad input (the message names the field and its value).
    """
    return run_cli(run_evaluation, cfg, out_dir, command=command)
