"""Peak memory of ``compare_text`` against the text's length, default pair, one fresh process per length.

Each process loads both models, runs a 16-token comparison (which pages every weight in), reads
its resident memory (the baseline: models loaded and touched), then runs ``compare_text`` on a
text of exactly N teacher tokens (English, from the same paragraph as ``bench_compare.py``) and
reads the process's peak resident memory. Reported: the peak, the peak above the baseline, and
that per text token.

    python benchmarks/bench_memory.py [--tokens 128 512 1024]

Runs against whatever ``uld_explorer`` is importable, so the same script measures an older
checkout (``PYTHONPATH=<checkout> python benchmarks/bench_memory.py``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import PARAGRAPH  # noqa: E402


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(n_tokens: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from uld_explorer import compare_text, zoo

    try:
        from uld_explorer.text import tokenize_with_offsets
    except ImportError:  # an older checkout
        from uld_explorer.alignment import tokenize_with_offsets

    teacher = zoo.load(zoo.DEFAULT_TEACHER, progress=False)
    student = zoo.load(zoo.DEFAULT_STUDENT, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = tokenize_with_offsets(teacher.tokenizer, PARAGRAPH * 40, max_tokens=n_tokens).text
        warm = tokenize_with_offsets(teacher.tokenizer, PARAGRAPH, max_tokens=16).text
        compare_text(teacher, student, warm, max_tokens=64)  # pages the weights in
        base = _rss_now_mb()
        t0 = time.perf_counter()
        table = compare_text(teacher, student, text, max_tokens=n_tokens + 64)
        seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {"tokens": len(table.teacher), "rows": len(table), "baseline_mb": base, "peak_mb": peak,
            "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, nargs="+", default=[128, 512, 1024], help="text lengths (teacher tokens)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.threads)))
        return
    print(f"# compare_text memory: {platform.processor() or platform.machine()}, torch threads {a.threads}\n")
    print("| text tokens | rows | baseline: models loaded (MB) | peak (MB) | peak above baseline (MB) | per token (MB) | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in a.tokens:
        out = subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--child", str(n)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {n} | failed: {out.stderr.strip().splitlines()[-1][:120]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        above = r["peak_mb"] - r["baseline_mb"]
        print(f"| {r['tokens']} | {r['rows']} | {r['baseline_mb']:.0f} | {r['peak_mb']:.0f} | {above:.0f} | "
              f"{above / r['tokens']:.2f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
