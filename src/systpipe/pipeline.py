"""File-level workflow steps: read the Parquet hand-offs, call the science, write the outputs.

Every function here is what one Snakemake rule (and one ``systpipe`` subcommand) runs. They take
the validated config plus explicit paths, so they are testable without Snakemake.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import io
from .errors import DataContractError
from .provenance import derive_seed, file_provenance, run_provenance
from .variations import changes_features, feature_variations, variation_names, weight_variations

log = logging.getLogger(__name__)

Config = Mapping[str, Any]


def simulate(config: Config, *, events: str | Path) -> Path:
    """Generate the built-in H->WW sample (SPEC section 8) into ``events``."""
    from .simulate import simulate_with_stats

    sim = config["simulate"]
    started = time.perf_counter()
    result = simulate_with_stats(
        n_selected=sim["n_selected"],
        seed=derive_seed(config["seed"], "simulate"),
        luminosity_fb=sim["luminosity_fb"],
        chunk_size=sim["chunk_size"],
        cross_sections_pb=sim.get("cross_sections_pb"),
        **sim["detector"],
        **sim["selection"],
    )
    df = result.events
    log.info("simulated %d selected events in %.1f s", len(df), time.perf_counter() - started)
    stats = {
        "n_generated": dict(result.n_generated),
        "efficiency": dict(result.efficiency),
        "cross_sections_pb": dict(result.cross_sections_pb),
    }
    log.info("generation summary: %s", stats)
    return io.write_table(df, events, file_provenance(config, "simulate", **stats))


def _files_kwargs(config: Config) -> dict[str, Any]:
    files = config["files"]
    keep = list(files.get("keep_columns", []))
    keep += [
        c for s in config["systematics"] if s["type"] == "weight"
        for c in (s["up_column"], s["down_column"]) if c not in keep
    ]
    return {
        "samples": files["samples"],
        "columns": files.get("columns", {}),
        "label": files.get("label"),
        "weight": files.get("weight", {}),
        "mev_to_gev": files.get("mev_to_gev", []),
        "missing_sentinels": files.get("missing_sentinels", []),
        "keep_columns": keep,
    }


def ingest(config: Config, *, events: str | Path) -> Path:
    """Read the user's ROOT/Parquet/CSV files into the event table."""
    from .ingest import ingest as read_files

    df = read_files(**_files_kwargs(config))
    log.info("ingested %d events from %d sample(s)", len(df), len(config["files"]["samples"]))
    return io.write_table(df, events, file_provenance(config, "ingest"))


def split(config: Config, *, events: str | Path, train: str | Path, test: str | Path) -> None:
    """Stratified, seeded train/test split with weights rescaled to the full luminosity."""
    from .split import split_events

    df = io.read_table(events, required=("event_id", "label", "process", "weight"))
    tr, te = split_events(
        df, test_fraction=config["split"]["test_fraction"], seed=derive_seed(config["seed"], "split")
    )
    log.info("split: %d train, %d test events", len(tr), len(te))
    io.write_table(tr, train, file_provenance(config, "split", part="train"))
    io.write_table(te, test, file_provenance(config, "split", part="test"))


def classifier_spec(config: Config, name: str) -> dict[str, Any]:
    """The config entry of classifier ``name``."""
    for clf in config["classifiers"]:
        if clf["name"] == name:
            return dict(clf)
    raise KeyError(f"classifier {name!r} is not in 'classifiers' of the config")


