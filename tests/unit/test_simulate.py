"""Tests of systpipe.simulate: physics signatures, normalisation, resolution, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from systpipe import simulate as sim
from systpipe.errors import ConfigError
from systpipe.features import transverse_mass_ww
from systpipe.simulate import kinematics, processes

N_PER_PROCESS = 30_000  # 120k selected events in all
LUMI = 139.0


@pytest.fixture(scope="module")
def result() -> sim.SimulationResult:
    return sim.simulate_with_stats(
        n_selected=dict.fromkeys(sim.PROCESSES, N_PER_PROCESS),
        seed=12345,
        luminosity_fb=LUMI,
        chunk_size=40_000,
        keep_truth=True,
    )


@pytest.fixture(scope="module")
def events(result: sim.SimulationResult) -> pd.DataFrame:
    return result.events


def _small(**kw) -> pd.DataFrame:
    args = {"n_selected": dict.fromkeys(sim.PROCESSES, 1500), "seed": 99, "chunk_size": 4000, **kw}
    return sim.simulate_with_stats(**args).events


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(
        pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()
    ).hexdigest()


def test_contract_columns_dtypes_labels_ids(events: pd.DataFrame) -> None:
    assert list(events.columns) == [*sim.COLUMNS, *sim.TRUTH_COLUMNS]
    assert events["event_id"].dtype == np.int64
    assert events["label"].dtype == np.int8
    assert events["n_jets"].dtype.kind == "i"
    assert events["process"].dtype == object
    floats = [c for c in sim.COLUMNS if c not in ("event_id", "process", "label", "n_jets")]
    assert all(events[c].dtype == np.float64 for c in floats)
    assert events["process"].value_counts().to_dict() == dict.fromkeys(sim.PROCESSES, N_PER_PROCESS)
    labels = events.groupby("process")["label"].unique()
    assert {p: list(v) for p, v in labels.items()} == {
        "ggH_WW": [1],
        "WW": [0],
        "ttbar": [0],
        "Ztautau": [0],
    }
    assert events["event_id"].is_unique
    codes = events["event_id"] // sim.EVENT_ID_STRIDE
    expected = events["process"].map({p: v.code for p, v in sim.PROCESSES.items()})
    assert (codes == expected).all()
    assert np.isfinite(events[floats].to_numpy()).all()


def test_emu_selection_holds(events: pd.DataFrame) -> None:
    assert (events.lep1_pt >= events.lep2_pt).all()
    assert (events.lep1_pt > 25.0).all() and (events.lep2_pt > 15.0).all()
    assert (events.lep1_eta.abs() < 2.5).all() and (events.lep2_eta.abs() < 2.5).all()
    no_jet = events.n_jets == 0
    assert (events.jet1_pt[no_jet] == 0.0).all()
    assert (events.jet1_pt[~no_jet] > 30.0).all()
    # ttbar has two b quarks: most events have >= 2 jets; colour-singlet processes mostly <= 1
    njets = events.groupby("process")["n_jets"].mean()
    assert njets["ttbar"] > 1.8 and njets["WW"] < 1.0 and njets["Ztautau"] < 1.0


def test_met_identity(events: pd.DataFrame) -> None:
    e = events
    vis_x = e.lep1_pt * np.cos(e.lep1_phi) + e.lep2_pt * np.cos(e.lep2_phi) + e.jets_px + e.soft_px
    vis_y = e.lep1_pt * np.sin(e.lep1_phi) + e.lep2_pt * np.sin(e.lep2_phi) + e.jets_py + e.soft_py
    np.testing.assert_allclose(e.met * np.cos(e.met_phi), -vis_x, atol=1e-9)
    np.testing.assert_allclose(e.met * np.sin(e.met_phi), -vis_y, atol=1e-9)


def test_spin_correlation_collinear_signal_leptons(events: pd.DataFrame) -> None:
    by = events.groupby("process")
    dphi, mll = by["dphi_ll"].mean(), by["m_ll"]
    assert dphi["ggH_WW"] < dphi["WW"] - 0.6, dphi
    assert (events.m_ll[events.process == "ggH_WW"] < 60).mean() > 0.75
    assert mll.median()["WW"] > 80
    assert mll.median()["ggH_WW"] < 45


def test_signal_mt_edge_near_higgs_mass(events: pd.DataFrame) -> None:
    mt = events.mt[events.process == "ggH_WW"]
    assert 110.0 < mt.quantile(0.99) < 150.0
    assert 85.0 < mt.median() < 115.0
    assert events.mt[events.process == "WW"].quantile(0.99) > 250.0  # no edge for the continuum


def test_truth_mt_never_exceeds_higgs_mass() -> None:
    """mt of (l+ l-, nu nubar) is bounded by m_H at generator level: checks the kinematics and
    the mt formula together."""
    rng = np.random.default_rng(4)
    mh, lp, nu, lm, nub = sim.hww_decays(rng, 50_000)
    system = processes._produce(rng, "ggH_WW", mh)
    lp, nu, lm, nub = (sim.boost(p, system, mh) for p in (lp, nu, lm, nub))
    ll, nn = lp + lm, nu + nub
    np.testing.assert_allclose(ll + nn, system, atol=1e-8)  # four-momentum conservation
    mll = np.sqrt(np.maximum(sim.minkowski_dot(ll, ll), 0.0))
    mt = transverse_mass_ww(mll, ll[1], ll[2], nn[1], nn[2])
    assert (mt <= mh * (1 + 1e-9)).all()
    assert np.quantile(mt, 0.99) > 0.97 * sim.M_H  # and the edge is populated


def test_sum_of_weights_is_sigma_lumi_efficiency(result: sim.SimulationResult) -> None:
    ev = result.events
    for p, n_gen in result.n_generated.items():
        sel = ev[ev.process == p]
        eff = len(sel) / n_gen
        assert result.efficiency[p] == pytest.approx(eff, rel=1e-15)
        expected = sim.CROSS_SECTIONS_PB[p] * 1000.0 * LUMI * eff
        assert sel.weight.sum() == pytest.approx(expected, rel=1e-9)
        # N_generated stops at the last selected event
        assert sel.event_id.max() - sim.PROCESSES[p].code * sim.EVENT_ID_STRIDE == n_gen - 1
    eff = result.efficiency
    assert 0.25 < eff["ggH_WW"] < 0.5
    assert 0.03 < eff["Ztautau"] < 0.1  # two leptonic tau decays rarely pass 25/15 GeV
    assert eff["Ztautau"] < eff["ggH_WW"] < eff["WW"]


def test_cross_sections_are_documented_products() -> None:
    br = 2 * 0.1071 * 0.1063
    assert sim.CROSS_SECTIONS_PB["ggH_WW"] == pytest.approx(48.6 * 0.2152 * br)
    assert sim.CROSS_SECTIONS_PB["ggH_WW"] == pytest.approx(0.238, abs=0.001)
    assert sim.CROSS_SECTIONS_PB["WW"] == pytest.approx(2.70, abs=0.01)
    assert sim.CROSS_SECTIONS_PB["ttbar"] == pytest.approx(18.94, abs=0.01)
    assert sim.CROSS_SECTIONS_PB["Ztautau"] == pytest.approx(120.9, abs=0.1)


def test_cross_section_override_scales_weights_only() -> None:
    a = sim.simulate_with_stats(n_selected={"WW": 500}, seed=5, chunk_size=2000).events
    b = sim.simulate_with_stats(
        n_selected={"WW": 500}, seed=5, chunk_size=2000, cross_sections_pb={"WW": 5.4}
    ).events
    np.testing.assert_allclose(b.weight, a.weight * 5.4 / sim.CROSS_SECTIONS_PB["WW"], rtol=1e-14)
    pd.testing.assert_frame_equal(a.drop(columns="weight"), b.drop(columns="weight"))


def test_lepton_resolution_matches_configuration(events: pd.DataFrame) -> None:
    for i in (1, 2):
        ratio = events[f"lep{i}_pt"] / events[f"lep{i}_pt_true"] - 1.0
        assert ratio.std() == pytest.approx(0.015, rel=0.03)
        assert abs(ratio.mean()) < 0.001


def test_zero_resolution_met_equals_neutrino_pt() -> None:
    df = _small(
        keep_truth=True,
        lepton_pt_resolution=0.0,
        jet_pt_resolution=0.0,
        soft_met_resolution_gev=0.0,
    )
    np.testing.assert_allclose(df.met, df.met_true, atol=1e-8)
    np.testing.assert_array_equal(df.lep1_pt, df.lep1_pt_true)


def test_soft_term_resolution_widens_met() -> None:
    df = _small(keep_truth=True, soft_met_resolution_gev=30.0)
    ref = _small(keep_truth=True)
    assert (df.met - df.met_true).std() > 1.5 * (ref.met - ref.met_true).std()


def test_determinism_and_seed_dependence() -> None:
    a, b = _small(), _small()
    pd.testing.assert_frame_equal(a, b)
    assert _digest(a) == _digest(b)
    c = _small(seed=100)
    assert _digest(c) != _digest(a)
    assert not np.allclose(a.lep1_pt.to_numpy(), c.lep1_pt.to_numpy())
    # the mapping's order does not matter
    rev = _small(n_selected=dict(reversed(list(dict.fromkeys(sim.PROCESSES, 1500).items()))))
    assert _digest(rev) == _digest(a)


def test_subset_and_prefix_property() -> None:
    """A process's events depend only on (seed, chunk_size), so fewer events are a prefix."""
    big = sim.simulate_with_stats(n_selected={"ttbar": 3000}, seed=8, chunk_size=2000).events
    small = sim.simulate_with_stats(
        n_selected={"ttbar": 1000, "ggH_WW": 0}, seed=8, chunk_size=2000
    ).events
    cols = [c for c in big.columns if c != "weight"]
    pd.testing.assert_frame_equal(small[cols], big[cols].iloc[:1000])


