"""Expected (Asimov) uncertainty from the Fisher information, and the choice of threshold and binning."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, ModelError
from .likelihood import _TINY, HistFactoryModel
from .workspace import Systematic, build_workspace

log = logging.getLogger(__name__)


def fisher_uncertainty(
    model: HistFactoryModel, *, pars: np.ndarray | None = None, step: float = 1e-5
) -> tuple[float, float]:
    """Expected (Asimov) uncertainty on the POI from the Fisher information at ``pars``.

    On Asimov data the NLL Hessian at the minimum is exactly the Fisher matrix
    I = J^T diag(1/lambda) J + C^-1 (J = d lambda / d theta, C the constraint covariance), so no fit
    is needed. Returns (total, stat_only) = (sqrt(I^-1)_mu,mu, 1/sqrt(I_mu,mu)). It is the
    curvature (Hesse) width; MINOS differs for strongly asymmetric likelihoods.
    """
    pars = model.nominal_pars if pars is None else np.asarray(pars, dtype=np.float64)
    free = [i for i in range(model.n_pars) if not model.fixed[i]]
    lam = model.expected(pars)
    jac = model.jacobian(pars, free, step=step)
    info = (jac / np.maximum(lam, _TINY)) @ jac.T
    pos = {int(i): k for k, i in enumerate(free)}
    for c, sig in zip(model.constrained, model.constraint_sigma, strict=True):
        if int(c) in pos:
            info[pos[int(c)], pos[int(c)]] += 1.0 / sig**2
    ip = pos[model.poi_index]
    stat = 1.0 / math.sqrt(info[ip, ip]) if info[ip, ip] > 0 else math.inf
    try:
        cov = np.linalg.inv(info)
        tot = math.sqrt(cov[ip, ip]) if cov[ip, ip] > 0 else math.inf
    except np.linalg.LinAlgError:
        tot = math.inf
    return tot, stat


@dataclass(frozen=True)
class BinningChoice:
    """Result of :func:`optimise_binning`: the best candidate and the table of all of them."""

    threshold: float
    n_bins: int
    bin_edges: np.ndarray
    dmu_tot: float
    dmu_stat: float
    candidates: pd.DataFrame


def optimise_binning(
    scores: Mapping[str, pd.DataFrame],
    systematics: Sequence[Systematic],
    *,
    candidate_thresholds: Sequence[float],
    n_bins_options: Sequence[int],
    score_max: float = 1.0,
    group_by: str = "process",
    mc_stat: bool = True,
    min_bin_yield: float = 0.0,
    min_bin_neff_background: float = 0.0,
) -> BinningChoice:
    """Choose threshold and binning by the expected profile-likelihood uncertainty on mu.

    For each (threshold t, n) the fit region (t, score_max] is split into n uniform bins and
    the Asimov total uncertainty is computed with :func:`fisher_uncertainty` (fast path: one
    model evaluation per parameter, no minimisation). All candidates are histogrammed in
    one pass on the union of their edges and merged exactly (right-closed bins). Candidates
    with an empty bin, a bin below ``min_bin_yield`` expected events, or a bin whose background
    has no MC or an effective MC count (sum w)^2 / sum w^2 below ``min_bin_neff_background``, are skipped
    (dmu_tot = inf). Ties go to the fewer bins, then the lower threshold.

    Returns:
        The best candidate and a DataFrame (threshold, n_bins, dmu_tot, dmu_stat, S, B, status).
    """
    from ..histograms import snap
    from ..templates import build_templates, rebin

    cands = [(float(t), int(n)) for t in candidate_thresholds for n in n_bins_options]
    if not cands:
        raise ConfigError("optimise_binning needs at least one candidate threshold and bin count")
    edge_sets = {c: np.round(np.linspace(c[0], score_max, c[1] + 1), 12) for c in cands}
    grid = getattr(scores, "grid", None)
    if grid is not None:
        # binned frames (systpipe.histograms): edges on the fine grid, so that every template
        # is an exact sum of fine bins
        edge_sets = {c: snap(e, grid) for c, e in edge_sets.items()}
    union = np.unique(np.concatenate(list(edge_sets.values())))
    fine = build_templates(scores, bin_edges=union, group_by=group_by)  # type: ignore[arg-type]
    rows = []
    for (t, n), edges in edge_sets.items():
        row: dict[str, Any] = {
            "threshold": t,
            "n_bins": n,
            "dmu_tot": math.inf,
            "dmu_stat": math.inf,
        }
        tmpl = rebin(fine, edges)
        row["S"] = float(tmpl.total(signal=True).sum())
        row["B"] = float(tmpl.total(signal=False).sum())
        background = ~tmpl.signal_mask
        b_sum = tmpl.nominal[background].sum(axis=0)
        b_w2 = tmpl.sumw2[background].sum(axis=0)
        neff_b = np.divide(b_sum**2, b_w2, out=np.zeros_like(b_sum), where=b_w2 > 0)
        row["min_bin_neff_B"] = float(neff_b.min())
        if np.any(tmpl.total() <= max(min_bin_yield, 0.0)):
            row["status"] = "empty bin"
        elif np.any(neff_b < min_bin_neff_background) or np.any(b_sum <= 0):
            # a bin without (enough) background MC fakes a pure-signal bin: Z0 -> infinity
            row["status"] = "background MC below fit.optimise.min_bin_neff_background"
        if "status" in row:
            rows.append(row)
            continue
        try:
            spec = build_workspace(tmpl, systematics, mc_stat=mc_stat, validate=False)
            tot, stat = fisher_uncertainty(HistFactoryModel(spec))
            row.update(dmu_tot=tot, dmu_stat=stat, status="ok")
        except ModelError as exc:
            row["status"] = f"skipped: {exc}"
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[np.isfinite(table["dmu_tot"])]
    if ok.empty:
        raise ModelError(
            "no binning candidate gives a finite expected uncertainty; lower the thresholds"
        )
    best = ok.sort_values(["dmu_tot", "n_bins", "threshold"], kind="stable").iloc[0]
    key = (float(best["threshold"]), int(best["n_bins"]))
    log.info(
        "best binning: threshold %.3f, %d bins, expected dmu_tot %.4f",
        key[0],
        key[1],
        best["dmu_tot"],
    )
    return BinningChoice(
        threshold=key[0],
        n_bins=key[1],
        bin_edges=edge_sets[key],
        dmu_tot=float(best["dmu_tot"]),
        dmu_stat=float(best["dmu_stat"]),
        candidates=table,
    )


__all__ = ["BinningChoice", "fisher_uncertainty", "optimise_binning"]
