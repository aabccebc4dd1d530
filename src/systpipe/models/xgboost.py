"""XGBoost (``xgb``): ``n_jobs`` threads, ``tree_method='hist'``, UBJSON model files.

Thread-count independence (measured 1 vs 2 threads, same seed, up to 200k x 15 features,
XGBoost 3.2): the hist method gives identical models, also with ``subsample`` and
``colsample_bytree``; nothing else to do.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError
from ..io import publish
from .base import ClassifierAdapter, FitProgress, mro_names, signal_column, temporary_n_jobs
from .sklearn import unknown_params_error

#: XGBoost's warning for parameters it does not use ("Parameters: { "n_estimator" } are not used.").
_UNUSED = re.compile(r"Parameters:\s*\{(.*?)\}\s*(?:might\s+)?(?:are|is)\s+not\s+used", re.S)
#: Rows per label in the one-round probe of :func:`check_parameters`.
_PROBE_ROWS = 16


def _config_names(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                out.add(key)
            else:
                _config_names(value, out)
    elif isinstance(node, list):
        for value in node:
            _config_names(value, out)
    return out


def check_parameters(model: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray, name: str) -> None:
    """Refuse parameters XGBoost would not use, before the real fit.

    ``XGBClassifier`` passes unknown keyword arguments to the booster, which only warns
    ("are not used") and trains with its defaults: a typo such as ``n_estimator`` silently
    gives 100 trees. One boosting round on a few rows of each label (the real feature count, so
    per-feature parameters such as ``monotone_constraints`` are checked too) collects that
    warning; the suggestions come from the wrapper's parameters and the probe booster's
    configuration. ``validate_parameters: false`` turns the check off (XGBoost then warns
    nothing).

    Raises:
        ModelError: unused parameters (with the closest valid names), or values XGBoost refuses.
    """
    import xgboost as xgb

    rows = np.concatenate([np.flatnonzero(y == c)[:_PROBE_ROWS] for c in (0, 1)])
    params = {k: v for k, v in model.get_xgb_params().items() if v is not None}
    params["nthread"] = 1
    params.pop("n_jobs", None)
    dtrain = xgb.DMatrix(X[rows], label=y[rows], weight=w[rows])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            booster = xgb.train(params, dtrain, num_boost_round=1)
        except xgb.core.XGBoostError as exc:
            raise ModelError(f"classifiers[].params of classifier {name!r}: {exc}") from exc
    unused: set[str] = set()
    for warning in caught:
        m = _UNUSED.search(str(warning.message))
        if m:
            unused.update(re.findall(r'"([^"]+)"', m.group(1)))
    if unused:
        valid = set(xgb.XGBClassifier().get_params())
        valid |= _config_names(json.loads(booster.save_config()), set())
        raise unknown_params_error(f"classifier {name!r}", "XGBoost", unused, valid - unused)


def _progress_callback(progress: FitProgress, total: int) -> Any:
    import xgboost as xgb

    class _Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            done = epoch + 1
            if progress.due(done, total):
                progress.log.info(
                    "%s: iteration %d/%d (%.1f s)", progress.name, done, total, progress.elapsed()
                )
            return False

    return _Progress()


class XGBoostAdapter(ClassifierAdapter):
    """``xgb``: the scikit-learn wrapper ``XGBClassifier``; ``n_jobs`` is its ``nthread``."""

    family: ClassVar[str] = "xgb"
    extension: ClassVar[str] = "ubj"
    types: ClassVar[Mapping[str, str]] = {"xgb": "xgboost:XGBClassifier"}
    default_params: ClassVar[Mapping[str, Any]] = {"tree_method": "hist"}
    check_params: ClassVar[bool] = False
    threads_param: ClassVar[bool] = True

    def handles(self, cls: type) -> bool:
        return any(m.startswith("xgboost.") and m.endswith(".XGBModel") for m in mro_names(cls))

    def owns_model(self, model: Any) -> bool:
        return hasattr(model, "get_booster")

    def fit(
        self,
        model: Any,
        X: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        *,
        features: list[str],
        threads: int,
        progress: FitProgress,
    ) -> None:
        check_parameters(model, X, y, w, progress.name)
        total = model.get_params().get("n_estimators") or 100
        model.set_params(callbacks=[_progress_callback(progress, total)])
        try:
            model.fit(X, y, sample_weight=w, verbose=False)
        finally:
            model.set_params(callbacks=None)

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        with temporary_n_jobs(model, threads):
            p = model.predict_proba(X)[:, signal_column(model)]
        return np.asarray(p, dtype=np.float64)

    def n_iterations(self, model: Any) -> int | None:
        return int(model.get_booster().num_boosted_rounds())

    def importances(self, model: Any, features: list[str]) -> np.ndarray | None:
        """Total split gain; XGBoost names the features ``f0, f1, ...`` when fitted on arrays."""
        score = model.get_booster().get_score(importance_type="total_gain")
        return np.array([score.get(f"f{i}", score.get(f, 0.0)) for i, f in enumerate(features)])

    def save(self, model: Any, path: Path) -> None:
        """UBJSON, written to a temporary file in the same directory and renamed (with the
        mode the umask gives, :func:`systpipe.io.output_mode`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ubj", dir=path.parent)
        os.close(fd)
        try:
            model.save_model(tmp)
            publish(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, path: Path) -> Any:
        import xgboost as xgb

        model = xgb.XGBClassifier()
        model.load_model(str(path))
        return model


__all__ = ["XGBoostAdapter"]
