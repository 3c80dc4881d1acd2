"""``wass plan``: the HEFT fallback, plan.json, the Slurm job set (its scripts run against
stand-in Slurm commands) and the command line, with its one-line errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from agents.deploy.plan import make_deploy_plan, plan_document, scheduler_from_spec
from agents.deploy.slurm import JobSetError, node_order_guards, render_job_set, write_job_set
from agents.fallback import FallbackScheduler
from agents.heft import HEFTScheduler
from agents.heuristics import min_eft_node
from agents.minmin import MinMinScheduler
from wass_env.commands import main as wass
from wass_env.scheduling import SCHEDULERS, Scheduler, UnknownSchedulerError, make_scheduler
from wass_env.sim import Cluster, Problem, Workflow
from wass_env.sim.cluster_file import parse_cluster
from wass_env.sim.plan import PlanBuilder, PlanError
from wass_env.workloads import layered

NODES = [
    {"name": "n1", "speed": 2.0, "cores": 4, "memory_gib": 8},
    {"name": "n2", "speed": 1.5, "cores": 4, "memory_gib": 8},
    {"name": "n3", "speed": 1.0, "cores": 2, "memory_gib": 4},
    {"name": "n4", "speed": 0.5, "cores": 2, "memory_gib": 4},
]


def _cluster(down: str | None = None) -> Cluster:
    return parse_cluster({"nodes": [dict(n, down=n["name"] == down) for n in NODES]})


def _workflow(seed: int = 0, n: int = 20) -> Workflow:
    return layered(n, np.random.default_rng(seed), width=4, work=(6, 18), data=0.0, cores=(1, 2))


class FirstNode(Scheduler):
    """Always node 0, whatever fits (a scheduler that ignores the mask)."""

    name: ClassVar[str] = "first_node"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        return 0


class OutOfRange(Scheduler):
    """Node 99 for even tasks (a policy emitting a padding index), else HEFT's node."""

    name: ClassVar[str] = "out_of_range"

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        return 99 if task % 2 == 0 else min_eft_node(builder, task)


# ---------------------------------------------------------------------------- the fallback
@pytest.mark.parametrize("base", ["heft", "peft", "cpop", "min_min", "data_locality"])
def test_fallback_changes_nothing_for_a_scheduler_that_behaves(base: str) -> None:
    problem = Problem(_workflow(1), _cluster(down="n2"))
    own = make_scheduler(base).plan(problem)
    safe = FallbackScheduler(base)
    plan = safe.plan(problem)
    assert np.array_equal(plan.node, own.node)
    assert np.allclose(plan.start, own.start) and np.allclose(plan.finish, own.finish)
    assert len(safe.decisions) == problem.n_tasks
    assert not any(d.fallback for d in safe.decisions)


def test_fallback_falls_back_to_heft_for_down_and_infeasible_nodes() -> None:
    # Node 0 (n1) is down: FirstNode's every choice must be replaced by HEFT's.
    problem = Problem(_workflow(2), _cluster(down="n1"))
    safe = FallbackScheduler(FirstNode(), record=True)
    plan = safe.plan(problem)
    assert 0 not in plan.node.tolist()
    assert all(d.fallback and "n1 is marked down" in d.reason for d in safe.decisions)
    assert all(d.reason.startswith("first_node chose n1: ") for d in safe.decisions)
    # Every fallback is HEFT's node at that moment: the earliest finish recorded.
    for d in safe.decisions:
        assert d.node == int(np.argmin(d.earliest_finish))
    # Replaying the same decisions through HEFT's node rule gives the same plan as HEFT's own
    # (FirstNode keeps HEFT's rank order, so every decision is HEFT's).
    heft = HEFTScheduler().plan(problem)
    assert np.array_equal(plan.node, heft.node)


