"""Workflow tests of systematics-aware classifiers: the DAG of tests/workflow/configs/
systematics_aware.yaml, and a bad systematics_aware entry stopping the run before any job."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_workflow import make_workdir, snakemake

CONFIG = Path(__file__).resolve().parent / "configs" / "systematics_aware.yaml"
pytestmark = pytest.mark.workflow


def test_aware_classifiers_are_ordinary_classifiers_of_the_dag(tmp_path):
    workdir = make_workdir(tmp_path)
    shutil.copy(CONFIG, workdir / "aware.yaml")
    out = snakemake(workdir, "-n", "-p", "--configfile", "aware.yaml").stdout
    scored = set(re.findall(r"results/hists/(\w+)/(\d+)\.parquet", out))
    clfs = {"xgb", "lgbm_par", "hgb_aug"}
    assert scored == {(c, "0") for c in clfs}
    for clf in clfs:
        # every variation is scored with the model's record (alpha inputs), and the classifier
        # reaches the scan, the fit and the table like any other
        assert f"results/models/{clf}.json" in out
        assert f"results/scans/{clf}.parquet" in out
        assert f"results/fit/{clf}/fit.json" in out
    assert "results/models/lgbm_par.txt" in out and "results/models/hgb_aug.skops" in out
    assert not (workdir / "results").exists()


def test_unknown_systematic_in_systematics_aware_stops_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path)
    text = CONFIG.read_text().replace("systematics: [det, sig]", "systematics: [det, jes]")
    assert "jes" in text
    (workdir / "bad.yaml").write_text(text)
    proc = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "classifiers[2].systematics_aware.systematics: ['jes'] not declared" in (
        proc.stdout + proc.stderr
    )
    assert not (workdir / "results").exists()
