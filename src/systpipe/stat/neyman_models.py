"""Simulators and profile-likelihood-ratio test statistics for learned Neyman constructions.

A *Neyman model* (:class:`NeymanModel`) has a parameter vector theta = (mu, nu_1 .. nu_K) (the
POI first, then the nuisances) inside a box ``bounds`` (P, 2), and offers

- ``simulate(params (T, P), rng) -> data (T, D)``: one dataset per parameter row;
- ``statistic(data (T, D), mu) -> (T,)``: the profile likelihood ratio
  t(mu) = -2 ln [L(mu, nu-hat-hat(mu)) / L(mu-hat, nu-hat)] with mu-hat >= 0 (two-sided);
- ``nuisance_hat(data, mu) -> (T, K)``: the conditional estimate nu-hat-hat(mu);
- ``joint_statistic(data, params) -> (T,)``: -2 ln [L(mu, nu) / L(mu-hat, nu-hat)], the
  statistic of the full construction over (mu, nu).

Three models:

- :class:`OnOffModel` (the LF2I benchmark): n_on ~ Poisson(nu b + mu s), n_off ~ Poisson(nu tau b).
  Closed form: nu-hat-hat(mu) is the positive root of
  (1 + tau) b^2 nu^2 - [(n_on + n_off) b - (1 + tau) b mu s] nu - n_off mu s = 0, and the free
  maximum is the saturated one (mu-hat = (n_on - n_off/tau)/s, nu-hat = n_off/(tau b)) unless
  mu-hat < 0, then mu-hat = 0.
- :class:`CountingModel` (reference notebook 000): N ~ Poisson(sigma L + b) with Gaussian
  auxiliary measurements L_obs ~ N(L, dL), b_obs ~ N(b, db). Closed form: at fixed sigma the
  profile over (L, b) depends on m = sigma L + b only, with the quadratic penalty
  (m - m_o)^2 / (2 V), m_o = sigma L_obs + b_obs, V = sigma^2 dL^2 + db^2, so m-hat is the
  positive root of m^2 + (V - m_o) m - N V = 0 and L-hat = L_obs + sigma dL^2 (m - m_o)/V,
  b-hat = b_obs + db^2 (m - m_o)/V.
- :class:`HistFactoryNeyman`: any :class:`~.likelihood.HistFactoryModel`; the statistic comes
  from two batched fits per dataset (:func:`~.batched.fit_batch`: free, and conditional at mu).

In the closed forms the nuisances are only required to be positive (nu > 0; L, b unbounded):
the statistic is then a smooth function of the data. The box ``bounds`` is the parameter space
of the construction (where critical values are learned), not a constraint of the fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.special import xlogy

from ..errors import ModelError
from .batched import fit_batch
from .likelihood import HistFactoryModel


class NeymanModel(Protocol):
    """What the learned construction needs from a model (see the module docstring)."""

    names: tuple[str, ...]
    bounds: np.ndarray
    n_counts: int  # the leading data columns that are counts

    def simulate(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def statistic(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray: ...

    def nuisance_hat(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray: ...


def sample_parameters(bounds: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` parameter points drawn uniformly in the box ``bounds`` (P, 2).

    Example:
        >>> p = sample_parameters(np.array([[0.0, 5.0], [0.6, 1.4]]), 3, np.random.default_rng(1))
        >>> p.shape, bool(np.all((p[:, 1] >= 0.6) & (p[:, 1] <= 1.4)))
        ((3, 2), True)
    """
    b = np.asarray(bounds, dtype=np.float64)
    return b[:, 0] + (b[:, 1] - b[:, 0]) * rng.random((int(n), b.shape[0]))


def _check_params(params: np.ndarray, n_par: int, what: str) -> np.ndarray:
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    if p.ndim != 2 or p.shape[1] != n_par:
        raise ModelError(f"{what}: params must have shape (n, {n_par}), got {p.shape}")
    return p


def _check_data(data: np.ndarray, n_obs: int, what: str) -> np.ndarray:
    d = np.atleast_2d(np.asarray(data, dtype=np.float64))
    if d.ndim != 2 or d.shape[1] != n_obs:
        raise ModelError(f"{what}: data must have shape (n, {n_obs}), got {d.shape}")
    return d


