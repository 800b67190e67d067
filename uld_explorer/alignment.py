"""Token alignment across two tokenizers, chain-rule merging and tokenizer-mismatch analysis.

Convention (used everywhere in ULD Explorer)
--------------------------------------------
Distributions are indexed by the token they PREDICT: ``dist[j]`` is the model's next-token
distribution whose target is token ``j``. It is computed from the logits at the position of
token ``j - 1``, or at the position of BOS when ``j == 0``. Only tokens
``j >= Tokenized.first_predicted`` have a distribution (``first_predicted`` is 0 when a BOS is
prepended for the forward pass, else 1: nothing predicts the first token of a text without
BOS). Rows ``dist[j]`` with ``j < first_predicted`` exist only for shape convenience and are
never read.

Byte spans
----------
Every token carries a half-open span ``[start, end)`` in ``text.encode("utf-8")``. Spans come
from each token's OWN bytes (byte-level BPE: GPT-2's ``bytes_to_unicode`` map inverted on the
token string; SentencePiece: ``'▁'`` -> space and byte-fallback ``'<0xHH>'`` -> that byte), never
from decoded strings, so a character split across tokens (an emoji in three byte-level tokens)
gets exact sub-character spans. When a tokenizer's normalizer changes the text (e.g. NFC in
Qwen2) the token bytes no longer reproduce it; then the tokenizer's own ``offset_mapping`` is
used (character offsets converted to byte offsets, the tokens' spans made contiguous).

Alignment strategies
--------------------
``positional``
    The ULD paper's: the i-th predicted teacher token with the i-th predicted student token,
    truncated to the shorter side. Pairs may cover different bytes
    (see :func:`misalignment_rate`).
``byte-offset``
    TRL GOLD style: groups close wherever both tokenizations reach the same byte boundary; each
    group covers exactly the same bytes on both sides. A multi-token group's distribution is
    merged by the chain rule (:func:`merge_group`).

>>> import numpy as np
>>> dist = np.array([[0.0, 0.0, 0.0],      # row 0: unused (nothing predicts token 0)
...                  [0.5, 0.3, 0.2],      # predicts token 1
...                  [0.1, 0.6, 0.3]])     # predicts token 2 (its actual id is 1: p = 0.6)
>>> v, mass = merge_group(dist, ids=(2, 0, 1), tokens=(1, 2))
>>> v.round(2).tolist(), round(mass, 2)
([0.3, 0.18, 0.12], 0.6)
"""

from __future__ import annotations

import bisect
import re
import warnings
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

__all__ = [
    "AlignedPair",
    "Tokenized",
    "TokenizationReport",
    "VocabOverlap",
    "byte_offset_alignment",
    "bytes_to_unicode",
    "covered_mass",
    "group_distributions",
    "merge_group",
    "misalignment_rate",
    "normalize_token",
    "positional_alignment",
    "tokenization_report",
    "tokenize_with_offsets",
    "tokenizer_kind",
    "vocab_overlap",
    "vocab_strings",
]

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
SPIECE_UNDERLINE = "\u2581"  # '▁'


# --------------------------------------------------------------------------------------------
# byte-level helpers
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE.

    Printable Latin-1 bytes map to themselves; the other 68 bytes (controls, space, ...) map to
    ``chr(256 + k)`` in order, so ``' '`` (0x20) becomes ``'Ġ'`` and ``'\\n'`` becomes ``'Ċ'``.

    Returns
    -------
    dict[int, str]
        256 entries, byte value -> one character.

    >>> m = bytes_to_unicode()
    >>> len(m), m[ord(" ")], m[ord("\\n")], m[ord("A")]
    (256, 'Ġ', 'Ċ', 'A')
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _byte_level_bytes(s: str) -> bytes | None:
    """Invert the GPT-2 map on a token string; None if a character is outside the map."""
    dec = _unicode_to_bytes()
    try:
        return bytes(dec[c] for c in s)
    except KeyError:
        return None


def _sentencepiece_bytes(s: str) -> bytes:
    """'▁' -> space, '<0xHH>' -> the byte, anything else -> its UTF-8 bytes."""
    m = _BYTE_FALLBACK.match(s)
    if m:
        return bytes([int(m.group(1), 16)])
    return s.replace(SPIECE_UNDERLINE, " ").encode("utf-8")


