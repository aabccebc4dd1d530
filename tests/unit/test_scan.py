"""Tests of the threshold scan: brute-force yields, closed forms for norm systematics, invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import systpipe.scan
from systpipe.errors import ConfigError, DataContractError, SystpipeError
from systpipe.scan import cumulative_yields, default_thresholds, quantile_thresholds, scan_scores
from systpipe.stats import ams, z_asimov
from systpipe.table import working_point_guards, working_points

LUMI = {"name": "lumi", "type": "norm", "delta": 0.01}
SIG = {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]}
BKG = {"name": "bkg", "type": "norm", "delta": 0.02, "labels": ["background"]}
DET = {"name": "det", "type": "scale", "delta": 0.02}


def events(n=4000, seed=1, *, grid=0.01, negative=0.0):
    """Toy scored events: signal peaks at high score; scores on a coarse grid (many ties)."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.int8)
    raw = np.where(label == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))
    score = np.round(np.round(raw / grid) * grid, 10)
    weight = np.where(label == 1, 0.5, 3.0) * rng.uniform(0.5, 1.5, n)
    weight[rng.random(n) < negative] *= -1.0
    return pd.DataFrame(
        {"event_id": np.arange(n), "label": label, "weight": weight, "score": score}
    )


def norm_frame(base, syst, sign):
    """A weight-only norm variation: targeted weights times (1 +/- delta), same scores."""
    out = base.copy()
    labels = syst.get("labels", ["signal", "background"])
    mask = out["label"].isin([1 if lab == "signal" else 0 for lab in labels]).to_numpy()
    out.loc[mask, "weight"] *= 1.0 + sign * syst["delta"]
    return out


def shifted_frame(base, shift):
    out = base.copy()
    out["score"] = np.round(np.clip(out["score"] + shift, 0.0, 1.0), 10)
    return out


def frames_for(base, systematics, det_shift=0.02):
    frames = {"nominal": base}
    for syst in systematics:
        for direction, sign in (("up", 1.0), ("down", -1.0)):
            if syst["type"] == "norm":
                frames[f"{syst['name']}_{direction}"] = norm_frame(base, syst, sign)
            else:
                frames[f"{syst['name']}_{direction}"] = shifted_frame(base, sign * det_shift)
    return frames


def brute_force(frame, thresholds):
    score = frame["score"].to_numpy(dtype=np.float64)
    w = frame["weight"].to_numpy()
    sig = frame["label"].to_numpy() == 1
    s = np.array([w[(score > t) & sig].sum() for t in thresholds])
    b = np.array([w[(score > t) & ~sig].sum() for t in thresholds])
    return s, b


THRESHOLD_SETS = {
    "uniform_grid": default_thresholds(0.0, 1.0, 0.01),
    "shuffled_duplicates_off_grid": np.random.default_rng(5).permutation(
        np.concatenate([np.round(np.arange(0, 1, 0.05), 10), [0.5, 0.5, 0.123, -1.0, 2.0]])
    ),
    "single": np.array([0.7]),
}


@pytest.mark.parametrize("name", sorted(THRESHOLD_SETS))
def test_yields_match_brute_force_with_ties_and_negative_weights(name):
    thresholds = THRESHOLD_SETS[name]
    base = events(5000, seed=2, negative=0.15)
    systs = [LUMI, SIG, DET]
    frames = frames_for(base, systs)
    frames["det_down"]["score"] = frames["det_down"]["score"].astype(np.float32)
    scan = scan_scores(frames, systematics=systs, thresholds=thresholds)
    np.testing.assert_array_equal(scan["threshold"], thresholds)  # input order kept
    for var, frame in frames.items():
        s_ref, b_ref = brute_force(frame, thresholds)
        scale = np.abs(frame["weight"]).sum()
        np.testing.assert_allclose(scan[f"S_{var}"], s_ref, rtol=1e-12, atol=1e-13 * scale)
        np.testing.assert_allclose(scan[f"B_{var}"], b_ref, rtol=1e-12, atol=1e-13 * scale)
    assert not scan.isna().any().any()


