"""Tests of systpipe.stat.postprocess: 353QH smoothing against cabinetry, symmetrisation,
norm/shape split, the MC-noise significance of a shift, pruning and the driver."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from cabinetry.histo import Histogram
from cabinetry.smooth import smooth_353qh_twice as cabinetry_smooth
from cabinetry.templates.postprocessor import _apply_353qh_twice
from scipy import stats

from systpipe.errors import ConfigError, DataContractError
from systpipe.stat.postprocess import (
    DEFAULTS,
    apply_decision,
    max_shape_difference,
    postprocess,
    prune_decision,
    pyhf_modifiers,
    shift_significance,
    smooth_353qh_twice,
    smooth_variation,
    split_norm_shape,
    symmetrise_variation,
    template_settings,
)
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates, build_templates

# ------------------------------------------------------------------ smoothing vs cabinetry

VECTORS = [
    [1.0, 2.0, 3.0],  # 3 bins
    [0.2, 5.0, 0.1],  # 3 bins with a spike
    [4.0, 4.0, 4.0, 4.0, 4.0, 4.0],  # flat
    [1.0, 1.3, 0.7, 1.1, 0.9, 1.25, 0.8, 1.05],
    [0.0, 10.0, 0.0, 10.0, 0.0, 10.0, 0.0],  # saw tooth
    [1.0, 2.0, 2.0, 2.0, 1.0, 3.0, 3.0, 3.0, 5.0, 1.0],  # flat 3-bin segments (quadratic step)
    [3.0, 1.0, 1.0, 1.0, 3.0, 2.5, 2.5, 2.5, 0.5],
    [-1.0, 0.5, 2.0, -0.5, 1.0, 0.0],  # negative values: no clipping
    [1.0, 1.1, 1.2, 1.3],  # 4 bins
]


@pytest.mark.parametrize("values", VECTORS)
def test_353qh_twice_equals_cabinetry(values):
    got = smooth_353qh_twice(values)
    want = np.asarray(cabinetry_smooth(np.array(values)), dtype=float)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_353qh_twice_equals_cabinetry_on_random_ratios():
    rng = np.random.default_rng(5)
    for n in (3, 5, 8, 13, 40):
        for _ in range(20):
            values = np.round(rng.normal(1.0, 0.15, n), 2)  # rounding makes flat segments
            np.testing.assert_allclose(
                smooth_353qh_twice(values), cabinetry_smooth(values.copy()), rtol=0, atol=1e-12
            )


def test_353qh_twice_closed_forms():
    # a straight line is a fixed point of medians, interpolation and Hanning
    line = np.linspace(1.0, 2.0, 9)
    np.testing.assert_allclose(smooth_353qh_twice(line), line, rtol=0, atol=1e-14)
    assert smooth_353qh_twice([4.0, 4.0, 4.0]).tolist() == [4.0, 4.0, 4.0]
    assert smooth_353qh_twice([1.0, 2.0]).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="non-finite"):
        smooth_353qh_twice([1.0, np.nan, 1.0])


def test_smooth_variation_equals_cabinetry_postprocessor():
    rng = np.random.default_rng(2)
    bins = np.arange(9.0)
    nominal = rng.uniform(50, 100, 8)
    variation = nominal * rng.normal(1.05, 0.05, 8)
    ref = Histogram.from_arrays(bins, variation.copy(), np.sqrt(variation))
    _apply_353qh_twice(ref, Histogram.from_arrays(bins, nominal, np.sqrt(nominal)), "test")
    got, done = smooth_variation(nominal, variation)
    assert done
    np.testing.assert_allclose(got, ref.yields, rtol=1e-12, atol=0)


def test_smoothing_preserves_the_variation_total():
    rng = np.random.default_rng(3)
    nominal = rng.uniform(10, 20, 12)
    variation = nominal * rng.normal(1.03, 0.1, 12)
    got, done = smooth_variation(nominal, variation)
    assert done and not np.allclose(got, variation)  # it did smooth
    assert got.sum() == pytest.approx(variation.sum(), rel=1e-14)
    two, done_two = smooth_variation(nominal[:2], variation[:2])
    assert not done_two and np.array_equal(two, variation[:2])


# ----------------------------------------------------------------------- symmetrisation

NOM = np.array([10.0, 20.0, 30.0, 40.0])
UP = np.array([12.0, 19.0, 30.0, 45.0])
DOWN = np.array([9.0, 23.0, 31.0, 44.0])


def test_two_sided_is_the_identity_and_one_sided_mirrors():
    up, dn = symmetrise_variation(NOM, UP, DOWN, "two_sided")
    assert np.array_equal(up, UP) and np.array_equal(dn, DOWN)
    up, dn = symmetrise_variation(NOM, UP, DOWN, "one_sided")
    assert np.array_equal(up, UP)
    assert dn.tolist() == [8.0, 21.0, 30.0, 35.0]


def test_max_and_absmean_by_hand():
    # u = [2, -1, 0, 5], d = [-1, 3, 1, 4]
    up, dn = symmetrise_variation(NOM, UP, DOWN, "max")
    # bin 0: |u| wins, +2; bin 1: |d| = 3 wins, mirrored -> up -3; bin 2: |d| wins -> -1; bin 3: +5
    assert up.tolist() == [12.0, 17.0, 29.0, 45.0]
    assert dn.tolist() == [8.0, 23.0, 31.0, 35.0]
    up, dn = symmetrise_variation(NOM, UP, DOWN, "absmean")
    # m = [1.5, 2, 0.5, 4.5], sign of u (of -d where u = 0)
    assert up.tolist() == [11.5, 18.0, 29.5, 44.5]
    assert dn.tolist() == [8.5, 22.0, 30.5, 35.5]
    with pytest.raises(ConfigError, match="fit.templates.symmetrise"):
        symmetrise_variation(NOM, UP, DOWN, "mean")


# --------------------------------------------------------------- split and significance


def test_split_norm_shape():
    hi, lo, us, ds = split_norm_shape(NOM, UP, DOWN)
    assert hi == pytest.approx(106.0 / 100.0) and lo == pytest.approx(107.0 / 100.0)
    assert us.sum() == pytest.approx(100.0) and ds.sum() == pytest.approx(100.0)
    np.testing.assert_allclose(hi * us, UP, rtol=1e-14)
    np.testing.assert_allclose(lo * ds, DOWN, rtol=1e-14)
    assert max_shape_difference(NOM, NOM * 1.3) == pytest.approx(0.0, abs=1e-15)


def test_shift_significance_closed_form():
    r = shift_significance(NOM, UP, np.array([4.0, 1.0, 0.0, 25.0]))
    # z = [2/2, -1/1, (excluded), 5/5]
    assert r.chi2 == pytest.approx(3.0) and r.ndof == 3
    assert r.p_value == pytest.approx(stats.chi2.sf(3.0, 3))
    assert r.z.tolist() == [1.0, -1.0, 0.0, 1.0]
    exact = shift_significance(NOM, UP, np.array([4.0, 1.0, 1.0, 0.0]))
    assert exact.p_value == 0.0  # a 5-event shift no MC noise can make
    assert shift_significance(NOM, NOM, np.zeros(4)).p_value == 1.0


# ------------------------------------------------------------ event-level score frames


def _sample(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A small signal process and a background whose score is x/(1 + x), x ~ Exp(1)."""
    x = rng.exponential(1.0, n)
    sig = pd.DataFrame(
        {
            "event_id": np.arange(n, n + 500, dtype=np.int64),
            "label": np.int8(1),
            "process": "H",
            "weight": 0.01,
            "score": rng.beta(5, 2, 500),
            "x": np.nan,
        }
    )
    bkg = pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64),
            "label": np.int8(0),
            "process": "WW",
            "weight": rng.uniform(0.5, 1.5, n),
            "score": x / (1 + x),
            "x": x,
        }
    )
    return pd.concat([bkg, sig], ignore_index=True)


