"""Learned Neyman confidence sets with nuisance parameters (the LF2I recipe, no R).

The steps, for a :class:`~.neyman_models.NeymanModel` with parameters theta = (mu, nu):

1. :func:`simulate_statistics`: B parameter points drawn uniformly in the model's box, one
   dataset each, and the profile likelihood ratio t(mu) of each dataset at its own mu.
2. :func:`learn_critical_values`: quantile regression of t on theta, one regressor per
   confidence level: c_alpha(mu, nu), the level-quantile of t under (mu, nu). Two kinds:
   ``"trees"`` (scikit-learn ``HistGradientBoostingRegressor(loss="quantile")``, flexible, for
   steep c such as next to a POI bound) and ``"polynomial"`` (a linear quantile regression,
   ``QuantileRegressor``, on the polynomial features of theta scaled to the box: far lower
   variance at a given budget where c is smooth, as on the workflow's binned models). The size
   of the test of mu at known nu is then alpha up to the regression's error. With ``asymptotic``
   (the model's ``asymptotic_sigma``) the regression starts from the asymptotic critical value
   of :mod:`.neyman_asymptotic` and learns the correction only; the settings validated against
   the exact constructions are in docs/neyman.md ("Learned Neyman intervals: validation").
3. :func:`learn_pvalue`: the amortised p-value p(t; mu, nu) = P(T >= t | mu, nu), a classifier
   (LightGBM, boosted from the asymptotic p-value, chi2_1.sf(t) or with ``asymptotic`` the
   bounded-POI one, as init score) of
   1[t_i >= t'] on (theta_i, t') with cutoffs t' resampled from the simulated statistics
   (LF2I's p-value calibration): one model for every level.
4. :func:`confidence_sets` / :func:`accept`: the set for mu, {mu : t(mu; D) <= c(mu)}, with the
   nuisance handled in one of two documented ways:

   - ``"hybrid"``: c(mu) = c_alpha(mu, nu-hat-hat(mu)), the critical value at the conditional
     estimate of the nuisance (clipped to the box). Exact coverage when c does not depend on
     nu; otherwise approximate (no guarantee, usually close: see the diagnostics).
   - ``"least_favourable"``: c(mu) = max over nu in a set of c_alpha(mu, nu) (a grid of
     ``nu_points`` values per nuisance). With ``gamma`` = 0 the set is the whole box and the
     coverage is >= the level for every true nu (up to the regression's error); c(mu) is then
     tabulated on :data:`LF_POINTS` values of mu and interpolated linearly. With ``gamma`` > 0 it is the data's (1 - gamma) set for nu at fixed
     mu, {nu : t_joint(mu, nu) - t(mu) <= chi2_K(1 - gamma)}, and c is taken at level + gamma
     (Berger-Boos): coverage >= level - (the error of that asymptotic nu set).

Everything is deterministic given the seed; every fit uses ``threads`` threads (threadpoolctl).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import lightgbm as lgb
import numpy as np
from scipy import stats as sps
from scipy.special import expit, logit
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import QuantileRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures
from threadpoolctl import threadpool_limits

from ..errors import ModelError
from .neyman_asymptotic import asymptotic_pvalue, asymptotic_quantile
from .neyman_models import NeymanModel, sample_parameters

#: Confidence levels of the acceptance tests: 1 sigma and 95 %.
LEVELS = (0.6827, 0.95)
METHODS = ("hybrid", "least_favourable")
#: mu values on which the least-favourable critical value over the whole box is tabulated.
LF_POINTS = 201
#: The kinds of critical-value regression (``learn_critical_values(kind=...)``).
REGRESSION_KINDS = ("trees", "polynomial")


class Regressor(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...


def sampling_box(bounds: np.ndarray, pad: float) -> np.ndarray:
    """``bounds`` widened by ``pad`` times each width on both sides, except the POI's lower
    bound (its physical limit): learning on a box larger than the one it is used on keeps the
    regression's edge effects outside.

    Example:
        >>> sampling_box(np.array([[0.0, 5.0], [0.6, 1.4]]), 0.1).round(2).tolist()
        [[0.0, 5.5], [0.52, 1.48]]
    """
    b = np.array(bounds, dtype=np.float64)
    w = b[:, 1] - b[:, 0]
    out = np.column_stack([b[:, 0] - pad * w, b[:, 1] + pad * w])
    out[0, 0] = b[0, 0]
    return out


def jittered(model: NeymanModel, data: np.ndarray, u: np.ndarray | float) -> np.ndarray:
    """``data`` with ``u`` added to its ``model.n_counts`` leading (count) columns."""
    d = np.array(np.atleast_2d(data), dtype=np.float64)
    d[:, : model.n_counts] += np.asarray(u, dtype=np.float64).reshape(-1, 1)
    return d


def simulate_statistics(
    model: NeymanModel, n: int, seed: int, *, pad: float = 0.0, jitter: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters (n, P) uniform in ``model.bounds`` (widened by ``pad``, see
    :func:`sampling_box`), one dataset each (n, D) and its t(mu) (n,). With ``jitter`` the
    counts get a U(0, 1) offset before t is computed (one per dataset, the same for all its
    counts): a continuous statistic for the discrete-data construction of :func:`accept`.

    Example:
        >>> from systpipe.stat.neyman_models import OnOffModel
        >>> p, d, t = simulate_statistics(OnOffModel(), 1000, seed=3)
        >>> p.shape, d.shape, bool(t.min() >= 0), round(float(np.mean(t <= 1.0)), 1)
        ((1000, 2), (1000, 2), True, 0.7)
    """
    if n < 1:
        raise ModelError(f"simulation budget n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    params = sample_parameters(sampling_box(model.bounds, pad), n, rng)
    data = model.simulate(params, rng)
    if jitter:
        data = jittered(model, data, rng.random(n))
    return params, data, model.statistic(data, params[:, 0])


Features = Callable[[np.ndarray], np.ndarray]
#: params (n, P) -> the asymptotic standard deviation of mu-hat at each point (n,), e.g.
#: ``OnOffModel.asymptotic_sigma``: the regressions then start from the asymptotic
#: (:mod:`.neyman_asymptotic`) critical value / p-value and learn the correction only.
Asymptotic = Callable[[np.ndarray], np.ndarray]


def _ratio(asymptotic: Asymptotic, params: np.ndarray) -> np.ndarray:
    """r = mu / sigma(theta), the POI's asymptotic distance from its bound 0."""
    return np.asarray(np.maximum(params[:, 0], 0.0) / asymptotic(params), dtype=np.float64)


def _baseline(asymptotic: Asymptotic | None, params: np.ndarray, level: float) -> np.ndarray:
    if asymptotic is None:
        return np.zeros(params.shape[0])
    return asymptotic_quantile(level, _ratio(asymptotic, params))


def _features(features: Features | None, params: np.ndarray) -> np.ndarray:
    """The regression inputs: the parameters, plus ``features(params)`` columns if given."""
    if features is None:
        return params
    return np.column_stack([params, features(params)])


def _scaled(bounds: np.ndarray, params: np.ndarray) -> np.ndarray:
    """theta mapped linearly to [-1/2, 1/2] over the box: conditioned polynomial features."""
    width = np.where(bounds[:, 1] > bounds[:, 0], bounds[:, 1] - bounds[:, 0], 1.0)
    return np.asarray((params - bounds[:, 0]) / width - 0.5, dtype=np.float64)


def _as_params(bounds: np.ndarray, params: np.ndarray) -> np.ndarray:
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    if p.ndim != 2 or p.shape[1] != bounds.shape[0]:
        raise ModelError(f"params must have {bounds.shape[0]} columns, got shape {p.shape}")
    return p


def _clip(bounds: np.ndarray, params: np.ndarray) -> np.ndarray:
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    if p.shape[1] != bounds.shape[0]:
        raise ModelError(f"params must have {bounds.shape[0]} columns, got shape {p.shape}")
    return np.clip(p, bounds[:, 0], bounds[:, 1])


@dataclass(frozen=True)
class CriticalValues:
    """Learned c_alpha(theta) per confidence level (call it: ``cv(params, level)``)."""

    levels: tuple[float, ...]
    regressors: tuple[tuple[Regressor, ...], ...]
    bounds: np.ndarray
    n_train: int
    threads: int = 1
    features: Features | None = None
    asymptotic: Asymptotic | None = None
    #: The regressors see theta scaled to [-1/2, 1/2] over the box (the polynomial kind).
    scaled: bool = False

    def regressor(self, level: float) -> tuple[Regressor, ...]:
        for lv, reg in zip(self.levels, self.regressors, strict=True):
            if math.isclose(lv, level, abs_tol=1e-9):
                return reg
        raise ModelError(f"no critical values learned at level {level}; learned: {self.levels}")

    def __call__(self, params: np.ndarray, level: float) -> np.ndarray:
        """c_level at ``params`` (n, P), clipped to the box, >= 0."""
        regs = self.regressor(level)
        p = _clip(self.bounds, params)
        x = _features(self.features, _scaled(self.bounds, p) if self.scaled else p)
        with threadpool_limits(limits=self.threads):
            out = np.mean([reg.predict(x) for reg in regs], axis=0)
        out = out + _baseline(self.asymptotic, p, level)
        return np.maximum(np.asarray(out, dtype=np.float64), 0.0)


def learn_critical_values(
    params: np.ndarray,
    statistics: np.ndarray,
    bounds: np.ndarray,
    levels: Sequence[float] = LEVELS,
    *,
    seed: int = 0,
    max_iter: int = 300,
    learning_rate: float = 0.1,
    max_leaf_nodes: int = 7,
    min_samples_leaf: int = 300,
    threads: int = 1,
    features: Features | None = None,
    monotonic: Sequence[int] | None = None,
    n_bags: int = 1,
    asymptotic: Asymptotic | None = None,
    kind: str = "trees",
    degree: int = 2,
) -> CriticalValues:
    """Quantile regression of ``statistics`` on ``params``, one regressor per level.

    ``kind="trees"`` fits boosted quantile trees (``max_iter`` ... ``monotonic``, ``n_bags``
    bootstrap bags averaged); ``kind="polynomial"`` fits the exact linear quantile regression
    (pinball loss, no penalty, HiGHS) on the degree-``degree`` polynomial features of theta
    scaled to the box (the tree settings are then unused). Measured on the default workflow's
    binned model (5,000 simulations, 6 seeds): the 68.27 % critical value at the truth spread
    0.92-1.09 with trees and 0.98-1.00 with the quadratic, against the true 1.014.

    With ``asymptotic`` (see :data:`Asymptotic`) the target is t - c_asym(level; theta), whose
    level-quantile is c(theta) - c_asym(theta) (c_asym depends on theta only): the trees learn
    the small finite-sample correction instead of the steep rise of c next to mu = 0.

    Example:
        >>> from systpipe.stat.neyman_models import OnOffModel
        >>> m = OnOffModel()
        >>> p, _, t = simulate_statistics(m, 5000, seed=1)
        >>> cv = learn_critical_values(p, t, m.bounds, levels=(0.95,), max_iter=50)
        >>> c = cv(np.array([[2.5, 1.0]]), 0.95)[0]  # about chi2_1 95 % = 3.84
        >>> bool(3.0 < c < 4.8)
        True
    """
    p = _as_params(np.asarray(bounds, dtype=np.float64), params)
    t = np.asarray(statistics, dtype=np.float64)
    if t.shape != (p.shape[0],) or not np.all(np.isfinite(t)):
        raise ModelError(f"statistics must be {p.shape[0]} finite values, got shape {t.shape}")
    bad = [lv for lv in levels if not 0.0 < lv < 1.0]
    if bad:
        raise ModelError(f"confidence levels must be inside (0, 1), got {bad}")
    if n_bags < 1:
        raise ModelError(f"n_bags must be >= 1, got {n_bags}")
    if kind not in REGRESSION_KINDS:
        raise ModelError(f"regression kind must be one of {REGRESSION_KINDS}, got {kind!r}")
    if degree < 1:
        raise ModelError(f"polynomial degree must be >= 1, got {degree}")
    box = np.asarray(bounds, dtype=np.float64)
    scaled = kind == "polynomial"
    x = _features(features, _scaled(box, p) if scaled else p)
    rng = np.random.default_rng(seed)
    rows = [np.arange(len(t))] if n_bags == 1 else [
        rng.integers(0, len(t), len(t)) for _ in range(n_bags)
    ]  # fmt: skip
    regs = []
    for lv in levels:
        y = t - _baseline(asymptotic, p, float(lv))
        bag: list[Regressor] = []
        for k, r in enumerate(rows):
            if scaled:
                poly = make_pipeline(
                    PolynomialFeatures(degree, include_bias=False),
                    QuantileRegressor(quantile=float(lv), alpha=0.0, solver="highs"),
                )
                with threadpool_limits(limits=threads):
                    bag.append(poly.fit(x[r], y[r]))
                continue
            reg = HistGradientBoostingRegressor(
                loss="quantile",
                quantile=float(lv),
                max_iter=max_iter,
                learning_rate=learning_rate,
                max_leaf_nodes=max_leaf_nodes,
                min_samples_leaf=min_samples_leaf,
                early_stopping=False,
                random_state=seed + k,
                monotonic_cst=None if monotonic is None else list(monotonic),
            )
            with threadpool_limits(limits=threads):
                bag.append(reg.fit(x[r], y[r]))
        regs.append(tuple(bag))
    return CriticalValues(
        tuple(float(x) for x in levels),
        tuple(regs),
        box,
        len(t),
        threads,
        features,
        asymptotic,
        scaled,
    )


def _offset(
    t: np.ndarray, dof: int, asymptotic: Asymptotic | None = None, params: np.ndarray | None = None
) -> np.ndarray:
    """logit of the asymptotic p-value, clipped to (1e-6, 1 - 1e-6): Wilks' chi2_dof.sf(t), or
    with ``asymptotic`` the bounded-POI one of :func:`~.neyman_asymptotic.asymptotic_pvalue`."""
    if asymptotic is None or params is None:
        p = sps.chi2.sf(t, dof)
    else:
        p = asymptotic_pvalue(t, _ratio(asymptotic, params))
    return np.asarray(logit(np.clip(p, 1e-6, 1.0 - 1e-6)), dtype=np.float64)


@dataclass(frozen=True)
class PValueModel:
    """Learned amortised p-value p(t; theta) = P(T >= t | theta) (call it: ``pv(params, t)``):
    expit(logit(chi2_dof.sf(t)) + boosted correction(theta, t))."""

    booster: lgb.Booster
    bounds: np.ndarray
    n_train: int
    dof: int = 1
    threads: int = 1
    features: Features | None = None
    asymptotic: Asymptotic | None = None

    def __call__(self, params: np.ndarray, t: np.ndarray) -> np.ndarray:
        p = _clip(self.bounds, params)
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), (p.shape[0],))
        x = np.column_stack([_features(self.features, p), tt])
        raw = self.booster.predict(x, raw_score=True, num_threads=self.threads)
        off = _offset(tt, self.dof, self.asymptotic, p)
        return np.asarray(expit(raw + off), dtype=np.float64)


