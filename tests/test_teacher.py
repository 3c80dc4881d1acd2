"""The teacher: features, encoder, predictor, R_RAG modes, the reward wrapper, explanations."""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from teacher.build import BuildConfig, build_knowledge_base, instance_id, record_episode
from teacher.encoder import EncoderConfig, GraphEncoder
from teacher.explain import explain, explain_step
from teacher.features import (
    ACTION_FEATURES,
    STATE_FEATURES,
    FeatureTracker,
    ProblemFeatures,
    decision_features,
)
from teacher.kb import EpisodeRecords, KnowledgeBase, KnowledgeBaseError
from teacher.policies import make_policy
from teacher.predictor import ModelError, Predictor, PredictorConfig, TeacherModel
from teacher.teacher import Teacher
from teacher.training import PredictorTrainConfig, embed_records, train_teacher
from teacher.wrapper import RAGRewardWrapper
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow
from wass_env.sim.ordering import ReadyQueue, task_priority

A = {name: i for i, name in enumerate(ACTION_FEATURES)}
S = {name: i for i, name in enumerate(STATE_FEATURES)}


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------ a hand-made problem
#
# t0 -> t1 (100 bytes), t0 -> t2 (200 bytes); work 4, 2, 6; node 0 has speed 2, node 1 speed 1,
# one core each, 100 bytes/s links without latency. Runtimes: t0 [2, 4], t1 [1, 2], t2 [3, 6].
# Lower bound: critical path on the fastest node, no transfers: 2 + 3 = 5 s (work bound 12/3).


@pytest.fixture
def problem() -> Problem:
    wf = Workflow.from_arrays(
        [4.0, 2.0, 6.0], [(0, 1), (0, 2)], [100.0, 200.0], name="fork3", family="hand"
    )
    cl = Cluster([2.0, 1.0], [1, 1], bandwidth=100.0, latency=0.0, name="two")
    return Problem(wf, cl)


