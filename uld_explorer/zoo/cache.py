"""The zoo's cache on disk: where things live, when a folder counts as cached, and the checks of
its files.

The cache directory is ``$ULD_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/uld-explorer``, else
``~/.cache/uld-explorer`` (:func:`cache_dir`); a converted model lives in ``<cache>/models/<name>/``
(:func:`model_dir`), a converted tokenizer in ``<cache>/tokenizers/<name>/``, and a folder counts
as cached only when its completion marker ``ZOO_COMPLETE.json`` exists (written last by
:func:`~uld_explorer.zoo.publish.publish_folder`; it records the size and sha256 of every file).
A folder under its final name whose marker is missing, truncated or unreadable is DAMAGED, not
"not cached": it is never downloaded again, deleted or replaced on that guess
(:func:`inspect_marker`); only a folder that is not there, or empty, is fetched (the temporary
folders of a killed fetch, ``.<name>.tmp-*``, are not cached folders). This module reads that
marker and checks a folder against it (:func:`check_files`, :func:`check_folder`), for models and
tokenizers alike: :func:`cached_intact` before a fetch or a load, :func:`read_cached` around the
read itself; it lists the zoo with each model's status and disk use (:func:`list_models`), checks
that a fetch can write the cache before it downloads anything (:func:`check_writable`), and holds
the lock that lets one process at a time fetch a model or an archive.

Every file is verified against its recorded sha256 without hashing 2.4 GB on every load: a file
whose sha256 matched once is remembered by a stat fingerprint (size, mtime, ctime, inode, device)
in ``<cache>/verified/<key>.json``; a load re-hashes exactly the files whose fingerprint changed
(any write changes the ctime, which no tool can set back). ``uld-explorer models verify``
re-hashes everything. What a check that hashed found wrong is kept there too, so that a listing
says ``damaged`` (and the next load re-hashes the bad files) until a later check finds every file
intact or the folder is rebuilt. A damaged folder is reported with the file and what to run, never
deleted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Sequence, TypeVar

from tqdm import tqdm

from .errors import CacheNotWritableError, ZooError
from .progress import say
from .registry import MODELS, ModelSpec, as_spec

__all__ = [
    "CACHE_ENV", "MARKER", "ON_DISK", "FolderCheck", "ZooEntry", "cache_dir", "cached_intact", "check_files", "check_folder",
    "check_writable", "damaged_error", "folder_status", "inspect_marker", "is_cached", "list_models", "model_dir",
    "read_cached", "verify",
]

#: Environment variable that overrides the cache directory.
CACHE_ENV = "ULD_EXPLORER_CACHE"
#: A converted folder (a model's, a tokenizer's) counts as cached only when this file exists in it
#: (written last).
MARKER = "ZOO_COMPLETE.json"
MARKER_FORMAT = 1
#: The statuses of a folder that is there under its name (:func:`folder_status`): a fetch leaves
#: it alone unless forced, a load checks it and says what is wrong.
ON_DISK = ("cached", "unverified", "damaged")
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


def inspect_marker(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """Read the completion marker of a cache folder under its final name, and say what is wrong.

    Returns ``(marker, None)`` when it reads; ``(None, None)`` when there is no folder there, or
    an empty one (not cached: a fetch may build it); ``(None, problem)`` when the folder holds
    files but its marker is missing, truncated or unreadable: the folder is damaged, and is never
    downloaded again, deleted or replaced on that guess (``problem`` is one line, e.g.
    ``"ZOO_COMPLETE.json: missing (...)"``, for :func:`damaged_error`).

    >>> inspect_marker(Path("/nonexistent/uld-explorer/models/X"))
    (None, None)
    """
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            if any(folder.iterdir()):
                return None, (f"{MARKER}: missing (the folder holds files but no completion marker: an "
                              f"unfinished copy, or the marker was deleted)")
        return None, None
    except OSError as err:
        if not folder.exists():  # a file somewhere above it: no folder there
            return None, None
        if not folder.is_dir():
            return None, f"{folder.name} is a file, not a folder"
        return None, f"{MARKER}: unreadable ({err.strerror or err})"
    except ValueError as err:  # not JSON, not UTF-8
        return None, f"{MARKER}: truncated or damaged, not the JSON it was written as ({err})"
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        return None, f"{MARKER}: format {got!r}, this uld-explorer reads format {MARKER_FORMAT}"
    files = data.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("bytes"), int) and isinstance(r.get("sha256"), str)
            for r in files.values()):
        return None, f"{MARKER}: damaged (its list of files and their sha256 is not what it was written as)"
    return data, None


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's completion marker, or None when it is not there or does not read
    (:func:`inspect_marker` says which)."""
    return inspect_marker(folder)[0]


