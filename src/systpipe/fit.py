"""Binned profile-likelihood fit of the score templates: pyhf workspace, fast NLL, breakdown."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.special

from .errors import ConfigError, DataContractError, ModelError
from .templates import Templates

log = logging.getLogger(__name__)

Systematic = Mapping[str, Any]

MC_STAT = "mc_stat"
#: Relative spread of the per-bin up/nominal ratio below which a norm systematic is a normsys.
SHAPE_TOLERANCE = 1e-6
_TINY = 1e-10
_ALPHA_BOUNDS = (-5.0, 5.0)
_GAMMA_BOUNDS = (1e-10, 10.0)
_NORMFACTOR_BOUNDS = (0.0, 10.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# pyhf's code4 A^-1 with alpha0 = 1 (pyhf/interpolators/code4.py): polynomial coefficients
# a_1..a_6 from (hi - 1, lo - 1, ln(hi) hi, -ln(lo) lo, ln(hi)^2 hi, ln(lo)^2 lo).
_CODE4_AINV = np.array(
    [
        [15.0 / 16, -15.0 / 16, -7.0 / 16, -7.0 / 16, 1.0 / 16, -1.0 / 16],
        [3.0 / 2, 3.0 / 2, -9.0 / 16, 9.0 / 16, 1.0 / 16, 1.0 / 16],
        [-5.0 / 8, 5.0 / 8, 5.0 / 8, 5.0 / 8, -1.0 / 8, 1.0 / 8],
        [3.0 / -2, 3.0 / -2, -7.0 / -8, 7.0 / -8, -1.0 / 8, -1.0 / 8],
        [3.0 / 16, -3.0 / 16, -3.0 / 16, -3.0 / 16, 1.0 / 16, -1.0 / 16],
        [1.0 / 2, 1.0 / 2, -5.0 / 16, 5.0 / 16, 1.0 / 16, 1.0 / 16],
    ]
)


# --------------------------------------------------------------------------- workspace


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
) -> list[dict[str, Any]]:
    mods: list[dict[str, Any]] = []
    scale = float(np.abs(nom).max()) if nom.size else 0.0
    for syst in systematics:
        name = syst["name"]
        up, dn = varied[name][0][s], varied[name][1][s]
        total = float(nom.sum())
        if syst["type"] == "norm" and total > 0 and _is_uniform_ratio(nom, up, shape_tolerance) and _is_uniform_ratio(
            nom, dn, shape_tolerance
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
        if max(np.abs(up - nom).max(initial=0.0), np.abs(dn - nom).max(initial=0.0)) <= 1e-12 * max(scale, 1e-300):
            continue
        mods.append(
            {"name": name, "type": "histosys", "data": {"hi_data": up.tolist(), "lo_data": dn.tolist()}}
        )
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
        pyhf's default code4p interpolation);
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
        validate: check the result against pyhf's JSON schema.

    Returns:
        The workspace as a JSON-serialisable dict.
    """
    nominal = np.clip(templates.nominal, 0.0, None)
    if np.any(templates.nominal < 0):
        log.info("clipped %d negative sample-bin yields to zero", int(np.sum(templates.nominal < 0)))
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
        raise ConfigError(f"systematic names must be unique and differ from {poi!r} and {MC_STAT!r}: {names}")
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
        mods += _modifiers_for_sample(s, nom, varied, systematics, shape_tolerance)
        if mc_stat:
            mods.append(
                {"name": f"staterror_{channel}", "type": "staterror", "data": np.sqrt(np.clip(templates.sumw2[s], 0, None)).tolist()}
            )
        samples.append({"name": sample, "data": nom.tolist(), "modifiers": mods})
    obs = total if data is None else np.asarray(data, dtype=np.float64)
    if obs.shape != total.shape:
        raise DataContractError(f"data has shape {obs.shape}, expected {total.shape} (one count per bin)")
    spec = {
        "channels": [{"name": channel, "samples": samples}],
        "observations": [{"name": channel, "data": obs.tolist()}],
        "measurements": [
            {
                "name": measurement_name,
                "config": {
                    "poi": poi,
                    "parameters": [{"name": poi, "bounds": [list(map(float, mu_bounds))], "inits": [1.0]}],
                },
            }
        ],
        "version": "1.0.0",
    }
    if validate:
        validate_workspace(spec)
    return spec


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


# --------------------------------------------------------------------------- fast model


