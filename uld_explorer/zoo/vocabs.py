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

The cache rules are the models': the same completion marker ``ZOO_COMPLETE.json``, written by the
same :func:`~uld_explorer.zoo.publish.publish_folder` and checked by the same
:func:`~uld_explorer.zoo.cache.cached_intact`, under ``<cache>/tokenizers/<name>/``.

>>> TOKENIZERS["Llama-3"].vocab_size, TOKENIZERS["GPT-2"].source.requirement
(128256, 'llama-cpp-python==0.3.36')
>>> resolve_tokenizer_name("qwen2")
'Qwen2'
"""

from __future__ import annotations

import functools
import json
import os
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .cache import (
    cache_dir,
    cached_intact,
    damaged_error,
    fetch_lock,
    folder_bytes,
    folder_status,
    package_version,
    read_cached,
    read_marker,
    sources_dir,
)
from .errors import RemoteCodeRefusedError, UnknownModelError, ZooError
from .progress import progress_bar, say
from .publish import copy_hashing, publish_folder, remove_stale_temporaries, sources_folder, write_verified
from .registry import MODELS, ModelSpec, Sdist, as_spec

__all__ = [
    "CHECK_TEXTS", "LLAMA_CPP_SDIST", "TOKENIZERS", "Sdist", "TokenizerEntry", "TokenizerSpec", "VocabConverter",
    "convert_vocab", "fetch_tokenizers", "list_tokenizers", "load_tokenizer", "reference_cases",
    "resolve_tokenizer_name", "sdist_download", "tokenizer_dir",
]


# --------------------------------------------------------------------------------------------
# the registry

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
    file is missing or resized), ``"sources only"`` (the archive of an unfinished fetch is
    there), ``"not cached"``.

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


# --------------------------------------------------------------------------------------------
# step 1: download the archive without building it

_STAND_IN_BACKEND = '''"""Stands in for a source archive's build backend while `pip download` fetches it.

