"""The ``wass`` command: its subcommands, their ``--help`` from the typed configs, the packaged
config tree, and the structured-config field docs that ``--help`` prints."""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wass_env.cli import CONFIG_DIR, field_docs
from wass_env.commands import commands
from wass_env.commands import main as wass

REPO = Path(__file__).resolve().parents[1]
HYDRA_COMMANDS = ("train", "evaluate", "ablation", "build-kb", "train-predictor", "explain")


@dataclass
class _Documented:
    """A schema.

    Attributes:
        a: From the docstring. Second sentence dropped.
        b: The docstring wins over
            the comment, and may run on.
    """

    a: int = 1
    b: int = 2  # not this
    c: str = "x"  # from the comment (with units [s])
    # From the comment lines
    # above the field.
    d: list[int] = field(default_factory=list)
    e: float = 0.0


def test_field_docs() -> None:
    assert field_docs(_Documented) == {
        "a": "From the docstring",
        "b": "The docstring wins over the comment, and may run on",
        "c": "from the comment (with units [s])",
        "d": "From the comment lines above the field",
    }


def test_the_packaged_config_tree_is_the_top_level_one() -> None:
    # wass_env/conf is a link to conf/: one copy, shipped in the wheel (pyproject package-data).
    assert CONFIG_DIR.resolve() == (REPO / "conf").resolve()
    assert (REPO / "wass_env" / "conf").is_symlink()
    for name in ("train", "evaluate", "ablation", "build_kb", "train_predictor", "explain"):
        assert (CONFIG_DIR / f"{name}.yaml").is_file()


def test_every_subcommand_is_installed(capsys: pytest.CaptureFixture[str]) -> None:
    assert {*HYDRA_COMMANDS, "plan"} <= set(commands())
    assert wass(["--help"]) == 0
    listed = capsys.readouterr().out.splitlines()[1].removeprefix("commands: ").split(", ")
    assert {*HYDRA_COMMANDS, "plan"} <= set(listed)
    assert wass(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", HYDRA_COMMANDS)
def test_help_describes_every_option(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert wass([name, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"wass {name}: ")
    options = text.split("Options (KEY=VALUE", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert options
    undocumented = []
    for i, line in enumerate(options):
        m = re.match(r"  (\S+?)(=.*?)?(?:\s{2,}(\S.*))?$", line)
        if m is None or line.startswith("   "):  # a description on its own line
            continue
        next_line = options[i + 1] if i + 1 < len(options) else ""
        described = m.group(3) or (next_line.startswith("   ") and next_line.strip())
        if not described:
            undocumented.append(m.group(1))
    assert undocumented == []


def test_help_lists_the_apps_own_groups(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert wass(["train", "--help", "agent=slurm"]) == 0
    text = capsys.readouterr().out
    groups = text.split("Config groups", 1)[1].split("\n\n", 1)[0]
    assert "agent " in groups and "(now: slurm)" in groups
    assert re.search(
        r"hydra/launcher +basic, joblib, local, parallel, slurm, submitit_local", groups
    )
    assert re.search(
        r"imitation/expert +heuristic, pilot, plan_portfolio, plans, portfolio "
        r"+\(now: plan_portfolio\)",
        groups,
    )
    # experiment/ is evaluate's group: train does not offer it, and refuses it in one line.
    assert "experiment" not in groups
    assert wass(["train", "experiment=smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not override 'experiment'") and err.count("\n") == 1


def test_every_schema_field_is_documented() -> None:
    from agents.config import AblationConfig, MaskablePPOConfig, RagTeacherConfig, TrainConfig
    from agents.evaluation.config import EvaluateConfig
    from teacher.config import BuildKBConfig, ExplainConfig, TrainPredictorConfig

    seen: set[type] = set()

    def walk(cls: type) -> list[str]:
        if cls in seen:
            return []
        seen.add(cls)
        docs = field_docs(cls)
        missing = [
            f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls) if f.name not in docs
        ]
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
            if dataclasses.is_dataclass(default):
                missing += walk(type(default))
        return missing

    schemas = [TrainConfig, MaskablePPOConfig, RagTeacherConfig, AblationConfig, EvaluateConfig]
    schemas += [BuildKBConfig, TrainPredictorConfig]
    assert [m for cls in [*schemas, ExplainConfig] for m in walk(cls)] == []