def test_progress_callback_and_chunks() -> None:
    calls: list[tuple[str, int, int]] = []
    sim.simulate_with_stats(
        n_selected={"Ztautau": 300, "WW": 200},
        seed=1,
        chunk_size=1000,
        progress=lambda *a: calls.append(a),
    )
    assert {c[0] for c in calls} == {"Ztautau", "WW"}
    z = [c[1] for c in calls if c[0] == "Ztautau"]
    assert len(z) > 1 and z == sorted(z) and z[-1] == 300  # Z->tautau needs several chunks
    assert all(c[2] == (300 if c[0] == "Ztautau" else 200) for c in calls)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_selected": {"Higgs": 10}}, "unknown process"),
        ({"n_selected": {"WW": -1}}, r"n_selected\.WW"),
        ({"n_selected": {"WW": 10}, "cross_sections_pb": {"WW": 0.0}}, r"cross_sections_pb\.WW"),
        ({"n_selected": {"WW": 10}, "luminosity_fb": -1.0}, "luminosity_fb"),
        ({"n_selected": {"WW": 10}, "seed": -3}, "seed"),
        ({"n_selected": {"WW": 10}, "chunk_size": 0}, "chunk_size"),
        ({"n_selected": {"WW": 10}, "jet_pt_resolution": float("nan")}, "jet_pt_resolution"),
    ],
)
def test_bad_inputs_name_the_key(kwargs: dict, match: str) -> None:
    args = {"seed": 1, **kwargs}
    with pytest.raises(ConfigError, match=match):
        sim.simulate_with_stats(**args)


