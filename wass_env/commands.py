"""The ``wass`` command: a dispatcher to subcommands that packages declare.

(The error boundary every command line shares, one line and exit code 2 for bad input, is
:mod:`wass_env.cli`; subcommands use it.)

``wass COMMAND [ARGS...]`` runs the subcommand ``COMMAND``. Subcommands are found in the
``wass.commands`` entry-point group (``plan = "agents.deploy.cli:main"`` in a package's
``pyproject.toml``), so any installed package can add one without this module knowing it; each
is a callable taking the remaining arguments (a list of strings) and returning an exit code.
Entries are imported only when run. ``wass --help`` lists the installed subcommands.

A Hydra app (``@hydra.main``) reads ``sys.argv``; its entry point sets
``sys.argv = [f"wass {name}", *argv]`` before calling it.

Exit codes: 0 success; 2 bad usage or bad input (one line on stderr); subcommands may use others.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import metadata

__all__ = ["COMMAND_GROUP", "commands", "main"]

#: Entry-point group of the ``wass`` subcommands (name = "module:function").
COMMAND_GROUP = "wass.commands"

_USAGE = "usage: wass COMMAND [ARGS...]   (wass COMMAND --help for a command's options)"


def commands() -> dict[str, metadata.EntryPoint]:
    """The installed subcommands by name (not imported)."""
    return {ep.name: ep for ep in metadata.entry_points(group=COMMAND_GROUP)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wass`` with ``argv`` (default: the process's arguments); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    table = commands()
    if not args or args[0] in ("-h", "--help"):
        out = sys.stdout if args else sys.stderr
        print(_USAGE, file=out)
        print("commands: " + (", ".join(sorted(table)) or "(none installed)"), file=out)
        return 0 if args else 2
    name = args[0]
    if name not in table:
        print(
            f"wass: unknown command {name!r}; commands: {', '.join(sorted(table))}",
            file=sys.stderr,
        )
        return 2
    run: Callable[[list[str]], int | None] = table[name].load()
    return int(run(args[1:]) or 0)
