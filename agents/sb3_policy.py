"""Any Stable-Baselines3 or sb3-contrib checkpoint as a scheduler, always masked.

:class:`SB3PolicyScheduler` loads a checkpoint of PPO, A2C, DQN, QRDQN, TRPO or MaskablePPO
trained on ``WassSched-v0`` (the algorithm is read from the checkpoint, or given) and acts with
the action mask, whatever the algorithm:

* **MaskablePPO** takes the mask itself: its masked distribution (the mode, or a sample when
  ``deterministic=False``);
* **PPO, A2C, TRPO** (actor-critic, no mask of their own): the policy's action probabilities,
  infeasible nodes set to 0 and the rest renormalised; the node is their argmax (or a sample);
* **DQN, QRDQN** (Q-values): the argmax of the Q-values (the mean over quantiles for QRDQN) over
  the feasible nodes; :meth:`SB3PolicyScheduler.node_probabilities` is then their softmax over
  the feasible nodes, a ranking rather than a probability.

Ties go to the lowest node index. The environment settings the policy was trained with
(``task_order``, ``lookahead``, ``plan_hints``, ``plan_hint_candidates``,
``plan_hint_improve``, ``graph_window``: they change the observation) come from the
``<stem>.env_kwargs.json`` file saved next to the checkpoint by ``wass train``, or from
``env_kwargs`` for checkpoints trained elsewhere. The same acting code serves
:class:`agents.ppo.MaskablePPOAgent` (a policy being trained) and
:class:`agents.learned.PolicyScheduler` (guarded and rollout modes on top of any of these).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from wass_env.envs.wass_sched import WassSchedEnv
from wass_env.errors import WassError
from wass_env.scheduling import Scheduler
from wass_env.sim.plan import Plan, PlanBuilder
from wass_env.sim.problem import Problem

__all__ = [
    "ALGORITHMS",
    "ENV_KWARGS_FILE",
    "CheckpointError",
    "SB3PolicyScheduler",
    "detect_algorithm",
    "load_model",
    "read_settings",
    "settings_path",
]

#: The algorithms a checkpoint may come from: name -> (module, class).
ALGORITHMS: dict[str, tuple[str, str]] = {
    "MaskablePPO": ("sb3_contrib", "MaskablePPO"),
    "PPO": ("stable_baselines3", "PPO"),
    "A2C": ("stable_baselines3", "A2C"),
    "DQN": ("stable_baselines3", "DQN"),
    "QRDQN": ("sb3_contrib", "QRDQN"),
    "TRPO": ("sb3_contrib", "TRPO"),
}
#: Suffix of the settings file saved next to a checkpoint (``model.zip`` ->
#: ``model.env_kwargs.json``).
ENV_KWARGS_FILE = "env_kwargs.json"
#: Environment settings that change the observation (the rest do not matter for acting).
OBSERVATION_SETTINGS = (
    "task_order",
    "lookahead",
    "plan_hints",
    "plan_hint_candidates",
    "plan_hint_improve",
    "plan_hint_follow",
    "graph_window",
)


class CheckpointError(WassError):
    """A checkpoint that cannot be used as saved (its settings file missing or damaged, an
    unknown algorithm, an observation the environment does not produce)."""


def settings_path(path: str | os.PathLike[str]) -> Path:
    """The settings file of checkpoint ``path`` (``<stem>.env_kwargs.json`` next to it)."""
    p = Path(path)
    return p.with_name(p.stem + "." + ENV_KWARGS_FILE)


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The env settings saved with checkpoint ``path``.

    Raises:
        CheckpointError: when the settings file is missing or not a JSON object: the policy's
            ``task_order``, ``insertion`` and reward settings would silently fall back to the
            env's defaults.
    """
    meta = settings_path(path)
    try:
        env_kwargs = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: its settings file {meta} is missing, so the env settings the policy "
            "was trained with are unknown; copy it along with the checkpoint"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{meta}: unreadable settings file ({exc})") from None
    if not isinstance(env_kwargs, dict):
        raise CheckpointError(
            f"{meta}: expected a JSON object of env settings, got {type(env_kwargs).__name__}"
        )
    return env_kwargs


def _algorithm_class(name: str) -> Any:
    import importlib

    if name not in ALGORITHMS:
        raise CheckpointError(f"algo: unknown algorithm {name!r}; choose from {list(ALGORITHMS)}")
    module, cls = ALGORITHMS[name]
    return getattr(importlib.import_module(module), cls)


