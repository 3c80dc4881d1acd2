"""Does the teacher help? Summaries of training runs evaluated on the same instances.

The ablation is a Hydra multirun of ``scripts/train.py`` (``conf/ablation/``, ``conf/variant/``;
see the README): one job per variant and training seed, each job training MaskablePPO and
scoring the trained policy, HEFT and ``best_heuristic`` on the same fixed evaluation instances
(``eval.workload``, seeds ``10^9 ...``: the training mix *with* the families left out of
training), and writing ``results.csv`` (one row per scheduler x instance) and ``curve.csv``
(one row per training episode: its makespan / HEFT's on the training distribution).

:func:`collect_runs` reads a sweep directory (a job's variant and seed come from its
``.hydra/overrides.yaml``); :func:`summarize_ablation` gives per variant

* **final quality**: the trained policy's paired makespan / HEFT (and / ``best_heuristic``),
  first averaged over the evaluation instances of each seed, then mean ± 95% CI over seeds; on
  every instance, on the families seen in training and on the held-out ones;
* **paired against the first variant** (the baseline, ``sparse`` in the ablation): per seed the
  mean over the instances both runs of that seed scored of the variant's makespan ÷ the
  baseline's, then mean ± 95% CI over seeds, and on how many seeds the variant is better;
* **sample efficiency**: the environment steps until the training episodes reach HEFT parity
  (the mean makespan / HEFT over the last ``window`` training episodes <= 1), per seed, mean ±
  95% CI over the seeds that reached it and how many did; the steps of the expert episodes of a
  behaviour-cloning warm start count too (they are environment steps);

:func:`plot_curves` draws the learning curves (mean over seeds of the windowed ratio to HEFT
against environment steps) and :func:`compare_runs` puts several single runs side by side
(``make rag``: the RAG-trained policy and the plain one on the same instances).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import markdown_table
from agents.evaluation.outputs import save_figure
from agents.evaluation.stats import ci95, outcome_counts
from agents.evaluation.tables import Column
from wass_env.errors import WassError

__all__ = [
    "AblationError",
    "Run",
    "collect_runs",
    "compare_runs",
    "plot_curves",
    "reference_rows",
    "steps_to_parity",
    "summarize_ablation",
]

#: The scheduler name of the trained policy in a training run's ``results.csv``.
AGENT = "maskable_ppo"


class AblationError(WassError):
    """A sweep or run directory is missing, empty or malformed (the message names it)."""


class Run:
    """One training job: its variant, seed, evaluation rows, learning curve and warm start.

    Attributes:
        path: The job directory.
        variant: The variant name (``+variant=<name>``; ``"run"`` if none).
        seed: The training seed.
        rows: ``results.csv`` rows (numbers parsed).
        curve: ``curve.csv`` rows (numbers parsed; empty if the job wrote none).
        warm_steps: Environment steps of the imitation stage (``imitation.json``; 0 without).
        held_out: Families left out of training (``workload.exclude``).
    """

    def __init__(self, path: Path, variant: str, seed: int, held_out: Sequence[str]) -> None:
        self.path = path
        self.variant = variant
        self.seed = seed
        self.held_out = tuple(held_out)
        results = path / "results.csv"
        if not results.is_file():
            raise AblationError(f"{results}: no such file (did the job finish?)")
        self.rows = _read_csv(results)
        curve = path / "curve.csv"
        self.curve = _read_csv(curve) if curve.is_file() else []
        self.warm_steps = 0
        im = path / "imitation.json"
        if im.is_file():
            self.warm_steps = int(json.loads(im.read_text(encoding="utf-8")).get("states", 0))

    def agent_rows(self, name: str = AGENT) -> list[dict[str, Any]]:
        """The trained policy's evaluation rows."""
        rows = [r for r in self.rows if r.get("scheduler") == name]
        if not rows:
            raise AblationError(f"{self.path / 'results.csv'}: no rows of scheduler {name!r}")
        return rows


def _number(x: str) -> Any:
    try:
        v = float(x)
    except ValueError:
        return x
    return int(v) if v.is_integer() and "." not in x and "e" not in x.lower() else v


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _overrides(job: Path) -> dict[str, str]:
    import yaml

    items = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text(encoding="utf-8")) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _config(job: Path) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load((job / ".hydra" / "config.yaml").read_text(encoding="utf-8"))
    return cfg if isinstance(cfg, dict) else {}


