"""KL, JS, TV, the ULD closed form, and the shared-vocabulary helper.

Teacher first (``p`` over V_t tokens), student second (``q`` over V_s tokens), everywhere.
NumPy and torch inputs are both accepted and batched over all leading axes; the result keeps
the input's type: shape ``(...)`` for inputs of shape ``(..., V)``.

Exact optimal transport (POT) lives in :mod:`uld_explorer.ot`.

One job: the divergences' math (each function a divergence, with its formula, shapes, gradient
and a doctest; ULD's CPU and torch kernels next to it), hence its length.

References
----------
.. [1] N. Boizard, K. El Haddad, C. Hudelot, P. Colombo. "Towards Cross-Tokenizer Distillation:
   the Universal Logit Distillation Loss for LLMs". TMLR, 2024. arXiv:2402.12030.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.special import xlogy as _np_xlogy

from .checks import check_temperature
from .distributions import Array, as_float64, check_pair, is_torch, softmax
from .text.vocab import StringMatch, match_strings

__all__ = [
    "VocabularyMismatchError",
    "SharedVocab",
    "kl_divergence",
    "reverse_kl_divergence",
    "js_divergence",
    "total_variation",
    "uld_distance",
    "uld_from_logits",
    "ULDTopK",
    "uld_top_k",
    "uld_top_k_from_logits",
    "restrict_to_shared_vocab",
    "MinEDKL",
    "mined_kl",
    "string_mass",
    "sorted_l1_numpy",
    "sorted_l1_torch",
    "HybridULD",
    "hybrid_uld",
    "HybridTopK",
    "hybrid_top_k",
]


class VocabularyMismatchError(ValueError):
    """KL (and JS) compare probabilities token by token, so both sides need ONE vocabulary."""

    def __init__(self, V_t: int, V_s: int):
        self.V_t, self.V_s = V_t, V_s
        super().__init__(
            f"KL needs one shared vocabulary, but the teacher has V_t={V_t} tokens and the student "
            f"V_s={V_s}. KL(p||q) = sum_i p_i log(p_i / q_i) compares the SAME token i on both sides: "
            f"if the teacher's token 0 is 'dog' and the student's token 0 is 'cat' (and the teacher "
            f"has 'moon' where the student has nothing), p_0 / q_0 divides the probability of 'dog' "
            f"by that of 'cat' and means nothing. Fix: restrict both to the tokens whose strings match "
            f"(uld_explorer.restrict_to_shared_vocab, which reports the mass left out), or use a "
            f"tokenizer-free distance: uld_distance (sorted-L1 Wasserstein) or exact OT with a "
            f"token-space cost (uld_explorer.token_space_ot)."
        )


def _kl_terms(p: Array, q: Array) -> Array:
    # p log p - p log q, with 0 log 0 = 0 and p > 0, q = 0 -> +inf (never NaN)
    if is_torch(p):
        return torch.special.xlogy(p, p) - torch.special.xlogy(p, q)
    return _np_xlogy(p, p) - _np_xlogy(p, q)


def _same_vocab(p: Any, q: Any, validate: bool = True) -> tuple[Array, Array]:
    if validate:
        p, q = check_pair(p, q)
    elif not is_torch(p):
        p, q = np.asarray(p), np.asarray(q)
    if p.shape[-1] != q.shape[-1]:
        raise VocabularyMismatchError(p.shape[-1], q.shape[-1])
    return p, q


def kl_divergence(p: Any, q: Any, *, validate: bool = True) -> Array:
    """Forward KL divergence of the student ``q`` from the teacher ``p``.

    .. math:: \\mathrm{KL}(p \\,\\|\\, q) = \\sum_i p_i \\log \\frac{p_i}{q_i}

    with :math:`0 \\log 0 = 0`; the result is :math:`+\\infty` (never NaN) where some
    :math:`q_i = 0 < p_i`. In nats.

    Parameters
    ----------
    p : array or tensor, shape (..., V)
        Teacher distribution(s).
    q : array or tensor, shape (..., V)
        Student distribution(s) over the SAME vocabulary.
    validate : bool
        Check both inputs (default). Turn off only for rows already checked; NaN rows (e.g. from
        :func:`restrict_to_shared_vocab` with ``on_empty="nan"``) then give NaN.

    Returns
    -------
    kl : array or tensor, shape (...)

    Raises
    ------
    VocabularyMismatchError
        If ``p`` and ``q`` have different vocabulary sizes.
    ValueError
        On invalid distributions or batch shapes (see :func:`check_distribution`).

    Examples
    --------
    >>> round(float(kl_divergence([0.5, 0.5], [0.9, 0.1])), 4)
    0.5108
    >>> float(kl_divergence([0.5, 0.5], [1.0, 0.0]))
    inf
    """
    p, q = _same_vocab(p, q, validate)
    return _kl_terms(p, q).sum(-1)


def reverse_kl_divergence(p: Any, q: Any) -> Array:
    """Reverse KL, the mode-seeking direction: :math:`\\mathrm{KL}(q \\,\\|\\, p) = \\sum_i q_i \\log (q_i / p_i)`.

    Same shapes, conventions and errors as :func:`kl_divergence` (teacher ``p`` first).

    Examples
    --------
    >>> round(float(reverse_kl_divergence([0.5, 0.5], [0.9, 0.1])), 4)
    0.3681
    """
    p, q = _same_vocab(p, q)
    return _kl_terms(q, p).sum(-1)


def js_divergence(p: Any, q: Any) -> Array:
    """Jensen-Shannon divergence, symmetric and bounded by :math:`\\log 2`.

    .. math:: \\mathrm{JS}(p, q) = \\tfrac12 \\mathrm{KL}(p \\,\\|\\, m) + \\tfrac12 \\mathrm{KL}(q \\,\\|\\, m),
              \\quad m = \\tfrac12 (p + q)

    Shapes ``(..., V)`` -> ``(...)``; raises :class:`VocabularyMismatchError` if the vocabularies differ.

    Examples
    --------
    >>> round(float(js_divergence([1.0, 0.0], [0.0, 1.0])), 4)  # log 2
    0.6931
    """
    p, q = _same_vocab(p, q)
    # KL(x || m) with m = s / 2 written as sum x log(2 x / s): (p + q) / 2 underflows to 0 for a
    # subnormal p_i next to q_i = 0 (float32 softmax tails), which made JS +inf instead of <= log 2
    # (clamped at 0: for p = q the terms' rounding summed to -5.6e-17 on [1/3, 1/3, 1/3])
    s = p + q
    if is_torch(p):
        s = torch.where(s > 0, s, torch.ones_like(s))
        js = (torch.special.xlogy(p, 2 * p / s).sum(-1) + torch.special.xlogy(q, 2 * q / s).sum(-1)) / 2
        return js.clamp_min(0.0)
    s = np.where(s > 0, s, np.ones_like(s))
    return np.maximum((_np_xlogy(p, 2 * p / s).sum(-1) + _np_xlogy(q, 2 * q / s).sum(-1)) / 2, 0.0)


def total_variation(p: Any, q: Any) -> Array:
    """Total variation distance over one shared vocabulary.

    .. math:: \\mathrm{TV}(p, q) = \\tfrac12 \\sum_i |p_i - q_i|

    Shapes ``(..., V)`` -> ``(...)``; raises :class:`VocabularyMismatchError` if the vocabularies differ.

    Examples
    --------
    >>> float(total_variation([0.5, 0.5], [1.0, 0.0]))
    0.5
    """
    p, q = _same_vocab(p, q)
    return (p - q).abs().sum(-1) / 2 if is_torch(p) else np.abs(p - q).sum(-1) / 2


# --------------------------------------------------------------------------------------------
# ULD: sorted-L1 closed form
# --------------------------------------------------------------------------------------------
#
# Both vectors sorted in ASCENDING order, a (long side, length n) and b (short side, length m):
# the descending pairing of the paper pairs the top-m of a with b, i.e. a[n-m:] with b, and the
# n-m smallest entries of a meet the zero padding and contribute their sum. No padded copy is
# ever made. The gradient w.r.t. an input entry is the sign of (its sorted value minus its
# partner's), scattered back through the sort permutation; it is computed in the forward pass
# and kept as int8 (1 byte per student entry) for the backward pass.

_CPU_CHUNK_ROWS = 16  # rows per worker task: bounds the temporary copies to ~10 MB per worker


def _sorted_l1_rows_np(
    a: np.ndarray, b: np.ndarray, value: np.ndarray, sign_a: np.ndarray | None, sign_b: np.ndarray | None
) -> None:
    """Rows of ``a`` (R, n) and ``b`` (R, m), n >= m: writes value (R,) and int8 signs in place
    (``sign_a`` and ``sign_b`` C-contiguous)."""
    R, n = a.shape
    m = b.shape[1]
    sb, ib = _sort_rows_np(b, sign_b is not None)
    if sign_a is None and 0 < m < n:
        # no gradient for the long side: only its top m need an order (they meet b); the n - m
        # others meet the zero padding and count by their sum. Partition (O(n)), then sort m.
        part = np.partition(a, n - m, axis=-1)
        diff = np.sort(part[:, n - m :], axis=-1) - sb  # (R, m): the same pairs as a full sort
        value[:] = np.abs(diff).sum(-1, dtype=np.float64) + part[:, : n - m].sum(-1, dtype=np.float64)
    elif 0 < 4 * m <= n:
        # a gradient for a long side that meets a much shorter one (the student against a teacher's
        # top-k): the same, with the indices. The n - m entries below the top m meet the padding:
        # their sign is sign(a) (1, or 0 at 0); only the top m get an order. O(n) + O(m log m).
        ap = np.argpartition(a, n - m, axis=-1)
        part = np.take_along_axis(a, ap, -1)  # = np.partition(a, n - m): the same selection
        idx, top = ap[:, n - m :], part[:, n - m :]  # (R, m) the top m, unordered
        order = np.argsort(top, axis=-1, kind="stable")
        diff = np.take_along_axis(top, order, -1) - sb  # (R, m)
        value[:] = np.abs(diff).sum(-1, dtype=np.float64) + part[:, : n - m].sum(-1, dtype=np.float64)
        sign_a[:] = np.sign(a)
        sign_a[np.arange(R)[:, None], np.take_along_axis(idx, order, -1)] = np.sign(diff)
        if sign_b is not None:
            _scatter(sign_b, ib, -np.sign(diff).astype(np.int8))
        return
    else:
        sa, ia = _sort_rows_np(a, sign_a is not None)
        diff = sa[:, n - m :] - sb  # (R, m)
        value[:] = np.abs(diff).sum(-1, dtype=np.float64) + sa[:, : n - m].sum(-1, dtype=np.float64)
    if sign_a is not None:
        ranked = np.empty((R, n), dtype=np.int8)
        ranked[:, n - m :] = np.sign(diff)
        ranked[:, : n - m] = np.sign(sa[:, : n - m])
        _scatter(sign_a, ia, ranked)
    if sign_b is not None:
        _scatter(sign_b, ib, -np.sign(diff).astype(np.int8))


def _sort_rows_np(x: np.ndarray, with_index: bool, nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Ascending sort of each row of ``x`` (R, n), and with ``with_index`` the FLAT position in
    ``x`` (``row * n + column``, int64, shape (R, n)) of each sorted entry, for :func:`_scatter`.
    NumPy's SIMD sorts; ``nonnegative``: the caller knows there is no ``-0.0`` (nor a negative)."""
    if not with_index:
        return np.sort(x, axis=-1), None
    R, n = x.shape
    if x.dtype == np.float32 and R * n < 2**32:
        # Non-negative float32 bit patterns sort like the values: pack (bits << 32 | flat index)
        # into one uint64 key per entry, built in place, and sort the keys (~2x faster than an
        # argsort and a gather). The values are read back as a strided float32 view of the sorted
        # keys' high halves (no pass), the index by one mask.
        # maximum: -0.0 -> +0.0; order C: the keys' rows contiguous whatever x's layout (a transposed x)
        key = (x if nonnegative else np.maximum(x, 0)).view(np.uint32).astype(np.uint64, order="C")
        key <<= np.uint64(32)
        key |= np.arange(R * n, dtype=np.uint64).reshape(R, n)
        key.sort(axis=-1)
        if np.little_endian:  # the high half of each key is its second uint32
            values = key.view(np.uint32)[:, 1::2].view(np.float32)
        else:
            values = (key >> np.uint64(32)).astype(np.uint32).view(np.float32)
        return values, (key & np.uint64(0xFFFFFFFF)).view(np.int64)  # a new array: values is a view of key
    index = np.argsort(x, axis=-1)
    values = np.take_along_axis(x, index, -1)
    index += (np.arange(R, dtype=index.dtype) * n)[:, None]
    return values, index