def test_cumulative_yields_ties_exact_and_float32_compares_in_float64():
    s, b = cumulative_yields(
        [0.5, 0.5, 0.5, 0.6], [1, 0, 1, 1], [1.0, 2.0, 4.0, 8.0], [0.5, 0.4999]
    )
    np.testing.assert_array_equal(s, [8.0, 13.0])  # score == t is not selected
    np.testing.assert_array_equal(b, [0.0, 2.0])
    # float32(0.1) = 0.100000001490116... > 0.1 in float64
    s32, _ = cumulative_yields(np.array([0.1], dtype=np.float32), [1], [1.0], [0.1])
    assert s32.tolist() == [1.0]
    with pytest.raises(DataContractError, match="equal length"):
        cumulative_yields([0.1, 0.2], [1], [1.0], [0.1])


def test_scan_columns_exact_order():
    systs = [LUMI, SIG, BKG, DET]
    scan = scan_scores(frames_for(events(500), systs), systematics=systs, thresholds=[0.5, 0.6])
    variations = ["nominal"] + [
        f"{k}_{d}" for k in ("lumi", "sig", "bkg", "det") for d in ("up", "down")
    ]
    expected = ["threshold"]
    expected += [f"{p}_{v}" for v in variations for p in ("S", "B")]
    expected += ["n", "n_raw_S", "n_raw_B", "sumw2_S", "sumw2_B", "neff_S", "neff_B"]
    expected += [f"mu_{v}" for v in variations[1:]]
    expected += ["ams", "ams_higgsml", "sigma_b", "z_asimov", "dmu_stat"]
    expected += [
        f"{p}_{k}" for k in ("lumi", "sig", "bkg", "det") for p in ("d_up", "d_down", "dmu")
    ]
    expected += [
        "dmu_syst",
        "dmu_mcstat",
        "dmu_tot",
        "dmu_lin_lumi",
        "dmu_lin_sig",
        "dmu_lin_bkg",
        "dmu_lin",
        "excluded_by",
        "valid",
    ]
    assert list(scan.columns) == expected
    assert scan["valid"].dtype == bool
    assert scan["n_raw_S"].dtype == np.int64 and scan["n_raw_B"].dtype == np.int64
    assert len(scan) == 2


@pytest.fixture(scope="module")
def norm_scan():
    systs = [LUMI, SIG, BKG]
    base = events(20000, seed=3)
    thresholds = default_thresholds(0.0, 1.0, 0.02)
    scan = scan_scores(frames_for(base, systs), systematics=systs, thresholds=thresholds,
                       min_signal=1.0, min_background=1.0)  # fmt: skip
    return scan[scan["valid"]]


def test_closed_form_signal_efficiency(norm_scan):
    d = SIG["delta"]
    np.testing.assert_allclose(norm_scan["d_up_sig"], -d / (1 + d), rtol=1e-10)
    np.testing.assert_allclose(norm_scan["d_down_sig"], d / (1 - d), rtol=1e-10)
    np.testing.assert_allclose(norm_scan["dmu_lin_sig"], d, rtol=1e-10)


def test_closed_form_background_efficiency(norm_scan):
    d = BKG["delta"]
    s, b = norm_scan["S_nominal"], norm_scan["B_nominal"]
    np.testing.assert_allclose(norm_scan["d_up_bkg"], -d * b / s, rtol=1e-9)
    np.testing.assert_allclose(norm_scan["d_down_bkg"], d * b / s, rtol=1e-9)
    np.testing.assert_allclose(norm_scan["dmu_bkg"], d * b / s, rtol=1e-9)
    np.testing.assert_allclose(norm_scan["dmu_lin_bkg"], d * b / s, rtol=1e-9)


def test_closed_form_luminosity_and_mirror(norm_scan):
    d = LUMI["delta"]
    s, b = norm_scan["S_nominal"].to_numpy(), norm_scan["B_nominal"].to_numpy()
    n = s + b
    np.testing.assert_allclose(norm_scan["mu_lumi_up"], (s - d * b) / (s * (1 + d)), rtol=1e-10)
    np.testing.assert_allclose(norm_scan["mu_lumi_down"], (s + d * b) / (s * (1 - d)), rtol=1e-10)
    np.testing.assert_allclose(norm_scan["dmu_lin_lumi"], d * n / s, rtol=1e-10)
    # up/down mirror to first order: d_up + d_down = 2 delta^2 n / (S (1 - delta^2))
    asym = norm_scan["d_up_lumi"] + norm_scan["d_down_lumi"]
    np.testing.assert_allclose(asym, 2 * d**2 * n / (s * (1 - d**2)), rtol=1e-6)
    assert np.all(np.abs(asym) < 3 * d * norm_scan["dmu_lin_lumi"])