def _readable(b: bytes) -> str:
    return b.decode("utf-8", errors="backslashreplace")


def tokenizer_kind(tokenizer: Any) -> str:
    """How a tokenizer spells token bytes: ``"byte_level"``, ``"sentencepiece"`` or ``"other"``.

    Read from the fast tokenizer's pipeline (a ``ByteLevel`` pre-tokenizer or decoder means
    byte-level BPE; ``Metaspace``, a ``'▁'`` replacement or byte fallback means
    SentencePiece-style). Slow GPT-2 tokenizers (with a ``byte_decoder``) count as byte-level.

    Parameters
    ----------
    tokenizer : transformers tokenizer (fast preferred) or ``tokenizers.Tokenizer``.

    Returns
    -------
    str
    """
    try:
        return _KIND_CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    kind = _tokenizer_kind(tokenizer)
    try:
        _KIND_CACHE[tokenizer] = kind
    except TypeError:  # pragma: no cover - not weak-referenceable
        pass
    return kind


_KIND_CACHE: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def _tokenizer_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and hasattr(tokenizer, "pre_tokenizer") and hasattr(tokenizer, "model"):
        backend = tokenizer
    if backend is None:
        return "byte_level" if hasattr(tokenizer, "byte_decoder") else "other"
    # the components' reprs (serializing the whole tokenizer is seconds for a 262k vocabulary)
    parts = " ".join(str(getattr(backend, a, None)) for a in ("pre_tokenizer", "decoder"))
    if "ByteLevel" in parts:
        return "byte_level"
    if (
        "Metaspace" in parts
        or SPIECE_UNDERLINE in parts
        or SPIECE_UNDERLINE in str(getattr(backend, "normalizer", None))
        or bool(getattr(getattr(backend, "model", None), "byte_fallback", False))
    ):
        return "sentencepiece"
    return "other"


# --------------------------------------------------------------------------------------------
# tokenization with byte spans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokenized:
    """One text's tokenization with exact byte spans.

    Attributes
    ----------
    text : str
        The text that was tokenized (after truncation by ``max_tokens``: the covered prefix).
    ids : tuple[int, ...]
        ``(T,)`` the text's token ids, NO special tokens (no BOS/EOS added).
    strings : tuple[str, ...]
        ``(T,)`` readable token text: the token's bytes decoded as UTF-8 with
        ``errors="backslashreplace"`` (a split emoji shows as ``'\\\\xf0\\\\x9f'``).
    byte_spans : tuple[tuple[int, int], ...]
        ``(T,)`` half-open ``[start, end)`` in ``text.encode("utf-8")``; contiguous, covering
        every byte exactly once.
    bos_id : int | None
        A BOS id to prepend for the forward pass (the tokenizer has one AND adds it by default,
        e.g. Gemma), else None.
    """

    text: str
    ids: tuple[int, ...]
    strings: tuple[str, ...]
    byte_spans: tuple[tuple[int, int], ...]
    bos_id: int | None

    @property
    def first_predicted(self) -> int:
        """Index of the first token that has a distribution: 0 with BOS, else 1."""
        return 0 if self.bos_id is not None else 1

    @property
    def text_bytes(self) -> bytes:
        """``text.encode("utf-8")``."""
        return self.text.encode("utf-8")

    @property
    def model_input_ids(self) -> tuple[int, ...]:
        """The ids to feed the model: ``(bos_id,) + ids`` when a BOS is used, else ``ids``.

        With BOS the logits at input position ``k`` give ``dist[k]`` (they predict token ``k``);
        without BOS they give ``dist[k + 1]``. In both cases
        ``dist[j] = softmax(logits[j - first_predicted])`` for ``j >= first_predicted``.
        """
        return ((self.bos_id,) if self.bos_id is not None else ()) + self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def token_bytes(self, j: int) -> bytes:
        """The bytes of token ``j`` in the text, ``text_bytes[start_j:end_j]``."""
        a, b = self.byte_spans[j]
        return self.text_bytes[a:b]


