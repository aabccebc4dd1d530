"""Command line: ``systpipe <step>`` runs one workflow step without Snakemake.

Example:
    systpipe validate config/config.yaml
    systpipe simulate -c config/config.yaml --out events=results/data/events.parquet
    systpipe split -c config/config.yaml --in events=results/data/events.parquet \\
        --out train=results/data/train.parquet --out test=results/data/test.parquet
    systpipe train -c config/config.yaml --set clf=hgb --in train=... --in test=... \\
        --out model=results/models/hgb.skops --out info=results/models/hgb.json --threads 2
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import SystpipeError

log = logging.getLogger(__name__)

STEP_HELP = {
    "simulate": "generate the built-in H->WW sample (out: events)",
    "ingest": "read ROOT/Parquet/CSV files into the event table (out: events)",
    "split": "train/test split (in: events; out: train, test)",
    "train": "train one classifier (set: clf; in: train, test; out: model, info)",
    "vary": "apply one systematic variation (set: variation; in: test; out: variation)",
    "score": "score events (set: clf, variation; in: model, events; out: scores)",
    "scan": "threshold scan (set: clf; in: score__<variation>, weight__<variation>; out: scan)",
    "table": "final uncertainty table (in: scan__<clf>, info__<clf>; out: parquet)",
    "plots": "plots (see workflow/rules/plots.smk for the named inputs and outputs)",
    "studies": "the notebook's part-1 statistics studies (out: table, md, plots)",
    "provenance": "run record (out: provenance)",
    "workspace": "pyhf workspace (set: clf; in: score__<variation>, weight__<variation>)",
    "fit": "profile-likelihood fit of a workspace",
    "chi2": "covariance chi2 fit",
    "toys": "pseudo-experiments for one chunk",
    "toys_summary": "coverage summary of the toy chunks",
    "methods": "method-comparison rows of one classifier (shift, linear, profile, chi2)",
    "score_data": "score the observed data events of fit.data.path (set: clf; in: model, events; out: scores)",
}


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystpipeError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="systpipe", description="Systematic uncertainties on the signal strength mu."
    )
    parser.add_argument("--version", action="version", version=f"systpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    val = sub.add_parser("validate", help="validate a config file and print the filled-in config")
    val.add_argument("config")
    for step, text in STEP_HELP.items():
        p = sub.add_parser(step, help=text, description=text)
        p.add_argument("-c", "--config", required=True, help="YAML config file")
        p.add_argument("--in", dest="inputs", action="append", metavar="NAME=PATH", help="named input")
        p.add_argument("--out", dest="outputs", action="append", metavar="NAME=PATH", help="named output")
        p.add_argument("--set", dest="wildcards", action="append", metavar="KEY=VALUE",
                       help="wildcard value (clf, variation, chunk)")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--log", help="log file (default: stderr)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .config import load_config
    from .runner import Job, configure_logging, run

    try:
        if args.step == "validate":
            import yaml

            cfg = load_config(args.config)
            sys.stdout.write(yaml.safe_dump(cfg, sort_keys=False))
            return 0
        configure_logging(args.log, logging.DEBUG if args.verbose else logging.INFO)
        job = Job(
            config=load_config(args.config),
            input=_pairs(args.inputs, "--in"),
            output=_pairs(args.outputs, "--out"),
            wildcards=_pairs(args.wildcards, "--set"),
            threads=args.threads,
        )
        run(args.step, job)
    except SystpipeError as exc:
        sys.stderr.write(f"systpipe {args.step}: error: {exc}\n")
        return 2
    except KeyError as exc:
        sys.stderr.write(f"systpipe {args.step}: error: missing named input/output/setting {exc}\n")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
