"""Validation figures: likelihood scan, coverage, significance with systematics, MC counts per
bin and the train-versus-test (overtraining) check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..errors import DataContractError
from ..histograms import raw_counts, squared_weights
from ..likelihood_scan import crossings
from ..templates import histogram
from .labels import DEFAULT_LABELS, PlotLabels
from .style import (
    BACKGROUND_COLORS,
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

#: The nominal coverage of a 68.27 % interval.
NOMINAL_COVERAGE = 0.6827


def plot_nll_scan(
    scan: pd.DataFrame, out: OutPath, *, labels: PlotLabels = DEFAULT_LABELS, text: str = ""
) -> list[Path]:
    """-2 Delta ln L(mu), total (profiled) and statistical only, with the 1 and 2 sigma
    crossings marked and written in the legend."""
    require(scan, ["mu", "total", "stat"], "plot_nll_scan: scan table")
    mu = scan["mu"].to_numpy(float)
    with figure_style():
        fig, axes = new_figure(figsize=(8.0, 6.5))
        ax = axes[0, 0]
        styles = {"total": ("black", "-", "Total (stat. + syst.)"),
                  "stat": ("#3f90da", "--", "Statistical only")}  # fmt: skip
        for col, (color, ls, name) in styles.items():
            ok = scan[col].notna().to_numpy()
            mu, y = scan["mu"].to_numpy(float)[ok], scan[col].to_numpy(float)[ok]
            lo1, hi1 = crossings(mu, y, 1.0)
            lo2, hi2 = crossings(mu, y, 4.0)
            mid = float(mu[np.nanargmin(y)])
            label = rf"{name}: $\mu$ = {mid:.2f}$^{{+{hi1 - mid:.2f}}}_{{-{mid - lo1:.2f}}}$"
            ax.plot(mu, y, color=color, ls=ls, lw=2.2, label=label)
            for x in (lo1, hi1, lo2, hi2):
                if np.isfinite(x):
                    ax.plot([x, x], [0, 1.0 if x in (lo1, hi1) else 4.0], color=color, ls=":",
                            lw=1.2)  # fmt: skip
        for level, name in ((1.0, r"$1\sigma$"), (4.0, r"$2\sigma$")):
            ax.axhline(level, color="grey", lw=1, ls=(0, (4, 2)))
            ax.text(scan["mu"].max(), level, f" {name}", va="bottom", ha="right", color="grey")
        mu = scan.dropna(subset=["total"])["mu"].to_numpy(float)
        ax.set_xlim(mu[0], mu[-1])
        ax.set_ylim(0, max(6.0, min(float(np.nanmax(scan["total"])), 9.0)) * 1.3)
        ax.set_xlabel(r"Signal strength $\mu$")
        ax.set_ylabel(r"$-2\,\Delta\ln L(\mu)$")
        ax.legend(loc="upper right", fontsize="x-small")
        add_label(ax, labels=labels, text=text or None)
        return save_figure(fig, out)


def plot_coverage(
    coverage: pd.DataFrame,
    out: OutPath,
    *,
    labels: PlotLabels = DEFAULT_LABELS,
    text: str = "",
) -> list[Path]:
    """Coverage of each method's 68.27 % interval per toy mode, with its binomial error and
    the nominal 0.6827 line."""
    require(coverage, ["mode", "method", "coverage", "coverage_err"], "coverage table")
    if coverage.empty:
        raise DataContractError("plot_coverage: the coverage table has no rows")
    order = ("shift", "linear", "profile", "chi2", "frequentist", "challenge", "bootstrap")
    rank = {name: i for i, name in enumerate(order)}
    methods = sorted(dict.fromkeys(coverage["method"]), key=lambda m: rank.get(m, 99))
    modes = sorted(dict.fromkeys(coverage["mode"]), key=lambda m: rank.get(m, 99))
    x = {m: i for i, m in enumerate(methods)}
    with figure_style():
        fig, axes = new_figure(figsize=(8.5, 6.0))
        ax = axes[0, 0]
        ax.axhline(NOMINAL_COVERAGE, color="black", lw=1.2, ls="--", label="nominal 0.6827")
        width = 0.6 / max(len(modes), 1)
        for j, mode in enumerate(modes):
            rows = coverage[coverage["mode"] == mode]
            pos = np.array([x[m] for m in rows["method"]]) + (j - (len(modes) - 1) / 2) * width
            ax.errorbar(pos, rows["coverage"], yerr=rows["coverage_err"], fmt="os^D"[j % 4],
                        color=COLORS[j % len(COLORS)], ms=7, capsize=3,
                        label=f"{mode} toys")  # fmt: skip
        ax.set_xticks(range(len(methods)), methods)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(0.0, 1.25)
        ax.set_xlabel("Method")
        ax.set_ylabel("Coverage of the 68.27 % interval")
        ax.legend(loc="lower right", ncols=2, fontsize="x-small")
        add_label(ax, labels=labels, text=text or None)
        return save_figure(fig, out)


def plot_significance(
    scans: Mapping[str, pd.DataFrame],
    out: OutPath,
    *,
    fit_z0: Mapping[str, tuple[float, float]] | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Left: the Asimov significance with the background uncertainty sigma_b against the
    threshold, with the profile fit's expected Z0 (threshold, Z0) per classifier; right: the
    statistical-only AMS for comparison. Logit threshold axes."""
    if not scans:
        raise DataContractError("plot_significance: no scan table given")
    with figure_style():
        fig, axes = new_figure(1, 2, figsize=(15.0, 6.5))
        zax, aax = axes[0]
        for i, (name, scan) in enumerate(scans.items()):
            require(scan, ["threshold", "z_asimov", "ams"], f"scan table of {name!r}")
            color = COLORS[i % len(COLORS)]
            thr = scan["threshold"].to_numpy(float)
            valid = scan["valid"].to_numpy(bool) if "valid" in scan else np.ones(len(thr), bool)
            z = np.where(valid, scan["z_asimov"].to_numpy(float), np.nan)
            ams = np.where(valid, scan["ams"].to_numpy(float), np.nan)
            best = int(np.nanargmax(z)) if np.isfinite(z).any() else None
            zlabel = labels.classifier(name)
            if best is not None:
                zlabel += f" (max {z[best]:.2f} at $t$ = {thr[best]:.3g})"
            zax.plot(thr, z, color=color, lw=2, label=zlabel)
            aax.plot(thr, ams, color=color, lw=2, label=labels.classifier(name))
            if fit_z0 and name in fit_z0:
                t0, z0 = fit_z0[name]
                zax.plot(t0, z0, marker="*", ms=15, color=color, mec="black", ls="none")
        handles, names = zax.get_legend_handles_labels()
        if fit_z0:
            handles.append(Line2D([], [], marker="*", ms=12, color="grey", mec="black", ls="none"))
            names.append(r"profile fit: expected $Z_0$ (binned, all systematics)")
        for ax in (zax, aax):
            ax.set_ylim(0, None)
            logit_axis(ax, np.concatenate([s["threshold"].to_numpy(float) for s in scans.values()]))
            ax.set_xlabel("Classifier score threshold $t$ (logit scale)")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.4)
        zax.set_ylabel(r"Expected significance with systematics $Z_A(\sigma_b)$ [$\sigma$]")
        aax.set_ylabel(r"AMS, statistical only [$\sigma$]")
        zax.legend(handles, names, loc="upper left", bbox_to_anchor=(0.0, 0.93), fontsize="x-small")
        aax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.93), fontsize="x-small")
        add_label(zax, labels=labels)
        add_label(aax, labels=labels)
        return save_figure(fig, out)


