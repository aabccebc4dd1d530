"""Figures of the threshold scan: AMS, uncertainty breakdown, score shapes, ROC, lumi projection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..errors import ConfigError, DataContractError
from ..grids import logit_edges
from ..histograms import squared_weights
from ..metrics import weighted_roc
from .labels import DEFAULT_LABELS, PlotLabels
from .projection import (
    LumiProjection,
    luminosity_crossover,
    plot_lumi_projection,
    project_with_luminosity,
)
from .style import (
    COLORS,
    DOWN_COLOR,
    UP_COLOR,
    OutPath,
    add_label,
    figure_style,
    logit_axis,
    new_figure,
    require,
    save_figure,
)

THRESHOLD_LABEL = "Classifier score threshold $t$ (selection: score > $t$; logit scale)"

# Curves with more points than this are thinned for drawing only (PDF size); numbers such as
# the AUC always use the full curve.
MAX_DRAWN_POINTS = 2000


def _finite(values: pd.Series | np.ndarray) -> np.ndarray:
    """Float copy with +-inf replaced by NaN (matplotlib draws NaN as a gap)."""
    arr = np.asarray(values, dtype=float).copy()
    arr[~np.isfinite(arr)] = np.nan
    return arr


def _valid_mask(scan: pd.DataFrame) -> np.ndarray:
    if "valid" in scan.columns:
        return scan["valid"].to_numpy(dtype=bool)
    return np.ones(len(scan), dtype=bool)


def _row_position(scan: pd.DataFrame, index: int, key: str) -> int:
    pos = int(index)
    if not 0 <= pos < len(scan):
        raise DataContractError(
            f"working point {key!r}: row {pos} outside the scan (0..{len(scan) - 1})"
        )
    return pos


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_DRAWN_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, MAX_DRAWN_POINTS).round().astype(int))
    return x[idx], y[idx]


# --------------------------------------------------------------------------- AMS


def plot_ams(
    scans: Mapping[str, pd.DataFrame],
    out: OutPath,
    *,
    higgsml: bool = True,
    working_points: Mapping[str, Mapping[str, int]] | None = None,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """AMS vs score threshold (logit axis) for every classifier, each maximum marked.

    Args:
        scans: classifier name -> scan table (columns threshold, ams, optionally ams_higgsml
            and valid).
        out: output stem or explicit ``.png``/``.pdf`` paths.
        higgsml: also draw the HiggsML AMS (b_reg added to B) dashed in the same colour.
        working_points: classifier -> {"max_ams": row position}; by default the maximum is
            taken over valid rows (the scan's minimum-yield condition).
        rlabel: text at the top right (default: sqrt(s) and luminosity of ``labels``).
        labels: readable names, sqrt(s) and luminosity.

    Returns:
        The written paths.
    """
    if not scans:
        raise DataContractError("plot_ams: no scan table given")
    with figure_style():
        fig, axes = new_figure()
        ax = axes[0, 0]
        for i, (name, scan) in enumerate(scans.items()):
            cols = ["threshold", "ams"] + (["ams_higgsml"] if higgsml else [])
            require(scan, cols, f"scan table of {name!r}")
            color = COLORS[i % len(COLORS)]
            thr = scan["threshold"].to_numpy(dtype=float)
            ams = _finite(scan["ams"])
            valid = _valid_mask(scan) & np.isfinite(ams)
            if working_points is not None and name in working_points:
                best = _row_position(scan, working_points[name]["max_ams"], "max_ams")
            elif valid.any():
                best = int(np.flatnonzero(valid)[np.nanargmax(ams[valid])])
            else:
                best = None
            label = labels.classifier(name)
            if best is not None:
                label += f" (max {ams[best]:.3g} at $t$ = {thr[best]:.3g})"
            ax.plot(thr, ams, color=color, lw=2, label=label)
            if higgsml:
                ax.plot(thr, _finite(scan["ams_higgsml"]), color=color, lw=1.5, ls="--")
            if best is not None:
                ax.plot(
                    thr[best], ams[best], marker="*", ms=16, color=color, mec="black", ls="none"
                )
        handles, texts = ax.get_legend_handles_labels()
        if higgsml:
            handles.append(Line2D([], [], color="grey", ls="--", lw=1.5))
            texts.append(r"dashed: HiggsML AMS ($b_{\mathrm{reg}}$ = 10)")
        handles.append(Line2D([], [], color="grey", marker="*", ms=12, mec="black", ls="none"))
        texts.append("maximum (valid rows)")
        ax.set_ylim(0, None)
        logit_axis(ax, np.concatenate([s["threshold"].to_numpy(float) for s in scans.values()]))
        ax.set_xlabel(THRESHOLD_LABEL)
        ax.set_ylabel(r"AMS, statistical only [$\sigma$]")
        ax.legend(handles, texts, loc="upper left", bbox_to_anchor=(0.0, 0.93))
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend above the curves
        add_label(ax, rlabel, labels=labels)
        return save_figure(fig, out)


# --------------------------------------------------------------------------- dmu breakdown


def plot_dmu_breakdown(
    scan: pd.DataFrame,
    working_points: Mapping[str, int],
    systematics: Sequence[str],
    out: OutPath,
    *,
    title: str | None = None,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """dmu_stat, each dmu_k, dmu_syst, dmu_mcstat (if present) and dmu_tot vs threshold.

    Only valid rows are drawn; invalid ones are shaded, those excluded by an N_eff guard
    (column ``excluded_by``) apart from the others. The y-axis is logarithmic and spans
    the components down to a decade below the smallest one and up to 20x the minimum total,
    so that the divergence of dmu_stat at tight cuts does not squash the interesting region.

    Args:
        scan: scan table of one classifier (threshold, dmu_stat, dmu_<k>, dmu_syst, dmu_tot).
        working_points: {"max_ams": row position, "min_dmu_tot": row position}.
        systematics: systematic names k (columns dmu_<k>).
        out: output stem or explicit ``.png``/``.pdf`` paths.
        title: legend title (e.g. the classifier name).
        rlabel: text at the top right.

    Returns:
        The written paths.
    """
    components = ["dmu_stat", *[f"dmu_{k}" for k in systematics], "dmu_syst", "dmu_tot"]
    require(scan, ["threshold", *components], "plot_dmu_breakdown: scan table")
    if "dmu_mcstat" in scan.columns:
        components.insert(-1, "dmu_mcstat")
    thr = scan["threshold"].to_numpy(dtype=float)
    valid = _valid_mask(scan)
    with figure_style():
        fig, axes = new_figure(figsize=(10.0, 6.5))
        ax = axes[0, 0]
        styles: dict[str, dict[str, Any]] = {
            "dmu_stat": {"color": "black", "ls": "--", "lw": 2, "label": "statistical"},
            "dmu_syst": {
                "color": "#bd1f01",
                "ls": "-.",
                "lw": 2,
                "label": "systematic (quadrature sum)",
            },
            "dmu_mcstat": {"color": "#009e73", "ls": (0, (5, 1, 1, 1)), "lw": 2,
                           "label": "MC statistics"},
            "dmu_tot": {"color": "#3f90da", "ls": "-", "lw": 3, "label": "total"},
        }  # fmt: skip
        syst_colors = [
            "#ffa90e",
            "#832db6",
            "#94a4a2",
            "#a96b59",
            "#e76300",
            "#92dadd",
            "#b9ac70",
            "#717581",
        ]
        positives = []
        for j, col in enumerate(components):
            y = _finite(scan[col])
            y[~valid | (y <= 0)] = np.nan
            style = styles.get(col) or {
                "color": syst_colors[(j - 1) % len(syst_colors)],
                "ls": ":",
                "lw": 2,
                "label": labels.parameter(col[4:]),
            }
            ax.plot(thr, y, **style)
            positives.append(y[np.isfinite(y)])
        tot = _finite(scan["dmu_tot"])
        tot[~valid] = np.nan
        allpos = np.concatenate(positives)
        if allpos.size:
            tot_min = np.nanmin(tot) if np.isfinite(tot).any() else np.nanmin(allpos)
            # a systematic crossing zero (an up and a down shift that cancel) dips towards 0 on
            # a log axis: floor the axis at the 5th percentile of the curves, not their minimum
            ymin = max(np.percentile(allpos, 5), tot_min * 1e-3) / 2.0
            ymax = min(np.max(allpos), 20.0 * tot_min) * 1.5
            ax.set_yscale("log")
            ax.set_ylim(ymin, ymax)
        neff = np.zeros(len(scan), dtype=bool)
        if "excluded_by" in scan.columns:
            guards = scan["excluded_by"].astype(str)
            neff = guards.isin(["min_neff_signal", "min_neff_background"]).to_numpy() & ~valid
        _shade(ax, thr, ~valid & ~neff, "below minimum yield", color="0.9")
        _shade(ax, thr, neff, r"below minimum $N_{\mathrm{eff}}$ (MC statistics)",
               facecolor="#fbe9d6", edgecolor="#e0a060", hatch="//", lw=0)  # fmt: skip
        logit_axis(ax, thr)
        wp_styles = {
            "max_ams": ("max AMS", "#717581", (0, (6, 3))),
            "min_dmu_tot": (r"min $\delta\mu_{\mathrm{tot}}$", "#3f90da", (0, (1, 1.5))),
        }
        for key, (text, color, ls) in wp_styles.items():
            if key not in working_points or working_points[key] is None:
                continue
            pos = _row_position(scan, working_points[key], key)
            ax.axvline(
                thr[pos],
                color=color,
                ls=ls,
                lw=1.8,
                label=f"{text}: $t$ = {thr[pos]:.3g}, "
                rf"$\delta\mu_{{\mathrm{{tot}}}}$ = {scan['dmu_tot'].iloc[pos]:.3g}",
            )
        ax.set_xlabel(THRESHOLD_LABEL)
        ax.set_ylabel(r"Uncertainty on the signal strength $\delta\mu$")
        ax.legend(
            loc="upper left",
            ncols=2,
            title=title,
            bbox_to_anchor=(0.0, 0.93),
        )
        lo, hi = ax.get_ylim()
        if ax.get_yscale() == "log":
            ax.set_ylim(lo, hi * (hi / lo) ** 0.5)  # headroom for the two-column legend
        add_label(ax, rlabel, labels=labels)
        return save_figure(fig, out)


def _shade(ax: Axes, thr: np.ndarray, mask: np.ndarray, label: str, **style: Any) -> None:
    """Shade the runs of thresholds where ``mask`` is true (one legend entry)."""
    if not mask.any() or len(thr) < 2:
        return
    step = np.diff(thr)
    half = np.r_[step[0], step] / 2.0
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    for k, (start, stop) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        ax.axvspan(
            thr[start] - half[start],
            thr[stop - 1] + half[stop - 1],
            zorder=0,
            label=label if k == 0 else None,
            **style,
        )


# --------------------------------------------------------------------------- score shapes


def plot_score_variations(
    scores: Mapping[str, pd.DataFrame],
    variations: Sequence[str],
    out: OutPath,
    bins: int | Sequence[float] = 50,
    *,
    title: str | None = None,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Weighted score distributions, nominal vs each variation, signal and background apart
    (up variations red, down blue; logit score axis when the scores lie in [0, 1]).

    Args:
        scores: variation name -> score frame (label, weight, score); needs "nominal".
        variations: variations to overlay (the feature-changing ones, up and down).
        out: output stem or explicit ``.png``/``.pdf`` paths.
        bins: number of equal bins over the score range ([0, 1] if the scores lie in it) or
            explicit edges.
        title: shown in the signal panel's legend (e.g. the classifier name).
        rlabel: text at the top right.

    Returns:
        The written paths.
    """
    names = ["nominal", *[v for v in variations if v != "nominal"]]
    missing = [v for v in names if v not in scores]
    if missing:
        raise DataContractError(
            f"plot_score_variations: no score frame for variation(s) {missing}; "
            f"given: {list(scores)}"
        )
    for v in names:
        require(scores[v], ["label", "weight", "score"], f"score frame of variation {v!r}")
    edges = _score_edges([scores[v]["score"].to_numpy(dtype=float) for v in names], bins)
    with figure_style():
        fig, axes = new_figure(
            2, 2, figsize=(14.0, 7.5), sharex="col", gridspec_kw={"height_ratios": [3, 1]}
        )
        for col, (lab, what) in enumerate([(1, "Signal"), (0, "Background")]):
            ax, rax = axes[0, col], axes[1, col]
            hists = {}
            for v in names:
                df = scores[v]
                sel = df["label"].to_numpy() == lab
                hists[v] = right_closed_histogram(
                    df["score"].to_numpy(dtype=float)[sel],
                    edges,
                    df["weight"].to_numpy(dtype=float)[sel],
                )
            nom = hists["nominal"]
            df = scores["nominal"]
            sel = df["label"].to_numpy() == lab
            sumw2 = right_closed_histogram(
                df["score"].to_numpy(dtype=float)[sel], edges, squared_weights(df)[sel]
            )
            rel = np.divide(np.sqrt(sumw2), nom, out=np.full_like(nom, np.nan), where=nom > 0)
            ax.stairs(nom, edges, color="black", lw=2, label="Nominal")
            rax.stairs(1.0 + rel, edges, baseline=1.0 - rel, fill=True, color="0.85")
            ratio_dev = [0.02]
            for j, v in enumerate(names[1:]):
                up = v.endswith("_up")
                color = UP_COLOR if up else DOWN_COLOR
                ls = ["-", "--", ":", "-."][(j // 2) % 4]
                name = labels.parameter(v.rsplit("_", 1)[0]) if v.endswith(("_up", "_down")) else v
                text = f"{name} {'up' if up else 'down'}" if v.endswith(("_up", "_down")) else name
                ax.stairs(hists[v], edges, color=color, lw=1.5, ls=ls, label=text)
                ratio = np.divide(hists[v], nom, out=np.full_like(nom, np.nan), where=nom > 0)
                rax.stairs(ratio, edges, color=color, lw=1.5, ls=ls, baseline=None)
                if np.isfinite(ratio).any():
                    ratio_dev.append(float(np.nanmax(np.abs(ratio - 1.0))))
            if (nom > 0).any():
                ax.set_yscale("log")
                top = max(float(np.max(h)) for h in hists.values())
                bottom = float(np.min(nom[nom > 0]))
                ax.set_ylim(bottom / 3.0, top * (top / bottom) ** 0.5 * 3.0)
            rax.axhline(1.0, color="black", lw=1)
            dev = min(max(ratio_dev) * 1.15, 0.5)
            rax.set_ylim(1.0 - dev, 1.0 + dev)
            if edges[0] >= 0.0 and edges[-1] <= 1.0:
                logit_axis(rax, edges)
                rax.set_xlabel("Classifier score (logit scale)")
            else:
                rax.set_xlim(edges[0], edges[-1])
                rax.set_xlabel("Classifier score")
            ax.set_ylabel("Events / bin")
            rax.set_ylabel("Var. / nom.")
            leg_title = what if col == 1 or not title else f"{title}: {what}"
            handles, texts = ax.get_legend_handles_labels()
            handles.append(Patch(color="0.85"))
            texts.append("nominal MC stat. (ratio)")
            ax.legend(handles, texts, loc="upper center", title=leg_title, ncols=2)
        add_label(axes[0, 0], labels=labels)
        add_label(axes[0, 1], rlabel, labels=labels)
        return save_figure(fig, out)


def right_closed_histogram(
    values: np.ndarray, edges: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Weighted histogram with bins (e_i, e_i+1] (the first one closed: [e_0, e_1]), the
    convention of the scan and the templates: the fine histograms' bins stand at their upper
    edges, so bins on fine-grid edges get exactly their events.

    Example:
        >>> right_closed_histogram(np.array([0.0, 0.5, 0.7, 1.0]), np.array([0.0, 0.5, 1.0]),
        ...                        np.ones(4)).tolist()
        [2.0, 2.0]
    """
    idx = np.searchsorted(edges, values, side="left") - 1
    idx[values == edges[0]] = 0
    inside = (idx >= 0) & (idx < edges.size - 1)
    return np.bincount(idx[inside], weights=weights[inside], minlength=edges.size - 1)


def _score_edges(arrays: Sequence[np.ndarray], bins: int | Sequence[float]) -> np.ndarray:
    if not isinstance(bins, int | np.integer):
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigError("plots.score_bins: edges must be a strictly increasing sequence")
        return edges
    if bins < 1:
        raise ConfigError(f"plots.score_bins: need at least one bin, got {bins}")
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    if finite.size == 0:
        raise DataContractError("plot_score_variations: no finite score")
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0.0 and hi <= 1.0:
        return logit_edges(bins)
    elif hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


# --------------------------------------------------------------------------- ROC


def plot_roc(
    scores_nominal: Mapping[str, pd.DataFrame],
    out: OutPath,
    *,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Weighted ROC curves of every classifier (nominal scores), AUC in the legend.

    Left: signal vs background efficiency; right: background rejection 1/eps_B vs signal
    efficiency (log scale), the HEP view of the high-purity region. Negative weights are kept
    (see :func:`systpipe.metrics.weighted_roc`).

    Args:
        scores_nominal: classifier name -> nominal score frame (label, weight, score).
        out: output stem or explicit ``.png``/``.pdf`` paths.
        rlabel: text at the top right.

    Returns:
        The written paths.
    """
    if not scores_nominal:
        raise DataContractError("plot_roc: no score frame given")
    with figure_style():
        fig, axes = new_figure(1, 2, figsize=(14.0, 6.5))
        ax, rax = axes[0]
        for i, (name, df) in enumerate(scores_nominal.items()):
            require(df, ["label", "weight", "score"], f"score frame of {name!r}")
            roc = weighted_roc(
                df["label"].to_numpy(), df["score"].to_numpy(), df["weight"].to_numpy()
            )
            color = COLORS[i % len(COLORS)]
            label = f"{labels.classifier(name)} (AUC = {roc.auc:.4f})"
            ax.plot(*_thin(roc.fpr, roc.tpr), color=color, lw=2, label=label)
            keep = roc.fpr > 0
            rx, ry = _thin(roc.tpr[keep], 1.0 / roc.fpr[keep])
            rax.plot(rx, ry, color=color, lw=2, label=label)
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="random (AUC = 0.5)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(r"Background efficiency $\varepsilon_B$ (weighted)")
        ax.set_ylabel(r"Signal efficiency $\varepsilon_S$ (weighted)")
        ax.legend(loc="lower right")
        rax.set_yscale("log")
        rax.set_xlim(0, 1)
        lo, hi = rax.get_ylim()
        rax.set_ylim(max(lo, 1.0) * 0.8, hi * 2.0)
        rax.set_xlabel(r"Signal efficiency $\varepsilon_S$ (weighted)")
        rax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
        rax.legend(loc="upper right")
        add_label(ax, labels=labels)
        add_label(rax, rlabel, labels=labels)
        return save_figure(fig, out)


__all__ = [
    "LumiProjection",
    "luminosity_crossover",
    "plot_ams",
    "plot_dmu_breakdown",
    "plot_lumi_projection",
    "plot_roc",
    "plot_score_variations",
    "project_with_luminosity",
]
