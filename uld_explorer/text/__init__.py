"""Text: how tokenizers spell bytes, tokenization with byte spans, alignment, vocabularies.

- :mod:`~uld_explorer.text.spelling` -- token bytes and normalized token strings
- :mod:`~uld_explorer.text.tokenize` -- :func:`tokenize_with_offsets` -> :class:`Tokenized`
- :mod:`~uld_explorer.text.align` -- positional | byte-offset alignment, group merges
- :mod:`~uld_explorer.text.vocab` -- vocabulary strings and their overlap
- :mod:`~uld_explorer.text.mined` -- the MinED mapping: each teacher token to the nearest student spelling
"""

from .align import (
    ALIGNMENTS,
    MERGES,
    AlignedPair,
    Alignment,
    TokenizationReport,
    base_token,
    byte_offset_alignment,
    group_distributions,
    merge_group,
    misalignment_rate,
    positional_alignment,
    tokenization_report,
)
from .mined import MinEDMapper, MinEDMapping, mined_mapper
from .spelling import bytes_to_unicode, normalize_token, token_bytes, tokenizer_kind
from .tokenize import Tokenized, tokenize_with_offsets
from .vocab import (
    SharedStrings,
    StringMatch,
    VocabOverlap,
    covered_mass,
    match_strings,
    shared_strings_of,
    vocab_bytes,
    vocab_overlap,
    vocab_strings,
)

__all__ = [
    "ALIGNMENTS",
    "MERGES",
    "AlignedPair",
    "MinEDMapper",
    "MinEDMapping",
    "Alignment",
    "SharedStrings",
    "StringMatch",
    "TokenizationReport",
    "Tokenized",
    "VocabOverlap",
    "base_token",
    "byte_offset_alignment",
    "bytes_to_unicode",
    "covered_mass",
    "group_distributions",
    "match_strings",
    "merge_group",
    "mined_mapper",
    "misalignment_rate",
    "normalize_token",
    "positional_alignment",
    "shared_strings_of",
    "tokenization_report",
    "token_bytes",
    "tokenize_with_offsets",
    "tokenizer_kind",
    "vocab_bytes",
    "vocab_overlap",
    "vocab_strings",
]
