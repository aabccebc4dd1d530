"""Scoring: signal probabilities from a trained classifier, thread-exact and thread-count independent."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .errors import DataContractError, ModelError
from .models import adapter_for_model
from .train import feature_matrix

if TYPE_CHECKING:
    from .augment import AwareSpec

log = logging.getLogger(__name__)

#: Columns copied from the event table into every score table, in this order, then ``score``.
SCORE_COLUMNS = ("event_id", "label", "process", "weight")


def predict_scores(
    model: Any,
    df: pd.DataFrame,
    *,
    features: list[str] | tuple[str, ...],
    threads: int = 1,
    aware: AwareSpec | None = None,
    alphas: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Signal probability (float64) for every row of ``df``, computed with ``threads`` threads.

    A parameterised model (``aware``, :mod:`systpipe.augment`) also takes the nuisance values:
    every row is scored at ``alphas`` (systematic name -> value, or one value per row;
    default the spec's ``score_at``, i.e. alpha = 0), e.g. the fitted nuisance values.

    The thread count reaches the library (LightGBM ``num_threads``, XGBoost ``n_jobs``) and
    OpenMP/BLAS (threadpoolctl); forests are scored by row chunks so that the result does not
    depend on the thread count. The model's stored settings are left unchanged. The library's
    adapter (:func:`systpipe.models.adapter_for_model`) makes the call.

    Raises:
        DataContractError: a feature column is missing (lists missing and present columns).
        ModelError: the model expects a different number of features or cannot predict.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelError(f"threads must be a positive integer, got {threads!r}")
    if aware is not None and aware.parameterised:
        from .augment import with_alphas

        df, alpha_cols = with_alphas(df, aware, alphas)
        features = [*features, *alpha_cols]
    elif alphas:
        raise ModelError(f"alpha values {sorted(alphas)} given for a model with no alpha inputs")
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
            p = adapter_for_model(model).predict_proba(model, X, threads)
    except (ModelError, DataContractError):
        raise
    except Exception as exc:
        raise ModelError(f"{type(model).__name__}: prediction failed: {exc}") from exc
    return np.asarray(p, dtype=np.float64)


def score_table(
    model: Any,
    df: pd.DataFrame,
    *,
    features: list[str] | tuple[str, ...],
    threads: int = 1,
    aware: AwareSpec | None = None,
    alphas: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Score table (docs/data-contract.md): event_id, label, process, weight, score, sorted by
    event_id; ``aware`` and ``alphas`` as in :func:`predict_scores`.

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
            "score": predict_scores(
                model, ordered, features=features, threads=threads, aware=aware, alphas=alphas
            ),
        }
    )
    return out


__all__ = ["SCORE_COLUMNS", "predict_scores", "score_table"]
