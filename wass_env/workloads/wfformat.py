"""Loader for WfCommons WfFormat JSON instances (schema versions 1.3 to 1.6).

What is read, per schema version:

* 1.5 and 1.6 (``workflow.specification`` + ``workflow.execution``): tasks, their ``parents``
  and ``children`` (task ids) and ``inputFiles``/``outputFiles`` from the specification; file
  sizes from ``specification.files[*].sizeInBytes``; ``runtimeInSeconds``, ``coreCount``,
  ``memoryInBytes`` and ``command.program`` from the execution entry with the same ``id``.
  Version 1.6 only adds optional ``metrics`` to 1.5, and may omit ``specification.files``
  (every file then has size 0).
* 1.3 and 1.4 (flat ``workflow.tasks``): tasks refer to each other by ``name``; each task lists
  its ``files`` (``link``: input/output, ``name``, ``size`` in 1.3 and ``sizeInBytes`` in 1.4).
  Runtime is ``runtime`` (1.3) or ``runtimeInSeconds`` (1.4), cores ``cores``; memory is
  ``memoryInBytes`` (1.4), else the old ``memory`` in KB, times 1000. Task ids and file sizes
  follow the official 1.4 -> 1.5 migration (``wfcommons-migrate-instance.py``): the id is the
  ``name`` when it contains the old ``id``, else ``name_id``; a file's size is the one of its
  first declaration. So the same run in 1.3, 1.4 and 1.5 loads to equal workflows.

The mapping to :class:`~wass_env.sim.workflow.Workflow`: ``work`` = runtime [s] (the runtime on
the traced machine is taken as the reference-node cost); ``cores`` = ``coreCount`` (default 1);
``memory`` = ``memoryInBytes`` (default 0); ``task_type`` = ``command.program``, else the
``category``, else the task name without its ``_ID0000001`` suffix; ``command`` =
``command.program`` followed by ``command.arguments``. The DAG comes from the explicit
``parents``/``children`` lists (their union); an edge carries the sizes of the files in
``outputFiles(parent) ∩ inputFiles(child)`` (0 bytes when none); files that no task outputs are
external inputs and count in the ``input_bytes`` of the tasks reading them.

Every problem raises :class:`~wass_env.workloads.errors.WorkloadError` naming the file, the JSON
path of the field and the value.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NoReturn

from wass_env.limits import MAX_COUNT, whole_number
from wass_env.sim.workflow import Workflow
from wass_env.workloads._common import RawTask, assemble, guess_family, type_from_name
from wass_env.workloads.errors import WorkloadError

__all__ = ["SUPPORTED_VERSIONS", "load_wfformat", "parse_wfformat"]

#: Schema versions this loader reads.
SUPPORTED_VERSIONS: tuple[str, ...] = ("1.3", "1.4", "1.5", "1.6")

#: Largest integer that converts to a finite float (JSON integers are exact Python ints).
_MAX_FLOAT_INT = int(sys.float_info.max)

_KIND_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    float: "a number",
}


class _Reader:
    """Typed access to parsed JSON that fails with the file, the JSON path and the value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, problem: str) -> NoReturn:
        raise WorkloadError(problem, source=self.source, field=field)

    def has(self, obj: Mapping[str, Any], key: str) -> bool:
        return key in obj and obj[key] is not None

    def get(self, obj: Mapping[str, Any], key: str, where: str, kind: type) -> Any:
        """``obj[key]``, required, of JSON type ``kind`` (dict, list, str or float)."""
        field = f"{where}.{key}" if where else key
        if key not in obj:
            self.fail(field, "required field is missing")
        return self.check(obj[key], field, kind)

    def opt(self, obj: Mapping[str, Any], key: str, where: str, kind: type, default: Any) -> Any:
        """``obj[key]`` of JSON type ``kind`` if present (and not null), else ``default``."""
        if not self.has(obj, key):
            return default
        return self.check(obj[key], f"{where}.{key}" if where else key, kind)

    def check(self, value: Any, field: str, kind: type) -> Any:
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(value, int) and abs(value) > _MAX_FLOAT_INT:
                self.fail(field, f"must be a finite number, got {_short(value)} (too large)")
            if ok and not math.isfinite(value):
                self.fail(field, f"must be a finite number, got {value!r}")
        else:
            ok = isinstance(value, kind)
        if not ok:
            self.fail(
                field,
                f"expected {_KIND_NAMES[kind]}, got {_short(value)} ({type(value).__name__})",
            )
        return float(value) if kind is float else value

    def size(self, obj: Mapping[str, Any], key: str, where: str, default: float | None) -> float:
        """A non-negative number (a size, a runtime); required when ``default`` is None."""
        field = f"{where}.{key}"
        value = (
            self.get(obj, key, where, float)
            if default is None
            else self.opt(obj, key, where, float, default)
        )
        if value < 0:
            self.fail(field, f"must be >= 0, got {value!r}")
        return float(value)

    def cores(self, obj: Mapping[str, Any], key: str, where: str) -> int:
        value = self.opt(obj, key, where, float, 1.0)
        try:
            return whole_number(value)
        except ValueError:
            self.fail(
                f"{where}.{key}",
                f"must be a whole number in [1, {MAX_COUNT}], got {_short(obj[key])}",
            )

    def strings(self, obj: Mapping[str, Any], key: str, where: str, required: bool) -> list[str]:
        """A list of strings (task or file ids)."""
        field = f"{where}.{key}"
        if required:
            values = self.get(obj, key, where, list)
        else:
            values = self.opt(obj, key, where, list, [])
        for j, v in enumerate(values):
            self.check(v, f"{field}[{j}]", str)
        return list(values)


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return text if len(text) <= 60 else text[:57] + "..."


