"""Counting-experiment studies: how the statistical sigma_mu scales, linear error propagation.

The studies and their expected numbers are described in docs/statistics.md.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .errors import ConfigError
from .io import write_json, write_text
from .plots.style import add_label, figure_style, new_figure, save_figure
from .stats import dmu_linear, dmu_linear_terms, sigma_mu_fraction, sigma_mu_stat

log = logging.getLogger(__name__)

RLABEL = "Asimov counting experiment"


class YieldCase(NamedTuple):
    """A named counting configuration: expected signal s and background b."""

    case: str
    s: float
    b: float


# Linear propagation: the worked example, the three "what is better?" cases and the
# dmu_printer example (n = 10,000, alpha = 1, f_S = 0.1); see docs/statistics.md.
LINEAR_CASES: tuple[YieldCase, ...] = (
    YieldCase("notebook example S=100, B=2500", 100.0, 2500.0),
    YieldCase("n=10,000 with 200 signal", 200.0, 9800.0),
    YieldCase("n=200 with 150 signal", 150.0, 50.0),
    YieldCase("n=100 with 99 signal", 99.0, 1.0),
    YieldCase("dmu_printer n=10,000, alpha=1, f_S=0.1", 1000.0, 9000.0),
)

# sigma_mu for three (S, n) configurations (docs/statistics.md).
SIGMA_CASES: tuple[YieldCase, ...] = (
    YieldCase("S=100, n=10,000", 100.0, 9900.0),
    YieldCase("S=1,000, n=10,000", 1000.0, 9000.0),
    YieldCase("S=10,000, n=1,000,000", 10000.0, 990000.0),
)


# --------------------------------------------------------------------------- pure functions


def sigma_mu_vs_alpha(
    alpha: float | Sequence[float] | np.ndarray, *, s: float = 100.0, b: float = 10_000.0
) -> np.ndarray:
    """Statistical sigma_mu when S and B both scale with the luminosity factor alpha.

    Example:
        >>> [round(float(x), 4) for x in sigma_mu_vs_alpha([1.0, 100.0])]
        [1.005, 0.1005]
    """
    a = _positive(alpha, "alpha")
    return np.asarray(sigma_mu_stat(a * s, a * b), dtype=float)


def sigma_mu_vs_fraction(
    f_s: float | Sequence[float] | np.ndarray, *, n: float = 10_000.0
) -> np.ndarray:
    """Statistical sigma_mu for n events of which a fraction f_s is signal: 1/(f_s sqrt(n)).

    Example:
        >>> [round(float(x), 4) for x in sigma_mu_vs_fraction([0.01, 0.1])]
        [1.0, 0.1]
    """
    return np.asarray(sigma_mu_fraction(n, _positive(f_s, "f_s")), dtype=float)


def sigma_mu_vs_n(n: float | Sequence[float] | np.ndarray, *, f_s: float = 0.2) -> np.ndarray:
    """Statistical sigma_mu as a function of the total count n at fixed signal fraction.

    Example:
        >>> [round(float(x), 4) for x in sigma_mu_vs_n([2500.0, 250_000.0])]
        [0.1, 0.01]
    """
    return np.asarray(sigma_mu_fraction(_positive(n, "n"), f_s), dtype=float)


def loglog_slope(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Least-squares slope of log(y) against log(x) (the power-law exponent).

    Example:
        >>> round(loglog_slope([1.0, 10.0, 100.0], [1.0, 0.1, 0.01]), 6)
        -1.0
    """
    lx, ly = np.log(_positive(x, "x")), np.log(_positive(y, "y"))
    return float(np.polyfit(lx, ly, 1)[0])


def alpha_for_target(target: float, *, s: float = 100.0, b: float = 10_000.0) -> float:
    """Luminosity factor alpha at which sigma_mu(alpha S, alpha B) reaches ``target``.

    Example:
        >>> round(alpha_for_target(0.1), 6)
        101.0
    """
    return float(sigma_mu_stat(s, b)) ** 2 / float(_positive(target, "target")) ** 2


def fraction_for_target(target: float, *, n: float = 10_000.0) -> float:
    """Signal fraction f_S at which n events give sigma_mu = ``target``: 1/(target sqrt(n)).

    Example:
        >>> round(fraction_for_target(0.1), 6)
        0.1
    """
    return 1.0 / (float(_positive(target, "target")) * math.sqrt(n))


def n_for_target(target: float, *, f_s: float = 0.2) -> float:
    """Total count n at which signal fraction f_s gives sigma_mu = ``target``: 1/(f_s target)^2.

    Example:
        >>> round(n_for_target(0.01))
        250000
    """
    return 1.0 / (f_s * float(_positive(target, "target"))) ** 2


