"""LightGBM (``lgbm``): the adapter and :class:`LightGBMBooster`, a model loaded from its text file.

Thread-count independence (measured 1 vs 2 threads, same seed, up to 200k x 15 features,
LightGBM 4.7): results differ by default, with ``force_col_wise`` alone, and with
``deterministic`` + ``force_row_wise``; they are identical only with ``deterministic`` +
``force_col_wise``, which are therefore the defaults. Model files differ only in the recorded
thread count, which :meth:`LightGBMAdapter.save` sets to 0.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..io import write_text
from .base import ClassifierAdapter, FitProgress, mro_names
from .sklearn import unknown_params_error

log = logging.getLogger(__name__)


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


@cache
def lightgbm_parameter_names() -> frozenset[str]:
    """Every parameter name LightGBM knows: its core parameters with all their aliases, as the
    library itself lists them (``LGBM_DumpParamAliases``), and the scikit-learn wrapper's.

    Example:
        >>> names = lightgbm_parameter_names()
        >>> {"n_estimators", "num_iterations", "min_data_in_leaf", "verbose"} <= names
        True
        >>> "n_estimator" in names
        False
    """
    import lightgbm as lgb

    names = set(lgb.LGBMClassifier().get_params())
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):  # pragma: no cover - a LightGBM without the dump
        log.warning("LightGBM does not list its parameters: only the wrapper's are accepted")
        return frozenset(names)
    for main, alias in aliases.items():
        names.add(main)
        names.update(alias)
    return frozenset(names)


def _progress_callback(progress: FitProgress) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        done, total = env.iteration + 1, env.end_iteration
        if progress.due(done, total):
            progress.log.info(
                "%s: iteration %d/%d (%.1f s)", progress.name, done, total, progress.elapsed()
            )

    return callback


class LightGBMAdapter(ClassifierAdapter):
    """``lgbm``: ``n_jobs`` threads, deterministic column-wise histograms, text model files."""

    family: ClassVar[str] = "lgbm"
    extension: ClassVar[str] = "txt"
    types: ClassVar[Mapping[str, str]] = {"lgbm": "lightgbm:LGBMClassifier"}
    default_params: ClassVar[Mapping[str, Any]] = {
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    check_params: ClassVar[bool] = False
    threads_param: ClassVar[bool] = True

    def handles(self, cls: type) -> bool:
        return any(m.startswith("lightgbm.") and m.endswith(".LGBMModel") for m in mro_names(cls))

    def owns_model(self, model: Any) -> bool:
        if isinstance(model, LightGBMBooster):
            return True
        return hasattr(model, "booster_") and type(model).__module__.startswith("lightgbm")

    def prepare_params(self, kwargs: dict[str, Any], type_: str) -> dict[str, Any]:
        """Refuse names LightGBM does not know (it would drop them with a warning that
        ``verbose: -1`` silences), then resolve ``force_row_wise`` against the defaults."""
        unknown = set(kwargs) - lightgbm_parameter_names()
        if unknown:
            raise unknown_params_error(
                f"type {type_!r}", "LightGBM", unknown, lightgbm_parameter_names()
            )
        if kwargs.get("force_row_wise"):
            kwargs.pop("force_col_wise", None)
            log.warning(
                "%s: force_row_wise makes LightGBM results depend on the thread count", type_
            )
        return kwargs

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
        names = list(features) if all(re.fullmatch(r"\w+", f) for f in features) else "auto"
        model.fit(
            X, y, sample_weight=w, feature_name=names, callbacks=[_progress_callback(progress)]
        )

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        if isinstance(model, LightGBMBooster):
            p = model.predict_proba(X, num_threads=threads)[:, 1]
        else:
            # Same call LGBMClassifier.predict_proba makes, with the thread count explicit.
            p = model.booster_.predict(X, num_threads=threads)
        return np.asarray(p, dtype=np.float64)

    def n_iterations(self, model: Any) -> int | None:
        return int(model.booster_.current_iteration())

    def importances(self, model: Any, features: list[str]) -> np.ndarray | None:
        """Total split gain (the scikit-learn wrapper or a loaded booster)."""
        return np.asarray(model.booster_.feature_importance(importance_type="gain"), dtype=float)

    def save(self, model: Any, path: Path) -> None:
        """The booster's text format, with the ``num_threads`` entry of its informational
        parameter block set to 0 so the file does not depend on the thread count."""
        text = model.booster_.model_to_string()
        text = re.sub(r"^\[num_threads: [^\]]*\]$", "[num_threads: 0]", text, count=1, flags=re.M)
        write_text(text, path)

    def load(self, path: Path) -> Any:
        import lightgbm as lgb

        return LightGBMBooster(lgb.Booster(model_file=str(path)))


__all__ = ["LightGBMAdapter", "LightGBMBooster"]
