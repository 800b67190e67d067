"""Real models, one text: load time from the converted cache and the per-position table.

Default pair of the zoo (teacher Qwen2.5-Coder-0.5B-Instruct, student SmolLM2-135M-Instruct), a
text of exactly 128 teacher tokens (English with a few accented words). Every measurement runs
in a FRESH Python process, so imports count and nothing is cached between them:

- load: ``import uld_explorer`` (torch, transformers, POT ...) and ``zoo.load(name)`` timed
  apart, one process per model;
- table: ``compare_text`` (two forward passes, the vocab keys of the pair matched once, all
  divergences of every row and of the next-token row: KL on shared strings, ULD, n*W1
  value-space OT, the hybrid ULD, token-space OT with string cost at top-500 and edit cost at
  top-100) for the positional alignment, then ``compare_distributions`` on the same distributions
  for the byte-offset alignment with both merges, and one ``check_distribution`` pass over all
  rows (what validating costs); the best of ``--repeat`` warm runs is reported next to the cold one;
- peak RSS of each process (``ru_maxrss``).

    python benchmarks/bench_compare.py                 # 2 threads, as on the 2-core CI machine
    python benchmarks/bench_compare.py --threads 4 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

PARAGRAPH = (
    "Knowledge distillation trains a small student model to imitate a larger teacher. When both "
    "models share a tokenizer, the student can match the teacher's next-token distribution with a "
    "KL divergence. With different tokenizers the vocabularies differ, so the Universal Logit "
    "Distillation loss sorts both probability vectors and compares them rank by rank. The café "
    "down the street serves a crème brûlée that even a naïve critic would praise. Optimal transport "
    "gives the same number in one dimension, and a richer one when the cost sees token strings. "
)


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_load(name: str, threads: int) -> dict:
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    import transformers  # noqa: F401

    from uld_explorer import zoo

    t1 = time.perf_counter()
    lm = zoo.load(name, progress=False)
    t2 = time.perf_counter()
    return {"name": name, "import_s": t1 - t0, "load_s": t2 - t1, "params": sum(p.numel() for p in lm.model.parameters()),
            "rss_mb": _rss_mb()}


def child_table(n_tokens: int, threads: int, repeat: int) -> dict:
    import warnings

    import torch

    torch.set_num_threads(threads)
    from uld_explorer import check_distribution, zoo
    from uld_explorer.compare import compare_distributions, compare_text, next_token_distributions
    from uld_explorer.text import tokenize_with_offsets

    teacher = zoo.load(zoo.DEFAULT_TEACHER, progress=False)
    student = zoo.load(zoo.DEFAULT_STUDENT, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = tokenize_with_offsets(teacher.tokenizer, PARAGRAPH * 4, max_tokens=n_tokens).text
    rss_loaded = _rss_mb()

    t0 = time.perf_counter()
    table = compare_text(teacher, student, text, alignment="positional")
    cold_total = time.perf_counter() - t0
    cold = dict(table.timings)
    t_tok, t_dist = next_token_distributions(teacher, text)
    s_tok, s_dist = next_token_distributions(student, text)
    best: dict[str, float] = {}
    for _ in range(repeat):
        for key, fn in (
            ("forward_teacher", lambda: next_token_distributions(teacher, text)),
            ("forward_student", lambda: next_token_distributions(student, text)),
            ("positional", lambda: compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist,
                                                         alignment="positional")),
            ("byte-offset", lambda: compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist,
                                                          alignment="byte-offset")),
            ("byte-offset-bayesian", lambda: compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist,
                                                                   alignment="byte-offset", merge="bayesian")),
            # what validating every row of both sides once costs (the table does it once per side)
            ("validation-pass", lambda: (check_distribution(t_dist[t_tok.first_predicted:]),
                                         check_distribution(s_dist[s_tok.first_predicted:]))),
        ):
            s = time.perf_counter()
            out = fn()
            best[key] = min(best.get(key, float("inf")), time.perf_counter() - s)
            if key == "byte-offset":
                n_groups = len(out)
                best["vocab"] = min(best.get("vocab", float("inf")), out.timings["vocab"])
        s = time.perf_counter()
        compare_text(teacher, student, text, alignment="positional")
        best["compare_text"] = min(best.get("compare_text", float("inf")), time.perf_counter() - s)
    return {
        "T_t": len(t_tok), "T_s": len(s_tok), "positional_rows": len(table), "byte_offset_rows": n_groups,
        "cold_total_s": cold_total, "cold": cold, "best": best, "rss_loaded_mb": rss_loaded, "rss_peak_mb": _rss_mb(),
    }


def _run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the CI machine has 2 cores)")
    ap.add_argument("--tokens", type=int, default=128, help="text length in teacher tokens")
    ap.add_argument("--repeat", type=int, default=3, help="warm repetitions (best reported)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        if a.child[0] == "load":
            res = child_load(a.child[1], a.threads)
        else:
            res = child_table(a.tokens, a.threads, a.repeat)
        print(json.dumps(res))
        return

    from uld_explorer import zoo

    loads = [_run_child(["--threads", str(a.threads), "--child", "load", nm])
             for nm in (zoo.DEFAULT_TEACHER, zoo.DEFAULT_STUDENT)]
    tab = _run_child(["--threads", str(a.threads), "--tokens", str(a.tokens), "--repeat", str(a.repeat),
                      "--child", "table"])
    print(f"# compare benchmark: {platform.processor() or platform.machine()}, torch threads {a.threads}, "
          f"Python {platform.python_version()}\n")
    print("## load from the converted cache (fresh process per model)\n")
    print("| model | params | import (s) | weights + tokenizer load (s) | total (s) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in loads:
        print(f"| {r['name']} | {r['params'] / 1e6:.0f}M | {r['import_s']:.2f} | {r['load_s']:.2f} | "
              f"{r['import_s'] + r['load_s']:.2f} | {r['rss_mb']:.0f} |")
    b, c = tab["best"], tab["cold"]
    print(f"\n## per-position table, {tab['T_t']} teacher / {tab['T_s']} student tokens "
          f"({tab['positional_rows']} positional rows, {tab['byte_offset_rows']} byte-offset groups)\n")
    print("| step | cold, first call (s) | warm, best of %d (s) |" % a.repeat)
    print("|---|---:|---:|")
    print(f"| teacher forward + softmax | {c['forward_teacher']:.2f} | {b['forward_teacher']:.2f} |")
    print(f"| student forward + softmax | {c['forward_student']:.2f} | {b['forward_student']:.2f} |")
    print(f"| vocab strings + shared-string map of the pair (once per pair, cached) | {c['vocab']:.2f} | {b['vocab']:.2f} |")
    print(f"| all divergences, positional | {c['divergences']:.2f} | {b['positional']:.2f} |")
    print(f"| all divergences, byte-offset, observed merge (same distributions) | - | {b['byte-offset']:.2f} |")
    print(f"| all divergences, byte-offset, bayesian merge (same distributions) | - | {b['byte-offset-bayesian']:.2f} |")
    print(f"| one validation pass over every row of both sides (the table makes one) | - | {b['validation-pass']:.3f} |")
    print(f"| **compare_text, positional, end to end** | **{tab['cold_total_s']:.2f}** | **{b['compare_text']:.2f}** |")
    print(f"\npeak RSS of the table process (both models loaded): {tab['rss_peak_mb']:.0f} MB "
          f"(after loading, before any table: {tab['rss_loaded_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
