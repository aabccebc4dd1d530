"""Tests of systpipe.features: closed forms and the scaling identities the det systematic needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import DataContractError
from systpipe.features import (
    DERIVED_COLUMNS,
    MET_INPUT_COLUMNS,
    delta_phi,
    invariant_mass_massless,
    recompute_derived,
    transverse_mass_ww,
)

ENERGY_COLUMNS = ["lep1_pt", "lep2_pt", "jets_px", "jets_py", "soft_px", "soft_py"]


def _frame(n: int = 2000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "lep1_pt": rng.uniform(25.0, 150.0, n),
            "lep1_eta": rng.uniform(-2.5, 2.5, n),
            "lep1_phi": rng.uniform(-np.pi, np.pi, n),
            "lep2_pt": rng.uniform(15.0, 80.0, n),
            "lep2_eta": rng.uniform(-2.5, 2.5, n),
            "lep2_phi": rng.uniform(-np.pi, np.pi, n),
            "n_jets": rng.integers(0, 4, n),
            "jets_px": rng.normal(0.0, 40.0, n),
            "jets_py": rng.normal(0.0, 40.0, n),
            "soft_px": rng.normal(0.0, 10.0, n),
            "soft_py": rng.normal(0.0, 10.0, n),
        }
    )
    return recompute_derived(df)


def _met_vec(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return df["met"].to_numpy() * np.cos(df["met_phi"]), df["met"].to_numpy() * np.sin(
        df["met_phi"]
    )


def test_derived_columns_written_float64_and_input_untouched() -> None:
    df = _frame()
    raw = df.drop(columns=list(DERIVED_COLUMNS))
    before = raw.copy()
    out = recompute_derived(raw)
    pd.testing.assert_frame_equal(raw, before)  # a new frame: the input is not modified
    for col in DERIVED_COLUMNS:
        assert out[col].dtype == np.float64, col
    assert out["n_jets"].dtype == raw["n_jets"].dtype
    assert (out["dphi_ll"].between(0.0, np.pi)).all()
    assert (out["deta_ll"] >= 0).all()


def test_met_is_minus_the_visible_vector_sum() -> None:
    df = _frame()
    mx, my = _met_vec(df)
    vis_x = (
        df.lep1_pt * np.cos(df.lep1_phi)
        + df.lep2_pt * np.cos(df.lep2_phi)
        + df.jets_px
        + df.soft_px
    )
    vis_y = (
        df.lep1_pt * np.sin(df.lep1_phi)
        + df.lep2_pt * np.sin(df.lep2_phi)
        + df.jets_py
        + df.soft_py
    )
    np.testing.assert_allclose(mx, -vis_x, atol=1e-9)
    np.testing.assert_allclose(my, -vis_y, atol=1e-9)


@pytest.mark.parametrize("k", [0.98, 1.02, 1.5])
def test_scaling_every_energy_column_scales_dimensionful_features(k: float) -> None:
    df = _frame()
    scaled = df.copy()
    for col in ENERGY_COLUMNS:
        scaled[col] = scaled[col] * k
    out = recompute_derived(scaled)
    for col in ("m_ll", "pt_ll", "met", "mt"):
        np.testing.assert_allclose(out[col], k * df[col], rtol=1e-12, atol=1e-12, err_msg=col)
    for col in ("dphi_ll", "deta_ll", "lep1_eta", "lep2_eta", "lep1_phi", "lep2_phi"):
        np.testing.assert_allclose(out[col], df[col], rtol=1e-13, atol=1e-13, err_msg=col)
    np.testing.assert_allclose(np.cos(out["met_phi"] - df["met_phi"]), 1.0, atol=1e-12)


def test_lepton_only_scale_shifts_met_by_minus_the_lepton_change() -> None:
    df = _frame()
    k = 1.03
    scaled = df.copy()
    scaled["lep1_pt"] *= k
    scaled["lep2_pt"] *= k
    out = recompute_derived(scaled)
    lx = df.lep1_pt * np.cos(df.lep1_phi) + df.lep2_pt * np.cos(df.lep2_phi)
    ly = df.lep1_pt * np.sin(df.lep1_phi) + df.lep2_pt * np.sin(df.lep2_phi)
    (x0, y0), (x1, y1) = _met_vec(df), _met_vec(out)
    np.testing.assert_allclose(x1 - x0, -(k - 1.0) * lx, atol=1e-9)
    np.testing.assert_allclose(y1 - y0, -(k - 1.0) * ly, atol=1e-9)
    np.testing.assert_allclose(out["m_ll"], k * df["m_ll"], rtol=1e-12)
    assert not np.allclose(out["mt"], k * df["mt"], rtol=1e-3)  # mt mixes leptons and MET


def test_m_ll_closed_forms() -> None:
    p, a = 45.0, 0.7
    # back to back in the transverse plane at eta = 0: m = 2p
    assert invariant_mass_massless(p, 0.0, 0.0, p, 0.0, np.pi) == pytest.approx(2 * p, rel=1e-14)
    # same azimuth, eta = +-a: m^2 = 2p^2 (cosh 2a - 1) = (2 p sinh a)^2
    assert invariant_mass_massless(p, a, 1.0, p, -a, 1.0) == pytest.approx(
        2 * p * np.sinh(a), rel=1e-12
    )
    # collinear massless particles have zero mass
    assert invariant_mass_massless(30.0, 1.2, 0.3, 10.0, 1.2, 0.3) == 0.0
    df = pd.DataFrame(
        {
            "lep1_pt": [p],
            "lep1_eta": [0.0],
            "lep1_phi": [0.5],
            "lep2_pt": [p],
            "lep2_eta": [0.0],
            "lep2_phi": [0.5 - np.pi],
        }
    )
    out = recompute_derived(df)
    assert out["m_ll"].iloc[0] == pytest.approx(90.0, rel=1e-14)
    assert out["pt_ll"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert out["dphi_ll"].iloc[0] == pytest.approx(np.pi, rel=1e-14)


def test_m_ll_agrees_with_four_vectors() -> None:
    df = _frame(500)

    def p4(i: int) -> np.ndarray:
        pt, eta, phi = (df[f"lep{i}_{c}"].to_numpy() for c in ("pt", "eta", "phi"))
        return np.stack([pt * np.cosh(eta), pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])

    s = p4(1) + p4(2)
    m = np.sqrt(s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2)
    np.testing.assert_allclose(df["m_ll"], m, rtol=1e-9)


def test_transverse_mass_closed_forms() -> None:
    # massless pair, MET antiparallel to pT_ll: mt = 2 sqrt(a b)
    assert transverse_mass_ww(0.0, 30.0, 0.0, -50.0, 0.0) == pytest.approx(2 * np.sqrt(1500.0))
    # parallel: zero
    assert transverse_mass_ww(0.0, 0.0, 30.0, 0.0, 50.0) == pytest.approx(0.0, abs=1e-6)
    # dilepton at rest, no MET: the invariant mass
    assert transverse_mass_ww(50.0, 0.0, 0.0, 0.0, 0.0) == pytest.approx(50.0)
    # general: definition with E_T^ll = sqrt(pt^2 + m^2)
    m, lx, ly, mx, my = 20.0, 10.0, 25.0, -5.0, 40.0
    et = np.hypot(np.hypot(lx, ly), m)
    ref = np.sqrt((et + np.hypot(mx, my)) ** 2 - (lx + mx) ** 2 - (ly + my) ** 2)
    assert transverse_mass_ww(m, lx, ly, mx, my) == pytest.approx(ref, rel=1e-14)


def test_delta_phi_wraps_into_minus_pi_pi() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-20, 20, 10_000), rng.uniform(-20, 20, 10_000)
    d = delta_phi(a, b)
    assert (d >= -np.pi).all() and (d < np.pi).all()
    np.testing.assert_allclose(np.cos(d), np.cos(a - b), atol=1e-12)
    np.testing.assert_allclose(np.sin(d), np.sin(a - b), atol=1e-12)
    assert delta_phi(np.array(3.0), np.array(-3.0)) == pytest.approx(6.0 - 2 * np.pi)


def test_external_frame_without_met_inputs_keeps_met_and_recomputes_the_rest() -> None:
    df = _frame(300).drop(columns=list(MET_INPUT_COLUMNS))
    stale = df.copy()
    stale["m_ll"] = -1.0
    stale["mt"] = -1.0
    stale["met"] = df["met"] * 2.0  # an external MET: must be kept as is
    out = recompute_derived(stale)
    np.testing.assert_array_equal(out["met"], stale["met"])
    np.testing.assert_allclose(out["m_ll"], df["m_ll"], rtol=1e-14)
    # mt uses the (kept) external MET
    lx = df.lep1_pt * np.cos(df.lep1_phi) + df.lep2_pt * np.cos(df.lep2_phi)
    ly = df.lep1_pt * np.sin(df.lep1_phi) + df.lep2_pt * np.sin(df.lep2_phi)
    mx, my = 2 * df.met * np.cos(df.met_phi), 2 * df.met * np.sin(df.met_phi)
    np.testing.assert_allclose(out["mt"], transverse_mass_ww(df.m_ll, lx, ly, mx, my), rtol=1e-12)


def test_frame_without_eta_or_met_recomputes_only_what_it_can() -> None:
    df = pd.DataFrame(
        {"lep1_pt": [30.0], "lep1_phi": [0.0], "lep2_pt": [40.0], "lep2_phi": [np.pi / 2]}
    )
    out = recompute_derived(df)
    assert set(out.columns) == set(df.columns) | {"pt_ll", "dphi_ll"}
    assert out["pt_ll"].iloc[0] == pytest.approx(50.0)
    assert out["dphi_ll"].iloc[0] == pytest.approx(np.pi / 2)
    assert list(recompute_derived(pd.DataFrame({"x": [1.0]})).columns) == ["x"]


def test_partial_met_inputs_are_an_error_naming_the_missing_columns() -> None:
    df = _frame(10).drop(columns=["soft_px", "soft_py"])
    with pytest.raises(DataContractError, match=r"soft_px.*soft_py|soft_py.*soft_px"):
        recompute_derived(df)


def test_float32_and_nan_inputs() -> None:
    df = _frame(50)
    df32 = df.astype(dict.fromkeys(ENERGY_COLUMNS, np.float32))
    df32.loc[0, "lep1_pt"] = np.nan
    out = recompute_derived(df32)  # pytest turns any numpy RuntimeWarning into an error
    assert out["m_ll"].dtype == np.float64
    assert np.isnan(out.loc[0, "m_ll"]) and np.isnan(out.loc[0, "mt"])
    np.testing.assert_allclose(out["m_ll"].iloc[1:], df["m_ll"].iloc[1:], rtol=1e-6)
