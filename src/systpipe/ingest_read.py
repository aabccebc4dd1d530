"""Reading source columns from ROOT, Parquet and CSV files (the file layer of ingest).

ROOT trees are found by their stored name: uproot lists keys as ``NAME;CYCLE``, where the
stored ``NAME`` may itself end in ``;1`` (what a copy loop over ``keys()`` writes). A ``tree``
value is matched, in order, as a stored name (highest cycle), as ``NAME;CYCLE``, and as a stored
name without its own trailing ``;N`` -- so a tree stored as ``tree_event;1`` is read by
``tree_event;1``, ``tree_event`` and uproot's ``tree_event;1;1`` alike.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import IngestError

FORMATS = ("auto", "root", "parquet", "csv")
#: CSV fields that always mean "missing": empty, and the NaN text pandas and numpy write.
CSV_DEFAULT_MISSING = ("", "nan", "NaN")

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
_CYCLE = re.compile(r"^(.*);(\d+)$")


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


def resolve_tree(keys: Sequence[str], tree: str) -> str | None:
    """The uproot key (``NAME;CYCLE``) that ``tree`` names among ``keys``, or None.

    Example:
        >>> keys = ["tree_event;1;1", "other;2", "other;1", "dir/t;1"]
        >>> [resolve_tree(keys, t) for t in ("tree_event;1", "tree_event", "tree_event;1;1")]
        ['tree_event;1;1', 'tree_event;1;1', 'tree_event;1;1']
        >>> resolve_tree(keys, "other"), resolve_tree(keys, "other;1"), resolve_tree(keys, "x")
        ('other;2', 'other;1', None)
    """
    by_name: dict[str, list[int]] = {}
    for key in keys:
        m = _CYCLE.match(key)
        name, cycle = (m.group(1), int(m.group(2))) if m else (key, 0)
        by_name.setdefault(name, []).append(cycle)

    def best(name: str) -> str:
        return f"{name};{max(by_name[name])}"

    if tree in by_name:
        return best(tree)
    m = _CYCLE.match(tree)
    if m and m.group(1) in by_name and int(m.group(2)) in by_name[m.group(1)]:
        return f"{m.group(1)};{m.group(2)}"
    stripped = [n for n in by_name if (c := _CYCLE.match(n)) and c.group(1) == tree]
    if len(stripped) == 1:
        return best(stripped[0])
    return None


def _read_root(
    path: Path,
    cols: Sequence[str],
    needed: Mapping[str, str],
    tree: str | None,
    key: str,
    max_rows: int | None,
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
        trees = [
            k for k, cls in classes.items() if cls == "TTree" or cls.startswith("ROOT::RNTuple")
        ]
        # Names as the user types them: the stored name, without uproot's cycle.
        available = sorted({_CYCLE.sub(r"\1", k) for k in trees})
        if not tree:
            raise IngestError(
                f"{path}: '{key}.tree' is required for ROOT files; trees in the file: {available}"
            )
        found = resolve_tree(trees, str(tree))
        if found is None:
            raise IngestError(
                f"{path}: tree {tree!r} ('{key}.tree') not found; trees in the file: {available}"
            )
        try:
            obj = handle[found]
            present = list(obj.keys())
        except Exception as exc:
            raise IngestError(
                f"{path}: cannot read tree {tree!r} ({type(exc).__name__}: {exc})"
            ) from exc
        missing = [c for c in cols if c not in present]
        if missing:
            raise missing_error(path, needed, missing, present)
        try:
            stop = None if max_rows is None else min(int(obj.num_entries), max_rows)
            out = {c: np.asarray(obj[c].array(library="np", entry_stop=stop)) for c in cols}
            n = int(obj.num_entries) if stop is None else stop
        except Exception as exc:
            raise IngestError(
                f"{path}: cannot read branches {list(cols)} of {tree!r} ({type(exc).__name__}: {exc})"
            ) from exc
    return out, n


def missing_error(
    path: Path, needed: Mapping[str, str], missing: Sequence[str], present: Sequence[str]
) -> IngestError:
    """The error for source columns not in a file: names each, the key asking for it, and the
    columns present."""
    which = ", ".join(f"{c!r} (from '{needed[c]}')" for c in missing)
    return IngestError(
        f"{path}: column(s) not found: {which}; columns present in this file: {sorted(present)}"
    )


def _read_parquet(
    path: Path, cols: list[str], needed: Mapping[str, str], max_rows: int | None
) -> tuple[dict[str, np.ndarray], int]:
    import pyarrow.parquet as pq

    try:
        present = pq.read_schema(path).names
    except Exception as exc:
        raise IngestError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [c for c in cols if c not in present]
    if missing:
        raise missing_error(path, needed, missing, present)
    try:
        if max_rows is None:
            table = pq.read_table(path, columns=cols)
        else:
            import pyarrow as pa

            batches = pq.ParquetFile(path).iter_batches(batch_size=max_rows, columns=cols)
            first = next(iter(batches), None)
            table = (
                pa.Table.from_batches([first])
                if first is not None
                else pq.read_table(path, columns=cols).slice(0, 0)
            )
        out = {c: table.column(c).to_numpy(zero_copy_only=False) for c in cols}
    except Exception as exc:
        raise IngestError(
            f"{path}: cannot read Parquet columns {cols} ({type(exc).__name__}: {exc})"
        ) from exc
    return out, table.num_rows


def _read_csv(
    path: Path,
    cols: list[str],
    needed: Mapping[str, str],
    csv: Mapping[str, Any],
    max_rows: int | None,
) -> tuple[dict[str, np.ndarray], int]:
    delimiter = csv.get("delimiter") or ","
    missing_strings = [*CSV_DEFAULT_MISSING, *(str(v) for v in csv.get("missing_values") or ())]
    try:
        present = list(pd.read_csv(path, nrows=0, sep=delimiter).columns)
    except Exception as exc:
        raise IngestError(f"{path}: not a readable CSV file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in cols if c not in present]
    if missing:
        hint = ""
        if len(present) == 1 and any(d in present[0] for d in ";\t|"):
            hint = f" (one column only: is 'files.csv.delimiter' = {delimiter!r} right?)"
        raise IngestError(f"{missing_error(path, needed, missing, present)}{hint}")
    try:
        frame = pd.read_csv(
            path,
            usecols=cols,
            sep=delimiter,
            float_precision="round_trip",
            keep_default_na=False,
            na_values=missing_strings,
            nrows=max_rows,
        )
    except Exception as exc:
        raise IngestError(f"{path}: cannot parse CSV ({type(exc).__name__}: {exc})") from exc
    return {c: frame[c].to_numpy() for c in cols}, len(frame)


def read_columns(
    path: Path,
    fmt: str,
    needed: Mapping[str, str],
    *,
    tree: str | None,
    key: str,
    csv: Mapping[str, Any] | None = None,
    max_rows: int | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Read only the ``needed`` source columns of one file.

    Args:
        path: The file.
        fmt: ``auto``, ``root``, ``parquet`` or ``csv``.
        needed: Source column -> config key that asked for it (named in errors).
        tree: TTree/RNTuple name (ROOT only), matched as described in the module docstring.
        key: Config key of the sample, e.g. ``files.samples[0]``.
        csv: ``files.csv`` options: ``delimiter``, ``missing_values`` (strings meaning missing,
            besides the empty field and ``nan``/``NaN``; any other text in a numeric column is an
            error).
        max_rows: Read at most this many rows (``systpipe validate --data``).

    Returns:
        The arrays by source column name, and the number of rows.

    Raises:
        IngestError: unreadable file, missing tree or column, non-flat branch.
    """
    fmt = detect_format(path) if fmt == "auto" else fmt
    cols = list(dict.fromkeys(needed))
    if fmt == "root":
        out, n = _read_root(path, cols, needed, tree, key, max_rows)
    elif fmt == "parquet":
        out, n = _read_parquet(path, cols, needed, max_rows)
    elif fmt == "csv":
        out, n = _read_csv(path, cols, needed, csv or {}, max_rows)
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


