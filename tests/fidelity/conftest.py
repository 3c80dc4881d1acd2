"""Fixtures of the SimGrid cross-validation tests.

Tests that need SimGrid request the ``simgrid`` fixture, which skips them with the install hint
when no interpreter with SimGrid's Python bindings is found.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wass_env.sim.reference import simgrid_available, simgrid_python

#: Reference data shared by the project (read in place, never copied).
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def simgrid() -> str:
    """The interpreter that runs SimGrid; skips the test when SimGrid is not installed."""
    py = simgrid_python()
    if not simgrid_available(py):
        pytest.skip(
            f"SimGrid's Python bindings are not installed for {py}: "
            "run scripts/install_simgrid.sh (apt-get install python3-simgrid)"
        )
    return py


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared reference data directory; skips the test when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"reference data not found at {DATA_DIR}")
    return DATA_DIR
