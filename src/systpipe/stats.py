"""Signal-strength statistics: mu-hat, its uncertainties, AMS and the Asimov significance."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .errors import ConfigError

log = logging.getLogger(__name__)

SymmetriseMode = Literal["mean", "max"]
SYMMETRISE_MODES: tuple[str, ...] = ("mean", "max")

# 0-d results come back as numpy scalars, everything else as float64 arrays.
FloatOut = np.ndarray | np.float64


def _f(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _ret(x: np.ndarray) -> FloatOut:
    return x[()] if x.ndim == 0 else x


def _div_inf(num: ArrayLike, den: ArrayLike) -> np.ndarray:
    """``num / den`` with +inf wherever ``den == 0`` (0/0 included), without warnings."""
    num_a, den_a = np.broadcast_arrays(_f(num), _f(den))
    out = np.full(num_a.shape, np.inf)
    with np.errstate(over="ignore", under="ignore"):
        np.divide(num_a, den_a, out=out, where=den_a != 0)
    return out


def mu_hat(n: ArrayLike, s: ArrayLike, b: ArrayLike) -> FloatOut:
    """Fitted signal strength of a counting experiment, ``(n - b) / s`` (+inf where s = 0).

    Example:
        >>> float(mu_hat(2600.0, 100.0, 2500.0)), float(mu_hat(2600.0, 0.0, 2500.0))
        (1.0, inf)
    """
    with np.errstate(over="ignore"):
        diff = _f(n) - _f(b)
    return _ret(_div_inf(diff, s))


def sigma_mu_stat(s: ArrayLike, b: ArrayLike) -> FloatOut:
    """Statistical uncertainty on mu for the Asimov count n = s + b: ``sqrt(s + b) / s``.

    A negative ``s + b`` (possible only with negative weights) is treated as zero.

    Example:
        >>> float(sigma_mu_stat(100.0, 9900.0))
        1.0
    """
    s_a, b_a = _f(s), _f(b)
    with np.errstate(over="ignore"):
        root = np.sqrt(np.maximum(s_a + b_a, 0.0))
    return _ret(_div_inf(root, s_a))


def sigma_mu_fraction(n: ArrayLike, f_s: ArrayLike) -> FloatOut:
    """Statistical uncertainty on mu for n events with signal fraction f_s: ``sqrt(n) / (f_s n)``.

    Example:
        >>> [float(sigma_mu_fraction(n, f)) for n, f in [(1e4, 0.01), (1e4, 0.1), (1e6, 0.01)]]
        [1.0, 0.1, 0.1]
    """
    n_a, f_a = _f(n), _f(f_s)
    with np.errstate(over="ignore", under="ignore"):
        s = f_a * n_a
    return _ret(_div_inf(np.sqrt(np.maximum(n_a, 0.0)), s))


def sigma_mu_mcstat(
    s: ArrayLike, sumw2_s: ArrayLike, sumw2_b: ArrayLike, mu: ArrayLike = 1.0
) -> FloatOut:
    """MC-statistical uncertainty on mu = (n - B)/S: ``sqrt(mu^2 sumw2_s + sumw2_b) / S``.

    The simulated yields S and B fluctuate independently with variances sum w^2 (signal and
    background events); dmu/dS = -mu/S and dmu/dB = -1/S. +inf where S = 0.

    Example:
        >>> # 100 signal events of weight 1, 100 background events of weight 25 (B = 2500)
        >>> round(float(sigma_mu_mcstat(100.0, 100.0, 100 * 25.0**2)), 4)
        2.502
    """
    with np.errstate(over="ignore"):
        var = np.square(_f(mu)) * _f(sumw2_s) + _f(sumw2_b)
    return _ret(_div_inf(np.sqrt(np.maximum(var, 0.0)), s))


def effective_entries(sumw: ArrayLike, sumw2: ArrayLike) -> FloatOut:
    """Effective number of MC events ``(sum w)^2 / sum w^2`` (0 where sum w^2 = 0).

    Equal weights give the raw count; a few heavy events count as about their number.

    Example:
        >>> # 10 events of weight 1; 9 of weight 1 plus one of weight 9; nothing selected
        >>> [float(x) for x in effective_entries([10.0, 18.0, 0.0], [10.0, 90.0, 0.0])]
        [10.0, 3.6, 0.0]
    """
    w, w2 = np.broadcast_arrays(_f(sumw), _f(sumw2))
    out = np.zeros(w.shape)
    with np.errstate(over="ignore", under="ignore"):
        np.divide(np.square(w), w2, out=out, where=w2 > 0)
    return _ret(out)


def ams(s: ArrayLike, b: ArrayLike) -> FloatOut:
    """Approximate median significance ``sqrt(2 ((s + b) ln(1 + s/b) - s))``; 0 where s or b <= 0.

    Example:
        >>> round(float(ams(10.0, 10.0)), 6)
        2.779548
    """
    s_a, b_a = np.broadcast_arrays(_f(s), _f(b))
    out = np.zeros(s_a.shape)
    ok = (s_a > 0) & (b_a > 0)
    ss, bb = s_a[ok], b_a[ok]
    with np.errstate(over="ignore", under="ignore"):
        z2 = 2.0 * ((ss + bb) * np.log1p(ss / bb) - ss)
    # The difference can round a hair below zero when s << b.
    out[ok] = np.sqrt(np.maximum(z2, 0.0))
    return _ret(out)


def ams_higgsml(s: ArrayLike, b: ArrayLike, b_reg: float = 10.0) -> FloatOut:
    """HiggsML-challenge AMS: :func:`ams` with ``b_reg`` added to b (finite at b = 0).

    Example:
        >>> float(ams_higgsml(10.0, 0.0)) == float(ams(10.0, 10.0))
        True
    """
    return ams(s, _f(b) + b_reg)


def _log1p_over(y: np.ndarray) -> np.ndarray:
    """``log1p(y) / y`` with its limit 1 at y = 0 (keeps (b^2/sigma^2) log1p(.) finite)."""
    out = np.ones_like(y)
    nz = y != 0
    out[nz] = np.log1p(y[nz]) / y[nz]
    return out


def z_asimov(s: ArrayLike, b: ArrayLike, sigma_b: ArrayLike) -> FloatOut:
    """Asimov discovery significance with background uncertainty (Cowan et al., SPEC section 5).

    Evaluated in a rearranged but equivalent form that stays finite as sigma_b -> 0; equals
    :func:`ams` exactly at sigma_b = 0, and 0 where s or b <= 0.

    Example:
        >>> float(z_asimov(10.0, 10.0, 0.0)) == float(ams(10.0, 10.0))
        True
        >>> round(float(z_asimov(10.0, 10.0, 2.0)), 6)
        2.259997
    """
    s_a, b_a, sb_a = np.broadcast_arrays(_f(s), _f(b), _f(sigma_b))
    out = np.zeros(s_a.shape)
    ok = (s_a > 0) & (b_a > 0)
    with np.errstate(over="ignore", under="ignore"):
        var = sb_a * sb_a
    exact = ok & (var == 0)
    out[exact] = ams(s_a[exact], b_a[exact])
    gen = ok & (var > 0)
    ss, bb, vv = s_a[gen], b_a[gen], var[gen]
    with np.errstate(over="ignore", under="ignore"):
        # ln((s+b)(b+v)/(b^2+(s+b)v)) = log1p(s b / (b^2 + (s+b) v));
        # (b^2/v) ln(1 + v s/(b(b+v))) = (s b/(b+v)) * log1p(y)/y with y = v s/(b(b+v)).
        first = (ss + bb) * np.log1p(ss * bb / (bb * bb + (ss + bb) * vv))
        y = vv * ss / (bb * (bb + vv))
        second = ss * bb / (bb + vv) * _log1p_over(y)
        out[gen] = np.sqrt(np.maximum(2.0 * (first - second), 0.0))
    return _ret(out)


def dmu_linear(
    s: ArrayLike, b: ArrayLike, *, d_eps_s: float, d_eps_b: float, d_lumi: float
) -> FloatOut:
    """Linear error propagation on mu = (n - B)/S at the Asimov point n = S + B (the notebook's functor).

    Jacobian ``(n/S, -mu, -B/S, -n/S)`` with relative uncertainties
    ``(1/sqrt(n), d_eps_s, d_eps_b, d_lumi)``; returns the total (+inf where S = 0).

    Example:
        >>> round(float(dmu_linear(100.0, 2500.0, d_eps_s=0.05, d_eps_b=0.02, d_lumi=0.01)), 3)
        0.762
    """
    s_a, b_a = np.broadcast_arrays(_f(s), _f(b))
    n = s_a + b_a
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        jacobian = (mu_hat(n, s_a, b_a), _div_inf(b_a, s_a), _div_inf(n, s_a))
        # A zero uncertainty contributes nothing, even where its Jacobian entry is infinite.
        terms = [_f(sigma_mu_stat(s_a, b_a))] + [
            np.where(np.asarray(u) == 0, 0.0, j * u)
            for j, u in zip(jacobian, (d_eps_s, d_eps_b, d_lumi), strict=True)
        ]
        total = np.sqrt(sum(np.square(t) for t in terms))
    # inf * 0 (a zero uncertainty at S = 0) would be NaN; the answer there is inf.
    return _ret(np.where(s_a == 0, np.inf, total))


def dmu_linear_terms(
    s: ArrayLike,
    b: ArrayLike,
    s_k: ArrayLike,
    b_k: ArrayLike,
    delta_k: ArrayLike,
    *,
    n: ArrayLike | None = None,
) -> FloatOut:
    """First-order |dmu| of norm systematics that scale signal yield s_k and background yield b_k.

    From mu(delta) = (n - B - delta b_k)/(S + delta s_k): |dmu/d delta| delta =
    |b_k + mu s_k| / S * delta with mu = (n - B)/S (= 1 at the default Asimov n = S + B).
    Luminosity is s_k = S, b_k = B (n/S delta); signal efficiency s_k = S (mu delta);
    background efficiency b_k = B (B/S delta). Arguments broadcast; +inf where S = 0.

    Example:
        >>> float(dmu_linear_terms(100.0, 2500.0, 100.0, 2500.0, 0.01))
        0.26
    """
    s_a, b_a = _f(s), _f(b)
    n_a = s_a + b_a if n is None else _f(n)
    with np.errstate(invalid="ignore", over="ignore"):
        mu = _div_inf(n_a - b_a, s_a)
        mu = np.where(s_a == 0, 1.0, mu)  # the result is inf there anyway
        num = np.abs(_f(b_k) + mu * _f(s_k)) * np.abs(_f(delta_k))
        out = _div_inf(num, np.broadcast_to(s_a, num.shape))
    return _ret(out)


def symmetrise(d_up: ArrayLike, d_down: ArrayLike, mode: str = "mean") -> FloatOut:
    """Symmetrised shift: ``(|d_up| + |d_down|)/2`` ("mean") or ``max(|d_up|, |d_down|)`` ("max").

    Example:
        >>> float(symmetrise(-0.1, 0.3)), float(symmetrise(-0.1, 0.3, "max"))
        (0.2, 0.3)
    """
    up, down = np.abs(_f(d_up)), np.abs(_f(d_down))
    if mode == "mean":
        return _ret(np.asarray(0.5 * (up + down)))
    if mode == "max":
        return _ret(np.asarray(np.maximum(up, down)))
    raise ConfigError(f"scan.symmetrise must be one of {list(SYMMETRISE_MODES)}, got {mode!r}")


__all__ = [
    "SYMMETRISE_MODES",
    "ams",
    "ams_higgsml",
    "dmu_linear",
    "dmu_linear_terms",
    "effective_entries",
    "mu_hat",
    "sigma_mu_fraction",
    "sigma_mu_mcstat",
    "sigma_mu_stat",
    "symmetrise",
    "z_asimov",
]
