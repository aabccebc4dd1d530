"""Steps of ``workflow/rules/plots.smk``: the report's summary and per-classifier figures, and
the counting-experiment studies."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from .. import io
from ..partitions import read_sample
from ..provenance import derive_seed
from ..systematics import feature_variations
from ..table import working_points
from ._frames import load_histograms, stem
from ._registry import StepContext, step

log = logging.getLogger(__name__)

#: Events (both classes, stratified) scored for the train-versus-test comparison (enough for a
#: KS test).
OVERTRAINING_EVENTS = 40_000
#: Sections every plot step reads for its labels (sqrt(s), luminosity, readable names).
LABEL_SECTIONS = ("labels", "input", "simulate", "files")


@step(
    "plots_summary",
    uses=("plots", *LABEL_SECTIONS),
    help="AMS, significance with systematics and ROC curves of every classifier (in: scan__<clf>, hist__<clf>, fit__<clf>)",
)
def plots_summary(
    ctx: StepContext,
    *,
    scan: Mapping[str, str | Path],
    hist: Mapping[str, str | Path],
    fit: Mapping[str, str | Path] | None = None,
    ams_png: str | Path,
    ams_pdf: str | Path,
    roc_png: str | Path,
    roc_pdf: str | Path,
    significance_png: str | Path,
    significance_pdf: str | Path,
) -> None:
    """AMS against threshold with the max-AMS working points, the Asimov significance with
    the background uncertainty next to the AMS (with the fit's expected Z0 where the fit ran),
    and the ROC curves."""
    from ..plots import scan as draw
    from ..plots.labels import labels_from_settings
    from ..plots.validation import plot_significance

    labels = labels_from_settings(ctx.settings)
    scans = {clf: io.read_table(path) for clf, path in scan.items()}
    wps = {clf: working_points(df) for clf, df in scans.items()}
    draw.plot_ams(scans, stem(ams_png), working_points=wps, labels=labels)
    z0 = {}
    for clf, path in (fit or {}).items():
        record = json.loads(Path(path).read_text())
        z0[clf] = (float(record["binning"]["threshold"]), float(record["z0_expected"]))
    plot_significance(scans, stem(significance_png), fit_z0=z0 or None, labels=labels)
    nominal = {clf: load_histograms(path)["nominal"] for clf, path in hist.items()}
    draw.plot_roc(nominal, stem(roc_png), labels=labels)


@step(
    "plots_classifier",
    seeded=True,
    uses=("plots", "systematics", "features", *LABEL_SECTIONS),
    help="dmu breakdown, score variations, luminosity projection, MC counts and train-vs-test scores of one classifier (set: clf; in: scan, hist, model, info, train, sample, binning)",
)
def plots_classifier(
    ctx: StepContext,
    *,
    clf: str,
    scan: str | Path,
    hist: str | Path,
    model: str | Path,
    train: str | Path,
    sample: str | Path,
    info: str | Path | None = None,
    binning: str | Path | None = None,
    breakdown_png: str | Path,
    breakdown_pdf: str | Path,
    variations_png: str | Path,
    variations_pdf: str | Path,
    projection_png: str | Path,
    projection_pdf: str | Path,
    mc_counts_png: str | Path,
    mc_counts_pdf: str | Path,
    overtraining_png: str | Path,
    overtraining_pdf: str | Path,
) -> None:
    """The dmu breakdown against threshold, the score distributions of the feature-changing
    variations, the luminosity projection at the minimum-dmu_tot working point, the raw and
    effective MC counts per bin of the fit binning (else 10 bins above the max-AMS cut) and the
    train-versus-test score distributions with their KS p-values."""
    from ..augment import read_aware
    from ..models import load_model
    from ..plots import scan as draw
    from ..plots.labels import labels_from_settings
    from ..plots.validation import plot_mc_counts, plot_overtraining
    from ..score import predict_scores

    labels = labels_from_settings(ctx.settings)
    name = labels.classifier(clf)
    plots = ctx.settings["plots"]
    systematics = ctx.settings["systematics"]
    names = [s["name"] for s in systematics]
    table = io.read_table(scan)
    wps = working_points(table)
    draw.plot_dmu_breakdown(table, wps, names, stem(breakdown_png), title=name, labels=labels)
    frames = load_histograms(hist)
    draw.plot_score_variations(
        frames,
        feature_variations(systematics),
        stem(variations_png),
        bins=plots["score_bins"],
        title=name,
        labels=labels,
    )
    row = table.iloc[wps["min_dmu_tot"]]
    draw.plot_lumi_projection(
        cast(Mapping[str, float], row),
        names,
        stem(projection_png),
        alpha_range=tuple(plots["luminosity_scale"]),
        title=rf"{name}, minimum $\delta\mu_{{\mathrm{{tot}}}}$ (score > {row['threshold']:.3g})",
        labels=labels,
    )
    nominal = frames["nominal"]
    if binning is not None:
        edges = np.asarray(json.loads(Path(binning).read_text())["bin_edges"], dtype=float)
        where = "fit binning (profile-likelihood optimum)"
    else:
        edges = np.linspace(float(table["threshold"].iloc[wps["max_ams"]]), 1.0, 11)
        where = "10 bins above the max-AMS cut"
    signal = sorted(set(nominal.loc[nominal["label"] == 1, "process"].astype(str)))
    plot_mc_counts(nominal, edges, stem(mc_counts_png), labels=labels, signal=signal,
                   text=f"{name}, {where}")  # fmt: skip
    features = list(ctx.settings["features"])
    seed = derive_seed(ctx.seed, "overtraining")
    train_df, _ = read_sample(train, OVERTRAINING_EVENTS, seed=seed, columns=["label", *features])
    test_df, _ = read_sample(sample, OVERTRAINING_EVENTS, seed=seed, columns=["label", *features])
    fitted = load_model(model)
    train_scores = pd.DataFrame({
        "label": train_df["label"].to_numpy(),
        "score": predict_scores(fitted, train_df, features=features,
                                threads=ctx.threads, aware=read_aware(info)),
    })  # fmt: skip
    pvalues = plot_overtraining(
        train_scores,
        pd.DataFrame(
            {
                "label": test_df["label"].to_numpy(),
                "score": predict_scores(
                    fitted, test_df, features=features, threads=ctx.threads, aware=read_aware(info)
                ),
            }
        ),  # fmt: skip
        stem(overtraining_png),
        classifier=clf,
        labels=labels,
    )
    log.info("train vs test KS p-values: %s", pvalues)


@step("studies", uses=(), help="the counting-experiment statistics studies (out: table, md, plots)")
def studies(
    ctx: StepContext, *, table: str | Path, **outputs: str | Path | Sequence[str | Path]
) -> None:
    """The counting-experiment studies (docs/notebooks.md): linear propagation table, sigma_mu
    configurations and the three scaling plots, written next to ``table``."""
    from ..studies import run_studies

    written = run_studies(Path(str(table)).parent)
    log.info("wrote %d study files", len(written))
