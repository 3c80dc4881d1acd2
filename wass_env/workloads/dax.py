"""Loader for Pegasus DAX XML workflows (the DAX 2.1 files of the Pegasus Workflow Generator).

What is read (namespace-agnostic: ``{http://pegasus.isi.edu/schema/DAX}job`` and ``job`` are the
same):

* ``<job id name runtime>``: ``id`` is the task id, ``name`` the task type, ``runtime`` the work
  in seconds on the reference machine. DAX has no cores or memory: every task uses 1 core and
  0 bytes.
* ``<uses file link size>`` inside a job (``name`` instead of ``file`` in DAX 3): the job's input
  and output files with their sizes in bytes.
* ``<argument>`` inside a job: its command line is the job's ``name`` followed by the argument
  text, with ``<filename file=.../>`` elements replaced by their file names.
* ``<child ref><parent ref/></child>``: the dependencies. **Only these** define the DAG; files
  never add edges. (In the Sipht files two sub-workflows reuse the same file names, so matching
  files globally would add wrong cross edges.)

An edge carries the files its parent outputs and its child inputs, matched by name within that
parent-child pair; their sizes are the ones the child declares (the generator draws a size per
reader, so the same file may have different sizes in different jobs). An edge with no matching
file carries 0 bytes: the CyberShake generator declares no inputs for its ``ZipSeis`` and
``ZipPSA`` jobs, so their incoming edges carry 0 bytes. Input files that no job outputs are
external inputs and count in the reader's ``input_bytes``.

The family is the first token of the file name, lower case (``"cybershake"`` for
``CyberShake_30.xml``): the ``namespace`` attribute is not an application name in every file
(``"Genome"`` in the Epigenomics files, ``"LIGO"`` in the Inspiral ones).

Every problem raises :class:`~wass_env.workloads.errors.WorkloadError` naming the file, the
element (as an XPath such as ``/adag/job[4]/@runtime``, 1-based) and the value.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from os import PathLike
from pathlib import Path
from typing import NoReturn

from wass_env.sim.workflow import Workflow
from wass_env.workloads._common import RawTask, assemble, first_token
from wass_env.workloads.errors import WorkloadError

__all__ = ["load_dax", "parse_dax"]


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _local(tag: str) -> str:
    """Tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


class _XmlReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, problem: str) -> NoReturn:
        raise WorkloadError(problem, source=self.source, field=field)

    def attr(self, el: ET.Element, key: str, where: str) -> str:
        value = el.get(key)
        if value is None:
            self.fail(f"{where}/@{key}", "required attribute is missing")
        return value

    def number(self, el: ET.Element, key: str, where: str, default: float | None) -> float:
        """A finite number >= 0 (a runtime, a size); required when ``default`` is None."""
        raw = el.get(key)
        if raw is None:
            if default is None:
                self.fail(f"{where}/@{key}", "required attribute is missing")
            return default
        # XML Schema's decimal/double lexical forms only: Python's float() would also take
        # "5_000", "infinity" and "nan".
        if not _NUMBER.fullmatch(raw.strip(" \t\r\n")):
            self.fail(f"{where}/@{key}", f"expected a number, got {_short(raw)}")
        value = float(raw)
        if not math.isfinite(value) or value < 0:
            self.fail(f"{where}/@{key}", f"must be a finite number >= 0, got {_short(raw)}")
        return value


def _command_line(job: ET.Element) -> str:
    """The job's transformation ``name`` followed by its ``<argument>`` ("" without a name).

    Inside ``<argument>``, ``<filename file="f"/>`` (DAX 2) or ``<file name="f"/>`` (DAX 3)
    elements stand for their file names; runs of whitespace become one space.
    """
    program = job.get("name", "")
    if not program:
        return ""
    words = [program]
    for el in job:
        if _local(el.tag) != "argument":
            continue
        parts = [el.text or ""]
        for sub in el:
            if _local(sub.tag) in ("filename", "file"):
                parts.append(sub.get("file", sub.get("name", "")))
            parts.append(sub.tail or "")
        words.extend("".join(parts).split())
    return " ".join(words)


