"""Benchmark: pyhf against systpipe's fast NLL (per fit, per MINOS, per toy, per CLs limit).

Model (docs/statistics.md): one channel, 10 bins, a signal and two background samples, 5
nuisance parameters (3 normsys, 2 histosys), optionally with staterror (10 more).
Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_fit.py [repeats]``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from systpipe.stat import toys
from systpipe.stat.fit import fit_workspace
from systpipe.stat.intervals import profile_interval
from systpipe.stat.likelihood import HistFactoryModel
from systpipe.stat.limits import cls_upper_limit
from systpipe.stat.minimize import minimize
from systpipe.stat.workspace import build_workspace
from systpipe.templates import Templates

# pyhf's own fit and limit (the reference) live with the tests, outside the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers.pyhf_reference import cls_upper_limit_pyhf, pyhf_minos  # noqa: E402


def model_spec(mc_stat: bool) -> dict:
    x = np.linspace(0.05, 0.95, 10)
    sig = 40.0 * x**2 + 1.0
    ww = 300.0 * (1 - x) ** 2 + 5.0
    tt = 150.0 * (1 - x) + 3.0
    nom = np.vstack([sig, ww, tt])
    tilt = np.linspace(-1.0, 1.0, 10)
    var = {}
    for name, rel in (
        ("lumi", [0.02, 0.02, 0.02]),
        ("sig", [0.05, 0, 0]),
        ("bkg", [0, 0.04, 0.04]),
    ):
        r = np.array(rel)[:, None]
        var[f"{name}_up"], var[f"{name}_down"] = nom * (1 + r), nom * (1 - r)
    var["det_up"], var["det_down"] = nom * (1 + 0.05 * tilt), nom * (1 - 0.04 * tilt)
    var["res_up"], var["res_down"] = nom * (1 + 0.03 * tilt**2), nom * (1 - 0.03 * tilt**2)
    t = Templates(
        np.linspace(0.5, 1.0, 11), ["H", "WW", "tt"], [True, False, False], nom, nom / 40.0, var
    )
    systs = [{"name": n, "type": "norm", "delta": 0.0} for n in ("lumi", "sig", "bkg")]
    systs += [{"name": n, "type": "scale", "delta": 0.0} for n in ("det", "res")]
    data = np.round(nom.sum(axis=0))  # integer counts close to the Asimov data at mu = 1
    return build_workspace(t, systs, data=data, mc_stat=mc_stat)


def timed(func, repeats: int, number: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, in ms."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            func()
        out.append((time.perf_counter() - t0) / number * 1e3)
    return statistics.median(out)


def pyhf_setup(spec: dict, optimizer):
    import pyhf

    pyhf.set_backend("numpy", optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ws = pyhf.Workspace(spec)
        model = ws.model()
    return pyhf, model, ws.data(model)


def bench_model(mc_stat: bool, repeats: int) -> None:
    """Time every operation on the 10-bin model, print a table and the pyhf cross-checks."""
    import pyhf

    spec = model_spec(mc_stat)
    fm = HistFactoryModel(spec)
    n = fm.observed
    p = fm.nominal_pars
    print(
        f"\n== 10 bins, {fm.n_pars - 1} nuisance parameters ({'with' if mc_stat else 'no'} staterror) =="
    )
    rows = []
    _, model, data = pyhf_setup(spec, pyhf.optimize.scipy_optimizer())
    rows.append(
        (
            "pyhf logpdf call",
            timed(lambda: model.logpdf(model.config.suggested_init(), data), repeats, 200),
        )
    )
    rows.append(
        ("pyhf mle.fit (scipy)", timed(lambda: pyhf.infer.mle.fit(data, model), repeats, 20))
    )
    _, model_m, data_m = pyhf_setup(spec, pyhf.optimize.minuit_optimizer(tolerance=0.1))
    rows.append(
        ("pyhf mle.fit (minuit)", timed(lambda: pyhf.infer.mle.fit(data_m, model_m), repeats, 10))
    )
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    rows.append(("pyhf fit + MINOS (minuit)", timed(lambda: pyhf_minos(spec), repeats, 3)))
    const = fm.data_constant(n)
    rows.append(
        (
            "fast NLL call",
            timed(lambda: fm.nll_and_grad(p, n, grad=False, constant=const), repeats, 2000),
        )
    )
    rows.append(
        (
            "fast NLL + gradient call",
            timed(lambda: fm.nll_and_grad(p, n, constant=const), repeats, 2000),
        )
    )
    rows.append(
        (
            "fast fit (MIGRAD, strategy 0)",
            timed(lambda: minimize(fm, n, hesse=False, strategy=0), repeats, 20),
        )
    )
    rows.append(("fast fit + HESSE (strategy 1)", timed(lambda: minimize(fm, n), repeats, 20)))
    rows.append(
        (
            "fast fit + MINOS",
            timed(lambda: minimize(fm, n, hesse=False, minos=True, strategy=0), repeats, 10),
        )
    )
    rows.append(
        ("fast profile_interval (root finding)", timed(lambda: profile_interval(fm, n), repeats, 5))
    )
    setup = toys.prepare(spec)
    for mode in toys.MODES:
        rows.append(
            (
                f"toy, profile only ({mode})",
                timed(
                    lambda mode=mode: toys.run_toys(
                        setup, mode=mode, seed=1, start=0, count=50, methods=["profile"]
                    ),
                    repeats,
                    1,
                )
                / 50,
            )
        )
        rows.append(
            (
                f"toy, all 4 methods ({mode})",
                timed(
                    lambda mode=mode: toys.run_toys(setup, mode=mode, seed=1, start=0, count=50),
                    repeats,
                    1,
                )
                / 50,
            )
        )
    rows.append(("CLs limit + bands, fast", timed(lambda: cls_upper_limit(fm, n, guess=0.3), 1, 2)))
    rows.append(
        (
            "CLs limit + bands, pyhf toms748",
            timed(lambda: cls_upper_limit_pyhf(spec, guess=0.3), 1, 1),
        )
    )
    rows.append(("fit_workspace (everything)", timed(lambda: fit_workspace(spec), 1, 2)))
    width = max(len(r[0]) for r in rows)
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:10.3f} ms")
    mu_ref, lo_ref, hi_ref = pyhf_minos(spec)
    res = fit_workspace(spec, breakdown=False, impacts=False, limits=False)
    print(
        f"cross-check: pyhf mu = {mu_ref:.6f} -{-lo_ref:.6f} +{hi_ref:.6f}; "
        f"fast mu = {res.mu_hat:.6f} -{res.dmu_down:.6f} +{res.dmu_up:.6f}"
    )
    obs_f, exp_f = cls_upper_limit(fm, n, guess=0.3)
    obs_p, exp_p = cls_upper_limit_pyhf(spec, guess=0.3)
    print(
        f"cross-check: CLs obs {obs_p:.4f} (pyhf) vs {obs_f:.4f} (fast); median exp {exp_p[2]:.4f} vs {exp_f[2]:.4f}"
    )


def main(repeats: int = 3) -> None:
    warnings.simplefilter("ignore", RuntimeWarning)
    for mc_stat in (False, True):
        bench_model(mc_stat, repeats)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
