"""Benchmark: the default workflow at 1M, 3M and 10M simulated events with event partitions.

For each size N the default analysis (config/config.yaml) is run from scratch in a fresh
directory with ``simulate.n_selected`` set to N / (number of processes) per process and
``input: {source: simulate, partitions: auto, partition_events: P}``; every other setting
(classifiers, statistics, toys, ...) is kept, since those do not scale with the event count.
Measured per size: the wall time of the whole Snakemake run and, from the benchmark TSVs under
results/benchmarks/, per rule the number of jobs, the summed job seconds and the peak RSS (max
over jobs), plus the single job with the largest peak RSS. The final comparison checks the two
scaling goals of event partitioning:

* memory is bounded: the largest per-job peak RSS at the largest size is <= 1.5x that at the
  smallest size;
* time is at most linear: wall(N) / wall(N0) <= N / N0.

It is a measurement, not a test: the exit code is 0 whether the checks pass or fail, and
nonzero only if a workflow run fails.

    python bench/bench_scale.py [--sizes 1000000 3000000 10000000] [--cores 2]
        [--partition-events 500000] [--keep DIR] [--json OUT.json]

Without --keep the runs happen in a temporary directory that is removed at the end (the
results/tables/uncertainties.csv paths in the JSON are then gone; use --keep DIR to compare
them). Runtime: the three sizes run one after the other; the 10M run alone takes tens of
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workflow import ROOT, run  # noqa: E402

DEFAULT_SIZES = [1_000_000, 3_000_000, 10_000_000]
RSS_GROWTH_LIMIT = 1.5
BENCHMARK_DIR = Path("results/benchmarks")
TABLE = Path("results/tables/uncertainties.csv")


@dataclass
class JobRecord:
    """One benchmark TSV: one Snakemake job."""

    rule: str
    file: str  # path below results/benchmarks/, names the job's wildcards
    seconds: float | None
    max_rss_mb: float | None


@dataclass
class RuleStats:
    jobs: int = 0
    seconds: float = 0.0  # summed over jobs, from the benchmark TSVs
    log_seconds: float = 0.0  # summed over jobs, from the Snakemake log (1 s resolution)
    max_rss_mb: float | None = None  # max over jobs


@dataclass
class SizeResult:
    events: int
    n_selected: dict[str, int]
    workdir: str
    table: str
    wall_seconds: float
    rules: dict[str, RuleStats] = field(default_factory=dict)
    largest_job: JobRecord | None = None


def scaled_config(base: dict[str, Any], events: int, partition_events: int) -> dict[str, Any]:
    """The base config with `events` selected events split evenly over its processes."""
    cfg = copy.deepcopy(base)
    processes = list(cfg["simulate"]["n_selected"])
    cfg["simulate"]["n_selected"] = {p: events // len(processes) for p in processes}
    cfg["input"] = {
        "source": "simulate",
        "partitions": "auto",
        "partition_events": partition_events,
    }
    return cfg


def parse_number(text: str | None) -> float | None:
    """A benchmark TSV value as a float; None for '-', 'NA', empty or missing."""
    if text is None or text.strip() in {"", "-", "NA", "nan"}:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def read_benchmark(path: Path, root: Path) -> JobRecord:
    """Parse one Snakemake benchmark TSV (several rows if the rule uses repeat())."""
    rel = path.relative_to(root)
    rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    rss = [v for r in rows if (v := parse_number(r.get("max_rss"))) is not None]
    secs = [v for r in rows if (v := parse_number(r.get("s"))) is not None]
    return JobRecord(
        rule=rule,
        file=rel.as_posix(),
        seconds=sum(secs) / len(secs) if secs else None,
        max_rss_mb=max(rss) if rss else None,
    )


def collect_benchmarks(workdir: Path) -> list[JobRecord]:
    """Every benchmark TSV under workdir/results/benchmarks/, recursively."""
    root = workdir / BENCHMARK_DIR
    return [read_benchmark(p, root) for p in sorted(root.glob("**/*.tsv"))]


def summarise(
    jobs: list[JobRecord], log_jobs: dict[str, tuple[int, float]]
) -> dict[str, RuleStats]:
    """Per-rule statistics from the benchmark records, with the log's job times alongside."""
    rules: dict[str, RuleStats] = {}
    for job in jobs:
        stats = rules.setdefault(job.rule, RuleStats())
        stats.jobs += 1
        stats.seconds += job.seconds or 0.0
        if job.max_rss_mb is not None:
            stats.max_rss_mb = max(stats.max_rss_mb or 0.0, job.max_rss_mb)
    for rule, (count, seconds) in log_jobs.items():
        stats = rules.setdefault(rule, RuleStats())
        stats.log_seconds = seconds
        stats.jobs = max(stats.jobs, count)
    return rules


def largest_job(jobs: list[JobRecord]) -> JobRecord | None:
    measured = [j for j in jobs if j.max_rss_mb is not None]
    return max(measured, key=lambda j: j.max_rss_mb or 0.0) if measured else None


