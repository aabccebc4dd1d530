"""The 3D synthetic mixture of INFERNO (de Castro & Dorigo, CPC 244 (2019) 170, section 5.1).

Background: ``(x0, x1) ~ N((2 + r, 0), diag(5, 9))``, ``x2 ~ Exponential(rate lambda)``;
signal: ``(x0, x1) ~ N(MU_SIG, diag(1, 1))``, ``x2 ~ Exponential(rate 2)``; ``s = 50``,
``b = 1000``; training samples at ``r = 0``, ``lambda = 3``. The matrices are covariances
(variances 5 and 9), the exponential is parametrised by its rate (mean ``1/lambda``).

Signal mean: the paper's text (paper/paper.md, eq. sig_toy_pdf) writes ``(1, 1)``, the code
that produced its table (pablodecm/paper-inferno ``code/synthetic_3D_example.py``: signal
``loc=[0, 0]``, background ``loc=[r_dist=2, 0]``) and the PyTorch re-implementation that
reproduces it (GilesStrong/pytorch_inferno ``pseudodata.py``: ``paper_sig mu=[0, 0]``) use
``(0, 0)``. The optimal classifier binned in 10 bins reproduces the table's "optimal
classifier" row (14.97 / 27.98 for benchmarks 0 / 4) with ``(0, 0)`` only, so that is the
default (bench/bench_inferno.py prints both).

Benchmarks (paper's list in section 5.1 and ``code/benchmarking.py``): 0 no nuisance; 1 ``r``
free; 2 ``r`` and ``lambda`` free; 3 ``r ~ N(0, 0.4)``, ``lambda ~ N(3, 1)``; 4 as 3 plus
``b ~ N(1000, 100)`` (here a norm nuisance with relative width 0.1). The finite-difference
steps 0.2 (``r``) and 0.5 (``lambda``) are the template shifts of the paper's evaluation.
"""

from __future__ import annotations

import numpy as np

from .fisher import BinnedSpec
from .nuisances import Nuisance

#: Signal mean in (x0, x1) used by the code behind the paper's table (see module docstring).
MU_SIG = (0.0, 0.0)
#: Signal mean written in the paper's text.
MU_SIG_TEXT = (1.0, 1.0)
MU_BKG = (2.0, 0.0)
VAR_SIG, VAR_BKG = (1.0, 1.0), (5.0, 9.0)
RATE_SIG, RATE_BKG = 2.0, 3.0
S_EXP, B_EXP = 50.0, 1000.0

_R_FREE = Nuisance("r", "shift", feature=0, nominal=0.0, step=0.2)
_L_FREE = Nuisance("lambda", "scale", feature=2, nominal=RATE_BKG, step=0.5)
_R = Nuisance("r", "shift", feature=0, nominal=0.0, sigma=0.4, step=0.2)
_L = Nuisance("lambda", "scale", feature=2, nominal=RATE_BKG, sigma=1.0, step=0.5)
_B = Nuisance("b", "norm", sigma=0.1)

#: The five benchmarks of the paper's Table 2.
BENCHMARKS: dict[int, BinnedSpec] = {
    0: BinnedSpec(S_EXP, B_EXP, ()),
    1: BinnedSpec(S_EXP, B_EXP, (_R_FREE,)),
    2: BinnedSpec(S_EXP, B_EXP, (_R_FREE, _L_FREE)),
    3: BinnedSpec(S_EXP, B_EXP, (_R, _L)),
    4: BinnedSpec(S_EXP, B_EXP, (_R, _L, _B)),
}

#: The paper's Table 2 (median over 100 initialisations): BCE, INFERNO matched to the
#: benchmark, optimal classifier, analytical likelihood (paper/table.tex).
PAPER = {
    "bce": {0: 14.99, 1: 18.94, 2: 23.94, 3: 21.54, 4: 26.71},
    "inferno": {0: 15.51, 1: 16.79, 2: 16.95, 3: 16.89, 4: 18.68},
    "optimal": {0: 14.97, 1: 19.12, 2: 24.93, 3: 22.13, 4: 27.98},
    "analytical": {0: 14.71, 1: 15.52, 2: 15.65, 3: 15.62, 4: 16.89},
}


def sample(
    process: str,
    n: int,
    rng: np.random.Generator,
    *,
    r: float = 0.0,
    lam: float = RATE_BKG,
    mu_sig: tuple[float, float] = MU_SIG,
) -> np.ndarray:
    """``n`` events (float64, n x 3) of ``signal`` or ``background`` at ``r``, ``lam``.

    Example:
        >>> x = sample("background", 4, np.random.default_rng(0))
        >>> x.shape, bool((x[:, 2] > 0).all())
        ((4, 3), True)
    """
    if process == "signal":
        mean, var, rate = mu_sig, VAR_SIG, RATE_SIG
    elif process == "background":
        mean, var, rate = (MU_BKG[0] + r, MU_BKG[1]), VAR_BKG, lam
    else:
        raise ValueError(f"process must be 'signal' or 'background', got {process!r}")
    x01 = rng.normal(mean, np.sqrt(var), size=(n, 2))
    x2 = rng.exponential(1.0 / rate, size=(n, 1))
    return np.hstack([x01, x2])


def log_density(
    process: str, x: np.ndarray, *, r: float = 0.0, lam: float = RATE_BKG, mu_sig=MU_SIG
) -> np.ndarray:
    """Log density of ``process`` at the rows of ``x`` (x2 < 0 has density 0)."""
    if process == "signal":
        mean, var, rate = mu_sig, VAR_SIG, RATE_SIG
    else:
        mean, var, rate = (MU_BKG[0] + r, MU_BKG[1]), VAR_BKG, lam
    out = np.zeros(len(x))
    for j in (0, 1):
        out += -0.5 * (x[:, j] - mean[j]) ** 2 / var[j] - 0.5 * np.log(2 * np.pi * var[j])
    return out + np.log(rate) - rate * x[:, 2]


def optimal_classifier(x: np.ndarray, mu_sig: tuple[float, float] = MU_SIG) -> np.ndarray:
    """``f_s / (f_s + f_b)`` at the nominal nuisances (paper eq. 17)."""
    d = log_density("background", x, mu_sig=mu_sig) - log_density("signal", x, mu_sig=mu_sig)
    return 1.0 / (1.0 + np.exp(np.clip(d, -700, 700)))


__all__ = [
    "BENCHMARKS",
    "B_EXP",
    "MU_SIG",
    "MU_SIG_TEXT",
    "PAPER",
    "S_EXP",
    "log_density",
    "optimal_classifier",
    "sample",
]