def test_invariants_mu_nominal_and_totals(norm_scan):
    s, b, n = norm_scan["S_nominal"], norm_scan["B_nominal"], norm_scan["n"]
    np.testing.assert_array_equal(n, s + b)
    np.testing.assert_allclose((n - b) / s, 1.0, rtol=1e-12)
    np.testing.assert_allclose(norm_scan["dmu_stat"], np.sqrt(n) / s, rtol=1e-14)
    syst2 = sum(norm_scan[f"dmu_{k}"] ** 2 for k in ("lumi", "sig", "bkg"))
    np.testing.assert_allclose(norm_scan["dmu_syst"] ** 2, syst2, rtol=1e-12)
    mc2 = (norm_scan["sumw2_S"] + norm_scan["sumw2_B"]) / s**2  # mu = 1
    np.testing.assert_allclose(norm_scan["dmu_mcstat"] ** 2, mc2, rtol=1e-12)
    np.testing.assert_allclose(
        norm_scan["dmu_tot"] ** 2, norm_scan["dmu_stat"] ** 2 + syst2 + mc2, rtol=1e-12
    )
    lin2 = (
        norm_scan["dmu_stat"] ** 2
        + mc2
        + sum(norm_scan[f"dmu_lin_{k}"] ** 2 for k in ("lumi", "sig", "bkg"))
    )
    np.testing.assert_allclose(norm_scan["dmu_lin"] ** 2, lin2, rtol=1e-12)
    np.testing.assert_allclose(norm_scan["ams"], ams(s, b), rtol=1e-14)
    np.testing.assert_allclose(norm_scan["ams_higgsml"], ams(s, b + 10.0), rtol=1e-14)


def test_sigma_b_and_z_asimov_columns(norm_scan):
    s, b = norm_scan["S_nominal"], norm_scan["B_nominal"]
    # lumi moves B by 0.01 B, bkg by 0.02 B, sig not at all
    sigma_b = np.hypot(LUMI["delta"] * b, BKG["delta"] * b)
    np.testing.assert_allclose(norm_scan["sigma_b"], sigma_b, rtol=1e-9)
    np.testing.assert_allclose(norm_scan["z_asimov"], z_asimov(s, b, sigma_b), rtol=1e-8)
    assert np.all(norm_scan["z_asimov"] <= norm_scan["ams"])


def _shift_vs_lin(delta, syst):
    base = events(3000, seed=4)
    s_cfg = dict(syst, delta=delta)
    scan = scan_scores(frames_for(base, [s_cfg]), systematics=[s_cfg], thresholds=[0.6])
    row = scan.iloc[0]
    k = syst["name"]
    lin = row[f"dmu_lin_{k}"]
    return abs(row[f"d_up_{k}"]) - lin, row[f"d_down_{k}"] - lin, row[f"dmu_{k}"] - lin


@pytest.mark.parametrize("syst", [LUMI, SIG], ids=["lumi", "sig"])
def test_shift_method_agrees_with_linear_to_second_order(syst):
    diffs = np.array([_shift_vs_lin(d, syst) for d in (0.04, 0.02, 0.01)])
    up, down, mean = diffs.T
    # each direction: O(delta^2), so halving delta divides the difference by 4
    np.testing.assert_allclose(up[:-1] / up[1:], 4.0, rtol=0.05)
    np.testing.assert_allclose(down[:-1] / down[1:], 4.0, rtol=0.05)
    assert np.all(up < 0) and np.all(down > 0)
    # the mean of |up| and |down| cancels the delta^2 term: O(delta^3), factor 8
    np.testing.assert_allclose(mean[:-1] / mean[1:], 8.0, rtol=0.05)


def test_background_norm_is_exactly_linear():
    up, down, mean = _shift_vs_lin(0.1, BKG)
    assert abs(up) < 1e-12 and abs(down) < 1e-12 and abs(mean) < 1e-12


def test_symmetrise_max():
    systs = [SIG]
    scan = scan_scores(frames_for(events(2000), systs), systematics=systs, thresholds=[0.5],
                       symmetrise="max")  # fmt: skip
    assert scan["dmu_sig"].iloc[0] == pytest.approx(0.05 / 0.95, rel=1e-10)


