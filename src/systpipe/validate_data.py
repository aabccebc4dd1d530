"""``systpipe validate FILE --data``: open every input and run every check ``ingest`` and
``vary`` would run, before any job, and list all problems at once.

Each file is read up to ``max_rows`` rows (the first chunk: ROOT ``entry_stop``, the first
Parquet batch, CSV ``nrows``), so a check of a large sample takes seconds. Checked: trees,
columns, label and process codes, selections and derived-column expressions, numeric columns,
missing values, normalisation, the predefined split, the ``features`` list, every systematic
applied to the events read (columns, processes, weight columns), and the alternative files of
``sample`` systematics. Values beyond the first chunk of a file (a bad label at row 10^7) are
only seen by ``ingest`` itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from .errors import SystpipeError

log = logging.getLogger(__name__)

#: Rows read per file by default.
MAX_ROWS = 100_000


@dataclass
class DataReport:
    """The outcome: problems (errors ingest or vary would raise), warnings (units findings),
    the number of events read and the time taken."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_events: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_events(
    cfg: Mapping[str, Any], df: pd.DataFrame, report: DataReport, load_alt: Any
) -> None:
    from .split import predefined_rescale, split_events
    from .systematics import VaryContext, parse_systematics
    from .variations import Recompute

    features = list(cfg["features"])
    missing = [f for f in features if f not in df.columns]
    if missing:
        report.problems.append(
            f"'features' {missing} are not columns of the event table (map them in "
            "'files.columns', or compute them with 'files.derive' / 'files.derived_columns'); "
            f"columns: {list(df.columns)}"
        )
    test = df
    try:
        _, test = split_events(
            df,
            test_fraction=cfg["split"]["test_fraction"],
            seed=0,
            rescale=predefined_rescale(cfg.get("files")),
        )
    except SystpipeError as exc:
        report.problems.append(str(exc))
    try:
        recompute = Recompute.from_files(cfg.get("files"))
    except SystpipeError as exc:
        report.problems.append(str(exc))
        recompute = None
    ctx = VaryContext(
        seed=0,
        features=tuple(f for f in features if f in df.columns),
        load_alternative=load_alt,
        recompute=recompute,
    )
    for syst in parse_systematics(cfg.get("systematics") or []):
        for direction in ("up", "down"):
            try:
                syst.apply(test, direction, ctx)
            except SystpipeError as exc:
                report.problems.append(f"systematic {syst.name!r} ({direction}): {exc}")
            if syst.kind in ("norm", "weight"):
                break  # both directions read the same columns and processes


def validate_data(
    cfg: Mapping[str, Any], *, base_dir: Path | None = None, max_rows: int | None = MAX_ROWS
) -> DataReport:
    """Open every input of the validated config ``cfg`` and collect every problem.

    Example:
        >>> validate_data({"input": {"source": "simulate"}}).ok
        True
    """
    from .ingest import alternative_kwargs, ingest, ingest_kwargs

    started = time.perf_counter()
    report = DataReport()
    if cfg["input"]["source"] != "files":
        return report
    files = cfg.get("files") or {}
    systematics = cfg.get("systematics") or []
    try:
        kwargs = ingest_kwargs(files, systematics)
    except SystpipeError as exc:
        report.problems.append(str(exc))
        return report
    collected: list[str] = []
    try:
        df = ingest(**kwargs, base_dir=base_dir, max_rows=max_rows, collect=collected)
    except SystpipeError as exc:  # the mapping itself: nothing could be read
        report.problems.append(str(exc))
        df = pd.DataFrame()
    report.problems += collected
    report.warnings += [f["message"] for f in df.attrs.get("findings", [])]
    report.n_events = len(df)

    def load_alt(paths: Any) -> pd.DataFrame:
        alt = alternative_kwargs(files, systematics, paths, "alternative")
        return ingest(**alt, base_dir=base_dir, max_rows=max_rows)

    if len(df) and not collected:
        _check_events(cfg, df, report, load_alt)
    else:
        # Some samples failed: still check the alternative files of sample systematics.
        for syst in systematics:
            if syst.get("type") == "sample":
                for direction in ("up", "down"):
                    try:
                        load_alt(syst[f"{direction}_paths"])
                    except SystpipeError as exc:
                        report.problems.append(f"systematic {syst['name']!r} ({direction}): {exc}")
    report.problems = list(dict.fromkeys(report.problems))
    report.seconds = time.perf_counter() - started
    return report


def report_data(cfg: Mapping[str, Any], out: TextIO, err: TextIO, *, config: str = "") -> int:
    """Run :func:`validate_data`, print the warnings and problems, return the exit code (0
    when there is no problem, 2 otherwise)."""
    report = validate_data(cfg)
    for warning in report.warnings:
        err.write(f"warning: {warning}\n")
    if report.problems:
        err.write(f"{config}: {len(report.problems)} data problem(s):\n")
        for i, problem in enumerate(report.problems, 1):
            err.write(f"  {i}. {problem}\n")
        return 2
    out.write(
        f"{config}: data OK ({report.n_events} events checked in {report.seconds:.2f} s, "
        f"{len(report.warnings)} warning(s))\n"
    )
    return 0


__all__ = ["MAX_ROWS", "DataReport", "report_data", "validate_data"]