def _adds_bos(tokenizer: Any) -> int | None:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return None
    try:
        with_special = list(tokenizer("a", add_special_tokens=True)["input_ids"])
        without = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    except Exception:  # pragma: no cover - exotic tokenizers
        return None
    if with_special and with_special[0] == bos and (not without or without[0] != bos):
        return int(bos)
    return None


def _own_bytes(tokenizer: Any, ids: Sequence[int], kind: str) -> list[bytes] | None:
    """Each token's own bytes, or None when they cannot be derived from the token strings."""
    toks = tokenizer.convert_ids_to_tokens(list(ids))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    out: list[bytes] = []
    for i, s in zip(ids, toks):
        if s is None:
            return None
        if i in added:
            content = added[i].content
            out.append(
                content.replace(SPIECE_UNDERLINE, " ").encode("utf-8")
                if kind == "sentencepiece"
                else content.encode("utf-8")
            )
        elif kind == "byte_level":
            b = _byte_level_bytes(s)
            if b is None:
                return None
            out.append(b)
        elif kind == "sentencepiece":
            out.append(_sentencepiece_bytes(s))
        else:
            return None
    return out


def _spans_from_bytes(pieces: list[bytes], text_bytes: bytes) -> list[tuple[int, int]] | None:
    joined = b"".join(pieces)
    if joined != text_bytes:
        # a SentencePiece dummy prefix: a leading space the text does not have
        if (
            pieces
            and joined[:1] == b" "
            and joined[1:] == text_bytes
            and pieces[0][:1] == b" "
        ):
            pieces = [pieces[0][1:]] + pieces[1:]
        else:
            return None
    spans, pos = [], 0
    for p in pieces:
        spans.append((pos, pos + len(p)))
        pos += len(p)
    return spans


