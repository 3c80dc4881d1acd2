"""Workflow file loaders: WfFormat JSON (1.3-1.6), Pegasus DAX XML, content-based dispatch.

The reference data lives outside the repository, in ``../shared/data`` (see its INDEX.md); the
expected task, edge and runtime figures are parsed from INDEX.md's tables, so every row is
checked against the loaded file.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wass_env.workloads import WorkloadError, load_dax, load_wfformat, load_workflow

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INDEX = DATA / "INDEX.md"
NO_DATA = f"reference data not found at {DATA} (expected ../shared/data next to the repo)"
needs_data = pytest.mark.skipif(not INDEX.exists(), reason=NO_DATA)


def _tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of ``text`` as a list of rows keyed by header."""
    tables: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            tables.append([])
        elif not all(set(c) <= set("-: ") for c in cells):
            tables[-1].append(dict(zip(header, cells, strict=True)))
    return tables


def _index_rows(key: str) -> list[Any]:
    """Rows of the INDEX.md table that has column ``key``, as pytest params (id: the file)."""
    if not INDEX.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_DATA))]
    for table in _tables(INDEX.read_text(encoding="utf-8")):
        if table and key in table[0] and "file" in table[0]:
            return [pytest.param(row, id=row["file"]) for row in table]
    raise AssertionError(f"INDEX.md has no table with a {key!r} column")


WFINSTANCE_ROWS = _index_rows("tasks")
DAX_ROWS = _index_rows("jobs")


