"""The workflow's neyman method (stat/neyman_binned.py, steps/neyman.py): critical-value grid,
set edges against closed forms and the profile interval, calibration, toys and table rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from systpipe import io
from systpipe.errors import ConfigError, ModelError
from systpipe.stat import neyman_binned as nb
from systpipe.stat.batched_intervals import profile_intervals_batch
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.methods import METHODS
from systpipe.stat.toys import prepare, run_toys


def one_bin(s: float = 10.0, data: float = 10.0) -> dict:
    return {
        "channels": [{"name": "SR", "samples": [{"name": "s", "data": [s], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None}]}]}],
        "observations": [{"name": "SR", "data": [data]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0.0, 10.0]]}]}}],
        "version": "1.0.0",
    }  # fmt: skip


def two_bins_with_nuisances() -> dict:
    """Signal and background in two bins; a 10 % and a 2 % background normalisation."""
    return {
        "channels": [{"name": "SR", "samples": [
            {"name": "sig", "data": [20.0, 40.0], "modifiers": [
                {"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [200.0, 60.0], "modifiers": [
                {"name": "big", "type": "normsys", "data": {"hi": 1.10, "lo": 0.90}},
                {"name": "small", "type": "normsys", "data": {"hi": 1.02, "lo": 0.98}}]},
        ]}],
        "observations": [{"name": "SR", "data": [220.0, 100.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[-5.0, 10.0]]}]}}],
        "version": "1.0.0",
    }  # fmt: skip


def constant_calibration(model: HistFactoryModel, c: float, index=(0,), method="hybrid"):
    axes = tuple(np.linspace(-20.0, 20.0, 3) for _ in index)
    grid = nb.GridCritical(axes, np.full(tuple(a.size for a in axes), c))
    names = tuple(model.names[i] for i in index)
    return nb.Calibration(grid, tuple(index), names, method, "x", {})


def test_grid_interpolates_linear_functions_exactly_and_round_trips():
    axes = (np.linspace(0.0, 2.0, 5), np.linspace(-3.0, 3.0, 7))
    mu, nu = np.meshgrid(*axes, indexing="ij")
    grid = nb.GridCritical(axes, 1.0 + 0.5 * mu - 0.1 * nu)
    pts = np.array([[0.3, 0.7], [1.9, -2.2], [5.0, 9.0]])  # the last is clipped to (2, 3)
    np.testing.assert_allclose(grid(pts), [1.08, 2.17, 1.7], atol=1e-12)
    # least favourable: max over nu at -3, i.e. 1.3 + 0.5 mu
    np.testing.assert_allclose(grid.least_favourable(np.array([0.0, 1.5])), [1.3, 2.05])
    back = nb.GridCritical.from_frame(grid.to_frame().sample(frac=1.0, random_state=1), 2)
    np.testing.assert_array_equal(back.values, grid.values)
    with pytest.raises(ModelError, match="lacks column"):
        nb.GridCritical.from_frame(pd.DataFrame({"mu": [0.0]}), 1)


def test_set_edges_solve_two_delta_nll_equals_c_on_one_poisson_bin():
    # n ~ Pois(10 mu): t(mu) = 2 (10 mu - n ln(10 mu) - n + n ln n); the edges solve t = c
    model = HistFactoryModel(one_bin())
    counts = np.array([[10.0], [4.0], [25.0]])
    aux = np.zeros((3, 0))
    for c in (1.0, 2.5):
        r = nb.neyman_intervals(model, constant_calibration(model, c), counts, aux)
        for k, n in enumerate(counts[:, 0]):
            t = lambda m, n=n, c=c: 2 * (10 * m - n * math.log(10 * m) - n + n * math.log(n)) - c  # noqa: E731
            lo, hi = optimize.brentq(t, 1e-6, n / 10), optimize.brentq(t, n / 10, 10.0)
            assert r.lo[k] == pytest.approx(lo, abs=1e-6) and r.hi[k] == pytest.approx(hi, abs=1e-6)
        assert not r.failed.any() and not r.at_bound.any()


def test_set_reaches_the_poi_bound_when_zero_is_accepted():
    model = HistFactoryModel(one_bin())
    r = nb.neyman_intervals(
        model, constant_calibration(model, 1.0), np.array([[0.0]]), np.zeros((1, 0))
    )
    # n = 0: t(mu) = 20 mu; mu-hat = 0 on the bound, upper edge 1/20
    assert r.lo[0] == 0.0 and r.at_bound[0]
    assert r.hi[0] == pytest.approx(0.05, abs=1e-7)


def test_constant_critical_value_reproduces_the_profile_interval_with_nuisances():
    model = HistFactoryModel(two_bins_with_nuisances())
    rng = np.random.default_rng(3)
    counts = rng.poisson(model.expected(model.nominal_pars), (40, model.n_bins)).astype(float)
    aux = rng.standard_normal((40, model.constrained.size))
    for c in (1.0, 4.0):
        cal = constant_calibration(model, c)
        r = nb.neyman_intervals(model, cal, counts, aux, mu_test=np.ones(40))
        p = profile_intervals_batch(model, counts, aux, level=c)
        np.testing.assert_allclose(r.lo, p.lo, atol=2e-5)
        np.testing.assert_allclose(r.hi, p.hi, atol=2e-5)
        np.testing.assert_allclose(r.mu_hat, p.mu_hat, atol=1e-6)
        # the coverage decision at mu = 1 agrees with the edges
        assert np.array_equal(r.accepted, (r.lo <= 1.0) & (1.0 <= r.hi))


def test_hybrid_and_least_favourable_critical_values_of_a_nu_dependent_grid():
    # c(mu, nu) = 1 + 0.5 |nu| on nu in [-3, 3]: least favourable is 2.5 everywhere, i.e. the
    # profile interval at 2 Delta NLL = 2.5; hybrid takes c at nu-hat-hat(mu) of each dataset
    model = HistFactoryModel(two_bins_with_nuisances())
    big = model.names.index("big")
    axes = (np.linspace(-5.0, 10.0, 4), np.linspace(-3.0, 3.0, 7))
    values = 1.0 + 0.5 * np.abs(np.broadcast_to(axes[1], (4, 7)))
    grid = nb.GridCritical(axes, values)
    rng = np.random.default_rng(8)
    counts = rng.poisson(model.expected(model.nominal_pars), (20, model.n_bins)).astype(float)
    aux = 2.0 * rng.standard_normal((20, model.constrained.size))
    lf = nb.Calibration(grid, (0, big), ("mu", "big"), "least_favourable", "x", {})
    r = nb.neyman_intervals(model, lf, counts, aux)
    p = profile_intervals_batch(model, counts, aux, level=2.5)
    np.testing.assert_allclose(r.lo, p.lo, atol=2e-5)
    np.testing.assert_allclose(r.hi, p.hi, atol=2e-5)
    hy = nb.Calibration(grid, (0, big), ("mu", "big"), "hybrid", "x", {})
    h = nb.neyman_intervals(model, hy, counts, aux)
    assert np.all(h.hi - h.lo <= r.hi - r.lo + 1e-9) and np.any(h.hi - h.lo < r.hi - r.lo - 1e-3)
    # at each hybrid edge t(mu) = c(mu, nu-hat-hat(mu)) = 1 + 0.5 |nu-hat-hat|
    edges = np.concatenate([h.lo, h.hi])
    cc, aa = np.concatenate([counts, counts]), np.concatenate([aux, aux])
    free = nb.free_fit(model, cc, aa)
    cond = nb.conditional_fit(model, cc, aa, edges, free.values)
    t = 2.0 * (cond.nll - free.nll)
    np.testing.assert_allclose(
        t, 1.0 + 0.5 * np.abs(np.clip(cond.values[:, big], -3, 3)), atol=1e-4
    )


def test_dominant_nuisance_is_the_larger_background_normalisation():
    model = HistFactoryModel(two_bins_with_nuisances())
    index, impacts, fit = nb.dominant_nuisances(model, model.observed, model.aux_nominal, 1)
    assert [model.names[i] for i in index] == ["big"]
    assert impacts["big"] > 3 * impacts["small"] > 0
    with pytest.raises(ConfigError, match="neyman.nuisances = 3"):
        nb.dominant_nuisances(model, model.observed, model.aux_nominal, 3)
    box = nb.construction_box(model, index, fit, mu_points=[1.0], box_sigma=4.0, nuisance_range=3.0)
    sigma = fit.errors[0, model.poi_index]
    np.testing.assert_allclose(box, [[1.0 - 4 * sigma, 1.0 + 4 * sigma], [-3.0, 3.0]], atol=1e-3)


@pytest.fixture(scope="module")
def calibrated():
    """The step's calibration of the two-bin model (budget 3000, mu and 'big')."""
    from systpipe.steps.neyman import calibrate

    cfg = {"nuisances": 1, "box_sigma": 4.0, "nuisance_range": 3.0, "budget": 3000,
           "grid": {"mu": 21, "nu": 11}, "method": "hybrid",
           "regression": {"max_iter": 50, "learning_rate": 0.05, "min_samples_leaf": 500}}  # fmt: skip
    spec = two_bins_with_nuisances()
    return spec, *calibrate(spec, cfg, seed=11)


