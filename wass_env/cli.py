"""One error boundary for every command line: a user mistake is one line on stderr, exit code 2.

What counts as a user mistake (see :func:`user_error`): a :class:`~wass_env.errors.WassError`
(bad input, named with its value), an ``OSError`` (a path that cannot be read or written), and
the errors Hydra and OmegaConf raise for a bad command line or config (an unknown override key,
a missing config group option, a value of the wrong type for a structured config, a target that
cannot be instantiated). Anything else is a bug in wass and keeps its traceback.

Three ways in, for the three kinds of entry point:

* :func:`run_cli` calls a function behind the boundary and returns its exit code;
* :func:`cli` decorates an ``argparse``-style ``main(argv) -> int`` with it;
* :func:`hydra_app` replaces ``@hydra.main`` for a Hydra app: the command line's overrides are
  composed (and checked by the app's own ``check``) *before* Hydra starts, so a bad override
  or an output directory that cannot be created is one line with exit code 2, not Hydra's
  several lines with exit code 1; the task then runs behind the boundary. ``--help`` lists the
  app's config groups and every option with its value and a one-line description taken from
  the structured configs' docstrings (:func:`config_help`).

Every Hydra app reads the one config tree :data:`CONFIG_DIR`, shipped inside the package
(``wass_env/conf`` is a link to the repository's top-level ``conf/``: the same files, whether
run from a checkout or from an installed wheel).

:class:`ArgumentParser` is ``argparse``'s, reporting its errors the same way (one line, exit 2).
:func:`check_output_dir` and :func:`check_output_file` check, before any long work, that an
output directory or file can be created.

Example::

    @hydra_app(config_name="train", check=check_config)
    def main(cfg: DictConfig) -> int:
        return run(cfg)

    if __name__ == "__main__":
        sys.exit(main())  # or main(["seed=3"]) from another entry point
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import itertools
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from wass_env.errors import WassError

__all__ = [
    "CONFIG_DIR",
    "EXIT_USER_ERROR",
    "ArgumentParser",
    "OutputPathError",
    "OverrideError",
    "check_output_dir",
    "check_output_file",
    "check_overrides",
    "cli",
    "compose_config",
    "compose_overrides",
    "config_help",
    "field_docs",
    "hydra_app",
    "one_line",
    "run_cli",
    "user_error",
]

#: Exit status of a command line given bad input.
EXIT_USER_ERROR = 2
#: The Hydra config tree of every wass app (the top-level ``conf/`` of a checkout, shipped in
#: the wheel as ``wass_env/conf``).
CONFIG_DIR: Path = Path(__file__).resolve().parent / "conf"

F = TypeVar("F", bound=Callable[..., Any])

# Hydra's flags that only choose how the app runs. With any other of its flags (help, printing
# the config, shell completion, another config directory or name) the command line is left to
# Hydra alone.
_HYDRA_RUN_FLAGS = frozenset({"-m", "--multirun", "-r", "--run"})


class OutputPathError(WassError):
    """An output directory that cannot be created or written (the message names it)."""


def one_line(text: str) -> str:
    """``text`` on one line: lines joined with ``"; "``, a list after a line ending in ``:``
    joined with ``", "``, indentation and Hydra's config search path dropped."""
    text = text.split("\nConfig search path:", 1)[0]
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("object_type=", "reference_type="))]
    out = ""
    in_list = False
    for ln in lines:
        if not out:
            out = ln
        elif in_list:
            out += (" " if out.endswith(":") else ", ") + ln
        else:
            out += (" " if out.endswith((".", ";", ":", ",")) else "; ") + ln
        if ln.endswith(":"):
            in_list = True
    return out


def _hydra_error_types() -> tuple[type[BaseException], ...]:
    # Only look for Hydra's and OmegaConf's exceptions when they are loaded: an exception of
    # theirs cannot exist otherwise, and wass_env itself does not need them.
    types: list[type[BaseException]] = []
    hydra_errors = sys.modules.get("hydra.errors")
    if hydra_errors is not None:
        types.append(hydra_errors.HydraException)
    omegaconf_errors = sys.modules.get("omegaconf.errors")
    if omegaconf_errors is not None:
        types.append(omegaconf_errors.OmegaConfBaseException)
    return tuple(types)


