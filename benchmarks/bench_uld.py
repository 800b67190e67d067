"""ULD forward+backward at LLM vocabulary sizes: ours vs TRL GOLD's ULD loss vs the paper's formula
vs the sort floor, on probabilities and on logits.

Each method runs in its own fresh subprocess so its peak memory can be read from the kernel
(ru_maxrss, which covers torch's and NumPy's allocations alike). Prints one table with ratios
measured side by side in this run, after checking that every method of an input kind gives the
same value.

- **ours**: ``uld_distance(p, q)`` on probabilities, ``uld_from_logits(z_t, z_s)`` on logits.
- **GOLD**: TRL's ``ULDLoss`` (``trl.experimental.gold``, the optional ``bench`` extra: ``pip
  install -e ".[bench]"``; a skip line when it is not installed). On logits it is called as the
  GOLD trainer calls it: positional alignment (``use_extended_uld=False``), no EOS skipped, no
  cross-entropy, temperatures 1, every position an answer position. Its loss is, per example,
  the sorted L1 summed over positions and vocabulary divided by the positions, then the mean
  over examples: with one length per batch that is the mean over all rows of the per-row ULD,
  which is what ours is reduced with. It takes logits only (it applies the softmax itself), so
  on probabilities its sort / pad / L1 block is restated here (``gold_block``), line for line.
- **straightforward**: the paper's formula restated (pad both to n, sort both, L1), after
  ``torch.softmax`` on logits.
- **floors**: ``torch.sort`` of both inputs, NumPy's value-only sort (no gradient, no softmax).

Then ours on logits and on the same rows' probabilities alternated ``--interleave`` times in one
process: the ratio with a bootstrap interval of its median (the two in separate processes
drift apart on a shared machine).

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
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

PROBS = ("probs/ours", "probs/gold", "probs/straightforward")
LOGITS = ("logits/ours", "logits/gold", "logits/straightforward")
FLOORS = ("floor_torch_sort", "floor_numpy_sort")
METHODS = (*PROBS, *LOGITS, *FLOORS)


def _inputs(B: int, T: int, V_t: int, V_s: int, seed: int = 0, logits: bool = False):
    """Peaked distributions built in place (no temporary as large as the inputs), or their logs
    (logits of the same distributions, up to a constant per row)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.empty(B, T, V_t).exponential_(generator=g).pow_(4)
    p /= p.sum(-1, keepdim=True)
    q = torch.empty(B, T, V_s).exponential_(generator=g).pow_(4)
    q /= q.sum(-1, keepdim=True)
    if logits:
        p.log_()
        q.log_()
    return p, q


