"""Benchmark: does systematics-aware training pay off on the default analysis? Over seeds.

For each seed, the default configuration (config/config.yaml: four cross-entropy classifiers
and the systematics-aware lgbm_aug) runs up to the final table with the seed replaced (the
simulation, the split, the training and the detector smearing all change), without the toys'
coverage, the learned Neyman rows and the toy-based tests (they do not enter the comparison).
It prints, per seed, the profile-likelihood dmu_tot at the profile-likelihood optimum of every
classifier, the best systematics-aware one against the best cross-entropy one, their ratio,
and the mean and spread of the ratio over the seeds (the report's summary page gives the same
ratio for the run's own seed).

    python bench/bench_aware.py [--seeds 1 2 3] [--cores 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: What the comparison does not need: toys only for one classifier, few of them.
OVERLAY = {
    "toys": {"n_toys": 20, "chunk_size": 20, "modes": ["frequentist"], "classifiers": ["lgbm"],
             "methods": ["shift", "linear", "profile", "chi2"]},
    "neyman": {"enabled": False},
    "hypotest": {"enabled": False},
}  # fmt: skip


def run_seed(seed: int, cores: int, workdir: Path) -> pd.DataFrame:
    shutil.copytree(ROOT / "config", workdir / "config")
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({**OVERLAY, "seed": seed}))
    target = "results/tables/uncertainties.parquet"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", "config/config.yaml", str(overlay),
           "--cores", str(cores), target]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"seed {seed}: workflow failed (exit {proc.returncode})")
    return pd.read_parquet(workdir / target)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="run in this directory and keep the results")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    aware = {c["name"] for c in config["classifiers"] if c.get("systematics_aware")}
    ratios = []
    with tempfile.TemporaryDirectory(prefix="systpipe-aware-") as tmp:
        base = args.keep or Path(tmp)
        for seed in args.seeds:
            began = time.perf_counter()
            workdir = base / f"seed_{seed}"
            workdir.mkdir(parents=True, exist_ok=False)
            table = run_seed(seed, args.cores, workdir)
            rows = table[(table["method"] == "profile")
                         & (table["working_point"] == "profile_optimum")]  # fmt: skip
            dmu = rows.set_index("classifier")["dmu_tot"]
            best_a = dmu[dmu.index.isin(aware)].idxmin()
            best_x = dmu[~dmu.index.isin(aware)].idxmin()
            ratio = float(dmu[best_a] / dmu[best_x])
            ratios.append(ratio)
            per = ", ".join(f"{c} {v:.4f}" for c, v in dmu.items())
            print(f"seed {seed}: {per}; best aware {best_a} / best cross-entropy {best_x} = "
                  f"{ratio:.3f} ({time.perf_counter() - began:.0f} s)", flush=True)  # fmt: skip
    spread = statistics.stdev(ratios) if len(ratios) > 1 else float("nan")
    print(f"ratio over {len(ratios)} seeds: mean {statistics.mean(ratios):.3f}, "
          f"standard deviation {spread:.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
