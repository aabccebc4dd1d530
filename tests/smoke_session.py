"""One smoke workflow run per test session, shared by the workflow and the report tests.

The smoke workflow runs on 2 cores under umask 022 (the report tests check that results are
group-readable), then its report is built; tests/workflow/test_workflow.py compares it with a
second run on 1 core. Registered in tests/conftest.py (``pytest_plugins``): a conftest.py of
its own under tests/workflow would shadow tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core_lock import all_cores

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def run_snakemake(workdir: Path, *args: str) -> None:
    proc = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), *args], capture_output=True,
                          text=True, cwd=workdir)  # fmt: skip
    assert proc.returncode == 0, f"snakemake {args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory) -> Path:
    """The smoke workflow's work directory after a run on 2 cores and ``--report``."""
    workdir = tmp_path_factory.mktemp("smoke_2cores")
    shutil.copytree(ROOT / "config", workdir / "config")
    old = os.umask(0o022)
    try:
        with all_cores():
            run_snakemake(workdir, "--configfile", "config/smoke.yaml", "--cores", "2")
        run_snakemake(
            workdir, "--configfile", "config/smoke.yaml", "--report", "results/report.zip"
        )
    finally:
        os.umask(old)
    return workdir
