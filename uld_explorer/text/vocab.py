"""Vocabulary bytes and strings of a tokenizer, and the exact overlap of two vocabularies.

:func:`vocab_bytes` gives the exact bytes every id stands for (:func:`~uld_explorer.text.spelling.token_bytes`):
the collision-free key for matching two vocabularies. :func:`vocab_strings` gives the same as
readable text (display), :func:`vocab_overlap` which keys two vocabularies share,
:func:`covered_mass` how much of a distribution falls on them; :func:`shared_strings_of` both
(keys, strings and their :class:`StringMatch`) for a tokenizer pair, cached.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .spelling import readable, token_bytes, tokenizer_kind

__all__ = ["SharedStrings", "StringMatch", "VocabOverlap", "covered_mass", "match_strings", "shared_strings_of",
           "vocab_bytes", "vocab_overlap", "vocab_strings"]


def vocab_bytes(tokenizer: Any, vocab_size: int | None = None) -> list[bytes]:
    """The exact bytes of every id 0 to V - 1: the key to match two vocabularies on.

    Byte-level ``'Ġ'`` and SentencePiece ``'▁'`` both become a space byte, byte fallback
    ``'<0xHH>'`` that byte (:func:`~uld_explorer.text.spelling.token_bytes`); so ``b' Paris'`` is
    the same key in Qwen, SmolLM2 and Gemma, and a lone byte 0xAA (``b'\\xaa'``) never equals a
    token whose text is the four characters ``\xaa`` (``b'\\\\xaa'``), as their readable strings
    would (Qwen2.5 has both).

    Parameters
    ----------
    tokenizer : transformers tokenizer
    vocab_size : int, optional
        ``V``, the model's logits size; defaults to ``len(tokenizer)``. Ids the tokenizer does
        not know (padded embedding rows, e.g. 151,936 vs 152,064) get ``b''``; a smaller ``V``
        truncates.

    Returns
    -------
    list[bytes]
        Length ``V``. Special/added tokens: their literal content, UTF-8 (``b'<|endoftext|>'``).
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
            out.append(b"")
        elif i in added:
            out.append(added[i].content.encode("utf-8"))
        else:
            out.append(token_bytes(s, kind))
    out.extend([b""] * (V - n))
    return out


def vocab_strings(tokenizer: Any, vocab_size: int | None = None) -> list[str]:
    """The normalized, readable string of every id 0 to V - 1: :func:`vocab_bytes` decoded as
    UTF-8, invalid bytes shown ``'\\xNN'`` (for display; match on :func:`vocab_bytes`).

    Parameters
    ----------
    tokenizer : transformers tokenizer
    vocab_size : int, optional
        As for :func:`vocab_bytes` (unknown ids get ``''``).

    Returns
    -------
    list[str]
        Length ``V``. Special/added tokens keep their literal content (``'<|endoftext|>'``).
    """
    return [readable(b) for b in vocab_bytes(tokenizer, vocab_size)]


@dataclass(frozen=True)
class StringMatch:
    """Which teacher and student tokens stand for the same string.

    Built once per vocabulary pair by :func:`match_strings` and passed to
    :func:`~uld_explorer.restrict_to_shared_vocab` and :func:`~uld_explorer.hybrid_uld`
    (matching 152k keys takes ~0.1 s).

    Attributes
    ----------
    strings : tuple, length S
        The keys both vocabularies contain (strings, or bytes from :func:`vocab_bytes`; an empty
        key never counts: it marks ids without text), in the teacher's vocabulary order.
    teacher_group : ndarray of int64, shape (V_t,)
        For each teacher id, the index of its string in ``strings``, or -1 (unmatched).
    student_group : ndarray of int64, shape (V_s,)
        The same for the student. Several ids of one side may share a string (their mass pools).
    """

    strings: tuple[str, ...]
    teacher_group: np.ndarray
    student_group: np.ndarray

    @property
    def S(self) -> int:
        """Number of shared strings."""
        return len(self.strings)

    @property
    def teacher_matched(self) -> np.ndarray:
        """Teacher ids whose string is shared, ascending, shape (n_t,)."""
        return np.flatnonzero(self.teacher_group >= 0)

    @property
    def student_matched(self) -> np.ndarray:
        """Student ids whose string is shared, ascending, shape (n_s,)."""
        return np.flatnonzero(self.student_group >= 0)

    @property
    def one_to_one(self) -> bool:
        """Every shared string belongs to exactly one id on each side (no pooling)."""
        return self.teacher_matched.size == self.S == self.student_matched.size


