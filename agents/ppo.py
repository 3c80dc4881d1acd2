"""MaskablePPO (sb3-contrib) as a scheduler: training, saving, loading, acting.

MaskablePPOAgent is one more :class:`~wass_env.scheduling.Scheduler`: ``act`` queries the
policy with the action mask, ``plan`` rolls the policy out over a given problem in a private
``WassSchedEnv``. Training goes through SB3's own machinery (vectorised envs, ``Monitor``, the
logger, callbacks); :class:`SchedMetricsCallback` adds the scheduling metrics of finished
episodes to TensorBoard under ``sched/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from agents.policies import NodeScoringPolicy
from agents.sb3_policy import ENV_KWARGS_FILE, CheckpointError, SB3PolicyScheduler, read_settings
from wass_env.envs.wass_sched import WassSchedEnv
from wass_env.errors import WassError
from wass_env.io import atomic_path, atomic_write
from wass_env.scheduling import Scheduler, resolve_target
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.workers import standard_start_method

__all__ = [
    "SCHED_METRICS",
    "AgentConfigError",
    "CheckpointError",
    "MaskablePPOAgent",
    "SchedMetricsCallback",
    "make_env_fn",
    "make_vec",
]

#: Episode-end ``info`` keys logged under ``sched/``.
SCHED_METRICS: tuple[str, ...] = (
    "makespan",
    "ratio_to_lower_bound",
    "slr",
    "mean_wait",
    "utilization",
    "locality_hit_rate",
    "cross_node_bytes",
)


class AgentConfigError(WassError):
    """An invalid agent argument, or a problem the policy cannot act on."""


#: Policy names accepted besides SB3's own (``"MultiInputPolicy"``).
POLICIES: dict[str, Any] = {"node_scoring": NodeScoringPolicy}
#: sb3-contrib MaskablePPO's own policy names.
SB3_POLICIES: tuple[str, ...] = ("MultiInputPolicy", "MlpPolicy", "CnnPolicy")


def make_env_fn(
    env_kwargs: Mapping[str, Any], wrappers: Sequence[Mapping[str, Any]] = ()
) -> Callable[[], gym.Env[Any, Any]]:
    """A picklable factory of ``WassSchedEnv(**env_kwargs)`` (for ``SubprocVecEnv``).

    Args:
        env_kwargs: Environment arguments.
        wrappers: Wrapper specs applied in order, each ``{"_target_": "pkg.module:callable",
            **kwargs}``; the callable is called as ``target(env, **kwargs)`` inside the process
            that builds the env (so a teacher's knowledge base is loaded there, not pickled).
            The ``teacher=rag`` config gives ``teacher.wrapper.rag_wrapper``.
    """
    return _EnvFactory(dict(env_kwargs), [dict(w) for w in wrappers])


class _EnvFactory:
    def __init__(self, env_kwargs: dict[str, Any], wrappers: list[dict[str, Any]]) -> None:
        self.env_kwargs = env_kwargs
        self.wrappers = wrappers

    def __call__(self) -> gym.Env[Any, Any]:
        import wass_env  # noqa: F401  (registers the env in a fresh subprocess)

        env = gym.make("WassSched-v0", **self.env_kwargs)
        for spec in self.wrappers:
            kw = dict(spec)
            env = resolve_target(str(kw.pop("_target_")))(env, **kw)
        return env


def make_vec(
    env_kwargs: Mapping[str, Any],
    n_envs: int,
    seed: int,
    *,
    subproc: bool = False,
    wrappers: Sequence[Mapping[str, Any]] = (),
) -> VecEnv:
    """``n_envs`` monitored copies of the env (optionally wrapped, see :func:`make_env_fn`),
    seeded ``seed, seed + 1, ...``."""
    if subproc:
        standard_start_method()  # SubprocVecEnv's children, also inside a loky worker
    return make_vec_env(
        make_env_fn(env_kwargs, wrappers),
        n_envs=n_envs,
        seed=seed,
        vec_env_cls=SubprocVecEnv if subproc else DummyVecEnv,
    )


class SchedMetricsCallback(BaseCallback):
    """Logs the scheduling metrics of every finished training episode (``sched/...``).

    Values are averaged over the episodes that ended since the last dump, like SB3's
    ``rollout/ep_rew_mean``. When the env has a ``reference`` scheduler, its
    ``ratio_to_reference`` goes to ``sched/ratio_to_<reference_name>`` (e.g.
    ``sched/ratio_to_heft``). With a teacher, every step's R_RAG goes to ``teacher/r_rag`` and the
    share of steps where the agent chose the teacher's a*_t to ``teacher/agree``.

    Attributes:
        episodes: ``(timestep, makespan / lower bound)`` of every finished training episode.
        curve: One dict per finished training episode: ``timestep``, ``family``,
            ``ratio_to_lower_bound`` and (with a reference) ``ratio_to_<reference_name>``:
            the learning curve on the training distribution.
    """

    def __init__(self, reference_name: str = "reference", verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reference_name = reference_name
        self.episodes: list[tuple[int, float]] = []
        self.curve: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            rag = info.get("rewards", {}).get("rag")
            if rag is not None:
                self.logger.record_mean("teacher/r_rag", float(rag))
                t = info.get("teacher")
                if t:  # the agent's node is (one of) the teacher's best
                    self.logger.record_mean(
                        "teacher/agree", float(t["pred_action"] <= t["pred_best"])
                    )
            if not done or "makespan" not in info:
                continue
            self.episodes.append((self.num_timesteps, float(info["ratio_to_lower_bound"])))
            point: dict[str, Any] = {
                "timestep": int(self.num_timesteps),
                "family": str(info.get("family", "")),
                "ratio_to_lower_bound": float(info["ratio_to_lower_bound"]),
            }
            if "ratio_to_reference" in info:
                point[f"ratio_to_{self.reference_name}"] = float(info["ratio_to_reference"])
            self.curve.append(point)
            if "ratio_to_reference" in info:
                self.logger.record_mean(
                    f"sched/ratio_to_{self.reference_name}", float(info["ratio_to_reference"])
                )
            for key in SCHED_METRICS:
                self.logger.record_mean(f"sched/{key}", float(info[key]))
            rewards = info.get("rewards", {})
            for key, value in rewards.items():
                self.logger.record_mean(f"reward/{key}_last", float(value))
        return True


class MaskablePPOAgent(Scheduler):
    """A MaskablePPO policy behind the scheduler interface.

    Args:
        model: A trained model (or None until :meth:`learn`).
        env_kwargs: The ``WassSchedEnv`` arguments the policy was trained with (``max_nodes``,
            ``insertion`` and ``task_order`` must match when it is used).
        policy: SB3 policy name, or ``"node_scoring"`` for
            :class:`~agents.policies.NodeScoringPolicy`.
        net_arch: Hidden layer sizes of the policy and value networks (value network only for
            ``node_scoring``).
        seed: Seed of the model.
        device: Torch device (``"cpu"`` is fastest for these small MLPs).
        temperature: ``node_scoring`` only: the policy samples from its logits divided by this
            (:class:`~agents.policies.NodeScoringPolicy`); above 1 PPO explores around a cloned
            policy whose prior makes it nearly deterministic, and the greedy plan is unchanged.
        **ppo_kwargs: Other ``MaskablePPO`` arguments (learning_rate, n_steps, batch_size, ...).
    """

    name: ClassVar[str] = "maskable_ppo"
    trainable: ClassVar[bool] = True

    def __init__(
        self,
        model: MaskablePPO | None = None,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        policy: str = "MultiInputPolicy",
        net_arch: Sequence[int] = (128, 128),
        seed: int | None = None,
        device: str = "cpu",
        deterministic: bool = True,
        features_extractor_kwargs: Mapping[str, Any] | None = None,
        temperature: float = 1.0,
        **ppo_kwargs: Any,
    ) -> None:
        super().__init__(seed)
        if model is None and policy not in POLICIES and policy not in SB3_POLICIES:
            raise AgentConfigError(
                f"agent.policy: unknown policy {policy!r}; choose one of "
                f"{sorted([*POLICIES, *SB3_POLICIES])}"
            )
        if not float(temperature) > 0:
            raise AgentConfigError(f"agent.temperature: must be > 0, got {temperature!r}")
        if float(temperature) != 1.0 and policy != "node_scoring":
            raise AgentConfigError(
                f"agent.temperature: {temperature!r} needs policy node_scoring, not {policy!r}"
            )
        self.model = model
        self.env_kwargs = dict(env_kwargs or {})
        self.policy = policy
        self.net_arch = list(net_arch)
        self.seed = seed
        self.device = device
        self.deterministic = deterministic
        self.features_extractor_kwargs = dict(features_extractor_kwargs or {})
        self.temperature = float(temperature)
        self.ppo_kwargs = ppo_kwargs
        self._acting: SB3PolicyScheduler | None = None

    # ------------------------------------------------------------------ training
    def build(self, venv: VecEnv, *, tensorboard_log: str | None = None) -> MaskablePPO:
        """Create the model for ``venv`` without training it (e.g. before behaviour cloning)."""
        if self.model is None:
            self.model = MaskablePPO(
                POLICIES.get(self.policy, self.policy),
                venv,
                policy_kwargs=self._policy_kwargs(),
                tensorboard_log=tensorboard_log,
                seed=self.seed,
                device=self.device,
                verbose=0,
                **self.ppo_kwargs,
            )
        return self.model

    def _policy_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"net_arch": self.net_arch}
        fx = dict(self.features_extractor_kwargs)
        if self.policy != "node_scoring":
            fx.pop("prior", None)  # a NodeScoringPolicy setting: SB3's extractors do not take it
        if fx:
            kw["features_extractor_kwargs"] = fx
        if self.temperature != 1.0:  # saved with the model (SB3 keeps policy_kwargs)
            kw["temperature"] = self.temperature
        return kw

    def learn(
        self,
        venv: VecEnv,
        total_timesteps: int,
        *,
        callback: Any = None,
        tensorboard_log: str | None = None,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
    ) -> MaskablePPO:
        """Train on ``venv`` (creating the model on first use) and return the model.

        ``reset_num_timesteps=False`` continues a resumed model: ``total_timesteps`` more steps,
        counted on from its own.
        """
        if self.model is None:
            model = self.build(venv, tensorboard_log=tensorboard_log)
        else:
            model = self.model
            model.set_env(venv)
            if tensorboard_log is not None:
                model.tensorboard_log = tensorboard_log
        model.learn(
            total_timesteps=total_timesteps,
            callback=callback,
            tb_log_name="maskable_ppo",
            progress_bar=progress_bar,
            reset_num_timesteps=reset_num_timesteps,
        )
        return model

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the model (``.zip``) and its env arguments atomically; return the zip path."""
        if self.model is None:
            raise RuntimeError("nothing to save: the agent has no model yet")
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(".zip")
        with atomic_path(path, suffix=".zip") as tmp:
            self.model.save(tmp)
        meta = path.with_name(path.stem + "." + ENV_KWARGS_FILE)
        atomic_write(meta, json.dumps(self.env_kwargs, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "cpu") -> MaskablePPOAgent:
        """Load an agent saved by :meth:`save`, with the env settings it was trained with.

        Raises:
            FileNotFoundError: naming the missing checkpoint.
            CheckpointError: when its settings file (``<stem>.env_kwargs.json`` next to it) is
                missing or not a JSON object: the policy's ``task_order``, ``insertion`` and
                reward settings would silently fall back to the env's defaults.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no MaskablePPO checkpoint at {path}")
        env_kwargs = read_settings(path)
        model = MaskablePPO.load(path, device=device)
        return cls(model, env_kwargs=env_kwargs, device=device)

    # ------------------------------------------------------------------ acting
    # One acting code for every SB3 policy: agents.sb3_policy.SB3PolicyScheduler.
    def acting(self) -> SB3PolicyScheduler:
        """The policy as a masked :class:`~agents.sb3_policy.SB3PolicyScheduler` (shared)."""
        if self.model is None:
            raise RuntimeError("the agent has no model: train it or load a checkpoint")
        core = self._acting
        if core is None or core.model is not self.model or core.env_kwargs != self.env_kwargs:
            core = SB3PolicyScheduler(
                model=self.model,
                algo="MaskablePPO",
                env_kwargs=self.env_kwargs,
                deterministic=self.deterministic,
                seed=self.seed,
            )
            self._acting = core
        return core

    def predict(self, obs: Any, mask: NDArray[np.bool_]) -> int:
        """The policy's action for ``obs`` under ``mask`` (always masked)."""
        return self.acting().predict(obs, mask)

    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the policy's (masked) action."""
        return self.predict(obs, mask)

    def observer(self, insertion: bool = True) -> WassSchedEnv:
        """A private environment with the training observation settings, used to observe
        arbitrary partial plans (:meth:`WassSchedEnv.observe`)."""
        return self.acting().observer(insertion)

    @property
    def max_nodes(self) -> int:
        """Largest cluster the policy can schedule (its action space size)."""
        return self.acting().max_nodes

    def node_probabilities(self, builder: PlanBuilder, task: int) -> NDArray[np.float64]:
        """The policy's probability of every node for ``task`` in ``builder``'s partial plan."""
        return self.acting().node_probabilities(builder, task)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The policy's node for ``task`` given any partial plan (deterministic: the mode)."""
        return self.acting().select_node(builder, task)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The policy's plan of ``problem``: tasks in the environment's order (upward rank, or
        the training env's ``task_order``), each on the policy's node.

        Raises:
            AgentConfigError: if the cluster is larger than the policy's ``max_nodes``.
        """
        if problem.n_nodes > self.max_nodes:
            raise AgentConfigError(
                f"the policy was trained for at most {self.max_nodes} nodes; cluster "
                f"{problem.cluster.name!r} has {problem.n_nodes}"
            )
        self.task_order = str(self.env_kwargs.get("task_order", "rank"))
        return super().plan(problem, insertion=insertion)
