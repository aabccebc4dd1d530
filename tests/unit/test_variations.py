"""Systematic variations: exact effects, mirror symmetry, order independence of smearing."""

import numpy as np
import pandas as pd
import pytest

from conftest import default_features
from systpipe.errors import ConfigError, DataContractError
from systpipe.features import recompute_derived
from systpipe.systematics import (
    apply_variation,
    feature_variations,
    variation_names,
    weight_variations,
)
from systpipe.variations import apply_norm, apply_scale, apply_smear, apply_weight

SYSTEMATICS = [
    {"name": "lumi", "type": "norm", "delta": 0.01},
    {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
    {"name": "tt", "type": "norm", "delta": 0.1, "processes": ["ttbar"]},
    {
        "name": "det",
        "type": "scale",
        "delta": 0.02,
        "columns": ["lep1_pt", "lep2_pt", "jet1_pt", "jets_px", "jets_py", "soft_px", "soft_py"],
        "recompute_derived": True,
    },
    {
        "name": "lep",
        "type": "scale",
        "delta": 0.03,
        "columns": ["lep1_pt", "lep2_pt"],
        "recompute_derived": True,
    },
    {
        "name": "res",
        "type": "smear",
        "delta": 0.1,
        "columns": ["lep1_pt", "lep2_pt"],
        "recompute_derived": True,
    },
]
FEATURES = default_features()


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(5)
    n = 2000
    df = pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64) * 7 + 3,
            "process": rng.choice(["ggH_WW", "WW", "ttbar", "Ztautau"], n),
            "weight": rng.uniform(0.1, 2.0, n),
            "lep1_pt": rng.uniform(25, 100, n),
            "lep1_eta": rng.uniform(-2.5, 2.5, n),
            "lep1_phi": rng.uniform(-np.pi, np.pi, n),
            "lep2_pt": rng.uniform(15, 25, n),
            "lep2_eta": rng.uniform(-2.5, 2.5, n),
            "lep2_phi": rng.uniform(-np.pi, np.pi, n),
            "jet1_pt": rng.uniform(0, 80, n),
            "n_jets": rng.integers(0, 3, n),
            "jets_px": rng.normal(0, 30, n),
            "jets_py": rng.normal(0, 30, n),
            "soft_px": rng.normal(0, 10, n),
            "soft_py": rng.normal(0, 10, n),
        }
    )
    df["label"] = (df["process"] == "ggH_WW").astype(np.int8)
    for col in ["met", "met_phi", "m_ll", "pt_ll", "dphi_ll", "deta_ll", "mt"]:
        df[col] = 0.0
    return recompute_derived(df)


def test_variation_names_and_kinds():
    assert variation_names(SYSTEMATICS[:2]) == [
        "nominal",
        "lumi_up",
        "lumi_down",
        "sig_up",
        "sig_down",
    ]
    assert feature_variations(SYSTEMATICS) == [
        "det_up",
        "det_down",
        "lep_up",
        "lep_down",
        "res_up",
        "res_down",
    ]
    assert weight_variations(SYSTEMATICS) == [
        "lumi_up",
        "lumi_down",
        "sig_up",
        "sig_down",
        "tt_up",
        "tt_down",
    ]


@pytest.mark.parametrize("direction,factor", [("up", 1.05), ("down", 0.95)])
def test_norm_scales_exactly_the_targeted_weights(events, direction, factor):
    out = apply_norm(events, SYSTEMATICS[1], direction)
    assert list(out.columns) == ["event_id", "weight"]
    sig = events["label"].to_numpy() == 1
    np.testing.assert_array_equal(out["weight"].to_numpy()[~sig], events["weight"].to_numpy()[~sig])
    np.testing.assert_array_equal(
        out["weight"].to_numpy()[sig], events["weight"].to_numpy()[sig] * factor
    )
    np.testing.assert_array_equal(out["event_id"], events["event_id"])


def test_norm_by_process_and_all(events):
    tt = events["process"].to_numpy() == "ttbar"
    out = apply_norm(events, SYSTEMATICS[2], "down")
    np.testing.assert_array_equal(
        out["weight"].to_numpy()[tt], events["weight"].to_numpy()[tt] * 0.9
    )
    np.testing.assert_array_equal(out["weight"].to_numpy()[~tt], events["weight"].to_numpy()[~tt])
    lumi = apply_norm(events, SYSTEMATICS[0], "up")
    np.testing.assert_array_equal(lumi["weight"].to_numpy(), events["weight"].to_numpy() * 1.01)
    with pytest.raises(ConfigError, match="not in the data"):
        apply_norm(events, {"name": "x", "type": "norm", "delta": 0.1, "processes": ["nope"]}, "up")


