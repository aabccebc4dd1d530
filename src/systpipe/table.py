"""The final uncertainty table: one row per classifier and working point, in four formats."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import DataContractError, SystpipeError
from .io import write_table as write_parquet
from .io import write_text
from .scan import GUARDS
from .systematics import columns

if TYPE_CHECKING:
    from .stat.methods import MethodResult

log = logging.getLogger(__name__)

METHOD = "shift"
#: The cut-and-count working points of the scan, and the table's row order.
WORKING_POINTS = ("max_ams", "min_dmu_tot")
WORKING_POINT_ORDER = ("max_ams", "min_dmu_tot", "profile_optimum")
METHOD_ORDER = ("shift", "linear", "profile", "chi2", "neyman")
#: Columns only the neyman rows fill (its set's edges, the construction and its flags); the
#: table has them only when some method row does.
EXTRA_COLUMNS = ("mu_lo", "mu_hi", "notes")
#: Raw and effective MC event counts of the working point, copied into every row.
COUNT_COLUMNS = ("n_raw_S", "n_raw_B", "neff_S", "neff_B")
#: ``guard`` of a row whose working point no guard limited; also that of the profile optimum,
#: which the scan's guards do not choose.
NO_GUARD = "none"
TABLE_SUFFIXES = (".parquet", ".csv", ".md", ".tex")
_MODEL_KEYS = {"AUC": "auc"}
#: Columns of the classifier summary table (wall-clock numbers live here, not in the
#: uncertainty table, so that the uncertainty table is byte-identical run to run).
CLASSIFIER_COLUMNS = (
    "classifier",
    "type",
    "AUC",
    "AUC_unweighted",
    "train_time_s",
    "n_train",
    "threads",
)


def _best(key: np.ndarray, valid: np.ndarray, thr: np.ndarray) -> int:
    """Position of the smallest key among valid rows; ties go to the lowest threshold."""
    cand = np.flatnonzero(valid & ~np.isnan(key))
    cand = cand[key[cand] == key[cand].min()]
    return int(cand[np.argmin(thr[cand])])


def working_points(scan_df: pd.DataFrame) -> dict[str, int]:
    """Row positions (for ``.iloc``) of the max-AMS and min-dmu_tot thresholds among valid rows.

    Ties go to the lowest threshold.

    Example:
        >>> df = pd.DataFrame({"threshold": [0.1, 0.2, 0.3], "ams": [1.0, 2.0, 2.0],
        ...                    "dmu_tot": [0.5, 0.4, 0.6], "valid": [True, True, True]})
        >>> working_points(df)
        {'max_ams': 1, 'min_dmu_tot': 1}
    """
    required = ("threshold", "ams", "dmu_tot", "valid")
    missing = [c for c in required if c not in scan_df.columns]
    if missing:
        raise DataContractError(
            f"scan table: missing column(s) {missing}; columns present: {list(scan_df.columns)}"
        )
    valid = scan_df["valid"].to_numpy(dtype=bool)
    amsv = scan_df["ams"].to_numpy(dtype=np.float64)
    dmu = scan_df["dmu_tot"].to_numpy(dtype=np.float64)
    thr = scan_df["threshold"].to_numpy(dtype=np.float64)
    if not (valid & ~np.isnan(amsv) & ~np.isnan(dmu)).any():
        cuts = ", ".join(
            f"scan.{k}={scan_df.attrs[k]}"
            for k in ("min_signal", "min_background", "min_neff_signal", "min_neff_background")
            if k in scan_df.attrs
        )
        counts = ""
        if "excluded_by" in scan_df.columns:
            tally = scan_df["excluded_by"].astype(str).value_counts()
            counts = "; rows excluded by " + ", ".join(
                f"{g}: {int(tally[g])}" for g in GUARDS if g in tally.index
            )
        raise SystpipeError(
            "no valid threshold in the scan: every row fails S_nominal >= scan.min_signal, "
            "B_nominal >= scan.min_background, neff_S >= scan.min_neff_signal, "
            "neff_B >= scan.min_neff_background or S > 0 in some variation"
            + (f" ({cuts})" if cuts else "")
            + counts
            + "; lower scan.min_signal / scan.min_background / scan.min_neff_signal / "
            "scan.min_neff_background or widen scan.thresholds"
        )
    return {"max_ams": _best(-amsv, valid, thr), "min_dmu_tot": _best(dmu, valid, thr)}


def working_point_guards(scan_df: pd.DataFrame) -> dict[str, str]:
    """For each working point of :func:`working_points`, the guard that limited its choice.

    The unconstrained optimum is the best row (largest AMS, smallest dmu_tot; ties to the
    lowest threshold) among the rows with S > 0 in every variation (columns ``S_<v>``). If it
    is as good as the working point, the guards cost nothing: "none". Otherwise the result
    is the guard that excludes it, its ``excluded_by`` (the first of
    :data:`systpipe.scan.GUARDS` it fails: "min_neff_background", "min_neff_signal",
    "min_background", "min_signal").

    Example:
        >>> df = pd.DataFrame({"threshold": [0.1, 0.2, 0.3], "S_nominal": [9.0, 5.0, 1.0],
        ...     "ams": [1.0, 2.0, 3.0], "dmu_tot": [0.5, 0.4, 0.3], "valid": [True, True, False],
        ...     "excluded_by": ["none", "none", "min_neff_background"]})
        >>> working_point_guards(df)
        {'max_ams': 'min_neff_background', 'min_dmu_tot': 'min_neff_background'}
    """
    points = working_points(scan_df)
    missing = [c for c in ("excluded_by", "S_nominal") if c not in scan_df.columns]
    if missing:
        raise DataContractError(
            f"scan table: missing column(s) {missing}; columns present: {list(scan_df.columns)}"
        )
    excluded = scan_df["excluded_by"].astype(str).to_numpy()
    valid = scan_df["valid"].to_numpy(dtype=bool)
    thr = scan_df["threshold"].to_numpy(dtype=np.float64)
    yields = scan_df[[c for c in scan_df.columns if c.startswith("S_")]].to_numpy(np.float64)
    # A row that passes every guard but is not valid fails S > tiny (rounding residue of
    # cancelling weights): not a candidate either.
    free = np.all(yields > 0, axis=1) & ~((excluded == "none") & ~valid)
    keys = {
        "max_ams": -scan_df["ams"].to_numpy(dtype=np.float64),
        "min_dmu_tot": scan_df["dmu_tot"].to_numpy(dtype=np.float64),
    }
    out = {}
    for wp, pos in points.items():
        best = _best(keys[wp], free | valid, thr)
        out[wp] = "none" if keys[wp][best] >= keys[wp][pos] else str(excluded[best])
    return out


def table_columns(systematics: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column order of the uncertainty table for the given systematics.

    Example:
        >>> table_columns([{"name": "lumi"}])[12:]
        ['dmu_stat', 'dmu_lumi', 'd_up_lumi', 'd_down_lumi', 'dmu_mcstat', 'dmu_syst_tot', 'dmu_tot', 'dmu_lin', 'guard', 'AUC']
    """
    names = [s["name"] for s in systematics]
    return [
        "classifier", "working_point", "method", "threshold", "S", "B", *COUNT_COLUMNS,
        "AMS", "Z_asimov", "dmu_stat",
        *(columns.dmu(k) for k in names),
        *(c for k in names for c in (columns.d_up(k), columns.d_down(k))),
        "dmu_mcstat", "dmu_syst_tot", "dmu_tot", "dmu_lin", "guard", "AUC",
    ]  # fmt: skip