def test_features_match_hand_computation(problem: Problem) -> None:
    pf = ProblemFeatures(problem)
    assert pf.scale == 5.0
    np.testing.assert_allclose(pf.tail, [5.0, 1.0, 3.0])  # fastest chains to an exit [s]
    b = PlanBuilder(problem, insertion=False)
    tr = FeatureTracker(pf)
    d0 = tr.decision(b, 0)
    np.testing.assert_allclose(d0.finish, [2.0, 4.0])
    b.assign(0, 0)  # t0 on node 0: [0, 2]; the earliest-finish node
    d = tr.decision(b, 2)
    # t2: inputs at node 0 at 2 s, at node 1 at 2 + 200/100 = 4 s; finish 2 + 3 = 5, 4 + 6 = 10.
    np.testing.assert_allclose(d.finish, [5.0, 10.0])
    s = d.state
    assert s[S["progress"]] == pytest.approx(1 / 3)
    assert s[S["partial_makespan"]] == pytest.approx(2 / 5)
    # Frontier: t1 cannot end before 2 + 1 = 3, t2 before 2 + 3 = 5.
    assert s[S["frontier_bound"]] == pytest.approx(5 / 5)
    assert s[S["release"]] == pytest.approx(2 / 5)
    assert s[S["best_finish"]] == pytest.approx(5 / 5)
    assert s[S["ready_fraction"]] == pytest.approx(2 / 3)
    assert s[S["greedy_rate"]] == 1.0 and s[S["choice_gap"]] == 0.0
    a = d.actions
    np.testing.assert_allclose(a[:, A["finish"]], [1.0, 2.0])
    np.testing.assert_allclose(a[:, A["finish_gap"]], [0.0, 1.0])
    np.testing.assert_allclose(a[:, A["data_wait"]], [0.0, 2 / 5])
    np.testing.assert_allclose(a[:, A["queue_wait"]], [0.0, 0.0])
    np.testing.assert_allclose(a[:, A["log_slowdown"]], [0.0, math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(a[:, A["local_input"]], [1.0, 0.0])
    np.testing.assert_allclose(a[:, A["load"]], [2 / 5, 0.0])
    np.testing.assert_allclose(a[:, A["makespan_increase"]], [3 / 5, 8 / 5])
    # After placing t2 the bound is max(t1's 3 s, t2's finish + nothing after it).
    np.testing.assert_allclose(a[:, A["bound_after"]], [5 / 5, 10 / 5])
    np.testing.assert_allclose(a[:, A["bound_increase"]], [0.0, 1.0])
    np.testing.assert_allclose(a[:, A["is_best"]], [1.0, 0.0])
    # Placing t2 on the slow node is seen as a non-greedy choice, one node-unit late.
    b.assign(2, 1)
    d1 = tr.decision(b, 1)
    assert d1.state[S["greedy_rate"]] == pytest.approx(0.5)
    assert d1.state[S["choice_gap"]] == pytest.approx(0.5)  # mean of 0 and (10 - 5) / 5
    assert d1.state[S["locality_rate"]] == 0.0  # t2 went where none of its input was


def test_tracker_matches_one_off_features() -> None:
    from wass_env.workloads import make_sampler

    rng = np.random.default_rng(0)
    cl = Cluster([2.0, 1.0, 1.0, 0.5], [4, 8, 8, 8], bandwidth=1e8, latency=1e-3)
    wf = make_sampler({"generator": "layered", "n_tasks": 30, "ccr": 1.0}).sample(rng, cl)
    p = Problem(wf, cl)
    pf = ProblemFeatures(p)
    b = PlanBuilder(p, insertion=True)
    q = ReadyQueue(b, task_priority(p))
    tr = FeatureTracker(pf)
    while not b.done:
        t = q.pop()
        inc = tr.decision(b, t)
        once = decision_features(pf, b, t)
        np.testing.assert_allclose(inc.actions, once.actions, rtol=1e-6)
        # The one-off call has seen no earlier choices: only the behaviour summary differs.
        k = len(STATE_FEATURES) - 3
        np.testing.assert_allclose(inc.state[:k], once.state[:k], rtol=1e-6)
        b.assign(t, int(rng.integers(cl.n_nodes)))
        q.update()


def test_frontier_bound_is_a_lower_bound() -> None:
    from wass_env.workloads import make_sampler

    rng = np.random.default_rng(1)
    cl = Cluster([2.0, 1.0, 0.5], [2, 2, 2], bandwidth=1e8, latency=1e-3)
    sampler = make_sampler({"generator": "layered", "n_tasks": 25, "ccr": 2.0})
    for _ in range(3):
        p = Problem(sampler.sample(rng, cl), cl)
        pf = ProblemFeatures(p)
        b = PlanBuilder(p, insertion=True)
        q = ReadyQueue(b, task_priority(p))
        tr = FeatureTracker(pf)
        bounds, after = [], []
        while not b.done:
            t = q.pop()
            d = tr.decision(b, t)
            node = int(rng.integers(cl.n_nodes))
            bounds.append(d.state[S["frontier_bound"]])
            after.append(d.actions[node, A["bound_after"]])
            b.assign(t, node)
            q.update()
        final = b.max_finish / pf.scale
        assert max(bounds) <= final + 1e-5 and max(after) <= final + 1e-5
        assert after[-1] == pytest.approx(final, rel=1e-5)  # the last placement is exact


# ------------------------------------------------------------------------ a hand-set model


def hand_model(policies: tuple[str, ...] = ("heft",)) -> TeacherModel:
    """Pred(node) = 1 + softplus(finish there / lower bound), whatever the state and context."""
    torch.manual_seed(0)
    enc = GraphEncoder(EncoderConfig(hidden=8, layers=1, embed_dim=6, family_dim=4))
    pred = Predictor(6, PredictorConfig(hidden=4, k=3, policies=policies), key_dim=10)
    with torch.no_grad():
        for prm in pred.parameters():
            prm.zero_()
        pred.action_w.weight[0, A["finish"]] = 1.0
        pred.hidden_w.weight[0, 0] = 1.0
        pred.out_w.weight[0, 0] = 1.0
    return TeacherModel.from_torch(enc, pred)


def test_numpy_encoder_matches_torch() -> None:
    kb = build_knowledge_base(
        BuildConfig(
            workload={"generator": "layered", "n_tasks": [8, 14], "ccr": 1.0},
            policies=("heft", "random"),
            policies_per_instance=2,
            instances=2,
            branch_prob=0.3,
        )
    )
    torch.manual_seed(1)
    enc = GraphEncoder(EncoderConfig(hidden=16, layers=2, embed_dim=8, family_dim=4))
    model = TeacherModel.from_torch(enc, Predictor(8, PredictorConfig(hidden=8), key_dim=12))
    keys = embed_records(kb, model)  # torch, batched over episodes
    task_ptr, edge_ptr = kb.episode_slices()
    rank = kb.column("task_rank")
    for r in range(0, len(kb), 7):
        ep = int(kb.column("rec_episode")[r])
        lo, hi = task_ptr[ep], task_ptr[ep + 1]
        e_lo, e_hi = edge_ptr[ep], edge_ptr[ep + 1]
        enc_np = model.encoder.encode_episode(
            kb.column("task_features")[lo:hi],
            kb.column("edge_src")[e_lo:e_hi],
            kb.column("edge_dst")[e_lo:e_hi],
            kb.column("ep_graph")[ep],
        )
        unplaced = rank[lo:hi] >= kb.column("rec_step")[r]
        e = model.encoder.embed(
            enc_np, int(kb.column("rec_task")[r]), unplaced, kb.column("rec_state")[r]
        )
        np.testing.assert_allclose(model.key(e, enc_np.family), keys[r], atol=1e-5)
    # The family part of a key makes family_share of the cosine: unit halves, weighted.
    k0 = keys[0]
    assert np.linalg.norm(k0) == pytest.approx(1.0, rel=1e-5)
    assert np.linalg.norm(k0[:4]) ** 2 == pytest.approx(0.7, rel=1e-5)


def test_model_save_load_and_errors(tmp_path: Path) -> None:
    m = hand_model()
    m.save(tmp_path / "m.wtm")
    back = TeacherModel.load(tmp_path / "m.wtm")
    assert back.fingerprint == m.fingerprint and back.policies == ("heft",)
    e = np.ones(6, np.float32)
    acts = np.random.default_rng(0).random((5, len(ACTION_FEATURES))).astype(np.float32)
    ctx = np.zeros((1, m.ctx_dim), np.float32)
    np.testing.assert_array_equal(
        back.predict(e, acts, ctx, "heft"), m.predict(e, acts, ctx, "heft")
    )
    np.testing.assert_allclose(
        m.predict(e, acts, ctx), [1 + softplus(x) for x in acts[:, A["finish"]]], rtol=1e-6
    )
    data = bytearray((tmp_path / "m.wtm").read_bytes())
    data[-40] ^= 0x10
    (tmp_path / "bad.wtm").write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"bad\.wtm.*checksum"):
        TeacherModel.load(tmp_path / "bad.wtm")


def _teacher_kb(problem: Problem, model: TeacherModel, node: int, copies: int = 3) -> KnowledgeBase:
    """A base keyed by ``model`` holding ``copies`` past decisions at the state "t0 on node 0,
    place t2", each of which chose ``node`` (and ended at 2x the lower bound)."""
    pf = ProblemFeatures(problem)
    b = PlanBuilder(problem, insertion=False)
    tr = FeatureTracker(pf)
    tr.decision(b, 0)
    b.assign(0, 0)
    d = tr.decision(b, 2)
    enc = model.encode_episode(pf)
    key = model.key(model.embed(enc, d), enc.family)
    n = copies
    records = EpisodeRecords(
        step=np.ones(n, dtype=np.int32),
        task=np.full(n, 2, dtype=np.int32),
        action=np.full(n, node, dtype=np.int32),
        state=np.repeat(d.state[None], n, axis=0),
        action_features=np.repeat(d.actions[node][None], n, axis=0),
        keys=np.repeat(key[None], n, axis=0).astype(np.float32),
        target=np.full(n, 2.0, dtype=np.float32),
        branch=np.arange(n) > 0,
        task_rank=np.array([0, 2, 1], dtype=np.int32),
    )
    kb = KnowledgeBase(model.key_dim, model.key_model)
    kb.add_episode(
        pf, records, makespan=10.0, policy="heft", instance=instance_id(problem.workflow)
    )
    return kb


def test_eq3_reward_by_hand(problem: Problem) -> None:
    model = hand_model()
    teacher = Teacher(model, None, mode="eq3")
    b = PlanBuilder(problem, insertion=False)
    teacher.evaluate(b, 0)
    b.assign(0, 0)
    ev = teacher.evaluate(b, 2)
    # Finish 5 s and 10 s on a 5 s lower bound: Pred = 1 + softplus(1), 1 + softplus(2).
    np.testing.assert_allclose(ev.pred, [1 + softplus(1.0), 1 + softplus(2.0)], rtol=1e-6)
    assert ev.best == 0
    assert teacher.reward(ev, 0) == 0.0  # a_t = a*_t
    assert teacher.reward(ev, 1) == pytest.approx(softplus(1.0) - softplus(2.0), rel=1e-6)
    assert teacher.reward(ev, 7) == 0.0  # not a node: the env handles illegal actions


def test_history_mode_rewards_beating_history(problem: Problem) -> None:
    model = hand_model()
    kb = _teacher_kb(problem, model, node=1)  # history always took the slow node
    teacher = Teacher(model, kb, mode="history", k=3)
    b = PlanBuilder(problem, insertion=False)
    teacher.evaluate(b, 0)
    b.assign(0, 0)
    ev = teacher.evaluate(b, 2)
    assert ev.history_nodes.tolist() == [1, 1, 1]  # every retrieved case maps to node 1
    assert ev.baseline == pytest.approx(1 + softplus(2.0), rel=1e-6)
    # Taking the fast node beats history: a positive reward, the eq. 3 gap with its sign flipped.
    assert teacher.reward(ev, 0) == pytest.approx(softplus(2.0) - softplus(1.0), rel=1e-6)
    assert teacher.reward(ev, 1) == pytest.approx(0.0, abs=1e-9)
    assert Teacher(model, kb, mode="eq3", k=3).reward(ev, 0) == 0.0


def test_teacher_refuses_a_base_keyed_by_another_model(problem: Problem) -> None:
    kb = _teacher_kb(problem, hand_model(), node=0)
    torch.manual_seed(5)
    other = TeacherModel.from_torch(
        GraphEncoder(EncoderConfig(hidden=8, layers=1, embed_dim=6, family_dim=4)),
        Predictor(6, PredictorConfig(hidden=4, k=3), key_dim=10),
    )
    with pytest.raises(KnowledgeBaseError, match="keyed by 'encoder:"):
        Teacher(other, kb)


def test_greedy_teacher_with_an_eft_predictor_is_heft() -> None:
    from agents.heft import HEFTScheduler
    from teacher.teacher import TeacherScheduler
    from teacher.training import compare_policies
    from wass_env.sim import preset
    from wass_env.workloads import make_sampler

    rng = np.random.default_rng(4)
    cl = preset("het16")
    sampler = make_sampler({"generator": "layered", "n_tasks": [10, 30], "ccr": 1.0})
    problems = [Problem(sampler.sample(rng, cl), cl) for _ in range(4)]
    # The hand model's prediction grows with the finish time, so a*_t is HEFT's node.
    teacher = TeacherScheduler(Teacher(hand_model(), None))
    for p in problems:
        assert teacher.plan(p).makespan == pytest.approx(HEFTScheduler().plan(p).makespan)
    cmp = compare_policies(problems, {"heft": HEFTScheduler(), "teacher": teacher})
    assert cmp["teacher"]["mean_ratio_to_heft"] == pytest.approx(1.0)
    assert cmp["heft"]["mean_ratio_to_lb"] >= 1.0


def test_teacher_margin_keeps_the_fallback_node_unless_the_predicted_gain_is_larger() -> None:
    """One task, 10 s on n0 and 12 s on n1; the hand model predicts 1 + softplus(finish / LB),
    so a*_t is n0; a fallback that picks n1 wins exactly while its predicted loss is inside the
    margin."""
    from agents.heuristics import DataLocalityScheduler
    from teacher.teacher import TeacherConfigError, TeacherScheduler
    from wass_env.scheduling import Scheduler
    from wass_env.sim import preset
    from wass_env.workloads import make_sampler

    class LastNode(Scheduler):
        name = "last_node"

        def select_node(self, builder: PlanBuilder, task: int) -> int:
            return int(np.flatnonzero(builder.problem.fits[task])[-1])

    wf = Workflow.from_arrays([11.0], [], [], ids=["T"], name="one", family="one")
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=1e9, latency=0.0, name="two")
    p = Problem(wf, cl, cost_matrix=np.array([[10.0, 12.0]]))
    ev = Teacher(hand_model(), None).evaluate(PlanBuilder(p), 0)
    lb = p.lower_bound()
    assert lb == pytest.approx(10.0)
    assert ev.pred.tolist() == pytest.approx([1 + softplus(1.0), 1 + softplus(1.2)], rel=1e-5)
    gain = (ev.pred[1] - ev.pred[0]) / ev.pred[1]  # 0.0609
    assert gain == pytest.approx(0.0609, abs=1e-3)
    for margin, node in ((0.0, 0), (0.9 * gain, 0), (1.1 * gain, 1)):
        sch = TeacherScheduler(Teacher(hand_model(), None), margin=margin, fallback=LastNode())
        assert sch.plan(p).node.tolist() == [node]
    # A margin nothing beats is the fallback's plan, decision for decision.
    rng = np.random.default_rng(2)
    het = preset("het16")
    sampler = make_sampler({"generator": "layered", "n_tasks": [10, 30], "ccr": 0.05})
    differs = 0
    for _ in range(3):
        q = Problem(sampler.sample(rng, het), het)
        sch = TeacherScheduler(Teacher(hand_model(), None), margin=1e9, fallback="data_locality")
        dl = DataLocalityScheduler()
        b = PlanBuilder(q, insertion=True)  # as Scheduler.plan builds
        queue = ReadyQueue(b, sch.priority(q))
        dl._ensure(q)
        while not b.done:
            t = queue.pop()
            b.assign(t, dl.select_node(b, t))
            queue.update()
        assert sch.plan(q).node.tolist() == b.node.tolist()
        greedy = TeacherScheduler(Teacher(hand_model(), None)).plan(q).node.tolist()
        differs += greedy != b.node.tolist()
    assert differs >= 1  # the margin mattered: a*_t is not data locality's node everywhere
    with pytest.raises(TeacherConfigError, match="margin must be a number >= 0, got -0.1"):
        TeacherScheduler(Teacher(hand_model(), None), margin=-0.1)
    with pytest.raises(TeacherConfigError, match="unknown scheduler 'nope'"):
        TeacherScheduler(Teacher(hand_model(), None), margin=0.1, fallback="nope")


