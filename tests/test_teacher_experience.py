"""The teacher's experience and measures: policy specs, exact counterfactual branches, the
rollout expert, the experience summary, same-state pairs, similarity weights, HEFT parity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agents.heft import HEFTScheduler
from teacher.ablation import steps_to_parity
from teacher.build import BuildConfig, BuildConfigError, experience_summary, record_episode
from teacher.features import ProblemFeatures
from teacher.policies import PilotScheduler, PolicySpec, PolicySpecError, parse_policy
from teacher.predictor import similarity_weights
from teacher.training import _group_pairs
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow
from wass_env.sim.ordering import ReadyQueue
from wass_env.workloads import make_sampler


def _problems(n: int) -> list[Problem]:
    """Small layered DAGs with heavy communication on 4 heterogeneous nodes."""
    from wass_env.sim.cluster import cluster_from_spec

    cluster = cluster_from_spec({"kind": "heterogeneous", "n_nodes": 4})
    sampler = make_sampler({"generator": "layered", "n_tasks": [10, 16], "ccr": 2.0})
    return [Problem(sampler.sample(np.random.default_rng(i), cluster), cluster) for i in range(n)]


def test_policy_specs() -> None:
    assert parse_policy("heft") == PolicySpec("heft")
    assert parse_policy("heft~0.2") == PolicySpec("heft", 0.2)
    assert parse_policy("pilot") == PolicySpec("pilot", k=4)
    assert parse_policy("pilot2~0.1") == PolicySpec("pilot", 0.1, 2)
    assert parse_policy("policy:m.zip") == PolicySpec("policy", checkpoint="m.zip")
    assert parse_policy("policy+rollout3~0.5:a/m.zip") == PolicySpec("policy", 0.5, 3, "a/m.zip")
    assert parse_policy("teacher:runs/t") == PolicySpec("teacher", checkpoint="runs/t")
    assert parse_policy("heft").deterministic and not parse_policy("heft~0.1").deterministic
    assert not parse_policy("random").deterministic
    for bad, msg in (
        ("heft~x", "epsilon 'x' is not a number"),
        ("heft~1.5", r"epsilon must be in \[0, 1\], got 1.5"),
        ("policy:", "names no checkpoint"),
        ("policy+x:m.zip", "a checkpoint spec is"),
        ("pilot0", "k >= 1"),
        ("teacher", "'teacher:DIR'"),
    ):
        with pytest.raises(PolicySpecError, match=msg):
            parse_policy(bad)
    # Branches are completed deterministically: a stochastic continuation is refused.
    for cont in ("random", "heft~0.1", "pilot2"):
        with pytest.raises(BuildConfigError, match="continuation must be a deterministic"):
            BuildConfig(continuation=cont)


def _heft_completion(problem: Problem, prefix: list[tuple[int, int]]) -> float:
    """HEFT's makespan [s] after the ``(task, node)`` decisions of ``prefix``, replayed in
    HEFT's task order, written independently of the base builder."""
    heft = HEFTScheduler()
    b = PlanBuilder(problem, insertion=True)
    q = ReadyQueue(b, heft.priority(problem))
    step = 0
    while not b.done:
        task = q.pop()
        if step < len(prefix):
            assert prefix[step][0] == task
            node = prefix[step][1]
        else:
            node = heft.select_node(b, task)
        b.assign(task, node)
        q.update()
        step += 1
    return float(b.max_finish)