def test_impossible_selection_fails_instead_of_looping() -> None:
    with pytest.raises(ConfigError, match="keeps no WW"):
        sim.simulate_with_stats(
            n_selected={"WW": 10},
            seed=1,
            chunk_size=1000,
            lepton_pt_min_leading=1e5,
            max_empty_chunks=3,
        )


def test_detector_and_selection_objects_equal_their_keywords() -> None:
    """``detector``/``selection`` objects and the config-style keywords are the same request;
    a keyword replaces the field of the object it belongs to."""
    keywords = _small(jet_pt_resolution=0.2, lepton_pt_min_leading=22.0)
    objects = _small(
        detector=sim.Detector(jet_pt_resolution=0.2),
        selection=sim.Selection(lepton_pt_min_leading=22.0),
    )
    pd.testing.assert_frame_equal(objects, keywords, check_exact=True)
    mixed = _small(
        detector=sim.Detector(jet_pt_resolution=0.5),
        jet_pt_resolution=0.2,
        selection=sim.Selection(lepton_pt_min_leading=22.0),
    )
    pd.testing.assert_frame_equal(mixed, keywords, check_exact=True)
    pd.testing.assert_frame_equal(
        _small(detector=sim.Detector(), selection=sim.Selection()), _small()
    )
    with pytest.raises(ConfigError, match=r"simulate\.selection\.jet_pt_min"):
        _small(selection=sim.Selection(jet_pt_min=-1.0))