# ------------------------------------------------------------------------ the wrapper


def _layered_env(seed_cluster: str = "het16") -> gym.Env:
    spec = {"generator": "layered", "n_tasks": [8, 16], "ccr": 1.0}
    return gym.make("WassSched-v0", workload=spec, cluster=seed_cluster)


def _rollout(env: gym.Env, episodes: int, seed: int) -> list[tuple[float, dict]]:
    rng = np.random.default_rng(seed)
    out = []
    _, info = env.reset(seed=seed)
    done = 0
    while done < episodes:
        a = int(rng.choice(np.flatnonzero(info["action_mask"])))
        _, r, term, trunc, info = env.step(a)
        out.append((float(r), {**info, "action": a}))
        if term or trunc:
            done += 1
            _, info = env.reset()
    return out


def test_lambda_zero_reproduces_the_bare_rewards() -> None:
    teacher = Teacher(hand_model(), None)
    bare = _rollout(_layered_env(), 3, seed=11)
    wrapped = _rollout(RAGRewardWrapper(_layered_env(), teacher, lam=0.0), 3, seed=11)
    assert len(bare) == len(wrapped) > 20
    for (rb, ib), (rw, iw) in zip(bare, wrapped, strict=True):
        assert rw == rb  # bit for bit
        assert iw["rewards"]["makespan"] == ib["rewards"]["makespan"]
        assert "rag" in iw["rewards"] and "rag" not in ib["rewards"]
    assert any(iw["rewards"]["rag"] < 0 for _, iw in wrapped)  # the teacher did run


