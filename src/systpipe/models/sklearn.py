"""scikit-learn classifiers: HistGradientBoosting (``hgb``), forests (``rf``) and any
scikit-learn-compatible estimator given as an import path; all saved with skops.

Thread-count independence (measured 1 vs 2 threads, same seed, up to 200k x 15 features,
scikit-learn 1.9): HistGradientBoosting is identical (histograms are built per feature, sums in
row order). Forests fit identical trees, but ``predict_proba`` with ``n_jobs > 1`` adds the
trees in completion order, which varies from run to run: :func:`forest_proba` sums in tree
order instead.
"""

from __future__ import annotations

import contextlib
import difflib
import io as _io
import re
from collections.abc import Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from joblib import parallel_config

from ..errors import ModelError
from .base import ClassifierAdapter, FitProgress, mro_names, signal_column, temporary_n_jobs
from .persistence import load_skops, save_skops

#: Rows per task when a forest is scored on several threads.
FOREST_CHUNK = 65_536

_HGB_BASE = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.BaseHistGradientBoosting"
_FOREST_BASE = "sklearn.ensemble._forest.BaseForest"


class _LogLines(_io.TextIOBase):
    """A text stream that forwards HistGradientBoosting's verbose output to the log."""

    _ITER = re.compile(r"^\[(\d+)/(\d+)\]")

    def __init__(self, progress: FitProgress) -> None:
        self.progress_ = progress
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
        p = self.progress_
        m = self._ITER.match(line)
        if m and (int(m.group(1)) % p.every(int(m.group(2))) == 0 or m.group(1) == m.group(2)):
            p.log.info("%s: %s", p.name, line)
        else:
            p.log.debug("%s: %s", p.name, line)


def unknown_params_error(
    where: str, owner: str, unknown: Iterable[str], valid: Collection[str]
) -> ModelError:
    """The one message for ``classifiers[].params`` a library does not know (every adapter).

    Each unknown name comes with its closest valid names (difflib); the libraries would
    otherwise drop a misspelled parameter silently (LightGBM, XGBoost) and train with the
    default.

    Example:
        >>> str(unknown_params_error("type 'lgbm'", "LGBMClassifier", ["n_estimator"],
        ...                          ["n_estimators", "num_leaves"]))  # doctest: +NORMALIZE_WHITESPACE
        "classifiers[].params of type 'lgbm': unknown parameter(s) for LGBMClassifier:
        'n_estimator' (closest valid: 'n_estimators'); the library would ignore or refuse them"
    """
    names = sorted(valid)
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            parts.append(f"{name!r} (closest valid: {', '.join(repr(c) for c in close)})")
        elif len(names) <= 60:
            parts.append(f"{name!r} (no close match; valid: {names})")
        else:
            parts.append(f"{name!r} (no close match among the {len(names)} valid parameters)")
    return ModelError(
        f"classifiers[].params of {where}: unknown parameter(s) for {owner}: "
        f"{'; '.join(parts)}; the library would ignore or refuse them"
    )


def forest_proba(model: Any, X: np.ndarray, threads: int) -> np.ndarray:
    """Signal probability of a scikit-learn forest, identical for any thread count."""
    # scikit-learn forests with n_jobs > 1 add the per-tree probabilities into one array in
    # whatever order the threads finish, so the last bits change from run to run. Here every
    # row sums its trees in tree order (n_jobs=1) and the threads share out row chunks instead:
    # identical results for any thread count.
    col = signal_column(model)
    slices = [slice(i, i + FOREST_CHUNK) for i in range(0, len(X), FOREST_CHUNK)]
    with temporary_n_jobs(model, 1):
        if threads == 1 or len(slices) == 1:
            return np.asarray(model.predict_proba(X)[:, col], dtype=np.float64)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(lambda sl: model.predict_proba(X[sl])[:, col], slices))
    return np.concatenate(parts).astype(np.float64, copy=False)


