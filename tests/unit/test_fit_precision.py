"""Precision and robustness of the profile-likelihood fit (docs/statistics.md, "Fit precision and
robustness"): closed-form impacts, multi-start conditional fits, infinite Z0, intervals at the POI
bounds, the Hesse cross-check, and interval edges against an independent profile scan."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.optimize import minimize as scipy_minimize
from test_fit import SYSTS, make_scores

from systpipe.stat.binning import fisher_uncertainty
from systpipe.stat.fit import fit_result_to_dict, fit_workspace
from systpipe.stat.fit_batched import conditional_fitter
from systpipe.stat.intervals import poi_interval
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.limits import discovery_significance
from systpipe.stat.minimize import (
    conditional_starts,
    histosys_starts,
    iminuit_conditional,
    minimize,
    minimize_multistart,
)
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates, build_templates, default_bin_edges

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def ten_bins() -> Templates:
    """The 10-bin templates of test_fit.py (3 processes, lumi/sig/bkg norms, det scale)."""
    return build_templates(make_scores(), bin_edges=default_bin_edges(n_bins=10, score_min=0.5))


def one_bin(
    s: float,
    b: float,
    *,
    sig: float = 0.05,
    others: bool = True,
    mc_stat: bool = False,
    data: float | None = None,
    mu_bounds: tuple[float, float] = (-5.0, 10.0),
) -> dict:
    """One bin, a signal and a background sample; "sig" scales the signal only, "bkg" the
    background, "lumi" both (``others``)."""
    nom = np.array([[s], [b]])
    factors = {"sig": (sig, 0.0)} | ({"bkg": (0.0, 0.04), "lumi": (0.02, 0.02)} if others else {})
    var = {}
    for name, (fs, fb) in factors.items():
        var[f"{name}_up"] = nom * np.array([[1 + fs], [1 + fb]])
        var[f"{name}_down"] = nom * np.array([[1 - fs], [1 - fb]])
    t = Templates(
        np.array([0.5, 1.0]), ["signal", "background"], [True, False], nom, nom / 100.0, var
    )
    systs = [{"name": k, "type": "norm", "delta": max(v)} for k, v in factors.items()]
    return build_workspace(
        t, systs, mc_stat=mc_stat, data=None if data is None else [data], mu_bounds=mu_bounds
    )


def spec_from(samples: list[dict], observed: list[float], mu_bounds=(-5.0, 10.0)) -> dict:
    return {
        "version": "1.0.0",
        "channels": [{"name": "SR", "samples": samples}],
        "observations": [{"name": "SR", "data": observed}],
        "measurements": [
            {
                "name": "m",
                "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [mu_bounds]}]},
            }
        ],
    }


MU = {"name": "mu", "type": "normfactor", "data": None}


def scipy_profile(model: HistFactoryModel, data: np.ndarray, fixed: dict[int, float]) -> float:
    """Independent conditional minimum: L-BFGS-B then BFGS with the analytic gradient."""
    idx = [i for i in range(model.n_pars) if not model.fixed[i] and i not in fixed]
    base = model.nominal_pars.copy()
    for i, v in fixed.items():
        base[i] = v

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        p = base.copy()
        p[idx] = x
        v, g = model.nll_and_grad(p, data)
        return v, g[idx]

    r = scipy_minimize(
        f, model.init[idx], jac=True, method="L-BFGS-B", bounds=model.bounds[idx],
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 10000},
    )  # fmt: skip
    return float(r.fun)


def scipy_interval(model: HistFactoryModel, data: np.ndarray) -> tuple[float, float]:
    """Independent profile-likelihood interval: Brent on sqrt(2 dNLL) = 1 with scipy refits."""
    nll0 = scipy_profile(model, data, {})
    best = minimize(model, data, tolerance=1e-9)
    mu = float(best.values[0])

    def g(x: float) -> float:
        return math.sqrt(max(2.0 * (scipy_profile(model, data, {0: x}) - nll0), 0.0)) - 1.0

    sig = float(best.errors[0])
    lo = brentq(g, mu - 3 * sig, mu, xtol=1e-10)
    hi = brentq(g, mu, mu + 3 * sig, xtol=1e-10)
    return lo, hi


# --------------------------------------------------------------------------- impacts


@pytest.mark.parametrize(
    "others, mc_stat, data",
    [(False, False, None), (True, False, None), (True, True, None), (True, True, 2650.0)],
)
def test_signal_norm_impact_is_the_closed_form(others, mc_stat, data):
    """mu F_sig(alpha) is exactly degenerate, so with alpha fixed at alpha_hat +/- sigma,
    mu = mu_hat F(alpha_hat) / F(alpha_hat +/- sigma): 1/(1 +/- delta) - 1 at +/-1 prefit sigma."""
    res = fit_workspace(
        one_bin(100.0, 2500.0, others=others, mc_stat=mc_stat, data=data), limits=False
    )
    row = res.impacts.set_index("parameter").loc["sig"]
    mu_hat = res.mu_hat
    assert res.values[res.parameters.index("sig")] == pytest.approx(0.0, abs=1e-7)
    assert row["pre_up"] == pytest.approx(mu_hat * (1 / 1.05 - 1), abs=1e-6)
    assert row["pre_down"] == pytest.approx(mu_hat * (1 / 0.95 - 1), abs=1e-6)
    # post-fit: alpha at +/- its Hesse error (1: the data do not constrain it), F from code4
    model = HistFactoryModel(one_bin(100.0, 2500.0, others=others, mc_stat=mc_stat, data=data))
    k = model.names.index("sig")
    for sign, col in ((1, "post_up"), (-1, "post_down")):
        p = model.nominal_pars.copy()
        p[k] = sign * res.errors[k]
        ratio = model.expected_by_sample(p) / model.expected_by_sample(model.nominal_pars)
        factor = float(ratio[model.signal_rows][0, 0])
        assert row[col] == pytest.approx(mu_hat * (1 / factor - 1), abs=1e-6)
    assert res.errors[k] == pytest.approx(1.0, abs=1e-4)
    assert bool(row["valid"]) and row["n_minima"] == 1
    assert not [d for d in res.diagnostics if d["check"].startswith("impact")]


def test_signal_norm_impact_in_a_ten_bin_shape_fit(ten_bins):
    """Same degeneracy with shapes, MC statistics and a histosys on the signal (Asimov data)."""
    res = fit_workspace(build_workspace(ten_bins, SYSTS), breakdown=False, limits=False)
    row = res.impacts.set_index("parameter").loc["sig"]
    assert row["pre_up"] == pytest.approx(1 / 1.05 - 1, abs=1e-6)
    assert row["pre_down"] == pytest.approx(1 / 0.95 - 1, abs=1e-6)
    assert res.impacts["valid"].all()


# two bins, a histosys "det" that lowers both bins for either sign (an NLL with two valleys in
# det), MC statistics: the free fit from det = 0 ends in the higher valley, and fixing gamma_0
# one sigma down makes the valley at the other sign of det the lower one
TWO_VALLEY = spec_from(
    [
        {"name": "signal", "data": [14.0, 28.0], "modifiers": [MU]},
        {
            "name": "bkg",
            "data": [83.0, 165.0],
            "modifiers": [
                {
                    "name": "det",
                    "type": "histosys",
                    "data": {"hi_data": [66.0, 100.0], "lo_data": [75.0, 119.0]},
                },
                {"name": "staterror_SR", "type": "staterror", "data": [15.0, 15.0]},
            ],  # fmt: skip
        },
    ],
    [91.0, 129.0],
)


def _valley(model: HistFactoryModel, fixed: dict[int, float], lo: float, hi: float) -> float:
    """Independent reference: the NLL profiled with scipy, minimised over det in [lo, hi]."""
    from scipy.optimize import minimize_scalar

    def prof(det: float) -> float:
        return scipy_profile(model, model.observed, {**fixed, 1: det})

    r = minimize_scalar(prof, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    return float(r.fun)


def test_multistart_finds_the_lower_valley_of_the_free_and_a_conditional_fit():
    model = HistFactoryModel(TWO_VALLEY)
    data = model.observed
    assert model.names == ["mu", "det", "staterror_SR[0]", "staterror_SR[1]"]
    # the free fit: from the initial values it stays at det > 0, the global minimum is at det < 0
    plain = minimize(model, data, tolerance=1e-9)
    scout = minimize_multistart(model, data, starts=histosys_starts(model, [model.init]))
    neg, pos = _valley(model, {}, -2.5, 0.0), _valley(model, {}, 0.0, 2.5)
    assert plain.values[1] > 0 and plain.nll == pytest.approx(pos, abs=1e-6)
    assert scout.values[1] < 0 and scout.nll == pytest.approx(neg, abs=1e-6)
    assert neg < pos - 0.02 and scout.n_minima == 2
    best = minimize(model, data, init=scout.values, tolerance=1e-9)
    assert best.values[1] == pytest.approx(-0.7366, abs=1e-3)
    # the conditional fit with gamma_0 one prefit sigma down: the linear prediction stays at
    # det < 0, the lower valley is at det > 0
    g = 2
    value = float(best.values[g] - model.prefit_sigma[g])
    fixed = {g: value}
    single = minimize(
        model, data, init=conditional_starts(model, best, {g: value}, histosys_offsets=())[0], fixed=fixed, hesse=False,
        tolerance=1e-9, steps=best.errors,
    )  # fmt: skip
    multi = minimize_multistart(
        model, data, starts=conditional_starts(model, best, fixed), fixed=fixed, steps=best.errors
    )
    neg, pos = _valley(model, fixed, -2.5, 0.0), _valley(model, fixed, 0.0, 2.5)
    assert pos < neg - 0.05
    assert single.valid and single.values[1] < 0 and single.nll == pytest.approx(neg, abs=1e-6)
    assert multi.valid and multi.values[1] > 0 and multi.nll == pytest.approx(pos, abs=1e-6)
    assert multi.n_minima == 2 and multi.start > 0
    # the fit uses both multi-starts and says so
    res = fit_workspace(TWO_VALLEY, breakdown=False, limits=False)
    assert res.mu_hat == pytest.approx(best.values[0], abs=1e-6)
    row = res.impacts.set_index("parameter").loc["staterror_SR[0]"]
    assert row["pre_down"] == pytest.approx(multi.values[0] - res.mu_hat, abs=1e-5)
    assert row["n_minima"] == 2
    checks = {d["check"]: d for d in res.diagnostics}
    assert checks["fit_multiple_minima"]["n_minima"] == 2
    assert "staterror_SR[0]" in checks["impact_multiple_minima"]["parameters"]
    assert checks["impact_multiple_minima"]["n_moved"] >= 1


def test_both_conditional_fitters_take_the_lower_valley_over_their_starts():
    """A ConditionalFit returns the lowest valid minimum over its starts, whether iminuit
    (minimize.iminuit_conditional) or the batched fitter runs it: from the linear-prediction
    start alone the gamma_0-down fit of TWO_VALLEY stays at det < 0; with every start it finds
    the lower valley at det > 0, the scipy-profiled reference."""
    model = HistFactoryModel(TWO_VALLEY)
    data, aux = model.observed, model.aux_nominal
    scout = minimize_multistart(model, data, starts=histosys_starts(model, [model.init]))
    best = minimize(model, data, init=scout.values, tolerance=1e-9)
    g = 2
    fixed = {g: float(best.values[g] - model.prefit_sigma[g])}
    starts = conditional_starts(model, best, fixed)
    pos = _valley(model, fixed, 0.0, 2.5)
    for fitter in (iminuit_conditional(model, data, aux, tolerance=1e-9),
                   conditional_fitter(model, data, aux)):  # fmt: skip
        alone, every = fitter(starts[:1], fixed), fitter(starts, fixed)
        assert alone.values[1] < 0 and alone.nll > pos + 0.05
        assert every.valid and every.values[1] > 0 and every.nll == pytest.approx(pos, abs=1e-6)


# --------------------------------------------------------------------------- Z0


def _two_bin_templates(b_second: float, up_second: float = 0.0) -> dict:
    nom = np.array([[10.0, 5.0], [100.0, b_second]])
    up = nom.copy()
    up[1, 1] = up_second if up_second else b_second
    var = {
        "bkg_up": nom * np.array([[1.0], [1.04]]),
        "bkg_down": nom * np.array([[1.0], [0.96]]),
        "shape_up": np.where([[False, False], [False, True]], up, nom * 1.0),
        "shape_down": nom.copy(),
    }
    var["shape_up"][1, 0] *= 1.03
    var["shape_down"][1, 0] *= 0.97
    t = Templates(
        np.array([0.5, 0.8, 1.0]), ["signal", "background"], [True, False], nom, nom / 50.0, var
    )
    systs = [
        {"name": "bkg", "type": "norm", "delta": 0.04},
        {"name": "shape", "type": "scale", "delta": 0.03},
    ]
    return build_workspace(t, systs)


def test_a_signal_only_bin_gives_an_infinite_z0_and_a_json_inf():
    res = fit_workspace(_two_bin_templates(0.0), breakdown=False, impacts=False, limits=False)
    assert res.z0_expected == math.inf
    assert res.z0_expected_stat_only == math.inf
    assert res.z0_observed == math.inf  # the observed data are the Asimov data here
    assert any("Z0 expected = +inf" in n and "SR[1]" in n for n in res.notes)
    d = json.loads(json.dumps(fit_result_to_dict(res), allow_nan=False))
    assert d["z0_expected"] == "inf" and float(d["z0_expected"]) == math.inf
    assert d["cls_observed"] is None  # NaN stays null: distinguishable from inf


@pytest.mark.parametrize("b_second, up_second", [(1e-3, 0.0), (0.0, 0.5)])
def test_a_bin_with_any_background_gives_a_finite_z0(b_second, up_second):
    """Tiny background, or none at nominal but some in a histosys variation: finite, and the
    fit's Z0 is discovery_significance on the Asimov data."""
    spec = _two_bin_templates(b_second, up_second)
    res = fit_workspace(spec, breakdown=False, impacts=False, limits=False)
    model = HistFactoryModel(spec)
    assert model.background_free_bins().size == 0
    assert math.isfinite(res.z0_expected) and res.z0_expected > 3
    ref = discovery_significance(model, *model.asimov(), tolerance=1e-7, multistart=True)
    assert res.z0_expected == pytest.approx(ref, rel=1e-6)
    assert not any("+inf" in n for n in res.notes)


