"""Driver of the built-in simulation: chunked, seeded generation of the selected e-mu
event table with its weights (docs/simulation.md)."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..features import recompute_derived
from .detector import Detector, Selection, reconstruct
from .processes import CROSS_SECTIONS_PB, PROCESSES

log = logging.getLogger(__name__)

_Params = TypeVar("_Params", Detector, Selection)

#: How the sample is made (Markdown; for the report). Every choice is deliberate.
MODEL_SUMMARY = """\
Built-in simulation (systpipe.simulate), pp at 13 TeV, e-mu final states only.

* Production: each process is a system (H, WW, ttbar, Z/gamma*) of mass m with transverse
  momentum pT and rapidity y, decayed with four-vectors and Lorentz boosts.
  - pT: Burr XII law F(x) = 1 - (1 + (x/lam)^c)^-k truncated at 1 TeV, fitted to the Pythia
    8.317 parton-level figures (gg->H mean 53, median 33, 90 % 121 GeV; WW mean 37, median 20;
    ttbar mean 69, median 48; Z mean 20, median 13; c = 1.5 fixed for the last three).
  - y: at fixed m, dsigma/dy ~ (1-x1)^b1 (1-x2)^b2 with x1,2 = m/sqrt(s) e^(+-y) (toy parton
    densities): b = 5, 5 for gg; 3 (valence quark), 7 (sea antiquark) for qqbar, symmetrised.
  - m: relativistic Breit-Wigners in m^2 for H (narrow), Z, W and top; m_WW and m_tt are
    m1 + m2 + s with s a Burr XII law fitted to the Pythia quantiles (m_WW 10/50/90 %:
    173/230/414 GeV; m_tt 376/476/729 GeV).
* ggH_WW: W masses from their exact marginal BW(m1^2) BW(m2^2) beta (lambda + 12 m1^2 m2^2)
  (two-body phase space x |M|^2 integrated over the decay angles; one W off shell), then
  decay angles by accept-reject on |M|^2 ~ (p_l+ . p_nubar)(p_nu . p_l-): the V-A spin
  correlation of the scalar decay that makes the charged leptons nearly collinear.
* WW: isotropic production in the WW frame (no t-channel forward peak); W decays with
  helicity fractions f0 = 0.25, fL = fR = 0.375, no W-W spin correlation.
* ttbar: isotropic production, unpolarised t -> W b, W helicity fractions f0 = 0.687,
  fL = 0.311, fR = 0.002 (NNLO, Czarnecki, Jezabek, Kuehn, PRD 81 (2010) 111503); no ttbar
  spin correlation.
* Ztautau: Z Breit-Wigner plus an 8 % m^-3 photon continuum on 40 GeV - 1 TeV, 1 + cos^2
  decay angle about the beam, collinear tau -> l nu nu with the polarisation-averaged
  massless lepton energy fraction f(x) = (5 - 9x^2 + 4x^3)/3.
* Jets: the hadronic recoil -pT(system) goes to one ISR parton or, with probability 0.4 (gg)
  or 0.3 (qqbar), is shared with a second one carrying a uniform fraction of it at a random
  azimuth; ISR parton eta ~ N(0, 2). ttbar adds its two b quarks.
* Detector: Gaussian relative pT resolution for leptons and jets; jets are partons with
  smeared pT > jet_pt_min and |eta| < jet_abs_eta_max, the other partons plus Gaussian noise
  (soft_met_resolution_gev per component) form the soft term, and
  MET = -(lep1 + lep2 + jets + soft), i.e. the neutrino pT up to resolution.
* Selection after smearing: one electron and one muon of opposite charge with
  |eta| < lepton_abs_eta_max, leading pT > lepton_pt_min_leading, subleading pT >
  lepton_pt_min_subleading; lep1/lep2 are the leading/subleading of the two.
* Weights: sigma x BR x L / N_generated, N_generated counting every generated event up to the
  last selected one. Randomness: chunk k of process p (chunk_size generated events) draws
  from SeedSequence(seed, spawn_key=(code_p, k)): the sample is a pure function of
  (seed, chunk_size) per process, and a smaller n_selected gives a prefix of the events.
  event_id = code_p * 10^12 + generated index.
