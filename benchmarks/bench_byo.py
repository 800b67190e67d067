"""Your own data on 2 cores: the teacher's answer generation rate and a training step on it.

A JSON-lines file of ``--prompts`` of the project's prompts (as conversations, the shape users
bring) is written to a temporary folder; then, measured in one process:

1. the teacher (the default, Qwen2.5-Coder-0.5B-Instruct) answers every prompt, greedy, at most
   ``--max-new-tokens`` new tokens, in batches of 16 (``generate_answers``: what
   ``distill --data`` runs once per file): prompts/s and new tokens/s;
2. ``--steps`` steps of the cpu-demo preset on those answers (``--data``; the answers read back
   from the cache written in 1., the teacher cache built once): median step time.

    python benchmarks/bench_byo.py
    python benchmarks/bench_byo.py --prompts 32 --max-new-tokens 64 --steps 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from machine import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()

    import uld_explorer as ux
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.data import answers_filename, generate_answers, load_prompts, write_answers
    from uld_explorer.distill.loop import train
    from uld_explorer.zoo.cache import cache_dir

    teacher = ux.DEFAULT_TEACHER
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mine.jsonl"
        with open(data, "w", encoding="utf-8") as f:
            for p in load_prompts(args.prompts):
                f.write(json.dumps({"id": p.id, "messages": [{"role": "user", "content": p.prompt}]}) + "\n")
        loaded = ux.load_model(teacher, progress=False)
        prompts = load_prompts(data=str(data))
        t0 = time.perf_counter()
        answers = generate_answers(loaded, prompts, args.max_new_tokens)
        gen = time.perf_counter() - t0
        new_tokens = sum(len(loaded.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers.values())
        cached = cache_dir() / "distill" / "answers" / answers_filename(teacher, args.max_new_tokens, str(data))
        write_answers(cached, answers, teacher, args.max_new_tokens, data=str(data))
        try:
            cfg = preset("cpu-demo", data=str(data), max_new_tokens=args.max_new_tokens, eval_prompts=8,
                         max_steps=args.steps, eval_every=10_000, checkpoint_every=10_000)
            t0 = time.perf_counter()
            train(cfg, Path(tmp) / "run", progress=False)
            whole = time.perf_counter() - t0
            lines = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
            steps = [m["step_s"] for m in lines if m.get("step_s")]
        finally:
            cached.unlink(missing_ok=True)
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"python {platform.python_version()}")
    print(f"your data: {args.prompts} prompts (conversations), teacher {teacher}, greedy, <= {args.max_new_tokens} "
          f"new tokens, batches of 16")
    print(f"1. teacher answers: {gen:.1f} s for {len(answers)} answers, {new_tokens:,} new tokens: "
          f"{len(answers) / gen:.2f} prompts/s, {new_tokens / gen:.1f} new tokens/s")
    print(f"2. cpu-demo on them ({args.prompts - 8} training, 8 held out, batch 8): {len(steps)} steps, median "
          f"step {statistics.median(steps):.3f} s; the whole run {whole:.1f} s (teacher cache, student, "
          f"evaluations at the start and the end included)")


if __name__ == "__main__":
    main()