def collect_runs(sweep: str | Path) -> list[Run]:
    """Every finished job of a sweep directory (the sub-directories with ``.hydra/``).

    Raises:
        AblationError: if the directory does not exist or holds no finished job.
    """
    root = Path(sweep)
    if not root.is_dir():
        raise AblationError(f"{root}: no such sweep directory")
    runs = []
    for hydra_dir in sorted(root.glob("**/.hydra")):
        job = hydra_dir.parent
        if not (job / "results.csv").is_file():
            continue
        ov = _overrides(job)
        cfg = _config(job)
        exclude = (cfg.get("workload") or {}).get("exclude") or []
        runs.append(
            Run(
                job,
                ov.get("variant", "run"),
                int(cfg.get("seed", ov.get("seed", 0))),
                [str(f) for f in exclude] if isinstance(exclude, list) else [str(exclude)],
            )
        )
    if not runs:
        raise AblationError(f"{root}: no finished job (no */.hydra with a results.csv)")
    return runs


def steps_to_parity(
    curve: Sequence[Mapping[str, Any]],
    *,
    window: int = 50,
    column: str = "ratio_to_heft",
    target: float = 1.0,
    offset: int = 0,
) -> float:
    """Environment steps until the mean of ``column`` over the last ``window`` training
    episodes is <= ``target``; ``nan`` if that never happens.

    Args:
        curve: Training episodes in order (``timestep`` and ``column``).
        window: Episodes averaged.
        column: The ratio.
        target: Parity.
        offset: Steps taken before the curve starts (a warm start's expert episodes).
    """
    vals = [float(p[column]) for p in curve if column in p and _finite(p[column])]
    steps = [int(p["timestep"]) for p in curve if column in p and _finite(p[column])]
    if len(vals) < window:
        return math.nan
    c = np.cumsum(np.concatenate([[0.0], vals]))
    means = (c[window:] - c[:-window]) / window
    hit = np.flatnonzero(means <= target)
    return float(steps[int(hit[0]) + window - 1] + offset) if hit.size else math.nan


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _mean(rows: Sequence[Mapping[str, Any]], col: str) -> float:
    vals = [float(r[col]) for r in rows if _finite(r.get(col))]
    return float(np.mean(vals)) if vals else math.nan


def summarize_ablation(
    runs: Sequence[Run],
    *,
    window: int = 50,
    order: Sequence[str] | None = None,
    reference: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """One entry per variant (see the module docstring for the columns).

    Keys: ``variant``, ``seeds``, ``instances`` (evaluation instances per seed),
    ``ratio_to_heft`` (+ ``_ci95``), ``ratio_to_best_heuristic``, ``seen_ratio_to_heft``,
    ``held_out_ratio_to_heft`` (each with ``_ci95``), ``vs_heft`` (wins/ties/losses over every
    seed's instances), ``parity_steps`` (+ ``_ci95``), ``parity_reached`` (``"k/n"``),
    ``final_train_ratio`` (the last window's mean ratio to HEFT during training),
    ``ratio_to_baseline`` (+ ``_ci95``) and ``better_than_baseline`` (paired per seed with the
    first variant, ``baseline``); with ``reference = (label, rows)`` (evaluation rows of one
    scheduler on the same instances, e.g. the untrained policy's rule in another run) also
    ``ratio_to_reference`` and ``better_than_reference``, every seed paired with those rows.
    """
    variants = list(dict.fromkeys(order or [])) + [
        v for v in dict.fromkeys(r.variant for r in runs) if v not in (order or [])
    ]
    out = []
    for v in variants:
        rs = sorted((r for r in runs if r.variant == v), key=lambda r: r.seed)
        if not rs:
            continue
        entry: dict[str, Any] = {"variant": v, "seeds": len(rs)}
        per_seed: dict[str, list[float]] = {}
        outcomes: list[float] = []
        for r in rs:
            rows = r.agent_rows()
            held = set(r.held_out)
            seen = [x for x in rows if x.get("family") not in held]
            unseen = [x for x in rows if x.get("family") in held]
            entry["instances"] = len(rows)
            for key, sub, col in (
                ("ratio_to_heft", rows, "ratio_to_heft"),
                ("ratio_to_best_heuristic", rows, "ratio_to_best_heuristic"),
                ("seen_ratio_to_heft", seen, "ratio_to_heft"),
                ("held_out_ratio_to_heft", unseen, "ratio_to_heft"),
            ):
                per_seed.setdefault(key, []).append(_mean(sub, col))
            outcomes.extend(float(x["ratio_to_heft"]) for x in rows if _finite(x["ratio_to_heft"]))
            steps = steps_to_parity(r.curve, window=window, offset=r.warm_steps)
            per_seed.setdefault("parity_steps", []).append(steps)
            tail = [float(p["ratio_to_heft"]) for p in r.curve if _finite(p.get("ratio_to_heft"))]
            per_seed.setdefault("final_train_ratio", []).append(
                float(np.mean(tail[-window:])) if tail else math.nan
            )
        for key, vals in per_seed.items():
            finite = [x for x in vals if math.isfinite(x)]
            entry[key], entry[f"{key}_ci95"] = ci95(finite) if finite else (math.nan, math.nan)
        reached = sum(math.isfinite(x) for x in per_seed["parity_steps"])
        entry["parity_reached"] = f"{reached}/{len(rs)}"
        w, t, lo = outcome_counts(outcomes)
        entry["vs_heft"] = f"{w}/{t}/{lo}"
        out.append(entry)
    if out:  # every variant paired per seed with the first (the baseline)
        base = out[0]["variant"]
        by_seed = {r.seed: _ratios_by_instance(r.agent_rows()) for r in runs if r.variant == base}
        for entry in out:
            entry["baseline"] = base
            _paired(entry, runs, by_seed, "baseline")
    if reference is not None:  # and with one scheduler of another run, on every seed
        label, ref_rows = reference
        ref = _ratios_by_instance(ref_rows)
        for entry in out:
            entry["reference"] = label
            _paired(entry, runs, {r.seed: ref for r in runs}, "reference")
    return out


def _instance_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        row.get("workload"),
        row.get("cluster"),
        row.get("seed"),
        row.get("episode"),
        row.get("family"),
    )


