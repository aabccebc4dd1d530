"""Benchmark: the whole default workflow (config/config.yaml) on 2 cores, from scratch.

Runs Snakemake in a fresh temporary directory (nothing cached), prints the wall time, the
summed job time per rule (from the Snakemake log) and the share of each stage, then the same
for config/smoke.yaml as the reference point measured in the same command.

    python bench/bench_workflow.py [--cores 2] [--config config/config.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_STAMP = re.compile(r"\[(\w{3} \w{3}\s+\d+ [\d:]+ \d{4})\]")


def job_seconds(log_text: str) -> dict[str, tuple[int, float]]:
    """Rule -> (number of jobs, summed wall seconds) from a Snakemake log."""
    starts: dict[str, tuple[str, dt.datetime]] = {}
    total: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    rule = now = None
    for line in log_text.splitlines():
        if m := _STAMP.match(line):
            now = dt.datetime.strptime(re.sub(" +", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)", line)) and rule and now:
            starts[m.group(1)] = (rule, now)
            rule = None
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in starts and now:
            name, began = starts.pop(m.group(1))
            total[name] += (now - began).total_seconds()
            count[name] += 1
    return {name: (count[name], total[name]) for name in total}


def run(config: str, cores: int, workdir: Path) -> tuple[float, dict[str, tuple[int, float]]]:
    shutil.copytree(ROOT / "config", workdir / "config")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", config, "--cores", str(cores)]  # fmt: skip
    began = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"workflow {config} failed (exit {proc.returncode})")
    return wall, job_seconds(proc.stderr + proc.stdout)


def report(name: str, wall: float, jobs: dict[str, tuple[int, float]]) -> None:
    busy = sum(s for _, s in jobs.values())
    print(f"\n== {name}: wall {wall:.0f} s ({wall / 60:.1f} min); summed job time {busy:.0f} s ==")
    for rule, (n, seconds) in sorted(jobs.items(), key=lambda kv: -kv[1][1]):
        print(f"{rule:<18} {n:>4} jobs {seconds:>8.0f} s {100 * seconds / busy:>6.1f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--no-smoke", action="store_true", help="skip the smoke reference run")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep the results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="systpipe-bench-") as tmp:
        base = args.keep or Path(tmp)
        runs = [("default", args.config)] + (
            [] if args.no_smoke else [("smoke", "config/smoke.yaml")]
        )
        walls = {}
        for name, config in runs:
            workdir = base / name
            workdir.mkdir(parents=True, exist_ok=False)
            wall, jobs = run(config, args.cores, workdir)
            walls[name] = wall
            report(f"{name} ({config}, {args.cores} cores)", wall, jobs)
    if "smoke" in walls:
        print(f"\ndefault / smoke wall-time ratio: {walls['default'] / walls['smoke']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