def linear_propagation_table(
    cases: Sequence[YieldCase] = LINEAR_CASES,
    *,
    d_eps_s: float = 0.05,
    d_eps_b: float = 0.02,
    d_lumi: float = 0.01,
) -> pd.DataFrame:
    """Linear error propagation (the linear-propagation functor) per case, with its four terms.

    Columns: case, S, B, n, f_S, dmu_stat, dmu_sig, dmu_bkg, dmu_lumi, dmu_lin (the quadrature
    sum of the four terms, from :func:`systpipe.stats.dmu_linear`).

    Example:
        >>> t = linear_propagation_table([YieldCase("ex", 100.0, 2500.0)])
        >>> round(float(t.dmu_lin.iloc[0]), 3), round(float(t.dmu_bkg.iloc[0]), 3)
        (0.762, 0.5)
    """
    s = np.array([c.s for c in cases], dtype=float)
    b = np.array([c.b for c in cases], dtype=float)
    n = s + b
    return pd.DataFrame(
        {
            "case": [c.case for c in cases],
            "S": s,
            "B": b,
            "n": n,
            "f_S": s / n,
            "dmu_stat": np.asarray(sigma_mu_stat(s, b), dtype=float),
            "dmu_sig": np.asarray(dmu_linear_terms(s, b, s, 0.0, d_eps_s), dtype=float),
            "dmu_bkg": np.asarray(dmu_linear_terms(s, b, 0.0, b, d_eps_b), dtype=float),
            "dmu_lumi": np.asarray(dmu_linear_terms(s, b, s, b, d_lumi), dtype=float),
            "dmu_lin": np.asarray(
                dmu_linear(s, b, d_eps_s=d_eps_s, d_eps_b=d_eps_b, d_lumi=d_lumi), dtype=float
            ),
        }
    )


def sigma_mu_table(cases: Sequence[YieldCase] = SIGMA_CASES) -> pd.DataFrame:
    """Statistical sigma_mu = sqrt(n)/S for each (S, B) case; columns case, S, n, f_S, sigma_mu.

    Example:
        >>> sigma_mu_table().sigma_mu.round(6).tolist()
        [1.0, 0.1, 0.1]
    """
    s = np.array([c.s for c in cases], dtype=float)
    n = s + np.array([c.b for c in cases], dtype=float)
    return pd.DataFrame(
        {
            "case": [c.case for c in cases],
            "S": s,
            "n": n,
            "f_S": s / n,
            "sigma_mu": np.asarray(sigma_mu_stat(s, n - s), dtype=float),
        }
    )