def test_fallback_catches_a_node_that_does_not_exist_and_one_too_small() -> None:
    cl = _cluster()
    wf = Workflow.from_arrays([4.0] * 6, cores=[1, 4, 1, 4, 1, 4])
    safe = FallbackScheduler(OutOfRange())
    plan = safe.plan(Problem(wf, cl))
    reasons = {d.task: d.reason for d in safe.decisions}
    assert all("there is no node 99 (the cluster has 4)" in reasons[t] for t in (0, 2, 4))
    assert all(reasons[t] == "" for t in (1, 3, 5))
    assert set(plan.node.tolist()) <= {0, 1, 2, 3}
    # A 4-core task proposed on n3 (2 cores) says why it does not fit.
    small = FallbackScheduler({"_target_": "tests.test_deploy.FixedNode", "node": 2})
    small.plan(Problem(wf, cl))
    four = next(d for d in small.decisions if d.task == 1)
    assert four.reason == "fixed chose n3: the task needs 4 cores (node n3 has 2)"
    assert four.node in (0, 1)


class FixedNode(Scheduler):
    """Always the same node."""

    name: ClassVar[str] = "fixed"

    def __init__(self, node: int = 0, seed: int | None = None) -> None:
        self.node = node
        super().__init__(seed)

    def select_node(self, builder: PlanBuilder, task: int) -> int:
        return self.node


class OwnPlanFirstNode(FirstNode):
    """FirstNode with its own plan(), which fails on the down node (as a policy's would)."""

    name: ClassVar[str] = "own_plan_first_node"

    def plan(self, problem: Problem, *, insertion: bool = True) -> Any:
        return Scheduler.plan(self, problem, insertion=insertion)


def test_fallback_drives_a_failing_own_plan_decision_by_decision() -> None:
    problem = Problem(_workflow(2), _cluster(down="n1"))
    with pytest.raises(PlanError, match="cannot run on node 0"):
        OwnPlanFirstNode().plan(problem)
    safe = FallbackScheduler(OwnPlanFirstNode())
    plan = safe.plan(problem)
    assert len(safe.decisions) == problem.n_tasks and all(d.fallback for d in safe.decisions)
    assert np.array_equal(plan.node, HEFTScheduler().plan(problem).node)


def test_fallback_replays_schedulers_with_their_own_plan() -> None:
    problem = Problem(_workflow(3), _cluster())
    safe = FallbackScheduler("min_min")
    assert type(safe.base) is MinMinScheduler
    plan, own = safe.plan(problem), MinMinScheduler().plan(problem)
    assert np.array_equal(plan.node, own.node) and np.allclose(plan.start, own.start)
    assert np.array_equal(np.argsort(plan.decision), np.argsort(own.decision))


def test_fallback_from_a_config_target() -> None:
    g = make_scheduler({"_target_": "agents.fallback.FallbackScheduler", "base": "peft"})
    assert isinstance(g, FallbackScheduler) and g.base.name == "peft"


# ---------------------------------------------------------------------------- plan.json
def test_plan_document() -> None:
    wf, cl = _workflow(0), _cluster(down="n4")
    dp = make_deploy_plan(wf, cl, "heft")
    doc = plan_document(dp, explain=True)
    assert doc["format"] == "wass-plan/1" and doc["scheduler"] == "heft"
    assert doc["makespan"] == pytest.approx(HEFTScheduler().plan(Problem(wf, cl)).makespan)
    assert doc["fallbacks"] == 0
    assert [n["name"] for n in doc["cluster"]["nodes"]] == ["n1", "n2", "n3", "n4"]
    assert [n["down"] for n in doc["cluster"]["nodes"]] == [False, False, False, True]
    tasks = doc["tasks"]
    assert sorted(t["id"] for t in tasks) == sorted(wf.ids)
    assert {t["node"] for t in tasks} <= {"n1", "n2", "n3"}
    finish = {}
    for t in tasks:  # submission order is topological, times consistent
        assert all(p in finish for p in t["parents"])
        assert all(t["start"] >= finish[p] - 1e-9 for p in t["parents"])
        assert t["finish"] - t["start"] == pytest.approx(t["runtime"])
        i = wf.index(t["id"])
        assert t["runtime"] == pytest.approx(wf.work[i] / cl.speed[cl.node_index(t["node"])])
        assert t["cores"] == int(wf.cores[i]) and t["memory"] == float(wf.memory[i])
        finish[t["id"]] = t["finish"]
        ex = t["explanation"]
        best = ex["candidates"][0]
        assert best["finish"] == min(c["finish"] for c in ex["candidates"])
        assert ex["chosen"] == t["node"] == best["node"]  # HEFT: the earliest finish
        assert ex["why"].startswith(f"earliest finish time: {best['finish']:.3f} s")
        assert {"node": "n4", "reason": "node n4 is marked down"} in ex["excluded"]
        assert len(ex["candidates"]) + len(ex["excluded"]) == 4
    assert max(finish.values()) == pytest.approx(doc["makespan"], abs=1e-5)
    assert "explanation" not in plan_document(dp)["tasks"][0]
    json.dumps(doc)  # plain JSON types throughout