def _positive_root(a: np.ndarray | float, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The larger root of a x^2 + b x + c = 0 (a > 0, c <= 0), in a cancellation-free form."""
    disc = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        alt = -2.0 * c / (disc + b)  # equal to (-b + disc) / (2 a) where b > 0
    return np.where(b > 0, alt, (-b + disc) / (2.0 * a))


@dataclass(frozen=True)
class OnOffModel:
    """The on/off counting experiment of the LF2I benchmarks (closed-form statistic).

    Example:
        >>> m = OnOffModel()
        >>> d = np.array([[85.0, 70.0], [60.0, 75.0]])
        >>> m.statistic(d, 1.0).round(6).tolist()  # mu-hat = 1 for the first: t(1) = 0
        [0.0, 4.943499]
        >>> m.nuisance_hat(d, 1.0)[:, 0].round(6).tolist()
        [1.0, 0.880392]
    """

    s: float = 15.0
    b: float = 70.0
    tau: float = 1.0
    bounds: np.ndarray = field(default_factory=lambda: np.array([[0.0, 5.0], [0.6, 1.4]]))
    names: tuple[str, ...] = ("mu", "nu")
    n_counts: int = 2

    def mean(self, params: np.ndarray) -> np.ndarray:
        """Expected (n_on, n_off) per parameter row (T, 2)."""
        p = _check_params(params, 2, "on/off model")
        return np.stack([p[:, 1] * self.b + p[:, 0] * self.s, p[:, 1] * self.tau * self.b], axis=1)

    def features(self, params: np.ndarray) -> np.ndarray:
        """The expected distance of mu from its bound 0 in standard deviations,
        mu s / sqrt(nu b (1 + 1/tau)) (T, 1): where the critical values change fastest."""
        p = _check_params(params, 2, "on/off model")
        return (p[:, 0] * self.s / np.sqrt(p[:, 1] * self.b * (1.0 + 1.0 / self.tau)))[:, None]

    def asymptotic_sigma(self, params: np.ndarray) -> np.ndarray:
        """The asymptotic standard deviation of mu-hat at each true point (T,), nu profiled:
        1 / sqrt(I_mumu - I_munu^2 / I_nunu) from the Fisher information of the two counts.

        Example:
            >>> OnOffModel().asymptotic_sigma(np.array([[0.0, 1.0]])).round(4).tolist()
            [0.7888]
        """
        lam = self.mean(params)
        i_mm = self.s**2 / lam[:, 0]
        i_mn = self.s * self.b / lam[:, 0]
        i_nn = self.b**2 / lam[:, 0] + (self.tau * self.b) ** 2 / lam[:, 1]
        return np.asarray(1.0 / np.sqrt(i_mm - i_mn**2 / i_nn), dtype=np.float64)

    def simulate(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One (n_on, n_off) per parameter row."""
        return rng.poisson(self.mean(params)).astype(np.float64)

    def nll(self, data: np.ndarray, params: np.ndarray) -> np.ndarray:
        """NLL without the data constant, per row of data and params (broadcast)."""
        d = _check_data(data, 2, "on/off model")
        p = np.atleast_2d(np.asarray(params, dtype=np.float64))
        lam_on = p[:, 1] * self.b + p[:, 0] * self.s
        lam_off = p[:, 1] * self.tau * self.b
        return lam_on - xlogy(d[:, 0], lam_on) + lam_off - xlogy(d[:, 1], lam_off)

    def nuisance_hat(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """nu-hat-hat(mu) (T, 1), the positive root of the score equation."""
        d = _check_data(data, 2, "on/off model")
        a = np.asarray(mu, dtype=np.float64) * self.s
        qa = (1.0 + self.tau) * self.b**2
        qb = (1.0 + self.tau) * self.b * a - (d[:, 0] + d[:, 1]) * self.b
        qc = -d[:, 1] * a
        return _positive_root(qa, qb, np.broadcast_to(qc, qb.shape))[:, None]

    def nll_min(self, data: np.ndarray) -> np.ndarray:
        """The free minimum with mu >= 0."""
        d = _check_data(data, 2, "on/off model")
        sat = d[:, 0] - xlogy(d[:, 0], d[:, 0]) + d[:, 1] - xlogy(d[:, 1], d[:, 1])
        at0 = self.nll(d, np.stack([np.zeros(len(d)), self.nuisance_hat(d, 0.0)[:, 0]], axis=1))
        return np.where(d[:, 0] - d[:, 1] / self.tau >= 0, sat, at0)

    def statistic(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """Profile likelihood ratio t(mu) (T,), mu a scalar or one value per row."""
        d = _check_data(data, 2, "on/off model")
        m = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(d),))
        cond = self.nll(d, np.stack([m, self.nuisance_hat(d, m)[:, 0]], axis=1))
        return np.maximum(2.0 * (cond - self.nll_min(d)), 0.0)

    def joint_statistic(self, data: np.ndarray, params: np.ndarray) -> np.ndarray:
        """-2 ln L(mu, nu)/L(mu-hat, nu-hat) (T,) for the full construction."""
        d = _check_data(data, 2, "on/off model")
        p = np.broadcast_to(np.atleast_2d(np.asarray(params, dtype=np.float64)), (len(d), 2))
        return np.maximum(2.0 * (self.nll(d, p) - self.nll_min(d)), 0.0)


@dataclass(frozen=True)
class CountingModel:
    """Notebook 000's counting experiment: N ~ Poisson(sigma L + b), L_obs ~ N(L, dL),
    b_obs ~ N(b, db); parameters (sigma, L, b), data (N, L_obs, b_obs) (closed-form statistic).

    Example:
        >>> m = CountingModel()
        >>> d = np.array([[21.0, 30.0, 6.0], [6.0, 30.0, 6.0]])  # sigma-hat = 0.5, then 0
        >>> m.statistic(d, 0.5).round(6).tolist()
        [0.0, 13.974686]
        >>> m.nuisance_hat(d, 0.5).round(4).tolist()  # (L-hat, b-hat) at sigma = 0.5
        [[30.0, 6.0], [28.6119, 5.3059]]
    """

    d_lumi: float = 2.0
    d_bkg: float = 1.0
    bounds: np.ndarray = field(
        default_factory=lambda: np.array([[0.0, 1.0], [26.0, 34.0], [4.0, 8.0]])
    )
    names: tuple[str, ...] = ("sigma", "L", "b")
    n_counts: int = 1

    def features(self, params: np.ndarray) -> np.ndarray:
        """The expected distance of sigma from its bound 0 in standard deviations,
        sigma L / sqrt(sigma L + b + sigma^2 dL^2 + db^2) (T, 1)."""
        p = _check_params(params, 3, "counting model")
        sl = p[:, 0] * p[:, 1]
        var = sl + p[:, 2] + (p[:, 0] * self.d_lumi) ** 2 + self.d_bkg**2
        return (sl / np.sqrt(np.maximum(var, 1e-12)))[:, None]

    def asymptotic_sigma(self, params: np.ndarray) -> np.ndarray:
        """The asymptotic standard deviation of sigma-hat at each true point (T,), (L, b)
        profiled: the Fisher information is g g^T / lambda + diag(0, 1/dL^2, 1/db^2) with
        g = (L, sigma, 1), lambda = sigma L + b.

        Example:
            >>> CountingModel().asymptotic_sigma(np.array([[0.0, 30.0, 6.0]])).round(4).tolist()
            [0.0882]
        """
        p = _check_params(params, 3, "counting model")
        lam = np.maximum(p[:, 0] * p[:, 1] + p[:, 2], 1e-12)
        g = np.stack([p[:, 1], p[:, 0], np.ones(len(p))], axis=1)
        info = g[:, :, None] * g[:, None, :] / lam[:, None, None]
        info[:, 1, 1] += 1.0 / self.d_lumi**2
        info[:, 2, 2] += 1.0 / self.d_bkg**2
        return np.asarray(np.sqrt(np.linalg.inv(info)[:, 0, 0]), dtype=np.float64)

    def simulate(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One (N, L_obs, b_obs) per parameter row."""
        p = _check_params(params, 3, "counting model")
        n = rng.poisson(np.maximum(p[:, 0] * p[:, 1] + p[:, 2], 0.0)).astype(np.float64)
        lumi = p[:, 1] + self.d_lumi * rng.standard_normal(len(p))
        bkg = p[:, 2] + self.d_bkg * rng.standard_normal(len(p))
        return np.stack([n, lumi, bkg], axis=1)

    def _profile(self, d: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, ...]:
        """m-hat, m_o, V and the profiled NLL at sigma (no data constant)."""
        var = sigma**2 * self.d_lumi**2 + self.d_bkg**2
        m_o = sigma * d[:, 1] + d[:, 2]
        m = _positive_root(1.0, var - m_o, -d[:, 0] * var)
        nll = m - xlogy(d[:, 0], m) + (m - m_o) ** 2 / (2.0 * var)
        return m, m_o, var, nll

    def nuisance_hat(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """(L-hat-hat, b-hat-hat) at sigma = ``mu`` (T, 2)."""
        d = _check_data(data, 3, "counting model")
        sig = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(d),))
        m, m_o, var, _ = self._profile(d, sig)
        k = (m - m_o) / var
        return np.stack([d[:, 1] + sig * self.d_lumi**2 * k, d[:, 2] + self.d_bkg**2 * k], axis=1)

    def nll_min(self, data: np.ndarray) -> np.ndarray:
        """The free minimum with sigma >= 0: saturated (sigma-hat = (N - b_obs)/L_obs), else
        the profile at sigma = 0."""
        d = _check_data(data, 3, "counting model")
        sat = d[:, 0] - xlogy(d[:, 0], d[:, 0])
        at0 = self._profile(d, np.zeros(len(d)))[3]
        return np.where(d[:, 0] - d[:, 2] >= 0, sat, at0)

    def statistic(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """Profile likelihood ratio t(sigma) (T,)."""
        d = _check_data(data, 3, "counting model")
        sig = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(d),))
        return np.maximum(2.0 * (self._profile(d, sig)[3] - self.nll_min(d)), 0.0)

    def joint_statistic(self, data: np.ndarray, params: np.ndarray) -> np.ndarray:
        """-2 ln L(sigma, L, b)/L-hat (T,)."""
        d = _check_data(data, 3, "counting model")
        p = np.broadcast_to(np.atleast_2d(np.asarray(params, dtype=np.float64)), (len(d), 3))
        m = p[:, 0] * p[:, 1] + p[:, 2]
        nll = (
            m
            - xlogy(d[:, 0], m)
            + (p[:, 1] - d[:, 1]) ** 2 / (2 * self.d_lumi**2)
            + (p[:, 2] - d[:, 2]) ** 2 / (2 * self.d_bkg**2)
        )
        return np.maximum(2.0 * (nll - self.nll_min(d)), 0.0)


class HistFactoryNeyman:
    """A :class:`~.likelihood.HistFactoryModel` as a Neyman model, the statistic from batched
    fits. Parameters: the POI, then the free non-POI parameters (``nuisance_index``); data: the
    main counts, then the auxiliary data (alpha or gamma plus a Gaussian of the constraint's
    width). ``bounds`` defaults to the model's parameter bounds.

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [3.0], "modifiers": [
        ...         {"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [1.0], "modifiers": []}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> m = HistFactoryNeyman(HistFactoryModel(spec), bounds=np.array([[0.0, 3.0]]))
        >>> d = np.array([[4.0], [1.0]])  # mu-hat = 1, then 0
        >>> m.statistic(d, 1.0).round(6).tolist()  # 0, then 2 (4 - ln 4 - 1)
        [0.0, 3.227411]
    """

    def __init__(self, model: HistFactoryModel, bounds: np.ndarray | None = None) -> None:
        self.model = model
        ip = model.poi_index
        self.nuisance_index = np.array(
            [i for i in range(model.n_pars) if i != ip and not model.fixed[i]], dtype=np.int64
        )
        self.names = (model.poi_name, *(model.names[i] for i in self.nuisance_index))
        self.n_counts = model.n_bins
        idx = np.concatenate([[ip], self.nuisance_index]).astype(np.int64)
        self.bounds = model.bounds[idx].copy() if bounds is None else np.asarray(bounds, float)
        if self.bounds.shape != (idx.size, 2):
            raise ModelError(
                f"bounds must have shape ({idx.size}, 2) for parameters {list(self.names)}, "
                f"got {self.bounds.shape}"
            )
        self._idx = idx
        self._c_pos = {int(p): k for k, p in enumerate(model.constrained)}

    def _full(self, params: np.ndarray) -> np.ndarray:
        p = _check_params(params, self._idx.size, "HistFactory Neyman model")
        full = np.broadcast_to(self.model.nominal_pars, (len(p), self.model.n_pars)).copy()
        full[:, self._idx] = p
        return full

    def asymptotic_sigma(self, params: np.ndarray, *, step: float = 1e-5) -> np.ndarray:
        """The asymptotic standard deviation of the POI's estimate at each true point (T,), the
        other parameters profiled: 1 / sqrt of the Schur complement of the Fisher information
        J^T diag(1/lambda) J + diag(1/sigma_c^2) (J the derivatives of the expected counts by
        central differences of relative ``step``; the Gaussian constraints of :meth:`simulate`).

        Example:
            >>> spec = {"channels": [{"name": "SR", "samples": [
            ...     {"name": "s", "data": [15.0], "modifiers": [
            ...         {"name": "mu", "type": "normfactor", "data": None}]},
            ...     {"name": "b", "data": [70.0], "modifiers": []}]}],
            ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
            >>> m = HistFactoryNeyman(HistFactoryModel(spec), bounds=np.array([[0.0, 5.0]]))
            >>> m.asymptotic_sigma(np.array([[1.0]])).round(4).tolist()  # sqrt(85) / 15
            [0.6146]
        """
        full = self._full(params)
        idx = self._idx
        out = np.empty(len(full))
        for r, row in enumerate(full):
            lam = np.maximum(self.model.expected(row), 1e-12)
            jac = np.empty((lam.size, idx.size))
            for k, i in enumerate(idx):
                h = step * max(1.0, abs(row[i]))
                up, dn = row.copy(), row.copy()
                up[i] += h
                dn[i] -= h
                jac[:, k] = (self.model.expected(up) - self.model.expected(dn)) / (2.0 * h)
            info = jac.T @ (jac / lam[:, None])
            for k, i in enumerate(idx):
                if int(i) in self._c_pos:
                    info[k, k] += 1.0 / self.model.constraint_sigma[self._c_pos[int(i)]] ** 2
            out[r] = np.sqrt(np.linalg.inv(info)[0, 0])
        return out

    def simulate(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Main counts ~ Poisson(expected), auxiliary data ~ N(parameter, constraint sigma)."""
        full = self._full(params)
        lam = np.array([self.model.expected(row) for row in full])
        counts = rng.poisson(np.maximum(lam, 0.0)).astype(np.float64)
        c = self.model.constrained
        aux = full[:, c] + self.model.constraint_sigma * rng.standard_normal((len(full), c.size))
        return np.concatenate([counts, aux], axis=1)

    def _split(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = _check_data(data, self.model.n_bins + self.model.constrained.size, "HistFactory")
        return d[:, : self.model.n_bins], d[:, self.model.n_bins :]

    def _conditional(self, data: np.ndarray, mu: np.ndarray | float) -> tuple[np.ndarray, ...]:
        counts, aux = self._split(data)
        mu_b = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(counts),))
        cond = fit_batch(self.model, counts, aux, fixed={self.model.poi_index: mu_b})
        free = fit_batch(self.model, counts, aux)
        if not (cond.converged.all() and free.converged.all()):
            bad = np.flatnonzero(~(cond.converged & free.converged))
            raise ModelError(f"batched fits did not converge for datasets {bad[:10].tolist()}")
        return cond.values, cond.nll, free.nll

    def statistic(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """2 (NLL(mu, theta-hat-hat) - NLL_min) from batched fits (T,)."""
        _, cond, free = self._conditional(data, mu)
        return np.maximum(2.0 * (cond - free), 0.0)

    def nuisance_hat(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """The conditional fit's nuisance values (T, K)."""
        return self._conditional(data, mu)[0][:, self.nuisance_index]


__all__ = [
    "CountingModel",
    "HistFactoryNeyman",
    "NeymanModel",
    "OnOffModel",
    "sample_parameters",
]