def markdown_table(df: pd.DataFrame, *, digits: int = 4) -> str:
    """GitHub Markdown table; floats with ``digits`` significant digits (no tabulate needed).

    Example:
        >>> print(markdown_table(pd.DataFrame({"a": ["x"], "b": [0.76172]})), end="")
        | a | b |
        |---|---:|
        | x | 0.7617 |
    """

    def fmt(v: object) -> str:
        if isinstance(v, float | np.floating):
            x = float(v)
            return f"{x:.0f}" if x.is_integer() and abs(x) < 1e15 else f"{x:.{digits}g}"
        return str(v).replace("|", r"\|")

    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(str(c) for c in df.columns) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _positive(x: float | Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ConfigError(f"studies: {name} must be finite and > 0, got {x!r}")
    return arr


# --------------------------------------------------------------------------- figures

_SIGMA_MU_LABEL = r"Statistical uncertainty $\sigma_\mu$ (absolute)"


def _loglog(ax: Axes) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")


def _sigma_mu_panel(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    label: str,
    *,
    xlim: tuple[float, float],
    xlabel: str,
    target: float | None,
    target_label: str,
    x_target: float | None = None,
    log: bool = True,
    power_law: tuple[np.ndarray, str] | None = None,
    ylim: tuple[float, float] | None = None,
    top_factor: float | None = None,
    legend_loc: Literal["upper right", "lower left"] = "upper right",
) -> None:
    """One sigma_mu curve on ``ax`` (log-log unless ``log`` is False) with its target guides.

    Args:
        ax: the axes to draw on.
        x, y: the curve; ``label`` its legend entry.
        xlim, xlabel: x range and label (the y label is the same in every study).
        target: sigma_mu of the grey dashed horizontal guide; None draws no guide.
        target_label: legend entry of the guides; it goes on the vertical guide at
            ``x_target`` if that is given, else on the horizontal one.
        x_target: x at which the curve reaches ``target`` (vertical guide), or None.
        log: log-log axes.
        power_law: (values over x, label) of a reference power law, drawn dotted; the axes
            then turn log-log before it is drawn (otherwise after the guides).
        ylim: explicit y range; ``top_factor`` instead stretches the autoscaled top.
        legend_loc: legend position.

    The calls run in the order the studies' figures have always been drawn in, so that the
    written files stay byte-identical.
    """
    ax.plot(x, y, color="#3f90da", lw=2.5, label=label)
    if power_law is not None:
        _loglog(ax)
        ax.plot(x, power_law[0], color="black", ls=":", lw=1.5, label=power_law[1])
    if target is not None:
        hline_label: dict[str, Any] = {"label": target_label} if x_target is None else {}
        ax.axhline(target, color="grey", lw=1, ls="--", **hline_label)
        if x_target is not None:
            ax.axvline(x_target, color="grey", lw=1, ls="--", label=target_label)
    if log and power_law is None:
        _loglog(ax)
    ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    elif top_factor is not None:
        ymin, ymax = ax.get_ylim()
        ax.set_ylim(ymin, ymax * top_factor)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(_SIGMA_MU_LABEL)
    ax.legend(loc=legend_loc)


def plot_sigma_mu_vs_alpha(
    out: str | os.PathLike[str],
    *,
    s: float = 100.0,
    b: float = 10_000.0,
    alpha_range: tuple[float, float] = (1.0, 1000.0),
    target: float = 0.1,
) -> list[Path]:
    """sigma_mu vs alpha, linear (left) and log-log (right), with the fitted power law."""
    lo, hi = alpha_range
    a_lin = np.linspace(lo, hi, 1000)
    a_log = np.geomspace(lo, hi, 200)
    y_log = sigma_mu_vs_alpha(a_log, s=s, b=b)
    slope = loglog_slope(a_log, y_log)
    a_target = alpha_for_target(target, s=s, b=b)
    label = rf"$\sigma_\mu$, S = {s:g}$\alpha$, B = {b:g}$\alpha$"
    common: dict[str, Any] = {
        "xlim": (lo, hi),
        "xlabel": r"Luminosity scale $\alpha$ (S = $\alpha S_0$, B = $\alpha B_0$)",
        "target": target if lo <= a_target <= hi else None,
        "target_label": rf"$\sigma_\mu$ = {target:g} at $\alpha$ = {a_target:.4g}",
        "x_target": a_target,
    }
    power_law = (
        float(sigma_mu_stat(s, b)) * a_log**-0.5,
        rf"$\sigma_\mu(1)\,\alpha^{{-1/2}}$ (fitted slope {slope:.3f})",
    )
    with figure_style():
        fig, axes = new_figure(1, 2, figsize=(14.0, 6.0))
        lin_ax, log_ax = axes[0, 0], axes[0, 1]
        y_lin = sigma_mu_vs_alpha(a_lin, s=s, b=b)
        _sigma_mu_panel(lin_ax, a_lin, y_lin, label, log=False, **common)
        _sigma_mu_panel(
            log_ax, a_log, y_log, label, power_law=power_law, legend_loc="lower left", **common
        )
        lin_ax.set_ylim(0, lin_ax.get_ylim()[1] * 1.15)
        add_label(lin_ax)
        add_label(log_ax, RLABEL)
        return save_figure(fig, out)


def plot_sigma_mu_vs_fraction(
    out: str | os.PathLike[str],
    *,
    n: float = 10_000.0,
    f_range: tuple[float, float] = (1e-3, 1.0),
    target: float = 0.1,
) -> list[Path]:
    """sigma_mu vs signal fraction f_S at fixed n, log-log (slope -1)."""
    f = np.geomspace(*f_range, 200)
    y = sigma_mu_vs_fraction(f, n=n)
    f_target = fraction_for_target(target, n=n)
    with figure_style():
        fig, axes = new_figure(figsize=(8.5, 6.5))
        ax = axes[0, 0]
        _sigma_mu_panel(
            ax,
            f,
            y,
            rf"$\sigma_\mu = 1/(f_S\,n^{{1/2}})$, n = {n:,.0f} (slope {loglog_slope(f, y):.3f})",
            xlim=f_range,
            xlabel=r"Signal fraction $f_S = S/n$",
            target=target,
            target_label=rf"$\sigma_\mu$ = {target:g} at $f_S$ = {f_target:.3g}",
            x_target=f_target,
            top_factor=5.0,
        )
        add_label(ax, RLABEL)
        return save_figure(fig, out)


def plot_sigma_mu_vs_n(
    out: str | os.PathLike[str],
    *,
    f_s: float = 0.2,
    n_range: tuple[float, float] = (2_600.0, 250_000.0),
    target: float = 0.01,
) -> list[Path]:
    """sigma_mu vs total count n at fixed f_S, log-log (slope -1/2), with the 1 % target."""
    n = np.geomspace(*n_range, 200)
    y = sigma_mu_vs_n(n, f_s=f_s)
    n_target = n_for_target(target, f_s=f_s)
    with figure_style():
        fig, axes = new_figure(figsize=(8.5, 6.5))
        ax = axes[0, 0]
        _sigma_mu_panel(
            ax,
            n,
            y,
            rf"$\sigma_\mu = 1/(f_S\,n^{{1/2}})$, $f_S$ = {f_s:g} (slope {loglog_slope(n, y):.3f})",
            xlim=n_range,
            xlabel="Total number of events $n$",
            target=target,
            target_label=rf"$\sigma_\mu$ = {target:g} at n = {n_target:,.0f}",
            ylim=(min(float(y.min()), target) * 0.5, float(y.max()) * 4.0),
        )
        add_label(ax, RLABEL)
        return save_figure(fig, out)


# --------------------------------------------------------------------------- driver


def run_studies(
    out_dir: str | os.PathLike[str],
    *,
    d_eps_s: float = 0.05,
    d_eps_b: float = 0.02,
    d_lumi: float = 0.01,
) -> list[Path]:
    """Write every counting-experiment study into ``out_dir`` and return the paths.

    Figures sigma_mu_vs_alpha, sigma_mu_vs_fraction, sigma_mu_vs_n (PNG + PDF); tables
    linear_propagation and sigma_mu_configurations (CSV + Markdown); studies_summary.json
    with the fitted power-law slopes and the target values (docs/statistics.md).
    """
    out = Path(out_dir)
    paths: list[Path] = []
    paths += plot_sigma_mu_vs_alpha(out / "sigma_mu_vs_alpha")
    paths += plot_sigma_mu_vs_fraction(out / "sigma_mu_vs_fraction")
    paths += plot_sigma_mu_vs_n(out / "sigma_mu_vs_n")

    lin = linear_propagation_table(d_eps_s=d_eps_s, d_eps_b=d_eps_b, d_lumi=d_lumi)
    best = lin.iloc[1:4].sort_values("dmu_lin").case.iloc[0]
    note = (
        f"\nRelative uncertainties: d_epsS = {d_eps_s:g}, d_epsB = {d_eps_b:g}, "
        f"d_L = {d_lumi:g}; stat term 1/sqrt(n); Jacobian (n/S, -mu, -B/S, -n/S) at mu = 1.\n"
        f"Best of the notebook's three 'what is better?' cases: {best}.\n"
        "The notebook's printed 'dmu = 0.234' is the dmu_printer case (S = 1000, B = 9000); "
        "S = 100, B = 2500 gives 0.762 (SPEC section 9).\n"
    )
    paths.append(write_text(lin.to_csv(index=False), out / "linear_propagation.csv"))
    paths.append(write_text(markdown_table(lin) + note, out / "linear_propagation.md"))

    sig = sigma_mu_table()
    paths.append(write_text(sig.to_csv(index=False), out / "sigma_mu_configurations.csv"))
    paths.append(write_text(markdown_table(sig), out / "sigma_mu_configurations.md"))

    a = np.geomspace(1.0, 1000.0, 200)
    f = np.geomspace(1e-3, 1.0, 200)
    n = np.geomspace(2_600.0, 250_000.0, 200)
    summary = {
        "slope_sigma_mu_vs_alpha": loglog_slope(a, sigma_mu_vs_alpha(a)),
        "slope_sigma_mu_vs_fraction": loglog_slope(f, sigma_mu_vs_fraction(f)),
        "slope_sigma_mu_vs_n": loglog_slope(n, sigma_mu_vs_n(n)),
        "alpha_for_sigma_mu_0.1": alpha_for_target(0.1),
        "f_s_for_sigma_mu_0.1_at_n_10000": fraction_for_target(0.1, n=10_000.0),
        "n_for_sigma_mu_0.01_at_f_s_0.2": n_for_target(0.01, f_s=0.2),
        "dmu_lin": dict(zip(lin.case, lin.dmu_lin.astype(float), strict=True)),
        "sigma_mu": dict(zip(sig.case, sig.sigma_mu.astype(float), strict=True)),
    }
    paths.append(write_json(summary, out / "studies_summary.json"))
    log.info("studies: wrote %d files to %s", len(paths), out)
    return paths


__all__ = [
    "LINEAR_CASES",
    "SIGMA_CASES",
    "YieldCase",
    "alpha_for_target",
    "fraction_for_target",
    "linear_propagation_table",
    "loglog_slope",
    "markdown_table",
    "n_for_target",
    "plot_sigma_mu_vs_alpha",
    "plot_sigma_mu_vs_fraction",
    "plot_sigma_mu_vs_n",
    "run_studies",
    "sigma_mu_table",
    "sigma_mu_vs_alpha",
    "sigma_mu_vs_fraction",
    "sigma_mu_vs_n",
]
