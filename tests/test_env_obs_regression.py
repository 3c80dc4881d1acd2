"""Recorded observations: every part of the observation, bit for bit, along seeded episodes.

``tests/data/env_obs_regression.json`` holds, per episode, one SHA-256 digest per observation
key over every step (``task``, ``nodes``, the masks, and with ``lookahead=True`` and
``graph_window=16`` also ``lookahead``, ``context``, ``graph_tasks`` and ``graph_edges``), the
digest of the exact rewards, and the digest of the observations that :meth:`WassSchedEnv.observe`
returns for a branched partial plan every few steps (which rebuilds the incrementally kept
columns from another builder). Cases: layered DAGs on het16 (insertion and queue planning,
multi-core tasks), a padded cluster mix, and the two sizes of ``scripts/bench_env.py`` (100 tasks
on het16, 1000 tasks on het128). Like ``test_env_regression.py`` it guards speed work on the
environment: an optimisation must not change a single bit of what an agent sees.

Re-record (only for an intended change of results, with the reason in the commit message)::

    python tests/test_env_obs_regression.py
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

DATA_FILE = Path(__file__).resolve().parent / "data" / "env_obs_regression.json"

_LAYERED = {"generator": "layered", "n_tasks": [20, 40], "width": [2, 6], "density": 0.2}
_EXTRAS = {"lookahead": True, "graph_window": 16}

#: name -> (env kwargs, episodes, seed, observe a branched plan every this many steps (0: never)).
CASES: dict[str, tuple[dict[str, Any], int, int, int]] = {
    "extras-het16-insertion": (
        {"workload": {**_LAYERED, "ccr": 1.0}, "cluster": "het16", **_EXTRAS},
        3,
        0,
        5,
    ),
    "extras-het16-queue-multicore": (
        {
            "workload": {**_LAYERED, "cores": [1, 12], "ccr": 2.0},
            "cluster": "het16",
            "insertion": False,
            **_EXTRAS,
        },
        3,
        1,
        7,
    ),
    "extras-mix-padded": (
        {
            "workload": {**_LAYERED, "ccr": 0.5},
            "cluster": ["het16", {"kind": "homogeneous", "n_nodes": 6, "name": "hom6"}],
            "max_nodes": 20,
            **_EXTRAS,
        },
        4,
        2,
        3,
    ),
    "bench-100x16": (
        {"workload": {"generator": "layered", "n_tasks": 100}, "cluster": "het16"},
        3,
        3,
        11,
    ),
    "bench-1000x128": (
        {"workload": {"generator": "layered", "n_tasks": 1000}, "cluster": "het128"},
        1,
        4,
        97,
    ),
}


class _Chain:
    """Running SHA-256 digests, one per key, over a sequence of arrays."""

    def __init__(self) -> None:
        self._h: dict[str, Any] = {}

    def add(self, key: str, a: Any) -> None:
        a = np.ascontiguousarray(a)
        h = self._h.setdefault(key, hashlib.sha256())
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())

    def add_obs(self, prefix: str, obs: dict[str, np.ndarray]) -> None:
        self.add(prefix + "keys", np.frombuffer(",".join(sorted(obs)).encode(), dtype=np.uint8))
        for k in sorted(obs):
            self.add(prefix + k, obs[k])

    def digests(self) -> dict[str, str]:
        return {k: h.hexdigest()[:16] for k, h in sorted(self._h.items())}


def run_case(name: str) -> list[dict[str, Any]]:
    """Digests of the episodes of case ``name``."""
    kwargs, episodes, seed, every = CASES[name]
    env = WassSchedEnv(**kwargs)
    rng = np.random.default_rng(seed)
    out = []
    obs, info = env.reset(seed=seed)
    for _ in range(episodes):
        chain = _Chain()
        steps = 0
        while True:
            chain.add_obs("", obs)
            chain.add("mask", env.action_masks())
            chain.add("info_mask", info["action_mask"])
            b = env.builder
            if every and steps % every == every - 1 and b is not None:
                # A branch of the partial plan: the current task placed elsewhere, then the
                # observation of another ready task there; the episode itself must not change.
                branch = b.copy()
                branch.assign(env.current_task, int(np.flatnonzero(env.action_masks())[-1]))
                if branch.ready:
                    chain.add_obs("observe_", env.observe(branch, min(branch.ready)))
            action = int(rng.choice(np.flatnonzero(env.action_masks())))
            obs, reward, terminated, truncated, info = env.step(action)
            chain.add("reward", np.array([reward]))
            steps += 1
            if terminated or truncated:
                chain.add_obs("", obs)
                break
        out.append({"workflow": info["workflow"], "steps": steps, **chain.digests()})
        obs, info = env.reset()
    return out


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_observations_replay_exactly(name: str, recorded: dict[str, Any]) -> None:
    want = recorded["cases"][name]
    got = run_case(name)
    assert len(got) == len(want)
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        diff = sorted(k for k in set(w) | set(g) if w.get(k) != g.get(k))
        assert not diff, f"{name} episode {i}: {diff} differ from the recording"


def test_recording_covers_every_case_and_part(recorded: dict[str, Any]) -> None:
    assert sorted(recorded["cases"]) == sorted(CASES)
    extras = recorded["cases"]["extras-het16-insertion"][0]
    for k in ("lookahead", "context", "graph_tasks", "graph_edges"):
        assert k in extras and "observe_" + k in extras
    assert recorded["cases"]["bench-1000x128"][0]["steps"] == 1000


def _record() -> None:
    from wass_env.io import atomic_write

    cases = {name: run_case(name) for name in sorted(CASES)}
    atomic_write(DATA_FILE, json.dumps({"cases": cases}, indent=1) + "\n")
    print(f"wrote {DATA_FILE} ({DATA_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _record()
