"""Classifier training: registry, training weights, thread-exact fits, native model persistence."""

from __future__ import annotations

import contextlib
import importlib
import io as _io
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from threadpoolctl import threadpool_limits

from . import __version__
from .errors import ConfigError, DataContractError, ModelError
from .io import write_bytes, write_json, write_text

log = logging.getLogger(__name__)

#: Built-in classifier types (``classifiers[].type``) and the estimator each one builds.
BUILTIN_TYPES: dict[str, str] = {
    "hgb": "sklearn.ensemble:HistGradientBoostingClassifier",
    "rf": "sklearn.ensemble:RandomForestClassifier",
    "lgbm": "lightgbm:LGBMClassifier",
    "xgb": "xgboost:XGBClassifier",
}

#: Model file extension per library family (LightGBM text, XGBoost UBJSON, skops zip).
_EXTENSIONS = {"lgbm": "txt", "xgb": "ubj"}

#: Parameters systpipe sets itself: threads come from the rule's ``threads``, seeds from the
#: config's ``seed``, so a value in ``classifiers[].params`` would be silently overridden.
RESERVED_PARAMS = frozenset(
    {"n_jobs", "nthread", "nthreads", "num_threads", "num_thread", "n_threads", "thread_count",
     "random_state", "seed", "random_seed"}
)  # fmt: skip

# Thread-count independence, measured (1 vs 2 threads, same seed, up to 200k x 15 features;
# LightGBM 4.7, XGBoost 3.2, scikit-learn 1.9), and what systpipe does about it:
# - LightGBM: differs by default, with force_col_wise alone, and with deterministic +
#   force_row_wise; identical only with deterministic + force_col_wise: set by default below.
# - XGBoost hist: identical (also with subsample / colsample_bytree); nothing to do.
# - HistGradientBoosting: identical (histograms are built per feature, sums in row order).
# - RandomForest: the fitted trees are identical, but predict_proba with n_jobs > 1 adds the
#   trees in completion order and varies from run to run: systpipe.score sums in tree order.
# - Model files: only the thread count recorded in them differs; save_model neutralises it.
#: Defaults applied before the user's params (see above).
_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "lgbm": {"deterministic": True, "force_col_wise": True, "verbose": -1},
    "xgb": {"tree_method": "hist"},
}

#: Module prefixes whose types a ``.skops`` file may contain; anything else is refused.
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.")

WEIGHTINGS = ("balanced", "absolute")
NEGATIVE_WEIGHT_MODES = ("abs", "zero", "keep")

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