def test_zero_signal_thresholds_are_inf_and_invalid():
    systs = [LUMI, SIG, BKG, DET]
    base = events(3000, seed=6)
    # above every score (S = B = 0); only background above 0.999 would also be S = 0
    thresholds = np.array([0.3, 0.5, 1.0, 1.5])
    frames = frames_for(base, systs)
    scan = scan_scores(frames, systematics=systs, thresholds=thresholds, min_signal=1.0)
    assert not scan.isna().any().any()
    empty = scan[scan["threshold"] >= 1.0]
    assert (empty["S_nominal"] == 0).all() and (empty["B_nominal"] == 0).all()
    assert not empty["valid"].any()
    for col in ["dmu_stat", "dmu_tot", "dmu_syst", "dmu_lin", "mu_lumi_up", "mu_det_down",
                "dmu_lumi", "dmu_lin_bkg", "d_up_sig"]:  # fmt: skip
        assert np.isposinf(empty[col]).all(), col
    for col in ["ams", "ams_higgsml", "z_asimov"]:
        assert (empty[col] == 0.0).all(), col
    assert scan["valid"].iloc[:2].all()


def test_signal_without_background_and_variation_losing_signal():
    # two signal events at 0.9 and one background at 0.4; det_up pushes the signal below 0.8
    base = pd.DataFrame({"label": [1, 1, 0], "weight": [5.0, 5.0, 50.0], "score": [0.9, 0.9, 0.4]})
    frames = {
        "nominal": base,
        "det_up": shifted_frame(base, -0.2),
        "det_down": shifted_frame(base, 0.05),
    }
    scan = scan_scores(frames, systematics=[DET], thresholds=[0.3, 0.8])
    row = scan.iloc[1]
    assert row["S_nominal"] == 10.0 and row["B_nominal"] == 0.0
    assert row["ams"] == 0.0 and row["z_asimov"] == 0.0
    assert row["ams_higgsml"] == pytest.approx(float(ams(10.0, 10.0)))
    assert np.isposinf(row["mu_det_up"]) and np.isposinf(row["dmu_det"]) and not row["valid"]
    assert np.isfinite(row["dmu_stat"])
    assert scan["valid"].iloc[0]
    assert not scan.isna().any().any()


def test_min_signal_and_min_background_flags():
    systs = [LUMI]
    frames = frames_for(events(4000, seed=7), systs)
    thresholds = default_thresholds(0.0, 1.0, 0.01)
    scan = scan_scores(frames, systematics=systs, thresholds=thresholds,
                       min_signal=50.0, min_background=30.0)  # fmt: skip
    expect = (scan["S_nominal"] >= 50.0) & (scan["B_nominal"] >= 30.0)
    np.testing.assert_array_equal(scan["valid"], expect)
    assert 0 < expect.sum() < len(scan)


def test_negative_weight_cancellation_is_not_signal():
    # +w and -w at the same score cancel: S = 0 up to rounding, must not count as valid
    base = pd.DataFrame({"label": [1, 1, 1, 0], "weight": [0.1, 0.2, -0.3, 4.0],
                         "score": [0.9, 0.9, 0.9, 0.95]})  # fmt: skip
    frames = {
        "nominal": base,
        "lumi_up": norm_frame(base, LUMI, 1),
        "lumi_down": norm_frame(base, LUMI, -1),
    }
    scan = scan_scores(frames, systematics=[LUMI], thresholds=[0.5])
    assert 0 < abs(scan["S_nominal"].iloc[0]) < 1e-15  # rounding residue, not exactly zero
    assert not scan["valid"].iloc[0]
    assert not scan.isna().any().any()


# grids whose arithmetic guesses need both the downward and the upward correction
@pytest.mark.parametrize("grid", [(0.0, 1.0, 0.001), (0.05, 0.95, 0.007), (0.3, 0.31, 1e-5)])
def test_uniform_grid_index_is_exact_without_binary_search(monkeypatch, grid):
    thresholds = default_thresholds(*grid)
    rng = np.random.default_rng(10)
    x = np.concatenate([
        rng.random(50_000), thresholds, np.nextafter(thresholds, 2.0), np.nextafter(thresholds, -1.0),
        rng.random(1000).astype(np.float32), [-np.inf, np.inf, -5.0, 5.0, 0.0, 0.999],
    ])  # fmt: skip
    expected = np.searchsorted(thresholds, x, side="left")

    def forbidden(*args, **kwargs):
        raise AssertionError("binary search used on a uniform grid")

    monkeypatch.setattr(systpipe.scan.np, "searchsorted", forbidden)
    np.testing.assert_array_equal(systpipe.scan._count_below(x, thresholds), expected)


