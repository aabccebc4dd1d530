"""Steps of ``workflow/rules/fit.smk``: the statistical model of one classifier: workspace and
binning, profile-likelihood fit, covariance chi2 and the method-comparison rows."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import ConfigError, DataContractError
from ..templates import Templates, build_templates, histogram
from ._frames import load_histograms, read_data_scores, stem
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


@dataclass(frozen=True)
class ModelTemplates:
    """The templates of the statistical model of one binning, after the post-processing of
    ``fit.templates``: the signal region on the fit edges and, when ``fit.control_region`` is
    enabled and the fit threshold lies above its lower edge, the low-score control region (a
    second channel, almost only background, that constrains the background normalisation and
    the shape systematics). ``record`` says what the post-processing did, entry by entry, with
    the region of each."""

    signal_region: Templates
    control_region: Templates | None
    record: dict[str, Any]

    @property
    def edges(self) -> np.ndarray:
        """Every bin edge in score order: the control bins, then the fit bins."""
        sr = self.signal_region.bin_edges
        if self.control_region is None:
            return sr
        return np.concatenate([self.control_region.bin_edges[:-1], sr])


def control_edges(fit: Mapping[str, Any], threshold: float) -> np.ndarray | None:
    """Edges of the control region below the fit ``threshold`` (None when disabled or empty).

    Example:
        >>> control_edges({"control_region": {"enabled": True, "score_min": 0.0, "n_bins": 2}}, 0.5)
        array([0.  , 0.25, 0.5 ])
    """
    cfg = fit["control_region"]
    if not cfg["enabled"] or threshold <= cfg["score_min"] + 1e-12:
        return None
    return np.linspace(float(cfg["score_min"]), float(threshold), int(cfg["n_bins"]) + 1)


def on_fine_grid(edges: Sequence[float] | np.ndarray, frames: Mapping[str, Any]) -> np.ndarray:
    """``edges`` as an array, moved to the fine score grid when ``frames`` are binned
    (:class:`systpipe.histograms.BinnedFrames`): templates are then exact sums of fine bins."""
    from ..histograms import snap

    grid = getattr(frames, "grid", None)
    return np.asarray(edges, dtype=float) if grid is None else snap(edges, grid)


def model_templates(
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    edges: Sequence[float],
) -> ModelTemplates:
    """Signal- and control-region templates of ``edges`` (see :class:`ModelTemplates`)."""
    from ..stat.postprocess import postprocess
    from ..templates import first_bins

    sr_edges = on_fine_grid(edges, frames)
    raw = build_templates(frames, bin_edges=sr_edges, group_by=fit["group_by"])
    sr, record = postprocess(raw, systematics, fit["templates"])
    entries = [{**e, "region": "SR"} for e in record["entries"]]
    cr = None
    cr_edges = control_edges(fit, float(sr_edges[0]))
    if cr_edges is not None:
        cr_edges = on_fine_grid(cr_edges, frames)
        cr_edges = cr_edges[cr_edges < sr_edges[0]]
        cr_edges = np.append(cr_edges, sr_edges[0]) if cr_edges.size else None
    if cr_edges is not None:
        # built with one fit bin above so that nothing of the fit region overflows into them
        both = build_templates(
            frames, bin_edges=np.append(cr_edges, sr_edges[-1]), group_by=fit["group_by"]
        )
        cr, cr_record = postprocess(
            first_bins(both, cr_edges.size - 1), systematics, fit["templates"]
        )
        entries += [{**e, "region": "CR"} for e in cr_record["entries"]]
    return ModelTemplates(sr, cr, {**record, "entries": entries})


def workspace_for_edges(
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    edges: Sequence[float],
    *,
    mc_stat: bool,
    data_scores: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], ModelTemplates]:
    """The pyhf workspace of the score frames binned on ``edges`` (channel "SR") plus the
    control region (channel "CR") when enabled, from the post-processed templates."""
    from ..stat.workspace import add_channel, build_workspace, validate_workspace

    model = model_templates(fit, systematics, frames, edges)

    def channel(templates: Templates, name: str) -> dict[str, Any]:
        return build_workspace(
            templates,
            systematics,
            mc_stat=mc_stat,
            mu_bounds=tuple(fit["poi_bounds"]),
            data=observed_counts(fit, templates, data_scores),
            split_norm_shape=bool(fit["templates"]["split_norm_shape"]),
            channel=name,
            validate=False,
        )

    spec = channel(model.signal_region, "SR")
    if model.control_region is not None:
        spec = add_channel(spec, channel(model.control_region, "CR"))
    validate_workspace(spec)
    return spec, model


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
        edges = on_fine_grid(
            default_bin_edges(
                n_bins=fit["n_bins"], score_min=fit["score_min"], score_max=fit["score_max"]
            ),
            frames,
        )
        return {
            "method": "fixed",
            "threshold": float(edges[0]),
            "n_bins": int(edges.size - 1),
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
    help="pyhf workspace and binning (set: clf; in: hist, pairs, scan; out: workspace, binning)",
)
def workspace(
    ctx: StepContext,
    *,
    clf: str,
    hist: str | Path,
    scan: str | Path,
    pairs: str | Path | None = None,
    data_scores: str | Path | None = None,
    workspace: str | Path,
    binning: str | Path,
) -> None:
    """pyhf workspace of one classifier's score histograms with the chosen binning."""
    from ..table import working_points

    fit, systematics = ctx.settings["fit"], ctx.settings["systematics"]
    frames = load_histograms(hist, pairs)
    scan_table = io.read_table(scan)
    extra = [float(scan_table["threshold"].iloc[i]) for i in working_points(scan_table).values()]
    chosen = choose_binning(fit, systematics, frames, extra_thresholds=extra)
    spec, model = workspace_for_edges(
        fit,
        systematics,
        frames,
        chosen["bin_edges"],
        mc_stat=fit["mc_stat"],
        data_scores=read_data_scores(data_scores),
    )
    cr = model.control_region
    io.write_json(spec, workspace)
    io.write_json(
        {
            **chosen,
            "control_edges": None if cr is None else cr.bin_edges.tolist(),
            "model_edges": model.edges.tolist(),
            "templates": model.record,
        },
        binning,
    )


