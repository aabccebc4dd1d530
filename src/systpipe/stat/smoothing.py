"""Histogram smoothing: ROOT's "353QH, twice" (``TH1::SmoothArray``) and cabinetry's recipe for
a systematic variation (smooth the ratio to the nominal, keep the variation's total).

The port follows cabinetry 0.6.0 (``cabinetry.smooth.smooth_353qh_twice`` and
``cabinetry.templates.postprocessor._apply_353qh_twice``) operation by operation; the tests
compare against it. Re-exported by :mod:`.postprocess`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _median(values: Sequence[float] | np.ndarray) -> float:
    """Median of an odd number of values, exactly as :func:`statistics.median` takes it."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _medians_353(zz: np.ndarray, n: int) -> None:
    """Running medians of window 3, 5, 3, in place (ROOT's end-point rules)."""
    for step in range(3):
        yy = zz.copy()
        width = 5 if step == 1 else 3
        first = 2 if step == 1 else 1
        last = n - 2 if step == 1 else n - 1
        for i in range(first, last):
            zz[i] = _median(yy[i - first : i - first + width])
        if step == 0:
            zz[0] = _median([3 * zz[1] - 2 * zz[2], yy[0], zz[1]])
            zz[n - 1] = _median([zz[n - 2], yy[n - 1], 3 * zz[n - 2] - 2 * zz[n - 3]])
        if step == 1:
            zz[1] = _median(yy[0:3])
            zz[n - 2] = _median(yy[n - 3 : n])


def _353qh(zz: np.ndarray, n: int) -> None:
    """One pass of 353QH in place: medians 3, 5, 3, quadratic interpolation of flat 3-bin
    segments, Hanning (1/4, 1/2, 1/4)."""
    _medians_353(zz, n)
    yy = zz.copy()
    for i in range(2, n - 2):
        if zz[i - 1] != zz[i] or zz[i] != zz[i + 1]:
            continue  # not flat
        left = zz[i - 2] - zz[i]
        right = zz[i + 2] - zz[i]
        if left * right <= 0:
            continue  # part of a larger slope
        jk = -1 if abs(right) > abs(left) else 1
        yy[i] = -0.5 * zz[i - 2 * jk] + zz[i] / 0.75 + zz[i + 2 * jk] / 6
        yy[i + jk] = 0.5 * (zz[i + 2 * jk] - zz[i - 2 * jk]) + zz[i]
    for i in range(1, n - 1):
        zz[i] = 0.25 * yy[i - 1] + 0.5 * yy[i] + 0.25 * yy[i + 1]
    zz[0] = yy[0]
    zz[n - 1] = yy[n - 1]


def smooth_353qh_twice(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """ROOT's ``TH1::SmoothArray`` ("353QH, twice"), as cabinetry's ``smooth_353qh_twice``.

    One 353QH pass gives the smooth part r; the same pass on the residual values - r
    ("twicing") is added back. The result is clipped at 0 unless the input has a negative
    value. Fewer than 3 values are returned unchanged.

    Example:
        >>> smooth_353qh_twice([1.0, 3.0, 1.0, 3.0, 1.0]).tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0]
        >>> smooth_353qh_twice([2.0, 2.0, 2.0]).tolist()
        [2.0, 2.0, 2.0]
    """
    hist = np.array(values, dtype=np.float64, copy=True)
    if hist.ndim != 1:
        raise ValueError(f"smooth_353qh_twice needs a 1-d array, got shape {hist.shape}")
    n = hist.size
    if n < 3:
        return hist
    if not np.all(np.isfinite(hist)):
        raise ValueError(f"smooth_353qh_twice: non-finite values {hist.tolist()}")
    zz = hist.copy()
    _353qh(zz, n)
    smooth = zz.copy()
    rough = hist - zz
    _353qh(rough, n)
    out = smooth + rough
    return out if hist.min() < 0 else np.maximum(out, 0.0)


def smooth_variation(nominal: np.ndarray, variation: np.ndarray) -> tuple[np.ndarray, bool]:
    """Smooth a variation template (cabinetry's recipe): smooth the ratio variation/nominal,
    multiply back by the nominal, rescale to the variation's own total.

    Bins with nominal <= 0 take the ratio 1. Returns ``(template, smoothed)``; with fewer
    than 3 bins, or a smoothed total of 0, the variation comes back unchanged and
    ``smoothed`` is False.

    Example:
        >>> nom = np.array([10.0, 10.0, 10.0, 10.0, 10.0])
        >>> out, done = smooth_variation(nom, np.array([11.0, 9.0, 11.0, 9.0, 11.0]))
        >>> out.tolist(), done
        ([10.2, 10.2, 10.2, 10.2, 10.2], True)
    """
    nom = np.asarray(nominal, dtype=np.float64)
    var = np.asarray(variation, dtype=np.float64)
    if nom.shape != var.shape or nom.ndim != 1:
        raise ValueError(f"nominal {nom.shape} and variation {var.shape} must be equal 1-d shapes")
    if nom.size < 3:
        return var.copy(), False
    on = nom > 0
    ratio = np.divide(var, nom, out=np.ones_like(var), where=on)
    smoothed = smooth_353qh_twice(ratio) * nom
    total = float(smoothed.sum())
    if total == 0.0:
        return var.copy(), False
    return smoothed * (float(var.sum()) / total), True


__all__ = ["smooth_353qh_twice", "smooth_variation"]
