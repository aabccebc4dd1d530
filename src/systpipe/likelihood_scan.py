"""Profile-likelihood scan -2 Delta ln L(mu) of a workspace, with all nuisance parameters
profiled (total) and with them fixed at their best-fit values (statistical only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import ModelError
from .stat.batched import fit_batch
from .stat.likelihood import HistFactoryModel
from .stat.minimize import minimize

#: Minuit tolerance of the conditional fits (the curve is drawn, not quoted to 1e-6).
SCAN_TOLERANCE = 1e-4


def profile_scan(
    spec: Mapping[str, Any],
    *,
    mu_hat: float,
    dmu_down: float,
    dmu_up: float,
    poi: str | None = None,
    n_points: int = 41,
    span: float = 2.6,
) -> pd.DataFrame:
    """-2 Delta ln L at ``n_points`` values of mu over mu_hat -/+ ``span`` times the interval.

    Columns ``mu``, ``total`` (nuisance parameters profiled: batched conditional fits
    started at the free fit's values; NaN where a fit fails and on the rows of the statistical curve's own finer grid)
    and ``stat`` (every nuisance parameter fixed at its best-fit value, on every row). Both
    are relative to the free fit's minimum (so total >= 0 up to fit precision).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [100.0], "modifiers": [
        ...         {"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [100.0], "modifiers": []}]}],
        ...     "observations": [{"name": "SR", "data": [200.0]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> df = profile_scan(spec, mu_hat=1.0, dmu_down=0.14, dmu_up=0.14, n_points=3)
        >>> total = df.dropna(subset=["total"])
        >>> [round(float(x), 3) for x in total["mu"]], round(float(total["total"].iloc[1]), 6)
        ([0.636, 1.0, 1.364], 0.0)
        >>> # no systematics: the stat grid spans mu_hat -/+ 2.6 sigma too; Poisson, so the
        >>> # curve at -2.6 sigma is above 2.6^2 = 6.76
        >>> round(float(df["mu"].iloc[0]), 3), round(float(df["stat"].iloc[0]), 2)
        (0.632, 7.72)
    """
    if n_points < 3:
        raise ModelError(f"profile_scan: need at least 3 points, got {n_points}")
    model = HistFactoryModel(spec, poi=poi)
    data, aux = model.observed, model.aux_nominal
    ip = model.poi_index
    best = minimize(model, data, aux, hesse=False, tolerance=SCAN_TOLERANCE)
    if not best.valid:
        raise ModelError(f"profile_scan: the free fit did not converge ({best.message})")
    lo = mu_hat - span * max(dmu_down, 1e-6)
    hi = mu_hat + span * max(dmu_up, 1e-6)
    lo, hi = max(lo, float(model.bounds[ip, 0])), min(hi, float(model.bounds[ip, 1]))
    mus = np.linspace(lo, hi, n_points)
    # every conditional fit at once (batched Newton from the free fit's values, iminuit for
    # the points it cannot solve): one call instead of n_points MIGRAD fits
    cond = fit_batch(
        model,
        np.broadcast_to(data, (n_points, data.size)),
        np.broadcast_to(aux, (n_points, aux.size)),
        init=best.values,
        fixed={ip: mus},
    )
    total = np.where(cond.converged, 2.0 * (cond.nll - best.nll), np.nan)

    def stat_curve(values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values))
        for i, mu in enumerate(values):
            pars = best.values.copy()
            pars[ip] = mu
            out[i] = 2.0 * (model.nll(pars, data, aux) - best.nll)
        return out

    # the statistical-only curve is much narrower: its own grid over mu_hat -/+ span sigma_stat
    # (sigma_stat from the curvature at the minimum; no fits needed, only NLL evaluations)
    m0 = float(best.values[ip])
    h = 1e-3 * max(dmu_down, dmu_up, 1e-6)
    curv = float(np.sum(stat_curve(np.array([m0 - h, m0 + h]))) - 2 * stat_curve(np.array([m0]))[0])
    sigma_stat = float(np.sqrt(2.0 / curv)) * h if curv > 0 else max(dmu_down, dmu_up)
    fine = np.linspace(m0 - span * sigma_stat, m0 + span * sigma_stat, n_points)
    grid = pd.DataFrame({"mu": mus, "total": total})
    stat_rows = pd.DataFrame({"mu": fine, "stat": stat_curve(fine)})
    df = pd.concat([grid, stat_rows], ignore_index=True).sort_values("mu", kind="stable")
    df = df.reset_index(drop=True)
    df["stat"] = df["stat"].astype(float)
    df.loc[df["stat"].isna(), "stat"] = stat_curve(df.loc[df["stat"].isna(), "mu"].to_numpy())
    return df[["mu", "total", "stat"]]


def crossings(mu: np.ndarray, curve: np.ndarray, level: float) -> tuple[float, float]:
    """(lower, upper) mu where ``curve`` crosses ``level`` by linear interpolation (NaN when
    the scan does not reach it on that side).

    Example:
        >>> mu = np.linspace(-2, 2, 41)
        >>> [round(x, 3) for x in crossings(mu, mu**2, 1.0)]
        [-1.0, 1.0]
    """
    mu, curve = np.asarray(mu, float), np.asarray(curve, float)
    ok = np.isfinite(curve)
    mu, curve = mu[ok], curve[ok]
    if mu.size < 2:
        return float("nan"), float("nan")
    k = int(np.argmin(curve))
    out = []
    for side in (slice(None, k + 1), slice(k, None)):
        m, c = mu[side], curve[side]
        idx = np.flatnonzero(np.diff(np.sign(c - level)) != 0)
        if idx.size == 0:
            out.append(float("nan"))
            continue
        j = int(idx[-1] if side.start is None else idx[0])
        out.append(float(np.interp(level, [c[j], c[j + 1]], [m[j], m[j + 1]], period=None))
                   if c[j] < c[j + 1] else
                   float(np.interp(level, [c[j + 1], c[j]], [m[j + 1], m[j]])))  # fmt: skip
    return out[0], out[1]


__all__ = ["SCAN_TOLERANCE", "crossings", "profile_scan"]
