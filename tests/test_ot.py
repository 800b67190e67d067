"""Exact OT (POT): the ULD identities, token-space OT, top-k truncation, numItermax handling.

Teacher ``p`` first, student ``q`` second. Oracles: POT called directly in the test, SciPy's LP
solver, a plain re-statement of the paper's formula, a Python Levenshtein, explicit loops.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linprog

import uld_explorer.ot as uot
from uld_explorer import (
    OTNotConvergedError,
    edit_distance_cost,
    exact_ot,
    rank_space_ot,
    string_identity_cost,
    token_space_ot,
    token_space_ot_top_k,
    uld_distance,
    value_space_ot,
)

# ------------------------------------------------------------------------------------------------
# oracles
# ------------------------------------------------------------------------------------------------


def paper_uld(p, q) -> float:
    """The paper's formula, literally: zero-pad both to n, sort descending, sum |diff|."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    n = max(p.size, q.size)
    ps = np.sort(np.pad(p, (0, n - p.size)))[::-1]
    qs = np.sort(np.pad(q, (0, n - q.size)))[::-1]
    return float(np.abs(ps - qs).sum())


def levenshtein(a: str, b: str) -> int:
    """Textbook dynamic programme: insertions, deletions, substitutions, each cost 1."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def lp_ot(a, b, C) -> float:
    """The transport LP solved by SciPy's HiGHS: min <C, G> s.t. G 1 = a, G^T 1 = b, G >= 0."""
    a, b, C = np.asarray(a, float), np.asarray(b, float), np.asarray(C, float)
    nt, ns = C.shape
    A = np.zeros((nt + ns, nt * ns))
    for i in range(nt):
        A[i, i * ns : (i + 1) * ns] = 1.0
    for j in range(ns):
        A[nt + j, j::ns] = 1.0
    res = linprog(C.ravel(), A_eq=A, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


def pooled_overlap_ot(p, q, tt, ts) -> float:
    """0/1 string cost OT = 1 - sum over shared strings of min(P(s), Q(s)), masses pooled per string."""
    P, Q = {}, {}
    for x, t in zip(p, tt):
        P[t] = P.get(t, 0.0) + float(x)
    for x, t in zip(q, ts):
        Q[t] = Q.get(t, 0.0) + float(x)
    return 1.0 - sum(min(P[s], Q[s]) for s in P if s in Q)


def assert_marginals(plan, a, b, atol=1e-12):
    np.testing.assert_allclose(plan.sum(1), a, rtol=0, atol=atol)
    np.testing.assert_allclose(plan.sum(0), b, rtol=0, atol=atol)
    assert (plan >= -1e-15).all()


# ------------------------------------------------------------------------------------------------
# 1. the ULD identities
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "V_t,V_s", [(1, 1), (2, 7), (7, 2), (5, 5), (64, 17), (17, 64), (300, 300), (500, 123)]
)
@pytest.mark.parametrize("alpha", [0.05, 5.0])
def test_uld_identities(rng, V_t, V_s, alpha):
    p, q = rng.dirichlet(np.full(V_t, alpha)), rng.dirichlet(np.full(V_s, alpha))
    n = max(V_t, V_s)
    p_pad, q_pad = np.pad(p, (0, n - V_t)), np.pad(q, (0, n - V_s))
    oracle = paper_uld(p, q)

    uld = float(uld_distance(p, q))
    value_ot = value_space_ot(p, q)
    rank_ot = rank_space_ot(p, q)

    u = np.full(n, 1.0 / n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a POT warning (e.g. numItermax) would fail the test
        direct_value = n * ot.emd2(u, u, np.abs(p_pad[:, None] - q_pad[None, :]))
        p_sorted, q_sorted = -np.sort(-p_pad), -np.sort(-q_pad)
        direct_rank = 2 * ot.emd2(p_sorted, q_sorted, 1.0 - np.eye(n))
    w1d = n * ot.wasserstein_1d(p_pad, q_pad, p=1)

    for name, v in [
        ("uld_distance", uld),
        ("value_space_ot", value_ot.value),
        ("n * ot.emd2 value space", direct_value),
        ("n * ot.wasserstein_1d", w1d),
        ("2 * rank_space_ot", 2 * rank_ot.value),
        ("2 * ot.emd2 rank space", direct_rank),
    ]:
        assert v == pytest.approx(oracle, abs=1e-9), name
    assert 0.0 <= oracle <= 2.0


def test_uld_is_not_w1_with_ranks_as_locations(rng):
    # sorted p = (.5, .5, 0), q = (1/3, 1/3, 1/3): ULD = 1/6 + 1/6 + 1/3 = 2/3, but W1 over ranks
    # with probabilities as weights is sum |CDF_p - CDF_q| = 1/6 + 1/3 = 1/2
    p, q = np.array([0.5, 0.5]), np.full(3, 1 / 3)
    ranks = np.arange(3, dtype=float)
    w_ranks = ot.wasserstein_1d(ranks, ranks, np.pad(p, (0, 1)), q, p=1)
    assert float(uld_distance(p, q)) == pytest.approx(2 / 3, abs=1e-12)
    assert w_ranks == pytest.approx(1 / 2, abs=1e-9)
    assert abs(float(uld_distance(p, q)) - w_ranks) > 0.1
    # and on a random pair, sorted as the paper sorts them
    p, q = rng.dirichlet(np.ones(20)), rng.dirichlet(np.ones(20))
    ps, qs = -np.sort(-p), -np.sort(-q)
    r = np.arange(20, dtype=float)
    assert abs(float(uld_distance(p, q)) - ot.wasserstein_1d(r, r, ps, qs, p=1)) > 1e-3
    assert abs(float(uld_distance(p, q)) - ot.wasserstein_1d(r, r, p, q, p=1)) > 1e-3


def test_uld_is_min_over_bijections_small(rng):
    # ULD = min over permutations sigma of sum |p_i - q_sigma(i)|: brute force on 6 entries
    from itertools import permutations

    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(4))
    qp = np.pad(q, (0, 2))
    best = min(np.abs(p - qp[list(s)]).sum() for s in permutations(range(6)))
    assert float(uld_distance(p, q)) == pytest.approx(best, abs=1e-12)


