"""pyhf (HistFactory JSON, schema 1.0.0) workspace of the score templates: build and validate."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataContractError, ModelError
from ..systematics import parse_systematics
from ..templates import Templates

log = logging.getLogger(__name__)

Systematic = Mapping[str, Any]

#: Name of the MC-statistics group (the staterror gammas) in breakdowns; no systematic may use it.
MC_STAT = "mc_stat"
#: Relative spread of the per-bin up/nominal ratio below which a norm systematic is a normsys.
SHAPE_TOLERANCE = 1e-6


def _systematic_templates(templates: Templates, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return templates.variations[f"{name}_up"], templates.variations[f"{name}_down"]
    except KeyError as exc:
        raise DataContractError(
            f"templates lack variation {exc.args[0]!r} of systematic {name!r}; "
            f"variations present: {sorted(templates.variations)}"
        ) from None


def _is_uniform_ratio(nom: np.ndarray, var: np.ndarray, tol: float) -> bool:
    on = nom > 0
    if np.any(var[~on] != 0):
        return False
    if not on.any():
        return True
    ratio = var[on] / nom[on]
    return bool(np.ptp(ratio) <= tol * max(1.0, float(np.abs(ratio).max())))


def _modifiers_for_sample(
    s: int,
    nom: np.ndarray,
    varied: Mapping[str, tuple[np.ndarray, np.ndarray]],
    systematics: Sequence[Systematic],
    shape_tolerance: float,
    split_norm_shape: bool,
) -> list[dict[str, Any]]:
    from .postprocess import pyhf_modifiers

    mods: list[dict[str, Any]] = []
    scale = float(np.abs(nom).max()) if nom.size else 0.0
    for syst in parse_systematics(systematics):
        name = syst.name
        up, dn = varied[name][0][s], varied[name][1][s]
        total = float(nom.sum())
        # A uniform rescaling is a normsys whatever made it: a rate systematic, or a shape
        # systematic whose shape part was pruned (TRExFitter's "norm only").
        if (
            total > 0
            and _is_uniform_ratio(nom, up, shape_tolerance)
            and _is_uniform_ratio(nom, dn, shape_tolerance)
        ):
            hi, lo = float(up.sum()) / total, float(dn.sum()) / total
            if abs(hi - 1.0) < 1e-12 and abs(lo - 1.0) < 1e-12:
                continue
            if hi <= 0 or lo <= 0:
                raise ModelError(
                    f"systematic {name!r}: normalisation factor hi={hi:.4g}, lo={lo:.4g} must be "
                    "positive (delta >= 1?)"
                )
            mods.append({"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}})
            continue
        if max(np.abs(up - nom).max(initial=0.0), np.abs(dn - nom).max(initial=0.0)) <= 1e-12 * max(
            scale, 1e-300
        ):
            continue
        split = split_norm_shape and total > 0 and float(up.sum()) > 0 and float(dn.sum()) > 0
        mods += pyhf_modifiers(name, nom, up, dn, split=split)
    return mods


def build_workspace(
    templates: Templates,
    systematics: Sequence[Systematic],
    *,
    data: Sequence[float] | np.ndarray | None = None,
    measurement_name: str = "mu_measurement",
    poi: str = "mu",
    channel: str = "SR",
    mc_stat: bool = True,
    mu_bounds: tuple[float, float] = (-5.0, 10.0),
    shape_tolerance: float = SHAPE_TOLERANCE,
    split_norm_shape: bool = False,
    validate: bool = True,
) -> dict[str, Any]:
    """A pyhf (HistFactory JSON, schema 1.0.0) workspace of the score templates.

    Modelling choices:
      * signal samples carry the normfactor ``poi``;
      * a ``norm`` systematic whose up/down templates are a uniform rescaling of a sample
        (per-bin ratio constant within ``shape_tolerance``) becomes a ``normsys`` with
        hi/lo = up/nominal and down/nominal yields of that sample, so "lumi" acts on every
        sample and "sig" on signal only, exactly as the variations were built; a norm
        systematic restricted to some processes inside a merged sample (group_by "label")
        changes the shape and becomes a ``histosys``;
      * ``scale``, ``smear``, ``sample`` and ``weight`` systematics become one ``histosys``
        per sample from the up/down templates (shape and normalisation in one modifier,
        pyhf's default code4p interpolation), or with ``split_norm_shape`` a ``normsys`` of
        the normalisation plus a ``histosys`` of the shape on the same parameter
        (HistFactory's OverallSys + HistoSys); where the up/down templates are a uniform
        rescaling of the nominal one (the shape part pruned), a ``normsys``;
      * a modifier with no effect on a sample is omitted (an all-flat parameter is not
        identifiable);
      * MC statistics: one ``staterror`` per sample (data = sqrt(sumw2)), shared per bin
        (Barlow-Beeston lite);
      * negative per-sample yields (negative weights) are clipped to zero, every bin must keep
        a positive total.

    Args:
        templates: from :func:`systpipe.templates.build_templates`.
        systematics: the config list; each needs ``<name>_up``/``<name>_down`` templates.
        data: observed counts per bin; default the Asimov data at mu = 1 (total nominal).
        measurement_name: name of the single measurement.
        poi: name of the signal-strength normfactor.
        channel: channel name.
        mc_stat: add the staterror modifiers.
        mu_bounds: POI bounds (negative values allowed so that toys are not truncated).
        shape_tolerance: see above.
        split_norm_shape: enter each shape systematic as normsys + histosys (see above).
        validate: check the result against pyhf's JSON schema.

    Returns:
        The workspace as a JSON-serialisable dict.
    """
    nominal = np.clip(templates.nominal, 0.0, None)
    if np.any(templates.nominal < 0):
        log.info(
            "clipped %d negative sample-bin yields to zero", int(np.sum(templates.nominal < 0))
        )
    total = nominal.sum(axis=0)
    bad = np.flatnonzero(~(total > 0))
    if bad.size:
        edges = templates.bin_edges
        raise ModelError(
            f"bin(s) {bad.tolist()} (e.g. ({edges[bad[0]]:.4g}, {edges[bad[0] + 1]:.4g}]) have no expected "
            "events; use fewer bins (fit.n_bins) or a lower fit.score_min"
        )
    if not np.any(nominal[templates.signal_mask].sum(axis=1) > 0):
        raise ModelError("no signal yield in the fit region; lower fit.score_min")
    names = [s["name"] for s in systematics]
    if len(set(names)) != len(names) or poi in names or MC_STAT in names:
        raise ConfigError(
            f"systematic names must be unique and differ from {poi!r} and {MC_STAT!r}: {names}"
        )
    varied = {}
    for syst in systematics:
        up, dn = _systematic_templates(templates, syst["name"])
        varied[syst["name"]] = (np.clip(up, 0.0, None), np.clip(dn, 0.0, None))
    samples = []
    for s, sample in enumerate(templates.samples):
        nom = nominal[s]
        if not np.any(nom > 0):
            log.info("sample %r has no events in the fit region: omitted", sample)
            continue
        mods: list[dict[str, Any]] = []
        if templates.is_signal[s]:
            mods.append({"name": poi, "type": "normfactor", "data": None})
        mods += _modifiers_for_sample(
            s, nom, varied, systematics, shape_tolerance, split_norm_shape
        )
        if mc_stat:
            mods.append(
                {
                    "name": f"staterror_{channel}",
                    "type": "staterror",
                    "data": np.sqrt(np.clip(templates.sumw2[s], 0, None)).tolist(),
                }
            )
        samples.append({"name": sample, "data": nom.tolist(), "modifiers": mods})
    obs = total if data is None else np.asarray(data, dtype=np.float64)
    if obs.shape != total.shape:
        raise DataContractError(
            f"data has shape {obs.shape}, expected {total.shape} (one count per bin)"
        )
    spec = {
        "channels": [{"name": channel, "samples": samples}],
        "observations": [{"name": channel, "data": obs.tolist()}],
        "measurements": [
            {
                "name": measurement_name,
                "config": {
                    "poi": poi,
                    "parameters": [
                        {"name": poi, "bounds": [list(map(float, mu_bounds))], "inits": [1.0]}
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }
    if validate:
        validate_workspace(spec)
    return spec


def add_channel(spec: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the channels and observations of ``other`` added (same measurement; the
    parameters of equal name are shared, e.g. mu and every systematic), e.g. a control region
    next to the signal region. Channel names must differ.

    Example:
        >>> sr = {"channels": [{"name": "SR", "samples": []}], "observations": [{"name": "SR", "data": []}],
        ...       "measurements": [], "version": "1.0.0"}
        >>> cr = {"channels": [{"name": "CR", "samples": []}], "observations": [{"name": "CR", "data": []}]}
        >>> [c["name"] for c in add_channel(sr, cr)["channels"]]
        ['CR', 'SR']
    """
    names = {c["name"] for c in spec["channels"]}
    clash = names & {c["name"] for c in other["channels"]}
    if clash:
        raise ModelError(f"channel(s) {sorted(clash)} defined twice")
    out = dict(spec)
    # pyhf orders channels by name; keep the JSON in that order too
    out["channels"] = sorted([*spec["channels"], *other["channels"]], key=lambda c: c["name"])
    out["observations"] = sorted(
        [*spec["observations"], *other["observations"]], key=lambda c: c["name"]
    )
    return out


def validate_workspace(spec: Mapping[str, Any]) -> None:
    """Raise :class:`ModelError` unless pyhf's JSON schema accepts ``spec``."""
    import pyhf

    try:
        with warnings.catch_warnings():
            # pyhf 0.7.6 uses jsonschema.RefResolver, deprecated in jsonschema >= 4.18
            warnings.simplefilter("ignore", DeprecationWarning)
            pyhf.schema.validate(dict(spec), "workspace.json")
    except pyhf.exceptions.InvalidSpecification as exc:
        raise ModelError(f"workspace does not follow the pyhf schema: {exc}") from exc


__all__ = [
    "MC_STAT",
    "SHAPE_TOLERANCE",
    "Systematic",
    "add_channel",
    "build_workspace",
    "validate_workspace",
]
