"""Built-in vectorised 13 TeV simulation of H->WW*->e nu mu nu and its main backgrounds (SPEC 8)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import ConfigError
from .features import recompute_derived

log = logging.getLogger(__name__)

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

SQRT_S = 13_000.0
# Masses and widths (GeV), PDG 2022; the top mass is the one of the ttbar cross section below.
M_W, GAMMA_W = 80.377, 2.085
M_Z, GAMMA_Z = 91.1876, 2.4952
M_TOP, GAMMA_TOP = 172.5, 1.32
M_H, GAMMA_H = 125.0, 4.1e-3
M_B = 4.8
M_TAU = 1.77686

# Leptonic branching ratios, PDG 2022.
BR_W_ENU, BR_W_MUNU = 0.1071, 0.1063
BR_TAU_ENUNU, BR_TAU_MUNUNU = 0.1782, 0.1739
#: Two W bosons -> one e nu and one mu nu (either W can give the electron): 0.02277.
BR_WW_EMU = 2.0 * BR_W_ENU * BR_W_MUNU
#: Two taus -> one e nu nu and one mu nu nu: 0.06198.
BR_TAUTAU_EMU = 2.0 * BR_TAU_ENUNU * BR_TAU_MUNUNU

#: sigma x BR into the e-mu final state at 13 TeV (pb), before cuts:
#: ggH_WW  48.6 pb (ggF N3LO, LHC Higgs XS WG YR4, arXiv:1610.07922, mH = 125 GeV)
#:         x BR(H->WW*) 0.2152 (YR4) x 0.02277 = 0.238 pb
#: WW      118.7 pb (NNLO QCD, Gehrmann et al., PRL 113 (2014) 212001) x 0.02277 = 2.70 pb
#: ttbar   831.76 pb (NNLO+NNLL Top++, mt = 172.5 GeV) x BR(t->Wb) = 1 x 0.02277 = 18.9 pb
#: Ztautau 1950 pb (NNLO Z/gamma* -> ll per lepton flavour, the ATLAS 13 TeV normalisation;
#:         measured 1.98 nb for 66 < m_ll < 116 GeV, PLB 759 (2016) 601) x 0.06198 = 120.9 pb
CROSS_SECTIONS_PB: dict[str, float] = {
    "ggH_WW": 48.6 * 0.2152 * BR_WW_EMU,
    "WW": 118.7 * BR_WW_EMU,
    "ttbar": 831.76 * BR_WW_EMU,
    "Ztautau": 1950.0 * BR_TAUTAU_EMU,
}

#: Columns of the simulated event table, in order (the canonical contract).
COLUMNS: tuple[str, ...] = (
    "event_id", "process", "label", "weight",
    "lep1_pt", "lep1_eta", "lep1_phi", "lep2_pt", "lep2_eta", "lep2_phi",
    "jet1_pt", "n_jets", "jets_px", "jets_py", "soft_px", "soft_py",
    "met", "met_phi", "m_ll", "pt_ll", "dphi_ll", "deta_ll", "mt",
)
#: Extra columns with ``keep_truth=True``: generator-level lepton pT and neutrino pT sum.
TRUTH_COLUMNS: tuple[str, ...] = ("lep1_pt_true", "lep2_pt_true", "met_true")

EVENT_ID_STRIDE = 10**12


@dataclass(frozen=True)
class Burr12:
    """Burr XII law ``F(x) = 1 - (1 + (x/lam)^c)^-k`` truncated to ``[0, xmax]``.

    Example:
        >>> b = Burr12(lam=10.0, c=2.0, k=1.0, xmax=1e9)
        >>> round(float(b.quantile(np.array(0.5))), 6)  # median lam (2^(1/k) - 1)^(1/c)
        10.0
    """

    lam: float
    c: float
    k: float
    xmax: float

    @property
    def fmax(self) -> float:
        return -math.expm1(-self.k * math.log1p((self.xmax / self.lam) ** self.c))

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF of the truncated law at ``u`` in [0, 1]."""
        v = np.asarray(u) * self.fmax
        return self.lam * np.expm1(-np.log1p(-v) / self.k) ** (1.0 / self.c)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.quantile(rng.random(n))


class _Production(NamedTuple):
    pt: Burr12
    pdf_b: tuple[float, float]  # (1-x)^b exponents of the two incoming partons
    p_two_isr: float


#: Production models (parameters fitted to the Pythia figures: see MODEL_SUMMARY).
PRODUCTION: dict[str, _Production] = {
    "ggH_WW": _Production(Burr12(142.0554, 1.098161, 3.778378, 1000.0), (5.0, 5.0), 0.4),
    "WW": _Production(Burr12(22.64898, 1.5, 1.144737, 1000.0), (3.0, 7.0), 0.3),
    "ttbar": _Production(Burr12(85.67589, 1.5, 1.977448, 1000.0), (5.0, 5.0), 0.4),
    "Ztautau": _Production(Burr12(20.46010, 1.5, 1.691431, 1000.0), (3.0, 7.0), 0.3),
}
#: Mass above threshold ``m - m1 - m2`` of the WW and ttbar systems.
MASS_EXCESS: dict[str, Burr12] = {
    "WW": Burr12(230.5974, 1.143506, 3.076522, 3000.0),
    "ttbar": Burr12(362.2345, 1.373509, 3.135789, 3000.0),
}
W_HELICITY = {"WW": (0.25, 0.375, 0.375), "ttbar": (0.687, 0.311, 0.002)}  # f0, fL, fR
Z_CONTINUUM_FRACTION = 0.08
HWW_FLAT_FRACTION = 0.15  # share of the flat proposal in the H->WW* mass sampling
ISR_ETA_SIGMA = 2.0


