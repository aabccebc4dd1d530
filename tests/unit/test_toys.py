"""Tests of systpipe.stat.toys: challenge score, determinism, failure handling, coverage."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import simple_spec
from systpipe.errors import ConfigError, DataContractError
from systpipe.stat import methods, toys
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates

SIGMA68_1000 = math.sqrt((1 - 0.6827) * 0.6827 * 1000) / 1000  # 0.0147180


def counting_spec(s=100.0, b=2500.0, d_s=0.05, d_b=0.02, d_l=0.01, mc_stat=False) -> dict:
    nom = np.array([[s], [b]])
    var = {}
    for name, fs, fb in (("sig", d_s, 0.0), ("bkg", 0.0, d_b), ("lumi", d_l, d_l)):
        var[f"{name}_up"] = nom * np.array([[1 + fs], [1 + fb]])
        var[f"{name}_down"] = nom * np.array([[1 - fs], [1 - fb]])
    t = Templates(np.array([0.5, 1.0]), ["signal", "background"], [True, False], nom, nom / 20, var)
    systs = [{"name": k, "type": "norm", "delta": 0.1} for k in ("sig", "bkg", "lumi")]
    return build_workspace(t, systs, mc_stat=mc_stat)


@pytest.fixture(scope="module")
def setup() -> toys.ToySetup:
    return toys.prepare(simple_spec())


# --------------------------------------------------------------------------- score


def test_coverage_penalty_hand_computed_points():
    s = SIGMA68_1000
    assert s == pytest.approx(0.01471804, rel=1e-6)  # sqrt(216.621)/1000
    assert toys.coverage_penalty(0.6827, 1000) == 1.0
    assert toys.coverage_penalty(0.6827 - 1.99 * s, 1000) == 1.0
    assert toys.coverage_penalty(0.6827 + 1.99 * s, 1000) == 1.0
    # below the band: quartic; above: cubic, in units of sigma68 beyond the band edge
    assert toys.coverage_penalty(0.6827 - 4 * s, 1000) == pytest.approx(1 + 2**4)
    assert toys.coverage_penalty(0.6827 + 4 * s, 1000) == pytest.approx(1 + 2**3)
    assert toys.coverage_penalty(0.5, 1000) == pytest.approx(1 + ((0.5 - 0.6827 + 2 * s) / s) ** 4)
    assert toys.coverage_penalty(0.9, 1000) == pytest.approx(1 + ((0.9 - 0.6827 - 2 * s) / s) ** 3)
    assert toys.coverage_penalty(0.5, 0) == math.inf


def test_challenge_score_hand_computed_points():
    # the notes' scale: w = 0.1, 0.2, 0.3 at ideal coverage -> 2.29, 1.60, 1.20
    assert toys.challenge_score(0.1, 0.6827, 1000) == pytest.approx(-math.log(0.101))
    assert toys.challenge_score(0.2, 0.6827, 1000) == pytest.approx(1.6045, abs=1e-4)
    assert toys.challenge_score(0.3, 0.6827, 1000) == pytest.approx(1.2006, abs=1e-4)
    assert toys.challenge_score(0.1, 0.6827 - 4 * SIGMA68_1000, 1000) == pytest.approx(
        -math.log(0.101 * 17)
    )


# --------------------------------------------------------------------------- methods


COUNTING_SYSTEMATICS = [
    {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
    {"name": "bkg", "type": "norm", "delta": 0.02, "labels": ["background"]},
    {"name": "lumi", "type": "norm", "delta": 0.01},
]


def test_shift_and_linear_reproduce_the_documented_numbers():
    setup = toys.prepare(counting_spec(), systematics=COUNTING_SYSTEMATICS)
    cut = setup.cut
    assert (cut.s, cut.b) == pytest.approx((100.0, 2500.0))
    assert cut.s_var["sig"] == pytest.approx((105.0, 95.0))
    assert cut.b_var["lumi"] == pytest.approx((2525.0, 2475.0))
    result = methods.linear(cut, 2600.0)
    assert result.mu_hat == pytest.approx(1.0)
    assert result.hi - result.mu_hat == pytest.approx(0.762, abs=5e-4)  # docs/scan.md example
    # the Jacobian terms: d_epsS mu, d_epsB B/S, d_L n/S
    assert result.systematics["sig"].sym == pytest.approx(0.05)
    assert result.systematics["bkg"].sym == pytest.approx(0.02 * 25)
    assert result.systematics["lumi"].sym == pytest.approx(0.01 * 26)
    # without the kinds the linear method uses each systematic's symmetrised shift
    shapes = methods.linear(toys.prepare(counting_spec()).cut, 2600.0)
    assert shapes.systematics["sig"].sym == pytest.approx(
        0.5 * (abs(1 / 1.05 - 1) + abs(1 / 0.95 - 1))
    )
    shift = methods.shift(cut, 2600.0, symmetrise="mean")
    mu, lo, hi = shift.mu_hat, shift.lo, shift.hi
    sig = 0.5 * (abs(1 / 1.05 - 1) + abs(1 / 0.95 - 1))
    lumi = 0.5 * (abs(75 / 101 - 1) + abs(125 / 99 - 1))
    expected = math.sqrt(2600 / 100**2 + sig**2 + 0.5**2 + lumi**2)
    assert hi - mu == pytest.approx(expected, rel=1e-12)
    assert mu - lo == pytest.approx(expected, rel=1e-12)


def test_every_method_runs_and_agrees_on_mu_hat(setup):
    # challenge mode: auxiliary data at nominal, as the chi2 (which has none) assumes
    df = toys.run_toys(setup, mode="challenge", seed=5, start=0, count=20)
    assert list(df.columns) == toys.TOY_COLUMNS
    assert len(df) == 20 * len(methods.DEFAULT_TOY_METHODS)
    assert (df["status"] == "ok").all()
    wide = df.pivot(index="toy", columns="method", values="mu_hat")
    # the shift and linear methods share mu = (n - B)/S on the same counts
    np.testing.assert_allclose(wide["shift"], wide["linear"], rtol=1e-12)
    # profile (Poisson) and chi2 (Gaussian, same linearised systematics) fit the same bins
    assert np.max(np.abs(wide["profile"] - wide["chi2"])) < 0.03
    assert np.max(np.abs(wide["profile"] - wide["shift"])) > 0.01  # but not the cut-and-count
    assert ((df["lo"] <= df["mu_hat"]) & (df["mu_hat"] <= df["hi"])).all()


def test_modes_differ_in_what_they_fluctuate(setup):
    rng = toys.toy_rng(1, "frequentist", 0)
    _, aux_f = toys.throw_toy(setup, rng, mode="frequentist", mu_true=1.0)
    _, aux_c = toys.throw_toy(setup, toys.toy_rng(1, "challenge", 0), mode="challenge", mu_true=1.0)
    assert np.all(aux_f != setup.model.aux_nominal)
    np.testing.assert_array_equal(aux_c, setup.model.aux_nominal)
    with pytest.raises(ConfigError, match="mode"):
        toys.run_toys(setup, mode="bayesian", seed=1, start=0, count=1)
    with pytest.raises(ConfigError, match="methods"):
        toys.run_toys(setup, mode="challenge", seed=1, start=0, count=1, methods=["magic"])


# --------------------------------------------------------------------------- determinism, failures


def test_toys_are_deterministic_and_chunking_invariant(setup):
    whole = toys.run_toys(setup, mode="challenge", seed=11, start=0, count=12)
    again = toys.run_toys(setup, mode="challenge", seed=11, start=0, count=12)
    pd.testing.assert_frame_equal(whole, again)
    parts = pd.concat(
        [
            toys.run_toys(setup, mode="challenge", seed=11, start=0, count=5),
            toys.run_toys(setup, mode="challenge", seed=11, start=5, count=7),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, parts)
    other = toys.run_toys(setup, mode="challenge", seed=12, start=0, count=12)
    assert not np.allclose(whole["mu_hat"], other["mu_hat"])


def test_a_failed_fit_is_counted_not_fatal(setup, monkeypatch):
    real = methods.METHODS["profile"]

    def flaky(s, n, aux, symmetrise):
        # fail exactly on toy 3 of seed 2 (recognised by its data)
        if np.array_equal(n, bad_counts):
            raise RuntimeError("injected failure")
        return real.toy_interval(s, n, aux, symmetrise)

    bad_counts, _ = toys.throw_toy(
        setup, toys.toy_rng(2, "frequentist", 3), mode="frequentist", mu_true=1.0
    )
    monkeypatch.setitem(methods.METHODS, "profile", methods.Method("profile", flaky))
    df = toys.run_toys(setup, mode="frequentist", seed=2, start=0, count=8)
    failed = df[df["status"] != "ok"]
    assert len(failed) == 1
    assert failed["toy"].iloc[0] == 3 and failed["method"].iloc[0] == "profile"
    assert "injected failure" in failed["status"].iloc[0]
    assert np.isnan(failed["mu_hat"].iloc[0])
    summary = toys.summarise(df).set_index("method")
    assert summary.loc["profile", "n_failed"] == 1
    assert summary.loc["profile", "n_ok"] == 7
    assert summary.loc["shift", "n_failed"] == 0


def test_summarise_numbers_and_duplicate_chunks():
    df = pd.DataFrame(
        {
            "toy": [0, 1, 2, 3],
            "mode": "challenge",
            "method": "profile",
            "mu_true": 1.0,
            "mu_hat": [0.9, 1.3, 1.0, np.nan],
            "lo": [0.7, 1.1, 0.8, np.nan],
            "hi": [1.1, 1.5, 1.2, np.nan],
            "width": [0.4, 0.4, 0.4, np.nan],
            "covered": [True, False, True, False],
            "at_bound": [False, True, False, False],
            "status": ["ok", "ok", "ok", "failed: x"],
        }
    )
    row = toys.summarise(df).iloc[0]
    assert (row["n_toys"], row["n_ok"], row["n_failed"], row["n_at_bound"]) == (4, 3, 1, 1)
    # every toy counts: the failed one has no interval, so it does not cover
    assert row["coverage"] == pytest.approx(2 / 4)
    assert row["coverage_err"] == pytest.approx(math.sqrt(0.25 / 4))
    assert row["coverage_ok"] == pytest.approx(2 / 3)
    assert row["failure_rate"] == pytest.approx(0.25)
    assert row["mean_width"] == pytest.approx(0.4)
    assert row["bias"] == pytest.approx(0.2 / 3)
    assert row["score"] == pytest.approx(toys.challenge_score(0.4, 2 / 4, 4))
    with pytest.raises(DataContractError, match="more than once"):
        toys.summarise([df, df])


# --------------------------------------------------------------------------- coverage


def test_bootstrap_mode_fluctuates_the_templates_by_their_mc_error():
    nom = np.array([[100.0], [2500.0]])
    # N_eff = 400 events per sample: the template fluctuation adds s^2/400 + b^2/400 to the
    # Poisson variance s + b of the count
    t = Templates(
        np.array([0.5, 1.0]), ["signal", "background"], [True, False], nom, nom**2 / 400.0, {}
    )
    setup = toys.prepare(build_workspace(t, [], mc_stat=True))
    counts = np.array(
        [
            toys.throw_toy(setup, toys.toy_rng(3, "bootstrap", i), mode="bootstrap", mu_true=1.0)[
                0
            ][0]
            for i in range(4000)
        ]
    )
    expected_var = 2600.0 + (100.0**2 + 2500.0**2) / 400.0
    assert counts.mean() == pytest.approx(2600.0, abs=4 * math.sqrt(expected_var / 4000))
    assert counts.var() == pytest.approx(expected_var, rel=0.08)
    assert counts.var() > 1.5 * 2600.0  # well beyond the Poisson variance alone
    _, aux = toys.throw_toy(setup, toys.toy_rng(3, "bootstrap", 0), mode="bootstrap", mu_true=1.0)
    np.testing.assert_array_equal(aux, setup.model.aux_nominal)


def test_profile_interval_covers_at_68_percent(setup):
    n = 2000
    df = toys.run_toys(setup, mode="frequentist", seed=1, start=0, count=n, methods=["profile"])
    row = toys.summarise(df).iloc[0]
    assert row["n_failed"] == 0
    binomial = math.sqrt(0.6827 * (1 - 0.6827) / n)
    assert abs(row["coverage"] - 0.6827) < 2 * binomial
    assert abs(row["bias"]) < 3 * row["bias_err"] + 0.01


def test_cut_threshold_maps_to_a_bin_edge():
    assert toys.first_bin_for_threshold([0.5, 0.7, 0.85, 1.0], 0.85) == 2
    assert toys.first_bin_for_threshold([0.5, 0.7, 0.85, 1.0], None) == 0
    with pytest.raises(ConfigError, match="cut_threshold"):
        toys.first_bin_for_threshold([0.5, 0.7, 0.85, 1.0], 0.8)
    setup = toys.prepare(simple_spec(), first_bin=2)
    assert (setup.cut.s, setup.cut.b) == pytest.approx((60.0, 100.0))
    assert setup.cut.b_var["bkg"] == pytest.approx((105.0, 95.0))
    with pytest.raises(ConfigError, match="first_bin"):
        toys.prepare(simple_spec(), first_bin=3)


def test_batched_and_one_by_one_toys_agree_on_every_method():
    """The batched profile and chi2 paths give the per-toy (iminuit, closed-form) intervals."""
    setup = toys.prepare(simple_spec())
    kwargs: dict = {"mode": "frequentist", "seed": 11, "start": 3, "count": 40}
    fast = toys.run_toys(setup, fitter="batched", **kwargs)
    slow = toys.run_toys(setup, fitter="iminuit", **kwargs)
    assert list(fast["toy"]) == list(slow["toy"]) and list(fast["method"]) == list(slow["method"])
    assert (fast["status"] == "ok").all() and (slow["status"] == "ok").all()
    for method, tol in (("shift", 1e-12), ("linear", 1e-12), ("chi2", 1e-9), ("profile", 2e-3)):
        a, b = fast[fast["method"] == method], slow[slow["method"] == method]
        for col in ("mu_hat", "lo", "hi"):
            np.testing.assert_allclose(a[col], b[col], atol=tol, err_msg=f"{method} {col}")
    with pytest.raises(ConfigError, match="toys.fitter"):
        toys.run_toys(setup, fitter="minuit", **kwargs)


def test_challenge_priors_and_fair_universe_mode():
    """A prior replaces the constraint draw of its systematic only (same z), and clipping
    holds; fair_universe draws mu_true per toy from mu_range, reproducibly."""
    from systpipe.stat.priors import Prior

    setup = toys.prepare(simple_spec())
    model = setup.model
    k = int(np.flatnonzero(model.constrained == model.groups["det"][0])[0])
    prior = Prior("det", 0.02, "gaussian", sigma=0.01, clip=(0.995, 1.2))
    for i in range(20):
        rng_a, rng_b = toys.toy_rng(5, "challenge", i), toys.toy_rng(5, "challenge", i)
        z = toys.toy_rng(5, "challenge", i).standard_normal(model.aux_nominal.size)
        n_a, _ = toys.throw_toy(setup, rng_a, mode="challenge", mu_true=1.0)
        n_b, _ = toys.throw_toy(setup, rng_b, mode="challenge", mu_true=1.0, priors={"det": prior})
        # alpha_det = (f - 1)/delta with f = clip(1 + 0.01 z, 0.995, 1.2)
        want = (min(max(1.0 + 0.01 * z[k], 0.995), 1.2) - 1.0) / 0.02
        assert prior.alpha(z[k]) == pytest.approx(want, abs=1e-12)
        if abs(want - z[k]) > 1e-3:
            assert not np.array_equal(n_a, n_b)
    df = toys.run_toys(setup, mode="fair_universe", seed=2, start=0, count=30, methods=["profile"],
                       mu_range=(0.5, 2.5))  # fmt: skip
    again = toys.run_toys(setup, mode="fair_universe", seed=2, start=10, count=5, methods=["profile"],
                          mu_range=(0.5, 2.5))  # fmt: skip
    assert df["mu_true"].between(0.5, 2.5).all() and df["mu_true"].nunique() == 30
    np.testing.assert_array_equal(df["mu_true"].iloc[10:15], again["mu_true"])
    assert (df["covered"] == ((df["lo"] <= df["mu_true"]) & (df["mu_true"] <= df["hi"]))).all()
    # the fitted mu follows the drawn truth
    assert np.corrcoef(df["mu_true"], df["mu_hat"])[0, 1] > 0.9


def test_priors_are_checked_against_the_systematics():
    from systpipe.stat.priors import parse_priors

    systs = [{"name": "det", "type": "scale", "delta": 0.02}, {"name": "alt", "type": "sample"}]
    with pytest.raises(ConfigError, match=r"toys.priors.jes: no systematic named 'jes'"):
        parse_priors({"jes": {}}, systs)
    with pytest.raises(ConfigError, match=r"toys.priors.alt: .* has no 'delta'"):
        parse_priors({"alt": {}}, systs)
    with pytest.raises(ConfigError, match=r"toys.priors.det.clip must be \[lo, hi\]"):
        parse_priors({"det": {"clip": [1.1, 0.9]}}, systs)
