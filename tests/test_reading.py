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
