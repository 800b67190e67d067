"""Critical-token classes: do the teacher and the student split numbers, whitespace runs, CJK,
emoji and accented words alike?

Where two tokenizers cut a fragment differently, every pairing of their tokens compares a
prediction of one piece with a prediction of another: a published cross-tokenizer study found
TRL GOLD's hybrid loss collapsing on numbers (one-token numbers on one side, digits on the
other). :data:`TOKEN_CLASSES` is the registry (key -> :class:`TokenClass`: the pattern, when to
warn, why it matters); :func:`class_coverage` measures every class on a set of tokenized texts.

A fragment (one match of the class's pattern, in bytes ``[a, b)``) is **split alike** when both
sides have the same token boundaries strictly inside it and agree on whether ``a`` and ``b`` are
boundaries (the fragment starts and ends a token on both sides, or on neither).

>>> from uld_explorer.text import Tokenized
>>> t = Tokenized("in 2024", (0, 1, 2, 3, 4), ("in", " ", "20", "2", "4"), ((0, 2), (2, 3), (3, 5), (5, 6), (6, 7)), None)
>>> s = Tokenized("in 2024", (0, 1, 2), ("in", " ", "2024"), ((0, 2), (2, 3), (3, 7)), None)
>>> c = class_coverage([(t, s)])["numbers"]
>>> c.occurrences, c.split_differently, c.teacher_tokens, c.student_tokens, c.examples
(1, 1, 3.0, 1.0, ("'2024': teacher 20|2|4, student 2024",))
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

__all__ = ["TOKEN_CLASSES", "ClassCoverage", "TokenClass", "class_coverage"]

EXAMPLES_KEPT = 3  # differing fragments kept per class


@dataclass(frozen=True)
class TokenClass:
    """One class of critical fragments.

    Attributes
    ----------
    key : str
        Stable identifier (``tokens:<key>`` in findings, JSON and the app).
    label : str
        Readable name.
    pattern : re.Pattern
        What a fragment is (matched on the text).
    warn_share : float
        Warn when at least this share of the fragments is split differently.
    why : str
        Why a different split matters for this class (the finding's fix says what to do).
    """

    key: str
    label: str
    pattern: re.Pattern
    warn_share: float
    why: str


TOKEN_CLASSES: dict[str, TokenClass] = {c.key: c for c in (
    TokenClass("numbers", "numbers", re.compile(r"[0-9]+"), 0.05,
               "a number is one token on one side and digits on the other: positional pairs compare predictions of "
               "different digits, and GOLD's hybrid was seen collapsing on numbers"),
    TokenClass("whitespace", "whitespace runs and indentation", re.compile(r"(?m:^[ \t]+)|[ \t]{2,}"), 0.25,
               "indentation is one token on one side and several on the other (code): positional pairs drift "
               "inside every indented line"),
    TokenClass("cjk", "CJK characters", re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"),
               0.25, "a character is one token on one side and 2-3 byte tokens on the other: the student's pieces "
                     "of a character meet whole teacher characters"),
    TokenClass("emoji", "emoji", re.compile(
        "[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF](?:[\uFE0F\u200D\U0001F3FB-\U0001F3FF]|"
        "[\U0001F000-\U0001FAFF\u2600-\u27BF])*"), 0.25,
               "an emoji is split into byte tokens differently: pairs compare predictions of partial characters"),
    TokenClass("accented", "accented Latin words", re.compile(
        r"[A-Za-z\u00C0-\u024F]*[\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F][A-Za-z\u00C0-\u024F]*"), 0.25,
               "accented words are cut differently (e.g. 'é' alone on one side): positional pairs drift in "
               "non-English text"),
)}


@dataclass
class ClassCoverage:
    """One class measured on a set of texts.

    Attributes
    ----------
    key, label : str
    occurrences : int
        Fragments found.
    split_differently : int
        Fragments the two sides do not split alike.
    teacher_tokens, student_tokens : float
        Mean tokens per fragment on each side (tokens overlapping it; NaN without fragments).
    examples : tuple[str, ...]
        Up to three differing fragments with each side's tokens.
    """

    key: str
    label: str
    occurrences: int = 0
    split_differently: int = 0
    teacher_tokens: float = float("nan")
    student_tokens: float = float("nan")
    examples: tuple[str, ...] = ()
    _sums: list = field(default_factory=lambda: [0, 0], repr=False)

    @property
    def share(self) -> float:
        """Share of the fragments split differently (0 without fragments)."""
        return self.split_differently / self.occurrences if self.occurrences else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "occurrences": self.occurrences,
                "split_differently": self.split_differently, "share": self.share,
                "teacher_tokens": self.teacher_tokens, "student_tokens": self.student_tokens,
                "examples": list(self.examples)}


def _cut(tok: Any, a: int, b: int) -> tuple[frozenset, bool, bool, list[int]]:
    """Token boundaries strictly inside ``[a, b)``, whether ``a`` and ``b`` are boundaries, and the
    indices of the tokens overlapping it."""
    starts = [s for s, _ in tok.byte_spans]
    ends = [e for _, e in tok.byte_spans]
    bounds = set(starts) | set(ends)
    inner = frozenset(c for c in bounds if a < c < b)
    first = bisect.bisect_right(ends, a)  # the first token ending after a
    last = bisect.bisect_left(starts, b)  # tokens starting before b
    return inner, a in bounds, b in bounds, list(range(first, last))


def _pieces(tok: Any, idx: Sequence[int]) -> str:
    """The tokens' readable strings joined by ``|``, line breaks and tabs escaped."""
    return "|".join(tok.strings[j].replace("\n", "\\n").replace("\t", "\\t") for j in idx)


def class_coverage(pairs: Sequence[tuple[Any, Any]], classes: dict[str, TokenClass] | None = None
                   ) -> dict[str, ClassCoverage]:
    """Measure every class on ``pairs`` of (teacher, student) :class:`~uld_explorer.text.Tokenized`
    of the same text.

    Returns
    -------
    dict[str, ClassCoverage]
        One per class of ``classes`` (default :data:`TOKEN_CLASSES`), in its order.
    """
    classes = TOKEN_CLASSES if classes is None else classes
    out = {k: ClassCoverage(k, c.label) for k, c in classes.items()}
    for t, s in pairs:
        text = t.text[: len(s.text)] if len(t.text) > len(s.text) else t.text
        if s.text[: len(text)] != text:
            raise ValueError("class_coverage: the teacher and the student tokenized different texts")
        offsets = [0]
        for ch in text:  # char index -> byte offset
            offsets.append(offsets[-1] + len(ch.encode("utf-8")))
        for key, cls in classes.items():
            cov = out[key]
            for m in cls.pattern.finditer(text):
                a, b = offsets[m.start()], offsets[m.end()]
                ti, ta, tb, tt = _cut(t, a, b)
                si, sa, sb, st = _cut(s, a, b)
                cov.occurrences += 1
                cov._sums[0] += len(tt)
                cov._sums[1] += len(st)
                if (ti, ta, tb) != (si, sa, sb):
                    cov.split_differently += 1
                    if len(cov.examples) < EXAMPLES_KEPT:
                        cov.examples += (f"{m.group()!r}: teacher {_pieces(t, tt)}, student {_pieces(s, st)}",)
    for cov in out.values():
        if cov.occurrences:
            cov.teacher_tokens = cov._sums[0] / cov.occurrences
            cov.student_tokens = cov._sums[1] / cov.occurrences
    return out
