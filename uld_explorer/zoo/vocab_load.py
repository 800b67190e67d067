"""``load_tokenizer``: a tokenizer alone, offline: a tokenizer-only entry, a zoo model's tokenizer
(no weights loaded) or a local Hugging Face tokenizer folder.

An entry is fetched and converted on first use (:func:`~uld_explorer.zoo.vocab_fetch.fetch_tokenizers`),
a zoo model likewise (:func:`~uld_explorer.zoo.fetch`); both are checked against their markers
first, and read with :func:`~uld_explorer.zoo.cache.read_cached` (a failed read re-hashes every
file before it blames transformers). Everything is read with ``local_files_only=True`` and
``trust_remote_code=False``; a local folder that needs remote code is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .cache import damaged_error, read_cached
from .errors import RemoteCodeRefusedError, UnknownModelError, ZooError
from .registry import ModelSpec, as_spec
from .vocab_fetch import damaged_tokenizer_error, fetch_tokenizers
from .vocab_registry import TokenizerSpec, as_tokenizer_spec

__all__ = ["load_tokenizer"]


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
