"""Gantt charts of (partial) schedules, as text or as an image.

Tasks that overlap on a multi-core node are drawn in separate lanes (a lane is a greedy packing
of the node's tasks by start time), so every bar is visible.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.problem import Problem

__all__ = ["gantt_figure", "gantt_rgb", "gantt_text", "lanes"]

_GLYPHS = string.ascii_letters + string.digits


def lanes(
    node: NDArray[np.int64], start: NDArray[np.float64], finish: NDArray[np.float64], n_nodes: int
) -> list[list[list[int]]]:
    """Per node, lists of tasks whose bars do not overlap (placed tasks only).

    Args:
        node: Node per task (-1 for unplaced tasks, which are skipped).
        start: Start per task [s].
        finish: Finish per task [s].
        n_nodes: Number of nodes.
    """
    out: list[list[list[int]]] = [[] for _ in range(n_nodes)]
    ends: list[list[float]] = [[] for _ in range(n_nodes)]
    placed = np.flatnonzero(node >= 0)
    for t in placed[np.lexsort((placed, start[placed]))].tolist():
        n = int(node[t])
        for k, e in enumerate(ends[n]):
            if e <= start[t]:
                out[n][k].append(t)
                ends[n][k] = float(finish[t])
                break
        else:
            out[n].append([t])
            ends[n].append(float(finish[t]))
    return out


def gantt_text(
    problem: Problem,
    node: NDArray[np.int64],
    start: NDArray[np.float64],
    finish: NDArray[np.float64],
    *,
    width: int = 72,
    max_rows: int = 40,
) -> str:
    """A text Gantt chart: one row per lane, one glyph per task (``a``-``z``, ``A``-``Z``, ...).

    Args:
        problem: The problem scheduled.
        node, start, finish: The (partial) schedule; unplaced tasks have node -1.
        width: Characters for the time axis.
        max_rows: Rows shown at most (the rest is summarised).
    """
    placed = node >= 0
    horizon = float(finish[placed].max()) if placed.any() else 0.0
    head = (
        f"{problem.workflow.name} on {problem.cluster.name}: "
        f"{int(placed.sum())}/{problem.n_tasks} tasks placed, makespan {horizon:.6g} s"
    )
    if not placed.any():
        return head
    scale = width / horizon if horizon > 0 else 0.0
    rows = [head]
    shown = 0
    all_lanes = lanes(node, start, finish, problem.n_nodes)
    total = sum(len(ls) for ls in all_lanes)
    for n, node_lanes in enumerate(all_lanes):
        for k, lane in enumerate(node_lanes):
            if shown == max_rows:
                rows.append(f"... {total - shown} more lanes")
                return "\n".join(rows)
            line = [" "] * width
            for t in lane:
                a = min(int(start[t] * scale), width - 1)
                b = max(min(round(finish[t] * scale), width), a + 1)
                line[a:b] = _GLYPHS[t % len(_GLYPHS)] * (b - a)
            rows.append(f"n{n:<3d}.{k:<2d}|{''.join(line)}|")
            shown += 1
    rows.append(f"{'':7s}0{'':{width - 1}s}{horizon:.4g} s")
    return "\n".join(rows)


def gantt_figure(
    problem: Problem,
    node: NDArray[np.int64],
    start: NDArray[np.float64],
    finish: NDArray[np.float64],
    *,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """A matplotlib Gantt chart (lanes on the y axis, colour by task type).

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(10, 4.5), dpi=80)
    else:
        fig = ax.figure
    types = sorted(set(problem.workflow.task_type))
    cmap = plt.get_cmap("tab20")
    color = {t: cmap(i % 20) for i, t in enumerate(types)}
    labels: list[str] = []
    y = 0
    for n, node_lanes in enumerate(lanes(node, start, finish, problem.n_nodes)):
        for k, lane in enumerate(node_lanes):
            bars = [(float(start[t]), float(finish[t] - start[t])) for t in lane]
            colors = [color[problem.workflow.task_type[t]] for t in lane]
            ax.broken_barh(
                bars, (y - 0.4, 0.8), facecolors=colors, edgecolor="black", linewidth=0.3
            )
            labels.append(f"n{n}" if k == 0 else "")
            y += 1
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time [s]")
    placed = node >= 0
    mk = float(finish[placed].max()) if placed.any() else 0.0
    ax.set_title(
        title or f"{problem.workflow.name} on {problem.cluster.name}: makespan {mk:.4g} s",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def gantt_rgb(
    problem: Problem,
    node: NDArray[np.int64],
    start: NDArray[np.float64],
    finish: NDArray[np.float64],
) -> NDArray[np.uint8]:
    """The Gantt chart as an ``(height, width, 3)`` uint8 image."""
    import matplotlib.pyplot as plt

    fig = gantt_figure(problem, node, start, finish)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img
