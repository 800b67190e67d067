"""The student: a small randomly initialised Llama with a real tokenizer, or a pretrained model.

Why a small student for the CPU demo: SmolLM2-135M-Instruct is already fluent, and on two CPU
cores a training step of it takes seconds, so in two minutes its curves barely move. A 2-layer,
128-wide Llama with SmolLM2's REAL tokenizer (49,152 tokens, tied embeddings, ~6.7 M parameters)
starts from uniform predictions (CE = ln 49,152 = 10.8 nats) and learns the teacher's answers in
two minutes, so every curve (CE, ULD, top-1 agreement) travels its whole range. The tokenizer
mismatch with the Qwen2.5-Coder teacher (151,936 tokens) is the real one.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["small_student", "build_student", "AnswerLogits"]


def small_student(tokenizer: Any, vocab_size: int, layers: int, hidden: int, seed: int) -> Any:
    """A fresh ``LlamaForCausalLM`` (tied embeddings, heads of 32 dims, MLP 3x hidden), its
    weights drawn from ``torch.Generator`` seeded with ``seed`` (the same seed, the same student)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 32, num_key_value_heads=hidden // 32, max_position_embeddings=2048,
        tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=getattr(tokenizer, "bos_token_id", None), eos_token_id=getattr(tokenizer, "eos_token_id", None),
        pad_token_id=getattr(tokenizer, "pad_token_id", None),
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(cfg)
    finally:
        torch.random.set_rng_state(state)
    return model


def build_student(config: Any, tokenizer: Any, vocab_size: int, *, progress: bool = True) -> Any:
    """The run's student: :func:`small_student` (``student_init="small"``) or the pretrained
    model ``config.student`` (``"pretrained"``), whose logits must have ``vocab_size`` entries.

    Raises
    ------
    DistillError
        A pretrained student whose logits do not match its tokenizer's vocabulary.
    """
    if config.student_init == "small":
        return small_student(tokenizer, vocab_size, config.student_layers, config.student_hidden, config.seed)
    from ..zoo.loader import load
    from .errors import DistillError

    model = load(config.student, progress=progress).model
    width = model.get_output_embeddings().weight.shape[0]
    if width != vocab_size:
        raise DistillError(f"the student's logits have {width:,} entries, its tokenizer {vocab_size:,}")
    return model


class AnswerLogits(torch.nn.Module):
    """The student's logits at the answer positions only (the module Accelerate/DDP wraps).

    ``forward(input_ids (B, L), attention_mask (B, L), positions (R,))`` -> logits ``(R, V_s)``,
    where ``positions`` index the flattened ``(B * L)`` hidden states: the decoder runs on the
    whole batch, the output projection (the costly ``V_s``-wide part) only on the R rows that
    predict answer tokens. Models with final logit soft-capping (Gemma 2/3) are not supported.
    """

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        if getattr(model.config, "final_logit_softcapping", None):
            raise ValueError(f"{type(model).__name__} soft-caps its logits: not supported as a student here")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        B, L = input_ids.shape
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, L, H)
        rows = hidden.reshape(B * L, -1).index_select(0, positions)  # (R, H)
        return self.model.get_output_embeddings()(rows)  # (R, V_s)
