"""What the audit says: :class:`Finding` (one line and its fix) and :data:`CHECKS`, the registry
of the checks (key -> what each verifies), which the report, the CLI, the app and the docs read.

>>> f = Finding("error", "bos", "teacher (Llama-2): no BOS before the prompt in 3 of 3 examples",
...             "let the tokenizer add it (add_special_tokens=True)")
>>> f.line()
'error    bos: teacher (Llama-2): no BOS before the prompt in 3 of 3 examples -> fix: let the tokenizer add it (add_special_tokens=True)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CHECKS", "LEVELS", "Finding"]

#: Severities, worst first. ``error``: the setup is wrong (the audit exits 1); ``warning``: it
#: works but distils something other than what it seems (exits 1 under ``--strict``); ``info``: a fact.
LEVELS = ("error", "warning", "info")

#: Every check: key -> what it verifies. Findings carry one of these keys (``tokens`` findings
#: add the class: ``tokens:numbers``).
CHECKS = {
    "data": "the data file reads (one JSON object per line, UTF-8, fields present, no repeats)",
    "template": "each side's prompt is its chat template applied exactly once, ending with the generation prompt; "
                "no template markup in the data itself",
    "bos": "BOS present exactly once when the tokenizer adds one by default (or its template starts with it), absent "
           "otherwise",
    "eos": "the scored answer tokens end the same way on both sides (both with the end-of-turn token or neither)",
    "shift": "the logits at input position i are scored against token i + 1 (checked on the batch the runner builds)",
    "mask": "only answer tokens are scored, each once; no prompt token is",
    "context": "prompt + answer fit each model's context",
    "alignment": "how the byte-offset groups pair tokens (1:1, 1:n, n:1, n:m)",
    "drift": "how far apart (in tokens) the positional pairing's tokens are",
    "tokens": "critical-token classes (numbers, whitespace runs, CJK, emoji, accented Latin): does the pair split them "
              "alike",
    "vocab": "shared strings; the teacher's mass on tokens the student has no token for",
    "budget": "the teacher cache's top-K: mass kept and the certified ULD error bound per K",
    "models": "whether the model checks (vocabulary mass, cache budget) ran",
}


@dataclass(frozen=True)
class Finding:
    """One finding: its severity, its check, what was seen and how to fix it.

    Attributes
    ----------
    level : str
        One of :data:`LEVELS`.
    check : str
        A key of :data:`CHECKS` (``tokens:<class>`` for a token class).
    message : str
        What was seen, with counts and the side it concerns.
    fix : str
        What to do ("" for a plain fact).
    examples : tuple[str, ...]
        A few concrete cases (a record id, a token split).
    """

    level: str
    check: str
    message: str
    fix: str = ""
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.check.split(":")[0] not in CHECKS:
            raise ValueError(f"check must be a key of CHECKS, got {self.check!r}")

    def line(self) -> str:
        """``level check: message -> fix: ...`` on one line."""
        return f"{self.level:<8} {self.check}: {self.message}" + (f" -> fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["examples"] = list(self.examples)
        return d
