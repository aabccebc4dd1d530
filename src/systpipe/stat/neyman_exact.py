"""Exact Neyman constructions by enumeration, the references for the learned ones.

:func:`exact_distribution` lists the outcomes of a model at one parameter point with their
probabilities:

- :class:`~.neyman_models.OnOffModel`: every (n_on, n_off) between the 1e-13 and 1 - 1e-13
  Poisson quantiles (the mass left out is below 1e-12);
- :class:`~.neyman_models.CountingModel`: every N between those quantiles times a product
  rule (``nodes`` x ``nodes``) for the Gaussian (L_obs, b_obs) with equal-probability midpoint
  nodes Phi^-1((i + 1/2)/nodes): exact in N, a quadrature in the continuous auxiliary
  measurements whose error on the probability of a set is O(1/nodes) (Gauss-Hermite rules,
  made for smooth integrands, do worse on the indicators of acceptance regions);
- :class:`~.neyman_models.HistFactoryNeyman` without constrained parameters and with one or two
  bins: every count vector.

From it: exact critical values (the smallest c with P(t <= c) >= level, so the test has size
<= 1 - level), exact p-values P(t >= t_obs), the exact coverage of any acceptance rule
(:func:`exact_coverage`), and the two reference constructions for mu:

- :func:`exact_projected_sets`: the full construction over (mu, nu) with the joint statistic
  t(mu, nu) = -2 ln L(mu, nu)/L-hat and exact c(mu, nu), projected on mu (mu is in the set when
  some nu on the grid is): coverage >= level for every true (mu, nu) on the grid, by
  construction;
- :func:`exact_hybrid_critical`: the hybrid construction with exact c(mu, nu) on a nuisance grid,
  interpolated (linearly) at nu-hat-hat(mu).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from scipy import stats as sps
from scipy.interpolate import RegularGridInterpolator

from ..errors import ModelError
from .neyman import nuisance_grid
from .neyman_models import CountingModel, HistFactoryNeyman, NeymanModel, OnOffModel

_TAIL = 1e-13
_TIE = 1e-9  # statistics equal to this (relative) are the same outcome's value


def _poisson_range(mean: float) -> np.ndarray:
    lo = int(sps.poisson.ppf(_TAIL, mean)) if mean > 0 else 0
    hi = int(sps.poisson.ppf(1.0 - _TAIL, mean)) if mean > 0 else 0
    return np.arange(lo, hi + 1, dtype=np.float64)


def exact_distribution(
    model: NeymanModel, params: np.ndarray, *, nodes: int = 120
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes (M, D) and their probabilities (M,) at one parameter point (P,).

    Example:
        >>> d, w = exact_distribution(OnOffModel(), np.array([1.0, 1.0]))
        >>> d.shape[1], round(float(w.sum()), 10), round(float(w @ d[:, 0]), 6)  # mean 85
        (2, 1.0, 85.0)
    """
    p = np.asarray(params, dtype=np.float64).ravel()
    if isinstance(model, OnOffModel):
        lam = model.mean(p[None, :])[0]
        a, b = _poisson_range(lam[0]), _poisson_range(lam[1])
        grid = np.array(list(itertools.product(a, b)))
        w = sps.poisson.pmf(grid[:, 0], lam[0]) * sps.poisson.pmf(grid[:, 1], lam[1])
        return grid, w
    if isinstance(model, CountingModel):
        # equal-probability midpoints: the integrands (indicators t <= c) are not smooth
        x = sps.norm.ppf((np.arange(nodes) + 0.5) / nodes)
        wx = np.full(nodes, 1.0 / nodes)
        lam = max(p[0] * p[1] + p[2], 0.0)
        n = _poisson_range(lam)
        zl, zb = np.meshgrid(x, x, indexing="ij")
        wq = np.outer(wx, wx).ravel()
        nn = np.repeat(n, wq.size)
        data = np.column_stack(
            [
                nn,
                np.tile(p[1] + model.d_lumi * zl.ravel(), n.size),
                np.tile(p[2] + model.d_bkg * zb.ravel(), n.size),
            ]
        )
        return data, np.repeat(sps.poisson.pmf(n, lam), wq.size) * np.tile(wq, n.size)
    if isinstance(model, HistFactoryNeyman):
        hf = model.model
        if hf.constrained.size or hf.n_bins > 2:
            raise ModelError(
                "exact enumeration of a HistFactory model needs no constrained parameters and "
                f"at most 2 bins; got {hf.constrained.size} constrained, {hf.n_bins} bins"
            )
        lam = hf.expected(model._full(p[None, :])[0])
        axes = [_poisson_range(float(x)) for x in lam]
        grid = np.array(list(itertools.product(*axes)))
        w = np.prod([sps.poisson.pmf(grid[:, i], lam[i]) for i in range(lam.size)], axis=0)
        return grid, w
    raise ModelError(f"no exact enumeration for {type(model).__name__}")


def weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The smallest v with sum(weights[values <= v]) >= level * sum(weights).

    Example:
        >>> weighted_quantile(np.array([3.0, 1.0, 2.0]), np.array([0.2, 0.5, 0.3]), 0.6)
        2.0
    """
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    i = int(np.searchsorted(cum, level * cum[-1] * (1.0 - 1e-12), side="left"))
    return float(values[order][min(i, values.size - 1)])


def exact_critical_values(
    model: NeymanModel, points: np.ndarray, level: float, *, joint: bool = False, nodes: int = 120
) -> np.ndarray:
    """Exact c_level(theta) of t(mu) (or, with ``joint``, of t(mu, nu)) at each point (G, P).

    Example:
        >>> c = exact_critical_values(OnOffModel(), np.array([[2.5, 1.0]]), 0.95)
        >>> round(float(c[0]), 2)  # the asymptotic value is 3.84
        3.86
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    out = np.empty(len(pts))
    for g, p in enumerate(pts):
        d, w = exact_distribution(model, p, nodes=nodes)
        t = _stat(model, d, p, joint)
        out[g] = weighted_quantile(t, w, level)
    return out


def _stat(model: NeymanModel, d: np.ndarray, p: np.ndarray, joint: bool) -> np.ndarray:
    if not joint:
        return model.statistic(d, float(p[0]))
    fn = getattr(model, "joint_statistic", None)
    if fn is None:
        raise ModelError(f"{type(model).__name__} has no joint_statistic for the full construction")
    return np.asarray(fn(d, p[None, :]))


def exact_pvalues(
    model: NeymanModel, points: np.ndarray, t_obs: np.ndarray, *, nodes: int = 120
) -> np.ndarray:
    """Exact P(t(mu) >= t_obs | theta) at each point (G, P) for each t_obs (G,).

    Example:
        >>> p = exact_pvalues(OnOffModel(), np.array([[2.5, 1.0]]), np.array([1.0]))
        >>> round(float(p[0]), 3)  # the asymptotic value is 0.317
        0.318
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    t0 = np.broadcast_to(np.asarray(t_obs, dtype=np.float64), (len(pts),))
    out = np.empty(len(pts))
    for g, p in enumerate(pts):
        d, w = exact_distribution(model, p, nodes=nodes)
        t = model.statistic(d, float(p[0]))
        out[g] = float(w[t >= t0[g] - _TIE * max(1.0, abs(t0[g]))].sum())
    return out


Acceptor = Callable[[np.ndarray, np.ndarray], np.ndarray]


def exact_coverage(
    model: NeymanModel, points: np.ndarray, accepts: Acceptor, *, nodes: int = 120
) -> np.ndarray:
    """P(accepts(D, mu_true)) under each true point (G, P): the exact coverage of any rule
    ``accepts(data (M, D), mu (M,)) -> bool (M,)`` (a learned set, an asymptotic interval...).

    Example:
        >>> m = OnOffModel()
        >>> cov = exact_coverage(m, np.array([[2.5, 1.0]]), lambda d, mu: m.statistic(d, mu) <= 1)
        >>> round(float(cov[0]), 3)  # Wilks: 0.683
        0.682
    """
    pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
    out = np.empty(len(pts))
    for g, p in enumerate(pts):
        d, w = exact_distribution(model, p, nodes=nodes)
        ok = np.asarray(accepts(d, np.full(len(d), p[0])), dtype=bool)
        out[g] = float(w[ok].sum())
    return out


def exact_hybrid_critical(
    model: NeymanModel,
    data: np.ndarray,
    mu: float,
    level: float,
    *,
    bounds: np.ndarray | None = None,
    nu_points: int = 41,
    nodes: int = 120,
) -> np.ndarray:
    """The hybrid critical value c_level(mu, nu-hat-hat(mu)) of each dataset (T,), from exact
    critical values on a ``nu_points`` grid per nuisance, interpolated linearly."""
    box = np.asarray(model.bounds if bounds is None else bounds, dtype=np.float64)
    grid = nuisance_grid(box, nu_points)
    c = exact_critical_values(model, np.column_stack([np.full(len(grid), mu), grid]), level,
                              nodes=nodes)  # fmt: skip
    axes = [np.linspace(lo, hi, nu_points) for lo, hi in box[1:]]
    interp = RegularGridInterpolator(axes, c.reshape([nu_points] * len(axes)))
    nu = np.clip(model.nuisance_hat(data, mu), box[1:, 0], box[1:, 1])
    return np.asarray(interp(nu), dtype=np.float64)


def exact_projected_sets(
    model: NeymanModel,
    data: np.ndarray,
    mu_grid: np.ndarray,
    level: float,
    *,
    nu_points: int = 21,
    nodes: int = 120,
) -> np.ndarray:
    """The full construction projected on mu: accepted (T, G) where some nu of the grid has
    t(mu, nu) <= c_level(mu, nu) (exact critical values of the joint statistic)."""
    d = np.atleast_2d(np.asarray(data, dtype=np.float64))
    grid = nuisance_grid(model.bounds, nu_points)
    fn = getattr(model, "joint_statistic", None)
    if fn is None:
        raise ModelError(f"{type(model).__name__} has no joint_statistic for the full construction")
    acc = np.zeros((len(d), len(mu_grid)), dtype=bool)
    for j, mu in enumerate(np.asarray(mu_grid, dtype=np.float64)):
        pts = np.column_stack([np.full(len(grid), mu), grid])
        c = exact_critical_values(model, pts, level, joint=True, nodes=nodes)
        for k, p in enumerate(pts):
            acc[:, j] |= fn(d, p[None, :]) <= c[k]
    return acc


__all__ = [
    "exact_coverage",
    "exact_critical_values",
    "exact_distribution",
    "exact_hybrid_critical",
    "exact_projected_sets",
    "exact_pvalues",
    "weighted_quantile",
]
