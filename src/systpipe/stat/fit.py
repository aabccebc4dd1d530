"""The profile-likelihood fit of a workspace: result, uncertainty breakdown, impacts, pulls, JSON."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataContractError
from .likelihood import HistFactoryModel
from .limits import cls_upper_limit, discovery_significance
from .minimize import Minimum, minimize, profile_interval

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """Everything the profile-likelihood fit reports.

    Intervals are offsets from ``mu_hat``: ``dmu_down``/``dmu_up`` are positive. ``breakdown``
    maps "total", "stat", "syst" (sqrt(total^2 - stat^2), MC statistics included),
    "mc_stat" and every systematic group to {"down", "up", "sym"}; a group's numbers are
    sqrt(total^2 - frozen^2) with the group's parameters frozen at their best-fit values
    (Combine/TRExFitter method; correlations make the groups' squares not add up to syst^2).
    """

    poi: str
    mu_hat: float
    dmu_down: float
    dmu_up: float
    dmu_hesse: float
    minos_valid: bool
    breakdown: dict[str, dict[str, float]]
    parameters: list[str]
    values: np.ndarray
    errors: np.ndarray
    prefit_sigma: np.ndarray
    groups: dict[str, list[str]]
    impacts: pd.DataFrame
    pulls: pd.DataFrame
    correlation: np.ndarray
    correlation_names: list[str]
    z0_expected: float
    z0_expected_stat_only: float
    z0_observed: float
    cls_observed: float
    cls_expected: list[float]
    nll_min: float
    valid: bool
    n_fits: int
    elapsed_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def dmu(self) -> float:
        """Symmetrised total uncertainty (dmu_down + dmu_up) / 2."""
        return 0.5 * (self.dmu_down + self.dmu_up)


def _interval(
    m: Minimum,
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray,
    fixed: Mapping[int, float],
) -> tuple[float, float]:
    """(down, up) offsets: MINOS, or the root-finding profile interval when MINOS is invalid."""
    if m.minos is not None and m.minos_valid:
        return -m.minos[0], m.minos[1]
    mu, lo, hi = profile_interval(model, data, aux, best=m, fixed=fixed)
    return mu - lo, hi - mu


def _quad_diff(total: float, frozen: float) -> float:
    return math.sqrt(max(total * total - frozen * frozen, 0.0))


def fit_workspace(
    spec: Mapping[str, Any],
    *,
    poi: str = "mu",
    breakdown: bool = True,
    impacts: bool = True,
    limits: bool = True,
    strategy: int = 1,
) -> FitResult:
    """Profile-likelihood fit of a workspace with the fast NLL and iminuit.

    Steps: free fit (MIGRAD, HESSE, MINOS on the POI); stat-only interval (all nuisance
    parameters frozen at best fit); per-group breakdown (each systematic's alpha, and the MC
    statistics gammas as group "mc_stat", frozen in turn, subtracted in quadrature);
    impacts (NP fixed at best fit +/- prefit and +/- postfit sigma, refit, delta mu); pulls;
    correlation matrix; Z0 on the data and on the Asimov mu = 1 data (with and without
    systematics); asymptotic CLs upper limit at 95 % CL (pyhf's recipe on the fast model).

    Args:
        spec: pyhf workspace (e.g. from :func:`systpipe.stat.workspace.build_workspace`).
        poi: signal-strength parameter.
        breakdown: compute the per-group breakdown.
        impacts: compute impacts (4 fits per nuisance parameter).
        limits: compute the CLs upper limit.
        strategy: Minuit strategy of the main fit.
    """
    started = time.perf_counter()
    model = HistFactoryModel(spec, poi=poi)
    data = model.observed
    if not np.all(np.isfinite(data)):
        raise DataContractError("workspace observations are missing for some channel")
    aux = model.aux_nominal
    ip = model.poi_index
    n_fits = 1
    best = minimize(model, data, aux, minos=True, strategy=strategy)
    notes: list[str] = []
    if not best.valid:
        notes.append("main fit did not converge (Minuit invalid minimum)")
        log.warning("main fit invalid: mu_hat=%.4g", best.values[ip])
    if not best.minos_valid:
        notes.append("MINOS failed on the POI; interval from profile-likelihood root finding")
    tot_dn, tot_up = _interval(best, model, data, aux, {})
    nps = [
        i
        for i in range(model.n_pars)
        if i != ip and not model.fixed[i] and i not in model.normfactor_index
    ]
    table, (stat_dn, stat_up), n = _breakdown(
        model, best, data, aux, nps, (tot_dn, tot_up), groups=breakdown
    )
    n_fits += n
    # without impacts the loop runs over no parameter: the empty table with its columns
    impact_df, n = _impacts(model, best, data, aux, nps if impacts else [])
    n_fits += n
    pulls = _pulls(model, best, nps)
    corr, corr_names = _correlation(model, best)
    z_obs, z_exp, z_exp_stat, n = _significance(model, best, data, aux, notes)
    n_fits += n
    cls_obs, cls_exp = math.nan, [math.nan] * 5
    if limits and model.bounds[ip, 0] <= 0:
        cls_obs, cls_exp = _upper_limit(model, data, aux, 0.5 * (tot_dn + tot_up), notes)
    result = FitResult(
        poi=poi,
        mu_hat=float(best.values[ip]),
        dmu_down=tot_dn,
        dmu_up=tot_up,
        dmu_hesse=float(best.errors[ip]),
        minos_valid=best.minos_valid,
        breakdown=table,
        parameters=list(model.names),
        values=best.values,
        errors=best.errors,
        prefit_sigma=model.prefit_sigma,
        groups={g: [model.names[i] for i in idx] for g, idx in model.groups.items()},
        impacts=impact_df,
        pulls=pulls,
        correlation=corr,
        correlation_names=corr_names,
        z0_expected=z_exp,
        z0_expected_stat_only=z_exp_stat,
        z0_observed=z_obs,
        cls_observed=cls_obs,
        cls_expected=cls_exp,
        nll_min=best.nll,
        valid=best.valid,
        n_fits=n_fits,
        elapsed_s=time.perf_counter() - started,
        notes=notes,
    )
    log.info(
        "fit: mu = %.4f -%.4f +%.4f (stat -%.4f +%.4f), Z0 exp %.2f, %d fits in %.2f s",
        result.mu_hat,
        tot_dn,
        tot_up,
        stat_dn,
        stat_up,
        z_exp,
        n_fits,
        result.elapsed_s,
    )
    return result


def _frozen_interval(
    model: HistFactoryModel,
    best: Minimum,
    data: np.ndarray,
    aux: np.ndarray,
    indices: Sequence[int],
) -> tuple[float, float]:
    """(down, up) POI interval with the parameters ``indices`` frozen at their best-fit values."""
    frozen = {int(i): float(best.values[i]) for i in indices}
    m = minimize(model, data, aux, init=best.values, fixed=frozen, minos=True, hesse=True)
    return _interval(m, model, data, aux, frozen)


def _breakdown(
    model: HistFactoryModel,
    best: Minimum,
    data: np.ndarray,
    aux: np.ndarray,
    nps: Sequence[int],
    total: tuple[float, float],
    *,
    groups: bool,
) -> tuple[dict[str, dict[str, float]], tuple[float, float], int]:
    """The breakdown table (total, stat, syst and, with ``groups``, every group of ``model.groups``).

    Returns:
        (table, the stat-only (down, up) interval, number of fits run).
    """
    tot_dn, tot_up = total
    n_fits = 0
    if nps:
        n_fits += 1
        stat_dn, stat_up = _frozen_interval(model, best, data, aux, nps)
    else:
        stat_dn, stat_up = tot_dn, tot_up
    table: dict[str, dict[str, float]] = {}

    def put(name: str, dn: float, up: float) -> None:
        table[name] = {"down": dn, "up": up, "sym": 0.5 * (dn + up)}

    put("total", tot_dn, tot_up)
    put("stat", stat_dn, stat_up)
    put("syst", _quad_diff(tot_dn, stat_dn), _quad_diff(tot_up, stat_up))
    if groups:
        for group, idx in model.groups.items():
            n_fits += 1
            f_dn, f_up = _frozen_interval(model, best, data, aux, idx)
            put(group, _quad_diff(tot_dn, f_dn), _quad_diff(tot_up, f_up))
    return table, (stat_dn, stat_up), n_fits


def _impacts(
    model: HistFactoryModel, best: Minimum, data: np.ndarray, aux: np.ndarray, nps: Sequence[int]
) -> tuple[pd.DataFrame, int]:
    """Impact table of the parameters ``nps``, largest post-fit impact first, and the number of fits.

    Each parameter is fixed at best fit +/- its prefit and +/- its postfit sigma (clipped to
    its bounds) and the POI refitted; the columns hold mu_hat(fixed) - mu_hat.
    """
    n_fits = 0
    rows = []
    ip = model.poi_index
    for i in nps:
        entry: dict[str, Any] = {"parameter": model.names[i], "group": _group_of(model, i)}
        for kind, sigma in (("pre", model.prefit_sigma[i]), ("post", best.errors[i])):
            for sign, label in ((+1, "up"), (-1, "down")):
                val = float(np.clip(best.values[i] + sign * sigma, *model.bounds[i]))
                m = minimize(
                    model,
                    data,
                    aux,
                    init=_conditional_start(best, model, i, val),
                    fixed={i: val},
                    hesse=False,
                    strategy=0,
                    steps=best.errors,
                )
                n_fits += 1
                entry[f"{kind}_{label}"] = float(m.values[ip] - best.values[ip])
        rows.append(entry)
    impact_df = pd.DataFrame(
        rows, columns=["parameter", "group", "pre_up", "pre_down", "post_up", "post_down"]
    )
    if not impact_df.empty:
        impact_df["rank"] = np.maximum(np.abs(impact_df[["post_up", "post_down"]]).max(axis=1), 0.0)
        impact_df = impact_df.sort_values(
            ["rank", "parameter"], ascending=[False, True], ignore_index=True
        )
    return impact_df, n_fits


def _pulls(model: HistFactoryModel, best: Minimum, nps: Sequence[int]) -> pd.DataFrame:
    """Pull (theta_hat - theta_0) / sigma_prefit and constraint sigma_postfit / sigma_prefit of ``nps``."""
    return pd.DataFrame(
        {
            "parameter": [model.names[i] for i in nps],
            "group": [_group_of(model, i) for i in nps],
            "value": [float(best.values[i]) for i in nps],
            "pull": [
                float((best.values[i] - model.nominal_pars[i]) / model.prefit_sigma[i]) for i in nps
            ],
            "constraint": [float(best.errors[i] / model.prefit_sigma[i]) for i in nps],
        }
    )


def _correlation(model: HistFactoryModel, best: Minimum) -> tuple[np.ndarray, list[str]]:
    """Correlation matrix of the free parameters from the Hesse covariance (NaN without one), and their names."""
    free_idx = [i for i in range(model.n_pars) if not model.fixed[i]]
    if best.covariance is not None:
        cov = best.covariance[np.ix_(free_idx, free_idx)]
        sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
        corr = cov / np.outer(sd, sd)
    else:
        corr = np.full((len(free_idx), len(free_idx)), np.nan)
    return corr, [model.names[i] for i in free_idx]


def _significance(
    model: HistFactoryModel, best: Minimum, data: np.ndarray, aux: np.ndarray, notes: list[str]
) -> tuple[float, float, float, int]:
    """(Z0 observed, Z0 expected, Z0 expected stat-only, number of fits); NaN, and a note, if mu > 0 is imposed.

    Observed on the data, expected on the Asimov mu = 1 data.
    """
    ip = model.poi_index
    z_obs = z_exp = z_exp_stat = math.nan
    if model.bounds[ip, 0] <= 0:
        z_obs = discovery_significance(model, data, aux, free_fit=best)
        asimov_data, asimov_aux = model.asimov()
        z_exp = discovery_significance(model, asimov_data, asimov_aux)
        z_exp_stat = discovery_significance(model, asimov_data, asimov_aux, stat_only=True)
        return z_obs, z_exp, z_exp_stat, 5
    notes.append("POI bounded above zero: no discovery significance")
    return z_obs, z_exp, z_exp_stat, 0


def _upper_limit(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray, dmu: float, notes: list[str]
) -> tuple[float, list[float]]:
    """CLs upper limit (observed, expected band) with guess ``dmu``; NaN and a note if it fails."""
    try:
        return cls_upper_limit(model, data, aux, guess=max(dmu, 1e-3))
    except Exception as exc:  # noqa: BLE001 - a limit failure must not lose the fit
        notes.append(f"CLs upper limit failed: {type(exc).__name__}: {exc}")
        log.warning("CLs upper limit failed: %s", exc)
    return math.nan, [math.nan] * 5


def _conditional_start(best: Minimum, model: HistFactoryModel, i: int, value: float) -> np.ndarray:
    """Linear prediction of the conditional minimum with parameter i at ``value``.

    From the Hesse covariance: theta_j = theta_hat_j + C_ji / C_ii (value - theta_hat_i). Starting
    there cuts the refit of a strongly correlated parameter (an MC-stat gamma) ~10x.
    """
    start = best.values.copy()
    cov = best.covariance
    if cov is not None and cov[i, i] > 0:
        start = start + cov[:, i] / cov[i, i] * (value - best.values[i])
    start[i] = value
    return np.clip(start, model.bounds[:, 0], model.bounds[:, 1])


def _group_of(model: HistFactoryModel, i: int) -> str:
    for g, idx in model.groups.items():
        if i in idx:
            return g
    return ""


def _jsonable(x: Any) -> Any:
    if isinstance(x, pd.DataFrame):
        return [_jsonable(r) for r in x.to_dict(orient="records")]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def fit_result_to_dict(result: FitResult) -> dict[str, Any]:
    """JSON-safe dict of a :class:`FitResult` (NaN/inf become null)."""
    out = {k: getattr(result, k) for k in result.__dataclass_fields__}
    out["dmu"] = result.dmu
    return _jsonable(out)


__all__ = ["FitResult", "fit_result_to_dict", "fit_workspace"]
