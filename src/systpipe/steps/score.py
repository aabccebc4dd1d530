"""Steps of ``workflow/rules/score.smk``: classifier scores of the test events (nominal and every
feature-changing variation) and of the observed data events."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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
    help="score the nominal and every feature-changing variation (set: clf; in: model, events, info; out: scores, one per events file, named <variation>.parquet)",
)
def score(
    ctx: StepContext,
    *,
    clf: str,
    model: str | Path,
    events: Sequence[str | Path] | str | Path,
    scores: Sequence[str | Path] | str | Path,
    info: str | Path | None = None,
) -> None:
    """Score the nominal events and every feature-changing variation with one classifier: the
    i-th ``events`` file into the i-th ``scores`` file, whose stem names the variation. One job
    per classifier, so the model is loaded (and its library imported) once.

    A parameterised classifier (its model record ``info`` says so) scores every variation at
    the same alpha, ``systematics_aware.score_at`` (default 0): the variation is in the
    features, and the binned fit needs one fixed score function for all its templates.
    """
    from ..augment import read_aware
    from ..models import load_model
    from ..score import score_table

    ins = [events] if isinstance(events, str | Path) else list(events)
    outs = [scores] if isinstance(scores, str | Path) else list(scores)
    if len(ins) != len(outs):
        raise DataContractError(
            f"score {clf}: {len(ins)} events files for {len(outs)} score files; they pair up in order"
        )
    features = list(ctx.settings["features"])
    fitted = load_model(model)
    aware = read_aware(info)
    for source, target in zip(ins, outs, strict=True):
        variation = Path(str(target)).stem
        df = io.read_table(source, required=("event_id", "label", "process", "weight", *features))
        started = time.perf_counter()
        table = score_table(fitted, df, features=features, threads=ctx.threads, aware=aware)
        elapsed = time.perf_counter() - started
        log.info("%s: scored %d events in %.2f s (%.0f events/s)", variation, len(df), elapsed,
                 len(df) / max(elapsed, 1e-9))  # fmt: skip
        io.write_table(table, target, ctx.provenance(classifier=clf, variation=variation))


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