def _spans_from_offsets(tokenizer: Any, text: str, n_ids: int) -> list[tuple[int, int]] | None:
    """Byte spans from the tokenizer's character offsets (start of j to start of j+1)."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except Exception:
        return None
    offsets = list(enc.get("offset_mapping") or [])
    if len(offsets) != n_ids or n_ids == 0:
        return None
    char_to_byte = [0]
    for ch in text:
        char_to_byte.append(char_to_byte[-1] + len(ch.encode("utf-8")))
    n_chars = len(text)
    if any(not (0 <= a <= b <= n_chars) for a, b in offsets):
        return None
    if any(a2 < a1 for (a1, _), (a2, _) in zip(offsets, offsets[1:])):
        return None  # tokens out of text order
    # boundary between token j-1 and j: a whitespace gap (dropped by a pre-tokenizer) goes to
    # the token after it, any other gap (e.g. a combining mark a normalizer merged) to the one before
    starts = [0]
    for (_, prev_end), (a, _) in zip(offsets, offsets[1:]):
        if prev_end < a and text[prev_end:a].isspace():
            starts.append(char_to_byte[prev_end])
        else:
            starts.append(char_to_byte[a])
    if any(s2 < s1 for s1, s2 in zip(starts, starts[1:])):
        return None
    ends = starts[1:] + [char_to_byte[-1]]
    return list(zip(starts, ends))


def _char_boundary(text_bytes: bytes, pos: int) -> bool:
    return pos >= len(text_bytes) or (text_bytes[pos] & 0xC0) != 0x80


def tokenize_with_offsets(tokenizer: Any, text: str, max_tokens: int | None = None) -> Tokenized:
    """Tokenize ``text`` and give every token its exact span in the UTF-8 bytes.

    The spans come from each token's own bytes (see the module docstring); the check
    ``b"".join(token bytes) == text.encode("utf-8")`` must hold, otherwise the tokenizer's
    ``offset_mapping`` is used (character offsets -> byte offsets; token ``j`` spans from its
    start to token ``j+1``'s start; a whitespace gap a pre-tokenizer dropped goes to the token
    after it, other dropped bytes, e.g. a combining mark NFC merged, to the token before).

    Parameters
    ----------
    tokenizer : transformers tokenizer
        A fast tokenizer is needed for the offset fallback.
    text : str
        Non-empty, not whitespace-only.
    max_tokens : int, optional
        Keep at most this many tokens (a ``UserWarning`` names how many were cut). The cut is
        moved back to a character boundary (so possibly fewer than ``max_tokens`` remain) and
        ``Tokenized.text`` becomes the covered prefix, keeping the invariant that the spans
        cover ``text`` exactly.

    Returns
    -------
    Tokenized

    Raises
    ------
    ValueError
        Empty or whitespace-only text, ``max_tokens < 1``, or neither the token bytes nor the
        offsets reproduce the text.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty or whitespace-only: there is nothing to tokenize")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise ValueError(f"the tokenizer produced no tokens for {text[:40]!r}")
    text_bytes = text.encode("utf-8")
    kind = tokenizer_kind(tokenizer)
    pieces = _own_bytes(tokenizer, ids, kind)
    spans = _spans_from_bytes(pieces, text_bytes) if pieces is not None else None
    from_offsets = spans is None
    if from_offsets:
        spans = _spans_from_offsets(tokenizer, text, len(ids))
    if spans is None:
        raise ValueError(
            f"cannot map the tokens of {type(tokenizer).__name__} back to the text's bytes: "
            "neither the tokens' own bytes nor the tokenizer's offset_mapping reproduce "
            f"{text[:40]!r}"
        )
    if max_tokens is not None and len(ids) > max_tokens:
        keep = max_tokens
        while keep > 0 and not _char_boundary(text_bytes, spans[keep - 1][1]):
            keep -= 1
        if keep == 0:
            raise ValueError(
                f"max_tokens={max_tokens} is too small: the first character already needs more tokens"
            )
        warnings.warn(
            f"text has {len(ids)} tokens for {type(tokenizer).__name__}; cut {len(ids) - keep} "
            f"token(s), keeping the first {keep} (max_tokens={max_tokens})",
            UserWarning,
            stacklevel=2,
        )
        ids, spans = ids[:keep], spans[:keep]
        text_bytes = text_bytes[: spans[-1][1]]
        text = text_bytes.decode("utf-8")
    if from_offsets and pieces is not None:
        # the text was normalized (e.g. NFC): show what the token itself spells
        strings = tuple(_readable(pieces[k]) for k in range(len(ids)))
    else:
        strings = tuple(_readable(text_bytes[a:b]) for a, b in spans)
    return Tokenized(
        text=text,
        ids=tuple(ids),
        strings=strings,
        byte_spans=tuple((int(a), int(b)) for a, b in spans),
        bos_id=_adds_bos(tokenizer),
    )


# --------------------------------------------------------------------------------------------
# alignment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignedPair:
    """One aligned teacher/student pair (positional) or group (byte-offset).

    Attributes
    ----------
    teacher_tokens : tuple[int, ...]
        Indices ``j`` of the teacher tokens PREDICTED in this pair/group (consecutive; one for
        positional alignment, one or more for byte-offset alignment).
    student_tokens : tuple[int, ...]
        Same for the student.
    byte_span : tuple[int, int]
        The teacher's byte span of the pair/group (for byte-offset groups both sides span
        exactly these bytes).
    same_span : bool
        Both sides cover exactly the same bytes.
    label : str
        The text predicted: the teacher's bytes of ``byte_span`` decoded with backslashreplace.
    """

    teacher_tokens: tuple[int, ...]
    student_tokens: tuple[int, ...]
    byte_span: tuple[int, int]
    same_span: bool
    label: str


def _check_same_text(teacher: Tokenized, student: Tokenized) -> int:
    """Return the number of common bytes; the texts must agree (one may be a truncated prefix)."""
    tb, sb = teacher.text_bytes, student.text_bytes
    n = min(len(tb), len(sb))
    if tb[:n] != sb[:n]:
        raise ValueError(
            "teacher and student tokenized different texts "
            f"({teacher.text[:30]!r} vs {student.text[:30]!r})"
        )
    return n


def _group_span(tok: Tokenized, tokens: Sequence[int]) -> tuple[int, int]:
    return (tok.byte_spans[tokens[0]][0], tok.byte_spans[tokens[-1]][1])