def test_reward_adds_lambda_times_rag_and_eq3_is_never_positive() -> None:
    teacher = Teacher(hand_model(), None)
    bare = _rollout(_layered_env(), 2, seed=3)
    wrapped = _rollout(RAGRewardWrapper(_layered_env(), teacher, lam=0.5), 2, seed=3)
    for (rb, _), (rw, iw) in zip(bare, wrapped, strict=True):
        rag = iw["rewards"]["rag"]
        assert rw == pytest.approx(rb + 0.5 * rag, abs=1e-12)
        assert rag <= 0.0
        t = iw["teacher"]
        assert (rag == 0.0) == (
            iw["action"] == t["best_action"] or t["pred_action"] == t["pred_best"]
        )
        assert rag == pytest.approx(t["pred_best"] - t["pred_action"], abs=1e-12)


def test_potential_shaping_telescopes() -> None:
    teacher = Teacher(hand_model(), None, mode="potential", gamma=1.0)
    steps = _rollout(RAGRewardWrapper(_layered_env(), teacher, lam=1.0), 1, seed=5)
    total = sum(i["rewards"]["rag"] for _, i in steps)
    # gamma = 1: sum of Phi(s') - Phi(s) = Phi(end) - Phi(s_0) = min_a Pred(s_0, a).
    assert total == pytest.approx(steps[0][1]["teacher"]["pred_best"], rel=1e-9)