def test_infinite_z0_stat_only_closed_form():
    """Without systematics: Z0^2 = 2 sum_b [(s + b) ln(1 + s/b) - s], inf for b = 0."""
    s, b = [10.0, 5.0], [100.0, 2.0]
    spec = spec_from(
        [{"name": "signal", "data": s, "modifiers": [MU]}, {"name": "bkg", "data": b,
          "modifiers": []}], [x + y for x, y in zip(s, b, strict=True)],
    )  # fmt: skip
    model = HistFactoryModel(spec)
    z = discovery_significance(model, model.observed)
    closed = math.sqrt(
        2 * sum((x + y) * math.log(1 + x / y) - x for x, y in zip(s, b, strict=True))
    )
    assert z == pytest.approx(closed, rel=1e-6)
    spec["channels"][0]["samples"][1]["data"] = [100.0, 0.0]
    assert discovery_significance(HistFactoryModel(spec), np.array([110.0, 5.0])) == math.inf
    assert discovery_significance(HistFactoryModel(spec), np.array([110.0, 0.0])) < 10


# --------------------------------------------------------------------------- POI bounds


def test_an_interval_beyond_tight_bounds_widens_them():
    wide = fit_workspace(one_bin(100.0, 2500.0), impacts=False, limits=False)
    tight = fit_workspace(one_bin(100.0, 2500.0, mu_bounds=(0.5, 1.5)), impacts=False, limits=False)
    assert wide.poi_bounds == (-5.0, 10.0)
    # mu-hat = 1 and the interval [-0.23, 2.25]: the distance 0.5 doubled twice on each side
    assert tight.poi_bounds == pytest.approx((-1.0, 3.0))
    assert tight.interval_at_bound is None
    assert any("widened from [0.5, 1.5] to [-1, 3]" in n for n in tight.notes)
    assert tight.dmu_down == pytest.approx(wide.dmu_down, abs=1e-6)
    assert tight.dmu_up == pytest.approx(wide.dmu_up, abs=1e-6)
    for name, entry in wide.breakdown.items():
        assert tight.breakdown[name]["sym"] == pytest.approx(entry["sym"], rel=1e-4), name


