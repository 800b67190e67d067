"""Exact optimal transport with POT: value space, rank space and token space (and entropic OT beside it).

One job: optimal transport between a teacher's and a student's distributions with POT (each
function one problem, its formula, shapes and a doctest).

Three exact (network simplex, ``ot.emd``) problems, each returning the value AND the plan:

- :func:`value_space_ot` -- uniform weights on the n padded probability VALUES, cost
  :math:`|p_i - q_j|`. :math:`n \\cdot W_1` equals ULD exactly.
- :func:`rank_space_ot` -- the sorted vectors as masses on ranks 1..n, cost 0 on the diagonal and
  1 elsewhere. Its value is :math:`\\mathrm{TV}(p_{\\downarrow}, q_{\\downarrow}) = \\mathrm{ULD}/2`.
- :func:`token_space_ot` -- the real thing ULD approximates away: mass moves between teacher and
  student TOKENS with a ground cost :math:`C_{ij}` (string identity, edit distance, or yours).
  :func:`token_space_ot_top_k` truncates to the top-k tokens plus one "rest" bucket per side.

Beside them, ENTROPIC OT on the same support (:func:`token_space_sinkhorn_top_k`, POT's
log-domain Sinkhorn): a blurred plan whose cost tends to the exact one as the regularisation
:math:`\varepsilon \to 0`, reported with its iterations and marginal error.

POT's network simplex stops at ``numItermax`` iterations and then only warns, returning a
non-optimal value. Here that never passes silently: the limit is raised (x10, up to
``MAX_ITER_CAP``) and :class:`OTNotConvergedError` is raised if it is still not optimal.

References
----------
.. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030 (ULD).
.. [2] Flamary et al. "POT: Python Optimal Transport", JMLR 22(78), 2021.
.. [3] Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS 2013.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import ot

from .checks import check_epsilon, check_int
from .costs import COSTS, MAX_SUPPORT, CostBuilder, edit_distance_cost, string_identity_cost
from .distributions import as_float64, check_distribution, check_pair, sorted_probs, top_k_with_rest
from .errors import ExplorerError

__all__ = [
    "COSTS",
    "MAX_ITER_CAP",
    "MAX_SUPPORT",
    "OTNotConvergedError",
    "OTResult",
    "SINKHORN_MAX_ITER",
    "SinkhornResult",
    "TokenOTResult",
    "edit_distance_cost",
    "entropic_ot",
    "exact_ot",
    "rank_space_ot",
    "string_identity_cost",
    "token_space_ot",
    "token_space_ot_top_k",
    "token_space_sinkhorn_top_k",
    "value_space_ot",
    "value_space_w1",
    "zero_one_group_ot",
    "zero_one_group_value",
]

#: Start value of POT's ``numItermax``; retried x10 until :data:`MAX_ITER_CAP`.
NUM_ITER_MAX = 100_000
MAX_ITER_CAP = 100_000_000
#: Sinkhorn's default iteration limit (POT's ``numItermax``); beyond it the result is reported unconverged.
SINKHORN_MAX_ITER = 10_000


class OTNotConvergedError(ExplorerError, RuntimeError):
    """POT's network simplex did not reach optimality: its value would be wrong."""


@dataclass(frozen=True)
class OTResult:
    """An exact OT solution.

    Attributes
    ----------
    value : float
        Optimal cost :math:`\\langle \\gamma, C \\rangle` (already scaled where the function says so).
    plan : ndarray, shape (n_t, n_s)
        The transport plan :math:`\\gamma`; rows sum to the teacher-side weights, columns to the
        student-side weights.
    cost : ndarray, shape (n_t, n_s)
        The ground cost used.
    iterations_limit : int
        The ``numItermax`` at which POT reached optimality.
    """

    value: float
    plan: np.ndarray
    cost: np.ndarray
    iterations_limit: int


@dataclass(frozen=True)
class TokenOTResult(OTResult):
    """Token-space OT on top-k tokens plus one rest bucket per side (the last row / column).

    Attributes
    ----------
    teacher_index, student_index : ndarray of int, shapes (k_t,), (k_s,)
        Vocabulary indices of the rows / columns (the rest bucket, last, has none).
    teacher_truncated_mass, student_truncated_mass : float
        Mass pooled into each side's rest bucket.
    """

    teacher_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    student_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    teacher_truncated_mass: float = 0.0
    student_truncated_mass: float = 0.0


