"""File-level steps of the statistical model: workspace, fit, chi2, toys and method table."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io
from .config import toy_count
from .errors import DataContractError
from .provenance import derive_seed, file_provenance
from .runner import Job, _prefixed

log = logging.getLogger(__name__)

WORKING_POINT_ORDER = ("max_ams", "min_dmu_tot", "profile_optimum")
METHOD_ORDER = ("shift", "linear", "profile", "chi2")


def _frames(job: Job) -> dict[str, pd.DataFrame]:
    from .pipeline import load_variation_scores

    return load_variation_scores(
        job.config, scores=_prefixed(job.input, "score__"), weights=_prefixed(job.input, "weight__")
    )


def _names(config: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in config["systematics"]]


def observed_counts(
    config: Mapping[str, Any], templates: Any, data_scores: pd.DataFrame | None = None
) -> np.ndarray:
    """What the fits see as data in the bins of ``templates``: the Asimov expectation at
    ``fit.data.asimov_mu`` (default), or the weighted histogram of the scored data events.

    Bins are right-closed with overflow into the last bin, exactly as the templates.
    """
    data_cfg = config["fit"]["data"]
    if data_cfg["source"] == "asimov":
        scale = np.where(np.asarray(templates.is_signal), float(data_cfg["asimov_mu"]), 1.0)
        return (templates.nominal * scale[:, None]).sum(axis=0)
    if data_scores is None:
        raise DataContractError("fit.data.source is 'file' but no scored data events were given")
    from .templates import histogram

    return histogram(data_scores["score"].to_numpy(), data_scores["weight"].to_numpy(), templates.bin_edges)


def _workspace_for_edges(
    config: Mapping[str, Any], frames: Mapping[str, pd.DataFrame], edges, *, mc_stat: bool,
    data_scores: pd.DataFrame | None = None,
):
    from .fit import build_workspace
    from .templates import build_templates

    fit = config["fit"]
    templates = build_templates(frames, bin_edges=np.asarray(edges, dtype=float), group_by=fit["group_by"])
    return build_workspace(
        templates, config["systematics"], mc_stat=mc_stat, mu_bounds=tuple(fit["poi_bounds"]),
        data=observed_counts(config, templates, data_scores),
    ), templates


def _data_scores(job: Job) -> pd.DataFrame | None:
    path = job.input["data_scores"] if "data_scores" in job.input else None
    return None if path is None else io.read_table(path, required=("score", "weight"))


def choose_binning(
    config: Mapping[str, Any], frames: Mapping[str, pd.DataFrame], extra_thresholds: Sequence[float] = ()
) -> dict[str, Any]:
    """Fixed binning from config, or threshold and binning that minimise the expected
    profile-likelihood dmu_tot (the systematics-aware objective of reference notebook 003).

    ``extra_thresholds`` (the cut-and-count working points) join the candidate grid, so the
    profile-likelihood optimum is never worse than a working point the table also reports.
    """
    from .fit import optimise_binning
    from .scan import default_thresholds
    from .templates import default_bin_edges

    fit = config["fit"]
    if fit["binning"] == "fixed":
        edges = default_bin_edges(n_bins=fit["n_bins"], score_min=fit["score_min"], score_max=fit["score_max"])
        return {"method": "fixed", "threshold": float(edges[0]), "n_bins": int(fit["n_bins"]), "bin_edges": edges.tolist()}
    opt = fit["optimise"]
    thr = opt["thresholds"]
    choice = optimise_binning(
        frames,
        config["systematics"],
        candidate_thresholds=sorted({*default_thresholds(thr["start"], thr["stop"], thr["step"]).tolist(),
                                     *(float(t) for t in extra_thresholds)}),
        n_bins_options=opt["n_bins_options"],
        score_max=fit["score_max"],
        group_by=fit["group_by"],
        mc_stat=fit["mc_stat"],
        min_bin_yield=opt["min_bin_yield"],
    )
    log.info("optimised binning: threshold %.3f, %d bins, expected dmu_tot %.4f", choice.threshold, choice.n_bins, choice.dmu_tot)
    return {
        "method": "optimise",
        "threshold": float(choice.threshold),
        "n_bins": int(choice.n_bins),
        "bin_edges": np.asarray(choice.bin_edges).tolist(),
        "expected_dmu_tot": float(choice.dmu_tot),
        "expected_dmu_stat": float(choice.dmu_stat),
        "candidates": choice.candidates.replace([np.inf, -np.inf], None).to_dict(orient="records"),
    }


def workspace(job: Job) -> None:
    """pyhf workspace of one classifier's score histograms with the chosen binning."""
    from .scan import working_points

    frames = _frames(job)
    scan = io.read_table(job.input["scan"])
    extra = [float(scan["threshold"].iloc[i]) for i in working_points(scan).values()]
    binning = choose_binning(job.config, frames, extra_thresholds=extra)
    spec, _ = _workspace_for_edges(
        job.config, frames, binning["bin_edges"], mc_stat=job.config["fit"]["mc_stat"], data_scores=_data_scores(job)
    )
    io.write_json(spec, job.output["workspace"])
    io.write_json(binning, job.output["binning"])


