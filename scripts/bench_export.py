"""One decision and one whole plan of an exported policy (onnxruntime) against torch, same run.

For each policy variant (the observation settings decide the network: the default node-scoring
policy, with lookahead features, and with lookahead and the 16-task graph window; untrained,
since the weights do not change the cost), on ``genomics49`` (49 tasks) on ``het16``:

* **one decision**: the observation of a real mid-plan state is prepared once; then each call is
  timed alone (``time.perf_counter_ns``), in rounds that alternate between onnxruntime
  (``session.run`` of the exported graph, one thread) and torch (the same network as sb3-contrib's
  ``predict`` runs it: ``obs_to_tensor``, ``get_distribution`` with the mask, the mode; one
  thread), so machine noise hits both alike. p50 and p99 over all calls [us].
* **whole plan**: ``OnnxPolicy.plan`` of a fresh ``Problem`` (49 decisions), the observations
  encoded by the environment's code (``WassSchedEnv.observe``) included, with the time inside
  ``observe`` and inside ``session.run`` measured separately; against the torch policy's own plan
  (``PolicyScheduler``) and HEFT's plan of the same problem in the same run (median of the rounds).

Each time is given as wall time and as CPU time of the calling thread (``time.thread_time``), which
leaves out the time the thread waited for a core: on a shared machine the wall time's tail is the
operating system's scheduling. References measured in the same run: torch (above), HEFT's plan,
and ``np.argsort`` of 10^6 floats (as ``bench_heft.py``). Goals: decision p99 <= 100 us (the
paper's Lua plugin: 1.8 ms), plan <= 20 ms (the paper: 185 ms).

    python scripts/bench_export.py                    # 3 variants, 5 rounds
    python scripts/bench_export.py --rounds 3 --calls 1000
    python scripts/bench_export.py --checkpoint runs/train/latest/model.zip
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.deploy.export import export_policy
from agents.deploy.onnx_policy import OnnxPolicy
from agents.learned import PolicyScheduler
from agents.ppo import MaskablePPOAgent, make_vec
from wass_env.scheduling import make_scheduler
from wass_env.sim import Problem, preset
from wass_env.sim.ordering import ReadyQueue, task_priority
from wass_env.sim.plan import PlanBuilder
from wass_env.workloads import make_sampler

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "lookahead": {"lookahead": True},
    "lookahead + graph 16": {"lookahead": True, "graph_window": 16},
}
DECISION_GOAL_US = 100.0  # p99
PLAN_GOAL_MS = 20.0


def machine() -> str:
    """CPU model, cores and load, for the table's caption."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {os.cpu_count()} cores, load average {load:.1f}"


