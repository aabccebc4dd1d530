"""What a classifier library provides to systpipe: the :class:`ClassifierAdapter` base class.

One adapter per library family builds, fits, scores, inspects and persists that library's
models; :mod:`systpipe.models` is the registry that picks the adapter for a
``classifiers[].type``, a model object or a model file (docs/extending.md).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError


@dataclass
class FitProgress:
    """Where a fit reports its progress and how often: about ``messages`` lines per fit.

    Example:
        >>> p = FitProgress("bdt", logging.getLogger("demo"))
        >>> p.every(200), p.due(40, 200), p.due(41, 200), p.due(7, 7)
        (20, True, False, True)
    """

    name: str
    log: logging.Logger
    messages: int = 10
    started: float = field(default_factory=time.perf_counter)

    def every(self, total: int) -> int:
        """Report every this many iterations out of ``total``."""
        return max(1, int(total) // self.messages)

    def due(self, done: int, total: int) -> bool:
        """Whether iteration ``done`` of ``total`` gets a progress message."""
        return done % self.every(total) == 0 or done == total

    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.perf_counter() - self.started


def mro_names(cls: type) -> set[str]:
    """``module.QualName`` of every class in the method resolution order of ``cls``.

    Matching on names lets an adapter recognise its library's classes without importing it.
    """
    return {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__}


def signal_column(model: Any) -> int:
    """Column of ``predict_proba`` that holds the signal (label 1) probability."""
    classes = list(getattr(model, "classes_", [0, 1]))
    if 1 not in classes:
        raise ModelError(
            f"{type(model).__name__}: classes {classes} do not include the signal label 1"
        )
    return classes.index(1)


@contextlib.contextmanager
def temporary_n_jobs(model: Any, threads: int) -> Iterator[None]:
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


class ClassifierAdapter:
    """One classifier library: how systpipe builds, fits, scores and stores its models.

    Subclasses set the class attributes and implement :meth:`fit`, :meth:`predict_proba`,
    :meth:`save` and :meth:`load`; the others have working defaults for scikit-learn-style
    estimators. Register an instance with :func:`systpipe.models.register_library`.

    Attributes:
        family: unique library name, reported by ``classifier_family``.
        extension: model file extension without the dot; :meth:`load` reads these files.
        types: ``classifiers[].type`` names this library provides, each an import path
            ``package.module:Class`` of the estimator it builds.
        default_params: applied before the user's ``classifiers[].params``.
        check_params: refuse parameters the estimator's ``get_params`` does not list.
        threads_param: the estimator's ``n_jobs`` means threads (set from ``threads``).
    """

    family: ClassVar[str] = ""
    extension: ClassVar[str] = ""
    types: ClassVar[Mapping[str, str]] = {}
    default_params: ClassVar[Mapping[str, Any]] = {}
    check_params: ClassVar[bool] = True
    threads_param: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} family={self.family!r} extension={self.extension!r}>"

    # ---------------------------------------------------------------- which models are ours

    def handles(self, cls: type) -> bool:
        """Whether estimator class ``cls`` belongs to this library (import-path types, models).

        By default: ``cls`` is, or derives from, one of the estimators named in :attr:`types`
        (whose modules are imported for the check).
        """
        for path in self.types.values():
            module_name, sep, attr = path.partition(":")
            if not sep:
                module_name, _, attr = path.rpartition(".")
            try:
                target = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError, ValueError):
                continue
            if isinstance(target, type) and issubclass(cls, target):
                return True
        return False

    def owns_model(self, model: Any) -> bool:
        """Whether this adapter scores and inspects ``model`` (fitted or loaded)."""
        return self.handles(type(model))

    def owns(self, model_or_path: Any) -> bool:
        """Whether ``model_or_path`` is one of this library's models or model files."""
        if isinstance(model_or_path, str | os.PathLike):
            return Path(model_or_path).suffix.lstrip(".") == self.extension
        return self.owns_model(model_or_path)

    # ---------------------------------------------------------------- building and fitting

    def prepare_params(self, kwargs: dict[str, Any], type_: str) -> dict[str, Any]:
        """Adjust the merged defaults + user parameters before the estimator is built."""
        return kwargs

    def build(
        self, cls: type, params: Mapping[str, Any], *, threads: int, seed: int, type_: str
    ) -> Any:
        """An unfitted ``cls`` with :attr:`default_params`, ``params``, ``threads`` and ``seed``.

        Raises:
            ModelError: an unknown parameter or a value the estimator refuses.
        """
        kwargs: dict[str, Any] = self.prepare_params({**self.default_params, **params}, type_)
        try:
            est = cls()
            valid = set(est.get_params()) if hasattr(est, "get_params") else set()
            if self.check_params and valid:
                unknown = sorted(set(kwargs) - valid)
                if unknown:
                    raise ModelError(
                        f"classifiers[].params: {unknown} not accepted by {cls.__name__}; "
                        f"valid: {sorted(valid)}"
                    )
            # Only where n_jobs is known to mean threads: other estimators may have deprecated
            # it (LogisticRegression warns from 1.8) and get joblib.parallel_config instead.
            if "n_jobs" in valid and self.threads_param:
                kwargs["n_jobs"] = threads
            if "random_state" in valid:
                kwargs["random_state"] = seed
            return cls(**kwargs)
        except ModelError:
            raise
        except Exception as exc:  # the estimator's own validation: wrong types or values
            raise ModelError(f"classifiers[].params of type {type_!r}: {exc}") from exc

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
        """Fit ``model`` in place on ``X``, ``y`` with sample weights ``w``, with ``threads``
        threads (the caller also limits OpenMP/BLAS), logging through ``progress``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- using a fitted model

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        """Signal probability (float64) of every row of ``X`` with ``threads`` threads; the
        model's stored settings are left unchanged."""
        raise NotImplementedError

    def n_iterations(self, model: Any) -> int | None:
        """Boosting iterations or trees of a fitted model, ``None`` if not meaningful."""
        return None

    def importances(self, model: Any, features: list[str]) -> np.ndarray | None:
        """Raw native feature importances, one per feature, or ``None`` if there are none."""
        if hasattr(model, "feature_importances_"):
            try:
                return np.asarray(model.feature_importances_, dtype=float)
            except (AttributeError, ValueError):
                return None
        return None

    # ---------------------------------------------------------------- persistence (no pickle)

    def save(self, model: Any, path: Path) -> None:
        """Write ``model`` to ``path`` (ending in ``.extension``), atomically."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        """Read a model written by :meth:`save`."""
        raise NotImplementedError


__all__ = ["ClassifierAdapter", "FitProgress", "mro_names", "signal_column", "temporary_n_jobs"]
