"""The error raised for bad workload input (files, specs, generator arguments)."""

from __future__ import annotations

from os import PathLike

from wass_env.errors import WassError

__all__ = ["WorkloadError"]


class WorkloadError(WassError):
    """Bad workload input: an unreadable or malformed file, a bad spec or generator argument.

    The message names where the problem is (the file and the field, as a JSON path such as
    ``workflow.specification.tasks[3].parents`` or an XPath such as ``/adag/job[4]/@runtime``)
    and the offending value.

    Attributes:
        problem: What is wrong, with the value.
        source: The file (or spec) the problem is in, or ``""``.
        field: The field the problem is in, or ``""``.
    """

    def __init__(self, message: str, *, source: str | PathLike[str] = "", field: str = "") -> None:
        self.problem = message
        self.source = str(source)
        self.field = field
        parts = [p for p in (self.source, field) if p]
        super().__init__(": ".join([*parts, message]))
