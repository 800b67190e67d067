"""The tokenizer-only entries: which real tokenizer families the zoo has without weights, where
each one's GGUF vocabulary sits in the one pinned source archive, and what to expect of it.

:data:`TOKENIZERS` maps each entry's name to its :class:`TokenizerSpec`: the GGUF's path in
:data:`LLAMA_CPP_SDIST` (llama.cpp's tokenizer test vocabularies,
``vendor/llama.cpp/models/ggml-vocab-*.gguf``) and its pinned sha256, the vocabulary size before
and after conversion, how many of llama.cpp's reference strings the converted tokenizer
reproduces, and where it departs from the original. :func:`resolve_tokenizer_name` maps a name
given in any case to its entry; :func:`tokenizer_dir` says where its converted folder lives and
:func:`list_tokenizers` lists the entries with their cache status. This module imports neither
torch nor transformers: the command line lists the entries without loading them.

>>> TOKENIZERS["Llama-3"].vocab_size, TOKENIZERS["GPT-2"].source.requirement
(128256, 'llama-cpp-python==0.3.36')
>>> resolve_tokenizer_name("qwen2")
'Qwen2'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .cache import ON_DISK, cache_dir, folder_bytes, folder_status, sources_dir
from .errors import UnknownModelError
from .registry import MODELS, Sdist

__all__ = [
    "LLAMA_CPP_SDIST", "TOKENIZERS", "TokenizerEntry", "TokenizerSpec", "as_tokenizer_spec", "list_tokenizers",
    "resolve_tokenizer_name", "tokenizer_dir",
]


#: The one archive every entry comes from (77 MB; MIT; the vocabularies are llama.cpp's test files).
LLAMA_CPP_SDIST = Sdist(
    package="llama-cpp-python",
    version="0.3.36",
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
    sdist_bytes=76_589_250,
    build_backend="scikit_build_core.build",
)

_MODELS_DIR = "vendor/llama.cpp/models"


@dataclass(frozen=True)
class TokenizerSpec:
    """A tokenizer-only entry: which GGUF of which archive, and what to expect after conversion.

    Attributes
    ----------
    name : str
        The entry's name (case-insensitive everywhere; also its cache folder).
    family : str
        Who made it, readable.
    algorithm : str
        ``"byte-level BPE"`` or ``"SentencePiece BPE, byte fallback"``.
    upstream : str
        The Hugging Face repository whose tokenizer llama.cpp converted (its
        ``convert_hf_to_gguf_update.py``), for reference.
    vocab_size : int
        Tokens in the GGUF vocabulary (ids ``0 .. vocab_size-1``).
    tokenizer_size : int
        ``len(tokenizer)`` after conversion: transformers' GGUF reader adds a few special tokens
        of its own to some vocabularies (``<|endoftext|>``; for DeepSeek a second BOS/EOS pair).
    member : str
        Path of the GGUF in the archive, below its top folder.
    sha256, gguf_bytes :
        Of the GGUF, pinned.
    reference : tuple[int, int]
        ``(reproduced, of)``: of llama.cpp's reference strings for this vocabulary (the
        ``.gguf.inp`` / ``.gguf.out`` files next to it, token ids made by the ORIGINAL Hugging
        Face tokenizer), how many the converted tokenizer reproduces id for id; ``(0, 0)`` when
        the archive has none.
    notes : str
        Where it departs from the original tokenizer, and why.
    source : Sdist
        The archive it comes from.
    """

    name: str
    family: str
    algorithm: str
    upstream: str
    vocab_size: int
    tokenizer_size: int
    member: str
    sha256: str
    gguf_bytes: int
    reference: tuple[int, int] = (0, 0)
    notes: str = ""
    source: Sdist = LLAMA_CPP_SDIST

    @property
    def gguf_file(self) -> str:
        return Path(self.member).name

    @property
    def key(self) -> str:
        """Where its verified fingerprints are remembered (``<cache>/verified/tokenizers/<name>.json``)."""
        return f"tokenizers/{self.name}"

    @property
    def reference_members(self) -> tuple[str, str] | None:
        """The archive's reference inputs and outputs for this vocabulary, if it has them."""
        return (self.member + ".inp", self.member + ".out") if self.reference[1] else None


_BPE, _SPM = "byte-level BPE", "SentencePiece BPE, byte fallback"
_NOT_ORIGINAL_PRE = (
    "transformers' GGUF reader gives it GPT-2's pre-tokenizer instead of the original's ({what}); "
    "the two differ on {where}"
)