def write_marker(folder: Path, marker: dict[str, Any]) -> None:
    """Write the completion marker of ``folder`` (the last file written into a cached folder)."""
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def is_cached(name_or_spec: str | ModelSpec) -> bool:
    """True when the converted folder of a zoo model (name or spec) exists and is complete (has a
    readable marker; its files are not checked here: :func:`list_models` says ``damaged``)."""
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
    status: str  # "cached", "unverified", "damaged", "sources only" or "not cached"
    disk_bytes: int  # converted folder plus any sources
    path: Path

    @property
    def cached(self) -> bool:
        return self.status == "cached"

    @property
    def on_disk(self) -> bool:
        """A folder is there under the model's name: cached, unverified or damaged (a load then says
        what is wrong); False for ``"not cached"`` and ``"sources only"`` (a fetch builds it)."""
        return self.status in ON_DISK

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "vocab_size": self.vocab_size,
            "tokenizer_size": self.tokenizer_size, "params": self.params, "license": self.license,
            "cached": self.cached, "status": self.status, "disk_bytes": self.disk_bytes,
            "path": str(self.path),
        }


def list_models(specs: Iterable[ModelSpec] | None = None) -> list[ZooEntry]:
    """Every zoo model with its vocabulary, size, license and cache status (hashes nothing).

    Status: ``"cached"`` (complete, every file as verified), ``"unverified"`` (a file was written
    since its sha256 was last checked, or never checked in this cache: the next load or
    ``models verify`` re-hashes it), ``"damaged"`` (a file is missing or has the wrong size, the
    marker is missing or unreadable, or the last check that hashed, a load or ``models verify``,
    found a file whose sha256 does not match, and no check since found it intact),
    ``"sources only"`` (wheels / GGUF of an unfinished fetch), ``"not cached"``.

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
        status = folder_status(name, folder, sources)
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


def _fingerprint(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def verified_path(name: str) -> Path:
    """Where the stat fingerprints of a model's verified files are kept."""
    return cache_dir() / "verified" / f"{name}.json"


def _read_verified(name: str) -> dict[str, Any]:
    try:
        data = json.loads(verified_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_verified(name: str, folder: Path, marker: dict[str, Any], *, damaged: Sequence[str] = (),
                      bad: Collection[str] = ()) -> None:
    """Record the fingerprints of the folder's files as verified against ``marker`` (call only
    right after their sha256 matched, or :func:`check_files` trusted them), and what the check
    found wrong: ``damaged`` (one line per bad file) is kept, and listings say ``damaged``, until
    a later check finds every file intact; the ``bad`` files get no fingerprint, so the next
    check re-hashes them. A read-only cache just skips it: loads then re-hash."""
    record = {}
    for fname, rec in marker.get("files", {}).items():
        if fname not in bad:
            with contextlib.suppress(OSError):
                record[fname] = {"stat": _fingerprint((folder / fname).stat()), "sha256": rec["sha256"]}
    doc: dict[str, Any] = {"folder": str(folder), "files": record}
    if damaged:
        doc["damaged"] = list(damaged)
    path = verified_path(name)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)


@dataclass(frozen=True)
class FolderCheck:
    """What :func:`check_folder` found.

    Attributes
    ----------
    problems : tuple of str
        One line per bad file (``"model.safetensors: sha256 ... expected ..."``); empty when intact.
    unverified : tuple of str
        Files written since they were last verified (only when ``hash_files=False``).
    hashed : tuple of str
        Files whose sha256 was computed in this check.
    """

    problems: tuple[str, ...]
    unverified: tuple[str, ...] = ()
    hashed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unverified

    @property
    def status(self) -> str:
        """``"cached"``, ``"unverified"`` or ``"damaged"`` (:func:`list_models`)."""
        return "damaged" if self.problems else ("unverified" if self.unverified else "cached")


def check_folder(
    name_or_spec: str | ModelSpec, folder: Path, marker: dict[str, Any], *, hash_files: bool = True,
    rehash_all: bool = False,
) -> FolderCheck:
    """Check a converted model folder against its marker: :func:`check_files` under the zoo
    model's name (a spec, or a zoo name in any case)."""
    return check_files(as_spec(name_or_spec).name, folder, marker, hash_files=hash_files, rehash_all=rehash_all)


