"""Score frames of every variation, shared by the scan, fit and plot steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import DataContractError
from ..systematics import all_variations

PathLike = str | Path
SCORE_REQUIRED = ("event_id", "label", "weight", "score")


def load_variation_scores(
    systematics: Sequence[Mapping[str, Any]],
    *,
    scores: Mapping[str, PathLike],
    weights: Mapping[str, PathLike],
) -> dict[str, pd.DataFrame]:
    """Score frames for every variation: re-scored ones read directly, weight-only ones as
    the nominal scores with the variation's weights joined on event_id."""
    nominal = io.read_table(scores["nominal"], required=SCORE_REQUIRED)
    frames: dict[str, pd.DataFrame] = {"nominal": nominal}
    for variation in all_variations(systematics)[1:]:
        name = variation.name
        if variation.changes_features:
            frames[name] = io.read_table(scores[name], required=SCORE_REQUIRED)
            continue
        w = io.read_table(weights[name], required=("event_id", "weight"))
        if len(w) != len(nominal) or not np.array_equal(
            w["event_id"].to_numpy(), nominal["event_id"].to_numpy()
        ):
            w = w.set_index("event_id").reindex(nominal["event_id"])
            if w["weight"].isna().any():
                raise DataContractError(
                    f"{weights[name]}: event_ids differ from the nominal scores"
                )
        frame = nominal.copy()
        frame["weight"] = np.asarray(w["weight"], dtype=np.float64)
        frames[name] = frame
    return frames


def read_data_scores(path: PathLike | None) -> pd.DataFrame | None:
    """Scored observed data events (``fit.data.source: file``), or None for Asimov data."""
    return None if path is None else io.read_table(path, required=("score", "weight"))


def stem(path: PathLike) -> Path:
    """An output path without its suffix (plots write .png and .pdf from one stem)."""
    return Path(str(path)).with_suffix("")


__all__ = ["load_variation_scores", "read_data_scores", "stem"]