def _scatter(out: np.ndarray, flat: np.ndarray, values: np.ndarray) -> None:
    """``out.flat[flat] = values`` on a C-contiguous ``out``: the inverse of :func:`_sort_rows_np`'s
    permutation (a 1-D scatter, faster than NumPy's 2-D fancy indexing)."""
    if not out.flags.c_contiguous:  # a reshape would copy, and the writes be lost
        raise ValueError("_scatter needs a C-contiguous output")
    out.reshape(-1)[flat.reshape(-1)] = values.reshape(-1)


def sorted_l1_numpy(a: np.ndarray, b: np.ndarray, grad_a: bool, grad_b: bool):
    """ULD's CPU kernel: the sorted L1 of 2-D rows, ``a`` (R, n) the long side, ``b`` (R, m), m <= n.

    Returns ``(value, sign_a, sign_b)``: the values (R,) float64 and, when asked for, the
    gradient signs (int8, the shapes of ``a`` and ``b``). Chunked over rows and spread over
    torch's intra-op thread count; outputs are allocated once and filled in place by the workers
    (no concatenated copies). Public so that the CPU and GPU kernels can be checked against each
    other; :func:`uld_distance` is the API.
    """
    R = a.shape[0]
    value = np.empty(R, dtype=np.float64)
    sign_a = np.empty(a.shape, dtype=np.int8) if grad_a else None
    sign_b = np.empty(b.shape, dtype=np.int8) if grad_b else None

    def work(s: int) -> None:
        rows = slice(s, s + _CPU_CHUNK_ROWS)
        _sorted_l1_rows_np(
            a[rows], b[rows], value[rows],
            None if sign_a is None else sign_a[rows], None if sign_b is None else sign_b[rows],
        )

    _over_chunks(work, R)
    return value, sign_a, sign_b


def _over_chunks(work: Any, R: int) -> None:
    """``work(start)`` for each chunk of :data:`_CPU_CHUNK_ROWS` of R rows, spread over torch's
    intra-op thread count (the NumPy kernels release the GIL)."""
    starts = range(0, R, _CPU_CHUNK_ROWS)
    workers = max(1, min(torch.get_num_threads(), len(starts)))
    if workers == 1:
        for s in starts:
            work(s)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, starts))


def sorted_l1_torch(a: torch.Tensor, b: torch.Tensor, grad_a: bool, grad_b: bool):
    """ULD's torch kernel, the same contract as :func:`sorted_l1_numpy` on any torch device (used on
    GPU, where torch.sort is a fast segmented sort)."""
    n, m = a.shape[-1], b.shape[-1]
    if grad_a:
        sa, ia = torch.sort(a, dim=-1)
    else:
        sa = torch.sort(a, dim=-1).values
    sb, ib = torch.sort(b, dim=-1)
    diff = sa[:, n - m :] - sb
    value = diff.abs().sum(-1, dtype=torch.float64) + sa[:, : n - m].sum(-1, dtype=torch.float64)
    sign_a = sign_b = None
    if grad_a:
        ranked = torch.cat([torch.sign(sa[:, : n - m]), torch.sign(diff)], dim=-1).to(torch.int8)
        sign_a = torch.empty_like(ranked).scatter_(-1, ia, ranked)
    if grad_b:
        sign_b = torch.empty(b.shape, dtype=torch.int8, device=b.device).scatter_(
            -1, ib, (-torch.sign(diff)).to(torch.int8)
        )
    return value, sign_a, sign_b


def _sorted_l1(a: Array, b: Array, grad_a: bool = False, grad_b: bool = False):
    """ULD of 2-D rows with ``a.shape[-1] >= b.shape[-1]``: value (R,) float64 and int8 signs."""
    if is_torch(a) and (a.device.type != "cpu" or torch.bfloat16 in (a.dtype, b.dtype)):  # NumPy has no bfloat16
        return sorted_l1_torch(a, b, grad_a, grad_b)
    if is_torch(a):
        v, sa, sb = sorted_l1_numpy(a.numpy(), b.numpy(), grad_a, grad_b)
        wrap = lambda s: None if s is None else torch.from_numpy(s)  # noqa: E731
        return torch.from_numpy(v), wrap(sa), wrap(sb)
    return sorted_l1_numpy(a, b, grad_a, grad_b)


class _ULDFunction(torch.autograd.Function):
    """Autograd wrapper: d ULD / d x_j = sign(x_(r) - partner_(r)) at x_j's rank r."""

    @staticmethod
    def forward(ctx, p: torch.Tensor, q: torch.Tensor):  # p (R, V_t), q (R, V_s)
        grad_p, grad_q = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        p_long = p.shape[-1] >= q.shape[-1]
        a, b = (p, q) if p_long else (q, p)
        ga, gb = (grad_p, grad_q) if p_long else (grad_q, grad_p)
        value, sign_a, sign_b = _sorted_l1(a.detach().contiguous(), b.detach().contiguous(), ga, gb)
        sign_p, sign_q = (sign_a, sign_b) if p_long else (sign_b, sign_a)
        ctx.save_for_backward(
            sign_p if sign_p is not None else torch.empty(0),
            sign_q if sign_q is not None else torch.empty(0),
        )
        ctx.dtypes = (p.dtype, q.dtype)
        return value.to(dtype=torch.promote_types(p.dtype, q.dtype), device=p.device)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # grad_out (R,)
        sign_p, sign_q = ctx.saved_tensors
        g = grad_out.unsqueeze(-1)
        # one allocation per gradient: cast the int8 signs, then scale in place
        gp = sign_p.to(ctx.dtypes[0]).mul_(g) if ctx.needs_input_grad[0] else None
        gq = sign_q.to(ctx.dtypes[1]).mul_(g) if ctx.needs_input_grad[1] else None
        return gp, gq


def uld_distance(p: Any, q: Any, *, validate: bool = True, subprobability: bool = False) -> Array:
    """The ULD closed form: sorted-L1 distance between teacher and student distributions.

    Sort both vectors in descending order, zero-pad the shorter to :math:`n = \\max(V_t, V_s)`,
    and sum the absolute differences:

    .. math:: \\mathrm{ULD}(p, q) = \\sum_{i=1}^{n} | p_{(i)} - q_{(i)} |

    Token identities are ignored, so :math:`V_t \\ne V_s` is fine. Equivalently
    :math:`n \\cdot W_1` between the uniform measures on the n padded values, and
    :math:`2\\,\\mathrm{TV}` of the rank-aligned sorted vectors (see :mod:`uld_explorer.ot`).
    :math:`0 \\le \\mathrm{ULD} \\le 2`. No padded copy of the longer side is built: the entries
    of the longer side that meet the padding contribute their sum.

    Differentiable in torch w.r.t. both inputs (the student is the usual case); the gradient of
    the entry of rank r is :math:`\\mathrm{sign}(x_{(r)} - y_{(r)})` (0 at ties). On CPU the sorts
    use NumPy's SIMD sort; on GPU ``torch.sort``.

    Parameters
    ----------
    p : array or tensor, shape (..., V_t)
        Teacher distribution(s).
    q : array or tensor, shape (..., V_s)
        Student distribution(s); same batch shape as ``p``.
    validate : bool
        Check both inputs (:func:`~uld_explorer.distributions.check_distribution`). Turn off only
        for inputs known to be valid, e.g. softmax outputs in a training loop.
    subprobability : bool
        Accept vectors of total mass at most 1 (chain-rule merged multi-token groups); the
        formula is unchanged and ULD then lies in :math:`[0, \\sum p + \\sum q]`.

    Returns
    -------
    uld : array or tensor, shape (...)
        Float64 for NumPy input, the promoted input dtype for torch.

    References
    ----------
    .. [#uld-distance-ref] Boizard et al. 2024, TMLR, eq. (ULD), arXiv:2402.12030.

    Examples
    --------
    >>> float(uld_distance([0.7, 0.2, 0.1], [0.1, 0.7, 0.2]))  # a permutation: identity blind
    0.0
    >>> round(float(uld_distance([0.5, 0.3, 0.2], [0.6, 0.4])), 6)  # |.5-.6| + |.3-.4| + |.2-0|
    0.4
    >>> round(float(uld_distance([0.3, 0.1], [0.5, 0.5], subprobability=True)), 6)
    0.6
    """
    if validate:
        p, q = check_pair(p, q, subprobability=subprobability)
    elif not is_torch(p):  # keep a float array's own precision (a float32 row sorts ~2x faster)
        p, q = (x if isinstance(x, np.ndarray) and x.dtype.kind == "f" else as_float64(x) for x in (p, q))
    batch = tuple(p.shape[:-1])
    V_t, V_s = p.shape[-1], q.shape[-1]
    if is_torch(p):
        out = _ULDFunction.apply(p.reshape(-1, V_t), q.reshape(-1, V_s))  # (R,)
        return out.reshape(batch)
    dtype = np.promote_types(p.dtype, q.dtype)
    a, b = (p, q) if V_t >= V_s else (q, p)
    a = np.ascontiguousarray(a.reshape(-1, a.shape[-1]), dtype=dtype)
    b = np.ascontiguousarray(b.reshape(-1, b.shape[-1]), dtype=dtype)
    value, _, _ = sorted_l1_numpy(a, b, False, False)
    return value.reshape(batch)


def _softmax_one_pass(z: torch.Tensor, T: float, name: str, temperature_name: str) -> torch.Tensor:
    """``softmax(z / T)`` of a torch tensor's rows, float32 for half precision, without autograd:
    the row maxima (one pass) also validate (NaN or ``+inf`` anywhere, or a row of ``-inf`` only,
    makes a maximum non-finite: only then are the inputs searched, by the library's
    :func:`~uld_explorer.distributions.softmax`, for the message); then
    ``exp((z - max) / T) / sum`` in place in one buffer (the maximum subtracted, the sum by
    torch's pairwise reduction: the same values as :func:`~uld_explorer.distributions.softmax` to
    float32 rounding)."""
    x = z.detach()
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    m = x.amax(-1, keepdim=True)
    if not bool(torch.isfinite(m).all()):
        softmax(z, T, name, temperature_name=temperature_name)  # raises, naming the argument and the row
    out = torch.sub(x, m)
    if T != 1.0:
        out.div_(T)
    out.exp_()
    out.div_(out.sum(-1, keepdim=True))
    return out


