"""Exact token-space OT (POT network simplex) at top-k = 250 .. 2000: seconds per position.

Teacher and student are peaked distributions over two synthetic vocabularies of word-like
strings that share about half of their strings. Per position, side by side in one run: the
string-identity cost solved in closed form (the default) and by POT's network simplex, and the
normalized edit-distance cost by POT (with its cost-matrix build time shown apart).

    python benchmarks/bench_token_ot.py
    python benchmarks/bench_token_ot.py --ks 250 500 --positions 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from uld_explorer import edit_distance_cost, token_space_ot_top_k, top_k_with_rest


def vocabularies(V_t: int, V_s: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Two vocabularies of unique word-like strings sharing min(V_t, V_s) // 2 strings."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: dict[str, None] = {}
    while len(words) < V_t + V_s:
        words["".join(rng.choice(letters, size=rng.integers(2, 10)))] = None
    pool = list(words)
    n_shared = min(V_t, V_s) // 2
    teacher = pool[:V_t]
    student = pool[:n_shared] + pool[V_t : V_t + V_s - n_shared]
    rng.shuffle(teacher)
    rng.shuffle(student)
    return teacher, student


def peaked(V: int, rng: np.random.Generator) -> np.ndarray:
    z = rng.normal(0, 3, size=V)
    e = np.exp(z - z.max())
    return e / e.sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[250, 500, 1000, 2000])
    ap.add_argument("--positions", type=int, default=5, help="positions (random pairs) per k")
    ap.add_argument("--V-t", type=int, default=20_000)
    ap.add_argument("--V-s", type=int, default=16_000)
    a = ap.parse_args()
    teacher, student = vocabularies(a.V_t, a.V_s)
    rng = np.random.default_rng(1)
    pairs = [(peaked(len(teacher), rng), peaked(len(student), rng)) for _ in range(a.positions)]

    print(f"# exact token-space OT, top-k + rest bucket, V_t={len(teacher):,}, V_s={len(student):,}, "
          f"median over {a.positions} positions; {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}")
    print("| k | string cost, closed form (s) | string cost, POT (s) | edit cost, POT (s) | of which edit cost build (s) | truncated mass t / s |")
    print("|---|---|---|---|---|---|")
    med = statistics.median
    for k in a.ks:
        times: dict[str, list[float]] = {"closed": [], "pot": [], "edit": [], "edit_build": []}
        mass = []
        for p, q in pairs:
            for name, kwargs in (("closed", {"cost": "string"}), ("pot", {"cost": "string", "solver": "pot"}),
                                 ("edit", {"cost": "edit"})):
                t0 = time.perf_counter()
                r = token_space_ot_top_k(p, q, teacher, student, k=k, **kwargs)
                times[name].append(time.perf_counter() - t0)
            tp, tq = top_k_with_rest(p, k), top_k_with_rest(q, k)
            t0 = time.perf_counter()
            edit_distance_cost([teacher[i] for i in tp.index], [student[j] for j in tq.index])
            times["edit_build"].append(time.perf_counter() - t0)
            mass.append((r.teacher_truncated_mass, r.student_truncated_mass))
        m = np.mean(mass, axis=0)
        print(f"| {k} | {med(times['closed']):.4f} | {med(times['pot']):.3f} | {med(times['edit']):.3f} | "
              f"{med(times['edit_build']):.3f} | {m[0]:.3f} / {m[1]:.3f} |")

if __name__ == "__main__":
    main()