def _stem(path: Any) -> Path:
    return Path(str(path)).with_suffix("")


def fit(job: Job) -> None:
    """Profile-likelihood fit with breakdown, impacts, pulls, Z0 and CLs limit, plus plots."""
    from . import fit_plots
    from .fit import fit_result_to_dict, fit_workspace

    spec = json.loads(Path(job.input["workspace"]).read_text())
    binning = json.loads(Path(job.input["binning"]).read_text())
    cfg = job.config["fit"]
    result = fit_workspace(spec, impacts=cfg["impacts"], limits=cfg["limits"])
    log.info(
        "mu_hat = %.4f -%.4f +%.4f (%d fits, %.2f s)",
        result.mu_hat, result.dmu_down, result.dmu_up, result.n_fits, result.elapsed_s,
    )
    io.write_json({**fit_result_to_dict(result), "binning": binning}, job.output["fit"])
    edges = binning["bin_edges"]
    fit_plots.plot_impacts(result, _stem(job.output["impacts"]))
    fit_plots.plot_pulls(result, _stem(job.output["pulls"]))
    fit_plots.plot_correlation(result, _stem(job.output["correlation"]))
    fit_plots.plot_distribution(spec, _stem(job.output["prefit"]), bin_edges=edges)
    fit_plots.plot_distribution(spec, _stem(job.output["postfit"]), result=result, bin_edges=edges)


def _chi2_inputs(
    config: Mapping[str, Any], frames: Mapping[str, pd.DataFrame], edges: Sequence[float],
    data_scores: pd.DataFrame | None = None,
):
    """(observed, s, b, shifts, n_control) over control-region bins + signal-region bins."""
    from .templates import build_templates

    cfg = config["chi2"]
    edges = np.asarray(edges, dtype=float)
    n_control = 0
    if cfg["control_region"] and edges[0] > cfg["control_min"]:
        control = np.linspace(cfg["control_min"], edges[0], cfg["control_bins"] + 1)[:-1]
        n_control = len(control)
        edges = np.concatenate([control, edges])
    templates = build_templates(frames, bin_edges=edges, group_by="label")
    signal = np.asarray(templates.is_signal)
    s = templates.nominal[signal].sum(axis=0)
    b = templates.nominal[~signal].sum(axis=0)
    shifts = {}
    for name in _names(config):
        up = templates.variations[f"{name}_up"].sum(axis=0)
        down = templates.variations[f"{name}_down"].sum(axis=0)
        shifts[name] = (up - down) / 2.0
    return observed_counts(config, templates, data_scores), s, b, shifts, n_control


