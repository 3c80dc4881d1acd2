"""The training app: Hydra composition, a tiny end-to-end run, checkpoints, TensorBoard, sweeps."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from agents.config import register_configs
from agents.ppo import MaskablePPOAgent
from agents.train import env_kwargs_from_config, run_training
from wass_env.sim import Problem, cluster_from_spec, execute, preset
from wass_env.workloads import make_sampler

REPO = Path(__file__).resolve().parents[1]
SHORT = [
    "workload=layered",
    "cluster=het16",
    "imitation.episodes=0",
    "env.lookahead=false",
    "env.plan_hints=false",
    "train.total_timesteps=256",
    "train.progress_bar=false",
    "eval.episodes=2",
    "workload.n_tasks=[8,12]",
]
TINY = [*SHORT, "agent.n_steps=128", "agent.batch_size=64"]
BASELINES = {
    "random",
    "slurm",
    "data_locality",
    "single_node",
    "heft",
    "heft_lookahead",
    "portfolio",
    "plan_portfolio",
    "improved_portfolio",
    "best_heuristic",
}


def compose_train(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_expert_options_replace_each_other_whole():
    from agents.imitation import (
        HeuristicExpert,
        PilotExpert,
        PlanExpert,
        PortfolioExpert,
        make_expert,
    )

    # A config group, not a merge: no option keeps another kind's keys (a plan expert given the
    # heuristic's `base` would be refused).
    got = {
        name: dict(compose_train([f"imitation/expert={name}"]).imitation.expert)
        for name in ("heuristic", "plans", "pilot", "portfolio")
    }
    assert got["heuristic"] == {"kind": "heuristic", "base": "heft_lookahead"}
    assert got["plans"] == {
        "kind": "plans",
        "candidates": ["heft", "heft_lookahead", "peft", "cpop"],
        "cpsat_max_tasks": 0,
    }
    assert set(got["pilot"]) == {"kind", "k", "base", "locality", "fortify"}
    assert got["portfolio"] == {
        "kind": "portfolio",
        "candidates": ["heft_lookahead", "single_node"],
    }
    kinds = {
        "heuristic": HeuristicExpert,
        "plans": PlanExpert,
        "pilot": PilotExpert,
        "portfolio": PortfolioExpert,
    }
    for name, spec in got.items():
        assert type(make_expert(spec)) is kinds[name]
    # The plan hints' expert compares the plans the hints describe (an interpolation).
    hinted = compose_train(
        [
            "imitation/expert=plan_portfolio",
            "env.plan_hints=true",
            "env.plan_hint_candidates=[single_node,peft]",
            "env.plan_hint_improve=2",
        ]
    )
    spec = dict(hinted.imitation.expert)
    assert spec == {
        "kind": "portfolio",
        "plans": True,
        "candidates": ["single_node", "peft"],
        "improve": 2,
        "follow": True,  # env.plan_hint_follow's default in conf/train.yaml
    }
    pp = make_expert(spec)
    assert isinstance(pp, PortfolioExpert) and pp.plans and pp.improve == 2 and pp.follow
    assert pp.plan_candidates == ("single_node", "peft")
    cfg = compose_train(
        ["imitation/expert=plans", "imitation.expert.candidates=[heft,single_node]"]
    )
    expert = make_expert(dict(cfg.imitation.expert))
    assert isinstance(expert, PlanExpert)
    assert [s.name for s in expert.candidates] == ["heft", "single_node"]
    # The ablation's rollout expert still merges over the default.
    assert dict(compose_train(["+ablation=reduced"]).imitation.expert) == {
        "kind": "pilot",
        "base": "heft",
        "k": 2,
    }


def test_defaults_compose_into_plain_env_arguments():
    cfg = compose_train([])
    kw = env_kwargs_from_config(cfg)
    # The generalist: every family on hom and het clusters of 4-64 nodes, imitation first.
    assert len(kw["cluster"]) == 18 and kw["max_nodes"] is None  # fixed at training: 64
    assert max(cluster_from_spec(c).n_nodes for c in kw["cluster"]) == 64
    assert len(kw["workload"]["mix"]) == 15 and kw["workload"]["exclude"] == []
    assert {c["network"] for c in kw["cluster"]} == {"contention_free"}
    assert kw["insertion"] is True and kw["reward_weights"]["progress"] == 1.0
    assert kw["lookahead"] is True and kw["reward_scale"] == "reference"
    # The expert and the plan hints compare the same portfolio of plans.
    assert cfg.imitation.episodes > 0 and cfg.imitation.expert.kind == "portfolio"
    assert cfg.imitation.expert.plans is True and cfg.imitation.residual_coef > 0
    assert kw["plan_hints"] is True
    assert kw["plan_hint_candidates"] == ["single_node", "heft", "peft", "cpop", "data_locality"]
    assert list(cfg.imitation.expert.candidates) == kw["plan_hint_candidates"]
    assert cfg.agent._target_ == "agents.ppo.MaskablePPOAgent"
    cfg2 = compose_train(["cluster=hom32", "agent=slurm"])
    assert env_kwargs_from_config(cfg2)["cluster"] == {
        "preset": "hom32",
        "network": "contention_free",
    }
    # Every cluster of the group takes a network model.
    cfg3 = compose_train(["cluster=het8", "cluster.network=nic"])
    spec = env_kwargs_from_config(cfg3)["cluster"]
    assert cluster_from_spec(spec).network == "nic" and cluster_from_spec(spec).n_nodes == 8


def test_tiny_imitation_run_end_to_end(tmp_path: Path):
    cfg = compose_train(
        [
            *SHORT,
            "env.lookahead=true",
            "env.plan_hints=true",  # the default expert follows the plan hints
            "train.total_timesteps=0",
            "imitation.episodes=4",
            "imitation.dagger_rounds=1",
            "imitation.dagger_episodes=2",
            "imitation.epochs=2",
            "imitation.dagger_epochs=1",
            "imitation.n_jobs=1",
            f"imitation.cache={tmp_path / 'cache'}",
            "eval.baselines=[heft]",
        ]
    )
    out = run_training(cfg, tmp_path / "run")
    report = json.loads((tmp_path / "run" / "imitation.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1]
    assert report["rounds"][0]["ratio_to_reference"] <= 1.0 + 1e-9  # the expert vs HEFT
    assert report["states"] == report["rounds"][1]["states"] > report["rounds"][0]["states"]
    assert len(list((tmp_path / "cache").glob("expert-*.npz"))) == 1
    assert out["checkpoint"] is not None and {r["scheduler"] for r in out["rows"]} == {
        "maskable_ppo",
        "heft",
    }


def test_tiny_training_run_end_to_end(tmp_path: Path):
    cfg = compose_train(TINY)
    out = run_training(cfg, tmp_path)
    # results: the policy and 10 baselines x 2 fixed evaluation instances, the same for every
    # scheduler, from the evaluation seed range
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == (1 + len(BASELINES)) * 2 == 11 * 2
    assert {r["scheduler"] for r in rows} == {"maskable_ppo", *BASELINES}
    assert {int(r["seed"]) for r in rows} == {10**9, 10**9 + 1}
    for seed in {r["seed"] for r in rows}:
        assert len({r["workflow"] for r in rows if r["seed"] == seed}) == 1
    md = (tmp_path / "results.md").read_text()
    assert "÷ best_heuristic" in md and "(0/2/0)" in md  # heft against itself: 2 ties
    assert all(float(r["makespan"]) >= float(r["lower_bound"]) - 1e-9 for r in rows)
    assert "| maskable_ppo | 2 |" in (tmp_path / "results.md").read_text()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("results.csv", "results.md", "model.zip"):  # not private temp-file modes
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
    heft = next(e for e in out["summary"] if e["scheduler"] == "heft")
    assert heft["ratio_to_heft"] == 1.0
    # TensorBoard got the scheduling metrics
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert {"sched/makespan", "sched/ratio_to_heft"} <= set(acc.Tags()["scalars"])
    # the learning curve: one row per finished training episode, in order
    with (tmp_path / "curve.csv").open() as f:
        curve = list(csv.DictReader(f))
    assert len(curve) == len(out["train_episodes"]) > 0
    steps = [int(r["timestep"]) for r in curve]
    assert steps == sorted(steps) and steps[-1] <= 256 + 2 * 128
    assert all(float(r["ratio_to_heft"]) > 0 and r["family"] == "layered" for r in curve)
    np.testing.assert_allclose(
        [float(r["ratio_to_lower_bound"]) for r in curve], [x for _, x in out["train_episodes"]]
    )
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


def test_evaluation_on_another_workload_and_cluster(tmp_path: Path):
    # Trained on layered DAGs on het16; scored on chains on 4 heterogeneous nodes (e.g. the
    # families a run held out): the rows name them.
    over = [*SHORT, "agent=slurm", "eval.workload={generator: chain, n_tasks: 5}"]
    over.append("eval.cluster={kind: heterogeneous, n_nodes: 4}")
    out = run_training(compose_train(over), tmp_path)
    assert {r["family"] for r in out["rows"]} == {"chain"}
    assert {r["n_nodes"] for r in out["rows"]} == {4} and {r["n_tasks"] for r in out["rows"]} == {5}
    from agents.train import TrainConfigError, check_config

    with pytest.raises(TrainConfigError, match="eval.workload: .*generator"):
        check_config(compose_train([*SHORT, "eval.workload={generator: nope}"]))
    with pytest.raises(TrainConfigError, match="eval.cluster: has clusters of 32 nodes"):
        check_config(compose_train([*SHORT, "eval.cluster=het32"]))


def test_heuristic_agent_needs_no_training(tmp_path: Path):
    out = run_training(compose_train([*SHORT, "agent=slurm"]), tmp_path)
    assert out["checkpoint"] is None
    assert {r["scheduler"] for r in out["rows"]} == BASELINES
    # Another training seed is scored on the same evaluation instances (paired).
    other = run_training(compose_train([*SHORT, "agent=slurm", "seed=7"]), tmp_path / "s7")
    key = [(r["scheduler"], r["seed"], r["workflow"], r["makespan"]) for r in out["rows"]]
    assert [(r["scheduler"], r["seed"], r["workflow"], r["makespan"]) for r in other["rows"]] == key


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=999999", "seed: train seeds 999999..1000000 leave the train range"),
        ("eval.seed=5", "eval.seed: eval seeds 5..6 leave the eval range"),
        ("eval.baselines=[heft,hefty]", r"eval.baselines\[1\]='hefty': unknown scheduler"),
        (
            "imitation.episodes=2 imitation.residual_coef=1 "
            "agent.features_extractor_kwargs.prior=null",
            "imitation.residual_coef: 1.0 keeps the policy near its prior, and there is none",
        ),
        (
            "imitation.episodes=2 imitation/expert=plan_portfolio env.lookahead=true",
            "imitation/expert=plan_portfolio follows the plan hints' portfolio: it needs "
            "env.plan_hints=true and env.plan_hint_candidates",
        ),
        (
            "imitation.episodes=2 imitation/expert=plan_portfolio env.lookahead=true "
            "env.plan_hints=true env.plan_hint_candidates=[heft] "
            "imitation.expert.candidates=[peft]",
            r"imitation.expert.candidates: \['peft'\] must be the plans the hints describe",
        ),
    ],
)
def test_bad_seed_ranges_and_baselines_are_refused(override: str, message: str) -> None:
    from agents.train import TrainConfigError, check_config

    with pytest.raises(TrainConfigError, match=message):
        check_config(compose_train([*SHORT, *override.split()]))


def test_a_cluster_mix_becomes_a_list_of_clusters() -> None:
    kw = env_kwargs_from_config(compose_train(["cluster=mix", "workload=mix"]))
    sizes = sorted({c["n_nodes"] for c in kw["cluster"]})
    assert sizes == [4, 6, 8, 12, 16, 24, 32, 48, 64] and len(kw["cluster"]) == 18
    assert {c["kind"] for c in kw["cluster"]} == {"homogeneous", "heterogeneous"}
    assert len(kw["workload"]["mix"]) == 15 and kw["workload"]["exclude"] == []


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


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny knowledge base and teacher model (stages 1 and 2), keyed together."""
    from teacher.build import BuildConfig, build_knowledge_base
    from teacher.encoder import EncoderConfig
    from teacher.predictor import PredictorConfig
    from teacher.training import PredictorTrainConfig, train_teacher

    out = tmp_path_factory.mktemp("teacher")
    kb = build_knowledge_base(
        BuildConfig(
            workload={"generator": "layered", "n_tasks": [8, 12], "ccr": 1.0},
            policies=("heft", "heft~0.3", "random"),
            policies_per_instance=2,
            instances=8,
            branch_prob=0.2,
        )
    )
    res = train_teacher(
        kb,
        PredictorTrainConfig(
            encoder=EncoderConfig(hidden=16, layers=1, embed_dim=8),
            predictor=PredictorConfig(hidden=16, k=3),
            epochs=2,
            context_epochs=1,
        ),
    )
    kb.set_keys(res.keys, res.model.key_model)
    kb.save(out / "kb.wkb")
    res.model.save(out / "model.wtm")
    return {"kb": str(out / "kb.wkb"), "model": str(out / "model.wtm")}