def _exp_shifted(z: np.ndarray, T: float, out: np.ndarray) -> np.ndarray:
    """``out = exp((z - max) / T)`` row by row (unnormalised: the caller divides by the row sums
    where it needs them). Returns a boolean per row: its maximum is not finite (NaN, ``+inf``, or
    every entry ``-inf``), the softmax's faults."""
    m = z.max(-1, keepdims=True)
    np.subtract(z, m, out=out)
    if T != 1.0:
        out *= 1.0 / T
    np.exp(out, out=out)
    return ~np.isfinite(m[:, 0])


def _uld_logits_numpy(zt: np.ndarray, zs: np.ndarray, T_t: float, T_s: float, grad: bool):
    r"""ULD of the rows' softmaxes on CPU, one chunk of rows per worker task: each task takes its
    rows' softmaxes (max, exp and sum in place, in cache), their sorted L1 and, with ``grad``, the
    gradient of each row's ULD w.r.t. the student's logits times ``T_s``,
    :math:`d = q \odot (s - \langle s, q\rangle)` (``s`` the signs), written over the student's
    buffer: the backward is then one product. ``zt`` (R, V_t), ``zs`` (R, V_s), float32 or
    float64. Returns ``(value (R,) float64, d (R, V_s) or None)``, or ``(None, None)`` when a
    row's maximum is not finite (the caller then names the fault)."""
    R, V_t = zt.shape
    V_s = zs.shape[1]
    value = np.empty(R, dtype=np.float64)
    q = np.empty(zs.shape, dtype=zs.dtype)
    bad = np.zeros(R, dtype=bool)

    def work(s: int) -> None:
        rows = slice(s, s + _CPU_CHUNK_ROWS)
        qc = q[rows]  # the student's exp((z - max) / T_s), then d
        bad[rows] = _exp_shifted(zs[rows], T_s, qc)
        inv_s = 1.0 / qc.sum(-1, keepdims=True)  # the row's normaliser, in its dtype (pairwise sums)
        if V_t < V_s:  # the student is the long side: its probabilities in place, the kernel's int8 signs
            p = np.empty(zt[rows].shape, dtype=zt.dtype)
            bad[rows] |= _exp_shifted(zt[rows], T_t, p)
            if bad[rows].any():
                return
            p *= 1.0 / p.sum(-1, keepdims=True)
            qc *= inv_s
            sign = np.empty(qc.shape, dtype=np.int8) if grad else None
            _sorted_l1_rows_np(qc, p, value[rows], sign, None)
            if grad:  # d = q * (s - <s, q>), in place over q
                sq = np.multiply(qc, sign, dtype=qc.dtype)
                dot = sq.sum(-1, keepdims=True)
                np.subtract(sq, np.multiply(qc, dot, out=qc), out=qc)
            return
        # The teacher (no gradient) is the long side: only its top V_s meet the student, in order;
        # the rest count by their sum. exp is monotone, so its LOGITS are partitioned (the top V_s
        # of p are exp of the top V_s of z) and exponentiated; the two parts' sums make the
        # normaliser, and only the top part is sorted and scaled. Row by row in one buffer, which
        # stays in the core's cache (a row of 151,936 float32 is 0.6 MB; a chunk's would be 10).
        k = V_t - V_s
        c = qc.shape[0]
        buf = np.empty(V_t, dtype=zt.dtype)
        diff = np.empty((c, V_s), dtype=zt.dtype)
        rest = np.empty(c, dtype=np.float64)
        inv = np.empty(c, dtype=np.float64)
        for i in range(c):
            np.copyto(buf, zt[s + i])
            buf.partition(k)
            mx = buf[k:].max()  # the row's maximum is in the top part (a NaN too: NumPy orders NaN last)
            if not np.isfinite(mx):
                bad[s + i] = True
                return
            np.subtract(buf, mx, out=buf)
            if T_t != 1.0:
                buf *= 1.0 / T_t
            np.exp(buf, out=buf)
            rest[i] = buf[:k].sum()  # NumPy's pairwise sums, in the row's dtype
            inv[i] = 1.0 / (rest[i] + float(buf[k:].sum()))
            diff[i] = buf[k:]
        if bad[rows].any():
            return
        diff.sort(axis=-1)
        diff *= inv.astype(diff.dtype)[:, None]  # the teacher's top V_s probabilities, ascending
        sb, ib = _sort_rows_np(qc, grad, nonnegative=True)  # exp's order is the probabilities' order
        sb = np.multiply(sb, inv_s)  # the student's probabilities, ascending (contiguous)
        diff -= sb  # rank by rank
        t = np.sign(diff)
        value[rows] = np.einsum("ij,ij->i", t, diff, dtype=np.float64) + rest * inv  # sum |diff| + the rest
        if grad:
            # in rank order, s = -sign(diff) = -t, so d = q (s - <s, q>) = q (<t, q> - t): computed on
            # the sorted rows, then put back in vocabulary order over the student's buffer
            np.subtract(np.einsum("ij,ij->i", t, sb, dtype=np.float64).astype(t.dtype)[:, None], t, out=t)
            t *= sb
            _scatter(qc, ib, t)

    with np.errstate(invalid="ignore", over="ignore"):
        _over_chunks(work, R)
    if bad.any():
        return None, None
    return value, (q if grad else None)


class _ULDLogitsFunction(torch.autograd.Function):
    r"""ULD of ``softmax(z_t / T_t)`` and ``softmax(z_s / T_s)`` (rows), differentiable w.r.t. the
    student's logits only. Forward on CPU: one worker task per chunk of rows computes both
    softmaxes (max, exp, sum, scale, in place and in cache; a non-finite row maximum flags NaN,
    ``+inf`` or an all ``-inf`` row, then named by :func:`~uld_explorer.distributions.softmax`)
    and their sorted L1 with the student's int8 signs ``s``, and then, still in cache, the product
    the backward needs (:func:`_uld_logits_numpy`); on GPU :func:`_softmax_one_pass` and torch's
    kernels. The backward through the softmax never builds its Jacobian:

    .. math:: \frac{\partial L}{\partial z_j} = \frac{\bar L}{T_s}\, q_j\Big(s_j - \sum_k s_k q_k\Big)

    (on CPU one product with the saved :math:`q \odot (s - \langle s, q\rangle)`; on GPU torch's
    fused softmax backward). Checked against autograd of the restated formula
    (tests/test_divergences.py)."""

    @staticmethod
    def forward(ctx, zt: torch.Tensor, zs: torch.Tensor, T_t: float, T_s: float):  # (R, V_t), (R, V_s)
        grad = ctx.needs_input_grad[1]
        value = None
        if zt.device.type == "cpu" and zs.device.type == "cpu":  # the rows' softmaxes and ULD, chunk by chunk
            wide = lambda z: z.detach().float() if z.dtype not in (torch.float32, torch.float64) else z.detach()  # noqa: E731
            a, b = wide(zt), wide(zs)
            if a.dtype != b.dtype:
                a, b = a.double(), b.double()
            value, d = _uld_logits_numpy(a.contiguous().numpy(), b.contiguous().numpy(), T_t, T_s, grad)
            if value is None:  # a row's maximum is not finite: name the argument and the row
                _softmax_one_pass(zt, T_t, "teacher_logits", "teacher_temperature")
                _softmax_one_pass(zs, T_s, "student_logits", "student_temperature")
            value = torch.from_numpy(value)
            if grad:
                ctx.save_for_backward(torch.from_numpy(d))
            ctx.T_s, ctx.dtype, ctx.fused = T_s, zs.dtype, True
            return value.to(dtype=b.dtype)
        if value is None:  # GPU: torch's kernels
            p = _softmax_one_pass(zt, T_t, "teacher_logits", "teacher_temperature")
            q = _softmax_one_pass(zs, T_s, "student_logits", "student_temperature")
            if p.shape[-1] >= q.shape[-1]:
                value, _, sign_q = _sorted_l1(p, q, False, grad)
            else:
                value, sign_q, _ = _sorted_l1(q, p, grad, False)
        if grad:
            ctx.save_for_backward(q, sign_q)
        ctx.T_s, ctx.dtype, ctx.fused = T_s, zs.dtype, False
        return value.to(dtype=q.dtype, device=zs.device)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # (R,)
        if ctx.fused:  # CPU: the forward left d = q * (s - <s, q>); dL/dz = d * grad_out / T_s
            (d,) = ctx.saved_tensors
            return None, torch.mul(d, (grad_out.to(d.dtype) / ctx.T_s).unsqueeze(-1)).to(ctx.dtype), None, None
        q, sign = ctx.saved_tensors
        g = torch.mul(sign, (grad_out.to(q.dtype) / ctx.T_s).unsqueeze(-1))  # (R, V_s): dL/dq, over T_s
        # q * (g - sum_k g_k q_k): torch's fused softmax backward (two passes, no temporaries)
        return None, torch._softmax_backward_data(g, q, -1, q.dtype).to(ctx.dtype), None, None


def uld_from_logits(
    teacher_logits: Any,
    student_logits: Any,
    *,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
) -> Array:
    """ULD between ``softmax(z_t / T_t)`` and ``softmax(z_s / T_s)``, as in the authors' code.

    .. math:: \\mathrm{ULD}\\big(\\mathrm{softmax}(z_t / T_t),\\ \\mathrm{softmax}(z_s / T_s)\\big)

    No :math:`T^2` factor (the authors' code has none). Differentiable w.r.t. the student logits
    in torch. Shapes ``(..., V_t)``, ``(..., V_s)`` -> ``(...)``. The softmax runs in a safe
    precision (:func:`~uld_explorer.distributions.softmax`: float32 for half-precision logits) and
    refuses NaN, ``+inf`` and rows whose every logit is ``-inf``: the result is never NaN.

    For torch logits whose teacher needs no gradient (the training case), one fused pass per side
    and a backward through the softmax without its Jacobian (:class:`_ULDLogitsFunction`); else
    the softmax, then :func:`uld_distance`.

    Examples
    --------
    >>> z = np.array([2.0, 1.0, 0.0])
    >>> float(uld_from_logits(z, z[::-1]))
    0.0
    """
    if (is_torch(teacher_logits) and is_torch(student_logits) and not teacher_logits.requires_grad
            and teacher_logits.dim() > 0 and student_logits.dim() > 0):
        T_t = check_temperature(teacher_temperature, "teacher_temperature")
        T_s = check_temperature(student_temperature, "student_temperature")
        bt, bs = tuple(teacher_logits.shape[:-1]), tuple(student_logits.shape[:-1])
        if bt != bs:
            raise ValueError(f"teacher_logits and student_logits must have the same batch shape: got "
                             f"{tuple(teacher_logits.shape)} and {tuple(student_logits.shape)}")
        if teacher_logits.shape[-1] and student_logits.shape[-1]:
            out = _ULDLogitsFunction.apply(teacher_logits.reshape(-1, teacher_logits.shape[-1]),
                                           student_logits.reshape(-1, student_logits.shape[-1]), T_t, T_s)
            return out.reshape(bt)
    p = softmax(teacher_logits, teacher_temperature, "teacher_logits", temperature_name="teacher_temperature")
    q = softmax(student_logits, student_temperature, "student_logits", temperature_name="student_temperature")
    if tuple(p.shape[:-1]) != tuple(q.shape[:-1]):
        raise ValueError(
            f"teacher_logits and student_logits must have the same batch shape: got "
            f"{tuple(p.shape)} and {tuple(q.shape)}"
        )
    return uld_distance(p, q, validate=False)


