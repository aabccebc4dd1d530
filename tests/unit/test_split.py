"""Tests of systpipe.split: stratified, seeded, order-independent, yield-preserving split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe.errors import ConfigError, DataContractError
from systpipe.split import n_test_events, split_events

COUNTS = {"ggH_WW": 1001, "WW": 2500, "ttbar": 37, "Ztautau": 2}
UNIT_WEIGHT = {"ggH_WW": 0.0123, "WW": 0.7, "ttbar": 3.3, "Ztautau": 11.0}


def make_events(seed: int = 0, varied_weights: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    process = np.concatenate([[p] * n for p, n in COUNTS.items()])
    n = process.size
    weight = np.array([UNIT_WEIGHT[p] for p in process])
    if varied_weights:
        weight = weight * rng.uniform(-0.2, 2.0, n)
    df = pd.DataFrame(
        {
            "event_id": rng.choice(10**9, size=n, replace=False).astype(np.int64),
            "process": pd.Series(process, dtype=object),
            "label": (process == "ggH_WW").astype(np.int8),
            "weight": weight,
            "x": rng.normal(size=n),
        }
    )
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.25, 0.9])
def test_per_process_counts_and_yields(fraction):
    df = make_events()
    train, test = split_events(df, test_fraction=fraction, seed=11)
    for proc, n in COUNTS.items():
        k = n_test_events(n, fraction)
        assert k == min(max(int(np.floor(n * fraction + 0.5)), 1), n - 1)
        assert (test["process"] == proc).sum() == k
        assert (train["process"] == proc).sum() == n - k
        full = n * UNIT_WEIGHT[proc]
        for part in (train, test):
            got = part.loc[part["process"] == proc, "weight"].sum()
            assert abs(got / full - 1.0) < 1e-12, (proc, got, full)


def test_exact_counts_documented_rule():
    assert n_test_events(1001, 0.5) == 501  # 500.5 rounds half up
    assert n_test_events(37, 0.3) == 11  # 11.1
    assert n_test_events(2, 0.9) == 1  # both splits keep the process
    assert n_test_events(10, 0.04) == 1
    with pytest.raises(ValueError):
        n_test_events(1, 0.5)


def test_weights_divided_by_actual_fraction():
    df = make_events(varied_weights=True)
    train, test = split_events(df, test_fraction=0.3, seed=5)
    original = df.set_index("event_id")["weight"]
    for part in (train, test):
        for proc, n in COUNTS.items():
            sel = part[part["process"] == proc]
            frac = len(sel) / n
            np.testing.assert_allclose(
                sel["weight"].to_numpy(),
                original.loc[sel["event_id"]].to_numpy() / frac,
                rtol=1e-15,
            )
    # unbiased on average: the two split yields bracket the full yield (weighted mean is exact)
    for proc, n in COUNTS.items():
        k = n_test_events(n, 0.3)
        w_test = test.loc[test["process"] == proc, "weight"].sum()
        w_train = train.loc[train["process"] == proc, "weight"].sum()
        full = df.loc[df["process"] == proc, "weight"].sum()
        assert abs((k * w_test + (n - k) * w_train) / n - full) < 1e-9 * abs(full)


def test_disjoint_complete_sorted_and_input_untouched():
    df = make_events()
    before = df.copy()
    train, test = split_events(df, test_fraction=0.4, seed=3)
    pd.testing.assert_frame_equal(df, before)
    assert set(train["event_id"]).isdisjoint(test["event_id"])
    assert sorted([*train["event_id"], *test["event_id"]]) == sorted(df["event_id"])
    for part in (train, test):
        assert part["event_id"].is_monotonic_increasing
        assert part.index.equals(pd.RangeIndex(len(part)))
        assert list(part.columns) == list(df.columns)
        assert part["label"].dtype == np.int8
    # features travel with their event
    merged = pd.concat([train, test]).set_index("event_id")["x"]
    pd.testing.assert_series_equal(merged.sort_index(), df.set_index("event_id")["x"].sort_index())


def test_deterministic_and_seed_dependent():
    df = make_events()
    a = split_events(df, test_fraction=0.5, seed=42)
    b = split_events(df, test_fraction=0.5, seed=42)
    c = split_events(df, test_fraction=0.5, seed=43)
    pd.testing.assert_frame_equal(a.test, b.test, check_exact=True)
    pd.testing.assert_frame_equal(a.train, b.train, check_exact=True)
    assert not a.test["event_id"].equals(c.test["event_id"])


def test_independent_of_input_row_order():
    df = make_events()
    shuffled = df.sample(frac=1.0, random_state=99).reset_index(drop=True)
    a = split_events(df, test_fraction=0.35, seed=8)
    b = split_events(shuffled, test_fraction=0.35, seed=8)
    pd.testing.assert_frame_equal(a.train, b.train, check_exact=True)
    pd.testing.assert_frame_equal(a.test, b.test, check_exact=True)


def test_other_processes_do_not_change_a_process_split():
    df = make_events()
    alone = df[df["process"] == "WW"]
    a = split_events(df, test_fraction=0.5, seed=1).test
    b = split_events(alone, test_fraction=0.5, seed=1).test
    pd.testing.assert_frame_equal(
        a[a["process"] == "WW"].reset_index(drop=True), b, check_exact=True
    )


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), True, "0.5", None])
def test_invalid_fraction(bad):
    with pytest.raises(ConfigError, match=r"split\.test_fraction"):
        split_events(make_events(), test_fraction=bad, seed=1)


def test_invalid_inputs():
    df = make_events()
    with pytest.raises(ConfigError, match="seed"):
        split_events(df, test_fraction=0.5, seed=-1)
    with pytest.raises(DataContractError, match=r"\['weight'\]"):
        split_events(df.drop(columns="weight"), test_fraction=0.5, seed=1)
    dup = df.copy()
    dup.loc[1, "event_id"] = dup.loc[0, "event_id"]
    with pytest.raises(DataContractError, match="not unique"):
        split_events(dup, test_fraction=0.5, seed=1)
    lonely = df[df["process"] != "Ztautau"].copy()
    lonely.loc[lonely.index[0], "process"] = "rare"
    with pytest.raises(DataContractError, match="'rare' has 1 event"):
        split_events(lonely, test_fraction=0.5, seed=1)
