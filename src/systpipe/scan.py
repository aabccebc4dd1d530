"""Threshold scan: per-variation S and B by cumulative sums, then mu, AMS and dmu per threshold."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from . import stats
from .errors import ConfigError, DataContractError, SystpipeError
from .grids import default_thresholds
from .histograms import raw_counts, squared_weights
from .systematics import KINDS, NOMINAL, Systematic, all_variations, columns, parse_systematics

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("label", "weight", "score")
# Yields at or below this fraction of the total |signal weight| count as zero for validity
# (cancellations between negative and positive weights leave rounding residue, not signal).
_TINY_FRACTION = 1e-12
#: The working-point guards, in the order in which a row's ``excluded_by`` names the first it
#: fails (docs/scan.md, "MC statistics and guards").
GUARDS = ("min_neff_background", "min_neff_signal", "min_background", "min_signal")


def quantile_thresholds(scores: ArrayLike, n: int) -> np.ndarray:
    """Thresholds at the score quantiles ``0, 1/n, ..., (n-1)/n`` (equal event counts per step).

    Each threshold is an actual score value (inverted-CDF quantiles), so ``score > t`` at
    level k/n keeps about a fraction 1 - k/n of the events. Duplicated quantiles (tied
    scores) are merged, so fewer than ``n`` values may come back.

    Example:
        >>> quantile_thresholds(np.arange(10) / 10, 5).tolist()
        [0.0, 0.1, 0.3, 0.5, 0.7]
    """
    arr = np.asarray(scores, dtype=np.float64).ravel()
    if arr.size == 0 or np.isnan(arr).any():
        raise DataContractError("quantile_thresholds: scores must be non-empty and free of NaN")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"quantile_thresholds: n must be a positive integer, got {n!r}")
    levels = np.arange(int(n), dtype=np.float64) / n
    return np.unique(np.quantile(arr, levels, method="inverted_cdf"))


# --------------------------------------------------------------------------- cumulative yields


def _threshold_array(thresholds: ArrayLike) -> np.ndarray:
    thr = np.array(thresholds, dtype=np.float64)  # a copy: the scan table must not alias it
    if thr.ndim != 1 or thr.size == 0:
        raise ConfigError(f"scan thresholds must be a non-empty 1-D array, got shape {thr.shape}")
    if not np.all(np.isfinite(thr)):
        raise ConfigError("scan thresholds must be finite")
    return thr


def _count_below(score: np.ndarray, t_sorted: np.ndarray) -> np.ndarray:
    """Number of thresholds strictly below each score, i.e. ``searchsorted(t, score, "left")``.

    On a (near-)uniform grid the count is first guessed arithmetically, corrected by one
    exact comparison each way and then verified exactly against the grid (3-6x faster than
    the binary search); any event the guess got wrong sends the whole call to the search.
    """
    n_thr = t_sorted.size
    if n_thr >= 2 and t_sorted[-1] > t_sorted[0]:
        # -inf -> most negative float: same count (0), and the -inf sentinel stays below it.
        x = np.maximum(score, np.finfo(np.float64).min)
        t0 = t_sorted[0]
        step = (t_sorted[-1] - t0) / (n_thr - 1)
        with np.errstate(over="ignore", invalid="ignore"):
            guess = np.ceil((x - t0) / step)
        k = np.clip(guess, 0, n_thr).astype(np.intp)
        padded = np.concatenate(([-np.inf], t_sorted, [np.inf]))  # padded[k] = t[k - 1]
        k -= padded[k] >= x  # t[k-1] >= x: one too many
        k += padded[k + 1] < x  # t[k] < x: one too few
        if np.all(padded[k] < x) and np.all(padded[k + 1] >= x):
            return k
        log.debug("threshold grid not uniform enough for the arithmetic index; binary search")
    return np.searchsorted(t_sorted, score, side="left")


def _bin_index(score: np.ndarray, label: np.ndarray, t_sorted: np.ndarray) -> np.ndarray:
    """Per event: number of thresholds strictly below its score, offset by label * (T + 1).

    An event with k thresholds below it passes ``score > t_j`` exactly for j < k, so every
    comparison (ties included) is made once, exactly, against the threshold values.
    """
    return _count_below(score, t_sorted) + np.intp(t_sorted.size + 1) * label


def _tail_sums(index: np.ndarray, weight: np.ndarray | None, groups: int, n_thr: int) -> np.ndarray:
    """Per group (row) and sorted threshold: the sum of ``weight`` (the count if None) over the
    events of bin index ``k + (T + 1) group`` with k > j, i.e. score > t_j. Shape (groups, T).

    One bincount and a reverse cumulative sum; counts are exact int64.
    """
    counts = np.bincount(index, weights=weight, minlength=groups * (n_thr + 1))
    counts = counts.reshape(groups, n_thr + 1)
    # Accumulate from the highest bin down so that small tail yields keep their precision.
    tail = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    return tail[:, 1:]


def _selected_sums(
    index: np.ndarray, weight: np.ndarray, n_thr: int
) -> tuple[np.ndarray, np.ndarray]:
    """(S, B) for the sorted thresholds: per-bin weight sums, then reverse cumulative sums."""
    tail = _tail_sums(index, weight, 2, n_thr)
    return tail[1], tail[0]


def _process_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per event the rank of its process among the sorted process names, and the names."""
    codes, uniques = pd.factorize(values, sort=False)
    names = [str(u) for u in uniques]
    if (codes < 0).any() or len(set(names)) != len(names):
        raise DataContractError(
            "scores['nominal']: column 'process' has missing values or names equal as strings"
        )
    rank = np.empty(len(names), dtype=np.intp)
    rank[np.argsort(np.array(names, dtype=str), kind="stable")] = np.arange(len(names))
    return rank[codes], sorted(names)


