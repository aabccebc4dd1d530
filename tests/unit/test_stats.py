"""Tests of the signal-strength statistics against closed forms and the notebook's reference numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from systpipe.errors import ConfigError
from systpipe.stats import (
    ams,
    ams_higgsml,
    dmu_linear,
    dmu_linear_terms,
    mu_hat,
    sigma_mu_fraction,
    sigma_mu_stat,
    symmetrise,
    z_asimov,
)


def test_dmu_linear_reference_value():
    # docs/scan.md and docs/notebooks.md: notebook 002's "0.234" is wrong; its definitions give 0.762.
    value = float(dmu_linear(100.0, 2500.0, d_eps_s=0.05, d_eps_b=0.02, d_lumi=0.01))
    assert round(value, 3) == 0.762
    # stat sqrt(2600)/100, eps_S 0.05, eps_B 25 * 0.02, lumi 26 * 0.01
    assert value == pytest.approx(math.sqrt(0.26 + 0.05**2 + 0.5**2 + 0.26**2), rel=1e-14)


def test_dmu_linear_is_stat_plus_norm_terms():
    s = np.array([50.0, 100.0, 1000.0])
    b = np.array([10.0, 2500.0, 7.0])
    d_s, d_b, d_l = 0.05, 0.02, 0.01
    stat = sigma_mu_stat(s, b)
    sig = dmu_linear_terms(s, b, s, 0.0, d_s)
    bkg = dmu_linear_terms(s, b, 0.0, b, d_b)
    lumi = dmu_linear_terms(s, b, s, b, d_l)
    np.testing.assert_allclose(sig, d_s, rtol=1e-14)
    np.testing.assert_allclose(bkg, b / s * d_b, rtol=1e-14)
    np.testing.assert_allclose(lumi, (s + b) / s * d_l, rtol=1e-14)
    total = dmu_linear(s, b, d_eps_s=d_s, d_eps_b=d_b, d_lumi=d_l)
    np.testing.assert_allclose(total, np.sqrt(stat**2 + sig**2 + bkg**2 + lumi**2), rtol=1e-14)


def test_dmu_linear_terms_off_asimov_uses_fitted_mu():
    # n = 2 S + B means mu = 2: a signal-efficiency shift then moves mu by mu * delta.
    s, b = 100.0, 400.0
    assert float(dmu_linear_terms(s, b, s, 0.0, 0.05, n=2 * s + b)) == pytest.approx(0.1)
    # Exact derivative check against mu(delta) = (n - B - delta b_k)/(S + delta s_k).
    s_k, b_k, n, h = 30.0, 120.0, 650.0, 1e-6
    mu = lambda d: (n - b - d * b_k) / (s + d * s_k)  # noqa: E731
    slope = abs(mu(h) - mu(-h)) / (2 * h)
    assert float(dmu_linear_terms(s, b, s_k, b_k, 1.0, n=n)) == pytest.approx(slope, rel=1e-8)


@pytest.mark.parametrize(
    ("s", "n", "expected"),
    [(100.0, 10_000.0, 1.0), (1_000.0, 10_000.0, 0.1), (10_000.0, 1_000_000.0, 0.1)],
)
def test_sigma_mu_reference_values(s, n, expected):
    assert float(sigma_mu_fraction(n, s / n)) == pytest.approx(expected, rel=1e-12)
    assert float(sigma_mu_stat(s, n - s)) == pytest.approx(expected, rel=1e-12)


def test_sigma_mu_scales_as_inverse_sqrt_luminosity():
    alpha = np.logspace(0, 3, 7)
    sig = sigma_mu_stat(100.0 * alpha, 10_000.0 * alpha)
    np.testing.assert_allclose(sig * np.sqrt(alpha), sigma_mu_stat(100.0, 10_000.0), rtol=1e-12)


def test_mu_hat_asimov_and_zero_signal():
    s = np.array([100.0, 3.0, 0.0, 0.0])
    b = np.array([2500.0, 1.0, 5.0, 0.0])
    mu = mu_hat(s + b, s, b)
    np.testing.assert_array_equal(mu[:2], [1.0, 1.0])
    assert np.all(np.isposinf(mu[2:]))  # including 0/0
    assert np.isposinf(sigma_mu_stat(0.0, 0.0))
    assert np.isposinf(sigma_mu_fraction(100.0, 0.0))
    assert np.isposinf(dmu_linear(0.0, 10.0, d_eps_s=0.0, d_eps_b=0.0, d_lumi=0.0))
    assert np.isposinf(dmu_linear_terms(0.0, 10.0, 0.0, 0.0, 0.01))


def test_mu_hat_scalar_and_broadcast_shapes():
    assert isinstance(mu_hat(3.0, 1.0, 2.0), np.float64)
    out = mu_hat(np.ones((2, 1)) * 10.0, np.array([1.0, 2.0, 5.0]), 0.0)
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out[0], [10.0, 5.0, 2.0])


def test_ams_closed_forms():
    assert float(ams(10.0, 10.0)) == pytest.approx(
        math.sqrt(2 * (20 * math.log(2) - 10)), rel=1e-14
    )
    # s << b: AMS -> s / sqrt(b) (next term relative s / (3 b))
    s, b = 1.0, 1e4
    assert float(ams(s, b)) == pytest.approx(s / math.sqrt(b), rel=2 * s / (3 * b))
    np.testing.assert_array_equal(ams(np.array([0.0, 5.0, -1.0]), np.array([5.0, 0.0, 5.0])), 0.0)


def test_ams_higgsml_regularises_zero_background():
    assert float(ams_higgsml(5.0, 0.0)) == pytest.approx(float(ams(5.0, 10.0)), rel=1e-15)
    assert float(ams_higgsml(5.0, 3.0, b_reg=0.0)) == float(ams(5.0, 3.0))
    assert float(ams_higgsml(0.0, 3.0)) == 0.0


def _z_asimov_raw(s, b, sb):
    v = sb * sb
    return math.sqrt(
        2 * ((s + b) * math.log((s + b) * (b + v) / (b * b + (s + b) * v))
             - b * b / v * math.log(1 + v * s / (b * (b + v))))
    )  # fmt: skip


@pytest.mark.parametrize(
    ("s", "b", "sb"), [(10.0, 10.0, 2.0), (50.0, 100.0, 20.0), (3.0, 1e3, 50.0)]
)
def test_z_asimov_matches_spec_formula(s, b, sb):
    assert float(z_asimov(s, b, sb)) == pytest.approx(_z_asimov_raw(s, b, sb), rel=1e-10)


def test_z_asimov_limits():
    s = np.array([1.0, 10.0, 300.0])
    b = np.array([1e4, 10.0, 50.0])
    np.testing.assert_array_equal(z_asimov(s, b, 0.0), ams(s, b))
    # sigma_b -> 0 continuously (the naive b^2/sigma^2 form would overflow to -inf here)
    np.testing.assert_allclose(z_asimov(s, b, 1e-170), ams(s, b), rtol=1e-12)
    # s << b: Z -> s / sqrt(b + sigma_b^2)
    assert float(z_asimov(1.0, 1e4, 50.0)) == pytest.approx(1 / math.sqrt(1e4 + 2500), rel=1e-3)
    # larger background uncertainty, smaller significance
    z = z_asimov(20.0, 100.0, np.array([0.0, 1.0, 5.0, 20.0, 100.0]))
    assert np.all(np.diff(z) < 0)
    np.testing.assert_array_equal(z_asimov(np.array([0.0, 5.0]), np.array([5.0, 0.0]), 1.0), 0.0)


def test_symmetrise_modes():
    up, down = np.array([-0.1, 0.02, -np.inf]), np.array([0.3, -0.04, 0.1])
    np.testing.assert_allclose(symmetrise(up, down), [0.2, 0.03, np.inf])
    np.testing.assert_allclose(symmetrise(up, down, "max"), [0.3, 0.04, np.inf])
    with pytest.raises(ConfigError, match="scan.symmetrise"):
        symmetrise(up, down, "median")


def test_no_nan_on_degenerate_inputs():
    grid = np.array([-1.0, 0.0, 1e-300, 1e-8, 1.0, 1e15])
    s, b = np.meshgrid(grid, grid)
    outputs = [
        mu_hat(s + b, s, b), sigma_mu_stat(s, b), sigma_mu_fraction(b, s), ams(s, b),
        ams_higgsml(s, b), z_asimov(s, b, 0.1 * np.abs(b)),
        dmu_linear(s, b, d_eps_s=0.05, d_eps_b=0.0, d_lumi=0.01),
        dmu_linear_terms(s, b, s, b, 0.01),
    ]  # fmt: skip
    for out in outputs:
        assert not np.isnan(out).any()
