"""How tokenizers spell token bytes, and the normalized text of a vocabulary token.

Byte-level BPE (GPT-2, Qwen2, SmolLM2) spells every byte as one printable character
(:func:`bytes_to_unicode`: ``' '`` -> ``'Ġ'``); SentencePiece (Llama, Gemma) spells a space as
``'▁'`` and unknown bytes as ``'<0xHH>'``. :func:`normalize_token` turns either spelling back into
the text the token stands for, so tokens of two different tokenizers can be compared by string.
"""

from __future__ import annotations

import re
import weakref
from functools import lru_cache
from typing import Any

__all__ = [
    "SPIECE_UNDERLINE",
    "bytes_to_unicode",
    "byte_level_bytes",
    "normalize_token",
    "readable",
    "sentencepiece_bytes",
    "token_bytes",
    "tokenizer_kind",
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


def byte_level_bytes(s: str) -> bytes | None:
    """Invert the GPT-2 map on a byte-level token string; None if a character is outside the map.

    >>> byte_level_bytes("ĠcafÃ©"), byte_level_bytes("▁x")
    (b' caf\\xc3\\xa9', None)
    """
    dec = _unicode_to_bytes()
    try:
        return bytes(dec[c] for c in s)
    except KeyError:
        return None


def sentencepiece_bytes(s: str) -> bytes:
    """A SentencePiece token's bytes: ``'▁'`` -> space, ``'<0xHH>'`` -> that byte, else UTF-8.

    >>> sentencepiece_bytes("▁Paris"), sentencepiece_bytes("<0x0A>")
    (b' Paris', b'\\n')
    """
    m = _BYTE_FALLBACK.match(s)
    if m:
        return bytes([int(m.group(1), 16)])
    return s.replace(SPIECE_UNDERLINE, " ").encode("utf-8")


def readable(b: bytes) -> str:
    """Bytes as text; bytes that are not valid UTF-8 on their own (a split emoji) read ``\\xNN``.

    >>> readable("é".encode()), readable("🍕".encode()[:2])
    ('é', '\\\\xf0\\\\x9f')
    """
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


def token_bytes(s: str, kind: str) -> bytes:
    """The bytes a vocabulary token stands for, given its tokenizer's spelling ``kind``.

    Byte-level: the GPT-2 map inverted (a string outside the map: its UTF-8 bytes);
    SentencePiece: ``'▁'`` -> space, ``'<0xHH>'`` -> that byte; anything else: its UTF-8 bytes.
    Bytes are the exact, collision-free identity of a token's text: match tokens of two
    vocabularies on them (:func:`~uld_explorer.text.vocab_bytes`), not on readable strings, where
    a lone byte 0xAA (shown ``'\\xaa'``) and a token whose text IS the four characters ``\xaa``
    would look the same.

    >>> token_bytes("ĠcafÃ©", "byte_level"), token_bytes("▁<x", "sentencepiece"), token_bytes("ð", "byte_level")
    (b' caf\\xc3\\xa9', b' <x', b'\\xf0')
    """
    if kind == "byte_level":
        b = byte_level_bytes(s)
        return s.encode("utf-8") if b is None else b
    if kind == "sentencepiece":
        return sentencepiece_bytes(s)
    if kind in ("plain", "other"):
        return s.encode("utf-8")
    raise ValueError(f"unknown kind {kind!r}: one of byte_level, sentencepiece, plain")


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
    if kind != "auto":
        return readable(token_bytes(s, kind))
    if SPIECE_UNDERLINE in s or _BYTE_FALLBACK.match(s):
        return readable(sentencepiece_bytes(s))
    b = byte_level_bytes(s)
    if b is None:
        return s
    if any(0x100 <= ord(c) <= 0x143 for c in s):
        return readable(b)
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return s
