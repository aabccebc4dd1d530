"""Run every benchmark in bench/ one after the other; output also goes to bench/out/<name>.txt.

    python bench/run_all.py [--quick] [--only scan,fit]

--quick shrinks the sizes (100k events, no full workflow) for a check that the benchmarks
run; the numbers quoted in README and release notes come from the full run (about 45 min on
2 cores, 25 of them the 1M-10M event scaling runs of bench_scale.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "simulate": (["bench_simulate.py"], ["bench_simulate.py", "--n", "100000"]),
    "train": (["bench_train.py"], ["bench_train.py", "--events", "100000"]),
    "scan": (["bench_scan.py"], ["bench_scan.py", "--events", "100000", "--loop-thresholds", "20"]),
    "fit": (["bench_fit.py"], ["bench_fit.py"]),
    "toys": (["bench_toys.py"], ["bench_toys.py", "--quick"]),
    "inferno": (["bench_inferno.py"], ["bench_inferno.py", "--quick"]),
    "workflow": (["bench_workflow.py"], None),
    # the default analysis at 1M, 3M and 10M events with partitions (about 25 min)
    "scale": (["bench_scale.py"], None),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHES))
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for name in names:
        full, quick = BENCHES[name]
        argv = quick if args.quick else full
        if argv is None:
            print(f"== {name}: skipped with --quick")
            continue
        print(f"== {name}: {' '.join(argv)}", flush=True)
        began = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / argv[0]), *argv[1:]], capture_output=True, text=True
        )
        text = proc.stdout + (proc.stderr if proc.returncode else "")
        (out_dir / f"{name}.txt").write_text(text)
        print(text, end="" if text.endswith("\n") else "\n")
        print(
            f"== {name}: exit {proc.returncode}, {time.perf_counter() - began:.0f} s\n", flush=True
        )
        if proc.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
