"""Workflow DAGs as immutable arrays.

A :class:`Workflow` holds the tasks of a scientific workflow and the data that flows between them:

* per task: ``work`` (runtime in seconds on a reference node of speed 1.0), ``cores`` (cores it
  occupies while running), ``memory`` (bytes it needs on its node), an optional ``task_type``
  (used for per-type node speedups and for explanations), ``input_bytes`` (bytes of external
  input files it reads from shared storage before it can start) and an optional ``command``
  (the command line a workflow file gives; what a job runs when the plan is deployed);
* per edge ``parent -> child``: ``bytes`` the child reads from the parent's outputs.

Everything is validated on construction; a bad value raises :class:`WorkflowError` naming the
task (or edge) and the value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wass_env.errors import WassError
from wass_env.limits import MAX_COUNT, bad_counts

__all__ = ["Task", "Workflow", "WorkflowError"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class WorkflowError(WassError):
    """Raised when a workflow is malformed (cycle, dangling id, bad size, ...)."""


@dataclass(frozen=True)
class Task:
    """One task, as given to :meth:`Workflow.from_tasks`.

    Attributes:
        id: Unique task id.
        work: Runtime on a reference node of speed 1.0 [s].
        cores: Cores the task occupies while it runs.
        memory: Memory the task needs on its node [bytes].
        type: Optional task type (program name), used for per-type speedups.
        input_bytes: Bytes of external input files read from shared storage [bytes].
        command: The task's command line ("" when unknown).
        parents: Ids of the tasks this one depends on, with the bytes read from each. Either a
            mapping ``{parent_id: bytes}`` or an iterable of ids (0 bytes each).
    """

    id: str
    work: float
    cores: int = 1
    memory: float = 0.0
    type: str = ""
    input_bytes: float = 0.0
    parents: Any = ()
    command: str = ""


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Workflow:
    """An immutable workflow DAG stored in NumPy arrays.

    Build one with :meth:`from_tasks` (ids and dicts, as loaders do) or :meth:`from_arrays`
    (integer edge lists, as generators do). Tasks are indexed ``0..n_tasks-1`` in the order given.

    Attributes:
        name: Instance name (file stem or generator description).
        family: Workflow family (``"montage"``, ``"chain"``, ...), used for grouping and splits.
        ids: Task ids, indexed like every per-task array.
        work: Runtime on a speed-1.0 node, shape ``(n_tasks,)`` [s].
        cores: Cores per task, shape ``(n_tasks,)``.
        memory: Memory per task, shape ``(n_tasks,)`` [bytes].
        task_type: Type name per task (empty string when unknown).
        input_bytes: External input bytes per task, shape ``(n_tasks,)`` [bytes].
        command: Command line per task ("" when unknown); not part of equality.
        edge_src, edge_dst: Parent and child index of every edge, shape ``(n_edges,)``.
        edge_bytes: Bytes carried by every edge, shape ``(n_edges,)`` [bytes].
        topo_order: A topological order of the tasks (Kahn's algorithm, smallest index first).
    """

    __slots__ = (
        "_index",
        "_levels",
        "child_edges",
        "child_ptr",
        "command",
        "cores",
        "edge_bytes",
        "edge_dst",
        "edge_src",
        "family",
        "ids",
        "input_bytes",
        "memory",
        "name",
        "parent_ptr",
        "source",
        "task_type",
        "topo_order",
        "work",
    )

    def __init__(
        self,
        *,
        ids: Sequence[str],
        work: ArrayLike,
        edge_src: ArrayLike = (),
        edge_dst: ArrayLike = (),
        edge_bytes: ArrayLike | None = None,
        cores: ArrayLike | None = None,
        memory: ArrayLike | None = None,
        task_type: Sequence[str] | None = None,
        input_bytes: ArrayLike | None = None,
        name: str = "workflow",
        family: str = "",
        source: str = "",
        command: Sequence[str] | None = None,
    ) -> None:
        n = len(ids)
        where = f" in {source}" if source else ""
        self.name = name
        self.family = family
        self.source = source
        self.ids: tuple[str, ...] = tuple(map(str, ids))
        if n == 0:
            raise WorkflowError(f"workflow {name!r}{where} has no tasks")
        index = dict(zip(self.ids, range(n), strict=True))
        if len(index) < n:  # some id repeats: name the first repeat
            seen: set[str] = set()
            for tid in self.ids:
                if tid in seen:
                    raise WorkflowError(f"duplicate task id {tid!r}{where}")
                seen.add(tid)
        self._index = index

        self.work = _readonly(self._per_task("work", work, n, where, default=None))
        cores_f = self._per_task("cores", cores, n, where, default=1.0)
        bad = bad_counts(cores_f)  # before the cast: int64(1e19) would wrap
        if bad.size:
            i = int(bad[0])
            raise WorkflowError(
                f"task {self.ids[i]!r}{where}: field 'cores' must be a whole number in "
                f"[1, {MAX_COUNT}], got {float(cores_f[i])!r}"
            )
        self.cores = _readonly(cores_f.astype(np.int64))
        self.memory = _readonly(self._per_task("memory", memory, n, where, default=0.0))
        self.input_bytes = _readonly(
            self._per_task("input_bytes", input_bytes, n, where, default=0.0)
        )
        if task_type is None:
            self.task_type: tuple[str, ...] = ("",) * n
        else:
            if len(task_type) != n:
                raise WorkflowError(
                    f"workflow {name!r}{where}: 'task_type' has {len(task_type)} entries "
                    f"for {n} tasks"
                )
            self.task_type = tuple(str(t) for t in task_type)
        if command is None:
            self.command: tuple[str, ...] = ("",) * n
        else:
            if len(command) != n:
                raise WorkflowError(
                    f"workflow {name!r}{where}: 'command' has {len(command)} entries for {n} tasks"
                )
            self.command = tuple(str(c) for c in command)

        src = np.asarray(edge_src, dtype=np.int64).reshape(-1)
        dst = np.asarray(edge_dst, dtype=np.int64).reshape(-1)
        if src.shape != dst.shape:
            raise WorkflowError(
                f"workflow {name!r}{where}: {src.size} edge sources but {dst.size} destinations"
            )
        m = src.size
        if edge_bytes is None:
            eb = np.zeros(m)
        else:
            try:
                eb = np.asarray(edge_bytes, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError, OverflowError) as exc:
                raise WorkflowError(f"field 'bytes'{where} is not numeric: {exc}") from None
            if eb.shape != src.shape:
                raise WorkflowError(f"workflow {name!r}{where}: {eb.size} edge sizes for {m} edges")
        if m:
            out = np.flatnonzero((src < 0) | (src >= n) | (dst < 0) | (dst >= n))
            if out.size:
                e = int(out[0])
                raise WorkflowError(
                    f"edge #{e}{where} refers to task index ({src[e]}, {dst[e]}) outside 0..{n - 1}"
                )
            bad = np.flatnonzero(~np.isfinite(eb) | (eb < 0))
            if bad.size:
                e = int(bad[0])
                raise WorkflowError(
                    f"edge {self.ids[src[e]]!r} -> {self.ids[dst[e]]!r}{where}: "
                    f"field 'bytes' must be finite and >= 0, got {eb[e]!r}"
                )
            key = src * n + dst
            uniq, counts = np.unique(key, return_counts=True)
            if uniq.size != m:
                k = int(uniq[np.argmax(counts > 1)])
                raise WorkflowError(
                    f"duplicate edge {self.ids[k // n]!r} -> {self.ids[k % n]!r}{where}"
                )
        # Sort edges by (dst, src) so that a task's parent edges are contiguous.
        order = np.lexsort((src, dst))
        self.edge_src = _readonly(src[order])
        self.edge_dst = _readonly(dst[order])
        self.edge_bytes = _readonly(eb[order])
        self.parent_ptr = _readonly(
            np.concatenate(([0], np.cumsum(np.bincount(self.edge_dst, minlength=n))))
        )
        corder = np.lexsort((self.edge_dst, self.edge_src)).astype(np.int64)
        self.child_ptr = _readonly(
            np.concatenate(([0], np.cumsum(np.bincount(self.edge_src, minlength=n))))
        )
        self.child_edges = _readonly(corder)
        self._check_sizes(where)
        self.topo_order = _readonly(self._toposort(where))
        self._levels: IntArray | None = None

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _per_task(
        field: str, values: ArrayLike | None, n: int, where: str, default: float | None
    ) -> FloatArray:
        if values is None:
            if default is None:
                raise WorkflowError(f"field {field!r}{where} is required")
            return np.full(n, default, dtype=np.float64)
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise WorkflowError(f"field {field!r}{where} is not numeric: {exc}") from None
        if arr.size == 1 and n != 1:
            arr = np.full(n, float(arr[0]))
        if arr.size != n:
            raise WorkflowError(f"field {field!r}{where} has {arr.size} values for {n} tasks")
        return arr

    def _check_sizes(self, where: str) -> None:
        for field in ("work", "memory", "input_bytes"):
            arr = getattr(self, field)
            bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0))
            if bad.size:
                i = int(bad[0])
                raise WorkflowError(
                    f"task {self.ids[i]!r}{where}: field {field!r} must be finite and >= 0, "
                    f"got {arr[i]!r}"
                )
        # Each value is finite, but their sum must be too: the total work, the critical path and
        # every time derived from them add these up.
        for field, arr in (
            ("work", self.work),
            ("input_bytes", self.input_bytes),
            ("bytes", self.edge_bytes),
        ):
            with np.errstate(over="ignore"):
                total = float(np.sum(arr))
            if not np.isfinite(total):
                raise WorkflowError(
                    f"workflow {self.name!r}{where}: field {field!r} sums to {total!r} over "
                    f"{arr.size} {'edges' if field == 'bytes' else 'tasks'} (largest value "
                    f"{float(np.max(arr))!r}); the values must add up to a finite number"
                )

    def _toposort(self, where: str) -> IntArray:
        n = self.n_tasks
        indeg = np.diff(self.parent_ptr).tolist()
        child_ptr = self.child_ptr.tolist()
        children = self.edge_dst[self.child_edges].tolist()
        # Kahn's algorithm with a min-heap would give the lexicographically smallest order; a
        # FIFO over index-sorted roots is enough for determinism and is faster.
        queue = [i for i in range(n) if indeg[i] == 0]
        head = 0
        while head < len(queue):  # the queue, once through, is the order
            u = queue[head]
            head += 1
            for k in range(child_ptr[u], child_ptr[u + 1]):
                v = children[k]
                indeg[v] -= 1
                if indeg[v] == 0:
                    queue.append(v)
        order = queue
        if len(order) != n:
            stuck = [i for i in range(n) if indeg[i] > 0]
            cycle = self._find_cycle(set(stuck))
            raise WorkflowError(f"workflow {self.name!r}{where} has a cycle: " + " -> ".join(cycle))
        return np.asarray(order, dtype=np.int64)

    def _find_cycle(self, nodes: set[int]) -> list[str]:
        # Every node left after Kahn's algorithm has a parent that is also left, so walking
        # parents from any of them must revisit a node.
        start = min(nodes)
        seen: dict[int, int] = {}
        path: list[int] = []
        u = start
        while u not in seen:
            seen[u] = len(path)
            path.append(u)
            lo, hi = self.parent_ptr[u], self.parent_ptr[u + 1]
            u = next(int(p) for p in self.edge_src[lo:hi] if int(p) in nodes)
        cyc = path[seen[u] :][::-1]
        return [self.ids[i] for i in [*cyc, cyc[0]]]

    @classmethod
    def from_arrays(
        cls,
        work: ArrayLike,
        edges: ArrayLike = (),
        edge_bytes: ArrayLike | None = None,
        *,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Workflow:
        """Build a workflow from integer edges.

        Args:
            work: Runtime of each task on a speed-1.0 node [s].
            edges: ``(n_edges, 2)`` array of ``(parent, child)`` task indices.
            edge_bytes: Bytes per edge (default 0).
            ids: Task ids (default ``"t0", "t1", ...``).
            **kwargs: Other :class:`Workflow` fields (``cores``, ``memory``, ``name``, ...).
        """
        w = np.asarray(work, dtype=np.float64).reshape(-1)
        e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if ids is None:
            ids = [f"t{i}" for i in range(w.size)]
        return cls(
            ids=ids, work=w, edge_src=e[:, 0], edge_dst=e[:, 1], edge_bytes=edge_bytes, **kwargs
        )

    @classmethod
    def from_tasks(
        cls,
        tasks: Iterable[Task],
        *,
        name: str = "workflow",
        family: str = "",
        source: str = "",
    ) -> Workflow:
        """Build a workflow from :class:`Task` records that name their parents by id.

        Raises:
            WorkflowError: on duplicate ids, unknown parent ids, bad sizes or cycles.
        """
        tasks = list(tasks)
        where = f" in {source}" if source else ""
        index: dict[str, int] = {}
        for i, t in enumerate(tasks):
            if t.id in index:
                raise WorkflowError(f"duplicate task id {t.id!r}{where}")
            index[t.id] = i
        src: list[int] = []
        dst: list[int] = []
        size: list[float] = []
        for i, t in enumerate(tasks):
            parents = (
                t.parents.items() if isinstance(t.parents, dict) else ((p, 0.0) for p in t.parents)
            )
            for pid, nbytes in parents:
                j = index.get(pid)
                if j is None:
                    raise WorkflowError(f"task {t.id!r}{where}: unknown parent id {pid!r}")
                try:
                    size.append(float(nbytes))
                except (TypeError, ValueError, OverflowError):
                    raise WorkflowError(
                        f"task {t.id!r}{where}: parent {pid!r}: field 'bytes' must be a number, "
                        f"got {nbytes!r}"
                    ) from None
                src.append(j)
                dst.append(i)
        return cls(
            ids=[t.id for t in tasks],
            work=[t.work for t in tasks],
            cores=[t.cores for t in tasks],
            memory=[t.memory for t in tasks],
            task_type=[t.type for t in tasks],
            input_bytes=[t.input_bytes for t in tasks],
            command=[t.command for t in tasks],
            edge_src=src,
            edge_dst=dst,
            edge_bytes=size,
            name=name,
            family=family,
            source=source,
        )

    # ------------------------------------------------------------------ queries
    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return len(self.ids)

    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return int(self.edge_src.size)

    def index(self, task_id: str) -> int:
        """Index of the task with id ``task_id``."""
        try:
            return self._index[task_id]
        except KeyError:
            raise KeyError(f"no task {task_id!r} in workflow {self.name!r}") from None

    def parents(self, task: int) -> IntArray:
        """Parent indices of ``task``."""
        lo, hi = self.parent_ptr[task], self.parent_ptr[task + 1]
        return self.edge_src[lo:hi]

    def parent_edge_slice(self, task: int) -> slice:
        """Slice into the edge arrays holding the edges into ``task``."""
        return slice(int(self.parent_ptr[task]), int(self.parent_ptr[task + 1]))

    def children(self, task: int) -> IntArray:
        """Child indices of ``task``."""
        lo, hi = self.child_ptr[task], self.child_ptr[task + 1]
        return self.edge_dst[self.child_edges[lo:hi]]

    @property
    def n_parents(self) -> IntArray:
        """Number of parents per task."""
        return np.diff(self.parent_ptr)

    @property
    def n_children(self) -> IntArray:
        """Number of children per task."""
        return np.diff(self.child_ptr)

    @property
    def levels(self) -> IntArray:
        """Depth of every task: 0 for entry tasks, else 1 + max depth of its parents."""
        if self._levels is None:
            lev = [0] * self.n_tasks
            ptr = self.parent_ptr.tolist()
            src = self.edge_src.tolist()
            for v in self.topo_order.tolist():
                best = -1
                for e in range(ptr[v], ptr[v + 1]):
                    d = lev[src[e]]
                    if d > best:
                        best = d
                lev[v] = best + 1
            self._levels = _readonly(np.asarray(lev, dtype=np.int64))
        return self._levels

    @property
    def entry_tasks(self) -> IntArray:
        """Tasks with no parents."""
        return np.flatnonzero(self.n_parents == 0)

    @property
    def exit_tasks(self) -> IntArray:
        """Tasks with no children."""
        return np.flatnonzero(self.n_children == 0)

    @property
    def total_work(self) -> float:
        """Sum of task work [s]."""
        return float(self.work.sum())

    def replace(self, **changes: Any) -> Workflow:
        """A copy with some fields replaced (e.g. ``edge_bytes`` rescaled for a CCR)."""
        fields: dict[str, Any] = dict(
            ids=self.ids,
            work=self.work,
            edge_src=self.edge_src,
            edge_dst=self.edge_dst,
            edge_bytes=self.edge_bytes,
            cores=self.cores,
            memory=self.memory,
            task_type=self.task_type,
            input_bytes=self.input_bytes,
            name=self.name,
            family=self.family,
            source=self.source,
            command=self.command,
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"unknown Workflow fields: {sorted(unknown)}")
        if set(changes) == {"edge_bytes"}:
            return self._with_edge_bytes(changes["edge_bytes"])
        fields.update(changes)
        return Workflow(**fields)

    def _with_edge_bytes(self, edge_bytes: ArrayLike) -> Workflow:
        """:meth:`replace` of the edge bytes only: the structure (sorted edges, pointers,
        topological order, levels) is shared, only the new sizes are checked."""
        where = f" in {self.source}" if self.source else ""
        eb = np.array(edge_bytes, dtype=np.float64).reshape(-1)
        m = self.n_edges
        if eb.size != m:
            raise WorkflowError(
                f"workflow {self.name!r}{where}: {eb.size} edge sizes for {m} edges"
            )
        bad = np.flatnonzero(~np.isfinite(eb) | (eb < 0))
        if bad.size:
            e = int(bad[0])
            raise WorkflowError(
                f"edge {self.ids[self.edge_src[e]]!r} -> {self.ids[self.edge_dst[e]]!r}{where}: "
                f"field 'bytes' must be finite and >= 0, got {eb[e]!r}"
            )
        other = Workflow.__new__(Workflow)
        for k in self.__slots__:
            object.__setattr__(other, k, getattr(self, k))
        object.__setattr__(other, "edge_bytes", _readonly(eb))
        return other

    def to_networkx(self) -> Any:
        """The DAG as a ``networkx.DiGraph`` (nodes: task indices; attributes: id, work, bytes)."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for i, tid in enumerate(self.ids):
            g.add_node(i, id=tid, work=float(self.work[i]), cores=int(self.cores[i]))
        for s, d, b in zip(
            self.edge_src.tolist(), self.edge_dst.tolist(), self.edge_bytes.tolist(), strict=True
        ):
            g.add_edge(s, d, bytes=b)
        return g

    def __len__(self) -> int:
        return self.n_tasks

    def __repr__(self) -> str:
        fam = f", family={self.family!r}" if self.family else ""
        return f"Workflow({self.name!r}{fam}, tasks={self.n_tasks}, edges={self.n_edges})"

    def __eq__(self, other: object) -> bool:
        """Structural equality: same ids, sizes and edges (names, sources, commands may differ)."""
        if not isinstance(other, Workflow):
            return NotImplemented
        return (
            self.ids == other.ids
            and self.task_type == other.task_type
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in (
                    "work",
                    "cores",
                    "memory",
                    "input_bytes",
                    "edge_src",
                    "edge_dst",
                    "edge_bytes",
                )
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        if "command" not in state:  # pickled before workflows kept commands
            object.__setattr__(self, "command", ("",) * len(self.ids))