def user_error(exc: BaseException) -> str | None:
    """The one-line message for an exception that bad input caused, or None for a bug."""
    if isinstance(exc, WassError):
        return one_line(str(exc))
    if isinstance(exc, OSError):
        if exc.filename is not None and exc.strerror:
            names = [str(exc.filename)]
            if exc.filename2 is not None:
                names.append(str(exc.filename2))
            return f"{' -> '.join(names)}: {exc.strerror}"
        return one_line(str(exc)) or type(exc).__name__
    hydra_types = _hydra_error_types()
    if hydra_types and isinstance(exc, hydra_types):
        text = one_line(str(exc))
        cause = exc.__cause__
        if cause is not None and not isinstance(exc, _instantiation_error()):
            extra = user_error(cause) or one_line(str(cause))
            if extra and extra not in text:
                text = f"{text}: {extra}" if text else extra
        return text or type(exc).__name__
    return None


def _instantiation_error() -> tuple[type[BaseException], ...]:
    hydra_errors = sys.modules.get("hydra.errors")
    return (hydra_errors.InstantiationException,) if hydra_errors is not None else ()


def run_cli(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Call ``fn(*args, **kwargs)`` behind the boundary.

    Returns:
        ``fn``'s result as an exit status (None counts as 0), or :data:`EXIT_USER_ERROR` after
        printing ``error: <message>`` on one line of stderr when bad input stopped it.

    Raises:
        Exception: anything that is not a user mistake (a bug), unchanged.
    """
    try:
        code = fn(*args, **kwargs)
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    return int(code or 0)


def cli(main: F) -> F:
    """Put an entry point ``main(argv=None) -> int`` behind the boundary (see :func:`run_cli`)."""

    @functools.wraps(main)
    def bounded(*args: Any, **kwargs: Any) -> int:
        return run_cli(main, *args, **kwargs)

    return bounded  # type: ignore[return-value]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line, ``error: ...``, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: <message>`` on one line of stderr and exit with status 2."""
        print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


def _unusable(directory: Path) -> str | None:
    """Why files cannot be written in ``directory`` (created if needed), or None."""
    d = directory.absolute()
    while not d.exists():
        d = d.parent
    if not d.is_dir():
        return f"{str(d)!r} is not a directory"
    if not os.access(d, os.W_OK | os.X_OK):
        return f"{str(d)!r} is not writable"
    return None


def check_output_dir(path: str | os.PathLike[str], field: str) -> Path:
    """Check that directory ``path`` exists and is writable, or can be created.

    Nothing is created: call it before long work so that a bad output path fails at once.

    Args:
        path: The directory.
        field: The parameter it came from (``"--out"``, ``"hydra.run.dir"``), for the message.

    Raises:
        OutputPathError: naming the parameter, the path and why it cannot be used.
    """
    p = Path(path)
    why = _unusable(p)
    if why is not None:
        raise OutputPathError(f"{field}={str(p)!r}: cannot be created or written: {why}")
    return p


def check_output_file(path: str | os.PathLike[str], field: str) -> Path:
    """Check that file ``path`` can be written (its directory created if needed), like
    :func:`check_output_dir`.

    Raises:
        OutputPathError: naming the parameter, the path and why it cannot be written.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{field}={str(p)!r}: is a directory, expected a file name")
    why = _unusable(p.parent)
    if why is not None:
        raise OutputPathError(f"{field}={str(p)!r}: cannot be written: {why}")
    return p


# ---------------------------------------------------------------------------------------------
# Hydra apps


def _sweep(overrides: Sequence[str]) -> list[list[str]]:
    """Every job's overrides of a ``--multirun`` command line (the basic sweeper's product)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices: list[list[str]] = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [str(o.input_line)]
        for o in parsed
    ]
    return [list(job) for job in itertools.product(*choices)]


class OverrideError(WassError):
    """A command-line override that OmegaConf fails on with a plain Python error (an integer too
    large for a float field, for instance): the message is OmegaConf's, naming the key."""


