"""Text -> per-position comparison table (uld_explorer.compare) and `uld-explorer compare`.

Fast tests: two tiny random-weight causal LMs with DIFFERENT tokenizers built here (a byte-level
BPE Llama teacher without BOS, a SentencePiece-style GPT-2 student with BOS and byte fallback);
every number in the table is checked against an independent oracle (a manual forward pass,
uld_distance, ot.wasserstein_1d, restrict_to_shared_vocab + kl_divergence,
token_space_ot_top_k). Slow tests: the real default pair of the zoo (Qwen teacher, SmolLM2
student), each model loaded once per session.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import ot
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tiny_models import save_folder, tiny_student_parts, tiny_teacher
from tiny_tokenizers import TEXTS

from uld_explorer import (
    ComparisonConfig,
    HybridConfig,
    hybrid_uld,
    kl_divergence,
    match_strings,
    restrict_to_shared_vocab,
    token_space_ot_top_k,
    uld_distance,
    zoo,
)
from uld_explorer.cli import main
from uld_explorer.compare import (
    NEXT_TOKEN_LABEL,
    ComparisonTable,
    PositionRow,
    compare_distributions,
    compare_text,
    next_token_distributions,
)
from uld_explorer.text import base_token, merge_group, vocab_strings

TEXT = "The cat sat on the mat, and the dog sat on the log. Le café était très bon 🍕!"


# --------------------------------------------------------------------------------------------
# two tiny models with different tokenizers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher():
    return tiny_teacher()


@pytest.fixture(scope="module")
def student():
    tok, model = tiny_student_parts()

    class Bare:  # not a LoadedModel: anything with .tokenizer and .model is accepted
        pass

    bare = Bare()
    bare.tokenizer, bare.model, bare.name = tok, model, "tiny-gpt2-spm"
    return bare


@pytest.fixture(scope="module")
def dists(teacher, student):
    return next_token_distributions(teacher, TEXT), next_token_distributions(student, TEXT)


@pytest.fixture(scope="module", params=["positional", "byte-offset"])
def table(request, teacher, student):
    return compare_text(teacher, student, TEXT, alignment=request.param, top_k=50, edit_top_k=20)


def _unique_strings(strings: list[str], tag: str) -> list[str]:
    """'' marks ids with no text: never a shared string (as vocab_overlap); make them unique."""
    return [s if s else f"\x00{tag}{i}" for i, s in enumerate(strings)]


def _merged(dist, tok, tokens, merge="observed"):
    v, _ = merge_group(dist, tok.ids, tokens, merge)
    return np.asarray(v, dtype=np.float64)


def _token_rows(table):
    """The rows that predict text tokens (all but the next-token row)."""
    return [r for r in table if r.kind == "token"]


def _vectors(r, dists, merge="observed"):
    """(merged teacher, merged student, base teacher, base student) of a row, float64, by hand."""
    (t_tok, t_dist), (s_tok, s_dist) = dists
    if r.kind == "next":
        p, q = t_dist[len(t_tok)].astype(np.float64), s_dist[len(s_tok)].astype(np.float64)
        return p, q, p, q
    p, q = _merged(t_dist, t_tok, r.teacher_tokens, merge), _merged(s_dist, s_tok, r.student_tokens, merge)
    bt = t_dist[base_token(r.teacher_tokens, merge)].astype(np.float64)
    bs = s_dist[base_token(r.student_tokens, merge)].astype(np.float64)
    return p, q, bt, bs


# --------------------------------------------------------------------------------------------
# next_token_distributions
# --------------------------------------------------------------------------------------------


def test_tiny_models_really_differ(teacher, student, dists):
    (t_tok, _), (s_tok, _) = dists
    assert t_tok.bos_id is None and t_tok.first_predicted == 1
    assert s_tok.bos_id == 1 and s_tok.first_predicted == 0
    assert t_tok.ids != s_tok.ids and len(t_tok) != len(s_tok)


def test_distributions_shape_dtype_and_rows_sum_to_one(teacher, student, dists):
    for lm, (tok, dist) in zip((teacher, student), dists):
        V = lm.model.get_output_embeddings().weight.shape[0]
        assert dist.shape == (len(tok) + 1, V) and dist.dtype == np.float32  # + the row after the text
        rows = dist[tok.first_predicted :]
        assert np.isfinite(rows).all() and (rows >= 0).all()
        np.testing.assert_allclose(rows.astype(np.float64).sum(-1), 1.0, atol=1e-5)
        if tok.first_predicted == 1:  # nothing predicts the first token without BOS: NaN, never read
            assert np.isnan(dist[0]).all()


def _manual_logits(lm, ids) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([list(ids)])).logits[0].double()  # (L, V)


def test_row_j_predicts_token_j_against_a_manual_forward(teacher, student, dists):
    for lm, (tok, dist) in zip((teacher, student), dists):
        inputs = ([tok.bos_id] if tok.bos_id is not None else []) + list(tok.ids)
        logits = _manual_logits(lm, inputs)
        shift = 0 if tok.bos_id is not None else 1  # logits at input position k predict token k+shift
        for j in range(tok.first_predicted, len(tok)):
            expected = torch.softmax(logits[j - shift], -1).numpy()
            np.testing.assert_allclose(dist[j], expected, atol=1e-6)
        # the last row: the logits after the whole input, the prediction of what follows the text
        np.testing.assert_allclose(dist[len(tok)], torch.softmax(logits[-1], -1).numpy(), atol=1e-6)


@pytest.mark.parametrize("chunk_tokens", [1, 5, 17])
def test_forward_in_steps_over_the_cache_equals_one_pass(teacher, student, chunk_tokens):
    """The input run in steps of chunk_tokens over the key/value cache (bounded logits memory)
    gives the distributions of one full pass, prompt included."""
    for lm in (teacher, student):
        tok, whole = next_token_distributions(lm, TEXT, prompt="The cat.", chunk_tokens=4096)
        _, steps = next_token_distributions(lm, TEXT, prompt="The cat.", chunk_tokens=chunk_tokens)
        np.testing.assert_allclose(steps, whole, atol=2e-6)
    with pytest.raises(ValueError, match="chunk_tokens must be a positive integer"):
        next_token_distributions(teacher, TEXT, chunk_tokens=0)


def test_nan_logits_name_the_model_and_the_fix(teacher):
    """Damaged weights (a NaN in the LM head) are reported as such, not as a bad distribution."""
    import copy

    broken = copy.deepcopy(teacher)
    with torch.no_grad():
        broken.model.get_output_embeddings().weight[5, 3] = float("nan")
    with pytest.raises(ValueError, match=r"tiny-llama-bpe produced NaN or infinite logits .*models verify"):
        next_token_distributions(broken, TEXT)


def test_prompt_conditions_every_row_and_scores_the_first_text_token(teacher, student):
    """prompt + text in ONE forward pass: row j = softmax of the logits just before text token j,
    row 0 included (predicted from the prompt's last token), against a manual forward."""
    prompt, text = "The cat sat on the mat.", " Le café était très bon!"
    for lm in (teacher, student):
        plain, _ = next_token_distributions(lm, text)
        tok, dist = next_token_distributions(lm, text, prompt=prompt)
        assert tok.prompt == prompt and tok.ids == plain.ids  # the text's tokens do not depend on the prompt
        assert tok.prompt_ids == tuple(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert tok.first_predicted == 0 and not np.isnan(dist).any()
        context = ([tok.bos_id] if tok.bos_id is not None else []) + list(tok.prompt_ids)
        logits = _manual_logits(lm, context + list(tok.ids))
        c = len(context)
        for j in range(len(tok) + 1):
            np.testing.assert_allclose(dist[j], torch.softmax(logits[c + j - 1], -1).numpy(), atol=1e-6)


def test_compare_with_a_prompt_scores_only_the_text_first_token_included(teacher, student):
    prompt, text = "The cat sat on the mat.", " The dog sat on the log."
    table = compare_text(teacher, student, text, prompt=prompt, top_k=20, edit_top_k=5)
    first = table.rows[0]
    assert first.teacher_tokens == (0,) and first.student_tokens == (0,)  # the text's first token
    assert table.prompt == prompt and all(r.byte_span[1] <= len(text.encode()) for r in table)
    (t_tok, t_dist) = next_token_distributions(teacher, text, prompt=prompt)
    assert first.teacher_prob == pytest.approx(float(t_dist[0, t_tok.ids[0]]), rel=1e-6)
    without = compare_text(teacher, student, text, top_k=20, edit_top_k=5)
    assert without.rows[0].teacher_tokens[0] == 1  # the teacher has no BOS: token 0 unscored
    assert any("nothing predicts the text's first token" in n for n in without.notes)
    assert not any("nothing predicts" in n for n in table.notes)


def test_temperature_is_softmax_of_scaled_logits(teacher):
    tok, d1 = next_token_distributions(teacher, TEXT)
    _, d2 = next_token_distributions(teacher, TEXT, temperature=2.0)
    logits = _manual_logits(teacher, tok.ids)
    np.testing.assert_allclose(d2[1:], torch.softmax(logits / 2.0, -1).numpy(), atol=1e-6)
    assert not np.allclose(d1[1:], d2[1:], atol=1e-3)
    # higher temperature -> flatter: the top probability goes down
    assert (d2[1:].max(-1) <= d1[1:].max(-1) + 1e-7).all()


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "hot", None, True])
def test_bad_temperature_is_a_clear_error(teacher, bad):
    with pytest.raises(ValueError, match="temperature must be"):
        next_token_distributions(teacher, TEXT, temperature=bad)


