"""Diagnostics: each check fires exactly where its threshold says, and the record is ordered."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from systpipe.diagnostics import (
    Diagnostic,
    from_coverage,
    from_fit,
    from_table,
    should_fail,
    summarise,
    summary_lines,
)

SIGMA_1000 = math.sqrt(0.6827 * 0.3173 / 1000)


def coverage(**row):
    base = {
        "mode": "frequentist",
        "method": "profile",
        "n_toys": 1000,
        "n_ok": 1000,
        "n_failed": 0,
        "coverage": 0.6827,
    }
    return pd.DataFrame([base | row])


@pytest.mark.parametrize(
    ("failed", "severity"),
    [(0, None), (10, None), (11, "warning"), (50, "warning"), (51, "error")],
)
def test_toy_failure_thresholds(failed, severity):
    found = [
        d
        for d in from_coverage(coverage(n_failed=failed, n_ok=1000 - failed), "xgb")
        if d.check == "toy_failures"
    ]
    assert [d.severity for d in found] == ([severity] if severity else [])


@pytest.mark.parametrize(
    ("pulls", "fires"), [(1.9, False), (-1.9, False), (2.1, True), (-2.1, True)]
)
def test_coverage_outside_two_binomial_sigma(pulls, fires):
    found = from_coverage(coverage(coverage=0.6827 + pulls * SIGMA_1000), "xgb")
    assert bool([d for d in found if d.check == "coverage_off"]) is fires
    if fires:
        assert ("below" in found[0].message) is (pulls < 0)


def test_fit_record_checks():
    record = {
        "valid": True,
        "minos_valid": False,
        "interval_at_bound": "upper",
        "notes": ["x"],
        "diagnostics": [
            {"severity": "warning", "check": "hesse_vs_fisher", "message": "sigma differs"}
        ],
    }
    found = {d.check: d for d in from_fit(record, "hgb")}
    assert found["interval_at_bound"].severity == "error"
    assert found["minos_failed"].severity == "warning"
    assert found["hesse_vs_fisher"].message == "hgb: sigma differs"
    assert found["fit_note"].severity == "info"
    assert from_fit({"valid": True, "minos_valid": True}, "hgb") == []


def test_table_checks_guards_and_method_ratio():
    table = pd.DataFrame({
        "classifier": ["a"] * 4, "working_point": ["max_ams", "max_ams", "min_dmu_tot", "min_dmu_tot"],
        "method": ["shift", "profile", "shift", "profile"], "dmu_tot": [0.30, 0.21, 0.30, 0.19],
        "guard": ["none", "none", "min_neff_background", "none"],
    })  # fmt: skip
    found = from_table(table)
    assert [(d.check, d.working_point) for d in found] == [
        ("guard_limited_working_point", "min_dmu_tot"),
        ("methods_disagree", "min_dmu_tot"),
    ]  # 0.30 / 0.21 = 1.43 < 1.5 is not reported, 0.30 / 0.19 = 1.58 is


def test_record_is_ordered_and_fail_on_decides():
    found = [
        Diagnostic("info", "a", "i"),
        Diagnostic("error", "b", "e"),
        Diagnostic("warning", "c", "w"),
    ]
    record = summarise(found)
    assert [d["severity"] for d in record["diagnostics"]] == ["error", "warning", "info"]
    assert record["counts"] == {"error": 1, "warning": 1, "info": 1}
    assert (
        should_fail(record, "error")
        and should_fail(record, "warning")
        and not should_fail(record, "never")
    )
    assert should_fail(summarise(found[:1]), "warning") is False
    lines = summary_lines(record)
    assert lines[0].startswith("systpipe diagnostics: 1 error(s), 1 warning(s), 1 info(s)")
    assert len(lines) == 3  # info is counted, not listed
    with pytest.raises(ValueError, match="severity"):
        Diagnostic("fatal", "x", "y")