def load_dax(path: str | PathLike[str], *, family: str | None = None) -> Workflow:
    """Load a Pegasus DAX XML workflow.

    Args:
        path: The XML file.
        family: Workflow family (default: the first token of the file name, lower case).

    Returns:
        The workflow, named after the file stem, with ``source`` set to ``path``.

    Raises:
        WorkloadError: if the file cannot be read, is not well-formed XML, or is not a valid
            DAX (no ``adag`` root, a job without ``id`` or ``runtime``, a negative runtime or
            size, a duplicate job id, a ``child``/``parent`` reference to an unknown job, a cycle).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise WorkloadError(f"cannot read file: {exc}", source=p) from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, col = exc.position
        raise WorkloadError(
            f"not well-formed XML (line {line}, column {col}): {exc}", source=p
        ) from None
    return parse_dax(
        root,
        source=str(p),
        name=p.stem,
        family=family if family is not None else first_token(p.stem),
    )


def parse_dax(root: ET.Element, *, source: str, name: str, family: str) -> Workflow:
    """Build a workflow from a parsed DAX document's root element (see :func:`load_dax`).

    Raises:
        WorkloadError: if the document is not a valid DAX.
    """
    r = _XmlReader(source)
    if _local(root.tag) != "adag":
        r.fail(f"/{_local(root.tag)}", f"expected an 'adag' root element, got {_local(root.tag)!r}")

    raw: list[RawTask] = []
    index: dict[str, int] = {}
    n_jobs = n_children = 0
    child_elements: list[tuple[str, ET.Element]] = []
    for el in root:
        tag = _local(el.tag)
        if tag == "job":
            n_jobs += 1
            where = f"/adag/job[{n_jobs}]"
            jid = r.attr(el, "id", where)
            if jid in index:
                r.fail(f"{where}/@id", f"duplicate job id {jid!r}")
            index[jid] = len(raw)
            task = RawTask(
                id=jid,
                work=r.number(el, "runtime", where, None),  # [s]
                type=el.get("name", ""),
                command=_command_line(el),
            )
            n_uses = 0
            for use in el:
                if _local(use.tag) != "uses":
                    continue
                n_uses += 1
                uwhere = f"{where}/uses[{n_uses}]"
                fname = use.get("file", use.get("name"))
                if fname is None:
                    r.fail(f"{uwhere}/@file", "required attribute is missing")
                link = r.attr(use, "link", uwhere).lower()
                if link not in ("input", "output", "inout"):
                    r.fail(f"{uwhere}/@link", f"expected 'input' or 'output', got {link!r}")
                size = r.number(use, "size", uwhere, 0.0)  # [bytes]
                if link in ("input", "inout"):
                    task.inputs.setdefault(fname, size)
                if link in ("output", "inout"):
                    task.outputs.setdefault(fname, size)
            raw.append(task)
        elif tag == "child":
            n_children += 1
            child_elements.append((f"/adag/child[{n_children}]", el))
    if not raw:
        r.fail("/adag", "no <job> elements: the workflow has no tasks")

    edges: set[tuple[int, int]] = set()
    for where, el in child_elements:
        ref = r.attr(el, "ref", where)
        c = index.get(ref)
        if c is None:
            r.fail(f"{where}/@ref", f"unknown job id {ref!r}")
        n_parents = 0
        for par in el:
            if _local(par.tag) != "parent":
                continue
            n_parents += 1
            pwhere = f"{where}/parent[{n_parents}]"
            pref = r.attr(par, "ref", pwhere)
            p = index.get(pref)
            if p is None:
                r.fail(f"{pwhere}/@ref", f"unknown job id {pref!r}")
            if p == c:
                r.fail(f"{pwhere}/@ref", f"job {pref!r} is its own parent")
            edges.add((p, c))
    return assemble(raw, edges, name=name, family=family, source=source)
