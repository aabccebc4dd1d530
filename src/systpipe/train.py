"""Classifier training: training weights, subsampling, the feature matrix, thread-exact fits.

What is specific to a classifier library (building, fitting, scoring, model files) lives in its
adapter in :mod:`systpipe.models`; this module prepares the sample and records the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import __version__
from .errors import ConfigError, DataContractError, ModelError
from .io import write_json
from .models import adapter_for, adapter_for_model, build_classifier
from .models.base import ClassifierAdapter, FitProgress

if TYPE_CHECKING:
    from .augment import AwareSpec
    from .systematics import VaryContext

log = logging.getLogger(__name__)

WEIGHTINGS = ("balanced", "absolute")
NEGATIVE_WEIGHT_MODES = ("abs", "zero", "keep")
#: A physics weight larger than this in magnitude is a unit or overflow error, not a weight.
MAX_ABS_WEIGHT = 1e30

#: Progress is logged about this many times per fit.
_PROGRESS_MESSAGES = 10


@dataclass
class TrainInfo:
    """What a training run did; serialised by :func:`write_model_info`."""

    name: str
    type: str
    params: dict[str, Any]
    features: list[str]
    n_train: int
    n_train_signal: int
    n_train_background: int
    n_input: int
    training_time_s: float
    threads: int
    seed: int
    weighting: str
    negative_weights: str
    n_iterations: int | None = None
    feature_importances: dict[str, float] = field(default_factory=dict)
    #: systematics-aware training (:mod:`systpipe.augment`): its record, None for plain BCE
    systematics_aware: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# Weights and sampling


def training_weights(
    weight: Any, label: Any, *, weighting: str = "balanced", negative_weights: str = "abs"
) -> np.ndarray:
    """Per-event training weights from the physics weights.

    Negative weights (NLO samples) are handled first, as ``training.negative_weights`` says:
    ``abs`` uses |w|, ``zero`` drops them to 0, ``keep`` passes them through. This happens
    before balancing because balancing divides by the class totals: flipping signs afterwards
    would break the equality. ``keep`` is for libraries that accept negative sample weights
    (LightGBM, HistGradientBoosting); XGBoost and RandomForest refuse them and the fit then
    fails with a ModelError naming this key.

    ``balanced`` rescales each class to a total of half the number of events, so signal and
    background weigh the same and the mean weight is 1 (which keeps the libraries' absolute
    hessian thresholds, e.g. XGBoost ``min_child_weight``, meaning what they mean for
    unweighted data). ``absolute`` keeps the physical signal:background ratio and applies one
    global factor so that the mean |weight| is 1.

    Raises:
        ConfigError: unknown ``weighting`` or ``negative_weights``.
        DataContractError: lengths differ, non-finite weights or weights beyond
            :data:`MAX_ABS_WEIGHT`, or labels other than 0/1.
        ModelError: a class with no events or with a non-positive total weight.

    Example:
        >>> training_weights([1.0, 1.0, 1.0, 2.0], [1, 0, 0, 0]).tolist()
        [2.0, 0.5, 0.5, 1.0]
        >>> training_weights([2.0, -1.0, 4.0], [1, 0, 0], negative_weights="zero",
        ...                  weighting="absolute").tolist()
        [1.0, 0.0, 2.0]
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"training.weighting: {weighting!r} is not one of {list(WEIGHTINGS)}")
    if negative_weights not in NEGATIVE_WEIGHT_MODES:
        raise ConfigError(
            f"training.negative_weights: {negative_weights!r} is not one of "
            f"{list(NEGATIVE_WEIGHT_MODES)}"
        )
    w = np.asarray(weight, dtype=np.float64)
    y = np.asarray(label)
    if w.shape != y.shape or w.ndim != 1:
        raise DataContractError(f"weight and label differ in shape: {w.shape} vs {y.shape}")
    _refuse_absurd_weights(w, None, None)
    bad = ~np.isin(y, (0, 1))
    if np.any(bad):
        raise DataContractError(f"column 'label': values other than 0/1: {np.unique(y[bad])[:5]}")
    if negative_weights == "abs":
        w = np.abs(w)
    elif negative_weights == "zero":
        w = np.where(w < 0.0, 0.0, w)
    n = w.size
    if weighting == "absolute":
        total = float(np.sum(np.abs(w)))
        if not total > 0.0:
            raise ModelError("training weights are all zero")
        return w * (n / total)
    out = np.empty_like(w)
    for cls, what in ((1, "signal"), (0, "background")):
        mask = y == cls
        total = float(np.sum(w[mask]))
        if not mask.any() or not total > 0.0:
            raise ModelError(
                f"cannot balance training weights: {what} (label {cls}) has {int(mask.sum())} "
                f"events and total weight {total:g} after training.negative_weights="
                f"{negative_weights!r}"
            )
        out[mask] = w[mask] * ((n / 2.0) / total)
    return out


