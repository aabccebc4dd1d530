"""Tests of systpipe.stat.batched and batched_intervals: analytic derivatives against finite
differences of the model's NLL, batched fits and intervals against the iminuit path."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import pytest

from conftest import simple_spec
from systpipe.errors import ModelError
from systpipe.stat import methods, toys
from systpipe.stat.batched import batched_nll_grad_hess, fit_batch
from systpipe.stat.batched_intervals import (
    FLAG_FALLBACK,
    FLAG_HI_BOUND,
    FLAG_LO_BOUND,
    profile_intervals_batch,
)
from systpipe.stat.intervals import profile_interval
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.minimize import TIGHT_TOLERANCE, minimize
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates

#: methods.profile: MIGRAD at tolerance 1e-5 (strategy 0), Newton-polished, MINOS edges refined
#: by conditional fits: mu-hat ~1e-5 and the edges ~1e-6 off the true minimum (bench_toys). The
#: batched path is checked to 1e-6 against a tight iminuit reference and to this against it.
PROFILE_PRECISION = 1e-4


def ten_bin_spec() -> dict:
    """10 bins, 3 normsys (lumi, sig, bkg), 3 histosys (det, res, jes), staterror."""
    x = np.linspace(0.05, 0.95, 10)
    nom = np.vstack([40.0 * x**2 + 1.0, 300.0 * (1 - x) ** 2 + 5.0, 150.0 * (1 - x) + 3.0])
    tilt = np.linspace(-1.0, 1.0, 10)
    var = {}
    for name, rel in (("lumi", [0.02] * 3), ("sig", [0.05, 0, 0]), ("bkg", [0, 0.04, 0.06])):
        r = np.array(rel)[:, None]
        var[f"{name}_up"], var[f"{name}_down"] = nom * (1 + r), nom * (1 - 0.8 * r)
    var["det_up"], var["det_down"] = nom * (1 + 0.05 * tilt), nom * (1 - 0.04 * tilt)
    var["res_up"], var["res_down"] = nom * (1 + 0.03 * tilt**2), nom * (1 - 0.03 * tilt**2)
    wave = np.sin(3 * tilt)
    var["jes_up"], var["jes_down"] = nom * (1 + 0.04 * wave), nom * (1 - 0.03 * wave)
    t = Templates(
        np.linspace(0.5, 1.0, 11), ["H", "WW", "tt"], [True, False, False], nom, nom / 15.0, var
    )
    systs = [{"name": n, "type": "norm", "delta": 0.0} for n in ("lumi", "sig", "bkg")]
    systs += [{"name": n, "type": "scale", "delta": 0.0} for n in ("det", "res", "jes")]
    return build_workspace(t, systs, mc_stat=True)


def mixed_spec() -> dict:
    """Every structure the derivatives handle: two channels, two normfactors on one sample, an
    alpha that is both normsys and histosys, rows with and without staterror."""

    def ns(name: str, hi: float, lo: float) -> dict:
        return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}

    def hs(name: str, hi: list[float], lo: list[float]) -> dict:
        return {"name": name, "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}

    mu = {"name": "mu", "type": "normfactor", "data": None}
    k = {"name": "k", "type": "normfactor", "data": None}
    sr = {
        "name": "SR",
        "samples": [
            {"name": "sig", "data": [5.0, 9.0, 14.0, 8.0], "modifiers": [
                mu, ns("lumi", 1.02, 0.97),
                {"name": "staterror_SR", "type": "staterror", "data": [0.5, 0.6, 0.9, 0.7]}]},
            {"name": "bkg", "data": [80.0, 50.0, 30.0, 12.0], "modifiers": [
                k, ns("shape", 1.06, 0.95), hs("shape", [84, 51, 29, 11], [77, 49, 31, 12.5]),
                {"name": "staterror_SR", "type": "staterror", "data": [3.0, 2.0, 2.0, 1.0]}]},
            {"name": "mixed", "data": [4.0, 6.0, 5.0, 3.0], "modifiers": [
                mu, k, ns("lumi", 1.02, 0.97), hs("res", [4.4, 6.1, 4.8, 2.8], [3.7, 5.8, 5.3, 3.1])]},
        ],
    }  # fmt: skip
    cr = {
        "name": "CR",
        "samples": [
            {"name": "bkg", "data": [300.0, 150.0], "modifiers": [
                k, ns("shape", 1.03, 0.96),
                {"name": "staterror_CR", "type": "staterror", "data": [8.0, 6.0]}]},
        ],
    }  # fmt: skip
    meas = {
        "name": "m",
        "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[-3, 8]]}]},
    }
    return {"channels": [sr, cr], "measurements": [meas], "version": "1.0.0"}


SPECS = {"simple": simple_spec, "ten_bin": ten_bin_spec, "mixed": mixed_spec}


def _test_points(model: HistFactoryModel, rng: np.random.Generator, n: int) -> np.ndarray:
    """Parameters with alphas both inside |alpha| < 0.8 and beyond 1.2 (away from the kinks
    of code4/code4p at |alpha| = 1, where the third derivative jumps), lambda > 0."""
    pars = np.tile(model.nominal_pars, (n, 1))
    a = rng.uniform(0.0, 0.8, (n, model.alpha_index.size))
    a[1::2] += 1.2 + rng.uniform(0.0, 0.6, a[1::2].shape)
    pars[:, model.alpha_index] = a * rng.choice([-1.0, 1.0], a.shape)
    pars[:, model.gamma_index] = 1.0 + rng.normal(0.0, 0.05, (n, model.gamma_index.size))
    pars[:, model.normfactor_index] = rng.uniform(0.5, 2.0, (n, model.normfactor_index.size))
    assert all(model.expected(p).min() > 0 for p in pars)
    return pars


def _fd_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central differences (f(x + h_i e_i) - f(x - h_i e_i)) / 2 h_i."""
    eye = np.diag(h)
    return np.array([(f(x + e) - f(x - e)) / (2 * hi) for e, hi in zip(eye, h, strict=True)])


