"""Result files, written atomically through :mod:`wass_env.io` (CSV, text, PNG figures)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from wass_env.io import atomic_path, atomic_write

__all__ = ["save_figure", "write_csv", "write_text"]


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write ``rows`` (dicts; the union of their keys, in first-seen order) as CSV atomically."""
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)

    def write(f: IO[str]) -> None:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    return atomic_write(path, write, binary=False)


def write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, text)


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
