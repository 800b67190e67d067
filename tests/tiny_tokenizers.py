"""Tiny real tokenizers built in the tests (no download): texts and builders shared by the
alignment and comparison tests."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "The capital of France is Paris.",
    "The cat sat on the mat, and the dog sat on the log.",
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Le café était très bon, naïve façade.",
    "東京は日本の首都です。",
    "I love 🍕 and 🚀!🙂",
] * 3

TEXTS = {
    "english": "The capital of France is Paris. The cat sat on the mat.",
    "accented": "Le café était très bon, naïve façade.",
    "cjk": "東京は日本の首都です。",
    "emoji": "I love 🍕 and 🚀!🙂",
}

SPM_LETTERS = "▁abcdefghijklmnopqrstuvwxyzTIPLF,.!"
SPM_MERGES = (("▁", "t"), ("h", "e"), ("▁t", "he"), ("▁", "c"), ("a", "t"), ("▁c", "at"), ("▁", "a"))


def byte_bpe(vocab_size: int) -> PreTrainedTokenizerFast:
    """GPT-2 style byte-level BPE trained on CORPUS, no BOS (like Qwen / SmolLM2)."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tk.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>")


def sentencepiece_like(letters: str = SPM_LETTERS, merges=SPM_MERGES) -> PreTrainedTokenizerFast:
    """BPE with '▁', a dummy prefix, byte fallback and a BOS added by default (like Gemma/Llama)."""
    vocab = {"<unk>": 0, "<bos>": 1}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in letters:
        vocab.setdefault(c, len(vocab))
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token="<unk>", byte_fallback=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tk.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", unk_token="<unk>")
