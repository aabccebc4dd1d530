"""Turn external ROOT, Parquet or CSV files into the canonical event table (SPEC section 3).

The file layer (formats, trees, CSV options) is :mod:`systpipe.ingest_read`, the checks of the
mapping are :mod:`systpipe.ingest_config`, units are :mod:`systpipe.ingest_units`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataContractError, IngestError
from .expressions import Expression, evaluate_columns
from .ingest_config import EVENT_ID, LABELS, RESERVED, SUM_WEIGHTS_AUTO, check_files
from .ingest_options import alternative_kwargs, as_list, ingest_kwargs, input_files
from .ingest_read import FORMATS, as_float, detect_format, expand_paths, read_columns
from .ingest_units import check_units, unit_factors

log = logging.getLogger(__name__)

#: Column of the event table that carries a predefined train/test split (1: test, 0: train).
SPLIT_PART = "split_part"
# event_id = sample index * ID_STRIDE + row index: leaves room for 10**12 events per sample.
ID_STRIDE = 10**12
# 1 pb x 1 fb^-1 = 1000 events.
PB_TIMES_INVFB = 1000.0


def _canon_code(value: Any) -> str:
    """Canonical text of a label or process code so that 1, 1.0, '1' and np.int8(1) all match.

    Example:
        >>> [_canon_code(v) for v in (1, 1.0, "1", " s", np.int8(0), 2.5, True)]
        ['1', '1', '1', 's', '0', '2.5', '1']
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        try:
            num = float(text)
        except ValueError:
            return text
        return _canon_code(num) if math.isfinite(num) else text
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "nan"
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def _canon_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factorise ``values`` and return (row codes, canonical text of each distinct value)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    return codes, np.array([_canon_code(u) for u in uniques], dtype=object)


def _map_codes(
    values: np.ndarray,
    lookup: Mapping[str, Any],
    *,
    path: Path,
    column: str,
    key: str,
    what: str,
    shown_mapping: Any,
) -> np.ndarray:
    """Map code values through ``lookup`` (canonical code -> result); list unexpected codes."""
    codes, canon = _canon_values(values)
    unknown = sorted({c for c in canon if c not in lookup})
    if unknown:
        shown = unknown[:20] + (["..."] if len(unknown) > 20 else [])
        raise IngestError(
            f"{path}: {what} column {column!r} has value(s) {shown} outside the mapping '{key}' "
            f"= {shown_mapping}"
        )
    return np.array([lookup[c] for c in canon], dtype=object)[codes]


def _label_lookup(label: Mapping[str, Any]) -> dict[str, int]:
    lookup: dict[str, int] = {}
    for name, value in LABELS.items():
        for code in label.get(name) or ():
            c = _canon_code(code)
            if lookup.get(c, value) != value:
                raise ConfigError(
                    f"'files.label': value {code!r} is listed as both signal and background"
                )
            lookup[c] = value
    return lookup


@dataclass
class _Options:
    """Everything :func:`_read_part` needs besides the sample (built once by :func:`ingest`)."""

    columns: Mapping[str, str]
    label: Mapping[str, Any] | None
    label_lookup: Mapping[str, int]
    weight_column: str | None
    weight_scale: float
    luminosity_fb: float | None
    factors: Mapping[str, float]
    sentinels: np.ndarray
    keep_columns: Sequence[str]
    csv: Mapping[str, Any]
    split: Mapping[str, Any] | None
    base_dir: Path | None
    max_rows: int | None
    files: list[tuple[Path, int]] = field(default_factory=list)


