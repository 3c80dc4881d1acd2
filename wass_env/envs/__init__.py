"""Gymnasium environments of wass."""

from wass_env.envs.wass_online import WassSchedOnlineEnv
from wass_env.envs.wass_sched import (
    NODE_FEATURES,
    REWARD_TERMS,
    TASK_FEATURES,
    EnvConfigError,
    WassSchedEnv,
)

__all__ = [
    "NODE_FEATURES",
    "REWARD_TERMS",
    "TASK_FEATURES",
    "EnvConfigError",
    "WassSchedEnv",
    "WassSchedOnlineEnv",
]
