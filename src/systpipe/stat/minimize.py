"""Minimisation of the fast likelihood with iminuit, multi-start conditional fits, and the
root-finding profile-likelihood interval."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ModelError
from .likelihood import HistFactoryModel

log = logging.getLogger(__name__)

#: Minuit tolerance of the fits whose numbers are reported (EDM goal 0.002 x tol x errordef =
#: 1e-10): mu-hat and the impacts to ~1e-8 (docs/statistics.md, "Fit precision and robustness").
TIGHT_TOLERANCE = 1e-7
#: A MIGRAD minimum above the tight EDM goal but below this (within sqrt(2 EDM) ~ 1.4e-3
#: standard deviations of the minimum) is kept when HESSE succeeds: on ill-conditioned
#: problems (control bins with 10^6 events next to 10-event signal bins) MIGRAD stalls there.
EDM_ACCEPT = 1e-6
#: Newton steps of a ``polish`` fit (:func:`minimize`).
POLISH_STEPS = 3
#: Two fits found the same minimum if their NLLs agree to this and no free parameter differs by
#: more than half its step (post-fit error).
SAME_NLL = 1e-6


@dataclass
class Minimum:
    """One minimisation: best-fit values, Hesse errors/covariance, optional MINOS on the POI.

    ``errors`` are sqrt(C_ii) of the Hesse covariance C for the free parameters (Minuit's
    step sizes without HESSE, and for fixed parameters).

    ``message`` says why the minimum is invalid ("" when valid); ``minos_message`` why MINOS
    failed; ``minos_at_limit`` whether the (lower, upper) MINOS edge sits at the POI bound.
    A multi-start fit (:func:`minimize_multistart`) sets ``n_minima`` (distinct minima found),
    ``n_fits`` (minimisations run) and ``start`` (index of the winning start).
    ``precision_note`` says when MIGRAD stopped above its EDM goal but below
    :data:`EDM_ACCEPT` and the minimum was kept (its HESSE covariance positive definite).
    """

    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray | None
    nll: float
    valid: bool
    nfcn: int
    minos: tuple[float, float] | None = None
    minos_valid: bool = False
    minos_at_limit: tuple[bool, bool] = (False, False)
    message: str = ""
    minos_message: str = ""
    n_minima: int = 1
    n_fits: int = 1
    start: int = 0
    precision_note: str = ""


#: A conditional fit of one dataset: the lowest valid minimum over ``starts`` with the
#: parameters ``fixed`` (index -> value) held. The intervals and the discovery significance take
#: one in place of their one-at-a-time iminuit fits (:func:`~.fit_batched.conditional_fitter`).
ConditionalFit = Callable[[Sequence[np.ndarray], Mapping[int, float]], Minimum]


def _invalid_reason(fmin: Any) -> str:
    """Why Minuit's function minimum is invalid, from its flags ("" if valid)."""
    if fmin is None or fmin.is_valid:
        return ""
    reasons = [
        text
        for flag, text in (
            (fmin.has_reached_call_limit, "call limit reached"),
            (fmin.is_above_max_edm, f"EDM {fmin.edm:.3g} above the goal {fmin.edm_goal:.3g}"),
            (fmin.hesse_failed, "HESSE failed"),
            (not fmin.has_valid_parameters, "invalid parameters"),
            (not fmin.has_posdef_covar, "covariance not positive definite"),
        )
        if flag
    ]
    return "; ".join(reasons) or "invalid minimum"


def _minos_reason(me: Any) -> str:
    reasons = []
    for side in ("lower", "upper"):
        if not getattr(me, f"{side}_valid"):
            why = [
                text
                for attr, text in (
                    (f"at_{side}_max_fcn", "call limit"),
                    (f"{side}_new_min", "new minimum found"),
                    (f"at_{side}_limit", "parameter limit"),
                )
                if getattr(me, attr)
            ]
            reasons.append(f"{side} edge invalid" + (f" ({', '.join(why)})" if why else ""))
    return "; ".join(reasons)


def _stalled_near_minimum(fmin: Any) -> bool:
    """MIGRAD's only failure is an EDM above the goal, and the EDM is below EDM_ACCEPT."""
    return bool(
        fmin is not None
        and fmin.is_above_max_edm
        and fmin.edm < EDM_ACCEPT
        and not fmin.has_reached_call_limit
    )


