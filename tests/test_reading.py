"""uld_explorer.compare.reading: a table row read out in words (here: the next-token row's prefix)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from uld_explorer import read_row


def row(kind: str, teacher_top1: str, student_top1: str) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, label="(next token)" if kind == "next" else " Paris",
                           teacher_top1=teacher_top1, student_top1=student_top1, teacher_top1_prob=0.91,
                           student_top1_prob=0.77, uld_half=0.13, token_ot_string=0.18, kl_shared=0.26,
                           kl_teacher_coverage=0.98, kl_student_coverage=1.0)


@pytest.mark.parametrize("student_top1, token_sentence, next_sentence", [
    (" Paris", "Both put most mass on ' Paris' (91% / 77%).",
     "After the whole text, both put most mass on ' Paris' (91% / 77%)."),
    (" Lyon", "The teacher expects ' Paris' (91%), the student ' Lyon' (77%).",
     "After the whole text, the teacher expects ' Paris' (91%), the student ' Lyon' (77%)."),
])
def test_next_token_row_continues_its_prefix_in_lower_case(student_top1, token_sentence, next_sentence):
    token = read_row(row("token", " Paris", student_top1))
    following = read_row(row("next", " Paris", student_top1))
    assert token.startswith(token_sentence + " ")
    assert following.startswith(next_sentence + " ")
    assert following.removeprefix(next_sentence) == token.removeprefix(token_sentence)  # the rest is the same


def group(teacher_tokens, student_tokens, teacher_mass, student_mass, uld, token_ot=0.2) -> SimpleNamespace:
    """A byte-offset group row: ULD on the chain-rule (sub-probability) vectors, the rest on the
    base distributions (here: similar shapes, the same top-1 token)."""
    return SimpleNamespace(kind="token", label=" naïve", teacher_top1=" \"", student_top1=" \"",
                           teacher_top1_prob=0.14, student_top1_prob=0.22, teacher_tokens=teacher_tokens,
                           student_tokens=student_tokens, teacher_mass=teacher_mass, student_mass=student_mass,
                           uld=uld, uld_half=uld / 2, token_ot_string=token_ot, kl_shared=0.5,
                           kl_teacher_coverage=0.9, kl_student_coverage=0.9)


def test_a_merged_group_is_read_by_its_masses_not_as_a_shape():
    """|m_t - m_s| <= ULD <= m_t + m_s on merged vectors: a large ULD that is the mass gap is not
    'the shapes differ', and a tiny ULD of two tiny vectors is not identity blindness."""
    gap = read_row(group((0, 1), (0, 1), 0.972, 0.00705, 0.965))     # GOLD's observed merge of ' naïve'
    assert "0.97 (teacher: the probability of its other piece) and 0.007 (student" in gap
    assert "100% of ULD (0.96) is that mass gap alone" in gap
    assert "shapes differ" not in gap and "confident" not in gap

    one = read_row(group((7,), (7, 8, 9), 1.0, 0.686, 0.396))        # ' était' vs ' ' + 'ét' + 'ait'
    assert "1 (teacher: one token) and 0.69 (student: the probability of its 2 other pieces)" in one
    assert "79% of ULD (0.40) is that mass gap alone" in one

    tiny = read_row(group((0, 1), (0, 1), 1.04e-6, 1.35e-5, 1.25e-5, token_ot=0.99))  # the bayesian merge
    assert "A merged group of tiny mass" in tiny and "small whatever the shapes" in tiny
    assert "identity blindness" not in tiny and "Same shape" not in tiny

    shape = read_row(group((0, 1), (0,), 0.9, 1.0, 0.7))             # masses alike: the shape is read
    assert "their shapes differ (ULD/2 = 0.35)" in shape and "mass gap" not in shape


def test_a_single_token_row_is_read_as_before():
    r = group((3,), (4,), 1.0, 1.0, 0.26, token_ot=0.18)
    assert read_row(r).startswith("Both put most mass on ' \"' (14% / 22%). The two distributions have a similar "
                                  "shape (ULD/2 = 0.13) and the same tokens carry it (token OT 0.18).")


def test_a_byte_token_is_quoted_with_one_backslash():
    r"""A byte of a split character reads '\xe3\x83' (as the token tables write it), not '\\xe3\\x83'."""
    r = row("token", "首都", r"\xe3\x83")
    assert read_row(r).startswith(r"The teacher expects '首都' (91%), the student '\xe3\x83' (77%).")
    assert read_row(row("token", "\n", " Paris")).startswith(r"The teacher expects '\n' (91%)")
