"""Toy-based against asymptotic CLs and q distributions (systpipe.stat.hypotest).

Two models: a low-count single bin (s = 5, b = 3, n_obs = 3), where the exact Poisson (Neyman)
CLs is known and the asymptotic formula is off, and a workspace given on the command line (e.g.
results/fit/hgb/workspace.json of a default run; its data are the Asimov data at mu = 1). For
each it prints the CLs from toys with its binomial error next to the asymptotic one, at the
asymptotic 95 % limit of the workspace, the fraction of background-only toys with q0 above the
asymptotic 1 and 2 sigma thresholds (1/2 chi2_1 tail: 0.1587, 0.0228), and toys per second.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_hypotest.py [workspace.json] [--toys N]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before NumPy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from systpipe.stat.hypotest import q0, toy_cls  # noqa: E402
from systpipe.stat.likelihood import HistFactoryModel  # noqa: E402
from systpipe.stat.limits import cls_upper_limit  # noqa: E402


def asymptotic_cls(model: HistFactoryModel, data: np.ndarray, mu: float) -> float:
    """CLs at ``mu`` from the asymptotic formula: the root of cls_upper_limit at level = CLs."""
    from scipy.optimize import brentq

    def f(level: float) -> float:
        return cls_upper_limit(model, data, level=level)[0] - mu

    try:
        return float(brentq(f, 1e-6, 0.999, xtol=1e-7))
    except ValueError:
        return math.nan


def counting_model(s: float, b: float) -> HistFactoryModel:
    return HistFactoryModel(
        {
            "channels": [
                {
                    "name": "SR",
                    "samples": [
                        {
                            "name": "s",
                            "data": [s],
                            "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                        },
                        {"name": "b", "data": [b], "modifiers": []},
                    ],
                }
            ],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        }  # fmt: skip
    )


def report(
    name: str, model: HistFactoryModel, data: np.ndarray, mu: float, n: int, exact: float | None
) -> None:
    t0 = time.perf_counter()
    res = toy_cls(model, data, None, mu, seed=1, count=n)
    dt = time.perf_counter() - t0
    asym = asymptotic_cls(model, data, mu)
    line = f"{name}: mu = {mu:.4f}  CLs toys {res.cls:.4f} +/- {res.cls_error:.4f}  asymptotic {asym:.4f}"
    if exact is not None:
        line += f"  exact {exact:.4f}"
    pull = (res.cls - asym) / res.cls_error if math.isfinite(res.cls_error) else math.nan
    print(
        line
        + f"  (toys - asymptotic = {pull:+.1f} sigma; {2 * n / dt:.0f} toys/s, {res.n_failed} failed)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", nargs="?")
    parser.add_argument("--toys", type=int, default=4000)
    args = parser.parse_args()
    low = counting_model(5.0, 3.0)
    exact = stats.poisson.cdf(3, 8.0) / stats.poisson.cdf(3, 3.0)
    report("single bin s=5 b=3 n=3", low, np.array([3.0]), 1.0, args.toys, exact)
    if args.workspace:
        spec = json.loads(open(args.workspace).read())
        model = HistFactoryModel(spec)
        data = np.asarray(model.observed, dtype=np.float64)
        limit, _ = cls_upper_limit(model, data)
        report(args.workspace, model, data, limit, args.toys, None)
        # q0 under the background-only hypothesis against the 1/2 chi2_1 asymptotic tail
        ip = model.poi_index
        pars = model.nominal_pars.copy()
        pars[ip] = 0.0
        rng = np.random.default_rng(3)
        lam = np.clip(model.expected(pars), 0.0, None)
        toys = rng.poisson(lam, size=(args.toys, lam.size)).astype(np.float64)
        aux = model.aux_nominal + model.constraint_sigma * rng.standard_normal(
            (args.toys, model.aux_nominal.size)
        )
        q = q0(model, toys, aux)
        for z, tail in ((1.0, 0.1587), (2.0, 0.0228)):
            frac = float(np.mean(q[np.isfinite(q)] > z * z))
            err = math.sqrt(tail * (1 - tail) / args.toys)
            print(
                f"  q0 > {z * z:.0f} under b-only: toys {frac:.4f}, asymptotic {tail:.4f} +/- {err:.4f}"
            )


if __name__ == "__main__":
    main()
