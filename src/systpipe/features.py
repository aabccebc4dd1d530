"""Vectorised dilepton + MET kinematics: the derived features and their recomputation."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from .errors import DataContractError

log = logging.getLogger(__name__)

#: Columns ``recompute_derived`` may (re)write, each from the inputs listed below it:
#: m_ll (lepton pt/eta/phi, massless leptons), pt_ll (lepton pt/phi), dphi_ll (lepton phi),
#: deta_ll (lepton eta), met and met_phi (lepton pt/phi + jets_px/py + soft_px/py),
#: mt (lepton pt/phi, m_ll, met, met_phi).
DERIVED_COLUMNS: tuple[str, ...] = ("m_ll", "pt_ll", "dphi_ll", "deta_ll", "met", "met_phi", "mt")

#: Columns whose vector sum with the leptons is minus the missing transverse momentum.
MET_INPUT_COLUMNS: tuple[str, ...] = ("jets_px", "jets_py", "soft_px", "soft_py")

_JET_PT = re.compile(r"^jet\d+_pt$")


def delta_phi(phi1: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    """Azimuthal difference ``phi1 - phi2`` wrapped into ``[-pi, pi)``.

    Example:
        >>> float(delta_phi(np.array(3.0), np.array(-3.0)).round(6))
        -0.283185
        >>> float(delta_phi(np.array(0.5), np.array(0.25)))
        0.25
    """
    return np.mod(np.asarray(phi1) - np.asarray(phi2) + np.pi, 2.0 * np.pi) - np.pi


def px_py(pt: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian transverse components of ``(pt, phi)``.

    Example:
        >>> [float(v.round(12)) for v in px_py(np.array(2.0), np.array(np.pi / 2))]
        [0.0, 2.0]
    """
    pt = np.asarray(pt, dtype=np.float64)
    return pt * np.cos(phi), pt * np.sin(phi)


def invariant_mass_massless(
    pt1: np.ndarray,
    eta1: np.ndarray,
    phi1: np.ndarray,
    pt2: np.ndarray,
    eta2: np.ndarray,
    phi2: np.ndarray,
) -> np.ndarray:
    """Invariant mass of two massless particles: ``m^2 = 2 pt1 pt2 (cosh deta - cos dphi)``.

    Example:
        >>> float(invariant_mass_massless(40.0, 0.0, 0.0, 40.0, 0.0, np.pi))  # back to back
        80.0
    """
    m2 = (
        2.0
        * np.asarray(pt1)
        * np.asarray(pt2)
        * (
            np.cosh(np.asarray(eta1) - np.asarray(eta2))
            - np.cos(np.asarray(phi1) - np.asarray(phi2))
        )
    )
    return np.sqrt(np.maximum(m2, 0.0))


def transverse_mass_ww(
    m_ll: np.ndarray, ptll_x: np.ndarray, ptll_y: np.ndarray, met_x: np.ndarray, met_y: np.ndarray
) -> np.ndarray:
    """H->WW transverse mass ``sqrt((E_T^ll + MET)^2 - |pT_ll + MET|^2)``, ``E_T^ll = sqrt(pt_ll^2 + m_ll^2)``.

    Its upper edge is the Higgs mass for a dilepton + dineutrino system at rest in the transverse
    plane (the variable of the ATLAS/CMS H->WW analyses).

    Example:
        >>> float(transverse_mass_ww(0.0, 30.0, 0.0, -30.0, 0.0))  # massless, back to back
        60.0
        >>> float(transverse_mass_ww(50.0, 0.0, 0.0, 0.0, 0.0))   # pair at rest, no MET
        50.0
    """
    ptll2 = np.asarray(ptll_x) ** 2 + np.asarray(ptll_y) ** 2
    et_ll = np.sqrt(ptll2 + np.asarray(m_ll) ** 2)
    met = np.hypot(met_x, met_y)
    sx, sy = np.asarray(ptll_x) + met_x, np.asarray(ptll_y) + met_y
    mt2 = (et_ll + met) ** 2 - (sx * sx + sy * sy)
    return np.sqrt(np.maximum(mt2, 0.0))


def _has(df: pd.DataFrame, *cols: str) -> bool:
    return all(c in df.columns for c in cols)


def _f64(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=np.float64)


