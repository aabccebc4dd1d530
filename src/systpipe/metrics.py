"""Classifier performance with per-event (possibly negative) weights: AUC and ROC curves."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from .errors import DataContractError
from .score import predict_scores


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


def evaluate(
    model: Any, test_df: pd.DataFrame, *, features: list[str] | tuple[str, ...], threads: int = 1
) -> dict[str, float]:
    """Test-sample metrics: ``auc`` with the physics weights (signed, see :func:`weighted_auc`),
    ``auc_unweighted`` and ``n_test``."""
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


class RocCurve(NamedTuple):
    """Weighted ROC curve: background and signal efficiency per threshold, and the AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def weighted_roc(label: np.ndarray, score: np.ndarray, weight: np.ndarray) -> RocCurve:
    """Weighted ROC curve and AUC; negative weights (NLO samples) are kept, not clipped.

    With negative weights the cumulative efficiencies are signed yields and may be locally
    non-monotonic, so the AUC is the trapezoidal integral of tpr d(fpr) along the curve.
    That equals the weighted Mann-Whitney probability
    sum_{i sig, j bkg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W_sig W_bkg), the same
    value as sklearn's roc_auc_score when all weights are positive.

    Example:
        >>> r = weighted_roc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [1.0, 1.0, 1.0, 1.0])
        >>> round(r.auc, 3)
        0.75
    """
    y = np.asarray(label).astype(int)
    s = np.asarray(score, dtype=float)
    w = np.asarray(weight, dtype=float)
    w_sig, w_bkg = float(w[y == 1].sum()), float(w[y == 0].sum())
    if not (w_sig > 0 and w_bkg > 0):
        raise DataContractError(
            f"ROC: need positive total signal and background weight, got {w_sig:g} and {w_bkg:g}"
        )
    fpr, tpr, thr = roc_curve(y, s, sample_weight=w)
    return RocCurve(fpr, tpr, thr, float(np.trapezoid(tpr, fpr)))


__all__ = ["RocCurve", "evaluate", "weighted_auc", "weighted_roc"]
