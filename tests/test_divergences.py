"""KL / JS / TV, the ULD closed form (values, properties, gradients, kernels), shared vocabulary.

Teacher ``p`` first, student ``q`` second everywhere. Every expected value comes from an
independent oracle: SciPy, a plain re-statement of the paper's formula, or a Python loop.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from uld_explorer import (
    VocabularyMismatchError,
    js_divergence,
    kl_divergence,
    restrict_to_shared_vocab,
    reverse_kl_divergence,
    softmax,
    total_variation,
    uld_distance,
    uld_from_logits,
)
from uld_explorer.divergences import sorted_l1_numpy, sorted_l1_torch

PROPS = settings(max_examples=50, deadline=None)


# ------------------------------------------------------------------------------------------------
# oracles
# ------------------------------------------------------------------------------------------------


def paper_uld(p, q) -> float:
    """The paper's formula, literally: zero-pad both to n, sort descending, sum |diff|."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = max(p.size, q.size)
    ps = np.sort(np.pad(p, (0, n - p.size)))[::-1]
    qs = np.sort(np.pad(q, (0, n - q.size)))[::-1]
    return float(np.abs(ps - qs).sum())


def sign_oracle(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d ULD / d a_j and d ULD / d b_j for tie-free rows (a is the long side), by explicit loops."""
    ga = np.zeros(a.shape, dtype=np.int8)
    gb = np.zeros(b.shape, dtype=np.int8)
    n, m = a.shape[-1], b.shape[-1]
    for r in range(a.shape[0]):
        oa = np.argsort(-a[r].astype(np.float64), kind="stable")
        ob = np.argsort(-b[r].astype(np.float64), kind="stable")
        for rank in range(n):
            partner = float(b[r, ob[rank]]) if rank < m else 0.0
            s = np.sign(float(a[r, oa[rank]]) - partner)
            ga[r, oa[rank]] = s
            if rank < m:
                gb[r, ob[rank]] = -s
    return ga, gb


def T64(x):
    return torch.tensor(x, dtype=torch.float64)


def dirichlet(rng, V, alpha=1.0, size=None):
    return rng.dirichlet(np.full(V, alpha), size=size)


# hypothesis strategies: probability vectors built from lists of floats, with zeros and ties
_entry = st.one_of(
    st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0]),
)


def prob_vector(min_size=1, max_size=30):
    return (
        st.lists(_entry, min_size=min_size, max_size=max_size)
        .filter(lambda xs: sum(xs) > 1e-3)
        .map(lambda xs: np.asarray(xs, dtype=np.float64) / np.sum(xs))
    )


# ------------------------------------------------------------------------------------------------
# KL, reverse KL, JS, TV against SciPy
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("V", [1, 2, 5, 50, 1000])
@pytest.mark.parametrize("alpha", [0.05, 1.0, 5.0])
def test_kl_js_tv_match_scipy(rng, V, alpha):
    p, q = dirichlet(rng, V, alpha), dirichlet(rng, V, alpha)
    q = 0.999 * q + 0.001 / V  # KL finite
    assert float(kl_divergence(p, q)) == pytest.approx(entropy(p, q), rel=1e-9, abs=1e-12)
    assert float(reverse_kl_divergence(p, q)) == pytest.approx(entropy(q, p), rel=1e-9, abs=1e-12)
    assert float(js_divergence(p, q)) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9, abs=1e-12)
    assert float(total_variation(p, q)) == pytest.approx(0.5 * np.abs(p - q).sum(), rel=1e-12, abs=1e-15)


def test_kl_js_tv_batched_and_torch_match_scipy(rng):
    p = dirichlet(rng, 7, 0.7, size=(3, 4))
    q = dirichlet(rng, 7, 0.7, size=(3, 4))
    kl_np = kl_divergence(p, q)
    assert kl_np.shape == (3, 4)
    kl_t = kl_divergence(torch.from_numpy(p), torch.from_numpy(q))
    js_t = js_divergence(torch.from_numpy(p), torch.from_numpy(q))
    rkl_t = reverse_kl_divergence(torch.from_numpy(p), torch.from_numpy(q))
    tv_t = total_variation(torch.from_numpy(p), torch.from_numpy(q))
    assert isinstance(kl_t, torch.Tensor) and kl_t.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert kl_np[i, j] == pytest.approx(entropy(p[i, j], q[i, j]), rel=1e-9)
            assert float(kl_t[i, j]) == pytest.approx(entropy(p[i, j], q[i, j]), rel=1e-9)
            assert float(rkl_t[i, j]) == pytest.approx(entropy(q[i, j], p[i, j]), rel=1e-9)
            assert float(js_t[i, j]) == pytest.approx(jensenshannon(p[i, j], q[i, j]) ** 2, rel=1e-9)
            assert float(tv_t[i, j]) == pytest.approx(0.5 * np.abs(p[i, j] - q[i, j]).sum(), rel=1e-12)


def test_kl_hand_values():
    # KL([.5,.5] || [.9,.1]) = .5 log(.5/.9) + .5 log(.5/.1)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert float(kl_divergence([0.5, 0.5], [0.9, 0.1])) == pytest.approx(expected, rel=1e-12)
    assert float(js_divergence([1.0, 0.0], [0.0, 1.0])) == pytest.approx(math.log(2), rel=1e-12)


def test_kl_nonnegative_zero_iff_equal(rng):
    for V in (1, 3, 40):
        p = dirichlet(rng, V, 0.3)
        assert float(kl_divergence(p, p)) == 0.0
        assert float(js_divergence(p, p)) == 0.0
        assert float(kl_divergence(torch.from_numpy(p), torch.from_numpy(p))) == 0.0
    third = np.full(3, 1 / 3)  # its terms' rounding summed to -5.6e-17 before JS was clamped at 0 (hypothesis)
    assert float(js_divergence(third, third)) == 0.0
    assert float(js_divergence(torch.from_numpy(third), torch.from_numpy(third))) == 0.0
    for _ in range(20):
        p, q = dirichlet(rng, 6), dirichlet(rng, 6)
        assert not np.array_equal(p, q)
        assert float(kl_divergence(p, q)) > 0
        assert float(reverse_kl_divergence(p, q)) > 0
        assert float(js_divergence(p, q)) > 0


@given(p=prob_vector(2, 20), data=st.data())
@PROPS
def test_kl_nonnegative_property(p, data):
    q = data.draw(prob_vector(p.size, p.size))
    kl = float(kl_divergence(p, q))
    assert kl >= 0 or kl == pytest.approx(0, abs=1e-12)
    assert not math.isnan(kl)
    assert 0 <= float(js_divergence(p, q)) <= math.log(2) + 1e-12


@pytest.mark.parametrize("to", [np.asarray, T64])
def test_kl_infinite_not_nan_where_student_has_zero(to):
    p = to([0.5, 0.5])
    q = to([1.0, 0.0])
    kl = kl_divergence(p, q)
    assert math.isinf(float(kl)) and float(kl) > 0
    # reverse direction: q has the zero where p > 0 -> 0 log 0 = 0, finite
    assert float(reverse_kl_divergence(p, q)) == pytest.approx(math.log(2), rel=1e-12)
    batch = kl_divergence(to([[0.5, 0.5], [0.2, 0.8]]), to([[1.0, 0.0], [0.2, 0.8]]))
    b = np.asarray(batch, dtype=np.float64)
    assert np.isinf(b[0]) and b[1] == 0.0 and not np.isnan(b).any()


@pytest.mark.parametrize("to", [np.asarray, T64])
def test_zero_log_zero(to):
    p = np.array([0.0, 0.3, 0.0, 0.7])
    q = np.array([0.1, 0.2, 0.3, 0.4])
    kl = float(kl_divergence(to(p), to(q)))
    assert math.isfinite(kl)
    assert kl == pytest.approx(entropy(p, q), rel=1e-12)
    assert float(js_divergence(to(p), to(q))) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)


@pytest.mark.parametrize(
    "to,tiny",
    [(np.asarray, 5e-324), (lambda x: np.asarray(x, dtype=np.float32), 1.4e-45),
     (T64, 5e-324), (lambda x: torch.tensor(x, dtype=torch.float32), 1.4e-45)],
)
def test_js_bounded_with_subnormal_entry_next_to_zero(to, tiny):
    # (p_i + q_i) / 2 underflows to 0 for the smallest subnormal p_i and q_i = 0 (float32 softmax
    # tails): JS must stay finite and <= log 2, and equal JS with that entry dropped
    p, q = to([0.6, 0.4, tiny]), to([0.3, 0.7, 0.0])
    assert float(p[2]) > 0
    js = float(js_divergence(p, q))
    ref = float(js_divergence(to([0.6, 0.4]), to([0.3, 0.7])))
    assert math.isfinite(js) and 0 <= js <= math.log(2)
    assert js == pytest.approx(ref, rel=1e-6)
    assert math.isinf(float(kl_divergence(p, q)))  # KL really is infinite here
    assert float(js_divergence(q, p)) == pytest.approx(js, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# VocabularyMismatchError
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [kl_divergence, reverse_kl_divergence, js_divergence, total_variation])
@pytest.mark.parametrize("V_t,V_s", [(3, 2), (2, 3)])
def test_vocabulary_mismatch_error(fn, V_t, V_s):
    p, q = np.full(V_t, 1.0 / V_t), np.full(V_s, 1.0 / V_s)
    with pytest.raises(VocabularyMismatchError) as info:
        fn(p, q)
    err = info.value
    assert isinstance(err, ValueError)
    assert issubclass(VocabularyMismatchError, ValueError)
    assert (err.V_t, err.V_s) == (V_t, V_s)
    msg = str(err)
    for needle in ("shared vocabulary", f"V_t={V_t}", f"V_s={V_s}", "'dog'", "'cat'", "'moon'",
                   "restrict_to_shared_vocab", "uld_distance"):
        assert needle in msg, needle
    with pytest.raises(ValueError, match="shared vocabulary"):
        fn(torch.tensor(p), torch.tensor(q))


# ------------------------------------------------------------------------------------------------
# ULD: values against the paper's formula
# ------------------------------------------------------------------------------------------------


def test_uld_hand_values():
    assert float(uld_distance([0.5, 0.3, 0.2], [0.6, 0.4])) == pytest.approx(0.4, abs=1e-15)
    assert float(uld_distance([0.7, 0.2, 0.1], [0.1, 0.7, 0.2])) == 0.0
    assert float(uld_distance([1.0], [0.5, 0.5])) == pytest.approx(1.0, abs=1e-15)
    assert float(uld_distance([1.0, 0.0], [0.0, 1.0])) == 0.0  # identity blind
    # two disjoint-supported spreads: |1 - 0.25| + 3 * 0.25 = 1.5
    assert float(uld_distance([1.0], [0.25] * 4)) == pytest.approx(1.5, abs=1e-15)


@pytest.mark.parametrize("V_t,V_s", [(1, 1), (2, 7), (7, 2), (5, 5), (64, 17), (17, 64), (300, 300)])
@pytest.mark.parametrize("alpha", [0.05, 5.0])
def test_uld_matches_paper_formula(rng, V_t, V_s, alpha):
    p, q = dirichlet(rng, V_t, alpha), dirichlet(rng, V_s, alpha)
    expected = paper_uld(p, q)
    assert float(uld_distance(p, q)) == pytest.approx(expected, abs=1e-12)
    assert float(uld_distance(torch.from_numpy(p), torch.from_numpy(q))) == pytest.approx(expected, abs=1e-12)
    # the GPU kernel, run on CPU tensors
    a, b = (p, q) if V_t >= V_s else (q, p)
    v, _, _ = sorted_l1_torch(torch.from_numpy(a)[None], torch.from_numpy(b)[None], False, False)
    assert float(v[0]) == pytest.approx(expected, abs=1e-12)


def test_uld_from_logits_matches_softmax_then_formula(rng):
    from scipy.special import softmax as sp_softmax

    zt, zs = rng.normal(size=(2, 3, 9)), rng.normal(size=(2, 3, 4))
    got = uld_from_logits(zt, zs, teacher_temperature=2.0, student_temperature=0.5)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            exp = paper_uld(sp_softmax(zt[i, j] / 2.0), sp_softmax(zs[i, j] / 0.5))
            assert got[i, j] == pytest.approx(exp, abs=1e-12)
    with pytest.raises(ValueError, match="teacher_logits and student_logits"):
        uld_from_logits(zt, zs[:1])


# ------------------------------------------------------------------------------------------------
# ULD: hypothesis properties
# ------------------------------------------------------------------------------------------------


@given(p=prob_vector(), q=prob_vector(), data=st.data())
@PROPS
def test_uld_permutation_invariant(p, q, data):
    base = float(uld_distance(p, q))
    pp = p[data.draw(st.permutations(range(p.size)))]
    qp = q[data.draw(st.permutations(range(q.size)))]
    assert float(uld_distance(pp, q)) == base
    assert float(uld_distance(p, qp)) == base
    assert float(uld_distance(pp, qp)) == base
    assert base == pytest.approx(paper_uld(p, q), abs=1e-12)


@given(p=prob_vector(), q=prob_vector())
@PROPS
def test_uld_bounds(p, q):
    v = float(uld_distance(p, q))
    assert 0.0 <= v <= 2.0 + 1e-12


@given(p=prob_vector(), data=st.data())
@PROPS
def test_uld_zero_iff_sorted_padded_equal(p, data):
    if data.draw(st.booleans(), label="same shape"):
        # a permutation of p, maybe with extra zeros: the sorted padded vectors are equal
        extra = data.draw(st.integers(0, 5), label="extra zeros")
        q = np.concatenate([p[data.draw(st.permutations(range(p.size)))], np.zeros(extra)])
    else:
        q = data.draw(prob_vector(), label="q")
    n = max(p.size, q.size)
    same = np.array_equal(np.sort(np.pad(p, (0, n - p.size))), np.sort(np.pad(q, (0, n - q.size))))
    v = float(uld_distance(p, q))
    assert (v == 0.0) == same
    assert float(uld_distance(q, p)) == v


@given(p=prob_vector(), q=prob_vector(), zp=st.integers(0, 6), zq=st.integers(0, 6))
@PROPS
def test_uld_appending_zeros_changes_nothing(p, q, zp, zq):
    base = float(uld_distance(p, q))
    got = float(uld_distance(np.pad(p, (0, zp)), np.pad(q, (0, zq))))
    assert got == pytest.approx(base, rel=1e-12, abs=1e-15)


@given(
    B=st.integers(1, 3), T=st.integers(1, 8), V_t=st.integers(1, 12), V_s=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1), zero_frac=st.sampled_from([0.0, 0.3]),
)
@PROPS
def test_uld_batched_equals_loop(B, T, V_t, V_s, seed, zero_frac):
    rng = np.random.default_rng(seed)

    def batch(V):
        x = rng.random((B, T, V)) * (rng.random((B, T, V)) >= zero_frac)
        x[..., 0] += 1e-3  # never an all-zero row
        return x / x.sum(-1, keepdims=True)

    p, q = batch(V_t), batch(V_s)
    got = uld_distance(p, q)
    got_t = uld_distance(torch.from_numpy(p), torch.from_numpy(q))
    assert got.shape == (B, T) and tuple(got_t.shape) == (B, T)
    for b in range(B):
        for t in range(T):
            exp = paper_uld(p[b, t], q[b, t])
            assert got[b, t] == pytest.approx(exp, abs=1e-12)
            assert float(got_t[b, t]) == pytest.approx(exp, abs=1e-12)
            assert got[b, t] == float(uld_distance(p[b, t], q[b, t]))


def test_uld_batched_many_rows_uses_threads_and_equals_loop(rng):
    # more rows than one worker chunk (16): exercises the thread pool path
    p, q = dirichlet(rng, 33, 0.5, size=(5, 13)), dirichlet(rng, 21, 0.5, size=(5, 13))
    got = uld_distance(p, q)
    exp = np.array([[paper_uld(p[i, j], q[i, j]) for j in range(13)] for i in range(5)])
    np.testing.assert_allclose(got, exp, rtol=0, atol=1e-12)
    empty = uld_distance(np.zeros((0, 3)), np.zeros((0, 2)))
    assert empty.shape == (0,)


@given(p=prob_vector(), q=prob_vector())
@PROPS
def test_uld_numpy_equals_torch_float64_and_float32_close(p, q):
    v_np = float(uld_distance(p, q))
    pt, qt = torch.from_numpy(p), torch.from_numpy(q)
    v_t = uld_distance(pt, qt)
    assert v_t.dtype == torch.float64
    assert float(v_t) == pytest.approx(v_np, abs=1e-12)
    v32 = uld_distance(pt.float(), qt.float())
    assert v32.dtype == torch.float32
    assert float(v32) == pytest.approx(v_np, abs=1e-5)
    # float32 with gradients uses the packed uint64 sort path on CPU
    v32g = uld_distance(pt.float().requires_grad_(), qt.float().requires_grad_())
    assert float(v32g.detach()) == pytest.approx(v_np, abs=1e-5)


def test_uld_torch_dtypes_and_bfloat16():
    p = torch.tensor([0.5, 0.25, 0.25])
    q = torch.tensor([0.75, 0.25])
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        pt, qt = p.to(dt).requires_grad_(), q.to(dt).requires_grad_()
        v = uld_distance(pt, qt)
        assert v.dtype == dt
        assert float(v.detach()) == pytest.approx(0.5, abs=1e-2)  # |.5-.75| + |.25-.25| + |.25-0|
        v.backward()
        assert pt.grad is not None and qt.grad is not None
    mixed = uld_distance(p.double(), q.float())
    assert mixed.dtype == torch.float64


# ------------------------------------------------------------------------------------------------
# ULD: gradients
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("V_t,V_s", [(5, 3), (3, 5), (4, 4)])
def test_gradcheck_uld_from_logits_student(V_t, V_s):
    g = torch.Generator().manual_seed(V_t * 10 + V_s)
    zt = 2 * torch.randn(2, 3, V_t, dtype=torch.float64, generator=g)
    zs = (2 * torch.randn(2, 3, V_s, dtype=torch.float64, generator=g)).requires_grad_()

    def f(z):
        return uld_from_logits(zt, z, teacher_temperature=1.7, student_temperature=0.6)

    assert torch.autograd.gradcheck(f, (zs,), eps=1e-6, atol=1e-6)
    f(zs).sum().backward()
    assert zs.grad.abs().sum() > 0


@pytest.mark.parametrize("V_t,V_s", [(5, 3), (3, 5)])
def test_gradcheck_uld_from_logits_teacher_and_student(V_t, V_s):
    g = torch.Generator().manual_seed(7 + V_t)
    zt = (2 * torch.randn(2, 3, V_t, dtype=torch.float64, generator=g)).requires_grad_()
    zs = (2 * torch.randn(2, 3, V_s, dtype=torch.float64, generator=g)).requires_grad_()

    def f(a, b):
        return uld_from_logits(a, b, teacher_temperature=0.8, student_temperature=1.3)

    assert torch.autograd.gradcheck(f, (zt, zs), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("V_t,V_s,batch", [(1000, 700, (4, 3)), (300, 2000, (4, 3)), (500, 400, (37,))])
def test_uld_from_logits_fast_path_equals_autograd_of_the_restated_formula(dtype, V_t, V_s, batch):
    """The fused path (each chunk of rows: both softmaxes and their sorted L1 in one task; the
    backward through the softmax fused) against autograd of the paper's formula restated with
    torch ops: softmax (float32 for half precision), pad, sort both, L1 over the vocabulary;
    values and student gradients. 37 rows: several chunks, spread over threads."""
    g = torch.Generator().manual_seed(V_t + V_s)
    zt = (3 * torch.randn(*batch, V_t, generator=g)).to(dtype)
    zs = (3 * torch.randn(*batch, V_s, generator=g)).to(dtype).requires_grad_()
    w = torch.rand(*batch, generator=g, dtype=torch.float64)  # an upstream gradient that is not all ones
    fast = uld_from_logits(zt, zs, teacher_temperature=0.7, student_temperature=1.3)
    (fast * w.to(fast.dtype)).sum().backward()
    z2 = zs.detach().clone().requires_grad_()
    work = torch.float64 if dtype == torch.float64 else torch.float32
    p = torch.softmax(zt.to(work) / 0.7, -1)
    q = torch.softmax(z2.to(work) / 1.3, -1)
    n = max(V_t, V_s)
    ps = torch.nn.functional.pad(p, (0, n - V_t)).sort(-1, descending=True).values
    qs = torch.nn.functional.pad(q, (0, n - V_s)).sort(-1, descending=True).values
    ref = (ps - qs).abs().sum(-1)
    (ref * w.to(work)).sum().backward()
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast.to(work), ref.detach(), **tol)
    assert zs.grad.dtype == dtype
    if dtype == torch.bfloat16:  # 8-bit mantissas tie many probabilities: ULD's gradient at a tie is any
        return  # subgradient, and two sorts may break it differently; the values above still agree
    gtol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(zs.grad.to(work), z2.grad.to(work), **gtol)


@pytest.mark.parametrize("bad, match", [(float("nan"), "must not contain NaN or \\+inf"),
                                        (float("inf"), "must not contain NaN or \\+inf")])
def test_uld_from_logits_fast_path_names_nan_and_plus_inf(bad, match):
    """Either side, either the long or the short one: the fault found by a row's maximum (the
    teacher's taken from the top part of its partitioned logits, where NumPy puts a NaN) and
    named by the library's softmax."""
    zt = torch.zeros(2, 5)
    zs = torch.zeros(2, 3, requires_grad=True)
    with torch.no_grad():
        zs[1, 2] = bad
    with pytest.raises(ValueError, match="^student_logits " + match):
        uld_from_logits(zt, zs)
    for V_t, V_s in ((40, 3), (3, 40)):
        zt, zs = torch.zeros(3, V_t), torch.zeros(3, V_s, requires_grad=True)
        zt[2, 1] = bad
        with pytest.raises(ValueError, match="^teacher_logits " + match):
            uld_from_logits(zt, zs)


def _tie_free(rng, shape):
    """Random distributions whose entries are all distinct and positive (gaps >= 0.5 / sum)."""
    V = shape[-1]
    x = np.argsort(rng.random(shape), axis=-1) + 1 + rng.uniform(0, 0.5, shape)  # permuted 1..V + jitter
    x = x / x.sum(-1, keepdims=True)
    if V > 1:
        assert np.diff(np.sort(x, axis=-1), axis=-1).min() > 0.5 / (V * (V + 1))
    return x


@pytest.mark.parametrize("V_t,V_s", [(6, 4), (4, 6), (5, 5)])
def test_gradcheck_uld_distance_probabilities(rng, V_t, V_s):
    p = torch.from_numpy(_tie_free(rng, (2, 3, V_t))).requires_grad_()
    q = torch.from_numpy(_tie_free(rng, (2, 3, V_s))).requires_grad_()
    # validate=False: gradcheck's perturbations break the sum-to-1 check
    assert torch.autograd.gradcheck(lambda a, b: uld_distance(a, b, validate=False), (p, q), eps=1e-7, atol=1e-6)
    with pytest.raises(ValueError, match="sum to 1"):
        uld_distance(p.detach() + 1e-3, q)


def test_uld_gradient_central_differences(rng):
    p = _tie_free(rng, (7,))
    q = _tie_free(rng, (5,))
    pt = torch.from_numpy(p).requires_grad_()
    qt = torch.from_numpy(q).requires_grad_()
    uld_distance(pt, qt).backward()
    h = 1e-7
    for x, grad, f in ((p, pt.grad, lambda v: paper_uld(v, q)), (q, qt.grad, lambda v: paper_uld(p, v))):
        fd = np.empty_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = h
            fd[i] = (f(x + e) - f(x - e)) / (2 * h)
        np.testing.assert_allclose(grad.numpy(), fd, atol=1e-6)
        assert np.abs(fd).min() > 0.5  # every entry really moves the loss


def test_uld_gradient_student_only_and_teacher_only(rng):
    p = torch.from_numpy(_tie_free(rng, (6,)))
    q = torch.from_numpy(_tie_free(rng, (4,)))
    ga, gb = sign_oracle(p.numpy()[None], q.numpy()[None])
    qg = q.clone().requires_grad_()
    uld_distance(p, qg).backward()
    np.testing.assert_array_equal(qg.grad.numpy(), gb[0])
    pg = p.clone().requires_grad_()
    uld_distance(pg, q).backward()
    np.testing.assert_array_equal(pg.grad.numpy(), ga[0])
    # upstream gradient is multiplied in
    qg2 = q.clone().requires_grad_()
    (3.0 * uld_distance(p, qg2)).backward()
    np.testing.assert_array_equal(qg2.grad.numpy(), 3.0 * gb[0])


# ------------------------------------------------------------------------------------------------
# CPU NumPy kernel vs pure-torch kernel
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,m", [(9, 4), (6, 6), (40, 1), (1, 1)])
def test_np_and_torch_kernels_agree_values_and_signs(rng, dtype, n, m):
    a = _tie_free(rng, (20, n)).astype(dtype)  # 20 rows > one chunk of 16
    b = _tie_free(rng, (20, m)).astype(dtype)
    v_np, sa_np, sb_np = sorted_l1_numpy(a, b, True, True)
    v_t, sa_t, sb_t = sorted_l1_torch(torch.from_numpy(a), torch.from_numpy(b), True, True)
    np.testing.assert_allclose(v_np, v_t.numpy(), rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    exp = np.array([paper_uld(a[r], b[r]) for r in range(a.shape[0])])
    np.testing.assert_allclose(v_np, exp, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6)
    ga, gb = sign_oracle(a, b)
    np.testing.assert_array_equal(sa_np, ga)
    np.testing.assert_array_equal(sb_np, gb)
    np.testing.assert_array_equal(sa_t.numpy(), ga)
    np.testing.assert_array_equal(sb_t.numpy(), gb)
    assert sa_np.dtype == np.int8 and sa_t.dtype == torch.int8
    # value-only path (no permutation) gives the same value
    v_only, none_a, none_b = sorted_l1_numpy(a, b, False, False)
    assert none_a is None and none_b is None
    np.testing.assert_array_equal(v_only, v_np)
    # a transposed (Fortran-ordered) input: the packed keys are laid out in rows whatever its layout
    v_f, sa_f, sb_f = sorted_l1_numpy(np.asfortranarray(a), np.asfortranarray(b), True, True)
    np.testing.assert_array_equal(v_f, v_np)
    np.testing.assert_array_equal(sa_f, ga)
    np.testing.assert_array_equal(sb_f, gb)


@pytest.mark.parametrize("grads", [(True, True), (False, True), (True, False), (False, False)])
def test_kernels_agree_on_ties_zeros_and_negative_zero_float32(grads):
    a = np.array(
        [
            [0.25, 0.25, 0.25, 0.25, 0.0, -0.0],
            [-0.0, 0.5, 0.0, 0.5, -0.0, 0.0],
            [0.1, 0.2, 0.2, 0.2, 0.3, 0.0],
            [1.0, 0.0, -0.0, 0.0, -0.0, 0.0],
        ],
        dtype=np.float32,
    )
    b = np.array(
        [[0.5, 0.25, 0.25, -0.0], [0.5, 0.5, 0.0, -0.0], [0.2, 0.2, 0.3, 0.3], [-0.0, 1.0, 0.0, 0.0]],
        dtype=np.float32,
    )
    exp = np.array([paper_uld(a[r], b[r]) for r in range(4)])
    np.testing.assert_allclose(exp[[1, 3]], 0.0)  # sanity of the hand-made rows
    v_np, _, _ = sorted_l1_numpy(a, b, *grads)
    v_t, _, _ = sorted_l1_torch(torch.from_numpy(a), torch.from_numpy(b), *grads)
    np.testing.assert_allclose(v_np, exp, rtol=0, atol=1e-6)
    np.testing.assert_allclose(v_t.numpy(), exp, rtol=0, atol=1e-6)
    # end to end through autograd (float32 CPU with grad -> packed uint64 sort)
    pt = torch.from_numpy(a).requires_grad_(grads[0])
    qt = torch.from_numpy(b).requires_grad_(grads[1])
    np.testing.assert_allclose(uld_distance(pt, qt).detach().numpy(), exp, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# restrict_to_shared_vocab
# ------------------------------------------------------------------------------------------------


def shared_oracle(p, q, tt, ts):
    """Explicit python loops: strings in teacher order, masses pooled per string."""
    strings = []
    for t in tt:
        if t in ts and t not in strings:
            strings.append(t)
    pm = [sum(p[i] for i, t in enumerate(tt) if t == s) for s in strings]
    qm = [sum(q[j] for j, t in enumerate(ts) if t == s) for s in strings]
    return strings, np.array(pm), np.array(qm), sum(pm), sum(qm)


def test_shared_vocab_hand_example_with_duplicates():
    p = [0.1, 0.2, 0.3, 0.4]
    tt = ["a", "b", "a", "c"]  # "a" twice on the teacher side: pooled 0.4
    q = [0.05, 0.15, 0.3, 0.2, 0.3]
    ts = ["b", "x", "a", "a", "b"]  # "a" and "b" twice on the student side
    sv = restrict_to_shared_vocab(p, q, tt, ts)
    assert sv.strings == ["a", "b"]
    assert float(sv.teacher_mass) == pytest.approx(0.6)  # 0.1 + 0.3 + 0.2
    assert float(sv.student_mass) == pytest.approx(0.85)  # a: 0.3 + 0.2, b: 0.05 + 0.3
    np.testing.assert_allclose(sv.p, [0.4 / 0.6, 0.2 / 0.6])
    np.testing.assert_allclose(sv.q, [0.5 / 0.85, 0.35 / 0.85])
    # KL is now defined on the result
    assert float(kl_divergence(sv.p, sv.q)) == pytest.approx(entropy(sv.p, sv.q), rel=1e-12)


def test_shared_vocab_docstring_example():
    sv = restrict_to_shared_vocab([0.5, 0.3, 0.2], [0.6, 0.4], ["dog", "cat", "moon"], ["cat", "dog"])
    assert sv.strings == ["dog", "cat"]
    np.testing.assert_allclose(sv.p, [0.625, 0.375])
    np.testing.assert_allclose(sv.q, [0.4, 0.6])
    assert float(sv.teacher_mass) == pytest.approx(0.8) and float(sv.student_mass) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_shared_vocab_random_against_loop_and_torch(seed):
    rng = np.random.default_rng(seed)
    alphabet = list("abcdefgh")
    V_t, V_s = int(rng.integers(3, 15)), int(rng.integers(3, 15))
    tt = list(rng.choice(alphabet, V_t))
    ts = list(rng.choice(alphabet, V_s)) + ["a"]  # guarantee sharing is possible
    tt[0] = "a"
    p, q = dirichlet(rng, V_t), dirichlet(rng, V_s + 1)
    strings, pm, qm, mt, ms = shared_oracle(p, q, tt, ts)
    sv = restrict_to_shared_vocab(p, q, tt, ts)
    assert sv.strings == strings
    assert float(sv.teacher_mass) == pytest.approx(mt, abs=1e-12)
    assert float(sv.student_mass) == pytest.approx(ms, abs=1e-12)
    np.testing.assert_allclose(sv.p, pm / mt, atol=1e-12)
    np.testing.assert_allclose(sv.q, qm / ms, atol=1e-12)
    assert float(sv.p.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float(sv.q.sum()) == pytest.approx(1.0, abs=1e-12)
    svt = restrict_to_shared_vocab(torch.from_numpy(p), torch.from_numpy(q), tt, ts)
    assert isinstance(svt.p, torch.Tensor) and svt.strings == strings
    np.testing.assert_allclose(svt.p.numpy(), sv.p, atol=1e-12)
    np.testing.assert_allclose(svt.q.numpy(), sv.q, atol=1e-12)
    assert float(svt.teacher_mass) == pytest.approx(mt, abs=1e-12)


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy])
def test_shared_vocab_batched_equals_loop(rng, to):
    tt = ["the", "a", "cat", "dog", "a", "moon"]
    ts = ["dog", "the", "x", "a", "sun"]
    p, q = dirichlet(rng, 6, size=(3, 4)), dirichlet(rng, 5, size=(3, 4))
    sv = restrict_to_shared_vocab(to(p), to(q), tt, ts)
    assert tuple(sv.p.shape) == (3, 4, 3) and tuple(sv.teacher_mass.shape) == (3, 4)
    for i in range(3):
        for j in range(4):
            strings, pm, qm, mt, ms = shared_oracle(p[i, j], q[i, j], tt, ts)
            assert sv.strings == strings == ["the", "a", "dog"]
            np.testing.assert_allclose(np.asarray(sv.p[i, j]), pm / mt, atol=1e-12)
            np.testing.assert_allclose(np.asarray(sv.q[i, j]), qm / ms, atol=1e-12)
            assert float(sv.teacher_mass[i, j]) == pytest.approx(mt, abs=1e-12)
            assert float(sv.student_mass[i, j]) == pytest.approx(ms, abs=1e-12)


def test_shared_vocab_errors():
    with pytest.raises(ValueError, match="share no string"):
        restrict_to_shared_vocab([0.5, 0.5], [1.0], ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="teacher_tokens"):
        restrict_to_shared_vocab([0.5, 0.5], [1.0], ["a"], ["a"])
    with pytest.raises(ValueError, match="student_tokens"):
        restrict_to_shared_vocab([0.5, 0.5], [1.0], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match=r"q \(student\) puts no mass on the shared strings at batch index"):
        restrict_to_shared_vocab([0.5, 0.5], [0.0, 1.0], ["a", "b"], ["a", "c"])
    with pytest.raises(ValueError, match=r"\bp must be non-negative"):
        restrict_to_shared_vocab([-0.5, 1.5], [1.0], ["a", "b"], ["a"])


def test_uld_subprobability_vectors_follow_the_same_formula_and_are_checked():
    # chain-rule merged groups carry mass < 1: the sorted-L1 formula is unchanged
    p, q = np.array([0.3, 0.1, 0.05]), np.array([0.5, 0.5])
    expected = abs(0.3 - 0.5) + abs(0.1 - 0.5) + 0.05  # paper's formula, padded
    assert float(uld_distance(p, q, subprobability=True)) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="^p must sum to 1"):
        uld_distance(p, q)
    with pytest.raises(ValueError, match="^q must have total mass at most 1"):
        uld_distance(p, np.array([0.9, 0.5]), subprobability=True)
    with pytest.raises(ValueError, match="^p must be non-negative"):
        uld_distance(np.array([-0.1, 0.5]), q, subprobability=True)


# ------------------------------------------------------------------------------------------------
# match_strings, NaN rows, and GOLD's hybrid ULD against a straightforward restatement
# ------------------------------------------------------------------------------------------------

from uld_explorer import HybridConfig, hybrid_uld, match_strings  # noqa: E402


def test_match_strings_pools_and_never_matches_empty():
    m = match_strings(["a", "b", "a", "", "c"], ["b", "", "a", "x"])
    assert m.strings == ("a", "b") and m.S == 2
    assert m.teacher_group.tolist() == [0, 1, 0, -1, -1] and m.student_group.tolist() == [1, -1, 0, -1]
    assert m.teacher_matched.tolist() == [0, 1, 2] and m.student_matched.tolist() == [0, 2]
    assert not m.one_to_one and match_strings(["a", "b"], ["b", "a"]).one_to_one


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy])
def test_shared_vocab_on_empty_nan_marks_only_that_row(to):
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5]])  # row 1: all on 'moon'
    q = np.array([[0.6, 0.4], [0.5, 0.5], [0.1, 0.9]])
    tt, ts = ["dog", "cat", "moon"], ["cat", "dog"]
    with pytest.raises(ValueError, match=r"p \(teacher\) puts no mass on the shared strings at batch index \(1,\)"):
        restrict_to_shared_vocab(to(p), to(q), tt, ts)
    sv = restrict_to_shared_vocab(to(p), to(q), tt, ts, on_empty="nan")
    P, Q = np.asarray(sv.p), np.asarray(sv.q)
    assert np.isnan(P[1]).all() and np.isnan(Q[1]).all() and float(sv.teacher_mass[1]) == 0.0
    np.testing.assert_allclose(P[[0, 2]], [[0.5, 0.5], [0.4, 0.6]])
    kl = np.asarray(kl_divergence(sv.p, sv.q, validate=False))
    assert math.isnan(kl[1]) and np.isfinite(kl[[0, 2]]).all()
    assert kl[0] == pytest.approx(entropy([0.5, 0.5], [0.4, 0.6]), rel=1e-12)
    with pytest.raises(ValueError, match="must be finite"):  # validated KL refuses the NaN row
        kl_divergence(sv.p, sv.q)