"""

#: Columns of the simulated event table, in order (the canonical contract).
COLUMNS: tuple[str, ...] = (
    "event_id",
    "process",
    "label",
    "weight",
    "lep1_pt",
    "lep1_eta",
    "lep1_phi",
    "lep2_pt",
    "lep2_eta",
    "lep2_phi",
    "jet1_pt",
    "n_jets",
    "jets_px",
    "jets_py",
    "soft_px",
    "soft_py",
    "met",
    "met_phi",
    "m_ll",
    "pt_ll",
    "dphi_ll",
    "deta_ll",
    "mt",
)
#: Extra columns with ``keep_truth=True``: generator-level lepton pT and neutrino pT sum.
TRUTH_COLUMNS: tuple[str, ...] = ("lep1_pt_true", "lep2_pt_true", "met_true")

EVENT_ID_STRIDE = 10**12


class SimulationResult(NamedTuple):
    """Events plus the bookkeeping that normalises them."""

    events: pd.DataFrame
    n_generated: dict[str, int]
    efficiency: dict[str, float]
    cross_sections_pb: dict[str, float]


def _chunk_rng(seed: int, code: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(code, chunk)))
    )


def _check_inputs(
    n_selected: Mapping[str, int],
    cross_sections_pb: Mapping[str, float] | None,
    luminosity_fb: float,
    chunk_size: int,
    numbers: Mapping[str, float],
    seed: int,
) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed: expected an integer >= 0, got {seed!r}")
    for key, table in (("n_selected", n_selected), ("cross_sections_pb", cross_sections_pb or {})):
        unknown = sorted(set(table) - set(PROCESSES))
        if unknown:
            raise ConfigError(
                f"simulate.{key}: unknown process(es) {unknown}; known: {list(PROCESSES)}"
            )
    for name, n in n_selected.items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"simulate.n_selected.{name}: expected an integer >= 0, got {n!r}")
    for name, xs in (cross_sections_pb or {}).items():
        if not xs > 0:
            raise ConfigError(
                f"simulate.cross_sections_pb.{name}: expected a number > 0, got {xs!r}"
            )
    if not luminosity_fb > 0:
        raise ConfigError(f"simulate.luminosity_fb: expected a number > 0, got {luminosity_fb!r}")
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int | np.integer)
        or chunk_size < 1
    ):
        raise ConfigError(f"simulate.chunk_size: expected an integer >= 1, got {chunk_size!r}")
    for key, value in numbers.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"simulate.{key}: expected a finite number >= 0, got {value!r}")


def _with_overrides(base: _Params, **fields: float | None) -> _Params:
    """``base`` with the fields given (not None) in ``fields`` replaced."""
    return dataclasses.replace(base, **{k: v for k, v in fields.items() if v is not None})


def simulate_with_stats(
    *,
    n_selected: Mapping[str, int],
    seed: int,
    luminosity_fb: float = 139.0,
    chunk_size: int = 200_000,
    cross_sections_pb: Mapping[str, float] | None = None,
    detector: Detector | None = None,
    selection: Selection | None = None,
    lepton_pt_resolution: float | None = None,
    jet_pt_resolution: float | None = None,
    soft_met_resolution_gev: float | None = None,
    lepton_pt_min_leading: float | None = None,
    lepton_pt_min_subleading: float | None = None,
    lepton_abs_eta_max: float | None = None,
    jet_pt_min: float | None = None,
    jet_abs_eta_max: float | None = None,
    keep_truth: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    max_empty_chunks: int = 20,
) -> SimulationResult:
    """Simulate ``n_selected[p]`` selected e-mu events per process p (docs/simulation.md).

    Weights are ``sigma x BR x L / N_generated``; ``keep_truth`` adds ``TRUTH_COLUMNS``.
    ``progress(process, n_selected_so_far, n_target)`` is called after every chunk.
    The detector response and the selection are ``detector`` and ``selection`` (default:
    ``Detector()`` and ``Selection()``) with each of their fields given as a keyword of the
    same name (e.g. ``jet_pt_resolution=0.2``, the form of the ``simulate.detector`` and
    ``simulate.selection`` config blocks) replaced by that keyword.

    ``n_generated[p]`` counts every generated event of process p up to its last selected one,
    so ``sum(weight[p]) = sigma_p x L x n_selected[p] / n_generated[p]`` exactly.

    Raises:
        ConfigError: unknown process, negative count, non-positive luminosity/cross section,
            or a selection that keeps nothing in ``max_empty_chunks`` chunks.
    """
    det = _with_overrides(
        detector or Detector(),
        lepton_pt_resolution=lepton_pt_resolution,
        jet_pt_resolution=jet_pt_resolution,
        soft_met_resolution_gev=soft_met_resolution_gev,
    )
    sel = _with_overrides(
        selection or Selection(),
        lepton_pt_min_leading=lepton_pt_min_leading,
        lepton_pt_min_subleading=lepton_pt_min_subleading,
        lepton_abs_eta_max=lepton_abs_eta_max,
        jet_pt_min=jet_pt_min,
        jet_abs_eta_max=jet_abs_eta_max,
    )
    numbers = {
        **{f"detector.{k}": v for k, v in dataclasses.asdict(det).items()},
        **{f"selection.{k}": v for k, v in dataclasses.asdict(sel).items()},
    }
    _check_inputs(n_selected, cross_sections_pb, luminosity_fb, chunk_size, numbers, seed)
    xs = {**CROSS_SECTIONS_PB, **dict(cross_sections_pb or {})}
    order = list(COLUMNS) + (list(TRUTH_COLUMNS) if keep_truth else [])
    frames: list[pd.DataFrame] = []  # one per chunk: derived features computed chunk by chunk
    n_generated: dict[str, int] = {}
    for name, proc in PROCESSES.items():  # fixed order: independent of the mapping's order
        target = int(n_selected.get(name, 0))
        if target == 0:
            continue
        started = time.perf_counter()
        first = len(frames)
        have, chunk, last_index = 0, 0, -1
        while have < target:
            rng = _chunk_rng(seed, proc.code, chunk)
            idx, cols = reconstruct(rng, proc.generate(rng, chunk_size), det, sel)
            take = min(idx.size, target - have)
            if take:
                gen_index = chunk * chunk_size + idx[:take].astype(np.int64)
                last_index = int(gen_index[-1])
                frame = pd.DataFrame(
                    {
                        "event_id": proc.code * EVENT_ID_STRIDE + gen_index,
                        "process": np.full(take, name, dtype=object),
                        "label": np.full(take, proc.label, dtype=np.int8),
                        "weight": np.zeros(take),
                        **{c: v[:take] for c, v in cols.items()},
                    }
                )
                frames.append(recompute_derived(frame)[order])
            have += take
            chunk += 1
            log.info(
                "%s: chunk %d, %d/%d selected (efficiency %.4f)",
                name,
                chunk,
                have,
                target,
                idx.size / chunk_size,
            )
            if progress is not None:
                progress(name, have, target)
            if have == 0 and chunk >= max_empty_chunks:
                raise ConfigError(
                    f"simulate.selection keeps no {name} event in {chunk * chunk_size} generated; "
                    "check the lepton pT/eta cuts"
                )
        n_gen = last_index + 1
        n_generated[name] = n_gen
        weight = xs[name] * 1000.0 * luminosity_fb / n_gen  # pb x fb^-1 -> events
        for frame in frames[first:]:
            frame["weight"] = weight
        log.info(
            "%s: %d selected of %d generated (efficiency %.4f) in %.2f s",
            name,
            target,
            n_gen,
            target / n_gen,
            time.perf_counter() - started,
        )
    if frames:
        events = pd.concat(frames, ignore_index=True)
    else:
        events = pd.DataFrame({c: pd.Series(dtype=_empty_dtype(c)) for c in order})  # type: ignore[call-overload]
    efficiency = {p: n_selected[p] / n for p, n in n_generated.items()}
    return SimulationResult(events, n_generated, efficiency, {p: xs[p] for p in n_generated})


def _empty_dtype(column: str) -> object:
    return {"event_id": np.int64, "process": object, "label": np.int8, "n_jets": np.int64}.get(
        column, np.float64
    )