@dataclass(frozen=True)
class ULDTopK:
    """ULD against a teacher known only by its sorted top-k and its tail mass (:func:`uld_top_k`).

    Attributes
    ----------
    value : tensor or array, shape (...)
        The estimate :math:`\\hat L` (differentiable w.r.t. the student in torch).
    bound : tensor or array, shape (...)
        :math:`|L - \\hat L| \\le \\min(Q, r)`: the exact ULD lies within ``value +- bound``.
    grad_bound : tensor or array, shape (...)
        :math:`\\|\\nabla_z L - \\nabla_z \\hat L\\|_1 \\le 4 \\min(Q, r) / T_s` for the student's
        logits z of that row (``q = softmax(z / T_s)``).
    student_tail : tensor or array, shape (...)
        Q, the student's mass outside its own k largest entries.
    """

    value: Array
    bound: Array
    grad_bound: Array
    student_tail: Array


def uld_top_k(
    p_top: Any, p_tail: Any, q: Any, *, student_temperature: float = 1.0, subprobability: bool = False
) -> ULDTopK:
    """ULD when only the teacher's k largest probabilities and its tail mass are kept.

    A teacher cache keeps, per position, the sorted top-k teacher probabilities
    :math:`p_{(1)} \\ge \\dots \\ge p_{(k)}` and the tail mass :math:`r = \\sum_{i > k} p_{(i)}`.
    With :math:`Q = \\sum_{i > k} q_{(i)}` the student's mass outside its own k largest entries,
    the exact ULD splits into a known head and an unknown tail,

    .. math::

        L = \\underbrace{\\sum_{i \\le k} |p_{(i)} - q_{(i)}|}_{H}
            + \\underbrace{\\sum_{i > k} |p_{(i)} - q_{(i)}|}_{\\in [\\,|Q - r|,\\ Q + r\\,]}

    (the tail term is at least :math:`|\\sum p - \\sum q|` and at most :math:`\\sum p + \\sum q`).
    The estimate is the interval's midpoint, :math:`\\hat L = H + \\max(Q, r)`, so

    .. math:: |L - \\hat L| \\le \\min(Q, r) \\le r.

    It is computed as ``uld_distance(p_top, q) + relu(r - Q)`` (the first term zero-pads the
    teacher: it equals :math:`H + Q`). Gradient: on the head ranks :math:`\\hat L` and L agree
    (:math:`\\mathrm{sign}(q_{(i)} - p_{(i)})`); on a tail rank :math:`\\hat L` gives 1 (if
    :math:`Q > r`) or 0, L gives :math:`\\mathrm{sign}(q_{(i)} - p_{(i)})`, which differs only where
    :math:`q_{(i)} \\le p_{(i)}` (by at most 2, total student mass there :math:`\\le \\min(Q, r)`) or,
    when :math:`Q \\le r`, by at most 1 on mass Q. Through :math:`q = \\mathrm{softmax}(z / T_s)`,
    :math:`\\|J^\\top \\delta\\|_1 \\le \\frac{2}{T_s} \\sum_i q_i |\\delta_i|`, hence
    :math:`\\|\\nabla_z L - \\nabla_z \\hat L\\|_1 \\le 4 \\min(Q, r) / T_s` per row.

    Parameters
    ----------
    p_top : tensor or array, shape (..., k)
        The teacher's k largest probabilities (any order: they are sorted here).
    p_tail : tensor or array, shape (...)
        The teacher's remaining mass r (>= 0).
    q : tensor or array, shape (..., V_s)
        Student distribution(s); differentiable in torch. With ``k >= V_s`` the result is exact
        (the student's ranks beyond k are padding: Q = 0).
    student_temperature : float
        :math:`T_s` of ``q = softmax(z / T_s)``, only for ``grad_bound``.
    subprobability : bool
        Rows of total mass at most 1 (chain-rule merged groups): the same bounds hold.

    Returns
    -------
    ULDTopK

    References
    ----------
    .. [#uld-top-k-ref] Boizard et al. 2024, TMLR, arXiv:2402.12030 (the full-vocabulary loss).

    Examples
    --------
    >>> p = np.array([0.5, 0.3, 0.1, 0.06, 0.04])   # teacher, k = 2 kept: r = 0.2
    >>> q = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    >>> r = uld_top_k(np.array([0.5, 0.3]), 0.2, q)
    >>> round(float(uld_distance(p, q)), 6), round(float(r.value), 6), round(float(r.bound), 6)  # |0.4 - 0.6| <= 0.2
    (0.4, 0.6, 0.2)
    """
    k = p_top.shape[-1]
    short = k >= q.shape[-1]  # the student has no entries beyond rank k (padding only): Q = 0, exact
    head_plus_q = uld_distance(p_top, q, validate=False, subprobability=subprobability)  # H + Q
    if is_torch(q):
        p_tail = torch.as_tensor(p_tail, dtype=head_plus_q.dtype, device=q.device)
        if short:
            q_tail = torch.zeros_like(head_plus_q)
        else:
            # the tail summed itself (the top k zeroed), not the total minus the top: float32
            # cancellation would leave ~1e-7, the size of a peaked student's tail
            q_tail = q.scatter(-1, torch.topk(q, k, dim=-1, sorted=False).indices, 0.0).sum(-1)
            q_tail = q_tail.to(head_plus_q.dtype)
        value = head_plus_q + torch.relu(p_tail - q_tail)
        bound = torch.minimum(q_tail, p_tail).detach()
    else:
        q = as_float64(q)
        p_tail = np.asarray(p_tail, dtype=np.float64)
        if short:
            q_tail = np.zeros(q.shape[:-1])
        else:
            q_tail = np.sort(q, axis=-1)[..., : q.shape[-1] - k].sum(-1)
        value = head_plus_q + np.maximum(p_tail - q_tail, 0.0)
        bound = np.minimum(q_tail, p_tail)
    return ULDTopK(value=value, bound=bound, grad_bound=4.0 * bound / float(student_temperature),
                   student_tail=q_tail)


def _uld_top_k_logits_numpy(p_top: np.ndarray, p_tail: np.ndarray, z: np.ndarray, pick: np.ndarray | None, T_s: float,
                            grad: bool):
    r""":func:`uld_top_k` of ``softmax(z / T_s)`` on CPU, one chunk of rows per worker task, for
    ``k < V_s``: the student's softmax (max, exp, sum, in place), its top k by ``argpartition``
    (O(V_s)) and only those k sorted, the head against the teacher's sorted top-k, the student's
    tail mass Q, and with ``grad`` the gradient w.r.t. the logits times ``T_s``,
    :math:`d = q \odot (g - \langle g, q\rangle)`, written over the student's buffer. ``g`` is the
    estimate's gradient w.r.t. q: :math:`\mathrm{sign}(q_{(i)} - p_{(i)})` on the student's top k,
    and on every other entry :math:`1 - [r > Q]` (1 from the padding it meets, minus 1 from
    :math:`\mathrm{relu}(r - Q)` when that is active), so the tail's d is one scaled pass and
    only k entries a row are scattered. ``p_top`` (R, k), ``p_tail`` (R,) float64, ``z`` (N, V_s)
    and ``pick`` (R,) the row of ``z`` of each pair (``None``: ``z``'s rows in order, N = R; else
    each chunk's rows are copied from ``z`` into the chunk's own buffer, never all at once).
    Returns ``(value (R,), Q (R,), d (R, V_s) or None)``, or ``(None, None, None)`` when a row's
    maximum is not finite."""
    R, k = p_top.shape
    V_s = z.shape[1]
    value = np.empty(R, dtype=np.float64)
    Q = np.empty(R, dtype=np.float64)
    e = np.empty((R, V_s), dtype=z.dtype)
    bad = np.zeros(R, dtype=bool)

    def work(s: int) -> None:
        rows = slice(s, s + _CPU_CHUNK_ROWS)
        ec = e[rows]  # exp((z - max) / T_s), then d
        if pick is None:
            bad[rows] = _exp_shifted(z[rows], T_s, ec)
        else:
            np.take(z, pick[rows], axis=0, out=ec)
            bad[rows] = _exp_shifted(ec, T_s, ec)
        if bad[rows].any():
            return
        ids = np.argpartition(ec, V_s - k, axis=-1)[:, V_s - k :]  # (c, k) the student's top k, unordered
        top = np.take_along_axis(ec, ids, -1)
        order = np.argsort(top, axis=-1)
        ids = np.take_along_axis(ids, order, -1)
        top = np.take_along_axis(top, order, -1)  # ascending
        # the tail's mass summed itself (the top k zeroed in the buffer; their d is written last),
        # not as the total minus the top: no cancellation when the tail is tiny
        np.put_along_axis(ec, ids, 0.0, -1)
        rest = ec.sum(-1).astype(np.float64)  # (c,) NumPy's pairwise sums, in the row's dtype
        S = rest + top.sum(-1, dtype=np.float64)
        inv = (1.0 / S)[:, None]
        qt = top * inv.astype(top.dtype)  # (c, k) the student's top-k probabilities, ascending
        pt = np.sort(p_top[rows], axis=-1).astype(qt.dtype, copy=False)  # the teacher's, ascending
        t = np.sign(qt - pt)  # sign(q_(i) - p_(i)), rank by rank
        head = np.einsum("ij,ij->i", t, qt - pt, dtype=np.float64)  # sum |q_(i) - p_(i)|
        Qc = rest / S  # the student's mass beyond its top k
        r = p_tail[rows]
        value[rows] = head + np.maximum(Qc, r)
        Q[rows] = Qc
        if grad:
            g_rest = np.where(r > Qc, 0.0, 1.0)  # (c,)
            dot = np.einsum("ij,ij->i", t, qt, dtype=np.float64) + g_rest * Qc  # <g, q>
            ec *= (inv[:, 0] * (g_rest - dot)).astype(ec.dtype)[:, None]  # the tail: q (g_rest - <g, q>)
            np.put_along_axis(ec, ids, qt * (t - dot.astype(qt.dtype)[:, None]), -1)  # the top k

    with np.errstate(invalid="ignore", over="ignore"):
        _over_chunks(work, R)
    if bad.any():
        return None, None, None
    return value, Q, (e if grad else None)


