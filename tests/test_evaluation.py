"""The evaluation harness: confidence intervals, paired ratios, the grid, the Hydra app, errors."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from agents.evaluation import (
    CPSATConfig,
    EvaluationError,
    Grid,
    add_paired_ratios,
    ci95,
    episode_problems,
    grid_from_config,
    main,
    register_configs,
    run_evaluation,
    run_grid,
    summarize,
)
from agents.heft import HEFTScheduler
from wass_env.sim.cluster import cluster_from_spec
from wass_env.sim.workflow import Workflow
from wass_env.workloads import layered

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
T_975_4 = 2.7764451051977987  # Student t quantile t(0.975, 4 degrees of freedom), from tables

# Three single-core nodes of speeds 1, 2 and 0.5 on a 1 GB/s network without latency: with the
# integer runtimes and multiples of 0.1 GB below, every duration is a multiple of 0.1 s, so the
# CP-SAT model is exact and an OPTIMAL status is a true optimum.
TINY_CLUSTER = {
    "speed": [1.0, 2.0, 0.5],
    "cores": [1, 1, 1],
    "bandwidth": 1e9,
    "latency": 0.0,
    "name": "tiny3",
}


def _tiny_workflows(seed: int, count: int) -> list[Workflow]:
    """``count`` random 7-task DAGs named ``tiny-0`` ...; durations exact in tenths of seconds."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        wf = layered(7, rng, width=3, density=0.5)
        out.append(
            wf.replace(
                work=rng.integers(1, 20, wf.n_tasks).astype(np.float64),  # [s]
                edge_bytes=rng.integers(0, 40, wf.n_edges) * 1e8,  # [bytes]: k x 0.1 s
                name=f"tiny-{i}",
            )
        )
    return out


def _compose(*overrides: str) -> DictConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("evaluate", overrides=list(overrides))


# ---------------------------------------------------------------------------------------------
# statistics


def test_ci95_by_hand() -> None:
    # mean 3; sample sd sqrt(2.5); half-width t(0.975, 4) * sqrt(2.5) / sqrt(5) = 1.96324...
    mean, half = ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert half == pytest.approx(T_975_4 * math.sqrt(2.5) / math.sqrt(5.0), rel=1e-12)
    assert half == pytest.approx(1.963243, abs=1e-6)
    assert ci95([7.5]) == (7.5, 0.0)


def test_paired_ratios_divide_within_an_episode() -> None:
    rows = [
        {"scheduler": "heft", "workload": "a", "cluster": "c", "seed": 0, "makespan": 10.0},
        {"scheduler": "slurm", "workload": "a", "cluster": "c", "seed": 0, "makespan": 15.0},
        {"scheduler": "heft", "workload": "a", "cluster": "c", "seed": 1, "makespan": 20.0},
        {"scheduler": "slurm", "workload": "a", "cluster": "c", "seed": 1, "makespan": 22.0},
        {"scheduler": "slurm", "workload": "b", "cluster": "c", "seed": 0, "makespan": 9.0},
    ]
    add_paired_ratios(rows, "heft", episode=("workload", "cluster", "seed"))
    assert [r["ratio_to_heft"] for r in rows[:4]] == [1.0, 1.5, 1.0, 1.1]
    assert math.isnan(rows[4]["ratio_to_heft"])  # no HEFT row for workload b
    # The mean of paired ratios (1.5, 1.1) is not the ratio of means (18.5 / 15).
    summary = summarize(rows, order=["heft", "slurm"])
    slurm_a = next(e for e in summary if e["workload"] == "a" and e["scheduler"] == "slurm")
    assert slurm_a["ratio_to_heft"] == pytest.approx(1.3)
    assert slurm_a["makespan"] == pytest.approx(18.5)
    rows.append(dict(rows[0]))
    with pytest.raises(ValueError, match="do not identify an episode"):
        add_paired_ratios(rows, "heft", episode=("workload", "cluster", "seed"))


# ---------------------------------------------------------------------------------------------
# the grid


def _tiny_grid(**changes: object) -> Grid:
    # Two workloads whose workflows have the same names ("tiny-0", ...) but different sizes:
    # pairing must go by workload label, not by workflow name.
    kwargs: dict[str, object] = {
        "workloads": {"a": _tiny_workflows(1, 3), "b": _tiny_workflows(2, 3)},
        "clusters": {"tiny3": TINY_CLUSTER},
        "seeds": [5, 6, 7],
        "schedulers": ["random", "slurm", "data_locality", "heft", "min_min", "cpsat"],
        "cpsat": CPSATConfig(time_limit=10.0),
    }
    kwargs.update(changes)
    return Grid(**kwargs)  # type: ignore[arg-type]


