"""The repeated fits of :func:`~.fit.fit_workspace` (impacts, breakdown) by the batched fitter.

The impacts are 4 conditional fits per nuisance parameter (fixed at best fit +/- its pre- and
post-fit sigma), each from every start of :func:`~.minimize.conditional_starts`: all of them
are one :func:`~.batched.fit_batch` call per parameter (rows = value x start), the lowest
converged NLL per value wins. The breakdown's frozen-group intervals are
:func:`~.batched_intervals.profile_intervals_batch` on the model with the group fixed at its
best-fit values. Newton's fits that do not converge are redone by iminuit inside the batched
functions, so the result is never worse than the one-fit-at-a-time path; it is 10-100x faster
on workspaces with a control region, where MIGRAD often stops above its EDM goal.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .batched import fit_batch
from .batched_intervals import FLAG_FAILED, FLAG_HI_BOUND, FLAG_LO_BOUND, profile_intervals_batch
from .likelihood import HistFactoryModel
from .minimize import SAME_NLL, ConditionalFit, Minimum, conditional_starts


@dataclass(frozen=True)
class ImpactFits:
    """mu-hat(fixed) - mu-hat for the values (pre_up, pre_down, post_up, post_down) of one
    parameter, how many distinct minima the starts found, whether every value converged."""

    shifts: tuple[float, float, float, float]
    n_minima: int
    valid: bool
    moved: int


def impact_fits(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray,
    best: Minimum,
    index: int,
    values: Sequence[float],
) -> ImpactFits:
    """The conditional fits of parameter ``index`` at ``values`` (see the module docstring)."""
    ip = model.poi_index
    rows, owner, start_no = [], [], []
    for k, v in enumerate(values):
        for s, start in enumerate(conditional_starts(model, best, {index: float(v)})):
            rows.append(start)
            owner.append(k)
            start_no.append(s)
    init = np.array(rows)
    fixed_vals = np.array([values[k] for k in owner], dtype=np.float64)
    counts = np.repeat(np.asarray(data, dtype=np.float64)[None, :], len(rows), axis=0)
    fit = fit_batch(model, counts, aux, init=init, fixed={index: fixed_vals}, tol=1e-10)
    owner_a, start_a = np.array(owner), np.array(start_no)
    shifts, n_min, valid, moved = [], 1, True, 0
    for k in range(len(values)):
        mine = np.flatnonzero((owner_a == k) & fit.converged)
        if not mine.size:
            shifts.append(math.nan)
            valid = False
            continue
        nll = fit.nll[mine]
        win = mine[int(np.argmin(nll))]
        distinct = np.unique(np.round((nll - nll.min()) / SAME_NLL)).size
        n_min = max(n_min, int(distinct))
        moved += int(start_a[win] != 0)
        shifts.append(float(fit.values[win, ip] - best.values[ip]))
    return ImpactFits(tuple(shifts), n_min, valid, moved)  # type: ignore[arg-type]


def frozen_interval(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray,
    best: Minimum,
    indices: Sequence[int],
) -> tuple[float, float, tuple[bool, bool]] | None:
    """(down, up) POI interval with ``indices`` frozen at their best-fit values and whether
    each edge is at the POI bound; None when the batched search (and iminuit) fail."""
    frozen = copy.copy(model)
    frozen.fixed = model.fixed.copy()
    frozen.init = model.init.copy()
    idx = np.asarray(list(indices), dtype=np.int64)
    frozen.fixed[idx] = True
    frozen.init[idx] = best.values[idx]
    r = profile_intervals_batch(
        frozen,
        np.asarray(data, dtype=np.float64)[None, :],
        np.asarray(aux, dtype=np.float64)[None, :],
    )
    flags = int(r.flags[0])
    if flags & FLAG_FAILED or not np.isfinite(r.lo[0]) or not np.isfinite(r.hi[0]):
        return None
    mu = float(r.mu_hat[0])
    return (
        mu - float(r.lo[0]),
        float(r.hi[0]) - mu,
        (bool(flags & FLAG_LO_BOUND), bool(flags & FLAG_HI_BOUND)),
    )


def conditional_fitter(
    model: HistFactoryModel, data: np.ndarray, aux: np.ndarray | None = None
) -> ConditionalFit:
    """The conditional fits of one dataset by the batched fitter: every start is a row of one
    :func:`~.batched.fit_batch` call (Newton to a decrement below 1e-10, iminuit where it does
    not converge), and the lowest converged NLL wins. What
    :func:`~.intervals.poi_interval` and :func:`~.limits.discovery_significance` take in
    place of their iminuit fits (about 10 ms per fit against 100 ms at the tight tolerance).

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [5.0], "modifiers": [
        ...         {"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [10.0], "modifiers": [
        ...         {"name": "nb", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
        ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
        >>> model = HistFactoryModel(spec)
        >>> fit = conditional_fitter(model, np.array([15.0]))
        >>> m = fit([model.init], {model.poi_index: 0.0})  # mu = 0: the background pulled up
        >>> nb = model.names.index("nb")
        >>> grad = model.nll_and_grad(m.values, np.array([15.0]), model.aux_nominal)[1]
        >>> m.valid, round(float(m.values[nb]), 4), bool(abs(grad[nb]) < 1e-8)  # at the minimum
        (True, 0.4305, True)
    """
    counts = np.asarray(data, dtype=np.float64)
    aux_row = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)

    def fit(starts: Sequence[np.ndarray], fixed: Mapping[int, float]) -> Minimum:
        init = np.array([np.asarray(s, dtype=np.float64) for s in starts])
        rows = np.repeat(counts[None, :], init.shape[0], axis=0)
        res = fit_batch(model, rows, aux_row, init=init, fixed=dict(fixed), tol=1e-10)
        ok = np.flatnonzero(res.converged & np.isfinite(res.nll))
        k = int(ok[np.argmin(res.nll[ok])]) if ok.size else int(np.nanargmin(res.nll))
        return Minimum(
            values=res.values[k].copy(),
            errors=np.zeros(model.n_pars),
            covariance=None,
            nll=float(res.nll[k]),
            valid=bool(ok.size),
            nfcn=int(res.n_iter.sum()),
            n_fits=len(init),
            start=k,
            message="" if ok.size else "no start converged (Newton, then iminuit)",
        )

    return fit


__all__ = ["ImpactFits", "conditional_fitter", "frozen_interval", "impact_fits"]
