"""Asymptotic discovery significance and CLs upper limit (qtilde) on the fast model."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..errors import ModelError
from .likelihood import HistFactoryModel
from .minimize import ConditionalFit, Minimum, conditional_starts, minimize, minimize_multistart

log = logging.getLogger(__name__)


def _z_from_q0(q0: float) -> float:
    return math.sqrt(max(q0, 0.0))


def discovery_significance(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    stat_only: bool = False,
    free_fit: Minimum | None = None,
    tolerance: float = 1e-3,
    multistart: bool = False,
    conditional: ConditionalFit | None = None,
) -> float:
    """Asymptotic discovery significance Z0 = sqrt(q0), q0 = 2 (NLL(mu=0, profiled) - NLL_min).

    ``stat_only`` fixes every nuisance parameter at its nominal value. q0 = 0 when mu_hat < 0.
    ``tolerance`` is Minuit's; ``multistart`` takes the lowest of the conditional fits from
    :func:`~.minimize.conditional_starts` (a shape systematic can have two valleys at mu = 0).
    ``conditional`` (a fitter of these ``data``) runs the mu = 0 fits instead of iminuit.
    Z0 = +inf when data fall in a bin without background (:func:`infinite_z0_bins`): the
    likelihood at mu = 0 is exactly zero there, whatever the nuisance parameters.
    """
    poi = model.poi_index
    if model.bounds[poi, 0] > 0:
        raise ModelError(f"POI lower bound {model.bounds[poi, 0]} > 0: cannot test mu = 0")
    if infinite_z0_bins(model, data).size:
        return math.inf
    fixed_np = (
        {int(i): float(model.nominal_pars[i]) for i in range(model.n_pars) if i != poi}
        if stat_only
        else {}
    )
    free = (
        free_fit
        if (free_fit is not None and not stat_only)
        else minimize(model, data, aux, fixed=fixed_np, hesse=multistart, tolerance=tolerance)
    )
    if free.values[poi] <= 0:
        return 0.0
    fixed = {**fixed_np, poi: 0.0}
    if conditional is not None:
        starts = conditional_starts(model, free, fixed) if multistart else [free.values]
        cond = conditional(starts, fixed)
    elif multistart:
        starts = conditional_starts(model, free, fixed)
        cond = minimize_multistart(
            model, data, aux, starts=starts, fixed=fixed, tolerance=tolerance
        )
    else:
        cond = minimize(
            model, data, aux, fixed=fixed, hesse=False, init=free.values, tolerance=tolerance
        )
    return _z_from_q0(2.0 * (cond.nll - free.nll))


def infinite_z0_bins(model: HistFactoryModel, data: np.ndarray) -> np.ndarray:
    """Bins with data > 0 and no background at any nuisance-parameter value (q0 = +inf).

    The NLL clips the expectation at 1e-10, so a fit would give a large finite q0 instead
    (Z0 ~ 80 for a few events).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [2.0, 4.0],
        ...      "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [5.0, 0.0], "modifiers": []}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> model = HistFactoryModel(spec)
        >>> infinite_z0_bins(model, np.array([7.0, 4.0])).tolist(), discovery_significance(
        ...     model, np.array([7.0, 4.0]))
        ([1], inf)
    """
    free_bins = model.background_free_bins()
    return free_bins[np.asarray(data, dtype=np.float64)[free_bins] > 0]


def cls_upper_limit(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    level: float = 0.05,
    guess: float = 1.0,
    rtol: float = 1e-4,
) -> tuple[float, list[float]]:
    """Asymptotic CLs upper limit with the qtilde test statistic, pyhf's recipe on the fast model.

    As ``pyhf.infer.hypotest(calctype="asymptotics", test_stat="qtilde")``: the POI is
    bounded at zero; the background-only Asimov data (main and auxiliary) are the model at
    the mu = 0 conditional fit to the data; in the -mu_hat/sigma space the statistic is
    t = sqrt(q) - sqrt(qA) (or (q - qA) / (2 sqrt(qA)) beyond), CLs+b = Phi(-(t + sqrt(qA))),
    CLb = Phi(-t); the expected band n (t = n, n = 2..-2) gives CLs = Phi(-(n + sqrt(qA)))/Phi(-n).

    Returns:
        Observed limit and expected limits ordered [-2, -1, 0, +1, +2] sigma (ascending).
    """
    from scipy.optimize import brentq
    from scipy.special import ndtr, ndtri

    aux = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    ip = model.poi_index
    if model.bounds[ip, 0] > 0:
        raise ModelError("POI lower bound must be <= 0 for the upper limit")
    lim_model = _with_bounds(model, ip, (0.0, max(model.bounds[ip, 1], 100.0 * guess)))
    free = minimize(lim_model, data, aux, hesse=False, strategy=0)
    bkg = minimize(lim_model, data, aux, fixed={ip: 0.0}, hesse=False, strategy=0)
    a_data = lim_model.expected(bkg.values)
    a_aux = bkg.values[lim_model.constrained].copy()
    a_nll = lim_model.nll(bkg.values, a_data, a_aux)
    mu_hat = float(free.values[ip])
    cache: dict[float, tuple[float, float]] = {}
    start = {"data": free.values, "asimov": bkg.values}

    def q_values(mu: float) -> tuple[float, float]:
        if mu not in cache:
            cd = minimize(
                lim_model, data, aux, fixed={ip: mu}, init=start["data"], hesse=False, strategy=0
            )
            ca = minimize(
                lim_model,
                a_data,
                a_aux,
                fixed={ip: mu},
                init=start["asimov"],
                hesse=False,
                strategy=0,
            )
            q = 0.0 if mu_hat > mu else max(2.0 * (cd.nll - free.nll), 0.0)
            cache[mu] = (q, max(2.0 * (ca.nll - a_nll), 0.0))
        return cache[mu]

    def cls_obs(mu: float) -> float:
        q, qa = q_values(mu)
        sq, sqa = math.sqrt(q), math.sqrt(qa)
        if sqa <= 0:
            return 1.0
        t = sq - sqa if sq <= sqa else (q - qa) / (2.0 * sqa)
        return float(ndtr(-(t + sqa)) / ndtr(-t))

    def root(func: Any) -> float:
        lo, hi = 1e-3 * guess, 3.0 * guess
        while func(lo) < 0 and lo > 1e-9:
            lo /= 2.0
        n_expand = 0
        while func(hi) > 0:
            hi *= 2.0
            n_expand += 1
            if n_expand > 30:
                raise ModelError("CLs upper limit: no crossing found")
        return float(brentq(func, lo, hi, rtol=rtol, xtol=1e-12 * guess))

    obs = root(lambda mu: cls_obs(mu) - level)
    expected = []
    for n in (2.0, 1.0, 0.0, -1.0, -2.0):
        target = -n - float(ndtri(level * ndtr(-n)))  # sqrt(qA) at which the band crosses level
        expected.append(root(lambda mu, target=target: target - math.sqrt(q_values(mu)[1])))
    return obs, expected


def upper_limit_or_nan(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray, dmu: float, notes: list[str]
) -> tuple[float, list[float]]:
    """CLs upper limit (observed, expected band) with guess ``dmu``; NaN and a note if it fails."""
    if not math.isfinite(dmu):
        dmu = 1.0
    try:
        return cls_upper_limit(model, data, aux, guess=max(dmu, 1e-3))
    except Exception as exc:  # noqa: BLE001 - a limit failure must not lose the fit
        notes.append(f"CLs upper limit failed: {type(exc).__name__}: {exc}")
        log.warning("CLs upper limit failed: %s", exc)
    return math.nan, [math.nan] * 5


def _with_bounds(
    model: HistFactoryModel, index: int, bounds: tuple[float, float]
) -> HistFactoryModel:
    import copy

    out = copy.copy(model)
    out.bounds = model.bounds.copy()
    out.bounds[index] = bounds
    return out


__all__ = ["cls_upper_limit", "discovery_significance", "infinite_z0_bins", "upper_limit_or_nan"]
