"""The learned Neyman construction (:mod:`.neyman`) on the binned HistFactory model of a classifier:
the workflow's ``neyman`` method.

Parameters of the construction: mu and the K nuisances with the largest impact on mu (Hesse
post-fit impact |C_mu,k| / sqrt(C_kk) of the fit to the observed data), K = ``neyman.nuisances``.
The other nuisances are profiled in the statistic and simulated at their nominal values with
their auxiliary data thrown from the constraints: the critical value does not depend on them
(approximate where it would; the toys measure the coverage).

The statistic is the two-sided profile likelihood ratio t(mu) = 2 (NLL(mu, theta-hat-hat) -
NLL_min): the free fit is the lowest minimum over the model's inits and each free histosys alpha
started at -1 and 1; the conditional fit starts from the free minimum. The learned c(mu, nu) is stored on a regular grid (Parquet, no pickles) and
interpolated linearly: :class:`GridCritical`. Sets: ``hybrid`` c(mu) = c(mu, nu-hat-hat(mu))
clipped to the box; ``least_favourable`` c(mu) = max over the box's nu grid of c(mu, nu).
The edges of {mu : t(mu) <= c(mu)} are found by a bracketing secant search on
sqrt(t) - sqrt(c) outward from mu-hat, all datasets at once (:func:`neyman_intervals`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import RegularGridInterpolator

from ..errors import ConfigError, ModelError
from .batched import BatchFit, fit_batch
from .likelihood import HistFactoryModel

#: The one confidence level of the workflow's intervals (the toys' target).
LEVEL = 0.6827
#: Extra starts of each free histosys alpha in the free fit (a non-monotonic shape systematic
#: can give the NLL two valleys). Two, not the toys' profile's four: the free fit is most of the
#: calibration's cost, and on the smoke workspaces the extra starts never found a lower minimum.
HISTOSYS_STARTS = (-1.0, 1.0)
NEYMAN_METHODS = ("hybrid", "least_favourable")
GRID_COLUMNS = ("mu", "nu1", "nu2")
#: How the nuisances outside the construction are treated (docs and the table's notes).
REMAINING = (
    "the other nuisances are profiled in the statistic and simulated at their nominal values "
    "with their auxiliary data thrown (the critical value does not depend on them)"
)
#: Fewer valid simulations than this fraction of the budget is an error (fits failing).
MIN_VALID_FRACTION = 0.95


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a workspace's canonical JSON: ties a calibration to its model."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- fits


def free_fit(model: HistFactoryModel, counts: np.ndarray, aux: np.ndarray) -> BatchFit:
    """The free fit of every dataset: the lowest converged minimum over the model's inits and
    each free histosys alpha started at each of :data:`HISTOSYS_STARTS`."""
    best = fit_batch(model, counts, aux)
    for h in model.alpha_index[model.hs_alpha]:
        if model.fixed[h]:
            continue
        for off in HISTOSYS_STARTS:
            init = np.broadcast_to(model.init, (counts.shape[0], model.n_pars)).copy()
            init[:, h] = off
            cand = fit_batch(model, counts, aux, init=init, fallback=False)
            take = cand.converged & (~best.converged | (cand.nll < best.nll - 1e-9))
            for name in ("values", "nll", "converged", "grad", "hess"):
                getattr(best, name)[take] = getattr(cand, name)[take]
    return best


def conditional_fit(
    model: HistFactoryModel,
    counts: np.ndarray,
    aux: np.ndarray,
    mu: np.ndarray,
    init: np.ndarray,
) -> BatchFit:
    """The fit at fixed mu (one value per dataset) from ``init`` (T, P)."""
    start = np.array(init, dtype=np.float64)
    start[:, model.poi_index] = mu
    return fit_batch(model, counts, aux, init=start, fixed={model.poi_index: mu})


def dominant_nuisances(
    model: HistFactoryModel, counts: np.ndarray, aux: np.ndarray, k: int
) -> tuple[list[int], dict[str, float], BatchFit]:
    """The ``k`` free nuisances with the largest post-fit impact on mu, |C_mu,j| / sqrt(C_jj)
    (C the inverse Hessian of the free fit to ``counts``, ``aux``): the shift of mu-hat when
    nuisance j moves by its post-fit error. Returns the indices (largest first), every
    nuisance's impact by name, and the fit."""
    fit = free_fit(model, counts[None, :], aux[None, :])
    if not fit.converged[0]:
        raise ModelError("neyman: the fit to the observed data did not converge")
    free = np.flatnonzero(~model.fixed)
    cov = np.linalg.pinv(fit.hess[0][np.ix_(free, free)])
    ip = int(np.flatnonzero(free == model.poi_index)[0])
    impacts = {
        model.names[int(j)]: float(abs(cov[ip, a]) / math.sqrt(max(cov[a, a], 1e-300)))
        for a, j in enumerate(free)
        if j != model.poi_index
    }
    order = sorted(impacts, key=lambda n: (-impacts[n], n))
    if k > len(order):
        raise ConfigError(f"neyman.nuisances = {k}, but the model has {len(order)} free nuisances")
    return [model.names.index(n) for n in order[:k]], impacts, fit


