"""Tests of systpipe.templates: right-closed binning, sample grouping, variations, rebinning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import ConfigError, DataContractError
from systpipe.templates import bin_index, build_templates, default_bin_edges, rebin


def _frame(scores, weights, labels, processes, ids=None) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "event_id": np.arange(n, dtype=np.int64)
            if ids is None
            else np.asarray(ids, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int8),
            "process": list(processes),
            "weight": np.asarray(weights, dtype=np.float64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )


@pytest.fixture
def scores() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 3000
    procs = rng.choice(["H", "WW", "tt"], size=n, p=[0.2, 0.5, 0.3])
    labels = (procs == "H").astype(int)
    nominal = _frame(rng.uniform(0, 1, n), rng.uniform(0.5, 1.5, n), labels, procs)
    up = nominal.copy()
    up["weight"] *= np.where(labels == 1, 1.1, 1.0)
    down = nominal.copy()
    down["score"] = np.clip(nominal["score"] - 0.05, 0, 1)
    return {"nominal": nominal, "x_up": up, "x_down": down}


def test_bin_index_right_closed_edges_and_overflow():
    edges = np.array([0.5, 0.75, 1.0])
    got = bin_index(np.array([0.2, 0.5, 0.5000001, 0.75, 0.7500001, 1.0, 1.3]), edges)
    assert got.tolist() == [-1, -1, 0, 0, 1, 1, 1]


def test_default_bin_edges_and_bad_values():
    assert default_bin_edges(n_bins=5, score_min=0.5).tolist() == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    with pytest.raises(ConfigError, match="n_bins"):
        default_bin_edges(n_bins=0)
    with pytest.raises(ConfigError, match="score_min"):
        default_bin_edges(score_min=1.0, score_max=1.0)


def test_histograms_match_a_direct_sum(scores):
    edges = np.array([0.4, 0.6, 0.8, 1.0])
    t = build_templates(scores, bin_edges=edges)
    assert t.samples == ["H", "WW", "tt"]  # signal first, then sorted
    assert t.is_signal == [True, False, False]
    nom = scores["nominal"]
    for s, proc in enumerate(t.samples):
        sel = nom[nom["process"] == proc]
        for b in range(3):
            m = (sel["score"] > edges[b]) & (sel["score"] <= edges[b + 1])
            assert t.nominal[s, b] == pytest.approx(sel.loc[m, "weight"].sum(), rel=1e-12)
            assert t.sumw2[s, b] == pytest.approx((sel.loc[m, "weight"] ** 2).sum(), rel=1e-12)
    # x_up scales only the signal weights by 1.1
    np.testing.assert_allclose(t.variations["x_up"][0], 1.1 * t.nominal[0], rtol=1e-12)
    np.testing.assert_allclose(t.variations["x_up"][1:], t.nominal[1:], rtol=1e-12)
    # x_down moves scores down: fewer events above 0.4 in total
    assert t.variations["x_down"].sum() < t.nominal.sum()
    assert t.total(signal=True).sum() == pytest.approx(t.nominal[0].sum())


def test_group_by_label_merges_processes(scores):
    edges = np.array([0.0, 0.5, 1.0])
    by_proc = build_templates(scores, bin_edges=edges)
    by_label = build_templates(scores, bin_edges=edges, group_by="label")
    assert by_label.samples == ["signal", "background"]
    np.testing.assert_allclose(by_label.nominal[1], by_proc.nominal[1:].sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(by_label.sumw2[0], by_proc.sumw2[0], rtol=1e-12)


def test_row_order_does_not_change_a_bit(scores):
    edges = np.linspace(0.3, 1.0, 8)
    shuffled = {k: v.sample(frac=1.0, random_state=1) for k, v in scores.items()}
    a = build_templates(scores, bin_edges=edges)
    b = build_templates(shuffled, bin_edges=edges)
    assert np.array_equal(a.nominal, b.nominal) and np.array_equal(a.sumw2, b.sumw2)
    assert all(np.array_equal(a.variations[k], b.variations[k]) for k in a.variations)


def test_rebin_equals_direct_build(scores):
    fine = build_templates(scores, bin_edges=np.linspace(0.2, 1.0, 17))
    coarse = build_templates(scores, bin_edges=[0.4, 0.6, 1.0])
    merged = rebin(fine, [0.4, 0.6, 1.0])
    np.testing.assert_allclose(merged.nominal, coarse.nominal, rtol=1e-12)
    np.testing.assert_allclose(merged.variations["x_down"], coarse.variations["x_down"], rtol=1e-12)
    with pytest.raises(ConfigError, match="subset"):
        rebin(fine, [0.41, 1.0])


def test_bad_inputs_name_the_problem(scores):
    edges = [0.0, 1.0]
    with pytest.raises(DataContractError, match="nominal"):
        build_templates({"x_up": scores["x_up"]}, bin_edges=edges)
    with pytest.raises(DataContractError, match="score"):
        build_templates({"nominal": scores["nominal"].drop(columns="score")}, bin_edges=edges)
    alien = scores["x_up"].copy()
    alien.loc[0, "process"] = "ZZ"
    with pytest.raises(DataContractError, match="ZZ"):
        build_templates({"nominal": scores["nominal"], "x_up": alien}, bin_edges=edges)
    mixed = scores["nominal"].copy()
    mixed.loc[mixed["process"] == "WW", "label"] = np.int8(1)
    mixed.loc[mixed.index[mixed["process"] == "WW"][0], "label"] = np.int8(0)
    with pytest.raises(DataContractError, match="both labels"):
        build_templates({"nominal": mixed}, bin_edges=edges)
    with pytest.raises(ConfigError, match="increasing"):
        build_templates(scores, bin_edges=[0.5, 0.5, 1.0])
    with pytest.raises(ConfigError, match="group_by"):
        build_templates(scores, bin_edges=edges, group_by="sample")  # type: ignore[arg-type]


# --------------------------------------------------------------- MC variance of the shifts


def _direct_shift_sumw2(nominal, varied, samples, edges):
    """sum_i d_ij^2 per (sample, bin) by brute force over the union of event ids."""
    n_bins = len(edges) - 1
    out = np.zeros((len(samples), n_bins))
    total = np.zeros(len(samples))

    def cells(frame):
        got = {}
        for row in frame.itertuples(index=False):
            b = int(bin_index(np.array([row.score]), np.asarray(edges))[0])
            got[int(row.event_id)] = (samples.index(row.process), b, float(row.weight))
        return got

    a, b = cells(nominal), cells(varied)
    for eid in set(a) | set(b):
        d = np.zeros((len(samples), n_bins))
        if eid in b and b[eid][1] >= 0:
            d[b[eid][0], b[eid][1]] += b[eid][2]
        if eid in a and a[eid][1] >= 0:
            d[a[eid][0], a[eid][1]] -= a[eid][2]
        out += d**2
        total += d.sum(axis=1) ** 2
    return out, total


@pytest.fixture
def paired() -> dict[str, pd.DataFrame]:
    """A variation that re-weights some events, moves others (across bins and out of the fit
    region), drops some and adds new ones (as an alternative sample would)."""
    rng = np.random.default_rng(11)
    n = 400
    procs = rng.choice(["H", "WW"], size=n, p=[0.3, 0.7])
    labels = (procs == "H").astype(int)
    nominal = _frame(rng.uniform(0, 1, n), rng.uniform(0.5, 1.5, n), labels, procs)
    var = nominal.copy()
    var.loc[::3, "weight"] *= 1.2
    var.loc[1::3, "score"] = np.clip(
        var.loc[1::3, "score"] + rng.normal(0, 0.1, len(var.loc[1::3])), 0, 1
    )
    var = var.drop(index=range(0, 40))
    extra = _frame(
        rng.uniform(0, 1, 30),
        rng.uniform(0.5, 1.5, 30),
        [0] * 30,
        ["WW"] * 30,
        ids=np.arange(10_000, 10_030),
    )
    var = pd.concat([var, extra], ignore_index=True)
    return {"nominal": nominal, "k_up": var}


def test_shift_sumw2_equals_the_event_level_sum(paired):
    edges = [0.3, 0.5, 0.7, 1.0]
    t = build_templates(paired, bin_edges=edges)
    want, want_total = _direct_shift_sumw2(paired["nominal"], paired["k_up"], t.samples, edges)
    np.testing.assert_allclose(t.shift_sumw2["k_up"], want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(t.shift_norm_sumw2["k_up"], want_total, rtol=1e-12, atol=0)
    # migrations inside the region cancel in the total: it is below the sum over bins
    assert np.all(t.shift_norm_sumw2["k_up"] < t.shift_sumw2["k_up"].sum(axis=1))


def test_shift_sumw2_of_a_rescaling_is_delta_squared_sumw2(scores):
    t = build_templates(scores, bin_edges=[0.4, 0.6, 0.8, 1.0])
    # x_up scales the signal weights by 1.1: d_i = 0.1 w_i, nothing migrates
    np.testing.assert_allclose(t.shift_sumw2["x_up"][0], 0.01 * t.sumw2[0], rtol=1e-12)
    assert np.all(t.shift_sumw2["x_up"][1:] == 0)
    np.testing.assert_allclose(t.shift_norm_sumw2["x_up"][0], 0.01 * t.sumw2[0].sum(), rtol=1e-12)


def test_shift_sumw2_leaves_the_other_outputs_alone_and_ignores_row_order(paired):
    edges = np.linspace(0.2, 1.0, 6)
    with_ids = build_templates(paired, bin_edges=edges)
    no_ids = build_templates(
        {k: v.drop(columns="event_id") for k, v in paired.items()}, bin_edges=edges
    )
    assert no_ids.shift_sumw2 == {} and no_ids.shift_norm_sumw2 == {}
    shuffled = build_templates(
        {k: v.sample(frac=1.0, random_state=2) for k, v in paired.items()}, bin_edges=edges
    )
    for other in (no_ids, shuffled):
        assert np.array_equal(with_ids.nominal, other.nominal)
        assert np.array_equal(with_ids.sumw2, other.sumw2)
        assert np.array_equal(with_ids.variations["k_up"], other.variations["k_up"])
    assert np.array_equal(with_ids.shift_sumw2["k_up"], shuffled.shift_sumw2["k_up"])


def test_rebin_keeps_shift_sumw2_only_where_it_is_exact(paired):
    fine = build_templates(paired, bin_edges=np.linspace(0.2, 1.0, 9))
    assert set(rebin(fine, fine.bin_edges).shift_sumw2) == {"k_up"}
    same_region = rebin(fine, [0.2, 0.6, 1.0])
    assert same_region.shift_sumw2 == {}
    direct = build_templates(paired, bin_edges=[0.2, 0.6, 1.0])
    np.testing.assert_allclose(
        same_region.shift_norm_sumw2["k_up"], direct.shift_norm_sumw2["k_up"], rtol=1e-12
    )
    assert rebin(fine, [0.3, 0.6, 1.0]).shift_norm_sumw2 == {}


def test_shift_errors_off_skips_the_pairing_only(paired):
    edges = [0.3, 0.5, 0.7, 1.0]
    on = build_templates(paired, bin_edges=edges)
    off = build_templates(paired, bin_edges=edges, shift_errors=False)
    assert off.shift_sumw2 == {} and off.shift_norm_sumw2 == {} and set(on.shift_sumw2) == {"k_up"}
    assert np.array_equal(on.variations["k_up"], off.variations["k_up"])


def test_shift_variance_treats_a_repeated_id_as_unpaired():
    from systpipe.templates import shift_variance

    nom = (np.array([1, 2]), np.array([0, 0]), np.array([1.0, 2.0]))
    # id 2 twice in the variation (an alternative event colliding with a nominal one)
    var = (np.array([1, 2, 2]), np.array([0, 0, 0]), np.array([1.0, 2.0, 3.0]))
    # id 1 unchanged: 0; the three rows of id 2 alone: 2^2 + 2^2 + 3^2
    assert shift_variance(nom, var, 1).tolist() == [17.0]
    with pytest.raises(ValueError, match="sorted"):
        shift_variance((np.array([2, 1]), np.array([0, 0]), np.array([1.0, 1.0])), var, 1)
