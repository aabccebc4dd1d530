"""Checks of a HistFactory workspace before it is fitted, after CMS Combine's ValidateDatacards.

:func:`check_workspace` reads a pyhf workspace (and optionally the templates it was built from)
and returns findings, one dict per problem:

=====================  ========  ==========================================================
check                  severity  fires when
=====================  ========  ==========================================================
same_sign              warning   up and down move the sample's yield the same way
identical_up_down      warning   up and down are identical (and differ from the nominal)
empty_variation        error     a variation is empty (or a normsys factor <= 0) where the
                                 nominal is not empty
large_norm             warning   a norm effect max(|hi - 1|, |lo - 1|) above ``norm_large``
no_shape               info      a histosys whose up and down, normalised, equal the
                                 normalised nominal within 1e-6: it should be a normsys
empty_background_bin   error     a bin with signal but no background at all
mc_stat_error          warning   a sample's relative MC error sqrt(sumw2)/nominal in a bin
                                 above ``rel_mc_error``
one_bin_shape          info      a histosys in a one-bin channel: it should be a normsys
=====================  ========  ==========================================================

Each finding has the keys ``check``, ``severity``, ``channel``, ``sample``, ``modifier``,
``bin`` (None where not bin-specific) and ``message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import DataContractError
from ..templates import Templates

Finding = dict[str, Any]
#: Relative tolerance of the "no shape effect" and "no norm effect" comparisons.
TOLERANCE = 1e-6
CHECKS = (
    "same_sign",
    "identical_up_down",
    "empty_variation",
    "large_norm",
    "no_shape",
    "empty_background_bin",
    "mc_stat_error",
    "one_bin_shape",
)


def _finding(
    check: str,
    severity: str,
    channel: str,
    message: str,
    *,
    sample: str | None = None,
    modifier: str | None = None,
    bin: int | None = None,
) -> Finding:
    return {
        "check": check,
        "severity": severity,
        "channel": channel,
        "sample": sample,
        "modifier": modifier,
        "bin": bin,
        "message": message,
    }


def _poi(spec: Mapping[str, Any]) -> str | None:
    measurements = spec.get("measurements") or []
    if not measurements:
        return None
    return str(measurements[0]["config"]["poi"])


def _is_signal(sample: Mapping[str, Any], poi: str | None) -> bool:
    return any(
        m["type"] == "normfactor" and (poi is None or m["name"] == poi) for m in sample["modifiers"]
    )


def _normalised(values: np.ndarray) -> np.ndarray | None:
    total = float(values.sum())
    return values / total if total > 0 else None


def _modifier_checks(
    channel: str,
    sample: str,
    nom: np.ndarray,
    mod: Mapping[str, Any],
    *,
    norm_large: float,
) -> list[Finding]:
    out: list[Finding] = []
    name, kind = str(mod["name"]), mod["type"]
    total = float(nom.sum())
    if kind == "normsys":
        hi, lo = float(mod["data"]["hi"]), float(mod["data"]["lo"])
        up = dn = None
    elif kind == "histosys":
        up = np.asarray(mod["data"]["hi_data"], dtype=np.float64)
        dn = np.asarray(mod["data"]["lo_data"], dtype=np.float64)
        if up.shape != nom.shape or dn.shape != nom.shape:
            raise DataContractError(
                f"channel {channel!r} sample {sample!r} modifier {name!r}: hi_data/lo_data have "
                f"{up.size}/{dn.size} bins, the sample {nom.size}"
            )
        if total <= 0:
            return out
        hi, lo = float(up.sum()) / total, float(dn.sum()) / total
    else:
        return out
    # empty variation
    empty = [
        direction
        for direction, factor, values in (("up", hi, up), ("down", lo, dn))
        if total > 0 and (factor <= 0 or (values is not None and not np.any(values != 0)))
    ]
    for direction in empty:
        out.append(
            _finding(
                "empty_variation",
                "error",
                channel,
                f"{kind} {name!r} of {sample!r}: the {direction} variation is empty "
                f"(nominal yield {total:.4g})",
                sample=sample,
                modifier=name,
            )
        )
    # same sign
    if (hi - 1.0) * (lo - 1.0) > 0 and min(abs(hi - 1.0), abs(lo - 1.0)) > TOLERANCE:
        out.append(
            _finding(
                "same_sign",
                "warning",
                channel,
                f"{kind} {name!r} of {sample!r}: up and down move the yield the same way "
                f"(hi = {hi:.4g}, lo = {lo:.4g})",
                sample=sample,
                modifier=name,
            )
        )
    # identical up and down
    scale = max(float(np.abs(nom).max(initial=0.0)), 1e-300)
    if up is not None and dn is not None:
        identical = bool(np.abs(up - dn).max(initial=0.0) <= 1e-12 * scale)
        no_effect = bool(np.abs(up - nom).max(initial=0.0) <= 1e-12 * scale)
    else:
        identical = abs(hi - lo) <= 1e-12
        no_effect = abs(hi - 1.0) <= 1e-12
    if identical and not no_effect:
        out.append(
            _finding(
                "identical_up_down",
                "warning",
                channel,
                f"{kind} {name!r} of {sample!r}: up and down variations are identical",
                sample=sample,
                modifier=name,
            )
        )
    # large norm effect
    effect = max(abs(hi - 1.0), abs(lo - 1.0))
    if effect > norm_large:
        out.append(
            _finding(
                "large_norm",
                "warning",
                channel,
                f"{kind} {name!r} of {sample!r}: norm effect {effect:.1%} above {norm_large:.1%} "
                f"(hi = {hi:.4g}, lo = {lo:.4g})",
                sample=sample,
                modifier=name,
            )
        )
    if kind != "histosys" or up is None or dn is None:
        return out
    # shape effect
    if nom.size == 1:
        out.append(
            _finding(
                "one_bin_shape",
                "info",
                channel,
                f"histosys {name!r} of {sample!r} in a one-bin channel: use a normsys",
                sample=sample,
                modifier=name,
            )
        )
        return out
    shape_nom, shape_up, shape_dn = _normalised(nom), _normalised(up), _normalised(dn)
    if shape_nom is not None and shape_up is not None and shape_dn is not None:
        tol = TOLERANCE * float(np.abs(shape_nom).max())
        if max(np.abs(shape_up - shape_nom).max(), np.abs(shape_dn - shape_nom).max()) <= tol:
            out.append(
                _finding(
                    "no_shape",
                    "info",
                    channel,
                    f"histosys {name!r} of {sample!r} has no shape effect (normalised templates "
                    "equal the nominal within 1e-6): use a normsys",
                    sample=sample,
                    modifier=name,
                )
            )
    return out


def _mc_error_checks(
    channel: str,
    sample: str,
    nom: np.ndarray,
    sumw2: np.ndarray,
    rel_mc_error: float,
) -> list[Finding]:
    out: list[Finding] = []
    err = np.sqrt(np.clip(sumw2, 0.0, None))
    for b in range(nom.size):
        if err[b] <= 0:
            continue
        rel = err[b] / nom[b] if nom[b] > 0 else np.inf
        if rel > rel_mc_error:
            out.append(
                _finding(
                    "mc_stat_error",
                    "warning",
                    channel,
                    f"{sample!r} bin {b}: relative MC error {rel:.3g} above {rel_mc_error:g} "
                    f"(yield {nom[b]:.4g} +/- {err[b]:.4g})",
                    sample=sample,
                    bin=b,
                )
            )
    return out


def _sumw2_of(
    sample: Mapping[str, Any], nbins: int, templates: Templates | None
) -> np.ndarray | None:
    """sumw2 of a workspace sample: from the templates when they hold it, else the staterror."""
    if templates is not None and sample["name"] in templates.samples and templates.n_bins == nbins:
        return np.asarray(templates.sumw2[templates.samples.index(sample["name"])], dtype=float)
    for mod in sample["modifiers"]:
        if mod["type"] == "staterror":
            return np.asarray(mod["data"], dtype=np.float64) ** 2
    return None


def check_workspace(
    spec: Mapping[str, Any],
    templates: Templates | None = None,
    *,
    norm_large: float = 0.10,
    rel_mc_error: float = 1.0,
) -> list[Finding]:
    """Model checks of a pyhf workspace (CMS ValidateDatacards' list; see the module docstring).

    Args:
        spec: the workspace (HistFactory JSON).
        templates: the templates it was built from; their sumw2 (unclipped, per sample) are
            used for the MC-error check of samples of the same name and binning, else the
            staterror data sqrt(sumw2) of the workspace.
        norm_large: threshold of the ``large_norm`` check (relative).
        rel_mc_error: threshold of the ``mc_stat_error`` check (relative).

    Returns:
        The findings, in channel, sample and modifier order.

    Example:
        >>> spec = {"channels": [{"name": "SR", "samples": [
        ...     {"name": "s", "data": [1.0, 2.0], "modifiers": [
        ...         {"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "b", "data": [0.0, 5.0], "modifiers": [
        ...         {"name": "k", "type": "normsys", "data": {"hi": 1.2, "lo": 1.1}}]}]}]}
        >>> [(f["check"], f["severity"], f["bin"]) for f in check_workspace(spec)]
        [('same_sign', 'warning', None), ('large_norm', 'warning', None), ('empty_background_bin', 'error', 0)]
    """
    findings: list[Finding] = []
    poi = _poi(spec)
    for channel in spec.get("channels", []):
        cname = str(channel["name"])
        signal: np.ndarray | None = None
        background: np.ndarray | None = None
        for sample in channel["samples"]:
            sname = str(sample["name"])
            nom = np.asarray(sample["data"], dtype=np.float64)
            for mod in sample["modifiers"]:
                findings += _modifier_checks(cname, sname, nom, mod, norm_large=norm_large)
            sumw2 = _sumw2_of(sample, nom.size, templates)
            if sumw2 is not None:
                findings += _mc_error_checks(cname, sname, nom, sumw2, rel_mc_error)
            if _is_signal(sample, poi):
                signal = nom if signal is None else signal + nom
            else:
                background = nom if background is None else background + nom
        if signal is None:
            continue
        bkg = np.zeros_like(signal) if background is None else background
        for b in np.flatnonzero((signal > 0) & ~(bkg > 0)):
            findings.append(
                _finding(
                    "empty_background_bin",
                    "error",
                    cname,
                    f"bin {int(b)}: signal {signal[b]:.4g} but no background",
                    bin=int(b),
                )
            )
    return findings


__all__ = ["CHECKS", "TOLERANCE", "Finding", "check_workspace"]
