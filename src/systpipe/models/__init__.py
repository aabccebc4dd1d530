"""The registry of classifier libraries: which adapter builds, scores and stores which model.

A ``classifiers[].type`` is a built-in name (:data:`BUILTIN_TYPES`), a name a plugin library
registered, or an import path ``package.module:Class`` of a scikit-learn-compatible
estimator, whose adapter is chosen by library family (the classes it derives from). A model
object is matched to the adapter that owns it and a model file to the adapter owning its
extension. Libraries registered with :func:`register_library` are consulted before the
built-in ones (docs/extending.md).

Adding a classifier library means one module with a :class:`~.base.ClassifierAdapter`
subclass plus its entry in ``_BUILTIN_LIBRARIES`` and :data:`BUILTIN_TYPES` here, or a
:func:`register_library` call (from a plugin) instead.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..inferno.adapter import InferenceAwareAdapter
from .base import ClassifierAdapter
from .lightgbm import LightGBMAdapter
from .sklearn import HistGradientBoostingAdapter, RandomForestAdapter, SklearnAdapter
from .xgboost import XGBoostAdapter

log = logging.getLogger(__name__)

_LGBM, _XGB = LightGBMAdapter(), XGBoostAdapter()
_HGB, _RF = HistGradientBoostingAdapter(), RandomForestAdapter()
_INFERNO = InferenceAwareAdapter()
#: The built-in libraries, in the order estimator classes and models are matched against them.
_BUILTIN_LIBRARIES: tuple[ClassifierAdapter, ...] = (_LGBM, _XGB, _HGB, _RF, _INFERNO)
#: Estimators that no library claims: any scikit-learn-compatible class, saved with skops.
_GENERIC: ClassifierAdapter = SklearnAdapter()
#: Libraries added by :func:`register_library` (plugins), consulted first.
_PLUGINS: list[ClassifierAdapter] = []

#: Built-in classifier types (``classifiers[].type``) and the estimator each one builds.
BUILTIN_TYPES: dict[str, str] = {
    **_HGB.types, **_RF.types, **_LGBM.types, **_XGB.types, **_INFERNO.types,
}  # fmt: skip

#: Parameters systpipe sets itself: threads come from the rule's ``threads``, seeds from the
#: config's ``seed``, so a value in ``classifiers[].params`` would be silently overridden.
RESERVED_PARAMS = frozenset(
    {"n_jobs", "nthread", "nthreads", "num_threads", "num_thread", "n_threads", "thread_count",
     "random_state", "seed", "random_seed"}
)  # fmt: skip


def libraries() -> tuple[ClassifierAdapter, ...]:
    """Every registered library adapter, plugins first, without the generic fallback."""
    return (*_PLUGINS, *_BUILTIN_LIBRARIES)


def classifier_types() -> dict[str, str]:
    """All named classifier types (built-in, then plugins) and their estimator import paths.

    Example:
        >>> list(classifier_types())
        ['hgb', 'rf', 'lgbm', 'xgb', 'inferno']
    """
    out = dict(BUILTIN_TYPES)
    for adapter in _PLUGINS:
        out.update(adapter.types)
    return out


def register_library(adapter: ClassifierAdapter) -> ClassifierAdapter:
    """Add a classifier library; returns ``adapter``.

    Its :attr:`~.base.ClassifierAdapter.types` become valid ``classifiers[].type`` names, and
    estimator classes, models and model files it claims are handled by it from now on.

    Raises:
        ModelError: not an adapter, no family or extension, or a family or type name that
            is already registered.
    """
    if not isinstance(adapter, ClassifierAdapter):
        raise ModelError(f"register_library: {adapter!r} is not a ClassifierAdapter")
    if not adapter.family or not adapter.extension:
        raise ModelError(f"register_library: {adapter!r} needs a family and a file extension")
    taken = [a for a in (*libraries(), _GENERIC) if a.family == adapter.family]
    if taken:
        raise ModelError(f"register_library: family {adapter.family!r} is already registered")
    clash = sorted(set(adapter.types).intersection(classifier_types()))
    if clash:
        raise ModelError(f"register_library: classifier type(s) {clash} are already registered")
    _PLUGINS.append(adapter)
    log.debug("registered classifier library %s", adapter)
    return adapter


def unregister_library(adapter: ClassifierAdapter | str) -> None:
    """Remove a library added by :func:`register_library` (the adapter or its family)."""
    family = adapter if isinstance(adapter, str) else adapter.family
    for i, known in enumerate(_PLUGINS):
        if known.family == family:
            del _PLUGINS[i]
            return
    raise ModelError(f"unregister_library: no registered library {family!r}")


def _unknown(type_: str, detail: str = "") -> ModelError:
    known = ", ".join(classifier_types())
    return ModelError(
        f"classifiers[].type: unknown classifier type {type_!r}{detail}; use one of {known} or "
        "an import path 'package.module:Class' of a scikit-learn-compatible estimator"
    )


def resolve_class(type_: str) -> type:
    """The estimator class of ``classifiers[].type`` (imports its module).

    Raises:
        ModelError: unknown name, unimportable path, or not a class with fit and predict_proba.
    """
    target = classifier_types().get(type_, type_)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise _unknown(type_)
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise _unknown(type_, f" ({exc})") from exc
    if not isinstance(obj, type) or not all(hasattr(obj, m) for m in ("fit", "predict_proba")):
        raise ModelError(
            f"classifiers[].type: {type_!r} is not a classifier class with fit and predict_proba"
        )
    return obj


def adapter_for_class(cls: type) -> ClassifierAdapter:
    """The library of estimator class ``cls``: the first that claims it, else the generic one."""
    for adapter in libraries():
        if adapter.handles(cls):
            return adapter
    return _GENERIC


def adapter_for(type_: str) -> ClassifierAdapter:
    """The library adapter of ``classifiers[].type``: by name, else by the estimator's family.

    Raises:
        ModelError: an import path that does not resolve to a classifier class.

    Example:
        >>> adapter_for("xgb").extension, adapter_for("sklearn.svm:SVC").family
        ('ubj', 'sklearn')
    """
    for adapter in libraries():
        if type_ in adapter.types:
            return adapter
    return adapter_for_class(resolve_class(type_))


def adapter_for_model(model: Any) -> ClassifierAdapter:
    """The adapter that scores and inspects ``model`` (fitted or loaded), else the generic one."""
    for adapter in libraries():
        if adapter.owns_model(model):
            return adapter
    return _GENERIC


def _adapter_for_path(path: Path) -> ClassifierAdapter | None:
    for adapter in libraries():
        if adapter.owns(path):
            return adapter
    return None


def classifier_family(type_: str) -> str:
    """Library family of ``classifiers[].type``: lgbm, xgb, hgb, rf or sklearn (or a plugin's).

    Example:
        >>> classifier_family("lgbm"), classifier_family("rf")
        ('lgbm', 'rf')
    """
    return adapter_for(type_).family


def model_file_extension(type_: str) -> str:
    """File extension (no dot) of the saved model: ``txt`` (LightGBM), ``ubj`` (XGBoost),
    ``skops`` (scikit-learn and import-path estimators).

    Example:
        >>> [model_file_extension(t) for t in ("hgb", "rf", "lgbm", "xgb")]
        ['skops', 'skops', 'txt', 'ubj']
    """
    return adapter_for(type_).extension


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
    cls = resolve_class(type_)
    adapter = adapter_for(type_)
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise ModelError(
            f"classifiers[].params of type {type_!r}: {reserved} are set by systpipe (threads "
            "from the rule's threads / training.threads, seeds from 'seed'); remove them"
        )
    return adapter.build(cls, params, threads=threads, seed=seed, type_=type_)


def _extensions() -> str:
    exts = [f".{e}" for e in dict.fromkeys(a.extension for a in (*_BUILTIN_LIBRARIES, *_PLUGINS))]
    return ", ".join(exts[:-1]) + " or " + exts[-1] if len(exts) > 1 else exts[0]


def save_model(model: Any, path_stem: str | os.PathLike[str], type_: str) -> Path:
    """Save ``model`` natively at ``path_stem + '.' + model_file_extension(type_)``, atomically.

    LightGBM: the booster's text format (``.txt``), with the ``num_threads`` entry of its
    informational parameter block set to 0 so the file does not depend on the thread count.
    XGBoost: UBJSON (``.ubj``). scikit-learn and import-path estimators: skops (``.skops``),
    with ids and timestamps made canonical. Never pickle.

    Raises:
        ModelError: the model cannot be serialised in its format.
    """
    adapter = adapter_for(type_)
    ext = adapter.extension
    path = Path(f"{os.fspath(path_stem)}.{ext}")
    try:
        adapter.save(model, path)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: cannot save {type(model).__name__} as .{ext}: {exc}") from exc
    log.info("saved %s model to %s", type_, path)
    return path


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a model written by :func:`save_model`, choosing the reader by file extension.

    ``.txt``: LightGBM booster wrapped in :class:`~.lightgbm.LightGBMBooster`; ``.ubj``:
    ``xgboost.XGBClassifier``; ``.skops``: skops with an explicit trusted-type list, which
    must contain only scikit-learn and numpy types (anything else is refused unloaded).

    Raises:
        ModelError: missing file, unknown extension, untrusted types, or an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    adapter = _adapter_for_path(path)
    if adapter is None:
        raise ModelError(
            f"{path}: unknown model file extension {path.suffix!r}; expected {_extensions()}"
        )
    try:
        return adapter.load(path)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: cannot load model: {exc}") from exc


__all__ = [
    "BUILTIN_TYPES",
    "RESERVED_PARAMS",
    "ClassifierAdapter",
    "adapter_for",
    "adapter_for_class",
    "adapter_for_model",
    "build_classifier",
    "classifier_family",
    "classifier_types",
    "libraries",
    "load_model",
    "model_file_extension",
    "register_library",
    "resolve_class",
    "save_model",
    "unregister_library",
]
