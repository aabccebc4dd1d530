"""The tables of the report, readable: the compact per-classifier uncertainty table, the method
comparison with each method's coverage, the fit's breakdown, the yields with raw and effective
MC counts and the coverage table; each rendered as HTML, Markdown and LaTeX (booktabs)."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataContractError
from .histograms import raw_counts, squared_weights
from .plots.labels import DEFAULT_LABELS, PlotLabels

#: The question's systematics, in its column order; others follow in config order.
QUESTION_ORDER = ("sig", "bkg", "lumi", "det")
METHODS = ("shift", "linear", "profile", "chi2", "neyman")
MODES = ("frequentist", "challenge", "bootstrap")
#: Plain-text and LaTeX headers of the uncertainty columns.
HEADERS = {
    "dmu_stat": ("dmu_stat", r"$\delta\mu_{\text{stat}}$"),
    "dmu_mcstat": ("dmu_mcstat", r"$\delta\mu_{\text{MC stat}}$"),
    "dmu_syst_tot": ("dmu_syst_tot", r"$\delta\mu_{\text{syst}}$"),
    "dmu_tot": ("dmu_tot", r"$\delta\mu_{\text{tot}}$"),
}


@dataclass
class Table:
    """A rendered-ready table: string cells (already rounded), LaTeX headers and a caption."""

    name: str
    caption: str
    columns: list[str]
    rows: list[list[str]]
    latex_columns: list[str] = field(default_factory=list)
    values: pd.DataFrame | None = None  # the unrounded numbers, for HEPData and tests

    def html(self) -> str:
        """An HTML <table> with its caption (escaped)."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        return (
            f'<table class="systpipe-table" id="table-{html.escape(self.name)}">'
            f"<caption>{html.escape(self.caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def markdown(self) -> str:
        """A GitHub pipe table (columns padded to their width) with the caption above."""
        cells = [self.columns, *self.rows]
        width = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, width, strict=True)) + " |"  # noqa: E731
        rule = "|" + "|".join("-" * (w + 2) for w in width) + "|"
        return "\n".join([f"**{self.caption}**", "", line(self.columns), rule,
                          *[line(r) for r in self.rows]]) + "\n"  # fmt: skip

    def latex(self) -> str:
        """A booktabs table float with caption and label (compiles with booktabs, amsmath)."""
        cols = self.latex_columns or [latex_escape(c) for c in self.columns]
        spec = "l" + "r" * (len(cols) - 1)
        body = [" & ".join(latex_cell(v) for v in row) + r" \\" for row in self.rows]
        return "\n".join([
            r"% needs \usepackage{booktabs} and \usepackage{amsmath}",
            r"\begin{table}[htbp]", r"  \centering", r"  \small",
            f"  \\caption{{{latex_escape(self.caption)}}}",
            f"  \\label{{tab:systpipe-{self.name}}}",
            f"  \\begin{{tabular}}{{{spec}}}", r"    \toprule",
            "    " + " & ".join(cols) + r" \\", r"    \midrule",
            *[f"    {b}" for b in body], r"    \bottomrule", r"  \end{tabular}",
            r"\end{table}", "",
        ])  # fmt: skip


def latex_escape(text: str) -> str:
    r"""Escape LaTeX specials of plain text (not of $math$).

    Example:
        >>> print(latex_escape("dmu_tot at 50% & more"))
        dmu\_tot at 50\% \& more
    """
    out = []
    for part in re.split(r"(\$[^$]*\$)", str(text)):
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(part)
            continue
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                     ("#", r"\#"), ("{", r"\{"), ("}", r"\}"), ("±", r"$\pm$"), ("−", "$-$"),
                     ("σ", r"$\sigma$"), ("√s", r"$\sqrt{s}$"), ("^", r"\textasciicircum{}"), ("~", r"\textasciitilde{}"), ("⁻¹", "$^{-1}$"), ("μ", r"$\mu$"), ("→", r"$\to$"), ("τ", r"$\tau$"), ("t̄", r"$\bar{t}$")):  # fmt: skip
            part = part.replace(a, b)
        out.append(part)
    return "".join(out)


def latex_cell(value: str) -> str:
    """A cell: '+0.19 −0.21' and '0.70 ± 0.01' become math; text is escaped."""
    if re.fullmatch(r"[+\-−]?[\d.]+ ± [\d.]+", value):
        a, b = value.split(" ± ")
        return f"${a.replace('−', '-')} \\pm {b}$"
    if re.fullmatch(r"\+[\d.]+ −[\d.]+", value):
        up, down = value.split(" ")
        return f"$^{{{up}}}_{{-{down[1:]}}}$"
    return latex_escape(value)


