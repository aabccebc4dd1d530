"""Check every impact of a run's fits against an independent multi-start reference.

For each classifier's ``results/fit/<clf>/fit.json`` and ``workspace.json``, every impact entry
(each nuisance parameter fixed at best fit +/- its pre- and post-fit sigma, mu refitted) is
recomputed with the batched Newton fitter (``systpipe.stat.batched.fit_batch``, not iminuit)
from ``--starts`` starting points: the nominal values, the best fit, and random points drawn
around the best fit within +/-2 post-fit sigma (seeded). The lowest NLL wins. The script prints
the largest |reference - fit.json| per classifier and the entries above the tolerance.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/check_impacts.py results [--starts 24]``.
Acceptance (issue "trustworthy numbers"): every impact within 1e-4 of the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from systpipe.stat.batched import fit_batch
from systpipe.stat.likelihood import HistFactoryModel


def check(run: Path, clf: str, n_starts: int, tol: float) -> tuple[float, int, list[str]]:
    spec = json.loads((run / "fit" / clf / "workspace.json").read_text())
    fit = json.loads((run / "fit" / clf / "fit.json").read_text())
    model = HistFactoryModel(spec)
    names = fit["parameters"]
    best = np.array([float(v) for v in fit["values"]])
    post = np.array([float(e) if e is not None else 0.0 for e in fit["errors"]])
    order = [names.index(n) for n in model.names]  # fit.json order -> model order
    best, post = best[order], post[order]
    mu_hat = best[model.poi_index]
    rng = np.random.default_rng(12345)
    worst, n_checked, bad = 0.0, 0, []
    for entry in fit["impacts"]:
        i = model.names.index(entry["parameter"])
        for kind, sigma in (("pre", model.prefit_sigma[i]), ("post", post[i])):
            for sign, label in ((1, "up"), (-1, "down")):
                value = float(np.clip(best[i] + sign * sigma, *model.bounds[i]))
                starts = [model.nominal_pars.copy(), best.copy()]
                for _ in range(n_starts - 2):
                    s = best + post * rng.uniform(-2.0, 2.0, size=best.size)
                    starts.append(np.clip(s, model.bounds[:, 0], model.bounds[:, 1]))
                init = np.array(starts)
                init[:, i] = value
                data = np.repeat(np.asarray(model.observed)[None, :], len(starts), axis=0)
                res = fit_batch(model, data, init=init, fixed={i: value}, tol=1e-10)
                ok = res.converged
                k = int(np.argmin(np.where(ok, res.nll, np.inf)))
                ref = float(res.values[k, model.poi_index] - mu_hat)
                got = float(entry[f"{kind}_{label}"])
                diff = abs(ref - got)
                worst = max(worst, diff)
                n_checked += 1
                if diff > tol:
                    bad.append(
                        f"{clf} {entry['parameter']} {kind}_{label}: fit {got:+.6f} ref {ref:+.6f}"
                    )
    return worst, n_checked, bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--starts", type=int, default=24)
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    failed = False
    for clf_dir in sorted((args.results / "fit").iterdir()):
        if not (clf_dir / "fit.json").exists():
            continue
        worst, n, bad = check(args.results, clf_dir.name, args.starts, args.tol)
        print(f"{clf_dir.name}: {n} impact entries, largest |fit - reference| = {worst:.2e}")
        for line in bad:
            print("  above tolerance:", line)
        failed |= bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
