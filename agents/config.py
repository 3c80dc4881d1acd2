"""Typed Hydra configs (structured configs registered in Hydra's ``ConfigStore``).

The YAML files under ``conf/`` extend these schemas: ``conf/train.yaml`` starts from
``train_schema``, ``conf/agent/maskable_ppo.yaml`` from ``agent/maskable_ppo_schema`` and
``conf/teacher/rag.yaml`` from ``teacher/rag_schema``; the groups ``cluster/`` and
``workload/`` fill the untyped (``Any``) slots with plain specs that the environment
understands. The types catch a value of the wrong kind when the config is composed
(``agent.learning_rate=abc``); :func:`check_values` catches values of the right kind out of
range (``agent.n_steps=0``, ``seed=-1``), naming the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from agents.evaluation.seeds import EVAL_SEED, VALIDATION_SEED
from wass_env.errors import WassError
from wass_env.limits import MAX_COUNT

__all__ = [
    "TEACHER_MODES",
    "AblationConfig",
    "AblationVariant",
    "ConfigValueError",
    "EnvConfig",
    "EvalConfig",
    "ImitationConfig",
    "LoopConfig",
    "MaskablePPOConfig",
    "RagTeacherConfig",
    "TrainConfig",
    "check_values",
    "register_configs",
]

#: The teacher's reward modes (``teacher.teacher.REWARD_MODES``; agents does not import teacher).
TEACHER_MODES: tuple[str, ...] = ("eq3", "history", "potential")
#: Largest seed: NumPy's legacy global seeding, which SB3 uses, takes ``[0, 2**32 - 1]``.
MAX_SEED = 2**32 - 1
#: Largest step count accepted (SB3 counts timesteps in 64-bit integers).
MAX_STEPS = 2**62
#: Widest hidden layer accepted (a 65,536 x 65,536 float32 layer already takes 16 GiB).
MAX_LAYER_WIDTH = 65_536


class ConfigValueError(WassError):
    """A config value of the right type but out of range (the message names field and value)."""


@dataclass
class MaskablePPOConfig:
    """``agent=maskable_ppo``: :class:`agents.ppo.MaskablePPOAgent` and its MaskablePPO arguments.

    The defaults of the fields the YAML file does not set are sb3-contrib's own.

    Attributes:
        _target_: The agent class.
        policy: node_scoring (one network scores every node) or an SB3 policy name.
        net_arch: Hidden layer widths.
        device: Torch device (cpu is fastest for these small networks).
        learning_rate: Adam learning rate.
        n_steps: Steps per env per rollout.
        batch_size: Minibatch size.
        n_epochs: Passes over each rollout.
        gamma: Discount factor.
        gae_lambda: GAE lambda.
        clip_range: PPO clipping range.
        ent_coef: Entropy bonus coefficient.
        vf_coef: Value loss coefficient.
        max_grad_norm: Gradient clipping norm.
        target_kl: Stop an update's epochs early past this KL divergence (null: never).
        temperature: node_scoring only: the logits are divided by it (sampling, PPO's ratios and
            entropy); the greedy plan does not change.
    """

    _target_: str = "agents.ppo.MaskablePPOAgent"
    policy: str = "node_scoring"
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    device: str = "cpu"
    learning_rate: float = 3e-4
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    deterministic: bool = True  # act greedily when used as a scheduler
    features_extractor_kwargs: dict[str, Any] = field(default_factory=dict)  # agents.policies
    temperature: float = 1.0  # node_scoring: PPO samples logits / temperature (greedy unchanged)


@dataclass
class RagTeacherConfig:
    """``teacher=rag``: the arguments of ``teacher.wrapper.rag_wrapper`` (see its docstring).

    Attributes:
        enabled: Wrap the env with the teacher.
        _target_: The wrapper factory, called as factory(env, **the other keys).
        kb: Knowledge base re-keyed by the model (written by wass train-predictor).
        model: Trained teacher model (written by wass train-predictor).
        lam: lambda: weight of R_RAG in the reward (0: DRL without RAG).
        mode: eq3 (the paper's eq. 3, never positive), history or potential.
        k: Neighbours retrieved (null: the model's own K).
        reference: Continuation policy the predictor assumes (null: the base's mixture).
        index: Retrieval index (numpy, flat: exact; hnsw, ivf: approximate).
        gamma: Discount of potential-based shaping (null: the agent's gamma).
    """

    enabled: bool = True
    _target_: str = "teacher.wrapper.rag_wrapper"
    kb: str = "runs/teacher/kb.wkb"
    model: str = "runs/teacher/model.wtm"
    lam: float = 0.1
    mode: str = "eq3"
    k: int | None = None
    reference: str | None = "heft"
    index: str | None = "hnsw"
    gamma: float | None = None


@dataclass
class EnvConfig:
    """``WassSchedEnv`` arguments besides workload and cluster (see its docstring).

    Attributes:
        insertion: Insertion policy of the plan builder (a task may start in an idle gap).
        task_order: Order of the decisions: rank (HEFT's upward rank) or fifo (file order).
        noise: Sigma of the lognormal runtime noise when the plan is executed.
        max_nodes: Action space size (null: the largest cluster of the config).
        illegal_action: What a masked action does: fallback (the lowest-index feasible node,
            reward term "illegal" -1) or raise.
        reward_weights: Weights of the named reward terms (makespan, progress, illegal).
    """

    insertion: bool = True
    task_order: str = "rank"
    noise: float = 0.0
    max_nodes: int | None = None
    illegal_action: str = "fallback"
    reference: str | None = "heft"  # baseline planned at episode end for sched/ratio_to_<name>
    reward_weights: dict[str, float] = field(
        default_factory=lambda: {"makespan": 1.0, "progress": 0.0, "illegal": 1.0}
    )
    reward_scale: str = "lower_bound"  # or "reference": rewards relative to its makespan
    lookahead: bool = False  # per-node lookahead features and instance context
    plan_hints: bool = False  # with lookahead: HEFT's and single_node's makespans in the context
    # With plan_hints: the hints describe the shortest of HEFT with lookahead's plan and these
    # schedulers' (wass_env.envs.hints.plan_portfolio); None: the single_node plan.
    plan_hint_candidates: list[str] | None = None
    # With plan_hint_candidates: pilot passes that shorten the winning plan (wass_env.sim.improve)
    plan_hint_improve: int = 0
    # With plan_hint_improve: also the passes that move a task with its followers
    plan_hint_follow: bool = False
    graph_window: int = 0  # > 0: the DAG neighbourhood of the current task for a graph network


@dataclass
class LoopConfig:
    """The training loop.

    Attributes:
        total_timesteps: Environment steps of PPO training (over all envs).
        n_envs: Parallel training environments.
        progress_bar: Show progress bars (training, imitation, evaluation).
    """

    total_timesteps: int = 60_000
    n_envs: int = 2
    subproc: bool = False  # SubprocVecEnv instead of DummyVecEnv
    torch_threads: int = 1  # 1 is fastest for these small networks on a few cores
    progress_bar: bool = True
    # Validation during training, on episodes from eval.validation_seed (no training seed):
    # MaskableEvalCallback every N env steps (0: off), the best model kept in best/.
    eval_freq: int = 10_000
    eval_episodes: int = 5  # validation episodes per evaluation
    checkpoint_freq: int = 20_000  # a checkpoint in checkpoints/ every N env steps (0: off)
    gantt_freq: int = 20_000  # a Gantt image of a validation episode every N env steps (0: off)
    resume: str | None = None  # continue this checkpoint up to total_timesteps (no imitation)


@dataclass
class ImitationConfig:
    """Behaviour cloning of the pilot expert, then DAgger, before any PPO steps
    (:func:`agents.imitation.run_imitation`).

    Attributes:
        batch_size: Minibatch size of behaviour cloning.
        lr: Learning rate of behaviour cloning.
    """

    episodes: int = 0  # expert episodes (0: no imitation stage)
    dagger_rounds: int = 0  # rounds where the learner acts and the expert relabels
    dagger_episodes: int = 0  # episodes per round
    epochs: int = 15  # passes over the expert data
    dagger_epochs: int = 8  # passes over all data after each round
    batch_size: int = 256
    lr: float = 1e-3
    # The expert (agents.imitation.make_expert), chosen by the config group
    # conf/imitation/expert/ (heuristic, plans, pilot): imitation/expert=plans. Empty here so
    # that an option's keys are the only ones (a merge would keep another kind's settings).
    expert: dict[str, Any] = field(default_factory=dict)
    n_jobs: int = 1  # collection worker processes
    label_fraction: float = 1.0  # share of the learner's states the expert labels (DAgger)
    cache: str | None = None  # directory where expert episodes are kept and reused
    # > 0: behaviour cloning also pays this times the variance of the learned node scores over
    # the feasible nodes, so the policy departs from its prior only where the data insist
    # (needs a policy with a prior, agents.policies.NodeScoringPolicy with lookahead).
    residual_coef: float = 0.0


@dataclass
class EvalConfig:
    """Evaluation after training, on fixed instances no training run ever draws.

    The seeds are the same for every training seed and every variant (paired), from the ranges
    of :mod:`agents.evaluation.seeds`.

    Attributes:
        episodes: Fixed evaluation instances (the same for every run: paired).
        noise: Sigma of the runtime noise at evaluation.
    """

    episodes: int = 30
    seed: int = EVAL_SEED  # instance i is seed + i (evaluation range: >= 1e9)
    validation_seed: int = VALIDATION_SEED  # the evaluation callback during training
    noise: float = 0.0
    # Scheduler specs (names or mappings, as in scripts/evaluate.py's schedulers list).
    baselines: list[Any] = field(
        default_factory=lambda: [
            "random",
            "slurm",
            "data_locality",
            "single_node",
            "heft",
            "heft_lookahead",
            "best_heuristic",
        ]
    )
    reference: str = "heft"  # makespan ratios are reported against this scheduler
    workload: Any = None  # evaluation workload spec (None: the training workload)
    cluster: Any = None  # evaluation cluster spec (None: the training cluster)


@dataclass
class TrainConfig:
    """``wass train`` (``conf/train.yaml``; ``scripts/train.py``).

    Attributes:
        seed: Seed of the training envs, the model and the imitation stage (same seed, same run).
        cluster: Cluster spec or preset (group cluster/); a list or mix: one drawn per episode.
        workload: Workload spec (group workload/): what training episodes are drawn from.
        agent: The agent to train or run (group agent/): a _target_ and its arguments.
        teacher: The reward wrapper (group teacher/): none, or rag (lambda * R_RAG).
        env: WassSchedEnv settings besides workload and cluster.
        train: The training loop: steps, envs, validation, checkpoints, resume.
        imitation: Behaviour cloning and DAgger before PPO (off with episodes=0).
        eval: The final evaluation against the baselines on fixed instances.
    """

    seed: int = 0
    cluster: Any = MISSING
    workload: Any = MISSING
    agent: Any = MISSING
    teacher: Any = None
    env: EnvConfig = field(default_factory=EnvConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class AblationVariant:
    """One variant of the ablation.

    Attributes:
        label: Its name in the table.
        overrides: The ``train`` overrides that define it (``teacher=rag``, ``teacher.lam=1``).
    """

    label: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class AblationConfig:
    """``wass ablation`` (``conf/ablation.yaml``, :mod:`agents.ablation`).

    Attributes:
        seeds: Training seeds per variant (``0 .. seeds - 1``).
        steps: PPO steps per run (``train.total_timesteps``).
        episodes: Unseen evaluation episodes per run (``eval.episodes``).
        variants: Variant id -> its label and ``train`` overrides.
        run: The variant ids to run, in table order (null: every variant).
        overrides: ``train`` overrides applied to every variant (``[workload=fan_out]``).
    """

    seeds: int = 3
    steps: int = 30_000
    episodes: int = 10
    variants: dict[str, AblationVariant] = field(default_factory=dict)
    run: list[str] | None = None
    overrides: list[str] = field(default_factory=list)


def register_configs() -> None:
    """Register the schemas (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="ablation_schema", node=AblationConfig)
    cs.store(group="agent", name="maskable_ppo_schema", node=MaskablePPOConfig)
    cs.store(group="teacher", name="rag_schema", node=RagTeacherConfig)


def _number(v: Any) -> bool:
    """A finite real number (a Python int of any size is one; converting it to float may not be)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


def _rule(ok: Callable[[Any], bool], want: str) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _number(v) and bool(ok(v))), want


def _count(low: int, high: int = MAX_COUNT) -> tuple[Callable[[Any], bool], str]:
    return _rule(lambda v: v == int(v) and low <= v <= high, f"an integer in [{low}, {high}]")


#: Range rules of the fields of the schemas above: field -> (test, what it must be).
_TRAIN_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _count(0, MAX_SEED),
    "train.total_timesteps": _count(0, MAX_STEPS),
    "train.n_envs": _count(1, 1024),
    "train.torch_threads": _count(1, 1024),
    "train.eval_freq": _count(0, MAX_STEPS),
    "train.eval_episodes": _count(1),
    "train.checkpoint_freq": _count(0, MAX_STEPS),
    "train.gantt_freq": _count(0, MAX_STEPS),
    "eval.episodes": _count(1),
    "eval.seed": _count(0, MAX_SEED),
    "eval.validation_seed": _count(0, MAX_SEED),
    "eval.noise": _rule(lambda v: v >= 0, "a finite number >= 0"),
    "env.noise": _rule(lambda v: v >= 0, "a finite number >= 0"),
}
_IMITATION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "imitation.episodes": _count(0),
    "imitation.dagger_rounds": _count(0),
    "imitation.dagger_episodes": _count(0),
    "imitation.epochs": _count(0),
    "imitation.dagger_epochs": _count(0),
    "imitation.batch_size": _count(1),
    "imitation.lr": _rule(lambda v: v > 0, "a finite number > 0"),
    "imitation.label_fraction": _rule(lambda v: 0 < v <= 1, "in (0, 1]"),
    "imitation.residual_coef": _rule(lambda v: v >= 0, "a finite number >= 0"),
    "imitation.n_jobs": _count(1, 1024),
}
_PPO_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": _rule(lambda v: v > 0, "a finite number > 0"),
    "n_steps": _count(1),
    "batch_size": _rule(
        lambda v: 2 <= v <= MAX_COUNT,
        f"an integer in [2, {MAX_COUNT}] (MaskablePPO normalises advantages per batch)",
    ),
    "n_epochs": _count(1),
    "gamma": _rule(lambda v: 0 <= v <= 1, "in [0, 1]"),
    "gae_lambda": _rule(lambda v: 0 <= v <= 1, "in [0, 1]"),
    "clip_range": _rule(lambda v: v > 0, "a finite number > 0"),
    "ent_coef": _rule(lambda v: True, "a finite number"),
    "vf_coef": _rule(lambda v: v >= 0, "a finite number >= 0"),
    "max_grad_norm": _rule(lambda v: v > 0, "a finite number > 0"),
    "target_kl": _rule(lambda v: v > 0, "a finite number > 0 or null"),
}
_TEACHER_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lam": _rule(lambda v: True, "a finite number"),
    "k": _rule(lambda v: 0 <= v <= MAX_COUNT, f"an integer in [0, {MAX_COUNT}] or null"),
    "gamma": _rule(lambda v: 0 <= v <= 1, "in [0, 1] or null"),
}
_INDEX_KINDS = ("auto", "numpy", "flat", "hnsw", "ivf")  # teacher.retrieval.INDEX_KINDS + auto


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        if node is None or part not in node:
            return MISSING
        node = node[part]
    return node


def _apply(rules: Mapping[str, tuple[Callable[[Any], bool], str]], cfg: Any, prefix: str) -> None:
    for name, (ok, want) in rules.items():
        value = _get(cfg, name)
        if value is MISSING or (value is None and "null" in want):
            continue
        if not ok(value):
            raise ConfigValueError(f"{prefix}{name}: must be {want}, got {value!r}")


def check_values(cfg: Any) -> None:
    """Check the ranges of a composed ``train`` config's typed fields.

    Covers the seed, the loop, imitation, the evaluation, the MaskablePPO hyperparameters (when
    ``agent=maskable_ppo``) and the teacher's settings (when it is enabled).

    Raises:
        ConfigValueError: naming the first field out of range and its value.
    """
    _apply(_TRAIN_RULES, cfg, "")
    _apply(_IMITATION_RULES, cfg, "")
    if int(cfg.train.total_timesteps) == 0 and int(cfg.imitation.episodes) == 0:
        agent = cfg.get("agent")
        if agent is not None and agent.get("_target_") == MaskablePPOConfig._target_:
            raise ConfigValueError(
                "train.total_timesteps: 0 trains nothing unless imitation.episodes > 0, got 0 "
                "and imitation.episodes=0"
            )
    agent = cfg.get("agent")
    if agent is not None and agent.get("_target_") == MaskablePPOConfig._target_:
        _apply(_PPO_RULES, agent, "agent.")
        n_envs = int(cfg.train.n_envs)
        if int(agent.n_steps) * n_envs < 2:
            raise ConfigValueError(
                f"agent.n_steps: n_steps x train.n_envs must be >= 2 (one rollout is normalised "
                f"as a batch), got {agent.n_steps!r} x {n_envs}"
            )
        arch = list(agent.net_arch)
        bad = [w for w in arch if not (_number(w) and 1 <= w <= MAX_LAYER_WIDTH)]
        if not arch or bad:
            raise ConfigValueError(
                f"agent.net_arch: must be a non-empty list of layer widths in "
                f"[1, {MAX_LAYER_WIDTH}], got {arch!r}"
            )
    teacher = cfg.get("teacher")
    if teacher is not None and teacher.get("enabled", False):
        _apply(_TEACHER_RULES, teacher, "teacher.")
        if int(cfg.train.total_timesteps) == 0:
            raise ConfigValueError(
                "train.total_timesteps: the teacher shapes the reward of MaskablePPO steps, and "
                "0 steps would leave it unused; got 0 with teacher enabled (set e.g. "
                "train.total_timesteps=30000)"
            )
        mode = teacher.get("mode", "eq3")
        if mode not in TEACHER_MODES:
            raise ConfigValueError(f"teacher.mode: must be one of {TEACHER_MODES}, got {mode!r}")
        index = teacher.get("index")
        if index is not None and index not in _INDEX_KINDS:
            raise ConfigValueError(
                f"teacher.index: must be one of {_INDEX_KINDS} or null, got {index!r}"
            )
