"""Steps of ``workflow/rules/score.smk``: classifier scores of the test events (nominal and every
feature-changing variation) and of the observed data events."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import DataContractError
from ._registry import StepContext, step

log = logging.getLogger(__name__)


@step(
    "score",
    uses=("features",),
    help="score events (set: clf, variation; in: model, events; out: scores)",
)
def score(
    ctx: StepContext,
    *,
    clf: str,
    variation: str,
    model: str | Path,
    events: str | Path,
    scores: str | Path,
) -> None:
    """Score the nominal or a feature-changing variation with one classifier."""
    from ..models import load_model
    from ..score import score_table

    features = list(ctx.settings["features"])
    df = io.read_table(events, required=("event_id", "label", "process", "weight", *features))
    fitted = load_model(model)
    started = time.perf_counter()
    table = score_table(fitted, df, features=features, threads=ctx.threads)
    elapsed = time.perf_counter() - started
    log.info(
        "scored %d events in %.2f s (%.0f events/s)", len(df), elapsed, len(df) / max(elapsed, 1e-9)
    )
    io.write_table(table, scores, ctx.provenance(classifier=clf, variation=variation))


@step(
    "score_data",
    uses=("features",),
    help="score the observed data events of fit.data.path (set: clf; in: model, events; out: scores)",
)
def score_data(
    ctx: StepContext, *, clf: str, model: str | Path, events: str | Path, scores: str | Path
) -> None:
    """Score the observed data events of ``fit.data.path`` (Parquet or CSV with the feature
    columns; ``weight`` optional, 1 by default) for the fits."""
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
    score = predict_scores(load_model(model), df, features=features, threads=ctx.threads)
    out = pd.DataFrame({"event_id": event_id, "weight": weight, "score": score})
    log.info("scored %d data events (sum of weights %.6g)", len(out), weight.sum())
    io.write_table(out, scores, ctx.provenance(classifier=clf))
