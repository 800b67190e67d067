"""The one prepared GPU check (<= 5 min on an H100/H200): run it where a GPU is lent.

1. ULD's GPU kernel (``sorted_l1_torch``) against the CPU kernel on training-sized rows
   (values and gradient signs), and its speed on both;
2. the ``gpu`` preset (SmolLM2-135M-Instruct from Qwen2.5-Coder-0.5B-Instruct, bf16 autocast, one
   GPU) for a fixed number of steps: tokens/s and peak GPU memory.

    python benchmarks/gpu_check.py [--steps 60] [--out DIR]

Prints one JSON object (also written to ``DIR/gpu_check.json``). Needs the zoo models in the
cache (``uld-explorer models fetch --all``) and the teacher cache of the gpu preset's data (built
on first use from the teacher, on the GPU machine itself: ~1 min there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def kernel_check() -> dict:
    from uld_explorer.divergences import sorted_l1_numpy, sorted_l1_torch

    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(49_152, 0.05), size=512).astype(np.float32)  # student rows
    b = rng.dirichlet(np.full(256, 0.5), size=512).astype(np.float32)  # teacher top-k rows
    t0 = time.perf_counter()
    v_cpu, sa_cpu, _ = sorted_l1_numpy(a, b, True, False)
    cpu_s = time.perf_counter() - t0
    ag, bg = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    sorted_l1_torch(ag, bg, True, False)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    v_gpu, sa_gpu, _ = sorted_l1_torch(ag, bg, True, False)
    torch.cuda.synchronize()
    gpu_s = time.perf_counter() - t0
    return {"rows": 512, "V_long": 49_152, "V_short": 256,
            "max_abs_value_diff": float(np.abs(v_gpu.cpu().numpy() - v_cpu).max()),
            "sign_mismatch_fraction": float((sa_gpu.cpu().numpy() != sa_cpu).mean()),
            "cpu_kernel_s": cpu_s, "gpu_kernel_s": gpu_s}


def preset_check(steps: int, out: Path) -> dict:
    from uld_explorer.distill import runs
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.loop import train
    from uld_explorer.distill.prepare import prepare

    cfg = preset("gpu", max_steps=steps, eval_every=steps, checkpoint_every=steps)
    t0 = time.perf_counter()
    prep = prepare(cfg)
    prep_s = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    last = train(cfg, out / "gpu-run", prepared=prep)
    wall = time.perf_counter() - t0
    m = [d for d in runs.read_metrics(out / "gpu-run") if d.get("tokens_per_s")]
    tps = [d["tokens_per_s"] for d in m[3:]] or [d["tokens_per_s"] for d in m]
    first = runs.read_metrics(out / "gpu-run")[0]
    return {"steps": steps, "prepare_s": prep_s, "train_wall_s": wall, "tokens_per_s_median": float(np.median(tps)),
            "step_s_median": float(np.median([d["step_s"] for d in m[3:] or m])),
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
            "first": {k: first.get(k) for k in ("loss", "ce", "uld", "eval_ce", "eval_uld", "eval_top1")},
            "last": {k: last.get(k) for k in ("loss", "ce", "uld", "eval_ce", "eval_uld", "eval_top1")},
            "device": torch.cuda.get_device_name(0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", type=Path, default=Path("artifacts/gpu"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"kernel": kernel_check(), "preset": preset_check(args.steps, args.out)}
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
