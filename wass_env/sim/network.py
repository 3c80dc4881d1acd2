"""Transfers in flight on a cluster's network, advanced in simulated time.

:func:`make_network` returns the state object of a cluster's network model; the executor (and
any other event loop, such as an online scheduler's) drives it with three calls:

* ``start(src, dst, nbytes, key, at)``: a transfer of ``nbytes`` from node ``src`` (or
  :data:`STORAGE`, the shared storage) to node ``dst`` begins at time ``at`` (``now <= at <=
  next_time()``; default ``now``);
* ``next_time()``: when the next transfer will complete, assuming no other one starts before
  (``inf`` when none is in flight);
* ``advance(t)``: move the clock to ``t <= next_time()`` and return the keys of the transfers
  that completed at ``t``.

Between two calls nothing changes, so an event loop takes the earliest of its own next event
and ``next_time()``, advances to it, and starts new transfers at that time.

Models (see :mod:`wass_env.sim.cluster`):

* :class:`ContentionFreeNetwork` (``"contention_free"``): every transfer completes at
  ``start + latency + bytes / bandwidth`` of its link (shared storage: ``storage_latency +
  bytes / storage_bandwidth``), whatever else is in flight.
* :class:`FlowNetwork` (``"nic"``, ``"shared_nic"``): a transfer first waits its latency (the
  route's whole latency: ``latency`` between nodes, ``storage_latency`` from storage) without
  using any bandwidth, then becomes a *flow* on its route's two links: up(src) and down(dst)
  under ``"nic"`` (each node has an up and a down link of ``bandwidth`` bytes/s; storage's up
  link has ``storage_bandwidth``), the one link of each endpoint under ``"shared_nic"``. The
  flows share link bandwidth by **max-min fairness**, computed by progressive filling: all flow
  rates grow together; when a link is full, its flows stop growing at that rate and their
  bandwidth is taken off their other link; and so on until every flow is fixed. Rates are
  recomputed whenever a flow becomes active or completes. A flow's rate is never more than its
  links' bandwidth, so a transfer alone on its route costs ``latency + bytes / bandwidth``, as
  without contention. This is SimGrid's CM02 model on a star platform with one link per host
  (split-duplex for ``"nic"``), checked against SimGrid in ``tests/fidelity``.

Cost. Flows with the same route always have the same rate, so :class:`FlowNetwork` keeps them
together: per route, a count, the bytes served to each of its flows so far, and a heap of when
(in served bytes) each flow is done. An event costs O(routes in flight x log links), however many
flows share a route (thousands of stage-in reads from storage to a few nodes cost as much as a
few). This is hand-written rather than taken from SimGrid because the simulator must run
without it (a Gym environment steps millions of times) and because SimGrid's Python actors cost
a context switch per task; see the README for how the two compare in speed.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

from wass_env.sim.cluster import Cluster

__all__ = [
    "STORAGE",
    "ContentionFreeNetwork",
    "FlowNetwork",
    "Network",
    "make_network",
]

#: Endpoint id of the shared storage (external inputs are read from it).
STORAGE = -1
_INF = math.inf
#: A flow counts as done when fewer than this fraction of its bytes are left (rounding of the
#: served-bytes sums); far below the 1e-6 the cross-validation asks for.
_DONE_RTOL = 1e-12


class Network(Protocol):
    """What an event loop needs from a network model (see the module docstring)."""

    now: float

    def start(self, src: int, dst: int, nbytes: float, key: int, at: float | None = None) -> None:
        """Begin a transfer at ``at`` (default ``now``; ``src`` may be :data:`STORAGE`)."""

    def next_time(self) -> float:
        """Time of the next completion (``inf`` when nothing is in flight)."""

    def advance(self, t: float) -> list[int]:
        """Move to ``t <= next_time()``; the keys of the transfers completed at ``t``."""

    @property
    def in_flight(self) -> int:
        """Transfers started and not completed."""


def make_network(cluster: Cluster) -> ContentionFreeNetwork | FlowNetwork:
    """The network state of ``cluster``'s model, at time 0 with nothing in flight."""
    if cluster.network == "contention_free":
        return ContentionFreeNetwork(cluster)
    return FlowNetwork(cluster)


