"""Any SB3 / sb3-contrib checkpoint as a masked scheduler (agents.sb3_policy)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import wass_env  # noqa: F401  (registers the env)
from agents.sb3_policy import CheckpointError, SB3PolicyScheduler, detect_algorithm
from wass_env.scheduling import make_scheduler
from wass_env.sim.cluster import cluster_from_spec
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.workloads import make_sampler

ENV = {
    "workload": {"generator": "layered", "n_tasks": 12},
    "cluster": {"kind": "heterogeneous", "n_nodes": 4},
    "max_nodes": 6,
}


def _save(algo: str, tmp_path: Path, sidecar: bool = True) -> Path:
    from sb3_contrib import QRDQN, MaskablePPO
    from stable_baselines3 import A2C, DQN, PPO

    cls = {"PPO": PPO, "A2C": A2C, "DQN": DQN, "MaskablePPO": MaskablePPO, "QRDQN": QRDQN}[algo]
    env = gym.make("WassSched-v0", **ENV)
    kw = {"n_steps": 8, "batch_size": 8} if algo in ("PPO", "MaskablePPO") else {}
    kw = {"n_steps": 8} if algo == "A2C" else kw
    model = cls("MultiInputPolicy", env, seed=0, device="cpu", **kw)
    path = tmp_path / f"{algo}.zip"
    model.save(path)
    if sidecar:
        (tmp_path / f"{algo}.env_kwargs.json").write_text(json.dumps(ENV))
    return path


def _problem(seed: int = 3) -> Problem:
    cl = cluster_from_spec(ENV["cluster"])
    wf = make_sampler(ENV["workload"]).sample(np.random.default_rng(seed), cl)
    return Problem(wf, cl)


@pytest.mark.parametrize("algo", ["MaskablePPO", "PPO", "A2C", "DQN", "QRDQN"])
def test_any_algorithm_loads_and_respects_the_mask(algo: str, tmp_path: Path) -> None:
    path = _save(algo, tmp_path)
    assert detect_algorithm(path) == algo
    sch = SB3PolicyScheduler(path)
    assert sch.algo == algo and sch.max_nodes == 6 and sch.label == algo.lower()
    problem = _problem()
    builder = PlanBuilder(problem)
    task = int(problem.workflow.topo_order[0])  # an entry task: ready in the empty plan
    obs, _ = sch._observe(builder, task)
    # One feasible node: it is the answer, whatever the policy prefers.
    for only in range(4):
        mask = np.zeros(6, dtype=bool)
        mask[only] = True
        assert sch.predict(obs, mask) == only
    # Two feasible nodes: the one the policy scores higher (probabilities or Q-values).
    mask = np.zeros(6, dtype=bool)
    mask[[1, 2]] = True
    scores, is_prob = sch.scores(obs, mask)
    assert is_prob == (algo not in ("DQN", "QRDQN"))
    assert scores[0] in (0.0, -np.inf) and np.isfinite(scores[1:3]).all()
    assert sch.predict(obs, mask) == (1 if scores[1] >= scores[2] else 2)
    if is_prob:
        assert scores.sum() == pytest.approx(1.0)
    probs = sch.node_probabilities(builder, task)
    assert probs.shape == (4,) and probs.sum() == pytest.approx(1.0)
    # A whole plan places every task on a node it fits on, reproducibly.
    plan = sch.plan(problem)
    assert plan.node.shape == (problem.n_tasks,)
    assert all(problem.fits[t, plan.node[t]] for t in range(problem.n_tasks))
    assert (SB3PolicyScheduler(path).plan(problem).node == plan.node).all()


def test_policy_scheduler_takes_any_checkpoint(tmp_path: Path) -> None:
    path = _save("A2C", tmp_path)
    raw = make_scheduler("policy", checkpoint=str(path))
    guarded = make_scheduler("policy", checkpoint=str(path), guard="heft")
    problem = _problem(5)
    heft = make_scheduler("heft").plan(problem).makespan
    own = raw.plan(problem).makespan
    assert guarded.plan(problem).makespan == min(own, heft)


def test_checkpoint_without_settings(tmp_path: Path) -> None:
    path = _save("PPO", tmp_path, sidecar=False)
    with pytest.raises(CheckpointError, match="settings file .* is missing"):
        SB3PolicyScheduler(path)
    # The settings given by hand; wrong ones (another observation) are refused by name.
    assert SB3PolicyScheduler(path, env_kwargs={}).plan(_problem()).makespan > 0
    bad = SB3PolicyScheduler(path, env_kwargs={"lookahead": True})
    with pytest.raises(CheckpointError, match="the policy observes"):
        bad.plan(_problem())
    with pytest.raises(CheckpointError, match="unknown algorithm 'SAC'"):
        SB3PolicyScheduler(path, algo="SAC", env_kwargs={})
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a Stable-Baselines3 checkpoint"):
        detect_algorithm(junk)


def test_a_plan_hints_checkpoint_observes_the_hints(tmp_path: Path) -> None:
    from sb3_contrib import MaskablePPO

    kw = {**ENV, "lookahead": True, "plan_hints": True}
    model = MaskablePPO("MultiInputPolicy", gym.make("WassSched-v0", **kw), n_steps=8, seed=0)
    model.save(tmp_path / "m.zip")
    (tmp_path / "m.env_kwargs.json").write_text(json.dumps(kw))
    sch = SB3PolicyScheduler(tmp_path / "m.zip")
    problem = _problem(4)
    builder = PlanBuilder(problem)
    obs, _ = sch._observe(builder, int(problem.workflow.topo_order[0]))
    ref = make_scheduler("heft_lookahead").plan(problem).makespan
    one = make_scheduler("single_node").plan(problem).makespan
    np.testing.assert_allclose(
        obs["context"][-3:],
        np.array([ref, one, ref / (ref + one)]) / [problem.lower_bound(), problem.lower_bound(), 1],
        rtol=1e-6,
    )
    # Without the setting the checkpoint is refused: it observes a longer context.
    (tmp_path / "m.env_kwargs.json").write_text(json.dumps({**kw, "plan_hints": False}))
    with pytest.raises(CheckpointError, match="the policy observes"):
        SB3PolicyScheduler(tmp_path / "m.zip").plan(problem)