def test_grid_rows_pairing_and_cpsat_optimum() -> None:
    grid = _tiny_grid()
    result = run_grid(grid)
    rows = result.rows
    # 2 workloads x 1 cluster x 3 seeds x 6 schedulers (every instance is small enough for CP-SAT)
    assert len(rows) == 2 * 1 * 3 * 6
    assert {(r["workload"], r["seed"], r["scheduler"]) for r in rows} == {
        (w, s, n) for w in ("a", "b") for s in grid.seeds for n in grid.schedulers
    }
    # HEFT's makespan, planned independently on the instance each episode draws.
    for wl in ("a", "b"):
        problems = episode_problems(
            {"workload": grid.workloads[wl], "cluster": TINY_CLUSTER}, grid.seeds
        )
        for seed, problem in zip(grid.seeds, problems, strict=True):
            heft = HEFTScheduler().plan(problem).makespan
            for r in rows:
                if r["workload"] == wl and r["seed"] == seed:
                    assert r["workflow"] == problem.workflow.name
                    assert r["ratio_to_heft"] == r["makespan"] / heft
    assert all(r["ratio_to_heft"] == 1.0 for r in rows if r["scheduler"] == "heft")
    # CP-SAT is proven optimal on these exact instances, and without noise nobody beats it.
    assert all(r["cpsat_status"] == "OPTIMAL" and r["cpsat_optimal"] for r in rows)
    assert all(r["ratio_to_cpsat"] == 1.0 for r in rows if r["scheduler"] == "cpsat")
    assert all(r["ratio_to_cpsat"] >= 1.0 - 1e-12 for r in rows)
    assert all(r["makespan"] >= r["cpsat_lower_bound"] - 1e-9 for r in rows)
    assert all(r["makespan"] >= r["lower_bound"] - 1e-9 for r in rows)
    # The fork-join bound is the problem's own, one per instance, and under every optimum.
    for wl in ("a", "b"):
        problems = episode_problems(
            {"workload": grid.workloads[wl], "cluster": TINY_CLUSTER}, grid.seeds
        )
        for seed, problem in zip(grid.seeds, problems, strict=True):
            fjb = problem.fork_join_bound()
            ours = [r for r in rows if r["workload"] == wl and r["seed"] == seed]
            assert all(r["fork_join_bound"] == fjb for r in ours)
            assert fjb <= min(r["makespan"] for r in ours) * (1 + 1e-9)
    # CP-SAT strictly beats HEFT on some of them (the instances are not trivial).
    assert any(r["ratio_to_heft"] < 1.0 for r in rows if r["scheduler"] == "cpsat")

    summary = summarize(rows, order=result.names)
    assert len(summary) == 2 * 6
    for e in summary:
        ms = [
            r["makespan"]
            for r in rows
            if (r["workload"], r["scheduler"]) == (e["workload"], e["scheduler"])
        ]
        assert e["makespan"] == pytest.approx(np.mean(ms), rel=1e-12)
        assert e["makespan_ci95"] == pytest.approx(ci95(ms)[1], rel=1e-12)
    cp = next(e for e in summary if e["workload"] == "a" and e["scheduler"] == "cpsat")
    assert (cp["cpsat_optimal"], cp["cpsat_proven_optimal"]) == (3, 3)


def test_cpsat_only_on_small_clusters_and_same_seed_same_rows() -> None:
    grid = _tiny_grid(
        workloads={"a": _tiny_workflows(1, 2)},
        clusters={"tiny3": TINY_CLUSTER, "het16": "het16"},
        seeds=[0, 1],
        schedulers=["slurm", "heft", "cpsat"],
    )
    rows = run_grid(grid).rows
    # 1 workload x 2 clusters x 2 seeds x 3 schedulers, less CP-SAT on the 16-node cluster
    assert len(rows) == 1 * 2 * 2 * 3 - 2
    assert not [r for r in rows if r["cluster"] == "het16" and r["scheduler"] == "cpsat"]
    assert all(math.isnan(r["ratio_to_cpsat"]) for r in rows if r["cluster"] == "het16")
    assert all(r["cpsat_status"] == "" for r in rows if r["cluster"] == "het16")
    assert repr(run_grid(grid).rows) == repr(rows)  # same seeds, same rows (NaN included)


def test_noise_is_seeded_by_the_episode() -> None:
    # With runtime noise the realized makespan differs from the planned one, and two runs of the
    # grid give the same realized makespans (the noise generator is seeded by the episode seed).
    grid = _tiny_grid(seeds=[3], schedulers=["heft", "cpsat"], noise=0.3)
    rows = run_grid(grid).rows
    again = run_grid(grid).rows
    assert [r["makespan"] for r in rows] == [r["makespan"] for r in again]
    assert any(r["makespan"] != r["planned_makespan"] for r in rows)


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_names_the_field_and_value() -> None:
    with pytest.raises(EvaluationError, match=r"schedulers\[1\]='hefty': unknown scheduler"):
        run_grid(_tiny_grid(schedulers=["slurm", "hefty"]))
    with pytest.raises(EvaluationError, match=r"reference='heft': not among the schedulers"):
        run_grid(_tiny_grid(schedulers=["slurm"]))
    missing = {"name": "ppo", "scheduler": "heft", "checkpoint": "nowhere/model.zip"}
    with pytest.raises(EvaluationError, match=r"schedulers\[1\]='nowhere/model.zip': no such"):
        run_grid(_tiny_grid(schedulers=["heft", missing]))
    with pytest.raises(EvaluationError, match=r"clusters.big='het9': unknown cluster preset"):
        run_grid(_tiny_grid(clusters={"big": "het9"}))
    with pytest.raises(EvaluationError, match=r"workloads.w.n_tasks: .*-3"):
        run_grid(_tiny_grid(workloads={"w": {"generator": "chain", "n_tasks": -3}}))
    # 4 cores per task on single-core nodes
    with pytest.raises(EvaluationError, match=r"workloads.w: does not fit cluster 'tiny3'"):
        run_grid(_tiny_grid(workloads={"w": {"generator": "chain", "n_tasks": 3, "cores": 4}}))


