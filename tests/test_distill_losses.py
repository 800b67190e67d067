"""The distillation losses against hand-worked cases and the library's full-vocabulary formulas.

Oracles: the paper's formula restated (sort, pad, L1), the library's ``uld_distance`` /
``kl_divergence`` / ``hybrid_uld`` / ``group_distributions`` on FULL teacher rows, autograd of the
full-vocabulary loss (for the top-k cache's gradient bound), hand-computed CE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from uld_explorer import (HybridConfig, hybrid_top_k, hybrid_uld, kl_divergence, uld_distance, uld_top_k,
                          uld_top_k_from_logits)
from uld_explorer.distill.config import DistillConfig
from uld_explorer.distill.data import Example, Prompt
from uld_explorer.distill.batch import make_batch
from uld_explorer.distill.losses import combine, dense_teacher, loss_sums
from uld_explorer.distill.teacher_cache import TeacherCache
from uld_explorer.text.align import byte_offset_alignment, group_distributions
from uld_explorer.text.tokenize import Tokenized
from uld_explorer.text.vocab import match_strings


def paper_uld(p: np.ndarray, q: np.ndarray) -> float:
    """Boizard et al.: sort both descending, zero-pad the shorter, sum |differences|."""
    n = max(p.size, q.size)
    ps = np.pad(np.sort(p)[::-1], (0, n - p.size))
    qs = np.pad(np.sort(q)[::-1], (0, n - q.size))
    return float(np.abs(ps - qs).sum())


def _peaked(rng: np.random.Generator, V: int, alpha: float) -> np.ndarray:
    x = rng.dirichlet(np.full(V, alpha))
    return x / x.sum()


# ------------------------------------------------------------------ the top-k cache and its bounds


@pytest.mark.parametrize("seed", range(40))
def test_uld_top_k_within_its_bound(seed):
    rng = np.random.default_rng(seed)
    V_t, V_s = int(rng.integers(5, 400)), int(rng.integers(5, 300))
    k = int(rng.integers(1, min(V_t, V_s) + 1))
    p, q = _peaked(rng, V_t, rng.choice([0.05, 0.3, 2.0])), _peaked(rng, V_s, rng.choice([0.05, 0.3, 2.0]))
    top = np.sort(p)[::-1][:k]
    tail = np.sort(p)[::-1][k:].sum()
    r = uld_top_k(top, tail, q)
    exact = paper_uld(p, q)
    assert abs(exact - float(r.value)) <= float(r.bound) + 1e-12
    assert float(r.bound) <= tail + 1e-15
    # the head is exact: at k = V_t nothing is missing
    full = uld_top_k(np.sort(p)[::-1], 0.0, q) if V_t <= V_s else None
    if full is not None:
        assert float(full.value) == pytest.approx(exact, abs=1e-12) and float(full.bound) == 0.0


def test_uld_top_k_bound_is_attained():
    # equal tails (the tail term is |Q - r| = 0, the interval's low end): off by exactly min(Q, r) = r
    p = np.array([0.5, 0.3, 0.1, 0.06, 0.04])
    q = p.copy()
    r = uld_top_k(p[:2], 0.2, q)
    assert paper_uld(p, q) == 0.0 and float(r.bound) == pytest.approx(0.2)
    assert abs(paper_uld(p, q) - float(r.value)) == pytest.approx(float(r.bound))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("T_s", [1.0, 2.0])
def test_uld_top_k_gradient_within_its_bound(seed, T_s):
    rng = np.random.default_rng(100 + seed)
    R, V_t, V_s, k = 6, 300, 200, int(rng.integers(2, 60))
    p = np.stack([_peaked(rng, V_t, 0.1) for _ in range(R)])
    z0 = torch.tensor(rng.normal(0, 3, (R, V_s)))
    ps = np.sort(p, -1)[:, ::-1].copy()
    top, tail = torch.tensor(ps[:, :k]), torch.tensor(ps[:, k:].sum(-1))

    def grad(f):
        z = z0.clone().requires_grad_(True)
        f(torch.softmax(z / T_s, -1)).sum().backward()
        return z.grad

    g_full = grad(lambda q: uld_distance(torch.tensor(p), q, validate=False))
    g_est = grad(lambda q: uld_top_k(top, tail, q, student_temperature=T_s).value)
    bound = uld_top_k(top, tail, torch.softmax(z0 / T_s, -1), student_temperature=T_s).grad_bound
    diff = (g_full - g_est).abs().sum(-1)
    assert torch.all(diff <= bound + 1e-9), (diff, bound)


def _restated_top_k_estimate(top: torch.Tensor, tail: torch.Tensor, z: torch.Tensor, T_s: float) -> torch.Tensor:
    """uld_top_k's estimate restated with torch ops, differentiable by autograd: sum over the k
    head ranks of |p_(i) - q_(i)| (both sorted descending by torch.sort) + max(Q, r), Q the
    student's mass beyond its k largest."""
    q = torch.softmax(z / T_s, -1)
    qs = q.sort(-1, descending=True).values
    k = top.shape[-1]
    head = (top.sort(-1, descending=True).values - qs[..., :k]).abs().sum(-1)
    return head + torch.maximum(qs[..., k:].sum(-1), tail.to(qs.dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T_s", [1.0, 0.6])
def test_uld_top_k_from_logits_fused_equals_autograd_of_the_restated_estimate(dtype, T_s):
    """The fused CPU path (the softmax, the student's top k by a partition, the backward one
    product) against autograd of the restated estimate and against uld_top_k on torch.softmax:
    values, bounds, the student's tail mass and the logits' gradients under an upstream weight.
    37 rows: several chunks over threads; rows where the teacher's tail r exceeds the student's Q
    (the tail's gradient 0) and rows where it does not (1) are both drawn."""
    g = torch.Generator().manual_seed(7)
    R, V_t, V_s, k = 37, 900, 700, 24
    p = torch.softmax(torch.randn(R, V_t, generator=g, dtype=torch.float64) * 2.5, -1)
    ps = p.sort(-1, descending=True).values
    top = ps[:, :k][:, torch.randperm(k, generator=g)].to(dtype)  # any order
    tail = ps[:, k:].sum(-1)
    scale = torch.linspace(0.5, 6.0, R, dtype=torch.float64).unsqueeze(1)  # flat to peaked students
    z = (torch.randn(R, V_s, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_()
    w = torch.rand(R, generator=g, dtype=torch.float64).to(dtype)
    fused = uld_top_k_from_logits(top, tail, z, student_temperature=T_s)
    (fused.value * w).sum().backward()
    z_ref = z.detach().clone().requires_grad_()
    ref = _restated_top_k_estimate(top, tail, z_ref, T_s)
    (ref * w).sum().backward()
    z_lib = z.detach().clone().requires_grad_()
    lib = uld_top_k(top, tail, torch.softmax(z_lib / T_s, -1), student_temperature=T_s)
    (lib.value * w).sum().backward()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    assert fused.value.dtype == dtype and z.grad.dtype == dtype
    torch.testing.assert_close(fused.value, ref.detach(), **tol)
    torch.testing.assert_close(fused.value, lib.value.detach(), **tol)
    torch.testing.assert_close(fused.bound, lib.bound, **tol)
    torch.testing.assert_close(fused.student_tail, lib.student_tail, **tol)
    torch.testing.assert_close(fused.grad_bound, 4 * fused.bound / T_s)
    gtol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(z.grad, z_ref.grad, **gtol)
    torch.testing.assert_close(z.grad, z_lib.grad, **gtol)
    r_wins = tail.to(dtype) > fused.student_tail
    assert 0 < int(r_wins.sum()) < R  # both branches of the tail's gradient were exercised


def test_uld_top_k_from_logits_rows_equal_the_picked_copy():
    """``rows`` (the training step's pairs): the estimate of ``z[rows]`` and its gradient, a row
    picked twice getting both gradients; rows out of range or of the wrong count are named."""
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(53, 80, generator=g) * 2, -1).sort(-1, descending=True).values
    top, tail = p[:, :10], p[:, 10:].sum(-1).double()
    z0 = torch.randn(60, 50, generator=g) * 2
    # 53 pairs over 4 chunks: row 4 picked three times, the rows from 53 on never
    pick = torch.cat([torch.tensor([4, 0, 4, 2, 4]), torch.arange(5, 53)])
    w = torch.rand(53, generator=g)
    z = z0.clone().requires_grad_()
    est = uld_top_k_from_logits(top, tail, z, rows=pick, student_temperature=0.8)
    (est.value * w).sum().backward()
    zr = z0.clone().requires_grad_()
    ref = _restated_top_k_estimate(top, tail, zr[pick], 0.8)
    (ref * w).sum().backward()
    torch.testing.assert_close(est.value, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z.grad, zr.grad, rtol=1e-4, atol=1e-7)
    assert float(z.grad[[1, 3, *range(53, 60)]].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="rows must index student_logits' 60 rows"):
        uld_top_k_from_logits(top, tail, z0, rows=torch.cat([pick[:-1], torch.tensor([60])]))
    with pytest.raises(ValueError, match="one student row per teacher row: got 2 rows for 53"):
        uld_top_k_from_logits(top, tail, z0, rows=[0, 1])


def test_uld_top_k_from_logits_sums_the_students_tail_itself():
    """Q, the student's mass beyond its top k, for peaked students whose tail is ~1e-9: summed
    itself, not the total minus the top (float32 cancellation left errors of 15x Q), on the
    fused path and both of uld_top_k's; against the float64 softmax."""
    g = torch.Generator().manual_seed(9)
    z = torch.randn(20, 400, generator=g, dtype=torch.float64)
    z[:, :3] += 24.0  # three tokens hold all but ~1e-9 of the mass
    k = 8
    est = uld_top_k_from_logits(torch.full((20, k), 1.0 / k), torch.zeros(20, dtype=torch.float64), z.float())
    q = torch.softmax(z, -1).sort(-1, descending=True).values
    Q = q[:, k:].sum(-1)
    assert float(Q.max()) < 5e-8  # below float32 rounding of the total: 6e-8
    torch.testing.assert_close(est.student_tail.double(), Q, rtol=1e-5, atol=1e-15)
    lib = uld_top_k(torch.full((20, k), 1.0 / k), torch.zeros(20), torch.softmax(z.float(), -1))  # torch path
    torch.testing.assert_close(lib.student_tail.double(), Q, rtol=1e-5, atol=1e-15)
    lib = uld_top_k(np.full((20, k), 1.0 / k), np.zeros(20), torch.softmax(z, -1).numpy())  # NumPy path
    np.testing.assert_allclose(lib.student_tail, Q.numpy(), rtol=1e-9)


def test_uld_top_k_from_logits_teacher_with_a_gradient_and_in_bfloat16():
    """A teacher side that needs a gradient takes the composition (p_tail gets its gradient), a
    bfloat16 teacher's top-k is read in float32; the bound is never on the graph."""
    g = torch.Generator().manual_seed(4)
    p = torch.softmax(torch.randn(5, 90, generator=g), -1).sort(-1, descending=True).values
    z = torch.randn(5, 60, generator=g, requires_grad=True)
    tail = p[:, 6:].sum(-1).double().requires_grad_()
    est = uld_top_k_from_logits(p[:, :6], tail, z)
    est.value.sum().backward()
    tail_ref = tail.detach().clone().requires_grad_()
    uld_top_k(p[:, :6], tail_ref, torch.softmax(z.detach(), -1)).value.sum().backward()
    torch.testing.assert_close(tail.grad, tail_ref.grad)
    assert not est.bound.requires_grad
    half = uld_top_k_from_logits(p[:, :6].to(torch.bfloat16), p[:, 6:].sum(-1), z)
    ref = uld_top_k(p[:, :6].to(torch.bfloat16).float(), p[:, 6:].sum(-1), torch.softmax(z.detach(), -1))
    torch.testing.assert_close(half.value.float(), ref.value.float(), rtol=1e-5, atol=1e-6)
    assert not half.bound.requires_grad


def test_pick_rows_equals_indexing_forward_and_backward():
    """The pairs' rows for the softmax-based parts (kl, hybrid, merged groups): z[rows] with a
    backward by index_add_, against autograd's own indexing, a row picked twice."""
    from uld_explorer.distill.losses import pick_rows

    g = torch.Generator().manual_seed(2)
    z0, w = torch.randn(7, 30, generator=g), torch.randn(5, 30, generator=g)
    rows = torch.tensor([3, 0, 3, 6, 1])
    a, b = z0.clone().requires_grad_(), z0.clone().requires_grad_()
    (pick_rows(a, rows) * w).sum().backward()
    (b[rows] * w).sum().backward()
    assert torch.equal(pick_rows(z0, rows), z0[rows])
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)


def test_uld_top_k_from_logits_falls_back_and_refuses_bad_logits():
    """k >= V_s (the student has no tail), NumPy input and a teacher with a gradient take the
    composition with the library's softmax; NaN, +inf and rows of -inf only are named on the
    fused path as on the softmax; a batch mismatch is named."""
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(4, 50, generator=g), -1).sort(-1, descending=True).values
    z = torch.randn(4, 30, generator=g)
    for k in (30, 40):  # k >= V_s: exact (Q = 0)
        est = uld_top_k_from_logits(p[:, :k], p[:, k:].sum(-1), z)
        torch.testing.assert_close(est.value, uld_distance(p, torch.softmax(z, -1), validate=False))
    est = uld_top_k_from_logits(p[:, :8].numpy(), p[:, 8:].sum(-1).numpy(), z.numpy())
    ref = uld_top_k(p[:, :8].numpy(), p[:, 8:].sum(-1).numpy(), torch.softmax(z.double(), -1).numpy())
    np.testing.assert_allclose(est.value, ref.value, rtol=1e-6)
    for bad, msg in ((float("nan"), "NaN"), (float("inf"), "NaN or \\+inf")):
        zb = z.clone().requires_grad_(False)
        zb[2, 5] = bad
        with pytest.raises(ValueError, match="^student_logits .*" + msg):
            uld_top_k_from_logits(p[:, :8], p[:, 8:].sum(-1), zb.requires_grad_())
    zb = z.clone()
    zb[1] = float("-inf")
    with pytest.raises(ValueError, match="^student_logits "):
        uld_top_k_from_logits(p[:, :8], p[:, 8:].sum(-1), zb)
    with pytest.raises(ValueError, match="same batch shape"):
        uld_top_k_from_logits(p[:3, :8], p[:3, 8:].sum(-1), z)
    zh = z.to(torch.bfloat16).requires_grad_()  # half precision: the softmax in float32, the gradient in bf16
    est = uld_top_k_from_logits(p[:, :8], p[:, 8:].sum(-1), zh)
    est.value.sum().backward()
    ref = uld_top_k(p[:, :8], p[:, 8:].sum(-1), torch.softmax(zh.detach().float(), -1))
    torch.testing.assert_close(est.value, ref.value, rtol=1e-5, atol=1e-6)
    assert zh.grad.dtype == torch.bfloat16 and bool(torch.isfinite(zh.grad).all())


# ------------------------------------------------------------------ the hybrid from the top-k cache


def _pooled_vocabs(rng: np.random.Generator, V_t: int, V_s: int):
    """Two synthetic vocabularies sharing some strings, several ids of a side on one string
    (pooled), and ids the other side lacks."""
    n = int(rng.integers(1, min(V_t, V_s)))
    tt = [f"s{rng.integers(n)}" if rng.random() < 0.6 else f"t{i}" for i in range(V_t)]
    ts = [f"s{rng.integers(n)}" if rng.random() < 0.6 else f"u{i}" for i in range(V_s)]
    return match_strings(tt, ts)


def _cache_of(p: np.ndarray, k: int):
    """The teacher cache's view of full rows ``p`` (R, V_t): top-k values, their ids, the tail mass."""
    ids = np.argsort(-p, -1, kind="stable")[:, :k]
    top = np.take_along_axis(p, ids, -1)
    return top, ids, p.sum(-1) - top.sum(-1)


def _completions(p: np.ndarray, k: int, q: np.ndarray, m, rng: np.random.Generator) -> list[np.ndarray]:
    """Full rows that agree with the cache of ``p`` (the same top-k values and ids, tail mass r,
    every other entry <= c, the k-th value): ``p`` itself and r poured, c per id, onto the tail ids
    in extreme orders: matched ids first (those of the strings the student likes most first), the
    matched strings the top-k miss first (least student mass first), unmatched ids first, at random."""
    out = [p]
    R, V_t = p.shape
    ids = _cache_of(p, k)[1]
    for order_of in ("matched", "matched-missed", "unmatched", "random"):
        c_row = np.empty_like(p)
        for i in range(R):
            top = ids[i]
            rest = np.setdiff1d(np.arange(V_t), top)
            c, r = p[i, top].min(), p[i, rest].sum()
            g = m.teacher_group[rest]
            Q = string_mass_np(q[i], m.student_group, m.S)
            if order_of == "matched":
                key = np.where(g >= 0, -Q[np.maximum(g, 0)], np.inf)
            elif order_of == "matched-missed":
                hit = np.zeros(m.S, bool)
                hit[m.teacher_group[top][m.teacher_group[top] >= 0]] = True
                key = np.where((g >= 0) & ~hit[np.maximum(g, 0)], Q[np.maximum(g, 0)], np.inf)
            elif order_of == "unmatched":
                key = np.where(g < 0, 0.0, 1.0)
            else:
                key = rng.random(rest.size)
            row = p[i].copy()
            row[rest] = 0.0
            left = r
            for j in rest[np.argsort(key, kind="stable")]:
                row[j] = min(c, left)
                left -= row[j]
                if left <= 0:
                    break
            c_row[i] = row
        out.append(c_row)
    return out


def string_mass_np(x: np.ndarray, group: np.ndarray, S: int) -> np.ndarray:
    out = np.zeros(S)
    np.add.at(out, group[group >= 0], x[group >= 0])
    return out


HYBRID_CONFIGS = [HybridConfig(), HybridConfig(beta=0.1), HybridConfig(beta=0.9), HybridConfig(beta=0.0),
                  HybridConfig(divergence="kl"),
                  HybridConfig(weighting="fixed", matched_weight=1.0, unmatched_weight=2.0)]


@pytest.mark.parametrize("seed", range(30))
def test_hybrid_top_k_within_its_bound_on_every_row(seed):
    """Random teachers, students and pooled vocabularies, every k: for the row itself and for the
    extreme full rows that agree with its cache, the full-vocabulary hybrid (and each part) lies
    within the bound of the estimate, on every row."""
    rng = np.random.default_rng(seed)
    V_t, V_s = int(rng.integers(6, 300)), int(rng.integers(6, 200))
    m = _pooled_vocabs(rng, V_t, V_s)
    if m.S == 0:
        pytest.skip("no shared string drawn")
    cfg = HYBRID_CONFIGS[seed % len(HYBRID_CONFIGS)]
    R, k = 5, int(rng.integers(1, V_t + 1))
    p = np.stack([_peaked(rng, V_t, rng.choice([0.05, 0.3, 2.0])) for _ in range(R)])
    q = np.stack([_peaked(rng, V_s, rng.choice([0.05, 0.3, 2.0])) for _ in range(R)])
    q = np.maximum(q, 1e-300) / np.maximum(q, 1e-300).sum(-1, keepdims=True)  # softmax rows: no exact 0
    top, ids, tail = _cache_of(p, k)
    est = hybrid_top_k(top, ids, tail, q, match=m, config=cfg)
    assert np.all(est.bound >= 0) and np.all(est.matched_bound >= 0) and np.all(est.unmatched_bound >= 0)
    for full in _completions(p, k, q, m, rng):
        np.testing.assert_allclose(_cache_of(full, k)[0], top, atol=1e-15)  # the cache cannot tell them apart
        h = hybrid_uld(full, q, match=m, config=cfg, validate=False)
        tol = 1e-9 * (1 + np.abs(h.value))
        assert np.all(np.abs(h.value - est.value) <= est.bound + tol), (h.value, est.value, est.bound)
        assert np.all(np.abs(h.matched - est.matched) <= est.matched_bound + tol)
        assert np.all(np.abs(h.unmatched - est.unmatched) <= est.unmatched_bound + tol)


@pytest.mark.parametrize("cfg", HYBRID_CONFIGS[:5], ids=lambda c: f"{c.divergence}-{c.beta}")
def test_hybrid_top_k_is_exact_on_a_complete_cache(cfg):
    """k = V_t, or a tail of zeros: the value is the hybrid of the full row and the bound 0."""
    rng = np.random.default_rng(4)
    V_t, V_s = 40, 30
    m = _pooled_vocabs(rng, V_t, V_s)
    p = np.stack([_peaked(rng, V_t, 0.3) for _ in range(4)])
    q = np.stack([_peaked(rng, V_s, 0.5) for _ in range(4)])
    ref = hybrid_uld(p, q, match=m, config=cfg)
    full = hybrid_top_k(*_cache_of(p, V_t), q, match=m, config=cfg)
    np.testing.assert_allclose(full.value, ref.value, rtol=1e-10, atol=1e-12)
    assert np.all(full.bound == 0)
    sparse = p.copy()
    sparse[:, ::3] = 0.0  # a third of the row exactly 0: its top-k keeps all the mass
    sparse /= sparse.sum(-1, keepdims=True)
    k = int((sparse > 0).sum(-1).max())
    top, ids, tail = _cache_of(sparse, k)
    est = hybrid_top_k(top, ids, np.zeros_like(tail), q, match=m, config=cfg)
    np.testing.assert_allclose(est.value, hybrid_uld(sparse, q, match=m, config=cfg).value, rtol=1e-10, atol=1e-12)
    assert np.all(est.bound == 0)


def test_hybrid_top_k_refuses_what_it_cannot_bound():
    m = match_strings(["a", "b", "x"], ["a", "b", "y"])
    args = (np.array([0.6]), np.array([0]), 0.4, np.array([0.5, 0.3, 0.2]))
    with pytest.raises(ValueError, match="beta = 1 makes the matched part KL"):
        hybrid_top_k(*args, match=m, config=HybridConfig(beta=1.0))
    with pytest.raises(ValueError, match="clamp is not supported"):
        hybrid_top_k(*args, match=m, config=HybridConfig(clamp=1e-8))
    with pytest.raises(ValueError, match="hybrid_beta < 1"):
        DistillConfig(loss="hybrid", hybrid_beta=1.0)
    with pytest.raises(ValueError, match="hybrid_beta = 0 .* underflows"):
        DistillConfig(loss="hybrid", hybrid_beta=0.0)
    assert DistillConfig(loss="uld", hybrid_beta=1.0).hybrid_beta == 1.0  # only the hybrid loss reads it


def restated_hybrid_top_k(top, ids, tail, q, m, beta, w_m, w_u):
    """:func:`hybrid_top_k`'s estimate and bound, restated row by row from its docstring on dense
    vectors: the top-k alone as a V_t row, D_K over every shared string, explicit sorts."""
    values, bounds = [], []
    gt, gs = torch.as_tensor(m.teacher_group), torch.as_tensor(m.student_group)

    def f(P, Q):  # the matched part's term (0 log 0 = 0); Q > 0 here (softmax rows)
        if beta == 0.0:
            return torch.special.xlogy(P, torch.where(P > 0, P / Q, 1.0))
        M = beta * P + (1 - beta) * Q
        return beta * torch.special.xlogy(P, torch.where(P > 0, P / M, 1.0)) + (1 - beta) * Q * torch.log(Q / M)

    for i in range(q.shape[0]):
        pk = torch.zeros(gt.numel(), dtype=torch.float64).index_put((ids[i],), top[i])
        PK = torch.zeros(m.S, dtype=torch.float64).index_add(0, gt[gt >= 0], pk[gt >= 0])
        Q = torch.zeros(m.S, dtype=torch.float64).index_add(0, gs[gs >= 0], q[i][gs >= 0])
        r, c = tail[i], top[i].min()
        hit = gt[ids[i]] >= 0
        n_m, n_u = int((gt >= 0).sum()) - int(hit.sum()), int((gt < 0).sum()) - int((~hit).sum())
        a_hi, ru_hi = min(r, c * n_m), min(r, c * n_u)
        a_lo, ru_lo = min(max(0.0, r - ru_hi), a_hi), min(max(0.0, r - a_hi), ru_hi)
        D_K = f(PK, Q).sum()
        Q_m = Q.sum()
        if beta > 0:
            U, a = a_hi * beta * math.log(1 / beta), float(Q_m.detach())
        else:
            hits = PK > 0  # the strings the top-k hit; for the others, a_hi over the smallest shared q_j
            worst = torch.maximum(torch.log((PK[hits] + a_hi) / Q[hits]).max(),
                                  math.log(a_hi) - torch.log(q[i][gs >= 0].min()))
            U, a = a_hi * torch.clamp_min(worst + 1, 0), float(Q_m.detach()) / math.e
        a = torch.tensor(min(max(a, a_lo), a_hi), dtype=torch.float64)
        L = (1 - beta) * math.log(1 / (1 - beta)) * Q_m - f(a, Q_m)  # f(0, Q_m) - f(a, Q_m)
        L = L if a_hi > 0 else torch.zeros((), dtype=torch.float64)
        if beta > 0:
            L = torch.minimum(L, D_K)
        D, B_m = D_K + (U - L) / 2, (U + L) / 2
        known = torch.sort(top[i][~hit], descending=True).values
        b = torch.sort(q[i][gs < 0], descending=True).values
        k_u, n = known.numel(), max(known.numel(), b.numel())
        ap = torch.cat([known, known.new_zeros(n - k_u)])
        bp = torch.cat([b, b.new_zeros(n - b.numel())])
        H = (ap[:k_u] - bp[:k_u]).abs().sum()
        Qp = bp[k_u:].sum()
        lo = H + torch.clamp_min(torch.maximum(ru_lo - Qp, Qp - ru_hi), 0)
        hi = H + Qp + ru_hi
        values.append(w_m * D + w_u * (lo + hi) / 2)
        bounds.append(w_m * B_m + w_u * (hi - lo) / 2)
    return torch.stack(values), torch.stack(bounds)


@pytest.mark.parametrize("seed", range(8))
def test_hybrid_top_k_value_bound_and_gradient_equal_the_restated_formula(seed):
    rng = np.random.default_rng(50 + seed)
    V_t, V_s, R = int(rng.integers(20, 200)), int(rng.integers(20, 150)), 4
    m = _pooled_vocabs(rng, V_t, V_s)
    cfg = HYBRID_CONFIGS[seed % 5]
    beta = 0.0 if cfg.divergence == "kl" else cfg.beta
    p = np.stack([_peaked(rng, V_t, 0.2) for _ in range(R)])
    top, ids, tail = (torch.as_tensor(x) for x in _cache_of(p, int(rng.integers(1, V_t // 2))))
    z0 = torch.tensor(rng.normal(0, 3, (R, V_s)))
    w_m, w_u = cfg.weights(m.teacher_matched.size, V_t)

    def grad(fn):
        z = z0.clone().requires_grad_(True)
        v, b = fn(torch.softmax(z, -1))
        v.sum().backward()
        return v.detach(), b.detach(), z.grad

    def lib_fn(q):
        h = hybrid_top_k(top, ids, tail, q, match=m, config=cfg)
        return h.value, h.bound

    lib = grad(lib_fn)
    ref = grad(lambda q: restated_hybrid_top_k(top, ids, tail.tolist(), q, m, beta, w_m, w_u))
    for a, b in zip(lib, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------ a hand-built batch


def _tok(text: str, ids, spans, prompt_ids) -> Tokenized:
    strings = tuple(text.encode()[a:b].decode() for a, b in spans)
    return Tokenized(text, tuple(ids), strings, tuple(spans), None, "P", tuple(prompt_ids))


def _example(text, t_ids, t_spans, s_ids, s_spans, t_ctx=(1,), s_ctx=(1, 2)) -> Example:
    return Example(Prompt("p", "question", "en", "P"), text, _tok(text, t_ids, t_spans, t_ctx),
                   _tok(text, s_ids, s_spans, s_ctx))


def _cache_from_full(p_rows: np.ndarray, answers_t: list, k: int) -> TeacherCache:
    """A cache from full teacher rows (``k = V_t``: exact)."""
    P = torch.tensor(p_rows, dtype=torch.float32)
    top = torch.topk(P, k, -1)
    ids = torch.cat([torch.tensor(a) for a in answers_t])
    offsets = torch.tensor(np.cumsum([0] + [len(a) for a in answers_t]))
    return TeacherCache(values=top.values, ids=top.indices, tail=(P.double().sum(-1) - top.values.double().sum(-1)).clamp_min(0),
                        actual=P.gather(1, ids.unsqueeze(1)).squeeze(1), offsets=offsets,
                        probe_values=top.values[0], probe_ids=top.indices[0], vocab_size=P.shape[1])


def test_make_batch_shift_hand_worked():
    # student context 2 tokens (1, 2), answer "abc" as 3 tokens: answer token j is predicted at c + j - 1
    ex = _example("abc", [10, 11, 12], [(0, 1), (1, 2), (2, 3)], [20, 21, 22], [(0, 1), (1, 2), (2, 3)])
    ex2 = _example("ab", [10, 11], [(0, 1), (1, 2)], [23], [(0, 2)], s_ctx=(1, 2, 3))
    b = make_batch([ex, ex2], [slice(0, 3), slice(3, 5)], "positional", "observed", pad_id=0)
    L = 5  # max(2 + 3, 3 + 1)
    assert b.input_ids.tolist() == [[1, 2, 20, 21, 22], [1, 2, 3, 23, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # input positions 1, 2, 3 predict 20, 21, 22; example 2: position 2 (its last context token) predicts 23
    assert b.positions.tolist() == [1, 2, 3, L + 2] and b.labels.tolist() == [20, 21, 22, 23]
    # positional pairs: i-th teacher with i-th student answer token, truncated to the shorter answer
    assert b.pair_s.tolist() == [0, 1, 2, 3] and b.pair_t.tolist() == [0, 1, 2, 3]
    assert not b.merged
    # tokens both sides cut alike: all of example 1; example 2's 'ab' is two teacher tokens, one student token
    assert b.same_s.tolist() == [0, 1, 2] and b.same_t.tolist() == [0, 1, 2]


def test_ce_uld_lambda_and_temperatures_hand_computed():
    rng = np.random.default_rng(0)
    V_t, V_s = 9, 7
    ex = _example("abc", [1, 2, 3], [(0, 1), (1, 2), (2, 3)], [4, 5], [(0, 2), (2, 3)])
    p = np.stack([_peaked(rng, V_t, 0.5) for _ in range(3)])
    cache = _cache_from_full(p, [[1, 2, 3]], V_t - 2)  # two entries in the tail
    logits = torch.tensor(rng.normal(0, 2, (2, V_s)), dtype=torch.float32)
    cfg = DistillConfig(loss="ce+uld", uld_weight=1.5, student_temperature=2.0, top_k=8)
    b = make_batch([ex], [slice(0, 3)], "positional", "observed", 0)
    sums = loss_sums(logits, b, cache, cfg)
    ce = -sum(math.log(torch.softmax(logits[j].double(), -1)[t]) for j, t in enumerate([4, 5]))
    assert float(sums["ce"]) == pytest.approx(ce, rel=1e-5)  # CE at T = 1 on the answer tokens
    q = torch.softmax(logits / 2.0, -1).numpy()  # ULD at T_s = 2
    est = sum(float(uld_top_k(np.sort(p[i])[::-1][: V_t - 2], np.sort(p[i])[: 2].sum(), q[i]).value) for i in range(2))
    assert float(sums["uld"]) == pytest.approx(est, rel=1e-5)
    exact = sum(paper_uld(p[i], q[i]) for i in range(2))
    assert abs(float(sums["uld"]) - exact) <= float(sums["uld_bound"]) + 1e-6
    loss, parts = combine(sums, b.n_tokens, b.n_pairs, cfg)
    assert float(loss) == pytest.approx(ce / 2 + 1.5 * float(sums["uld"]) / 2, rel=1e-5)
    assert set(parts) == {"ce", "uld", "uld_bound"}


def test_only_answer_rows_count_prompt_is_masked():
    from transformers import LlamaConfig, LlamaForCausalLM

    from uld_explorer.distill.student import AnswerLogits

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                     num_attention_heads=1, num_key_value_heads=1, tie_word_embeddings=True))
    ex = _example("abc", [1, 2, 3], [(0, 1), (1, 2), (2, 3)], [20, 21, 22], [(0, 1), (1, 2), (2, 3)])
    b = make_batch([ex, ex], [slice(0, 3), slice(0, 3)], "positional", "observed", 0)
    rows = AnswerLogits(m)(b.input_ids, b.attention_mask, b.positions)
    full = m(input_ids=b.input_ids, attention_mask=b.attention_mask).logits  # (B, L, V)
    assert torch.allclose(rows, full.reshape(-1, 50)[b.positions], atol=1e-5)
    # the CE is the one of the answer tokens only: transformers' shifted loss with the prompt labelled -100
    labels = b.input_ids.clone()
    labels[:, :2] = -100
    ref = m(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=labels).loss
    assert float(F.cross_entropy(rows, b.labels).detach()) == pytest.approx(float(ref), rel=1e-5)


def test_exact_cache_gives_the_library_losses():
    """k = V_t (no tail): ULD, KL (shared vocabulary) and the hybrid equal the library on full rows."""
    rng = np.random.default_rng(3)
    V = 11
    ex = _example("abcd", [1, 2, 3, 4], [(0, 1), (1, 2), (2, 3), (3, 4)], [5, 6, 7, 8], [(0, 1), (1, 2), (2, 3), (3, 4)])
    p = np.stack([_peaked(rng, V, 0.4) for _ in range(4)])
    cache = _cache_from_full(p, [[1, 2, 3, 4]], V)
    logits = torch.tensor(rng.normal(0, 2, (4, V)), dtype=torch.float32)
    q = torch.softmax(logits, -1)
    b = make_batch([ex], [slice(0, 4)], "positional", "observed", 0)
    P = torch.tensor(p, dtype=torch.float32)
    cfg = DistillConfig(top_k=V, loss="uld")
    assert float(loss_sums(logits, b, cache, cfg)["uld"]) == pytest.approx(float(uld_distance(P, q).sum()), rel=1e-5)
    cfg = DistillConfig(top_k=V, loss="kl")
    assert float(loss_sums(logits, b, cache, cfg)["kl"]) == pytest.approx(float(kl_divergence(P, q).sum()), rel=1e-4)
    toks_t = [f"t{i}" for i in range(V)]
    toks_s = [f"t{i}" if i % 2 else f"s{i}" for i in range(V)]
    m = match_strings(toks_t, toks_s)
    cfg = DistillConfig(top_k=V, loss="hybrid")
    ref = float(hybrid_uld(P, q, match=m, config=cfg.hybrid).value.sum())
    assert float(loss_sums(logits, b, cache, cfg, m)["hybrid"]) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("T_s", [1.0, 1.7])
def test_uld_part_from_the_logits_equals_uld_top_k_on_the_pairs_softmax(T_s):
    """The training step's ULD (uld_top_k_from_logits on the pairs' logits rows) against the
    composition it replaced, uld_top_k on torch.softmax of those rows: the sums and the
    gradients w.r.t. every logits row (the prompt's rows get none)."""
    rng = np.random.default_rng(11)
    V_t, V_s, k = 60, 40, 6
    ex = _example("abcd", [1, 2, 3, 4], [(0, 1), (1, 2), (2, 3), (3, 4)], [5, 6, 7, 8], [(0, 1), (1, 2), (2, 3), (3, 4)])
    cache = _cache_from_full(np.stack([_peaked(rng, V_t, 0.2) for _ in range(4)]), [[1, 2, 3, 4]], k)
    b = make_batch([ex], [slice(0, 4)], "positional", "observed", 0)
    cfg = DistillConfig(top_k=8, loss="uld", student_temperature=T_s)
    z0 = torch.tensor(rng.normal(0, 2, (4, V_s)), dtype=torch.float32)
    z = z0.clone().requires_grad_()
    sums = loss_sums(z, b, cache, cfg)
    sums["uld"].backward()
    zr = z0.clone().requires_grad_()
    ref = uld_top_k(cache.values[b.pair_t], cache.tail[b.pair_t], torch.softmax(zr[b.pair_s] / T_s, -1),
                    student_temperature=T_s)
    ref.value.sum().backward()
    assert float(sums["uld"]) == pytest.approx(float(ref.value.sum()), rel=1e-5)
    assert float(sums["uld_bound"]) == pytest.approx(float(ref.bound.sum()), rel=1e-4, abs=1e-6)
    torch.testing.assert_close(z.grad, zr.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("merge", [None, "bayesian"])
def test_hybrid_loss_from_a_cache_with_a_tail_is_within_its_bound(merge):
    """k < V_t: the hybrid part's sum is within ``hybrid_bound`` of the full-vocabulary hybrid on
    the teacher's full rows (positional pairs, and chain-rule merged byte-offset groups)."""
    rng = np.random.default_rng(8)
    V_t, V_s, k = 60, 45, 12
    toks_t = [f"s{i % 30}" if i % 3 else f"t{i}" for i in range(V_t)]  # pooled strings, unmatched ids
    toks_s = [f"s{i}" if i < 30 else f"u{i}" for i in range(V_s)]
    m = match_strings(toks_t, toks_s)
    if merge is None:
        ex = _example("abcd", [1, 2, 3, 4], [(0, 1), (1, 2), (2, 3), (3, 4)], [5, 6, 7, 8],
                      [(0, 1), (1, 2), (2, 3), (3, 4)])
    else:
        ex = _example("abcd", [1, 2, 3], [(0, 2), (2, 3), (3, 4)], [4, 5, 6], [(0, 1), (1, 3), (3, 4)])
    T = len(ex.teacher.ids)
    p = np.stack([_peaked(rng, V_t, 0.3) for _ in range(T)])
    cache = _cache_from_full(p, [list(ex.teacher.ids)], k)
    logits = torch.tensor(rng.normal(0, 2, (len(ex.student.ids), V_s)), dtype=torch.float32)
    cfg = DistillConfig(top_k=k, loss="hybrid", **({} if merge is None else dict(alignment="byte-offset", merge=merge)))
    b = make_batch([ex], [slice(0, T)], cfg.alignment, cfg.merge, 0)
    sums = loss_sums(logits, b, cache, cfg, m)
    P, q = torch.tensor(p, dtype=torch.float64), torch.softmax(logits.double(), -1)
    if merge is None:
        ref = hybrid_uld(P, q, match=m, config=cfg.hybrid).value.sum()
    else:
        groups = byte_offset_alignment(ex.teacher, ex.student)
        pt, _ = group_distributions(P, ex.teacher, groups, "teacher", merge)
        qs, _ = group_distributions(q, ex.student, groups, "student", merge)
        ref = hybrid_uld(pt, qs, match=m, config=cfg.hybrid, subprobability=True).value.sum()
    assert float(sums["hybrid_bound"]) > 0
    assert abs(float(sums["hybrid"]) - float(ref)) <= float(sums["hybrid_bound"]) + 1e-5


def test_dense_teacher_spreads_the_tail():
    v, i = torch.tensor([[0.5, 0.3]]), torch.tensor([[4, 1]])
    d = dense_teacher(v, i, torch.tensor([0.2], dtype=torch.float64), 6)
    assert d.tolist()[0] == pytest.approx([0.05, 0.3, 0.05, 0.05, 0.5, 0.05])


@pytest.mark.parametrize("merge", ["observed", "bayesian"])
def test_byte_offset_merged_groups_equal_the_library_merge(merge):
    """Teacher 'ab|c|d', student 'a|bc|d': groups {ab, c} x {a, bc}? no: cuts at common boundaries 0, 3, 4."""
    rng = np.random.default_rng(7)
    V_t, V_s = 10, 8
    text = "abcd"
    t_ids, t_spans = [1, 2, 3], [(0, 2), (2, 3), (3, 4)]
    s_ids, s_spans = [4, 5, 6], [(0, 1), (1, 3), (3, 4)]
    ex = _example(text, t_ids, t_spans, s_ids, s_spans)
    groups = byte_offset_alignment(ex.teacher, ex.student)
    assert [(g.teacher_tokens, g.student_tokens) for g in groups] == [((0, 1), (0, 1)), ((2,), (2,))]
    p = np.stack([_peaked(rng, V_t, 0.5) for _ in range(3)])
    cache = _cache_from_full(p, [t_ids], V_t)
    logits = torch.tensor(rng.normal(0, 2, (3, V_s)), dtype=torch.float32)
    b = make_batch([ex], [slice(0, 3)], "byte-offset", merge, 0)
    assert b.merged
    cfg = DistillConfig(top_k=V_t, loss="uld", alignment="byte-offset", merge=merge)
    got = float(loss_sums(logits, b, cache, cfg)["uld"])
    pt, _ = group_distributions(torch.tensor(p, dtype=torch.float32), ex.teacher, groups, "teacher", merge)
    qs, _ = group_distributions(torch.softmax(logits, -1), ex.student, groups, "student", merge)
    ref = float(uld_distance(pt, qs, subprobability=True).sum())
    assert got == pytest.approx(ref, rel=1e-5)


def test_shared_kl_without_dense_rows_equals_the_dense_completion():
    from uld_explorer import restrict_to_shared_vocab
    from uld_explorer.distill.losses import shared_kl_sum

    rng = np.random.default_rng(11)
    V_t, V_s, k, R = 40, 30, 6, 5
    # pooled strings on both sides ("a" twice in the teacher, "b" twice in the student), unshared ids
    toks_t = ["a", "a", "b", "c"] + [f"t{i}" for i in range(4, V_t)]
    toks_s = ["b", "b", "a", "c", "t5", "t6"] + [f"s{i}" for i in range(6, V_s)]
    m = match_strings(toks_t, toks_s)
    p = np.stack([_peaked(rng, V_t, 0.3) for _ in range(R)])
    P = torch.tensor(p, dtype=torch.float32)
    top = torch.topk(P, k, -1)
    tail = P.double().sum(-1) - top.values.double().sum(-1)
    q = torch.softmax(torch.tensor(rng.normal(0, 2, (R, V_s))), -1).float()
    dense = dense_teacher(top.values, top.indices, tail, V_t)
    sv = restrict_to_shared_vocab(dense, q, match=m, on_empty="nan", validate=False)
    ref = float(torch.nan_to_num(kl_divergence(sv.p, sv.q, validate=False).double(), nan=0.0).sum())
    assert float(shared_kl_sum(q, top.values, top.indices, tail, V_t, m)) == pytest.approx(ref, rel=1e-5)


# ------------------------------------------------------------------ the loss registry

#: Each loss restated by hand from its definition (means: ce over answer tokens, the rest over
#: aligned pairs), independently of the registry.
RESTATED = {
    "ce": lambda s, n_tok, n_pair, cfg: s["ce"] / n_tok,
    "uld": lambda s, n_tok, n_pair, cfg: s["uld"] / n_pair,
    "ce+uld": lambda s, n_tok, n_pair, cfg: s["ce"] / n_tok + cfg.uld_weight * s["uld"] / n_pair,
    "kl": lambda s, n_tok, n_pair, cfg: s["kl"] / n_pair,
    "hybrid": lambda s, n_tok, n_pair, cfg: s["hybrid"] / n_pair,
}


def test_every_registry_entry_is_well_formed():
    from dataclasses import fields

    from uld_explorer.distill.losses import LOSSES, PARTS

    config_fields = {f.name for f in fields(DistillConfig)}
    assert set(RESTATED) == set(LOSSES)  # a new loss gets its restated formula here
    assert list(DistillConfig.__dataclass_fields__["loss"].metadata["choices"]) == list(LOSSES)
    for key, loss in LOSSES.items():
        assert loss.key == key and loss.parts and set(loss.parts) <= set(PARTS), key
        assert all(isinstance(w, float) or w in config_fields for w in loss.weights), key
        assert loss.description and "\n" not in loss.description
        assert all(PARTS[p].label in loss.formula for p in loss.parts)
        DistillConfig(loss=key)  # the config accepts every key
    for key, part in PARTS.items():
        assert part.key == key and part.per in ("tokens", "pairs") and callable(part.fn)
    assert [k for k, loss in LOSSES.items() if loss.shared_tokenizer] == ["kl"]
    assert {k: PARTS[k].per for k in PARTS} == {"ce": "tokens", "uld": "pairs", "kl": "pairs", "hybrid": "pairs"}


@pytest.mark.parametrize("key", list(RESTATED))
def test_combine_is_the_restated_formula(key):
    rng = np.random.default_rng(5)
    sums = {p: torch.tensor(float(rng.uniform(1, 50))) for p in ("ce", "uld", "uld_bound", "kl", "hybrid",
                                                                  "hybrid_bound")}
    cfg = DistillConfig(loss=key, uld_weight=0.7)
    loss, parts = combine(sums, 40, 31, cfg)
    assert float(loss) == pytest.approx(float(RESTATED[key](sums, 40, 31, cfg)), rel=1e-6)
    assert parts["ce"] == pytest.approx(float(sums["ce"]) / 40) and parts["uld_bound"] == pytest.approx(
        float(sums["uld_bound"]) / 31)


def test_loss_sums_computes_the_parts_the_registry_names():
    from uld_explorer.distill.losses import LOSSES, PARTS

    rng = np.random.default_rng(1)
    V = 9
    ex = _example("abc", [1, 2, 3], [(0, 1), (1, 2), (2, 3)], [4, 5, 6], [(0, 1), (1, 2), (2, 3)])
    cache = _cache_from_full(np.stack([_peaked(rng, V, 0.5) for _ in range(3)]), [[1, 2, 3]], V)
    b = make_batch([ex], [slice(0, 3)], "positional", "observed", 0)
    logits = torch.tensor(rng.normal(0, 2, (3, V)), dtype=torch.float32)
    m = match_strings([f"t{i}" for i in range(V)], [f"t{i}" for i in range(V)])
    for key, loss in LOSSES.items():
        got = loss_sums(logits, b, cache, DistillConfig(loss=key, top_k=V), m)
        assert set(got) == {k for p in loss.parts for k in (p, *PARTS[p].extras)}, key


def test_a_new_loss_is_one_registry_entry(monkeypatch):
    """A toy loss (and a toy part) added to the registries: the config accepts it, the CLI offers
    it as a --loss choice, loss_sums computes its parts and combine weighs them, no other edit."""
    from uld_explorer.cli import build_parser
    from uld_explorer.distill.losses import LOSSES, PARTS, Loss, Part

    def top1_sum(x):  # the student's mass on its own top token, summed over the answer tokens
        return {"top1": torch.softmax(x.logits, -1).max(-1).values.sum()}

    monkeypatch.setitem(PARTS, "top1", Part("top1", "tokens", "top-1 mass", "", "max_i q_i", top1_sum))
    monkeypatch.setitem(LOSSES, "toy", Loss("toy", ("ce", "top1", "uld"), (1.0, 0.5, "uld_weight"), "a toy"))
    cfg = DistillConfig(loss="toy", uld_weight=2.0)
    args = build_parser().parse_args(["distill", "--loss", "toy"])
    assert args.loss == "toy"
    rng = np.random.default_rng(2)
    V = 7
    ex = _example("ab", [1, 2], [(0, 1), (1, 2)], [3, 4], [(0, 1), (1, 2)])
    cache = _cache_from_full(np.stack([_peaked(rng, V, 0.5) for _ in range(2)]), [[1, 2]], V)
    b = make_batch([ex], [slice(0, 2)], "positional", "observed", 0)
    logits = torch.tensor(rng.normal(0, 2, (2, V)), dtype=torch.float32)
    sums = loss_sums(logits, b, cache, cfg)
    assert set(sums) == {"ce", "top1", "uld", "uld_bound"}
    assert float(sums["top1"]) == pytest.approx(float(torch.softmax(logits, -1).max(-1).values.sum()))
    loss, _ = combine(sums, 2, 2, cfg)
    assert float(loss) == pytest.approx(float(sums["ce"] / 2 + 0.5 * sums["top1"] / 2 + 2.0 * sums["uld"] / 2))
    assert LOSSES["toy"].formula.startswith("CE + 0.5 * top-1 mass + uld_weight * ULD; ")


def test_the_guide_lists_every_loss_with_its_formula():
    from pathlib import Path

    from uld_explorer.distill.losses import LOSSES

    section = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "distill.md").read_text()
    lines = [line.strip() for line in section.splitlines()]
    rows = {line.split("|")[1].strip().strip("`"): line for line in lines if line.startswith("| `")}
    for key, loss in LOSSES.items():
        assert key in rows, f"the guide's loss table (docs/guide/distill.md) misses {key}"
        assert loss.formula.split(";")[0] in rows[key], key
