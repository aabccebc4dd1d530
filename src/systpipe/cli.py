"""Command line: ``systpipe <step>`` runs one workflow step without Snakemake.

The subcommands and their help come from the step registry (:data:`systpipe.steps.STEPS`).

Example:
    systpipe validate config/config.yaml
    systpipe simulate -c config/config.yaml --out events=results/data/events.parquet
    systpipe split -c config/config.yaml --in events=results/data/events.parquet \\
        --out train=results/data/train.parquet --out tests=results/data/test/0.parquet \\
        --out tests=results/data/test/1.parquet --out sample=results/data/test_sample.parquet
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


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str | list[str]]:
    """NAME=VALUE items as a mapping; a name given more than once collects its values in a
    list, in order (``--out tests=a --out tests=b``: the test partitions of ``split``)."""
    out: dict[str, str | list[str]] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystpipeError(f"{flag} expects NAME=VALUE, got {item!r}")
        if key in out:
            previous = out[key]
            out[key] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    """The parser: ``validate`` plus one subcommand per registered step."""
    from .steps import STEPS

    parser = argparse.ArgumentParser(
        prog="systpipe", description="Systematic uncertainties on the signal strength mu."
    )
    parser.add_argument("--version", action="version", version=f"systpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    val = sub.add_parser("validate", help="validate a config file and print the filled-in config")
    val.add_argument("config")
    val.add_argument(
        "--data",
        action="store_true",
        help="also open every input file and run the checks of ingest and vary (exit 2 on problems)",
    )
    for name, entry in STEPS.items():
        text = f"{entry.help} [arguments: {', '.join(entry.parameters())}]"
        p = sub.add_parser(name, help=entry.help, description=text)
        p.add_argument("-c", "--config", required=True, help="YAML config file")
        p.add_argument(
            "--in", dest="inputs", action="append", metavar="NAME=PATH", help="named input"
        )
        p.add_argument(
            "--out", dest="outputs", action="append", metavar="NAME=PATH", help="named output"
        )
        p.add_argument(
            "--set",
            dest="wildcards",
            action="append",
            metavar="KEY=VALUE",
            help="wildcard value (clf, variation, mode, chunk)",
        )
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--log", help="log file (default: stderr)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .config import load_config
    from .runner import configure_logging, run

    try:
        if args.step == "validate":
            import yaml

            cfg = load_config(args.config)
            if args.data:
                from .validate_data import report_data

                return report_data(cfg, sys.stdout, sys.stderr, config=args.config)
            sys.stdout.write(yaml.safe_dump(cfg, sort_keys=False))
            return 0
        configure_logging(args.log, logging.DEBUG if args.verbose else logging.INFO)
        run(
            args.step,
            config=load_config(args.config),
            threads=args.threads,
            input=_pairs(args.inputs, "--in"),
            output=_pairs(args.outputs, "--out"),
            wildcards=_pairs(args.wildcards, "--set"),
        )
    except SystpipeError as exc:
        sys.stderr.write(f"systpipe {args.step}: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
