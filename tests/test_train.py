"""The training app: Hydra composition, a tiny end-to-end run, checkpoints, TensorBoard, sweeps."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from agents.config import register_configs
from agents.ppo import MaskablePPOAgent
from agents.train import env_kwargs_from_config, run_training
from wass_env.sim import Problem, execute, preset
from wass_env.workloads import make_sampler

REPO = Path(__file__).resolve().parents[1]
SHORT = [
    "train.total_timesteps=256",
    "train.progress_bar=false",
    "eval.episodes=2",
    "workload.n_tasks=[8,12]",
]
TINY = [*SHORT, "agent.n_steps=128", "agent.batch_size=64"]


def compose_train(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_defaults_compose_into_plain_env_arguments():
    cfg = compose_train([])
    kw = env_kwargs_from_config(cfg)
    assert kw["cluster"] == {"preset": "het16"}
    assert kw["workload"]["generator"] == "layered" and kw["workload"]["n_tasks"] == [20, 40]
    assert kw["insertion"] is True and kw["reward_weights"]["progress"] == 1.0
    assert cfg.agent._target_ == "agents.ppo.MaskablePPOAgent"
    cfg2 = compose_train(["cluster=hom32", "agent=slurm"])
    assert env_kwargs_from_config(cfg2)["cluster"] == {"preset": "hom32"}


def test_tiny_training_run_end_to_end(tmp_path: Path):
    cfg = compose_train(TINY)
    out = run_training(cfg, tmp_path)
    # results: 4 schedulers x 2 unseen episodes, identical instances for every scheduler
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert {r["scheduler"] for r in rows} == {"maskable_ppo", "random", "slurm", "heft"}
    for seed in {r["seed"] for r in rows}:
        assert len({r["workflow"] for r in rows if r["seed"] == seed}) == 1
    assert all(float(r["makespan"]) >= float(r["lower_bound"]) - 1e-9 for r in rows)
    assert "| maskable_ppo | 2 |" in (tmp_path / "results.md").read_text()
    heft = next(e for e in out["summary"] if e["scheduler"] == "heft")
    assert heft["ratio_to_heft"] == 1.0
    # TensorBoard got the scheduling metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "sched/makespan" in acc.Tags()["scalars"]
    # the checkpoint loads and plans a fresh instance validly
    agent = MaskablePPOAgent.load(out["checkpoint"])
    assert agent.env_kwargs["max_nodes"] == 16
    wf = make_sampler({"generator": "layered", "n_tasks": 15}).sample(np.random.default_rng(1))
    problem = Problem(wf, preset("het16"))
    plan = agent.plan(problem)
    assert np.all(plan.node >= 0) and plan.makespan >= problem.lower_bound()
    assert execute(plan).makespan == plan.makespan
    # the same seed trains the same policy
    again = run_training(cfg, tmp_path / "again")
    assert [r["makespan"] for r in again["rows"]] == [r["makespan"] for r in out["rows"]]


def test_heuristic_agent_needs_no_training(tmp_path: Path):
    out = run_training(compose_train([*SHORT, "agent=slurm"]), tmp_path)
    assert out["checkpoint"] is None
    assert {r["scheduler"] for r in out["rows"]} == {"slurm", "random", "heft"}


def test_multirun_sweep(tmp_path: Path):
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        "-m",
        *TINY,
        "eval.episodes=1",
        "cluster=het16,hom16",
        f"hydra.sweep.dir={tmp_path}",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = sorted(p.parent.name for p in tmp_path.rglob("results.csv"))
    assert len(done) == 2 and any("hom16" in d for d in done) and any("het16" in d for d in done)
