"""Profile-likelihood intervals of the POI with iminuit: MINOS, root finding on q(mu) = level,
the edges at the POI bounds, and the one-toy path of the pseudo-experiments."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..errors import ModelError
from .likelihood import HistFactoryModel
from .minimize import (
    TIGHT_TOLERANCE,
    ConditionalFit,
    Minimum,
    conditional_starts,
    iminuit_conditional,
    minimize,
)


def refine_edge(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None,
    best: Minimum,
    edge: float,
    *,
    fixed: Mapping[int, float] | None = None,
    level: float = 1.0,
    tolerance: float = TIGHT_TOLERANCE,
    max_iter: int = 5,
    conditional: ConditionalFit | None = None,
) -> tuple[float, int]:
    """Refine an interval edge of the POI (e.g. MINOS's, good to ~1e-4) by secant steps on
    r(mu) = sqrt(2 (NLL(mu, profiled) - NLL_min)) = sqrt(level), r nearly linear in mu.

    Each step is a conditional fit (iminuit at strategy 0 and ``tolerance``, or
    ``conditional``) from the linear prediction; the first secant goes through (mu_hat, 0).
    Stops when |r - sqrt(level)| < 1e-8.

    Returns:
        (edge, number of fits); the input edge when a conditional fit is invalid.
    """
    ip = model.poi_index
    fixed = dict(fixed or {})
    mu_hat, target = float(best.values[ip]), math.sqrt(level)
    lo_b, hi_b = (float(v) for v in model.bounds[ip])
    points = [(mu_hat, 0.0)]
    x, n_fits = float(edge), 0
    fit = conditional or iminuit_conditional(
        model, data, aux, strategy=0, tolerance=tolerance, steps=best.errors
    )
    for _ in range(max_iter):
        cond = {**fixed, ip: x}
        m = fit([conditional_starts(model, best, cond, histosys_offsets=())[0]], cond)
        n_fits += 1
        if not m.valid:
            return float(edge), n_fits
        r = math.sqrt(max(2.0 * (m.nll - best.nll), 0.0))
        if abs(r - target) < 1e-8:
            return x, n_fits
        (x0, r0), points = points[-1], [*points, (x, r)]
        if r == r0:
            return float(edge), n_fits
        x = min(max(x + (target - r) * (x - x0) / (r - r0), lo_b), hi_b)
    return x, n_fits


#: Extra starting values of each free shape (histosys) alpha in the toys' free fits: a
#: non-monotonic histosys can give the NLL two valleys.
HISTOSYS_STARTS: tuple[float, ...] = (-1.0, -0.5, 0.5, 1.0)


def toy_profile_interval(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray
) -> tuple[float, float, float]:
    """(mu-hat, lo, hi) of one pseudo-experiment with iminuit: the lowest minimum over the
    nominal start and each histosys alpha at :data:`HISTOSYS_STARTS` (as the batched fitter),
    then MINOS from there; where MINOS reports an invalid edge (confused by the flat
    signal-normalisation direction near mu = 0) the edges come from root finding.

    Raises:
        RuntimeError: no valid minimum.
    """
    m = minimize(model, data, aux, hesse=False, strategy=0)
    for h in model.alpha_index[model.hs_alpha]:
        for offset in HISTOSYS_STARTS:
            init = model.nominal_pars.copy()
            init[h] = offset
            cand = minimize(model, data, aux, init=init, hesse=False, strategy=0)
            if cand.valid and (not m.valid or cand.nll < m.nll - 1e-7):
                m = cand
    if not m.valid:
        raise RuntimeError("invalid minimum (MIGRAD)")
    # the reported fit and MINOS tighter than the scouts (they only pick the valley), then
    # Newton-polished (a tighter MIGRAD stalls: strategy 1 at 1e-6 was measured worse on the
    # control-region workspaces, 2e-3 in mu)
    m = minimize(
        model, data, aux, init=m.values, hesse=False, minos=True, strategy=0, tolerance=1e-5,
        polish=True,
    )  # fmt: skip
    if not m.valid:
        raise RuntimeError("invalid minimum (MIGRAD)")
    # MINOS's edges are good to ~1e-4 only: refined by conditional fits (poi_interval); where
    # MINOS fails, root finding. Conditional NLLs at tolerance 1e-5 are good to ~1e-8, which
    # puts the edges at ~1e-8 sigma (the tight default costs seconds per toy when MINOS fails)
    down, up, _, _ = poi_interval(model, data, aux, m, strategy=0, tolerance=1e-5)
    if not (math.isfinite(down) and math.isfinite(up)):
        raise RuntimeError("no interval (MINOS and root finding failed)")
    mu = float(m.values[model.poi_index])
    return mu, mu - down, mu + up


def poi_interval(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None,
    m: Minimum,
    *,
    fixed: Mapping[int, float] | None = None,
    strategy: int = 1,
    tolerance: float = TIGHT_TOLERANCE,
    at_bound: float = 1e-6,
    conditional: ConditionalFit | None = None,
) -> tuple[float, float, tuple[bool, bool], int]:
    """The POI interval at the minimum ``m`` (with ``fixed`` parameters fixed as in ``m``'s fit).

    MINOS's edges refined by :func:`refine_edge` (MINOS alone is good to ~1e-4), or, when
    MINOS failed, :func:`profile_interval` with ``strategy``/``tolerance`` conditional fits
    (or ``conditional``'s, for both).

    Returns:
        (down, up) offsets (NaN for an invalid ``m``), whether the (lower, upper) edge is
        within ``at_bound`` of the POI bound (or MINOS stopped at it), and the fits run.
    """
    ip = model.poi_index
    mu = float(m.values[ip])
    lo_b, hi_b = (float(x) for x in model.bounds[ip])
    flags, n_fits = (False, False), 0
    if not m.valid:  # no interval without a minimum; the caller records the failure
        return math.nan, math.nan, flags, 0
    if m.minos is not None and m.minos_valid:
        flags = m.minos_at_limit
        edges = [mu + m.minos[0], mu + m.minos[1]]
        for k in (0, 1):
            if not flags[k]:
                edges[k], n = refine_edge(
                    model, data, aux, m, edges[k], fixed=fixed, tolerance=tolerance,
                    conditional=conditional,
                )  # fmt: skip
                n_fits += n
        lo, hi = edges
    else:
        count = {"fits": 0}
        _, lo, hi = profile_interval(
            model, data, aux, best=m, fixed=fixed, xtol=1e-6, strategy=strategy,
            tolerance=tolerance, counter=count, conditional=conditional,
        )  # fmt: skip
        n_fits += count["fits"]
    at = (flags[0] or lo <= lo_b + at_bound, flags[1] or hi >= hi_b - at_bound)
    return mu - lo, hi - mu, at, n_fits


def profile_interval(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    best: Minimum | None = None,
    fixed: Mapping[int, float] | None = None,
    level: float = 1.0,
    xtol: float = 1e-4,
    strategy: int = 0,
    tolerance: float = 1e-3,
    counter: dict[str, int] | None = None,
    conditional: ConditionalFit | None = None,
) -> tuple[float, float, float]:
    """Profile-likelihood interval of the POI by root finding (a MINOS replacement).

    Solves sqrt(2 (NLL(mu, profiled) - NLL_min)) = sqrt(level) on each side with Brent's
    method, every point a warm-started conditional fit (``strategy``, ``tolerance``; or
    ``conditional``).
    sqrt(2 dNLL) is nearly linear in mu, so each side takes a handful of fits; unlike MINOS it
    is not confused by a flat direction at mu = 0 (a signal-normalisation parameter). An edge
    beyond the POI bounds is returned as the bound. ``counter["fits"]`` (if given) is
    incremented by the number of minimisations.

    Returns:
        (mu_hat, lower edge, upper edge).
    """
    from scipy.optimize import brentq

    count = counter if counter is not None else {}
    count.setdefault("fits", 0)

    ip = model.poi_index
    fixed = dict(fixed or {})
    best = best or minimize(
        model, data, aux, fixed=fixed, hesse=False, strategy=strategy, tolerance=tolerance
    )
    if not best.valid:
        raise ModelError(f"profile_interval: the free fit did not converge ({best.message})")
    mu_hat = float(best.values[ip])
    sigma = float(best.errors[ip]) if best.errors[ip] > 0 else 1.0
    target = math.sqrt(level)
    starts: list[tuple[float, np.ndarray]] = [(mu_hat, best.values)]
    fit = conditional or iminuit_conditional(
        model, data, aux, strategy=strategy, tolerance=tolerance
    )

    def g(mu: float) -> float:
        init = min(starts, key=lambda t: abs(t[0] - mu))[1]
        m = fit([init], {**fixed, ip: mu})
        count["fits"] += 1
        starts.append((mu, m.values))
        return math.sqrt(max(2.0 * (m.nll - best.nll), 0.0)) - target

    edges = []
    for side in (-1.0, 1.0):
        bound = float(model.bounds[ip, 0 if side < 0 else 1])
        inner, step = mu_hat, 1.2 * sigma * target
        outer = mu_hat + side * step
        g_out = None
        for _ in range(40):
            if (outer - bound) * side >= 0:
                outer = bound
                g_out = g(outer)
                break
            g_out = g(outer)
            if g_out > 0:
                break
            inner, step = outer, 2.0 * step
            outer = mu_hat + side * (abs(outer - mu_hat) + step)
        if g_out is None or g_out <= 0:
            edges.append(bound)
            continue
        a, b = sorted((inner, outer))
        edges.append(float(brentq(g, a, b, xtol=xtol * sigma, rtol=1e-10)))
    return mu_hat, edges[0], edges[1]


__all__ = [
    "HISTOSYS_STARTS",
    "poi_interval",
    "profile_interval",
    "refine_edge",
    "toy_profile_interval",
]
