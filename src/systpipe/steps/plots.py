"""Steps of ``workflow/rules/plots.smk``: the report's summary and per-classifier figures, and
the counting-experiment studies."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from .. import io
from ..systematics import feature_variations
from ..table import working_points
from ._frames import stem
from ._registry import StepContext, step

log = logging.getLogger(__name__)


@step(
    "plots_summary",
    uses=("plots",),
    help="AMS and ROC curves of every classifier (in: scan__<clf>, score__<clf>; out: ams_png, roc_png)",
)
def plots_summary(
    ctx: StepContext,
    *,
    scan: Mapping[str, str | Path],
    score: Mapping[str, str | Path],
    ams_png: str | Path,
    ams_pdf: str | Path,
    roc_png: str | Path,
    roc_pdf: str | Path,
) -> None:
    """AMS against threshold with the max-AMS working points, and the ROC curves."""
    from ..plots import scan as draw

    scans = {clf: io.read_table(path) for clf, path in scan.items()}
    wps = {clf: working_points(df) for clf, df in scans.items()}
    draw.plot_ams(scans, stem(ams_png), working_points=wps)
    nominal = {clf: io.read_table(path) for clf, path in score.items()}
    draw.plot_roc(nominal, stem(roc_png))


@step(
    "plots_classifier",
    uses=("plots", "systematics"),
    help="dmu breakdown, score variations and luminosity projection of one classifier (set: clf; in: scan, scores)",
)
def plots_classifier(
    ctx: StepContext,
    *,
    clf: str,
    scan: str | Path,
    scores: Sequence[str | Path],
    breakdown_png: str | Path,
    breakdown_pdf: str | Path,
    variations_png: str | Path,
    variations_pdf: str | Path,
    projection_png: str | Path,
    projection_pdf: str | Path,
) -> None:
    """The dmu breakdown against threshold, the score distributions of the feature-changing
    variations and the luminosity projection at the minimum-dmu_tot working point."""
    from ..plots import scan as draw

    plots = ctx.settings["plots"]
    systematics = ctx.settings["systematics"]
    names = [s["name"] for s in systematics]
    table = io.read_table(scan)
    wps = working_points(table)
    draw.plot_dmu_breakdown(table, wps, names, stem(breakdown_png), title=clf)
    frames = {Path(str(p)).stem: io.read_table(p) for p in scores}
    draw.plot_score_variations(
        frames,
        feature_variations(systematics),
        stem(variations_png),
        bins=plots["score_bins"],
        title=clf,
    )
    row = table.iloc[wps["min_dmu_tot"]]
    draw.plot_lumi_projection(
        cast(Mapping[str, float], row),
        names,
        stem(projection_png),
        alpha_range=tuple(plots["luminosity_scale"]),
        title=f"{clf}, minimum dmu_tot",
    )


@step("studies", uses=(), help="the counting-experiment statistics studies (out: table, md, plots)")
def studies(
    ctx: StepContext, *, table: str | Path, **outputs: str | Path | Sequence[str | Path]
) -> None:
    """The counting-experiment studies (docs/notebooks.md): linear propagation table, sigma_mu
    configurations and the three scaling plots, written next to ``table``."""
    from ..studies import run_studies

    written = run_studies(Path(str(table)).parent)
    log.info("wrote %d study files", len(written))
