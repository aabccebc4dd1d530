"""Step of ``workflow/rules/scan.smk``: the threshold scan of one classifier."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import io
from ..scan import default_thresholds, scan_scores
from ._frames import load_histograms
from ._registry import StepContext, step

log = logging.getLogger(__name__)


def scan_thresholds(scan_settings: Mapping[str, object]) -> np.ndarray:
    """The threshold grid of ``scan.thresholds``."""
    thr = scan_settings["thresholds"]
    assert isinstance(thr, Mapping)
    return default_thresholds(thr["start"], thr["stop"], thr["step"])


@step(
    "scan",
    uses=("scan", "systematics"),
    help="threshold scan (set: clf; in: hist, pairs; out: scan)",
)
def scan(
    ctx: StepContext,
    *,
    clf: str,
    hist: str | Path,
    pairs: str | Path | None = None,
    scan: str | Path,
) -> None:
    """Scan the score threshold for one classifier (docs/scan.md)."""
    systematics = ctx.settings["systematics"]
    frames = load_histograms(hist, pairs)
    sc = ctx.settings["scan"]
    started = time.perf_counter()
    result = scan_scores(
        frames,
        systematics=systematics,
        thresholds=scan_thresholds(sc),
        symmetrise=sc["symmetrise"],
        b_reg=sc["higgsml_b_reg"],
        min_signal=sc["min_signal"],
        min_background=sc["min_background"],
        min_neff_signal=sc["min_neff_signal"],
        min_neff_background=sc["min_neff_background"],
    )
    log.info(
        "scanned %d thresholds x %d variations in %.3f s",
        len(result),
        len(frames),
        time.perf_counter() - started,
    )
    io.write_table(result, scan, ctx.provenance(classifier=clf))