def test_bad_inputs_raise_named_errors():
    base = events(200)
    frames = frames_for(base, [LUMI])
    with pytest.raises(DataContractError, match="lumi_down"):
        scan_scores({k: v for k, v in frames.items() if k != "lumi_down"}, systematics=[LUMI],
                    thresholds=[0.5])  # fmt: skip
    with pytest.raises(DataContractError, match="extra_up"):
        scan_scores({**frames, "extra_up": base}, systematics=[LUMI], thresholds=[0.5])
    with pytest.raises(DataContractError, match=r"'lumi_up'.*'score'"):
        scan_scores(
            {**frames, "lumi_up": base.drop(columns="score")}, systematics=[LUMI], thresholds=[0.5]
        )
    bad = base.assign(label=np.where(base["label"] == 1, 2, 0))
    with pytest.raises(DataContractError, match="label"):
        scan_scores({**frames, "nominal": bad}, systematics=[LUMI], thresholds=[0.5])
    nan = base.assign(score=np.where(base.index == 3, np.nan, base["score"]))
    with pytest.raises(DataContractError, match="NaN"):
        scan_scores({**frames, "nominal": nan}, systematics=[LUMI], thresholds=[0.5])
    with pytest.raises(ConfigError, match="delta"):
        scan_scores(frames, systematics=[dict(LUMI, delta=0.0)], thresholds=[0.5])
    with pytest.raises(ConfigError, match="type"):
        scan_scores(frames, systematics=[dict(LUMI, type="shape")], thresholds=[0.5])
    with pytest.raises(ConfigError, match="symmetrise"):
        scan_scores(frames, systematics=[LUMI], thresholds=[0.5], symmetrise="median")
    with pytest.raises(ConfigError, match="min_signal"):
        scan_scores(frames, systematics=[LUMI], thresholds=[0.5], min_signal=-1.0)
    with pytest.raises(ConfigError, match="thresholds"):
        scan_scores(frames, systematics=[LUMI], thresholds=[0.5, np.nan])
    stat = {"name": "stat", "type": "norm", "delta": 0.1}
    with pytest.raises(ConfigError, match="collides"):
        scan_scores(frames_for(base, [stat]), systematics=[stat], thresholds=[0.5])


def hand_scan(threshold, ams_values, dmu_tot, valid):
    return pd.DataFrame(
        {"threshold": threshold, "ams": ams_values, "dmu_tot": dmu_tot, "valid": valid}
    )


def test_working_points_hand_made():
    df = hand_scan(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [1.0, 3.0, 2.5, 3.0, 9.0, 0.0],
        [0.9, 0.5, 0.4, 0.4, 0.1, np.inf],
        [True, True, True, True, False, False],
    )
    # the invalid row at 0.5 has the best values of both but is excluded; ties -> lowest threshold
    assert working_points(df) == {"max_ams": 1, "min_dmu_tot": 2}
    # rows out of threshold order: ties still go to the lowest threshold, positions returned
    shuffled = df.iloc[[3, 0, 2, 1, 4, 5]].reset_index(drop=True)
    assert working_points(shuffled) == {"max_ams": 3, "min_dmu_tot": 2}


def test_working_points_no_valid_row():
    df = hand_scan([0.1, 0.2], [1.0, 2.0], [0.5, 0.4], [False, False])
    with pytest.raises(SystpipeError, match=r"min_signal.*min_background"):
        working_points(df)
    systs = [LUMI]
    scan = scan_scores(frames_for(events(300), systs), systematics=systs, thresholds=[0.5],
                       min_signal=1e9)  # fmt: skip
    with pytest.raises(SystpipeError, match="scan.min_signal=1000000000.0"):
        working_points(scan)
    with pytest.raises(DataContractError, match="dmu_tot"):
        working_points(df.drop(columns="dmu_tot"))


def test_working_points_on_real_scan():
    systs = [LUMI, SIG, BKG]
    scan = scan_scores(frames_for(events(5000, seed=8), systs), systematics=systs,
                       thresholds=default_thresholds(0, 1, 0.01), min_signal=5.0, min_background=5.0)  # fmt: skip
    wp = working_points(scan)
    valid = scan[scan["valid"]]
    assert scan["ams"].iloc[wp["max_ams"]] == valid["ams"].max()
    assert scan["dmu_tot"].iloc[wp["min_dmu_tot"]] == valid["dmu_tot"].min()
    assert scan["valid"].iloc[wp["max_ams"]] and scan["valid"].iloc[wp["min_dmu_tot"]]