@pytest.mark.parametrize("direction,k", [("up", 1.02), ("down", 0.98)])
def test_scale_all_objects(events, direction, k):
    out = apply_scale(events, SYSTEMATICS[3], direction)
    for col in SYSTEMATICS[3]["columns"]:
        np.testing.assert_array_equal(out[col].to_numpy(), events[col].to_numpy() * k)
    # Everything energy-like follows the scale; angles do not move.
    for col in ["m_ll", "pt_ll", "met", "mt"]:
        np.testing.assert_allclose(out[col], events[col] * k, rtol=1e-12)
    for col in [
        "dphi_ll",
        "deta_ll",
        "lep1_eta",
        "lep2_eta",
        "lep1_phi",
        "lep2_phi",
        "met_phi",
        "n_jets",
    ]:
        np.testing.assert_allclose(out[col], events[col], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out["weight"], events["weight"])


def test_scale_leptons_only_recomputes_met_from_shifted_objects(events):
    out = apply_scale(events, SYSTEMATICS[4], "up")
    d = 0.03
    dpx = d * (
        events["lep1_pt"] * np.cos(events["lep1_phi"])
        + events["lep2_pt"] * np.cos(events["lep2_phi"])
    )
    dpy = d * (
        events["lep1_pt"] * np.sin(events["lep1_phi"])
        + events["lep2_pt"] * np.sin(events["lep2_phi"])
    )
    met_px = events["met"] * np.cos(events["met_phi"]) - dpx
    met_py = events["met"] * np.sin(events["met_phi"]) - dpy
    np.testing.assert_allclose(out["met"], np.hypot(met_px, met_py), rtol=1e-10)
    np.testing.assert_allclose(out["m_ll"], events["m_ll"] * 1.03, rtol=1e-12)
    np.testing.assert_allclose(out["pt_ll"], events["pt_ll"] * 1.03, rtol=1e-12)
    np.testing.assert_array_equal(out["jet1_pt"], events["jet1_pt"])


def test_up_down_mirror_images(events):
    for syst in (SYSTEMATICS[3], SYSTEMATICS[5]):
        up = apply_variation(events, f"{syst['name']}_up", SYSTEMATICS, seed=1, features=FEATURES)
        down = apply_variation(
            events, f"{syst['name']}_down", SYSTEMATICS, seed=1, features=FEATURES
        )
        for col in [c for c in syst["columns"] if c in up]:
            np.testing.assert_allclose(up[col] + down[col], 2 * events[col], rtol=1e-12)
    up = apply_norm(events, SYSTEMATICS[0], "up")["weight"]
    down = apply_norm(events, SYSTEMATICS[0], "down")["weight"]
    np.testing.assert_allclose(up + down, 2 * events["weight"], rtol=1e-15)


def test_smear_independent_of_row_order_and_chunking(events):
    syst = SYSTEMATICS[5]
    whole = apply_smear(events, syst, "up", seed=11)
    shuffled = events.sample(frac=1.0, random_state=3)
    again = apply_smear(shuffled, syst, "up", seed=11).sort_values("event_id")
    chunks = pd.concat(
        [
            apply_smear(events.iloc[i : i + 300], syst, "up", seed=11)
            for i in range(0, len(events), 300)
        ]
    )
    ref = whole.sort_values("event_id")
    for other in (again, chunks.sort_values("event_id")):
        np.testing.assert_array_equal(other["lep1_pt"].to_numpy(), ref["lep1_pt"].to_numpy())
        np.testing.assert_array_equal(other["mt"].to_numpy(), ref["mt"].to_numpy())
    # The relative change has the configured width and depends on the seed.
    rel = whole["lep1_pt"] / events["lep1_pt"] - 1
    assert abs(rel.std() - 0.1) < 0.01
    other_seed = apply_smear(events, syst, "up", seed=12)
    assert not np.array_equal(other_seed["lep1_pt"], whole["lep1_pt"])


def test_weight_systematic_uses_factor_columns(events):
    ev = events.assign(sf_up=1.1, sf_down=0.8)
    syst = {"name": "sf", "type": "weight", "up_column": "sf_up", "down_column": "sf_down"}
    np.testing.assert_allclose(apply_weight(ev, syst, "up")["weight"], events["weight"] * 1.1)
    np.testing.assert_allclose(apply_weight(ev, syst, "down")["weight"], events["weight"] * 0.8)
    with pytest.raises(DataContractError, match="sf_up"):
        apply_weight(events, syst, "up")


def test_apply_variation_output_columns(events):
    weight_only = apply_variation(events, "lumi_up", SYSTEMATICS, seed=1, features=FEATURES)
    assert list(weight_only.columns) == ["event_id", "weight"]
    shifted = apply_variation(events, "det_down", SYSTEMATICS, seed=1, features=FEATURES)
    assert list(shifted.columns) == ["event_id", "label", "process", "weight", *FEATURES]
    with pytest.raises(ConfigError, match="unknown variation"):
        apply_variation(events, "det_sideways", SYSTEMATICS, seed=1, features=FEATURES)


def test_scale_missing_column_names_it(events):
    syst = {"name": "x", "type": "scale", "delta": 0.1, "columns": ["tau_pt"]}
    with pytest.raises(DataContractError, match="tau_pt"):
        apply_scale(events, syst, "up")
