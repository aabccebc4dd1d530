"""Tests of systpipe.report_tables / report_summary / report_zip: the compact table, rounding,
LaTeX structure (compiled with pdflatex where installed), the summary page, archive modes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import DataContractError
from systpipe.report_summary import diagnostics_html, fit_summary, recommendation, summary_body
from systpipe.report_tables import (
    breakdown_table,
    compact_table,
    coverage_table,
    latex_escape,
    method_comparison,
    recommended,
    value_error,
    yields_table,
)
from systpipe.report_zip import main as report_zip_main
from systpipe.report_zip import normalise_modes

NAMES = ["lumi", "sig", "bkg", "det"]


def _table() -> pd.DataFrame:
    rows = []
    for i, clf in enumerate(["hgb", "lgbm", "xgb", "rf"]):
        for wp in ("max_ams", "profile_optimum"):
            for method in ("shift", "profile"):
                base = 0.1 + 0.01 * i + (0.05 if method == "shift" else 0.0)
                rows.append({
                    "classifier": clf, "working_point": wp, "method": method, "threshold": 0.94 + 0.01 * i,
                    "dmu_stat": 0.0234567, "dmu_lumi": 0.0271, "dmu_sig": 0.0529, "dmu_bkg": 0.0349,
                    "dmu_det": 0.16874, "d_up_det": 0.1564, "d_down_det": -0.1811,
                    "dmu_mcstat": 0.1691 if method == "profile" else 0.0,
                    "dmu_syst_tot": base, "dmu_tot": float(np.hypot(base, 0.0234567)),
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_compact_table_has_the_questions_columns_and_values():
    t = compact_table(_table(), NAMES, "profile_optimum", "profile")
    assert t.columns == ["classifier", "score >", "dmu_stat", "dmu_sig", "dmu_bkg", "dmu_lumi",
                         "dmu_det", "dmu_mcstat", "dmu_syst_tot", "dmu_tot"]  # fmt: skip
    assert [r[0] for r in t.rows] == ["HGB", "LightGBM", "XGBoost", "Random forest"]
    assert t.rows[0][2:] == ["0.023", "0.053", "0.035", "0.027", "0.169", "0.169", "0.100", "0.103"]
    assert "profile-likelihood optimum working point, binned profile-likelihood method" in t.caption
    assert "139 fb⁻¹" in t.caption
    html = t.html()
    assert html.count("<tr>") == 5 and "<caption>" in html
    md_lines = t.markdown().splitlines()
    assert max(len(line) for line in md_lines[2:]) < 120  # readable in a terminal
    assert md_lines[2].startswith("| classifier")


def test_compact_table_missing_working_point_names_it():
    with pytest.raises(
        DataContractError,
        match=r"no row with working_point 'min_dmu_tot' and method 'profile' \(working points present: \['max_ams', 'profile_optimum'\]\)",
    ):
        compact_table(_table(), NAMES, "min_dmu_tot", "profile")


def test_latex_is_booktabs_with_caption_label_and_no_raw_specials(tmp_path):
    t = compact_table(_table(), NAMES, "max_ams", "shift")
    tex = t.latex()
    for token in (r"\begin{table}", r"\caption{", r"\label{tab:systpipe-compact}", r"\toprule",
                  r"\midrule", r"\bottomrule", r"\begin{tabular}{lrrrrrrrrr}"):  # fmt: skip
        assert token in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert "e+" not in body and "e-0" not in body  # fixed point, no 2.35e+04
    caption = tex.split("\\caption{", 1)[1].split("\n", 1)[0]
    text_only = re.sub(r"\$[^$]*\$", "", caption)  # outside math: every special escaped
    assert not re.search(r"(?<!\\)[_^%&#]", text_only.replace(r"\textasciicircum{}", ""))
    assert r"dmu\_syst\_tot = sqrt(dmu\_tot\textasciicircum{}2" in caption
    assert r"$\delta\mu_{\text{tot}}$" in tex and r"$\sqrt{s}$" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: structure checked, compile skipped")
    doc = tmp_path / "t.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs,amsmath}\\begin{document}\n"
                   + tex + "\n\\end{document}\n")  # fmt: skip
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_value_error_rounds_value_and_error_to_the_same_digit():
    assert value_error(23502.37, 187.6) == "23500 ± 190"
    assert value_error(0.70213, 0.01446) == "0.702 ± 0.014"
    assert value_error(1.23456, 0.0987) == "1.235 ± 0.099"
    assert latex_escape("a_b 50%") == r"a\_b 50\%"


def test_recommended_defaults_and_explicit_choice():
    assert recommended({"working_point": "auto", "method": "auto"}, False) == ("max_ams", "shift")
    assert recommended({"working_point": "min_dmu_tot", "method": "chi2"}, True) == (
        "min_dmu_tot",
        "chi2",
    )


def test_method_comparison_puts_each_methods_coverage_next_to_it():
    cov = pd.DataFrame({"mode": ["frequentist", "frequentist"], "method": ["profile", "shift"],
                        "coverage": [0.7021, 1.0], "coverage_err": [0.01446, 0.0],
                        "failure_rate": [0.004, 0.0]})  # fmt: skip
    t = method_comparison(_table(), {"xgb": cov}, "profile_optimum")
    assert t.columns[-2:] == ["coverage (frequentist)", "failed toys (max)"]
    rows = {(r[0], r[1]): r for r in t.rows}
    assert rows[("XGBoost", "profile")][-2:] == ["0.702 ± 0.014", "0.4 %"]
    assert rows[("HGB", "profile")][-2:] == ["–", "–"]  # no toys for hgb


def test_breakdown_fit_and_coverage_tables():
    fit = {"mu_hat": 1.0, "dmu_up": 0.1894, "dmu_down": 0.2067, "z0_expected": 6.2514,
           "z0_expected_stat_only": 48.77, "cls_expected": [0.134, 0.183, 0.260, 0.375, 0.527],
           "binning": {"threshold": 0.94, "n_bins": 10},
           "breakdown": {"stat": {"up": 0.0226, "down": 0.0226}, "det": {"up": 0.156, "down": 0.181},
                         "syst": {"up": 0.188, "down": 0.205}, "total": {"up": 0.1894, "down": 0.2067}}}  # fmt: skip
    b = breakdown_table({"hgb": fit}, NAMES)
    assert [r[0] for r in b.rows] == [
        "Data statistics",
        "Detector energy scale",
        "Systematic (total)",
        "Total",
    ]
    assert b.rows[1][1] == "+0.156 −0.181"
    assert r"$^{+0.156}_{-0.181}$" in b.latex()
    f = fit_summary({"hgb": fit})
    assert f.rows[0][1] == "> 0.94, 10 bins"
    assert [f.rows[0][0], *f.rows[0][2:7]] == [
        "HGB",
        "1.000",
        "+0.189 −0.207",
        "+0.023 −0.023",
        "+0.188 −0.205",
        "6.25",
    ]
    assert f.rows[0][8:] == ["0.260", "0.183–0.375", "0.134–0.527"]
    cov = pd.DataFrame({"mode": ["challenge"], "method": ["chi2"], "n_toys": [250], "failure_rate": [0.0],
                        "coverage": [0.459], "coverage_err": [0.016], "bias": [0.154], "bias_err": [0.007],
                        "mean_width": [0.44]})  # fmt: skip
    c = coverage_table(cov, classifier="hgb", binning={"threshold": 0.94, "n_bins": 10})
    assert "at score > 0.94 in 10 bins (the profile-likelihood optimum)" in c.caption
    assert c.rows[0] == [
        "challenge",
        "chi2",
        "250",
        "0.0 %",
        "0.459 ± 0.016",
        "0.1540 ± 0.0070",
        "0.440",
    ]


def test_yields_table_counts_raw_and_effective_events():
    df = pd.DataFrame({"process": ["WW"] * 3 + ["ttbar"] * 2, "weight": [1.0, 1.0, 2.0, 25.0, 25.0],
                       "score": [0.95, 0.99, 0.97, 0.96, 0.5]})  # fmt: skip
    t = yields_table(df, 0.9, classifier="hgb")
    tt, ww = t.rows  # no label column: every process a background, largest yield first
    assert ww == ["WW", "4.0 ± 2.4", "3", "3", "1.33"]  # N_eff = 16/6 rounds to 3
    assert tt == ["tt̄", "25 ± 25", "1", "1", "25.00"]
    labelled = yields_table(df.assign(label=[0, 0, 0, 1, 1]), 0.9, classifier="hgb")
    assert [r[0] for r in labelled.rows] == ["tt̄", "WW", "Total background"]  # ttbar as signal
    assert labelled.rows[2][1:4] == ["4.0 ± 2.4", "3", "3"]
    with pytest.raises(
        DataContractError, match=r"yields table of 'hgb': missing column\(s\) \['score'\]"
    ):
        yields_table(df.drop(columns="score"), 0.9, classifier="hgb")


def test_summary_page_recommendation_and_diagnostics_order():
    t = _table()
    compact = compact_table(t, NAMES, "profile_optimum", "profile")
    diags = {"diagnostics": [
        {"severity": "info", "check": "pruned", "message": "an info", "classifier": "hgb", "working_point": ""},
        {"severity": "error", "check": "fit_failed", "message": "a failed fit", "classifier": "hgb", "working_point": ""},
        {"severity": "warning", "check": "coverage_off", "message": "low coverage", "classifier": "hgb", "working_point": ""},
    ]}  # fmt: skip
    text = recommendation(t, "profile", diags["diagnostics"])
    assert text.startswith("Smallest dmu_tot with the binned profile-likelihood method: HGB at the")
    assert "0.010 (9 %) below the best other classifier, LightGBM (0.112 at maximum-AMS)" in text
    assert text.endswith("; 2 warning(s) below concern this classifier.")
    html = summary_body(title="T", compact=compact, wp="profile_optimum", method="profile", fit=None,
                        recommendation_text=text, diagnostics=diags)  # fmt: skip
    assert html.index("a failed fit") < html.index("low coverage") < html.index("an info")
    assert 'id="table-compact"' in html
    assert "1 error(s), 1 warning(s), 1 info(s)" in diagnostics_html(diags)


def test_report_zip_members_get_the_umask_mode(tmp_path):
    archive = tmp_path / "report.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("report/report.html", "<html></html>")  # what Snakemake does: mode 0600
        z.writestr("report/data/", "")
    normalise_modes(archive, umask=0o022)
    modes = {i.filename: i.external_attr >> 16 for i in zipfile.ZipFile(archive).infolist()}
    assert modes == {"report/report.html": 0o100644, "report/data/": 0o040755}
    assert zipfile.ZipFile(archive).read("report/report.html") == b"<html></html>"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_report_zip_cli_bad_input(tmp_path, capsys):
    assert report_zip_main([str(tmp_path / "missing.zip")]) == 1
    assert (
        f"{tmp_path / 'missing.zip'}: report archive {tmp_path / 'missing.zip'}: file not found"
        in capsys.readouterr().err
    )
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    assert report_zip_main([str(bad)]) == 1
    assert "File is not a zip file" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.zip"]  # nothing left behind
    assert report_zip_main([]) == 2
