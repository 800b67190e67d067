"""One batch for the student: padded inputs, the answer rows, the aligned pairs.

:func:`make_batch` turns examples (each side tokenized by its own tokenizer, :mod:`.data`) and
their teacher cache rows (:mod:`.teacher_cache`) into a :class:`Batch`: the student's inputs
padded on the right, the flat positions whose logits predict answer tokens, and the aligned
(teacher row, student row) pairs the losses compare (:mod:`.losses`).

The shift (which logit predicts which token), by the library's convention: with ``c`` context
tokens (BOS if any, the rendered prompt), the logits at input position ``c + j - 1`` predict
answer token ``j`` (``j = 0 .. T - 1``); the prompt's own positions are masked (never scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..text.align import ALIGNMENTS, base_token, byte_offset_alignment

__all__ = ["Batch", "make_batch"]


@dataclass
class Batch:
    """One (local) batch. Shapes: B examples, L padded length, R student answer rows, P aligned pairs.

    Attributes
    ----------
    input_ids, attention_mask : (B, L)
    positions : (R,)
        Flat index into (B * L) of the positions predicting answer tokens.
    labels : (R,)
        The student's answer token ids.
    pair_s : (P,)
        Student row (into R) of each pair's base token.
    pair_t : (P,)
        Teacher cache row of each pair's base token.
    merged : bool
        Some group has several tokens (byte-offset alignment).
    others_s, others_t : (M,)
        Rows of the non-base tokens of multi-token groups.
    others_pair_s, others_pair_t : (M,)
        The pair each of them belongs to.
    same_s, same_t : (A,)
        Student and teacher rows of the answer tokens both tokenizers cut alike (one token each
        side over the same bytes: byte-offset groups of one token each); the eval metrics that
        compare token identities (top-1 agreement, KL on shared strings) use these, whatever the
        training alignment.
    hidden : (B, L, H) or None
        The frozen trunk's cached states per input position (``train_last_layers > 0``,
        :mod:`.trunk_cache`; zeros at padding).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor
    pair_s: torch.Tensor
    pair_t: torch.Tensor
    merged: bool
    others_s: torch.Tensor
    others_pair_s: torch.Tensor
    others_t: torch.Tensor
    others_pair_t: torch.Tensor
    same_s: torch.Tensor
    same_t: torch.Tensor
    hidden: torch.Tensor | None = None

    def hidden_on(self, device: Any) -> torch.Tensor | None:
        """:attr:`hidden` on ``device`` (None without trunk states)."""
        return None if self.hidden is None else self.hidden.to(device)

    @property
    def n_tokens(self) -> int:
        return int(self.labels.numel())

    @property
    def n_pairs(self) -> int:
        return int(self.pair_s.numel())


def make_batch(examples: Sequence[Any], cache_rows: Sequence[slice], alignment: str, merge: str, pad_id: int,
               hidden: Sequence[torch.Tensor] | None = None) -> Batch:
    """Pad the student's inputs (right) and index every answer row and aligned pair.

    ``cache_rows[i]`` are the teacher cache rows of ``examples[i]``; ``hidden[i]`` (optional)
    its trunk states, shape (L_i, H), one row per input position. Student answer token ``j``
    of example ``b`` is predicted at input position ``c_b + j - 1`` (``c_b`` = its context length).
    """
    B = len(examples)
    seqs = [list(ex.student.model_input_ids) for ex in examples]
    L = max(map(len, seqs))
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    positions, labels = [], []
    pair_s, pair_t, o_s, o_ps, o_t, o_pt, same_s, same_t = [], [], [], [], [], [], [], []
    align = ALIGNMENTS[alignment].align
    merged = False
    for b, (ex, rows) in enumerate(zip(examples, cache_rows)):
        s = ex.student
        input_ids[b, : len(seqs[b])] = torch.tensor(seqs[b])
        mask[b, : len(seqs[b])] = 1
        c = len(s.context_ids)
        if c < 1:
            raise ValueError("the student reads nothing before the answer: its first token has no prediction")
        r0 = len(labels)  # this example's first student row
        for j, tid in enumerate(s.ids):
            positions.append(b * L + c + j - 1)
            labels.append(tid)
        if rows.stop - rows.start != len(ex.teacher.ids):
            raise ValueError(f"teacher cache rows {rows} do not match the teacher's {len(ex.teacher.ids)} answer tokens")
        for g in align(ex.teacher, ex.student):
            bt, bs = base_token(g.teacher_tokens, merge), base_token(g.student_tokens, merge)
            p = len(pair_s)
            pair_t.append(rows.start + bt)
            pair_s.append(r0 + bs)
            for j in g.teacher_tokens:
                if j != bt:
                    o_t.append(rows.start + j)
                    o_pt.append(p)
            for j in g.student_tokens:
                if j != bs:
                    o_s.append(r0 + j)
                    o_ps.append(p)
            merged |= len(g.teacher_tokens) > 1 or len(g.student_tokens) > 1
        for g in byte_offset_alignment(ex.teacher, ex.student):
            if len(g.teacher_tokens) == len(g.student_tokens) == 1:
                same_t.append(rows.start + g.teacher_tokens[0])
                same_s.append(r0 + g.student_tokens[0])
    states = None
    if hidden is not None:
        states = torch.zeros((B, L, hidden[0].shape[-1]), dtype=hidden[0].dtype)
        for b, h in enumerate(hidden):
            if h.shape[0] != len(seqs[b]):
                raise ValueError(f"trunk states of {h.shape[0]} positions for an input of {len(seqs[b])} tokens")
            states[b, : len(seqs[b])] = h
    t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return Batch(input_ids, mask, t(positions), t(labels), t(pair_s), t(pair_t), merged, t(o_s), t(o_ps), t(o_t), t(o_pt),
                 t(same_s), t(same_t), states)
