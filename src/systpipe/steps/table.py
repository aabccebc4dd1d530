"""Steps of ``workflow/rules/table.smk``: the final uncertainty table and the run record."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from .. import io
from ..errors import DataContractError
from ..provenance import run_provenance
from ..table import build_table, classifier_table, merge_method_rows, write_table
from ._registry import STEPS, StepContext, step

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "md", "tex")


def _prefix(paths: Mapping[str, str | Path], what: str) -> str:
    """The common prefix of one table's four format files (written together)."""
    prefixes = {str(paths[fmt]).removesuffix(f".{fmt}") for fmt in FORMATS}
    if len(prefixes) != 1:
        raise DataContractError(
            f"{what}: the .parquet/.csv/.md/.tex outputs must share one path prefix, got {sorted(prefixes)}"
        )
    return prefixes.pop()


@step(
    "table",
    uses=("scan", "systematics", "classifiers"),
    help="final uncertainty table (in: scan__<clf>, info__<clf>, methods__<clf>; out: parquet, csv, md, tex, classifiers*)",
)
def table(
    ctx: StepContext,
    *,
    scan: Mapping[str, str | Path],
    info: Mapping[str, str | Path],
    methods: Mapping[str, str | Path] | None = None,
    parquet: str | Path,
    csv: str | Path,
    md: str | Path,
    tex: str | Path,
    classifiers: str | Path,
    classifiers_csv: str | Path,
    classifiers_md: str | Path,
    classifiers_tex: str | Path,
) -> None:
    """The uncertainty table in Parquet, CSV, Markdown and LaTeX: the cut-and-count shift rows
    plus, when the statistical model ran, the linear, profile and chi2 rows of every classifier
    (column ``method``); and the classifier summary (AUC, training time)."""
    scan_frames = {clf: io.read_table(path) for clf, path in scan.items()}
    model_info = {clf: json.loads(Path(path).read_text()) for clf, path in info.items()}
    df = build_table(scan_frames, systematics=ctx.settings["systematics"], model_info=model_info)
    if methods:
        names = [c["name"] for c in ctx.settings["classifiers"]]
        df = merge_method_rows(
            df, [io.read_table(methods[c]) for c in names if c in methods], names
        )
    prefix = _prefix({"parquet": parquet, "csv": csv, "md": md, "tex": tex}, "table")
    write_table(df, prefix, provenance=ctx.provenance())
    summary = {
        "parquet": classifiers,
        "csv": classifiers_csv,
        "md": classifiers_md,
        "tex": classifiers_tex,
    }
    write_table(
        classifier_table(model_info),
        _prefix(summary, "classifier table"),
        provenance=ctx.provenance(),
    )


@step(
    "diagnostics",
    uses=("diagnostics",),
    help="every warning about the run's numbers, most severe first (in: table, fit__<clf>, workspace__<clf>, coverage__<clf>)",
)
def diagnostics(
    ctx: StepContext,
    *,
    table: str | Path,
    fit: Mapping[str, str | Path] | None = None,
    workspace: Mapping[str, str | Path] | None = None,
    coverage: Mapping[str, str | Path] | None = None,
    binning: Mapping[str, str | Path] | None = None,
    diagnostics: str | Path,
) -> None:
    """Gather the diagnostics of the final table, the fits, the workspaces (model check) and
    the toys into one JSON record, most severe first, and log its summary."""
    from .. import diagnostics as diag
    from ..stat.validation import check_workspace

    found = diag.from_table(io.read_table(table))
    for clf, path in (fit or {}).items():
        found += diag.from_fit(json.loads(Path(path).read_text()), clf)
    for clf, path in (workspace or {}).items():
        found += diag.from_workspace_findings(
            check_workspace(json.loads(Path(path).read_text())), clf
        )
    for clf, path in (binning or {}).items():
        found += diag.from_templates(json.loads(Path(path).read_text()).get("templates", {}), clf)
    for clf, path in (coverage or {}).items():
        found += diag.from_coverage(io.read_table(path), clf)
    record = diag.summarise(found)
    record["fail_on"] = ctx.settings["diagnostics"]["fail_on"]
    for line in diag.summary_lines(record, limit=50):
        log.info("%s", line)
    io.write_json(record, diagnostics)


@step(
    "provenance",
    uses=None,
    help="run record: config, seeds, versions, git commit, code fingerprints (out: provenance)",
)
def provenance(ctx: StepContext, *, provenance: str | Path) -> None:
    """Write ``results/provenance.json``: config, seeds, versions, git commit and the code
    fingerprint of every step."""
    fingerprints = {name: s.fingerprint() for name, s in sorted(STEPS.items())}
    io.write_json(run_provenance(dict(ctx.settings), fingerprints), provenance)
