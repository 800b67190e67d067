"""MinED (FuseLLM's minimum-edit-distance vocabulary mapping) and the KL after it.

Oracles: hand-made vocabularies whose mapping is written out here, a plain-Python Levenshtein over
bytes searched by brute force (lowest student id on ties), and KL restated with NumPy on the
mapped vector built by hand. Teacher ``p`` first, student ``q`` second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import uld_explorer as ux
from uld_explorer.text import MinEDMapper, SharedStrings, mined_mapper


def lev(a: bytes, b: bytes) -> int:
    """Levenshtein distance of two byte strings, the textbook dynamic programme."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def as_bytes(key) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def brute_force(teacher: list, student: list) -> tuple[list[int], list[int]]:
    """Each teacher key's nearest student key: min distance, then the lowest id; empty keys: -1."""
    targets, dists = [], []
    for t in teacher:
        if not t:
            targets.append(-1)
            dists.append(-1)
            continue
        d = [lev(as_bytes(t), as_bytes(s)) if s else 10**9 for s in student]
        j = int(np.argmin(d))
        targets.append(j)
        dists.append(d[j])
    return targets, dists


# ------------------------------------------------------------------------------------ the mapping


def test_exact_matches_first_then_one_edit_then_the_lowest_id_on_ties():
    teacher = ["the", "then", "cat", "dgo", "a", "", "zzzz"]
    student = ["", "hte", "the", "the", "than", "at", "dog", "b"]
    m = MinEDMapper(teacher, student).map(np.arange(len(teacher)))
    # 'the': exact, the lowest of the two ids spelling it (2, not 3); 'then': one insertion from
    # 'the' (2), one substitution from 'than' (4): the lower id; 'cat' -> 'at' (one deletion);
    # 'dgo' -> 'dog' (2 substitutions, nothing closer); 'a' -> 'at' (1) and 'b' (1): id 5;
    # '' (an id without text): unmapped; 'zzzz' -> 'hte' (4 edits, as 'the', 'than' and 'dog': the lowest id)
    assert m.student_index.tolist() == [2, 2, 5, 6, 5, -1, 1]
    assert m.distance.tolist() == [0, 1, 1, 2, 1, -1, 4]
    assert m.exact.tolist() == [True, False, False, False, False, False, False]
    assert (m.student_index, m.distance) is not None and brute_force(teacher, student) == (
        m.student_index.tolist(), m.distance.tolist())


def test_spellings_are_bytes_unicode_counts_byte_edits():
    # bytes keys as vocab_bytes gives them; str keys are their UTF-8 bytes
    teacher = [" caf\xc3\xa9".encode("latin-1"), "naïve".encode(), b"\xaa", "東京".encode()]
    student = [" cafe".encode(), "naive".encode(), "\\xaa".encode(), "東".encode(), " café".encode()]
    m = MinEDMapper(teacher, student).map(np.arange(4))
    assert m.student_index.tolist() == [4, 1, 3, 3]
    # ' café' exact (bytes and str spell it alike); 'naïve' vs 'naive': ï is 2 bytes (c3 af) for i: 2 edits;
    # the lone byte 0xaa is no relative of the 4 characters '\xaa' (4 edits): 東 (3 bytes, 3 edits) is nearer;
    # 東京 -> 東: 3 byte deletions
    assert m.distance.tolist() == [0, 2, 3, 3]
    assert brute_force(teacher, student) == (m.student_index.tolist(), m.distance.tolist())
    # the same vocabulary as strings maps the same
    as_str = MinEDMapper([t.decode("utf-8", "replace") for t in teacher[:2]], [s.decode() for s in student])
    assert as_str.map([0, 1]).student_index.tolist() == [4, 1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text("abcé", max_size=4), min_size=1, max_size=8),
       st.lists(st.text("abcé", max_size=4), min_size=1, max_size=8))
