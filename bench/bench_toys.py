"""Benchmark: batched Newton toys (systpipe.stat.batched) against the one-at-a-time iminuit path.

For one model, N pseudo-experiments (systpipe.stat.toys.throw_toy, seeded per toy) are fitted
four ways in the same process, on one core:

- batched mu-hat: ``fit_batch`` (damped Newton over all toys of a chunk at once);
- batched interval: ``profile_intervals_batch`` (mu-hat and the 2 Delta NLL = 1 edges);
- iminuit mu-hat: ``minimize`` (MIGRAD, strategy 0, tolerance 1e-3, as ``methods.profile``);
- iminuit interval: ``methods.profile`` (MIGRAD + MINOS, root finding when MINOS fails).

It prints toys per second per core for each, the largest absolute differences between the
batched and the iminuit results in mu-hat and both edges, the failure and fallback counts, and
the same differences against a tight iminuit reference (tolerance 1e-7, Brent to 1e-9 sigma)
on the first ``--tight`` toys, which shows how precise the iminuit path itself is.

Models: the default configuration's workspace (hgb: control region + 10 signal-region bins,
17 parameters) and the smoke configuration's (xgb: control region + 5 bins), both shipped in
bench/data as the toys rule fits them; or the workspace JSON(s) given on the command line (e.g.
results/fit/xgb/workspace.json of a run; ``builtin`` for a 10-bin smoke-like model).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_toys.py [workspace.json ...] [--quick]``.
Targets: >= 500 toys/s per core with the interval, >= 5,000 toys/s for mu-hat alone,
differences below 1e-4.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before NumPy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent

import numpy as np  # noqa: E402

from systpipe.stat import methods, toys  # noqa: E402
from systpipe.stat.batched import fit_batch  # noqa: E402
from systpipe.stat.batched_intervals import profile_intervals_batch  # noqa: E402
from systpipe.stat.intervals import profile_interval  # noqa: E402
from systpipe.stat.minimize import TIGHT_TOLERANCE, minimize  # noqa: E402
from systpipe.stat.workspace import build_workspace  # noqa: E402
from systpipe.templates import Templates  # noqa: E402


def smoke_like_spec() -> dict:
    """10 bins, signal + 3 backgrounds, lumi/sig/bkg rate systematics, a det shape systematic,
    staterror: 15 parameters, as the smoke configuration's workspaces."""
    x = np.linspace(0.05, 0.95, 10)
    nom = np.vstack(
        [
            40.0 * x**2 + 1.0,
            300.0 * (1 - x) ** 2 + 5.0,
            150.0 * (1 - x) + 3.0,
            60.0 * (1 - x) ** 3 + 2.0,
        ]
    )
    tilt = np.linspace(-1.0, 1.0, 10)
    var = {}
    for name, rel in (
        ("lumi", [0.01] * 4),
        ("sig", [0.05, 0, 0, 0]),
        ("bkg", [0, 0.02, 0.02, 0.02]),
    ):
        r = np.array(rel)[:, None]
        var[f"{name}_up"], var[f"{name}_down"] = nom * (1 + r), nom * (1 - r)
    var["det_up"], var["det_down"] = nom * (1 + 0.04 * tilt), nom * (1 - 0.03 * tilt)
    t = Templates(
        np.linspace(0.5, 1.0, 11), ["ggH_WW", "WW", "ttbar", "Ztautau"], [True, False, False, False],
        nom, nom / 20.0, var,
    )  # fmt: skip
    systs = [{"name": n, "type": "norm", "delta": 0.0} for n in ("lumi", "sig", "bkg")]
    systs.append({"name": "det", "type": "scale", "delta": 0.0})
    return build_workspace(t, systs, mc_stat=True)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10.0f} toys/s  ({1e3 * seconds / n:8.3f} ms/toy)"


