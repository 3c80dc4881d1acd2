"""Replay fixed workflow plans in SimGrid and report when every task started and finished.

This script runs under the Python interpreter that has SimGrid's bindings (Debian's
``/usr/bin/python3`` with ``python3-simgrid``), not under the project's environment, so it uses
the standard library and ``simgrid`` only. :mod:`wass_env.sim.reference.simgrid` writes its
input and reads its output; the format is plain JSON in SimGrid's own units::

    usage: simgrid_runner.py INPUT.json OUTPUT.json

    input = {
      "config": ["network/model:CM02", ...],        # passed to SimGrid as --cfg=...
      "cases": [{
        "topology": "pairs" | "star" | "shared_star", "sharing": "fatpipe" | "shared",
        "speed": [flop/s per node], "cores": [cores per node],
        "memory": [bytes per node, or null: unlimited], "task_memory": [bytes per task],
        # pairs:
        "bandwidth": [[bytes/s, n x n]], "latency": [[s, n x n]], "storage_latency": s,
        # stars:
        "bandwidth": bytes/s, "route_latency": s, "node_delay": s, "storage_delay": s,
        "storage_bandwidth": bytes/s,
        "node": [node per task], "flops": [flop per core per task],
        "task_cores": [cores per task], "input_bytes": [int bytes per task],
        "edge_src": [...], "edge_dst": [...], "edge_bytes": [int bytes per edge],
        "order": [[tasks of node n in start order], ...]
      }, ...]
    }
    output = {"cases": [{"start": [...], "finish": [...]}, ...],
              "import_s": s, "build_s": s, "run_s": s, "clock": simulated s}

How a plan is executed (the replay rule of :func:`wass_env.sim.execute`):

* Every task is an actor on its node's host. It first posts the receives of its inputs: one
  mailbox per cross-node edge, fed by the parent's actor when the parent finishes (a host-to-host
  transfer over the route between the two nodes), plus, if it reads external input, a transfer
  from the storage host started at time 0. Inputs from parents on the same node cost nothing: the
  parent releases a semaphore when it finishes.
* A node starts its tasks in the plan's order: a task waits until the task before it in its
  node's order has started (a semaphore per task), then until all its inputs have arrived, then
  takes ``task_cores`` units of the node's core semaphore (capacity = the node's cores). After the
  predecessor has started no other task of the node can start, so cores only free up from then
  on and taking them one unit at a time gives the first moment when enough are free. Memory
  works the same way with a counter: the task waits (on a semaphore every finishing task of the
  node releases) until the node has ``task_memory`` bytes free, then takes them.
* A task with ``c`` cores runs ``c`` parallel executions of ``flops`` each on its host. SimGrid's
  CPU model gives every execution at most one core's speed and shares the host's
  ``cores x speed`` among them, so with at most ``cores`` executions on a host (which the core
  semaphore guarantees) each runs at full speed: the task holds ``c`` cores for
  ``flops / speed`` seconds. A zero-length task takes no cores and runs nothing.
* Each case lives in its own network zone with its own hosts and links, so many plans run in one
  simulation without touching each other.

Platforms (``topology``, per case):

* ``pairs``: one link per ordered node pair with that pair's bandwidth and latency, and one fat
  pipe from the storage host to each node (reads never contend). With ``sharing = "fatpipe"``
  every transfer gets the full bandwidth of its link (no contention at all, the cost model of
  ``wass_env.sim``'s ``contention_free`` network); with ``"shared"`` concurrent transfers
  between the same two nodes share the link fairly.
* ``star``: one split-duplex link (up and down) from each host, storage included, to a central
  switch; a route crosses up(src) and down(dst). Every link has half of ``route_latency``, so
  every route has the same latency and CM02's latency-weighted sharing is plain max-min
  fairness; a transfer whose real latency is longer waits ``node_delay`` or ``storage_delay``
  before it is posted (see ``wass_env.sim.reference.simgrid_replay``).
* ``shared_star``: the same with one shared link per host for both directions.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _build_case(sg: Any, root: Any, ci: int, case: dict[str, Any]) -> tuple[list[Any], Any]:
    """Create the zone, hosts, links and routes of case ``ci``; return (hosts, storage host)."""
    topology = case["topology"]
    zone = sg.NetZone.create_full_zone(f"c{ci}")
    zone.set_parent(root)
    n = len(case["speed"])
    hosts = []
    for i in range(n):
        h = zone.create_host(f"c{ci}n{i}", float(case["speed"][i]))
        h.core_count = int(case["cores"][i])
        hosts.append(h.seal())
    storage = zone.create_host(f"c{ci}storage", 1.0).seal()

    def route(src: Any, dst: Any, links: list[Any]) -> None:
        zone.add_route(src.netpoint, dst.netpoint, None, None, links, False)

    if topology == "pairs":
        fat = case["sharing"] == "fatpipe"
        bw, lat = case["bandwidth"], case["latency"]
        for i in range(n):
            for j in range(n):
                if i != j:
                    lk = zone.create_link(f"c{ci}l{i}_{j}", float(bw[i][j]))
                    lk.set_latency(float(lat[i][j]))
                    if fat:
                        lk.set_sharing_policy(sg.Link.SharingPolicy.FATPIPE, None)
                    route(hosts[i], hosts[j], [sg.LinkInRoute(lk.seal())])
        s_bw, s_lat = case["storage_bandwidth"], case["storage_latency"]
        for i in range(n):
            # Storage reads never contend (node-independent stage-in cost): a fat pipe per node.
            lk = zone.create_link(f"c{ci}s{i}", float(s_bw)).set_latency(float(s_lat))
            lk.set_sharing_policy(sg.Link.SharingPolicy.FATPIPE, None)
            route(storage, hosts[i], [sg.LinkInRoute(lk.seal())])
    elif topology in ("star", "shared_star"):
        half = 0.5 * float(case["route_latency"])
        ups, downs = [], []
        bws = [case["bandwidth"]] * n + [case["storage_bandwidth"]]  # storage is host n
        for i, bw in enumerate(bws):
            if topology == "star":
                lk = zone.create_split_duplex_link(f"c{ci}nic{i}", float(bw)).set_latency(half)
                lk.seal()
                ups.append(sg.LinkInRoute(lk, sg.LinkInRoute.Direction.UP))
                downs.append(sg.LinkInRoute(lk, sg.LinkInRoute.Direction.DOWN))
            else:
                lk = zone.create_link(f"c{ci}nic{i}", float(bw)).set_latency(half).seal()
                ups.append(sg.LinkInRoute(lk))
                downs.append(sg.LinkInRoute(lk))
        for i in range(n):
            for j in range(n):
                if i != j:
                    route(hosts[i], hosts[j], [ups[i], downs[j]])
            route(storage, hosts[i], [ups[n], downs[i]])
    else:
        raise ValueError(f"unknown topology {topology!r}; expected pairs, star or shared_star")
    zone.seal()
    return hosts, storage


def _start_case(
    sg: Any, engine: Any, ci: int, case: dict[str, Any], hosts: list[Any], storage: Any
) -> dict[str, list[float]]:
    """Create the task actors of case ``ci``; return the dict their times are written into."""
    node = case["node"]
    flops = case["flops"]
    tcores = case["task_cores"]
    in_bytes = case["input_bytes"]
    src, dst, eb = case["edge_src"], case["edge_dst"], case["edge_bytes"]
    n_t = len(node)
    remote_in: list[list[int]] = [[] for _ in range(n_t)]
    remote_out: list[list[int]] = [[] for _ in range(n_t)]
    local_in = [0] * n_t
    local_out: list[list[int]] = [[] for _ in range(n_t)]
    for e in range(len(src)):
        s, d = src[e], dst[e]
        if node[s] == node[d]:
            local_in[d] += 1
            local_out[s].append(d)
        else:
            remote_in[d].append(e)
            remote_out[s].append(e)
    prev = [-1] * n_t
    has_next = [False] * n_t
    for seq in case["order"]:
        for k in range(1, len(seq)):
            prev[seq[k]] = seq[k - 1]
            has_next[seq[k - 1]] = True
    if sorted(t for seq in case["order"] for t in seq) != list(range(n_t)):
        raise ValueError(f"case {ci}: the node orders are not a partition of the tasks")
    core_sem = [sg.Semaphore(int(c)) for c in case["cores"]]
    mem_free = list(case["memory"])  # [bytes] per node, None: unlimited
    tmem = case["task_memory"]
    mem_freed = [sg.Semaphore(0) for _ in range(len(mem_free))]  # a task of the node finished
    star = case["topology"] != "pairs"
    node_delay = float(case.get("node_delay", 0.0)) if star else 0.0
    storage_delay = float(case.get("storage_delay", 0.0)) if star else 0.0
    in_mbox = {t: sg.Mailbox.by_name(f"c{ci}in{t}") for t in range(n_t) if storage_delay > 0}
    started = [sg.Semaphore(0) for _ in range(n_t)]
    local_done = [sg.Semaphore(0) for _ in range(n_t)]
    mbox = {e: sg.Mailbox.by_name(f"c{ci}e{e}") for t in range(n_t) for e in remote_in[t]}
    out: dict[str, list[float]] = {"start": [float("nan")] * n_t, "finish": [float("nan")] * n_t}

    def task(t: int) -> None:
        host = hosts[node[t]]
        # SimGrid 3.32's get_async returns (comm, holder), where the holder owns the buffer the
        # comm writes its payload into: it must stay alive until the comm is done. (Later
        # versions return the comm alone.)
        receives = [mbox[e].get_async() for e in remote_in[t]]
        if in_bytes[t] > 0 and storage_delay > 0:
            receives.append(in_mbox[t].get_async())
        pending = [r[0] if isinstance(r, tuple) else r for r in receives]
        if in_bytes[t] > 0 and storage_delay == 0:
            pending.append(sg.Comm.sendto_async(storage, host, int(in_bytes[t])))
        if prev[t] >= 0:
            started[prev[t]].acquire()
        for _ in range(local_in[t]):
            local_done[t].acquire()
        for c in pending:
            c.wait()
        busy = flops[t] > 0
        n = node[t]
        m = tmem[t]
        if busy:
            for _ in range(tcores[t]):
                core_sem[n].acquire()
            if m > 0 and mem_free[n] is not None:
                while mem_free[n] < m:
                    mem_freed[n].acquire()
                mem_free[n] -= m
        out["start"][t] = engine.clock
        if has_next[t]:
            started[t].release()
        if busy:
            execs = [sg.this_actor.exec_init(float(flops[t])) for _ in range(tcores[t])]
            for ex in execs:
                ex.start()
            for ex in execs:
                ex.wait()
            for _ in range(tcores[t]):
                core_sem[n].release()
            if m > 0 and mem_free[n] is not None:
                mem_free[n] += m
                mem_freed[n].release()
        out["finish"][t] = engine.clock
        for ch in local_out[t]:
            local_done[ch].release()
        if node_delay > 0 and remote_out[t]:
            sg.this_actor.sleep_for(node_delay)
        sends = [mbox[e].put_async(None, int(eb[e])) for e in remote_out[t]]
        for c in sends:
            c.wait()

    def read_input(t: int) -> None:
        sg.this_actor.sleep_for(storage_delay)
        in_mbox[t].put(None, int(in_bytes[t]))

    for t in range(n_t):
        sg.Actor.create(f"c{ci}t{t}", hosts[node[t]], task, t)
        if in_bytes[t] > 0 and storage_delay > 0:
            sg.Actor.create(f"c{ci}r{t}", storage, read_input, t)
    return out


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Simulate every case of ``spec`` in one SimGrid engine and return the output dict."""
    t0 = time.perf_counter()
    import simgrid as sg

    t1 = time.perf_counter()
    args = ["simgrid_runner", "--log=root.thres:critical"]
    args += [f"--cfg={c}" for c in spec.get("config", [])]
    engine = sg.Engine(args)
    root = sg.NetZone.create_full_zone("root")
    outs = []
    for ci, case in enumerate(spec["cases"]):
        hosts, storage = _build_case(sg, root, ci, case)
        outs.append((hosts, storage))
    root.seal()
    results = [
        _start_case(sg, engine, ci, case, *outs[ci]) for ci, case in enumerate(spec["cases"])
    ]
    t2 = time.perf_counter()
    engine.run()
    t3 = time.perf_counter()
    for ci, res in enumerate(results):
        missing = [t for t, f in enumerate(res["finish"]) if f != f]
        if missing:
            raise RuntimeError(
                f"case {ci}: {len(missing)} tasks never finished (first: {missing[0]})"
            )
    return {
        "cases": results,
        "import_s": t1 - t0,
        "build_s": t2 - t1,
        "run_s": t3 - t2,
        "clock": engine.clock,
    }


def main(argv: list[str]) -> int:
    """Read the input file, simulate, write the output file atomically."""
    if len(argv) != 3:
        sys.stderr.write("usage: simgrid_runner.py INPUT.json OUTPUT.json\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    result = run(spec)
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    import os

    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
