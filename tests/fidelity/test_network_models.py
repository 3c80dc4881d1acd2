"""The hand-computed network and memory plans of ``tests/test_network.py``, replayed in SimGrid.

Each plan runs on the platform of its cluster's network model (a split-duplex link per host for
``"nic"``, one shared link per host for ``"shared_nic"``, storage behind its own link); SimGrid
must give the times computed by hand, as ``execute`` does. The last test documents why the
harness asks SimGrid for its "Full" network update (``FULL_UPDATE``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from wass_env.sim import execute
from wass_env.sim.reference import DEFAULT_CONFIG, replay

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_network import (
    FILLING_START,
    LATE_PAIR_START,
    STAGE_IN_START,
    STAGGERED_START,
    big_memory,
    crossing,
    fan_out,
    late_pair,
    progressive_filling,
    stage_in,
    staggered,
)

EXACT = 1e-9  # [s]


def test_hand_computed_plans_in_simgrid(simgrid: str) -> None:
    cases = [
        (fan_out([1, 2], "nic"), [0.0, 3.5, 3.5]),
        (fan_out([1, 1], "nic"), [0.0, 3.5, 3.5]),
        (fan_out([1, 2], "shared_nic"), [0.0, 3.5, 3.5]),
        (crossing("nic"), [0.0, 0.0, 2.5, 2.5]),
        (crossing("shared_nic"), [0.0, 0.0, 3.5, 3.5]),
        (progressive_filling(), FILLING_START),
        (staggered(), STAGGERED_START),
        (late_pair(), LATE_PAIR_START),
        # storage_latency 0.2 != latency 0.5: the runner gives every route 0.2 s and holds
        # node-to-node transfers back 0.3 s (CM02 would otherwise weight shares by latency).
        (stage_in("nic", 0.2), STAGE_IN_START),
        (stage_in("contention_free"), [0.0, 2.5, 1.5]),
        (big_memory(), [0.0, 10.0]),
    ]
    run = replay([plan for plan, _ in cases], python=simgrid)
    for (plan, start), ref in zip(cases, run.schedules, strict=True):
        np.testing.assert_allclose(ref.start, start, rtol=0, atol=EXACT)
        np.testing.assert_allclose(execute(plan).start, start, rtol=0, atol=EXACT)


def test_simgrid_lazy_update_oversubscribes_a_link(simgrid: str) -> None:
    """SimGrid 3.32's default "Lazy" network update gets :func:`late_pair` wrong.

    P2's transfers to Z (up(2), down(3)) and Y (up(2), down(0)) end their latency together at
    0.6. Enabling the first marks up(2) and down(3) as modified; for the second up(2) is already
    marked, and SimGrid only propagates from a variable's first link, so down(0) is never
    re-solved: P1->X keeps the 1e6 bytes/s it had alone while P2->Y gets 5e5 on the same
    1e6 bytes/s link. X starts at 3.1 instead of 4.1 (with Z and Y created in the other order
    the result is right). "Full" re-solves every link at every event and gives the
    hand-computed times.
    """
    lazy = replay([late_pair()], config=(*DEFAULT_CONFIG, "network/optim:Lazy"), python=simgrid)
    full = replay([late_pair()], python=simgrid)
    np.testing.assert_allclose(full.schedules[0].start, LATE_PAIR_START, rtol=0, atol=EXACT)
    np.testing.assert_allclose(
        lazy.schedules[0].start, [0.0, 0.0, 3.1, 2.6, 2.6], rtol=0, atol=EXACT
    )
