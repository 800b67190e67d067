"""MinED: map each teacher token to the student token with the nearest spelling (FuseLLM's baseline).

The minimum-edit-distance vocabulary mapping of Wan et al. 2024 (FuseLLM), the baseline many
cross-tokenizer distillation papers compare ULD with: every teacher token goes to ONE student
token, the one whose spelling is closest in Levenshtein distance; the teacher's distribution is
then carried onto the student's vocabulary (the KL of it is
:func:`~uld_explorer.divergences.mined_kl`).

Spelling here is the token's exact bytes (:func:`~uld_explorer.text.vocab_bytes`: ``'Ġ'`` and
``'▁'`` are a space byte, byte fallback its byte), so the distance counts BYTE edits: ``é`` against
``e`` is two edits (``c3 a9`` vs ``65``). String keys (synthetic vocabularies) are compared as their
UTF-8 bytes. Ties are broken by the LOWEST student id, exact matches first (distance 0; when several
student ids spell the same bytes, the lowest).

A full 151,936 x 49,152 distance matrix is out of reach (7.5e9 pairs), so :class:`MinEDMapper`
maps every teacher id with an exact twin at once (a dictionary lookup, O(V)), and searches the
nearest spelling only for the teacher ids asked for (the top-k of a distribution): one row of
RapidFuzz's C++ Levenshtein against every student spelling, ~1-3 ms per id; each result is cached
for the vocabulary pair (:func:`mined_mapper`).

References
----------
.. [1] Wan et al., "Knowledge Fusion of Large Language Models", ICLR 2024 (FuseLLM; MinED mapping).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .vocab import SharedStrings, StringMatch, match_strings

__all__ = ["MinEDMapper", "MinEDMapping", "mined_mapper", "spelling"]

#: Teacher ids searched at once (bounds the distance block: ids x V_s int32).
SEARCH_CHUNK = 64


def spelling(key: Any) -> str:
    """A token's spelling as a str with ONE character per byte (Latin-1 of its bytes; a str key is
    taken as its UTF-8 bytes), so that string edit distances count byte edits.

    >>> spelling(b"caf\\xc3\\xa9") == spelling("café"), len(spelling("café"))
    (True, 5)
    """
    b = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    return b.decode("latin-1")


@dataclass(frozen=True)
class MinEDMapping:
    """The MinED targets of some teacher ids.

    Attributes
    ----------
    student_index : ndarray of int64, shape (n,)
        The student id each teacher id maps to; -1: unmapped (an empty teacher key, or no
        student spelling at all).
    distance : ndarray of int64, shape (n,)
        The byte edit distance to it (0: an exact match; -1 where unmapped).
    """

    student_index: np.ndarray
    distance: np.ndarray

    @property
    def exact(self) -> np.ndarray:
        """Which ids map to an identical spelling, shape (n,) bool."""
        return self.distance == 0


class MinEDMapper:
    """The MinED mapping of one vocabulary pair, its exact part built at once, its nearest-spelling
    part searched on demand and cached.

    Parameters
    ----------
    teacher_keys : sequence of bytes or str, length V_t
    student_keys : sequence of bytes or str, length V_s
        One key per id (:func:`~uld_explorer.text.vocab_bytes`, or strings); an empty key marks an
        id without text: never mapped, never a target.
    match : StringMatch, optional
        :func:`~uld_explorer.text.match_strings` of the same keys, when already built.

    Examples
    --------
    >>> m = MinEDMapper(["cat", "cart", "dog", ""], ["dot", "cat", "car", "cat"])
    >>> r = m.map([0, 1, 2, 3])
    >>> r.student_index.tolist(), r.distance.tolist()
    ([1, 1, 0, -1], [0, 1, 1, -1])
    """

    def __init__(self, teacher_keys: Sequence[Any], student_keys: Sequence[Any],
                 match: StringMatch | None = None) -> None:
        t_keys, s_keys = list(teacher_keys), list(student_keys)
        self.V_t, self.V_s = len(t_keys), len(s_keys)
        match = match_strings(t_keys, s_keys) if match is None else match
        # exact twins, every teacher id at once: the lowest student id of each shared key
        sg = np.asarray(match.student_group)
        groups, first = np.unique(sg, return_index=True)
        lowest = np.full(match.S, -1, dtype=np.int64)
        lowest[groups[groups >= 0]] = first[groups >= 0]
        tg = np.asarray(match.teacher_group)
        #: Per teacher id: its exact twin (the lowest student id spelling the same bytes), or -1.
        self.exact_target = (lowest[np.maximum(tg, 0)] if match.S else np.zeros_like(tg)).astype(np.int64)
        self.exact_target[tg < 0] = -1
        self.exact_target.flags.writeable = False
        self.target = self.exact_target.copy()  # + the nearest spellings found so far
        self.distance = np.where(tg >= 0, 0, -1).astype(np.int64)
        # -1 with distance -1 and a non-empty key: not searched yet; an empty key: never
        self._searchable = np.array([bool(k) for k in t_keys], dtype=bool) & (tg < 0)
        self._teacher_spelling = t_keys
        self._candidates = np.flatnonzero([bool(k) for k in s_keys])
        self._choices = [spelling(s_keys[j]) for j in self._candidates]
        self._lock = threading.Lock()

    def map(self, teacher_ids: Any) -> MinEDMapping:
        """The targets of ``teacher_ids`` (int array, shape (n,)), searching the ids not seen yet."""
        ids = np.asarray(teacher_ids, dtype=np.int64).reshape(-1)
        with self._lock:
            todo = np.unique(ids[self._searchable[ids]])
            if todo.size:
                self._search(todo)
        return MinEDMapping(self.target[ids].copy(), self.distance[ids].copy())

    def _search(self, ids: np.ndarray) -> None:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist

        self._searchable[ids] = False
        if not self._choices:
            return
        for start in range(0, ids.size, SEARCH_CHUNK):
            chunk = ids[start:start + SEARCH_CHUNK]
            d = cdist([spelling(self._teacher_spelling[i]) for i in chunk], self._choices,
                      scorer=Levenshtein.distance, dtype=np.int32, workers=1)  # (n, V_s candidates)
            best = d.argmin(axis=1)  # the first minimum: the lowest student id among ties
            self.target[chunk] = self._candidates[best]
            self.distance[chunk] = d[np.arange(chunk.size), best]


_MAPPERS: "dict[int, tuple[weakref.ref, MinEDMapper]]" = {}
_MAPPERS_LOCK = threading.Lock()


def mined_mapper(vocab: SharedStrings) -> MinEDMapper:
    """The :class:`MinEDMapper` of a vocabulary pair (its keys and match), cached for as long as
    ``vocab`` lives: the nearest spellings found at one position serve every later one.

    >>> v = SharedStrings.of_tokens(["ab", "abc"], ["ab", "x"])
    >>> mined_mapper(v) is mined_mapper(v), mined_mapper(v).map([1]).student_index.tolist()
    (True, [0])
    """
    with _MAPPERS_LOCK:
        hit = _MAPPERS.get(id(vocab))
        if hit is not None and hit[0]() is vocab:
            return hit[1]
        mapper = MinEDMapper(vocab.teacher_keys, vocab.student_keys, vocab.match)
        key = id(vocab)
        _MAPPERS[key] = (weakref.ref(vocab, lambda _, key=key: _MAPPERS.pop(key, None)), mapper)
        return mapper
