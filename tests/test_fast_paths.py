"""Fast paths of the planner, the workflow and the environment agree with the plain computation.

Each fast path (scalar loops for few parents, a skipped gap search, a shared workflow structure,
incrementally kept observation columns) is checked against a direct computation from the
definitions on random instances, so a shortcut that drifts from the definition fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from wass_env.envs import NODE_FEATURES, WassSchedEnv
from wass_env.sim import Cluster, PlanBuilder, Problem, Workflow, WorkflowError, preset
from wass_env.workloads import layered, make_sampler

COL = {name: i for i, name in enumerate(NODE_FEATURES)}


def _problems(seed: int, n: int = 6) -> list[Problem]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        wf = layered(
            int(rng.integers(8, 40)),
            rng,
            width=int(rng.integers(1, 6)),
            density=float(rng.uniform(0.1, 0.9)),  # dense: many parents (the array path too)
            jump=3,
            cores=(1, 6),
            ccr=float(rng.uniform(0.1, 5.0)),
        )
        staged = rng.uniform(0, 1e9, wf.n_tasks) * (rng.random(wf.n_tasks) < 0.3)  # [bytes]
        wf = wf.replace(input_bytes=staged)
        cl = preset("het16" if k % 2 else "hom16")
        if k % 3 == 2:
            cl = Cluster(
                cl.speed, cl.cores, cl.memory, dispatch_latency=2.0, name=f"{cl.name}-dispatch"
            )
        out.append(Problem(wf, cl))
    return out


def _reference_data_ready(b: PlanBuilder, task: int) -> np.ndarray:
    """Arrival of every input on every node from the definition (parents x nodes, then max),
    and the batch system's dispatch delay after the last parent."""
    p = b.problem
    wf = p.workflow
    sl = wf.parent_edge_slice(task)
    drt = np.full(p.n_nodes, p.stage_in[task])
    if sl.start == sl.stop:
        return drt
    parents = wf.edge_src[sl]
    arr = p.arrival_times(sl, b.node[parents], b.finish[parents])
    drt = np.maximum(drt, arr.max(axis=0))
    if p.cluster.dispatch_latency > 0:
        drt = np.maximum(drt, b.finish[parents].max() + p.cluster.dispatch_latency)
    return drt


def _reference_start(b: PlanBuilder, task: int, ready: np.ndarray) -> np.ndarray:
    """Earliest start with the exact gap search on every node (no filter)."""
    p = b.problem
    c = int(p.workflow.cores[task])
    out = np.full(p.n_nodes, np.inf)
    for n in range(p.n_nodes):
        if not p.fits[task, n]:
            continue
        d = float(p.exec_time[task, n])
        tail = 0.0 if d == 0 else float(b._tail[n, c])
        if d > 0 and b.insertion:
            out[n] = b._profiles[n].earliest_fit(float(ready[n]), d, c)
        else:
            s = max(float(ready[n]), tail)
            out[n] = s if b.insertion else max(s, float(b._last_start[n]))
    return out


@pytest.mark.parametrize("insertion", [True, False])
def test_planner_queries_match_the_definitions(insertion: bool) -> None:
    checked = 0
    for p in _problems(1):
        b = PlanBuilder(p, insertion=insertion)
        rng = np.random.default_rng(p.n_tasks)
        while not b.done:
            ready = sorted(b.ready)
            task = ready[int(rng.integers(len(ready)))]
            drt = b.data_ready(task)
            np.testing.assert_array_equal(drt, _reference_data_ready(b, task))
            parents = p.workflow.parents(task)
            want_release = float(b.finish[parents].max()) if parents.size else 0.0
            assert b.release_time(task) == want_release
            est = b.earliest_start(task)
            np.testing.assert_allclose(est, _reference_start(b, task, drt), rtol=1e-12)
            node = int(rng.choice(np.flatnonzero(p.fits[task])))
            s, _ = b.assign(task, node)
            assert s == est[node]
            checked += 1
    assert checked > 100


