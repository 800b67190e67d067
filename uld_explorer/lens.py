"""The gradient lens: what each loss does to the student's logits at one position (or R of them).

One job: the closed-form gradient of every distillation loss with respect to the student's
logits, its tidy table and its reading in words. Teacher first (``p``, fixed), student second
(logits ``z``, shape ``(..., V_s)``, and ``q = softmax(z / T_s)``).

Sign convention: the **push** on a logit is MINUS the gradient, :math:`-\\partial L / \\partial z_j`:
what one step of gradient descent adds to ``z_j`` (times the learning rate). A positive push
raises that token's logit ("pushes it up"), a negative one lowers it. Every push sums to 0 over
the vocabulary (a softmax's logits are defined up to a constant).

The closed forms (shapes per row: ``p`` (V_t,), ``z``, ``q``, ``g``, ``\\nabla_z L`` (V_s,)).
Every loss but CE reads ``q = softmax(z / T_s)``; with :math:`g = \\partial L / \\partial q` the
softmax Jacobian gives

.. math:: \\nabla_z L = \\tfrac{1}{T_s}\\, q \\odot \\big(g - \\langle g, q \\rangle \\mathbf 1\\big)

- ``ce``: :math:`-\\log \\mathrm{softmax}(z)_y` at T = 1 (as the training loop's CE part),
  :math:`\\nabla_z = \\mathrm{softmax}(z) - e_y`, y the student id of the teacher's token.
- ``kl``: :math:`\\mathrm{KL}(p\\|q)`, one vocabulary (V_t = V_s): :math:`\\nabla_z = (q - p) / T_s`.
- ``kl_shared``: KL of the renormalized masses on the S shared strings, as the ``kl_shared``
  measure (:func:`~uld_explorer.restrict_to_shared_vocab`): :math:`\\tilde P = P / \\sum P`,
  :math:`Q_s = \\sum_{j: s_j = s} q_j`, :math:`m = \\sum_s Q_s`,
  :math:`L = \\sum_s \\tilde P_s \\log \\tilde P_s - \\sum_s \\tilde P_s \\log Q_s + \\log m`, so
  :math:`g_j = 1/m - \\tilde P_{s_j} / Q_{s_j}` on an id of a shared string, 0 elsewhere;
  :math:`\\langle g, q\\rangle = 0` and :math:`(\\nabla_z L)_j = \\frac{1}{T_s}\\big(q_j / m -
  \\tilde P_{s_j}\\, q_j / Q_{s_j}\\big)`: the string's teacher share split among its ids in
  proportion to q. Derived through the restriction, not by autograd.
- ``uld``: :math:`\\sum_i |q_{(i)} - p_{(i)}|` (both sorted descending, the shorter zero-padded):
  :math:`g_j = \\mathrm{sign}(q_{(r)} - p_{(r)})` at j's rank r in the student's sort, mapped back
  to ids through that sort (a student entry facing the padding gets sign(q_j)).
- ``ce+uld``: :math:`\\mathrm{CE} + \\lambda\\,\\mathrm{ULD}` (λ = ``uld_weight``, the paper's 1.5):
  the sum of the two gradients, CE at T = 1 and ULD at T_s.
- ``hybrid``: TRL GOLD's hybrid (:func:`~uld_explorer.hybrid_uld`, same settings):
  :math:`w_m D(P, Q) + w_u \\mathrm{ULD}(p^u, q^u)` on unnormalized string masses. On an id of a
  shared string :math:`g_j = w_m \\partial D / \\partial Q_{s_j}` with
  :math:`\\partial D_{\\mathrm{jsd}} / \\partial Q_s = (1 - \\beta) \\log (Q_s / M_s)`
  (:math:`M = \\beta P + (1-\\beta) Q`; the other terms cancel), :math:`-P_s / Q_s` for KL(P||Q)
  (``"kl"`` or β = 0), :math:`\\log(Q_s / P_s) + 1` for KL(Q||P) (β = 1); ``clamp`` passes the
  derivative only where :math:`Q_s \\ge` clamp (torch's ``clamp_min``). On an unmatched id
  :math:`g_j = w_u \\cdot` the ULD sign of the unmatched remainders. Closed form, not autograd.

Ties and zeros: ULD is not differentiable where two student entries are equal or a rank-matched
difference is 0. The lens returns one element of its generalized gradient: sign(0) = 0 for a
zero difference (as ``torch.abs``), and tied student entries ranked by id (a stable sort, as
``torch.sort(stable=True)``). Where :math:`q_j = 0` (a float underflow) the push is 0 (the
Jacobian's factor :math:`q_j`). Undefined losses give NaN rows (``kl_shared`` where a side puts
no mass on the shared strings; ``ce`` where there is no target).

The lens acts on ONE position's distribution: for a byte-offset group merged by the chain rule
it takes the base rows (``p_base``, ``q_base`` of :func:`~uld_explorer.compare.position_vectors`),
whose logits are those of that position.

References
----------
.. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030 (ULD and CE + λ ULD).
.. [2] Hugging Face TRL, ``GOLDTrainer`` (the hybrid).
.. [3] J. S. Bridle, "Probabilistic interpretation of feedforward classification network
   outputs", 1990 (the softmax Jacobian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.special import xlogy

from .distributions import as_float64, check_distribution, softmax
from .hybrid import HybridConfig
from .text.vocab import StringMatch

__all__ = ["LENS_LOSSES", "Lens", "LensLoss", "base_target", "lens_frame", "logit_gradients",
           "logit_gradients_from_probs", "read_lens", "teacher_target", "uld_signs"]


@dataclass(frozen=True)
class LensLoss:
    """A loss the lens differentiates: its stable ``key`` (the frame's ``push_<key>`` column, the
    chart's series), ``label`` and ``formula``."""

    key: str
    label: str
    formula: str


#: The losses of the lens, in the order they are shown.
LENS_LOSSES: dict[str, LensLoss] = {x.key: x for x in (
    LensLoss("ce", "CE on the teacher's token", "-log softmax(z)_y"),
    LensLoss("kl", "KL(p||q), one vocabulary", "sum_i p_i log(p_i / q_i)"),
    LensLoss("kl_shared", "KL(p||q) on shared strings", "KL of the renormalized masses on the shared strings"),
    LensLoss("uld", "ULD", "sum_i |p_(i) - q_(i)|"),
    LensLoss("ce+uld", "CE + lambda ULD", "CE + lambda * ULD"),
    LensLoss("hybrid", "hybrid ULD (GOLD)", "w_m D(P, Q) + w_u ULD(p^u, q^u)"),
)}


@dataclass(frozen=True)
class Lens:
    """What :func:`logit_gradients` returns: every loss's value and gradient for R rows.

    Attributes
    ----------
    p : ndarray, shape (R, V_t)
        The teacher rows (float64).
    q : ndarray, shape (R, V_s)
        ``softmax(z / T_s)``, the student rows the losses read (CE reads ``softmax(z)``).
    values : dict of str -> ndarray, shape (R,)
        Each computed loss's value (NaN where undefined).
    grads : dict of str -> ndarray, shape (R, V_s)
        Each loss's gradient :math:`\\nabla_z L` w.r.t. the student's logits (NaN rows where undefined).
    target : ndarray of int, shape (R,)
        CE's student id per row (-1: none).
    student_temperature, uld_weight : float
    """

    p: np.ndarray
    q: np.ndarray
    values: dict
    grads: dict
    target: np.ndarray
    student_temperature: float
    uld_weight: float

    @property
    def losses(self) -> tuple[str, ...]:
        """The keys computed, in :data:`LENS_LOSSES` order."""
        return tuple(k for k in LENS_LOSSES if k in self.grads)

    def push(self, key: str) -> np.ndarray:
        """The push of loss ``key`` on the logits, :math:`-\\nabla_z L`, shape (R, V_s)."""
        return 0.0 - self.grads[key]  # not -g: no -0.0


def _jacobian(q: np.ndarray, gq: np.ndarray, T: float) -> np.ndarray:
    """:math:`\\frac1T q \\odot (g - \\langle g, q\\rangle)` from ``gq`` = :math:`q \\odot g` (given
    directly, so that an entry with q = 0 contributes 0 whatever g is there)."""
    return (gq - q * gq.sum(-1, keepdims=True)) / T


def _times_q(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """:math:`q \\odot g` with 0 where q = 0 (g may be infinite there)."""
    with np.errstate(invalid="ignore"):
        return np.where(q > 0, q * g, 0.0)


def uld_signs(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ULD and :math:`\\partial\\, \\mathrm{ULD}(p, q) / \\partial q`: per student id the sign of its
    rank-matched difference :math:`\\mathrm{sign}(q_{(r)} - p_{(r)})`, zero padding included (ties in
    q ranked by id, sign(0) = 0). Shapes (R, V_t), (R, V_s) -> signs (R, V_s), ULD (R,). Only the
    teacher's V_s largest entries are sorted (a partition first); the rest meet the padding and
    count by their sum.

    >>> signs, value = uld_signs(np.array([[0.6, 0.4]]), np.array([[0.1, 0.5, 0.4]]))
    >>> signs.tolist(), value.round(6).tolist()
    ([[1.0, -1.0, 0.0]], [0.2])
    """
    R, V_t = p.shape
    V_s = q.shape[1]
    order = np.argsort(-q, axis=-1, kind="stable")  # the student's sort, (R, V_s)
    q_sorted = np.take_along_axis(q, order, -1)
    rest = np.zeros(R)
    if V_t > V_s:  # the teacher's V_s largest, sorted; the others meet the student's zero padding
        part = -np.partition(-p, V_s - 1, axis=-1) if V_s else p
        rest = part[:, V_s:].sum(-1)
        p_sorted = -np.sort(-part[:, :V_s], axis=-1)
    else:  # (R, V_t), zero-padded to V_s
        p_sorted = np.concatenate([-np.sort(-p, axis=-1), np.zeros((R, V_s - V_t))], axis=1)
    diff = q_sorted - p_sorted
    g = np.empty_like(q)
    np.put_along_axis(g, order, np.sign(diff), -1)
    return g, np.abs(diff).sum(-1) + rest


def teacher_target(p: Any, match: StringMatch) -> np.ndarray:
    """CE's target when no text is given: per row the student id spelling the teacher's most
    probable token (the first such id), -1 where the student vocabulary lacks that string.
    ``p`` : (..., V_t) -> int array (R,).

    >>> from uld_explorer.text import match_strings
    >>> teacher_target(np.array([[0.2, 0.8], [0.9, 0.1]]), match_strings(["a", "b"], ["b", "c"])).tolist()
    [0, -1]
    """
    p = np.asarray(p).reshape(-1, np.shape(p)[-1])
    first = np.full(match.S, -1, dtype=np.int64)  # the student's first id of each string
    ids = np.flatnonzero(match.student_group >= 0)
    first[match.student_group[ids[::-1]]] = ids[::-1]
    s = match.teacher_group[np.argmax(p, axis=-1)]
    return np.where(s >= 0, first[np.maximum(s, 0)], -1)


def base_target(student_ids: Sequence[int], merge: str = "observed") -> int | None:
    """CE's target at a row of a comparison table: the student's actual token that the row's base
    distribution predicts (a merged group's first token for ``merge="observed"``, its last for
    ``"bayesian"``: :func:`~uld_explorer.text.align.base_token`); None for a row without tokens
    (the next-token row: :func:`logit_gradients` then takes :func:`teacher_target`).

    >>> base_target((17, 4), "observed"), base_target((17, 4), "bayesian"), base_target(())
    (17, 4, None)
    """
    from .text.align import base_token

    if not len(student_ids):
        return None
    return int(student_ids[base_token(tuple(range(len(student_ids))), merge)])


def _masses(x: np.ndarray, group: np.ndarray, S: int) -> np.ndarray:
    """``(R, S)``: the mass each row puts on each string (ids with group -1 dropped)."""
    keep = group >= 0
    out = np.zeros((x.shape[0], S))
    for r in range(x.shape[0]):  # bincount: one pass per row, no (R, V) temporary
        out[r] = np.bincount(group[keep], weights=x[r, keep], minlength=S)
    return out


def _kl_shared(p: np.ndarray, q: np.ndarray, match: StringMatch, T: float) -> tuple[np.ndarray, np.ndarray]:
    from .divergences import kl_divergence

    P, Q = _masses(p, match.teacher_group, match.S), _masses(q, match.student_group, match.S)
    mt, ms = P.sum(-1, keepdims=True), Q.sum(-1, keepdims=True)  # (R, 1)
    bad = ((mt <= 0) | (ms <= 0))[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        Pt, Qt = P / mt, Q / ms
        value = np.asarray(kl_divergence(np.where(bad[:, None], 1.0 / match.S, Pt),
                                         np.where(bad[:, None], 1.0 / match.S, Qt), validate=False), dtype=float)
        sid = match.student_group
        on = sid >= 0
        Q_of = np.where(on, Q[:, np.maximum(sid, 0)], 1.0)  # (R, V_s): the mass of each id's string
        share = np.where(on & (Q_of > 0), q / np.where(Q_of > 0, Q_of, 1.0), 0.0)  # q_j / Q_{s_j}
        gq = np.where(on, q / ms - Pt[:, np.maximum(sid, 0)] * share, 0.0)  # q ⊙ g
    grad = _jacobian(q, gq, T)
    value[bad], grad[bad] = np.nan, np.nan
    return value, grad


def _hybrid(p: np.ndarray, q: np.ndarray, match: StringMatch, config: HybridConfig, T: float
            ) -> tuple[np.ndarray, np.ndarray]:
    w_m, w_u = config.weights(match.teacher_matched.size, p.shape[-1])
    P, Q = _masses(p, match.teacher_group, match.S), _masses(q, match.student_group, match.S)  # (R, S)
    Pd, Qd = P, Q
    if config.clamp is not None:
        Pd, Qd = np.maximum(P, config.clamp), np.maximum(Q, config.clamp)
    beta = float(config.beta)
    with np.errstate(divide="ignore", invalid="ignore"):
        if config.divergence == "kl" or beta == 0.0:  # KL(P||Q): -P / Q
            D = (xlogy(Pd, Pd) - xlogy(Pd, Qd)).sum(-1)
            dD = -Pd / Qd
        elif beta == 1.0:  # KL(Q||P): log(Q / P) + 1
            D = (xlogy(Qd, Qd) - xlogy(Qd, Pd)).sum(-1)
            dD = np.log(Qd / Pd) + 1.0
        else:  # generalized JSD: (1 - beta) log(Q / M)
            M = beta * Pd + (1.0 - beta) * Qd
            D = (beta * (xlogy(Pd, Pd) - xlogy(Pd, M)) + (1.0 - beta) * (xlogy(Qd, Qd) - xlogy(Qd, M))).sum(-1)
            dD = (1.0 - beta) * np.log(Qd / M)
    if config.clamp is not None:
        dD = np.where(Q >= config.clamp, dD, 0.0)
    sid = match.student_group
    g = np.zeros_like(q)
    on = sid >= 0
    g[:, on] = w_m * dD[:, sid[on]]
    t_un, s_un = np.flatnonzero(match.teacher_group < 0), np.flatnonzero(~on)
    signs, U = uld_signs(p[:, t_un], q[:, s_un])  # the unmatched remainders' sorted L1
    g[:, s_un] = w_u * signs
    return w_m * D + w_u * U, _jacobian(q, _times_q(q, g), T)


def logit_gradients(
    p: Any, student_logits: Any, *, target: Any = None, match: StringMatch | None = None,
    student_temperature: float = 1.0, uld_weight: float = 1.5, hybrid: HybridConfig | None = None,
    losses: Sequence[str] | None = None,
) -> Lens:
    """Every loss's value and gradient w.r.t. the student's logits (closed forms: see the module).

    Parameters
    ----------
    p : array, shape (V_t,) or (R, V_t)
        The teacher's distribution(s) (fixed: no gradient flows to it).
    student_logits : array, shape (V_s,) or (R, V_s)
        The student's logits z (``-inf`` masks a token).
    target : int or int array (R,), optional
        CE's target, a student id per row (-1: none). Default: :func:`teacher_target` when
        ``match`` is given, else none (no ``ce``, ``ce+uld``).
    match : StringMatch, optional
        The vocabularies' shared strings (:func:`~uld_explorer.match_strings`); without it no
        ``kl_shared``, ``hybrid``.
    student_temperature : float
        T_s: the losses but CE read ``softmax(z / T_s)``.
    uld_weight : float
        λ of ``ce+uld``.
    hybrid : HybridConfig, optional
        The hybrid's settings (default: GOLD's).
    losses : sequence of str, optional
        Keys of :data:`LENS_LOSSES` to compute (default: every one defined here: ``kl`` needs
        V_t = V_s, ``kl_shared`` and ``hybrid`` a ``match``, ``ce`` a target).

    Returns
    -------
    Lens

    Examples
    --------
    >>> lens = logit_gradients(np.array([0.7, 0.2, 0.1]), np.log([0.05, 0.35, 0.6]), target=0)
    >>> lens.losses, lens.values["uld"].round(6).tolist()
    (('ce', 'kl', 'uld', 'ce+uld'), [0.3])
    >>> lens.push("ce").round(3).tolist(), lens.push("uld").round(3).tolist()
    ([[0.95, -0.35, -0.6]], [[0.035, -0.455, 0.42]])
    """
    z = as_float64(np.asarray(student_logits, dtype=np.float64))
    q = softmax(z, float(student_temperature), "student_logits", temperature_name="student_temperature")
    return _lens(p, z, np.asarray(q, dtype=np.float64), target=target, match=match,
                 student_temperature=student_temperature, uld_weight=uld_weight, hybrid=hybrid, losses=losses)


def _lens(p: Any, z: np.ndarray, q: np.ndarray, *, target: Any, match: StringMatch | None,
          student_temperature: float, uld_weight: float, hybrid: HybridConfig | None,
          losses: Sequence[str] | None) -> Lens:
    """The lens of logits ``z`` whose ``softmax(z / T_s)`` is ``q`` (given: a caller holding ``q``
    keeps its exact values, and with them ULD's exact ties)."""
    p = check_distribution(p, "p")
    p = as_float64(p).reshape(-1, p.shape[-1])
    z, q = z.reshape(-1, z.shape[-1]), q.reshape(-1, q.shape[-1])
    if z.shape[0] != p.shape[0]:
        raise ValueError(f"p and the student must have the same rows: got {p.shape[0]} and {z.shape[0]}")
    T = float(student_temperature)
    R, V_t, V_s = p.shape[0], p.shape[1], q.shape[1]
    if match is not None and (match.teacher_group.shape != (V_t,) or match.student_group.shape != (V_s,)):
        raise ValueError(f"match was built for vocabularies of {match.teacher_group.size} and "
                         f"{match.student_group.size} tokens, but p and the logits have V_t={V_t} and V_s={V_s}")
    if target is None:
        target = teacher_target(p, match) if match is not None else np.full(R, -1)
    target = np.broadcast_to(np.asarray(target, dtype=np.int64), (R,)).copy()
    if ((target < -1) | (target >= V_s)).any():
        raise ValueError(f"target must hold student ids in [0, {V_s}) or -1 (none); got {target.tolist()}")
    available = {"ce": bool((target >= 0).any()), "kl": V_t == V_s, "kl_shared": match is not None and match.S > 0,
                 "uld": True, "hybrid": match is not None}
    available["ce+uld"] = available["ce"]
    wanted = [k for k in LENS_LOSSES if available[k]] if losses is None else list(losses)
    for k in wanted:
        if k not in LENS_LOSSES:
            raise ValueError(f"unknown loss {k!r}; the lens knows {', '.join(LENS_LOSSES)}")
        if not available[k]:
            raise ValueError(f"the lens cannot compute {k!r} here (kl needs V_t = V_s, kl_shared and hybrid a "
                             f"match, ce a target)")
    values: dict[str, np.ndarray] = {}
    grads: dict[str, np.ndarray] = {}
    if "ce" in wanted or "ce+uld" in wanted:
        q1 = np.asarray(softmax(z, 1.0, "student_logits"), dtype=np.float64) if T != 1.0 else q
        has = target >= 0
        y = np.maximum(target, 0)
        g = q1.copy()
        g[np.arange(R), y] -= 1.0
        g[~has] = np.nan
        with np.errstate(divide="ignore"):
            v = np.where(has, -np.log(q1[np.arange(R), y]), np.nan)
        values["ce"], grads["ce"] = v, g
    if "kl" in wanted:
        from .divergences import kl_divergence

        values["kl"] = np.asarray(kl_divergence(p, q, validate=False), dtype=float)
        grads["kl"] = (q - p) / T
    if "kl_shared" in wanted:
        values["kl_shared"], grads["kl_shared"] = _kl_shared(p, q, match, T)
    if {"uld", "ce+uld"} & set(wanted):
        signs, values["uld"] = uld_signs(p, q)
        grads["uld"] = _jacobian(q, _times_q(q, signs), T)
    if "ce+uld" in wanted:
        values["ce+uld"] = values["ce"] + uld_weight * values["uld"]
        grads["ce+uld"] = grads["ce"] + uld_weight * grads["uld"]
    if "hybrid" in wanted:
        values["hybrid"], grads["hybrid"] = _hybrid(p, q, match, hybrid or HybridConfig(), T)
    keep = set(wanted)
    return Lens(p=p, q=q, values={k: v for k, v in values.items() if k in keep},
                grads={k: v for k, v in grads.items() if k in keep}, target=target, student_temperature=T,
                uld_weight=float(uld_weight))


_LENS_DEFAULTS = dict(target=None, match=None, uld_weight=1.5, hybrid=None, losses=None)


def logit_gradients_from_probs(p: Any, q: Any, *, student_temperature: float = 1.0, **kw: Any) -> Lens:
    """:func:`logit_gradients` from the student's distribution ``q = softmax(z / T_s)`` instead of
    its logits: ``z = T_s log q`` (logits are defined up to a constant per row, which no loss
    sees). ``q`` : (V_s,) or (R, V_s); the other arguments as :func:`logit_gradients`'s. The
    losses read ``q`` itself, not ``softmax(T_s log q / T_s)``: its exact values keep ULD's exact
    ties (a permuted copy of the teacher gets no ULD push at all, where a round trip through the
    logits would leave differences of 1e-17 whose signs ULD's gradient follows).

    >>> lens = logit_gradients_from_probs([0.7, 0.2, 0.1], [0.1, 0.7, 0.2], target=0)
    >>> lens.push("ce").round(3).tolist(), lens.push("uld").tolist()
    ([[0.9, -0.7, -0.2]], [[0.0, 0.0, 0.0]])
    >>> read_lens(lens, 0, ["a", "b", "c"], ["a", "b", "c"]).split(". ")[1]
    "ULD pushes nothing at all: the student's sorted probabilities already equal the teacher's (ULD = 0.0000), \
although the student's favourite token is 'b' and the teacher's 'a': identity blindness, which only the CE term (or a KL) sees."
    """
    q = as_float64(check_distribution(q, "q"))
    with np.errstate(divide="ignore"):
        z = float(student_temperature) * np.log(q)
    return _lens(p, z, q, student_temperature=student_temperature, **{**_LENS_DEFAULTS, **kw})


def lens_frame(lens: Lens, row: int = 0, top_n: int = 10, student_tokens: Sequence[str] | None = None):
    """The ``top_n`` most probable student tokens of one row and each loss's push on them.

    Returns
    -------
    DataFrame
        One row per token, rank 1 first: ``rank``, ``id``, ``token`` (when ``student_tokens`` is
        given), ``prob`` (``q``), ``target`` (CE's token), then ``push_<key>`` per computed loss
        (:math:`-\\partial L / \\partial z_{id}`). The whole vectors are ``lens.push(key)``.

    >>> lens = logit_gradients(np.array([0.7, 0.2, 0.1]), np.log([0.1, 0.7, 0.2]), target=0)
    >>> lens_frame(lens, top_n=2, student_tokens=["a", "b", "c"])[["rank", "token", "push_ce"]].values.tolist()
    [[1, 'b', -0.7], [2, 'c', -0.2]]
    """
    import pandas as pd

    from .distributions import top_k_index

    q = lens.q[row]
    ids = top_k_index(q, min(int(top_n), q.size))
    out = {"rank": np.arange(1, ids.size + 1), "id": ids.astype(np.int64)}
    if student_tokens is not None:
        out["token"] = [str(student_tokens[i]) for i in ids]
    out["prob"] = q[ids]
    out["target"] = ids == lens.target[row]
    for k in lens.losses:
        out[f"push_{k}"] = lens.push(k)[row, ids]
    return pd.DataFrame(out)


def _signed(x: float) -> str:
    """A push in words: 4 decimals, or 3 significant digits when it is smaller than that."""
    return f"{x:+.4f}" if x == 0 or abs(x) >= 5e-5 else f"{x:+.2e}"


def read_lens(lens: Lens, row: int = 0, student_tokens: Sequence[str] | None = None,
              teacher_tokens: Sequence[str] | None = None) -> str:
    """The lens of one row in words, computed from its numbers: which token each loss pushes up
    most, and what ULD does to the student's favourite token (identity blindness made visible).

    >>> lens = logit_gradients(np.array([0.9, 0.1, 0.0]), np.log([0.1, 0.3, 0.6]), target=0)
    >>> print(read_lens(lens, student_tokens=["a", "b", "c"], teacher_tokens=["a", "b", "c"]))  # doctest: +NORMALIZE_WHITESPACE
    CE on the teacher's token pushes 'a' up most (+0.9000); KL(p||q), one vocabulary pushes 'a' up most
    (+0.8000); ULD pushes 'c' up most (+0.4800); CE + lambda ULD pushes 'a' up most (+0.7200). ULD pushes
    the student's favourite token 'c' up (+0.4800) although the teacher's favourite is 'a': it compares sorted probabilities only,
    so it raises whichever token the student already ranks first while its top probability (0.6000) is
    below the teacher's (0.9000). Identity blindness: the CE term is what points at 'a'.
    """
    name = (lambda i: repr(str(student_tokens[i]))) if student_tokens is not None else (lambda i: f"id {i}")
    parts = []
    for k in lens.losses:
        push = lens.push(k)[row]
        if not np.isfinite(push).all():
            parts.append(f"{LENS_LOSSES[k].label} is undefined here")
            continue
        if not push.any():
            parts.append(f"{LENS_LOSSES[k].label} pushes no token")
            continue
        j = int(np.argmax(push))
        parts.append(f"{LENS_LOSSES[k].label} pushes {name(j)} up most ({_signed(push[j])})")
    text = "; ".join(parts) + "."
    if "uld" not in lens.losses:
        return text
    q, p = lens.q[row], lens.p[row]
    s_top, t_top = int(np.argmax(q)), int(np.argmax(p))
    u = float(lens.push("uld")[row, s_top])
    direction = "up" if u > 0 else "down" if u < 0 else "neither up nor down"
    t_name = repr(str(teacher_tokens[t_top])) if teacher_tokens is not None else f"teacher id {t_top}"
    same = (teacher_tokens is not None and student_tokens is not None
            and str(teacher_tokens[t_top]) == str(student_tokens[s_top]))
    qs, ps = float(q[s_top]), float(p[t_top])
    if not lens.push("uld")[row].any():
        text += (f" ULD pushes nothing at all: the student's sorted probabilities already equal the teacher's "
                 f"(ULD = {float(lens.values['uld'][row]):.4f})")
        if same:
            return text + "."
        return text + (f", although the student's favourite token is {name(s_top)} and the teacher's {t_name}: "
                       f"identity blindness, which only the CE term (or a KL) sees.")
    why = (f"while its top probability ({qs:.4f}) is below the teacher's ({ps:.4f})" if qs < ps
           else f"while its top probability ({qs:.4f}) is above the teacher's ({ps:.4f})" if qs > ps
           else "until its top probability equals the teacher's")
    verb = "raises" if qs < ps else "lowers" if qs > ps else "leaves"
    if same:
        text += (f" ULD pushes the student's favourite token {name(s_top)} {direction} ({_signed(u)}); here it is also "
                 f"the teacher's favourite, but ULD would do the same whatever token the student ranked first: it "
                 f"{verb} the student's top token {why}.")
    else:
        text += (f" ULD pushes the student's favourite token {name(s_top)} {direction} ({_signed(u)}) although the "
                 f"teacher's favourite is {t_name}: it compares sorted probabilities only, so it {verb} whichever "
                 f"token the student already ranks first {why}.")
        if "ce" in lens.losses and lens.target[row] >= 0:
            text += f" Identity blindness: the CE term is what points at {name(int(lens.target[row]))}."
        else:
            text += " Identity blindness: nothing in ULD points at the teacher's token."
    return text
