"""Batched profile-likelihood fits: the NLL, its analytic gradient and Hessian, and damped Newton
minimisation of many pseudo-experiments at once (NumPy, vectorised over toys).

The model is :class:`~.likelihood.HistFactoryModel`. Per (channel, sample) row r and bin b,

    lambda_b = sum_r G_rb N_r(nf) S_r(alpha) A_rb(alpha),
    N_r = prod_f nf_f^[f on r],   S_r = prod_k F_kr(alpha_k)          (normsys, code4),
    A_rb = nu_rb + sum_h (u_h(alpha_h) Up_hrb + v_h(alpha_h) Dn_hrb)  (histosys, code4p),
    G_rb = gamma_b for rows with staterror, else 1,

and NLL = sum_b (lambda_b - n_b ln lambda_b) + 1/2 sum_c ((theta_c - a_c)/sigma_c)^2 + const.
With w1_b = 1 - n_b/lambda_b and w2_b = n_b/lambda_b^2,

    dNLL/dtheta_i      = sum_b w1_b dlambda_b/dtheta_i + (theta_i - a_i)/sigma_i^2,
    d2NLL/dtheta_i dtheta_j = sum_b [w1_b d2lambda_b/dtheta_i dtheta_j
                                      + w2_b dlambda_b/dtheta_i dlambda_b/dtheta_j] + delta_ij/sigma_i^2.

The row factors give d2(N S A) = d2(N S) A + d(N S) dA^T + dA d(N S)^T + N S d2A, with
d S/d alpha_k = S F'_k/F_k, d2 S/d alpha_k^2 = S F''_k/F_k, d2 S/d alpha_k d alpha_j = S (F'_k/F_k)
(F'_j/F_j); code4 is F = 1 + sum_i c_i alpha^i for |alpha| < 1 and hi^alpha (lo^-alpha) outside;
code4p is u = alpha/2 + p6, v = alpha/2 - p6 with p6 = alpha^2 (15 - 10 alpha^2 + 3 alpha^4)/16
inside |alpha| <= 1 and linear outside. lambda is linear in each gamma_b, so the only second
derivatives of a gamma are the cross terms d2 lambda_b/d gamma_b d theta_i = d SP_b/d theta_i,
SP_b = sum_{r with staterror} N_r S_r A_rb.

:func:`fit_batch` minimises with Newton steps theta <- theta - t H^-1 g on the free parameters
(Jacobi-scaled, Levenberg-Marquardt damping H + mu I where H is not positive definite, step
halving t = 1, 1/2, ... while the NLL rises, bounds by projection with an active set), and hands
the toys that do not converge to iminuit (:func:`~.minimize.minimize`), one at a time.
Intervals: :mod:`.batched_intervals`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import numpy as np
import scipy.special

from ..errors import ModelError
from .batched_linalg import _curvature_scale, _hesse_errors, _newton_step
from .likelihood import HistFactoryModel

_TINY = 1e-10  # the model's floor on lambda
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_MAX_HALVINGS = 30
_NOISE = 1e-9  # NLL changes below this are rounding (sums of ~1e5 terms in double precision)

FixedValues = Mapping[int, "float | np.ndarray"]


class _Obs(NamedTuple):
    """The observations of a batch: main counts (T, B), auxiliary data (T, C), NLL constant (T,)."""

    data: np.ndarray
    aux: np.ndarray
    const: np.ndarray

    def take(self, idx: np.ndarray) -> _Obs:
        return _Obs(self.data[idx], self.aux[idx], self.const[idx])


class _Layout:
    """The model's structure as the arrays the batched evaluation needs (built once per call)."""

    def __init__(self, model: HistFactoryModel) -> None:
        self.n_pars = model.n_pars
        self.n_bins = model.n_bins
        self.n_nf = int(model.normfactor_index.size)
        self.n_p0 = self.n_nf + int(model.alpha_index.size)  # parameters acting on rows
        if not np.array_equal(model.gamma_index, np.arange(self.n_p0, self.n_pars)):
            raise ModelError("batched fits need the gammas as the last parameters")
        self.nf_mask = model.nf_mask
        self.n_rows = int(model.nominal.shape[0])
        self.ns_pidx = model.alpha_index[model.ns_alpha]
        self.hs_pidx = model.alpha_index[model.hs_alpha]
        # code4 in the basis a^0..a^6: columns F | F' | F'' per row, (K, 7, 3R)
        c = np.moveaxis(model.ns_coef, 0, 1)  # (K, 6, R): c[:, i - 1] multiplies a^i
        k_n, r_n = c.shape[0], self.n_rows
        cm = np.zeros((k_n, 7, 3 * r_n))
        cm[:, 0, :r_n] = 1.0
        cm[:, 1:, :r_n] = c
        cm[:, :6, r_n : 2 * r_n] = c * np.arange(1, 7)[None, :, None]
        cm[:, :5, 2 * r_n :] = c[:, 1:] * (np.arange(2, 7) * np.arange(1, 6))[None, :, None]
        self.ns_cmat = cm
        self.ns_loghi, self.ns_loglo = model.ns_loghi, model.ns_loglo
        h_n, b_n = int(self.hs_pidx.size), self.n_bins
        self.hs_up2 = model.hs_up.reshape(h_n, r_n * b_n)
        self.hs_dn2 = model.hs_dn.reshape(h_n, r_n * b_n)
        self.hs_up_r = model.hs_up.transpose(1, 0, 2).reshape(r_n, h_n * b_n)
        self.hs_dn_r = model.hs_dn.transpose(1, 0, 2).reshape(r_n, h_n * b_n)
        self.hs_up_rbh = np.ascontiguousarray(model.hs_up.transpose(1, 2, 0))  # (R, B, H)
        self.hs_dn_rbh = np.ascontiguousarray(model.hs_dn.transpose(1, 2, 0))
        self.nominal = model.nominal
        self.stat = model.stat_rows.astype(np.float64)
        self.all_stat = bool(model.stat_rows.all())
        self.gamma_bins = model.gamma_bins
        self.constrained = model.constrained
        self.inv_var = 1.0 / model.constraint_sigma**2
        p = self.n_pars
        self.diag_flat = np.arange(p) * (p + 1)
        self.gamma_diag_flat = self.diag_flat[self.n_p0 :]
        self.constrained_flat = self.diag_flat[model.constrained]
        self.log_sigma_sum = float(np.sum(np.log(model.constraint_sigma)))
        self.n_constrained = int(model.constrained.size)
        self.lo, self.hi = model.bounds[:, 0], model.bounds[:, 1]

    def constant(self, data: np.ndarray) -> np.ndarray:
        """Per-toy NLL constant: sum_b ln n_b! + sum_c ln sigma_c + C ln sqrt(2 pi)."""
        return (
            scipy.special.gammaln(data + 1.0).sum(axis=1)
            + self.log_sigma_sum
            + _LOG_SQRT_2PI * self.n_constrained
        )