def test_inputs_from_placed_parents_match_the_definition() -> None:
    """``placed_parents_ready`` (the scalar form HEFT with lookahead's trials use for a child
    with unplaced parents) equals the arrival matrix's maximum over the placed parents."""
    checked = 0
    for p in _problems(2):
        b = PlanBuilder(p, insertion=True)
        rng = np.random.default_rng(p.n_tasks)
        wf = p.workflow
        while not b.done:
            for task in range(p.n_tasks):
                if b.node[task] >= 0:
                    continue
                got = b.placed_parents_ready(task)
                sl = wf.parent_edge_slice(task)
                if got is None:
                    assert sl.stop - sl.start > 8
                    continue
                want = np.full(p.n_nodes, p.stage_in[task])
                parents = wf.edge_src[sl]
                placed = b.node[parents] >= 0
                if placed.any():
                    arr = p.arrival_times(
                        sl,
                        np.where(placed, b.node[parents], 0),
                        np.where(placed, b.finish[parents], -np.inf),
                    )
                    want = np.maximum(want, arr.max(axis=0))
                np.testing.assert_array_equal(got, want)
                checked += int(placed.any() and not placed.all())
            ready = sorted(b.ready)
            task = ready[int(rng.integers(len(ready)))]
            b.assign(task, int(rng.choice(np.flatnonzero(p.fits[task]))))
    assert checked > 100  # partly placed parents, the case the trials meet


def test_replacing_edge_bytes_equals_rebuilding() -> None:
    wf = layered(30, np.random.default_rng(3), width=4, density=0.4)
    before = wf.edge_bytes.copy()
    nb = np.random.default_rng(4).uniform(0, 1e9, wf.n_edges)
    fast = wf.replace(edge_bytes=nb)
    slow = Workflow.from_arrays(
        wf.work,
        np.column_stack([wf.edge_src, wf.edge_dst]),
        nb,
        ids=wf.ids,
        cores=wf.cores,
        memory=wf.memory,
        name=wf.name,
        family=wf.family,
        source=wf.source,
    )
    assert fast == slow and fast.name == wf.name
    for attr in ("edge_src", "edge_dst", "parent_ptr", "child_ptr", "child_edges", "topo_order"):
        np.testing.assert_array_equal(getattr(fast, attr), getattr(slow, attr))
    np.testing.assert_array_equal(fast.levels, slow.levels)
    np.testing.assert_array_equal(wf.edge_bytes, before)  # the original is untouched
    assert not fast.edge_bytes.flags.writeable
    bad = nb.copy()
    bad[5] = -1.0
    msg = r"'L1_0' -> 'L2_0' in generator:layered: field 'bytes' must be finite and >= 0"
    with pytest.raises(WorkflowError, match=msg):
        wf.replace(edge_bytes=bad)
    with pytest.raises(WorkflowError, match="edge sizes for"):
        wf.replace(edge_bytes=nb[:-1])


def test_incremental_node_columns_match_a_recomputation() -> None:
    """``load`` and ``local_input`` are kept per placement; recompute them from the plan."""
    env = WassSchedEnv(
        workload={"generator": "layered", "n_tasks": [10, 40], "density": 0.8, "jump": 3},
        cluster=["het16", "hom16"],
        max_nodes=20,
    )
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    steps = 0
    for _ in range(6):
        while True:
            p, b, t = env.problem, env.builder, env.current_task
            n = p.n_nodes
            scale = p.lower_bound()
            load = np.minimum(b.node_busy / (p.cluster.cores * scale), 100.0)
            np.testing.assert_allclose(obs["nodes"][:n, COL["load"]], load, rtol=1e-6)
            sl = p.workflow.parent_edge_slice(t)
            total = p.workflow.edge_bytes[sl].sum()
            local = np.zeros(n)
            if total > 0:
                np.add.at(local, b.node[p.workflow.edge_src[sl]], p.workflow.edge_bytes[sl])
                local /= total
            np.testing.assert_allclose(obs["nodes"][:n, COL["local_input"]], local, atol=1e-7)
            assert not obs["nodes"][n:].any()  # padding rows stay zero
            obs, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            steps += 1
            if done:
                break
        obs, info = env.reset()
    assert steps > 100