def _initial_steps(
    model: HistFactoryModel, x0: np.ndarray, data: np.ndarray, steps: np.ndarray | None
) -> np.ndarray:
    """MIGRAD's initial steps: ``steps`` (default the prefit sigma, 0.1 for normfactors), or
    the curvature scale 1 / sqrt(I_ii) at the start where that is smaller, with I the Fisher
    information (sum_b (d lambda_b / d theta_i)^2 / lambda_b plus the constraint). A gamma of a
    control bin with 10^6 events has a prefit sigma of 0.02 and a curvature scale of 6e-4;
    started with the former, MIGRAD stalls above its EDM goal on the ill-conditioned problem."""
    base = (
        np.where(np.isfinite(model.prefit_sigma), model.prefit_sigma, 0.1)
        if steps is None
        else np.asarray(steps, dtype=np.float64)
    )
    free = np.flatnonzero(~model.fixed)
    try:
        lam = np.maximum(model.expected(x0), 1e-300)
        jac = model.jacobian(x0, free.tolist())
    except Exception:  # noqa: BLE001 - the steps are only a starting point
        return base
    info = np.zeros(model.n_pars)
    info[free] = np.einsum("ib,b->i", jac**2, 1.0 / lam)
    info[model.constrained] += 1.0 / model.constraint_sigma**2
    scale = np.where(info > 0, 1.0 / np.sqrt(np.where(info > 0, info, 1.0)), np.inf)
    return np.where(np.isfinite(base) & (base > 0), np.minimum(base, scale), base)


