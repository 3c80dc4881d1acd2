"""Property-based fuzzing of every input boundary (hypothesis).

Generated inputs: WfFormat JSON files, Pegasus DAX files, cluster specs, Hydra command-line
overrides, and env actions and ``reset`` options; most are valid documents with a few values
replaced by hostile ones (huge or fractional integers, NaN, infinities, numbers that overflow
when added up, strings, wrong types, deep nesting, truncation). For every input the code under
test must either refuse it with a project error (a ``WassError``, one line, naming the file or
the field) or return a valid object whose derived quantities are finite: the lower bound, the
ranks, the runtimes, the serial time and, over a whole env episode, every observation, reward
and episode metric. Any other exception (a traceback) fails the test.

The default run is bounded (a few dozen cases per target, a few seconds, derandomized). The
slow mode draws many more: ``WASS_FUZZ_EXAMPLES`` cases per target (default 2500; the Hydra
target, which composes a config per case, a tenth of it)::

    WASS_FUZZ_EXAMPLES=2500 .venv/bin/python -m pytest -m slow tests/test_fuzz.py -s -p no:xdist

and prints how many cases each target ran and how they ended.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wass_env.cli import compose_overrides, user_error
from wass_env.envs.wass_sched import ActionError, EnvConfigError, WassSchedEnv
from wass_env.errors import WassError
from wass_env.sim.cluster import Cluster, cluster_from_spec, make_cluster
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow
from wass_env.workloads import load_workflow

REPO = Path(__file__).resolve().parents[1]
SLOW_EXAMPLES = int(os.environ.get("WASS_FUZZ_EXAMPLES", "2500"))

#: (target, outcome) -> checks; outcomes: "refused" (a project error) or "valid" (an env
#: target counts each step, the others each input).
CASES: Counter[tuple[str, str]] = Counter()
#: target -> generated inputs.
EXAMPLES: Counter[str] = Counter()


def _settings(n: int, *, slow: bool) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=not slow,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _fuzz_tests(
    prop: Callable[..., None], strategy: st.SearchStrategy[Any], quick: int, slow: int
) -> tuple[Callable[[], None], Callable[[], None]]:
    """A bounded test of ``prop`` over ``strategy`` and its slow twin."""

    def quick_test(value: Any) -> None:
        prop(value)

    def slow_test(value: Any) -> None:
        prop(value)

    return (
        _settings(quick, slow=False)(given(strategy)(quick_test)),
        pytest.mark.slow(_settings(slow, slow=True)(given(strategy)(slow_test))),
    )


# ---------------------------------------------------------------------------------------------
# what a refusal and a valid object must look like


def refused(target: str, exc: BaseException, *, names: str | None = None) -> None:
    """``exc`` is a project error on one line that names ``names`` (a file or a field)."""
    if not isinstance(exc, WassError):
        raise exc
    message = str(exc)
    assert message and "\n" not in message, message
    if names is not None:
        assert names in message, (names, message)
    CASES[(target, "refused")] += 1


def check_problem(problem: Problem) -> None:
    """Every derived time of ``problem`` is finite and ordered as the bounds require."""
    for arr in (
        problem.exec_time,
        problem.mean_exec,
        problem.min_exec,
        problem.mean_comm,
        problem.stage_in,
        problem.upward_rank(),
        problem.downward_rank(),
    ):
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
    lb = problem.lower_bound()
    assert math.isfinite(lb) and lb >= 0
    assert math.isfinite(problem.critical_path()) and math.isfinite(problem.work_bound())
    assert lb <= problem.serial_time() * (1 + 1e-9) + 1e-300
    assert problem.cluster.total_cores == sum(int(c) for c in problem.cluster.cores.tolist())


def play_episode(problem: Problem, pick: int = 0, noise: float = 0.0) -> None:
    """Schedule ``problem`` in the env (feasible node number ``pick``, cyclically) and check
    every observation, reward and final metric."""
    env = WassSchedEnv(
        workload=problem.workflow,
        cluster=problem.cluster,
        max_nodes=problem.n_nodes + 1,  # one padding column
        noise=noise,
        reward_weights={"makespan": 1.0, "progress": 1.0, "illegal": 1.0},
    )
    obs, info = env.reset(seed=0, options={"problem": problem})
    done = False
    while True:
        assert env.observation_space.contains(obs), obs
        assert all(np.all(np.isfinite(v)) for v in obs.values())
        if done:
            break
        feasible = np.flatnonzero(env.action_masks())
        obs, reward, done, _, info = env.step(int(feasible[pick % feasible.size]))
        assert math.isfinite(reward), reward
        assert all(math.isfinite(v) for v in info["rewards"].values())
    for key in ("makespan", "planned_makespan", "lower_bound", "ratio_to_lower_bound", "slr"):
        assert math.isfinite(info[key]), (key, info[key])


def check_workflow(
    target: str, wf: Workflow, cluster: Cluster, pick: int, names: str | None = None
) -> None:
    """A loaded workflow on ``cluster``: refused with a project error (naming ``names``), or
    finite throughout."""
    assert math.isfinite(float(wf.work.sum())) and math.isfinite(float(wf.edge_bytes.sum()))
    assert np.all(wf.cores >= 1)
    try:
        problem = Problem(wf, cluster)
    except WassError as exc:
        refused(target, exc, names=names)
        return
    check_problem(problem)
    play_episode(problem, pick, noise=0.5 if pick % 2 else 0.0)
    CASES[(target, "valid")] += 1


# ---------------------------------------------------------------------------------------------
# values

NICE = st.one_of(st.integers(0, 10_000), st.floats(0, 1e4, allow_nan=False, allow_infinity=False))
HOSTILE = st.one_of(
    st.sampled_from(
        [
            0,
            -1,
            -0.0,
            1,
            2**31,
            2**63,
            10**19,
            10**400,
            -(10**400),
            1e19,
            1e300,
            1e308,
            -1e308,
            5e-324,
            float("nan"),
            float("inf"),
            float("-inf"),
            True,
            False,
            None,
            "",
            "1",
            "abc",
            "5_000",
            [],
            {},
            [1],
            {"a": 1},
        ]
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
)
NUMBER = st.one_of(NICE, NICE, NICE, HOSTILE)
#: Valid but extreme: zero, subnormal, huge (their sums or quotients may overflow).
EXTREME = st.one_of(
    NICE, st.sampled_from([0, 0.0, 5e-324, 1e-300, 1e-9, 1e12, 1e300, 1e308, 2**31 - 1])
)
#: How hostile a generated document is: valid values only, valid but extreme, or anything.
MODES = st.sampled_from(["clean", "clean", "clean", "extreme", "extreme", "hostile", "hostile"])


def values_for(mode: str) -> st.SearchStrategy[Any]:
    return {"clean": NICE, "extreme": EXTREME}.get(mode, NUMBER)


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 6) -> tuple[int, list[list[int]]]:
    n = draw(st.integers(1, max_tasks))
    parents = [
        sorted(draw(st.sets(st.integers(0, i - 1), max_size=min(i, 3)))) if i else []
        for i in range(n)
    ]
    return n, parents


def mutate(draw: st.DrawFn, doc: Any, rounds: int) -> Any:
    """``doc`` with ``rounds`` random leaves or subtrees replaced, deleted or duplicated."""
    doc = copy.deepcopy(doc)
    for _ in range(rounds):
        parent: Any = None
        key: Any = None
        node = doc
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 4)) > 0:
            keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
            parent, key = node, draw(st.sampled_from(keys))
            node = node[key]
        if parent is None:
            continue
        op = draw(st.sampled_from(["replace", "replace", "delete", "duplicate"]))
        if op == "replace":
            parent[key] = draw(HOSTILE)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
    return doc


# ---------------------------------------------------------------------------------------------
# WfFormat


def _wfformat_doc(draw: st.DrawFn, mode: str) -> dict[str, Any]:
    number = values_for(mode)
    core_counts = {
        "clean": st.integers(1, 4),
        "extreme": st.one_of(st.integers(1, 4), st.sampled_from([8, 16, 2**31 - 1])),
    }.get(mode, st.one_of(st.integers(1, 4), HOSTILE))
    n, parents = draw(dags())
    version = draw(st.sampled_from(["1.5", "1.6", "1.4", "1.3"]))
    children: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    runtime = [draw(number) for _ in range(n)]
    cores = [draw(core_counts) for _ in range(n)]
    size = [draw(number) for _ in range(n)]
    if version in ("1.5", "1.6"):
        tasks = [
            {
                "id": f"t{i}",
                "name": f"prog_{i:03d}",
                "parents": [f"t{p}" for p in parents[i]],
                "children": [f"t{c}" for c in children[i]],
                "inputFiles": [f"f{p}" for p in parents[i]] + ([f"in{i}"] if i == 0 else []),
                "outputFiles": [f"f{i}"],
            }
            for i in range(n)
        ]
        files = [{"id": f"f{i}", "sizeInBytes": size[i]} for i in range(n)]
        files.append({"id": "in0", "sizeInBytes": draw(number)})
        execution = [
            {
                "id": f"t{i}",
                "runtimeInSeconds": runtime[i],
                "coreCount": cores[i],
                "memoryInBytes": draw(st.one_of(st.just(1e6), number)),
                "command": {"program": f"prog{i % 2}"},
            }
            for i in range(n)
        ]
        workflow = {
            "specification": {"tasks": tasks, "files": files},
            "execution": {"makespanInSeconds": 1.0, "tasks": execution},
        }
    else:
        rkey, skey = (
            ("runtime", "size") if version == "1.3" else ("runtimeInSeconds", "sizeInBytes")
        )
        workflow = {
            "tasks": [
                {
                    "name": f"t{i}",
                    "id": f"ID{i:07d}",
                    "category": "prog",
                    rkey: runtime[i],
                    "cores": cores[i],
                    "parents": [f"t{p}" for p in parents[i]],
                    "children": [f"t{c}" for c in children[i]],
                    "files": [{"link": "output", "name": f"f{i}", skey: size[i]}]
                    + [{"link": "input", "name": f"f{p}", skey: size[p]} for p in parents[i]],
                }
                for i in range(n)
            ]
        }
    return {"name": "fuzz", "schemaVersion": version, "workflow": workflow}


@st.composite
def wfformat_files(draw: st.DrawFn) -> tuple[bytes, int]:
    mode = draw(MODES)
    doc = _wfformat_doc(draw, mode)
    if mode == "hostile":
        doc = mutate(draw, doc, draw(st.integers(0, 3)))
    text = json.dumps(doc)  # NaN and Infinity as JavaScript spells them, as json.loads reads
    edits = ["none"] * 4 + ["truncate", "deep", "digits", "bom", "bytes"]
    edit = draw(st.sampled_from(edits)) if mode == "hostile" else "none"
    if edit == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif edit == "deep":
        depth = draw(st.sampled_from([50, 2_000, 200_000]))
        text = text[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    elif edit == "digits":
        digits = "9" * draw(st.sampled_from([20, 310, 400, 5_000]))
        text = re.sub(r'("runtime(?:InSeconds)?": )[^,}]+', rf"\g<1>{digits}", text, count=1)
    data = text.encode()
    if edit == "bom":
        data = b"\xef\xbb\xbf" + data
    elif edit == "bytes":
        data = data[:10] + b"\xff\xfe\x00" + data[10:]
    return data, draw(st.integers(0, 7))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


FUZZ_CLUSTER = make_cluster("heterogeneous", 4)


def _load_case(target: str, path: Path, data: bytes, pick: int) -> None:
    EXAMPLES[target] += 1
    path.write_bytes(data)
    try:
        wf = load_workflow(path)
    except WassError as exc:
        refused(target, exc, names=str(path))
        return
    check_workflow(target, wf, FUZZ_CLUSTER, pick, names=str(path))


def _wfformat_prop(fuzz_dir: Path) -> Callable[[tuple[bytes, int]], None]:
    return lambda case: _load_case("wfformat", fuzz_dir / "w.json", *case)


@given(case=wfformat_files())
@_settings(60, slow=False)
def test_fuzz_wfformat(fuzz_dir: Path, case: tuple[bytes, int]) -> None:
    _wfformat_prop(fuzz_dir)(case)


@pytest.mark.slow
@given(case=wfformat_files())
@_settings(SLOW_EXAMPLES, slow=True)
def test_fuzz_wfformat_slow(fuzz_dir: Path, case: tuple[bytes, int]) -> None:
    _wfformat_prop(fuzz_dir)(case)


# ---------------------------------------------------------------------------------------------
# DAX

DAX_NUMBERS = st.one_of(
    st.integers(0, 10_000).map(str),
    st.floats(0, 1e4, allow_nan=False).map(repr),
    st.sampled_from(
        [
            *("5_000", "1e400", "-1e400", "nan", "inf", "-1", " 7 ", "0x1A", "1e-400", ""),
            *("1e", "١٢", "9" * 400, "9" * 5000, "1" + "0" * 308, "+5", ".5", "5.", "1E+3"),
            "1e308",
        ]
    ),
    st.text(max_size=4),
)


@st.composite
def dax_files(draw: st.DrawFn) -> tuple[bytes, int]:
    mode = draw(MODES)
    hostile = mode == "hostile"
    numbers = DAX_NUMBERS if hostile else values_for(mode).map(lambda v: repr(float(v)).lstrip("+"))
    n, parents = draw(dags())
    ids = [
        draw(st.sampled_from([f"ID{i:05d}", f"ID{i:05d}", "ID00000", ""]))
        if hostile
        else f"ID{i:05d}"
        for i in range(n)
    ]
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    edits = ["none"] * 4 + ["entities", "external", "deep", "truncate"]
    edit = draw(st.sampled_from(edits)) if hostile else "none"
    if edit == "entities":
        lines.append('<!DOCTYPE adag [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>')
    elif edit == "external":
        lines.append('<!DOCTYPE adag [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
    root = draw(st.sampled_from(["adag", "adag", "adag", "dag"])) if hostile else "adag"
    ns = ' xmlns="http://pegasus.isi.edu/schema/DAX"' if draw(st.booleans()) else ""
    lines.append(f"<{root}{ns}>")
    for i in range(n):
        runtime = draw(st.one_of(st.floats(0, 100).map(repr), numbers))
        lines.append(f'<job id={quoteattr(ids[i])} name="p{i % 2}" runtime={quoteattr(runtime)}>')
        for p in parents[i]:
            lines.append(f'<uses file="f{p}" link="input" size={quoteattr(draw(numbers))}/>')
        links = ["output", "output", "inout", "sideways"] if hostile else ["output"]
        link = draw(st.sampled_from(links))
        lines.append(f'<uses file="f{i}" link="{link}" size={quoteattr(draw(numbers))}/>')
        if edit == "entities" and i == 0:
            lines.append("<argument>&b;&b;</argument>")
        if edit == "external" and i == 0:
            lines.append("<argument>&x;</argument>")
        lines.append("</job>")
    for i in range(n):
        if parents[i] or (hostile and draw(st.integers(0, 5)) == 0):
            ps = parents[i] or [draw(st.integers(0, n))]  # maybe itself, maybe no such job
            refs = "".join(f"<parent ref={quoteattr(f'ID{p:05d}')}/>" for p in ps)
            lines.append(f"<child ref={quoteattr(ids[i])}>{refs}</child>")
    if edit == "deep":
        depth = draw(st.sampled_from([100, 10_000]))
        lines.append("<x>" * depth + "</x>" * depth)
    lines.append(f"</{root}>")
    text = "\n".join(lines)
    if edit == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode(), draw(st.integers(0, 7))


@given(case=dax_files())
@_settings(60, slow=False)
def test_fuzz_dax(fuzz_dir: Path, case: tuple[bytes, int]) -> None:
    _load_case("dax", fuzz_dir / "w.xml", *case)


@pytest.mark.slow
@given(case=dax_files())
@_settings(SLOW_EXAMPLES, slow=True)
def test_fuzz_dax_slow(fuzz_dir: Path, case: tuple[bytes, int]) -> None:
    _load_case("dax", fuzz_dir / "w.xml", *case)


# ---------------------------------------------------------------------------------------------
# cluster specs

# Node counts between 65 and MAX_COUNT are valid but large: their memory is the business of the
# cluster's node limit, not of this fuzzer. Huge counts (>= 2**31) must be refused.
NODE_COUNTS = st.one_of(
    st.integers(-3, 64), st.sampled_from([2**31, 2**63, 10**19, 10**400, 2.5, 8.0, "8", True, None])
)


def _cluster_values(mode: str) -> dict[str, st.SearchStrategy[Any]]:
    """Value pools of a cluster spec's fields for a generation mode (see ``MODES``)."""
    pools: dict[str, st.SearchStrategy[Any]] = {
        "speed": st.floats(0.1, 4),
        "cores": st.integers(1, 16),
        "memory_gib": st.floats(1, 512),
        "bandwidth": st.floats(1e3, 1e10),
        "latency": st.floats(0, 1e-3),
        "n_nodes": st.integers(1, 64),
        "name": st.just("fuzz"),
    }
    if mode == "extreme":
        extra = {
            "speed": [1e-300, 5e-324, 1e300, 1e308],
            "cores": [2**31 - 1],
            "memory_gib": [1e-300, 1e300],
            "bandwidth": [1e-300, 5e-324, 1e308],
            "latency": [0.0, 1e300],
        }
        pools.update({k: st.one_of(pools[k], st.sampled_from(v)) for k, v in extra.items()})
    elif mode == "hostile":
        pools = {k: st.one_of(v, HOSTILE) for k, v in pools.items()}
        pools["n_nodes"] = NODE_COUNTS
    return pools


