"""Packages import downward only: wass_env <- agents <- teacher (no cycles).

Checked statically on every module's import statements (including imports inside functions), so
a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: For each package, the top-level packages of this project it must not import.
FORBIDDEN = {"wass_env": {"agents", "teacher"}, "agents": {"teacher"}, "teacher": set()}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_downward_only(package: str) -> None:
    bad = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & FORBIDDEN[package])
        for p in sorted((ROOT / package).rglob("*.py"))
    }
    bad = {k: v for k, v in bad.items() if v}
    assert bad == {}


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "def f():\n    from agents.registry import make_scheduler\n    import teacher.kb\n"
    )
    assert _imports(f) == {"agents", "teacher"}


def test_registry_finds_every_declared_scheduler() -> None:
    from wass_env.scheduling import SCHEDULERS, Scheduler

    for name in SCHEDULERS:
        cls = SCHEDULERS[name]
        assert issubclass(cls, Scheduler)
        assert cls.name == name


def test_make_scheduler_by_name_target_and_registration() -> None:
    from agents.heft import HEFTScheduler
    from wass_env.scheduling import (
        SCHEDULERS,
        UnknownSchedulerError,
        make_scheduler,
        register_scheduler,
        scheduler_names,
    )

    assert isinstance(make_scheduler("heft"), HEFTScheduler)
    by_target = make_scheduler({"_target_": "agents.baselines.RandomScheduler", "seed": 3})
    assert by_target.name == "random"
    same = make_scheduler({"_target_": "agents.baselines:RandomScheduler"}, seed=3)
    assert by_target.rng.integers(1000) == same.rng.integers(1000)
    register_scheduler("my_heft", HEFTScheduler)
    try:
        assert "my_heft" in scheduler_names()
        assert isinstance(make_scheduler("my_heft"), HEFTScheduler)
    finally:
        SCHEDULERS._refs.pop("my_heft")
    with pytest.raises(ValueError, match="already registered"):
        register_scheduler("heft", "agents.baselines:RandomScheduler")
    with pytest.raises(UnknownSchedulerError, match="valid names: .*heft"):
        make_scheduler("nope")
    with pytest.raises(UnknownSchedulerError, match="cannot import 'no_such.module:X'"):
        make_scheduler({"_target_": "no_such.module:X"})
