"""Covariance chi2 with asymmetric systematic shifts (docs/statistics.md, "asymmetric shifts").

The covariance chi2 of :mod:`.chi2` represents every systematic by one symmetric shift D_k =
(up - down) / 2, i.e. a prediction linear in its nuisance parameter. A detector template that
moves up by +3 % and down by +13 % in a bin is then half its size and of the wrong sign in one
direction, while the HistFactory model (and the toys drawn from it) follow the asymmetric
templates. Here each such systematic keeps both templates: its nuisance parameter theta_k
enters the prediction through

    m(mu, theta) = mu s(theta) + b(theta),
    x(theta) = x + theta D_k + theta^2 Q_k (15 - 10 theta^2 + 3 theta^4) / 8   for |theta| <= 1,
    x(theta) = x + |theta| (x(+-1) - x)                                        beyond,

pyhf's ``code4p`` interpolation of a histosys (continuous up to the second derivative), with
D_k = (up - down) / 2 and Q_k = (up + down - 2 nominal) / 2 per sample (signal s and background
b separately, so that the signal part scales with mu as in the workspace), and is profiled with
a unit Gaussian penalty:

    chi2(mu) = min_theta  r^T V^-1 r + sum_k theta_k^2,    r = n - m(mu, theta),

where V = diag(stat variance) + sum_l D_l D_l^T keeps the symmetric (linear) shifts, e.g. the
normalisation systematics and the MC statistics, in covariance form. With Q = 0 and the signal
share of D neglected this is exactly the covariance chi2 (the nuisance-parameter and covariance
forms of a linear Gaussian model are the same chi2), so the two agree where they should and
differ only by the asymmetry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from ..errors import ModelError
from .chi2 import Chi2Result


@dataclass(frozen=True)
class AsymmetricShift:
    """One systematic's up and down yields of the signal and of the background per bin."""

    s_up: np.ndarray
    s_down: np.ndarray
    b_up: np.ndarray
    b_down: np.ndarray