def minimize(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    init: np.ndarray | None = None,
    fixed: Mapping[int, float] | None = None,
    hesse: bool = True,
    minos: bool = False,
    strategy: int = 1,
    tolerance: float = 1e-3,
    steps: np.ndarray | None = None,
    polish: bool = False,
) -> Minimum:
    """Minimise the NLL with iminuit (MIGRAD, analytic gradient); optional HESSE and MINOS on the POI.

    Args:
        model: the fast model.
        data: main-measurement counts per bin.
        aux: auxiliary data (default nominal).
        init: starting values (default the model's inits).
        fixed: parameter index -> fixed value, on top of the model's fixed parameters.
        hesse: run HESSE for errors and covariance.
        minos: run MINOS on the POI; ``minos`` holds (lower, upper) as negative/positive offsets.
        strategy: Minuit strategy (0 fast, 1 default, 2 careful).
        tolerance: Minuit tolerance (EDM goal 0.002 x tolerance x errordef). The default 1e-3 is
            tighter than Minuit's 0.1: profile likelihoods with a signal-normalisation
            systematic are flat enough that 0.1 stops 1e-3 away in mu (1 % in the MINOS
            interval). It still leaves ~2e-4 in mu-hat; the reported fits use
            :data:`TIGHT_TOLERANCE`.
        steps: initial step sizes (default the prefit sigmas, 0.1 for normfactors); post-fit
            errors make refits near a known minimum much cheaper. Where the curvature scale at
            the start is smaller, it is used instead (:func:`_initial_steps`).
        polish: without HESSE, still take up to :data:`POLISH_STEPS` Newton steps with the
            Hessian from the analytic gradient (:func:`_gradient_covariance`, MIGRAD's
            covariance as the fallback): a tolerance-1e-5 fit's mu-hat goes from ~2e-4 to
            ~1e-5 for the cost of 2 x n_par gradients, where a tighter MIGRAD often stalls.
    """
    from iminuit import Minuit

    data = np.asarray(data, dtype=np.float64)
    aux = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    x0 = np.array(model.init if init is None else init, dtype=np.float64)
    fix = model.fixed.copy()
    for i, v in (fixed or {}).items():
        fix[i] = True
        x0[i] = v
    x0 = np.clip(x0, model.bounds[:, 0], model.bounds[:, 1])

    const = model.data_constant(data)

    def fcn(p: np.ndarray) -> float:
        return model.nll_and_grad(p, data, aux, grad=False, constant=const)[0]

    def grad(p: np.ndarray) -> np.ndarray | None:  # never None: grad=True
        return model.nll_and_grad(p, data, aux, constant=const)[1]

    ip = model.poi_index
    with warnings.catch_warnings():
        # iminuit warns (IMinuitWarning) on non-converged HESSE/MINOS; that is reported via
        # the validity flags and messages instead.
        warnings.simplefilter("ignore")
        m = Minuit(fcn, x0, grad=grad, name=model.names)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = [tuple(b) for b in model.bounds]
        m.fixed = fix.tolist()
        m.strategy = strategy
        m.tol = tolerance
        m.print_level = 0
        steps = _initial_steps(model, x0, data, steps)
        m.errors = np.where(np.asarray(steps) > 0, steps, 0.1).tolist()
        m.migrad()
        valid = bool(m.valid)
        message = _invalid_reason(m.fmin)
        precision_note = ""
        if not valid and _stalled_near_minimum(m.fmin):
            m.hesse()
            if m.fmin.has_covariance and m.fmin.has_posdef_covar and not m.fmin.hesse_failed:
                precision_note = (
                    f"MIGRAD stopped at EDM {m.fmin.edm:.2g} above its goal "
                    f"{m.fmin.edm_goal:.2g} (kept: below {EDM_ACCEPT:g}, HESSE positive definite)"
                )
                valid, message = True, ""
        cov = None
        if hesse and valid:
            m.hesse()
            if not precision_note:
                valid = bool(m.valid)
                message = _invalid_reason(m.fmin)
            cov = np.array(m.covariance) if m.covariance is not None else None
        minos_res = None
        minos_valid = False
        at_limit = (False, False)
        minos_message = ""
        if minos and valid and not fix[ip]:
            try:
                m.minos(model.names[ip])
                me = m.merrors[model.names[ip]]
                minos_res = (float(me.lower), float(me.upper))
                minos_valid = bool(me.is_valid)
                at_limit = (bool(me.at_lower_limit), bool(me.at_upper_limit))
                minos_message = _minos_reason(me)
            except RuntimeError as exc:
                log.debug("MINOS failed: %s", exc)
                minos_message = f"MINOS error: {exc}"
        elif minos and not valid:
            minos_message = "not run: the minimum is invalid"
    values, nll = np.array(m.values), float(m.fval)
    curv, n_steps = None, 0
    if cov is not None:
        cov = curv = _gradient_covariance(model, grad, values, fix, cov)
        n_steps = 1
    elif polish and valid and m.covariance is not None:
        curv = _gradient_covariance(model, grad, values, fix, np.array(m.covariance))
        n_steps = POLISH_STEPS
    for _ in range(n_steps):
        assert curv is not None
        new, new_nll = _newton_step(model, fcn, grad, values, nll, curv, fix)
        if new is values:  # the step was refused (bounds, or the NLL went up)
            break
        values, nll = new, new_nll
    if curv is not None and minos_res is not None:  # MINOS's offsets are from Minuit's value
        shift = float(m.values[ip] - values[ip])
        minos_res = (minos_res[0] + shift, minos_res[1] + shift)
    errors = np.array(m.errors)
    if cov is not None:
        # iminuit's errors of a bounded parameter go through the bound transformation and can
        # be 40 % off sqrt(C_ii) near a bound; the covariance is the curvature itself
        diag = np.diag(cov)
        errors = np.where(~fix & (diag > 0), np.sqrt(np.clip(diag, 0.0, None)), errors)
    return Minimum(
        values=values,
        errors=errors,
        covariance=cov,
        nll=nll,
        valid=valid,
        nfcn=int(m.nfcn),
        minos=minos_res,
        minos_valid=minos_valid,
        minos_at_limit=at_limit,
        message=message,
        minos_message=minos_message,
        precision_note=precision_note,
    )


def _gradient_covariance(
    model: HistFactoryModel, grad: Any, values: np.ndarray, fix: np.ndarray, fallback: np.ndarray
) -> np.ndarray:
    """Covariance from the Hessian by central differences of the analytic gradient (relative
    step 1e-5, good to ~1e-8; Minuit's HESSE differentiates the NLL twice numerically and is
    good to ~1e-4). ``fallback`` (Minuit's) when a step leaves the bounds or the Hessian is not
    positive definite."""
    free = np.flatnonzero(~fix)
    steps = 1e-5 * np.maximum(1.0, np.abs(values[free]))
    lo, hi = model.bounds[free, 0], model.bounds[free, 1]
    if free.size == 0 or np.any(values[free] - steps < lo) or np.any(values[free] + steps > hi):
        return fallback
    hess = np.empty((free.size, free.size))
    for k, (i, h) in enumerate(zip(free, steps, strict=True)):
        up, dn = values.copy(), values.copy()
        up[i] += h
        dn[i] -= h
        hess[k] = (grad(up)[free] - grad(dn)[free]) / (2.0 * h)
    hess = 0.5 * (hess + hess.T)
    try:
        chol = np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return fallback
    inv = np.linalg.inv(chol)
    cov = np.zeros_like(fallback)
    cov[np.ix_(free, free)] = inv.T @ inv
    return cov