def check_files(
    key: str, folder: Path, marker: dict[str, Any], *, hash_files: bool = True, rehash_all: bool = False,
) -> FolderCheck:
    """Check a cached folder (a model's, a tokenizer's) against its marker.

    Every file listed in the marker must exist with the recorded size. Its sha256 is then taken
    as verified when the file's stat fingerprint equals the one remembered when it last matched;
    otherwise (or with ``rehash_all``) the file is hashed (``hash_files``) and compared, and a
    match is remembered. With ``hash_files=False`` a changed file is reported as unverified
    instead of hashed (for listings), and what the last check that hashed found wrong is
    reported as found then, until a check finds every file intact (:func:`remember_verified`).

    Parameters
    ----------
    key : str
        Where the folder's fingerprints are remembered (:func:`verified_path`): a zoo model's
        name, ``"tokenizers/<name>"`` for a tokenizer.
    folder : Path
    marker : dict
        The folder's completion marker (:func:`read_marker`).

    Returns
    -------
    FolderCheck
    """
    remembered = _read_verified(key)
    known = {} if rehash_all else remembered.get("files", {})
    found_before = [str(p) for p in remembered.get("damaged") or []]  # by the last check that hashed
    problems, bad, unverified, hashed = [], [], [], []
    for fname, rec in marker.get("files", {}).items():
        f = folder / fname
        try:
            st = f.stat()
        except OSError:
            problems.append(f"{fname}: missing")
            bad.append(fname)
            continue
        if st.st_size != rec["bytes"]:
            problems.append(f"{fname}: {st.st_size:,} bytes, expected {rec['bytes']:,}")
            bad.append(fname)
            continue
        seen = known.get(fname, {})
        if seen.get("stat") == _fingerprint(st) and seen.get("sha256") == rec["sha256"]:
            continue  # unchanged since its sha256 last matched
        if not hash_files:
            unverified.append(fname)
            continue
        digest = sha256_file(f)
        hashed.append(fname)
        if digest != rec["sha256"]:
            problems.append(f"{fname}: sha256 {digest[:16]}..., expected {rec['sha256'][:16]}... (same size: "
                            f"the content changed)")
            bad.append(fname)
    if not hash_files:
        if found_before and not problems:  # a listing: what the last check found still stands
            problems = [f"{p} (found by the last check; not checked since)" for p in found_before]
    elif problems:
        remember_verified(key, folder, marker, damaged=problems, bad=bad)
    elif hashed or found_before:
        remember_verified(key, folder, marker)
    return FolderCheck(tuple(problems), tuple(unverified), tuple(hashed))


def damaged_error(name: str, folder: Path, problems: Iterable[str], *, what: str = "model",
                  rebuild: str | None = None, verify: str | None = None) -> ZooError:
    """The error for a damaged cached folder: what is wrong, file by file, and what to run.
    Nothing is deleted: the user decides.

    ``what`` names the kind of folder ("model", "tokenizer"); ``rebuild`` and ``verify`` are the
    commands that rebuild it and re-hash it (default: ``uld-explorer models fetch NAME --force``
    and ``uld-explorer models verify NAME``; ``verify=""``: there is none, the next load
    re-hashes restored files)."""
    listed = "; ".join(problems)
    rebuild = rebuild or f"uld-explorer models fetch {name} --force"
    verify = f"uld-explorer models verify {name}" if verify is None else verify
    restore = (f"restore the file(s) and run `{verify}`" if verify
               else "restore the file(s): the next load re-hashes them")
    return ZooError(
        f"the cached {what} {name} is damaged ({folder}): {listed}. Nothing was deleted. Rebuild it "
        f"with `{rebuild}`, or {restore}."
    )


#: Makes the error for a damaged cached folder from its problems (one line per bad file), as
#: :func:`damaged_error` with the folder's name and commands filled in.
DamagedError = Callable[[Iterable[str]], ZooError]

_T = TypeVar("_T")


def cached_intact(key: str, folder: Path, damaged: DamagedError) -> bool:
    """Whether ``folder`` is cached and intact: the check before a fetch or a load.

    True when the folder has its marker and every file matches it (hashing only the files written
    since they were last verified, :func:`check_files`); False when there is no folder, or an
    empty one (not cached). A missing, resized or changed file, or a folder whose marker is
    missing or unreadable (:func:`inspect_marker`), raises ``damaged(problems)``: a damaged folder
    is never rebuilt, nor deleted, on a guess; the user decides.

    Parameters
    ----------
    key : str
        Where the folder's fingerprints are remembered (a zoo model's name, ``"tokenizers/<name>"``).
    folder : Path
    damaged : callable
        ``damaged(problems) -> ZooError`` (:func:`damaged_error` with the folder's name and commands).
    """
    marker, problem = inspect_marker(folder)
    if problem is not None:
        raise damaged([problem])
    if marker is None:
        return False
    check = check_files(key, folder, marker)
    if check.problems:
        raise damaged(check.problems)
    return True


