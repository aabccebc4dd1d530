"""Steps of ``workflow/rules/fit.smk``: the statistical model of one classifier: workspace and
binning, profile-likelihood fit, covariance chi2 and the method-comparison rows."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import DataContractError
from ..templates import Templates, build_templates, histogram
from ._frames import load_variation_scores, read_data_scores, stem
from ._registry import StepContext, step

log = logging.getLogger(__name__)

PathMap = Mapping[str, str | Path]


def observed_counts(
    fit: Mapping[str, Any], templates: Templates, data_scores: pd.DataFrame | None = None
) -> np.ndarray:
    """What the fits see as data in the bins of ``templates``: the Asimov expectation at
    ``fit.data.asimov_mu`` (default), or the weighted histogram of the scored data events.

    Bins are right-closed with overflow into the last bin, exactly as the templates.
    """
    data_cfg = fit["data"]
    if data_cfg["source"] == "asimov":
        scale = np.where(np.asarray(templates.is_signal), float(data_cfg["asimov_mu"]), 1.0)
        return (templates.nominal * scale[:, None]).sum(axis=0)
    if data_scores is None:
        raise DataContractError("fit.data.source is 'file' but no scored data events were given")
    return histogram(
        data_scores["score"].to_numpy(), data_scores["weight"].to_numpy(), templates.bin_edges
    )


def workspace_for_edges(
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    edges: Sequence[float],
    *,
    mc_stat: bool,
    data_scores: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], Templates, dict[str, Any]]:
    """The pyhf workspace of the score frames binned on ``edges``, its templates after the
    post-processing of ``fit.templates`` (symmetrisation, smoothing, pruning of the shape
    systematics) and the record of that post-processing."""
    from ..stat.postprocess import postprocess
    from ..stat.workspace import build_workspace

    raw = build_templates(
        frames, bin_edges=np.asarray(edges, dtype=float), group_by=fit["group_by"]
    )
    templates, record = postprocess(raw, systematics, fit["templates"])
    spec = build_workspace(
        templates,
        systematics,
        mc_stat=mc_stat,
        mu_bounds=tuple(fit["poi_bounds"]),
        data=observed_counts(fit, templates, data_scores),
    )
    return spec, templates, record


def choose_binning(
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    extra_thresholds: Sequence[float] = (),
) -> dict[str, Any]:
    """Fixed binning from config, or threshold and binning that minimise the expected
    profile-likelihood dmu_tot (docs/statistics.md).

    ``extra_thresholds`` (the cut-and-count working points) join the candidate grid, so the
    profile-likelihood optimum is never worse than a working point the table also reports.
    """
    from ..scan import default_thresholds
    from ..stat.binning import optimise_binning
    from ..templates import default_bin_edges

    if fit["binning"] == "fixed":
        edges = default_bin_edges(
            n_bins=fit["n_bins"], score_min=fit["score_min"], score_max=fit["score_max"]
        )
        return {
            "method": "fixed",
            "threshold": float(edges[0]),
            "n_bins": int(fit["n_bins"]),
            "bin_edges": edges.tolist(),
        }
    opt = fit["optimise"]
    thr = opt["thresholds"]
    choice = optimise_binning(
        frames,
        systematics,
        candidate_thresholds=sorted(
            {
                *default_thresholds(thr["start"], thr["stop"], thr["step"]).tolist(),
                *(float(t) for t in extra_thresholds),
            }
        ),
        n_bins_options=opt["n_bins_options"],
        score_max=fit["score_max"],
        group_by=fit["group_by"],
        mc_stat=fit["mc_stat"],
        min_bin_yield=opt["min_bin_yield"],
        min_bin_neff_background=opt["min_bin_neff_background"],
    )
    log.info(
        "optimised binning: threshold %.3f, %d bins, expected dmu_tot %.4f",
        choice.threshold,
        choice.n_bins,
        choice.dmu_tot,
    )
    return {
        "method": "optimise",
        "threshold": float(choice.threshold),
        "n_bins": int(choice.n_bins),
        "bin_edges": np.asarray(choice.bin_edges).tolist(),
        "expected_dmu_tot": float(choice.dmu_tot),
        "expected_dmu_stat": float(choice.dmu_stat),
        "candidates": choice.candidates.replace([np.inf, -np.inf], None).to_dict(orient="records"),
    }


@step(
    "workspace",
    uses=("fit", "systematics"),
    help="pyhf workspace and binning (set: clf; in: score__<variation>, weight__<variation>, scan; out: workspace, binning)",
)
def workspace(
    ctx: StepContext,
    *,
    clf: str,
    score: PathMap,
    scan: str | Path,
    weight: PathMap | None = None,
    data_scores: str | Path | None = None,
    workspace: str | Path,
    binning: str | Path,
) -> None:
    """pyhf workspace of one classifier's score histograms with the chosen binning."""
    from ..table import working_points

    fit, systematics = ctx.settings["fit"], ctx.settings["systematics"]
    frames = load_variation_scores(systematics, scores=score, weights=weight or {})
    scan_table = io.read_table(scan)
    extra = [float(scan_table["threshold"].iloc[i]) for i in working_points(scan_table).values()]
    chosen = choose_binning(fit, systematics, frames, extra_thresholds=extra)
    spec, _, record = workspace_for_edges(
        fit,
        systematics,
        frames,
        chosen["bin_edges"],
        mc_stat=fit["mc_stat"],
        data_scores=read_data_scores(data_scores),
    )
    io.write_json(spec, workspace)
    io.write_json({**chosen, "templates": record}, binning)


