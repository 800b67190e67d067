"""Alignment across tokenizers: byte spans, positional / byte-offset alignment, chain-rule merges,
vocabulary overlap.

Fast tests use tiny tokenizers built here with the `tokenizers` library and hand-made
``Tokenized`` objects with hand-worked expected values; the ``slow`` tests load the REAL
tokenizers of the zoo models (never their weights) when they are cached.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from tiny_tokenizers import CORPUS, TEXTS, byte_bpe, sentencepiece_like
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from uld_explorer import zoo
from uld_explorer.text import (
    AlignedPair,
    Tokenized,
    byte_offset_alignment,
    bytes_to_unicode,
    covered_mass,
    group_distributions,
    match_strings,
    merge_group,
    misalignment_rate,
    normalize_token,
    positional_alignment,
    token_bytes,
    tokenization_report,
    tokenize_with_offsets,
    tokenizer_kind,
    vocab_bytes,
    vocab_overlap,
    vocab_strings,
)

# --------------------------------------------------------------------------------------------
# tiny tokenizers
# --------------------------------------------------------------------------------------------


_byte_bpe, _sentencepiece_like = byte_bpe, sentencepiece_like


def _wordpiece() -> PreTrainedTokenizerFast:
    """Lower-casing WordPiece: token strings cannot reproduce the text -> offsets fallback."""
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]"], show_progress=False)
    tk.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]")


@pytest.fixture(scope="module")
def bpe_big():
    return _byte_bpe(400)


@pytest.fixture(scope="module")
def bpe_small():
    return _byte_bpe(280)


@pytest.fixture(scope="module")
def spm():
    return _sentencepiece_like()


@pytest.fixture(scope="module")
def wordpiece():
    return _wordpiece()


def T(text, spans, bos=None, ids=None):
    """A hand-made Tokenized over ``text`` with the given byte spans."""
    tb = text.encode("utf-8")
    ids = tuple(range(len(spans))) if ids is None else tuple(ids)
    strings = tuple(tb[a:b].decode("utf-8", "backslashreplace") for a, b in spans)
    return Tokenized(text, ids, strings, tuple(spans), bos)


def check_invariants(tok: Tokenized):
    tb = tok.text.encode("utf-8")
    assert len(tok.ids) == len(tok.strings) == len(tok.byte_spans) >= 1
    assert tok.byte_spans[0][0] == 0 and tok.byte_spans[-1][1] == len(tb)
    for (a, b), (c, d) in zip(tok.byte_spans, tok.byte_spans[1:]):
        assert a <= b == c <= d
    assert b"".join(tok.token_bytes(j) for j in range(len(tok.ids))) == tb


def check_groups(groups, t: Tokenized, s: Tokenized):
    tb = t.text.encode("utf-8")
    assert groups, "expected at least one group"
    for g, h in zip(groups, groups[1:]):
        assert g.byte_span[1] == h.byte_span[0]
        assert g.teacher_tokens[-1] + 1 == h.teacher_tokens[0]
        assert g.student_tokens[-1] + 1 == h.student_tokens[0]
    for g in groups:
        assert g.same_span
        assert b"".join(t.token_bytes(j) for j in g.teacher_tokens) == tb[slice(*g.byte_span)]
        assert b"".join(s.token_bytes(j) for j in g.student_tokens) == tb[slice(*g.byte_span)]
        assert all(j >= t.first_predicted for j in g.teacher_tokens)
        assert all(j >= s.first_predicted for j in g.student_tokens)
        assert list(g.teacher_tokens) == list(range(g.teacher_tokens[0], g.teacher_tokens[-1] + 1))
    start = groups[0].byte_span[0]
    assert b"".join(tb[slice(*g.byte_span)] for g in groups) == tb[start:]


# --------------------------------------------------------------------------------------------
# tokenize_with_offsets on tiny tokenizers
# --------------------------------------------------------------------------------------------


def test_tokenizer_kinds(bpe_big, spm, wordpiece):
    assert tokenizer_kind(bpe_big) == "byte_level"
    assert tokenizer_kind(spm) == "sentencepiece"
    assert tokenizer_kind(wordpiece) == "other"


@pytest.mark.parametrize("name", list(TEXTS))
def test_tiny_tokenizers_reproduce_bytes(name, bpe_big, bpe_small, spm, wordpiece):
    for tok in (bpe_big, bpe_small, spm, wordpiece):
        tz = tokenize_with_offsets(tok, TEXTS[name])
        check_invariants(tz)
        assert tz.ids == tuple(tok(TEXTS[name], add_special_tokens=False)["input_ids"])


def test_byte_level_split_emoji_has_sub_character_spans(bpe_small):
    tz = tokenize_with_offsets(bpe_small, "🙂")
    assert len(tz.ids) > 1  # the small vocab splits the 4-byte emoji
    assert tz.byte_spans[-1][1] == 4
    assert tz.strings[0].startswith("\\xf0")  # backslashreplace of a partial character


def test_sentencepiece_dummy_prefix_and_byte_fallback(spm):
    tz = tokenize_with_offsets(spm, "the cat")
    assert tz.strings == ("the", " cat")  # '▁the' loses the dummy-prefix space
    assert tz.byte_spans == ((0, 3), (3, 7))
    assert tz.bos_id == 1 and tz.first_predicted == 0
    assert tz.model_input_ids == (1,) + tz.ids
    tz = tokenize_with_offsets(spm, "é")  # byte fallback <0xC3> <0xA9>, after a lone '▁'
    assert tz.strings[-2:] == ("\\xc3", "\\xa9")
    assert tz.byte_spans[-2:] == ((0, 1), (1, 2))
    check_invariants(tz)


def test_no_bos_for_byte_level(bpe_big):
    tz = tokenize_with_offsets(bpe_big, "The cat")
    assert tz.bos_id is None and tz.first_predicted == 1


def test_offsets_fallback_wordpiece(wordpiece):
    tz = tokenize_with_offsets(wordpiece, "The Cat  sat")
    check_invariants(tz)
    # a dropped space goes to the token before it; the lower-cased token keeps the text's bytes
    assert tz.strings[0].startswith("The")
    assert tz.text == "The Cat  sat"


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_or_whitespace_text_raises(text, bpe_big):
    with pytest.raises(ValueError, match="empty or whitespace"):
        tokenize_with_offsets(bpe_big, text)


def test_truncation_warns_and_keeps_prefix(bpe_small):
    full = tokenize_with_offsets(bpe_small, TEXTS["english"])
    with pytest.warns(UserWarning, match=r"cut \d+ token"):
        tz = tokenize_with_offsets(bpe_small, TEXTS["english"], max_tokens=5)
    assert tz.ids == full.ids[:5]
    check_invariants(tz)
    assert TEXTS["english"].startswith(tz.text)


def test_truncation_backs_off_to_character_boundary(bpe_small):
    full = tokenize_with_offsets(bpe_small, "a🙂")
    assert len(full.ids) >= 3
    with pytest.warns(UserWarning):
        tz = tokenize_with_offsets(bpe_small, "a🙂", max_tokens=2)  # would cut inside the emoji
    assert tz.text == "a" and len(tz.ids) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenize_with_offsets(bpe_small, "a🙂", max_tokens=len(full.ids))  # no cut, no warning


def test_unmappable_tokenizer_raises():
    class Fake:
        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
            out = {"input_ids": [0, 1]}
            if return_offsets_mapping:
                out["offset_mapping"] = [(2, 3), (0, 1)]  # not monotone
            return out

        def convert_ids_to_tokens(self, ids):
            return ["x", "y"]

    with pytest.raises(ValueError, match="neither the tokens' own bytes nor"):
        tokenize_with_offsets(Fake(), "abc")


# --------------------------------------------------------------------------------------------
# alignment, hand-worked
# --------------------------------------------------------------------------------------------

TEXT6 = "abcdef"
TEACHER_SPANS = [(0, 1), (1, 3), (3, 4), (4, 6)]  # a | bc | d | ef
STUDENT_SPANS = [(0, 2), (2, 3), (3, 5), (5, 6)]  # ab | c | de | f


def test_byte_offset_hand_example_with_bos():
    t, s = T(TEXT6, TEACHER_SPANS, bos=0), T(TEXT6, STUDENT_SPANS, bos=0)
    groups = byte_offset_alignment(t, s)
    assert all(isinstance(g, AlignedPair) for g in groups)
    assert [(g.teacher_tokens, g.student_tokens, g.byte_span, g.label) for g in groups] == [
        ((0, 1), (0, 1), (0, 3), "abc"),
        ((2, 3), (2, 3), (3, 6), "def"),
    ]
    check_groups(groups, t, s)


def test_byte_offset_drops_unpredicted_prefix():
    # teacher without BOS: its first predicted token starts at byte 1 -> first common start >= 1 is 3
    t, s = T(TEXT6, TEACHER_SPANS), T(TEXT6, STUDENT_SPANS, bos=0)
    groups = byte_offset_alignment(t, s)
    assert [(g.teacher_tokens, g.student_tokens, g.byte_span) for g in groups] == [((2, 3), (2, 3), (3, 6))]
    # both without BOS: max(1, 2) = 2 -> 3 again
    assert byte_offset_alignment(T(TEXT6, TEACHER_SPANS), T(TEXT6, STUDENT_SPANS)) == groups


def test_byte_offset_identical_tokenizations_are_single_token_groups():
    spans = [(0, 2), (2, 3), (3, 6)]
    t, s = T(TEXT6, spans), T(TEXT6, spans)
    groups = byte_offset_alignment(t, s)
    assert [(g.teacher_tokens, g.student_tokens) for g in groups] == [((1,), (1,)), ((2,), (2,))]
    assert groups == positional_alignment(t, s)


def test_byte_offset_one_side_coarser():
    # teacher one token "abcdef" with BOS; student six single bytes with BOS: one group
    t, s = T(TEXT6, [(0, 6)], bos=0), T(TEXT6, [(k, k + 1) for k in range(6)], bos=0)
    (g,) = byte_offset_alignment(t, s)
    assert g.teacher_tokens == (0,) and g.student_tokens == tuple(range(6)) and g.byte_span == (0, 6)


def test_byte_offset_no_common_start_gives_empty():
    # teacher "abcdef" one token, no BOS: nothing predicted
    assert byte_offset_alignment(T(TEXT6, [(0, 6)]), T(TEXT6, STUDENT_SPANS)) == []


def test_byte_offset_truncated_side_stops_at_last_common_boundary():
    t = T(TEXT6, TEACHER_SPANS, bos=0)
    s = T("abcd", [(0, 2), (2, 3), (3, 4)], bos=0)  # student truncated after "abcd"
    groups = byte_offset_alignment(t, s)
    assert [(g.teacher_tokens, g.student_tokens, g.byte_span) for g in groups] == [
        ((0, 1), (0, 1), (0, 3)),
        ((2,), (2,), (3, 4)),
    ]


def test_different_texts_raise():
    with pytest.raises(ValueError, match="different texts"):
        positional_alignment(T("abc", [(0, 3)]), T("abd", [(0, 3)]))


def test_positional_hand_example_and_truncation():
    t = T(TEXT6, TEACHER_SPANS, bos=0)  # predicts tokens 0..3
    s = T(TEXT6, STUDENT_SPANS)  # predicts tokens 1..3
    pairs = positional_alignment(t, s)
    assert [(p.teacher_tokens, p.student_tokens) for p in pairs] == [((0,), (1,)), ((1,), (2,)), ((2,), (3,))]
    assert [p.same_span for p in pairs] == [False, False, False]
    assert [p.label for p in pairs] == ["a", "bc", "d"]
    # aligned by index: teacher 'd' (3,4) vs student 'de' (3,5)
    t2, s2 = T(TEXT6, TEACHER_SPANS), T(TEXT6, STUDENT_SPANS)
    pairs = positional_alignment(t2, s2)
    assert [p.same_span for p in pairs] == [False, False, False]
    assert misalignment_rate(t2, s2) == 1.0


def test_misalignment_rate_hand_example():
    text = "abcd"
    t = T(text, [(0, 1), (1, 2), (2, 3), (3, 4)])  # a|b|c|d, predicts b, c, d
    s = T(text, [(0, 1), (1, 2), (2, 4)])  # a|b|cd, predicts b, cd
    assert [p.same_span for p in positional_alignment(t, s)] == [True, False]
    assert misalignment_rate(t, s) == 0.5
    assert misalignment_rate(t, t) == 0.0
    assert math.isnan(misalignment_rate(T(text, [(0, 4)]), t))  # no predicted teacher token


# --------------------------------------------------------------------------------------------
# chain-rule merging, hand-worked (module convention: dist[j] predicts token j)
# --------------------------------------------------------------------------------------------

# V = 3, T = 4 tokens with ids (2, 0, 1, 2); row 0 predicts token 0 (from BOS)
DIST = np.array(
    [
        [0.1, 0.2, 0.7],  # predicts token 0 (id 2): p(actual) = 0.7
        [0.5, 0.3, 0.2],  # predicts token 1 (id 0): p(actual) = 0.5
        [0.1, 0.6, 0.3],  # predicts token 2 (id 1): p(actual) = 0.6
        [0.25, 0.25, 0.5],  # predicts token 3 (id 2): p(actual) = 0.5
    ]
)
IDS = (2, 0, 1, 2)


@pytest.mark.parametrize(
    "tokens, expected, mass",
    [
        ((0,), [0.1, 0.2, 0.7], 1.0),  # single token at the start
        ((3,), [0.25, 0.25, 0.5], 1.0),  # single token at the end
        ((0, 1), [0.05, 0.1, 0.35], 0.5),  # group at the start: row 0 * p(id 0 | row 1)
        ((2, 3), [0.05, 0.3, 0.15], 0.5),  # group at the end: row 2 * p(id 2 | row 3)
        ((1, 2, 3), [0.15, 0.09, 0.06], 0.3),  # middle three: row 1 * 0.6 * 0.5
        ((0, 1, 2, 3), [0.015, 0.03, 0.105], 0.15),  # whole sequence: row 0 * 0.5 * 0.6 * 0.5
    ],
)
def test_merge_group_hand_worked(tokens, expected, mass):
    v, m = merge_group(DIST, IDS, tokens)
    np.testing.assert_allclose(v, expected, atol=1e-12)
    assert m == pytest.approx(mass)
    assert v.sum() == pytest.approx(m)
    # the actual sequence's probability is the product of each token's own probability
    assert v[IDS[tokens[0]]] == pytest.approx(np.prod([DIST[j, IDS[j]] for j in tokens]))


def test_merge_group_not_off_by_one():
    # an off-by-one (using row j-1 for token j) would give p = dist[1][ids[2]=1] = 0.3, not 0.6
    _, m = merge_group(DIST, IDS, (1, 2))
    assert m == pytest.approx(0.6)


def test_merge_group_torch_keeps_gradient():
    d = torch.tensor(DIST, requires_grad=True)
    v, m = merge_group(d, IDS, (1, 2))
    assert isinstance(v, torch.Tensor) and isinstance(m, float)
    torch.testing.assert_close(v.detach(), torch.tensor([0.3, 0.18, 0.12], dtype=torch.float64))
    v.sum().backward()
    assert d.grad[2, 1] == pytest.approx(1.0)  # d(sum)/d p(id 1 | row 2) = sum(row 1) = 1


@pytest.mark.parametrize("tokens, exc", [((), ValueError), ((1, 3), ValueError), ((2, 1), ValueError), ((3, 4), IndexError)])
def test_merge_group_bad_groups(tokens, exc):
    with pytest.raises(exc):
        merge_group(DIST, IDS, tokens)


def test_group_distributions_on_hand_alignment():
    text = "abcd"
    t = T(text, [(0, 1), (1, 2), (2, 4)], bos=0, ids=(2, 0, 1))  # a|b|cd
    s = T(text, [(0, 1), (1, 2), (2, 3), (3, 4)], bos=0, ids=IDS)  # a|b|c|d
    groups = byte_offset_alignment(t, s)
    assert [(g.teacher_tokens, g.student_tokens) for g in groups] == [((0,), (0,)), ((1,), (1,)), ((2,), (2, 3))]
    merged, masses = group_distributions(DIST, s, groups, side="student")
    assert merged.shape == (3, 3)
    np.testing.assert_allclose(merged[2], [0.05, 0.3, 0.15])
    np.testing.assert_allclose(masses, [1.0, 1.0, 0.5])
    merged_t, masses_t = group_distributions(torch.tensor(DIST[:3]), t, groups, side="teacher")
    assert merged_t.shape == (3, 3) and masses_t.tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------------------------
# tiny tokenizers end to end
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TEXTS))
def test_tiny_pairs_align_exactly(name, bpe_big, bpe_small, spm, wordpiece):
    text = TEXTS[name]
    for a, b in [(bpe_big, bpe_small), (bpe_big, spm), (spm, bpe_small), (bpe_big, wordpiece)]:
        rep = tokenization_report(a, b, text)
        check_groups(rep.groups, rep.teacher, rep.student)
        assert 0.0 <= rep.misalignment_rate <= 1.0
        assert rep.common_boundaries[0] == 0 and rep.common_boundaries[-1] == len(text.encode())
        for g in rep.groups:
            assert g.byte_span[0] in rep.common_boundaries and g.byte_span[1] in rep.common_boundaries
        pairs = positional_alignment(rep.teacher, rep.student)
        n = min(len(rep.teacher) - rep.teacher.first_predicted, len(rep.student) - rep.student.first_predicted)
        assert len(pairs) == n


def test_chain_rule_group_probability_equals_sequence_probability(bpe_big, bpe_small, rng):
    text = TEXTS["emoji"]
    t, s = tokenize_with_offsets(bpe_big, text), tokenize_with_offsets(bpe_small, text)
    V = len(bpe_small)
    logits = rng.normal(size=(len(s), V))
    dist = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for g in byte_offset_alignment(t, s):
        v, m = merge_group(dist, s.ids, g.student_tokens)
        seq = np.prod([dist[j, s.ids[j]] for j in g.student_tokens])
        assert v[s.ids[g.student_tokens[0]]] == pytest.approx(seq)
        assert v.sum() == pytest.approx(m)


# --------------------------------------------------------------------------------------------
# normalization and vocab overlap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, kind, expected",
    [
        ("ĠParis", "auto", " Paris"),
        ("Ċ", "auto", "\n"),
        ("ĊĊ", "byte_level", "\n\n"),
        ("ĠcafÃ©", "auto", " café"),
        ("ðŁ", "auto", "\\xf0\\x9f"),
        ("▁Paris", "auto", " Paris"),
        ("<0x0A>", "auto", "\n"),
        ("<0xF0>", "sentencepiece", "\\xf0"),
        ("café", "sentencepiece", "café"),
        ("plain", "auto", "plain"),
        ("東京", "auto", "東京"),
        ("##ing", "plain", "##ing"),
    ],
)
def test_normalize_token(raw, kind, expected):
    assert normalize_token(raw, kind=kind) == expected


def test_bytes_to_unicode_roundtrip():
    m = bytes_to_unicode()
    assert len(set(m.values())) == 256
    assert normalize_token("".join(m[b] for b in "Grüße 🍕".encode()), "byte_level") == "Grüße 🍕"


def test_vocab_strings_and_overlap(bpe_big, spm):
    vb, vs = vocab_strings(bpe_big), vocab_strings(spm)
    assert len(vb) == len(bpe_big) and len(vs) == len(spm)
    assert vocab_strings(spm, vocab_size=len(spm) + 5)[-5:] == [""] * 5
    assert len(vocab_strings(spm, vocab_size=10)) == 10
    assert vs[spm.convert_tokens_to_ids("▁the")] == " the"
    assert vs[spm.convert_tokens_to_ids("<0x41>")] == "A"
    ov = vocab_overlap(vb, vs)
    assert ov.teacher_size == len(vb) and ov.student_size == len(vs)
    assert ov.shared == len(({*vb} & {*vs}) - {""})
    assert {vb[i] for i in ov.teacher_index} == {vs[i] for i in ov.student_index}
    assert " the" in {vb[i] for i in ov.teacher_index}
    assert ov.shared_fraction_teacher == pytest.approx(ov.teacher_index.size / len(vb))


def test_covered_mass_numpy_and_torch():
    ov = vocab_overlap(["x", "y", "z", ""], ["", "y", "x"])
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.5, 0.0]])
    np.testing.assert_allclose(covered_mass(p, ov, "teacher"), [0.3, 0.5])
    assert covered_mass(np.array([0.2, 0.3, 0.5]), ov, "student") == pytest.approx(0.8)
    torch.testing.assert_close(
        covered_mass(torch.tensor(p), ov, "teacher"), torch.tensor([0.3, 0.5], dtype=torch.float64)
    )
    with pytest.raises(ValueError):
        covered_mass(p, ov, "both")


# --------------------------------------------------------------------------------------------
# real tokenizers (slow): the default pair is fetched if needed (as CI does on a fresh
# machine); Gemma only takes part where it is already cached (`uld-explorer models fetch Gemma-3-270M`)
# --------------------------------------------------------------------------------------------

SMOL, QWEN, GEMMA = "SmolLM2-135M-Instruct", "Qwen2.5-Coder-0.5B-Instruct", "Gemma-3-270M"


def _load(name):
    zoo.fetch(name)  # a no-op when cached
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(zoo.model_dir(name), local_files_only=True)


@pytest.fixture(scope="module")
def smol():
    return _load(SMOL)


@pytest.fixture(scope="module")
def qwen():
    return _load(QWEN)


@pytest.fixture(scope="module")
def gemma():
    return _load(GEMMA)


@pytest.fixture(scope="module")
def real_tokenizers(smol, qwen, request):
    out = {SMOL: smol, QWEN: qwen}
    if zoo.is_cached(GEMMA):
        out[GEMMA] = request.getfixturevalue("gemma")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TEXTS))
def test_real_tokenizers_reproduce_bytes(name, real_tokenizers):
    text = TEXTS[name]
    for tok in real_tokenizers.values():
        tz = tokenize_with_offsets(tok, text)
        check_invariants(tz)
        assert tz.ids == tuple(tok(text, add_special_tokens=False)["input_ids"])


@pytest.mark.slow
def test_real_bos_handling(real_tokenizers):
    assert tokenize_with_offsets(real_tokenizers[SMOL], "Hi there").bos_id is None
    assert tokenize_with_offsets(real_tokenizers[QWEN], "Hi there").bos_id is None
    if GEMMA in real_tokenizers:
        g = real_tokenizers[GEMMA]
        tz = tokenize_with_offsets(g, "Hi there")
        assert tz.bos_id == g.bos_token_id and tz.first_predicted == 0
        assert list(tz.model_input_ids) == list(g("Hi there")["input_ids"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TEXTS))
def test_real_pairs_align_exactly(name, real_tokenizers):
    text = TEXTS[name]
    names = list(real_tokenizers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rep = tokenization_report(real_tokenizers[a], real_tokenizers[b], text)
            check_groups(rep.groups, rep.teacher, rep.student)
            assert 0.0 <= rep.misalignment_rate <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cjk", "emoji"])
def test_real_positional_misalignment_on_multibyte(name, smol, qwen):
    t, s = tokenize_with_offsets(qwen, TEXTS[name]), tokenize_with_offsets(smol, TEXTS[name])
    assert 0.0 < misalignment_rate(t, s) <= 1.0


@pytest.mark.slow
def test_real_nfd_text_uses_offsets_fallback(qwen):
    text = "cafe\u0301 au lait"  # Qwen's NFC normalizer composes e + U+0301
    tz = tokenize_with_offsets(qwen, text)
    check_invariants(tz)
    assert "fé" in "".join(tz.strings)


@pytest.mark.slow
def test_real_truncation_warns(smol):
    with pytest.warns(UserWarning, match="cut"):
        tz = tokenize_with_offsets(smol, TEXTS["english"] * 4, max_tokens=7)
    assert len(tz.ids) == 7
    check_invariants(tz)


@pytest.mark.slow
@pytest.mark.parametrize("text", ["", " \n "])
def test_real_empty_text_raises(text, smol):
    with pytest.raises(ValueError):
        tokenize_with_offsets(smol, text)


@pytest.mark.slow
def test_real_vocab_overlap_smol_qwen(smol, qwen):
    vq, vs = vocab_strings(qwen), vocab_strings(smol)
    assert len(vq) == 151_936 and len(vs) == 49_152
    assert vq[151_665].startswith("[PAD")
    ov = vocab_overlap(vq, vs)
    pid_q, pid_s = qwen.convert_tokens_to_ids("ĠParis"), smol.convert_tokens_to_ids("ĠParis")
    assert vq[pid_q] == vs[pid_s] == " Paris"
    assert pid_q in set(ov.teacher_index.tolist()) and pid_s in set(ov.student_index.tolist())
    assert 10_000 < ov.shared < 49_152
    assert 0 < ov.shared_fraction_teacher < ov.shared_fraction_student < 1
    print(
        f"\nSmolLM2/Qwen overlap: shared={ov.shared} teacher_ids={ov.teacher_index.size} "
        f"({ov.shared_fraction_teacher:.3f}) student_ids={ov.student_index.size} ({ov.shared_fraction_student:.3f})"
    )


def test_token_bytes_is_exact_where_readable_strings_collide():
    lone = token_bytes("ª", "byte_level")  # GPT-2's character for byte 0xAA
    literal = token_bytes("\\xaa", "byte_level")  # a token whose TEXT is backslash, x, a, a
    assert lone == b"\xaa" and literal == b"\\xaa" and lone != literal
    assert normalize_token("ª", "byte_level") == normalize_token("\\xaa", "byte_level") == "\\xaa"
    m = match_strings([lone, literal], [b"\xaa"])
    assert m.teacher_group.tolist() == [0, -1]  # only the real byte matches
    with pytest.raises(ValueError, match="unknown kind"):
        token_bytes("a", "wordpiece")


@pytest.mark.slow
def test_real_vocab_bytes_match_exactly(smol, qwen):
    """Qwen2.5 has a lone byte 0xAA (id 103) AND a token spelling the four characters \\xaa
    (id 95269): equal as readable strings, different bytes. Matching on bytes gives GOLD's raw
    one-to-one vocabulary match for this byte-level pair (39,237 ids on each side)."""
    bq, bs = vocab_bytes(qwen, 151_936), vocab_bytes(smol, 49_152)
    vq = vocab_strings(qwen, 151_936)
    assert vq[103] == vq[95269] == "\\xaa" and bq[103] == b"\xaa" and bq[95269] == b"\\xaa"
    assert [readable_ for readable_ in vq[:300]] == [b.decode("utf-8", "backslashreplace") for b in bq[:300]]
    m = match_strings(bq, bs)
    assert m.teacher_matched.size == m.student_matched.size == m.S == 39_237 and m.one_to_one
    assert m.teacher_group[95269] == -1 and m.teacher_group[103] >= 0
    # GOLD's own matching: raw vocabulary keys (both tokenizers spell bytes the GPT-2 way)
    raw_q, raw_s = qwen.get_vocab(), smol.get_vocab()
    assert sum(t in raw_s for t in raw_q) == 39_237
