"""The zoo's cache on disk: where things live, when a model folder counts as cached, and the checks
of its files.

The cache directory is ``$ULD_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/uld-explorer``, else
``~/.cache/uld-explorer`` (:func:`cache_dir`); a converted model lives in ``<cache>/models/<name>/``
(:func:`model_dir`) and counts as cached only when its completion marker ``ZOO_COMPLETE.json``
exists (written last; it records the size and sha256 of every file). This module reads and writes
that marker, checks a folder against it (sizes on every load, every sha256 in :func:`verify`),
lists the zoo with each model's status and disk use (:func:`list_models`), and holds the per-model
lock that lets one process at a time fetch a model, with the small file, hashing and progress-bar
helpers the fetch and convert steps share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm import tqdm

from .errors import ZooError
from .registry import MODELS, ModelSpec, as_spec

__all__ = ["CACHE_ENV", "MARKER", "ZooEntry", "cache_dir", "is_cached", "list_models", "model_dir", "verify"]

#: Environment variable that overrides the cache directory.
CACHE_ENV = "ULD_EXPLORER_CACHE"
#: A converted model folder counts as cached only when this file exists in it (written last).
MARKER = "ZOO_COMPLETE.json"
MARKER_FORMAT = 1
CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """The zoo's cache directory: ``$ULD_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/uld-explorer``,
    else ``~/.cache/uld-explorer`` (not created here)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "uld-explorer"


def model_dir(name_or_spec: str | ModelSpec) -> Path:
    """Where the converted folder of a zoo model (name or spec) lives (whether cached or not)."""
    return cache_dir() / "models" / as_spec(name_or_spec).name


def sources_dir(name: str) -> Path:
    return cache_dir() / "sources" / name


def read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    return data


def write_marker(folder: Path, marker: dict[str, Any]) -> None:
    """Write the completion marker of ``folder`` (the last file written into a model folder)."""
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def is_cached(name_or_spec: str | ModelSpec) -> bool:
    """True when the converted folder of a zoo model (name or spec) exists and is complete (has its
    marker)."""
    return read_marker(model_dir(name_or_spec)) is not None


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).stat().st_size
    return total


@dataclass(frozen=True)
class ZooEntry:
    """One row of :func:`list_models`."""

    name: str
    role: str
    vocab_size: int
    tokenizer_size: int
    params: int
    license: str
    status: str  # "cached", "sources only" (wheels/GGUF present, not converted) or "not cached"
    disk_bytes: int  # converted folder plus any sources
    path: Path

    @property
    def cached(self) -> bool:
        return self.status == "cached"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "vocab_size": self.vocab_size,
            "tokenizer_size": self.tokenizer_size, "params": self.params, "license": self.license,
            "cached": self.cached, "status": self.status, "disk_bytes": self.disk_bytes,
            "path": str(self.path),
        }


def list_models(specs: Iterable[ModelSpec] | None = None) -> list[ZooEntry]:
    """Every zoo model with its vocabulary, size, license and cache status (reads no weights).

    Parameters
    ----------
    specs : iterable of ModelSpec, optional
        The models to list (default: those of :data:`MODELS`, in order).
    """
    rows = []
    for spec in MODELS.values() if specs is None else specs:
        name = spec.name
        folder, sources = model_dir(spec), sources_dir(name)
        disk = (folder_bytes(folder) if folder.exists() else 0) + (folder_bytes(sources) if sources.exists() else 0)
        if is_cached(spec):
            status = "cached"
        elif sources.exists() and any(sources.iterdir()):
            status = "sources only"
        else:
            status = "not cached"
        rows.append(ZooEntry(name, spec.role, spec.vocab_size, spec.tokenizer_size, spec.params,
                             spec.license, status, disk, folder))
    return rows


# --------------------------------------------------------------------------------------------
# file checks


def file_record(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        f.name: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
        for f in sorted(folder.iterdir()) if f.is_file() and f.name != MARKER
    }


def check_files(name: str, folder: Path, marker: dict[str, Any], full: bool) -> str | None:
    """None when the folder matches its marker, else what is wrong (sizes, or sha256 if full)."""
    for fname, rec in marker.get("files", {}).items():
        f = folder / fname
        if not f.is_file():
            return f"{fname} is missing"
        size = f.stat().st_size
        if size != rec["bytes"]:
            return f"{fname} has {size} bytes, expected {rec['bytes']}"
        if full and sha256_file(f) != rec["sha256"]:
            return f"{fname} has the wrong sha256 (expected {rec['sha256']})"
    return None


def damaged_error(name: str, folder: Path, problem: str) -> ZooError:
    remove_path(folder)
    return ZooError(
        f"the cached model folder {folder} is damaged: {problem}. The folder was removed; "
        f"run `uld-explorer models fetch {name}` to build it again."
    )


def verify(name_or_spec: str | ModelSpec) -> Path:
    """Re-hash every file of a cached zoo model (name or spec) against its marker; a damaged
    folder is removed.

    Returns the folder; raises :class:`ZooError` when it is not cached or damaged.
    """
    spec = as_spec(name_or_spec)
    name, folder = spec.name, model_dir(spec)
    marker = read_marker(folder)
    if marker is None:
        raise ZooError(f"{name} is not cached ({folder}); run `uld-explorer models fetch {name}`")
    problem = check_files(name, folder, marker, full=True)
    if problem:
        raise damaged_error(name, folder, problem)
    return folder


# --------------------------------------------------------------------------------------------
# small helpers shared by the fetch and convert steps


def sha256_file(path: Path, bar: tqdm | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
            if bar is not None:
                bar.update(len(block))
    return digest.hexdigest()


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def progress_bar(progress: bool, **kwargs: Any) -> tqdm:
    return tqdm(disable=not progress, file=sys.stderr, dynamic_ncols=True, **kwargs)


def say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


@contextlib.contextmanager
def fetch_lock(name: str) -> Iterator[None]:
    """One fetch of a model at a time, across processes (POSIX flock; no-op elsewhere)."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_dir / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say(f"[zoo] waiting for another process that is fetching {name} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