def detect_algorithm(path: str | os.PathLike[str]) -> str:
    """The algorithm that saved checkpoint ``path``, read from its policy class and settings.

    PPO, A2C and TRPO share SB3's actor-critic policy; they are told apart by the
    hyperparameters each one saves (``clip_range``: PPO, ``cg_max_steps``: TRPO, else A2C).

    Raises:
        FileNotFoundError: if there is no such file.
        CheckpointError: if it is not an SB3 checkpoint of a known algorithm.
    """
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.save_util import load_from_zip_file
    from stable_baselines3.dqn.policies import DQNPolicy

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}")
    try:
        data, _, _ = load_from_zip_file(p, device="cpu", load_data=True)
    except Exception as exc:
        raise CheckpointError(f"{p}: not a Stable-Baselines3 checkpoint ({exc})") from None
    data = data or {}
    policy = data.get("policy_class")
    if not isinstance(policy, type):
        raise CheckpointError(f"{p}: the checkpoint names no policy class")
    if issubclass(policy, MaskableActorCriticPolicy):
        return "MaskablePPO"
    if issubclass(policy, QRDQNPolicy):
        return "QRDQN"
    if issubclass(policy, DQNPolicy):
        return "DQN"
    if issubclass(policy, ActorCriticPolicy):
        if "clip_range" in data:
            return "PPO"
        return "TRPO" if "cg_max_steps" in data else "A2C"
    raise CheckpointError(
        f"{p}: policy {policy.__name__} is of no known algorithm; give algo= one of "
        f"{list(ALGORITHMS)}"
    )


def load_model(
    path: str | os.PathLike[str], algo: str = "auto", *, device: str = "cpu"
) -> tuple[Any, str]:
    """``(model, algorithm name)`` of checkpoint ``path``.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`detect_algorithm`.
    """
    name = detect_algorithm(path) if algo == "auto" else algo
    cls = _algorithm_class(name)
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return cls.load(path, device=device), name


