"""A row of the comparison table read out in plain words, from its numbers only.

:func:`read_row` is what the app shows next to a selected position (and what a notebook can
print): two to four short sentences on what the two models expect, whether the SHAPES of their
distributions differ (ULD) and whether the TOKENS differ (token-space OT, KL). The thresholds are
constants below, documented, so the wording is reproducible and testable.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["read_row"]

#: ULD / 2 below this: "the same shape".
SAME_SHAPE = 0.1
#: ULD / 2 at or above this: "the shapes differ".
DIFFERENT_SHAPE = 0.3
#: Token OT above ULD / 2 by more than this: the mass sits on different tokens.
IDENTITY_GAP = 0.25
#: KL (nats) below this: small; above ``KL_LARGE``: large.
KL_SMALL, KL_LARGE = 0.1, 1.0
#: A side with less than this mass on the shared strings: KL sees only part of it.
LOW_COVERAGE = 0.8
#: A merged group whose mass gap ``|m_t - m_s|`` is at least this share of its ULD: ULD is read as
#: the gap (one model much surer of the group's other pieces), not as a difference of shape.
MASS_GAP_SHARE = 0.5


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _quote(token: str) -> str:
    r"""A token quoted as Python writes it (``' Paris'``, ``'\n'``), except that the ``\xNN`` a byte
    of a split UTF-8 character is written as (:func:`~uld_explorer.text.vocab_strings`) keeps ONE
    backslash, as the token tables show it: ``'\xe3\x83'``, not ``'\\xe3\\x83'``.

    >>> print(_quote(" Paris"), _quote("\n"), _quote(r"\xe3\x83"))
    ' Paris' '\n' '\xe3\x83'
    """
    return repr(token).replace("\\\\x", "\\x")


def _weight(mass: float, n_tokens: int, who: str) -> str:
    if n_tokens <= 1:
        return f"{mass:.2g} ({who}: one token)"
    other = "its other piece" if n_tokens == 2 else f"its {n_tokens - 1} other pieces"
    return f"{mass:.2g} ({who}: the probability of {other})"


def _merged_sentence(row: Any) -> str:
    """What ULD says on a merged byte-offset group. Its chain-rule vectors are sub-probability
    vectors of mass ``m_t``, ``m_s`` (the probability of the group's other actual pieces, 1 for a
    single token), and ``|m_t - m_s| <= ULD <= m_t + m_s``: ULD may say more about the masses
    than about the shapes."""
    mt, ms, uld, half = row.teacher_mass, row.student_mass, row.uld, row.uld_half
    weigh = (f"the vectors ULD compares weigh {_weight(mt, len(row.teacher_tokens), 'teacher')} and "
             f"{_weight(ms, len(row.student_tokens), 'student')}")
    if (mt + ms) / 2 < SAME_SHAPE:
        return f"A merged group of tiny mass: {weigh}, so ULD/2 = {half:.2g} is small whatever the shapes."
    gap = abs(mt - ms)
    if half >= SAME_SHAPE and gap >= MASS_GAP_SHARE * uld:
        return f"A merged group: {weigh}, so {gap / uld:.0%} of ULD ({uld:.2f}) is that mass gap alone, whatever the shapes."
    shape = "differ" if half >= DIFFERENT_SHAPE else "are similar"
    return f"A merged group: {weigh}; their shapes {shape} (ULD/2 = {half:.2f})."


def read_row(row: Any) -> str:
    """Two to four sentences that say what a :class:`~uld_explorer.compare.PositionRow` shows.

    On a merged byte-offset group (several tokens on a side) ULD compares sub-probability
    vectors, so the second sentence reads it against their masses (:func:`_merged_sentence`)
    instead of as a shape, and leaves token OT (computed on the base distributions) out of it.

    Examples
    --------
    >>> from types import SimpleNamespace as R
    >>> r = R(kind="token", label=" Paris", teacher_top1=" Paris", student_top1=" Paris",
    ...       teacher_top1_prob=0.91, student_top1_prob=0.77, uld_half=0.13, token_ot_string=0.18,
    ...       kl_shared=0.26, kl_teacher_coverage=0.98, kl_student_coverage=1.0)
    >>> print(read_row(r))
    Both put most mass on ' Paris' (91% / 77%). The two distributions have a similar shape (ULD/2 = 0.13) and the same tokens carry it (token OT 0.18). KL on the shared strings is moderate (0.26 nats).
    """
    t, s = row.teacher_top1, row.student_top1
    pt, ps = row.teacher_top1_prob, row.student_top1_prob
    if t == s:
        first = f"Both put most mass on {_quote(t)} ({_pct(pt)} / {_pct(ps)})."
    else:
        first = f"The teacher expects {_quote(t)} ({_pct(pt)}), the student {_quote(s)} ({_pct(ps)})."
    if row.kind == "next":  # the next-token row: the same sentence, after a lower-case start
        first = f"After the whole text, {first[0].lower()}{first[1:]}"
    out = [first]
    half, ot = row.uld_half, row.token_ot_string
    if len(getattr(row, "teacher_tokens", ())) > 1 or len(getattr(row, "student_tokens", ())) > 1:
        out.append(_merged_sentence(row))  # ULD on sub-probability vectors, token OT on the base ones
    elif ot is not None and half < SAME_SHAPE and ot > half + IDENTITY_GAP:
        out.append(f"Same shape, different tokens: ULD/2 is small ({half:.2f}) but token OT is large ({ot:.2f}) "
                   f"— identity blindness: ULD cannot see that the mass sits on different tokens.")
    elif half >= DIFFERENT_SHAPE:
        sharper = "teacher" if pt > ps else "student"
        out.append(f"The shapes differ (ULD/2 = {half:.2f}): the {sharper} is much more confident.")
    elif ot is not None and ot <= half + IDENTITY_GAP:
        out.append(f"The two distributions have a similar shape (ULD/2 = {half:.2f}) and the same tokens carry it "
                   f"(token OT {ot:.2f}).")
    else:
        out.append(f"The two distributions have a similar shape (ULD/2 = {half:.2f}).")
    kl = row.kl_shared
    if kl is None or math.isnan(kl):
        out.append("KL on the shared strings is undefined here (a side puts no mass on them).")
    elif math.isinf(kl):
        out.append("KL on the shared strings is infinite: the student gives 0 to a string the teacher expects.")
    elif kl < KL_SMALL:
        out.append(f"KL on the shared strings is small ({kl:.2f} nats).")
    elif kl > KL_LARGE:
        out.append(f"KL on the shared strings is large ({kl:.2f} nats): the student misses where the teacher puts its mass.")
    else:
        out.append(f"KL on the shared strings is moderate ({kl:.2f} nats).")
    ct, cs = row.kl_teacher_coverage, row.kl_student_coverage
    if min(ct, cs) < LOW_COVERAGE:
        out.append(f"Only {_pct(ct)} of the teacher's and {_pct(cs)} of the student's mass is on strings both "
                   f"vocabularies have: KL sees only that part.")
    return " ".join(out)
