"""Tests of systpipe.ingest: ROOT, Parquet and CSV inputs give one event table; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot

from systpipe.errors import ConfigError, IngestError
from systpipe.ingest import detect_format, ingest
from systpipe.io import read_provenance, read_table, write_table

N = 60
PROCESS_MAP = {1: "ggH_WW", 2: "WW", 3: "ttbar"}
FEATURES = ["lep1_pt", "lep1_eta", "met", "n_jets"]


def make_truth() -> pd.DataFrame:
    """The reference events in GeV with NaN for missing values.

    Values are multiples of 1/8 GeV (and 1/64 in eta) so that MeV <-> GeV and the text round
    trip are exact and frames can be compared bit for bit.
    """
    rng = np.random.default_rng(7)
    code = np.array([1, 2, 3] * (N // 3))
    rng.shuffle(code)
    pt = rng.integers(160, 1600, N) / 8.0
    eta = rng.integers(-160, 160, N) / 64.0
    met = rng.integers(0, 800, N) / 8.0
    met[[3, 17, 40]] = np.nan
    eta[[5, 41]] = np.nan
    weight = np.where(code == 1, 0.25, np.where(code == 2, 1.5, -0.5)) * rng.integers(1, 5, N)
    return pd.DataFrame(
        {
            "code": code,
            "label": (code == 1).astype(np.int8),
            "pt": pt,
            "eta": eta,
            "met": met,
            "nj": rng.integers(0, 4, N),
            "w": weight,
            "syst_up": weight * 1.125,
        }
    )


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return make_truth()


def _sentinel(x: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(x), -999.0, x)


def write_root(path: Path, t: pd.DataFrame, rows: slice = slice(None)) -> Path:
    """Flat TTree 'events': momenta in MeV (float32), integer label and process code."""
    t = t.iloc[rows]
    branches = {
        "lep_pt": (t["pt"].to_numpy() * 1000).astype(np.float32),
        "lep_eta": _sentinel(t["eta"].to_numpy()),
        "met_et": _sentinel(t["met"].to_numpy()) * np.where(t["met"].isna(), 1, 1000),
        "n_jet": t["nj"].to_numpy().astype(np.int32),
        "is_sig": t["label"].to_numpy().astype(np.int32),
        "proc": t["code"].to_numpy().astype(np.int32),
        "mcw": t["w"].to_numpy(),
        "w_up": t["syst_up"].to_numpy(),
    }
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in branches.items()})
        f["events"].extend(branches)
    return path


def write_csv(path: Path, t: pd.DataFrame) -> Path:
    """GeV, 's'/'b' labels, -999 sentinels, different column names."""
    pd.DataFrame(
        {
            "Label": np.where(t["label"] == 1, "s", "b"),
            "PRI_lep_pt": t["pt"],
            "PRI_lep_eta": _sentinel(t["eta"].to_numpy()),
            "PRI_met": _sentinel(t["met"].to_numpy()),
            "PRI_jet_num": t["nj"],
            "Weight": t["w"],
            "Process": t["code"],
            "w_up": t["syst_up"],
            "unused": 1.0,
        }
    ).to_csv(path, index=False)
    return path


def write_parquet(path: Path, t: pd.DataFrame) -> Path:
    """GeV, integer labels 1/0 as strings-free ints, NaN already in place, an event_id column."""
    pq.write_table(
        pa.table(
            {
                "evt": np.arange(N, dtype=np.int64),
                "y": t["label"].to_numpy().astype(np.int64),
                "lpt": t["pt"].to_numpy(),
                "leta": t["eta"].to_numpy(),
                "met": t["met"].to_numpy(),
                "nj": t["nj"].to_numpy(),
                "weight_mc": t["w"].to_numpy(),
                "proc": t["code"].to_numpy(),
                "w_up": t["syst_up"].to_numpy(),
            }
        ),
        path,
    )
    return path


def root_kwargs(paths: list[str]) -> dict:
    return {
        "samples": [
            {
                "name": "mc",
                "paths": paths,
                "tree": "events",
                "process_column": "proc",
                "process_map": PROCESS_MAP,
            }
        ],
        "columns": {"lep1_pt": "lep_pt", "lep1_eta": "lep_eta", "met": "met_et", "n_jets": "n_jet"},
        "label": {"column": "is_sig", "signal": [1], "background": [0]},
        "weight": {"column": "mcw", "scale": 1.0},
        "mev_to_gev": ["lep1_pt", "met"],
        "missing_sentinels": [-999.0],
        "keep_columns": ["w_up"],
    }


def csv_kwargs(paths: list[str]) -> dict:
    return {
        "samples": [
            {
                "name": "mc",
                "paths": paths,
                "format": "auto",
                "process_column": "Process",
                "process_map": {"1": "ggH_WW", "2": "WW", "3": "ttbar"},
            }
        ],
        "columns": {
            "lep1_pt": "PRI_lep_pt",
            "lep1_eta": "PRI_lep_eta",
            "met": "PRI_met",
            "n_jets": "PRI_jet_num",
        },
        "label": {"column": "Label", "signal": ["s"], "background": ["b"]},
        "weight": {"column": "Weight"},
        "missing_sentinels": [-999.0],
        "keep_columns": ["w_up"],
    }


def expected_table(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": np.arange(N, dtype=np.int64),
            "process": pd.Series([PROCESS_MAP[c] for c in t["code"]], dtype=object),
            "label": t["label"].to_numpy().astype(np.int8),
            "weight": t["w"].to_numpy(dtype=np.float64),
            "lep1_pt": t["pt"].to_numpy(dtype=np.float64),
            "lep1_eta": t["eta"].to_numpy(dtype=np.float64),
            "met": t["met"].to_numpy(dtype=np.float64),
            "n_jets": t["nj"].to_numpy(dtype=np.float64),
            "w_up": t["syst_up"].to_numpy(dtype=np.float64),
        }
    )


def test_root_csv_parquet_give_the_same_table(tmp_path, truth):
    write_root(tmp_path / "mc.root", truth)
    write_csv(tmp_path / "mc.csv", truth)
    write_parquet(tmp_path / "mc.parquet", truth)
    from_root = ingest(**root_kwargs(["mc.root"]), base_dir=tmp_path)
    from_csv = ingest(**csv_kwargs(["mc.csv"]), base_dir=tmp_path)
    pq_kwargs = {
        "samples": [
            {
                "name": "mc",
                "paths": [str(tmp_path / "mc.parquet")],
                "format": "parquet",
                "process_column": "proc",
                "process_map": PROCESS_MAP,
            }
        ],
        "columns": {
            "event_id": "evt",
            "lep1_pt": "lpt",
            "lep1_eta": "leta",
            "met": "met",
            "n_jets": "nj",
        },
        "label": {"column": "y", "signal": [1], "background": [0]},
        "weight": {"column": "weight_mc", "scale": 1.0},
        "keep_columns": ["w_up"],
    }
    from_parquet = ingest(**pq_kwargs)
    expected = expected_table(truth)
    pd.testing.assert_frame_equal(from_root, expected, check_exact=True)
    pd.testing.assert_frame_equal(from_csv, expected, check_exact=True)
    pd.testing.assert_frame_equal(from_parquet, expected, check_exact=True)
    assert from_root["lep1_pt"].min() >= 20.0  # converted from MeV
    assert int(from_csv["met"].isna().sum()) == 3 and int(from_csv["lep1_eta"].isna().sum()) == 2


def test_dtypes_and_weight_scale(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    kw = csv_kwargs(["mc.csv"])
    kw["weight"] = {"column": "Weight", "scale": 2.5}
    df = ingest(**kw, base_dir=tmp_path)
    assert df["event_id"].dtype == np.int64 and df["label"].dtype == np.int8
    assert df["weight"].dtype == np.float64 and df["n_jets"].dtype == np.float64
    np.testing.assert_allclose(df["weight"].to_numpy(), 2.5 * truth["w"].to_numpy(), rtol=1e-15)
    kw["weight"] = {"column": None, "scale": 0.5}
    assert set(ingest(**kw, base_dir=tmp_path)["weight"]) == {0.5}


def test_glob_multiple_files_equals_single_file(tmp_path, truth):
    write_root(tmp_path / "mc.root", truth)
    (tmp_path / "split").mkdir()
    write_root(tmp_path / "split" / "mc_2.root", truth, slice(25, 50))
    write_root(tmp_path / "split" / "mc_1.root", truth, slice(0, 25))
    write_root(tmp_path / "split" / "mc_3.root", truth, slice(50, None))
    single = ingest(**root_kwargs(["mc.root"]), base_dir=tmp_path)
    # A glob plus an explicit path matching a file already globbed: each file read once, sorted.
    multi = ingest(**root_kwargs(["split/mc_*.root", "split/mc_1.root"]), base_dir=tmp_path)
    pd.testing.assert_frame_equal(multi, single, check_exact=True)


def test_fixed_labels_processes_and_ids_per_sample(tmp_path, truth):
    sig = truth[truth["label"] == 1]
    bkg = truth[truth["label"] == 0]
    write_csv(tmp_path / "sig.csv", sig)
    write_csv(tmp_path / "bkg.csv", bkg)
    df = ingest(
        samples=[
            {"name": "bkg", "paths": ["bkg.csv"], "label": "background"},
            {"name": "sig", "paths": ["sig.csv"], "label": "signal", "process": "ggH_WW"},
        ],
        columns={"lep1_pt": "PRI_lep_pt"},
        label=None,
        weight={"column": "Weight"},
        base_dir=tmp_path,
    )
    assert list(df.columns) == ["event_id", "process", "label", "weight", "lep1_pt"]
    ids = df["event_id"].to_numpy()
    n_bkg = len(bkg)
    np.testing.assert_array_equal(ids[:n_bkg], np.arange(n_bkg))
    np.testing.assert_array_equal(ids[n_bkg:], 10**12 + np.arange(len(sig)))
    # no process given: the label names the process
    assert set(df["process"][:n_bkg]) == {"background"} and set(df["process"][n_bkg:]) == {"ggH_WW"}
    assert df["label"].sum() == len(sig)
    np.testing.assert_array_equal(df["lep1_pt"].to_numpy()[n_bkg:], sig["pt"].to_numpy())


def test_process_codes_without_map_are_used_as_names(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    kw = csv_kwargs(["mc.csv"])
    kw["samples"][0]["process_map"] = {}
    df = ingest(**kw, base_dir=tmp_path)
    assert sorted(df["process"].unique()) == ["1", "2", "3"]


def ingest_to_file(out, *, provenance=None, **kwargs):
    """What the ingest step does: read, then write atomically (nothing written on an error)."""
    df = ingest(**kwargs)
    write_table(df, out, provenance)
    return df


def test_ingest_to_file_writes_provenance(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    out = tmp_path / "results" / "events.parquet"
    df = ingest_to_file(out, **csv_kwargs(["mc.csv"]), base_dir=tmp_path, provenance={"seed": 3})
    pd.testing.assert_frame_equal(read_table(out), df, check_exact=True)
    assert read_provenance(out) == {"seed": 3}


def assert_fails_without_output(tmp_path: Path, kwargs: dict, *fragments: str) -> str:
    out = tmp_path / "out" / "events.parquet"
    with pytest.raises(IngestError) as info:
        ingest_to_file(out, **kwargs, base_dir=tmp_path)
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    assert not out.exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))
    return msg


def test_missing_column_lists_present_columns(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    kw = csv_kwargs(["mc.csv"])
    kw["columns"]["met"] = "PRI_met_typo"
    assert_fails_without_output(
        tmp_path,
        kw,
        "mc.csv",
        "PRI_met_typo",
        "files.columns.met",
        "'PRI_lep_pt'",
        "'PRI_met'",
        "'unused'",
        "'Label'",
    )
    write_root(tmp_path / "mc.root", truth)
    kw = root_kwargs(["mc.root"])
    kw["weight"] = {"column": "weight"}
    assert_fails_without_output(
        tmp_path, kw, "mc.root", "'weight'", "files.weight.column", "'mcw'", "'lep_pt'", "'proc'"
    )


def test_label_outside_mapping(tmp_path, truth):
    t = truth.copy()
    write_csv(tmp_path / "mc.csv", t)
    csv = pd.read_csv(tmp_path / "mc.csv")
    csv.loc[[2, 9], "Label"] = ["x", "S"]
    csv.to_csv(tmp_path / "mc.csv", index=False)
    assert_fails_without_output(
        tmp_path,
        csv_kwargs(["mc.csv"]),
        "mc.csv",
        "'Label'",
        "['S', 'x']",
        "files.label",
        "'signal': ['s']",
        "'background': ['b']",
    )


def test_process_code_outside_map(tmp_path, truth):
    write_root(tmp_path / "mc.root", truth)
    kw = root_kwargs(["mc.root"])
    kw["samples"][0]["process_map"] = {1: "ggH_WW", 2: "WW"}
    assert_fails_without_output(tmp_path, kw, "mc.root", "'proc'", "['3']", "process_map")


@pytest.mark.parametrize("name", ["bad.root", "bad.parquet"])
def test_unreadable_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00garbage, not a data file\xff" * 40)
    kw = root_kwargs([name])
    assert_fails_without_output(tmp_path, kw, name, "not a readable")


def test_truncated_root_file(tmp_path, truth):
    data = write_root(tmp_path / "mc.root", truth).read_bytes()
    (tmp_path / "cut.root").write_bytes(data[: len(data) // 2])
    assert_fails_without_output(tmp_path, root_kwargs(["cut.root"]), "cut.root", "cannot read")


def test_glob_matching_nothing_and_missing_file(tmp_path):
    assert_fails_without_output(
        tmp_path,
        root_kwargs(["data/sig_*.root"]),
        "sig_*.root",
        "matches no file",
        "files.samples[0].paths",
    )
    assert_fails_without_output(tmp_path, root_kwargs(["nope.root"]), "nope.root", "not found")


def test_missing_tree_lists_trees(tmp_path, truth):
    write_root(tmp_path / "mc.root", truth)
    kw = root_kwargs(["mc.root"])
    kw["samples"][0]["tree"] = "Events"
    assert_fails_without_output(
        tmp_path, kw, "mc.root", "'Events'", "files.samples[0].tree", "['events']"
    )
    del kw["samples"][0]["tree"]
    assert_fails_without_output(tmp_path, kw, "mc.root", "is required", "['events']")


def test_no_signal_or_no_background(tmp_path, truth):
    write_csv(tmp_path / "bkg.csv", truth[truth["label"] == 0])
    assert_fails_without_output(tmp_path, csv_kwargs(["bkg.csv"]), "no signal events", "'mc'")
    kw = csv_kwargs(["bkg.csv"])
    kw["samples"][0]["label"] = "signal"
    assert_fails_without_output(tmp_path, kw, "no background events")


def test_duplicate_event_id(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    kw = csv_kwargs(["mc.csv"])
    kw["columns"]["event_id"] = "PRI_jet_num"
    assert_fails_without_output(tmp_path, kw, "event_id", "not unique", "mc.csv")


def test_non_numeric_feature_and_jagged_branch(tmp_path, truth):
    write_csv(tmp_path / "mc.csv", truth)
    kw = csv_kwargs(["mc.csv"])
    kw["columns"]["met"] = "Label"
    assert_fails_without_output(tmp_path, kw, "mc.csv", "'Label'", "not numeric")
    import awkward as ak

    with uproot.recreate(tmp_path / "jag.root") as f:
        f.mktree("events", {"jet_pt": "var * float64", "y": np.int32})
        f["events"].extend(
            {"jet_pt": ak.Array([[1.0], [], [2.0, 3.0]]), "y": np.array([1, 0, 1], np.int32)}
        )
    kw = {
        "samples": [{"name": "s", "paths": ["jag.root"], "tree": "events"}],
        "columns": {"jet1_pt": "jet_pt"},
        "label": {"column": "y", "signal": [1], "background": [0]},
        "weight": {},
    }
    assert_fails_without_output(tmp_path, kw, "jag.root", "'jet_pt'", "jagged")


def test_config_errors_before_reading():
    base = {"columns": {"lep1_pt": "a"}, "label": None, "weight": {}}
    with pytest.raises(ConfigError, match=r"files\.mev_to_gev.*'met'"):
        ingest(
            samples=[{"name": "s", "paths": ["x.csv"], "label": "signal"}],
            mev_to_gev=["met"],
            **base,
        )
    with pytest.raises(ConfigError, match=r"files\.samples\[0\].*no fixed 'label'"):
        ingest(samples=[{"name": "s", "paths": ["x.csv"]}], **base)
    with pytest.raises(ConfigError, match=r"reserved name 'weight'"):
        ingest(
            samples=[{"name": "s", "paths": ["x.csv"], "label": "signal"}],
            columns={"weight": "w"},
            label=None,
            weight={},
        )
    with pytest.raises(ConfigError, match=r"both signal and background"):
        ingest(
            samples=[{"name": "s", "paths": ["x.csv"]}],
            columns={},
            weight={},
            label={"column": "y", "signal": [1], "background": ["1"]},
        )
    with pytest.raises(ConfigError, match=r"files\.samples\[1\]\.name"):
        ingest(
            samples=[
                {"name": "s", "paths": ["a"], "label": "signal"},
                {"name": "s", "paths": ["b"], "label": "signal"},
            ],
            **base,
        )


def test_detect_format():
    assert [detect_format(p) for p in ("a.root", "b.parquet", "c.csv", "d.csv.gz")] == [
        "root",
        "parquet",
        "csv",
        "csv",
    ]
    with pytest.raises(IngestError, match=r"x\.txt.*format"):
        detect_format("x.txt")


def test_user_event_ids_sorted_and_rntuple_read(tmp_path):
    # uproot writes an RNTuple for a plain dict assignment; both TTree and RNTuple are read.
    with uproot.recreate(tmp_path / "r.root") as f:
        f["events"] = {
            "id": np.array([30, 10, 20, 40], dtype=np.int64),
            "y": np.array([1, 0, 1, 0], dtype=np.int32),
            "pt": np.array([4000.0, 1000.0, 2000.0, 3000.0]),
        }
    df = ingest(
        samples=[{"name": "s", "paths": ["r.root"], "tree": "events"}],
        columns={"event_id": "id", "lep1_pt": "pt"},
        label={"column": "y", "signal": [1], "background": [0]},
        weight={},
        mev_to_gev=["lep1_pt"],
        base_dir=tmp_path,
    )
    assert df["event_id"].tolist() == [10, 20, 30, 40]
    assert df["lep1_pt"].tolist() == [1.0, 2.0, 4.0, 3.0]
    assert df["label"].tolist() == [0, 1, 1, 0]
    assert df["process"].tolist() == ["background", "signal", "signal", "background"]
    assert df.index.equals(pd.RangeIndex(4))
