"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file wass writes (result tables, plots, checkpoints, knowledge bases, models) goes through
:func:`atomic_write`: the content fills a temporary file in the destination directory (so that
:func:`os.replace` stays within one file system), which is flushed, given the permissions a plain
``open`` would give, and renamed over the destination. If writing fails, or the process is
killed, the destination is untouched; temporary files a killed writer left behind
(``.<name>.<random>.tmp``, with the writer's extension after it when it asked for one) are
removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "atomic_write_text"]


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temp_name(name: str) -> re.Pattern[str]:
    """What :func:`atomic_path` names the temporary files of ``name``: ``.<name>.<random>.tmp``,
    plus the requested suffix when there is one (``.model.zip.k3j_x9ab.tmp.zip``)."""
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp(?:\.[A-Za-z0-9]+)?")


def _remove_stale(dest: Path) -> None:
    pattern = _temp_name(dest.name)
    for stale in dest.parent.iterdir():
        if pattern.fullmatch(stale.name):
            with contextlib.suppress(OSError):
                stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path that replaces ``path`` when the block exits without an exception.

    For writers that want a file name rather than a file object (``model.save(tmp)``,
    ``fig.savefig(tmp)``). ``suffix`` lets libraries that infer the format from the name see
    the right extension: the temporary file is ``.<name>.<random>.tmp<suffix>``, so the next
    write of ``path`` recognises it as stale whatever the suffix.

    Raises:
        OSError: if the directory cannot be created or written (the message names it).
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(dest)
    tail = ".tmp" if suffix == ".tmp" else f".tmp{suffix}"  # every name ends in .tmp[.ext]
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=tail, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], Any] | bytes | str,
    *,
    binary: bool | None = None,
) -> Path:
    """Write ``path`` atomically.

    Args:
        path: Destination; its directory is created if needed.
        write: The content (``bytes`` or ``str``), or a function that fills the open temporary
            file (binary mode unless ``binary=False``).
        binary: File mode for a ``write`` function (default binary); ignored for content.

    Returns:
        The destination path.
    """
    if isinstance(write, (bytes, str)):
        data = write
        binary = isinstance(data, bytes)

        def write(fh: IO[Any]) -> None:
            fh.write(data)

    mode = "wb" if binary is None or binary else "w"
    text_args: dict[str, Any] = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
    with atomic_path(path) as tmp, open(tmp, mode, **text_args) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, text)