def straightforward(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The paper's formula restated: pad both to n, sort both descending, L1 over the vocabulary."""
    n = max(p.shape[-1], q.shape[-1])
    p_pad = F.pad(p, (0, n - p.shape[-1]))
    q_pad = F.pad(q, (0, n - q.shape[-1]))
    return (p_pad.sort(-1, descending=True).values - q_pad.sort(-1, descending=True).values).abs().sum(-1)


def gold_block(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """GOLD's ``ULDLoss`` block on probabilities (trl 1.16, ``_compute_distillation_loss``):
    sort each side descending, zero-pad the shorter, ``F.l1_loss(..., reduction="sum")`` over
    one example's positions and vocabulary, divided by its positions; the mean over examples."""
    losses = []
    for i in range(p.shape[0]):
        s_sorted = q[i].sort(dim=-1, descending=True).values
        t_sorted = p[i].sort(dim=-1, descending=True).values
        n = max(s_sorted.size(-1), t_sorted.size(-1))
        s_sorted = F.pad(s_sorted, (0, n - s_sorted.size(-1)))
        t_sorted = F.pad(t_sorted, (0, n - t_sorted.size(-1)))
        losses.append(F.l1_loss(s_sorted, t_sorted, reduction="sum") / q[i].size(0))
    return torch.stack(losses).mean()


def gold_loss():
    """TRL GOLD's ULD loss as its trainer configures it for plain ULD (see the module docstring),
    or None when trl is not installed."""
    try:
        from trl.experimental.gold.gold_trainer import ULDLoss
    except ImportError:
        return None
    config = SimpleNamespace(uld_crossentropy_weight=0.0, uld_distillation_weight=1.0, uld_student_temperature=1.0,
                             uld_teacher_temperature=1.0, uld_skip_student_eos=False, uld_skip_teacher_eos=False,
                             use_extended_uld=False, uld_token_merge_strategy="observed",
                             uld_use_hybrid_loss=False)
    return ULDLoss(config)


def run_one(method: str, B: int, T: int, V_t: int, V_s: int, repeats: int) -> dict:
    from uld_explorer import uld_distance, uld_from_logits

    p, q = _inputs(B, T, V_t, V_s, logits=method.startswith("logits/"))
    gold = gold_loss() if method.endswith("/gold") else None
    if method.endswith("/gold") and gold is None:
        return {"method": method, "skipped": "trl is not installed: pip install -e '.[bench]'"}
    labels = torch.zeros(B, T, dtype=torch.long)
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
        if method == "probs/ours":
            loss = uld_distance(p, qq, validate=False).mean()
        elif method == "probs/gold":
            loss = gold_block(p, qq)
        elif method == "probs/straightforward":
            loss = straightforward(p, qq).mean()
        elif method == "logits/ours":
            loss = uld_from_logits(p, qq).mean()
        elif method == "logits/gold":
            loss = gold(qq, p, labels, labels, labels, labels)
        else:  # logits/straightforward
            loss = straightforward(torch.softmax(p, -1), torch.softmax(qq, -1)).mean()
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


def run_interleaved(B: int, T: int, V_t: int, V_s: int, n: int, seed: int = 0) -> dict:
    """ours on logits and ours on the same rows' probabilities, alternated ``n`` times in one
    process (drift of a shared machine hits both alike): the per-pair ratios."""
    from uld_explorer import uld_distance, uld_from_logits

    zt, zs = _inputs(B, T, V_t, V_s, seed, logits=True)
    p, q = zt.exp(), zs.exp()  # the same rows' probabilities

    def probs() -> float:
        qq = q.detach().requires_grad_()
        t0 = time.perf_counter()
        uld_distance(p, qq, validate=False).mean().backward()
        return time.perf_counter() - t0

    def logits() -> float:
        zz = zs.detach().requires_grad_()
        t0 = time.perf_counter()
        uld_from_logits(zt, zz).mean().backward()
        return time.perf_counter() - t0

    probs(), logits()  # warm-up
    ratios, tp, tl = [], [], []
    for i in range(n):
        a, b = (probs(), logits()) if i % 2 == 0 else tuple(reversed((logits(), probs())))
        tp.append(a)
        tl.append(b)
        ratios.append(b / a)
    return {"ratios": ratios, "probs": statistics.median(tp), "logits": statistics.median(tl)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--B", type=int, default=2)
    ap.add_argument("--T", type=int, default=128)
    ap.add_argument("--V-t", type=int, default=151_936)
    ap.add_argument("--V-s", type=int, default=49_152)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--interleave", type=int, default=15,
                    help="alternations of ours on logits and on probabilities in one process (0: skip)")
    ap.add_argument("--one", choices=(*METHODS, "interleaved"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one == "interleaved":
        print(json.dumps(run_interleaved(a.B, a.T, a.V_t, a.V_s, a.interleave)))
        return
    if a.one:
        print(json.dumps(run_one(a.one, a.B, a.T, a.V_t, a.V_s, a.repeats)))
        return

    rows = {}
    for m in METHODS:
        cmd = [sys.executable, __file__, "--one", m, "--B", str(a.B), "--T", str(a.T),
               "--V-t", str(a.V_t), "--V-s", str(a.V_s), "--repeats", str(a.repeats)]
        rows[m] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    ran = {m: r for m, r in rows.items() if "skipped" not in r}
    for kind in (PROBS, LOGITS):  # the same number from every method of an input kind, before any timing is read
        values = [ran[m]["value"] for m in kind if m in ran]
        assert max(values) - min(values) <= 1e-5 * max(values), {m: ran[m]["value"] for m in kind if m in ran}

    floor = ran["floor_torch_sort"]["seconds"]
    inputs = ran["probs/ours"]["input_bytes"]
    import importlib.metadata as md

    try:
        trl = f"trl {md.version('trl')}"
    except md.PackageNotFoundError:
        trl = "trl not installed"
    print(f"# ULD fwd+bwd w.r.t. the student, (B,T)=({a.B},{a.T}), V_t={a.V_t:,}, V_s={a.V_s:,}, float32, "
          f"median of {a.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads, {trl}, "
          f"{platform.processor() or platform.machine()}")
    print(f"# inputs: {inputs / 2**20:.0f} MiB; every method of an input kind gave the same value (rel 1e-5)")
    print("| input | method | seconds | x ours (same input) | x floor (torch.sort) | peak extra memory / inputs |")
    print("|---|---|---:|---:|---:|---:|")
    for m in METHODS:
        r = rows[m]
        kind, _, name = m.partition("/") if "/" in m else ("-", "", m)
        if "skipped" in r:
            print(f"| {kind} | {name} | skipped: {r['skipped']} | | | |")
            continue
        ours = ran.get(f"{kind}/ours", {}).get("seconds")
        rel = f"{r['seconds'] / ours:.2f}" if ours else "-"
        print(f"| {kind} | {name} | {r['seconds']:.3f} | {rel} | {r['seconds'] / floor:.2f} | "
              f"{r['peak_extra_bytes'] / inputs:.2f} |")
    lp = ran["logits/ours"]["seconds"] / ran["probs/ours"]["seconds"]
    print(f"\nours: logits / probabilities = {lp:.2f}x (goal <= 1.3), each in its own process")
    if a.interleave:
        cmd = [sys.executable, __file__, "--one", "interleaved", "--B", str(a.B), "--T", str(a.T),
               "--V-t", str(a.V_t), "--V-s", str(a.V_s), "--interleave", str(a.interleave)]
        il = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        r = np.array(il["ratios"])
        boot = np.median(np.random.default_rng(0).choice(r, (2000, r.size)), axis=1)  # the median's bootstrap
        print(f"ours: logits / probabilities interleaved in one process, {r.size} alternations: median "
              f"{np.median(r):.2f}x (95% bootstrap interval {np.quantile(boot, 0.025):.2f}-"
              f"{np.quantile(boot, 0.975):.2f}; range {r.min():.2f}-{r.max():.2f}); medians {il['logits']:.3f} s "
              f"vs {il['probs']:.3f} s")
    for kind in ("probs", "logits"):
        if f"{kind}/gold" in ran:
            print(f"{kind}: GOLD / ours = {ran[f'{kind}/gold']['seconds'] / ran[f'{kind}/ours']['seconds']:.1f}x "
                  + ("(goal >= 4)" if kind == "logits" else ""))
        print(f"{kind}: straightforward / ours = "
              f"{ran[f'{kind}/straightforward']['seconds'] / ran[f'{kind}/ours']['seconds']:.1f}x")
    print(f"ours vs NumPy value-only sort floor: {ran['probs/ours']['seconds'] / ran['floor_numpy_sort']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
