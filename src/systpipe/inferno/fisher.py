"""Fisher information of the binned Poisson likelihood of a (soft-)binned summary.

Two faces of the same quantity:

* :func:`inferno_hessian` (torch, differentiable): the Hessian of the Asimov negative
  log-likelihood ``sum_i nu_i - n_i log nu_i`` (``n = nu(theta_0)`` held fixed) plus the Gaussian
  constraint terms, w.r.t. ``(mu, nuisances)`` at the nominal point, with the soft bins
  ``nu_i = s mu <softmax_i(f(x_s)/T)> + b <softmax_i(f(x_b'(theta))/T)>`` computed through the
  network. Its inverse's ``[0, 0]`` element is INFERNO's loss: the expected variance of mu with
  the nuisances profiled (de Castro & Dorigo, CPC 244 (2019) 170, eqs. 8-12).
* :func:`template_fisher` (numpy): the same matrix for hard histograms, with the shape
  nuisances' effect taken by central finite differences of templates (the evaluation of the
  paper's code, ``code/template_model.py``: its quadratic/linear interpolation has exactly this
  first derivative at the nominal point). On Asimov data the second-derivative terms vanish, so
  both are ``J^T diag(1/nu) J + diag(1/sigma^2)`` with ``J = d nu / d theta``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from .nuisances import Nuisance, constraint_nll, nominal_values, rate_factor, transform


@dataclass(frozen=True)
class BinnedSpec:
    """Expected yields and nuisances of the two-process binned model.

    Attributes:
        signal: expected signal events at mu = 1.
        background: expected background events at nominal nuisances.
        nuisances: the nuisance parameters (absent ones are fixed at their nominal values).
    """

    signal: float
    background: float
    nuisances: tuple[Nuisance, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return ["mu", *(n.name for n in self.nuisances)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "background": self.background,
            "nuisances": [n.to_dict() for n in self.nuisances],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinnedSpec:
        try:
            nus = tuple(Nuisance.from_dict(n) for n in d.get("nuisances", []))
            return cls(float(d["signal"]), float(d["background"]), nus)
        except KeyError as exc:
            raise ModelError(f"binned model spec: missing key {exc}") from exc


# ---------------------------------------------------------------------------------- torch


def _weighted_mean(p: Any, w: Any | None) -> Any:
    if w is None:
        return p.mean(dim=0)
    return (p * w[:, None]).sum(dim=0) / w.sum()


def expected_counts(
    theta: Any,
    net: Callable[[Any], Any],
    x_sig: Any,
    x_bkg: Any,
    spec: BinnedSpec,
    temperature: float,
    w_sig: Any | None = None,
    w_bkg: Any | None = None,
) -> Any:
    """Soft-binned expected counts ``nu(theta)`` (torch), differentiable in ``theta`` and the
    network's parameters."""
    import torch

    nus = spec.nuisances
    p_s = torch.softmax(net(transform(x_sig, theta, nus, "signal")) / temperature, dim=1)
    p_b = torch.softmax(net(transform(x_bkg, theta, nus, "background")) / temperature, dim=1)
    sig = spec.signal * rate_factor(theta, nus, "signal") * _weighted_mean(p_s, w_sig)
    bkg = spec.background * rate_factor(theta, nus, "background") * _weighted_mean(p_b, w_bkg)
    return sig + bkg


def inferno_hessian(
    net: Callable[[Any], Any],
    x_sig: Any,
    x_bkg: Any,
    spec: BinnedSpec,
    temperature: float,
    w_sig: Any | None = None,
    w_bkg: Any | None = None,
    *,
    create_graph: bool = True,
) -> Any:
    """Hessian of the Asimov NLL + constraints w.r.t. ``(mu, nuisances)`` at the nominal point.

    The Asimov counts are the nominal expectation, detached (INFERNO's ``stop_gradient``), so
    the Hessian is the Fisher information; with ``create_graph`` it stays differentiable in the
    network's parameters.
    """
    import torch

    theta0 = torch.tensor(nominal_values(spec.nuisances), dtype=x_sig.dtype)

    def counts(theta: Any) -> Any:
        return expected_counts(theta, net, x_sig, x_bkg, spec, temperature, w_sig, w_bkg)

    asimov = counts(theta0).detach()

    def nll(theta: Any) -> Any:
        nu = counts(theta)
        return (nu - asimov * torch.log(nu)).sum() + constraint_nll(theta, spec.nuisances)

    return torch.autograd.functional.hessian(nll, theta0, create_graph=create_graph)


