"""Linear algebra on stacks of per-toy Hessians for the batched fitter (:mod:`.batched`):
positive-definiteness, the damped Newton step, curvature scales and Hesse errors."""

from __future__ import annotations

import numpy as np

#: Levenberg-Marquardt damping tries (x10 each) before falling back to gradient descent.
_DAMPING_TRIES = 6


def _pd_mask(mat: np.ndarray) -> np.ndarray:
    """Which matrices of a stack (T, n, n) are positive definite: a Cholesky factorisation
    vectorised over the stack, one column at a time (every pivot must be positive)."""
    t_n, n, _ = mat.shape
    low = np.zeros_like(mat)
    ok = np.ones(t_n, dtype=bool)
    for j in range(n):
        row = low[:, j, :j]
        piv = mat[:, j, j] - np.einsum("tk,tk->t", row, row)
        ok &= piv > 0
        root = np.sqrt(np.where(piv > 0, piv, 1.0))
        low[:, j, j] = root
        if j + 1 < n:
            below = mat[:, j + 1 :, j] - np.matmul(low[:, j + 1 :, :j], row[:, :, None])[..., 0]
            low[:, j + 1 :, j] = below / root[:, None]
    return ok


def _newton_step(p0: int, hess: np.ndarray, grad: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The damped Newton step -(H_ff + mu I)^-1 g_f on the free parameters (zero elsewhere).

    H is Jacobi-scaled (s_i = |H_ii|^-1/2) and split into the row-parameter block A (P0 x P0),
    the gamma block D (diagonal: each gamma acts on one bin) and their coupling C; the solve
    is the Schur complement (A - C^T D^-1 C) x_0 = g_0 - C^T D^-1 g_g, x_g = D^-1 (g_g - C x_0).
    mu = 0 where the Hessian is positive definite, else 1.2 |lambda_min| + 1e-6 of the scaled
    Hessian, times 10 until it is (Levenberg-Marquardt); scaled gradient descent if none is.
    """
    t_n, p_n = grad.shape
    diag = np.abs(np.einsum("tii->ti", hess))
    s = np.where(free, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
    gs = s * grad
    a = hess[:, :p0, :p0] * s[:, :p0, None] * s[:, None, :p0]
    a[:, np.arange(p0), np.arange(p0)] += ~free[:, :p0]
    g0, gg = gs[:, :p0], gs[:, p0:]
    if p_n > p0:
        c = hess[:, p0:, :p0] * s[:, p0:, None] * s[:, None, :p0]
        d = np.einsum("tii->ti", hess[:, p0:, p0:]) * s[:, p0:] ** 2 + ~free[:, p0:]
    else:
        c, d = np.zeros((t_n, 0, p0)), np.ones((t_n, 0))

    def schur(
        a: np.ndarray, c: np.ndarray, d: np.ndarray, mu: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dm = d + mu[:, None]
        inv = 1.0 / np.where(dm > 0, dm, 1.0)
        sc = a - np.matmul(np.swapaxes(c, 1, 2), c * inv[:, :, None])
        sc = sc + mu[:, None, None] * np.eye(p0)
        ok = np.all(dm > 0, axis=1)
        ok[ok] = _pd_mask(sc[ok])
        return sc, inv, ok

    sc, inv, ok = schur(a, c, d, np.zeros(t_n))
    bad = np.flatnonzero(~ok)
    if bad.size:  # mu just above -lambda_min of the scaled Hessian, then x10 until PD
        sb = s[bad]
        full = hess[bad] * sb[:, :, None] * sb[:, None, :] + (~free[bad])[:, :, None] * np.eye(p_n)
        mu = 1.2 * np.maximum(-np.linalg.eigvalsh(full)[:, 0], 0.0) + 1e-6
    for _k in range(_DAMPING_TRIES if bad.size else 0):
        sc_b, inv_b, ok_b = schur(a[bad], c[bad], d[bad], mu)
        take = bad[ok_b]
        sc[take], inv[take], ok[take] = sc_b[ok_b], inv_b[ok_b], True
        bad, mu = bad[~ok_b], 10.0 * mu[~ok_b]
    if not ok.all():  # no damping helps: scaled gradient descent
        sc[~ok], inv[~ok] = np.eye(p0), 1.0
        c = c.copy()
        c[~ok] = 0.0
    rhs = g0 - np.matmul(np.swapaxes(c, 1, 2), (gg * inv)[:, :, None])[..., 0]
    x0 = np.linalg.solve(sc, rhs[:, :, None])[..., 0]
    xg = (gg - np.matmul(c, x0[:, :, None])[..., 0]) * inv
    return -s * np.concatenate([x0, xg], axis=1)


def _curvature_scale(hess: np.ndarray) -> np.ndarray:
    """1 / sqrt(H_ii) per toy and parameter (1 where the curvature is not positive)."""
    diag = np.diagonal(hess, axis1=1, axis2=2)
    return np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 1.0)


def _hesse_errors(hess: np.ndarray, free: np.ndarray) -> np.ndarray:
    """sqrt(diag((H_ff)^-1)) of the free parameters, NaN elsewhere or where H_ff is singular."""
    pair = free[:, :, None] & free[:, None, :]
    h = np.where(pair, hess, 0.0) + np.where(free, 0.0, 1.0)[:, :, None] * np.eye(hess.shape[1])
    ok = np.all(np.isfinite(h), axis=(1, 2))
    ok[ok] = np.abs(np.linalg.det(h[ok])) > 0
    cov = np.full_like(h, np.nan)
    cov[ok] = np.linalg.inv(h[ok])
    d = np.einsum("tii->ti", cov)
    return np.where(free & (d > 0), np.sqrt(np.where(d > 0, d, 1.0)), np.nan)
