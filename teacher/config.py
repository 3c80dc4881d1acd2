"""Typed Hydra configs of the teacher's command lines (``wass build-kb``, ``wass train-predictor``,
``wass explain``; :mod:`teacher.apps`).

The YAML files ``conf/build_kb.yaml``, ``conf/train_predictor.yaml`` and ``conf/explain.yaml``
extend these schemas; the field docs are what ``wass <command> --help`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from teacher.training import PredictorTrainConfig

__all__ = ["BuildKBConfig", "ExplainConfig", "TrainPredictorConfig", "register_configs"]


@dataclass
class BuildKBConfig:
    """``wass build-kb``: stage 1, seed the knowledge base with runs of heuristic policies.

    Attributes:
        profile: Build profile of :data:`teacher.build.PROFILES` (tiny, default, large, huge).
        out: Base file to write (null: ``runs/kb/<profile>.wkb``); in a sweep, give each job its
            own, e.g. ``out='${hydra:runtime.output_dir}/kb.wkb'``.
        instances: Workflow instances (null: the profile's).
        workers: Worker processes (null: the profile's; the base does not depend on it).
        seed: Master seed (null: the profile's, 0).
        branch_prob: Probability of a counterfactual branch per decision (null: the profile's).
        append: Add the records to the base already at ``out`` instead of replacing it.
    """

    profile: str = "default"
    out: str | None = None
    instances: int | None = None
    workers: int | None = None
    seed: int | None = None
    branch_prob: float | None = None
    append: bool = False


@dataclass
class TrainPredictorConfig:
    """``wass train-predictor``: stage 2, train the encoder and makespan predictor on a base.

    Attributes:
        kb: Knowledge base to train on (written by ``wass build-kb``).
        out: Output directory: ``model.wtm``, ``kb.wkb`` (re-keyed by the model), ``report.json``.
        holdout_family: A workflow family held out entirely, to measure generalisation.
        epochs: Phase-1 epochs (encoder and predictor, no retrieval context).
        context_epochs: Phase-2 epochs (predictor with the retrieved context, encoder frozen).
        k: Retrieved cases per decision.
        seed: Seed of the splits, the initialisation and the shuffling.
        threads: Torch CPU threads.
        index: Index stored with the re-keyed base (flat: exact; hnsw, ivf: approximate).
        eval_episodes: Fresh workflows on which the teacher's own choices are compared with
            HEFT (0: skip).
        rekey: Only re-key this base with ``model`` (no training).
        model: The model for ``rekey``.
    """

    kb: str = "runs/kb/default.wkb"
    out: str = "runs/teacher"
    holdout_family: str | None = None
    epochs: int = PredictorTrainConfig.epochs
    context_epochs: int = PredictorTrainConfig.context_epochs
    k: int = 5
    seed: int = 0
    threads: int = 1
    index: str = "flat"
    eval_episodes: int = 30
    rekey: str | None = None
    model: str | None = None


@dataclass
class ExplainConfig:
    """``wass explain``: the teacher's judgement of one decision of a workflow.

    Attributes:
        kb: Knowledge base keyed by ``model`` (``runs/teacher/kb.wkb``).
        model: Trained teacher model (``runs/teacher/model.wtm``).
        workflow: WfFormat JSON or Pegasus DAX file.
        step: The decision to explain (0-based).
        cluster: Cluster preset or spec.
        policy: Policy making the earlier decisions (a scheduler name, or ``name~eps``).
        k: Retrieved cases (null: the model's).
        reference: Continuation policy the predictor assumes (null: the base's mixture).
    """

    kb: str = "runs/teacher/kb.wkb"
    model: str = "runs/teacher/model.wtm"
    workflow: str = MISSING
    step: int = 0
    cluster: str = "het16"
    policy: str = "heft"
    k: int | None = None
    reference: str | None = "heft"


def register_configs() -> None:
    """Register the schemas in Hydra's ``ConfigStore`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="build_kb_schema", node=BuildKBConfig)
    cs.store(name="train_predictor_schema", node=TrainPredictorConfig)
    cs.store(name="explain_schema", node=ExplainConfig)
