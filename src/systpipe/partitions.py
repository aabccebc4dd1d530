"""Event partitions: the train/test split streamed into partitions of the test events.

The split decides on a narrow table (event_id, process, label, weight: about 30 bytes per event)
with :func:`systpipe.split.split_events`, so it is the same split for any number of partitions,
then streams the full event table chunk by chunk into the training file, one file per test
partition and a bounded test sample. No step after ingest or simulation holds the whole event
table: training reads a seeded subsample (:func:`read_sample`), vary and score one partition.

Partition p holds the test events of ranks ``[p n / P, (p + 1) n / P)`` in event_id order, so its
events are those with ids in ``[lo_p, lo_{p+1})``; that id range is stored in the partition
file's provenance (``id_range``), so that a step which meets other events (the alternative
samples of a ``sample`` systematic) can give each partition its share.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io
from .errors import ConfigError, DataContractError
from .split import PART, SplitPlan, check_split_settings, plan_split

log = logging.getLogger(__name__)

#: test events in the sample that the training metrics and the overtraining plot read
TEST_SAMPLE_EVENTS = 200_000
#: rows per chunk when streaming an event table
CHUNK_ROWS = 200_000


def _count_rows(path: Path, tree: str | None) -> int:
    """Rows of one input file from its metadata (Parquet, ROOT) or its lines (CSV)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if suffix == ".csv":
        with path.open("rb") as handle:
            return max(sum(1 for _ in handle) - 1, 0)
    if suffix == ".root":
        import uproot

        from .ingest_read import resolve_tree

        with uproot.open(path) as handle:
            trees = [k for k, c in handle.classnames().items() if c.startswith("TTree")]
            key = resolve_tree(trees, tree) if tree else (trees[0] if trees else None)
            if key is None:
                raise ConfigError(f"input.partitions: auto: no TTree {tree or ''} in {path}")
            return int(handle[key].num_entries)
    raise ConfigError(
        f"input.partitions: auto counts Parquet, ROOT and CSV files, not {path}; give a number"
    )


def expected_test_events(config: Mapping[str, Any]) -> int:
    """The number of test events the config will give, for ``input.partitions: auto``:
    ``simulate.n_selected`` x ``split.test_fraction``, or the rows of the sample files (before
    any selection) x the test fraction; an estimate for files, which is all auto needs."""
    from .ingest_read import expand_paths

    fraction = float(config["split"]["test_fraction"])
    if config["input"]["source"] == "simulate":
        return math.ceil(sum(int(n) for n in config["simulate"]["n_selected"].values()) * fraction)
    files = config.get("files") or {}
    total = 0
    for key in ("samples", "test_samples"):
        for i, sample in enumerate(files.get(key) or []):
            test_path = sample.get("test_path") or []
            patterns = [
                *sample["paths"],
                *([test_path] if isinstance(test_path, str) else test_path),
            ]
            for path in expand_paths(patterns, base_dir=None, key=f"files.{key}[{i}].paths"):
                total += _count_rows(path, sample.get("tree"))
    return math.ceil(total * fraction)


def partition_count(config: Mapping[str, Any]) -> int:
    """``input.partitions``, with ``auto`` resolved to one partition per
    ``input.partition_events`` test events.

    Example:
        >>> cfg = {"input": {"source": "simulate", "partitions": "auto",
        ...                  "partition_events": 500000},
        ...        "split": {"test_fraction": 0.5}, "simulate": {"n_selected": {"a": 2500000}}}
        >>> partition_count(cfg)
        3
    """
    inp = config["input"]
    value = inp.get("partitions", 1)
    if value == "auto":
        return max(1, math.ceil(expected_test_events(config) / int(inp["partition_events"])))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"input.partitions: expected an integer >= 1 or 'auto', got {value!r}")
    return value


