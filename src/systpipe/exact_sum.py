"""Exact sums of float64 values, whatever the order and grouping of the additions.

Adding floats rounds at every step, so the sum of a histogram bin depends on the order the events
arrive in and on how they were split into partitions. To make the partitioned workflow give the
same bits for any number of partitions, each partition keeps the exact sum of its values instead
of a rounded one, the partitions' exact sums are added exactly, and the total is rounded once.

Every finite double is ``m 2^(e - 53)`` with an integer mantissa ``|m| < 2^53`` (``numpy.frexp``).
Split as ``m = hi 2^26 + lo`` (``0 <= lo < 2^26``), the mantissas of one exponent add exactly
as integers: a *term* is (group, exponent, sum of hi, sum of lo). Terms of the same group and
exponent add as integers (int64), and :func:`totals` rounds each group's exact value
``sum (hi 2^26 + lo) 2^(e - 53)`` to the nearest double (ties to even), the value an infinitely
precise sum would round to. Results that would be subnormal (below 2^-1022) round twice.
"""

from __future__ import annotations

import math

import numpy as np

#: low bits of the mantissa in ``lo``
SPLIT = 26
#: frexp exponents run from -1073 to 1024; offset and range for a combined integer key
EXP_OFFSET = 1100
N_EXP = 2200
#: values per call of :func:`terms`: the float64 partial sums of hi (|hi| < 2^27) and lo
#: (< 2^26) stay exact integers below 2^53
MAX_VALUES = 1 << 26
#: the exponent of a term holding an integer count (value = lo)
COUNT_EXP = 53


def terms(
    group: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact terms of the sums of ``values`` per ``group`` (non-negative integers): arrays
    (group, exponent, hi, lo), one entry per group and binary exponent present, sorted.

    Example:
        >>> values = np.array([1e16, 1.0, -1e16, 3.0])
        >>> float(values[:3].sum())  # rounded at every addition: the 1.0 is lost
        0.0
        >>> g, e, hi, lo = terms(np.array([0, 0, 0, 1]), values)
        >>> totals(g, e, hi, lo, 2).tolist()
        [1.0, 3.0]
    """
    values = np.asarray(values, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    if values.size > MAX_VALUES:
        raise ValueError(f"exact sums take at most {MAX_VALUES} values per call, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("exact sums need finite values")
    mantissa, exponent = np.frexp(values)
    m = np.ldexp(mantissa, 53).astype(np.int64)
    hi = m >> SPLIT  # floor: lo = m - hi 2^26 is in [0, 2^26) for negative m too
    lo = m & ((1 << SPLIT) - 1)
    key = group * N_EXP + (exponent.astype(np.int64) + EXP_OFFSET)
    uniq, inverse = np.unique(key, return_inverse=True)
    hi_sum = np.bincount(inverse, weights=hi.astype(np.float64), minlength=uniq.size)
    lo_sum = np.bincount(inverse, weights=lo.astype(np.float64), minlength=uniq.size)
    return (
        uniq // N_EXP,
        uniq % N_EXP - EXP_OFFSET,
        hi_sum.astype(np.int64),
        lo_sum.astype(np.int64),
    )


def totals(
    group: np.ndarray, exponent: np.ndarray, hi: np.ndarray, lo: np.ndarray, n_groups: int
) -> np.ndarray:
    """The correctly rounded total of every group 0..n_groups-1 from its terms (any order;
    terms of the same group and exponent may repeat, e.g. one per partition)."""
    order = np.lexsort((exponent, group))
    g, e = np.asarray(group)[order], np.asarray(exponent, dtype=np.int64)[order]
    h, low = np.asarray(hi, dtype=np.int64)[order], np.asarray(lo, dtype=np.int64)[order]
    out = np.zeros(n_groups, dtype=np.float64)
    if g.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    single = np.diff(np.r_[starts, g.size]) == 1
    # one term whose integers are exact doubles: hi 2^26 and lo are exact, their sum is one
    # correctly rounded addition, the power of two exact
    limit = 1 << 53
    simple = single & (np.abs(h[starts]) <= limit) & (low[starts] <= limit)
    at = starts[simple]
    out[g[at]] = np.ldexp(h[at].astype(np.float64) * 2.0**SPLIT + low[at].astype(np.float64),
                          (e[at] - 53).astype(np.int32))  # fmt: skip
    # the rest (terms of several exponents, or huge sums) in exact integer arithmetic
    rest = np.repeat(~simple, np.diff(np.r_[starts, g.size]))
    current, base, acc = -1, 0, 0
    for gg, ee, hh, ll in zip(
        g[rest].tolist(), e[rest].tolist(), h[rest].tolist(), low[rest].tolist(), strict=True
    ):
        value = (hh << SPLIT) + ll
        if gg != current:
            if current >= 0:
                out[current] = math.ldexp(float(acc), base - 53)
            current, base, acc = gg, ee, value
        else:
            acc += value << (ee - base)  # exponents ascend within a group
    if current >= 0:
        out[current] = math.ldexp(float(acc), base - 53)
    return out


def count_terms(
    group: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Terms holding integer ``counts`` per group (exponent :data:`COUNT_EXP`: value = lo)."""
    group = np.asarray(group, dtype=np.int64)
    return (
        group,
        np.full(group.size, COUNT_EXP, dtype=np.int64),
        np.zeros(group.size, dtype=np.int64),
        np.asarray(counts, dtype=np.int64),
    )


__all__ = ["count_terms", "terms", "totals"]
