"""Knowledge base and retrieval: cosine ranking, FAISS vs NumPy, files, appending."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from teacher.build import PROFILES, BuildConfig, build_knowledge_base, instance_id
from teacher.kb import FORMAT_VERSION, KIND, KnowledgeBase, KnowledgeBaseError
from teacher.retrieval import FaissRetriever, NumpyRetriever, make_retriever, normalize
from teacher.storage import read_arrays, write_arrays

RETRIEVERS = ["numpy", "flat", "hnsw", "ivf"]


def _retriever(kind: str, dim: int, data: np.ndarray):
    r = make_retriever(dim, kind, nlist=4, nprobe=4) if kind == "ivf" else make_retriever(dim, kind)
    r.add(data)
    return r


# ---------------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize("kind", ["numpy", "flat"])
def test_cosine_ranking_matches_hand_computation(kind: str) -> None:
    # Query (2, 1): cos with (1,1) = 3/sqrt(10) = 0.9487, (1,0) = 2/sqrt(5) = 0.8944,
    # (0,3) = 1/sqrt(5) = 0.4472 (length does not matter), (-1,0) = -0.8944.
    base = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0], [-1.0, 0.0]])
    r = _retriever(kind, 2, base)
    sims, ids = r.search([[2.0, 1.0]], 4)
    assert ids.tolist() == [[2, 0, 1, 3]]
    np.testing.assert_allclose(
        sims[0], [3 / np.sqrt(10), 2 / np.sqrt(5), 1 / np.sqrt(5), -2 / np.sqrt(5)], atol=1e-6
    )


@pytest.mark.parametrize("kind", RETRIEVERS)
def test_planted_neighbours_are_found(kind: str) -> None:
    rng = np.random.default_rng(0)
    dim = 16
    base = normalize(rng.standard_normal((2000, dim)))
    query = normalize(rng.standard_normal((1, dim)))[0]
    planted = [17, 512, 1999]
    # Plant three vectors at decreasing angles to the query, closer than any random vector.
    for j, idx in enumerate(planted):
        noise = normalize(rng.standard_normal((1, dim)))[0]
        base[idx] = normalize(query + 0.05 * (j + 1) * noise)[0]
    r = _retriever(kind, dim, base)
    sims, ids = r.search(query[None, :], 3)
    assert ids[0].tolist() == planted
    assert sims[0][0] > sims[0][1] > sims[0][2] > 0.95


@pytest.mark.parametrize("kind", RETRIEVERS)
def test_empty_base_and_k_larger_than_base(kind: str) -> None:
    r = make_retriever(3, kind)
    sims, ids = r.search([[1.0, 0.0, 0.0]], 5)
    assert sims.shape == (1, 0) and ids.shape == (1, 0)
    r.add(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    sims, ids = r.search([[1.0, 0.2, 0.0], [0.0, 1.0, 0.1]], 5)
    assert ids.tolist() == [[0, 1], [1, 0]]
    assert sims.shape == (2, 2)


def test_numpy_ties_go_to_the_lower_id() -> None:
    r = NumpyRetriever(2)
    r.add(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    _, ids = r.search([[1.0, 0.0]], 2)
    assert ids.tolist() == [[1, 2]]


def test_faiss_flat_agrees_with_numpy() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((3000, 24))
    queries = rng.standard_normal((50, 24))
    s_np, i_np = _retriever("numpy", 24, base).search(queries, 10)
    s_fa, i_fa = _retriever("flat", 24, base).search(queries, 10)
    np.testing.assert_array_equal(i_fa, i_np)
    np.testing.assert_allclose(s_fa, s_np, atol=1e-5)


def test_hnsw_recall_against_exact() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((5000, 16))
    queries = rng.standard_normal((100, 16))
    _, exact = _retriever("numpy", 16, base).search(queries, 5)
    _, approx = _retriever("hnsw", 16, base).search(queries, 5)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("kind", RETRIEVERS)
def test_retrievers_implement_the_protocol(kind: str) -> None:
    from teacher.retrieval import Retriever

    assert isinstance(make_retriever(4, kind), Retriever)


def test_retriever_rejects_wrong_dimension() -> None:
    r = NumpyRetriever(4)
    with pytest.raises(ValueError, match="dimension 3"):
        r.add(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dimension 5"):
        r.search(np.ones((1, 5)), 1)


def test_faiss_retriever_pickles() -> None:
    import pickle

    rng = np.random.default_rng(3)
    base = rng.standard_normal((500, 8))
    r = _retriever("hnsw", 8, base)
    r2 = pickle.loads(pickle.dumps(r))
    q = rng.standard_normal((5, 8))
    np.testing.assert_array_equal(r.search(q, 3)[1], r2.search(q, 3)[1])
    assert isinstance(r2, FaissRetriever) and len(r2) == 500


# ---------------------------------------------------------------------------------- the base


@pytest.fixture(scope="module")
def tiny_kb() -> KnowledgeBase:
    return build_knowledge_base(PROFILES["tiny"])


def test_build_records_every_decision(tiny_kb: KnowledgeBase) -> None:
    kb = tiny_kb
    cfg = PROFILES["tiny"]
    assert kb.n_episodes == cfg.instances * cfg.policies_per_instance
    branch = kb.column("rec_branch")
    # Every main run has exactly one record per task, with steps 0..n-1 in order.
    n_tasks = kb.column("ep_n_tasks")
    main_ep = kb.column("rec_episode")[~branch]
    assert np.array_equal(np.bincount(main_ep, minlength=kb.n_episodes), n_tasks)
    # The main records' target is the episode's makespan over its lower bound.
    ratio = kb.column("ep_makespan") / kb.column("ep_lower_bound")
    np.testing.assert_allclose(kb.targets[~branch], ratio[main_ep], rtol=1e-6)
    assert (kb.targets >= 1.0 - 1e-6).all()  # no run beats the lower bound
    # A branch record tries another node than its decision's main record.
    for r in np.flatnonzero(branch)[:20]:
        ep, step = kb.column("rec_episode")[r], kb.column("rec_step")[r]
        m = np.flatnonzero(
            (kb.column("rec_episode") == ep) & (kb.column("rec_step") == step) & ~branch
        )
        assert m.size == 1 and kb.column("rec_action")[m[0]] != kb.column("rec_action")[r]
    assert branch.any()


def test_build_is_seeded_and_independent_of_workers() -> None:
    cfg = BuildConfig(
        workload={"generator": "layered", "n_tasks": [6, 12], "ccr": 0.5},
        policies=("heft~0.3", "random"),
        policies_per_instance=1,
        instances=4,
        branch_prob=0.2,
        seed=5,
    )
    a = build_knowledge_base(cfg)
    b = build_knowledge_base(cfg)
    for name in ("rec_action", "rec_target", "rec_state", "keys"):
        np.testing.assert_array_equal(a.column(name), b.column(name))
    c = build_knowledge_base(BuildConfig(**{**cfg.__dict__, "seed": 6}))
    assert not np.array_equal(a.column("rec_target"), c.column("rec_target"))
    d = build_knowledge_base(BuildConfig(**{**cfg.__dict__, "workers": 2}))
    for name in ("rec_action", "rec_target", "rec_state", "keys", "task_features"):
        np.testing.assert_array_equal(a.column(name), d.column(name))
    assert a.episode_strings("instance") == d.episode_strings("instance")


def test_instance_id_ignores_edge_sizes() -> None:
    from wass_env.sim import Workflow

    w = Workflow.from_arrays([1.0, 2.0, 3.0], [(0, 1), (1, 2)], [10.0, 20.0], family="chain")
    assert instance_id(w) == instance_id(w.replace(edge_bytes=[5.0, 7.0]))
    assert instance_id(w) != instance_id(w.replace(work=[1.0, 2.0, 4.0]))
    assert instance_id(w).startswith("chain:")


def test_record_info_names_the_run(tiny_kb: KnowledgeBase) -> None:
    info = tiny_kb.record_info(0)
    assert info["family"] == "layered"
    assert info["cluster"] == "het16"
    assert info["policy"] in PROFILES["tiny"].policies
    assert info["step"] == 0 and not info["branch"]
    with pytest.raises(IndexError):
        tiny_kb.record_info(len(tiny_kb))


def test_save_load_round_trip(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    path = tmp_path / "kb.wkb"
    tiny_kb.save(path)
    kb = KnowledgeBase.load(path)
    assert (kb.n_records, kb.n_episodes, kb.key_model) == (
        tiny_kb.n_records,
        tiny_kb.n_episodes,
        tiny_kb.key_model,
    )
    for name in (
        "rec_state",
        "rec_action_features",
        "rec_target",
        "keys",
        "task_features",
        "edge_src",
    ):
        np.testing.assert_array_equal(kb.column(name), tiny_kb.column(name))
    assert kb.episode_strings("policy") == tiny_kb.episode_strings("policy")
    q = tiny_kb.keys[[3, 40]]
    np.testing.assert_array_equal(kb.search(q, 4)[1], tiny_kb.search(q, 4)[1])
    # A record's key is its own nearest neighbour (or ties with an identical key).
    np.testing.assert_allclose(kb.search(q, 1)[0][:, 0], 1.0, atol=1e-5)


def test_approximate_index_is_saved_with_the_base(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(_saved(tiny_kb, tmp_path))
    kb.index("hnsw", ef_search=40)
    kb.save(tmp_path / "h.wkb")
    arrays, meta = read_arrays(tmp_path / "h.wkb", kind=KIND, version=FORMAT_VERSION)
    assert "index_hnsw_neighbors" in arrays and meta["index"]["kind"] == "hnsw"
    assert not any("blob" in name for name in arrays)  # no FAISS serialisation in the file
    back = KnowledgeBase.load(tmp_path / "h.wkb")
    idx = back.index()
    assert isinstance(idx, FaissRetriever) and idx.kind == "hnsw" and len(idx) == len(kb)
    assert idx.params["ef_search"] == 40
    # The graph read back is the graph saved: the same FAISS index, byte for byte.
    assert idx.to_bytes() == kb.index().to_bytes()


def _saved(kb: KnowledgeBase, tmp_path: Path, name: str = "kb.wkb") -> Path:
    path = tmp_path / name
    kb.save(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupted_file_is_refused(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    path = _saved(tiny_kb, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one payload byte
    path.write_bytes(bytes(data))
    before = _digest(path)
    with pytest.raises(KnowledgeBaseError, match=r"kb\.wkb.*checksum"):
        KnowledgeBase.load(path)
    assert _digest(path) == before


def test_truncated_file_is_refused(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    path = _saved(tiny_kb, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(KnowledgeBaseError, match=r"kb\.wkb.*truncated"):
        KnowledgeBase.load(path)
    path.write_bytes(data[:20])
    with pytest.raises(KnowledgeBaseError, match="truncated"):
        KnowledgeBase.load(path)


def test_version_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.wkb"
    write_arrays(path, {"x": np.zeros(3)}, kind=KIND, version=FORMAT_VERSION + 1)
    with pytest.raises(
        KnowledgeBaseError,
        match=rf"old\.wkb.*version {FORMAT_VERSION + 1}.*reads version {FORMAT_VERSION}",
    ):
        KnowledgeBase.load(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not a knowledge base")
    with pytest.raises(KnowledgeBaseError, match="not a wass-knowledge-base file"):
        KnowledgeBase.load(p)
    with pytest.raises(KnowledgeBaseError, match="no such file"):
        KnowledgeBase.load(tmp_path / "missing.wkb")
    other = tmp_path / "model.bin"
    write_arrays(other, {"w": np.ones(2)}, kind="wass-teacher-model", version=1)
    with pytest.raises(KnowledgeBaseError, match="holds a 'wass-teacher-model'"):
        KnowledgeBase.load(other)


def test_header_corruption_is_refused(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    path = _saved(tiny_kb, tmp_path)
    data = bytearray(path.read_bytes())
    (hlen,) = struct.unpack_from("<Q", data, 8)
    header = data[16 : 16 + hlen].decode()
    i = header.index('"n_records":') + len('"n_records":')
    data[16 + i] = ord("9") if chr(data[16 + i]) != "9" else ord("8")  # a valid but wrong count
    path.write_bytes(bytes(data))
    with pytest.raises(KnowledgeBaseError, match=r"kb\.wkb.*checksum"):
        KnowledgeBase.load(path)
    data[16:18] = b"]]"  # not JSON any more
    path.write_bytes(bytes(data))
    with pytest.raises(KnowledgeBaseError, match=r"kb\.wkb.*corrupted header"):
        KnowledgeBase.load(path)


def test_failed_save_leaves_the_old_file(
    tiny_kb: KnowledgeBase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _saved(tiny_kb, tmp_path)
    before = _digest(path)

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        tiny_kb.save(path)
    monkeypatch.undo()
    assert _digest(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["kb.wkb"]  # no temporary file left


def test_append_adds_records_and_keeps_old_ones(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    path = _saved(tiny_kb, tmp_path)
    extra = build_knowledge_base(
        BuildConfig(**{**PROFILES["tiny"].__dict__, "instances": 3, "seed": 9})
    )
    merged = KnowledgeBase.append_file(path, extra)
    back = KnowledgeBase.load(path)
    assert back.n_records == tiny_kb.n_records + extra.n_records == merged.n_records
    assert back.n_episodes == tiny_kb.n_episodes + extra.n_episodes
    n0 = tiny_kb.n_records
    np.testing.assert_array_equal(back.keys[:n0], tiny_kb.keys)
    np.testing.assert_array_equal(back.keys[n0:], extra.keys)
    # Episode ids of the appended records were shifted past the old ones.
    assert back.column("rec_episode")[n0:].min() == tiny_kb.n_episodes
    assert back.record_info(n0)["policy"] == extra.record_info(0)["policy"]
    # An appended record is retrievable.
    assert back.search(extra.keys[:1], 1)[0][0, 0] == pytest.approx(1.0, abs=1e-5)


def test_append_extends_a_stored_hnsw_index(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(_saved(tiny_kb, tmp_path))
    kb.index("hnsw")
    kb.save(tmp_path / "h.wkb")
    extra = build_knowledge_base(
        BuildConfig(**{**PROFILES["tiny"].__dict__, "instances": 2, "seed": 4})
    )
    KnowledgeBase.append_file(tmp_path / "h.wkb", extra)
    back = KnowledgeBase.load(tmp_path / "h.wkb")
    idx = back.index()
    assert isinstance(idx, FaissRetriever) and idx.kind == "hnsw"
    assert len(idx) == back.n_records


def test_append_refuses_other_keys_and_leaves_the_file(
    tiny_kb: KnowledgeBase, tmp_path: Path
) -> None:
    path = _saved(tiny_kb, tmp_path)
    before = _digest(path)
    other = KnowledgeBase(4, "encoder:0000")
    with pytest.raises(KnowledgeBaseError, match="keyed by 'descriptor'"):
        KnowledgeBase.append_file(path, other)
    assert _digest(path) == before
    # Appending to a corrupt base fails on reading and writes nothing.
    data = bytearray(path.read_bytes())
    data[-5] ^= 1
    path.write_bytes(bytes(data))
    corrupt = _digest(path)
    with pytest.raises(KnowledgeBaseError, match="checksum"):
        KnowledgeBase.append_file(path, tiny_kb)
    assert _digest(path) == corrupt


def test_asking_for_other_query_parameters_retunes_the_index(tiny_kb: KnowledgeBase) -> None:
    kb = KnowledgeBase(tiny_kb.key_dim)
    kb.extend(tiny_kb)
    first = kb.index("hnsw", ef_search=16)
    again = kb.index("hnsw", ef_search=48)
    assert again is first and first.params["ef_search"] == 48  # retuned, not rebuilt
    other = kb.index("hnsw", hnsw_m=8)
    assert other is not first and other.params["hnsw_m"] == 8
    assert isinstance(kb.index("flat"), FaissRetriever) and kb.index().kind == "flat"


def test_set_keys_reindexes(tiny_kb: KnowledgeBase, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(_saved(tiny_kb, tmp_path))
    rng = np.random.default_rng(0)
    new = rng.standard_normal((len(kb), 6)).astype(np.float32)
    kb.set_keys(new, "encoder:abc")
    assert kb.key_dim == 6 and kb.key_model == "encoder:abc"
    sims, ids = kb.search(new[[7]], 1)
    assert ids[0, 0] == 7 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(KnowledgeBaseError, match="queries must have shape"):
        kb.search(np.ones((1, 5)), 1)
    with pytest.raises(KnowledgeBaseError, match="keys for"):
        kb.set_keys(new[:3], "x")