def learn_pvalue(
    params: np.ndarray,
    statistics: np.ndarray,
    bounds: np.ndarray,
    *,
    n_augment: int = 10,
    seed: int = 0,
    n_estimators: int = 300,
    learning_rate: float = 0.05,
    num_leaves: int = 3,
    min_child_samples: int = 2000,
    dof: int = 1,
    threads: int = 1,
    features: Features | None = None,
    asymptotic: Asymptotic | None = None,
) -> PValueModel:
    """Classifier of 1[t_i >= t'] on (theta_i, t'), ``n_augment`` cutoffs t' per simulation
    drawn from the simulated statistics (LF2I's p-value calibration). LightGBM binary
    objective boosted from the asymptotic p-value (init score logit chi2_dof.sf(t'), or with
    ``asymptotic`` the bounded-POI p-value of :func:`~.neyman_asymptotic.asymptotic_pvalue`,
    which is right at mu = 0 where chi2_1 is off by a factor 2), so the trees learn only the
    finite-sample correction; ``threads`` LightGBM threads.

    Example:
        >>> from systpipe.stat.neyman_models import OnOffModel
        >>> m = OnOffModel()
        >>> p, _, t = simulate_statistics(m, 5000, seed=2)
        >>> pv = learn_pvalue(p, t, m.bounds, n_augment=2, n_estimators=50)
        >>> q = pv(np.array([[2.5, 1.0], [2.5, 1.0]]), np.array([1.0, 3.84]))
        >>> bool(0.28 < q[0] < 0.36 and 0.03 < q[1] < 0.07)  # exact: 0.318 and 0.05
        True
    """
    p = _as_params(np.asarray(bounds, dtype=np.float64), params)
    t = np.asarray(statistics, dtype=np.float64)
    if t.shape != (p.shape[0],) or not np.all(np.isfinite(t)):
        raise ModelError(f"statistics must be {p.shape[0]} finite values, got shape {t.shape}")
    if n_augment < 1:
        raise ModelError(f"n_augment must be >= 1, got {n_augment}")
    rng = np.random.default_rng(seed)
    cut = rng.choice(t, size=(n_augment, t.size), replace=True).ravel()
    f = _features(features, p)
    x = np.column_stack([np.tile(f, (n_augment, 1)), cut])
    y = (np.tile(t, n_augment) >= cut).astype(np.int64)
    clf = lgb.LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        num_leaves=num_leaves,
        min_child_samples=min_child_samples,
        n_jobs=threads,
        deterministic=True,
        force_row_wise=True,
        random_state=seed,
        verbose=-1,
    )
    p_rep = np.tile(p, (n_augment, 1))
    clf.fit(x, y, init_score=_offset(cut, dof, asymptotic, p_rep))
    return PValueModel(clf.booster_, np.asarray(bounds), len(t), dof, threads, features, asymptotic)