def _newton_step(
    model: HistFactoryModel,
    fcn: Any,
    grad: Any,
    values: np.ndarray,
    nll: float,
    cov: np.ndarray,
    fix: np.ndarray,
) -> tuple[np.ndarray, float]:
    """One Newton step theta - C g with the analytic gradient on the free parameters: MIGRAD
    stops at EDM ~1e-10, where mu-hat can still be ~1e-6 off; the step (kept only if it lowers
    the NLL and stays inside the bounds) takes it to ~1e-9."""
    free = np.flatnonzero(~fix)
    step = np.zeros_like(values)
    step[free] = -cov[np.ix_(free, free)] @ grad(values)[free]
    new = values + step
    if np.any(new < model.bounds[:, 0]) or np.any(new > model.bounds[:, 1]):
        return values, nll
    new_nll = float(fcn(new))
    return (new, new_nll) if new_nll <= nll else (values, nll)


def conditional_starts(
    model: HistFactoryModel,
    best: Minimum,
    fixed: Mapping[int, float],
    *,
    histosys_offsets: Sequence[float] = (-0.5, 0.5),
) -> list[np.ndarray]:
    """Starting points of a conditional fit with the parameters ``fixed`` at the given values.

    In order: the linear prediction of the conditional minimum from the Hesse covariance C,
    theta_free = theta_hat_free + C_fF C_FF^-1 (v - theta_hat_F) (without covariance: the best
    fit), the best fit with the fixed values, then for every free histosys alpha the linear
    prediction with that alpha at each of ``histosys_offsets``. Starts within 0.05 post-fit
    sigma of an earlier one in every parameter are dropped.
    Starting at the linear prediction cuts the refit of a strongly correlated parameter (an
    MC-stat gamma) ~10x; the histosys starts find a second valley of a shape systematic.
    """
    idx = np.array(sorted(fixed), dtype=np.int64)
    vals = np.array([fixed[int(i)] for i in idx], dtype=np.float64)
    lo, hi = model.bounds[:, 0], model.bounds[:, 1]
    plain = best.values.copy()
    plain[idx] = vals
    linear = plain.copy()
    cov = best.covariance
    if cov is not None and idx.size:
        block = cov[np.ix_(idx, idx)]
        if np.all(np.diag(block) > 0):
            try:
                shift = cov[:, idx] @ np.linalg.solve(block, vals - best.values[idx])
                linear = best.values + shift
                linear[idx] = vals
            except np.linalg.LinAlgError:
                pass
    starts = [np.clip(linear, lo, hi), np.clip(plain, lo, hi)]
    # starts closer than 0.05 post-fit sigma in every parameter end in the same minimum
    scale = np.where(np.isfinite(best.errors) & (best.errors > 0), best.errors, 0.0)
    return histosys_starts(
        model, starts, fixed=fixed, offsets=histosys_offsets, atol=0.05 * scale + 1e-9
    )


def histosys_starts(
    model: HistFactoryModel,
    starts: Sequence[np.ndarray],
    *,
    fixed: Mapping[int, float] | Sequence[int] = (),
    offsets: Sequence[float] = (-0.5, 0.5),
    atol: float | np.ndarray = 1e-9,
) -> list[np.ndarray]:
    """``starts`` followed by the first start with each free histosys alpha (not in ``fixed``)
    at each of ``offsets``, within the bounds and without duplicates (a start within ``atol``,
    per parameter, of an earlier one).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [2.0, 4.0],
        ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, {"name": "d",
        ...     "type": "histosys", "data": {"hi_data": [3.0, 4.0], "lo_data": [1.0, 4.0]}}]}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> m = HistFactoryModel(spec)
        >>> [s.tolist() for s in histosys_starts(m, [m.init])]
        [[1.0, 0.0], [1.0, -0.5], [1.0, 0.5]]
    """
    lo, hi = model.bounds[:, 0], model.bounds[:, 1]
    out: list[np.ndarray] = []
    candidates = [np.clip(np.asarray(s, dtype=np.float64), lo, hi) for s in starts]
    for h in model.alpha_index[model.hs_alpha]:
        if int(h) in fixed or model.fixed[h] or not candidates:
            continue
        for off in offsets:
            s = candidates[0].copy()
            s[h] = off
            candidates.append(np.clip(s, lo, hi))
    for s in candidates:
        if not any(np.all(np.abs(s - o) <= atol) for o in out):
            out.append(s)
    return out