def _syst_tot(scan_row: pd.Series) -> float:
    """dmu_syst_tot of a cut-and-count row: systematics and MC statistics in quadrature."""
    return float(np.hypot(float(scan_row["dmu_syst"]), float(scan_row["dmu_mcstat"])))


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
        under each variation; dmu_lin is the linear-propagation cross-check). dmu_syst_tot
        is sqrt(dmu_syst^2 + dmu_mcstat^2) (systematics and MC statistics); guard names the
        guard that limited the working point (:func:`working_point_guards`).
    """
    if not scans:
        raise DataContractError("build_table: no scan tables given")
    header = table_columns(systematics)
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
            "dmu_mcstat",
            "dmu_tot",
            "dmu_lin",
            *COUNT_COLUMNS,
            "excluded_by",
        ]
        needed += [c for k in names for c in (columns.dmu(k), columns.d_up(k), columns.d_down(k))]
        missing = [c for c in needed if c not in scan.columns]
        if missing:
            raise DataContractError(f"scan of {clf!r}: missing column(s) {missing}")
        try:
            points = working_points(scan)
            guards = working_point_guards(scan)
        except SystpipeError as exc:
            raise type(exc)(f"classifier {clf!r}: {exc}") from exc
        info = {col: _model_value(model_info, clf, key) for col, key in _MODEL_KEYS.items()}
        for wp in WORKING_POINTS:
            r = scan.iloc[points[wp]]
            row: dict[str, Any] = {
                "classifier": clf, "working_point": wp, "method": METHOD,
                "threshold": r["threshold"], "S": r["S_nominal"], "B": r["B_nominal"],
                "AMS": r["ams"], "Z_asimov": r["z_asimov"], "dmu_stat": r["dmu_stat"],
                "dmu_mcstat": r["dmu_mcstat"], "dmu_syst_tot": _syst_tot(r), "dmu_tot": r["dmu_tot"],
                "dmu_lin": r["dmu_lin"], "guard": guards[wp],
                **{c: r[c] for c in COUNT_COLUMNS},
            }  # fmt: skip
            for k in names:
                for col in (columns.dmu(k), columns.d_up(k), columns.d_down(k)):
                    row[col] = r[col]
            row.update(info)
            rows.append(row)
    out = pd.DataFrame(rows, columns=header)
    float_cols = [c for c in header[3:] if c not in ("n_raw_S", "n_raw_B", "guard")]
    out[float_cols] = out[float_cols].astype(np.float64)
    out[["n_raw_S", "n_raw_B"]] = out[["n_raw_S", "n_raw_B"]].astype(np.int64)
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
        {
            "classifier": clf,
            **{
                col: _model_value(model_info, clf, key)
                if col not in ("type",)
                else str(model_info[clf].get(key, clf))
                for col, key in keys.items()
            },
        }
        for clf in model_info
    ]
    out = pd.DataFrame(rows, columns=list(CLASSIFIER_COLUMNS))
    return out.astype({"n_train": "int64", "threads": "int64"})


# --------------------------------------------------------------------------- method rows


def row_base(
    *, classifier: str, working_point: str, scan_row: pd.Series, n_bins: int
) -> dict[str, Any]:
    """The columns of a method row that describe its working point (from the scan row),
    the raw and effective MC event counts included."""
    return {
        "classifier": classifier, "working_point": working_point, "threshold": float(scan_row["threshold"]),
        "S": float(scan_row["S_nominal"]), "B": float(scan_row["B_nominal"]),
        "n_raw_S": int(scan_row["n_raw_S"]), "n_raw_B": int(scan_row["n_raw_B"]),
        "neff_S": float(scan_row["neff_S"]), "neff_B": float(scan_row["neff_B"]), "AMS": float(scan_row["ams"]),
        "Z_asimov": float(scan_row["z_asimov"]), "dmu_lin": float(scan_row["dmu_lin"]), "n_bins": n_bins,
    }  # fmt: skip


def method_row(
    result: MethodResult,
    *,
    classifier: str,
    working_point: str,
    scan_row: pd.Series,
    n_bins: int,
    names: Sequence[str],
) -> dict[str, Any]:
    """One row of the method comparison: the working point's cut-and-count numbers from the
    scan row and the method's interval breakdown (:func:`systpipe.stat.methods.table_columns_of`)."""
    from .stat.methods import table_columns_of

    base = row_base(
        classifier=classifier, working_point=working_point, scan_row=scan_row, n_bins=n_bins
    )
    return {**base, "method": result.method, **table_columns_of(result, names)}


