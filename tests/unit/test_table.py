"""Tests of the final uncertainty table: rows, columns, quadrature sums and the four output files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.config import schema_file
from systpipe.errors import DataContractError, SystpipeError
from systpipe.io import read_table
from systpipe.scan import default_thresholds, scan_scores
from systpipe.table import (
    CLASSIFIER_COLUMNS,
    NO_GUARD,
    build_table,
    classifier_table,
    merge_method_rows,
    method_row,
    row_base,
    shift_row_columns,
    table_columns,
    working_point_guards,
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
    expected = ["classifier", "working_point", "method", "threshold", "S", "B",
                "n_raw_S", "n_raw_B", "neff_S", "neff_B", "AMS", "Z_asimov",
                "dmu_stat", "dmu_lumi", "dmu_sig", "dmu_bkg", "dmu_det",
                "d_up_lumi", "d_down_lumi", "d_up_sig", "d_down_sig", "d_up_bkg", "d_down_bkg",
                "d_up_det", "d_down_det", "dmu_mcstat", "dmu_syst_tot", "dmu_tot", "dmu_lin",
                "guard", "AUC"]  # fmt: skip
    assert list(table.columns) == expected == table_columns(SYSTEMATICS)
    assert not table.isna().any().any()
    assert table["n_raw_S"].dtype == np.int64 and table["n_raw_B"].dtype == np.int64
    # the toy scans have yield guards only (xgb's largest AMS sits at B < 5)
    assert set(table["guard"]) == {"none", "min_background"}


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
            for col in ("n_raw_S", "n_raw_B", "neff_S", "neff_B", "dmu_mcstat", "dmu_tot"):
                assert row[col] == ref[col], col
        mine = table[table["classifier"] == clf].set_index("working_point")
        assert mine.loc["max_ams", "AMS"] >= mine.loc["min_dmu_tot", "AMS"]
        assert mine.loc["min_dmu_tot", "dmu_tot"] <= mine.loc["max_ams", "dmu_tot"]


def test_quadrature_sums(table):
    syst2 = sum(table[f"dmu_{k}"] ** 2 for k in NAMES)
    mc2 = table["dmu_mcstat"] ** 2
    assert (table["dmu_mcstat"] > 0).all()
    np.testing.assert_allclose(table["dmu_syst_tot"] ** 2, syst2 + mc2, rtol=1e-12)
    np.testing.assert_allclose(
        table["dmu_tot"] ** 2, table["dmu_stat"] ** 2 + syst2 + mc2, rtol=1e-12
    )
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
    # text columns left-aligned (classifier, working_point, method, guard), numbers right
    assert tex.startswith("\\begin{tabular}{lll" + "r" * (table.shape[1] - 5) + "lr}")
    assert "min\\_background" in tex  # the guard column, escaped
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


# --------------------------------------------------------------------------- MC statistics


def scan_defaults():
    """The scan guards' defaults of the config schema."""
    props = schema_file()["properties"]["scan"]["properties"]
    keys = ("min_signal", "min_background", "min_neff_signal", "min_neff_background")
    return {k: props[k]["default"] for k in keys}


def heavy_event_frames(seed=0):
    """6,006 events: 2,000 signal (weight 25) peaked at score 1, 4,000 light background events
    (weight 10) at low score and six background events of weight 1,000 at high score."""
    rng = np.random.default_rng(seed)
    parts = [
        ("H", 1, 25.0, rng.beta(20, 1, 2000)),
        ("light", 0, 10.0, rng.beta(1.5, 6, 4000)),
        ("heavy", 0, 1000.0, np.array([0.9, 0.93, 0.95, 0.97, 0.985, 0.998])),
    ]
    base = pd.concat(
        [pd.DataFrame({"process": p, "label": lab, "weight": w, "score": s})
         for p, lab, w, s in parts],
        ignore_index=True,
    )  # fmt: skip
    base["label"] = base["label"].astype(np.int8)
    frames = {"nominal": base}
    for syst in SYSTEMATICS[:3]:
        targets = {"lumi": (0, 1), "sig": (1,), "bkg": (0,)}[syst["name"]]
        for direction, sign in (("up", 1.0), ("down", -1.0)):
            factor = np.where(base["label"].isin(targets), 1.0 + sign * syst["delta"], 1.0)
            frames[f"{syst['name']}_{direction}"] = base.assign(weight=base["weight"] * factor)
    return frames


def test_neff_guard_keeps_working_points_off_a_handful_of_heavy_events():
    systs = SYSTEMATICS[:3]
    frames = heavy_event_frames()
    thresholds = default_thresholds(0, 1, 0.01)
    defaults = scan_defaults()
    assert defaults["min_neff_background"] == 100 and defaults["min_neff_signal"] == 10
    # without the N_eff guards min_dmu_tot sits where B is 99 % six events of weight 1000
    yields_only = {k: defaults[k] for k in ("min_signal", "min_background")}
    free = scan_scores(frames, systematics=systs, thresholds=thresholds, **yields_only)
    row = free.iloc[working_points(free)["min_dmu_tot"]]
    assert row["n_raw__heavy"] == 6 and 6000.0 / row["B_nominal"] > 0.99
    assert row["neff_B"] < 7 and row["n_raw_B"] < 20
    assert working_point_guards(free) == {"max_ams": "none", "min_dmu_tot": "none"}
    # with the defaults no working point has fewer effective background events than the guard
    scan = scan_scores(frames, systematics=systs, thresholds=thresholds, **defaults)
    table = build_table({"xgb": scan}, systematics=systs, model_info=MODEL_INFO)
    assert (table["neff_B"] >= defaults["min_neff_background"]).all()
    assert (table["neff_S"] >= defaults["min_neff_signal"]).all()
    assert table["guard"].tolist() == ["min_neff_background", "min_neff_background"]
    assert (table["threshold"] < row["threshold"]).all()
    # the shift rows' totals hold the MC-statistical term
    names = [s["name"] for s in systs]
    syst2 = sum(table[f"dmu_{k}"] ** 2 for k in names)
    mc = np.sqrt(table["n_raw_S"] * 25.0**2 + (table["B"] - 6000.0) * 10.0 + 6 * 1000.0**2)
    np.testing.assert_allclose(table["dmu_mcstat"], mc / table["S"], rtol=1e-12)
    np.testing.assert_allclose(
        table["dmu_tot"],
        np.sqrt(table["dmu_stat"] ** 2 + syst2 + table["dmu_mcstat"] ** 2),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        table["dmu_syst_tot"], np.sqrt(syst2 + table["dmu_mcstat"] ** 2), rtol=1e-12
    )