def test_plan_records_fallbacks_and_other_rules() -> None:
    dp = make_deploy_plan(_workflow(0), _cluster(down="n1"), FirstNode())
    doc = plan_document(dp, explain=True)
    assert doc["fallbacks"] == len(doc["tasks"]) == dp.n_fallbacks
    t = doc["tasks"][0]
    assert t["fallback"] == "first_node chose n1: node n1 is marked down"
    assert t["explanation"]["why"].startswith(t["fallback"] + "; fell back to the earliest finish")
    # A scheduler that does not pick the earliest finish says so, with the gap.
    dp = make_deploy_plan(_workflow(0), _cluster(), FixedNode(node=3))
    why = plan_document(dp, explain=True)["tasks"][0]["explanation"]["why"]
    assert why.startswith("chosen by fixed: finishes at") and "after the earliest finish (n1" in why


def test_scheduler_spec_with_checkpoint_goes_through_the_registry(tmp_path: Path) -> None:
    with pytest.raises(UnknownSchedulerError, match=r"unknown scheduler 'toy' \('toy' takes"):
        scheduler_from_spec("toy:model.zip")
    with pytest.raises(UnknownSchedulerError, match="registered: .*heft"):
        scheduler_from_spec("hfet")
    with pytest.raises(UnknownSchedulerError, match="'policy' needs a checkpoint: give policy:"):
        scheduler_from_spec("policy")
    with pytest.raises(
        UnknownSchedulerError, match=r"cannot load 'policy' from checkpoint '.*no\.zip'"
    ):
        scheduler_from_spec(f"policy:{tmp_path / 'no.zip'}")
    seen: list[str] = []

    class Toy(HEFTScheduler):
        name: ClassVar[str] = "toy"
        requires: ClassVar[tuple[str, ...]] = ("checkpoint",)

        def __init__(self, checkpoint: str, seed: int | None = None) -> None:
            seen.append(checkpoint)
            super().__init__(seed)

    SCHEDULERS.register("toy", Toy)
    try:
        dp = make_deploy_plan(_workflow(0), _cluster(), "toy:runs/x/model.zip")
        assert seen == ["runs/x/model.zip"] and dp.scheduler == "toy:runs/x/model.zip"
    finally:
        SCHEDULERS._refs.pop("toy")
        SCHEDULERS._loaded.pop("toy", None)


