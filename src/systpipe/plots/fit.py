"""Figures of the profile-likelihood fit: impact ranking, pulls, correlations, pre/post-fit scores."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mplhep
import numpy as np
from matplotlib.patches import Patch

from ..errors import DataContractError
from ..stat.fit import FitResult
from ..stat.likelihood import HistFactoryModel
from .labels import DEFAULT_LABELS, PlotLabels
from .style import (
    BACKGROUND_COLORS,
    DOWN_COLOR,
    UP_COLOR,
    OutPath,
    add_label,
    figure_style,
    new_figure,
    save_figure,
)

log = logging.getLogger(__name__)


def mu_text(result: FitResult) -> str:
    """'$\\hat{\\mu}$ = 1.00 $^{+0.19}_{-0.21}$' (MINOS interval) for the fit plots.

    Example:
        >>> from types import SimpleNamespace
        >>> print(mu_text(SimpleNamespace(mu_hat=1.0, dmu_up=0.1894, dmu_down=0.2067)))
        $\\hat{\\mu}$ = 1.00$^{+0.19}_{-0.21}$
    """
    return rf"$\hat{{\mu}}$ = {result.mu_hat:.2f}$^{{+{result.dmu_up:.2f}}}_{{-{result.dmu_down:.2f}}}$"


def plot_impacts(
    result: FitResult,
    out: OutPath,
    *,
    top_n: int = 20,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Ranking plot: pre-/post-fit impacts on mu (bottom axis) and pulls (top axis), largest first.

    Args:
        result: a fit result with impacts.
        out: output stem or explicit ``.png``/``.pdf`` paths.
        top_n: number of nuisance parameters shown.
        rlabel: text at the top right.
    """
    imp = result.impacts
    if imp is None or imp.empty:
        # fit.impacts: false -- the rule's output still exists and says why it is empty
        with figure_style():
            fig, axes = new_figure(figsize=(8.0, 2.0))
            ax = axes[0, 0]
            ax.axis("off")
            ax.text(0.5, 0.5, "Impacts not computed (fit.impacts: false)", ha="center",
                    va="center", transform=ax.transAxes)  # fmt: skip
            return save_figure(fig, out)
    imp = imp.head(top_n).iloc[::-1].reset_index(drop=True)
    pulls = result.pulls.set_index("parameter")
    y = np.arange(len(imp))
    with figure_style():
        fig, axes = new_figure(figsize=(8.0, 1.6 + 0.38 * len(imp)))
        ax = axes[0, 0]
        ax.barh(y, imp["pre_up"], height=0.7, fill=False, edgecolor=UP_COLOR, lw=1.2)
        ax.barh(y, imp["pre_down"], height=0.7, fill=False, edgecolor=DOWN_COLOR, lw=1.2)
        ax.barh(y, imp["post_up"], height=0.7, color=UP_COLOR, alpha=0.6)
        ax.barh(y, imp["post_down"], height=0.7, color=DOWN_COLOR, alpha=0.6)
        ax.axvline(0.0, color="black", lw=0.8)
        lim = 1.15 * float(
            np.nanmax(np.abs(imp[["pre_up", "pre_down", "post_up", "post_down"]].to_numpy()))
        )
        ax.set_xlim(-max(lim, 1e-6), max(lim, 1e-6))
        ax.set_yticks(y, [labels.parameter(p) for p in imp["parameter"]])
        ax.set_ylim(-0.7, len(imp) - 0.3 + 3.4)
        ax.set_xlabel(r"Impact on $\hat{\mu}$: $\Delta\hat{\mu}$")
        top = ax.twiny()
        vals = np.array(
            [pulls.loc[p, "pull"] if p in pulls.index else np.nan for p in imp["parameter"]]
        )
        errs = np.array(
            [pulls.loc[p, "constraint"] if p in pulls.index else np.nan for p in imp["parameter"]]
        )
        top.errorbar(vals, y, xerr=errs, fmt="o", color="black", ms=4, lw=1.2)
        top.set_xlim(-2.0, 2.0)
        top.set_xticks([-2.0, -1.0, 0.0, 1.0, 2.0])
        top.set_xlabel(r"Pull $(\hat{\theta} - \theta_0)/\Delta\theta$")
        handles = [
            Patch(facecolor="none", edgecolor=UP_COLOR, label=r"pre-fit $+1\sigma$"),
            Patch(facecolor="none", edgecolor=DOWN_COLOR, label=r"pre-fit $-1\sigma$"),
            Patch(facecolor=UP_COLOR, alpha=0.6, label=r"post-fit $+1\sigma$"),
            Patch(facecolor=DOWN_COLOR, alpha=0.6, label=r"post-fit $-1\sigma$"),
        ]
        ax.legend(handles=handles, loc="upper right", ncols=2, fontsize="x-small")
        # the pull axis sits on top: the experiment label goes inside the headroom, top left
        _inside_label(ax, labels, [rlabel or labels.rlabel, mu_text(result)])
        return save_figure(fig, out)