class LightGBMBooster:
    """A LightGBM ``Booster`` loaded from its text file, with the classifier methods systpipe uses.

    LightGBM's scikit-learn wrapper cannot be rebuilt from a model file without touching
    private attributes, so a loaded model is this thin wrapper. ``predict_proba`` returns
    exactly what ``LGBMClassifier.predict_proba`` returned before saving (the text format stores
    every leaf value with round-trip precision).
    """

    classes_ = np.array([0, 1])

    def __init__(self, booster: Any) -> None:
        self.booster_ = booster
        self.n_features_in_ = booster.num_feature()
        self.feature_name_ = booster.feature_name()

    def predict_proba(self, X: Any, *, num_threads: int | None = None) -> np.ndarray:
        """Probabilities ``[P(background), P(signal)]`` per row, like the scikit-learn wrapper."""
        kwargs = {} if num_threads is None else {"num_threads": int(num_threads)}
        p = np.asarray(self.booster_.predict(X, **kwargs), dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    @property
    def feature_importances_(self) -> np.ndarray:
        return self.booster_.feature_importance(importance_type="gain")


# --------------------------------------------------------------------------------------------
# Registry


def _resolve_class(type_: str) -> type:
    target = BUILTIN_TYPES.get(type_, type_)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
    known = ", ".join(BUILTIN_TYPES)
    if not module_name or not attr:
        raise ModelError(
            f"classifiers[].type: unknown classifier type {type_!r}; use one of {known} or an "
            "import path 'package.module:Class' of a scikit-learn-compatible estimator"
        )
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(
            f"classifiers[].type: unknown classifier type {type_!r} ({exc}); use one of {known} "
            "or an import path 'package.module:Class' of a scikit-learn-compatible estimator"
        ) from exc
    if not isinstance(obj, type) or not all(hasattr(obj, m) for m in ("fit", "predict_proba")):
        raise ModelError(
            f"classifiers[].type: {type_!r} is not a classifier class with fit and predict_proba"
        )
    return obj


def _family(cls: type) -> str:
    """Library family of an estimator class: lgbm, xgb, hgb, rf (any forest) or sklearn."""
    mro = {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__}
    if any(m.startswith("lightgbm.") and m.endswith(".LGBMModel") for m in mro):
        return "lgbm"
    if any(m.startswith("xgboost.") and m.endswith(".XGBModel") for m in mro):
        return "xgb"
    if "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.BaseHistGradientBoosting" in mro:
        return "hgb"
    if "sklearn.ensemble._forest.BaseForest" in mro:
        return "rf"
    return "sklearn"


def classifier_family(type_: str) -> str:
    """Library family of ``classifiers[].type``: lgbm, xgb, hgb, rf or sklearn.

    Example:
        >>> classifier_family("lgbm"), classifier_family("rf")
        ('lgbm', 'rf')
    """
    if type_ in BUILTIN_TYPES:
        return type_
    return _family(_resolve_class(type_))


def model_file_extension(type_: str) -> str:
    """File extension (no dot) of the saved model: ``txt`` (LightGBM), ``ubj`` (XGBoost),
    ``skops`` (scikit-learn and import-path estimators).

    Example:
        >>> [model_file_extension(t) for t in ("hgb", "rf", "lgbm", "xgb")]
        ['skops', 'skops', 'txt', 'ubj']
    """
    return _EXTENSIONS.get(classifier_family(type_), "skops")


def build_classifier(type_: str, params: Mapping[str, Any], *, threads: int, seed: int) -> Any:
    """Build an unfitted classifier of ``type_`` with ``params``, ``threads`` and ``seed``.

    ``threads`` goes to the library's own setting (``n_jobs`` for LightGBM, XGBoost and
    scikit-learn forests, which map it to ``num_threads`` / ``nthread``); HistGradientBoosting
    has none and is limited through OpenMP (threadpoolctl) during fit and predict. Library
    defaults that make results independent of the thread count are applied first (LightGBM
    ``deterministic`` + ``force_col_wise``; XGBoost ``tree_method='hist'``), then ``params``.

    Raises:
        ModelError: unknown type, a reserved or unknown parameter, or bad parameter values.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}")
    cls = _resolve_class(type_)
    family = _family(cls)
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise ModelError(
            f"classifiers[].params of type {type_!r}: {reserved} are set by systpipe (threads "
            "from the rule's threads / training.threads, seeds from 'seed'); remove them"
        )
    kwargs: dict[str, Any] = {**_DEFAULT_PARAMS.get(family, {}), **params}
    if family == "lgbm" and kwargs.get("force_row_wise"):
        kwargs.pop("force_col_wise", None)
        log.warning("%s: force_row_wise makes LightGBM results depend on the thread count", type_)
    try:
        est = cls()
        valid = set(est.get_params()) if hasattr(est, "get_params") else set()
        if family in ("hgb", "rf", "sklearn") and valid:
            unknown = sorted(set(kwargs) - valid)
            if unknown:
                raise ModelError(
                    f"classifiers[].params: {unknown} not accepted by {cls.__name__}; "
                    f"valid: {sorted(valid)}"
                )
        # Only where n_jobs is known to mean threads: other estimators may have deprecated it
        # (LogisticRegression warns from 1.8) and get joblib.parallel_config during fit/predict.
        if "n_jobs" in valid and family in ("rf", "lgbm", "xgb"):
            kwargs["n_jobs"] = threads
        if "random_state" in valid:
            kwargs["random_state"] = seed
        return cls(**kwargs)
    except ModelError:
        raise
    except Exception as exc:  # the estimator's own validation: wrong types or values
        raise ModelError(f"classifiers[].params of type {type_!r}: {exc}") from exc


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
        DataContractError: lengths differ, non-finite weights, or labels other than 0/1.
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
    if not np.all(np.isfinite(w)):
        raise DataContractError(f"column 'weight': {int(np.sum(~np.isfinite(w)))} non-finite values")
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
        isinstance(max_events, bool) or not isinstance(max_events, int | np.integer) or max_events < 2
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


def feature_matrix(df: pd.DataFrame, features: list[str] | tuple[str, ...]) -> np.ndarray:
    """The C-ordered float64 feature matrix, checking that every feature is present and numeric.

    Raises:
        DataContractError: missing or non-numeric feature columns (lists the present columns).

    Example:
        >>> feature_matrix(pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}), ["b", "a"]).tolist()
        [[0.5, 1.0], [1.5, 2.0]]
    """
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise DataContractError(
            f"feature column(s) {missing} missing; columns present: {list(df.columns)}"
        )
    bad = [f for f in features if not (pd.api.types.is_numeric_dtype(df[f]) or pd.api.types.is_bool_dtype(df[f]))]
    if bad:
        raise DataContractError(
            f"feature column(s) {bad} are not numeric: {[str(df[f].dtype) for f in bad]}"
        )
    # C order always: pandas hands out row- or column-major arrays depending on how the frame
    # was built, and a BLAS product (e.g. LogisticRegression) then sums in a different order.
    return np.ascontiguousarray(df[list(features)].to_numpy(dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Fitting with progress


def _every(total: int) -> int:
    return max(1, int(total) // _PROGRESS_MESSAGES)


class _LogLines(_io.TextIOBase):
    """A text stream that forwards HistGradientBoosting's verbose output to the log."""

    _ITER = re.compile(r"^\[(\d+)/(\d+)\]")

    def __init__(self, name: str) -> None:
        self.name_ = name
        self._buf = ""

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self._emit(line.strip())
        return len(text)

    def flush(self) -> None:
        # scikit-learn flushes after the "[k/N] " prefix of a line: keep it for the rest.
        pass

    def finish(self) -> None:
        """Emit whatever is left after the fit."""
        self._emit(self._buf.strip())
        self._buf = ""

    def _emit(self, line: str) -> None:
        if not line:
            return
        m = self._ITER.match(line)
        if m and (int(m.group(1)) % _every(int(m.group(2))) == 0 or m.group(1) == m.group(2)):
            log.info("%s: %s", self.name_, line)
        else:
            log.debug("%s: %s", self.name_, line)