def median_time(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``fn()`` over ``rounds`` calls [s]."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def per_call_us(fn: Callable[[], object], calls: int) -> tuple[list[float], list[float]]:
    """Wall time and CPU time of the calling thread of each of ``calls`` calls of ``fn()`` [us].

    The CPU time leaves out the time the thread waited for a core (on a busy machine the wall
    time's tail is the operating system's scheduling, not the decision).
    """
    wall, cpu = [], []
    for _ in range(calls):
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        c1 = time.thread_time_ns()
        wall.append((t1 - t0) / 1e3)
        cpu.append((c1 - c0) / 1e3)
    return wall, cpu


class _Timed:
    """Calls of a function, with their summed wall time [s]."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.total = 0.0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - t0
            self.calls += 1


class _TimedSession:
    """An onnxruntime session whose ``run`` is timed."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.run = _Timed(session.run)


def mid_plan_state(agent: MaskablePPOAgent, problem: Problem) -> tuple[PlanBuilder, int]:
    """The partial plan (HEFT's first half of the tasks) and the next task: a typical decision."""
    heft = make_scheduler("heft")
    heft._ensure(problem)
    b = PlanBuilder(problem, insertion=True)
    queue = ReadyQueue(b, task_priority(problem, "rank"))
    for _ in range(problem.n_tasks // 2):
        t = queue.pop()
        b.assign(t, heft.select_node(b, t))
        queue.update()
    return b, queue.pop()


def bench_variant(
    label: str, agent: MaskablePPOAgent, ckpt: Path, problem: Problem, args: argparse.Namespace
) -> dict[str, float]:
    """Every figure of one policy (see the module docstring)."""
    onnx_path = ckpt.with_suffix(".onnx")
    export_policy(ckpt, onnx_path, verify=64)
    pol = OnnxPolicy(onnx_path)
    tpol = PolicyScheduler(checkpoint=str(ckpt))
    assert agent.model is not None
    model = agent.model

    builder, task = mid_plan_state(agent, problem)
    feed = pol._feed(builder, task)
    feed = {k: np.array(v) for k, v in feed.items()}  # a private copy: the buffers are reused
    obs = {k: feed[k][0] for k in pol.obs_keys}
    mask = feed["action_mask"][0]
    sess = pol.session
    onnx_action = int(sess.run(["action"], feed)[0][0])
    torch_action, _ = model.predict(obs, action_masks=mask, deterministic=True)
    assert onnx_action == int(torch_action), "the two runtimes disagree on the benchmark state"

    def onnx_decision() -> object:
        return sess.run(["action"], feed)

    def torch_decision() -> object:
        return model.predict(obs, action_masks=mask, deterministic=True)

    per_call_us(onnx_decision, 200)  # warm-up
    per_call_us(torch_decision, 50)
    o_us: list[float] = []
    o_cpu: list[float] = []
    t_us: list[float] = []
    t_cpu: list[float] = []
    for _ in range(args.rounds):
        wall, cpu = per_call_us(onnx_decision, args.calls)
        o_us += wall
        o_cpu += cpu
        wall, cpu = per_call_us(torch_decision, max(1, args.calls // 5))
        t_us += wall
        t_cpu += cpu

    # Whole plans, with the encoding and the graph's time inside the ONNX plan.
    wf, cl = problem.workflow, problem.cluster
    env = pol.observer(True)
    observe = _Timed(env.observe)
    env.observe = observe  # type: ignore[method-assign]
    timed = _TimedSession(pol.session)
    pol.session = timed  # type: ignore[assignment]
    pol.plan(Problem(wf, cl))  # warm-up
    plan_s, plan_cpu, enc_s, run_s = [], [], [], []
    for _ in range(args.rounds):
        observe.total = timed.run.total = 0.0
        c0 = time.thread_time()
        t0 = time.perf_counter()
        plan = pol.plan(Problem(wf, cl))
        plan_s.append(time.perf_counter() - t0)
        plan_cpu.append(time.thread_time() - c0)
        enc_s.append(observe.total)
        run_s.append(timed.run.total)
    heft = make_scheduler("heft")
    heft_s = median_time(lambda: heft.plan(Problem(wf, cl)), args.rounds)
    torch_plan_s = median_time(lambda: tpol.plan(Problem(wf, cl)), args.rounds)
    assert plan.node.size == wf.n_tasks
    i = int(np.argsort(plan_s)[len(plan_s) // 2])  # the median round, with its breakdown
    return {
        "onnx_p50": float(np.percentile(o_us, 50)),
        "onnx_p99": float(np.percentile(o_us, 99)),
        "onnx_cpu_p50": float(np.percentile(o_cpu, 50)),
        "onnx_cpu_p99": float(np.percentile(o_cpu, 99)),
        "torch_p50": float(np.percentile(t_us, 50)),
        "torch_p99": float(np.percentile(t_us, 99)),
        "torch_cpu_p50": float(np.percentile(t_cpu, 50)),
        "plan_ms": plan_s[i] * 1e3,
        "plan_cpu_ms": statistics.median(plan_cpu) * 1e3,
        "encode_ms": enc_s[i] * 1e3,
        "run_ms": run_s[i] * 1e3,
        "torch_plan_ms": torch_plan_s * 1e3,
        "heft_ms": heft_s * 1e3,
        "calls": len(o_us),
    }


def build(env_kwargs: dict[str, Any], seed: int) -> MaskablePPOAgent:
    """An untrained node-scoring policy for these observation settings on het16."""
    kw = {"workload": {"generator": "genomics49"}, "cluster": "het16", **env_kwargs}
    agent = MaskablePPOAgent(env_kwargs=kw, policy="node_scoring", seed=seed)
    agent.build(make_vec(kw, 1, seed))
    return agent


def main() -> None:
    """Run the benchmark and print a table."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000, help="onnxruntime calls per round")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", help="a trained model.zip instead of the three variants")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one decision: threads only add hand-off latency

    cl = preset("het16")
    wf = make_sampler({"generator": "genomics49"}).sample(np.random.default_rng(args.seed), cl)
    problem = Problem(wf, cl)
    data = np.random.default_rng(args.seed).random(1_000_000)
    ref = median_time(lambda: np.argsort(data), args.rounds)
    print(f"machine: {machine()}")
    print(f"reference: np.argsort of 1e6 floats = {ref * 1e3:.1f} ms (median of {args.rounds})")
    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, dict[str, float]]] = []
        if args.checkpoint:
            agent = MaskablePPOAgent.load(args.checkpoint)
            ckpt = Path(tmp) / "model.zip"
            agent.save(ckpt)
            runs.append(
                (Path(args.checkpoint).name, bench_variant("ckpt", agent, ckpt, problem, args))
            )
        else:
            for label, kw in VARIANTS.items():
                agent = build(kw, args.seed)
                ckpt = agent.save(Path(tmp) / f"{len(runs)}.zip")
                runs.append((label, bench_variant(label, agent, ckpt, problem, args)))
    print()
    print(
        "| policy | onnxruntime wall p50 / p99 [us] | onnxruntime CPU p50 / p99 [us] | "
        "torch wall p50 / p99 [us] | torch CPU p50 [us] | torch ÷ onnxruntime (CPU p50) | "
        "onnxruntime CPU p50 ÷ reference [10^-6] |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, r in runs:
        print(
            f"| {label} | {r['onnx_p50']:.1f} / {r['onnx_p99']:.1f} | {r['onnx_cpu_p50']:.1f} / "
            f"{r['onnx_cpu_p99']:.1f} | {r['torch_p50']:.0f} / {r['torch_p99']:.0f} | "
            f"{r['torch_cpu_p50']:.0f} | {r['torch_cpu_p50'] / r['onnx_cpu_p50']:.1f} | "
            f"{r['onnx_cpu_p50'] / ref:.2f} |"
        )
    print()
    print(
        "| policy | plan, onnxruntime: wall / CPU [ms] | of it: encoding [ms] | of it: graph "
        "runs [ms] | plan, torch [ms] | HEFT plan [ms] | onnx plan ÷ HEFT | torch ÷ onnx plan |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in runs:
        print(
            f"| {label} | {r['plan_ms']:.2f} / {r['plan_cpu_ms']:.2f} | {r['encode_ms']:.2f} "
            f"({r['encode_ms'] / r['plan_ms']:.0%}) | {r['run_ms']:.2f} "
            f"({r['run_ms'] / r['plan_ms']:.0%}) | {r['torch_plan_ms']:.1f} | {r['heft_ms']:.2f} | "
            f"{r['plan_ms'] / r['heft_ms']:.1f} | {r['torch_plan_ms'] / r['plan_ms']:.1f} |"
        )
    print()
    for label, r in runs:
        d_ok = "met" if r["onnx_p99"] <= DECISION_GOAL_US else "NOT met"
        p_ok = "met" if r["plan_ms"] <= PLAN_GOAL_MS else "NOT met"
        print(
            f"{label}: decision wall p99 {r['onnx_p99']:.1f} us (goal <= {DECISION_GOAL_US:g}: "
            f"{d_ok}; CPU p99 {r['onnx_cpu_p99']:.1f} us); plan wall {r['plan_ms']:.1f} ms "
            f"(goal <= {PLAN_GOAL_MS:g}: {p_ok}; CPU {r['plan_cpu_ms']:.1f} ms); "
            f"{int(r['calls'])} onnxruntime calls"
        )


if __name__ == "__main__":
    main()
