"""Two tiny random-weight causal LMs with DIFFERENT real tokenizers, built in the tests (no
download): a byte-level BPE Llama teacher without BOS whose logits are wider than its tokenizer
(padded embedding rows, as in real models) and a SentencePiece-style GPT-2 student with BOS and
byte fallback. Their output heads are scaled so that their distributions are peaked."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_tokenizers import SPM_LETTERS, SPM_MERGES, byte_bpe, sentencepiece_like
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from uld_explorer import zoo


def _sharpen(model: torch.nn.Module, scale: float) -> None:
    """Random init gives near-uniform outputs; scale the LM head for peaked distributions."""
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(scale)


def tiny_teacher() -> zoo.LoadedModel:
    tok = byte_bpe(400)
    torch.manual_seed(0)
    V_t = len(tok) + 16  # padded embedding rows, as in real models (151,936 logits > tokenizer)
    cfg = LlamaConfig(
        vocab_size=V_t, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    _sharpen(model, 60.0)
    return zoo.LoadedModel("tiny-llama-bpe", tok, model)


def tiny_student_parts():
    """(tokenizer, model) of the student: '▁' + byte fallback + a BOS added by default (like Llama
    / Gemma), a few more merges."""
    extra = (("▁", "s"), ("▁s", "at"), ("o", "n"), ("▁", "o"), ("▁o", "n"))
    tok = sentencepiece_like(letters=SPM_LETTERS + "H", merges=SPM_MERGES + extra)
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128, bos_token_id=1, eos_token_id=None)
    model = GPT2LMHeadModel(cfg).eval()
    _sharpen(model, 30.0)
    return tok, model


def save_folder(root: Path, name: str, tokenizer, model) -> str:
    """A local model folder (safetensors + tokenizer), as a user would point the tool at."""
    d = Path(root) / name
    model.save_pretrained(d, safe_serialization=True)
    tokenizer.save_pretrained(d)
    return str(d)
