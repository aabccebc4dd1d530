"""Kinematics of the built-in simulation: four-vectors, boosts, decay angles and the
one-dimensional samplers (Breit-Wigner masses, Burr XII spectra, rapidity, tau decay
fractions, W helicity angles). The physics model is described in docs/simulation.md."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Centre-of-mass energy of the pp collisions (GeV).
SQRT_S = 13_000.0


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


def two_body(
    mass: np.ndarray | float, m1: np.ndarray | float, m2: np.ndarray | float, direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Four-momenta (4, n) of the daughters of ``mass -> m1 m2`` in the parent rest frame,
    the first along the unit vectors ``direction`` (3, n), the second opposite."""
    p = two_body_momentum(np.asarray(mass), np.asarray(m1), np.asarray(m2))
    d1 = np.empty((4, p.size))
    d1[0] = np.sqrt(p * p + np.square(m1))
    d1[1:] = p * direction
    d2 = np.empty_like(d1)
    d2[0] = np.sqrt(p * p + np.square(m2))
    d2[1:] = -d1[1:]
    return d1, d2


def spherical_direction(cos: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors (3, n) of polar cosine ``cos`` and azimuth ``phi`` about the z axis."""
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), cos])


def isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly distributed unit vectors (3, n)."""
    return spherical_direction(rng.uniform(-1.0, 1.0, n), rng.uniform(0.0, 2.0 * np.pi, n))


def about_axis(axis: np.ndarray, cos: np.ndarray, phi: np.ndarray) -> np.ndarray:
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


def unit(v: np.ndarray) -> np.ndarray:
    """The vectors (3, n) normalised to length 1."""
    return v / np.linalg.norm(v, axis=0)


def lab_system(mass: np.ndarray, pt: np.ndarray, phi: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Four-vectors of systems of the given mass, transverse momentum, azimuth and rapidity."""
    mt = np.sqrt(mass * mass + pt * pt)
    return np.stack([mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y)])


def pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transverse momentum, pseudorapidity and azimuth of four-vectors (4, n)."""
    pt = np.hypot(p[1], p[2])
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(p[3] / pt)
    return pt, eta, np.arctan2(p[2], p[1])


# --------------------------------------------------------------------------------------------
# Samplers.


def breit_wigner_mass(
    rng: np.random.Generator,
    m0: float,
    gamma: float,
    lo: np.ndarray | float,
    hi: np.ndarray | float,
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
    rng: np.random.Generator,
    n: int,
    draw: Callable[[int], np.ndarray],
    density: Callable[[np.ndarray], np.ndarray],
    bound: float,
    efficiency: float,
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
        rng,
        n,
        lambda m: rng.random(m),
        lambda x: (5.0 - 9.0 * x * x + 4.0 * x**3) / 3.0,
        bound=5.0 / 3.0,
        efficiency=0.6,
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
    return np.where(
        which < f0, median3, np.where(which < f0 + fl, 1.0 - 2.0 * cube, 2.0 * cube - 1.0)
    )


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
