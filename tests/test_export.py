"""``wass export``: the ONNX graph chooses the torch policy's node (with and without the graph
network), its probabilities agree, its metadata carries the env settings, and ``policy:*.onnx``
plans without torch."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

import agents.deploy.export as export_mod
from agents.deploy.export import (
    PROB_TOLERANCE,
    ExportError,
    compare_decisions,
    export_policy,
    sample_states,
    torch_decisions,
)
from agents.deploy.onnx_policy import OnnxPolicy, OnnxPolicyError
from agents.learned import PolicyScheduler
from agents.ppo import MaskablePPOAgent, make_vec
from wass_env.commands import main as wass
from wass_env.scheduling import make_scheduler
from wass_env.sim import Problem, cluster_from_spec
from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.workloads import make_sampler

torch.set_num_threads(1)
LAYERED = {"generator": "layered", "n_tasks": [8, 14], "ccr": 1.0}
#: The two policies: the graph network (WindowGNN, index_add_) on 16 nodes, and without it on 32
#: with the main job's prior on the logits (HEFT with lookahead's score).
CASES = {
    "graph": {"workload": LAYERED, "cluster": "het16", "lookahead": True, "graph_window": 16},
    "no_graph": {"workload": LAYERED, "cluster": "het32", "lookahead": True},
}
EXTRACTOR = {"no_graph": {"prior": "lookahead_gap"}}


@pytest.fixture(scope="module", params=sorted(CASES))
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[MaskablePPOAgent, OnnxPolicy, Path, Path]:
    """An untrained node-scoring policy, saved and exported: (agent, runtime, zip, onnx)."""
    kw = CASES[request.param]
    agent = MaskablePPOAgent(
        env_kwargs=kw,
        policy="node_scoring",
        seed=0,
        features_extractor_kwargs=EXTRACTOR.get(request.param),
    )
    agent.build(make_vec(kw, 1, 0))
    d = tmp_path_factory.mktemp(request.param)
    ckpt = agent.save(d / "model.zip")
    report = export_policy(ckpt, d / "policy.onnx", verify=16)
    assert report.path == d / "policy.onnx" and report.same_node + report.ties == 16
    return agent, OnnxPolicy(report.path), ckpt, report.path


def test_onnx_chooses_the_torch_policys_node_on_1000_states(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
) -> None:
    agent, onnx_policy, _, _ = exported
    # Other states than the export checked (seed), on clusters of 2 to max_nodes nodes and six
    # workload families.
    obs, mask = sample_states(agent.env_kwargs, agent.max_nodes, 1000, seed=77)
    sizes = obs["nodes"][..., 0].sum(axis=1)  # column 0: the node is real
    assert set(sizes.tolist()) == {2, agent.max_nodes // 4, agent.max_nodes // 2, agent.max_nodes}
    action, probs = onnx_policy.decide(obs, mask)
    assert agent.model is not None
    ref_action, ref_probs = torch_decisions(agent.model.policy, obs, mask)
    assert len(set(ref_action.tolist())) >= 8  # the states ask for many different nodes
    got = compare_decisions(action, probs, ref_action, ref_probs)
    # The same node everywhere, except where torch's two best nodes are equally likely up to
    # float rounding (onnxruntime's GEMM sums in another order): a handful at most.
    assert got.other_node == 0
    assert got.same_node >= 990, got
    assert got.max_prob_diff <= PROB_TOLERANCE
    # torch_decisions is SB3's own predict (deterministic, masked).
    for i in range(0, 1000, 50):
        one = {k: v[i] for k, v in obs.items()}
        assert agent.predict(one, mask[i]) == ref_action[i]


def test_onnx_probabilities_agree_with_torch(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
) -> None:
    agent, onnx_policy, _, _ = exported
    obs, mask = sample_states(agent.env_kwargs, agent.max_nodes, 300, seed=5)
    _, probs = onnx_policy.decide(obs, mask)
    assert agent.model is not None
    _, ref = torch_decisions(agent.model.policy, obs, mask)
    np.testing.assert_allclose(probs, ref, rtol=0, atol=1e-5)
    assert (probs[~mask] == 0).all()  # exp(-1e8) underflows: infeasible nodes get exactly 0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # The batch axis is dynamic: one state at a time gives the same answers as a batch.
    for i in range(0, 300, 50):
        _, p1 = onnx_policy.decide({k: v[i : i + 1] for k, v in obs.items()}, mask[i : i + 1])
        np.testing.assert_allclose(p1[0], probs[i], rtol=0, atol=1e-6)


def _problem(seed: int, family: str, n_nodes: int) -> Problem:
    spec: dict[str, Any] = {"generator": family, "ccr": [0.1, 5.0]}
    if family != "genomics49":
        spec["n_tasks"] = [10, 30]
    cl = cluster_from_spec({"kind": "heterogeneous", "n_nodes": n_nodes})
    return Problem(make_sampler(spec).sample(np.random.default_rng(seed), cl), cl)


def test_onnx_scheduler_plans_like_the_checkpoint(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
) -> None:
    agent, onnx_policy, ckpt, path = exported
    torch_sch = make_scheduler("policy", checkpoint=str(ckpt))
    onnx_sch = make_scheduler("policy", checkpoint=str(path))
    assert isinstance(onnx_sch, PolicyScheduler) and isinstance(onnx_sch.agent, OnnxPolicy)
    assert onnx_sch.task_order == torch_sch.task_order == "rank"
    decisions = ties = 0
    for seed, family, n in [(1, "genomics49", 16), (3, "fork_join", 5)]:
        p = _problem(seed, family, n)
        # Follow the torch plan decision by decision: the ONNX scheduler's node for every task,
        # in every partial plan of it, is torch's node (or one torch rates equally likely).
        b = PlanBuilder(p, insertion=True)
        queue = ReadyQueue(b, task_priority(p, "rank"))
        while not b.done:
            t = queue.pop()
            node = torch_sch.select_node(b, t)
            mine = onnx_policy.select_node(b, t)
            if mine != node:
                probs = agent.node_probabilities(b, t)
                assert probs[node] - probs[mine] <= PROB_TOLERANCE
                ties += 1
            if decisions % 5 == 0:
                np.testing.assert_allclose(
                    onnx_policy.node_probabilities(b, t), agent.node_probabilities(b, t), atol=1e-5
                )
            b.assign(t, node)
            queue.update()
            decisions += 1
        if not ties:
            np.testing.assert_array_equal(onnx_sch.plan(p).node, b.plan().node)
    assert decisions >= 55 and ties <= 1
    # The guarded mode works on the ONNX policy too.
    p = _problem(4, "layered", 8)
    guarded = PolicyScheduler(checkpoint=str(path), guard="heft")
    assert guarded.plan(p).makespan <= make_scheduler("heft").plan(p).makespan
    with pytest.raises(OnnxPolicyError, match=f"at most {agent.max_nodes} nodes"):
        onnx_policy.plan(_problem(0, "chain", agent.max_nodes + 1))


def test_metadata_inputs_and_outputs(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
) -> None:
    agent, onnx_policy, _, path = exported
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["wass.env_kwargs"]) == json.loads(json.dumps(agent.env_kwargs))
    assert meta["wass.format"] == "wass-onnx-policy/1"
    assert meta["wass.max_nodes"] == str(agent.max_nodes) and meta["wass.source"] == "model.zip"
    graph = "graph_window" in agent.env_kwargs
    keys = ["task", "nodes", "lookahead", "context"]
    keys += ["graph_tasks", "graph_edges"] if graph else []
    assert [i.name for i in model.graph.input] == [*keys, "action_mask"]
    assert [o.name for o in model.graph.output] == ["action", "probs"]
    assert onnx_policy.env_kwargs == json.loads(json.dumps(agent.env_kwargs))
    scatter = [n for n in model.graph.node if n.op_type == "ScatterElements"]
    # The graph network's six index_add_ calls (two degrees, two directions x two rounds), each
    # summing repeated indices.
    assert len(scatter) == (6 if graph else 0)
    assert all(a.s == b"add" for n in scatter for a in n.attribute if a.name == "reduction")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:ONNX Preprocess:UserWarning")
def test_index_add_exports_as_a_sum_over_repeated_indices(tmp_path: Path) -> None:
    import onnxruntime as ort

    class Sum(torch.nn.Module):
        def forward(self, index: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
            return torch.zeros(3, 2).index_add_(0, index, src)

    index = torch.tensor([0, 0, 2, 0])
    src = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    path = tmp_path / "sum.onnx"
    with export_mod._scatter_add_index_add(17):
        torch.onnx.export(
            Sum(), (index, src), str(path), dynamo=False, opset_version=17, input_names=["i", "s"]
        )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"i": index.numpy(), "s": src.numpy()})
    assert out.tolist() == [[7.0, 70.0], [0.0, 0.0], [3.0, 30.0]]  # row 0: 1 + 2 + 4


@pytest.mark.parametrize("exported", ["graph"], indirect=True)  # only it uses index_add_
@pytest.mark.filterwarnings("ignore:.*duplicated values in 'index' field:UserWarning")
def test_an_export_that_does_not_reproduce_the_policy_is_refused(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, ckpt, _ = exported
    # torch's own TorchScript rule for index_add: ScatterElements without a reduction, so of
    # several messages to one task only one arrives.
    monkeypatch.setattr(
        export_mod, "_scatter_add_index_add", lambda opset: contextlib.nullcontext()
    )
    out = tmp_path / "wrong.onnx"
    with pytest.raises(ExportError, match="does not reproduce the policy on 64 states"):
        export_policy(ckpt, out, verify=64)
    assert not out.exists()


def test_compare_decisions_hand_computed() -> None:
    ref_probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.6, 0.4, 0.0], [0.1, 0.9, 0.0]])
    ref_action = np.array([0, 2, 0, 1])
    action = np.array([1, 2, 1, 1])  # a tie, the same, another node, the same
    probs = ref_probs + np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [2e-6, -2e-6, 0]])
    got = compare_decisions(action, probs, ref_action, ref_probs)
    assert (got.states, got.same_node, got.ties, got.other_node) == (4, 2, 1, 1)
    assert got.max_prob_diff == pytest.approx(2e-6)


@pytest.mark.parametrize("exported", ["no_graph"], indirect=True)
def test_wass_export_command_and_its_errors(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent, _, ckpt, path = exported
    out = tmp_path / "sub" / "p.onnx"
    assert wass(["export", str(ckpt), "-o", str(out), "--verify", "32"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wass export: {ckpt} -> {out} (") and "of 32 states" in line
    assert OnnxPolicy(out).max_nodes == agent.max_nodes
    (tmp_path / "not.onnx").write_bytes(b"not a model")
    plain = tmp_path / "plain.onnx"  # a valid model without the wass metadata
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(plain))
    bad = [
        (["export", str(tmp_path / "no.zip"), "-o", str(tmp_path / "a.onnx")], r"no MaskablePPO"),
        (["export", str(ckpt), "-o", str(tmp_path / "a.bin")], r"must end in \.onnx"),
        (["export", str(path), "-o", str(tmp_path / "a.onnx")], r"is already an ONNX file"),
        (["export", str(ckpt), "-o", str(tmp_path / "a.onnx"), "--opset", "13"], "below 16"),
        (["export", str(ckpt), "-o", str(tmp_path)], "is a directory"),
        (["export", str(ckpt)], "the following arguments are required: -o"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in bad:
        assert wass(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    with pytest.raises(OnnxPolicyError, match="not a readable ONNX model"):
        OnnxPolicy(tmp_path / "not.onnx")
    with pytest.raises(OnnxPolicyError, match="wass.format=None"):
        OnnxPolicy(plain)


@pytest.mark.parametrize("exported", ["graph"], indirect=True)
def test_wass_plan_with_an_onnx_policy_imports_no_torch(
    exported: tuple[MaskablePPOAgent, OnnxPolicy, Path, Path],
    tmp_path: Path,
    shared_data: Path,
) -> None:
    _, _, ckpt, path = exported
    dax = shared_data / "dax" / "Epigenomics_24.xml"
    out = tmp_path / "plan.json"
    code = (
        "import sys; from agents.deploy.cli import main; "
        f"rc = main([{str(dax)!r}, '--cluster', 'het16', '--scheduler', 'policy:{path}', "
        f"'-o', {str(out)!r}]); "
        "assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules; "
        "sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    onnx_doc = json.loads(out.read_text())
    from agents.deploy.plan import make_deploy_plan
    from wass_env.sim.cluster_file import load_cluster
    from wass_env.workloads.loader import load_workflow

    dp = make_deploy_plan(load_workflow(dax), load_cluster("het16"), f"policy:{ckpt}")
    torch_nodes = {dp.workflow.ids[t]: dp.cluster.node_name[n] for t, n in enumerate(dp.plan.node)}
    assert {t["id"]: t["node"] for t in onnx_doc["tasks"]} == torch_nodes
    assert onnx_doc["makespan"] == pytest.approx(dp.makespan, rel=1e-9)