@step(
    "fit",
    # labels, input, simulate, files: the luminosity and names on the plots
    uses=("fit", "labels", "input", "simulate", "files"),
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
    nll_scan: str | Path | None = None,
    pdfs: Sequence[str | Path] = (),
) -> None:
    """Profile-likelihood fit with breakdown, impacts, pulls, Z0 and CLs limit, plus plots
    (and the -2 Delta ln L(mu) scan, stat-only and total, when ``nll_scan`` is given)."""
    from ..likelihood_scan import profile_scan
    from ..plots import fit as fit_plots
    from ..plots import validation
    from ..plots.labels import labels_from_settings
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
    edges = chosen.get("model_edges") or chosen["bin_edges"]
    labels = labels_from_settings(ctx.settings)  # defaults unless the rule declares `labels`
    asimov = cfg["data"]["source"] != "file"
    fit_plots.plot_impacts(result, stem(impacts), labels=labels)
    fit_plots.plot_pulls(result, stem(pulls), labels=labels)
    fit_plots.plot_correlation(result, stem(correlation), labels=labels)
    fit_plots.plot_distribution(spec, stem(prefit), bin_edges=edges, labels=labels, asimov=asimov)
    fit_plots.plot_distribution(
        spec, stem(postfit), result=result, bin_edges=edges, labels=labels, asimov=asimov
    )
    if nll_scan is not None:
        scan = profile_scan(
            spec, mu_hat=result.mu_hat, dmu_down=result.dmu_down, dmu_up=result.dmu_up
        )
        region = f"{labels.classifier(clf)}, SR score > {edges[0]:.3g}, {len(edges) - 1} bins"
        validation.plot_nll_scan(scan, stem(nll_scan), labels=labels, text=region)