def test_the_mapping_is_the_brute_force_nearest_spelling(teacher, student):
    m = MinEDMapper(teacher, student).map(np.arange(len(teacher)))
    want_t, want_d = brute_force(teacher, student)
    if not any(student):  # no student spelling at all: nothing to map to but exact twins (none)
        want_t, want_d = [-1] * len(teacher), [-1] * len(teacher)
    assert m.student_index.tolist() == want_t and m.distance.tolist() == want_d


def test_the_mapper_is_cached_per_vocabulary_pair_and_searches_only_what_is_asked():
    v = SharedStrings.of_tokens(["ab", "abc", "xyz", "q"], ["ab", "x"])
    mapper = mined_mapper(v)
    assert mined_mapper(v) is mapper and mined_mapper(SharedStrings.of_tokens(["ab"], ["ab"])) is not mapper
    assert mapper.target.tolist() == [0, -1, -1, -1]  # exact twins at once, nothing searched yet
    mapper.map([1])
    assert mapper.target.tolist() == [0, 0, -1, -1]  # 'abc' -> 'ab' found and kept; 'xyz', 'q' untouched


# ------------------------------------------------------------------------------------ the KL


def test_mined_kl_restated_by_hand():
    teacher = ["the", " cat", " sits", "on", "mat!", ""]
    student = ["the", " cat", " sit", "in", "mat"]
    p = np.array([0.30, 0.25, 0.20, 0.10, 0.10, 0.05])
    q = np.array([0.20, 0.30, 0.15, 0.25, 0.10])
    r = ux.mined_kl(p, q, teacher, student, k=5)
    # by hand: the -> the, ' cat' -> ' cat' (exact); ' sits' -> ' sit' (1), 'on' -> 'in' (1), 'mat!' -> 'mat' (1);
    # '' has no text: unmapped
    mapped = np.array([0.30, 0.25, 0.20, 0.10, 0.10]) / 0.95
    assert r.p_mapped == pytest.approx(mapped, abs=1e-15)
    assert r.value == pytest.approx(float(np.sum(mapped * np.log(mapped / q))), abs=1e-12)
    assert (r.exact_mass, r.approx_mass, r.unmapped_mass) == pytest.approx((0.55, 0.40, 0.05), abs=1e-12)
    assert r.mean_distance == pytest.approx((0.2 + 0.1 + 0.1) / 0.95, abs=1e-12)
    # two teacher tokens onto one student token: their mass adds up there
    r2 = ux.mined_kl([0.5, 0.5], [0.9, 0.1], ["cat", "cats"], ["cat", "dog"], k=2)
    assert r2.p_mapped.tolist() == [1.0, 0.0] and r2.value == pytest.approx(np.log(1 / 0.9), abs=1e-12)


def test_only_the_top_k_is_searched_exact_twins_count_everywhere():
    teacher, student = ["aa", "bb", "cc", "dd"], ["aa", "bx", "dd"]
    p = np.array([0.1, 0.5, 0.3, 0.1])  # top-2: 'bb' (0.5) and 'cc' (0.3)
    r = ux.mined_kl(p, [0.2, 0.5, 0.3], teacher, student, k=2)
    assert (r.exact_mass, r.approx_mass, r.unmapped_mass) == pytest.approx((0.2, 0.8, 0.0), abs=1e-12)
    r1 = ux.mined_kl(p, [0.2, 0.5, 0.3], teacher, student, k=1)  # 'cc' is not searched now: unmapped
    assert (r1.exact_mass, r1.approx_mass, r1.unmapped_mass) == pytest.approx((0.2, 0.5, 0.3), abs=1e-12)
    # a shared mapper that searched 'cc' for another row gives the same answer: no history in the value
    mapper = MinEDMapper(teacher, student)
    mapper.map([0, 1, 2, 3])
    again = ux.mined_kl(p, [0.2, 0.5, 0.3], k=1, mapper=mapper)
    assert again.value == pytest.approx(r1.value, abs=1e-15) and again.unmapped_mass == pytest.approx(0.3)
    with pytest.raises(ValueError, match="vocabularies of 4 and 3 tokens"):
        ux.mined_kl([0.5, 0.5], [0.5, 0.5], mapper=mapper)