def read_cached(read: Callable[[], _T], key: str, folder: Path, *, what: str, rebuild: str,
                damaged: DamagedError) -> _T:
    """``read()`` of a verified cached folder (a model, a tokenizer); if it fails, every file is
    re-hashed first, before the reader is blamed.

    A file may have rotted under a fingerprint that did not change: when the re-hash finds a bad
    file, ``damaged(problems)`` is raised. When every file matches, the folder is intact and is
    kept: the error says this transformers cannot read it, and how to get one that can.

    Parameters
    ----------
    read : callable
        Reads the folder (``AutoTokenizer.from_pretrained``, the model's loader).
    key, folder :
        As for :func:`check_files`.
    what : str
        The folder in the message, e.g. ``"the cached model SmolLM2-135M-Instruct"``.
    rebuild : str
        The command that rebuilds the folder.
    damaged : callable
        ``damaged(problems) -> ZooError``.

    Raises
    ------
    ZooError
        ``damaged(problems)``, or an intact folder that this transformers cannot read (nothing is
        deleted in either case).
    """
    try:
        return read()
    except Exception as err:
        marker, problem = inspect_marker(folder)
        check = FolderCheck((problem,)) if problem else check_files(key, folder, marker or {}, rehash_all=True)
        if check.problems:
            raise damaged(check.problems) from None
        raise ZooError(
            f"could not load {what} ({folder}): {type(err).__name__}: {err}. Its files match the sha256 "
            f"recorded when it was built, so the folder is intact and nothing was deleted: this transformers "
            f"({package_version('transformers')}) cannot read it. Install the version it was built with, or "
            f"rebuild it with `{rebuild}`."
        ) from None


def folder_status(key: str, folder: Path, sources: Path | None = None) -> str:
    """``"cached"``, ``"unverified"``, ``"damaged"`` (:class:`FolderCheck`, hashing nothing; a
    folder whose marker is missing or unreadable too), ``"sources only"`` (no folder, but
    downloads in ``sources``) or ``"not cached"``."""
    marker, problem = inspect_marker(folder)
    if problem is not None:
        return "damaged"
    if marker is not None:
        return check_files(key, folder, marker, hash_files=False).status
    if sources is not None and sources.is_dir() and any(sources.iterdir()):
        return "sources only"
    return "not cached"


def verify(name_or_spec: str | ModelSpec) -> Path:
    """Re-hash every file of a cached zoo model (name or spec) against its marker.

    Nothing is ever deleted. Returns the folder (and remembers its files as verified); raises
    :class:`ZooError` when the model is not cached, its marker is missing or unreadable, or a file
    is missing, resized or changed, naming each file and what to run (what it found is kept:
    :func:`list_models` says ``damaged`` until a check passes or the model is rebuilt).
    """
    spec = as_spec(name_or_spec)
    name, folder = spec.name, model_dir(spec)
    marker, problem = inspect_marker(folder)
    if problem is not None:
        raise damaged_error(name, folder, [problem])
    if marker is None:
        raise ZooError(f"{name} is not cached ({folder}); run `uld-explorer models fetch {name}`")
    check = check_folder(spec, folder, marker, rehash_all=True)
    if check.problems:
        raise damaged_error(name, folder, check.problems)
    return folder


# --------------------------------------------------------------------------------------------
# small helpers shared by the fetch, publish and convert steps


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


def package_version(name: str) -> str:
    """The installed version of a distribution, for the markers (``"unknown"`` if not found)."""
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover
        return "unknown"


def check_writable(*folders: Path) -> None:
    """Check that a file can be written in each of ``folders`` (inside the cache), or raise
    :class:`~uld_explorer.zoo.errors.CacheNotWritableError` saying which folder, why (read-only
    file system, a file where a folder should be, no permission) and how to point the cache
    elsewhere. A fetch calls it before it downloads anything.

    A folder not there yet is checked at its nearest existing parent (where it would be created);
    the check creates nothing that stays.
    """
    for folder in folders:
        base = next((p for p in (folder, *folder.parents) if p.exists()), None)
        try:
            if base is None or not base.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(base))
            with tempfile.NamedTemporaryFile(dir=base, prefix=".uld-explorer-write-test-"):
                pass
        except OSError as err:
            raise CacheNotWritableError(
                f"the zoo's cache folder {folder} cannot be written ({_unwritable_reason(base, err)}), so nothing "
                f"was fetched or downloaded. Point ${CACHE_ENV} at a folder you can write (the cache is "
                f"{cache_dir()}), or make that one writable."
            ) from None


def _unwritable_reason(base: Path | None, err: OSError) -> str:
    """Why ``base`` (the nearest existing folder, or the file in the way) cannot take a new file."""
    if err.errno == errno.EROFS:
        return f"{base} is on a read-only file system"
    if err.errno == errno.ENOTDIR:
        return f"not a directory: {base} is a file"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied in {base}"
    return f"{err.strerror or err}: no file can be created in {base}"


@contextlib.contextmanager
def fetch_lock(name: str) -> Iterator[None]:
    """One fetch of a model (or of a source archive, ``name`` its key) at a time, across processes
    (POSIX flock; no-op elsewhere)."""
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
