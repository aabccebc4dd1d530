"""Fine score histograms of one event partition, and their merge over partitions.

The statistics downstream of the scores (the threshold scan, the fit templates, the chi2, the
Neyman calibration, the yields tables) need sums over events: sum w, sum w^2 and raw counts
above a threshold or in a bin, and for the MC error of a systematic's shift, sums over events
paired between nominal and varied. The score step therefore reduces each partition of the test
events to histograms on a fine score grid, and every later step adds the partitions' histograms.
Memory after the score step no longer grows with the number of events, and the result does not
depend on how the events were partitioned.

The fine grid ``g_0 < ... < g_{G-1}`` holds every threshold the workflow cuts at (the scan grid,
the fit optimiser's grid, a uniform 0.001 grid on [0, 1], the fixed fit binning). Fine bin k is
the right-closed interval ``(g_{k-1}, g_k]`` (``g_{-1} = -inf``, ``g_G = +inf``), the convention
of the scan (``score > t``) and of the templates. A bin's events are represented by one score,
the bin's upper edge ``g_k`` (``+inf`` for the bin above the grid), so a cut or a bin edge on the
grid selects exactly the events it selects event by event.

Two tables per partition:

- marginals, one row per (variation, process, fine bin) with events: ``weight`` (sum w),
  ``sumw2`` (sum w^2), ``n_raw`` (events);
- pairs, one row per (variation, process, nominal fine bin, varied fine bin) of every variation
  but nominal: ``a2`` (sum w_nom^2), ``b2`` (sum w_var^2) and ``d2`` (sum (w_var - w_nom)^2) over
  the events in both frames (by ``event_id``), with the bin -1 on the side an event is missing
  from. The MC variance of the shift of any cell C is then exactly
  ``sum d2 [both in C] + sum a2 [only nominal in C] + sum b2 [only varied in C]``
  (:func:`systpipe.templates.build_templates`).

The merge adds the partitions in their order. Sums of floats depend on the order of addition,
so the merged sums of two partitionings of the same events agree to rounding (relative
differences of a few 1e-16 per bin), not to the bit; raw counts and the grid are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataContractError

NOMINAL = "nominal"
#: the uniform part of the fine grid: 0.001 steps on [0, 1]
UNIFORM_STEPS = 1000
MARGINAL_COLUMNS = ("variation", "process", "label", "bin", "weight", "sumw2", "n_raw")
PAIR_COLUMNS = ("variation", "process", "label", "bin_nom", "bin_var", "a2", "b2", "d2")
#: provenance key of the fine grid in every histogram file
GRID_KEY = "fine_grid"
_EVENT_COLUMNS = ("event_id", "process", "label", "weight", "score")


def fine_grid(thresholds: Sequence[np.ndarray | Sequence[float]] = ()) -> np.ndarray:
    """The fine score grid: a uniform 0.001 grid on [0, 1] joined with every array of
    ``thresholds`` (rounded to 12 decimals, as the scan and the binning round theirs).

    Example:
        >>> g = fine_grid([[0.25, 0.3333333333333333]])
        >>> g.size, float(g[0]), float(g[-1]), bool(np.isin(0.333333333333, g))
        (1002, 0.0, 1.0, True)
    """
    parts = [np.linspace(0.0, 1.0, UNIFORM_STEPS + 1)]
    parts += [np.asarray(t, dtype=np.float64).ravel() for t in thresholds]
    grid = np.unique(np.round(np.concatenate(parts), 12))
    if not np.all(np.isfinite(grid)):
        raise DataContractError("the fine score grid has a non-finite threshold")
    return grid


def fine_bin(score: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fine bin k of each score: the number of grid points strictly below it (right-closed).

    Example:
        >>> fine_bin(np.array([-1.0, 0.0, 0.0005, 0.001, 2.0]), fine_grid()).tolist()
        [0, 0, 1, 1, 1001]
    """
    return np.searchsorted(grid, score, side="left").astype(np.int64)


