"""The generated processes of the built-in simulation: ggH -> WW* (spin-correlated),
WW, ttbar and Z/gamma* -> tautau, each as a production system (mass, pT, rapidity) decayed
to e-mu final states with four-vectors; plus their cross sections. The physics model and
its references are described in docs/simulation.md."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import NamedTuple

import numpy as np

from .kinematics import (
    Burr12,
    about_axis,
    boost,
    breit_wigner_mass,
    isotropic,
    lab_system,
    minkowski_dot,
    polarised_cos,
    pt_eta_phi,
    rapidity,
    spherical_direction,
    tau_lepton_fraction,
    two_body,
    two_body_momentum,
    unit,
)

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


class _Production(NamedTuple):
    pt: Burr12
    pdf_b: tuple[float, float]  # (1-x)^b exponents of the two incoming partons
    p_two_isr: float


#: Production models (parameters fitted to the Pythia figures: see ``driver.MODEL_SUMMARY``).
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


def isr_partons(
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


def _produce(rng: np.random.Generator, name: str, mass: np.ndarray) -> np.ndarray:
    """Lab four-vector of the produced system of the given masses."""
    prod = PRODUCTION[name]
    n = mass.size
    pt = prod.pt.sample(rng, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    y = rapidity(rng, mass, prod.pdf_b)
    return lab_system(mass, pt, phi, y)


def _assign_flavours(
    rng: np.random.Generator, lp: np.ndarray, lm: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Give the electron to the positive or negative lepton at random (e-mu either way)."""
    e_pos = rng.random(n) < 0.5
    e = np.where(e_pos, lp[1:], lm[1:])
    mu = np.where(e_pos, lm[1:], lp[1:])
    e_q = np.where(e_pos, 1, -1).astype(np.int8)
    return e, mu, e_q, -e_q


def _truth(
    name: str,
    e: np.ndarray,
    mu: np.ndarray,
    e_q: np.ndarray,
    mu_q: np.ndarray,
    nu_x: np.ndarray,
    nu_y: np.ndarray,
    system: np.ndarray,
    partons: list[np.ndarray] | None = None,
) -> Truth:
    """Bundle the objects; the ISR partons are only built for selected events (``reconstruct``)."""
    if partons is None:
        partons = [np.zeros((e.shape[1], 0))] * 3
    return Truth(
        e, mu, e_q, mu_q, nu_x, nu_y, -system[1], -system[2], PRODUCTION[name].p_two_isr, *partons
    )


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
        a = np.where(
            flat, h * rng.beta(2.0, 3.0, k), breit_wigner_mass(rng, M_W, GAMMA_W, 0.0, h, k)
        )
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


def _hww_leptons(
    m1: np.ndarray,
    m2: np.ndarray,
    e1: np.ndarray,
    e2: np.ndarray,
    p: np.ndarray,
    c1: np.ndarray,
    f1: np.ndarray,
    c2: np.ndarray,
    f2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
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
    axis = isotropic(rng, n)
    helper = np.zeros_like(axis)
    use_y = np.abs(axis[0]) > 0.9
    helper[0], helper[1] = ~use_y, use_y
    ex = unit(np.cross(helper, axis, axis=0))
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


def _w_decay(
    rng: np.random.Generator, w: np.ndarray, mw: np.ndarray, helicity: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """W -> l nu in the frame where the W has four-momentum ``w``; lepton angle from the
    helicity fractions about the W flight direction. Returns (lepton, neutrino)."""
    n = mw.size
    cos = polarised_cos(rng, n, *helicity)
    axis = unit(w[1:])
    lep, nu = two_body(mw, 0.0, 0.0, about_axis(axis, cos, rng.uniform(0.0, 2.0 * np.pi, n)))
    return boost(lep, w, mw), boost(nu, w, mw)


def _gen_ww(rng: np.random.Generator, n: int) -> Truth:
    m1 = breit_wigner_mass(rng, M_W, GAMMA_W, 30.0, 200.0, n)
    m2 = breit_wigner_mass(rng, M_W, GAMMA_W, 30.0, 200.0, n)
    mww = m1 + m2 + MASS_EXCESS["WW"].sample(rng, n)
    wp, wm = two_body(mww, m1, m2, isotropic(rng, n))
    lp, nu = _w_decay(rng, wp, m1, W_HELICITY["WW"])
    lm, nub = _w_decay(rng, wm, m2, W_HELICITY["WW"])
    system = _produce(rng, "WW", mww)
    lp, nu, lm, nub = (boost(p, system, mww) for p in (lp, nu, lm, nub))
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    return _truth("WW", e, mu, e_q, mu_q, nu[1] + nub[1], nu[2] + nub[2], system)


def _top_decay(
    rng: np.random.Generator, top: np.ndarray, mt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t -> W b -> l nu b in the frame where the top has four-momentum ``top``."""
    n = mt.size
    mw = breit_wigner_mass(rng, M_W, GAMMA_W, 20.0, mt - M_B - 1e-3, n)
    w, b = two_body(mt, mw, M_B, isotropic(rng, n))
    lep, nu = _w_decay(rng, w, mw, W_HELICITY["ttbar"])
    return boost(lep, top, mt), boost(nu, top, mt), boost(b, top, mt)


def _gen_ttbar(rng: np.random.Generator, n: int) -> Truth:
    mt1 = breit_wigner_mass(rng, M_TOP, GAMMA_TOP, 160.0, 185.0, n)
    mt2 = breit_wigner_mass(rng, M_TOP, GAMMA_TOP, 160.0, 185.0, n)
    mtt = mt1 + mt2 + MASS_EXCESS["ttbar"].sample(rng, n)
    t, tbar = two_body(mtt, mt1, mt2, isotropic(rng, n))
    lp, nu, b = _top_decay(rng, t, mt1)
    lm, nub, bbar = _top_decay(rng, tbar, mt2)
    system = _produce(rng, "ttbar", mtt)
    lp, nu, lm, nub, b, bbar = (boost(p, system, mtt) for p in (lp, nu, lm, nub, b, bbar))
    e, mu, e_q, mu_q = _assign_flavours(rng, lp, lm, n)
    bjets = [np.stack(v, axis=1) for v in zip(pt_eta_phi(b), pt_eta_phi(bbar), strict=True)]
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
    taup, taum = two_body(
        mz, M_TAU, M_TAU, spherical_direction(cos, rng.uniform(0.0, 2.0 * np.pi, n))
    )
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