def hybrid_oracle(p, q, tt, ts, beta=0.5, divergence="jsd", weighting="matched-share", wm=None, wu=None, clamp=None):
    """GOLD's hybrid restated with Python loops: strings in both vocabularies (never ''), their
    pooled masses NOT renormalized; generalized JSD (GOLD's beta convention) or KL on them; the
    unmatched entries sorted, zero-padded, L1; weights = share of matched teacher ids, or fixed."""
    shared = [s for s in dict.fromkeys(tt) if s and s in set(ts)]
    P = [sum(p[i] for i, t in enumerate(tt) if t == s) for s in shared]
    Q = [sum(q[j] for j, t in enumerate(ts) if t == s) for s in shared]
    if clamp is not None:  # GOLD's clamp_min on the probabilities inside its logs
        P, Q = [max(x, clamp) for x in P], [max(x, clamp) for x in Q]

    def xlogx_over(x, y):  # x log(x / y), 0 log 0 = 0
        return 0.0 if x == 0 else (math.inf if y == 0 else x * math.log(x / y))

    if divergence == "kl" or beta == 0:
        D = sum(xlogx_over(a, b) for a, b in zip(P, Q))
    elif beta == 1:
        D = sum(xlogx_over(b, a) for a, b in zip(P, Q))
    else:
        D = 0.0
        for a, b in zip(P, Q):
            m = beta * a + (1 - beta) * b
            D += beta * xlogx_over(a, m) + (1 - beta) * xlogx_over(b, m)
    pu = [p[i] for i, t in enumerate(tt) if t not in shared]
    qu = [q[j] for j, t in enumerate(ts) if t not in shared]
    U = paper_uld(pu, qu) if pu and qu else sum(pu) + sum(qu)
    if weighting == "matched-share":
        wm = sum(t in shared for t in tt) / len(tt)
        wu = 1 - wm
    return wm * D + wu * U, D, U, wm, wu


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "cfg",
    [
        HybridConfig(),
        HybridConfig(beta=0.1),
        HybridConfig(beta=0.9),
        HybridConfig(beta=0.0),
        HybridConfig(beta=1.0),
        HybridConfig(divergence="kl"),
        HybridConfig(weighting="fixed", matched_weight=0.3, unmatched_weight=2.0),
        HybridConfig(divergence="kl", clamp=1e-8),
        HybridConfig(beta=0.3, clamp=1e-3),
    ],
    ids=["jsd0.5", "jsd0.1", "jsd0.9", "beta0", "beta1", "kl", "fixed", "kl-clamped", "jsd-clamped"],
)
def test_hybrid_against_a_restatement(seed, cfg):
    rng = np.random.default_rng(seed)
    alphabet = ["a", "b", "c", "d", "e", "f", "", "g"]
    V_t, V_s = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    tt, ts = list(rng.choice(alphabet, V_t)), list(rng.choice(alphabet, V_s))
    tt[0], ts[0] = "a", "a"  # at least one shared string
    p, q = dirichlet(rng, V_t, alpha=0.5), dirichlet(rng, V_s, alpha=0.5)
    if seed % 2:  # chain-rule merged groups: sub-probability vectors, as GOLD applies it
        p, q = p * 0.7, q * 0.4
    value, D, U, wm, wu = hybrid_oracle(p, q, tt, ts, cfg.beta, cfg.divergence, cfg.weighting,
                                        cfg.matched_weight, cfg.unmatched_weight, cfg.clamp)
    r = hybrid_uld(p, q, tt, ts, config=cfg, subprobability=True)
    assert float(r.value) == pytest.approx(value, rel=1e-10, abs=1e-12)
    assert float(r.matched) == pytest.approx(D, rel=1e-10, abs=1e-12)
    assert float(r.unmatched) == pytest.approx(U, rel=1e-10, abs=1e-12)
    assert (r.matched_weight, r.unmatched_weight) == pytest.approx((wm, wu))
    if cfg.divergence == "jsd" and 0 < cfg.beta < 1:
        assert float(r.matched) >= 0  # the JSD is >= 0 entrywise, also on sub-probability masses
    # torch gives the same number
    rt = hybrid_uld(torch.from_numpy(p), torch.from_numpy(q), tt, ts, config=cfg, subprobability=True)
    assert float(rt.value) == pytest.approx(float(r.value), rel=1e-10, abs=1e-12)