def representative(bins: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The score that stands for fine bin k: its upper edge ``g_k``, +inf above the grid."""
    bins = np.asarray(bins, dtype=np.int64)
    padded = np.append(grid, np.inf)
    return padded[np.clip(bins, 0, grid.size)]


def snap(edges: Sequence[float] | np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Bin edges moved to the nearest fine-grid point (duplicates dropped), so that binned
    templates are exact sums of fine bins.

    Example:
        >>> snap([0.5004, 0.75, 0.9996], fine_grid()).tolist()
        [0.5, 0.75, 1.0]
    """
    e = np.asarray(edges, dtype=np.float64)
    pos = np.clip(np.searchsorted(grid, e), 1, grid.size - 1)
    lower, upper = grid[pos - 1], grid[pos]
    return np.unique(np.where(np.abs(e - lower) <= np.abs(upper - e), lower, upper))


class BinnedFrames(dict[str, pd.DataFrame]):
    """Variation name -> the merged fine histogram as a frame of one row per (process, fine
    bin): ``process, label, score`` (the bin's representative), ``weight`` (sum w), ``sumw2``,
    ``n_raw`` and ``bin``; plus ``pairs`` (variation -> pair table, see the module docstring)
    and ``grid``. It stands where a mapping of per-event score frames stands: the scan, the
    templates and the tables read ``sumw2`` and ``n_raw`` where a frame has them."""

    def __init__(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        pairs: Mapping[str, pd.DataFrame],
        grid: np.ndarray,
    ) -> None:
        super().__init__(frames)
        self.pairs = dict(pairs)
        self.grid = np.asarray(grid, dtype=np.float64)


def squared_weights(frame: pd.DataFrame) -> np.ndarray:
    """Sum of w^2 per row: the ``sumw2`` column of a binned frame, else w^2 of each event."""
    if "sumw2" in frame.columns:
        return frame["sumw2"].to_numpy(dtype=np.float64)
    w = frame["weight"].to_numpy(dtype=np.float64)
    return w * w


def raw_counts(frame: pd.DataFrame) -> np.ndarray:
    """MC events per row: the ``n_raw`` column of a binned frame, else 1 per event."""
    if "n_raw" in frame.columns:
        return frame["n_raw"].to_numpy(dtype=np.int64)
    return np.ones(len(frame), dtype=np.int64)


def _codes(process: pd.Series, names: list[str]) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(names)}
    return np.fromiter((lookup[p] for p in process.astype(str)), dtype=np.int64, count=len(process))


def _check_events(frame: pd.DataFrame, variation: str) -> None:
    missing = [c for c in _EVENT_COLUMNS if c not in frame.columns]
    if missing:
        raise DataContractError(
            f"scores of {variation!r}: missing column(s) {missing}; columns present: {list(frame.columns)}"
        )
    if np.isnan(frame["score"].to_numpy(dtype=np.float64)).any():
        raise DataContractError(f"scores of {variation!r}: column 'score' contains NaN")
    if not np.all(np.isfinite(frame["weight"].to_numpy(dtype=np.float64))):
        raise DataContractError(f"scores of {variation!r}: column 'weight' contains NaN or inf")


