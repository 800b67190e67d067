"""One pair (p, q) -> every measure side by side: the single source for the app, CLI, notebooks.

The measures are the registry's (:data:`~uld_explorer.measures.MEASURES`, those computed for
one pair): each row of :meth:`DivergenceSummary.rows` carries the measure's ``key``, ``label``
and SCALE, so that numbers that look alike are read alike: ULD lies in ``[0, 2]``; ULD / 2
(= exact rank-space OT) and token-space OT with the 0/1 string cost lie in ``[0, 1]`` and are
shown next to each other. ULD / 2 is the token-space OT one would get if token identities could
be relabelled freely, so

.. math:: \\tfrac12 \\mathrm{ULD}(p, q) \\;\\le\\; \\mathrm{OT}\\big(p, q;\\ C_{ij} = [t_i \\ne s_j]\\big)

whenever every string appears at most once per vocabulary (the cost-0 pairs form a matching).
A top-k truncation breaks it (the rest buckets move to each other for free) and so do strings
shared by several ids of one side (their mass pools); the token-OT row's note says when.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from . import measures as registry
from .checks import check_epsilon, check_int
from .costs import COSTS, MAX_TOKEN_OT_TOP_K
from .distributions import as_float64, check_pair
from .divergences import HybridULD, VocabularyMismatchError
from .hybrid import HybridConfig
from .ot import OTResult, SinkhornResult, TokenOTResult
from .synthetic import synthetic_tokens
from .text.vocab import SharedStrings

__all__ = ["DivergenceSummary", "divergence_summary"]


def _value(x: Any) -> float | None:
    """A summary value: None where undefined (NaN) or not computed."""
    if x is None:
        return None
    x = float(x)
    return None if np.isnan(x) else x


@dataclass(frozen=True)
class DivergenceSummary:
    """Every measure of one teacher/student pair.

    ``values`` maps each computed measure's key (:data:`~uld_explorer.measures.MEASURES`) to its
    value (None: undefined, e.g. plain KL across two vocabularies, or not computed); ``notes`` to
    what to know about it. The attributes below are the same numbers and POT's solutions, named:
    ``kl``, ``reverse_kl``, ``js`` and ``tv`` are None when the vocabularies differ, with the
    reason in ``kl_undefined_reason``. ``kl_shared`` is KL on the strings both vocabularies have
    (:func:`~uld_explorer.restrict_to_shared_vocab`), with the mass each side puts there
    (``shared_coverage``) and their number (``shared_strings``); None when they share none or a
    side has no mass there. ``value_ot`` / ``rank_ot`` (with their plans) are None when the padded
    size exceeds :data:`~uld_explorer.ot.MAX_SUPPORT`. ``token_ot`` is the top-k token-space OT
    with the chosen cost (with its plan); ``hybrid`` TRL GOLD's hybrid ULD on the same token strings.
    ``sinkhorn`` is the entropic token OT on the same support and cost (its plan, iterations and
    convergence), None unless a ``sinkhorn_epsilon`` was given.
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
    values: dict[str, float | None] = field(default_factory=dict, repr=False)
    notes: dict[str, str] = field(default_factory=dict, repr=False)
    sinkhorn: SinkhornResult | None = None

    @property
    def token_ot_below_uld_half(self) -> bool:
        """Token-space OT (string cost) fell below ULD/2: only possible through the top-k rest
        buckets or strings repeated within a vocabulary (see the module docstring)."""
        return self.token_cost == "string" and self.token_ot.value < self.uld / 2 - 1e-9

    def rows(self) -> list[dict[str, Any]]:
        """One row per measure shown in the summary, in registry order: ``{"key", "divergence"
        (the label), "value" (None = undefined), "scale", "note"}``."""
        out = []
        for key, value in self.values.items():
            m = registry.MEASURES.get(key)
            if m is None or not m.shown_in("summary"):
                continue
            out.append({"key": key, "divergence": m.label, "value": value, "scale": m.scale_unit,
                        "note": self.notes.get(key, m.description)})
        return out