class SB3PolicyScheduler(Scheduler):
    """A Stable-Baselines3 / sb3-contrib policy behind the scheduler interface, masked.

    Args:
        checkpoint: Path of a checkpoint (``model.zip``); or pass ``model``.
        algo: Its algorithm (a key of :data:`ALGORITHMS`), or ``"auto"``: read from the file.
        model: An already loaded (or training) SB3 model.
        env_kwargs: The env settings it was trained with (default: the checkpoint's settings
            file, which must exist; give ``{}`` for a checkpoint trained on the env defaults).
        deterministic: The most likely node (True), or a sample of the masked distribution
            (actor-critic policies only; Q-value policies always take the argmax).
        name: Label in tables (default: the algorithm's name, lower case).
        device: Torch device.
        seed: Seed of the sampling when ``deterministic=False``.

    Raises:
        FileNotFoundError: if the checkpoint is missing.
        CheckpointError: for a bad settings file, an unknown algorithm, or a policy whose
            observation the environment does not produce with these settings.
    """

    name: ClassVar[str] = "sb3_policy"
    requires: ClassVar[tuple[str, ...]] = ("checkpoint",)

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        *,
        algo: str = "auto",
        model: Any = None,
        env_kwargs: Mapping[str, Any] | None = None,
        deterministic: bool = True,
        name: str | None = None,
        device: str = "cpu",
        seed: int | None = None,
    ) -> None:
        if model is None:
            if checkpoint is None:
                raise CheckpointError("an SB3 policy needs checkpoint=<path of a model.zip>")
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(f"no checkpoint at {checkpoint}")
            if env_kwargs is None:
                env_kwargs = read_settings(checkpoint)
            model, algo = load_model(checkpoint, algo, device=device)
        elif algo == "auto":
            algo = next(
                (n for n, (_, c) in ALGORITHMS.items() if type(model).__name__ == c), "auto"
            )
        self.model = model
        self.algo = algo
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.env_kwargs = dict(env_kwargs or {})
        self.deterministic = bool(deterministic)
        self.label = name or str(algo).lower()
        self.task_order = str(self.env_kwargs.get("task_order", "rank"))
        self._env: WassSchedEnv | None = None
        super().__init__(seed)

    # ------------------------------------------------------------------ the policy's view
    @property
    def max_nodes(self) -> int:
        """Largest cluster the policy can schedule (its action space size)."""
        return int(self.model.action_space.n)

    def observer(self, insertion: bool = True) -> WassSchedEnv:
        """A private environment with the training observation settings, used to observe
        arbitrary partial plans (:meth:`WassSchedEnv.observe`).

        Raises:
            CheckpointError: if the policy expects another observation than this env gives.
        """
        if self._env is None or self._env.insertion != insertion:
            env = WassSchedEnv(
                workload="chain",  # placeholders: observe() switches to the builder's problem
                cluster={"kind": "homogeneous", "n_nodes": 1},
                max_nodes=self.max_nodes,
                insertion=insertion,
                **{k: self.env_kwargs[k] for k in OBSERVATION_SETTINGS if k in self.env_kwargs},
            )
            space = getattr(self.model, "observation_space", None)
            if space is not None and space != env.observation_space:
                raise CheckpointError(
                    f"{self.checkpoint or 'the model'}: the policy observes {space}, the env "
                    f"with settings {self.env_kwargs} gives {env.observation_space}; pass the "
                    "env_kwargs it was trained with"
                )
            self._env = env
        return self._env

    def _observe(self, builder: PlanBuilder, task: int) -> tuple[Any, NDArray[np.bool_]]:
        obs = self.observer(builder.insertion).observe(builder, task)
        mask = np.zeros(self.max_nodes, dtype=bool)
        mask[: builder.problem.n_nodes] = builder.problem.fits[task]
        return obs, mask

    def scores(self, obs: Any, mask: NDArray[np.bool_]) -> tuple[NDArray[np.float64], bool]:
        """The policy's score of every action under ``mask``, and whether they are
        probabilities (actor-critic policies: masked and renormalised, 0 where infeasible) or
        Q-values (-inf where infeasible)."""
        import torch

        policy = self.model.policy
        mask = np.asarray(mask, dtype=bool)
        obs_t, _ = policy.obs_to_tensor(obs)
        with torch.no_grad():
            if hasattr(policy, "q_net"):  # DQN
                values = policy.q_net(obs_t)[0]
            elif hasattr(policy, "quantile_net"):  # QRDQN: mean over the quantiles
                values = policy.quantile_net(obs_t)[0].mean(dim=0)
            else:
                kw = {"action_masks": mask[None]} if self.algo == "MaskablePPO" else {}
                dist = policy.get_distribution(obs_t, **kw)
                probs = dist.distribution.probs[0].cpu().numpy().astype(np.float64)
                probs = np.where(mask, probs, 0.0)
                total = probs.sum()
                # A policy that gives every feasible node probability 0 (underflow): uniform.
                probs = probs / total if total > 0 else mask / mask.sum()
                return probs, True
        q = values.cpu().numpy().astype(np.float64)
        return np.where(mask, q, -np.inf), False

    def predict(self, obs: Any, mask: NDArray[np.bool_]) -> int:
        """The policy's node for ``obs`` under ``mask`` (see the module docstring)."""
        scores, is_prob = self.scores(obs, mask)
        if is_prob and not self.deterministic:
            return int(self.rng.choice(scores.size, p=scores))
        return int(np.argmax(scores))

    def node_probabilities(self, builder: PlanBuilder, task: int) -> NDArray[np.float64]:
        """The policy's probability of every node for ``task`` in ``builder``'s partial plan
        (for Q-value policies: the softmax of the Q-values over the feasible nodes)."""
        obs, mask = self._observe(builder, task)
        scores, is_prob = self.scores(obs, mask)
        if not is_prob:
            finite = scores[mask]
            e = np.zeros_like(scores)
            e[mask] = np.exp(finite - finite.max())
            scores = e / e.sum()
        return np.asarray(scores[: builder.problem.n_nodes], dtype=np.float64)

    # ------------------------------------------------------------------ scheduler
    def act(self, obs: Any, mask: NDArray[np.bool_], env: Any) -> int:
        """Step-wise use: the policy's masked action."""
        return self.predict(obs, mask)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        """The policy's node for ``task`` given any partial plan."""
        obs, mask = self._observe(builder, task)
        return self.predict(obs, mask)

    def plan(self, problem: Problem, *, insertion: bool = True) -> Plan:
        """The policy's plan: tasks in the training env's order, each on the policy's node.

        Raises:
            CheckpointError: if the cluster is larger than the policy's ``max_nodes``.
        """
        if problem.n_nodes > self.max_nodes:
            raise CheckpointError(
                f"the policy was trained for at most {self.max_nodes} nodes; cluster "
                f"{problem.cluster.name!r} has {problem.n_nodes}"
            )
        self.task_order = str(self.env_kwargs.get("task_order", "rank"))
        return super().plan(problem, insertion=insertion)

    def __repr__(self) -> str:
        return f"SB3PolicyScheduler({self.checkpoint!r}, algo={self.algo!r})"