def test_bad_temperature_in_compare_names_the_side(teacher, student):
    with pytest.raises(ValueError, match="student_temperature must be a finite number > 0"):
        compare_text(teacher, student, TEXT, student_temperature=0)
    with pytest.raises(ValueError, match="teacher_temperature"):
        compare_text(teacher, student, TEXT, teacher_temperature=-2)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_or_whitespace_text_is_rejected(teacher, student, text):
    with pytest.raises(ValueError, match="empty or whitespace-only"):
        next_token_distributions(teacher, text)
    with pytest.raises(ValueError, match="empty or whitespace-only"):
        compare_text(teacher, student, text)


def test_text_longer_than_the_context_is_truncated_with_a_warning(teacher, student):
    long_text = " ".join(["The cat sat on the mat."] * 40)
    with pytest.warns(UserWarning, match=r"tokens for tiny-llama-bpe; cut"):  # the model, by name
        tok, dist = next_token_distributions(teacher, long_text)
    assert 0 < len(tok) <= teacher.model.config.max_position_embeddings == 64
    assert long_text.startswith(tok.text) and dist.shape[0] == len(tok) + 1
    with pytest.warns(UserWarning, match="cut"):
        table = compare_text(teacher, student, long_text, alignment="byte-offset", top_k=20, edit_top_k=10)
    assert len(table) > 0 and table.rows[-1].byte_span[1] <= len(tok.text.encode())
    # the two sides were cut at different points: the next-token row would not align, so none
    assert table.next_row is None and any("no next-token row" in n for n in table.notes)


def test_default_token_cap_and_its_note(teacher, student):
    from uld_explorer.compare.config import DEFAULT_MAX_TOKENS

    assert ComparisonConfig().max_tokens == DEFAULT_MAX_TOKENS == 1024
    with pytest.warns(UserWarning, match="cut"):
        table = compare_text(teacher, student, TEXT, max_tokens=10, top_k=10, edit_top_k=5)
    assert len(table.teacher) <= 10 and len(table.student) <= 10
    note = table.notes[0]
    assert note.startswith("the text was cut to fit max_tokens=10") and "raise max_tokens (--max-tokens)" in note
    assert f"of {len(TEXT)} characters" in note
    full = compare_text(teacher, student, TEXT, top_k=10, edit_top_k=5)  # fits: no note
    assert not any("was cut" in n for n in full.notes)


def test_a_comparison_that_cannot_fit_is_refused_before_the_forward(teacher, student):
    from uld_explorer.compare.cost import check_memory, memory_needed

    cfg = ComparisonConfig()
    V_t, V_s = teacher.model.get_output_embeddings().weight.shape[0], len(student.tokenizer)
    n_t = len(teacher.tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    n_s = len(student.tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    needed = memory_needed(n_t, n_s, V_t, V_s, cfg.chunk_rows)
    check_memory(teacher, student, TEXT, cfg, available=int(needed / 0.8) + 1)  # just fits: no error
    with pytest.raises(ValueError, match=r"needs about .* GiB .* is available: lower max_tokens \(--max-tokens\) to about"):
        check_memory(teacher, student, TEXT, cfg, available=int(needed / 0.8) - 1)
    # the estimate is an upper bound of what a table really holds: (T + 1) x V float32 per side at least
    assert needed >= 4 * ((n_t + 1) * V_t + (n_s + 1) * V_s)


def test_max_tokens_and_other_bad_arguments(teacher, student):
    with pytest.warns(UserWarning, match="cut"):
        tok, _ = next_token_distributions(teacher, TEXT, max_tokens=5)
    assert len(tok) <= 5
    with pytest.raises(ValueError, match="max_tokens"):
        next_token_distributions(teacher, TEXT, max_tokens=0)
    with pytest.raises(ValueError, match="alignment must be one of"):
        compare_text(teacher, student, TEXT, alignment="diagonal")
    with pytest.raises(ValueError, match="merge must be one of observed, bayesian"):
        compare_text(teacher, student, TEXT, merge="average")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        compare_text(teacher, student, TEXT, top_k=0)
    with pytest.raises(ValueError, match="costs must be a subset"):
        compare_text(teacher, student, TEXT, costs=("string", "cosine"))
    with pytest.raises(TypeError, match="unknown comparison setting.*top_kk"):
        compare_text(teacher, student, TEXT, top_kk=3)
    with pytest.raises(TypeError, match="tokenizer and .model"):
        compare_text(object(), student, TEXT)


def test_config_object_and_keyword_settings_agree(teacher, student, dists):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    cfg = ComparisonConfig(alignment="byte-offset", merge="bayesian", top_k=30, edit_top_k=10,
                           hybrid=HybridConfig(beta=0.2))
    a = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg)
    b = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment="byte-offset",
                              merge="bayesian", top_k=30, edit_top_k=10, hybrid=HybridConfig(beta=0.2))
    assert a.config == b.config == cfg and a.rows == b.rows
    c = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg, merge="observed")
    assert c.config.merge == "observed" and c.config.top_k == 30