def test_calibration_of_a_high_count_model_is_wilks(calibrated):
    spec, cal, record = calibrated
    # 200-ish events per bin: t(mu) is close to chi2_1, whose 68.27 % quantile is 0.989
    assert abs(float(cal.grid.values.mean()) - 0.989) < 0.1
    assert record["parameters"] == ["mu", "big"] and record["flags"] == []
    assert record["n_pieces"] == 1 and record["cost"]["n_valid"] == 3000
    # the observed set is the profile interval up to c - 1: its half-width within 10 %
    model = HistFactoryModel(spec)
    p = profile_intervals_batch(model, model.observed[None, :], model.aux_nominal[None, :])
    assert record["dmu_tot"] == pytest.approx(0.5 * float(p.hi[0] - p.lo[0]), rel=0.1)
    assert record["lo"] < record["mu_hat"] < record["hi"]


def test_calibration_round_trips_through_parquet_and_checks_its_workspace(calibrated, tmp_path):
    from systpipe.steps.toys import load_calibration

    spec, cal, _ = calibrated
    path = tmp_path / "c.parquet"
    io.write_table(cal.grid.to_frame(), path, cal.metadata())
    back = load_calibration(path, spec)
    assert back.index == cal.index and back.method == "hybrid"
    np.testing.assert_array_equal(back.grid.values, cal.grid.values)
    other = two_bins_with_nuisances()
    other["channels"][0]["samples"][0]["data"] = [21.0, 40.0]
    with pytest.raises(ConfigError, match="another workspace"):
        load_calibration(path, other)


