"""``uld-explorer distill`` and ``uld-explorer answers``: train a student, make the teacher's data.

The ``distill`` flags are :class:`~uld_explorer.distill.config.DistillConfig`'s fields, generated
by :mod:`.flags`; a preset fills what the flags leave out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..distill.config import PRESETS, DistillConfig
from ..zoo.registry import DEFAULT_TEACHER
from .common import Formatter, print_json
from .flags import add_config_flags, config_from_args

__all__ = ["add_parser"]

#: What to turn down when the command runs out of memory.
MEMORY_KNOBS = "--batch-size or the student's size (--student-hidden, --student-layers)"


def run(args: argparse.Namespace) -> int:
    from ..distill.loop import DistillError, train
    from ..distill.runs import default_runs_dir, new_run_name

    run_dir = None
    try:
        from ..distill.config import preset

        config = config_from_args(DistillConfig, args, start=preset(args.preset))
        if args.run_dir:
            run_dir = args.run_dir
        elif args.resume:
            raise ValueError("--resume needs --run-dir DIR (the run to continue; `uld-explorer runs list` shows them)")
        else:
            runs = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
            run_dir = os.path.join(runs, new_run_name(config.loss, runs))
        if args.resume and getattr(args, "max_steps", None) is None:  # continue to the run's own length
            saved = json.loads(open(os.path.join(run_dir, "config.json"), encoding="utf-8").read()) \
                if os.path.isfile(os.path.join(run_dir, "config.json")) else None
            if saved:
                config = config.replace(max_steps=int(saved["config"]["max_steps"]))
        print(f"run directory: {run_dir}", file=sys.stderr)
        last = train(config, run_dir, resume=args.resume, preset=args.preset, progress=not args.no_progress)
    except DistillError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C while loading, or a second one: the checkpoint before it stands
        from ..distill.runs import latest_checkpoint

        ckpt = latest_checkpoint(run_dir) if run_dir and os.path.isfile(os.path.join(run_dir, "config.json")) else None
        print("interrupted; " + (f"continue from {ckpt.name} with: uld-explorer distill --resume --run-dir {run_dir}"
                                 if ckpt else "no checkpoint was written yet: start the run again"), file=sys.stderr)
        return 130
    if args.json:
        print_json(last)
    else:
        ev = "" if last.get("eval_top1") is None else (
            f", held-out CE {last['eval_ce']:.3f}, ULD {last['eval_uld']:.3f}, top-1 {last['eval_top1']:.1%}")
        print(f"{last['state']} at step {last['step']}: loss {last['loss']:.4f}{ev}; checkpoint {last['checkpoint']}")
        if last["state"] == "stopped":
            print(f"continue it with: uld-explorer distill --resume --run-dir {run_dir}")
    return 130 if last["state"] == "stopped" else 0


def answers(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..distill.data import answers_filename, generate_answers, load_prompts, write_answers
    from ..zoo.cache import cache_dir
    from ..zoo.loader import load

    loaded = load(args.teacher)
    prompts = load_prompts()
    with tqdm(total=len(prompts), desc=f"teacher answers ({loaded.name})", unit="prompt") as bar:
        answers = generate_answers(loaded, prompts, args.max_new_tokens, batch_size=args.batch_size,
                                   progress=lambda d, n: bar.update(d - bar.n))
    out = args.out or os.path.join(cache_dir(), "distill", "answers")
    path = write_answers(Path(out) / answers_filename(args.teacher, args.max_new_tokens),
                         answers, args.teacher, args.max_new_tokens)
    print(f"{len(answers)} answers of {len(prompts)} prompts -> {path}")
    return 0



def add_parser(sub: Any) -> None:
    dd = DistillConfig()
    ds = sub.add_parser(
        "distill", formatter_class=Formatter,
        help="train a student on the teacher's answers (CE, ULD, CE + ULD, KL, hybrid); writes a run directory",
        description="Distill a teacher into a student and write a run directory (config.json, metrics.jsonl, "
                    "probe.jsonl, safetensors checkpoints) that the app's Distillation page shows live.\n\n"
                    + "\n".join(f"preset {k}: {', '.join(f'{a}={b}' for a, b in v.items())}" for k, v in PRESETS.items()),
    )
    ds.add_argument("--preset", choices=list(PRESETS), default="cpu-demo", help="starting point; flags override it")
    ds.add_argument("--run-dir", default=None, help="the run directory (none: <runs dir>/<loss>-<date>-<time>)")
    ds.add_argument("--runs-dir", default=None, help="where new runs go when --run-dir is not given "
                                                     "(none: $ULD_EXPLORER_RUNS or ./runs)")
    ds.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    add_config_flags(ds, DistillConfig, defaults="suppress", default_note="the preset's")
    ds.add_argument("--lam", dest="uld_weight", type=float, default=argparse.SUPPRESS, help="alias of --uld-weight")
    ds.add_argument("--json", action="store_true", help="print the last metrics line as JSON")
    ds.add_argument("--no-progress", action="store_true", help="no progress bar")
    ds.set_defaults(func=run, memory_knobs=MEMORY_KNOBS)

    an = sub.add_parser("answers", formatter_class=Formatter,
                        help="generate the teacher's greedy answers to the project's prompts (the distillation data)")
    an.add_argument("--teacher", default=DEFAULT_TEACHER, help="zoo name, model folder or hub id")
    an.add_argument("--max-new-tokens", type=int, default=dd.max_new_tokens, help="new tokens per answer at most")
    an.add_argument("--batch-size", type=int, default=16, help="prompts generated together")
    an.add_argument("--out", default=None, help="directory for the answers file (default: the cache; the shipped "
                                                "default-teacher file lives in uld_explorer/distill/data/answers)")
    an.set_defaults(func=answers)