class Truth(NamedTuple):
    """Generator-level objects of ``n`` events (momenta in GeV, lab frame)."""

    e: np.ndarray  # (3, n) electron px, py, pz
    mu: np.ndarray  # (3, n) muon px, py, pz
    e_charge: np.ndarray  # (n,) int8
    mu_charge: np.ndarray
    nu_x: np.ndarray  # neutrino pT sum
    nu_y: np.ndarray
    recoil_x: np.ndarray  # hadronic recoil -pT(system), shared by the ISR partons
    recoil_y: np.ndarray
    p_two_isr: float  # probability of two ISR partons
    parton_pt: np.ndarray  # (n, J) other partons (b quarks); pt 0 = absent
    parton_eta: np.ndarray
    parton_phi: np.ndarray


class SimulationResult(NamedTuple):
    """Events plus the bookkeeping that normalises them."""

    events: pd.DataFrame
    n_generated: dict[str, int]
    efficiency: dict[str, float]
    cross_sections_pb: dict[str, float]


# --------------------------------------------------------------------------------------------
# Four-vector helpers: arrays of shape (4, n) = (E, px, py, pz).


def boost(p: np.ndarray, parent: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Boost ``p`` from the rest frame of ``parent`` (4-vector of mass ``mass``) to its frame.

    Example:
        >>> z = boost(np.array([[1.0], [0.0], [0.0], [0.0]]), np.array([[5.0], [0.0], [0.0], [4.0]]), 3.0)
        >>> z[:, 0].round(12).tolist()  # a particle at rest takes the parent's velocity
        [1.666666666667, 0.0, 0.0, 1.333333333333]
    """
    dot = parent[1] * p[1] + parent[2] * p[2] + parent[3] * p[3]
    k = dot / (mass * (parent[0] + mass)) + p[0] / mass
    out = np.empty_like(p)
    out[0] = (parent[0] * p[0] + dot) / mass
    out[1:] = p[1:] + k * parent[1:]
    return out


def minkowski_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a . b = E_a E_b - p_a . p_b``.

    Example:
        >>> float(minkowski_dot(np.array([5.0, 0, 0, 4]), np.array([5.0, 0, 0, 4])))
        9.0
    """
    return a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3]


def two_body_momentum(mass: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Daughter momentum of ``mass -> m1 m2`` in the parent rest frame (0 below threshold).

    Example:
        >>> float(two_body_momentum(10.0, 0.0, 0.0)), float(two_body_momentum(5.0, 3.0, 0.0))
        (5.0, 1.6)
    """
    s, a, b = np.square(mass), np.square(m1), np.square(m2)
    lam = (s - a - b) ** 2 - 4.0 * a * b
    return np.sqrt(np.maximum(lam, 0.0)) / (2.0 * np.asarray(mass))


def _two_body(mass, m1, m2, direction) -> tuple[np.ndarray, np.ndarray]:
    p = two_body_momentum(mass, m1, m2)
    d1 = np.empty((4, p.size))
    d1[0] = np.sqrt(p * p + np.square(m1))
    d1[1:] = p * direction
    d2 = np.empty_like(d1)
    d2[0] = np.sqrt(p * p + np.square(m2))
    d2[1:] = -d1[1:]
    return d1, d2


def _direction(cos: np.ndarray, phi: np.ndarray) -> np.ndarray:
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), cos])


def _isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    return _direction(rng.uniform(-1.0, 1.0, n), rng.uniform(0.0, 2.0 * np.pi, n))


def _about_axis(axis: np.ndarray, cos: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors at polar angle ``acos(cos)`` and azimuth ``phi`` around unit ``axis``."""
    helper = np.zeros_like(axis)
    use_y = np.abs(axis[0]) > 0.9
    helper[0] = ~use_y
    helper[1] = use_y
    e1 = np.cross(helper, axis, axis=0)
    e1 /= np.linalg.norm(e1, axis=0)
    e2 = np.cross(axis, e1, axis=0)
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    return cos * axis + sin * (np.cos(phi) * e1 + np.sin(phi) * e2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=0)


def _lab_system(mass, pt, phi, y) -> np.ndarray:
    mt = np.sqrt(mass * mass + pt * pt)
    return np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)])


# --------------------------------------------------------------------------------------------
# Samplers.


