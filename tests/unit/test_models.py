"""Tests of the systpipe.models registry: lookups, and a classifier library added as a plugin.

The plugin below is a complete library in one class: registering it is all it takes for
``classifiers[].type: lrjson`` to train, save, load and score through the public functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from systpipe import models
from systpipe.errors import ModelError
from systpipe.models import (
    adapter_for,
    adapter_for_model,
    classifier_family,
    load_model,
    model_file_extension,
    register_library,
    save_model,
    unregister_library,
)
from systpipe.models.base import ClassifierAdapter, FitProgress
from systpipe.score import predict_scores
from systpipe.train import feature_matrix, train_classifier

FEATURES = ["a", "b"]


class JsonLogit(LogisticRegression):
    """The estimator of the test library: a logistic regression stored as JSON."""


class JsonLogitAdapter(ClassifierAdapter):
    """A test-only library: coefficients in a ``.lrjson`` file (never pickle). It claims
    ``JsonLogit`` and its subclasses through ``types`` (the default ``handles``)."""

    family: ClassVar[str] = "lrjson"
    extension: ClassVar[str] = "lrjson"
    types: ClassVar[Mapping[str, str]] = {"lrjson": f"{__name__}:JsonLogit"}
    default_params: ClassVar[Mapping[str, Any]] = {"max_iter": 500}

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
        model.fit(X, y, sample_weight=w)
        progress.log.info("%s: fitted", progress.name)

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        return np.asarray(
            model.predict_proba(X)[:, list(model.classes_).index(1)], dtype=np.float64
        )

    def n_iterations(self, model: Any) -> int | None:
        return int(model.n_iter_[0])

    def importances(self, model: Any, features: list[str]) -> np.ndarray | None:
        return np.abs(model.coef_[0])

    def save(self, model: Any, path: Path) -> None:
        record = {
            "params": model.get_params(),
            "coef": model.coef_.tolist(),
            "intercept": model.intercept_.tolist(),
            "classes": model.classes_.tolist(),
            "n_iter": model.n_iter_.tolist(),
        }
        path.write_text(json.dumps(record))  # floats round-trip exactly through repr

    def load(self, path: Path) -> Any:
        record = json.loads(path.read_text())
        model = JsonLogit(**record["params"])
        model.coef_ = np.array(record["coef"], dtype=np.float64)
        model.intercept_ = np.array(record["intercept"], dtype=np.float64)
        model.classes_ = np.array(record["classes"])
        model.n_iter_ = np.array(record["n_iter"], dtype=np.int32)
        model.n_features_in_ = model.coef_.shape[1]
        return model


@pytest.fixture
def lrjson() -> Iterator[ClassifierAdapter]:
    adapter = register_library(JsonLogitAdapter())
    try:
        yield adapter
    finally:
        unregister_library(adapter)


def events(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int8)
    return pd.DataFrame({
        "event_id": rng.choice(10**6, n, replace=False).astype(np.int64),
        "process": np.where(y == 1, "sig", "bkg"),
        "label": y,
        "weight": np.where(y == 1, 0.1, rng.exponential(1.0, n)),
        "a": rng.normal(size=n) + y,
        "b": rng.normal(size=n) - 0.5 * y,
    })  # fmt: skip


# ---------------------------------------------------------------------------- built-ins


def test_builtin_lookups() -> None:
    assert list(models.BUILTIN_TYPES) == ["hgb", "rf", "lgbm", "xgb", "inferno"]
    families = [adapter_for(t).family for t in models.BUILTIN_TYPES]
    assert families == ["hgb", "rf", "lgbm", "xgb", "inferno"]
    assert classifier_family("sklearn.ensemble:ExtraTreesClassifier") == "rf"  # any forest
    assert classifier_family("lightgbm:LGBMClassifier") == "lgbm"
    assert classifier_family("sklearn.linear_model:LogisticRegression") == "sklearn"
    assert adapter_for_model(LogisticRegression()).family == "sklearn"


def test_config_uses_the_registry_names() -> None:
    from systpipe.config import BUILTIN_CLASSIFIERS

    assert BUILTIN_CLASSIFIERS == tuple(models.BUILTIN_TYPES)


def test_registration_is_checked(lrjson: ClassifierAdapter) -> None:
    with pytest.raises(ModelError, match="family 'lrjson' is already registered"):
        register_library(JsonLogitAdapter())

    class Clash(JsonLogitAdapter):
        family: ClassVar[str] = "clash"
        types: ClassVar[Mapping[str, str]] = {"xgb": "xgboost:XGBClassifier"}

    with pytest.raises(ModelError, match=r"\['xgb'\] are already registered"):
        register_library(Clash())
    with pytest.raises(ModelError, match="not a ClassifierAdapter"):
        register_library(object())  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="no registered library 'nope'"):
        unregister_library("nope")


# ---------------------------------------------------------------------------- a plugin library


def test_plugin_library_round_trip(lrjson: ClassifierAdapter, tmp_path: Path) -> None:
    df = events()
    assert adapter_for("lrjson") is lrjson
    assert adapter_for(f"{__name__}:JsonLogit") is lrjson  # import path: chosen by class
    assert classifier_family("lrjson") == "lrjson" and model_file_extension("lrjson") == "lrjson"
    assert "lrjson" in models.classifier_types()

    model, info = train_classifier(
        df, features=FEATURES, name="lr", type_="lrjson", params={"C": 0.5}, threads=1, seed=3
    )
    assert type(model) is JsonLogit and model.get_params()["max_iter"] == 500
    assert info.n_iterations == int(model.n_iter_[0]) > 0
    assert sum(info.feature_importances.values()) == pytest.approx(1.0)

    path = save_model(model, tmp_path / "lr", "lrjson")
    assert path.name == "lr.lrjson" and path.read_bytes()[:1] == b"{"
    loaded = load_model(path)
    assert type(loaded) is JsonLogit and adapter_for_model(loaded) is lrjson
    # on the C-ordered matrix systpipe scores: the F-ordered df.to_numpy() takes another BLAS
    # kernel, 1 ulp away in 55 of 800 events on an AMD EPYC
    expected = model.predict_proba(feature_matrix(df, FEATURES))[:, 1]
    for m in (model, loaded):
        scores = predict_scores(m, df, features=FEATURES, threads=2)
        assert scores.dtype == np.float64 and np.array_equal(scores, expected)


def test_unregistered_plugin_is_gone(lrjson: ClassifierAdapter, tmp_path: Path) -> None:
    unregister_library(lrjson)
    try:
        with pytest.raises(
            ModelError, match=r"unknown classifier type 'lrjson'.*hgb, rf, lgbm, xgb"
        ):
            adapter_for("lrjson")
        (tmp_path / "m.lrjson").write_text("{}")
        with pytest.raises(
            ModelError,
            match=r"unknown model file extension '.lrjson'; "
            r"expected .txt, .ubj, .skops or .npz",
        ):
            load_model(tmp_path / "m.lrjson")
        # an import path to the plugin's class falls back to the generic scikit-learn library
        assert adapter_for(f"{__name__}:JsonLogit").family == "sklearn"
    finally:
        register_library(lrjson)  # the fixture unregisters it


def test_plugin_extension_listed_while_registered(
    lrjson: ClassifierAdapter, tmp_path: Path
) -> None:
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match=r"expected .txt, .ubj, .skops, .npz or .lrjson"):
        load_model(tmp_path / "m.pkl")


def test_skops_types_match_fresh_models(tmp_path):
    """SKOPS_TYPES is exactly what fresh models of every scikit-learn type systpipe saves contain
    beyond skops' defaults: a scikit-learn or skops upgrade that changes the set fails here."""
    import skops.io as sio

    from systpipe.models import build_classifier
    from systpipe.models.skops_types import SKOPS_REFERENCE_TYPES, SKOPS_TYPES

    rng = np.random.default_rng(0)
    n = 12_000  # above 10,000 rows HistGradientBoosting's early_stopping="auto" is on
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(np.int64)
    found: set[str] = set()
    for i, (type_, params) in enumerate(SKOPS_REFERENCE_TYPES):
        model = build_classifier(type_, params, threads=1, seed=0).fit(X, y)
        path = save_model(model, tmp_path / f"m{i}", type_)
        assert path.suffix == ".skops", type_
        found |= set(sio.get_untrusted_types(file=path))
    assert found == set(SKOPS_TYPES), (
        f"fresh models contain {sorted(found)}; review the difference "
        f"(added {sorted(found - SKOPS_TYPES)}, gone {sorted(SKOPS_TYPES - found)}) and update "
        "src/systpipe/models/skops_types.py"
    )


def test_skops_import_does_not_import_torch():
    """skops.io's estimator walk would import torch (seconds per job) when the nn extra is
    installed; the model loader keeps it out and torch still imports afterwards."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        "from systpipe.models.persistence import _import_skops_io\n"
        "sio = _import_skops_io()\n"
        "assert 'torch' not in sys.modules, 'skops.io imported torch'\n"
        "assert sio.get_untrusted_types is not None\n"
        "if importlib.util.find_spec('torch') is not None:\n"
        "    import torch\n"
        "    assert torch.zeros(2).sum().item() == 0.0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
