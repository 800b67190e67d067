"""How fast the command line answers ``--help``, next to the imports it avoids.

Each command runs in a fresh process, ``--repeat`` times; the median wall time is reported with
its ratio to an empty Python start. ``uld-explorer --help`` builds every subcommand's parser from
the library's configs and registries (:mod:`uld_explorer.compare.config`, :mod:`uld_explorer.costs`,
:mod:`uld_explorer.hybrid`, :mod:`uld_explorer.synthetic`, :mod:`uld_explorer.text.align`), which
import NumPy only; torch, POT and transformers load when a command runs.

    python benchmarks/bench_cli.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _median_seconds(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="fresh processes per command (median reported)")
    a = ap.parse_args()
    exe = shutil.which("uld-explorer") or str(Path(sys.executable).parent / "uld-explorer")
    py = sys.executable
    rows = [
        ("python -c pass (interpreter start)", [py, "-c", "pass"]),
        ("uld-explorer --help", [exe, "--help"]),
        ("uld-explorer compare --help", [exe, "compare", "--help"]),
        ("python -c 'import numpy'", [py, "-c", "import numpy"]),
        ("python -c 'import torch'", [py, "-c", "import torch"]),
        ("python -c 'import ot' (POT)", [py, "-c", "import ot"]),
        ("python -c 'import uld_explorer; uld_explorer.uld_distance' (torch)", [py, "-c", "import uld_explorer; uld_explorer.uld_distance"]),
    ]
    base = None
    print(f"# CLI start-up: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"median of {a.repeat} fresh processes\n")
    print("| command | seconds | x interpreter start |")
    print("|---|---:|---:|")
    for name, cmd in rows:
        t = _median_seconds(cmd, a.repeat)
        base = base or t
        print(f"| {name} | {t:.3f} | {t / base:.1f} |")


if __name__ == "__main__":
    main()