def _mc_statistics(
    index: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray,
    process: pd.Series | None,
    n_thr: int,
    yields: tuple[np.ndarray, np.ndarray],
    w2: np.ndarray | None = None,
    counts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """MC-statistics columns of the nominal selection at the sorted thresholds.

    Args:
        index: the nominal events' bin index (:func:`_bin_index`, sorted thresholds).
        label, weight: the nominal events' labels and weights.
        process: their ``process`` column, or None.
        n_thr: number of thresholds T.
        yields: (S, B) at the sorted thresholds, the sums of the weights.
        w2, counts: per row, sum w^2 and events (a binned frame's ``sumw2`` and ``n_raw``;
            None: one event per row, w^2).

    Returns:
        n_raw_S, n_raw_B (int64 event counts), sumw2_S, sumw2_B (sums of squared weights),
        neff_S, neff_B (``(sum w)^2 / sum w^2``, 0 where nothing is selected) and, per process
        p of the ``process`` column (sorted), n_raw__<p> and neff__<p>. Sums run from the
        highest threshold down, like the yields.
    """
    w2 = weight * weight if w2 is None else w2
    weights_of_count = None if counts is None else counts.astype(np.float64)
    raw = _tail_sums(index, weights_of_count, 2, n_thr)
    sumw2 = _tail_sums(index, w2, 2, n_thr)
    out: dict[str, np.ndarray] = {
        "n_raw_S": raw[1].astype(np.int64),
        "n_raw_B": raw[0].astype(np.int64),
        "sumw2_S": sumw2[1],
        "sumw2_B": sumw2[0],
        "neff_S": np.asarray(stats.effective_entries(yields[0], sumw2[1]), dtype=np.float64),
        "neff_B": np.asarray(stats.effective_entries(yields[1], sumw2[0]), dtype=np.float64),
    }
    if process is not None:
        codes, names = _process_codes(process)
        stride = np.intp(n_thr + 1)
        p_index = (index - stride * label) + stride * codes  # thresholds below, per process
        p_raw = _tail_sums(p_index, weights_of_count, len(names), n_thr).astype(np.int64)
        p_w = _tail_sums(p_index, weight, len(names), n_thr)
        p_w2 = _tail_sums(p_index, w2, len(names), n_thr)
        for i, name in enumerate(names):
            out[f"n_raw__{name}"] = p_raw[i]
            out[f"neff__{name}"] = np.asarray(
                stats.effective_entries(p_w[i], p_w2[i]), dtype=np.float64
            )
    return out


def _sort_thresholds(thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(thr, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return thr[order], inverse


def cumulative_yields(
    score: ArrayLike, label: ArrayLike, weight: ArrayLike, thresholds: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Selected signal and background yields ``S(t), B(t)`` for ``score > t`` at every threshold.

    O(N log T + T): one binary search per event and a weighted bincount, no loop over
    thresholds. Thresholds may be in any order; scores compare in float64.

    Example:
        >>> S, B = cumulative_yields([0.2, 0.5, 0.5, 0.9], [1, 0, 1, 1], [1.0, 2.0, 3.0, 4.0],
        ...                          [0.5, 0.0, 0.95])
        >>> S.tolist(), B.tolist()
        ([4.0, 8.0, 0.0], [0.0, 2.0, 0.0])
    """
    thr = _threshold_array(thresholds)
    arrays = {"score": np.asarray(score), "label": np.asarray(label), "weight": np.asarray(weight)}
    if len({a.shape for a in arrays.values()}) != 1 or arrays["score"].ndim != 1:
        raise DataContractError(
            f"cumulative_yields: score, label and weight must be 1-D of equal length, got shapes "
            f"{[a.shape for a in arrays.values()]}"
        )
    frame = pd.DataFrame(arrays)
    s_arr, l_arr, w_arr = _event_arrays(frame, "cumulative_yields")
    t_sorted, inverse = _sort_thresholds(thr)
    s_sorted, b_sorted = _selected_sums(_bin_index(s_arr, l_arr, t_sorted), w_arr, thr.size)
    return s_sorted[inverse], b_sorted[inverse]


def _event_arrays(frame: pd.DataFrame, variation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataContractError(
            f"scores[{variation!r}]: missing column(s) {missing}; columns present: {list(frame.columns)}"
        )
    try:
        score = frame["score"].to_numpy(dtype=np.float64)
        weight = frame["weight"].to_numpy(dtype=np.float64)
        raw_label = frame["label"].to_numpy()
    except (TypeError, ValueError) as exc:
        raise DataContractError(
            f"scores[{variation!r}]: non-numeric score or weight ({exc})"
        ) from exc
    if np.isnan(score).any():
        raise DataContractError(f"scores[{variation!r}]: column 'score' contains NaN")
    if not np.all(np.isfinite(weight)):
        raise DataContractError(f"scores[{variation!r}]: column 'weight' contains NaN or inf")
    if raw_label.dtype.kind not in "biuf" or not np.all((raw_label == 0) | (raw_label == 1)):
        raise DataContractError(
            f"scores[{variation!r}]: column 'label' must hold 0 (background) or 1 (signal)"
        )
    # Integer labels stay as they are (int8 in the data contract); the index promotes them.
    label = raw_label if raw_label.dtype.kind in "bi" else raw_label.astype(np.int8)
    return score, label, weight


# --------------------------------------------------------------------------- the scan


def _check_systematics(systematics: Sequence[Mapping[str, Any]]) -> list[Systematic]:
    seen: set[str] = set()
    for i, syst in enumerate(systematics):
        name = syst.get("name") if isinstance(syst, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ConfigError(f"systematics[{i}]: 'name' must be a non-empty string")
        if name in seen:
            raise ConfigError(f"systematics[{i}]: duplicate name {name!r}")
        seen.add(name)
        kind = syst.get("type")
        if kind not in KINDS:
            raise ConfigError(
                f"systematics[{i}] ({name!r}): 'type' must be one of {list(KINDS)}, got {kind!r}"
            )
        if KINDS[kind].linearisable:
            delta = syst.get("delta")
            if not isinstance(delta, int | float) or not math.isfinite(delta) or delta <= 0:
                raise ConfigError(
                    f"systematics[{i}] ({name!r}): 'delta' must be a positive number for a {kind} "
                    f"systematic, got {delta!r}"
                )
    return parse_systematics(systematics)


def _check_variations(scores: Mapping[str, pd.DataFrame], names: Sequence[str]) -> None:
    missing = [v for v in names if v not in scores]
    if missing:
        raise DataContractError(
            f"scores: missing variation(s) {missing}; present: {sorted(scores)}"
        )
    extra = sorted(set(scores) - set(names))
    if extra:
        raise DataContractError(
            f"scores: variation(s) {extra} are not declared in 'systematics' (expected {list(names)})"
        )


def scan_scores(
    scores: Mapping[str, pd.DataFrame],
    *,
    systematics: Sequence[Mapping[str, Any]],
    thresholds: ArrayLike,
    symmetrise: str = "mean",
    b_reg: float = 10.0,
    min_signal: float = 0.0,
    min_background: float = 0.0,
    min_neff_signal: float = 0.0,
    min_neff_background: float = 0.0,
) -> pd.DataFrame:
    """Scan ``score > t`` over the thresholds for every variation (docs/scan.md).

    Args:
        scores: variation name ("nominal", "<k>_up", "<k>_down") -> frame with label, weight,
            score. Weight-only variations carry the nominal scores with their own weights.
        systematics: the config's systematics list (name, type, delta).
        thresholds: threshold values (any order; the output keeps it).
        symmetrise: "mean" or "max", how d_up and d_down combine into dmu_<k>.
        b_reg: HiggsML AMS regulariser added to B.
        min_signal: minimum S_nominal for a valid row (scan.min_signal).
        min_background: minimum B_nominal for a valid row (scan.min_background).
        min_neff_signal: minimum neff_S for a valid row (scan.min_neff_signal).
        min_neff_background: minimum neff_B for a valid row (scan.min_neff_background).

    Returns:
        One row per threshold; columns threshold, S_<v>, B_<v>, n, the MC statistics of the
        nominal selection (n_raw_S, n_raw_B, sumw2_S, sumw2_B, neff_S, neff_B, and per process
        p of the nominal frame's ``process`` column, sorted, n_raw__<p>, neff__<p>), mu_<v>, ams, ams_higgsml, sigma_b, z_asimov,
        dmu_stat, d_up_<k>, d_down_<k>, dmu_<k>, dmu_syst (systematics only), dmu_mcstat,
        dmu_tot, dmu_lin_<k> (linearisable systematics), dmu_lin, excluded_by (the first guard
        of :data:`GUARDS` the row fails, or "none"), valid. Divisions by a zero S give +inf,
        never NaN; significances are 0 where S or B is 0.
    """
    thr = _threshold_array(thresholds)
    systs = _check_systematics(systematics)
    _check_column_names(systematics)
    stats.symmetrise(0.0, 0.0, symmetrise)  # validates the mode before any work
    for key, val in (
        ("higgsml_b_reg", b_reg),
        ("min_signal", min_signal),
        ("min_background", min_background),
        ("min_neff_signal", min_neff_signal),
        ("min_neff_background", min_neff_background),
    ):
        if not isinstance(val, int | float) or not math.isfinite(val) or val < 0:
            raise ConfigError(f"scan.{key} must be a finite number >= 0, got {val!r}")
    variations = all_variations(systs)
    names = [v.name for v in variations]
    _check_variations(scores, names)

    t_sorted, inverse = _sort_thresholds(thr)
    n_thr = thr.size
    yields: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    # Weight-only variations share the nominal scores: they reuse its bin index (the search is
    # the expensive part; the bincount per variation is cheap).
    nominal_index: np.ndarray | None = None
    n_searches = 0
    tiny = 0.0
    mc: dict[str, np.ndarray] = {}
    for variation in variations:
        var = variation.name
        score, label, weight = _event_arrays(scores[var], var)
        if variation.changes_features or nominal_index is None:
            index = _bin_index(score, label, t_sorted)
            n_searches += 1
            if variation.is_nominal:
                nominal_index = index
        else:
            index = nominal_index
        s_sorted, b_sorted = _selected_sums(index, weight, n_thr)
        yields[var] = (s_sorted[inverse], b_sorted[inverse])
        if var == NOMINAL:
            tiny = _TINY_FRACTION * float(np.abs(weight[label == 1]).sum())
            process = scores[var]["process"] if "process" in scores[var].columns else None
            frame = scores[var]
            binned = "n_raw" in frame.columns
            mc = _mc_statistics(
                index,
                label,
                weight,
                process,
                n_thr,
                (s_sorted, b_sorted),
                w2=squared_weights(frame) if binned else None,
                counts=raw_counts(frame) if binned else None,
            )
            mc = {key: arr[inverse] for key, arr in mc.items()}
    log.debug("scan: %d variations, %d score searches", len(names), n_searches)

    s0, b0 = yields[NOMINAL]
    n = s0 + b0
    cols: dict[str, np.ndarray] = {"threshold": thr}
    for var in names:
        cols[columns.s(var)], cols[columns.b(var)] = yields[var]
    cols["n"] = n
    cols.update(mc)
    with np.errstate(over="ignore"):
        mus = {
            var: np.asarray(stats.mu_hat(n, yields[var][0], yields[var][1]), dtype=np.float64)
            for var in names[1:]
        }
        for var in names[1:]:
            cols[columns.mu(var)] = mus[var]
        # Background uncertainty for Z_asimov: mean |shift| of B per systematic, in quadrature.
        half_shift_sq = np.zeros(n_thr)
        for syst in systs:
            b_up, b_dn = yields[syst.up.name][1], yields[syst.down.name][1]
            half_shift_sq += (0.5 * (np.abs(b_up - b0) + np.abs(b_dn - b0))) ** 2
        sigma_b = np.sqrt(half_shift_sq)
        cols["ams"] = np.asarray(stats.ams(s0, b0), dtype=np.float64)
        cols["ams_higgsml"] = np.asarray(stats.ams_higgsml(s0, b0, b_reg), dtype=np.float64)
        cols["sigma_b"] = sigma_b
        cols["z_asimov"] = np.asarray(stats.z_asimov(s0, b0, sigma_b), dtype=np.float64)
        dmu_stat = np.asarray(stats.sigma_mu_stat(s0, b0), dtype=np.float64)
        cols["dmu_stat"] = dmu_stat
        syst_sq = np.zeros(n_thr)
        for syst in systs:
            d_up, d_down = mus[syst.up.name] - 1.0, mus[syst.down.name] - 1.0
            dmu_k = np.asarray(stats.symmetrise(d_up, d_down, symmetrise), dtype=np.float64)
            cols[columns.d_up(syst)], cols[columns.d_down(syst)], cols[columns.dmu(syst)] = (
                d_up,
                d_down,
                dmu_k,
            )
            syst_sq = syst_sq + dmu_k**2
        cols["dmu_syst"] = np.sqrt(syst_sq)
        # MC statistics of the nominal yields (S and B independent), at mu = 1
        dmu_mcstat = np.asarray(
            stats.sigma_mu_mcstat(s0, mc["sumw2_S"], mc["sumw2_B"]), dtype=np.float64
        )
        cols["dmu_mcstat"] = dmu_mcstat
        cols["dmu_tot"] = np.sqrt(dmu_stat**2 + syst_sq + dmu_mcstat**2)
        lin_sq = dmu_stat**2 + dmu_mcstat**2
        for syst in systs:
            if not syst.linearisable:
                continue
            delta = float(syst["delta"])
            (s_up, b_up), (s_dn, b_dn) = yields[syst.up.name], yields[syst.down.name]
            # The yields each norm systematic scales, read off the scan itself.
            s_k, b_k = (s_up - s_dn) / (2.0 * delta), (b_up - b_dn) / (2.0 * delta)
            lin_k = np.asarray(stats.dmu_linear_terms(s0, b0, s_k, b_k, delta), dtype=np.float64)
            cols[columns.dmu_lin(syst)] = lin_k
            lin_sq = lin_sq + lin_k**2
        cols["dmu_lin"] = np.sqrt(lin_sq)

    fails = {
        "min_neff_background": mc["neff_B"] < min_neff_background,
        "min_neff_signal": mc["neff_S"] < min_neff_signal,
        "min_background": b0 < min_background,
        "min_signal": s0 < min_signal,
    }
    excluded = np.full(n_thr, "none", dtype=object)
    for guard in reversed(GUARDS):  # the first guard of GUARDS that a row fails is named
        excluded[fails[guard]] = guard
    valid = (excluded == "none") & (s0 > tiny)
    for var in names[1:]:
        valid &= yields[var][0] > tiny
    cols["excluded_by"] = excluded
    cols["valid"] = valid

    for key, arr in cols.items():
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise SystpipeError(f"scan column {key!r} contains NaN (yields overflowed?)")
    out = pd.DataFrame(cols)
    out.attrs.update(
        min_signal=float(min_signal),
        min_background=float(min_background),
        min_neff_signal=float(min_neff_signal),
        min_neff_background=float(min_neff_background),
        symmetrise=symmetrise,
        b_reg=float(b_reg),
    )
    return out


_RESERVED_SUFFIXES = frozenset({"stat", "syst", "tot", "lin", "syst_tot", "mcstat"})


def _check_column_names(systematics: Sequence[Mapping[str, Any]]) -> None:
    """Systematic names become column suffixes; refuse names that collide with fixed columns."""
    for syst in systematics:
        name = syst["name"]
        if name in _RESERVED_SUFFIXES or name.startswith("lin_"):
            raise ConfigError(
                f"systematic name {name!r} collides with a scan column (dmu_{name}); "
                f"reserved: {sorted(_RESERVED_SUFFIXES)} and names starting with 'lin_'"
            )


__all__ = [
    "GUARDS",
    "cumulative_yields",
    "default_thresholds",
    "quantile_thresholds",
    "scan_scores",
]
