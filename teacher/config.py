"""Typed Hydra configs of the teacher's command lines (``wass build-kb``, ``wass train-predictor``,
``wass explain``; :mod:`teacher.apps`).

The YAML files ``conf/build_kb.yaml``, ``conf/train_predictor.yaml`` and ``conf/explain.yaml``
extend these schemas; the field docs are what ``wass <command> --help`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from teacher.build import DEFAULT_HOLDOUT
from teacher.encoder import EncoderConfig
from teacher.training import PredictorTrainConfig

__all__ = ["BuildKBConfig", "ExplainConfig", "TrainPredictorConfig", "register_configs"]


@dataclass
class BuildKBConfig:
    """``wass build-kb``: stage 1, seed the knowledge base with runs of many policies.

    Attributes:
        profile: Build profile of :data:`teacher.build.PROFILES` (tiny, default, large, huge).
        out: Base file to write (null: ``runs/kb/<profile>.wkb``); in a sweep, give each job its
            own, e.g. ``out='${hydra:runtime.output_dir}/kb.wkb'``.
        instances: Workflow instances (null: the profile's).
        workers: Worker processes (null: the profile's; the base does not depend on it).
        seed: Master seed (null: the profile's, 0).
        branch_prob: Probability of a counterfactual branch per decision (null: the profile's).
        policies: Policy specs drawn per instance instead of the profile's (``heft``,
            ``heft~0.2``, ``pilot2``, ``cpsat``, ``policy:PATH``, ``policy+rollout2:PATH``,
            ``teacher:DIR``; see :mod:`teacher.policies`); null: the profile's.
        always: Specs run on every instance they apply to (null: the profile's, ``[cpsat]``).
        policies_per_instance: Policies drawn per instance (null: the profile's, at most the
            number of ``policies``).
        append: Add the records to the base already at ``out`` instead of replacing it (with
            the same seed, the same instances: e.g. a trained policy's runs next to the
            heuristics' ones).
    """

    profile: str = "default"
    out: str | None = None
    instances: int | None = None
    workers: int | None = None
    seed: int | None = None
    branch_prob: float | None = None
    policies: list[str] | None = None
    always: list[str] | None = None
    policies_per_instance: int | None = None
    append: bool = False


@dataclass
class TrainPredictorConfig:
    """``wass train-predictor``: stage 2, train the encoder and makespan predictor on a base.

    Attributes:
        kb: Knowledge base to train on (written by ``wass build-kb``).
        out: Output directory: ``model.wtm``, ``kb.wkb`` (re-keyed by the model), ``report.json``.
        holdout_family: Workflow families held out of training entirely (a name or a list),
            to measure generalisation.
        epochs: Phase-1 epochs (encoder and predictor, no retrieval context).
        context_epochs: Phase-2 epochs (predictor with the retrieved context, encoder frozen).
        k: Retrieved cases per decision.
        context: ``expectation`` (the paper's E_{k~C_t}: one prediction per retrieved case,
            weighted by similarity) or ``mean`` (one averaged context).
        rank_weight: Weight of the pairwise ranking loss on same-state pairs.
        family_weight: Weight of the family classification loss of the key's family part.
        family_dim: Size of the key's family part (0: state embedding only).
        seed: Seed of the splits, the initialisation and the shuffling.
        threads: Torch CPU threads.
        index: Index stored with the re-keyed base (flat: exact; hnsw, ivf: approximate).
        eval_episodes: Instances per generalisation cell (3 CCRs x 2 cluster sets: 6 cells,
            60 instances per family at 10) of each
            ``unseen`` family on which the greedy teacher is compared with HEFT and
            best_heuristic (0: skip).
        seen_episodes: The same for each family the base holds (new instances).
        unseen: Families the base left out, for the greedy evaluation.
        workers: Processes of the greedy evaluation.
        margin: The greedy evaluation's trust region: HEFT's node unless ``a*_t`` is predicted
            more than ``margin`` (relative) shorter (``TeacherScheduler(margin=...)``; 0: the
            plain greedy teacher).
        rekey: Only re-key this base with ``model`` (no training).
        model: The model for ``rekey``.
    """

    kb: str = "runs/kb/default.wkb"
    out: str = "runs/teacher"
    holdout_family: Any = None
    epochs: int = PredictorTrainConfig.epochs
    context_epochs: int = PredictorTrainConfig.context_epochs
    k: int = 5
    context: str = "expectation"
    rank_weight: float = PredictorTrainConfig.rank_weight
    family_weight: float = PredictorTrainConfig.family_weight
    family_dim: int = EncoderConfig.family_dim
    seed: int = 0
    threads: int = 1
    index: str = "flat"
    eval_episodes: int = 10
    seen_episodes: int = 2
    unseen: list[str] = field(default_factory=lambda: list(DEFAULT_HOLDOUT))
    margin: float = 0.0
    workers: int = 1
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
