"""Bad input, kind by kind: each is refused at its root with one line naming the field and value.

Kinds: derived values that overflow, huge integers, the JSON parser's own failures and DAX
number syntax, env actions and ``reset`` options, the command-line boundary (Hydra included) and
the typed agent and teacher configs, checkpoints without their settings, knowledge-base index
arrays, and temporary files left behind by a killed writer.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from agents.config import register_configs
from agents.train import TrainConfigError, check_config
from wass_env.cli import (
    ArgumentParser,
    OutputPathError,
    check_output_dir,
    check_output_file,
    cli,
    one_line,
    run_cli,
    user_error,
)
from wass_env.envs.wass_sched import ActionError, EnvConfigError, WassSchedEnv
from wass_env.errors import WassError
from wass_env.io import atomic_path, atomic_write, atomic_write_text
from wass_env.limits import MAX_COUNT, bad_counts, whole_number
from wass_env.sim.cluster import Cluster, ClusterError, cluster_from_spec, make_cluster
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow, WorkflowError
from wass_env.workloads import WorkloadError, load_workflow, make_sampler
from wass_env.workloads.wfformat import parse_wfformat

REPO = Path(__file__).resolve().parents[1]
TINY = float(np.finfo(np.float64).tiny)


def _wf15(runtime: object = 1.0, cores: object = 1) -> dict:
    """A one-task WfFormat 1.5 instance."""
    return {
        "name": "one",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {"tasks": [{"id": "a", "name": "a", "parents": [], "children": []}]},
            "execution": {"tasks": [{"id": "a", "runtimeInSeconds": runtime, "coreCount": cores}]},
        },
    }


# ---------------------------------------------------------------------------------------------
# derived values


def test_derived_values_sums_that_overflow_are_refused() -> None:
    with pytest.raises(WorkflowError, match=r"field 'work' sums to inf over 2 tasks"):
        Workflow.from_arrays([1e308, 1e308])
    with pytest.raises(WorkflowError, match=r"field 'bytes' sums to inf over 2 edges"):
        Workflow.from_arrays([1.0, 1.0, 1.0], [(0, 1), (0, 2)], [1e308, 1e308])
    # Every quotient work / speed is checked: 1e308 / 0.5 overflows.
    with pytest.raises(
        WorkflowError, match=r"task 't0' would run inf s on node 0 .*'work' 1e\+308"
    ):
        Problem(Workflow.from_arrays([1e308]), Cluster([0.5], [8]))
    # 1e10 bytes over 1e-300 bytes/s: finite inputs, infinite transfer time.
    wf = Workflow.from_arrays([1.0, 1.0], [(0, 1)], [1e10])
    with pytest.raises(WorkflowError, match=r"transfer times \(edge field 'bytes' / bandwidth\)"):
        Problem(wf, Cluster([1.0, 1.0], [8], bandwidth=1e-300))
    # A rate below the smallest normal float has no finite reciprocal.
    with pytest.raises(ClusterError, match=r"'bandwidth' must be finite and >= 2.225e-308"):
        Cluster([1.0, 1.0], [8], bandwidth=5e-324)
    # Times 1e-200 s next to transfers of seconds: every ratio to the lower bound would overflow.
    tiny_work = Workflow.from_arrays([1e-200, 1e-200], [(0, 1)], [1.25e9])
    with pytest.raises(WorkflowError, match=r"span too wide a range"):
        Problem(tiny_work, make_cluster("homogeneous", 2))


def test_derived_values_extreme_but_valid_instances_stay_finite() -> None:
    # One task of 1e300 s: lower bound = makespan = 1e300, so the sparse reward is exactly -1.
    env = WassSchedEnv(workload=Workflow.from_arrays([1e300]), cluster=Cluster([1.0], [8]))
    obs, _ = env.reset(seed=0)
    assert obs["task"][0] == pytest.approx(1.0)  # mean runtime / lower bound
    obs, reward, done, _, info = env.step(0)
    assert done and reward == -1.0 and info["ratio_to_lower_bound"] == 1.0
    # Subnormal runtimes: the time unit is floored at the smallest normal float, so 1 / scale
    # is finite and nothing is NaN: the chain takes 2e-310 s, the reward is -2e-310 / TINY.
    wf = Workflow.from_arrays([1e-310, 1e-310], [(0, 1)])
    env = WassSchedEnv(workload=wf, cluster=Cluster([1.0], [8]))
    obs, _ = env.reset(seed=0)
    assert all(np.all(np.isfinite(v)) for v in obs.values())
    env.step(0)
    obs, reward, done, _, _ = env.step(0)
    assert done and reward == pytest.approx(-2e-310 / TINY) and math.isfinite(reward)
    # No work at all: the serial time (one transfer of 1.25e9 bytes at 1.25e9 B/s) is the unit.
    wf = Workflow.from_arrays([0.0, 0.0], [(0, 1)], [1.25e9])
    p = Problem(wf, Cluster([1.0, 1.0], [8], bandwidth=1.25e9, latency=0.0))
    assert p.lower_bound() == 0.0 and p.serial_time() == pytest.approx(1.0)


def test_derived_values_reward_weights_must_be_finite() -> None:
    for weight, shown in ((float("nan"), "nan"), ("x", "'x'"), (1e7, "10000000.0"), (None, "None")):
        with pytest.raises(EnvConfigError) as excinfo:
            WassSchedEnv(reward_weights={"progress": weight})
        assert str(excinfo.value) == (
            f"reward_weights['progress']: must be a number in [-1e+06, 1e+06], got {shown}"
        )


# ---------------------------------------------------------------------------------------------
# huge integers


def test_huge_integers_limits() -> None:
    assert whole_number(2.0) == 2 and whole_number(np.int64(7)) == 7
    assert whole_number(MAX_COUNT) == MAX_COUNT
    for bad in (0, 2.5, MAX_COUNT + 1, 1e19, 10**400, float("nan"), True, "3", None, 1 + 0j):
        with pytest.raises(ValueError, match=r"must be a whole number in \[1, 2147483647\]"):
            whole_number(bad)
    values = np.array([1.0, 1e19, 2.5, 0.0, np.nan, 8.0, np.inf, 2.0**31])
    assert bad_counts(values).tolist() == [1, 2, 3, 4, 6, 7]


def test_huge_integers_are_refused_before_the_cast() -> None:
    with pytest.raises(WorkflowError, match=r"'cores' must be a whole number .*got 1e\+19"):
        Workflow.from_arrays([1.0], cores=[1e19])
    with pytest.raises(ClusterError, match=r"node 0: field 'cores' .*got 1e\+19"):
        Cluster([1.0], [1e19])
    with pytest.raises(ClusterError, match=r"node_types\['big'\]: cores must be .*10000000000"):
        cluster_from_spec({"kind": "het", "n_nodes": 2, "node_types": {"big": [1, 10**19, 4]}})
    with pytest.raises(ClusterError, match=r"n_nodes must be a whole number .*got 10000000000"):
        cluster_from_spec({"kind": "hom", "n_nodes": 10**19})
    with pytest.raises(WorkloadError, match=r"workload.cores: values must be a whole number"):
        make_sampler({"generator": "chain", "n_tasks": 3, "cores": 10**19})
    with pytest.raises(
        WorkloadError, match=r"n_tasks: an integer range needs whole numbers: .*1000"
    ):
        make_sampler({"generator": "layered", "n_tasks": [10**19, 10**20]})
    with pytest.raises(EnvConfigError, match=r"max_nodes: must be a whole number .*got 1e\+19"):
        WassSchedEnv(max_nodes=1e19)
    with pytest.raises(WorkloadError) as excinfo:
        parse_wfformat(_wf15(cores=10**19), source="w.json")
    assert str(excinfo.value) == (
        "w.json: workflow.execution.tasks[0].coreCount: must be a whole number in "
        "[1, 2147483647], got 10000000000000000000"
    )
    # The largest count is accepted, and sums of it do not wrap.
    wf = Workflow.from_arrays([1.0, 1.0], cores=[MAX_COUNT, MAX_COUNT])
    assert int(wf.cores.sum()) == 2 * MAX_COUNT


# ---------------------------------------------------------------------------------------------
# the JSON parser's own failures, DAX number syntax


def test_json_parser_failures_name_the_file(tmp_path: Path) -> None:
    cases = {
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply for the JSON parser"),
        "digits.json": (
            json.dumps(_wf15()).replace(
                '"runtimeInSeconds": 1.0', '"runtimeInSeconds": ' + "9" * 5000
            ),
            "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion",
        ),
        "big.json": (
            json.dumps(_wf15(runtime=10**400)),
            "runtimeInSeconds: must be a finite number, got 1000000000000000000000000000000",
        ),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(WorkloadError) as excinfo:
            load_workflow(path)
        err = str(excinfo.value)
        assert err.startswith(f"{path}: ") and message in err and "\n" not in err
        assert "set_int_max_str_digits" not in err  # no advice to change the interpreter
    # The same integers in an already parsed document.
    with pytest.raises(WorkloadError, match=r"runtimeInSeconds: must be a finite number, got an"):
        parse_wfformat(_wf15(runtime=10**5000), source="x")


def _dax(runtime: str) -> str:
    return f'<adag><job id="a" name="p" runtime="{runtime}"/></adag>'


def test_dax_numbers_follow_the_xml_schema_syntax(tmp_path: Path) -> None:
    path = tmp_path / "w.xml"
    for raw in ("5_000", "infinity", "nan", "0x10", "1e", "\u0661", ""):  # U+0661: Arabic 1
        path.write_text(_dax(raw))
        with pytest.raises(WorkloadError) as excinfo:
            load_workflow(path)
        assert (
            str(excinfo.value) == f"{path}: /adag/job[1]/@runtime: expected a number, got {raw!r}"
        )
    for raw, value in ((" 7 ", 7.0), ("1E+3", 1000.0), (".5", 0.5), ("5.", 5.0), ("+2", 2.0)):
        path.write_text(_dax(raw))
        assert load_workflow(path).work.tolist() == [value]
    path.write_text(_dax("1e400"))
    with pytest.raises(WorkloadError, match=r"must be a finite number >= 0, got '1e400'"):
        load_workflow(path)


# ---------------------------------------------------------------------------------------------
# env actions and reset options


def _env(**kwargs: object) -> WassSchedEnv:
    wf = Workflow.from_arrays([2.0, 3.0, 1.0], [(0, 1), (0, 2)], cores=[1, 4, 1])
    # Task 1 needs 4 cores: it fits nodes 0 and 2, not node 1.
    return WassSchedEnv(workload=wf, cluster=Cluster([1.0, 2.0, 1.0], [4, 2, 8]), **kwargs)


def test_env_actions_accept_integers_only() -> None:
    env = _env(max_nodes=4)
    env.reset(seed=0)
    refused = [1.7, np.float64(2.0), 2.0, "1", float("nan"), True, np.bool_(True), None, [1]]
    refused += [np.array([1, 2]), np.array([1.0]), np.array([[0, 1]]), np.array([], dtype=int)]
    for action in refused:
        with pytest.raises(ActionError, match=r"^action: expected a node index") as excinfo:
            env.step(action)
        assert "\n" not in str(excinfo.value)
        assert env.current_task == 0 and env.builder.n_placed == 0  # nothing changed
    # Accepted: Python and NumPy integers and integer arrays of size 1, each to its own node.
    for action, node in ((np.array([0]), 0), (np.int8(2), 2), (np.array(0, dtype=np.uint16), 0)):
        task = env.current_task
        _, _, _, _, info = env.step(action)
        assert int(env.builder.node[task]) == node and info["illegal_action"] is False
    assert env.builder.done


def test_env_actions_out_of_range_take_the_illegal_path() -> None:
    for action in (-1, 4, 10**30, np.uint64(2**64 - 1), 3):  # 3 is padding (max_nodes=4)
        env = _env(max_nodes=4)
        env.reset(seed=0)
        env.step(0)
        task = env.current_task  # task 1: fits nodes 0 and 2
        _, _, _, _, info = env.step(action)
        assert info["illegal_action"] is True and info["rewards"]["illegal"] == -1.0
        assert int(env.builder.node[task]) == 0  # the lowest feasible node
    env = _env(illegal_action="raise")
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(ActionError, match=r"illegal action 1 for task 't1': feasible .*\[0, 2\]"):
        env.step(1)  # node 1 has 2 cores, the task needs 4


def test_env_reset_options_are_checked() -> None:
    env = _env()
    problem = Problem(env.workload.sample(np.random.default_rng(0)), env.clusters[0])
    cases = [
        (
            "x",
            "reset: options must be a dict with keys from ('problem', 'workflow', 'cluster'), "
            "got 'x' (str)",
        ),
        ({"problem": None}, "reset: options['problem'] must be a Problem, got None (NoneType)"),
        ({"problem": "p"}, "reset: options['problem'] must be a Problem, got 'p' (str)"),
        ({"workflow": 3}, "reset: options['workflow'] must be a Workflow, got 3 (int)"),
        (
            {"seed": 1},
            "reset: unknown option 'seed'; options are ('problem', 'workflow', 'cluster')",
        ),
        (
            {"problem": problem, "cluster": "het16"},
            "reset: options['problem'] is a whole instance; it cannot be combined with ['cluster']",
        ),
        (
            {"cluster": None},
            "reset: options['cluster']: a cluster spec must be a preset name or a mapping, "
            "got None",
        ),
    ]
    for options, message in cases:
        with pytest.raises(EnvConfigError) as excinfo:
            env.reset(seed=0, options=options)
        assert str(excinfo.value) == message
    # Valid options still work: the given problem is scheduled.
    env.reset(seed=0, options={"problem": problem})
    assert env.problem is problem
    env.reset(seed=0, options={})
    env.reset(seed=0, options=None)


# ---------------------------------------------------------------------------------------------
# the command-line boundary


def test_cli_boundary_reports_user_errors_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fails(exc: BaseException) -> int:
        raise exc

    assert run_cli(fails, WorkflowError("task 't0': field 'work' must be >= 0, got -1")) == 2
    assert capsys.readouterr().err == "error: task 't0': field 'work' must be >= 0, got -1\n"
    assert run_cli(fails, PermissionError(13, "Permission denied", "/x/y")) == 2
    assert capsys.readouterr().err == "error: /x/y: Permission denied\n"
    assert run_cli(fails, FileNotFoundError("teacher.kb: 'k.wkb' does not exist")) == 2
    assert capsys.readouterr().err == "error: teacher.kb: 'k.wkb' does not exist\n"
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_cli(lambda: 1 / 0)
    assert run_cli(lambda: 3) == 3 and run_cli(lambda: None) == 0
    assert user_error(KeyError("x")) is None and user_error(RuntimeError("x")) is None

    @cli
    def main(argv: list[str] | None = None) -> int:
        ap = ArgumentParser()
        ap.add_argument("--n", type=int)
        ap.parse_args(argv)
        raise WassError("--n: bad\n  value")

    with pytest.raises(SystemExit) as exit_info:
        main(["--n", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: argument --n: invalid int value: 'x'\n"
    assert main(["--n", "1"]) == 2 and capsys.readouterr().err == "error: --n: bad; value\n"


def test_cli_one_line_joins_hydra_style_messages() -> None:
    text = (
        "In 'train': Could not find 'cluster/nope'\n\nAvailable options in 'cluster':\n"
        "\thet16\n\thom16\nConfig search path:\n\tprovider=hydra"
    )
    assert one_line(text) == (
        "In 'train': Could not find 'cluster/nope'; Available options in 'cluster': het16, hom16"
    )
    assert one_line("Key 'x' not in 'T'\n    full_key: x\n    object_type=T") == (
        "Key 'x' not in 'T'; full_key: x"
    )


def test_cli_output_dir_is_checked_without_creating_it(tmp_path: Path) -> None:
    afile = tmp_path / "a_file"
    afile.write_text("")
    assert check_output_dir(tmp_path / "new" / "deeper", "--out") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputPathError) as excinfo:
        check_output_dir(afile / "sub", "--out")
    assert str(excinfo.value) == (
        f"--out='{afile / 'sub'}': cannot be created or written: '{afile}' is not a directory"
    )
    with pytest.raises(OutputPathError, match=r"hydra.run.dir=.*: '.*a_file' is not a directory"):
        check_output_dir(afile, "hydra.run.dir")
    assert check_output_file(tmp_path / "x" / "kb.wkb", "--out") == tmp_path / "x" / "kb.wkb"
    with pytest.raises(OutputPathError, match=r"--out=.*: is a directory, expected a file name"):
        check_output_file(tmp_path, "--out")


def _compose(*overrides: str):  # type: ignore[no-untyped-def]
    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        base = [
            "workload=layered",
            "cluster=het16",
            "imitation.episodes=0",
            "train.total_timesteps=1000",
        ]
        return compose("train", overrides=[*base, "workload.n_tasks=[6,10]", *overrides])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed: must be an integer in [0, 4294967295], got -1"),
        ("agent.n_steps=0", "agent.n_steps: must be an integer in [1, 2147483647], got 0"),
        ("agent.batch_size=0", "agent.batch_size: must be an integer in [2, 2147483647]"),
        ("agent.learning_rate=-0.1", "agent.learning_rate: must be a finite number > 0, got -0.1"),
        ("agent.gamma=1.5", "agent.gamma: must be in [0, 1], got 1.5"),
        ("agent.net_arch=[0]", "agent.net_arch: must be a non-empty list of layer widths"),
        ("train.eval_freq=-5", "train.eval_freq: must be an integer in [0, 4611686018427387904]"),
        ("env.noise=nan", "env.noise: must be a finite number >= 0, got nan"),
        ("env.reward_weights.illegal=inf", "reward_weights['illegal']: must be a number"),
        ("agent.n_steps=" + "1" * 400, "agent.n_steps: must be an integer in [1, 2147483647]"),
        ("train.n_envs=4096", "train.n_envs: must be an integer in [1, 1024], got 4096"),
    ],
)
def test_cli_agent_hyperparameters_are_checked(override: str, message: str) -> None:
    with pytest.raises(WassError) as excinfo:
        check_config(_compose(override))
    assert message in str(excinfo.value)


def test_cli_policy_prior_must_be_a_lookahead_column() -> None:
    with pytest.raises(TrainConfigError) as excinfo:
        check_config(_compose("agent.features_extractor_kwargs.prior=finish"))
    assert "prior: 'finish' is not a lookahead column" in str(excinfo.value)
    check_config(_compose("agent.features_extractor_kwargs.prior=null"))


def test_cli_teacher_settings_are_checked() -> None:
    with pytest.raises(TrainConfigError, match=r"teacher.mode: must be one of .*got 'bad'"):
        check_config(_compose("teacher=rag", "teacher.mode=bad"))
    with pytest.raises(TrainConfigError, match=r"teacher.lam: must be a finite number, got nan"):
        check_config(_compose("teacher=rag", "teacher.lam=nan"))
    with pytest.raises(TrainConfigError, match=r"teacher.index: must be one of"):
        check_config(_compose("teacher=rag", "teacher.index=fast"))
    with pytest.raises(TrainConfigError, match=r"train.total_timesteps: the teacher .* got 0"):
        check_config(_compose("teacher=rag", "train.total_timesteps=0", "imitation.episodes=2"))
    check_config(_compose("teacher=rag", "teacher.mode=potential", "teacher.lam=1.0"))


def test_cli_typed_configs_refuse_wrong_types_at_compose() -> None:
    from hydra.errors import ConfigCompositionException

    for override, key in (
        ("agent.learning_rate=abc", "agent.learning_rate"),
        ("agent.n_steps=1.5", "agent.n_steps"),
        ("teacher=rag teacher.lam=x", "teacher.lam"),
    ):
        with pytest.raises(ConfigCompositionException) as excinfo:
            _compose(*override.split())
        message = user_error(excinfo.value)
        assert message is not None and f"full_key: {key}" in message and "\n" not in message
    from agents.config import TEACHER_MODES
    from teacher.teacher import REWARD_MODES

    assert TEACHER_MODES == REWARD_MODES  # agents cannot import teacher; the lists must agree


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_scripts_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Hydra app: the bad override is refused before Hydra makes the run directory.
    proc = _script(
        str(REPO / "scripts" / "train.py"),
        "agent.learning_rate=abc",
        f"hydra.run.dir={tmp_path / 'r'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: Error merging override agent.learning_rate=abc: Value 'abc' of type 'str' "
        "could not be converted to Float; full_key: agent.learning_rate"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert not (tmp_path / "r").exists()
    # The same through `wass build-kb`: the output path is checked before the build starts.
    from teacher.apps import build_kb

    afile = tmp_path / "a_file"
    afile.write_text("")
    argv = ["profile=tiny", f"out={afile / 'kb.wkb'}", f"hydra.run.dir={tmp_path / 'b'}"]
    assert build_kb(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no build progress: nothing ran
    assert (
        err == f"error: out='{afile / 'kb.wkb'}': cannot be written: '{afile}' is not a directory\n"
    )
    assert build_kb(["instances=x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Error merging override instances=x: Value 'x' of type 'str' ")
    assert err.count("\n") == 1 and "full_key: instances" in err
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_without_its_settings_file_is_refused(tmp_path: Path) -> None:
    from sb3_contrib import MaskablePPO

    from agents.ppo import CheckpointError, MaskablePPOAgent, make_vec

    env_kwargs = {"workload": {"generator": "chain", "n_tasks": 3}, "cluster": "het16"}
    venv = make_vec(env_kwargs, 1, 0)
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, seed=0)
    venv.close()
    path = MaskablePPOAgent(model, env_kwargs=env_kwargs).save(tmp_path / "model.zip")
    settings = tmp_path / "model.env_kwargs.json"
    assert MaskablePPOAgent.load(path).env_kwargs == env_kwargs
    settings.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"expected a JSON object of env settings, got list"):
        MaskablePPOAgent.load(path)
    settings.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model.env_kwargs.json: unreadable settings file"):
        MaskablePPOAgent.load(path)
    settings.unlink()
    with pytest.raises(CheckpointError) as excinfo:
        MaskablePPOAgent.load(path)
    assert str(excinfo.value) == (
        f"{path}: its settings file {settings} is missing, so the env settings the policy was "
        "trained with are unknown; copy it along with the checkpoint"
    )


# ---------------------------------------------------------------------------------------------
# persisted index arrays


@pytest.fixture(scope="module")
def tiny_base():  # type: ignore[no-untyped-def]
    from teacher.build import PROFILES, build_knowledge_base

    return build_knowledge_base(PROFILES["tiny"])


def _tampered(src: Path, dst: Path, **changes: np.ndarray | None) -> Path:
    """``src`` with some arrays replaced (None: removed), written with a valid checksum."""
    from teacher.kb import FORMAT_VERSION, KIND
    from teacher.storage import read_arrays, write_arrays

    arrays, meta = read_arrays(src, kind=KIND, version=FORMAT_VERSION)
    arrays = dict(arrays)
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    write_arrays(dst, arrays, kind=KIND, version=FORMAT_VERSION, meta=meta)
    return dst


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_persisted_index_arrays_round_trip(tiny_base, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    from teacher.kb import KnowledgeBase

    kb = KnowledgeBase.load(_saved(tiny_base, tmp_path / "a.wkb"))
    kb.index(kind)
    kb.save(tmp_path / "b.wkb")
    back = KnowledgeBase.load(tmp_path / "b.wkb")
    # The index rebuilt from the checked arrays is FAISS's very index, byte for byte.
    assert back.index().to_bytes() == kb.index().to_bytes()
    q = kb.keys[[0, 7, 100]]
    np.testing.assert_array_equal(back.search(q, 5)[1], kb.search(q, 5)[1])


def _saved(kb, path: Path) -> Path:  # type: ignore[no-untyped-def]
    kb.save(path)
    return path


def test_persisted_blobs_with_a_valid_checksum_are_checked(tiny_base, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from teacher.kb import KnowledgeBase, KnowledgeBaseError

    kb = KnowledgeBase.load(_saved(tiny_base, tmp_path / "a.wkb"))
    kb.index("hnsw")
    good = _saved(kb, tmp_path / "h.wkb")
    n = len(kb)
    arrays = {k: v for k, v in _read(good).items() if k.startswith("index_")}
    nb = arrays["index_hnsw_neighbors"].copy()
    nb[5] = n + 1000  # a neighbour id past the end: FAISS would read out of bounds
    off = arrays["index_hnsw_offsets"].copy()
    off[-1] += 64
    entry = np.array([n + 3, 0], dtype=np.int64)
    cases = {
        "neighbors": (
            {"index_hnsw_neighbors": nb},
            rf"hnsw_neighbors: ids must be in \[-1, {n - 1}\]",
        ),
        "offsets": ({"index_hnsw_offsets": off}, r"hnsw_offsets: do not match"),
        "entry": ({"index_hnsw_entry": entry}, rf"hnsw_entry: entry point {n + 3}"),
        "missing": ({"index_hnsw_levels": None}, r"hnsw_levels: missing"),
        "dtype": (
            {"index_hnsw_levels": arrays["index_hnsw_levels"].astype(np.int64)},
            r"hnsw_levels: expected int32",
        ),
    }
    for name, (changes, message) in cases.items():
        bad = _tampered(good, tmp_path / f"{name}.wkb", **changes)
        with pytest.raises(
            KnowledgeBaseError, match=rf"{name}.wkb: corrupted stored index \({message}"
        ):
            KnowledgeBase.load(bad)
    kb.index("ivf")
    good_ivf = _saved(kb, tmp_path / "i.wkb")
    cent = _read(good_ivf)["index_ivf_centroids"].copy()
    cent[0, 0] = np.nan
    with pytest.raises(KnowledgeBaseError, match=r"ivf_centroids: not finite"):
        KnowledgeBase.load(_tampered(good_ivf, tmp_path / "nan.wkb", index_ivf_centroids=cent))
    # A FAISS blob (what older versions stored) is garbage here: never deserialised, the
    # index is rebuilt from the keys, and every record is its own nearest neighbour.
    garbage = np.frombuffer(b"IHNf" + bytes(range(256)) * 8, dtype=np.uint8)
    old = _tampered(
        good,
        tmp_path / "old.wkb",
        index_blob=garbage,
        **{k: None for k in arrays},
    )
    back = KnowledgeBase.load(old)
    sims, _ = back.search(back.keys[:20], 1)
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)


def _read(path: Path) -> dict[str, np.ndarray]:
    from teacher.kb import FORMAT_VERSION, KIND
    from teacher.storage import read_arrays

    return dict(read_arrays(path, kind=KIND, version=FORMAT_VERSION)[0])


# ---------------------------------------------------------------------------------------------
# temporary files


def test_stale_temporary_files_are_removed_on_the_next_save(tmp_path: Path) -> None:
    from agents.evaluation import write_csv

    stale = [
        ".results.csv.k3j_x9ab.tmp",
        ".model.zip.ab12cd34.tmp.zip",
        ".kb.wkb.zz99zz99.tmp",
        ".plot.png.a1b2c3d4.tmp",
    ]
    keep = [".results.csv.backup", "results.csv.tmp", ".other.csv.k3j_x9ab.tmp", ".model.zip"]
    for name in stale + keep:
        (tmp_path / name).write_text("left by a killed writer")
    write_csv([{"a": 1}], tmp_path / "results.csv")
    with atomic_path(tmp_path / "model.zip", suffix=".zip") as tmp:
        assert re.fullmatch(r"\.model\.zip\.[A-Za-z0-9_]+\.tmp\.zip", tmp.name)
        tmp.write_bytes(b"zip")
    from teacher.storage import write_arrays

    write_arrays(tmp_path / "kb.wkb", {"x": np.zeros(3)}, kind="k", version=1)
    atomic_write(tmp_path / "plot.png", b"png")
    atomic_write_text(tmp_path / "notes.txt", "x")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*keep, "kb.wkb", "model.zip", "notes.txt", "plot.png", "results.csv"])


def test_every_writer_goes_through_the_atomic_writer() -> None:
    """No module writes a file except through wass_env.io (or into a private temp directory)."""
    direct = re.compile(
        r"open\([^)]*['\"][wax]b?\+?['\"]|\.write_text\(|\.write_bytes\(|np\.save\(|"
        r"torch\.save\(|\.savefig\((?!tmp)|\.to_csv\("
    )
    allowed = {
        "wass_env/io.py",  # the writer itself
        "wass_env/sim/reference/simgrid_runner.py",  # writes into its caller's temp directory
        "wass_env/sim/reference/simgrid_replay.py",  # a TemporaryDirectory of its own
    }
    offenders = []
    for pkg in ("wass_env", "agents", "teacher", "scripts"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel in allowed:
                continue
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if direct.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{rel}:{i}: {line.strip()}")
    assert offenders == []