def test_the_kl_mined_row_and_its_coverage_in_the_summary_and_the_table():
    from tiny_models import tiny_student_parts, tiny_teacher
    from tiny_tokenizers import TEXTS

    from uld_explorer.compare import compare_text

    p, q = ux.synthetic_pair(20, 14, seed=0, shift=1, noise=0.5)
    s = ux.divergence_summary(p, q, top_k=50)
    r = ux.mined_kl(p, q, ux.synthetic_tokens(20), ux.synthetic_tokens(14), k=50)
    assert s.values["kl_mined"] == pytest.approx(r.value, abs=1e-15)
    assert f"{r.exact_mass:.0%} of p maps to an identical spelling" in s.notes["kl_mined"]
    assert r.exact_mass == pytest.approx(s.shared_coverage[0], abs=1e-12)  # tok0..tok13: the shared strings

    tok, model = tiny_student_parts()
    student = ux.zoo.LoadedModel("tiny-gpt2-spm", tok, model)
    off = compare_text(tiny_teacher(), student, TEXTS["english"], top_k=20, edit_top_k=5)
    assert all(r.values["kl_mined"] is None for r in off)  # ~40 ms per position on real pairs: computed when asked
    table = compare_text(tiny_teacher(), student, TEXTS["english"], top_k=20, edit_top_k=5, mined=True)
    assert {"kl_mined", "mined_exact_coverage", "mined_approx_coverage", "mined_mean_edit"} <= set(table.measures)
    for row in table:
        v = row.values
        assert 0 <= v["mined_exact_coverage"] + v["mined_approx_coverage"] <= 1 + 1e-12
        assert v["kl_mined"] >= 0 and v["mined_mean_edit"] >= 0
        assert v["mined_exact_coverage"] >= v["kl_teacher_coverage"] - 1e-6  # exact twins: the shared strings
        # (the coverage of KL is summed in the vectors' float32)


# ------------------------------------------------------------------------------------ real vocabularies


@pytest.mark.slow
def test_a_real_vocabulary_pair_maps_the_top_k_in_seconds():
    """Qwen2's 151,665 byte-level ids onto GPT-2's 50,257 (tokenizer-only zoo entries): the top-500
    of a peaked distribution are mapped, exactly where GPT-2 has the same bytes."""
    try:
        teacher, student = ux.load_tokenizer("Qwen2"), ux.load_tokenizer("GPT-2")
    except Exception as err:  # noqa: BLE001 - not fetched on this machine, and offline
        pytest.skip(f"the zoo's tokenizers are not here: {err}")
    from uld_explorer.text import shared_strings_of

    vocab = shared_strings_of(teacher, student, len(teacher), len(student))
    rng = np.random.default_rng(0)
    p, q = (ux.softmax(rng.normal(0.0, 3.0, len(tok))) for tok in (teacher, student))  # peaked, no zeros
    t0 = time.perf_counter()
    r = ux.mined_kl(p, q, k=500, mapper=mined_mapper(vocab))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ux.mined_kl(p, q, k=500, mapper=mined_mapper(vocab))
    warm = time.perf_counter() - t0
    print(f"\nMinED Qwen2 -> GPT-2, top-500: {cold:.2f} s cold, {warm * 1e3:.0f} ms cached; exact {r.exact_mass:.3f} "
          f"approx {r.approx_mass:.3f} unmapped {r.unmapped_mass:.3f}, mean {r.mean_distance:.2f} byte edits")
    assert r.exact_mass + r.approx_mass + r.unmapped_mass == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(r.value) and cold < 60 and warm < cold
    keys_t, keys_s = vocab.teacher_keys, vocab.student_keys
    paris_t, paris_s = list(keys_t).index(b" Paris"), list(keys_s).index(b" Paris")
    m = mined_mapper(vocab).map([paris_t])
    assert m.student_index.tolist() == [paris_s] and m.distance.tolist() == [0]