#: The workspaces of the default and the smoke configurations' runs (hgb and xgb, the
#: profile-likelihood optimum, control region + signal region), as the toys rule fits them;
#: regenerate with `make run` / `make smoke` and copy results/fit/<clf>/workspace.json.
SHIPPED = {
    "default config (hgb)": HERE / "data" / "default_hgb_workspace.json",
    "smoke config (xgb)": HERE / "data" / "smoke_xgb_workspace.json",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "workspace",
        nargs="*",
        help="pyhf workspace JSON(s) (default: the default and smoke configurations' workspaces "
        "in bench/data; 'builtin' for the built-in smoke-like model)",
    )
    ap.add_argument("--toys", type=int, default=1000, help="number of toys (default 1000)")
    ap.add_argument("--quick", action="store_true", help="200 toys, 20 tight references")
    ap.add_argument("--mode", default="frequentist", choices=["frequentist", "challenge"])
    ap.add_argument("--chunk", type=int, default=1000, help="toys per batched call")
    ap.add_argument("--tight", type=int, default=100, help="toys with the tight reference")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    n_toys, n_tight = (200, 20) if args.quick else (args.toys, args.tight)
    warnings.simplefilter("ignore", RuntimeWarning)
    models: list[tuple[str, dict]] = []
    for name in args.workspace or []:
        if name == "builtin":
            models.append(("built-in smoke-like model", smoke_like_spec()))
            continue
        path = Path(name)
        if not path.is_file():
            ap.error(f"workspace {path} does not exist")
        models.append((str(path), json.loads(path.read_text())))
    if not models:
        models = [(f"{k}: {v.name}", json.loads(v.read_text())) for k, v in SHIPPED.items()]
    for origin, spec in models:
        bench_model(origin, spec, args, n_toys, n_tight)
        print()
    return 0


