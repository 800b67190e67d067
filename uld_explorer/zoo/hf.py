"""The two transformers calls that the conversion and the loading of a model share: reading a
model folder (or Hugging Face id) with safetensors weights only and no remote code, in eval mode,
and switching transformers' own progress bars off for the duration of a block.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch


def load_folder(path: Path | str, dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=local_files_only, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=local_files_only, use_safetensors=True, trust_remote_code=False, dtype=dtype
    )
    model.eval()
    return tokenizer, model


@contextlib.contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Switch transformers' progress bars off for the block unless ``enabled`` (when enabled
    they stay as they were); their previous state is restored on exit."""
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