class ContentionFreeNetwork:
    """Every transfer has its link to itself: it completes ``latency + bytes / bandwidth`` after
    it starts (the arithmetic of :meth:`Cluster.transfer_time` and
    :meth:`Cluster.stage_in_time`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.now = 0.0
        self._heap: list[tuple[float, int, int]] = []  # (completion, seq, key)
        self._seq = 0

    def start(self, src: int, dst: int, nbytes: float, key: int, at: float | None = None) -> None:
        """Begin a transfer at ``at`` (default ``now``)."""
        cl = self.cluster
        t0 = self.now if at is None else at
        if src == STORAGE:
            cost = cl.storage_latency + nbytes / cl.storage_bandwidth
        else:
            cost = cl.transfer_time(nbytes, src, dst)
        heapq.heappush(self._heap, (t0 + cost, self._seq, key))
        self._seq += 1

    def next_time(self) -> float:
        """Time of the next completion (``inf`` when nothing is in flight)."""
        return self._heap[0][0] if self._heap else _INF

    def advance(self, t: float) -> list[int]:
        """Move to ``t``; the keys of the transfers completed at ``t`` (or before)."""
        if t < self.now:
            raise ValueError(f"cannot go back in time from {self.now} to {t}")
        self.now = t
        done = []
        heap = self._heap
        while heap and heap[0][0] <= t:
            done.append(heapq.heappop(heap)[2])
        return done

    @property
    def in_flight(self) -> int:
        """Transfers started and not completed."""
        return len(self._heap)


class _Route:
    """The flows in flight on one route (two links); they all have the same rate."""

    __slots__ = ("a", "b", "done_at", "due", "n", "rate", "served", "stamp", "t_ref")

    def __init__(self, a: int, b: int, now: float) -> None:
        self.a = a  # source's link
        self.b = b  # destination's link
        self.n = 0  # active flows
        self.rate = 0.0  # [bytes/s] of each flow, since t_ref
        self.served = 0.0  # bytes each flow of this route had received by t_ref
        self.t_ref = now  # [s]
        self.done_at: list[tuple[float, int, int]] = []  # (served when done, seq, key) heap
        self.due = _INF  # [s] when the first flow completes at the current rate
        self.stamp = 0  # last rate computation that fixed this route's rate


class FlowNetwork:
    """Max-min fair sharing of NIC links (``"nic"`` or ``"shared_nic"``; module docstring).

    Args:
        cluster: A cluster whose ``network`` is ``"nic"`` or ``"shared_nic"``.

    Raises:
        ValueError: for a contention-free cluster (use :class:`ContentionFreeNetwork`).
    """

    def __init__(self, cluster: Cluster) -> None:
        if cluster.network not in ("nic", "shared_nic"):
            raise ValueError(f"FlowNetwork models NIC sharing, not {cluster.network!r}")
        assert cluster.bandwidth is not None and cluster.latency is not None  # Cluster checks
        self.cluster = cluster
        self.now = 0.0
        n = cluster.n_nodes
        self._n = n
        self._duplex = cluster.network == "nic"
        # Links: nic: up(i) = i, down(i) = n + i, storage's up link 2n; shared_nic: node i's
        # link i, storage's n.
        n_links = 2 * n + 1 if self._duplex else n + 1
        self._storage_link = n_links - 1
        self._cap = [float(cluster.bandwidth)] * n_links  # [bytes/s]
        self._cap[self._storage_link] = float(cluster.storage_bandwidth)
        self._cnt = [0] * n_links  # active flows per link
        self._used: set[int] = set()  # links with active flows
        self._latency = cluster.latency  # [s]
        self._storage_latency = cluster.storage_latency  # [s]
        self._routes: dict[tuple[int, int], _Route] = {}
        self._on_link: list[dict[tuple[int, int], _Route]] = [{} for _ in range(n_links)]
        self._waiting: list[tuple[float, int, int, int, int, float]] = []  # latency phase heap
        self._seq = 0
        self._stamp = 0
        self._n_flight = 0
        self._dirty = False  # rates must be recomputed before the next event is known
        self._next = _INF  # the next event time (valid when not dirty)

    # ------------------------------------------------------------------ API
    def start(self, src: int, dst: int, nbytes: float, key: int, at: float | None = None) -> None:
        """Begin a transfer of ``nbytes`` from ``src`` (a node or :data:`STORAGE`) to ``dst``
        at time ``at`` (default ``now``).

        A transfer takes no bandwidth during its latency, so starting one changes no rate and
        ``at`` may lie anywhere between ``now`` and :meth:`next_time` without advancing first.

        Raises:
            ValueError: if ``src == dst`` (a node-local transfer costs nothing and has no
                route), ``nbytes`` is negative or ``at`` is before ``now``.
        """
        if src == dst:
            raise ValueError(f"transfer {key} from node {src} to itself has no route")
        if not nbytes >= 0:
            raise ValueError(f"transfer {key} has {nbytes} bytes")
        t0 = self.now if at is None else at
        if t0 < self.now:
            raise ValueError(f"transfer {key} starts at {t0}, before now ({self.now})")
        lat = self._storage_latency if src == STORAGE else self._latency
        t = t0 + lat
        heapq.heappush(self._waiting, (t, self._seq, key, src, dst, float(nbytes)))
        self._seq += 1
        self._n_flight += 1
        # Rates do not change until its latency has elapsed: only the next event may be sooner.
        if t < self._next:
            self._next = t

    def next_time(self) -> float:
        """Time of the next event: a completion, or the end of a latency phase (from then on
        the flow takes bandwidth); ``inf`` when nothing is in flight."""
        if self._dirty:
            self._recompute()
        return self._next

    def advance(self, t: float) -> list[int]:
        """Move the clock to ``t`` and return the keys of the transfers completed at ``t``.

        Raises:
            ValueError: if ``t`` is before ``now`` or after :meth:`next_time` (the rates would
                not hold until then).
        """
        nxt = self.next_time()
        if t < self.now or t > nxt + _DONE_RTOL * abs(nxt):
            raise ValueError(f"advance to {t} outside [{self.now}, {nxt}] (next event)")
        self.now = t
        done: list[int] = []
        if nxt <= t:
            closed: list[_Route] = []
            cnt = self._cnt
            for route in self._routes.values():
                if route.due > t:
                    continue
                # A flow is done when the time it was due at (what next_time() took its minimum
                # of) has come, or when all but a rounding error of its bytes are in.
                rate, served, t_ref = route.rate, route.served, route.t_ref
                now_served = served + rate * (t - t_ref)
                heap = route.done_at
                k = 1
                done.append(heapq.heappop(heap)[2])
                while heap and (
                    t_ref + (heap[0][0] - served) / rate <= t
                    or heap[0][0] - now_served <= _DONE_RTOL * heap[0][0]
                ):
                    done.append(heapq.heappop(heap)[2])
                    k += 1
                route.n -= k
                cnt[route.a] -= k
                cnt[route.b] -= k
                route.served = now_served
                route.t_ref = t
                if route.n == 0:
                    closed.append(route)
            for route in closed:
                self._close(route)
        # Transfers whose latency ends now: zero-byte ones are done, the others start sharing.
        waiting = self._waiting
        while waiting and waiting[0][0] <= t:
            _, seq, key, src, dst, nbytes = heapq.heappop(waiting)
            if nbytes <= 0.0:
                done.append(key)
                continue
            links = self._links(src, dst)
            route = self._routes.get(links)
            if route is None:
                route = self._open(links, t)
            elif route.t_ref < t:
                route.served += route.rate * (t - route.t_ref)
                route.t_ref = t
            heapq.heappush(route.done_at, (route.served + nbytes, seq, key))
            route.n += 1
            self._cnt[route.a] += 1
            self._cnt[route.b] += 1
            self._dirty = True
        if done:
            self._n_flight -= len(done)
            self._dirty = True
        return done

    @property
    def in_flight(self) -> int:
        """Transfers started and not completed."""
        return self._n_flight

    def rates(self) -> dict[tuple[int, int], tuple[int, float]]:
        """Per active route (its two link ids), the number of flows and each flow's rate
        [bytes/s]; for tests and inspection. Link ids: under ``"nic"`` up(i) = i, down(i) =
        n + i and storage's up link 2n; under ``"shared_nic"`` node i = i and storage n."""
        if self._dirty:
            self._recompute()
        return {k: (r.n, r.rate) for k, r in self._routes.items()}

    # ------------------------------------------------------------------ internals
    def _links(self, src: int, dst: int) -> tuple[int, int]:
        if self._duplex:
            up = self._storage_link if src == STORAGE else src
            return up, self._n + dst
        return (self._storage_link if src == STORAGE else src), dst

    def _open(self, links: tuple[int, int], now: float) -> _Route:
        route = self._routes[links] = _Route(links[0], links[1], now)
        for lk in links:
            self._on_link[lk][links] = route
            self._used.add(lk)
        return route

    def _close(self, route: _Route) -> None:
        links = (route.a, route.b)
        del self._routes[links]
        for lk in links:
            del self._on_link[lk][links]
            if not self._on_link[lk]:
                self._used.discard(lk)

    def _recompute(self) -> None:
        """Max-min fair rates by progressive filling, and the next event time.

        All rates grow together; the link with the smallest fair share (bandwidth left over
        its flows not fixed yet) is full first: its flows get that share, which is taken off
        their other link; repeat. A heap of link shares (stale entries skipped by version)
        makes it O((routes + links) log links).
        """
        self._dirty = False
        now = self.now
        cnt = self._cnt.copy()  # flows not fixed yet, per link
        rem = self._cap.copy()  # bandwidth not given out yet, per link [bytes/s]
        version = [0] * len(cnt)  # -1: the link is full (or has no flow left to fix)
        heap = [(rem[lk] / cnt[lk], 0, lk) for lk in self._used]
        heapq.heapify(heap)
        self._stamp += 1
        stamp = self._stamp
        on_link = self._on_link
        nxt = self._waiting[0][0] if self._waiting else _INF
        while heap:
            share, ver, lk = heapq.heappop(heap)
            if ver != version[lk]:
                continue  # stale entry
            version[lk] = -1
            for route in on_link[lk].values():
                if route.stamp == stamp:
                    continue  # fixed earlier through its other link
                route.stamp = stamp
                # Bytes served at the old rate up to now, then the new rate.
                route.served += route.rate * (now - route.t_ref)
                route.t_ref = now
                route.rate = share
                due = now + (route.done_at[0][0] - route.served) / share
                route.due = due
                if due < nxt:
                    nxt = due
                other = route.b if route.a == lk else route.a
                v = version[other]
                if v < 0:
                    continue
                n = route.n
                left = cnt[other] - n
                cnt[other] = left
                if left > 0:
                    r = rem[other] - share * n
                    rem[other] = r
                    version[other] = v + 1
                    heapq.heappush(heap, (r / left, v + 1, other))
                else:
                    version[other] = -1
        self._next = nxt