def test_training_with_the_teacher(tmp_path: Path, tiny_teacher: dict[str, str]):
    rag = [
        "teacher=rag",
        f"teacher.kb={tiny_teacher['kb']}",
        f"teacher.model={tiny_teacher['model']}",
        "teacher.index=null",
    ]
    out = run_training(compose_train([*TINY, *rag, "teacher.lam=0.5"]), tmp_path / "rag")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((tmp_path / "rag" / "tb").rglob("events.*")).parent))
    acc.Reload()
    r_rag = [e.value for e in acc.Scalars("teacher/r_rag")]
    assert r_rag and all(v <= 0.0 for v in r_rag)  # eq. 3 is never positive
    assert "teacher/agree" in acc.Tags()["scalars"]
    assert out["checkpoint"] is not None
    # lambda = 0 is "DRL without RAG": the very same training as without the wrapper
    plain = run_training(compose_train([*TINY, "teacher=none"]), tmp_path / "plain")
    off = run_training(compose_train([*TINY, *rag, "teacher.lam=0.0"]), tmp_path / "off")
    assert [r["makespan"] for r in off["rows"]] == [r["makespan"] for r in plain["rows"]]


def test_missing_teacher_files_are_named(tmp_path: Path):
    cfg = compose_train([*TINY, "teacher=rag", f"teacher.kb={tmp_path / 'nope.wkb'}"])
    with pytest.raises(FileNotFoundError, match=r"teacher.kb: '.*nope.wkb' does not exist"):
        run_training(cfg, tmp_path)