def compose_overrides(config_name: str, overrides: Sequence[str], **kwargs: Any) -> Any:
    """``hydra.compose`` inside an initialised config context, with every failure a user error.

    Hydra and OmegaConf report most bad overrides with their own exceptions (which
    :func:`user_error` knows); a few escape as plain ``ValueError``, ``TypeError`` or
    ``OverflowError`` (``eval.noise=1<400 zeros>``). The shipped configs compose, so whatever
    fails here comes from the overrides: those become an :class:`OverrideError`.

    Raises:
        hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException, OverrideError: on
            a bad override.
    """
    from hydra import compose

    try:
        return compose(config_name, overrides=list(overrides), **kwargs)
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        if user_error(exc) is not None:
            raise
        raise OverrideError(f"bad override in {list(overrides)}: {one_line(str(exc))}") from None


def compose_config(config_name: str, overrides: Sequence[str] = (), **kwargs: Any) -> Any:
    """A config of :data:`CONFIG_DIR` composed with ``overrides`` (:func:`compose_overrides`),
    inside a running Hydra app (which has the same config tree) or outside one.

    Raises:
        hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException, OverrideError: on
            a bad override.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return compose_overrides(config_name, overrides, **kwargs)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose_overrides(config_name, overrides, **kwargs)


def check_overrides(
    config_dir: str | os.PathLike[str],
    config_name: str,
    argv: Sequence[str],
    check: Callable[[Any], None] | None = None,
) -> None:
    """Compose the config a Hydra command line asks for, and check it, without running it.

    Args:
        config_dir: Absolute path of the primary config directory.
        config_name: Primary config name.
        argv: The command line's arguments (``sys.argv[1:]``).
        check: The app's own validation of a composed config (raises a ``WassError``).

    Raises:
        hydra.errors.HydraException, omegaconf.errors.OmegaConfBaseException: on a bad
            override, as Hydra reports it.
        OutputPathError: when the run (or sweep) directory cannot be created.
        WassError: whatever ``check`` raises.
    """
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    jobs = _sweep(overrides) if multirun else [overrides]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        for job in jobs:
            cfg = compose_overrides(config_name, job, return_hydra_config=True)
            hc = cfg.hydra
            field, where = ("hydra.sweep.dir", hc.sweep) if multirun else ("hydra.run.dir", hc.run)
            try:
                out = OmegaConf.select(where, "dir", throw_on_resolution_failure=True)
            except Exception:  # some fields resolve at run time only (the job name, ...)
                out = None
            if out is not None:
                check_output_dir(str(out), field)
            if check is not None:
                with_job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
                check(with_job)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)  # reST roles: :data:`x` -> x
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.split(r"(?<=[a-z0-9)\]])\. (?=[A-Z(])", text, maxsplit=1)[0].rstrip(".")


def _docstring_entries(doc: str) -> dict[str, str]:
    """``name -> text`` of the ``Attributes:`` section of a Google-style docstring."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_section = False
    indent = 0
    for line in doc.splitlines():
        stripped = line.strip()
        if not in_section:
            in_section = stripped == "Attributes:"
            continue
        if not stripped:
            current = None
            continue
        lead = len(line) - len(line.lstrip())
        if lead == 0:  # the next section
            break
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?: \(.*?\))?:\s*(.*)", stripped)
        if m and (indent == 0 or lead <= indent):
            indent = lead
            current = entries.setdefault(m.group(1), [])
            current.append(m.group(2))
        elif current is not None:
            current.append(stripped)
    return {k: " ".join(v) for k, v in entries.items()}


