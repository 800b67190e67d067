"""Align two tokenizations of one text and merge multi-token groups.

Convention (used everywhere in ULD Explorer)
--------------------------------------------
Distributions are indexed by the token they PREDICT: ``dist[j]`` is the model's next-token
distribution whose target is token ``j``. It is computed from the logits at the position of
token ``j - 1``, or at the position of BOS when ``j == 0``. Only tokens
``j >= Tokenized.first_predicted`` have a distribution (``first_predicted`` is 0 when a BOS is
prepended for the forward pass, else 1: nothing predicts the first token of a text without
BOS). Rows ``dist[j]`` with ``j < first_predicted`` exist only for shape convenience and are
never read.

Alignment strategies
--------------------
``positional``
    The ULD paper's: the i-th predicted teacher token with the i-th predicted student token,
    truncated to the shorter side. Pairs may cover different bytes
    (see :func:`misalignment_rate`).
``byte-offset``
    TRL GOLD style: groups close wherever both tokenizations reach the same byte boundary; each
    group covers exactly the same bytes on both sides. A multi-token group's distribution is
    merged by the chain rule (:func:`merge_group`), ``"observed"`` or ``"bayesian"``
    (:data:`MERGES`).

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
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .spelling import readable
from .tokenize import Tokenized, tokenize_with_offsets

__all__ = [
    "ALIGNMENTS",
    "MERGES",
    "AlignedPair",
    "Alignment",
    "TokenizationReport",
    "byte_offset_alignment",
    "group_distributions",
    "base_token",
    "merge_group",
    "misalignment_rate",
    "positional_alignment",
    "tokenization_report",
]


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
                label=readable(tb[a:b]),
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


#: Group merges for byte-offset groups of several tokens, by name: what an entry of the merged
#: vector means. Both multiply one position's FULL distribution by the probabilities the model
#: gave to the group's other ACTUAL tokens (TRL GOLD's two strategies, correctly indexed).
MERGES: dict[str, str] = {
    "observed": "first token's distribution x p(actual later tokens): entry v = p(v first) "
                "p(actual rest | actual first token), conditioned on the ACTUAL first token, so a joint "
                "probability only where v is that token (GOLD's default)",
    "bayesian": "last token's distribution x p(actual earlier tokens): entry v = p(actual earlier "
                "tokens, then v), a true joint probability (GOLD's 'bayesian')",
}


def base_token(tokens: Sequence[int], merge: str = "observed") -> int:
    """The group token whose FULL distribution the merged vector scales: the first
    (``"observed"``) or the last (``"bayesian"``). Renormalized, the merged vector is that token's
    distribution; its entry at that token's actual id is the whole group's probability.

    >>> base_token((4, 5, 6), "observed"), base_token((4, 5, 6), "bayesian")
    (4, 6)
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {', '.join(MERGES)} (got {merge!r})")
    if not tokens:
        raise ValueError("a group needs at least one token")
    return int(tokens[0] if merge == "observed" else tokens[-1])


