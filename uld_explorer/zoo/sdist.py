"""Downloading a pinned source archive without building it: step 1 of a tokenizer fetch.

``pip download`` saves a source archive (``.tar.gz``, an :class:`~uld_explorer.zoo.registry.Sdist`)
only after asking the archive's PEP 517 build backend for the package's metadata.
:func:`sdist_download` puts a stand-in module of the backend's name first on the path of pip's
backend process: it answers from the archive's own ``PKG-INFO`` and refuses to build. Nothing of
the package is run, built, installed or imported; the zoo only reads data files out of the
archive (:mod:`.vocab_extract`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .vocab_registry import LLAMA_CPP_SDIST

__all__ = ["sdist_download"]

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
    :func:`~uld_explorer.zoo.vocab_fetch.fetch_tokenizers` (signature of
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
