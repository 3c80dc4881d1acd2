"""The declared dependencies are exactly the third-party packages the code imports.

Every import statement of ``wass_env``, ``agents`` and ``teacher`` (inside functions too) is read
with ``ast``; its top-level module is mapped to the distribution that provides it. Each such
distribution must be declared in ``pyproject.toml``, and each declared one must be imported or
listed in :data:`USED_WITHOUT_IMPORT` with the reason.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wass_env", "agents", "teacher")
#: Declared distributions the code never imports by name, and why they are needed.
USED_WITHOUT_IMPORT = {
    "tensorboard": "stable-baselines3's logger writes the event files through it",
    "rich": "stable-baselines3's progress bar (train.progress_bar) is tqdm.rich's",
    "hydra-joblib-launcher": "Hydra loads it for hydra/launcher=joblib (conf/hydra/launcher)",
    "hydra-submitit-launcher": "Hydra loads it for hydra/launcher=submitit_local/submitit_slurm",
}
#: Imported modules that are not PyPI dependencies: SimGrid's Python bindings come from the
#: system (Debian's python3-simgrid, scripts/install_simgrid.sh) and are optional.
SYSTEM_MODULES = {"simgrid"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> set[str]:
    out: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    out.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    out.add(node.module.split(".")[0])
    return out - set(PACKAGES) - set(sys.stdlib_module_names) - {"__future__"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {_norm(re.split(r"[ <>=!~;\[]", d, maxsplit=1)[0]) for d in project["dependencies"]}


def _distributions(modules: set[str]) -> dict[str, str]:
    """module -> the distribution providing it (installed ones)."""
    table = metadata.packages_distributions()
    out = {}
    for m in sorted(modules - SYSTEM_MODULES):
        dists = table.get(m)
        assert dists, f"module {m!r} is imported but no installed distribution provides it"
        out[m] = _norm(dists[0])
    return out


def test_every_imported_package_is_declared() -> None:
    used = _distributions(_imported_modules())
    missing = {m: d for m, d in used.items() if d not in _declared()}
    assert missing == {}


def test_every_declared_package_is_used() -> None:
    used = set(_distributions(_imported_modules()).values())
    unused = _declared() - used - {_norm(n) for n in USED_WITHOUT_IMPORT}
    assert unused == set()


def test_the_scan_sees_nested_imports() -> None:
    modules = _imported_modules()
    # ortools and faiss are imported only inside functions: the scan must still see them.
    assert {"scipy", "ortools", "faiss"} <= modules
