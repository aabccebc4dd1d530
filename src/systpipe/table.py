"""The final uncertainty table: one row per classifier and working point, in four formats."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataContractError, SystpipeError
from .io import write_table as write_parquet
from .io import write_text
from .scan import WORKING_POINTS, working_points

log = logging.getLogger(__name__)

METHOD = "shift"
TABLE_SUFFIXES = (".parquet", ".csv", ".md", ".tex")
_MODEL_KEYS = {"AUC": "auc"}
#: Columns of the classifier summary table (wall-clock numbers live here, not in the
#: uncertainty table, so that the uncertainty table is byte-identical run to run).
CLASSIFIER_COLUMNS = ("classifier", "type", "AUC", "AUC_unweighted", "train_time_s", "n_train", "threads")


def table_columns(systematics: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column order of the uncertainty table for the given systematics.

    Example:
        >>> table_columns([{"name": "lumi"}])[8:]
        ['dmu_stat', 'dmu_lumi', 'd_up_lumi', 'd_down_lumi', 'dmu_syst_tot', 'dmu_tot', 'dmu_lin', 'AUC']
    """
    names = [s["name"] for s in systematics]
    return [
        "classifier", "working_point", "method", "threshold", "S", "B", "AMS", "Z_asimov",
        "dmu_stat",
        *(f"dmu_{k}" for k in names),
        *(c for k in names for c in (f"d_up_{k}", f"d_down_{k}")),
        "dmu_syst_tot", "dmu_tot", "dmu_lin", "AUC",
    ]  # fmt: skip


def _model_value(model_info: Mapping[str, Mapping[str, Any]], clf: str, key: str) -> float:
    info = model_info.get(clf)
    if info is None:
        raise DataContractError(
            f"model_info: no entry for classifier {clf!r}; have {sorted(model_info)}"
        )
    if key not in info:
        raise DataContractError(
            f"model_info[{clf!r}]: missing key {key!r}; keys present: {sorted(info)}"
        )
    return float(info[key])


def build_table(
    scans: Mapping[str, pd.DataFrame],
    *,
    systematics: Sequence[Mapping[str, Any]],
    model_info: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame:
    """One row per classifier (in the order given) and working point (max_ams, min_dmu_tot).

    Args:
        scans: classifier name -> its scan table from :func:`systpipe.scan.scan_scores`.
        systematics: the config's systematics list (names give the dmu_<k> columns).
        model_info: classifier name -> mapping with "auc" (the model's JSON record).

    Returns:
        The table with the columns of :func:`table_columns`; method is "shift" (mu re-fitted
        under each variation; dmu_lin is the linear-propagation cross-check).
    """
    if not scans:
        raise DataContractError("build_table: no scan tables given")
    columns = table_columns(systematics)
    names = [s["name"] for s in systematics]
    rows: list[dict[str, Any]] = []
    for clf, scan in scans.items():
        needed = [
            "threshold",
            "S_nominal",
            "B_nominal",
            "ams",
            "z_asimov",
            "dmu_stat",
            "dmu_syst",
            "dmu_tot",
            "dmu_lin",
        ]
        needed += [f"{p}{k}" for k in names for p in ("dmu_", "d_up_", "d_down_")]
        missing = [c for c in needed if c not in scan.columns]
        if missing:
            raise DataContractError(f"scan of {clf!r}: missing column(s) {missing}")
        try:
            points = working_points(scan)
        except SystpipeError as exc:
            raise type(exc)(f"classifier {clf!r}: {exc}") from exc
        info = {col: _model_value(model_info, clf, key) for col, key in _MODEL_KEYS.items()}
        for wp in WORKING_POINTS:
            r = scan.iloc[points[wp]]
            row: dict[str, Any] = {
                "classifier": clf, "working_point": wp, "method": METHOD,
                "threshold": r["threshold"], "S": r["S_nominal"], "B": r["B_nominal"],
                "AMS": r["ams"], "Z_asimov": r["z_asimov"], "dmu_stat": r["dmu_stat"],
                "dmu_syst_tot": r["dmu_syst"], "dmu_tot": r["dmu_tot"], "dmu_lin": r["dmu_lin"],
            }  # fmt: skip
            for k in names:
                row[f"dmu_{k}"] = r[f"dmu_{k}"]
                row[f"d_up_{k}"] = r[f"d_up_{k}"]
                row[f"d_down_{k}"] = r[f"d_down_{k}"]
            row.update(info)
            rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    float_cols = columns[3:]
    out[float_cols] = out[float_cols].astype(np.float64)
    log.info(
        "uncertainty table: %d classifiers x %d working points", len(scans), len(WORKING_POINTS)
    )
    return out


def classifier_table(model_info: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per classifier: type, weighted and unweighted test AUC, training time, size.

    Training time is a wall-clock measurement, different in every run; it is reported here
    and in the report so that ``uncertainties.*`` stays byte-identical for a given config.

    Example:
        >>> classifier_table({"xgb": {"type": "xgb", "auc": 0.97, "auc_unweighted": 0.96,
        ...     "train_time_s": 1.5, "n_train": 1000, "threads": 2}})["train_time_s"].tolist()
        [1.5]
    """
    keys = {"type": "type", "AUC": "auc", "AUC_unweighted": "auc_unweighted",
            "train_time_s": "train_time_s", "n_train": "n_train", "threads": "threads"}  # fmt: skip
    rows = [
        {"classifier": clf, **{col: _model_value(model_info, clf, key) if col not in ("type",)
                               else str(model_info[clf].get(key, clf)) for col, key in keys.items()}}
        for clf in model_info
    ]
    out = pd.DataFrame(rows, columns=list(CLASSIFIER_COLUMNS))
    return out.astype({"n_train": "int64", "threads": "int64"})


# --------------------------------------------------------------------------- writers


def _to_csv(df: pd.DataFrame) -> str:
    # Default float formatting is repr (shortest round-trip), so the CSV re-reads bit-exactly.
    return df.to_csv(index=False, lineterminator="\n")


def _to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g") + "\n"


def _to_latex(df: pd.DataFrame) -> str:
    float_cols = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    text_cols = [c for c in df.columns if c not in float_cols]
    styler = df.style.hide(axis="index")
    styler = styler.format("{:.4g}", subset=float_cols)
    styler = styler.format(escape="latex", subset=text_cols)
    styler = styler.format_index(escape="latex", axis=1)
    column_format = "".join("r" if c in float_cols else "l" for c in df.columns)
    return styler.to_latex(hrules=True, column_format=column_format)


def write_table(
    df: pd.DataFrame,
    prefix: str | os.PathLike[str],
    provenance: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write ``prefix``.parquet, .csv, .md (Markdown) and .tex (booktabs tabular), atomically.

    All texts are rendered before anything is written, so a formatting failure leaves no
    partial set; identical input gives byte-identical files.
    """
    base = os.fspath(prefix)
    texts = {".csv": _to_csv(df), ".md": _to_markdown(df), ".tex": _to_latex(df)}
    paths = [write_parquet(df, base + ".parquet", provenance)]
    paths += [write_text(text, base + suffix) for suffix, text in texts.items()]
    return paths


__all__ = ["CLASSIFIER_COLUMNS", "TABLE_SUFFIXES", "build_table", "classifier_table", "table_columns", "write_table"]