@dataclass
class BinnedNeyman:
    """A HistFactory model as a :class:`~.neyman_models.NeymanModel` over (mu, the nuisances
    ``index[1:]``): the others at nominal in the simulation (auxiliary data thrown), profiled
    in the statistic. Data rows: the main counts, then the auxiliary data."""

    model: HistFactoryModel
    index: np.ndarray  # POI first, then the nuisances of the construction
    bounds: np.ndarray

    def __post_init__(self) -> None:
        self.index = np.asarray(self.index, dtype=np.int64)
        self.bounds = np.asarray(self.bounds, dtype=np.float64)
        self.names = tuple(self.model.names[int(i)] for i in self.index)
        self.n_counts = self.model.n_bins
        self._c_pos = {int(c): j for j, c in enumerate(self.model.constrained)}
        self.last_failures = 0

    def full(self, params: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(params, dtype=np.float64))
        full = np.broadcast_to(self.model.nominal_pars, (len(p), self.model.n_pars)).copy()
        full[:, self.index] = p
        return full

    def simulate(self, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Counts ~ Poisson(lambda(theta)), auxiliary data ~ N(theta_c, sigma_c)."""
        full = self.full(params)
        lam = np.array([self.model.expected(row) for row in full])
        counts = rng.poisson(np.clip(lam, 0.0, None)).astype(np.float64)
        c = self.model.constrained
        aux = full[:, c] + self.model.constraint_sigma * rng.standard_normal((len(full), c.size))
        return np.concatenate([counts, aux], axis=1)

    def split(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.atleast_2d(np.asarray(data, dtype=np.float64))
        return d[:, : self.n_counts], d[:, self.n_counts :]

    def statistic(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        """t(mu) per dataset; NaN where a fit did not converge (counted in ``last_failures``)."""
        counts, aux = self.split(data)
        mu_b = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(counts),)).copy()
        free = free_fit(self.model, counts, aux)
        cond = conditional_fit(self.model, counts, aux, mu_b, free.values)
        t = np.maximum(2.0 * (cond.nll - free.nll), 0.0)
        bad = ~(free.converged & cond.converged)
        self.last_failures = int(bad.sum())
        return np.where(bad, np.nan, t)

    def nuisance_hat(self, data: np.ndarray, mu: np.ndarray | float) -> np.ndarray:
        counts, aux = self.split(data)
        mu_b = np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(counts),)).copy()
        free = free_fit(self.model, counts, aux)
        cond = conditional_fit(self.model, counts, aux, mu_b, free.values)
        return cond.values[:, self.index[1:]]


def construction_box(
    model: HistFactoryModel,
    index: Sequence[int],
    fit: BatchFit,
    *,
    mu_points: Sequence[float],
    box_sigma: float,
    nuisance_range: float,
) -> np.ndarray:
    """The box of the construction: mu over ``mu_points`` +/- ``box_sigma`` Hesse sigmas of mu
    (within the POI bounds); each nuisance its nominal value +/- ``nuisance_range`` constraint
    sigmas (an unconstrained one: its fitted value +/- that many Hesse errors)."""
    ip = model.poi_index
    err = fit.errors[0] if fit.errors is not None else np.full(model.n_pars, np.nan)
    s_mu = float(err[ip]) if np.isfinite(err[ip]) and err[ip] > 0 else 1.0
    pts = np.asarray(mu_points, dtype=np.float64)
    lo_b, hi_b = model.bounds[ip]
    rows = [[max(lo_b, pts.min() - box_sigma * s_mu), min(hi_b, pts.max() + box_sigma * s_mu)]]
    for j in index:
        sig = model.prefit_sigma[j]
        if np.isfinite(sig):
            centre = model.nominal_pars[j]
        else:
            centre, sig = fit.values[0, j], float(err[j]) if np.isfinite(err[j]) else 1.0
        lo, hi = model.bounds[j]
        rows.append(
            [max(lo, centre - nuisance_range * sig), min(hi, centre + nuisance_range * sig)]
        )
    return np.array(rows, dtype=np.float64)


# --------------------------------------------------------------------------- critical values


@dataclass(frozen=True)
class GridCritical:
    """c(mu, nu) on a regular grid, interpolated linearly; queries are clipped to the grid.

    ``axes``: (mu values, nu_1 values, ...); ``values``: array of shape of the axes."""

    axes: tuple[np.ndarray, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(a.size for a in self.axes)
        if self.values.shape != shape:
            raise ModelError(f"critical-value grid has shape {self.values.shape}, axes {shape}")

    @property
    def bounds(self) -> np.ndarray:
        return np.array([[a[0], a[-1]] for a in self.axes])

    def __call__(self, params: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(np.asarray(params, dtype=np.float64))
        p = np.clip(p, self.bounds[:, 0], self.bounds[:, 1])
        f = RegularGridInterpolator(self.axes, self.values, method="linear")
        return np.asarray(f(p), dtype=np.float64)

    def least_favourable(self, mu: np.ndarray) -> np.ndarray:
        """max over the nu grid of c(mu, nu), interpolated in mu."""
        table = self.values.reshape(self.axes[0].size, -1).max(axis=1)
        m = np.clip(np.asarray(mu, dtype=np.float64), self.axes[0][0], self.axes[0][-1])
        return np.asarray(np.interp(m, self.axes[0], table), dtype=np.float64)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per grid point, columns mu, nu1[, nu2], c (C order)."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        cols = {GRID_COLUMNS[i]: m.ravel() for i, m in enumerate(mesh)}
        return pd.DataFrame({**cols, "c": self.values.ravel()})

    @classmethod
    def from_frame(cls, df: pd.DataFrame, n_dims: int) -> GridCritical:
        names = list(GRID_COLUMNS[:n_dims])
        missing = [c for c in [*names, "c"] if c not in df.columns]
        if missing:
            raise ModelError(f"critical-value table lacks column(s) {missing}: {list(df.columns)}")
        axes = tuple(np.unique(df[c].to_numpy(dtype=np.float64)) for c in names)
        ordered = df.sort_values(names, kind="mergesort")
        values = ordered["c"].to_numpy(dtype=np.float64).reshape(tuple(a.size for a in axes))
        return cls(axes, values)


@dataclass(frozen=True)
class Calibration:
    """A learned construction of one workspace: the grid and what it is over."""

    grid: GridCritical
    index: tuple[int, ...]  # parameter indices: POI, nuisances
    names: tuple[str, ...]
    method: str
    spec_hash: str
    info: Mapping[str, Any]

    def metadata(self) -> dict[str, Any]:
        return {
            "neyman_index": list(self.index),
            "neyman_names": list(self.names),
            "neyman_method": self.method,
            "neyman_spec_hash": self.spec_hash,
            "neyman_level": LEVEL,
            "neyman_info": dict(self.info),
        }

    @classmethod
    def from_frame(cls, df: pd.DataFrame, meta: Mapping[str, Any]) -> Calibration:
        try:
            index = tuple(int(i) for i in meta["neyman_index"])
            names = tuple(str(n) for n in meta["neyman_names"])
            method, spec = str(meta["neyman_method"]), str(meta["neyman_spec_hash"])
        except KeyError as exc:
            raise ModelError(f"critical-value table: metadata lacks {exc}") from exc
        grid = GridCritical.from_frame(df, len(index))
        return cls(grid, index, names, method, spec, dict(meta.get("neyman_info", {})))

    def critical(self, model: HistFactoryModel, mu: np.ndarray, values: np.ndarray) -> np.ndarray:
        """c(mu) of each dataset; ``values`` (T, P) the conditional fit at mu (the hybrid's
        nu-hat-hat(mu))."""
        if self.method == "least_favourable":
            return self.grid.least_favourable(mu)
        nu = values[:, list(self.index[1:])]
        return self.grid(np.column_stack([mu, nu]))


def learn(
    nm: BinnedNeyman,
    *,
    budget: int,
    seed: int,
    grid_points: Sequence[int],
    threads: int = 1,
    regression: Mapping[str, Any] | None = None,
) -> tuple[GridCritical, dict[str, Any]]:
    """Simulate ``budget`` datasets in the box, learn c by quantile regression
    (:func:`~.neyman.learn_critical_values`), tabulate it on the grid (``grid_points`` per axis).
    Returns the grid and a record of the cost (seconds per stage, failed fits)."""
    from .neyman import learn_critical_values, simulate_statistics

    t0 = time.perf_counter()
    params, _, t = simulate_statistics(nm, budget, seed)
    t_sim = time.perf_counter() - t0
    ok = np.isfinite(t)
    if ok.sum() < MIN_VALID_FRACTION * budget:
        raise ModelError(
            f"neyman: only {int(ok.sum())} of {budget} simulated statistics are valid (fits failed)"
        )
    t1 = time.perf_counter()
    cv = learn_critical_values(
        params[ok], t[ok], nm.bounds, levels=(LEVEL,), seed=seed, threads=threads,
        **dict(regression or {}),
    )  # fmt: skip
    axes = tuple(
        np.linspace(lo, hi, int(n)) for (lo, hi), n in zip(nm.bounds, grid_points, strict=True)
    )
    mesh = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    values = cv(mesh, LEVEL).reshape(tuple(a.size for a in axes))
    t_fit = time.perf_counter() - t1
    record = {
        "budget": int(budget),
        "regression": dict(regression or {}),
        "n_valid": int(ok.sum()),
        "seconds_simulation": round(t_sim, 3),
        "seconds_regression": round(t_fit, 3),
        "simulations_per_second": round(budget / max(t_sim, 1e-9), 1),
        "t_quantile_pooled": float(np.quantile(t[ok], LEVEL)),
    }
    return GridCritical(axes, values), record


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class NeymanIntervals:
    """Per dataset: mu-hat, the set's edges, whether an edge is at a POI bound, whether the
    search failed, and the decision t(mu_test) <= c(mu_test) when a test point was given."""

    mu_hat: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    at_bound: np.ndarray
    failed: np.ndarray
    accepted: np.ndarray | None = None


def neyman_intervals(
    model: HistFactoryModel,
    cal: Calibration,
    counts: np.ndarray,
    aux: np.ndarray,
    *,
    mu_test: np.ndarray | None = None,
    max_iter: int = 20,
    xtol: float = 1e-5,
) -> NeymanIntervals:
    """The edges of {mu : t(mu) <= c(mu)} of every dataset, searched outward from mu-hat on
    each side: g(mu) = sqrt(t(mu)) - sqrt(c(mu)) is -sqrt(c) < 0 at mu-hat; the first trial
    is mu-hat +/- sqrt(c) sigma_Hesse (the edge if t were Wilks-parabolic), then secant steps,
    regula falsi (Illinois) once the root is bracketed, until the step is below ``xtol``
    sigma_Hesse. One batched conditional fit of all datasets and both sides per step.
    ``mu_test``: also the acceptance decision at those values (the coverage indicator)."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    aux = np.atleast_2d(np.asarray(aux, dtype=np.float64))
    n = counts.shape[0]
    ip = model.poi_index
    lo_b, hi_b = model.bounds[ip]
    free = free_fit(model, counts, aux)
    mu_hat = free.values[:, ip].copy()
    nll_min = free.nll.copy()
    failed = ~free.converged
    err = free.errors[:, ip] if free.errors is not None else np.full(n, np.nan)
    sigma = np.where(np.isfinite(err) & (err > 0), err, 1.0)
    c_hat = cal.critical(model, mu_hat, free.values)
    # both sides at once: rows 0..n-1 the lower edge, n..2n-1 the upper edge
    side = np.concatenate([-np.ones(n), np.ones(n)])
    cc, aa = np.concatenate([counts, counts]), np.concatenate([aux, aux])
    bound = np.where(side < 0, lo_b, hi_b)
    sig2 = np.concatenate([sigma, sigma])
    xa = np.concatenate([mu_hat, mu_hat])
    ga = -np.sqrt(np.concatenate([c_hat, c_hat]))
    x = np.clip(xa - side * ga * sig2, lo_b, hi_b)
    init = np.concatenate([free.values, free.values])
    xb = np.full(2 * n, np.nan)
    gb = np.full(2 * n, np.nan)
    last = np.zeros(2 * n, dtype=np.int8)  # +1: the last step replaced a, -1: b (Illinois)
    done = np.concatenate([failed, failed])
    edge = np.full(2 * n, np.nan)
    at_bound = np.zeros(2 * n, dtype=bool)
    bad = np.zeros(2 * n, dtype=bool)
    nll_ref = np.concatenate([nll_min, nll_min])
    mu_ref = np.concatenate([mu_hat, mu_hat])
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if not act.size:
            break
        xi = x[act]
        cond = conditional_fit(model, cc[act], aa[act], xi, init[act])
        init[act] = cond.values
        t = np.maximum(2.0 * (cond.nll - nll_ref[act]), 0.0)
        g = np.sqrt(t) - np.sqrt(cal.critical(model, xi, cond.values))
        bad[act] |= ~cond.converged
        acc = g <= 0
        # a: the outermost accepted point (g <= 0); b: the innermost rejected one (g > 0)
        xa_i, ga_i, xb_i, gb_i, last_i = xa[act], ga[act], xb[act], gb[act], last[act]
        gb_i = np.where(acc & (last_i == 1), 0.5 * gb_i, gb_i)
        ga_i = np.where(~acc & (last_i == -1), 0.5 * ga_i, ga_i)
        xa_i, ga_i = np.where(acc, xi, xa_i), np.where(acc, g, ga_i)
        xb_i, gb_i = np.where(acc, xb_i, xi), np.where(acc, gb_i, g)
        last_i = np.where(acc, 1, -1).astype(np.int8)
        bracketed = np.isfinite(xb_i)
        with np.errstate(divide="ignore", invalid="ignore"):
            # bracketed: false position; else step outward by about -g Hesse sigmas (g grows
            # about linearly in |mu - mu-hat| / sigma), at least half a sigma
            x_fp = xa_i - ga_i * (xb_i - xa_i) / (gb_i - ga_i)
            reach = np.maximum(np.abs(xi - mu_ref[act]), 0.5 * sig2[act])
            x_ext = xi + side[act] * np.clip(-g, 0.1, 3.0) * reach / np.maximum(
                np.sqrt(np.maximum(t, 1e-12)), 0.3
            )
        x_new = np.where(bracketed, x_fp, x_ext)
        x_new = np.clip(np.where(np.isfinite(x_new), x_new, xi), lo_b, hi_b)
        # accepted at the POI bound itself: the set reaches the bound
        stop_b = acc & np.isclose(xi, bound[act], rtol=0.0, atol=1e-12)
        conv = bracketed & (
            (np.abs(x_new - xi) < xtol * sig2[act]) | (np.abs(xb_i - xa_i) < xtol * sig2[act])
        )
        finish = conv | stop_b
        edge[act[finish]] = np.where(stop_b[finish], bound[act[finish]], x_new[finish])
        at_bound[act[stop_b]] = True
        done[act[finish]] = True
        xa[act], ga[act], xb[act], gb[act], last[act] = xa_i, ga_i, xb_i, gb_i, last_i
        x[act] = x_new
    unfinished = ~done
    bad |= unfinished
    edge[unfinished] = np.nan
    lo, hi = edge[:n], edge[n:]
    out_failed = failed | bad[:n] | bad[n:]
    accepted = None
    if mu_test is not None:
        mt = np.broadcast_to(np.asarray(mu_test, dtype=np.float64), (n,)).copy()
        cond = conditional_fit(model, counts, aux, mt, free.values)
        t = np.maximum(2.0 * (cond.nll - nll_min), 0.0)
        accepted = t <= cal.critical(model, mt, cond.values)
    return NeymanIntervals(mu_hat, lo, hi, at_bound[:n] | at_bound[n:], out_failed, accepted)


def set_on_grid(
    model: HistFactoryModel,
    cal: Calibration,
    counts: np.ndarray,
    aux: np.ndarray,
    grid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The acceptance of one dataset at every mu of ``grid`` (one batched conditional fit):
    returns (accepted (G,), t (G,), c (G,))."""
    g = np.asarray(grid, dtype=np.float64)
    free = free_fit(model, counts[None, :], aux[None, :])
    cc = np.repeat(counts[None, :], g.size, axis=0)
    aa = np.repeat(aux[None, :], g.size, axis=0)
    cond = conditional_fit(model, cc, aa, g, np.repeat(free.values, g.size, axis=0))
    t = np.maximum(2.0 * (cond.nll - free.nll[0]), 0.0)
    c = cal.critical(model, g, cond.values)
    return t <= c, t, c


def pieces(accepted: np.ndarray) -> int:
    """Number of disjoint runs of accepted grid points.

    Example:
        >>> pieces(np.array([False, True, True, False, True]))
        2
    """
    a = np.asarray(accepted, dtype=np.int8)
    return int(np.sum(np.diff(a, prepend=0) == 1))


def regression_name(regression: Mapping[str, Any] | None) -> str:
    """How the critical value was learned, in words (a calibration record's ``regression``).

    Example:
        >>> regression_name({"kind": "polynomial", "degree": 2})
        'degree-2 polynomial quantile regression'
        >>> regression_name({})  # the library's default
        'boosted-tree quantile regression'
    """
    settings = dict(regression or {})
    if settings.get("kind", "trees") == "polynomial":
        return f"degree-{int(settings.get('degree', 2))} polynomial quantile regression"
    return "boosted-tree quantile regression"


def record_notes(record: Mapping[str, Any]) -> str:
    """The table's note of a neyman row: what the construction is over, how its critical value
    was learned, and its flags."""
    flags = ", ".join(record.get("flags") or []) or "none"
    over = ", ".join(record["parameters"])
    cost = record["cost"]
    return (
        f"learned Neyman ({record['method']}, B = {cost['budget']}, "
        f"{regression_name(cost.get('regression'))}) over ({over}); "
        f"{record['remaining']}; flags: {flags}"
    )


__all__ = [
    "LEVEL",
    "REMAINING",
    "record_notes",
    "regression_name",
    "NEYMAN_METHODS",
    "BinnedNeyman",
    "Calibration",
    "GridCritical",
    "NeymanIntervals",
    "construction_box",
    "conditional_fit",
    "dominant_nuisances",
    "free_fit",
    "learn",
    "neyman_intervals",
    "pieces",
    "set_on_grid",
    "spec_hash",
]
