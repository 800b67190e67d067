"""A model reads (prompt +) text: its next-token distribution at every text token, and after it.

Which position predicts which token
-----------------------------------
Distributions are indexed by the token they PREDICT (the convention of
:mod:`uld_explorer.text.align`): ``dist[j]`` is the next-token distribution whose target is text
token ``j``, computed from the logits at the input position just before it. The model reads
``context_ids + ids`` (:attr:`~uld_explorer.text.Tokenized.context_ids`: BOS when the
tokenizer adds one, then the prompt's tokens); with ``c`` context tokens the logits at input
position ``c + j - 1`` give ``dist[j]``. Without any context (no BOS, no prompt) nothing
predicts token 0: row 0 is NaN, so a mistaken read shows up instead of passing silently.

One more row, ``dist[T]``, is the distribution after the WHOLE input: the model's prediction of
the token that would follow the text (no actual token; the "next token" row of the table).
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

import numpy as np
import torch

from ..checks import check_int, check_temperature
from ..distributions import softmax
from ..memory import available_memory_bytes
from ..text import Tokenized, tokenize_with_offsets

__all__ = ["as_model", "available_memory_bytes", "model_name", "next_token_distributions", "vocab_size_of"]

#: Logit rows turned into probabilities at once: bounds the temporaries of the softmax
#: (64 rows x 262,144 float32 = 64 MB) whatever the text's length.
SOFTMAX_CHUNK_ROWS = 64


def as_model(model: Any, role: str) -> Any:
    """A zoo name / folder / hub id is loaded with :func:`uld_explorer.zoo.load`; anything with
    ``.tokenizer`` and ``.model`` (e.g. :class:`~uld_explorer.zoo.LoadedModel`) is used as is."""
    if isinstance(model, (str, os.PathLike)):
        from .. import zoo

        return zoo.load(model)
    if not (hasattr(model, "tokenizer") and hasattr(model, "model")):
        raise TypeError(
            f"{role} must be a zoo model name, a model folder / Hugging Face id, or an object with "
            f".tokenizer and .model (e.g. uld_explorer.load_model(...)); got {type(model).__name__}"
        )
    return model


def model_name(model: Any) -> str:
    """The name to show for a model: its ``.name``, else its class name."""
    name = getattr(model, "name", None)
    return str(name) if name else type(getattr(model, "model", model)).__name__


def vocab_size_of(loaded: Any) -> int | None:
    """The size of the model's logits' last axis, V (the output embedding's rows), if known."""
    model = getattr(loaded, "model", loaded)
    try:
        out = model.get_output_embeddings()
        if out is not None:
            return int(out.weight.shape[0])
    except (AttributeError, NotImplementedError):
        pass
    n = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(n) if isinstance(n, (int, np.integer)) else None


def _context_length(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if isinstance(n, (int, np.integer)) and n > 0 else None


def next_token_distributions(
    loaded: Any,
    text: str,
    temperature: float = 1.0,
    max_tokens: int | None = None,
    *,
    prompt: str = "",
    chunk_tokens: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tokenized, np.ndarray]:
    """Tokenize ``text`` with byte offsets and return the model's next-token distributions.

    One forward pass under ``torch.inference_mode()`` on ``context_ids + ids`` (BOS if the
    tokenizer adds one, the prompt's tokens, the text's tokens), then
    :math:`\\mathrm{softmax}(z / T)` (:func:`uld_explorer.distributions.softmax`) in chunks of
    :data:`SOFTMAX_CHUNK_ROWS` rows, written straight into the result.

    Parameters
    ----------
    loaded : LoadedModel, object with ``.tokenizer`` and ``.model``, or a zoo name
    text : str
        Non-empty, not whitespace-only: the tokens to score.
    temperature : float
        ``T > 0``.
    max_tokens : int, optional
        Keep at most this many text tokens (a ``UserWarning`` says how many were cut). Default
        and upper bound: the model's context ``config.max_position_embeddings`` minus the
        context tokens (BOS, prompt).
    prompt : str
        Read before the text, tokenized on its own; it makes row 0 (the text's first token,
        predicted from the prompt's end) available.
    chunk_tokens : int
        Input tokens per forward step (bounds the logits' memory).
    progress : callable(done, total), optional
        Called after each step with the input tokens read so far and their total (a progress bar).

    Returns
    -------
    tok : Tokenized
        The (possibly truncated) tokenization, ``T = len(tok)``, with the prompt.
    dist : ndarray, float32, shape (T + 1, V)
        Row ``j < T`` predicts text token ``j`` (rows ``j < tok.first_predicted`` are NaN); row
        ``T`` is the distribution of the token after the text. ``V`` = the logits' last axis
        (may exceed ``len(tokenizer)``).

    Raises
    ------
    ValueError
        Empty or whitespace-only text, ``temperature <= 0``, ``max_tokens < 1``, a prompt that
        fills the model's context, non-finite logits (damaged weights).
    """
    temperature = check_temperature(temperature, "temperature")
    if max_tokens is not None:
        max_tokens = check_int(max_tokens, "max_tokens", 1, None, "a positive integer")
    chunk_tokens = check_int(chunk_tokens, "chunk_tokens", 1, None, "a positive integer")
    loaded = as_model(loaded, "loaded")
    tokenizer, model = loaded.tokenizer, loaded.model
    ctx = _context_length(model)
    who = model_name(loaded)
    probe = tokenize_with_offsets(tokenizer, text, max_tokens, prompt=prompt, who=who)
    if ctx is not None and len(probe.context_ids) + len(probe) > ctx:
        room = ctx - len(probe.context_ids)
        if room < 1:
            raise ValueError(
                f"the prompt takes {len(probe.context_ids)} tokens of {who}, its whole context ({ctx}): "
                f"shorten the prompt"
            )
        probe = tokenize_with_offsets(tokenizer, text, room, prompt=prompt, who=who)
    tok = probe
    c, T = len(tok.context_ids), len(tok)
    input_ids = torch.tensor([tok.model_input_ids], dtype=torch.long)  # (1, L), L = c + T
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    dist: np.ndarray | None = None
    first = tok.first_predicted
    past = None
    # the key/value cache argument: `cache` in transformers >= 5.x, `past_key_values` before
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    if progress is not None:
        progress(0, c + T)
    with torch.inference_mode():
        # the input in steps of chunk_tokens, attention over the cached keys and values of the
        # steps before: only chunk_tokens x V logits exist at once, whatever the text's length
        for s0 in range(0, c + T, chunk_tokens):
            s1 = min(s0 + chunk_tokens, c + T)
            out = model(input_ids=input_ids[:, s0:s1].to(device), use_cache=True, **{cache_arg: past})
            past = getattr(out, cache_arg)
            logits = out.logits[0]  # (s1 - s0, V): logits at input position i predict input i + 1
            if dist is None:
                dist = np.empty((T + 1, logits.shape[-1]), dtype=np.float32)
                dist[:first] = np.nan  # nothing predicts the first token of a text read without context
            # input position i gives dist[j] with j = i - c + 1 (j = T: after the whole input)
            lo = max(s0, c + first - 1)
            for i0 in range(lo, s1, SOFTMAX_CHUNK_ROWS):
                i1 = min(i0 + SOFTMAX_CHUNK_ROWS, s1)
                z = logits[i0 - s0 : i1 - s0].float()
                if not torch.isfinite(z).all():
                    bad = int((~torch.isfinite(z)).any(-1).nonzero()[0]) + i0
                    raise ValueError(
                        f"{model_name(loaded)} produced NaN or infinite logits at input position {bad}: its "
                        f"weights may be damaged (for a zoo model run `uld-explorer models verify "
                        f"{model_name(loaded)}`), or its dtype overflows on this input"
                    )
                dist[i0 - c + 1 : i1 - c + 1] = softmax(z, temperature).cpu().numpy()
            del out, logits
            if progress is not None:
                progress(s1, c + T)
    return tok, dist
