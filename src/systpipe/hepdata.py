"""HEPData export: a ``hepdata_lib`` submission with the compact uncertainty table (one
asymmetric uncertainty per systematic, HEPData's signed (down, up) convention), the fit's
breakdown, the coverage tables and the pyhf workspaces as HistFactory resources; validated
with ``hepdata-validator``."""

from __future__ import annotations

import contextlib
import gc
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataContractError
from .io import write_bytes
from .plots.labels import DEFAULT_LABELS, PlotLabels
from .report_tables import METHOD_NAMES, WP_NAMES, systematic_columns


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """hepdata-validator 0.3.6 (imported by hepdata_lib) uses jsonschema's deprecated
    RefResolver and RefResolutionError and leaves files open: silence those warnings only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=ResourceWarning)
        yield


def _num(x: Any) -> float:
    v = float(x)
    return v if math.isfinite(v) else 0.0


def signed_pair(row: Mapping[Any, Any], k: str) -> tuple[float, float]:
    """(down, up) signed shift of mu for systematic ``k``: the row's d_down_k and d_up_k where
    present, else -/+ dmu_k.

    Example:
        >>> signed_pair({"d_up_lumi": -0.042, "d_down_lumi": 0.044, "dmu_lumi": 0.043}, "lumi")
        (0.044, -0.042)
        >>> signed_pair({"dmu_det": 0.3}, "det")
        (-0.3, 0.3)
    """
    up, down = row.get(f"d_up_{k}"), row.get(f"d_down_{k}")
    if (
        up is not None
        and down is not None
        and math.isfinite(float(up))
        and math.isfinite(float(down))
    ):
        return float(down), float(up)
    d = _num(row[f"dmu_{k}"])
    return -d, d


def compact_hepdata_table(
    rows: pd.DataFrame, names: Sequence[str], wp: str, method: str, labels: PlotLabels
) -> Any:
    """HEPData table: mu-hat per classifier with its statistical, MC-statistical and
    per-systematic (down, up) uncertainties, and dmu_tot as a second variable."""
    with _quiet():
        from hepdata_lib import Table, Uncertainty, Variable

    table = Table("Uncertainty on the signal strength")
    table.description = (
        f"Signal strength mu-hat and its uncertainties per classifier at the "
        f"{WP_NAMES.get(wp, wp)} working point with the {METHOD_NAMES.get(method, method)} "
        f"method (Asimov data, mu = 1). Systematic uncertainties are the signed shifts of mu "
        f"under the down and up variations; dmu_tot is the total uncertainty."
    )
    table.location = "systpipe results/tables/compact"
    table.keywords["observables"] = ["MU"]
    table.keywords["cmenergies"] = [labels.sqrt_s_tev * 1000.0]
    clf = Variable("Classifier", is_independent=True, is_binned=False)
    clf.values = [labels.classifier(c) for c in rows["classifier"]]
    mu = Variable("Signal strength $\\mu$", is_independent=False, is_binned=False)
    mu.values = [
        _num(v) if "mu_hat" in rows and pd.notna(v) else 1.0
        for v in rows.get("mu_hat", [1.0] * len(rows))
    ]
    mu.add_qualifier("SQRT(S)", labels.sqrt_s_tev, "TeV")
    if labels.luminosity_fb is not None:
        mu.add_qualifier("LUMINOSITY", labels.luminosity_fb, "fb$^{-1}$")
    stat = Uncertainty("stat", is_symmetric=True)
    stat.values = [_num(v) for v in rows["dmu_stat"]]
    mu.add_uncertainty(stat)
    if "dmu_mcstat" in rows:
        mc = Uncertainty("MC stat", is_symmetric=True)
        mc.values = [_num(v) for v in rows["dmu_mcstat"]]
        mu.add_uncertainty(mc)
    for col in systematic_columns(rows, names):
        k = col[4:]
        unc = Uncertainty(f"syst,{labels.parameter(k)}", is_symmetric=False)
        unc.values = [signed_pair(r, k) for r in rows.to_dict("records")]
        mu.add_uncertainty(unc)
    tot = Variable("Total uncertainty $\\delta\\mu_{tot}$", is_independent=False, is_binned=False)
    tot.values = [_num(v) for v in rows["dmu_tot"]]
    table.add_variable(clf)
    table.add_variable(mu)
    table.add_variable(tot)
    return table


def breakdown_hepdata_table(
    fits: Mapping[str, Mapping[str, Any]], names: Sequence[str], labels: PlotLabels
) -> Any:
    """HEPData table: the profile fit's uncertainty breakdown (+up, -down) per classifier."""
    with _quiet():
        from hepdata_lib import Table, Variable

    keys = [k for k in ("stat", "mc_stat", *names, "syst", "total")
            if any(k in f.get("breakdown", {}) for f in fits.values())]  # fmt: skip
    table = Table("Breakdown of the profile-likelihood uncertainty")
    table.description = (
        "Uncertainty on mu from the binned profile-likelihood fit at the profile-likelihood "
        "optimum, per source: sqrt(total^2 - frozen^2) with the source's parameters frozen."
    )
    table.location = "systpipe results/tables/breakdown"
    table.keywords["observables"] = ["MU"]
    src = Variable("Source", is_independent=True, is_binned=False)
    src.values = [labels.parameter(k) for k in keys]
    table.add_variable(src)
    for clf, fit in fits.items():
        bd = fit.get("breakdown", {})
        for side, sign in (("up", 1.0), ("down", -1.0)):
            var = Variable(
                f"{labels.classifier(clf)}: $\\delta\\mu$ {side}",
                is_independent=False,
                is_binned=False,
            )
            var.values = [sign * _num(bd.get(k, {}).get(side, math.nan)) for k in keys]
            table.add_variable(var)
    return table