def test_an_interval_at_the_bound_after_widening_is_flagged_and_breakdown_is_nan():
    res = fit_workspace(one_bin(5.0, 2500.0, mu_bounds=(0.5, 1.5)), impacts=False, limits=False)
    assert res.poi_bounds == pytest.approx((-3.0, 5.0))  # 3 doublings of 0.5 on each side
    assert res.interval_at_bound == "both"
    assert res.dmu_down == pytest.approx(4.0) and res.dmu_up == pytest.approx(4.0)
    for name, entry in res.breakdown.items():
        assert all(math.isnan(entry[k]) for k in ("down", "up", "sym")), name
    assert [d["bound"] for d in res.diagnostics if d["check"] == "interval_at_bound"] == ["both"]
    d = json.loads(json.dumps(fit_result_to_dict(res), allow_nan=False))
    assert d["interval_at_bound"] == "both" and d["breakdown"]["lumi"]["sym"] is None


def test_an_interval_beyond_the_default_bounds_is_found_and_matches_a_scipy_scan():
    """sigma(mu) ~ 10: the default [-5, 10] cuts both edges; the old code reported the bounds
    and a breakdown of zeros."""
    spec = one_bin(5.0, 2500.0)
    res = fit_workspace(spec, impacts=False, limits=False)
    assert res.interval_at_bound is None
    assert res.poi_bounds[0] < -5.0 and res.poi_bounds[1] > 10.0
    model = HistFactoryModel(spec)
    model.bounds[0] = res.poi_bounds
    lo, hi = scipy_interval(model, model.observed)
    assert res.mu_hat - res.dmu_down == pytest.approx(lo, abs=1e-5)
    assert res.mu_hat + res.dmu_up == pytest.approx(hi, abs=1e-5)
    for name in ("sig", "bkg", "lumi", "syst", "stat"):
        assert 0 < res.breakdown[name]["sym"] < res.breakdown["total"]["sym"], name