@st.composite
def cluster_specs(draw: st.DrawFn) -> tuple[Any, int]:
    mode = draw(MODES)
    hostile = mode == "hostile"
    v = _cluster_values(mode)
    shapes = ["preset", "kind", "kind", "explicit"] + (["other"] if hostile else [])
    shape = draw(st.sampled_from(shapes))
    spec: Any
    if shape == "preset":
        names = ["het16", "hom16"] + (["het9", "", "HET16"] if hostile else [])
        spec = draw(st.sampled_from(names))
        if draw(st.booleans()):
            spec = {"preset": spec}
    elif shape == "kind":
        kinds = ["heterogeneous", "homogeneous", "het", "hom"] + (["x"] if hostile else [])
        spec = {"kind": draw(st.sampled_from(kinds)), "n_nodes": draw(v["n_nodes"])}
        if draw(st.booleans()):
            entry = st.tuples(v["speed"], v["cores"], v["memory_gib"]).map(list)
            spec["node_types"] = {
                f"type{j}": draw(st.one_of(entry, HOSTILE) if hostile else entry)
                for j in range(draw(st.integers(0 if hostile else 1, 3)))
            }
    elif shape == "explicit":
        n = draw(st.integers(1, 6))
        speed = st.lists(v["speed"], min_size=n, max_size=n)
        cores = st.lists(v["cores"], min_size=n, max_size=n)
        spec = {
            "speed": draw(st.one_of(speed, HOSTILE) if hostile else speed),
            "cores": draw(st.one_of(cores, v["cores"])),
        }
        node_type = st.just([f"n{i}" for i in range(n)])
        for key, values in (
            ("memory_gib", v["memory_gib"]),
            ("node_type", st.one_of(node_type, HOSTILE) if hostile else node_type),
            ("storage_bandwidth", v["bandwidth"]),
            ("storage_latency", v["latency"]),
        ):
            if draw(st.booleans()):
                spec[key] = draw(values)
    else:
        spec = draw(HOSTILE)
    if isinstance(spec, dict):
        for key in ("bandwidth", "latency", "name") + (("foo",) if hostile else ()):
            if draw(st.integers(0, 3)) == 0:
                spec[key] = draw(v.get(key, HOSTILE))
    return spec, draw(st.integers(0, 7))


