"""ULD Explorer: KL vs exact optimal transport vs the ULD closed form, teacher first, student second.

>>> import uld_explorer as ux
>>> p, q = ux.synthetic_pair(6, 6, permute_student=True, seed=0)
>>> round(float(ux.uld_distance(p, q)), 12), bool(ux.kl_divergence(p, q) > 0.1)
(0.0, True)
"""

from .distributions import (
    SUM_TOLERANCE,
    TopK,
    check_distribution,
    check_pair,
    softmax,
    sorted_probs,
    sum_tolerance,
    synthetic_pair,
    top_k_with_rest,
)
from .divergences import (
    SharedVocab,
    VocabularyMismatchError,
    js_divergence,
    kl_divergence,
    restrict_to_shared_vocab,
    reverse_kl_divergence,
    total_variation,
    uld_distance,
    uld_from_logits,
)
from .ot import (
    MAX_SUPPORT,
    OTNotConvergedError,
    OTResult,
    TokenOTResult,
    edit_distance_cost,
    exact_ot,
    rank_space_ot,
    string_identity_cost,
    token_space_ot,
    token_space_ot_top_k,
    value_space_ot,
    value_space_w1,
    zero_one_group_ot,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_SUPPORT",
    "OTNotConvergedError",
    "OTResult",
    "SUM_TOLERANCE",
    "SharedVocab",
    "TokenOTResult",
    "TopK",
    "VocabularyMismatchError",
    "check_distribution",
    "check_pair",
    "edit_distance_cost",
    "exact_ot",
    "js_divergence",
    "kl_divergence",
    "rank_space_ot",
    "restrict_to_shared_vocab",
    "reverse_kl_divergence",
    "softmax",
    "sorted_probs",
    "string_identity_cost",
    "sum_tolerance",
    "synthetic_pair",
    "token_space_ot",
    "token_space_ot_top_k",
    "top_k_with_rest",
    "total_variation",
    "uld_distance",
    "uld_from_logits",
    "value_space_ot",
    "value_space_w1",
    "zero_one_group_ot",
]

from .summary import DivergenceSummary, divergence_summary, synthetic_tokens  # noqa: E402

__all__ += ["DivergenceSummary", "divergence_summary", "synthetic_tokens"]

from .zoo import (  # noqa: E402
    DEFAULT_STUDENT,
    DEFAULT_TEACHER,
    MODELS,
    LoadedModel,
    ModelSpec,
    RemoteCodeRefusedError,
    UnknownModelError,
    ZooEntry,
    ZooError,
    list_models,
)
from .zoo import cache_dir as model_cache_dir  # noqa: E402
from .zoo import fetch as fetch_model  # noqa: E402
from .zoo import load as load_model  # noqa: E402

__all__ += [
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "MODELS",
    "LoadedModel",
    "ModelSpec",
    "RemoteCodeRefusedError",
    "UnknownModelError",
    "ZooEntry",
    "ZooError",
    "fetch_model",
    "list_models",
    "load_model",
    "model_cache_dir",
]

from .text import (  # noqa: E402
    AlignedPair,
    Tokenized,
    TokenizationReport,
    VocabOverlap,
    byte_offset_alignment,
    covered_mass,
    group_distributions,
    merge_group,
    misalignment_rate,
    normalize_token,
    positional_alignment,
    tokenization_report,
    tokenize_with_offsets,
    vocab_overlap,
    vocab_strings,
)

__all__ += [
    "AlignedPair",
    "Tokenized",
    "TokenizationReport",
    "VocabOverlap",
    "byte_offset_alignment",
    "covered_mass",
    "group_distributions",
    "merge_group",
    "misalignment_rate",
    "normalize_token",
    "positional_alignment",
    "tokenization_report",
    "tokenize_with_offsets",
    "vocab_overlap",
    "vocab_strings",
]

from .compare import (  # noqa: E402
    ComparisonTable,
    PositionRow,
    compare_distributions,
    compare_text,
    next_token_distributions,
)

__all__ += ["ComparisonTable", "PositionRow", "compare_distributions", "compare_text", "next_token_distributions"]