class _ULDTopKLogitsFunction(torch.autograd.Function):
    r""":func:`uld_top_k` from the student's logits on CPU (:func:`_uld_top_k_logits_numpy`),
    differentiable w.r.t. the logits only. Outputs the estimate (differentiable) and the student's
    tail mass Q (not). Backward: :math:`\partial \hat L / \partial z = \bar L\, d / T_s`, one
    product with the forward's :math:`d = q \odot (g - \langle g, q\rangle)`, added into the
    picked rows of ``z``'s gradient (``index_add_``: a row picked twice gets both)."""

    @staticmethod
    def forward(ctx, p_top: torch.Tensor, p_tail: torch.Tensor, z: torch.Tensor, pick: torch.Tensor | None, T_s: float):
        grad = ctx.needs_input_grad[2]
        zn = z.detach()
        if zn.dtype not in (torch.float32, torch.float64):
            zn = zn.float()
        pn = p_top.detach()
        if pn.dtype not in (torch.float32, torch.float64):  # NumPy has no bfloat16
            pn = pn.float()
        value, Q, d = _uld_top_k_logits_numpy(pn.contiguous().numpy(),
                                              p_tail.detach().double().contiguous().numpy(),
                                              zn.contiguous().numpy(), None if pick is None else pick.numpy(), T_s, grad)
        if value is None:  # a row's maximum is not finite: name the fault and the row
            _softmax_one_pass(z if pick is None else z[pick], T_s, "student_logits", "student_temperature")
        if grad:
            ctx.save_for_backward(torch.from_numpy(d), pick if pick is not None else torch.empty(0))
        ctx.T_s, ctx.dtype, ctx.shape, ctx.picked = T_s, z.dtype, z.shape, pick is not None
        dtype = torch.promote_types(pn.dtype, zn.dtype)
        q_tail = torch.from_numpy(Q).to(dtype)
        ctx.mark_non_differentiable(q_tail)
        return torch.from_numpy(value).to(dtype), q_tail

    @staticmethod
    def backward(ctx, grad_value: torch.Tensor, _grad_q_tail: Any):  # (R,)
        d, pick = ctx.saved_tensors
        gd = torch.mul(d, (grad_value.to(d.dtype) / ctx.T_s).unsqueeze(-1))
        if ctx.picked:
            gd = torch.zeros(ctx.shape, dtype=gd.dtype).index_add_(0, pick, gd)
        return None, None, gd.to(ctx.dtype), None, None


def uld_top_k_from_logits(
    p_top: Any, p_tail: Any, student_logits: Any, *, student_temperature: float = 1.0, rows: Any = None
) -> ULDTopK:
    r""":func:`uld_top_k` with the student given by its logits: the estimate for
    ``q = softmax(student_logits / T_s)``, the training loop's case.

    .. math:: \hat L = \sum_{i \le k} |p_{(i)} - q_{(i)}| + \max(Q, r), \qquad
              |L - \hat L| \le \min(Q, r)

    (:func:`uld_top_k` states the estimate, its bound and its gradient.) For torch logits on CPU
    with ``k < V_s`` and a teacher without a gradient, one fused pass per chunk of rows
    (:class:`_ULDTopKLogitsFunction`): the softmax in place, the student's top k found by a
    partition (O(V_s)) and only those sorted, the student's tail mass Q summed itself (not the
    total minus the top), and the backward through the softmax one product, with neither the
    probabilities nor ``torch.topk`` kept for autograd. Else (a teacher side that needs a
    gradient, another device, ``k >= V_s``, NumPy) ``uld_top_k(p_top, p_tail,
    softmax(student_logits / T_s))``. Same values and gradients either way, to float32 rounding
    (tests/test_distill_losses.py checks them against autograd of that composition and of the
    estimate restated with ``torch.sort``); where student probabilities tie, the two may take
    different subgradients.

    Parameters
    ----------
    p_top : tensor or array, shape (..., k)
        The teacher's k largest probabilities (any order).
    p_tail : tensor or array, shape (...)
        The teacher's remaining mass r.
    student_logits : tensor or array, shape (..., V_s)
        Differentiable in torch. NaN, ``+inf`` and rows of ``-inf`` only are refused, named
        (:func:`~uld_explorer.distributions.softmax`).
    student_temperature : float
        :math:`T_s`.
    rows : int tensor or array, shape (P,), optional
        With 2-D ``student_logits`` (N, V_s) and ``p_top`` (P, k): the student row of each
        teacher row, i.e. the estimate for ``student_logits[rows]``, without that copy on the
        fused path (each chunk's rows are read into its own buffer, and the gradient is added
        into those rows).

    Returns
    -------
    ULDTopK

    Examples
    --------
    >>> z = np.log(np.array([0.6, 0.1, 0.1, 0.1, 0.1]))
    >>> r = uld_top_k_from_logits(np.array([0.5, 0.3]), 0.2, z)
    >>> round(float(r.value), 6), round(float(r.bound), 6)
    (0.6, 0.2)
    """
    T_s = check_temperature(student_temperature, "student_temperature")
    z = student_logits
    if rows is not None:
        if z.ndim != 2 or p_top.ndim != 2:
            raise ValueError(f"rows needs 2-D student_logits (N, V_s) and p_top (P, k): got {tuple(z.shape)} and "
                             f"{tuple(p_top.shape)}")
        n_rows = len(rows)
        if n_rows != p_top.shape[0]:
            raise ValueError(f"rows must name one student row per teacher row: got {n_rows} rows for "
                             f"{p_top.shape[0]} teacher rows")
    if (is_torch(z) and is_torch(p_top) and z.device.type == "cpu" and p_top.device.type == "cpu"
            and not p_top.requires_grad and not (is_torch(p_tail) and p_tail.requires_grad)
            and z.dim() > 0 and 0 < p_top.shape[-1] < z.shape[-1]):
        batch = tuple(p_top.shape[:-1])
        pick = None
        if rows is not None:
            pick = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
            if pick.numel() and not bool(((pick >= 0) & (pick < z.shape[0])).all()):
                raise ValueError(f"rows must index student_logits' {z.shape[0]} rows: got values from "
                                 f"{int(pick.min())} to {int(pick.max())}")
        elif tuple(z.shape[:-1]) != batch:
            raise ValueError(f"p_top and student_logits must have the same batch shape: got {tuple(p_top.shape)} "
                             f"and {tuple(z.shape)}")
        r = torch.as_tensor(p_tail, dtype=torch.float64).expand(batch).reshape(-1)
        value, q_tail = _ULDTopKLogitsFunction.apply(p_top.reshape(-1, p_top.shape[-1]), r,
                                                     z if pick is not None else z.reshape(-1, z.shape[-1]), pick, T_s)
        value, q_tail = value.reshape(batch), q_tail.reshape(batch)
        bound = torch.minimum(q_tail, r.reshape(batch).to(q_tail.dtype)).detach()
        return ULDTopK(value=value, bound=bound, grad_bound=4.0 * bound / T_s, student_tail=q_tail)
    if rows is not None:
        z = z[torch.as_tensor(rows, dtype=torch.long) if is_torch(z) else np.asarray(rows)]
    q = softmax(z, T_s, "student_logits", temperature_name="student_temperature")
    return uld_top_k(p_top, p_tail, q, student_temperature=T_s)


# --------------------------------------------------------------------------------------------
# Shared strings: KL across tokenizers and the hybrid divergence
# --------------------------------------------------------------------------------------------


def _resolve_match(
    match: StringMatch | None, teacher_tokens: Sequence[str] | None, student_tokens: Sequence[str] | None,
    V_t: int, V_s: int,
) -> StringMatch:
    if match is None:
        if teacher_tokens is None or student_tokens is None:
            raise ValueError("pass teacher_tokens and student_tokens (one string per id), or match=match_strings(...)")
        for nm, toks, V in (("teacher_tokens", teacher_tokens, V_t), ("student_tokens", student_tokens, V_s)):
            if len(toks) != V:
                raise ValueError(f"{nm} must have one string per vocabulary entry: expected {V}, got {len(toks)}")
        match = match_strings(teacher_tokens, student_tokens)
    elif match.teacher_group.shape != (V_t,) or match.student_group.shape != (V_s,):
        raise ValueError(
            f"match was built for vocabularies of {match.teacher_group.size} and {match.student_group.size} "
            f"tokens, but p and q have V_t={V_t} and V_s={V_s}"
        )
    return match


@dataclass(frozen=True)
class SharedVocab:
    """Teacher and student restricted to the token strings both vocabularies contain.

    Attributes
    ----------
    p, q : array or tensor, shape (..., S)
        Renormalized distributions over the S shared strings (same type as the inputs). Rows
        where a side has no mass on the shared strings are NaN (``on_empty="nan"`` only).
    strings : list of str, length S
        The shared strings, in order.
    teacher_mass, student_mass : array or tensor, shape (...)
        Probability mass the shared strings covered before renormalizing (1 - the mass left out).
    """

    p: Array
    q: Array
    strings: list
    teacher_mass: Array
    student_mass: Array


def string_mass(x: Array, group: np.ndarray, S: int) -> Array:
    """The mass ``x`` puts on each of ``S`` strings: ``out[..., s] = sum_{v: group[v] = s} x[..., v]``.

    ``x`` : array, shape (..., V); ``group`` : int array, shape (V,), the string of each id
    (:attr:`~uld_explorer.text.StringMatch.teacher_group` / ``student_group``), ``-1`` for ids
    whose string the other vocabulary lacks (dropped). Returns shape (..., S), x's type.

    >>> import numpy as np
    >>> string_mass(np.array([0.5, 0.2, 0.3]), np.array([0, -1, 0]), 1)
    array([0.8])
    """
    keep = np.flatnonzero(group >= 0)
    if is_torch(x):
        idx = torch.as_tensor(keep, device=x.device)
        out = torch.zeros(*x.shape[:-1], S, dtype=x.dtype, device=x.device)
        return out.index_add(-1, torch.as_tensor(group[keep], device=x.device), x.index_select(-1, idx))
    # NumPy: through torch's index_add (np.add.at is ~100x slower on (128, 151936) batches)
    return string_mass(torch.from_numpy(np.ascontiguousarray(x)), group, S).numpy()


