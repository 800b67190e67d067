"""Validation, softmax, top-k + rest, synthetic pairs, and the one-pair summary.

Teacher ``p`` first, student ``q`` second. Every bad input must raise ValueError (TypeError for
wrong types) with a message that names the offending argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy

from uld_explorer import (
    SUM_TOLERANCE,
    check_distribution,
    divergence_summary,
    exact_ot,
    js_divergence,
    kl_divergence,
    rank_space_ot,
    reverse_kl_divergence,
    softmax,
    sum_tolerance,
    synthetic_pair,
    token_space_ot_top_k,
    top_k_with_rest,
    total_variation,
    uld_distance,
    value_space_ot,
)

# ------------------------------------------------------------------------------------------------
# the bad-input matrix: every public entry point x every kind of bad input x both argument slots
# ------------------------------------------------------------------------------------------------

GOOD = np.array([0.2, 0.3, 0.5])


def _tokens(x):
    n = np.shape(x)[-1] if np.ndim(x) else 1
    return [f"t{i}" for i in range(n)]


# (function name, caller(first, second), names of the two arguments in messages)
ENTRY_POINTS = {
    "uld_distance": (lambda a, b: uld_distance(a, b), ("p", "q")),
    "kl_divergence": (lambda a, b: kl_divergence(a, b), ("p", "q")),
    "reverse_kl_divergence": (lambda a, b: reverse_kl_divergence(a, b), ("p", "q")),
    "js_divergence": (lambda a, b: js_divergence(a, b), ("p", "q")),
    "total_variation": (lambda a, b: total_variation(a, b), ("p", "q")),
    "value_space_ot": (lambda a, b: value_space_ot(a, b), ("p", "q")),
    "rank_space_ot": (lambda a, b: rank_space_ot(a, b), ("p", "q")),
    "token_space_ot_top_k": (
        lambda a, b: token_space_ot_top_k(a, b, _tokens(a), _tokens(b), k=2),
        ("p", "q"),
    ),
    "exact_ot": (
        lambda a, b: exact_ot(a, b, np.ones((np.shape(a)[-1] if np.ndim(a) else 1, np.shape(b)[-1] if np.ndim(b) else 1))),
        ("a", "b"),
    ),
}

BAD_VALUES = {
    "negative": (np.array([-0.1, 0.6, 0.5]), r"must be non-negative"),
    "nan": (np.array([np.nan, 0.5, 0.5]), r"must be finite"),
    "inf": (np.array([np.inf, 0.5, 0.5]), r"must be finite"),
    "not summing to 1": (np.array([0.2, 0.3, 0.6]), r"must sum to 1"),
    "empty": (np.zeros(0), r"must not be empty"),
    "scalar": (np.float64(1.0), r"must have a vocabulary axis"),
    "torch negative": (torch.tensor([-0.1, 0.6, 0.5], dtype=torch.float64), r"must be non-negative"),
    "torch nan": (torch.tensor([0.5, float("nan"), 0.5], dtype=torch.float64), r"must be finite"),
}


@pytest.mark.parametrize("fn_name", list(ENTRY_POINTS))
@pytest.mark.parametrize("bad_name", list(BAD_VALUES))
@pytest.mark.parametrize("slot", [0, 1])
def test_bad_distribution_named_in_error(fn_name, bad_name, slot):
    fn, names = ENTRY_POINTS[fn_name]
    bad, match = BAD_VALUES[bad_name]
    good = torch.from_numpy(GOOD) if isinstance(bad, torch.Tensor) else GOOD
    args = (bad, good) if slot == 0 else (good, bad)
    with pytest.raises(ValueError, match=rf"^{names[slot]} {match}"):
        fn(*args)


@pytest.mark.parametrize("fn_name", ["uld_distance", "kl_divergence", "js_divergence", "total_variation", "token_space_ot_top_k"])
def test_mismatched_batch_shapes(fn_name):
    fn, _ = ENTRY_POINTS[fn_name]
    p = np.full((2, 5), 0.2)
    q = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"p and q must have the same batch shape"):
        fn(p, q)


@pytest.mark.parametrize("fn_name", ["value_space_ot", "rank_space_ot", "exact_ot"])
def test_exact_solvers_reject_batches(fn_name):
    fn, names = ENTRY_POINTS[fn_name]
    with pytest.raises(ValueError, match=rf"^{names[0]} must be ONE distribution"):
        fn(np.full((2, 5), 0.2), np.full(4, 0.25))


@pytest.mark.parametrize("fn_name", ["uld_distance", "kl_divergence", "js_divergence", "total_variation", "token_space_ot_top_k"])
def test_numpy_torch_mixed_is_type_error(fn_name):
    fn, _ = ENTRY_POINTS[fn_name]
    with pytest.raises(TypeError, match=r"p and q must both be NumPy arrays or both torch tensors"):
        fn(GOOD, torch.from_numpy(GOOD))
    with pytest.raises(TypeError, match=r"got p a torch tensor, q a NumPy array"):
        fn(torch.from_numpy(GOOD), GOOD)


@pytest.mark.parametrize("fn_name", list(ENTRY_POINTS))
@pytest.mark.parametrize("bad", [None, {"a": 1.0}, "abc", ["a", "b"], np.array(["x", "y"]), np.array([1 + 0j, 0j])])
def test_wrong_types_are_type_errors_naming_the_argument(fn_name, bad):
    fn, names = ENTRY_POINTS[fn_name]
    with pytest.raises(TypeError, match=rf"^{names[0]} must"):
        fn(bad, GOOD)
    with pytest.raises(TypeError, match=rf"^{names[1]} must"):
        fn(GOOD, bad)


def test_lists_and_integer_arrays_are_accepted():
    assert float(uld_distance([0.25, 0.75], [1, 0])) == pytest.approx(0.5)
    assert float(uld_distance(np.array([0, 1]), np.array([1, 0]))) == 0.0
    assert float(kl_divergence(torch.tensor([0, 1]), torch.tensor([0.5, 0.5], dtype=torch.float64))) == pytest.approx(math.log(2))


# ------------------------------------------------------------------------------------------------
# the sum-to-1 tolerance per dtype
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,dtype_name",
    [
        (lambda x: np.asarray(x, dtype=np.float64), "float64"),
        (lambda x: np.asarray(x, dtype=np.float32), "float32"),
        (lambda x: torch.tensor(x, dtype=torch.float64), "float64"),
        (lambda x: torch.tensor(x, dtype=torch.float32), "float32"),
    ],
)
def test_sum_tolerance_per_dtype(make, dtype_name):
    tol = SUM_TOLERANCE[dtype_name]
    assert tol == {"float64": 1e-6, "float32": 1e-4}[dtype_name]
    inside = make([0.5, 0.5 + tol / 2])
    assert sum_tolerance(inside) == tol
    check_distribution(inside, "p")  # accepted
    # sorted: (0.5 + tol/2, 0.5) vs (1, 0): (0.5 - tol/2) + 0.5
    assert float(uld_distance(inside, make([1.0]))) == pytest.approx(1 - tol / 2, abs=1e-6)
    below = make([0.5, 0.5 - tol / 2])
    check_distribution(below, "q")
    for off in (make([0.5, 0.5 + 5 * tol]), make([0.5, 0.5 - 5 * tol])):
        with pytest.raises(ValueError, match=rf"^q must sum to 1 .* tolerance for {dtype_name} is {tol:g}"):
            check_distribution(off, "q")
        with pytest.raises(ValueError, match=r"^p must sum to 1"):
            uld_distance(off, make([1.0]))


def test_sum_error_reports_batch_index():
    x = np.full((3, 4), 0.25)
    x[2, 1] = 0.3
    with pytest.raises(ValueError, match=r"index \(2,\)"):
        check_distribution(x, "p")
    x = np.full((3, 4), 0.25)
    x[1, 0] = -0.25
    x[1, 1] = 0.75
    with pytest.raises(ValueError, match=r"^p must be non-negative: got -0.25 at batch index \(1,\)"):
        check_distribution(x, "p")


def test_empty_batch_is_fine():
    assert check_distribution(np.zeros((0, 3))).shape == (0, 3)


# ------------------------------------------------------------------------------------------------
# softmax
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [0.1, 0.5, 1.0, 2.0, 7.0])
def test_softmax_matches_scipy(rng, T):
    z = rng.normal(0, 3, size=(2, 3, 11))
    exp = sp_softmax(z / T, axis=-1)
    np.testing.assert_allclose(softmax(z, T), exp, rtol=1e-12, atol=1e-15)
    zt = torch.from_numpy(z)
    got = softmax(zt, T)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.numpy(), exp, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax(z.tolist(), T), exp, rtol=1e-12, atol=1e-15)


def test_softmax_masking_and_differentiable():
    np.testing.assert_allclose(softmax(np.array([-np.inf, 0.0, 0.0])), [0.0, 0.5, 0.5])
    z = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: softmax(x, 1.5), (z,))


@pytest.mark.parametrize("T", [0, 0.0, -1.0, float("nan"), float("inf"), "1", None])
def test_softmax_bad_temperature(T):
    with pytest.raises(ValueError, match=r"^temperature must be a finite number > 0"):
        softmax(np.zeros(3), T)


@pytest.mark.parametrize("to", [np.asarray, torch.tensor])
def test_softmax_nan_logits(to):
    with pytest.raises(ValueError, match=r"^logits must not contain NaN"):
        softmax(to([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"^student_logits must not contain NaN"):
        softmax(to([0.0, float("nan")]), name="student_logits")
    with pytest.raises(ValueError, match=r"^logits must have a non-empty last"):
        softmax(to([]))


# ------------------------------------------------------------------------------------------------
# top-k with rest
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 5, 9, 10, 50])
def test_top_k_with_rest_matches_sort(rng, k):
    p = rng.dirichlet(np.full(9, 0.5))
    t = top_k_with_rest(p, k)
    kk = min(k, 9)
    top = np.sort(p)[::-1][:kk]
    np.testing.assert_allclose(t.probs[:-1], top, rtol=0, atol=0)
    np.testing.assert_array_equal(p[t.index], top)
    exp_rest = 1 - top.sum() if k < 9 else 0.0
    assert t.truncated_mass == pytest.approx(exp_rest, abs=1e-12)
    assert t.probs[-1] == t.truncated_mass
    assert t.probs.sum() == pytest.approx(1.0, abs=1e-12)
    tt = top_k_with_rest(torch.from_numpy(p), k)
    np.testing.assert_array_equal(tt.index, t.index)


def test_top_k_ties_lower_index_first():
    t = top_k_with_rest(np.array([0.2, 0.3, 0.2, 0.3]), 3)
    assert t.index.tolist() == [1, 3, 0]
    assert t.truncated_mass == pytest.approx(0.2)


@pytest.mark.parametrize("k", [0, -1, 1.5, "2", None])
def test_top_k_bad_k(k):
    with pytest.raises(ValueError, match=r"^k must be a positive integer"):
        top_k_with_rest(GOOD, k)


def test_top_k_bad_p():
    with pytest.raises(ValueError, match=r"^p must be one distribution of shape \(V,\)"):
        top_k_with_rest(np.full((2, 2), 0.5), 1)
    with pytest.raises(ValueError, match=r"^q must sum to 1"):
        top_k_with_rest(np.array([0.5, 0.6]), 1, name="q")


# ------------------------------------------------------------------------------------------------
# synthetic pairs
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("V_t,V_s", [(12, 8), (8, 12), (6, 6), (1, 3)])
def test_synthetic_pair_matches_its_definition(V_t, V_s):
    p, q = synthetic_pair(V_t, V_s, teacher_temperature=2.0, student_temperature=0.5, shift=1, seed=3)
    z = np.random.default_rng(3).normal(0.0, 2.0, size=max(V_t, V_s))
    np.testing.assert_allclose(p, sp_softmax(z[:V_t] / 2.0), rtol=1e-12)
    np.testing.assert_allclose(q, sp_softmax(np.roll(z, 1)[:V_s] / 0.5), rtol=1e-12)
    check_distribution(p, "p")
    check_distribution(q, "q")
    p2, q2 = synthetic_pair(V_t, V_s, teacher_temperature=2.0, student_temperature=0.5, shift=1, seed=3)
    np.testing.assert_array_equal(p, p2)  # deterministic per seed
    np.testing.assert_array_equal(q, q2)


@pytest.mark.parametrize("seed", range(5))
def test_permuted_student_identity_blindness(seed):
    p, q = synthetic_pair(10, 10, permute_student=True, seed=seed)
    np.testing.assert_allclose(np.sort(p), np.sort(q), rtol=0, atol=0)
    assert not np.array_equal(p, q)
    assert float(uld_distance(p, q)) == 0.0  # ULD cannot see the permutation
    assert float(kl_divergence(p, q)) > 1e-3  # KL can
    assert float(kl_divergence(p, q)) == pytest.approx(entropy(p, q), rel=1e-9)
    assert float(total_variation(p, q)) > 1e-3


@pytest.mark.parametrize("kw", [{"V_t": 0}, {"V_s": 0}, {"V_t": -3}, {"V_t": 2.5}])
def test_synthetic_pair_bad_sizes(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer"):
        synthetic_pair(**kw)


def test_synthetic_pair_bad_temperature():
    with pytest.raises(ValueError, match=r"^student_temperature must be a finite number > 0"):
        synthetic_pair(4, 4, student_temperature=0.0)


# ------------------------------------------------------------------------------------------------
# divergence_summary
# ------------------------------------------------------------------------------------------------


def _rows(s):
    return {r["key"]: r for r in s.rows()}


def test_summary_same_vocab_equals_direct_calls():
    p, q = synthetic_pair(9, 9, shift=2, seed=4)
    s = divergence_summary(p, q)
    rows = _rows(s)
    assert s.kl_undefined_reason is None
    assert rows["kl"]["value"] == pytest.approx(entropy(p, q), rel=1e-9)
    assert rows["reverse_kl"]["value"] == pytest.approx(entropy(q, p), rel=1e-9)
    assert rows["js"]["value"] == float(js_divergence(p, q))
    assert rows["tv"]["value"] == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-12)
    assert rows["uld"]["value"] == float(uld_distance(p, q))
    assert rows["value_ot"]["value"] == pytest.approx(value_space_ot(p, q).value, abs=1e-12)
    assert rows["uld_half"]["value"] == pytest.approx(rank_space_ot(p, q).value, abs=1e-12)
    assert rows["uld_half"]["value"] == pytest.approx(float(uld_distance(p, q)) / 2, abs=1e-12)
    # the two [0, 1] numbers side by side: ULD/2 <= token-space OT (strings unique, no truncation)
    assert rows["uld_half"]["scale"] == rows["token_ot_string"]["scale"] == "[0, 1]"
    assert rows["uld_half"]["value"] <= rows["token_ot_string"]["value"] + 1e-12
    assert not s.token_ot_below_uld_half
    # one vocabulary: KL on the shared strings IS the KL (every string shared, full coverage)
    assert rows["kl_shared"]["value"] == pytest.approx(rows["kl"]["value"], rel=1e-12)
    assert s.shared_coverage == pytest.approx((1.0, 1.0)) and s.shared_strings == 9
    tok = [f"tok{i}" for i in range(9)]
    # synthetic tokens are shared by index: string cost OT = TV here
    assert rows["token_ot_string"]["value"] == pytest.approx(
        token_space_ot_top_k(p, q, tok, tok, k=500).value, abs=1e-12
    )
    assert rows["token_ot_string"]["value"] == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-9)
    assert rows["uld"]["value"] == pytest.approx(rows["value_ot"]["value"], abs=1e-9)


def test_summary_different_vocab_kl_is_none_with_reason():
    p, q = synthetic_pair(12, 7, seed=2)
    s = divergence_summary(p, q, top_k=4)
    assert (s.V_t, s.V_s) == (12, 7)
    assert s.kl is None and s.reverse_kl is None and s.js is None and s.tv is None
    assert "shared vocabulary" in s.kl_undefined_reason and "V_t=12" in s.kl_undefined_reason
    rows = _rows(s)
    for name in ("kl", "reverse_kl", "js", "tv"):
        assert rows[name]["value"] is None
        assert "undefined" in rows[name]["note"]
    assert rows["uld"]["value"] == pytest.approx(
        float(np.abs(np.sort(np.pad(q, (0, 5)))[::-1] - np.sort(p)[::-1]).sum()), abs=1e-12
    )
    t = rows["token_ot_string"]
    assert t["value"] == pytest.approx(
        token_space_ot_top_k(p, q, [f"tok{i}" for i in range(12)], [f"tok{i}" for i in range(7)], k=4).value
    )
    assert "truncated mass" in t["note"]


def test_summary_torch_input_and_errors():
    p, q = synthetic_pair(5, 6, seed=0)
    s = divergence_summary(torch.from_numpy(p), torch.from_numpy(q))
    assert s.uld == pytest.approx(float(uld_distance(p, q)), abs=1e-15)
    with pytest.raises(ValueError, match=r"single distributions"):
        divergence_summary(np.full((2, 2), 0.5), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"^q must sum to 1"):
        divergence_summary(p, q * 2)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_softmax_rejects_positive_inf_but_accepts_minus_inf_mask(lib):
    bad = [0.0, float("inf"), 1.0]
    masked = [0.0, float("-inf"), 0.0]
    wrap = (lambda x: np.array(x)) if lib == "numpy" else (lambda x: torch.tensor(x, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^logits must not contain NaN or \+inf"):
        softmax(wrap(bad))
    out = np.asarray(softmax(wrap(masked)))
    np.testing.assert_allclose(out, [0.5, 0.0, 0.5])


@pytest.mark.parametrize("seed", range(20))
def test_top_k_index_equals_stable_argsort_with_ties(seed):
    from uld_explorer.distributions import top_k_index

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=rng.integers(1, 60)).astype(float)  # many ties
    for k in (1, 2, 5, x.size, x.size + 3):
        np.testing.assert_array_equal(top_k_index(x, k), np.argsort(-x, kind="stable")[:k])