def test_wrapper_pickles_and_continues_identically(problem: Problem) -> None:
    model = hand_model()
    kb = _teacher_kb(problem, model, node=1)
    kb.index("hnsw")  # a FAISS index travels with the pickle
    env = RAGRewardWrapper(_layered_env(), Teacher(model, kb, mode="history", k=2), lam=0.2)
    _, info = env.reset(seed=2)
    env.step(int(np.flatnonzero(info["action_mask"])[0]))
    clone = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
        r1 = env.step(a)
        r2 = clone.step(a)
        assert r1[1] == r2[1] and r1[4]["rewards"] == r2[4]["rewards"]
        assert r1[4]["teacher"]["neighbours"].tolist() == r2[4]["teacher"]["neighbours"].tolist()
        if r1[2]:
            break


def test_rag_reward_is_in_the_env_reward_unit(problem: Problem) -> None:
    """With reward_scale="reference" the env's rewards are in units of HEFT's makespan; R_RAG
    (predicted makespan / lower bound) is converted to the same unit: lower bound / HEFT."""
    model = hand_model()
    kb = _teacher_kb(problem, model, node=1)
    spec = {"generator": "layered", "n_tasks": [8, 16], "ccr": 1.0}
    envs = {
        scale: RAGRewardWrapper(
            gym.make(
                "WassSched-v0", workload=spec, cluster="het16", reward_scale=scale, reference="heft"
            ),
            Teacher(model, kb),
            lam=1.0,
        )
        for scale in ("lower_bound", "reference")
    }
    infos = {scale: env.reset(seed=3)[1] for scale, env in envs.items()}
    base = envs["reference"].unwrapped
    ratio = base.problem.lower_bound() / base._reference_makespan
    assert base.reward_unit_per_lower_bound == pytest.approx(ratio) and ratio < 1.0
    assert envs["lower_bound"].unwrapped.reward_unit_per_lower_bound == 1.0
    seen = 0
    for _ in range(6):
        a = int(np.flatnonzero(infos["reference"]["action_mask"])[-1])
        out = {scale: env.step(a) for scale, env in envs.items()}
        rag_lb = out["lower_bound"][4]["rewards"]["rag"]
        rag_ref = out["reference"][4]["rewards"]["rag"]
        assert rag_ref == pytest.approx(rag_lb * ratio, rel=1e-12, abs=1e-15)
        seen += rag_lb != 0.0
        infos = {scale: o[4] for scale, o in out.items()}
        if out["reference"][2]:
            break
    assert seen > 0  # the check compared non-zero rewards