def _assert_sum(actual: float, printed: str) -> None:
    """``actual`` equals a figure printed with limited precision (to half its last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    assert abs(actual - float(printed)) <= 0.5 * 10.0**-decimals + 1e-9 * abs(actual)


# ---------------------------------------------------------------------------------------------
# reference data against INDEX.md


@needs_data
def test_index_tables_cover_every_file() -> None:
    listed = {p.values[0]["file"] for p in WFINSTANCE_ROWS + DAX_ROWS}
    on_disk = {str(p.relative_to(DATA)) for p in DATA.glob("wfinstances/*.json")}
    on_disk |= {str(p.relative_to(DATA)) for p in DATA.glob("dax/*.xml")}
    assert listed == on_disk
    assert len(WFINSTANCE_ROWS) == 9
    assert len(DAX_ROWS) == 11


@pytest.mark.parametrize("row", WFINSTANCE_ROWS)
def test_wfinstance_matches_index(row: dict[str, str]) -> None:
    wf = load_workflow(DATA / row["file"])
    assert wf.n_tasks == int(row["tasks"])
    assert wf.n_edges == int(row["edges"])
    _assert_sum(wf.total_work, row["sum runtimeInSeconds"])
    entries, exits = (int(x) for x in row["entry/exit tasks"].split("/"))
    assert (len(wf.entry_tasks), len(wf.exit_tasks)) == (entries, exits)
    assert wf.family == row["application"]
    assert wf.name == Path(row["file"]).stem
    assert wf.source == str(DATA / row["file"])


@pytest.mark.parametrize("row", DAX_ROWS)
def test_dax_matches_index(row: dict[str, str]) -> None:
    wf = load_workflow(DATA / row["file"])
    assert wf.n_tasks == int(row["jobs"])
    assert wf.n_edges == int(row["edges (`<child>/<parent>`)"])
    _assert_sum(wf.total_work, row["sum runtime (s)"])
    assert wf.family == re.split(r"[_-]", Path(row["file"]).stem)[0].lower()
    assert np.all(wf.cores == 1) and np.all(wf.memory == 0)


@needs_data
def test_dax_job_counts_differ_from_names() -> None:
    # The "_N" in a Pegasus file name is approximate.
    assert load_dax(DATA / "dax/Sipht_30.xml").n_tasks == 29
    assert load_dax(DATA / "dax/Epigenomics_46.xml").n_tasks == 47


@needs_data
def test_srasearch_in_schema_13_14_15_loads_identically() -> None:
    v15 = load_wfformat(DATA / "wfinstances/srasearch-chameleon-20a-001.json")
    v14 = load_wfformat(DATA / "wfinstances/legacy/v1.4/srasearch-chameleon-20a-001.json")
    v13 = load_wfformat(DATA / "wfinstances/legacy/v1.3/srasearch-chameleon-20a-001.json")
    assert v13 == v15
    assert v14 == v15
    # Workflow equality covers ids, types, work, cores, memory, inputs and edges with bytes;
    # check that these are not trivially equal.
    assert v15.n_edges == 60 and v15.edge_bytes.sum() > 0 and v15.memory.max() > 0
    assert v13.family == v14.family == v15.family == "srasearch"


@needs_data
def test_srasearch_hand_checked_values() -> None:
    wf = load_wfformat(DATA / "wfinstances/srasearch-chameleon-20a-001.json")
    build = wf.index("bowtie2-build_ID0000001")
    align = wf.index("bowtie2_ID0000003")
    dump = wf.index("fasterq-dump_ID0000002")
    edges = {
        (wf.ids[s], wf.ids[d]): b
        for s, d, b in zip(wf.edge_src, wf.edge_dst, wf.edge_bytes, strict=True)
    }
    # bowtie2 reads the six index files bowtie2-build writes: reference.{1,2,3,4,rev.1,rev.2}.bt2.
    assert edges[wf.ids[build], wf.ids[align]] == 4226858 + 24280 + 17 + 24273 + 4226858 + 24280
    # ... and the two FASTQ halves of its run.
    assert edges[wf.ids[dump], wf.ids[align]] == 2 * 350095784
    # reference.fna is produced by no task: it is bowtie2-build's external input.
    assert wf.input_bytes[build] == 98721
    assert wf.work[build] == 25.824
    assert wf.memory[build] == 94716000
    assert wf.task_type[build] == "bowtie2-build"
    # fasterq-dump downloads its data: no input files at all.
    assert wf.input_bytes[dump] == 0 and len(wf.parents(dump)) == 0


@needs_data
def test_heft_paper_dax_edges_are_topcuoglu_costs_times_125() -> None:
    wf = load_dax(DATA / "dax/HEFT_paper.xml")
    # Topcuoglu et al. 2002, Fig. 2: communication costs; the DAX stores cost x 125 as bytes.
    paper = {
        (1, 2): 18, (1, 3): 12, (1, 4): 9, (1, 5): 11, (1, 6): 14, (2, 8): 19, (2, 9): 16,
        (3, 7): 23, (4, 8): 27, (4, 9): 23, (5, 9): 13, (6, 8): 15, (7, 10): 17, (8, 10): 11,
        (9, 10): 13,
    }  # fmt: skip
    got = {
        (int(wf.ids[s][2:]), int(wf.ids[d][2:])): b / 125
        for s, d, b in zip(wf.edge_src, wf.edge_dst, wf.edge_bytes, strict=True)
    }
    assert set(got) == set(paper)
    assert {k: v for k, v in got.items() if v != paper[k]} == {(3, 7): 20.0}  # known DAX error
    # P1 column of the paper's cost table.
    assert wf.work.tolist() == [14, 13, 11, 13, 12, 13, 7, 5, 18, 21]


@needs_data
def test_cybershake_dax_bytes_come_from_the_child_and_zip_edges_are_empty() -> None:
    wf = load_dax(DATA / "dax/CyberShake_30.xml")
    zip_edges = [
        b
        for d, b in zip(wf.edge_dst, wf.edge_bytes, strict=True)
        if wf.task_type[d] in ("ZipSeis", "ZipPSA")
    ]
    assert len(zip_edges) == 26 and not any(zip_edges)
    edges = {
        (wf.ids[s], wf.ids[d]): b
        for s, d, b in zip(wf.edge_src, wf.edge_dst, wf.edge_bytes, strict=True)
    }
    # ID00002 (ExtractSGT) writes FFI_0_1_sub{fx,fy}.sgt at 310892660 bytes each; ID00005 declares
    # them at 345903971 bytes each: the edge carries what the child reads.
    assert edges["ID00002", "ID00003"] == 2 * 310892660
    assert edges["ID00002", "ID00005"] == 2 * 345903971
    # Two SGT files (20058636289 bytes each) and a rupture variation file, from shared storage.
    assert wf.input_bytes[wf.index("ID00002")] == 2 * 20058636289 + 2132196


# ---------------------------------------------------------------------------------------------
# small hand-made files


def _doc15() -> dict[str, Any]:
    """A valid 1.5 instance: a -> b through file f (100 B); a reads external x (7 B)."""
    return {
        "name": "tiny",
        "schemaVersion": "1.5",
        "workflow": {
            "specification": {
                "tasks": [
                    {
                        "name": "prep_ID0000001",
                        "id": "a",
                        "parents": [],
                        "children": ["b"],
                        "inputFiles": ["x"],
                        "outputFiles": ["f", "g"],
                    },
                    {
                        "name": "crunch_ID0000002",
                        "id": "b",
                        "parents": ["a"],
                        "children": [],
                        "inputFiles": ["f"],
                        "outputFiles": [],
                    },
                ],
                "files": [
                    {"id": "x", "sizeInBytes": 7},
                    {"id": "f", "sizeInBytes": 100},
                    {"id": "g", "sizeInBytes": 5000},
                ],
            },
            "execution": {
                "makespanInSeconds": 3.0,
                "executedAt": "2020-01-01T00:00:00+00:00",
                "tasks": [
                    {"id": "b", "runtimeInSeconds": 2.0, "coreCount": 4},
                    {
                        "id": "a",
                        "runtimeInSeconds": 1.5,
                        "memoryInBytes": 1e6,
                        "command": {"program": "prep.sh"},
                    },
                ],
            },
        },
    }


def _write(tmp_path: Path, doc: Any, name: str = "tiny.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def test_tiny_wfformat_values(tmp_path: Path) -> None:
    wf = load_wfformat(_write(tmp_path, _doc15()))
    assert wf.ids == ("a", "b")
    assert wf.work.tolist() == [1.5, 2.0]
    assert wf.cores.tolist() == [1, 4]
    assert wf.memory.tolist() == [1e6, 0.0]
    # command.program if there is one, else the name without its _ID suffix.
    assert wf.task_type == ("prep.sh", "crunch")
    # Only f is both written by a and read by b (g is an unread output).
    assert (wf.edge_src.tolist(), wf.edge_dst.tolist(), wf.edge_bytes.tolist()) == (
        [0],
        [1],
        [100.0],
    )
    assert wf.input_bytes.tolist() == [7.0, 0.0]
    assert wf.family == "tiny" and wf.name == "tiny"


def test_dependencies_are_the_union_of_parents_and_children(tmp_path: Path) -> None:
    only_children = _doc15()
    only_children["workflow"]["specification"]["tasks"][1]["parents"] = []
    only_parents = _doc15()
    only_parents["workflow"]["specification"]["tasks"][0]["children"] = []
    full = load_wfformat(_write(tmp_path, _doc15()))
    assert load_wfformat(_write(tmp_path, only_children, "c.json")) == full
    assert load_wfformat(_write(tmp_path, only_parents, "p.json")) == full


def test_schema_16_without_file_list_gives_zero_bytes(tmp_path: Path) -> None:
    doc = _doc15()
    doc["schemaVersion"] = "1.6"
    del doc["workflow"]["specification"]["files"]
    wf = load_wfformat(_write(tmp_path, doc))
    assert wf.n_edges == 1 and wf.edge_bytes.tolist() == [0.0]
    assert wf.input_bytes.tolist() == [0.0, 0.0]


def test_wfcommons_written_16_instance_loads(tmp_path: Path) -> None:
    wfcommons = pytest.importorskip("wfcommons")
    from wfcommons.wfchef.recipes import SrasearchRecipe

    # wfcommons draws from the global generators: seed them for this test, then restore them.
    states = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        random.seed(3)
        np.random.seed(3)  # noqa: NPY002
        recipe = SrasearchRecipe.from_num_tasks(30)
        instance = wfcommons.WorkflowGenerator(recipe).build_workflow()
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])  # noqa: NPY002
    path = tmp_path / "srasearch-synthetic.json"
    instance.write_json(path)
    assert json.loads(path.read_text())["schemaVersion"] == "1.6"
    wf = load_workflow(path)
    tasks = instance.tasks
    assert set(wf.ids) == set(tasks)
    assert wf.n_edges == instance.number_of_edges()
    assert wf.total_work == pytest.approx(sum(t.runtime for t in tasks.values()), rel=1e-12)
    assert wf.family == "srasearch"
    # Every edge carries the files the parent writes and the child reads, per wfcommons' objects.
    for s, d, b in zip(wf.edge_src, wf.edge_dst, wf.edge_bytes, strict=True):
        out = {f.file_id: f.size for f in tasks[wf.ids[s]].output_files}
        read = {f.file_id for f in tasks[wf.ids[d]].input_files}
        assert b == sum(size for fid, size in out.items() if fid in read)
    assert {wf.task_type[i] for i in range(wf.n_tasks)} == {t.name for t in tasks.values()}


def test_load_workflow_dispatches_on_content_not_extension(tmp_path: Path) -> None:
    json_as_xml = _write(tmp_path, _doc15(), "tiny.xml")
    assert load_workflow(json_as_xml).ids == ("a", "b")
    dax_as_json = _write(
        tmp_path,
        '\ufeff  <adag><job id="j1" name="t" runtime="2.5"/></adag>',
        "tiny.json",
    )
    assert load_workflow(dax_as_json).work.tolist() == [2.5]
    junk = _write(tmp_path, "name,runtime\na,1\n", "tiny.csv")
    with pytest.raises(WorkloadError, match=r"tiny\.csv: not a workflow file.*found 'n'"):
        load_workflow(junk)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the value at a dotted path (``a.b[2].c``) replaced; ``...`` deletes it."""
    doc = copy.deepcopy(doc)
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    target = doc
    for k in keys[:-1]:
        target = target[k]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