def plain_text(label: str) -> str:
    r"""A mathtext label as plain (Unicode) text, for HTML, Markdown and table cells.

    Example:
        >>> plain_text(r"$H\to WW^{*}$ (signal)"), plain_text(r"$t\bar{t}$"), plain_text(r"$Z\to\tau\tau$")
        ('H→WW* (signal)', 'tt̄', 'Z→ττ')
    """
    out = label
    for a, b in ((r"\bar{t}", "t̄"), (r"\to", "→"), (r"\tau", "τ"), (r"\mu", "μ"), (r"\nu", "ν"),
                 (r"\ell", "ℓ"), (r"\gamma", "γ"), ("^{*}", "*"), ("$", ""), ("{", ""), ("}", ""),
                 ("\\", "")):  # fmt: skip
        out = out.replace(a, b)
    return out.replace("→ ", "→").replace(" →", "→")


def fmt(x: Any, digits: int = 3) -> str:
    """Fixed-point with ``digits`` decimals; '–' for a missing or non-finite value.

    Example:
        >>> fmt(0.19805), fmt(float("nan")), fmt(23502.1, 0)
        ('0.198', '–', '23502')
    """
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{v:.{digits}f}" if math.isfinite(v) else "–"


def value_error(value: float, error: float) -> str:
    """Value and uncertainty rounded to the same digit (two significant digits of the error).

    Example:
        >>> value_error(23502.37, 187.6), value_error(0.70213, 0.01446), value_error(1.0, 0.0)
        ('23500 ± 190', '0.702 ± 0.014', '1.000 ± 0.000')
    """
    if not (math.isfinite(value) and math.isfinite(error)):
        return "–"
    if error <= 0:
        return f"{value:.3f} ± 0.000"
    digit = int(math.floor(math.log10(error))) - 1
    dec = max(-digit, 0)
    factor = 10.0**digit
    v, e = round(value / factor) * factor, round(error / factor) * factor
    return f"{v:.{dec}f} ± {e:.{dec}f}"


def recommended(report: Mapping[str, Any], fit_enabled: bool) -> tuple[str, str]:
    """(working point, method) of the summary table: the config's, or with ``auto`` the
    profile-likelihood optimum and the profile method when the fit runs, else max AMS and
    the shift method.

    Example:
        >>> recommended({"working_point": "auto", "method": "auto"}, True)
        ('profile_optimum', 'profile')
        >>> recommended({"working_point": "max_ams", "method": "auto"}, False)
        ('max_ams', 'shift')
    """
    wp = report.get("working_point", "auto")
    method = report.get("method", "auto")
    if wp == "auto":
        wp = "profile_optimum" if fit_enabled else "max_ams"
    if method == "auto":
        method = "profile" if fit_enabled else "shift"
    return wp, method


