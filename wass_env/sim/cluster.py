"""Clusters: compute nodes and the network between them.

A :class:`Cluster` has ``n_nodes`` nodes, each with a speed factor (work runs ``speed`` times
faster than on the reference node), a number of cores and memory (both consumed by the tasks
running there). Optional per-task-type speedups model accelerator nodes. Moving data within a node
is free; between nodes, the ``network`` model decides what a transfer costs:

* ``"contention_free"`` (default, the HEFT literature's model): a private link per node pair, so
  moving ``b`` bytes from node ``i`` to node ``j != i`` takes ``latency[i, j] + b /
  bandwidth[i, j]`` seconds however many transfers run at once. External input files are read
  from shared storage at ``storage_latency + b / storage_bandwidth`` seconds, whatever the node.
* ``"nic"``: every node has one full-duplex network interface, an up link and a down link of
  ``bandwidth`` bytes/s each, behind a non-blocking switch; a transfer from ``i`` to ``j`` uses
  up(i) and down(j). Shared storage is one more endpoint with its own interface of
  ``storage_bandwidth``. Concurrent transfers share the links by max-min fairness (see
  :mod:`wass_env.sim.network`); a transfer alone on its links costs what it costs without
  contention.
* ``"shared_nic"``: like ``"nic"`` but each node has one half-duplex link that its outgoing and
  incoming transfers share.

Both NIC models need one bandwidth and one latency for the whole cluster (scalars).

Size. A scalar network is stored as two numbers: no ``n x n`` matrix exists unless the user gives
one (``bandwidth_matrix`` and ``latency_matrix`` are then read-only broadcast views that take no
memory). A cluster has at most :data:`MAX_NODES` nodes.

Nodes have names (hostnames on a real cluster; ``node0``, ``node1``, ... by default), and a node
may be marked *down*: no task fits on it. ``dispatch_latency`` models a batch system's delay
between the last parent of a task finishing and the task starting (Slurm's dependency release
and dispatch: about a second); 0, the default, is the classic model.

Presets: ``hom16 .. hom128`` (identical nodes) and ``het16 .. het128`` (four node types of
different speeds, cores and memory, interleaved); see :func:`make_cluster`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wass_env.errors import WassError
from wass_env.limits import MAX_COUNT, bad_counts, whole_number

__all__ = [
    "GIB",
    "MAX_NODES",
    "NETWORK_MODELS",
    "NODE_TYPES",
    "PRESETS",
    "Cluster",
    "ClusterError",
    "cluster_from_spec",
    "expand_cluster_spec",
    "make_cluster",
    "preset",
]

GIB = 1024.0**3
_TINY = float(np.finfo(np.float64).tiny)  # smallest normal float: 1 / _TINY is finite
DEFAULT_BANDWIDTH = 1.25e9  # [bytes/s] 10 Gb/s Ethernet
DEFAULT_LATENCY = 1e-4  # [s]

#: Node types of the heterogeneous presets: name -> (speed, cores, memory [bytes]).
NODE_TYPES: dict[str, tuple[float, int, float]] = {
    "fast": (2.0, 4, 64 * GIB),
    "standard": (1.0, 8, 64 * GIB),
    "slow": (0.5, 8, 32 * GIB),
    "bigmem": (1.0, 16, 512 * GIB),
}
#: The homogeneous node: (speed, cores, memory).
HOMOGENEOUS_NODE: tuple[float, int, float] = (1.0, 8, 64 * GIB)

PRESETS: tuple[str, ...] = tuple(f"{kind}{n}" for kind in ("hom", "het") for n in (16, 32, 64, 128))

#: Network models (see the module docstring).
NETWORK_MODELS: tuple[str, ...] = ("contention_free", "nic", "shared_nic")
#: Most nodes a cluster may have. Per-episode arrays are ``tasks x nodes`` (runtimes, feasibility)
#: and a per-pair network is ``nodes x nodes``, so the bound keeps a mistyped size from asking for
#: hundreds of GiB; 65,536 nodes is larger than any machine in the TOP500 list counts in nodes.
MAX_NODES = 65_536


class ClusterError(WassError):
    """Raised when a cluster description is invalid."""


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Cluster:
    """Compute nodes plus a network.

    Args:
        speed: Speed factor per node (reference node = 1.0).
        cores: Cores per node.
        memory: Memory per node [bytes] (default: unlimited).
        bandwidth: Link bandwidth [bytes/s], a scalar or an ``(n, n)`` matrix (``"nic"`` and
            ``"shared_nic"``: the bandwidth of every node's interface, a scalar).
        latency: Link latency [s], a scalar or an ``(n, n)`` matrix (NIC models: a scalar, the
            latency of a whole transfer from one node to another).
        node_type: Type name per node (for display and features).
        type_speedup: Optional ``{task_type: per-node factor}``; a task of that type runs
            ``speed * factor`` times faster than the reference on each node.
        storage_bandwidth: Bandwidth from shared storage for external inputs [bytes/s]
            (default: ``bandwidth`` if it is a scalar, else its mean).
        storage_latency: Latency of a read from shared storage [s] (default: like ``latency``).
        name: Cluster name.
        node_name: Name per node (default ``node0``, ``node1``, ...); unique.
        down: Per node, True if it is marked down (it takes no tasks); default all up.
        dispatch_latency: Delay between the last parent of a task finishing and the task
            starting [s] (a batch system's dependency release and dispatch); default 0.
        network: Network model, one of :data:`NETWORK_MODELS`.

    Raises:
        ClusterError: naming the field and the value, for a bad size, a non-finite or
            non-positive value, an unknown network model, a matrix network under a NIC model,
            or more than :data:`MAX_NODES` nodes.
    """

    __slots__ = (
        "_bw_matrix",
        "_lat_matrix",
        "bandwidth",
        "cores",
        "dispatch_latency",
        "down",
        "latency",
        "memory",
        "name",
        "network",
        "node_name",
        "node_type",
        "speed",
        "storage_bandwidth",
        "storage_latency",
        "type_speedup",
    )

    def __init__(
        self,
        speed: ArrayLike,
        cores: ArrayLike,
        memory: ArrayLike | None = None,
        *,
        bandwidth: ArrayLike = DEFAULT_BANDWIDTH,
        latency: ArrayLike = DEFAULT_LATENCY,
        node_type: Sequence[str] | None = None,
        type_speedup: Mapping[str, ArrayLike] | None = None,
        storage_bandwidth: float | None = None,
        storage_latency: float | None = None,
        name: str = "cluster",
        network: str = "contention_free",
        node_name: Sequence[str] | None = None,
        down: ArrayLike | None = None,
        dispatch_latency: float = 0.0,
    ) -> None:
        self.name = name
        if network not in NETWORK_MODELS:
            raise ClusterError(
                f"cluster {name!r}: field 'network' must be one of {', '.join(NETWORK_MODELS)}, "
                f"got {network!r}"
            )
        self.network = network
        sp = self._numbers(speed, "speed")
        n = sp.size
        if n == 0:
            raise ClusterError(f"cluster {name!r} has no nodes")
        if n > MAX_NODES:
            raise ClusterError(
                f"cluster {name!r} has {n} nodes; at most {MAX_NODES} are supported (MAX_NODES)"
            )
        self.speed = _readonly(self._check(sp, "speed", positive=True))
        co = self._numbers(cores, "cores")
        if co.size == 1:
            co = np.full(n, co[0])
        if co.size != n:
            raise ClusterError(f"cluster {name!r}: {co.size} core counts for {n} nodes")
        bad = bad_counts(co)  # before the cast: int64(1e19) would wrap
        if bad.size:
            i = int(bad[0])
            raise ClusterError(
                f"cluster {name!r} node {i}: field 'cores' must be a whole number in "
                f"[1, {MAX_COUNT}], got {float(co[i])!r}"
            )
        self.cores = _readonly(co.astype(np.int64))
        if memory is None:
            mem = np.full(n, np.inf)
        else:
            mem = self._numbers(memory, "memory")
            if mem.size == 1:
                mem = np.full(n, mem[0])
            if mem.size != n:
                raise ClusterError(f"cluster {name!r}: {mem.size} memory sizes for {n} nodes")
            bad = np.flatnonzero(np.isnan(mem) | (mem <= 0))
            if bad.size:
                i = int(bad[0])
                raise ClusterError(
                    f"cluster {name!r} node {i}: field 'memory' must be > 0, got {mem[i]!r}"
                )
        self.memory = _readonly(mem)
        if node_type is None:
            self.node_type: tuple[str, ...] = ("node",) * n
        else:
            if isinstance(node_type, (str, bytes)) or not isinstance(node_type, Sequence):
                raise ClusterError(
                    f"cluster {name!r}: field 'node_type' must be a list of {n} names, "
                    f"got {node_type!r}"
                )
            if len(node_type) != n:
                raise ClusterError(f"cluster {name!r}: {len(node_type)} node types for {n} nodes")
            self.node_type = tuple(str(t) for t in node_type)
        self.type_speedup: dict[str, np.ndarray] = {}
        for ttype, fac in (type_speedup or {}).items():
            f = self._numbers(fac, f"type_speedup[{ttype!r}]")
            if f.size == 1:
                f = np.full(n, f[0])
            if f.size != n:
                raise ClusterError(
                    f"cluster {name!r}: type_speedup[{ttype!r}] has {f.size} values for {n} nodes"
                )
            self.type_speedup[str(ttype)] = _readonly(
                self._check(f, f"type_speedup[{ttype!r}]", positive=True)
            )

        try:
            bw = np.asarray(bandwidth, dtype=np.float64)
            lat = np.asarray(latency, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ClusterError(
                f"cluster {name!r}: bandwidth and latency must be numbers or {n}x{n} matrices, "
                f"got {bandwidth!r} and {latency!r}"
            ) from None
        for label, arr in (("bandwidth", bw), ("latency", lat)):
            if arr.ndim not in (0, 2) or (arr.ndim == 2 and arr.shape != (n, n)):
                raise ClusterError(
                    f"cluster {name!r}: {label} must be a scalar or a {n}x{n} matrix, "
                    f"got shape {arr.shape}"
                )
        # Only links between distinct nodes are ever used: the diagonal may hold anything.
        off = ~np.eye(n, dtype=bool) if bw.ndim == 2 or lat.ndim == 2 else None
        self._check(bw[off] if bw.ndim == 2 else bw.reshape(-1), "bandwidth", positive=True)
        self._check(lat[off] if lat.ndim == 2 else lat.reshape(-1), "latency", positive=False)
        if network != "contention_free" and (bw.ndim or lat.ndim):
            raise ClusterError(
                f"cluster {name!r}: network {network!r} needs one bandwidth and one latency for "
                f"all nodes (scalars), got shapes {bw.shape} and {lat.shape}"
            )
        # Scalars are kept as floats and no matrix is built: the common case takes a fast path
        # everywhere. A per-pair network keeps both as matrices (one general path).
        if bw.ndim == 0 and lat.ndim == 0:
            self.bandwidth: float | None = float(bw)
            self.latency: float | None = float(lat)
            self._bw_matrix: np.ndarray | None = None
            self._lat_matrix: np.ndarray | None = None
        else:
            self.bandwidth = None
            self.latency = None
            self._bw_matrix = _readonly(np.broadcast_to(bw, (n, n)).copy())
            self._lat_matrix = _readonly(np.broadcast_to(lat, (n, n)).copy())
        # Storage defaults to the average link between distinct nodes.
        sbw = (
            storage_bandwidth
            if storage_bandwidth is not None
            else float(np.mean(bw[off]) if bw.ndim == 2 and n > 1 else np.mean(bw))
        )
        slat = (
            storage_latency
            if storage_latency is not None
            else float(np.mean(lat[off]) if lat.ndim == 2 and n > 1 else np.mean(lat))
        )
        sbw_a = self._numbers(sbw, "storage_bandwidth", scalar=True)
        slat_a = self._numbers(slat, "storage_latency", scalar=True)
        self.storage_bandwidth = float(self._check(sbw_a, "storage_bandwidth", True)[0])
        self.storage_latency = float(self._check(slat_a, "storage_latency", False)[0])
        self._set_deploy_fields(node_name, down, dispatch_latency)

    def _set_deploy_fields(
        self, node_name: Sequence[str] | None, down: ArrayLike | None, dispatch_latency: float
    ) -> None:
        n = self.speed.size
        names = tuple(f"node{i}" for i in range(n)) if node_name is None else tuple(node_name)
        if len(names) != n:
            raise ClusterError(f"cluster {self.name!r}: {len(names)} node names for {n} nodes")
        seen: set[str] = set()
        for nm in names:
            if not isinstance(nm, str) or not nm:
                raise ClusterError(
                    f"cluster {self.name!r}: node names must be non-empty strings, got {nm!r}"
                )
            if nm in seen:
                raise ClusterError(f"cluster {self.name!r}: duplicate node name {nm!r}")
            seen.add(nm)
        self.node_name: tuple[str, ...] = names
        dn = np.zeros(n, dtype=bool) if down is None else np.asarray(down, dtype=bool).reshape(-1)
        if dn.size != n:
            raise ClusterError(f"cluster {self.name!r}: {dn.size} 'down' flags for {n} nodes")
        if dn.all():
            raise ClusterError(f"cluster {self.name!r}: every node is marked down")
        self.down = _readonly(dn.copy())
        dl = self._numbers(dispatch_latency, "dispatch_latency", scalar=True)
        self.dispatch_latency = float(self._check(dl, "dispatch_latency", False)[0])

    def _numbers(self, values: Any, field: str, scalar: bool = False) -> np.ndarray:
        """``values`` as a flat float64 array, or a :class:`ClusterError` naming ``field``."""
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            arr = None
        if arr is None or (scalar and arr.ndim != 0):
            want = "a number" if scalar else "a number or a list of numbers"
            raise ClusterError(
                f"cluster {self.name!r}: field {field!r} must be {want}, got {values!r}"
            )
        return arr.reshape(-1)

    def _check(self, arr: np.ndarray, field: str, positive: bool) -> np.ndarray:
        # A positive rate (a speed, a bandwidth) is divided by: below the smallest normal float
        # its reciprocal is infinite.
        bad = ~np.isfinite(arr) | ((arr < _TINY) if positive else (arr < 0))
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            cond = f">= {_TINY:.4g}" if positive and arr[i] > 0 else "> 0" if positive else ">= 0"
            raise ClusterError(
                f"cluster {self.name!r}: field {field!r} must be finite and {cond}, "
                f"got {arr[i]!r} (entry {i})"
            )
        return arr

    # ------------------------------------------------------------------ queries
    @property
    def bandwidth_matrix(self) -> NDArray[np.float64]:
        """Bandwidth of every ordered node pair [bytes/s], ``(n, n)`` (read-only; for a scalar
        network a broadcast view that takes no memory)."""
        if self._bw_matrix is not None:
            return self._bw_matrix
        return np.broadcast_to(np.float64(self.bandwidth), (self.n_nodes, self.n_nodes))

    @property
    def latency_matrix(self) -> NDArray[np.float64]:
        """Latency of every ordered node pair [s], ``(n, n)`` (read-only, as
        :attr:`bandwidth_matrix`)."""
        if self._lat_matrix is not None:
            return self._lat_matrix
        return np.broadcast_to(np.float64(self.latency), (self.n_nodes, self.n_nodes))

    @property
    def contention(self) -> bool:
        """True when concurrent transfers share links (a NIC model)."""
        return self.network != "contention_free"

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.speed.size)

    @property
    def total_cores(self) -> int:
        """Cores over all nodes."""
        return int(self.cores.sum())

    @property
    def scalar_network(self) -> bool:
        """True when every link has the same bandwidth and latency."""
        return self.bandwidth is not None

    def transfer_time(self, nbytes: float, src: int, dst: int) -> float:
        """Seconds to move ``nbytes`` from node ``src`` to node ``dst`` (0 when equal)."""
        if src == dst:
            return 0.0
        if self.bandwidth is not None:
            return self.latency + nbytes / self.bandwidth  # type: ignore[operator]
        return float(self.latency_matrix[src, dst] + nbytes / self.bandwidth_matrix[src, dst])

    def stage_in_time(self, nbytes: float) -> float:
        """Seconds to read ``nbytes`` of external input from shared storage (0 if none)."""
        if nbytes <= 0:
            return 0.0
        return self.storage_latency + nbytes / self.storage_bandwidth

    def mean_link(self) -> tuple[float, float]:
        """``(latency [s], 1 / bandwidth [s/byte])`` averaged over ordered pairs of distinct nodes.

        On a single-node cluster there is no link: ``(0, 0)``.
        """
        n = self.n_nodes
        if n == 1:
            return 0.0, 0.0
        if self.bandwidth is not None:
            return float(self.latency), 1.0 / self.bandwidth  # type: ignore[arg-type]
        off = ~np.eye(n, dtype=bool)
        return float(self.latency_matrix[off].mean()), float(
            (1.0 / self.bandwidth_matrix[off]).mean()
        )

    def mean_transfer_time(self, nbytes: ArrayLike) -> NDArray[np.float64]:
        """Mean transfer time of ``nbytes`` over ordered pairs of distinct nodes [s].

        On a single-node cluster there is no transfer, so the result is 0.
        """
        b = np.asarray(nbytes, dtype=np.float64)
        if self.n_nodes == 1:
            return np.zeros_like(b)
        if self.bandwidth is not None:
            return self.latency + b / self.bandwidth  # type: ignore[operator,no-any-return]
        lat, inv_bw = self.mean_link()
        return lat + b * inv_bw  # type: ignore[no-any-return]

    def speed_for(self, task_type: str) -> NDArray[np.float64]:
        """Effective speed of every node for a task of type ``task_type``."""
        fac = self.type_speedup.get(task_type)
        return self.speed if fac is None else self.speed * fac

    def with_network(self, network: str) -> Cluster:
        """The same nodes and links under another network model (one of :data:`NETWORK_MODELS`).

        Raises:
            ClusterError: on an unknown model, or a NIC model on a per-pair network.
        """
        return self.subset(range(self.n_nodes), name=self.name, network=network)

    def subset(
        self, nodes: Sequence[int], name: str | None = None, *, network: str | None = None
    ) -> Cluster:
        """The cluster restricted to ``nodes`` (in that order), optionally under another
        network model."""
        idx = np.asarray(nodes, dtype=np.int64)
        return Cluster(
            self.speed[idx],
            self.cores[idx],
            self.memory[idx],
            bandwidth=self.bandwidth
            if self.bandwidth is not None
            else self.bandwidth_matrix[np.ix_(idx, idx)],
            latency=self.latency
            if self.latency is not None
            else self.latency_matrix[np.ix_(idx, idx)],
            node_type=[self.node_type[i] for i in idx],
            type_speedup={k: v[idx] for k, v in self.type_speedup.items()},
            storage_bandwidth=self.storage_bandwidth,
            storage_latency=self.storage_latency,
            name=name or f"{self.name}[{len(idx)}]",
            network=self.network if network is None else network,
            node_name=[self.node_name[i] for i in idx],
            down=self.down[idx],
            dispatch_latency=self.dispatch_latency,
        )

    def __repr__(self) -> str:
        net = "" if self.network == "contention_free" else f", network={self.network!r}"
        return f"Cluster({self.name!r}, nodes={self.n_nodes}, cores={self.total_cores}{net})"

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        if "node_name" not in state:  # pickled before nodes had names and states
            self._set_deploy_fields(None, None, 0.0)

    def node_index(self, name: str) -> int:
        """Index of the node called ``name``.

        Raises:
            ClusterError: if there is no such node (the message lists the names).
        """
        try:
            return self.node_name.index(name)
        except ValueError:
            raise ClusterError(
                f"cluster {self.name!r} has no node {name!r}; nodes: {', '.join(self.node_name)}"
            ) from None


def make_cluster(
    kind: str = "heterogeneous",
    n_nodes: int = 16,
    *,
    bandwidth: float = DEFAULT_BANDWIDTH,
    latency: float = DEFAULT_LATENCY,
    node_types: Mapping[str, Sequence[float]] | None = None,
    name: str | None = None,
    network: str = "contention_free",
) -> Cluster:
    """Build a preset-style cluster.

    Args:
        kind: ``"homogeneous"`` (every node: speed 1.0, 8 cores, 64 GiB) or
            ``"heterogeneous"`` (node types interleaved: see :data:`NODE_TYPES`).
        n_nodes: Number of nodes.
        bandwidth: Link bandwidth [bytes/s].
        latency: Link latency [s].
        node_types: For ``"heterogeneous"``: ``{name: (speed, cores, memory_bytes)}``, replacing
            :data:`NODE_TYPES`; node ``i`` gets type ``i % len(node_types)``.
        name: Cluster name (default: ``"hom16"``-style).
        network: Network model, one of :data:`NETWORK_MODELS`.

    Raises:
        ClusterError: on an unknown kind or network model, or a node count outside
            ``1 .. MAX_NODES``.
    """
    try:
        # A huge count must not reach an array size; MAX_NODES bounds the cluster's arrays.
        n_nodes = whole_number(n_nodes, high=MAX_NODES)
    except ValueError as exc:
        raise ClusterError(f"n_nodes {exc} (MAX_NODES)") from None
    if kind in ("homogeneous", "hom"):
        s, c, m = HOMOGENEOUS_NODE
        return Cluster(
            np.full(n_nodes, s),
            np.full(n_nodes, c),
            np.full(n_nodes, m),
            bandwidth=bandwidth,
            latency=latency,
            node_type=["standard"] * n_nodes,
            name=name or f"hom{n_nodes}",
            network=network,
        )
    if kind in ("heterogeneous", "het"):
        types = dict(node_types or NODE_TYPES)
        if not types:
            raise ClusterError("node_types is empty")
        names = list(types)
        chosen = [names[i % len(names)] for i in range(n_nodes)]
        spec = np.asarray([types[t] for t in chosen], dtype=np.float64)
        return Cluster(
            spec[:, 0],
            spec[:, 1],
            spec[:, 2],
            bandwidth=bandwidth,
            latency=latency,
            node_type=chosen,
            name=name or f"het{n_nodes}",
            network=network,
        )
    raise ClusterError(f"unknown cluster kind {kind!r}; expected 'homogeneous' or 'heterogeneous'")


def preset(name: str, **kwargs: Any) -> Cluster:
    """A preset by name: ``hom16``, ``hom32``, ``hom64``, ``hom128``, ``het16``, ... ``het128``.

    Keyword arguments go to :func:`make_cluster` (``bandwidth``, ``latency``, ``network``).
    """
    if name not in PRESETS:
        raise ClusterError(f"unknown cluster preset {name!r}; choose one of {', '.join(PRESETS)}")
    return make_cluster(name[:3], int(name[3:]), **kwargs)


def cluster_from_spec(spec: Cluster | str | Mapping[str, Any]) -> Cluster:
    """Build a cluster from a plain description (what a config file holds).

    Args:
        spec: A :class:`Cluster` (returned as is); a preset name (``"het16"``); or a mapping with
            either ``preset`` or ``kind`` + ``n_nodes`` plus optional ``bandwidth``, ``latency``,
            ``network`` (one of :data:`NETWORK_MODELS`), ``node_types`` (``{name: [speed,
            cores, memory_gib]}``) and ``name``; or explicit ``speed``/``cores``/``memory_gib``
            lists (with the same optional network fields).

    Raises:
        ClusterError: naming the offending field and value.
    """
    if isinstance(spec, Cluster):
        return spec
    if isinstance(spec, str):
        return preset(spec)
    if not isinstance(spec, Mapping):
        raise ClusterError(f"a cluster spec must be a preset name or a mapping, got {spec!r}")
    d = dict(spec)
    try:
        net = {k: float(d.pop(k)) for k in ("bandwidth", "latency") if d.get(k) is not None}
    except (TypeError, ValueError, OverflowError):
        raise ClusterError(
            f"cluster spec: bandwidth and latency must be numbers, got {dict(spec)!r}"
        ) from None
    name = d.pop("name", None)
    network = d.pop("network", None)
    if network is None:
        network = "contention_free"
    if not isinstance(network, str) or network not in NETWORK_MODELS:
        raise ClusterError(
            f"cluster spec: field 'network' must be one of {', '.join(NETWORK_MODELS)}, "
            f"got {network!r}"
        )
    if "preset" in d:
        p = d.pop("preset")
        if d:
            raise ClusterError(f"cluster spec: unexpected fields {sorted(d)} next to 'preset'")
        c = preset(str(p), network=network, **net)
        if name:
            c.name = str(name)
        return c
    if "speed" in d:
        mem = d.pop("memory_gib", None)
        allowed = {"speed", "cores", "node_type", "storage_bandwidth", "storage_latency"}
        extra = set(d) - allowed
        if extra:
            raise ClusterError(f"cluster spec: unknown fields {sorted(extra)}")
        try:
            with np.errstate(over="ignore"):  # a huge size is unlimited memory
                mem_bytes = None if mem is None else np.asarray(mem, dtype=np.float64) * GIB
        except (TypeError, ValueError, OverflowError):
            raise ClusterError(
                f"cluster spec: memory_gib must be a number or a list of numbers, got {mem!r}"
            ) from None
        return Cluster(
            d.pop("speed"),
            d.pop("cores", 1),
            mem_bytes,
            bandwidth=net.get("bandwidth", DEFAULT_BANDWIDTH),
            latency=net.get("latency", DEFAULT_LATENCY),
            node_type=d.get("node_type"),
            storage_bandwidth=d.get("storage_bandwidth"),
            storage_latency=d.get("storage_latency"),
            name=str(name or "cluster"),
            network=network,
        )
    kind = d.pop("kind", "heterogeneous")
    n_nodes = d.pop("n_nodes", 16)
    types = d.pop("node_types", None)
    if d:
        raise ClusterError(
            f"cluster spec: unknown fields {sorted(d)}; expected preset, kind, n_nodes, "
            "bandwidth, latency, network, node_types, name"
        )
    if types is not None:
        types = _node_types(types)
    if not isinstance(n_nodes, int) or isinstance(n_nodes, bool):
        raise ClusterError(f"cluster spec: n_nodes must be an integer, got {n_nodes!r}")
    return make_cluster(str(kind), n_nodes, node_types=types, name=name, network=network, **net)


def _node_types(types: Any) -> dict[str, tuple[float, int, float]]:
    """``{name: [speed, cores, memory_gib]}`` from a spec as ``{name: (speed, cores, bytes)}``."""
    if not isinstance(types, Mapping):
        raise ClusterError(
            f"cluster spec: node_types must map names to [speed, cores, memory_gib], got {types!r}"
        )
    out: dict[str, tuple[float, int, float]] = {}
    for k, v in types.items():
        where = f"cluster spec: node_types[{k!r}]"
        if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) != 3:
            raise ClusterError(f"{where} must be [speed, cores, memory_gib], got {v!r}")
        try:
            cores = whole_number(v[1])  # a node cannot have 2.5 (or 1e19) cores
        except ValueError as exc:
            raise ClusterError(f"{where}: cores {exc}") from None
        try:
            speed, memory = float(v[0]), float(v[2]) * GIB
        except (TypeError, ValueError, OverflowError):
            raise ClusterError(
                f"{where}: speed and memory_gib must be numbers, got {v!r}"
            ) from None
        out[str(k)] = (speed, cores, memory)
    return out


def expand_cluster_spec(spec: Any) -> list[Any]:
    """The cluster specs a (possibly multi-cluster) spec stands for; one is drawn per episode.

    * a list: the expansions of its items, concatenated;
    * ``{"mix": [spec, ...]}``: the same as the list (the form a config file can hold, since a
      config group must be a mapping);
    * a mapping with ``kind`` and ``n_nodes`` where either (or both) is a list: one spec per
      combination (``{"kind": ["homogeneous", "heterogeneous"], "n_nodes": [4, 8]}`` is
      four clusters);
    * anything else (a preset name, a mapping, a :class:`Cluster`): itself.

    The result holds plain specs (what :func:`cluster_from_spec` takes), not clusters, so it can
    be saved with a checkpoint.

    Raises:
        ClusterError: on an empty list or mix, naming the spec.
    """
    if isinstance(spec, Mapping) and "mix" in spec:
        if set(spec) != {"mix"}:
            raise ClusterError(f"cluster spec: 'mix' takes no other fields, got {dict(spec)!r}")
        return expand_cluster_spec(list(spec["mix"]))
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ClusterError("cluster spec: an empty list of clusters")
        return [c for item in spec for c in expand_cluster_spec(item)]
    if isinstance(spec, Mapping):
        kinds, sizes = spec.get("kind"), spec.get("n_nodes")
        if isinstance(kinds, (list, tuple)) or isinstance(sizes, (list, tuple)):
            kinds = list(kinds) if isinstance(kinds, (list, tuple)) else [kinds]
            sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes]
            if not kinds or not sizes:
                raise ClusterError(f"cluster spec: empty kind or n_nodes list in {dict(spec)!r}")
            rest = {k: v for k, v in spec.items() if k not in ("kind", "n_nodes")}
            out = []
            for k in kinds:
                for n in sizes:
                    item = dict(rest)
                    if k is not None:
                        item["kind"] = k
                    if n is not None:
                        item["n_nodes"] = n
                    out.append(item)
            return out
    return [spec]