# ------------------------------------------------------------------------ training


def test_predictor_learns_a_synthetic_relation() -> None:
    """Targets replaced by a known function of the inputs: held-out R^2 must exceed 0.95."""
    from wass_env.sim import preset
    from wass_env.workloads import make_sampler

    rng = np.random.default_rng(0)
    cl = preset("het16")
    sampler = make_sampler({"generator": "layered", "n_tasks": [8, 16], "ccr": 1.0})
    kb = None
    for i in range(40):
        p = Problem(sampler.sample(rng, cl), cl)
        pf = ProblemFeatures(p)
        rec, mk = record_episode(p, ["heft~0.5", "random"][i % 2], rng, pf=pf, branch_prob=0.2)
        y = 1.0 + 1.5 * rec.action_features[:, A["bound_after"]] + 0.5 * rec.state[:, S["progress"]]
        rec = dataclasses.replace(rec, target=y.astype(np.float32))
        if kb is None:
            kb = KnowledgeBase(rec.keys.shape[1])
        kb.add_episode(pf, rec, makespan=mk, policy="p", instance=f"i{i}")
    cfg = PredictorTrainConfig(
        encoder=EncoderConfig(hidden=16, layers=1, embed_dim=8),
        predictor=PredictorConfig(hidden=32, k=3),
        epochs=40,
        context_epochs=10,
        batch_episodes=4,
        lr=5e-3,
        val_fraction=0.25,
        seed=0,
    )
    res = train_teacher(kb, cfg)
    assert res.report["context"]["val"]["r2"] > 0.95
    assert res.report["instances"]["val"] == 10
    assert res.keys.shape == (len(kb), 8 + EncoderConfig().family_dim)


def test_trained_teacher_end_to_end(tmp_path: Path) -> None:
    kb = build_knowledge_base(
        BuildConfig(
            workload={"generator": "layered", "n_tasks": [8, 14], "ccr": 1.0},
            policies=("heft", "heft~0.3", "random"),
            policies_per_instance=2,
            instances=10,
            branch_prob=0.2,
        )
    )
    cfg = PredictorTrainConfig(
        encoder=EncoderConfig(hidden=16, layers=1, embed_dim=8),
        predictor=PredictorConfig(hidden=16, k=3),
        epochs=3,
        context_epochs=2,
    )
    res = train_teacher(kb, cfg)
    kb.set_keys(res.keys, res.model.key_model)
    kb.save(tmp_path / "kb.wkb")
    res.model.save(tmp_path / "m.wtm")
    model = TeacherModel.load(tmp_path / "m.wtm")
    teacher = Teacher(model, KnowledgeBase.load(tmp_path / "kb.wkb"), reference="heft")
    assert teacher.reference == "heft" and set(model.policies) == {"heft", "heft~0.3", "random"}
    env = RAGRewardWrapper(_layered_env(), teacher, lam=0.1)
    steps = _rollout(env, 1, seed=0)
    for _, info in steps:
        t = info["teacher"]
        assert len(t["neighbours"]) == 3 and t["retrieval_ms"] >= 0
        assert 0 <= t["best_action"] < 16 and t["pred_best"] >= 1.0
        assert info["rewards"]["rag"] <= 0.0