def _cluster_prop(case: tuple[Any, int]) -> None:
    EXAMPLES["cluster"] += 1
    spec, pick = case
    try:
        cluster = cluster_from_spec(spec)
    except WassError as exc:
        refused("cluster", exc)
        return
    assert 1 <= cluster.n_nodes <= 64 and np.all(cluster.cores >= 1)
    assert np.all(np.isfinite(cluster.speed)) and np.all(cluster.speed > 0)
    assert all(math.isfinite(v) for v in cluster.mean_link())
    wf = Workflow.from_arrays(
        [3.0, 1.0, 2.0, 5.0], [(0, 1), (0, 2), (1, 3), (2, 3)], [1e6, 2e9, 0.0, 5e5]
    )
    check_workflow("cluster", wf, cluster, pick)


test_fuzz_cluster, test_fuzz_cluster_slow = _fuzz_tests(
    _cluster_prop, cluster_specs(), 60, SLOW_EXAMPLES
)


# ---------------------------------------------------------------------------------------------
# Hydra overrides

OVERRIDE_KEYS = [
    "seed",
    "train.total_timesteps",
    "train.n_envs",
    "train.torch_threads",
    "eval.episodes",
    "eval.noise",
    "eval.seed_offset",
    "env.noise",
    "env.max_nodes",
    "env.task_order",
    "env.insertion",
    "env.reward_weights.makespan",
    "env.reward_weights.progress",
    "agent.learning_rate",
    "agent.n_steps",
    "agent.batch_size",
    "agent.gamma",
    "agent.net_arch",
    "workload.n_tasks",
    "workload.width",
    "workload.ccr",
    "teacher.lam",
    "teacher.mode",
    "teacher.k",
    "nosuchkey",
    "+extra",
]
OVERRIDE_VALUES = [
    "0",
    "1",
    "-1",
    "2",
    "8",
    "0.5",
    "1e19",
    "10000000000000000000",
    "1" + "0" * 400,
    "nan",
    "inf",
    "-inf",
    "abc",
    "''",
    "null",
    "true",
    "[1,2]",
    "[8,12]",
    "[1e19,1e20]",
    "[64,64]",
    "[]",
    "{a:1}",
    "[1,",
    "'x",
    "1_000",
    "fifo",
    "eq3",
    "potential",
]
GROUPS = [
    "cluster=het8",
    "cluster=hom16",
    "cluster=nope",
    "workload=chain",
    "workload=fan_out",
    "workload=genomics49",
    "agent=slurm",
    "agent=random",
    "agent=nope",
    "teacher=rag",
    "teacher=none",
]


