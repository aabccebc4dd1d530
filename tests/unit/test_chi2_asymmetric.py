"""The asymmetric-shift chi2 against closed forms, the covariance chi2 and the profile fit."""

from __future__ import annotations

import numpy as np
import pytest

from systpipe.stat.chi2 import breakdown, fit_mu
from systpipe.stat.chi2_asymmetric import (
    AsymmetricChi2,
    AsymmetricShift,
    _response,
    _slope,
    asymmetric_breakdown,
)

S = np.array([20.0, 40.0, 60.0])
B = np.array([400.0, 200.0, 100.0])


def test_response_is_pyhf_code4p_with_continuous_slope():
    import pyhf

    nom, up, dn = np.array([10.0, 20.0]), np.array([12.0, 19.0]), np.array([9.0, 23.0])
    spec = {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "b",
                        "data": nom.tolist(),
                        "modifiers": [
                            {"name": "k", "type": "histosys", "data": {"hi_data": up.tolist(), "lo_data": dn.tolist()}},
                            {"name": "mu", "type": "normfactor", "data": None},
                        ],
                    }
                ],
            }
        ]
    }  # fmt: skip
    model = pyhf.Model(spec, poi_name="mu", validate=False)
    for alpha in (-2.3, -1.0, -0.4, 0.0, 0.3, 1.0, 1.7):
        pars = np.array(model.config.suggested_init())
        pars[model.config.par_slice("k")] = alpha
        want = np.asarray(model.expected_actualdata(pars))
        np.testing.assert_allclose(_response(nom, up, dn, alpha), want, rtol=1e-12)
        h = 1e-6
        numeric = (_response(nom, up, dn, alpha + h) - _response(nom, up, dn, alpha - h)) / (2 * h)
        np.testing.assert_allclose(_slope(nom, up, dn, alpha), numeric, rtol=1e-6, atol=1e-8)


def test_symmetric_background_shift_equals_the_covariance_chi2():
    """A background-only, symmetric (Q = 0) shift profiled = the covariance form, exactly."""
    d = np.array([12.0, -4.0, 3.0])
    shift = AsymmetricShift(S, S, B + d, B - d)
    n = S * 1.2 + B + 0.3 * d
    mc = np.diag([5.0, 4.0, 3.0])
    got = AsymmetricChi2(n, S, B, {"det": shift}, {"mc": mc}, S + B).fit()
    want = fit_mu(n, S, B, {"det": d, "mc": mc})
    assert got.mu_hat == pytest.approx(want.mu_hat, abs=1e-7)
    assert got.dmu_low == pytest.approx(want.dmu_low, rel=1e-6)
    assert got.dmu_high == pytest.approx(want.dmu_high, rel=1e-6)
    assert got.chi2_min == pytest.approx(want.chi2_min, abs=1e-6)
    _, parts = asymmetric_breakdown(n, S, B, {"det": shift}, {"mc": mc}, S + B)
    ref = breakdown(n, S, B, {"det": d, "mc": mc})
    for k in ("total", "stat", "det", "mc"):
        assert parts[k] == pytest.approx(ref[k], rel=1e-5), k


def test_asymmetric_shift_matches_the_profile_likelihood_of_the_same_model():
    """Same templates in a workspace (histosys) and in the chi2: the intervals agree to ~1 %
    (Gaussian regime: Poisson vs Gaussian statistics is the only difference left)."""
    from systpipe.stat.fit import fit_workspace
    from systpipe.stat.workspace import build_workspace
    from systpipe.templates import Templates

    nom = np.array([S * 10, B * 10])
    up = nom * [[1.0, 1.0, 1.0], [1.03, 1.13, 1.08]]
    dn = nom * [[1.0, 1.0, 1.0], [1.10, 1.02, 0.96]]  # same-sign in two bins: far from linear
    t = Templates(np.array([0.5, 0.7, 0.85, 1.0]), ["s", "b"], [True, False], nom, nom / 100,
                  {"det_up": up, "det_down": dn})  # fmt: skip
    spec = build_workspace(
        t, [{"name": "det", "type": "scale", "delta": 0.02, "columns": ["x"]}], mc_stat=False
    )
    prof = fit_workspace(spec, impacts=False, limits=False)
    asym = AsymmetricChi2(
        nom.sum(axis=0), nom[0], nom[1], {"det": AsymmetricShift(nom[0], nom[0], up[1], dn[1])}, {},
        nom.sum(axis=0),
    ).fit()  # fmt: skip
    sym = fit_mu(nom.sum(axis=0), nom[0], nom[1], {"det": (up[1] - dn[1]) / 2})
    assert asym.dmu_low == pytest.approx(prof.dmu_down, rel=0.01)
    assert asym.dmu_high == pytest.approx(prof.dmu_up, rel=0.01)
    # the symmetric shift cannot see the asymmetry: it misses by more than 10 % on one side
    assert max(abs(sym.dmu_low / prof.dmu_down - 1), abs(sym.dmu_high / prof.dmu_up - 1)) > 0.1