def test_branch_targets_are_exact_heft_completions() -> None:
    """Every counterfactual record of a HEFT run is HEFT's own completion after that node: no
    continuation noise, and the same seed gives the same records."""
    problem = _problems(1)[0]
    pf = ProblemFeatures(problem)
    rec, makespan = record_episode(
        problem, "heft", np.random.default_rng(3), pf=pf, branch_prob=1.0, branch_k=2
    )
    again, _ = record_episode(
        problem, "heft", np.random.default_rng(3), pf=pf, branch_prob=1.0, branch_k=2
    )
    np.testing.assert_array_equal(rec.target, again.target)
    np.testing.assert_array_equal(rec.action, again.action)
    main = ~rec.branch
    assert makespan == pytest.approx(HEFTScheduler().plan(problem).makespan)
    decisions = list(zip(rec.task[main].tolist(), rec.action[main].tolist(), strict=True))
    branches = np.flatnonzero(rec.branch)
    assert branches.size >= problem.n_tasks  # every decision branched, >= 1 other node each
    for r in branches[:: max(1, branches.size // 12)]:
        step = int(rec.step[r])
        prefix = [*decisions[:step], (int(rec.task[r]), int(rec.action[r]))]
        assert rec.target[r] * pf.scale == pytest.approx(_heft_completion(problem, prefix))


def test_pilot_is_never_worse_than_heft_and_sometimes_better() -> None:
    ratios = []
    for problem in _problems(6):
        heft = HEFTScheduler().plan(problem).makespan
        pilot = PilotScheduler(k=2).plan(problem).makespan
        ratios.append(pilot / heft)
    assert max(ratios) <= 1.0 + 1e-9
    assert min(ratios) < 0.99


def test_experience_summary_by_hand() -> None:
    rows = [("heft", 1.0), ("pilot2", 0.9), ("pilot2", 1.0), ("random", 1.5), ("random", 0.8)]
    out = experience_summary(rows)
    assert list(out) == ["pilot2", "heft", "random"]  # by mean ratio
    assert out["pilot2"] == {
        "runs": 2,
        "ratio_to_heft": pytest.approx(0.95),
        "better_than_heft": 0.5,
        "worse_than_heft": 0.0,
    }
    assert out["random"]["ratio_to_heft"] == pytest.approx(1.15)
    assert out["random"]["better_than_heft"] == out["random"]["worse_than_heft"] == 0.5


def test_same_state_pairs_need_one_decision_and_one_continuation() -> None:
    episode = np.array([0, 0, 0, 1, 1, 0])
    step = np.array([0, 0, 0, 0, 1, 0])
    cont = np.array([0, 0, 1, 0, 0, 0])
    a, b = _group_pairs(episode, step, cont)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 1), (0, 5), (1, 5)]


def test_similarity_weights_are_the_normalised_similarities() -> None:
    w = similarity_weights(np.array([[0.5, 0.25, -1.0]]), np.array([[1, 2, 3]]))
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3, 0.0]], rtol=1e-6)
    w = similarity_weights(np.array([[-0.1, -0.2, 0.4]]), np.array([[1, 2, -1]]))
    np.testing.assert_allclose(w, [[0.5, 0.5, 0.0]])  # nothing positive: uniform over cases
    w = similarity_weights(np.array([[0.0, 0.0]]), np.array([[-1, -1]]))
    np.testing.assert_allclose(w, [[1.0, 0.0]])  # no case: the zero context alone


def test_one_query_paths_equal_the_batched_ones() -> None:
    """The teacher's step (one query, every case found) takes a shorter path through
    ``similarity_weights`` and ``case_contexts``; it gives the batched form's values bit for
    bit, with positive, mixed and all-negative similarities."""
    from teacher.features import ACTION_FEATURES
    from teacher.predictor import case_contexts

    rng = np.random.default_rng(0)
    keys = rng.standard_normal((50, 6)).astype(np.float32)
    log_t = rng.standard_normal(50).astype(np.float32)
    act = rng.standard_normal((50, len(ACTION_FEATURES))).astype(np.float32)
    for sims in ([0.9, 0.5, 0.1], [0.3, -0.2, 0.7, 0.7, 0.0], [-0.1, -0.4, -0.2]):
        s = np.asarray(sims, dtype=np.float32)
        ids = rng.choice(50, s.size, replace=False)
        w1 = similarity_weights(s, ids)
        assert w1.dtype == np.float32
        np.testing.assert_array_equal(w1, similarity_weights(s[None], ids[None])[0])
        c1 = case_contexts(s, ids, keys, log_t, act)
        np.testing.assert_array_equal(c1, case_contexts(s[None], ids[None], keys, log_t, act)[0])
        np.testing.assert_array_equal(c1[:, :6], keys[ids])


