"""One entry point for workflow files: WfFormat JSON or Pegasus DAX XML, told apart by content."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from wass_env.sim.workflow import Workflow
from wass_env.workloads.dax import load_dax
from wass_env.workloads.errors import WorkloadError
from wass_env.workloads.wfformat import load_wfformat

__all__ = ["load_workflow"]


def load_workflow(path: str | PathLike[str], *, family: str | None = None) -> Workflow:
    """Load a workflow file, choosing the format from its first non-blank character.

    ``{`` (or ``[``) means WfFormat JSON (:func:`~wass_env.workloads.wfformat.load_wfformat`),
    ``<`` means Pegasus DAX XML (:func:`~wass_env.workloads.dax.load_dax`); the file extension
    is ignored.

    Args:
        path: The file.
        family: Workflow family (default: guessed by the format's loader).

    Raises:
        WorkloadError: if the file cannot be read, is in neither format, or is invalid.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise WorkloadError(f"cannot read file: {exc}", source=p) from None
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start in (b"{", b"["):
        return load_wfformat(p, family=family)
    if start == b"<":
        return load_dax(p, family=family)
    shown = repr(start.decode("latin-1")) if start else "an empty file"
    raise WorkloadError(
        f"not a workflow file: expected WfFormat JSON (starting with '{{') or DAX XML "
        f"(starting with '<'), found {shown}",
        source=p,
    )