def test_missing_checkpoint_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "model.zip"
    cfg = _compose("experiment=smoke", f"checkpoint={missing}")
    assert main(cfg, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: checkpoint='{missing}': no such checkpoint file")
    assert not (tmp_path / "out").exists()  # nothing written


def test_script_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "evaluate.py"),
            "experiment=smoke",
            "schedulers=[heft,fastest]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: schedulers[1]='fastest': unknown scheduler; valid names: ")
    assert "heft" in lines[0] and "cpsat" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# configs and the Hydra app


def test_experiments_compose_to_the_paper_setups() -> None:
    cfg = _compose()  # experiment=default
    grid = grid_from_config(cfg)
    assert list(grid.workloads) == [
        "chain",
        "fan_in",
        "fan_out",
        "cybershake",
        "genomics49",
        "montage",
    ]
    assert grid.workloads["genomics49"] == {"generator": "genomics49"}
    assert len(grid.seeds) >= 30 and "cpsat" in grid.names
    assert {"single_node", "heft_lookahead", "data_locality", "best_heuristic"} <= set(grid.names)
    assert grid.seeds[0] == 10**9  # the evaluation seed range
    assert [cluster_from_spec(c).n_nodes for c in grid.clusters.values()] == [16, 8]

    scale = grid_from_config(_compose("experiment=paper_scale"))
    sizes = {cluster_from_spec(c).n_nodes for c in scale.clusters.values()}
    assert sizes == {16, 32, 64, 128}
    kinds = {
        cluster_from_spec(c).speed.min() == cluster_from_spec(c).speed.max()
        for c in scale.clusters.values()
    }
    assert kinds == {True, False}  # homogeneous and heterogeneous

    sweep = grid_from_config(_compose("experiment=ccr_sweep"))
    assert [w["ccr"] for w in sweep.workloads.values()] == [0.1, 1.0, 10.0]
    synthetic = grid_from_config(_compose("experiment=paper_synthetic"))
    assert [w["generator"] for w in synthetic.workloads.values()] == ["chain", "fan_in", "fan_out"]
    real = grid_from_config(_compose("experiment=paper_realworld"))
    assert real.workloads["montage"]["recipe"] == "montage"
    assert real.workloads["cybershake"]["generator"] == "cybershake"
    genomics = grid_from_config(_compose("experiment=paper_genomics49"))
    assert genomics.cpsat.max_tasks == 49
    assert cluster_from_spec(genomics.clusters["het2"]).n_nodes == 2


def test_app_writes_csv_markdown_and_plots(tmp_path: Path) -> None:
    cfg = _compose("experiment=smoke")
    out = run_evaluation(cfg, tmp_path / "a")
    with (tmp_path / "a" / "episodes.csv").open() as f:
        rows = list(csv.DictReader(f))
    # 2 workloads x 1 cluster x 2 seeds x 4 schedulers
    assert len(rows) == 2 * 1 * 2 * 4 == len(out["rows"])
    assert {r["scheduler"] for r in rows} == {"slurm", "data_locality", "heft", "cpsat"}
    assert all(float(r["ratio_to_heft"]) == 1.0 for r in rows if r["scheduler"] == "heft")
    md = (tmp_path / "a" / "results.md").read_text()
    assert "## chain x het8 (6 tasks, 8 nodes, CCR 1)" in md
    assert "| heft | 2 |" in md and "| 1.000 ± 0.000 |" in md
    assert "CP-SAT: 2 OPTIMAL" in md
    png = b"\x89PNG\r\n\x1a\n"
    for name in ["makespan.png", "ratio_to_heft.png"] + [
        f"gantt/{s}.png" for s in ("slurm", "data_locality", "heft", "cpsat")
    ]:
        assert (tmp_path / "a" / name).read_bytes()[:8] == png, name
    assert not list((tmp_path / "a").glob("**/*.tmp"))
    # Same config, same seeds: the same episodes, byte for byte.
    run_evaluation(cfg, tmp_path / "b")
    assert (tmp_path / "a" / "episodes.csv").read_bytes() == (
        tmp_path / "b" / "episodes.csv"
    ).read_bytes()


def _tiny_checkpoint(path: Path, cluster: object = TINY_CLUSTER) -> Path:
    """A barely trained policy (the tests are about the plumbing, not about its quality),
    trained without insertion."""
    from agents.ppo import MaskablePPOAgent, make_vec

    env_kwargs = {"workload": _tiny_workflows(1, 3), "cluster": cluster, "insertion": False}
    agent = MaskablePPOAgent(
        env_kwargs=env_kwargs, net_arch=(8,), seed=0, n_steps=16, batch_size=16
    )
    venv = make_vec(env_kwargs, 1, 0)
    agent.learn(venv, 16)
    venv.close()
    agent.env_kwargs = {"insertion": False, "task_order": "rank"}  # what the sidecar records
    return agent.save(path)