def recompute_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Recompute every derived column (``DERIVED_COLUMNS``) that the frame's inputs allow.

    Returns a new frame; input columns are untouched, derived ones are float64. The MET is
    rebuilt as ``-(lep1 + lep2 + jets + soft)`` only when all four of ``MET_INPUT_COLUMNS``
    are present (otherwise the existing met/met_phi are kept); ``mt`` then uses whichever
    met/met_phi the frame ends up with. So scaling the lepton, jet and soft-term columns by
    ``k`` and calling this scales m_ll, pt_ll, met and mt by exactly ``k``.

    Raises:
        DataContractError: only some of ``MET_INPUT_COLUMNS`` are present (MET would be
            rebuilt from an incomplete set of objects).

    Example:
        >>> df = pd.DataFrame({"lep1_pt": [40.0], "lep1_eta": [0.0], "lep1_phi": [0.0],
        ...                    "lep2_pt": [40.0], "lep2_eta": [0.0], "lep2_phi": [np.pi],
        ...                    "jets_px": [0.0], "jets_py": [0.0], "soft_px": [0.0], "soft_py": [10.0]})
        >>> out = recompute_derived(df)
        >>> [round(float(out[c].iloc[0]), 6) for c in ("m_ll", "pt_ll", "dphi_ll", "met")]
        [80.0, 0.0, 3.141593, 10.0]
    """
    present = [c for c in MET_INPUT_COLUMNS if c in df.columns]
    if present and len(present) != len(MET_INPUT_COLUMNS):
        missing = [c for c in MET_INPUT_COLUMNS if c not in df.columns]
        raise DataContractError(
            f"recompute_derived: MET inputs {present} present but {missing} missing; "
            f"columns present: {list(df.columns)}"
        )
    out = df.copy()
    done: list[str] = []
    has_pt_phi = _has(df, "lep1_pt", "lep1_phi", "lep2_pt", "lep2_phi")
    has_eta = _has(df, "lep1_eta", "lep2_eta")
    if has_pt_phi:
        l1x, l1y = px_py(_f64(df, "lep1_pt"), _f64(df, "lep1_phi"))
        l2x, l2y = px_py(_f64(df, "lep2_pt"), _f64(df, "lep2_phi"))
        llx, lly = l1x + l2x, l1y + l2y
        out["pt_ll"] = np.hypot(llx, lly)
        out["dphi_ll"] = np.abs(delta_phi(_f64(df, "lep1_phi"), _f64(df, "lep2_phi")))
        done += ["pt_ll", "dphi_ll"]
        if has_eta:
            out["m_ll"] = invariant_mass_massless(
                _f64(df, "lep1_pt"),
                _f64(df, "lep1_eta"),
                _f64(df, "lep1_phi"),
                _f64(df, "lep2_pt"),
                _f64(df, "lep2_eta"),
                _f64(df, "lep2_phi"),
            )
            done.append("m_ll")
        if present:
            mx = -(llx + _f64(df, "jets_px") + _f64(df, "soft_px"))
            my = -(lly + _f64(df, "jets_py") + _f64(df, "soft_py"))
            out["met"] = np.hypot(mx, my)
            out["met_phi"] = np.arctan2(my, mx)
            done += ["met", "met_phi"]
        if _has(out, "m_ll", "met", "met_phi"):
            mx, my = px_py(_f64(out, "met"), _f64(out, "met_phi"))
            out["mt"] = transverse_mass_ww(_f64(out, "m_ll"), llx, lly, mx, my)
            done.append("mt")
    if has_eta:
        out["deta_ll"] = np.abs(_f64(df, "lep1_eta") - _f64(df, "lep2_eta"))
        done.append("deta_ll")
    log.debug("recomputed derived columns %s", done)
    return out


#: Derived features ``files.derive`` can compute at ingest, with the inputs each needs.
DERIVABLE: dict[str, tuple[str, ...]] = {
    "m_ll": ("lep1_pt", "lep1_eta", "lep1_phi", "lep2_pt", "lep2_eta", "lep2_phi"),
    "pt_ll": ("lep1_pt", "lep1_phi", "lep2_pt", "lep2_phi"),
    "dphi_ll": ("lep1_pt", "lep1_phi", "lep2_pt", "lep2_phi"),
    "deta_ll": ("lep1_eta", "lep2_eta"),
    "mt": (
        "lep1_pt",
        "lep1_eta",
        "lep1_phi",
        "lep2_pt",
        "lep2_eta",
        "lep2_phi",
        "met",
        "met_phi",
    ),
}


def derive_features(df: pd.DataFrame, names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Add the derived dilepton features ``names`` (keys of :data:`DERIVABLE`) computed from
    the frame's lepton and MET columns by :func:`recompute_derived` (one implementation for
    ingest and the variations). Existing met/met_phi are never rebuilt here.

    Raises:
        DataContractError: an unknown name, or an input column is missing.

    Example:
        >>> df = pd.DataFrame({"lep1_pt": [40.0], "lep1_eta": [0.0], "lep1_phi": [0.0],
        ...                    "lep2_pt": [40.0], "lep2_eta": [1.0], "lep2_phi": [np.pi]})
        >>> out = derive_features(df, ["pt_ll", "deta_ll"])
        >>> [round(float(out[c].iloc[0]), 6) for c in ("pt_ll", "deta_ll")], "m_ll" in out
        ([0.0, 1.0], False)
    """
    unknown = [n for n in names if n not in DERIVABLE]
    if unknown:
        raise DataContractError(
            f"'files.derive': unknown feature(s) {unknown}; derivable: {list(DERIVABLE)}"
        )
    needed = sorted({c for n in names for c in DERIVABLE[n]})
    missing = [c for c in needed if c not in df.columns]
    if missing:
        by_name = {n: [c for c in DERIVABLE[n] if c in missing] for n in names}
        raise DataContractError(
            f"'files.derive' {list(names)} needs column(s) {missing} (map them in 'files.columns'): "
            f"missing per feature { ({k: v for k, v in by_name.items() if v}) }; "
            f"columns present: {list(df.columns)}"
        )
    inputs = [c for c in df.columns if c in set(needed)]
    full = recompute_derived(df[inputs])
    out = df.copy()
    for name in names:
        out[name] = full[name].to_numpy(dtype=np.float64)
    return out