@step(
    "fit",
    uses=("fit",),
    help="profile-likelihood fit of a workspace, with its plots (set: clf; in: workspace, binning)",
)
def fit(
    ctx: StepContext,
    *,
    clf: str,
    workspace: str | Path,
    binning: str | Path,
    fit: str | Path,
    impacts: str | Path,
    pulls: str | Path,
    correlation: str | Path,
    prefit: str | Path,
    postfit: str | Path,
    pdfs: Sequence[str | Path] = (),
) -> None:
    """Profile-likelihood fit with breakdown, impacts, pulls, Z0 and CLs limit, plus plots."""
    from ..plots import fit as fit_plots
    from ..stat.fit import fit_result_to_dict, fit_workspace

    spec = json.loads(Path(workspace).read_text())
    chosen = json.loads(Path(binning).read_text())
    cfg = ctx.settings["fit"]
    result = fit_workspace(spec, impacts=cfg["impacts"], limits=cfg["limits"])
    log.info(
        "mu_hat = %.4f -%.4f +%.4f (%d fits, %.2f s)",
        result.mu_hat,
        result.dmu_down,
        result.dmu_up,
        result.n_fits,
        result.elapsed_s,
    )
    io.write_json({**fit_result_to_dict(result), "binning": chosen}, fit)
    edges = chosen["bin_edges"]
    fit_plots.plot_impacts(result, stem(impacts))
    fit_plots.plot_pulls(result, stem(pulls))
    fit_plots.plot_correlation(result, stem(correlation))
    fit_plots.plot_distribution(spec, stem(prefit), bin_edges=edges)
    fit_plots.plot_distribution(spec, stem(postfit), result=result, bin_edges=edges)


