"""Recorded episodes: the same seed gives the same episode, observations, rewards and plan.

``tests/data/env_regression.json`` holds fingerprints of seeded WassSched-v0 episodes over a
grid of configurations (layered DAGs and a WfCommons recipe; het16, hom16, a padded mix and a
per-pair network; insertion and queue planning; rank and FIFO order; a random masked policy,
HEFT's choices and unmasked random actions that hit the illegal-action fallback; noise). Each step
stores the action, SHA-256 digests of ``obs["task"]``, ``obs["nodes"]`` and the mask, and the
exact rewards; each episode the digests of the final plan and the exact end-of-episode metrics.
The test replays every episode and compares them bit for bit, so speed work on the environment
or the planner cannot change a result unnoticed.

``tests/data/teacher_regression.npz`` holds the teacher's decision features, embeddings and
predictions along two episodes (a seeded, untrained model; no knowledge base), compared to a
relative 1e-6: they go through BLAS, whose last bits may differ between machines.

Re-record (only for an intended change of results, with the reason in the commit message)::

    python tests/test_env_regression.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wass_env.envs import WassSchedEnv
from wass_env.scheduling import make_scheduler

DATA = Path(__file__).resolve().parent / "data"
ENV_FILE = DATA / "env_regression.json"
TEACHER_FILE = DATA / "teacher_regression.npz"

_LAYERED = {"generator": "layered", "n_tasks": [20, 40], "width": [2, 6], "density": 0.2}
#: A cluster whose links differ per node pair (the planner's general arrival-time path).
_PAIR_NET = {
    "speed": [2.0, 1.0, 1.0, 0.5, 1.0, 2.0],
    "cores": [4, 8, 8, 8, 16, 2],
    "memory_gib": [64, 64, 64, 64, 512, 32],
    "name": "pairnet6",
}

#: name -> (env kwargs, policy, episodes, seed). Policies: "masked" (uniform over the mask),
#: "heft" (HEFT's node for the env's task), "any" (uniform over all actions: illegal ones too).
CASES: dict[str, tuple[dict[str, Any], str, int, int]] = {
    "layered-het16-insertion-masked": (
        {"workload": {**_LAYERED, "ccr": 1.0}, "cluster": "het16"},
        "masked",
        2,
        0,
    ),
    "layered-het16-queue-heft": (
        {"workload": {**_LAYERED, "ccr": 1.0}, "cluster": "het16", "insertion": False},
        "heft",
        2,
        1,
    ),
    "layered-hom16-insertion-heft": (
        {"workload": {**_LAYERED, "ccr": 5.0}, "cluster": "hom16"},
        "heft",
        2,
        2,
    ),
    "layered-hom16-queue-masked-fifo": (
        {
            "workload": {**_LAYERED, "ccr": 0.5},
            "cluster": "hom16",
            "insertion": False,
            "task_order": "fifo",
        },
        "masked",
        2,
        3,
    ),
    "multicore-het16-insertion-any-noise": (
        # Tasks of 1-12 cores: some fit only the bigmem nodes (partial masks, gaps).
        {
            "workload": {**_LAYERED, "cores": [1, 12], "ccr": 1.0},
            "cluster": "het16",
            "noise": 0.3,
            "reward_weights": {"makespan": 1.0, "progress": 0.5, "illegal": 1.0},
        },
        "any",
        2,
        4,
    ),
    "recipe-het16-insertion-masked": (
        {"workload": {"recipe": "srasearch", "n_tasks": 30, "pool": 2}, "cluster": "het16"},
        "masked",
        2,
        5,
    ),
    "recipe-hom16-queue-heft": (
        {
            "workload": {"recipe": "epigenomics", "n_tasks": 45, "pool": 2},
            "cluster": "hom16",
            "insertion": False,
        },
        "heft",
        2,
        6,
    ),
    "mix-padded-insertion-masked": (
        {
            "workload": {**_LAYERED, "ccr": 2.0},
            "cluster": ["het16", {"kind": "homogeneous", "n_nodes": 6, "name": "hom6"}],
            "max_nodes": 20,
            "reference": "heft",
        },
        "masked",
        3,
        7,
    ),
    "pairnet-insertion-heft": (
        {"workload": {**_LAYERED, "ccr": 1.0}, "cluster": _PAIR_NET},
        "heft",
        2,
        8,
    ),
}
_METRICS = (
    "makespan",
    "planned_makespan",
    "mean_wait",
    "utilization",
    "cross_node_bytes",
    "locality_hit_rate",
    "slr",
    "lower_bound",
    "ratio_to_lower_bound",
    "reference_makespan",
    "ratio_to_reference",
)


#: Per-step columns of a recorded episode: the observation, mask (env.action_masks() and
#: info["action_mask"]) and current task after reset and after every step, then per step the
#: action, the reward, its named terms and the illegal-action flag.
_STEP_COLUMNS = ("task", "nodes", "mask", "current", "action", "reward", "terms", "illegal")


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:12]


def _pair_net_cluster(spec: dict[str, Any]) -> Any:
    from wass_env.sim import Cluster
    from wass_env.sim.cluster import GIB

    n = len(spec["speed"])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    bw = 1.25e9 / (1.0 + 0.5 * np.abs(i - j))  # farther pairs are slower [bytes/s]
    lat = 1e-4 * (1.0 + np.abs(i - j))  # [s]
    return Cluster(
        spec["speed"],
        spec["cores"],
        np.asarray(spec["memory_gib"], dtype=np.float64) * GIB,
        bandwidth=bw,
        latency=lat,
        name=spec["name"],
    )


def make_case_env(kwargs: dict[str, Any]) -> WassSchedEnv:
    kw = dict(kwargs)
    if kw["cluster"] is _PAIR_NET:
        kw["cluster"] = _pair_net_cluster(_PAIR_NET)
    return WassSchedEnv(**kw)


def run_case(name: str) -> list[dict[str, Any]]:
    """Fingerprints of the episodes of case ``name``."""
    kwargs, policy, episodes, seed = CASES[name]
    env = make_case_env(kwargs)
    heft = make_scheduler("heft")
    rng = np.random.default_rng(seed)
    out = []
    obs, info = env.reset(seed=seed)
    for _ in range(episodes):
        cols: dict[str, list[Any]] = {k: [] for k in _STEP_COLUMNS}

        def note(
            obs: dict[str, np.ndarray], info: dict[str, Any], cols: dict[str, list[Any]] = cols
        ) -> None:
            cols["task"].append(_digest(obs["task"]))
            cols["nodes"].append(_digest(obs["nodes"]))
            cols["mask"].append(_digest(env.action_masks()) + _digest(info["action_mask"]))
            cols["current"].append(info.get("task"))

        note(obs, info)
        while True:
            mask = env.action_masks()
            if policy == "masked":
                action = int(rng.choice(np.flatnonzero(mask)))
            elif policy == "heft":
                action = int(heft.act(obs, mask, env))
            else:
                action = int(rng.integers(env.action_space.n))
            obs, reward, terminated, truncated, info = env.step(action)
            note(obs, info)
            cols["action"].append(action)
            cols["reward"].append(float(reward).hex())
            cols["terms"].append(
                ",".join(f"{k}={float(v).hex()}" for k, v in sorted(info["rewards"].items()))
            )
            cols["illegal"].append(int(info["illegal_action"]))
            if terminated or truncated:
                break
        plan = env.last_plan
        sched = env.last_schedule
        out.append(
            {
                "workflow": info["workflow"],
                "cluster": info["cluster"],
                "n_tasks": int(info["n_tasks"]),
                **cols,
                "plan": {
                    "node": _digest(plan.node),
                    "start": _digest(plan.start),
                    "finish": _digest(plan.finish),
                    "decision": _digest(plan.decision),
                    "realized_start": _digest(sched.start),
                    "realized_finish": _digest(sched.finish),
                },
                "metrics": {k: float(info[k]).hex() for k in _METRICS if k in info},
            }
        )
        obs, info = env.reset()
    return out


def _first_difference(want: Any, got: Any, where: str = "") -> str | None:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in want:
            if k not in got:
                return f"{where}.{k}: missing"
            d = _first_difference(want[k], got[k], f"{where}.{k}")
            if d:
                return d
        extra = sorted(set(got) - set(want))
        return f"{where}: unexpected keys {extra}" if extra else None
    if isinstance(want, list) and isinstance(got, list):
        for i, (w, g) in enumerate(zip(want, got, strict=False)):
            d = _first_difference(w, g, f"{where}[{i}]")
            if d:
                return d
        if len(want) != len(got):
            return f"{where}: length {len(got)}, recorded {len(want)}"
        return None
    return None if want == got else f"{where}: {got!r}, recorded {want!r}"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(ENV_FILE.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_episode_replays_exactly(name: str, recorded: dict[str, Any]) -> None:
    want = recorded["cases"][name]
    got = run_case(name)
    diff = _first_difference(want, got, name)
    assert diff is None, f"episode differs from the recording at {diff}"


def test_recording_covers_every_case_and_the_grid(recorded: dict[str, Any]) -> None:
    assert sorted(recorded["cases"]) == sorted(CASES)
    eps = [ep for case in recorded["cases"].values() for ep in case]
    # The grid is really there: both clusters, both planning policies, illegal fallbacks, noise.
    assert {"het16", "hom16", "hom6", "pairnet6"} <= {ep["cluster"] for ep in eps}
    assert any(any(ep["illegal"]) for ep in eps)
    noisy = recorded["cases"]["multicore-het16-insertion-any-noise"]
    assert all(ep["metrics"]["makespan"] != ep["metrics"]["planned_makespan"] for ep in noisy)
    assert sum(len(ep["action"]) for ep in eps) == sum(ep["n_tasks"] for ep in eps) > 400
    assert all(len(ep["nodes"]) == ep["n_tasks"] + 1 for ep in eps)


# ------------------------------------------------------------------------ the teacher


def _teacher_trace() -> dict[str, np.ndarray]:
    """The teacher's view of every decision of two HEFT-driven episodes, then one random one."""
    import torch

    from teacher.encoder import EncoderConfig, GraphEncoder
    from teacher.predictor import Predictor, PredictorConfig, TeacherModel
    from teacher.teacher import Teacher
    from teacher.wrapper import RAGRewardWrapper

    torch.manual_seed(0)
    enc = GraphEncoder(EncoderConfig(hidden=16, layers=2, embed_dim=8))
    pred = Predictor(
        8, PredictorConfig(hidden=16, k=3, policies=("heft", "random")), key_dim=enc.config.key_dim
    )
    model = TeacherModel.from_torch(enc, pred)
    env = RAGRewardWrapper(
        make_case_env({"workload": {**_LAYERED, "ccr": 1.0}, "cluster": "het16"}),
        Teacher(model, None, reference="heft"),
        lam=0.5,
    )
    heft = make_scheduler("heft")
    rng = np.random.default_rng(9)
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("state", "actions", "embedding", "pred", "reward")
    }
    obs, _ = env.reset(seed=9)
    for ep in range(3):
        while True:
            ev = env._ev
            # The teacher has scored this decision: one prediction per action.
            assert ev is not None and ev.pred.shape == (env.action_space.n,)
            cols["state"].append(ev.features.state)
            cols["actions"].append(ev.features.actions)
            cols["embedding"].append(ev.embedding)
            cols["pred"].append(np.where(np.isfinite(ev.pred), ev.pred, -1.0))
            mask = env.unwrapped.action_masks()
            if ep < 2:
                a = int(heft.act(obs, mask, env))
            else:
                a = int(rng.choice(np.flatnonzero(mask)))
            obs, r, term, _, _ = env.step(a)
            cols["reward"].append(np.array([r]))
            if term:
                break
        obs, _ = env.reset()
    return {k: np.stack(v) for k, v in cols.items()}


def test_teacher_features_and_predictions_replay() -> None:
    want = np.load(TEACHER_FILE)
    got = _teacher_trace()
    assert sorted(want.files) == sorted(got)
    for k in want.files:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-7, err_msg=k)


def _record() -> None:
    from wass_env.io import atomic_write

    cases = {name: run_case(name) for name in sorted(CASES)}
    atomic_write(ENV_FILE, json.dumps({"cases": cases}, separators=(",", ":")) + "\n")
    trace = {k: v.astype(np.float32) for k, v in _teacher_trace().items()}
    atomic_write(TEACHER_FILE, lambda fh: np.savez_compressed(fh, **trace))
    print(f"wrote {ENV_FILE} ({ENV_FILE.stat().st_size} bytes)")
    print(f"wrote {TEACHER_FILE} ({TEACHER_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _record()
