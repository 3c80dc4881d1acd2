"""Job sets on a real Slurm: sim-to-real makespans, failure handling and the job_submit plugin.

Run against the single-host cluster of ``scripts/start_slurm.sh`` (``make test-slurm``; CI
does); without a running Slurm every test here skips. The cluster file is built from what
Slurm reports (node names, CPUs, memory), with node speeds 2, 1.5, 1 and 0.5 that the job scripts
honour by sleeping for the planned runtime on their node.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.deploy.fidelity import fidelity_workflow, measure_dispatch_latency
from agents.deploy.plan import make_deploy_plan
from agents.deploy.realised import (
    SlurmError,
    read_run,
    simulate,
    slurm_cluster_spec,
    slurm_nodes,
    submit_job_set,
    wait_for_jobs,
)
from wass_env.commands import main as wass
from wass_env.sim.cluster_file import load_cluster
from wass_env.workloads import load_workflow

pytestmark = pytest.mark.slurm

SPEEDS = (2.0, 1.5, 1.0, 0.5)
NODE_TABLE = Path("/run/wass/nodes.tsv")  # written by start_slurm.sh's node-table refresher


@pytest.fixture(scope="module")
def cluster_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cluster file of the running Slurm's nodes (skips when there is none)."""
    try:
        nodes = slurm_nodes()
    except SlurmError:
        pytest.skip("no Slurm running: start one with `bash scripts/start_slurm.sh`")
    if len(nodes) < 4 or any(state not in ("idle", "mixed") for _, state, _, _ in nodes[:4]):
        pytest.skip(f"needs 4 idle Slurm nodes (scripts/start_slurm.sh); sinfo shows {nodes}")
    f = tmp_path_factory.mktemp("slurm") / "cluster.yaml"
    f.write_text(yaml.safe_dump(slurm_cluster_spec(SPEEDS)))
    return f


def _write_wfformat(path: Path, wf_tasks: list[tuple[str, list[str], float, int, str]]) -> Path:
    """A WfFormat 1.5 file: (id, parents, runtime [s], cores, command) per task (the command's
    first word is the program, the others its arguments)."""
    spec = [
        {
            "name": t,
            "id": t,
            "parents": p,
            "children": [c for c, pp, *_ in wf_tasks if t in pp],
        }
        for t, p, *_ in wf_tasks
    ]
    execution = [
        {
            "id": t,
            "runtimeInSeconds": rt,
            "coreCount": cores,
            "command": {"program": cmd.split()[0], "arguments": cmd.split()[1:]},
        }
        for t, _, rt, cores, cmd in wf_tasks
    ]
    doc = {
        "name": path.stem,
        "schemaVersion": "1.5",
        "workflow": {"specification": {"tasks": spec}, "execution": {"tasks": execution}},
    }
    path.write_text(json.dumps(doc))
    return path