# ------------------------------------------------------------------------------------------------
# 7. plans, token-space OT
# ------------------------------------------------------------------------------------------------


def test_exact_ot_marginals_and_value_vs_linprog(rng):
    for nt, ns in [(4, 6), (6, 4), (5, 5), (1, 3)]:
        a, b = rng.dirichlet(np.ones(nt)), rng.dirichlet(np.ones(ns))
        C = rng.random((nt, ns)) * 3
        r = exact_ot(a, b, C)
        assert_marginals(r.plan, a, b)
        assert r.value == pytest.approx(float((r.plan * C).sum()), abs=1e-12)
        assert r.value == pytest.approx(lp_ot(a, b, C), abs=1e-9)
        np.testing.assert_array_equal(r.cost, C)
        assert r.iterations_limit == uot.NUM_ITER_MAX


def test_exact_ot_docstring_case_and_torch_inputs():
    r = exact_ot([0.5, 0.5], [1.0], [[0.0], [2.0]])
    assert r.value == pytest.approx(1.0) and r.plan.tolist() == [[0.5], [0.5]]
    rt = exact_ot(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([1.0]), torch.tensor([[0.0], [2.0]]))
    assert rt.value == pytest.approx(1.0)


@pytest.mark.parametrize("V_t,V_s", [(6, 3), (3, 6), (8, 8)])
def test_value_space_and_rank_space_plans(rng, V_t, V_s):
    p, q = rng.dirichlet(np.ones(V_t)), rng.dirichlet(np.ones(V_s))
    n = max(V_t, V_s)
    r = value_space_ot(p, q)
    assert r.plan.shape == (n, n)
    assert_marginals(r.plan, np.ones(n), np.ones(n), atol=1e-9)  # scaled by n
    p_pad, q_pad = np.pad(p, (0, n - V_t)), np.pad(q, (0, n - V_s))
    np.testing.assert_allclose(r.cost, np.abs(p_pad[:, None] - q_pad[None, :]))
    assert r.value == pytest.approx(float((r.plan * r.cost).sum()), abs=1e-12)
    rr = rank_space_ot(p, q)
    assert rr.plan.shape == (n, n)
    assert_marginals(rr.plan, -np.sort(-p_pad), -np.sort(-q_pad))
    # rank-space value = TV of the sorted vectors, by LP too
    assert rr.value == pytest.approx(lp_ot(-np.sort(-p_pad), -np.sort(-q_pad), 1 - np.eye(n)), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_string_cost_same_vocab_is_tv(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 30))
    toks = [f"t{i}" for i in range(V)]
    p, q = rng.dirichlet(np.full(V, 0.5)), rng.dirichlet(np.full(V, 0.5))
    C = string_identity_cost(toks, toks)
    np.testing.assert_array_equal(C, 1 - np.eye(V))
    r = token_space_ot(p, q, C)
    assert r.value == pytest.approx(0.5 * np.abs(p - q).sum(), abs=1e-9)
    assert_marginals(r.plan, p, q)


