"""ULD Explorer: KL vs exact optimal transport vs the ULD closed form, teacher first, student second.

The public API is the table below, one block: each name is imported from its module on first
use (PEP 562), so ``import uld_explorer`` and the command line's ``--help`` stay fast and torch,
POT and transformers load only when a function needs them.

>>> import uld_explorer as ux
>>> p, q = ux.synthetic_pair(6, 6, permute_student=True, seed=0)
>>> round(float(ux.uld_distance(p, q)), 12), bool(ux.kl_divergence(p, q) > 0.1)
(0.0, True)
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

#: module -> the names it exports here (``"alias=name"`` exports ``name`` as ``alias``).
_API: dict[str, tuple[str, ...]] = {
    ".distributions": (
        "SUM_TOLERANCE", "TopK", "as_float64", "check_distribution", "check_pair", "softmax",
        "sorted_probs", "sum_tolerance", "top_k_with_rest",
    ),
    ".synthetic": ("PlaygroundConfig", "synthetic_pair", "synthetic_tokens"),
    ".divergences": (
        "HybridTopK", "HybridULD", "MinEDKL", "SharedVocab", "VocabularyMismatchError", "hybrid_top_k", "hybrid_uld",
        "mined_kl",
        "js_divergence",
        "kl_divergence", "restrict_to_shared_vocab", "reverse_kl_divergence",
        "total_variation", "uld_distance", "uld_from_logits", "ULDTopK", "uld_top_k",
        "uld_top_k_from_logits",
    ),
    ".hybrid": ("HYBRID_DIVERGENCES", "HYBRID_WEIGHTINGS", "HybridConfig"),
    ".costs": ("COSTS", "edit_distance_cost", "string_identity_cost"),
    ".ot": (
        "MAX_SUPPORT", "OTNotConvergedError", "OTResult", "SinkhornResult", "TokenOTResult", "entropic_ot", "exact_ot",
        "rank_space_ot", "token_space_sinkhorn_top_k",
        "token_space_ot", "token_space_ot_top_k", "value_space_ot", "value_space_w1", "zero_one_group_ot",
        "zero_one_group_value",
    ),
    ".summary": ("DivergenceSummary", "divergence_summary"),
    ".zoo": (
        "DEFAULT_STUDENT", "DEFAULT_TEACHER", "MODELS", "LoadedModel", "ModelSpec", "RemoteCodeRefusedError",
        "UnknownModelError", "ZooEntry", "ZooError", "list_models", "model_cache_dir=cache_dir",
        "fetch_model=fetch", "load_model=load",
        "TOKENIZERS", "TokenizerEntry", "TokenizerSpec", "fetch_tokenizers", "list_tokenizers", "load_tokenizer",
    ),
    ".text": (
        "ALIGNMENTS", "MERGES", "AlignedPair", "StringMatch", "Tokenized", "TokenizationReport", "VocabOverlap",
        "byte_offset_alignment", "covered_mass", "group_distributions", "merge_group", "misalignment_rate",
        "match_strings", "normalize_token", "positional_alignment", "tokenization_report",
        "tokenize_with_offsets", "vocab_bytes", "vocab_overlap", "vocab_strings",
    ),
    ".compare": (
        "ComparisonConfig", "ComparisonTable", "PositionRow", "compare_distributions", "compare_text",
        "next_token_distributions", "read_row",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _API, globals())
