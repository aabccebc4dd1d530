"""Scoring: signal probabilities from a trained classifier, thread-exact and thread-count independent."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from threadpoolctl import threadpool_limits

from .errors import DataContractError, ModelError
from .train import LightGBMBooster, feature_matrix

log = logging.getLogger(__name__)

#: Columns copied from the event table into every score table, in this order, then ``score``.
SCORE_COLUMNS = ("event_id", "label", "process", "weight")

#: Rows per task when a forest is scored on several threads.
FOREST_CHUNK = 65_536


@contextlib.contextmanager
def _n_jobs(model: Any, threads: int) -> Iterator[None]:
    """Temporarily set ``n_jobs`` (if the estimator has it), restoring the stored value."""
    params = model.get_params() if hasattr(model, "get_params") else {}
    if "n_jobs" not in params:
        yield
        return
    old = params["n_jobs"]
    model.set_params(n_jobs=threads)
    try:
        yield
    finally:
        model.set_params(n_jobs=old)


def _signal_column(model: Any) -> int:
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        raise ModelError(f"{type(model).__name__}: classes {classes} do not include the signal label 1")
    return classes.index(1)


def _is_forest(model: Any) -> bool:
    from sklearn.ensemble._forest import BaseForest

    return isinstance(model, BaseForest)


def _forest_proba(model: Any, X: np.ndarray, threads: int) -> np.ndarray:
    # scikit-learn forests with n_jobs > 1 add the per-tree probabilities into one array in
    # whatever order the threads finish, so the last bits change from run to run. Here every
    # row sums its trees in tree order (n_jobs=1) and the threads share out row chunks instead:
    # identical results for any thread count.
    col = _signal_column(model)
    slices = [slice(i, i + FOREST_CHUNK) for i in range(0, len(X), FOREST_CHUNK)]
    with _n_jobs(model, 1):
        if threads == 1 or len(slices) == 1:
            return np.asarray(model.predict_proba(X)[:, col], dtype=np.float64)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(lambda sl: model.predict_proba(X[sl])[:, col], slices))
    return np.concatenate(parts).astype(np.float64, copy=False)


def predict_scores(model: Any, df: pd.DataFrame, *, features: list[str] | tuple[str, ...],
                   threads: int = 1) -> np.ndarray:
    """Signal probability (float64) for every row of ``df``, computed with ``threads`` threads.

    The thread count reaches the library (LightGBM ``num_threads``, XGBoost ``n_jobs``) and
    OpenMP/BLAS (threadpoolctl); forests are scored by row chunks so that the result does not
    depend on the thread count. The model's stored settings are left unchanged.

    Raises:
        DataContractError: a feature column is missing (lists missing and present columns).
        ModelError: the model expects a different number of features or cannot predict.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}")
    X = feature_matrix(df, list(features))
    n_expected = getattr(model, "n_features_in_", None)
    if n_expected is not None and int(n_expected) != X.shape[1]:
        raise ModelError(
            f"{type(model).__name__} was trained on {n_expected} features, got {X.shape[1]}: {list(features)}"
        )
    if len(X) == 0:
        return np.empty(0, dtype=np.float64)
    try:
        with threadpool_limits(limits=threads):
            if isinstance(model, LightGBMBooster):
                p = model.predict_proba(X, num_threads=threads)[:, 1]
            elif hasattr(model, "booster_") and type(model).__module__.startswith("lightgbm"):
                # Same call LGBMClassifier.predict_proba makes, with the thread count explicit.
                p = model.booster_.predict(X, num_threads=threads)
            elif _is_forest(model):
                p = _forest_proba(model, X, threads)
            elif hasattr(model, "get_booster"):  # XGBoost: n_jobs is its nthread
                with _n_jobs(model, threads):
                    p = model.predict_proba(X)[:, _signal_column(model)]
            else:
                # Other estimators: joblib and OpenMP/BLAS limits, stored params untouched
                # (setting n_jobs warns on estimators that deprecated it).
                with parallel_config(n_jobs=threads):
                    p = model.predict_proba(X)[:, _signal_column(model)]
    except (ModelError, DataContractError):
        raise
    except Exception as exc:
        raise ModelError(f"{type(model).__name__}: prediction failed: {exc}") from exc
    return np.asarray(p, dtype=np.float64)


def score_table(model: Any, df: pd.DataFrame, *, features: list[str] | tuple[str, ...],
                threads: int = 1) -> pd.DataFrame:
    """Score table (SPEC section 3): event_id, label, process, weight, score, sorted by event_id.

    Raises:
        DataContractError: a required or feature column is missing.
    """
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    missing += [f for f in features if f not in df.columns and f not in missing]
    if missing:
        raise DataContractError(
            f"event table: missing column(s) {missing}; columns present: {list(df.columns)}"
        )
    ordered = df.sort_values("event_id", kind="stable")
    out = pd.DataFrame(
        {
            "event_id": ordered["event_id"].to_numpy(dtype=np.int64),
            "label": ordered["label"].to_numpy(dtype=np.int8),
            "process": ordered["process"].reset_index(drop=True),
            "weight": ordered["weight"].to_numpy(dtype=np.float64),
            "score": predict_scores(model, ordered, features=features, threads=threads),
        }
    )
    return out


__all__ = ["FOREST_CHUNK", "SCORE_COLUMNS", "predict_scores", "score_table"]