def _program(r: _Reader, entry: Mapping[str, Any], where: str) -> str:
    command = r.opt(entry, "command", where, dict, {})
    return str(r.opt(command, "program", f"{where}.command", str, ""))


def _command_line(r: _Reader, entry: Mapping[str, Any], where: str) -> str:
    """``command.program`` followed by ``command.arguments``, space-separated ("" if none).

    The arguments are joined as recorded, without quoting (as WfCommons' own translators do):
    a trace may hold an argument such as ``"-o out.txt"`` meant as two words.
    """
    program = _program(r, entry, where)
    if not program:
        return ""
    command = r.opt(entry, "command", where, dict, {})
    words = [program]
    for j, arg in enumerate(r.opt(command, "arguments", f"{where}.command", list, [])):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            r.fail(f"{where}.command.arguments[{j}]", f"expected a string, got {_short(arg)}")
        words.append(str(arg))
    return " ".join(words)


def load_wfformat(path: str | PathLike[str], *, family: str | None = None) -> Workflow:
    """Load a WfFormat JSON instance (schema 1.3, 1.4, 1.5 or 1.6).

    Args:
        path: The JSON file.
        family: Workflow family; by default the application name from the file name or the
            instance's ``name`` (``"srasearch"``, ``"montage"``, ``"1000genome"``, ...).

    Returns:
        The workflow, named after the file stem, with ``source`` set to ``path``.

    Raises:
        WorkloadError: if the file cannot be read, is not JSON, or is not a valid instance (a
            missing required field, a wrong type, an unknown schema version, a dangling task or
            file reference, a negative runtime or size, a cycle).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"cannot read file: {exc}", source=p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkloadError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", source=p
        ) from None
    except RecursionError:
        raise WorkloadError(
            "not a WfFormat instance: arrays or objects nested too deeply for the JSON parser",
            source=p,
        ) from None
    except ValueError as exc:  # an integer with more digits than Python converts (4300)
        why = str(exc).split("; use ", 1)[0]  # drop the advice to raise the interpreter's limit
        raise WorkloadError(f"not valid JSON: {why}", source=p) from None
    return parse_wfformat(data, source=str(p), name=p.stem, family=family)


def parse_wfformat(
    data: Any,
    *,
    source: str = "<json>",
    name: str | None = None,
    family: str | None = None,
) -> Workflow:
    """Build a workflow from an already parsed WfFormat instance (see :func:`load_wfformat`).

    Args:
        data: The parsed JSON document.
        source: Where it came from (used in error messages and as ``Workflow.source``).
        name: Workflow name (default: the instance's ``name`` field).
        family: Workflow family (default: guessed from ``name`` and the instance name).

    Raises:
        WorkloadError: if the document is not a valid instance.
    """
    r = _Reader(source)
    if not isinstance(data, dict):
        r.fail("$", f"expected a JSON object at the top level, got {type(data).__name__}")
    version = r.get(data, "schemaVersion", "", str)
    if version not in SUPPORTED_VERSIONS:
        r.fail(
            "schemaVersion",
            f"unsupported schema version {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}",
        )
    instance_name = r.get(data, "name", "", str)
    workflow = r.get(data, "workflow", "", dict)
    if version in ("1.3", "1.4"):
        tasks, edges = _read_legacy(r, workflow, version)
    else:
        tasks, edges = _read_current(r, workflow)
    stem = name if name is not None else instance_name
    return assemble(
        tasks,
        edges,
        name=stem,
        family=family if family is not None else guess_family(stem, instance_name),
        source=source,
    )


def _read_current(
    r: _Reader, workflow: Mapping[str, Any]
) -> tuple[list[RawTask], set[tuple[int, int]]]:
    """Schema 1.5 / 1.6: specification + execution joined on task ``id``."""
    spec = r.get(workflow, "specification", "workflow", dict)
    w_spec = "workflow.specification"
    spec_tasks = r.get(spec, "tasks", w_spec, list)
    if not spec_tasks:
        r.fail(f"{w_spec}.tasks", "the workflow has no tasks")

    sizes: dict[str, float] | None = None  # [bytes]; None: no file list, every size is 0
    if r.has(spec, "files"):
        sizes = {}
        for j, f in enumerate(r.get(spec, "files", w_spec, list)):
            where = f"{w_spec}.files[{j}]"
            f = r.check(f, where, dict)
            fid = r.get(f, "id", where, str)
            if fid in sizes:
                r.fail(f"{where}.id", f"duplicate file id {fid!r}")
            sizes[fid] = r.size(f, "sizeInBytes", where, None)

    index: dict[str, int] = {}
    raw: list[RawTask] = []
    links: list[tuple[str, list[str], list[str]]] = []
    for i, t in enumerate(spec_tasks):
        where = f"{w_spec}.tasks[{i}]"
        t = r.check(t, where, dict)
        tid = r.get(t, "id", where, str)
        tname = r.get(t, "name", where, str)
        if tid in index:
            r.fail(f"{where}.id", f"duplicate task id {tid!r}")
        index[tid] = i
        files: dict[str, dict[str, float]] = {}
        for key in ("inputFiles", "outputFiles"):
            files[key] = {}
            for j, fid in enumerate(r.strings(t, key, where, required=False)):
                if sizes is None:
                    files[key][fid] = 0.0
                elif fid in sizes:
                    files[key][fid] = sizes[fid]
                else:
                    r.fail(f"{where}.{key}[{j}]", f"unknown file id {fid!r}")
        raw.append(
            RawTask(
                id=tid,
                work=0.0,
                type=type_from_name(tname),
                inputs=files["inputFiles"],
                outputs=files["outputFiles"],
            )
        )
        links.append(
            (
                where,
                r.strings(t, "parents", where, required=True),
                r.strings(t, "children", where, required=True),
            )
        )
    edges = _resolve_links(r, links, index)

    w_exec = "workflow.execution"
    if not r.has(workflow, "execution"):
        r.fail(w_exec, "required for task runtimes, but missing")
    execution = r.get(workflow, "execution", "workflow", dict)
    seen: set[str] = set()
    for k, e in enumerate(r.get(execution, "tasks", w_exec, list)):
        where = f"{w_exec}.tasks[{k}]"
        e = r.check(e, where, dict)
        tid = r.get(e, "id", where, str)
        if tid not in index:
            r.fail(f"{where}.id", f"unknown task id {tid!r} (not in workflow.specification.tasks)")
        if tid in seen:
            r.fail(f"{where}.id", f"duplicate execution entry for task {tid!r}")
        seen.add(tid)
        task = raw[index[tid]]
        task.work = r.size(e, "runtimeInSeconds", where, None)  # [s]
        task.cores = r.cores(e, "coreCount", where)
        task.memory = r.size(e, "memoryInBytes", where, 0.0)  # [bytes]
        task.type = _program(r, e, where) or task.type
        task.command = _command_line(r, e, where)
    missing = [t.id for t in raw if t.id not in seen]
    if missing:
        r.fail(
            f"{w_exec}.tasks",
            f"no entry (and so no runtime) for {len(missing)} task(s), e.g. {missing[0]!r}",
        )
    return raw, edges


def _legacy_id(task: Mapping[str, Any], name: str, index: int) -> str:
    """Task id as the official 1.4 -> 1.5 migration computes it."""
    old = task.get("id")
    if not isinstance(old, str) or not old:
        return f"{name}_{index}"
    return name if old in name else f"{name}_{old}"


def _read_legacy(
    r: _Reader, workflow: Mapping[str, Any], version: str
) -> tuple[list[RawTask], set[tuple[int, int]]]:
    """Schema 1.3 / 1.4: flat ``workflow.tasks`` referring to each other by ``name``."""
    tasks = r.get(workflow, "tasks", "workflow", list)
    if not tasks:
        r.fail("workflow.tasks", "the workflow has no tasks")
    runtime_key = "runtime" if version == "1.3" else "runtimeInSeconds"
    size_key = "size" if version == "1.3" else "sizeInBytes"

    index: dict[str, int] = {}
    refs: dict[str, int] = {}
    raw: list[RawTask] = []
    links: list[tuple[str, list[str], list[str]]] = []
    first_size: dict[str, float] = {}  # [bytes] size of a file at its first declaration
    declared: list[list[tuple[str, str, float]]] = []
    for i, t in enumerate(tasks):
        where = f"workflow.tasks[{i}]"
        t = r.check(t, where, dict)
        name = r.get(t, "name", where, str)
        r.opt(t, "id", where, str, "")
        tid = _legacy_id(t, name, i)
        if tid in index:
            r.fail(f"{where}.name", f"duplicate task {tid!r}")
        index[tid] = i
        for ref in (name, t.get("id"), tid):
            if isinstance(ref, str) and ref and ref not in refs:
                refs[ref] = i
        work = r.size(t, runtime_key, where, None)  # [s]
        if r.has(t, "memoryInBytes"):
            memory = r.size(t, "memoryInBytes", where, 0.0)  # [bytes]
        else:
            memory = 1000.0 * r.size(t, "memory", where, 0.0)  # [KB] -> [bytes], as migrated
        category = r.opt(t, "category", where, str, "")
        program = _program(r, t, where)
        files: list[tuple[str, str, float]] = []
        for j, f in enumerate(r.opt(t, "files", where, list, [])):
            fwhere = f"{where}.files[{j}]"
            f = r.check(f, fwhere, dict)
            fid = r.get(f, "name", fwhere, str)
            fid = r.opt(f, "path", fwhere, str, "") + fid
            link = r.get(f, "link", fwhere, str).lower()
            if link not in ("input", "output"):
                r.fail(f"{fwhere}.link", f"expected 'input' or 'output', got {link!r}")
            size = r.size(f, size_key, fwhere, None)  # [bytes]
            first_size.setdefault(fid, size)
            files.append((fid, link, size))
        declared.append(files)
        raw.append(
            RawTask(
                id=tid,
                work=work,
                cores=r.cores(t, "cores", where),
                memory=memory,
                type=program or category or type_from_name(name),
                command=_command_line(r, t, where),
            )
        )
        links.append(
            (
                where,
                r.strings(t, "parents", where, required=True),
                r.strings(t, "children", where, required=False),
            )
        )
    for task, files in zip(raw, declared, strict=True):
        for fid, link, _ in files:
            target = task.inputs if link == "input" else task.outputs
            target[fid] = first_size[fid]
    return raw, _resolve_links(r, links, refs)


def _resolve_links(
    r: _Reader,
    links: list[tuple[str, list[str], list[str]]],
    refs: Mapping[str, int],
) -> set[tuple[int, int]]:
    """Edges ``(parent, child)`` from every task's parents and children lists (their union)."""
    edges: set[tuple[int, int]] = set()
    for i, (where, parents, children) in enumerate(links):
        for key, ids, as_parent in (("parents", parents, True), ("children", children, False)):
            for j, ref in enumerate(ids):
                k = refs.get(ref)
                if k is None:
                    r.fail(f"{where}.{key}[{j}]", f"unknown task id {ref!r}")
                if k == i:
                    r.fail(f"{where}.{key}[{j}]", f"task {ref!r} refers to itself")
                edges.add((k, i) if as_parent else (i, k))
    return edges