def _code4(lay: _Layout, a: np.ndarray, order: int) -> tuple[np.ndarray, ...]:
    """normsys code4 factors F (T, K, R) and, for order 2, F'/F and F''/F."""
    t_n, k_n = a.shape
    r_n = lay.n_rows
    pw = np.empty((k_n, t_n, 7))
    pw[..., 0] = 1.0
    at = a.T
    for j in range(1, 7):
        pw[..., j] = pw[..., j - 1] * at
    cols = lay.ns_cmat if order else lay.ns_cmat[:, :, :r_n]
    res = np.matmul(pw, cols).transpose(1, 0, 2)  # (T, K, R or 3R)
    poly = res[..., :r_n]
    exact = not bool(np.all(np.abs(a) < 1.0))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if exact:
            up = (a >= 1.0)[..., None]
            dn = (a <= -1.0)[..., None]
            f_up = np.exp(a[..., None] * lay.ns_loghi)
            f_dn = np.exp(-a[..., None] * lay.ns_loglo)
            factor = np.where(up, f_up, np.where(dn, f_dn, poly))
        else:
            factor = poly
        if order == 0:
            return (factor,)
        e1 = res[..., r_n : 2 * r_n] / poly
        e2 = res[..., 2 * r_n :] / poly
        if exact:
            e1 = np.where(up, lay.ns_loghi, np.where(dn, -lay.ns_loglo, e1))
            e2 = np.where(up, lay.ns_loghi**2, np.where(dn, lay.ns_loglo**2, e2))
    return factor, e1, e2