def test_empty_request_gives_empty_contract_frame() -> None:
    df = sim.simulate_with_stats(n_selected={}, seed=1).events
    assert list(df.columns) == list(sim.COLUMNS) and len(df) == 0


# ---- generator building blocks -------------------------------------------------------------


def test_production_spectra_match_pythia_reference() -> None:
    rng = np.random.default_rng(11)
    reference = {"ggH_WW": (53, 33), "WW": (37, 20), "ttbar": (69, 48), "Ztautau": (20, 13)}
    for p, (mean, median) in reference.items():
        pt = sim.PRODUCTION[p].pt.sample(rng, 400_000)
        assert pt.mean() == pytest.approx(mean, rel=0.03), p
        assert np.median(pt) == pytest.approx(median, rel=0.02), p
        assert pt.max() <= 1000.0
    pt = sim.PRODUCTION["ggH_WW"].pt.sample(rng, 400_000)
    assert np.quantile(pt, 0.9) == pytest.approx(121, rel=0.02)


def test_system_masses_match_pythia_reference() -> None:
    rng = np.random.default_rng(12)
    n = 300_000
    mw = [sim.breit_wigner_mass(rng, sim.M_W, sim.GAMMA_W, 30.0, 200.0, n) for _ in range(2)]
    mww = mw[0] + mw[1] + sim.MASS_EXCESS["WW"].sample(rng, n)
    np.testing.assert_allclose(np.quantile(mww, [0.1, 0.5, 0.9]), [173, 230, 414], rtol=0.015)
    mt = [sim.breit_wigner_mass(rng, sim.M_TOP, sim.GAMMA_TOP, 160.0, 185.0, n) for _ in range(2)]
    mtt = mt[0] + mt[1] + sim.MASS_EXCESS["ttbar"].sample(rng, n)
    np.testing.assert_allclose(np.quantile(mtt, [0.1, 0.5, 0.9]), [376, 476, 729], rtol=0.015)


def test_breit_wigner_median_and_bounds() -> None:
    m = sim.breit_wigner_mass(np.random.default_rng(3), sim.M_Z, sim.GAMMA_Z, 60.0, 120.0, 200_000)
    assert m.min() >= 60.0 and m.max() <= 120.0
    # half the Cauchy mass (in m^2) lies within one half-width of the peak
    inside = np.abs(m**2 - sim.M_Z**2) < sim.M_Z * sim.GAMMA_Z
    total = np.arctan((120**2 - sim.M_Z**2) / (sim.M_Z * sim.GAMMA_Z)) - np.arctan(
        (60**2 - sim.M_Z**2) / (sim.M_Z * sim.GAMMA_Z)
    )
    assert inside.mean() == pytest.approx((np.pi / 2) / total, abs=0.005)


def test_tau_lepton_fraction_spectrum() -> None:
    x = sim.tau_lepton_fraction(np.random.default_rng(2), 400_000)
    assert x.min() >= 0 and x.max() <= 1
    assert x.mean() == pytest.approx(0.35, abs=0.002)  # int x (5 - 9x^2 + 4x^3)/3 dx = 0.35
    # CDF (5x - 3x^3 + x^4)/3 at 0.5
    assert (x < 0.5).mean() == pytest.approx((2.5 - 0.375 + 0.0625) / 3, abs=0.003)


def test_w_helicity_angle() -> None:
    f0, fl, fr = sim.W_HELICITY["ttbar"]
    c = sim.polarised_cos(np.random.default_rng(5), 400_000, f0, fl, fr)
    assert c.mean() == pytest.approx((fr - fl) / 2, abs=0.004)
    # <c^2> = f0/5 + (fL + fR) 2/5
    assert (c**2).mean() == pytest.approx(f0 / 5 + (fl + fr) * 2 / 5, abs=0.003)


