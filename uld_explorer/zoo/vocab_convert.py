"""A GGUF vocabulary -> a Hugging Face tokenizer folder, checked and published: steps 4 and 5 of
a tokenizer fetch.

:func:`convert_vocab` reads the GGUF with transformers, saves the tokenizer, reloads the saved
folder and checks it against the GGUF-loaded tokenizer on :data:`CHECK_TEXTS` and llama.cpp's
reference strings (and that every token spells its own bytes of the text).
:func:`publish_vocab` runs it (or the converter given to
:func:`~uld_explorer.zoo.vocab_fetch.fetch_tokenizers`) in a temporary folder, rejects a failed
self-check or an unexpected size (nothing is cached), adds ``SOURCE.txt`` and hands the folder to
:func:`~uld_explorer.zoo.publish.publish_folder` (the completion marker, then the rename into
``<cache>/tokenizers/<name>/``), as the models' conversion does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .cache import package_version
from .errors import ZooError
from .publish import publish_folder
from .vocab_registry import TokenizerSpec, tokenizer_dir

__all__ = ["CHECK_TEXTS", "VocabConverter", "convert_vocab", "publish_vocab"]


#: Texts every converted folder must tokenize exactly as the GGUF-loaded tokenizer, each token's
#: own bytes spelling the text (English, accents, CJK, emoji, code and whitespace, digits, a
#: decomposed accent, typographic punctuation).
CHECK_TEXTS = (
    "The capital of France is Paris. The cat sat on the mat.",
    "Le café était très bon, naïve façade.",
    "東京は日本の首都です。",
    "I love 🍕 and 🚀!🙂",
    "def f(x):\n\treturn x ** 2  # 12345, 3333, ½\n\n",
    "re\u0301sume\u0301 “Ünïcödé” — done…",
)

#: A conversion step, ``converter(gguf, out, reference) -> check figures``, as :func:`convert_vocab`
#: (``fetch_tokenizers(converter=...)`` takes one; the tests use it to interrupt a conversion).
VocabConverter = Callable[[Path, Path, Sequence[tuple[str, list[int]]]], dict[str, Any]]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _spells_text(tokenizer: Any, text: str) -> bool:
    """Each token's own bytes (its spelling; an added token's literal text) are exactly its span
    of the text's UTF-8 bytes, as :func:`~uld_explorer.text.tokenize_with_offsets` gives them (a
    SentencePiece dummy-prefix space before the first token aside): the spans come from the
    tokens, not from the offset fallback for normalizing tokenizers."""
    from ..text.spelling import tokenizer_kind
    from ..text.tokenize import own_bytes, tokenize_with_offsets

    tok = tokenize_with_offsets(tokenizer, text)
    own = own_bytes(tokenizer, tok.ids, tokenizer_kind(tokenizer))
    if own is None:
        return False
    spans = [tok.token_bytes(j) for j in range(len(tok))]
    if own and spans and own[0] != spans[0] and own[0] == b" " + spans[0]:
        own[0] = spans[0]
    return own == spans


def convert_vocab(gguf: Path, out: Path, reference: Sequence[tuple[str, list[int]]] = ()) -> dict[str, Any]:
    """GGUF vocabulary -> Hugging Face tokenizer folder ``out``; returns the check figures.

    ``AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)`` builds the tokenizer and
    ``save_pretrained`` writes it. The folder's ``tokenizer_config.json`` then names the plain
    fast-tokenizer class: a model-specific class (``Qwen2Tokenizer``, ``GPT2Tokenizer``) would
    replace the saved pipeline with its own defaults on reload (an NFC normalizer and another
    pre-tokenizer for Qwen), so the folder would no longer be the tokenizer that was checked.
    The reloaded folder must tokenize :data:`CHECK_TEXTS` and the reference strings exactly as
    the GGUF-loaded tokenizer, and spell every check text with its tokens' own bytes. This is
    the default converter of :func:`~uld_explorer.zoo.vocab_fetch.fetch_tokenizers`.

    Parameters
    ----------
    gguf : Path
        The verified GGUF vocabulary.
    out : Path
        An existing, empty folder.
    reference : sequence of (str, list of int)
        llama.cpp's reference strings and the original tokenizer's ids for them.

    Returns
    -------
    dict
        ``tokenizer_size``, ``kind`` (byte_level / sentencepiece), ``differs_after_reload`` and
        ``not_spelled`` (texts; empty when all is well), ``reference_reproduced`` /
        ``reference_cases`` and ``reference_missed`` (indices), recorded in the folder's marker.
    """
    from transformers import AutoTokenizer

    from ..text.spelling import tokenizer_kind

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    reloaded = AutoTokenizer.from_pretrained(str(out), local_files_only=True, trust_remote_code=False)
    texts = [*CHECK_TEXTS, *(text for text, _ in reference)]
    differs = [t for t in texts if _ids(tokenizer, t) != _ids(reloaded, t)]
    missed = [k for k, (text, want) in enumerate(reference) if _ids(reloaded, text) != want]
    return {
        "tokenizer_size": len(reloaded),
        "kind": tokenizer_kind(reloaded),
        "differs_after_reload": differs[:5],
        "not_spelled": [t for t in CHECK_TEXTS if not _spells_text(reloaded, t)],
        "reference_reproduced": len(reference) - len(missed),
        "reference_cases": len(reference),
        "reference_missed": missed,
    }


def publish_vocab(spec: TokenizerSpec, gguf: Path, reference: Sequence[tuple[str, list[int]]],
                  converter: VocabConverter, timings: dict[str, float]) -> Path:
    """Steps 4 and 5 for one entry: ``converter(gguf, tmp, reference)`` into a temporary folder,
    its check figures checked against ``spec`` (a tokenizer that differs after reloading, a text
    its tokens do not spell, an unexpected ``len(tokenizer)``: :class:`ZooError`, nothing cached),
    ``SOURCE.txt`` added, then published as :func:`~uld_explorer.zoo.vocab_registry.tokenizer_dir`
    with the check figures and ``timings`` in its marker; returns that folder."""

    def fill(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        check = converter(gguf, tmp, reference)
        where = f"{spec.name} ({spec.gguf_file} of {spec.source.requirement})"
        if check["differs_after_reload"]:
            raise ZooError(f"{where}: the saved tokenizer folder tokenizes {check['differs_after_reload'][0]!r} "
                           f"differently from the GGUF-loaded tokenizer; nothing was cached")
        if check["not_spelled"]:
            raise ZooError(f"{where}: the tokens of {check['not_spelled'][0]!r} do not spell its bytes; "
                           f"nothing was cached")
        if check["tokenizer_size"] != spec.tokenizer_size:
            raise ZooError(f"{where}: the converted tokenizer has {check['tokenizer_size']:,} tokens, the registry "
                           f"pins {spec.tokenizer_size:,}; nothing was cached")
        (tmp / "SOURCE.txt").write_text(
            f"{spec.family} tokenizer ({spec.upstream}), no weights.\n"
            f"Converted by uld-explorer from {spec.source.root}/{spec.member}\n"
            f"in {spec.source.requirement} (sha256 {spec.source.sha256}),\n"
            f"GGUF sha256 {spec.sha256}.\n" + (f"Departs from the original: {spec.notes}.\n" if spec.notes else ""),
            encoding="utf-8",
        )
        return {
            "name": spec.name,
            "kind": "tokenizer",
            "family": spec.family,
            "source": spec.source.requirement,
            "source_sha256": spec.source.sha256,
            "member": spec.member,
            "gguf_sha256": spec.sha256,  # verified before conversion
            "self_check": check,
            "timings": {**timings, "convert_s": round(time.perf_counter() - t0, 2)},
            "versions": {"transformers": package_version("transformers"), "tokenizers": package_version("tokenizers")},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    return publish_folder(tokenizer_dir(spec), spec.key, fill)
