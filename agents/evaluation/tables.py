"""The one table formatter (Markdown), and the evaluation report built with it.

:func:`markdown_table` prints summary entries (:func:`agents.evaluation.stats.summarize`): a
column ``m`` whose entry has ``m_ci95`` prints as ``mean ± half-width``; a column
:class:`Column` can fix the decimals, scale the values, and append the wins/ties/losses against a
comparison scheduler. Every table the package prints (the training run's final table, the
evaluation report, the held-out-family summary) goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Column",
    "format_cell",
    "format_mean_ci",
    "grid_markdown",
    "markdown_table",
    "pivot",
    "ratio_columns",
]

GB = 1e9  # [bytes] cross-node volume is reported in GB


@dataclass(frozen=True)
class Column:
    """How one column of :func:`markdown_table` is printed.

    Attributes:
        key: The entry key (a metric ``m`` prints with its ``m_ci95``).
        header: Column header (default: the key).
        decimals: Fixed decimals (default: four significant digits).
        scale: The values are divided by it (``1e9`` for GB).
        outcome: A scheduler name: append ``(wins/ties/losses)`` against it (``vs_<name>``).
    """

    key: str
    header: str | None = None
    decimals: int | None = None
    scale: float = 1.0
    outcome: str | None = None


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"
    return f"{x:.3e}"


def format_mean_ci(mean: float, half: float, decimals: int | None = None) -> str:
    """``"mean ± half"``: ``decimals`` fixed, else four significant digits."""
    if half <= 1e-12 * abs(mean):  # identical values: the CI is 0, not rounding noise
        half = 0.0
    if decimals is None:
        return f"{_fmt(mean)} ± {_fmt(half)}"
    return f"{mean:.{decimals}f} ± {half:.{decimals}f}"


def format_cell(entry: Mapping[str, Any], col: Column) -> str:
    """One cell of :func:`markdown_table`: ``mean ± CI`` (with ``(n/episodes)`` where some
    episodes have no value), ``(wins/ties/losses)`` when the column asks for it, ``-`` when
    there is no value."""
    v = entry.get(col.key)
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)) or (
        isinstance(v, (int, np.integer)) and f"{col.key}_ci95" in entry
    ):
        n = entry.get(f"{col.key}_n")
        if n == 0 or not np.isfinite(float(v)):
            return "-"
        mean = float(v) / col.scale
        if f"{col.key}_ci95" in entry:
            text = format_mean_ci(mean, float(entry[f"{col.key}_ci95"]) / col.scale, col.decimals)
        else:
            text = _fmt(mean) if col.decimals is None else f"{mean:.{col.decimals}f}"
        if n is not None and "episodes" in entry and n < entry["episodes"]:
            text += f" ({n}/{entry['episodes']})"
    else:
        text = str(v)
    if col.outcome is not None and entry.get(f"vs_{col.outcome}") not in (None, "-"):
        text += f" ({entry[f'vs_{col.outcome}']})"
    return text


def markdown_table(entries: Sequence[Mapping[str, Any]], columns: Sequence[str | Column]) -> str:
    """A Markdown table of ``entries``, one row each (see the module docstring)."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    lines = [
        "| " + " | ".join(c.header or c.key for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for e in entries:
        lines.append("| " + " | ".join(format_cell(e, c) for c in cols) + " |")
    return "\n".join(lines)


def ratio_columns(reference: str, compare: Sequence[str]) -> list[Column]:
    """The paired-ratio columns of a summary table: ``÷ <reference>`` with its wins/ties/losses,
    then ``÷ <c>`` with its for every other comparison scheduler."""
    cols = [Column(f"ratio_to_{reference}", f"÷ {reference}", 3, outcome=reference)]
    cols += [Column(f"ratio_to_{c}", f"÷ {c}", 3, outcome=c) for c in compare if c != reference]
    return cols


def pivot(
    summary: Sequence[Mapping[str, Any]],
    row_keys: Sequence[str],
    names: Sequence[str],
    metric: str,
    outcome: str | None,
) -> tuple[list[dict[str, Any]], list[Column]]:
    """Entries with one row per ``row_keys`` value and one column per scheduler.

    Each cell is ``metric`` as ``mean ± CI (wins/ties/losses against outcome)``.

    Returns:
        ``(entries, columns)`` for :func:`markdown_table`.
    """
    by: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for e in summary:
        by.setdefault(tuple(e[k] for k in row_keys), {})[str(e["scheduler"])] = e
    present = [n for n in names if any(n in d for d in by.values())]
    col = Column(metric, decimals=3, outcome=outcome)
    entries = []
    for key, found in by.items():
        entry: dict[str, Any] = dict(zip(row_keys, key, strict=True))
        for n in present:
            entry[n] = format_cell(found[n], col) if n in found else "-"
        entries.append(entry)
    return entries, [Column(k) for k in row_keys] + [Column(n) for n in present]


def _cpsat_note(entry: Mapping[str, Any]) -> str:
    parts = [
        f"{entry[f'cpsat_{s}']} {s.upper()}"
        for s in ("optimal", "feasible", "heft")
        if entry[f"cpsat_{s}"]
    ]
    return (
        f"{', '.join(parts)}; {entry['cpsat_proven_optimal']} proven optimal; "
        f"mean bound {entry['cpsat_lower_bound']:.4g} s, "
        f"mean gap to it {100 * entry['cpsat_gap']:.1f}%"
    )


def grid_markdown(
    summary: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    names: Sequence[str],
    title: str = "Evaluation",
    reference: str = "heft",
    compare: Sequence[str] = ("heft", "best_heuristic"),
    preamble: str = "",
    sections: Sequence[str] = (),
    details: bool = True,
) -> str:
    """The Markdown report of a grid.

    Overview tables (one row per workload x cluster, one column per scheduler) of the paired
    ratio to ``reference`` and to every other ``compare`` scheduler, each cell with its
    wins/ties/losses; then ``sections`` (extra Markdown, e.g. the held-out-family summary);
    then, if ``details``, one table per cell with every metric.
    """
    lines = [f"# {title}", ""]
    if preamble:
        lines += [preamble, ""]
    have = {k for e in summary for k in e}
    for c in [reference, *[c for c in compare if c != reference]]:
        if f"ratio_to_{c}" not in have:
            continue
        entries, cols = pivot(summary, ("workload", "cluster"), names, f"ratio_to_{c}", c)
        lines += [
            f"## Makespan / {c} (paired per episode; mean ± 95% CI (wins/ties/losses))",
            "",
            markdown_table(entries, cols),
            "",
        ]
    for text in sections:
        lines += [text.rstrip(), ""]
    if not details:
        return "\n".join(lines).rstrip() + "\n"

    by = {(e["workload"], e["cluster"], e["scheduler"]): e for e in summary}
    cells = list(dict.fromkeys((e["workload"], e["cluster"]) for e in summary))
    columns = [
        Column("scheduler"),
        Column("episodes"),
        Column("makespan", "makespan [s]"),
        *[c for c in ratio_columns(reference, compare) if c.key in have],
        Column("ratio_to_lower_bound", "÷ lower bound", 3),
        Column("ratio_to_cpsat", "÷ CP-SAT", 3),
        Column("mean_wait", "mean wait [s]"),
        Column("utilization", decimals=3),
        Column("cross_node_bytes", "cross-node [GB]", scale=GB),
    ]
    for wl, cl in cells:
        cell_rows = [r for r in rows if r["workload"] == wl and r["cluster"] == cl]
        sizes = sorted({int(r["n_tasks"]) for r in cell_rows})
        size = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        ccr = float(np.mean([float(r["ccr"]) for r in cell_rows]))
        nodes = sorted({int(r["n_nodes"]) for r in cell_rows})
        n_nodes = f"{nodes[0]}" if len(nodes) == 1 else f"{nodes[0]}-{nodes[-1]}"
        lines += [f"## {wl} x {cl} ({size} tasks, {n_nodes} nodes, CCR {ccr:.3g})", ""]
        table = [by[wl, cl, n] for n in names if (wl, cl, n) in by]
        lines += [markdown_table(table, columns), ""]
        notes = [f"CP-SAT: {_cpsat_note(e)}." for e in table if "cpsat_optimal" in e]
        if "cpsat" in names and (wl, cl, "cpsat") not in by:
            notes.append("CP-SAT: not run (instances above its size limits).")
        if notes:
            lines += [*notes, ""]
    return "\n".join(lines).rstrip() + "\n"