def boundaries(test_ids: np.ndarray, n_partitions: int) -> np.ndarray:
    """The first event_id of partitions 1..P-1 (``test_ids`` sorted): partition p holds ranks
    ``[p n // P, (p + 1) n // P)``.

    Example:
        >>> boundaries(np.arange(10) * 2, 3).tolist()
        [6, 12]
    """
    n = test_ids.size
    if n < n_partitions:
        raise DataContractError(
            f"input.partitions: {n_partitions} partitions for {n} test events; use fewer"
        )
    return test_ids[[(p * n) // n_partitions for p in range(1, n_partitions)]]


def in_partition(event_id: np.ndarray, id_range: Sequence[float | None]) -> np.ndarray:
    """Mask of the event ids inside a partition's ``id_range`` [lo, hi) (None: unbounded)."""
    lo, hi = id_range
    mask = np.ones(np.asarray(event_id).shape, dtype=bool)
    if lo is not None:
        mask &= event_id >= lo
    if hi is not None:
        mask &= event_id < hi
    return mask


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position) of ``ids`` in ``sorted_ids``."""
    pos = np.minimum(np.searchsorted(sorted_ids, ids), max(sorted_ids.size - 1, 0))
    found = sorted_ids[pos] == ids if sorted_ids.size else np.zeros(ids.size, dtype=bool)
    return found, pos


def split_into_partitions(
    events: str | os.PathLike[str],
    *,
    train: str | os.PathLike[str],
    tests: Sequence[str | os.PathLike[str]],
    sample: str | os.PathLike[str],
    test_fraction: float,
    seed: int,
    rescale: bool,
    provenance: Mapping[str, Any],
    sample_events: int = TEST_SAMPLE_EVENTS,
) -> dict[str, Any]:
    """Split ``events`` into ``train``, the test partitions ``tests`` and a test ``sample``
    (at most ``sample_events``, stratified by label, seeded), streaming the event table.

    The selection and the weights are :func:`systpipe.split.split_events`'s on the whole table.
    Every file keeps the event table's columns (``split_part`` dropped) and row order.

    Returns:
        A summary: events per output and the partitions' id ranges.
    """
    from .train import subsample_indices

    check_split_settings(test_fraction, seed)
    plan = _plan(events, test_fraction=test_fraction, seed=seed, rescale=rescale)
    te_ids = plan.event_id[plan.in_test]
    te_label = plan_labels(events, plan)[plan.in_test]
    n_parts = len(tests)
    bounds = boundaries(te_ids, n_parts)
    edges: list[int | None] = [None, *(int(b) for b in bounds), None]
    ranges = [[edges[p], edges[p + 1]] for p in range(n_parts)]
    # the test sample: seeded and stratified like the training subsample, in event_id order
    sample_ids = te_ids[subsample_indices(te_label, sample_events, seed=seed)]
    n_train, n_sample, n_tests = 0, 0, [0] * n_parts
    with ExitStack() as stack:
        w_train = stack.enter_context(io.TableWriter(train, {**provenance, "part": "train"}))
        w_sample = stack.enter_context(
            io.TableWriter(
                sample, {**provenance, "part": "test sample", "max_events": sample_events}
            )
        )
        w_tests = [
            stack.enter_context(
                io.TableWriter(
                    path,
                    {
                        **provenance,
                        "part": "test",
                        "partition": p,
                        "of": n_parts,
                        "id_range": ranges[p],
                    },
                )
            )
            for p, path in enumerate(tests)
        ]
        codes = {name: code for code, name in enumerate(plan.names)}
        for chunk in io.iter_batches(events, batch_size=CHUNK_ROWS):
            chunk = chunk.drop(columns=[PART], errors="ignore")
            ids = chunk["event_id"].to_numpy(np.int64)
            in_test, _ = _lookup(te_ids, ids)
            in_train = ~in_test
            process = chunk["process"].astype(str).map(codes).to_numpy(np.intp)
            weight = chunk["weight"].to_numpy(np.float64) * plan.factor(process, in_test)
            chunk = chunk.assign(weight=weight)
            if in_train.any():
                w_train.write(chunk[in_train])
                n_train += int(in_train.sum())
            test_chunk = chunk[in_test]
            part_of = np.searchsorted(bounds, test_chunk["event_id"].to_numpy(np.int64), "right")
            for p in np.unique(part_of):
                w_tests[p].write(test_chunk[part_of == p])
                n_tests[p] += int((part_of == p).sum())
            sampled, _ = _lookup(sample_ids, test_chunk["event_id"].to_numpy(np.int64))
            if sampled.any():
                w_sample.write(test_chunk[sampled])
                n_sample += int(sampled.sum())
    log.info(
        "split: %d train, %d test events in %d partition(s) %s, test sample %d",
        n_train,
        sum(n_tests),
        n_parts,
        n_tests,
        n_sample,
    )
    return {"train": n_train, "tests": n_tests, "sample": n_sample, "id_ranges": ranges}


def _plan(
    events: str | os.PathLike[str], *, test_fraction: float, seed: int, rescale: bool
) -> SplitPlan:
    """The split of an event file from its event_id, process and (predefined) split_part
    columns only, in event_id order (:func:`systpipe.split.plan_split`)."""
    import pyarrow.parquet as pq

    path = Path(events)
    if not path.is_file():
        raise DataContractError(f"{path}: file not found")
    names = pq.ParquetFile(path).schema_arrow.names
    missing = [c for c in ("event_id", "process", "label", "weight") if c not in names]
    if missing:
        raise DataContractError(
            f"split: event table lacks column(s) {missing}; columns present: {names}"
        )
    columns = ["event_id", "process"] + ([PART] if PART in names else [])
    # the process names dictionary-encoded: 2 bytes per event instead of a string pointer
    table = pq.read_table(path, columns=columns, read_dictionary=["process"]).unify_dictionaries()
    if table["process"].null_count:
        raise DataContractError(f"split: {table['process'].null_count} event(s) have no process")
    process = table["process"].combine_chunks()
    event_id = table["event_id"].to_numpy().astype(np.int64)
    codes = np.asarray(process.indices.to_numpy(zero_copy_only=False), dtype=np.int16)
    labels = [str(v) for v in process.dictionary.to_pylist()]
    part = table[PART].to_numpy() if PART in names else None
    del table, process
    order = np.argsort(event_id, kind="stable")
    if not np.all(order == np.arange(order.size)):
        event_id, codes = event_id[order], codes[order]
        part = None if part is None else part[order]
    if event_id.size > 1 and np.any(event_id[1:] == event_id[:-1]):
        dup = event_id[1:][event_id[1:] == event_id[:-1]][0]
        raise DataContractError(f"split: event_id is not unique (e.g. {dup})")
    return plan_split(event_id, codes, labels, test_fraction=float(test_fraction), seed=int(seed),
                      part=part, rescale=rescale)  # fmt: skip


def plan_labels(events: str | os.PathLike[str], plan: SplitPlan) -> np.ndarray:
    """The label of every event of ``plan``, in its (event_id) order."""
    table = io.read_table(events, columns=["event_id", "label"])
    found, pos = _lookup(plan.event_id, table["event_id"].to_numpy(np.int64))
    out = np.zeros(plan.event_id.size, dtype=np.int8)
    out[pos[found]] = table["label"].to_numpy()[found]
    return out


def read_sample(
    path: str | os.PathLike[str],
    max_events: int | None,
    *,
    seed: int,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, int]:
    """A seeded subsample of an event file, stratified by label (:func:`subsample_indices` on
    the rows in event_id order), read chunk by chunk: memory is the subsample's, not the file's.

    Returns:
        (the subsample sorted by event_id, the number of events in the file).
    """
    from .train import subsample_indices

    keys = io.read_table(path, columns=["event_id", "label"])
    order = np.argsort(keys["event_id"].to_numpy(np.int64), kind="stable")
    ids = keys["event_id"].to_numpy(np.int64)[order]
    if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
        raise DataContractError(f"{path}: event_id is not unique")
    keep = np.sort(ids[subsample_indices(keys["label"].to_numpy()[order], max_events, seed=seed)])
    wanted = None if columns is None else list(dict.fromkeys(["event_id", *columns]))
    parts = []
    for chunk in io.iter_batches(path, columns=wanted, batch_size=CHUNK_ROWS):
        found, _ = _lookup(keep, chunk["event_id"].to_numpy(np.int64))
        if found.any():
            parts.append(chunk[found])
    out = pd.concat(parts, ignore_index=True) if parts else io.read_table(path, columns=wanted)[:0]
    return out.sort_values("event_id", kind="stable").reset_index(drop=True), int(ids.size)


__all__ = [
    "TEST_SAMPLE_EVENTS",
    "boundaries",
    "expected_test_events",
    "in_partition",
    "partition_count",
    "read_sample",
    "split_into_partitions",
]
