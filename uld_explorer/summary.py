"""One pair (p, q) -> every divergence side by side: the single source for the app, CLI, notebooks.

Each row of :meth:`DivergenceSummary.rows` carries its SCALE, so that numbers that look alike
are read alike: ULD lies in ``[0, 2]``; ULD / 2 (= exact rank-space OT) and token-space OT with
the 0/1 string cost lie in ``[0, 1]`` and are shown next to each other. ULD / 2 is the
token-space OT one would get if token identities could be relabelled freely, so

.. math:: \\tfrac12 \\mathrm{ULD}(p, q) \\;\\le\\; \\mathrm{OT}\\big(p, q;\\ C_{ij} = [t_i \\ne s_j]\\big)

whenever every string appears at most once per vocabulary (the cost-0 pairs form a matching).
A top-k truncation breaks it (the rest buckets move to each other for free) and so do strings
shared by several ids of one side (their mass pools); the token-OT row's note says when.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .checks import check_int
from .costs import MAX_TOKEN_OT_TOP_K
from .distributions import as_float64, check_pair
from .divergences import (
    HybridULD,
    VocabularyMismatchError,
    hybrid_uld,
    js_divergence,
    kl_divergence,
    restrict_to_shared_vocab,
    reverse_kl_divergence,
    total_variation,
    uld_distance,
)
from .hybrid import HybridConfig
from .ot import MAX_SUPPORT, OTResult, TokenOTResult, rank_space_ot, token_space_ot_top_k, value_space_ot
from .synthetic import synthetic_tokens
from .text.vocab import match_strings

__all__ = ["DivergenceSummary", "divergence_summary"]


@dataclass(frozen=True)
class DivergenceSummary:
    """Every divergence of one teacher/student pair.

    ``kl``, ``reverse_kl``, ``js`` and ``tv`` are None when the vocabularies differ, with the
    reason in ``kl_undefined_reason``. ``kl_shared`` is KL on the strings both vocabularies have
    (:func:`~uld_explorer.restrict_to_shared_vocab`), with the mass each side puts there
    (``shared_coverage``) and their number (``shared_strings``); None when they share none or a side
    has no mass there. ``value_ot`` / ``rank_ot`` are None when the padded size exceeds
    :data:`~uld_explorer.ot.MAX_SUPPORT`. ``token_ot`` is the top-k token-space OT with the chosen
    cost; ``hybrid`` TRL GOLD's hybrid ULD on the same token strings.
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
    token_cost: str
    hybrid: HybridULD
    kl_shared: float | None = None
    shared_coverage: tuple[float, float] | None = None
    shared_strings: int = 0

    @property
    def token_ot_below_uld_half(self) -> bool:
        """Token-space OT (string cost) fell below ULD/2: only possible through the top-k rest
        buckets or strings repeated within a vocabulary (see the module docstring)."""
        return self.token_cost == "string" and self.token_ot.value < self.uld / 2 - 1e-9

    def rows(self) -> list[dict[str, Any]]:
        """The values as table rows ``{"divergence", "value", "scale", "note"}`` (None = undefined)."""
        na = "undefined: different vocabularies" if self.kl_undefined_reason else ""
        t, h = self.token_ot, self.hybrid
        truncated = (
            f"; top-{t.teacher_index.size} + rest, truncated mass {t.teacher_truncated_mass:.3g} / "
            f"{t.student_truncated_mass:.3g}"
            if t.teacher_truncated_mass or t.student_truncated_mass
            else ""
        )
        if self.token_cost == "string":
            token_note = "exact, sees token identity; >= ULD/2 (without truncation or repeated strings)"
            if self.token_ot_below_uld_half:
                token_note = (
                    f"exact, sees token identity; BELOW ULD/2 = {self.uld / 2:.4f} here: the rest buckets "
                    f"move to each other for free, or ids share a string"
                )
        else:
            token_note = "exact, sees token identity (edit-distance cost: no bound by ULD/2)"
        cov = self.shared_coverage
        shared_note = (f"{self.shared_strings:,} shared strings, covering {cov[0]:.0%} of p and {cov[1]:.0%} of q"
                       if cov else "no shared string with mass on both sides")
        rows = [
            {"divergence": "KL(p||q) on shared strings", "value": self.kl_shared, "scale": "[0, inf) nats",
             "note": shared_note},
            {"divergence": "KL(p||q)", "value": self.kl, "scale": "[0, inf) nats", "note": na or "forward KL"},
            {"divergence": "KL(q||p)", "value": self.reverse_kl, "scale": "[0, inf) nats", "note": na or "reverse KL"},
            {"divergence": "JS(p, q)", "value": self.js, "scale": "[0, log 2] nats", "note": na or "Jensen-Shannon"},
            {"divergence": "TV(p, q)", "value": self.tv, "scale": "[0, 1]", "note": na or "total variation, same tokens"},
            {"divergence": "ULD (closed form)", "value": self.uld, "scale": "[0, 2]",
             "note": "sorted L1, identity blind"},
            {
                "divergence": "n * W1 value-space OT (POT)",
                "value": None if self.value_ot is None else self.value_ot.value,
                "scale": "[0, 2]",
                "note": "exact, equals ULD" if self.value_ot else f"n > {MAX_SUPPORT}: use the closed form",
            },
            {
                "divergence": "ULD / 2 = rank-space OT (POT)",
                "value": self.uld / 2 if self.rank_ot is None else self.rank_ot.value,
                "scale": "[0, 1]",
                "note": "exact OT if token identities could be relabelled freely: a lower bound of the 0/1 token OT"
                + ("" if self.rank_ot else f" (n > {MAX_SUPPORT}: ULD / 2 from the closed form)"),
            },
            {
                "divergence": f"token-space OT, {self.token_cost} cost (POT)",
                "value": t.value,
                "scale": "[0, 1]",
                "note": token_note + truncated,
            },
            {
                "divergence": "hybrid ULD (GOLD)",
                "value": float(h.value),
                "scale": "nats + L1",
                "note": f"{h.matched_weight:.3g} x matched-string divergence {float(h.matched):.4f} + "
                        f"{h.unmatched_weight:.3g} x unmatched sorted L1 {float(h.unmatched):.4f}",
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
    hybrid: HybridConfig | None = None,
) -> DivergenceSummary:
    """KL / JS / TV (if one vocabulary), ULD, value- and rank-space OT, token-space OT, hybrid.

    Parameters
    ----------
    p : array, shape (V_t,)
        Teacher distribution.
    q : array, shape (V_s,)
        Student distribution.
    teacher_tokens, student_tokens : sequences of str, optional
        Token strings for the token-space cost and the hybrid; default
        :func:`~uld_explorer.synthetic_tokens` (token i is the same string on both sides).
    top_k : int
        Tokens per side kept for token-space OT (rest pooled, see
        :func:`~uld_explorer.ot.token_space_ot_top_k`).
    cost : "string" | "edit"
    hybrid : HybridConfig, optional
        Settings of the hybrid row (default: GOLD's).

    Examples
    --------
    >>> s = divergence_summary([0.7, 0.2, 0.1], [0.1, 0.7, 0.2])
    >>> round(s.uld, 9), round(s.value_ot.value, 9), round(s.token_ot.value, 9), round(s.tv, 9)
    (0.0, 0.0, 0.6, 0.6)
    """
    p, q = check_pair(p, q)
    if p.ndim != 1:
        raise ValueError(f"p and q must be single distributions of shape (V,) here (got {tuple(p.shape)})")
    check_int(top_k, "top_k", 1, MAX_TOKEN_OT_TOP_K, "a positive integer")
    p, q = as_float64(p), as_float64(q)
    V_t, V_s = p.shape[0], q.shape[0]
    teacher_tokens = synthetic_tokens(V_t) if teacher_tokens is None else teacher_tokens
    student_tokens = synthetic_tokens(V_s) if student_tokens is None else student_tokens
    try:
        kl = float(kl_divergence(p, q, validate=False))
        rkl = float(reverse_kl_divergence(p, q))
        js, tv = float(js_divergence(p, q)), float(total_variation(p, q))
        reason = None
    except VocabularyMismatchError as err:
        kl = rkl = js = tv = None
        reason = str(err)
    small = max(V_t, V_s) <= MAX_SUPPORT
    kl_shared, coverage, n_shared = None, None, 0
    match = match_strings(teacher_tokens, student_tokens)
    if match.S:
        sv = restrict_to_shared_vocab(p, q, match=match, on_empty="nan", validate=False)
        if np.isfinite(sv.p).all() and np.isfinite(sv.q).all():
            kl_shared = float(kl_divergence(sv.p, sv.q, validate=False))
            coverage = (float(sv.teacher_mass), float(sv.student_mass))
        n_shared = match.S
    return DivergenceSummary(
        V_t=V_t,
        V_s=V_s,
        uld=float(uld_distance(p, q, validate=False)),
        kl=kl,
        reverse_kl=rkl,
        js=js,
        tv=tv,
        kl_undefined_reason=reason,
        value_ot=value_space_ot(p, q) if small else None,
        rank_ot=rank_space_ot(p, q) if small else None,
        token_ot=token_space_ot_top_k(p, q, teacher_tokens, student_tokens, k=top_k, cost=cost, validate=False),
        token_cost=cost if isinstance(cost, str) else getattr(cost, "__name__", "custom"),
        hybrid=hybrid_uld(p, q, match=match, config=hybrid, validate=False),
        kl_shared=kl_shared,
        shared_coverage=coverage,
        shared_strings=n_shared,
    )