uld-explorer downloads the archive only to read data files out of it. pip asks the backend for
the package's metadata before it saves a source archive; this answers with the archive's own
PKG-INFO (pip runs it in the unpacked archive) and refuses to build anything.
"""
import os
import re


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    with open("PKG-INFO", encoding="utf-8") as f:
        text = f.read()
    head = text.split("\\n\\n", 1)[0]
    fields = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line and line[:1] != " ")
    dist_info = re.sub(r"[-_.]+", "_", fields["Name"]) + "-" + fields["Version"] + ".dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info))
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(text)
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise RuntimeError("uld-explorer reads data files out of this source archive; it never builds it")
'''


def _write_stand_in(folder: Path, backend: str) -> None:
    """The module ``backend`` (``"pkg.sub.mod"``) as :data:`_STAND_IN_BACKEND`, under ``folder``."""
    parts = backend.split(".")
    where = folder
    for part in parts[:-1]:
        where = where / part
        where.mkdir(exist_ok=True)
        (where / "__init__.py").write_text("", encoding="utf-8")
    (where / f"{parts[-1]}.py").write_text(_STAND_IN_BACKEND, encoding="utf-8")


def sdist_download(requirements: list[str], dest: Path, on_progress: Callable[[int, int], None], *,
                   build_backend: str = LLAMA_CPP_SDIST.build_backend) -> None:
    """Download source archives (``.tar.gz``) with pip into ``dest``, building nothing.

    ``python -m pip download --no-deps --no-binary :all: --no-build-isolation``: pip saves a
    source archive only after asking its build backend for the package's metadata, and without
    a backend installed it would fail, or, with build isolation, install the backend (and cmake,
    where missing) to compute what the archive's ``PKG-INFO`` already says: a minute on two
    cores against three seconds. So a stand-in module named ``build_backend`` is put first on
    the path of pip's backend process: it reads ``PKG-INFO`` and refuses to build. Nothing of
    the package is run, built, installed or imported. The default downloader of
    :func:`~uld_explorer.zoo.vocabs.fetch_tokenizers` (signature of
    :data:`~uld_explorer.zoo.download.Downloader`).

    Parameters
    ----------
    requirements : list of str
        Pinned requirements (``"llama-cpp-python==0.3.36"``).
    dest : Path
        An existing folder the archives are saved into.
    on_progress : callable
        ``on_progress(done, total)``, pip's byte counts.
    build_backend : str
        The archives' build backend (:attr:`~uld_explorer.zoo.registry.Sdist.build_backend`).

    Raises
    ------
    ZooError
        pip failed (no network, no such package), with pip's own last lines.
    """
    from .download import pip_download  # (imports torch, for the models' conversion: only when downloading)

    with tempfile.TemporaryDirectory(prefix="uld-explorer-backend-") as stand_in:
        _write_stand_in(Path(stand_in), build_backend)
        path = os.pathsep.join(p for p in (stand_in, os.environ.get("PYTHONPATH", "")) if p)
        pip_download(requirements, dest, on_progress,
                     options=("--no-binary", ":all:", "--no-build-isolation"), env={"PYTHONPATH": path})


# --------------------------------------------------------------------------------------------
# step 3: extract

def extract_vocabs(source: Sdist, archive: Path, specs: Sequence[TokenizerSpec], src: Path,
                   progress: bool) -> dict[str, list[tuple[str, list[int]]]]:
    """Stream each entry's GGUF out of ``archive`` into ``src`` (one pass), checking its sha256.

    Parameters
    ----------
    source : Sdist
        The archive's pin (its top folder prefixes every member).
    archive : Path
        The downloaded archive, its own sha256 already verified.
    specs : sequence of TokenizerSpec
        The entries wanted, all from ``source``.
    src : Path
        Where the GGUF files go (``<cache>/sources/<package>-<version>/``).
    progress : bool
        A progress bar on stderr.

    Returns
    -------
    dict of str to list of (str, list of int)
        Each entry's reference strings with the original tokenizer's ids (empty without them).

    Raises
    ------
    ZooError
        A GGUF whose sha256 is not the pinned one (the file is removed), an archive that cannot be
        read, or a member the archive does not have.
    """
    ggufs = {f"{source.root}/{s.member}": s for s in specs}
    refs: dict[str, tuple[TokenizerSpec, int]] = {}
    for s in specs:
        for k, m in enumerate(s.reference_members or ()):
            refs[f"{source.root}/{m}"] = (s, k)
    ref_text: dict[str, list[str]] = {s.name: ["", ""] for s in specs}
    with progress_bar(progress, total=sum(s.gguf_bytes for s in specs), unit="B", unit_scale=True,
                      unit_divisor=1024, desc=f"extract {len(specs)} tokenizer(s)") as bar:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for info in tar:  # one sequential pass through the gzip stream
                    if info.name in ggufs and info.isfile():
                        _extract_gguf(tar, info, ggufs.pop(info.name), src, bar)
                    elif info.name in refs and info.isfile():
                        spec, k = refs.pop(info.name)
                        with tar.extractfile(info) as f:  # type: ignore[union-attr]
                            ref_text[spec.name][k] = f.read().decode("utf-8")
                    if not ggufs and not refs:
                        break
        except (tarfile.TarError, zlib.error, EOFError, OSError) as err:
            # (write_verified removed the GGUF being written, if any)
            raise ZooError(f"{archive.name} could not be read ({type(err).__name__}: {err}) although its sha256 "
                           f"matched: the disk may be failing. Run `uld-explorer tokenizers fetch` again.") from None
    missing = sorted(m.split("/", 1)[1] for m in [*ggufs, *refs])
    if missing:
        raise ZooError(f"{archive.name} has no member(s) {', '.join(missing)}: the package on the registry is "
                       f"not what this version of uld-explorer expects")
    return {name: reference_cases(inp, out) for name, (inp, out) in ref_text.items()}


def _extract_gguf(tar: tarfile.TarFile, info: tarfile.TarInfo, spec: TokenizerSpec, src: Path, bar: Any) -> None:
    """One GGUF member into ``src/<its file name>``, kept only when its sha256 is the pinned one."""

    def write(out: Any, digest: Any) -> None:
        with tar.extractfile(info) as member:  # type: ignore[union-attr]
            copy_hashing(member, out, digest, bar)

    def mismatch(got: str) -> ZooError:
        return ZooError(
            f"sha256 mismatch for {spec.gguf_file} ({spec.name}) read out of {spec.source.requirement}:\n"
            f"    expected {spec.sha256}\n    got      {got}\n"
            f"The bad file was removed. If `uld-explorer tokenizers fetch {spec.name}` fails the same way, "
            f"the archive on the registry changed and this uld-explorer version cannot verify it."
        )

    write_verified(src / spec.gguf_file, spec.sha256, write, mismatch)


_REFERENCE_SEPARATOR = "\n__ggml_vocab_test__\n"


def reference_cases(inp: str, out: str) -> list[tuple[str, list[int]]]:
    """Parse llama.cpp's reference file pair for a vocabulary: each input followed by a
    ``__ggml_vocab_test__`` line (an input may be empty), one line of space-separated token ids
    per input.

    Parameters
    ----------
    inp : str
        The ``.gguf.inp`` file's text (empty: the vocabulary has no reference strings).
    out : str
        The ``.gguf.out`` file's text.

    Returns
    -------
    list of (str, list of int)
        Each reference string with the ids the original tokenizer gave it.

    Raises
    ------
    ZooError
        The two files do not have as many inputs as lines of ids.

    >>> reference_cases("a b\\n__ggml_vocab_test__\\n\\n__ggml_vocab_test__\\n", "64 275\\n\\n")
    [('a b', [64, 275]), ('', [])]
    """
    if not inp:
        return []
    if inp.endswith(_REFERENCE_SEPARATOR):
        inp = inp[: -len(_REFERENCE_SEPARATOR)]
    texts = inp.split(_REFERENCE_SEPARATOR)
    lines = (out[:-1] if out.endswith("\n") else out).split("\n")
    if len(lines) != len(texts):
        raise ZooError(f"llama.cpp's reference files disagree: {len(texts)} inputs, {len(lines)} lines of ids")
    return [(text, [int(x) for x in line.split()]) for text, line in zip(texts, lines)]


# --------------------------------------------------------------------------------------------
# step 4 and 5: convert, self-check and publish

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
    the default converter of :func:`~uld_explorer.zoo.vocabs.fetch_tokenizers`.

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
    ``SOURCE.txt`` added, then published as :func:`~uld_explorer.zoo.vocabs.tokenizer_dir`
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


# --------------------------------------------------------------------------------------------
# fetch

def damaged_tokenizer_error(spec: TokenizerSpec, folder: Path, problems: Iterable[str]) -> ZooError:
    """The error for a damaged cached tokenizer folder (:func:`~uld_explorer.zoo.cache.damaged_error`):
    each bad file, and the command that rebuilds it."""
    return damaged_error(spec.name, folder, problems, what="tokenizer",
                         rebuild=f"uld-explorer tokenizers fetch {spec.name} --force", verify="")


def _offline(specs: Sequence[TokenizerSpec], every: bool) -> str:
    from .download import offline_help

    if len(specs) == 1:
        return offline_help(f"The tokenizer {specs[0].name}", tokenizer_dir(specs[0]),
                            f"uld-explorer tokenizers fetch {specs[0].name}")
    names = "--all" if every else " ".join(s.name for s in specs)
    return offline_help(f"The tokenizers {', '.join(s.name for s in specs)}", cache_dir() / "tokenizers",
                        f"uld-explorer tokenizers fetch {names}")


def fetch_tokenizers(
    names: str | TokenizerSpec | Iterable[str | TokenizerSpec] | None = None, progress: bool = True,
    force: bool = False, keep_sources: bool = False, *, downloader: Callable[..., None] | None = None,
    converter: VocabConverter = convert_vocab,
) -> dict[str, Path]:
    """Download the pinned archive once and publish tokenizer entries; return their folders.

    Entries already cached are checked against their markers (hashing only files written since
    they were verified) and not rebuilt; a damaged one is reported, never replaced without
    ``force``. All the others come from ONE download of the archive.

    Parameters
    ----------
    names : str, TokenizerSpec or iterable of them, optional
        Entry names (:data:`TOKENIZERS`, case-insensitive) or specs; default: every entry.
    progress : bool
        Progress bars and messages on stderr.
    force : bool
        Rebuild cached entries too (a damaged one included: the old folder is replaced only once
        the new one is complete).
    keep_sources : bool
        Keep the archive and the extracted GGUF files in ``<cache>/sources/<package>-<version>/``
        (deleted by default: the converted folders are self-contained).
    downloader : callable, optional
        Step 1, ``downloader(requirements, dest, on_progress)``: puts the archive of the pinned
        requirement into the folder ``dest``; default :func:`~uld_explorer.zoo.vocabs.sdist_download`.
    converter : callable
        Step 4, ``converter(gguf, out, reference)``; default
        :func:`~uld_explorer.zoo.vocabs.convert_vocab`.

    Returns
    -------
    dict of str to Path
        Entry name -> its converted folder, in the order asked.

    Raises
    ------
    UnknownModelError
        A name that is not an entry (the message lists them).
    ZooError
        No network and not cached (the message says what to run where); a sha256 mismatch of the
        archive or of a GGUF read out of it (the bad file is removed: it is a download, not the
        user's); a failed self-check (nothing cached); a damaged cached folder (nothing removed;
        ``force`` rebuilds).
    """
    every = names is None
    if names is None:
        specs = list(TOKENIZERS.values())
    elif isinstance(names, (str, TokenizerSpec)):
        specs = [as_tokenizer_spec(names)]
    else:
        specs = [as_tokenizer_spec(n) for n in names]
    folders: dict[str, Path] = {}
    todo: dict[Sdist, list[TokenizerSpec]] = {}
    for spec in specs:
        folder = tokenizer_dir(spec)
        # a cached entry is checked (hashing only files changed since verified); a damaged one raises
        if not force and cached_intact(spec.key, folder, functools.partial(damaged_tokenizer_error, spec, folder)):
            folders[spec.name] = folder
        elif spec not in todo.setdefault(spec.source, []):
            todo[spec.source].append(spec)
    for source, group in todo.items():
        if group:
            folders.update(_fetch_from(source, group, every, progress, force, keep_sources,
                                       downloader, converter))
    return {s.name: folders[s.name] for s in specs}


def _fetch_from(source: Sdist, specs: list[TokenizerSpec], every: bool, progress: bool, force: bool,
                keep_sources: bool, downloader: Callable[..., None] | None,
                converter: VocabConverter) -> dict[str, Path]:
    """Steps 1 to 6 for ``specs``, all from ``source``, under its lock."""
    from .download import download_packages, find_package_file, verify_file  # (imports torch)

    done: dict[str, Path] = {}
    with fetch_lock(source.key):
        for spec in list(specs):
            if not force and read_marker(tokenizer_dir(spec)) is not None:
                done[spec.name] = tokenizer_dir(spec)  # another process finished it while we waited
                specs.remove(spec)
            remove_stale_temporaries(tokenizer_dir(spec))  # left by a killed conversion (we hold the lock)
        if not specs:
            return done
        timings: dict[str, float] = {}
        fetch_cmd = "uld-explorer tokenizers fetch " + ("--all" if every else " ".join(s.name for s in specs))
        download = downloader or (lambda reqs, dest, on_progress: sdist_download(
            reqs, dest, on_progress, build_backend=source.build_backend))
        with sources_folder(source.key, keep=keep_sources) as src:
            archive = find_package_file(src, source)
            t0 = time.perf_counter()
            if archive is None:
                label = f"{source.requirement} (tokenizers {', '.join(s.name for s in specs)})"
                download_packages(label, [source], src, progress, download, _offline(specs, every))
                archive = find_package_file(src, source)
                assert archive is not None  # download_packages checked it arrived
                timings["download_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            verify_file(archive, source.sha256, source.requirement, fetch_cmd, progress)
            timings["verify_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            references = extract_vocabs(source, archive, specs, src, progress)
            timings["extract_s"] = round(time.perf_counter() - t0, 2)
            with progress_bar(progress, total=len(specs), unit="tokenizer", desc="convert tokenizers") as bar:
                for spec in specs:
                    bar.set_postfix_str(spec.name)
                    done[spec.name] = publish_vocab(spec, src / spec.gguf_file, references[spec.name], converter,
                                                    timings)
                    bar.update()
    if progress:
        size = sum(folder_bytes(done[s.name]) for s in specs)
        say(f"[zoo] {len(specs)} tokenizer(s) ready in {cache_dir() / 'tokenizers'}: "
            f"{', '.join(s.name for s in specs)} ({size / 2**20:.0f} MiB)")
    return done


# --------------------------------------------------------------------------------------------
# load

def _read(folder: Path) -> Any:
    """The tokenizer of a local folder: its files only, no code from anywhere."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)


