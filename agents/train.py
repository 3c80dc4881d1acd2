"""The training pipeline behind ``scripts/train.py``: seed, envs, model, learn, save, evaluate.

:func:`run_training` takes a composed config (``conf/train.yaml``) and an output directory, so
tests can call it through Hydra's ``compose`` without the command line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.config import ConfigValueError, check_values
from agents.evaluation import (
    Column,
    EvaluationError,
    Grid,
    SchedulerEntry,
    eval_seeds,
    markdown_table,
    parse_scheduler,
    run_grid,
    summarize,
    write_csv,
    write_text,
)
from agents.evaluation.seeds import seed_range_problem
from agents.evaluation.tables import GB, ratio_columns
from wass_env.cli import run_cli
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.cluster import ClusterError, expand_cluster_spec

__all__ = [
    "TrainConfigError",
    "check_config",
    "env_kwargs_from_config",
    "evaluate_after_training",
    "link_latest",
    "main",
    "run_training",
    "teacher_settings",
]


log = logging.getLogger(__name__)


class TrainConfigError(WassError):
    """An invalid value in the train config (the message names the field and value)."""


def check_config(cfg: DictConfig) -> None:
    """Reject config values that would fail late or silently mean something else.

    Raises:
        TrainConfigError: naming the field and its value.
    """
    try:
        check_values(cfg)  # ranges of the typed fields: seed, loop, agent, teacher
    except ConfigValueError as exc:
        raise TrainConfigError(str(exc)) from None
    # Disjoint seed ranges (agents.evaluation.seeds): no training stream starts from an
    # evaluation or validation seed.
    for field, kind, first, count in (
        ("seed", "train", int(cfg.seed), int(cfg.train.n_envs)),
        ("eval.seed", "eval", int(cfg.eval.seed), int(cfg.eval.episodes)),
        ("eval.validation_seed", "validation", int(cfg.eval.validation_seed), 1),
    ):
        problem = seed_range_problem(kind, first, count)
        if problem:
            raise TrainConfigError(f"{field}: {problem}, got {first!r}")
    from hydra.utils import get_class

    try:
        baselines = _baseline_entries(cfg)
    except EvaluationError as exc:
        raise TrainConfigError(str(exc)) from None
    try:
        agent_cls = get_class(cfg.agent._target_)
    except Exception:  # a bad _target_ is reported when the agent is instantiated
        agent_cls = None
    agent_name = str(getattr(agent_cls, "name", ""))
    known = {e.name for e in baselines} | {agent_name}
    if cfg.eval.reference is not None and cfg.eval.reference not in known:
        raise TrainConfigError(
            f"eval.reference: {cfg.eval.reference!r} is not among the evaluated schedulers "
            f"{sorted(known - {''})}"
        )
    resume = cfg.train.get("resume")
    if resume is not None and not Path(str(resume)).is_file():
        raise TrainConfigError(f"train.resume: no checkpoint file {str(resume)!r}")
    from wass_env.envs.wass_sched import WassSchedEnv

    WassSchedEnv(**env_kwargs_from_config(cfg))  # env, workload and cluster settings, in seconds
    fx = _plain(cfg.agent.get("features_extractor_kwargs")) or {}
    prior = fx.get("prior")
    if prior is not None:
        from wass_env.envs.lookahead import lookahead_column

        try:
            lookahead_column(prior)
        except ValueError as exc:
            raise TrainConfigError(f"agent.features_extractor_kwargs.prior: {exc}") from None
    if int(cfg.imitation.episodes) > 0 and getattr(agent_cls, "trainable", False):
        # Only a trained agent imitates; the penalty acts in cloning (agents.imitation.bc_train).
        if float(cfg.imitation.residual_coef) > 0 and (prior is None or not cfg.env.lookahead):
            raise TrainConfigError(
                f"imitation.residual_coef: {cfg.imitation.residual_coef} keeps the policy near "
                "its prior, and there is none (needs agent.features_extractor_kwargs.prior and "
                "env.lookahead=true)"
            )
        from agents.imitation import make_expert

        spec = _plain(cfg.imitation.expert)
        hinted = _plain(cfg.env.get("plan_hint_candidates"))
        if isinstance(spec, dict) and spec.get("plans") and spec.get("kind") == "portfolio":
            # The expert must compare the plans the hints describe.
            if not cfg.env.plan_hints or hinted is None:
                raise TrainConfigError(
                    "imitation/expert=plan_portfolio follows the plan hints' portfolio: it needs "
                    "env.plan_hints=true and env.plan_hint_candidates (e.g. "
                    "[single_node,heft,peft,cpop,data_locality]), got "
                    f"env.plan_hints={cfg.env.plan_hints}, env.plan_hint_candidates={hinted}"
                )
            if list(spec.get("candidates") or []) != list(hinted):
                raise TrainConfigError(
                    f"imitation.expert.candidates: {spec.get('candidates')} must be the plans "
                    f"the hints describe, env.plan_hint_candidates={hinted}"
                )
        make_expert(spec)  # the expert's settings
    _check_eval_instances(cfg)


def _check_eval_instances(cfg: DictConfig) -> None:
    """``eval.workload`` and ``eval.cluster``, when set, must be valid, and the evaluation
    clusters no larger than the training ones (the policy's action space)."""
    from wass_env.sim.cluster import cluster_from_spec
    from wass_env.workloads import make_sampler

    workload = _plain(cfg.eval.get("workload"))
    if workload is not None:
        try:
            make_sampler(workload)
        except WassError as exc:
            raise TrainConfigError(f"eval.workload: {exc}") from None
    cluster = _plain(cfg.eval.get("cluster"))
    if cluster is None:
        return
    try:
        evals = expand_cluster_spec(cluster)
        biggest = max(cluster_from_spec(c).n_nodes for c in evals)
        train = expand_cluster_spec(_plain(cfg.cluster))
        limit = cfg.env.get("max_nodes") or max(cluster_from_spec(c).n_nodes for c in train)
    except ClusterError as exc:
        raise TrainConfigError(f"eval.cluster: {exc}") from None
    if biggest > int(limit):
        raise TrainConfigError(
            f"eval.cluster: has clusters of {biggest} nodes, more than the policy's "
            f"{int(limit)} (env.max_nodes, or the largest training cluster)"
        )


def _baseline_entries(cfg: DictConfig) -> list[SchedulerEntry]:
    return [
        parse_scheduler(_plain(b), f"eval.baselines[{i}]") for i, b in enumerate(cfg.eval.baselines)
    ]


def env_kwargs_from_config(cfg: DictConfig) -> dict[str, Any]:
    """Plain ``WassSchedEnv`` keyword arguments from a train/evaluate config.

    A cluster spec that stands for several clusters (``{"mix": [...]}``, lists of ``kind`` or
    ``n_nodes``: :func:`~wass_env.sim.cluster.expand_cluster_spec`) becomes the list of them,
    one drawn per episode.

    Raises:
        TrainConfigError: on an empty cluster mix.
    """
    env = OmegaConf.to_container(cfg.env, resolve=True)
    assert isinstance(env, dict)
    if not env.get("plan_hints"):
        # The candidates only say what the hints describe: env.plan_hints=false turns both off.
        env["plan_hint_candidates"] = None
    if env.get("plan_hint_candidates") is None:
        env.pop("plan_hint_improve", None)  # it improves the candidates' plan: none to improve
        env.pop("plan_hint_follow", None)
    try:
        clusters = expand_cluster_spec(_plain(cfg.cluster))
    except ClusterError as exc:
        raise TrainConfigError(f"cluster: {exc}") from None
    return {
        "workload": _plain(cfg.workload),
        "cluster": clusters[0] if len(clusters) == 1 else clusters,
        **env,
    }


def _plain(x: Any) -> Any:
    if OmegaConf.is_config(x):
        return OmegaConf.to_container(x, resolve=True)
    return x


def teacher_settings(cfg: DictConfig) -> dict[str, Any] | None:
    """The ``teacher`` group as an env wrapper spec (``_target_`` and its arguments), or None
    when it is off.

    Raises:
        FileNotFoundError: naming the missing knowledge base or model and how to make them.
    """
    t = _plain(cfg.get("teacher"))
    if not t or not t.get("enabled", False):
        return None
    t = dict(t)
    t.pop("enabled")
    for key in ("kb", "model"):
        path = t.get(key)
        if not path or not Path(str(path)).exists():
            raise FileNotFoundError(
                f"teacher.{key}: {path!r} does not exist; build it first: python "
                "scripts/build_kb.py && python scripts/train_predictor.py (or set "
                f"teacher.{key}=<path>)"
            )
    if t.get("gamma") is None:  # potential-based shaping must use the agent's discount
        t["gamma"] = float(cfg.agent.get("gamma", 0.99))
    return {k: v for k, v in t.items() if v is not None or k in ("reference",)}


def link_latest(out: Path) -> Path | None:
    """Point ``<parent>/latest`` at a finished run directory under ``runs/train/`` (atomically).

    ``make run`` then leaves ``runs/train/latest/model.zip`` for the commands that follow it.
    Other output directories (sweeps, tests) are left alone.
    """
    out = Path(out).resolve()
    if out.parent.name != "train":
        return None
    link = out.parent / "latest"
    tmp = out.parent / f".latest.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(out.name)
    os.replace(tmp, link)
    return link


def run_training(
    cfg: DictConfig, out_dir: str | os.PathLike[str], *, quiet: bool = False
) -> dict[str, Any]:
    """Train the configured agent (if trainable), then evaluate it against baselines.

    Args:
        cfg: A composed ``train`` config.
        out_dir: Where TensorBoard logs, the checkpoint and the result tables go.
        quiet: Print nothing (the tables are still written).

    Returns:
        ``{"summary": [...], "rows": [...], "checkpoint": path or None, "out_dir": path,
        "train_episodes": [(timestep, makespan / lower bound), ...]}``.
    """
    import torch
    from hydra.utils import instantiate
    from stable_baselines3.common.utils import set_random_seed

    check_config(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.seed)
    set_random_seed(seed)
    torch.set_num_threads(int(cfg.train.torch_threads))
    env_kwargs = env_kwargs_from_config(cfg)

    agent: Scheduler = instantiate(cfg.agent, _convert_="all")
    checkpoint: Path | None = None
    train_seconds = 0.0
    curve: list[tuple[int, float]] = []
    tb_run: str | None = None
    tb_step = 0
    if getattr(agent, "trainable", False):
        checkpoint, train_seconds, curve = _train(agent, cfg, env_kwargs, out)
        link_latest(out)
        model: Any = getattr(agent, "model", None)
        sb3_logger = getattr(model, "_logger", None)  # set by learn(); None before
        if model is not None and sb3_logger is not None and sb3_logger.get_dir():
            tb_run, tb_step = sb3_logger.get_dir(), int(model.num_timesteps)

    summary, rows, table = evaluate_after_training(agent, cfg, env_kwargs)
    write_csv(rows, out / "results.csv")
    write_text(table + "\n", out / "results.md")
    seeds = eval_seeds(int(cfg.eval.episodes), int(cfg.eval.seed))
    caption = (
        f"Evaluation on {len(seeds)} fixed instances no training run draws "
        f"(seeds {seeds[0]}..{seeds[-1]}); makespan in seconds, mean ± 95% CI; ratios "
        "paired per instance, (wins/ties/losses):"
    )
    if tb_run is not None:  # the final table next to the run's curves (TensorBoard's Text tab)
        from agents.callbacks import write_text_summary

        write_text_summary(tb_run, "eval/final_table", f"{caption}\n\n{table}", tb_step)
    if not quiet:
        log.info("%s\n\n%s\n", caption, table)
        if train_seconds:
            stages = []
            if int(cfg.imitation.episodes) > 0:
                stages.append(
                    f"imitation of {_expert_name(cfg.imitation.expert)} "
                    f"({cfg.imitation.episodes} expert episodes, {cfg.imitation.dagger_rounds} "
                    f"DAgger rounds of {cfg.imitation.dagger_episodes})"
                )
            if int(cfg.train.total_timesteps) > 0:
                stages.append(f"{cfg.train.total_timesteps} MaskablePPO steps")
            log.info("Trained (%s) in %.0f s.", " then ".join(stages), train_seconds)
        log.info("TensorBoard:  tensorboard --logdir %s", out / "tb")
        if checkpoint is not None:
            log.info("Checkpoint:   %s", checkpoint)
        log.info("Results:      %s, %s", out / "results.csv", out / "results.md")
    return {
        "summary": summary,
        "rows": rows,
        "checkpoint": checkpoint,
        "out_dir": out,
        "train_episodes": curve,
    }


def evaluate_after_training(
    agent: Scheduler, cfg: DictConfig, env_kwargs: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The agent and ``eval.baselines`` on the fixed evaluation instances (``eval.episodes``
    seeds from ``eval.seed``, the same for every training run) of the training distribution,
    or of ``eval.workload`` / ``eval.cluster`` when set (e.g. the whole mix, families held out
    of training included).

    Returns:
        ``(summary, rows, markdown table)``.

    Raises:
        agents.evaluation.EvaluationError: on a bad baseline or workload (:func:`check_config`
            checks both first, naming them as the train config does).
    """
    workload = _plain(cfg.eval.get("workload"))
    cluster = _plain(cfg.eval.get("cluster"))
    grid = Grid(
        workloads={"train": env_kwargs["workload"] if workload is None else workload},
        clusters={"train": env_kwargs["cluster"] if cluster is None else cluster},
        seeds=eval_seeds(int(cfg.eval.episodes), int(cfg.eval.seed)),
        schedulers=[SchedulerEntry(agent.name, agent, field="agent")]
        + [e for e in _baseline_entries(cfg) if e.name != agent.name],
        reference=str(cfg.eval.reference),
        noise=float(cfg.eval.noise),
        insertion=bool(cfg.env.insertion),
    )
    result = run_grid(grid, progress=bool(cfg.train.progress_bar))
    summary = summarize(result.rows, by=("scheduler",), order=result.names, compare=grid.compare)
    have = {k for e in summary for k in e}
    columns = [
        Column("scheduler"),
        Column("episodes"),
        Column("makespan", "makespan [s]"),
        *[c for c in ratio_columns(grid.reference, grid.compare) if c.key in have],
        Column("ratio_to_lower_bound", "÷ lower bound", 3),
        Column("mean_wait", "mean wait [s]"),
        Column("utilization", decimals=3),
        Column("cross_node_bytes", "cross-node [GB]", scale=GB),
    ]
    return summary, result.rows, markdown_table(summary, columns)


def main(cfg: DictConfig, out_dir: str | os.PathLike[str]) -> int:
    """:func:`run_training` behind the command-line error boundary (:func:`wass_env.cli.run_cli`).

    Returns:
        0 on success, 2 on bad input (the message names the field and its value).
    """
    return run_cli(run_training, cfg, out_dir)


def _expert_name(spec: Any) -> str:
    """The expert's name in the log: its scheduler, or the portfolio it compares."""
    if spec.get("base"):
        return str(spec.base)
    if spec.get("kind") == "portfolio":
        return "the plan portfolio" if spec.get("plans") else "the portfolio"
    return "the expert"


def _train(
    agent: Any, cfg: DictConfig, env_kwargs: dict[str, Any], out: Path
) -> tuple[Path, float, list[tuple[int, float]]]:
    from stable_baselines3.common.callbacks import CallbackList

    from agents.ppo import SchedMetricsCallback, make_vec

    seed = int(cfg.seed)
    if env_kwargs.get("max_nodes") is None:
        # Fix the action space size now so the saved policy knows it.
        from wass_env.sim.cluster import cluster_from_spec

        specs = env_kwargs["cluster"]
        specs = specs if isinstance(specs, list) else [specs]
        env_kwargs["max_nodes"] = max(cluster_from_spec(c).n_nodes for c in specs)
    agent.env_kwargs = env_kwargs
    if getattr(agent, "seed", None) is None:
        agent.seed = seed
    teacher = teacher_settings(cfg)
    venv = make_vec(
        env_kwargs,
        int(cfg.train.n_envs),
        seed,
        subproc=bool(cfg.train.subproc),
        wrappers=[teacher] if teacher else (),
    )
    sched = SchedMetricsCallback(reference_name=str(env_kwargs.get("reference") or "reference"))
    callbacks: list[Any] = [sched, *_callbacks(cfg, env_kwargs, out)]
    resume = cfg.train.get("resume")
    done = 0
    if resume is not None:
        done = _resume(agent, str(resume), venv)
        log.info("Resuming %s at step %d", resume, done)
    t0 = time.perf_counter()
    try:
        if int(cfg.imitation.episodes) > 0 and resume is None:
            _imitate(agent, cfg, env_kwargs, venv, out)
        steps = int(cfg.train.total_timesteps) - done
        if steps > 0:
            agent.learn(
                venv,
                steps,
                callback=CallbackList(callbacks),
                tensorboard_log=str(out / "tb"),
                progress_bar=bool(cfg.train.progress_bar),
                reset_num_timesteps=resume is None,
            )
    finally:
        venv.close()
    best = out / "best" / "best_model.zip"
    if best.exists():  # the validation callback's best model, loadable as a scheduler
        from agents.callbacks import write_settings

        write_settings(best, env_kwargs)
    elapsed = time.perf_counter() - t0
    if sched.curve:  # the learning curve on the training distribution, one row per episode
        write_csv(sched.curve, out / "curve.csv")
    return agent.save(out / "model.zip"), elapsed, sched.episodes


def _callbacks(cfg: DictConfig, env_kwargs: dict[str, Any], out: Path) -> list[Any]:
    """Validation with the best model kept, periodic checkpoints, Gantt images, HParams."""
    from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback

    from agents.callbacks import (
        GanttCallback,
        HParamsCallback,
        SidecarCheckpointCallback,
        flat_hparams,
    )
    from agents.ppo import make_vec

    loop = cfg.train
    n_envs = int(loop.n_envs)
    out_list: list[Any] = []
    if int(loop.eval_freq) > 0:
        out_list.append(
            MaskableEvalCallback(
                make_vec(env_kwargs, 1, int(cfg.eval.validation_seed)),
                n_eval_episodes=int(loop.eval_episodes),
                eval_freq=max(int(loop.eval_freq) // n_envs, 1),  # counted per env
                best_model_save_path=str(out / "best"),
                log_path=str(out / "eval"),
                deterministic=True,
                verbose=0,
            )
        )
    if int(loop.checkpoint_freq) > 0:
        out_list.append(
            SidecarCheckpointCallback(
                env_kwargs,
                save_freq=max(int(loop.checkpoint_freq) // n_envs, 1),
                save_path=str(out / "checkpoints"),
                name_prefix="model",
            )
        )
    if int(loop.gantt_freq) > 0:
        out_list.append(
            GanttCallback(
                env_kwargs,
                seed=int(cfg.eval.validation_seed),
                freq=int(loop.gantt_freq),
                reference=str(cfg.eval.reference),
            )
        )
    keep = {k: cfg[k] for k in ("seed", "agent", "env", "train", "imitation", "teacher")}
    tree = OmegaConf.to_container(OmegaConf.create(keep), resolve=True)
    assert isinstance(tree, dict)
    hparams = flat_hparams({str(k): v for k, v in tree.items()})
    hparams.update(flat_hparams({"cluster": _plain(cfg.cluster), "workload": _plain(cfg.workload)}))
    out_list.append(HParamsCallback(hparams))
    return out_list


#: MaskablePPO arguments a resumed run takes from its own config (the network's shape and the
#: policy come from the checkpoint).
RESUME_SETTINGS = (
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
)


def _resume(agent: Any, path: str, venv: Any) -> int:
    """Load checkpoint ``path`` into ``agent`` to continue training on ``venv`` with the run's
    PPO settings (:data:`RESUME_SETTINGS`) and ``agent.temperature``; returns the steps it has
    already trained.

    Raises:
        TrainConfigError: if it does not fit the configured env (observation or action space).
    """
    from sb3_contrib import MaskablePPO

    # The run's PPO settings apply, not the checkpoint's (e.g. a smaller learning rate to
    # fine-tune a cloned policy); SB3 rebuilds the schedules and the rollout buffer from them.
    settings = {k: v for k, v in getattr(agent, "ppo_kwargs", {}).items() if k in RESUME_SETTINGS}
    try:
        agent.model = MaskablePPO.load(
            path, env=venv, device=getattr(agent, "device", "cpu"), **settings
        )
    except (ValueError, KeyError) as exc:  # SB3: "Observation spaces do not match", ...
        raise TrainConfigError(f"train.resume={path!r}: cannot continue it here: {exc}") from None
    # The run's agent.temperature applies to the resumed policy (and, through the model's
    # policy_kwargs, to what it saves).
    from agents.policies import NodeScoringPolicy

    temperature = float(getattr(agent, "temperature", 1.0))
    if isinstance(agent.model.policy, NodeScoringPolicy):
        agent.model.policy.temperature = temperature
        agent.model.policy_kwargs["temperature"] = temperature
    elif temperature != 1.0:
        raise TrainConfigError(
            f"agent.temperature={temperature}: the checkpoint {path!r} is not a node_scoring policy"
        )
    return int(agent.model.num_timesteps)


#: Imitation episode seeds: ``IMITATION_SEED_BASE * (seed + 1) + i`` (round r: ``+ r * 10^5``),
#: disjoint from the PPO environments' streams and from the evaluation seeds.
IMITATION_SEED_BASE = 10_000_000


def _imitate(agent: Any, cfg: DictConfig, env_kwargs: dict[str, Any], venv: Any, out: Path) -> None:
    from stable_baselines3.common.logger import configure

    from agents.imitation import run_imitation

    im = cfg.imitation
    seed = int(cfg.seed)
    base = IMITATION_SEED_BASE * (seed + 1)
    agent.build(venv, tensorboard_log=str(out / "tb"))
    logger = configure(str(out / "tb" / "imitation"), ["tensorboard"])
    episodes = int(im.dagger_episodes)
    # Leave-one-family-out: the expert episodes of the whole mix are shared by every fold
    # (cached), each fold drops its held-out families from them.
    workload = env_kwargs["workload"]
    exclude: list[str] = []
    expert_env = env_kwargs
    if isinstance(workload, dict) and workload.get("exclude"):
        ex = workload["exclude"]
        exclude = [str(ex)] if isinstance(ex, str) else [str(e) for e in ex]
        expert_env = {
            **env_kwargs,
            "workload": {k: v for k, v in workload.items() if k != "exclude"},
        }
    summary = run_imitation(
        agent.model,
        env_kwargs,
        seeds=range(base, base + int(im.episodes)),
        dagger_seeds=[
            range(base + r * 100_000, base + r * 100_000 + episodes)
            for r in range(1, int(im.dagger_rounds) + 1)
        ],
        expert=_plain(im.expert),
        epochs=int(im.epochs),
        dagger_epochs=int(im.dagger_epochs),
        batch_size=int(im.batch_size),
        lr=float(im.lr),
        gamma=float(cfg.agent.get("gamma", 0.99)),
        n_jobs=int(im.n_jobs),
        seed=seed,
        label_fraction=float(im.label_fraction),
        residual_coef=float(im.residual_coef),
        cache_dir=None if im.cache is None else str(im.cache),
        expert_env_kwargs=expert_env,
        exclude_families=exclude,
        work_dir=str(out),
        logger=logger,
        log=log.info,
    )
    write_text(json.dumps(summary, indent=2) + "\n", out / "imitation.json")