def chi2_result(
    chi2: Mapping[str, Any],
    fit: Mapping[str, Any],
    systematics: Sequence[Mapping[str, Any]],
    frames: Mapping[str, pd.DataFrame],
    edges: Sequence[float],
    data_scores: pd.DataFrame | None = None,
    model: ModelTemplates | None = None,
) -> dict[str, Any]:
    """Covariance chi2 on the data of ``fit.data`` (Asimov by default) with the profile fit's
    model ingredients: the same channels (fit bins and control bins), the same post-processed
    templates and, with ``fit.mc_stat``, the MC statistics as one independent shift per bin
    (sqrt of the bin's sum of squared weights, the staterror's Gaussian equivalent).
    mu-hat, Delta chi2 = 1 interval and breakdown. ``model``: the templates of ``edges`` when
    the caller has them already (:func:`workspace_for_edges` returns them)."""
    from ..stat.chi2 import breakdown, fit_mu
    from ..stat.chi2_asymmetric import AsymmetricShift, asymmetric_breakdown, is_linear
    from ..stat.methods import chi2_inputs
    from ..stat.workspace import MC_STAT
    from ..systematics import parse_systematics

    if model is None:
        model = model_templates(fit, systematics, frames, edges)
    # the bins in the workspace's order: channel CR, then SR
    parts = [t for t in (model.control_region, model.signal_region) if t is not None]
    names = [x["name"] for x in systematics]
    inputs = [chi2_inputs(t, names) for t in parts]
    s = np.concatenate([i[0] for i in inputs])
    b = np.concatenate([i[1] for i in inputs])
    shifts: dict[str, np.ndarray] = {k: np.concatenate([i[2][k] for i in inputs]) for k in names}
    if fit["mc_stat"]:
        sumw2 = np.concatenate([t.sumw2.sum(axis=0) for t in parts])
        shifts[MC_STAT] = np.diag(np.sqrt(np.clip(sumw2, 0.0, None)))
    observed = np.concatenate([observed_counts(fit, t, data_scores) for t in parts])
    stat = chi2["stat"]
    asym: dict[str, AsymmetricShift] = {}
    if chi2["shift_model"] == "asymmetric":
        if stat == "fitted":
            raise ConfigError(
                "chi2.stat 'fitted' needs chi2.shift_model 'symmetric' (the asymmetric model "
                "takes a fixed statistical variance: 'expected' or 'observed')"
            )

        def part(t: Templates, key: str, signal: bool) -> np.ndarray:
            mask = np.asarray(t.is_signal) == signal
            return t.variations[key][mask].sum(axis=0)

        asym = {
            x.name: AsymmetricShift(
                *(
                    np.concatenate([part(t, v.name, signal) for t in parts])
                    for signal in (True, False)
                    for v in (x.up, x.down)
                )
            )
            for x in parse_systematics(systematics)
            if not x.linearisable
        }
        # symmetric templates (fit.templates.symmetrise, the default) have no quadratic part:
        # their shifts are linear and the covariance form is the same chi2, in closed form
        asym = {k: v for k, v in asym.items() if not is_linear(v, s, b)}
    if asym:
        linear = {k: v for k, v in shifts.items() if k not in asym}
        variance = s + b if stat == "expected" else observed
        result, pieces = asymmetric_breakdown(observed, s, b, asym, linear, variance)
    else:
        result = fit_mu(observed, s, b, shifts, stat=stat)
        pieces = breakdown(observed, s, b, shifts, stat=stat)
    return {
        "mu_hat": float(result.mu_hat),
        "dmu_low": float(result.dmu_low),
        "dmu_high": float(result.dmu_high),
        "chi2_min": float(result.chi2_min),
        "n_control_bins": 0 if model.control_region is None else model.control_region.n_bins,
        "shift_model": chi2["shift_model"],
        "breakdown": {k: float(v) for k, v in pieces.items()},
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
    hist: str | Path,
    binning: str | Path,
    pairs: str | Path | None = None,
    data_scores: str | Path | None = None,
    chi2: str | Path,
) -> None:
    """Covariance chi2 of one classifier with the workspace's binning (+ control region)."""
    systematics = ctx.settings["systematics"]
    frames = load_histograms(hist, pairs)
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
    hist: str | Path,
    scan: str | Path,
    binning: str | Path,
    fit: str | Path,
    chi2: str | Path,
    pairs: str | Path | None = None,
    data_scores: str | Path | None = None,
    neyman: PathMap | None = None,
    methods: str | Path,
) -> None:
    """Rows of the method comparison for one classifier: linear, profile and chi2 at the two
    cut-and-count working points, and all four methods at the profile-likelihood optimum;
    plus a neyman row at every working point whose observed Neyman interval is given
    (``neyman__<working point>``, the ``neyman`` rule's JSON)."""
    from ..stat import methods as stat_methods
    from ..stat.fit import fit_workspace
    from ..table import method_row, row_base, shift_row_columns, working_points

    settings = ctx.settings
    systematics, fit_cfg = settings["systematics"], settings["fit"]
    names = [s["name"] for s in systematics]
    symmetrise = settings["scan"]["symmetrise"]
    frames = load_histograms(hist, pairs)
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
        spec, model = workspace_for_edges(
            fit_cfg, systematics, frames, edges, mc_stat=fit_cfg["mc_stat"], data_scores=observed
        )
        result = fit_workspace(spec, impacts=False, limits=False)
        add(stat_methods.profile_from_breakdown(result.mu_hat, result.breakdown, names), wp, row, 1)
        record = chi2_result(
            settings["chi2"], fit_cfg, systematics, frames, edges, observed, model=model
        )
        add(stat_methods.chi2_from_dict(record, names), wp, row, 1)
        add_neyman(rows, neyman, wp, clf=clf, scan_row=row, n_bins=1, names=names)

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
    add_neyman(rows, neyman, "profile_optimum", clf=clf, scan_row=row, n_bins=n_bins, names=names)
    io.write_table(pd.DataFrame(rows), methods, ctx.provenance(classifier=clf))