class SklearnAdapter(ClassifierAdapter):
    """Any scikit-learn-compatible estimator given as ``package.module:Class``.

    Threads reach it through ``joblib.parallel_config`` (and the caller's OpenMP/BLAS
    limit), never through ``n_jobs``, which some estimators have deprecated.
    """

    family: ClassVar[str] = "sklearn"
    extension: ClassVar[str] = "skops"

    def handles(self, cls: type) -> bool:
        return True  # the fallback for every estimator no other library claims

    def build(
        self, cls: type, params: Mapping[str, Any], *, threads: int, seed: int, type_: str
    ) -> Any:
        """As :meth:`ClassifierAdapter.build`, with unknown parameters refused by
        :func:`unknown_params_error` (closest valid names) before the estimator is built."""
        try:
            valid = set(cls().get_params()) if hasattr(cls, "get_params") else set()
        except Exception:  # an estimator that cannot be built without arguments
            valid = set()
        unknown = set(params) - valid
        if valid and unknown:
            raise unknown_params_error(f"type {type_!r}", cls.__name__, unknown, valid)
        return super().build(cls, params, threads=threads, seed=seed, type_=type_)

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
        from sklearn.utils.validation import has_fit_parameter

        if not has_fit_parameter(model, "sample_weight"):
            raise ModelError(
                f"classifier {progress.name!r}: {type(model).__name__}.fit does not accept "
                "sample_weight, so the training weights (training.weighting) cannot be applied"
            )
        with parallel_config(n_jobs=threads):
            model.fit(X, y, sample_weight=w)

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        # joblib and OpenMP/BLAS limits, stored params untouched (setting n_jobs warns on
        # estimators that deprecated it).
        with parallel_config(n_jobs=threads):
            p = model.predict_proba(X)[:, signal_column(model)]
        return np.asarray(p, dtype=np.float64)

    def save(self, model: Any, path: Path) -> None:
        save_skops(model, path)

    def load(self, path: Path) -> Any:
        return load_skops(path)


class HistGradientBoostingAdapter(SklearnAdapter):
    """``hgb``: no native thread setting, so threads are limited through OpenMP (the caller's
    threadpoolctl limit); no native feature importance (permutation importance would cost
    extra predictions per feature)."""

    family: ClassVar[str] = "hgb"
    types: ClassVar[Mapping[str, str]] = {"hgb": "sklearn.ensemble:HistGradientBoostingClassifier"}

    def handles(self, cls: type) -> bool:
        return _HGB_BASE in mro_names(cls)

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
        verbose = model.verbose
        model.set_params(verbose=2)  # 2: one line per iteration
        stream = _LogLines(progress)
        try:
            with contextlib.redirect_stdout(stream):
                model.fit(X, y, sample_weight=w)
        finally:
            stream.finish()
            model.set_params(verbose=verbose)

    def n_iterations(self, model: Any) -> int | None:
        return int(model.n_iter_)


class RandomForestAdapter(SklearnAdapter):
    """``rf`` and every other scikit-learn forest: ``n_jobs`` threads, tree-order scoring."""

    family: ClassVar[str] = "rf"
    types: ClassVar[Mapping[str, str]] = {"rf": "sklearn.ensemble:RandomForestClassifier"}
    threads_param: ClassVar[bool] = True

    def handles(self, cls: type) -> bool:
        return _FOREST_BASE in mro_names(cls)

    def owns_model(self, model: Any) -> bool:
        from sklearn.ensemble._forest import BaseForest

        return isinstance(model, BaseForest)

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
        # Trees in batches through warm_start: scikit-learn draws the per-tree seeds so that
        # the forest is identical to a single fit, and each batch gives a progress message.
        total, warm = model.n_estimators, model.warm_start
        step = progress.every(total)
        try:
            for n in [*range(step, total, step), total]:
                model.set_params(n_estimators=n, warm_start=True)
                model.fit(X, y, sample_weight=w)
                progress.log.info(
                    "%s: %d/%d trees (%.1f s)", progress.name, n, total, progress.elapsed()
                )
        finally:
            model.set_params(n_estimators=total, warm_start=warm)

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        return forest_proba(model, X, threads)

    def n_iterations(self, model: Any) -> int | None:
        return len(model.estimators_)


__all__ = [
    "FOREST_CHUNK",
    "HistGradientBoostingAdapter",
    "RandomForestAdapter",
    "SklearnAdapter",
    "forest_proba",
    "unknown_params_error",
]