def test_shift_and_linear_methods_carry_the_mc_term(scans):
    from systpipe.stat.methods import CutAndCount, linear, shift
    from systpipe.steps.fit import cut_at

    # S = 100 from 400 events of weight 0.25, B = 2500 from 100 events of weight 25
    sumw2 = (400 * 0.25**2, 100 * 25.0**2)
    mc = np.sqrt(sumw2[0] + sumw2[1]) / 100.0
    plain = CutAndCount(s=100.0, b=2500.0, s_var={"lumi": (101.0, 99.0)},
                        b_var={"lumi": (2525.0, 2475.0)}, deltas={"lumi": 0.01},
                        linearisable={"lumi": True})  # fmt: skip
    with_mc = CutAndCount(**{**plain.__dict__, "mc_sumw2": sumw2})
    for method in (shift, linear):
        a, b = method(plain, 2600.0), method(with_mc, 2600.0)
        assert a.mc_stat.sym == 0.0 and b.mc_stat.sym == pytest.approx(mc, rel=1e-15)
        assert b.total.sym == pytest.approx(np.hypot(a.total.sym, mc), rel=1e-14)
        assert b.syst.sym == pytest.approx(np.hypot(a.syst.sym, mc), rel=1e-14)
        assert b.hi - b.mu_hat == pytest.approx(b.total.sym, rel=1e-14)
    # mu enters as mu^2 sumw2_S: at n = 2700 mu-hat is 2
    assert shift(with_mc, 2700.0).mc_stat.sym == pytest.approx(
        np.sqrt(4 * sumw2[0] + sumw2[1]) / 100.0, rel=1e-15
    )
    # from a scan row: the methods reproduce the scan's totals, MC statistics included
    scan = scans["xgb"]
    row = scan.iloc[working_points(scan)["min_dmu_tot"]]
    cut = cut_at(row, SYSTEMATICS)
    assert cut.mc_sumw2 == (row["sumw2_S"], row["sumw2_B"])
    result = shift(cut, float(row["n"]))
    assert result.total.sym == pytest.approx(row["dmu_tot"], rel=1e-12)
    assert result.mc_stat.sym == pytest.approx(row["dmu_mcstat"], rel=1e-12)
    norm_only = [s for s in SYSTEMATICS if s["type"] == "norm"]
    lin = linear(cut_at(row, norm_only), float(row["n"]), asimov=True)
    assert lin.total.sym == pytest.approx(row["dmu_lin"], rel=1e-12)


def test_method_rows_carry_counts_and_guards(scans, table):
    from systpipe.stat.methods import linear
    from systpipe.steps.fit import cut_at

    rows = []
    for clf in ("xgb", "rf"):
        scan = scans[clf]
        points = {**working_points(scan), "profile_optimum": 40}
        for wp, index in points.items():
            row = scan.iloc[index]
            result = linear(cut_at(row, SYSTEMATICS), float(row["n"]), asimov=True)
            rows.append(method_row(result, classifier=clf, working_point=wp, scan_row=row,
                                   n_bins=1, names=NAMES))  # fmt: skip
        base = row_base(classifier=clf, working_point="profile_optimum", scan_row=row, n_bins=1)
        rows.append({**base, "method": "shift", **shift_row_columns(row, NAMES)})
    merged = merge_method_rows(table, [pd.DataFrame(rows)], ["xgb", "hgb", "rf"])
    assert len(merged) == len(table) + len(rows)
    assert merged["n_raw_S"].dtype == np.int64 and not merged.isna().any().any()
    shift_rows = merged[merged["method"] == "shift"].set_index(["classifier", "working_point"])
    for r in merged.itertuples():
        if r.working_point == "profile_optimum":
            assert r.guard == NO_GUARD == "none"
        else:  # the shift row's guard of the same working point
            assert r.guard == shift_rows.loc[(r.classifier, r.working_point), "guard"]
        scan_row = scans[r.classifier].loc[lambda d, t=r.threshold: d["threshold"] == t].iloc[0]
        assert (r.n_raw_S, r.n_raw_B) == (scan_row["n_raw_S"], scan_row["n_raw_B"])
        assert (r.neff_S, r.neff_B) == (scan_row["neff_S"], scan_row["neff_B"])
        assert r.dmu_mcstat == pytest.approx(scan_row["dmu_mcstat"], rel=1e-12)
        # every method's dmu_syst_tot: its systematics and the MC term in quadrature
        syst2 = sum(getattr(r, f"dmu_{k}") ** 2 for k in NAMES)
        assert r.dmu_syst_tot == pytest.approx(np.sqrt(syst2 + r.dmu_mcstat**2), rel=1e-12)