def neyman_result(record: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The neyman row's result from the ``neyman`` rule's record: mu-hat, the set's edges and
    dmu_tot = half its width; no breakdown (NaN: the set has no stat/syst split)."""
    from ..stat.methods import MethodResult, Term

    nan = Term(math.nan, math.nan, math.nan)
    mu, lo, hi = float(record["mu_hat"]), float(record["lo"]), float(record["hi"])
    return MethodResult(
        "neyman", mu, lo, hi, stat=nan, systematics=dict.fromkeys(names, nan), mc_stat=nan,
        syst=nan, total=Term(mu - lo, hi - mu, 0.5 * (hi - lo)),
    )  # fmt: skip


def add_neyman(
    rows: list[dict[str, Any]],
    neyman: PathMap | None,
    wp: str,
    *,
    clf: str,
    scan_row: pd.Series,
    n_bins: int,
    names: Sequence[str],
) -> None:
    """Append the neyman row of ``wp`` when its record is given, with the interval's edges
    (``mu_lo``, ``mu_hi``) and the construction and its flags in ``notes``."""
    from ..stat.neyman_binned import record_notes
    from ..table import method_row

    if not neyman or wp not in neyman:
        return
    record = json.loads(Path(neyman[wp]).read_text())
    row = method_row(
        neyman_result(record, names), classifier=clf, working_point=wp, scan_row=scan_row,
        n_bins=n_bins, names=names,
    )  # fmt: skip
    rows.append({**row, "mu_lo": float(record["lo"]), "mu_hi": float(record["hi"]),
                 "notes": record_notes(record)})  # fmt: skip


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