@st.composite
def override_lists(draw: st.DrawFn) -> list[str]:
    groups = draw(st.lists(st.sampled_from(GROUPS), max_size=2))
    values = [
        f"{draw(st.sampled_from(OVERRIDE_KEYS))}={draw(st.sampled_from(OVERRIDE_VALUES))}"
        for _ in range(draw(st.integers(0, 3)))
    ]
    # Small training workloads keep a valid case cheap to check.
    return ["workload.n_tasks=[6,10]", *groups, *values]


@pytest.fixture(scope="module")
def hydra_conf() -> Any:
    from hydra import initialize_config_dir

    from agents.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3") as ctx:
        yield ctx


def _overrides_prop(overrides: list[str]) -> None:
    from agents.train import check_config, env_kwargs_from_config

    EXAMPLES["hydra"] += 1
    try:
        cfg = compose_overrides("train", overrides)
        check_config(cfg)
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        assert message and "\n" not in message, message
        keys = {o.split("=", 1)[0].lstrip("+~").split(".")[-1] for o in overrides}
        keys |= {o.split("=", 1)[1] for o in overrides if "=" in o}
        assert any(k in message for k in keys), (overrides, message)
        CASES[("hydra", "refused")] += 1
        return
    kwargs = env_kwargs_from_config(cfg)
    env = WassSchedEnv(**kwargs)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        assert env.observation_space.contains(obs)
        obs, reward, done, _, _ = env.step(int(np.flatnonzero(env.action_masks())[0]))
        assert math.isfinite(reward)
        if done:
            break
    CASES[("hydra", "valid")] += 1