@pytest.mark.parametrize("seed", range(4))
def test_string_cost_different_vocabs_is_unshared_mass(seed):
    rng = np.random.default_rng(seed)
    alphabet = ["the", "a", "cat", "dog", " Paris", "巴黎", "", "moon"]
    V_t, V_s = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    tt, ts = list(rng.choice(alphabet, V_t)), list(rng.choice(alphabet, V_s))  # duplicates likely
    p, q = rng.dirichlet(np.ones(V_t)), rng.dirichlet(np.ones(V_s))
    C = string_identity_cost(tt, ts)
    for i in range(V_t):
        for j in range(V_s):
            assert C[i, j] == (0.0 if tt[i] == ts[j] else 1.0)
    r = token_space_ot(p, q, C)
    assert r.value == pytest.approx(pooled_overlap_ot(p, q, tt, ts), abs=1e-9)
    assert r.value == pytest.approx(lp_ot(p, q, C), abs=1e-9)
    assert_marginals(r.plan, p, q)


def test_string_cost_hand_example():
    # teacher: dog .5, cat .3, moon .2; student: cat .6, dog .4 -> stays: dog .4 + cat .3 -> 0.3 moves
    r = token_space_ot([0.5, 0.3, 0.2], [0.6, 0.4], string_identity_cost(["dog", "cat", "moon"], ["cat", "dog"]))
    assert r.value == pytest.approx(0.3, abs=1e-12)


def test_edit_distance_cost_vs_python_levenshtein():
    tt = ["cat", "cart", "", "Paris", " Paris", "巴黎", "ab", "kitten", "a"]
    ts = ["cat", "", "sitting", "paris", "巴", "ba", "abc", "a", "ĠParis"]
    C = edit_distance_cost(tt, ts)
    assert C.shape == (len(tt), len(ts))
    for i, a in enumerate(tt):
        for j, b in enumerate(ts):
            exp = 0.0 if not a and not b else levenshtein(a, b) / max(len(a), len(b))
            assert C[i, j] == pytest.approx(exp, abs=1e-12), (a, b)
    assert edit_distance_cost([""], [""])[0, 0] == 0.0
    assert edit_distance_cost(["kitten"], ["sitting"])[0, 0] == pytest.approx(3 / 7)
    assert ((C >= 0) & (C <= 1)).all()


@pytest.mark.parametrize("seed", range(3))
def test_token_space_ot_with_edit_cost_vs_linprog(seed):
    rng = np.random.default_rng(seed)
    tt = ["cat", "cart", "car", "dog", "do"]
    ts = ["cats", "dog", "c", "d", "doge", "x"]
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(6))
    C = edit_distance_cost(tt, ts)
    r = token_space_ot(p, q, C)
    assert r.value == pytest.approx(lp_ot(p, q, C), abs=1e-9)
    assert_marginals(r.plan, p, q)