# --------------------------------------------------------------------------- Hesse cross-check


def test_hesse_error_is_the_curvature_and_a_non_parabolic_nll_is_flagged():
    """A fraction of an event: Minuit's own error of mu (bound transformation) was 65 % off the
    Fisher width; the reported error is sqrt(C_mumu) and equals it, MINOS does not."""
    spec = spec_from(
        [{"name": "signal", "data": [0.1], "modifiers": [
            MU, {"name": "sig", "type": "normsys", "data": {"hi": 1.5, "lo": 0.5}}]},
         {"name": "bkg", "data": [1e-4], "modifiers": []}], [0.1001], mu_bounds=(0.0, 10.0),
    )  # fmt: skip
    res = fit_workspace(spec, impacts=False, limits=False)
    model = HistFactoryModel(spec)
    fisher = fisher_uncertainty(model, pars=res.values)[0]
    assert fisher == pytest.approx(3.2063, abs=1e-3)
    assert res.dmu_hesse == pytest.approx(fisher, rel=1e-4)
    checks = {d["check"]: d for d in res.diagnostics}
    assert "hesse_vs_fisher" not in checks
    assert checks["hesse_not_parabolic"]["severity"] == "warning"
    assert checks["hesse_not_parabolic"]["reference"] == pytest.approx(res.dmu, rel=1e-9)