@dataclass(frozen=True)
class SinkhornResult(TokenOTResult):
    """An entropic OT solution (:func:`entropic_ot`, :func:`token_space_sinkhorn_top_k`).

    ``value`` is the LINEAR cost :math:`\\langle P_\\varepsilon, C \\rangle` of the entropic plan
    (comparable to exact OT, which it bounds from above and tends to as :math:`\\varepsilon \\to 0`),
    NaN when the solver did not converge and the caller asked for no error; ``plan`` is
    :math:`P_\\varepsilon`; ``iterations_limit`` is the iteration limit it ran under. The index and
    truncated-mass fields are those of the top-k support (empty / 0 for :func:`entropic_ot`).

    Attributes
    ----------
    epsilon : float
        The regularisation as given: relative to the cost's largest entry.
    reg : float
        The absolute regularisation handed to POT: ``epsilon * max(C)``.
    iterations : int
        Sinkhorn iterations used.
    converged : bool
        The plan's marginals are within ``tolerance`` of the weights (L1, each side).
    marginal_error : float
        :math:`\\max(\\|P 1 - a\\|_1, \\|P^\\top 1 - b\\|_1)`.
    entropy : float
        :math:`H(P) = -\\sum_{ij} P_{ij} \\log P_{ij}` (grows with ``epsilon``: the blur).
    objective : float
        The regularised objective :math:`\\langle P, C \\rangle - \\mathrm{reg}\\, H(P)` that Sinkhorn
        minimises (not comparable to exact OT).
    """

    epsilon: float = 0.0
    reg: float = 0.0
    iterations: int = 0
    converged: bool = True
    marginal_error: float = 0.0
    entropy: float = 0.0
    objective: float = 0.0


def _as_float64_vector(x: Any, name: str) -> np.ndarray:
    x = check_distribution(x, name)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be ONE distribution of shape (V,) for exact OT (got shape {tuple(x.shape)}); "
            f"loop over the batch, exact OT solves one problem at a time"
        )
    x = as_float64(x)
    return x / x.sum()  # exact equal masses for the simplex (drift <= the validation tolerance)


def _check_support(n: int, what: str) -> None:
    if n > MAX_SUPPORT:
        raise ValueError(
            f"{what} has {n} support points, more than MAX_SUPPORT={MAX_SUPPORT} that dense exact OT "
            f"handles in reasonable time and memory (n x n float64 cost). Use uld_distance (the same "
            f"value in closed form) or truncate with token_space_ot_top_k(k=...)"
        )


def exact_ot(a: Any, b: Any, cost: Any, *, num_iter_max: int = NUM_ITER_MAX) -> OTResult:
    """Exact discrete OT between weights ``a`` (n_t,) and ``b`` (n_s,) with ground cost ``cost``.

    .. math:: \\mathrm{OT}(a, b; C) = \\min_{\\gamma \\ge 0,\\ \\gamma 1 = a,\\ \\gamma^\\top 1 = b}
              \\sum_{ij} \\gamma_{ij} C_{ij}

    Solved by POT's network simplex (``ot.emd``). If POT stops at ``numItermax`` before
    optimality, the limit is raised x10 and the problem solved again, up to
    :data:`MAX_ITER_CAP`; then :class:`OTNotConvergedError` is raised. A wrong value is never
    returned.

    Parameters
    ----------
    a : array, shape (n_t,)
        Teacher-side weights (a distribution).
    b : array, shape (n_s,)
        Student-side weights (a distribution).
    cost : array, shape (n_t, n_s)
        Finite, non-negative ground cost.

    Returns
    -------
    OTResult

    Examples
    --------
    >>> r = exact_ot([0.5, 0.5], [1.0], [[0.0], [2.0]])
    >>> r.value, r.plan.tolist()
    (1.0, [[0.5], [0.5]])
    """
    a = _as_float64_vector(a, "a")
    b = _as_float64_vector(b, "b")
    C = as_float64(cost)
    if C.shape != (a.shape[0], b.shape[0]):
        raise ValueError(
            f"cost must have shape (n_t, n_s) = ({a.shape[0]}, {b.shape[0]}) to match a and b "
            f"(got {C.shape})"
        )
    if not np.isfinite(C).all() or (C < 0).any():
        raise ValueError("cost must be finite and non-negative (got NaN, inf or a negative entry)")
    _check_support(max(C.shape), "exact_ot")
    C = np.ascontiguousarray(C)
    limit = int(num_iter_max)
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the outcome is read from the log, not the warning
            plan, log = ot.emd(a, b, C, numItermax=limit, log=True)
        if log.get("result_code") == 1:  # 1 = OPTIMAL in POT's network simplex
            return OTResult(value=float(log["cost"]), plan=plan, cost=C, iterations_limit=limit)
        if log.get("result_code") != 3 or limit >= MAX_ITER_CAP:  # 3 = MAX_ITER_REACHED
            raise OTNotConvergedError(
                f"POT's exact solver did not reach optimality (result_code={log.get('result_code')}, "
                f"{log.get('warning')!r}) with numItermax={limit}; its value would be wrong. "
                f"Reduce the support (smaller top-k) or raise num_iter_max"
            )
        limit = min(limit * 10, MAX_ITER_CAP)