SPEC = "workflow.specification"
EXEC = "workflow.execution"
BAD_JSON = [
    pytest.param("{ not json", ("not valid JSON", "line 1"), id="not-json"),
    pytest.param([1, 2], ("$", "list"), id="top-level-array"),
    pytest.param(
        _set(_doc15(), "schemaVersion", "2.0"),
        ("schemaVersion", "'2.0'", "1.3, 1.4, 1.5, 1.6"),
        id="unknown-version",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.tasks[1].parents", ...),
        (f"{SPEC}.tasks[1].parents", "missing"),
        id="missing-parents",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.tasks[1].parents", ["nope"]),
        (f"{SPEC}.tasks[1].parents[0]", "'nope'"),
        id="dangling-parent",
    ),
    pytest.param(
        _set(_doc15(), f"{EXEC}.tasks[0].runtimeInSeconds", "12"),
        (f"{EXEC}.tasks[0].runtimeInSeconds", "'12'", "number"),
        id="runtime-wrong-type",
    ),
    pytest.param(
        _set(_doc15(), f"{EXEC}.tasks[1].runtimeInSeconds", -3.5),
        (f"{EXEC}.tasks[1].runtimeInSeconds", "-3.5"),
        id="negative-runtime",
    ),
    pytest.param(
        _set(_doc15(), f"{EXEC}.tasks[0].coreCount", 2.5),
        (f"{EXEC}.tasks[0].coreCount", "2.5"),
        id="fractional-cores",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.files[1].sizeInBytes", -1),
        (f"{SPEC}.files[1].sizeInBytes", "-1"),
        id="negative-size",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.tasks[1].inputFiles", ["f", "ghost"]),
        (f"{SPEC}.tasks[1].inputFiles[1]", "'ghost'"),
        id="unknown-file",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.tasks[1].id", "a"),
        (f"{SPEC}.tasks[1].id", "duplicate", "'a'"),
        id="duplicate-id",
    ),
    pytest.param(
        _set(_doc15(), f"{EXEC}.tasks", [{"id": "a", "runtimeInSeconds": 1.0}]),
        (f"{EXEC}.tasks", "'b'"),
        id="missing-runtime-entry",
    ),
    pytest.param(
        _set(_doc15(), EXEC, ...),
        (EXEC, "missing"),
        id="no-execution",
    ),
    pytest.param(
        _set(_doc15(), f"{SPEC}.tasks[0].parents", ["b"]),
        ("has a cycle: b -> a -> b",),
        id="cycle",
    ),
    pytest.param(
        {
            "name": "old",
            "schemaVersion": "1.3",
            "workflow": {"tasks": [{"name": "t_ID1", "parents": [], "runtime": -1}]},
        },
        ("workflow.tasks[0].runtime", "-1"),
        id="legacy-negative-runtime",
    ),
    pytest.param(
        {
            "name": "old",
            "schemaVersion": "1.4",
            "workflow": {
                "tasks": [
                    {
                        "name": "t_ID1",
                        "parents": [],
                        "runtimeInSeconds": 1,
                        "files": [{"link": "sideways", "name": "f", "sizeInBytes": 1}],
                    }
                ]
            },
        },
        ("workflow.tasks[0].files[0].link", "'sideways'"),
        id="legacy-bad-link",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), BAD_JSON)