def test_default_thresholds_grid():
    t = default_thresholds(0.0, 1.0, 0.001)
    assert t.size == 1000 and t[0] == 0.0 and t[-1] == 0.999
    assert t[7] == 0.007 and t[300] == 0.3 and np.all(np.diff(t) > 0)
    assert default_thresholds(0.1, 0.3, 0.1).tolist() == [0.1, 0.2]
    assert default_thresholds(0.2, 0.75, 0.25).tolist() == [0.2, 0.45, 0.7]
    with pytest.raises(ConfigError, match="step"):
        default_thresholds(0.0, 1.0, 0.0)
    with pytest.raises(ConfigError, match="stop"):
        default_thresholds(0.5, 0.5, 0.1)


def test_quantile_thresholds():
    scores = np.random.default_rng(9).random(10_000)
    t = quantile_thresholds(scores, 10)
    assert t.size == 10 and np.all(np.diff(t) > 0)
    kept = np.array([(scores > x).mean() for x in t])
    np.testing.assert_allclose(kept, 1 - np.arange(10) / 10, atol=2e-4)
    assert quantile_thresholds(np.repeat([0.2, 0.8], 50), 10).tolist() == [0.2, 0.8]
    with pytest.raises(ConfigError, match="n must"):
        quantile_thresholds(scores, 0)


# --------------------------------------------------------------------------- MC statistics


def weighted_events(n=4000, seed=21):
    """Events of four processes with weights spanning three decades (some negative); the
    categories are deliberately not in sorted order."""
    base = events(n, seed=seed, negative=0.1)
    rng = np.random.default_rng(seed + 1)
    process = np.where(base["label"] == 1, "ggH", rng.choice(["ttbar", "WW", "Ztautau"], n))
    scale = {"ggH": 1.0, "WW": 3.0, "Ztautau": 30.0, "ttbar": 800.0}
    return base.assign(
        process=pd.Categorical(process, categories=["ttbar", "ggH", "WW", "Ztautau"]),
        weight=base["weight"].to_numpy() * np.array([scale[p] for p in process]),
    )


def brute_force_mc(frame, thresholds):
    """Raw counts, sum w^2 and N_eff by a loop over thresholds and masks."""
    score = frame["score"].to_numpy(dtype=np.float64)
    w = frame["weight"].to_numpy()
    groups = {"S": frame["label"].to_numpy() == 1, "B": frame["label"].to_numpy() == 0}
    process = frame["process"].astype(str).to_numpy()
    out = {}
    for t in thresholds:
        sel = score > t
        row = {}
        for name, mask in groups.items():
            ww = w[sel & mask]
            row[f"n_raw_{name}"] = ww.size
            row[f"sumw2_{name}"] = np.sum(ww**2)
            row[f"neff_{name}"] = ww.sum() ** 2 / np.sum(ww**2) if ww.size else 0.0
        for p in np.unique(process):
            ww = w[sel & (process == p)]
            row[f"n_raw__{p}"] = ww.size
            row[f"neff__{p}"] = ww.sum() ** 2 / np.sum(ww**2) if ww.size else 0.0
        for key, value in row.items():
            out.setdefault(key, []).append(value)
    return {key: np.array(values) for key, values in out.items()}