def test_hesse_check_is_quiet_on_a_gaussian_fit_and_fires_on_a_wrong_covariance():
    from dataclasses import replace

    from systpipe.stat.fit import _hesse_check, _Run

    spec = one_bin(1000.0, 10000.0)
    res = fit_workspace(spec, impacts=False, limits=False)
    assert not [d for d in res.diagnostics if d["check"].startswith("hesse")]
    model = HistFactoryModel(spec)
    run = _Run(model, model.observed, model.aux_nominal, 1, 1e-7)
    best = minimize(model, model.observed, tolerance=1e-7)
    _hesse_check(run, best, (res.dmu_down, res.dmu_up, (False, False)))
    assert run.diagnostics == []
    bad = replace(best, errors=best.errors * 1.2)  # a HESSE 20 % off the exact curvature
    _hesse_check(run, bad, (res.dmu_down, res.dmu_up, (False, False)))
    assert {d["check"] for d in run.diagnostics} == {"hesse_vs_fisher", "hesse_not_parabolic"}


# --------------------------------------------------------------------------- interval precision


def test_interval_edges_match_an_independent_profile_scan(ten_bins):
    """MINOS alone is good to ~1e-4 (its crossing tolerance); the refined edges to ~1e-6."""
    t = ten_bins
    four = Templates(
        t.bin_edges[[0, 3, 6, 8, 10]],
        t.samples,
        t.is_signal,
        np.add.reduceat(t.nominal, [0, 3, 6, 8], axis=1),
        np.add.reduceat(t.sumw2, [0, 3, 6, 8], axis=1),
        {k: np.add.reduceat(v, [0, 3, 6, 8], axis=1) for k, v in t.variations.items()},
    )
    data = np.round(four.nominal.sum(axis=0) + 0.3 * four.nominal[0] + [3, -2, 1, -4])
    spec = build_workspace(four, SYSTS, data=data)
    res = fit_workspace(spec, breakdown=False, impacts=False, limits=False)
    model = HistFactoryModel(spec)
    lo, hi = scipy_interval(model, model.observed)
    assert res.mu_hat - res.dmu_down == pytest.approx(lo, abs=1e-6)
    assert res.mu_hat + res.dmu_up == pytest.approx(hi, abs=1e-6)