def test_sampler_ccr_rescaling_keeps_the_structure() -> None:
    spec = {"generator": "layered", "n_tasks": [20, 40], "ccr": 2.0}
    cl = preset("het16")
    wf = make_sampler(spec).sample(np.random.default_rng(5), cl)
    assert Problem(wf, cl).ccr() == pytest.approx(2.0, rel=1e-12)
    assert not wf.topo_order.flags.writeable and not wf.edge_bytes.flags.writeable


def test_segment_sums_add_like_add_at() -> None:
    """The encoder's grouped sums equal ``np.add.at`` bit for bit (same order of additions)."""
    from teacher.encoder import _SegmentSum

    rng = np.random.default_rng(2)
    for n, m in [(40, 90), (5, 0), (30, 29), (12, 200)]:
        dst = np.sort(rng.integers(0, n, m))
        src = rng.integers(0, n, m)
        h = (rng.standard_normal((n, 16)) * 10.0 ** rng.integers(-3, 4, (n, 1))).astype(np.float32)
        for index, rows in ((dst, h[src]), (src, h[dst])):
            want = np.zeros_like(h)
            np.add.at(want, index, rows)
            got = _SegmentSum(index, n)(rows)
            assert got.dtype == np.float32 and np.array_equal(got, want)


def test_observe_another_plan_matches_the_episode_observation() -> None:
    """``observe(builder, task)`` on a plan followed outside the env gives the env's own
    observation of the same state (the incremental columns are rebuilt for it), and leaves the
    observing env's episode as it was."""
    env = WassSchedEnv(workload={"generator": "layered", "n_tasks": [15, 30]}, cluster="het16")
    other = WassSchedEnv(workload={"generator": "layered", "n_tasks": [8, 12]}, cluster="het16")
    other.reset(seed=1)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=4)
    shadow = PlanBuilder(env.problem, insertion=True)
    seen = 0
    while True:
        t = env.current_task
        got = other.observe(shadow, t)
        for key in obs:
            np.testing.assert_array_equal(got[key], obs[key])
        # The observing env still sees its own episode's task and mask.
        assert other.builder is not shadow and other.current_task >= 0
        np.testing.assert_array_equal(other.action_masks(), other._masks[other.current_task])
        node = int(rng.choice(np.flatnonzero(info["action_mask"])))
        shadow.assign(t, node)
        obs, _, done, _, info = env.step(node)
        seen += 1
        if done:
            break
    assert seen == env.problem.n_tasks


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_copied_builders_and_envs_keep_their_views(how: str) -> None:
    """The planner and the env write through views made once (of the tail table, of the
    observation's work arrays); a pickled, deep-copied or ``copy()``-ed one must remake them on
    its own arrays, so that it continues exactly like the original and leaves it untouched."""
    import copy
    import pickle

    def clone(x: object) -> object:
        if how == "pickle":
            return pickle.loads(pickle.dumps(x))
        if how == "deepcopy":
            return copy.deepcopy(x)
        return x.copy() if isinstance(x, PlanBuilder) else copy.deepcopy(x)

    env = WassSchedEnv(workload={"generator": "layered", "n_tasks": 40}, cluster="het16")
    _, info = env.reset(seed=5)
    rng = np.random.default_rng(5)
    for _ in range(10):
        _, *_, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
    b = env.builder
    assert b is not None and b.n_placed == 10 and not b.done  # ten steps placed ten tasks
    twin = clone(b)
    assert isinstance(twin, PlanBuilder)
    env2 = clone(env)
    assert isinstance(env2, WassSchedEnv)
    while True:
        a = int(rng.choice(np.flatnonzero(info["action_mask"])))
        t = env.current_task
        want = env.builder.earliest_start(t).copy()  # type: ignore[union-attr]
        np.testing.assert_array_equal(twin.earliest_start(t), want)
        np.testing.assert_array_equal(twin.free_from(1), env.builder.free_from(1))  # type: ignore[union-attr]
        twin.assign(t, a)
        o1, r1, done, _, info = env.step(a)
        o2, r2, *_ = env2.step(a)
        assert r1 == r2
        for key in o1:
            np.testing.assert_array_equal(o1[key], o2[key])
        if done:
            break
    np.testing.assert_array_equal(twin.plan().start, env.last_plan.start)