def is_linear(shift: AsymmetricShift, s: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> bool:
    """True when the shift has no quadratic part (up + down = 2 nominal for the signal ``s``
    and the background ``b``): then the profiled form is the covariance chi2 in closed form.

    Example:
        >>> n = np.array([10.0, 20.0])
        >>> is_linear(AsymmetricShift(n, n, n * 1.1, n * 0.9), n, n), is_linear(AsymmetricShift(n, n, n * 1.1, n), n, n)
        (True, False)
    """
    for nom, up, dn in ((s, shift.s_up, shift.s_down), (b, shift.b_up, shift.b_down)):
        scale = float(np.max(np.abs(nom), initial=0.0))
        if np.max(np.abs(up + dn - 2.0 * nom), initial=0.0) > rtol * max(scale, 1e-300):
            return False
    return True


def _response(nominal: np.ndarray, up: np.ndarray, down: np.ndarray, theta: float) -> np.ndarray:
    """x(theta): pyhf's code4p interpolation (the histosys of the workspace)."""
    d = 0.5 * (up - down)
    q = 0.5 * (up + down - 2.0 * nominal)
    if abs(theta) <= 1.0:
        t2 = theta * theta
        return nominal + theta * d + t2 * q * (15.0 + t2 * (-10.0 + 3.0 * t2)) / 8.0
    edge = up if theta > 0 else down
    return nominal + abs(theta) * (edge - nominal)


def _slope(nominal: np.ndarray, up: np.ndarray, down: np.ndarray, theta: float) -> np.ndarray:
    """dx/dtheta of :func:`_response` (continuous, as are the second derivatives)."""
    d = 0.5 * (up - down)
    q = 0.5 * (up + down - 2.0 * nominal)
    if abs(theta) <= 1.0:
        t = theta
        return d + q * (30.0 * t - 40.0 * t**3 + 18.0 * t**5) / 8.0
    return (up - nominal) if theta > 0 else (nominal - down)


class AsymmetricChi2:
    """chi2(mu) profiled over the asymmetric systematics (module docstring).

    Args:
        observed: counts per bin.
        s, b: nominal signal (at mu = 1) and background per bin.
        asymmetric: name -> :class:`AsymmetricShift` (profiled).
        linear: name -> symmetric shift vector or (components, bins) array (in V).
        stat_variance: the statistical variance per bin (e.g. the Asimov s + b).

    Example:
        >>> one = np.array([1.0])
        >>> c = AsymmetricChi2([1100.0], [100.0], [1000.0], {}, {}, [1100.0])
        >>> r = c.fit()
        >>> round(r.mu_hat, 6), round(r.dmu_high, 6)
        (1.0, 0.331662)
    """

    def __init__(
        self,
        observed: np.ndarray | list[float],
        s: np.ndarray | list[float],
        b: np.ndarray | list[float],
        asymmetric: Mapping[str, AsymmetricShift],
        linear: Mapping[str, np.ndarray],
        stat_variance: np.ndarray | list[float],
    ) -> None:
        self.n = np.asarray(observed, dtype=np.float64)
        self.s = np.asarray(s, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.asym = dict(asymmetric)
        nb = self.n.shape[0]
        rows = [np.atleast_2d(np.asarray(d, dtype=np.float64)) for d in linear.values()]
        dmat = np.vstack(rows) if rows else np.zeros((0, nb))
        cov = np.diag(np.asarray(stat_variance, dtype=np.float64)) + dmat.T @ dmat
        try:
            self._cf = scipy.linalg.cho_factor(cov, lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise ModelError("chi2 covariance is not positive definite") from exc
        if not np.any(self.s != 0):
            raise ModelError("signal s is zero in every bin: mu is not constrained")

    def _predict(self, mu: float, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, b = self.s.copy(), self.b.copy()
        ds = np.zeros((len(self.asym), self.n.shape[0]))
        db = np.zeros_like(ds)
        for k, sh in enumerate(self.asym.values()):
            t = float(theta[k])
            s += _response(self.s, sh.s_up, sh.s_down, t) - self.s
            b += _response(self.b, sh.b_up, sh.b_down, t) - self.b
            ds[k] = _slope(self.s, sh.s_up, sh.s_down, t)
            db[k] = _slope(self.b, sh.b_up, sh.b_down, t)
        return mu * s + b, mu * ds + db

    def _chi2_theta(self, mu: float, theta: np.ndarray) -> float:
        m, _ = self._predict(mu, theta)
        r = self.n - m
        return float(r @ scipy.linalg.cho_solve(self._cf, r, check_finite=False) + theta @ theta)

    def profiled(self, mu: float, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """min over theta of chi2(mu, theta) (Gauss-Newton, then a bounded polish)."""
        k = len(self.asym)
        if k == 0:
            return self._chi2_theta(mu, np.zeros(0)), np.zeros(0)
        theta = np.zeros(k) if start is None else np.array(start, dtype=np.float64)
        best = self._chi2_theta(mu, theta)
        for _ in range(50):
            m, jac = self._predict(mu, theta)
            r = self.n - m
            winv_j = scipy.linalg.cho_solve(self._cf, jac.T, check_finite=False)
            hess = jac @ winv_j + np.eye(k)
            grad = -(winv_j.T @ r) + theta
            step = np.linalg.solve(hess, -grad)
            t = 1.0
            while t > 1e-6:
                trial = theta + t * step
                val = self._chi2_theta(mu, trial)
                if val <= best + 1e-12:
                    break
                t *= 0.5
            else:
                break
            done = abs(best - val) < 1e-12 * max(1.0, abs(best))
            theta, best = trial, val
            if done or np.max(np.abs(t * step)) < 1e-10:
                break
        return best, theta

    def fit(self) -> Chi2Result:
        """mu-hat, the Delta chi2 = 1 crossings (profiled), chi2_min."""

        def f(mu: float) -> float:
            return self.profiled(mu)[0]

        # start from the linear (symmetric) solution's neighbourhood
        guess = float(
            self.s @ scipy.linalg.cho_solve(self._cf, self.n - self.b, check_finite=False)
        ) / float(self.s @ scipy.linalg.cho_solve(self._cf, self.s, check_finite=False))
        width = 1.0 / math.sqrt(
            float(self.s @ scipy.linalg.cho_solve(self._cf, self.s, check_finite=False))
        )
        span = 10.0 * width * max(1.0, math.sqrt(1.0 + len(self.asym)))
        res = scipy.optimize.minimize_scalar(
            f, bounds=(guess - span, guess + span), method="bounded", options={"xatol": 1e-9}
        )
        mu_hat, chi2_min = float(res.x), float(res.fun)

        def crossing(direction: float) -> float:
            g = lambda mu: f(mu) - chi2_min - 1.0  # noqa: E731
            prev, step = mu_hat, width
            for _ in range(40):
                nxt = mu_hat + direction * step
                if g(nxt) > 0:
                    root = scipy.optimize.brentq(g, min(prev, nxt), max(prev, nxt), xtol=1e-10)
                    return abs(root - mu_hat)
                prev, step = nxt, step * 1.6
            return math.inf

        return Chi2Result(
            mu_hat,
            crossing(-1.0),
            crossing(1.0),
            max(chi2_min, 0.0),
            self.n.shape[0] - 1,
            "expected",
        )


def asymmetric_breakdown(
    observed: np.ndarray,
    s: np.ndarray,
    b: np.ndarray,
    asymmetric: Mapping[str, AsymmetricShift],
    linear: Mapping[str, np.ndarray],
    stat_variance: np.ndarray,
) -> tuple[Chi2Result, dict[str, float]]:
    """The fit and its breakdown: 'total', 'stat' (no systematic) and per systematic
    sqrt(total^2 - without^2), where 'without' removes that systematic (symmetrised widths)."""
    full = AsymmetricChi2(observed, s, b, asymmetric, linear, stat_variance).fit()
    total = full.dmu
    stat = AsymmetricChi2(observed, s, b, {}, {}, stat_variance).fit().dmu
    out = {"total": total, "stat": stat}
    for name in [*asymmetric, *linear]:
        rest_a = {k: v for k, v in asymmetric.items() if k != name}
        rest_l = {k: v for k, v in linear.items() if k != name}
        without = AsymmetricChi2(observed, s, b, rest_a, rest_l, stat_variance).fit().dmu
        out[name] = math.sqrt(max(total**2 - without**2, 0.0))
    return full, out


__all__ = ["AsymmetricChi2", "AsymmetricShift", "asymmetric_breakdown", "is_linear"]