def _refuse_absurd_weights(w: np.ndarray, process: Any, source: str | None) -> None:
    bad = ~np.isfinite(w) | (np.abs(np.nan_to_num(w, nan=0.0)) > MAX_ABS_WEIGHT)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    first = int(rows[0])
    proc = f" (process {str(process[first])!r})" if process is not None else ""
    where = f"{source}: " if source else ""
    raise DataContractError(
        f"{where}column 'weight': {rows.size} weight(s) non-finite or beyond +/-{MAX_ABS_WEIGHT:g}, "
        f"first {float(w[first])!r} at row {first}{proc}; expected finite event weights (check the weight "
        "column and files.weight.scale)"
    )


def check_physics_weights(
    weight: Any, label: Any, process: Any = None, *, source: str | None = None
) -> None:
    """Refuse physics weights no analysis can mean, before any training.

    Every weight must be finite and at most :data:`MAX_ABS_WEIGHT` in magnitude, and every
    process (every label when there is no process column) must have a positive total weight:
    a yield is never negative, so a negative total is a sign flipped at ingest or in the
    weight scale, which ``training.negative_weights: abs`` would otherwise hide.

    Raises:
        DataContractError: the message names the process or label, the row, and ``source``.

    Example:
        >>> check_physics_weights([1.0, -2.0, -1.0], [1, 0, 0], ["sig", "bkg", "bkg"],
        ...                       source="train.parquet")
        Traceback (most recent call last):
        ...
        systpipe.errors.DataContractError: train.parquet: process 'bkg' (background) has total weight -3 over 2 events (2 negative); expected a positive total (a sign flipped in the weight column or files.weight.scale?)
    """
    w = np.asarray(weight, dtype=np.float64)
    y = np.asarray(label)
    proc = None if process is None else np.asarray(process)
    _refuse_absurd_weights(w, proc, source)
    where = f"{source}: " if source else ""
    groups = (
        [(f"process {str(p)!r}", proc == p) for p in np.unique(proc)]
        if proc is not None
        else [(f"label {c}", y == c) for c in np.unique(y)]
    )
    for name, mask in groups:
        total = float(np.sum(w[mask]))
        if total <= 0.0:
            kind = {1: "signal", 0: "background"}.get(int(np.max(y[mask])), "?")
            raise DataContractError(
                f"{where}{name} ({kind}) has total weight {total:g} over {int(mask.sum())} events "
                f"({int(np.sum(w[mask] < 0))} negative); expected a positive total (a sign flipped "
                "in the weight column or files.weight.scale?)"
            )


def subsample_indices(label: Any, max_events: int | None, *, seed: int) -> np.ndarray:
    """Row indices (ascending) of a seeded subsample stratified by label, at most ``max_events``.

    Each label keeps ``round(max_events * n_label / n)`` rows (at least one), drawn without
    replacement; all rows are returned when there are no more than ``max_events``.

    Example:
        >>> idx = subsample_indices([1] * 10 + [0] * 30, 8, seed=3)
        >>> len(idx), int((idx < 10).sum())
        (8, 2)
        >>> subsample_indices([0, 1, 1], None, seed=3).tolist()
        [0, 1, 2]
    """
    y = np.asarray(label)
    n = y.size
    if max_events is not None and (
        isinstance(max_events, bool)
        or not isinstance(max_events, int | np.integer)
        or max_events < 2
    ):
        raise ConfigError(f"training.max_train_events: must be an integer >= 2, got {max_events!r}")
    if max_events is None or n <= max_events:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    for cls in np.unique(y):  # sorted: the draw order does not depend on the row order
        rows = np.flatnonzero(y == cls)
        k = min(rows.size, max(1, int(round(max_events * rows.size / n))))
        keep.append(rows[rng.choice(rows.size, size=k, replace=False)])
    return np.sort(np.concatenate(keep))


def feature_matrix(
    df: pd.DataFrame, features: list[str] | tuple[str, ...], *, source: str | None = None
) -> np.ndarray:
    """The C-ordered float64 feature matrix, checking that every feature is present, numeric
    and free of +/-inf (NaN is allowed: missing).

    Raises:
        DataContractError: missing or non-numeric feature columns (lists the present columns),
            or infinite values (names the column, the count and the first row; ``source``, the
            input file, prefixes the message).

    Example:
        >>> feature_matrix(pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}), ["b", "a"]).tolist()
        [[0.5, 1.0], [1.5, 2.0]]
    """
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise DataContractError(
            f"feature column(s) {missing} missing; columns present: {list(df.columns)}"
        )
    bad = [
        f
        for f in features
        if not (pd.api.types.is_numeric_dtype(df[f]) or pd.api.types.is_bool_dtype(df[f]))
    ]
    if bad:
        raise DataContractError(
            f"feature column(s) {bad} are not numeric: {[str(df[f].dtype) for f in bad]}"
        )
    # C order always: pandas hands out row- or column-major arrays depending on how the frame
    # was built, and a BLAS product (e.g. LogisticRegression) then sums in a different order.
    X = np.ascontiguousarray(df[list(features)].to_numpy(dtype=np.float64))
    _refuse_infinite(X, df, list(features), source)
    return X


