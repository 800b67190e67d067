"""Probability vectors: validation, temperature softmax, sorted vectors, top-k + rest bucket.

Everything here accepts NumPy arrays and torch tensors alike and keeps the type it was given.
Convention, everywhere in the package: the teacher ``p`` comes first (shape ``(..., V_t)``),
the student ``q`` second (shape ``(..., V_s)``); the last axis is the vocabulary, leading axes
are batch axes (batch, time, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from .checks import check_int, check_temperature

Array = Union[np.ndarray, torch.Tensor]

#: Largest allowed ``|sum(x) - 1|`` along the vocabulary axis, by floating dtype. A careful
#: float32 softmax over a 262,144-token vocabulary drifts by ~1e-6 (torch.softmax's CPU kernel by
#: up to ~1e-4: use :func:`softmax`); half precision by ~1e-3.
SUM_TOLERANCE = {
    "float64": 1e-6,
    "float32": 1e-4,
    "float16": 1e-2,
    "bfloat16": 1e-2,
}

__all__ = [
    "Array",
    "SUM_TOLERANCE",
    "TopK",
    "as_float64",
    "check_distribution",
    "check_pair",
    "softmax",
    "sorted_probs",
    "sum_tolerance",
    "top_k_index",
    "top_k_with_rest",
]


def is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _dtype_name(x: Array) -> str:
    return str(x.dtype).replace("torch.", "")


def sum_tolerance(x: Array) -> float:
    """The documented tolerance on ``|sum - 1|`` for ``x``'s dtype (see :data:`SUM_TOLERANCE`)."""
    return SUM_TOLERANCE.get(_dtype_name(x), 1e-4)


def _as_array(x: Any, name: str) -> Array:
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array: its masked entries would be silently dropped from the sums; "
            f"pass np.ma.filled({name}, 0.0) (masked tokens get probability 0) or {name}.data"
        )
    if is_torch(x) or isinstance(x, np.ndarray):
        arr = x
    elif isinstance(x, (list, tuple)) or np.isscalar(x):
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:  # strings, ragged lists: name the argument
            raise TypeError(f"{name} must be a NumPy array, a torch tensor or a list of numbers ({err})") from None
    else:
        raise TypeError(
            f"{name} must be a NumPy array or a torch tensor of probabilities "
            f"(got {type(x).__name__})"
        )
    if is_torch(arr):
        if not arr.is_floating_point():
            arr = arr.to(torch.float64)
    elif arr.dtype.kind != "f":
        if arr.dtype.kind in "iub":
            arr = arr.astype(np.float64)
        else:
            raise TypeError(f"{name} must hold floating-point probabilities (got dtype {arr.dtype})")
    return arr


