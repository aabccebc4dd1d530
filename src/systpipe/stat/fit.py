"""The profile-likelihood fit of a workspace: result, uncertainty breakdown, impacts, pulls, JSON."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataContractError
from .binning import fisher_uncertainty
from .fit_batched import conditional_fitter, frozen_interval, impact_fits
from .intervals import poi_interval
from .likelihood import HistFactoryModel
from .limits import discovery_significance, infinite_z0_bins, upper_limit_or_nan
from .minimize import (
    TIGHT_TOLERANCE,
    Minimum,
    conditional_starts,
    histosys_starts,
    minimize,
    minimize_multistart,
)

log = logging.getLogger(__name__)

#: An interval edge this close to a POI bound is "at the bound".
AT_BOUND = 1e-6
#: Relative difference of the Hesse sigma of mu from its reference (Fisher on Asimov data,
#: MINOS half-width otherwise) above which the fit warns.
HESSE_TOLERANCE = 0.10

Sides = tuple[bool, bool]


@dataclass
class FitResult:
    """Everything the profile-likelihood fit reports.

    Intervals are offsets from ``mu_hat``: ``dmu_down``/``dmu_up`` are positive. ``breakdown``
    maps "total", "stat", "syst" (sqrt(total^2 - stat^2), MC statistics included),
    "mc_stat" and every systematic group to {"down", "up", "sym"}; a group's numbers are
    sqrt(total^2 - frozen^2) with the group's parameters frozen at their best-fit values
    (Combine/TRExFitter method; correlations make the groups' squares not add up to syst^2).

    Measured precision (docs/statistics.md, "Fit precision and robustness"): interval edges
    to 3e-9 of an independent profile scan (MINOS refined by secant steps; pyhf 0.7.6's MINOS
    is up to 6e-5 off, so agreement with pyhf is 1e-4, not 1e-6); mu-hat to 6e-7 of pyhf at
    tolerance 1e-6; a signal-only norm systematic's impact to 3e-8 of 1/(1 +/- delta) - 1;
    ``dmu_hesse`` (sqrt(C_mumu), the Hessian of the analytic gradient) to 1e-9 of the Fisher
    width on Asimov data; breakdown groups to ~1e-5 relative.

    ``interval_at_bound`` ("lower", "upper", "both" or None) flags an interval edge still at
    a POI bound after widening the bounds ``poi_bounds`` (the bounds used) three times; the
    edge is then the bound, and breakdown entries on that side are NaN. ``z0_*`` are +inf
    when data fall in a bin without any background (see ``notes``). ``diagnostics`` lists
    {severity, check, message, ...} for failed fits, MINOS failures, bound-limited intervals,
    invalid or multi-valley impact refits and a Hesse error off its reference by > 10 %.
    The ``impacts`` table has ``n_minima`` (most distinct minima over the entry's 4 refits)
    and ``valid`` (all 4 refits valid).
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
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    interval_at_bound: str | None = None
    poi_bounds: tuple[float, float] = (math.nan, math.nan)

    @property
    def dmu(self) -> float:
        """Symmetrised total uncertainty (dmu_down + dmu_up) / 2."""
        return 0.5 * (self.dmu_down + self.dmu_up)


class _Run:
    """Settings and bookkeeping shared by the steps of one fit."""

    def __init__(
        self, model: HistFactoryModel, data: np.ndarray, aux: np.ndarray, strategy: int, tol: float
    ) -> None:
        self.model, self.data, self.aux = model, data, aux
        self.strategy, self.tol = strategy, tol
        self.notes: list[str] = []
        self.diagnostics: list[dict[str, Any]] = []
        self.n_fits = 0

    def diag(self, severity: str, check: str, message: str, **details: Any) -> None:
        self.diagnostics.append(
            {"severity": severity, "check": check, "message": message, **details}
        )

    def fit(
        self, *, init: np.ndarray | None = None, fixed: Mapping[int, float] | None = None
    ) -> Minimum:
        """Fit with HESSE and MINOS; an invalid minimum is retried at strategy 2 from where it
        stopped, then (for a given ``init``) from the model's initial values."""

        def attempt(x0: np.ndarray | None, strat: int) -> Minimum:
            self.n_fits += 1
            return minimize(
                self.model, self.data, self.aux, init=x0, fixed=fixed, minos=True,
                strategy=strat, tolerance=self.tol,
            )  # fmt: skip

        m = attempt(init, self.strategy)
        for x0 in [m.values] + ([None] if init is not None else []):
            if m.valid:
                break
            retry = attempt(x0, 2)
            log.debug("fit invalid (%s); retry: %s", m.message, retry.message or "valid")
            if retry.valid or retry.nll < m.nll:
                m = retry
        if m.precision_note:
            self.diag("info", "fit_edm_above_goal", m.precision_note,
                      fixed=sorted(int(i) for i in (fixed or {})))  # fmt: skip
        return m

    def interval(self, m: Minimum, fixed: Mapping[int, float]) -> tuple[float, float, Sides]:
        """(down, up) offsets of the POI interval at the minimum ``m``, and whether each edge is
        at the POI bound (:func:`~.intervals.poi_interval`)."""
        dn, up, at, n = poi_interval(
            self.model, self.data, self.aux, m, fixed=fixed, strategy=self.strategy,
            tolerance=self.tol, at_bound=AT_BOUND,
            # the conditional fits by the batched fitter (iminuit where Newton fails), on the
            # current model: _total_interval widens its POI bounds
            conditional=conditional_fitter(self.model, self.data, self.aux),
        )  # fmt: skip
        self.n_fits += n
        return dn, up, at


def _free_fit(run: _Run) -> Minimum:
    """The main fit, from the lowest of the multi-start minima (the initial values, and each
    histosys alpha at +/-0.5: a shape systematic can give the NLL two valleys)."""
    model = run.model
    starts = histosys_starts(model, [model.init])
    init = None
    if len(starts) > 1:
        scout = minimize_multistart(
            model, run.data, run.aux, starts=starts, strategy=run.strategy, tolerance=run.tol
        )
        run.n_fits += scout.n_fits
        init = scout.values
        if scout.n_minima > 1:
            moved = _start_name(model, starts, scout.start)
            run.diag("warning", "fit_multiple_minima", f"the free fit has {scout.n_minima} "
                     f"minima; the lowest (from {moved}) is used", n_minima=scout.n_minima)  # fmt: skip
    return run.fit(init=init)


def _start_name(model: HistFactoryModel, starts: Sequence[np.ndarray], k: int) -> str:
    moved = [f"{model.names[i]} = {starts[k][i]:g}" for i in np.flatnonzero(starts[k] != starts[0])]
    return ", ".join(moved) or "the initial values"


def _side_name(at: Sides) -> str | None:
    return {(True, True): "both", (True, False): "lower", (False, True): "upper"}.get(at)


def _total_interval(
    run: _Run, best: Minimum, widen: int
) -> tuple[Minimum, tuple[float, float], Sides]:
    """The free fit's interval; an edge at a POI bound doubles that bound's distance from
    mu-hat and refits, up to ``widen`` times. Updates ``run.model`` to the widened bounds."""
    ip = run.model.poi_index
    original = tuple(float(x) for x in run.model.bounds[ip])
    if best.valid and not best.minos_valid:
        run.diag("warning", "minos_failed", f"MINOS failed on the POI ({best.minos_message}); "
                 "interval from profile-likelihood root finding")  # fmt: skip
        run.notes.append("MINOS failed on the POI; interval from profile-likelihood root finding")
    dn, up, at = run.interval(best, {})
    for _ in range(widen):
        if not any(at):
            break
        mu, sigma = float(best.values[ip]), max(float(best.errors[ip]), 1e-3)
        lo_b, hi_b = (float(x) for x in run.model.bounds[ip])
        model = copy.copy(run.model)
        model.bounds = run.model.bounds.copy()
        # a mu-hat at the bound itself has no distance to double: one Hesse sigma instead
        if at[0]:
            model.bounds[ip, 0] = mu - 2.0 * (mu - lo_b if mu - lo_b > AT_BOUND else sigma)
        if at[1]:
            model.bounds[ip, 1] = mu + 2.0 * (hi_b - mu if hi_b - mu > AT_BOUND else sigma)
        run.model = model
        best = run.fit(init=best.values)
        dn, up, at = run.interval(best, {})
    now = tuple(float(x) for x in run.model.bounds[ip])
    if now != original:
        run.notes.append(
            f"POI bounds widened from [{original[0]:g}, {original[1]:g}] to "
            f"[{now[0]:g}, {now[1]:g}]: the interval reached the bound"
        )
    side = _side_name(at)
    if side:
        run.diag("error", "interval_at_bound", f"the {run.model.names[ip]} interval reaches the "
                 f"POI bound ({side}) even after widening the bounds to [{now[0]:g}, {now[1]:g}]; "
                 "the breakdown entries on that side are NaN", bound=side)  # fmt: skip
    return best, (dn, up), at


def fit_workspace(
    spec: Mapping[str, Any],
    *,
    poi: str = "mu",
    breakdown: bool = True,
    impacts: bool = True,
    limits: bool = True,
    strategy: int = 1,
    tolerance: float = TIGHT_TOLERANCE,
    widen_bounds: int = 3,
) -> FitResult:
    """Profile-likelihood fit of a workspace with the fast NLL: iminuit for the free fits, the
    batched Newton fitter (iminuit where it fails) for the repeated conditional fits.

    Steps: free fit (MIGRAD, HESSE, MINOS on the POI; an invalid fit is retried at strategy 2,
    then from the nominal parameters); an interval edge at a POI bound widens that bound and
    refits (``widen_bounds`` times); stat-only interval (all nuisance parameters frozen at best
    fit); per-group breakdown (each systematic's alpha, and the MC statistics gammas as group
    "mc_stat", frozen in turn, subtracted in quadrature); impacts (NP fixed at best fit +/-
    prefit and +/- postfit sigma, multi-start refit, delta mu); pulls; correlation matrix; the
    Hesse sigma of mu checked against the Fisher information (Asimov data) or the MINOS
    half-width; Z0 on the data and on the Asimov mu = 1 data (with and without systematics);
    asymptotic CLs upper limit at 95 % CL (pyhf's recipe on the fast model).

    Args:
        spec: pyhf workspace (e.g. from :func:`systpipe.stat.workspace.build_workspace`).
        poi: signal-strength parameter.
        breakdown: compute the per-group breakdown.
        impacts: compute impacts (4 multi-start fits per nuisance parameter).
        limits: compute the CLs upper limit.
        strategy: Minuit strategy of the fits (0 gives the same impacts here, ~25 % faster).
        tolerance: Minuit tolerance of the fits (default :data:`~.minimize.TIGHT_TOLERANCE`).
        widen_bounds: how often a POI bound reached by the interval is widened.
    """
    started = time.perf_counter()
    model = HistFactoryModel(spec, poi=poi)
    data = model.observed
    if not np.all(np.isfinite(data)):
        raise DataContractError("workspace observations are missing for some channel")
    aux = model.aux_nominal
    ip = model.poi_index
    run = _Run(model, data, aux, strategy, tolerance)
    best, (tot_dn, tot_up), tot_at = _total_interval(run, _free_fit(run), widen_bounds)
    if not best.valid:
        run.notes.append("main fit did not converge (Minuit invalid minimum)")
        run.diag("error", "fit_failed", f"the main fit did not converge (after retries at "
                 f"strategy 2): {best.message}; no interval")  # fmt: skip
        log.warning("main fit invalid: mu_hat=%.4g (%s)", best.values[ip], best.message)
    nps = [
        i
        for i in range(model.n_pars)
        if i != ip and not model.fixed[i] and i not in model.normfactor_index
    ]
    table, (stat_dn, stat_up) = _breakdown(
        run, best, nps, (tot_dn, tot_up, tot_at), groups=breakdown
    )
    # without impacts the loop runs over no parameter: the empty table with its columns
    impact_df = _impacts(run, best, nps if impacts else [])
    _hesse_check(run, best, (tot_dn, tot_up, tot_at))
    pulls = _pulls(run.model, best, nps)
    corr, corr_names = _correlation(run.model, best)
    z_obs, z_exp, z_exp_stat = _significance(run, model, best)
    cls_obs, cls_exp = math.nan, [math.nan] * 5
    if limits and model.bounds[ip, 0] <= 0:
        cls_obs, cls_exp = upper_limit_or_nan(model, data, aux, 0.5 * (tot_dn + tot_up), run.notes)
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
        n_fits=run.n_fits,
        elapsed_s=time.perf_counter() - started,
        notes=run.notes,
        diagnostics=run.diagnostics,
        interval_at_bound=_side_name(tot_at),
        poi_bounds=(float(run.model.bounds[ip, 0]), float(run.model.bounds[ip, 1])),
    )
    log.info(
        "fit: mu = %.4f -%.4f +%.4f (stat -%.4f +%.4f), Z0 exp %.2f, %d fits in %.2f s",
        result.mu_hat,
        tot_dn,
        tot_up,
        stat_dn,
        stat_up,
        z_exp,
        run.n_fits,
        result.elapsed_s,
    )
    return result


def _frozen_interval(
    run: _Run, best: Minimum, indices: Sequence[int], label: str
) -> tuple[float, float, Sides]:
    """(down, up) POI interval with the parameters ``indices`` frozen at their best-fit values,
    and whether each edge is at the POI bound; NaN (and a diagnostic) if the fit fails."""
    # the batched fitter first (exact Newton, iminuit inside it where Newton fails)
    fast = frozen_interval(run.model, run.data, run.aux, best, indices)
    if fast is not None:
        run.n_fits += 1
        return fast
    frozen = {int(i): float(best.values[i]) for i in indices}
    m = run.fit(init=best.values, fixed=frozen)
    if not m.valid:
        run.diag("warning", "breakdown_fit_failed", f"breakdown {label}: the fit with the group "
                 f"frozen did not converge ({m.message}); its entries are NaN", group=label)  # fmt: skip
        return math.nan, math.nan, (False, False)
    if not m.minos_valid:
        run.diag("info", "minos_failed", f"breakdown {label}: MINOS failed ({m.minos_message}); "
                 "interval from root finding", group=label)  # fmt: skip
    return run.interval(m, frozen)


def _quad_diff(total: float, frozen: float) -> float:
    return math.sqrt(max(total * total - frozen * frozen, 0.0))


def _breakdown(
    run: _Run,
    best: Minimum,
    nps: Sequence[int],
    total: tuple[float, float, Sides],
    *,
    groups: bool,
) -> tuple[dict[str, dict[str, float]], tuple[float, float]]:
    """The breakdown table (total, stat, syst and, with ``groups``, every group of ``model.groups``).

    A side whose interval (total or frozen) ends at a POI bound is NaN, never 0.

    Returns:
        (table, the stat-only (down, up) interval).
    """
    tot_dn, tot_up, tot_at = total
    if nps:
        stat_dn, stat_up, stat_at = _frozen_interval(run, best, nps, "stat")
    else:
        stat_dn, stat_up, stat_at = tot_dn, tot_up, tot_at
    table: dict[str, dict[str, float]] = {}
    nan_entries: list[str] = []

    def put(name: str, dn: float, up: float, at: Sides) -> None:
        dn, up = (math.nan if a else v for v, a in zip((dn, up), at, strict=True))
        if any(at):
            nan_entries.append(name)
        table[name] = {"down": dn, "up": up, "sym": 0.5 * (dn + up)}

    def either(a: Sides, b: Sides) -> Sides:
        return (a[0] or b[0], a[1] or b[1])

    put("total", tot_dn, tot_up, tot_at)
    put("stat", stat_dn, stat_up, stat_at)
    put("syst", _quad_diff(tot_dn, stat_dn), _quad_diff(tot_up, stat_up), either(tot_at, stat_at))
    if groups:
        for group, idx in run.model.groups.items():
            f_dn, f_up, f_at = _frozen_interval(run, best, idx, group)
            put(group, _quad_diff(tot_dn, f_dn), _quad_diff(tot_up, f_up), either(tot_at, f_at))
    if nan_entries:
        run.notes.append(
            "breakdown entries derived from an interval edge at the POI bound are NaN: "
            + ", ".join(nan_entries)
        )
    return table, (stat_dn, stat_up)


def _impacts(run: _Run, best: Minimum, nps: Sequence[int]) -> pd.DataFrame:
    """Impact table of the parameters ``nps``, largest post-fit impact first.

    Each parameter is fixed at best fit +/- its prefit and +/- its postfit sigma (clipped to
    its bounds) and the POI refitted from every start of :func:`~.minimize.conditional_starts`
    (lowest valid NLL wins); the columns hold mu_hat(fixed) - mu_hat, ``n_minima`` the most
    distinct minima of the 4 refits, ``valid`` whether all 4 are valid.
    """
    model, rows, ip = run.model, [], run.model.poi_index
    invalid: list[str] = []
    several: list[str] = []
    moved = 0

    labels = ("pre_up", "pre_down", "post_up", "post_down")
    for i in nps:
        entry: dict[str, Any] = {"parameter": model.names[i], "group": _group_of(model, i)}
        values = [
            float(np.clip(best.values[i] + sign * sigma, *model.bounds[i]))
            for sigma in (model.prefit_sigma[i], best.errors[i])
            for sign in (+1, -1)
        ]
        # all starts of the 4 values in one batched fit; iminuit only where it fails
        fast = impact_fits(model, run.data, run.aux, best, i, values)
        run.n_fits += 1
        n_min, ok = fast.n_minima, fast.valid
        moved += fast.moved
        for label, val, shift in zip(labels, values, fast.shifts, strict=True):
            if math.isfinite(shift):
                entry[label] = shift
                continue
            fixed = {i: val}
            m = minimize_multistart(
                model, run.data, run.aux, starts=conditional_starts(model, best, fixed),
                fixed=fixed, strategy=run.strategy, tolerance=run.tol, steps=best.errors,
            )  # fmt: skip
            run.n_fits += m.n_fits
            entry[label] = float(m.values[ip] - best.values[ip])
            n_min, moved = max(n_min, m.n_minima), moved + (m.start != 0)
            ok = bool(m.valid)
            if not m.valid:
                invalid.append(f"{model.names[i]} {label} ({m.message})")
        entry.update(n_minima=n_min, valid=ok)
        if n_min > 1:
            several.append(model.names[i])
        rows.append(entry)
    if invalid:
        run.diag("warning", "impact_fit_invalid", f"{len(invalid)} impact refits stayed invalid "
                 "after retries: " + "; ".join(invalid), n_invalid=len(invalid))  # fmt: skip
    if several:
        run.diag("info", "impact_multiple_minima", "impact refits found several minima (lowest "
                 f"NLL kept; {moved} refits ended away from the linear-prediction start) for: "
                 + ", ".join(several), parameters=several, n_moved=moved)  # fmt: skip
    columns = ["parameter", "group", "pre_up", "pre_down", "post_up", "post_down"]
    impact_df = pd.DataFrame(rows, columns=[*columns, "n_minima", "valid"])
    if not impact_df.empty:
        impact_df["rank"] = np.maximum(np.abs(impact_df[["post_up", "post_down"]]).max(axis=1), 0.0)
        impact_df = impact_df.sort_values(
            ["rank", "parameter"], ascending=[False, True], ignore_index=True
        )
    return impact_df


def _hesse_check(run: _Run, best: Minimum, total: tuple[float, float, Sides]) -> None:
    """Warn when the Hesse sigma of mu differs by more than :data:`HESSE_TOLERANCE` from the
    exact Fisher width at the best fit (Asimov data: a numerical failure of HESSE) or from the
    MINOS half-width (the NLL is not parabolic)."""
    model, ip = run.model, run.model.poi_index
    hesse = float(best.errors[ip])
    if best.covariance is None or not math.isfinite(hesse) or hesse <= 0:
        return
    refs = []
    if model.is_asimov(best.values, run.data, run.aux):
        refs.append(("hesse_vs_fisher", fisher_uncertainty(model, pars=best.values)[0],
                     "the exact Fisher width on these Asimov data", "HESSE is inaccurate"))  # fmt: skip
    if not any(total[2]):
        refs.append(("hesse_not_parabolic", 0.5 * (total[0] + total[1]), "the MINOS half-width",
                     "the NLL is not parabolic"))  # fmt: skip
    for check, ref, what, why in refs:
        if math.isfinite(ref) and ref > 0 and abs(hesse / ref - 1.0) > HESSE_TOLERANCE:
            run.diag("warning", check, f"the Hesse error of {model.names[ip]} ({hesse:.4g}) differs "
                     f"by {100 * (hesse / ref - 1):+.0f} % from {what} ({ref:.4g}): {why}; Hesse "
                     "errors, correlations and post-fit impacts are approximate",
                     hesse=hesse, reference=ref)  # fmt: skip


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
    run: _Run, original: HistFactoryModel, best: Minimum
) -> tuple[float, float, float]:
    """(Z0 observed, Z0 expected, Z0 expected stat-only); NaN, and a note, if mu > 0 is imposed.

    Observed on the data, expected on the Asimov mu = 1 data; +inf, with a note naming the
    bins, where data fall in a bin without background.
    """
    model = run.model
    if original.bounds[model.poi_index, 0] > 0:
        run.notes.append("POI bounded above zero: no discovery significance")
        return math.nan, math.nan, math.nan
    asimov_data, asimov_aux = model.asimov()
    for what, counts in (("observed", run.data), ("expected", asimov_data)):
        bins = infinite_z0_bins(model, counts)
        if bins.size:
            where = ", ".join(f"{model.bin_label(int(b))} (n = {counts[b]:.4g})" for b in bins)
            run.notes.append(
                f"Z0 {what} = +inf: data in bins without background (no background template "
                f"content, nominal or varied, so the likelihood at mu = 0 is zero): {where}"
            )
    kw: dict[str, Any] = {"tolerance": run.tol, "multistart": True}
    z_obs = discovery_significance(
        model, run.data, run.aux, free_fit=best,
        conditional=conditional_fitter(model, run.data, run.aux), **kw,
    )  # fmt: skip
    asimov_fit = conditional_fitter(model, asimov_data, asimov_aux)
    z_exp = discovery_significance(model, asimov_data, asimov_aux, conditional=asimov_fit, **kw)
    z_exp_stat = discovery_significance(
        model, asimov_data, asimov_aux, stat_only=True, conditional=asimov_fit, **kw
    )
    run.n_fits += 5
    return z_obs, z_exp, z_exp_stat


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
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def fit_result_to_dict(result: FitResult) -> dict[str, Any]:
    """JSON-safe dict of a :class:`FitResult`: NaN becomes null, +/-inf the strings "inf" and
    "-inf" (``float()`` reads them back), so an infinite Z0 stays distinguishable from a missing
    one.

    Example:
        >>> _jsonable({"z0": math.inf, "cls": math.nan, "mu": 1.5})
        {'z0': 'inf', 'cls': None, 'mu': 1.5}
    """
    out = {k: getattr(result, k) for k in result.__dataclass_fields__}
    out["dmu"] = result.dmu
    return _jsonable(out)


__all__ = ["FitResult", "fit_result_to_dict", "fit_workspace"]