def run_size(events: int, base: dict[str, Any], args: argparse.Namespace, root: Path) -> SizeResult:
    workdir = root / str(events)
    workdir.mkdir(parents=True, exist_ok=False)
    cfg = scaled_config(base, events, args.partition_events)
    config_path = workdir / f"scale_{events}.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"\n-- running {events:,} events in {workdir} ...", flush=True)
    wall, log_jobs = run(str(config_path), args.cores, workdir)
    jobs = collect_benchmarks(workdir)
    if not jobs:
        print(f"warning: no benchmark TSVs under {workdir / BENCHMARK_DIR}", file=sys.stderr)
    return SizeResult(
        events=events,
        n_selected=cfg["simulate"]["n_selected"],
        workdir=str(workdir),
        table=str(workdir / TABLE),
        wall_seconds=wall,
        rules=summarise(jobs, log_jobs),
        largest_job=largest_job(jobs),
    )


def fmt_mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def print_size(result: SizeResult) -> None:
    print(
        f"\n== {result.events:,} events: wall {result.wall_seconds:.0f} s "
        f"({result.wall_seconds / 60:.1f} min) =="
    )
    print(f"{'rule':<20} {'jobs':>5} {'job s':>9} {'log s':>8} {'peak RSS MB':>12}")
    order = sorted(result.rules.items(), key=lambda kv: -(kv[1].max_rss_mb or 0.0))
    for rule, s in order:
        print(
            f"{rule:<20} {s.jobs:>5} {s.seconds:>9.1f} {s.log_seconds:>8.0f} "
            f"{fmt_mb(s.max_rss_mb):>12}"
        )
    job = result.largest_job
    if job is not None:
        print(f"largest job: {job.rule} ({job.file}) {fmt_mb(job.max_rss_mb)} MB")


def compare(results: list[SizeResult]) -> None:
    """Print the scaling table and the PASS/FAIL lines of the two goals."""
    results = sorted(results, key=lambda r: r.events)
    ref, top = results[0], results[-1]
    ref_rss = ref.largest_job.max_rss_mb if ref.largest_job else None
    print(f"\n== scaling relative to {ref.events:,} events ==")
    print(
        f"{'events':>12} {'N/N0':>6} {'max RSS MB':>11} {'RSS/RSS0':>9} "
        f"{'wall s':>8} {'wall/wall0':>11} {'(wall/N)/(wall0/N0)':>20}  largest job"
    )
    for r in results:
        rss = r.largest_job.max_rss_mb if r.largest_job else None
        rss_ratio = f"{rss / ref_rss:.2f}" if rss is not None and ref_rss else "n/a"
        n_ratio = r.events / ref.events
        wall_ratio = r.wall_seconds / ref.wall_seconds
        where = f"{r.largest_job.rule} ({r.largest_job.file})" if r.largest_job else "n/a"
        print(
            f"{r.events:>12,} {n_ratio:>6.1f} {fmt_mb(rss):>11} {rss_ratio:>9} "
            f"{r.wall_seconds:>8.0f} {wall_ratio:>11.2f} {wall_ratio / n_ratio:>20.2f}  {where}"
        )
    top_rss = top.largest_job.max_rss_mb if top.largest_job else None
    if top_rss is None or not ref_rss:
        print("UNKNOWN: largest per-job RSS (no benchmark data)")
    else:
        verdict = "PASS" if top_rss <= RSS_GROWTH_LIMIT * ref_rss else "FAIL"
        print(
            f"{verdict}: largest per-job RSS at {top.events:,} = {top_rss:.0f} MB "
            f"<= {RSS_GROWTH_LIMIT}x {ref_rss:.0f} MB at {ref.events:,} "
            f"(ratio {top_rss / ref_rss:.2f})"
        )
    worst = max(results, key=lambda r: r.wall_seconds / r.events)
    ratio = (worst.wall_seconds / ref.wall_seconds) / (worst.events / ref.events)
    verdict = "PASS" if ratio <= 1.0 else "FAIL"
    print(
        f"{verdict}: wall time grows at most linearly (worst {worst.events:,}: "
        f"wall/wall0 = {worst.wall_seconds / ref.wall_seconds:.2f} vs N/N0 = "
        f"{worst.events / ref.events:.2f})"
    )


def write_json(path: Path, results: list[SizeResult], args: argparse.Namespace) -> None:
    payload = {
        "cores": args.cores,
        "partition_events": args.partition_events,
        "kept": args.keep is not None,
        "sizes": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=DEFAULT_SIZES,
        metavar="N",
        help="total simulated events per run (default: %(default)s)",
    )
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument(
        "--partition-events",
        type=int,
        default=500_000,
        help="input.partition_events: test events per partition (default: %(default)s)",
    )
    ap.add_argument(
        "--config",
        type=Path,
        default=ROOT / "config/config.yaml",
        help="base config to scale (default: config/config.yaml)",
    )
    ap.add_argument(
        "--keep", type=Path, metavar="DIR", help="run in DIR/<size> and keep the results"
    )
    ap.add_argument(
        "--json", type=Path, metavar="OUT.json", help="write the measurements to this JSON file"
    )
    args = ap.parse_args()
    if args.keep is not None:
        args.keep = args.keep.resolve()
    base = yaml.safe_load(args.config.read_text())
    results: list[SizeResult] = []
    status = 0
    with tempfile.TemporaryDirectory(prefix="systpipe-scale-") as tmp:
        root = args.keep or Path(tmp)
        for events in sorted(set(args.sizes)):
            try:
                results.append(run_size(events, base, args, root))
            except SystemExit as exc:  # bench_workflow.run raises it when Snakemake fails
                print(f"\n{exc}", file=sys.stderr)
                status = 1
                break
            print_size(results[-1])
            if args.json is not None:  # after every size, so a killed 10M run keeps the rest
                write_json(args.json, results, args)
    if results:
        compare(results)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
