"""The Sinkhorn and MinED rows on the default real pair: seconds per position.

Teacher Qwen2.5-Coder-0.5B-Instruct (V_t 151,936), student SmolLM2-135M-Instruct (V_s 49,152),
their next-token distributions on one short text (positional rows). Per position, side by side:
the exact string-cost token OT (closed form), the entropic one (Sinkhorn, string cost) at top-k 50
and 500, and KL after the MinED mapping at top-k 500 (the first position searches the teacher's
top-500 spellings against the student's 49,152; later ones mostly hit the pair's cache).

    python benchmarks/bench_rows.py
    python benchmarks/bench_rows.py --epsilon 0.1 --text "Some other text."
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

import uld_explorer as ux
from uld_explorer.compare import next_token_distributions
from uld_explorer.text import mined_mapper, shared_strings_of


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default="The capital of France is Paris. It is also the largest city of the country.")
    ap.add_argument("--epsilon", type=float, default=0.05)
    ap.add_argument("--positions", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    teacher, student = ux.load_model(ux.DEFAULT_TEACHER), ux.load_model(ux.DEFAULT_STUDENT)
    _, p_all = next_token_distributions(teacher, a.text)
    _, q_all = next_token_distributions(student, a.text)
    m = min(len(p_all), len(q_all))
    p_all, q_all = np.asarray(p_all[:m], dtype=np.float64), np.asarray(q_all[:m], dtype=np.float64)
    ok = np.isfinite(p_all).all(-1) & np.isfinite(q_all).all(-1)  # a row without a context is NaN
    p_all, q_all = p_all[ok][: a.positions], q_all[ok][: a.positions]
    n = len(p_all)
    p_all /= p_all.sum(-1, keepdims=True)
    q_all /= q_all.sum(-1, keepdims=True)
    vocab = shared_strings_of(teacher.tokenizer, student.tokenizer, p_all.shape[1], q_all.shape[1])
    tk, sk = vocab.teacher_keys, vocab.student_keys
    print(f"# {teacher.name} -> {student.name}, {n} positions; {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}")

    t_build, mapper = timed(lambda: mined_mapper(vocab))
    rows = {"exact token OT, string, k=500 (closed form)": [], "exact token OT, string, k=50 (closed form)": [],
            f"Sinkhorn, string, k=50, eps={a.epsilon:g}": [], f"Sinkhorn, string, k=500, eps={a.epsilon:g}": [],
            "KL after MinED, k=500": []}
    iters = {50: [], 500: []}
    mined = []
    for i in range(n):
        p, q = p_all[i], q_all[i]
        for k in (500, 50):
            dt, _ = timed(lambda: ux.token_space_ot_top_k(p, q, tk, sk, k=k, validate=False, plan=False))
            rows[f"exact token OT, string, k={k} (closed form)"].append(dt)
            dt, r = timed(lambda: ux.token_space_sinkhorn_top_k(p, q, tk, sk, k=k, epsilon=a.epsilon, validate=False,
                                                                on_not_converged="nan"))
            rows[f"Sinkhorn, string, k={k}, eps={a.epsilon:g}"].append(dt)
            iters[k].append((r.iterations, r.converged))
        dt, r = timed(lambda: ux.mined_kl(p, q, k=500, mapper=mapper, validate=False))
        rows["KL after MinED, k=500"].append(dt)
        mined.append(r)
    print(f"MinED mapper build (exact twins of {len(tk):,} ids): {t_build:.2f} s")
    print("| row | first position (s) | median of the others (s) |")
    print("|---|---|---|")
    for name, ts in rows.items():
        print(f"| {name} | {ts[0]:.3f} | {statistics.median(ts[1:]):.3f} |")
    for k, its in iters.items():
        print(f"Sinkhorn k={k}: iterations {[i for i, _ in its]}, converged {sum(c for _, c in its)}/{len(its)}")
    print("MinED coverage per position (exact / approx / unmapped, mean byte edits): "
          + "; ".join(f"{r.exact_mass:.2f}/{r.approx_mass:.2f}/{r.unmapped_mass:.2f}, {r.mean_distance:.2f}"
                      for r in mined))


if __name__ == "__main__":
    main()
