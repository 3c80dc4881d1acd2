"""Plots of an evaluation: makespans and paired ratios with 95% CI, and Gantt charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.outputs import save_figure
from wass_env.sim.plan import Schedule
from wass_env.sim.problem import Problem

__all__ = ["plot_gantts", "plot_makespans"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_makespans(
    summary: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    path: Path,
    reference: str = "heft",
) -> list[Path]:
    """Bar charts with 95% CI error bars: makespan per cell, and the ratio to the reference.

    Writes ``path`` (one panel per workload x cluster, makespan [s]) and
    ``ratio_to_<reference>.png`` next to it (one panel per cluster, workloads side by side).

    Returns:
        The files written.
    """
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cells: list[tuple[str, str]] = []
    for e in summary:
        if (e["workload"], e["cluster"]) not in cells:
            cells.append((e["workload"], e["cluster"]))
    workloads = list(dict.fromkeys(w for w, _ in cells))
    clusters = list(dict.fromkeys(c for _, c in cells))
    by = {(e["workload"], e["cluster"], e["scheduler"]): e for e in summary}
    cmap = plt.get_cmap("tab10")
    color = {n: cmap(i % 10) for i, n in enumerate(names)}

    fig, axes = plt.subplots(
        len(workloads),
        len(clusters),
        figsize=(1.0 + 0.55 * len(names) * len(clusters), 2.4 * len(workloads)),
        dpi=90,
        squeeze=False,
    )
    for i, wl in enumerate(workloads):
        for j, cl in enumerate(clusters):
            ax = axes[i][j]
            es = [by[wl, cl, n] for n in names if (wl, cl, n) in by]
            x = np.arange(len(es))
            ax.bar(
                x,
                [e["makespan"] for e in es],
                yerr=[e["makespan_ci95"] for e in es],
                color=[color[e["scheduler"]] for e in es],
                capsize=3,
            )
            ax.set_xticks(x)
            ax.set_xticklabels([e["scheduler"] for e in es], rotation=45, ha="right", fontsize=7)
            ax.set_title(f"{wl} x {cl}", fontsize=9)
            ax.set_ylabel("makespan [s]", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    written = [save_figure(fig, path)]
    plt.close(fig)

    ref = f"ratio_to_{reference}"
    fig, axes = plt.subplots(
        len(clusters),
        1,
        figsize=(3.0 + 0.12 * len(names) * len(workloads), 2.8 * len(clusters)),
        dpi=90,
        squeeze=False,
    )
    width = 0.8 / max(len(names), 1)
    for j, cl in enumerate(clusters):
        ax = axes[j][0]
        for k, n in enumerate(names):
            xs, ys, errs = [], [], []
            for i, wl in enumerate(workloads):
                found = by.get((wl, cl, n))
                if found is not None and found[f"{ref}_n"]:
                    xs.append(i - 0.4 + width * (k + 0.5))
                    ys.append(found[ref])
                    errs.append(found[f"{ref}_ci95"])
            if xs:
                ax.bar(xs, ys, width, yerr=errs, color=color[n], label=n, capsize=1.5)
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(np.arange(len(workloads)))
        ax.set_xticklabels(workloads, fontsize=8)
        ax.set_ylabel(f"makespan / {reference} (log)", fontsize=8)
        ax.set_title(cl, fontsize=9)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0) if lo <= t <= hi])
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    written.append(save_figure(fig, path.with_name(f"{ref}.png")))
    plt.close(fig)
    return written


def plot_gantts(schedules: Mapping[str, tuple[Problem, Schedule]], out_dir: Path) -> list[Path]:
    """One Gantt chart PNG per scheduler (``out_dir/<scheduler>.png``); returns the files."""
    from wass_env.render import gantt_figure

    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (problem, s) in schedules.items():
        fig = gantt_figure(
            problem,
            s.node,
            s.start,
            s.finish,
            title=f"{name}: {problem.workflow.name} on {problem.cluster.name}, "
            f"makespan {s.makespan:.4g} s",
        )
        written.append(save_figure(fig, out_dir / f"{name}.png"))
        plt.close(fig)
    return written
