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

Two tables per partition, summed per key:

- marginals, per (variation, process, fine bin) with events: ``weight`` (sum w), ``sumw2``
  (sum w^2), ``n_raw`` (events);
- pairs, per (variation, process, nominal fine bin, varied fine bin) of every variation but
  nominal: ``a2`` (sum w_nom^2), ``b2`` (sum w_var^2) and ``d2`` (sum (w_var - w_nom)^2) over
  the events in both frames (by ``event_id``), with the bin -1 on the side an event is missing
  from. The MC variance of the shift of any cell C is then exactly
  ``sum d2 [both in C] + sum a2 [only nominal in C] + sum b2 [only varied in C]``
  (:func:`systpipe.templates.build_templates`).

A partition stores its sums exactly, as integer terms (:mod:`systpipe.exact_sum`); the merge
adds the terms of every partition and rounds each sum once, to the double nearest the exact
sum. So the merged histograms, and every number computed from them, are the same bits for any
number of partitions and any order of the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import exact_sum
from .errors import DataContractError

NOMINAL = "nominal"
#: the uniform part of the fine grid: 0.001 steps on [0, 1]
UNIFORM_STEPS = 1000
MARGINAL_KEYS = ("variation", "process", "label", "bin")
PAIR_KEYS = ("variation", "process", "label", "bin_nom", "bin_var")
MARGINAL_COLUMNS = (*MARGINAL_KEYS, "weight", "sumw2", "n_raw")
PAIR_COLUMNS = (*PAIR_KEYS, "a2", "b2", "d2")
#: the exact terms of a partition's sums (systpipe.exact_sum), after its key columns
TERM_COLUMNS = ("quantity", "exp", "hi", "lo")
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


