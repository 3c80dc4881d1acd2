"""Synthetic generators, WfCommons recipes and workload samplers."""

from __future__ import annotations

import collections
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from wass_env.sim import Cluster, Problem, make_cluster
from wass_env.workloads import (
    GENERATORS,
    RECIPE_SHORTFALL,
    RECIPES,
    WorkloadError,
    WorkloadSampler,
    chain,
    cybershake,
    fan_in,
    fan_out,
    fork_join,
    genomics49,
    layered,
    load_dax,
    make_sampler,
    recipe_min_tasks,
    recipe_workflow,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "dax").is_dir(), reason=f"reference data not found at {DATA}"
)

# The reference network of the generators' ``ccr``: 10 Gb/s links, 0.1 ms latency, speed 1.0.
REFERENCE = Cluster([1.0, 1.0, 1.0], [64, 64, 64], bandwidth=1.25e9, latency=1e-4, name="ref")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def in_degree(wf) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.diff(wf.parent_ptr)


# ---------------------------------------------------------------------------------------------
# shapes


def test_chain_fan_in_fan_out_counts() -> None:
    c = chain(7, rng())
    assert (c.n_tasks, c.n_edges) == (7, 6)
    assert c.levels.tolist() == list(range(7))
    fi = fan_in(7, rng())
    assert (fi.n_tasks, fi.n_edges) == (7, 6)
    assert fi.entry_tasks.tolist() == [0, 1, 2, 3, 4, 5] and fi.exit_tasks.tolist() == [6]
    fo = fan_out(7, rng())
    assert (fo.n_tasks, fo.n_edges) == (7, 6)
    assert fo.entry_tasks.tolist() == [0] and fo.exit_tasks.tolist() == [1, 2, 3, 4, 5, 6]
    assert (c.family, fi.family, fo.family) == ("chain", "fan_in", "fan_out")
    assert chain(1, rng()).n_edges == 0


def test_fork_join_counts() -> None:
    by_width = fork_join(None, rng(), width=3, stages=3)
    assert (by_width.n_tasks, by_width.n_edges) == (1 + 3 * 4, 2 * 3 * 3)
    assert np.bincount(by_width.levels).tolist() == [1, 3, 1, 3, 1, 3, 1]
    # 12 tasks over 2 stages: 9 parallel tasks, 5 in the first stage and 4 in the second.
    by_size = fork_join(12, rng(), stages=2)
    assert (by_size.n_tasks, by_size.n_edges) == (12, 2 * (12 - 1 - 2))
    assert np.bincount(by_size.levels).tolist() == [1, 5, 1, 4, 1]
    diamond = fork_join(4, rng())
    assert diamond.n_edges == 4 and diamond.levels.tolist() == [0, 1, 1, 2]
    assert diamond.family == "fork_join"


def test_shape_work_and_size_ranges() -> None:
    wf = chain(2000, rng(1), work=(2.0, 5.0), data=(10.0, 20.0), cores=(1, 4), memory=(1e3, 2e3))
    assert wf.work.min() >= 2.0 and wf.work.max() <= 5.0
    assert wf.edge_bytes.min() >= 10.0 and wf.edge_bytes.max() <= 20.0
    assert set(wf.cores.tolist()) == {1, 2, 3, 4}  # inclusive integer range
    assert wf.memory.min() >= 1e3 and wf.memory.max() <= 2e3
    constant = fan_in(5, rng(), work=3.0, data=0.0)
    assert constant.work.tolist() == [3.0] * 5 and constant.edge_bytes.tolist() == [0.0] * 4


def test_lognormal_work_has_the_range_as_central_90_percent() -> None:
    wf = fan_out(40000, rng(2), work=(1.0, 100.0), work_dist="lognormal")
    lo, hi = np.quantile(wf.work, [0.05, 0.95])
    assert lo == pytest.approx(1.0, rel=0.05) and hi == pytest.approx(100.0, rel=0.05)