def chi2_result(
    chi2: Mapping[str, Any],
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    edges: Sequence[float],
    data_scores: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Covariance chi2 on the data of ``fit.data`` (Asimov by default) in ``edges`` plus the
    low-score control bins: mu-hat, Delta chi2 = 1 interval and breakdown."""
    from ..stat.chi2 import breakdown, fit_mu
    from ..stat.methods import chi2_inputs

    edges_arr = np.asarray(edges, dtype=float)
    n_control = 0
    if chi2["control_region"] and edges_arr[0] > chi2["control_min"]:
        control = np.linspace(chi2["control_min"], edges_arr[0], chi2["control_bins"] + 1)[:-1]
        n_control = len(control)
        edges_arr = np.concatenate([control, edges_arr])
    templates = build_templates(frames, bin_edges=edges_arr, group_by="label")
    s, b, shifts = chi2_inputs(templates, [x["name"] for x in systematics])
    observed = observed_counts(fit, templates, data_scores)
    stat = chi2["stat"]
    result = fit_mu(observed, s, b, shifts, stat=stat)
    parts = breakdown(observed, s, b, shifts, stat=stat)
    return {
        "mu_hat": float(result.mu_hat),
        "dmu_low": float(result.dmu_low),
        "dmu_high": float(result.dmu_high),
        "chi2_min": float(result.chi2_min),
        "n_control_bins": n_control,
        "breakdown": {k: float(v) for k, v in parts.items()},
    }


@step(
    "chi2",
    uses=("chi2", "fit", "systematics"),
    help="covariance chi2 fit in the workspace binning plus control bins (set: clf; out: chi2)",
)
def chi2(
    ctx: StepContext,
    *,
    clf: str,
    score: PathMap,
    binning: str | Path,
    weight: PathMap | None = None,
    data_scores: str | Path | None = None,
    chi2: str | Path,
) -> None:
    """Covariance chi2 of one classifier with the workspace's binning (+ control region)."""
    systematics = ctx.settings["systematics"]
    frames = load_variation_scores(systematics, scores=score, weights=weight or {})
    edges = json.loads(Path(binning).read_text())["bin_edges"]
    out = chi2_result(
        ctx.settings["chi2"],
        ctx.settings["fit"],
        systematics,
        frames,
        edges,
        read_data_scores(data_scores),
    )
    log.info(
        "chi2: mu_hat %.4f, interval -%.4f +%.4f", out["mu_hat"], out["dmu_low"], out["dmu_high"]
    )
    io.write_json(out, chi2)


def _scan_row(scan: pd.DataFrame, threshold: float) -> pd.Series:
    idx = int(np.argmin(np.abs(scan["threshold"].to_numpy() - threshold)))
    if not math.isclose(scan["threshold"].iloc[idx], threshold, abs_tol=1e-9):
        log.warning(
            "threshold %.6f not on the scan grid; using %.6f",
            threshold,
            scan["threshold"].iloc[idx],
        )
    return scan.iloc[idx]


@step(
    "methods",
    uses=("fit", "chi2", "scan", "systematics"),
    help="method-comparison rows of one classifier: shift, linear, profile, chi2 (set: clf; out: methods)",
)
def methods(
    ctx: StepContext,
    *,
    clf: str,
    score: PathMap,
    scan: str | Path,
    binning: str | Path,
    fit: str | Path,
    chi2: str | Path,
    weight: PathMap | None = None,
    data_scores: str | Path | None = None,
    methods: str | Path,
) -> None:
    """Rows of the method comparison for one classifier: linear, profile and chi2 at the two
    cut-and-count working points, and all four methods at the profile-likelihood optimum."""
    from ..stat import methods as stat_methods
    from ..stat.fit import fit_workspace
    from ..table import method_row, row_base, shift_row_columns, working_points

    settings = ctx.settings
    systematics, fit_cfg = settings["systematics"], settings["fit"]
    names = [s["name"] for s in systematics]
    symmetrise = settings["scan"]["symmetrise"]
    frames = load_variation_scores(systematics, scores=score, weights=weight or {})
    scan_table = io.read_table(scan)
    chosen = json.loads(Path(binning).read_text())
    fitted = json.loads(Path(fit).read_text())
    chi2_record = json.loads(Path(chi2).read_text())
    observed = read_data_scores(data_scores)
    rows: list[dict[str, Any]] = []

    def add(result: stat_methods.MethodResult, wp: str, row: pd.Series, n_bins: int) -> None:
        rows.append(
            method_row(
                result, classifier=clf, working_point=wp, scan_row=row, n_bins=n_bins, names=names
            )
        )

    def linear(row: pd.Series) -> stat_methods.MethodResult:
        return stat_methods.linear(
            cut_at(row, systematics), float(row["n"]), symmetrise=symmetrise, asimov=True
        )

    for wp, index in working_points(scan_table).items():
        row = scan_table.iloc[index]
        edges = [float(row["threshold"]), fit_cfg["score_max"]]
        add(linear(row), wp, row, 1)
        # same model ingredients as the workspace (MC statistics included when configured),
        # so that every profile row of the table is comparable
        spec, _, _ = workspace_for_edges(
            fit_cfg, systematics, frames, edges, mc_stat=fit_cfg["mc_stat"], data_scores=observed
        )
        result = fit_workspace(spec, impacts=False, limits=False)
        add(stat_methods.profile_from_breakdown(result.mu_hat, result.breakdown, names), wp, row, 1)
        record = chi2_result(settings["chi2"], fit_cfg, systematics, frames, edges, observed)
        add(stat_methods.chi2_from_dict(record, names), wp, row, 1)

    row = _scan_row(scan_table, chosen["threshold"])
    n_bins = int(chosen["n_bins"])
    base = row_base(classifier=clf, working_point="profile_optimum", scan_row=row, n_bins=1)
    rows.append({**base, "method": "shift", **shift_row_columns(row, names)})
    add(linear(row), "profile_optimum", row, 1)
    add(
        stat_methods.profile_from_breakdown(fitted["mu_hat"], fitted["breakdown"], names),
        "profile_optimum",
        row,
        n_bins,
    )
    add(stat_methods.chi2_from_dict(chi2_record, names), "profile_optimum", row, n_bins)
    io.write_table(pd.DataFrame(rows), methods, ctx.provenance(classifier=clf))


def cut_at(row: pd.Series, systematics: Sequence[Mapping[str, Any]]) -> Any:
    """Cut-and-count yields of a scan row (score above its threshold) for the methods, with
    the sums of squared MC weights of its selection (columns sumw2_S, sumw2_B; 0 if absent)."""
    from ..stat.methods import CutAndCount
    from ..systematics import columns, parse_systematics

    systs = parse_systematics(systematics)
    return CutAndCount(
        s=float(row["S_nominal"]),
        b=float(row["B_nominal"]),
        s_var={x.name: (float(row[columns.s(x.up)]), float(row[columns.s(x.down)])) for x in systs},
        b_var={x.name: (float(row[columns.b(x.up)]), float(row[columns.b(x.down)])) for x in systs},
        deltas={x.name: float(x["delta"]) for x in systs if x.linearisable},
        linearisable={x.name: x.linearisable for x in systs},
        mc_sumw2=(float(row.get("sumw2_S", 0.0)), float(row.get("sumw2_B", 0.0))),
    )