def bench_model(
    origin: str, spec: dict, args: argparse.Namespace, n_toys: int, n_tight: int
) -> None:
    """Every measurement of the module docstring on one model."""
    setup = toys.prepare(spec)
    model = setup.model
    print(f"model: {origin}: {model.n_bins} bins, {model.n_pars} parameters {model.names}")
    print(f"toys: {n_toys} ({args.mode}, mu_true = 1, seed {args.seed}), chunks of {args.chunk}\n")
    thrown = [
        toys.throw_toy(setup, toys.toy_rng(args.seed, args.mode, i), mode=args.mode, mu_true=1.0)
        for i in range(n_toys)
    ]
    data = np.array([t[0] for t in thrown])
    aux = np.array([t[1] for t in thrown])
    chunks = [slice(i, min(i + args.chunk, n_toys)) for i in range(0, n_toys, args.chunk)]

    fit_batch(model, data[:10], aux[:10])  # warm-up (imports, caches)
    t0 = time.perf_counter()
    fits = [fit_batch(model, data[c], aux[c]) for c in chunks]
    t_bfit = time.perf_counter() - t0
    mu_bfit = np.concatenate([f.values[:, model.poi_index] for f in fits])
    n_fb_fit = sum(f.n_fallback for f in fits)
    n_bad_fit = sum(int((~f.converged).sum()) for f in fits)

    t0 = time.perf_counter()
    ints = [profile_intervals_batch(model, data[c], aux[c]) for c in chunks]
    t_bint = time.perf_counter() - t0
    b = np.stack([np.concatenate([getattr(r, k) for r in ints]) for k in ("mu_hat", "lo", "hi")], 1)
    n_fb_int = sum(r.n_fallback for r in ints)
    n_bad_int = sum(r.n_failed for r in ints)
    n_points = np.concatenate([r.n_points for r in ints])
    nll_b = np.concatenate([r.nll_min for r in ints])

    t0 = time.perf_counter()
    mu_ifit, nll_i = np.full(n_toys, math.nan), np.full(n_toys, math.nan)
    for i in range(n_toys):
        m = minimize(model, data[i], aux[i], hesse=False, strategy=0)
        if m.valid:
            mu_ifit[i], nll_i[i] = m.values[model.poi_index], m.nll
    t_ifit = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = np.full((n_toys, 3), math.nan)
    for i in range(n_toys):
        try:
            r = methods.profile(setup, data[i], aux[i])
            ref[i] = (r.mu_hat, r.lo, r.hi)
        except Exception:  # noqa: BLE001 - counted as a failure, as the toys step does
            pass
    t_iint = time.perf_counter() - t0

    tight, nll_t = np.full((n_tight, 3), math.nan), np.full(n_tight, math.nan)
    for i in range(n_tight):
        try:
            best = minimize(model, data[i], aux[i], strategy=1, tolerance=TIGHT_TOLERANCE)
            nll_t[i] = best.nll
            tight[i] = profile_interval(
                model, data[i], aux[i], best=best, xtol=1e-9, strategy=1, tolerance=TIGHT_TOLERANCE
            )
        except Exception:  # noqa: BLE001 - a failed reference is left out of the comparison
            pass

    print(f"{'batched mu-hat (fit_batch)':<36} {rate(n_toys, t_bfit)}")
    print(
        f"{'batched interval':<36} {rate(n_toys, t_bint)}  [{n_points.mean():.1f} conditional fits/toy]"
    )
    print(f"{'iminuit mu-hat (minimize)':<36} {rate(n_toys, t_ifit)}")
    print(f"{'iminuit interval (methods.profile)':<36} {rate(n_toys, t_iint)}")
    print(f"speed-up: mu-hat x{t_ifit / t_bfit:.0f}, interval x{t_iint / t_bint:.0f}\n")
    ok = np.isfinite(ref).all(axis=1) & np.isfinite(b).all(axis=1)
    # single-start MIGRAD can stop in another valley of a non-monotonic histosys than the
    # batched multi-start fit: "same minimum" = NLLs within 1e-4
    same = ok & (np.abs(nll_b - nll_i) < 1e-4)
    lower_b, lower_i = ok & (nll_b < nll_i - 1e-4), ok & (nll_i < nll_b - 1e-4)
    for label, sel in (("all", ok), ("same minimum", same)):
        d = np.abs(b[sel] - ref[sel]).max(axis=0) if sel.any() else np.full(3, math.nan)
        print(f"max |batched - methods.profile|, {label} ({int(sel.sum())} toys): "
              f"mu-hat {d[0]:.2e}, lo {d[1]:.2e}, hi {d[2]:.2e}")  # fmt: skip
    gain = np.max(nll_i[lower_b] - nll_b[lower_b], initial=0.0)
    print(f"different minima: batched lower in {int(lower_b.sum())} toys (by up to {gain:.3g} "
          f"in NLL), iminuit lower in {int(lower_i.sum())}")  # fmt: skip
    print(f"max |fit_batch (one start) mu-hat - interval (multi-start) mu-hat|: "
          f"{np.nanmax(np.abs(mu_bfit - b[:, 0])):.2e}")  # fmt: skip
    tok = np.isfinite(tight).all(axis=1) & same[:n_tight] & (np.abs(nll_t - nll_b[:n_tight]) < 1e-4)
    if tok.any():
        dt_b = np.abs(b[:n_tight][tok] - tight[tok]).max(axis=0)
        dt_r = np.abs(ref[:n_tight][tok] - tight[tok]).max(axis=0)
        print(f"against the tight iminuit reference ({int(tok.sum())} toys, same minimum): batched "
              f"{dt_b[0]:.2e} / {dt_b[1]:.2e} / {dt_b[2]:.2e}, methods.profile "
              f"{dt_r[0]:.2e} / {dt_r[1]:.2e} / {dt_r[2]:.2e} (mu-hat / lo / hi)")  # fmt: skip
    cov_b = (b[ok, 1] <= 1.0) & (1.0 <= b[ok, 2])
    cov_r = (ref[ok, 1] <= 1.0) & (1.0 <= ref[ok, 2])
    print(f"coverage of mu = 1: batched {cov_b.mean():.4f}, methods.profile {cov_r.mean():.4f}, "
          f"{int((cov_b != cov_r).sum())} toys decided differently")  # fmt: skip
    print(f"failures: fit_batch {n_bad_fit} not converged ({n_fb_fit} iminuit fallbacks); "
          f"intervals {n_bad_int} failed ({n_fb_int} iminuit fallbacks); "
          f"methods.profile {int((~np.isfinite(ref).all(axis=1)).sum())} failed")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