def match_strings(teacher_tokens: Sequence[Any], student_tokens: Sequence[Any]) -> StringMatch:
    """Match teacher and student token ids by their text: equal keys match.

    Parameters
    ----------
    teacher_tokens : sequence of str or bytes, length V_t
    student_tokens : sequence of str or bytes, length V_s
        One key per id: :func:`vocab_bytes` of each tokenizer (exact), or strings (synthetic
        vocabularies, :func:`vocab_strings`). An empty key (``''``, ``b''``) never matches.

    Returns
    -------
    StringMatch

    Examples
    --------
    >>> m = match_strings(["dog", "cat", "moon", ""], ["cat", "dog", ""])
    >>> m.strings, m.teacher_group.tolist(), m.student_group.tolist()
    (('dog', 'cat'), [0, 1, -1, -1], [1, 0, -1])
    """
    student_set = set(student_tokens)
    sid: dict[str, int] = {}
    for t in teacher_tokens:
        if t and t in student_set and t not in sid:
            sid[t] = len(sid)
    g_t = np.fromiter((sid.get(t, -1) for t in teacher_tokens), dtype=np.int64, count=len(teacher_tokens))
    g_s = np.fromiter((sid.get(t, -1) for t in student_tokens), dtype=np.int64, count=len(student_tokens))
    return StringMatch(tuple(sid), g_t, g_s)


@dataclass(frozen=True)
class VocabOverlap:
    """Exact overlap of two vocabularies (of :func:`vocab_bytes`, or of any keys).

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


def vocab_overlap(teacher_strings: Sequence[Any], student_strings: Sequence[Any]) -> VocabOverlap:
    """Exact-match overlap of two vocabularies: :func:`match_strings` counted.

    Pass :func:`vocab_bytes` of each tokenizer (exact) or strings.

    The probability mass a side keeps on shared strings at a position is
    ``p[teacher_index].sum()`` (:func:`covered_mass`).

    >>> ov = vocab_overlap([" a", "b", "c", ""], ["b", " a", "zz", ""])
    >>> ov.shared, ov.teacher_index.tolist(), ov.student_index.tolist()
    (2, [0, 1], [0, 1])
    >>> round(ov.shared_fraction_teacher, 2), round(ov.shared_fraction_student, 2)
    (0.5, 0.5)
    """
    m = match_strings(teacher_strings, student_strings)
    t_idx, s_idx = m.teacher_matched, m.student_matched
    nt, ns = len(teacher_strings), len(student_strings)
    return VocabOverlap(
        teacher_size=nt,
        student_size=ns,
        shared=m.S,
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


@dataclass(frozen=True)
class SharedStrings:
    """Two vocabularies as exact keys and as readable strings (object arrays, one entry per id),
    and their :class:`StringMatch`.

    The keys (:func:`vocab_bytes` for real tokenizers) decide what is the same token on both
    sides: the shared strings of KL and the hybrid, the cost-0 pairs of the string-cost token OT.
    The strings are shown (top-1s, plans) and compared by the edit-distance cost.

    Attributes
    ----------
    teacher_keys, student_keys : ndarray of object, shapes (V_t,), (V_s,)
    teacher_strings, student_strings : ndarray of object (str), shapes (V_t,), (V_s,)
    match : StringMatch
    """

    teacher_keys: np.ndarray
    student_keys: np.ndarray
    teacher_strings: np.ndarray
    student_strings: np.ndarray
    match: StringMatch

    @classmethod
    def of_tokens(cls, teacher_tokens: Sequence[str], student_tokens: Sequence[str]) -> "SharedStrings":
        """Vocabularies given as token strings (keys and strings the same, e.g. synthetic ones).

        >>> SharedStrings.of_tokens(["a", "b"], ["b", "c"]).match.S
        1
        """
        t = np.array(list(teacher_tokens), dtype=object)
        s = np.array(list(student_tokens), dtype=object)
        return cls(t, s, t, s, match_strings(t.tolist(), s.tolist()))


_KEYS: "weakref.WeakKeyDictionary[Any, dict[int, tuple[np.ndarray, np.ndarray]]]" = weakref.WeakKeyDictionary()
_SHARED: "weakref.WeakKeyDictionary[Any, dict[tuple, tuple[Any, SharedStrings]]]" = weakref.WeakKeyDictionary()


def _vocab_cached(tokenizer: Any, V: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        per_tok = _KEYS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        per_tok = {}
    if V not in per_tok:
        keys = vocab_bytes(tokenizer, V)
        per_tok[V] = (np.array(keys, dtype=object), np.array([readable(k) for k in keys], dtype=object))
    return per_tok[V]


def shared_strings_of(teacher_tokenizer: Any, student_tokenizer: Any, V_t: int, V_s: int) -> SharedStrings:
    """The :class:`SharedStrings` of a tokenizer pair (``V_t``, ``V_s``: the models' logit widths,
    which may exceed the tokenizers' lengths), cached for as long as both tokenizers live
    (building them takes ~1 s for 152k ids)."""
    key = (id(student_tokenizer), int(V_t), int(V_s))
    try:
        per_teacher = _SHARED.setdefault(teacher_tokenizer, {})
    except TypeError:
        per_teacher = {}
    hit = per_teacher.get(key)
    if hit is not None and hit[0]() is student_tokenizer:
        return hit[1]
    tk, ts = _vocab_cached(teacher_tokenizer, V_t)
    sk, ss = _vocab_cached(student_tokenizer, V_s)
    shared = SharedStrings(tk, sk, ts, ss, match_strings(tk.tolist(), sk.tolist()))
    try:
        per_teacher[key] = (weakref.ref(student_tokenizer), shared)
    except TypeError:
        pass
    return shared
