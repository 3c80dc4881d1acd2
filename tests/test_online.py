"""Online mode: OnlineSim, online dispatch rules and WassSchedOnline-v0, with hand-computed runs."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import wass_env
from agents.baselines import RandomScheduler, SlurmScheduler
from agents.heft import HEFTScheduler
from wass_env.envs import NODE_FEATURES, WassSchedEnv, WassSchedOnlineEnv
from wass_env.envs.wass_sched import ActionError
from wass_env.scheduling import make_scheduler
from wass_env.sim import Cluster, Problem, Workflow
from wass_env.sim.execute import execute
from wass_env.sim.online import OnlineError, OnlineSim


def fork_problem(network: str = "contention_free") -> Problem:
    """t0 -> t1, t0 -> t2 on a fast node 0 (speed 2) and a slow node 1 (speed 1), one core
    each; every edge moves 1e6 bytes at 1e6 bytes/s with no latency (1 s between nodes)."""
    wf = Workflow.from_arrays([4.0, 6.0, 2.0], [(0, 1), (0, 2)], [1e6, 1e6], name="fork")
    cl = Cluster([2.0, 1.0], [1, 1], bandwidth=1e6, latency=0.0, network=network)
    return Problem(wf, cl)


def small_workflows() -> list[Workflow]:
    rng = np.random.default_rng(11)
    out = []
    for k in range(3):
        n = 10 + 4 * k
        edges = [(i, j) for j in range(1, n) for i in range(j) if rng.random() < 0.2]
        edges += [(j - 1, j) for j in range(1, n) if not any(e[1] == j for e in edges)]
        out.append(
            Workflow.from_arrays(
                rng.uniform(1, 20, n),
                edges,
                rng.uniform(1e8, 5e9, len(edges)),
                cores=rng.integers(1, 3, n),
                name=f"wf{k}",
            )
        )
    return out


def make_env(**kw) -> WassSchedOnlineEnv:
    kw.setdefault("workload", small_workflows())
    kw.setdefault("cluster", ["het16", {"preset": "het16", "network": "nic"}])
    return WassSchedOnlineEnv(**kw)


def rollout(env, seed):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    steps = []
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, reward, info))
        if terminated or truncated:
            return steps, info


# ---------------------------------------------------------------------------- hand-computed
def test_fork_without_noise_equals_the_static_heft_plan():
    # Online HEFT: t0 -> node 0 [0, 2]. At 2, t1 (rank 4.5 + ...) first: node 0 finishes it at
    # 5, node 1 at 2 + 1 + 6 = 9 -> node 0 [2, 5]. t2: node 0 is busy, node 1 takes it: its
    # input arrives at 3, [3, 5]. Static HEFT: the same (t2 on node 0 would finish at 6).
    p = fork_problem()
    online = HEFTScheduler().run_online(p)
    plan = HEFTScheduler().plan(p)
    np.testing.assert_array_equal(online.node, [0, 0, 1])
    np.testing.assert_array_equal(online.start, [0.0, 2.0, 3.0])
    np.testing.assert_array_equal(online.finish, [2.0, 5.0, 5.0])
    np.testing.assert_array_equal(online.node, plan.node)
    np.testing.assert_array_equal(online.start, plan.start)
    np.testing.assert_array_equal(online.finish, plan.finish)


def test_fork_is_the_same_in_both_dispatch_modes():
    for mode in ("queue", "idle"):
        s = HEFTScheduler().run_online(fork_problem(), mode=mode)
        np.testing.assert_array_equal(s.finish, [2.0, 5.0, 5.0])


def test_online_dispatch_beats_the_rigid_replay_under_noise():
    # B (7 s, 2 cores: only node 1 has them), A and Y (2 s each) and X (1 s, child of B, no
    # bytes) on two speed-1 nodes. HEFT's plan: B on node 1 [0, 7]; A [0, 2], Y [2, 4] on
    # node 0; X [7, 8] on node 0 (a tie with node 1, lowest index). A runs 3 x longer (6 s).
    # Replay: node 0 runs A [0, 6], Y [6, 8], X [8, 9]: makespan 9. Online (queue mode): A,
    # Y and B are dispatched at 0 as planned; when X becomes ready at 7, node 0 is expected
    # busy until 8 (Y started at 6) and node 1 is free: X runs there [7, 8], makespan 8.
    wf = Workflow.from_arrays([7.0, 2.0, 2.0, 1.0], [(0, 3)], [0.0], cores=[2, 1, 1, 1])
    p = Problem(wf, Cluster([1.0, 1.0], [1, 2], bandwidth=1e6, latency=0.0))
    factors = np.array([1.0, 3.0, 1.0, 1.0])
    plan = HEFTScheduler().plan(p)
    np.testing.assert_array_equal(plan.node, [1, 0, 0, 0])
    assert plan.makespan == 8.0
    runtimes = p.exec_time[np.arange(4), plan.node] * factors
    assert execute(plan, runtimes=runtimes).makespan == 9.0
    online = HEFTScheduler().run_online(p, factors=factors)
    np.testing.assert_array_equal(online.node, [1, 0, 0, 1])
    np.testing.assert_array_equal(online.start, [0.0, 0.0, 6.0, 7.0])
    np.testing.assert_array_equal(online.finish, [7.0, 6.0, 8.0, 8.0])


def test_idle_dispatch_fills_the_node_that_frees_first():
    # Three independent 2 s tasks on two identical nodes; t0 runs 3 x longer (6 s). HEFT's
    # plan (t0, t2 on node 0; t1 on node 1) replayed: t2 waits behind t0, [6, 8]. Queue mode
    # decides all three at time 0 like the plan (makespan 8); idle mode asks about t2 when
    # node 1 frees at 2: [2, 4], makespan 6.
    p = Problem(Workflow.from_arrays([2.0, 2.0, 2.0]), Cluster([1.0, 1.0], [1, 1]))
    factors = np.array([3.0, 1.0, 1.0])
    plan = HEFTScheduler().plan(p)
    np.testing.assert_array_equal(plan.node, [0, 1, 0])
    assert execute(plan, runtimes=2.0 * factors).makespan == 8.0
    queued = HEFTScheduler().run_online(p, factors=factors)
    np.testing.assert_array_equal(queued.node, [0, 1, 0])
    assert queued.makespan == 8.0
    idle = HEFTScheduler().run_online(p, factors=factors, mode="idle")
    np.testing.assert_array_equal(idle.node, [0, 1, 1])
    np.testing.assert_array_equal(idle.finish, [6.0, 2.0, 4.0])


def test_nic_contention_is_in_force_online():
    # t0 on node 0 finishes at 2 (work 4, speed 2); t1 and t2 go to nodes 1 and 2 at once.
    # Contention-free: each 1e6-byte input takes 1 s. Under "nic" both leave through node 0's
    # up link (1e6 B/s) at half rate: both arrive at 2 + 2 = 4.
    wf = Workflow.from_arrays([4.0, 1.0, 1.0], [(0, 1), (0, 2)], [1e6, 1e6])
    for network, arrive in (("contention_free", 3.0), ("nic", 4.0), ("shared_nic", 4.0)):
        cl = Cluster([2.0, 1.0, 1.0], [1, 1, 1], bandwidth=1e6, latency=0.0, network=network)
        sim = OnlineSim(Problem(wf, cl))
        assert sim.advance() and sim.candidates() == [0] == sorted(sim.ready)
        with pytest.raises(OnlineError, match="task 't1' is not ready"):
            sim.dispatch(1, 1)
        sim.dispatch(0, 0)
        assert sim.advance() and sim.now == 2.0 and sim.candidates() == [1, 2]
        sim.dispatch(1, 1)
        sim.dispatch(2, 2)
        assert not sim.advance()
        np.testing.assert_allclose(sim.start, [0.0, arrive, arrive], rtol=1e-12)
        np.testing.assert_allclose(sim.makespan, arrive + 1.0, rtol=1e-12)


def test_a_decision_waits_for_a_node_that_can_take_the_task():
    # Two 2-core tasks on one 2-core node and one 1-core node. Idle mode: the second task is
    # asked about when t0 finishes, not before. Queue mode: at once, and it waits in node 0's
    # queue (expected to get its cores at 3).
    wf = Workflow.from_arrays([3.0, 1.0], cores=[2, 2])
    p = Problem(wf, Cluster([1.0, 1.0], [2, 1]))
    sim = OnlineSim(p, mode="idle")
    assert sim.advance() and sim.candidates() == [0, 1]
    np.testing.assert_array_equal(sim.takers(0), [True, False])
    sim.dispatch(0, 0)
    assert sim.candidates() == []
    with pytest.raises(OnlineError, match="node 0 cannot take task 't1' now"):
        sim.dispatch(1, 0)
    free_at, _ = sim.estimate(1)
    assert free_at[0] == 3.0 and free_at[1] == np.inf
    assert sim.advance() and sim.now == 3.0
    sim.dispatch(1, 0)
    assert not sim.advance() and sim.makespan == 4.0
    sim = OnlineSim(p)
    assert sim.advance()
    sim.dispatch(0, 0)
    assert sim.advance() and sim.now == 0.0 and sim.candidates() == [1]
    assert sim.estimate(1)[0][0] == 3.0
    sim.dispatch(1, 0)
    assert sim.queue[0] == [1]
    assert not sim.advance() and sim.makespan == 4.0
    np.testing.assert_array_equal(sim.start, [0.0, 3.0])
    with pytest.raises(ValueError, match="dispatch mode must be one of"):
        OnlineSim(p, mode="later")


def test_slurm_online_is_fcfs_on_the_lowest_free_node():
    # Slurm ignores the data: t1 and t2 (file order) go to the lowest free node. At 2 (t0 on
    # node 0), t1 -> node 0 [2, 5]; t2 -> node 1, input at 3, [3, 5]. The slow node 1 never
    # gets t0 because node 0 is free first (lowest index).
    sch = SlurmScheduler()
    s = sch.run_online(fork_problem())
    np.testing.assert_array_equal(s.node, [0, 0, 1])
    assert s.makespan == 5.0
    # With t1 and t2 swapped in the file, t2 (the short one) gets node 0, t1 the slow node.
    wf = Workflow.from_arrays([4.0, 2.0, 6.0], [(0, 1), (0, 2)], [1e6, 1e6])
    p = Problem(wf, fork_problem().cluster)
    s = sch.run_online(p)
    np.testing.assert_array_equal(s.node, [0, 0, 1])
    np.testing.assert_array_equal(s.finish, [2.0, 3.0, 9.0])
    assert HEFTScheduler().run_online(p).makespan == 5.0  # rank order: t2 first, node 0


def test_schedulers_without_an_online_rule_say_so():
    with pytest.raises(NotImplementedError, match="'round_robin' has no online dispatch rule"):
        make_scheduler("round_robin").run_online(fork_problem())


# ---------------------------------------------------------------------------- environment
def test_registered_and_both_checkers_pass():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make(wass_env.ONLINE_ENV_ID, workload=small_workflows(), noise=0.3)
    assert isinstance(env.unwrapped, WassSchedOnlineEnv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(env.unwrapped)
    assert all("unconventional shape" in str(w.message) for w in caught)
    static = WassSchedEnv(workload=small_workflows())
    assert env.observation_space == static.observation_space
    assert env.action_space == static.action_space


def test_masks_rewards_and_final_metrics():
    env = make_env(noise=0.4, reward_weights={"progress": 1.0})
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        total = {"makespan": 0.0, "progress": 0.0}
        n = 0
        while True:
            sim = env.sim
            mask = env.action_masks()
            np.testing.assert_array_equal(mask[:16], sim.takers(env.current_task))
            np.testing.assert_array_equal(obs["nodes"][:, 1], mask)
            assert env.current_task in sim.ready and info["time"] == sim.now
            assert env.observation_space.contains(obs)
            obs, _, terminated, _, info = env.step(int(np.flatnonzero(mask)[-1]))
            n += 1
            for k in total:
                total[k] += info["rewards"][k]
            if terminated:
                break
        s = env.last_schedule
        assert n == env.problem.n_tasks and info["makespan"] == s.makespan
        lb = env.problem.lower_bound()
        assert total["makespan"] == pytest.approx(-s.makespan / lb, rel=1e-12)
        assert total["progress"] == pytest.approx(-s.makespan / lb, rel=1e-9)
        # Every task started after its parents finished (plus transfers) and held its node.
        wf = env.problem.workflow
        assert np.all(s.start[wf.edge_dst] >= s.finish[wf.edge_src])


def test_same_seed_same_episode_and_noise_pairs_with_the_static_env():
    a, b = make_env(noise=0.5), make_env(noise=0.5)
    ta, ia = rollout(a, 5)
    tb, ib = rollout(b, 5)
    assert ia["makespan"] == ib["makespan"] and len(ta) == len(tb)
    for (oa, ra, _), (ob, rb, _) in zip(ta, tb, strict=True):
        assert ra == rb
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
    _, ic = rollout(make_env(noise=0.5), 6)
    assert ic["makespan"] != ia["makespan"]
    # The factors are the static env's noise draw for the same seed and instance.
    static = WassSchedEnv(workload=small_workflows(), cluster=a.clusters, noise=0.5)
    static.reset(seed=5)
    assert static.problem.workflow.name == a.problem.workflow.name
    factors = np.random.default_rng([5, 0x6E6F6973]).lognormal(-0.125, 0.5, a.problem.n_tasks)
    np.testing.assert_array_equal(a.factors, factors)


def test_local_input_column_counts_bytes_on_each_node():
    # A join of 10 parents (more than the static env's short path handles): parents 0-5 on
    # node 0 (1e6 bytes each), 6-9 on node 1 (2e6 bytes each): 6e6 / 14e6 and 8e6 / 14e6.
    wf = Workflow.from_arrays(
        [1.0] * 11, [(i, 10) for i in range(10)], [1e6] * 6 + [2e6] * 4, name="join"
    )
    p = Problem(wf, Cluster([1.0, 1.0, 1.0], [8, 8, 8], bandwidth=1e6, latency=0.0))
    env = WassSchedOnlineEnv(workload=[wf], cluster=[p.cluster])
    obs, info = env.reset(seed=0, options={"problem": p})
    for _ in range(10):
        assert env.current_task < 10
        obs, _, done, _, info = env.step(0 if env.current_task < 6 else 1)
    assert env.current_task == 10 and not done
    col = NODE_FEATURES.index("local_input")
    np.testing.assert_allclose(obs["nodes"][:3, col], [6 / 14, 8 / 14, 0.0], rtol=1e-6)
    assert info["time"] == 1.0  # every parent ran at once, 1 s


def test_illegal_actions_fall_back_or_raise():
    env = make_env(cluster="hom16")
    env.reset(seed=0)
    _, _, _, _, info = env.step(99)
    assert info["illegal_action"] and info["rewards"]["illegal"] == -1.0
    env = make_env(cluster="hom16", illegal_action="raise")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="illegal action 99"):
        env.step(99)


def test_reference_is_run_online_on_the_same_runtimes():
    env = make_env(noise=0.3, reference="heft")
    env.reset(seed=2)
    heft = HEFTScheduler()
    info: dict = {}
    done = False
    while not done:
        _, _, done, _, info = env.step(heft.act(None, env.action_masks(), env))
    assert info["ratio_to_reference"] == 1.0  # HEFT stepping the env is the reference itself
    assert info["makespan"] == HEFTScheduler().run_online(env.problem, factors=env.factors).makespan
    rnd = RandomScheduler(seed=0).run_online(env.problem, factors=env.factors)
    assert rnd.makespan >= 0.0 and np.all(rnd.finish >= rnd.start)


def test_runs_under_subprocvecenv():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    def make(rank: int):
        return lambda: gym.make(
            "wass_env:WassSchedOnline-v0", workload={"generator": "layered", "n_tasks": 12}
        )

    vec = SubprocVecEnv([make(0), make(1)], start_method="fork")
    try:
        vec.seed(3)
        vec.reset()
        ended = []
        for step in range(30):
            masks = np.stack(vec.env_method("action_masks"))
            assert masks.shape == (2, 16) and masks.any(axis=1).all()
            _, rewards, dones, infos = vec.step(masks.argmax(axis=1))
            assert rewards.shape == (2,)
            for i in np.flatnonzero(dones).tolist():
                ended.append((step, i))
                assert infos[i]["makespan"] > 0 and infos[i]["n_tasks"] == 12
        # Every episode is one decision per task: 12 steps.
        assert ended == [(11, 0), (11, 1), (23, 0), (23, 1)]
    finally:
        vec.close()


def test_online_eval_script_prints_paired_ratios(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "online_eval.py"
    spec = importlib.util.spec_from_file_location("online_eval", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--instances", "3", "--noise", "0", "--networks", "contention_free"]
    argv += ["--workload", '{"generator": "layered", "n_tasks": 12}']
    assert mod.main(argv) == 0
    rows = [ln.split(" | ") for ln in capsys.readouterr().out.splitlines() if "| contention" in ln]
    by_name = {r[2]: r for r in rows}
    assert len(rows) == 6 and by_name["heft (static)"][5] == "1.000 ± 0.000"
    assert all(r[3] == "3" for r in rows)
    assert mod.main(["--instances", "0"]) == 2
    assert "--instances must be >= 1, got 0" in capsys.readouterr().err


def test_render_shows_what_has_run():
    env = WassSchedOnlineEnv(
        workload=[fork_problem().workflow], cluster=[fork_problem().cluster], render_mode="ansi"
    )
    env.reset(seed=0)
    assert "0/3 tasks placed" in env.render()  # nothing has started before the first decision
    env.step(0)  # t0 on node 0; the clock moves to 2, when it finishes
    assert "1/3 tasks placed, makespan 2 s" in env.render()