def _lgbm_callback(name: str, started: float) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        done, total = env.iteration + 1, env.end_iteration
        if done % _every(total) == 0 or done == total:
            log.info("%s: iteration %d/%d (%.1f s)", name, done, total, time.perf_counter() - started)

    return callback


def _xgb_callback(name: str, total: int, started: float) -> Any:
    import xgboost as xgb

    class _Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            done = epoch + 1
            if done % _every(total) == 0 or done == total:
                log.info("%s: iteration %d/%d (%.1f s)", name, done, total, time.perf_counter() - started)
            return False

    return _Progress()


def _fit(model: Any, family: str, X: np.ndarray, y: np.ndarray, w: np.ndarray, *,
         name: str, features: list[str], threads: int) -> None:
    started = time.perf_counter()
    if family == "lgbm":
        names = list(features) if all(re.fullmatch(r"\w+", f) for f in features) else "auto"
        model.fit(X, y, sample_weight=w, feature_name=names,
                  callbacks=[_lgbm_callback(name, started)])
    elif family == "xgb":
        total = model.get_params().get("n_estimators") or 100
        model.set_params(callbacks=[_xgb_callback(name, total, started)])
        try:
            model.fit(X, y, sample_weight=w, verbose=False)
        finally:
            model.set_params(callbacks=None)
    elif family == "hgb":
        verbose = model.verbose
        model.set_params(verbose=2)  # 2: one line per iteration
        stream = _LogLines(name)
        try:
            with contextlib.redirect_stdout(stream):
                model.fit(X, y, sample_weight=w)
        finally:
            stream.finish()
            model.set_params(verbose=verbose)
    elif family == "rf":
        # Trees in batches through warm_start: scikit-learn draws the per-tree seeds so that
        # the forest is identical to a single fit, and each batch gives a progress message.
        total, warm = model.n_estimators, model.warm_start
        step = _every(total)
        try:
            for n in [*range(step, total, step), total]:
                model.set_params(n_estimators=n, warm_start=True)
                model.fit(X, y, sample_weight=w)
                log.info("%s: %d/%d trees (%.1f s)", name, n, total, time.perf_counter() - started)
        finally:
            model.set_params(n_estimators=total, warm_start=warm)
    else:
        from sklearn.utils.validation import has_fit_parameter

        if not has_fit_parameter(model, "sample_weight"):
            raise ModelError(
                f"classifier {name!r}: {type(model).__name__}.fit does not accept sample_weight, "
                "so the training weights (training.weighting) cannot be applied"
            )
        with parallel_config(n_jobs=threads):
            model.fit(X, y, sample_weight=w)