@pytest.mark.parametrize("ccr", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("name", ["chain", "fan_in", "fan_out", "fork_join", "layered"])
def test_ccr_is_exact_on_the_reference_network(name: str, ccr: float) -> None:
    wf = GENERATORS[name](40, rng(3), ccr=ccr, work=(1.0, 50.0))
    assert Problem(wf, REFERENCE).ccr() == pytest.approx(ccr, rel=1e-9)


@pytest.mark.parametrize("ccr", [0.05, 3.0])
def test_ccr_is_exact_for_application_generators(ccr: float) -> None:
    for wf in (cybershake(60, rng(4), ccr=ccr), genomics49(rng(4), ccr=ccr)):
        assert Problem(wf, REFERENCE).ccr() == pytest.approx(ccr, rel=1e-9)


def test_ccr_below_latency_is_rejected() -> None:
    # Mean work 1 s: latency alone (1e-4 s) gives a CCR of 1e-4.
    with pytest.raises(WorkloadError, match=r"ccr: ccr 1e-06 is unreachable.*0\.0001"):
        chain(5, rng(), work=1.0, ccr=1e-6)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: chain(0, rng()), "n_tasks: must be an integer >= 1, got 0"),
        (lambda: fan_in(1, rng()), "n_tasks: must be an integer >= 2, got 1"),
        (lambda: chain(3, rng(), work=(5, 1)), "work: lo must be <= hi, got (5, 1)"),
        (
            lambda: chain(3, rng(), cores=(1, 2.5)),
            "cores: values must be a whole number in [1, 2147483647], got 2.5",
        ),
        (lambda: chain(3, rng(), data=-1.0), "data: values must be finite and >= 0.0, got -1.0"),
        (lambda: chain(3, rng(), work_dist="gamma"), "work_dist: must be 'uniform' or"),
        (lambda: layered(9, rng(), density=1.5), "density: must be a number in [0, 1], got 1.5"),
        (lambda: fork_join(9, rng(), width=3), "give exactly one of n_tasks and width"),
        (lambda: fork_join(4, rng(), stages=2), "n_tasks: must be an integer >= 5, got 4"),
        (lambda: cybershake(6, rng()), "n_tasks: CyberShake has 2 + E + 2*S tasks"),
    ],
)
def test_bad_generator_arguments(call, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkloadError) as excinfo:
        call()
    assert expected in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# layered


def _layer(task_id: str) -> int:
    return int(task_id.split("_")[0][1:])


@pytest.mark.parametrize(("n", "width", "density", "jump"), [(60, 5, 0.3, 2), (200, 8, 0.1, 3)])
def test_layered_structure(n: int, width: int, density: float, jump: int) -> None:
    wf = layered(n, rng(5), width=width, density=density, jump=jump)
    assert wf.n_tasks == n and len(wf.topo_order) == n  # a DAG: the Workflow found a topo order
    layer = np.array([_layer(t) for t in wf.ids])
    assert layer.max() + 1 == round(n / width)
    # Depth == layer means every non-entry task has a parent in the layer just before and none
    # in its own or a later layer.
    assert np.array_equal(wf.levels, layer)
    assert np.array_equal(wf.entry_tasks, np.flatnonzero(layer == 0))
    # No edge reaches back more than `jump` layers.
    assert (layer[wf.edge_dst] - layer[wf.edge_src]).max() <= jump
    assert (layer[wf.edge_dst] - layer[wf.edge_src]).min() >= 1


def test_layered_density_extremes() -> None:
    sparse = layered(50, rng(6), width=5, density=0.0)
    layer = np.array([_layer(t) for t in sparse.ids])
    # Exactly one parent per non-entry task.
    assert sparse.n_edges == int((layer > 0).sum())
    assert set(in_degree(sparse)[layer > 0].tolist()) == {1}
    dense = layered(50, rng(6), width=5, density=1.0, jump=1)
    layer = np.array([_layer(t) for t in dense.ids])
    sizes = np.bincount(layer)
    # Complete bipartite graphs between consecutive layers.
    assert dense.n_edges == int((sizes[1:] * sizes[:-1]).sum())


