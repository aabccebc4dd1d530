"""Checks of the ``files`` mapping done before any file is read (the config layer of ingest)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError
from .expressions import Expression, parse_columns, parse_expression
from .features import DERIVABLE
from .ingest_read import FORMATS

LABELS = {"signal": 1, "background": 0}
RESERVED = ("process", "label", "weight")
EVENT_ID = "event_id"
SUM_WEIGHTS_AUTO = ("auto", "auto_selected")


def _finite(value: Any, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"'{key}' = {value!r}: expected a finite number")
    if positive and value <= 0:
        raise ConfigError(f"'{key}' = {value!r}: expected a number > 0")
    return float(value)


def check_sample(
    i: int,
    sample: Mapping[str, Any],
    *,
    group: str,
    label: Mapping[str, Any] | None,
    luminosity_fb: float | None,
) -> Expression | None:
    """Check one entry of ``files.samples`` (or ``files.test_samples``); return its parsed
    selection (None without one)."""
    key = f"{group}[{i}]"
    if not sample.get("name"):
        raise ConfigError(f"'{key}.name' is required")
    if not sample.get("paths"):
        raise ConfigError(f"'{key}.paths' is required (a list of files or glob patterns)")
    if sample.get("format", "auto") not in FORMATS:
        raise ConfigError(f"'{key}.format' = {sample['format']!r}: expected one of {list(FORMATS)}")
    if sample.get("process") and sample.get("process_column"):
        raise ConfigError(f"'{key}': give either 'process' or 'process_column', not both")
    if sample.get("process_map") and not sample.get("process_column"):
        raise ConfigError(f"'{key}.process_map' needs '{key}.process_column'")
    fixed = sample.get("label")
    if fixed is not None and fixed not in LABELS:
        raise ConfigError(f"'{key}.label' = {fixed!r}: expected one of {list(LABELS)}")
    if fixed is None:
        if not label or not label.get("column"):
            raise ConfigError(
                f"'{key}' has no fixed 'label' and 'files.label.column' is not set: "
                "the label of its events is unknown"
            )
        if not (label.get("signal") or label.get("background")):
            raise ConfigError("'files.label' needs a 'signal' and/or 'background' list of values")
    if sample.get("weight_scale") is not None:
        _finite(sample["weight_scale"], f"{key}.weight_scale")
    xsec = sample.get("cross_section_pb")
    sumw = sample.get("sum_weights")
    if xsec is not None:
        _finite(xsec, f"{key}.cross_section_pb", positive=True)
        if luminosity_fb is None:
            raise ConfigError(
                f"'{key}.cross_section_pb' is set but 'files.luminosity_fb' is not: the weight "
                "w x sigma x L / sum_weights needs the luminosity"
            )
        if sumw is None:
            raise ConfigError(
                f"'{key}.cross_section_pb' needs '{key}.sum_weights': a number (the sum of the "
                f"generated weights) or one of {list(SUM_WEIGHTS_AUTO)}"
            )
    if sumw is not None:
        if xsec is None:
            raise ConfigError(f"'{key}.sum_weights' is set but '{key}.cross_section_pb' is not")
        if isinstance(sumw, str):
            if sumw not in SUM_WEIGHTS_AUTO:
                raise ConfigError(
                    f"'{key}.sum_weights' = {sumw!r}: expected a number or one of "
                    f"{list(SUM_WEIGHTS_AUTO)}"
                )
        else:
            if _finite(sumw, f"{key}.sum_weights") == 0:
                raise ConfigError(f"'{key}.sum_weights' = 0: the sum of weights must not be zero")
            if sample.get("test_path"):
                raise ConfigError(
                    f"'{key}.sum_weights' is a number but the sample has a 'test_path': each part "
                    f"is normalised on its own, so give one of {list(SUM_WEIGHTS_AUTO)}, or declare "
                    "the test files as a 'files.test_samples' entry with its own sum_weights"
                )
    if sample.get("selection") is None:
        return None
    return parse_expression(sample["selection"], key=f"{key}.selection")


def check_files(
    *,
    samples: Sequence[Mapping[str, Any]],
    test_samples: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str],
    label: Mapping[str, Any] | None,
    keep_columns: Sequence[str],
    luminosity_fb: float | None,
    derive: Sequence[str],
    derived_columns: Mapping[str, str] | None,
    split: Mapping[str, Any] | None,
) -> tuple[list[Expression | None], list[Expression | None], dict[str, Expression]]:
    """Every check of the mapping that needs no file; returns the parsed selections of the
    samples and test samples and the parsed derived columns.

    Raises:
        ConfigError: naming the key and what was expected.

    Example:
        >>> sel, _, derived = check_files(
        ...     samples=[{"name": "a", "paths": ["f.root"], "label": "signal",
        ...               "selection": "pid == 2"}], test_samples=[], columns={"x": "X"},
        ...     label=None, keep_columns=[], luminosity_fb=None, derive=[],
        ...     derived_columns={"y": "2 * x"}, split=None)
        >>> sorted(sel[0].columns), list(derived)
        (['pid'], ['y'])
    """
    if not samples:
        raise ConfigError("'files.samples' is empty: at least one sample is needed")
    if luminosity_fb is not None:
        _finite(luminosity_fb, "files.luminosity_fb", positive=True)
    for name in columns:
        if name in RESERVED:
            raise ConfigError(
                f"'files.columns' maps the reserved name {name!r}; use 'files.{name}' "
                "(or the sample's process/process_column) instead"
            )
    for col in keep_columns:
        if col in columns or col in (*RESERVED, EVENT_ID):
            raise ConfigError(
                f"'files.keep_columns' entry {col!r} clashes with a canonical column name"
            )
    for name in derive:
        if name not in DERIVABLE:
            raise ConfigError(
                f"'files.derive' lists {name!r}; derivable features: {list(DERIVABLE)}"
            )
        if name in columns:
            raise ConfigError(
                f"'files.derive' lists {name!r}, which 'files.columns' also maps: give one of the two"
            )
    derived = parse_columns(derived_columns, key="files.derived_columns")
    for name in derived:
        if name in columns or name in (*RESERVED, EVENT_ID) or name in derive:
            raise ConfigError(
                f"'files.derived_columns.{name}' clashes with a mapped, derived or reserved column"
            )
    groups = (("files.samples", samples), ("files.test_samples", test_samples))
    selections: list[list[Expression | None]] = [[], []]
    for g, (group, entries) in enumerate(groups):
        names = [s.get("name") for s in entries]
        for i, sample in enumerate(entries):
            selections[g].append(
                check_sample(i, sample, group=group, label=label, luminosity_fb=luminosity_fb)
            )
            if names.index(sample["name"]) != i:
                raise ConfigError(
                    f"'{group}[{i}].name' = {sample['name']!r} is already used by "
                    f"{group}[{names.index(sample['name'])}]"
                )
            if g == 1 and sample.get("test_path"):
                raise ConfigError(f"'{group}[{i}].test_path': a test sample has no test files")
    has_test_files = bool(test_samples) or any(s.get("test_path") for s in samples)
    if split and split.get("column"):
        train, test = list(split.get("train") or []), list(split.get("test") or [])
        if not train or not test:
            raise ConfigError(
                "'files.split' needs 'column', 'train' (values of the training part) and 'test'"
            )
        common = sorted({str(v) for v in train} & {str(v) for v in test})
        if common:
            raise ConfigError(f"'files.split': value(s) {common} are in both 'train' and 'test'")
        if has_test_files:
            raise ConfigError(
                "'files.split.column' and test files ('files.test_samples' or a sample's "
                "'test_path') are two ways of giving the split: use one"
            )
    return selections[0], selections[1], derived


__all__ = ["check_files", "check_sample"]