def _n_iterations(model: Any, family: str) -> int | None:
    if family == "lgbm":
        return int(model.booster_.current_iteration())
    if family == "xgb":
        return int(model.get_booster().num_boosted_rounds())
    if family == "hgb":
        return int(model.n_iter_)
    if family == "rf":
        return len(model.estimators_)
    return None


def feature_importances(model: Any, features: list[str]) -> dict[str, float]:
    """Native feature importances normalised to sum 1, or ``{}`` when the model has none.

    LightGBM and XGBoost: total split gain; forests: impurity decrease; other estimators:
    ``feature_importances_`` if they have it. HistGradientBoosting has no native importance
    and permutation importance would cost extra predictions per feature, so it gets ``{}``.
    """
    raw: np.ndarray | None = None
    if hasattr(model, "booster_"):  # LightGBM (sklearn wrapper or loaded booster)
        raw = np.asarray(model.booster_.feature_importance(importance_type="gain"), dtype=float)
    elif hasattr(model, "get_booster"):  # XGBoost
        score = model.get_booster().get_score(importance_type="total_gain")
        raw = np.array([score.get(f"f{i}", score.get(f, 0.0)) for i, f in enumerate(features)])
    elif hasattr(model, "feature_importances_"):
        try:
            raw = np.asarray(model.feature_importances_, dtype=float)
        except (AttributeError, ValueError):
            raw = None
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
    threads: int = 1,
    seed: int = 0,
    log: logging.Logger | None = None,
) -> tuple[Any, TrainInfo]:
    """Fit classifier ``name`` of ``type_`` on ``train_df`` and describe the run.

    Rows are put in event_id order (when present) so the result does not depend on the input
    row order, subsampled to ``max_train_events`` (seeded, stratified by label), weighted by
    :func:`training_weights`, and fitted with exactly ``threads`` threads (library setting plus
    an OpenMP/BLAS limit). Progress is logged about ten times per fit.

    Raises:
        DataContractError: missing label/weight/feature columns.
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
    X_all = feature_matrix(train_df, features)
    y_all = train_df["label"].to_numpy()
    idx = subsample_indices(y_all, max_train_events, seed=seed)
    X, y = X_all[idx], y_all[idx].astype(np.int64)
    if np.unique(y).size != 2:
        raise ModelError(f"classifier {name!r}: training sample needs both labels, has {np.unique(y).tolist()}")
    w = training_weights(
        train_df["weight"].to_numpy()[idx], y, weighting=weighting, negative_weights=negative_weights
    )
    model = build_classifier(type_, params, threads=threads, seed=seed)
    family = _family(type(model))
    logger.info("%s (%s): training on %d of %d events, %d features, %d thread(s)",
                name, type_, len(y), len(y_all), len(features), threads)
    started = time.perf_counter()
    try:
        with threadpool_limits(limits=threads):
            _fit(model, family, X, y, w, name=name, features=features, threads=threads)
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
        n_input=int(len(y_all)),
        training_time_s=float(elapsed),
        threads=int(threads),
        seed=int(seed),
        weighting=weighting,
        negative_weights=negative_weights,
        n_iterations=_n_iterations(model, family),
        feature_importances=feature_importances(model, features),
    )
    return model, info


# --------------------------------------------------------------------------------------------
# Evaluation


def weighted_auc(score: Any, label: Any, weight: Any) -> float:
    """Area under the ROC curve with per-event weights, ties counted one half.

    Computed as the weighted Mann-Whitney statistic
    ``sum_{i in S, j in B} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W_S W_B)``, which equals
    scikit-learn's ``roc_auc_score(label, score, sample_weight=weight)`` for non-negative
    weights and stays defined with signed (NLO) weights, for which the ROC curve need not be
    monotone and scikit-learn's trapezoid fails.

    Example:
        >>> weighted_auc([0.9, 0.2, 0.5, 0.5], [1, 0, 1, 0], [1.0, 1.0, 2.0, 1.0])
        0.8333333333333334
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(label)
    w = np.asarray(weight, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    ws = np.where(y == 1, w, 0.0)
    wb = np.where(y == 1, 0.0, w)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sig = np.add.reduceat(ws, starts)
    bkg = np.add.reduceat(wb, starts)
    bkg_below = np.cumsum(bkg) - bkg
    total_s, total_b = float(np.sum(sig)), float(np.sum(bkg))
    if total_s == 0.0 or total_b == 0.0:
        return float("nan")
    return float(np.sum(sig * (bkg_below + 0.5 * bkg)) / (total_s * total_b))


def evaluate(model: Any, test_df: pd.DataFrame, *, features: list[str] | tuple[str, ...],
             threads: int = 1) -> dict[str, float]:
    """Test-sample metrics: ``auc`` with the physics weights (signed, see :func:`weighted_auc`),
    ``auc_unweighted`` and ``n_test``."""
    from .score import predict_scores

    missing = [c for c in ("label", "weight") if c not in test_df.columns]
    if missing:
        raise DataContractError(
            f"test table: missing column(s) {missing}; columns present: {list(test_df.columns)}"
        )
    score = predict_scores(model, test_df, features=features, threads=threads)
    label = test_df["label"].to_numpy()
    return {
        "auc": weighted_auc(score, label, test_df["weight"].to_numpy()),
        "auc_unweighted": weighted_auc(score, label, np.ones(len(label))),
        "n_test": int(len(label)),
    }


# --------------------------------------------------------------------------------------------
# Persistence (never pickle)


def _canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so that equal models give equal bytes.

    skops names arrays and ``__id__`` fields after ``id(obj)`` (memory addresses), names byte
    blobs with random UUIDs and stamps the current time on each zip entry. Ids and file names
    are renumbered in order of first appearance in the schema and every entry gets a fixed
    timestamp; the structure (and so what ``skops.io.load`` rebuilds) is unchanged.
    """
    with zipfile.ZipFile(_io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        blobs = {n: src.read(n) for n in src.namelist() if n != "schema.json"}
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    value = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str) and value in blobs:
                    value = files.setdefault(value, f"{len(files) + 1}{Path(value).suffix}")
                else:
                    value = walk(value)
                out[key] = value
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    schema = walk(schema)
    if set(files) != set(blobs):
        log.warning("skops file layout not recognised; model file bytes may vary between runs")
        return data
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as dst:
        entries = [("schema.json", json.dumps(schema, indent=2).encode())]
        entries += sorted(((new, blobs[old]) for old, new in files.items()), key=lambda e: e[0])
        for entry_name, payload in entries:
            info = zipfile.ZipInfo(entry_name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            dst.writestr(info, payload)
    return buf.getvalue()


@contextlib.contextmanager
def _neutral_threads(model: Any) -> Iterator[None]:
    # The thread count is an execution setting, not part of the model: store None (= decide
    # at run time) so that the files written on 1 and on 2 cores are byte-identical. That is
    # ``n_jobs`` of forests and the thread count HistGradientBoosting's fitted bin mapper keeps
    # (only used to bin data; prediction takes its thread count at call time).
    params = model.get_params() if hasattr(model, "get_params") else {}
    old_jobs = params.get("n_jobs")
    binner = getattr(model, "_bin_mapper", None)
    old_binner = getattr(binner, "n_threads", None)
    if old_jobs is not None:
        model.set_params(n_jobs=None)
    if old_binner is not None:
        binner.n_threads = None
    try:
        yield
    finally:
        if old_jobs is not None:
            model.set_params(n_jobs=old_jobs)
        if old_binner is not None:
            binner.n_threads = old_binner


def save_model(model: Any, path_stem: str | os.PathLike[str], type_: str) -> Path:
    """Save ``model`` natively at ``path_stem + '.' + model_file_extension(type_)``, atomically.

    LightGBM: the booster's text format (``.txt``), with the ``num_threads`` entry of its
    informational parameter block set to 0 so the file does not depend on the thread count.
    XGBoost: UBJSON (``.ubj``). scikit-learn and import-path estimators: skops (``.skops``),
    with ids and timestamps made canonical (see :func:`_canonical_skops`). Never pickle.

    Raises:
        ModelError: the model cannot be serialised in its format.
    """
    ext = model_file_extension(type_)
    path = Path(f"{os.fspath(path_stem)}.{ext}")
    try:
        if ext == "txt":
            booster = model.booster_
            text = booster.model_to_string()
            text = re.sub(r"^\[num_threads: [^\]]*\]$", "[num_threads: 0]", text, count=1, flags=re.M)
            write_text(text, path)
        elif ext == "ubj":
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ubj", dir=path.parent)
            os.close(fd)
            try:
                model.save_model(tmp)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            import skops.io as sio

            with _neutral_threads(model):
                data = sio.dumps(model)
            write_bytes(_canonical_skops(data), path)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: cannot save {type(model).__name__} as .{ext}: {exc}") from exc
    log.info("saved %s model to %s", type_, path)
    return path


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model written by :func:`save_model`, choosing the reader by file extension.

    ``.txt``: LightGBM booster wrapped in :class:`LightGBMBooster`; ``.ubj``:
    ``xgboost.XGBClassifier``; ``.skops``: skops with an explicit trusted-type list, which
    must contain only scikit-learn and numpy types (anything else is refused unloaded).

    Raises:
        ModelError: missing file, unknown extension, untrusted types, or an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    ext = path.suffix.lstrip(".")
    try:
        if ext == "txt":
            import lightgbm as lgb

            return LightGBMBooster(lgb.Booster(model_file=str(path)))
        if ext == "ubj":
            import xgboost as xgb

            model = xgb.XGBClassifier()
            model.load_model(str(path))
            return model
        if ext == "skops":
            import skops.io as sio

            untrusted = sio.get_untrusted_types(file=path)
            refused = [t for t in untrusted if not t.startswith(SKOPS_TRUSTED_PREFIXES)]
            if refused:
                raise ModelError(
                    f"{path}: refusing to load types outside {list(SKOPS_TRUSTED_PREFIXES)}: {refused}"
                )
            return sio.load(path, trusted=untrusted)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: cannot load model: {exc}") from exc
    raise ModelError(f"{path}: unknown model file extension {path.suffix!r}; expected .txt, .ubj or .skops")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a trained model."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"systpipe": __version__}
    for key, dist in (("numpy", "numpy"), ("sklearn", "scikit-learn"), ("lightgbm", "lightgbm"),
                      ("xgboost", "xgboost"), ("skops", "skops")):
        for candidate in (dist, f"{dist}-cpu"):
            try:
                out[key] = version(candidate)
                break
            except PackageNotFoundError:
                continue
    return out


def write_model_info(path: str | os.PathLike[str], info: TrainInfo,
                     metrics: Mapping[str, Any] | None = None) -> Path:
    """Write the model's JSON record: the :class:`TrainInfo` fields, test metrics (``auc``:
    weighted test AUC), ``train_time_s`` (alias of ``training_time_s``) and library versions."""
    record = asdict(info)
    record["train_time_s"] = info.training_time_s
    record["auc"] = None
    record.update(dict(metrics or {}))
    record["versions"] = library_versions()
    return write_json(record, path)


__all__ = [
    "BUILTIN_TYPES",
    "LightGBMBooster",
    "TrainInfo",
    "build_classifier",
    "classifier_family",
    "evaluate",
    "feature_importances",
    "feature_matrix",
    "load_model",
    "model_file_extension",
    "save_model",
    "subsample_indices",
    "train_classifier",
    "training_weights",
    "weighted_auc",
    "write_model_info",
]