def _code4_coefficients(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    lh, ll = np.log(hi), np.log(lo)
    b = np.stack([hi - 1.0, lo - 1.0, lh * hi, -ll * lo, lh**2 * hi, ll**2 * lo])
    return np.einsum("ij,j...->i...", _CODE4_AINV, b)


class HistFactoryModel:
    """Vectorised NumPy likelihood of a pyhf workspace (normfactor, normsys, histosys, staterror).

    Same model as pyhf 0.7 with its default interpolation (normsys code4, histosys code4p),
    Gaussian constraints (alpha ~ N(0, 1); staterror gamma ~ N(1, sigma_b) with sigma_b the
    combined relative MC error of the bin, fixed to 1 where it is zero), Poisson main term with
    the lgamma constant, so NLL values equal ``-pyhf_model.logpdf(pars, data)`` up to the
    constant of fixed gammas. Parameters are ordered: POI, other normfactors, alphas (sorted
    by name), gammas (per channel and bin); names follow pyhf ("staterror_SR[3]").
    """

    def __init__(self, spec: Mapping[str, Any], *, measurement: str | None = None, poi: str | None = None):
        channels = sorted(spec["channels"], key=lambda c: c["name"])
        meas = _pick_measurement(spec, measurement)
        self.poi_name = poi or meas["config"]["poi"]
        offsets, nb = {}, 0
        for ch in channels:
            sizes = {len(s["data"]) for s in ch["samples"]}
            if len(sizes) != 1:
                raise ModelError(f"channel {ch['name']!r}: samples have different bin counts {sorted(sizes)}")
            offsets[ch["name"]] = (nb, nb + sizes.pop())
            nb = offsets[ch["name"]][1]
        self.n_bins = nb
        self.channel_slices = {k: slice(*v) for k, v in offsets.items()}
        rows: list[tuple[str, str]] = []
        nom_rows: list[np.ndarray] = []
        normfactors: dict[str, list[int]] = {}
        normsys: dict[str, dict[int, tuple[float, float]]] = {}
        histosys: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        staterr: dict[str, dict[int, np.ndarray]] = {}
        stat_channel: dict[str, str] = {}
        for ch in channels:
            lo_b, hi_b = offsets[ch["name"]]
            for sample in sorted(ch["samples"], key=lambda s: s["name"]):
                r = len(rows)
                rows.append((ch["name"], sample["name"]))
                full = np.zeros(nb)
                full[lo_b:hi_b] = np.asarray(sample["data"], dtype=np.float64)
                nom_rows.append(full)
                for mod in sample["modifiers"]:
                    kind, name = mod["type"], mod["name"]
                    if kind == "normfactor":
                        normfactors.setdefault(name, []).append(r)
                    elif kind == "normsys":
                        normsys.setdefault(name, {})[r] = (float(mod["data"]["hi"]), float(mod["data"]["lo"]))
                    elif kind == "histosys":
                        hi = np.zeros(nb)
                        lo = np.zeros(nb)
                        hi[lo_b:hi_b] = mod["data"]["hi_data"]
                        lo[lo_b:hi_b] = mod["data"]["lo_data"]
                        histosys.setdefault(name, {})[r] = (hi, lo)
                    elif kind == "staterror":
                        if stat_channel.setdefault(name, ch["name"]) != ch["name"]:
                            raise ModelError(f"staterror {name!r} spans several channels; use one per channel")
                        unc = np.zeros(nb)
                        unc[lo_b:hi_b] = mod["data"]
                        staterr.setdefault(name, {})[r] = unc
                    else:
                        raise ModelError(
                            f"modifier type {kind!r} ({name!r}) is not supported by the fast model "
                            "(normfactor, normsys, histosys, staterror)"
                        )
        if self.poi_name not in normfactors:
            raise ModelError(f"POI {self.poi_name!r} is not a normfactor of any sample")
        self.rows = rows
        self.nominal = np.array(nom_rows)
        n_rows = len(rows)
        # parameter layout
        nf_names = [self.poi_name] + sorted(n for n in normfactors if n != self.poi_name)
        alpha_names = sorted(set(normsys) | set(histosys))
        names: list[str] = list(nf_names) + alpha_names
        gamma_bins: list[int] = []
        gamma_sigma: list[float] = []
        stat_rows = np.zeros(n_rows, dtype=bool)
        self.groups: dict[str, list[int]] = {a: [len(nf_names) + i] for i, a in enumerate(alpha_names)}
        gamma_fixed: list[bool] = []
        for sname in sorted(staterr):
            sl = self.channel_slices[stat_channel[sname]]
            rws = sorted(staterr[sname])
            stat_rows[rws] = True
            nom_all = self.nominal[rws].sum(axis=0)
            var = sum(staterr[sname][r] ** 2 for r in rws)
            for i, b in enumerate(range(sl.start, sl.stop)):
                rel = math.sqrt(var[b]) / nom_all[b] if nom_all[b] > 0 else 0.0
                names.append(f"{sname}[{i}]")
                gamma_bins.append(b)
                gamma_sigma.append(rel)
                gamma_fixed.append(rel == 0.0)
        self.names = names
        self.n_pars = len(names)
        self.poi_index = 0
        self.normfactor_index = np.arange(len(nf_names))
        self.nf_mask = np.zeros((len(nf_names), n_rows), dtype=bool)
        for f, n in enumerate(nf_names):
            self.nf_mask[f, normfactors[n]] = True
        n_alpha = len(alpha_names)
        self.alpha_index = np.arange(len(nf_names), len(nf_names) + n_alpha)
        self.gamma_index = np.arange(len(nf_names) + n_alpha, self.n_pars)
        self.gamma_bins = np.asarray(gamma_bins, dtype=np.int64)
        self.gamma_sigma = np.where(np.asarray(gamma_sigma) > 0, np.asarray(gamma_sigma), 1.0)
        self.stat_rows = stat_rows
        free_gamma = [self.gamma_index[i] for i, fx in enumerate(gamma_fixed) if not fx]
        self.groups[MC_STAT] = [int(i) for i in free_gamma]
        if not self.groups[MC_STAT]:
            del self.groups[MC_STAT]
        # normsys: factors per (alpha, row); absent -> hi = lo = 1, which gives factor 1
        self.ns_alpha = np.array([i for i, a in enumerate(alpha_names) if a in normsys], dtype=np.int64)
        hi = np.ones((self.ns_alpha.size, n_rows))
        lo = np.ones((self.ns_alpha.size, n_rows))
        for k, ai in enumerate(self.ns_alpha):
            for r, (h, low) in normsys[alpha_names[ai]].items():
                hi[k, r], lo[k, r] = h, low
        if np.any(hi <= 0) or np.any(lo <= 0):
            raise ModelError("normsys hi/lo factors must be positive")
        self.ns_loghi, self.ns_loglo = np.log(hi), np.log(lo)
        self.ns_coef = _code4_coefficients(hi, lo)  # (6, K, R)
        self.hs_alpha = np.array([i for i, a in enumerate(alpha_names) if a in histosys], dtype=np.int64)
        dup = np.zeros((self.hs_alpha.size, n_rows, nb))
        ddn = np.zeros((self.hs_alpha.size, n_rows, nb))
        for h, ai in enumerate(self.hs_alpha):
            for r, (hi_d, lo_d) in histosys[alpha_names[ai]].items():
                dup[h, r] = hi_d - self.nominal[r]
                ddn[h, r] = self.nominal[r] - lo_d
        self.hs_up, self.hs_dn = dup, ddn
        # bounds, inits, fixed (measurement overrides)
        self.init = np.zeros(self.n_pars)
        self.bounds = np.zeros((self.n_pars, 2))
        self.fixed = np.zeros(self.n_pars, dtype=bool)
        self.init[self.normfactor_index] = 1.0
        self.bounds[self.normfactor_index] = _NORMFACTOR_BOUNDS
        self.bounds[self.alpha_index] = _ALPHA_BOUNDS
        self.init[self.gamma_index] = 1.0
        self.bounds[self.gamma_index] = _GAMMA_BOUNDS
        self.fixed[self.gamma_index] = gamma_fixed
        by_name = {n: i for i, n in enumerate(names)}
        for par in meas["config"].get("parameters", []):
            if par["name"] not in by_name:
                continue
            i = by_name[par["name"]]
            if "bounds" in par:
                self.bounds[i] = par["bounds"][0]
            if "inits" in par:
                self.init[i] = par["inits"][0]
            if par.get("fixed"):
                self.fixed[i] = True
        # constraint terms: alphas N(aux=0, 1), free gammas N(aux=1, sigma)
        self.constrained = np.concatenate([self.alpha_index, np.asarray(free_gamma, dtype=np.int64)])
        self.constraint_sigma = np.concatenate(
            [np.ones(n_alpha), self.gamma_sigma[[i - self.gamma_index[0] for i in free_gamma]] if free_gamma else []]
        )
        self.aux_nominal = np.concatenate([np.zeros(n_alpha), np.ones(len(free_gamma))])
        self.prefit_sigma = np.full(self.n_pars, np.nan)
        self.prefit_sigma[self.constrained] = self.constraint_sigma
        self.nominal_pars = self.init.copy()
        self.nominal_pars[self.alpha_index] = 0.0
        self.nominal_pars[self.gamma_index] = 1.0
        obs = {o["name"]: o["data"] for o in spec.get("observations", [])}
        self.observed = np.concatenate(
            [np.asarray(obs.get(ch["name"], np.full(offsets[ch["name"]][1] - offsets[ch["name"]][0], np.nan)), dtype=np.float64) for ch in channels]
        )
        self.signal_rows = self.nf_mask[0]
        self._prepare_fast()

    # -------------------------------------------------------------- expected yields
    def _prepare_fast(self) -> None:
        """Flatten the structure into a few matrices: one likelihood call is ~35 NumPy ops."""
        n_rows = self.nominal.shape[0]
        self._single_nf = self.nf_mask.shape[0] == 1
        self._sig = self.nf_mask[0].astype(np.float64)
        self._ns_pidx = self.alpha_index[self.ns_alpha]
        self._hs_pidx = self.alpha_index[self.hs_alpha]
        # (K, R, 6) coefficients for a batched matmul with (K, 6, 1) powers
        self._ns_coef = np.ascontiguousarray(np.moveaxis(self.ns_coef, 0, -1))
        self._ns_dcoef = self._ns_coef * np.arange(1, 7)
        h = self.hs_alpha.size
        self._hs_matrix = np.concatenate(
            [self.hs_up.reshape(h, -1), self.hs_dn.reshape(h, -1)], axis=0
        ) if h else np.zeros((0, n_rows * self.n_bins))
        self._stat = self.stat_rows.astype(np.float64)
        self._all_stat = bool(self.stat_rows.all())
        self._gamma_template = np.ones(self.n_bins)
        self._exps = np.arange(1, 7, dtype=np.float64)
        self._dexps = np.arange(0, 6, dtype=np.float64)

    def _normsys(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """code4 factors F (K, R) and d ln F / d alpha (K, R)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pw = a[:, None] ** self._exps  # (K, 6)
            dpw = a[:, None] ** self._dexps
            poly = 1.0 + (self._ns_coef @ pw[:, :, None])[:, :, 0]
            dpoly = (self._ns_dcoef @ dpw[:, :, None])[:, :, 0]
            if np.all(np.abs(a) < 1.0):
                return poly, dpoly / poly
            up = (a >= 1.0)[:, None]
            dn = (a <= -1.0)[:, None]
            f_up = np.exp(a[:, None] * self.ns_loghi)
            f_dn = np.exp(-a[:, None] * self.ns_loglo)
            factor = np.where(up, f_up, np.where(dn, f_dn, poly))
            dlog = np.where(up, self.ns_loghi, np.where(dn, -self.ns_loglo, dpoly / poly))
        return factor, dlog

    @staticmethod
    def _code4p(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """code4p weights of the up and down deltas, and their derivatives, stacked (2H,)."""
        a2 = a * a
        p6 = a2 * (15.0 + a2 * (-10.0 + 3.0 * a2)) / 16.0
        dp6 = a * (30.0 + a2 * (-40.0 + 18.0 * a2)) / 16.0
        half = 0.5 * a
        if np.all(np.abs(a) <= 1.0):
            return np.concatenate([half + p6, half - p6]), np.concatenate([0.5 + dp6, 0.5 - dp6])
        inside = np.abs(a) <= 1.0
        u = np.where(a > 1.0, a, np.where(inside, half + p6, 0.0))
        v = np.where(a < -1.0, a, np.where(inside, half - p6, 0.0))
        du = np.where(a > 1.0, 1.0, np.where(inside, 0.5 + dp6, 0.0))
        dv = np.where(a < -1.0, 1.0, np.where(inside, 0.5 - dp6, 0.0))
        return np.concatenate([u, v]), np.concatenate([du, dv])

    def _evaluate(self, pars: np.ndarray) -> dict[str, Any]:
        if self._single_nf:
            nf = 1.0 + self._sig * (pars[0] - 1.0)
        else:
            nf = np.prod(np.where(self.nf_mask, pars[self.normfactor_index][:, None], 1.0), axis=0)
        if self._ns_pidx.size:
            factor, dlog = self._normsys(pars[self._ns_pidx])
            shape = factor.prod(axis=0)
        else:
            factor = dlog = None
            shape = 1.0
        norm = nf * shape
        if self._hs_pidx.size:
            coef, dcoef = self._code4p(pars[self._hs_pidx])
            additive = self.nominal + (coef @ self._hs_matrix).reshape(self.nominal.shape)
        else:
            coef = dcoef = None
            additive = self.nominal
        gamma = self._gamma_template.copy()
        gamma[self.gamma_bins] = pars[self.gamma_index]
        if self._all_stat:
            stat_part = norm @ additive
            lam = gamma * stat_part
        else:
            stat_part = (norm * self._stat) @ additive
            lam = gamma * stat_part + (norm * (1.0 - self._stat)) @ additive
        return {
            "nf": nf, "shape": shape, "norm": norm, "dlog": dlog, "dcoef": dcoef,
            "additive": additive, "gamma": gamma, "stat_part": stat_part, "lam": lam,
        }

    def expected(self, pars: np.ndarray) -> np.ndarray:
        """Expected counts per bin (all channels concatenated)."""
        return self._evaluate(np.asarray(pars, dtype=np.float64))["lam"]

    def expected_by_sample(self, pars: np.ndarray) -> np.ndarray:
        """Expected counts per (channel, sample) row and bin."""
        ev = self._evaluate(np.asarray(pars, dtype=np.float64))
        g = np.where(self.stat_rows[:, None], ev["gamma"][None, :], 1.0)
        return ev["additive"] * ev["norm"][:, None] * g

    # -------------------------------------------------------------- likelihood
    def data_constant(self, data: np.ndarray) -> float:
        """The parameter-independent part of the NLL for ``data`` (lgamma and Gaussian norms)."""
        return float(
            np.sum(scipy.special.gammaln(np.asarray(data, dtype=np.float64) + 1.0))
            + np.sum(np.log(self.constraint_sigma)) + _LOG_SQRT_2PI * self.constrained.size
        )

    def nll(self, pars: np.ndarray, data: np.ndarray, aux: np.ndarray | None = None) -> float:
        """Negative log-likelihood (Poisson main term + Gaussian constraints, with constants)."""
        return self.nll_and_grad(pars, data, aux, grad=False)[0]

    def nll_and_grad(
        self,
        pars: np.ndarray,
        data: np.ndarray,
        aux: np.ndarray | None = None,
        *,
        grad: bool = True,
        constant: float | None = None,
    ) -> tuple[float, np.ndarray | None]:
        """NLL and its analytic gradient with respect to every parameter.

        ``constant`` (from :meth:`data_constant`) saves recomputing lgamma in fit loops.
        """
        pars = np.asarray(pars, dtype=np.float64)
        aux = self.aux_nominal if aux is None else aux
        ev = self._evaluate(pars)
        lam = ev["lam"]
        lam_safe = np.maximum(lam, _TINY)
        pull = (pars[self.constrained] - aux) / self.constraint_sigma
        const = self.data_constant(data) if constant is None else constant
        nll = float(np.sum(lam_safe - data * np.log(lam_safe)) + 0.5 * pull @ pull) + const
        if not grad:
            return nll, None
        r = 1.0 - data / lam_safe
        rg = r * ev["gamma"]
        # per row: sum_b r_b d lambda_b / d norm_r = additive_r . (r * G_r)
        if self._all_stat:
            w = ev["additive"] @ rg
        else:
            w = np.where(self.stat_rows, ev["additive"] @ rg, ev["additive"] @ r)
        g = np.zeros(self.n_pars)
        if self._single_nf:
            g[0] = float(np.sum(self._sig * ev["shape"] * w))
        else:
            nf_vals = pars[self.normfactor_index][:, None]
            for f, idx in enumerate(self.normfactor_index):
                others_mask = self.nf_mask & (np.arange(self.nf_mask.shape[0]) != f)[:, None]
                others = np.prod(np.where(others_mask, nf_vals, 1.0), axis=0)
                g[idx] = float(np.sum(self.nf_mask[f] * others * ev["shape"] * w))
        if ev["dlog"] is not None:
            g[self._ns_pidx] += ev["dlog"] @ (ev["norm"] * w)
        if ev["dcoef"] is not None:
            if self._all_stat:
                m = np.outer(ev["norm"], rg)
            else:
                m = ev["norm"][:, None] * np.where(self.stat_rows[:, None], rg[None, :], r[None, :])
            proj = self._hs_matrix @ m.ravel() * ev["dcoef"]
            h = self._hs_pidx.size
            g[self._hs_pidx] += proj[:h] + proj[h:]
        if self.gamma_index.size:
            g[self.gamma_index] += (ev["stat_part"] * r)[self.gamma_bins]
        g[self.constrained] += pull / self.constraint_sigma
        return nll, g

    def asimov(self, pars: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Asimov main data and nominal auxiliary data at ``pars`` (default: nominal, mu = 1)."""
        pars = self.nominal_pars if pars is None else pars
        return self.expected(pars), self.aux_nominal.copy()

    def pyhf_order(self, pyhf_model: Any) -> np.ndarray:
        """Index array mapping pyhf's parameter order onto ours (ours[perm] == pyhf's)."""
        pos = {n: i for i, n in enumerate(self.names)}
        labels = pyhf_model.config.par_names
        return np.array([pos[n] for n in labels], dtype=np.int64)


def _pick_measurement(spec: Mapping[str, Any], name: str | None) -> Mapping[str, Any]:
    meas = spec.get("measurements") or []
    if not meas:
        raise ModelError("workspace has no measurement")
    if name is None:
        return meas[0]
    for m in meas:
        if m["name"] == name:
            return m
    raise ModelError(f"measurement {name!r} not in workspace; have {[m['name'] for m in meas]}")


# --------------------------------------------------------------------------- minimisation


@dataclass
class Minimum:
    """One minimisation: best-fit values, Hesse errors/covariance, optional MINOS on the POI."""

    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray | None
    nll: float
    valid: bool
    nfcn: int
    minos: tuple[float, float] | None = None
    minos_valid: bool = False


def minimize(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    init: np.ndarray | None = None,
    fixed: Mapping[int, float] | None = None,
    hesse: bool = True,
    minos: bool = False,
    strategy: int = 1,
    tolerance: float = 1e-3,
    steps: np.ndarray | None = None,
) -> Minimum:
    """Minimise the NLL with iminuit (MIGRAD, analytic gradient); optional HESSE and MINOS on the POI.

    Args:
        model: the fast model.
        data: main-measurement counts per bin.
        aux: auxiliary data (default nominal).
        init: starting values (default the model's inits).
        fixed: parameter index -> fixed value, on top of the model's fixed parameters.
        hesse: run HESSE for errors and covariance.
        minos: run MINOS on the POI; ``minos`` holds (lower, upper) as negative/positive offsets.
        strategy: Minuit strategy (0 fast, 1 default).
        tolerance: Minuit tolerance (EDM goal 0.002 x tolerance x errordef). The default 1e-3 is
            tighter than Minuit's 0.1: profile likelihoods with a signal-normalisation
            systematic are flat enough that 0.1 stops 1e-3 away in mu (1 % in the MINOS
            interval), and the tighter minimum makes MINOS itself cheaper.
        steps: initial step sizes (default the prefit sigmas, 0.1 for normfactors); post-fit
            errors make refits near a known minimum much cheaper.
    """
    from iminuit import Minuit

    data = np.asarray(data, dtype=np.float64)
    aux = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    x0 = np.array(model.init if init is None else init, dtype=np.float64)
    fix = model.fixed.copy()
    for i, v in (fixed or {}).items():
        fix[i] = True
        x0[i] = v
    x0 = np.clip(x0, model.bounds[:, 0], model.bounds[:, 1])

    const = model.data_constant(data)

    def fcn(p: np.ndarray) -> float:
        return model.nll_and_grad(p, data, aux, grad=False, constant=const)[0]

    def grad(p: np.ndarray) -> np.ndarray:
        return model.nll_and_grad(p, data, aux, constant=const)[1]

    with warnings.catch_warnings():
        # iminuit warns (IMinuitWarning) on non-converged HESSE/MINOS; that is reported via
        # the validity flags instead.
        warnings.simplefilter("ignore")
        m = Minuit(fcn, x0, grad=grad, name=model.names)
        m.errordef = Minuit.LIKELIHOOD
        m.limits = [tuple(b) for b in model.bounds]
        m.fixed = fix.tolist()
        m.strategy = strategy
        m.tol = tolerance
        m.print_level = 0
        if steps is None:
            steps = np.where(np.isfinite(model.prefit_sigma), model.prefit_sigma, 0.1)
        m.errors = np.where(np.asarray(steps) > 0, steps, 0.1).tolist()
        m.migrad()
        valid = bool(m.valid)
        cov = None
        if hesse and valid:
            m.hesse()
            valid = bool(m.valid)
            cov = np.array(m.covariance) if m.covariance is not None else None
        minos_res = None
        minos_valid = False
        if minos and valid and not fix[model.poi_index]:
            try:
                m.minos(model.names[model.poi_index])
                me = m.merrors[model.names[model.poi_index]]
                minos_res = (float(me.lower), float(me.upper))
                minos_valid = bool(me.is_valid)
            except RuntimeError as exc:
                log.debug("MINOS failed: %s", exc)
    return Minimum(
        values=np.array(m.values),
        errors=np.array(m.errors),
        covariance=cov,
        nll=float(m.fval),
        valid=valid,
        nfcn=int(m.nfcn),
        minos=minos_res,
        minos_valid=minos_valid,
    )


def profile_interval(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    best: Minimum | None = None,
    fixed: Mapping[int, float] | None = None,
    level: float = 1.0,
    xtol: float = 1e-4,
) -> tuple[float, float, float]:
    """Profile-likelihood interval of the POI by root finding (a MINOS replacement).

    Solves sqrt(2 (NLL(mu, profiled) - NLL_min)) = sqrt(level) on each side with Brent's
    method, every point a warm-started conditional fit. sqrt(2 dNLL) is nearly linear in mu,
    so each side takes a handful of fits; unlike MINOS it is not confused by a flat direction
    at mu = 0 (a signal-normalisation parameter). An edge beyond the POI bounds is returned
    as the bound.

    Returns:
        (mu_hat, lower edge, upper edge).
    """
    from scipy.optimize import brentq

    ip = model.poi_index
    fixed = dict(fixed or {})
    best = best or minimize(model, data, aux, fixed=fixed, hesse=False, strategy=0)
    if not best.valid:
        raise ModelError("profile_interval: the free fit did not converge")
    mu_hat = float(best.values[ip])
    sigma = float(best.errors[ip]) if best.errors[ip] > 0 else 1.0
    target = math.sqrt(level)
    starts: list[tuple[float, np.ndarray]] = [(mu_hat, best.values)]

    def g(mu: float) -> float:
        init = min(starts, key=lambda t: abs(t[0] - mu))[1]
        m = minimize(model, data, aux, fixed={**fixed, ip: mu}, init=init, hesse=False, strategy=0)
        starts.append((mu, m.values))
        return math.sqrt(max(2.0 * (m.nll - best.nll), 0.0)) - target

    edges = []
    for side in (-1.0, 1.0):
        bound = float(model.bounds[ip, 0 if side < 0 else 1])
        inner, step = mu_hat, 1.2 * sigma * target
        outer = mu_hat + side * step
        g_out = None
        for _ in range(40):
            if (outer - bound) * side >= 0:
                outer = bound
                g_out = g(outer)
                break
            g_out = g(outer)
            if g_out > 0:
                break
            inner, step = outer, 2.0 * step
            outer = mu_hat + side * (abs(outer - mu_hat) + step)
        if g_out is None or g_out <= 0:
            edges.append(bound)
            continue
        a, b = sorted((inner, outer))
        edges.append(float(brentq(g, a, b, xtol=xtol * sigma, rtol=1e-10)))
    return mu_hat, edges[0], edges[1]


# --------------------------------------------------------------------------- fit result


@dataclass
class FitResult:
    """Everything the profile-likelihood fit reports.

    Intervals are offsets from ``mu_hat``: ``dmu_down``/``dmu_up`` are positive. ``breakdown``
    maps "total", "stat", "syst" (sqrt(total^2 - stat^2), MC statistics included),
    "mc_stat" and every systematic group to {"down", "up", "sym"}; a group's numbers are
    sqrt(total^2 - frozen^2) with the group's parameters frozen at their best-fit values
    (Combine/TRExFitter method; correlations make the groups' squares not add up to syst^2).
    """

    poi: str
    mu_hat: float
    dmu_down: float
    dmu_up: float
    dmu_hesse: float
    minos_valid: bool
    breakdown: dict[str, dict[str, float]]
    parameters: list[str]
    values: np.ndarray
    errors: np.ndarray
    prefit_sigma: np.ndarray
    groups: dict[str, list[str]]
    impacts: pd.DataFrame
    pulls: pd.DataFrame
    correlation: np.ndarray
    correlation_names: list[str]
    z0_expected: float
    z0_expected_stat_only: float
    z0_observed: float
    cls_observed: float
    cls_expected: list[float]
    nll_min: float
    valid: bool
    n_fits: int
    elapsed_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def dmu(self) -> float:
        """Symmetrised total uncertainty (dmu_down + dmu_up) / 2."""
        return 0.5 * (self.dmu_down + self.dmu_up)


def _interval(
    m: Minimum, model: HistFactoryModel, data: np.ndarray, aux: np.ndarray, fixed: Mapping[int, float]
) -> tuple[float, float]:
    """(down, up) offsets: MINOS, or the root-finding profile interval when MINOS is invalid."""
    if m.minos is not None and m.minos_valid:
        return -m.minos[0], m.minos[1]
    mu, lo, hi = profile_interval(model, data, aux, best=m, fixed=fixed)
    return mu - lo, hi - mu


def _quad_diff(total: float, frozen: float) -> float:
    return math.sqrt(max(total * total - frozen * frozen, 0.0))


def _z_from_q0(q0: float) -> float:
    return math.sqrt(max(q0, 0.0))


def discovery_significance(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    stat_only: bool = False,
    free_fit: Minimum | None = None,
) -> float:
    """Asymptotic discovery significance Z0 = sqrt(q0), q0 = 2 (NLL(mu=0, profiled) - NLL_min).

    ``stat_only`` fixes every nuisance parameter at its nominal value. q0 = 0 when mu_hat < 0.
    """
    poi = model.poi_index
    fixed_np = {int(i): float(model.nominal_pars[i]) for i in range(model.n_pars) if i != poi} if stat_only else {}
    free = free_fit if (free_fit is not None and not stat_only) else minimize(
        model, data, aux, fixed=fixed_np, hesse=False
    )
    if free.values[poi] <= 0:
        return 0.0
    if model.bounds[poi, 0] > 0:
        raise ModelError(f"POI lower bound {model.bounds[poi, 0]} > 0: cannot test mu = 0")
    cond = minimize(model, data, aux, fixed={**fixed_np, poi: 0.0}, hesse=False, init=free.values)
    return _z_from_q0(2.0 * (cond.nll - free.nll))


@contextlib.contextmanager
def _pyhf_backend(optimizer: Any) -> Iterator[Any]:
    import pyhf

    old = pyhf.get_backend()
    pyhf.set_backend("numpy", optimizer)
    try:
        yield pyhf
    finally:
        pyhf.set_backend(*old)


def cls_upper_limit_pyhf(
    spec: Mapping[str, Any], *, poi: str = "mu", level: float = 0.05, guess: float = 1.0
) -> tuple[float, list[float]]:
    """Asymptotic CLs upper limit (qtilde) computed by pyhf itself (reference; slow, ~0.1 s per point).

    Uses ``pyhf.infer.intervals.upper_limits.toms748_scan`` with the POI bounded at zero;
    returns the observed limit and the expected ones at [-2, -1, 0, +1, +2] sigma.
    """
    import pyhf

    with _pyhf_backend(pyhf.optimize.scipy_optimizer()), warnings.catch_warnings():
        # scipy's SLSQP may warn about clipping to bounds during line searches; pyhf 0.7.6 uses
        # the deprecated jsonschema.RefResolver.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        ws = pyhf.Workspace(dict(spec))
        model = ws.model(poi_name=poi)
        data = ws.data(model)
        bounds = model.config.suggested_bounds()
        idx = model.config.poi_index
        bounds[idx] = (0.0, max(bounds[idx][1], 50.0 * guess))
        obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
            data, model, 1e-3 * guess, 3.0 * guess, level=level, rtol=1e-4, par_bounds=bounds,
            test_stat="qtilde",
        )
    return float(obs), [float(e) for e in exp]


def cls_upper_limit(
    model: HistFactoryModel,
    data: np.ndarray,
    aux: np.ndarray | None = None,
    *,
    level: float = 0.05,
    guess: float = 1.0,
    rtol: float = 1e-4,
) -> tuple[float, list[float]]:
    """Asymptotic CLs upper limit with the qtilde test statistic, pyhf's recipe on the fast model.

    As ``pyhf.infer.hypotest(calctype="asymptotics", test_stat="qtilde")``: the POI is
    bounded at zero; the background-only Asimov data (main and auxiliary) are the model at
    the mu = 0 conditional fit to the data; in the -mu_hat/sigma space the statistic is
    t = sqrt(q) - sqrt(qA) (or (q - qA) / (2 sqrt(qA)) beyond), CLs+b = Phi(-(t + sqrt(qA))),
    CLb = Phi(-t); the expected band n (t = n, n = 2..-2) gives CLs = Phi(-(n + sqrt(qA)))/Phi(-n).

    Returns:
        Observed limit and expected limits ordered [-2, -1, 0, +1, +2] sigma (ascending).
    """
    from scipy.optimize import brentq
    from scipy.special import ndtr, ndtri

    aux = model.aux_nominal if aux is None else np.asarray(aux, dtype=np.float64)
    ip = model.poi_index
    if model.bounds[ip, 0] > 0:
        raise ModelError("POI lower bound must be <= 0 for the upper limit")
    lim_model = _with_bounds(model, ip, (0.0, max(model.bounds[ip, 1], 100.0 * guess)))
    free = minimize(lim_model, data, aux, hesse=False, strategy=0)
    bkg = minimize(lim_model, data, aux, fixed={ip: 0.0}, hesse=False, strategy=0)
    a_data = lim_model.expected(bkg.values)
    a_aux = bkg.values[lim_model.constrained].copy()
    a_nll = lim_model.nll(bkg.values, a_data, a_aux)
    mu_hat = float(free.values[ip])
    cache: dict[float, tuple[float, float]] = {}
    start = {"data": free.values, "asimov": bkg.values}

    def q_values(mu: float) -> tuple[float, float]:
        if mu not in cache:
            cd = minimize(lim_model, data, aux, fixed={ip: mu}, init=start["data"], hesse=False, strategy=0)
            ca = minimize(lim_model, a_data, a_aux, fixed={ip: mu}, init=start["asimov"], hesse=False, strategy=0)
            q = 0.0 if mu_hat > mu else max(2.0 * (cd.nll - free.nll), 0.0)
            cache[mu] = (q, max(2.0 * (ca.nll - a_nll), 0.0))
        return cache[mu]

    def cls_obs(mu: float) -> float:
        q, qa = q_values(mu)
        sq, sqa = math.sqrt(q), math.sqrt(qa)
        if sqa <= 0:
            return 1.0
        t = sq - sqa if sq <= sqa else (q - qa) / (2.0 * sqa)
        return float(ndtr(-(t + sqa)) / ndtr(-t))

    def root(func: Any) -> float:
        lo, hi = 1e-3 * guess, 3.0 * guess
        while func(lo) < 0 and lo > 1e-9:
            lo /= 2.0
        n_expand = 0
        while func(hi) > 0:
            hi *= 2.0
            n_expand += 1
            if n_expand > 30:
                raise ModelError("CLs upper limit: no crossing found")
        return float(brentq(func, lo, hi, rtol=rtol, xtol=1e-12 * guess))

    obs = root(lambda mu: cls_obs(mu) - level)
    expected = []
    for n in (2.0, 1.0, 0.0, -1.0, -2.0):
        target = -n - float(ndtri(level * ndtr(-n)))  # sqrt(qA) at which the band crosses level
        expected.append(root(lambda mu, target=target: target - math.sqrt(q_values(mu)[1])))
    return obs, expected


def _with_bounds(model: HistFactoryModel, index: int, bounds: tuple[float, float]) -> HistFactoryModel:
    import copy

    out = copy.copy(model)
    out.bounds = model.bounds.copy()
    out.bounds[index] = bounds
    return out


def fit_workspace(
    spec: Mapping[str, Any],
    *,
    poi: str = "mu",
    breakdown: bool = True,
    impacts: bool = True,
    limits: bool = True,
    strategy: int = 1,
) -> FitResult:
    """Profile-likelihood fit of a workspace with the fast NLL and iminuit.

    Steps: free fit (MIGRAD, HESSE, MINOS on the POI); stat-only interval (all nuisance
    parameters frozen at best fit); per-group breakdown (each systematic's alpha, and the MC
    statistics gammas as group "mc_stat", frozen in turn, subtracted in quadrature);
    impacts (NP fixed at best fit +/- prefit and +/- postfit sigma, refit, delta mu); pulls;
    correlation matrix; Z0 on the data and on the Asimov mu = 1 data (with and without
    systematics); asymptotic CLs upper limit at 95 % CL via pyhf.

    Args:
        spec: pyhf workspace (e.g. from :func:`build_workspace`).
        poi: signal-strength parameter.
        breakdown: compute the per-group breakdown.
        impacts: compute impacts (4 fits per nuisance parameter).
        limits: compute the CLs upper limit (pyhf, about 1 s).
        strategy: Minuit strategy of the main fit.
    """
    started = time.perf_counter()
    model = HistFactoryModel(spec, poi=poi)
    data = model.observed
    if not np.all(np.isfinite(data)):
        raise DataContractError("workspace observations are missing for some channel")
    aux = model.aux_nominal
    ip = model.poi_index
    n_fits = 1
    best = minimize(model, data, aux, minos=True, strategy=strategy)
    notes: list[str] = []
    if not best.valid:
        notes.append("main fit did not converge (Minuit invalid minimum)")
        log.warning("main fit invalid: mu_hat=%.4g", best.values[ip])
    if not best.minos_valid:
        notes.append("MINOS failed on the POI; interval from profile-likelihood root finding")
    tot_dn, tot_up = _interval(best, model, data, aux, {})
    nps = [i for i in range(model.n_pars) if i != ip and not model.fixed[i] and i not in model.normfactor_index]

    def frozen_interval(indices: Sequence[int]) -> tuple[float, float]:
        nonlocal n_fits
        n_fits += 1
        frozen = {int(i): float(best.values[i]) for i in indices}
        m = minimize(model, data, aux, init=best.values, fixed=frozen, minos=True, hesse=True)
        return _interval(m, model, data, aux, frozen)

    stat_dn, stat_up = frozen_interval(nps) if nps else (tot_dn, tot_up)
    table: dict[str, dict[str, float]] = {}

    def put(name: str, dn: float, up: float) -> None:
        table[name] = {"down": dn, "up": up, "sym": 0.5 * (dn + up)}

    put("total", tot_dn, tot_up)
    put("stat", stat_dn, stat_up)
    put("syst", _quad_diff(tot_dn, stat_dn), _quad_diff(tot_up, stat_up))
    if breakdown:
        for group, idx in model.groups.items():
            f_dn, f_up = frozen_interval(idx)
            put(group, _quad_diff(tot_dn, f_dn), _quad_diff(tot_up, f_up))
    # impacts
    rows = []
    if impacts:
        for i in nps:
            entry: dict[str, Any] = {"parameter": model.names[i], "group": _group_of(model, i)}
            for kind, sigma in (("pre", model.prefit_sigma[i]), ("post", best.errors[i])):
                for sign, label in ((+1, "up"), (-1, "down")):
                    val = float(np.clip(best.values[i] + sign * sigma, *model.bounds[i]))
                    m = minimize(
                        model, data, aux, init=_conditional_start(best, model, i, val), fixed={i: val},
                        hesse=False, strategy=0, steps=best.errors,
                    )
                    n_fits += 1
                    entry[f"{kind}_{label}"] = float(m.values[ip] - best.values[ip])
            rows.append(entry)
    impact_df = pd.DataFrame(rows, columns=["parameter", "group", "pre_up", "pre_down", "post_up", "post_down"])
    if not impact_df.empty:
        impact_df["rank"] = np.maximum(
            np.abs(impact_df[["post_up", "post_down"]]).max(axis=1), 0.0
        )
        impact_df = impact_df.sort_values(["rank", "parameter"], ascending=[False, True], ignore_index=True)
    pulls = pd.DataFrame(
        {
            "parameter": [model.names[i] for i in nps],
            "group": [_group_of(model, i) for i in nps],
            "value": [float(best.values[i]) for i in nps],
            "pull": [
                float((best.values[i] - model.nominal_pars[i]) / model.prefit_sigma[i]) for i in nps
            ],
            "constraint": [float(best.errors[i] / model.prefit_sigma[i]) for i in nps],
        }
    )
    free_idx = [i for i in range(model.n_pars) if not model.fixed[i]]
    if best.covariance is not None:
        cov = best.covariance[np.ix_(free_idx, free_idx)]
        sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
        corr = cov / np.outer(sd, sd)
    else:
        corr = np.full((len(free_idx), len(free_idx)), np.nan)
    # significance: observed on the data, expected on the Asimov mu = 1 data
    z_obs = z_exp = z_exp_stat = math.nan
    if model.bounds[ip, 0] <= 0:
        z_obs = discovery_significance(model, data, aux, free_fit=best)
        asimov_data, asimov_aux = model.asimov()
        z_exp = discovery_significance(model, asimov_data, asimov_aux)
        z_exp_stat = discovery_significance(model, asimov_data, asimov_aux, stat_only=True)
        n_fits += 5
    else:
        notes.append("POI bounded above zero: no discovery significance")
    cls_obs, cls_exp = math.nan, [math.nan] * 5
    if limits and model.bounds[ip, 0] <= 0:
        try:
            cls_obs, cls_exp = cls_upper_limit(model, data, aux, guess=max(0.5 * (tot_dn + tot_up), 1e-3))
        except Exception as exc:  # noqa: BLE001 - a limit failure must not lose the fit
            notes.append(f"CLs upper limit failed: {type(exc).__name__}: {exc}")
            log.warning("CLs upper limit failed: %s", exc)
    result = FitResult(
        poi=poi,
        mu_hat=float(best.values[ip]),
        dmu_down=tot_dn,
        dmu_up=tot_up,
        dmu_hesse=float(best.errors[ip]),
        minos_valid=best.minos_valid,
        breakdown=table,
        parameters=list(model.names),
        values=best.values,
        errors=best.errors,
        prefit_sigma=model.prefit_sigma,
        groups={g: [model.names[i] for i in idx] for g, idx in model.groups.items()},
        impacts=impact_df,
        pulls=pulls,
        correlation=corr,
        correlation_names=[model.names[i] for i in free_idx],
        z0_expected=z_exp,
        z0_expected_stat_only=z_exp_stat,
        z0_observed=z_obs,
        cls_observed=cls_obs,
        cls_expected=cls_exp,
        nll_min=best.nll,
        valid=best.valid,
        n_fits=n_fits,
        elapsed_s=time.perf_counter() - started,
        notes=notes,
    )
    log.info(
        "fit: mu = %.4f -%.4f +%.4f (stat -%.4f +%.4f), Z0 exp %.2f, %d fits in %.2f s",
        result.mu_hat, tot_dn, tot_up, stat_dn, stat_up, z_exp, n_fits, result.elapsed_s,
    )
    return result


def _conditional_start(best: Minimum, model: HistFactoryModel, i: int, value: float) -> np.ndarray:
    """Linear prediction of the conditional minimum with parameter i at ``value``.

    From the Hesse covariance: theta_j = theta_hat_j + C_ji / C_ii (value - theta_hat_i). Starting
    there cuts the refit of a strongly correlated parameter (an MC-stat gamma) ~10x.
    """
    start = best.values.copy()
    cov = best.covariance
    if cov is not None and cov[i, i] > 0:
        start = start + cov[:, i] / cov[i, i] * (value - best.values[i])
    start[i] = value
    return np.clip(start, model.bounds[:, 0], model.bounds[:, 1])


def _group_of(model: HistFactoryModel, i: int) -> str:
    for g, idx in model.groups.items():
        if i in idx:
            return g
    return ""


def breakdown_row(result: FitResult, systematics: Sequence[str] = ()) -> dict[str, float]:
    """Symmetrised breakdown in the uncertainty-table's column names.

    Keys: dmu_stat, dmu_<syst> for every name in ``systematics`` (0.0 if its modifiers were
    all dropped as ineffective), dmu_mcstat, dmu_syst_tot, dmu_tot, plus mu_hat.

    Example:
        >>> r = FitResult("mu", 1.0, 0.5, 0.6, 0.55, True,
        ...     {"total": {"down": 0.5, "up": 0.6, "sym": 0.55}, "stat": {"down": 0.3, "up": 0.4, "sym": 0.35},
        ...      "syst": {"down": 0.4, "up": 0.45, "sym": 0.425}, "lumi": {"down": 0.1, "up": 0.1, "sym": 0.1}},
        ...     [], np.zeros(0), np.zeros(0), np.zeros(0), {}, pd.DataFrame(), pd.DataFrame(),
        ...     np.zeros((0, 0)), [], 0.0, 0.0, 0.0, 0.0, [], 0.0, True, 1, 0.0)
        >>> breakdown_row(r, ["lumi", "sig"])["dmu_sig"], breakdown_row(r, ["lumi"])["dmu_tot"]
        (0.0, 0.55)
    """
    b = result.breakdown
    row = {"mu_hat": result.mu_hat, "dmu_stat": b["stat"]["sym"]}
    for name in systematics:
        row[f"dmu_{name}"] = b.get(name, {"sym": 0.0})["sym"]
    row["dmu_mcstat"] = b.get(MC_STAT, {"sym": 0.0})["sym"]
    row["dmu_syst_tot"] = b["syst"]["sym"]
    row["dmu_tot"] = b["total"]["sym"]
    return row


def _jsonable(x: Any) -> Any:
    if isinstance(x, pd.DataFrame):
        return [_jsonable(r) for r in x.to_dict(orient="records")]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def fit_result_to_dict(result: FitResult) -> dict[str, Any]:
    """JSON-safe dict of a :class:`FitResult` (NaN/inf become null)."""
    out = {k: getattr(result, k) for k in result.__dataclass_fields__}
    out["dmu"] = result.dmu
    return _jsonable(out)


# --------------------------------------------------------------------------- pyhf reference


def pyhf_minos(spec: Mapping[str, Any], *, poi: str = "mu") -> tuple[float, float, float]:
    """Plain pyhf fit (minuit optimizer) of ``spec``: (mu_hat, MINOS lower offset < 0, upper > 0).

    The cross-check of the fast path; used by the tests and the benchmark.
    """
    import pyhf

    with _pyhf_backend(pyhf.optimize.minuit_optimizer(tolerance=1e-3)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = pyhf.Workspace(dict(spec))
        model = ws.model(poi_name=poi)
        data = ws.data(model)
        pars, res = pyhf.infer.mle.fit(data, model, return_result_obj=True)
        m = res.minuit
        name = m.parameters[model.config.poi_index]
        m.minos(name)
        me = m.merrors[name]
    return float(pars[model.config.poi_index]), float(me.lower), float(me.upper)


# --------------------------------------------------------------------------- expected uncertainty


def fisher_uncertainty(model: HistFactoryModel, *, pars: np.ndarray | None = None, step: float = 1e-5) -> tuple[float, float]:
    """Expected (Asimov) uncertainty on the POI from the Fisher information at ``pars``.

    On Asimov data the NLL Hessian at the minimum is exactly the Fisher matrix
    I = J^T diag(1/lambda) J + C^-1 (J = d lambda / d theta, C the constraint covariance), so no fit
    is needed. Returns (total, stat_only) = (sqrt(I^-1)_mu,mu, 1/sqrt(I_mu,mu)). It is the
    curvature (Hesse) width; MINOS differs for strongly asymmetric likelihoods.
    """
    pars = model.nominal_pars if pars is None else np.asarray(pars, dtype=np.float64)
    free = [i for i in range(model.n_pars) if not model.fixed[i]]
    lam = model.expected(pars)
    jac = np.empty((len(free), lam.size))
    for k, i in enumerate(free):
        h = step * max(1.0, abs(pars[i]))
        up, dn = pars.copy(), pars.copy()
        up[i] += h
        dn[i] -= h
        jac[k] = (model.expected(up) - model.expected(dn)) / (2 * h)
    info = (jac / np.maximum(lam, _TINY)) @ jac.T
    pos = {int(i): k for k, i in enumerate(free)}
    for c, sig in zip(model.constrained, model.constraint_sigma, strict=True):
        if int(c) in pos:
            info[pos[int(c)], pos[int(c)]] += 1.0 / sig**2
    ip = pos[model.poi_index]
    stat = 1.0 / math.sqrt(info[ip, ip]) if info[ip, ip] > 0 else math.inf
    try:
        cov = np.linalg.inv(info)
        tot = math.sqrt(cov[ip, ip]) if cov[ip, ip] > 0 else math.inf
    except np.linalg.LinAlgError:
        tot = math.inf
    return tot, stat


@dataclass(frozen=True)
class BinningChoice:
    """Result of :func:`optimise_binning`: the best candidate and the table of all of them."""

    threshold: float
    n_bins: int
    bin_edges: np.ndarray
    dmu_tot: float
    dmu_stat: float
    candidates: pd.DataFrame


def optimise_binning(
    scores: Mapping[str, pd.DataFrame],
    systematics: Sequence[Systematic],
    *,
    candidate_thresholds: Sequence[float],
    n_bins_options: Sequence[int],
    score_max: float = 1.0,
    group_by: str = "process",
    mc_stat: bool = True,
    min_bin_yield: float = 0.0,
) -> BinningChoice:
    """Choose threshold and binning by the expected profile-likelihood uncertainty on mu.

    For each (threshold t, n) the fit region (t, score_max] is split into n uniform bins and
    the Asimov total uncertainty is computed with :func:`fisher_uncertainty` (fast path: one
    model evaluation per parameter, no minimisation). All candidates are histogrammed in
    one pass on the union of their edges and merged exactly (right-closed bins). Candidates
    with an empty bin, or a bin below ``min_bin_yield`` expected events, are skipped
    (dmu_tot = inf). Ties go to the fewer bins, then the lower threshold.

    Returns:
        The best candidate and a DataFrame (threshold, n_bins, dmu_tot, dmu_stat, S, B, status).
    """
    from .templates import build_templates, rebin

    cands = [(float(t), int(n)) for t in candidate_thresholds for n in n_bins_options]
    if not cands:
        raise ConfigError("optimise_binning needs at least one candidate threshold and bin count")
    edge_sets = {c: np.round(np.linspace(c[0], score_max, c[1] + 1), 12) for c in cands}
    union = np.unique(np.concatenate(list(edge_sets.values())))
    fine = build_templates(scores, bin_edges=union, group_by=group_by)  # type: ignore[arg-type]
    rows = []
    for (t, n), edges in edge_sets.items():
        row: dict[str, Any] = {"threshold": t, "n_bins": n, "dmu_tot": math.inf, "dmu_stat": math.inf}
        tmpl = rebin(fine, edges)
        row["S"] = float(tmpl.total(signal=True).sum())
        row["B"] = float(tmpl.total(signal=False).sum())
        if np.any(tmpl.total() <= max(min_bin_yield, 0.0)):
            row["status"] = "empty bin"
            rows.append(row)
            continue
        try:
            spec = build_workspace(tmpl, systematics, mc_stat=mc_stat, validate=False)
            tot, stat = fisher_uncertainty(HistFactoryModel(spec))
            row.update(dmu_tot=tot, dmu_stat=stat, status="ok")
        except ModelError as exc:
            row["status"] = f"skipped: {exc}"
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[np.isfinite(table["dmu_tot"])]
    if ok.empty:
        raise ModelError("no binning candidate gives a finite expected uncertainty; lower the thresholds")
    best = ok.sort_values(["dmu_tot", "n_bins", "threshold"], kind="stable").iloc[0]
    key = (float(best["threshold"]), int(best["n_bins"]))
    log.info("best binning: threshold %.3f, %d bins, expected dmu_tot %.4f", key[0], key[1], best["dmu_tot"])
    return BinningChoice(
        threshold=key[0],
        n_bins=key[1],
        bin_edges=edge_sets[key],
        dmu_tot=float(best["dmu_tot"]),
        dmu_stat=float(best["dmu_stat"]),
        candidates=table,
    )


__all__ = [
    "MC_STAT",
    "BinningChoice",
    "FitResult",
    "HistFactoryModel",
    "Minimum",
    "breakdown_row",
    "build_workspace",
    "cls_upper_limit",
    "cls_upper_limit_pyhf",
    "discovery_significance",
    "fisher_uncertainty",
    "fit_result_to_dict",
    "fit_workspace",
    "minimize",
    "optimise_binning",
    "profile_interval",
    "pyhf_minos",
    "validate_workspace",
]
