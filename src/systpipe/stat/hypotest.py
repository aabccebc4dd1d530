"""Toy-based hypothesis tests: the distributions of q_mu-tilde and q0, CLs and p-values.

The asymptotic formulae (:mod:`.limits`, Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554)
fail at low counts; pseudo-experiments do not. The LHC recipe (ATL-PHYS-PUB-2011-011):

- fit the observed data at the tested mu and at mu = 0 (conditional fits), and throw toys from
  the model at those parameters: the main counts Poisson, the auxiliary data of every
  constraint fluctuated around the fitted value (Gaussian, as the model's constraints);
- on every toy compute q_mu-tilde (:func:`qtilde`): 2 (NLL(mu) - NLL(mu-hat)) with mu-hat
  restricted to [0, mu] (0 when mu-hat > mu);
- p_{s+b} = P(q >= q_obs | mu), 1 - p_b = P(q >= q_obs | 0), CLs = p_{s+b} / (1 - p_b).

Each toy's random numbers depend only on (seed, hypothesis, toy index), and the result is kept
as counts (:class:`ToyCLs`), so chunks of toys run in any split and summed with ``+`` give the
same numbers. Every fit is a batched Newton fit (:func:`~.batched.fit_batch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .batched import fit_batch
from .likelihood import HistFactoryModel
from .limits import _with_bounds

_HYPOTHESES = {"sb": 0, "b": 1}


def _limit_model(model: HistFactoryModel, mu: float) -> HistFactoryModel:
    """The model with the POI bounded to [0, max(upper, 2 mu)] (the tilde convention)."""
    ip = model.poi_index
    return _with_bounds(model, ip, (0.0, max(float(model.bounds[ip, 1]), 2.0 * mu, 1.0)))


def qtilde(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray | None, mu: float
) -> np.ndarray:
    """q_mu-tilde of every row of ``data`` (toys, bins): 0 where mu-hat > mu.

    Example (one Poisson bin, s = 5, b = 3, n = 3: mu-hat = 0, q = 2 (5 - 3 ln(8/3))):
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [5.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [3.0], "modifiers": []}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> q = qtilde(HistFactoryModel(spec), np.array([[3.0], [10.0]]), None, 1.0)
        >>> round(float(q[0]), 8) == round(2 * (5 - 3 * math.log(8 / 3)), 8), float(q[1])
        (True, 0.0)
    """
    lim = _limit_model(model, mu)
    ip = lim.poi_index
    counts = np.atleast_2d(np.asarray(data, dtype=np.float64))
    free = fit_batch(lim, counts, aux)
    cond = fit_batch(lim, counts, aux, fixed={ip: float(mu)})
    q = 2.0 * (cond.nll - free.nll)
    q = np.where(free.values[:, ip] > mu, 0.0, np.maximum(q, 0.0))
    return np.where(free.converged & cond.converged, q, np.nan)


def q0(model: HistFactoryModel, data: np.ndarray, aux: np.ndarray | None) -> np.ndarray:
    """Discovery statistic q0 = 2 (NLL(0) - NLL(mu-hat)) for mu-hat >= 0, else 0, per row."""
    lim = _limit_model(model, 1.0)
    ip = lim.poi_index
    counts = np.atleast_2d(np.asarray(data, dtype=np.float64))
    free = fit_batch(lim, counts, aux)
    cond = fit_batch(lim, counts, aux, fixed={ip: 0.0})
    q = np.maximum(2.0 * (cond.nll - free.nll), 0.0)
    return np.where(free.converged & cond.converged, q, np.nan)


@dataclass(frozen=True)
class ToyCLs:
    """Counts of one CLs test at ``mu``: toys of each hypothesis, how many have q >= q_obs,
    how many failed (no q; they count in neither numerator). ``a + b`` merges two chunks."""

    mu: float
    q_obs: float
    n_sb: int
    n_sb_above: int
    n_b: int
    n_b_above: int
    n_failed: int = 0

    def __add__(self, other: ToyCLs) -> ToyCLs:
        if (other.mu, other.q_obs) != (self.mu, self.q_obs):
            raise ValueError("ToyCLs of different tests cannot be merged")
        return ToyCLs(
            self.mu,
            self.q_obs,
            self.n_sb + other.n_sb,
            self.n_sb_above + other.n_sb_above,
            self.n_b + other.n_b,
            self.n_b_above + other.n_b_above,
            self.n_failed + other.n_failed,
        )

    @property
    def p_sb(self) -> float:
        """P(q >= q_obs | mu)."""
        return self.n_sb_above / self.n_sb

    @property
    def one_minus_pb(self) -> float:
        """P(q >= q_obs | 0) = 1 - p_b."""
        return self.n_b_above / self.n_b

    @property
    def cls(self) -> float:
        """CLs = p_{s+b} / (1 - p_b) (inf when no background-only toy reaches q_obs)."""
        return self.p_sb / self.one_minus_pb if self.n_b_above else math.inf

    @property
    def cls_error(self) -> float:
        """Binomial error of CLs (the two toy samples are independent)."""
        if not self.n_b_above or not self.n_sb_above:
            return math.inf
        a, b = self.p_sb, self.one_minus_pb
        rel2 = (1 - a) / (a * self.n_sb) + (1 - b) / (b * self.n_b)
        return self.cls * math.sqrt(rel2)


def _throw(
    model: HistFactoryModel, pars: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Main counts and auxiliary data of one toy at parameters ``pars`` (aux around the
    fitted values of the constrained parameters)."""
    centre = pars[model.constrained]
    aux = centre + model.constraint_sigma * rng.standard_normal(centre.size)
    lam = np.clip(model.expected(pars), 0.0, None)
    return rng.poisson(lam).astype(np.float64), aux