def _load_local(folder: Path) -> Any:
    """A local tokenizer folder, refused when it needs remote code (``auto_map``)."""
    where = f"the tokenizer folder {folder}"
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ZooError(f"{where}: unreadable tokenizer_config.json ({err})") from None
        if isinstance(config, dict) and "auto_map" in config:
            raise RemoteCodeRefusedError(
                f"{where} needs a remote-code tokenizer (auto_map in tokenizer_config.json); refused: uld-explorer "
                f"loads tokenizers with trust_remote_code=False only (remote code runs arbitrary Python)"
            )
    known = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if not any((folder / f).is_file() for f in known):
        raise ZooError(f"{where} has none of {', '.join(known)}; it is not a Hugging Face tokenizer folder")
    try:
        return _read(folder)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ZooError(f"could not load {where}: {type(err).__name__}: {err}") from None


def load_tokenizer(name_or_path: str | os.PathLike | TokenizerSpec, progress: bool = True) -> Any:
    """A tokenizer alone, offline: a tokenizer-only entry, a zoo model's tokenizer or a local folder.

    Parameters
    ----------
    name_or_path : str, path or TokenizerSpec
        A tokenizer-only entry (:data:`TOKENIZERS`, case-insensitive; fetched and converted on
        first use), a zoo model's name (:data:`~uld_explorer.zoo.MODELS`: the tokenizer of its
        converted folder, the model fetched first if it is not cached; no weights are loaded),
        or a local Hugging Face tokenizer folder.
    progress : bool
        Progress bars when something must be fetched first.

    Returns
    -------
    transformers tokenizer
        Read with ``local_files_only=True`` and ``trust_remote_code=False``; ready for
        :func:`~uld_explorer.text.tokenize_with_offsets`, :func:`~uld_explorer.text.tokenization_report`
        and :func:`~uld_explorer.text.vocab_bytes`.

    Raises
    ------
    UnknownModelError
        Neither an entry, a zoo model nor a folder (the message lists the entries and models).
    RemoteCodeRefusedError
        A local folder whose tokenizer needs code from its repository.
    ZooError
        Not cached and the registry cannot be reached (what to run where), a damaged cached
        folder (the file and the command that rebuilds it; nothing is deleted).
    """
    if isinstance(name_or_path, TokenizerSpec):
        return _entry_tokenizer(name_or_path, progress)
    text = os.fspath(name_or_path)
    try:
        spec = as_tokenizer_spec(text)
    except UnknownModelError as err:
        unknown = err  # its message lists the entries and the zoo models
    else:
        return _entry_tokenizer(spec, progress)
    try:
        model = as_spec(text)
    except UnknownModelError:
        folder = Path(text).expanduser()
        if folder.is_dir():
            return _load_local(folder)
        if os.sep in text or text.startswith((".", "~")):
            raise ZooError(f"no such tokenizer folder: {folder}") from None
        raise unknown from None
    return _model_tokenizer(model, progress)