def test_checkpoint_joins_the_grid_with_its_own_env_settings(tmp_path: Path) -> None:
    from agents.ppo import MaskablePPOAgent

    path = _tiny_checkpoint(tmp_path / "model.zip")

    ppo = {"name": "ppo", "scheduler": "policy", "checkpoint": str(path)}
    grid = _tiny_grid(seeds=[5, 6], schedulers=["heft", "cpsat", ppo])
    rows = run_grid(grid).rows
    ppo_rows = [r for r in rows if r["scheduler"] == "ppo"]
    assert len(rows) == 2 * 2 * 3 and len(ppo_rows) == 2 * 2
    # The policy plans with the insertion policy it was trained with; the baselines with theirs.
    assert all(r["insertion"] is False for r in ppo_rows)
    assert all(r["insertion"] is True for r in rows if r["scheduler"] != "ppo")
    assert all(r["ratio_to_cpsat"] >= 1.0 - 1e-12 for r in ppo_rows)
    loaded = MaskablePPOAgent.load(path)
    problems = episode_problems({"workload": grid.workloads["a"], "cluster": TINY_CLUSTER}, [5, 6])
    for problem, r in zip(problems, [r for r in ppo_rows if r["workload"] == "a"], strict=True):
        assert r["makespan"] == loaded.plan(problem, insertion=False).makespan

    # A policy with 3 actions cannot schedule a 16-node cluster: refused before anything runs.
    with pytest.raises(EvaluationError, match=r"schedulers\[1\]=.*at most 3 nodes; clusters.h"):
        run_grid(_tiny_grid(clusters={"h": "het16"}, schedulers=["heft", ppo]))


# ---------------------------------------------------------------------------------------------
# fixed instances, scheduler specs, outcome counts, leave-one-family-out


def test_instances_are_a_function_of_their_seed() -> None:
    # A pool of 2 recipe instances would make 4 seeds share workflows; each seed's instance is
    # drawn afresh, and does not depend on the other seeds evaluated.
    spec = {"workload": {"recipe": "srasearch", "n_tasks": [22, 40], "pool": 2}, "cluster": "het16"}
    seeds = [10**9 + i for i in range(4)]
    together = episode_problems(spec, seeds)
    assert len({p.workflow.name for p in together}) == 4
    for seed, problem in zip(seeds, together, strict=True):
        (alone,) = episode_problems(spec, [seed])
        assert alone.workflow == problem.workflow
    assert episode_problems(spec, seeds[::-1])[0].workflow == together[-1].workflow


def test_outcome_counts_by_hand() -> None:
    rows = [
        {"workload": "w", "cluster": "c", "seed": s, "scheduler": n, "makespan": m}
        for s, (h, x) in enumerate([(10.0, 5.0), (10.0, 10.0), (10.0, 10.0 + 1e-9), (4.0, 6.0)])
        for n, m in (("heft", h), ("x", x))
    ]
    add_paired_ratios(rows, "heft")
    (x,) = [e for e in summarize(rows) if e["scheduler"] == "x"]
    # ratios 0.5 (win), 1.0 (tie), 1 + 1e-10 (tie: within 1e-9), 1.5 (loss)
    assert (x["wins_heft"], x["ties_heft"], x["losses_heft"]) == (1, 2, 1)
    assert x["vs_heft"] == "1/2/1"
    assert x["ratio_to_heft"] == pytest.approx((0.5 + 1.0 + 1.0 + 1e-10 + 1.5) / 4)
    assert "best_heuristic" not in str(x)  # no best_heuristic rows: nothing counted


def test_any_scheduler_spec_joins_the_grid() -> None:
    grid = _tiny_grid(
        schedulers=[
            "heft",
            "slurm",
            "data_locality",
            {"name": "mine", "_target_": "agents.baselines.SlurmScheduler"},
            {"name": "cp", "scheduler": "cpsat", "time_limit": 5.0},
            {"name": "dl_a", "scheduler": "data_locality", "workloads": ["a"]},
            {"name": "dl", "scheduler": "data_locality", "workloads": ["b"]},
            {"name": "dl", "scheduler": "heft", "workloads": ["a"]},
        ]
    )
    result = run_grid(grid)
    rows = result.rows
    assert result.names == ["heft", "slurm", "data_locality", "mine", "cp", "dl_a", "dl"]
    by = {(r["workload"], r["seed"], r["scheduler"]): r for r in rows}
    for wl in ("a", "b"):
        for s in grid.seeds:
            assert by[wl, s, "mine"]["makespan"] == by[wl, s, "slurm"]["makespan"]
            assert by[wl, s, "cp"]["makespan"] <= by[wl, s, "heft"]["makespan"] + 1e-9
    assert {r["workload"] for r in rows if r["scheduler"] == "dl_a"} == {"a"}
    # "dl" is HEFT on workload a and data locality on workload b
    assert all(by["a", s, "dl"]["makespan"] == by["a", s, "heft"]["makespan"] for s in grid.seeds)
    dl_b = [by["b", s, "dl"]["makespan"] for s in grid.seeds]
    assert dl_b == [by["b", s, "data_locality"]["makespan"] for s in grid.seeds]
    assert dl_b != [by["b", s, "heft"]["makespan"] for s in grid.seeds]

    bad = [
        ([{"name": "x", "_target_": "agents.nowhere.Sched"}], r"schedulers\[0\]._target_.*cannot"),
        ([{"name": "x", "checkpoint": "m.zip"}], r"needs _target_ .* or scheduler"),
        (["heft", {"name": "heft", "scheduler": "slurm"}], r"column 'heft' is listed twice"),
        (["heft", {"scheduler": "slurm", "workloads": ["zz"]}], r"workloads='zz': not one of"),
        ([{"scheduler": "hefty"}], r"schedulers\[0\].scheduler='hefty': unknown scheduler"),
    ]
    for schedulers, message in bad:
        with pytest.raises(EvaluationError, match=message):
            run_grid(_tiny_grid(schedulers=schedulers))


