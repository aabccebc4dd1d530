"""The statistical model INFERNO optimises: a POI, norm nuisances and feature-changing ones.

Parameters, in this order: the signal strength ``mu`` (signal yield ``mu * s_nominal``), then
the :class:`Nuisance` entries. A ``norm`` nuisance is a rate factor ``(1 + theta)`` on one
process (``theta`` nominal 0, Gaussian constraint ``sigma`` = relative rate uncertainty); a
``shift`` nuisance adds ``theta - nominal`` to one input feature of one process; a ``scale``
nuisance multiplies a feature by ``nominal / theta`` (an exponential with rate ``theta``
generated at rate ``nominal``). Shifts and scales act on the network inputs, so they enter the
loss as differentiable transformations (de Castro & Dorigo 2019, section 5.1).

The functions work on numpy arrays and on torch tensors alike (only indexing, arithmetic and a
column stack), so the training loss and the evaluation share the same code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ModelError

KINDS = ("norm", "shift", "scale")
PROCESSES = ("signal", "background")


@dataclass(frozen=True)
class Nuisance:
    """One nuisance parameter of the binned model.

    Attributes:
        name: parameter name.
        kind: ``norm`` (rate factor ``1 + theta``), ``shift`` (``x_f + theta - nominal``) or
            ``scale`` (``x_f * nominal / theta``).
        process: ``signal`` or ``background``.
        sigma: width of the Gaussian constraint; ``None`` means unconstrained (free).
        nominal: value the training sample was generated at (0 for ``norm``).
        feature: input column changed by ``shift``/``scale``.
        step: half-width of the finite difference used when the effect is evaluated on hard
            histograms (:func:`systpipe.inferno.fisher.template_fisher`).
    """

    name: str
    kind: str
    process: str = "background"
    sigma: float | None = None
    nominal: float = 0.0
    feature: int | None = None
    step: float | None = None

    def __post_init__(self) -> None:
        where = f"nuisance {self.name!r}"
        if self.kind not in KINDS:
            raise ModelError(f"{where}: kind {self.kind!r} is not one of {list(KINDS)}")
        if self.process not in PROCESSES:
            raise ModelError(f"{where}: process {self.process!r} is not one of {list(PROCESSES)}")
        if self.sigma is not None and not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ModelError(f"{where}: sigma must be positive and finite, got {self.sigma!r}")
        if self.kind == "norm":
            if self.nominal != 0.0:
                raise ModelError(f"{where}: a norm nuisance has nominal 0, got {self.nominal}")
        elif self.feature is None or self.feature < 0:
            raise ModelError(f"{where}: kind {self.kind!r} needs a feature index >= 0")
        if self.kind == "scale" and self.nominal <= 0:
            raise ModelError(f"{where}: a scale nuisance needs nominal > 0, got {self.nominal}")

    @property
    def finite_step(self) -> float:
        """Finite-difference half-width: ``step``, else ``sigma / 2``, else 0.1 (0.1 * nominal
        for ``scale``)."""
        if self.step is not None:
            return float(self.step)
        if self.sigma is not None:
            return 0.5 * float(self.sigma)
        return 0.1 * self.nominal if self.kind == "scale" else 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Nuisance:
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ModelError(f"nuisance {d.get('name')!r}: unknown key(s) {unknown}")
        return cls(**dict(d))


def nominal_values(nuisances: Sequence[Nuisance]) -> list[float]:
    """``[1.0 (mu), nominal of every nuisance]``: the point the Fisher information is taken at."""
    return [1.0, *(float(n.nominal) for n in nuisances)]


def transform(x: Any, theta: Any, nuisances: Sequence[Nuisance], process: str) -> Any:
    """The inputs ``x`` (events x features) of ``process`` under parameter vector ``theta``.

    ``theta[0]`` is mu, ``theta[1 + i]`` belongs to ``nuisances[i]``. Only ``shift`` and
    ``scale`` nuisances of ``process`` change ``x``; unchanged columns are passed through
    untouched, so the result stays differentiable in ``theta`` (torch) and is exact (numpy).
    """
    touched = {
        n.feature: i for i, n in enumerate(nuisances) if n.process == process and n.kind != "norm"
    }
    if not touched:
        return x
    cols = []
    for j in range(x.shape[1]):
        col = x[:, j]
        for i, n in enumerate(nuisances):
            if n.process != process or n.kind == "norm" or n.feature != j:
                continue
            t = theta[1 + i]
            col = col + (t - n.nominal) if n.kind == "shift" else col * (n.nominal / t)
        cols.append(col)
    if type(x).__module__.split(".")[0] == "torch":  # without importing torch for numpy input
        import torch

        return torch.stack(cols, dim=1)
    import numpy as np

    return np.stack(cols, axis=1)


def rate_factor(theta: Any, nuisances: Sequence[Nuisance], process: str) -> Any:
    """Yield multiplier of ``process``: ``mu`` for the signal times every ``norm`` factor."""
    factor = theta[0] if process == "signal" else theta[0] * 0 + 1
    for i, n in enumerate(nuisances):
        if n.kind == "norm" and n.process == process:
            factor = factor * (1 + theta[1 + i])
    return factor


def constraint_nll(theta: Any, nuisances: Sequence[Nuisance]) -> Any:
    """Gaussian constraint terms ``sum 0.5 ((theta_i - nominal_i) / sigma_i)^2``."""
    total = theta[0] * 0
    for i, n in enumerate(nuisances):
        if n.sigma is not None:
            total = total + 0.5 * ((theta[1 + i] - n.nominal) / n.sigma) ** 2
    return total


__all__ = [
    "KINDS",
    "PROCESSES",
    "Nuisance",
    "constraint_nll",
    "nominal_values",
    "rate_factor",
    "transform",
]
