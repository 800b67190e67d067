"""One pair (p, q) -> every divergence side by side: the single source for the app, CLI, notebooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .distributions import check_pair, is_torch
from .divergences import (
    VocabularyMismatchError,
    js_divergence,
    kl_divergence,
    reverse_kl_divergence,
    total_variation,
    uld_distance,
)
from .ot import MAX_SUPPORT, OTResult, TokenOTResult, rank_space_ot, token_space_ot_top_k, value_space_ot

__all__ = ["DivergenceSummary", "divergence_summary", "synthetic_tokens"]


def synthetic_tokens(V: int, prefix: str = "tok") -> list[str]:
    """Token strings ``tok0 .. tok{V-1}`` for synthetic vocabularies (token i of both sides is
    the same string, so the vocabularies share their first ``min(V_t, V_s)`` tokens)."""
    return [f"{prefix}{i}" for i in range(V)]


@dataclass(frozen=True)
class DivergenceSummary:
    """Every divergence of one teacher/student pair.

    ``kl``, ``reverse_kl``, ``js`` and ``tv`` are None when the vocabularies differ, with the
    reason in ``kl_undefined_reason``. ``value_ot`` / ``rank_ot`` are None when the padded size
    exceeds :data:`~uld_explorer.ot.MAX_SUPPORT`.
    """

    V_t: int
    V_s: int
    uld: float
    kl: float | None
    reverse_kl: float | None
    js: float | None
    tv: float | None
    kl_undefined_reason: str | None
    value_ot: OTResult | None
    rank_ot: OTResult | None
    token_ot: TokenOTResult

    def rows(self) -> list[dict[str, Any]]:
        """The values as table rows ``{"divergence", "value", "note"}`` (None = undefined)."""
        na = "undefined: different vocabularies" if self.kl_undefined_reason else ""
        t = self.token_ot
        rows = [
            {"divergence": "KL(p||q)", "value": self.kl, "note": na or "forward KL, nats"},
            {"divergence": "KL(q||p)", "value": self.reverse_kl, "note": na or "reverse KL, nats"},
            {"divergence": "JS(p, q)", "value": self.js, "note": na or "Jensen-Shannon, nats, <= log 2"},
            {"divergence": "TV(p, q)", "value": self.tv, "note": na or "total variation, same tokens"},
            {"divergence": "ULD (closed form)", "value": self.uld, "note": "sorted L1, identity blind, in [0, 2]"},
            {
                "divergence": "n * W1 value-space OT (POT)",
                "value": None if self.value_ot is None else self.value_ot.value,
                "note": "exact, equals ULD" if self.value_ot else f"n > {MAX_SUPPORT}: use the closed form",
            },
            {
                "divergence": "2 * rank-space OT (POT)",
                "value": None if self.rank_ot is None else 2 * self.rank_ot.value,
                "note": "exact, 0/1 cost on ranks, equals ULD" if self.rank_ot else f"n > {MAX_SUPPORT}",
            },
            {
                "divergence": "token-space OT, string cost (POT)",
                "value": t.value,
                "note": "exact, sees token identity"
                + (
                    f"; truncated mass {t.teacher_truncated_mass:.3g} / {t.student_truncated_mass:.3g}"
                    if t.teacher_truncated_mass or t.student_truncated_mass
                    else ""
                ),
            },
        ]
        return rows


def divergence_summary(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str] | None = None,
    student_tokens: Sequence[str] | None = None,
    *,
    top_k: int = 500,
    cost: str = "string",
) -> DivergenceSummary:
    """KL / JS / TV (if one vocabulary), ULD, value- and rank-space OT, token-space OT for one pair.

    Parameters
    ----------
    p : array, shape (V_t,)
        Teacher distribution.
    q : array, shape (V_s,)
        Student distribution.
    teacher_tokens, student_tokens : sequences of str, optional
        Token strings for the token-space cost; default :func:`synthetic_tokens`.
    top_k : int
        Tokens per side kept for token-space OT (rest pooled, see
        :func:`~uld_explorer.ot.token_space_ot_top_k`).
    cost : "string" | "edit"

    Examples
    --------
    >>> s = divergence_summary([0.7, 0.2, 0.1], [0.1, 0.7, 0.2])
    >>> round(s.uld, 9), round(s.value_ot.value, 9), round(s.token_ot.value, 9), round(s.tv, 9)
    (0.0, 0.0, 0.6, 0.6)
    """
    p, q = check_pair(p, q)
    if p.ndim != 1:
        raise ValueError(f"p and q must be single distributions of shape (V,) here (got {tuple(p.shape)})")
    p = p.detach().cpu().double().numpy() if is_torch(p) else np.asarray(p, dtype=np.float64)
    q = q.detach().cpu().double().numpy() if is_torch(q) else np.asarray(q, dtype=np.float64)
    V_t, V_s = p.shape[0], q.shape[0]
    teacher_tokens = synthetic_tokens(V_t) if teacher_tokens is None else teacher_tokens
    student_tokens = synthetic_tokens(V_s) if student_tokens is None else student_tokens
    try:
        kl, rkl = float(kl_divergence(p, q)), float(reverse_kl_divergence(p, q))
        js, tv = float(js_divergence(p, q)), float(total_variation(p, q))
        reason = None
    except VocabularyMismatchError as err:
        kl = rkl = js = tv = None
        reason = str(err)
    small = max(V_t, V_s) <= MAX_SUPPORT
    return DivergenceSummary(
        V_t=V_t,
        V_s=V_s,
        uld=float(uld_distance(p, q)),
        kl=kl,
        reverse_kl=rkl,
        js=js,
        tv=tv,
        kl_undefined_reason=reason,
        value_ot=value_space_ot(p, q) if small else None,
        rank_ot=rank_space_ot(p, q) if small else None,
        token_ot=token_space_ot_top_k(p, q, teacher_tokens, student_tokens, k=top_k, cost=cost),
    )
