"""The gradient lens's time per position for the default pair (V_t = 151,936, V_s = 49,152).

Real rows: the zoo's default teacher and student on a short text (every position of it), their
real string match. Times, median of ``--repeats``: the whole lens of one position as the app asks
for it (every loss, its top-N frame, its words), each loss alone, and the batched lens per row.
Goal: <= 0.3 s per position on 2 cores.

    python benchmarks/bench_lens.py
    python benchmarks/bench_lens.py --repeats 9 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from machine import cpu_name


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--text", default=" Paris. It is also the largest city of the country.")
    ap.add_argument("--prompt", default="The capital of France is")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import uld_explorer as ux
    from uld_explorer.lens import LENS_LOSSES, lens_frame, logit_gradients_from_probs, read_lens
    from uld_explorer.text import shared_strings_of

    teacher, student = (ux.load_model(n, progress=False) for n in (ux.DEFAULT_TEACHER, ux.DEFAULT_STUDENT))
    _, pt = ux.next_token_distributions(teacher, args.text, prompt=args.prompt)
    _, qs = ux.next_token_distributions(student, args.text, prompt=args.prompt)
    R = min(pt.shape[0], qs.shape[0])  # positional rows: enough for timing
    P, Q = pt[:R].astype(np.float64), qs[:R].astype(np.float64)
    P /= P.sum(-1, keepdims=True)
    Q /= Q.sum(-1, keepdims=True)
    shared = shared_strings_of(teacher.tokenizer, student.tokenizer, P.shape[1], Q.shape[1])
    match = shared.match
    p, q = P[0], Q[0]

    def page():  # what a page asks for one position
        lens = logit_gradients_from_probs(p, q, match=match)
        lens_frame(lens, top_n=10, student_tokens=shared.student_strings)
        read_lens(lens, 0, shared.student_strings, shared.teacher_strings)

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs visible, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    print(f"default pair: V_t = {P.shape[1]:,}, V_s = {Q.shape[1]:,}, shared strings {match.S:,}; "
          f"median of {args.repeats}")
    rows = [("one position, every loss + frame + words (the page)", median_time(page, args.repeats))]
    for k in ("ce", "kl_shared", "uld", "hybrid"):
        rows.append((f"one position, {LENS_LOSSES[k].label} alone",
                     median_time(lambda k=k: logit_gradients_from_probs(p, q, match=match, losses=[k]), args.repeats)))
    batched = median_time(lambda: logit_gradients_from_probs(P, Q, match=match), args.repeats)
    rows.append((f"batched, {R} positions, every loss: per position", batched / R))
    width = max(len(r[0]) for r in rows)
    for name, t in rows:
        print(f"  {name:<{width}}  {t * 1000:8.1f} ms")
    print(f"goal <= 300 ms per position: {'met' if rows[0][1] <= 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
