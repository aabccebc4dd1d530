"""The statistical methods that turn observed counts into an interval on mu: one implementation
each, used by the final table's method rows and by the pseudo-experiments alike.

- ``shift``: the cut-and-count shift method (mu re-fitted under each variation, shifts
  symmetrised and added in quadrature with the statistical and MC-statistical terms).
- ``linear``: first-order error propagation; rate (linearisable) systematics through the
  Jacobian of mu = (n - B)/S, shape systematics through their symmetrised shift.
- ``profile``: the binned profile-likelihood interval of the HistFactory model.
- ``chi2``: the covariance-matrix chi2 with fully correlated systematic shifts.
- ``neyman``: the learned Neyman set of the binned model (:mod:`.neyman_binned`); in the toys
  only when listed in ``toys.methods`` (it needs the calibration of the workspace).

Definitions in docs/statistics.md. A new method is one :class:`Method` registered with
:func:`register_method` (plus the ``toys.methods`` enum of the schema).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import stats
from ..errors import ConfigError

if TYPE_CHECKING:  # typing only: the heavy modules are imported where they are used
    from ..templates import Templates
    from .likelihood import HistFactoryModel


@dataclass(frozen=True)
class Term:
    """One uncertainty contribution: its downward and upward sizes (both >= 0) and the
    symmetrised value the table reports (kept as computed, not recomputed from down/up)."""

    down: float
    up: float
    sym: float

    @classmethod
    def symmetric(cls, value: float) -> Term:
        return cls(value, value, value)


ZERO = Term(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class MethodResult:
    """What a method returns: mu-hat and the interval edges; with a breakdown where the
    method gives one (the table rows), else the terms are empty."""

    method: str
    mu_hat: float
    lo: float
    hi: float
    stat: Term | None = None
    systematics: Mapping[str, Term] = field(default_factory=dict)
    mc_stat: Term = ZERO
    syst: Term | None = None
    total: Term | None = None


@dataclass(frozen=True)
class CutAndCount:
    """Single-bin (score above the cut) yields at mu = 1 and each systematic's up/down yields.

    ``deltas`` and ``linearisable`` describe the systematics for the linear method: a
    linearisable (rate) systematic of relative size delta enters through its Jacobian, any
    other through its symmetrised shift. ``mc_sumw2`` is (sum w^2 of the selected signal,
    of the selected background) MC events: the shift and linear methods add the
    MC-statistical term sqrt(mu^2 sumw2_S + sumw2_B)/S (0 by default).
    """

    s: float
    b: float
    s_var: dict[str, tuple[float, float]]
    b_var: dict[str, tuple[float, float]]
    bins: slice = field(default_factory=lambda: slice(0, None))
    deltas: Mapping[str, float] = field(default_factory=dict)
    linearisable: Mapping[str, bool] = field(default_factory=dict)
    mc_sumw2: tuple[float, float] = (0.0, 0.0)


def _mc_term(cut: CutAndCount, mu: float) -> float:
    """MC-statistical uncertainty sqrt(mu^2 sumw2_S + sumw2_B)/S of the cut's yields."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(stats.sigma_mu_mcstat(cut.s, cut.mc_sumw2[0], cut.mc_sumw2[1], mu))


@dataclass
class BinnedInputs:
    """What every method needs for a binned model: the fast likelihood, the cut-and-count
    yields of the selected bins, the per-bin signal and background at mu = 1 and the chi2's
    correlated shift vectors."""

    model: HistFactoryModel
    cut: CutAndCount
    s_bins: np.ndarray
    b_bins: np.ndarray
    chi2_shifts: dict[str, np.ndarray]
    #: what a method needs beyond the model, by method name (the neyman calibration)
    extras: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- cut and count


def _check_symmetrise(mode: str) -> None:
    if mode not in stats.SYMMETRISE_MODES:
        raise ConfigError(f"symmetrise must be 'mean' or 'max', got {mode!r}")


def shift(cut: CutAndCount, n: float, *, symmetrise: str = "mean") -> MethodResult:
    """Shift method on the observed count ``n`` of the cut region (docs/scan.md): each
    systematic's up and down mu-hat minus the nominal one, symmetrised, in quadrature with
    sqrt(n)/S and the MC-statistical term sqrt(mu^2 sumw2_S + sumw2_B)/S (``mc_stat``; it is
    part of ``syst``). The vectorised scan computes the same numbers for every threshold."""
    mu = (n - cut.b) / cut.s
    stat = math.sqrt(max(n, 0.0)) / cut.s
    syst2 = 0.0
    terms = {}
    for k, (s_up, s_dn) in cut.s_var.items():
        b_up, b_dn = cut.b_var[k]
        d_up = (n - b_up) / s_up - mu
        d_dn = (n - b_dn) / s_dn - mu
        d = max(abs(d_up), abs(d_dn)) if symmetrise == "max" else 0.5 * (abs(d_up) + abs(d_dn))
        terms[k] = Term(abs(d_dn), abs(d_up), d)
        syst2 += d * d
    mc = _mc_term(cut, mu)
    tot = math.sqrt(stat * stat + syst2 + mc * mc)
    return MethodResult(
        "shift",
        mu,
        mu - tot,
        mu + tot,
        stat=Term.symmetric(stat),
        systematics=terms,
        mc_stat=Term.symmetric(mc),
        syst=Term.symmetric(math.sqrt(syst2 + mc * mc)),
        total=Term.symmetric(tot),
    )