def test_realised_makespan_within_10_percent_of_simulation_with_dispatch_latency(
    cluster_file: Path, tmp_path: Path
) -> None:
    # 1. Measure Slurm's per-dependency delay on this cluster.
    delays = measure_dispatch_latency(load_cluster(cluster_file), tmp_path / "calibration")
    dispatch = float(delays.mean())
    assert delays.size == 28 and 0.0 < dispatch < 2.0  # one scheduling pass is about 1 s here
    # 2. Plan a >= 30 s workflow with it, through the command line, and run the job set.
    spec = slurm_cluster_spec(SPEEDS, dispatch_latency=dispatch)
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(spec))
    wf = fidelity_workflow(seed=4)
    # The command line reads workflow files: the same DAG as a WfFormat file.
    wf_file = _write_wfformat(
        tmp_path / "wf.json",
        [
            (
                wf.ids[t],
                [wf.ids[p] for p in wf.parents(t).tolist()],
                float(wf.work[t]),
                int(wf.cores[t]),
                "true",
            )
            for t in range(wf.n_tasks)
        ],
    )
    argv = [str(wf_file), "--cluster", str(tmp_path / "cluster.yaml"), "--sleep"]
    argv += ["-o", str(tmp_path / "plan.json"), "--slurm", str(tmp_path / "jobs")]
    assert wass(["plan", *argv]) == 0
    dp = make_deploy_plan(load_workflow(wf_file), load_cluster(tmp_path / "cluster.yaml"))
    assert json.loads((tmp_path / "plan.json").read_text())["makespan"] == pytest.approx(
        dp.makespan, abs=1e-5
    )
    simulated, simulated_dl = simulate(dp, 0.0).makespan, simulate(dp).makespan
    assert simulated >= 30.0
    ids = submit_job_set(tmp_path / "jobs")
    run = read_run(dp, tmp_path / "jobs", wait_for_jobs(list(ids.values()), timeout=300))
    assert set(run.state) == {"COMPLETED"}
    planned = [dp.cluster.node_name[n] for n in dp.plan.node.tolist()]
    assert list(run.node) == planned  # --nodelist: every job on its plan's node
    # Runtimes are what the plan estimated on the node (sleeps), to a few hundredths.
    assert np.allclose(run.end - run.start, dp.plan.finish - dp.plan.start, atol=0.1)
    realised = run.makespan
    print(
        f"simulated {simulated:.2f} s, with dispatch latency {dispatch:.3f} s: "
        f"{simulated_dl:.2f} s, realised {realised:.2f} s"
    )
    assert abs(realised / simulated_dl - 1) <= 0.10


