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

Cost. Flows with the same route always have the same rate, and so do all flows whose bottleneck
is the same link, so :class:`FlowNetwork` keeps per route a count and a heap of when each of
its flows is done, and per bottleneck link the bytes served to each of its flows (see the
class). An event costs one visit per route in flight (the levels re-solved in the last
saturation order) and, when a bottleneck has moved, a progressive filling in O((routes + links)
log links); thousands of stage-in reads from storage to a few nodes cost as much as a few.
This is hand-written rather than taken from SimGrid because the simulator must run without it
(a Gym environment steps millions of times) and because SimGrid's Python actors cost a context
switch per task; ``scripts/bench_scale.py`` compares the two.
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
    """The flows in flight on one route (two links). They all have the rate of the route's
    bottleneck link, so what each has received is the bottleneck's service minus ``off``."""

    __slots__ = ("a", "b", "bott", "done_at", "hv", "n", "off", "stamp")

    def __init__(self, a: int, b: int) -> None:
        self.a = a  # source's link
        self.b = b  # destination's link
        self.n = 0  # active flows
        self.bott = -1  # the link whose fair share is this route's rate (-1: not known yet)
        self.off = 0.0  # [bytes] served per flow = service[bott] - off
        self.done_at: list[tuple[float, int, int]] = []  # (served when done, seq, key) heap
        self.hv = 0  # version of this route's entry in its bottleneck's due heap
        self.stamp = 0  # last progressive filling that fixed this route