def linear(
    cut: CutAndCount, n: float, *, symmetrise: str = "mean", asimov: bool = False
) -> MethodResult:
    """First-order propagation of every uncertainty to mu = (n - B)/S (the notebook's functor,
    docs/scan.md) on the observed count ``n`` of the cut region.

    Statistical term sqrt(n)/S. A linearisable systematic of relative size delta scaling the
    yields s_k, b_k contributes |b_k + mu s_k| delta / S (for the luminosity n/S delta, for the
    signal efficiency mu delta, for the background efficiency B/S delta); s_k and b_k are read
    off its up/down yields. A shape systematic has no Jacobian in the functor: its symmetrised
    shift (mu_up - mu_ref, mu_down - mu_ref) is used, its first-order equivalent. ``asimov``
    sets mu_ref to 1 exactly (the scan's definition at n = S + B); otherwise mu_ref = mu-hat.
    MC statistics add sqrt(mu_ref^2 sumw2_S + sumw2_B)/S (``mc_stat``, part of ``syst``).
    """
    _check_symmetrise(symmetrise)
    s, b = cut.s, cut.b
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # at the Asimov point n = S + B exactly as the scan computes it
        stat = float(stats.sigma_mu_stat(s, b)) if asimov else math.sqrt(max(n, 0.0)) / s
        mu = float(stats.mu_hat(n, s, b))
        mu_ref = 1.0 if asimov else mu
        terms: dict[str, Term] = {}
        for k, (s_up, s_dn) in cut.s_var.items():
            b_up, b_dn = cut.b_var[k]
            if cut.linearisable.get(k, False):
                delta = float(cut.deltas[k])
                s_k, b_k = (s_up - s_dn) / (2.0 * delta), (b_up - b_dn) / (2.0 * delta)
                value = float(stats.dmu_linear_terms(s, b, s_k, b_k, delta, n=n))
            else:
                d_up = float(stats.mu_hat(n, s_up, b_up)) - mu_ref
                d_dn = float(stats.mu_hat(n, s_dn, b_dn)) - mu_ref
                value = float(stats.symmetrise(d_up, d_dn, symmetrise))
            terms[k] = Term.symmetric(value)
    syst2 = sum(t.sym**2 for t in terms.values())
    mc = _mc_term(cut, mu_ref)
    tot = math.sqrt(stat**2 + syst2 + mc**2)
    return MethodResult(
        "linear",
        mu_ref if asimov else mu,
        mu - tot,
        mu + tot,
        stat=Term.symmetric(stat),
        systematics=terms,
        mc_stat=Term.symmetric(mc),
        syst=Term.symmetric(math.sqrt(syst2 + mc**2)),
        total=Term.symmetric(tot),
    )


# --------------------------------------------------------------------------- profile likelihood


def profile(inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray) -> MethodResult:
    """Profile-likelihood (Delta NLL = 1/2) interval of the binned model on counts ``n`` and
    auxiliary data ``aux``, one toy at a time with iminuit
    (:func:`~.intervals.toy_profile_interval`: the global minimum over the batched fitter's
    starts, MINOS, root finding where MINOS fails)."""
    from .intervals import toy_profile_interval

    mu, lo, hi = toy_profile_interval(inputs.model, n, aux)
    return MethodResult("profile", mu, lo, hi)


def profile_from_breakdown(
    mu_hat: float, breakdown: Mapping[str, Mapping[str, float]], names: Sequence[str]
) -> MethodResult:
    """The profile method's result from a fit's breakdown table ({group: {down, up, sym}}):
    systematics absent from it (all their modifiers dropped as ineffective) contribute 0."""

    def num(x: Any) -> float:
        return math.nan if x is None else float(x)  # JSON null: a non-finite number

    def term(key: str) -> Term:
        parts = breakdown.get(key)
        return (
            ZERO if parts is None else Term(num(parts["down"]), num(parts["up"]), num(parts["sym"]))
        )

    total = term("total")
    return MethodResult(
        "profile",
        mu_hat,
        mu_hat - total.down,
        mu_hat + total.up,
        stat=term("stat"),
        systematics={k: term(k) for k in names},
        mc_stat=term("mc_stat"),
        syst=term("syst"),
        total=total,
    )


