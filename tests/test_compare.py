"""Text -> per-position comparison table (uld_explorer.compare) and `uld-explorer compare`.

Fast tests: two tiny random-weight causal LMs with DIFFERENT tokenizers built here (a byte-level
BPE Llama teacher without BOS, a SentencePiece-style GPT-2 student with BOS and byte fallback);
every number in the table is checked against an independent oracle (a manual forward pass,
uld_distance, ot.wasserstein_1d, restrict_to_shared_vocab + kl_divergence,
token_space_ot_top_k). Slow tests: the real default pair of the zoo (Qwen teacher, SmolLM2
student), each model loaded once per session.
"""

from __future__ import annotations

import json
import math

import numpy as np
import ot
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from uld_explorer import (
    kl_divergence,
    restrict_to_shared_vocab,
    token_space_ot_top_k,
    uld_distance,
    zoo,
)
from uld_explorer.text import merge_group, vocab_strings
from uld_explorer.cli import main
from uld_explorer.compare import (
    ComparisonTable,
    PositionRow,
    compare_distributions,
    compare_text,
    next_token_distributions,
)
from tiny_tokenizers import SPM_LETTERS, SPM_MERGES, TEXTS, byte_bpe, sentencepiece_like

TEXT = "The cat sat on the mat, and the dog sat on the log. Le café était très bon 🍕!"


# --------------------------------------------------------------------------------------------
# two tiny models with different tokenizers
# --------------------------------------------------------------------------------------------


def _byte_bpe(vocab_size: int) -> PreTrainedTokenizerFast:
    """GPT-2 style byte-level BPE, no BOS (like Qwen / SmolLM2)."""
    return byte_bpe(vocab_size)


def _sentencepiece_like() -> PreTrainedTokenizerFast:
    """'▁' + byte fallback + a BOS added by default (like Llama / Gemma), a few more merges."""
    extra = (("▁", "s"), ("▁s", "at"), ("o", "n"), ("▁", "o"), ("▁o", "n"))
    return sentencepiece_like(letters=SPM_LETTERS + "H", merges=SPM_MERGES + extra)


def _sharpen(model: torch.nn.Module, scale: float) -> None:
    """Random init gives near-uniform outputs; scale the LM head for peaked distributions."""
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(scale)


@pytest.fixture(scope="module")
def teacher():
    tok = _byte_bpe(400)
    torch.manual_seed(0)
    V_t = len(tok) + 16  # padded embedding rows, as in real models (151,936 logits > tokenizer)
    cfg = LlamaConfig(
        vocab_size=V_t, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    _sharpen(model, 60.0)
    return zoo.LoadedModel("tiny-llama-bpe", tok, model)


@pytest.fixture(scope="module")
def student():
    tok = _sentencepiece_like()
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128, bos_token_id=1, eos_token_id=None)
    model = GPT2LMHeadModel(cfg).eval()
    _sharpen(model, 30.0)

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


def _merged(dist, tok, tokens):
    v, _ = merge_group(dist, tok.ids, tokens)
    return np.asarray(v, dtype=np.float64)


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
        assert dist.shape == (len(tok), V) and dist.dtype == np.float32
        rows = dist[tok.first_predicted :]
        assert np.isfinite(rows).all() and (rows >= 0).all()
        np.testing.assert_allclose(rows.astype(np.float64).sum(-1), 1.0, atol=1e-5)
        if tok.first_predicted == 1:  # nothing predicts the first token without BOS: NaN, never read
            assert np.isnan(dist[0]).all()


def test_row_j_predicts_token_j_against_a_manual_forward(teacher, student, dists):
    for lm, (tok, dist) in zip((teacher, student), dists):
        inputs = ([tok.bos_id] if tok.bos_id is not None else []) + list(tok.ids)
        with torch.no_grad():
            logits = lm.model(torch.tensor([inputs])).logits[0].double()  # (L, V)
        shift = 0 if tok.bos_id is not None else 1  # logits at input position k predict token k+shift
        for j in range(tok.first_predicted, len(tok)):
            expected = torch.softmax(logits[j - shift], -1).numpy()
            np.testing.assert_allclose(dist[j], expected, atol=1e-6)
        # and it really is the distribution OF token j: its own id is usually far above uniform
        own = [dist[j, tok.ids[j]] for j in range(tok.first_predicted, len(tok))]
        assert len(own) == len(tok) - tok.first_predicted


def test_temperature_is_softmax_of_scaled_logits(teacher):
    tok, d1 = next_token_distributions(teacher, TEXT)
    _, d2 = next_token_distributions(teacher, TEXT, temperature=2.0)
    with torch.no_grad():
        logits = teacher.model(torch.tensor([list(tok.ids)])).logits[0].double()
    np.testing.assert_allclose(d2[1:], torch.softmax(logits[:-1] / 2.0, -1).numpy(), atol=1e-6)
    assert not np.allclose(d1[1:], d2[1:], atol=1e-3)
    # higher temperature -> flatter: the top probability goes down
    assert (d2[1:].max(-1) <= d1[1:].max(-1) + 1e-7).all()


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "hot", None])
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
    with pytest.warns(UserWarning, match="cut"):
        tok, dist = next_token_distributions(teacher, long_text)
    assert 0 < len(tok) <= teacher.model.config.max_position_embeddings == 64
    assert long_text.startswith(tok.text) and dist.shape[0] == len(tok)
    with pytest.warns(UserWarning, match="cut"):
        table = compare_text(teacher, student, long_text, alignment="byte-offset", top_k=20, edit_top_k=10)
    assert len(table) > 0 and table.rows[-1].byte_span[1] <= len(tok.text.encode())