# ------------------------------------------------------------------------ explanations


def test_explain_lists_cases_and_marks_the_best_node(problem: Problem) -> None:
    model = hand_model()
    # A base whose best-matching cases come from another family ("other", added first: equal
    # similarities go to the lower record id), then three of the query's own family.
    other = Problem(problem.workflow.replace(family="other", name="fork3b"), problem.cluster)
    kb = _teacher_kb(other, model, node=1, copies=2)
    kb.extend(_teacher_kb(problem, model, node=1))
    teacher = Teacher(model, kb, k=4, index="numpy")  # equal similarities: lower id first
    b = PlanBuilder(problem, insertion=False)
    teacher.evaluate(b, 0)
    b.assign(0, 0)
    ex = explain(teacher, b, 2)
    assert ex.best == 0 and ex.task == "t2" and ex.step == 1 and ex.family == "hand"
    # The task: its parent t0 runs on n0 and sends it 200 bytes.
    assert [(p.task, p.node, p.bytes) for p in ex.parents] == [("t0", 0, 200.0)]
    assert ex.input_bytes == 200.0 and ex.stage_in_bytes == 0.0
    # Per node: t2 finishes at 2 + 3 = 5 s on n0 (data local) and at 2 + 2 + 6 = 10 s on n1,
    # where its 200 input bytes would move; Pred = 1 + softplus(finish / 5 s lower bound).
    assert [n.best for n in ex.nodes] == [True, False]
    np.testing.assert_allclose([n.finish for n in ex.nodes], [5.0, 10.0])
    assert [n.moved for n in ex.nodes] == [0.0, 200.0]
    np.testing.assert_allclose(
        [n.predicted for n in ex.nodes], [1 + softplus(1.0), 1 + softplus(2.0)], rtol=1e-6
    )
    # The hand model ignores the context: every case predicts the same, no spread.
    assert all(n.low == pytest.approx(n.predicted) == pytest.approx(n.high) for n in ex.nodes)
    # The query's family first, then the others, each in retrieval order.
    assert [c.family for c in ex.cases] == ["hand", "hand", "other", "other"]
    assert [c.rank for c in ex.cases] == [3, 4, 1, 2]
    assert sum(c.weight for c in ex.cases) == pytest.approx(1.0)
    assert all(c.cluster == "two" and c.ratio == 2.0 and c.action == 1 for c in ex.cases)
    gap = (softplus(2.0) - softplus(1.0)) * 5.0  # [s] predicted makespan difference
    assert ex.reason == (
        f"n0 wins: predicted makespan {1 + softplus(1.0):.3f} x the lower bound, {gap:.3g} s "
        f"shorter than on n1 ({1 + softplus(2.0):.3f}); it is also the earliest-finish node, "
        "and moves 0 B instead of 200 B."
    )
    text = str(ex)
    row0 = next(line for line in text.splitlines() if line.startswith("   0  "))
    assert "<- a*" in row0 and "5.00" in row0 and "0 B" in row0
    assert "parents: t0 on n0 (200 B)" in text and ex.reason in text
    assert "fork3 (hand)" in text and "heft" in text


def test_explain_step_checks_the_step(problem: Problem) -> None:
    teacher = Teacher(hand_model(), None)
    with pytest.raises(ValueError, match=r"step must be in 0\.\.2 for 'fork3', got 3"):
        explain_step(teacher, problem, make_policy("heft"), 3)
    ex = explain_step(teacher, problem, make_policy("heft"), 0)
    assert ex.task == "t0" and ex.best == 0 and ex.cases == ()


