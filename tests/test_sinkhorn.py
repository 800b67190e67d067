"""Entropic token-space OT (POT's log-domain Sinkhorn) beside the exact solver on the same support.

Oracles: POT's exact network simplex (``ot.emd2``) on the same top-k + rest support and cost, the
plan's own marginals, the entropic bound OT <= <P_eps, C> <= OT + reg (H(a) + H(b)), and the plan's
entropy growing with epsilon. Teacher ``p`` first, student ``q`` second.
"""

from __future__ import annotations

import numpy as np
import ot
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import uld_explorer as ux
from uld_explorer import OTNotConvergedError, entropic_ot, token_space_sinkhorn_top_k


def entropy(x: np.ndarray) -> float:
    x = x[x > 0]
    return float(-(x * np.log(x)).sum())


def pair(V_t: int, V_s: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    p, q = ux.synthetic_pair(V_t, V_s, noise=0.7, shift=1, seed=seed)
    return p, q, ux.synthetic_tokens(V_t), ux.synthetic_tokens(V_s)


@pytest.mark.parametrize("cost", ["string", "edit"])
def test_the_value_tends_to_pot_exact_within_a_bound_that_shrinks_with_epsilon(cost):
    p, q, tt, ts = pair(30, 22, seed=4)
    exact = ux.token_space_ot_top_k(p, q, tt, ts, k=12, cost=cost, solver="pot")
    a, b = exact.plan.sum(1), exact.plan.sum(0)
    emd2 = float(ot.emd2(a, b, exact.cost))  # POT's exact solver, called here on the same support
    assert exact.value == pytest.approx(emd2, abs=1e-12)
    gaps = []
    for eps in (0.5, 0.1, 0.02, 0.005):
        r = token_space_sinkhorn_top_k(p, q, tt, ts, k=12, epsilon=eps, cost=cost)
        assert r.converged and r.marginal_error <= 1e-6 and 0 < r.iterations < r.iterations_limit
        assert np.array_equal(r.cost, exact.cost) and np.array_equal(r.teacher_index, exact.teacher_index)
        assert r.reg == pytest.approx(eps * exact.cost.max())
        slack = exact.cost.max() * r.marginal_error
        bound = r.reg * (entropy(a) + entropy(b))
        assert emd2 - slack <= r.value <= emd2 + bound + slack, eps
        assert r.value == pytest.approx(float((r.plan * r.cost).sum()))  # the LINEAR cost of the plan
        assert r.objective == pytest.approx(r.value - r.reg * r.entropy)
        gaps.append(r.value - emd2)
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3  # converging to exact OT as eps -> 0


def test_the_plan_has_the_marginals_and_blurs_monotonically_with_epsilon():
    p, q, tt, ts = pair(25, 25, seed=1)
    entropies = []
    for eps in (0.01, 0.05, 0.2, 1.0, 5.0):
        r = token_space_sinkhorn_top_k(p, q, tt, ts, k=10, epsilon=eps)
        a = np.append(p[r.teacher_index], r.teacher_truncated_mass)
        b = np.append(q[r.student_index], r.student_truncated_mass)
        np.testing.assert_allclose(r.plan.sum(1), a, atol=1e-6)
        np.testing.assert_allclose(r.plan.sum(0), b, atol=1e-6)
        assert r.entropy == pytest.approx(entropy(r.plan))
        entropies.append(r.entropy)
    assert all(x < y for x, y in zip(entropies, entropies[1:])), entropies
    # eps -> infinity: the independent coupling a b^T, the blurriest plan
    np.testing.assert_allclose(r.plan, np.outer(a, b), atol=0.05)


def test_an_unconverged_solve_raises_or_reports_nan_never_a_silent_number():
    p, q, tt, ts = pair(40, 30, seed=2)
    with pytest.raises(OTNotConvergedError, match="did not converge in 3 iterations.*Raise epsilon"):
        token_space_sinkhorn_top_k(p, q, tt, ts, k=20, epsilon=0.001, num_iter_max=3)
    r = token_space_sinkhorn_top_k(p, q, tt, ts, k=20, epsilon=0.001, num_iter_max=3, on_not_converged="nan")
    assert np.isnan(r.value) and not r.converged and r.iterations == 3 and r.marginal_error > 1e-6
    assert r.plan.shape == (21, 21)  # the plan as it stood, for a picture


def test_bad_settings_name_the_fix():
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0.0001.*relative to the cost's largest"):
        entropic_ot([1.0], [1.0], [[0.0]], 0.0)
    with pytest.raises(ValueError, match="on_not_converged must be 'raise' or 'nan'"):
        entropic_ot([1.0], [1.0], [[0.0]], 0.1, on_not_converged="warn")


def test_zero_mass_entries_and_the_value_only_mode():
    # k >= V: the rest buckets hold 0 and stay out of the solve
    r = token_space_sinkhorn_top_k([0.7, 0.3], [0.4, 0.6], ["a", "b"], ["a", "b"], k=5, epsilon=0.001)
    assert r.converged and r.value == pytest.approx(0.3, abs=1e-6)  # = TV on one vocabulary
    assert r.plan[-1].sum() == 0 and r.plan[:, -1].sum() == 0
    v = token_space_sinkhorn_top_k([0.7, 0.3], [0.4, 0.6], ["a", "b"], ["a", "b"], k=5, epsilon=0.001, plan=False)
    assert v.plan.shape == (0, 0) and v.value == r.value


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(1, 8), st.integers(0, 10_000),
       st.sampled_from([0.01, 0.05, 0.3]))
