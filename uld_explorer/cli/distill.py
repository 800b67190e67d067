"""``uld-explorer distill`` and ``uld-explorer answers``: train a student, make the teacher's data.

The ``distill`` flags are :class:`~uld_explorer.distill.config.DistillConfig`'s fields, generated
by :mod:`.flags` (``--loss`` takes the keys of :data:`~uld_explorer.distill.losses.LOSSES`);
``--config FILE`` (a JSON file of those fields, or a run's own ``config.json``) and a preset fill
what the flags leave out, in that order. A background run from the app is started with
``--config <run>/launch.json``.
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
from .common import Formatter, UsageError, print_json
from .flags import add_config_flags, config_from_args

__all__ = ["add_parser"]

#: What to turn down when the command runs out of memory.
MEMORY_KNOBS = "--batch-size or the student's size (--student-hidden, --student-layers)"


def read_config_file(path: str) -> tuple[dict[str, Any], str | None]:
    """The DistillConfig fields of ``--config FILE`` and the preset it names (None if it names
    none): a JSON object of fields, or a record holding them under ``"config"`` with its
    ``"preset"`` (a run's ``config.json``, a launch's ``launch.json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except ValueError as err:
        raise UsageError(f"--config {path}: not a JSON file ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        return data["config"], data.get("preset")
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a JSON object of DistillConfig fields (e.g. "
                         f'{{"loss": "uld", "max_steps": 50}}) or a run\'s config.json')
    return data, None


def start_config(args: argparse.Namespace) -> tuple[DistillConfig, str | None]:
    """What the flags override, and the preset to record: the resumed run's own config with
    ``--resume``, else ``--preset`` (default: the ``--config`` file's, else cpu-demo); then the
    ``--config`` file's fields."""
    from ..distill.config import preset
    from ..distill.rundir import RunDir

    fields, file_preset = read_config_file(args.config) if args.config else ({}, None)
    if args.resume:
        if not args.run_dir:
            raise UsageError("--resume needs --run-dir DIR (the run to continue; `uld-explorer runs list` shows them)")
        start, name = RunDir(args.run_dir).resumed()
    else:
        name = getattr(args, "preset", None) or file_preset or "cpu-demo"
        start = preset(name)
    try:
        return start.replace(**fields), name
    except ValueError as err:
        raise UsageError(f"--config {args.config}: {err}") from None


def refuse_a_broken_setup(config: DistillConfig) -> None:
    """Your data first goes through the audit's tokenizer checks (``uld-explorer audit --data``):
    an error (chat markup in the data, a broken shift or mask, a missing BOS) stops the run before
    anything loads, each with its fix; warnings are printed and the run goes on."""
    from ..audit import AuditConfig, run_audit

    report = run_audit(AuditConfig(teacher=config.teacher, student=config.student, data=config.data,
                                   examples=max(config.prompts, 0) or 100_000, alignment=config.alignment,
                                   merge=config.merge, top_k=config.top_k, models=False))
    for f in report.findings:
        if f.level != "info":
            print(f.line(), file=sys.stderr)
    if report.exit_code(strict=False):
        raise UsageError(f"{report.count('error')} error(s) in the setup of {config.data} (the audit's lines above, "
                         f"each with its fix); `uld-explorer audit --data {config.data}` shows the whole report")


def run(args: argparse.Namespace) -> int:
    from ..distill.errors import DistillError
    from ..distill.loop import train
    from ..distill.rundir import RunDir
    from ..distill.runs import default_runs_dir, new_run_name

    run_dir = args.run_dir
    try:
        start, preset_name = start_config(args)
        config = config_from_args(DistillConfig, args, start=start)
        if run_dir is None:
            runs = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
            run_dir = os.path.join(runs, new_run_name(config.loss, runs))
        main = os.environ.get("RANK", "0") in ("", "0")  # under torchrun / accelerate launch: rank 0 speaks
        if main:
            print(f"run directory: {run_dir}", file=sys.stderr)
        if config.data and not args.resume:
            refuse_a_broken_setup(config)
        last = train(config, run_dir, resume=args.resume, force=args.force, preset=preset_name,
                     progress=not args.no_progress)
    except DistillError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C while loading, or a second one: the checkpoint before it stands
        ckpt = RunDir(run_dir).latest_checkpoint() if run_dir and RunDir(run_dir).record() else None
        print("interrupted; " + (f"continue from {ckpt.name} with: uld-explorer distill --resume --run-dir {run_dir}"
                                 if ckpt else "no checkpoint was written yet: start the run again"), file=sys.stderr)
        return 130
    if not main:
        return 130 if last["state"] == "stopped" else 0
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
    from ..errors import ExplorerError
    from ..zoo.cache import cache_dir
    from ..zoo.loader import load

    try:
        loaded = load(args.teacher)
    except (ExplorerError, ValueError) as err:
        raise UsageError(f"--teacher {args.teacher}: {err}") from None
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
    ds.add_argument("--preset", choices=list(PRESETS), default=argparse.SUPPRESS,
                    help="starting point; --config and flags override it (default: the --config file's, else cpu-demo)")
    ds.add_argument("--config", metavar="FILE", default=None,
                    help="a JSON file of the fields below (e.g. {\"loss\": \"uld\", \"max_steps\": 50}), or a "
                         "run's config.json to repeat that run; flags override it")
    ds.add_argument("--run-dir", default=None, help="the run directory (none: <runs dir>/<loss>-<date>-<time>)")
    ds.add_argument("--runs-dir", default=None, help="where new runs go when --run-dir is not given "
                                                     "(none: $ULD_EXPLORER_RUNS or ./runs)")
    ds.add_argument("--resume", action="store_true",
                    help="continue the run in --run-dir from its newest complete checkpoint")
    ds.add_argument("--force", action="store_true",
                    help="start a new run even in a folder holding files the runner did not write (a file named "
                         "like the run's own, e.g. metrics.jsonl, is replaced)")
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
