"""The project's user-facing error: bad input, named with its value.

Every error a user can cause (a malformed workflow file, an unknown preset, a config value out of
range, an unknown scheduler name, a damaged knowledge base) is a :class:`WassError`. Command lines
catch it at one boundary, print its message as one line on stderr and exit with code 2; a
traceback means a bug in wass, not in the input.
"""

from __future__ import annotations

__all__ = ["WassError"]


class WassError(ValueError):
    """An invalid input; the message names the file or field and the offending value."""