def test_max_tokens_and_other_bad_arguments(teacher, student):
    with pytest.warns(UserWarning, match="cut"):
        tok, _ = next_token_distributions(teacher, TEXT, max_tokens=5)
    assert len(tok) <= 5
    with pytest.raises(ValueError, match="max_tokens"):
        next_token_distributions(teacher, TEXT, max_tokens=0)
    with pytest.raises(ValueError, match="alignment must be one of"):
        compare_text(teacher, student, TEXT, alignment="diagonal")
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        compare_text(teacher, student, TEXT, top_k=0)
    with pytest.raises(ValueError, match="costs must be a subset"):
        compare_text(teacher, student, TEXT, costs=("string", "cosine"))
    with pytest.raises(TypeError, match="tokenizer and .model"):
        compare_text(object(), student, TEXT)


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
    for r in table:
        a, b = r.byte_span
        assert r.label == tb[a:b].decode("utf-8", "backslashreplace")
        assert r.teacher_ids == tuple(t_tok.ids[j] for j in r.teacher_tokens)
        assert r.student_ids == tuple(s_tok.ids[j] for j in r.student_tokens)
        assert min(r.teacher_tokens) >= t_tok.first_predicted and min(r.student_tokens) >= s_tok.first_predicted
    if table.alignment == "byte-offset":
        assert all(r.same_span for r in table)
        # the groups tile the text from the first common start to the end, multibyte included
        assert "".join(r.label for r in table) == TEXT[len(TEXT) - len("".join(r.label for r in table)):]
        assert b"".join(tb[slice(*r.byte_span)] for r in table) == tb[table.rows[0].byte_span[0]:]
        assert any(len(r.teacher_tokens) > 1 or len(r.student_tokens) > 1 for r in table)  # real merges
    else:
        assert all(len(r.teacher_tokens) == len(r.student_tokens) == 1 for r in table)
        assert not all(r.same_span for r in table)  # different tokenizers drift apart


def test_table_uld_equals_uld_distance_and_value_ot_equals_uld(table, dists):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    n = max(t_dist.shape[1], s_dist.shape[1])
    for r in table:
        p = _merged(t_dist, t_tok, r.teacher_tokens)
        q = _merged(s_dist, s_tok, r.student_tokens)
        assert r.uld == pytest.approx(float(uld_distance(p, q, subprobability=True)), abs=1e-6)
        assert r.value_ot == pytest.approx(r.uld, abs=1e-6)
        # the oracle: POT's 1-D W1 on the zero-padded vectors, uniform weights
        w1 = ot.wasserstein_1d(np.pad(p, (0, n - p.size)), np.pad(q, (0, n - q.size)), p=1) * n
        assert r.value_ot == pytest.approx(float(w1), abs=1e-6)
        assert r.teacher_mass == pytest.approx(p.sum(), abs=1e-5) and r.student_mass == pytest.approx(q.sum(), abs=1e-5)
        # own actual token(s): the chain rule product, read at the first actual id
        assert r.teacher_prob == pytest.approx(p[t_tok.ids[r.teacher_tokens[0]]], rel=1e-5)
        assert r.student_prob == pytest.approx(q[s_tok.ids[r.student_tokens[0]]], rel=1e-5)
        assert 0 <= r.teacher_prob <= r.teacher_mass + 1e-6


def test_table_kl_on_shared_strings_matches_the_library(table, dists, teacher, student):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    ts = _unique_strings(vocab_strings(teacher.tokenizer, t_dist.shape[1]), "t")
    ss = _unique_strings(vocab_strings(student.tokenizer, s_dist.shape[1]), "s")
    for r in table:
        p = t_dist[r.teacher_tokens[0]].astype(np.float64)  # renormalized merge = first distribution
        q = s_dist[r.student_tokens[0]].astype(np.float64)
        sv = restrict_to_shared_vocab(p / p.sum(), q / q.sum(), ts, ss)
        assert 0 <= r.kl_teacher_coverage <= 1 and 0 <= r.kl_student_coverage <= 1
        assert r.kl_teacher_coverage == pytest.approx(float(sv.teacher_mass), abs=1e-6)
        assert r.kl_student_coverage == pytest.approx(float(sv.student_mass), abs=1e-6)
        assert r.kl_shared == pytest.approx(float(kl_divergence(sv.p, sv.q)), rel=1e-6, abs=1e-9)
    assert table.shared_strings == len(set(ts) & set(ss))


