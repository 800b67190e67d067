"""The gradient lens against torch.autograd and central finite differences of each loss restated.

Oracles: every loss written again here in float64 torch from its formula (sort, pad, L1; KL of the
renormalized string masses; GOLD's hybrid on unnormalized masses), differentiated by autograd and
by central differences; invariants (pushes sum to 0, ULD blind to which id holds a value); the
library's own values (``uld_distance``, ``kl_divergence`` on ``restrict_to_shared_vocab``,
``hybrid_uld``). One real position of the default pair (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uld_explorer import HybridConfig, hybrid_uld, kl_divergence, restrict_to_shared_vocab, uld_distance
from uld_explorer.lens import (
    LENS_LOSSES, lens_frame, logit_gradients, logit_gradients_from_probs, read_lens, teacher_target,
)
from uld_explorer.text.vocab import match_strings

SIZES = [(5, 5), (7, 4), (4, 9), (30, 20), (16, 40)]  # (V_t, V_s)
HYBRIDS = {
    "jsd": HybridConfig(), "kl": HybridConfig(divergence="kl"), "beta0": HybridConfig(beta=0.0),
    "beta1": HybridConfig(beta=1.0), "beta0.3-fixed": HybridConfig(beta=0.3, weighting="fixed", matched_weight=0.7,
                                                                   unmatched_weight=2.0),
    "clamp": HybridConfig(clamp=0.02),
}


# ------------------------------------------------------------------------ the losses, restated
def masses(x: torch.Tensor, group: np.ndarray, S: int) -> torch.Tensor:
    """(R, S): out[:, s] = sum of x[:, v] over the ids v spelling string s."""
    on = torch.from_numpy(np.flatnonzero(group >= 0))
    return torch.zeros(x.shape[0], S, dtype=x.dtype).index_add(1, torch.from_numpy(group)[on], x[:, on])


def sorted_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Boizard et al.: sort both descending (stable), zero-pad the shorter, sum |differences|."""
    n = max(a.shape[-1], b.shape[-1])
    pad = lambda x: torch.nn.functional.pad(torch.sort(x, dim=-1, descending=True, stable=True).values,  # noqa: E731
                                            (0, n - x.shape[-1]))
    return (pad(a) - pad(b)).abs().sum(-1)


def restated(key: str, p: np.ndarray, z: torch.Tensor, *, T: float, target, match, lam: float = 1.5,
             cfg: HybridConfig = HybridConfig()) -> torch.Tensor:
    """The loss ``key`` of logits z (R, V_s), summed over the rows (rows are independent)."""
    P0 = torch.from_numpy(p)
    q = torch.softmax(z / T, -1)
    if key == "ce":
        y = torch.as_tensor(target)
        return -torch.log_softmax(z, -1).gather(1, y[:, None]).sum()
    if key == "kl":
        return (P0 * (torch.log(P0) - torch.log(q))).sum()
    if key == "uld":
        return sorted_l1(P0, q).sum()
    if key == "ce+uld":
        return restated("ce", p, z, T=T, target=target, match=match) + lam * restated("uld", p, z, T=T, target=target,
                                                                                        match=match)
    P, Q = masses(P0, match.teacher_group, match.S), masses(q, match.student_group, match.S)  # (R, S)
    if key == "kl_shared":
        Pt, Qt = P / P.sum(-1, keepdim=True), Q / Q.sum(-1, keepdim=True)
        return (Pt * (torch.log(Pt) - torch.log(Qt))).sum()
    assert key == "hybrid"
    n_m = int((match.teacher_group >= 0).sum())
    w_m, w_u = (cfg.matched_weight, cfg.unmatched_weight) if cfg.weighting == "fixed" else (
        n_m / p.shape[-1], 1 - n_m / p.shape[-1])
    if cfg.clamp is not None:
        P, Q = P.clamp_min(cfg.clamp), Q.clamp_min(cfg.clamp)
    b = cfg.beta
    if cfg.divergence == "kl" or b == 0.0:
        D = (P * torch.log(P / Q)).sum(-1)
    elif b == 1.0:
        D = (Q * torch.log(Q / P)).sum(-1)
    else:
        M = b * P + (1 - b) * Q
        D = (b * P * torch.log(P / M) + (1 - b) * Q * torch.log(Q / M)).sum(-1)
    pu = P0[:, torch.from_numpy(np.flatnonzero(match.teacher_group < 0))]
    qu = q[:, torch.from_numpy(np.flatnonzero(match.student_group < 0))]
    return (w_m * D + w_u * sorted_l1(pu, qu)).sum()