def test_hybrid_clamp_reproduces_gold_where_the_student_is_near_zero():
    """The smallest case where GOLD's 1e-8 clamp matters (found running trl 1.16.0 side by side:
    GOLD gave a matched KL of 1.500772 here): q_b = 1e-10 < 1e-8."""
    p, q = np.array([0.9, 0.099, 0.001]), np.array([0.999, 1e-10, 0.001 - 1e-10])
    tt, ts = ["a", "b", "x"], ["a", "b", "y"]
    exact = hybrid_uld(p, q, tt, ts, config=HybridConfig(divergence="kl"))
    gold = hybrid_uld(p, q, tt, ts, config=HybridConfig(divergence="kl", clamp=1e-8))
    assert float(exact.matched) == pytest.approx(0.9 * math.log(0.9 / 0.999) + 0.099 * math.log(0.099 / 1e-10), rel=1e-12)
    assert float(gold.matched) == pytest.approx(0.9 * math.log(0.9 / 0.999) + 0.099 * math.log(0.099 / 1e-8), rel=1e-12)
    assert float(gold.matched) == pytest.approx(1.500772, abs=1e-6) and float(exact.matched) > 1.95
    assert float(gold.unmatched) == float(exact.unmatched)  # the clamp touches the matched part only


def test_hybrid_hand_example():
    """'a' shared and matched token by token; 'x' (teacher) and 'y', 'z' (student) by sorted L1."""
    p, q = np.array([0.5, 0.5]), np.array([0.2, 0.5, 0.3])
    r = hybrid_uld(p, q, ["a", "x"], ["a", "y", "z"], config=HybridConfig(beta=0.5))
    m = 0.35
    jsd = 0.5 * 0.5 * math.log(0.5 / m) + 0.5 * 0.2 * math.log(0.2 / m)
    l1 = abs(0.5 - 0.5) + abs(0.0 - 0.3)  # sorted [0.5] vs [0.5, 0.3], padded
    assert float(r.matched) == pytest.approx(jsd, rel=1e-12) and float(r.unmatched) == pytest.approx(l1)
    assert (r.matched_weight, r.unmatched_weight) == (0.5, 0.5)
    assert float(r.value) == pytest.approx(0.5 * jsd + 0.5 * l1, rel=1e-12)
    assert float(r.teacher_matched_mass) == 0.5 and float(r.student_matched_mass) == pytest.approx(0.2)