def fisher_information(
    net: Callable[[Any], Any],
    x_sig: Any,
    x_bkg: Any,
    spec: BinnedSpec,
    temperature: float,
    w_sig: Any | None = None,
    w_bkg: Any | None = None,
) -> Any:
    """``J^T diag(1/nu) J + diag(1/sigma^2)`` (torch, float64), differentiable in the network.

    Equal to :func:`inferno_hessian` (the Asimov NLL's second-derivative terms vanish at the
    nominal point) but about 6 times cheaper per training step (measured on benchmark 4 with
    1000 events): the mu and norm columns of ``J`` are the templates themselves, the shape
    columns forward-mode derivatives (``torch.func.jacfwd``, one pass per process), instead of
    a double backward for every Hessian row.
    """
    import torch

    nus = spec.nuisances
    theta0 = torch.tensor(nominal_values(nus), dtype=x_sig.dtype)
    data = {"signal": (x_sig, w_sig, spec.signal), "background": (x_bkg, w_bkg, spec.background)}

    def template(process: str, theta: Any) -> Any:
        x, w, _ = data[process]
        p = torch.softmax(net(transform(x, theta, nus, process)) / temperature, dim=1)
        return _weighted_mean(p, w)

    t_s, t_b = template("signal", theta0), template("background", theta0)
    s, b = spec.signal * t_s, spec.background * t_b
    cols: list[Any] = [s]
    for n in nus:  # shape columns are filled in below
        cols.append((s if n.process == "signal" else b) if n.kind == "norm" else None)
    for process, (_, _, scale) in data.items():
        idx = [i for i, n in enumerate(nus) if n.kind != "norm" and n.process == process]
        if not idx:
            continue
        # theta = theta0 + P d: all of this process's shape nuisances in one forward-mode pass
        # (vmap over the directions shares the primal), d = 0 is the nominal point.
        proj = torch.zeros(len(theta0), len(idx), dtype=theta0.dtype)
        for c, i in enumerate(idx):
            proj[1 + i, c] = 1.0
        d0 = torch.zeros(len(idx), dtype=theta0.dtype)
        with warnings.catch_warnings():
            # torch's first forward-mode call loads decompositions through torch.jit.script,
            # which warns that torch.jit is deprecated (torch 2.13): not ours to act on.
            warnings.filterwarnings(
                "ignore", "`torch.jit.script` is deprecated", DeprecationWarning
            )
            d_t = torch.func.jacfwd(lambda d, p=process, m=proj: template(p, theta0 + m @ d))(d0)
        for c, i in enumerate(idx):
            cols[1 + i] = scale * d_t[:, c]
    jac = torch.stack(cols, dim=1).double()
    nu = (s + b).double()
    fisher = jac.T @ (jac / nu[:, None])
    constraint = [0.0, *((0.0 if n.sigma is None else n.sigma**-2) for n in nus)]
    return fisher + torch.diag(torch.tensor(constraint, dtype=torch.float64))


def inferno_loss(
    net: Callable[[Any], Any],
    x_sig: Any,
    x_bkg: Any,
    spec: BinnedSpec,
    temperature: float,
    w_sig: Any | None = None,
    w_bkg: Any | None = None,
) -> Any:
    """INFERNO's loss: the expected variance of mu, ``[H^-1]_00`` (nuisances profiled)."""
    import torch

    fisher = fisher_information(net, x_sig, x_bkg, spec, temperature, w_sig, w_bkg)
    return torch.linalg.inv(fisher)[0, 0]


