"""Tests of ``systpipe validate FILE --data`` (systpipe.validate_data): it opens every input and
catches the errors ingest and vary would raise, all at once."""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd
import pytest
import uproot
import yaml

from conftest import default_features
from systpipe.cli import main
from systpipe.config import load_config
from systpipe.errors import SystpipeError
from systpipe.ingest import alternative_kwargs, ingest, ingest_kwargs
from systpipe.systematics import apply_variation
from systpipe.validate_data import validate_data

N = 400


def write_inputs(d):
    rng = np.random.default_rng(5)
    data = {
        "pid": np.arange(N, dtype=np.int32) % 2,
        "pt": rng.uniform(20, 100, N),
        "phi": rng.uniform(-3, 3, N),
        "met": rng.uniform(5, 80, N),
        "met_phi": rng.uniform(-3, 3, N),
        "w": rng.uniform(0.5, 1.5, N),
        "wu": np.full(N, 1.1),
    }
    with uproot.recreate(d / "nt.root") as f:
        f.mktree("events;1", {k: v.dtype for k, v in data.items()}).extend(data)
    pd.DataFrame(data).to_csv(d / "alt.csv", index=False)
    return data


def base_config(d):
    return {
        "seed": 3,
        "input": {"source": "files"},
        "features": ["lep1_pt", "met"],
        "files": {
            "samples": [
                {
                    "name": "sig",
                    "paths": [str(d / "nt.root")],
                    "tree": "events",
                    "process": "S",
                    "label": "signal",
                    "selection": "pid == 1",
                },
                {
                    "name": "bkg",
                    "paths": [str(d / "nt.root")],
                    "tree": "events",
                    "process": "B",
                    "label": "background",
                    "selection": "pid == 0",
                },
            ],
            "columns": {"lep1_pt": "pt", "lep1_phi": "phi", "met": "met", "met_phi": "met_phi"},
            "weight": {"column": "w"},
            "derived_columns": {"ratio": "met / lep1_pt"},
        },
        "systematics": [
            {"name": "lumi", "type": "norm", "delta": 0.01},
            {"name": "les", "type": "scale", "delta": 0.02, "columns": ["lep1_pt"]},
            {"name": "wsys", "type": "weight", "up_column": "wu", "down_column": "wu"},
            {
                "name": "gen",
                "type": "sample",
                "up_paths": [str(d / "alt.csv")],
                "down_paths": [str(d / "alt.csv")],
            },
        ],
    }


def write_config(d, cfg, name="cfg.yaml"):
    path = d / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def ingest_and_vary_error(cfg) -> str | None:
    """The first error of the real ingest, then of every variation, or None."""
    files = cfg["files"]
    try:
        df = ingest(**ingest_kwargs(files, cfg["systematics"]))
        for v in ("les_up", "wsys_up", "gen_up", "lumi_up"):
            apply_variation(
                df,
                v,
                cfg["systematics"],
                seed=1,
                features=cfg["features"],
                load_alternative=lambda p, v=v: ingest(
                    **alternative_kwargs(files, cfg["systematics"], p, v)
                ),
            )
        missing = [f for f in cfg["features"] if f not in df.columns]
        if missing:
            return f"'features' {missing}"
    except SystpipeError as exc:
        return str(exc)
    return None


def _set(cfg, path, value):
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


BAD = [
    (
        "tree",
        ("files", "samples", 0, "tree"),
        "evts",
        "tree 'evts' ('files.samples[0].tree') not found",
    ),
    ("column", ("files", "columns", "met"), "MET", "'MET' (from 'files.columns.met')"),
    (
        "selection column",
        ("files", "samples", 1, "selection"),
        "proc == 0",
        "'proc' (from 'files.samples[1].selection')",
    ),
    (
        "selection syntax",
        ("files", "samples", 1, "selection"),
        "pid.x == 0",
        "'pid.x' (Attribute) is not allowed",
    ),
    (
        "derived column",
        ("files", "derived_columns"),
        {"r": "met / nope"},
        "uses column(s) ['nope']",
    ),
    ("missing file", ("files", "samples", 0, "paths"), ["nope.root"], "nope.root not found"),
    (
        "weight column",
        ("files", "weight", "column"),
        "weight",
        "'weight' (from 'files.weight.column')",
    ),
    (
        "scale column",
        ("systematics", 1, "columns"),
        ["lep2_pt"],
        "column(s) ['lep2_pt'] not in the event table",
    ),
    (
        "weight syst column",
        ("systematics", 2, "up_column"),
        "w_up",
        "'w_up' (from 'files.keep_columns')",
    ),
    (
        "norm process",
        ("systematics", 0, "processes"),
        ["ttbar"],
        "'processes' ['ttbar'] not in the data",
    ),
    ("alt file", ("systematics", 3, "up_paths"), ["alt_missing.csv"], "alt_missing.csv not found"),
    ("no background", ("files", "samples", 1, "label"), "signal", "no background events"),
]


