"""``type: inferno`` as a classifier: an estimator with fit/predict_proba and its library adapter.

:class:`InfernoClassifier` trains the INFERNO network (:func:`~.network.train_inferno`) on the
labelled training rows (``y == 1`` signal), with the binned model's yields from the sample
weights (or ``signal_yield`` / ``background_yield``) and the nuisances from ``nuisances``, a
list of mappings like ``{name: jes, kind: shift, process: background, feature: m_jj, sigma:
2.0}`` (``feature`` by column name, ``kind`` ``norm``/``shift``/``scale``, see
:mod:`~.nuisances`). ``predict_proba`` returns ``[1 - score, score]`` with the network's
signal-like score (:meth:`~.network.Network.score`), so working points and binnings are
scanned on it like on any classifier. Model files: ``.npz`` without pickle; loading and
scoring need numpy only.

Registration (the registry in :mod:`systpipe.models` is not edited here)::

    from systpipe.inferno.adapter import InferenceAwareAdapter
    register_library(InferenceAwareAdapter())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError
from ..models.base import ClassifierAdapter, FitProgress
from .fisher import BinnedSpec
from .network import Network, load_network, save_network, train_inferno
from .nuisances import Nuisance


class InfernoClassifier:
    """scikit-learn-style estimator around the INFERNO network (see the module docstring)."""

    _PARAMS = (
        "nuisances", "n_bins", "hidden", "temperature", "epochs", "batch_size", "lr",
        "signal_yield", "background_yield", "n_jobs", "random_state",
    )  # fmt: skip

    def __init__(
        self,
        nuisances: Sequence[Mapping[str, Any]] = (),
        n_bins: int = 10,
        hidden: Sequence[int] = (100, 100),
        temperature: float = 0.1,
        epochs: int = 20,
        batch_size: int = 1000,
        lr: float = 1e-3,
        signal_yield: float | None = None,
        background_yield: float | None = None,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.nuisances = nuisances
        self.n_bins = n_bins
        self.hidden = hidden
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.signal_yield = signal_yield
        self.background_yield = background_yield
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.network_: Network | None = None
        self.classes_ = np.array([0, 1])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> InfernoClassifier:
        unknown = sorted(set(params) - set(self._PARAMS))
        if unknown:
            raise ModelError(f"classifiers[].params: {unknown} not accepted by InfernoClassifier")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def spec(self, y: np.ndarray, w: np.ndarray, features: Sequence[str] | None) -> BinnedSpec:
        """The binned model: yields from the weights (or the params), nuisances by feature name."""
        nus = []
        for i, raw in enumerate(self.nuisances):
            d = dict(raw)
            feat = d.get("feature")
            if isinstance(feat, str):
                if features is None or feat not in features:
                    raise ModelError(
                        f"classifiers[].params.nuisances[{i}] ({d.get('name')!r}): feature "
                        f"{feat!r} is not a training feature; known: {list(features or [])}"
                    )
                d["feature"] = list(features).index(feat)
            nus.append(Nuisance.from_dict(d))
        s = float(w[y == 1].sum()) if self.signal_yield is None else float(self.signal_yield)
        b = (
            float(w[y == 0].sum())
            if self.background_yield is None
            else float(self.background_yield)
        )
        if not (s > 0 and b > 0):
            raise ModelError(f"inferno: signal yield {s} and background yield {b} must be > 0")
        return BinnedSpec(s, b, tuple(nus))

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        features: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> InfernoClassifier:
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        spec = self.spec(y, w, features)
        sig, bkg = y == 1, y == 0
        self.network_ = train_inferno(
            X[sig], X[bkg], spec, n_bins=int(self.n_bins), hidden=tuple(self.hidden),
            temperature=float(self.temperature), epochs=int(self.epochs),
            batch_size=int(self.batch_size), lr=float(self.lr), seed=int(self.random_state),
            threads=int(threads or self.n_jobs), w_sig=w[sig], w_bkg=w[bkg],
        )  # fmt: skip
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.network_ is None:
            raise ModelError("InfernoClassifier: not fitted")
        score = self.network_.score(np.asarray(X, dtype=float))
        return np.column_stack([1.0 - score, score])

    @classmethod
    def from_network(cls, network: Network) -> InfernoClassifier:
        """A fitted estimator around a loaded network."""
        train = network.meta.get("train", {})
        est = cls(
            n_bins=network.n_outputs,
            hidden=tuple(network.meta.get("hidden", ())),
            temperature=float(network.meta.get("temperature", 0.1)),
            epochs=int(train.get("epochs", 0)),
            batch_size=int(train.get("batch_size", 0)),
            lr=float(train.get("lr", 0.0)),
            random_state=int(train.get("seed", 0)),
        )
        est.network_ = network
        return est


class InferenceAwareAdapter(ClassifierAdapter):
    """The ``inferno`` family: :class:`InfernoClassifier`, ``.npz`` model files."""

    family: ClassVar[str] = "inferno"
    extension: ClassVar[str] = "npz"
    types: ClassVar[Mapping[str, str]] = {"inferno": "systpipe.inferno.adapter:InfernoClassifier"}
    threads_param: ClassVar[bool] = True

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
        model.fit(X, y, w, features=features, threads=threads)
        progress.log.info("%s: INFERNO fit in %.1f s", progress.name, progress.elapsed())

    def predict_proba(self, model: Any, X: np.ndarray, threads: int) -> np.ndarray:
        return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)

    def n_iterations(self, model: Any) -> int | None:
        return int(model.epochs) if model.network_ is not None else None

    def save(self, model: Any, path: Path) -> None:
        if model.network_ is None:
            raise ModelError(f"{path}: InfernoClassifier is not fitted")
        save_network(model.network_, path)

    def load(self, path: Path) -> Any:
        return InfernoClassifier.from_network(load_network(path))


__all__ = ["InferenceAwareAdapter", "InfernoClassifier"]
