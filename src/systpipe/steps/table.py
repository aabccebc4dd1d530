"""Steps of ``workflow/rules/table.smk``: the final uncertainty table and the run record."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import io
from ..errors import DataContractError
from ..provenance import run_provenance
from ..table import build_table, classifier_table, merge_method_rows, write_table
from ._frames import load_histograms
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
    help="every warning about the run's numbers, most severe first (in: table, fit__<clf>, workspace__<clf>, coverage__<clf>, hypotest__<clf>)",
)
def diagnostics(
    ctx: StepContext,
    *,
    table: str | Path,
    fit: Mapping[str, str | Path] | None = None,
    workspace: Mapping[str, str | Path] | None = None,
    coverage: Mapping[str, str | Path] | None = None,
    binning: Mapping[str, str | Path] | None = None,
    hypotest: Mapping[str, str | Path] | None = None,
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
    for clf, path in (hypotest or {}).items():
        found += diag.from_hypotest(io.read_table(path), clf)
    record = diag.summarise(found)
    record["fail_on"] = ctx.settings["diagnostics"]["fail_on"]
    for line in diag.summary_lines(record, limit=50):
        log.info("%s", line)
    io.write_json(record, diagnostics)


#: The rendered tables of the report (results/tables/<name>.{html,md,tex}).
REPORT_TABLES = ("compact", "fit", "methods", "breakdown", "yields", "coverage")
REPORT_SECTIONS = (
    "systematics", "report", "fit", "labels", "input", "simulate", "files", "classifiers",
)  # fmt: skip


@step(
    "report_pages",
    uses=REPORT_SECTIONS,
    help="the report's summary page, rendered tables and provenance page (in: table, diagnostics, provenance, fit__<clf>, coverage__<clf>, binning__<clf>, hist__<clf>)",
)
def report_pages(
    ctx: StepContext,
    *,
    table: str | Path,
    diagnostics: str | Path,
    provenance: str | Path,
    hist: Mapping[str, str | Path],
    fit: Mapping[str, str | Path] | None = None,
    coverage: Mapping[str, str | Path] | None = None,
    binning: Mapping[str, str | Path] | None = None,
    summary: str | Path,
    provenance_page: str | Path,
    compact_csv: str | Path,
    macros: str | Path,
    **tables: str | Path,
) -> None:
    """The first page of the report (compact table at the recommended working point and
    method, the fit's mu-hat, Z0 and CLs limit, the recommendation and the diagnostics), every
    table as HTML, Markdown and LaTeX (``<name>_html``, ``<name>_md``, ``<name>_tex`` for the
    names of :data:`REPORT_TABLES`) and the provenance page."""
    from .. import report_summary as pages
    from .. import report_tables as rt
    from ..plots.labels import labels_from_settings

    expected = {f"{n}_{f}" for n in REPORT_TABLES for f in ("html", "md", "tex")}
    if set(tables) != expected:
        raise DataContractError(
            f"report_pages: outputs {sorted(set(tables) ^ expected)} differ from the expected "
            f"<table>_<html|md|tex> for {list(REPORT_TABLES)}"
        )
    labels = labels_from_settings(ctx.settings)
    names = [s["name"] for s in ctx.settings["systematics"]]
    df = io.read_table(table)
    wp, method = rt.recommended(ctx.settings["report"], bool(fit))
    fits = {c: json.loads(Path(p).read_text()) for c, p in (fit or {}).items()}
    covs = {c: io.read_table(p) for c, p in (coverage or {}).items()}
    bins = {c: json.loads(Path(p).read_text()) for c, p in (binning or {}).items()}
    record = json.loads(Path(diagnostics).read_text())
    compact = rt.compact_table(df, names, wp, method, labels=labels)
    fit_table = (
        pages.fit_summary(fits, labels=labels)
        if fits
        else _note("fit", "The profile-likelihood fit is disabled (fit.enabled: false).")
    )
    rendered: dict[str, list[rt.Table]] = {
        "compact": [compact],
        "fit": [fit_table],
        "methods": [rt.method_comparison(df, covs, wp, labels=labels)],
        "breakdown": [
            rt.breakdown_table(fits, names, labels=labels)
            if fits
            else _note("breakdown", "No fit, no breakdown.")
        ],
        "yields": [
            rt.yields_table(
                load_histograms(hist[c])["nominal"],
                float(_rows(df, c, wp, method)["threshold"]),
                classifier=c,
                labels=labels,
            )
            for c in hist
        ],  # fmt: skip
        "coverage": [
            rt.coverage_table(cov, classifier=c, binning=bins.get(c), labels=labels)
            for c, cov in covs.items()
        ]
        or [_note("coverage", "No pseudo-experiments were run.")],
    }
    for name, parts in rendered.items():
        title = (
            parts[0].caption.split(":")[0] if name in ("yields", "coverage") else parts[0].caption
        )
        io.write_text(pages.page(title, "".join(t.html() for t in parts)), tables[f"{name}_html"])
        io.write_text("\n".join(t.markdown() for t in parts), tables[f"{name}_md"])
        io.write_text("\n".join(t.latex() for t in parts), tables[f"{name}_tex"])
    if compact.values is not None:
        io.write_text(compact.values.to_csv(index=False, float_format="%.6g"), compact_csv)
        io.write_text(_macros(compact.values), macros)
    body = pages.summary_body(
        title=ctx.settings["report"]["title"], compact=compact, wp=wp, method=method,
        fit=fit_table if fits else None,
        recommendation_text=pages.recommendation(df, method, record.get("diagnostics", []), labels=labels),
        diagnostics=record, labels=labels,
        aware_text=pages.aware_comparison(df, [c["name"] for c in ctx.settings["classifiers"]
                                               if c.get("systematics_aware")], labels=labels),
    )  # fmt: skip
    io.write_text(body + "\n", summary)
    prov = json.loads(Path(provenance).read_text())
    io.write_text(pages.page("Provenance", pages.provenance_body(prov)), provenance_page)


def _note(name: str, text: str) -> Any:
    from ..report_tables import Table

    return Table(name, text, ["note"], [[text]])


def _rows(df: Any, clf: str, wp: str, method: str) -> Any:
    sel = df[(df["classifier"] == clf) & (df["working_point"] == wp)]
    if "method" in df.columns:
        sel = sel[sel["method"] == method]
    if sel.empty:
        raise DataContractError(
            f"uncertainty table: no row for classifier {clf!r}, working_point {wp!r}, method {method!r}"
        )
    return sel.iloc[0]


def _macros(values: Any) -> str:
    r"""LaTeX macros of the compact table: ``\systpipeDmuTotHGB`` = 0.198 (letters only)."""
    lines = ["% systpipe: numbers of the compact uncertainty table (\\input this file)"]
    for _, row in values.iterrows():
        clf = "".join(ch for ch in str(row["classifier"]).title() if ch.isalpha())
        for col in values.columns:
            if not col.startswith("dmu_"):
                continue
            key = "".join(part.title() for part in col.split("_") if part.isalpha())
            lines.append(f"\\newcommand{{\\systpipe{key}{clf.upper()}}}{{{float(row[col]):.3f}}}")
    return "\n".join(lines) + "\n"


@step(
    "hepdata",
    uses=("systematics", "report", "fit", "labels", "input", "simulate", "files"),
    help="HEPData submission, validated (in: table, fit__<clf>, coverage__<clf>, workspace__<clf>; out: submission)",
)
def hepdata(
    ctx: StepContext,
    *,
    table: str | Path,
    submission: str | Path,
    fit: Mapping[str, str | Path] | None = None,
    coverage: Mapping[str, str | Path] | None = None,
    workspace: Mapping[str, str | Path] | None = None,
) -> None:
    """A hepdata_lib submission (compact table with one signed (down, up) uncertainty per
    systematic, breakdown, coverage, pyhf workspaces as HistFactory resources), validated with
    hepdata-validator before it is written."""
    from ..hepdata import build_submission
    from ..plots.labels import labels_from_settings
    from ..report_tables import recommended

    wp, method = recommended(ctx.settings["report"], bool(fit))
    build_submission(
        table=io.read_table(table),
        names=[s["name"] for s in ctx.settings["systematics"]],
        wp=wp,
        method=method,
        fits={c: json.loads(Path(p).read_text()) for c, p in (fit or {}).items()},
        coverage={c: io.read_table(p) for c, p in (coverage or {}).items()},
        workspaces=dict(workspace or {}),
        out=submission,
        labels=labels_from_settings(ctx.settings),
    )
    log.info("wrote the validated HEPData submission %s", submission)


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
