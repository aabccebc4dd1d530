"""The report's pages: the summary first page (the compact table, mu-hat, Z0, the CLs limit,
the recommendation and the diagnostics), the rendered tables and the provenance page."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .plots.labels import DEFAULT_LABELS, PlotLabels
from .report_tables import METHOD_NAMES, WP_NAMES, Table, fmt

SEVERITY_ORDER = ("error", "warning", "info")
#: Errors and warnings listed before the rest is folded away.
SHOWN = 15
#: Styles of every page (the report's own CSS resets tables; these are scoped by class).
CSS = """
.systpipe-page {font-family: system-ui, sans-serif; font-size: 14px; color: #111; max-width: 1100px}
.systpipe-page h2 {font-size: 1.35em; font-weight: 600; margin: 0.9em 0 0.3em}
.systpipe-page h3 {font-size: 1.1em; font-weight: 600; margin: 0.8em 0 0.3em}
.systpipe-page p {margin: 0.35em 0}
.systpipe-table {border-collapse: collapse; margin: 0.4em 0 1em; font-variant-numeric: tabular-nums}
.systpipe-table caption {caption-side: top; text-align: left; font-size: 0.9em; color: #333;
  padding-bottom: 0.3em; max-width: 1000px}
.systpipe-table th, .systpipe-table td {border-bottom: 1px solid #ccc; padding: 3px 7px; text-align: right;
  white-space: nowrap}
.systpipe-table th:first-child, .systpipe-table td:first-child {text-align: left}
.systpipe-table thead th {border-bottom: 2px solid #333; background: #f3f3f3}
.systpipe-recommendation {background: #eef6ee; border-left: 4px solid #2c8a2c; padding: 6px 10px}
.systpipe-diag li {margin: 2px 0}
.sev-error {color: #b00000; font-weight: 600} .sev-warning {color: #a05a00; font-weight: 600}
.sev-info {color: #555}
"""
#: On the report's landing page (a narrow "prose" column next to the rule graph, centred
#: vertically in a scrolling pane, so that a page taller than the window loses its top): give
#: the summary the width of the pane, start it at the top and move the rule graph below it.
LANDING_CSS = """
div.items-start:has(> div.py-2 > .prose #systpipe-summary) {flex-wrap: wrap; align-content: flex-start}
.prose #systpipe-summary > h2 {display: none}
div.items-center:has(#systpipe-summary) {align-items: flex-start}
.max-w-lg:has(#systpipe-summary) {max-width: 1200px}
.prose :where(table.systpipe-table) {width: auto; margin-top: 0.4em; font-size: 12.5px}
.prose #systpipe-summary h2 {margin-top: 0.2em}
"""


def page(title: str, body: str) -> str:
    """A standalone HTML document (the report shows it in a frame)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f'<body><div class="systpipe-page">{body}</div></body></html>\n'
    )


def _pm(up: float, down: float, digits: int = 3) -> str:
    return f"+{fmt(up, digits)} −{fmt(down, digits)}"  # latex_cell typesets it as ^{+}_{-}


def fit_summary(
    fits: Mapping[str, Mapping[str, Any]], *, labels: PlotLabels = DEFAULT_LABELS
) -> Table:
    """mu-hat with asymmetric total, statistical and systematic errors, the expected Z0 with and
    without systematics and the expected 95 % CLs upper limit with its bands, per classifier."""
    rows, values = [], []
    for clf, fit in fits.items():
        bd = fit.get("breakdown", {})
        stat, syst = bd.get("stat", {}), bd.get("syst", {})
        band = list(fit.get("cls_expected") or [math.nan] * 5)
        band += [math.nan] * (5 - len(band))
        binning = fit.get("binning") or {}
        region = (
            f"> {binning.get('threshold', math.nan):.3g}, {binning.get('n_bins', '?')} bins"
            if binning
            else "–"
        )
        rows.append([
            labels.classifier(clf), region, fmt(fit.get("mu_hat"), 3),
            _pm(fit.get("dmu_up", math.nan), fit.get("dmu_down", math.nan)),
            _pm(stat.get("up", math.nan), stat.get("down", math.nan)),
            _pm(syst.get("up", math.nan), syst.get("down", math.nan)),
            fmt(fit.get("z0_expected"), 2), fmt(fit.get("z0_expected_stat_only"), 1),
            fmt(band[2], 3), f"{fmt(band[1], 3)}–{fmt(band[3], 3)}",
            f"{fmt(band[0], 3)}–{fmt(band[4], 3)}",
        ])  # fmt: skip
        values.append({"classifier": clf, "mu_hat": fit.get("mu_hat"), "z0": fit.get("z0_expected"),
                       "z0_stat": fit.get("z0_expected_stat_only"), "limit_median": band[2]})  # fmt: skip
    caption = (
        "Profile-likelihood fit to Asimov data (mu = 1) at the profile-likelihood optimum "
        f"({labels.plain_rlabel}): mu-hat with its MINOS interval (total) and the statistical "
        "and systematic parts (+up / −down); expected discovery significance Z0 with all "
        "systematics and statistical only; expected 95 % CLs upper limit on mu (background-"
        "only hypothesis) with its ±1σ and ±2σ bands."
    )
    heads = ["classifier", "fit region (score)", "mu-hat", "total", "stat", "syst", "Z0 exp.", "Z0 stat. only",
             "CLs limit (exp. 95%)", "±1σ", "±2σ"]  # fmt: skip
    return Table("fit", caption, heads, rows, [], pd.DataFrame(values))


def recommendation(df: pd.DataFrame, method: str, diagnostics: Sequence[Mapping[str, Any]],
                   *, labels: PlotLabels = DEFAULT_LABELS) -> str:  # fmt: skip
    """Which classifier and working point give the smallest dmu_tot with ``method``, by how
    much against the best other classifier, and how many warnings concern that row.

    Example:
        >>> t = pd.DataFrame({"classifier": ["a", "a", "b"], "working_point": ["max_ams",
        ...     "min_dmu_tot", "max_ams"], "method": "shift", "threshold": [0.9, 0.95, 0.8],
        ...     "dmu_tot": [0.30, 0.25, 0.35]})
        >>> print(recommendation(t, "shift", []))
        Smallest dmu_tot with the cut-and-count shift method: a at the minimum-dmu_tot working point (score > 0.95), dmu_tot = 0.250, 0.100 (29 %) below the best other classifier, b (0.350 at maximum-AMS).
    """
    rows = df[df["method"] == method] if "method" in df.columns else df
    rows = rows[pd.to_numeric(rows["dmu_tot"], errors="coerce").notna()]
    if rows.empty:
        return f"No finite dmu_tot with the {METHOD_NAMES.get(method, method)} method."
    rows = rows.sort_values("dmu_tot", kind="stable")
    best = rows.iloc[0]
    text = (
        f"Smallest dmu_tot with the {METHOD_NAMES.get(method, method)} method: "
        f"{labels.classifier(best['classifier'])} at the "
        f"{WP_NAMES.get(best['working_point'], best['working_point'])} working point "
        f"(score > {best['threshold']:.3g}), dmu_tot = {best['dmu_tot']:.3f}"
    )
    others = rows[rows["classifier"] != best["classifier"]]
    if not others.empty:
        o = others.iloc[0]
        gain = float(o["dmu_tot"] - best["dmu_tot"])
        text += (
            f", {gain:.3f} ({100 * gain / float(o['dmu_tot']):.0f} %) below the best other "
            f"classifier, {labels.classifier(o['classifier'])} ({o['dmu_tot']:.3f} at "
            f"{WP_NAMES.get(o['working_point'], o['working_point'])})"
        )
    n = sum(
        d.get("classifier") == best["classifier"]
        and d.get("working_point") in (best["working_point"], "")
        and d.get("severity") in ("warning", "error")
        for d in diagnostics
    )
    return text + (f"; {n} warning(s) below concern this classifier." if n else ".")


def aware_comparison(df: pd.DataFrame, aware: Sequence[str], *,
                     labels: PlotLabels = DEFAULT_LABELS) -> str:  # fmt: skip
    """Whether systematics-aware training pays off here: the best systematics-aware
    classifier's profile-likelihood dmu_tot at the profile-likelihood optimum against the best
    cross-entropy classifier's, as a ratio ("" without both kinds or without profile rows).

    Example:
        >>> t = pd.DataFrame({"classifier": ["a", "b", "c"], "method": "profile",
        ...     "working_point": "profile_optimum", "dmu_tot": [0.20, 0.25, 0.19]})
        >>> print(aware_comparison(t, ["c"]))
        Systematics-aware training: c, dmu_tot = 0.190 (profile likelihood, its optimum) against 0.200 for the best cross-entropy classifier, a: ratio 0.950 (one training seed; the spread over seeds needs reruns with other values of seed).
    """
    if "method" not in df.columns or not aware:
        return ""
    rows = df[(df["method"] == "profile") & (df["working_point"] == "profile_optimum")]
    rows = rows[pd.to_numeric(rows["dmu_tot"], errors="coerce").notna()]
    is_aware = rows["classifier"].isin(list(aware))
    if not is_aware.any() or is_aware.all():
        return ""
    best_a = rows[is_aware].sort_values("dmu_tot", kind="stable").iloc[0]
    best_x = rows[~is_aware].sort_values("dmu_tot", kind="stable").iloc[0]
    ratio = float(best_a["dmu_tot"]) / float(best_x["dmu_tot"])
    return (
        f"Systematics-aware training: {labels.classifier(best_a['classifier'])}, dmu_tot = "
        f"{best_a['dmu_tot']:.3f} (profile likelihood, its optimum) against "
        f"{best_x['dmu_tot']:.3f} for the best cross-entropy classifier, "
        f"{labels.classifier(best_x['classifier'])}: ratio {ratio:.3f} (one training seed; the "
        "spread over seeds needs reruns with other values of seed)."
    )


def diagnostics_html(record: Mapping[str, Any]) -> str:
    """The diagnostics, most severe first; infos folded away."""
    items = sorted(record.get("diagnostics", []),
                   key=lambda d: SEVERITY_ORDER.index(d.get("severity", "info")))  # fmt: skip
    counts = {s: sum(d.get("severity") == s for d in items) for s in SEVERITY_ORDER}
    head = ", ".join(f"{counts[s]} {s}(s)" for s in SEVERITY_ORDER)

    def li(d: Mapping[str, Any]) -> str:
        sev = html.escape(str(d.get("severity", "info")))
        return f'<li><span class="sev-{sev}">{sev}</span> [{html.escape(str(d.get("check", "")))}] {html.escape(str(d.get("message", "")))}</li>'

    serious = [li(d) for d in items if d.get("severity") != "info"]
    infos = "".join(li(d) for d in items if d.get("severity") == "info")
    shown, folded = "".join(serious[:SHOWN]), "".join(serious[SHOWN:])
    out = f'<h3>Diagnostics ({head}), most severe first</h3><ul class="systpipe-diag">{shown}</ul>'
    if folded:
        out += (f'<details><summary>{len(serious) - SHOWN} more warning(s)</summary>'
                f'<ul class="systpipe-diag">{folded}</ul></details>')  # fmt: skip
    if infos:
        out += f'<details><summary>{counts["info"]} info(s)</summary><ul class="systpipe-diag">{infos}</ul></details>'
    return out


def summary_body(
    *,
    title: str,
    compact: Table,
    wp: str,
    method: str,
    fit: Table | None,
    recommendation_text: str,
    diagnostics: Mapping[str, Any],
    labels: PlotLabels = DEFAULT_LABELS,
    aware_text: str = "",
) -> str:
    """The first page's HTML (a fragment: the landing page includes it, the Summary
    category shows it as a page)."""
    parts = [
        f'<div class="systpipe-page" id="systpipe-summary"><style>{CSS}{LANDING_CSS}</style>',
        f"<h2>{html.escape(title)}</h2>",
        f"<p>{html.escape(labels.experiment)} Simulation, {html.escape(labels.plain_rlabel)}. "
        f"Summary table: <b>{html.escape(WP_NAMES.get(wp, wp))}</b> working point, "
        f"<b>{html.escape(METHOD_NAMES.get(method, method))}</b> method.</p>",
        f'<p class="systpipe-recommendation">{html.escape(recommendation_text)}</p>',
        compact.html(),
    ]
    if aware_text:
        parts.append(f'<p class="systpipe-recommendation">{html.escape(aware_text)}</p>')
    if fit is not None:
        parts.append(fit.html())
    parts.append(diagnostics_html(diagnostics))
    parts.append("</div>")
    return "\n".join(parts)


def provenance_body(record: Mapping[str, Any]) -> str:
    """The run record (git commit, config hash, seed, versions, code fingerprints, config)."""
    import yaml

    rows = [("git commit", record.get("git_commit")), ("config hash", record.get("config_hash")),
            ("seed", record.get("seed"))]  # fmt: skip
    meta = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    versions = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in sorted((record.get("versions") or {}).items())
    )
    prints = "".join(
        f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in sorted((record.get("code_fingerprints") or {}).items())
    )
    config = yaml.safe_dump(
        json.loads(json.dumps(record.get("config", {}), default=str)), sort_keys=True
    )
    return (
        "<h2>Provenance of this run</h2>"
        f'<table class="systpipe-table"><caption>Run</caption><tbody>{meta}</tbody></table>'
        f'<table class="systpipe-table"><caption>Package versions</caption><tbody>{versions}</tbody></table>'
        f'<table class="systpipe-table"><caption>Code fingerprint of every step</caption><tbody>{prints}</tbody></table>'
        f"<h3>Configuration (after defaults)</h3><pre>{html.escape(config)}</pre>"
    )


__all__ = [
    "CSS",
    "diagnostics_html",
    "fit_summary",
    "page",
    "provenance_body",
    "recommendation",
    "summary_body",
]