# ------------------------------------------------------------------------------------------------
# top-k truncation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("cost", ["string", "edit"])
def test_top_k_truncation(rng, k, cost):
    V_t, V_s = 40, 25
    tt = [f"w{i % 30}" for i in range(V_t)]
    ts = [f"w{(3 * i) % 35}" for i in range(V_s)]
    p, q = rng.dirichlet(np.full(V_t, 0.3)), rng.dirichlet(np.full(V_s, 0.3))
    r = token_space_ot_top_k(p, q, tt, ts, k=k, cost=cost)
    assert r.plan.shape == (k + 1, k + 1) and r.cost.shape == (k + 1, k + 1)
    assert r.teacher_truncated_mass == pytest.approx(1 - np.sort(p)[::-1][:k].sum(), abs=1e-12)
    assert r.student_truncated_mass == pytest.approx(1 - np.sort(q)[::-1][:k].sum(), abs=1e-12)
    np.testing.assert_array_equal(r.teacher_index, np.argsort(-p, kind="stable")[:k])
    np.testing.assert_array_equal(r.student_index, np.argsort(-q, kind="stable")[:k])
    a = np.append(p[r.teacher_index], r.teacher_truncated_mass)
    b = np.append(q[r.student_index], r.student_truncated_mass)
    assert_marginals(r.plan, a, b, atol=1e-9)
    # named block is the builder's cost on the kept strings; rest bucket costs 1, rest-rest 0
    build = string_identity_cost if cost == "string" else edit_distance_cost
    np.testing.assert_allclose(r.cost[:-1, :-1], build([tt[i] for i in r.teacher_index], [ts[j] for j in r.student_index]))
    assert (r.cost[-1, :-1] == 1).all() and (r.cost[:-1, -1] == 1).all() and r.cost[-1, -1] == 0
    assert r.value == pytest.approx(lp_ot(a, b, r.cost), abs=1e-9)
    # the documented bound against the untruncated problem
    full = token_space_ot(p, q, build(tt, ts)).value
    assert abs(r.value - full) <= r.teacher_truncated_mass + r.student_truncated_mass + 1e-9


@pytest.mark.parametrize("cost", ["string", "edit"])
def test_top_k_at_least_vocab_equals_untruncated(rng, cost):
    tt = ["a", "b", "c", "d", "e", "f"]
    ts = ["b", "a", "x", "ab", "f"]
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(5))
    build = string_identity_cost if cost == "string" else edit_distance_cost
    full = token_space_ot(p, q, build(tt, ts)).value
    for k in (6, 7, 500):
        r = token_space_ot_top_k(p, q, tt, ts, k=k, cost=cost)
        assert r.teacher_truncated_mass == 0.0 and r.student_truncated_mass == 0.0
        assert r.plan.shape == (7, 6)
        assert r.value == pytest.approx(full, abs=1e-9)


def test_top_k_rest_bucket_costs_one_even_when_kept_tokens_match():
    # top-1 of each side is "a" (named cost 0): 0.4 of the teacher's "a" has to move to the
    # student's rest bucket, which costs 1 (an unknown token), not 0. Full problem: 0.5.
    p, q = [0.9, 0.1], [0.5, 0.5]
    r = token_space_ot_top_k(p, q, ["a", "b"], ["a", "c"], k=1)
    assert r.value == pytest.approx(0.4, abs=1e-12)
    full = token_space_ot(p, q, string_identity_cost(["a", "b"], ["a", "c"])).value
    assert full == pytest.approx(pooled_overlap_ot(p, q, ["a", "b"], ["a", "c"]))
    assert abs(r.value - full) <= r.teacher_truncated_mass + r.student_truncated_mass
    # docstring example
    r = token_space_ot_top_k([0.6, 0.3, 0.1], [0.5, 0.5], ["a", "b", "c"], ["b", "a"], k=2)
    assert r.value == pytest.approx(0.2) and r.teacher_truncated_mass == pytest.approx(0.1)


def test_top_k_callable_cost_and_rest_cost(rng):
    tt, ts = ["a", "bb", "ccc", "dddd"], ["e", "ff", "ggg"]
    p, q = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(3))

    def length_cost(a, b):
        return np.abs(np.subtract.outer([len(x) for x in a], [len(y) for y in b])).astype(float)

    r = token_space_ot_top_k(p, q, tt, ts, k=2, cost=length_cost)
    named = length_cost([tt[i] for i in r.teacher_index], [ts[j] for j in r.student_index])
    np.testing.assert_array_equal(r.cost[:-1, :-1], named)
    assert (r.cost[-1, :-1] == named.max()).all() and r.cost[-1, -1] == 0
    r2 = token_space_ot_top_k(p, q, tt, ts, k=2, cost=length_cost, rest_cost=7.0)
    assert (r2.cost[:-1, -1] == 7.0).all()
    with pytest.raises(ValueError, match="cost builder must return shape"):
        token_space_ot_top_k(p, q, tt, ts, k=2, cost=lambda a, b: np.zeros((1, 1)))
    with pytest.raises(ValueError, match="cost must be one of"):
        token_space_ot_top_k(p, q, tt, ts, k=2, cost="cosine")
    with pytest.raises(ValueError, match="teacher_tokens"):
        token_space_ot_top_k(p, q, tt[:-1], ts, k=2)
    with pytest.raises(ValueError, match="student_tokens"):
        token_space_ot_top_k(p, q, tt, ts + ["x"], k=2)
    with pytest.raises(ValueError, match=r"\bk must be a positive integer"):
        token_space_ot_top_k(p, q, tt, ts, k=0)


