"""A small checksummed container for named NumPy arrays, written atomically.

The knowledge base and the teacher model are both saved in this format, so that a crash never
leaves a half-written file behind and a damaged file is refused with a clear message instead of
being half-read. Layout of a file::

    MAGIC (8 bytes) | header length (8 bytes, little-endian) | header (JSON, UTF-8)
    | payload (the arrays, each aligned to 64 bytes) | SHA-256 of everything before it (32 bytes)

The header names the ``kind`` of content (``"knowledge-base"``, ``"teacher-model"``), its
``format_version``, every array's dtype, shape and offset in the payload, and free-form ``meta``
(JSON). Reading checks, in this order: the magic, the header, the kind, the format version, the
file length (truncation) and the checksum (corruption).

Writes go to a temporary file in the destination directory, are flushed to disk, then moved over
the destination with :func:`os.replace`, which is atomic on POSIX and Windows: readers see either
the old file or the new one, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wass_env.errors import WassError
from wass_env.io import atomic_write

__all__ = ["MAGIC", "StorageError", "read_arrays", "write_arrays"]

MAGIC = b"WASSARR\x00"
_ALIGN = 64  # [bytes] payload alignment of every array
_DIGEST = 32  # [bytes] SHA-256


class StorageError(WassError):
    """A container file is missing, damaged, of another kind or of another format version."""


def write_arrays(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    *,
    kind: str,
    version: int,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Save named arrays (plain numeric dtypes) and JSON metadata to ``path``, atomically.

    Args:
        path: Destination file.
        arrays: Arrays to store, by name.
        kind: Content kind, checked on reading.
        version: Format version of that kind, checked on reading.
        meta: JSON-serialisable metadata.
    """
    entries: dict[str, dict[str, Any]] = {}
    blobs: list[tuple[int, np.ndarray]] = []
    offset = 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; only numeric arrays can be stored")
        offset = -(-offset // _ALIGN) * _ALIGN
        entries[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        blobs.append((offset, a))
        offset += a.nbytes
    header = {
        "kind": kind,
        "format_version": int(version),
        "payload_bytes": offset,
        "arrays": entries,
        "meta": dict(meta or {}),
    }
    head = json.dumps(header, separators=(",", ":")).encode()

    def write(fh: Any) -> None:
        digest = hashlib.sha256()

        def put(data: bytes | memoryview) -> None:
            fh.write(data)
            digest.update(data)

        put(MAGIC)
        put(struct.pack("<Q", len(head)))
        put(head)
        pos = 0
        for off, a in blobs:
            if off > pos:
                put(b"\x00" * (off - pos))
            put(a.data.cast("B") if a.nbytes else b"")
            pos = off + a.nbytes
        fh.write(digest.digest())

    atomic_write(path, write)


def read_arrays(
    path: str | os.PathLike[str],
    *,
    kind: str,
    version: int,
    error: type[StorageError] = StorageError,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a file written by :func:`write_arrays`.

    Args:
        path: The file.
        kind: Expected content kind.
        version: Expected format version.
        error: Exception class to raise (a subclass of :class:`StorageError`).

    Returns:
        ``(arrays, meta)``; the arrays are read-only views of the file's bytes.

    Raises:
        StorageError: (or ``error``) naming the file and the problem: missing, not a container,
            of another kind or version, truncated, or corrupted.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except IsADirectoryError:
        raise error(f"{p}: is a directory, expected a {kind} file") from None
    if len(data) < len(MAGIC) + 8 or data[: len(MAGIC)] != MAGIC:
        raise error(f"{p}: not a {kind} file (bad magic bytes)")
    (hlen,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    if start + hlen > len(data):
        raise error(f"{p}: truncated ({len(data)} bytes; the header alone needs {start + hlen})")
    try:
        header = json.loads(data[start : start + hlen].decode())
        file_kind = header["kind"]
        file_version = header["format_version"]
        payload_bytes = int(header["payload_bytes"])
        entries = header["arrays"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise error(f"{p}: corrupted header ({type(exc).__name__}: {exc})") from None
    if file_kind != kind:
        raise error(f"{p}: holds a {file_kind!r}, expected a {kind!r}")
    if file_version != version:
        raise error(
            f"{p}: format version {file_version!r}, this code reads version {version}; "
            "rebuild the file with this version"
        )
    body = start + hlen
    expected = body + payload_bytes + _DIGEST
    if len(data) < expected:
        raise error(f"{p}: truncated ({len(data)} bytes, expected {expected})")
    if len(data) > expected:
        raise error(f"{p}: corrupted ({len(data) - expected} unexpected trailing bytes)")
    if hashlib.sha256(memoryview(data)[: expected - _DIGEST]).digest() != data[-_DIGEST:]:
        raise error(f"{p}: corrupted (checksum mismatch)")
    arrays: dict[str, np.ndarray] = {}
    try:
        for name, e in entries.items():
            dt = np.dtype(e["dtype"])
            shape = tuple(int(s) for s in e["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            off = body + int(e["offset"])
            if off + count * dt.itemsize > body + payload_bytes:
                raise ValueError(f"array {name!r} runs past the payload")
            arrays[name] = np.frombuffer(data, dtype=dt, count=count, offset=off).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise error(f"{p}: corrupted array table ({exc})") from None
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise error(f"{p}: corrupted header (meta is not an object)")
    return arrays, meta