def _fd_hessian(f: Callable[[np.ndarray], float], x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Second differences [f(++) - f(+-) - f(-+) + f(--)] / (4 h_i h_j) of f itself."""
    eye = np.diag(h)
    out = np.empty((x.size, x.size))
    for i in range(x.size):
        for j in range(i, x.size):
            ei, ej = eye[i], eye[j]
            v = f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            out[i, j] = out[j, i] = v / (4 * h[i] * h[j])
    return out


@pytest.mark.parametrize("name", sorted(SPECS))
def test_nll_gradient_hessian_against_finite_differences(name):
    model = HistFactoryModel(SPECS[name]())
    rng = np.random.default_rng(7)
    pars = _test_points(model, rng, 4)
    data = rng.poisson(model.expected(model.nominal_pars), (4, model.n_bins)).astype(float)
    aux = model.aux_nominal + 0.3 * model.constraint_sigma * rng.standard_normal(
        (4, model.aux_nominal.size)
    )
    nll, grad, hess = batched_nll_grad_hess(model, pars, data, aux)
    assert nll.shape == (4,) and grad.shape == (4, model.n_pars)
    assert hess.shape == (4, model.n_pars, model.n_pars)
    for t in range(4):
        x = pars[t]
        f = functools.partial(model.nll, data=data[t], aux=aux[t])
        assert nll[t] == pytest.approx(f(x), rel=1e-10)
        step = 1e-3 * np.maximum(1.0, np.abs(x))
        g_fd = (4 * _fd_gradient(f, x, 0.5 * step) - _fd_gradient(f, x, step)) / 3  # Richardson
        assert np.max(np.abs(grad[t] - g_fd)) <= 1e-6 * np.max(np.abs(g_fd))
        h_fd = (4 * _fd_hessian(f, x, 5 * step) - _fd_hessian(f, x, 10 * step)) / 3
        assert np.max(np.abs(hess[t] - h_fd)) <= 1e-6 * np.max(np.abs(h_fd))
        np.testing.assert_allclose(hess[t], hess[t].T, rtol=0, atol=1e-9 * np.abs(hess[t]).max())


def _throw(setup: toys.ToySetup, mode: str, n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    pairs = [
        toys.throw_toy(setup, toys.toy_rng(seed, mode, i), mode=mode, mu_true=1.0) for i in range(n)
    ]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def test_fit_batch_free_and_conditional_fits_match_tight_iminuit():
    setup = toys.prepare(ten_bin_spec())
    model = setup.model
    data, aux = _throw(setup, "challenge", 40)
    free = fit_batch(model, data, aux)
    assert free.converged.all() and free.n_fallback == 0
    assert free.n_iter.max() < 15
    mu_fix = 0.6 + 0.02 * np.arange(40)  # one conditional value per toy
    cond = fit_batch(model, data, aux, fixed={0: mu_fix})
    assert cond.converged.all()
    np.testing.assert_array_equal(cond.values[:, 0], mu_fix)
    for t in range(40):
        ref = minimize(model, data[t], aux[t], hesse=False, tolerance=TIGHT_TOLERANCE)
        assert free.values[t, 0] == pytest.approx(ref.values[0], abs=1e-5)
        assert free.nll[t] <= ref.nll + 1e-9  # never above iminuit's minimum
        assert free.nll[t] == pytest.approx(ref.nll, abs=1e-8)
        c = minimize(
            model, data[t], aux[t], fixed={0: mu_fix[t]}, hesse=False, tolerance=TIGHT_TOLERANCE
        )
        assert cond.nll[t] <= c.nll + 1e-9
        assert cond.nll[t] == pytest.approx(c.nll, abs=1e-8)
    # Hesse errors of the free parameters: sqrt of the inverse Hessian's diagonal
    cov = np.linalg.inv(free.hess[0])
    assert free.errors is not None
    np.testing.assert_allclose(free.errors[0], np.sqrt(np.diag(cov)), rtol=1e-10)


def test_non_converged_toys_fall_back_to_iminuit_and_are_counted():
    setup = toys.prepare(simple_spec())
    data, aux = _throw(setup, "frequentist", 6)
    lazy = fit_batch(setup.model, data, aux, max_iter=1)
    assert lazy.n_fallback == 6 and lazy.fallback.all() and lazy.converged.all()
    good = fit_batch(setup.model, data, aux)
    assert good.n_fallback == 0
    np.testing.assert_allclose(lazy.values[:, 0], good.values[:, 0], atol=2e-5)
    stuck = fit_batch(setup.model, data, aux, max_iter=1, fallback=False)
    assert not stuck.converged.any() and stuck.n_fallback == 0
    # intervals: Newton held to a zero tolerance (no decrement is below 0; at 1e-300 a fit
    # whose decrement rounds to exactly 0 still passes) -> every single fit refitted by iminuit
    r = profile_intervals_batch(setup.model, data, aux, tol=0.0, histosys_starts=())
    assert np.all(r.n_refits == r.n_points + 1) and r.n_fallback == 0
    ok = profile_intervals_batch(setup.model, data, aux, histosys_starts=())
    assert ok.n_refits.sum() == 0
    np.testing.assert_allclose(
        np.c_[r.mu_hat, r.lo, r.hi], np.c_[ok.mu_hat, ok.lo, ok.hi], atol=2e-5
    )
    # intervals: a root finder given one step fails everywhere -> every toy by methods.profile
    r = profile_intervals_batch(setup.model, data, aux, max_iter=1)
    assert r.n_fallback == 6 and r.n_failed == 0
    assert np.all(r.flags & FLAG_FALLBACK)
    for t in range(6):
        ref = methods.profile(setup, data[t], aux[t])
        assert (r.mu_hat[t], r.lo[t], r.hi[t]) == pytest.approx(
            (ref.mu_hat, ref.lo, ref.hi), abs=1e-12
        )


def _counting_model(upper: float) -> HistFactoryModel:
    spec = {
        "channels": [{"name": "SR", "samples": [
            {"name": "s", "data": [5.0, 10.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "b", "data": [50.0, 20.0], "modifiers": [
                {"name": "bn", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, upper]]}]}}],
    }  # fmt: skip
    return HistFactoryModel(spec)


def test_edges_at_the_poi_bounds_are_flagged():
    model = _counting_model(upper=2.5)
    data = np.array([[40.0, 12.0], [50.0, 21.0], [55.0, 30.0], [62.0, 40.0], [70.0, 50.0]])
    r = profile_intervals_batch(model, data)
    # 0: mu-hat on the lower bound; 1: lower edge beyond it; 2: inside; 3: upper edge beyond
    # the bound 2.5; 4: mu-hat on the upper bound
    assert r.mu_hat[0] == 0.0 and r.lo[0] == 0.0
    assert r.lo[1] == 0.0 and r.mu_hat[1] > 0.05
    assert r.hi[3] == 2.5 and r.mu_hat[4] == 2.5 and r.hi[4] == 2.5
    lo_flag, hi_flag = FLAG_LO_BOUND, FLAG_HI_BOUND
    assert r.flags.tolist() == [lo_flag, lo_flag, 0, hi_flag, hi_flag]
    for t in range(4):
        best = minimize(model, data[t], None, tolerance=TIGHT_TOLERANCE)
        ref = profile_interval(
            model, data[t], None, best=best, xtol=1e-9, tolerance=TIGHT_TOLERANCE
        )
        assert (r.mu_hat[t], r.lo[t], r.hi[t]) == pytest.approx(ref, abs=1e-6)


@pytest.fixture(scope="module", params=["simple", "ten_bin"])
def agreement(request):
    """500 toys per mode: batched intervals, methods.profile (the first 150 toys for the simple
    model, 40 for the 10-bin one: the polished path costs 0.1-0.3 s per toy) and a tight
    reference on 10."""
    setup = toys.prepare(SPECS[request.param]())
    n_ref = 150 if request.param == "simple" else 40
    out = {}
    for mode in ("frequentist", "challenge"):
        data, aux = _throw(setup, mode, 500, seed=11)
        batched = profile_intervals_batch(setup.model, data, aux)
        ref = np.array([
            [r.mu_hat, r.lo, r.hi]
            for r in (methods.profile(setup, data[t], aux[t]) for t in range(n_ref))
        ])  # fmt: skip
        tight = []
        for t in range(10):
            best = minimize(setup.model, data[t], aux[t], tolerance=TIGHT_TOLERANCE)
            tight.append(profile_interval(setup.model, data[t], aux[t], best=best, xtol=1e-9,
                                          tolerance=TIGHT_TOLERANCE))  # fmt: skip
        out[mode] = (setup, data, aux, batched, ref, np.array(tight))
    return out


@pytest.mark.parametrize("mode", ["frequentist", "challenge"])
def test_batched_intervals_agree_with_the_iminuit_path(agreement, mode):
    setup, data, aux, r, ref, tight = agreement[mode]
    b = np.stack([r.mu_hat, r.lo, r.hi], axis=1)
    assert np.isfinite(b).all() and r.n_failed == 0
    assert r.n_fallback == 0  # none needed on these models; the fallback has its own test
    # against the tight iminuit reference (Minuit tolerance 1e-7, Brent to 1e-9 sigma)
    assert np.abs(b[: len(tight)] - tight).max() < 1e-6
    # against methods.profile: within its own precision, and mostly far better
    diff = np.abs(b[: len(ref)] - ref)
    assert diff.max() < PROFILE_PRECISION
    assert np.median(diff, axis=0).max() < 1e-4
    # the same covered / not-covered decision for mu_true = 1; where methods.profile's edge is
    # within its own precision of 1, the decision is checked against a tight refit instead
    covered_b = (b[: len(ref), 1] <= 1.0) & (1.0 <= b[: len(ref), 2])
    covered_r = (ref[:, 1] <= 1.0) & (1.0 <= ref[:, 2])
    close = np.min(np.abs(ref[:, 1:] - 1.0), axis=1) < PROFILE_PRECISION
    np.testing.assert_array_equal(covered_b[~close], covered_r[~close])
    for t in np.flatnonzero(close):
        best = minimize(setup.model, data[t], aux[t], tolerance=TIGHT_TOLERANCE)
        _, lo, hi = profile_interval(setup.model, data[t], aux[t], best=best, xtol=1e-9,
                                     tolerance=TIGHT_TOLERANCE)  # fmt: skip
        assert (r.lo[t], r.hi[t]) == pytest.approx((lo, hi), abs=1e-6)
        assert covered_b[t] == (lo <= 1.0 <= hi)
    # mu-hat of fit_batch is the interval's mu-hat; the coverage is plausible for 500 toys
    assert fit_batch(setup.model, data, aux).values[:, 0] == pytest.approx(r.mu_hat, abs=1e-12)
    coverage = np.mean((r.lo <= 1.0) & (1.0 <= r.hi))
    assert abs(coverage - 0.6827) < 4 * math.sqrt(0.6827 * 0.3173 / 500)


def bimodal_spec() -> dict:
    """A histosys whose up and down templates move the background the same way: the NLL in its
    alpha has two valleys, and a single start often ends in the higher one."""
    bkg = np.array([200.0, 150.0, 100.0, 80.0, 60.0, 40.0])
    wiggle = np.array([1, -1, 1, -1, 1, -1])
    shape = {
        "hi_data": (bkg * (1 + 0.08 * wiggle)).tolist(),
        "lo_data": (bkg * (1 + 0.06 * wiggle)).tolist(),
    }
    return {
        "channels": [{"name": "SR", "samples": [
            {"name": "s", "data": [5.0, 10.0, 20.0, 30.0, 20.0, 8.0],
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "b", "data": bkg.tolist(), "modifiers": [
                {"name": "shape", "type": "histosys", "data": shape},
                {"name": "norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[-5, 10]]}]}}],
    }  # fmt: skip


def test_histosys_starts_find_the_lower_valley():
    setup = toys.prepare(bimodal_spec())
    model = setup.model
    data, aux = _throw(setup, "frequentist", 300, seed=5)
    single = profile_intervals_batch(model, data, aux, histosys_starts=())
    multi = profile_intervals_batch(model, data, aux)
    assert multi.n_fallback == single.n_fallback == 0
    assert np.all(multi.nll_min <= single.nll_min + 1e-9)
    improved = np.flatnonzero(multi.nll_min < single.nll_min - 1e-6)
    assert improved.size >= 5  # 11 of 300 at this seed
    for t in range(300):  # never above the iminuit path's minimum
        ref = minimize(model, data[t], aux[t], hesse=False, tolerance=TIGHT_TOLERANCE)
        assert multi.nll_min[t] <= ref.nll + 1e-8
    for t in improved[:4]:  # the interval of the lower valley, by iminuit started there
        init = np.array([multi.mu_hat[t], 0.0, 0.0])
        best = None
        for a in (-1.0, -0.5, 0.5, 1.0):
            init[1:] = (a, 0.0) if model.names[1] == "shape" else (0.0, a)
            m = minimize(model, data[t], aux[t], init=init, tolerance=TIGHT_TOLERANCE)
            best = m if best is None or m.nll < best.nll else best
        assert best is not None and best.nll == pytest.approx(multi.nll_min[t], abs=1e-7)
        ref = profile_interval(
            model, data[t], aux[t], best=best, xtol=1e-9, tolerance=TIGHT_TOLERANCE
        )
        assert (multi.mu_hat[t], multi.lo[t], multi.hi[t]) == pytest.approx(ref, abs=1e-6)


def test_bad_inputs_name_the_problem():
    model = HistFactoryModel(simple_spec())
    good = np.tile(model.expected(model.nominal_pars), (2, 1))
    with pytest.raises(ModelError, match=r"data must have shape \(n_toys, 3\)"):
        fit_batch(model, np.ones((2, 4)))
    with pytest.raises(ModelError, match="aux must have shape"):
        fit_batch(model, good, np.zeros((3, model.constrained.size)))
    with pytest.raises(ModelError, match="fixed parameter index 9"):
        fit_batch(model, good, fixed={9: 1.0})
    with pytest.raises(ModelError, match="level must be positive"):
        profile_intervals_batch(model, good, level=0.0)
