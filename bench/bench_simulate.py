"""Benchmark of the built-in simulation: wall time and events/s for N selected events.

Usage: python bench/bench_simulate.py [--n 1000000] [--chunk-size 200000] [--seed 1]

The N selected events are split equally across the four processes (the default config's
proportions). Baseline in the same process: drawing the same table as independent Gaussians
(what a toy without kinematics costs); Pythia 8 at parton level makes about 2,000 events/s
per core (docs/simulation.md).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from systpipe.simulate import COLUMNS, PROCESSES, simulate_with_stats  # noqa: E402


def _gaussian_baseline(n: int, seed: int) -> float:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    pd.DataFrame({c: rng.standard_normal(n) for c in COLUMNS})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="selected events in total")
    parser.add_argument("--chunk-size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    per = args.n // len(PROCESSES)
    n_selected = {
        p: per + (1 if i < args.n % len(PROCESSES) else 0) for i, p in enumerate(PROCESSES)
    }
    timings: dict[str, float] = {}
    last = {"t": time.perf_counter()}

    def progress(process: str, have: int, target: int) -> None:
        if have == target:
            now = time.perf_counter()
            timings[process] = now - last["t"]
            last["t"] = now

    started = time.perf_counter()
    result = simulate_with_stats(
        n_selected=n_selected, seed=args.seed, chunk_size=args.chunk_size, progress=progress
    )
    wall = time.perf_counter() - started
    ev = result.events
    baseline = _gaussian_baseline(len(ev), args.seed)

    print(
        f"selected events: {len(ev):,}  wall time: {wall:.2f} s  rate: {len(ev) / wall:,.0f} events/s"
    )
    print(
        f"baseline (independent Gaussians, same table): {baseline:.2f} s "
        f"-> the kinematic simulation costs {wall / baseline:.1f}x; Pythia 8 parton level ~2,000 events/s/core"
    )
    print(
        f"{'process':<9} {'selected':>9} {'generated':>11} {'eff':>7} {'time/s':>7} {'gen/s':>11}"
    )
    for p, n_gen in result.n_generated.items():
        t = timings.get(p, float("nan"))
        print(
            f"{p:<9} {n_selected[p]:>9,} {n_gen:>11,} {result.efficiency[p]:>7.4f} {t:>7.2f} {n_gen / t:>11,.0f}"
        )
    sig, ww = ev[ev.process == "ggH_WW"], ev[ev.process == "WW"]
    print(f"mean dphi_ll: signal {sig.dphi_ll.mean():.3f}, WW {ww.dphi_ll.mean():.3f}")
    print(
        f"signal fraction m_ll < 60 GeV: {(sig.m_ll < 60).mean():.3f}; WW m_ll median {ww.m_ll.median():.1f} GeV"
    )
    print(
        f"signal mt 99th percentile: {sig.mt.quantile(0.99):.1f} GeV (median {sig.mt.median():.1f})"
    )
    print(
        "sum of weights per process: "
        + ", ".join(
            f"{p} {w:,.1f}" for p, w in ev.groupby("process", sort=False)["weight"].sum().items()
        )
    )
    print(f"memory of the table: {ev.memory_usage(deep=True).sum() / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