@pytest.mark.parametrize("minos", [True, False], ids=["minos_refined", "root_finding"])
def test_batched_conditional_fits_give_the_iminuit_interval_and_z0(ten_bins, minos):
    """The fit's conditional fits (fit_batched.conditional_fitter) against the iminuit ones at a
    tight tolerance: the same edges (MINOS-refined, or by root finding when MINOS is not run) and
    the same Z0 (multi-start at mu = 0), on data 30 % above the signal expectation."""
    data = np.round(ten_bins.nominal.sum(axis=0) + 0.3 * ten_bins.nominal[0])
    model = HistFactoryModel(build_workspace(ten_bins, SYSTS, data=data))
    aux = model.aux_nominal
    best = minimize(model, data, aux, minos=minos, tolerance=1e-7)
    assert best.valid and best.minos_valid is minos
    fast = conditional_fitter(model, data, aux)
    ref = poi_interval(model, data, aux, best, tolerance=1e-9, strategy=2)
    new = poi_interval(model, data, aux, best, conditional=fast)
    assert new[0] == pytest.approx(ref[0], abs=1e-6) and new[1] == pytest.approx(ref[1], abs=1e-6)
    assert new[2] == ref[2] == (False, False)
    z_ref = discovery_significance(model, data, aux, free_fit=best, tolerance=1e-9, multistart=True)
    z_new = discovery_significance(model, data, aux, free_fit=best, multistart=True,
                                   conditional=fast)  # fmt: skip
    assert z_ref > 1.0 and z_new == pytest.approx(z_ref, abs=1e-6)