# --------------------------------------------------------------------------------------------
# the table against independent oracles
# --------------------------------------------------------------------------------------------


def test_table_shape_and_labels(table, dists):
    (t_tok, _), (s_tok, _) = dists
    assert isinstance(table, ComparisonTable) and len(table) > 5
    assert all(isinstance(r, PositionRow) for r in table)
    assert [r.index for r in table] == list(range(len(table)))
    assert table.teacher_name == "tiny-llama-bpe" and table.student_name == "tiny-gpt2-spm"
    tb = TEXT.encode()
    rows = _token_rows(table)
    assert len(rows) == len(table) - 1 and table.rows[-1] is table.next_row  # the next-token row is last
    for r in rows:
        a, b = r.byte_span
        assert r.label == tb[a:b].decode("utf-8", "backslashreplace")
        assert r.teacher_ids == tuple(t_tok.ids[j] for j in r.teacher_tokens)
        assert r.student_ids == tuple(s_tok.ids[j] for j in r.student_tokens)
        assert min(r.teacher_tokens) >= t_tok.first_predicted and min(r.student_tokens) >= s_tok.first_predicted
    if table.alignment == "byte-offset":
        assert all(r.same_span for r in rows)
        # the groups tile the text from the first common start to the end, multibyte included
        assert "".join(r.label for r in rows) == TEXT[len(TEXT) - len("".join(r.label for r in rows)):]
        assert b"".join(tb[slice(*r.byte_span)] for r in rows) == tb[rows[0].byte_span[0]:]
        assert any(len(r.teacher_tokens) > 1 or len(r.student_tokens) > 1 for r in rows)  # real merges
    else:
        assert all(len(r.teacher_tokens) == len(r.student_tokens) == 1 for r in rows)
        assert not all(r.same_span for r in rows)  # different tokenizers drift apart
    nxt = table.next_row
    assert nxt.kind == "next" and nxt.label == NEXT_TOKEN_LABEL and nxt.byte_span == (len(tb), len(tb))
    assert nxt.teacher_tokens == nxt.student_tokens == nxt.teacher_ids == nxt.teacher_strings == ()
    assert nxt.teacher_prob is None and nxt.student_prob is None and nxt.same_span
    assert nxt.teacher_mass == nxt.student_mass == 1.0 and nxt.notes


def test_table_uld_equals_uld_distance_and_value_ot_equals_uld(table, dists):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    n = max(t_dist.shape[1], s_dist.shape[1])
    for r in table:
        p, q, _, _ = _vectors(r, dists, table.merge)
        assert r.uld == pytest.approx(float(uld_distance(p, q, subprobability=True)), abs=1e-6)
        assert r.uld_half == r.uld / 2
        assert r.value_ot == pytest.approx(r.uld, abs=1e-6)
        # the oracle: POT's 1-D W1 on the zero-padded vectors, uniform weights
        w1 = ot.wasserstein_1d(np.pad(p, (0, n - p.size)), np.pad(q, (0, n - q.size)), p=1) * n
        assert r.value_ot == pytest.approx(float(w1), abs=1e-6)
        assert r.teacher_mass == pytest.approx(p.sum(), abs=1e-5) and r.student_mass == pytest.approx(q.sum(), abs=1e-5)
        if r.kind == "next":
            continue
        # own actual token(s): the chain rule product, the product of the group's own probabilities
        own_t = np.prod([t_dist[j, t_tok.ids[j]] for j in r.teacher_tokens], dtype=np.float64)
        own_s = np.prod([s_dist[j, s_tok.ids[j]] for j in r.student_tokens], dtype=np.float64)
        assert r.teacher_prob == pytest.approx(own_t, rel=1e-5) and r.student_prob == pytest.approx(own_s, rel=1e-5)
        assert 0 <= r.teacher_prob <= r.teacher_mass + 1e-6


def test_table_kl_on_shared_strings_matches_the_library(table, dists, teacher, student):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    ts = _unique_strings(vocab_strings(teacher.tokenizer, t_dist.shape[1]), "t")
    ss = _unique_strings(vocab_strings(student.tokenizer, s_dist.shape[1]), "s")
    for r in table:
        _, _, p, q = _vectors(r, dists, table.merge)  # the base distributions: the renormalized merges
        sv = restrict_to_shared_vocab(p / p.sum(), q / q.sum(), ts, ss)
        assert 0 <= r.kl_teacher_coverage <= 1 and 0 <= r.kl_student_coverage <= 1
        assert r.kl_teacher_coverage == pytest.approx(float(sv.teacher_mass), abs=1e-6)
        assert r.kl_student_coverage == pytest.approx(float(sv.student_mass), abs=1e-6)
        assert r.kl_shared == pytest.approx(float(kl_divergence(sv.p, sv.q)), rel=1e-6, abs=1e-9)
    assert table.shared_strings == len(set(ts) & set(ss))


def test_table_hybrid_matches_the_library_on_the_merged_vectors(table, dists, teacher, student):
    (_, t_dist), (_, s_dist) = dists
    m = match_strings(vocab_strings(teacher.tokenizer, t_dist.shape[1]), vocab_strings(student.tokenizer, s_dist.shape[1]))
    assert table.hybrid_weights == pytest.approx((m.teacher_matched.size / t_dist.shape[1],
                                                  1 - m.teacher_matched.size / t_dist.shape[1]))
    for r in table:
        p, q, _, _ = _vectors(r, dists, table.merge)
        ref = hybrid_uld(p, q, match=m, subprobability=True)
        assert r.hybrid == pytest.approx(float(ref.value), abs=1e-6)
        assert r.hybrid_matched == pytest.approx(float(ref.matched), abs=1e-6)
        assert r.hybrid_unmatched == pytest.approx(float(ref.unmatched), abs=1e-6)
        assert r.hybrid_matched >= -1e-9 and r.hybrid_unmatched >= 0  # the JSD part is >= 0