def as_float64(x: Any) -> np.ndarray:
    """``x`` as a float64 NumPy array (a torch tensor is detached and moved to the CPU first).

    The one conversion the library uses wherever exact arithmetic needs float64 NumPy (exact OT,
    top-k, plots). It does not validate: callers check the values first.

    >>> as_float64(torch.tensor([0.25, 0.75], dtype=torch.float32)).dtype
    dtype('float64')
    """
    if is_torch(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _first_bad_index(mask: Array) -> tuple[int, ...]:
    m = mask.detach().cpu().numpy() if is_torch(mask) else np.asarray(mask)
    return tuple(int(i) for i in np.argwhere(m)[0])


def check_distribution(x: Any, name: str = "p", *, subprobability: bool = False) -> Array:
    """Validate a (batch of) probability vector(s) along the last axis and return it.

    Checks, in order: array type, at least one axis, a non-empty last axis, no NaN or inf,
    no negative entry, and ``|sum - 1| <= sum_tolerance(x)`` along the last axis
    (1e-6 for float64, 1e-4 for float32, 1e-2 for half precision). Lists are converted to
    float64 NumPy arrays; integer arrays to float64.

    Parameters
    ----------
    x : array or tensor, shape (..., V)
    name : str
        The argument's name, used in error messages.
    subprobability : bool
        Accept total mass in ``[0, 1 + tolerance]`` instead of 1: e.g. a chain-rule merged
        distribution of a multi-token group, :math:`p_k(\\cdot) \\prod_j p_{k+j}(x_{k+j})`.

    Returns
    -------
    x : array or tensor, shape (..., V)

    Raises
    ------
    ValueError
        Naming the argument, what was expected and what was received.

    Examples
    --------
    >>> check_distribution([0.25, 0.75]).tolist()
    [0.25, 0.75]
    >>> check_distribution([0.5, 0.6], "q")
    Traceback (most recent call last):
    ...
    ValueError: q must sum to 1 along the last axis (got 1.1 at index ()); ...
    """
    x = _as_array(x, name)
    if x.ndim == 0:
        raise ValueError(
            f"{name} must have a vocabulary axis: expected shape (..., V), got a scalar"
        )
    if x.shape[-1] == 0:
        raise ValueError(
            f"{name} must not be empty: expected shape (..., V) with V >= 1, got {tuple(x.shape)}"
        )
    if x.numel() if is_torch(x) else x.size:
        lib = torch if is_torch(x) else np
        with torch.no_grad():  # a no-op for NumPy input
            sums = x.sum(-1)
            mins = x.amin(-1) if is_torch(x) else x.min(-1)
            bad = ~lib.isfinite(sums) | ~lib.isfinite(mins)
            if bad.any():
                raise ValueError(
                    f"{name} must be finite: expected probabilities in [0, 1], got NaN or inf "
                    f"at batch index {_first_bad_index(bad)}"
                )
            neg = mins < 0
            if neg.any():
                idx = _first_bad_index(neg)
                val = float(mins[idx]) if idx else float(mins)
                raise ValueError(
                    f"{name} must be non-negative: got {val:.3g} at batch index {idx}; "
                    f"pass probabilities (e.g. softmax of logits), not logits"
                )
            tol = sum_tolerance(x)
            off = (sums - 1 > tol) if subprobability else (lib.abs(sums - 1) > tol)
            if off.any():
                idx = _first_bad_index(off)
                val = float(sums[idx]) if idx else float(sums)
                if subprobability:
                    raise ValueError(
                        f"{name} must have total mass at most 1 along the last axis (got {val:.6g} at "
                        f"index {idx}); tolerance for {_dtype_name(x)} is {tol:g}"
                    )
                raise ValueError(
                    f"{name} must sum to 1 along the last axis (got {val:.6g} at index {idx}); "
                    f"tolerance for {_dtype_name(x)} is {tol:g}: normalize it, "
                    f"e.g. {name} / {name}.sum(-1, keepdims=True)"
                )
    return x


def check_pair(p: Any, q: Any, *, subprobability: bool = False) -> tuple[Array, Array]:
    """Validate a teacher ``p`` (..., V_t) and a student ``q`` (..., V_s) together.

    Both must be valid distributions (:func:`check_distribution`), of the same kind (both NumPy
    or both torch, on the same device) and with equal batch shapes ``p.shape[:-1] == q.shape[:-1]``.
    ``subprobability`` is passed on to :func:`check_distribution`. The vocabulary sizes may
    differ (the KL functions raise :class:`~uld_explorer.divergences.VocabularyMismatchError`
    themselves).
    """
    p = check_distribution(p, "p", subprobability=subprobability)
    q = check_distribution(q, "q", subprobability=subprobability)
    if is_torch(p) != is_torch(q):
        kinds = {True: "a torch tensor", False: "a NumPy array"}
        raise TypeError(
            f"p and q must both be NumPy arrays or both torch tensors "
            f"(got p {kinds[is_torch(p)]}, q {kinds[is_torch(q)]})"
        )
    if is_torch(p) and p.device != q.device:
        raise ValueError(f"p and q must be on the same device (got p on {p.device}, q on {q.device})")
    if tuple(p.shape[:-1]) != tuple(q.shape[:-1]):
        raise ValueError(
            f"p and q must have the same batch shape (all axes but the last): "
            f"got p {tuple(p.shape)} -> {tuple(p.shape[:-1])}, q {tuple(q.shape)} -> {tuple(q.shape[:-1])}"
        )
    return p, q


def softmax(logits: Any, temperature: float = 1.0, name: str = "logits", *, temperature_name: str = "temperature") -> Array:
    """Temperature softmax along the last axis: ``softmax(z / T)``, computed in a safe precision.

    .. math:: p_i = \\frac{\\exp(z_i / T)}{\\sum_j \\exp(z_j / T)}

    Half-precision logits (float16, bfloat16) are computed and returned in float32: ``z / T``
    overflows float16 already at ``|z| / T > 65504`` (a logit of 20 at T = 1e-4), which would
    give NaN. Every row must keep at least one finite logit; ``-inf`` masks a token.

    Parameters
    ----------
    logits : array or tensor, shape (..., V)
        Finite or ``-inf`` (NaN and ``+inf`` are refused; masked arrays too: fill them first).
    temperature : float > 0
        A Python, NumPy or 0-d torch number.
    name, temperature_name : str
        The arguments' names in error messages.

    Returns
    -------
    probs : same type and shape as ``logits`` (float32 for half-precision input); differentiable
        for torch.

    Raises
    ------
    ValueError
        Naming the argument: NaN or ``+inf``, a row with no finite logit, a bad temperature, a
        result that is not finite.

    Examples
    --------
    >>> softmax(np.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    >>> softmax(np.array([[0.0, 1.0], [-np.inf, -np.inf]]))
    Traceback (most recent call last):
    ...
    ValueError: logits has no finite entry in row (1,): every token is masked (-inf), so no distribution exists there
    """
    T = check_temperature(temperature, temperature_name)
    if isinstance(logits, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array: its masked entries would be silently dropped; pass "
            f"np.ma.filled({name}, -np.inf) to mask tokens, or {name}.data"
        )
    if not (is_torch(logits) or isinstance(logits, np.ndarray)):
        logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last (vocabulary) axis (got shape {tuple(logits.shape)})")
    if is_torch(logits):
        if not logits.is_floating_point() or logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
    elif logits.dtype.kind != "f" or logits.dtype == np.float16:
        logits = logits.astype(np.float32 if logits.dtype == np.float16 else np.float64)
    lib = torch if is_torch(logits) else np
    with torch.no_grad():  # a no-op for NumPy input
        bad = lib.isnan(logits) | lib.isposinf(logits)  # -inf is fine: it masks a token
        if bad.any():
            raise ValueError(
                f"{name} must not contain NaN or +inf (got {float(logits[_first_bad_index(bad)])} at index "
                f"{_first_bad_index(bad)}); -inf is allowed and masks a token"
            )
        dead = ~lib.isfinite(logits).any(-1)
        if dead.any():
            raise ValueError(
                f"{name} has no finite entry in row {_first_bad_index(dead)}: every token is masked (-inf), "
                f"so no distribution exists there"
            )
    if is_torch(logits):
        # written out: torch.softmax's float32 CPU kernel drifts by up to ~1e-4 in total mass over
        # 152k real logits; max-subtracted exp / sum keeps it ~1e-6 (and stays differentiable)
        z = logits / T
        e = torch.exp(z - z.amax(-1, keepdim=True).detach())
        out = e / e.sum(-1, keepdim=True)
    else:
        z = logits / T
        e = np.exp(z - z.max(-1, keepdims=True))
        out = e / e.sum(-1, keepdims=True)
    with torch.no_grad():
        if not bool(lib.isfinite(out).all()):  # pragma: no cover - guarded above; never return NaN
            raise ValueError(f"softmax({name} / {temperature_name}) is not finite: check the inputs' scale")
    return out


def sorted_probs(
    p: Any, q: Any, *, descending: bool = True, subprobability: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Both 1-D distributions sorted (descending by default) and zero-padded to ``n = max(V_t, V_s)``.

    The two vectors the ULD closed form compares rank by rank (float64 NumPy, shape (n,)).
    ``subprobability`` accepts total mass at most 1 (chain-rule merged groups).

    Examples
    --------
    >>> ps, qs = sorted_probs([0.2, 0.5, 0.3], [0.9, 0.1])
    >>> ps.tolist(), qs.tolist()
    ([0.5, 0.3, 0.2], [0.9, 0.1, 0.0])
    """
    p, q = check_pair(p, q, subprobability=subprobability)
    if p.ndim != 1:
        raise ValueError(f"p and q must be single distributions of shape (V,) here (got {tuple(p.shape)})")
    out = []
    n = max(p.shape[0], q.shape[0])
    for x in (p, q):
        x = np.sort(as_float64(x))
        x = x[::-1] if descending else x
        out.append(np.pad(x, (0, n - x.shape[0])) if descending else np.pad(x, (n - x.shape[0], 0)))
    return out[0], out[1]


def top_k_index(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of a 1-D array, largest first, ties by lower index.

    The same as ``np.argsort(-x, kind="stable")[:k]``, in O(V + k log k) (a partition, then a
    sort of the kept entries only): 151,936-token rows cost ~1 ms instead of ~10 ms.

    Examples
    --------
    >>> top_k_index(np.array([0.1, 0.3, 0.3, 0.2, 0.1]), 3).tolist()
    [1, 2, 3]
    """
    V = x.shape[0]
    if k >= V:
        return np.argsort(-x, kind="stable")
    threshold = np.partition(x, V - k)[V - k]  # the k-th largest value
    above = np.flatnonzero(x > threshold)
    ties = np.flatnonzero(x == threshold)[: k - above.size]  # lowest indices among the ties
    index = np.concatenate([above, ties])
    return index[np.argsort(-x[index], kind="stable")]


@dataclass(frozen=True)
class TopK:
    """The ``k`` most probable entries of a 1-D distribution plus one "rest" bucket.

    Attributes
    ----------
    index : ndarray of int, shape (k,)
        Vocabulary indices of the kept tokens, most probable first.
    probs : ndarray of float64, shape (k + 1,)
        Their probabilities, then the rest bucket's mass (the last entry); sums to 1.
    truncated_mass : float
        Mass of all tokens not kept (equals ``probs[-1]``).
    """

    index: np.ndarray
    probs: np.ndarray
    truncated_mass: float


def top_k_with_rest(p: Any, k: int, name: str = "p", *, validate: bool = True) -> TopK:
    """Keep the ``k`` most probable tokens of ``p`` (shape (V,)) and pool the rest in one bucket.

    Ties are broken by the lower index. If ``k >= V`` every token is kept and the rest bucket
    holds 0. ``validate=False`` skips :func:`check_distribution` for a row already checked.

    Examples
    --------
    >>> t = top_k_with_rest(np.array([0.1, 0.6, 0.3]), 2)
    >>> t.index.tolist(), t.probs.round(3).tolist(), round(t.truncated_mass, 3)
    ([1, 2], [0.6, 0.3, 0.1], 0.1)
    """
    if validate:
        p = check_distribution(p, name)
    if p.ndim != 1:
        raise ValueError(f"{name} must be one distribution of shape (V,) here (got shape {tuple(p.shape)})")
    k = check_int(k, "k", 1, None, "a positive integer (tokens kept)")
    p = as_float64(p)
    V = p.shape[0]
    k = min(int(k), V)
    index = top_k_index(p, k)
    kept = p[index]
    rest = max(0.0, 1.0 - float(kept.sum())) if k < V else 0.0
    return TopK(index=index, probs=np.append(kept, rest), truncated_mass=rest)
