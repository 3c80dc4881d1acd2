"""One summary table over the jobs of a Hydra sweep (a Hydra callback).

:class:`SweepSummary` runs when a ``--multirun`` sweep ends, on the machine that launched it
(whatever the launcher: basic, joblib, submitit on Slurm). It reads the result file every job
wrote (``results.csv`` of ``wass train``, ``episodes.csv`` of ``wass evaluate``, ``runs.csv``
of ``wass ablation``), summarises each job's rows with the one summariser
(:func:`agents.evaluation.stats.summarize`: mean and 95% CI per group), and writes one table
with a row per job and group, the job's overrides as its first columns:
``<sweep dir>/sweep_summary.md`` and ``sweep_summary.csv``. A job that wrote no result file
(it failed) is listed with its overrides and ``missing`` in the ``result`` column.

The apps' configs attach it (``hydra.callbacks.sweep_summary`` in ``conf/train.yaml``)::

    hydra:
      callbacks:
        sweep_summary:
          _target_: agents.sweep.SweepSummary
          file: results.csv
          by: [scheduler]
          metrics: [makespan, ratio_to_heft, ratio_to_lower_bound]
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from agents.evaluation.outputs import write_csv, write_text
from agents.evaluation.stats import summarize
from agents.evaluation.tables import Column, markdown_table

__all__ = ["SweepSummary", "summarize_sweep"]

log = logging.getLogger(__name__)


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories (those with Hydra's ``.hydra/overrides.yaml``), in job order."""
    dirs = [p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")]

    def job_num(d: Path) -> tuple[int, str]:
        hydra_cfg = d / ".hydra" / "hydra.yaml"
        try:
            num = int(OmegaConf.load(hydra_cfg).hydra.job.num)
        except Exception:  # an unreadable file: order by name after the others
            num = 1 << 30
        return num, str(d)

    return sorted(set(dirs), key=job_num)


def summarize_sweep(
    sweep_dir: str | Path,
    *,
    file: str,
    by: Sequence[str] = (),
    metrics: Sequence[str] = (),
    keep: dict[str, Sequence[Any]] | None = None,
) -> list[dict[str, Any]]:
    """One summary entry per job of ``sweep_dir`` and group of ``by``.

    Args:
        sweep_dir: The sweep directory (``hydra.sweep.dir``).
        file: The result file each job wrote (CSV, one row per episode, run, ...).
        by: Columns of that file to group by (none: one entry per job).
        metrics: Numeric columns to average (mean and 95% CI).
        keep: Only rows whose column has one of these values (``{scheduler: [heft, ...]}``).

    Returns:
        Entries with ``job`` (its number), the job's overrides as ``key=value`` columns, the
        ``by`` columns, ``rows`` (the job's rows in the group) and ``<metric>`` / ``<metric>_ci95``.
    """
    out: list[dict[str, Any]] = []
    for num, d in enumerate(_job_dirs(Path(sweep_dir))):
        overrides = [str(o) for o in OmegaConf.load(d / ".hydra" / "overrides.yaml")]
        head: dict[str, Any] = {"job": num}
        for o in overrides:
            key, _, value = o.partition("=")
            head[key] = value
        path = d / file
        if not path.is_file():
            out.append({**head, "result": "missing"})
            continue
        rows = _read_rows(path)
        if keep:
            rows = [r for r in rows if all(r.get(k) in set(v) for k, v in keep.items())]
        if not rows:
            out.append({**head, "result": "no rows"})
            continue
        for entry in summarize(rows, by=tuple(by), metrics=tuple(metrics), compare=()):
            entry["rows"] = entry.pop("episodes")
            entry = {
                k: v
                for k, v in entry.items()
                if k in by or k == "rows" or k.removesuffix("_ci95") in metrics
            }
            out.append({**head, **entry})
    return out


class SweepSummary(Callback):
    """Hydra callback: at the end of a sweep, one table over its jobs (see the module docstring).

    Args:
        file: The result file each job writes.
        by: Its columns to group by.
        metrics: Its numeric columns to average.
        keep: Only rows whose column has one of these values.
        name: Base name of the outputs in the sweep directory.
    """

    def __init__(
        self,
        file: str,
        by: Sequence[str] = (),
        metrics: Sequence[str] = (),
        keep: dict[str, Sequence[Any]] | None = None,
        name: str = "sweep_summary",
    ) -> None:
        self.file = file
        self.by = [str(b) for b in by]
        self.metrics = [str(m) for m in metrics]
        self.keep: dict[str, Sequence[Any]] | None = (
            None if keep is None else {str(k): list(v) for k, v in dict(keep).items()}
        )
        self.name = name

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``<sweep dir>/<name>.md`` and ``.csv``."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        entries = summarize_sweep(
            sweep_dir, file=self.file, by=self.by, metrics=self.metrics, keep=self.keep
        )
        if not entries:
            log.warning("sweep summary: no job directories under %s", sweep_dir)
            return
        keys: list[str] = []
        for e in entries:
            keys.extend(k for k in e if k not in keys and not k.endswith("_ci95"))
        columns = [Column(k, decimals=4 if k in self.metrics else None) for k in keys]
        table = markdown_table(entries, columns)
        write_csv(entries, sweep_dir / f"{self.name}.csv")
        text = (
            f"# Sweep summary: {len({e['job'] for e in entries})} jobs\n\n"
            f"Each job's `{self.file}`"
            + (f" grouped by {', '.join(self.by)}" if self.by else "")
            + "; mean ± 95% CI over its rows.\n\n"
            + table
            + "\n"
        )
        write_text(text, sweep_dir / f"{self.name}.md")
        log.info("sweep summary (%s):\n%s", sweep_dir / f"{self.name}.md", table)
