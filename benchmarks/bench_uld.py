"""ULD forward+backward at LLM vocabulary sizes: ours vs the paper's formula vs the sort floor.

Each method runs in its own fresh subprocess so its peak memory can be read from the kernel
(ru_maxrss, which covers torch's and NumPy's allocations alike). Prints one table with ratios
measured side by side in this run.

    python benchmarks/bench_uld.py                 # (B, T) = (2, 128), V_t = 151,936, V_s = 49,152
    python benchmarks/bench_uld.py --repeats 5 --B 1 --T 64
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("ours", "straightforward", "floor_torch_sort", "floor_numpy_sort")


def _inputs(B: int, T: int, V_t: int, V_s: int, seed: int = 0):
    """Peaked distributions built in place (no temporary as large as the inputs)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.empty(B, T, V_t).exponential_(generator=g).pow_(4)
    p /= p.sum(-1, keepdim=True)
    q = torch.empty(B, T, V_s).exponential_(generator=g).pow_(4)
    q /= q.sum(-1, keepdim=True)
    return p, q


def straightforward(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The paper's formula restated: pad both to n, sort both descending, L1 over the vocabulary."""
    n = max(p.shape[-1], q.shape[-1])
    p_pad = F.pad(p, (0, n - p.shape[-1]))
    q_pad = F.pad(q, (0, n - q.shape[-1]))
    return (p_pad.sort(-1, descending=True).values - q_pad.sort(-1, descending=True).values).abs().sum(-1)


def run_one(method: str, B: int, T: int, V_t: int, V_s: int, repeats: int) -> dict:
    from uld_explorer import uld_distance

    p, q = _inputs(B, T, V_t, V_s)
    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    value = None

    def once():
        nonlocal value
        if method == "floor_torch_sort":
            torch.sort(p, -1, descending=True)
            torch.sort(q, -1, descending=True)
            return
        if method == "floor_numpy_sort":
            np.sort(p.numpy(), -1)
            np.sort(q.numpy(), -1)
            return
        qq = q.detach().requires_grad_()
        loss = (uld_distance(p, qq, validate=False) if method == "ours" else straightforward(p, qq)).mean()
        loss.backward()
        value = float(loss)

    times = []
    for _ in range(repeats + 1):  # the first call warms up
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": method,
        "seconds": statistics.median(times[1:]),
        "peak_extra_bytes": max(0, peak - base_peak),
        "input_bytes": p.nbytes + q.nbytes,
        "value": value,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--T", type=int, default=128)
    ap.add_argument("--V-t", type=int, default=151_936)
    ap.add_argument("--V-s", type=int, default=49_152)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", choices=METHODS, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one, a.B, a.T, a.V_t, a.V_s, a.repeats)))
        return

    rows = {}
    for m in METHODS:
        cmd = [sys.executable, __file__, "--one", m, "--B", str(a.B), "--T", str(a.T),
               "--V-t", str(a.V_t), "--V-s", str(a.V_s), "--repeats", str(a.repeats)]
        rows[m] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    floor = rows["floor_torch_sort"]["seconds"]
    inputs = rows["ours"]["input_bytes"]
    print(f"# ULD fwd+bwd, (B,T)=({a.B},{a.T}), V_t={a.V_t:,}, V_s={a.V_s:,}, float32, "
          f"median of {a.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}")
    print(f"# inputs: {inputs / 2**20:.0f} MiB")
    print("| method | seconds | x floor (torch.sort) | peak extra memory / inputs |")
    print("|---|---|---|---|")
    for m in METHODS:
        r = rows[m]
        print(f"| {m} | {r['seconds']:.3f} | {r['seconds'] / floor:.2f} | {r['peak_extra_bytes'] / inputs:.2f} |")
    diff = abs(rows["ours"]["value"] - rows["straightforward"]["value"])
    speedup = rows["straightforward"]["seconds"] / rows["ours"]["seconds"]
    print(f"\nours vs straightforward: {speedup:.1f}x faster, |value difference| = {diff:.2e}")
    print(f"ours vs NumPy value-only sort floor: {rows['ours']['seconds'] / rows['floor_numpy_sort']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