def test_boost_and_two_body_conserve_four_momentum() -> None:
    rng = np.random.default_rng(6)
    n = 1000
    mass = rng.uniform(100, 300, n)
    parent = kinematics.lab_system(
        mass, rng.uniform(0, 500, n), rng.uniform(-3, 3, n), rng.uniform(-4, 4, n)
    )
    d1, d2 = kinematics.two_body(mass, 40.0, 30.0, kinematics.isotropic(rng, n))
    l1, l2 = sim.boost(d1, parent, mass), sim.boost(d2, parent, mass)
    np.testing.assert_allclose(l1 + l2, parent, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(np.sqrt(sim.minkowski_dot(l1, l1)), 40.0, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(sim.minkowski_dot(l2, l2)), 30.0, rtol=1e-6)


def test_hww_off_shell_w_and_spin_correlation() -> None:
    rng = np.random.default_rng(7)
    mh, lp, nu, lm, nub = sim.hww_decays(rng, 100_000)
    m1 = np.sqrt(sim.minkowski_dot(lp + nu, lp + nu))
    m2 = np.sqrt(sim.minkowski_dot(lm + nub, lm + nub))
    assert (m1 + m2 <= mh + 1e-9).all()
    heavy, light = np.maximum(m1, m2), np.minimum(m1, m2)
    assert np.median(heavy) == pytest.approx(sim.M_W, abs=1.5)  # one W on shell
    assert 25.0 < np.median(light) < 40.0  # the other off shell
    # V-A correlation: the charged leptons go the same way. Same masses, isotropic W decays
    # (no matrix-element weight) give back-to-back leptons on average instead.
    cos_ll = np.sum(lp[1:] * lm[1:], axis=0) / (lp[0] * lm[0])
    m1, m2 = processes._hww_masses(rng, np.full(100_000, sim.M_H))
    wp, wm = kinematics.two_body(sim.M_H, m1, m2, kinematics.isotropic(rng, m1.size))
    ip = sim.boost(kinematics.two_body(m1, 0.0, 0.0, kinematics.isotropic(rng, m1.size))[0], wp, m1)
    im = sim.boost(kinematics.two_body(m2, 0.0, 0.0, kinematics.isotropic(rng, m1.size))[0], wm, m2)
    cos_iso = np.sum(ip[1:] * im[1:], axis=0) / (ip[0] * im[0])
    assert cos_iso.mean() < -0.1
    assert cos_ll.mean() > cos_iso.mean() + 0.3
    amp = sim.minkowski_dot(lp, nub) * sim.minkowski_dot(nu, lm)
    assert (amp > 0).all()


def test_hww_sampler_agrees_with_brute_force_weighted_reference() -> None:
    """The two-stage sampler (exact mass marginal, then angles) reproduces plainly weighted
    events: independent W Breit-Wigners, isotropic decays, weight beta x |M|^2."""
    rng = np.random.default_rng(21)
    w, mll, cos = [], [], []
    for _ in range(4):
        m = 1_000_000
        mh = np.full(m, sim.M_H)
        m1, m2 = (sim.breit_wigner_mass(rng, sim.M_W, sim.GAMMA_W, 0.0, mh, m) for _ in range(2))
        ok = m1 + m2 < mh
        m1, m2, mh = m1[ok], m2[ok], mh[ok]
        k = m1.size
        wp, wm = kinematics.two_body(mh, m1, m2, kinematics.isotropic(rng, k))
        lp, nu = (
            sim.boost(v, wp, m1)
            for v in kinematics.two_body(m1, 0.0, 0.0, kinematics.isotropic(rng, k))
        )
        lm, nub = (
            sim.boost(v, wm, m2)
            for v in kinematics.two_body(m2, 0.0, 0.0, kinematics.isotropic(rng, k))
        )
        beta = 2.0 * sim.two_body_momentum(mh, m1, m2) / mh
        w.append(beta * sim.minkowski_dot(lp, nub) * sim.minkowski_dot(nu, lm))
        mll.append(np.sqrt(2.0 * sim.minkowski_dot(lp, lm)))
        cos.append(np.sum(lp[1:] * lm[1:], axis=0) / (lp[0] * lm[0]))
    w, mll, cos = map(np.concatenate, (w, mll, cos))
    assert w.sum() ** 2 / (w**2).sum() > 12_000  # effective size of the reference
    order = np.argsort(mll)
    cdf = np.cumsum(w[order]) / w.sum()
    ref_q = np.interp([0.25, 0.5, 0.75], cdf, mll[order])
    _, lp, _, lm, _ = sim.hww_decays(rng, 100_000)
    new_mll = np.sqrt(2.0 * sim.minkowski_dot(lp, lm))
    np.testing.assert_allclose(np.quantile(new_mll, [0.25, 0.5, 0.75]), ref_q, atol=0.7)
    new_cos = np.sum(lp[1:] * lm[1:], axis=0) / (lp[0] * lm[0])
    assert new_cos.mean() == pytest.approx(np.average(cos, weights=w), abs=0.02)