def shift_row_columns(scan_row: pd.Series, names: Sequence[str]) -> dict[str, float]:
    """The shift method's columns read off a scan row (the vectorised scan computes them);
    dmu_syst_tot is sqrt(dmu_syst^2 + dmu_mcstat^2)."""
    out = {
        "mu_hat": 1.0, "dmu_stat": float(scan_row["dmu_stat"]), "dmu_syst_tot": _syst_tot(scan_row),
        "dmu_tot": float(scan_row["dmu_tot"]), "dmu_mcstat": float(scan_row["dmu_mcstat"]),
    }  # fmt: skip
    out |= {columns.dmu(k): float(scan_row[columns.dmu(k)]) for k in names}
    out |= {columns.d_up(k): float(scan_row[columns.d_up(k)]) for k in names}
    out |= {columns.d_down(k): float(scan_row[columns.d_down(k)]) for k in names}
    return out


def merge_method_rows(
    shift_table: pd.DataFrame, methods: Sequence[pd.DataFrame], classifiers: Sequence[str]
) -> pd.DataFrame:
    """The final table: shift rows of the cut-and-count table plus the other methods' rows,
    ordered by classifier, working point and method.

    The method rows take AUC from the classifier's shift rows and guard from the shift row of
    their working point (:data:`NO_GUARD` for the profile optimum, which the scan's guards do
    not choose)."""
    shift = shift_table.assign(mu_hat=1.0, n_bins=1)
    if "dmu_mcstat" not in shift.columns:  # a table from before the MC-statistics term
        shift = shift.assign(dmu_mcstat=0.0)
    info = shift_table.drop_duplicates("classifier").set_index("classifier")[["AUC"]]
    others = pd.concat(methods, ignore_index=True)
    others = others.join(info, on="classifier")
    if "guard" in shift.columns and "guard" not in others.columns:
        guards = shift.set_index(["classifier", "working_point"])["guard"]
        others = others.join(guards, on=["classifier", "working_point"])
        others["guard"] = others["guard"].fillna(NO_GUARD)
    table = pd.concat([shift, others], ignore_index=True)
    extra = [c for c in EXTRA_COLUMNS if c in others.columns]
    table = table[[*shift.columns, *extra]]
    if "notes" in extra:
        table["notes"] = table["notes"].fillna("").astype(str)
    order = {
        "classifier": {c: i for i, c in enumerate(classifiers)},
        "working_point": {w: i for i, w in enumerate(WORKING_POINT_ORDER)},
        "method": {m: i for i, m in enumerate(METHOD_ORDER)},
    }
    keys = table[list(order)].apply(lambda col: col.map(order[col.name]))
    table = table.iloc[np.lexsort([keys[c] for c in reversed(list(order))])].reset_index(drop=True)
    table["n_bins"] = table["n_bins"].astype("int64")
    for col in ("n_raw_S", "n_raw_B"):
        if col in table.columns and not table[col].isna().any():
            table[col] = table[col].astype("int64")
    return table