def _weight_noise(nominal: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The nominal background events with independent noise of the size of their MC error."""
    out = nominal.copy()
    bkg = (out["process"] == "WW").to_numpy()
    out.loc[bkg, "weight"] = out.loc[bkg, "weight"] * (1.0 + rng.normal(0.0, 1.0, bkg.sum()))
    return out


def _redrawn(nominal: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The same background events re-scored with an independent x: pure migration noise."""
    out = nominal.copy()
    bkg = (out["process"] == "WW").to_numpy()
    x = rng.exponential(1.0, bkg.sum())
    out.loc[bkg, "score"] = x / (1 + x)
    return out


def _scaled(nominal: pd.DataFrame, factor: float) -> pd.DataFrame:
    out = nominal.copy()
    bkg = (out["process"] == "WW").to_numpy()
    x = out.loc[bkg, "x"].to_numpy() * factor
    out.loc[bkg, "score"] = x / (1 + x)
    return out


EDGES = np.linspace(0.3, 1.0, 11)
SYSTS = [
    {"name": "noise", "type": "smear", "delta": 0.01, "columns": ["x"]},
    {"name": "escale", "type": "scale", "delta": 0.05, "columns": ["x"]},
    {"name": "lumi", "type": "norm", "delta": 0.02},
]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(20240607)
    nominal = _sample(20000, rng)
    out = {"nominal": nominal}
    out["noise_up"], out["noise_down"] = _weight_noise(nominal, rng), _weight_noise(nominal, rng)
    out["escale_up"], out["escale_down"] = _scaled(nominal, 1.05), _scaled(nominal, 0.95)
    for name, f in (("lumi_up", 1.02), ("lumi_down", 0.98)):
        out[name] = nominal.assign(weight=nominal["weight"] * f)
    return out


@pytest.fixture(scope="module")
def templates(frames) -> Templates:
    return build_templates(frames, bin_edges=EDGES)


@pytest.mark.parametrize("noise", [_weight_noise, _redrawn])
def test_the_p_value_of_pure_mc_noise_is_uniform(noise):
    """shift_sumw2 is the right variance: over many noise realisations the p-value of the
    chi2 test is uniform (a variance off by a factor 2 fails this by far)."""
    p = []
    for seed in range(120):
        rng = np.random.default_rng([7, seed])
        nominal = _sample(3000, rng)
        t = build_templates({"nominal": nominal, "v_up": noise(nominal, rng)}, bin_edges=EDGES)
        w = t.samples.index("WW")
        p.append(
            shift_significance(
                t.nominal[w], t.variations["v_up"][w], t.shift_sumw2["v_up"][w]
            ).p_value
        )
    assert stats.kstest(p, "uniform").pvalue > 1e-3
    assert 0.0 < np.mean(np.array(p) < 0.05) < 0.15


def test_pure_noise_is_pruned_and_a_genuine_scale_shift_survives(templates):
    w = templates.samples.index("WW")
    nom = templates.nominal[w]
    noise = prune_decision(
        nom,
        templates.variations["noise_up"][w],
        templates.variations["noise_down"][w],
        norm_threshold=DEFAULTS["prune_norm"],
        shape_threshold=DEFAULTS["prune_shape"],
        shift_sumw2=(templates.shift_sumw2["noise_up"][w], templates.shift_sumw2["noise_down"][w]),
        shift_norm_sumw2=(
            templates.shift_norm_sumw2["noise_up"][w],
            templates.shift_norm_sumw2["noise_down"][w],
        ),
    )
    # the noise is visible (per-bin relative shifts of a few %), but consistent with MC noise
    assert noise.max_shape > 10 * DEFAULTS["prune_shape"]
    assert noise.p_shape_up > 0.05 and noise.p_shape_down > 0.05
    assert not noise.keep_shape and not noise.keep_norm
    assert "MC noise" in noise.reason
    scale = prune_decision(
        nom,
        templates.variations["escale_up"][w],
        templates.variations["escale_down"][w],
        norm_threshold=DEFAULTS["prune_norm"],
        shape_threshold=DEFAULTS["prune_shape"],
        shift_sumw2=(
            templates.shift_sumw2["escale_up"][w],
            templates.shift_sumw2["escale_down"][w],
        ),
        shift_norm_sumw2=(
            templates.shift_norm_sumw2["escale_up"][w],
            templates.shift_norm_sumw2["escale_down"][w],
        ),
    )
    assert scale.keep_norm and scale.keep_shape and scale.reason == "kept"
    assert scale.p_shape_up < 1e-6 and scale.p_norm_up < 1e-6
    assert scale.hi > 1.0 > scale.lo  # a larger x moves events above the threshold


def test_prune_thresholds_by_hand():
    nom = np.array([100.0, 100.0, 100.0])
    # up: norm +0.3 %, shape +0.4 %, -0.4 %, 0; the mirrored down's shape differs by
    # (2 - 1.003 * 0.996) / 0.997 - 1 = 0.004012 / 0.997 in bin 1: both below 0.5 %
    up = nom * 1.003 * np.array([1.004, 0.996, 1.0])
    d = prune_decision(nom, up, 2 * nom - up, norm_threshold=0.005, shape_threshold=0.005)
    assert not d.keep_norm and not d.keep_shape
    assert d.hi == pytest.approx(1.003) and d.max_shape == pytest.approx(0.004012 / 0.997, rel=1e-9)
    d = prune_decision(nom, up, 2 * nom - up, norm_threshold=0.002, shape_threshold=0.003)
    assert d.keep_norm and d.keep_shape and d.p_shape_up is None
    # apply_decision: shape dropped -> a uniform rescaling with the same totals
    only_norm = prune_decision(nom, up, 2 * nom - up, norm_threshold=0.002, shape_threshold=0.005)
    u2, d2 = apply_decision(nom, up, 2 * nom - up, only_norm)
    np.testing.assert_allclose(u2, nom * 1.003, rtol=1e-14)
    np.testing.assert_allclose(d2, nom * 0.997, rtol=1e-14)
    only_shape = prune_decision(nom, up, 2 * nom - up, norm_threshold=0.005, shape_threshold=0.003)
    u3, _ = apply_decision(nom, up, 2 * nom - up, only_shape)
    assert u3.sum() == pytest.approx(nom.sum()) and max_shape_difference(nom, u3) > 0.003
    empty = prune_decision(np.zeros(3), up, up, norm_threshold=0.1, shape_threshold=0.1)
    assert not empty.keep_norm and empty.reason == "no nominal yield"


def test_norm_significance_by_hand():
    nom = np.array([50.0, 50.0])
    up, down = nom * 1.02, nom * 0.97  # 2 % and 3 %: above the 0.5 % threshold
    kept = prune_decision(nom, up, down, norm_threshold=0.005, shape_threshold=0.005)
    assert kept.keep_norm and kept.p_norm_up is None
    # total shifts +2 and -3 against MC variances 4 and 9: z = 1 and -1
    noise = prune_decision(
        nom, up, down, norm_threshold=0.005, shape_threshold=0.005, shift_norm_sumw2=(4.0, 9.0)
    )
    assert not noise.keep_norm
    assert noise.p_norm_up == pytest.approx(2 * stats.norm.sf(1.0), rel=1e-12)
    assert noise.p_norm_down == pytest.approx(2 * stats.norm.sf(1.0), rel=1e-12)
    assert noise.reason.startswith("norm: MC noise")
    # the same shifts against variances 0.25 and 0.25: z = 4 and 6, kept
    real = prune_decision(
        nom, up, down, norm_threshold=0.005, shape_threshold=0.005, shift_norm_sumw2=(0.25, 0.25)
    )
    assert real.keep_norm and real.p_norm_up == pytest.approx(2 * stats.norm.sf(4.0), rel=1e-9)


# --------------------------------------------------------------------------- the driver


def test_postprocess_prunes_noise_keeps_scale_and_never_touches_rates(templates):
    out, record = postprocess(templates, SYSTS, {"symmetrise": "two_sided"})
    json.dumps(record, allow_nan=False)  # strict JSON
    assert record["untouched"] == ["lumi"]
    w = out.samples.index("WW")
    for name in ("lumi_up", "lumi_down", "escale_up", "escale_down"):
        assert np.array_equal(out.variations[name], templates.variations[name])
    # the default symmetrisation keeps the pair's linear part, (up - down)/2 mirrored
    sym, _ = postprocess(templates, SYSTS, {})
    nom, up, dn = (
        t[w]
        for t in (templates.nominal, *(templates.variations[f"escale_{d}"] for d in ("up", "down")))
    )
    np.testing.assert_allclose(sym.variations["escale_up"][w], nom + (up - dn) / 2, rtol=1e-12)
    np.testing.assert_allclose(sym.variations["escale_down"][w], nom - (up - dn) / 2, rtol=1e-12)
    assert np.array_equal(out.variations["noise_up"][w], templates.nominal[w])
    assert np.array_equal(out.variations["noise_down"][w], templates.nominal[w])
    entries = {(e["systematic"], e["sample"]): e for e in record["entries"]}
    assert set(entries) == {(s, p) for s in ("noise", "escale") for p in ("H", "WW")}
    assert not entries["noise", "WW"]["keep_shape"] and not entries["noise", "WW"]["keep_norm"]
    assert entries["escale", "WW"]["keep_shape"] and entries["escale", "WW"]["reason"] == "kept"
    # the signal sample does not move: both parts dropped by the thresholds
    assert "< 0.005" in entries["escale", "H"]["reason"]
    # the pruned systematic disappears from the workspace, the scale stays a histosys
    spec = build_workspace(out, SYSTS)
    mods = {
        (s["name"], m["name"]): m["type"]
        for s in spec["channels"][0]["samples"]
        for m in s["modifiers"]
    }
    assert ("WW", "noise") not in mods and mods["WW", "escale"] == "histosys"
    assert mods["WW", "lumi"] == "normsys"
    # without the pruning the noise would have been a histosys
    raw = build_workspace(templates, SYSTS)
    assert any(m["name"] == "noise" for s in raw["channels"][0]["samples"] for m in s["modifiers"])


def test_postprocess_one_sided_smoothing_keeps_the_mirror_and_the_totals(templates):
    config = {
        "symmetrise": "one_sided",
        "smoothing": "353qh_twice",
        "prune_significance": 1.0,
        "prune_norm": 0.0,
        "prune_shape": 0.0,
        "split_norm_shape": True,
    }
    out, record = postprocess(templates, SYSTS, config)
    w = out.samples.index("WW")
    nom = templates.nominal[w]
    up, dn = out.variations["escale_up"][w], out.variations["escale_down"][w]
    np.testing.assert_allclose(dn, 2 * nom - up, rtol=1e-13)
    assert up.sum() == pytest.approx(templates.variations["escale_up"][w].sum(), rel=1e-13)
    entry = next(
        e for e in record["entries"] if e["systematic"] == "escale" and e["sample"] == "WW"
    )
    assert entry["smoothed"] and entry["symmetrised"] == "one_sided"
    assert entry["normsys"]["hi"] == pytest.approx(up.sum() / nom.sum())


def test_template_settings_name_the_bad_key(templates):
    assert template_settings(None) == dict(DEFAULTS)
    with pytest.raises(ConfigError, match="fit.templates.smoothing"):
        template_settings({"smoothing": "kde"})
    with pytest.raises(ConfigError, match="fit.templates.prune_shape"):
        template_settings({"prune_shape": -1})
    with pytest.raises(ConfigError, match="prune_significance"):
        template_settings({"prune_significance": 2})
    with pytest.raises(ConfigError, match="smoothen"):
        template_settings({"smoothen": "none"})
    with pytest.raises(DataContractError, match="ghost_up"):
        postprocess(templates, [{"name": "ghost", "type": "scale", "delta": 0.1, "columns": ["x"]}])


def test_pyhf_modifiers_split_reproduce_the_templates_at_plus_minus_one():
    import pyhf

    nom, up, dn = NOM, UP, DOWN
    mods = pyhf_modifiers("k", nom, up, dn, split=True)
    assert [m["type"] for m in mods] == ["normsys", "histosys"]
    spec = {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "s",
                        "data": [1.0] * 4,
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {"name": "b", "data": nom.tolist(), "modifiers": mods},
                ],
            }
        ]
    }
    model = pyhf.Model(spec, poi_name="mu", validate=False)
    pars = np.array(model.config.suggested_init())
    for alpha, want in ((1.0, up), (-1.0, dn)):
        pars[model.config.par_slice("k")] = alpha
        pars[model.config.par_slice("mu")] = 0.0
        got = np.asarray(model.expected_actualdata(pars))
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert pyhf_modifiers("k", nom, nom, nom, split=False) == []
    assert [m["type"] for m in pyhf_modifiers("k", nom, up, dn, split=False)] == ["histosys"]


def test_schema_defaults_equal_the_module_defaults():
    from systpipe.config import load_schema

    props = load_schema()["properties"]["fit"]["properties"]["templates"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == dict(DEFAULTS)