def breit_wigner_mass(
    rng: np.random.Generator, m0: float, gamma: float, lo: np.ndarray | float, hi: np.ndarray | float,
    n: int,
) -> np.ndarray:
    """Masses from the relativistic Breit-Wigner ``1/((m^2 - m0^2)^2 + m0^2 gamma^2)`` in
    ``dm^2``, truncated to ``[lo, hi]`` (inverse CDF, exact)."""
    mg = m0 * gamma
    t_lo = np.arctan((np.square(lo) - m0 * m0) / mg)
    t_hi = np.arctan((np.square(hi) - m0 * m0) / mg)
    t = t_lo + (t_hi - t_lo) * rng.random(n)
    return np.sqrt(np.maximum(m0 * m0 + mg * np.tan(t), 0.0))


def _accept_reject(
    rng: np.random.Generator, n: int, draw: Callable[[int], np.ndarray],
    density: Callable[[np.ndarray], np.ndarray], bound: float, efficiency: float,
) -> np.ndarray:
    """``n`` samples of ``density`` (<= ``bound``) from proposals ``draw``; order-deterministic."""
    parts, have = [], 0
    while have < n:
        m = int((n - have) / efficiency * 1.1) + 64
        x = draw(m)
        keep = x[rng.random(m) * bound < density(x)]
        parts.append(keep)
        have += keep.size
    return np.concatenate(parts)[:n]


def tau_lepton_fraction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Energy fraction of the lepton in tau -> l nu nu: ``f(x) = (5 - 9x^2 + 4x^3)/3`` on [0, 1]."""
    return _accept_reject(
        rng, n, lambda m: rng.random(m), lambda x: (5.0 - 9.0 * x * x + 4.0 * x**3) / 3.0,
        bound=5.0 / 3.0, efficiency=0.6,
    )


def polarised_cos(rng: np.random.Generator, n: int, f0: float, fl: float, fr: float) -> np.ndarray:
    """cos(theta*) of the charged lepton in a W decay with helicity fractions (f0, fL, fR):
    ``3/4 f0 sin^2 + 3/8 fL (1 - cos)^2 + 3/8 fR (1 + cos)^2`` (exact mixture sampling).

    Example:
        >>> c = polarised_cos(np.random.default_rng(1), 200_000, 0.0, 1.0, 0.0)
        >>> abs(float(c.mean()) + 0.5) < 0.01  # <cos> = -1/2 for (1 - cos)^2
        True
    """
    which = rng.random(n)
    u = rng.random((3, n))
    median3 = np.median(rng.uniform(-1.0, 1.0, (3, n)), axis=0)  # density 3/4 (1 - c^2)
    cube = np.cbrt(u[0])
    return np.where(which < f0, median3, np.where(which < f0 + fl, 1.0 - 2.0 * cube, 2.0 * cube - 1.0))


def rapidity(rng: np.random.Generator, mass: np.ndarray, b: tuple[float, float]) -> np.ndarray:
    """System rapidity at fixed mass from toy parton densities ``(1-x1)^b1 (1-x2)^b2``."""
    n = mass.size
    out = np.empty(n)
    todo = np.arange(n)
    r = mass / SQRT_S
    ymax = -np.log(r)
    while todo.size:
        y = rng.uniform(-1.0, 1.0, todo.size) * ymax[todo]
        x1, x2 = r[todo] * np.exp(y), r[todo] * np.exp(-y)
        w = np.clip(1.0 - x1, 0.0, None) ** b[0] * np.clip(1.0 - x2, 0.0, None) ** b[1]
        ok = rng.random(todo.size) < w
        out[todo[ok]] = y[ok]
        todo = todo[~ok]
    # Either proton can give the quark: symmetrise.
    return np.where(rng.random(n) < 0.5, out, -out)


def _isr_partons(
    rng: np.random.Generator, rx: np.ndarray, ry: np.ndarray, p_two: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the recoil ``(rx, ry)`` into one or two ISR partons: (pt, eta, phi), shape (n, 2)."""
    n = rx.size
    two = rng.random(n) < p_two
    frac = np.where(two, rng.random(n), 0.0) * np.hypot(rx, ry)
    phi2 = rng.uniform(-np.pi, np.pi, n)
    j2x, j2y = frac * np.cos(phi2), frac * np.sin(phi2)
    j1x, j1y = rx - j2x, ry - j2y
    pt = np.stack([np.hypot(j1x, j1y), np.hypot(j2x, j2y)], axis=1)
    phi = np.stack([np.arctan2(j1y, j1x), phi2], axis=1)
    eta = rng.normal(0.0, ISR_ETA_SIGMA, (n, 2))
    return pt, eta, phi