def test_neyman_toys_cover_and_agree_with_their_decision(calibrated):
    spec, cal, _ = calibrated
    setup = prepare(spec)
    setup.extras["neyman"] = cal
    df = run_toys(setup, mode="frequentist", seed=5, start=0, count=400,
                  methods=["profile", "neyman"])  # fmt: skip
    ney = df[df["method"] == "neyman"]
    assert (ney["status"] == "ok").all()
    c = ney["covered"].mean()
    assert abs(c - 0.6827) < 3 * math.sqrt(0.6827 * 0.3173 / 400), c
    prof = df[df["method"] == "profile"]
    # same statistic, c close to the profile's 1: widths within 10 %
    assert ney["width"].mean() == pytest.approx(prof["width"].mean(), rel=0.1)


def test_neyman_toys_need_the_calibration():
    setup = prepare(two_bins_with_nuisances())
    with pytest.raises(ConfigError, match="no calibration"):
        METHODS["neyman"].toy_batch(setup, np.zeros((1, 2)), np.zeros((1, 2)), "mean")  # type: ignore[misc]


def test_neyman_row_and_notes_in_the_table():
    from systpipe.steps.fit import neyman_result
    from systpipe.table import merge_method_rows

    record = {"mu_hat": 1.0, "lo": 0.6, "hi": 1.5, "method": "hybrid", "parameters": ["mu", "det"],
              "remaining": nb.REMAINING, "flags": ["poi_bound"],
              "cost": {"budget": 100, "regression": {"kind": "polynomial", "degree": 3}}}  # fmt: skip
    r = neyman_result(record, ["lumi"])
    assert (r.total.down, r.total.up, r.total.sym) == pytest.approx((0.4, 0.5, 0.45))
    assert math.isnan(r.stat.sym) and math.isnan(r.systematics["lumi"].sym)
    note = nb.record_notes(record)
    assert "over (mu, det)" in note and "flags: poi_bound" in note and "profiled" in note
    assert "(hybrid, B = 100, degree-3 polynomial quantile regression)" in note
    shift = pd.DataFrame({"classifier": ["a"], "working_point": ["max_ams"], "method": ["shift"],
                          "AUC": [0.9], "dmu_tot": [0.5], "guard": ["none"]})  # fmt: skip
    others = pd.DataFrame({"classifier": ["a", "a"], "working_point": ["max_ams"] * 2,
                           "method": ["neyman", "profile"], "dmu_tot": [0.45, 0.44],
                           "n_bins": [1, 1], "mu_hat": [1.0, 1.0], "mu_lo": [0.6, np.nan],
                           "notes": [note, np.nan]})  # fmt: skip
    table = merge_method_rows(shift, [others], ["a"])
    assert list(table["method"]) == ["shift", "profile", "neyman"]
    assert list(table.columns[-2:]) == ["mu_lo", "notes"]
    assert list(table["notes"]) == ["", "", note]
    plain = merge_method_rows(shift, [others.drop(columns=["mu_lo", "notes"])], ["a"])
    assert "notes" not in plain.columns


