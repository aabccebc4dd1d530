"""Learned Neyman constructions (stat/neyman*.py): coverage, exact references, API behaviour.

Budgets (calibration B, diagnostic B''): on/off B = 5e4 (4 bagged quantile regressors), B'' = 1e4;
low-count model B = 2e4. The acceptance checks of critical values, of the counting model's
coverage and of the p-value are in test_neyman_validation.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from systpipe.errors import ModelError
from systpipe.stat.batched_intervals import profile_intervals_batch
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.neyman import (
    LEVELS,
    accept,
    confidence_sets,
    learn_critical_values,
    simulate_statistics,
)
from systpipe.stat.neyman_diagnostics import coverage_diagnostic
from systpipe.stat.neyman_exact import (
    exact_coverage,
    exact_critical_values,
    exact_distribution,
    exact_projected_sets,
)
from systpipe.stat.neyman_models import (
    CountingModel,
    HistFactoryNeyman,
    OnOffModel,
    sample_parameters,
)

B_CAL = 50_000
B_DIAG = 10_000
ONOFF_GRID = np.array(
    [[mu, nu] for mu in np.linspace(0, 5, 11) for nu in (0.6, 0.8, 1.0, 1.2, 1.4)]
)


def learn(model, seed: int):
    """The validated settings (test_neyman_validation.py): boosted from the asymptotic
    critical value, few shallow trees on large leaves."""
    p, _, t = simulate_statistics(model, B_CAL, seed=seed, pad=0.1)
    return learn_critical_values(
        p, t, model.bounds, seed=seed, n_bags=4, features=model.features,
        asymptotic=model.asymptotic_sigma, max_iter=60, learning_rate=0.05, max_leaf_nodes=4,
        min_samples_leaf=5000,
    )  # fmt: skip


@pytest.fixture(scope="module")
def onoff():
    model = OnOffModel()
    return model, learn(model, 1)


def diagnostic_sample(model, seed: int):
    rng = np.random.default_rng(seed)
    theta = sample_parameters(model.bounds, B_DIAG, rng)
    return theta, model.simulate(theta, rng)


def check_diagnostic(model, cv, grid, seed: int, method: str = "hybrid") -> list:
    theta, data = diagnostic_sample(model, seed)
    out = []
    for level in LEVELS:
        z = accept(model, data, theta[:, 0], cv, level, method)
        diag = coverage_diagnostic(theta, z, grid, nominal=level, names=model.names)
        out.append((level, z, diag))
    return out


def test_onoff_hybrid_sets_cover_within_the_diagnostic_band(onoff):
    model, cv = onoff
    for level, z, diag in check_diagnostic(model, cv, ONOFF_GRID, 7):
        assert diag.fraction_within(2.0) >= 0.95, (level, diag.pull().round(2))
        assert diag.fraction_within(3.0) == 1.0, (level, diag.pull().round(2))
        n = z.size  # pooled: within 2 binomial sigma
        assert abs(z.mean() - level) < 2 * math.sqrt(level * (1 - level) / n), (level, z.mean())
    # the exact coverage of the learned sets (enumeration of (n_on, n_off)) at 9 grid points
    pts = ONOFF_GRID[::6]
    for level, tol in ((0.6827, 0.04), (0.95, 0.02)):
        cov = exact_coverage(model, pts, lambda d, mu, lv=level: accept(model, d, mu, cv, lv))
        assert np.all(np.abs(cov - level) < tol), (level, cov.round(3))


def test_onoff_least_favourable_sets_do_not_under_cover(onoff):
    model, cv = onoff
    res = check_diagnostic(model, cv, ONOFF_GRID, 8, method="least_favourable")
    for level, z, diag in res:
        assert np.all(diag.pull() >= -2.0), (level, diag.pull().round(2))
        assert z.mean() >= level  # conservative by construction: max over nu


def single_bin(s: float, b: float, n_bins: int = 1) -> HistFactoryModel:
    return HistFactoryModel(
        {
            "channels": [{"name": "SR", "samples": [
                {"name": "s", "data": [s] * n_bins, "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                {"name": "b", "data": [b] * n_bins, "modifiers": []}]}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[0.0, 10.0]]}]}}],
        }
    )  # fmt: skip


def test_low_count_learned_interval_covers_where_the_asymptotic_one_does_not():
    """n ~ Poisson(3 mu + 1): the profile interval (2 Delta NLL = 1, batched fitter) under-covers;
    the learned one (statistic from the batched fitter, jittered calibration) does not."""
    hf = single_bin(3.0, 1.0)
    model = HistFactoryNeyman(hf, bounds=np.array([[0.0, 3.0]]))
    level, n_toys = 0.6827, 2000
    sigma = math.sqrt(level * (1 - level) / n_toys)
    p, _, t = simulate_statistics(model, 20_000, seed=5, pad=0.1, jitter=True)
    cv = learn_critical_values(p, t, model.bounds, levels=(level,), seed=0, n_bags=4)
    rng = np.random.default_rng(11)
    asym, learned = [], []
    for mu in (0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0):
        data = model.simulate(np.full((n_toys, 1), mu), rng)
        iv = profile_intervals_batch(hf, data, level=1.0)
        assert iv.n_failed == 0
        asym.append(np.mean((iv.lo <= mu) & (mu <= iv.hi)))
        learned.append(accept(model, data, mu, cv, level, jitter=5).mean())
    asym, learned = np.array(asym), np.array(learned)
    assert asym.min() < level - 3 * sigma, asym.round(3)  # at mu = 0.5: 0.604 exactly
    assert np.all(learned >= level - 3 * sigma), learned.round(3)
    assert learned.mean() >= level - 2 * sigma / 3.0  # pooled over 9 x 2000 toys
    # the same by enumeration: exact coverage of both at the worst point of the asymptotic one
    pt = np.array([[0.5]])
    wilks = exact_coverage(model, pt, lambda d, mu: model.statistic(d, mu) <= 1.0)[0]
    lrn = exact_coverage(model, pt, lambda d, mu: accept(model, d, mu, cv, level, jitter=5))[0]
    assert wilks == pytest.approx(0.6037, abs=1e-3) and lrn >= level, (wilks, lrn)


def test_batched_fitter_statistic_equals_the_closed_form_onoff_one():
    spec = {
        "channels": [
            {"name": "on", "samples": [
                {"name": "sig", "data": [15.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                {"name": "bkg", "data": [70.0], "modifiers": [{"name": "nu", "type": "normfactor", "data": None}]}]},
            {"name": "off", "samples": [
                {"name": "bkg", "data": [70.0], "modifiers": [{"name": "nu", "type": "normfactor", "data": None}]}]},
        ],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, 10.0]]}, {"name": "nu", "bounds": [[0.05, 10.0]]}]}}],
    }  # fmt: skip
    hf = HistFactoryNeyman(HistFactoryModel(spec))
    onoff = OnOffModel()
    rng = np.random.default_rng(2)
    theta = sample_parameters(onoff.bounds, 300, rng)
    data = onoff.simulate(theta, rng)  # channels sorted by name: "off" first
    # the Fisher-information sigma of mu-hat (numerical Jacobian) equals the closed form
    assert np.allclose(
        hf.asymptotic_sigma(theta[:20]), onoff.asymptotic_sigma(theta[:20]), rtol=1e-6
    )
    for mu in (0.0, 1.3, 4.0):
        want = onoff.statistic(data, mu)
        got = hf.statistic(data[:, ::-1], mu)
        assert np.max(np.abs(got - want)) < 1e-6
        assert np.allclose(
            hf.nuisance_hat(data[:, ::-1], mu)[:, 0], onoff.nuisance_hat(data, mu)[:, 0], atol=1e-6
        )


def test_exact_projected_full_construction_covers_and_contains_the_hybrid_set():
    model = OnOffModel()
    for level in LEVELS:
        for point in ([0.0, 0.6], [1.0, 1.0], [3.0, 1.4]):
            d, w = exact_distribution(model, np.array(point))
            acc = exact_projected_sets(model, d, np.array([point[0]]), level, nu_points=9)[:, 0]
            assert w[acc].sum() >= level - 1e-9, (level, point, w[acc].sum())
    # on one dataset the projection is the wider one
    obs = np.array([[100.0, 70.0]])
    grid = np.linspace(0, 5, 26)
    proj = exact_projected_sets(model, obs, grid, 0.6827, nu_points=9)[0]
    assert proj.sum() > 0 and proj[10]  # mu = 2 = mu-hat is inside


def test_counting_quadrature_is_converged():
    model = CountingModel()
    pts = np.array([[0.03, 30.0, 6.0]])  # next to the bound sigma = 0, where c changes fastest
    for level in LEVELS:
        a = exact_critical_values(model, pts, level, nodes=120)
        b = exact_critical_values(model, pts, level, nodes=240)
        assert np.allclose(a, b, atol=0.01), (level, a, b)


def test_learning_is_deterministic_given_the_seed():
    model = OnOffModel()
    runs = []
    for _ in range(2):
        p, _, t = simulate_statistics(model, 3000, seed=4)
        cv = learn_critical_values(p, t, model.bounds, seed=2, max_iter=30, n_bags=2)
        runs.append(cv(np.array([[1.0, 1.0], [3.0, 0.7]]), 0.95))
    assert np.array_equal(runs[0], runs[1])


def test_confidence_sets_on_a_grid_match_the_pointwise_acceptance(onoff):
    model, cv = onoff
    data = np.array([[100.0, 70.0], [75.0, 80.0]])
    grid = np.linspace(0, 5, 21)
    sets = confidence_sets(model, data, cv, 0.6827, grid)
    for j, mu in enumerate(grid):
        assert np.array_equal(sets.accepted[:, j], accept(model, data, mu, cv, 0.6827))
    assert sets.lo[1] == 0.0 and sets.n_pieces.tolist() == [1, 1]  # n_on < n_off: mu-hat = 0
    assert 1.0 <= sets.lo[0] <= 1.3 and 2.7 <= sets.hi[0] <= 3.0


def test_bad_inputs_name_what_was_expected(onoff):
    model, cv = onoff
    with pytest.raises(
        ModelError, match=r"no critical values learned at level 0\.9; learned: \(0\.6827, 0\.95\)"
    ):
        cv(np.array([[1.0, 1.0]]), 0.9)
    with pytest.raises(
        ModelError,
        match=r"unknown nuisance treatment 'profile'; expected one of \('hybrid', 'least_favourable'\)",
    ):
        accept(model, np.array([[80.0, 70.0]]), 1.0, cv, 0.95, "profile")
    with pytest.raises(
        ModelError, match=r"gamma must be in \[0, 1 - level\) = \[0, 0\.05\), got 0\.2"
    ):
        accept(model, np.array([[80.0, 70.0]]), 1.0, cv, 0.95, "least_favourable", gamma=0.2)
    with pytest.raises(ModelError, match=r"statistics must be 3 finite values, got shape \(2,\)"):
        learn_critical_values(np.ones((3, 2)), np.ones(2), model.bounds)
    with pytest.raises(
        ModelError, match=r"confidence levels must be inside \(0, 1\), got \[1\.5\]"
    ):
        learn_critical_values(np.ones((3, 2)), np.ones(3), model.bounds, levels=(1.5,))
    with pytest.raises(
        ModelError, match=r"on/off model: data must have shape \(n, 2\), got \(1, 3\)"
    ):
        model.statistic(np.ones((1, 3)), 1.0)
    with pytest.raises(
        ModelError, match=r"covered must have one indicator per parameter row \(4\), got \(3,\)"
    ):
        coverage_diagnostic(np.ones((4, 2)), np.ones(3), np.ones((1, 2)), nominal=0.5)
    with pytest.raises(
        ModelError, match=r"unknown coverage estimator 'gam'; expected one of \('splines', 'bins'\)"
    ):
        coverage_diagnostic(np.ones((4, 2)), np.ones(4), np.ones((1, 2)), nominal=0.5, method="gam")
    with pytest.raises(ModelError, match=r"at most 2 bins; got 0 constrained, 3 bins"):
        exact_distribution(HistFactoryNeyman(single_bin(1.0, 1.0, 3)), np.array([1.0]))
    with pytest.raises(
        ModelError, match=r"bounds must have shape \(1, 2\) for parameters \['mu'\], got \(2, 2\)"
    ):
        HistFactoryNeyman(single_bin(1.0, 1.0), bounds=np.ones((2, 2)))


def test_coverage_plot_is_written(tmp_path, onoff):
    from systpipe.errors import ConfigError
    from systpipe.plots.neyman import plot_coverage

    model, cv = onoff
    theta, data = diagnostic_sample(model, 3)
    z = accept(model, data[:2000], theta[:2000, 0], cv, 0.6827)
    diag = coverage_diagnostic(theta[:2000], z, ONOFF_GRID, nominal=0.6827, names=model.names)
    paths = plot_coverage(diag, tmp_path / "cov.png")
    assert [p.name for p in paths] == ["cov.png", "cov.pdf"] and paths[0].stat().st_size > 10_000
    with pytest.raises(
        ConfigError, match=r"coverage plot: axis 2 outside the grid's parameters \['mu', 'nu'\]"
    ):
        plot_coverage(diag, tmp_path / "bad.png", axis=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cov.pdf", "cov.png"]


def test_berger_boos_least_favourable_sets_cover():
    """max over the data's 99 % nu set, c at level + 0.01: coverage >= level (pooled)."""
    model = OnOffModel()
    p, _, t = simulate_statistics(model, 20_000, seed=21, pad=0.1)
    cv = learn_critical_values(
        p, t, model.bounds, levels=(0.6827, 0.6927), seed=0, features=model.features
    )
    theta, data = diagnostic_sample(model, 22)
    z = accept(model, data[:4000], theta[:4000, 0], cv, 0.6827, "least_favourable", gamma=0.01)
    assert z.mean() >= 0.6827 - 2 * math.sqrt(0.6827 * 0.3173 / 4000), z.mean()
    with pytest.raises(ModelError, match=r"no critical values learned at level 0\.7027"):
        accept(model, data[:5], theta[:5, 0], cv, 0.6827, "least_favourable", gamma=0.02)