@given(overrides=override_lists())
@_settings(8, slow=False)
def test_fuzz_hydra_overrides(hydra_conf: Any, overrides: list[str]) -> None:
    _overrides_prop(overrides)


@pytest.mark.slow
@given(overrides=override_lists())
@_settings(max(SLOW_EXAMPLES // 10, 1), slow=True)
def test_fuzz_hydra_overrides_slow(hydra_conf: Any, overrides: list[str]) -> None:
    _overrides_prop(overrides)


# ---------------------------------------------------------------------------------------------
# env actions and reset options

ACTIONS = st.one_of(
    st.integers(-2, 5),
    st.integers(-(2**70), 2**70),
    st.sampled_from(
        [
            np.int8(1),
            np.int64(2),
            np.uint8(3),
            np.uint64(2**64 - 1),
            np.int32(-1),
            np.array(1),
            np.array([2]),
            np.array([[0]], dtype=np.int16),
            np.array([1, 2]),
            np.array([], dtype=np.int64),
            np.array([1.0]),
            np.array(["1"]),
            np.array([True]),
            1.0,
            1.7,
            np.float64(2.0),
            np.float32(0.0),
            float("nan"),
            float("inf"),
            "1",
            "",
            None,
            True,
            np.bool_(False),
            [1],
            (1,),
            {},
            1 + 0j,
        ]
    ),
    st.floats(),
)


def _is_index(action: Any) -> bool:
    """The documented rule: a Python or NumPy integer, or an integer array of size 1."""
    if isinstance(action, np.ndarray):
        return action.size == 1 and np.issubdtype(action.dtype, np.integer)
    return isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_))


