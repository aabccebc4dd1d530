"""Tests of the covariance-matrix chi2 against notebook 001's printed numbers (docs/notebooks.md) and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from systpipe.errors import ModelError
from systpipe.stat.chi2 import (
    breakdown,
    chi2,
    chi2_batch,
    conditional_count_moments,
    conditional_prediction,
    counting_shifts,
    covariance,
    fit_mu,
    partially_correlated_shifts,
    toy_conditional_moments,
)

# Notebook 001's two channels in the order (electron, muon); one counting bin each.
E_EXP, MU_EXP = 100.0, 10000.0


def notebook_cov(
    e_exp=E_EXP, mu_exp=MU_EXP, *, xsec=0.0, xsec_corr=1.0, mu_reco=0.0, e_reco=0.0, stat=True
):
    """Notebook 001's mcov_total / mcov_sysonly expressed with systpipe's general functions."""
    expected = [e_exp, mu_exp]
    shifts = counting_shifts(
        expected,
        {"xsec": [xsec, xsec], "reco": [e_reco, mu_reco]},
        {"xsec": xsec_corr, "reco": 0.0},
    )
    return covariance(expected if stat else [0.0, 0.0], shifts)


# --------------------------------------------------------------------------- notebook 001 numbers


def test_cell5_stat_only_covariance():
    np.testing.assert_array_equal(notebook_cov(), [[100.0, 0.0], [0.0, 10000.0]])


@pytest.mark.parametrize(
    ("n_e", "n_mu", "printed"), [(100, 10000, 0.0), (110, 10000, 1.0), (110, 10100, 2.0)]
)
def test_cell6_chi2_without_systematics(n_e, n_mu, printed):
    value = chi2([n_e, n_mu], [E_EXP, MU_EXP], notebook_cov())
    assert value == pytest.approx(printed, abs=5e-7)


def test_cell8_covariance_with_correlated_xsec():
    # 10 % fully correlated cross-section error on (100, 10,000), stat variance = the counts.
    np.testing.assert_allclose(
        notebook_cov(xsec=0.1), [[200.0, 1.0e4], [1.0e4, 1.01e6]], rtol=1e-12
    )


@pytest.mark.parametrize(("xsec", "printed"), [(0.1, 3.960784), (0.5, 0.159937)])
def test_cell12_chi2_at_80_8000(xsec, printed):
    assert chi2([80.0, 8000.0], [E_EXP, MU_EXP], notebook_cov(xsec=xsec)) == pytest.approx(
        printed, abs=5e-7
    )


def test_cell13_covariances_and_inverses():
    cov10, cov50 = notebook_cov(xsec=0.1), notebook_cov(xsec=0.5)
    np.testing.assert_allclose(cov50, [[2.6e3, 2.5e5], [2.5e5, 2.501e7]], rtol=1e-12)
    printed_inv10 = [[9.90196078e-03, -9.80392157e-05], [-9.80392157e-05, 1.96078431e-06]]
    printed_inv50 = [[9.90102930e-03, -9.89707047e-05], [-9.89707047e-05, 1.02929533e-06]]
    # Printed with 9 significant digits.
    np.testing.assert_allclose(np.linalg.solve(cov10, np.eye(2)), printed_inv10, rtol=6e-9)
    np.testing.assert_allclose(np.linalg.solve(cov50, np.eye(2)), printed_inv50, rtol=6e-9)


def test_cell15_covariance_with_muon_reco():
    np.testing.assert_allclose(
        notebook_cov(xsec=0.1, mu_reco=0.1), [[200.0, 1.0e4], [1.0e4, 2.01e6]], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("mu_reco", "printed_min", "exact_min"), [(0.0, 90.0, 90.0990099), (0.1, 95.0, 95.0248756)]
)
def test_cell17_chi2_minimum_moves_with_muon_constraint(mu_reco, printed_min, exact_min):
    cov = notebook_cov(xsec=0.1, mu_reco=mu_reco)
    grid = np.arange(50, 150, 1.0)
    obs = np.column_stack([grid, np.full_like(grid, 9000.0)])
    values = chi2_batch(obs, [E_EXP, MU_EXP], cov)
    assert grid[np.argmin(values)] == printed_min
    # The continuous minimum is the constrained (Gaussian-conditional) prediction.
    mean, var = conditional_prediction([E_EXP, MU_EXP], cov, [0.0, 9000.0], [False, True])
    assert mean[0] == pytest.approx(exact_min, abs=1e-6)
    assert mean[0] == pytest.approx(100.0 - 1e4 * 1000.0 / (1.0e6 + 1e4 + mu_reco**2 * 1e8))
    assert var[0, 0] == pytest.approx(200.0 - 1e8 / cov[1, 1])
    # chi2 along n_e is a parabola of curvature 1/var around that minimum.
    c_min = chi2([mean[0], 9000.0], [E_EXP, MU_EXP], cov)
    c_one = chi2([mean[0] + math.sqrt(var[0, 0]), 9000.0], [E_EXP, MU_EXP], cov)
    assert c_one - c_min == pytest.approx(1.0, rel=1e-9)


def test_cell21_systematics_only_covariances():
    orig = notebook_cov(xsec=0.1, mu_reco=0.1, stat=False)
    tuned = notebook_cov(90.0, 9000.0, xsec=0.1, mu_reco=0.1, stat=False)
    np.testing.assert_allclose(orig, [[1.0e2, 1.0e4], [1.0e4, 2.0e6]], rtol=1e-12)
    np.testing.assert_allclose(tuned, [[81.0, 8.1e3], [8.1e3, 1.62e6]], rtol=1e-12)


def _notebook_shifts(e_exp, mu_exp):
    return counting_shifts([e_exp, mu_exp], {"xsec": [0.1, 0.1], "reco": [0.0, 0.1]}, {"reco": 0.0})


@pytest.mark.parametrize(
    ("e_exp", "mu_exp", "printed_mean", "printed_var"),
    [(100.0, 10000.0, 95.050052, 145.020530), (90.0, 9000.0, 90.025183, 130.950758)],
)
def test_cell26_conditional_moments_match_notebook_toys(e_exp, mu_exp, printed_mean, printed_var):
    # Notebook: 1e8 toys, query 'mu_obs > 8990 and mu_obs < 9010' -> integer window [8991, 9009].
    res = conditional_count_moments(
        [e_exp, mu_exp], _notebook_shifts(e_exp, mu_exp), index=1, window=(8991, 9009)
    )
    n_sel = res.probability * 1e8
    assert 2e5 < n_sel < 1e6
    se_mean = math.sqrt(printed_var / n_sel)
    se_var = printed_var * math.sqrt(2.0 / (n_sel - 1))
    assert abs(res.mean[0] - printed_mean) < 3 * se_mean
    assert abs(res.cov[0, 0] - printed_var) < 3 * se_var
    # The naive Gaussian conditioning gets the mean but misses the Poisson variance change.
    v_tot = covariance([e_exp, mu_exp], _notebook_shifts(e_exp, mu_exp))
    g_mean, g_var = conditional_prediction([e_exp, mu_exp], v_tot, [0, 9000.0], [False, True])
    assert abs(g_mean[0] - res.mean[0]) < 0.1
    # Given fewer muons the electron Poisson variance is E[lambda_e] (~95), not e_exp (100).
    assert g_var[0, 0] - res.cov[0, 0] == pytest.approx(e_exp - res.mean[0], abs=0.05)


def test_window_probability_is_normalised():
    shifts = _notebook_shifts(100.0, 10000.0)
    full = conditional_count_moments([100.0, 1e4], shifts, index=1, window=(0, 10**6))
    assert full.probability == pytest.approx(1.0, abs=1e-6)
    # Unconditional: mean = expectation, variance = Poisson + systematic.
    assert full.mean[0] == pytest.approx(100.0, abs=1e-6)
    assert full.cov[0, 0] == pytest.approx(100.0 + 100.0, rel=1e-6)


def test_toys_in_chunks_agree_with_exact_moments():
    shifts = _notebook_shifts(100.0, 10000.0)
    exact = conditional_count_moments([100.0, 1e4], shifts, index=1, window=(8900, 9100))
    toys = toy_conditional_moments(
        [100.0, 1e4],
        shifts,
        index=1,
        window=(8900, 9100),
        n_toys=1_000_000,
        seed=7,
        chunk_size=250_000,
    )
    n = toys.n_selected
    assert abs(toys.probability - exact.probability) < 4 * math.sqrt(exact.probability / 1e6)
    assert abs(toys.mean[0] - exact.mean[0]) < 4 * math.sqrt(exact.cov[0, 0] / n)
    assert abs(toys.cov[0, 0] - exact.cov[0, 0]) < 4 * exact.cov[0, 0] * math.sqrt(2.0 / n)
    again = toy_conditional_moments(
        [100.0, 1e4],
        shifts,
        index=1,
        window=(8900, 9100),
        n_toys=1_000_000,
        seed=7,
        chunk_size=250_000,
    )
    assert np.array_equal(again.mean, toys.mean) and np.array_equal(again.cov, toys.cov)
    assert again.n_selected == toys.n_selected


def test_partial_correlation_leaves_unconstrained_electron_error():
    # Notebook cell 14: with rho < 1 the muon channel only partly constrains the electrons.
    variances = []
    for rho in (1.0, 0.99, 0.9, 0.5):
        cov = notebook_cov(xsec=0.5, xsec_corr=rho)
        _, var = conditional_prediction([E_EXP, MU_EXP], cov, [0.0, 8000.0], [False, True])
        # Closed form: V_ee - V_em^2 / V_mm with V_em = rho * 50 * 5000.
        assert var[0, 0] == pytest.approx(2600.0 - (rho * 2.5e5) ** 2 / 2.501e7, rel=1e-12)
        variances.append(var[0, 0])
    assert variances == sorted(variances)
    assert variances[0] == pytest.approx(101.0, abs=0.01)
    assert variances[-1] > 19 * variances[0]


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("rho", [-1.0, -0.3, 0.0, 0.4, 1.0])
def test_partially_correlated_shifts_two_channels(rho):
    d = partially_correlated_shifts([np.array([3.0, 4.0]), 5.0], rho)
    cov = d.T @ d
    sa, sb = np.array([3.0, 4.0]), 5.0
    np.testing.assert_allclose(cov[:2, :2], np.outer(sa, sa), atol=1e-12)
    np.testing.assert_allclose(cov[:2, 2], rho * sa * sb, atol=1e-12)
    assert cov[2, 2] == pytest.approx(25.0)


def test_partially_correlated_shifts_three_channels_and_bad_rho():
    d = partially_correlated_shifts([1.0, 2.0, 3.0], 0.25)
    cov = d.T @ d
    sig = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sig, sig)
    np.testing.assert_allclose(corr[np.triu_indices(3, 1)], 0.25)
    with pytest.raises(ModelError, match="rho"):
        partially_correlated_shifts([1.0, 2.0, 3.0], -0.5)
    with pytest.raises(ModelError, match="rho"):
        partially_correlated_shifts([1.0, 2.0], 1.5)


def test_chi2_solve_matches_explicit_inverse_on_random_spd():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 6 * np.eye(6)
    obs, exp = rng.normal(size=6), rng.normal(size=6)
    r = obs - exp
    assert chi2(obs, exp, cov) == pytest.approx(r @ np.linalg.inv(cov) @ r, rel=1e-12)


def test_bad_inputs_raise_model_error_naming_the_argument():
    with pytest.raises(ModelError, match="shift 'xsec'"):
        covariance([1.0, 2.0], {"xsec": [1.0, 2.0, 3.0]})
    with pytest.raises(ModelError, match="observed"):
        chi2([1.0], [1.0, 2.0], np.eye(2))
    with pytest.raises(ModelError, match="positive definite"):
        chi2([1.0, 2.0], [1.0, 1.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ModelError, match="b has"):
        fit_mu([10.0, 10.0], [1.0, 1.0], [1.0])
    with pytest.raises(ModelError, match="not constrained"):
        fit_mu([10.0], [0.0], [10.0])
    with pytest.raises(ModelError, match="stat must"):
        fit_mu([10.0], [1.0], [10.0], stat="poisson")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="reserved"):
        breakdown([10.0], [1.0], [10.0], {"stat": [1.0]})
    with pytest.raises(ModelError, match="frac_errors"):
        counting_shifts([1.0, 2.0], {"xsec": [0.1]})
    with pytest.raises(ModelError, match="non-finite"):
        fit_mu([np.nan], [1.0], [1.0])


# --------------------------------------------------------------------------- the mu fit


@pytest.mark.parametrize(("s", "b", "n"), [(100.0, 2500.0, 2600.0), (12.0, 3.0, 9.0), (50, 0, 80)])
def test_single_bin_stat_only_interval_is_sqrt_n_over_s(s, b, n):
    asimov = fit_mu([s + b], [s], [b])
    assert asimov.mu_hat == pytest.approx(1.0, rel=1e-12)
    assert asimov.dmu_low == asimov.dmu_high == pytest.approx(math.sqrt(s + b) / s, rel=1e-12)
    assert asimov.chi2_min == pytest.approx(0.0, abs=1e-12)
    assert asimov.ndof == 0
    # Any observation: mu_hat = (n - b)/s; Neyman variance gives sqrt(n)/s.
    neyman = fit_mu([n], [s], [b], stat="observed")
    assert neyman.mu_hat == pytest.approx((n - b) / s, rel=1e-12)
    assert neyman.dmu_high == pytest.approx(math.sqrt(n) / s, rel=1e-12)


@pytest.mark.parametrize(("s", "b", "delta"), [(100.0, 2500.0, 0.05), (20.0, 5.0, 0.3)])
def test_single_bin_signal_norm_interval_closed_form(s, b, delta):
    # chi2 = (n - b - mu s)^2 / (n + (delta s)^2) -> half-width sqrt(n + (delta s)^2) / s.
    n = s + b
    res = fit_mu([n], [s], [b], {"sig": [delta * s]})
    expected = math.sqrt(n + (delta * s) ** 2) / s
    assert res.dmu_high == pytest.approx(expected, rel=1e-12)
    assert res.dmu_high == pytest.approx(math.hypot(math.sqrt(n) / s, delta), rel=1e-12)
    cov = covariance([n], {"sig": [delta * s]})
    for mu in (res.mu_hat - res.dmu_low, res.mu_hat + res.dmu_high):
        assert chi2([n], [mu * s + b], cov) == pytest.approx(res.chi2_min + 1.0, rel=1e-9)


def test_single_bin_fitted_stat_crossings_closed_form():
    # chi2 = (n - x)^2 / x with x = mu s + b: crossings at x = ((2n+1) -/+ sqrt(4n+1)) / 2.
    s, b, n = 30.0, 70.0, 120.0
    res = fit_mu([n], [s], [b], stat="fitted")
    x_lo = ((2 * n + 1) - math.sqrt(4 * n + 1)) / 2
    x_hi = ((2 * n + 1) + math.sqrt(4 * n + 1)) / 2
    assert res.mu_hat == pytest.approx((n - b) / s, abs=1e-7)
    assert res.chi2_min == pytest.approx(0.0, abs=1e-12)
    assert res.mu_hat - res.dmu_low == pytest.approx((x_lo - b) / s, abs=1e-8)
    assert res.mu_hat + res.dmu_high == pytest.approx((x_hi - b) / s, abs=1e-8)
    assert res.dmu_high > res.dmu_low


def test_multibin_interval_is_delta_chi2_one():
    s = np.array([5.0, 20.0, 40.0, 0.0])
    b = np.array([400.0, 150.0, 30.0, 2000.0])
    shifts = {"bkg": 0.1 * b, "sig": 0.05 * s, "shape": np.array([8.0, -3.0, -2.0, 0.0])}
    obs = s * 1.3 + b + np.array([10.0, -5.0, 3.0, 40.0])
    res = fit_mu(obs, s, b, shifts)
    cov = covariance(s + b, shifts)
    c = [
        chi2(obs, m * s + b, cov)
        for m in (res.mu_hat - res.dmu_low, res.mu_hat, res.mu_hat + res.dmu_high)
    ]
    assert c[1] == pytest.approx(res.chi2_min, rel=1e-10)
    assert c[0] - c[1] == pytest.approx(1.0, rel=1e-9)
    assert c[2] - c[1] == pytest.approx(1.0, rel=1e-9)
    assert res.ndof == 3
    # mu-dependent stat variance: the crossings are Delta chi2 = 1 of that chi2, asymmetric.
    fitted = fit_mu(obs, s, b, shifts, stat="fitted")

    def chi2_fitted(m):
        return chi2(obs, m * s + b, covariance(m * s + b, shifts))

    assert chi2_fitted(fitted.mu_hat) == pytest.approx(fitted.chi2_min, rel=1e-12)
    for m in (fitted.mu_hat - fitted.dmu_low, fitted.mu_hat + fitted.dmu_high):
        assert chi2_fitted(m) - fitted.chi2_min == pytest.approx(1.0, rel=1e-9)
    for m in (fitted.mu_hat - 1e-4, fitted.mu_hat + 1e-4):
        assert chi2_fitted(m) > fitted.chi2_min
    assert fitted.dmu_high > fitted.dmu_low
    # Evaluating the fixed stat variance at mu_hat gives nearly the same symmetrised width.
    at_hat = fit_mu(obs, s, b, shifts, mu_ref=fitted.mu_hat)
    assert at_hat.dmu == pytest.approx(fitted.dmu, rel=0.02)


def test_breakdown_single_bin_adds_in_quadrature():
    s, b = 100.0, 2500.0
    n = s + b
    shifts = {"sig": [0.05 * s], "bkg": [0.02 * b], "lumi": [0.01 * (s + b)]}
    bd = breakdown([n], [s], [b], shifts)
    assert bd["stat"] == pytest.approx(math.sqrt(n) / s, rel=1e-12)
    assert bd["sig"] == pytest.approx(0.05, rel=1e-9)
    assert bd["bkg"] == pytest.approx(0.02 * b / s, rel=1e-9)
    assert bd["lumi"] == pytest.approx(0.01 * (s + b) / s, rel=1e-9)
    quad = math.sqrt(sum(v**2 for k, v in bd.items() if k != "total"))
    assert quad == pytest.approx(bd["total"], rel=1e-12)


def test_control_channel_constrains_background_systematic():
    delta, s1, b1, b_cr = 0.2, 10.0, 100.0, 1000.0
    sr_only = breakdown([s1 + b1], [s1], [b1], {"bkg": [delta * b1]})
    assert sr_only["bkg"] == pytest.approx(delta * b1 / s1, rel=1e-9)
    # Concatenate a background-only control region sharing the fully correlated norm shift.
    s, b = np.array([s1, 0.0]), np.array([b1, b_cr])
    with_cr = breakdown(s + b, s, b, {"bkg": delta * b})
    # Schur complement: residual background variance (delta b1)^2 B / (B + (delta B)^2).
    resid = (delta * b1) ** 2 * b_cr / (b_cr + (delta * b_cr) ** 2)
    assert with_cr["bkg"] == pytest.approx(math.sqrt(resid) / s1, rel=1e-9)
    assert with_cr["bkg"] < 0.2 * sr_only["bkg"]
    assert with_cr["stat"] == pytest.approx(sr_only["stat"], rel=1e-12)
    assert with_cr["total"] < sr_only["total"]
