"""Built-in vectorised 13 TeV simulation of H->WW*->e nu mu nu and its main backgrounds.

The public API of the package; the code lives in the submodules:

* ``kinematics``: four-vectors, boosts, decay angles and one-dimensional samplers;
* ``processes``: the generated processes (ggH -> WW*, WW, ttbar, Z -> tautau), their
  production spectra and cross sections;
* ``detector``: detector response and e-mu selection (``Detector``, ``Selection``);
* ``driver``: chunked, seeded generation of the event table (``simulate_with_stats``).

The physics model, its references and the randomness contract are described in
docs/simulation.md (and ``MODEL_SUMMARY``).
"""

from .detector import Detector, Selection, reconstruct
from .driver import (
    COLUMNS,
    EVENT_ID_STRIDE,
    MODEL_SUMMARY,
    TRUTH_COLUMNS,
    SimulationResult,
    simulate_with_stats,
)
from .kinematics import (
    Burr12,
    boost,
    breit_wigner_mass,
    minkowski_dot,
    polarised_cos,
    rapidity,
    tau_lepton_fraction,
    two_body_momentum,
)
from .processes import (
    CROSS_SECTIONS_PB,
    GAMMA_TOP,
    GAMMA_W,
    GAMMA_Z,
    M_H,
    M_TOP,
    M_W,
    M_Z,
    MASS_EXCESS,
    PROCESSES,
    PRODUCTION,
    W_HELICITY,
    Truth,
    hww_decays,
)

__all__ = [
    "COLUMNS",
    "CROSS_SECTIONS_PB",
    "EVENT_ID_STRIDE",
    "GAMMA_TOP",
    "GAMMA_W",
    "GAMMA_Z",
    "MASS_EXCESS",
    "MODEL_SUMMARY",
    "M_H",
    "M_TOP",
    "M_W",
    "M_Z",
    "PROCESSES",
    "PRODUCTION",
    "TRUTH_COLUMNS",
    "W_HELICITY",
    "Burr12",
    "Detector",
    "Selection",
    "SimulationResult",
    "Truth",
    "boost",
    "breit_wigner_mass",
    "hww_decays",
    "minkowski_dot",
    "polarised_cos",
    "rapidity",
    "reconstruct",
    "simulate_with_stats",
    "tau_lepton_fraction",
    "two_body_momentum",
]
