"""Vectorised NumPy HistFactory likelihood of a pyhf workspace (pyhf 0.7 semantics, ~35 NumPy ops per call)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import scipy.special

from ..errors import ModelError
from .workspace import MC_STAT

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

    def __init__(
        self, spec: Mapping[str, Any], *, measurement: str | None = None, poi: str | None = None
    ) -> None:
        channels = sorted(spec["channels"], key=lambda c: c["name"])
        meas = _pick_measurement(spec, measurement)
        self.poi_name = poi or meas["config"]["poi"]
        offsets, nb = {}, 0
        for ch in channels:
            sizes = {len(s["data"]) for s in ch["samples"]}
            if len(sizes) != 1:
                raise ModelError(
                    f"channel {ch['name']!r}: samples have different bin counts {sorted(sizes)}"
                )
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
                        normsys.setdefault(name, {})[r] = (
                            float(mod["data"]["hi"]),
                            float(mod["data"]["lo"]),
                        )
                    elif kind == "histosys":
                        hi = np.zeros(nb)
                        lo = np.zeros(nb)
                        hi[lo_b:hi_b] = mod["data"]["hi_data"]
                        lo[lo_b:hi_b] = mod["data"]["lo_data"]
                        histosys.setdefault(name, {})[r] = (hi, lo)
                    elif kind == "staterror":
                        if stat_channel.setdefault(name, ch["name"]) != ch["name"]:
                            raise ModelError(
                                f"staterror {name!r} spans several channels; use one per channel"
                            )
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
        self.groups: dict[str, list[int]] = {
            a: [len(nf_names) + i] for i, a in enumerate(alpha_names)
        }
        gamma_fixed: list[bool] = []
        for sname in sorted(staterr):
            sl = self.channel_slices[stat_channel[sname]]
            rws = sorted(staterr[sname])
            stat_rows[rws] = True
            nom_all = self.nominal[rws].sum(axis=0)
            var = cast(np.ndarray, sum(staterr[sname][r] ** 2 for r in rws))
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
        self.ns_alpha = np.array(
            [i for i, a in enumerate(alpha_names) if a in normsys], dtype=np.int64
        )
        hi = np.ones((self.ns_alpha.size, n_rows))
        lo = np.ones((self.ns_alpha.size, n_rows))
        for k, ai in enumerate(self.ns_alpha):
            for r, (h, low) in normsys[alpha_names[ai]].items():
                hi[k, r], lo[k, r] = h, low
        if np.any(hi <= 0) or np.any(lo <= 0):
            raise ModelError("normsys hi/lo factors must be positive")
        self.ns_loghi, self.ns_loglo = np.log(hi), np.log(lo)
        self.ns_coef = _code4_coefficients(hi, lo)  # (6, K, R)
        self.hs_alpha = np.array(
            [i for i, a in enumerate(alpha_names) if a in histosys], dtype=np.int64
        )
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
        self.constrained = np.concatenate(
            [self.alpha_index, np.asarray(free_gamma, dtype=np.int64)]
        )
        self.constraint_sigma = np.concatenate(
            [
                np.ones(n_alpha),
                self.gamma_sigma[[i - self.gamma_index[0] for i in free_gamma]]
                if free_gamma
                else [],
            ]
        )
        self.aux_nominal = np.concatenate([np.zeros(n_alpha), np.ones(len(free_gamma))])
        self.prefit_sigma = np.full(self.n_pars, np.nan)
        self.prefit_sigma[self.constrained] = self.constraint_sigma
        self.nominal_pars = self.init.copy()
        self.nominal_pars[self.alpha_index] = 0.0
        self.nominal_pars[self.gamma_index] = 1.0
        obs = {o["name"]: o["data"] for o in spec.get("observations", [])}
        self.observed = np.concatenate(
            [
                np.asarray(
                    obs.get(
                        ch["name"], np.full(offsets[ch["name"]][1] - offsets[ch["name"]][0], np.nan)
                    ),
                    dtype=np.float64,
                )
                for ch in channels
            ]
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
        self._hs_matrix = (
            np.concatenate([self.hs_up.reshape(h, -1), self.hs_dn.reshape(h, -1)], axis=0)
            if h
            else np.zeros((0, n_rows * self.n_bins))
        )
        self._stat = self.stat_rows.astype(np.float64)
        self._all_stat = bool(self.stat_rows.all())
        self._gamma_template = np.ones(self.n_bins)
        self._exps = np.arange(1, 7, dtype=np.float64)
        self._dexps = np.arange(0, 6, dtype=np.float64)

    def _normsys(self, a: np.ndarray, deriv: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """code4 factors F (K, R) and d ln F / d alpha (K, R; None without ``deriv``)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            pw = a[:, None] ** self._exps  # (K, 6)
            poly = 1.0 + (self._ns_coef @ pw[:, :, None])[:, :, 0]
            inside = bool(np.all(np.abs(a) < 1.0))
            if inside and not deriv:
                return poly, None
            dpw = a[:, None] ** self._dexps
            dpoly = (self._ns_dcoef @ dpw[:, :, None])[:, :, 0]
            if inside:
                return poly, dpoly / poly
            up = (a >= 1.0)[:, None]
            dn = (a <= -1.0)[:, None]
            f_up = np.exp(a[:, None] * self.ns_loghi)
            f_dn = np.exp(-a[:, None] * self.ns_loglo)
            factor = np.where(up, f_up, np.where(dn, f_dn, poly))
            dlog = np.where(up, self.ns_loghi, np.where(dn, -self.ns_loglo, dpoly / poly))
        return factor, dlog

    @staticmethod
    def _code4p(a: np.ndarray, deriv: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """code4p weights of the up and down deltas, and their derivatives (None without
        ``deriv``), stacked (2H,)."""
        a2 = a * a
        p6 = a2 * (15.0 + a2 * (-10.0 + 3.0 * a2)) / 16.0
        half = 0.5 * a
        if not deriv and np.all(np.abs(a) <= 1.0):
            return np.concatenate([half + p6, half - p6]), None
        dp6 = a * (30.0 + a2 * (-40.0 + 18.0 * a2)) / 16.0
        if np.all(np.abs(a) <= 1.0):
            return np.concatenate([half + p6, half - p6]), np.concatenate([0.5 + dp6, 0.5 - dp6])
        inside = np.abs(a) <= 1.0
        u = np.where(a > 1.0, a, np.where(inside, half + p6, 0.0))
        v = np.where(a < -1.0, a, np.where(inside, half - p6, 0.0))
        du = np.where(a > 1.0, 1.0, np.where(inside, 0.5 + dp6, 0.0))
        dv = np.where(a < -1.0, 1.0, np.where(inside, 0.5 - dp6, 0.0))
        return np.concatenate([u, v]), np.concatenate([du, dv])

    def _evaluate(self, pars: np.ndarray, deriv: bool = True) -> dict[str, Any]:
        if self._single_nf:
            nf = 1.0 + self._sig * (pars[0] - 1.0)
        else:
            nf = np.prod(np.where(self.nf_mask, pars[self.normfactor_index][:, None], 1.0), axis=0)
        factor: np.ndarray | None
        dlog: np.ndarray | None
        if self._ns_pidx.size:
            factor, dlog = self._normsys(pars[self._ns_pidx], deriv)
            shape = factor.prod(axis=0)
        else:
            factor = dlog = None
            shape = 1.0
        norm = nf * shape
        coef: np.ndarray | None
        dcoef: np.ndarray | None
        if self._hs_pidx.size:
            coef, dcoef = self._code4p(pars[self._hs_pidx], deriv)
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
            "nf": nf,
            "shape": shape,
            "norm": norm,
            "dlog": dlog,
            "dcoef": dcoef,
            "additive": additive,
            "gamma": gamma,
            "stat_part": stat_part,
            "lam": lam,
        }

    def expected(self, pars: np.ndarray) -> np.ndarray:
        """Expected counts per bin (all channels concatenated)."""
        return self._evaluate(np.asarray(pars, dtype=np.float64), False)["lam"]

    def expected_by_sample(self, pars: np.ndarray) -> np.ndarray:
        """Expected counts per (channel, sample) row and bin."""
        ev = self._evaluate(np.asarray(pars, dtype=np.float64), False)
        g = np.where(self.stat_rows[:, None], ev["gamma"][None, :], 1.0)
        return ev["additive"] * ev["norm"][:, None] * g

    def jacobian(self, pars: np.ndarray, indices: Sequence[int], step: float = 1e-5) -> np.ndarray:
        """Central finite-difference Jacobian d expected / d pars[i], one row per index in ``indices``.

        Parameter i moves by h = ``step`` * max(1, |pars[i]|) each way; shape (len(indices), n_bins).

        Example:
            >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [2.0, 4.0],
            ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]}],
            ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
            >>> model = HistFactoryModel(spec)
            >>> model.jacobian(model.nominal_pars, [0]).round(6).tolist()
            [[2.0, 4.0]]
        """
        jac = np.empty((len(indices), self.n_bins))
        for k, i in enumerate(indices):
            h = step * max(1.0, abs(pars[i]))
            up, dn = pars.copy(), pars.copy()
            up[i] += h
            dn[i] -= h
            jac[k] = (self.expected(up) - self.expected(dn)) / (2 * h)
        return jac

    def background_free_bins(self) -> np.ndarray:
        """Bins whose expectation at POI = 0 is zero for every value of the nuisance parameters.

        No sample without the POI has nominal or histosys (up/down) content there; normsys
        factors, other normfactors and gammas only scale content, so they cannot create any.
        Data in such a bin exclude POI = 0 with certainty (q0 = +inf).

        Example:
            >>> spec = {"channels": [{"name": "SR", "samples": [
            ...     {"name": "s", "data": [2.0, 4.0],
            ...      "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            ...     {"name": "b", "data": [5.0, 0.0], "modifiers": []}]}],
            ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
            >>> HistFactoryModel(spec).background_free_bins().tolist()
            [1]
        """
        rows = ~self.nf_mask[self.poi_index]
        content = np.abs(self.nominal[rows]).sum(axis=0)
        if self.hs_alpha.size:
            content = content + np.abs(self.hs_up[:, rows]).sum(axis=(0, 1))
            content = content + np.abs(self.hs_dn[:, rows]).sum(axis=(0, 1))
        return np.flatnonzero(content == 0.0)

    def is_asimov(self, pars: np.ndarray, data: np.ndarray, aux: np.ndarray) -> bool:
        """Whether (``data``, ``aux``) are the expectation at ``pars`` (Asimov data): counts
        within 1e-5 sqrt(lambda) and auxiliary data within 1e-4 sigma of the parameters.

        Example:
            >>> spec = {"channels": [{"name": "SR", "samples": [{"name": "s", "data": [2.0, 4.0],
            ...     "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}]}],
            ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}]}
            >>> m = HistFactoryModel(spec)
            >>> m.is_asimov(m.nominal_pars, np.array([2.0, 4.0]), m.aux_nominal), m.is_asimov(
            ...     m.nominal_pars, np.array([2.0, 5.0]), m.aux_nominal)
            (True, False)
        """
        lam = self.expected(pars)
        pulls = (np.asarray(pars)[self.constrained] - aux) / self.constraint_sigma
        close = np.abs(np.asarray(data) - lam) <= 1e-5 * np.sqrt(np.maximum(lam, 1.0))
        return bool(np.all(close) and np.all(np.abs(pulls) <= 1e-4))

    def bin_label(self, b: int) -> str:
        """ "channel[i]" of the global bin index ``b``."""
        for name, sl in self.channel_slices.items():
            if sl.start <= b < sl.stop:
                return f"{name}[{b - sl.start}]"
        raise ModelError(f"bin {b} outside the model's {self.n_bins} bins")

    # -------------------------------------------------------------- likelihood
    def data_constant(self, data: np.ndarray) -> float:
        """The parameter-independent part of the NLL for ``data`` (lgamma and Gaussian norms)."""
        return float(
            np.sum(scipy.special.gammaln(np.asarray(data, dtype=np.float64) + 1.0))
            + np.sum(np.log(self.constraint_sigma))
            + _LOG_SQRT_2PI * self.constrained.size
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
        ev = self._evaluate(pars, grad)
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


__all__ = ["HistFactoryModel"]