_FIELD_LINE = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s*:[^#]*?(?:#\s*(.*))?$")


def _comment_entries(cls: type) -> dict[str, str]:
    """``name -> text`` of the comments on a dataclass's field lines (a trailing comment, or the
    comment lines just above the field)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a compiled or interactive class)
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        m = _FIELD_LINE.match(line)
        if m and not stripped.startswith(("def ", "@", "return", "class ")):
            text = m.group(2) or " ".join(above)
            if text:
                out.setdefault(m.group(1), text)
        above = []
    return out


def field_docs(cls: type) -> dict[str, str]:
    """One-line descriptions of a dataclass's fields (a structured config schema's field docs).

    A field's description is the first sentence of its entry in the ``Attributes:`` section of
    the class's (Google-style) docstring, or else of the comment on its line (or the comment
    lines just above it). Base classes' descriptions are included.

    Args:
        cls: A dataclass.

    Returns:
        Field name -> description, for the fields that have one.
    """
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        texts = _comment_entries(klass)
        doc = vars(klass).get("__doc__")
        if doc:
            texts.update(_docstring_entries(inspect.cleandoc(doc)))
        names = {f.name for f in dataclasses.fields(klass)}
        out.update({k: _first_sentence(v) for k, v in texts.items() if k in names and v})
    return out


def _short(value: Any, width: int = 48) -> str:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    if isinstance(value, str):
        text = value if value and value.strip() == value and "," not in value else repr(value)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, (list, tuple, dict)):
        text = re.sub(r"'([^',:{}\[\] ]*)'", r"\1", str(value)).replace("None", "null")
        text = text.replace("True", "true").replace("False", "false")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _option_lines(node: Any, prefix: str, docs: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(key, value, description)`` of every option under ``node``: structured nodes are
    opened, plain dicts and lists are one value."""
    from omegaconf import DictConfig, OmegaConf

    typ = OmegaConf.get_type(node)
    own = field_docs(typ) if typ is not None and dataclasses.is_dataclass(typ) else {}
    rows: list[tuple[str, str, str]] = []
    for key in node:
        if key == "hydra":
            continue
        child = node._get_node(key)
        path = f"{prefix}{key}"
        text = own.get(str(key), docs.get(path, ""))
        child_type = OmegaConf.get_type(node, str(key))
        structured = isinstance(child, DictConfig) and dataclasses.is_dataclass(child_type)
        if structured and not OmegaConf.is_missing(node, str(key)) and child._is_none() is False:
            if text:
                rows.append((path, "", text))
            rows.extend(_option_lines(child, f"{path}.", docs))
        else:
            value = child._value() if not OmegaConf.is_missing(node, str(key)) else "???"
            rows.append((path, _short(value), text))
    return rows


def _group_options(config_dir: Path, group: str) -> list[str]:
    from hydra.core.config_store import ConfigStore

    names = {p.stem for p in (config_dir / group).glob("*.yaml")}
    try:
        stored = ConfigStore.instance().list(group)
    except OSError:
        stored = []
    names |= {n.removesuffix(".yaml") for n in stored}
    return sorted(n for n in names if not n.endswith("_schema"))


def config_help(
    config_dir: str | os.PathLike[str],
    config_name: str,
    overrides: Sequence[str] = (),
    *,
    prog: str = "app",
    description: str = "",
) -> str:
    """The ``--help`` text of a Hydra app: its config groups (those its defaults list uses,
    and Hydra's launcher and sweeper) with their options, then every option of the composed
    config with its value and the one-line description its structured config gives it.

    Args:
        config_dir: Absolute path of the config directory.
        config_name: Primary config name.
        overrides: The command line's overrides (the help shows the config they compose).
        prog: The command's name, for the usage line.
        description: One paragraph on what the app does.
    """
    from hydra import initialize_config_dir

    config_dir = Path(config_dir)
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose_overrides(config_name, list(overrides), return_hydra_config=True)
        choices = dict(cfg.hydra.runtime.choices)
        groups = [g for g in choices if not g.startswith("hydra/")]
        groups += ["hydra/launcher", "hydra/sweeper"]
        group_rows = [(g, _group_options(config_dir, g), choices.get(g)) for g in groups]
    lines = [f"{prog}: {description}".rstrip(": ")] if description else [prog]
    lines += [
        "",
        f"usage: {prog} [KEY=VALUE ...] [GROUP=OPTION ...]",
        f"       {prog} -m KEY=A,B ...   (a sweep: one job per combination; "
        "hydra/launcher=joblib runs them in parallel)",
        f"       {prog} --cfg job         (print the composed config)",
        "",
        "Config groups (GROUP=OPTION; now: the current choice):",
    ]
    width = max(len(g) for g, _, _ in group_rows)
    for g, options, now in group_rows:
        lines.append(f"  {g:<{width}}  {', '.join(options)}   (now: {now})")
    rows = _option_lines(cfg, "", {})
    kw = min(max(len(k) + len(v) + 1 for k, v, _ in rows), 44)
    lines += ["", "Options (KEY=VALUE; the value shown is the current one):"]
    for key, value, text in rows:
        head = f"{key}={value}" if value else f"{key}:"
        lines.append(f"  {head:<{kw}}  {text}".rstrip() if len(head) <= kw else f"  {head}")
        if len(head) > kw and text:
            lines.append(f"  {'':<{kw}}  {text}")
    lines += ["", "Hydra's own options: --hydra-help."]
    return "\n".join(lines)


