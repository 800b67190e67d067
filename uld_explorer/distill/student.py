"""The student: a small randomly initialised Llama with a real tokenizer, or a pretrained model.

Why a small student for the CPU demo: SmolLM2-135M-Instruct is already fluent, and on two CPU
cores a training step of it takes seconds, so in two minutes its curves barely move. A 2-layer,
128-wide Llama with SmolLM2's REAL tokenizer (49,152 tokens, tied embeddings, ~6.7 M parameters)
starts from uniform predictions (CE = ln 49,152 = 10.8 nats) and learns the teacher's answers in
two minutes, so every curve (CE, ULD, top-1 agreement) travels its whole range. The tokenizer
mismatch with the Qwen2.5-Coder teacher (151,936 tokens) is the real one.

A pretrained student can instead train only its top (``train_last_layers = k``): its last k
decoder layers and final norm train, everything below (the embeddings and the first ``L - k``
layers: the *trunk*) is frozen, and the trunk's output per example is computed once and cached
(:mod:`.teacher_cache`'s sibling :mod:`.trunk_cache`). :func:`top_model` runs the model's own
forward over the last k layers only, from those cached states (``inputs_embeds``): the same
rotary positions, causal and padding mask as the full model. The output head stays frozen: SmolLM2
ties it to the input embeddings, which the trunk reads, so training it would change what was
cached. The model object stays whole (its trunk frozen), so a checkpoint is the full model.
"""

from __future__ import annotations

from typing import Any

import copy

import torch

__all__ = ["small_student", "build_student", "decoder_layers", "top_model", "top_parameters", "freeze_trunk",
           "AnswerLogits"]


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


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The decoder blocks of a causal LM (``model.base_model.layers``: Llama, Qwen2, Mistral, ...).

    Raises
    ------
    DistillError
        The model keeps its blocks elsewhere (GPT-2's ``h``): ``train_last_layers`` cannot split it.
    """
    from .errors import DistillError

    layers = getattr(model.base_model, "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise DistillError(f"{type(model).__name__} keeps no list of decoder layers in .layers: train_last_layers "
                           f"cannot split it; use --train-last-layers 0")
    return layers


def top_model(model: Any, k: int) -> Any:
    """The model's base (decoder) with only its last ``k`` layers, SHARING their weights, its final
    norm and rotary embedding with ``model``: ``top_model(model, k)(inputs_embeds=h, attention_mask=m)``
    runs the model's own forward (positions 0 to L - 1, its causal + padding mask) from the
    hidden states ``h`` (B, L, H) that enter layer ``L - k``. A shallow copy: nothing is allocated."""
    base = model.base_model
    top = copy.copy(base)
    top._modules = dict(base._modules)  # its own registry (the copy's would be base's dict)
    top._modules["layers"] = torch.nn.ModuleList(list(decoder_layers(model))[-k:])
    return top


def top_parameters(model: Any, k: int) -> list[torch.nn.Parameter]:
    """What trains with ``train_last_layers = k``: the last ``k`` decoder layers and whatever else
    the base holds outside its input embeddings and layers (the final norm). Not the output head.

    Raises
    ------
    DistillError
        ``k`` exceeds the model's layers.
    """
    from .errors import DistillError

    layers = decoder_layers(model)
    if not 1 <= k <= len(layers):
        raise DistillError(f"train_last_layers = {k} but the student {type(model).__name__} has {len(layers)} "
                           f"decoder layers: use 1 .. {len(layers)} (0: train all)")
    frozen = {id(p) for p in model.get_input_embeddings().parameters()}
    frozen |= {id(p) for layer in list(layers)[: len(layers) - k] for p in layer.parameters()}
    return [p for p in model.base_model.parameters() if id(p) not in frozen]


def freeze_trunk(model: Any, k: int) -> list[torch.nn.Parameter]:
    """Freeze all of ``model`` but :func:`top_parameters` (``requires_grad``); return those."""
    train = top_parameters(model, k)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in train:
        p.requires_grad_(True)
    return train


class AnswerLogits(torch.nn.Module):
    """The student's logits at the answer positions only (the module Accelerate/DDP wraps).

    ``forward(input_ids (B, L), attention_mask (B, L), positions (R,), hidden=None)`` -> logits
    ``(R, V_s)``, where ``positions`` index the flattened ``(B * L)`` hidden states: the decoder
    runs on the whole batch, the output projection (the costly ``V_s``-wide part) only on the R
    rows that predict answer tokens. Models with final logit soft-capping (Gemma 2/3) are not
    supported.

    With ``train_last_layers = k > 0`` the trunk is frozen (:func:`freeze_trunk`) and a forward
    given ``hidden`` (B, L, H), the cached states entering layer ``L - k``
    (:mod:`.trunk_cache`), runs only the last k layers (:func:`top_model`); without ``hidden``
    (the probe) it runs the whole model.
    """

    def __init__(self, model: Any, train_last_layers: int = 0):
        super().__init__()
        self.model = model
        if getattr(model.config, "final_logit_softcapping", None):
            raise ValueError(f"{type(model).__name__} soft-caps its logits: not supported as a student here")
        self.train_last_layers = train_last_layers
        if train_last_layers:
            freeze_trunk(model, train_last_layers)
            self.top = top_model(model, train_last_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
                hidden: torch.Tensor | None = None) -> torch.Tensor:
        B, L = input_ids.shape
        if hidden is not None and not self.train_last_layers:
            raise ValueError("cached trunk states given to a student that trains every layer (train_last_layers 0)")
        if hidden is None:
            out = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        else:
            out = self.top(inputs_embeds=hidden, attention_mask=attention_mask, use_cache=False)
        rows = out.last_hidden_state.reshape(B * L, -1).index_select(0, positions)  # (R, H)
        return self.model.get_output_embeddings()(rows)  # (R, V_s)
