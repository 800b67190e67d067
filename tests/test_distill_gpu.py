"""The GPU paths: skipped without CUDA (CI and most machines), run where a GPU is at hand.

``benchmarks/gpu_check.py`` is the one prepared script for a lent GPU machine (figures for
docs/benchmarks.md); these tests check the same paths for correctness.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_sorted_l1_torch_on_cuda_equals_the_cpu_kernel():
    from uld_explorer.divergences import sorted_l1_numpy, sorted_l1_torch

    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.full(49_152, 0.05), size=64).astype(np.float32)
    b = rng.dirichlet(np.full(512, 0.5), size=64).astype(np.float32)
    v_cpu, sa_cpu, sb_cpu = sorted_l1_numpy(a, b, True, True)
    v_gpu, sa_gpu, sb_gpu = sorted_l1_torch(torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda(), True, True)
    np.testing.assert_allclose(v_gpu.cpu().numpy(), v_cpu, rtol=1e-5, atol=1e-6)
    assert (sa_gpu.cpu().numpy() != sa_cpu).mean() < 1e-4  # ties among float32 values may order differently
    assert (sb_gpu.cpu().numpy() != sb_cpu).mean() < 1e-4


def test_gpu_preset_trains_a_few_steps(default_models, tmp_path):
    from uld_explorer.distill import runs
    from uld_explorer.distill.rundir import RunDir
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.loop import train

    last = train(preset("gpu", max_steps=3, eval_every=3, batch_size=8), tmp_path / "g", progress=False)
    assert last["state"] == "finished"
    m = runs.read_metrics(tmp_path / "g")
    assert all(np.isfinite(d["loss"]) for d in m) and RunDir(tmp_path / "g").status()["device"].startswith("cuda")