def toy_cls(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None,
    mu: float,
    *,
    seed: int,
    start: int = 0,
    count: int = 1000,
) -> ToyCLs:
    """Toy-based CLs at ``mu`` from toys ``start .. start+count-1`` of each hypothesis.

    Example: see tests/unit/test_hypotest.py (the exact Poisson construction).
    """
    lim = _limit_model(model, mu)
    aux_obs = lim.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    obs = np.asarray(data, dtype=np.float64)[None, :]
    q_obs = float(qtilde(model, obs, aux_obs[None, :], mu)[0])
    out = []
    for hyp, mu_h in (("sb", mu), ("b", 0.0)):
        counts, thrown_aux = hypothesis_toys(
            model, obs[0], aux_obs, hyp, mu_h, seed=seed, start=start, count=count, bound=mu
        )
        q = qtilde(model, counts, thrown_aux, mu)
        out.append(_count_above(q, q_obs))
    (n_sb, a_sb, f_sb), (n_b, a_b, f_b) = out
    return ToyCLs(float(mu), q_obs, n_sb, a_sb, n_b, a_b, f_sb + f_b)


def _count_above(q: np.ndarray, q_obs: float) -> tuple[int, int, int]:
    """(toys with a statistic, how many have q >= q_obs, how many failed)."""
    ok = np.isfinite(q)
    # q >= q_obs up to the fits' precision (discrete data: ties are real)
    return int(ok.sum()), int(np.count_nonzero(q[ok] >= q_obs - 1e-7)), int((~ok).sum())


def hypothesis_toys(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray,
    hypothesis: str,
    mu: float,
    *,
    seed: int,
    start: int,
    count: int,
    bound: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Toys ``start .. start+count-1`` of one hypothesis (``"sb"`` or ``"b"``): main counts and
    auxiliary data thrown at the conditional fit of the observed data at ``mu``. The random
    numbers depend on (seed, hypothesis, index) only, so the background-only toys of the CLs
    test and of the discovery test (:func:`toy_p0`) are the same toys."""
    lim = _limit_model(model, bound)
    obs = np.asarray(data, dtype=np.float64)[None, :]
    pars = fit_batch(
        lim, obs, np.asarray(aux, dtype=np.float64)[None, :], fixed={lim.poi_index: mu}
    )
    thrown = [
        _throw(lim, pars.values[0], np.random.default_rng([int(seed), _HYPOTHESES[hypothesis], i]))
        for i in range(start, start + count)
    ]
    return np.array([t[0] for t in thrown]), np.array([t[1] for t in thrown])


@dataclass(frozen=True)
class ToyP0:
    """Counts of the toy-based discovery test: background-only toys, how many have
    q0 >= q0_obs, how many failed. ``a + b`` merges two chunks."""

    q0_obs: float
    n_b: int
    n_above: int
    n_failed: int = 0

    def __add__(self, other: ToyP0) -> ToyP0:
        if other.q0_obs != self.q0_obs:
            raise ValueError("ToyP0 of different observed q0 cannot be merged")
        return ToyP0(
            self.q0_obs,
            self.n_b + other.n_b,
            self.n_above + other.n_above,
            self.n_failed + other.n_failed,
        )

    @property
    def p0(self) -> float:
        """P(q0 >= q0_obs | mu = 0); 0 when no toy reaches q0_obs (see :attr:`p0_upper`)."""
        return self.n_above / self.n_b

    @property
    def p0_error(self) -> float:
        """Binomial error of p0."""
        p = self.p0
        return math.sqrt(max(p * (1 - p), 0.0) / self.n_b)

    @property
    def p0_upper(self) -> float:
        """One-sided 95 % upper limit on p0 (Clopper-Pearson; 3/n when no toy is above)."""
        from scipy.stats import beta

        if self.n_above >= self.n_b:
            return 1.0
        return float(beta.ppf(0.95, self.n_above + 1, self.n_b - self.n_above))


def toy_p0(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None,
    *,
    seed: int,
    start: int = 0,
    count: int = 1000,
) -> ToyP0:
    """Toy-based discovery p-value: q0 of background-only toys ``start .. start+count-1``
    (the same toys as :func:`toy_cls`'s background-only ones) against q0 of the data.

    Example (one Poisson bin, b = 3, n = 8: q0 = 2 (8 ln(8/3) - 5) = 5.69; exact
    P(N >= 8 | 3) = 0.0119):
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [5.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [3.0], "modifiers": []}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> r = toy_p0(HistFactoryModel(spec), np.array([8.0]), None, seed=1, count=4000)
        >>> round(r.q0_obs, 2), abs(r.p0 - 0.0119) < 3 * r.p0_error
        (5.69, True)
    """
    aux_obs = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    obs = np.asarray(data, dtype=np.float64)
    q0_obs = float(q0(model, obs[None, :], aux_obs[None, :])[0])
    counts, thrown_aux = hypothesis_toys(
        model, obs, aux_obs, "b", 0.0, seed=seed, start=start, count=count
    )
    n_ok, above, failed = _count_above(q0(model, counts, thrown_aux), q0_obs)
    return ToyP0(q0_obs, n_ok, above, failed)


__all__ = ["ToyCLs", "ToyP0", "hypothesis_toys", "q0", "qtilde", "toy_cls", "toy_p0"]
