"""Post-processing of systematic templates before the fit: symmetrisation, smoothing, pruning.

The tools of the field (TRExFitter, cabinetry, CMS Combine) treat these as first-class steps:
shape templates from re-scored variations are often dominated by MC noise, and an unsmoothed,
unpruned noise template enters the fit as a spurious constraint or pull. This module

* symmetrises a pair of up/down templates (:func:`symmetrise_variation`, TRExFitter's modes);
* smooths a variation with ROOT's "353QH, twice" applied to the ratio variation/nominal
  (:func:`smooth_353qh_twice`, :func:`smooth_variation`, cabinetry's recipe);
* splits a variation into a normalisation and a shape part (:func:`split_norm_shape`);
* tests the shift against its MC uncertainty (:func:`shift_significance`, from the
  ``shift_sumw2`` of :class:`~systpipe.templates.Templates`);
* decides per sample whether the norm and shape parts are kept (:func:`prune_decision`);
* applies all of it to the templates of every non-rate systematic (:func:`postprocess`).

See docs/statistics.md, "Template post-processing and model checks".
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

# chi2.sf is scipy.special.chdtrc(df, x) (scipy.stats._continuous_distns); importing
# scipy.stats for it would cost every template-building job 0.6 s
from scipy.special import chdtrc

from ..errors import ConfigError, DataContractError, ModelError
from ..systematics import parse_systematics, variation_name
from ..templates import Templates
from .smoothing import smooth_353qh_twice, smooth_variation

log = logging.getLogger(__name__)

SYMMETRISE_MODES = ("half_difference", "two_sided", "one_sided", "max", "absmean")
SMOOTHING_ALGORITHMS = ("none", "353qh_twice")
#: Defaults of the ``fit.templates`` config section.
DEFAULTS: Mapping[str, Any] = {
    "smoothing": "none",
    # the linear part of a pair: on the default sample the per-bin asymmetry of the detector
    # templates is mostly MC noise, and kept as is it makes the likelihood non-linear enough
    # that challenge-mode profile coverage drops to 0.636 +/- 0.009 (0.680 symmetrised)
    "symmetrise": "half_difference",
    "prune_norm": 0.005,
    "prune_shape": 0.005,
    "prune_significance": 0.05,
    "split_norm_shape": False,
}


# ------------------------------------------------------------------- symmetrisation


def symmetrise_variation(
    nominal: np.ndarray, up: np.ndarray, down: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrise an up/down pair (TRExFitter's modes), per bin with u = up - nom, d = down - nom:

    * ``half_difference``: h = (u - d)/2, up = nom + h, down = nom - h (the pair's linear
      part; TRExFitter's TWOSIDED symmetrisation);
    * ``two_sided``: unchanged;
    * ``one_sided``: down = 2 nom - up (the up variation mirrored);
    * ``max``: m = max(|u|, |d|), the larger variation mirrored: up = nom + s m,
      down = nom - s m with s the sign of u if |u| >= |d|, else minus the sign of d;
    * ``absmean``: m = (|u| + |d|)/2, up = nom + s m, down = nom - s m with s the sign of u
      (minus the sign of d where u = 0).

    Example:
        >>> nom, up, dn = np.array([10.0, 10.0]), np.array([12.0, 9.0]), np.array([11.0, 7.0])
        >>> [a.tolist() for a in symmetrise_variation(nom, up, dn, "max")]
        [[12.0, 13.0], [8.0, 7.0]]
        >>> [a.tolist() for a in symmetrise_variation(nom, up, dn, "absmean")]
        [[11.5, 8.0], [8.5, 12.0]]
        >>> [a.tolist() for a in symmetrise_variation(nom, up, dn, "half_difference")]
        [[10.5, 11.0], [9.5, 9.0]]
    """
    nom, u_t, d_t = (np.asarray(a, dtype=np.float64) for a in (nominal, up, down))
    if not nom.shape == u_t.shape == d_t.shape:
        raise ValueError(f"shapes differ: nominal {nom.shape}, up {u_t.shape}, down {d_t.shape}")
    if mode == "two_sided":
        return u_t.copy(), d_t.copy()
    if mode == "one_sided":
        return u_t.copy(), 2.0 * nom - u_t
    u, d = u_t - nom, d_t - nom
    if mode == "half_difference":
        return nom + 0.5 * (u - d), nom - 0.5 * (u - d)
    if mode == "max":
        take_up = np.abs(u) >= np.abs(d)
        m = np.where(take_up, np.abs(u), np.abs(d))
        sign = np.where(take_up, np.sign(u), -np.sign(d))
    elif mode == "absmean":
        m = 0.5 * (np.abs(u) + np.abs(d))
        sign = np.where(u != 0, np.sign(u), -np.sign(d))
    else:
        raise ConfigError(
            f"fit.templates.symmetrise must be one of {list(SYMMETRISE_MODES)}, got {mode!r}"
        )
    return nom + sign * m, nom - sign * m