def test_hybrid_equals_uld_when_nothing_matches_and_jsd_when_everything_does(rng):
    p, q = dirichlet(rng, 7), dirichlet(rng, 5)
    none = hybrid_uld(p, q, [f"t{i}" for i in range(7)], [f"s{i}" for i in range(5)])
    assert none.matched_weight == 0.0 and float(none.value) == pytest.approx(paper_uld(p, q), abs=1e-12)
    q7 = dirichlet(rng, 7)
    tok = [f"w{i}" for i in range(7)]
    both = hybrid_uld(p, q7, tok, tok)
    assert both.matched_weight == 1.0 and float(both.unmatched) == 0.0
    assert float(both.value) == pytest.approx(float(js_divergence(p, q7)), rel=1e-10)  # beta = 0.5: JS


def test_hybrid_batched_and_gradient(rng):
    tt, ts = ["a", "b", "c", "x"], ["b", "a", "y", "z", "w"]
    p, q = dirichlet(rng, 4, size=(2, 3)), dirichlet(rng, 5, size=(2, 3))
    r = hybrid_uld(p, q, tt, ts)
    assert r.value.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert r.value[i, j] == pytest.approx(hybrid_oracle(p[i, j], q[i, j], tt, ts)[0], rel=1e-10)
    # differentiable w.r.t. the student logits (float64 gradcheck, tie-free)
    zt = torch.tensor(rng.normal(size=4))
    zs = torch.tensor(rng.normal(size=5), requires_grad=True)
    f = lambda z: hybrid_uld(torch.softmax(zt, -1), torch.softmax(z, -1), tt, ts, validate=False).value  # noqa: E731
    assert torch.autograd.gradcheck(f, (zs,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"divergence": "cosine"}, "hybrid divergence must be one of jsd, kl"),
        ({"beta": 1.5}, r"hybrid beta must lie in \[0, 1\]"),
        ({"beta": float("nan")}, "hybrid beta must be a finite number"),
        ({"weighting": "mass"}, "hybrid weighting must be one of matched-share, fixed"),
        ({"weighting": "fixed", "matched_weight": 1.0}, "needs both matched_weight and unmatched_weight"),
        ({"weighting": "fixed", "matched_weight": -1.0, "unmatched_weight": 1.0}, "matched_weight must be >= 0"),
        ({"matched_weight": 1.0, "unmatched_weight": 1.0}, "used only with weighting='fixed'"),
        ({"clamp": 0.0}, r"hybrid clamp must lie in \(0, 1\) or be None"),
        ({"clamp": "1e-8"}, "hybrid clamp must be a finite number"),
    ],
)
def test_hybrid_config_errors_name_the_fix(kw, match):
    with pytest.raises(ValueError, match=match):
        HybridConfig(**kw)