def test_steps_to_parity_by_hand() -> None:
    curve = [
        {"timestep": 10 * (i + 1), "ratio_to_heft": r}
        for i, r in enumerate([1.2, 1.1, 1.0, 0.9, 0.8])
    ]
    # Windowed means of 2: 1.15, 1.05, 0.95 (episodes 3-4, ending at step 40), ...
    assert steps_to_parity(curve, window=2) == 40
    assert steps_to_parity(curve, window=2, offset=5) == 45
    assert steps_to_parity(curve, window=1) == 30
    assert math.isnan(steps_to_parity(curve, window=2, target=0.5))
    assert math.isnan(steps_to_parity(curve[:1], window=2))


def test_lookahead_case_pilot_finds_the_better_plan() -> None:
    """A feeds C, which is 5x faster on n1; moving A's output costs 5 s. HEFT: 9 s; the rollout
    expert puts A on n1 too and finds 5 s."""
    cost = np.array([[2.0, 3.0], [1.0, 1.0], [10.0, 2.0]])
    wf = Workflow.from_arrays(
        cost.mean(axis=1), [(0, 2), (1, 2)], [5e9, 0.0], ids=["A", "X", "C"], name="la"
    )
    problem = Problem(wf, Cluster([1.0, 1.0], [1, 1], bandwidth=1e9, latency=0.0), cost)
    assert HEFTScheduler().plan(problem).makespan == pytest.approx(9.0)
    assert PilotScheduler(k=2).plan(problem).makespan == pytest.approx(5.0)


def test_pair_accuracy_and_hard_pairs_by_hand() -> None:
    """One decision, three actions with outcomes 1, 2, 3: the predictor (1, 3, 2) orders 2 of
    the 3 pairs; the earliest-finish rule (3, 1, 2) gets (0, 1) and (0, 2) wrong, and the
    predictor gets both of those right."""
    from types import SimpleNamespace

    from teacher.training import _pair_accuracy

    a, b = _group_pairs(np.zeros(3, np.int64), np.zeros(3, np.int64), np.zeros(3, np.int64))
    data = SimpleNamespace(pair_a=a, pair_b=b, target=np.array([1.0, 2.0, 3.0]))
    rows = np.arange(3)
    out = _pair_accuracy(np.array([1.0, 3.0, 2.0]), data, rows, np.array([3.0, 1.0, 2.0]))  # type: ignore[arg-type]
    assert out == {
        "pairs": 3,
        "pair_accuracy": pytest.approx(2 / 3),
        "hard_pairs": 2,
        "hard_pair_accuracy": 1.0,
    }
    # Only the pairs whose rows are all in ``rows`` count.
    assert _pair_accuracy(np.array([1.0, 3.0]), data, rows[:2])["pairs"] == 1  # type: ignore[arg-type]