def _explain(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """``wass explain ARGV`` in this process (its run directory under ``tmp_path``)."""
    import sys

    from teacher.apps import explain

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the app sets sys.argv
    return explain([*argv, f"hydra.run.dir={tmp_path / 'run'}"])


def test_explain_command_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = hand_model()
    model.save(tmp_path / "m.wtm")
    argv = [f"kb={tmp_path / 'none.wkb'}", f"model={tmp_path / 'm.wtm'}", "workflow=x.xml"]
    rc = _explain(argv, tmp_path, monkeypatch)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "none.wkb: no such file" in err
    assert "Traceback" not in err
    # The workflow is mandatory: named in one line.
    assert _explain([f"model={tmp_path / 'm.wtm'}"], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "workflow" in err and "Missing mandatory value" in err


def test_explain_command_prints_a_table_and_rejects_a_bad_step(
    problem: Problem,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    montage = shared_data / "dax" / "Montage_25.xml"
    model = hand_model()
    model.save(tmp_path / "m.wtm")
    _teacher_kb(problem, model, node=1).save(tmp_path / "kb.wkb")
    args = [f"kb={tmp_path / 'kb.wkb'}", f"model={tmp_path / 'm.wtm'}"]
    args += [f"workflow={montage}", "k=2"]
    assert _explain([*args, "step=5"], tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.startswith("decision 5 of Montage_25 (montage) on het16: place task ")
    # The task's parents and bytes, as the workflow file gives them.
    from wass_env.workloads import load_workflow

    wf = load_workflow(montage)
    task = wf.ids.index(head.split("'")[1])
    assert f"(type {wf.task_type[task]})" in head
    sl = wf.parent_edge_slice(task)
    total = float(wf.edge_bytes[sl].sum())
    assert f"input {total / 1e6:.3g} MB from parents" in out
    assert " wins: predicted makespan " in out
    assert out.count("<- a*") == 1 and "top-2 retrieved cases" in out
    assert _explain([*args, "step=25"], tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err == "error: step must be in 0..24 for 'Montage_25', got 25\n"


# ------------------------------------------------------------------------ knowing more than HEFT


def _lookahead_case() -> Problem:
    """A and X feed C; C is 5x faster on n1, and A's output takes 5 s to move.

    Runtimes [s] (rows A, X, C; columns n0, n1): A 2 / 3, X 1 / 1, C 10 / 2; A -> C moves 5e9
    bytes (5 s across nodes). HEFT puts A on n0 (finish 2 < 3) and then C on n1 after A's data:
    makespan 9 s. A on n1 keeps the data where C runs best: X on n0, C on n1 [3, 5]: 5 s.
    """
    cost = np.array([[2.0, 3.0], [1.0, 1.0], [10.0, 2.0]])
    wf = Workflow.from_arrays(
        cost.mean(axis=1),
        [(0, 2), (1, 2)],
        [5e9, 0.0],
        ids=["A", "X", "C"],
        name="la",
        family="la",
    )
    cl = Cluster([1.0, 1.0], [1, 1], bandwidth=1e9, latency=0.0, name="two")
    return Problem(wf, cl, cost_matrix=cost)


def test_teacher_follows_a_case_better_than_heft() -> None:
    """The base holds runs of HEFT (9 s) and of HEFT with lookahead (5 s) on a small instance;
    trained on it, the teacher's a*_t for the first task is the better run's node, not HEFT's."""
    from agents.heft import HEFTScheduler
    from teacher.teacher import TeacherScheduler

    problem = _lookahead_case()
    assert HEFTScheduler().plan(problem).makespan == pytest.approx(9.0)
    kb = KnowledgeBase(45)
    pf = ProblemFeatures(problem)
    for spec in ("heft", "heft_lookahead"):
        rec, mk = record_episode(
            problem, spec, np.random.default_rng(0), pf=pf, branch_prob=1.0, branch_k=2
        )
        kb.add_episode(pf, rec, makespan=mk, policy=spec, instance="la")
    # The base knows a run strictly better than HEFT, and why: its first task went to n1.
    lb = pf.scale
    first = (kb.column("rec_step") == 0) & (np.array(kb.record_continuations()) == "heft")
    best = np.flatnonzero(first)[np.argmin(kb.targets[first])]
    assert kb.targets[best] * lb == pytest.approx(5.0) and kb.column("rec_action")[best] == 1
    assert kb.column("ep_makespan").tolist() == pytest.approx([9.0, 5.0])
    cfg = PredictorTrainConfig(
        encoder=EncoderConfig(hidden=8, layers=1, embed_dim=4, family_dim=2),
        predictor=PredictorConfig(hidden=16, k=2),
        epochs=40,
        context_epochs=10,
        batch_episodes=2,
        lr=2e-2,
        val_fraction=0.0,
        policy_dropout=0.0,
        seed=0,
    )
    res = train_teacher(kb, cfg)
    kb.set_keys(res.keys, res.model.key_model)
    teacher = Teacher(res.model, kb, reference="heft")
    ev = teacher.evaluate(PlanBuilder(problem), 0)
    assert ev.best == 1 and HEFTScheduler().select_node(PlanBuilder(problem), 0) == 0
    assert ev.pred[1] < ev.pred[0]
    assert kb.record_info(int(ev.neighbours[0]))["step"] == 0  # it retrieved that decision
    # Greedily, the teacher then reproduces the better plan.
    assert TeacherScheduler(teacher).plan(problem).makespan == pytest.approx(5.0)