def test_hybrid_input_errors():
    with pytest.raises(ValueError, match="pass teacher_tokens and student_tokens"):
        hybrid_uld([1.0], [1.0])
    with pytest.raises(ValueError, match="teacher_tokens must have one string per vocabulary entry"):
        hybrid_uld([0.5, 0.5], [1.0], ["a"], ["a"])
    with pytest.raises(ValueError, match="match was built for vocabularies of 3 and 1"):
        hybrid_uld([0.5, 0.5], [1.0], match=match_strings(["a", "b", "c"], ["a"]))
    with pytest.raises(TypeError, match="config must be a uld_explorer.hybrid.HybridConfig"):
        hybrid_uld([1.0], [1.0], ["a"], ["a"], config={"beta": 0.5})
    with pytest.raises(ValueError, match="^p must sum to 1"):
        hybrid_uld([0.5, 0.4], [1.0], ["a", "b"], ["a"])


# ------------------------------------------------------------------------------------------------
# no silent NaN from logits (issue 7 §3)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", [np.asarray, torch.from_numpy])
def test_uld_from_logits_refuses_a_row_of_all_minus_inf(to):
    z_t = np.array([[1.0, 2.0, 0.5], [-np.inf, -np.inf, -np.inf]])
    z_s = np.array([[0.0, 1.0], [0.3, 0.1]])
    with pytest.raises(ValueError, match=r"teacher_logits has no finite entry in row \(1,\)"):
        uld_from_logits(to(z_t), to(z_s))
    z_t[1, 0] = 0.0  # one finite logit left: the row is a one-hot, the value finite
    out = uld_from_logits(to(z_t), to(z_s))
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, np.float16])
def test_half_precision_logits_at_a_tiny_temperature_stay_finite(dtype):
    """z / T overflows float16 (65504) at T = 1e-4 for a logit of 20: the softmax runs in float32."""
    z = np.array([[20.0, 19.0, -5.0, 0.0]])
    zt = torch.tensor(z, dtype=dtype) if isinstance(dtype, torch.dtype) else z.astype(dtype)
    p = softmax(zt, 1e-4)
    arr = p.float().numpy() if isinstance(p, torch.Tensor) else p
    assert arr.dtype == np.float32 and np.isfinite(arr).all()
    np.testing.assert_allclose(arr, [[1.0, 0.0, 0.0, 0.0]], atol=1e-6)
    v = uld_from_logits(zt, zt[..., :3], teacher_temperature=1e-4, student_temperature=1e-4)
    assert np.isfinite(np.asarray(v.float() if isinstance(v, torch.Tensor) else v)).all()


