"""Benchmark: vectorised scan_scores against the notebook's loop over thresholds with boolean masks.

One million events, 1,000 thresholds, 9 variations (nominal + lumi, sig, bkg norm + det
re-scored, up and down), same process and data. The loop is timed on an evenly spaced subset
of thresholds and extrapolated linearly (it is O(N) per threshold); its S and B are checked
against the scan on that subset. Exit status 1 if the speed-up is below --min-ratio or the
results disagree.

    python bench/bench_scan.py [--events 1000000] [--thresholds 1000] [--loop-thresholds 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from systpipe.scan import default_thresholds, scan_scores  # noqa: E402

SYSTEMATICS = [
    {"name": "lumi", "type": "norm", "delta": 0.01},
    {"name": "sig", "type": "norm", "delta": 0.05, "labels": ["signal"]},
    {"name": "bkg", "type": "norm", "delta": 0.02, "labels": ["background"]},
    {"name": "det", "type": "scale", "delta": 0.02},
]


def make_frames(n_events: int, seed: int) -> dict[str, pd.DataFrame]:
    """Classifier-like scores (float32, as the score step writes them), 5 % negative weights."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n_events) < 0.3).astype(np.int8)
    score = np.where(label == 1, rng.beta(5, 2, n_events), rng.beta(2, 5, n_events))
    weight = np.where(label == 1, 0.01, 0.2) * rng.uniform(0.5, 1.5, n_events)
    weight[rng.random(n_events) < 0.05] *= -1.0
    base = pd.DataFrame({"event_id": np.arange(n_events), "label": label, "weight": weight,
                         "score": score.astype(np.float32)})  # fmt: skip
    frames = {"nominal": base}
    # a detector-like re-score: a smooth per-event shift of the score
    wobble = 0.01 * rng.standard_normal(n_events)
    for direction, sign in (("up", 1.0), ("down", -1.0)):
        for syst in SYSTEMATICS:
            name = f"{syst['name']}_{direction}"
            if syst["type"] == "norm":
                labels = syst.get("labels", ["signal", "background"])
                target = np.isin(label, [1 if x == "signal" else 0 for x in labels])
                frames[name] = base.assign(
                    weight=np.where(target, weight * (1 + sign * syst["delta"]), weight)
                )
            else:
                shifted = np.clip(score + sign * (0.01 + wobble), 0.0, 1.0).astype(np.float32)
                frames[name] = base.assign(score=shifted)
    return frames


def notebook_loop(frames: dict[str, pd.DataFrame], thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """What notebook 002 does (docs/notebooks.md): for each variation and threshold, boolean masks and sums."""
    out = {}
    for var, frame in frames.items():
        score = frame["score"].to_numpy(dtype=np.float64)
        weight = frame["weight"].to_numpy()
        label = frame["label"].to_numpy()
        s_list, b_list = [], []
        for t in thresholds:
            mask = score > t
            s_list.append(weight[mask & (label == 1)].sum())
            b_list.append(weight[mask & (label == 0)].sum())
        out[f"S_{var}"], out[f"B_{var}"] = np.array(s_list), np.array(b_list)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--thresholds", type=int, default=1000)
    parser.add_argument(
        "--loop-thresholds",
        type=int,
        default=50,
        help="thresholds timed in the loop (0: all; otherwise extrapolated)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of this many scan runs")
    parser.add_argument("--min-ratio", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=20241122)
    args = parser.parse_args()

    frames = make_frames(args.events, args.seed)
    thresholds = default_thresholds(0.0, 1.0, 1.0 / args.thresholds)
    n_thr = thresholds.size
    print(f"events {args.events:,}, thresholds {n_thr}, variations {len(frames)}")

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        scan = scan_scores(frames, systematics=SYSTEMATICS, thresholds=thresholds,
                           min_signal=10.0, min_background=10.0)  # fmt: skip
        times.append(time.perf_counter() - start)
    t_scan = min(times)
    print(f"scan_scores (sort-free cumulative sums, all columns): best {t_scan:.3f} s "
          f"of {args.repeat} (runs: {', '.join(f'{t:.3f}' for t in times)})")  # fmt: skip

    n_loop = n_thr if args.loop_thresholds <= 0 else min(args.loop_thresholds, n_thr)
    subset = np.unique(np.linspace(0, n_thr - 1, n_loop).round().astype(int))
    start = time.perf_counter()
    loop = notebook_loop(frames, thresholds[subset])
    t_loop_subset = time.perf_counter() - start
    t_loop = t_loop_subset * n_thr / subset.size
    how = (
        "measured"
        if subset.size == n_thr
        else (f"extrapolated linearly from {subset.size} thresholds ({t_loop_subset:.2f} s)")
    )
    print(f"notebook loop (S and B only): {t_loop:.1f} s, {how}")

    worst = 0.0
    for col, ref in loop.items():
        got = scan[col].to_numpy()[subset]
        scale = np.abs(frames[col.split("_", 1)[1]]["weight"]).sum()
        worst = max(worst, float(np.max(np.abs(got - ref)) / scale))
    agree = worst < 1e-12
    print(f"agreement: max |scan - loop| / sum|w| = {worst:.2e} over {len(loop)} columns x "
          f"{subset.size} thresholds -> {'OK' if agree else 'MISMATCH'}")  # fmt: skip
    ratio = t_loop / t_scan
    fast = ratio >= args.min_ratio
    print(
        f"speed-up: {ratio:.0f}x (required >= {args.min_ratio:.0f}x) -> {'OK' if fast else 'TOO SLOW'}"
    )
    return 0 if (agree and fast) else 1


if __name__ == "__main__":
    sys.exit(main())
