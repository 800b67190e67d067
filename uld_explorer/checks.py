"""The library's scalar argument checks, one place, importable without torch or NumPy.

Every public function and config validates its scalar arguments with these, so every message has
the same shape: the argument's name, what was expected (with the allowed range) and what came.
Python, NumPy and 0-d torch numbers are accepted; ``bool`` never counts as a number.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["MIN_EPSILON", "MIN_TEMPERATURE", "check_epsilon", "check_int", "check_real", "check_temperature",
           "check_text"]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")  # NumPy's bool too


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None, what: str = "an integer") -> int:
    """``value`` as an int in ``[lo, hi]``, else a ValueError naming ``name``.

    >>> check_int(3, "top_k", 1, 4999, "a positive integer")
    3
    >>> check_int(0, "top_k", 1, 4999, "a positive integer")
    Traceback (most recent call last):
    ...
    ValueError: top_k must be a positive integer between 1 and 4,999 (got 0)
    """
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be {what} (got {value!r} of type {type(value).__name__})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            bound = f"between {lo:,} and {hi:,}"
        elif lo is not None:
            bound = f">= {lo:,}"
        else:
            bound = f"<= {hi:,}"
        raise ValueError(f"{name} must be {what} {bound} (got {value!r})")
    return int(value)


def check_real(value: Any, name: str, what: str = "a finite number") -> float:
    """``value`` as a finite float (Python, NumPy or 0-d torch number), else a ValueError.

    >>> check_real(0.5, "noise")
    0.5
    """
    if _is_bool(value) or isinstance(value, (str, bytes)):
        t = math.nan
    else:
        try:
            t = float(value)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: a torch tensor of several values
            t = math.nan
    if not math.isfinite(t):
        raise ValueError(f"{name} must be {what} (got {value!r})")
    return t


#: The smallest temperature accepted: logits / T stays representable in float32 (``|z| / T <= ~1e9`` for
#: logits up to 1e3; far below it softmax(z / T) is already one-hot, and near 1e-38 it overflows to
#: inf and the distribution becomes NaN only after the models have run).
MIN_TEMPERATURE = 1e-6


def check_temperature(value: Any, name: str = "temperature") -> float:
    """``value`` as a float if it is a finite number >= :data:`MIN_TEMPERATURE`, else a ValueError
    naming ``name`` and the fix.

    >>> check_temperature(0.5, "teacher_temperature")
    0.5
    >>> check_temperature(1e-300, "student_temperature")
    Traceback (most recent call last):
    ...
    ValueError: student_temperature = 1e-300 is too small to compute with: logits / T overflows; use T >= 1e-06 (a T of 0.01 is already nearly one-hot)
    """
    try:
        t = check_real(value, name)
    except ValueError:
        t = math.nan
    if not t > 0:
        raise ValueError(
            f"{name} must be a finite number > 0 (got {value!r}): softmax(logits / T) is undefined "
            f"at T <= 0; use a small T (e.g. 0.1) for a sharper distribution"
        )
    if t < MIN_TEMPERATURE:
        raise ValueError(
            f"{name} = {value!r} is too small to compute with: logits / T overflows; use T >= {MIN_TEMPERATURE:g} "
            f"(a T of 0.01 is already nearly one-hot)"
        )
    return t


#: The smallest Sinkhorn regularisation accepted (relative to the cost's largest entry): below it the
#: log-domain iterations number in the hundreds of thousands, and exact OT is the better tool.
MIN_EPSILON = 1e-4


def check_epsilon(value: Any, name: str = "epsilon") -> float:
    """``value`` as a float if it is a finite number >= :data:`MIN_EPSILON` (a Sinkhorn
    regularisation, relative to the cost's largest entry), else a ValueError naming ``name`` and the fix.

    >>> check_epsilon(0.05, "sinkhorn_epsilon")
    0.05
    >>> check_epsilon(0, "sinkhorn_epsilon")
    Traceback (most recent call last):
    ...
    ValueError: sinkhorn_epsilon must be a finite number >= 0.0001 (got 0): the entropic regularisation relative to the cost's largest entry, e.g. 0.05; smaller is closer to exact OT and needs more iterations (for the limit itself, use the exact token OT)
    """
    try:
        t = check_real(value, name)
    except ValueError:
        t = math.nan
    if not t >= MIN_EPSILON:
        raise ValueError(
            f"{name} must be a finite number >= {MIN_EPSILON:g} (got {value!r}): the entropic regularisation relative "
            f"to the cost's largest entry, e.g. 0.05; smaller is closer to exact OT and needs more iterations (for "
            f"the limit itself, use the exact token OT)"
        )
    return t


def check_text(value: Any, name: str = "text", *, allow_empty: bool = False) -> str:
    """``value`` if it is a string that encodes to UTF-8 (and, unless ``allow_empty``, has a
    non-space character), else a ValueError in the user's terms.

    A ``str`` that is not valid UTF-8 holds lone surrogates: how Python carries the bytes of a
    command-line argument or a file read with ``errors="surrogateescape"`` that were not UTF-8.

    >>> check_text("café")
    'café'
    >>> check_text("caf\\udce9")
    Traceback (most recent call last):
    ...
    ValueError: text is not valid UTF-8: character 3 stands for the byte 0xe9, which is not UTF-8 on its own (Latin-1 text?); convert the input to UTF-8 first
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string (got {type(value).__name__})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        ch = value[err.start]
        what = (f"stands for the byte 0x{ord(ch) - 0xDC00:02x}, which is not UTF-8 on its own (Latin-1 text?)"
                if 0xDC80 <= ord(ch) <= 0xDCFF else f"is the lone surrogate U+{ord(ch):04X}")
        raise ValueError(f"{name} is not valid UTF-8: character {err.start} {what}; convert the input to UTF-8 first") from None
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} is empty or whitespace-only: there is nothing to compare")
    return value
