"""Units of energy-like columns: conversion to GeV and a sanity check of the result.

The event table holds energies and momenta in GeV. ``files.units`` declares the unit of each
canonical column (``MeV`` columns are divided by 1000; ``files.mev_to_gev`` is the older
spelling). After conversion, :func:`check_units` looks at the median of the non-zero values of
every energy-like column (names with a ``pt``, ``met``, ``e``, ``energy``, ``et``, ``mt``, ``ht``
or ``mass`` part, or starting with ``m_``): a median above :data:`MEV_LIKE_GEV` GeV looks like
MeV in a GeV slot, one below :data:`GEV_LIKE_GEV` GeV like GeV divided by 1000. Negative values
of such a column (often an undeclared sentinel such as -7) are reported too. Findings are
logged as warnings and returned; they never change the data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError

log = logging.getLogger(__name__)

UNITS = {"GeV": 1.0, "MeV": 1e-3, "TeV": 1e3}
#: Median (GeV) above which an energy-like column looks like MeV.
MEV_LIKE_GEV = 2000.0
#: Median (GeV) below which an energy-like column looks like GeV divided by 1000.
GEV_LIKE_GEV = 0.2
_ENERGY_TOKENS = {"pt", "met", "e", "energy", "et", "mt", "ht", "mass", "sumet"}
_NOT_ENERGY_TOKENS = {"phi", "eta", "ratio", "frac", "fraction", "sig", "significance", "n", "id"}


def is_energy_like(name: str) -> bool:
    """True for energy-like canonical names.

    Example:
        >>> [is_energy_like(c) for c in ("lep1_pt", "met", "met_phi", "m_ll", "jet1_e", "n_jets",
        ...                              "pt_ratio", "lep1_eta", "mt", "energy")]
        [True, True, False, True, True, False, False, False, True, True]
    """
    tokens = name.lower().split("_")
    if _NOT_ENERGY_TOKENS & set(tokens):
        return False
    return bool(_ENERGY_TOKENS & set(tokens)) or tokens[0] == "m" and len(tokens) > 1


def unit_factors(
    units: Mapping[str, str] | None, mev_to_gev: Any, columns: Mapping[str, str]
) -> dict[str, float]:
    """Canonical column -> factor to GeV, from ``files.units`` and ``files.mev_to_gev``.

    Example:
        >>> unit_factors({"met": "MeV", "lep1_pt": "GeV"}, ["jet1_pt"],
        ...              {"met": "MET", "lep1_pt": "pt", "jet1_pt": "j"})
        {'met': 0.001, 'lep1_pt': 1.0, 'jet1_pt': 0.001}
    """
    mapped = sorted(c for c in columns if c != "event_id")
    out: dict[str, float] = {}
    for col, unit in (units or {}).items():
        if col not in columns or col == "event_id":
            raise ConfigError(
                f"'files.units' lists {col!r}, which is not a column mapped in 'files.columns' {mapped}"
            )
        if unit not in UNITS:
            raise ConfigError(f"'files.units.{col}' = {unit!r}: expected one of {list(UNITS)}")
        out[col] = UNITS[unit]
    for col in mev_to_gev or ():
        if col not in columns or col == "event_id":
            raise ConfigError(
                f"'files.mev_to_gev' lists {col!r}, which is not a feature mapped in 'files.columns' "
                f"{mapped}"
            )
        if out.get(col, UNITS["MeV"]) != UNITS["MeV"]:
            raise ConfigError(f"'files.mev_to_gev' and 'files.units' disagree on {col!r}")
        out[col] = UNITS["MeV"]
    return out


def check_units(
    frame: pd.DataFrame, units: Mapping[str, float] | None = None, *, where: str = ""
) -> list[dict[str, Any]]:
    """Sanity findings on the energy-like columns of ``frame`` (already in GeV).

    Each finding is ``{"severity": "warning", "column", "check", "median_gev", "message"}``;
    every one is also logged with ``logging.warning``.

    Example:
        >>> df = pd.DataFrame({"lep1_pt": [41000.0, 52000.0, 38000.0], "met": [30.0, 40.0, 20.0]})
        >>> [f["column"] for f in check_units(df)]
        ['lep1_pt']
    """
    units = units or {}
    place = f"{where}: " if where else ""
    findings: list[dict[str, Any]] = []
    for col in frame.columns:
        if not is_energy_like(str(col)) or frame[col].dtype.kind not in "iuf":
            continue
        values = frame[col].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        nonzero = np.abs(finite[finite != 0])
        declared = "MeV" if units.get(col) == UNITS["MeV"] else "GeV"
        if nonzero.size:
            median = float(np.median(nonzero))
            message = None
            if median > MEV_LIKE_GEV:
                message = (
                    f"{place}energy-like column {col!r} has a median of {median:.6g} GeV after "
                    f"conversion (declared {declared}): it looks like MeV in a GeV slot; set "
                    f"'files.units.{col}: MeV'"
                )
            elif median < GEV_LIKE_GEV:
                message = (
                    f"{place}energy-like column {col!r} has a median of {median:.6g} GeV after "
                    f"conversion (declared {declared}): it looks like GeV divided by 1000; set "
                    f"'files.units.{col}: GeV'"
                )
            if message:
                findings.append(
                    {
                        "severity": "warning",
                        "column": str(col),
                        "check": "units",
                        "median_gev": median,
                        "message": message,
                    }
                )
        negative = finite[finite < 0]
        if negative.size and not str(col).startswith(("d", "delta")):
            common = pd.Series(negative).mode().iloc[0]
            findings.append(
                {
                    "severity": "warning",
                    "column": str(col),
                    "check": "negative",
                    "median_gev": float(np.median(nonzero)) if nonzero.size else 0.0,
                    "message": (
                        f"{place}energy-like column {col!r} has {negative.size} negative value(s) "
                        f"(most often {common:g}); declare a sentinel in 'files.missing_values' if "
                        "it means missing"
                    ),
                }
            )
    for finding in findings:
        log.warning("%s", finding["message"])
    return findings


__all__ = ["GEV_LIKE_GEV", "MEV_LIKE_GEV", "UNITS", "check_units", "is_energy_like", "unit_factors"]
