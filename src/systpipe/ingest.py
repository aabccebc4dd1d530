"""Turn external ROOT, Parquet or CSV files into the canonical event table (SPEC section 3)."""

from __future__ import annotations

import glob
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, IngestError

log = logging.getLogger(__name__)

FORMATS = ("auto", "root", "parquet", "csv")
LABELS = {"signal": 1, "background": 0}
RESERVED = ("process", "label", "weight")
EVENT_ID = "event_id"
# event_id = sample index * ID_STRIDE + row index: leaves room for 10**12 events per sample.
ID_STRIDE = 10**12

_EXTENSIONS = {
    ".root": "root",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.xz": "csv",
    ".csv.zst": "csv",
}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return ``root``, ``parquet`` or ``csv`` from the file extension, or raise IngestError.

    Example:
        >>> detect_format("data/sig_1.root"), detect_format("x.PQ"), detect_format("t.csv.gz")
        ('root', 'parquet', 'csv')
    """
    name = Path(path).name.lower()
    for ext, fmt in sorted(_EXTENSIONS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(ext):
            return fmt
    raise IngestError(
        f"{path}: cannot tell the format from the extension; set 'format' to one of "
        f"{list(FORMATS[1:])} (known extensions: {sorted(_EXTENSIONS)})"
    )


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


def expand_paths(patterns: Sequence[str], *, base_dir: Path | None, key: str) -> list[Path]:
    """Resolve paths and glob patterns (relative to ``base_dir``) into a sorted, unique list.

    Raises:
        IngestError: a plain path does not exist or a pattern matches no file.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    found: set[Path] = set()
    for pattern in patterns:
        full = Path(pattern).expanduser()
        full = full if full.is_absolute() else base / full
        if glob.escape(str(full)) != str(full):
            matches = [Path(m) for m in glob.glob(str(full), recursive=True) if Path(m).is_file()]
            if not matches:
                raise IngestError(f"{key}: pattern {pattern!r} matches no file (looked in {base})")
            found.update(matches)
        elif full.is_file():
            found.add(full)
        else:
            raise IngestError(f"{key}: file {full} not found")
    # Sorted path order fixes the row index, hence the assigned event_id, across runs.
    return sorted(found, key=str)


def _read_root(
    path: Path, cols: Sequence[str], needed: Mapping[str, str], tree: str | None, key: str
) -> tuple[dict[str, np.ndarray], int]:
    import uproot

    try:
        handle = uproot.open(path)
    except Exception as exc:
        raise IngestError(
            f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})"
        ) from exc
    with handle:
        try:
            classes = handle.classnames(recursive=True)
        except Exception as exc:
            raise IngestError(f"{path}: corrupt ROOT file ({type(exc).__name__}: {exc})") from exc
        available = sorted(
            k.rsplit(";", 1)[0]
            for k, cls in classes.items()
            if cls == "TTree" or cls.startswith("ROOT::RNTuple")
        )
        if not tree:
            raise IngestError(
                f"{path}: '{key}.tree' is required for ROOT files; trees in the file: {available}"
            )
        if tree not in available:
            raise IngestError(
                f"{path}: tree {tree!r} ('{key}.tree') not found; trees in the file: {available}"
            )
        try:
            obj = handle[tree]
            present = list(obj.keys())
        except Exception as exc:
            raise IngestError(
                f"{path}: cannot read tree {tree!r} ({type(exc).__name__}: {exc})"
            ) from exc
        missing = [c for c in cols if c not in present]
        if missing:
            raise _missing_error(path, needed, missing, present)
        try:
            out = {c: np.asarray(obj[c].array(library="np")) for c in cols}
            n = int(obj.num_entries)
        except Exception as exc:
            raise IngestError(
                f"{path}: cannot read branches {list(cols)} of {tree!r} ({type(exc).__name__}: {exc})"
            ) from exc
    return out, n


def _missing_error(
    path: Path, needed: Mapping[str, str], missing: Sequence[str], present: Sequence[str]
) -> IngestError:
    which = ", ".join(f"{c!r} (from '{needed[c]}')" for c in missing)
    return IngestError(
        f"{path}: column(s) not found: {which}; columns present in this file: {sorted(present)}"
    )