def mc_counts(
    scores: pd.DataFrame, edges: Sequence[float] | np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """process -> (raw MC events, effective events (sum w)^2 / sum w^2) per bin of ``edges``.

    Example:
        >>> df = pd.DataFrame({"process": ["a", "a", "b"], "weight": [1.0, 3.0, 2.0],
        ...                    "score": [0.1, 0.2, 0.7]})
        >>> out = mc_counts(df, [0.0, 0.5, 1.0])
        >>> out["a"][0].tolist(), out["a"][1].round(2).tolist()
        ([2.0, 0.0], [1.6, 0.0])
    """
    require(scores, ["process", "weight", "score"], "mc_counts: score frame")
    edges = np.asarray(edges, float)
    out = {}
    for proc, part in scores.groupby("process", sort=True):
        # right-closed bins, as the fit's templates; a binned frame (systpipe.histograms)
        # carries the raw count and sum w^2 of each row
        s, w = part["score"].to_numpy(float), part["weight"].to_numpy(float)
        raw = histogram(s, raw_counts(part).astype(float), edges)
        sw = histogram(s, w, edges)
        sw2 = histogram(s, squared_weights(part), edges)
        neff = np.divide(sw**2, sw2, out=np.zeros_like(sw), where=sw2 > 0)
        out[str(proc)] = (raw.astype(float), neff)
    return out


def plot_mc_counts(
    scores: pd.DataFrame,
    edges: Sequence[float] | np.ndarray,
    out: OutPath,
    *,
    labels: PlotLabels = DEFAULT_LABELS,
    signal: Sequence[str] = (),
    text: str = "",
) -> list[Path]:
    """Raw (solid) and effective (dashed) MC event counts per bin of the fit binning, per
    process; the dotted line at 20 raw events marks where a bin's MC becomes unreliable."""
    counts = mc_counts(scores, edges)
    edges = np.asarray(edges, float)
    with figure_style():
        fig, axes = new_figure(figsize=(9.0, 6.5))
        ax = axes[0, 0]
        k = 0
        for proc, (raw, neff) in counts.items():
            color = labels.signal_color if proc in signal else BACKGROUND_COLORS[k % 7]
            k += 0 if proc in signal else 1
            ax.stairs(np.maximum(raw, 0.5), edges, color=color, lw=2, label=labels.process(proc))
            ax.stairs(np.maximum(neff, 0.5), edges, color=color, lw=1.5, ls="--")
        ax.axhline(20, color="grey", ls=":", lw=1.2, label="20 events")
        ax.plot([], [], color="black", lw=2, label="raw MC events")
        ax.plot([], [], color="black", lw=1.5, ls="--", label=r"effective $N_{\mathrm{eff}}$")
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(0.5, hi * 30)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("Classifier score (fit binning)")
        ax.set_ylabel("MC events / bin (raw and effective)")
        ax.legend(loc="upper right", ncols=2, fontsize="x-small")
        add_label(ax, labels=labels, text=text or None)
        return save_figure(fig, out)


def ks_pvalue(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (unweighted), NaN for an empty sample.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> ks_pvalue(rng.normal(size=500), rng.normal(size=500)) > 0.01
        True
    """
    from scipy.stats import ks_2samp

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(ks_2samp(a, b).pvalue)


def plot_overtraining(
    train: pd.DataFrame,
    test: pd.DataFrame,
    out: OutPath,
    *,
    classifier: str,
    bins: int = 40,
    labels: PlotLabels = DEFAULT_LABELS,
) -> dict[str, float]:
    """Train (filled) and test (points) score distributions of signal and background,
    normalised to unit area on a logit score axis, with the KS p-value of each class.

    Returns:
        {"signal": p-value, "background": p-value}.
    """
    for what, df in (("train", train), ("test", test)):
        require(df, ["label", "score"], f"plot_overtraining: {what} score frame")
    lo = 1e-4
    inner = np.linspace(np.log(lo / (1 - lo)), np.log((1 - lo) / lo), bins + 1)
    edges = 1.0 / (1.0 + np.exp(-inner))
    centres = np.sqrt(edges[1:] * edges[:-1])
    pvalues = {}
    with figure_style():
        fig, axes = new_figure(figsize=(9.0, 6.5))
        ax = axes[0, 0]
        for lab, name, color in ((1, "signal", UP_COLOR), (0, "background", DOWN_COLOR)):
            tr = np.clip(train.loc[train["label"] == lab, "score"].to_numpy(float), lo, 1 - lo)
            te = np.clip(test.loc[test["label"] == lab, "score"].to_numpy(float), lo, 1 - lo)
            pvalues[name] = ks_pvalue(tr, te)
            h_tr, _ = np.histogram(tr, bins=edges)
            h_te, _ = np.histogram(te, bins=edges)
            n_tr, n_te = max(h_tr.sum(), 1), max(h_te.sum(), 1)
            ax.stairs(h_tr / n_tr, edges, fill=True, alpha=0.35, color=color,
                      label=f"{name.capitalize()} (train)")  # fmt: skip
            ax.errorbar(centres, h_te / n_te, yerr=np.sqrt(h_te) / n_te, fmt="o", ms=3.5,
                        color=color, label=f"{name.capitalize()} (test), KS p = "
                        f"{pvalues[name]:.3g}")  # fmt: skip
        logit_axis(ax, edges, lo=lo)
        ax.set_yscale("log")
        lo_y, hi_y = ax.get_ylim()
        ax.set_ylim(max(lo_y, 1e-5), hi_y * 50)
        ax.set_xlabel("Classifier score (logit scale)")
        ax.set_ylabel("Fraction of events / bin (unweighted)")
        ax.legend(loc="upper center", fontsize="x-small", title=labels.classifier(classifier))
        add_label(ax, labels=labels)
        save_figure(fig, out)
    return pvalues


__all__ = [
    "NOMINAL_COVERAGE",
    "ks_pvalue",
    "mc_counts",
    "plot_coverage",
    "plot_mc_counts",
    "plot_nll_scan",
    "plot_overtraining",
    "plot_significance",
]