def test_table_token_space_ot_matches_token_space_ot_top_k(table, dists, teacher, student):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    ts = vocab_strings(teacher.tokenizer, t_dist.shape[1])
    ss = vocab_strings(student.tokenizer, s_dist.shape[1])
    for r in table.rows[:: max(1, len(table) // 6)] + (table.rows[-1],):
        _, _, p, q = _vectors(r, dists, table.merge)
        for cost, k, val, t_cut, s_cut in (
            ("string", table.top_k, r.token_ot_string, r.string_teacher_truncated, r.string_student_truncated),
            ("edit", table.edit_top_k, r.token_ot_edit, r.edit_teacher_truncated, r.edit_student_truncated),
        ):
            ref = token_space_ot_top_k(p, q, ts, ss, k=k, cost=cost, solver="pot")
            assert val == pytest.approx(ref.value, abs=1e-7)
            assert t_cut == pytest.approx(ref.teacher_truncated_mass, abs=1e-7)
            assert s_cut == pytest.approx(ref.student_truncated_mass, abs=1e-7)
            assert 0 <= val <= 1 + 1e-9
        # top-1 strings and probabilities
        assert r.teacher_top1 == ts[int(np.argmax(p))] and r.student_top1 == ss[int(np.argmax(q))]
        assert r.teacher_top1_prob == pytest.approx(float(p.max())) and r.student_top1_prob == pytest.approx(float(q.max()))


def test_bayesian_merge_rows_use_the_last_token(teacher, student, dists):
    """merge="bayesian": ULD on dist[last] * p(actual earlier tokens); KL / top-1 / token OT on
    dist[last]; the own-token probability is the same sequence probability as "observed"."""
    (t_tok, t_dist), (s_tok, s_dist) = dists
    obs = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment="byte-offset",
                                top_k=30, edit_top_k=5)
    bay = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment="byte-offset",
                                merge="bayesian", top_k=30, edit_top_k=5)
    assert [r.byte_span for r in obs] == [r.byte_span for r in bay]
    multi = [i for i, r in enumerate(obs) if len(r.teacher_tokens) > 1 or len(r.student_tokens) > 1]
    assert multi
    for i in multi:
        ro, rb = obs[i], bay[i]
        p, q, bt, bs = _vectors(rb, dists, "bayesian")
        assert rb.uld == pytest.approx(float(uld_distance(p, q, subprobability=True)), abs=1e-6)
        assert rb.teacher_top1_prob == pytest.approx(float(bt.max())) and rb.student_top1_prob == pytest.approx(float(bs.max()))
        assert rb.teacher_prob == pytest.approx(ro.teacher_prob, rel=1e-5)  # both: the sequence probability
        assert any("merged group (bayesian)" in n and "last token" in n for n in rb.notes)
        assert any("merged group (observed)" in n and "first token" in n for n in ro.notes)
        # the masses restated: bayesian scales by the EARLIER tokens, observed by the LATER ones
        for tokens, tok, dist, mo, mb in ((ro.teacher_tokens, t_tok, t_dist, ro.teacher_mass, rb.teacher_mass),
                                          (ro.student_tokens, s_tok, s_dist, ro.student_mass, rb.student_mass)):
            own = [float(dist[j, tok.ids[j]]) for j in tokens]
            assert mo == pytest.approx(np.prod(own[1:]), rel=1e-6) and mb == pytest.approx(np.prod(own[:-1]), rel=1e-6)
    # the merges really differ (these tiny models are peaked: ULD itself moves little)
    assert any(not np.allclose(_vectors(obs[i], dists, "observed")[1], _vectors(bay[i], dists, "bayesian")[1])
               or not np.allclose(_vectors(obs[i], dists, "observed")[0], _vectors(bay[i], dists, "bayesian")[0])
               for i in multi)


def test_token_ot_below_uld_half_says_why(teacher, student, dists):
    """ULD/2 <= token OT (0/1 cost) fails only through truncation (or pooled strings): at top-1
    the rest buckets carry almost everything and move to each other for free; the row says so."""
    (t_tok, t_dist), (s_tok, s_dist) = dists
    t_flat, s_flat = t_dist.copy(), s_dist.copy()
    j_t, j_s = t_tok.first_predicted + 1, s_tok.first_predicted + 1  # positional row 1
    t_flat[j_t] = 1.0 / t_dist.shape[1]  # teacher: uniform over its whole vocabulary
    s_flat[j_s] = 0.0
    s_flat[j_s, :20] = 1.0 / 20  # student: uniform over 20 tokens
    t = compare_distributions(teacher, student, t_tok, t_flat, s_tok, s_flat, top_k=1, costs=("string",))
    r = t.rows[1]
    # top-1 + rest: OT = 1 - min(rest_t, rest_s) (at most), ULD/2 = TV of the sorted vectors ~ 0.95
    assert r.token_ot_string <= 1 - min(1 - 1 / t_dist.shape[1], 1 - 1 / 20) + 1e-6
    assert r.uld_half == pytest.approx(1 - 20 / t_dist.shape[1], abs=1e-5)
    assert any("< ULD/2" in n and "rest buckets" in n for n in r.notes), r.notes
    full = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, top_k=4999, costs=("string",))
    for r in full:  # no truncation, and these vocabularies repeat no string: the bound holds
        assert r.string_teacher_truncated == 0 and r.string_student_truncated == 0
        assert r.token_ot_string >= r.uld_half - 1e-6
        assert not any("< ULD/2" in n for n in r.notes)


def test_no_shared_mass_makes_kl_nan_with_its_reason_and_the_table_stands(teacher, student, dists):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    ss = vocab_strings(student.tokenizer, s_dist.shape[1])
    ts = set(vocab_strings(teacher.tokenizer, t_dist.shape[1]))
    only_student = next(i for i, x in enumerate(ss) if x and x not in ts)
    s_bad = s_dist.copy()
    j = s_tok.first_predicted + 2
    s_bad[j] = 0.0
    s_bad[j, only_student] = 1.0  # all of the student's mass on a string the teacher lacks
    table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_bad, top_k=20, edit_top_k=5)
    bad = [r for r in table if j in r.student_tokens]
    assert len(bad) == 1 and math.isnan(bad[0].kl_shared) and bad[0].kl_student_coverage == 0.0
    assert any("kl_shared undefined: the student puts no mass" in n for n in bad[0].notes)
    others = [r for r in table if r is not bad[0]]
    assert others and all(math.isfinite(r.kl_shared) for r in others)
    assert all(math.isfinite(r.uld) and math.isfinite(r.hybrid) for r in table)
    rec = table.to_records()[bad[0].index]
    assert rec["kl_shared"] is None and rec["notes"]
    json.dumps(table.as_dict(), allow_nan=False)


CHUNK_ROWS = 7  # a small chunk: the tiny text spans several


