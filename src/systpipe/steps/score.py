"""Steps of ``workflow/rules/score.smk``: classifier scores of the test events (nominal and every
feature-changing variation) and of the observed data events."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import DataContractError
from ._frames import with_weight_variations
from ._registry import StepContext, step

log = logging.getLogger(__name__)


def fine_grid_of(settings: Mapping[str, Any]) -> np.ndarray:
    """The fine score grid of the histograms: every threshold the scan, the fit optimiser, a
    fixed fit binning and the score-distribution plots cut at
    (:func:`systpipe.histograms.fine_grid`)."""
    from ..grids import default_bin_edges, default_thresholds, logit_edges
    from ..histograms import fine_grid

    def grid(thr: Mapping[str, float]) -> np.ndarray:
        return default_thresholds(thr["start"], thr["stop"], thr["step"])

    fit = settings["fit"]
    parts = [
        grid(settings["scan"]["thresholds"]),
        grid(fit["optimise"]["thresholds"]),
        logit_edges(settings["plots"]["score_bins"]),  # the score-distribution plots' bins
    ]
    if fit["binning"] == "fixed":
        parts.append(
            default_bin_edges(
                n_bins=fit["n_bins"], score_min=fit["score_min"], score_max=fit["score_max"]
            )
        )
    return fine_grid(parts)


@step(
    "score",
    uses=("features", "systematics", "scan", "fit", "plots"),
    ignores=("plots.luminosity_scale",),
    help="score one test partition, nominal and every feature-changing variation, and write its fine histograms (set: clf, part; in: model, info, test, variation__<name>; out: hist, pairs)",
)
def score(
    ctx: StepContext,
    *,
    clf: str,
    part: str,
    model: str | Path,
    test: str | Path,
    variation: Mapping[str, str | Path] | None = None,
    hist: str | Path,
    pairs: str | Path,
    info: str | Path | None = None,
) -> None:
    """Score partition ``part`` of the test events, nominal and every feature-changing
    variation, with one classifier (loaded once), and reduce the scores of every variation
    (weight-only ones: the nominal scores with their weights) to the partition's fine
    histograms ``hist`` and ``pairs`` (:mod:`systpipe.histograms`).

    A parameterised classifier (its model record ``info`` says so) scores every variation at
    the same alpha, ``systematics_aware.score_at`` (default 0): the variation is in the
    features, and the binned fit needs one fixed score function for all its templates.
    """
    from ..augment import read_aware
    from ..histograms import GRID_KEY, histogram_partition
    from ..models import load_model
    from ..score import score_table
    from ..systematics import all_variations

    settings = ctx.settings
    features = list(settings["features"])
    systematics = settings["systematics"]
    files = {"nominal": test, **dict(variation or {})}
    fitted = load_model(model)
    aware = read_aware(info)
    scored: dict[str, pd.DataFrame] = {}
    for var in all_variations(systematics):
        if not (var.is_nominal or var.changes_features):
            continue
        if var.name not in files:
            raise DataContractError(f"score {clf}: no events file for variation {var.name!r}")
        df = io.read_table(
            files[var.name], required=("event_id", "label", "process", "weight", *features)
        )
        started = time.perf_counter()
        scored[var.name] = score_table(
            fitted, df, features=features, threads=ctx.threads, aware=aware
        )
        elapsed = time.perf_counter() - started
        log.info("%s, partition %s: scored %d events in %.2f s (%.0f events/s)", var.name, part,
                 len(df), elapsed, len(df) / max(elapsed, 1e-9))  # fmt: skip
        del df
    frames = with_weight_variations(systematics, scored, files)
    grid = fine_grid_of(settings)
    marginals, pair_table = histogram_partition(frames, grid)
    prov = ctx.provenance(classifier=clf, partition=part, **{GRID_KEY: grid.tolist()})
    io.write_table(marginals, hist, prov)
    io.write_table(pair_table, pairs, prov)
    log.info("partition %s: %d histogram rows, %d pair rows", part, len(marginals), len(pair_table))


@step(
    "merge_histograms",
    uses=(),
    help="add the fine histograms of every partition (set: clf; in: hists, pairs; out: hist, pair_sums)",
)
def merge_histograms(
    ctx: StepContext,
    *,
    clf: str,
    hists: Sequence[str | Path] | str | Path,
    pairs: Sequence[str | Path] | str | Path,
    hist: str | Path,
    pair_sums: str | Path,
) -> None:
    """Add the partitions' exact histogram terms and round each sum once
    (:func:`systpipe.histograms.sum_partitions`): the same bits for any partitioning."""
    from ..histograms import (
        GRID_KEY,
        MARGINAL_KEYS,
        PAIR_KEYS,
        TERM_COLUMNS,
        grid_of,
        sum_partitions,
    )

    hist_paths = [hists] if isinstance(hists, str | Path) else list(hists)
    pair_paths = [pairs] if isinstance(pairs, str | Path) else list(pairs)
    grid = grid_of(hist_paths[0])
    for path in hist_paths[1:]:
        if not np.array_equal(grid_of(path), grid):
            raise DataContractError(f"{path}: its fine grid differs from {hist_paths[0]}'s")
    marginals, pair_table = sum_partitions(
        # one partition at a time: memory stays at two partitions' terms
        (io.read_table(p, required=(*MARGINAL_KEYS, *TERM_COLUMNS)) for p in hist_paths),
        (io.read_table(p, required=(*PAIR_KEYS, *TERM_COLUMNS)) for p in pair_paths),
    )
    nominal = marginals[marginals["variation"] == "nominal"]
    log.info(
        "%s: %d partitions, %d nominal MC events", clf, len(hist_paths), int(nominal["n_raw"].sum())
    )
    prov = ctx.provenance(classifier=clf, partitions=len(hist_paths), **{GRID_KEY: grid.tolist()})
    io.write_table(marginals, hist, prov)
    io.write_table(pair_table, pair_sums, prov)


@step(
    "score_data",
    uses=("features",),
    help="score the observed data events of fit.data.path (set: clf; in: model, events, info; out: scores)",
)
def score_data(
    ctx: StepContext,
    *,
    clf: str,
    model: str | Path,
    events: str | Path,
    scores: str | Path,
    info: str | Path | None = None,
) -> None:
    """Score the observed data events of ``fit.data.path`` (Parquet or CSV with the feature
    columns; ``weight`` optional, 1 by default) for the fits."""
    from ..augment import read_aware
    from ..models import load_model
    from ..score import predict_scores

    features = list(ctx.settings["features"])
    path = Path(events)
    if not path.is_file():
        raise DataContractError(f"fit.data.path: {path}: file not found")
    df = pd.read_csv(path) if path.suffix.lower() == ".csv" else io.read_table(path)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataContractError(
            f"fit.data.path: {path}: missing column(s) {missing}; columns present: {list(df.columns)}"
        )
    weight = df["weight"].to_numpy(np.float64) if "weight" in df.columns else np.ones(len(df))
    event_id = (
        df["event_id"].to_numpy(np.int64)
        if "event_id" in df.columns
        else np.arange(len(df), dtype=np.int64)
    )
    score = predict_scores(
        load_model(model), df, features=features, threads=ctx.threads, aware=read_aware(info)
    )
    out = pd.DataFrame({"event_id": event_id, "weight": weight, "score": score})
    log.info("scored %d data events (sum of weights %.6g)", len(out), weight.sum())
    io.write_table(out, scores, ctx.provenance(classifier=clf))