# ------------------------------------------------------------------------------------------------
# 8. numItermax and MAX_SUPPORT
# ------------------------------------------------------------------------------------------------


def _hard_problem():
    rng = np.random.default_rng(1)
    return rng.dirichlet(np.ones(30)), rng.dirichlet(np.ones(30)), rng.random((30, 30))


def test_num_iter_max_is_raised_until_optimal():
    a, b, C = _hard_problem()
    # POT alone stops early and returns a non-optimal plan with only a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, log = ot.emd(a, b, C, numItermax=1, log=True)
    assert log["result_code"] == 3
    ref = exact_ot(a, b, C)
    r = exact_ot(a, b, C, num_iter_max=1)
    assert r.iterations_limit > 1
    assert r.value == pytest.approx(ref.value, abs=1e-12)
    assert r.value == pytest.approx(lp_ot(a, b, C), abs=1e-9)
    assert_marginals(r.plan, a, b)


def test_not_converged_raises(monkeypatch):
    a, b, C = _hard_problem()
    monkeypatch.setattr(uot, "MAX_ITER_CAP", 10)
    with pytest.raises(OTNotConvergedError, match="value would be wrong") as info:
        exact_ot(a, b, C, num_iter_max=1)
    assert isinstance(info.value, RuntimeError)
    assert "numItermax=10" in str(info.value)  # it did retry (x10) before giving up
    with pytest.raises(OTNotConvergedError, match="value would be wrong"):
        token_space_ot(a, b, C, num_iter_max=1)


def test_max_support(monkeypatch):
    monkeypatch.setattr(uot, "MAX_SUPPORT", 8)
    p, q = np.full(9, 1 / 9), np.full(4, 1 / 4)
    for fn in (value_space_ot, rank_space_ot):
        with pytest.raises(ValueError, match="uld_distance") as info:
            fn(p, q)
        assert "MAX_SUPPORT=8" in str(info.value)
    with pytest.raises(ValueError, match="MAX_SUPPORT"):
        exact_ot(p, q, np.ones((9, 4)))
    value_space_ot(p[:8] / p[:8].sum(), q)  # n == MAX_SUPPORT is fine


# ------------------------------------------------------------------------------------------------
# 9. cost validation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cost,match",
    [
        (np.zeros((2, 3)), r"cost must have shape \(n_t, n_s\) = \(2, 2\)"),
        (np.zeros((3, 2)), r"cost must have shape"),
        (np.array([[0.0, -1.0], [1.0, 0.0]]), r"cost must be finite and non-negative"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), r"cost must be finite and non-negative"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), r"cost must be finite and non-negative"),
    ],
)
def test_exact_ot_bad_cost(cost, match):
    with pytest.raises(ValueError, match=match):
        exact_ot([0.5, 0.5], [0.3, 0.7], cost)
    with pytest.raises(ValueError, match=match):
        token_space_ot([0.5, 0.5], [0.3, 0.7], cost)


def test_exact_ot_rejects_batches():
    with pytest.raises(ValueError, match=r"\ba must be ONE distribution"):
        exact_ot(np.full((2, 2), 0.5), [1.0], np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"\bq must be ONE distribution"):
        value_space_ot([1.0], np.full((2, 2), 0.5))