def restrict_to_shared_vocab(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str] | None = None,
    student_tokens: Sequence[str] | None = None,
    *,
    match: StringMatch | None = None,
    on_empty: str = "raise",
    validate: bool = True,
) -> SharedVocab:
    """Restrict both sides to the token strings present in both vocabularies, renormalized.

    Tokens whose strings appear in both lists are matched by string (several tokens with the same
    string on one side pool their mass); every other token is dropped and its mass reported.
    KL on the result is defined; it describes only the covered mass.

    .. math:: \\tilde p_s = \\frac{\\sum_{i: t_i = s} p_i}{\\sum_{s'} \\sum_{i: t_i = s'} p_i}
              \\quad \\text{for strings } s \\in \\mathcal{T}_t \\cap \\mathcal{T}_s

    Parameters
    ----------
    p : array or tensor, shape (..., V_t)
    q : array or tensor, shape (..., V_s)
    teacher_tokens : sequence of str, length V_t
    student_tokens : sequence of str, length V_s
        Or, instead of both, ``match`` (:func:`match_strings`, built once for a vocabulary pair).
    on_empty : {"raise", "nan"}
        A row where a side puts no mass on the shared strings: raise, or give that row NaN in
        ``p`` and ``q`` (and 0 in its covered mass) so that the other rows stand.
    validate : bool
        Check ``p`` and ``q`` (default); turn off only for rows already checked.

    Raises
    ------
    ValueError
        On invalid inputs, token lists of the wrong length, no shared string, or (with
        ``on_empty="raise"``) a side whose shared mass is 0 at some position.

    Examples
    --------
    >>> sv = restrict_to_shared_vocab([0.5, 0.3, 0.2], [0.6, 0.4], ["dog", "cat", "moon"], ["cat", "dog"])
    >>> sv.strings, sv.p.round(3).tolist(), float(sv.teacher_mass)
    (['dog', 'cat'], [0.625, 0.375], 0.8)
    """
    if validate:
        p, q = check_pair(p, q)
    if on_empty not in ("raise", "nan"):
        raise ValueError(f"on_empty must be 'raise' or 'nan' (got {on_empty!r})")
    m = _resolve_match(match, teacher_tokens, student_tokens, p.shape[-1], q.shape[-1])
    if not m.S:
        raise ValueError("teacher_tokens and student_tokens share no string: KL on the shared vocabulary is undefined")
    pm, qm = string_mass(p, m.teacher_group, m.S), string_mass(q, m.student_group, m.S)
    mass_t, mass_s = pm.sum(-1), qm.sum(-1)
    empty = (mass_t <= 0) | (mass_s <= 0)
    if bool(empty.any()):
        if on_empty == "raise":
            flags = (empty.cpu().numpy() if is_torch(empty) else np.asarray(empty)).reshape(-1)
            r = int(np.flatnonzero(flags)[0])
            idx = tuple(int(i) for i in np.unravel_index(r, tuple(empty.shape))) if empty.ndim else ()
            no_t = mass_t.reshape(-1)[r] <= 0 if empty.ndim else mass_t <= 0
            side = "p (teacher)" if bool(no_t) else "q (student)"
            raise ValueError(
                f"{side} puts no mass on the shared strings at batch index {idx}: KL on the shared "
                f"vocabulary is undefined there (pass on_empty='nan' to mark such rows NaN)"
            )
    keep = lambda x: x.unsqueeze(-1) if is_torch(x) else x[..., None]  # noqa: E731
    lib = torch if is_torch(p) else np
    nan = lib.full_like(mass_t, float("nan"))
    # NaN (not 0 / 0 with its warning) where a side has no shared mass
    pt = pm / keep(lib.where(empty, nan, mass_t))
    qt = qm / keep(lib.where(empty, nan, mass_s))
    return SharedVocab(p=pt, q=qt, strings=list(m.strings), teacher_mass=mass_t, student_mass=mass_s)


@dataclass(frozen=True)
class MinEDKL:
    """KL after the MinED vocabulary mapping (see :func:`mined_kl`), and what the mapping covered.

    Attributes
    ----------
    value : float
        :math:`\\mathrm{KL}(\\tilde p \\| q)` in nats; NaN when no teacher mass could be mapped.
    exact_mass : float
        Teacher mass on tokens mapped to an identical spelling.
    approx_mass : float
        Teacher mass on top-k tokens mapped to the nearest, different, spelling.
    unmapped_mass : float
        The rest: tokens outside the top-k without an identical twin, and ids without text.
    mean_distance : float
        The byte edit distance of the mapped mass, weighted by mass (exact matches count 0).
    p_mapped : ndarray, shape (V_s,)
        :math:`\\tilde p`: the mapped teacher mass on the student's vocabulary, renormalized.
    """

    value: float
    exact_mass: float
    approx_mass: float
    unmapped_mass: float
    mean_distance: float
    p_mapped: np.ndarray


def mined_kl(p: Any, q: Any, teacher_tokens: Sequence[Any] | None = None, student_tokens: Sequence[Any] | None = None,
             k: int = 500, *, mapper: Any = None, validate: bool = True) -> MinEDKL:
    """KL of the student from the teacher carried onto the student's vocabulary by MinED (FuseLLM).

    Each teacher token :math:`t_i` maps to the student token with the nearest spelling,
    :math:`m(i) = \\arg\\min_j \\mathrm{lev}(t_i, s_j)` (byte edits, exact matches first, ties to
    the lowest student id: :mod:`uld_explorer.text.mined`): every token with an identical twin, and
    the teacher's top-``k`` others (the full search is 151,936 x 49,152 pairs). The mapped mass is
    summed per student token and renormalized:

    .. math:: \\tilde p_j = \\frac{\\sum_{i \\in M: m(i) = j} p_i}{\\sum_{i \\in M} p_i}, \\qquad
              \\mathrm{KL}(\\tilde p \\| q) = \\sum_j \\tilde p_j \\log \\frac{\\tilde p_j}{q_j}

    where :math:`M` is the mapped teacher ids; the masses mapped exactly, approximately and not at
    all are reported (``exact_mass + approx_mass + unmapped_mass = 1``).

    Parameters
    ----------
    p : array, shape (V_t,);  q : array, shape (V_s,)
        One teacher and one student distribution.
    teacher_tokens, student_tokens : sequences of bytes or str, lengths V_t, V_s
        The spellings (:func:`~uld_explorer.text.vocab_bytes`, or strings); not needed with ``mapper``.
    k : int
        Teacher tokens (most probable first) searched for a nearest spelling.
    mapper : :class:`~uld_explorer.text.mined.MinEDMapper`, optional
        The vocabulary pair's mapping, whose searches are cached (:func:`~uld_explorer.text.mined.mined_mapper`).
    validate : bool
        Check ``p`` and ``q`` (default).

    Returns
    -------
    MinEDKL

    Examples
    --------
    >>> r = mined_kl([0.5, 0.3, 0.2], [0.6, 0.3, 0.1], ["cat", "cart", "x"], ["cat", "car", "xy"], k=3)
    >>> r.p_mapped.round(3).tolist()  # 'cart' -> 'cat' (1 edit, as 'car': the lower id), 'x' -> 'xy'
    [0.8, 0.0, 0.2]
    >>> round(r.exact_mass, 3), round(r.approx_mass, 3), round(r.mean_distance, 2), round(r.value, 4)
    (0.5, 0.5, 0.5, 0.3688)
    """
    from .distributions import top_k_index
    from .text.mined import MinEDMapper

    if validate:
        p, q = check_pair(p, q)
    p, q = as_float64(p), as_float64(q)
    if p.ndim != 1 or q.ndim != 1:
        raise ValueError(f"p and q must be single distributions of shape (V,) (got {tuple(p.shape)}, {tuple(q.shape)})")
    if mapper is None:
        if teacher_tokens is None or student_tokens is None:
            raise ValueError("mined_kl needs teacher_tokens and student_tokens, or a mapper built from them")
        mapper = MinEDMapper(teacher_tokens, student_tokens)
    if (mapper.V_t, mapper.V_s) != (p.size, q.size):
        raise ValueError(f"the mapping is of vocabularies of {mapper.V_t} and {mapper.V_s} tokens, the distributions "
                         f"have {p.size} and {q.size}: build it from the same vocabularies")
    top = top_k_index(p, min(int(k), p.size))
    m = mapper.map(top)
    target = mapper.exact_target.copy()
    target[top] = m.student_index
    mapped = target >= 0
    p_mapped = np.bincount(target[mapped], weights=p[mapped], minlength=q.size)
    mass = float(p_mapped.sum())
    exact = float(p[mapper.exact_target >= 0].sum())
    approx = float(p[top][m.distance > 0].sum())
    if mass <= 0:
        return MinEDKL(math.nan, exact, approx, 1.0 - exact - approx, math.nan, p_mapped)
    p_mapped /= mass
    value = float(kl_divergence(p_mapped, q, validate=False))
    mean_d = float((p[top] * np.maximum(m.distance, 0)).sum()) / mass
    return MinEDKL(value, exact, approx, max(0.0, 1.0 - exact - approx), mean_d, p_mapped)


@dataclass(frozen=True)
class HybridULD:
    """The hybrid divergence and its two parts (see :func:`hybrid_uld`).

    Attributes
    ----------
    value : array or tensor, shape (...)
        ``matched_weight * matched + unmatched_weight * unmatched``.
    matched : array or tensor, shape (...)
        The matched part's divergence (JSD or KL on the shared strings' masses).
    unmatched : array or tensor, shape (...)
        Sorted L1 of the unmatched entries (ULD of the sub-probability remainders).
    matched_weight, unmatched_weight : float
    teacher_matched_mass, student_matched_mass : array or tensor, shape (...)
        Mass each side puts on the shared strings.
    """

    value: Array
    matched: Array
    unmatched: Array
    matched_weight: float
    unmatched_weight: float
    teacher_matched_mass: Array
    student_matched_mass: Array


def _generalized_jsd_terms(a: Array, b: Array, beta: float) -> Array:
    """Per-entry ``beta a log(a/m) + (1 - beta) b log(b/m)``, ``m = beta a + (1 - beta) b`` (>= 0
    entrywise by convexity of x log x, also for sub-probability vectors)."""
    m = beta * a + (1.0 - beta) * b
    xlogy = torch.special.xlogy if is_torch(a) else _np_xlogy
    return beta * (xlogy(a, a) - xlogy(a, m)) + (1.0 - beta) * (xlogy(b, b) - xlogy(b, m))