def train(
    config: Config, classifier: str, *, train_events: str | Path, test_events: str | Path,
    model: str | Path, info: str | Path, threads: int,
) -> None:
    """Train one classifier, save it in its native format and record its metadata."""
    from .train import evaluate, save_model, train_classifier, write_model_info

    spec = classifier_spec(config, classifier)
    training = config["training"]
    features = list(config["features"])
    tr = io.read_table(train_events, required=("label", "weight", *features))
    fitted, meta = train_classifier(
        tr,
        features=features,
        name=classifier,
        type_=spec["type"],
        params=spec.get("params", {}),
        weighting=training["weighting"],
        negative_weights=training["negative_weights"],
        max_train_events=spec.get("max_train_events", training["max_train_events"]),
        threads=threads,
        seed=derive_seed(config["seed"], "train", classifier),
    )
    te = io.read_table(test_events, required=("label", "weight", *features))
    metrics = evaluate(fitted, te, features=features, threads=threads)
    written = save_model(fitted, Path(model).with_suffix(""), spec["type"])
    if Path(written) != Path(model):
        raise RuntimeError(f"model written to {written}, expected {model}")
    write_model_info(info, meta, metrics)


def vary(config: Config, variation: str, *, test_events: str | Path, output: str | Path) -> Path:
    """Apply one systematic variation to the test events."""
    from .variations import apply_variation

    df = io.read_table(test_events)
    load_alt = None
    if config["input"]["source"] == "files":
        from .ingest import ingest as read_files

        def load_alt(paths: Sequence[str]) -> pd.DataFrame:
            kwargs = _files_kwargs(config)
            samples = [{**kwargs["samples"][0], "name": f"{variation}", "paths": list(paths)}]
            return read_files(**{**kwargs, "samples": samples})

    out = apply_variation(
        df, variation, config["systematics"], seed=derive_seed(config["seed"], "smear"),
        features=config["features"], load_alternative=load_alt,
    )
    return io.write_table(out, output, file_provenance(config, "vary", variation=variation))


def score(
    config: Config, classifier: str, variation: str, *, model: str | Path, events: str | Path,
    output: str | Path, threads: int,
) -> Path:
    """Score the nominal or a feature-changing variation with one classifier."""
    from .score import score_table
    from .train import load_model

    features = list(config["features"])
    df = io.read_table(events, required=("event_id", "label", "process", "weight", *features))
    clf = load_model(model)
    started = time.perf_counter()
    table = score_table(clf, df, features=features, threads=threads)
    elapsed = time.perf_counter() - started
    log.info("scored %d events in %.2f s (%.0f events/s)", len(df), elapsed, len(df) / max(elapsed, 1e-9))
    return io.write_table(
        table, output, file_provenance(config, "score", classifier=classifier, variation=variation)
    )


def score_data(
    config: Config, classifier: str, *, model: str | Path, events: str | Path, output: str | Path, threads: int,
) -> Path:
    """Score the observed data events of ``fit.data.path`` (Parquet or CSV with the feature
    columns; ``weight`` optional, 1 by default) for the fits."""
    from .score import predict_scores
    from .train import load_model

    features = list(config["features"])
    path = Path(events)
    if not path.is_file():
        raise DataContractError(f"fit.data.path: {path}: file not found")
    df = pd.read_csv(path) if path.suffix.lower() == ".csv" else io.read_table(path)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataContractError(f"fit.data.path: {path}: missing column(s) {missing}; columns present: {list(df.columns)}")
    weight = df["weight"].to_numpy(np.float64) if "weight" in df.columns else np.ones(len(df))
    event_id = df["event_id"].to_numpy(np.int64) if "event_id" in df.columns else np.arange(len(df), dtype=np.int64)
    score = predict_scores(load_model(model), df, features=features, threads=threads)
    out = pd.DataFrame({"event_id": event_id, "weight": weight, "score": score})
    log.info("scored %d data events (sum of weights %.6g)", len(out), weight.sum())
    return io.write_table(out, output, file_provenance(config, "score_data", classifier=classifier))


