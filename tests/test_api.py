"""The public API: every name the lazy package tables promise resolves, and importing the
package loads nothing heavy until a name needs it."""

import importlib
import subprocess
import sys

import pytest

import uld_explorer


@pytest.mark.parametrize("package", ["uld_explorer", "uld_explorer.compare", "uld_explorer.zoo", "uld_explorer.text"])
def test_every_exported_name_resolves(package):
    mod = importlib.import_module(package)
    assert mod.__all__, package
    missing = [name for name in mod.__all__ if getattr(mod, name, None) is None]
    assert not missing, missing
    assert set(mod.__all__) <= set(dir(mod))


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_function'"):
        uld_explorer.no_such_function  # noqa: B018


def test_the_api_keeps_its_names():
    """The names of the API before the package was split (issue 6 kept them all)."""
    before = {
        "MAX_SUPPORT", "OTNotConvergedError", "OTResult", "SUM_TOLERANCE", "SharedVocab", "TokenOTResult", "TopK",
        "VocabularyMismatchError", "check_distribution", "check_pair", "edit_distance_cost", "exact_ot",
        "js_divergence", "kl_divergence", "rank_space_ot", "restrict_to_shared_vocab", "reverse_kl_divergence",
        "softmax", "sorted_probs", "string_identity_cost", "sum_tolerance", "synthetic_pair", "token_space_ot",
        "token_space_ot_top_k", "top_k_with_rest", "total_variation", "uld_distance", "uld_from_logits",
        "value_space_ot", "value_space_w1", "zero_one_group_ot", "zero_one_group_value", "DivergenceSummary", "divergence_summary",
        "synthetic_tokens", "DEFAULT_STUDENT", "DEFAULT_TEACHER", "MODELS", "LoadedModel", "ModelSpec",
        "RemoteCodeRefusedError", "UnknownModelError", "ZooEntry", "ZooError", "fetch_model", "list_models",
        "load_model", "model_cache_dir", "AlignedPair", "Tokenized", "TokenizationReport", "VocabOverlap",
        "byte_offset_alignment", "covered_mass", "group_distributions", "merge_group", "misalignment_rate",
        "normalize_token", "positional_alignment", "tokenization_report", "tokenize_with_offsets",
        "vocab_overlap", "vocab_strings", "ComparisonTable", "PositionRow", "compare_distributions",
        "compare_text", "next_token_distributions",
    }
    assert before <= set(uld_explorer.__all__), before - set(uld_explorer.__all__)


def test_import_is_lazy():
    code = "import sys, uld_explorer; print(sorted(m for m in ('torch', 'ot', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