def _entry_tokenizer(spec: TokenizerSpec, progress: bool) -> Any:
    """The tokenizer of an entry's converted folder (fetched and converted first if needed)."""
    folder = fetch_tokenizers([spec], progress=progress)[spec.name]  # verifies a cached folder
    return read_cached(lambda: _read(folder), spec.key, folder,
                       what=f"the tokenizer of the cached tokenizer {spec.name}",
                       rebuild=f"uld-explorer tokenizers fetch {spec.name} --force",
                       damaged=lambda problems: damaged_tokenizer_error(spec, folder, problems))


def _model_tokenizer(model: ModelSpec, progress: bool) -> Any:
    """The tokenizer of a zoo model's converted folder (the model fetched first if needed), with
    the model's license notice, as :func:`~uld_explorer.zoo.load` gives it."""
    from .download import fetch  # (imports torch, for the conversion)
    from .loader import warn_license_notice

    folder = fetch(model, progress=progress)  # verifies a cached folder
    warn_license_notice(model, folder, stacklevel=3)
    return read_cached(lambda: _read(folder), model.name, folder,
                       what=f"the tokenizer of the cached model {model.name}",
                       rebuild=f"uld-explorer models fetch {model.name} --force",
                       damaged=lambda problems: damaged_error(model.name, folder, problems))