def read_columns(
    path: Path, fmt: str, needed: Mapping[str, str], *, tree: str | None, key: str
) -> tuple[dict[str, np.ndarray], int]:
    """Read only the ``needed`` source columns of one file.

    Args:
        path: The file.
        fmt: ``auto``, ``root``, ``parquet`` or ``csv``.
        needed: Source column -> config key that asked for it (named in errors).
        tree: TTree/RNTuple name (ROOT only).
        key: Config key of the sample, e.g. ``files.samples[0]``.

    Returns:
        The arrays by source column name, and the number of rows.

    Raises:
        IngestError: unreadable file, missing tree or column, non-flat branch.
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    cols = list(dict.fromkeys(needed))
    if fmt == "root":
        out, n = _read_root(path, cols, needed, tree, key)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            present = pq.read_schema(path).names
        except Exception as exc:
            raise IngestError(
                f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})"
            ) from exc
        missing = [c for c in cols if c not in present]
        if missing:
            raise _missing_error(path, needed, missing, present)
        try:
            table = pq.read_table(path, columns=cols)
            n = table.num_rows
            out = {c: table.column(c).to_numpy(zero_copy_only=False) for c in cols}
        except Exception as exc:
            raise IngestError(
                f"{path}: cannot read Parquet columns {cols} ({type(exc).__name__}: {exc})"
            ) from exc
    elif fmt == "csv":
        try:
            present = list(pd.read_csv(path, nrows=0).columns)
        except Exception as exc:
            raise IngestError(
                f"{path}: not a readable CSV file ({type(exc).__name__}: {exc})"
            ) from exc
        missing = [c for c in cols if c not in present]
        if missing:
            raise _missing_error(path, needed, missing, present)
        try:
            frame = pd.read_csv(path, usecols=cols, float_precision="round_trip")
        except Exception as exc:
            raise IngestError(f"{path}: cannot parse CSV ({type(exc).__name__}: {exc})") from exc
        n = len(frame)
        out = {c: frame[c].to_numpy() for c in cols}
    else:
        raise IngestError(
            f"{path}: unknown format {fmt!r} in '{key}.format'; expected one of {list(FORMATS)}"
        )
    for c, arr in out.items():
        if arr.ndim != 1 or len(arr) != n:
            raise IngestError(f"{path}: column {c!r} is not a flat column with one value per event")
        if arr.dtype == object and any(isinstance(v, np.ndarray | list) for v in arr[:1000]):
            raise IngestError(
                f"{path}: column {c!r} is jagged (a list per event); only flat columns can be mapped"
            )
    return out, n


def _as_float(arr: np.ndarray, *, path: Path, column: str, key: str) -> np.ndarray:
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    try:
        return pd.to_numeric(pd.Series(arr), errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise IngestError(
            f"{path}: column {column!r} ('{key}') is not numeric (dtype {arr.dtype}): {exc}"
        ) from exc


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


def _check_config(
    samples: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str],
    label: Mapping[str, Any] | None,
    mev_to_gev: Sequence[str],
    keep_columns: Sequence[str],
) -> None:
    if not samples:
        raise ConfigError("'files.samples' is empty: at least one sample is needed")
    for name in columns:
        if name in RESERVED:
            raise ConfigError(
                f"'files.columns' maps the reserved name {name!r}; use 'files.{name}' "
                "(or the sample's process/process_column) instead"
            )
    for col in mev_to_gev:
        if col not in columns or col == EVENT_ID:
            raise ConfigError(
                f"'files.mev_to_gev' lists {col!r}, which is not a feature mapped in 'files.columns' "
                f"{sorted(c for c in columns if c != EVENT_ID)}"
            )
    for col in keep_columns:
        if col in columns or col in (*RESERVED, EVENT_ID):
            raise ConfigError(
                f"'files.keep_columns' entry {col!r} clashes with a canonical column name"
            )
    names = [s.get("name") for s in samples]
    for i, sample in enumerate(samples):
        key = f"files.samples[{i}]"
        if not sample.get("name"):
            raise ConfigError(f"'{key}.name' is required")
        if names.index(sample["name"]) != i:
            raise ConfigError(
                f"'{key}.name' = {sample['name']!r} is already used by files.samples[{names.index(sample['name'])}]"
            )
        if not sample.get("paths"):
            raise ConfigError(f"'{key}.paths' is required (a list of files or glob patterns)")
        if sample.get("format", "auto") not in FORMATS:
            raise ConfigError(
                f"'{key}.format' = {sample['format']!r}: expected one of {list(FORMATS)}"
            )
        if sample.get("process") and sample.get("process_column"):
            raise ConfigError(f"'{key}': give either 'process' or 'process_column', not both")
        if sample.get("process_map") and not sample.get("process_column"):
            raise ConfigError(f"'{key}.process_map' needs '{key}.process_column'")
        fixed = sample.get("label")
        if fixed is not None and fixed not in LABELS:
            raise ConfigError(f"'{key}.label' = {fixed!r}: expected one of {list(LABELS)}")
        if fixed is None:
            if not label or not label.get("column"):
                raise ConfigError(
                    f"'{key}' has no fixed 'label' and 'files.label.column' is not set: "
                    "the label of its events is unknown"
                )
            if not (label.get("signal") or label.get("background")):
                raise ConfigError(
                    "'files.label' needs a 'signal' and/or 'background' list of values"
                )


def _read_sample(
    index: int,
    sample: Mapping[str, Any],
    *,
    columns: Mapping[str, str],
    label: Mapping[str, Any] | None,
    label_lookup: Mapping[str, int],
    weight_column: str | None,
    weight_scale: float,
    mev_to_gev: Sequence[str],
    sentinels: np.ndarray,
    keep_columns: Sequence[str],
    base_dir: Path | None,
) -> tuple[pd.DataFrame, list[tuple[Path, int]]]:
    key = f"files.samples[{index}]"
    paths = expand_paths(list(sample["paths"]), base_dir=base_dir, key=f"{key}.paths")
    fixed_label = sample.get("label")
    process_column = sample.get("process_column")
    process_lookup = {_canon_code(k): str(v) for k, v in (sample.get("process_map") or {}).items()}

    needed: dict[str, str] = {}
    for canon, src in columns.items():
        needed.setdefault(src, f"files.columns.{canon}")
    if fixed_label is None:
        assert (
            label is not None
        )  # _check_config refuses a sample with neither label nor files.label
        needed.setdefault(label["column"], "files.label.column")
    if weight_column:
        needed.setdefault(weight_column, "files.weight.column")
    if process_column:
        needed.setdefault(process_column, f"{key}.process_column")
    for col in keep_columns:
        needed.setdefault(col, "files.keep_columns")

    frames: list[pd.DataFrame] = []
    files: list[tuple[Path, int]] = []
    offset = 0
    for path in paths:
        raw, n = read_columns(
            path, sample.get("format", "auto"), needed, tree=sample.get("tree"), key=key
        )
        data: dict[str, Any] = {}
        if EVENT_ID in columns:
            src = columns[EVENT_ID]
            ids = raw[src]
            if ids.dtype.kind not in "iu":
                f = _as_float(ids, path=path, column=src, key=f"files.columns.{EVENT_ID}")
                if not np.all(np.isfinite(f) & (f == np.round(f))):
                    raise IngestError(f"{path}: event_id column {src!r} holds non-integer values")
                ids = f
            data[EVENT_ID] = ids.astype(np.int64)
        else:
            data[EVENT_ID] = index * ID_STRIDE + offset + np.arange(n, dtype=np.int64)

        if fixed_label is not None:
            labels = np.full(n, LABELS[fixed_label], dtype=np.int8)
        else:
            assert label is not None
            labels = _map_codes(
                raw[label["column"]],
                label_lookup,
                path=path,
                column=label["column"],
                key="files.label",
                what="label",
                shown_mapping={k: list(label.get(k) or []) for k in LABELS},
            ).astype(np.int8)

        process: np.ndarray
        if sample.get("process"):
            process = np.full(n, str(sample["process"]), dtype=object)
        elif process_column:
            codes = raw[process_column]
            if process_lookup:
                process = _map_codes(
                    codes,
                    process_lookup,
                    path=path,
                    column=process_column,
                    key=f"{key}.process_map",
                    what="process",
                    shown_mapping=dict(sample["process_map"]),
                )
            else:
                row_codes, canon_codes = _canon_values(codes)
                process = canon_codes[row_codes]
        else:
            process = np.where(labels == 1, "signal", "background").astype(object)

        if weight_column:
            weights = _as_float(
                raw[weight_column], path=path, column=weight_column, key="files.weight.column"
            )
            bad = ~np.isfinite(weights)
            if bad.any():
                raise IngestError(
                    f"{path}: weight column {weight_column!r} has {int(bad.sum())} non-finite value(s)"
                )
            weights = weights * weight_scale
        else:
            weights = np.full(n, weight_scale, dtype=np.float64)

        data["process"] = process
        data["label"] = labels
        data["weight"] = weights
        for canon, src in columns.items():
            if canon == EVENT_ID:
                continue
            values = _as_float(raw[src], path=path, column=src, key=f"files.columns.{canon}")
            if sentinels.size:
                # Sentinels are compared in source units, before any MeV -> GeV conversion.
                values = np.where(np.isin(values, sentinels), np.nan, values)
            if canon in mev_to_gev:
                values = values / 1000.0
            data[canon] = values
        for col in keep_columns:
            arr = raw[col]
            data[col] = arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr
        frames.append(pd.DataFrame(data))
        files.append((path, n))
        offset += n
        log.debug("%s: %d events from %s", sample["name"], n, path)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    log.info(
        "sample %s: %d events from %d file(s), sum of weights %.6g",
        sample["name"],
        len(frame),
        len(paths),
        float(frame["weight"].sum()),
    )
    return frame, files


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
) -> pd.DataFrame:
    """Read every sample's files and return the event table sorted by ``event_id``.

    Columns: ``event_id`` (int64), ``process`` (str), ``label`` (int8), ``weight`` (float64),
    then every canonical feature of ``columns`` (float64, sentinels -> NaN, MeV -> GeV), then
    ``keep_columns`` under their source names.

    Args:
        samples: The ``files.samples`` entries (name, paths, format, tree, process,
            process_column, process_map, label).
        columns: Canonical name -> source column; an ``event_id`` entry supplies the ids.
        label: ``{column, signal: [...], background: [...]}``; unused by fixed-label samples.
        weight: ``{column: str | None, scale: float}``; no column means weight 1.
        mev_to_gev: Canonical columns stored in MeV.
        missing_sentinels: Source values that mean "missing" in feature columns.
        keep_columns: Extra source columns carried through unchanged (e.g. up/down weights).
        base_dir: Directory relative paths and globs are resolved against (default: cwd).

    Raises:
        ConfigError: the mapping itself is inconsistent (checked before any file is read).
        IngestError: a file, tree, column or value does not fit the mapping, or the table has
            no signal or no background events.
    """
    _check_config(samples, columns, label, mev_to_gev, keep_columns)
    label_lookup = _label_lookup(label or {})
    weight = dict(weight or {})
    scale = float(weight.get("scale", 1.0))
    if not math.isfinite(scale):
        raise ConfigError(f"'files.weight.scale' = {scale!r}: expected a finite number")
    sentinels = np.asarray(list(missing_sentinels), dtype=np.float64)
    read = [
        _read_sample(
            i,
            sample,
            columns=columns,
            label=label,
            label_lookup=label_lookup,
            weight_column=weight.get("column"),
            weight_scale=scale,
            mev_to_gev=list(mev_to_gev),
            sentinels=sentinels,
            keep_columns=list(keep_columns),
            base_dir=base_dir,
        )
        for i, sample in enumerate(samples)
    ]
    frames = [frame for frame, _ in read]
    files = [f for _, sample_files in read for f in sample_files]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    df["label"] = df["label"].astype(np.int8)
    df["process"] = df["process"].astype(object)

    ids = df[EVENT_ID].to_numpy()
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        edges = np.cumsum([n for _, n in files])
        owners = sorted(
            {str(files[i][0]) for i in np.searchsorted(edges, np.flatnonzero(dup), side="right")}
        )
        raise IngestError(
            f"column {columns.get(EVENT_ID)!r} ('files.columns.event_id') is not unique: "
            f"{int(dup.sum())} rows share an id (e.g. {int(ids[dup][0])}) in file(s) {owners}"
        )
    n_sig = int((df["label"] == 1).sum())
    n_bkg = len(df) - n_sig
    names = [s["name"] for s in samples]
    for count, what in ((n_sig, "signal"), (n_bkg, "background")):
        if count == 0:
            raise IngestError(
                f"the event table has no {what} events (samples {names}); check 'files.label' "
                f"or the samples' 'label' (label mapping: {dict(label or {})})"
            )
    if not df[EVENT_ID].is_monotonic_increasing:  # only user-supplied ids can be out of order
        df = df.sort_values(EVENT_ID, kind="stable", ignore_index=True)
    log.info("ingested %d events (%d signal, %d background)", len(df), n_sig, n_bkg)
    return df


__all__ = ["detect_format", "expand_paths", "ingest", "read_columns"]