def systematic_columns(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """dmu_<k> in the question's order (sig, bkg, lumi, det), then the others."""
    ordered = [k for k in QUESTION_ORDER if k in names] + [
        k for k in names if k not in QUESTION_ORDER
    ]
    return [f"dmu_{k}" for k in ordered if f"dmu_{k}" in df.columns]


def _rows(df: pd.DataFrame, wp: str, method: str) -> pd.DataFrame:
    need = ["classifier", "working_point"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataContractError(f"uncertainty table: missing column(s) {missing}")
    sel = df[df["working_point"] == wp]
    if "method" in df.columns:
        sel = sel[sel["method"] == method]
    if sel.empty:
        raise DataContractError(
            f"uncertainty table: no row with working_point {wp!r} and method {method!r} "
            f"(working points present: {sorted(set(df['working_point']))})"
        )
    return sel


def compact_table(
    df: pd.DataFrame,
    names: Sequence[str],
    wp: str,
    method: str,
    *,
    labels: PlotLabels = DEFAULT_LABELS,
) -> Table:
    """One row per classifier at ``wp`` and ``method``: the question's columns dmu_stat,
    dmu_<k>, dmu_syst_tot, dmu_tot, plus dmu_mcstat and the threshold (3 decimals)."""
    sel = _rows(df, wp, method)
    syst = systematic_columns(sel, names)
    cols = ["dmu_stat", *syst, "dmu_mcstat", "dmu_syst_tot", "dmu_tot"]
    cols = [c for c in cols if c in sel.columns]
    rows = [
        [labels.classifier(r["classifier"]), fmt(r.get("threshold"), 3), *[fmt(r[c]) for c in cols]]
        for _, r in sel.iterrows()
    ]
    tex = [HEADERS.get(c, (c, rf"$\delta\mu_{{\text{{{latex_escape(c[4:])}}}}}$"))[1] for c in cols]
    caption = (
        f"Uncertainty on the signal strength per classifier at the {WP_NAMES.get(wp, wp)} "
        f"working point, {METHOD_NAMES.get(method, method)} method ({labels.plain_rlabel}); "
        "dmu_syst_tot = sqrt(dmu_tot^2 - dmu_stat^2) includes the MC statistics."
    )
    values = sel[["classifier", "threshold", *cols]].reset_index(drop=True)
    return Table("compact", caption, ["classifier", "score >", *cols], rows,
                 ["Classifier", "Score $>$", *tex], values)  # fmt: skip


WP_NAMES = {
    "max_ams": "maximum-AMS",
    "min_dmu_tot": "minimum-dmu_tot",
    "profile_optimum": "profile-likelihood optimum",
}
METHOD_NAMES = {
    "shift": "cut-and-count shift",
    "linear": "cut-and-count linear propagation",
    "profile": "binned profile-likelihood",
    "chi2": "covariance chi2",
    "neyman": "learned Neyman (binned model)",
}


def method_comparison(
    df: pd.DataFrame,
    coverage: Mapping[str, pd.DataFrame],
    wp: str,
    *,
    labels: PlotLabels = DEFAULT_LABELS,
) -> Table:
    """One row per classifier and method at ``wp``: dmu_stat, dmu_mcstat, dmu_syst_tot,
    dmu_tot and, where toys ran, each mode's coverage ± binomial error and failure rate."""
    sel = df[df["working_point"] == wp]
    if sel.empty:
        raise DataContractError(f"uncertainty table: no row with working_point {wp!r}")
    modes = [m for m in MODES if any(m in set(c["mode"]) for c in coverage.values())]
    cols = ["dmu_stat", "dmu_mcstat", "dmu_syst_tot", "dmu_tot"]
    rows = []
    for _, r in sel.iterrows():
        cov = coverage.get(r["classifier"])
        row = [labels.classifier(r["classifier"]), str(r.get("method", "shift")),
               *[fmt(r.get(c)) for c in cols]]  # fmt: skip
        failed = []
        for mode in modes:
            hit = (
                None
                if cov is None
                else cov[(cov["mode"] == mode) & (cov["method"] == r.get("method"))]
            )
            if hit is None or hit.empty:
                row.append("–")
            else:
                h = hit.iloc[0]
                row.append(value_error(float(h["coverage"]), float(h["coverage_err"])))
                failed.append(float(h["failure_rate"]))
        if modes:
            row.append(f"{100 * max(failed):.1f} %" if failed else "–")
        rows.append(row)
    heads = ["classifier", "method", *cols, *[f"coverage ({mode})" for mode in modes]]
    heads += ["failed toys (max)"] if modes else []
    caption = (
        f"Methods compared at the {WP_NAMES.get(wp, wp)} working point; coverage of the "
        "68.27 % interval (nominal 0.6827) with its binomial error and the fraction of failed "
        "toys, from the pseudo-experiments of the fit workspace (profile-optimum binning); "
        "'–': no toys for this classifier or method."
    )
    return Table("methods", caption, heads, rows)


def breakdown_table(
    fits: Mapping[str, Mapping[str, Any]],
    names: Sequence[str],
    *,
    labels: PlotLabels = DEFAULT_LABELS,
) -> Table:
    """The profile fit's breakdown per classifier: +up / −down for data statistics, MC
    statistics, every systematic, the systematic total and the total."""
    keys = ["stat", "mc_stat", *names, "syst", "total"]
    clfs = list(fits)
    rows = []
    for key in keys:
        cells = []
        for clf in clfs:
            entry = fits[clf].get("breakdown", {}).get(key)
            cells.append("–" if not entry else f"+{fmt(entry['up'])} −{fmt(entry['down'])}")
        if any(c != "–" for c in cells):
            rows.append([labels.parameter(key), *cells])
    first = next(iter(fits.values()), {})
    binning = first.get("binning", {})
    caption = (
        "Breakdown of the profile-likelihood interval on mu (+up / −down) at the "
        "profile-likelihood optimum: each group's parameters frozen at their best-fit values, "
        "sqrt(total^2 - frozen^2); correlations make the squares not add up to the total"
        + (
            f" (first classifier: score > {binning.get('threshold')}, {binning.get('n_bins')} bins)"
            if binning
            else ""
        )
        + "."
    )
    return Table("breakdown", caption, ["source", *[labels.classifier(c) for c in clfs]], rows)


def yields_table(
    scores: pd.DataFrame, threshold: float, *, classifier: str, labels: PlotLabels = DEFAULT_LABELS
) -> Table:
    """Weighted yield ± MC statistical error, raw MC events and effective events
    (sum w)^2 / sum w^2 per process selected by score > ``threshold``."""
    need = ["process", "weight", "score"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise DataContractError(f"yields table of {classifier!r}: missing column(s) {missing}")
    sel = scores[scores["score"].to_numpy(float) > threshold]
    is_signal = (
        sel.groupby("process")["label"].max().astype(bool).to_dict() if "label" in sel else {}
    )
    # signal first, then the backgrounds by falling yield, then the total background
    order = sorted(
        sel.groupby("process", sort=True),
        key=lambda g: (not is_signal.get(g[0], False), -float(g[1]["weight"].sum())),
    )
    background = (
        sel[[not is_signal.get(p, False) for p in sel["process"]]] if is_signal else sel.iloc[0:0]
    )
    groups = [(str(p), part) for p, part in order] + (
        [("Total background", background)] if len(background) else []
    )
    rows, values = [], []
    for proc, part in groups:
        # a binned frame (systpipe.histograms) carries sum w^2 and the raw count per row
        sw, sw2 = float(part["weight"].to_numpy(float).sum()), float(squared_weights(part).sum())
        n_raw = int(raw_counts(part).sum())
        neff = sw * sw / sw2 if sw2 > 0 else 0.0
        name = proc if proc == "Total background" else plain_text(labels.process(proc))
        rows.append([name, value_error(sw, math.sqrt(sw2)), str(n_raw), fmt(neff, 0),
                     fmt(sw / n_raw if n_raw else np.nan, 2)])  # fmt: skip
        values.append(
            {
                "process": proc,
                "yield": sw,
                "mc_error": math.sqrt(sw2),
                "n_raw": n_raw,
                "n_eff": neff,
            }
        )
    caption = (
        f"{labels.classifier(classifier)}: selected yields (score > {threshold:.3g}) per process "
        f"with their MC statistical error, raw and effective MC events and the mean event "
        f"weight ({labels.plain_rlabel})."
    )
    return Table(f"yields-{classifier}", caption,
                 ["process", "yield", "raw MC events", "effective MC events", "mean weight"],
                 rows, [], pd.DataFrame(values))  # fmt: skip


def coverage_table(
    coverage: pd.DataFrame,
    *,
    classifier: str,
    binning: Mapping[str, Any] | None,
    labels: PlotLabels = DEFAULT_LABELS,
) -> Table:
    """Coverage per toy mode and method with the working point and binning of the toys."""
    rows = []
    for _, r in coverage.iterrows():
        rows.append([str(r["mode"]), str(r["method"]), str(int(r["n_toys"])),
                     f"{100 * float(r['failure_rate']):.1f} %",
                     value_error(float(r["coverage"]), float(r["coverage_err"])),
                     value_error(float(r["bias"]), float(r["bias_err"])), fmt(r["mean_width"])])  # fmt: skip
    where = ""
    if binning:
        where = f" at score > {binning.get('threshold')} in {binning.get('n_bins')} bins (the profile-likelihood optimum)"
    caption = (
        f"{labels.classifier(classifier)}: coverage of each method's 68.27 % interval"
        f"{where}; nominal 0.6827, binomial errors; bias of mu-hat and mean interval width."
    )
    return Table(f"coverage-{classifier}", caption,
                 ["toys", "method", "toys run", "failed", "coverage", "bias", "mean width"], rows)  # fmt: skip


__all__ = [
    "METHOD_NAMES",
    "WP_NAMES",
    "Table",
    "breakdown_table",
    "compact_table",
    "coverage_table",
    "fmt",
    "plain_text",
    "latex_escape",
    "method_comparison",
    "recommended",
    "systematic_columns",
    "value_error",
    "yields_table",
]
