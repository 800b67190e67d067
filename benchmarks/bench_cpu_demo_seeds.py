"""Does the cpu-demo preset converge for every seed? Seeds 0-4 of ``--loss ce+uld`` (the preset's
default), each a whole run through ``train()`` on the same prepared data, one after the other:

    python benchmarks/bench_cpu_demo_seeds.py [--seeds 0 1 2 3 4] [--set lr=4e-3 --set max_steps=180]

For each seed: the run's own loss on the answers it trains on (``seen_loss``: the first
``eval_prompts`` training answers, the same set at every evaluation) at step 0 and at the end,
their ratio (the preset promises <= 0.5), the same for its CE and ULD parts, the held-out ULD, and
the wall time. The CI test (``tests/test_distill_loop.py::test_cpu_demo_converges``) runs one seed;
this script is the five-seed measurement behind docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--loss", default="ce+uld")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a preset field (repeatable), e.g. --set lr=4e-3")
    args = ap.parse_args()

    from uld_explorer.distill.config import PRESETS, preset
    from uld_explorer.distill.loop import train
    from uld_explorer.distill.prepare import prepare
    from uld_explorer.distill.runs import read_metrics

    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: _value(v) for k, v in overrides.items()}
    cfg = preset("cpu-demo", loss=args.loss, **overrides)
    print(f"cpu-demo {PRESETS['cpu-demo']} + loss={args.loss} {overrides or ''}; {torch.get_num_threads()} torch "
          f"threads; torch {torch.__version__}")
    prep = prepare(cfg, progress=False)
    rows = []
    print("| seed | seen loss: start -> end (ratio) | seen CE ratio | seen ULD ratio | held-out ULD ratio | wall |")
    print("|---:|---|---:|---:|---:|---:|")
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            train(cfg.replace(seed=seed), Path(d) / "run", prepared=prep, progress=False)
            wall = time.perf_counter() - t
            m = read_metrics(Path(d) / "run")
        first, last = m[0], m[-1]
        ratio = {k: last[k] / first[k] for k in ("seen_loss", "seen_ce", "seen_uld", "eval_uld")}
        rows.append(ratio)
        print(f"| {seed} | {first['seen_loss']:.3f} -> {last['seen_loss']:.3f} ({ratio['seen_loss']:.1%}) | "
              f"{ratio['seen_ce']:.1%} | {ratio['seen_uld']:.1%} | {ratio['eval_uld']:.1%} | {wall:.0f} s |", flush=True)
    worst = max(r["seen_loss"] for r in rows)
    print(f"\nworst seen-loss ratio {worst:.1%} (the preset promises <= 50%): "
          f"{'all seeds converge' if worst <= 0.5 else 'NOT every seed halves its loss'}")


if __name__ == "__main__":
    main()