def nuisance_grid(bounds: np.ndarray, points: int) -> np.ndarray:
    """Product grid (M, K) of ``points`` equally spaced values per nuisance (rows 1.. of bounds).

    Example:
        >>> nuisance_grid(np.array([[0.0, 5.0], [0.6, 1.4]]), 3).ravel().round(2).tolist()
        [0.6, 1.0, 1.4]
    """
    axes = [np.linspace(lo, hi, points) for lo, hi in np.asarray(bounds)[1:]]
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, len(axes))


def critical_at(
    model: NeymanModel,
    data: np.ndarray,
    mu: np.ndarray | float,
    critical: CriticalValues,
    level: float,
    method: str = "hybrid",
    *,
    nu_points: int = 9,
    gamma: float = 0.0,
) -> np.ndarray:
    """The critical value c(mu) of each dataset under ``method`` (see the module docstring)."""
    if method not in METHODS:
        raise ModelError(f"unknown nuisance treatment {method!r}; expected one of {METHODS}")
    n = np.atleast_2d(data).shape[0]
    mu_b = np.broadcast_to(np.asarray(mu, dtype=np.float64), (n,))
    if method == "hybrid":
        nu = model.nuisance_hat(data, mu_b)
        return critical(np.column_stack([mu_b, nu]), level)
    if not 0.0 <= gamma < 1.0 - level:
        raise ModelError(f"gamma must be in [0, 1 - level) = [0, {1 - level:g}), got {gamma}")
    grid = nuisance_grid(critical.bounds, nu_points)
    m_n = grid.shape[0]
    if gamma == 0.0:  # c(mu) = max over the box: on LF_POINTS values of mu, interpolated
        mus = np.linspace(critical.bounds[0, 0], critical.bounds[0, 1], LF_POINTS)
        pts = np.column_stack([np.repeat(mus, m_n), np.tile(grid, (LF_POINTS, 1))])
        table = critical(pts, level).reshape(LF_POINTS, m_n).max(axis=1)
        return np.asarray(np.interp(mu_b, mus, table), dtype=np.float64)
    pts = np.column_stack([np.repeat(mu_b, m_n), np.tile(grid, (n, 1))])
    c = critical(pts, level + gamma).reshape(n, m_n)
    if gamma > 0.0:
        joint = getattr(model, "joint_statistic", None)
        if joint is None:
            raise ModelError("gamma > 0 needs a model with joint_statistic (the nu confidence set)")
        d_rep = np.repeat(np.atleast_2d(data), m_n, axis=0)
        tj = joint(d_rep, pts).reshape(n, m_n)
        t_mu = model.statistic(data, mu_b)
        inside = tj - t_mu[:, None] <= sps.chi2.ppf(1.0 - gamma, grid.shape[1])
        # no grid point inside (a narrow nu set): the nearest one to nu-hat-hat
        nearest = np.argmin(tj, axis=1)
        inside[np.arange(n), nearest] = True
        c = np.where(inside, c, -np.inf)
    return np.asarray(c.max(axis=1), dtype=np.float64)