def test_neyman_and_toys_steps_run_on_a_workspace_file(tmp_path):
    from systpipe.config import validate_config
    from systpipe.runner import run

    cfg = validate_config(
        {
            "seed": 4,
            "neyman": {
                "enabled": True,
                "budget": 1000,
                "grid": {"mu": 11, "nu": 5},
                "regression": {"max_iter": 20, "min_samples_leaf": 300},
            },
            "toys": {
                "n_toys": 50,
                "chunk_size": 50,
                "modes": ["frequentist"],
                "methods": ["profile", "neyman"],
            },
        }  # fmt: skip
    )
    ws = tmp_path / "workspace.json"
    io.write_json(two_bins_with_nuisances(), ws)
    out = {"critical": tmp_path / "c.parquet", "interval": tmp_path / "i.json"}
    run("neyman", config=cfg, input={"workspace": str(ws)},
        output={"critical__profile_optimum": out["critical"], "interval__profile_optimum": out["interval"]},
        wildcards={"clf": "a"})  # fmt: skip
    record = io.read_provenance(out["critical"])
    assert record["neyman_names"] == ["mu", "big"] and record["working_point"] == "profile_optimum"
    interval = json.loads(out["interval"].read_text())
    assert interval["classifier"] == "a" and interval["lo"] < 1.0 < interval["hi"]
    assert len(io.read_table(out["critical"])) == 11 * 5
    toys = tmp_path / "toys.parquet"
    run("toys", config=cfg, input={"workspace": str(ws), "neyman": str(out["critical"])},
        output={"toys": str(toys)},
        wildcards={"clf": "a", "mode": "frequentist", "chunk": "0"}, params={"toys_in_chunk": 50})  # fmt: skip
    df = io.read_table(toys)
    assert set(df["method"]) == {"profile", "neyman"} and (df["status"] == "ok").all()
    with pytest.raises(ConfigError, match="needs the input 'neyman'"):
        run("toys", config=cfg, input={"workspace": str(ws)}, output={"toys": str(toys)},
            wildcards={"clf": "a", "mode": "frequentist", "chunk": "0"},
            params={"toys_in_chunk": 50})  # fmt: skip