def hybrid_uld(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str] | None = None,
    student_tokens: Sequence[str] | None = None,
    *,
    match: StringMatch | None = None,
    config: Any = None,
    subprobability: bool = False,
    validate: bool = True,
) -> HybridULD:
    """TRL GOLD's hybrid ULD: token by token where the strings match, sorted L1 for the rest.

    Let :math:`\\mathcal S` be the strings both vocabularies contain (:func:`match_strings`),
    :math:`P_s = \\sum_{i:\\,t_i = s} p_i` and :math:`Q_s = \\sum_{j:\\,s_j = s} q_j` the masses on
    them (NOT renormalized, as in GOLD), and :math:`p^u, q^u` the entries of the unmatched ids.

    .. math::

        H(p, q) = w_m\\, D(P, Q) + w_u \\sum_i \\big| p^u_{(i)} - q^u_{(i)} \\big|

        D_{\\mathrm{jsd}}(P, Q) = \\sum_{s \\in \\mathcal S} \\beta P_s \\log\\frac{P_s}{M_s}
            + (1 - \\beta) Q_s \\log\\frac{Q_s}{M_s}, \\quad M_s = \\beta P_s + (1 - \\beta) Q_s

    with GOLD's convention :math:`D = \\mathrm{KL}(P\\|Q)` at :math:`\\beta = 0` and
    :math:`\\mathrm{KL}(Q\\|P)` at :math:`\\beta = 1`; :math:`D_{\\mathrm{kl}} = \\sum_s P_s \\log (P_s / Q_s)`.
    The unmatched part is ULD of the remainders, sorted descending and zero-padded to the longer
    one. Weights (``config.weighting``): ``"matched-share"`` :math:`w_m = n_m / V_t` (the share of
    teacher ids whose string is shared), :math:`w_u = 1 - w_m`; ``"fixed"``: as given.

    Differences from GOLD's code, all deliberate: strings are NORMALIZED
    (:func:`~uld_explorer.vocab_strings`: ``'Ġa'`` and ``'▁a'`` match) where GOLD compares raw
    vocabulary keys, so several ids may share a string and pool their mass; logs are exact
    (``xlogy``) where GOLD clamps probabilities at 1e-8 (so ``"kl"`` is ``inf`` where
    :math:`Q_s = 0 < P_s`); an empty unmatched side is zero-padded like any shorter side, where
    GOLD skips the unmatched term. With the JSD both parts are >= 0; ``"kl"`` on masses that do
    not sum to 1 can be negative (as GOLD's :math:`\\beta = 0` path).

    Parameters
    ----------
    p : array or tensor, shape (..., V_t)
    q : array or tensor, shape (..., V_s)
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s
        Or ``match`` instead of both.
    match : StringMatch, optional
    config : HybridConfig, optional
        :class:`~uld_explorer.hybrid.HybridConfig` (default: JSD with beta 0.5, matched-share
        weights, GOLD's defaults).
    subprobability : bool
        Accept rows of total mass at most 1 (chain-rule merged groups, as GOLD applies it).
    validate : bool
        Check ``p`` and ``q`` (default); turn off only for rows already checked.

    Returns
    -------
    HybridULD
        Differentiable in torch (w.r.t. the student, and the teacher if it requires grad).

    Examples
    --------
    >>> r = hybrid_uld([0.5, 0.3, 0.2], [0.5, 0.3, 0.2], ["a", "b", "x"], ["a", "b", "y"])
    >>> float(r.value), float(r.matched), float(r.unmatched), round(r.matched_weight, 4)
    (0.0, 0.0, 0.0, 0.6667)
    """
    from .hybrid import HybridConfig

    config = HybridConfig() if config is None else config
    if not isinstance(config, HybridConfig):
        raise TypeError(f"config must be a uld_explorer.hybrid.HybridConfig (got {type(config).__name__})")
    if validate:
        p, q = check_pair(p, q, subprobability=subprobability)
    V_t, V_s = p.shape[-1], q.shape[-1]
    m = _resolve_match(match, teacher_tokens, student_tokens, V_t, V_s)
    w_m, w_u = config.weights(m.teacher_matched.size, V_t)
    P, Q = string_mass(p, m.teacher_group, m.S), string_mass(q, m.student_group, m.S)  # (..., S)
    Pd, Qd = P, Q
    if config.clamp is not None:  # GOLD's clamp_min inside its logs, to reproduce its numbers
        Pd = P.clamp_min(config.clamp) if is_torch(P) else np.maximum(P, config.clamp)
        Qd = Q.clamp_min(config.clamp) if is_torch(Q) else np.maximum(Q, config.clamp)
    if config.divergence == "kl" or config.beta == 0.0:
        matched = _kl_terms(Pd, Qd).sum(-1)
    elif config.beta == 1.0:
        matched = _kl_terms(Qd, Pd).sum(-1)
    else:
        matched = _generalized_jsd_terms(Pd, Qd, float(config.beta)).sum(-1)
    t_un, s_un = np.flatnonzero(m.teacher_group < 0), np.flatnonzero(m.student_group < 0)
    if is_torch(p):
        pu = p.index_select(-1, torch.as_tensor(t_un, device=p.device))
        qu = q.index_select(-1, torch.as_tensor(s_un, device=q.device))
    else:
        pu, qu = np.take(p, t_un, axis=-1), np.take(q, s_un, axis=-1)
    if t_un.size and s_un.size:
        unmatched = uld_distance(pu, qu, validate=False)
    else:  # one side has no unmatched id: the other side's remainder meets only zero padding
        unmatched = pu.sum(-1) + qu.sum(-1)
    if is_torch(p):
        unmatched = unmatched.to(matched.dtype)
    return HybridULD(
        value=w_m * matched + w_u * unmatched, matched=matched, unmatched=unmatched,
        matched_weight=w_m, unmatched_weight=w_u,
        teacher_matched_mass=P.sum(-1), student_matched_mass=Q.sum(-1),
    )


# --------------------------------------------------------------------------------------------
# The hybrid from a teacher cache (sorted top-k + tail), exactly: an estimate and its bound
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HybridTopK:
    """The hybrid divergence against a teacher known only by its top-k and tail (:func:`hybrid_top_k`).

    Attributes
    ----------
    value : tensor or array, shape (...)
        The estimate :math:`\\hat H = w_m \\hat D + w_u \\hat U` (differentiable w.r.t. the student).
    bound : tensor or array, shape (...)
        :math:`|H - \\hat H| \\le` ``bound`` :math:`= w_m B_m + w_u B_u` for EVERY full teacher row
        agreeing with the cache (H: :func:`hybrid_uld` on that row).
    matched, matched_bound : tensor or array, shape (...)
        :math:`\\hat D` and :math:`B_m`: the matched part lies in :math:`\\hat D \\pm B_m`.
    unmatched, unmatched_bound : tensor or array, shape (...)
        :math:`\\hat U` and :math:`B_u`: the unmatched part lies in :math:`\\hat U \\pm B_u`.
    matched_weight, unmatched_weight : float
    """

    value: Array
    bound: Array
    matched: Array
    matched_bound: Array
    unmatched: Array
    unmatched_bound: Array
    matched_weight: float
    unmatched_weight: float


def _matched_terms(P: torch.Tensor, Q: torch.Tensor, beta: float) -> torch.Tensor:
    """f(P_s, Q_s) of the matched part, entrywise: the generalized JSD's terms, KL's at beta = 0."""
    if beta == 0.0:
        return torch.special.xlogy(P, P) - torch.special.xlogy(P, Q)
    return _generalized_jsd_terms(P, Q, beta)


class _StudentSide(torch.autograd.Function):
    """What :func:`hybrid_top_k` reads of the student row, with ONE (R, V_s) gradient buffer: the
    entries at ``cols`` times the 0/1 ``take``, the mass on the shared ids, and the unmatched
    columns (autograd of three gathers would allocate three such buffers and add them)."""

    @staticmethod
    def forward(ctx, q, cols, take, s_un, shared):  # q (R, V_s); cols, take (R, n); s_un (V_s_u,); shared (V_s,)
        picked = q.gather(1, cols) * take  # (R, n)
        qu = q.index_select(1, s_un)  # (R, V_s_u)
        Q_m = q.sum(-1) - qu.sum(-1)  # (R,)
        ctx.save_for_backward(cols, take, s_un, shared)
        return picked, Q_m, qu

    @staticmethod
    def backward(ctx, g_picked, g_m, g_u):
        cols, take, s_un, shared = ctx.saved_tensors
        g = g_m.unsqueeze(1) * shared.to(g_m.dtype)  # (R, V_s): d Q_m / d q_j = 1 on the shared ids
        g.index_copy_(1, s_un, g_u)  # the unmatched ids (0 above)
        g.scatter_add_(1, cols, g_picked * take)
        return g, None, None, None, None


def _student_ids_by_string(group: np.ndarray, S: int) -> np.ndarray:
    """``(S, pool)`` int64: the ids spelling each of the ``S`` strings (``group[id] = s``), -1 padded."""
    ids = np.flatnonzero(group >= 0)
    ids = ids[np.argsort(group[ids], kind="stable")]
    g = group[ids]
    count = np.bincount(g, minlength=S)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    table = np.full((S, max(int(count.max()) if count.size else 0, 1)), -1, dtype=np.int64)
    table[g, np.arange(ids.size) - start[g]] = ids
    return table


