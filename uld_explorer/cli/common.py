"""What every command shares: the help formatter, strict JSON output, usage errors, number cells.

Importable without torch, POT or transformers (``uld-explorer --help`` builds every parser).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..jsonsafe import dumps

__all__ = ["Formatter", "UsageError", "fmt", "human_bytes", "print_json", "table_lines"]


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every default and keeps the descriptions' line breaks."""


class UsageError(ValueError):
    """A bad option value: one ``error:`` line, exit 2, before anything heavy is loaded."""


def print_json(doc: Any) -> None:
    """Strict JSON (:func:`~uld_explorer.jsonsafe.dumps`); non-ASCII kept as is where stdout can
    encode it, else escaped (``\\uXXXX``)."""
    text = dumps(doc, indent=2)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = dumps(doc, indent=2, ensure_ascii=True)
    print(text)


def fmt(v: float | None, width: int = 7, digits: int = 4) -> str:
    """A number right-aligned in ``width`` characters: ``-`` for None, ``nan``, ``inf``."""
    if v is None:
        return "-".rjust(width)
    if v != v:  # NaN
        return "nan".rjust(width)
    if v in (math.inf, -math.inf):
        return ("inf" if v > 0 else "-inf").rjust(width)
    return f"{v:.{digits}f}".rjust(width)


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def table_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of cells (the first row the header) as left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