def hydra_app(
    *,
    config_name: str,
    config_path: str | os.PathLike[str] | None = None,
    check: Callable[[Any], None] | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> Callable[[Callable[[Any], int | None]], Callable[..., int]]:
    """``@hydra.main`` (version base 1.3) behind the error boundary.

    Before Hydra runs, the command line's overrides are composed with Hydra's compose API (each
    job of a ``--multirun`` sweep), the run or sweep directory is checked with
    :func:`check_output_dir`, and ``check`` validates the composed config: every mistake there
    is one line and exit code 2. ``-h``/``--help`` prints :func:`config_help`; command lines
    with Hydra's other flags (``--hydra-help``, ``--cfg``, ``--config-name``, ...) go to Hydra
    unchecked. The task then runs as a Hydra task (output directory, ``.hydra/`` provenance,
    sweeps) behind :func:`run_cli`; a non-zero result becomes the exit status.

    Args:
        config_name: Primary config name.
        config_path: Config directory, absolute or relative to the file of the decorated
            function (as for ``hydra.main``); default :data:`CONFIG_DIR`.
        check: Validation of a composed config (without its ``hydra`` node), raising a
            :class:`~wass_env.errors.WassError` naming the field and value.
        prog: The command's name in usage lines (default ``wass <config_name>``).
        description: One line on what the app does, for ``--help`` (default: the first line
            of the task's docstring).

    Returns:
        A decorator turning the task into ``main(argv=None) -> int``: ``argv`` defaults to the
        process's arguments; the result is the exit status (0 when the task succeeded).
    """

    def decorate(task: Callable[[Any], int | None]) -> Callable[..., int]:
        import hydra

        @functools.wraps(task)
        def bounded(cfg: Any) -> None:
            code = run_cli(task, cfg)
            if code:
                sys.exit(code)

        config_dir = Path(CONFIG_DIR if config_path is None else config_path)
        if not config_dir.is_absolute():
            config_dir = Path(
                os.path.normpath(
                    os.path.join(
                        os.path.dirname(os.path.realpath(inspect.getfile(task))), config_dir
                    )
                )
            )
        hydra_main = hydra.main(
            version_base="1.3", config_path=str(config_dir), config_name=config_name
        )(bounded)
        name = prog or f"wass {config_name.replace('_', '-')}"
        about = description or (inspect.getdoc(task) or "").split("\n", 1)[0]

        @functools.wraps(task)
        def main(argv: Sequence[str] | None = None) -> int:
            if argv is not None:
                sys.argv = [name, *argv]
            args = sys.argv[1:]
            flags = [a for a in args if a.startswith("-")]
            if any(f in ("-h", "--help") for f in flags):
                overrides = [a for a in args if not a.startswith("-")]
                return run_cli(
                    lambda: print(
                        config_help(
                            config_dir, config_name, overrides, prog=name, description=about
                        )
                    )
                )
            if all(f in _HYDRA_RUN_FLAGS for f in flags):
                code = run_cli(check_overrides, config_dir, config_name, args, check)
                if code:
                    return code
            try:
                hydra_main()
            except SystemExit as exc:
                return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            return 0

        return main

    return decorate