def _term_table(
    name: str,
    key: np.ndarray,
    quantities: Mapping[str, np.ndarray],
    decode: Callable[[np.ndarray], dict[str, np.ndarray]],
    counts: np.ndarray | None = None,
) -> pd.DataFrame:
    """Exact terms (:mod:`systpipe.exact_sum`) of every quantity summed per ``key``, with the
    key decoded into its columns by ``decode``; ``counts`` adds the events per key as
    ``n_raw``. Terms that are exactly zero are left out."""
    names = list(quantities)
    n_q = len(names) + 1
    group = np.concatenate([key * n_q + q for q in range(len(names))])
    g, e, hi, lo = exact_sum.terms(group, np.concatenate([quantities[q] for q in names]))
    if counts is not None:
        uniq, n = np.unique(key, return_counts=True)
        cg, ce, chi, clo = exact_sum.count_terms(uniq * n_q + len(names), n)
        g, e, hi, lo = (np.concatenate(p) for p in ((g, cg), (e, ce), (hi, chi), (lo, clo)))
        names = [*names, "n_raw"]
    keep = (hi != 0) | (lo != 0)
    g, e, hi, lo = g[keep], e[keep], hi[keep], lo[keep]
    return pd.DataFrame(
        {
            "variation": name,
            **decode(g // n_q),
            "quantity": np.array(names, dtype=object)[g % n_q],
            "exp": e.astype(np.int32),
            "hi": hi,
            "lo": lo,
        }
    )


def _marginal(
    name: str, frame: pd.DataFrame, names: list[str], labels: dict[str, int], grid: np.ndarray
) -> pd.DataFrame:
    n_cells = grid.size + 1
    key = _codes(frame["process"], names) * n_cells + fine_bin(
        frame["score"].to_numpy(dtype=np.float64), grid
    )
    w = frame["weight"].to_numpy(dtype=np.float64)

    def decode(k: np.ndarray) -> dict[str, np.ndarray]:
        proc = np.array(names, dtype=object)[k // n_cells]
        return {
            "process": proc,
            "label": np.array([labels[p] for p in proc], dtype=np.int8),
            "bin": (k % n_cells).astype(np.int32),
        }

    return _term_table(name, key, {"weight": w, "sumw2": w * w}, decode, counts=key)


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
    _, at_n, at_v = np.intersect1d(id_n[one_n], id_v[one_v], return_indices=True)
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

    def decode(k: np.ndarray) -> dict[str, np.ndarray]:
        proc = np.array(names, dtype=object)[k // (n_cells * n_cells)]
        return {
            "process": proc,
            "label": np.array([labels[p] for p in proc], dtype=np.int8),
            "bin_nom": ((k // n_cells) % n_cells - 1).astype(np.int32),
            "bin_var": (k % n_cells - 1).astype(np.int32),
        }

    return _term_table(name, key, {"a2": a2, "b2": b2, "d2": d2}, decode)


def histogram_partition(
    frames: Mapping[str, pd.DataFrame], grid: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact term tables (marginals, pairs) of one partition's per-event score frames
    (variation -> frame with event_id, process, label, weight, score; weight-only variations
    carry the nominal scores with their own weights); :func:`sum_partitions` adds them.

    Example:
        >>> nom = pd.DataFrame({"event_id": [1, 2], "process": "s", "label": 1,
        ...                     "weight": [1.0, 2.0], "score": [0.3, 0.8]})
        >>> up = nom.assign(score=[0.3, 0.9], weight=[1.5, 2.0])
        >>> marg, pairs = sum_partitions(*zip(histogram_partition({"nominal": nom, "x_up": up},
        ...                                                       fine_grid())))
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
    pairs = pd.concat(pair_tables, ignore_index=True) if pair_tables else _empty_terms(PAIR_KEYS)
    return marginals, pairs


def _empty_terms(keys: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in [*keys, *TERM_COLUMNS]})


#: the text columns of the term tables; added up as integer codes in numpy arrays (2 million
#: pair terms of 10^7 events: under 100 MB, against 430 MB as a DataFrame of strings and a
#: 1 GB peak in pandas' groupby)
_TEXT_COLUMNS = ("variation", "process", "quantity")
Terms = dict[str, np.ndarray]


def _encode(part: pd.DataFrame, columns: list[str], codes: dict[str, dict[str, int]]) -> Terms:
    """``part``'s ``columns`` (and hi, lo) as arrays, text as integer codes (``codes`` grows)."""
    out: Terms = {}
    for col in columns:
        values = part[col]
        if col in _TEXT_COLUMNS:
            mapping = codes.setdefault(col, {})
            for name in pd.unique(values):
                mapping.setdefault(str(name), len(mapping))
            out[col] = values.astype(str).map(mapping).to_numpy(np.int32)
        else:
            out[col] = values.to_numpy(np.int32)
    out["hi"] = part["hi"].to_numpy(np.int64)
    out["lo"] = part["lo"].to_numpy(np.int64)
    return out


def _boundaries(arrays: Terms, columns: list[str]) -> np.ndarray:
    """Start of each run of equal ``columns`` in sorted ``arrays``."""
    n = arrays[columns[0]].size
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    for col in columns:
        change[1:] |= arrays[col][1:] != arrays[col][:-1]
    return np.flatnonzero(change)


def _add_terms(acc: Terms | None, part: Terms, columns: list[str]) -> Terms:
    """``acc`` and one more partition's terms, added per ``columns`` (the keys, quantity and
    exponent): integer sums, exact; sorted, and never larger than the union of the keys."""
    both = part if acc is None else {c: np.concatenate([acc[c], part[c]]) for c in part}
    order = np.lexsort([both[c] for c in reversed(columns)])
    ordered = {c: a[order] for c, a in both.items()}
    starts = _boundaries(ordered, columns)
    out = {c: ordered[c][starts] for c in columns}
    for col in ("hi", "lo"):
        out[col] = np.add.reduceat(ordered[col], starts) if starts.size else ordered[col][:0]
    return out


def _totals(parts: Iterable[pd.DataFrame], keys: list[str], quantities: list[str]) -> pd.DataFrame:
    """One row per key with the correctly rounded total of every quantity (0 where absent),
    sorted by the keys' values."""
    columns = [*keys, "quantity", "exp"]
    summed: Terms | None = None
    codes: dict[str, dict[str, int]] = {}
    for part in parts:
        if len(part):
            summed = _add_terms(summed, _encode(part, columns, codes), columns)
    if summed is None:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in [*keys, *quantities]})
    names = {col: np.array(list(mapping), dtype=object) for col, mapping in codes.items()}
    unknown = sorted(set(names["quantity"]) - set(quantities))
    if unknown:
        raise DataContractError(f"unknown quantity {unknown} in the histogram terms")
    q_of_code = np.array([quantities.index(q) for q in names["quantity"]], dtype=np.int64)
    # the terms are sorted by the keys first: each key's terms are one run
    starts = _boundaries(summed, keys)
    key_id = np.cumsum(np.isin(np.arange(summed["hi"].size), starts)) - 1
    values = exact_sum.totals(
        key_id * len(quantities) + q_of_code[summed["quantity"]],
        summed["exp"].astype(np.int64),
        summed["hi"],
        summed["lo"],
        starts.size * len(quantities),
    ).reshape(starts.size, len(quantities))
    out = pd.DataFrame(
        {k: names[k][summed[k][starts]] if k in names else summed[k][starts] for k in keys}
    )
    for i, q in enumerate(quantities):
        out[q] = values[:, i]
    # the codes follow the order names first appeared in: sort by the names themselves
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def sum_partitions(
    marginals: Iterable[pd.DataFrame], pairs: Iterable[pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The partitions' exact term tables added and rounded once: (marginals, pairs) tables of
    :data:`MARGINAL_COLUMNS` and :data:`PAIR_COLUMNS`, rows sorted by their keys. Any
    partitioning of the same events gives the same bits."""
    marg = _totals(marginals, list(MARGINAL_KEYS), ["weight", "sumw2", "n_raw"])
    if marg.empty:
        raise DataContractError("no partition histograms to add")
    marg["n_raw"] = marg["n_raw"].astype(np.int64)
    marg["label"] = marg["label"].astype(np.int8)
    marg["bin"] = marg["bin"].astype(np.int32)
    pair_sums = _totals(pairs, list(PAIR_KEYS), ["a2", "b2", "d2"])
    for col, dtype in (("label", np.int8), ("bin_nom", np.int32), ("bin_var", np.int32)):
        pair_sums[col] = pair_sums[col].astype(dtype)
    return marg[list(MARGINAL_COLUMNS)], pair_sums[list(PAIR_COLUMNS)]


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