def positional_alignment(teacher: Tokenized, student: Tokenized) -> list[AlignedPair]:
    """The ULD paper's alignment: i-th predicted teacher token with i-th predicted student token.

    Pair ``i`` holds teacher token ``teacher.first_predicted + i`` and student token
    ``student.first_predicted + i``, for ``i < min(T_t - fp_t, T_s - fp_s)`` (truncated to the
    shorter side). Token identities and byte spans are ignored, so pairs may predict different
    text (``same_span`` False).

    Returns
    -------
    list[AlignedPair]
        ``byte_span`` and ``label`` are the teacher's.
    """
    _check_same_text(teacher, student)
    ft, fs = teacher.first_predicted, student.first_predicted
    n = max(0, min(len(teacher) - ft, len(student) - fs))
    out = []
    for i in range(n):
        jt, js = ft + i, fs + i
        span = teacher.byte_spans[jt]
        out.append(
            AlignedPair(
                teacher_tokens=(jt,),
                student_tokens=(js,),
                byte_span=span,
                same_span=span == student.byte_spans[js],
                label=teacher.strings[jt],
            )
        )
    return out


def _starts(tok: Tokenized) -> list[int]:
    return [a for a, _ in tok.byte_spans]


def _boundaries(tok: Tokenized) -> set[int]:
    """Byte offsets where a token starts, plus the end of the covered bytes."""
    out = set(_starts(tok))
    out.add(tok.byte_spans[-1][1])
    return out


def byte_offset_alignment(teacher: Tokenized, student: Tokenized) -> list[AlignedPair]:
    """TRL GOLD-style alignment on byte boundaries.

    Walk both tokenizations' byte boundaries; a group closes wherever both reach the same byte
    boundary, so each group covers exactly the same bytes ``[a, b)`` on both sides and holds
    every token that starts in ``[a, b)``.

    Only predicted tokens (``j >= first_predicted``) take part. The first group starts at
    ``a0`` = the smallest byte offset ``>=`` both sides' first predicted token start at which
    BOTH sides have a token starting; tokens before ``a0`` are dropped (e.g. without BOS the
    first token of each side, and any token up to the next common boundary after it). When one
    side was truncated, groups stop at the last common boundary within the shorter text.

    Returns
    -------
    list[AlignedPair]
        Groups in text order; the concatenated group bytes reproduce
        ``text_bytes[a0:end]`` exactly, and ``same_span`` is always True.

    Examples
    --------
    Teacher "ab|c|d", student "a|bc|d" without BOS: the first predicted tokens start at byte 2
    (teacher 'c') and 1 (student 'bc'); the first common start >= 2 is 3 ('d').

    >>> t = Tokenized("abcd", (0, 1, 2), ("ab", "c", "d"), ((0, 2), (2, 3), (3, 4)), None)
    >>> s = Tokenized("abcd", (0, 1, 2), ("a", "bc", "d"), ((0, 1), (1, 3), (3, 4)), None)
    >>> [(g.teacher_tokens, g.student_tokens, g.label) for g in byte_offset_alignment(t, s)]
    [((2,), (2,), 'd')]
    """
    n_common = _check_same_text(teacher, student)
    ft, fs = teacher.first_predicted, student.first_predicted
    if ft >= len(teacher) or fs >= len(student):
        return []
    st, ss = _starts(teacher), _starts(student)
    lo = max(st[ft], ss[fs])
    common = sorted(b for b in (_boundaries(teacher) & _boundaries(student)) if lo <= b <= n_common)
    # the first cut must be a token start on both sides; the later cuts are any common boundary
    starts_both = set(st) & set(ss)
    first = next((b for b in common if b in starts_both and b < n_common), None)
    if first is None:
        return []
    cuts = [b for b in common if b >= first]
    tb = teacher.text_bytes
    groups: list[AlignedPair] = []
    for a, b in zip(cuts, cuts[1:]):
        t_idx = tuple(
            j for j in range(bisect.bisect_left(st, a), bisect.bisect_left(st, b)) if j >= ft
        )
        s_idx = tuple(
            j for j in range(bisect.bisect_left(ss, a), bisect.bisect_left(ss, b)) if j >= fs
        )
        if not t_idx or not s_idx:  # pragma: no cover - impossible with non-empty spans
            continue
        span = (a, b)
        groups.append(
            AlignedPair(
                teacher_tokens=t_idx,
                student_tokens=s_idx,
                byte_span=span,
                same_span=_group_span(teacher, t_idx) == _group_span(student, s_idx) == span,
                label=_readable(tb[a:b]),
            )
        )
    return groups