def test_workers_start_by_spawn_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from agents.evaluation.run import worker_start_method

    for mod in ("torch", "faiss"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    assert worker_start_method() is None and worker_start_method("fork") == "fork"
    monkeypatch.setitem(sys.modules, "torch", object())
    assert worker_start_method() == "spawn" and worker_start_method("forkserver") == "forkserver"


def test_workers_run_one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from agents.evaluation.run import _one_thread_worker

    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    before = torch.get_num_threads()
    try:
        _one_thread_worker()
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_parallel_workers_with_a_torch_policy(tmp_path: Path) -> None:
    """Forked children of a process with torch's thread pool can hang; spawned ones do not."""
    path = _tiny_checkpoint(tmp_path / "model.zip")
    ppo = {"name": "ppo", "scheduler": "policy", "checkpoint": str(path)}
    grid = _tiny_grid(seeds=[5, 6], schedulers=["heft", ppo])
    assert repr(run_grid(grid, workers=2).rows) == repr(run_grid(grid).rows)


def test_parallel_workers_give_the_same_rows() -> None:
    grid = _tiny_grid(schedulers=["heft", "heft_lookahead", "best_heuristic", "random"])
    serial = run_grid(grid).rows
    parallel = run_grid(grid, workers=2).rows
    assert repr(parallel) == repr(serial)


def test_per_file_workloads_score_every_file_once(shared_data: Path) -> None:
    files = sorted(str(p) for p in (shared_data / "dax").glob("Montage_*.xml"))
    grid = _tiny_grid(
        workloads={
            "own": {"files": files, "per_file": True},
            "ccr1": {"files": files, "per_file": True, "ccr": 1.0},
        },
        clusters={"h": {"kind": "heterogeneous", "n_nodes": [4, 6]}},
        seeds=[10**9, 10**9 + 1, 10**9 + 2],
        schedulers=["heft", "single_node"],
    )
    rows = run_grid(grid).rows
    heft = [r for r in rows if r["scheduler"] == "heft"]
    assert [r["workflow"] for r in heft if r["workload"] == "own"] == ["Montage_25", "Montage_50"]
    assert {r["n_nodes"] for r in heft} <= {4, 6}
    assert all(abs(r["ccr"] - 1.0) < 1e-9 for r in heft if r["workload"] == "ccr1")
    assert all(r["ccr"] < 0.1 for r in heft if r["workload"] == "own")  # recorded: light


def _gen_cfg(**changes: object) -> DictConfig:
    from omegaconf import OmegaConf

    from agents.evaluation import GeneralisationConfig

    mix = {
        "mix": {
            "a": {"generator": "fork_join", "n_tasks": [7, 9]},
            "b": {"generator": "layered", "n_tasks": [6, 8], "width": 3},
        },
        "exclude": [],
    }
    cfg = OmegaConf.structured(GeneralisationConfig(mix=mix, ccrs=[1.0, 5.0]))
    for k, v in changes.items():
        OmegaConf.update(cfg, k, v)
    return cfg  # type: ignore[return-value]


def test_generalisation_cells_policies_and_summary(tmp_path: Path) -> None:
    from agents.evaluation.generalisation import expand, heldout_sections

    workloads, entries = expand(_gen_cfg())
    assert list(workloads) == ["a@ccr1", "a@ccr5", "b@ccr1", "b@ccr5"]
    assert workloads["b@ccr5"] == {
        "generator": "layered",
        "n_tasks": [6, 8],
        "width": 3,
        "ccr": 5.0,
    }
    assert entries == []
    # A "policy" for family a only (a checkpoint path stands for a trained one here).
    ckpt = tmp_path / "gen" / "a" / "model.zip"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    _, entries = expand(_gen_cfg(checkpoints=str(tmp_path / "gen")))
    assert [(e.name, e.workloads, e.checkpoint) for e in entries] == [
        ("policy", ("a@ccr1", "a@ccr5"), str(ckpt))
    ]
    with pytest.raises(EvaluationError, match=r"generalisation.checkpoints=.*no such directory"):
        expand(_gen_cfg(checkpoints=str(tmp_path / "nowhere")))
    with pytest.raises(EvaluationError, match=r"generalisation.families='c': not a family"):
        expand(_gen_cfg(families=["c"]))

    # The summary by held-out family, with a stand-in policy (HEFT) on family a.
    grid = _tiny_grid(
        workloads=workloads,
        clusters={"h": {"kind": "heterogeneous", "n_nodes": 4}},
        seeds=[10**9, 10**9 + 1],
        schedulers=["heft", "single_node", "best_heuristic",
                    {"name": "policy", "scheduler": "heft", "workloads": ["a@ccr1", "a@ccr5"]}],
    )  # fmt: skip
    result = run_grid(grid)
    sections = heldout_sections(
        result.rows, _gen_cfg(checkpoints=str(tmp_path / "gen")), result.names
    )
    text = "\n".join(sections)
    assert "## Held-out families, every cell (CCR 1/5 x h): makespan / heft" in text
    assert "## Held-out families, the cells at CCR >= 1" in text
    line_a = next(x for x in text.splitlines() if x.startswith("| a | 4 |"))
    assert line_a.split(" | ")[-1].startswith("1.000 ± 0.000 (0/4/0)")  # the policy is HEFT
    assert "| mean over families |" in text
    assert "No checkpoint for: b." in text
    # The floor: per instance the larger bound ÷ HEFT, averaged over the family's instances.
    heft = {
        (r["workload"], r["seed"]): r
        for r in result.rows
        if r["scheduler"] == "heft" and r["workload"].startswith("a@")
    }
    floor_a = sum(
        max(r["lower_bound"], r["fork_join_bound"]) / r["makespan"] for r in heft.values()
    ) / len(heft)
    assert len(heft) == 4 and 0 < floor_a <= 1.0
    first = text[: text.index("## Held-out families, the cells at CCR >= 1")]
    assert "| held-out family | instances | floor | heft | single_node |" in first
    assert line_a.startswith(f"| a | 4 | {floor_a:.3f} | 1.000 ± 0.000 (0/4/0) |")
    assert (
        heldout_sections(result.rows, _gen_cfg(), result.names, floor=False)[0].count("floor") == 0
    )
    # Without best_heuristic in the run (a cheaper evaluation), its sections are left out.
    rows = [r for r in result.rows if r["scheduler"] != "best_heuristic"]
    names = [n for n in result.names if n != "best_heuristic"]
    text = "\n".join(heldout_sections(rows, _gen_cfg(checkpoints=str(tmp_path / "gen")), names))
    assert "makespan / heft" in text and "makespan / best_heuristic" not in text


def test_generalisation_table_from_a_directory_of_checkpoints(tmp_path: Path) -> None:
    # One policy per held-out family, in <dir>/<family>/model.zip: scored on its family only.
    four = {"kind": "heterogeneous", "n_nodes": 4}
    _tiny_checkpoint(tmp_path / "gen" / "fork_join" / "model.zip", four)
    cfg = _compose(
        "experiment=generalisation",
        "episodes=2",
        "generalisation.families=[fork_join,fan_out]",
        "generalisation.ccrs=[1.0]",
        "generalisation.real=null",
        "generalisation.mix.mix.fork_join.n_tasks=[9,12]",
        "generalisation.mix.mix.fan_out.n_tasks=[9,12]",
        "~clusters.het16",
        "clusters.het4-8.n_nodes=[4]",
        "schedulers=[heft,single_node,best_heuristic]",
        f"generalisation.checkpoints={tmp_path / 'gen'}",
        "progress=false",
    )
    out = run_evaluation(cfg, tmp_path / "out")
    policy = [r for r in out["rows"] if r["scheduler"] == "policy"]
    assert {r["workload"] for r in policy} == {"fork_join@ccr1"} and len(policy) == 2
    assert all(r["insertion"] is False for r in policy)
    md = (tmp_path / "out" / "results.md").read_text()
    held = md[md.index("## Held-out families, every cell (CCR 1 x het4-8): makespan / heft") :]
    header = next(x for x in held.splitlines() if x.startswith("| held-out family"))
    assert header.endswith("| heft | single_node | best_heuristic | policy |")
    fork = next(x for x in held.splitlines() if x.startswith("| fork_join | 2 |"))
    fan = next(x for x in held.splitlines() if x.startswith("| fan_out | 2 |"))
    assert fork.split(" | ")[-1] != "- |" and fan.split(" | ")[-1] == "- |"
    assert "No checkpoint for: fan_out." in md
    assert not (tmp_path / "out" / "makespan.png").exists()  # plots off in this experiment


# ------------------------------------------------------------------ against proven optima
def test_optimality_summary_counts_only_proven_instances_by_hand(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agents.evaluation.optimality import OptimalityError, load_proven, optimality_table

    cols = "workload,cluster,seed,episode,scheduler,makespan,cpsat_optimal"
    rows = [
        # instance 0: proven optimum 10; heft 11, policy 10
        "a,c,1,0,heft,11.0,",
        "a,c,1,0,policy,10.0,",
        "a,c,1,0,cpsat,10.0,True",
        # instance 1: proven optimum 20; heft 20, policy 23
        "a,c,2,1,heft,20.0,",
        "a,c,2,1,policy,23.0,",
        "a,c,2,1,cpsat,20.0,True",
        # instance 2: CP-SAT stopped without proof: left out
        "a,c,3,2,heft,50.0,",
        "a,c,3,2,policy,10.0,",
        "a,c,3,2,cpsat,40.0,False",
    ]
    path = tmp_path / "episodes.csv"
    path.write_text("\n".join([cols, *rows]) + "\n")
    cells = load_proven(path)
    assert list(cells) == [("a", "c")] and len(cells[("a", "c")]) == 2
    text = optimality_table(cells)
    # heft: 1.1 and 1.0 -> mean 1.05, worst 1.10, within 5%: 1 of 2; policy: 1.0 and 1.15.
    # 95% t-interval of two values x, y: 12.706 * |x - y| / 2.
    assert "| a | c | 2 | 1.050 ± 0.635 [1.10; 50%] | 1.075 ± 0.953 [1.15; 50%] |" in text
    bad = tmp_path / "bad.csv"
    bad.write_text(cols + "\na,c,1,0,heft,fast,\na,c,1,0,cpsat,1.0,True\n")
    with pytest.raises(OptimalityError, match=r"bad.csv: line 2: makespan 'fast'"):
        load_proven(bad)
    proc = subprocess.run(
        [sys.executable, "scripts/optimality_summary.py", str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "missing.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_optimality_summary_scores_a_later_run_against_earlier_optima(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agents.evaluation.optimality import OptimalityError, load_proven, optimality_table

    cols = "workload,cluster,seed,episode,scheduler,makespan,cpsat_optimal"
    first = tmp_path / "cpsat.csv"
    first.write_text(
        "\n".join(
            [
                cols,
                "a,c,1,0,heft,11.0,",
                "a,c,1,0,policy,12.0,",  # the old policy: replaced by the later file's
                "a,c,1,0,cpsat,10.0,True",
                "a,c,2,1,heft,20.0,",
                "a,c,2,1,policy,30.0,",
                "a,c,2,1,cpsat,20.0,True",
            ]
        )
        + "\n"
    )
    later = tmp_path / "new.csv"
    later.write_text(cols + "\na,c,1,0,heft,11.0,\na,c,1,0,policy,10.5,\n")
    cells = load_proven(first, later)
    # instance 0: the new policy 10.5 / 10; instance 1: the later file has no policy row there,
    # and the old policy's row is gone with the rest of its scheduler's rows.
    assert cells[("a", "c")][("1", "0")] == {"heft": 11.0, "policy": 10.5, "cpsat": 10.0}
    assert cells[("a", "c")][("2", "1")] == {"heft": 20.0, "cpsat": 20.0}
    text = optimality_table(cells)
    assert "| a | c | 2 | 1.050 ± 0.635 [1.10; 50%] | 1.050 ± 0.000 [1.05; 100%] |" in text
    # Not the same instances: HEFT's makespan differs, an unknown instance, or no HEFT to check.
    refused = [  # (earlier file, later file's name, its rows, the message)
        (
            first,
            "other",
            "a,c,1,0,heft,11.5,\na,c,1,0,policy,10.5",
            r"heft makespan 11.5 .*seed=1 .*11.0",
        ),
        (first, "unknown", "a,c,9,0,heft,11.0", r"instance .*seed=9 .*no earlier file"),
        (first, "no_heft", "a,c,1,0,policy,10.5", r"no heft rows"),
        (None, "new", "", r"the earlier files have no heft row"),
    ]
    cpsat_only = tmp_path / "cpsat_only.csv"
    cpsat_only.write_text(cols + "\na,c,1,0,cpsat,10.0,True\n")
    for earlier, name, body, message in refused:
        path = tmp_path / f"{name}.csv"
        if body:
            path.write_text(f"{cols}\n{body}\n")
        with pytest.raises(OptimalityError, match=rf"{name}.csv: {message}"):
            load_proven(earlier or cpsat_only, path)
    other = tmp_path / "other.csv"
    proc = subprocess.run(
        [sys.executable, "scripts/optimality_summary.py", str(first), str(other)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "other.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_optimality_floor_is_the_optimum_or_the_best_bound_by_hand(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agents.evaluation.optimality import OptimalityError, floor_table, load_floors

    cols = (
        "workload,cluster,seed,episode,scheduler,makespan,cpsat_optimal,"
        "lower_bound,cpsat_lower_bound"
    )
    rows = [
        # instance 0: proven optimum 10 (its bounds do not count); heft 11 -> floor 10/11
        "a,c,1,0,heft,11.0,True,8.0,8.0",
        "a,c,1,0,cpsat,10.0,True,8.0,9.0",
        # instance 1: no proof; best bound max(30, 35) = 35; heft 50 -> floor 0.7, best 0.8
        "a,c,2,1,heft,50.0,False,30.0,",
        "a,c,2,1,cpsat,40.0,False,30.0,35.0",
        # a cell without cpsat rows is not in the table
        "b,c,1,0,heft,11.0,,8.0,",
    ]
    path = tmp_path / "episodes.csv"
    path.write_text("\n".join([cols, *rows]) + "\n")
    floors = load_floors(path)
    assert list(floors) == [("a", "c")]
    assert floors[("a", "c")] == [
        pytest.approx((10 / 11, 10 / 11, True)),
        pytest.approx((0.7, 0.8, False)),
    ]
    # floor mean (0.90909 + 0.7) / 2 = 0.805, lowest 0.700; best (0.90909 + 0.8) / 2 = 0.855,
    # 95% t-interval of two values: 12.706 * 0.10909 / 2 = 0.693.
    assert "| a | c | 2 | 1 | 0.805 [0.700] | 0.855 ± 0.693 |" in floor_table(floors)
    # The script prints it after the proven-optimum table.
    proc = subprocess.run(
        [sys.executable, "scripts/optimality_summary.py", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "| a | c | 2 | 1 | 0.805 [0.700] | 0.855 ± 0.693 |" in proc.stdout
    # No proof and no bound: no floor. A bound that is not a number: named.
    unbounded = tmp_path / "unbounded.csv"
    unbounded.write_text(cols + "\na,c,1,0,heft,11.0,,,\na,c,1,0,cpsat,10.0,False,,\n")
    with pytest.raises(
        OptimalityError, match=r"unbounded.csv: no proven optimum and no lower bound"
    ):
        load_floors(unbounded)
    bad = tmp_path / "bad.csv"
    bad.write_text(cols + "\na,c,1,0,heft,11.0,,8.0,x\n")
    with pytest.raises(OptimalityError, match=r"bad.csv: line 2: cpsat_lower_bound 'x'"):
        load_floors(bad)


def test_optimality_floors_of_every_instance_use_the_fork_join_bound(tmp_path: Path) -> None:
    import subprocess
    import sys

    from agents.evaluation.optimality import OptimalityError, floor_table, load_floors

    cols = (
        "workload,cluster,seed,episode,scheduler,makespan,cpsat_optimal,"
        "lower_bound,fork_join_bound,cpsat_lower_bound"
    )
    rows = [
        # no cpsat row: floor = max(6, 9) / heft 10 = 0.9; best known = the shortest plan, 9.5
        "a,c,1,0,heft,10.0,False,6.0,9.0,",
        "a,c,1,0,improved_portfolio,9.5,False,6.0,9.0,",
        # a proven optimum still wins over the bounds: 8 / 10
        "a,c,2,1,heft,10.0,True,6.0,7.0,",
        "a,c,2,1,cpsat,8.0,True,6.0,7.0,8.0",
    ]
    path = tmp_path / "episodes.csv"
    path.write_text("\n".join([cols, *rows]) + "\n")
    # Without every_instance only the instance with a cpsat row counts.
    assert load_floors(path) == {("a", "c"): [pytest.approx((0.8, 0.8, True))]}
    floors = load_floors(path, every_instance=True)
    assert floors[("a", "c")] == [
        pytest.approx((0.9, 0.95, False)),
        pytest.approx((0.8, 0.8, True)),
    ]
    # floor mean 0.85, lowest 0.8; best (0.95 + 0.8) / 2 = 0.875 ± 12.706 * 0.075 = 0.953
    assert "| a | c | 2 | 1 | 0.850 [0.800] | 0.875 ± 0.953 |" in floor_table(floors)
    proc = subprocess.run(
        [sys.executable, "scripts/optimality_summary.py", "--floors", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| a | c | 2 | 1 | 0.850 [0.800] | 0.875 ± 0.953 |" in proc.stdout
    # A bound above a plan is a wrong bound (or noisy runtimes), not a floor.
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(cols + "\na,c,1,0,heft,10.0,False,6.0,10.5,\n")
    with pytest.raises(OptimalityError, match=r"wrong.csv: a lower bound \(10.5 s\) above a plan"):
        load_floors(wrong, every_instance=True)
    proc = subprocess.run(
        [sys.executable, "scripts/optimality_summary.py", "--floors", str(wrong)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "wrong.csv" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_experts_plans_are_never_worse_than_heft_lookahead() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare_experts", "scripts/compare_experts.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # Recipes too: their pools are drawn on first use, yet every expert sees the same instances.
    rows = mod.run(
        [{"kind": "heuristic", "base": "heft_lookahead"}, {"kind": "plans"}],
        [
            "cluster=het8",
            "workload.exclude=[layered,fork_join,fan_in,cybershake,genomics49,"
            "montage,epigenomics,1000genome,seismology,soykb,cycles,srasearch,bwa]",
        ],
        4,
    )
    assert set(rows[0]["family"]) == {"fan_out", "blast"} and rows[0]["family"] == rows[1]["family"]
    look, plans = rows[0]["ratio"], rows[1]["ratio"]
    # heft_lookahead and HEFT are among the plans' candidates, replayed in the same order.
    assert (plans <= look + 1e-12).all() and (plans <= 1 + 1e-12).all()
    assert sum(rows[1]["chosen"].values()) == 4
    assert '| `{"kind":"plans"}` |' in mod.table(rows)