def _inside_label(ax: Any, labels: PlotLabels, lines: Sequence[str]) -> None:
    """Experiment label and text lines inside the axes' top left corner (for figures whose
    top edge carries a second axis)."""
    fig = ax.get_figure()
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    mplhep.label.exp_label(exp=labels.experiment, data=False, ax=ax, rlabel="", loc=1)
    ax.text(0.03, 0.91, "\n".join(lines), transform=ax.transAxes, ha="left", va="top",
            fontsize="small", gid="energy_lumi_label")  # fmt: skip


def plot_pulls(
    result: FitResult,
    out: OutPath,
    *,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Pulls (theta_hat - theta_0)/sigma_prefit with post-fit errors, +/-1 and +/-2 bands."""
    pulls = result.pulls
    if pulls is None or pulls.empty:
        raise DataContractError("plot_pulls: the fit result has no nuisance parameters")
    y = np.arange(len(pulls))[::-1]
    with figure_style():
        fig, axes = new_figure(figsize=(7.0, 1.6 + 0.32 * len(pulls)))
        ax = axes[0, 0]
        ax.axvspan(-2, 2, color="#ffe066", alpha=0.6, lw=0)
        ax.axvspan(-1, 1, color="#77c66e", alpha=0.6, lw=0)
        ax.errorbar(pulls["pull"], y, xerr=pulls["constraint"], fmt="o", color="black", ms=4)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [labels.parameter(p) for p in pulls["parameter"]])
        ax.set_xlim(-3, 3)
        ax.set_ylim(-0.7, len(pulls) - 0.3 + 1.0)
        ax.set_xlabel(r"Pull $(\hat{\theta} - \theta_0)/\Delta\theta$")
        add_label(ax, rlabel, labels=labels)
        return save_figure(fig, out)


def plot_correlation(
    result: FitResult,
    out: OutPath,
    *,
    min_abs: float = 0.2,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """Correlation matrix of the free parameters (Hesse); parameters whose largest
    off-diagonal |rho| is below ``min_abs`` are left out (TRExFitter's 0.2 by default; the
    POI is always kept)."""
    corr = np.asarray(result.correlation, dtype=float)
    names = list(result.correlation_names)
    if corr.size == 0:
        raise DataContractError("plot_correlation: the fit result has no correlation matrix")
    off = np.abs(corr - np.diag(np.diag(corr)))
    poi = [i for i, n in enumerate(names) if n == result.poi]
    large = [int(i) for i in np.flatnonzero(np.nanmax(off, axis=1) >= min_abs)]
    keep = np.arange(len(names)) if min_abs <= 0 else np.array(sorted({*poi, *large}), dtype=int)
    corr = corr[np.ix_(keep, keep)]
    names = [names[i] for i in keep]
    size = 2.5 + 0.4 * len(names)
    with figure_style():
        fig, axes = new_figure(figsize=(size + 1.0, size))
        ax = axes[0, 0]
        im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(names)), [labels.parameter(n) for n in names], rotation=90)
        ax.set_yticks(range(len(names)), [labels.parameter(n) for n in names])
        ax.minorticks_off()
        ax.tick_params(which="both", length=0)  # tick marks would cross the cell labels
        if len(names) <= 20:
            for i in range(len(names)):
                for j in range(len(names)):
                    if np.isfinite(corr[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{corr[i, j]:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if abs(corr[i, j]) > 0.6 else "black",
                        )
        cbar = fig.colorbar(im, ax=ax, shrink=0.8)
        cbar.set_label(r"Correlation coefficient $\rho$")
        pruned = f", |$\\rho$| > {min_abs:g} shown" if min_abs > 0 else ""
        add_label(ax, rlabel or f"{labels.rlabel}{pruned}", labels=labels)
        return save_figure(fig, out)


def yield_bands(
    spec: Mapping[str, Any], result: FitResult | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, HistFactoryModel]:
    """Per-sample yields, total and its 1-sigma band, linearly propagated.

    Pre-fit (``result`` None): nominal parameters, independent prefit sigmas of every
    constrained parameter (mu fixed). Post-fit: best-fit parameters, Hesse covariance of
    all free parameters (mu included), so the band carries the fitted correlations.

    Returns:
        (per-row yields (rows, bins), total (bins), sigma (bins), model).
    """
    model = HistFactoryModel(spec, poi=result.poi if result is not None else None)
    if result is None:
        pars = model.nominal_pars.copy()
        idx = [int(i) for i in model.constrained]
        cov = np.diag(model.constraint_sigma**2)
    else:
        pos = {n: i for i, n in enumerate(result.parameters)}
        if [model.names[i] for i in range(model.n_pars)] != list(result.parameters):
            raise DataContractError("yield_bands: the fit result does not belong to this workspace")
        pars = np.asarray(result.values, dtype=float)
        idx = [pos[n] for n in result.correlation_names]
        err = np.asarray(result.errors, dtype=float)[idx]
        cov = np.asarray(result.correlation, dtype=float) * np.outer(err, err)
    jac = model.jacobian(pars, idx)
    sigma = np.sqrt(np.clip(np.einsum("ib,ij,jb->b", jac, cov, jac), 0.0, None))
    rows = model.expected_by_sample(pars)
    return rows, rows.sum(axis=0), sigma, model


def plot_distribution(
    spec: Mapping[str, Any],
    out: OutPath,
    *,
    result: FitResult | None = None,
    bin_edges: Sequence[float] | np.ndarray | None = None,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
    asimov: bool | None = None,
) -> list[Path]:
    """Stacked score distribution per sample with the data and the uncertainty band.

    Pre-fit when ``result`` is None, post-fit (with mu-hat) otherwise; lower panel data /
    prediction. The data points are labelled "Asimov data" when ``asimov`` (None: when the
    data are the nominal expectation).
    """
    rows, total, sigma, model = yield_bands(spec, result)
    data = model.observed
    if asimov is None:
        asimov = model.is_asimov(model.nominal_pars, data, model.aux_nominal)
    n_bins = model.n_bins
    edges = (
        np.arange(n_bins + 1, dtype=float)
        if bin_edges is None
        else np.asarray(bin_edges, dtype=float)
    )
    if edges.size != n_bins + 1:
        raise DataContractError(f"plot_distribution: {edges.size} edges for {n_bins} bins")
    centres = 0.5 * (edges[1:] + edges[:-1])
    # one entry per sample (its rows in the control and signal channels summed: they fill
    # different bins); backgrounds at the bottom of the stack, signal on top
    samples: dict[str, tuple[bool, np.ndarray]] = {}
    for r, (_, name) in enumerate(model.rows):
        sig, content = samples.get(name, (False, np.zeros(n_bins)))
        samples[name] = (sig or bool(model.signal_rows[r]), content + rows[r])
    order = sorted(samples, key=lambda n: (samples[n][0], n))
    with figure_style():
        fig, axes = new_figure(
            2, 1, figsize=(8.0, 7.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        ax, rax = axes[0, 0], axes[1, 0]
        bottom = np.zeros(n_bins)
        n_bkg = 0
        for name in order:
            signal, content = samples[name]
            color = labels.signal_color if signal else BACKGROUND_COLORS[n_bkg % 7]
            n_bkg += 0 if signal else 1
            label = labels.process(name) + (
                r" ($\times\hat{\mu}$)" if result is not None and signal else ""
            )
            ax.stairs(bottom + content, edges, baseline=bottom, fill=True, color=color, label=label)
            bottom = bottom + content
        ax.stairs(
            total + sigma,
            edges,
            baseline=total - sigma,
            fill=True,
            facecolor="none",
            edgecolor="grey",
            hatch="////",
            lw=0,
            label="Uncertainty",
        )
        ax.errorbar(
            centres,
            data,
            yerr=np.sqrt(np.clip(data, 0, None)),
            fmt="o",
            color="black",
            ms=4,
            label="Asimov data" if asimov else "Data",
        )
        ax.set_ylabel("Events / bin")
        # plain tick labels: an offset text ("x10^4") would sit under the experiment label
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-4, 7), useOffset=False)
        top = 1.45 * float(max(np.max(total + sigma), np.max(data)))
        positive = total[total > 0]
        if positive.size and top / float(positive.min()) > 100.0:
            # a control bin next to the signal region: log scale, so that both are visible
            ax.set_yscale("log")
            ax.set_ylim(float(positive.min()) / 3.0, top * (top / float(positive.min())) ** 0.5)
        else:
            ax.set_ylim(0, top)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = sigma / total
            ratio = data / total
            rerr = np.sqrt(np.clip(data, 0, None)) / total
        rax.stairs(
            1 + rel,
            edges,
            baseline=1 - rel,
            fill=True,
            facecolor="none",
            edgecolor="grey",
            hatch="////",
            lw=0,
        )
        rax.errorbar(centres, ratio, yerr=rerr, fmt="o", color="black", ms=4)
        rax.axhline(1.0, color="black", lw=0.8)
        finite = np.isfinite(rel) & np.isfinite(ratio)
        dev = np.r_[rel[finite], np.abs(ratio[finite] - 1) + np.nan_to_num(rerr[finite])]
        half = min(max(1.6 * float(dev.max()) if dev.size else 0.0, 0.02), 0.5)
        rax.set_ylim(1 - half, 1 + half)
        rax.set_ylabel("Asimov / pred." if asimov else "Data / pred.")
        rax.set_xlabel("Classifier score" if bin_edges is not None else "Bin index")
        stage = "Post-fit" if result is not None else "Pre-fit"
        region = "CR + SR" if len(model.channel_slices) > 1 else "SR"
        region += f", score > {edges[0]:.3g}" if bin_edges is not None else ""
        extra = [f"{stage}, {region}"] + ([mu_text(result)] if result is not None else [])
        ax.legend(loc="upper right", ncols=2, fontsize="x-small")
        add_label(ax, rlabel, labels=labels, data=not asimov, text="\n".join(extra))
        return save_figure(fig, out)


__all__ = ["plot_correlation", "plot_distribution", "plot_impacts", "plot_pulls", "yield_bands"]