def test_masked_arrays_are_refused_not_silently_reduced():
    z = np.ma.masked_array([0.0, np.nan, 1.0], mask=[False, True, False])
    with pytest.raises(TypeError, match=r"logits is a masked array.*np.ma.filled"):
        softmax(z)
    p = np.ma.masked_array([0.5, np.nan, 0.5], mask=[False, True, False])
    with pytest.raises(TypeError, match="masked array"):
        uld_distance(p, np.array([1.0]))


@pytest.mark.parametrize("good", [np.float32(0.5), np.float64(0.5), torch.tensor(0.5), 1])
def test_temperatures_may_be_numpy_or_torch_scalars(good):
    z = np.array([0.0, 1.0])
    np.testing.assert_allclose(softmax(z, good), softmax(z, 0.5 if good != 1 else 1.0))


@pytest.mark.parametrize("bad", [True, 0, -1.0, float("nan"), float("inf"), "0.5", None, torch.tensor([0.5, 1.0])])
def test_bad_temperatures_name_the_argument(bad):
    z = np.array([0.0, 1.0])
    with pytest.raises(ValueError, match="^student_temperature must be a finite number > 0"):
        uld_from_logits(z, z, student_temperature=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uld_value_without_gradient_partitions_the_long_side_exactly(dtype):
    """The value-only path partitions the long side (only its top m meet the short side) instead
    of sorting it: equal to the paper's formula restated (sort both, zero-pad, sum |differences|),
    with ties, exact zeros and repeated values in the long side."""
    rng = np.random.default_rng(7)
    n, m = 5_000, 700
    a = rng.dirichlet(np.full(n, 0.05), size=6)
    a[:, ::7] = 0.0  # exact zeros
    a[:, 1::11] = a[:, 1:2]  # repeated values, ties across the partition point
    a /= a.sum(-1, keepdims=True)
    b = rng.dirichlet(np.full(m, 0.3), size=6)
    a, b = a.astype(dtype), b.astype(dtype)
    got = uld_distance(a, b, validate=False)
    for i in range(6):
        pa = np.sort(a[i].astype(np.float64))[::-1]
        pb = np.zeros(n)
        pb[:m] = np.sort(b[i].astype(np.float64))[::-1]
        assert float(got[i]) == pytest.approx(np.abs(pa - pb).sum(), rel=1e-9, abs=1e-12)
