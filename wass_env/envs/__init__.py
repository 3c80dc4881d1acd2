"""Gymnasium environments of wass."""

from wass_env.envs.wass_online import WassSchedOnlineEnv
from wass_env.envs.wass_sched import (
    CONTEXT_FEATURES,
    NODE_FEATURES,
    PLAN_HINT_FEATURES,
    PLAN_HINT_NODE_FEATURES,
    REWARD_TERMS,
    TASK_FEATURES,
    EnvConfigError,
    WassSchedEnv,
)

__all__ = [
    "CONTEXT_FEATURES",
    "NODE_FEATURES",
    "PLAN_HINT_FEATURES",
    "PLAN_HINT_NODE_FEATURES",
    "REWARD_TERMS",
    "TASK_FEATURES",
    "EnvConfigError",
    "WassSchedEnv",
    "WassSchedOnlineEnv",
]
