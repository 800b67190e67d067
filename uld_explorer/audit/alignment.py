"""How a pair's tokenizations line up on the scored text: byte-offset group shapes and the
positional pairing's drift.

- **Group shapes.** Byte-offset alignment (:func:`~uld_explorer.text.byte_offset_alignment`)
  cuts the text where both sides have a token boundary. A group is ``1:1`` (one token each side,
  the same bytes), ``1:n`` (one teacher token, several student tokens), ``n:1`` or ``n:m``.
- **Drift.** Positional alignment (the ULD paper's) pairs the i-th teacher token with the i-th
  student token. For the pair of teacher token ``j`` and student token ``k``, the drift is
  :math:`|k^* - k|`, where :math:`k^*` is the student token that covers the first byte of teacher
  token ``j``: how many student tokens away from "the same place" the partner sits. 0 everywhere
  when both sides cut alike; it grows along the text wherever one side needs more tokens.

>>> from uld_explorer.text import Tokenized
>>> t = Tokenized("ab cd", (0, 1, 2), ("ab", " c", "d"), ((0, 2), (2, 4), (4, 5)), 9)
>>> s = Tokenized("ab cd", (0, 1, 2, 3), ("a", "b", " ", "cd"), ((0, 1), (1, 2), (2, 3), (3, 5)), 9)
>>> st = alignment_stats([(t, s)])
>>> st.groups, st.max_drift
({'1:1': 0, '1:n': 1, 'n:1': 0, 'n:m': 1}, [1])
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..text.align import byte_offset_alignment, positional_alignment

__all__ = ["GROUP_SHAPES", "AlignmentStats", "alignment_stats", "group_shape"]

#: The group shapes, in display order.
GROUP_SHAPES = ("1:1", "1:n", "n:1", "n:m")


def group_shape(n_teacher: int, n_student: int) -> str:
    """``"1:1"``, ``"1:n"``, ``"n:1"`` or ``"n:m"`` for a group of that many tokens per side."""
    return ("1" if n_teacher == 1 else "n") + ":" + ("1" if n_student == 1 else ("n" if n_teacher == 1 else "m"))


@dataclass
class AlignmentStats:
    """Alignment measured on a set of texts.

    Attributes
    ----------
    groups : dict[str, int]
        Byte-offset groups per shape (:data:`GROUP_SHAPES`).
    teacher_tokens, student_tokens : dict[str, int]
        Tokens of each side in groups of each shape.
    positional_pairs : int
        Positional pairs over all texts.
    same_bytes : int
        Positional pairs whose two tokens cover the same bytes.
    max_drift : list[int]
        Per text, the largest positional drift (0 for a text without pairs).
    length_gap : list[int]
        Per text, ``T_t - T_s`` (scored tokens).
    """

    groups: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUP_SHAPES, 0))
    teacher_tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUP_SHAPES, 0))
    student_tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUP_SHAPES, 0))
    positional_pairs: int = 0
    same_bytes: int = 0
    max_drift: list[int] = field(default_factory=list)
    length_gap: list[int] = field(default_factory=list)

    @property
    def n_groups(self) -> int:
        return sum(self.groups.values())

    def share(self, shape: str) -> float:
        """Share of the groups with this shape (0 without groups)."""
        return self.groups[shape] / self.n_groups if self.n_groups else 0.0

    @property
    def same_bytes_share(self) -> float:
        """Share of the positional pairs whose tokens cover the same bytes (NaN without pairs)."""
        return self.same_bytes / self.positional_pairs if self.positional_pairs else float("nan")

    def drifting(self, at_least: int = 2) -> float:
        """Share of the texts whose positional pairing drifts by ``at_least`` tokens somewhere."""
        return float(np.mean([d >= at_least for d in self.max_drift])) if self.max_drift else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = self.max_drift or [0]
        return {
            "groups": dict(self.groups), "group_share": {k: self.share(k) for k in GROUP_SHAPES},
            "teacher_tokens": dict(self.teacher_tokens), "student_tokens": dict(self.student_tokens),
            "positional_pairs": self.positional_pairs, "same_bytes_share": self.same_bytes_share,
            "max_drift": {"median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "max": int(max(d))},
            "drifting_2plus": self.drifting(2), "length_gap_mean": float(np.mean(self.length_gap or [0])),
            "per_text_max_drift": list(self.max_drift),
        }


def alignment_stats(pairs: Sequence[tuple[Any, Any]]) -> AlignmentStats:
    """Group shapes and positional drift over ``pairs`` of (teacher, student)
    :class:`~uld_explorer.text.Tokenized` of the same text (predicted tokens only, as the runner
    scores them)."""
    st = AlignmentStats()
    for t, s in pairs:
        for g in byte_offset_alignment(t, s):
            shape = group_shape(len(g.teacher_tokens), len(g.student_tokens))
            st.groups[shape] += 1
            st.teacher_tokens[shape] += len(g.teacher_tokens)
            st.student_tokens[shape] += len(g.student_tokens)
        starts_s = [a for a, _ in s.byte_spans]
        drift = 0
        for p in positional_alignment(t, s):
            jt, js = p.teacher_tokens[0], p.student_tokens[0]
            home = bisect.bisect_right(starts_s, t.byte_spans[jt][0]) - 1  # the student token at the same bytes
            drift = max(drift, abs(home - js))
            st.positional_pairs += 1
            st.same_bytes += bool(p.same_span)
        st.max_drift.append(drift)
        st.length_gap.append((len(t) - t.first_predicted) - (len(s) - s.first_predicted))
    return st
