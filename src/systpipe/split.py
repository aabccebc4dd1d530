"""Seeded train/test split, stratified by process, with weights rescaled to the full yield."""

from __future__ import annotations

import logging
import math
import numbers
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import ConfigError, DataContractError

log = logging.getLogger(__name__)

REQUIRED = ("event_id", "process", "weight")
#: The predefined-split column of the event table (see :mod:`systpipe.ingest`).
PART = "split_part"


class Split(NamedTuple):
    """Train and test event tables; unpacks as ``train, test = split_events(...)``."""

    train: pd.DataFrame
    test: pd.DataFrame


def n_test_events(n: int, test_fraction: float) -> int:
    """Events of a process that go to the test split: round half up of ``n * test_fraction``,
    then clipped to ``[1, n - 1]`` so that both splits contain every process.

    Example:
        >>> [n_test_events(n, 0.5) for n in (2, 3, 5, 10)]
        [1, 2, 3, 5]
        >>> n_test_events(100, 0.001), n_test_events(100, 0.999), n_test_events(7, 0.3)
        (1, 99, 2)
    """
    if n < 2:
        raise ValueError(f"cannot split {n} event(s) into two non-empty parts")
    return min(max(math.floor(n * test_fraction + 0.5), 1), n - 1)


def _process_rng(seed: int, process: str) -> np.random.Generator:
    # One stream per process (keyed by a stable hash of its name), so adding or removing a
    # process does not reshuffle the others.
    return np.random.default_rng([seed, zlib.crc32(process.encode("utf-8"))])


@dataclass(frozen=True)
class SplitPlan:
    """The split of events as compact arrays, aligned and in event_id order: whether each event
    is a test event, and the weight factor of each (process, part). The event table itself is
    not needed, so splitting 10^7 events costs about 20 bytes per event
    (:mod:`systpipe.partitions` streams the table through the plan)."""

    event_id: np.ndarray
    #: process codes into ``names``
    process: np.ndarray
    names: list[str]
    in_test: np.ndarray
    #: (process code, part) -> weight factor; part 0 train, 1 test
    scale: np.ndarray

    def factor(self, process: np.ndarray, in_test: np.ndarray) -> np.ndarray:
        """The weight factor of events of process codes ``process`` in part ``in_test``."""
        return self.scale[process, in_test.astype(np.intp)]


def check_split_settings(test_fraction: object, seed: object) -> None:
    """``split.test_fraction`` in (0, 1) and a non-negative integer ``seed``, else ConfigError."""
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ConfigError(
            f"'split.test_fraction' = {test_fraction!r}: expected a number strictly between 0 and 1"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"'seed' = {seed!r}: expected a non-negative integer")


def plan_split(
    event_id: np.ndarray,
    process: np.ndarray,
    names: list[str],
    *,
    test_fraction: float,
    seed: int,
    part: np.ndarray | None = None,
    rescale: bool = True,
) -> SplitPlan:
    """The split of events with unique ``event_id`` in ascending order and process codes
    ``process`` into ``names``, as :func:`split_events` describes it; ``part`` is a predefined
    split (1: test), whose weights are rescaled per part only with ``rescale``."""
    scale = np.ones((len(names), 2), dtype=np.float64)
    by_name = np.argsort(np.array(names, dtype=str), kind="stable")
    if part is not None:
        if not np.isin(part, (0, 1)).all():
            raise DataContractError(f"split: column {PART!r} must hold 0 (train) or 1 (test)")
        in_test = np.asarray(part) == 1
        for code in by_name:
            name = names[code]
            rows = process == code
            n, k = int(rows.sum()), int((rows & in_test).sum())
            if k == 0 or k == n:
                raise DataContractError(
                    f"split: the predefined split ('files.split', 'files.test_samples' or "
                    f"'test_path') puts all {n} event(s) of process {name!r} in the "
                    f"{'test' if k else 'train'} part; each process needs events in both parts"
                )
            if rescale:
                scale[code] = (n / (n - k), n / k)
            log.debug("predefined split %s: %d test / %d train", name, k, n - k)
        return SplitPlan(event_id, process, names, in_test, scale)
    in_test = np.zeros(event_id.size, dtype=bool)
    for code in by_name:
        name = names[code]
        rows = np.flatnonzero(process == code)
        n = rows.size
        if n < 2:
            raise DataContractError(
                f"split: process {name!r} has {n} event; at least 2 are needed to put it in "
                "both the train and the test split"
            )
        k = n_test_events(n, float(test_fraction))
        in_test[rows[_process_rng(int(seed), name).permutation(n)[:k]]] = True
        scale[code] = (n / (n - k), n / k)
        log.debug("split %s: %d test / %d train", name, k, n - k)
    return SplitPlan(event_id, process, names, in_test, scale)


