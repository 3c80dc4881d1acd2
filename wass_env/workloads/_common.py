"""Pieces shared by the loaders: the intermediate task record and the Workflow assembly."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from wass_env.sim.workflow import Workflow, WorkflowError
from wass_env.workloads.errors import WorkloadError

#: Application names recognised in file names and instance names (lower case). The first token
#: of a file stem (``"srasearch"`` in ``srasearch-chameleon-20a-001.json``) names the family when
#: it is one of these; otherwise the instance's ``name`` field is tried, then the stem again.
KNOWN_APPLICATIONS: frozenset[str] = frozenset(
    {
        "1000genome",
        "blast",
        "bwa",
        "cybershake",
        "cycles",
        "epigenomics",
        "genome",
        "inspiral",
        "ligo",
        "montage",
        "rnaseq",
        "seismology",
        "sipht",
        "soykb",
        "srasearch",
    }
)

_TOKEN = re.compile(r"[^0-9a-zA-Z]+")
# "mProject_ID0000001" (Pegasus) or "mProject_00000001" (WfCommons generators) -> "mProject".
_TYPE_FROM_NAME = re.compile(r"^(?P<type>.+?)_(?:ID)?\d+$")


def first_token(text: str) -> str:
    """First alphanumeric token of ``text`` in lower case (``"Montage-x"`` -> ``"montage"``)."""
    tokens = [t for t in _TOKEN.split(text) if t]
    return tokens[0].lower() if tokens else ""


def guess_family(stem: str, instance_name: str = "") -> str:
    """Workflow family from a file stem and an instance name (see :data:`KNOWN_APPLICATIONS`)."""
    for candidate in (first_token(stem), first_token(instance_name)):
        if candidate in KNOWN_APPLICATIONS:
            return candidate
    return first_token(stem) or first_token(instance_name)


def type_from_name(name: str) -> str:
    """Task type from a task name: the name without a trailing ``_ID0000001``-style suffix."""
    m = _TYPE_FROM_NAME.match(name)
    return m.group("type") if m else name


@dataclass
class RawTask:
    """A task as read from a file, before the edges are derived.

    Attributes:
        id: Unique task id.
        work: Runtime on the reference machine [s].
        cores: Cores the task uses.
        memory: Memory the task needs [bytes].
        type: Task type (program name).
        inputs: Input file ids with the size this task declares for each [bytes].
        outputs: Output file ids with their sizes [bytes].
        command: The task's command line ("" when the file gives none).
    """

    id: str
    work: float
    cores: int = 1
    memory: float = 0.0
    type: str = ""
    inputs: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, float] = field(default_factory=dict)
    command: str = ""


def assemble(
    tasks: Sequence[RawTask],
    edges: Iterable[tuple[int, int]],
    *,
    name: str,
    family: str,
    source: str,
) -> Workflow:
    """Build a :class:`Workflow` from raw tasks and explicit ``(parent, child)`` index pairs.

    The bytes of an edge are the sizes (as the child declares them) of the files the parent
    outputs and the child inputs; an edge with no such file carries 0 bytes. A task's external
    input bytes are the sizes of the input files that no task of the workflow outputs.

    Raises:
        WorkloadError: if the workflow is invalid (a cycle, for instance).
    """
    produced: set[str] = set()
    for t in tasks:
        produced.update(t.outputs)
    pairs = sorted(set(edges))
    src = np.fromiter((p for p, _ in pairs), dtype=np.int64, count=len(pairs))
    dst = np.fromiter((c for _, c in pairs), dtype=np.int64, count=len(pairs))
    nbytes = np.zeros(len(pairs))
    for e, (p, c) in enumerate(pairs):
        out = tasks[p].outputs
        nbytes[e] = sum(size for f, size in tasks[c].inputs.items() if f in out)  # [bytes]
    input_bytes = [
        sum(size for f, size in t.inputs.items() if f not in produced)
        for t in tasks  # [bytes]
    ]
    try:
        return Workflow(
            ids=[t.id for t in tasks],
            work=[t.work for t in tasks],
            cores=[t.cores for t in tasks],
            memory=[t.memory for t in tasks],
            task_type=[t.type for t in tasks],
            input_bytes=input_bytes,
            command=[t.command for t in tasks],
            edge_src=src,
            edge_dst=dst,
            edge_bytes=nbytes,
            name=name,
            family=family,
            source=source,
        )
    except WorkflowError as exc:
        err = WorkloadError(str(exc))
        err.source = source
        raise err from None
