"""The asymptotic distribution of the two-sided profile likelihood ratio with mu-hat >= 0.

For a POI mu with physical bound mu >= 0, the statistic t(mu) of :mod:`.neyman_models` is Cowan,
Cranmer, Gross and Vitells' t-tilde (arXiv:1007.1727, eq. 43): with r = mu / sigma(mu, nu),
sigma the asymptotic standard deviation of mu-hat at the true point,

    F(t) = 2 Phi(sqrt t) - 1                              for 0 <= t <= r^2,
    F(t) = Phi(sqrt t) + Phi((t + r^2) / (2 r)) - 1       for t > r^2,

a chi2_1 far from the bound (r >> 1) and half a point mass at 0 plus half a chi2_1 at mu = 0.
The learned constructions of :mod:`.neyman` use it as the starting point of the regressions
(they learn the finite-sample correction only): the critical value c_asym(level; r) and the
p-value 1 - F(t; r).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ..errors import ModelError


def asymptotic_cdf(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(T <= t) of t-tilde at r = mu / sigma (broadcast), the point mass at 0 included.

    Example:
        >>> asymptotic_cdf(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.0, 50.0])).round(4).tolist()
        [0.5, 0.8413, 0.6827]
    """
    tt = np.maximum(np.asarray(t, dtype=np.float64), 0.0)
    rr = np.maximum(np.asarray(r, dtype=np.float64), 0.0)
    tt, rr = np.broadcast_arrays(tt, rr)
    root = np.sqrt(tt)
    with np.errstate(divide="ignore", invalid="ignore"):
        far = ndtr(root) + ndtr(np.where(rr > 0, (tt + rr**2) / (2.0 * rr), np.inf)) - 1.0
    return np.asarray(
        np.where((tt <= rr**2) & (rr > 0), 2.0 * ndtr(root) - 1.0, far), dtype=np.float64
    )


def asymptotic_quantile(level: float, r: np.ndarray) -> np.ndarray:
    """The smallest c with F(c; r) >= ``level`` (bisection, 1e-10 in c), per r.

    Example:
        >>> asymptotic_quantile(0.6827, np.array([0.0, 50.0])).round(4).tolist()  # 0.365 of chi2_1 at r = 0
        [0.2259, 1.0]
        >>> asymptotic_quantile(0.95, np.array([0.0, 1.0, 50.0])).round(3).tolist()
        [2.706, 3.31, 3.841]
    """
    if not 0.0 < level < 1.0:
        raise ModelError(f"confidence level must be inside (0, 1), got {level}")
    rr = np.maximum(np.asarray(r, dtype=np.float64), 0.0)
    lo, hi = np.zeros_like(rr), np.full_like(rr, 100.0)
    for _ in range(60):  # F is continuous and increasing on t > 0: bisection converges
        mid = 0.5 * (lo + hi)
        below = asymptotic_cdf(mid, rr) < level
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return hi


def asymptotic_pvalue(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """P(T >= t) = 1 - F(t-; r): 1 at t = 0 (the point mass counts as >= 0).

    Example:
        >>> asymptotic_pvalue(np.array([0.0, 3.841]), np.array([0.0, 50.0])).round(3).tolist()
        [1.0, 0.05]
    """
    tt = np.asarray(t, dtype=np.float64)
    return np.asarray(np.where(tt <= 0.0, 1.0, 1.0 - asymptotic_cdf(tt, r)), dtype=np.float64)


__all__ = ["asymptotic_cdf", "asymptotic_pvalue", "asymptotic_quantile"]