def _symmetrised_variance(
    mode: str, up: np.ndarray | float, down: np.ndarray | float
) -> tuple[Any, Any]:
    """MC variance of the symmetrised shifts: one_sided -> the up's twice; half_difference, max
    and absmean -> per bin max(var_up, var_down), an upper bound of the variance of (u - d)/2
    and of (|u| + |d|)/2."""
    if mode == "two_sided":
        return up, down
    if mode == "one_sided":
        return up, up
    worst = np.maximum(up, down)
    return worst, worst


# ------------------------------------------------------------------- norm and shape


def split_norm_shape(
    nominal: np.ndarray, up: np.ndarray, down: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Split a variation into its normalisation and its shape.

    hi = sum(up)/sum(nom), lo = sum(down)/sum(nom) (normsys factors), and the shape parts
    up_shape = up sum(nom)/sum(up), down_shape likewise (normalised to the nominal total), so
    that up = hi up_shape (to rounding).

    Example:
        >>> hi, lo, us, ds = split_norm_shape(np.array([5.0, 5.0]), np.array([6.0, 5.0]),
        ...                                   np.array([4.0, 4.0]))
        >>> hi, lo, us.round(6).tolist(), ds.tolist()
        (1.1, 0.8, [5.454545, 4.545455], [5.0, 5.0])
    """
    nom, u, d = (np.asarray(a, dtype=np.float64) for a in (nominal, up, down))
    total = float(nom.sum())
    if not total > 0:
        raise ModelError(f"split_norm_shape: nominal total {total} must be positive")
    tu, td = float(u.sum()), float(d.sum())
    if not (tu > 0 and td > 0):
        raise ModelError(
            f"split_norm_shape: up total {tu} and down total {td} must be positive "
            "(an empty variation has no shape)"
        )
    return tu / total, td / total, u * (total / tu), d * (total / td)


def max_shape_difference(nominal: np.ndarray, variation: np.ndarray) -> float:
    """Largest relative difference max_j |v_j sum(nom)/sum(v) - nom_j| / nom_j over the bins
    with nom_j > 0 (TRExFitter's MAXBIN shape criterion); inf for an empty variation.

    Example:
        >>> max_shape_difference(np.array([10.0, 10.0]), np.array([12.0, 8.0]))
        0.2
    """
    nom = np.asarray(nominal, dtype=np.float64)
    var = np.asarray(variation, dtype=np.float64)
    total, vtotal = float(nom.sum()), float(var.sum())
    on = nom > 0
    if not on.any():
        return 0.0
    if not vtotal > 0:
        return math.inf
    shape = var * (total / vtotal)
    return float(np.max(np.abs(shape[on] - nom[on]) / nom[on]))


class ShiftSignificance(NamedTuple):
    """The test of "the shift variation - nominal is MC noise" (:func:`shift_significance`)."""

    chi2: float
    ndof: int
    p_value: float
    z: np.ndarray


def shift_significance(
    nominal: np.ndarray, variation: np.ndarray, shift_sumw2: np.ndarray
) -> ShiftSignificance:
    """chi2 = sum_j shift_j^2 / var_j of the shift shift_j = variation_j - nominal_j against its
    MC variance var_j (``Templates.shift_sumw2``), over the bins with var_j > 0; ndof = their
    number; p = P(chi2_ndof >= chi2); z_j = shift_j / sqrt(var_j) (0 where var_j = 0).

    A bin with var_j = 0 but a nonzero shift (no MC noise can make it) makes chi2 infinite and
    p = 0. ndof = 0 gives p = 1.

    Example:
        >>> r = shift_significance(np.array([10.0, 10.0]), np.array([12.0, 9.0]),
        ...                        np.array([4.0, 1.0]))
        >>> r.chi2, r.ndof, round(r.p_value, 6), r.z.tolist()
        (2.0, 2, 0.367879, [1.0, -1.0])
    """
    nom, var, v2 = (np.asarray(a, dtype=np.float64) for a in (nominal, variation, shift_sumw2))
    if not nom.shape == var.shape == v2.shape:
        raise ValueError(
            f"shapes differ: nominal {nom.shape}, variation {var.shape}, shift_sumw2 {v2.shape}"
        )
    if np.any(v2 < 0) or not np.all(np.isfinite(v2)):
        raise ValueError(f"shift_sumw2 must be finite and >= 0, got {v2.tolist()}")
    shift = var - nom
    on = v2 > 0
    z = np.zeros_like(shift)
    z[on] = shift[on] / np.sqrt(v2[on])
    exact = (~on) & (shift != 0)
    ndof = int(on.sum() + exact.sum())
    if exact.any():
        return ShiftSignificance(math.inf, ndof, 0.0, z)
    chi2 = float(np.sum(z[on] ** 2))
    p = 1.0 if ndof == 0 else float(chdtrc(ndof, chi2))
    return ShiftSignificance(chi2, ndof, p, z)


def _norm_p_value(shift: float, variance: float) -> float:
    """Two-sided p-value of a total-yield shift against its MC variance."""
    if variance > 0:
        return float(chdtrc(1, shift * shift / variance))
    return 0.0 if shift != 0 else 1.0


@dataclass(frozen=True)
class PruneDecision:
    """What :func:`prune_decision` keeps of one sample's systematic, and why.

    ``p_*`` are None when no MC variance of the shift was given.
    """

    keep_norm: bool
    keep_shape: bool
    hi: float
    lo: float
    max_shape: float
    p_shape_up: float | None
    p_shape_down: float | None
    p_norm_up: float | None
    p_norm_down: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able fields (non-finite numbers as None)."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def prune_decision(
    nominal: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    *,
    norm_threshold: float,
    shape_threshold: float,
    shift_sumw2: tuple[np.ndarray, np.ndarray] | None = None,
    significance: float = 0.05,
    shift_norm_sumw2: tuple[float, float] | None = None,
    unsmoothed: tuple[np.ndarray, np.ndarray] | None = None,
) -> PruneDecision:
    """Keep or drop the norm and shape parts of one sample's systematic (TRExFitter's
    SystPruningNorm and SystPruningShape with the MAXBIN criterion, plus an MC-noise test).

    * norm part dropped if |hi - 1| < norm_threshold and |lo - 1| < norm_threshold, or if
      ``shift_norm_sumw2`` (MC variances of the up and down total-yield shifts) is given and
      both total shifts are insignificant: P(chi2_1 >= shift^2/var) > ``significance``;
    * shape part dropped if :func:`max_shape_difference` of up and of down are both below
      ``shape_threshold``, or if ``shift_sumw2`` (per-bin MC variances of the up and down
      shifts) is given and both :func:`shift_significance` p-values exceed ``significance``.

    The significance tests use ``unsmoothed`` (the templates before smoothing, whose noise
    ``shift_sumw2`` describes) when given, else ``up`` and ``down``. A sample without nominal
    yield keeps nothing.

    Example:
        >>> d = prune_decision(np.array([10.0, 10.0]), np.array([10.02, 10.02]),
        ...                    np.array([9.9, 10.1]), norm_threshold=0.005, shape_threshold=0.005)
        >>> d.keep_norm, d.keep_shape, d.reason
        (False, True, 'norm: |hi - 1| = 0.002, |lo - 1| = 0 < 0.005')
    """
    nom, u, d = (np.asarray(a, dtype=np.float64) for a in (nominal, up, down))
    total = float(nom.sum())
    if not total > 0:
        return PruneDecision(
            False, False, 1.0, 1.0, 0.0, None, None, None, None, "no nominal yield"
        )
    hi, lo = float(u.sum()) / total, float(d.sum()) / total
    if unsmoothed is None:
        raw_u, raw_d = u, d
    else:
        raw_u = np.asarray(unsmoothed[0], dtype=np.float64)
        raw_d = np.asarray(unsmoothed[1], dtype=np.float64)
    reasons: list[str] = []
    keep_norm = True
    if not (hi > 0 and lo > 0):
        reasons.append("norm: kept (an empty variation cannot be normalised)")
    elif abs(hi - 1.0) < norm_threshold and abs(lo - 1.0) < norm_threshold:
        keep_norm = False
        reasons.append(
            f"norm: |hi - 1| = {abs(hi - 1.0):.3g}, |lo - 1| = {abs(lo - 1.0):.3g} < {norm_threshold:g}"
        )
    p_norm_up = p_norm_down = None
    if shift_norm_sumw2 is not None and hi > 0 and lo > 0:
        p_norm_up = _norm_p_value(float(raw_u.sum()) - total, float(shift_norm_sumw2[0]))
        p_norm_down = _norm_p_value(float(raw_d.sum()) - total, float(shift_norm_sumw2[1]))
        if keep_norm and p_norm_up > significance and p_norm_down > significance:
            keep_norm = False
            reasons.append(
                f"norm: MC noise (p = {p_norm_up:.3g}, {p_norm_down:.3g} > {significance:g})"
            )
    max_shape = max(max_shape_difference(nom, u), max_shape_difference(nom, d))
    keep_shape = True
    if max_shape < shape_threshold:
        keep_shape = False
        reasons.append(f"shape: max relative difference {max_shape:.3g} < {shape_threshold:g}")
    p_up = p_down = None
    if shift_sumw2 is not None:
        p_up = shift_significance(nom, raw_u, shift_sumw2[0]).p_value
        p_down = shift_significance(nom, raw_d, shift_sumw2[1]).p_value
        if keep_shape and p_up > significance and p_down > significance:
            keep_shape = False
            reasons.append(f"shape: MC noise (p = {p_up:.3g}, {p_down:.3g} > {significance:g})")
    return PruneDecision(
        keep_norm,
        keep_shape,
        hi,
        lo,
        max_shape,
        p_up,
        p_down,
        p_norm_up,
        p_norm_down,
        "; ".join(reasons) or "kept",
    )


def apply_decision(
    nominal: np.ndarray, up: np.ndarray, down: np.ndarray, decision: PruneDecision
) -> tuple[np.ndarray, np.ndarray]:
    """The up/down templates with the dropped parts removed: no norm -> each normalised to the
    nominal total; no shape -> nominal times hi and lo; neither -> the nominal."""
    nom = np.asarray(nominal, dtype=np.float64)
    if not decision.keep_norm and not decision.keep_shape:
        return nom.copy(), nom.copy()
    if not decision.keep_shape:
        return nom * decision.hi, nom * decision.lo
    if not decision.keep_norm:
        _, _, us, ds = split_norm_shape(nom, up, down)
        return us, ds
    return np.array(up, dtype=np.float64), np.array(down, dtype=np.float64)


def pyhf_modifiers(
    name: str, nominal: np.ndarray, up: np.ndarray, down: np.ndarray, *, split: bool
) -> list[dict[str, Any]]:
    """pyhf modifiers of one sample's systematic: a ``histosys`` (norm and shape in one), or with
    ``split`` a ``normsys`` (hi, lo) plus a ``histosys`` of the shape parts, both named ``name``
    (one nuisance parameter, as HistFactory's OverallSys + HistoSys). Parts without effect are
    left out.

    Example:
        >>> [m["type"] for m in pyhf_modifiers("k", np.array([5.0, 5.0]), np.array([6.0, 6.0]),
        ...                                     np.array([4.0, 4.0]), split=True)]
        ['normsys']
    """
    nom, u, d = (np.asarray(a, dtype=np.float64) for a in (nominal, up, down))
    tol = 1e-12 * max(float(np.abs(nom).max(initial=0.0)), 1e-300)

    def differs(a: np.ndarray) -> bool:
        return bool(np.abs(a - nom).max(initial=0.0) > tol)

    if not split:
        if not (differs(u) or differs(d)):
            return []
        return [
            {
                "name": name,
                "type": "histosys",
                "data": {"hi_data": u.tolist(), "lo_data": d.tolist()},
            }
        ]
    hi, lo, us, ds = split_norm_shape(nom, u, d)
    mods: list[dict[str, Any]] = []
    if abs(hi - 1.0) > 1e-12 or abs(lo - 1.0) > 1e-12:
        mods.append({"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}})
    if differs(us) or differs(ds):
        mods.append(
            {
                "name": name,
                "type": "histosys",
                "data": {"hi_data": us.tolist(), "lo_data": ds.tolist()},
            }
        )
    return mods


# ------------------------------------------------------------------------ the driver


def template_settings(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``fit.templates`` settings with defaults filled in; a ConfigError names a bad key."""
    cfg = dict(DEFAULTS)
    given = dict(config or {})
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown key(s) fit.templates.{unknown}; expected {sorted(DEFAULTS)}")
    cfg.update(given)
    if cfg["smoothing"] not in SMOOTHING_ALGORITHMS:
        raise ConfigError(
            f"fit.templates.smoothing must be one of {list(SMOOTHING_ALGORITHMS)}, got {cfg['smoothing']!r}"
        )
    if cfg["symmetrise"] not in SYMMETRISE_MODES:
        raise ConfigError(
            f"fit.templates.symmetrise must be one of {list(SYMMETRISE_MODES)}, got {cfg['symmetrise']!r}"
        )
    for key in ("prune_norm", "prune_shape", "prune_significance"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value:
            raise ConfigError(f"fit.templates.{key} must be a number >= 0, got {value!r}")
    if cfg["prune_significance"] > 1:
        raise ConfigError(
            f"fit.templates.prune_significance must be <= 1, got {cfg['prune_significance']!r}"
        )
    if not isinstance(cfg["split_norm_shape"], bool):
        raise ConfigError(
            f"fit.templates.split_norm_shape must be true or false, got {cfg['split_norm_shape']!r}"
        )
    return cfg


def _variation(templates: Templates, name: str, systematic: str) -> np.ndarray:
    try:
        return templates.variations[name]
    except KeyError:
        raise DataContractError(
            f"templates lack variation {name!r} of systematic {systematic!r}; "
            f"variations present: {sorted(templates.variations)}"
        ) from None


def postprocess(
    templates: Templates,
    systematics: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any] | None = None,
) -> tuple[Templates, dict[str, Any]]:
    """Symmetrise, smooth and prune the templates of every non-rate systematic.

    Per systematic whose kind is not linearisable (scale, smear, sample, weight; ``norm`` is
    never touched) and per sample with a nominal yield, in this order:

    1. symmetrisation (``symmetrise``, :func:`symmetrise_variation`);
    2. smoothing (``smoothing: 353qh_twice``, :func:`smooth_variation`): the up and down
       templates separately when two-sided, else the up template, the down one mirrored again
       (so both totals and the symmetry are exact);
    3. pruning (:func:`prune_decision` with ``prune_norm``, ``prune_shape`` and
       ``prune_significance``; the MC-noise tests use the templates' ``shift_sumw2`` and
       ``shift_norm_sumw2`` when present, on the unsmoothed shifts), then
       :func:`apply_decision`.

    ``shift_sumw2`` is left as it was (the MC variance of the raw shifts).

    Args:
        templates: from :func:`systpipe.templates.build_templates`.
        systematics: the config list (or :class:`~systpipe.systematics.Systematic` objects).
        config: the ``fit.templates`` section (:data:`DEFAULTS` for missing keys).

    Returns:
        The new templates and a JSON-able record: ``settings``, ``untouched`` (rate
        systematics) and ``entries``, one per (systematic, sample) with what was done and why.
    """
    cfg = template_settings(config)
    mode, smoothing = cfg["symmetrise"], cfg["smoothing"]
    variations = {k: v.copy() for k, v in templates.variations.items()}
    entries: list[dict[str, Any]] = []
    untouched: list[str] = []
    for syst in parse_systematics(systematics):
        if syst.linearisable:
            untouched.append(syst.name)
            continue
        up_name, dn_name = variation_name(syst.name, "up"), variation_name(syst.name, "down")
        up_all, dn_all = (
            _variation(templates, up_name, syst.name),
            _variation(templates, dn_name, syst.name),
        )
        for s, sample in enumerate(templates.samples):
            nom = templates.nominal[s]
            entry: dict[str, Any] = {"systematic": syst.name, "sample": sample}
            if not float(nom.sum()) > 0:
                entries.append({**entry, "action": "unchanged", "reason": "no nominal yield"})
                continue
            up, dn = symmetrise_variation(nom, up_all[s], dn_all[s], mode)
            raw = (up, dn)
            smoothed = False
            if smoothing == "353qh_twice":
                up, smoothed = smooth_variation(nom, up)
                if mode == "two_sided":
                    dn, smoothed_dn = smooth_variation(nom, dn)
                    smoothed = smoothed and smoothed_dn
                else:
                    dn = 2.0 * nom - up
            shift_sumw2 = shift_norm = None
            if up_name in templates.shift_sumw2 and dn_name in templates.shift_sumw2:
                shift_sumw2 = _symmetrised_variance(
                    mode, templates.shift_sumw2[up_name][s], templates.shift_sumw2[dn_name][s]
                )
            if up_name in templates.shift_norm_sumw2 and dn_name in templates.shift_norm_sumw2:
                shift_norm = _symmetrised_variance(
                    mode,
                    float(templates.shift_norm_sumw2[up_name][s]),
                    float(templates.shift_norm_sumw2[dn_name][s]),
                )
            decision = prune_decision(
                nom,
                up,
                dn,
                norm_threshold=float(cfg["prune_norm"]),
                shape_threshold=float(cfg["prune_shape"]),
                shift_sumw2=shift_sumw2,
                significance=float(cfg["prune_significance"]),
                shift_norm_sumw2=shift_norm,
                unsmoothed=raw,
            )
            final_up, final_dn = apply_decision(nom, up, dn, decision)
            variations[up_name][s], variations[dn_name][s] = final_up, final_dn
            entry.update(
                action="processed",
                symmetrised=mode,
                smoothed=smoothed,
                smoothing=smoothing,
                **decision.as_dict(),
            )
            if (
                cfg["split_norm_shape"]
                and decision.keep_norm
                and decision.hi > 0
                and decision.lo > 0
            ):
                hi, lo, _, _ = split_norm_shape(nom, final_up, final_dn)
                entry["normsys"] = {"hi": hi, "lo": lo}
            entries.append(entry)
            log.info(
                "templates %s/%s: %s, smoothed %s: %s",
                syst.name,
                sample,
                mode,
                smoothed,
                decision.reason,
            )
    record = {"settings": cfg, "untouched": untouched, "entries": entries}
    return dataclasses.replace(templates, variations=variations), record


__all__ = [
    "DEFAULTS",
    "SMOOTHING_ALGORITHMS",
    "SYMMETRISE_MODES",
    "PruneDecision",
    "ShiftSignificance",
    "apply_decision",
    "max_shape_difference",
    "postprocess",
    "prune_decision",
    "pyhf_modifiers",
    "shift_significance",
    "smooth_353qh_twice",
    "smooth_variation",
    "split_norm_shape",
    "symmetrise_variation",
    "template_settings",
]