@pytest.mark.parametrize("name", sorted(THRESHOLD_SETS))
def test_raw_and_effective_counts_match_brute_force(name):
    thresholds = THRESHOLD_SETS[name]
    frame = weighted_events()
    frames = frames_for(frame, [LUMI, DET])
    scan = scan_scores(frames, systematics=[LUMI, DET], thresholds=thresholds)
    ref = brute_force_mc(frame, thresholds)
    processes = ["WW", "Ztautau", "ggH", "ttbar"]  # sorted, whatever the category order
    per_process = [c for c in scan.columns if "__" in c]
    assert per_process == [f"{k}__{p}" for p in processes for k in ("n_raw", "neff")]
    for key, values in ref.items():
        if key.startswith("n_raw"):
            assert scan[key].dtype == np.int64, key
            np.testing.assert_array_equal(scan[key], values, err_msg=key)
        else:
            np.testing.assert_allclose(scan[key], values, rtol=1e-12, atol=0, err_msg=key)
    # Cauchy-Schwarz: N_eff never exceeds the raw count; the processes add up to S + B
    for part in ("S", "B"):
        assert np.all(scan[f"neff_{part}"] <= scan[f"n_raw_{part}"] * (1 + 1e-12))
    total = sum(scan[f"n_raw__{p}"] for p in processes)
    np.testing.assert_array_equal(total, scan["n_raw_S"] + scan["n_raw_B"])
    empty = scan["threshold"] >= 1.0
    if empty.any():  # nothing selected: zero counts, N_eff 0, an infinite MC term
        assert (scan.loc[empty, ["n_raw_S", "neff_S", "neff_B", "sumw2_B"]] == 0).all().all()
        assert np.isposinf(scan.loc[empty, "dmu_mcstat"]).all()
    assert not scan.isna().any().any()


def test_no_process_column_no_process_counts_and_bad_process():
    base = events(500)
    scan = scan_scores(frames_for(base, [LUMI]), systematics=[LUMI], thresholds=[0.5])
    assert not [c for c in scan.columns if "__" in c]
    broken = weighted_events(500).assign(process=lambda d: d["process"].astype(object))
    broken.loc[3, "process"] = None
    with pytest.raises(DataContractError, match="'process'"):
        scan_scores(frames_for(broken, [LUMI]), systematics=[LUMI], thresholds=[0.5])


def test_dmu_mcstat_closed_form_equal_weights():
    # N_S = 40 signal events of weight 0.5 and N_B = 25 background events of weight 12 pass
    # the cut (sum w^2 = N w^2); a few events of each below it must not count
    n_s, w_s, n_b, w_b = 40, 0.5, 25, 12.0
    label = np.r_[np.ones(n_s + 3), np.zeros(n_b + 4)].astype(np.int8)
    weight = np.r_[np.full(n_s + 3, w_s), np.full(n_b + 4, w_b)]
    score = np.r_[np.full(n_s, 0.9), np.full(3, 0.2), np.full(n_b, 0.7), np.full(4, 0.1)]
    base = pd.DataFrame({"label": label, "weight": weight, "score": score})
    scan = scan_scores(frames_for(base, [LUMI]), systematics=[LUMI], thresholds=[0.5, 0.95])
    row = scan.iloc[0]
    s, b = n_s * w_s, n_b * w_b
    assert (row["n_raw_S"], row["n_raw_B"]) == (n_s, n_b)
    assert (row["sumw2_S"], row["sumw2_B"]) == (n_s * w_s**2, n_b * w_b**2)
    assert (row["neff_S"], row["neff_B"]) == (n_s, n_b)
    mc = np.sqrt(1.0 / n_s + (b / s) ** 2 / n_b)  # = sqrt(N_S w_S^2 + N_B w_B^2) / S
    assert row["dmu_mcstat"] == pytest.approx(mc, rel=1e-14)
    assert row["dmu_mcstat"] == pytest.approx(np.sqrt(n_s * w_s**2 + n_b * w_b**2) / s, rel=1e-14)
    stat, lumi = np.sqrt(s + b) / s, row["dmu_lumi"]
    assert row["dmu_syst"] == pytest.approx(lumi, rel=1e-15)  # systematics only
    assert row["dmu_tot"] == pytest.approx(np.sqrt(stat**2 + lumi**2 + mc**2), rel=1e-14)
    assert row["dmu_lin"] == pytest.approx(
        np.sqrt(stat**2 + row["dmu_lin_lumi"] ** 2 + mc**2), rel=1e-14
    )
    empty = scan.iloc[1]
    assert empty["n_raw_S"] == 0 and empty["neff_S"] == 0.0 and np.isposinf(empty["dmu_mcstat"])


GUARD_QUANTITY = {"min_neff_background": "neff_B", "min_neff_signal": "neff_S",
                  "min_background": "B_nominal", "min_signal": "S_nominal"}  # fmt: skip