def _same_minimum(a: Minimum, b: Minimum, scale: np.ndarray) -> bool:
    return abs(a.nll - b.nll) <= SAME_NLL and bool(
        np.all(np.abs(a.values - b.values) <= 0.5 * scale)
    )


def iminuit_conditional(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    strategy: int = 0,
    tolerance: float = 1e-3,
    steps: np.ndarray | None = None,
) -> ConditionalFit:
    """The iminuit conditional fit as a :data:`ConditionalFit` (the default of the interval
    functions): :func:`minimize` from each start (no HESSE), the lowest valid minimum wins (the
    lowest NLL when none is valid)."""

    def fit(starts: Sequence[np.ndarray], fixed: Mapping[int, float]) -> Minimum:
        fits = [
            minimize(
                model,
                data,
                aux,
                init=s,
                fixed=fixed,
                hesse=False,
                strategy=strategy,
                tolerance=tolerance,
                steps=steps,
            )  # fmt: skip
            for s in starts
        ]
        return min(fits, key=lambda m: (not m.valid, m.nll))

    return fit


def minimize_multistart(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    starts: Sequence[np.ndarray],
    fixed: Mapping[int, float] | None = None,
    strategy: int = 1,
    tolerance: float = TIGHT_TOLERANCE,
    steps: np.ndarray | None = None,
    hesse: bool = False,
) -> Minimum:
    """Lowest-NLL valid minimum over several starts (the conditional fits of the impacts).

    The first start gets the full fit (``strategy``, ``tolerance``; retried at strategy 2 from
    where it stopped if invalid). Every other start is scouted with a strategy-0 fit at the same
    tolerance; a scout that ends in a different, lower minimum is refitted at ``strategy`` and
    wins if valid. Without any valid fit the lowest NLL is returned with ``valid = False`` and
    the reasons in ``message``. ``n_minima`` counts the distinct minima found (NLLs within
    :data:`SAME_NLL` and parameters within half a step count as one).
    """
    if not starts:
        raise ModelError("minimize_multistart needs at least one start")
    scale = (
        np.where(np.isfinite(model.prefit_sigma), model.prefit_sigma, 0.1)
        if steps is None
        else np.asarray(steps, dtype=np.float64)
    )
    scale = np.where(scale > 0, scale, 0.1)

    def fit(init: np.ndarray, strat: int) -> Minimum:
        return minimize(
            model, data, aux, init=init, fixed=fixed, hesse=hesse, strategy=strat,
            tolerance=tolerance, steps=steps,
        )  # fmt: skip

    n_fits = 1
    best = fit(starts[0], strategy)
    if not best.valid and strategy < 2:
        n_fits += 1
        retry = fit(best.values, 2)
        best = retry if retry.valid or retry.nll < best.nll else best
    found = [best]
    winner = 0
    reasons = [] if best.valid else [f"start 0: {best.message}"]
    for k, start in enumerate(starts[1:], start=1):
        n_fits += 1
        cand = fit(start, 0)
        if any(_same_minimum(cand, f, scale) for f in found):
            continue
        if cand.nll < best.nll - SAME_NLL or not best.valid:
            n_fits += 1
            cand = fit(cand.values, strategy)
            if not cand.valid:
                reasons.append(f"start {k}: {cand.message}")
            if any(_same_minimum(cand, f, scale) for f in found):
                continue
            better = cand.nll < best.nll
            if (cand.valid and (better or not best.valid)) or (not best.valid and better):
                best, winner = cand, k
        if cand.valid:
            found.append(cand)
    message = "" if best.valid else "no start gave a valid minimum: " + "; ".join(reasons)
    return replace(best, n_minima=len(found), n_fits=n_fits, start=winner, message=message)


__all__ = [
    "SAME_NLL",
    "ConditionalFit",
    "TIGHT_TOLERANCE",
    "Minimum",
    "conditional_starts",
    "histosys_starts",
    "iminuit_conditional",
    "minimize",
    "minimize_multistart",
]