# --------------------------------------------------------------------------- covariance chi2


def chi2(inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray | None = None) -> MethodResult:
    """Covariance-matrix chi2 (V = diag(s + b) + sum_k D_k D_k^T) on the counts ``n``."""
    from .chi2 import fit_mu

    r = fit_mu(n, inputs.s_bins, inputs.b_bins, inputs.chi2_shifts)
    return MethodResult("chi2", r.mu_hat, r.mu_hat - r.dmu_low, r.mu_hat + r.dmu_high)


def chi2_inputs(
    templates: Templates, names: Sequence[str], *, control: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(s, b, shifts) per bin from label-grouped templates: each systematic's shift vector is
    half the difference of its up and down total yields, fully correlated across bins."""
    signal = np.asarray(templates.is_signal)
    s = templates.nominal[signal].sum(axis=0)
    b = templates.nominal[~signal].sum(axis=0)
    shifts = {}
    for name in names:
        up = templates.variations[f"{name}_up"].sum(axis=0)
        down = templates.variations[f"{name}_down"].sum(axis=0)
        shifts[name] = (up - down) / 2.0
    return s, b, shifts


def chi2_from_dict(result: Mapping[str, Any], names: Sequence[str]) -> MethodResult:
    """The chi2 method's result from its JSON record (mu_hat, dmu_low, dmu_high, breakdown)."""
    parts = result["breakdown"]
    mu = float(result["mu_hat"])
    tot = 0.5 * (result["dmu_low"] + result["dmu_high"])
    stat = parts["stat"]
    return MethodResult(
        "chi2",
        mu,
        mu - result["dmu_low"],
        mu + result["dmu_high"],
        stat=Term.symmetric(stat),
        systematics={k: Term.symmetric(parts.get(k, 0.0)) for k in names},
        # the MC statistics' term, when the chi2 has them (fit.mc_stat), as the profile's
        mc_stat=Term.symmetric(parts.get("mc_stat", 0.0)),
        syst=Term.symmetric(math.sqrt(max(tot**2 - stat**2, 0.0))),
        total=Term.symmetric(tot),
    )


# --------------------------------------------------------------------------- registry

ToyInterval = Callable[[BinnedInputs, np.ndarray, np.ndarray, str], MethodResult]


@dataclass(frozen=True)
class ToyBatch:
    """Intervals of many pseudo-experiments at once: per toy mu-hat, the edges, whether an
    edge sits at the POI bound, and a failure reason ("" when the toy has an interval)."""

    mu_hat: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    at_bound: np.ndarray
    failure: list[str]


ToyBatchInterval = Callable[[BinnedInputs, np.ndarray, np.ndarray, str], ToyBatch]


@dataclass(frozen=True)
class Method:
    """A registered method: its name, how it makes an interval for one pseudo-experiment
    (inputs, main counts, auxiliary data, symmetrise mode) and, optionally, for a whole chunk
    of them at once ((toys, bins) counts, (toys, aux) data): the toys use the batch form when
    there is one."""

    name: str
    toy_interval: ToyInterval
    toy_batch: ToyBatchInterval | None = None


def profile_batch(inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, sym: str = "") -> ToyBatch:
    """The profile-likelihood interval of every toy by the batched fitter
    (:func:`~.batched_intervals.profile_intervals_batch`): the global minimum over several
    starting points of the shape parameters (the per-toy MINOS path starts at the nominal
    values only and can stop in the valley nearest the truth, which over-covers), with the
    toys the batched search cannot solve redone by the iminuit path.
    """
    from .batched_intervals import (
        FLAG_FAILED,
        FLAG_HI_BOUND,
        FLAG_LO_BOUND,
        profile_intervals_batch,
    )

    r = profile_intervals_batch(inputs.model, n, aux)
    failed = (r.flags & FLAG_FAILED) != 0
    return ToyBatch(
        r.mu_hat,
        r.lo,
        r.hi,
        (r.flags & (FLAG_LO_BOUND | FLAG_HI_BOUND)) != 0,
        ["no interval from the batched fit or iminuit" if f else "" for f in failed],
    )


def chi2_batch(inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, sym: str = "") -> ToyBatch:
    """The covariance chi2 of every toy (expected statistical variance, so the covariance is
    the same for all toys and the fit is one linear solve): identical to :func:`chi2` per toy.
    """
    from .chi2 import fit_mu

    counts = np.asarray(n, dtype=np.float64)
    ref = fit_mu(inputs.s_bins + inputs.b_bins, inputs.s_bins, inputs.b_bins, inputs.chi2_shifts)
    half = ref.dmu_high
    # mu-hat is linear in the counts: mu(n) = mu(s + b) + w . (n - s - b), w = V^-1 s / F
    weights = _chi2_weights(inputs, half)
    mu = ref.mu_hat + (counts - (inputs.s_bins + inputs.b_bins)) @ weights
    t_n = counts.shape[0]
    return ToyBatch(mu, mu - half, mu + half, np.zeros(t_n, dtype=bool), [""] * t_n)


def _chi2_weights(inputs: BinnedInputs, half: float) -> np.ndarray:
    import scipy.linalg

    from .chi2 import covariance

    s = np.asarray(inputs.s_bins, dtype=np.float64)
    cov = covariance(s + inputs.b_bins, inputs.chi2_shifts)
    return scipy.linalg.solve(cov, s, assume_a="pos") * half**2


def _shift_toy(
    inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, symmetrise: str
) -> MethodResult:
    return shift(inputs.cut, float(n[inputs.cut.bins].sum()), symmetrise=symmetrise)


def _linear_toy(
    inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, symmetrise: str
) -> MethodResult:
    return linear(inputs.cut, float(n[inputs.cut.bins].sum()), symmetrise=symmetrise)


def _neyman_batch(inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, sym: str = "") -> ToyBatch:
    """The learned Neyman set of every toy (:func:`~.neyman_binned.neyman_intervals`) with the
    calibration in ``inputs.extras["neyman"]`` (the toys step loads it)."""
    from .neyman_binned import neyman_intervals

    cal = inputs.extras.get("neyman")
    if cal is None:
        raise ConfigError("toys.methods has neyman but no calibration was loaded (input 'neyman')")
    r = neyman_intervals(inputs.model, cal, n, aux)
    return ToyBatch(
        r.mu_hat, r.lo, r.hi, r.at_bound, ["no Neyman set edge" if f else "" for f in r.failed]
    )


def _neyman_toy(
    inputs: BinnedInputs, n: np.ndarray, aux: np.ndarray, symmetrise: str
) -> MethodResult:
    b = _neyman_batch(inputs, np.atleast_2d(n), np.atleast_2d(aux))
    if b.failure[0]:
        raise RuntimeError(b.failure[0])
    return MethodResult("neyman", float(b.mu_hat[0]), float(b.lo[0]), float(b.hi[0]))


#: The registry of statistical methods (``toys.methods``), in the table's order.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("shift", _shift_toy),
        Method("linear", _linear_toy),
        Method("profile", lambda inputs, n, aux, sym: profile(inputs, n, aux), profile_batch),
        Method("chi2", lambda inputs, n, aux, sym: chi2(inputs, n, aux), chi2_batch),
        Method("neyman", _neyman_toy, _neyman_batch),
    )
}
BUILTIN_METHODS = tuple(METHODS)
#: The default methods of :func:`~.toys.run_toys` (neyman needs its calibration: opt-in).
DEFAULT_TOY_METHODS = ("shift", "linear", "profile", "chi2")


