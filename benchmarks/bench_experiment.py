"""Does ULD help, measured: a whole `uld-explorer experiment` on this machine, timed, its table printed.

    python benchmarks/bench_experiment.py [--preset cpu-pretrained] [--losses ce,ce+uld] [--seeds 0,1,2]
                                          [--out DIR] [--resamples 10000]

Runs the experiment through the command line exactly as a user would (``uld-explorer
experiment ... --out DIR``, fresh folder unless ``--out`` names one to continue), and prints
the wall time of each part it reports (step 0, each run's training and scoring), the total
against the issue's goal (a 2-loss x 3-seed experiment within 15 minutes on 2 cores), and the
experiment's own table with intervals. The teacher cache and the student's trunk cache are
built on first use (the timing says whether they were already there). Record the figures with
the machine in docs/experiments.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name

GOAL_S = 15 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-pretrained")
    ap.add_argument("--losses", default="ce,ce+uld")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default=None, help="the experiment folder (default: a new temporary one)")
    ap.add_argument("--resamples", type=int, default=10_000)
    args, extra = ap.parse_known_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-experiment-")) / "exp"
    cmd = [sys.executable, "-m", "uld_explorer.cli", "experiment", "--preset", args.preset, "--losses", args.losses,
           "--seeds", args.seeds, "--resamples", str(args.resamples), "--out", str(out), "--no-progress", *extra]
    print(f"# {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores; {' '.join(cmd[2:])}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # the experiment's own report: one line per run
        line = line.rstrip()
        if line.startswith(("[", "step 0")):
            print(f"{time.perf_counter() - t0:7.1f} s  {line}", flush=True)
        lines.append(line)
    table = proc.stdout.read()
    code = proc.wait()
    total = time.perf_counter() - t0
    if code != 0:
        print("\n".join(lines[-20:]), file=sys.stderr)
        sys.exit(code)
    print(f"\ntotal {total:,.0f} s ({total / 60:.1f} min) for {args.losses} x seeds {args.seeds}; goal <= "
          f"{GOAL_S // 60} min: {'met' if total <= GOAL_S else 'NOT met'}\n")
    print(table)
    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    train = [r["train_s"] for r in runs if r.get("train_s")]
    if train:
        print(f"training time per run: {min(train):.0f} to {max(train):.0f} s (the rest: step-0 scoring, "
              f"checkpoint loading, greedy answers, caches)")


if __name__ == "__main__":
    main()