def coverage_hepdata_table(clf: str, coverage: pd.DataFrame, labels: PlotLabels) -> Any:
    """HEPData table: coverage of each method's 68.27 % interval per toy mode (binomial error)."""
    with _quiet():
        from hepdata_lib import Table, Uncertainty, Variable

    table = Table(f"Coverage {labels.classifier(clf)}")
    table.description = (
        f"{labels.classifier(clf)}: fraction of pseudo-experiments whose 68.27 % interval covers "
        "the true mu (nominal 0.6827), per method and toy mode, with the binomial error."
    )
    table.location = f"systpipe results/fit/{clf}/coverage"
    table.keywords["observables"] = ["COVERAGE"]
    case = Variable("Method, toys", is_independent=True, is_binned=False)
    case.values = [f"{r['method']}, {r['mode']}" for _, r in coverage.iterrows()]
    cov = Variable("Coverage", is_independent=False, is_binned=False)
    cov.values = [_num(v) for v in coverage["coverage"]]
    err = Uncertainty("binomial", is_symmetric=True)
    err.values = [_num(v) for v in coverage["coverage_err"]]
    cov.add_uncertainty(err)
    table.add_variable(case)
    table.add_variable(cov)
    return table


def build_submission(
    *,
    table: pd.DataFrame,
    names: Sequence[str],
    wp: str,
    method: str,
    fits: Mapping[str, Mapping[str, Any]],
    coverage: Mapping[str, pd.DataFrame],
    workspaces: Mapping[str, str | Path],
    out: str | Path,
    labels: PlotLabels = DEFAULT_LABELS,
) -> Path:
    """Write the validated submission archive ``out`` (a .tar.gz), atomically.

    Raises:
        DataContractError: the recommended rows are missing, or hepdata-validator rejects
            the archive (its messages are in the error).
    """
    with _quiet():
        from hepdata_lib import Submission

    rows = table[table["working_point"] == wp]
    if "method" in rows:
        rows = rows[rows["method"] == method]
    if rows.empty:
        raise DataContractError(
            f"hepdata: no row of the uncertainty table with working_point {wp!r} and method {method!r}"
        )
    sub = Submission()
    sub.comment = (
        f"systpipe: uncertainty on the signal strength mu of a classifier-based selection "
        f"({labels.experiment} Simulation, {labels.plain_rlabel})."
    )
    sub.add_table(compact_hepdata_table(rows.reset_index(drop=True), names, wp, method, labels))
    if fits:
        sub.add_table(breakdown_hepdata_table(fits, names, labels))
    for clf, cov in coverage.items():
        sub.add_table(coverage_hepdata_table(clf, cov, labels))
    with tempfile.TemporaryDirectory(prefix="systpipe-hepdata-") as tmp:
        work = Path(tmp)
        for clf, path in workspaces.items():
            copy = work / f"workspace_{clf}.json"
            shutil.copyfile(path, copy)
            sub.add_additional_resource(
                f"pyhf (HistFactory JSON) workspace of {labels.classifier(clf)}",
                str(copy), copy_file=True, file_type="HistFactory",
            )  # fmt: skip
        with contextlib.chdir(work):  # hepdata_lib writes submission.tar.gz to the cwd
            sub.create_files(str(work / "submission"), validate=False)
        archive = work / "submission.tar.gz"
        messages = validate_archive(archive)
        if messages:
            raise DataContractError(
                f"hepdata: hepdata-validator rejects the submission: {messages}"
            )
        return write_bytes(archive.read_bytes(), out)


def validate_archive(archive: str | Path) -> list[str]:
    """hepdata-validator's messages for a submission archive ([] when it is valid)."""
    with _quiet():
        from hepdata_validator.full_submission_validator import FullSubmissionValidator

        validator = FullSubmissionValidator()
        valid = validator.validate(archive=str(archive))
        messages = [f"{f}: {m.message}" for f, ms in validator.get_messages().items() for m in ms]
        del validator
        gc.collect()  # the validator leaves its YAML files open: close them under the filter
    return [] if valid else messages


__all__ = [
    "breakdown_hepdata_table",
    "build_submission",
    "compact_hepdata_table",
    "coverage_hepdata_table",
    "signed_pair",
    "validate_archive",
]