# ---------------------------------------------------------------------------------------------
# closed form for the 0/1 group cost (string identity) vs POT's network simplex
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_zero_one_group_ot_equals_pot(seed):
    from uld_explorer import zero_one_group_ot

    rng = np.random.default_rng(seed)
    n_t, n_s = rng.integers(1, 40, size=2)
    a = rng.dirichlet(np.full(n_t, 0.3))
    b = rng.dirichlet(np.full(n_s, 0.3))
    g_a = rng.integers(0, 8, size=n_t)  # several tokens per group on both sides (duplicated strings)
    g_b = rng.integers(0, 8, size=n_s)
    C = (g_a[:, None] != g_b[None, :]).astype(float)
    expected = ot.emd2(a, b, C)
    r = zero_one_group_ot(a, b, g_a, g_b)
    assert r.value == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(r.plan.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(r.plan.sum(0), b, atol=1e-12)
    assert (r.plan >= 0).all()
    assert float((r.plan * C).sum()) == pytest.approx(r.value, abs=1e-12)  # the plan attains it
    from uld_explorer import zero_one_group_value

    assert zero_one_group_value(a, b, g_a, g_b) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_top_k_string_closed_form_equals_pot_solver(k):
    rng = np.random.default_rng(k)
    words = [f"w{i}" for i in range(60)]
    teacher = list(rng.choice(words, size=40))  # duplicates allowed, partial overlap
    student = list(rng.choice(words, size=30))
    p, q = rng.dirichlet(np.full(40, 0.2)), rng.dirichlet(np.full(30, 0.2))
    fast = token_space_ot_top_k(p, q, teacher, student, k=k, cost="string")
    slow = token_space_ot_top_k(p, q, teacher, student, k=k, cost="string", solver="pot")
    assert fast.iterations_limit == 0 and slow.iterations_limit > 0
    assert fast.value == pytest.approx(slow.value, abs=1e-12)
    value_only = token_space_ot_top_k(p, q, teacher, student, k=k, cost="string", plan=False)
    assert value_only.value == pytest.approx(slow.value, abs=1e-12) and value_only.plan.size == 0
    np.testing.assert_array_equal(value_only.teacher_index, slow.teacher_index)
    assert value_only.student_truncated_mass == slow.student_truncated_mass
    np.testing.assert_array_equal(fast.cost, slow.cost)
    np.testing.assert_allclose(fast.plan.sum(1), slow.plan.sum(1), atol=1e-12)
    np.testing.assert_allclose(fast.plan.sum(0), slow.plan.sum(0), atol=1e-12)


def test_top_k_bad_solver_is_named():
    with pytest.raises(ValueError, match="solver must be 'auto' or 'pot'"):
        token_space_ot_top_k([1.0], [1.0], ["a"], ["a"], k=1, solver="sinkhorn")


@pytest.mark.parametrize("V_t,V_s", [(1, 1), (3, 7), (7, 3), (40, 40), (300, 120), (5000, 20000)])
def test_value_space_w1_equals_pot_wasserstein_1d_and_uld(V_t, V_s):
    from uld_explorer import uld_distance, value_space_w1

    rng = np.random.default_rng(V_t * 7 + V_s)
    p, q = rng.dirichlet(np.full(V_t, 0.1)), rng.dirichlet(np.full(V_s, 0.1))
    p[: V_t // 3] = 0.0  # exact zeros and ties with the padding
    p /= p.sum() if p.sum() > 0 else 1.0
    if p.sum() == 0:
        p[0] = 1.0
    n = max(V_t, V_s)
    oracle = n * ot.wasserstein_1d(np.pad(p, (0, n - V_t)), np.pad(q, (0, n - V_s)), p=1)
    assert value_space_w1(p, q) == pytest.approx(oracle, abs=1e-9)
    assert value_space_w1(p, q) == pytest.approx(float(uld_distance(p, q)), abs=1e-9)


def test_value_space_w1_subprobability():
    from uld_explorer import uld_distance, value_space_w1

    p, q = np.array([0.3, 0.1, 0.05]), np.array([0.5, 0.5])
    assert value_space_w1(p, q, subprobability=True) == pytest.approx(
        float(uld_distance(p, q, subprobability=True)), abs=1e-12
    )
    with pytest.raises(ValueError, match="^p must sum to 1"):
        value_space_w1(p, q)


# ------------------------------------------------------------------------------------------------
# ULD / 2 versus token-space OT with the 0/1 string cost (one [0, 1] scale)
# ------------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def vocab_pair(draw, unique: bool = True):
    """A teacher and a student over word-like vocabularies that share some strings.

    ``unique``: every string at most once per vocabulary (the cost-0 pairs form a matching)."""
    V_t, V_s = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    words = [f"w{i}" for i in range(16)]
    if unique:
        tt = draw(st.permutations(words))[:V_t]
        ts = draw(st.permutations(words))[:V_s]
    else:
        tt = draw(st.lists(st.sampled_from(words[:4]), min_size=V_t, max_size=V_t))
        ts = draw(st.lists(st.sampled_from(words[:4]), min_size=V_s, max_size=V_s))
    entry = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.5, 1.0]))
    p = np.asarray(draw(st.lists(entry, min_size=V_t, max_size=V_t).filter(lambda x: sum(x) > 1e-3)))
    q = np.asarray(draw(st.lists(entry, min_size=V_s, max_size=V_s).filter(lambda x: sum(x) > 1e-3)))
    return p / p.sum(), q / q.sum(), list(tt), list(ts)


