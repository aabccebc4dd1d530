"""Driver of the built-in simulation: chunked, seeded generation of the selected e-mu
event table with its weights (docs/simulation.md).

One generator of chunks (``_Generation``) serves two entry points: ``simulate_with_stats``
gathers the chunks into one frame (tests, studies, small samples) and ``simulate_to_parquet``
writes each chunk as it is made, so the workflow's memory is one chunk whatever the sample size.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Required, TypedDict, TypeVar, Unpack

import numpy as np
import pandas as pd

from .. import io
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
#: Rows per batch when ``simulate_to_parquet`` copies its unweighted file into the output:
#: a batch in flight is held about three times (Arrow's decoded batch, pandas, Arrow again),
#: so batches smaller than a chunk keep the copy below the generation's own peak (1M events in
#: chunks of 200,000: 350 MiB peak RSS instead of 513 MiB with chunk-sized batches).
_COPY_BATCH_ROWS = 65_536


class SimulationResult(NamedTuple):
    """Events plus the bookkeeping that normalises them."""

    events: pd.DataFrame
    n_generated: dict[str, int]
    efficiency: dict[str, float]
    cross_sections_pb: dict[str, float]


class SimulationStats(NamedTuple):
    """The bookkeeping of a simulation written straight to a file (:func:`simulate_to_parquet`):
    ``SimulationResult`` without the events, plus their number."""

    n_events: int
    n_generated: dict[str, int]
    efficiency: dict[str, float]
    cross_sections_pb: dict[str, float]

    def summary(self) -> dict[str, dict[str, Any]]:
        """What the simulate step logs and stores as provenance: the three dictionaries."""
        return {
            "n_generated": dict(self.n_generated),
            "efficiency": dict(self.efficiency),
            "cross_sections_pb": dict(self.cross_sections_pb),
        }


class SimulationOptions(TypedDict, total=False):
    """The keywords of :func:`simulate_with_stats` (its signature holds the defaults), typed for
    :func:`simulate_to_parquet`, which takes the same ones."""

    n_selected: Required[Mapping[str, int]]
    seed: Required[int]
    luminosity_fb: float
    chunk_size: int
    cross_sections_pb: Mapping[str, float] | None
    detector: Detector | None
    selection: Selection | None
    lepton_pt_resolution: float | None
    jet_pt_resolution: float | None
    soft_met_resolution_gev: float | None
    lepton_pt_min_leading: float | None
    lepton_pt_min_subleading: float | None
    lepton_abs_eta_max: float | None
    jet_pt_min: float | None
    jet_abs_eta_max: float | None
    keep_truth: bool
    progress: Callable[[str, int, int], None] | None
    max_empty_chunks: int


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
    run = _Generation(locals())  # the keywords above with their defaults, validated
    chunks = list(run.chunks())
    for name, frame in chunks:
        frame["weight"] = run.weights[name]
    if chunks:
        events = pd.concat([frame for _, frame in chunks], ignore_index=True)
    else:
        events = run.empty_frame()
    stats = run.stats()
    return SimulationResult(events, stats.n_generated, stats.efficiency, stats.cross_sections_pb)


def simulate_to_parquet(
    path: str | os.PathLike[str],
    *,
    provenance: Callable[[SimulationStats], Mapping[str, Any]] | None = None,
    **options: Unpack[SimulationOptions],
) -> SimulationStats:
    """Simulate like :func:`simulate_with_stats` (same keywords) into the Parquet file ``path``.

    ``path`` holds the table ``io.write_table(simulate_with_stats(**options).events, path,
    prov)`` would write (the same rows in the same order, columns, dtypes and values), with
    ``prov = provenance(stats)`` (default ``stats.summary()``), but memory stays at one chunk
    of ``chunk_size`` events instead of growing with the table (230 bytes an event).

    A process's weight needs its ``n_generated``, known only after its last chunk, so there are
    two passes: the chunks go out with weight 0 to a private file next to ``path``, which is
    then copied in batches of at most a chunk into ``path`` with the weights filled in. The
    disk holds about two tables meanwhile; the private file is deleted also on error, and
    ``path`` appears only when complete (atomic rename).

    Raises:
        ConfigError: as :func:`simulate_with_stats`, before any file is made for bad keywords.
        TypeError: an unknown keyword, as in a call of :func:`simulate_with_stats`.
    """
    bound = inspect.signature(simulate_with_stats).bind(**options)
    bound.apply_defaults()
    run = _Generation(bound.arguments)
    path = Path(path)
    describe = provenance or SimulationStats.summary
    if run.n_events == 0:  # nothing to generate: the empty contract table, as a frame would be
        stats = run.stats()
        io.write_table(run.empty_frame(), path, describe(stats))
        return stats
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, unweighted = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".unweighted.tmp", dir=path.parent
    )
    os.close(fd)
    try:
        with io.TableWriter(unweighted) as first_pass:
            for _, frame in run.chunks():
                first_pass.write(frame)
        stats = run.stats()
        with io.TableWriter(path, describe(stats)) as out:
            for batch in io.iter_batches(
                unweighted, batch_size=min(run.chunk_size, _COPY_BATCH_ROWS)
            ):
                batch["weight"] = batch["process"].map(run.weights)  # a batch may span processes
                out.write(batch)
    finally:
        Path(unweighted).unlink(missing_ok=True)
    return stats


class _Generation:
    """One simulation request, validated: :meth:`chunks` makes its event table chunk by chunk,
    after which :attr:`weights` and :meth:`stats` hold its normalisation."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        o = options
        self.det = _with_overrides(
            o["detector"] or Detector(),
            lepton_pt_resolution=o["lepton_pt_resolution"],
            jet_pt_resolution=o["jet_pt_resolution"],
            soft_met_resolution_gev=o["soft_met_resolution_gev"],
        )
        self.sel = _with_overrides(
            o["selection"] or Selection(),
            lepton_pt_min_leading=o["lepton_pt_min_leading"],
            lepton_pt_min_subleading=o["lepton_pt_min_subleading"],
            lepton_abs_eta_max=o["lepton_abs_eta_max"],
            jet_pt_min=o["jet_pt_min"],
            jet_abs_eta_max=o["jet_abs_eta_max"],
        )
        numbers = {
            **{f"detector.{k}": v for k, v in dataclasses.asdict(self.det).items()},
            **{f"selection.{k}": v for k, v in dataclasses.asdict(self.sel).items()},
        }
        self.n_selected: Mapping[str, int] = o["n_selected"]
        self.seed: int = o["seed"]
        self.luminosity_fb: float = o["luminosity_fb"]
        self.chunk_size: int = o["chunk_size"]
        _check_inputs(
            self.n_selected,
            o["cross_sections_pb"],
            self.luminosity_fb,
            self.chunk_size,
            numbers,
            self.seed,
        )
        self.xs = {**CROSS_SECTIONS_PB, **dict(o["cross_sections_pb"] or {})}
        self.order = list(COLUMNS) + (list(TRUTH_COLUMNS) if o["keep_truth"] else [])
        self.progress: Callable[[str, int, int], None] | None = o["progress"]
        self.max_empty_chunks: int = o["max_empty_chunks"]
        self.n_events = sum(int(self.n_selected.get(name, 0)) for name in PROCESSES)
        self.n_generated: dict[str, int] = {}
        #: the constant weight of each process, set when its last chunk has been made
        self.weights: dict[str, float] = {}

    def chunks(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """``(process, frame)`` per chunk that selects events, in the table's order, with
        weight 0 (the weight needs ``n_generated``, known after the process's last chunk)."""
        for name, proc in PROCESSES.items():  # fixed order: independent of the mapping's order
            target = int(self.n_selected.get(name, 0))
            if target == 0:
                continue
            started = time.perf_counter()
            have, chunk, last_index = 0, 0, -1
            while have < target:
                rng = _chunk_rng(self.seed, proc.code, chunk)
                truth = proc.generate(rng, self.chunk_size)
                idx, cols = reconstruct(rng, truth, self.det, self.sel)
                passed = idx.size
                take = min(passed, target - have)
                if take:
                    gen_index = chunk * self.chunk_size + idx[:take].astype(np.int64)
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
                    frame = recompute_derived(frame)[self.order]
                    del truth, idx, cols  # free the generated chunk while the consumer works
                    yield name, frame
                have += take
                chunk += 1
                log.info(
                    "%s: chunk %d, %d/%d selected (efficiency %.4f)",
                    name,
                    chunk,
                    have,
                    target,
                    passed / self.chunk_size,
                )
                if self.progress is not None:
                    self.progress(name, have, target)
                if have == 0 and chunk >= self.max_empty_chunks:
                    raise ConfigError(
                        f"simulate.selection keeps no {name} event in {chunk * self.chunk_size} "
                        "generated; check the lepton pT/eta cuts"
                    )
            n_gen = last_index + 1
            self.n_generated[name] = n_gen
            self.weights[name] = self.xs[name] * 1000.0 * self.luminosity_fb / n_gen  # pb fb^-1
            log.info(
                "%s: %d selected of %d generated (efficiency %.4f) in %.2f s",
                name,
                target,
                n_gen,
                target / n_gen,
                time.perf_counter() - started,
            )

    def stats(self) -> SimulationStats:
        """The bookkeeping of the processes made so far (all of them once :meth:`chunks` ends)."""
        efficiency = {p: self.n_selected[p] / n for p, n in self.n_generated.items()}
        xs = {p: self.xs[p] for p in self.n_generated}
        n_events = sum(int(self.n_selected[p]) for p in self.n_generated)
        return SimulationStats(n_events, dict(self.n_generated), efficiency, xs)

    def empty_frame(self) -> pd.DataFrame:
        """The table with no event: the contract's columns and dtypes."""
        return pd.DataFrame({c: pd.Series(dtype=_empty_dtype(c)) for c in self.order})  # type: ignore[call-overload]


def _empty_dtype(column: str) -> object:
    return {"event_id": np.int64, "process": object, "label": np.int8, "n_jets": np.int64}.get(
        column, np.float64
    )
