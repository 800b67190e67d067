"""What a comparison will cost, known before any model runs: its memory and its time.

:func:`memory_needed` / :func:`check_memory` refuse a comparison that would not fit in the
available memory (the machine would swap or the kernel kill the process without a word);
:func:`estimate_cost` says how long and how much memory a comparison will take, so that the
CLI can say so before long work (and show progress bars while it runs).

The time model is calibrated on the project's CI-class machine (2 cores of an AMD EPYC, torch
2.13 CPU, 2 threads; docs/benchmarks.md): a forward pass costs ~2e-11 s per parameter per token;
a table row ~3.7e-8 s per vocabulary entry of both sides (x1.4 with the value-space OT column);
the edit-cost token OT on real rows (Qwen2.5 / SmolLM2, 2026-12-06) ~0.7 s per row at k = 1000
and 7-9 s at k = 2000 (POT's simplex needs ten times the iterations there; the fault sweep saw
~40 s per row at k = 4,999), modelled as 0.7 s x (k / 1000)^3, with ~48 k^2 bytes per row being
solved. It is an estimate (the machine's load moves it by 2x), not a promise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..memory import available_memory_bytes
from .config import ComparisonConfig
from .forward import vocab_size_of

__all__ = ["CostEstimate", "check_memory", "estimate_cost", "memory_needed"]

#: Seconds per model parameter per token of a forward pass (2 threads, CPU).
FORWARD_S_PER_PARAM_TOKEN = 2e-11
#: Seconds per vocabulary entry (both sides) per table row, string-cost measures.
ROW_S_PER_ENTRY = 3.7e-8
#: The value-space OT column's share of a row's time.
VALUE_OT_FACTOR = 1.4
#: The edit-cost token OT: seconds per row at k = 1000, and how it grows with k.
EDIT_S_AT_1000, EDIT_EXPONENT = 0.7, 3.0
#: Bytes of the edit-cost token OT per row being solved, per k^2 (cost matrix, POT's plan and work).
EDIT_BYTES_PER_K2 = 48


def memory_needed(n_teacher: int, n_student: int, V_t: int, V_s: int, chunk_rows: int, chunk_tokens: int = 256) -> int:
    """Bytes a comparison holds at its peak, beyond the loaded models (an upper estimate).

    The two kept float32 distributions, ``(T + 1) x V`` per side, one forward step's logits and
    softmax temporaries (``3 x chunk_tokens x V``), and the table's chunk of rows (a handful of
    ``chunk_rows x (V_t + V_s)`` copies: merged, base, sorted, hybrid parts).

    >>> round(memory_needed(1024, 1024, 151_936, 49_152, 32) / 2**30, 2)  # measured: 0.97 GiB
    1.39
    """
    dists = 4 * ((n_teacher + 1) * V_t + (n_student + 1) * V_s)
    forward = 4 * 3 * chunk_tokens * max(V_t, V_s)
    table = 4 * 8 * chunk_rows * (V_t + V_s)
    return dists + forward + table


def check_memory(teacher: Any, student: Any, text: str, cfg: ComparisonConfig, *, prompt: str = "",
                 available: int | None = None) -> None:
    """Refuse, before any forward pass, a comparison that would not fit in the available memory
    (the machine would otherwise swap or the kernel kill the process with no message).

    Token counts come from the two tokenizers (capped by ``cfg.max_tokens``), vocabulary sizes
    from the models; ``available`` defaults to :func:`available_memory_bytes` (no check where it
    is unknown). Raises ValueError naming the knob (``max_tokens``) and a value that fits.
    """
    available = available_memory_bytes() if available is None else available
    V_t, V_s = vocab_size_of(teacher), vocab_size_of(student)
    if available is None or V_t is None or V_s is None:
        return
    cap = cfg.max_tokens or float("inf")
    n = [min(cap, len(m.tokenizer(text, add_special_tokens=False)["input_ids"])) for m in (teacher, student)]
    needed = memory_needed(int(n[0]), int(n[1]), V_t, V_s, cfg.chunk_rows)
    if needed > 0.8 * available:
        per_token = 4 * (V_t + V_s)
        fits = max(1, int((0.8 * available - memory_needed(0, 0, V_t, V_s, cfg.chunk_rows)) / per_token))
        raise ValueError(
            f"comparing this text needs about {needed / 2**30:.1f} GiB ({n[0]:,} teacher and {n[1]:,} student "
            f"tokens, V_t = {V_t:,}, V_s = {V_s:,}) and {available / 2**30:.1f} GiB is available: lower max_tokens "
            f"(--max-tokens) to about {fits:,}"
        )


@dataclass(frozen=True)
class CostEstimate:
    """What a comparison is expected to take.

    Attributes
    ----------
    seconds : float
        Wall-clock estimate, forward passes and table together.
    bytes : int
        Peak memory beyond the loaded models.
    tokens : (int, int)
        Text tokens compared per side (after ``max_tokens``).
    parts : dict
        Seconds by part: ``forward_teacher``, ``forward_student``, ``rows``, ``edit_ot``.
    """

    seconds: float
    bytes: int
    tokens: tuple[int, int]
    parts: dict

    def describe(self) -> str:
        """``"about 80 s and 5.6 GiB (...)"``: the line the CLI prints before long work."""
        biggest = max(self.parts, key=self.parts.get)
        return (f"about {self.seconds:,.0f} s and {self.bytes / 2**30:.1f} GiB beyond the models "
                f"({self.tokens[0]:,} teacher / {self.tokens[1]:,} student tokens; most of it: "
                f"{biggest.replace('_', ' ')}, ~{self.parts[biggest]:,.0f} s)")


def _params(model: Any) -> int:
    try:
        return sum(int(p.numel()) for p in model.model.parameters())
    except AttributeError:
        return 0


def estimate_cost(teacher: Any, student: Any, text: str, cfg: ComparisonConfig, *, prompt: str = "",
                  threads: int = 2) -> CostEstimate:
    """How long and how much memory :func:`~uld_explorer.compare.compare_text` will take on this
    text with these settings (see the module docstring for the model). Token counts come from
    the tokenizers (capped by ``cfg.max_tokens``), sizes from the models; nothing runs.

    >>> CostEstimate(84.0, 6 * 2**30, (2, 2), {"forward_teacher": 0.1, "forward_student": 0.1, "rows": 0.1,
    ...              "edit_ot": 83.7}).describe()
    'about 84 s and 6.0 GiB beyond the models (2 teacher / 2 student tokens; most of it: edit ot, ~84 s)'
    """
    V_t, V_s = vocab_size_of(teacher) or 0, vocab_size_of(student) or 0
    cap = cfg.max_tokens or math.inf
    n = [int(min(cap, len(m.tokenizer(t, add_special_tokens=False)["input_ids"])))
         for m, t in ((teacher, prompt + text), (student, prompt + text))]
    rows = max(n) + 1
    parts = {
        "forward_teacher": FORWARD_S_PER_PARAM_TOKEN * _params(teacher) * n[0],
        "forward_student": FORWARD_S_PER_PARAM_TOKEN * _params(student) * n[1],
        "rows": ROW_S_PER_ENTRY * (V_t + V_s) * rows * (VALUE_OT_FACTOR if cfg.value_ot else 1.0),
        "edit_ot": 0.0,
    }
    extra = 0
    if "edit" in cfg.costs:
        k = min(cfg.edit_top_k, max(V_t, V_s) or cfg.edit_top_k)  # top-k keeps at most the vocabulary
        parts["edit_ot"] = EDIT_S_AT_1000 * (k / 1000) ** EDIT_EXPONENT * rows / max(1, threads)
        extra = EDIT_BYTES_PER_K2 * k * k * max(1, threads)
    total = memory_needed(n[0], n[1], V_t, V_s, cfg.chunk_rows) + extra
    return CostEstimate(sum(parts.values()), int(total), (n[0], n[1]), parts)