# ---------------------------------------------------------------------------- the job set
def test_job_scripts() -> None:
    wf = Workflow.from_arrays(
        [4.0, 2.0, 6.0],
        [(0, 1), (0, 2)],
        ids=["prep", "sim a", "sim/b"],
        cores=[1, 2, 4],
        memory=[0.0, 1.5 * 2**20, 3 * 2**30],
        command=["prep.sh --in x", "run 'a b'", "run b"],
    )
    dp = make_deploy_plan(wf, _cluster())
    files = render_job_set(dp)
    order = [wf.ids[t].replace(" ", "_").replace("/", "_") for t in dp.submission_order()]
    assert list(files) == [f"{k + 1:04d}-{n}.sh" for k, n in enumerate(order)] + ["submit.sh"]
    by_task = {}
    for name, text in files.items():
        if name != "submit.sh":
            job = next(x for x in text.splitlines() if "--job-name=" in x).split("=")[1]
            by_task[job] = text
    prep, a, b = by_task["prep"], by_task["sim_a"], by_task["sim_b"]
    assert "#SBATCH --cpus-per-task=1\n#SBATCH --mem=1M\n" in prep  # never --mem=0 (= all)
    assert "#SBATCH --cpus-per-task=2\n#SBATCH --mem=2M\n" in a  # 1.5 MiB rounded up
    assert "#SBATCH --cpus-per-task=4\n#SBATCH --mem=3072M\n" in b
    for text, tid in ((prep, 0), (a, 1), (b, 2)):
        node = dp.cluster.node_name[int(dp.plan.node[tid])]
        assert f"#SBATCH --nodelist={node}\n" in text
        assert "#SBATCH --kill-on-invalid-dep=yes\n" in text
        assert "#SBATCH --nodes=1\n#SBATCH --ntasks=1\n" in text
    assert "bash -c 'prep.sh --in x'\n" in prep
    assert "bash -c 'run '\"'\"'a b'\"'\"''\n" in a  # quoted as one command
    plugin = render_job_set(dp, placement="plugin")
    text = plugin[next(n for n in plugin if n.endswith("-prep.sh"))]
    node = dp.cluster.node_name[int(dp.plan.node[0])]
    assert f"#SBATCH --comment=wass:node={node}\n" in text and "--nodelist" not in text
    sleep = render_job_set(dp, sleep=True)
    runtime = dp.plan.finish[2] - dp.plan.start[2]
    assert f"bash -c 'sleep {runtime:.3f}'" in sleep[next(n for n in sleep if "sim_b" in n)]
    tmpl = render_job_set(
        dp, command="srun {type} --id {id} -n {cores} -m {memory_mb} -t {runtime}"
    )
    text = tmpl[next(n for n in tmpl if "sim_b" in n)]
    assert f"bash -c 'srun  --id sim/b -n 4 -m 3072 -t {runtime:.3f}'" in text


def test_job_set_errors() -> None:
    dp = make_deploy_plan(Workflow.from_arrays([1.0, 1.0], [(0, 1)], ids=["a", "b"]), _cluster())
    with pytest.raises(
        JobSetError, match="task 'a' has no command \\(and 1 more\\); give --command"
    ):
        render_job_set(dp)
    with pytest.raises(JobSetError, match=r"unknown placeholder \{nodes\}.*known: \{id\}"):
        render_job_set(dp, command="run {nodes}")
    with pytest.raises(JobSetError, match="bad template"):
        render_job_set(dp, command="run {id")
    with pytest.raises(JobSetError, match="exclude each other"):
        render_job_set(dp, command="x", sleep=True)
    with pytest.raises(JobSetError, match="--placement: expected one of nodelist, plugin"):
        render_job_set(dp, sleep=True, placement="comment")
    text = render_job_set(dp, command="awk '{{print $1}}' {id}.txt")["0001-a.sh"]
    line = next(x for x in text.splitlines() if x.startswith("bash -c "))
    assert shlex.split(line) == ["bash", "-c", "awk '{print $1}' a.txt"]


FAKE_SBATCH = """#!/bin/bash
# Stand-in sbatch: logs its arguments, prints the next job id (fails on job $FAIL_AT).
n=$(( $(wc -l < "$FAKE_LOG") + 1 ))
echo "sbatch $*" >> "$FAKE_LOG"
if [ "${FAIL_AT:-0}" -eq "$n" ]; then
    echo "sbatch: error: Batch job submission failed" >&2
    exit 1
fi
echo "$((100 + n));wass"
"""


