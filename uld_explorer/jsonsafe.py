"""Strict JSON for everything the library writes or prints: one encoder, importable without NumPy.

Strict JSON has no NaN or Infinity: a non-finite number becomes ``null`` (the row's notes, or
the field's docs, say why it is undefined). Tuples become lists, NumPy scalars and arrays plain
Python numbers and lists, dataclasses dicts, paths strings. The comparison table's JSON, the
CLI's ``--json`` output, a run's ``metrics.jsonl`` and the app's exports all go through
:func:`json_safe`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

__all__ = ["json_safe", "dumps"]


def json_safe(value: Any) -> Any:
    """``value`` with every part made strict-JSON-safe (recursively).

    >>> json_safe({"a": (1.0, float("nan")), "b": [float("inf")]})
    {'a': [1.0, None], 'b': [None]}
    """
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe(dataclasses.asdict(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    kind = type(value).__module__
    if kind == "numpy" or kind.startswith("numpy."):  # NumPy scalars and arrays, without importing NumPy
        if hasattr(value, "tolist"):
            return json_safe(value.tolist())
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a 0-d torch tensor
        return json_safe(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)``, strict (``allow_nan=False``), non-ASCII kept.

    >>> dumps({"x": float("nan"), "y": "café"})
    '{"x": null, "y": "café"}'
    """
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
