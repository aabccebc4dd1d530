"""Tests of systpipe.plots.style and .scan: files written, inf rows handled, ROC and lumi projection."""

from __future__ import annotations

import doctest
import itertools
import math
from pathlib import Path

import matplotlib.colors
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
    from systpipe.plots import projection

    results = [doctest.testmod(module) for module in (style, projection)]
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


# --------------------------------------------------------------------------- figure contents
# The figures are inspected as objects: each module's save_figure is replaced by a recorder.

LUMI = "139 fb$^{-1}$"
ENERGY = "√s = 13 TeV"


def _record(monkeypatch, *modules):
    figs = []

    def fake_save(fig, out):
        fig.draw_without_rendering()
        figs.append(fig)
        return []

    for module in modules:
        monkeypatch.setattr(module, "save_figure", fake_save)
    return figs


def _texts(fig) -> list[str]:
    import matplotlib.text

    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def _legend(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            out += [t.get_text() for t in leg.get_texts()]
    return out


def _check_labels(fig, *, simulation: bool = True) -> None:
    texts = _texts(fig)
    assert any(LUMI in t and ENERGY in t for t in texts), texts
    assert ("Simulation" in texts) is simulation
    assert any(t == "systpipe" for t in texts)
    raw = ("ggH_WW", "dmu_tot", "staterror_", "det_up", "det_down", "Ztautau")
    assert not [t for t in texts if any(r in t for r in raw)]  # readable names only


@pytest.fixture(scope="module")
def fit_result():
    from conftest import simple_spec
    from systpipe.stat.fit import fit_workspace

    return simple_spec(), fit_workspace(simple_spec(), impacts=True, limits=False)


def test_scan_figures_have_labels_units_and_readable_names(monkeypatch, tmp_path, scan, scores):
    from systpipe.plots import projection

    figs = _record(monkeypatch, scan_plots, projection)
    wps = _working_points(scan)
    scan_plots.plot_ams({"hgb": scan, "xgb": scan}, tmp_path / "a")
    scan_plots.plot_dmu_breakdown(scan, wps, SYSTS, tmp_path / "b", title="HGB")
    scan_plots.plot_score_variations(scores, ["det_up", "det_down"], tmp_path / "c")
    scan_plots.plot_roc({"hgb": scores["nominal"]}, tmp_path / "d")
    scan_plots.plot_lumi_projection(scan.iloc[wps["min_dmu_tot"]], SYSTS, tmp_path / "e")
    ams_fig, breakdown, variations, roc, lumi = figs
    for fig in figs:
        _check_labels(fig)
    ams_ax = ams_fig.axes[0]
    assert ams_ax.get_ylabel() == r"AMS, statistical only [$\sigma$]"
    assert ams_ax.get_xscale() == "logit"  # the selected region near 1 is resolved
    assert any(t.startswith("HGB (max ") for t in _legend(ams_fig))
    assert {"Luminosity", "Signal normalisation", "Detector energy scale"} <= set(
        _legend(breakdown)
    )
    assert breakdown.axes[0].get_xscale() == "logit"
    legend = _legend(variations)
    assert "Detector energy scale up" in legend and "Detector energy scale down" in legend
    colours = {
        line.get_label(): matplotlib.colors.to_hex(line.get_edgecolor())
        for line in variations.axes[0].patches
        if line.get_label().startswith("Detector")
    }
    assert colours == {
        "Detector energy scale up": style.UP_COLOR,
        "Detector energy scale down": style.DOWN_COLOR,
    }
    assert any(t.startswith("HGB (AUC = ") for t in _legend(roc))
    assert "139 fb$^{-1}$" in lumi.axes[0].get_xlabel()  # L0 with its unit


def test_fit_figures_show_asimov_data_mu_hat_and_signal_colour(monkeypatch, tmp_path, fit_result):
    from systpipe.plots import fit as fit_plots
    from systpipe.plots.labels import PlotLabels

    spec, result = fit_result
    figs = _record(monkeypatch, fit_plots)
    labels = PlotLabels(processes={"signal": "My signal"}, signal_color="#00ff00")
    edges = [0.5, 0.7, 0.85, 1.0]
    fit_plots.plot_distribution(spec, tmp_path / "pre", bin_edges=edges, labels=labels)
    fit_plots.plot_distribution(
        spec, tmp_path / "post", result=result, bin_edges=edges, labels=labels
    )
    fit_plots.plot_impacts(result, tmp_path / "imp")
    fit_plots.plot_pulls(result, tmp_path / "pulls")
    fit_plots.plot_correlation(result, tmp_path / "corr", min_abs=0.0)
    pre, post, impacts, pulls, corr = figs
    for fig in (pre, post, pulls, corr, impacts):
        _check_labels(fig)
    assert "Asimov data" in _legend(pre) and "Data" not in _legend(pre)
    assert "My signal" in _legend(pre) and "My signal ($\\times\\hat{\\mu}$)" in _legend(post)
    signal = [p for p in pre.axes[0].patches if p.get_label() == "My signal"]
    assert matplotlib.colors.to_hex(signal[0].get_facecolor()) == "#00ff00"
    mu = fit_plots.mu_text(result)
    assert mu.startswith("$\\hat{\\mu}$ = 1.00$^{+")
    assert any(mu in t for t in _texts(post)) and any(mu in t for t in _texts(impacts))
    assert any("Pre-fit, SR, score > 0.5" in t for t in _texts(pre))
    assert pre.axes[1].get_ylabel() == "Asimov / pred."
    assert "Detector energy scale" in [t.get_text() for t in pulls.axes[0].get_yticklabels()]
    assert pre.axes[0].get_ylabel() == "Events / bin"


def test_validation_figures(monkeypatch, tmp_path, fit_result, scan, scores):
    from systpipe.likelihood_scan import crossings, profile_scan
    from systpipe.plots import validation

    figs = _record(monkeypatch, validation)
    spec, result = fit_result
    nll = profile_scan(spec, mu_hat=result.mu_hat, dmu_down=result.dmu_down, dmu_up=result.dmu_up)
    total = nll.dropna(subset=["total"])
    lo, hi = crossings(total["mu"].to_numpy(), total["total"].to_numpy(), 1.0)
    # the scan's 1 sigma crossings are the MINOS interval to the scan's interpolation precision
    assert lo == pytest.approx(result.mu_hat - result.dmu_down, abs=2e-3)
    assert hi == pytest.approx(result.mu_hat + result.dmu_up, abs=2e-3)
    stat_lo, stat_hi = crossings(nll["mu"].to_numpy(), nll["stat"].to_numpy(), 1.0)
    assert 0 < stat_hi - stat_lo < hi - lo
    validation.plot_nll_scan(nll, tmp_path / "nll", text="HGB, SR")
    coverage = pd.DataFrame({"mode": ["frequentist"] * 2, "method": ["profile", "shift"],
                             "coverage": [0.70, 1.0], "coverage_err": [0.014, 0.0]})  # fmt: skip
    validation.plot_coverage(coverage, tmp_path / "cov")
    validation.plot_significance({"hgb": scan.assign(z_asimov=scan["ams"] / 3)}, tmp_path / "z",
                                 fit_z0={"hgb": (0.8, 4.0)})  # fmt: skip
    nominal = scores["nominal"]
    validation.plot_mc_counts(nominal, [0.5, 0.75, 1.0], tmp_path / "mc", signal=["sig"])
    pvalues = validation.plot_overtraining(
        nominal, scores["det_up"], tmp_path / "ot", classifier="hgb"
    )
    nll_fig, cov_fig, z_fig, mc_fig, ot_fig = figs
    for fig in figs:
        _check_labels(fig)
    assert nll_fig.axes[0].get_ylabel() == r"$-2\,\Delta\ln L(\mu)$"
    legend = _legend(nll_fig)
    assert legend[0].startswith("Total (stat. + syst.): $\\mu$ = 1.00$^{+")
    assert legend[1].startswith("Statistical only")
    nominal_line = [ln for ln in cov_fig.axes[0].lines if ln.get_label() == "nominal 0.6827"]
    assert nominal_line and nominal_line[0].get_ydata()[0] == pytest.approx(0.6827)
    assert cov_fig.axes[0].get_ylabel() == "Coverage of the 68.27 % interval"
    assert [t.get_text() for t in cov_fig.axes[0].get_xticklabels()] == ["shift", "profile"]
    assert z_fig.axes[0].get_ylabel().endswith(r"[$\sigma$]")
    assert "profile fit: expected $Z_0$ (binned, all systematics)" in _legend(z_fig)
    assert {"raw MC events", r"effective $N_{\mathrm{eff}}$", "20 events"} <= set(_legend(mc_fig))
    # the det_up frame is the nominal with scores scaled by 1.02: the KS test sees the shift
    assert pvalues["signal"] < 0.05 and 0.0 <= pvalues["background"] <= 1.0
    assert any(f"KS p = {pvalues['signal']:.3g}" in t for t in _legend(ot_fig))


def test_mc_counts_effective_counts_are_the_kish_formula():
    from systpipe.plots.validation import mc_counts

    df = pd.DataFrame({"process": ["a"] * 4 + ["b"], "weight": [1.0, 1.0, 2.0, 4.0, 3.0],
                       "score": [0.6, 0.6, 0.7, 0.2, 0.9]})  # fmt: skip
    out = mc_counts(df, [0.0, 0.5, 1.0])
    assert out["a"][0].tolist() == [1.0, 3.0]
    assert out["a"][1].tolist() == pytest.approx([1.0, 16.0 / 6.0])
    assert out["b"][0].tolist() == [0.0, 1.0]


def test_labels_from_settings_resolve_the_luminosity():
    from systpipe.plots.labels import labels_from_settings

    settings = {"labels": {"luminosity_fb": None, "processes": {"WW": "di-boson"}},
                "input": {"source": "files"}, "files": {"luminosity_fb": 36.1}}  # fmt: skip
    lab = labels_from_settings(settings)
    assert lab.rlabel == "√s = 13 TeV, 36.1 fb$^{-1}$"
    assert lab.process("WW") == "di-boson" and lab.process("ttbar") == r"$t\bar{t}$"
    assert lab.parameter("staterror_CR[0]") == "MC stat. CR bin 1"
    no_lumi = labels_from_settings({"labels": {}, "input": {"source": "files"}, "files": {}})
    assert no_lumi.luminosity_fb is None and no_lumi.rlabel == "√s = 13 TeV"
