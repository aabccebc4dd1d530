"""Detector response and event selection of the built-in simulation: Gaussian pT
smearing of leptons and jets, the soft term and the e-mu selection (docs/simulation.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinematics import pt_eta_phi
from .processes import Truth, isr_partons


@dataclass(frozen=True)
class Detector:
    """Gaussian relative pT resolutions of leptons and jets, and the Gaussian noise of the
    soft term per MET component (GeV). The defaults are those of config/config.yaml.

    Example:
        >>> Detector(jet_pt_resolution=0.2)
        Detector(lepton_pt_resolution=0.015, jet_pt_resolution=0.2, soft_met_resolution_gev=8.0)
    """

    lepton_pt_resolution: float = 0.015
    jet_pt_resolution: float = 0.10
    soft_met_resolution_gev: float = 8.0


@dataclass(frozen=True)
class Selection:
    """e-mu selection after smearing (leptons) and the jet definition (pT in GeV)."""

    lepton_pt_min_leading: float = 25.0
    lepton_pt_min_subleading: float = 15.0
    lepton_abs_eta_max: float = 2.5
    jet_pt_min: float = 30.0
    jet_abs_eta_max: float = 4.5


def reconstruct(
    rng: np.random.Generator, truth: Truth, det: Detector, sel: Selection
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Smear, select and build the reconstructed columns (before the derived features).

    Returns the indices of the selected events within the chunk and their columns.
    """
    n = truth.e_charge.size
    e_pt_t, e_eta, e_phi = pt_eta_phi(np.concatenate([[np.zeros(n)], truth.e]))
    mu_pt_t, mu_eta, mu_phi = pt_eta_phi(np.concatenate([[np.zeros(n)], truth.mu]))
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
        "lep1_pt": pick(e_pt, mu_pt),
        "lep1_eta": pick(e_eta, mu_eta),
        "lep1_phi": pick(e_phi, mu_phi),
        "lep2_pt": pick(mu_pt, e_pt),
        "lep2_eta": pick(mu_eta, e_eta),
        "lep2_phi": pick(mu_phi, e_phi),
        "lep1_pt_true": pick(e_pt_t, mu_pt_t),
        "lep2_pt_true": pick(mu_pt_t, e_pt_t),
        "met_true": np.hypot(truth.nu_x[idx], truth.nu_y[idx]),
    }
    isr = isr_partons(rng, truth.recoil_x[idx], truth.recoil_y[idx], truth.p_two_isr)
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