def entropic_ot(a: Any, b: Any, cost: Any, epsilon: float, *, num_iter_max: int = SINKHORN_MAX_ITER,
                tolerance: float = 1e-6, on_not_converged: str = "raise") -> SinkhornResult:
    """Entropic OT between weights ``a`` and ``b``: POT's log-domain Sinkhorn (``method="sinkhorn_log"``).

    .. math:: P_\\varepsilon = \\arg\\min_{P \\in \\Pi(a, b)} \\langle P, C \\rangle - \\mathrm{reg}\\, H(P),
              \\quad \\mathrm{reg} = \\varepsilon \\max_{ij} C_{ij},
              \\quad \\text{value} = \\langle P_\\varepsilon, C \\rangle

    ``epsilon`` is relative to the cost's scale (its largest entry; 1 for the built-in costs with
    a rest bucket), so one ε means the same blur for any cost. The value is the linear cost of the
    entropic plan (what ``ot.sinkhorn2`` returns; computed here from ``ot.sinkhorn``'s plan, which
    is kept): :math:`\\mathrm{OT} \\le \\langle P_\\varepsilon, C \\rangle \\le \\mathrm{OT} +
    \\mathrm{reg}\\,(H(a) + H(b))` up to the marginal error, so it converges to exact OT as ε → 0.
    Zero-mass entries are left out of the solve (their rows / columns of the plan are 0).

    Parameters
    ----------
    a : array, shape (n_t,);  b : array, shape (n_s,)
        Distributions.
    cost : array, shape (n_t, n_s)
        Finite, non-negative.
    epsilon : float
        > 0, relative to ``max(cost)``.
    num_iter_max : int
        Sinkhorn iterations at most.
    tolerance : float
        Largest L1 error of either marginal of the plan for it to count as converged.
    on_not_converged : "raise" | "nan"
        Not converged: raise :class:`OTNotConvergedError` (default), or return the result with
        ``value`` NaN and ``converged`` False (the plan as it stood, for a picture).

    Returns
    -------
    SinkhornResult

    Raises
    ------
    OTNotConvergedError
        The marginals are still off by more than ``tolerance`` after ``num_iter_max`` iterations.

    Examples
    --------
    >>> r = entropic_ot([0.5, 0.5], [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]], 0.01)
    >>> round(r.value, 6), r.converged, r.plan.round(3).tolist()
    (0.0, True, [[0.5, 0.0], [0.0, 0.5]])
    """
    a = _as_float64_vector(a, "a")
    b = _as_float64_vector(b, "b")
    C = as_float64(cost)
    if C.shape != (a.shape[0], b.shape[0]):
        raise ValueError(f"cost must have shape (n_t, n_s) = ({a.shape[0]}, {b.shape[0]}) to match a and b "
                         f"(got {C.shape})")
    if not np.isfinite(C).all() or (C < 0).any():
        raise ValueError("cost must be finite and non-negative (got NaN, inf or a negative entry)")
    _check_support(max(C.shape), "entropic_ot")
    eps = check_epsilon(epsilon, "epsilon")
    if on_not_converged not in ("raise", "nan"):
        raise ValueError(f"on_not_converged must be 'raise' or 'nan' (got {on_not_converged!r})")
    limit = check_int(num_iter_max, "num_iter_max", 1, None, "a positive integer (Sinkhorn iterations)")
    scale = float(C.max()) if C.size else 0.0
    reg = eps * (scale if scale > 0 else 1.0)
    rows, cols = np.flatnonzero(a > 0), np.flatnonzero(b > 0)
    a_, b_, C_ = a[rows], b[cols], np.ascontiguousarray(C[np.ix_(rows, cols)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge" is read from the marginals below; exp overflows
        # in POT's log["u"] only (the plan is built from the log-domain potentials)
        P_, log = ot.sinkhorn(a_, b_, C_, reg, method="sinkhorn_log", numItermax=limit,
                              stopThr=tolerance / np.sqrt(max(b_.size, 1)), log=True, warn=False)
    plan = np.zeros_like(C)
    plan[np.ix_(rows, cols)] = P_
    err = max(float(np.abs(plan.sum(1) - a).sum()), float(np.abs(plan.sum(0) - b).sum()))
    converged = bool(np.isfinite(plan).all() and err <= tolerance)
    iterations = int(log.get("niter", limit - 1)) + 1
    if not converged and on_not_converged == "raise":
        raise OTNotConvergedError(
            f"Sinkhorn (epsilon={eps:g}, reg={reg:.3g}) did not converge in {iterations} iterations: the plan's "
            f"marginals are off by {err:.3g} (tolerance {tolerance:g}); its value would be wrong. Raise epsilon or "
            f"num_iter_max, or shrink the support (a smaller top-k)"
        )
    nz = P_[P_ > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    linear = float((plan * C).sum()) if converged else float("nan")
    return SinkhornResult(value=linear, plan=plan, cost=C, iterations_limit=limit, epsilon=eps, reg=reg,
                          iterations=iterations, converged=converged, marginal_error=err, entropy=entropy,
                          objective=linear - reg * entropy)


def _padded(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = max(p.shape[0], q.shape[0])
    return np.pad(p, (0, n - p.shape[0])), np.pad(q, (0, n - q.shape[0]))


def value_space_ot(p: Any, q: Any, *, num_iter_max: int = NUM_ITER_MAX) -> OTResult:
    """Exact OT between the n padded probability VALUES, scaled by n: equals ULD exactly.

    Zero-pad both to :math:`n = \\max(V_t, V_s)`; put weight 1/n on each value; cost
    :math:`C_{ij} = |p_i - q_j|`:

    .. math:: n \\cdot W_1\\Big(\\tfrac1n \\sum_i \\delta_{p_i},\\ \\tfrac1n \\sum_j \\delta_{q_j}\\Big)
              = \\sum_i |p_{(i)} - q_{(i)}| = \\mathrm{ULD}(p, q)

    (in 1-D, sorting is the optimal coupling). The plan (n, n) is returned scaled by n, so
    ``plan[i, j] = 1`` means teacher value i is matched to student value j.

    Parameters
    ----------
    p : array, shape (V_t,)
    q : array, shape (V_s,)

    Examples
    --------
    >>> round(value_space_ot([0.5, 0.3, 0.2], [0.6, 0.4]).value, 9)
    0.4
    """
    p, q = _as_float64_vector(p, "p"), _as_float64_vector(q, "q")
    pp, qp = _padded(p, q)
    n = pp.shape[0]
    _check_support(n, "value_space_ot")
    u = np.full(n, 1.0 / n)
    r = exact_ot(u, u, np.abs(pp[:, None] - qp[None, :]), num_iter_max=num_iter_max)
    return OTResult(value=n * r.value, plan=n * r.plan, cost=r.cost, iterations_limit=r.iterations_limit)


def _padded_uniform(sorted_x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The uniform measure (1/n) sum_i delta_{x_i} on an ascending row zero-padded to n, as
    float64 values and weights: the row's values, after one atom at 0 that carries the padding's
    weight (n - V) / n (entries are >= 0, so the padding comes first)."""
    V = sorted_x.size
    values, weights = sorted_x.astype(np.float64), np.full(V, 1.0 / n)
    if n > V:
        values, weights = np.concatenate(([0.0], values)), np.concatenate(([(n - V) / n], weights))
    return values, weights


def value_space_w1(p: Any, q: Any, *, subprobability: bool = False, validate: bool = True) -> float:
    """:math:`n \\cdot W_1` between the uniform measures on the n padded VALUES, at any n.

    The value of :func:`value_space_ot` (which equals ULD) without its n x n plan, solved by
    POT's exact 1-D OT (``emd_1d_sorted`` on the sorted values with weights 1/n; the zero padding
    is one atom of weight (n - V)/n), in O(n log n): usable at 262,144-token vocabularies.

    .. math:: n \\cdot W_1\\Big(\\tfrac1n \\sum_i \\delta_{p_i},\\ \\tfrac1n \\sum_j \\delta_{q_j}\\Big)

    Parameters
    ----------
    p : array, shape (V_t,)
    q : array, shape (V_s,)
    subprobability : bool
        Accept total mass at most 1 (chain-rule merged groups), as :func:`uld_distance` does.
    validate : bool
        Check both inputs (default); turn off only for rows already checked.

    Examples
    --------
    >>> round(value_space_w1([0.5, 0.3, 0.2], [0.6, 0.4]), 9)
    0.4
    """
    if validate:
        p, q = check_pair(p, q, subprobability=subprobability)
    if p.ndim != 1 or q.ndim != 1:
        raise ValueError(
            f"p and q must be single distributions of shape (V,) here (got {tuple(p.shape)} and {tuple(q.shape)})"
        )
    # sort in the input's own float dtype (float32 sorts ~2x faster; widening to float64 after is
    # exact and keeps the order)
    native = lambda x: x if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) else as_float64(x)  # noqa: E731
    p, q = np.sort(native(p)), np.sort(native(q))
    n = max(p.size, q.size)
    a_v, a_w = _padded_uniform(p, n)
    b_v, b_w = _padded_uniform(q, n)
    try:
        from ot.lp.emd_wrap import emd_1d_sorted
    except ImportError:  # pragma: no cover - POT moved its private solver: the public one sorts again
        return float(n * ot.emd2_1d(a_v, b_v, a_w, b_w, metric="cityblock"))
    return float(n * emd_1d_sorted(a_w, b_w, a_v, b_v, metric="cityblock")[2])


def rank_space_ot(p: Any, q: Any, *, num_iter_max: int = NUM_ITER_MAX) -> OTResult:
    """Exact OT between the sorted (descending, zero-padded) vectors with a 0/1 rank cost.

    .. math:: \\mathrm{OT}\\big(p_{\\downarrow}, q_{\\downarrow};\\ 1 - I\\big)
              = \\mathrm{TV}(p_{\\downarrow}, q_{\\downarrow}) = \\tfrac12 \\mathrm{ULD}(p, q)

    Row / column i of the plan is rank i (the i-th largest probability).

    Examples
    --------
    >>> round(rank_space_ot([0.5, 0.3, 0.2], [0.6, 0.4]).value, 9)
    0.2
    """
    p, q = _as_float64_vector(p, "p"), _as_float64_vector(q, "q")
    pp, qp = sorted_probs(p, q)
    n = pp.shape[0]
    _check_support(n, "rank_space_ot")
    return exact_ot(pp, qp, 1.0 - np.eye(n), num_iter_max=num_iter_max)


def token_space_ot(p: Any, q: Any, cost: Any, *, num_iter_max: int = NUM_ITER_MAX) -> OTResult:
    """Exact OT between teacher tokens and student tokens under a ground cost.

    .. math:: \\min_{\\gamma \\in \\Pi(p, q)} \\sum_{ij} \\gamma_{ij} C_{ij},
              \\quad C \\in \\mathbb{R}_{\\ge 0}^{V_t \\times V_s}

    Parameters
    ----------
    p : array, shape (V_t,)
    q : array, shape (V_s,)
    cost : array, shape (V_t, V_s)
        e.g. :func:`string_identity_cost` or :func:`edit_distance_cost` of the token strings.

    Examples
    --------
    >>> C = string_identity_cost(["a", "b"], ["a", "b"])
    >>> round(token_space_ot([0.7, 0.3], [0.4, 0.6], C).value, 9)  # = TV
    0.3
    """
    return exact_ot(p, q, cost, num_iter_max=num_iter_max)


def zero_one_group_ot(a: Any, b: Any, group_a: Any, group_b: Any) -> OTResult:
    """Exact OT in closed form for a 0/1 cost given by groups: :math:`C_{ij} = [g_i \\ne h_j]`.

    Zero cost inside a group (e.g. tokens with the same string), 1 across. Mass can stay only
    inside a group, at most :math:`\\min(A_g, B_g)` of it, and the rest moves at cost 1 each:

    .. math:: \\mathrm{OT}(a, b) = 1 - \\sum_g \\min(A_g, B_g),
              \\quad A_g = \\sum_{i: g_i = g} a_i,\\ B_g = \\sum_{j: h_j = g} b_j

    An optimal plan: inside group g, :math:`\\gamma_{ij} = a_i b_j / \\max(A_g, B_g)`; the
    residuals (only the surplus side of each group has one, so every residual pair costs 1) are
    coupled by their normalized outer product. Identical to POT's network simplex on the same
    problem (tested), in O(n_t n_s) for the dense plan.

    Parameters
    ----------
    a : array, shape (n_t,)
    b : array, shape (n_s,)
    group_a, group_b : int arrays, shapes (n_t,), (n_s,)

    Examples
    --------
    >>> r = zero_one_group_ot([0.6, 0.4], [0.5, 0.5], [0, 1], [1, 2])
    >>> round(r.value, 9), r.plan.round(3).tolist()
    (0.6, [[0.1, 0.5], [0.4, 0.0]])
    """
    a = _as_float64_vector(a, "a")
    b = _as_float64_vector(b, "b")
    ga, gb = np.asarray(group_a), np.asarray(group_b)
    if ga.shape != a.shape or gb.shape != b.shape:
        raise ValueError(
            f"group_a and group_b must have one label per entry: expected {a.shape} and {b.shape}, "
            f"got {ga.shape} and {gb.shape}"
        )
    labels, inv = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size :]
    A = np.bincount(ia, weights=a, minlength=labels.size)
    B = np.bincount(ib, weights=b, minlength=labels.size)
    top = np.maximum(A, B)[ib]
    # b_j / max(A_g, B_g) <= 1: no overflow even when a group's mass is subnormal (1 / top is not)
    ratio_b = np.divide(b, top, out=np.zeros_like(b), where=top > 0)
    C = (ia[:, None] != ib[None, :]).astype(np.float64)
    plan = np.outer(a, ratio_b) * (1.0 - C)  # inside groups: a_i b_j / max(A_g, B_g)
    res_a, res_b = a - plan.sum(1), b - plan.sum(0)
    value = max(0.0, 1.0 - float(np.minimum(A, B).sum()))
    if value > 0:  # residual shares res_a_i / value <= 1, for the same reason
        plan += np.outer(np.clip(res_a, 0, None) / value, np.clip(res_b, 0, None))
    return OTResult(value=value, plan=plan, cost=C, iterations_limit=0)


def zero_one_group_value(a: Any, b: Any, group_a: Any, group_b: Any) -> float:
    """The value of :func:`zero_one_group_ot` without its plan: :math:`1 - \\sum_g \\min(A_g, B_g)`.

    ``a``, ``b`` are taken as given (probability vectors, shapes (n_t,), (n_s,)); ``group_a``,
    ``group_b`` int labels of the same shapes. O(n_t + n_s).

    >>> round(zero_one_group_value([0.6, 0.4], [0.5, 0.5], [0, 1], [1, 2]), 9)
    0.6
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ga, gb = np.asarray(group_a), np.asarray(group_b)
    if ga.shape != a.shape or gb.shape != b.shape:
        raise ValueError(
            f"group_a and group_b must have one label per entry: expected {a.shape} and {b.shape}, "
            f"got {ga.shape} and {gb.shape}"
        )
    a, b = a / a.sum(), b / b.sum()  # the same exact equal masses as the plan's version
    labels, inv = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    A = np.bincount(inv[: a.size], weights=a, minlength=labels.size)
    B = np.bincount(inv[a.size :], weights=b, minlength=labels.size)
    return max(0.0, 1.0 - float(np.minimum(A, B).sum()))


def _top_k_support(p: Any, q: Any, teacher_tokens: Sequence[str], student_tokens: Sequence[str], k: int,
                   cost: str | CostBuilder, validate: bool) -> tuple[Any, Any, Any, CostBuilder]:
    """Each side's top-k + rest (:func:`~uld_explorer.distributions.top_k_with_rest`), the named
    cost (or None) and its builder: the support every top-k token-space problem here shares."""
    if validate:
        p, q = check_pair(p, q)
    for nm, toks, arr in (("teacher_tokens", teacher_tokens, p), ("student_tokens", student_tokens, q)):
        if len(toks) != arr.shape[-1]:
            raise ValueError(
                f"{nm} must have one string per vocabulary entry: expected {arr.shape[-1]}, got {len(toks)}"
            )
    named_cost = COSTS.get(cost) if isinstance(cost, str) else None
    if named_cost is not None:
        builder = named_cost.build
    elif callable(cost):
        builder = cost
    else:
        raise ValueError(
            f"cost must be one of {', '.join(COSTS)} or a callable(teacher_strings, student_strings) "
            f"(got {cost!r})"
        )
    tp, tq = top_k_with_rest(p, k, "p", validate=False), top_k_with_rest(q, k, "q", validate=False)
    return tp, tq, named_cost, builder


def _top_k_cost(tp: Any, tq: Any, teacher_tokens: Sequence[str], student_tokens: Sequence[str], named_cost: Any,
                builder: CostBuilder, rest_cost: float | None) -> np.ndarray:
    """The (k_t + 1, k_s + 1) cost of a top-k support: the builder's between the kept tokens, the
    bound to and from a rest bucket, 0 rest to rest."""
    named = np.asarray(
        builder([teacher_tokens[i] for i in tp.index], [student_tokens[j] for j in tq.index]), dtype=np.float64
    )
    if named.shape != (tp.index.size, tq.index.size):
        raise ValueError(f"the cost builder must return shape {(tp.index.size, tq.index.size)} (got {named.shape})")
    if rest_cost is not None:
        bound = float(rest_cost)
    elif named_cost is not None:  # a registered cost knows its bound: an unknown token costs that
        bound = named_cost.bound
    else:
        bound = float(named.max()) if named.size else 1.0
    C = np.full((tp.probs.size, tq.probs.size), bound)
    C[:-1, :-1] = named
    C[-1, -1] = 0.0
    return C


def token_space_ot_top_k(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str],
    student_tokens: Sequence[str],
    k: int = 500,
    *,
    cost: str | CostBuilder = "string",
    rest_cost: float | None = None,
    solver: str = "auto",
    num_iter_max: int = NUM_ITER_MAX,
    validate: bool = True,
    plan: bool = True,
) -> TokenOTResult:
    """Token-space exact OT on each side's top-k tokens plus one "rest" bucket.

    Each side keeps its ``k`` most probable tokens; the remaining mass goes to a rest bucket
    (the last row / column). The rest bucket is an unknown token: its cost to every named token
    is ``rest_cost`` (default: 1 for the built-in "string" / "edit" costs, whose bound it is;
    for a callable, the largest entry of its cost between the named tokens) and rest-to-rest
    costs 0. The truncated masses are reported: the value is exact for the truncated problem and
    within ``teacher_truncated_mass + student_truncated_mass`` (times the cost bound) of the full
    one.

    Parameters
    ----------
    p : array, shape (V_t,)
    q : array, shape (V_s,)
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s
    k : int
        Tokens kept per side (``k >= V`` keeps all and the bucket holds 0).
    cost : a name of :data:`~uld_explorer.costs.COSTS` ("string", "edit") or callable(teacher_strings, student_strings) -> (k_t, k_s) array
    solver : "auto" | "pot"
        ``"pot"``: POT's network simplex (:func:`exact_ot`) always. ``"auto"`` (default): the
        same, except for a 0/1 cost (``"string"``) with rest cost 1, whose exact optimum has a
        closed form (:func:`zero_one_group_ot`, milliseconds instead of ~0.25 s at k = 1000;
        equal to POT's value to 1e-12 in the tests).
    validate : bool
        Check ``p`` and ``q`` (default); turn off only for rows already checked.
    plan : bool
        Build the plan and the cost matrix (default). ``False`` with the closed form: the value
        only, from the group sums in O(k) (``plan`` and ``cost`` of the result are empty
        ``(0, 0)`` arrays), ~20x faster at k = 500; the per-position table uses it. With POT the
        plan is computed anyway and returned.

    Returns
    -------
    TokenOTResult
        Plan of shape (k_t + 1, k_s + 1); ``iterations_limit`` is 0 when solved in closed form.

    Examples
    --------
    >>> r = token_space_ot_top_k([0.6, 0.3, 0.1], [0.5, 0.5], ["a", "b", "c"], ["b", "a"], k=2)
    >>> round(r.value, 9), round(r.teacher_truncated_mass, 9)
    (0.2, 0.1)
    """
    if solver not in ("auto", "pot"):
        raise ValueError(f"solver must be 'auto' or 'pot' (got {solver!r})")
    tp, tq, named_cost, builder = _top_k_support(p, q, teacher_tokens, student_tokens, k, cost, validate)
    closed_form = (solver == "auto" and named_cost is not None and named_cost.zero_one
                   and (named_cost.bound if rest_cost is None else float(rest_cost)) == 1.0)
    if closed_form:
        ids: dict[str, int] = {}
        g_t = np.array([ids.setdefault(teacher_tokens[i], len(ids)) for i in tp.index] + [-1], dtype=np.int64)
        g_s = np.array([ids.setdefault(student_tokens[j], len(ids)) for j in tq.index] + [-1], dtype=np.int64)
        if not plan:  # the value needs only the group sums: 1 - sum_g min(A_g, B_g)
            empty = np.zeros((0, 0))
            return TokenOTResult(
                value=zero_one_group_value(tp.probs, tq.probs, g_t, g_s), plan=empty, cost=empty,
                iterations_limit=0, teacher_index=tp.index, student_index=tq.index,
                teacher_truncated_mass=tp.truncated_mass, student_truncated_mass=tq.truncated_mass,
            )
    C = _top_k_cost(tp, tq, teacher_tokens, student_tokens, named_cost, builder, rest_cost)
    if closed_form:
        r = zero_one_group_ot(tp.probs, tq.probs, g_t, g_s)  # rest <-> rest: the shared group -1
    else:
        r = exact_ot(tp.probs, tq.probs, C, num_iter_max=num_iter_max)
    return TokenOTResult(
        value=r.value, plan=r.plan, cost=C, iterations_limit=r.iterations_limit,
        teacher_index=tp.index, student_index=tq.index,
        teacher_truncated_mass=tp.truncated_mass, student_truncated_mass=tq.truncated_mass,
    )


def token_space_sinkhorn_top_k(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str],
    student_tokens: Sequence[str],
    k: int = 500,
    *,
    epsilon: float = 0.05,
    cost: str | CostBuilder = "string",
    rest_cost: float | None = None,
    num_iter_max: int = SINKHORN_MAX_ITER,
    tolerance: float = 1e-6,
    on_not_converged: str = "raise",
    validate: bool = True,
    plan: bool = True,
) -> SinkhornResult:
    """Entropic token-space OT (:func:`entropic_ot`) on the support and cost of :func:`token_space_ot_top_k`.

    The same top-k tokens per side plus one rest bucket, the same ground cost and rest cost, so
    the value sits beside the exact one: :math:`\\langle P_\\varepsilon, C \\rangle \\ge
    \\mathrm{OT}` and tends to it as ``epsilon`` → 0, while the plan :math:`P_\\varepsilon` blurs as
    ``epsilon`` grows (at ``epsilon`` → ∞ it is the independent coupling :math:`a b^\\top`).

    Parameters
    ----------
    p : array, shape (V_t,);  q : array, shape (V_s,)
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s
    k : int
        Tokens kept per side.
    epsilon : float
        Regularisation RELATIVE to the cost's largest entry (1 for the built-in costs): POT gets
        ``reg = epsilon * max(C)``.
    cost, rest_cost
        As for :func:`token_space_ot_top_k`.
    num_iter_max, tolerance, on_not_converged
        As for :func:`entropic_ot`: by default an unconverged solve raises :class:`OTNotConvergedError`;
        ``"nan"`` returns ``value`` NaN with ``converged`` False, the iterations and the marginal error.
    validate : bool
        Check ``p`` and ``q`` (default).
    plan : bool
        Keep the plan and the cost (default); ``False`` returns empty ``(0, 0)`` arrays (a table's rows).

    Returns
    -------
    SinkhornResult
        Plan of shape (k_t + 1, k_s + 1), rows and columns as in :func:`token_space_ot_top_k`.

    Examples
    --------
    >>> r = token_space_sinkhorn_top_k([0.6, 0.3, 0.1], [0.5, 0.5], ["a", "b", "c"], ["b", "a"], k=2, epsilon=0.01)
    >>> round(r.value, 4), r.converged, r.iterations < 1000
    (0.2, True, True)
    """
    tp, tq, named_cost, builder = _top_k_support(p, q, teacher_tokens, student_tokens, k, cost, validate)
    C = _top_k_cost(tp, tq, teacher_tokens, student_tokens, named_cost, builder, rest_cost)
    r = entropic_ot(tp.probs, tq.probs, C, epsilon, num_iter_max=num_iter_max, tolerance=tolerance,
                    on_not_converged=on_not_converged)
    r = replace(r, teacher_index=tp.index, student_index=tq.index, teacher_truncated_mass=tp.truncated_mass,
                student_truncated_mass=tq.truncated_mass)
    if not plan:
        empty = np.zeros((0, 0))
        r = replace(r, plan=empty, cost=empty)
    return r