def phi_partner(pt_column: str) -> str | None:
    """The azimuth column of an object's pT column (``lep1_pt`` -> ``lep1_phi``), or None.

    Example:
        >>> phi_partner("tau_pt"), phi_partner("met")
        ('tau_phi', None)
    """
    return pt_column[: -len("pt")] + "phi" if pt_column.endswith("_pt") else None


def follow_met(before: pd.DataFrame, after: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """MET follows shifted objects: ``MET -> MET - sum_i (pT_i' - pT_i)`` as vectors, over the
    shifted pT columns that have a ``_phi`` partner (needs met, met_phi; not the MET itself).

    Returns ``after`` with new met/met_phi (a copy), or ``after`` unchanged when nothing applies.

    Example:
        >>> b = pd.DataFrame({"lep1_pt": [50.0], "lep1_phi": [0.0], "met": [20.0], "met_phi": [0.0]})
        >>> a = b.assign(lep1_pt=[55.0])
        >>> round(float(follow_met(b, a, ["lep1_pt"])["met"].iloc[0]), 9)
        15.0
    """
    pairs = [
        (c, phi_partner(c))
        for c in columns
        if c != "met" and phi_partner(c) in after.columns and c in before.columns
    ]
    if not pairs or not _has(after, "met", "met_phi"):
        return after
    mx, my = px_py(_f64(after, "met"), _f64(after, "met_phi"))
    for pt, phi in pairs:
        assert phi is not None
        change = np.nan_to_num(_f64(after, pt) - _f64(before, pt))
        dx, dy = px_py(change, _f64(after, phi))
        mx, my = mx - dx, my - dy
    out = after.copy()
    out["met"] = np.hypot(mx, my)
    out["met_phi"] = np.arctan2(my, mx)
    log.debug("MET follows the shifted objects %s", [p for p, _ in pairs])
    return out


def migrate_n_jets(
    before: pd.DataFrame, after: pd.DataFrame, columns: list[str], pt_min: float
) -> pd.DataFrame:
    """Jet-count migration: ``n_jets += sum_i ([pT_i' > pt_min] - [pT_i > pt_min])`` over the
    shifted ``jet<i>_pt`` columns, so jets crossing the threshold are counted (or dropped).

    Example:
        >>> b = pd.DataFrame({"jet1_pt": [31.0, 29.5], "jet2_pt": [29.0, 0.0], "n_jets": [1, 0]})
        >>> a = b.assign(jet1_pt=b["jet1_pt"] * 1.05, jet2_pt=b["jet2_pt"] * 1.05)
        >>> migrate_n_jets(b, a, ["jet1_pt", "jet2_pt"], 30.0)["n_jets"].tolist()
        [2, 1]
    """
    jets = [c for c in columns if _JET_PT.match(c) and c in before.columns]
    if not jets or "n_jets" not in after.columns:
        return after
    n = after["n_jets"].to_numpy()
    change = np.zeros(len(after), dtype=np.int64)
    for col in jets:
        change += (np.nan_to_num(_f64(after, col)) > pt_min).astype(np.int64)
        change -= (np.nan_to_num(_f64(before, col)) > pt_min).astype(np.int64)
    out = after.copy()
    out["n_jets"] = (n + change).astype(n.dtype)
    return out


__all__ = [
    "DERIVABLE",
    "DERIVED_COLUMNS",
    "MET_INPUT_COLUMNS",
    "delta_phi",
    "derive_features",
    "follow_met",
    "invariant_mass_massless",
    "migrate_n_jets",
    "phi_partner",
    "px_py",
    "recompute_derived",
    "transverse_mass_ww",
]