def test_failing_task_cancels_its_dependants(cluster_file: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    wf_file = _write_wfformat(
        tmp_path / "fails.json",
        [
            ("a", [], 1.0, 1, "sleep 1"),
            ("b", ["a"], 1.0, 1, "exit 3"),
            ("c", ["b"], 1.0, 1, "touch ran_c"),
            ("d", ["c"], 1.0, 1, "touch ran_d"),
            ("e", ["a"], 1.0, 1, "touch ran_e"),
        ],
    )
    assert (
        wass(
            [
                "plan",
                str(wf_file),
                "--cluster",
                str(cluster_file),
                "-o",
                str(tmp_path / "p.json"),
                "--slurm",
                str(tmp_path / "jobs"),
            ]
        )
        == 0
    )
    dp = make_deploy_plan(load_workflow(wf_file), load_cluster(cluster_file))
    ids = submit_job_set(tmp_path / "jobs", workdir=work)
    run = read_run(dp, tmp_path / "jobs", wait_for_jobs(list(ids.values()), timeout=120))
    state = dict(zip(run.task_ids, run.state, strict=True))
    assert state == {
        "a": "COMPLETED",
        "b": "FAILED",
        "c": "CANCELLED",
        "d": "CANCELLED",
        "e": "COMPLETED",
    }
    assert int(run.exit_code[dp.workflow.index("b")]) == 3
    assert sorted(p.name for p in work.iterdir()) == ["ran_e"]  # c and d never ran
    assert not run.ran[[dp.workflow.index("c"), dp.workflow.index("d")]].any()


def test_after_dependencies_keep_the_planned_node_order(tmp_path: Path) -> None:
    # The workflow of test_deploy's overtaking test, 5 times shorter, on a 2-CPU node: with the
    # after: dependency b starts before d, as planned; without it d takes the free core first.
    try:
        nodes = slurm_nodes()
    except SlurmError:
        pytest.skip("no Slurm running: start one with `bash scripts/start_slurm.sh`")
    two = [r for r in nodes if r[2] == 2 and r[1] in ("idle", "mixed")]
    if not two:
        pytest.skip(f"needs an idle 2-CPU Slurm node (scripts/start_slurm.sh); sinfo shows {nodes}")
    name, _, _, mem = two[0]
    cl = tmp_path / "one.yaml"
    cl.write_text(
        yaml.safe_dump(
            {"nodes": [{"name": name, "speed": 1.0, "cores": 2, "memory_gib": mem / 1024}]}
        )
    )
    wf_file = _write_wfformat(
        tmp_path / "order.json",
        [
            ("a", [], 2.0, 1, "true"),
            ("e", [], 0.4, 1, "true"),
            ("b", ["a"], 0.2, 2, "true"),
            ("d", ["e"], 4.0, 1, "true"),
            ("f", ["b"], 5.0, 1, "true"),
        ],
    )
    dp = make_deploy_plan(load_workflow(wf_file), load_cluster(cl))
    b, d = dp.workflow.index("b"), dp.workflow.index("d")
    assert dp.plan.start[b] < dp.plan.start[d]
    starts = {}
    for free in (False, True):
        jobs = tmp_path / f"jobs-{free}"
        argv = [str(wf_file), "--cluster", str(cl), "--sleep", "--slurm", str(jobs)]
        assert (
            wass(["plan", *argv, "-o", str(tmp_path / f"p{free}.json")] + ["--free-order"] * free)
            == 0
        )
        ids = submit_job_set(jobs)
        run = read_run(dp, jobs, wait_for_jobs(list(ids.values()), timeout=120))
        assert set(run.state) == {"COMPLETED"}
        starts[free] = (run.start[b], run.start[d])
    assert starts[False][0] < starts[False][1]  # kept: b, then d
    assert starts[True][1] < starts[True][0]  # free: d overtook b


def _wait_table(node: str, state: str, timeout: float = 15.0) -> None:
    """Wait until the plugin's node table shows ``node`` in ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if NODE_TABLE.exists():
            rows = [ln.split() for ln in NODE_TABLE.read_text().splitlines() if ln and ln[0] != "#"]
            if any(r[0] == node and r[1].startswith(state) for r in rows):
                return
        time.sleep(0.2)
    pytest.fail(f"{NODE_TABLE} did not show {node} {state} within {timeout} s")


def test_plugin_applies_plan_nodes_and_falls_back(cluster_file: Path, tmp_path: Path) -> None:
    names = [r[0] for r in slurm_nodes()][:4]
    # Four independent tasks, one per node (round robin), submitted with plan comments.
    wf_file = _write_wfformat(
        tmp_path / "four.json", [(f"t{k}", [], 2.0, 1, "true") for k in range(4)]
    )
    argv = [str(wf_file), "--cluster", str(cluster_file), "--scheduler", "round_robin"]
    argv += ["--sleep", "--placement", "plugin", "-o", str(tmp_path / "p.json")]
    assert wass(["plan", *argv, "--slurm", str(tmp_path / "jobs")]) == 0
    dp = make_deploy_plan(load_workflow(wf_file), load_cluster(cluster_file), "round_robin")
    planned = [dp.cluster.node_name[n] for n in dp.plan.node.tolist()]
    assert sorted(planned) == sorted(names)
    down = planned[3]  # t3's node goes down after planning, before submission
    subprocess.run(
        ["scontrol", "update", f"nodename={down}", "state=down", "reason=wass-test"], check=True
    )
    try:
        _wait_table(down, "down")
        ids = submit_job_set(tmp_path / "jobs")
        # Jobs that ask for a node that cannot take them: too many CPUs, no such node.
        small = min(slurm_nodes()[:4], key=lambda r: r[2])
        extra = {}
        for label, opts in (
            ("cpus", [f"--comment=wass:node={small[0]}", f"--cpus-per-task={small[2] + 1}"]),
            ("nonode", ["--comment=wass:node=nosuchnode"]),
        ):
            out = subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    f"--job-name=wass-{label}",
                    "--mem=1M",
                    f"--output={tmp_path}/{label}.out",
                    *opts,
                    "--wrap",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            extra[label] = out.strip().split(";")[0]
        states = wait_for_jobs([*ids.values(), *extra.values()], timeout=120)
    finally:
        subprocess.run(["scontrol", "update", f"nodename={down}", "state=resume"], check=False)
    run = read_run(dp, tmp_path / "jobs", states)
    assert set(run.state) == {"COMPLETED"}
    assert list(run.node[:3]) == planned[:3]  # the plugin applied the plan's nodes
    assert run.node[3] not in ("", down)  # the down node's job still ran, elsewhere
    assert states[extra["cpus"]][0] == "COMPLETED" and states[extra["cpus"]][1] != small[0]
    assert states[extra["nonode"]][0] == "COMPLETED"
