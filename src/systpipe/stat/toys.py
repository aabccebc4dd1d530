"""Pseudo-experiments: coverage, bias and FAIR-Universe challenge score of every mu-interval method."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataContractError
from ..systematics import parse_systematics
from .likelihood import HistFactoryModel
from .methods import DEFAULT_TOY_METHODS, METHODS, BinnedInputs, CutAndCount
from .priors import Prior
from .workspace import MC_STAT

log = logging.getLogger(__name__)

Mode = Literal["frequentist", "challenge", "bootstrap", "fair_universe"]
MODES: tuple[str, ...] = ("frequentist", "challenge", "bootstrap", "fair_universe")
_MODE_CODE = {"frequentist": 0, "challenge": 1, "bootstrap": 2, "fair_universe": 3}
#: The FAIR-Universe HiggsML challenge's range of true signal strengths (mu ~ U(0.1, 3)).
FAIR_UNIVERSE_MU_RANGE = (0.1, 3.0)
FITTERS: tuple[str, ...] = ("batched", "iminuit")
SIGNAL_REGION = "SR"
CL68 = 0.6827
EPSILON = 1e-3
TOY_COLUMNS = [
    "toy",
    "mode",
    "method",
    "mu_true",
    "mu_hat",
    "lo",
    "hi",
    "width",
    "covered",
    "at_bound",
    "status",
]


# --------------------------------------------------------------------------- challenge score


def coverage_penalty(c: float, n: int) -> float:
    """FAIR-Universe HiggsML coverage penalty f(c) for N pseudo-experiments.

    sigma68 = sqrt((1 - 0.6827) 0.6827 N) / N; f = 1 inside 0.6827 +/- 2 sigma68, quartic in
    the distance below the band (under-coverage), cubic above it (over-coverage).

    Example:
        >>> s = math.sqrt((1 - 0.6827) * 0.6827 * 1000) / 1000
        >>> coverage_penalty(0.6827, 1000), coverage_penalty(0.6827 + 2 * s, 1000)
        (1.0, 1.0)
        >>> round(coverage_penalty(0.6827 - 3 * s, 1000), 12), round(coverage_penalty(0.6827 + 4 * s, 1000), 12)
        (2.0, 9.0)
        >>> round(coverage_penalty(0.5, 100), 4)
        14.7443
    """
    if n <= 0:
        return math.inf
    sigma = math.sqrt((1.0 - CL68) * CL68 * n) / n
    lo, hi = CL68 - 2.0 * sigma, CL68 + 2.0 * sigma
    if c < lo:
        return 1.0 + abs((c - lo) / sigma) ** 4
    if c > hi:
        return 1.0 + abs((c - hi) / sigma) ** 3
    return 1.0


def challenge_score(w: float, c: float, n: int) -> float:
    """FAIR-Universe score s = -ln((w + 1e-3) f(c)); higher is better.

    Example:
        >>> round(challenge_score(0.1, 0.6827, 1000), 4), round(challenge_score(0.2, 0.6827, 1000), 4)
        (2.2926, 1.6045)
        >>> round(challenge_score(0.1, 0.5, 100), 4)
        -0.3982
    """
    return -math.log((w + EPSILON) * coverage_penalty(c, n))


# --------------------------------------------------------------------------- setup


@dataclass
class ToySetup(BinnedInputs):
    """The inputs of every method for one workspace, plus what the template-bootstrap mode
    needs: the MC sum of squared weights of every (channel, sample) row and bin."""

    row_sumw2: np.ndarray | None = None


def first_bin_for_threshold(
    bin_edges: Sequence[float] | np.ndarray, threshold: float | None
) -> int:
    """Index of the bin whose lower edge is the cut-and-count threshold (None: the first bin).

    Example:
        >>> first_bin_for_threshold([0.5, 0.6, 0.7, 0.8], 0.7), first_bin_for_threshold([0.5, 1.0], None)
        (2, 0)
    """
    edges = np.asarray(bin_edges, dtype=np.float64)
    if threshold is None:
        return 0
    hit = np.flatnonzero(np.isclose(edges[:-1], threshold, rtol=0.0, atol=1e-9))
    if hit.size == 0:
        raise ConfigError(
            f"toys.cut_threshold={threshold} is not a lower bin edge of the fit binning {edges.tolist()}"
        )
    return int(hit[0])


def prepare(
    spec: Mapping[str, Any],
    *,
    systematics: Sequence[Mapping[str, Any]] = (),
    first_bin: int = 0,
    poi: str = "mu",
) -> ToySetup:
    """Build the fast model and the cut-and-count/chi2 inputs from a workspace.

    The cut-and-count selection is the bins of the signal-region channel ("SR"; the only
    channel of a one-channel workspace) from ``first_bin`` on (score above that bin's lower
    edge); the chi2 and the profile likelihood use every channel. Each systematic's up/down yields are the model's at alpha = +/-1 (exactly
    the workspace's hi/lo templates), so all methods see the same variations; the MC
    statistical uncertainty enters only the profile and chi2 methods. ``systematics`` (the
    config's list) tells the linear method which are rate systematics and their sizes;
    without it every systematic enters the linear method through its symmetrised shift.
    """
    model = HistFactoryModel(spec, poi=poi)
    # the cut-and-count region is the signal-region channel (not a control region) from
    # first_bin on; a single-channel workspace is its own signal region
    region = model.channel_slices.get(SIGNAL_REGION, slice(0, model.n_bins))
    n_region = region.stop - region.start
    if not 0 <= first_bin < n_region:
        raise ConfigError(f"toys.first_bin={first_bin} outside 0..{n_region - 1}")
    sl = slice(region.start + first_bin, region.stop)
    nominal = model.nominal_pars.copy()
    nominal[model.poi_index] = 1.0

    def split(pars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = model.expected_by_sample(pars)
        return rows[model.signal_rows].sum(axis=0), rows[~model.signal_rows].sum(axis=0)

    s_bins, b_bins = split(nominal)
    s_var: dict[str, tuple[float, float]] = {}
    b_var: dict[str, tuple[float, float]] = {}
    shifts: dict[str, np.ndarray] = {}
    for group, idx in model.groups.items():
        if group == MC_STAT:
            continue
        vals = []
        for sign in (+1.0, -1.0):
            p = nominal.copy()
            p[idx] = sign
            vals.append(split(p))
        (s_up, b_up), (s_dn, b_dn) = vals
        s_var[group] = (float(s_up[sl].sum()), float(s_dn[sl].sum()))
        b_var[group] = (float(b_up[sl].sum()), float(b_dn[sl].sum()))
        shifts[group] = 0.5 * ((s_up + b_up) - (s_dn + b_dn))
    if MC_STAT in model.groups:
        idx = model.groups[MC_STAT]
        sigma = model.prefit_sigma[idx]
        bins = model.gamma_bins[np.searchsorted(model.gamma_index, idx)]
        comp = np.zeros((len(idx), model.n_bins))
        comp[np.arange(len(idx)), bins] = sigma * (s_bins + b_bins)[bins]
        shifts[MC_STAT] = comp
    rates = {
        s.name: s for s in parse_systematics(systematics) if s.linearisable and s.name in s_var
    }
    row_sumw2 = _row_sumw2(spec, model)
    # the cut-and-count methods' MC-statistics term, as in the table's rows
    mc_sumw2 = (
        float(row_sumw2[model.signal_rows][:, sl].sum()),
        float(row_sumw2[~model.signal_rows][:, sl].sum()),
    )
    cut = CutAndCount(
        float(s_bins[sl].sum()),
        float(b_bins[sl].sum()),
        s_var,
        b_var,
        sl,
        deltas={k: float(s["delta"]) for k, s in rates.items()},
        linearisable=dict.fromkeys(rates, True),
        mc_sumw2=mc_sumw2,
    )
    if cut.s <= 0:
        raise ConfigError("no signal in the cut-and-count region; lower toys.first_bin")
    return ToySetup(
        model=model, cut=cut, s_bins=s_bins, b_bins=b_bins, chi2_shifts=shifts, row_sumw2=row_sumw2
    )


def _row_sumw2(spec: Mapping[str, Any], model: HistFactoryModel) -> np.ndarray:
    """Sum of squared MC weights per model row and bin, from the samples' staterror data
    (zero where a sample has none: its template is then not fluctuated)."""
    out = np.zeros_like(model.nominal)
    by_name = {c["name"]: c for c in spec["channels"]}
    for r, (channel, sample) in enumerate(model.rows):
        sl = model.channel_slices[channel]
        entry = next(s for s in by_name[channel]["samples"] if s["name"] == sample)
        for mod in entry["modifiers"]:
            if mod["type"] == "staterror":
                out[r, sl] = np.square(np.asarray(mod["data"], dtype=np.float64))
    return out


# --------------------------------------------------------------------------- toys


def toy_rng(seed: int, mode: str, index: int) -> np.random.Generator:
    """The generator of toy ``index``: a pure function of (seed, mode, global index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _MODE_CODE[mode], int(index)]))