def split_events(
    df: pd.DataFrame, *, test_fraction: float, seed: int, rescale: bool = True
) -> Split:
    """Split events into train and test, stratified by process and seeded.

    Within each process (in event_id order) a seeded permutation picks
    :func:`n_test_events` events for the test split; the rest are training events. The
    weights of each split are divided by that split's actual fraction of the process
    (``n_split / n_process``), so each split alone predicts the full-luminosity yield; the
    yield is exact when a process's events share one weight (the built-in simulation) and
    unbiased otherwise. The result does not depend on the input row order. Both outputs are
    sorted by event_id with a fresh index; the input is not modified.

    Args:
        df: Event table with at least event_id (unique), process and weight.
        test_fraction: Fraction of each process in the test split, 0 < f < 1
            (``split.test_fraction``).
        seed: Non-negative integer seed (``seed``).
        rescale: Only for a predefined split (a ``split_part`` column, 1 = test, written by
            ingest from ``files.split`` or test files): divide the weights of each part by its
            realised fraction of the process (``files.split.rescale``). The column is dropped.

    Raises:
        ConfigError: test_fraction or seed out of range.
        DataContractError: missing column, duplicate event_id, missing process, or a
            process with fewer than two events.

    Example:
        >>> df = pd.DataFrame({"event_id": range(6), "process": ["a"] * 4 + ["b"] * 2,
        ...                    "weight": 1.0})
        >>> train, test = split_events(df, test_fraction=0.5, seed=1)
        >>> len(train), len(test), float(test["weight"].sum()), float(train["weight"].sum())
        (3, 3, 6.0, 6.0)
    """
    check_split_settings(test_fraction, seed)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataContractError(
            f"split: event table lacks column(s) {missing}; columns present: {list(df.columns)}"
        )
    if df["event_id"].duplicated().any():
        dup = df.loc[df["event_id"].duplicated(), "event_id"].iloc[0]
        raise DataContractError(f"split: event_id is not unique (e.g. {dup})")
    if df["process"].isna().any():
        raise DataContractError(
            f"split: {int(df['process'].isna().sum())} event(s) have no process"
        )

    ordered = df.sort_values("event_id", kind="stable").reset_index(drop=True)
    codes, uniques = pd.factorize(ordered["process"].astype(str))
    predefined = PART in ordered.columns
    plan = plan_split(
        ordered["event_id"].to_numpy(),
        codes,
        [str(u) for u in uniques],
        test_fraction=float(test_fraction),
        seed=int(seed),
        part=ordered[PART].to_numpy() if predefined else None,
        rescale=rescale,
    )
    in_test = plan.in_test
    ordered["weight"] = ordered["weight"].to_numpy(dtype=np.float64) * plan.factor(codes, in_test)
    if predefined:
        kept = ordered.drop(columns=[PART])
        test = kept.loc[in_test].reset_index(drop=True)
        train = kept.loc[~in_test].reset_index(drop=True)
        log.info(
            "predefined split: %d train, %d test (rescaled: %s)", len(train), len(test), rescale
        )
        return Split(train=train, test=test)
    test = ordered.loc[in_test].reset_index(drop=True)
    train = ordered.loc[~in_test].reset_index(drop=True)
    log.info(
        "split %d events: %d train, %d test (test_fraction %g, seed %d)",
        len(ordered),
        len(train),
        len(test),
        test_fraction,
        seed,
    )
    return Split(train=train, test=test)


def predefined_rescale(files: object) -> bool:
    """Whether a predefined split rescales the weights: yes for ``files.split.column`` (unless
    ``files.split.rescale`` is false), no for test files (each part is normalised on its own).

    Example:
        >>> predefined_rescale({"split": {"column": "Set"}}), predefined_rescale({"test_samples": [1]})
        (True, False)
    """
    split = (files or {}).get("split") if isinstance(files, dict) else None
    if split and split.get("column"):
        return bool(split.get("rescale", True))
    return False


__all__ = ["PART", "Split", "n_test_events", "predefined_rescale", "split_events"]