def _ratios_by_instance(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], float]:
    """``{instance: ratio_to_heft}`` of evaluation rows (finite, positive ratios only)."""
    out: dict[tuple[Any, ...], float] = {}
    for x in rows:
        v: Any = x.get("ratio_to_heft")
        if _finite(v) and v > 0:
            out[_instance_key(x)] = float(v)
    return out


def _paired(
    entry: dict[str, Any],
    runs: Sequence[Run],
    ref_of_seed: Mapping[int, Mapping[tuple[Any, ...], float]],
    name: str,
) -> None:
    """Add ``ratio_to_<name>`` (+ ``_ci95``) and ``better_than_<name>`` (``"k/n"`` seeds) to
    ``entry``: per seed of its variant, the mean over the instances ``ref_of_seed[seed]`` also
    scored of the variant's ratio to HEFT ÷ the reference's (HEFT is the same on both, so this
    is the makespan ratio); then mean ± 95% CI over seeds."""
    per_seed = []
    for r in runs:
        ref = ref_of_seed.get(r.seed) if r.variant == entry["variant"] else None
        if not ref:
            continue
        own = _ratios_by_instance(r.agent_rows())
        ratios = [v / ref[k] for k, v in own.items() if k in ref]
        if ratios:
            per_seed.append(float(np.mean(ratios)))
    key = f"ratio_to_{name}"
    entry[key], entry[f"{key}_ci95"] = ci95(per_seed) if per_seed else (math.nan, math.nan)
    entry[f"better_than_{name}"] = f"{sum(x < 1.0 - 1e-12 for x in per_seed)}/{len(per_seed)}"


#: The columns of the ablation table.
ABLATION_COLUMNS: tuple[Column, ...] = (
    Column("variant"),
    Column("seeds"),
    Column("ratio_to_heft", "÷ HEFT, all (w/t/l)", 3, outcome="heft"),
    Column("seen_ratio_to_heft", "÷ HEFT, seen families", 3),
    Column("held_out_ratio_to_heft", "÷ HEFT, held-out families", 3),
    Column("ratio_to_best_heuristic", "÷ best heuristic", 3),
    Column("parity_steps", "steps to HEFT parity", 0),
    Column("parity_reached", "seeds at parity"),
    Column("final_train_ratio", "training ÷ HEFT, last window", 3),
)