def _row_name(df: pd.DataFrame, row: int) -> str:
    if "event_id" in df.columns:
        return f"row {row} (event_id {df['event_id'].iloc[row]})"
    return f"row {row}"


def _refuse_infinite(
    X: np.ndarray, df: pd.DataFrame, features: list[str], source: str | None
) -> None:
    # NaN means "missing" (every library handles it); +/-inf is a bug upstream (a division by
    # zero, an overflow) that some libraries train on silently and others refuse naming no
    # column.
    inf = np.isinf(X)
    if not inf.any():
        return
    where = f"{source}: " if source else ""
    cols = np.flatnonzero(inf.any(axis=0))
    details = []
    for j in cols[:5]:
        rows = np.flatnonzero(inf[:, j])
        details.append(
            f"{features[j]!r}: {rows.size} infinite value(s), first {X[rows[0], j]} at "
            f"{_row_name(df, int(rows[0]))}"
        )
    raise DataContractError(
        f"{where}feature column(s) contain +/-inf: {'; '.join(details)}; features must be finite "
        "(NaN is allowed and means missing): fix the input or the derived column"
    )


# --------------------------------------------------------------------------------------------
# Fitting


def feature_importances(
    model: Any, features: list[str], adapter: ClassifierAdapter | None = None
) -> dict[str, float]:
    """Native feature importances normalised to sum 1, or ``{}`` when the model has none.

    LightGBM and XGBoost: total split gain; forests: impurity decrease; other estimators:
    ``feature_importances_`` if they have it. HistGradientBoosting has no native importance
    and permutation importance would cost extra predictions per feature, so it gets ``{}``.
    ``adapter`` is the model's library (default: the one that owns ``model``).
    """
    raw = (adapter or adapter_for_model(model)).importances(model, features)
    if raw is None or raw.shape != (len(features),) or not np.sum(raw) > 0:
        return {}
    raw = raw / np.sum(raw)
    return {f: float(v) for f, v in zip(features, raw, strict=True)}