def _reference_layered(
    n: int, rng: np.random.Generator, width: int, density: float, jump: int, ccr: float | None
) -> Workflow:
    """The layered generator's definition, layer by layer (the generator finds the edges of
    every layer at once from the same draws)."""
    from wass_env.workloads import generators as g

    sizes = g._Sizes.check((1.0, 100.0), "uniform", (1e6, 1e8), ccr, 1, 0.0)
    n_layers = max(1, round(n / width))
    counts = 1 + rng.multinomial(n - n_layers, np.full(n_layers, 1.0 / n_layers))
    starts = [0, *np.cumsum(counts).tolist()]
    edges: list[tuple[int, int]] = []
    for layer in range(1, n_layers):
        lo, hi = starts[layer], starts[layer + 1]
        prev_lo = starts[layer - 1]
        cand_lo = starts[max(0, layer - jump)]
        main = rng.integers(0, lo - prev_lo, hi - lo)
        extra = rng.random((hi - lo, lo - cand_lo)) < density
        extra[np.arange(hi - lo), main + (prev_lo - cand_lo)] = True
        for child, parent in zip(*extra.nonzero(), strict=True):
            edges.append((int(parent) + cand_lo, int(child) + lo))
    arr = np.array(edges, dtype=np.int64).reshape(-1, 2)
    ids = [f"L{a}_{b}" for a, c in enumerate(counts.tolist()) for b in range(c)]
    return g._finish("layered", f"layered-{n}", n, arr, rng, sizes, ids=ids)


@pytest.mark.parametrize("seed", range(4))
def test_layered_generator_matches_its_layer_by_layer_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(25):
        n = int(rng.integers(1, 300))
        width = int(rng.integers(1, 12))
        density = float(rng.choice([0.0, 0.05, 0.3, 0.9, 1.0]))
        jump = int(rng.integers(1, 5))
        ccr = float(rng.uniform(0.1, 5.0)) if rng.random() < 0.5 else None
        draw = int(rng.integers(2**32))
        got = layered(
            n, np.random.default_rng(draw), width=width, density=density, jump=jump, ccr=ccr
        )
        want = _reference_layered(n, np.random.default_rng(draw), width, density, jump, ccr)
        assert got.ids == want.ids
        for field in ("edge_src", "edge_dst", "edge_bytes", "work", "cores", "memory"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), field)


def test_shared_lookahead_columns_follow_the_state() -> None:
    """The environment and the teacher share one :class:`Lookahead` per problem, which keeps
    the last state's columns: every answer equals a fresh computation, for the episode's plan
    and for a copy that moves on."""
    from wass_env.envs.lookahead import Lookahead

    p = _problems(3, n=2)[1]
    shared = Lookahead.of(p, 100.0)
    assert Lookahead.of(p, 100.0) is shared and Lookahead.of(p, 50.0) is not shared
    b = PlanBuilder(p, insertion=True)
    rng = np.random.default_rng(0)
    scale = p.lower_bound()
    while not b.done:
        task = min(b.ready)
        other = b.copy()
        for plan in (b, other, b):
            eft = plan.earliest_finish(task)
            got = shared(plan, task, eft, plan.release_time(task), scale)
            fresh = Lookahead(p, 100.0)._columns(plan, task, eft, plan.release_time(task), scale)
            np.testing.assert_array_equal(got, fresh)
            assert not got.flags.writeable
        other.assign(task, int(rng.choice(np.flatnonzero(p.fits[task]))))
        if not other.done:
            t2 = min(other.ready)
            eft = other.earliest_finish(t2)
            np.testing.assert_array_equal(
                shared(other, t2, eft, other.release_time(t2), scale),
                Lookahead(p, 100.0)._columns(other, t2, eft, other.release_time(t2), scale),
            )
        b.assign(task, int(rng.choice(np.flatnonzero(p.fits[task]))))