def chi2_fit(
    config: Mapping[str, Any], frames: Mapping[str, pd.DataFrame], edges: Sequence[float],
    data_scores: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Covariance chi2 on the data of ``fit.data`` (Asimov by default): mu-hat, Delta chi2 = 1
    interval and breakdown."""
    from .chi2 import breakdown, fit_mu

    observed, s, b, shifts, n_control = _chi2_inputs(config, frames, edges, data_scores)
    stat = config["chi2"]["stat"]
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


def chi2(job: Job) -> None:
    """Covariance chi2 of one classifier with the workspace's binning (+ control region)."""
    frames = _frames(job)
    binning = json.loads(Path(job.input["binning"]).read_text())
    out = chi2_fit(job.config, frames, binning["bin_edges"], _data_scores(job))
    log.info("chi2: mu_hat %.4f, interval -%.4f +%.4f", out["mu_hat"], out["dmu_low"], out["dmu_high"])
    io.write_json(out, job.output["chi2"])


def toys(job: Job) -> None:
    """One chunk of pseudo-experiments (scatter): toys chunk*chunk_size .. +chunk_size-1."""
    from .toys import prepare, run_toys

    cfg = job.config["toys"]
    clf, mode, chunk = job.wildcards["clf"], job.wildcards["mode"], int(job.wildcards["chunk"])
    start = chunk * cfg["chunk_size"]
    count = max(0, min(cfg["chunk_size"], toy_count(cfg, mode) - start))
    spec = json.loads(Path(job.input["workspace"]).read_text())
    setup = prepare(spec)
    seed = derive_seed(job.config["seed"], "toys", clf)
    log.info("toys %s chunk %d: %d toys from %d, methods %s", mode, chunk, count, start, cfg["methods"])
    frame = run_toys(
        setup, mode=mode, seed=seed, start=start, count=count, methods=cfg["methods"],
        symmetrise=job.config["scan"]["symmetrise"],
    )
    io.write_table(frame, job.output["toys"], file_provenance(job.config, "toys", classifier=clf, mode=mode, chunk=chunk))


def toys_summary(job: Job) -> None:
    """Gather the toy chunks: coverage, width, bias and challenge score per mode and method."""
    from .table import write_table
    from .toys import summarise

    frames = [io.read_table(p) for p in job.input["toys"]]
    summary = summarise(frames)
    summary.insert(0, "classifier", job.wildcards["clf"])
    write_table(summary, str(job.output["parquet"]).removesuffix(".parquet"), provenance=file_provenance(job.config, "toys_summary"))


def _scan_row(scan: pd.DataFrame, threshold: float) -> pd.Series:
    idx = int(np.argmin(np.abs(scan["threshold"].to_numpy() - threshold)))
    if not math.isclose(scan["threshold"].iloc[idx], threshold, abs_tol=1e-9):
        log.warning("threshold %.6f not on the scan grid; using %.6f", threshold, scan["threshold"].iloc[idx])
    return scan.iloc[idx]


def _linear_row(config: Mapping[str, Any], row: pd.Series) -> dict[str, float]:
    """Linear propagation for norm systematics; shape systematics have no Jacobian in the
    notebook's functor, so their symmetrised shift (its first-order equivalent) is used."""
    out = {"dmu_stat": float(row["dmu_stat"])}
    for syst in config["systematics"]:
        key = f"dmu_lin_{syst['name']}" if syst["type"] == "norm" else f"dmu_{syst['name']}"
        out[f"dmu_{syst['name']}"] = float(row[key])
    syst2 = sum(v**2 for k, v in out.items() if k != "dmu_stat")
    out["dmu_syst_tot"] = math.sqrt(syst2)
    out["dmu_tot"] = math.sqrt(out["dmu_stat"] ** 2 + syst2)
    out["dmu_mcstat"] = 0.0
    return _half_widths(config, out)


def _half_widths(config: Mapping[str, Any], out: dict[str, float], asym: Mapping[str, Mapping[str, float]] | None = None):
    """For methods other than the shift method, d_up/d_down hold the upper and (negative)
    lower half-width of each systematic's contribution, so the table has no empty cells."""
    for name in _names(config):
        parts = (asym or {}).get(name)
        out[f"d_up_{name}"] = parts["up"] if parts else out[f"dmu_{name}"]
        out[f"d_down_{name}"] = -(parts["down"] if parts else out[f"dmu_{name}"])
    return out


def _chi2_row(config: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, float]:
    parts = result["breakdown"]
    out = {"mu_hat": result["mu_hat"], "dmu_stat": parts["stat"]}
    for name in _names(config):
        out[f"dmu_{name}"] = parts.get(name, 0.0)
    out["dmu_tot"] = 0.5 * (result["dmu_low"] + result["dmu_high"])
    out["dmu_syst_tot"] = math.sqrt(max(out["dmu_tot"] ** 2 - out["dmu_stat"] ** 2, 0.0))
    out["dmu_mcstat"] = 0.0
    return _half_widths(config, out)


def _profile_row(config: Mapping[str, Any], breakdown: Mapping[str, Mapping[str, float]], mu_hat: float) -> dict[str, float]:
    out = {"mu_hat": mu_hat, "dmu_stat": breakdown["stat"]["sym"]}
    for name in _names(config):
        out[f"dmu_{name}"] = breakdown.get(name, {"sym": 0.0})["sym"]
    out["dmu_mcstat"] = breakdown.get("mc_stat", {"sym": 0.0})["sym"]
    out["dmu_syst_tot"] = breakdown["syst"]["sym"]
    out["dmu_tot"] = breakdown["total"]["sym"]
    return _half_widths(config, out, breakdown)


def method_rows(job: Job) -> None:
    """Rows of the method comparison for one classifier: linear, profile and chi2 at the two
    cut-and-count working points, and all four methods at the profile-likelihood optimum."""
    from .fit import fit_workspace
    from .scan import working_points

    config, clf = job.config, job.wildcards["clf"]
    frames = _frames(job)
    scan = io.read_table(job.input["scan"])
    binning = json.loads(Path(job.input["binning"]).read_text())
    fitted = json.loads(Path(job.input["fit"]).read_text())
    chi2_result = json.loads(Path(job.input["chi2"]).read_text())
    score_max = config["fit"]["score_max"]
    data_scores = _data_scores(job)
    rows: list[dict[str, Any]] = []

    def base(wp: str, row: pd.Series, n_bins: int) -> dict[str, Any]:
        return {
            "classifier": clf, "working_point": wp, "threshold": float(row["threshold"]),
            "S": float(row["S_nominal"]), "B": float(row["B_nominal"]), "AMS": float(row["ams"]),
            "Z_asimov": float(row["z_asimov"]), "dmu_lin": float(row["dmu_lin"]), "n_bins": n_bins,
        }

    for wp, index in working_points(scan).items():
        row = scan.iloc[index]
        t = float(row["threshold"])
        rows.append({**base(wp, row, 1), "method": "linear", "mu_hat": 1.0, **_linear_row(config, row)})
        # same model ingredients as the workspace (MC statistics included when configured),
        # so that every profile row of the table is comparable
        spec, _ = _workspace_for_edges(
            config, frames, [t, score_max], mc_stat=config["fit"]["mc_stat"], data_scores=data_scores
        )
        result = fit_workspace(spec, impacts=False, limits=False)
        rows.append({**base(wp, row, 1), "method": "profile", **_profile_row(config, result.breakdown, result.mu_hat)})
        rows.append({**base(wp, row, 1), "method": "chi2", **_chi2_row(config, chi2_fit(config, frames, [t, score_max], data_scores))})

    row = _scan_row(scan, binning["threshold"])
    n_bins = int(binning["n_bins"])
    shift = {"dmu_stat": float(row["dmu_stat"]), "dmu_syst_tot": float(row["dmu_syst"]), "dmu_tot": float(row["dmu_tot"]), "dmu_mcstat": 0.0}
    shift |= {f"dmu_{n}": float(row[f"dmu_{n}"]) for n in _names(config)}
    shift |= {f"d_up_{n}": float(row[f"d_up_{n}"]) for n in _names(config)}
    shift |= {f"d_down_{n}": float(row[f"d_down_{n}"]) for n in _names(config)}
    rows.append({**base("profile_optimum", row, 1), "method": "shift", "mu_hat": 1.0, **shift})
    rows.append({**base("profile_optimum", row, 1), "method": "linear", "mu_hat": 1.0, **_linear_row(config, row)})
    rows.append({**base("profile_optimum", row, n_bins), "method": "profile", **_profile_row(config, fitted["breakdown"], fitted["mu_hat"])})
    rows.append({**base("profile_optimum", row, n_bins), "method": "chi2", **_chi2_row(config, chi2_result)})
    io.write_table(pd.DataFrame(rows), job.output["methods"], file_provenance(config, "methods", classifier=clf))


def merge_method_rows(shift_table: pd.DataFrame, methods: Sequence[pd.DataFrame], classifiers: Sequence[str]) -> pd.DataFrame:
    """The final table: shift rows of the cut-and-count table plus the other methods' rows,
    ordered by classifier, working point and method."""
    shift = shift_table.assign(mu_hat=1.0, dmu_mcstat=0.0, n_bins=1)
    info = shift_table.drop_duplicates("classifier").set_index("classifier")[["AUC"]]
    others = pd.concat(methods, ignore_index=True)
    others = others.join(info, on="classifier")
    table = pd.concat([shift, others], ignore_index=True)
    table = table[[*shift.columns]]
    order = {
        "classifier": {c: i for i, c in enumerate(classifiers)},
        "working_point": {w: i for i, w in enumerate(WORKING_POINT_ORDER)},
        "method": {m: i for i, m in enumerate(METHOD_ORDER)},
    }
    keys = table[list(order)].apply(lambda col: col.map(order[col.name]))
    table = table.iloc[np.lexsort([keys[c] for c in reversed(list(order))])].reset_index(drop=True)
    table["n_bins"] = table["n_bins"].astype("int64")
    return table
