"""File-level plot steps: read scans, scores and the table, write the report's figures."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import io
from .variations import feature_variations

log = logging.getLogger(__name__)


def _systematic_names(config: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in config["systematics"]]


def _stem(outputs: Mapping[str, Any], key: str) -> Path:
    return Path(str(outputs[key])).with_suffix("")


def plots(config: Mapping[str, Any], *, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> None:
    """Summary plots (AMS, ROC: outputs ams_png, roc_png) or one classifier's plots."""
    from . import plots as draw
    from .scan import working_points

    if "ams_png" in outputs:
        scans = {k.removeprefix("scan__"): io.read_table(v) for k, v in inputs.items() if k.startswith("scan__")}
        wps = {clf: working_points(df) for clf, df in scans.items()}
        draw.plot_ams(scans, _stem(outputs, "ams_png"), working_points=wps)
        nominal = {
            m.group(1): io.read_table(v)
            for k, v in inputs.items()
            if (m := re.fullmatch(r"score__(\w+?)__nominal", k))
        }
        draw.plot_roc(nominal, _stem(outputs, "roc_png"))
        return
    scan = io.read_table(inputs["scan"])
    wps = working_points(scan)
    clf = Path(str(inputs["scan"])).stem
    draw.plot_dmu_breakdown(
        scan, wps, _systematic_names(config), _stem(outputs, "breakdown_png"), title=clf
    )
    scores = {Path(str(p)).stem: io.read_table(p) for p in inputs["scores"]}
    draw.plot_score_variations(
        scores, feature_variations(config["systematics"]), _stem(outputs, "variations_png"),
        bins=config["plots"]["score_bins"], title=clf,
    )
    row = scan.iloc[wps["min_dmu_tot"]]
    draw.plot_lumi_projection(
        row, _systematic_names(config), _stem(outputs, "projection_png"),
        alpha_range=tuple(config["plots"]["luminosity_scale"]), title=f"{clf}, minimum dmu_tot",
    )


def studies(config: Mapping[str, Any], *, outputs: Mapping[str, Any]) -> None:
    """The reference notebook's part-1 statistics studies."""
    from .studies import run_studies

    written = run_studies(Path(str(outputs["table"])).parent)
    log.info("wrote %d study files", len(written))
