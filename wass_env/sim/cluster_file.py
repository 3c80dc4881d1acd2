"""Cluster files: a real cluster's nodes, by hostname, in YAML or JSON.

A cluster file describes the machines a plan is made for (``wass plan --cluster FILE``)::

    name: lab                    # optional (default: the file stem)
    bandwidth: 1.25e9            # [bytes/s] between two nodes (default 10 Gb/s)
    latency: 1.0e-4              # [s] per transfer (default 0.1 ms)
    dispatch_latency: 0.6        # [s] batch system: last parent ends -> child starts (default 0)
    storage_bandwidth: 1.25e9    # [bytes/s] shared storage, optional
    storage_latency: 1.0e-4      # [s] optional
    nodes:
      - {name: n1, speed: 2.0, cores: 4, memory_gib: 8}
      - {name: n2, speed: 1.0, cores: 4, memory_gib: 8, type: standard}
      - {name: n3, speed: 0.5, cores: 2, memory_gib: 4, down: true}

Per node: ``name`` (a hostname, as Slurm knows the node: letters, digits and ``-`` in
dot-separated labels), ``speed`` (work runs ``speed`` times faster than on the reference
node), ``cores``, ``memory_gib`` (GiB, 2^30 bytes) and optionally ``type`` and ``down`` (a node
marked down takes no tasks). JSON files have the same structure. :func:`load_cluster` also
accepts a preset name (``het16``, ...), whose nodes are called ``n1``, ``n2``, ...

Every mistake raises :class:`~wass_env.sim.cluster.ClusterError` naming the file, the field (as
``nodes[2].cores``) and the value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any, NoReturn

from wass_env.sim.cluster import (
    DEFAULT_BANDWIDTH,
    DEFAULT_LATENCY,
    GIB,
    PRESETS,
    Cluster,
    ClusterError,
    preset,
)

__all__ = ["is_hostname", "load_cluster", "parse_cluster"]

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TOP_FIELDS = {
    "name",
    "bandwidth",
    "latency",
    "dispatch_latency",
    "storage_bandwidth",
    "storage_latency",
    "nodes",
}
_NODE_FIELDS = {"name", "speed", "cores", "memory_gib", "type", "down"}


def is_hostname(name: str) -> bool:
    """True if ``name`` is a valid hostname (RFC 1123: dot-separated labels of 1-63 letters,
    digits and ``-``, not starting or ending with ``-``; at most 253 characters)."""
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def load_cluster(spec: str | PathLike[str]) -> Cluster:
    """A cluster from a preset name or a YAML/JSON cluster file (see the module docstring).

    Args:
        spec: A preset name (``"het16"``) or the path of a ``.yaml``/``.yml``/``.json`` file.

    Raises:
        ClusterError: if the file cannot be read or parsed, or a field is missing or invalid
            (the message names the file, the field and the value).
    """
    text_spec = str(spec)
    if text_spec in PRESETS and not Path(text_spec).exists():
        base = preset(text_spec)
        return Cluster(
            base.speed,
            base.cores,
            base.memory,
            bandwidth=base.bandwidth_matrix if base.bandwidth is None else base.bandwidth,
            latency=base.latency_matrix if base.latency is None else base.latency,
            node_type=base.node_type,
            name=base.name,
            node_name=[f"n{i + 1}" for i in range(base.n_nodes)],
        )
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        hint = "" if path.suffix else f" (not a preset either: {', '.join(PRESETS)})"
        raise ClusterError(f"{path}: cannot read cluster file: {exc}{hint}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClusterError(
                f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ClusterError(f"{path}: not valid YAML{where}: {problem}") from None
    return parse_cluster(data, source=str(path), default_name=path.stem)


def _fail(source: str, field: str, problem: str) -> NoReturn:
    raise ClusterError(": ".join(p for p in (source, field, problem) if p))


def _number(source: str, field: str, value: Any, *, positive: bool, integer: bool = False) -> float:
    x = math.nan
    if isinstance(value, str):
        # YAML 1.1 reads 1.25e9 (no sign after the e) as a string: accept numeric strings.
        try:
            x = float(value)
        except ValueError:
            _fail(source, field, f"expected a number, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(source, field, f"expected a number, got {value!r}")
    else:
        x = float(value)
    bad = not math.isfinite(x) or (x <= 0 if positive else x < 0)
    if bad:
        _fail(
            source, field, f"must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}"
        )
    if integer and x != int(x):
        _fail(source, field, f"must be a whole number, got {value!r}")
    return x


def parse_cluster(
    data: Any, *, source: str = "<cluster>", default_name: str = "cluster"
) -> Cluster:
    """A cluster from an already parsed cluster file (see the module docstring).

    Raises:
        ClusterError: naming ``source``, the field and the value.
    """
    if not isinstance(data, Mapping):
        _fail(source, "", f"expected a mapping with a 'nodes' list, got {type(data).__name__}")
    extra = sorted(set(data) - _TOP_FIELDS)
    if extra:
        _fail(
            source,
            str(extra[0]),
            f"unknown field; expected one of {', '.join(sorted(_TOP_FIELDS))}",
        )
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        _fail(source, "name", f"expected a non-empty string, got {name!r}")
    net: dict[str, float] = {}
    for key, positive in (
        ("bandwidth", True),
        ("latency", False),
        ("dispatch_latency", False),
        ("storage_bandwidth", True),
        ("storage_latency", False),
    ):
        if data.get(key) is not None:
            net[key] = _number(source, key, data[key], positive=positive)
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        _fail(source, "nodes", f"expected a non-empty list of nodes, got {nodes!r}")
    names: list[str] = []
    speed: list[float] = []
    cores: list[int] = []
    memory: list[float] = []
    types: list[str] = []
    down: list[bool] = []
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, Mapping):
            _fail(
                source, where, f"expected a mapping (name, speed, cores, memory_gib), got {node!r}"
            )
        extra = sorted(set(node) - _NODE_FIELDS)
        if extra:
            hint = " (memory is given as memory_gib, in GiB)" if "memory" in extra else ""
            _fail(
                source,
                f"{where}.{extra[0]}",
                f"unknown field; expected one of {', '.join(sorted(_NODE_FIELDS))}{hint}",
            )
        for key in ("name", "speed", "cores", "memory_gib"):
            if key not in node:
                _fail(source, f"{where}.{key}", "required field is missing")
        host = node["name"]
        if not isinstance(host, str) or not is_hostname(host):
            _fail(
                source,
                f"{where}.name",
                f"{host!r} is not a valid hostname (letters, digits and '-' in dot-separated "
                "labels of 1-63 characters, not starting or ending with '-')",
            )
        if host in names:
            _fail(source, f"{where}.name", f"duplicate node name {host!r}")
        names.append(host)
        speed.append(_number(source, f"{where}.speed", node["speed"], positive=True))
        cores.append(
            int(_number(source, f"{where}.cores", node["cores"], positive=True, integer=True))
        )
        memory.append(
            _number(source, f"{where}.memory_gib", node["memory_gib"], positive=True) * GIB
        )
        ntype = node.get("type", "node")
        if not isinstance(ntype, str):
            _fail(source, f"{where}.type", f"expected a string, got {ntype!r}")
        types.append(ntype)
        is_down = node.get("down", False)
        if not isinstance(is_down, bool):
            _fail(source, f"{where}.down", f"expected true or false, got {is_down!r}")
        down.append(is_down)
    if all(down):
        _fail(source, "nodes", "every node is marked down")
    return Cluster(
        speed,
        cores,
        memory,
        bandwidth=net.get("bandwidth", DEFAULT_BANDWIDTH),
        latency=net.get("latency", DEFAULT_LATENCY),
        node_type=types,
        storage_bandwidth=net.get("storage_bandwidth"),
        storage_latency=net.get("storage_latency"),
        name=name,
        node_name=names,
        down=down,
        dispatch_latency=net.get("dispatch_latency", 0.0),
    )