def test_the_batched_conditional_fit_is_the_tight_minimum_or_says_it_failed(ten_bins, monkeypatch):
    """At a fixed mu the batched conditional fit reaches the tight iminuit minimum; when no start
    converges (Newton stopped after one step, iminuit not allowed) it is invalid with its reason,
    so poi_interval keeps the MINOS edge instead of a wrong one."""
    import systpipe.stat.fit_batched as fb

    model = HistFactoryModel(build_workspace(ten_bins, SYSTS))
    data, aux, ip = model.observed, model.aux_nominal, model.poi_index
    reference = minimize(model, data, aux, fixed={ip: 1.5}, hesse=False, tolerance=1e-9)
    m = conditional_fitter(model, data, aux)([model.init], {ip: 1.5})
    assert m.valid and m.values[ip] == 1.5
    assert m.nll <= reference.nll + 1e-9 and m.nll == pytest.approx(reference.nll, abs=1e-8)
    stalled = fb.fit_batch
    monkeypatch.setattr(
        fb, "fit_batch", lambda *a, **k: stalled(*a, **k, max_iter=1, fallback=False)
    )
    bad = conditional_fitter(model, data, aux)([model.init, model.init], {ip: 1.5})
    assert not bad.valid and bad.message == "no start converged (Newton, then iminuit)"
    assert bad.n_fits == 2


# --------------------------------------------------------------------------- failures are recorded


def _failing(monkeypatch, *, free_invalid: bool = False, minos_invalid: bool = False) -> None:
    """Make the fit's own minimisations (not the scouts) report failures."""
    from dataclasses import replace

    import systpipe.stat.fit as fit_module

    real = fit_module.minimize

    def fake(*args, **kwargs):
        m = real(*args, **kwargs)
        if free_invalid and not kwargs.get("fixed"):
            return replace(m, valid=False, message="EDM 0.3 above the goal 1e-10")
        if minos_invalid and kwargs.get("minos"):
            return replace(m, minos_valid=False, minos_message="upper edge invalid (call limit)")
        return m

    monkeypatch.setattr(fit_module, "minimize", fake)


def test_a_minos_failure_is_recorded_and_root_finding_gives_the_same_interval(monkeypatch):
    spec = one_bin(100.0, 2500.0, mc_stat=True, data=2650.0)
    ref = fit_workspace(spec, breakdown=False, impacts=False, limits=False)
    _failing(monkeypatch, minos_invalid=True)
    res = fit_workspace(spec, breakdown=False, impacts=False, limits=False)
    assert not res.minos_valid
    diag = {d.get("group"): d for d in res.diagnostics if d["check"] == "minos_failed"}
    # the free fit (the stat-only fit is the batched fitter's, which has no MINOS)
    assert set(diag) == {None}
    assert diag[None]["severity"] == "warning"
    assert "upper edge invalid (call limit)" in diag[None]["message"]
    assert res.dmu_down == pytest.approx(ref.dmu_down, abs=1e-5)
    assert res.dmu_up == pytest.approx(ref.dmu_up, abs=1e-5)


def test_a_failed_main_fit_is_recorded_with_its_reason_and_gives_no_interval(monkeypatch):
    _failing(monkeypatch, free_invalid=True)
    res = fit_workspace(one_bin(100.0, 2500.0), breakdown=False, impacts=False, limits=False)
    assert not res.valid
    diag = [d for d in res.diagnostics if d["check"] == "fit_failed"]
    assert len(diag) == 1 and diag[0]["severity"] == "error"
    assert "EDM 0.3 above the goal 1e-10" in diag[0]["message"]
    assert math.isnan(res.dmu_down) and math.isnan(res.breakdown["total"]["sym"])