def merge_group(
    dist: Any, ids: Sequence[int], tokens: Sequence[int], merge: str = "observed"
) -> tuple[Any, float]:
    """Merge a multi-token group's distributions by the chain rule.

    For group tokens ``j0 < j1 < ... < jL`` (consecutive), actual ids ``x_j = ids[j]`` and
    ``dist[j]`` the distribution that predicts token ``j`` (module convention):

    ``merge="observed"`` -- the first token's distribution times the later actual tokens':

    .. math:: m^{\\mathrm{obs}} = \\mathrm{dist}[j_0] \\cdot \\prod_{l \\ge 1} \\mathrm{dist}[j_l][x_{j_l}]

    An entry :math:`m^{\\mathrm{obs}}_v = p(v) \\, p(x_{j_1} \\ldots x_{j_L} \\mid x_{j_0})` is the
    probability of ``v`` first times that of the actual rest GIVEN THE ACTUAL FIRST TOKEN: a
    joint probability only at :math:`v = x_{j_0}` (the sequence's probability), not elsewhere.

    ``merge="bayesian"`` -- the last token's distribution times the earlier actual tokens':

    .. math:: m^{\\mathrm{bay}} = \\mathrm{dist}[j_L] \\cdot \\prod_{l < L} \\mathrm{dist}[j_l][x_{j_l}]

    An entry :math:`m^{\\mathrm{bay}}_v = p(x_{j_0} \\ldots x_{j_{L-1}}, v)` is the joint probability
    of the actual earlier tokens followed by ``v``: the chain rule, exactly.

    Both are sub-probability vectors; at the base token's actual id both equal the group's
    sequence probability :math:`\\prod_l \\mathrm{dist}[j_l][x_{j_l}]`.

    Parameters
    ----------
    dist : numpy.ndarray or torch.Tensor, shape (T, V)
        Row ``j`` predicts token ``j`` (rows ``< first_predicted`` are never read here as long
        as ``tokens`` only holds predicted tokens).
    ids : sequence of int, shape (T,)
        The actual token ids.
    tokens : sequence of int
        The group's token indices, consecutive and increasing, at least one.
    merge : {"observed", "bayesian"}
        :data:`MERGES`.

    Returns
    -------
    merged : same type as ``dist``, shape (V,)
        (a torch tensor stays differentiable).
    mass : float
        The product of the scalar probabilities (1.0 for a single token); equals
        ``merged.sum()`` when the base row sums to 1.

    References
    ----------
    .. [1] Hugging Face TRL, ``GOLDConfig.uld_token_merge_strategy`` ("observed" | "bayesian");
       TRL issue #5152 and PR #5905.

    Examples
    --------
    >>> import numpy as np
    >>> dist = np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]])
    >>> merge_group(dist, (0, 1, 0), (0,))[1]
    1.0
    >>> v, m = merge_group(dist, (0, 1, 0), (0, 1, 2))   # dist[0] * 0.5 (id 1 at row 1) * 0.9 (id 0 at row 2)
    >>> v.round(3).tolist(), round(m, 3)
    ([0.09, 0.36], 0.45)
    >>> v, m = merge_group(dist, (0, 1, 0), (0, 1, 2), "bayesian")  # dist[2] * 0.2 (id 0 at row 0) * 0.5
    >>> v.round(3).tolist(), round(m, 3)
    ([0.09, 0.01], 0.1)
    """
    tokens = tuple(int(t) for t in tokens)
    if not tokens:
        raise ValueError("merge_group needs at least one token")
    base = base_token(tokens, merge)
    if any(b != a + 1 for a, b in zip(tokens, tokens[1:])):
        raise ValueError(f"group tokens must be consecutive and increasing, got {tokens}")
    n_rows = dist.shape[0]
    if tokens[0] < 0 or tokens[-1] >= n_rows or (len(tokens) > 1 and tokens[-1] >= len(ids)):
        raise IndexError(f"group {tokens} out of range for {n_rows} distributions / {len(ids)} ids")
    merged = dist[base]
    if len(tokens) == 1:
        return merged, 1.0
    mass = 1.0
    scale = None
    for j in tokens:
        if j == base:
            continue
        pj = dist[j][int(ids[j])]
        scale = pj if scale is None else scale * pj
        mass *= float(pj.detach()) if hasattr(pj, "detach") else float(pj)
    return merged * scale, mass


def group_distributions(
    dist: Any, tok: Tokenized, groups: Sequence[AlignedPair], side: str = "teacher", merge: str = "observed"
) -> tuple[Any, np.ndarray]:
    """The merged distribution of every group for one side (:func:`merge_group`).

    Parameters
    ----------
    dist : (T, V) array or tensor, indexed by predicted token.
    tok : the side's Tokenized.
    groups : the alignment (positional pairs are single-token groups).
    side : ``"teacher"`` or ``"student"``.
    merge : {"observed", "bayesian"}

    Returns
    -------
    merged : (G, V) array or tensor
    masses : (G,) float64 ndarray, the products of the scalar probabilities.
    """
    if side not in ("teacher", "student"):
        raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
    rows, masses = [], []
    for g in groups:
        v, m = merge_group(dist, tok.ids, g.teacher_tokens if side == "teacher" else g.student_tokens, merge)
        rows.append(v)
        masses.append(m)
    if hasattr(dist, "new_zeros"):  # torch
        import torch

        merged = torch.stack(rows) if rows else dist.new_zeros((0, dist.shape[1]))
    else:
        merged = np.stack(rows) if rows else np.zeros((0, dist.shape[1]), dtype=np.asarray(dist).dtype)
    return merged, np.asarray(masses, dtype=np.float64)


@dataclass(frozen=True)
class Alignment:
    """One alignment strategy: the function ``(teacher, student) -> list[AlignedPair]`` and a
    one-line description (shown by the CLI's ``--help`` and the app)."""

    align: Callable[[Tokenized, Tokenized], list[AlignedPair]]
    description: str


#: The alignment strategies, by name (the one registry: the library, the CLI and the app read it).
ALIGNMENTS: dict[str, Alignment] = {
    "positional": Alignment(
        positional_alignment,
        "the ULD paper's: i-th predicted teacher token with i-th student token, truncated to the shorter",
    ),
    "byte-offset": Alignment(
        byte_offset_alignment,
        "TRL GOLD's: groups close where both tokenizations reach the same byte; multi-token groups merged",
    ),
}


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