def accept(
    model: NeymanModel,
    data: np.ndarray,
    mu: np.ndarray | float,
    critical: CriticalValues,
    level: float,
    method: str = "hybrid",
    *,
    nu_points: int = 9,
    gamma: float = 0.0,
    jitter: int = 0,
) -> np.ndarray:
    """Whether each dataset's set contains ``mu`` (a scalar or one value per dataset): the
    coverage indicator when ``mu`` is the true value.

    ``jitter`` > 0 (critical values learned with ``simulate_statistics(jitter=True)``): mu is
    accepted when the test accepts it for some offset u of the counts among ``jitter`` values
    equally spaced in [0, 1]. The randomised test at u ~ U(0, 1) has size 1 - level; accepting
    whenever some u accepts can only add coverage, so the sets cover at least at the level even
    for discrete data, where a smooth c(mu) cannot follow the jumps of the exact quantile.
    """
    n = np.atleast_2d(data).shape[0]
    mu_b = np.broadcast_to(np.asarray(mu, dtype=np.float64), (n,))
    cv = partial(critical_at, critical=critical, level=level, method=method,
                 nu_points=nu_points, gamma=gamma)  # fmt: skip
    if jitter:
        out = np.zeros(n, dtype=bool)
        for u in np.linspace(0.0, 1.0, int(jitter)):
            d = jittered(model, data, np.full(n, u))
            out |= model.statistic(d, mu_b) <= cv(model, d, mu_b)
        return out
    return np.asarray(model.statistic(data, mu_b) <= cv(model, data, mu_b))