# --------------------------------------------------------------------------- writers


def _to_csv(df: pd.DataFrame) -> str:
    # Default float formatting is repr (shortest round-trip), so the CSV re-reads bit-exactly.
    return df.to_csv(index=False, lineterminator="\n")


def _to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g") + "\n"


def _to_latex(df: pd.DataFrame) -> str:
    float_cols = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    int_cols = [c for c in df.columns if pd.api.types.is_integer_dtype(df[c])]
    text_cols = [c for c in df.columns if c not in float_cols and c not in int_cols]
    styler = df.style.hide(axis="index")
    styler = styler.format("{:.4g}", subset=float_cols)  # type: ignore[arg-type]
    styler = styler.format(escape="latex", subset=text_cols)  # type: ignore[arg-type]
    styler = styler.format_index(escape="latex", axis=1)
    column_format = "".join("l" if c in text_cols else "r" for c in df.columns)
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


__all__ = [
    "CLASSIFIER_COLUMNS",
    "COUNT_COLUMNS",
    "METHOD_ORDER",
    "NO_GUARD",
    "TABLE_SUFFIXES",
    "WORKING_POINTS",
    "WORKING_POINT_ORDER",
    "build_table",
    "classifier_table",
    "merge_method_rows",
    "method_row",
    "row_base",
    "shift_row_columns",
    "table_columns",
    "working_point_guards",
    "working_points",
    "write_table",
]