def load_variation_scores(
    config: Config, *, scores: Mapping[str, str | Path], weights: Mapping[str, str | Path]
) -> dict[str, pd.DataFrame]:
    """Score frames for every variation: re-scored ones read directly, weight-only ones as
    the nominal scores with the variation's weights joined on event_id."""
    systematics = config["systematics"]
    nominal = io.read_table(scores["nominal"], required=("event_id", "label", "weight", "score"))
    frames: dict[str, pd.DataFrame] = {"nominal": nominal}
    for name in variation_names(systematics)[1:]:
        if name in feature_variations(systematics):
            frames[name] = io.read_table(scores[name], required=("event_id", "label", "weight", "score"))
            continue
        w = io.read_table(weights[name], required=("event_id", "weight"))
        if len(w) != len(nominal) or not np.array_equal(w["event_id"].to_numpy(), nominal["event_id"].to_numpy()):
            w = w.set_index("event_id").reindex(nominal["event_id"])
            if w["weight"].isna().any():
                raise io.DataContractError(f"{weights[name]}: event_ids differ from the nominal scores")
        frame = nominal.copy()
        frame["weight"] = np.asarray(w["weight"], dtype=np.float64)
        frames[name] = frame
    return frames


def scan_thresholds(config: Config) -> np.ndarray:
    """The threshold grid of ``scan.thresholds``."""
    from .scan import default_thresholds

    thr = config["scan"]["thresholds"]
    return default_thresholds(thr["start"], thr["stop"], thr["step"])


def scan(
    config: Config, classifier: str, *, scores: Mapping[str, str | Path],
    weights: Mapping[str, str | Path], output: str | Path,
) -> Path:
    """Scan the score threshold for one classifier (SPEC section 5)."""
    from .scan import scan_scores

    frames = load_variation_scores(config, scores=scores, weights=weights)
    sc = config["scan"]
    started = time.perf_counter()
    result = scan_scores(
        frames,
        systematics=config["systematics"],
        thresholds=scan_thresholds(config),
        symmetrise=sc["symmetrise"],
        b_reg=sc["higgsml_b_reg"],
        min_signal=sc["min_signal"],
        min_background=sc["min_background"],
    )
    log.info("scanned %d thresholds x %d variations in %.3f s", len(result), len(frames), time.perf_counter() - started)
    return io.write_table(result, output, file_provenance(config, "scan", classifier=classifier))


def table(
    config: Config, *, scans: Mapping[str, str | Path], infos: Mapping[str, str | Path],
    prefix: str | Path, methods: Mapping[str, str | Path] | None = None,
    classifiers_prefix: str | Path | None = None,
) -> list[Path]:
    """Assemble the final uncertainty table in Parquet, CSV, Markdown and LaTeX: the
    cut-and-count shift rows plus, when the statistical model ran, the linear, profile and
    chi2 rows of every classifier (column ``method``)."""
    from .table import build_table, classifier_table, write_table

    scan_frames = {clf: io.read_table(path) for clf, path in scans.items()}
    model_info = {clf: json.loads(Path(path).read_text()) for clf, path in infos.items()}
    df = build_table(scan_frames, systematics=config["systematics"], model_info=model_info)
    if methods:
        from .pipeline_fit import merge_method_rows

        classifiers = [c["name"] for c in config["classifiers"]]
        df = merge_method_rows(df, [io.read_table(methods[c]) for c in classifiers if c in methods], classifiers)
    paths = write_table(df, prefix, provenance=file_provenance(config, "table"))
    if classifiers_prefix is not None:
        paths += write_table(classifier_table(model_info), classifiers_prefix, provenance=file_provenance(config, "table"))
    return paths


def provenance(config: Config, *, output: str | Path) -> Path:
    """Write ``results/provenance.json``: config, seeds, versions and the git commit."""
    return io.write_json(run_provenance(config), output)


def limit_threads(threads: int):
    """Context manager limiting OpenMP/BLAS pools to the rule's ``threads``."""
    return threadpool_limits(limits=max(int(threads), 1))


__all__ = [
    "changes_features",
    "ingest",
    "load_variation_scores",
    "provenance",
    "scan",
    "score",
    "simulate",
    "split",
    "table",
    "train",
    "vary",
    "weight_variations",
]