def ablation_table(summary: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table of :func:`summarize_ablation` (with the paired columns when the
    summary has them)."""
    cols = list(ABLATION_COLUMNS)
    for name in ("reference", "baseline"):  # inserted after the first ratio column
        if summary and name in summary[0]:
            label = summary[0][name]
            cols[3:3] = [
                Column(f"ratio_to_{name}", f"÷ {label}, paired per seed", 3),
                Column(f"better_than_{name}", f"seeds better than {label}"),
            ]
    return markdown_table(summary, cols)


def plot_curves(
    runs: Sequence[Run], path: str | Path, *, window: int = 50, points: int = 60
) -> Path:
    """Learning curves: per variant, the mean over seeds of the windowed makespan / HEFT of
    the training episodes against environment steps (a warm start's steps included), with the
    range over seeds shaded; the dashed line is HEFT parity."""
    from agents.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    variants = list(dict.fromkeys(r.variant for r in runs))
    top = max(
        (max(int(p["timestep"]) for p in r.curve) + r.warm_steps for r in runs if r.curve),
        default=1,
    )
    grid = np.linspace(0, top, points)
    for v in variants:
        curves = []
        for r in runs:
            if r.variant != v or not r.curve:
                continue
            vals = np.array([float(p.get("ratio_to_heft", math.nan)) for p in r.curve])
            steps = np.array([int(p["timestep"]) for p in r.curve]) + r.warm_steps
            ok = np.isfinite(vals)
            vals, steps = vals[ok], steps[ok]
            if vals.size < window:
                continue
            c = np.cumsum(np.concatenate([[0.0], vals]))
            means = (c[window:] - c[:-window]) / window
            at = steps[window - 1 :]
            curves.append(np.interp(grid, at, means, left=np.nan, right=means[-1]))
        if not curves:
            continue
        m = np.array(curves)
        (line,) = ax.plot(grid, np.nanmean(m, axis=0), label=f"{v} ({len(curves)} seeds)")
        ax.fill_between(
            grid, np.nanmin(m, axis=0), np.nanmax(m, axis=0), color=line.get_color(), alpha=0.12
        )
    ax.axhline(1.0, color="k", linestyle="--", linewidth=0.8)
    ax.set_xlabel("environment steps (imitation steps included)")
    ax.set_ylabel(f"training makespan / HEFT (last {window} episodes)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = save_figure(fig, Path(path))
    plt.close(fig)
    return out


def compare_runs(runs: Mapping[str, str | Path]) -> tuple[list[dict[str, Any]], str]:
    """Several single training runs side by side on their common evaluation instances.

    Args:
        runs: Label -> run directory (with ``results.csv``); the first is the reference of the
            ``÷ <first>`` column.

    Returns:
        ``(entries, markdown)``: per run its trained policy, then HEFT and ``best_heuristic``
        from the first run; mean ± 95% CI over the instances of the paired makespan / HEFT, /
        best heuristic and / the first run's policy, with wins/ties/losses.

    Raises:
        AblationError: if a run is missing or the runs were evaluated on other instances.
    """
    if not runs:
        raise AblationError("no runs to compare")
    tables = {label: _read_csv(_results(Path(p))) for label, p in runs.items()}

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return (r["workload"], r["cluster"], r["seed"], r["workflow"])

    first_label = next(iter(tables))
    first = tables[first_label]
    ref = {key(r): float(r["makespan"]) for r in first if r["scheduler"] == AGENT}
    for label, rows in tables.items():
        mine = {key(r) for r in rows if r["scheduler"] == AGENT}
        if mine != set(ref):
            raise AblationError(
                f"{label} ({runs[label]}) was evaluated on other instances than "
                f"{first_label} ({runs[first_label]}): compare runs with the same eval settings"
            )
    columns: list[tuple[str, list[dict[str, Any]]]] = [
        (f"policy ({label})", [r for r in rows if r["scheduler"] == AGENT])
        for label, rows in tables.items()
    ]
    columns += [(n, [r for r in first if r["scheduler"] == n]) for n in ("heft", "best_heuristic")]
    entries = []
    for name, rows in columns:
        if not rows:
            continue
        e: dict[str, Any] = {"scheduler": name, "episodes": len(rows)}
        series: tuple[tuple[str, list[Any]], ...] = (
            ("ratio_to_heft", [r.get("ratio_to_heft") for r in rows]),
            ("ratio_to_best_heuristic", [r.get("ratio_to_best_heuristic") for r in rows]),
            ("ratio_to_first", [float(r["makespan"]) / ref[key(r)] for r in rows]),
            ("ratio_to_lower_bound", [r.get("ratio_to_lower_bound") for r in rows]),
        )
        for col, vals in series:
            xs = [float(x) for x in vals if _finite(x)]
            e[col], e[f"{col}_ci95"] = ci95(xs) if xs else (math.nan, math.nan)
            if col != "ratio_to_lower_bound" and xs:
                w, t, lo = outcome_counts(xs)
                e[f"vs_{col[9:]}"] = f"{w}/{t}/{lo}"
        entries.append(e)
    cols = [
        Column("scheduler"),
        Column("episodes"),
        Column("ratio_to_heft", "÷ heft", 3, outcome="heft"),
        Column("ratio_to_best_heuristic", "÷ best_heuristic", 3, outcome="best_heuristic"),
        Column("ratio_to_first", f"÷ policy ({first_label})", 3, outcome="first"),
        Column("ratio_to_lower_bound", "÷ lower bound", 3),
    ]
    return entries, markdown_table(entries, cols)


def reference_rows(run: str | Path, scheduler: str) -> list[dict[str, Any]]:
    """The evaluation rows of ``scheduler`` in a run directory's ``results.csv`` (the
    ``reference`` of :func:`summarize_ablation`)."""
    results = _results(Path(run))
    rows = [r for r in _read_csv(results) if r.get("scheduler") == scheduler]
    if not rows:
        raise AblationError(f"{results}: no rows of scheduler {scheduler!r}")
    return rows


def _results(path: Path) -> Path:
    results = path / "results.csv"
    if not results.is_file():
        raise AblationError(f"{results}: no such file (train the run first)")
    return results
