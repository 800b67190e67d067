"""Tokenize a text and give every token its exact span in the text's UTF-8 bytes.

Spans come from each token's OWN bytes (:mod:`uld_explorer.text.spelling`), never from decoded
strings, so a character split across tokens (an emoji in three byte-level tokens) gets exact
sub-character spans. When a tokenizer's normalizer changes the text (e.g. NFC in Qwen2) the
token bytes no longer reproduce it; then the tokenizer's own ``offset_mapping`` is used
(character offsets converted to byte offsets, the tokens' spans made contiguous).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from ..checks import check_text
from .spelling import SPIECE_UNDERLINE, byte_level_bytes, readable, sentencepiece_bytes, tokenizer_kind

__all__ = ["Tokenized", "adds_bos", "own_bytes", "tokenize_with_offsets"]


@dataclass(frozen=True)
class Tokenized:
    """One text's tokenization with exact byte spans, and what the model reads before it.

    Attributes
    ----------
    text : str
        The text that was tokenized (after truncation by ``max_tokens``: the covered prefix).
    ids : tuple[int, ...]
        ``(T,)`` the text's token ids, NO special tokens (no BOS/EOS added).
    strings : tuple[str, ...]
        ``(T,)`` readable token text: the token's bytes decoded as UTF-8 with
        ``errors="backslashreplace"`` (a split emoji shows as ``'\\xf0\\x9f'``).
    byte_spans : tuple[tuple[int, int], ...]
        ``(T,)`` half-open ``[start, end)`` in ``text.encode("utf-8")``; contiguous, covering
        every byte exactly once.
    bos_id : int | None
        A BOS id to prepend for the forward pass (the tokenizer has one AND adds it by default,
        e.g. Gemma, and the prompt does not already start with it, as Phi-3's chat template
        writes it), else None.
    prompt : str
        Text the model reads BEFORE ``text`` (tokenized on its own), ``""`` for none. Its tokens
        are context only: they get no distribution of their own here.
    prompt_ids : tuple[int, ...]
        The prompt's token ids (no special tokens).
    """

    text: str
    ids: tuple[int, ...]
    strings: tuple[str, ...]
    byte_spans: tuple[tuple[int, int], ...]
    bos_id: int | None
    prompt: str = ""
    prompt_ids: tuple[int, ...] = ()

    @property
    def context_ids(self) -> tuple[int, ...]:
        """What the model reads before the text: ``(bos_id,)`` if any, then the prompt's ids."""
        return ((self.bos_id,) if self.bos_id is not None else ()) + self.prompt_ids

    @property
    def first_predicted(self) -> int:
        """Index of the first text token that has a distribution: 0 when the model reads anything
        before the text (BOS or a prompt), else 1 (nothing predicts a text's first token)."""
        return 0 if self.context_ids else 1

    @property
    def text_bytes(self) -> bytes:
        """``text.encode("utf-8")``."""
        return self.text.encode("utf-8")

    @property
    def model_input_ids(self) -> tuple[int, ...]:
        """The ids to feed the model: ``context_ids + ids``.

        With ``c = len(context_ids)``, the logits at input position ``c + j - 1`` predict text
        token ``j`` (``dist[j]``, for ``j >= first_predicted``) and the logits at the last
        position predict the token AFTER the text (``dist[T]``).
        """
        return self.context_ids + self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def token_bytes(self, j: int) -> bytes:
        """The bytes of token ``j`` in the text, ``text_bytes[start_j:end_j]``."""
        a, b = self.byte_spans[j]
        return self.text_bytes[a:b]


def adds_bos(tokenizer: Any) -> int | None:
    """The BOS id ``tokenizer`` puts in front of a text by default (``add_special_tokens=True``,
    e.g. Llama-2, Gemma), else None (Qwen2, SmolLM2: their chat templates carry any start marker)."""
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


