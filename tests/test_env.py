"""WassSched-v0: API conformance, determinism, masks, rewards, pickling, rendering, training."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import wass_env
from agents.baselines import SlurmScheduler
from wass_env.envs import NODE_FEATURES, TASK_FEATURES, WassSchedEnv
from wass_env.scheduling import make_scheduler
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow, preset, schedule_metrics


def small_workflows() -> list[Workflow]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(4):
        n = 12 + 3 * k
        edges = [(i, j) for j in range(1, n) for i in range(j) if rng.random() < 0.2]
        edges += [(j - 1, j) for j in range(1, n) if not any(e[1] == j for e in edges)]
        out.append(
            Workflow.from_arrays(
                rng.uniform(1, 20, n),
                edges,
                rng.uniform(1e8, 5e9, len(edges)),
                cores=rng.integers(1, 3, n),
                name=f"wf{k}",
                family="test",
            )
        )
    return out


def make_env(**kw) -> WassSchedEnv:
    kw.setdefault("workload", small_workflows())
    kw.setdefault("cluster", ["het16", {"kind": "homogeneous", "n_nodes": 6}])
    return WassSchedEnv(**kw)


def rollout(env, seed, policy="masked"):
    obs, info = env.reset(seed=seed)
    traj = [obs]
    rng = np.random.default_rng(seed)
    while True:
        if policy == "masked":
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        else:
            action = int(rng.integers(env.action_space.n))
        obs, reward, terminated, truncated, info = env.step(action)
        traj.append((obs, reward, info))
        if terminated or truncated:
            return traj, info


def test_gymnasium_and_sb3_checkers_pass():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = make_env()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check(env, skip_render_check=True)
        sb3_check(env)
    messages = [str(w.message) for w in caught]
    # The only warning: SB3 suggests flattening the 2-D "nodes" Box. It stays 2-D on purpose
    # (one row per node, for per-node encoders); MultiInputPolicy flattens it itself.
    assert all("unconventional shape" in m for m in messages), messages


def test_registered_with_both_id_forms():
    env = gym.make("WassSched-v0", workload=small_workflows(), cluster="het16")
    assert isinstance(env.unwrapped, WassSchedEnv)
    env2 = gym.make("wass_env:WassSched-v0", workload=small_workflows(), cluster="hom16")
    assert env2.unwrapped.max_nodes == 16
    wass_env._register_envs()  # a second registration is a no-op, not an error
    assert wass_env.ENV_ID in gym.registry


def test_spaces_are_fixed_shape():
    env = make_env()
    assert env.action_space == gym.spaces.Discrete(16)
    assert env.observation_space["task"].shape == (len(TASK_FEATURES),)
    assert env.observation_space["nodes"].shape == (16, len(NODE_FEATURES))


def test_same_seed_same_episode_and_obs_in_space():
    a, b = make_env(), make_env()
    ta, ia = rollout(a, 3)
    tb, ib = rollout(b, 3)
    assert len(ta) == len(tb) and ia["makespan"] == ib["makespan"]
    for (oa, ra, _), (ob, rb, _) in zip(ta[1:], tb[1:], strict=True):
        assert ra == rb
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
            assert a.observation_space.contains(oa)
    _tc, ic = rollout(make_env(), 4)
    assert (ic["workflow"], ic["cluster"], ic["makespan"]) != (
        ia["workflow"],
        ia["cluster"],
        ia["makespan"],
    )


def test_a_seeded_reset_draws_what_a_fresh_env_draws_whatever_came_before():
    # Recipe pools are drawn lazily from the first episode's generator: without forgetting them
    # at a seeded reset, a used env's reset(seed=s) drew another workflow than a fresh env's.
    spec = {
        "mix": {
            "montage": {"recipe": "montage", "n_tasks": [58, 90], "pool": 4},
            "blast": {"recipe": "blast", "n_tasks": [43, 80], "pool": 4},
        }
    }
    kw = {"workload": spec, "cluster": "het16"}

    def drawn(env, seed):
        env.reset(seed=seed)
        return env.problem.workflow.name, env.problem.n_tasks

    fresh = [drawn(gym.make("WassSched-v0", **kw).unwrapped, s) for s in (11, 12, 13)]
    used = gym.make("WassSched-v0", **kw).unwrapped
    for s in (5, 6, 7, 8):
        drawn(used, s)
    assert [drawn(used, s) for s in (11, 12, 13)] == fresh
    assert [drawn(used, s) for s in (13, 12, 11)] == fresh[::-1]
    assert len(set(fresh)) == 3
    used.reset()  # unseeded resets go on drawing from the env's pools and stream
    assert used.problem is not None


def test_masks_match_feasibility_and_masked_rollouts_are_never_illegal():
    env = make_env(cluster="het16")
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        while True:
            mask = env.action_masks()
            assert mask.dtype == np.bool_ and info["action_mask"].dtype == np.int8
            np.testing.assert_array_equal(mask, info["action_mask"].astype(bool))
            np.testing.assert_array_equal(mask[:16], env.problem.fits[env.current_task])
            np.testing.assert_array_equal(obs["nodes"][:, 1], mask)
            assert env.observation_space.contains(obs)
            action = env.action_space.sample(mask=info["action_mask"])
            obs, _, terminated, _, info = env.step(action)
            assert info["illegal_action"] is False and info["rewards"]["illegal"] == 0.0
            if terminated:
                break


def test_illegal_action_falls_back_to_first_feasible_node_with_penalty():
    # A 2-core task on a cluster whose first node has 1 core: node 0 is masked.
    wf = Workflow.from_arrays([1.0, 1.0], [(0, 1)], cores=[2, 1])
    cl = Cluster([1.0, 1.0, 1.0], [1, 2, 2])
    env = WassSchedEnv(workload=wf, cluster=cl, max_nodes=5)
    _, info = env.reset(seed=0)
    assert info["action_mask"].tolist() == [0, 1, 1, 0, 0]
    _, reward, _, _, info = env.step(4)  # padding
    assert info["illegal_action"] is True and info["rewards"]["illegal"] == -1.0
    assert env.builder.node[0] == 1 and reward == -1.0
    _, reward, done, _, info = env.step(0)  # legal for the 1-core task
    assert info["illegal_action"] is False and done
    strict = WassSchedEnv(workload=wf, cluster=cl, max_nodes=5, illegal_action="raise")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match=r"illegal action 0.*feasible nodes are \[1, 2\]"):
        strict.step(0)


def test_reward_terms_sum_to_the_makespan():
    env = make_env(reward_weights={"makespan": 1.0, "progress": 1.0})
    traj, info = rollout(env, 11)
    progress = sum(step[2]["rewards"]["progress"] for step in traj[1:])
    lb = info["lower_bound"]
    assert progress == pytest.approx(-info["planned_makespan"] / lb, rel=1e-12)
    assert traj[-1][2]["rewards"]["makespan"] == pytest.approx(-info["makespan"] / lb)
    total = sum(step[1] for step in traj[1:])
    assert total == pytest.approx(progress - info["makespan"] / lb, rel=1e-12)
    # the final info carries every metric, equal to the simulator's own computation
    metrics = schedule_metrics(env.last_plan).as_dict()
    for k, v in metrics.items():
        assert info[k] == pytest.approx(v)
    assert info["n_tasks"] == env.problem.n_tasks and info["family"] == "test"


def test_noise_changes_realized_but_not_planned_makespan():
    env = make_env(noise=0.3)
    _, info_a = rollout(env, 5)
    _, info_b = rollout(make_env(noise=0.0), 5)
    assert info_a["planned_makespan"] == info_b["planned_makespan"]
    assert info_a["makespan"] != info_a["planned_makespan"]
    _, info_c = rollout(make_env(noise=0.3), 5)
    assert info_c["makespan"] == info_a["makespan"]


def test_stepwise_scheduler_matches_its_whole_workflow_plan():
    # In the env (rank order) Slurm-like FCFS picks the same nodes as a builder driven in that
    # order; the env's plan is exactly that plan.
    env = make_env(cluster="het16")
    slurm = SlurmScheduler()
    obs, info = env.reset(seed=2)
    order = []
    while True:
        order.append(env.current_task)
        obs, _, done, _, info = env.step(slurm.act(obs, env.action_masks(), env))
        if done:
            break
    b = PlanBuilder(env.problem, insertion=True)
    for t in order:
        b.assign(t, slurm.select_node(b, t))
    np.testing.assert_array_equal(b.plan().node, env.last_plan.node)
    assert b.plan().makespan == info["planned_makespan"]


def test_reset_with_a_given_problem():
    wf = small_workflows()[0]
    problem = Problem(wf, preset("hom16"))
    env = make_env()
    env.reset(seed=0, options={"problem": problem})
    assert env.problem is problem
    env.reset(seed=0, options={"workflow": wf, "cluster": "het16"})
    assert env.problem.cluster.name == "het16" and env.problem.workflow is wf
    with pytest.raises(ValueError, match="max_nodes=16"):
        env.reset(options={"workflow": wf, "cluster": "het32"})


def test_pickling_mid_episode_continues_identically():
    env = make_env()
    _, info = env.reset(seed=9)
    for _ in range(4):
        _obs, *_, info = env.step(int(np.argmax(info["action_mask"])))
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        a = int(np.flatnonzero(info["action_mask"])[-1])
        o1, r1, *_ = env.step(a)
        o2, r2, *_, info = clone.step(a)
        assert r1 == r2
        np.testing.assert_array_equal(o1["nodes"], o2["nodes"])


def test_render_modes():
    env = make_env(render_mode="ansi", cluster="hom16")
    rollout(env, 1)
    text = env.render()
    assert text.splitlines()[0].startswith(f"{env.problem.workflow.name} on hom16:")
    assert f"makespan {env.last_plan.makespan:.6g} s" in text
    assert "\nnode0/0 |" in text and "\nkey: " in text  # lanes by node name, then the key
    img_env = make_env(render_mode="rgb_array", cluster="hom16")
    rollout(img_env, 1)
    img = img_env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.min() < 100 and img.max() == 255  # bars drawn on a white background
    with pytest.raises(ValueError, match="render_mode"):
        make_env(render_mode="human")


def test_bad_arguments_are_rejected_clearly():
    with pytest.raises(ValueError, match="max_nodes=4 is smaller"):
        make_env(max_nodes=4)
    with pytest.raises(ValueError, match="unknown term 'speed'"):
        make_env(reward_weights={"speed": 1.0})
    with pytest.raises(ValueError, match="task_order"):
        make_env(task_order="random")


def test_maskable_ppo_learns_in_subproc_vec_env():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    from agents.ppo import make_vec

    venv = make_vec(
        {"workload": small_workflows(), "cluster": "het16"}, n_envs=2, seed=0, subproc=True
    )
    try:
        model = MaskablePPO(
            "MultiInputPolicy", venv, n_steps=64, batch_size=64, seed=0, device="cpu"
        )
        model.learn(128)
        assert model.num_timesteps >= 128
        obs = venv.reset()
        for _ in range(30):
            masks = get_action_masks(venv)
            actions, _ = model.predict(obs, action_masks=masks, deterministic=True)
            assert all(masks[i, a] for i, a in enumerate(actions))
            obs, _, _, infos = venv.step(actions)
            assert not any(i.get("illegal_action") for i in infos)
    finally:
        venv.close()


def test_reference_scheduler_ratio_in_final_info():
    from agents.heft import HEFTScheduler

    env = make_env(reference="heft")
    traj, info = rollout(env, 6)
    heft = HEFTScheduler().plan(env.problem).makespan
    assert info["reference_makespan"] == heft
    assert info["ratio_to_reference"] == pytest.approx(info["planned_makespan"] / heft)
    assert all("reference_makespan" not in step[2] for step in traj[1:-1])
    assert "ratio_to_reference" not in rollout(make_env(), 6)[1]
    pickle.loads(pickle.dumps(env))  # the reference scheduler travels with the env


def test_noise_does_not_change_which_workflows_are_drawn():
    names = []
    for noise in (0.0, 0.3):
        env = make_env(noise=noise, cluster="het16")
        drawn = []
        for k in range(3):
            _, info = rollout(env, 3) if k == 0 else _continue(env)
            drawn.append(info["workflow"])
        names.append(drawn)
    assert names[0] == names[1]


def _continue(env):
    """One more episode without reseeding (the env's own stream continues)."""
    _, info = env.reset()
    while True:
        _, _, done, _, info = env.step(int(np.argmax(info["action_mask"])))
        if done:
            return None, info


def test_explicit_cost_matrix_observation_is_finite():
    # A 0 s runtime on one node and a huge work value used to give NaN speed features.
    wf = Workflow.from_arrays([1e9, 5.0], [(0, 1)])
    problem = Problem(wf, Cluster([1.0, 1.0], [1, 1]), cost_matrix=[[0.0, 5.0], [3.0, 4.0]])
    env = WassSchedEnv(workload=wf, cluster=problem.cluster)
    obs, _ = env.reset(options={"problem": problem})
    assert env.observation_space.contains(obs)
    assert obs["nodes"][:, 2].tolist() == [1.0, 0.0]  # node 0 is infinitely faster for task 0


def test_plan_hints_give_heft_and_one_node_makespans_in_the_context():
    from wass_env.envs import CONTEXT_FEATURES, PLAN_HINT_FEATURES

    # Entry tasks a and b (1 s each) feed c (1 s) with 10 s transfers on two 1-core nodes.
    # HEFT: a on n0 [0, 1]; b finishes first on n1 [0, 1]; c waits 10 s for one input either
    # way: 12 s. HEFT with lookahead sees that b on n1 makes its child c finish at 12 and
    # keeps b on n0 [1, 2], c there [2, 3]: 3 s, as everything on one node (no data moves).
    wf = Workflow.from_arrays([1.0, 1.0, 1.0], [(0, 2), (1, 2)], [10.0, 10.0], name="v")
    cluster = Cluster([1.0, 1.0], [1, 1], bandwidth=1.0, latency=0.0)
    problem = Problem(wf, cluster)
    env = WassSchedEnv(workload=[wf], cluster=cluster, lookahead=True, plan_hints=True)
    assert env.observation_space["context"].shape == (
        len(CONTEXT_FEATURES) + len(PLAN_HINT_FEATURES),
    )
    obs, _ = env.reset(seed=0, options={"problem": problem})
    lb = problem.lower_bound()
    hints = obs["context"][len(CONTEXT_FEATURES) :]
    assert make_scheduler("heft").plan(problem).makespan == pytest.approx(12.0)
    np.testing.assert_allclose(hints, [3.0 / lb, 3.0 / lb, 0.5], rtol=1e-6)
    # Constant over the episode; the rest of the context is the plain env's.
    plain = WassSchedEnv(workload=[wf], cluster=cluster, lookahead=True)
    pobs, _ = plain.reset(seed=0, options={"problem": problem})
    for _ in range(problem.n_tasks):
        np.testing.assert_array_equal(obs["context"][: len(CONTEXT_FEATURES)], pobs["context"])
        np.testing.assert_allclose(obs["context"][len(CONTEXT_FEATURES) :], hints)
        node = int(np.flatnonzero(env.action_masks())[0])
        obs, _, done, _, _ = env.step(node)
        pobs, *_ = plain.step(node)
    assert done and not obs["context"].any()  # the terminal observation is blank
    with pytest.raises(ValueError, match="plan_hints=True needs lookahead=True"):
        WassSchedEnv(workload=[wf], cluster=cluster, plan_hints=True)


def test_plan_hint_candidates_describe_the_shortest_plan_in_the_env_order():
    from wass_env.envs import CONTEXT_FEATURES
    from wass_env.envs.hints import plan_portfolio

    # A diamond a -> {b, c} -> d (1, 4, 3, 1 s) on two 1-core unit-speed nodes, 1 B/s links:
    # a->b sends 5 s of data, a->c 2 s, b->d 0 s, c->d 3 s. PEFT's own plan a, b on n0 and
    # c, d on n1: a [0, 1], b [1, 5], c waits for a's data [3, 6], d [6, 7]: 7 s. The one-node
    # plan is 1 + 4 + 3 + 1 = 9 s.
    wf = Workflow.from_arrays(
        [1.0, 4.0, 3.0, 1.0], [(0, 1), (0, 2), (1, 3), (2, 3)], [5.0, 2.0, 0.0, 3.0], name="diamond"
    )
    cluster = Cluster([1.0, 1.0], [1, 1], bandwidth=1.0, latency=0.0)
    problem = Problem(wf, cluster)
    cands = ["single_node", "heft", "peft", "cpop", "data_locality"]
    choice = plan_portfolio(problem, cands)
    assert choice.name == "peft (own order)" and choice.makespan == pytest.approx(7.0)
    assert choice.nodes.tolist() == [0, 0, 1, 1]
    rule = make_scheduler("heft_lookahead").plan(problem).makespan
    assert choice.rule_makespan == pytest.approx(rule) and rule > 7.0
    assert make_scheduler("single_node").plan(problem).makespan == pytest.approx(9.0)
    # The registered scheduler plays that plan.
    assert make_scheduler("plan_portfolio").plan(problem).makespan == pytest.approx(7.0)
    env = WassSchedEnv(
        workload=[wf],
        cluster=cluster,
        lookahead=True,
        plan_hints=True,
        plan_hint_candidates=cands,
    )
    obs, _ = env.reset(seed=0, options={"problem": problem})
    lb = problem.lower_bound()
    np.testing.assert_allclose(
        obs["context"][len(CONTEXT_FEATURES) :],
        [rule / lb, 7.0 / lb, rule / (rule + 7.0)],
        rtol=1e-6,
    )
    # The column marks the winning plan's node of every task; following it gives 7 s.
    done = False
    while not done:
        t = env.current_task
        col = obs["lookahead"][:2, -1]
        assert col.tolist() == [0.0 if n == choice.nodes[t] else 1.0 for n in range(2)]
        obs, _, done, _, info = env.step(int(choice.nodes[t]))
    assert info["planned_makespan"] == pytest.approx(7.0)
    # Where the rule's plan is as short as any candidate's, the rule wins the tie: the hint is
    # its own plan (share 1/2).
    tie = plan_portfolio(problem, ["heft_lookahead"])
    assert tie.name == "heft_lookahead" and tie.makespan == tie.rule_makespan
    with pytest.raises(ValueError, match="plan_hint_candidates needs plan_hints=True"):
        WassSchedEnv(workload=[wf], cluster=cluster, lookahead=True, plan_hint_candidates=cands)
    with pytest.raises(ValueError, match="'hft' is not a registered scheduler"):
        WassSchedEnv(
            workload=[wf],
            cluster=cluster,
            lookahead=True,
            plan_hints=True,
            plan_hint_candidates=["heft", "hft"],
        )