def misalignment_rate(teacher: Tokenized, student: Tokenized) -> float:
    """Share of positional pairs whose predicted tokens cover different byte spans.

    .. math:: r = \\frac{\\#\\{i : \\mathrm{span}_t(ft+i) \\ne \\mathrm{span}_s(fs+i)\\}}{N},
              \\quad N = \\min(T_t - ft,\\ T_s - fs)

    Returns
    -------
    float
        In ``[0, 1]``; ``nan`` when there is no positional pair (N == 0).
    """
    pairs = positional_alignment(teacher, student)
    if not pairs:
        return float("nan")
    return sum(not p.same_span for p in pairs) / len(pairs)


def merge_group(dist: Any, ids: Sequence[int], tokens: Sequence[int]) -> tuple[Any, float]:
    """Merge a multi-token group's distributions by the chain rule.

    For group tokens ``j0 < j1 < ... < jL`` (consecutive), with ``dist[j]`` the distribution
    that predicts token ``j`` (module convention):

    .. math:: m = \\mathrm{dist}[j_0] \\cdot \\prod_{l \\ge 1} \\mathrm{dist}[j_l][\\mathrm{ids}[j_l]]

    i.e. the probability of each possible first token, times the probability the model gives to
    the ACTUAL later tokens of the group. ``m`` is a sub-probability vector: ``m[v]`` is the
    probability of "first token v, then exactly the group's later tokens".

    Parameters
    ----------
    dist : numpy.ndarray or torch.Tensor, shape (T, V)
        Row ``j`` predicts token ``j`` (rows ``< first_predicted`` are never read here as long
        as ``tokens`` only holds predicted tokens).
    ids : sequence of int, shape (T,)
        The actual token ids.
    tokens : sequence of int
        The group's token indices, consecutive and increasing, at least one.

    Returns
    -------
    merged : same type as ``dist``, shape (V,)
        (a torch tensor stays differentiable).
    mass : float
        The product of the continuation probabilities (1.0 for a single token); equals
        ``merged.sum()`` when ``dist[j0]`` sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> dist = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    >>> merge_group(dist, (0, 1, 0), (0,))[1]
    1.0
    >>> v, m = merge_group(dist, (0, 1, 0), (0, 1, 2))   # 0.5 (id 1 at row 1) * 0.9 (id 0 at row 2)
    >>> v.round(3).tolist(), round(m, 3)
    ([0.09, 0.36], 0.45)
    """
    tokens = tuple(int(t) for t in tokens)
    if not tokens:
        raise ValueError("merge_group needs at least one token")
    if any(b != a + 1 for a, b in zip(tokens, tokens[1:])):
        raise ValueError(f"group tokens must be consecutive and increasing, got {tokens}")
    n_rows = dist.shape[0]
    if tokens[0] < 0 or tokens[-1] >= n_rows or tokens[-1] >= len(ids):
        raise IndexError(f"group {tokens} out of range for {n_rows} distributions / {len(ids)} ids")
    merged = dist[tokens[0]]
    if len(tokens) == 1:
        return merged, 1.0
    mass = 1.0
    scale = None
    for j in tokens[1:]:
        pj = dist[j][int(ids[j])]
        scale = pj if scale is None else scale * pj
        mass *= float(pj.detach()) if hasattr(pj, "detach") else float(pj)
    return merged * scale, mass