def test_polynomial_critical_values_recover_an_exact_quadratic_quantile():
    # t = (1 + mu^2 / 2 + nu / 4) chi2_1 at theta = (mu, nu): the exact 68.27 % quantile is
    # that factor times 0.98870, a degree-2 polynomial the regression can represent exactly
    rng = np.random.default_rng(5)
    box = np.array([[0.0, 2.0], [-1.0, 1.0]])
    params = rng.uniform(box[:, 0], box[:, 1], size=(8000, 2))
    scale = 1.0 + params[:, 0] ** 2 / 2 + params[:, 1] / 4
    t = scale * rng.chisquare(1, size=8000)
    cv = learn_critical_values(params, t, box, levels=(0.6827,), kind="polynomial")
    grid = np.array([[0.2, -0.8], [1.0, 0.0], [1.8, 0.8], [0.5, 0.5]])
    exact = (1.0 + grid[:, 0] ** 2 / 2 + grid[:, 1] / 4) * sps.chi2.ppf(0.6827, 1)
    # the quantile's MC error at 8000 points spread over 6 coefficients: a few per cent
    np.testing.assert_allclose(cv(grid, 0.6827), exact, rtol=0.06)
    assert cv.scaled and cv.n_train == 8000
    with pytest.raises(ModelError, match="regression kind"):
        learn_critical_values(params, t, box, kind="spline")
