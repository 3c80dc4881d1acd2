"""Gantt charts of (partial) schedules, as text or as an image.

Tasks that overlap on a multi-core node are drawn in separate lanes (a lane is a greedy packing
of the node's tasks by start time), so every bar is visible. Every lane is labelled with its
node's name and lane number (``node3/1``: the second lane of ``node3``); the image colours bars
by task type, with a legend, and the text chart ends with a key from glyphs to tasks.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wass_env.sim.problem import Problem

__all__ = ["gantt_figure", "gantt_rgb", "gantt_text", "lane_label", "lanes"]

_GLYPHS = string.ascii_letters + string.digits
#: Task types named in the image's legend at most (the rest are grouped as "other types").
MAX_LEGEND = 12
UNTYPED = "(no type)"


def lane_label(problem: Problem, node: int, lane: int) -> str:
    """``<node name>/<lane>``: the label of one lane of a Gantt chart."""
    return f"{problem.cluster.node_name[node]}/{lane}"


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


def _key(problem: Problem, tasks: list[int], width: int) -> list[str]:
    """Key lines ``a=t0 type, b=t1 type, ...`` wrapped at ``width`` characters."""
    types = problem.workflow.task_type
    items = [
        f"{_GLYPHS[t % len(_GLYPHS)]}=t{t}" + (f" {types[t]}" if types[t] else "") for t in tasks
    ]
    lines: list[str] = []
    line = "key:"
    for item in items:
        if len(line) + len(item) + 2 > width:
            lines.append(line.rstrip(","))
            line = "    "
        line += f" {item},"
    lines.append(line.rstrip(","))
    if problem.n_tasks > len(_GLYPHS):
        lines.append(f"    (glyphs repeat every {len(_GLYPHS)} tasks: task id mod {len(_GLYPHS)})")
    return lines


def gantt_text(
    problem: Problem,
    node: NDArray[np.int64],
    start: NDArray[np.float64],
    finish: NDArray[np.float64],
    *,
    width: int = 72,
    max_rows: int = 40,
    key: bool = True,
) -> str:
    """A text Gantt chart: one row per lane, labelled ``<node name>/<lane>``, one glyph per task
    (``a``-``z``, ``A``-``Z``, ``0``-``9``, by task id), then a key from glyphs to tasks.

    Args:
        problem: The problem scheduled.
        node, start, finish: The (partial) schedule; unplaced tasks have node -1.
        width: Characters for the time axis.
        max_rows: Rows shown at most (the rest is summarised).
        key: End with the key (the tasks of the rows shown, in order of start).
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
    all_lanes = lanes(node, start, finish, problem.n_nodes)
    labels = [lane_label(problem, n, k) for n, ls in enumerate(all_lanes) for k in range(len(ls))]
    pad = max(len(lb) for lb in labels)
    rows = [head]
    shown: list[int] = []
    total = len(labels)
    cut = False
    for n, node_lanes in enumerate(all_lanes):
        for k, lane in enumerate(node_lanes):
            if len(rows) - 1 == max_rows:
                rows.append(f"... {total - max_rows} more lanes")
                cut = True
                break
            line = [" "] * width
            for t in lane:
                a = min(int(start[t] * scale), width - 1)
                b = max(min(round(finish[t] * scale), width), a + 1)
                line[a:b] = _GLYPHS[t % len(_GLYPHS)] * (b - a)
            rows.append(f"{lane_label(problem, n, k):<{pad}}|{''.join(line)}|")
            shown.extend(lane)
        if cut:
            break
    if not cut:
        rows.append(f"{'':{pad}s}0{'':{width - 1}s}{horizon:.4g} s")
    if key:
        order = sorted(shown, key=lambda t: (float(start[t]), t))
        rows.extend(_key(problem, order, width + pad + 2))
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
    """A matplotlib Gantt chart: one row per lane labelled ``<node name>/<lane>``, nodes
    separated by lines, bars coloured by task type with a legend (the :data:`MAX_LEGEND` most
    frequent types; the others share one grey).

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    all_lanes = lanes(node, start, finish, problem.n_nodes)
    n_rows = sum(len(ls) for ls in all_lanes)
    if ax is None:
        height = min(max(2.5, 0.6 + 0.22 * n_rows), 30.0)  # [in]
        fig, ax = plt.subplots(figsize=(11, height), dpi=80)
    else:
        fig = ax.figure
    placed_tasks = np.flatnonzero(node >= 0).tolist()
    names = [problem.workflow.task_type[t] or UNTYPED for t in placed_tasks]
    counts: dict[str, int] = {}
    for nm in names:
        counts[nm] = counts.get(nm, 0) + 1
    shown = sorted(counts, key=lambda nm: (-counts[nm], nm))[:MAX_LEGEND]
    cmap = plt.get_cmap("tab20")
    color: dict[str, Any] = {nm: cmap(i % 20) for i, nm in enumerate(sorted(shown))}
    other = (0.75, 0.75, 0.75, 1.0)
    labels: list[str] = []
    y = 0
    for n, node_lanes in enumerate(all_lanes):
        for k, lane in enumerate(node_lanes):
            bars = [(float(start[t]), float(finish[t] - start[t])) for t in lane]
            colors = [color.get(problem.workflow.task_type[t] or UNTYPED, other) for t in lane]
            ax.broken_barh(
                bars, (y - 0.4, 0.8), facecolors=colors, edgecolor="black", linewidth=0.3
            )
            labels.append(lane_label(problem, n, k))
            y += 1
        if node_lanes and y < n_rows:
            ax.axhline(y - 0.5, color="0.6", linewidth=0.5)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7 if len(labels) <= 40 else 5)
    ax.set_ylabel("node/lane")
    ax.invert_yaxis()
    ax.set_xlabel("time [s]")
    placed = node >= 0
    mk = float(finish[placed].max()) if placed.any() else 0.0
    ax.set_title(
        title or f"{problem.workflow.name} on {problem.cluster.name}: makespan {mk:.4g} s",
        fontsize=9,
    )
    handles = [Patch(facecolor=color[nm], edgecolor="black", label=nm) for nm in sorted(shown)]
    if len(counts) > len(shown):
        handles.append(Patch(facecolor=other, edgecolor="black", label="other types"))
    if handles:
        ax.legend(
            handles=handles,
            title="task type",
            fontsize=7,
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
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
