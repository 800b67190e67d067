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

import os
from typing import Any

import numpy as np
import torch

from ..distributions import softmax
from ..text import Tokenized, tokenize_with_offsets

__all__ = ["as_model", "model_name", "next_token_distributions"]

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
        fills the model's context.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)) or not (
        np.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite number > 0 (got {temperature!r})")
    loaded = as_model(loaded, "loaded")
    tokenizer, model = loaded.tokenizer, loaded.model
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1
    ):
        raise ValueError(f"max_tokens must be a positive integer (got {max_tokens!r})")
    ctx = _context_length(model)
    probe = tokenize_with_offsets(tokenizer, text, max_tokens, prompt=prompt)
    if ctx is not None and len(probe.context_ids) + len(probe) > ctx:
        room = ctx - len(probe.context_ids)
        if room < 1:
            raise ValueError(
                f"the prompt takes {len(probe.context_ids)} tokens, the model's whole context ({ctx}): "
                f"shorten the prompt"
            )
        probe = tokenize_with_offsets(tokenizer, text, room, prompt=prompt)
    tok = probe
    c, T = len(tok.context_ids), len(tok)
    input_ids = torch.tensor([tok.model_input_ids], dtype=torch.long)
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device)).logits[0]  # (c + T, V)
        V = logits.shape[-1]
        dist = np.empty((T + 1, V), dtype=np.float32)
        first = tok.first_predicted
        if first:
            dist[:first] = np.nan  # nothing predicts the first token of a text read without context
        # dist[j] = softmax(logits[c + j - 1]) for first <= j <= T (row T: after the whole input)
        out = torch.from_numpy(dist)
        for j0 in range(first, T + 1, SOFTMAX_CHUNK_ROWS):
            j1 = min(j0 + SOFTMAX_CHUNK_ROWS, T + 1)
            out[j0:j1] = softmax(logits[c + j0 - 1 : c + j1 - 1].float(), float(temperature)).cpu()
    return tok, dist
