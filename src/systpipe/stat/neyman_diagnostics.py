"""Coverage of any interval-producing method as a function of the true parameters.

Given true parameters theta_i (n, P) and the indicators z_i = 1[true mu inside the set of
dataset i] of any method (learned Neyman sets, asymptotic profile intervals, toys ...), estimate
the coverage P(z = 1 | theta) on a grid with a +/-2 sigma band (LF2I's diagnostics, without R):

- ``"splines"`` (default): a logistic GAM-like model, logit P = b0 + sum_j f_j(theta_j) with
  cubic B-splines f_j (scikit-learn ``SplineTransformer`` + ``LogisticRegression`` with a
  mild L2 penalty ``1/C``); sigma from the penalised Fisher information,
  Var(eta) = x^T (X^T W X + P/C)^-1 x, mapped to the probability by the delta method
  (sigma_p = p (1 - p) sigma_eta);
- ``"bins"``: the fraction covered among the samples nearest to each grid point (in units of
  the box widths), with the binomial error sqrt(p (1 - p) / n) of the nominal p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import SplineTransformer
from threadpoolctl import threadpool_limits

from ..errors import ModelError

DIAGNOSTIC_METHODS = ("splines", "bins")


@dataclass(frozen=True)
class CoverageDiagnostic:
    """Estimated coverage on ``grid`` (G, P) with its standard error ``sigma``; ``lower`` /
    ``upper`` the +/-2 sigma band; ``n`` the number of indicators used."""

    grid: np.ndarray
    coverage: np.ndarray
    sigma: np.ndarray
    nominal: float
    n: int
    names: tuple[str, ...]
    method: str

    @property
    def lower(self) -> np.ndarray:
        return np.clip(self.coverage - 2.0 * self.sigma, 0.0, 1.0)

    @property
    def upper(self) -> np.ndarray:
        return np.clip(self.coverage + 2.0 * self.sigma, 0.0, 1.0)

    def pull(self) -> np.ndarray:
        """(coverage - nominal) / sigma per grid point."""
        return (self.coverage - self.nominal) / self.sigma

    def fraction_within(self, k: float = 2.0) -> float:
        """Fraction of grid points whose coverage is within k sigma of the nominal level."""
        return float(np.mean(np.abs(self.pull()) <= k))


def coverage_diagnostic(
    params: np.ndarray,
    covered: np.ndarray,
    grid: np.ndarray,
    *,
    nominal: float,
    names: Sequence[str] | None = None,
    method: str = "splines",
    n_knots: int = 5,
    c: float = 10.0,
    neighbours: int = 1000,
    threads: int = 1,
) -> CoverageDiagnostic:
    """Regress the coverage indicators on the true parameters (see the module docstring).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> theta = rng.random((4000, 2))
        >>> z = rng.random(4000) < 0.6 + 0.3 * theta[:, 0]  # coverage 0.6 .. 0.9 along theta_0
        >>> grid = np.array([[0.1, 0.5], [0.5, 0.5], [0.9, 0.5]])
        >>> d = coverage_diagnostic(theta, z, grid, nominal=0.75)
        >>> d.coverage.round(2).tolist(), d.sigma.round(3).tolist()  # true: 0.63, 0.75, 0.87
        ([0.61, 0.75, 0.89], [0.027, 0.022, 0.013])
    """
    x = np.atleast_2d(np.asarray(params, dtype=np.float64))
    z = np.asarray(covered)
    g = np.atleast_2d(np.asarray(grid, dtype=np.float64))
    if z.shape != (x.shape[0],):
        raise ModelError(
            f"covered must have one indicator per parameter row ({x.shape[0]}), got {z.shape}"
        )
    if g.shape[1] != x.shape[1]:
        raise ModelError(f"grid must have {x.shape[1]} columns like params, got shape {g.shape}")
    if not 0.0 < nominal < 1.0:
        raise ModelError(f"nominal coverage must be inside (0, 1), got {nominal}")
    z = z.astype(np.float64)
    labels = tuple(names) if names is not None else tuple(f"theta_{i}" for i in range(x.shape[1]))
    if method == "splines":
        cov, sig = _splines(x, z, g, n_knots, c, threads)
    elif method == "bins":
        cov, sig = _bins(x, z, g, nominal, neighbours)
    else:
        raise ModelError(
            f"unknown coverage estimator {method!r}; expected one of {DIAGNOSTIC_METHODS}"
        )
    return CoverageDiagnostic(g, cov, sig, float(nominal), int(x.shape[0]), labels, method)


def _splines(
    x: np.ndarray, z: np.ndarray, g: np.ndarray, n_knots: int, c: float, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    spl = SplineTransformer(n_knots=n_knots, degree=3, include_bias=False)
    xs = spl.fit_transform((x - lo) / span)
    gs = spl.transform(np.clip((g - lo) / span, 0.0, 1.0))
    with threadpool_limits(limits=threads):
        lr = LogisticRegression(C=c, max_iter=2000, tol=1e-10).fit(xs, z)
    eta = lr.decision_function(gs)
    p = expit(lr.decision_function(xs))
    design = np.column_stack([np.ones(len(xs)), xs])
    info = design.T @ (design * (p * (1.0 - p))[:, None])
    info[1:, 1:] += np.eye(xs.shape[1]) / c
    cov = np.linalg.inv(info)
    gd = np.column_stack([np.ones(len(gs)), gs])
    var = np.einsum("gi,ij,gj->g", gd, cov, gd)
    pg = expit(eta)
    return pg, pg * (1.0 - pg) * np.sqrt(np.maximum(var, 0.0))


def _bins(
    x: np.ndarray, z: np.ndarray, g: np.ndarray, nominal: float, neighbours: int
) -> tuple[np.ndarray, np.ndarray]:
    span = np.where(np.ptp(x, axis=0) > 0, np.ptp(x, axis=0), 1.0)
    k = min(int(neighbours), len(x))
    cov = np.empty(len(g))
    for i, point in enumerate(g):
        dist = np.sum(((x - point) / span) ** 2, axis=1)
        near = np.argpartition(dist, k - 1)[:k]
        cov[i] = z[near].mean()
    return cov, np.full(len(g), np.sqrt(nominal * (1.0 - nominal) / k))


__all__ = ["DIAGNOSTIC_METHODS", "CoverageDiagnostic", "coverage_diagnostic"]