@dataclass(frozen=True)
class NeymanSets:
    """Confidence sets of mu on a grid: ``accepted`` (T, G); ``lo``/``hi`` the smallest and
    largest accepted grid value (NaN if none); ``n_pieces`` the number of disjoint runs."""

    mu_grid: np.ndarray
    accepted: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_pieces: np.ndarray
    level: float
    method: str


def confidence_sets(
    model: NeymanModel,
    data: np.ndarray,
    critical: CriticalValues,
    level: float,
    mu_grid: np.ndarray,
    method: str = "hybrid",
    *,
    nu_points: int = 9,
    gamma: float = 0.0,
) -> NeymanSets:
    """The set {mu in mu_grid : t(mu) <= c(mu)} of every dataset (T, D).

    Example:
        >>> from systpipe.stat.neyman_models import OnOffModel
        >>> m = OnOffModel()
        >>> p, _, t = simulate_statistics(m, 5000, seed=1)
        >>> cv = learn_critical_values(p, t, m.bounds, levels=(0.6827,), max_iter=50)
        >>> s = confidence_sets(m, np.array([[100.0, 70.0]]), cv, 0.6827, np.linspace(0, 5, 51))
        >>> # mu-hat = 2 with sigma about 0.87 (the grid has 0.1 steps, 50 boosting iterations)
        >>> round(float(s.lo[0]), 1), round(float(s.hi[0]), 1), int(s.n_pieces[0])
        (1.2, 2.7, 1)
    """
    d = np.atleast_2d(np.asarray(data, dtype=np.float64))
    grid = np.asarray(mu_grid, dtype=np.float64)
    acc = np.column_stack(
        [
            accept(model, d, float(m), critical, level, method, nu_points=nu_points, gamma=gamma)
            for m in grid
        ]
    )
    anyacc = acc.any(axis=1)
    first = np.argmax(acc, axis=1)
    last = grid.size - 1 - np.argmax(acc[:, ::-1], axis=1)
    lo = np.where(anyacc, grid[first], np.nan)
    hi = np.where(anyacc, grid[last], np.nan)
    pieces = np.sum(np.diff(acc.astype(np.int8), axis=1, prepend=0) == 1, axis=1)
    return NeymanSets(grid, acc, lo, hi, pieces, float(level), method)


__all__ = [
    "LEVELS",
    "METHODS",
    "CriticalValues",
    "NeymanSets",
    "PValueModel",
    "accept",
    "confidence_sets",
    "jittered",
    "critical_at",
    "learn_critical_values",
    "learn_pvalue",
    "nuisance_grid",
    "sampling_box",
    "simulate_statistics",
]
