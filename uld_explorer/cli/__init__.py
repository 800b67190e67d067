"""The ``uld-explorer`` command line: parse -> a library config -> the library -> print.

One module per command group, each with an ``add_parser(sub)``:

- :mod:`.app` -- ``app``, serve the Streamlit app;
- :mod:`.playground` -- ``playground``, every measure of a synthetic pair;
- :mod:`.models`, :mod:`.tokenizers` -- the offline zoo: ``list``, ``fetch``, ``verify``;
- :mod:`.compare` -- ``compare``, a teacher and a student on a text, position by position;
- :mod:`.distill` -- ``distill``, ``answers``; :mod:`.runs` -- ``runs list``.

A command's options are its config dataclass's fields (:mod:`.flags` generates them: help,
defaults and the choices of the library's registries), so ``--help`` and the library never
disagree. Everything here imports without torch, POT or transformers: ``uld-explorer --help``
answers at once; a command loads them only when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..memory import is_out_of_memory
from . import app, compare, distill, models, playground, runs, tokenizers
from .common import Formatter

__all__ = ["build_parser", "main"]

#: The command groups, in ``--help``'s order.
COMMANDS = (app, playground, models, tokenizers, compare, distill, runs)


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: one subcommand (group) per module of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="uld-explorer", formatter_class=Formatter,
        description="KL vs exact optimal transport vs the ULD closed form, teacher first, student second.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or out of memory, 130 interrupted,
    141 closed pipe)."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal shows 'caf\xe9', never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        try:
            code = int(args.func(args) or 0)
        except (ValueError, TypeError) as err:  # bad input: one line, no traceback
            print(f"error: {err}", file=sys.stderr)
            code = 2
        except (MemoryError, RuntimeError) as err:
            if not is_out_of_memory(err):
                raise
            knobs = getattr(args, "memory_knobs", "the sizes of the inputs")
            print(f"error: out of memory while running `{args.command}` ({type(err).__name__}: "
                  f"{str(err)[:200] or 'no detail'}); lower {knobs}", file=sys.stderr)
            code = 2
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`... | head -1`): stop quietly, as Unix tools do on SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