@pytest.mark.parametrize("alignment", ["positional", "byte-offset"])
def test_each_row_is_validated_once(teacher, student, dists, alignment):
    """check_distribution sees each full-vocabulary row ONCE (the batch of merged rows per side,
    plus the base rows when groups are merged); every divergence after it takes them as checked.
    Only the small top-k + rest vectors of token-space OT are checked again."""
    import sys
    import threading

    from uld_explorer.distributions import check_distribution

    (t_tok, t_dist), (s_tok, s_dist) = dists
    shapes = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code is check_distribution.__code__:
            shapes.append(tuple(np.shape(frame.f_locals["x"])))

    sys.setprofile(watch)
    threading.setprofile(watch)  # the row workers are new threads
    try:
        table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment=alignment,
                                      top_k=30, edit_top_k=10, chunk_rows=CHUNK_ROWS)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    V_t, V_s = t_dist.shape[1], s_dist.shape[1]
    # rows go in chunks of CHUNK_ROWS; a chunk with a merged group also checks its base rows
    expected = []
    for c0 in range(0, len(table), CHUNK_ROWS):
        chunk = table.rows[c0 : c0 + CHUNK_ROWS]
        merged = any(len(r.teacher_tokens) > 1 or len(r.student_tokens) > 1 for r in chunk)
        expected += [(len(chunk), V_t), (len(chunk), V_s)] * (2 if merged else 1)
    big = sorted(sh for sh in shapes if sh[-1] >= min(V_t, V_s))
    assert big == sorted(expected), big
    assert len(table) > 2 * CHUNK_ROWS  # this text spans several chunks
    # and the chunks change nothing: the same rows as one chunk for the whole table
    whole = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment=alignment,
                                  top_k=30, edit_top_k=10, chunk_rows=4096)
    assert whole.rows == table.rows
    assert sum(n for n, v in big if v == V_t) <= 2 * len(table)
    assert all(sh[-1] <= 31 for sh in shapes if sh[-1] < min(V_t, V_s))  # k + 1 entries at most


def test_merged_rows_never_get_the_uld_half_note(teacher, student, dists):
    """ULD/2 <= token OT is a statement about distributions; a merged row's ULD is taken on the
    chain-rule (sub-probability) vectors, so it is not compared there. Crafted: base rows agree
    (token OT 0), the student's group mass is 0.1 (ULD/2 = 0.45): no '< ULD/2' note."""
    from uld_explorer.compare.pipeline import shared_strings_of

    (t_tok, t_dist), (s_tok, s_dist) = dists
    table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment="byte-offset",
                                  costs=("string",), top_k=30)
    r = next(r for r in table if len(r.teacher_tokens) == 1 and len(r.student_tokens) == 2)
    shared = shared_strings_of(teacher.tokenizer, student.tokenizer, t_dist.shape[1], s_dist.shape[1])
    g = int(shared.match.teacher_group[shared.match.teacher_matched[0]])
    i_t = int(np.flatnonzero(shared.match.teacher_group == g)[0])
    i_s = int(np.flatnonzero(shared.match.student_group == g)[0])
    t_mod, s_mod = t_dist.copy(), s_dist.copy()
    (jt,) = r.teacher_tokens
    t_mod[jt] = 0.0
    t_mod[jt, i_t] = 1.0  # the teacher: all on a shared string
    j0, j1 = r.student_tokens
    s_mod[j0] = 0.0
    s_mod[j0, i_s] = 1.0  # the student group's base (first) row: all on the same string
    s_mod[j1] = 0.9 / (s_dist.shape[1] - 1)
    s_mod[j1, s_tok.ids[j1]] = 0.1  # the later actual token: probability 0.1 -> group mass 0.1
    crafted = compare_distributions(teacher, student, t_tok, t_mod, s_tok, s_mod, alignment="byte-offset",
                                    costs=("string",), top_k=30)[r.index]
    assert crafted.student_mass == pytest.approx(0.1, rel=1e-5) and crafted.token_ot_string == pytest.approx(0.0, abs=1e-9)
    assert crafted.uld_half == pytest.approx(0.45, abs=1e-5)
    assert not any("< ULD/2" in n for n in crafted.notes) and any("merged group" in n for n in crafted.notes)


def test_different_prompts_are_refused(teacher, student):
    t_tok, t_dist = next_token_distributions(teacher, TEXT, prompt="A")
    s_tok, s_dist = next_token_distributions(student, TEXT, prompt="B")
    with pytest.raises(ValueError, match="different prompts"):
        compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist)


@pytest.mark.parametrize("field", ["top_k", "edit_top_k"])
def test_top_k_is_bounded_before_anything_is_allocated(field):
    from uld_explorer.costs import MAX_TOKEN_OT_TOP_K

    assert getattr(ComparisonConfig(**{field: MAX_TOKEN_OT_TOP_K}), field) == MAX_TOKEN_OT_TOP_K
    for bad in (MAX_TOKEN_OT_TOP_K + 1, 10**7, True, 2.5):
        with pytest.raises(ValueError, match=f"{field} must be a positive integer at most 4,999"):
            ComparisonConfig(**{field: bad})


def test_temperatures_change_the_values(teacher, student, table):
    hot = compare_text(teacher, student, TEXT, alignment=table.alignment, top_k=50, edit_top_k=20,
                       teacher_temperature=3.0, student_temperature=0.5)
    assert [r.byte_span for r in hot] == [r.byte_span for r in table]  # same alignment
    assert hot.teacher_temperature == 3.0 and hot.student_temperature == 0.5
    assert not np.allclose([r.uld for r in hot], [r.uld for r in table], atol=1e-4)
    assert np.mean([r.teacher_top1_prob for r in hot]) < np.mean([r.teacher_top1_prob for r in table])
    assert np.mean([r.student_top1_prob for r in hot]) > np.mean([r.student_top1_prob for r in table])


def test_costs_are_configurable(teacher, student):
    t = compare_text(teacher, student, TEXT, costs=("string",), top_k=30)
    assert all(r.token_ot_edit is None and r.edit_teacher_truncated is None for r in t)
    assert all(r.token_ot_string is not None for r in t)
    t = compare_text(teacher, student, TEXT, costs=(), top_k=30)
    assert all(r.token_ot_string is None and r.token_ot_edit is None for r in t)
    assert all(math.isfinite(r.uld) for r in t)


def test_identical_models_give_zero_everywhere(teacher):
    t = compare_text(teacher, teacher, TEXT, alignment="byte-offset", top_k=40, edit_top_k=40)
    assert all(r.same_span and len(r.teacher_tokens) <= 1 for r in t)
    for r in t:
        assert r.uld == pytest.approx(0.0, abs=1e-6) and r.value_ot == pytest.approx(0.0, abs=1e-6)
        assert r.hybrid == pytest.approx(0.0, abs=1e-6)
        assert r.kl_shared == pytest.approx(0.0, abs=1e-9)
        assert r.token_ot_string == pytest.approx(0.0, abs=1e-9)
        assert r.token_ot_edit == pytest.approx(0.0, abs=1e-9)
        assert r.teacher_top1 == r.student_top1