# ---------------------------------------------------------------------------------- numpy


def poisson_fisher(nu: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """``J^T diag(1/nu) J``: Fisher information of independent Poisson bins with means ``nu``
    and Jacobian ``jac[i, a] = d nu_i / d theta_a``.

    Example:
        >>> poisson_fisher(np.array([4.0]), np.array([[2.0]]))
        array([[1.]])
    """
    nu = np.asarray(nu, dtype=float)
    jac = np.asarray(jac, dtype=float)
    return jac.T @ (jac / nu[:, None])


def constraint_fisher(nuisances: Sequence[Nuisance]) -> np.ndarray:
    """``diag(0, 1/sigma_1^2, ...)``; a free nuisance contributes 0."""
    return np.diag([0.0, *((0.0 if n.sigma is None else n.sigma**-2) for n in nuisances)])


def poi_sigma(fisher: np.ndarray) -> float:
    """``sqrt([F^-1]_00)``: the expected uncertainty on the first parameter, others profiled.

    Raises:
        ModelError: a singular information matrix (a free nuisance the summary cannot
            constrain).
    """
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError as exc:
        raise ModelError(f"Fisher information is singular: {exc}") from exc
    var = float(cov[0, 0])
    if not var > 0:
        raise ModelError(f"Fisher information is not positive definite (var = {var})")
    return float(np.sqrt(var))


def _fractions(bins: np.ndarray, n_bins: int, w: np.ndarray | None) -> np.ndarray:
    h = np.bincount(bins, weights=w, minlength=n_bins).astype(float)
    return h / h.sum()


def template_fisher(
    assign: Callable[[np.ndarray], np.ndarray],
    n_bins: int,
    x_sig: np.ndarray,
    x_bkg: np.ndarray,
    spec: BinnedSpec,
    w_sig: np.ndarray | None = None,
    w_bkg: np.ndarray | None = None,
) -> np.ndarray:
    """Fisher information of the hard-binned model (bin index ``assign(x)``) at the nominal point.

    Shape nuisances: central differences of the normalised templates at ``nominal +- step``;
    norm nuisances and mu: exact. Bins empty in the nominal signal or background template are
    dropped (as the paper's code does).
    """
    nus = spec.nuisances
    theta0 = np.array(nominal_values(nus))

    def hist(x: np.ndarray, theta: np.ndarray, process: str, w: np.ndarray | None) -> np.ndarray:
        return _fractions(np.asarray(assign(transform(x, theta, nus, process))), n_bins, w)

    h_s, h_b = hist(x_sig, theta0, "signal", w_sig), hist(x_bkg, theta0, "background", w_bkg)
    s, b = spec.signal * h_s, spec.background * h_b
    jac = np.zeros((n_bins, 1 + len(nus)))
    jac[:, 0] = s
    for i, n in enumerate(nus):
        if n.kind == "norm":
            jac[:, 1 + i] = s if n.process == "signal" else b
            continue
        step = n.finite_step
        up, dn = theta0.copy(), theta0.copy()
        up[1 + i] += step
        dn[1 + i] -= step
        x, w, scale = (
            (x_sig, w_sig, spec.signal)
            if n.process == "signal"
            else (x_bkg, w_bkg, spec.background)
        )
        diff = hist(x, up, n.process, w) - hist(x, dn, n.process, w)
        jac[:, 1 + i] = scale * diff / (2 * step)
    keep = (h_s > 0) & (h_b > 0)
    return poisson_fisher((s + b)[keep], jac[keep]) + constraint_fisher(nus)


__all__ = [
    "BinnedSpec",
    "constraint_fisher",
    "expected_counts",
    "fisher_information",
    "inferno_hessian",
    "inferno_loss",
    "poi_sigma",
    "poisson_fisher",
    "template_fisher",
]
