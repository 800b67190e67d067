"""Vocabulary strings of a tokenizer and the exact string overlap of two vocabularies.

:func:`vocab_strings` gives the normalized text of every id (:func:`~uld_explorer.text.spelling.normalize_token`),
:func:`vocab_overlap` which strings two vocabularies share, :func:`covered_mass` how much of a
distribution falls on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .spelling import normalize_token, tokenizer_kind

__all__ = ["VocabOverlap", "covered_mass", "vocab_overlap", "vocab_strings"]


def vocab_strings(tokenizer: Any, vocab_size: int | None = None) -> list[str]:
    """The normalized string of every id ``0 .. V-1``.

    Parameters
    ----------
    tokenizer : transformers tokenizer
    vocab_size : int, optional
        ``V``, the model's logits size; defaults to ``len(tokenizer)``. Ids the tokenizer does
        not know (padded embedding rows, e.g. 151,936 vs 152,064) get ``''``; a smaller ``V``
        truncates.

    Returns
    -------
    list[str]
        Length ``V``. Special/added tokens keep their literal content (``'<|endoftext|>'``).
    """
    n_tok = len(tokenizer)
    V = n_tok if vocab_size is None else int(vocab_size)
    kind = tokenizer_kind(tokenizer)
    n = min(V, n_tok)
    raw = tokenizer.convert_ids_to_tokens(list(range(n)))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    out = []
    for i, s in enumerate(raw):
        if s is None:
            out.append("")
        elif i in added:
            out.append(added[i].content)
        else:
            out.append(normalize_token(s, kind=kind))
    out.extend([""] * (V - n))
    return out


@dataclass(frozen=True)
class VocabOverlap:
    """Exact string overlap of two vocabularies (after :func:`normalize_token`).

    Attributes
    ----------
    teacher_size, student_size : int
        Vocabulary sizes (lengths of the string lists).
    shared : int
        Number of DISTINCT normalized strings present in both (``''`` never counts).
    teacher_index, student_index : numpy.ndarray of int64
        Every id on that side whose string is shared (several ids may share a string, e.g.
        Gemma's ``'<0x41>'`` and ``'A'``).
    shared_fraction_teacher, shared_fraction_student : float
        ``len(index) / size``: the share of that side's ids whose string is shared.
    """

    teacher_size: int
    student_size: int
    shared: int
    teacher_index: np.ndarray
    student_index: np.ndarray
    shared_fraction_teacher: float
    shared_fraction_student: float


def vocab_overlap(teacher_strings: Sequence[str], student_strings: Sequence[str]) -> VocabOverlap:
    """Exact-match overlap of two normalized vocabularies (:func:`vocab_strings`).

    The probability mass a side keeps on shared strings at a position is
    ``p[teacher_index].sum()`` (:func:`covered_mass`).

    >>> ov = vocab_overlap([" a", "b", "c", ""], ["b", " a", "zz", ""])
    >>> ov.shared, ov.teacher_index.tolist(), ov.student_index.tolist()
    (2, [0, 1], [0, 1])
    >>> round(ov.shared_fraction_teacher, 2), round(ov.shared_fraction_student, 2)
    (0.5, 0.5)
    """
    common = (set(teacher_strings) & set(student_strings)) - {""}
    t_idx = np.fromiter((i for i, s in enumerate(teacher_strings) if s in common), dtype=np.int64)
    s_idx = np.fromiter((i for i, s in enumerate(student_strings) if s in common), dtype=np.int64)
    nt, ns = len(teacher_strings), len(student_strings)
    return VocabOverlap(
        teacher_size=nt,
        student_size=ns,
        shared=len(common),
        teacher_index=t_idx,
        student_index=s_idx,
        shared_fraction_teacher=t_idx.size / nt if nt else 0.0,
        shared_fraction_student=s_idx.size / ns if ns else 0.0,
    )


def covered_mass(p: Any, overlap: VocabOverlap, side: str = "teacher") -> Any:
    """Probability mass on shared strings: ``p[..., index].sum(-1)``.

    Parameters
    ----------
    p : array or tensor, shape (V,) or (T, V)
    overlap : VocabOverlap
    side : ``"teacher"`` or ``"student"``

    Returns
    -------
    float for a (V,) numpy input, else an array/tensor of shape (T,).

    >>> ov = vocab_overlap(["x", "y", "z"], ["y", "w"])
    >>> round(float(covered_mass(np.array([0.2, 0.5, 0.3]), ov, "teacher")), 2)
    0.5
    """
    if side not in ("teacher", "student"):
        raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
    idx = overlap.teacher_index if side == "teacher" else overlap.student_index
    if hasattr(p, "new_zeros"):  # torch
        import torch

        return p[..., torch.as_tensor(idx, device=p.device)].sum(-1)
    out = np.asarray(p)[..., idx].sum(-1)
    return float(out) if np.ndim(out) == 0 else out