def register_method(method: Method) -> Method:
    """Add a method to :data:`METHODS` (plugins); its name must be new."""
    if not method.name or method.name in METHODS:
        raise ConfigError(f"statistical method {method.name!r} is empty or already registered")
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a plugin method (tests); the built-in methods stay."""
    if name in BUILTIN_METHODS:
        raise ConfigError(f"cannot unregister the built-in method {name!r}")
    METHODS.pop(name, None)


def table_columns_of(result: MethodResult, names: Sequence[str]) -> dict[str, float]:
    """A result's columns in the final table: mu_hat, dmu_stat, dmu_<k>, d_up_<k> and
    d_down_<k> (the upward size and minus the downward size of systematic k's contribution),
    dmu_mcstat, dmu_syst_tot, dmu_tot."""
    from ..systematics import columns

    if result.stat is None or result.syst is None or result.total is None:
        raise ConfigError(f"method {result.method!r} gave no breakdown for the table")
    out: dict[str, float] = {"mu_hat": result.mu_hat, "dmu_stat": result.stat.sym}
    for k in names:
        out[columns.dmu(k)] = result.systematics.get(k, ZERO).sym
    out["dmu_mcstat"] = result.mc_stat.sym
    out["dmu_syst_tot"] = result.syst.sym
    out["dmu_tot"] = result.total.sym
    for k in names:
        t = result.systematics.get(k, ZERO)
        out[columns.d_up(k)] = t.up
        out[columns.d_down(k)] = -t.down
    return out


__all__ = [
    "BUILTIN_METHODS",
    "DEFAULT_TOY_METHODS",
    "METHODS",
    "BinnedInputs",
    "CutAndCount",
    "Method",
    "MethodResult",
    "Term",
    "ToyBatch",
    "chi2",
    "chi2_batch",
    "chi2_from_dict",
    "chi2_inputs",
    "linear",
    "profile",
    "profile_batch",
    "profile_from_breakdown",
    "register_method",
    "shift",
    "table_columns_of",
    "unregister_method",
]
