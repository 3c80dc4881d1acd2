"""Training callbacks besides the scheduling metrics (:class:`agents.ppo.SchedMetricsCallback`).

* :class:`GanttCallback`: every ``freq`` steps, the current policy plans one fixed validation
  instance; its Gantt chart goes to TensorBoard as the image ``eval/gantt`` (Images tab) and
  its makespan / lower bound and / HEFT as ``eval/gantt_ratio_to_lower_bound`` and
  ``eval/gantt_ratio_to_heft``.
* :class:`HParamsCallback`: the run's hyperparameters in TensorBoard's HParams tab, with the
  metrics that compare sweep jobs (``eval/mean_reward``, ``sched/ratio_to_heft``, ...).
* :class:`SidecarCheckpointCallback`: SB3's ``CheckpointCallback`` that also writes the env
  settings file every checkpoint needs to be loaded as a scheduler (:mod:`agents.sb3_policy`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

from agents.sb3_policy import SB3PolicyScheduler, settings_path
from wass_env.io import atomic_write

__all__ = [
    "HPARAM_METRICS",
    "GanttCallback",
    "HParamsCallback",
    "SidecarCheckpointCallback",
    "flat_hparams",
    "write_settings",
    "write_text_summary",
]

#: Metrics shown against the hyperparameters in TensorBoard's HParams tab.
HPARAM_METRICS: tuple[str, ...] = (
    "eval/mean_reward",
    "eval/gantt_ratio_to_heft",
    "sched/ratio_to_heft",
    "sched/ratio_to_lower_bound",
    "rollout/ep_rew_mean",
)
_TB_ONLY = ("stdout", "log", "json", "csv")


def write_settings(checkpoint: str | os.PathLike[str], env_kwargs: Mapping[str, Any]) -> Path:
    """Write the env settings file of ``checkpoint`` (``<stem>.env_kwargs.json``) atomically."""
    return atomic_write(
        settings_path(checkpoint), json.dumps(dict(env_kwargs), indent=2, default=str)
    )


class SidecarCheckpointCallback(CheckpointCallback):
    """``CheckpointCallback`` (``<save_path>/<name_prefix>_<steps>_steps.zip`` every
    ``save_freq`` calls) that writes each checkpoint's env settings file next to it.

    Args:
        env_kwargs: The training env's settings.
        **kwargs: ``CheckpointCallback``'s arguments.
    """

    def __init__(self, env_kwargs: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.env_kwargs = dict(env_kwargs)

    def _on_step(self) -> bool:
        result = super()._on_step()
        if self.n_calls % self.save_freq == 0:
            write_settings(self._checkpoint_path(extension="zip"), self.env_kwargs)
        return result


class GanttCallback(BaseCallback):
    """Every ``freq`` environment steps, a Gantt chart of the current policy's plan of one fixed
    validation instance (see the module docstring), and once at the end of training.

    Args:
        env_kwargs: The training env's settings (the instance is drawn from them).
        seed: Seed of the instance (the validation range, which no training episode draws).
        freq: Environment steps between charts (counted over all envs).
        reference: Baseline the makespan is compared with.
    """

    def __init__(
        self,
        env_kwargs: Mapping[str, Any],
        seed: int,
        freq: int,
        reference: str = "heft",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.env_kwargs = dict(env_kwargs)
        self.seed = int(seed)
        self.freq = int(freq)
        self.reference = reference
        self._last = -1
        self._problem: Any = None
        self._ref_makespan = 0.0
        #: ``(timestep, makespan)`` of every chart drawn.
        self.charts: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        from wass_env.envs.wass_sched import WassSchedEnv
        from wass_env.scheduling import make_scheduler

        env = WassSchedEnv(**self.env_kwargs)
        env.reset(seed=self.seed)
        self._problem = env.problem
        self._ref_makespan = make_scheduler(self.reference).plan(self._problem).makespan
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.freq:
            self.draw()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps != self._last:
            self.draw()
            self.logger.dump(self.num_timesteps)

    def draw(self) -> None:
        """Plan the instance with the current policy and record the chart and its ratios."""
        from stable_baselines3.common.logger import Image

        from wass_env.render import gantt_rgb

        problem = self._problem
        policy = SB3PolicyScheduler(model=self.model, env_kwargs=self.env_kwargs)
        plan = policy.plan(problem)
        self._last = self.num_timesteps
        self.charts.append((self.num_timesteps, float(plan.makespan)))
        img = gantt_rgb(problem, plan.node, plan.start, plan.finish)
        self.logger.record("eval/gantt", Image(img, "HWC"), exclude=_TB_ONLY)
        self.logger.record("eval/gantt_ratio_to_lower_bound", plan.makespan / problem.lower_bound())
        self.logger.record(
            f"eval/gantt_ratio_to_{self.reference}", plan.makespan / self._ref_makespan
        )


def flat_hparams(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent.learning_rate": 3e-4, ...}``: the leaves of a nested config that TensorBoard
    can show (numbers, strings, booleans; lists as text)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is None:
            out[name] = "null"
        else:
            out[name] = json.dumps(value, default=str)
    return out


class HParamsCallback(BaseCallback):
    """Records the run's hyperparameters once, at the start of training (HParams tab).

    Args:
        hparams: Flat name -> value (see :func:`flat_hparams`).
        metrics: Metric tags shown with them (their values come from the run's scalars).
    """

    def __init__(
        self,
        hparams: Mapping[str, Any],
        metrics: tuple[str, ...] = HPARAM_METRICS,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.hparams = dict(hparams)
        self.metrics = metrics

    def _on_training_start(self) -> None:
        from stable_baselines3.common.logger import HParam

        # The metric values here are placeholders: TensorBoard reads the logged scalars.
        self.logger.record(
            "hparams", HParam(self.hparams, dict.fromkeys(self.metrics, 0.0)), exclude=_TB_ONLY
        )

    def _on_step(self) -> bool:
        return True


def write_text_summary(log_dir: str | os.PathLike[str], tag: str, text: str, step: int) -> None:
    """Add ``text`` (Markdown) to the TensorBoard run in ``log_dir`` (its Text tab)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        writer.add_text(tag, text, global_step=step)
    finally:
        writer.close()
