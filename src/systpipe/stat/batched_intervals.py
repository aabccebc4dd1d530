"""Profile-likelihood intervals of the POI for many pseudo-experiments at once.

For each toy the edges are the two solutions of q(mu) = 2 (NLL(mu, theta-hat-hat(mu)) - NLL_min)
= level. Every point is a batched conditional fit (:mod:`.batched`); the edges are found by
Newton's method on h(mu) = sqrt(q(mu)) - sqrt(level), which is nearly linear in mu (exactly
so for a Gaussian likelihood), with the exact derivative from the envelope theorem,

    dq/dmu = 2 dNLL/dmu at (mu, theta-hat-hat(mu)),   dh/dmu = (dNLL/dmu) / sqrt(q),

started at mu-hat -/+ sqrt(level) sigma_Hesse and kept inside the bracket [inner, outer]
(h(inner) < 0 < h(outer)) by bisection, or by doubling the distance to mu-hat while no outer
point is known. Each conditional fit is warm-started at the linear prediction of the previous
one, theta(mu') = theta(mu) + (mu' - mu) dtheta/dmu with dtheta_f/dmu = -H_ff^-1 H_f,mu. An
edge beyond the POI bound is the bound (flagged).

A non-monotonic histosys can give the NLL several valleys: the free fit also starts from each
free histosys alpha at -1, -0.5, 0.5, 1 and keeps the lowest minimum, and a conditional fit
below the free minimum restarts that toy from there. A fit where Newton does not converge is
redone by iminuit; toys where the batched search still fails are redone one at a time with the
iminuit path of :func:`~.methods.profile` (MINOS, root finding when MINOS fails).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..errors import ModelError
from .batched import BatchFit, _as_batch, _fit_core, _Layout, _Obs, _setup
from .batched_linalg import _hesse_errors
from .intervals import HISTOSYS_STARTS
from .likelihood import HistFactoryModel

#: Flag bits of :class:`BatchIntervals`: an edge at the POI bound, the toy redone with iminuit,
#: no interval at all (NaN).
FLAG_LO_BOUND = 1
FLAG_HI_BOUND = 2
FLAG_FALLBACK = 4
FLAG_FAILED = 8
#: Two minima are the same when their NLLs agree to this.
_SAME_NLL = 1e-7
_FIELDS = ("values", "nll", "converged", "n_iter", "fallback", "grad", "hess")


@dataclass(frozen=True)
class BatchIntervals:
    """Per toy: mu-hat, the interval edges, the flag bits (:data:`FLAG_LO_BOUND` ...), the
    minimum NLL, the conditional fits (both sides) of the batched search and how many single
    fits (free or conditional) Newton left to iminuit."""

    mu_hat: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    flags: np.ndarray
    nll_min: np.ndarray
    n_points: np.ndarray
    n_refits: np.ndarray

    @property
    def n_fallback(self) -> int:
        """Toys redone with the iminuit path."""
        return int(np.count_nonzero(self.flags & FLAG_FALLBACK))

    @property
    def n_failed(self) -> int:
        """Toys without an interval."""
        return int(np.count_nonzero(self.flags & FLAG_FAILED))


def _dtheta_dmu(hess: np.ndarray, free: np.ndarray, ip: int) -> np.ndarray:
    """dtheta/dmu (T, P) along the conditional minimum: -H_ff^-1 H_f,mu on the free
    parameters ``free`` (which exclude the POI), 1 for the POI, 0 elsewhere."""
    t_n, p_n = free.shape
    pair = free[:, :, None] & free[:, None, :]
    h = np.where(pair, hess, 0.0) + np.where(free, 0.0, 1.0)[:, :, None] * np.eye(p_n)
    rhs = np.where(free, hess[:, :, ip], 0.0)
    out = np.zeros((t_n, p_n))
    ok = np.isfinite(h).all(axis=(1, 2)) & np.isfinite(rhs).all(axis=1)
    try:
        out[ok] = -np.linalg.solve(h[ok], rhs[ok, :, None])[..., 0]
    except np.linalg.LinAlgError:  # a singular matrix: solve toy by toy, zero where singular
        for t in np.flatnonzero(ok):
            try:
                out[t] = -np.linalg.solve(h[t], rhs[t])
            except np.linalg.LinAlgError:
                out[t] = 0.0
    out[:, ip] = 1.0
    return out


def _take_rows(best: BatchFit, cand: BatchFit, rows: np.ndarray) -> None:
    """Replace the toys ``rows`` (bool) of ``best`` by those of ``cand`` (same batch)."""
    for name in _FIELDS:
        getattr(best, name)[rows] = getattr(cand, name)[rows]


def _free_fit(
    model: HistFactoryModel,
    lay: _Layout,
    obs: _Obs,
    x0: np.ndarray,
    free: np.ndarray,
    offsets: Sequence[float],
    tol: float,
    fallback: bool,
) -> BatchFit:
    """The free fit from ``x0`` and, for every free histosys alpha h and offset o, from ``x0``
    with alpha_h = o (a non-monotonic shape systematic can give the NLL two valleys); per toy
    the lowest converged minimum."""
    best = _fit_core(model, lay, obs, x0, free, tol=tol, fallback=fallback)
    for h in model.alpha_index[model.hs_alpha]:
        for off in offsets:
            start = x0.copy()
            start[:, h] = np.where(free[:, h], off, x0[:, h])
            cand = _fit_core(model, lay, obs, start, free, tol=tol, fallback=False)
            _take_rows(
                best, cand, cand.converged & (~best.converged | (cand.nll < best.nll - _SAME_NLL))
            )
    return best


def profile_intervals_batch(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    level: float = 1.0,
    max_iter: int = 30,
    xtol: float = 1e-7,
    tol: float = 1e-8,
    histosys_starts: Sequence[float] = HISTOSYS_STARTS,
    fallback: bool = True,
) -> BatchIntervals:
    """mu-hat and the profile-likelihood interval (2 Delta NLL = ``level``) of every toy.

    The free fit starts at the model's inits and at each free histosys alpha set to each of
    ``histosys_starts`` (the lowest minimum wins). A conditional fit that finds an NLL below
    the free minimum restarts the toy's free fit from there, once.

    Args:
        model: the fast model.
        data: main counts (T, B).
        aux: auxiliary data (T, C) or (C,); None: nominal.
        level: 2 Delta NLL at the edges (1: the 68.3 % interval).
        max_iter: root-finding steps per edge.
        xtol: an edge is final when its Newton correction is below ``xtol`` sigma_Hesse (the
            error after that correction is of order xtol^2).
        tol: gradient tolerance of every fit (:func:`~.batched.fit_batch`).
        histosys_starts: extra starting values of each free histosys alpha (() for none).
        fallback: redo the toys where the batched search fails with the iminuit path; without
            it they get NaN and :data:`FLAG_FAILED`.

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [10.0],
        ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> r = profile_intervals_batch(HistFactoryModel(spec), np.array([[10.0], [40.0]]))
        >>> r.mu_hat.round(8).tolist()  # one Poisson bin: mu-hat = n / 10
        [1.0, 4.0]
        >>> # the edges solve 2 (10 mu - n ln mu - (n - n ln(n/10))) = 1 (brentq: same digits)
        >>> r.lo.round(6).tolist(), r.hi.round(6).tolist()
        ([0.716189, 3.400429], [1.350403, 4.666219])
    """
    lay = _Layout(model)
    obs = _as_batch(model, lay, data, aux)
    ip = model.poi_index
    if model.fixed[ip]:
        raise ModelError(f"the POI {model.poi_name!r} is fixed in the measurement")
    if not level > 0:
        raise ModelError(f"level must be positive, got {level}")
    t_n = obs.data.shape[0]
    x0, free = _setup(model, t_n, None, None)
    best = _free_fit(model, lay, obs, x0, free, histosys_starts, tol, fallback)
    scan = partial(
        _scan, model, lay, level=level, max_iter=max_iter, xtol=xtol, tol=tol, fallback=fallback
    )
    edge, at_bound, failed, n_points, refits, lower = scan(obs, best, free)
    refits[:t_n] += best.fallback
    redo = np.flatnonzero(np.isfinite(lower[:, 0]))
    if redo.size:  # a lower minimum turned up: refit from it and scan those toys again
        sub = obs.take(redo)
        again = _free_fit(model, lay, sub, lower[redo], free[redo], (), tol, fallback)
        keep = again.converged & (again.nll < best.nll[redo])
        for k in _FIELDS:
            getattr(best, k)[redo[keep]] = getattr(again, k)[keep]
        sub_best = BatchFit(*(getattr(best, k)[redo] for k in _FIELDS))
        res = scan(sub, sub_best, free[redo])
        both = np.concatenate([redo, redo + t_n])
        edge[both], at_bound[both] = res[0], res[1]
        n_points[both] += res[3]
        refits[both] += res[4]
        failed[both] = res[2] | np.tile(np.isfinite(res[5][:, 0]), 2)
    mu_hat, nll_min = best.values[:, ip].copy(), best.nll.copy()
    lo, hi = edge[:t_n], edge[t_n:]
    flags = np.where(at_bound[:t_n], FLAG_LO_BOUND, 0) | np.where(at_bound[t_n:], FLAG_HI_BOUND, 0)
    for t in np.flatnonzero(failed[:t_n] | failed[t_n:]):
        if fallback:
            mu_hat[t], lo[t], hi[t], flags[t] = _iminuit_interval(model, obs.data[t], obs.aux[t])
        else:
            mu_hat[t], lo[t], hi[t], flags[t] = math.nan, math.nan, math.nan, FLAG_FAILED
    return BatchIntervals(
        mu_hat, lo, hi, flags.astype(np.int64), nll_min, n_points[:t_n] + n_points[t_n:],
        refits[:t_n] + refits[t_n:],
    )  # fmt: skip


def _scan(
    model: HistFactoryModel,
    lay: _Layout,
    obs: _Obs,
    best: BatchFit,
    free: np.ndarray,
    *,
    level: float,
    max_iter: int,
    xtol: float,
    tol: float,
    fallback: bool,
) -> tuple[np.ndarray, ...]:
    """The root finding of both edges of every toy from its free minimum ``best``.

    Returns edges (2T: lower edges, then upper), whether each is at the POI bound, whether it
    failed, the conditional fits and their iminuit refits per edge, and per toy the lowest
    conditional point whose NLL is below the free minimum (NaN rows where none was found;
    those toys count as failed).
    """
    ip = model.poi_index
    t_n = obs.data.shape[0]
    mu_hat, nll_min = best.values[:, ip], best.nll
    err = _hesse_errors(best.hess, free)[:, ip]
    sigma = np.where(np.isfinite(err) & (err > 0), err, 1.0)
    target = math.sqrt(level)
    lo_b, hi_b = (float(v) for v in model.bounds[ip])
    cfree = free.copy()
    cfree[:, ip] = False
    toy = np.concatenate([np.arange(t_n), np.arange(t_n)])
    side = np.repeat([-1.0, 1.0], t_n)
    bound = np.where(side < 0, lo_b, hi_b)
    edge = np.full(2 * t_n, np.nan)
    at_bound = np.zeros(2 * t_n, dtype=bool)
    failed = ~best.converged[toy]
    lower = np.full((t_n, model.n_pars), np.nan)
    lower_nll = nll_min - _SAME_NLL
    done = failed.copy()
    start_at = (mu_hat[toy] - bound) * side >= 0  # mu-hat on the bound of that side
    edge[start_at & ~failed] = bound[start_at & ~failed]
    at_bound |= start_at & ~failed
    done |= start_at
    inner = mu_hat[toy].copy()
    outer = np.full(2 * t_n, np.nan)
    mu = np.clip(mu_hat[toy] + side * target * sigma[toy], lo_b, hi_b)
    x = best.values[toy] + _dtheta_dmu(best.hess, cfree, ip)[toy] * (mu - mu_hat[toy])[:, None]
    x = np.clip(x, lay.lo, lay.hi)
    x[:, ip] = mu
    n_points = np.zeros(2 * t_n, dtype=np.int64)
    refits = np.zeros(2 * t_n, dtype=np.int64)
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if not act.size:
            break
        tk = toy[act]
        core = _fit_core(model, lay, obs.take(tk), x[act], cfree[tk], tol=tol, fallback=fallback)
        n_points[act] += 1
        refits[act] += core.fallback
        deeper = core.converged & (core.nll < lower_nll[tk])
        for k in np.flatnonzero(deeper):  # a lower minimum than the free fit's
            if core.nll[k] < lower_nll[tk[k]]:
                lower_nll[tk[k]], lower[tk[k]] = core.nll[k], core.values[k]
        bad = ~core.converged | deeper
        failed[act[bad]] = True
        root = np.sqrt(np.maximum(2.0 * (core.nll - nll_min[tk]), 0.0))
        h = root - target
        slope = core.grad[:, ip] / np.maximum(root, 1e-12)  # d sqrt(q) / dmu
        s, mu_k = side[act], mu[act]
        below = h < 0
        inner[act[below]] = mu_k[below]
        outer[act[~below]] = mu_k[~below]
        hit = below & (mu_k == bound[act])  # still inside at the bound: the edge is the bound
        prop = mu_k - h / np.where(slope != 0, slope, np.nan)
        has_out = np.isfinite(outer[act])
        a_in, a_out = inner[act], outer[act]
        with np.errstate(invalid="ignore"):
            inside = np.where(
                has_out,
                (prop - a_in) * (a_out - prop) > 0,
                (prop - a_in) * s > 0,
            )
            newton = np.isfinite(prop) & (slope * s > 0) & inside
        # a correction below xtol sigma is final even if it rounds onto the bracket's edge
        final = np.isfinite(prop) & (np.abs(prop - mu_k) < xtol * sigma[tk]) & (np.abs(h) < 1e-3)
        alt = np.where(has_out, 0.5 * (a_in + a_out), mu_hat[tk] + 2.0 * (mu_k - mu_hat[tk]))
        new = np.where(newton, prop, alt)
        new = np.where((new - bound[act]) * s >= 0, bound[act], new)
        fin = final & ~bad & ~hit
        edge[act[fin]] = np.clip(prop[fin], lo_b, hi_b)
        edge[act[hit & ~bad]] = bound[act[hit & ~bad]]
        at_bound[act[hit & ~bad]] = True
        done[act[fin | hit | bad]] = True
        more = ~(fin | hit | bad)
        if not more.any():
            continue
        slope_x = _dtheta_dmu(core.hess[more], cfree[tk[more]], ip)
        xs = core.values[more] + slope_x * (new[more] - mu_k[more])[:, None]
        xs = np.clip(xs, lay.lo, lay.hi)
        xs[:, ip] = new[more]
        x[act[more]] = xs
        mu[act[more]] = new[more]
    failed |= ~done
    return edge, at_bound, failed, n_points, refits, lower


def _iminuit_interval(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray
) -> tuple[float, float, float, int]:
    """One toy by the iminuit path (:func:`~.intervals.toy_profile_interval`); (mu-hat, lo, hi,
    flags), NaN and :data:`FLAG_FAILED` when it fails."""
    from .intervals import toy_profile_interval

    ip = model.poi_index
    try:
        mu, lo, hi = toy_profile_interval(model, data, aux)
    except (ModelError, RuntimeError, ValueError):
        return math.nan, math.nan, math.nan, FLAG_FAILED | FLAG_FALLBACK
    flags = FLAG_FALLBACK
    flags |= FLAG_LO_BOUND if lo <= model.bounds[ip, 0] else 0
    flags |= FLAG_HI_BOUND if hi >= model.bounds[ip, 1] else 0
    return mu, lo, hi, flags


__all__ = [
    "FLAG_FAILED",
    "FLAG_FALLBACK",
    "FLAG_HI_BOUND",
    "FLAG_LO_BOUND",
    "BatchIntervals",
    "profile_intervals_batch",
]