def test_user_mistakes_give_one_line_and_exit_code_2(tmp_path: Path, capsys):
    from agents.train import main

    cfg = compose_train([*SHORT, "agent=slurm", "workload.n_tasks=-3"])
    assert main(cfg, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: workload.n_tasks: must be an integer >= 1, got -3"]
    assert not (tmp_path / "results.csv").exists()
    assert main(compose_train([*SHORT, "agent=slurm", "eval.baselines=[foo]"]), tmp_path) == 2
    assert "eval.baselines[0]='foo': unknown scheduler" in capsys.readouterr().err
    for override, message in [
        ("train.n_envs=0", "train.n_envs: must be an integer in [1, 1024], got 0"),
        ("eval.reference=nope", "eval.reference: 'nope' is not among"),
        ("env.task_order=bad", "task_order must be one of"),
    ]:
        assert main(compose_train([*SHORT, "agent=slurm", override]), tmp_path) == 2
        assert message in capsys.readouterr().err


def test_latest_link_points_at_the_last_run_under_runs_train(tmp_path: Path):
    from agents.train import link_latest

    train = tmp_path / "runs" / "train"
    a, b = train / "2026-01-01_00-00-00", train / "2026-01-01_00-00-01"
    for d in (a, b):
        d.mkdir(parents=True)
        (d / "model.zip").write_text(d.name)
    assert link_latest(a) == train / "latest"
    assert (train / "latest" / "model.zip").read_text() == a.name
    link_latest(b)
    assert (train / "latest" / "model.zip").read_text() == b.name
    assert os.readlink(train / "latest") == b.name  # relative: the tree can move
    assert link_latest(tmp_path / "elsewhere") is None