def test_neff_guards_fill_excluded_by_and_valid():
    frame = weighted_events(6000, seed=23)
    frames = frames_for(frame, [LUMI])
    thresholds = default_thresholds(0.0, 1.0, 0.01)
    free = scan_scores(frames, systematics=[LUMI], thresholds=thresholds)
    assert (free["excluded_by"] == "none").all()
    # each guard alone, at the median of its quantity: it excludes exactly the rows below
    for guard, quantity in GUARD_QUANTITY.items():
        cut = float(np.median(free[quantity]))
        scan = scan_scores(frames, systematics=[LUMI], thresholds=thresholds, **{guard: cut})
        expected = np.where(free[quantity] < cut, guard, "none")
        np.testing.assert_array_equal(scan["excluded_by"].to_numpy(dtype=str), expected)
        assert 0 < (expected == guard).sum() < len(scan)
    # all four, binding from the loosest threshold up in reverse order of GUARDS (S below 690
    # from t = 0.3, B below 1e6 from 0.35, neff_S below 950 from 0.45, neff_B below 100 from
    # 0.5): the first guard of GUARDS that a row fails is named, so each one shows up
    cuts = {"min_signal": 690.0, "min_background": 1e6, "min_neff_signal": 950.0,
            "min_neff_background": 100.0}  # fmt: skip
    scan = scan_scores(frames, systematics=[LUMI], thresholds=thresholds, **cuts)
    fails = {g: (scan[q] < cuts[g]).to_numpy() for g, q in GUARD_QUANTITY.items()}
    expected = [
        next((g for g in systpipe.scan.GUARDS if fails[g][i]), "none") for i in range(len(scan))
    ]
    assert scan["excluded_by"].tolist() == expected
    assert set(expected) == {"none", *systpipe.scan.GUARDS}
    positive = (scan["S_nominal"] > 0) & (scan["S_lumi_up"] > 0) & (scan["S_lumi_down"] > 0)
    np.testing.assert_array_equal(scan["valid"], (scan["excluded_by"] == "none") & positive)
    assert {k: scan.attrs[k] for k in cuts} == cuts
    with pytest.raises(ConfigError, match="min_neff_background"):
        scan_scores(frames, systematics=[LUMI], thresholds=[0.5], min_neff_background=-1.0)
    with pytest.raises(SystpipeError, match="rows excluded by min_neff_background"):
        working_points(scan.assign(valid=False))


def guard_scan(ams_values, dmu_tot, excluded_by, *, valid=None, s_up=None):
    n = len(ams_values)
    excluded = np.asarray(excluded_by, dtype=object)
    return pd.DataFrame({
        "threshold": np.round(0.1 * np.arange(1, n + 1), 10), "ams": ams_values,
        "dmu_tot": dmu_tot, "S_nominal": 10.0, "S_lumi_up": 10.0 if s_up is None else s_up,
        "excluded_by": excluded, "valid": excluded == "none" if valid is None else valid,
    })  # fmt: skip


def test_working_point_guards_name_the_guard_that_moved_the_choice():
    # the best row of both keys fails the N_eff guard of the signal
    df = guard_scan([1.0, 2.0, 5.0], [0.5, 0.4, 0.1], ["none", "none", "min_neff_signal"])
    assert working_points(df) == {"max_ams": 1, "min_dmu_tot": 1}
    assert working_point_guards(df) == {"max_ams": "min_neff_signal",
                                        "min_dmu_tot": "min_neff_signal"}  # fmt: skip
    # different guards for the two keys
    df = guard_scan([1.0, 9.0, 2.0, 0.5], [0.5, 0.3, 0.4, 0.2],
                    ["none", "min_background", "none", "min_neff_background"])  # fmt: skip
    assert working_point_guards(df) == {"max_ams": "min_background",
                                        "min_dmu_tot": "min_neff_background"}  # fmt: skip
    # the guards cost nothing: the chosen row is the unconstrained optimum, or ties with it
    df = guard_scan([3.0, 3.0, 1.0], [0.2, 0.2, 0.5], ["min_signal", "none", "none"])
    assert working_point_guards(df) == {"max_ams": "none", "min_dmu_tot": "none"}
    # a row with S = 0 in a variation is no candidate, whatever its keys
    df = guard_scan([1.0, 2.0, 9.0], [0.5, 0.4, 0.1], ["none", "none", "min_signal"],
                    s_up=[10.0, 10.0, 0.0])  # fmt: skip
    assert working_point_guards(df) == {"max_ams": "none", "min_dmu_tot": "none"}
    with pytest.raises(DataContractError, match="excluded_by"):
        working_point_guards(df.drop(columns="excluded_by"))