@example(3, 8, 4, 9, 0.01)  # found by CI: tiny Dirichlet(0.5) masses at epsilon 0.01 need more than 10,000 iterations
def test_small_random_supports_stay_within_the_entropic_bound_of_emd2(V_t, V_s, k, seed, eps):
    """Converged: within the entropic bound of POT's exact emd2. Not converged (tiny masses at a
    small epsilon can need more than the iteration limit): refused with the message naming the
    fix, never a value."""
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(V_t) * 0.5), rng.dirichlet(np.ones(V_s) * 0.5)
    tt = [rng.choice(["a", "b", "c", "d", "e"]) + str(i % 3) for i in range(V_t)]
    ts = [rng.choice(["a", "b", "c", "d", "e"]) + str(j % 3) for j in range(V_s)]
    try:
        r = token_space_sinkhorn_top_k(p, q, tt, ts, k=k, epsilon=eps, cost="edit")
    except OTNotConvergedError as err:
        assert "did not converge" in str(err) and "Raise epsilon" in str(err), err
        return
    a, b = np.append(p[r.teacher_index], r.teacher_truncated_mass), np.append(q[r.student_index],
                                                                           r.student_truncated_mass)
    emd2 = float(ot.emd2(a, b, r.cost))
    slack = r.cost.max() * r.marginal_error + 1e-9
    assert r.converged and emd2 - slack <= r.value <= emd2 + r.reg * (entropy(a) + entropy(b)) + slack


# ------------------------------------------------------------------------------------ the measure, everywhere


def test_the_sinkhorn_row_in_the_summary_and_the_table_sits_beside_the_exact_token_ot():
    from tiny_models import tiny_student_parts, tiny_teacher
    from tiny_tokenizers import TEXTS

    from uld_explorer.compare import ComparisonConfig, compare_text

    p, q, tt, ts = pair(30, 20, seed=7)
    s = ux.divergence_summary(p, q, top_k=10, sinkhorn_epsilon=0.02)
    assert s.values["sinkhorn_ot"] == s.sinkhorn.value and s.sinkhorn.plan.shape == s.token_ot.plan.shape
    exact, bound = s.token_ot.value, 0.02 * np.log(11 * 11)  # reg (H(a) + H(b)) <= reg log(n_t n_s)
    assert exact - s.sinkhorn.marginal_error <= s.sinkhorn.value <= exact + bound + 1e-6
    assert f"{s.sinkhorn.iterations:,} iterations" in s.notes["sinkhorn_ot"]
    assert "sinkhorn_ot" not in ux.divergence_summary(p, q, top_k=10).values  # off unless asked for
    bad = ux.divergence_summary(p, q, top_k=10, sinkhorn_epsilon=1e-4)  # 10,000 iterations are not enough
    assert bad.values["sinkhorn_ot"] is None and "did not converge" in bad.notes["sinkhorn_ot"]
    with pytest.raises(ValueError, match="sinkhorn_epsilon must be .*>= 0.0001"):
        ComparisonConfig(sinkhorn_epsilon=-1)
    with pytest.raises(ValueError, match="sinkhorn_cost must be one of string, edit"):
        ComparisonConfig(sinkhorn_cost="l2")

    tok, model = tiny_student_parts()
    student = ux.zoo.LoadedModel("tiny-gpt2-spm", tok, model)
    table = compare_text(tiny_teacher(), student, TEXTS["english"], top_k=8, edit_top_k=5, sinkhorn_epsilon=0.02)
    assert {"sinkhorn_ot", "sinkhorn_iterations"} <= set(table.measures)
    for r in table:
        exact = r.values["token_ot_string"]
        assert exact - 1e-6 <= r.values["sinkhorn_ot"] <= exact + 0.02 * np.log(9 * 9) + 1e-6, r.index
        assert 1 <= r.values["sinkhorn_iterations"] < 10_000
