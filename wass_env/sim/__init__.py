"""The workflow scheduling simulator: pure Python and NumPy, no RL imports.

Typical use::

    from wass_env.sim import Problem, PlanBuilder, execute, schedule_metrics, make_cluster

    problem = Problem(workflow, make_cluster("heterogeneous", 16))
    builder = PlanBuilder(problem, insertion=True)
    while not builder.done:
        task = min(builder.ready)
        builder.assign(task, int(builder.earliest_finish(task).argmin()))
    realized = execute(builder.plan(), noise=0.1, rng=np.random.default_rng(0))
    print(schedule_metrics(realized))
"""

from wass_env.sim.cluster import (
    MAX_NODES,
    NETWORK_MODELS,
    NODE_TYPES,
    PRESETS,
    Cluster,
    ClusterError,
    cluster_from_spec,
    expand_cluster_spec,
    make_cluster,
    preset,
)
from wass_env.sim.execute import execute, realize, runtime_noise
from wass_env.sim.metrics import ScheduleMetrics, lower_bound, schedule_metrics
from wass_env.sim.plan import Plan, PlanBuilder, PlanError, Schedule
from wass_env.sim.problem import Problem, with_ccr
from wass_env.sim.workflow import Task, Workflow, WorkflowError

__all__ = [
    "MAX_NODES",
    "NETWORK_MODELS",
    "NODE_TYPES",
    "PRESETS",
    "Cluster",
    "ClusterError",
    "Plan",
    "PlanBuilder",
    "PlanError",
    "Problem",
    "Schedule",
    "ScheduleMetrics",
    "Task",
    "Workflow",
    "WorkflowError",
    "cluster_from_spec",
    "execute",
    "expand_cluster_spec",
    "lower_bound",
    "make_cluster",
    "preset",
    "realize",
    "runtime_noise",
    "schedule_metrics",
    "with_ccr",
]
