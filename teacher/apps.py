"""The Hydra apps of :mod:`teacher`: ``wass build-kb``, ``wass train-predictor``, ``wass explain``.

Each is a :func:`wass_env.cli.hydra_app` over the packaged config tree (``conf/build_kb.yaml``,
``conf/train_predictor.yaml``, ``conf/explain.yaml``; typed by :mod:`teacher.config`), declared
in the ``wass.commands`` entry-point group; ``scripts/build_kb.py``,
``scripts/train_predictor.py`` and ``scripts/explain.py`` call the same functions. The work is
in :func:`run_build_kb`, :func:`run_train_predictor` and :func:`run_explain`, which take a
composed config (tests call them through Hydra's ``compose``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from teacher.config import register_configs
from wass_env.cli import check_output_dir, check_output_file, hydra_app
from wass_env.errors import WassError
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
    keys = ("instances", "workers", "seed", "branch_prob", "policies_per_instance")
    overrides: dict[str, Any] = {k: cfg[k] for k in keys if cfg.get(k) is not None}
    for k in ("policies", "always"):
        if cfg.get(k) is not None:
            overrides[k] = tuple(str(s) for s in cfg[k])
    if cfg.get("policies") is not None and cfg.get("policies_per_instance") is None:
        base = PROFILES[cfg.profile].policies_per_instance
        overrides["policies_per_instance"] = min(base, len(cfg.policies))
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
    lines = ["policy                 runs  makespan/HEFT  better  worse  (same instances)"]
    for spec, e in kb.meta["experience"].items():  # of the runs just built
        lines.append(
            f"{spec:<22} {e['runs']:>4}  {e['ratio_to_heft']:>13.3f}  "
            f"{e['better_than_heft']:>6.0%}  {e['worse_than_heft']:>5.0%}"
        )
    log.info("what the new runs know, against HEFT:\n%s", "\n".join(lines))
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
    """Stage 1: seed the teacher's knowledge base with runs of many policies."""
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
        ("seen_episodes", 0, MAX_COUNT),
        ("workers", 1, 1024),
        ("family_dim", 0, 4096),
        ("seed", 0, 2**32 - 1),  # torch and NumPy seeds
    ):
        value = cfg[field]
        if not low <= value <= high:
            raise TeacherAppError(f"{field}: must be in [{low}, {high}], got {value!r}")
    for field in ("rank_weight", "family_weight", "margin"):
        value = cfg[field]
        if not 0.0 <= float(value) < float("inf"):
            raise TeacherAppError(f"{field}: must be a finite number >= 0, got {value!r}")
    from teacher.predictor import CONTEXT_MODES

    if cfg.context not in CONTEXT_MODES:
        raise TeacherAppError(f"context: must be one of {list(CONTEXT_MODES)}, got {cfg.context!r}")
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


def _greedy_lines(report: dict[str, Any]) -> list[str]:
    """Retrieval and the greedy teacher's figures of a stage-2 report, one line each."""
    sim = report.get("similarity", {})
    lines = [
        f"same-state pairs: {report['pair_accuracy']:.3f} ordered right (earliest finish "
        f"alone: {report['pair_accuracy_earliest_finish']:.3f}; on the pairs it gets wrong: "
        f"{report['hard_pair_accuracy']:.3f})",
        f"retrieval (held-out instances): family hit rate {report['family_hit_rate']:.3f}; "
        f"similarity top-1 {sim.get('sim_top1_mean', float('nan')):.3f}, top-k "
        f"{sim.get('sim_topk_mean', float('nan')):.3f}, random pair "
        f"{sim.get('sim_random_mean', float('nan')):.3f}",
    ]
    for part, prefix in (("unseen", "greedy_"), ("seen", "greedy_seen_")):
        g = report.get("greedy", {}).get(part)
        if not g:
            continue
        lines.append(
            f"greedy teacher, {part} families ({', '.join(g['families'])}; {g['instances']} "
            f"instances): {report[prefix + 'ratio_to_heft']:.3f} ± "
            f"{report[prefix + 'ratio_to_heft_ci95']:.3f} x HEFT ({report[prefix + 'vs_heft']} "
            f"wins/ties/losses), {report[prefix + 'ratio_to_best_heuristic']:.3f} x best heuristic"
        )
    return lines


def run_train_predictor(cfg: DictConfig) -> dict[str, Any]:
    """Train the teacher (or only re-key a base, ``rekey=...``) and write the outputs.

    Returns:
        The report (also written to ``out/report.json``); ``{}`` for a re-keying.
    """
    from teacher.kb import KnowledgeBase
    from teacher.predictor import PredictorConfig, TeacherModel
    from teacher.training import PredictorTrainConfig, embed_records

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
    from dataclasses import replace as _replace

    from teacher.encoder import EncoderConfig
    from teacher.pipeline import run_stage2

    kb = KnowledgeBase.load(cfg.kb)
    hold = cfg.holdout_family
    holdout = () if hold is None else (str(hold),) if isinstance(hold, str) else tuple(hold)
    config = PredictorTrainConfig(
        encoder=_replace(EncoderConfig(), family_dim=int(cfg.family_dim)),
        predictor=PredictorConfig(k=int(cfg.k), context=str(cfg.context)),
        epochs=int(cfg.epochs),
        context_epochs=int(cfg.context_epochs),
        holdout_families=tuple(str(f) for f in holdout),
        rank_weight=float(cfg.rank_weight),
        family_weight=float(cfg.family_weight),
        seed=int(cfg.seed),
        threads=threads,
    )
    bar = _StatusBar("epochs")
    try:
        report = run_stage2(
            kb,
            out,
            config,
            index=str(cfg.index),
            unseen=[str(f) for f in cfg.unseen],
            unseen_episodes=int(cfg.eval_episodes),
            seen_episodes=int(cfg.seen_episodes),
            workers=int(cfg.workers),
            margin=float(cfg.margin),
            progress=bar,
        )
    finally:
        bar.close()
    training = report["training"]
    log.info(
        "predictor on held-out data (makespan / lower bound):\n%s\n%s",
        _report_table(training),
        "\n".join(_greedy_lines(report)),
    )
    log.info(
        "instances: %s; trained in %.1f s; wrote %s, %s, %s",
        training["instances"],
        training["seconds"],
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