@pytest.mark.parametrize(("what", "path", "value", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_validate_catches_the_same_error_as_ingest_and_vary(tmp_path, what, path, value, fragment):
    write_inputs(tmp_path)
    cfg = load_config(write_config(tmp_path, base_config(tmp_path)))
    bad = copy.deepcopy(cfg)
    _set(bad, path, value)
    real = ingest_and_vary_error(bad)
    assert real is not None and fragment in real, (what, real)
    report = validate_data(bad)
    assert any(fragment in p for p in report.problems), (what, report.problems)
    assert not report.ok


def test_good_config_passes_and_lists_units_warnings(tmp_path, capsys):
    write_inputs(tmp_path)
    cfg = base_config(tmp_path)
    assert ingest_and_vary_error(load_config(write_config(tmp_path, cfg))) is None
    assert main(["validate", str(tmp_path / "cfg.yaml"), "--data"]) == 0
    out = capsys.readouterr()
    assert "data OK (400 events checked in " in out.out
    cfg["files"]["units"] = {"met": "MeV"}
    assert main(["validate", str(write_config(tmp_path, cfg, "u.yaml")), "--data"]) == 0
    err = capsys.readouterr().err
    assert "warning: energy-like column 'met' has a median of 0.04" in err
    assert sorted(tmp_path.iterdir()) == sorted(
        tmp_path / n for n in ("alt.csv", "nt.root", "cfg.yaml", "u.yaml")
    )


def test_cli_lists_every_problem_and_exits_2(tmp_path, capsys):
    write_inputs(tmp_path)
    cfg = base_config(tmp_path)
    cfg["files"]["samples"][0]["tree"] = "evts"
    cfg["files"]["samples"][1]["selection"] = "proc == 0"
    cfg["systematics"][3]["down_paths"] = ["gone.csv"]
    code = main(["validate", str(write_config(tmp_path, cfg)), "--data"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cfg.yaml: 4 data problem(s):" in err
    assert (
        "1. " in err
        and "tree 'evts' ('files.samples[0].tree') not found; trees in the file: ['events;1']"
        in err
    )
    assert "2. " in err and "column(s) not found: 'proc' (from 'files.samples[1].selection')" in err
    assert "4. systematic 'gen' (down): " in err and "gone.csv not found" in err
    assert "3. systematic 'gen' (up): " in err
    assert not (tmp_path / "results").exists()


def test_validate_on_the_smoke_sized_sample_takes_seconds(tmp_path, capsys):
    """The smoke sample (12,000 events) written to Parquet and validated; the time is printed
    (measured, not asserted)."""
    from systpipe.simulate import simulate_with_stats

    n = {"ggH_WW": 3000, "WW": 3000, "ttbar": 3000, "Ztautau": 3000}
    df = simulate_with_stats(n_selected=n, seed=7).events
    df.to_parquet(tmp_path / "smoke.parquet")
    features = default_features()
    cols = [*features, "jets_px", "jets_py", "soft_px", "soft_py"]
    cfg = {
        "input": {"source": "files"},
        "features": features,
        "files": {
            "samples": [
                {
                    "name": "all",
                    "paths": [str(tmp_path / "smoke.parquet")],
                    "process_column": "process",
                }
            ],
            "columns": {c: c for c in cols},
            "label": {"column": "label", "signal": [1], "background": [0]},
            "weight": {"column": "weight"},
        },
        "systematics": [
            {"name": "lumi", "type": "norm", "delta": 0.01},
            {
                "name": "det",
                "type": "scale",
                "delta": 0.02,
                "columns": [
                    "lep1_pt",
                    "lep2_pt",
                    "jet1_pt",
                    "jets_px",
                    "jets_py",
                    "soft_px",
                    "soft_py",
                ],
            },
        ],
    }
    started = time.perf_counter()
    code = main(["validate", str(write_config(tmp_path, cfg)), "--data"])
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert "data OK (12000 events checked" in out
    print(f"validate --data on the smoke sample: {seconds:.2f} s")