def own_bytes(tokenizer: Any, ids: Sequence[int], kind: str) -> list[bytes] | None:
    """Each token's OWN bytes, read from its spelling alone (never from the text it came from).

    What :func:`tokenize_with_offsets` joins to find the byte spans: a byte-level token's
    characters mapped back to bytes, a SentencePiece piece with ``'▁'`` as a space and
    ``'<0xHH>'`` as that byte, an added token's literal text. The zoo's tokenizer conversion
    checks with it that a converted tokenizer's tokens spell a text
    (:func:`~uld_explorer.zoo.vocab_convert.convert_vocab`).

    Parameters
    ----------
    tokenizer : transformers tokenizer
    ids : sequence of int, shape (T,)
        Token ids.
    kind : str
        :func:`~uld_explorer.text.spelling.tokenizer_kind` of the tokenizer: ``"byte_level"`` or
        ``"sentencepiece"`` (any other kind spells no bytes).

    Returns
    -------
    list of bytes, length T, or None
        None when the tokens' bytes cannot be derived from their strings (an id the tokenizer
        does not know, a character outside the byte-level alphabet, another kind).

    >>> class ByteLevel:  # a byte-level vocabulary of two tokens
    ...     def convert_ids_to_tokens(self, ids):
    ...         return [{0: "Ġcaf", 1: "Ã©"}[i] for i in ids]
    >>> own_bytes(ByteLevel(), [0, 1], "byte_level")
    [b' caf', b'\\xc3\\xa9']
    """
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
            b = byte_level_bytes(s)
            if b is None:
                return None
            out.append(b)
        elif kind == "sentencepiece":
            out.append(sentencepiece_bytes(s))
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


def tokenize_with_offsets(
    tokenizer: Any, text: str, max_tokens: int | None = None, *, prompt: str = "", who: str | None = None
) -> Tokenized:
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
    prompt : str
        Context read before the text, tokenized ON ITS OWN (as a prompt and its answer are in
        distillation), so the text's tokens and spans do not depend on it. Never truncated.
    who : str, optional
        The model's name for messages (default: the tokenizer's class).

    Returns
    -------
    Tokenized

    Raises
    ------
    ValueError
        Empty or whitespace-only text, text or prompt that is not valid UTF-8 (lone surrogates),
        ``max_tokens < 1``, or neither the token bytes nor the offsets reproduce the text.
    """
    check_text(text, "text")  # a str, valid UTF-8, not whitespace-only
    check_text(prompt, "prompt", allow_empty=True)
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not ids:
        raise ValueError(f"the tokenizer produced no tokens for {text[:40]!r}")
    text_bytes = text.encode("utf-8")
    kind = tokenizer_kind(tokenizer)
    pieces = own_bytes(tokenizer, ids, kind)
    spans = _spans_from_bytes(pieces, text_bytes) if pieces is not None else None
    from_offsets = spans is None
    if from_offsets:
        spans = _spans_from_offsets(tokenizer, text, len(ids))
    if spans is None:
        raise ValueError(
            f"cannot map the tokens of {who or type(tokenizer).__name__} back to the text's bytes: "
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
            f"text has {len(ids)} tokens for {who or type(tokenizer).__name__}; cut {len(ids) - keep} "
            f"token(s), keeping the first {keep} (max_tokens={max_tokens})",
            UserWarning,
            stacklevel=2,
        )
        ids, spans = ids[:keep], spans[:keep]
        text_bytes = text_bytes[: spans[-1][1]]
        text = text_bytes.decode("utf-8")
    if from_offsets and pieces is not None:
        # the text was normalized (e.g. NFC): show what the token itself spells
        strings = tuple(readable(pieces[k]) for k in range(len(ids)))
    else:
        strings = tuple(readable(text_bytes[a:b]) for a, b in spans)
    prompt_ids = tuple(int(i) for i in tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else ()
    bos_id = adds_bos(tokenizer)
    if bos_id is not None and prompt_ids[:1] == (bos_id,):  # the chat template wrote it (Phi-3): not twice
        bos_id = None
    return Tokenized(
        text=text,
        ids=tuple(ids),
        strings=strings,
        byte_spans=tuple((int(a), int(b)) for a, b in spans),
        bos_id=bos_id,
        prompt=prompt,
        prompt_ids=prompt_ids,
    )