def _code4p(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """code4p weights u, v of the up/down deltas (T, H) and their first and second derivatives."""
    a2 = a * a
    p6 = a2 * (15.0 + a2 * (-10.0 + 3.0 * a2)) / 16.0
    dp6 = a * (30.0 + a2 * (-40.0 + 18.0 * a2)) / 16.0
    d2p6 = (30.0 + a2 * (-120.0 + 90.0 * a2)) / 16.0
    if np.all(np.abs(a) <= 1.0):
        return 0.5 * a + p6, 0.5 * a - p6, 0.5 + dp6, 0.5 - dp6, d2p6, -d2p6
    inside = np.abs(a) <= 1.0
    hi, lo = a > 1.0, a < -1.0
    u = np.where(hi, a, np.where(inside, 0.5 * a + p6, 0.0))
    v = np.where(lo, a, np.where(inside, 0.5 * a - p6, 0.0))
    du = np.where(hi, 1.0, np.where(inside, 0.5 + dp6, 0.0))
    dv = np.where(lo, 1.0, np.where(inside, 0.5 - dp6, 0.0))
    d2u = np.where(inside, d2p6, 0.0)
    return u, v, du, dv, d2u, -d2u


def _evaluate(
    lay: _Layout, pars: np.ndarray, obs: _Obs, order: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """NLL (T,) and, for ``order`` 2, gradient (T, P) and Hessian (T, P, P)."""
    data, aux, const = obs
    t_n = pars.shape[0]
    f_n, p0, r_n, b_n = lay.n_nf, lay.n_p0, lay.n_rows, lay.n_bins
    k_n, h_n = lay.ns_pidx.size, lay.hs_pidx.size
    if f_n == 1:
        vals = None
        n_norm = np.where(lay.nf_mask[0], pars[:, :1], 1.0)  # (T, R)
    else:
        vals = np.where(lay.nf_mask[None], pars[:, :f_n, None], 1.0)  # (T, F, R)
        n_norm = vals.prod(axis=1)
    if k_n:
        parts = _code4(lay, pars[:, lay.ns_pidx], order)
        shape = parts[0].prod(axis=1)
    else:
        parts = ()
        shape = np.ones((t_n, r_n))
    norm = n_norm * shape  # (T, R)
    if h_n:
        w = _code4p(pars[:, lay.hs_pidx])
        flat = lay.nominal.ravel() + w[0] @ lay.hs_up2 + w[1] @ lay.hs_dn2
        add = flat.reshape(t_n, r_n, b_n)
    else:
        w = ()
        add = np.broadcast_to(lay.nominal, (t_n, r_n, b_n))
    gamma = np.ones((t_n, b_n))
    gamma[:, lay.gamma_bins] = pars[:, p0:]
    na = norm[:, :, None] * add
    stat_part = np.einsum("r,trb->tb", lay.stat, na)
    lam = gamma * stat_part
    if not lay.all_stat:
        lam += np.einsum("r,trb->tb", 1.0 - lay.stat, na)
    lam_safe = np.maximum(lam, _TINY)
    pull = pars[:, lay.constrained] - aux
    nll = (
        np.sum(lam_safe - data * np.log(lam_safe), axis=1)
        + 0.5 * np.sum(pull * pull * lay.inv_var, axis=1)
        + const
    )
    if order == 0:
        return nll, None, None
    w1 = 1.0 - data / lam_safe
    w2 = data / (lam_safe * lam_safe)
    # d(N_r S_r)/dtheta_i over the row parameters, (T, P0, R)
    dnorm = np.zeros((t_n, p0, r_n))
    for f in range(f_n):
        others = 1.0 if vals is None else np.delete(vals, f, axis=1).prod(axis=1)
        dnorm[:, f] = lay.nf_mask[f] * others * shape
    if k_n:
        _, e1, e2 = parts
        dnorm[:, lay.ns_pidx] = e1 * norm[:, None, :]

    def rows_d(weight: np.ndarray) -> np.ndarray:
        """sum_r weight_r d(N_r S_r A_rb)/dtheta_i, (T, P0, B)."""
        out = np.matmul(dnorm, add * weight[:, None])
        if h_n:
            cu = ((norm * weight) @ lay.hs_up_r).reshape(t_n, h_n, b_n)
            cd = ((norm * weight) @ lay.hs_dn_r).reshape(t_n, h_n, b_n)
            out[:, lay.hs_pidx] += w[2][..., None] * cu + w[3][..., None] * cd
        return out

    # dlambda/dtheta_i = gamma d_stat + d_non (rows with / without staterror), (T, P0, B)
    d_stat = rows_d(lay.stat)
    dlam0 = gamma[:, None, :] * d_stat
    if not lay.all_stat:
        dlam0 += rows_d(1.0 - lay.stat)
    gb = lay.gamma_bins
    sp_g = stat_part[:, gb]  # dlambda_{b_g}/dgamma_g
    grad = np.empty((t_n, lay.n_pars))
    grad[:, :p0] = np.matmul(dlam0, w1[:, :, None])[..., 0]
    grad[:, p0:] = w1[:, gb] * sp_g
    grad[:, lay.constrained] += pull * lay.inv_var
    # Hessian: sum_b w2 dlam dlam^T + sum_b w1 d2lam + constraints
    hess = np.zeros((t_n, lay.n_pars, lay.n_pars))
    h00 = np.matmul(dlam0 * w2[:, None, :], np.swapaxes(dlam0, 1, 2))
    y = w1[:, None, :] * np.where(lay.stat[:, None] > 0, gamma[:, None, :], 1.0)  # w1_b G_rb
    ya = np.einsum("trb,trb->tr", y, add)
    for f in range(f_n):
        for g in range(f + 1, f_n):
            assert vals is not None
            keep = [i for i in range(f_n) if i not in (f, g)]
            rest = vals[:, keep].prod(axis=1) if keep else 1.0
            term = np.sum(lay.nf_mask[f] * lay.nf_mask[g] * rest * shape * ya, axis=1)
            h00[:, f, g] += term
            h00[:, g, f] += term
    if k_n:
        pos = lay.ns_pidx
        z = norm * ya
        hkk = np.matmul(e1 * z[:, None, :], np.swapaxes(e1, 1, 2))  # sum_r E1_k E1_j z_r
        kk = np.arange(k_n)
        hkk[:, kk, kk] = np.matmul(e2, z[:, :, None])[..., 0]
        h00[:, pos[:, None], pos[None, :]] += hkk
        nfk = np.matmul(dnorm[:, :f_n], np.swapaxes(e1 * ya[:, None, :], 1, 2))  # (T, F, K)
        h00[:, :f_n, pos] += nfk
        h00[:, pos, :f_n] += np.swapaxes(nfk, 1, 2)
    if h_n:
        yt = np.ascontiguousarray(y.transpose(1, 0, 2))  # (R, T, B)
        yu = np.matmul(yt, lay.hs_up_rbh)  # (R, T, H): sum_b y_rb Up_hrb
        yd = np.matmul(yt, lay.hs_dn_rbh)
        yda = (w[2][None] * yu + w[3][None] * yd).transpose(1, 0, 2)  # (T, R, H)
        cross = np.matmul(dnorm, yda)  # (T, P0, H): sum_rb y dnorm_i dA_h
        h00[:, :, lay.hs_pidx] += cross
        h00[:, lay.hs_pidx, :] += np.swapaxes(cross, 1, 2)
        nyu = np.einsum("tr,rth->th", norm, yu)
        nyd = np.einsum("tr,rth->th", norm, yd)
        h00[:, lay.hs_pidx, lay.hs_pidx] += w[4] * nyu + w[5] * nyd
    hess[:, :p0, :p0] = h00
    if gb.size:
        hg0 = (w2[:, gb] * sp_g)[:, :, None] * np.swapaxes(dlam0[:, :, gb], 1, 2)
        hg0 += w1[:, gb, None] * np.swapaxes(d_stat[:, :, gb], 1, 2)
        hess[:, p0:, :p0] = hg0
        hess[:, :p0, p0:] = np.swapaxes(hg0, 1, 2)
    flat = hess.reshape(t_n, lay.n_pars * lay.n_pars)
    if gb.size:
        flat[:, lay.gamma_diag_flat] = w2[:, gb] * sp_g * sp_g
    flat[:, lay.constrained_flat] += lay.inv_var
    return nll, grad, hess


def _as_batch(
    model: HistFactoryModel, lay: _Layout, data: np.ndarray, aux: np.ndarray | None
) -> _Obs:
    """Checked (T, B) counts and (T, C) auxiliary data (None or (C,): the same for every toy)."""
    data = np.atleast_2d(np.asarray(data, dtype=np.float64))
    if data.ndim != 2 or data.shape[1] != model.n_bins:
        raise ModelError(f"data must have shape (n_toys, {model.n_bins}), got {data.shape}")
    shape = (data.shape[0], model.constrained.size)
    aux_b = np.asarray(model.aux_nominal if aux is None else aux, dtype=np.float64)
    if aux_b.shape not in (shape, shape[1:]):
        raise ModelError(f"aux must have shape {shape} or {shape[1:]}, got {aux_b.shape}")
    aux_b = np.broadcast_to(aux_b, shape).copy()
    return _Obs(data, aux_b, lay.constant(data))


def batched_nll_grad_hess(
    model: HistFactoryModel, pars: np.ndarray, data: np.ndarray, aux: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NLL (T,), analytic gradient (T, P) and Hessian (T, P, P) for every toy.

    ``pars`` (T, P), ``data`` (T, B), ``aux`` (T, C) (None: nominal). The NLL equals
    :meth:`~.likelihood.HistFactoryModel.nll` toy by toy (formulas in the module docstring).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [2.0, 4.0],
        ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> model = HistFactoryModel(spec)
        >>> nll, g, h = batched_nll_grad_hess(model, np.array([[1.0]]), np.array([[3.0, 3.0]]))
        >>> g.round(6).tolist(), h.round(6).tolist()  # 6 - 6/mu, 6/mu^2 at mu = 1
        ([[0.0]], [[[6.0]]])
    """
    lay = _Layout(model)
    obs = _as_batch(model, lay, data, aux)
    pars = np.asarray(pars, dtype=np.float64).reshape(obs.data.shape[0], model.n_pars)
    nll, grad, hess = _evaluate(lay, pars, obs, 2)
    assert grad is not None and hess is not None
    return nll, grad, hess


# --------------------------------------------------------------------------- Newton


@dataclass
class BatchFit:
    """Result of :func:`fit_batch`, one row per toy.

    ``converged``: the final minimum is valid (Newton converged, or the iminuit refit of a
    toy where it did not is valid); ``fallback``: the toy was refitted with iminuit;
    ``n_iter``: Newton iterations; ``grad`` (T, P) and ``hess`` (T, P, P) at ``values``;
    ``errors``: Hesse errors sqrt((H_ff^-1)_ii) of the free parameters (NaN for fixed ones).
    """

    values: np.ndarray
    nll: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    fallback: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    errors: np.ndarray | None = None

    @property
    def n_fallback(self) -> int:
        """Toys refitted with iminuit."""
        return int(self.fallback.sum())


def _newton(
    lay: _Layout, obs: _Obs, x0: np.ndarray, free: np.ndarray, *, max_iter: int, tol: float
) -> BatchFit:
    """Damped projected Newton on every toy (see :func:`fit_batch`)."""
    t_n = x0.shape[0]
    x = np.clip(x0, lay.lo, lay.hi)
    nll, grad, hess = _evaluate(lay, x, obs, 2)
    assert grad is not None and hess is not None
    prev = np.full(t_n, np.inf)
    converged = np.zeros(t_n, dtype=bool)
    n_iter = np.zeros(t_n, dtype=np.int64)
    active = np.flatnonzero(np.isfinite(nll))
    for _ in range(max_iter + 1):
        if not active.size:
            break
        xa, ga, na = x[active], grad[active], nll[active]
        # free parameters minus those on a bound whose gradient points out of the box
        eff = free[active] & ~((xa <= lay.lo) & (ga > 0)) & ~((xa >= lay.hi) & (ga < 0))
        step = _newton_step(lay.n_p0, hess[active], ga, eff)
        # the gradient in units of each parameter's curvature, |g_i| / sqrt(H_ii) (about the
        # distance to the minimum in standard deviations): an absolute gradient test cannot
        # be met by a gamma of a high-count bin (sigma ~ 1e-3, H_ii ~ 1e6) in float precision
        scale = _curvature_scale(hess[active])
        gmax = np.max(np.abs(np.where(eff, ga, 0.0)) * scale, axis=1, initial=0.0)
        decrement = -0.5 * np.einsum("ti,ti->t", ga, step)
        done = (gmax < tol) & ((np.abs(prev[active] - na) < tol) | (decrement < tol))
        converged[active[done]] = True
        keep = ~done & (n_iter[active] < max_iter)
        active, xa, na, step = active[keep], xa[keep], na[keep], step[keep]
        eff, gmax, small = eff[keep], gmax[keep], decrement[keep] < _NOISE
        dec = decrement[keep]
        if not active.size:
            break
        n_iter[active] += 1
        t = np.ones(active.size)
        pending = np.arange(active.size)
        accepted = np.zeros(active.size, dtype=bool)
        for _half in range(_MAX_HALVINGS):
            idx = active[pending]
            xt = np.clip(xa[pending] + t[pending, None] * step[pending], lay.lo, lay.hi)
            nt, gt, ht = _evaluate(lay, xt, obs.take(idx), 2)
            assert gt is not None and ht is not None
            slack = 1e-12 * np.maximum(1.0, np.abs(na[pending]))
            ok = np.isfinite(nt) & (nt <= na[pending] + slack)
            # a predicted gain below the NLL's rounding: judge the step by the gradient
            g_t = np.max(
                np.abs(np.where(eff[pending], gt, 0.0)) * _curvature_scale(ht), axis=1, initial=0.0
            )
            ok |= np.isfinite(nt) & small[pending] & (g_t < gmax[pending])
            take = idx[ok]
            prev[take] = nll[take]
            x[take], nll[take], grad[take], hess[take] = xt[ok], nt[ok], gt[ok], ht[ok]
            accepted[pending[ok]] = True
            pending = pending[~ok]
            if _half >= 2:
                # next to the minimum (see below) three halvings are enough to tell rounding
                pending = pending[~((gmax[pending] < math.sqrt(tol)) & (dec[pending] < tol))]
            if not pending.size:
                break
            t[pending] *= 0.5
        # A toy whose step never lowers the NLL stops. It counts as converged when it is within
        # sqrt(tol) standard deviations of the minimum (|g_i| / sqrt(H_ii)) with a Newton
        # decrement below tol: the NLL's rounding, not the minimum, stopped it (seen along the
        # flat valley of mu x signal normalisation x luminosity); otherwise iminuit takes over.
        near = ~accepted & (gmax < math.sqrt(tol)) & (dec < tol)
        converged[active[near]] = True
        active = active[accepted]
    return BatchFit(x, nll, converged, n_iter, np.zeros(t_n, dtype=bool), grad, hess)


def _fit_core(
    model: HistFactoryModel,
    lay: _Layout,
    obs: _Obs,
    x0: np.ndarray,
    free: np.ndarray,
    *,
    max_iter: int = 50,
    tol: float = 1e-8,
    fallback: bool = True,
) -> BatchFit:
    """Newton on every toy, then iminuit (:func:`~.minimize.minimize`, tolerance
    :data:`~.minimize.TIGHT_TOLERANCE`, strategy 1 then 2) where it did not converge."""
    from .minimize import TIGHT_TOLERANCE, minimize

    core = _newton(lay, obs, x0, free, max_iter=max_iter, tol=tol)
    if not fallback or core.converged.all():
        return core
    idx = np.flatnonzero(~core.converged)
    for t in idx:
        fix = {int(i): float(x0[t, i]) for i in np.flatnonzero(~free[t] & ~model.fixed)}
        fit = partial(minimize, model, obs.data[t], obs.aux[t], fixed=fix, hesse=False)
        # from where Newton stopped (its NLL never rises): usually next to the minimum
        start = core.values[t] if np.isfinite(core.nll[t]) else x0[t]
        m = fit(init=start, strategy=1, tolerance=TIGHT_TOLERANCE)
        if not m.valid:
            m = fit(init=m.values, strategy=2, tolerance=TIGHT_TOLERANCE)
        core.values[t], core.nll[t], core.converged[t] = m.values, m.nll, m.valid
    core.fallback[idx] = True
    _, g, h = _evaluate(lay, core.values[idx], obs.take(idx), 2)
    assert g is not None and h is not None
    core.grad[idx], core.hess[idx] = g, h
    return core


def _setup(
    model: HistFactoryModel,
    n_toys: int,
    init: np.ndarray | None,
    fixed: FixedValues | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Starting values (T, P) and the free mask (T, P) of a batch of fits."""
    base = model.init if init is None else np.asarray(init, dtype=np.float64)
    x0 = np.array(np.broadcast_to(base, (n_toys, model.n_pars)), dtype=np.float64)
    free = np.broadcast_to(~model.fixed, (n_toys, model.n_pars)).copy()
    for i, v in (fixed or {}).items():
        if not 0 <= int(i) < model.n_pars:
            raise ModelError(f"fixed parameter index {i} outside 0..{model.n_pars - 1}")
        x0[:, int(i)] = np.broadcast_to(np.asarray(v, dtype=np.float64), (n_toys,))
        free[:, int(i)] = False
    return x0, free


def fit_batch(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    init: np.ndarray | None = None,
    fixed: FixedValues | None = None,
    max_iter: int = 50,
    tol: float = 1e-8,
    fallback: bool = True,
) -> BatchFit:
    """Minimise the NLL of every toy at once (damped projected Newton, iminuit fallback).

    Each iteration: the free set is the free parameters minus those on a bound whose gradient
    points outwards; the step d = -(H_ff + mu I)^-1 g_f (:func:`~.batched_linalg._newton_step`); the trial
    points clip(theta + t d) to the bounds with t = 1, 1/2, 1/4, ... until the NLL does not
    rise.

    Args:
        model: the fast model.
        data: main counts (T, B).
        aux: auxiliary data (T, C) or (C,); None: nominal.
        init: starting values (P,) or (T, P); default the model's inits.
        fixed: parameter index -> value (a float or one value per toy), on top of the model's
            fixed parameters: a conditional fit (e.g. the POI at mu).
        max_iter: Newton iterations per toy.
        tol: convergence when max |dNLL/dtheta_i| / sqrt(d2NLL/dtheta_i^2) over the free
            parameters off an active bound is below ``tol`` and either the last NLL change or
            the Newton decrement g^T H^-1 g / 2 is below ``tol``; or, when no step lowers the
            NLL any more, the first below sqrt(``tol``) and the decrement below ``tol``.
        fallback: refit the toys that do not converge with :func:`~.minimize.minimize`
            (strategy 1, then 2; tolerance :data:`~.minimize.TIGHT_TOLERANCE`).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [2.0, 4.0],
        ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> fit = fit_batch(HistFactoryModel(spec), np.array([[3.0, 3.0], [6.0, 12.0]]))
        >>> fit.values[:, 0].round(8).tolist(), fit.converged.tolist()  # mu-hat = sum n / 6
        ([1.0, 3.0], [True, True])
    """
    lay = _Layout(model)
    obs = _as_batch(model, lay, data, aux)
    x0, free = _setup(model, obs.data.shape[0], init, fixed)
    core = _fit_core(model, lay, obs, x0, free, max_iter=max_iter, tol=tol, fallback=fallback)
    core.errors = _hesse_errors(core.hess, free)
    return core


__all__ = ["BatchFit", "batched_nll_grad_hess", "fit_batch"]