ENV_PROBLEM = Problem(
    Workflow.from_arrays(
        [2.0, 3.0, 1.0, 4.0, 2.0, 1.0],
        [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4), (3, 5)],
        [1e8, 2e8, 0.0, 5e7, 1e9, 1e6],
        cores=[1, 2, 1, 4, 1, 1],
    ),
    Cluster([1.0, 2.0, 0.5], [4, 2, 8], name="fuzz3"),  # task 3 (4 cores) fits nodes 0 and 2
)
RESET_OPTIONS = st.one_of(
    st.none(),
    st.just({}),
    st.just({"problem": ENV_PROBLEM}),
    st.just({"workflow": ENV_PROBLEM.workflow}),
    st.just({"workflow": ENV_PROBLEM.workflow, "cluster": ENV_PROBLEM.cluster}),
    st.dictionaries(
        st.sampled_from(["problem", "workflow", "cluster", "seed", "foo"]),
        st.one_of(
            HOSTILE,
            st.sampled_from(
                ["het16", {"kind": "hom", "n_nodes": 4}, ENV_PROBLEM, ENV_PROBLEM.cluster]
            ),
        ),
        max_size=2,
    ),
    HOSTILE,
)


@st.composite
def env_cases(draw: st.DrawFn) -> tuple[Any, list[Any], str]:
    mode = draw(st.sampled_from(["fallback", "raise"]))
    return draw(RESET_OPTIONS), draw(st.lists(ACTIONS, min_size=1, max_size=12)), mode


