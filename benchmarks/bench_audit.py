"""``uld-explorer audit``'s time on 2 cores: 100 examples of the project's data, the default pair.

Measured in one process, each stage once after a warm-up of the tokenizers (``--repeats`` runs of
the tokenizer checks, median):

- the tokenizer checks of 100 examples (tokenize both sides, template / BOS / EOS, the shift and
  mask on 8 examples' batch, group shapes and drift, token classes, shared strings);
- the model checks over ``--forward-examples`` examples (the CLI's default 32: a teacher and a
  student forward pass each, the budget per K), model loading included and apart;
- the whole audit as the CLI runs it, and the model checks over all 100 examples for reference.
Goal (issue 16): the audit of 100 examples <= 60 s.

    python benchmarks/bench_audit.py
    python benchmarks/bench_audit.py --forward-examples 32 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from machine import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--forward-examples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--all", action="store_true", help="also run the model checks over every example")
    args = ap.parse_args()

    import uld_explorer as ux
    from uld_explorer.audit import AuditConfig, run_audit

    t0 = time.perf_counter()
    run_audit(AuditConfig(examples=args.examples, models=False))  # cold: loads the tokenizers, the vocab keys
    cold = time.perf_counter() - t0
    tok = (ux.load_tokenizer(ux.DEFAULT_TEACHER, progress=False), ux.load_tokenizer(ux.DEFAULT_STUDENT, progress=False))
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run_audit(AuditConfig(examples=args.examples, models=False), tokenizers=tok)
        times.append(time.perf_counter() - t0)
    warm = statistics.median(times)
    t0 = time.perf_counter()
    models = tuple(ux.load_model(n, progress=False) for n in (ux.DEFAULT_TEACHER, ux.DEFAULT_STUDENT))
    load = time.perf_counter() - t0
    cfg = AuditConfig(examples=args.examples, forward_examples=args.forward_examples)
    r = run_audit(cfg, tokenizers=tok, models=models)
    fwd = r.seconds["models"]
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    print(f"default pair ({ux.DEFAULT_TEACHER} -> {ux.DEFAULT_STUDENT}), {args.examples} examples of the project data")
    print(f"tokenizer checks, cold (tokenizers loaded, vocab keys built): {cold:6.2f} s")
    print(f"tokenizer checks, warm (median of {args.repeats}):             {warm:6.2f} s")
    print(f"loading both models:                                     {load:6.2f} s")
    print(f"model checks over {args.forward_examples} examples:                         {fwd:6.2f} s "
          f"({fwd / args.forward_examples:.2f} s per example)")
    total = cold + load + fwd
    print(f"the audit as `uld-explorer audit` runs it (cold + load + model checks): {total:.1f} s "
          f"(goal <= 60 s: {'met' if total <= 60 else 'NOT met'})")
    if args.all:
        r = run_audit(AuditConfig(examples=args.examples, forward_examples=args.examples), tokenizers=tok, models=models)
        print(f"model checks over all {args.examples} examples: {r.seconds['models']:.1f} s; "
              f"whole audit {cold + load + r.seconds['models']:.1f} s")


if __name__ == "__main__":
    main()
