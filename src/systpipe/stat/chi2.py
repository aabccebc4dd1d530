"""Covariance-matrix chi2 with fully correlated systematic shifts (docs/statistics.md)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

from ..errors import ModelError

log = logging.getLogger(__name__)

StatMode = Literal["expected", "observed", "fitted"]
Shifts = Mapping[str, np.ndarray] | Sequence[np.ndarray]

_RESERVED = frozenset({"stat", "total"})


@dataclass(frozen=True)
class Chi2Result:
    """Fitted signal strength with its Delta chi2 = 1 interval.

    Attributes:
        mu_hat: chi2-minimising signal strength.
        dmu_low: mu_hat minus the lower Delta chi2 = 1 crossing (inf if none in the domain).
        dmu_high: upper crossing minus mu_hat (inf if none).
        chi2_min: chi2 at mu_hat.
        ndof: number of bins minus one (the fitted mu).
        stat: how the statistical variance was taken ("expected", "observed", "fitted").
    """

    mu_hat: float
    dmu_low: float
    dmu_high: float
    chi2_min: float
    ndof: int
    stat: str

    @property
    def dmu(self) -> float:
        """Symmetrised half-width (dmu_low + dmu_high) / 2."""
        return 0.5 * (self.dmu_low + self.dmu_high)


@dataclass(frozen=True)
class ConditionalMoments:
    """Moments of the other bins' counts given one bin's count lies in a window.

    Attributes:
        mean: conditional means of the other bins (bin order kept, conditioning bin removed).
        cov: their conditional covariance matrix.
        probability: probability that the conditioning bin falls in the window (per toy).
        n_selected: toys inside the window (toy summaries only; None for the exact calculation).
    """

    mean: np.ndarray
    cov: np.ndarray
    probability: float
    n_selected: int | None = None


# --------------------------------------------------------------------------- validation


def _vector(x: object, name: str, n: int | None = None) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(x, dtype=np.float64))
    if arr.ndim != 1:
        raise ModelError(f"{name} must be one-dimensional over the bins, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ModelError(f"{name} has {arr.shape[0]} bins, expected {n}")
    if not np.all(np.isfinite(arr)):
        raise ModelError(f"{name} contains non-finite values")
    return arr


def _shift_matrix(shifts: Shifts, n: int) -> dict[str, np.ndarray]:
    """Normalise shifts to name -> (components, n_bins) arrays."""
    items = (
        shifts.items()
        if isinstance(shifts, Mapping)
        else ((str(i), d) for i, d in enumerate(shifts))
    )
    out: dict[str, np.ndarray] = {}
    for name, d in items:
        arr = np.asarray(d, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ModelError(
                f"shift {name!r} must have {n} bins (shape ({n},) or (k, {n})), got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ModelError(f"shift {name!r} contains non-finite values")
        out[str(name)] = arr
    return out


def _stack(shifts: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    if not shifts:
        return np.zeros((0, n))
    return np.vstack(list(shifts.values()))


def _cho(cov: np.ndarray) -> tuple[np.ndarray, bool]:
    try:
        return scipy.linalg.cho_factor(cov, lower=True, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise ModelError(
            "covariance matrix is not positive definite (a bin with zero statistical variance "
            "and no independent uncertainty?)"
        ) from exc


# --------------------------------------------------------------------------- covariance, chi2


def covariance(stat_variance: np.ndarray, shifts: Shifts = ()) -> np.ndarray:
    """Bin covariance V = diag(stat_variance) + sum_k D_k^T D_k.

    Each shift D_k is a vector over the concatenated bins of all channels (a fully correlated
    systematic) or a (components, bins) array of independent components of one systematic.

    Args:
        stat_variance: per-bin statistical variance (e.g. the expected counts).
        shifts: name -> shift, or a sequence of shifts.

    Returns:
        The (bins, bins) covariance matrix.

    Example:
        >>> covariance([100.0, 10000.0], {"xsec": [10.0, 1000.0]}).tolist()
        [[200.0, 10000.0], [10000.0, 1010000.0]]
    """
    var = _vector(stat_variance, "stat_variance")
    d = _stack(_shift_matrix(shifts, var.shape[0]), var.shape[0])
    return np.diag(var) + d.T @ d


def chi2(observed: np.ndarray, expected: np.ndarray, cov: np.ndarray) -> float:
    """chi2 = (n - m)^T V^-1 (n - m), by a Cholesky solve (never an explicit inverse).

    Example:
        >>> round(chi2([110.0, 10100.0], [100.0, 10000.0], [[100.0, 0.0], [0.0, 10000.0]]), 6)
        2.0
    """
    m = _vector(expected, "expected")
    return float(chi2_batch(np.atleast_2d(_vector(observed, "observed", m.shape[0])), m, cov)[0])


def chi2_batch(observed: np.ndarray, expected: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """chi2 of many observations (rows of ``observed``) against one expectation and covariance.

    Example:
        >>> chi2_batch([[100.0, 1e4], [110.0, 1e4]], [100.0, 1e4], np.diag([100.0, 1e4])).tolist()
        [0.0, 1.0]
    """
    m = _vector(expected, "expected")
    obs = np.asarray(observed, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[1] != m.shape[0]:
        raise ModelError(f"observed must have shape (n, {m.shape[0]}), got {obs.shape}")
    v = np.asarray(cov, dtype=np.float64)
    if v.shape != (m.shape[0], m.shape[0]):
        raise ModelError(f"cov must have shape {(m.shape[0],) * 2}, got {v.shape}")
    resid = (obs - m).T
    sol = scipy.linalg.cho_solve(_cho(v), resid, check_finite=False)
    return np.einsum("ij,ij->j", resid, sol)


# --------------------------------------------------------------------------- building shifts


def partially_correlated_shifts(sigmas: Sequence[np.ndarray | float], rho: float) -> np.ndarray:
    """Shift components of one systematic with absolute errors per channel and correlation rho.

    Within a channel the bins are fully correlated; between any two channels the correlation
    is rho. Built as a common component sqrt(|rho|) * sigma over all channels plus an
    independent sqrt(1 - |rho|) * sigma_c per channel, so sum D^T D reproduces
    [[s_a^2, rho s_a s_b], [rho s_a s_b, s_b^2]]. A negative rho (anti-correlation) is
    only defined for two channels.

    Args:
        sigmas: per channel, the absolute shift of its bins (scalar for a counting channel).
        rho: correlation coefficient between channels, in [-1, 1] ([0, 1] for > 2 channels).

    Returns:
        (components, total bins) array; all-zero components are dropped.

    Example:
        >>> d = partially_correlated_shifts([10.0, 1000.0], 0.5)
        >>> (d.T @ d).round(6).tolist()
        [[100.0, 5000.0], [5000.0, 1000000.0]]
    """
    chans = [np.atleast_1d(np.asarray(s, dtype=np.float64)) for s in sigmas]
    if not -1.0 <= rho <= 1.0 or (rho < 0 and len(chans) != 2):
        raise ModelError(f"correlation rho={rho} must be in [0, 1] ([-1, 1] for two channels)")
    sizes = [c.shape[0] for c in chans]
    total = sum(sizes)
    common = np.concatenate([c if i == 0 or rho >= 0 else -c for i, c in enumerate(chans)])
    rows = [math.sqrt(abs(rho)) * common]
    start = 0
    for c in chans:
        row = np.zeros(total)
        row[start : start + c.shape[0]] = math.sqrt(1.0 - abs(rho)) * c
        rows.append(row)
        start += c.shape[0]
    out = np.array([r for r in rows if np.any(r != 0.0)]).reshape(-1, total)
    return out


def counting_shifts(
    expected: Sequence[np.ndarray | float],
    frac_errors: Mapping[str, Sequence[float]],
    correlations: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Shifts of relative (normalisation) systematics on several channels.

    Args:
        expected: per channel, its expected counts (scalar or bins); bins are concatenated
            in channel order.
        frac_errors: systematic name -> fractional error per channel.
        correlations: systematic name -> correlation between channels (default 1.0, fully
            correlated).

    Returns:
        name -> (components, total bins) shift array for :func:`covariance`.

    Example:
        >>> sh = counting_shifts([100.0, 10000.0], {"xsec": [0.1, 0.1], "reco": [0.0, 0.1]},
        ...                      {"reco": 0.0})
        >>> covariance([100.0, 10000.0], sh).tolist()
        [[200.0, 10000.0], [10000.0, 2010000.0]]
    """
    chans = [np.atleast_1d(np.asarray(e, dtype=np.float64)) for e in expected]
    correlations = dict(correlations or {})
    unknown = set(correlations) - set(frac_errors)
    if unknown:
        raise ModelError(f"correlations given for undeclared systematics {sorted(unknown)}")
    out: dict[str, np.ndarray] = {}
    for name, errs in frac_errors.items():
        errs = list(errs)
        if len(errs) != len(chans):
            raise ModelError(
                f"frac_errors[{name!r}] has {len(errs)} entries, expected one per channel "
                f"({len(chans)})"
            )
        sig = [float(f) * c for f, c in zip(errs, chans, strict=True)]
        out[name] = partially_correlated_shifts(sig, float(correlations.get(name, 1.0)))
    return out


