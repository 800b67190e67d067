"""Exact token-space OT (POT network simplex) at top-k = 250 .. 2000: seconds per position.

Teacher and student are peaked distributions over two synthetic vocabularies of word-like
strings that share about half of their strings. Cost building (string identity, normalized edit
distance) and the exact solve are timed separately, side by side in one run.

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

from uld_explorer import edit_distance_cost, string_identity_cost, token_space_ot_top_k, top_k_with_rest


def vocabularies(V_t: int, V_s: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=rng.integers(1, 9))) for _ in range(V_t + V_s)]
    words = list(dict.fromkeys(words))  # unique
    shared = words[: min(V_t, V_s) // 2]
    teacher = shared + words[len(shared) : len(shared) + V_t - len(shared)]
    student = shared + words[V_t : V_t + V_s - len(shared)]
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
    print("| k | string cost build (s) | string OT total (s/position) | edit cost build (s) | edit OT total (s/position) | truncated mass (t/s) |")
    print("|---|---|---|---|---|---|")
    for k in a.ks:
        build = {"string": [], "edit": []}
        total = {"string": [], "edit": []}
        mass = []
        for p, q in pairs:
            tp, tq = top_k_with_rest(p, k), top_k_with_rest(q, k)
            tt, ts = [teacher[i] for i in tp.index], [student[j] for j in tq.index]
            for name, fn in (("string", string_identity_cost), ("edit", edit_distance_cost)):
                t0 = time.perf_counter()
                fn(tt, ts)
                build[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                r = token_space_ot_top_k(p, q, teacher, student, k=k, cost=name)
                total[name].append(time.perf_counter() - t0)
            mass.append((r.teacher_truncated_mass, r.student_truncated_mass))
        med = statistics.median
        m = np.mean(mass, axis=0)
        print(f"| {k} | {med(build['string']):.3f} | {med(total['string']):.3f} | {med(build['edit']):.3f} | "
              f"{med(total['edit']):.3f} | {m[0]:.3f} / {m[1]:.3f} |")


if __name__ == "__main__":
    main()
