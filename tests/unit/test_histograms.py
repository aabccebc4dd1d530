"""Fine score histograms (systpipe.histograms): the binned scan and templates equal the
per-event ones on grid cuts, and any partitioning of the events gives the same sums."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import DataContractError
from systpipe.histograms import (
    BinnedFrames,
    fine_bin,
    fine_grid,
    histogram_partition,
    merge_partitions,
    representative,
    snap,
)
from systpipe.scan import scan_scores
from systpipe.templates import build_templates

SYSTEMATICS = [
    {"name": "lumi", "type": "norm", "delta": 0.02},
    {"name": "det", "type": "scale", "delta": 0.03, "columns": ["x"]},
]


def _events(n: int = 6000, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Per-event score frames of nominal and the four variations: lumi weights, det scores
    shifted (events migrate between fine bins), and one det_down event missing."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.int8)
    process = np.where(label == 1, "sig", np.where(rng.random(n) < 0.5, "bkg_a", "bkg_b"))
    score = np.clip(rng.beta(2 + 3 * label, 3 - label), 0, 1)
    weight = rng.uniform(0.5, 1.5, n) * np.where(label == 1, 0.05, 1.0)
    nominal = pd.DataFrame(
        {
            "event_id": np.arange(n) * 3 + 7,
            "process": process,
            "label": label,
            "weight": weight,
            "score": score,
        }  # fmt: skip
    )
    frames = {"nominal": nominal}
    frames["lumi_up"] = nominal.assign(weight=weight * 1.02)
    frames["lumi_down"] = nominal.assign(weight=weight * 0.98)
    frames["det_up"] = nominal.assign(score=np.clip(score + rng.normal(0, 0.01, n), 0, 1))
    down = nominal.assign(score=np.clip(score - rng.normal(0, 0.01, n), 0, 1))
    frames["det_down"] = down.drop(index=5).reset_index(drop=True)
    return frames


def _binned(frames: dict[str, pd.DataFrame], n_parts: int, grid: np.ndarray) -> BinnedFrames:
    """Histogram the events in ``n_parts`` contiguous event_id ranges and merge them."""
    ids = np.sort(frames["nominal"]["event_id"].to_numpy())
    bounds = ids[[(p * ids.size) // n_parts for p in range(1, n_parts)]]
    margs, pairs = [], []
    for p in range(n_parts):
        part = {}
        for name, df in frames.items():
            where = np.searchsorted(bounds, df["event_id"].to_numpy(), "right") == p
            part[name] = df[where]
        m, q = histogram_partition(part, grid)
        margs.append(m)
        pairs.append(q)
    return merge_partitions(margs, pairs, grid)


def _scan(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return scan_scores(frames, systematics=SYSTEMATICS, thresholds=np.round(np.arange(0, 1, 0.01), 12),
                       symmetrise="mean", b_reg=10.0, min_signal=1.0, min_background=1.0,
                       min_neff_signal=1.0, min_neff_background=1.0)  # fmt: skip


def test_grid_bins_and_representatives():
    grid = fine_grid()
    assert grid.size == 1001 and grid[0] == 0.0 and grid[-1] == 1.0
    # right-closed: a score on a grid point belongs to the bin that ends there
    assert fine_bin(np.array([0.0, 0.0005, 0.001, 0.0010001, 1.0, 1.5]), grid).tolist() == [
        0,
        1,
        1,
        2,
        1000,
        1001,
    ]
    assert representative(np.array([0, 1, 1000, 1001]), grid).tolist() == [0.0, 0.001, 1.0, np.inf]
    assert snap([0.1234, 0.12351, 0.9999], grid).tolist() == [0.123, 0.124, 1.0]


def test_binned_scan_equals_the_per_event_scan_on_grid_thresholds():
    frames = _events()
    per_event = _scan(frames)
    binned = _scan(_binned(frames, 1, fine_grid()))
    assert list(binned.columns) == list(per_event.columns)
    for col in per_event.columns:
        a, b = per_event[col].to_numpy(), binned[col].to_numpy()
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(a, b, err_msg=col)
        elif a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=col)
    # the guards read raw and effective counts: these are exact sums, not approximations
    assert per_event["n_raw_B"].iloc[50] == binned["n_raw_B"].iloc[50] > 100


@pytest.mark.parametrize("group_by", ["process", "label"])
def test_binned_templates_equal_per_event_templates_with_shift_errors(group_by):
    frames = _events()
    edges = np.array([0.4, 0.55, 0.7, 0.85, 1.0])
    per_event = build_templates(frames, bin_edges=edges, group_by=group_by)
    binned = build_templates(_binned(frames, 1, fine_grid()), bin_edges=edges, group_by=group_by)
    assert binned.samples == per_event.samples
    np.testing.assert_allclose(binned.nominal, per_event.nominal, rtol=1e-13)
    np.testing.assert_allclose(binned.sumw2, per_event.sumw2, rtol=1e-13)
    assert (
        sorted(binned.shift_sumw2)
        == sorted(per_event.shift_sumw2)
        == ["det_down", "det_up", "lumi_down", "lumi_up"]
    )
    for name in per_event.variations:
        np.testing.assert_allclose(binned.variations[name], per_event.variations[name], rtol=1e-13)
        np.testing.assert_allclose(
            binned.shift_sumw2[name], per_event.shift_sumw2[name], rtol=1e-10, err_msg=name
        )
        np.testing.assert_allclose(
            binned.shift_norm_sumw2[name], per_event.shift_norm_sumw2[name], rtol=1e-10
        )
    # the det shift moves events between bins: its MC error is not the lumi one's
    assert binned.shift_sumw2["det_up"].sum() > 10 * binned.shift_sumw2["lumi_up"].sum()


@pytest.mark.parametrize("n_parts", [2, 3, 7])
def test_any_partitioning_gives_the_same_histograms(n_parts):
    frames = _events()
    grid = fine_grid()
    one, many = _binned(frames, 1, grid), _binned(frames, n_parts, grid)
    assert sorted(one) == sorted(many) and sorted(one.pairs) == sorted(many.pairs)
    for name in one:
        a, b = one[name], many[name]
        # exact sums rounded once: the same bits, not merely close
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in one.pairs:
        pd.testing.assert_frame_equal(one.pairs[name], many.pairs[name], check_exact=True)
    pd.testing.assert_frame_equal(_scan(one), _scan(many), check_exact=True)


def test_histograms_refuse_nan_scores_and_missing_nominal():
    frames = _events(100)
    bad = dict(frames, det_up=frames["det_up"].assign(score=np.nan))
    with pytest.raises(DataContractError, match="det_up.*NaN"):
        histogram_partition(bad, fine_grid())
    with pytest.raises(DataContractError, match="nominal"):
        histogram_partition({"det_up": frames["det_up"]}, fine_grid())


def test_exact_sums_are_correctly_rounded_and_independent_of_grouping():
    import math

    from systpipe import exact_sum

    rng = np.random.default_rng(7)
    values = rng.normal(size=5000) * 10.0 ** rng.integers(-8, 8, 5000)
    group = rng.integers(0, 13, 5000)
    whole = exact_sum.totals(*exact_sum.terms(group, values), 13)
    expected = [math.fsum(values[group == g]) for g in range(13)]
    assert whole.tolist() == expected  # fsum: the correctly rounded sum
    # the terms of any split of the values add to the same bits
    parts = [exact_sum.terms(group[s], values[s]) for s in np.array_split(np.arange(5000), 7)]
    joined = [np.concatenate([p[i] for p in parts]) for i in range(4)]
    assert exact_sum.totals(*joined, 13).tolist() == expected
    # and a plain float sum of the same split does not, for this data
    assert any(
        sum(values[s][group[s] == g].sum() for s in np.array_split(np.arange(5000), 7))
        != expected[g]
        for g in range(13)
    )


def test_score_plot_bins_are_exact_sums_of_fine_bins():
    from systpipe.grids import logit_edges
    from systpipe.plots.scan import right_closed_histogram

    frames = _events()
    edges = logit_edges(50)
    binned = _binned(frames, 2, fine_grid([edges]))
    for name in ("nominal", "det_up"):
        a, b = frames[name], binned[name]
        per_event = right_closed_histogram(a["score"].to_numpy(), edges, a["weight"].to_numpy())
        from_bins = right_closed_histogram(b["score"].to_numpy(), edges, b["weight"].to_numpy())
        np.testing.assert_allclose(from_bins, per_event, rtol=1e-12, atol=1e-12)
    # without the plot's edges in the grid the top bins would be wrong: 0.001 is too coarse there
    coarse = _binned(frames, 1, fine_grid())["nominal"]
    nominal = frames["nominal"]
    assert not np.allclose(
        right_closed_histogram(coarse["score"].to_numpy(), edges, coarse["weight"].to_numpy()),
        right_closed_histogram(nominal["score"].to_numpy(), edges, nominal["weight"].to_numpy()),
    )


def test_exact_totals_fast_path_equals_integer_arithmetic():
    import math

    from systpipe import exact_sum

    rng = np.random.default_rng(11)
    n = 2000
    hi = rng.integers(-(2**40), 2**40, n)
    lo = rng.integers(0, 2**26, n) * rng.integers(1, 2**20, n)  # sums beyond 26 bits
    exp = rng.integers(-60, 60, n)
    got = exact_sum.totals(np.arange(n), exp, hi, lo, n)  # one term per group: the fast path
    want = [math.ldexp(float((int(h) << 26) + int(lo_)), int(e) - 53)
            for h, lo_, e in zip(hi, lo, exp, strict=True)]  # fmt: skip
    assert got.tolist() == want