def _job(root: Path, variant: str, seed: int, ratios: dict[str, float], curve: list[float]) -> None:
    """A finished training job as a Hydra multirun leaves it: overrides, config, results, curve."""
    job = root / f"+variant={variant},seed={seed}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- +variant={variant}\n- seed={seed}\n")
    (job / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nworkload:\n  exclude: [montage]\n")
    lines = ["scheduler,family,ratio_to_heft,ratio_to_best_heuristic"]
    lines += [f"maskable_ppo,{fam},{r},{r * 1.1}" for fam, r in ratios.items()]
    lines += [f"heft,{fam},1.0,1.1" for fam in ratios]
    (job / "results.csv").write_text("\n".join(lines) + "\n")
    rows = ["timestep,family,ratio_to_heft"] + [
        f"{100 * (i + 1)},layered,{r}" for i, r in enumerate(curve)
    ]
    (job / "curve.csv").write_text("\n".join(rows) + "\n")


def test_ablation_summary_of_a_sweep_by_hand(tmp_path: Path) -> None:
    from teacher.ablation import (
        AblationError,
        ablation_table,
        collect_runs,
        reference_rows,
        summarize_ablation,
    )

    _job(tmp_path, "sparse", 0, {"layered": 1.2, "montage": 1.4}, [1.5, 1.3, 1.2])
    _job(tmp_path, "sparse", 1, {"layered": 1.0, "montage": 1.2}, [1.4, 1.1, 1.0])
    _job(tmp_path, "rag", 0, {"layered": 0.9, "montage": 1.1}, [1.2, 0.9, 0.8])
    _job(tmp_path, "rag", 1, {"layered": 1.1, "montage": 1.3}, [1.0, 0.9, 0.9])
    runs = collect_runs(tmp_path)
    assert sorted((r.variant, r.seed, r.held_out) for r in runs)[0] == ("rag", 0, ("montage",))
    out = {e["variant"]: e for e in summarize_ablation(runs, window=1, order=["sparse", "rag"])}
    assert list(out) == ["sparse", "rag"]
    s = out["sparse"]
    # Per seed: all 1.3 and 1.1, seen (layered) 1.2 and 1.0, held out (montage) 1.4 and 1.2.
    assert s["ratio_to_heft"] == pytest.approx(1.2)
    assert s["seen_ratio_to_heft"] == pytest.approx(1.1)
    assert s["held_out_ratio_to_heft"] == pytest.approx(1.3)
    assert s["ratio_to_best_heuristic"] == pytest.approx(1.32)
    # t-interval of two values 1.3, 1.1: t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1414 / 1.414.
    assert s["ratio_to_heft_ci95"] == pytest.approx(12.706 * 0.1, rel=1e-3)
    # HEFT parity (window 1): seed 0 never gets there, seed 1 at step 300.
    assert s["parity_reached"] == "1/2" and s["parity_steps"] == 300
    r = out["rag"]
    # Seed 0 at step 200 (0.9), seed 1 at once (1.0 <= 1): 150 on average.
    assert r["parity_reached"] == "2/2" and r["parity_steps"] == pytest.approx(150)
    assert r["vs_heft"] == "1/0/3" and r["final_train_ratio"] == pytest.approx(0.85)
    # Paired with sparse per seed: seed 0 (0.9/1.2 + 1.1/1.4) / 2 = 0.76786, seed 1
    # (1.1/1.0 + 1.3/1.2) / 2 = 1.09167; better on seed 0 only.
    assert r["ratio_to_baseline"] == pytest.approx((0.76786 + 1.09167) / 2, rel=1e-4)
    assert r["better_than_baseline"] == "1/2" and r["baseline"] == "sparse"
    assert s["ratio_to_baseline"] == 1.0 and s["better_than_baseline"] == "0/2"
    # Paired with one scheduler of another run (the same on every seed): layered 1.0, montage
    # 1.25; sparse seed 0 (1.2/1.0 + 1.4/1.25) / 2 = 1.16, seed 1 (1.0/1.0 + 1.2/1.25) / 2 = 0.98.
    ref = [
        {"family": "layered", "ratio_to_heft": 1.0},
        {"family": "montage", "ratio_to_heft": 1.25},
    ]
    paired = summarize_ablation(runs, window=1, order=["sparse"], reference=("hl", ref))
    assert paired[0]["ratio_to_reference"] == pytest.approx((1.16 + 0.98) / 2)
    assert paired[0]["better_than_reference"] == "1/2" and paired[0]["reference"] == "hl"
    assert "| ÷ hl, paired per seed | seeds better than hl |" in ablation_table(paired)
    ref_run = tmp_path / "ref"
    ref_run.mkdir()
    (ref_run / "results.csv").write_text("scheduler,family,ratio_to_heft\nheft,layered,1.0\n")
    assert reference_rows(ref_run, "heft") == [
        {"scheduler": "heft", "family": "layered", "ratio_to_heft": 1}
    ]
    with pytest.raises(AblationError, match=r"ref/results.csv: no rows of scheduler 'hl'"):
        reference_rows(ref_run, "hl")
