"""``uld-explorer runs list``: every distillation run directory, summarised."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import Formatter, UsageError, fmt, print_json

__all__ = ["add_parser"]


def list_(args: argparse.Namespace) -> int:
    from ..distill.runs import RUNS_ENV, default_runs_dir, list_runs

    if args.runs_dir and os.path.exists(args.runs_dir) and not os.path.isdir(args.runs_dir):
        raise UsageError(f"--runs-dir {args.runs_dir} is not a folder: give the folder that holds the run "
                         f"directories (default: ${RUNS_ENV} or ./runs)")
    runs = list_runs(args.runs_dir)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir or default_runs_dir()} (start one: uld-explorer distill --preset cpu-demo)")
        return 0
    print(f"{'run':34} {'loss':7} {'state':9} {'step':>11} {'loss':>8} {'eval CE':>8} {'eval ULD':>8} {'top-1':>6}")
    for r in runs:
        d = r.to_dict()
        print(f"{r.name[:34]:34} {r.loss:7} {r.state:9} {f'{r.step}/{r.max_steps}':>11} {fmt(d['loss_value'], 8)} "
              f"{fmt(d['eval_ce'], 8)} {fmt(d['eval_uld'], 8)} "
              f"{'' if d['eval_top1'] is None else format(d['eval_top1'], '.1%'):>6}")
    for r in runs:  # a stale run: why (its trainer is gone, or its pid is another process's now)
        if r.state == "stale":
            print(f"{r.name}: stale: {r.message}")
        elif r.damage:  # lines of its metrics.jsonl left out (not JSON, or cut when its trainer died)
            print(f"{r.name}: {r.damage}")
    return 0



def add_parser(sub: Any) -> None:
    runs = sub.add_parser("runs", help="distillation runs: list them", formatter_class=Formatter)
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="every run directory: state, step, loss, held-out metrics", formatter_class=Formatter)
    rl.add_argument("--runs-dir", default=None, help="default: $ULD_EXPLORER_RUNS or ./runs")
    rl.add_argument("--json", action="store_true", help="one JSON array")
    rl.set_defaults(func=list_)
