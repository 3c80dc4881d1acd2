"""The Hydra apps of the pipeline's other stages: build-kb and train-predictor (stages 1-2) and
the ablation, composed from the packaged configs and run small."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from agents.ablation import AblationError, ablation_runs, run_ablation
from agents.config import register_configs
from wass_env.cli import compose_config


def _ablation(overrides: list[str]):
    register_configs()
    return compose_config("ablation", overrides)


def test_ablation_variants_compose() -> None:
    runs = ablation_runs(_ablation(["seeds=2", "steps=500", "overrides=['cluster=het8']"]))
    assert [(name, seed) for name, seed, _ in runs][:4] == [
        ("no_rag", 0),
        ("no_rag", 1),
        ("rag_eq3_lam01", 0),
        ("rag_eq3_lam01", 1),
    ]
    assert len(runs) == 10
    by = {(n, s): c for n, s, c in runs}
    assert by["no_rag", 1].seed == 1 and by["no_rag", 1].teacher.enabled is False
    assert by["rag_eq3_lam01", 0].teacher.lam == 0.1
    assert by["rag_potential_lam1", 0].teacher.mode == "potential"
    for (name, _), cfg in by.items():
        assert cfg.train.total_timesteps == 500 and cfg.cluster.n_nodes == 8
        # The sparse reward, but for the dense variant.
        assert cfg.env.reward_weights.makespan == (0.0 if name == "dense_no_rag" else 1.0)
    with pytest.raises(AblationError, match=r"run: unknown variant 'nope'"):
        ablation_runs(_ablation(["run=[nope]"]))
    with pytest.raises(AblationError, match=r"seeds: must be >= 1, got 0"):
        ablation_runs(_ablation(["seeds=0"]))


def test_ablation_run_writes_its_table(tmp_path: Path) -> None:
    cfg = _ablation(
        [
            "run=[no_rag]",
            "seeds=1",
            "steps=128",
            "episodes=2",
            "overrides=['agent.n_steps=64','eval.baselines=[heft]','workload=layered',"
            "'workload.n_tasks=[8,12]','imitation.episodes=0']",
        ]
    )
    out = run_ablation(cfg, tmp_path)
    (row,) = out["rows"]
    assert row["variant"] == "no_rag" and row["seed"] == 0
    with (tmp_path / "no_rag" / "seed0" / "results.csv").open() as f:
        agent = [r for r in csv.DictReader(f) if r["scheduler"] == "maskable_ppo"]
    assert row["ratio_to_heft"] == pytest.approx(
        sum(float(r["ratio_to_heft"]) for r in agent) / len(agent)
    )
    table = (tmp_path / "ablation.md").read_text()
    assert "| DRL w/o RAG (sparse) | 1 |" in table


def test_build_kb_then_train_predictor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from teacher.apps import build_kb, train_predictor
    from teacher.kb import KnowledgeBase

    monkeypatch.setattr(sys, "argv", list(sys.argv))
    kb = tmp_path / "kb.wkb"
    argv = ["profile=tiny", "instances=4", f"out={kb}", f"hydra.run.dir={tmp_path / 'r1'}"]
    assert build_kb(argv) == 0
    base = KnowledgeBase.load(kb)
    assert base.n_episodes == 4 * 2  # two policies per instance in the tiny profile
    assert (tmp_path / "r1" / "build_kb.log").read_text().count("records") >= 1
    out = tmp_path / "teacher"
    argv = [f"kb={kb}", f"out={out}", "epochs=1", "context_epochs=1", "eval_episodes=0"]
    argv += ["seen_episodes=0", "rank_weight=0.5", "context=mean", "margin=0.05"]
    assert train_predictor([*argv, f"hydra.run.dir={tmp_path / 'r2'}"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["instances"]["train"] + report["training"]["instances"]["val"] == 4
    config = report["training"]["config"]
    assert report["greedy_margin"] == 0.05
    assert config["rank_weight"] == 0.5 and config["predictor"]["context"] == "mean"
    for key in ("r2", "pair_accuracy", "family_hit_rate", "greedy_ratio_to_heft"):
        assert key in report  # the headline figures (greedy: NaN, skipped here)
    assert len(KnowledgeBase.load(out / "kb.wkb")) == len(base)
    assert "predictor on held-out data" in (tmp_path / "r2" / "train_predictor.log").read_text()
    bad = [f"kb={kb}", f"out={tmp_path / 'bad'}", "margin=-0.1", f"hydra.run.dir={tmp_path / 'r3'}"]
    assert train_predictor(bad) == 2
    assert "margin: must be a finite number >= 0, got -0.1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