def hybrid_top_k(p_top: Any, p_ids: Any, p_tail: Any, q: Any, *, match: StringMatch, config: Any = None) -> HybridTopK:
    """TRL GOLD's hybrid (:func:`hybrid_uld`) when only the teacher's top-k and its tail mass are kept.

    A teacher cache keeps per position the k largest teacher probabilities :math:`p_i`, their ids
    :math:`i \\in K`, and the tail mass :math:`r = \\sum_{i \\notin K} p_i`; how r spreads over the
    other :math:`V_t - k` ids is unknown, except that each of them is at most
    :math:`c = \\min_{i \\in K} p_i`. The student row q is known in full. Every quantity below is
    computed from that, and the exact hybrid H of EVERY full row agreeing with the cache lies in
    ``value +- bound``.

    **Split of the tail.** An unknown part :math:`a` of r lands on matched strings (:math:`T_s \\ge 0`
    on string s, :math:`\\sum_s T_s = a`), the rest :math:`r_u = r - a` on unmatched teacher ids.
    With :math:`n_m, n_u` the matched and unmatched teacher ids outside K,
    :math:`a \\le a^+ = \\min(r, c\\,n_m)` and :math:`r_u \\le r_u^+ = \\min(r, c\\,n_u)`, hence
    :math:`a \\ge a^- = \\max(0, r - r_u^+)` and :math:`r_u \\ge r_u^- = \\max(0, r - a^+)`.

    **Matched part.** :math:`D = \\sum_s f(P^K_s + T_s, Q_s)` with :math:`P^K_s` the top-k mass on
    string s, :math:`Q_s` the student's, and f the generalized JSD's term (KL's at
    :math:`\\beta = 0`). Known: :math:`D_K = \\sum_s f(P^K_s, Q_s)` (for the strings the top-k miss,
    :math:`f(0, Q_s) = (1-\\beta) \\log\\frac{1}{1-\\beta}\\, Q_s`, so only the k ids' strings and
    :math:`Q_m = \\sum_s Q_s` are needed). f is convex in P, so

    - increase: :math:`f(P + T, Q) - f(P, Q) \\le T \\sup \\partial_P f`, with
      :math:`\\partial_P f = \\beta \\log(P / M) \\le \\beta \\log(1/\\beta)`; at :math:`\\beta = 0`,
      :math:`\\partial_P f = \\log(P / Q) + 1 \\le \\log((P^K_s + a^+)/Q_s) + 1`, and for a string
      the top-k miss :math:`Q_s \\ge q_{\\min}`, the student's smallest entry on a shared string. Hence
      :math:`D - D_K \\le U = a^+ \\beta \\log(1/\\beta)` (resp.
      :math:`a^+ \\max(0, 1 + \\log \\max(\\max_{s \\in K} \\frac{P^K_s + a^+}{Q_s}, \\frac{a^+}{q_{\\min}}))`,
      s in K: the strings the top-k hit).
    - decrease: :math:`\\partial_P f` grows with P, so the decrease from :math:`P^K_s` is at most the
      one from 0: :math:`f(P^K_s, Q_s) - f(P^K_s + T_s, Q_s) \\le \\varphi(T_s, Q_s)` with
      :math:`\\varphi(T, Q) = f(0, Q) - f(T, Q)`, jointly concave and 1-homogeneous (f(0, Q) is
      linear), hence superadditive, and non-decreasing in Q:
      :math:`\\sum_s \\varphi(T_s, Q_s) \\le \\varphi(a, Q_m) \\le L = \\max_{a \\in [a^-, a^+]} \\varphi(a, Q_m)`,
      attained at :math:`a = Q_m` (:math:`Q_m / e` at :math:`\\beta = 0`) clipped to the interval.
      D >= 0 for the JSD, so also :math:`L \\le D_K`.

    :math:`D \\in [D_K - L, D_K + U]`: :math:`\\hat D = D_K + (U - L)/2`, :math:`B_m = (U + L)/2`.

    **Unmatched part** (:func:`uld_top_k`'s reasoning). The known unmatched values
    :math:`a_1 \\ge \\dots \\ge a_{k_u}` (top-k ids without a shared string) rank above every unknown
    tail entry (:math:`\\le c`). With :math:`b` the student's unmatched entries sorted descending,
    :math:`H' = \\sum_{i \\le k_u} |a_i - b_i|` and :math:`Q' = \\sum_{i > k_u} b_i`, the sorted L1
    is :math:`H'` plus a tail term in :math:`[|Q' - r_u|, Q' + r_u]`, so
    :math:`U_{nm} \\in [H' + \\min_{r_u \\in [r_u^-, r_u^+]} |Q' - r_u|,\\ H' + Q' + r_u^+]`; :math:`\\hat U` is the
    midpoint and :math:`B_u` the half-width (:math:`\\le \\min(r, (Q' + r)/2)`). ``uld_distance``
    of the zero-padded known values against b gives :math:`H' + Q'`.

    The weights are :func:`hybrid_uld`'s; the bound is :math:`w_m B_m + w_u B_u`, 0 when the cache
    is complete (k = V_t or r = 0): the value is then :func:`hybrid_uld`'s. Rows of total mass
    below 1 (chain-rule merged groups) satisfy the same bounds. The value is differentiable
    w.r.t. q (the bound terms included; the maximiser a is held fixed, as the envelope theorem
    allows); the bound is detached. At :math:`\\beta = 0` the bound grows with
    :math:`\\log(a^+ / q_{\\min})`: valid, but infinite where a student entry on a shared string is
    0 (a float32 softmax underflows at logit gaps above ~104), so the runner refuses
    ``hybrid_beta = 0`` for training.

    Parameters
    ----------
    p_top : tensor or array, shape (..., k)
        The teacher's k largest probabilities (any order).
    p_ids : tensor or array of int, shape (..., k)
        Their teacher ids (distinct per row).
    p_tail : tensor or array, shape (...)
        The teacher's remaining mass r (>= 0).
    q : tensor or array, shape (..., V_s)
        Student distribution(s); differentiable in torch.
    match : StringMatch
        :func:`match_strings` of the two vocabularies (``teacher_group`` has V_t entries).
    config : HybridConfig, optional
        As in :func:`hybrid_uld` (default: JSD with beta 0.5, matched-share weights).

    Returns
    -------
    HybridTopK
        Torch tensors for torch input (q's dtype promoted with p_top's), NumPy float64 otherwise.

    Raises
    ------
    ValueError
        Shapes that do not fit ``match``; ``beta = 1`` (KL(Q || P) is unbounded where the
        teacher's mass on a string may be 0, which the cache cannot exclude); GOLD's ``clamp``
        (only the exact divergence has these bounds).

    Examples
    --------
    >>> m = match_strings(["a", "b", "x", "c", "y"], ["a", "b", "c", "z"])
    >>> p = np.array([0.6, 0.3, 0.05, 0.03, 0.02]); q = np.array([0.5, 0.3, 0.15, 0.05])
    >>> exact = float(hybrid_uld(p, q, match=m).value)
    >>> est = hybrid_top_k(p[:2], np.array([0, 1]), 0.1, q, match=m)  # k = 2: where 0.1 went is unknown
    >>> round(exact, 4), round(float(est.value), 4), round(float(est.bound), 4)  # exact in value +- bound
    (0.0225, 0.0567, 0.0567)
    >>> full = hybrid_top_k(p, np.arange(5), 0.0, q, match=m)  # the whole row: exact, bound 0
    >>> bool(np.isclose(full.value, exact)), float(full.bound)
    (True, 0.0)
    """
    from .hybrid import HybridConfig

    config = HybridConfig() if config is None else config
    if not isinstance(config, HybridConfig):
        raise TypeError(f"config must be a uld_explorer.hybrid.HybridConfig (got {type(config).__name__})")
    if config.clamp is not None:
        raise ValueError("hybrid_top_k bounds the exact divergence: GOLD's clamp is not supported (clamp=None)")
    beta = 0.0 if config.divergence == "kl" else float(config.beta)
    if beta == 1.0:
        raise ValueError(
            "hybrid beta = 1 makes the matched part KL(Q || P), which a teacher known by its top-k cannot bound: "
            "the teacher's mass on a string outside its top-k may be ~0, making the term arbitrarily large. "
            "Use beta < 1 (GOLD's default 0.5)")
    if not is_torch(q):
        r = hybrid_top_k(torch.as_tensor(as_float64(p_top)), torch.as_tensor(np.asarray(p_ids, dtype=np.int64)),
                         torch.as_tensor(as_float64(p_tail)), torch.as_tensor(as_float64(q)), match=match,
                         config=config)
        return HybridTopK(*(x.numpy() for x in (r.value, r.bound, r.matched, r.matched_bound, r.unmatched,
                                                r.unmatched_bound)), r.matched_weight, r.unmatched_weight)
    dev = q.device
    batch, k, V_s = tuple(q.shape[:-1]), p_top.shape[-1], q.shape[-1]
    V_t = match.teacher_group.size
    if match.student_group.size != V_s:
        raise ValueError(f"match was built for a student vocabulary of {match.student_group.size} tokens, q has {V_s}")
    if tuple(p_top.shape) != batch + (k,) or tuple(p_ids.shape) != tuple(p_top.shape):
        raise ValueError(f"p_top and p_ids must have shape {batch + (k,)} (q's batch shape, k); got "
                         f"{tuple(p_top.shape)} and {tuple(p_ids.shape)}")
    dt = torch.promote_types(q.dtype, p_top.dtype)
    R = int(np.prod(batch)) if batch else 1
    q = q.reshape(R, V_s).to(dt)
    vals = torch.as_tensor(p_top, device=dev).reshape(R, k).to(dt)
    ids = torch.as_tensor(p_ids, device=dev).reshape(R, k).long()
    r = torch.as_tensor(p_tail, device=dev).to(dt).reshape(R).clamp_min(0)
    n_t_matched = int(match.teacher_matched.size)
    w_m, w_u = config.weights(n_t_matched, V_t)
    zero = torch.zeros(R, dtype=dt, device=dev)

    # the top-k ids' strings, sorted per row (-1, unmatched, first): each shared string once, its pooled mass
    tg, order = torch.sort(torch.as_tensor(match.teacher_group, device=dev)[ids], dim=1)  # (R, k)
    v = vals.gather(1, order)
    new = torch.ones_like(tg, dtype=torch.bool)
    new[:, 1:] = tg[:, 1:] != tg[:, :-1]
    seg = new.cumsum(1) - 1  # (R, k) the segment (string) of each position
    P_at = torch.zeros_like(v).scatter_add_(1, seg, v).gather(1, seg)  # P^K_s at each position
    shared = tg >= 0
    first = new & shared  # one position per shared string the top-k hit

    # how much of the tail can go where: every tail entry is <= c, the smallest top-k value
    c = vals.detach().min(-1).values.clamp_min(0) if k else zero
    n_m = (n_t_matched - shared.sum(-1)).to(dt)  # matched teacher ids outside the top-k
    n_u = ((V_t - n_t_matched) - (~shared).sum(-1)).to(dt)
    a_hi = torch.minimum(r, c * n_m)  # the tail's mass on matched strings: a in [a_lo, a_hi]
    ru_hi = torch.minimum(r, c * n_u)  # on unmatched ids: r_u in [ru_lo, ru_hi]
    a_lo = (r - ru_hi).clamp_min(0).minimum(a_hi)
    ru_lo = (r - a_hi).clamp_min(0).minimum(ru_hi)

    # the student: its mass on the hit strings (pooled over its ids), on all shared strings, unmatched
    table = _student_ids_by_string(match.student_group, match.S)  # (S, pool) student ids, -1 padding
    cols = torch.as_tensor(table, device=dev)[tg.clamp_min(0)]  # (R, k, pool)
    take = (cols >= 0) & first.unsqueeze(-1)
    s_un = torch.as_tensor(np.flatnonzero(match.student_group < 0), device=dev)
    # Q_at (R, k): the hit strings' student mass; Q_m (R,): on all shared strings; qu (R, V_s_u)
    picked, Q_m, qu = _StudentSide.apply(q, cols.clamp_min(0).reshape(R, -1), take.reshape(R, -1).to(dt), s_un,
                                         torch.as_tensor(match.student_group >= 0, device=dev))
    Q_at = picked.reshape(cols.shape).sum(-1)

    # matched part: D_K on the hit strings, the others linear in Q_s; then its interval [D_K - L, D_K + U]
    terms = _matched_terms(torch.where(first, P_at, 1.0), torch.where(first, Q_at, 1.0), beta)
    lin = (1.0 - beta) * math.log(1.0 / (1.0 - beta)) if beta > 0 else 0.0  # f(0, Q) = lin * Q
    D_K = torch.where(first, terms - lin * Q_at, 0.0).sum(-1) + lin * Q_m
    if beta > 0:
        U = a_hi * beta * math.log(1.0 / beta)
        a_star = Q_m.detach()
    else:  # d f / d P = log(P / Q) + 1 at most at P^K_s + a_hi: the hit strings, else a_hi / (smallest q_j shared)
        q_min = torch.where(torch.as_tensor(match.student_group >= 0, device=dev), q, math.inf).amin(-1)
        hit = torch.where(first, torch.log(P_at + a_hi.unsqueeze(1)) - torch.log(torch.where(first, Q_at, 1.0)),
                          -math.inf).amax(-1)
        worst = torch.maximum(hit, torch.log(a_hi) - torch.log(q_min)) + 1.0
        U = torch.where(a_hi > 0, a_hi * worst.clamp_min(0), 0.0)
        a_star = Q_m.detach() / math.e
    a_star = torch.minimum(torch.maximum(a_star, a_lo), a_hi)
    L = torch.where(a_hi > 0, lin * Q_m - _matched_terms(a_star, Q_m, beta), 0.0)  # phi(a*, Q_m)
    if beta > 0:
        L = torch.minimum(L, D_K)  # the JSD is >= 0
    matched = D_K + (U - L) / 2
    matched_bound = ((U + L) / 2).detach().clamp_min(0)

    # unmatched part: sorted L1 of the known unmatched values (+ an unknown tail) against the student's
    known = torch.where(shared, 0.0, v)  # (R, k) the top-k values of unmatched ids, zeros elsewhere
    k_u = (~shared).sum(-1)
    if s_un.numel():
        HQ = uld_distance(known, qu, validate=False).to(dt)  # H' + Q'
        kk = min(int(k_u.max()) if k else 0, s_un.numel())
        head = zero
        if kk:
            cum = torch.topk(qu, kk, dim=-1).values.cumsum(-1)  # (R, kk)
            idx = (k_u.clamp_max(kk) - 1).clamp_min(0).unsqueeze(1)
            head = torch.where(k_u > 0, cum.gather(1, idx).squeeze(1), 0.0)
        Qp = (qu.sum(-1) - head).clamp_min(0)  # Q': the student's unmatched mass below rank k_u
    else:  # no unmatched student id: the teacher's unmatched entries meet zero padding
        HQ, Qp = known.sum(-1), zero
    lo = HQ - Qp + torch.maximum(torch.maximum(ru_lo - Qp, Qp - ru_hi), zero)
    hi = HQ + ru_hi
    unmatched = (lo + hi) / 2
    unmatched_bound = ((hi - lo) / 2).detach().clamp_min(0)
    shape = lambda x: x.reshape(batch)  # noqa: E731
    return HybridTopK(
        value=shape(w_m * matched + w_u * unmatched), bound=shape(w_m * matched_bound + w_u * unmatched_bound),
        matched=shape(matched), matched_bound=shape(matched_bound), unmatched=shape(unmatched),
        unmatched_bound=shape(unmatched_bound), matched_weight=w_m, unmatched_weight=w_u,
    )