def test_bad_wfformat_names_file_field_and_value(
    tmp_path: Path, doc: Any, expected: tuple[str, ...]
) -> None:
    path = _write(tmp_path, doc, "broken.json")
    with pytest.raises(WorkloadError) as excinfo:
        load_workflow(path)
    message = str(excinfo.value)
    assert str(path) in message
    for part in expected:
        assert part in message
    assert isinstance(excinfo.value, ValueError)
    # No KeyError/TypeError traceback chained behind it.
    assert excinfo.value.__cause__ is None


def _dax(jobs: str, deps: str = "") -> str:
    return (
        '<?xml version="1.0"?>\n<adag xmlns="http://pegasus.isi.edu/schema/DAX" version="2.1">'
        f"{jobs}{deps}</adag>"
    )


GOOD_JOBS = (
    '<job id="A" name="split" runtime="1.5"><uses file="in" link="input" size="7"/>'
    '<uses file="f" link="output" size="100"/></job>'
    '<job id="B" name="merge" runtime="2"><uses file="f" link="input" size="90"/></job>'
)
BAD_DAX = [
    pytest.param("<adag><job id='A' runtime='1'></adag>", ("not well-formed XML",), id="not-xml"),
    pytest.param("<dag/>", ("/dag", "'adag'"), id="wrong-root"),
    pytest.param(
        _dax(GOOD_JOBS + '<job id="C" name="x"/>'),
        ("/adag/job[3]/@runtime", "missing"),
        id="missing-runtime",
    ),
    pytest.param(
        _dax(GOOD_JOBS + '<job id="C" name="x" runtime="-4"/>'),
        ("/adag/job[3]/@runtime", "'-4'"),
        id="negative-runtime",
    ),
    pytest.param(
        _dax(GOOD_JOBS + '<job id="C" name="x" runtime="fast"/>'),
        ("/adag/job[3]/@runtime", "'fast'"),
        id="runtime-not-a-number",
    ),
    pytest.param(
        _dax('<job id="A" runtime="1"><uses file="f" link="input" size="-2"/></job>'),
        ("/adag/job[1]/uses[1]/@size", "'-2'"),
        id="negative-size",
    ),
    pytest.param(
        _dax(GOOD_JOBS, '<child ref="B"><parent ref="Z"/></child>'),
        ("/adag/child[1]/parent[1]/@ref", "'Z'"),
        id="dangling-parent",
    ),
    pytest.param(
        _dax(GOOD_JOBS, '<child ref="Q"><parent ref="A"/></child>'),
        ("/adag/child[1]/@ref", "'Q'"),
        id="dangling-child",
    ),
    pytest.param(
        _dax(GOOD_JOBS + '<job id="A" runtime="1"/>'),
        ("/adag/job[3]/@id", "duplicate", "'A'"),
        id="duplicate-id",
    ),
    pytest.param(
        _dax(
            GOOD_JOBS,
            '<child ref="B"><parent ref="A"/></child><child ref="A"><parent ref="B"/></child>',
        ),
        ("cycle",),
        id="cycle",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_DAX)
def test_bad_dax_names_file_field_and_value(
    tmp_path: Path, text: str, expected: tuple[str, ...]
) -> None:
    path = _write(tmp_path, text, "broken.xml")
    with pytest.raises(WorkloadError) as excinfo:
        load_workflow(path)
    message = str(excinfo.value)
    assert str(path) in message
    for part in expected:
        assert part in message
    assert excinfo.value.__cause__ is None


def test_tiny_dax_values(tmp_path: Path) -> None:
    path = _write(tmp_path, _dax(GOOD_JOBS, '<child ref="B"><parent ref="A"/></child>'), "t.xml")
    wf = load_dax(path)
    assert wf.ids == ("A", "B") and wf.task_type == ("split", "merge")
    assert wf.work.tolist() == [1.5, 2.0]
    # The child declares f at 90 bytes: that is what it reads.
    assert wf.edge_bytes.tolist() == [90.0]
    assert wf.input_bytes.tolist() == [7.0, 0.0]
    assert wf.family == "t"


def test_dax_dependencies_only_from_child_elements(tmp_path: Path) -> None:
    # B reads A's output, but without a <child> element there is no edge; C depends on A through
    # an explicit element although no file links them (0 bytes).
    jobs = GOOD_JOBS + '<job id="C" name="zip" runtime="1"/>'
    wf = load_dax(_write(tmp_path, _dax(jobs, '<child ref="C"><parent ref="A"/></child>'), "d.xml"))
    pairs = [(wf.ids[s], wf.ids[d]) for s, d in zip(wf.edge_src, wf.edge_dst, strict=True)]
    assert pairs == [("A", "C")]
    assert wf.edge_bytes.tolist() == [0.0]


def test_missing_file_is_a_workload_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    for loader in (load_workflow, load_wfformat, load_dax):
        with pytest.raises(WorkloadError, match=r"absent\.json: cannot read"):
            loader(path)