def _labels_of(frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for name, frame in frames.items():
        for proc, lab in frame[["process", "label"]].drop_duplicates().itertuples(index=False):
            if labels.setdefault(str(proc), int(lab)) != int(lab):
                raise DataContractError(
                    f"scores of {name!r}: process {proc!r} has events with both labels"
                )
    return labels


def _marginal(
    name: str, frame: pd.DataFrame, names: list[str], labels: dict[str, int], grid: np.ndarray
) -> pd.DataFrame:
    n_cells = grid.size + 1
    key = _codes(frame["process"], names) * n_cells + fine_bin(
        frame["score"].to_numpy(dtype=np.float64), grid
    )
    w = frame["weight"].to_numpy(dtype=np.float64)
    size = len(names) * n_cells
    n_raw = np.bincount(key, minlength=size)
    cells = np.flatnonzero(n_raw)
    proc = np.array(names, dtype=object)[cells // n_cells]
    return pd.DataFrame(
        {
            "variation": name,
            "process": proc,
            "label": np.array([labels[p] for p in proc], dtype=np.int8),
            "bin": (cells % n_cells).astype(np.int32),
            "weight": np.bincount(key, weights=w, minlength=size)[cells],
            "sumw2": np.bincount(key, weights=w * w, minlength=size)[cells],
            "n_raw": n_raw[cells].astype(np.int64),
        }
    )


def _unique_ids(ids: np.ndarray) -> np.ndarray:
    """Mask of the rows whose event_id occurs once in its frame."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return counts[inverse] == 1


def _pairs(
    name: str,
    nominal: pd.DataFrame,
    varied: pd.DataFrame,
    names: list[str],
    labels: dict[str, int],
    grid: np.ndarray,
) -> pd.DataFrame:
    def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
        ids = frame["event_id"].to_numpy(dtype=np.int64)
        return (
            ids,
            _codes(frame["process"], names),
            fine_bin(frame["score"].to_numpy(dtype=np.float64), grid),
            frame["weight"].to_numpy(dtype=np.float64),
            _unique_ids(ids),
        )

    id_n, code_n, bin_n, w_n, one_n = arrays(nominal)
    id_v, code_v, bin_v, w_v, one_v = arrays(varied)
    # an event pairs when its id is unique in both frames and its process is the same in both
    common, at_n, at_v = np.intersect1d(id_n[one_n], id_v[one_v], return_indices=True)
    at_n, at_v = np.flatnonzero(one_n)[at_n], np.flatnonzero(one_v)[at_v]
    same = code_n[at_n] == code_v[at_v]
    at_n, at_v = at_n[same], at_v[same]
    alone_n = np.ones(id_n.size, dtype=bool)
    alone_n[at_n] = False
    alone_v = np.ones(id_v.size, dtype=bool)
    alone_v[at_v] = False
    none = np.int64(-1)
    code = np.concatenate([code_n[at_n], code_n[alone_n], code_v[alone_v]])
    b_nom = np.concatenate([bin_n[at_n], bin_n[alone_n], np.full(alone_v.sum(), none)])
    b_var = np.concatenate([bin_v[at_v], np.full(alone_n.sum(), none), bin_v[alone_v]])
    zeros_v, zeros_n = np.zeros(int(alone_v.sum())), np.zeros(int(alone_n.sum()))
    a2 = np.concatenate([w_n[at_n] ** 2, w_n[alone_n] ** 2, zeros_v])
    b2 = np.concatenate([w_v[at_v] ** 2, zeros_n, w_v[alone_v] ** 2])
    d2 = np.concatenate([(w_v[at_v] - w_n[at_n]) ** 2, w_n[alone_n] ** 2, w_v[alone_v] ** 2])
    n_cells = grid.size + 2  # bins 0..G and -1 (shifted by one)
    key = (code * n_cells + (b_nom + 1)) * n_cells + (b_var + 1)
    uniq, inverse = np.unique(key, return_inverse=True)
    proc = np.array(names, dtype=object)[uniq // (n_cells * n_cells)]
    return pd.DataFrame(
        {
            "variation": name,
            "process": proc,
            "label": np.array([labels[p] for p in proc], dtype=np.int8),
            "bin_nom": ((uniq // n_cells) % n_cells - 1).astype(np.int32),
            "bin_var": (uniq % n_cells - 1).astype(np.int32),
            "a2": np.bincount(inverse, weights=a2, minlength=uniq.size),
            "b2": np.bincount(inverse, weights=b2, minlength=uniq.size),
            "d2": np.bincount(inverse, weights=d2, minlength=uniq.size),
        }
    )


def histogram_partition(
    frames: Mapping[str, pd.DataFrame], grid: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(marginals, pairs) of one partition's per-event score frames (variation -> frame with
    event_id, process, label, weight, score; weight-only variations carry the nominal scores
    with their own weights). Rows are sorted by their keys; events are added in row order.

    Example:
        >>> nom = pd.DataFrame({"event_id": [1, 2], "process": "s", "label": 1,
        ...                     "weight": [1.0, 2.0], "score": [0.3, 0.8]})
        >>> up = nom.assign(score=[0.3, 0.9], weight=[1.5, 2.0])
        >>> marg, pairs = histogram_partition({"nominal": nom, "x_up": up}, fine_grid())
        >>> marg[marg.variation == "x_up"][["bin", "weight", "n_raw"]].values.tolist()
        [[300.0, 1.5, 1.0], [900.0, 2.0, 1.0]]
        >>> pairs[["bin_nom", "bin_var", "d2"]].values.tolist()
        [[300.0, 300.0, 0.25], [800.0, 900.0, 0.0]]
    """
    if NOMINAL not in frames:
        raise DataContractError(f"histograms need the 'nominal' scores; got {sorted(frames)}")
    for name, frame in frames.items():
        _check_events(frame, name)
    labels = _labels_of(frames)
    names = sorted(labels)
    order = sorted(frames, key=lambda v: (v != NOMINAL, v))
    marginals = pd.concat(
        [_marginal(v, frames[v], names, labels, grid) for v in order], ignore_index=True
    )
    pair_tables = [_pairs(v, frames[NOMINAL], frames[v], names, labels, grid) for v in order[1:]]
    pairs = pd.concat(pair_tables, ignore_index=True) if pair_tables else _empty_pairs()
    return marginals, pairs


def sum_partitions(
    marginals: Sequence[pd.DataFrame], pairs: Sequence[pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The partitions' (marginals, pairs) tables added, in the order given, into one pair of
    tables of the same columns (rows sorted by their keys)."""
    if not marginals:
        raise DataContractError("no partition histograms to add")
    keys = ["variation", "process", "label", "bin"]
    marg = pd.concat(marginals, ignore_index=True)
    marg = marg.groupby(keys, sort=True)[["weight", "sumw2", "n_raw"]].sum().reset_index()
    allp = pd.concat(pairs, ignore_index=True) if pairs else _empty_pairs()
    pkeys = ["variation", "process", "label", "bin_nom", "bin_var"]
    if len(allp):
        allp = allp.groupby(pkeys, sort=True)[["a2", "b2", "d2"]].sum().reset_index()
    return marg[list(MARGINAL_COLUMNS)], allp[list(PAIR_COLUMNS)]


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in PAIR_COLUMNS})


def binned_frames(marginals: pd.DataFrame, pairs: pd.DataFrame, grid: np.ndarray) -> BinnedFrames:
    """:class:`BinnedFrames` of summed (marginals, pairs) tables on the fine ``grid``."""
    grid = np.asarray(grid, dtype=np.float64)
    marginals = marginals.assign(score=representative(marginals["bin"].to_numpy(), grid))
    columns = ["process", "label", "score", "weight", "sumw2", "n_raw", "bin"]
    frames = {
        str(v): part[columns].reset_index(drop=True)
        for v, part in marginals.groupby("variation", sort=True)
    }
    if NOMINAL not in frames:
        raise DataContractError("the histograms have no 'nominal' variation")
    pair_tables: dict[str, pd.DataFrame] = {}
    for v, part in pairs.groupby("variation", sort=True):
        part = part.drop(columns="variation").reset_index(drop=True)
        for side in ("nom", "var"):
            b = part[f"bin_{side}"].to_numpy(dtype=np.int64)
            part[f"score_{side}"] = np.where(b < 0, np.nan, representative(b, grid))
        pair_tables[str(v)] = part
    return BinnedFrames(frames, pairs=pair_tables, grid=grid)


def merge_partitions(
    marginals: Sequence[pd.DataFrame], pairs: Sequence[pd.DataFrame], grid: np.ndarray
) -> BinnedFrames:
    """Add the partitions' histograms (in the order given) into one :class:`BinnedFrames`."""
    return binned_frames(*sum_partitions(marginals, pairs), grid)


def grid_of(path: str | Path) -> np.ndarray:
    """The fine grid a histogram file was made on (its provenance's ``fine_grid``)."""
    from . import io

    grid = io.read_provenance(path).get(GRID_KEY)
    if not grid:
        raise DataContractError(f"{path}: no '{GRID_KEY}' in its provenance; not a histogram file")
    return np.asarray(grid, dtype=np.float64)


def read_merged(hist: str | Path, pairs: str | Path | None = None) -> BinnedFrames:
    """The summed histograms of a classifier (``hist``, and ``pairs`` for the shift errors)."""
    from . import io

    marg = io.read_table(hist, required=MARGINAL_COLUMNS)
    pair_table = (
        io.read_table(pairs, required=PAIR_COLUMNS) if pairs is not None else _empty_pairs()
    )
    return binned_frames(marg, pair_table, grid_of(hist))


def shift_cell_variance(
    pairs: pd.DataFrame, cell_nom: np.ndarray, cell_var: np.ndarray, size: int
) -> np.ndarray:
    """Per cell, the MC variance of a shift from a merged pair table, given each row's cell on
    the nominal and on the varied side (-1: none): d2 where both sides share the cell, else a2
    to the nominal side's cell and b2 to the varied side's."""
    same = (cell_nom == cell_var) & (cell_nom >= 0)
    cells = np.concatenate([cell_nom[same], cell_nom[~same], cell_var[~same]])
    values = np.concatenate(
        [
            pairs["d2"].to_numpy(dtype=np.float64)[same],
            pairs["a2"].to_numpy(dtype=np.float64)[~same],
            pairs["b2"].to_numpy(dtype=np.float64)[~same],
        ]
    )
    keep = cells >= 0
    return np.bincount(cells[keep], weights=values[keep], minlength=size)


def describe(frames: Mapping[str, Any]) -> str:
    """One log line: rows and events of a mapping of (binned or per-event) frames."""
    nominal = frames[NOMINAL]
    return f"{len(frames)} variations, nominal {len(nominal)} rows, {int(raw_counts(nominal).sum())} MC events"


__all__ = [
    "BinnedFrames",
    "fine_bin",
    "fine_grid",
    "histogram_partition",
    "merge_partitions",
    "raw_counts",
    "read_merged",
    "sum_partitions",
    "binned_frames",
    "grid_of",
    "representative",
    "shift_cell_variance",
    "snap",
    "squared_weights",
]
