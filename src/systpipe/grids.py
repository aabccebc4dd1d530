"""Score grids: the scan's threshold grid and uniform fit bin edges, from their config keys.

A module of its own because the score step builds its fine histogram grid from them
(:func:`systpipe.steps.score.fine_grid_of`) without depending on the scan or the templates.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from .errors import ConfigError

MAX_THRESHOLDS = 10_000_000


def _decimals(x: float) -> int:
    exponent = Decimal(repr(float(x))).as_tuple().exponent
    return max(0, -int(exponent))


def default_thresholds(start: float, stop: float, step: float) -> np.ndarray:
    """Uniform grid ``start, start + step, ...`` below ``stop`` (half-open, like ``np.arange``).

    Points are rounded to the decimals of ``start`` and ``step`` so that no float drift
    accumulates (0.1 + 0.1 + 0.1 is 0.3 here, not 0.30000000000000004).

    Example:
        >>> default_thresholds(0.0, 1.0, 0.001).size
        1000
        >>> default_thresholds(0.1, 0.4, 0.1).tolist()
        [0.1, 0.2, 0.3]
    """
    for key, val in (("start", start), ("stop", stop), ("step", step)):
        if not isinstance(val, int | float | np.floating | np.integer) or not math.isfinite(val):
            raise ConfigError(f"scan.thresholds.{key} must be a finite number, got {val!r}")
    if step <= 0:
        raise ConfigError(f"scan.thresholds.step must be > 0, got {step!r}")
    if stop <= start:
        raise ConfigError(f"scan.thresholds.stop ({stop!r}) must be greater than start ({start!r})")
    # Round the count before ceil so that (stop - start)/step = 999.9999999 still gives 1000.
    count = math.ceil(round((stop - start) / step, 9))
    if count > MAX_THRESHOLDS:
        raise ConfigError(
            f"scan.thresholds gives {count} points (limit {MAX_THRESHOLDS}); increase step"
        )
    decimals = min(15, max(_decimals(start), _decimals(step)))
    grid = np.round(start + step * np.arange(count, dtype=np.float64), decimals)
    return grid[grid < stop]


def default_bin_edges(
    *, n_bins: int = 10, score_min: float = 0.5, score_max: float = 1.0
) -> np.ndarray:
    """``n_bins`` uniform bins on (score_min, score_max].

    Example:
        >>> default_bin_edges(n_bins=4, score_min=0.6).tolist()
        [0.6, 0.7, 0.8, 0.9, 1.0]
    """
    if int(n_bins) < 1:
        raise ConfigError(f"fit.n_bins must be >= 1, got {n_bins}")
    if not score_max > score_min:
        raise ConfigError(f"fit.score_min ({score_min}) must be below score_max ({score_max})")
    return np.round(np.linspace(score_min, score_max, int(n_bins) + 1), 12)


def logit_edges(bins: int) -> np.ndarray:
    """``bins`` score bins on [0, 1], uniform in logit(score) from 0.005 to 0.9995 between
    the outer edges 0 and 1 (the score-distribution plots): the selected region at high score
    gets as many bins as the bulk. Rounded to 12 decimals like every grid of the fine
    histograms, so that the plots' edges are fine-grid points.

    Example:
        >>> e = logit_edges(4)
        >>> e.size, float(e[0]), float(e[-1])
        (5, 0.0, 1.0)
    """
    inner = 1.0 / (
        1.0 + np.exp(-np.linspace(np.log(0.005 / 0.995), np.log(0.9995 / 0.0005), bins - 1))
    )
    edges: np.ndarray = np.round(np.concatenate([[0.0], inner, [1.0]]), 12)
    return edges


__all__ = ["MAX_THRESHOLDS", "default_bin_edges", "default_thresholds", "logit_edges"]
