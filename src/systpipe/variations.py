"""Event-level systematic shifts: the norm, scale, smear, weight and sample transformations.

The systematic objects and the registry of kinds that calls these live in
:mod:`systpipe.systematics`; this module only transforms event tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataContractError
from .expressions import Expression, evaluate_columns, parse_columns

log = logging.getLogger(__name__)

Systematic = Mapping[str, Any]


def _sign(direction: str) -> float:
    return 1.0 if direction == "up" else -1.0


def norm_mask(events: pd.DataFrame, systematic: Systematic) -> np.ndarray:
    """Boolean mask of the events a norm systematic acts on (labels and/or processes)."""
    mask = np.ones(len(events), dtype=bool)
    if "labels" in systematic:
        wanted = {1 if lab == "signal" else 0 for lab in systematic["labels"]}
        mask &= events["label"].isin(wanted).to_numpy()
    if "processes" in systematic:
        unknown = set(systematic["processes"]) - set(events["process"].unique())
        if unknown:
            raise ConfigError(
                f"systematic {systematic['name']!r}: 'processes' {sorted(unknown)} not in the data; "
                f"processes present: {sorted(events['process'].unique())}"
            )
        mask &= events["process"].isin(systematic["processes"]).to_numpy()
    return mask


def apply_norm(events: pd.DataFrame, systematic: Systematic, direction: str) -> pd.DataFrame:
    """Multiply the targeted events' weights by ``1 +/- delta``; nothing else changes.

    Example:
        >>> ev = pd.DataFrame({"event_id": [1, 2], "label": [1, 0], "process": ["H", "WW"],
        ...                    "weight": [2.0, 4.0]})
        >>> apply_norm(ev, {"name": "sig", "type": "norm", "delta": 0.5, "labels": ["signal"]},
        ...            "down")["weight"].tolist()
        [1.0, 4.0]
    """
    factor = 1.0 + _sign(direction) * systematic["delta"]
    out = events[["event_id", "weight"]].copy()
    mask = norm_mask(events, systematic)
    out.loc[mask, "weight"] = out.loc[mask, "weight"] * factor
    return out


def _require(events: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in events.columns]
    if missing:
        raise DataContractError(
            f"{what}: column(s) {missing} not in the event table; columns present: {list(events.columns)}"
        )


@dataclass(frozen=True)
class Recompute:
    """What a feature-changing variation recomputes besides the built-in derived features
    (``files`` input): the user's derived columns, MET following the shifted objects, and the
    jet-count migration.

    Attributes:
        expressions: ``files.derived_columns``, parsed, in config order.
        met_follows: ``files.met_follows_objects``: without jet/soft-term columns, MET absorbs
            minus the change of the shifted objects' transverse momenta (pT and phi).
        jet_pt_min: ``files.jet_pt_min``: n_jets migrates when shifted ``jet<i>_pt`` cross it
            (None: no migration).
    """

    expressions: Mapping[str, Expression] = field(default_factory=dict)
    met_follows: bool = True
    jet_pt_min: float | None = None

    @classmethod
    def from_files(cls, files: Mapping[str, Any] | None) -> Recompute | None:
        """From the ``files`` config section; None for the built-in simulation.

        Example:
            >>> r = Recompute.from_files({"derived_columns": {"s": "a + b"}, "jet_pt_min": 25})
            >>> list(r.expressions), r.met_follows, r.jet_pt_min
            (['s'], True, 25.0)
        """
        if files is None:
            return None
        jet_pt_min = files.get("jet_pt_min", 30.0)
        return cls(
            expressions=parse_columns(files.get("derived_columns"), key="files.derived_columns"),
            met_follows=bool(files.get("met_follows_objects", True)),
            jet_pt_min=None if jet_pt_min is None else float(jet_pt_min),
        )

    def apply(
        self, before: pd.DataFrame, after: pd.DataFrame, shifted: Sequence[str], name: str
    ) -> pd.DataFrame:
        """Recompute everything that depends on the ``shifted`` columns (MET first, then the
        built-in derived features, n_jets, and the user's expressions in order)."""
        from .features import MET_INPUT_COLUMNS, follow_met, migrate_n_jets, recompute_derived

        out = after
        if self.met_follows and not any(c in after.columns for c in MET_INPUT_COLUMNS):
            out = follow_met(before, out, list(shifted))
        out = recompute_derived(out)
        if self.jet_pt_min is not None:
            out = migrate_n_jets(before, out, list(shifted), self.jet_pt_min)
        if self.expressions:
            values = evaluate_columns(out, self.expressions, where=f"systematic {name!r}")
            out = out.assign(**values)
        return out


def _recompute(
    before: pd.DataFrame,
    after: pd.DataFrame,
    systematic: Systematic,
    shifted: Sequence[str],
    recompute: Recompute | None,
) -> pd.DataFrame:
    from .features import recompute_derived

    if not systematic.get("recompute_derived", True):
        return after
    if recompute is None:
        return recompute_derived(after)
    return recompute.apply(before, after, shifted, str(systematic["name"]))


def apply_scale(
    events: pd.DataFrame,
    systematic: Systematic,
    direction: str,
    recompute: Recompute | None = None,
) -> pd.DataFrame:
    """Multiply energy-like columns by ``1 +/- delta`` and recompute the derived features
    (and, with ``recompute``, MET, n_jets and the user's derived columns).

    Example:
        >>> ev = pd.DataFrame({"tau_pt": [40.0], "lep_pt": [10.0], "s": [50.0], "r": [4.0]})
        >>> r = Recompute(parse_columns({"s": "tau_pt + lep_pt", "r": "tau_pt / lep_pt"}, key="d"))
        >>> out = apply_scale(ev, {"name": "tes", "delta": 0.5, "columns": ["tau_pt"]}, "up", r)
        >>> out[["tau_pt", "s", "r"]].iloc[0].tolist()
        [60.0, 70.0, 6.0]
    """
    columns = list(systematic["columns"]) + list(systematic.get("linear_columns", []))
    _require(events, columns, f"systematic {systematic['name']!r}")
    factor = 1.0 + _sign(direction) * systematic["delta"]
    out = events.copy()
    for col in columns:
        out[col] = out[col].to_numpy(dtype=np.float64) * factor
    return _recompute(events, out, systematic, columns, recompute)


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a counter-based hash, so noise depends only on (key, event_id)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def event_normal(event_id: np.ndarray, key: int) -> np.ndarray:
    """Standard-normal numbers that are a pure function of ``(key, event_id)``.

    The same event always gets the same number, whatever the row order or chunking.

    Example:
        >>> a = event_normal(np.array([5, 7, 9]), key=1)
        >>> b = event_normal(np.array([9, 5, 7]), key=1)
        >>> bool(np.array_equal(a, b[[1, 2, 0]]))
        True
    """
    ids = np.asarray(event_id, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        base = _splitmix64(ids ^ _splitmix64(np.full_like(ids, np.uint64(key))))
        h1, h2 = _splitmix64(base), _splitmix64(base ^ np.uint64(0xD1B54A32D192ED03))
    # 53-bit uniforms in (0, 1]; Box-Muller needs u1 > 0.
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _stable_key(seed: int, *parts: str) -> int:
    import hashlib

    blob = ":".join([str(seed), *parts]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")


def apply_smear(
    events: pd.DataFrame,
    systematic: Systematic,
    direction: str,
    *,
    seed: int,
    recompute: Recompute | None = None,
) -> pd.DataFrame:
    """Resolution systematic: ``x -> x (1 +/- delta z)`` with z a per-event seeded normal.

    Up and down use the same z, so they are mirror images of each other around nominal.
    """
    columns = list(systematic["columns"])
    _require(events, columns, f"systematic {systematic['name']!r}")
    out = events.copy()
    ids = events["event_id"].to_numpy()
    for col in columns:
        z = event_normal(ids, _stable_key(seed, systematic["name"], col))
        out[col] = out[col].to_numpy(dtype=np.float64) * (
            1.0 + _sign(direction) * systematic["delta"] * z
        )
    return _recompute(events, out, systematic, columns, recompute)


def apply_weight(events: pd.DataFrame, systematic: Systematic, direction: str) -> pd.DataFrame:
    """Per-event weight systematic: the up/down column holds a factor relative to nominal."""
    column = systematic[f"{direction}_column"]
    _require(events, [column], f"systematic {systematic['name']!r}")
    out = events[["event_id", "weight"]].copy()
    out["weight"] = out["weight"].to_numpy() * events[column].to_numpy(dtype=np.float64)
    return out


def apply_sample(
    events: pd.DataFrame,
    systematic: Systematic,
    direction: str,
    *,
    load_alternative: Callable[[Sequence[str]], pd.DataFrame],
) -> pd.DataFrame:
    """Alternative-sample systematic: the processes present in the alternative files replace
    the nominal events of those processes; every other process stays nominal."""
    alt = load_alternative(systematic[f"{direction}_paths"])
    replaced = set(alt["process"].unique())
    keep = events[~events["process"].isin(replaced)]
    out = pd.concat([keep, alt[[c for c in events.columns if c in alt.columns]]], ignore_index=True)
    return out.sort_values("event_id", kind="stable").reset_index(drop=True)


__all__ = [
    "Recompute",
    "apply_norm",
    "apply_sample",
    "apply_scale",
    "apply_smear",
    "apply_weight",
    "event_normal",
    "norm_mask",
]
