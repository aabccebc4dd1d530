"""Event partitions (systpipe.partitions): the streamed split equals split_events, the test
partitions cover the test events by event_id range, and the samples are bounded and seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systpipe import io
from systpipe.errors import DataContractError
from systpipe.partitions import (
    boundaries,
    in_partition,
    partition_count,
    read_sample,
    split_into_partitions,
)
from systpipe.split import PART, split_events


def _events(n: int = 5000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    process = rng.choice(["sig", "bkg_a", "bkg_b"], n, p=[0.2, 0.5, 0.3])
    return pd.DataFrame(
        {
            "event_id": rng.permutation(n * 3)[:n].astype(np.int64),  # unsorted, with gaps
            "process": process,
            "label": (process == "sig").astype(np.int8),
            "weight": rng.uniform(0.5, 2.0, n),
            "x": rng.normal(size=n),
        }
    )


def _split(tmp_path, df, n_parts, **kw):
    src = tmp_path / "events.parquet"
    # several row groups, so the split really streams
    with io.TableWriter(src, {}) as writer:
        for part in np.array_split(np.arange(len(df)), 7):
            writer.write(df.iloc[part])
    tests = [tmp_path / f"test_{p}.parquet" for p in range(n_parts)]
    summary = split_into_partitions(
        src, train=tmp_path / "train.parquet", tests=tests, sample=tmp_path / "sample.parquet",
        test_fraction=0.4, seed=9, rescale=True, provenance={"step": "split"}, **kw,
    )  # fmt: skip
    return summary, tests


@pytest.mark.parametrize("n_parts", [1, 4])
def test_streamed_split_equals_split_events(tmp_path, n_parts):
    df = _events()
    expected = split_events(df, test_fraction=0.4, seed=9)
    summary, tests = _split(tmp_path, df, n_parts)
    train = io.read_table(tmp_path / "train.parquet").sort_values("event_id", ignore_index=True)
    test = pd.concat([io.read_table(p) for p in tests]).sort_values("event_id", ignore_index=True)
    # the same events with the same weights to the bit, every column kept
    pd.testing.assert_frame_equal(train, expected.train, check_exact=True)
    pd.testing.assert_frame_equal(test, expected.test, check_exact=True)
    assert summary["train"] == len(expected.train) and sum(summary["tests"]) == len(test)
    # partition p: the test ranks [p n / P, (p + 1) n / P), i.e. an event_id range
    sizes = [len(io.read_table(p)) for p in tests]
    assert max(sizes) - min(sizes) <= 1
    for p, path in enumerate(tests):
        prov = io.read_provenance(path)
        assert prov["partition"] == p and prov["of"] == n_parts
        ids = io.read_table(path)["event_id"].to_numpy()
        assert in_partition(ids, prov["id_range"]).all()
        # and no other test event falls in its range: the ranges tile the ids
        assert in_partition(test["event_id"].to_numpy(), prov["id_range"]).sum() == len(ids)


def test_predefined_split_streams_like_split_events(tmp_path):
    df = _events().assign(**{PART: lambda d: (d["event_id"] % 3 == 0).astype(np.int8)})
    expected = split_events(df, test_fraction=0.4, seed=9)
    _, tests = _split(tmp_path, df, 2)
    test = pd.concat([io.read_table(p) for p in tests]).sort_values("event_id", ignore_index=True)
    pd.testing.assert_frame_equal(test, expected.test, check_exact=True)
    assert PART not in io.read_table(tmp_path / "train.parquet").columns


def test_test_sample_is_bounded_stratified_and_in_the_test_split(tmp_path):
    df = _events()
    _, tests = _split(tmp_path, df, 3, sample_events=500)
    sample = io.read_table(tmp_path / "sample.parquet")
    test_ids = pd.concat([io.read_table(p) for p in tests])["event_id"]
    assert len(sample) == 500 and sample["event_id"].isin(test_ids).all()
    assert abs(sample["label"].mean() - (df["label"] == 1).mean()) < 0.01


def test_read_sample_is_the_training_subsample(tmp_path):
    from systpipe.train import subsample_indices

    df = _events()
    path = tmp_path / "t.parquet"
    with io.TableWriter(path, {}) as writer:
        for part in np.array_split(np.arange(len(df)), 5):
            writer.write(df.iloc[part])
    got, n = read_sample(path, 700, seed=4)
    ordered = df.sort_values("event_id", ignore_index=True)
    want = ordered.iloc[subsample_indices(ordered["label"].to_numpy(), 700, seed=4)]
    assert n == len(df)
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_exact=True)


def test_partition_count_and_bad_partitions():
    cfg = {"input": {"source": "simulate", "partitions": "auto", "partition_events": 1000},
           "split": {"test_fraction": 0.5}, "simulate": {"n_selected": {"a": 4001}}}  # fmt: skip
    assert partition_count(cfg) == 3  # ceil(2001 / 1000)
    cfg["input"]["partitions"] = 7
    assert partition_count(cfg) == 7
    with pytest.raises(DataContractError, match="5 partitions for 3 test events"):
        boundaries(np.arange(3), 5)


def test_auto_partitions_count_the_rows_of_the_sample_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"a": np.arange(3000)}).to_parquet("s1.parquet")
    pd.DataFrame({"a": np.arange(1500)}).to_csv("b_1.csv", index=False)
    pd.DataFrame({"a": np.arange(500)}).to_csv("b_2.csv", index=False)
    cfg = {
        "input": {"source": "files", "partitions": "auto", "partition_events": 1000},
        "split": {"test_fraction": 0.5},
        "files": {"samples": [{"name": "s", "paths": ["s1.parquet"]},
                              {"name": "b", "paths": ["b_*.csv"]}]},
    }  # fmt: skip
    assert partition_count(cfg) == 3  # (3000 + 1500 + 500) / 2 test events per 1000
