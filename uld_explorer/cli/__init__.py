"""The ``uld-explorer`` command line: parse -> a library config -> the library -> print.

One module per command group, each with an ``add_parser(sub)``:

- :mod:`.app` -- ``app``, serve the Streamlit app;
- :mod:`.playground` -- ``playground``, every measure of a synthetic pair;
- :mod:`.models`, :mod:`.tokenizers` -- the offline zoo: ``list``, ``fetch``, ``verify``;
- :mod:`.compare` -- ``compare``, a teacher and a student on a text, position by position;
- :mod:`.audit` -- ``audit``, check a pair and a dataset before training (exit 1 on an error);
- :mod:`.distill` -- ``distill``, ``answers``; :mod:`.runs` -- ``runs list``;
- :mod:`.experiment` -- ``experiment``, losses x seeds -> a table with bootstrap intervals.

A command's options are its config dataclass's fields (:mod:`.flags` generates them: help,
defaults and the choices of the library's registries), so ``--help`` and the library never
disagree. Everything here imports without torch, POT or transformers: ``uld-explorer --help``
answers at once; a command loads them only when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ExplorerError
from ..memory import is_out_of_memory
from . import app, audit, compare, distill, experiment, models, playground, runs, tokenizers
from .common import Formatter

__all__ = ["build_parser", "main"]

#: Set to 1 for tracebacks instead of one-line errors (the same as ``--debug``).
DEBUG_ENV = "ULD_EXPLORER_DEBUG"
#: The command groups, in ``--help``'s order.
COMMANDS = (app, playground, models, tokenizers, compare, audit, distill, experiment, runs)


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: one subcommand (group) per module of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="uld-explorer", formatter_class=Formatter,
        description="KL vs exact optimal transport vs the ULD closed form, teacher first, student second.",
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of a failure (also: ${DEBUG_ENV}=1); without it every "
                             f"failure is one 'error:' line")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _fail(args: argparse.Namespace | None, err: BaseException) -> int:
    """One ``error:`` line for a failure and its exit code (see :func:`main`)."""
    command = getattr(args, "command", None) or "uld-explorer"
    if isinstance(err, KeyboardInterrupt):  # the command may say what it leaves behind
        hint = getattr(args, "interrupt_hint", "")
        print(f"interrupted: `{command}` stopped (Ctrl-C){'; ' + hint if hint else ''}", file=sys.stderr)
        return 130
    if isinstance(err, (ValueError, TypeError, ExplorerError)):  # bad input or a fault the message explains
        print(f"error: {err}", file=sys.stderr)
        return 2
    if is_out_of_memory(err):
        knobs = getattr(args, "memory_knobs", "the sizes of the inputs")
        print(f"error: out of memory while running `{command}` ({type(err).__name__}: "
              f"{str(err)[:200] or 'no detail'}); lower {knobs}", file=sys.stderr)
        return 2
    if isinstance(err, OSError):  # a file or folder that cannot be read or written: name it
        where = f" {err.filename!s}" if err.filename else ""
        also = f" -> {err.filename2!s}" if getattr(err, "filename2", None) else ""
        print(f"error: cannot use{where}{also}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"error: unexpected {type(err).__name__} in `{command}`: {str(err)[:300]} (a bug: rerun with "
          f"--debug for the traceback and report it)", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code: 0 ok, 2 bad input or a fault the message explains
    (a library error, a file that cannot be used, out of memory), 130 interrupted (Ctrl-C), 141
    closed pipe, 1 an unexpected error (a bug). Every failure is one line on stderr; ``--debug``
    (or ``$ULD_EXPLORER_DEBUG=1``) shows the traceback instead."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal shows 'caf\xe9', never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = None
    try:
        try:
            args = build_parser().parse_args(argv)
            code = int(args.func(args) or 0)
        except BrokenPipeError:
            raise
        except (Exception, KeyboardInterrupt) as err:
            if (args is not None and args.debug) or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            code = _fail(args, err)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`... | head -1`): stop quietly, as Unix tools do on SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
