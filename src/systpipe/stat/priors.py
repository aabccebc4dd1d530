"""Priors of the true nuisance parameters in the challenge toy modes (``toys.priors``).

By default a challenge toy draws each constrained parameter from its constraint (alpha ~ N(0, 1),
gamma ~ N(1, sigma_b)). ``toys.priors`` replaces that per systematic by a prior on its physical
factor f = 1 + alpha delta (the rate of a ``norm`` systematic, the energy scale of a ``scale``
one, the resolution factor of a ``smear`` one), as the FAIR-Universe HiggsML uncertainty
challenge draws its nuisances (its ``systematics.py``: e.g. the tau energy scale N(1, 0.01)
clipped to [0.9, 1.1], the soft-MET term LogNormal(0, 1) clipped to [0, 5]):

- ``gaussian``: f ~ N(1, sigma), default sigma = delta (the constraint itself);
- ``lognormal``: f = exp(N(0, sigma)), default sigma = ln(1 + delta);
- ``clip``: [lo, hi] on f (redraws are not made: the value is clipped, as the challenge does).

The true alpha is (f - 1) / delta, which the workspace interpolates like any other value. Each
toy uses the same standard-normal draw z for a parameter whatever its prior, so changing one
prior leaves the others' draws unchanged and no prior at all is today's challenge mode exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

DISTRIBUTIONS = ("gaussian", "lognormal")


@dataclass(frozen=True)
class Prior:
    """A prior on the physical factor f = 1 + alpha delta of one systematic."""

    name: str
    delta: float
    distribution: str = "gaussian"
    sigma: float | None = None
    clip: tuple[float, float] | None = None

    @property
    def width(self) -> float:
        """sigma, or its default from delta (see the module docstring)."""
        if self.sigma is not None:
            return self.sigma
        return self.delta if self.distribution == "gaussian" else math.log1p(self.delta)

    def alpha(self, z: np.ndarray | float) -> np.ndarray:
        """The true alpha for standard-normal draws ``z``.

        Example:
            >>> Prior("tes", 0.01, "gaussian", clip=(0.995, 1.1)).alpha(np.array([-1.0, 0.0, 2.0])).round(9).tolist()
            [-0.5, 0.0, 2.0]
            >>> round(float(Prior("met", 0.5, "lognormal", sigma=1.0).alpha(1.0)), 9)  # (e - 1) / 0.5
            3.436563657
        """
        z = np.asarray(z, dtype=np.float64)
        f = 1.0 + self.width * z if self.distribution == "gaussian" else np.exp(self.width * z)
        if self.clip is not None:
            f = np.clip(f, self.clip[0], self.clip[1])
        return (f - 1.0) / self.delta


def parse_priors(
    priors: Mapping[str, Mapping[str, Any]] | None, systematics: Sequence[Mapping[str, Any]]
) -> dict[str, Prior]:
    """``toys.priors`` checked against the systematics (a prior needs the systematic's delta).

    Example:
        >>> p = parse_priors({"det": {"distribution": "lognormal", "clip": [0.9, 1.1]}},
        ...                  [{"name": "det", "type": "scale", "delta": 0.02}])
        >>> p["det"].distribution, round(p["det"].width, 6), p["det"].clip
        ('lognormal', 0.019803, (0.9, 1.1))
    """
    by_name = {s["name"]: s for s in systematics}
    out: dict[str, Prior] = {}
    for name, spec in (priors or {}).items():
        key = f"toys.priors.{name}"
        if name not in by_name:
            raise ConfigError(f"{key}: no systematic named {name!r}; declared: {sorted(by_name)}")
        delta = by_name[name].get("delta")
        if delta is None:
            raise ConfigError(
                f"{key}: systematic {name!r} has no 'delta' (kind {by_name[name].get('type')!r}), "
                "so its alpha has no physical factor to put a prior on"
            )
        dist = spec.get("distribution", "gaussian")
        if dist not in DISTRIBUTIONS:
            raise ConfigError(f"{key}.distribution: {dist!r} is not one of {list(DISTRIBUTIONS)}")
        sigma = spec.get("sigma")
        if sigma is not None and not (isinstance(sigma, int | float) and sigma > 0):
            raise ConfigError(f"{key}.sigma must be a positive number, got {sigma!r}")
        clip = spec.get("clip")
        if clip is not None:
            if len(clip) != 2 or not clip[0] < clip[1]:
                raise ConfigError(f"{key}.clip must be [lo, hi] with lo < hi, got {clip!r}")
            if dist == "lognormal" and clip[1] <= 0:
                raise ConfigError(f"{key}.clip: a log-normal factor is positive, got {clip!r}")
            clip = (float(clip[0]), float(clip[1]))
        out[name] = Prior(name, float(delta), dist, None if sigma is None else float(sigma), clip)
    return out


__all__ = ["DISTRIBUTIONS", "Prior", "parse_priors"]