def test_compare_distributions_reuses_the_forward_passes(teacher, student, dists, table):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    again = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, alignment=table.alignment,
                                  top_k=50, edit_top_k=20)
    assert [r.uld for r in again] == pytest.approx([r.uld for r in table], abs=1e-12)
    assert again.timings["vocab"] < 0.05  # the vocab-string mapping is cached per tokenizer pair
    with pytest.raises(ValueError, match=r"shape \(T \+ 1, V\)"):
        compare_distributions(teacher, student, t_tok, t_dist[:-1], s_tok, s_dist)


def test_dataframe_and_json_records(table):
    df = table.to_dataframe()
    assert len(df) == len(table) and list(df.columns) == table.columns
    assert df["uld"].tolist() == [r.uld for r in table]
    recs = table.to_records()
    json.dumps(recs, allow_nan=False)  # strict JSON
    assert recs[0]["byte_span"] == list(table.rows[0].byte_span)
    doc = table.as_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["teacher"] == "tiny-llama-bpe" and doc["alignment"] == table.alignment
    assert doc["merge"] == "observed" and doc["hybrid"]["beta"] == 0.5
    assert len(doc["teacher_tokens"]["ids"]) == len(table.teacher)
    assert doc["rows"][-1]["kind"] == "next" and doc["rows"][-1]["teacher_prob"] is None


def test_kl_undefined_or_infinite_never_breaks_json(teacher, student):
    t = compare_text(teacher, student, TEXT, top_k=10, edit_top_k=5)
    r = t.rows[0]
    bad = dataclasses.replace(r, values={**r.values, "kl_shared": float("inf"), "uld": float("nan")})
    t2 = ComparisonTable(**{**t.__dict__, "rows": (bad,)})
    rec = t2.to_records()[0]
    assert rec["kl_shared"] is None and rec["uld"] is None


# --------------------------------------------------------------------------------------------
# CLI, on the tiny models saved as local folders
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, teacher, student):
    root = tmp_path_factory.mktemp("tiny_models")
    return [save_folder(root, nm, lm.tokenizer, lm.model) for nm, lm in (("teacher", teacher), ("student", student))]