def autograd(key: str, p, z: np.ndarray, **kw) -> np.ndarray:
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    restated(key, p, zt, **kw).backward()
    return zt.grad.numpy()


def finite_differences(key: str, p, z: np.ndarray, eps: float = 1e-6, **kw) -> np.ndarray:
    g = np.zeros_like(z)
    with torch.no_grad():
        for idx in np.ndindex(*z.shape):
            zp, zm = z.copy(), z.copy()
            zp[idx] += eps
            zm[idx] -= eps
            g[idx] = (restated(key, p, torch.from_numpy(zp), **kw) - restated(key, p, torch.from_numpy(zm), **kw)
                      ).item() / (2 * eps)
    return g


# ------------------------------------------------------------------------ random cases
def vocabularies(rng, V_t: int, V_s: int) -> tuple[list[str], list[str]]:
    """Strings with some shared, some pooled (two ids, one string), some on one side only; every
    side keeps at least one unmatched id and at least one shared string."""
    words = [f"w{i}" for i in range(max(2, min(V_t, V_s) - 1))]
    side = lambda V, tag: [words[rng.integers(len(words))] if rng.random() < 0.6 else f"{tag}{i}"  # noqa: E731
                           for i in range(V)]
    t, s = side(V_t, "t"), side(V_s, "s")
    t[0], s[0], t[-1], s[-1] = "w0", "w0", "t_only", "s_only"
    return t, s


def case(rng, V_t: int, V_s: int, R: int = 3):
    p = rng.dirichlet(np.full(V_t, 0.7), size=R)
    z = rng.normal(0.0, 2.0, size=(R, V_s))
    t, s = vocabularies(rng, V_t, V_s)
    return p, z, match_strings(t, s), rng.integers(0, V_s, size=R)