def _varied_problems(seed: int, n: int = 12) -> list[Problem]:
    """Small problems with what the single-node start must handle: per-pair networks, memory
    that binds, zero-length tasks, multi-core tasks on nodes they do not all fit, dispatch
    latency and many-parent tasks."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        n_t = int(rng.integers(10, 30))
        n_n = int(rng.integers(2, 6))
        edges = [
            (i, j) for j in range(n_t) for i in range(j) if rng.random() < (0.5 if k % 4 else 0.1)
        ]
        work = rng.choice([0.0, 0.5, 1.0, 3.7, 10.0], n_t)
        node_cores = rng.integers(1, 5, n_n)
        node_cores[0] = 4
        wf = Workflow.from_arrays(
            work,
            np.asarray(edges, dtype=np.int64).reshape(-1, 2),
            rng.choice([0.0, 10.0, 300.0], len(edges)) * rng.uniform(0.9, 1.1, len(edges)),
            cores=rng.integers(1, 5, n_t),
            memory=rng.choice([0.0, 0.0, 3.0, 7.0], n_t) if k % 2 else np.zeros(n_t),
            input_bytes=rng.choice([0.0, 0.0, 40.0], n_t),
        )
        if k % 3 == 0:  # per-pair network
            bw = rng.uniform(5.0, 100.0, (n_n, n_n))  # inexact values: rounding shows
            lat = rng.uniform(0.0, 0.3, (n_n, n_n))
        else:
            bw, lat = float(rng.choice([10.0, 100.0])), float(rng.choice([0.0, 0.25]))
        mem = rng.choice([np.inf, 8.0, 10.0], n_n) if k % 2 else None
        out.append(
            Problem(
                wf,
                Cluster(
                    rng.choice([0.5, 1.0, 2.0], n_n),
                    node_cores,
                    mem,
                    bandwidth=bw,
                    latency=lat,
                    dispatch_latency=2.0 if k % 5 == 4 else 0.0,
                ),
            )
        )
    return out


@pytest.mark.parametrize("insertion", [True, False])
def test_start_on_one_node_equals_the_earliest_start_there(insertion: bool) -> None:
    """A replay (``assign`` without a query first) computes the start on its node alone
    (``_start_on``); it must equal :meth:`PlanBuilder.earliest_start` there bit for bit, and
    two replays of one plan, with and without the queries, must agree."""
    checked = 0
    for p in _varied_problems(7) + _problems(8, n=4):
        b = PlanBuilder(p, insertion=insertion)
        twin = PlanBuilder(p, insertion=insertion)  # places without asking first
        rng = np.random.default_rng(p.n_tasks)
        while not b.done:
            for t in sorted(b.ready):
                est = b.earliest_start(t)
                for n in np.flatnonzero(p.fits[t]).tolist():
                    assert b._start_on(t, n) == est[n]
                    checked += 1
            ready = sorted(b.ready)
            task = ready[int(rng.integers(len(ready)))]
            node = int(rng.choice(np.flatnonzero(p.fits[task])))
            b.earliest_start(task)
            assert b.assign(task, node) == twin.assign(task, node)
        np.testing.assert_array_equal(b.plan().start, twin.plan().start)
    assert checked > 2000
