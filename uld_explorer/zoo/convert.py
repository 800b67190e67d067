"""GGUF -> safetensors: step 4 (convert) and step 5 (publish) of a fetch.

:func:`convert_gguf` loads the GGUF with transformers (de-quantized to float32), copies its
weights into a fresh model built from the same config without the GGUF quantization config, checks
that both give the same logits on :data:`SELF_CHECK_TEXT`, saves a safetensors model folder and
re-checks the reloaded folder's logits; while it runs, :func:`_gguf_speedups` lets transformers
parse each GGUF file once. :func:`convert_and_publish` runs it (or the converter given to
:func:`~uld_explorer.zoo.fetch`) in a temporary folder next to the final one,
rejects a self-check beyond :data:`SELF_CHECK_ATOL` or an unexpected vocabulary size, adds the
license documents, and hands the folder to :func:`~uld_explorer.zoo.publish.publish_folder`
(the completion marker, then the rename into place), as the tokenizer conversion does.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm import tqdm

from .cache import model_dir, package_version
from .errors import ZooError
from .hf import load_folder, transformers_progress
from .progress import progress_bar
from .publish import publish_folder
from .registry import ModelSpec

__all__ = ["SELF_CHECK_ATOL", "SELF_CHECK_TEXT", "Converter", "convert_gguf"]

#: Text used to check that the converted model gives the same logits as the GGUF-loaded one.
SELF_CHECK_TEXT = "The capital of France is"
#: Largest allowed absolute logit difference between the GGUF-loaded and the converted model (both
#: float32, same weights: the difference is 0.0 in practice).
SELF_CHECK_ATOL = 1e-3
#: A conversion step, ``converter(gguf, out, progress, bar) -> self-check figures``, as
#: :func:`convert_gguf` (``fetch(converter=...)`` takes one; the tests use it to avoid real models).
Converter = Callable[[Path, Path, bool, tqdm], dict[str, Any]]


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


def convert_gguf(gguf: Path, out: Path, progress: bool, bar: tqdm) -> dict[str, Any]:
    """GGUF -> safetensors model folder ``out``; returns the self-check figures.

    transformers de-quantizes the GGUF to float32 on load, but refuses to ``save_pretrained`` a
    GGUF-loaded model ("quantized with gguf, not serializable"), so its weights go into a fresh
    model built from the same config without the ``quantization_config`` (the tensors are shared,
    not copied). Both models' logits are compared, then the saved folder is reloaded and its
    logits compared again. This is the default converter of :func:`~uld_explorer.zoo.fetch`.

    Parameters
    ----------
    gguf : Path
        The verified GGUF file.
    out : Path
        An existing, empty folder to write the model into.
    progress : bool
        Whether progress is shown (transformers' own bars are switched by the caller).
    bar : tqdm
        The caller's step bar: advanced once per step (5 steps), its postfix names the step.

    Returns
    -------
    dict
        ``max_abs_diff_fresh`` and ``max_abs_diff_saved`` (largest absolute logit difference to the
        GGUF-loaded model, before saving and after reloading), ``logits_vocab`` and a few more
        figures, all recorded in the folder's marker.
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
    tok2, model2 = load_folder(out, torch.float32, local_files_only=True)
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


_CONVERT_STEPS = 5


def convert_and_publish(spec: ModelSpec, gguf: Path, docs: dict[str, bytes], progress: bool,
                        timings: dict[str, float], converter: Converter) -> Path:
    """Steps 4 and 5: ``converter`` into a temporary folder, the self-check figures checked
    (nothing is cached when one fails), ``docs`` (file name -> bytes, the license documents) and
    the license notice added, then published as ``<cache>/models/<name>/``; returns that folder."""

    def fill(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        with progress_bar(progress, total=_CONVERT_STEPS, unit="step", desc=f"convert {spec.name}") as bar, \
                transformers_progress(progress):
            check = converter(gguf, tmp, progress, bar)
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
        return {
            "name": spec.name,
            "gguf_file": spec.gguf_file,
            "gguf_sha256": spec.sha256,  # verified before conversion
            "wheels": [w.requirement for w in spec.wheels],
            "self_check": check,
            "timings": timings,
            "license": spec.license,
            "versions": {"transformers": package_version("transformers"), "torch": torch.__version__},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    return publish_folder(model_dir(spec), spec.name, fill)