def test_cli_compare_table_and_json(model_dirs, capsys):
    t_dir, s_dir = model_dirs
    args = ["compare", "--teacher", t_dir, "--student", s_dir, "--text", TEXT, "--top-k", "30", "--edit-top-k", "10"]
    assert main(args + ["--alignment", "byte-offset"]) == 0
    out = capsys.readouterr().out
    assert "alignment: byte-offset" in out and "ULD" in out and "KL_shared" in out and "🍕" in out
    assert main(args + ["--json", "--teacher-temperature", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["alignment"] == "positional" and doc["teacher_temperature"] == 2.0 and doc["top_k"] == 30
    assert doc["rows"] and all(abs(r["uld"] - r["value_ot"]) < 1e-6 for r in doc["rows"])
    # the same numbers as the library, through a model folder path given as a string
    lib = compare_text(t_dir, s_dir, TEXT, top_k=30, edit_top_k=10, teacher_temperature=2.0)
    assert [r["uld"] for r in doc["rows"]] == pytest.approx([r.uld for r in lib], abs=1e-9)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--teacher", "no-such-model"], "error: unknown model 'no-such-model'"),
        (["--text", "   "], "error: --text is empty or whitespace-only"),
        (["--teacher-temperature", "0"], "error: --teacher-temperature must be a finite number > 0"),
        (["--top-k", "0"], "error: --top-k must be a positive integer"),
    ],
)
def test_cli_compare_errors_exit_2_without_traceback(model_dirs, capsys, extra, message):
    t_dir, s_dir = model_dirs
    args = ["compare", "--teacher", t_dir, "--student", s_dir, "--text", TEXT] + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def test_cli_compare_prompt_reaches_the_library(model_dirs, capsys):
    t_dir, s_dir = model_dirs
    prompt, text = "The cat sat.", " The dog sat on the log."
    args = ["compare", "--teacher", t_dir, "--student", s_dir, "--prompt", prompt, "--text", text,
            "--top-k", "20", "--edit-top-k", "5", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["prompt"] == prompt and doc["rows"][0]["teacher_tokens"] == [0]
    lib = compare_text(t_dir, s_dir, text, prompt=prompt, top_k=20, edit_top_k=5)
    assert [r["uld"] for r in doc["rows"]] == pytest.approx([r.uld for r in lib], abs=1e-9)
    assert main(args[:-1]) == 0
    assert "prompt (read, not scored): 'The cat sat.'" in capsys.readouterr().out


def test_cli_compare_rejects_a_huge_top_k_before_loading(capsys):
    """No model is loaded (the default pair is not needed to say no), in well under a second."""
    assert main(["compare", "--text", "x", "--teacher", "no-such-model", "--top-k", "1000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --top-k must be a positive integer at most 4,999") and "Traceback" not in err


def test_invalid_utf8_text_is_refused_before_any_model_loads(capsys):
    """Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape): refused in the
    user's terms, before the (here unloadable) models are even looked up."""
    with pytest.raises(ValueError, match="text is not valid UTF-8: character 3 stands for the byte 0xe9"):
        compare_text("no-such-model", "no-such-model", "caf\udce9 au lait")
    with pytest.raises(ValueError, match="prompt is not valid UTF-8"):
        compare_text("no-such-model", "no-such-model", "ok", prompt="\udcff")
    cmd = "uld-explorer compare --teacher no-such-model --text $'caf\\xe9 au lait'"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LC_ALL": "C.UTF-8", "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: --text is not valid UTF-8: character 3 stands for the byte 0xe9")
    assert "Traceback" not in proc.stderr


def test_cli_output_on_an_ascii_terminal(model_dirs):
    """PYTHONIOENCODING=ascii: the table escapes what it cannot print, JSON escapes to \\uXXXX."""
    t_dir, s_dir = model_dirs
    base = [sys.executable, "-m", "uld_explorer.cli", "compare", "--teacher", t_dir, "--student", s_dir,
            "--text", "Le café 🍕!", "--top-k", "10", "--edit-top-k", "5"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    table = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "caf\\xe9" in table.stdout or "caf\\u00e9" in table.stdout
    doc = subprocess.run(base + ["--json"], capture_output=True, text=True, env=env, timeout=300)
    assert doc.returncode == 0, doc.stderr
    parsed = json.loads(doc.stdout)
    assert parsed["text"] == "Le café 🍕!" and all(ord(c) < 128 for c in doc.stdout)


_FLOATS = st.one_of(st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e-300", "1e300", "abc", "2", "0.5", "1"]),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
_INTS = st.one_of(st.sampled_from(["0", "-1", "1", "5", "4999", "5000", "10000000", "2.5", "x", "none"]),
                  st.integers(-10, 10**7).map(str))
_TEXTS = st.one_of(st.sampled_from(["", "   ", "caf\udce9", "Le café 🍕!", "The cat sat.", "\n\t", "a"]),
                   st.text(min_size=0, max_size=30))


@st.composite
def _compare_args(draw):
    args = ["compare", "--text", draw(_TEXTS)]
    options = {
        "--prompt": _TEXTS, "--alignment": st.sampled_from(["positional", "byte-offset", "diagonal"]),
        "--merge": st.sampled_from(["observed", "bayesian", "mean"]), "--top-k": _INTS, "--edit-top-k": _INTS,
        "--teacher-temperature": _FLOATS, "--student-temperature": _FLOATS, "--max-tokens": _INTS,
        "--chunk-rows": _INTS, "--hybrid-beta": _FLOATS, "--hybrid-clamp": _FLOATS,
        "--hybrid-divergence": st.sampled_from(["jsd", "kl", "tv"]),
        "--hybrid-weighting": st.sampled_from(["matched-share", "fixed", "mass"]),
    }
    for opt in draw(st.lists(st.sampled_from(sorted(options)), unique=True, max_size=5)):
        args += [opt, draw(options[opt])]
    if draw(st.booleans()):
        args += ["--hybrid-weights", draw(_FLOATS), draw(_FLOATS)]
    if draw(st.booleans()):
        args += ["--costs", *draw(st.lists(st.sampled_from(["string", "edit", "cosine"]), max_size=3))]
    if draw(st.booleans()):
        args.append("--json")
    return args


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: a bad choice / type is its own usage error
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=80, deadline=None)
@given(args=_compare_args())
def test_cli_fuzz_exit_0_or_2_never_a_traceback_json_strict(model_dirs, args):
    t_dir, s_dir = model_dirs
    argv = args + ["--teacher", t_dir, "--student", s_dir]
    code, out, err = _run_cli(argv)
    event(f"exit {code}")
    assert code in (0, 2), (argv, code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out, (argv, err[-2000:])
    if code == 2:
        assert err.strip(), argv  # always says why
    elif "--json" in args:
        doc = json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        assert doc["rows"] is not None


def test_cli_compare_help_names_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert zoo.DEFAULT_TEACHER in out and zoo.DEFAULT_STUDENT in out and "byte-offset" in out


# --------------------------------------------------------------------------------------------
# real models (slow): the zoo's default pair, each loaded once per session
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_teacher():
    return zoo.load(zoo.DEFAULT_TEACHER, progress=False)


@pytest.fixture(scope="session")
def real_student():
    return zoo.load(zoo.DEFAULT_STUDENT, progress=False)


def _own_probs(lm, context, ids):
    """Manual forward in float64: softmax of the logits before each of ``ids`` after ``context``,
    and the last row (after everything). Returns (rows (len(ids) + 1, V) float64)."""
    logits = _manual_logits(lm, list(context) + list(ids))
    c = len(context)
    assert c >= 1, "a context token is needed to score ids[0]"
    return torch.softmax(logits[c - 1 :], -1).numpy()  # row j predicts ids[j]; the last row what follows


@pytest.mark.slow
def test_real_pair_predicts_paris(real_teacher, real_student):
    table = compare_text(real_teacher, real_student, "The capital of France is Paris")
    last = _token_rows(table)[-1]
    assert last.label == " Paris" and last.teacher_strings == (" Paris",) and last.student_strings == (" Paris",)
    assert last.teacher_top1 == " Paris" and last.student_top1 == " Paris"
    assert last.teacher_top1_prob > 0.5 and last.student_top1_prob > 0.5
    assert table.V_t == 151_936 and table.V_s == 49_152


@pytest.mark.slow
def test_real_next_token_row_is_paris(real_teacher, real_student):
    """Typing "The capital of France is": the last row is both models' distribution after ' is',
    ' Paris' top-1 for both, equal to a manual forward pass."""
    text = "The capital of France is"
    table = compare_text(real_teacher, real_student, text, alignment="byte-offset")
    nxt = table.next_row
    assert nxt is not None and nxt.kind == "next" and nxt.label == NEXT_TOKEN_LABEL
    assert nxt.teacher_top1 == " Paris" and nxt.student_top1 == " Paris"
    assert nxt.teacher_prob is None and nxt.teacher_ids == () and nxt.student_strings == ()
    for lm, top1_prob in ((real_teacher, nxt.teacher_top1_prob), (real_student, nxt.student_top1_prob)):
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        manual = torch.softmax(_manual_logits(lm, ids)[-1], -1)
        assert top1_prob == pytest.approx(float(manual.max()), abs=1e-5)
        assert lm.tokenizer.convert_ids_to_tokens([int(manual.argmax())])[0] in ("ĠParis", "▁Paris")
    # the brief's figures: Qwen ' Paris' ~.91, SmolLM2 ~.77
    assert nxt.teacher_top1_prob == pytest.approx(0.91, abs=0.03) and nxt.student_top1_prob == pytest.approx(0.77, abs=0.03)


@pytest.mark.slow
def test_real_next_token_row_in_the_cli_table_and_json(capsys):
    args = ["compare", "--text", "The capital of France is", "--top-k", "100", "--edit-top-k", "20"]
    assert main(args + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    last = doc["rows"][-1]
    assert last["kind"] == "next" and last["label"] == NEXT_TOKEN_LABEL
    assert last["teacher_top1"] == " Paris" and last["student_top1"] == " Paris"
    assert last["teacher_prob"] is None and last["teacher_ids"] == []
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if NEXT_TOKEN_LABEL in x and x.lstrip()[0].isdigit())
    assert line.count("' Paris'") == 2, line  # both top-1 columns


@pytest.mark.slow
def test_real_prompt_conditioning_scores_the_answer(real_teacher, real_student):
    """Prompt "The capital of France is", answer " Paris.": rows are the answer's tokens only, the
    first (' Paris') predicted from the prompt's end on both sides, equal to a manual forward."""
    prompt, text = "The capital of France is", " Paris."
    table = compare_text(real_teacher, real_student, text, prompt=prompt, alignment="byte-offset")
    rows = _token_rows(table)
    assert [r.label for r in rows] == [" Paris", "."]
    first = rows[0]
    assert first.teacher_top1 == " Paris" and first.student_top1 == " Paris"
    for lm, tokens, prob in ((real_teacher, table.teacher, first.teacher_prob), (real_student, table.student, first.student_prob)):
        manual = _own_probs(lm, tokens.context_ids, tokens.ids)
        assert prob == pytest.approx(float(manual[0, tokens.ids[0]]), rel=1e-5)
    # the same row without the prompt does not exist: nothing predicts a text's first token
    alone = compare_text(real_teacher, real_student, text, alignment="byte-offset")
    assert [r.label for r in _token_rows(alone)] == ["."]


def _sorted_l1(p: np.ndarray, q: np.ndarray) -> float:
    """The ULD formula restated: sort descending, zero-pad the shorter, sum |differences|."""
    n = max(p.size, q.size)
    ps = np.pad(np.sort(p)[::-1], (0, n - p.size))
    qs = np.pad(np.sort(q)[::-1], (0, n - q.size))
    return float(np.abs(ps - qs).sum())


@pytest.mark.slow
@pytest.mark.parametrize("merge", ["observed", "bayesian"])
def test_real_merges_hand_worked(real_teacher, real_student, merge):
    """Groups split differently on the two sides, merged and compared BY HAND in float64 from a
    manual forward pass. Qwen / SmolLM2 on this text:
        ' naïve' teacher [' naï', 've']    student [' na', 'ïve']     (both split, differently)
        ' ré'    teacher [' ré']            student [' r', 'é']
        ' était' teacher [' était']         student [' ', 'ét', 'ait']
    observed: m = p_first(.) * prod p_later(actual);  bayesian: m = p_last(.) * prod p_earlier(actual)."""
    prompt, text = "Words:", " naïve résumé, le café était"
    table = compare_text(real_teacher, real_student, text, prompt=prompt, alignment="byte-offset", merge=merge)
    by_label = {r.label: r for r in table}
    probs = {}
    for side, lm, tok in (("t", real_teacher, table.teacher), ("s", real_student, table.student)):
        probs[side] = (_own_probs(lm, tok.context_ids, tok.ids), tok)
    expected_split = {" naïve": (2, 2), " ré": (1, 2), " était": (1, 3)}
    for label, (n_t, n_s) in expected_split.items():
        r = by_label[label]
        assert (len(r.teacher_tokens), len(r.student_tokens)) == (n_t, n_s), (label, r.teacher_strings, r.student_strings)
        if label == " naïve":
            assert r.teacher_strings == (" naï", "ve") and r.student_strings == (" na", "ïve")
        merged = {}
        for side, tokens in (("t", r.teacher_tokens), ("s", r.student_tokens)):
            P, tok = probs[side]
            own = [P[j, tok.ids[j]] for j in tokens]  # the actual tokens' probabilities
            if merge == "observed":
                m = P[tokens[0]] * np.prod(own[1:])
            else:
                m = P[tokens[-1]] * np.prod(own[:-1])
            merged[side] = m
            # at the base token's actual id: the whole group's (sequence) probability
            base = tokens[0] if merge == "observed" else tokens[-1]
            assert m[tok.ids[base]] == pytest.approx(np.prod(own), rel=1e-9)
            prob = r.teacher_prob if side == "t" else r.student_prob
            mass = r.teacher_mass if side == "t" else r.student_mass
            assert prob == pytest.approx(np.prod(own), rel=1e-4)
            assert mass == pytest.approx(m.sum(), rel=1e-4)
        assert r.uld == pytest.approx(_sorted_l1(merged["t"], merged["s"]), abs=2e-6), label
        assert r.value_ot == pytest.approx(r.uld, abs=1e-6)


@pytest.mark.slow
def test_real_pair_table_uld_equals_uld_distance(real_teacher, real_student):
    text = "The capital of France is Paris. Le café était très bon."
    t_tok, t_dist = next_token_distributions(real_teacher, text)
    s_tok, s_dist = next_token_distributions(real_student, text)
    dists = ((t_tok, t_dist), (s_tok, s_dist))
    for alignment, merge in (("positional", "observed"), ("byte-offset", "observed"), ("byte-offset", "bayesian")):
        table = compare_distributions(real_teacher, real_student, t_tok, t_dist, s_tok, s_dist,
                                      alignment=alignment, merge=merge, edit_top_k=20)
        for r in table:
            p, q, _, _ = _vectors(r, dists, merge)
            assert r.uld == pytest.approx(float(uld_distance(p, q, subprobability=True)), abs=1e-6)
            assert r.value_ot == pytest.approx(r.uld, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_real_pair_multilingual_tables_are_finite(real_teacher, real_student, kind):
    text = TEXTS[kind]
    t_tok, t_dist = next_token_distributions(real_teacher, text)
    s_tok, s_dist = next_token_distributions(real_student, text)
    for alignment in ("positional", "byte-offset"):
        table = compare_distributions(real_teacher, real_student, t_tok, t_dist, s_tok, s_dist,
                                      alignment=alignment, top_k=200, edit_top_k=50)
        assert len(table) > 1 and table.next_row is not None
        for r in table:
            vals = [r.uld, r.value_ot, r.kl_shared, r.kl_teacher_coverage, r.kl_student_coverage, r.hybrid,
                    r.hybrid_matched, r.hybrid_unmatched, r.uld_half, r.token_ot_string, r.token_ot_edit]
            if r.kind == "token":
                vals += [r.teacher_prob, r.student_prob]
            assert all(math.isfinite(v) for v in vals), (alignment, r)
            assert abs(r.uld - r.value_ot) < 1e-6 and 0 <= r.uld <= 2 + 1e-6
        rows = _token_rows(table)
        if alignment == "byte-offset":
            tb = text.encode()
            assert b"".join(tb[slice(*r.byte_span)] for r in rows) == tb[rows[0].byte_span[0]:]
            assert all(r.same_span for r in table)
        json.dumps(table.as_dict(), allow_nan=False)


@pytest.mark.parametrize("alignment", ["positional", "byte-offset"])
def test_reuse_takes_over_only_what_top_k_does_not_change(teacher, student, dists, alignment):
    """compare_distributions(reuse=previous) equals a fresh table, number for number, when only
    top_k / edit_top_k / costs changed; a table that differs in anything else is ignored."""
    (t_tok, t_dist), (s_tok, s_dist) = dists
    cfg = ComparisonConfig(alignment=alignment, merge="bayesian", top_k=40, costs=("string",), value_ot=True)
    first = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg)
    for change in ({"top_k": 7}, {"top_k": 7, "costs": ("string", "edit"), "edit_top_k": 5}, {"costs": ()}):
        fresh = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(**change))
        reused = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(**change),
                                       reuse=first)
        assert reused.to_records() == fresh.to_records(), change
        assert reused.config == fresh.config
    # what the kept values depend on: another merge, temperature or alignment makes reuse a no-op
    other = {"merge": "observed"}, {"teacher_temperature": 2.0}, {
        "alignment": "byte-offset" if alignment == "positional" else "positional"}
    for change in other:
        fresh = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(**change))
        reused = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(**change),
                                       reuse=first)
        assert reused.to_records() == fresh.to_records(), change
    # and reuse really is used: a doctored previous table shows through (only where it may)
    doctored = dataclasses.replace(first, rows=tuple(dataclasses.replace(r, values={**r.values, "uld": r.uld + 1.0})
                                                     for r in first.rows))
    reused = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(top_k=7),
                                   reuse=doctored)
    assert [r.uld for r in reused] == [r.uld + 1.0 for r in first]
    assert [r.token_ot_string for r in reused] == [r.token_ot_string for r in compare_distributions(
        teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg.replace(top_k=7))]
