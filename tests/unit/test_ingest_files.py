"""Tests of the issue-10 ingest features: stored tree names, per-sample normalisation and
selection, derived features and columns at ingest and after variations, predefined splits,
CSV options, missing values and units."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import uproot

from systpipe.errors import ConfigError, IngestError
from systpipe.features import recompute_derived
from systpipe.ingest import SPLIT_PART, ingest, input_files
from systpipe.ingest_read import resolve_tree
from systpipe.split import predefined_rescale, split_events
from systpipe.variations import Recompute, apply_scale, apply_smear

N = 300


def events(n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    """Three processes, leptons and MET (GeV), generator weights around 1."""
    rng = np.random.default_rng(seed)
    return {
        "pid": np.arange(n, dtype=np.int32) % 3 + 1,
        "l1_pt": rng.uniform(25, 120, n),
        "l1_eta": rng.uniform(-2.4, 2.4, n),
        "l1_phi": rng.uniform(-np.pi, np.pi, n),
        "l2_pt": rng.uniform(15, 80, n),
        "l2_eta": rng.uniform(-2.4, 2.4, n),
        "l2_phi": rng.uniform(-np.pi, np.pi, n),
        "MET": rng.uniform(5, 100, n),
        "MET_phi": rng.uniform(-np.pi, np.pi, n),
        "w": rng.uniform(0.5, 1.5, n),
        "y": (np.arange(n) % 3 == 0).astype(np.int32),
    }


LABEL = {"column": "y", "signal": [1], "background": [0]}


COLUMNS = {
    "lep1_pt": "l1_pt",
    "lep1_eta": "l1_eta",
    "lep1_phi": "l1_phi",
    "lep2_pt": "l2_pt",
    "lep2_eta": "l2_eta",
    "lep2_phi": "l2_phi",
    "met": "MET",
    "met_phi": "MET_phi",
}


def write_copy_loop_root(path, data, name="tree_event"):
    """A TTree stored under the literal name ``name;1``, as a copy loop over keys() writes it."""
    with uproot.recreate(path) as f:
        tree = f.mktree(f"{name};1", {k: v.dtype for k, v in data.items()})
        tree.extend(data)


def three_samples(path, **extra):
    procs = {1: ("ggH", "signal", 0.5), 2: ("WW", "background", 3.0), 3: ("top", "background", 20)}
    return [
        {
            "name": name,
            "paths": [str(path)],
            "tree": "tree_event;1",
            "process": name,
            "label": label,
            "selection": f"pid == {pid}",
            "cross_section_pb": xsec,
            **extra,
        }
        for pid, (name, label, xsec) in procs.items()
    ]


@pytest.mark.parametrize("tree", ["tree_event;1", "tree_event", "tree_event;1;1"])
def test_tree_stored_as_name_with_cycle_is_read_by_every_spelling(tmp_path, tree):
    data = events(12)
    write_copy_loop_root(tmp_path / "nt.root", data)
    df = ingest(
        samples=[{"name": "s", "paths": ["nt.root"], "tree": tree}],
        columns={"lep1_pt": "l1_pt"},
        label=LABEL,
        weight={"column": "w"},
        base_dir=tmp_path,
    )
    np.testing.assert_array_equal(df["lep1_pt"], data["l1_pt"])


def test_unknown_tree_lists_the_names_as_the_user_types_them(tmp_path):
    write_copy_loop_root(tmp_path / "nt.root", events(5))
    with uproot.update(tmp_path / "nt.root") as f:
        f.mktree("plain", {"x": np.float64}).extend({"x": np.ones(2)})
    with pytest.raises(IngestError) as info:
        ingest(
            samples=[{"name": "s", "paths": ["nt.root"], "tree": "tree", "label": "signal"}],
            columns={"lep1_pt": "l1_pt"},
            base_dir=tmp_path,
        )
    assert "tree 'tree' ('files.samples[0].tree') not found; trees in the file: " in str(info.value)
    assert str(info.value).endswith("['plain', 'tree_event;1']")


def test_resolve_tree_prefers_the_exact_stored_name_and_the_highest_cycle():
    keys = ["t;1;1", "t;3", "t;2"]
    assert resolve_tree(keys, "t") == "t;3"
    assert resolve_tree(keys, "t;1") == "t;1;1"  # the stored name t;1 beats t at cycle 1
    assert resolve_tree(keys, "t;2") == "t;2"
    assert resolve_tree(keys, "t;9") is None


def test_one_file_three_processes_normalised_by_cross_section(tmp_path):
    data = events()
    write_copy_loop_root(tmp_path / "nt.root", data)
    samples = three_samples(tmp_path / "nt.root", sum_weights="auto_selected")
    samples[1]["sum_weights"] = 50.0
    samples[2]["sum_weights"] = "auto"
    samples[2]["weight_scale"] = 0.5
    df = ingest(
        samples=samples,
        label=LABEL,
        columns=COLUMNS,
        weight={"column": "w", "scale": 2.0},
        luminosity_fb=139.0,
        base_dir=tmp_path,
    )
    pid, w = data["pid"], data["w"]
    assert df.groupby("process").size().to_dict() == {"WW": 100, "ggH": 100, "top": 100}
    yields = df.groupby("process")["weight"].sum()
    # auto_selected: the sample's own weights sum to sigma x L (x the global scale 2).
    assert yields["ggH"] == pytest.approx(2 * 0.5 * 139e3)
    assert yields["WW"] == pytest.approx(2 * 3.0 * 139e3 * w[pid == 2].sum() / 50.0)
    # auto: the sum of the file's weights before the selection (all three processes).
    assert yields["top"] == pytest.approx(2 * 0.5 * 20 * 139e3 * w[pid == 3].sum() / w.sum())
    ggh = df[df["process"] == "ggH"]
    np.testing.assert_allclose(
        ggh["weight"], 2 * w[pid == 1] * 0.5 * 139e3 / w[pid == 1].sum(), rtol=1e-12
    )
    assert (ggh["event_id"] % 3 == 0).all()  # row index kept across the selection


def test_normalisation_keys_are_checked_before_any_file_is_read(tmp_path):
    base = {"name": "s", "paths": ["missing.root"], "label": "signal"}
    cases = [
        ({"cross_section_pb": 1.0, "sum_weights": "auto"}, None, "'files.luminosity_fb'"),
        ({"cross_section_pb": 1.0}, 10.0, "needs 'files.samples[0].sum_weights'"),
        ({"sum_weights": 3.0}, 10.0, "'files.samples[0].cross_section_pb' is not"),
        ({"cross_section_pb": 1.0, "sum_weights": "all"}, 10.0, "expected a number or one of"),
        ({"cross_section_pb": -1.0, "sum_weights": 1.0}, 10.0, "expected a number > 0"),
        ({"weight_scale": float("nan")}, None, "'files.samples[0].weight_scale' = nan"),
        ({"selection": "pid.real"}, None, "'files.samples[0].selection' = 'pid.real'"),
    ]
    for extra, lumi, fragment in cases:
        with pytest.raises(ConfigError) as info:
            ingest(samples=[{**base, **extra}], columns={}, luminosity_fb=lumi, base_dir=tmp_path)
        assert fragment in str(info.value), (extra, str(info.value))


def test_selection_that_is_not_a_condition_is_refused(tmp_path):
    write_copy_loop_root(tmp_path / "nt.root", events(6))
    with pytest.raises(ConfigError, match="'files.samples\\[0\\].selection' = 'pid \\+ 1' is not"):
        ingest(
            samples=[
                {
                    "name": "s",
                    "paths": ["nt.root"],
                    "tree": "tree_event",
                    "label": "signal",
                    "selection": "pid + 1",
                }
            ],
            columns={"lep1_pt": "l1_pt"},
            base_dir=tmp_path,
        )


def test_derive_at_ingest_equals_the_variation_code(tmp_path):
    data = events(50)
    write_copy_loop_root(tmp_path / "nt.root", data)
    df = ingest(
        samples=three_samples(tmp_path / "nt.root", sum_weights="auto_selected"),
        columns=COLUMNS,
        weight={"column": "w"},
        luminosity_fb=1.0,
        derive=["m_ll", "pt_ll", "dphi_ll", "deta_ll", "mt"],
        derived_columns={"sum_pt": "lep1_pt + lep2_pt", "ratio": "lep2_pt / lep1_pt"},
        base_dir=tmp_path,
    )
    ref = recompute_derived(df[list(COLUMNS)])
    for col in ("m_ll", "pt_ll", "dphi_ll", "deta_ll", "mt"):
        np.testing.assert_array_equal(df[col], ref[col])
    l1 = df["lep1_pt"].to_numpy()
    i = 3
    m2 = (
        2
        * l1[i]
        * df["lep2_pt"][i]
        * (
            np.cosh(df["lep1_eta"][i] - df["lep2_eta"][i])
            - np.cos(df["lep1_phi"][i] - df["lep2_phi"][i])
        )
    )
    assert df["m_ll"][i] == pytest.approx(np.sqrt(m2), rel=1e-12)
    np.testing.assert_array_equal(df["sum_pt"], l1 + df["lep2_pt"].to_numpy())
    np.testing.assert_array_equal(df["ratio"], df["lep2_pt"].to_numpy() / l1)


def test_derive_names_missing_inputs(tmp_path):
    write_copy_loop_root(tmp_path / "nt.root", events(6))
    with pytest.raises(Exception) as info:
        ingest(
            samples=[{"name": "s", "paths": ["nt.root"], "tree": "tree_event"}],
            columns={"lep1_pt": "l1_pt", "lep1_phi": "l1_phi"},
            label=LABEL,
            derive=["pt_ll"],
            base_dir=tmp_path,
        )
    assert "'files.derive' ['pt_ll'] needs column(s) ['lep2_phi', 'lep2_pt']" in str(info.value)


def _csv(tmp_path, name, text):
    """A CSV sample; a label column y (alternating 1, 0) is appended to every row."""
    lines = text.strip().split("\n")
    sep = ";" if ";" in lines[0] else ","
    rows = [lines[0] + f"{sep}y"] + [f"{r}{sep}{i % 2}" for i, r in enumerate(lines[1:])]
    (tmp_path / name).write_text("\n".join(rows) + "\n")
    return [{"name": "s", "paths": [name]}]


def test_csv_delimiter_and_declared_missing_strings(tmp_path):
    samples = _csv(tmp_path, "a.csv", "pt;eta;w\n40;0.5;1\nn/a;1.0;2\n-7;-1;3\n")
    df = ingest(
        samples=samples,
        label=LABEL,
        columns={"lep1_pt": "pt", "lep1_eta": "eta"},
        weight={"column": "w"},
        csv={"delimiter": ";", "missing_values": ["n/a"]},
        missing_values=[-7],
        base_dir=tmp_path,
    )
    assert df["lep1_pt"].tolist()[0] == 40.0
    assert np.isnan(df["lep1_pt"].to_numpy()[1:]).all()
    assert df["lep1_eta"].tolist() == [0.5, 1.0, -1.0]


def test_csv_text_in_a_numeric_column_is_an_error_naming_file_column_row(tmp_path):
    samples = _csv(tmp_path, "a.csv", "pt,w\n40,1\n41,1\nn/a,1\nNA,1\n")
    with pytest.raises(IngestError) as info:
        ingest(
            samples=samples,
            label=LABEL,
            columns={"lep1_pt": "pt"},
            weight={"column": "w"},
            base_dir=tmp_path,
        )
    msg = str(info.value)
    assert "a.csv: column 'pt' ('files.columns.lep1_pt') is not numeric: 2 value(s) are text" in msg
    assert "the first 'n/a' at row 2" in msg
    assert "'files.csv.missing_values'" in msg


def test_wrong_delimiter_gets_a_hint(tmp_path):
    samples = _csv(tmp_path, "a.csv", "pt;w\n40;1\n")
    with pytest.raises(IngestError, match="is 'files.csv.delimiter' = ',' right"):
        ingest(samples=samples, columns={"lep1_pt": "pt"}, label=LABEL, base_dir=tmp_path)


def test_sentinel_in_the_weight_column_is_an_error(tmp_path):
    samples = _csv(tmp_path, "a.csv", "pt,w\n40,1\n41,-7\n")
    with pytest.raises(IngestError) as info:
        ingest(
            samples=samples,
            label=LABEL,
            columns={"lep1_pt": "pt"},
            weight={"column": "w"},
            missing_values=[-7],
            base_dir=tmp_path,
        )
    assert "weight column 'w' holds the missing-value sentinel -7" in str(info.value)
    assert "the first at row 1: a weight cannot be missing" in str(info.value)


def test_units_convert_and_mismatches_warn(tmp_path, caplog):
    samples = _csv(tmp_path, "a.csv", "pt,met,e\n40000,30,50\n52000,20,60\n45000,25,70\n")
    with caplog.at_level(logging.WARNING):
        df = ingest(
            samples=samples,
            label=LABEL,
            columns={"lep1_pt": "pt", "met": "met", "lep1_e": "e"},
            units={"lep1_pt": "MeV", "met": "MeV"},
            base_dir=tmp_path,
        )
    assert df["lep1_pt"].tolist() == [40.0, 52.0, 45.0]
    findings = df.attrs["findings"]
    assert [(f["column"], f["check"]) for f in findings] == [("met", "units")]
    assert "it looks like GeV divided by 1000; set 'files.units.met: GeV'" in findings[0]["message"]
    assert findings[0]["message"] in caplog.text
    samples = _csv(tmp_path, "b.csv", "pt\n40000\n52000\n-7\n")
    df = ingest(samples=samples, columns={"lep1_pt": "pt"}, label=LABEL, base_dir=tmp_path)
    messages = [f["message"] for f in df.attrs["findings"]]
    assert (
        "'lep1_pt' has a median of 40000 GeV after conversion (declared GeV): it looks like MeV"
        in messages[0]
    )
    assert "'lep1_pt' has 1 negative value(s) (most often -7)" in messages[1]
    with pytest.raises(ConfigError, match="'files.units.met' = 'keV': expected one of"):
        ingest(
            samples=samples,
            columns={"met": "pt"},
            label=LABEL,
            units={"met": "keV"},
            base_dir=tmp_path,
        )


def test_split_from_a_column(tmp_path):
    rows = ["Set,pid,w"] + [f"{'tbv'[i % 3]},{i % 2},1" for i in range(60)]
    (tmp_path / "k.csv").write_text("\n".join(rows) + "\n")
    df = ingest(
        samples=[
            {
                "name": "k",
                "paths": ["k.csv"],
                "process_column": "pid",
                "process_map": {0: "bkg", 1: "sig"},
            }
        ],
        columns={"x": "w"},
        label={"column": "pid", "signal": [1], "background": [0]},
        split={"column": "Set", "train": ["t"], "test": ["b", "v"]},
        base_dir=tmp_path,
    )
    assert df[SPLIT_PART].tolist() == [0 if i % 3 == 0 else 1 for i in range(60)]
    files = {"split": {"column": "Set", "train": ["t"], "test": ["b", "v"]}}
    train, test = split_events(df, test_fraction=0.5, seed=1, rescale=predefined_rescale(files))
    assert (len(train), len(test)) == (20, 40)
    assert SPLIT_PART not in test.columns
    assert test.groupby("process")["weight"].sum().tolist() == pytest.approx([30.0, 30.0])
    assert train.groupby("process")["weight"].sum().tolist() == pytest.approx([30.0, 30.0])
    with pytest.raises(IngestError, match="split column 'Set' has value\\(s\\) \\['v'\\] outside"):
        ingest(
            samples=[{"name": "k", "paths": ["k.csv"], "label": "signal"}],
            columns={"x": "w"},
            split={"column": "Set", "train": ["t"], "test": ["b"]},
            base_dir=tmp_path,
        )


def test_split_from_test_files(tmp_path):
    for name, n in (("tr.csv", 8), ("te.csv", 4)):
        (tmp_path / name).write_text("x,w\n" + "".join(f"{i},2\n" for i in range(n)))
    df = ingest(
        samples=[
            {
                "name": "s",
                "paths": ["tr.csv"],
                "test_path": "te.csv",
                "label": "signal",
                "process": "S",
                "cross_section_pb": 1.0,
                "sum_weights": "auto",
            },
            {"name": "b", "paths": ["tr.csv"], "label": "background", "process": "B"},
        ],
        test_samples=[{"name": "b", "paths": ["te.csv"], "label": "background", "process": "B"}],
        columns={"x": "x"},
        weight={"column": "w"},
        luminosity_fb=2.0,
        base_dir=tmp_path,
    )
    part = df.groupby(["process", SPLIT_PART]).size().to_dict()
    assert part == {("B", 0): 8, ("B", 1): 4, ("S", 0): 8, ("S", 1): 4}
    sig = df[df["process"] == "S"]
    # Each part is normalised on its own: both predict sigma x L = 2000 events.
    assert sig.groupby(SPLIT_PART)["weight"].sum().tolist() == pytest.approx([2000.0, 2000.0])
    assert sig["event_id"].tolist() == list(range(12))  # test rows continue the row index
    assert df[df["process"] == "B"]["event_id"].max() == 2 * 10**12 + 3
    train, test = split_events(df, test_fraction=0.5, seed=1, rescale=False)
    assert test[test["process"] == "S"]["weight"].sum() == pytest.approx(2000.0)
    assert input_files({"samples": [{"paths": ["*.csv"]}]}, base_dir=tmp_path) == [
        str(tmp_path / "te.csv"),
        str(tmp_path / "tr.csv"),
    ]


def test_predefined_split_needs_every_process_in_both_parts():
    df = pd.DataFrame(
        {
            "event_id": range(4),
            "process": ["a", "a", "b", "b"],
            "weight": 1.0,
            SPLIT_PART: np.array([0, 1, 0, 0], dtype=np.int8),
        }
    )
    with pytest.raises(Exception, match="all 2 event\\(s\\) of process 'b' in the train part"):
        split_events(df, test_fraction=0.5, seed=1)


def _lepton_frame(n=200, seed=3):
    d = events(n, seed)
    df = pd.DataFrame({c: d[s] for c, s in COLUMNS.items()})
    df.insert(0, "event_id", np.arange(n))
    df["jet1_pt"] = np.linspace(20, 40, n)
    df["jet1_phi"] = np.linspace(-3, 3, n)
    df["jet2_pt"] = np.linspace(28, 31, n)
    df["n_jets"] = (df["jet1_pt"] > 30).astype(int) + (df["jet2_pt"] > 30).astype(int) + 1
    return df


def test_met_follows_the_shifted_objects_without_jet_or_soft_terms():
    df = _lepton_frame()
    syst = {"name": "les", "delta": 0.1, "columns": ["lep1_pt", "lep2_pt"]}
    out = apply_scale(df, syst, "up", Recompute())
    mx = df["met"] * np.cos(df["met_phi"]) - 0.1 * (
        df["lep1_pt"] * np.cos(df["lep1_phi"]) + df["lep2_pt"] * np.cos(df["lep2_phi"])
    )
    my = df["met"] * np.sin(df["met_phi"]) - 0.1 * (
        df["lep1_pt"] * np.sin(df["lep1_phi"]) + df["lep2_pt"] * np.sin(df["lep2_phi"])
    )
    np.testing.assert_allclose(out["met"], np.hypot(mx, my), rtol=1e-12)
    np.testing.assert_allclose(out["met_phi"], np.arctan2(my, mx), rtol=1e-12)
    ref = recompute_derived(out.drop(columns=["mt"], errors="ignore"))
    np.testing.assert_array_equal(out["mt"], ref["mt"])
    kept = apply_scale(df, syst, "up", Recompute(met_follows=False))
    np.testing.assert_array_equal(kept["met"], df["met"])
    assert not np.allclose(out["met"], df["met"])


def test_n_jets_migrates_under_a_jet_scale_and_smear_recomputes():
    df = _lepton_frame()
    syst = {"name": "jes", "delta": 0.05, "columns": ["jet1_pt", "jet2_pt"]}
    for direction, k in (("up", 1.05), ("down", 0.95)):
        out = apply_scale(df, syst, direction, Recompute(jet_pt_min=30.0))
        expect = (df["jet1_pt"] * k > 30).astype(int) + (df["jet2_pt"] * k > 30).astype(int) + 1
        assert out["n_jets"].tolist() == expect.tolist()
        assert out["n_jets"].tolist() != df["n_jets"].tolist()
    none = apply_scale(df, syst, "up", Recompute(jet_pt_min=None))
    assert none["n_jets"].tolist() == df["n_jets"].tolist()
    r = Recompute.from_files({"derived_columns": {"ht": "jet1_pt + jet2_pt"}})
    sm = apply_smear(
        df.assign(ht=0.0),
        {"name": "jer", "delta": 0.1, "columns": ["jet1_pt"]},
        "up",
        seed=5,
        recompute=r,
    )
    np.testing.assert_array_equal(sm["ht"], sm["jet1_pt"] + sm["jet2_pt"])


def test_thirty_column_csv_pair_tau_energy_scale_moves_every_dependent_column(tmp_path):
    """Acceptance: 30 columns incl. sums and ratios of energy-like columns; after a tau energy
    scale the dependent columns equal their expressions of the shifted inputs."""
    rng = np.random.default_rng(11)
    n = 400
    base = {f"c{i:02d}": rng.uniform(10, 100, n) for i in range(20)}
    base["tau_pt"] = rng.uniform(20, 150, n)
    base["lab"] = np.arange(n) % 2
    base["wt"] = rng.uniform(0.5, 1.0, n)
    frame = pd.DataFrame(base)
    frame.iloc[: n // 2].to_csv(tmp_path / "sig.csv", index=False)
    frame.iloc[n // 2 :].to_csv(tmp_path / "bkg.csv", index=False)
    derived = {
        "sum_pt": "tau_pt + c00 + c01",
        "tau_frac": "tau_pt / sum_pt",
        "tau_over_c02": "tau_pt / c02",
        "c02_over_tau": "c02 / tau_pt",
        "ht": "sum_pt + c03",
        "mass_like": "sqrt(2 * tau_pt * c04 * (1 - cos(c05 / 100)))",
        "lever": "hypot(tau_pt, c06) - c07",
    }
    columns = {name: name for name in base if name not in ("lab", "wt")}
    df = ingest(
        samples=[
            {"name": "s", "paths": ["sig.csv"], "label": "signal"},
            {"name": "b", "paths": ["bkg.csv"], "label": "background"},
        ],
        columns=columns,
        weight={"column": "wt"},
        derived_columns=derived,
        base_dir=tmp_path,
    )
    assert len([c for c in df.columns if c not in ("event_id", "process", "label", "weight")]) == 28
    assert df.shape[1] == 32
    r = Recompute.from_files({"derived_columns": derived})
    out = apply_scale(df, {"name": "tau_es", "delta": 0.03, "columns": ["tau_pt"]}, "down", r)
    t = df["tau_pt"].to_numpy() * 0.97
    np.testing.assert_array_equal(out["tau_pt"], t)
    s = t + df["c00"].to_numpy() + df["c01"].to_numpy()
    np.testing.assert_allclose(out["sum_pt"], s, rtol=1e-15)
    np.testing.assert_allclose(out["tau_frac"], t / s, rtol=1e-15)
    np.testing.assert_allclose(out["tau_over_c02"], df["tau_over_c02"] * 0.97, rtol=1e-14)
    np.testing.assert_allclose(out["c02_over_tau"], df["c02_over_tau"] / 0.97, rtol=1e-14)
    np.testing.assert_allclose(out["ht"], s + df["c03"].to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(out["mass_like"], df["mass_like"] * np.sqrt(0.97), rtol=1e-13)
    np.testing.assert_allclose(out["lever"], np.hypot(t, df["c06"]) - df["c07"], rtol=1e-14)
    untouched = [f"c{i:02d}" for i in range(20)]
    pd.testing.assert_frame_equal(out[untouched], df[untouched])