def as_float(arr: np.ndarray, *, path: Path, column: str, key: str) -> np.ndarray:
    """``arr`` as float64; text that is not a number is an error naming the file, the column,
    the first row and its value.

    Example:
        >>> as_float(np.array(["1.5", None, "2"], dtype=object), path=Path("f.csv"),
        ...          column="pt", key="files.columns.pt").tolist()
        [1.5, nan, 2.0]
        >>> as_float(np.array(["1", "n/a"], dtype=object), path=Path("f.csv"), column="pt", key="k")
        Traceback (most recent call last):
        ...
        systpipe.errors.IngestError: f.csv: column 'pt' ('k') is not numeric: 1 value(s) are text, the first 'n/a' at row 1 (rows counted from 0, header excluded); declare such strings in 'files.csv.missing_values' if they mean missing
    """
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    series = pd.Series(arr, dtype=object)
    coerced = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(coerced.isna().to_numpy() & series.notna().to_numpy())
    if bad.size:
        first = int(bad[0])
        raise IngestError(
            f"{path}: column {column!r} ('{key}') is not numeric: {bad.size} value(s) are text, the "
            f"first {series.iloc[first]!r} at row {first} (rows counted from 0, header excluded); "
            "declare such strings in 'files.csv.missing_values' if they mean missing"
        )
    return coerced.to_numpy(dtype=np.float64)


__all__ = [
    "CSV_DEFAULT_MISSING",
    "FORMATS",
    "as_float",
    "detect_format",
    "expand_paths",
    "missing_error",
    "read_columns",
    "resolve_tree",
]
