"""Tests of systpipe.hepdata: the submission passes hepdata-validator, the signed (down, up)
convention, the workspace resource, and bad input leaves no file."""

from __future__ import annotations

import json
import os
import tarfile

import pandas as pd
import pytest
import yaml

from systpipe.errors import DataContractError
from systpipe.hepdata import build_submission, signed_pair, validate_archive

NAMES = ["lumi", "sig", "bkg", "det"]


def _inputs(tmp_path):
    rows = []
    for clf in ("hgb", "xgb"):
        rows.append({
            "classifier": clf, "working_point": "profile_optimum", "method": "profile", "threshold": 0.94,
            "mu_hat": 1.0, "dmu_stat": 0.0226, "dmu_mcstat": 0.169, "dmu_syst_tot": 0.197, "dmu_tot": 0.198,
            **{f"dmu_{k}": 0.03 for k in NAMES},
            "d_up_det": 0.156, "d_down_det": -0.181, "d_up_lumi": -0.042, "d_down_lumi": 0.044,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    fit = {
        "breakdown": {"stat": {"up": 0.0226, "down": 0.0225}, "total": {"up": 0.189, "down": 0.207}}
    }
    cov = pd.DataFrame({"mode": ["frequentist", "frequentist"], "method": ["profile", "shift"],
                        "coverage": [0.702, 1.0], "coverage_err": [0.0145, 0.0]})  # fmt: skip
    ws = tmp_path / "workspace.json"
    ws.write_text(json.dumps({"channels": [], "version": "1.0.0"}))
    return table, fit, cov, ws


def test_signed_pair_convention():
    assert signed_pair({"d_up_det": 0.156, "d_down_det": -0.181}, "det") == (-0.181, 0.156)
    assert signed_pair({"d_up_lumi": -0.042, "d_down_lumi": 0.044}, "lumi") == (0.044, -0.042)
    assert signed_pair({"d_up_sig": float("nan"), "d_down_sig": 0.0, "dmu_sig": 0.05}, "sig") == (
        -0.05,
        0.05,
    )


def test_submission_is_valid_and_carries_tables_and_workspaces(tmp_path):
    table, fit, cov, ws = _inputs(tmp_path)
    out = tmp_path / "out" / "submission.tar.gz"
    build_submission(table=table, names=NAMES, wp="profile_optimum", method="profile",
                     fits={"hgb": fit, "xgb": fit}, coverage={"xgb": cov},
                     workspaces={"hgb": ws, "xgb": ws}, out=out)  # fmt: skip
    assert validate_archive(out) == []  # hepdata-validator accepts it
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
        members = {n: tar.extractfile(n).read() for n in names}
    assert "workspace_hgb.json" in names and "workspace_xgb.json" in names
    docs = list(yaml.safe_load_all(members["submission.yaml"]))
    resources = docs[0]["additional_resources"]
    assert {r["location"]: r["type"] for r in resources if "type" in r} == {
        "workspace_hgb.json": "HistFactory", "workspace_xgb.json": "HistFactory"}  # fmt: skip
    assert [d["name"] for d in docs[1:]] == [
        "Uncertainty on the signal strength", "Breakdown of the profile-likelihood uncertainty",
        "Coverage XGBoost"]  # fmt: skip
    data = yaml.safe_load(members["uncertainty_on_the_signal_strength.yaml"])
    assert data["independent_variables"][0]["values"] == [{"value": "HGB"}, {"value": "XGBoost"}]
    errors = data["dependent_variables"][0]["values"][0]["errors"]
    by_label = {e["label"]: e for e in errors}
    assert by_label["stat"] == {"label": "stat", "symerror": 0.0226}
    # HEPData's signed convention: minus = shift under the down variation, plus = under up
    assert by_label["syst,Detector energy scale"]["asymerror"] == {"minus": -0.181, "plus": 0.156}
    assert by_label["syst,Luminosity"]["asymerror"] == {"minus": 0.044, "plus": -0.042}
    assert data["dependent_variables"][1]["values"][0] == {"value": 0.198}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_missing_rows_name_the_working_point_and_leave_no_file(tmp_path):
    table, fit, cov, ws = _inputs(tmp_path)
    out = tmp_path / "out" / "submission.tar.gz"
    with pytest.raises(
        DataContractError,
        match=r"no row of the uncertainty table with working_point 'max_ams' and method 'profile'",
    ):
        build_submission(table=table, names=NAMES, wp="max_ams", method="profile", fits={},
                         coverage={}, workspaces={}, out=out)  # fmt: skip
    assert not out.parent.exists() or not list(out.parent.iterdir())
    assert not (tmp_path / "submission.tar.gz").exists()  # hepdata_lib's cwd archive not leaked


def test_validator_rejects_a_broken_archive(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(broken, "w:gz") as tar:
        path = tmp_path / "submission.yaml"
        path.write_text("---\nname: no data file\ndescription: x\ndata_file: missing.yaml\n")
        tar.add(path, arcname="submission.yaml")
    messages = validate_archive(broken)
    assert "submission.yaml: 'keywords' is a required property" in messages, messages