class FlowNetwork:
    """Max-min fair sharing of NIC links (``"nic"`` or ``"shared_nic"``; module docstring).

    Bookkeeping. Flows on one route share a rate, and so do all flows whose bottleneck is the
    same link (its *level*); each link keeps its *service*, the bytes a flow bottlenecked there
    has received since it opened, and a heap of when (in service) the first flow of each of its
    routes is done. An event then costs: the levels, recomputed in the last saturation order
    with one visit per route (each adds its load to the link it passes through), checked to be
    still a max-min fair allocation (levels non-decreasing in that order, links that are no
    bottleneck not over their bandwidth); full progressive filling only when the check fails
    (a bottleneck moved); and one look at each bottleneck's heap for the next completion.

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
        self._latency = cluster.latency  # [s]
        self._storage_latency = cluster.storage_latency  # [s]
        self._routes: dict[tuple[int, int], _Route] = {}
        self._on_link: list[dict[tuple[int, int], _Route]] = [{} for _ in range(n_links)]
        self._used: set[int] = set()  # links with routes
        self._stamp = 0
        # Routes that cross a link without being bottlenecked there.
        self._passing: list[dict[tuple[int, int], _Route]] = [{} for _ in range(n_links)]
        self._nb = [0] * n_links  # flows bottlenecked at each link
        self._level = [0.0] * n_links  # [bytes/s] per flow bottlenecked at each link
        self._service = [0.0] * n_links  # [bytes] per such flow, as of self._t_service
        self._t_service = 0.0  # [s]
        self._due: list[list[tuple[float, int, int, _Route]]] = [[] for _ in range(n_links)]
        self._order: list[int] = []  # bottleneck links, by level (the saturation order)
        self._pos = [-1] * n_links  # position in _order (-1: not a bottleneck)
        self._waiting: list[tuple[float, int, int, int, int, float]] = []  # latency phase heap
        self._seq = 0
        self._n_flight = 0
        self._dirty = False  # levels must be recomputed before the next event is known
        self._structure_ok = True  # False: some route's bottleneck is unknown
        self._next = _INF  # the next event time (valid when not dirty)
        self.full_solves = 0  # progressive fillings run (the others reused the last order)
        self.solves = 0

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
            self._solve()
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
        level, service, t0 = self._level, self._service, self._t_service
        dt = t - t0
        if nxt <= t:
            for lk in self._order:
                heap = self._due[lk]
                lev, s_old = level[lk], service[lk]
                s_new = s_old + lev * dt
                # A flow is done when the time it was due at (what next_time() took its minimum
                # of) has come, or when all but a rounding error of its bytes are in.
                while heap and (
                    t0 + (heap[0][0] - s_old) / lev <= t
                    or heap[0][0] - s_new <= _DONE_RTOL * abs(heap[0][0])
                ):
                    _, _, hv, route = heapq.heappop(heap)
                    if hv != route.hv:
                        continue  # superseded entry
                    done.append(heapq.heappop(route.done_at)[2])
                    route.n -= 1
                    self._nb[lk] -= 1
                    if route.n == 0:
                        self._close(route)
                    else:
                        self._push_due(route)
                    self._dirty = True
        for lk in self._order:
            service[lk] += level[lk] * dt
        self._t_service = t
        # Transfers whose latency ends now: zero-byte ones are done, the others start sharing.
        waiting = self._waiting
        while waiting and waiting[0][0] <= t:
            _, seq, key, src, dst, nbytes = heapq.heappop(waiting)
            if nbytes <= 0.0:
                done.append(key)
                continue
            links = self._links(src, dst)
            found = self._routes.get(links)
            route = self._open(links) if found is None else found
            served = service[route.bott] - route.off if route.bott >= 0 else 0.0
            target = served + nbytes
            head = route.done_at[0][0] if route.done_at else _INF
            heapq.heappush(route.done_at, (target, seq, key))
            route.n += 1
            if route.bott >= 0:
                self._nb[route.bott] += 1
                if target < head:
                    self._push_due(route)
            self._dirty = True
        if done:
            self._n_flight -= len(done)
        if t >= nxt:
            self._dirty = True  # the event planned for now has happened: find the next one
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
            self._solve()
        return {k: (r.n, self._level[r.bott]) for k, r in self._routes.items()}

    # ------------------------------------------------------------------ internals
    def _links(self, src: int, dst: int) -> tuple[int, int]:
        if self._duplex:
            up = self._storage_link if src == STORAGE else src
            return up, self._n + dst
        return (self._storage_link if src == STORAGE else src), dst

    def _open(self, links: tuple[int, int]) -> _Route:
        route = self._routes[links] = _Route(links[0], links[1])
        for lk in links:
            self._on_link[lk][links] = route
            self._used.add(lk)
        # Its bottleneck: the link that saturates first, if both are bottlenecks now; the only
        # bottleneck of the two otherwise (checked, with the rest, by the next solve).
        pa, pb = self._pos[links[0]], self._pos[links[1]]
        if pa < 0 and pb < 0:
            self._structure_ok = False
        else:
            first = links[0] if pb < 0 or (0 <= pa < pb) else links[1]
            self._assign(route, first)
        return route

    def _assign(self, route: _Route, lk: int) -> None:
        """Make ``lk`` the bottleneck of ``route`` (keeping what its flows have received)."""
        old = route.bott
        links = (route.a, route.b)
        served = self._service[old] - route.off if old >= 0 else 0.0
        if old >= 0:
            self._nb[old] -= route.n
            del self._passing[route.b if old == route.a else route.a][links]
        route.bott = lk
        route.off = self._service[lk] - served
        self._nb[lk] += route.n
        self._passing[route.b if lk == route.a else route.a][links] = route
        if route.done_at:
            self._push_due(route)

    def _push_due(self, route: _Route) -> None:
        route.hv += 1
        heapq.heappush(
            self._due[route.bott], (route.done_at[0][0] + route.off, self._seq, route.hv, route)
        )
        self._seq += 1

    def _close(self, route: _Route) -> None:
        links = (route.a, route.b)
        del self._routes[links]
        for lk in links:
            del self._on_link[lk][links]
            if not self._on_link[lk]:
                self._used.discard(lk)
        if route.bott >= 0:
            del self._passing[route.b if route.bott == route.a else route.a][links]
        route.hv += 1  # its due entry is stale

    def _solve(self) -> None:
        """Levels (max-min fair rates) for the flows in flight, and the next event time."""
        self._dirty = False
        self.solves += 1
        if not (self._structure_ok and self._reuse_order()):
            self._fill()
        t0, level, service = self._t_service, self._level, self._service
        nxt = self._waiting[0][0] if self._waiting else _INF
        for lk in self._order:
            heap = self._due[lk]
            while heap and heap[0][2] != heap[0][3].hv:
                heapq.heappop(heap)  # superseded entries
            if heap:
                due = t0 + (heap[0][0] - service[lk]) / level[lk]
                if due < nxt:
                    nxt = due
        self._next = nxt

    def _reuse_order(self) -> bool:
        """Levels in the last saturation order; False if that order is no longer max-min fair.

        With each route's bottleneck kept, a link's level is its bandwidth left by the routes
        passing through it (at their own bottleneck's level) over the flows bottlenecked there.
        That is the max-min fair allocation when the levels come out non-decreasing in the
        order (each link was then the least loaded when it filled) and every other link carries
        no more than its bandwidth.
        """
        cap, nb, passing, pos = self._cap, self._nb, self._passing, self._pos
        new = self._level.copy()
        last = 0.0
        order = self._order
        if any(nb[lk] <= 0 for lk in order):
            # No flow left whose bottleneck it is: it is only crossed now (checked below).
            for lk in order:
                if nb[lk] <= 0:
                    pos[lk] = -1
                    new[lk] = 0.0
            order = [lk for lk in order if nb[lk] > 0]
            for i, lk in enumerate(order):
                pos[lk] = i
            self._order = order
        for lk in order:
            c = nb[lk]
            fixed = 0.0
            for route in passing[lk].values():
                fixed += route.n * new[route.bott]
            lev = (cap[lk] - fixed) / c
            if lev < last or lev <= 0.0:
                return False
            new[lk] = lev
            last = lev
        for lk in self._used:
            if pos[lk] < 0:
                load = 0.0
                for route in passing[lk].values():
                    load += route.n * new[route.bott]
                if load > cap[lk] * (1.0 + 1e-12):
                    return False
        self._level = new
        return True

    def _fill(self) -> None:
        """Full progressive filling: new saturation order, levels and bottlenecks.

        All rates grow together; the link with the smallest fair share (bandwidth left over
        its flows not fixed yet) is full first: its flows get that share, which is taken off
        their other link; repeat. A link's share only grows as flows are fixed, so the heap
        keeps one entry per link and an entry found stale at the top is pushed back with the
        current share: O((routes + links) log links).
        """
        self.full_solves += 1
        cap = self._cap
        cnt = [0] * len(cap)  # flows not fixed yet, per link
        for route in self._routes.values():
            cnt[route.a] += route.n
            cnt[route.b] += route.n
        rem = cap.copy()  # bandwidth not given out yet [bytes/s]
        heap = [(rem[lk] / cnt[lk], lk) for lk in self._used]
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        pos = self._pos
        for lk in self._order:
            pos[lk] = -1
        order: list[int] = []
        level = [0.0] * len(cap)
        self._stamp += 1
        stamp = self._stamp
        on_link = self._on_link
        while heap:
            share, lk = pop(heap)
            c = cnt[lk]
            if c <= 0:
                continue  # all its flows were fixed through their other links
            cur = rem[lk] / c
            if cur != share:
                push(heap, (cur, lk))  # its share grew since it was pushed
                continue
            cnt[lk] = 0
            pos[lk] = len(order)
            order.append(lk)
            level[lk] = share
            for route in on_link[lk].values():
                if route.stamp == stamp:
                    continue  # fixed through its other link
                route.stamp = stamp
                if route.bott != lk:
                    self._assign(route, lk)  # keeps what its flows have received
                other = route.b if route.a == lk else route.a
                n = route.n
                cnt[other] -= n
                rem[other] -= share * n
        self._level = level
        self._order = order
        self._structure_ok = True
