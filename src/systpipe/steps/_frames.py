"""Score frames of every variation, shared by the scan, fit and plot steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import io
from ..errors import DataContractError
from ..histograms import BinnedFrames
from ..systematics import all_variations

PathLike = str | Path


def with_weight_variations(
    systematics: Sequence[Mapping[str, Any]],
    scored: Mapping[str, pd.DataFrame],
    weights: Mapping[str, PathLike],
) -> dict[str, pd.DataFrame]:
    """Per-event score frames of every variation: the re-scored ones as given (``scored``
    holds nominal and every feature-changing variation), weight-only ones as the nominal
    scores with the variation's weights (``weights``: variation -> file) joined on event_id."""
    nominal = scored["nominal"]
    frames: dict[str, pd.DataFrame] = {"nominal": nominal}
    for variation in all_variations(systematics)[1:]:
        name = variation.name
        if variation.changes_features:
            frames[name] = scored[name]
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
        frames[name] = nominal.assign(weight=np.asarray(w["weight"], dtype=np.float64))
    return frames


def load_histograms(hist: PathLike, pairs: PathLike | None = None) -> BinnedFrames:
    """The merged fine histograms of one classifier (the ``merge_histograms`` rule's outputs)
    as :class:`systpipe.histograms.BinnedFrames`; without ``pairs`` no shift MC errors."""
    from ..histograms import read_merged

    return read_merged(hist, pairs)


def read_data_scores(path: PathLike | None) -> pd.DataFrame | None:
    """Scored observed data events (``fit.data.source: file``), or None for Asimov data."""
    return None if path is None else io.read_table(path, required=("score", "weight"))


def stem(path: PathLike) -> Path:
    """An output path without its suffix (plots write .png and .pdf from one stem)."""
    return Path(str(path)).with_suffix("")


__all__ = [
    "load_histograms",
    "read_data_scores",
    "stem",
    "with_weight_variations",
]