TOKENIZERS: dict[str, TokenizerSpec] = {
    spec.name: spec
    for spec in (
        TokenizerSpec(
            "GPT-2", "GPT-2 (OpenAI)", _BPE, "openai-community/gpt2", 50_257, 50_257,
            f"{_MODELS_DIR}/ggml-vocab-gpt-2.gguf",
            "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac", 1_766_807, (46, 46),
        ),
        TokenizerSpec(
            "Llama-3", "Llama 3 (Meta)", _BPE, "meta-llama/Meta-Llama-3-8B", 128_256, 128_257,
            f"{_MODELS_DIR}/ggml-vocab-llama-bpe.gguf",
            "97272e430d53bc7688f52d5e0ad8ea8f163ede9f1bbd1694feaa504797d5d96e", 7_818_140, (45, 46),
            "one reference string differs ('Cửa Việt': the original merges ' Việt' into one token); "
            "transformers adds an <|endoftext|> token (id 128256) Llama 3 does not have",
        ),
        TokenizerSpec(
            "Llama-2", "Llama / Llama 2 (Meta)", _SPM, "meta-llama/Llama-2-7b-hf", 32_000, 32_000,
            f"{_MODELS_DIR}/ggml-vocab-llama-spm.gguf",
            "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69", 723_869, (31, 46),
            "a text that STARTS with spaces: the original adds its '▁' prefix in front of them "
            "(' Hello' -> '▁', '▁Hello'), the converted one does not (-> '▁Hello'); the 15 reference "
            "strings it misses all start with a space",
        ),
        TokenizerSpec(
            "Phi-3", "Phi-3 (Microsoft)", _SPM, "microsoft/Phi-3-mini-4k-instruct", 32_064, 32_064,
            f"{_MODELS_DIR}/ggml-vocab-phi-3.gguf",
            "967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326", 726_019, (46, 46),
        ),
        TokenizerSpec(
            "Qwen2", "Qwen1.5 / Qwen2 / Qwen2.5 (Alibaba)", _BPE, "Qwen/Qwen1.5-7B", 151_936, 151_936,
            f"{_MODELS_DIR}/ggml-vocab-qwen2.gguf",
            "44c2f46b715f585c6ab513970e8a006bfa5badd6108560054921cf598d154d8c", 5_928_681, (46, 46),
            "no NFC normalizer (the GGUF stores none): a decomposed accent ('e' + U+0301) stays two "
            "code points, where the original composes it first",
        ),
        TokenizerSpec(
            "Falcon", "Falcon (TII)", _BPE, "tiiuae/falcon-7b", 65_024, 65_024,
            f"{_MODELS_DIR}/ggml-vocab-falcon.gguf",
            "9f0bf8b0733680398b72e652e90f260f43782f326e75545fc0e49611a5ba35ad", 2_287_728, (37, 46),
            _NOT_ORIGINAL_PRE.format(what="punctuation and digits split apart, digits in groups of 3",
                                     where="runs of digits ('3333' -> '33', '33' instead of '333', '3') and a "
                                           "newline before a space"),
        ),
        TokenizerSpec(
            "DeepSeek-LLM", "DeepSeek LLM", _BPE, "deepseek-ai/deepseek-llm-7b-base", 102_400, 102_403,
            f"{_MODELS_DIR}/ggml-vocab-deepseek-llm.gguf",
            "867f77537b54565f0d81d508c04edc41aa1d4ffc1a92745f225b4c1b02755f76", 3_970_167, (45, 46),
            _NOT_ORIGINAL_PRE.format(what="numbers split off on their own", where="a space before a numeric "
                                     "character such as '½'")
            + "; transformers adds <|endoftext|> and a second BOS/EOS pair (ids 102400-102402)",
        ),
        TokenizerSpec(
            "DeepSeek-Coder", "DeepSeek Coder", _BPE, "deepseek-ai/deepseek-coder-6.7b-base", 32_256, 32_259,
            f"{_MODELS_DIR}/ggml-vocab-deepseek-coder.gguf",
            "91cb1379f2e33af1c4866b194622b7a0e12e8f0c9dba7ba2f10d55978730bec1", 1_156_067, (45, 46),
            _NOT_ORIGINAL_PRE.format(what="numbers split off on their own", where="a space before a numeric "
                                     "character such as '½'")
            + "; transformers adds <|endoftext|> and a second BOS/EOS pair (ids 32256-32258)",
        ),
        TokenizerSpec(
            "StarCoder2", "StarCoder2 (BigCode)", _BPE, "bigcode/starcoder2-3b", 49_152, 49_152,
            f"{_MODELS_DIR}/ggml-vocab-starcoder.gguf",
            "fedb892b4e1bd3c1f2fcdae356440b14fb458f4264d586e5c987ed93df4e174d", 1_719_346, (45, 46),
            _NOT_ORIGINAL_PRE.format(what="every digit on its own", where="a space before a numeric character "
                                     "such as '½' (the vocabulary has no multi-digit tokens, so plain digits agree)"),
        ),
        TokenizerSpec(
            "Aquila", "Aquila (BAAI)", _BPE, "BAAI Aquila (the file names no repository)", 100_008, 100_008,
            f"{_MODELS_DIR}/ggml-vocab-aquila.gguf",
            "7c53c3c516ac67c7ca12977b9690fdea3d2ef13bbaed6378f98191a13ef5ca00", 4_825_676, (0, 0),
            "the archive has no reference strings for it: checked only on this module's own texts",
        ),
    )
}