def test_layered_is_seeded() -> None:
    a = layered(80, rng(7), width=6, density=0.3)
    b = layered(80, rng(7), width=6, density=0.3)
    c = layered(80, rng(8), width=6, density=0.3)
    assert a == b
    assert a != c
    assert layered(1, rng()).n_edges == 0


# ---------------------------------------------------------------------------------------------
# CyberShake and the 49-task genomics pipeline


def _cybershake_structure(wf) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Check the CyberShake wiring; return (ExtractSGT count, SeismogramSynthesis count)."""
    t = np.asarray(wf.task_type)
    counts = collections.Counter(wf.task_type)
    e, s = counts["ExtractSGT"], counts["SeismogramSynthesis"]
    assert counts["PeakValCalcOkaya"] == s and counts["ZipSeis"] == counts["ZipPSA"] == 1
    assert wf.n_tasks == 2 + e + 2 * s and wf.n_edges == 4 * s
    for i in range(wf.n_tasks):
        parents = sorted(t[wf.parents(i)].tolist())
        expected = {
            "ExtractSGT": [],
            "SeismogramSynthesis": ["ExtractSGT"],
            "PeakValCalcOkaya": ["SeismogramSynthesis"],
            "ZipSeis": ["SeismogramSynthesis"] * s,
            "ZipPSA": ["PeakValCalcOkaya"] * s,
        }[t[i]]
        assert parents == expected
    return e, s


def test_cybershake_every_size() -> None:
    for n in [5, *range(7, 160)]:
        wf = cybershake(n, rng(n))
        assert wf.n_tasks == n
        e, s = _cybershake_structure(wf)
        assert 1 <= e <= s
    # The Pegasus generator's CyberShake_100.xml has 8 ExtractSGT and 45 synthesis jobs.
    assert _cybershake_structure(cybershake(100, rng())) == (8, 45)


@needs_data
@pytest.mark.parametrize("n", [30, 50])
def test_cybershake_matches_the_dax_structure(n: int) -> None:
    dax = load_dax(DATA / f"dax/CyberShake_{n}.xml")
    wf = cybershake(n, rng(9))
    assert collections.Counter(wf.task_type) == collections.Counter(dax.task_type)
    assert wf.n_edges == dax.n_edges
    assert np.bincount(wf.levels).tolist() == np.bincount(dax.levels).tolist()


@needs_data
def test_cybershake_reproduces_the_dax_statistics() -> None:
    daxes = [load_dax(DATA / f"dax/CyberShake_{n}.xml") for n in (30, 50)]
    wf = cybershake(3000, rng(10))

    def runtimes(w, kind):  # type: ignore[no-untyped-def]
        return w.work[np.asarray(w.task_type) == kind]

    def sgt_edges(w):  # type: ignore[no-untyped-def]
        return w.edge_bytes[np.asarray(w.task_type)[w.edge_dst] == "SeismogramSynthesis"]

    for kind in ("ExtractSGT", "SeismogramSynthesis", "PeakValCalcOkaya"):
        ref = np.concatenate([runtimes(d, kind) for d in daxes])
        assert runtimes(wf, kind).mean() == pytest.approx(ref.mean(), rel=0.1), kind
    ref = np.concatenate([sgt_edges(d) for d in daxes])
    assert sgt_edges(wf).mean() == pytest.approx(ref.mean(), rel=0.1)
    # Per-rupture fan-out: mean synthesis jobs per ExtractSGT as in the DAX files (35 / 6).
    counts = collections.Counter(wf.task_type)
    assert counts["SeismogramSynthesis"] / counts["ExtractSGT"] == pytest.approx(35 / 6, rel=0.1)


def test_genomics49_structure() -> None:
    wf = genomics49(rng(11))
    assert (wf.n_tasks, wf.n_edges) == (49, 55)
    assert collections.Counter(wf.task_type) == {
        "fastqSplit": 3,
        "filterContams": 10,
        "sol2sanger": 10,
        "fast2bfq": 10,
        "map": 10,
        "mapMerge": 4,
        "maqIndex": 1,
        "pileup": 1,
    }
    assert np.bincount(wf.levels).tolist() == [3, 10, 10, 10, 10, 3, 1, 1, 1]
    assert [wf.task_type[i] for i in wf.entry_tasks] == ["fastqSplit"] * 3
    assert [wf.task_type[i] for i in wf.exit_tasks] == ["pileup"]
    # A split reads its lane's chunks from storage, and sends each chunk to its filter task.
    for split in wf.entry_tasks:
        out = wf.edge_bytes[wf.edge_src == split]
        assert wf.input_bytes[split] == pytest.approx(out.sum(), rel=1e-12)
    assert sorted(len(wf.children(s)) for s in wf.entry_tasks) == [3, 3, 4]
    maps = np.asarray(wf.task_type) == "map"
    assert np.all(wf.input_bytes[maps] == 4.723e7)  # the chr21 reference
    assert wf == genomics49(rng(11)) and wf != genomics49(rng(12))


# ---------------------------------------------------------------------------------------------
# recipes


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_size_and_determinism(name: str) -> None:
    n = max(100, recipe_min_tasks(name))
    a = recipe_workflow(name, n, 123)
    # WfChef adds whole sub-structures and never exceeds the request (tolerance documented in
    # wass_env.workloads.recipes: RECIPE_SHORTFALL).
    assert n - RECIPE_SHORTFALL[name] <= a.n_tasks <= n
    assert a.family == name
    assert a == recipe_workflow(name, n, 123)
    assert a != recipe_workflow(name, n, 124)
    # Every non-entry task has at least one parent.
    assert a.total_work > 0 and a.n_edges >= a.n_tasks - len(a.entry_tasks)


def test_recipe_leaves_global_random_state_alone() -> None:
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    expected = (random.random(), np.random.random())  # noqa: NPY002
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    recipe_workflow("srasearch", 30, np.random.default_rng(0))
    assert (random.random(), np.random.random()) == expected  # noqa: NPY002


def test_recipe_errors() -> None:
    with pytest.raises(WorkloadError, match=r"n_tasks: recipe 'seismology' needs at least 101"):
        recipe_workflow("seismology", 50, 0)
    with pytest.raises(WorkloadError, match=r"unknown recipe 'montag'; valid recipes: 1000genome"):
        recipe_workflow("montag", 100, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_1000_tasks(name: str) -> None:
    wf = recipe_workflow(name, 1000, 5)
    assert 1000 - RECIPE_SHORTFALL[name] <= wf.n_tasks <= 1000


# ---------------------------------------------------------------------------------------------
# samplers


def test_sampler_ranges_are_drawn_per_episode() -> None:
    s = make_sampler({"generator": "layered", "n_tasks": [20, 60], "width": [2, 8], "ccr": 1.0})
    r = rng(12)
    sizes, depths = [], []
    for _ in range(300):
        wf = s.sample(r)
        sizes.append(wf.n_tasks)
        depths.append(int(wf.levels.max()) + 1)
        assert round(wf.n_tasks / 8) <= depths[-1] <= round(wf.n_tasks / 2)
        # Without a cluster the generator's reference-network CCR applies.
        assert Problem(wf, REFERENCE).ccr() == pytest.approx(1.0, rel=1e-9)
    assert min(sizes) == 20 and max(sizes) == 60  # integer range, inclusive
    assert len(set(sizes)) > 20


def test_sampler_float_range() -> None:
    s = make_sampler({"generator": "chain", "n_tasks": 10, "ccr": [0.5, 2.0]})
    ccrs = [Problem(s.sample(r), REFERENCE).ccr() for r in [rng(i) for i in range(50)]]
    assert min(ccrs) >= 0.5 and max(ccrs) <= 2.0 and len({round(c, 9) for c in ccrs}) == 50


@pytest.mark.parametrize(
    "spec",
    [
        {"generator": "fork_join", "n_tasks": [9, 30], "stages": [1, 4], "ccr": 0.7},
        {"recipe": "srasearch", "n_tasks": 30, "pool": 3, "ccr": 0.7},
        {"mix": ["chain", {"generator": "cybershake", "n_tasks": 40}], "ccr": 0.7},
    ],
)
def test_sampler_ccr_is_exact_on_the_given_cluster(spec: dict) -> None:
    s = make_sampler(spec)
    r = rng(13)
    for cluster in (make_cluster("heterogeneous", 16), make_cluster("homogeneous", 4)):
        for _ in range(5):
            wf = s.sample(r, cluster)
            assert Problem(wf, cluster).ccr() == pytest.approx(0.7, rel=1e-9)


def test_sampler_is_seeded_and_picklable() -> None:
    spec = {
        "mix": [
            {"generator": "layered", "n_tasks": [10, 40], "density": [0.1, 0.5]},
            {"recipe": "srasearch", "n_tasks": [25, 40], "pool": 4},
            "genomics49",
        ],
        "weights": [2, 1, 1],
    }
    cluster = make_cluster("heterogeneous", 8)
    r1, r2 = rng(14), rng(14)
    s1, s2 = make_sampler(spec), make_sampler(spec)
    first = [s1.sample(r1, cluster) for _ in range(12)]
    assert first == [s2.sample(r2, cluster) for _ in range(12)]
    assert len({w.family for w in first}) == 3
    # A pickled copy (as sent to a subprocess env) continues identically.
    s3 = pickle.loads(pickle.dumps(s1))
    assert [s1.sample(rng(15)) for _ in range(5)] == [s3.sample(rng(15)) for _ in range(5)]
    s4, r4 = make_sampler(spec), rng(16)
    assert first != [s4.sample(r4, cluster) for _ in range(12)]


def test_recipe_pool_is_cached_and_bounded() -> None:
    s = make_sampler({"recipe": "srasearch", "n_tasks": [22, 40], "pool": 2})
    r = rng(17)
    drawn = [s.sample(r) for _ in range(20)]
    assert len({id(w) for w in drawn}) == 2  # two instances, each generated once and reused
    assert all(22 <= w.n_tasks <= 40 for w in drawn)
    # With "seed", independent samplers (e.g. one per subprocess env) share the pool.
    spec = {"recipe": "srasearch", "n_tasks": 30, "pool": 3, "seed": 5}
    pool_a = {w.name for w in (make_sampler(spec).sample(rng(i)) for i in range(30))}
    pool_b = {w.name for w in (make_sampler(spec).sample(rng(100 + i)) for i in range(30))}
    assert len(pool_a) == 3 and pool_a == pool_b


@needs_data
def test_files_spec_globs_relative_to_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    s = make_sampler({"files": ["dax/Montage_*.xml", "wfinstances/blast-*.json"]})
    r = rng(18)
    drawn = [s.sample(r) for _ in range(60)]
    assert {w.name for w in drawn} == {"Montage_25", "Montage_50", "blast-chameleon-small-001"}
    # Loaded once: the same objects come back.
    assert len({id(w) for w in drawn}) == 3
    # A plain path works as a string shorthand too.
    one = make_sampler("dax/HEFT_paper.xml").sample(r)
    assert one.n_tasks == 10 and one.family == "heft"


def test_workflows_and_shorthands() -> None:
    a, b = chain(3, rng()), fan_in(4, rng())
    assert make_sampler(a).sample(rng()) is a
    drawn = {id(make_sampler([a, b]).sample(rng(i))) for i in range(20)}
    assert drawn == {id(a), id(b)}
    wf = make_sampler("chain").sample(rng(19))
    assert wf.family == "chain" and 20 <= wf.n_tasks <= 100
    assert make_sampler("genomics49").sample(rng()).n_tasks == 49
    assert make_sampler("SRASearch").sample(rng()).family == "srasearch"
    only_first = make_sampler({"mix": ["chain", "fan_in"], "weights": [1, 0]})
    assert {only_first.sample(rng(i)).family for i in range(20)} == {"chain"}
    sampler = make_sampler("chain")
    assert make_sampler(sampler) is sampler and isinstance(sampler, WorkloadSampler)


def test_loguniform_ccr_covers_every_decade_equally() -> None:
    # log10 of a log-uniform draw in [0.05, 10] is uniform on [log10 0.05, 1]: each of the
    # decade-wide bins [0.05, 0.5) and [0.5, 5) gets 1/log10(200) = 43.5% of the draws.
    cluster = make_cluster("heterogeneous", 4)
    s = make_sampler({"generator": "chain", "n_tasks": 6, "ccr": {"loguniform": [0.05, 10.0]}})
    r = rng(30)
    ccrs = np.array([Problem(s.sample(r, cluster), cluster).ccr() for _ in range(2000)])
    assert ccrs.min() >= 0.05 - 1e-9 and ccrs.max() <= 10.0 + 1e-9
    share = 1 / np.log10(200)
    for lo in (0.05, 0.5):
        assert abs(np.mean((ccrs >= lo) & (ccrs < 10 * lo)) - share) < 0.035


def test_mix_by_label_and_leave_one_out() -> None:
    spec = {"mix": {"c": "chain", "fi": "fan_in", "fo": "fan_out"}, "weights": {"c": 2}}
    full = make_sampler(spec)
    assert full.labels == ["c", "fi", "fo"]
    counts = collections.Counter(full.sample(rng(i)).family for i in range(400))
    assert set(counts) == {"chain", "fan_in", "fan_out"}
    assert counts["chain"] > 1.5 * counts["fan_in"]  # weight 2 against 1 (expected 200 / 100)
    held_out = make_sampler({**spec, "exclude": "fi"})
    assert held_out.labels == ["c", "fo"]
    assert {held_out.sample(rng(i)).family for i in range(100)} == {"chain", "fan_out"}
    listed = make_sampler({"mix": spec["mix"], "weights": [1, 0, 1], "exclude": ["c"]})
    assert {listed.sample(rng(i)).family for i in range(50)} == {"fan_out"}


def test_the_training_mix_covers_every_family() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    spec = omegaconf.OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/workload/mix.yaml")
    sampler = make_sampler(spec)
    generated = ["layered", "fork_join", "fan_in", "fan_out", "cybershake", "genomics49"]
    assert sampler.labels is not None and sampler.labels[:6] == generated
    assert sorted(sampler.labels[6:]) == sorted(RECIPES)
    plain = omegaconf.OmegaConf.to_container(spec)
    held_out = make_sampler({**plain, "exclude": "montage"}).labels
    assert held_out is not None and "montage" not in held_out and len(held_out) == 14
    cluster = make_cluster("heterogeneous", 8)
    r = rng(31)
    drawn = [sampler.sample(r, cluster) for _ in range(40)]
    assert all(20 <= w.n_tasks <= 200 for w in drawn)
    assert len({w.family for w in drawn}) >= 10


def test_reset_forgets_the_recipe_pools() -> None:
    s = make_sampler({"recipe": "srasearch", "n_tasks": [22, 40], "pool": 2})
    first = s.sample(rng(40))
    s.sample(rng(41))
    s.reset()
    assert s.sample(rng(40)) == first  # after a reset, a draw depends on its generator only
    fixed = make_sampler({"recipe": "srasearch", "n_tasks": 30, "pool": 2, "seed": 3})
    pool = {fixed.sample(rng(i)).name for i in range(20)}
    fixed.reset()
    assert {fixed.sample(rng(50 + i)).name for i in range(20)} == pool  # a fixed pool stays


def test_sampler_accepts_omegaconf_containers() -> None:
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create({"generator": "layered", "n_tasks": [20, 40], "width": 4})
    wf = make_sampler(cfg).sample(rng(20))
    assert 20 <= wf.n_tasks <= 40 and wf.family == "layered"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"generator": "layered", "widht": 3},
            "workload.widht: unknown key 'widht'; valid keys: ccr, cores, data, density, "
            "generator, jump, memory, n_tasks, name, width, work, work_dist",
        ),
        (
            {"generator": "layerd"},
            "workload.generator: unknown generator 'layerd'; valid generators: chain, cybershake",
        ),
        ({"recipe": "montage", "pool": 0}, "workload.pool: must be an integer >= 1, got 0"),
        (
            {"recipe": "montage", "n_tasks": [10, 200]},
            "workload.n_tasks: recipe 'montage' needs at least 58 tasks, got [10, 200]",
        ),
        (
            {"mix": ["chain", {"generator": "chain", "n_tasks": [9, 3]}]},
            "workload.mix[1].n_tasks: range needs lo <= hi, got [9, 3]",
        ),
        (
            {"mix": ["chain", {"generator": "layered", "density": [0, 2]}]},
            "workload.mix[1].density: must be a number in [0, 1], got 2.0",
        ),
        ({"generator": "chain", "n_tasks": [2.5, 9]}, "workload.n_tasks: an integer range"),
        ({"generator": "chain", "ccr": -1}, "workload.ccr: must be a number >= 0"),
        ({"files": "no/such/*.json"}, "workload.files: no file matches 'no/such/*.json'"),
        ({"files": ["no_such.json"]}, "workload.files[0]: no such file: 'no_such.json'"),
        ({"mix": ["chain"], "weights": [-1]}, "workload.weights: expected one number >= 0"),
        ({"n_tasks": 3}, "workload: a workload spec needs exactly one of 'generator'"),
        (
            {"mix": {"a": "chain", "b": "fan_in"}, "exclude": ["c"]},
            "workload.exclude: unknown label 'c'; labels: a, b",
        ),
        (
            {"mix": {"a": "chain"}, "exclude": "a"},
            "workload.exclude: excludes every entry of the mix (a)",
        ),
        ({"mix": ["chain"], "exclude": ["x"]}, "workload.exclude: exclude needs a mix by label"),
        (
            {"mix": {"a": "chain"}, "weights": {"z": 1}},
            "workload.weights.z: unknown label 'z'; labels: a",
        ),
        (
            {"generator": "chain", "ccr": {"loguniform": [0, 10]}},
            "workload.ccr: loguniform needs [lo, hi] with 0 < lo <= hi, got [0, 10]",
        ),
        (
            {"generator": "chain", "n_tasks": {"loguniform": [5, 10]}},
            "workload.n_tasks: expected a number, a range [lo, hi] or {loguniform: [lo, hi]} "
            "(integer parameters take no loguniform)",
        ),
        (["chain", 7], "workload[1]: expected a dict, a list, a name, a path or a Workflow"),
    ],
)
def test_sampler_errors_name_the_key_and_value(spec: object, expected: str) -> None:
    with pytest.raises(WorkloadError) as excinfo:
        make_sampler(spec)
    assert expected in str(excinfo.value)


def test_sampler_rejects_a_size_range_with_a_gap_up_front():
    # CyberShake cannot build 6 tasks; a range starting at 5 would fail on its sixth draw.
    with pytest.raises(WorkloadError, match="got 6"):
        make_sampler({"generator": "cybershake", "n_tasks": [5, 8]})
