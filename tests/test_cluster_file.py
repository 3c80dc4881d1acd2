"""Cluster files (nodes by hostname, down nodes), dispatch latency in the simulator, and the
commands the workflow loaders keep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents.heft import HEFTScheduler
from wass_env.sim import Cluster, ClusterError, Problem, Workflow, WorkflowError, execute
from wass_env.sim.cluster import GIB
from wass_env.sim.cluster_file import is_hostname, load_cluster
from wass_env.sim.plan import PlanBuilder
from wass_env.workloads import load_workflow, parse_wfformat

YAML = """\
name: lab
bandwidth: 1.0e9
latency: 0.001
dispatch_latency: 0.6
nodes:
  - {name: n1, speed: 2.0, cores: 4, memory_gib: 8}
  - {name: gpu-2.lab.example, speed: 1.0, cores: 8, memory_gib: 16, type: gpu}
  - {name: n3, speed: 0.5, cores: 2, memory_gib: 4, down: true}
"""


def test_yaml_cluster_file(tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(YAML)
    cl = load_cluster(f)
    assert cl.name == "lab"
    assert cl.node_name == ("n1", "gpu-2.lab.example", "n3")
    assert cl.speed.tolist() == [2.0, 1.0, 0.5]
    assert cl.cores.tolist() == [4, 8, 2]
    assert cl.memory.tolist() == [8 * GIB, 16 * GIB, 4 * GIB]
    assert cl.down.tolist() == [False, False, True]
    assert cl.node_type == ("node", "gpu", "node")
    assert (cl.bandwidth, cl.latency, cl.dispatch_latency) == (1e9, 0.001, 0.6)
    assert cl.node_index("gpu-2.lab.example") == 1
    with pytest.raises(ClusterError, match="no node 'n9'; nodes: n1, gpu-2"):
        cl.node_index("n9")


def test_json_cluster_file_is_the_same(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "lab.yaml").write_text(YAML)
    (tmp_path / "lab.json").write_text(json.dumps(yaml.safe_load(YAML)))
    a, b = load_cluster(tmp_path / "lab.yaml"), load_cluster(tmp_path / "lab.json")
    for field in ("speed", "cores", "memory", "down"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.node_name == b.node_name


def test_preset_gets_hostnames() -> None:
    cl = load_cluster("het16")
    assert cl.node_name == tuple(f"n{i}" for i in range(1, 17))
    assert cl.speed.tolist() == [2.0, 1.0, 0.5, 1.0] * 4
    assert not cl.down.any() and cl.dispatch_latency == 0.0


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("n1", True),
        ("node-07.cluster.example.org", True),
        ("N1", True),
        ("n_1", False),
        ("-n1", False),
        ("n1-", False),
        ("n1..x", False),
        ("", False),
        ("a" * 64, False),
        ("n 1", False),
    ],
)
def test_hostnames(name: str, ok: bool) -> None:
    assert is_hostname(name) is ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: []", r"c\.yaml: nodes: expected a non-empty list of nodes, got \[\]"),
        (
            "nodes: [{name: n_1, speed: 1, cores: 1, memory_gib: 1}]",
            r"c\.yaml: nodes\[0\]\.name: 'n_1' is not a valid hostname",
        ),
        ("nodes: [{name: n1, cores: 1, memory_gib: 1}]", r"nodes\[0\]\.speed: required field"),
        (
            "nodes: [{name: n1, speed: -1, cores: 1, memory_gib: 1}]",
            r"nodes\[0\]\.speed: must be a finite number > 0, got -1",
        ),
        (
            "nodes: [{name: n1, speed: 1, cores: 2.5, memory_gib: 1}]",
            r"nodes\[0\]\.cores: must be a whole number, got 2\.5",
        ),
        (
            "nodes: [{name: n1, speed: 1, cores: 1, memory: 1}]",
            r"nodes\[0\]\.memory: unknown field.*memory_gib",
        ),
        (
            "nodes: [{name: n1, speed: fast, cores: 1, memory_gib: 1}]",
            r"nodes\[0\]\.speed: expected a number, got 'fast'",
        ),
        (
            "nodes: [{name: n1, speed: 1, cores: 1, memory_gib: 1, down: maybe}]",
            r"nodes\[0\]\.down: expected true or false, got 'maybe'",
        ),
        (
            "nodes: [{name: n1, speed: 1, cores: 1, memory_gib: 1}, "
            "{name: n1, speed: 1, cores: 1, memory_gib: 1}]",
            r"nodes\[1\]\.name: duplicate node name 'n1'",
        ),
        (
            "nodes: [{name: n1, speed: 1, cores: 1, memory_gib: 1, down: true}]",
            r"nodes: every node is marked down",
        ),
        (
            "dispatch_latency: -1\nnodes: [{name: n1, speed: 1, cores: 1, memory_gib: 1}]",
            r"dispatch_latency: must be a finite number >= 0, got -1",
        ),
        ("bandwith: 1\nnodes: []", r"c\.yaml: bandwith: unknown field"),
        ("nodes: [1, 2", r"c\.yaml: not valid YAML \(line 1, column \d+\)"),
        ("- n1\n- n2", r"c\.yaml: expected a mapping with a 'nodes' list, got list"),
    ],
)
def test_bad_cluster_files_name_file_field_and_value(
    tmp_path: Path, text: str, message: str
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ClusterError, match=message) as info:
        load_cluster(f)
    assert "\n" not in str(info.value)


def test_missing_cluster_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"nope\.yaml: cannot read cluster file"):
        load_cluster(tmp_path / "nope.yaml")
    with pytest.raises(ClusterError, match="not a preset either: hom16"):
        load_cluster("hom7")


# ---------------------------------------------------------------------------- down nodes
def _fork(n: int = 6) -> Workflow:
    return Workflow.from_arrays(
        [1.0] + [4.0] * n, [(0, i) for i in range(1, n + 1)], edge_bytes=[0.0] * n
    )


def test_down_nodes_take_no_task() -> None:
    speed = [2.0, 1.0, 1.0, 0.5]
    up = Cluster(speed, 1)
    down = Cluster(speed, 1, down=[True, False, False, False])
    plan_up = HEFTScheduler().plan(Problem(_fork(), up))
    assert 0 in plan_up.node.tolist()  # the fastest node is HEFT's favourite...
    problem = Problem(_fork(), down)
    assert not problem.fits[:, 0].any()
    plan = HEFTScheduler().plan(problem)
    assert 0 not in plan.node.tolist()  # ...but not when it is down
    # The same as HEFT on the three nodes that are up (node indices shifted by one).
    sub = HEFTScheduler().plan(Problem(_fork(), Cluster(speed[1:], 1)))
    assert np.array_equal(plan.node, sub.node + 1)
    assert np.allclose(plan.start, sub.start)


def test_a_task_that_fits_only_on_a_down_node_is_an_error() -> None:
    cl = Cluster([1.0, 1.0], [8, 2], down=[True, False])
    wf = Workflow.from_arrays([1.0], cores=[4])
    with pytest.raises(WorkflowError, match="largest node not marked down has 2 cores"):
        Problem(wf, cl)


def test_cluster_subset_and_pickle_keep_names_and_states() -> None:
    import pickle

    cl = Cluster([1.0, 2.0, 3.0], 1, node_name=["a", "b", "c"], down=[0, 1, 0], dispatch_latency=2)
    sub = cl.subset([2, 1])
    assert sub.node_name == ("c", "b") and sub.down.tolist() == [False, True]
    assert sub.dispatch_latency == 2.0
    back = pickle.loads(pickle.dumps(cl))
    assert back.node_name == cl.node_name and back.down.tolist() == [False, True, False]
    with pytest.raises(ClusterError, match="duplicate node name 'a'"):
        Cluster([1.0, 1.0], 1, node_name=["a", "a"])


# ---------------------------------------------------------------------------- dispatch latency
def test_dispatch_latency_delays_dependants_hand_computed() -> None:
    # a -> b -> c on one node, plus d (child of a) on another node reading 2 s of data.
    wf = Workflow.from_arrays([2.0, 3.0, 4.0, 1.0], [(0, 1), (1, 2), (0, 3)], [0.0, 0.0, 2.0])
    cl = Cluster([1.0, 1.0], 1, bandwidth=1.0, latency=0.0, dispatch_latency=0.5)
    b = PlanBuilder(Problem(wf, cl), insertion=True)
    assert b.assign(0, 0) == (0.0, 2.0)  # entry tasks are not delayed
    assert b.assign(1, 0) == (2.5, 5.5)  # same node: 2 + 0.5
    assert b.assign(2, 0) == (6.0, 10.0)  # 5.5 + 0.5
    assert b.assign(3, 1) == (4.0, 5.0)  # the 2 s transfer is longer than the 0.5 s dispatch
    plan = b.plan()
    realised = execute(plan)  # execution follows the same rule: it reproduces the plan
    assert np.allclose(realised.start, plan.start) and np.allclose(realised.finish, plan.finish)
    # Without the latency: 0, 2, 5 and 4.
    b0 = PlanBuilder(Problem(wf, Cluster([1.0, 1.0], 1, bandwidth=1.0, latency=0.0)))
    assert [b0.assign(t, n)[0] for t, n in ((0, 0), (1, 0), (2, 0), (3, 1))] == [0, 2, 5, 4]


def test_execute_with_dispatch_latency_adds_it_per_level() -> None:
    # A fork-join of depth 3 on identical nodes: each of the two dependency levels adds 0.25 s.
    wf = Workflow.from_arrays([1.0, 2.0, 2.0, 1.0], [(0, 1), (0, 2), (1, 3), (2, 3)])
    for dl, expected in ((0.0, 4.0), (0.25, 4.5)):
        cl = Cluster([1.0, 1.0], 1, latency=0.0, dispatch_latency=dl)
        plan = HEFTScheduler().plan(Problem(wf, cl))
        assert plan.makespan == pytest.approx(expected)
        assert execute(plan).makespan == pytest.approx(expected)


# ---------------------------------------------------------------------------- commands
def _wfformat(tasks: list[dict]) -> dict:
    return {
        "name": "cmd",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {
                "tasks": [
                    {
                        "name": t["id"],
                        "id": t["id"],
                        "parents": t.get("parents", []),
                        "children": [c["id"] for c in tasks if t["id"] in c.get("parents", [])],
                    }
                    for t in tasks
                ]
            },
            "execution": {
                "tasks": [
                    {
                        "id": t["id"],
                        "runtimeInSeconds": 1.0,
                        **({"command": t["command"]} if "command" in t else {}),
                    }
                    for t in tasks
                ]
            },
        },
    }


def test_wfformat_keeps_program_and_arguments() -> None:
    wf = parse_wfformat(
        _wfformat(
            [
                {"id": "a", "command": {"program": "bwa", "arguments": ["mem", "-t", 4, "ref.fa"]}},
                {"id": "b", "parents": ["a"], "command": {"program": "samtools"}},
                {"id": "c", "parents": ["a"]},
            ]
        )
    )
    assert wf.command == ("bwa mem -t 4 ref.fa", "samtools", "")
    assert wf.replace(edge_bytes=np.ones(wf.n_edges)).command == wf.command
    from wass_env.workloads import WorkloadError

    with pytest.raises(
        WorkloadError, match=r"tasks\[0\]\.command\.arguments\[0\]: expected a string"
    ):
        parse_wfformat(_wfformat([{"id": "a", "command": {"program": "x", "arguments": [{}]}}]))


def test_dax_keeps_name_and_argument(tmp_path: Path) -> None:
    f = tmp_path / "w.dax"
    f.write_text(
        '<adag xmlns="http://pegasus.isi.edu/schema/DAX" version="2.1">'
        '<job id="j1" name="mProject" runtime="2">'
        '<argument>-X  <filename file="in.fits"/> -o\n <filename file="out.fits"/></argument>'
        '<uses file="in.fits" link="input" size="10"/></job>'
        '<job id="j2" name="mAdd" runtime="1"/>'
        '<child ref="j2"><parent ref="j1"/></child></adag>'
    )
    wf = load_workflow(f)
    assert wf.command == ("mProject -X in.fits -o out.fits", "mAdd")


def test_real_traces_keep_the_same_commands_in_every_schema(shared_data: Path) -> None:
    wfi = shared_data / "wfinstances"
    new = load_workflow(wfi / "srasearch-chameleon-20a-001.json")
    assert new.command[new.index(new.ids[0])].split()[0] == new.task_type[0]
    assert all(new.command)
    for version in ("v1.3", "v1.4"):
        old = load_workflow(wfi / "legacy" / version / "srasearch-chameleon-20a-001.json")
        assert dict(zip(old.ids, old.command, strict=True)) == dict(
            zip(new.ids, new.command, strict=True)
        )