def _produce(rng, name: str, mass: np.ndarray) -> np.ndarray:
    """Lab four-vector of the produced system of the given masses."""
    prod = PRODUCTION[name]
    n = mass.size
    pt = prod.pt.sample(rng, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    y = rapidity(rng, mass, prod.pdf_b)
    return _lab_system(mass, pt, phi, y)


def _assign_flavours(rng, lp, lm, n) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Give the electron to the positive or negative lepton at random (e-mu either way)."""
    e_pos = rng.random(n) < 0.5
    e = np.where(e_pos, lp[1:], lm[1:])
    mu = np.where(e_pos, lm[1:], lp[1:])
    e_q = np.where(e_pos, 1, -1).astype(np.int8)
    return e, mu, e_q, -e_q


def _truth(name, e, mu, e_q, mu_q, nu_x, nu_y, system, partons=None) -> Truth:
    """Bundle the objects; the ISR partons are only built for selected events (``reconstruct``)."""
    if partons is None:
        partons = [np.zeros((e.shape[1], 0))] * 3
    return Truth(e, mu, e_q, mu_q, nu_x, nu_y, -system[1], -system[2],
                 PRODUCTION[name].p_two_isr, *partons)


def _pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p[1], p[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(p[3] / pt)
    return pt, eta, np.arctan2(p[2], p[1])


# --------------------------------------------------------------------------------------------
# H -> W+ W-* -> l+ nu l- nubar.


def _hww_mass_weight(x: np.ndarray, y: np.ndarray, mh: np.ndarray) -> np.ndarray:
    """Mass-stage weight f/q (see ``_hww_masses``), up to a constant."""
    mg = M_W * GAMMA_W
    bw = lambda s: 1.0 / ((s - M_W * M_W) ** 2 + mg * mg)  # noqa: E731
    s = mh * mh
    lam = (s - x - y) ** 2 - 4.0 * x * y
    beta = np.sqrt(np.maximum(lam, 0.0)) / s
    f = bw(x) * bw(y) * beta * (np.maximum(lam, 0.0) + 12.0 * x * y)
    z = (np.arctan((s - M_W * M_W) / mg) + np.arctan(M_W * M_W / mg)) / mg
    with np.errstate(divide="ignore"):
        q_bw = 0.5 * (bw(x) / (mh - np.sqrt(x)) ** 2 + bw(y) / (mh - np.sqrt(y)) ** 2) / z
    q_flat = 6.0 / (s * s)  # uniform on the triangle sqrt(x) + sqrt(y) < mH (area mH^4 / 6)
    return f / ((1.0 - HWW_FLAT_FRACTION) * q_bw + HWW_FLAT_FRACTION * q_flat)


@cache
def _hww_mass_bound() -> float:
    """Maximum of the mass-stage weight over the (m1, m2) triangle, with 10 % margin."""
    mh = M_H + 0.2  # upper end of the truncated Higgs line shape
    m = np.linspace(0.0, mh, 1201)[1:-1]
    m1, m2 = np.meshgrid(m, m, indexing="ij")
    inside = m1 + m2 < mh - 1e-6
    w = _hww_mass_weight(np.square(m1[inside]), np.square(m2[inside]), np.full(inside.sum(), mh))
    return 1.1 * float(w.max())


def _hww_masses(rng: np.random.Generator, mh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W+ and W- masses in H -> W W*, exact marginal of the full matrix element:
    ``BW(m1^2) BW(m2^2) beta (lambda + 12 m1^2 m2^2)`` in ``dm1^2 dm2^2`` (Breit-Wigners x
    two-body phase space x |M|^2 integrated over the W decay angles), by accept-reject.
    Proposal: with probability ``1 - HWW_FLAT_FRACTION`` one W (either, at random) from its
    Breit-Wigner on [0, mH] and the other uniform in m^2 on the remaining range; otherwise
    uniform in (m1^2, m2^2) on the triangle m1 + m2 < mH (where both W are far off shell)."""
    n = mh.size
    bound = _hww_mass_bound()
    m1 = np.empty(n)
    m2 = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        k = todo.size
        h = mh[todo]
        flat = rng.random(k) < HWW_FLAT_FRACTION
        a = np.where(flat, h * rng.beta(2.0, 3.0, k), breit_wigner_mass(rng, M_W, GAMMA_W, 0.0, h, k))
        b2 = rng.random(k) * (h - a) ** 2
        swap = rng.random(k) < 0.5
        x = np.where(swap, b2, a * a)
        y = np.where(swap, a * a, b2)
        w = _hww_mass_weight(x, y, h)
        if np.any(w > bound):  # the grid bound is an invariant: fail loudly, never bias
            raise RuntimeError("H->WW mass weight exceeds its bound; enlarge the grid margin")
        ok = rng.random(k) * bound < w
        m1[todo[ok]] = np.sqrt(x[ok])
        m2[todo[ok]] = np.sqrt(y[ok])
        todo = todo[~ok]
    return m1, m2


def _hww_leptons(m1, m2, e1, e2, p, c1, f1, c2, f2) -> tuple[np.ndarray, np.ndarray]:
    """l+ and l- in the H frame with W+ along +z, W- along -z; (c, f) are the lepton polar
    cosine and azimuth in the W rest frames (boosts along z written out)."""
    s1, s2 = np.sqrt(1.0 - c1 * c1), np.sqrt(1.0 - c2 * c2)
    lp = 0.5 * np.stack([e1 + p * c1, m1 * s1 * np.cos(f1), m1 * s1 * np.sin(f1), e1 * c1 + p])
    lm = 0.5 * np.stack([e2 - p * c2, m2 * s2 * np.cos(f2), m2 * s2 * np.sin(f2), e2 * c2 - p])
    return lp, lm


def hww_decays(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """``n`` H -> W+ W- -> l+ nu l- nubar decays in the H rest frame, spin-correlated.

    Masses from their exact marginal (``_hww_masses``); then, for each event, W decay angles
    are redrawn until accepted with probability ``(p_l+ . p_nubar)(p_nu . p_l-) / B`` where
    ``B = ((mH^2 - m1^2 - m2^2)/4)^2`` bounds it (the two dot products sum to at most
    ``(mH^2 - m1^2 - m2^2)/2``): exact sampling of the angles given the masses. Finally the
    decay is rotated to an isotropic orientation. Returns (mh, l+, nu, l-, nubar), each (4, n).
    """
    mh = breit_wigner_mass(rng, M_H, GAMMA_H, M_H - 0.2, M_H + 0.2, n)
    m1, m2 = _hww_masses(rng, mh)
    p = two_body_momentum(mh, m1, m2)
    e1, e2 = np.sqrt(p * p + m1 * m1), np.sqrt(p * p + m2 * m2)
    bound = ((mh * mh - m1 * m1 - m2 * m2) / 4.0) ** 2
    angles = np.empty((4, n))
    todo = np.arange(n)
    while todo.size:
        k = todo.size
        c1, c2 = rng.uniform(-1.0, 1.0, (2, k))
        f1, f2 = rng.uniform(0.0, 2.0 * np.pi, (2, k))
        em1, em2, ee1, ee2, pp = m1[todo], m2[todo], e1[todo], e2[todo], p[todo]
        lp, lm = _hww_leptons(em1, em2, ee1, ee2, pp, c1, f1, c2, f2)
        lplm = minkowski_dot(lp, lm)
        # nubar = W- - l-, nu = W+ - l+
        amp = (lp[0] * ee2 + lp[3] * pp - lplm) * (ee1 * lm[0] - pp * lm[3] - lplm)
        ok = rng.random(k) * bound[todo] < amp
        angles[:, todo[ok]] = np.stack([c1[ok], f1[ok], c2[ok], f2[ok]])
        todo = todo[~ok]
    lp, lm = _hww_leptons(m1, m2, e1, e2, p, *angles)
    zeros = np.zeros(n)
    nu = np.stack([e1, zeros, zeros, p]) - lp
    nub = np.stack([e2, zeros, zeros, -p]) - lm
    # Isotropic orientation: z -> random axis; the uniform lepton azimuths randomise the rest.
    axis = _isotropic(rng, n)
    helper = np.zeros_like(axis)
    use_y = np.abs(axis[0]) > 0.9
    helper[0], helper[1] = ~use_y, use_y
    ex = _unit(np.cross(helper, axis, axis=0))
    ey = np.cross(axis, ex, axis=0)
    rotate = lambda v: np.concatenate([v[:1], v[1] * ex + v[2] * ey + v[3] * axis])  # noqa: E731
    return mh, rotate(lp), rotate(nu), rotate(lm), rotate(nub)


def _gen_ggh(rng: np.random.Generator, n: int) -> Truth:
    mh, lp, nu, lm, nub = hww_decays(rng, n)
    system = _produce(rng, "ggH_WW", mh)
    lp, nu, lm, nub = (boost(p, system, mh) for p in (lp, nu, lm, nub))
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    return _truth("ggH_WW", e, mu, e_q, mu_q, nu[1] + nub[1], nu[2] + nub[2], system)


# --------------------------------------------------------------------------------------------
# Backgrounds.


def _w_decay(rng, w: np.ndarray, mw: np.ndarray, helicity: tuple[float, float, float]):
    """W -> l nu in the frame where the W has four-momentum ``w``; lepton angle from the
    helicity fractions about the W flight direction. Returns (lepton, neutrino)."""
    n = mw.size
    cos = polarised_cos(rng, n, *helicity)
    axis = _unit(w[1:])
    lep, nu = _two_body(mw, 0.0, 0.0, _about_axis(axis, cos, rng.uniform(0.0, 2.0 * np.pi, n)))
    return boost(lep, w, mw), boost(nu, w, mw)


def _gen_ww(rng: np.random.Generator, n: int) -> Truth:
    m1 = breit_wigner_mass(rng, M_W, GAMMA_W, 30.0, 200.0, n)
    m2 = breit_wigner_mass(rng, M_W, GAMMA_W, 30.0, 200.0, n)
    mww = m1 + m2 + MASS_EXCESS["WW"].sample(rng, n)
    wp, wm = _two_body(mww, m1, m2, _isotropic(rng, n))
    lp, nu = _w_decay(rng, wp, m1, W_HELICITY["WW"])
    lm, nub = _w_decay(rng, wm, m2, W_HELICITY["WW"])
    system = _produce(rng, "WW", mww)
    lp, nu, lm, nub = (boost(p, system, mww) for p in (lp, nu, lm, nub))
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    return _truth("WW", e, mu, e_q, mu_q, nu[1] + nub[1], nu[2] + nub[2], system)


def _top_decay(rng, top: np.ndarray, mt: np.ndarray):
    """t -> W b -> l nu b in the frame where the top has four-momentum ``top``."""
    n = mt.size
    mw = breit_wigner_mass(rng, M_W, GAMMA_W, 20.0, mt - M_B - 1e-3, n)
    w, b = _two_body(mt, mw, M_B, _isotropic(rng, n))
    lep, nu = _w_decay(rng, w, mw, W_HELICITY["ttbar"])
    return boost(lep, top, mt), boost(nu, top, mt), boost(b, top, mt)


def _gen_ttbar(rng: np.random.Generator, n: int) -> Truth:
    mt1 = breit_wigner_mass(rng, M_TOP, GAMMA_TOP, 160.0, 185.0, n)
    mt2 = breit_wigner_mass(rng, M_TOP, GAMMA_TOP, 160.0, 185.0, n)
    mtt = mt1 + mt2 + MASS_EXCESS["ttbar"].sample(rng, n)
    t, tbar = _two_body(mtt, mt1, mt2, _isotropic(rng, n))
    lp, nu, b = _top_decay(rng, t, mt1)
    lm, nub, bbar = _top_decay(rng, tbar, mt2)
    system = _produce(rng, "ttbar", mtt)
    lp, nu, lm, nub, b, bbar = (boost(p, system, mtt) for p in (lp, nu, lm, nub, b, bbar))
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    bjets = [np.stack(v, axis=1) for v in zip(_pt_eta_phi(b), _pt_eta_phi(bbar), strict=True)]
    return _truth("ttbar", e, mu, e_q, mu_q, nu[1] + nub[1], nu[2] + nub[2], system, bjets)


def _z_mass(rng: np.random.Generator, n: int) -> np.ndarray:
    lo, hi = 40.0, 1000.0
    bw = breit_wigner_mass(rng, M_Z, GAMMA_Z, lo, hi, n)
    u = rng.random(n)
    continuum = 1.0 / np.sqrt(lo**-2 - u * (lo**-2 - hi**-2))  # density ~ m^-3
    return np.where(rng.random(n) < Z_CONTINUUM_FRACTION, continuum, bw)


def _gen_ztautau(rng: np.random.Generator, n: int) -> Truth:
    mz = _z_mass(rng, n)
    system = _produce(rng, "Ztautau", mz)
    # 1 + cos^2 about the beam: an equal mixture of (1 - c)^2 and (1 + c)^2.
    cos = polarised_cos(rng, n, 0.0, 0.5, 0.5)
    taup, taum = _two_body(mz, M_TAU, M_TAU, _direction(cos, rng.uniform(0.0, 2.0 * np.pi, n)))
    taup, taum = boost(taup, system, mz), boost(taum, system, mz)
    # Collinear decays: the lepton carries a fraction x of the tau momentum, the neutrinos the rest.
    xp, xm = tau_lepton_fraction(rng, n), tau_lepton_fraction(rng, n)
    lp = np.concatenate([[np.zeros(n)], xp * taup[1:]])
    lm = np.concatenate([[np.zeros(n)], xm * taum[1:]])
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    nu_x = (1.0 - xp) * taup[1] + (1.0 - xm) * taum[1]
    nu_y = (1.0 - xp) * taup[2] + (1.0 - xm) * taum[2]
    return _truth("Ztautau", e, mu, e_q, mu_q, nu_x, nu_y, system)


class _Process(NamedTuple):
    code: int
    label: int
    generate: Callable[[np.random.Generator, int], Truth]


PROCESSES: dict[str, _Process] = {
    "ggH_WW": _Process(1, 1, _gen_ggh),
    "WW": _Process(2, 0, _gen_ww),
    "ttbar": _Process(3, 0, _gen_ttbar),
    "Ztautau": _Process(4, 0, _gen_ztautau),
}


# --------------------------------------------------------------------------------------------
# Detector and selection.


@dataclass(frozen=True)
class Detector:
    lepton_pt_resolution: float
    jet_pt_resolution: float
    soft_met_resolution_gev: float


@dataclass(frozen=True)
class Selection:
    lepton_pt_min_leading: float
    lepton_pt_min_subleading: float
    lepton_abs_eta_max: float
    jet_pt_min: float
    jet_abs_eta_max: float


def reconstruct(
    rng: np.random.Generator, truth: Truth, det: Detector, sel: Selection
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Smear, select and build the reconstructed columns (before the derived features).

    Returns the indices of the selected events within the chunk and their columns.
    """
    n = truth.e_charge.size
    e_pt_t, e_eta, e_phi = _pt_eta_phi(np.concatenate([[np.zeros(n)], truth.e]))
    mu_pt_t, mu_eta, mu_phi = _pt_eta_phi(np.concatenate([[np.zeros(n)], truth.mu]))
    res = det.lepton_pt_resolution
    e_pt = e_pt_t * np.clip(1.0 + res * rng.standard_normal(n), 0.0, None)
    mu_pt = mu_pt_t * np.clip(1.0 + res * rng.standard_normal(n), 0.0, None)
    lead, sub = np.maximum(e_pt, mu_pt), np.minimum(e_pt, mu_pt)
    passed = (
        (np.abs(e_eta) < sel.lepton_abs_eta_max)
        & (np.abs(mu_eta) < sel.lepton_abs_eta_max)
        & (lead > sel.lepton_pt_min_leading)
        & (sub > sel.lepton_pt_min_subleading)
        & (truth.e_charge * truth.mu_charge < 0)
    )
    idx = np.flatnonzero(passed)
    k = idx.size
    e_first = e_pt[idx] >= mu_pt[idx]
    pick = lambda a, b: np.where(e_first, a[idx], b[idx])  # noqa: E731
    cols = {
        "lep1_pt": pick(e_pt, mu_pt), "lep1_eta": pick(e_eta, mu_eta), "lep1_phi": pick(e_phi, mu_phi),
        "lep2_pt": pick(mu_pt, e_pt), "lep2_eta": pick(mu_eta, e_eta), "lep2_phi": pick(mu_phi, e_phi),
        "lep1_pt_true": pick(e_pt_t, mu_pt_t), "lep2_pt_true": pick(mu_pt_t, e_pt_t),
        "met_true": np.hypot(truth.nu_x[idx], truth.nu_y[idx]),
    }
    isr = _isr_partons(rng, truth.recoil_x[idx], truth.recoil_y[idx], truth.p_two_isr)
    pt_t, eta, phi = (
        np.concatenate([a[idx], b], axis=1)
        for a, b in zip((truth.parton_pt, truth.parton_eta, truth.parton_phi), isr, strict=True)
    )
    pt = pt_t * np.clip(1.0 + det.jet_pt_resolution * rng.standard_normal(pt_t.shape), 0.0, None)
    is_jet = (pt > sel.jet_pt_min) & (np.abs(eta) < sel.jet_abs_eta_max)
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    noise = det.soft_met_resolution_gev * rng.standard_normal((2, k))
    cols["jet1_pt"] = np.where(is_jet, pt, 0.0).max(axis=1, initial=0.0)
    cols["n_jets"] = is_jet.sum(axis=1).astype(np.int64)
    cols["jets_px"] = np.where(is_jet, px, 0.0).sum(axis=1)
    cols["jets_py"] = np.where(is_jet, py, 0.0).sum(axis=1)
    cols["soft_px"] = np.where(is_jet, 0.0, px).sum(axis=1) + noise[0]
    cols["soft_py"] = np.where(is_jet, 0.0, py).sum(axis=1) + noise[1]
    return idx, cols


# --------------------------------------------------------------------------------------------
# Driver.


def _chunk_rng(seed: int, code: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(code, chunk))))


def _check_inputs(n_selected: Mapping[str, int], cross_sections_pb: Mapping[str, float] | None,
                  luminosity_fb: float, chunk_size: int, numbers: Mapping[str, float],
                  seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed: expected an integer >= 0, got {seed!r}")
    for key, table in (("n_selected", n_selected), ("cross_sections_pb", cross_sections_pb or {})):
        unknown = sorted(set(table) - set(PROCESSES))
        if unknown:
            raise ConfigError(f"simulate.{key}: unknown process(es) {unknown}; known: {list(PROCESSES)}")
    for name, n in n_selected.items():
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ConfigError(f"simulate.n_selected.{name}: expected an integer >= 0, got {n!r}")
    for name, xs in (cross_sections_pb or {}).items():
        if not xs > 0:
            raise ConfigError(f"simulate.cross_sections_pb.{name}: expected a number > 0, got {xs!r}")
    if not luminosity_fb > 0:
        raise ConfigError(f"simulate.luminosity_fb: expected a number > 0, got {luminosity_fb!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ConfigError(f"simulate.chunk_size: expected an integer >= 1, got {chunk_size!r}")
    for key, value in numbers.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"simulate.{key}: expected a finite number >= 0, got {value!r}")


def simulate_with_stats(
    *,
    n_selected: Mapping[str, int],
    seed: int,
    luminosity_fb: float = 139.0,
    chunk_size: int = 200_000,
    cross_sections_pb: Mapping[str, float] | None = None,
    lepton_pt_resolution: float = 0.015,
    jet_pt_resolution: float = 0.10,
    soft_met_resolution_gev: float = 8.0,
    lepton_pt_min_leading: float = 25.0,
    lepton_pt_min_subleading: float = 15.0,
    lepton_abs_eta_max: float = 2.5,
    jet_pt_min: float = 30.0,
    jet_abs_eta_max: float = 4.5,
    keep_truth: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    max_empty_chunks: int = 20,
) -> SimulationResult:
    """Like ``simulate`` but also returns ``n_generated``, efficiencies and cross sections.

    ``n_generated[p]`` counts every generated event of process p up to its last selected one,
    so ``sum(weight[p]) = sigma_p x L x n_selected[p] / n_generated[p]`` exactly.

    Raises:
        ConfigError: unknown process, negative count, non-positive luminosity/cross section,
            or a selection that keeps nothing in ``max_empty_chunks`` chunks.
    """
    numbers = {
        "detector.lepton_pt_resolution": lepton_pt_resolution,
        "detector.jet_pt_resolution": jet_pt_resolution,
        "detector.soft_met_resolution_gev": soft_met_resolution_gev,
        "selection.lepton_pt_min_leading": lepton_pt_min_leading,
        "selection.lepton_pt_min_subleading": lepton_pt_min_subleading,
        "selection.lepton_abs_eta_max": lepton_abs_eta_max,
        "selection.jet_pt_min": jet_pt_min,
        "selection.jet_abs_eta_max": jet_abs_eta_max,
    }
    _check_inputs(n_selected, cross_sections_pb, luminosity_fb, chunk_size, numbers, seed)
    xs = {**CROSS_SECTIONS_PB, **dict(cross_sections_pb or {})}
    det = Detector(lepton_pt_resolution, jet_pt_resolution, soft_met_resolution_gev)
    sel = Selection(lepton_pt_min_leading, lepton_pt_min_subleading, lepton_abs_eta_max,
                    jet_pt_min, jet_abs_eta_max)
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
                frame = pd.DataFrame({
                    "event_id": proc.code * EVENT_ID_STRIDE + gen_index,
                    "process": np.full(take, name, dtype=object),
                    "label": np.full(take, proc.label, dtype=np.int8),
                    "weight": np.zeros(take),
                    **{c: v[:take] for c, v in cols.items()},
                })
                frames.append(recompute_derived(frame)[order])
            have += take
            chunk += 1
            log.info("%s: chunk %d, %d/%d selected (efficiency %.4f)", name, chunk, have, target,
                     idx.size / chunk_size)
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
        log.info("%s: %d selected of %d generated (efficiency %.4f) in %.2f s", name, target,
                 n_gen, target / n_gen, time.perf_counter() - started)
    if frames:
        events = pd.concat(frames, ignore_index=True)
    else:
        events = pd.DataFrame({c: pd.Series(dtype=_empty_dtype(c)) for c in order})
    efficiency = {p: n_selected[p] / n for p, n in n_generated.items()}
    return SimulationResult(events, n_generated, efficiency, {p: xs[p] for p in n_generated})


def _empty_dtype(column: str) -> object:
    return {"event_id": np.int64, "process": object, "label": np.int8, "n_jets": np.int64}.get(
        column, np.float64
    )


def simulate(
    *,
    n_selected: Mapping[str, int],
    seed: int,
    luminosity_fb: float = 139.0,
    chunk_size: int = 200_000,
    cross_sections_pb: Mapping[str, float] | None = None,
    lepton_pt_resolution: float = 0.015,
    jet_pt_resolution: float = 0.10,
    soft_met_resolution_gev: float = 8.0,
    lepton_pt_min_leading: float = 25.0,
    lepton_pt_min_subleading: float = 15.0,
    lepton_abs_eta_max: float = 2.5,
    jet_pt_min: float = 30.0,
    jet_abs_eta_max: float = 4.5,
    keep_truth: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> pd.DataFrame:
    """Simulate ``n_selected[p]`` selected e-mu events per process p (SPEC section 8).

    Weights are ``sigma x BR x L / N_generated``; ``keep_truth`` adds ``TRUTH_COLUMNS``.
    ``progress(process, n_selected_so_far, n_target)`` is called after every chunk. See
    ``simulate_with_stats`` for the generated counts and the module docstring for the model.
    """
    return simulate_with_stats(
        n_selected=n_selected, seed=seed, luminosity_fb=luminosity_fb, chunk_size=chunk_size,
        cross_sections_pb=cross_sections_pb, lepton_pt_resolution=lepton_pt_resolution,
        jet_pt_resolution=jet_pt_resolution, soft_met_resolution_gev=soft_met_resolution_gev,
        lepton_pt_min_leading=lepton_pt_min_leading,
        lepton_pt_min_subleading=lepton_pt_min_subleading,
        lepton_abs_eta_max=lepton_abs_eta_max, jet_pt_min=jet_pt_min,
        jet_abs_eta_max=jet_abs_eta_max, keep_truth=keep_truth, progress=progress,
    ).events


__all__ = [
    "COLUMNS",
    "MODEL_SUMMARY",
    "CROSS_SECTIONS_PB",
    "PROCESSES",
    "PRODUCTION",
    "TRUTH_COLUMNS",
    "Burr12",
    "SimulationResult",
    "Truth",
    "boost",
    "breit_wigner_mass",
    "hww_decays",
    "minkowski_dot",
    "polarised_cos",
    "rapidity",
    "reconstruct",
    "simulate",
    "simulate_with_stats",
    "tau_lepton_fraction",
    "two_body_momentum",
]