def throw_toy(
    setup: ToySetup,
    rng: np.random.Generator,
    *,
    mode: str,
    mu_true: float,
    priors: Mapping[str, Prior] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One pseudo-experiment: (main counts per bin, auxiliary data).

    frequentist: parameters at nominal (mu = mu_true); auxiliary data thrown from the
    constraints (alpha aux ~ N(0, 1), staterror aux ~ N(1, sigma_b), as the Gaussian
    constraints of the model); Poisson counts.
    challenge: true nuisance parameters drawn from the constraints (gammas kept > 0), or from
    ``priors`` (:mod:`.priors`, ``toys.priors``) for the systematics that have one; data thrown
    from the model at those values; auxiliary data at nominal. fair_universe: the same, at the
    ``mu_true`` that :func:`run_toys` draws per toy (the FAIR-Universe challenge's sets).
    bootstrap: the MC templates themselves fluctuated (the binned Poisson bootstrap of the
    events: each sample's bin content times Poisson(N_eff)/N_eff, N_eff = content^2 / sum w^2),
    data thrown from the fluctuated templates at nominal nuisance parameters, the auxiliary data
    of the systematics thrown as in frequentist mode, those of the MC statistics at nominal: the
    fit, which uses the nominal templates, sees the finite-MC error it must cover.
    """
    model = setup.model
    truth = model.nominal_pars.copy()
    truth[model.poi_index] = mu_true
    sigma = model.constraint_sigma
    centre = model.aux_nominal
    if mode == "bootstrap":
        counts = _bootstrap_toy(setup, rng, mu_true=mu_true)
        # the other constraints fluctuate as in frequentist mode (frozen, they would make the
        # intervals over-cover and hide what the finite MC does); the template fluctuation
        # takes the place of the MC-statistics (gamma) auxiliary data
        draws = rng.standard_normal(centre.size)
        gamma = np.isin(model.constrained, model.groups.get(MC_STAT, []))
        return counts, centre + np.where(gamma, 0.0, sigma * draws)
    draws = rng.standard_normal(centre.size)
    if mode == "frequentist":
        aux = centre + sigma * draws
    elif mode in ("challenge", "fair_universe"):
        theta = centre + sigma * draws
        for name, prior in (priors or {}).items():
            for i in model.groups.get(name, []):
                k = int(np.flatnonzero(model.constrained == i)[0])
                theta[k] = prior.alpha(draws[k])
        lo, hi = model.bounds[model.constrained, 0], model.bounds[model.constrained, 1]
        # keep gammas (bounded below by ~0) physical; alphas only meet their +/-5 bounds
        truth[model.constrained] = np.clip(theta, np.where(lo > 0, np.maximum(lo, 1e-3), lo), hi)
        aux = centre.copy()
    else:
        raise ConfigError(f"toys.modes: unknown mode {mode!r}; expected one of {list(MODES)}")
    lam = np.clip(model.expected(truth), 0.0, None)
    return rng.poisson(lam).astype(np.float64), aux


def _bootstrap_toy(setup: ToySetup, rng: np.random.Generator, *, mu_true: float) -> np.ndarray:
    model = setup.model
    nominal = model.nominal
    sumw2 = setup.row_sumw2 if setup.row_sumw2 is not None else np.zeros_like(nominal)
    fluctuate = (nominal > 0) & (sumw2 > 0)
    neff = np.where(fluctuate, np.square(nominal) / np.where(fluctuate, sumw2, 1.0), 0.0)
    drawn = rng.poisson(neff).astype(np.float64)
    templates = np.where(fluctuate, nominal * drawn / np.where(fluctuate, neff, 1.0), nominal)
    scale = np.where(model.signal_rows, mu_true, 1.0)
    lam = np.clip((templates * scale[:, None]).sum(axis=0), 0.0, None)
    return rng.poisson(lam).astype(np.float64)


def _one_row(
    runner: Any,
    setup: ToySetup,
    n: np.ndarray,
    aux: np.ndarray,
    symmetrise: str,
    index: int,
    count: int,
) -> tuple[float, float, float, bool, str]:
    try:
        result = runner.toy_interval(setup, n, aux, symmetrise)
        mu, lo, hi = result.mu_hat, result.lo, result.hi
        if not (math.isfinite(mu) and math.isfinite(lo) and math.isfinite(hi)):
            raise RuntimeError("non-finite interval")
    except Exception as exc:  # noqa: BLE001 - one failed toy must never stop the run
        status = f"failed: {type(exc).__name__}: {exc}"
        log.debug("toy %d, %s: %s", index, runner.name, status)
        return math.nan, math.nan, math.nan, False, status
    bounds = setup.model.bounds[setup.model.poi_index]
    at_bound = bool(lo <= bounds[0] or hi >= bounds[1])
    return float(mu), float(lo), float(hi), at_bound, "ok"


def _batch_rows(
    runner: Any, setup: ToySetup, thrown: Sequence[tuple[np.ndarray, np.ndarray]], symmetrise: str
) -> list[tuple[float, float, float, bool, str]]:
    counts = np.array([n for n, _ in thrown])
    aux = np.array([a for _, a in thrown])
    try:
        batch = runner.toy_batch(setup, counts, aux, symmetrise)
    except Exception as exc:  # noqa: BLE001 - the batch failing falls back to toy by toy
        log.warning("%s: batched toys failed (%s); fitting them one by one", runner.name, exc)
        return [
            _one_row(runner, setup, n, a, symmetrise, i, len(thrown))
            for i, (n, a) in enumerate(thrown)
        ]
    out = []
    for i in range(len(thrown)):
        mu, lo, hi = float(batch.mu_hat[i]), float(batch.lo[i]), float(batch.hi[i])
        reason = batch.failure[i]
        if not reason and not (math.isfinite(mu) and math.isfinite(lo) and math.isfinite(hi)):
            reason = "non-finite interval"
        if reason:
            out.append((math.nan, math.nan, math.nan, False, f"failed: {reason}"))
        else:
            out.append((mu, lo, hi, bool(batch.at_bound[i]), "ok"))
    return out


def run_toys(
    spec_or_setup: Mapping[str, Any] | ToySetup,
    *,
    mode: str,
    seed: int,
    start: int,
    count: int,
    methods: Sequence[str] = DEFAULT_TOY_METHODS,
    mu_true: float = 1.0,
    first_bin: int = 0,
    symmetrise: str = "mean",
    fitter: str = "batched",
    priors: Mapping[str, Prior] | None = None,
    mu_range: tuple[float, float] = FAIR_UNIVERSE_MU_RANGE,
) -> pd.DataFrame:
    """Run toys ``start .. start+count-1``; one row per toy and method.

    A toy's numbers depend only on (seed, mode, global index), so any split of the index
    range over jobs gives identical rows. A method that raises or does not converge on a toy
    gets ``status`` "failed: ..." and NaN results; the loop goes on. ``fitter`` "batched"
    (default) fits all toys of the range at once where a method has a batch form (profile,
    chi2; :class:`~.methods.Method`); "iminuit" fits them one by one (the cross-check).
    ``at_bound`` marks an interval with an edge at the POI bound (clipped, so it may
    over-cover there). ``priors`` are the challenge modes' nuisance priors; in mode
    "fair_universe" each toy's mu_true is drawn uniformly from ``mu_range`` (the toy's first
    random number) instead of ``mu_true``.

    Returns:
        DataFrame with columns toy, mode, method, mu_true, mu_hat, lo, hi, width, covered,
        at_bound, status.
    """
    if mode not in MODES:
        raise ConfigError(f"toys.modes: unknown mode {mode!r}; expected one of {list(MODES)}")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"toys.methods: unknown {unknown}; expected a subset of {list(METHODS)}")
    if symmetrise not in ("mean", "max"):
        raise ConfigError(f"symmetrise must be 'mean' or 'max', got {symmetrise!r}")
    if fitter not in FITTERS:
        raise ConfigError(f"toys.fitter must be one of {list(FITTERS)}, got {fitter!r}")
    if count < 0 or start < 0:
        raise ConfigError(f"toy range start={start}, count={count} must be non-negative")
    setup = (
        spec_or_setup
        if isinstance(spec_or_setup, BinnedInputs)
        else prepare(spec_or_setup, first_bin=first_bin)
    )
    runners = {m: METHODS[m] for m in methods}
    started = time.perf_counter()
    truths: list[float] = []
    thrown = []
    for index in range(start, start + count):
        rng = toy_rng(seed, mode, index)
        truth = float(rng.uniform(*mu_range)) if mode == "fair_universe" else mu_true
        truths.append(truth)
        thrown.append(throw_toy(setup, rng, mode=mode, mu_true=truth, priors=priors))
    per_method: dict[str, list[tuple[float, float, float, bool, str]]] = {}
    for method, runner in runners.items():
        t0 = time.perf_counter()
        if fitter == "batched" and runner.toy_batch is not None and thrown:
            per_method[method] = _batch_rows(runner, setup, thrown, symmetrise)
        else:
            per_method[method] = [
                _one_row(runner, setup, n, aux, symmetrise, start + i, count)
                for i, (n, aux) in enumerate(thrown)
            ]
        log.info(
            "%s (%s): %d toys in %.2f s (%s)",
            method,
            mode,
            count,
            time.perf_counter() - t0,
            "batched" if fitter == "batched" and runner.toy_batch is not None else "one by one",
        )
    records: list[tuple[Any, ...]] = []
    for i in range(count):
        for method in methods:
            mu, lo, hi, at_bound, status = per_method[method][i]
            truth = truths[i]
            covered = bool(status == "ok" and lo <= truth <= hi)
            records.append(
                (start + i, mode, method, truth, mu, lo, hi, hi - lo, covered, at_bound, status)
            )
    df = pd.DataFrame.from_records(records, columns=TOY_COLUMNS)
    df = df.astype(
        {
            "toy": "int64",
            "mode": "string",
            "method": "string",
            "status": "string",
            "covered": "bool",
            "at_bound": "bool",
        }
    )
    elapsed = time.perf_counter() - started
    n_failed = int((df["status"] != "ok").sum())
    log.info(
        "toys %d..%d (%s): %d rows, %d failed, %.1f ms per toy",
        start,
        start + count - 1,
        mode,
        len(df),
        n_failed,
        1e3 * elapsed / max(count, 1),
    )
    return df


def summarise(toy_frames: Sequence[pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """Per (mode, method): coverage with binomial error, mean width, bias, failures, score.

    Every toy counts: ``coverage`` is the fraction of all toys whose interval contains the true
    value, a failed toy (no interval) counting as not covered, and the challenge score uses N =
    every toy, as the FAIR-Universe challenge does; ``coverage_ok`` is the fraction among the
    toys that succeeded and ``failure_rate`` says how many did not. Widths and biases average
    the successful toys. Duplicate (mode, method, toy) rows, e.g. a chunk read twice, are an error.

    Returns:
        DataFrame with mode, method, n_toys, n_ok, n_failed, failure_rate, n_at_bound, coverage,
        coverage_err, coverage_ok, mean_width, bias, bias_err, rms, penalty, score; sorted by
        mode and method.
    """
    df = (
        toy_frames
        if isinstance(toy_frames, pd.DataFrame)
        else pd.concat(list(toy_frames), ignore_index=True)
    )
    missing = [c for c in TOY_COLUMNS if c not in df.columns]
    if missing:
        raise DataContractError(
            f"toy table lacks column(s) {missing}; columns present: {list(df.columns)}"
        )
    dup = df.duplicated(["mode", "method", "toy"])
    if dup.any():
        first = df.loc[dup].iloc[0]
        raise DataContractError(
            f"toy {int(first['toy'])} ({first['mode']}, {first['method']}) appears more than once; "
            "overlapping toy chunks?"
        )
    rows = []
    for (mode, method), g in df.groupby(["mode", "method"], sort=True):
        ok = g[g["status"] == "ok"]
        n_toys, n_ok = len(g), len(ok)
        row: dict[str, Any] = {
            "mode": mode,
            "method": method,
            "n_toys": n_toys,
            "n_ok": n_ok,
            "n_failed": n_toys - n_ok,
            "failure_rate": (n_toys - n_ok) / n_toys,
            "n_at_bound": int(ok["at_bound"].sum()),
        }
        if n_ok:
            # every toy counts: a failed toy has no interval, so it does not cover
            c = float(g["covered"].sum()) / n_toys
            w = float(ok["width"].mean())
            resid = (ok["mu_hat"] - ok["mu_true"]).to_numpy(dtype=np.float64)
            row.update(
                coverage=c,
                coverage_err=math.sqrt(c * (1.0 - c) / n_toys),
                coverage_ok=float(ok["covered"].mean()),
                mean_width=w,
                bias=float(resid.mean()),
                bias_err=float(resid.std(ddof=1) / math.sqrt(n_ok)) if n_ok > 1 else math.nan,
                rms=float(math.sqrt(np.mean(resid**2))),
                penalty=coverage_penalty(c, n_toys),
                score=challenge_score(w, c, n_toys),
            )
        else:
            row.update(
                coverage=0.0,
                coverage_err=0.0,
                coverage_ok=math.nan,
                mean_width=math.nan,
                bias=math.nan,
                bias_err=math.nan,
                rms=math.nan,
                penalty=math.inf,
                score=-math.inf,
            )
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "MODES",
    "CutAndCount",
    "ToySetup",
    "challenge_score",
    "coverage_penalty",
    "first_bin_for_threshold",
    "prepare",
    "run_toys",
    "summarise",
    "throw_toy",
    "toy_rng",
]