@given(vocab_pair())
@settings(max_examples=200, deadline=None)
def test_uld_half_is_a_lower_bound_of_the_01_token_ot(pair):
    """ULD/2 = min over relabellings of the 0/1 OT <= the 0/1 OT of ONE labelling (the strings'),
    when each string appears at most once per vocabulary. Both in [0, 1]; POT is the oracle."""
    p, q, tt, ts = pair
    full = token_space_ot(p, q, string_identity_cost(tt, ts)).value
    uld_half = paper_uld(p, q) / 2
    assert 0.0 <= uld_half <= 1.0 + 1e-12 and 0.0 <= full <= 1.0 + 1e-12
    assert uld_half <= full + 1e-9
    # the same through the top-k entry point without truncation, and the rank-space identity
    assert token_space_ot_top_k(p, q, tt, ts, k=len(tt) + len(ts)).value == pytest.approx(full, abs=1e-9)
    assert rank_space_ot(p, q).value == pytest.approx(uld_half, abs=1e-9)


def test_uld_half_can_exceed_the_01_token_ot_when_a_string_repeats():
    """Two teacher ids spelling 'a' pool their mass: the string OT is 0, ULD/2 is not. The
    documented exception (the comparison table says so in its notes)."""
    p, q = np.array([0.5, 0.5]), np.array([1.0])
    full = token_space_ot(p, q, string_identity_cost(["a", "a"], ["a"])).value
    assert full == pytest.approx(0.0, abs=1e-12) and paper_uld(p, q) / 2 == pytest.approx(0.5)


def test_uld_half_can_exceed_the_truncated_token_ot():
    """top-k + rest: the two rest buckets move to each other for free, so the truncated OT can fall
    below ULD/2 (uniform teacher over 100 tokens, student over 10, top-1)."""
    tt, ts = [f"t{i}" for i in range(100)], [f"s{i}" for i in range(10)]
    p, q = np.full(100, 0.01), np.full(10, 0.1)
    truncated = token_space_ot_top_k(p, q, tt, ts, k=1).value
    full = token_space_ot(p, q, string_identity_cost(tt, ts)).value
    assert truncated == pytest.approx(0.1, abs=1e-12)  # 1 - min(rest_t, rest_s) = 1 - 0.9
    assert paper_uld(p, q) / 2 == pytest.approx(0.9, abs=1e-12) and full == pytest.approx(1.0, abs=1e-12)
    assert truncated < paper_uld(p, q) / 2 <= full


def test_zero_one_group_ot_with_a_subnormal_group_mass_stays_finite():
    """Found by hypothesis: a student entry of 2.2e-309 (subnormal) made 1 / max(A_g, B_g)
    overflow, and the plan NaN. The plan must stay finite and optimal (POT agrees)."""
    a, b = np.array([1.0]), np.array([1.0, 2.22507386e-309])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warning either
        r = uot.zero_one_group_ot(a, b, [0], [0, 1])
    assert np.isfinite(r.plan).all()
    np.testing.assert_allclose(r.plan.sum(1), a / a.sum(), atol=1e-15)
    assert r.value == pytest.approx(exact_ot(a, b, r.cost).value, abs=1e-12)