@pytest.mark.parametrize("T", [1.0, 0.7])
@pytest.mark.parametrize("V_t,V_s", SIZES)
def test_every_loss_matches_autograd_and_finite_differences(rng, V_t, V_s, T):
    p, z, match, y = case(rng, V_t, V_s)
    lens = logit_gradients(p, z, target=y, match=match, student_temperature=T)
    expected = {"ce", "kl_shared", "uld", "ce+uld", "hybrid"} | ({"kl"} if V_t == V_s else set())
    assert set(lens.losses) == expected
    for key in lens.losses:
        kw = dict(T=T, target=y, match=match)
        np.testing.assert_allclose(lens.grads[key], autograd(key, p, z, **kw), rtol=1e-9, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(lens.grads[key], finite_differences(key, p, z, **kw), rtol=1e-5, atol=1e-7,
                                   err_msg=key)


@pytest.mark.parametrize("name", list(HYBRIDS))
@pytest.mark.parametrize("V_t,V_s", [(7, 4), (16, 40)])
def test_the_hybrid_under_each_setting_matches_autograd_and_finite_differences(rng, V_t, V_s, name):
    p, z, match, y = case(rng, V_t, V_s)
    cfg = HYBRIDS[name]
    lens = logit_gradients(p, z, match=match, hybrid=cfg, losses=["hybrid"], student_temperature=0.8)
    kw = dict(T=0.8, target=y, match=match, cfg=cfg)
    np.testing.assert_allclose(lens.grads["hybrid"], autograd("hybrid", p, z, **kw), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lens.grads["hybrid"], finite_differences("hybrid", p, z, **kw), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lens.values["hybrid"], hybrid_uld(p, lens.q, match=match, config=cfg).value, rtol=1e-12)


@pytest.mark.parametrize("V_t,V_s", SIZES)
def test_values_are_the_library_s_and_pushes_sum_to_zero(rng, V_t, V_s):
    p, z, match, y = case(rng, V_t, V_s)
    lens = logit_gradients(p, z, target=y, match=match, uld_weight=0.5)
    q = lens.q
    np.testing.assert_allclose(lens.values["uld"], uld_distance(p, q), rtol=1e-12)
    sv = restrict_to_shared_vocab(p, q, match=match)
    np.testing.assert_allclose(lens.values["kl_shared"], kl_divergence(sv.p, sv.q), rtol=1e-10)
    np.testing.assert_allclose(lens.values["ce"], -np.log(q[np.arange(3), y]), rtol=1e-12)
    np.testing.assert_allclose(lens.values["ce+uld"], lens.values["ce"] + 0.5 * lens.values["uld"], rtol=1e-12)
    for key in lens.losses:
        np.testing.assert_allclose(lens.push(key).sum(-1), 0.0, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(lens.push(key), -lens.grads[key])


def test_the_uld_push_is_blind_to_which_token_holds_a_value(rng):
    p = rng.dirichlet(np.ones(12))
    # the student IS the teacher with its ids shuffled: ULD = 0 and pushes nothing at all
    lens = logit_gradients_from_probs(p, p[rng.permutation(12)], losses=["uld"])
    assert lens.values["uld"][0] == 0.0 and not lens.push("uld").any()
    # relabel the student's ids: its ULD push moves with the values, identical token for token
    z = rng.normal(size=12)
    perm = rng.permutation(12)
    a = logit_gradients(p, z, losses=["uld"]).push("uld")[0]
    b = logit_gradients(p, z[perm], losses=["uld"]).push("uld")[0]
    np.testing.assert_allclose(b, a[perm], rtol=0, atol=1e-15)  # up to the softmax sum's rounding
    # so the student's favourite token is pushed the same way whatever token it is: up while its
    # probability is below the teacher's top one
    p = np.r_[0.7, 0.3 * rng.dirichlet(np.ones(11))]
    z = 0.5 * rng.normal(size=12)
    for perm in (np.arange(12), rng.permutation(12), rng.permutation(12)):
        lens = logit_gradients(p, z[perm], losses=["uld"])
        top = int(np.argmax(lens.q[0]))
        assert lens.q[0, top] < 0.7 and lens.push("uld")[0, top] > 0


def test_ties_follow_a_stable_sort_and_zero_differences_get_no_sign():
    p = np.array([[0.4, 0.3, 0.3]])
    z = np.log(np.array([[0.25, 0.25, 0.5]]))  # two tied student entries; q_(2) - p_(2) = -0.05, q_(3) - p_(3) = -0.05
    lens = logit_gradients(p, z, losses=["uld"])
    np.testing.assert_allclose(lens.grads["uld"], autograd("uld", p, z, T=1.0, target=None, match=None), atol=1e-15)
    q_exact = np.array([[0.3, 0.3, 0.4]])  # a permutation: every difference is exactly 0
    assert not logit_gradients_from_probs(p, q_exact, losses=["uld"]).grads["uld"].any()


def test_kl_on_identical_vocabularies_is_kl_shared(rng):
    p, z = rng.dirichlet(np.ones(9)), rng.normal(size=9)
    toks = [f"t{i}" for i in range(9)]
    lens = logit_gradients(p, z, match=match_strings(toks, toks))
    np.testing.assert_allclose(lens.grads["kl_shared"], lens.grads["kl"], atol=1e-14)
    np.testing.assert_allclose(lens.grads["kl"], lens.q - p, atol=1e-15)


def test_ce_target_defaults_to_the_teacher_s_top_string_and_rows_without_one_are_nan():
    match = match_strings(["a", "b", "c"], ["c", "b", "x"])
    p = np.array([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])  # top 'b' (student id 1); top 'a' (not a student string)
    assert teacher_target(p, match).tolist() == [1, -1]
    lens = logit_gradients(p, np.zeros((2, 3)), match=match)
    assert lens.target.tolist() == [1, -1]
    assert np.isfinite(lens.grads["ce"][0]).all() and np.isnan(lens.grads["ce"][1]).all()
    assert "ce" not in logit_gradients(p[1:], np.zeros((1, 3)), match=match).losses
    with pytest.raises(ValueError, match="kl needs V_t = V_s"):
        logit_gradients(p, np.zeros((2, 4)), losses=["kl"])
    with pytest.raises(ValueError, match="unknown loss"):
        logit_gradients(p, np.zeros((2, 3)), losses=["mse"])


def test_the_frame_and_the_words_read_the_vectors(rng):
    p, z, match, y = case(rng, 16, 40, R=2)
    toks = [f"s{i}" for i in range(40)]
    lens = logit_gradients(p, z, target=y, match=match)
    f = lens_frame(lens, row=1, top_n=5, student_tokens=toks)
    assert list(f.columns) == ["rank", "id", "token", "prob", "target", *[f"push_{k}" for k in lens.losses]]
    assert f["rank"].tolist() == [1, 2, 3, 4, 5] and f["prob"].is_monotonic_decreasing
    assert f["id"].iloc[0] == np.argmax(lens.q[1])
    for k in lens.losses:
        np.testing.assert_array_equal(f[f"push_{k}"], lens.push(k)[1, f["id"]])
    words = read_lens(lens, 1, toks, [f"t{i}" for i in range(16)])
    for k in lens.losses:
        assert f"{LENS_LOSSES[k].label} pushes" in words
    top = int(np.argmax(lens.q[1]))
    assert f"favourite token 's{top}'" in words


def test_the_chart_s_spec_is_valid_vega_lite_and_its_figure_has_a_panel_per_loss(rng):
    from matplotlib.figure import Figure

    from uld_explorer import charts, plots, tidy

    p, z, match, y = case(rng, 16, 40, R=1)
    t_tok, s_tok = [f"t{i}" for i in range(16)], [f"s{i}" for i in range(40)]
    lens = logit_gradients(p, z, target=y, match=match)
    pushes = tidy.lens_push_frame(lens_frame(lens, top_n=8, student_tokens=s_tok))
    assert len(pushes) == 8 * len(lens.losses) and set(pushes["direction"]) <= {"up", "down", "none"}
    top = tidy.top_k_frame(p[0], lens.q[0], t_tok, s_tok, k=8)
    spec = charts.chart_lens(pushes, top).to_dict()  # validated against the Vega-Lite schema (the pages skip it)
    assert spec == charts.chart_lens(pushes, top).to_dict(validate=False)
    fig = plots.plot_lens(pushes, top)
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + len(lens.losses)


@pytest.mark.slow
def test_one_real_position_of_the_default_pair_matches_autograd(default_models):
    """' Paris' after "The capital of France is": the lens on the full vocabularies (151,936 and
    49,152 ids) against autograd of the restated losses and of the library's ULD."""
    import uld_explorer as ux
    from uld_explorer.text import shared_strings_of

    teacher, student = (ux.load_model(n, progress=False) for n in (ux.DEFAULT_TEACHER, ux.DEFAULT_STUDENT))
    _, pt = ux.next_token_distributions(teacher, " Paris", prompt="The capital of France is")
    _, qs = ux.next_token_distributions(student, " Paris", prompt="The capital of France is")
    p = pt[-1:].astype(np.float64)
    p /= p.sum()
    z = np.log(qs[-1:].astype(np.float64))  # a real position's logits, up to a constant
    q = torch.softmax(torch.from_numpy(z), -1).numpy()  # the same q for the lens and for autograd
    match = shared_strings_of(teacher.tokenizer, student.tokenizer, p.shape[1], q.shape[1]).match
    lens = logit_gradients_from_probs(p, q, match=match)
    assert set(lens.losses) == {"ce", "kl_shared", "uld", "ce+uld", "hybrid"}
    y = lens.target
    for key in lens.losses:
        np.testing.assert_allclose(lens.grads[key], autograd(key, p, z, T=1.0, target=y, match=match),
                                   rtol=1e-8, atol=1e-12, err_msg=key)
    zt = torch.tensor(z, requires_grad=True)
    uld_distance(torch.from_numpy(p), torch.softmax(zt, -1)).sum().backward()
    np.testing.assert_allclose(lens.grads["uld"], zt.grad.numpy(), rtol=1e-8, atol=1e-12)
