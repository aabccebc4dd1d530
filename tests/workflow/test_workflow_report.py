"""The report as a reader sees it: the smoke workflow's report.zip unzipped and opened in
headless Chromium; the first page shows the compact table with the dmu_tot of
results/tables/uncertainties.csv; new figures, HEPData export, group-readable files."""

from __future__ import annotations

import html
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from core_lock import all_cores

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
CLASSIFIERS = ("hgb", "lgbm", "xgb", "rf")
pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke(smoke_workdir, tmp_path_factory):
    """The session's smoke workflow and its report (built under umask 022,
    tests/smoke_session.py), the report unzipped with unzip."""
    unzipped = tmp_path_factory.mktemp("report_unzipped")
    report = smoke_workdir / "results" / "report.zip"
    if shutil.which("unzip"):  # Info-ZIP restores the stored modes, as a reader's unzip does
        subprocess.run(["unzip", "-q", str(report), "-d", str(unzipped)], check=True)
    else:
        zipfile.ZipFile(report).extractall(unzipped)
    return smoke_workdir / "results", unzipped / "report"


def _dom(report_html: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--virtual-time-budget=15000", "--dump-dom", report_html.as_uri()]  # fmt: skip
    with all_cores():  # chromium renders with several processes
        proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _table(dom: str, table_id: str) -> tuple[list[str], list[list[str]]]:
    match = re.search(
        rf'<table class="systpipe-table" id="table-{table_id}">(.*?)</table>', dom, re.S
    )
    assert match, f"rendered page has no table {table_id!r}"
    head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", match.group(1))]
    rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r)]
            for r in re.findall(r"<tr>(.*?)</tr>", match.group(1).split("</thead>", 1)[1], re.S)]  # fmt: skip
    return head, rows


def test_first_page_shows_the_compact_table_with_the_csv_numbers(smoke):
    results, report = smoke
    dom = _dom(report / "report.html")
    # the app ran: the landing page (workflow description) with the custom title, first
    assert "systpipe: uncertainty on the signal strength" in dom
    assert dom.index('id="systpipe-summary"') < dom.index("About this run")
    head, rows = _table(dom, "compact")
    assert head == ["classifier", "score >", "dmu_stat", "dmu_sig", "dmu_bkg", "dmu_lumi",
                    "dmu_det", "dmu_mcstat", "dmu_syst_tot", "dmu_tot"]  # fmt: skip
    table = pd.read_csv(results / "tables" / "uncertainties.csv")
    sel = table[(table["working_point"] == "profile_optimum") & (table["method"] == "profile")]
    expected = {c: f"{v:.3f}" for c, v in zip(sel["classifier"], sel["dmu_tot"], strict=True)}
    names = {"HGB": "hgb", "LightGBM": "lgbm", "XGBoost": "xgb", "Random forest": "rf"}
    assert {names[r[0]]: r[-1] for r in rows} == expected
    assert "profile-likelihood optimum" in dom and "binned profile-likelihood" in dom
    assert "Smallest dmu_tot with the binned profile-likelihood method" in dom
    assert _table(dom, "fit")[0][:4] == ["classifier", "fit region (score)", "mu-hat", "total"]
    assert "Diagnostics (" in dom and "most severe first" in dom
    # categories in reading order
    menu = ["1 Summary", "2 Tables", "3 Fit", "4 Classifiers", "5 Studies", "6 Provenance"]
    positions = [dom.index(m) for m in menu]
    assert positions == sorted(positions)


def test_report_items_are_rendered_pages_and_pdfs_are_linked(smoke):
    _, report = smoke
    files = {p.name for p in (report / "data").rglob("*") if p.is_file()}
    assert {
        "summary.html",
        "compact.html",
        "methods.html",
        "coverage.html",
        "provenance.html",
    } <= files
    assert {"nll_scan.pdf", "coverage.pdf", "mc_counts.pdf", "overtraining.pdf", "ams.pdf"} <= files


def test_new_figures_exist_for_every_classifier_and_hepdata_validates(smoke):
    from systpipe.hepdata import validate_archive

    results, _ = smoke
    for clf in CLASSIFIERS:
        for path in (f"fit/{clf}/nll_scan", f"plots/{clf}/mc_counts", f"plots/{clf}/overtraining"):
            for ext in ("png", "pdf"):
                assert (results / f"{path}.{ext}").stat().st_size > 1000, path
    assert (results / "fit" / "xgb" / "coverage.png").is_file()  # smoke: toys for xgb only
    assert (results / "plots" / "significance.png").is_file()
    assert validate_archive(results / "hepdata" / "submission.tar.gz") == []
    tex = (results / "tables" / "compact.tex").read_text()
    assert r"\toprule" in tex and r"\caption{" in tex


def test_results_and_unzipped_report_are_group_readable(smoke):
    results, report = smoke
    bad = [
        (str(p), oct(stat.S_IMODE(p.stat().st_mode)))
        for base in (results, report)
        for p in base.rglob("*")
        if p.is_file() and stat.S_IMODE(p.stat().st_mode) != 0o644
    ]
    assert bad == []
    assert len(list(report.rglob("*.html"))) >= 8
