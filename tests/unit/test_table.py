"""Tests of the final uncertainty table: rows, columns, quadrature sums and the four output files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import DataContractError, SystpipeError
from systpipe.io import read_table
from systpipe.scan import default_thresholds, scan_scores
from systpipe.table import (
    CLASSIFIER_COLUMNS,
    build_table,
    classifier_table,
    table_columns,
    working_points,
    write_table,
)

SYSTEMATICS = [
    {"name": "lumi", "type": "norm", "delta": 0.01},
    {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
    {"name": "bkg", "type": "norm", "delta": 0.02, "labels": ["background"]},
    {"name": "det", "type": "scale", "delta": 0.02},
]
NAMES = [s["name"] for s in SYSTEMATICS]
MODEL_INFO = {
    "xgb": {"auc": 0.91, "train_time_s": 7.25},
    "hgb": {"auc": 0.9, "train_time_s": 6.5},
    "rf": {"auc": 0.85, "train_time_s": 23.0},
}


def toy_scan(seed, separation):
    rng = np.random.default_rng(seed)
    n = 6000
    label = (rng.random(n) < 0.3).astype(np.int8)
    score = np.where(label == 1, rng.beta(separation, 2, n), rng.beta(2, separation, n))
    weight = np.where(label == 1, 0.2, 2.0)
    base = pd.DataFrame({"label": label, "weight": weight, "score": score})
    frames = {"nominal": base}
    for direction, sign in (("up", 1.0), ("down", -1.0)):
        for syst, target in (("lumi", (0, 1)), ("sig", (1,)), ("bkg", (0,))):
            delta = next(s["delta"] for s in SYSTEMATICS if s["name"] == syst)
            factor = np.where(np.isin(label, target), 1.0 + sign * delta, 1.0)
            frames[f"{syst}_{direction}"] = base.assign(weight=weight * factor)
        frames[f"det_{direction}"] = base.assign(score=np.clip(score * (1 + sign * 0.02), 0, 1))
    return scan_scores(frames, systematics=SYSTEMATICS, thresholds=default_thresholds(0, 1, 0.01),
                       min_signal=5.0, min_background=5.0)  # fmt: skip


@pytest.fixture(scope="module")
def scans():
    # deliberately not alphabetical: the table keeps the given classifier order
    return {"xgb": toy_scan(1, 6.0), "hgb": toy_scan(2, 4.0), "rf": toy_scan(3, 3.0)}


@pytest.fixture(scope="module")
def table(scans):
    return build_table(scans, systematics=SYSTEMATICS, model_info=MODEL_INFO)


def test_rows_and_columns(table):
    assert list(table["classifier"]) == ["xgb", "xgb", "hgb", "hgb", "rf", "rf"]
    assert list(table["working_point"]) == ["max_ams", "min_dmu_tot"] * 3
    assert (table["method"] == "shift").all()
    expected = ["classifier", "working_point", "method", "threshold", "S", "B", "AMS", "Z_asimov",
                "dmu_stat", "dmu_lumi", "dmu_sig", "dmu_bkg", "dmu_det",
                "d_up_lumi", "d_down_lumi", "d_up_sig", "d_down_sig", "d_up_bkg", "d_down_bkg",
                "d_up_det", "d_down_det", "dmu_syst_tot", "dmu_tot", "dmu_lin", "AUC"]  # fmt: skip
    assert list(table.columns) == expected == table_columns(SYSTEMATICS)
    assert not table.isna().any().any()


def test_values_come_from_the_working_point_rows(scans, table):
    for clf, scan in scans.items():
        wp = working_points(scan)
        for point in ("max_ams", "min_dmu_tot"):
            row = table[(table["classifier"] == clf) & (table["working_point"] == point)].iloc[0]
            ref = scan.iloc[wp[point]]
            assert row["threshold"] == ref["threshold"]
            assert row["S"] == ref["S_nominal"] and row["B"] == ref["B_nominal"]
            assert row["AMS"] == ref["ams"] and row["dmu_det"] == ref["dmu_det"]
            assert row["d_up_sig"] == ref["d_up_sig"] and row["dmu_lin"] == ref["dmu_lin"]
            assert row["AUC"] == MODEL_INFO[clf]["auc"]
        mine = table[table["classifier"] == clf].set_index("working_point")
        assert mine.loc["max_ams", "AMS"] >= mine.loc["min_dmu_tot", "AMS"]
        assert mine.loc["min_dmu_tot", "dmu_tot"] <= mine.loc["max_ams", "dmu_tot"]


def test_quadrature_sums(table):
    syst2 = sum(table[f"dmu_{k}"] ** 2 for k in NAMES)
    np.testing.assert_allclose(table["dmu_syst_tot"] ** 2, syst2, rtol=1e-12)
    np.testing.assert_allclose(table["dmu_tot"] ** 2, table["dmu_stat"] ** 2 + syst2, rtol=1e-12)
    # signal efficiency closed form at every working point
    np.testing.assert_allclose(table["d_up_sig"], -0.05 / 1.05, rtol=1e-9)
    np.testing.assert_allclose(table["d_down_sig"], 0.05 / 0.95, rtol=1e-9)


def test_missing_model_info_and_columns(scans):
    with pytest.raises(DataContractError, match=r"'rf'"):
        build_table(
            scans, systematics=SYSTEMATICS, model_info={k: MODEL_INFO[k] for k in ("xgb", "hgb")}
        )
    info = {**MODEL_INFO, "hgb": {"train_time_s": 0.9}}
    with pytest.raises(DataContractError, match="'auc'"):
        build_table(scans, systematics=SYSTEMATICS, model_info=info)
    extra = [*SYSTEMATICS, {"name": "jes", "type": "scale", "delta": 0.01}]
    with pytest.raises(DataContractError, match="dmu_jes"):
        build_table(scans, systematics=extra, model_info=MODEL_INFO)
    with pytest.raises(DataContractError, match="no scan"):
        build_table({}, systematics=SYSTEMATICS, model_info=MODEL_INFO)


def test_no_valid_threshold_names_classifier(scans):
    broken = scans["rf"].assign(valid=False)
    with pytest.raises(SystpipeError, match=r"classifier 'rf'.*min_signal"):
        build_table(
            {"xgb": scans["xgb"], "rf": broken}, systematics=SYSTEMATICS, model_info=MODEL_INFO
        )


def test_write_table_files_and_byte_identical_rewrite(table, tmp_path):
    prefix = tmp_path / "tables" / "uncertainties"
    paths = write_table(table, prefix, provenance={"seed": 1})
    assert [p.name for p in paths] == [
        f"uncertainties.{s}" for s in ("parquet", "csv", "md", "tex")
    ]
    first = {p.name: p.read_bytes() for p in paths}
    assert write_table(table, prefix, provenance={"seed": 1}) == paths
    assert {p.name: p.read_bytes() for p in paths} == first
    assert sorted(p.name for p in prefix.parent.iterdir()) == sorted(first)  # no temp files

    pd.testing.assert_frame_equal(read_table(paths[0]), table)
    csv = pd.read_csv(paths[1], float_precision="round_trip")
    pd.testing.assert_frame_equal(csv, table, check_exact=True)  # repr-exact floats

    md = paths[2].read_text().splitlines()
    assert md[0].startswith("| classifier") and "dmu_syst_tot" in md[0]
    assert len(md) == 2 + len(table)

    tex = paths[3].read_text()
    assert tex.startswith("\\begin{tabular}{lll" + "r" * (table.shape[1] - 3) + "}")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    assert "dmu\\_syst\\_tot" in tex and "min\\_dmu\\_tot" in tex
    assert tex.count("\\\\\n") == 1 + len(table)


def test_write_table_handles_infinite_values(table, tmp_path):
    odd = table.copy()
    odd.loc[0, "dmu_det"] = np.inf
    paths = write_table(odd, tmp_path / "t")
    assert np.isposinf(pd.read_csv(paths[1])["dmu_det"].iloc[0])
    assert "inf" in paths[2].read_text() and "inf" in paths[3].read_text()


def test_classifier_table_holds_the_timings():
    info = {
        clf: {
            **rec,
            "type": clf,
            "auc_unweighted": rec["auc"] - 0.01,
            "n_train": 1000,
            "threads": 2,
        }
        for clf, rec in MODEL_INFO.items()
    }
    summary = classifier_table(info)
    assert list(summary.columns) == list(CLASSIFIER_COLUMNS)
    assert summary.set_index("classifier").loc["rf", "train_time_s"] == 23.0
    assert summary["n_train"].dtype == np.int64
    with pytest.raises(DataContractError, match="'train_time_s'"):
        classifier_table({"rf": {"auc": 0.9, "auc_unweighted": 0.8, "n_train": 1, "threads": 1}})
