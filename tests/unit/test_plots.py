"""Tests of systpipe.plots.style and .scan: files written, inf rows handled, ROC and lumi projection."""

from __future__ import annotations

import doctest
import itertools
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from systpipe import metrics
from systpipe.errors import ConfigError, DataContractError
from systpipe.plots import scan as scan_plots
from systpipe.plots import style
from systpipe.stats import ams, ams_higgsml

SYSTS = ["lumi", "sig", "bkg", "det"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scores(seed: int = 7, n_sig: int = 2000, n_bkg: int = 6000, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    score = np.r_[rng.beta(5, 2, n_sig), rng.beta(2, 5, n_bkg)]
    return pd.DataFrame(
        {
            "event_id": np.arange(n_sig + n_bkg, dtype=np.int64),
            "label": np.r_[np.ones(n_sig), np.zeros(n_bkg)].astype(np.int8),
            "process": ["sig"] * n_sig + ["bkg"] * n_bkg,
            "weight": np.r_[np.full(n_sig, 0.05), np.full(n_bkg, 1.0)],
            "score": np.clip(score * (1.0 + shift), 0.0, 1.0),
        }
    )


def _scan(df: pd.DataFrame, n_thr: int = 101) -> pd.DataFrame:
    """Small scan table with the documented columns; the tightest cuts have S = 0 (inf rows)."""
    thr = np.linspace(0.0, 1.0, n_thr)
    sig = df.label.to_numpy() == 1
    sel = df.score.to_numpy()[None, :] > thr[:, None]
    w = df.weight.to_numpy()
    s = (sel * (w * sig)).sum(axis=1)
    b = (sel * (w * ~sig)).sum(axis=1)
    n = s + b
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(s > 0, np.sqrt(n) / s, np.inf)
        comps = {
            "lumi": np.where(s > 0, 0.01 * n / s, np.inf),
            "sig": np.where(s > 0, 0.05, np.inf),
            "bkg": np.where(s > 0, 0.02 * b / np.where(s > 0, s, 1.0), np.inf),
            "det": np.where(s > 0, 0.03 + 0.02 * thr, np.inf),
        }
    syst = np.sqrt(sum(c**2 for c in comps.values()))
    out = pd.DataFrame({"threshold": thr, "S_nominal": s, "B_nominal": b, "n": n})
    out["ams"] = ams(s, b)
    out["ams_higgsml"] = ams_higgsml(s, b)
    out["dmu_stat"] = stat
    for k, v in comps.items():
        out[f"dmu_{k}"] = v
    out["dmu_syst"] = syst
    out["dmu_tot"] = np.hypot(stat, syst)
    out["valid"] = (s >= 5.0) & (b >= 5.0)
    return out


def _working_points(scan: pd.DataFrame) -> dict[str, int]:
    valid = np.flatnonzero(scan.valid.to_numpy())
    return {
        "max_ams": int(valid[np.argmax(scan.ams.to_numpy()[valid])]),
        "min_dmu_tot": int(valid[np.argmin(scan.dmu_tot.to_numpy()[valid])]),
    }


def _check_written(paths: list[Path]) -> None:
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000
        head = p.read_bytes()[:8]
        if p.suffix == ".png":
            assert head == PNG_MAGIC
            img = matplotlib.image.imread(p)
            h, w = img.shape[:2]
            assert 500 <= w <= 4000 and 400 <= h <= 3000
            assert float(img[..., :3].std()) > 0.01  # not a blank canvas
        else:
            assert head.startswith(b"%PDF")
    assert not list(paths[0].parent.glob(".*.tmp"))  # no temp file left behind


@pytest.fixture(scope="module")
def scores():
    return {"nominal": _scores(), "det_up": _scores(shift=0.02), "det_down": _scores(shift=-0.02)}


@pytest.fixture(scope="module")
def scan(scores):
    return _scan(scores["nominal"])


def test_synthetic_scan_has_inf_and_invalid_rows(scan):
    assert np.isinf(scan.dmu_tot).sum() >= 1
    assert (~scan.valid).sum() > np.isinf(scan.dmu_tot).sum()


def test_output_paths_stem_and_explicit(tmp_path):
    assert style.output_paths(tmp_path / "a.b") == [tmp_path / "a.b.png", tmp_path / "a.b.pdf"]
    assert style.output_paths(str(tmp_path / "x.png")) == [tmp_path / "x.png", tmp_path / "x.pdf"]
    assert style.output_paths([tmp_path / "y.pdf"]) == [tmp_path / "y.pdf"]
    with pytest.raises(ConfigError, match="z.svg"):
        style.output_paths([tmp_path / "z.svg"])


def test_plot_ams_writes_files(tmp_path, scan, scores):
    other = _scan(_scores(seed=8))
    paths = scan_plots.plot_ams(
        {"hgb": scan, "rf": other}, tmp_path / "ams", rlabel="139 fb$^{-1}$"
    )
    _check_written(paths)


def test_plot_ams_marks_valid_maximum(tmp_path, scan):
    # The global AMS maximum may sit in an invalid row; the marked one must not.
    wp = _working_points(scan)
    assert scan.valid.iloc[wp["max_ams"]]
    paths = scan_plots.plot_ams({"hgb": scan}, [tmp_path / "only.png"], working_points={"hgb": wp})
    assert [p.name for p in paths] == ["only.png"]
    with pytest.raises(DataContractError, match="max_ams"):
        scan_plots.plot_ams(
            {"hgb": scan}, tmp_path / "bad", working_points={"hgb": {"max_ams": 999}}
        )


def test_plot_ams_missing_column_names_it(tmp_path, scan):
    with pytest.raises(DataContractError, match="ams_higgsml"):
        scan_plots.plot_ams({"hgb": scan.drop(columns="ams_higgsml")}, tmp_path / "x")
    assert not (tmp_path / "x.png").exists()


def test_plot_dmu_breakdown_with_inf_rows(tmp_path, scan):
    paths = scan_plots.plot_dmu_breakdown(
        scan, _working_points(scan), SYSTS, tmp_path / "dmu", title="hgb"
    )
    _check_written(paths)


def test_plot_dmu_breakdown_all_rows_invalid(tmp_path, scan):
    bad = scan.copy()
    bad["valid"] = False
    for c in ["dmu_stat", *[f"dmu_{k}" for k in SYSTS], "dmu_syst", "dmu_tot"]:
        bad[c] = np.inf
    _check_written(scan_plots.plot_dmu_breakdown(bad, {}, SYSTS, tmp_path / "dmu_bad"))


def test_plot_dmu_breakdown_missing_systematic(tmp_path, scan):
    with pytest.raises(DataContractError, match="dmu_jes"):
        scan_plots.plot_dmu_breakdown(scan, {}, ["jes"], tmp_path / "x")


def test_plot_score_variations(tmp_path, scores):
    paths = scan_plots.plot_score_variations(
        scores, ["det_up", "det_down"], tmp_path / "sc", bins=20, title="hgb"
    )
    _check_written(paths)
    with pytest.raises(DataContractError, match="jes_up"):
        scan_plots.plot_score_variations(scores, ["jes_up"], tmp_path / "y")
    with pytest.raises(ConfigError, match="score_bins"):
        scan_plots.plot_score_variations(scores, ["det_up"], tmp_path / "y", bins=[0.0, 0.5, 0.2])


def test_plot_roc_and_lumi(tmp_path, scores, scan):
    _check_written(
        scan_plots.plot_roc({"hgb": scores["nominal"], "rf": scores["det_up"]}, tmp_path / "roc")
    )
    row = scan.iloc[_working_points(scan)["min_dmu_tot"]]
    _check_written(
        scan_plots.plot_lumi_projection(row, SYSTS, tmp_path / "lumi", (1.0, 1000.0), title="hgb")
    )


def test_plots_are_deterministic(tmp_path, scan):
    a = scan_plots.plot_dmu_breakdown(scan, _working_points(scan), SYSTS, tmp_path / "a")
    b = scan_plots.plot_dmu_breakdown(scan, _working_points(scan), SYSTS, tmp_path / "b")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()


def test_weighted_roc_matches_sklearn_for_positive_weights(scores):
    df = scores["nominal"]
    roc = metrics.weighted_roc(df.label, df.score, df.weight)
    ref = roc_auc_score(df.label, df.score, sample_weight=df.weight)
    assert roc.auc == pytest.approx(ref, abs=1e-12)
    assert 0.8 < roc.auc < 1.0


def test_weighted_roc_negative_weights_is_weighted_mann_whitney():
    rng = np.random.default_rng(3)
    n = 60
    label = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 1)  # ties on purpose
    weight = rng.normal(1.0, 0.8, n)  # about 10 % negative
    assert (weight < 0).any()
    sig, bkg = np.flatnonzero(label == 1), np.flatnonzero(label == 0)
    num = 0.0
    for i, j in itertools.product(sig, bkg):
        num += weight[i] * weight[j] * ((score[i] > score[j]) + 0.5 * (score[i] == score[j]))
    expected = num / (weight[sig].sum() * weight[bkg].sum())
    assert metrics.weighted_roc(label, score, weight).auc == pytest.approx(expected, rel=1e-10)


def test_weighted_roc_rejects_non_positive_class_weight():
    with pytest.raises(DataContractError, match="signal and background"):
        metrics.weighted_roc([1, 0, 1], [0.9, 0.1, 0.5], [1.0, 1.0, -2.0])


def test_project_with_luminosity_closed_forms():
    alpha = np.geomspace(1.0, 1000.0, 31)
    p = scan_plots.project_with_luminosity(0.4, 0.1, alpha)
    np.testing.assert_allclose(p.dmu_stat * np.sqrt(alpha), 0.4, rtol=1e-14)
    np.testing.assert_allclose(p.dmu_syst, 0.1, rtol=0)
    np.testing.assert_allclose(p.dmu_tot**2, p.dmu_stat**2 + p.dmu_syst**2, rtol=1e-13)
    assert np.all(np.diff(p.dmu_tot) < 0)
    slope = np.polyfit(np.log(alpha), np.log(p.dmu_stat), 1)[0]
    assert slope == pytest.approx(-0.5, abs=1e-12)
    cross = scan_plots.luminosity_crossover(0.4, 0.1)
    assert cross == pytest.approx(16.0)
    q = scan_plots.project_with_luminosity(0.4, 0.1, cross)
    assert float(q.dmu_stat) == pytest.approx(0.1)
    assert float(q.dmu_tot) == pytest.approx(0.1 * math.sqrt(2))
    assert scan_plots.luminosity_crossover(0.4, 0.0) == math.inf


@pytest.mark.parametrize("alpha", [0.0, -1.0, np.inf])
def test_project_with_luminosity_rejects_bad_alpha(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        scan_plots.project_with_luminosity(0.4, 0.1, alpha)


def test_plot_lumi_projection_bad_inputs(tmp_path, scan):
    row = scan.iloc[_working_points(scan)["min_dmu_tot"]]
    with pytest.raises(ConfigError, match="luminosity_scale"):
        scan_plots.plot_lumi_projection(row, SYSTS, tmp_path / "x", (10.0, 1.0))
    with pytest.raises(DataContractError, match="dmu_jes"):
        scan_plots.plot_lumi_projection(row, ["jes"], tmp_path / "x")
    with pytest.raises(DataContractError, match="dmu_stat"):
        scan_plots.plot_lumi_projection(scan.iloc[-1], SYSTS, tmp_path / "x")  # an inf row


def test_doctests():
    results = [doctest.testmod(module) for module in (style, scan_plots)]
    assert all(r.attempted >= 3 and r.failed == 0 for r in results)


def test_impacts_plot_of_a_fit_without_impacts_says_so(tmp_path):
    """fit.impacts: false must not fail the fit job: the impacts figure says why it is empty."""
    from conftest import simple_spec
    from systpipe.plots.fit import plot_impacts
    from systpipe.stat.fit import fit_workspace

    result = fit_workspace(simple_spec(), impacts=False, limits=False)
    assert result.impacts.empty
    written = plot_impacts(result, tmp_path / "impacts")
    assert sorted(p.suffix for p in written) == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in written)
