"""wass: learning to schedule scientific workflows on HPC clusters.

Importing the package registers the Gymnasium environments ``WassSched-v0`` and
``WassSchedOnline-v0`` (decisions while the simulated cluster runs)::

    import gymnasium as gym
    import wass_env  # noqa: F401

    env = gym.make("WassSched-v0", workload="layered", cluster="het16")

``gym.make("wass_env:WassSched-v0")`` works without the explicit import. The simulator in
:mod:`wass_env.sim` needs neither gymnasium nor torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

ENV_ID = "WassSched-v0"
#: The online variant: decisions as the simulated cluster runs (wass_env.envs.wass_online).
ONLINE_ENV_ID = "WassSchedOnline-v0"


def _register_envs() -> None:
    """Register the environments once (importing twice must not re-register)."""
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:  # the simulator alone works without gymnasium
        return
    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="wass_env.envs.wass_sched:WassSchedEnv")
    if ONLINE_ENV_ID not in registry:
        register(id=ONLINE_ENV_ID, entry_point="wass_env.envs.wass_online:WassSchedOnlineEnv")


_register_envs()
