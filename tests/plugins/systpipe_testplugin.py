"""A test-only systpipe plugin with one extension of each kind, registered on import.

It is found through the ``systpipe.plugins`` entry point of the ``systpipe_testplugin-0.1.dist-info``
folder beside it when this folder is on ``sys.path`` (``PYTHONPATH``), exactly as an installed
third-party plugin would be. Each extension touches one module plus its registry entry:

- systematic kind ``xsec``: a cross-section (rate) uncertainty, a ``norm`` under another name;
- classifier library ``gnb``: scikit-learn's GaussianNB, stored as JSON (never pickled);
- statistical method ``stat_only``: the cut-and-count interval with the statistical error only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from systpipe import io
from systpipe.models import register_library
from systpipe.models.base import ClassifierAdapter
from systpipe.stat.methods import Method, MethodResult, register_method
from systpipe.systematics import Norm, register_kind


class CrossSection(Norm):
    """A rate uncertainty on the listed processes: a norm-like kind with its own name."""

    name = "xsec"


class GaussianNBAdapter(ClassifierAdapter):
    family = "gnb"
    extension = "gnbjson"
    types = {"gnb": "sklearn.naive_bayes:GaussianNB"}
    check_params = True

    def handles(self, cls: type) -> bool:
        return cls.__module__.startswith("sklearn.naive_bayes") and cls.__name__ == "GaussianNB"

    def fit(self, model: Any, X: np.ndarray, y: np.ndarray, w: np.ndarray, **kwargs: Any) -> None:
        model.fit(X, y, sample_weight=w)

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        return np.asarray(
            model.predict_proba(X)[:, list(model.classes_).index(1)], dtype=np.float64
        )

    def save(self, model: Any, path: Path) -> None:
        state = {
            k: np.asarray(getattr(model, k)).tolist()
            for k in ("classes_", "class_prior_", "theta_", "var_", "class_count_")
        }
        state["epsilon_"] = float(model.epsilon_)
        state["n_features_in_"] = int(model.n_features_in_)
        io.write_text(json.dumps(state, sort_keys=True), path)

    def load(self, path: Path) -> Any:
        from sklearn.naive_bayes import GaussianNB

        state = json.loads(Path(path).read_text())
        model = GaussianNB()
        for key, value in state.items():
            setattr(model, key, np.asarray(value) if isinstance(value, list) else value)
        return model


def _stat_only(inputs: Any, n: np.ndarray, aux: np.ndarray, symmetrise: str) -> MethodResult:
    cut = inputs.cut
    count = float(n[cut.bins].sum())
    mu = (count - cut.b) / cut.s
    half = math.sqrt(max(count, 0.0)) / cut.s
    return MethodResult("stat_only", mu, mu - half, mu + half)


register_kind(CrossSection())
register_library(GaussianNBAdapter())
register_method(Method("stat_only", _stat_only))
