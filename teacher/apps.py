"""The Hydra apps of :mod:`teacher`: ``wass build-kb``, ``wass train-predictor``, ``wass explain``.

Each is a :func:`wass_env.cli.hydra_app` over the packaged config tree (``conf/build_kb.yaml``,
``conf/train_predictor.yaml``, ``conf/explain.yaml``; typed by :mod:`teacher.config`), declared
in the ``wass.commands`` entry-point group; ``scripts/build_kb.py``,
``scripts/train_predictor.py`` and ``scripts/explain.py`` call the same functions. The work is
in :func:`run_build_kb`, :func:`run_train_predictor` and :func:`run_explain`, which take a
composed config (tests call them through Hydra's ``compose``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from teacher.config import register_configs
from wass_env.cli import check_output_dir, check_output_file, hydra_app
from wass_env.errors import WassError
from wass_env.io import atomic_write
from wass_env.limits import MAX_COUNT

__all__ = [
    "TeacherAppError",
    "build_kb",
    "check_build_kb",
    "check_explain",
    "check_train_predictor",
    "explain",
    "run_build_kb",
    "run_explain",
    "run_train_predictor",
    "train_predictor",
]

log = logging.getLogger(__name__)
register_configs()


class TeacherAppError(WassError):
    """A bad setting of a teacher command (the message names the field and its value)."""


class _StatusBar:
    """A tqdm progress bar driven by a stage's status lines (``"instances 150/500, records
    ..."``, ``"phase 1 epoch 3/30: ..."``): the first ``done/total`` of a line moves the bar, a
    new total (the next phase) starts a new bar; every line also goes to the log (debug)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar: Any = None

    def __call__(self, line: str) -> None:
        from tqdm.auto import tqdm

        log.debug(line)
        m = re.search(r"(\d+)/(\d+)", line)
        if m is None:
            return
        done, total = int(m.group(1)), int(m.group(2))
        head = line[: m.start()].strip() or self.desc
        if self.bar is None or self.bar.total != total or self.bar.desc != head:
            self.close()
            self.bar = tqdm(total=total, desc=head)
        self.bar.n = done
        self.bar.set_postfix_str(line[m.end() :].strip(" ,:"), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ---------------------------------------------------------------------------- build-kb
def _build_config(cfg: DictConfig) -> tuple[Any, Path]:
    from teacher.build import PROFILES

    if cfg.profile not in PROFILES:
        raise TeacherAppError(f"profile: must be one of {sorted(PROFILES)}, got {cfg.profile!r}")
    overrides = {
        k: cfg[k] for k in ("instances", "workers", "seed", "branch_prob") if cfg.get(k) is not None
    }
    out = Path(cfg.out) if cfg.out is not None else Path("runs/kb") / f"{cfg.profile}.wkb"
    return replace(PROFILES[cfg.profile], **overrides), out


def check_build_kb(cfg: DictConfig) -> None:
    """Check a ``build_kb`` config before the build (which takes minutes)."""
    _, out = _build_config(cfg)  # BuildConfig checks its own fields
    check_output_file(out, "out")


def run_build_kb(cfg: DictConfig) -> Path:
    """Build (or extend, ``append=true``) a knowledge base; returns the file written."""
    from teacher.build import build_knowledge_base
    from teacher.kb import KnowledgeBase

    config, out = _build_config(cfg)
    check_output_file(out, "out")
    if cfg.append:
        KnowledgeBase.load(out)  # a bad base to append to fails before the build
    bar = _StatusBar("instances")
    try:
        kb = build_knowledge_base(config, progress=bar)
    finally:
        bar.close()
    secs = kb.meta["build_seconds"]
    if cfg.append:
        kb = KnowledgeBase.append_file(out, kb)
    else:
        kb.save(out)
    log.info(
        "%s: %d records, %d runs (built in %.1f s, profile %r)",
        out,
        kb.n_records,
        kb.n_episodes,
        secs,
        cfg.profile,
    )
    return out


@hydra_app(config_name="build_kb", check=check_build_kb)
def build_kb(cfg: DictConfig) -> None:
    """Stage 1: seed the teacher's knowledge base with runs of heuristic policies."""
    run_build_kb(cfg)


# ---------------------------------------------------------------------------- train-predictor
def check_train_predictor(cfg: DictConfig) -> None:
    """Check a ``train_predictor`` config before training."""
    for field, low, high in (
        ("epochs", 1, MAX_COUNT),
        ("context_epochs", 0, MAX_COUNT),
        ("k", 0, MAX_COUNT),
        ("threads", 1, 1024),
        ("eval_episodes", 0, MAX_COUNT),
        ("seed", 0, 2**32 - 1),  # torch and NumPy seeds
    ):
        value = cfg[field]
        if not low <= value <= high:
            raise TeacherAppError(f"{field}: must be in [{low}, {high}], got {value!r}")
    if cfg.index not in ("flat", "hnsw", "ivf"):
        raise TeacherAppError(f"index: must be one of flat, hnsw, ivf, got {cfg.index!r}")
    if cfg.rekey is not None and cfg.model is None:
        raise TeacherAppError("rekey: needs model=<the model that keys the base>")
    check_output_dir(cfg.out, "out")  # a bad out fails before any training


def _report_table(report: dict[str, Any]) -> str:
    from agents.evaluation import Column, markdown_table

    rows = []
    for block, label in (
        ("context", ""),
        ("no_context", " (no context)"),
        ("unknown_policy", " (policy unknown)"),
    ):
        for name, m in report.get(block, {}).items():
            if m.get("n"):
                rows.append({"set": name + label, **m})
    columns = [
        Column("set"),
        Column("n"),
        Column("mse", "MSE", 4),
        Column("r2", "R^2", 3),
        Column("pairs"),
        Column("pair_accuracy", "pair acc", 3),
    ]
    return markdown_table(rows, columns)


def _compare(model: Any, kb: Any, n: int, seed: int) -> dict[str, Any]:
    """HEFT, the teacher's greedy policy and baselines on ``n`` fresh workflows."""
    import numpy as np

    from teacher.build import PROFILES
    from teacher.policies import make_policy
    from teacher.teacher import Teacher, TeacherScheduler
    from teacher.training import compare_policies
    from wass_env.sim.cluster import cluster_from_spec
    from wass_env.sim.problem import Problem
    from wass_env.workloads import make_sampler

    cfg = PROFILES["default"]
    sampler = make_sampler(cfg.workload)
    clusters = [cluster_from_spec(c) for c in cfg.clusters]
    rng = np.random.default_rng([seed, 987_654])  # not a seed the build uses
    problems = []
    for _ in range(n):
        cl = clusters[int(rng.integers(len(clusters)))]
        problems.append(Problem(sampler.sample(rng, cl), cl))
    schedulers = {
        "heft": make_policy("heft"),
        "teacher (greedy)": TeacherScheduler(Teacher(model, kb)),
        "data_locality": make_policy("data_locality"),
        "slurm": make_policy("slurm"),
        "random": make_policy("random", seed=seed),
    }
    return compare_policies(problems, schedulers)


def run_train_predictor(cfg: DictConfig) -> dict[str, Any]:
    """Train the teacher (or only re-key a base, ``rekey=...``) and write the outputs.

    Returns:
        The report (also written to ``out/report.json``); ``{}`` for a re-keying.
    """
    from teacher.kb import KnowledgeBase
    from teacher.predictor import PredictorConfig, TeacherModel
    from teacher.training import PredictorTrainConfig, embed_records, train_teacher

    out = Path(cfg.out)
    threads = int(cfg.threads)
    if cfg.rekey is not None:
        model = TeacherModel.load(cfg.model)
        kb = KnowledgeBase.load(cfg.rekey)
        kb.set_keys(embed_records(kb, model, threads=threads), model.key_model)
        kb.index(str(cfg.index))
        kb.save(out / "kb.wkb")
        log.info("%s: %d records keyed by %s", out / "kb.wkb", len(kb), model.key_model)
        return {}
    kb = KnowledgeBase.load(cfg.kb)
    config = PredictorTrainConfig(
        predictor=PredictorConfig(k=int(cfg.k)),
        epochs=int(cfg.epochs),
        context_epochs=int(cfg.context_epochs),
        holdout_family=cfg.holdout_family,
        seed=int(cfg.seed),
        threads=threads,
    )
    bar = _StatusBar("epochs")
    try:
        result = train_teacher(kb, config, progress=bar)
    finally:
        bar.close()
    result.model.save(out / "model.wtm")
    kb.set_keys(result.keys, result.model.key_model)
    kb.index(str(cfg.index))
    kb.save(out / "kb.wkb")
    report = result.report
    atomic_write(out / "report.json", json.dumps(report, indent=2, default=str))
    log.info("predictor on held-out data (makespan / lower bound):\n%s", _report_table(report))
    n = int(cfg.eval_episodes)
    if n > 0:
        cmp = _compare(result.model, kb, n, int(cfg.seed))
        report["greedy_policies"] = cmp
        lines = [f"on {n} fresh workflows (default profile's workloads and clusters):"]
        for name, m in cmp.items():
            lines.append(
                f"  {name:<16} makespan / lower bound {m['mean_ratio_to_lb']:.3f} "
                f"(worst {m['max_ratio_to_lb']:.2f}), / HEFT {m['mean_ratio_to_heft']:.3f}"
            )
        log.info("\n".join(lines))
        atomic_write(out / "report.json", json.dumps(report, indent=2, default=str))
    log.info(
        "instances: %s; trained in %.1f s; wrote %s, %s, %s",
        report["instances"],
        report["seconds"],
        out / "model.wtm",
        out / "kb.wkb",
        out / "report.json",
    )
    return report


@hydra_app(config_name="train_predictor", check=check_train_predictor)
def train_predictor(cfg: DictConfig) -> None:
    """Stage 2: train the teacher's encoder and makespan predictor on a knowledge base."""
    run_train_predictor(cfg)


# ---------------------------------------------------------------------------- explain
def run_explain(cfg: DictConfig) -> str:
    """The explanation of decision ``step`` of ``workflow`` (printed, and returned as text)."""
    from teacher.explain import explain_step
    from teacher.kb import KnowledgeBase
    from teacher.policies import make_policy
    from teacher.predictor import TeacherModel
    from teacher.teacher import Teacher
    from wass_env.sim.cluster import cluster_from_spec
    from wass_env.sim.problem import Problem
    from wass_env.workloads import load_workflow

    model = TeacherModel.load(cfg.model)
    kb = KnowledgeBase.load(cfg.kb)
    ref = None if cfg.reference is None or str(cfg.reference).lower() == "none" else cfg.reference
    teacher = Teacher(model, kb, k=cfg.k, reference=ref)
    problem = Problem(load_workflow(cfg.workflow), cluster_from_spec(cfg.cluster))
    text = str(explain_step(teacher, problem, make_policy(cfg.policy), int(cfg.step)))
    print(text)
    return text


def check_explain(cfg: DictConfig) -> None:
    """Check an ``explain`` config: the workflow is given, the three files exist."""
    cfg.workflow  # noqa: B018  (unset: OmegaConf's MissingMandatoryValue names the field)
    for key in ("kb", "model", "workflow"):
        path = cfg[key]
        if not Path(str(path)).is_file():
            raise TeacherAppError(f"{key}: {path}: no such file")


@hydra_app(config_name="explain", check=check_explain)
def explain(cfg: DictConfig) -> None:
    """Explain the teacher's judgement of one decision of a workflow."""
    run_explain(cfg)