def _env_prop(case: tuple[Any, list[Any], str]) -> None:
    EXAMPLES["env"] += 1
    options, actions, mode = case
    env = WassSchedEnv(
        workload=ENV_PROBLEM.workflow,
        cluster=[ENV_PROBLEM.cluster, {"kind": "heterogeneous", "n_nodes": 8}],
        illegal_action=mode,
        reward_weights={"progress": 1.0},
    )
    try:
        obs, info = env.reset(seed=0, options=options)
    except EnvConfigError as exc:
        refused("env", exc)
        return
    for action in actions:
        task = env.current_task
        mask = env.action_masks()
        legal = _is_index(action) and 0 <= int(np.asarray(action).reshape(())) < env.max_nodes
        legal = legal and bool(mask[int(np.asarray(action).reshape(()))])
        try:
            obs, reward, done, _, info = env.step(action)
        except ActionError as exc:
            assert not legal and (mode == "raise" or not _is_index(action)), action
            assert env.current_task == task  # refused actions change nothing
            refused("env", exc, names="action" if not _is_index(action) else "illegal action")
            continue
        assert _is_index(action), action
        node = int(env.builder.node[task])
        want = int(np.asarray(action).reshape(())) if legal else int(np.flatnonzero(mask)[0])
        assert node == want and info["illegal_action"] == (not legal)
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        CASES[("env", "valid")] += 1
        if done:
            assert math.isfinite(info["makespan"])
            obs, info = env.reset()


test_fuzz_env, test_fuzz_env_slow = _fuzz_tests(_env_prop, env_cases(), 60, SLOW_EXAMPLES)


# ---------------------------------------------------------------------------------------------
# the count


@pytest.mark.slow
def test_fuzz_report() -> None:
    """Prints what each target ran in this process (run it last, with ``-s``)."""
    for t in sorted(EXAMPLES):
        print(
            f"fuzz {t}: {EXAMPLES[t]} inputs; checks: {CASES[(t, 'valid')]} valid, "
            f"{CASES[(t, 'refused')]} refused"
        )
    print(f"fuzz total: {sum(EXAMPLES.values())} inputs, {sum(CASES.values())} checks")
    assert sum(EXAMPLES.values()) >= 1