# --------------------------------------------------------------------------- mu fit


def _model_inputs(
    observed: np.ndarray, s: np.ndarray, b: np.ndarray, shifts: Shifts
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    s_ = _vector(s, "s")
    n = s_.shape[0]
    return (
        _vector(observed, "observed", n),
        s_,
        _vector(b, "b", n),
        _shift_matrix(shifts, n),
    )


def _linear_fit(
    n_obs: np.ndarray, s: np.ndarray, b: np.ndarray, var: np.ndarray, dmat: np.ndarray, stat: str
) -> Chi2Result:
    cov = np.diag(var) + dmat.T @ dmat
    cf = _cho(cov)
    ws, wr = scipy.linalg.cho_solve(cf, np.column_stack([s, n_obs - b]), check_finite=False).T
    fisher = float(s @ ws)
    if not fisher > 0.0:
        raise ModelError("signal s is zero in every bin: mu is not constrained")
    mu_hat = float(s @ wr) / fisher
    resid = n_obs - b - mu_hat * s
    chi2_min = float(resid @ scipy.linalg.cho_solve(cf, resid, check_finite=False))
    # chi2(mu) = chi2_min + fisher (mu - mu_hat)^2 exactly, so Delta chi2 = 1 is 1/sqrt(fisher).
    half = 1.0 / math.sqrt(fisher)
    return Chi2Result(mu_hat, half, half, max(chi2_min, 0.0), n_obs.shape[0] - 1, stat)


def _fitted_fit(
    n_obs: np.ndarray, s: np.ndarray, b: np.ndarray, dmat: np.ndarray, mu_ref: float
) -> Chi2Result:
    """Pearson chi2 with V(mu) = diag(mu s + b) + sum D D^T: 1-D minimisation + root finding."""
    syst = dmat.T @ dmat
    pos = s > 0
    # The stat variance mu s + b must stay non-negative in every bin.
    lo_dom = float(np.max(-b[pos] / s[pos])) if np.any(pos) else -np.inf
    neg = s < 0
    hi_dom = float(np.min(-b[neg] / s[neg])) if np.any(neg) else np.inf

    def f(mu: float) -> float:
        cov = np.diag(mu * s + b) + syst
        try:
            cf = scipy.linalg.cho_factor(cov, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return np.inf
        r = n_obs - b - mu * s
        return float(r @ scipy.linalg.cho_solve(cf, r, check_finite=False))

    start = _linear_fit(n_obs, s, b, np.maximum(mu_ref * s + b, 0.0), dmat, "fitted")
    width = max(start.dmu_high, 1e-12)
    eps = 1e-9 * max(1.0, abs(lo_dom) if np.isfinite(lo_dom) else 1.0)
    a = max(start.mu_hat - 20 * width, lo_dom + eps)
    c = min(start.mu_hat + 20 * width, hi_dom - eps)
    res = scipy.optimize.minimize_scalar(
        f, bounds=(a, c), method="bounded", options={"xatol": 1e-10 * max(1.0, width)}
    )
    mu_hat, chi2_min = float(res.x), float(res.fun)
    if not np.isfinite(chi2_min):
        raise ModelError("chi2 fit failed: covariance not positive definite near the minimum")

    def crossing(direction: float) -> float:
        g = lambda mu: f(mu) - chi2_min - 1.0  # noqa: E731
        edge = lo_dom + eps if direction < 0 else hi_dom - eps
        step = width
        prev = mu_hat
        for _ in range(60):
            nxt = mu_hat + direction * step
            if (direction < 0 and nxt <= edge) or (direction > 0 and nxt >= edge):
                nxt = edge
            if not np.isfinite(nxt):
                return math.inf
            if g(nxt) > 0:
                root = scipy.optimize.brentq(g, min(prev, nxt), max(prev, nxt), xtol=1e-12)
                return abs(root - mu_hat)
            if nxt == edge:
                return math.inf
            prev, step = nxt, step * 2.0
        return math.inf

    return Chi2Result(mu_hat, crossing(-1.0), crossing(1.0), chi2_min, n_obs.shape[0] - 1, "fitted")


def fit_mu(
    observed: np.ndarray,
    s: np.ndarray,
    b: np.ndarray,
    shifts: Shifts = (),
    *,
    stat: StatMode = "expected",
    mu_ref: float = 1.0,
) -> Chi2Result:
    """Fit mu in expected(mu) = mu s + b by minimising chi2 with the bin covariance.

    Bins of all channels are concatenated (signal-region bins, then control-region bins with
    s ~ 0). The systematic shifts D_k are fixed arrays (evaluated at the reference point).

    ``stat`` chooses the statistical variance:
      * "expected" (default, Pearson-like): mu_ref s + b, the
        prediction at the Asimov point; V does not depend on mu, so the fit is linear least
        squares and the Delta chi2 = 1 interval is exact and symmetric: 1/sqrt(s^T V^-1 s).
      * "observed" (Neyman): the observed counts; also analytic. Fails on empty bins without
        any systematic.
      * "fitted": mu s + b at each mu; chi2(mu) is minimised numerically (bounded Brent) and
        the two Delta chi2 = 1 crossings found by bracketing + brentq (asymmetric; inf when no
        crossing exists inside the domain where mu s + b >= 0).

    Example:
        >>> r = fit_mu([1100.0], [100.0], [1000.0])
        >>> round(r.mu_hat, 6), round(r.dmu_high, 6)
        (1.0, 0.331662)
    """
    n_obs, s_, b_, sh = _model_inputs(observed, s, b, shifts)
    dmat = _stack(sh, s_.shape[0])
    if stat == "expected":
        var = mu_ref * s_ + b_
        if np.any(var < 0):
            raise ModelError("expected counts mu_ref * s + b are negative in some bin")
        result = _linear_fit(n_obs, s_, b_, var, dmat, stat)
    elif stat == "observed":
        if np.any(n_obs < 0):
            raise ModelError("observed counts are negative in some bin")
        result = _linear_fit(n_obs, s_, b_, n_obs, dmat, stat)
    elif stat == "fitted":
        if not np.any(s_ != 0):
            raise ModelError("signal s is zero in every bin: mu is not constrained")
        result = _fitted_fit(n_obs, s_, b_, dmat, mu_ref)
    else:
        raise ModelError(f"stat must be 'expected', 'observed' or 'fitted', got {stat!r}")
    log.debug(
        "chi2 fit (%s): mu=%.6g -%.3g +%.3g", stat, result.mu_hat, result.dmu_low, result.dmu_high
    )
    return result


def breakdown(
    observed: np.ndarray,
    s: np.ndarray,
    b: np.ndarray,
    shifts: Shifts,
    *,
    stat: StatMode = "expected",
    mu_ref: float = 1.0,
) -> dict[str, float]:
    """Uncertainty on mu per systematic: remove each D_k, subtract in quadrature from the total.

    Returns {'total': ..., 'stat': (no systematic at all), <name>: sqrt(total^2 - without^2)}
    using the symmetrised half-width. For a single bin the squares add up exactly; with
    several bins a control region correlates them, so they need not.

    Example:
        >>> {k: round(v, 6) for k, v in breakdown([1100.0], [100.0], [1000.0],
        ...                                       {"sig": [10.0]}).items()}
        {'total': 0.34641, 'stat': 0.331662, 'sig': 0.1}
    """
    n_obs, s_, b_, sh = _model_inputs(observed, s, b, shifts)
    clash = _RESERVED & set(sh)
    if clash:
        raise ModelError(f"systematic names {sorted(clash)} are reserved in the breakdown")
    total = fit_mu(n_obs, s_, b_, sh, stat=stat, mu_ref=mu_ref).dmu
    out = {"total": total, "stat": fit_mu(n_obs, s_, b_, {}, stat=stat, mu_ref=mu_ref).dmu}
    for name in sh:
        rest = {k: v for k, v in sh.items() if k != name}
        without = fit_mu(n_obs, s_, b_, rest, stat=stat, mu_ref=mu_ref).dmu
        out[name] = math.sqrt(max(total**2 - without**2, 0.0))
    return out


# --------------------------------------------------------------------------- constraints


def conditional_prediction(
    expected: np.ndarray, cov: np.ndarray, observed: np.ndarray, measured: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction of the unmeasured bins constrained by the measured ones (Gaussian conditioning).

    m_u + V_um V_mm^-1 (n_m - m_m) and V_uu - V_um V_mm^-1 V_mu: the values that minimise the
    joint chi2 over the unmeasured bins (the moving chi2 minimum), and the
    covariance of that constrained prediction.

    Args:
        expected: expected counts of all bins.
        cov: full bin covariance.
        observed: observed counts (only the measured bins are used).
        measured: boolean mask of the measured (control) bins.

    Example:
        >>> m, v = conditional_prediction([100.0, 1e4], [[200.0, 1e4], [1e4, 1.01e6]],
        ...                               [0.0, 9000.0], [False, True])
        >>> round(float(m[0]), 4), round(float(v[0, 0]), 4)
        (90.099, 100.9901)
    """
    m = _vector(expected, "expected")
    n_obs = _vector(observed, "observed", m.shape[0])
    v = np.asarray(cov, dtype=np.float64)
    mask = np.asarray(measured, dtype=bool)
    if mask.shape != m.shape or v.shape != (m.shape[0],) * 2:
        raise ModelError("measured mask and cov must match the number of bins of expected")
    if not mask.any() or mask.all():
        raise ModelError("measured must select some, but not all, bins")
    u = ~mask
    cf = _cho(v[np.ix_(mask, mask)])
    gain = scipy.linalg.cho_solve(cf, v[np.ix_(mask, u)], check_finite=False)
    mean = m[u] + gain.T @ (n_obs[mask] - m[mask])
    return mean, v[np.ix_(u, u)] - v[np.ix_(u, mask)] @ gain


# --------------------------------------------------------------------------- pseudo-experiments


def _window(window: tuple[int, int]) -> tuple[int, int]:
    lo, hi = int(window[0]), int(window[1])
    if lo > hi or lo < 0:
        raise ModelError(f"window must be (lo, hi) with 0 <= lo <= hi, got {window}")
    return lo, hi


def conditional_count_moments(
    expected: np.ndarray,
    shifts: Shifts,
    *,
    index: int,
    window: tuple[int, int],
    n_grid: int = 20001,
) -> ConditionalMoments:
    """Exact moments of the other bins' counts when bin ``index`` has lo <= n <= hi.

    Model of the pseudo-experiments: lambda ~ Normal(expected, sum D^T D) (the
    systematics-only covariance), n ~ Poisson(lambda). Conditioning on one bin's count is a
    1-D integral over its lambda (the others are linear-Gaussian in it), done on a uniform
    grid. Neglects lambda < 0 (the toys clip it at 0): valid when expected >> its error.

    Example:
        >>> r = conditional_count_moments([100.0, 1e4], {"xsec": [10.0, 1e3], "reco": [0.0, 1e3]},
        ...                               index=1, window=(8991, 9009))
        >>> round(float(r.mean[0]), 2), round(float(r.cov[0, 0]), 1)
        (95.03, 145.3)
    """
    m = _vector(expected, "expected")
    nb = m.shape[0]
    if not 0 <= index < nb:
        raise ModelError(f"index {index} out of range for {nb} bins")
    lo, hi = _window(window)
    d = _stack(_shift_matrix(shifts, nb), nb)
    v = d.T @ d
    oth = np.arange(nb) != index
    vcc = float(v[index, index])
    mc = float(m[index])
    if vcc > 0.0:
        sc = math.sqrt(vcc)
        pois = 12.0 * math.sqrt(hi + 1.0) + 10.0
        a, c = max(mc - 12.0 * sc, lo - pois, 0.0), min(mc + 12.0 * sc, hi + pois)
        if a >= c:
            raise ModelError(f"window {window} has negligible probability for bin {index}")
        lam = np.linspace(a, c, n_grid)
        prior = np.exp(-0.5 * ((lam - mc) / sc) ** 2) / (sc * math.sqrt(2.0 * math.pi))
        beta = v[oth, index] / vcc
    else:
        lam = np.array([mc])
        prior = np.array([1.0])
        beta = np.zeros(nb - 1)
    p_win = scipy.special.pdtr(hi, lam) - (scipy.special.pdtr(lo - 1, lam) if lo > 0 else 0.0)
    w = prior * p_win
    norm = float(w.sum())
    if not norm > 0.0:
        raise ModelError(f"window {window} has negligible probability for bin {index}")
    prob = norm * (lam[1] - lam[0]) if lam.shape[0] > 1 else norm
    cond = v[np.ix_(oth, oth)] - np.outer(beta, v[index, oth])
    mu = m[oth][None, :] + np.outer(lam - mc, beta)
    mean = (w @ mu) / norm
    second = np.einsum("i,ij,ik->jk", w, mu, mu) / norm + cond + np.diag(mean)
    return ConditionalMoments(mean, second - np.outer(mean, mean), float(prob))


def toy_conditional_moments(
    expected: np.ndarray,
    shifts: Shifts,
    *,
    index: int,
    window: tuple[int, int],
    n_toys: int,
    seed: int,
    chunk_size: int = 1_000_000,
) -> ConditionalMoments:
    """Pseudo-experiment version of :func:`conditional_count_moments`, in chunks.

    Throws lambda = expected + sum_k z_k D_k (z_k standard normal, so a singular systematic
    covariance is fine), clips lambda at 0, draws Poisson counts, and keeps only running sums
    of the toys whose bin ``index`` lies in [lo, hi]: memory is O(chunk_size), never O(n_toys).
    Same (seed, chunk_size) gives identical results.
    """
    m = _vector(expected, "expected")
    nb = m.shape[0]
    if not 0 <= index < nb:
        raise ModelError(f"index {index} out of range for {nb} bins")
    if n_toys < 1 or chunk_size < 1:
        raise ModelError("n_toys and chunk_size must be positive")
    lo, hi = _window(window)
    d = _stack(_shift_matrix(shifts, nb), nb)
    oth = np.arange(nb) != index
    rng = np.random.default_rng(seed)
    count = 0
    s1 = np.zeros(nb - 1)
    s2 = np.zeros((nb - 1, nb - 1))
    centre = m[oth]
    done = 0
    while done < n_toys:
        k = min(chunk_size, n_toys - done)
        lam = m + rng.standard_normal((k, d.shape[0])) @ d
        counts = rng.poisson(np.maximum(lam, 0.0))
        sel = (counts[:, index] >= lo) & (counts[:, index] <= hi)
        # Centre on the expectation so the sums of squares keep their precision.
        x = counts[sel][:, oth] - centre
        count += int(sel.sum())
        s1 += x.sum(axis=0)
        s2 += x.T @ x
        done += k
    if count < 2:
        raise ModelError(f"fewer than 2 of {n_toys} toys fall in window {window}")
    mean_c = s1 / count
    cov = (s2 - count * np.outer(mean_c, mean_c)) / (count - 1)
    return ConditionalMoments(mean_c + centre, cov, count / n_toys, count)


__all__ = [
    "Chi2Result",
    "ConditionalMoments",
    "breakdown",
    "chi2",
    "chi2_batch",
    "conditional_count_moments",
    "conditional_prediction",
    "counting_shifts",
    "covariance",
    "fit_mu",
    "partially_correlated_shifts",
    "toy_conditional_moments",
]