def _needed(sample: Mapping[str, Any], key: str, opts: _Options, selection: Expression | None):
    needed: dict[str, str] = {}
    for canon, src in opts.columns.items():
        needed.setdefault(src, f"files.columns.{canon}")
    if sample.get("label") is None:
        assert opts.label is not None  # check_files refuses a sample with neither
        needed.setdefault(opts.label["column"], "files.label.column")
    if opts.weight_column:
        needed.setdefault(opts.weight_column, "files.weight.column")
    if sample.get("process_column"):
        needed.setdefault(sample["process_column"], f"{key}.process_column")
    for col in opts.keep_columns:
        needed.setdefault(col, "files.keep_columns")
    for col in sorted(selection.columns if selection else ()):
        needed.setdefault(col, f"{key}.selection")
    if opts.split and opts.split.get("column"):
        needed.setdefault(opts.split["column"], "files.split.column")
    return needed


def _numeric(raw: np.ndarray, opts: _Options, *, path: Path, column: str, key: str) -> np.ndarray:
    values = as_float(raw, path=path, column=column, key=key)
    if opts.sentinels.size:
        # Sentinels are compared in source units, before any unit conversion.
        values = np.where(np.isin(values, opts.sentinels), np.nan, values)
    return values


def _read_file(
    path: Path,
    index: int,
    sample: Mapping[str, Any],
    key: str,
    opts: _Options,
    selection: Expression | None,
    offset: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One file of a sample: the rows (all of them) and the selection mask."""
    raw, n = read_columns(
        path,
        sample.get("format", "auto"),
        _needed(sample, key, opts, selection),
        tree=sample.get("tree"),
        key=key,
        csv=opts.csv,
        max_rows=opts.max_rows,
    )
    columns = opts.columns
    data: dict[str, Any] = {}
    if EVENT_ID in columns:
        src = columns[EVENT_ID]
        ids = raw[src]
        if ids.dtype.kind not in "iu":
            f = as_float(ids, path=path, column=src, key=f"files.columns.{EVENT_ID}")
            if not np.all(np.isfinite(f) & (f == np.round(f))) or np.isin(f, opts.sentinels).any():
                raise IngestError(f"{path}: event_id column {src!r} holds non-integer values")
            ids = f
        data[EVENT_ID] = ids.astype(np.int64)
    else:
        data[EVENT_ID] = index * ID_STRIDE + offset + np.arange(n, dtype=np.int64)

    fixed_label = sample.get("label")
    if fixed_label is not None:
        labels = np.full(n, LABELS[fixed_label], dtype=np.int8)
    else:
        assert opts.label is not None
        labels = _map_codes(
            raw[opts.label["column"]],
            opts.label_lookup,
            path=path,
            column=opts.label["column"],
            key="files.label",
            what="label",
            shown_mapping={k: list(opts.label.get(k) or []) for k in LABELS},
        ).astype(np.int8)

    process_column = sample.get("process_column")
    if sample.get("process"):
        process = np.full(n, str(sample["process"]), dtype=object)
    elif process_column:
        process_map = sample.get("process_map") or {}
        if process_map:
            process = _map_codes(
                raw[process_column],
                {_canon_code(k): str(v) for k, v in process_map.items()},
                path=path,
                column=process_column,
                key=f"{key}.process_map",
                what="process",
                shown_mapping=dict(process_map),
            )
        else:
            row_codes, canon_codes = _canon_values(raw[process_column])
            process = canon_codes[row_codes]
    else:
        process = np.where(labels == 1, "signal", "background").astype(object)

    if opts.weight_column:
        col = opts.weight_column
        weights = as_float(raw[col], path=path, column=col, key="files.weight.column")
        bad = ~np.isfinite(weights)
        if bad.any():
            raise IngestError(
                f"{path}: weight column {col!r} has {int(bad.sum())} non-finite value(s), the "
                f"first at row {int(np.flatnonzero(bad)[0])}"
            )
        hit = np.isin(weights, opts.sentinels)
        if hit.any():
            raise IngestError(
                f"{path}: weight column {col!r} holds the missing-value sentinel "
                f"{weights[hit][0]:g} ('files.missing_values') in {int(hit.sum())} row(s), the "
                f"first at row {int(np.flatnonzero(hit)[0])}: a weight cannot be missing"
            )
    else:
        weights = np.ones(n, dtype=np.float64)

    data["process"] = process
    data["label"] = labels
    data["weight"] = weights
    for canon, src in columns.items():
        if canon != EVENT_ID:
            values = _numeric(raw[src], opts, path=path, column=src, key=f"files.columns.{canon}")
            data[canon] = values * opts.factors[canon] if canon in opts.factors else values
    for col in opts.keep_columns:
        arr = raw[col]
        data[col] = arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr
    if opts.split and opts.split.get("column"):
        data[SPLIT_PART] = _map_codes(
            raw[opts.split["column"]],
            {_canon_code(v): 0 for v in opts.split["train"]}
            | {_canon_code(v): 1 for v in opts.split["test"]},
            path=path,
            column=opts.split["column"],
            key="files.split",
            what="split",
            shown_mapping={"train": list(opts.split["train"]), "test": list(opts.split["test"])},
        ).astype(np.int8)
    mask = np.ones(n, dtype=bool)
    if selection is not None:
        scope = {
            c: _numeric(raw[c], opts, path=path, column=c, key=f"{key}.selection")
            for c in selection.columns
        }
        result = selection.evaluate(scope, where=str(path))
        if result.dtype != bool:
            raise ConfigError(
                f"'{key}.selection' = {selection.text!r} is not a condition (it gives numbers, "
                "not true/false); use a comparison such as 'process_id == 2'"
            )
        mask = result
    return pd.DataFrame(data), mask


def _read_part(
    index: int,
    sample: Mapping[str, Any],
    key: str,
    patterns: Sequence[str],
    opts: _Options,
    selection: Expression | None,
    offset: int,
    part: int | None,
) -> tuple[pd.DataFrame, int]:
    """The selected, normalised events of some of a sample's files; returns them and the
    number of rows read (for the next part's row offset)."""
    paths = expand_paths(list(patterns), base_dir=opts.base_dir, key=f"{key}.paths")
    frames, masks = [], []
    start = offset
    for path in paths:
        frame, mask = _read_file(path, index, sample, key, opts, selection, offset)
        frames.append(frame)
        masks.append(mask)
        opts.files.append((path, len(frame)))
        offset += len(frame)
        log.debug(
            "%s: %d events (%d selected) from %s", sample["name"], len(frame), mask.sum(), path
        )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    mask = np.concatenate(masks)
    raw_sum, n_all = float(frame["weight"].sum()), len(frame)
    frame = frame.loc[mask].reset_index(drop=True)
    factor = opts.weight_scale * float(sample.get("weight_scale", 1.0) or 1.0)
    if sample.get("cross_section_pb") is not None:
        sumw = sample["sum_weights"]
        if sumw in SUM_WEIGHTS_AUTO:
            sumw = raw_sum if sumw == "auto" else float(frame["weight"].sum())
            if sumw == 0 or not math.isfinite(sumw):
                raise IngestError(
                    f"'{key}.sum_weights' = {sample['sum_weights']!r}: the weights of {len(paths)} "
                    f"file(s) ({[str(p) for p in paths]}) sum to {sumw}; give the number"
                )
        assert opts.luminosity_fb is not None
        factor *= float(sample["cross_section_pb"]) * opts.luminosity_fb * PB_TIMES_INVFB / sumw
    frame["weight"] = frame["weight"].to_numpy(dtype=np.float64) * factor
    if part is not None:
        frame[SPLIT_PART] = np.full(len(frame), part, dtype=np.int8)
    log.info(
        "sample %s%s: %d of %d events selected from %d file(s), sum of weights %.6g",
        sample["name"],
        "" if part is None else f" ({'test' if part else 'train'})",
        len(frame),
        n_all,
        len(paths),
        float(frame["weight"].sum()),
    )
    return frame, offset - start


def ingest(
    *,
    samples: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str],
    label: Mapping[str, Any] | None = None,
    weight: Mapping[str, Any] | None = None,
    mev_to_gev: Sequence[str] = (),
    missing_sentinels: Sequence[float] = (),
    keep_columns: Sequence[str] = (),
    base_dir: Path | None = None,
    luminosity_fb: float | None = None,
    units: Mapping[str, str] | None = None,
    missing_values: Sequence[float] = (),
    csv: Mapping[str, Any] | None = None,
    derive: Sequence[str] = (),
    derived_columns: Mapping[str, str] | None = None,
    split: Mapping[str, Any] | None = None,
    test_samples: Sequence[Mapping[str, Any]] = (),
    max_rows: int | None = None,
    collect: list[str] | None = None,
    require_both_labels: bool = True,
) -> pd.DataFrame:
    """Read every sample's files and return the event table sorted by ``event_id``.

    Columns: ``event_id`` (int64), ``process`` (str), ``label`` (int8), ``weight`` (float64),
    then every canonical feature of ``columns`` (float64, sentinels -> NaN, converted to GeV),
    then ``keep_columns`` under their source names, the ``derive`` features, the
    ``derived_columns`` and, with a predefined split, ``split_part`` (int8, 1 = test).
    The units findings (:func:`systpipe.ingest_units.check_units`) are in ``attrs["findings"]``.

    Args:
        samples: The ``files.samples`` entries (name, paths, format, tree, process,
            process_column, process_map, label, weight_scale, cross_section_pb, sum_weights,
            selection, test_path).
        columns: Canonical name -> source column; an ``event_id`` entry supplies the ids.
        label: ``{column, signal: [...], background: [...]}``; unused by fixed-label samples.
        weight: ``{column: str | None, scale: float}``; no column means weight 1.
        mev_to_gev: Canonical columns stored in MeV (older spelling of ``units``).
        missing_sentinels: Source values that mean "missing" (older spelling of
            ``missing_values``).
        keep_columns: Extra source columns carried through unchanged (e.g. up/down weights).
        base_dir: Directory relative paths and globs are resolved against (default: cwd).
        luminosity_fb: ``files.luminosity_fb``, for samples with ``cross_section_pb``.
        units: Canonical column -> ``MeV``/``GeV``/``TeV``.
        missing_values: Numbers meaning "missing": NaN in features and selections, an error in
            the weight and event_id columns.
        csv: ``files.csv``: ``delimiter``, ``missing_values`` (strings).
        derive: Dilepton features computed from the mapped lepton and MET columns.
        derived_columns: Name -> expression over the event table's columns, in order.
        split: ``{column, train: [...], test: [...]}``: a predefined split by a source column.
        test_samples: Samples whose events form the test part (``files.test_samples``).
        max_rows: Read at most this many rows per file (``systpipe validate --data``).
        collect: When given, the errors of each sample, and of the table, are appended to it
            and reading goes on (``systpipe validate --data`` lists every problem at once);
            the table returned may then be partial or empty.
        require_both_labels: Refuse a table without signal or without background events
            (False for the alternative files of a ``sample`` systematic).

    Raises:
        ConfigError: the mapping itself is inconsistent (checked before any file is read).
        IngestError: a file, tree, column or value does not fit the mapping, or the table has
            no signal or no background events.
    """
    from .features import derive_features

    selections, test_selections, derived = check_files(
        samples=samples,
        test_samples=test_samples,
        columns=columns,
        label=label,
        keep_columns=keep_columns,
        luminosity_fb=luminosity_fb,
        derive=derive,
        derived_columns=derived_columns,
        split=split,
    )
    weight = dict(weight or {})
    scale = float(weight.get("scale", 1.0))
    if not math.isfinite(scale):
        raise ConfigError(f"'files.weight.scale' = {scale!r}: expected a finite number")
    opts = _Options(
        columns=columns,
        label=label,
        label_lookup=_label_lookup(label or {}),
        weight_column=weight.get("column"),
        weight_scale=scale,
        luminosity_fb=None if luminosity_fb is None else float(luminosity_fb),
        factors=unit_factors(units, mev_to_gev, columns),
        sentinels=np.asarray([*missing_sentinels, *missing_values], dtype=np.float64),
        keep_columns=list(keep_columns),
        csv=dict(csv or {}),
        split=split if split and split.get("column") else None,
        base_dir=base_dir,
        max_rows=max_rows,
    )
    predefined = bool(test_samples) or any(s.get("test_path") for s in samples)
    jobs: list[tuple[int, Mapping[str, Any], str, Expression | None, int | None]] = [
        (i, s, f"files.samples[{i}]", selections[i], 0 if predefined else None)
        for i, s in enumerate(samples)
    ]
    jobs += [
        (len(samples) + j, s, f"files.test_samples[{j}]", test_selections[j], 1)
        for j, s in enumerate(test_samples)
    ]
    frames: list[pd.DataFrame] = []
    for index, sample, key, selection, part in jobs:
        try:
            frame, n_rows = _read_part(
                index, sample, key, sample["paths"], opts, selection, 0, part
            )
            frames.append(frame)
            if sample.get("test_path"):
                test_paths = as_list(sample["test_path"])
                test, _ = _read_part(index, sample, key, test_paths, opts, selection, n_rows, 1)
                frames.append(test)
        except (ConfigError, IngestError, DataContractError) as exc:
            if collect is None:
                raise
            collect.append(str(exc))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df["label"] = df["label"].astype(np.int8)
    df["process"] = df["process"].astype(object)
    try:
        _check_table(df, columns, label, samples, opts.files, require_both_labels)
        if derive:
            df = derive_features(df, list(derive))
        if derived:
            df = df.assign(**evaluate_columns(df, derived))
    except (ConfigError, IngestError, DataContractError) as exc:
        if collect is None:
            raise
        collect.append(str(exc))
    if SPLIT_PART in df.columns:
        df = df[[c for c in df.columns if c != SPLIT_PART] + [SPLIT_PART]]
    if not df[EVENT_ID].is_monotonic_increasing:  # user-supplied ids or test samples
        df = df.sort_values(EVENT_ID, kind="stable", ignore_index=True)
    n_sig = int((df["label"] == 1).sum())
    log.info("ingested %d events (%d signal, %d background)", len(df), n_sig, len(df) - n_sig)
    df.attrs["findings"] = check_units(df.drop(columns=list(RESERVED)), opts.factors)
    return df


def _check_table(
    df: pd.DataFrame,
    columns: Mapping[str, str],
    label: Mapping[str, Any] | None,
    samples: Sequence[Mapping[str, Any]],
    files: list[tuple[Path, int]],
    require_both_labels: bool = True,
) -> None:
    ids = df[EVENT_ID].to_numpy()
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        raise IngestError(
            f"column {columns.get(EVENT_ID)!r} ('files.columns.event_id') is not unique: "
            f"{int(dup.sum())} rows share an id (e.g. {int(ids[dup][0])}) in file(s) "
            f"{sorted({str(p) for p, _ in files})}"
        )
    n_sig = int((df["label"] == 1).sum())
    names = [s["name"] for s in samples]
    for count, what in ((n_sig, "signal"), (len(df) - n_sig, "background")):
        if count == 0 and require_both_labels:
            raise IngestError(
                f"the event table has no {what} events (samples {names}); check 'files.label', "
                f"the samples' 'label' and 'selection' (label mapping: {dict(label or {})})"
            )


__all__ = [
    "FORMATS",
    "SPLIT_PART",
    "alternative_kwargs",
    "detect_format",
    "expand_paths",
    "ingest",
    "ingest_kwargs",
    "input_files",
    "read_columns",
]