def divergence_summary(
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str] | None = None,
    student_tokens: Sequence[str] | None = None,
    *,
    top_k: int = 500,
    cost: str = "string",
    hybrid: HybridConfig | None = None,
    measures: Sequence[str] | None = None,
    sinkhorn_epsilon: float | None = None,
) -> DivergenceSummary:
    """Every measure of one pair: KL / JS / TV (if one vocabulary), KL on shared strings, ULD,
    value- and rank-space OT (POT, with plans), token-space OT, the hybrid, and any other
    measure registered for one pair (:func:`uld_explorer.measures.for_pair`).

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
        The token-space OT's ground cost (:data:`~uld_explorer.costs.COSTS`).
    hybrid : HybridConfig, optional
        Settings of the hybrid row (default: GOLD's).
    measures : sequence of str, optional
        Keys of the measures to show in ``values`` and :meth:`~DivergenceSummary.rows` (default:
        every one registered for a pair), in the registry's order. ULD, the hybrid and the
        token-space OT are computed anyway: they are attributes of the summary.
    sinkhorn_epsilon : float, optional
        Add the entropic token OT (``sinkhorn_ot``) on the token OT's support and cost, with this
        regularisation relative to the cost's largest entry (>= 1e-4); None (default): no Sinkhorn
        row (it costs ~0.1 s at top-k 50, seconds at 500).

    Examples
    --------
    >>> s = divergence_summary([0.7, 0.2, 0.1], [0.1, 0.7, 0.2])
    >>> round(s.uld, 9), round(s.value_ot.value, 9), round(s.token_ot.value, 9), round(s.tv, 9)
    (0.0, 0.0, 0.6, 0.6)
    >>> s.values["uld"] == s.uld, [r["key"] for r in s.rows()][:2]
    (True, ['kl_shared', 'kl_mined'])
    """
    p, q = check_pair(p, q)
    if p.ndim != 1:
        raise ValueError(f"p and q must be single distributions of shape (V,) here (got {tuple(p.shape)})")
    check_int(top_k, "top_k", 1, MAX_TOKEN_OT_TOP_K, "a positive integer")
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)} (got {cost!r})")
    p, q = as_float64(p), as_float64(q)
    V_t, V_s = p.shape[0], q.shape[0]
    teacher_tokens = synthetic_tokens(V_t) if teacher_tokens is None else teacher_tokens
    student_tokens = synthetic_tokens(V_s) if student_tokens is None else student_tokens
    if sinkhorn_epsilon is not None:
        sinkhorn_epsilon = check_epsilon(sinkhorn_epsilon, "sinkhorn_epsilon")
    settings = registry.MeasureSettings(top_k=top_k, edit_top_k=top_k, costs=(cost,),
                                        hybrid=hybrid or HybridConfig(), value_ot=True,
                                        sinkhorn_epsilon=sinkhorn_epsilon, sinkhorn_cost=cost)
    rows = registry.PairRows(p[None], q[None], SharedStrings.of_tokens(teacher_tokens, student_tokens), settings,
                             exact_plans=True)
    for k in measures or ():
        registry.measure(k)  # an unknown key: the error lists the known ones
    chosen = [m for m in registry.for_pair() if measures is None or m.key in measures]
    raw = registry.compute_measures(rows, chosen)
    values = {k: _value(v[0]) for k, v in raw.items()}
    row_values = {k: float(v[0]) for k, v in raw.items()}
    notes = {}
    for m in chosen:
        if m.key in raw:
            caveat = m.caveat(rows, 0, row_values) if m.caveat else None
            notes[m.key] = caveat or (m.explain(rows, 0) if m.explain else m.description)
    reason = None if rows.one_vocabulary else str(VocabularyMismatchError(V_t, V_s))
    sv = rows.shared
    coverage = None
    if sv is not None and np.isfinite(sv.p[0]).all() and np.isfinite(sv.q[0]).all():
        coverage = (float(np.asarray(sv.teacher_mass).reshape(1)[0]), float(np.asarray(sv.student_mass).reshape(1)[0]))
    h = rows.hybrid
    squeeze = lambda x: np.asarray(x).reshape(())  # noqa: E731 - one pair: 0-d arrays, as hybrid_uld(p, q) gives
    return DivergenceSummary(
        V_t=V_t,
        V_s=V_s,
        uld=float(rows.uld[0]),
        kl=values.get("kl"),
        reverse_kl=values.get("reverse_kl"),
        js=values.get("js"),
        tv=values.get("tv"),
        kl_undefined_reason=reason,
        value_ot=rows.value_ot_result[0],
        rank_ot=rows.rank_ot_result[0],
        token_ot=rows.token_ot(cost)[0],
        token_cost=cost,
        hybrid=replace(h, value=squeeze(h.value), matched=squeeze(h.matched), unmatched=squeeze(h.unmatched),
                       teacher_matched_mass=squeeze(h.teacher_matched_mass),
                       student_matched_mass=squeeze(h.student_matched_mass)),
        kl_shared=values.get("kl_shared"),
        shared_coverage=coverage,
        shared_strings=rows.vocab.match.S,
        values=values,
        notes=notes,
        sinkhorn=rows.sinkhorn[0] if "sinkhorn_ot" in raw else None,
    )