def group_distributions(
    dist: Any, tok: Tokenized, groups: Sequence[AlignedPair], side: str = "teacher"
) -> tuple[Any, np.ndarray]:
    """Chain-rule merged distribution of every group for one side.

    Parameters
    ----------
    dist : (T, V) array or tensor, indexed by predicted token.
    tok : the side's Tokenized.
    groups : the alignment (positional pairs are single-token groups).
    side : ``"teacher"`` or ``"student"``.

    Returns
    -------
    merged : (G, V) array or tensor
    masses : (G,) float64 ndarray, the continuation products.
    """
    if side not in ("teacher", "student"):
        raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
    rows, masses = [], []
    for g in groups:
        v, m = merge_group(dist, tok.ids, g.teacher_tokens if side == "teacher" else g.student_tokens)
        rows.append(v)
        masses.append(m)
    if hasattr(dist, "new_zeros"):  # torch
        import torch

        merged = torch.stack(rows) if rows else dist.new_zeros((0, dist.shape[1]))
    else:
        merged = np.stack(rows) if rows else np.zeros((0, dist.shape[1]), dtype=np.asarray(dist).dtype)
    return merged, np.asarray(masses, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# vocabulary overlap
# --------------------------------------------------------------------------------------------


def normalize_token(s: str, kind: str = "auto") -> str:
    """Normalize a vocabulary token string to the text it stands for.

    ``'Ġ'`` -> ``' '``, ``'Ċ'`` -> ``'\\n'`` (all GPT-2 byte-level characters -> bytes -> UTF-8),
    ``'▁'`` -> ``' '``, byte fallback ``'<0xHH>'`` -> that byte; bytes that are not valid UTF-8
    on their own are shown with ``backslashreplace`` (``'\\\\xf0'``).

    Parameters
    ----------
    s : str
        A token string as in ``convert_ids_to_tokens``.
    kind : {"auto", "byte_level", "sentencepiece", "plain"}
        The tokenizer's spelling (:func:`tokenizer_kind`; ``"other"`` counts as ``"plain"``).
        ``"auto"`` guesses per string: ``'▁'`` or ``<0xHH>`` -> SentencePiece; a string made of
        GPT-2 byte characters that contains a remapped one (U+0100-U+0143) or decodes to valid
        UTF-8 -> byte-level; otherwise unchanged. Pass the kind when known: a SentencePiece
        ``'é'`` would otherwise read as byte 0xE9.

    >>> normalize_token("ĠParis"), normalize_token("▁Paris"), normalize_token("<0x0A>")
    (' Paris', ' Paris', '\\n')
    >>> normalize_token("ĠcafÃ©"), normalize_token("ðŁ")
    (' café', '\\\\xf0\\\\x9f')
    >>> normalize_token("café", kind="sentencepiece")
    'café'
    """
    if kind == "other":
        kind = "plain"
    if kind == "plain":
        return s
    if kind == "sentencepiece":
        return _readable(_sentencepiece_bytes(s))
    if kind == "byte_level":
        b = _byte_level_bytes(s)
        return s if b is None else _readable(b)
    if kind != "auto":
        raise ValueError(f"unknown kind {kind!r}")
    if SPIECE_UNDERLINE in s or _BYTE_FALLBACK.match(s):
        return _readable(_sentencepiece_bytes(s))
    b = _byte_level_bytes(s)
    if b is None:
        return s
    if any(0x100 <= ord(c) <= 0x143 for c in s):
        return _readable(b)
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return s


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


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenizationReport:
    """Both tokenizations of a text and how they line up.

    Attributes
    ----------
    teacher, student : Tokenized
    common_boundaries : tuple[int, ...]
        Sorted byte offsets where both have a token boundary (a token start, or the end of the
        text), including 0 and ``len(text_bytes)``.
    groups : list[AlignedPair]
        The byte-offset alignment.
    misalignment_rate : float
        :func:`misalignment_rate` of the positional alignment.
    """

    teacher: Tokenized
    student: Tokenized
    common_boundaries: tuple[int, ...]
    groups: list[AlignedPair]
    misalignment_rate: float


def tokenization_report(teacher_tokenizer: Any, student_tokenizer: Any, text: str) -> TokenizationReport:
    """Tokenize ``text`` with both tokenizers and compare the tokenizations (no truncation)."""
    t = tokenize_with_offsets(teacher_tokenizer, text)
    s = tokenize_with_offsets(student_tokenizer, text)
    return TokenizationReport(
        teacher=t,
        student=s,
        common_boundaries=tuple(sorted(_boundaries(t) & _boundaries(s))),
        groups=byte_offset_alignment(t, s),
        misalignment_rate=misalignment_rate(t, s),
    )
