"""Acceptance: a real-looking ntuple through the whole workflow by config alone.

A generated 10k-event ROOT file written by a copy loop (tree stored as ``tree_event;1``), raw
generator weights of three processes in ONE file, MeV energies and GeV momenta, a -7 sentinel
and no dilepton features; per-process normalisation by selection on the process column,
derived features at ingest and a lepton energy scale with MET following.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from core_lock import all_cores

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
pytestmark = [pytest.mark.workflow, pytest.mark.slow]
N = 10_000
XSEC = {1: 0.25, 2: 2.8, 3: 20.0}


def snakemake(workdir: Path, *args: str, check: bool = True):
    proc = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=workdir,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def generate(seed: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pid = rng.choice([1, 2, 3], size=N, p=[0.3, 0.35, 0.35]).astype(np.int32)
    sig = pid == 1
    phi1 = rng.uniform(-np.pi, np.pi, N)
    dphi = np.where(sig, rng.normal(0, 0.7, N), rng.uniform(1.0, 2 * np.pi - 1.0, N))
    phi2 = np.mod(phi1 + dphi + np.pi, 2 * np.pi) - np.pi
    pt1 = np.where(sig, rng.gamma(6, 6, N), rng.gamma(5, 10, N)) + 25
    pt2 = np.where(sig, rng.gamma(5, 4, N), rng.gamma(4, 8, N)) + 15
    eta1, eta2 = rng.normal(0, 1.1, N), rng.normal(0, 1.1, N)
    met = rng.gamma(3, 12, N) + np.where(pid == 3, 20, 0)
    has_jet = rng.uniform(size=N) < np.where(pid == 3, 0.9, 0.3)
    jet_pt = np.where(has_jet, rng.gamma(3, 20, N) + 30, -7.0)  # -7: no jet
    return {
        "process_id": pid,
        "lep_pt_1": pt1,  # GeV
        "lep_pt_2": pt2,
        "lep_eta_1": eta1,
        "lep_eta_2": eta2,
        "lep_phi_1": phi1,
        "lep_phi_2": phi2,
        "lep_E_1": pt1 * np.cosh(eta1) * 1000.0,  # MeV
        "lep_E_2": pt2 * np.cosh(eta2) * 1000.0,
        "met_et": met * 1000.0,  # MeV
        "met_phi": rng.uniform(-np.pi, np.pi, N),
        "jet_pt_1": jet_pt,  # GeV, -7 sentinel
        "mcWeight": rng.normal(1.0, 0.3, N) * np.where(pid == 3, 0.5, 1.0),
    }


def write_ntuple(path: Path, data: dict[str, np.ndarray]) -> None:
    """Write a tree, then copy it with a loop over ``keys()``: the copy stores ``tree_event;1``."""
    first = path.with_name("first.root")
    with uproot.recreate(first) as f:
        f.mktree("tree_event", {k: v.dtype for k, v in data.items()}).extend(data)
    with uproot.open(first) as src, uproot.recreate(path) as dst:
        for key in src.keys():
            arrays = src[key].arrays(library="np")
            dst.mktree(key, {k: v.dtype for k, v in arrays.items()}).extend(arrays)
    first.unlink()


FEATURES = [
    "lep1_pt",
    "lep2_pt",
    "lep1_eta",
    "lep2_eta",
    "lep1_e",
    "met",
    "jet1_pt",
    "m_ll",
    "pt_ll",
    "dphi_ll",
    "deta_ll",
    "mt",
    "sum_pt",
]


def config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    procs = {1: ("ggH", "signal"), 2: ("WW", "background"), 3: ("ttbar", "background")}
    cfg["input"] = {"source": "files"}
    cfg["features"] = FEATURES
    cfg.pop("simulate", None)
    cfg["files"] = {
        "samples": [
            {
                "name": name,
                "paths": ["data/ntuple.root"],
                "tree": "tree_event;1",
                "process": name,
                "label": label,
                "selection": f"process_id == {pid}",
                "cross_section_pb": XSEC[pid],
                "sum_weights": "auto_selected",
            }
            for pid, (name, label) in procs.items()
        ],
        "luminosity_fb": 139.0,
        "columns": {
            "lep1_pt": "lep_pt_1",
            "lep2_pt": "lep_pt_2",
            "lep1_eta": "lep_eta_1",
            "lep2_eta": "lep_eta_2",
            "lep1_phi": "lep_phi_1",
            "lep2_phi": "lep_phi_2",
            "lep1_e": "lep_E_1",
            "met": "met_et",
            "met_phi": "met_phi",
            "jet1_pt": "jet_pt_1",
        },
        "units": {"lep1_e": "MeV", "met": "MeV"},
        "missing_values": [-7],
        "weight": {"column": "mcWeight"},
        "derive": ["m_ll", "pt_ll", "dphi_ll", "deta_ll", "mt"],
        "derived_columns": {"sum_pt": "lep1_pt + lep2_pt"},
    }
    cfg["classifiers"] = [{"name": "hgb", "type": "hgb", "params": {"max_iter": 30}}]
    cfg["systematics"] = [
        {"name": "lumi", "type": "norm", "delta": 0.01},
        {"name": "lep_es", "type": "scale", "delta": 0.02, "columns": ["lep1_pt", "lep2_pt"]},
    ]
    cfg["toys"] = {"n_toys": 40, "chunk_size": 20, "modes": ["frequentist"], "classifiers": ["hgb"]}
    return cfg


def test_ntuple_through_the_whole_workflow(tmp_path):
    (tmp_path / "data").mkdir()
    data = generate()
    write_ntuple(tmp_path / "data" / "ntuple.root", data)
    with uproot.open(tmp_path / "data" / "ntuple.root") as f:
        assert f.keys() == ["tree_event;1;1"]  # the stored name is literally tree_event;1
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (tmp_path / "ntuple.yaml").write_text(yaml.safe_dump(config(), sort_keys=False))
    from systpipe.cli import main

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["validate", "ntuple.yaml", "--data"]) == 0
    finally:
        os.chdir(cwd)
    with all_cores():
        snakemake(tmp_path, "--configfile", "ntuple.yaml", "--cores", "2")
    results = tmp_path / "results"

    events = pd.read_parquet(results / "data" / "events.parquet")
    pid = data["process_id"]
    assert events.groupby("process").size().to_dict() == {
        "WW": int((pid == 2).sum()),
        "ggH": int((pid == 1).sum()),
        "ttbar": int((pid == 3).sum()),
    }
    yields = events.groupby("process")["weight"].sum()
    for p, name in ((1, "ggH"), (2, "WW"), (3, "ttbar")):
        assert yields[name] == pytest.approx(XSEC[p] * 139e3, rel=1e-9)
    assert events["met"].median() == pytest.approx(np.median(data["met_et"]) / 1000, rel=1e-9)
    assert events["jet1_pt"].isna().sum() == int((data["jet_pt_1"] == -7).sum())
    assert (events["m_ll"] > 0).all() and (events["dphi_ll"] <= np.pi).all()

    test = pd.read_parquet(results / "data" / "test" / "0.parquet")
    up = pd.read_parquet(results / "variations" / "lep_es_up" / "0.parquet").set_index("event_id")
    nom = test.set_index("event_id").loc[up.index]
    np.testing.assert_allclose(up["lep1_pt"], nom["lep1_pt"] * 1.02, rtol=1e-12)
    np.testing.assert_allclose(up["sum_pt"], up["lep1_pt"] + up["lep2_pt"], rtol=1e-12)
    np.testing.assert_allclose(up["m_ll"], nom["m_ll"] * 1.02, rtol=1e-9)
    assert not np.allclose(up["met"], nom["met"])  # MET follows the shifted leptons
    table = pd.read_parquet(results / "tables" / "uncertainties.parquet")
    assert set(table["classifier"]) == {"hgb"}
    # a learned Neyman set has no per-systematic breakdown: its dmu_<k> columns are NaN
    broken_down = table[table["method"] != "neyman"]
    assert np.isfinite(broken_down["dmu_lep_es"]).all() and (broken_down["dmu_lep_es"] > 0).all()

    # A changed ntuple is re-read: the ingest rule declares it as an input.
    assert "Nothing to be done" in snakemake(tmp_path, "--configfile", "ntuple.yaml", "-n").stdout
    data["mcWeight"] = data["mcWeight"] * 1.5
    write_ntuple(tmp_path / "data" / "ntuple.root", data)
    dry = snakemake(tmp_path, "--configfile", "ntuple.yaml", "-n").stdout
    assert "rule ingest:" in dry or "ingest" in dry.split("Job stats")[-1]
