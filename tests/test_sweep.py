"""Sweeps through Hydra's launchers (conf/hydra/launcher) and the summary over their jobs.

``hydra/launcher=local`` (submitit on this machine) runs in the default suite;
``hydra/launcher=slurm`` (submitit_slurm) runs against the single-host Slurm of
``scripts/start_slurm.sh`` (``make test-slurm``) and skips without one.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: Two jobs of a seconds-long evaluation: one and two instances of the smoke experiment.
SWEEP = [
    "-m",
    "experiment=smoke",
    "schedulers=[slurm,heft]",
    "episodes=1,2",
    "plots=false",
]


def _sweep(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "evaluate.py"),
            *SWEEP,
            *extra,
            f"hydra.sweep.dir={out}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_summary(out: Path) -> None:
    jobs = sorted(p for p in out.iterdir() if (p / ".hydra").is_dir())
    assert [p.name.split(",")[0] for p in jobs] == ["episodes=1", "episodes=2"]
    summary = _rows(out / "sweep_summary.csv")
    # One row per job x workload x cluster x scheduler: 2 x 2 x 1 x 2.
    assert len(summary) == 8
    for num, job in enumerate(jobs):
        episodes = _rows(job / "episodes.csv")
        mine = [r for r in summary if r["job"] == str(num)]
        assert {r["episodes"] for r in mine} == {str(num + 1)}  # the job's override
        for r in mine:
            group = [
                e
                for e in episodes
                if (e["workload"], e["scheduler"]) == (r["workload"], r["scheduler"])
            ]
            assert int(r["rows"]) == num + 1 == len(group)
            assert float(r["makespan"]) == pytest.approx(
                np.mean([float(e["makespan"]) for e in group]), rel=1e-12
            )
            if r["scheduler"] == "heft":  # the reference itself
                assert float(r["ratio_to_heft"]) == 1.0
    text = (out / "sweep_summary.md").read_text()
    assert text.startswith("# Sweep summary: 2 jobs") and text.count("\n| 1 | smoke") == 4


def test_sweep_through_submitit_local(tmp_path: Path) -> None:
    out = _sweep(tmp_path, "hydra/launcher=local", "hydra.launcher.timeout_min=10")
    _check_summary(out)
    # submitit ran each job in its own process and kept its logs.
    assert len(list((out / ".submitit").glob("*/*_log.out"))) == 2


@pytest.mark.slurm
def test_sweep_through_submitit_slurm(tmp_path: Path) -> None:
    from agents.deploy.realised import SlurmError, slurm_nodes

    try:
        nodes = slurm_nodes()
    except SlurmError:
        pytest.skip("no Slurm running: start one with `bash scripts/start_slurm.sh`")
    if not any(state in ("idle", "mixed") for _, state, _, _ in nodes):
        pytest.skip(f"needs an idle Slurm node; sinfo shows {nodes}")
    out = _sweep(
        tmp_path,
        "hydra/launcher=slurm",
        "hydra.launcher.timeout_min=10",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
    )
    _check_summary(out)
    # Each job ran as a task of a Slurm job array (submitit's folders: <array id>_<task>).
    ids = {p.parent.name for p in (out / ".submitit").glob("*/*_log.out")}
    assert len(ids) == 2 and all(i.split("_")[0].isdigit() for i in ids)