def train_classifier(
    train_df: pd.DataFrame,
    *,
    features: list[str] | tuple[str, ...],
    name: str,
    type_: str,
    params: Mapping[str, Any],
    weighting: str = "balanced",
    negative_weights: str = "abs",
    max_train_events: int | None = None,
    n_input: int | None = None,
    threads: int = 1,
    seed: int = 0,
    log: logging.Logger | None = None,
    source: str | None = None,
    aware: AwareSpec | None = None,
    systematics: list[Any] | tuple[Any, ...] = (),
    vary_context: VaryContext | None = None,
) -> tuple[Any, TrainInfo]:
    """Fit classifier ``name`` of ``type_`` on ``train_df`` and describe the run.

    Rows are put in event_id order (when present) so the result does not depend on the input
    row order, subsampled to ``max_train_events`` (seeded, stratified by label), weighted by
    :func:`training_weights`, and fitted with exactly ``threads`` threads (library setting plus
    an OpenMP/BLAS limit). Progress is logged about ten times per fit. ``source`` (the input
    file) is named in the messages about bad data.

    With ``aware`` (systematics-aware training, :mod:`systpipe.augment`) the subsample is
    augmented with nuisance values drawn from their priors through the vary step's code
    (``systematics``, ``vary_context``) before weighting; a parameterised model's inputs are
    the features followed by the alpha columns (``TrainInfo.features``).

    Raises:
        DataContractError: missing label/weight/feature columns, +/-inf in a feature, absurd
            weights or a process with a non-positive total weight (:func:`check_physics_weights`).
        ModelError: bad classifier type or params, a single-class sample, or a failed fit.
    """
    logger = log or globals()["log"]
    features = list(features)
    missing = [c for c in ("label", "weight") if c not in train_df.columns]
    if missing:
        raise DataContractError(
            f"training table: missing column(s) {missing}; columns present: {list(train_df.columns)}"
        )
    if "event_id" in train_df.columns:
        train_df = train_df.sort_values("event_id", kind="stable")
    X_all = feature_matrix(train_df, features, source=source)
    y_all = train_df["label"].to_numpy()
    check_physics_weights(
        train_df["weight"].to_numpy(),
        y_all,
        train_df["process"].to_numpy() if "process" in train_df.columns else None,
        source=source,
    )
    idx = subsample_indices(y_all, max_train_events, seed=seed)
    X, y = X_all[idx], y_all[idx].astype(np.int64)
    if np.unique(y).size != 2:
        raise ModelError(
            f"classifier {name!r}: training sample needs both labels, has {np.unique(y).tolist()}"
        )
    physics_w = train_df["weight"].to_numpy()[idx]
    if aware is not None:
        X, y, physics_w, features = _augmented(
            train_df.iloc[idx], features, aware, systematics, vary_context, seed, source
        )
    w = training_weights(
        physics_w,
        y,
        weighting=weighting,
        negative_weights=negative_weights,
    )
    model = build_classifier(type_, params, threads=threads, seed=seed)
    adapter = adapter_for(type_)
    logger.info(
        "%s (%s): training on %d of %d events, %d features, %d thread(s)",
        name,
        type_,
        len(y),
        len(y_all),
        len(features),
        threads,
    )
    # Progress lines go to this module's logger (not ``log``), whatever the library.
    progress = FitProgress(name, logging.getLogger(__name__), messages=_PROGRESS_MESSAGES)
    started = time.perf_counter()
    try:
        with threadpool_limits(limits=threads):
            adapter.fit(model, X, y, w, features=features, threads=threads, progress=progress)
    except ModelError:
        raise
    except Exception as exc:
        hint = " (negative weights: see training.negative_weights)" if np.any(w < 0) else ""
        raise ModelError(f"classifier {name!r} ({type_}): fit failed{hint}: {exc}") from exc
    elapsed = time.perf_counter() - started
    logger.info("%s: trained in %.2f s", name, elapsed)
    info = TrainInfo(
        name=name,
        type=type_,
        params=dict(params),
        features=features,
        n_train=int(len(y)),
        n_train_signal=int(np.sum(y == 1)),
        n_train_background=int(np.sum(y == 0)),
        n_input=int(len(y_all) if n_input is None else n_input),
        training_time_s=float(elapsed),
        threads=int(threads),
        seed=int(seed),
        weighting=weighting,
        negative_weights=negative_weights,
        n_iterations=adapter.n_iterations(model),
        feature_importances=feature_importances(model, features, adapter),
        systematics_aware=None if aware is None else {**aware.record(), "n_events": int(len(idx))},
    )
    return model, info


def _augmented(
    sample: pd.DataFrame,
    features: list[str],
    aware: AwareSpec,
    systematics: list[Any] | tuple[Any, ...],
    vary_context: VaryContext | None,
    seed: int,
    source: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features (plus alphas), labels, physics weights and input names of the augmented sample."""
    from .augment import augment_events
    from .provenance import derive_seed
    from .systematics import VaryContext

    ctx = vary_context or VaryContext(seed=seed, features=tuple(features))
    table = augment_events(sample, aware, systematics, ctx, seed=derive_seed(seed, "augment"))
    inputs = [*features, *aware.alpha_columns]
    X = feature_matrix(table, inputs, source=source)
    return X, table["label"].to_numpy().astype(np.int64), table["weight"].to_numpy(), inputs


# --------------------------------------------------------------------------------------------
# Record


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a trained model."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"systpipe": __version__}
    for key, dist in (
        ("numpy", "numpy"),
        ("sklearn", "scikit-learn"),
        ("lightgbm", "lightgbm"),
        ("xgboost", "xgboost"),
        ("skops", "skops"),
    ):
        for candidate in (dist, f"{dist}-cpu"):
            try:
                out[key] = version(candidate)
                break
            except PackageNotFoundError:
                continue
    return out


def write_model_info(
    path: str | os.PathLike[str], info: TrainInfo, metrics: Mapping[str, Any] | None = None
) -> Path:
    """Write the model's JSON record: the :class:`TrainInfo` fields, test metrics (``auc``:
    weighted test AUC), ``train_time_s`` (alias of ``training_time_s``) and library versions."""
    record = asdict(info)
    record["train_time_s"] = info.training_time_s
    record["auc"] = None
    record.update(dict(metrics or {}))
    record["versions"] = library_versions()
    return write_json(record, path)


__all__ = [
    "MAX_ABS_WEIGHT",
    "NEGATIVE_WEIGHT_MODES",
    "WEIGHTINGS",
    "TrainInfo",
    "check_physics_weights",
    "feature_importances",
    "feature_matrix",
    "library_versions",
    "subsample_indices",
    "train_classifier",
    "training_weights",
    "write_model_info",
]