def test_table_token_space_ot_matches_token_space_ot_top_k(table, dists, teacher, student):
    (t_tok, t_dist), (s_tok, s_dist) = dists
    ts = vocab_strings(teacher.tokenizer, t_dist.shape[1])
    ss = vocab_strings(student.tokenizer, s_dist.shape[1])
    for r in table.rows[:: max(1, len(table) // 6)]:
        p, q = t_dist[r.teacher_tokens[0]], s_dist[r.student_tokens[0]]
        for cost, k, val, tt, st in (
            ("string", table.top_k, r.token_ot_string, r.string_teacher_truncated, r.string_student_truncated),
            ("edit", table.edit_top_k, r.token_ot_edit, r.edit_teacher_truncated, r.edit_student_truncated),
        ):
            ref = token_space_ot_top_k(p, q, ts, ss, k=k, cost=cost, solver="pot")
            assert val == pytest.approx(ref.value, abs=1e-9)
            assert tt == pytest.approx(ref.teacher_truncated_mass, abs=1e-12)
            assert st == pytest.approx(ref.student_truncated_mass, abs=1e-12)
            assert 0 <= val <= 1 + 1e-9
        # top-1 strings and probabilities
        assert r.teacher_top1 == ts[int(np.argmax(p))] and r.student_top1 == ss[int(np.argmax(q))]
        assert r.teacher_top1_prob == pytest.approx(float(p.max())) and r.student_top1_prob == pytest.approx(float(q.max()))


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
    assert all(r.same_span and len(r.teacher_tokens) == 1 for r in t)
    for r in t:
        assert r.uld == pytest.approx(0.0, abs=1e-6) and r.value_ot == pytest.approx(0.0, abs=1e-6)
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
    with pytest.raises(ValueError, match="must have shape"):
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
    assert len(doc["teacher_tokens"]["ids"]) == len(table.teacher)


def test_kl_undefined_or_infinite_never_breaks_json(teacher, student):
    t = compare_text(teacher, student, TEXT, top_k=10, edit_top_k=5)
    r = t.rows[0]
    bad = PositionRow(**{**r.__dict__, "kl_shared": float("inf"), "uld": float("nan")})
    t2 = ComparisonTable(**{**t.__dict__, "rows": (bad,)})
    rec = t2.to_records()[0]
    assert rec["kl_shared"] is None and rec["uld"] is None


# --------------------------------------------------------------------------------------------
# CLI, on the tiny models saved as local folders
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, teacher, student):
    root = tmp_path_factory.mktemp("tiny_models")
    out = []
    for nm, lm in (("teacher", teacher), ("student", student)):
        d = root / nm
        lm.model.save_pretrained(d, safe_serialization=True)
        lm.tokenizer.save_pretrained(d)
        out.append(str(d))
    return out


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


@pytest.mark.slow
def test_real_pair_predicts_paris(real_teacher, real_student):
    table = compare_text(real_teacher, real_student, "The capital of France is Paris")
    last = table.rows[-1]
    assert last.label == " Paris" and last.teacher_strings == (" Paris",) and last.student_strings == (" Paris",)
    assert last.teacher_top1 == " Paris" and last.student_top1 == " Paris"
    assert last.teacher_top1_prob > 0.5 and last.student_top1_prob > 0.5
    assert table.V_t == 151_936 and table.V_s == 49_152


@pytest.mark.slow
def test_real_pair_next_token_after_the_prompt_is_paris(real_teacher, real_student):
    """The last position of "The capital of France is": the logits after ' is' (the distribution
    the model would sample from next) put ' Paris' first, for both models."""
    for lm in (real_teacher, real_student):
        ids = lm.tokenizer("The capital of France is", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = lm.model(torch.tensor([ids])).logits[0, -1]
        top = int(torch.argmax(logits))
        assert lm.tokenizer.convert_ids_to_tokens([top])[0] in ("ĠParis", "▁Paris")


@pytest.mark.slow
def test_real_pair_table_uld_equals_uld_distance(real_teacher, real_student):
    text = "The capital of France is Paris. Le café était très bon."
    t_tok, t_dist = next_token_distributions(real_teacher, text)
    s_tok, s_dist = next_token_distributions(real_student, text)
    for alignment in ("positional", "byte-offset"):
        table = compare_distributions(real_teacher, real_student, t_tok, t_dist, s_tok, s_dist, alignment=alignment)
        for r in table:
            p = _merged(t_dist, t_tok, r.teacher_tokens)
            q = _merged(s_dist, s_tok, r.student_tokens)
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
        assert len(table) > 0
        for r in table:
            vals = [r.uld, r.value_ot, r.kl_shared, r.kl_teacher_coverage, r.kl_student_coverage,
                    r.token_ot_string, r.token_ot_edit, r.teacher_prob, r.student_prob]
            assert all(math.isfinite(v) for v in vals), (alignment, r)
            assert abs(r.uld - r.value_ot) < 1e-6 and 0 <= r.uld <= 2 + 1e-6
        if alignment == "byte-offset":
            tb = text.encode()
            assert b"".join(tb[slice(*r.byte_span)] for r in table) == tb[table.rows[0].byte_span[0]:]
            assert all(r.same_span for r in table)
        json.dumps(table.to_records(), allow_nan=False)