def resolve_tokenizer_name(name: str) -> str:
    """The entry name for ``name`` (case-insensitive); raises :class:`UnknownModelError` (a
    :class:`ZooError` and a ``ValueError``) listing the entries.

    >>> resolve_tokenizer_name("deepseek-coder")
    'DeepSeek-Coder'
    """
    if name in TOKENIZERS:
        return name
    for known in TOKENIZERS:
        if known.lower() == str(name).strip().lower():
            return known
    raise _unknown(name)


def _unknown(name: str) -> UnknownModelError:
    return UnknownModelError(
        f"unknown tokenizer {name!r}; the tokenizer-only entries are: {', '.join(TOKENIZERS)}. "
        f"load_tokenizer() also takes a zoo model's name ({', '.join(MODELS)}) or a local tokenizer folder."
    )


def as_tokenizer_spec(name_or_spec: str | TokenizerSpec) -> TokenizerSpec:
    """The spec of entry ``name_or_spec`` (see :func:`resolve_tokenizer_name`), or the spec itself.

    >>> as_tokenizer_spec("gpt-2") is as_tokenizer_spec(TOKENIZERS["GPT-2"]) is TOKENIZERS["GPT-2"]
    True
    """
    if isinstance(name_or_spec, TokenizerSpec):
        return name_or_spec
    return TOKENIZERS[resolve_tokenizer_name(name_or_spec)]


def tokenizer_dir(name_or_spec: str | TokenizerSpec) -> Path:
    """Where the converted folder of a tokenizer entry (name or spec) lives, cached or not."""
    return cache_dir() / "tokenizers" / as_tokenizer_spec(name_or_spec).name


@dataclass(frozen=True)
class TokenizerEntry:
    """One row of :func:`list_tokenizers`."""

    name: str
    family: str
    algorithm: str
    vocab_size: int
    tokenizer_size: int
    reference: tuple[int, int]
    status: str  # "cached", "unverified", "damaged", "sources only" or "not cached"
    disk_bytes: int  # the converted folder (the archive, when kept, is shared: not counted)
    path: Path
    upstream: str
    notes: str

    @property
    def cached(self) -> bool:
        return self.status == "cached"

    @property
    def on_disk(self) -> bool:
        """A folder is there under the entry's name: cached, unverified or damaged (a load then says
        what is wrong); False for ``"not cached"`` and ``"sources only"``."""
        return self.status in ON_DISK

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "algorithm": self.algorithm, "vocab_size": self.vocab_size,
            "tokenizer_size": self.tokenizer_size, "reference": list(self.reference), "cached": self.cached,
            "status": self.status, "disk_bytes": self.disk_bytes, "path": str(self.path), "upstream": self.upstream,
            "notes": self.notes,
        }


def list_tokenizers(specs: Iterable[TokenizerSpec] | None = None) -> list[TokenizerEntry]:
    """Every tokenizer-only entry with its vocabulary, fidelity and cache status (hashes nothing).

    Status as for :func:`~uld_explorer.zoo.list_models`: ``"cached"``, ``"unverified"`` (a file
    was written since its sha256 last matched: the next load re-hashes it), ``"damaged"`` (a
    file is missing or resized, the marker is missing or unreadable, or the last load that
    hashed found a bad file), ``"sources only"`` (the archive of an unfinished fetch is there),
    ``"not cached"``.

    Parameters
    ----------
    specs : iterable of TokenizerSpec, optional
        The entries to list (default: :data:`TOKENIZERS`, in order).
    """
    rows = []
    for spec in TOKENIZERS.values() if specs is None else specs:
        folder = tokenizer_dir(spec)
        status = folder_status(spec.key, folder, sources_dir(spec.source.key))
        rows.append(TokenizerEntry(
            spec.name, spec.family, spec.algorithm, spec.vocab_size, spec.tokenizer_size, spec.reference, status,
            folder_bytes(folder) if folder.exists() else 0, folder, spec.upstream, spec.notes,
        ))
    return rows
