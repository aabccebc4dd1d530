"""Benchmark: training time per classifier and scoring throughput on one million events.

Usage: python bench/bench_train.py [--events 1000000] [--threads 2] [--config config/config.yaml]
                                   [--synthetic] [--no-baseline]

Events come from systpipe.simulate (the built-in H->WW sample, equal shares per process) unless
--synthetic asks for 15 Gaussian features. Classifiers use the params and max_train_events of
the config, as the workflow does. Baselines, in the same process and on the same data:
  train: the library's own defaults for the settings systpipe changes (LightGBM without
         deterministic/force_col_wise; RandomForest in one fit instead of warm-start batches);
  score: the estimator's own predict_proba with n_jobs = threads (RandomForest: its
         lock-accumulated, run-to-run varying sum) instead of systpipe.score.predict_scores.
Both columns also say whether 1 and 2 threads give bit-identical scores (on 100k events).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

from systpipe.models import build_classifier
from systpipe.score import predict_scores
from systpipe.train import train_classifier, training_weights

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n: int, features: list[str], seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(np.int8)
    X = rng.normal(size=(n, len(features))) + 0.3 * y[:, None] * rng.normal(1.0, 0.5, len(features))
    df = pd.DataFrame(X, columns=features)
    df.insert(0, "event_id", np.arange(n, dtype=np.int64))
    df.insert(1, "process", np.where(y == 1, "sig", "bkg"))
    df.insert(2, "label", y)
    df.insert(3, "weight", np.where(y == 1, 0.01, rng.exponential(1.0, n)))
    return df


def simulated(n: int, config: dict) -> pd.DataFrame:
    from systpipe.simulate import simulate

    sim = config["simulate"]
    procs = list(sim["n_selected"])
    counts = {p: n // len(procs) + (i < n % len(procs)) for i, p in enumerate(procs)}
    return simulate(
        n_selected=counts,
        seed=config["seed"],
        luminosity_fb=sim["luminosity_fb"],
        chunk_size=sim["chunk_size"],
        **sim["detector"],
        **sim["selection"],
    )


def baseline_fit(
    clf: dict, df: pd.DataFrame, features: list[str], cap: int, threads: int, seed: int
):
    """The library defaults: LightGBM without the determinism settings, forests in one fit."""
    from systpipe.train import subsample_indices

    params = dict(clf.get("params", {}))
    if clf["type"] == "lgbm":
        params.update(deterministic=False, force_col_wise=False)
    model = build_classifier(clf["type"], params, threads=threads, seed=seed)
    srt = df.sort_values("event_id")
    idx = subsample_indices(srt["label"].to_numpy(), cap, seed=seed)
    X = np.ascontiguousarray(srt[features].to_numpy(np.float64)[idx])
    y = srt["label"].to_numpy()[idx].astype(np.int64)
    w = training_weights(srt["weight"].to_numpy()[idx], y)
    started = time.perf_counter()
    with threadpool_limits(threads):
        model.fit(X, y, sample_weight=w)
    return model, time.perf_counter() - started


def native_scores(model, X: np.ndarray, threads: int) -> np.ndarray:
    with threadpool_limits(threads):
        return model.predict_proba(X)[:, 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--only", nargs="*", help="classifier names to run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # the baseline calls LGBMClassifier.predict_proba with an array, not the named frame
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    config = yaml.safe_load(Path(args.config).read_text())
    features = list(config["features"])
    training = config["training"]

    started = time.perf_counter()
    df = synthetic(args.events, features) if args.synthetic else simulated(args.events, config)
    print(
        f"{len(df):,} events ({'synthetic' if args.synthetic else 'simulate'}), "
        f"{len(features)} features, made in {time.perf_counter() - started:.1f} s; "
        f"threads={args.threads}",
        flush=True,
    )
    small = df.iloc[:: max(1, len(df) // 100_000)]
    X_all = np.ascontiguousarray(df[features].to_numpy(np.float64))

    rows = []
    for clf in config["classifiers"]:
        if args.only and clf["name"] not in args.only:
            continue
        cap = clf.get("max_train_events", training["max_train_events"])
        model, info = train_classifier(
            df,
            features=features,
            name=clf["name"],
            type_=clf["type"],
            params=clf.get("params", {}),
            weighting=training["weighting"],
            negative_weights=training["negative_weights"],
            max_train_events=cap,
            threads=args.threads,
            seed=config["seed"],
        )
        t0 = time.perf_counter()
        scores = predict_scores(model, df, features=features, threads=args.threads)
        t_score = time.perf_counter() - t0
        one = predict_scores(model, small, features=features, threads=1)
        same = np.array_equal(one, scores[:: max(1, len(df) // 100_000)][: len(one)])
        row = {
            "classifier": clf["name"],
            "n_train": info.n_train,
            "train_s": info.training_time_s,
            "iters": info.n_iterations,
            "score_Mev_s": len(df) / t_score / 1e6,
            "score_1v2_equal": same,
        }
        if not args.no_baseline:
            base, t_base = baseline_fit(clf, df, features, cap, args.threads, config["seed"])
            t0 = time.perf_counter()
            native = native_scores(model, X_all, args.threads)
            t_native = time.perf_counter() - t0
            again = native_scores(model, X_all, args.threads)
            row.update(
                base_train_s=t_base,
                base_score_Mev_s=len(df) / t_native / 1e6,
                base_repeat_equal=bool(np.array_equal(native, again)),
                base_equals_ours=bool(np.array_equal(native, scores)),
            )
            del base
        rows.append(row)
        print(
            pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3g}"),
            flush=True,
        )

    table = pd.DataFrame(rows)
    print(
        "\nsummary (train_s: systpipe fit on n_train rows; score_Mev_s: M events/s on "
        f"{len(df):,} events; base_*: library defaults / native predict_proba)"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