@pytest.fixture()
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sbatch, scontrol and scancel stand-ins on PATH that log to ``calls.log``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    for cmd in ("scontrol", "scancel"):
        (bindir / cmd).write_text(f'#!/bin/bash\necho "{cmd} $*" >> "$FAKE_LOG"\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def _diamond() -> Workflow:
    return Workflow.from_arrays(
        [2.0, 3.0, 5.0, 1.0], [(0, 1), (0, 2), (1, 3), (2, 3)], ids=["a", "b", "c", "d"]
    )


def test_submit_script_submits_held_in_order_with_dependencies(
    tmp_path: Path, fake_slurm: Path
) -> None:
    dp = make_deploy_plan(_diamond(), _cluster())
    d = write_job_set(dp, tmp_path / "jobs", sleep=True)
    subprocess.run(["bash", str(d / "submit.sh")], check=True, capture_output=True, cwd=tmp_path)
    calls = fake_slurm.read_text().splitlines()
    order = [dp.workflow.ids[t] for t in dp.submission_order()]
    assert order[0] == "a" and order[-1] == "d"
    job = {tid: str(101 + k) for k, tid in enumerate(order)}
    rows = [line.split("\t") for line in (d / "jobids.tsv").read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [(tid, job[tid]) for tid in order]
    sbatch = [c for c in calls if c.startswith("sbatch")]
    assert len(sbatch) == 4 and all("--parsable --hold" in c for c in sbatch)
    deps = {row[0]: c for row, c in zip(rows, sbatch, strict=True)}
    assert "--dependency" not in deps["a"]
    assert f"--dependency=afterok:{job['a']} " in deps["b"]
    first, second = sorted((job["b"], job["c"]), key=int)
    assert f"--dependency=afterok:{first}:{second} " in deps["d"]
    assert f"--chdir={tmp_path}" in deps["a"] and f"--output={d}/log/" in deps["a"]
    assert calls[-1] == "scontrol release " + ",".join(job[t] for t in order)
    # A second submission of the same job set is refused.
    again = subprocess.run(["bash", str(d / "submit.sh")], capture_output=True, text=True)
    assert again.returncode == 1 and "submitted already" in again.stderr


def test_failed_submission_cancels_what_was_submitted(
    tmp_path: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_AT", "3")
    d = write_job_set(make_deploy_plan(_diamond(), _cluster()), tmp_path / "jobs", sleep=True)
    out = subprocess.run(["bash", str(d / "submit.sh")], capture_output=True, text=True)
    assert out.returncode == 1
    assert "failed; cancelling the 2 jobs submitted so far" in out.stderr
    calls = fake_slurm.read_text().splitlines()
    assert calls[-1] == "scancel 101 102" and not any(c.startswith("scontrol") for c in calls)
    assert not (d / "jobids.tsv").exists() and not (d / "jobids.tsv.partial").exists()


def test_job_script_records_times_node_and_exit_code(tmp_path: Path) -> None:
    wf = Workflow.from_arrays([1.0, 1.0], [(0, 1)], ids=["ok", "bad"], command=["true", "exit 3"])
    d = write_job_set(make_deploy_plan(wf, _cluster()), tmp_path / "jobs")
    (d / "times").mkdir()
    env = dict(os.environ, SLURM_SUBMIT_DIR=str(d), SLURMD_NODENAME="n2")
    codes = [
        subprocess.run(["bash", str(d / s)], env=env, cwd=tmp_path).returncode
        for s in ("0001-ok.sh", "0002-bad.sh")
    ]
    assert codes == [0, 3]
    rows = [line.split("\t") for line in (d / "times" / "0002-bad.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == ["start", "end"] and rows[0][2] == "n2" and rows[1][2] == "3"
    assert 0 <= float(rows[1][1]) - float(rows[0][1]) < 5


def test_jobs_that_could_overtake_on_their_node_wait_for_the_one_ahead() -> None:
    # One node with 2 cores. a (1 core, 10 s) and e (1 core, 2 s) start at 0; b (2 cores) must
    # wait for a; d (1 core, 20 s, parent e) does not fit in the 8 s gap before b, so the plan
    # runs it after b, next to f. On Slurm d would start at 2 s on the free core and hold b.
    wf = Workflow.from_arrays(
        [10, 2, 1, 20, 50],
        [(0, 2), (1, 3), (2, 4)],
        ids=["a", "e", "b", "d", "f"],
        cores=[1, 1, 2, 1, 1],
    )
    dp = make_deploy_plan(wf, Cluster([1.0], [2], node_name=["n1"]))
    p = dp.plan
    assert [wf.ids[t] for t in p.node_order(0)] == ["a", "e", "b", "f", "d"]
    assert (p.start[3], p.release[3]) == (11.0, 2.0)
    assert node_order_guards(dp) == {3: [2, 4]}  # d waits for b and f to have started
    submit = render_job_set(dp, sleep=True)["submit.sh"]
    assert "submit d 0005-d.sh afterok:$j2,after:$j3:$j4; j5=$job" in submit
    assert "after:" not in render_job_set(dp, sleep=True, keep_order=False)["submit.sh"]


def test_job_set_is_all_or_nothing(tmp_path: Path) -> None:
    dp = make_deploy_plan(_diamond(), _cluster())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(JobSetError, match="full exists and is not an empty directory"):
        write_job_set(dp, tmp_path / "full", sleep=True)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x"]
    (tmp_path / "empty").mkdir()
    write_job_set(dp, tmp_path / "empty", sleep=True)
    assert len(list((tmp_path / "empty").iterdir())) == 5
    with pytest.raises(JobSetError):
        write_job_set(dp, tmp_path / "none")  # no commands: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]


# ---------------------------------------------------------------------------- the command line
def _files(tmp_path: Path) -> tuple[Path, Path]:
    wf = tmp_path / "wf.json"
    tasks = [
        ("a", [], "prep"),
        ("b", ["a"], "work 1"),
        ("c", ["a"], "work 2"),
        ("d", ["b", "c"], ""),
    ]
    wf.write_text(
        json.dumps(
            {
                "name": "wf",
                "schemaVersion": "1.5",
                "workflow": {
                    "specification": {
                        "tasks": [
                            {
                                "name": t,
                                "id": t,
                                "parents": p,
                                "children": [c for c, pp, _ in tasks if t in pp],
                            }
                            for t, p, _ in tasks
                        ]
                    },
                    "execution": {
                        "tasks": [
                            {
                                "id": t,
                                "runtimeInSeconds": 4.0,
                                "coreCount": 2,
                                "command": {"program": cmd.split()[0], "arguments": cmd.split()[1:]}
                                if cmd
                                else {},
                            }
                            for t, _, cmd in tasks
                        ]
                    },
                },
            }
        )
    )
    cl = tmp_path / "cl.yaml"
    cl.write_text(
        "nodes:\n"
        + "".join(
            f"  - {{name: {n['name']}, speed: {n['speed']}, cores: {n['cores']}, "
            f"memory_gib: {n['memory_gib']}}}\n"
            for n in NODES
        )
    )
    return wf, cl


def test_wass_plan_writes_plan_and_job_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf, cl = _files(tmp_path)
    out, jobs = tmp_path / "plan.json", tmp_path / "jobs"
    args = [str(wf), "--cluster", str(cl), "--explain", "-o", str(out), "--slurm", str(jobs)]
    assert wass(["plan", *args, "--sleep", "--scheduler", "peft"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("wass plan: 4 tasks on 4 nodes, estimated makespan ")
    doc = json.loads(out.read_text())
    assert doc["scheduler"] == "peft" and len(doc["tasks"]) == 4
    assert doc["tasks"][0]["command"] == "prep" and "explanation" in doc["tasks"][0]
    assert len(list(jobs.glob("*.sh"))) == 5
    # Without -o the plan goes to stdout.
    assert wass(["plan", str(wf), "--cluster", str(cl)]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"][0]["id"] == "a"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"workflow": "missing.json"}, r"missing\.json: cannot read file"),
        (
            {"cluster": "bad.yaml"},
            r"bad\.yaml: nodes\[0\]\.cores: must be a whole number, got 1\.5",
        ),
        (
            {"cluster": "host.yaml"},
            r"host\.yaml: nodes\[0\]\.name: 'node_1' is not a valid hostname",
        ),
        ({"scheduler": "fastest"}, r"--scheduler: unknown scheduler 'fastest'; registered: "),
        ({"scheduler": "toy:m.zip"}, r"unknown scheduler 'toy' \('toy' takes a checkpoint"),
        ({"scheduler": "policy:m.zip"}, r"cannot load 'policy' from checkpoint 'm\.zip'"),
        ({"slurm": "taken"}, r"--slurm: .*taken exists and is not an empty directory"),
        ({"command": None}, r"wf\.json has no command; give --command TEMPLATE or --sleep"),
        ({"command": "run {task}"}, r"--command: unknown placeholder \{task\}"),
    ],
)
def test_wass_plan_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    wf, cl = _files(tmp_path)
    (tmp_path / "bad.yaml").write_text("nodes: [{name: n1, speed: 1, cores: 1.5, memory_gib: 1}]")
    (tmp_path / "host.yaml").write_text(
        "nodes: [{name: node_1, speed: 1, cores: 1, memory_gib: 1}]"
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.sh").write_text("")
    files = {"workflow": wf, "cluster": cl, "slurm": tmp_path / "jobs"}
    files.update({k: tmp_path / v for k, v in change.items() if k in files})
    scheduler = change.get("scheduler", "heft")
    command = change.get("command", "run {id}")
    argv = ["plan", str(files["workflow"]), "--cluster", str(files["cluster"])]
    argv += ["--scheduler", scheduler, "-o", str(tmp_path / "plan.json")]
    argv += ["--slurm", str(files["slurm"])] + (["--command", command] if command else [])
    before = sorted(p.name for p in tmp_path.iterdir())
    assert wass(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_wass_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    assert wass(["--help"]) == 0
    listed = capsys.readouterr().out.splitlines()[1]
    assert listed.startswith("commands: ") and "plan" in listed[len("commands: ") :].split(", ")
    assert wass([]) == 2
    assert wass(["frobnicate"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("wass: unknown command 'frobnicate'; commands: ") and "plan" in err
    assert wass(["plan", "--bogus"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_installed_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "wass"
    if not exe.exists():
        exe = Path(shutil.which("wass") or "")
    if not exe.is_file():
        pytest.skip("the wass console script is not installed (pip install -e .)")
    wf, cl = _files(tmp_path)
    ok = subprocess.run(
        [str(exe), "plan", str(wf), "--cluster", str(cl)], capture_output=True, text=True
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["format"] == "wass-plan/1"
    bad = subprocess.run(
        [str(exe), "plan", str(wf), "--cluster", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


@pytest.mark.slow  # builds a MaskablePPO model (about 5-10 s)
def test_wass_plan_with_a_policy_checkpoint(tmp_path: Path) -> None:
    # An untrained but saved MaskablePPO policy: `--scheduler policy:CKPT` goes through the
    # registry; the node marked down is masked out, so the policy never picks it.
    from agents.ppo import MaskablePPOAgent, make_vec

    kw = {"workload": {"generator": "layered", "n_tasks": [4, 8]}, "cluster": "het16"}
    agent = MaskablePPOAgent(env_kwargs=kw, seed=0)
    agent.build(make_vec(kw, 1, 0))
    ckpt = agent.save(tmp_path / "model.zip")
    wf, _ = _files(tmp_path)
    cl = tmp_path / "down.yaml"
    cl.write_text(
        "nodes:\n"
        + "".join(f"  - {{name: n{i}, speed: 1.0, cores: 4, memory_gib: 8}}\n" for i in (1, 2))
        + "  - {name: n3, speed: 4.0, cores: 4, memory_gib: 8, down: true}\n"
    )
    out = tmp_path / "plan.json"
    argv = ["plan", str(wf), "--cluster", str(cl), "--scheduler", f"policy:{ckpt}", "-o", str(out)]
    assert wass(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["scheduler"] == f"policy:{ckpt}" and doc["fallbacks"] == 0
    assert {t["node"] for t in doc["tasks"]} <= {"n1", "n2"}
