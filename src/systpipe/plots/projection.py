"""Luminosity projection: the uncertainties on mu at alpha times the luminosity, one working point."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, DataContractError
from .labels import DEFAULT_LABELS, PlotLabels
from .style import OutPath, add_label, figure_style, new_figure, save_figure

# --------------------------------------------------------------------------- lumi projection


class LumiProjection(NamedTuple):
    """Uncertainties on mu at luminosity scale alpha (same shape as alpha)."""

    alpha: np.ndarray
    dmu_stat: np.ndarray
    dmu_syst: np.ndarray
    dmu_tot: np.ndarray


def project_with_luminosity(
    dmu_stat: float, dmu_syst: float, alpha: float | Sequence[float] | np.ndarray
) -> LumiProjection:
    """Project the uncertainties to alpha times the luminosity at a fixed working point.

    S, B and n all scale with alpha, so dmu_stat = sqrt(n)/S falls as 1/sqrt(alpha); every
    shift-method dmu_k = |(n - B_k)/S_k - 1| is a ratio of yields and stays constant.

    Example:
        >>> p = project_with_luminosity(0.5, 0.3, [1.0, 4.0])
        >>> [round(float(x), 4) for x in p.dmu_stat], [round(float(x), 4) for x in p.dmu_tot]
        ([0.5, 0.25], [0.5831, 0.3905])
    """
    a = np.asarray(alpha, dtype=float)
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise ConfigError(f"plots.luminosity_scale: alpha must be finite and > 0, got {alpha!r}")
    if not (math.isfinite(dmu_stat) and math.isfinite(dmu_syst)) or dmu_stat < 0 or dmu_syst < 0:
        raise DataContractError(
            f"luminosity projection: need finite non-negative dmu_stat and dmu_syst, "
            f"got {dmu_stat!r} and {dmu_syst!r}"
        )
    stat = dmu_stat / np.sqrt(a)
    syst = np.full_like(a, dmu_syst)
    return LumiProjection(a, stat, syst, np.hypot(stat, syst))


def luminosity_crossover(dmu_stat: float, dmu_syst: float) -> float:
    """Luminosity scale at which dmu_stat / sqrt(alpha) equals dmu_syst (inf if no syst).

    Example:
        >>> luminosity_crossover(0.5, 0.25)
        4.0
    """
    return math.inf if dmu_syst <= 0 else (dmu_stat / dmu_syst) ** 2


def plot_lumi_projection(
    row: Mapping[str, float],
    systematics: Sequence[str],
    out: OutPath,
    alpha_range: tuple[float, float] = (1.0, 1000.0),
    *,
    title: str | None = None,
    rlabel: str | None = None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> list[Path]:
    """dmu_stat, each dmu_k, dmu_syst and dmu_tot vs luminosity scale at one working point.

    Args:
        row: the working point's scan row (dmu_stat, dmu_syst, dmu_<k>); a Series works.
        systematics: systematic names k (keys dmu_<k>).
        out: output stem or explicit ``.png``/``.pdf`` paths.
        alpha_range: (min, max) luminosity scale, log-spaced (config plots.luminosity_scale).
        title: legend title (e.g. classifier and working point).
        rlabel: text at the top right.

    Returns:
        The written paths.
    """
    keys = ["dmu_stat", "dmu_syst", *[f"dmu_{k}" for k in systematics]]
    missing = [k for k in keys if k not in row]
    if missing:
        raise DataContractError(f"plot_lumi_projection: row lacks {missing}")
    lo, hi = (float(x) for x in alpha_range)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ConfigError(f"plots.luminosity_scale: need 0 < min < max, got {alpha_range!r}")
    alpha = np.geomspace(lo, hi, 200)
    proj = project_with_luminosity(float(row["dmu_stat"]), float(row["dmu_syst"]), alpha)
    with figure_style():
        fig, axes = new_figure(figsize=(9.0, 6.5))
        ax = axes[0, 0]
        ax.plot(
            alpha,
            proj.dmu_stat,
            color="black",
            ls="--",
            lw=2,
            label=r"statistical, scales as $\alpha^{-1/2}$",
        )
        syst_colors = ["#ffa90e", "#832db6", "#94a4a2", "#a96b59", "#e76300", "#92dadd"]
        for j, k in enumerate(systematics):
            val = float(row[f"dmu_{k}"])
            if val > 0 and math.isfinite(val):
                ax.plot(
                    alpha,
                    np.full_like(alpha, val),
                    color=syst_colors[j % len(syst_colors)],
                    ls=":",
                    lw=2,
                    label=labels.parameter(k),
                )
        if proj.dmu_syst[0] > 0:
            ax.plot(
                alpha,
                proj.dmu_syst,
                color="#bd1f01",
                ls="-.",
                lw=2,
                label="systematic (quadrature sum)",
            )
        ax.plot(alpha, proj.dmu_tot, color="#3f90da", lw=3, label="total")
        cross = luminosity_crossover(float(row["dmu_stat"]), float(row["dmu_syst"]))
        if lo <= cross <= hi:
            ax.axvline(
                cross,
                color="grey",
                lw=1,
                ls=(0, (4, 2)),
                label=rf"stat = syst at $\alpha$ = {cross:.3g}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ymin, ymax = ax.get_ylim()
        ax.set_ylim(ymin, ymax * (ymax / ymin) ** 0.3)
        lumi0 = f" ($\\mathcal{{L}}_0$ = {labels.lumi_text})" if labels.lumi_text else ""
        ax.set_xlabel(rf"Luminosity scale $\alpha = \mathcal{{L}}/\mathcal{{L}}_0${lumi0}")
        ax.set_ylabel(r"Uncertainty on the signal strength $\delta\mu$")
        ax.legend(loc="upper right", ncols=2, title=title)
        add_label(ax, rlabel, labels=labels)
        return save_figure(fig, out)


__all__ = [
    "LumiProjection",
    "luminosity_crossover",
    "plot_lumi_projection",
    "project_with_luminosity",
]
