"""Settings of the hybrid ULD divergence (TRL GOLD's hybrid loss), importable without torch.

The divergence itself is :func:`uld_explorer.divergences.hybrid_uld`; this module holds its
named choices (:data:`HYBRID_DIVERGENCES`, :data:`HYBRID_WEIGHTINGS`: name -> one-line
description, read by the CLI and the app) and :class:`HybridConfig`, validated once on
construction. The CLI builds its ``--help`` from here without loading torch.

References
----------
.. [1] Hugging Face TRL, ``trl.experimental.gold`` (``ULDLoss._compute_hybrid_uld_loss``,
   ``GOLDTrainer.generalized_jsd_loss``), the ``uld_use_hybrid_loss`` option.
.. [2] R. Agarwal et al. "On-Policy Distillation of Language Models: Learning from
   Self-Generated Mistakes" (GKD), ICLR 2024, eq. (1): the generalized JSD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checks import check_real

__all__ = ["HYBRID_DIVERGENCES", "HYBRID_WEIGHTINGS", "HybridConfig"]

#: How the matched part (tokens whose strings both vocabularies have) is compared.
HYBRID_DIVERGENCES: dict[str, str] = {
    "jsd": "generalized JSD with beta: beta KL(p||m) + (1-beta) KL(q||m), m = beta p + (1-beta) q "
           "(GOLD's convention: beta = 0 is KL(p||q), beta = 1 is KL(q||p))",
    "kl": "forward KL(p||q) on the matched strings (GOLD's beta = 0)",
}
#: How the matched and unmatched parts are weighted.
HYBRID_WEIGHTINGS: dict[str, str] = {
    "matched-share": "w_matched = (teacher ids whose string is shared) / V_t, w_unmatched = 1 - w_matched "
                     "(GOLD's default, weights left unset)",
    "fixed": "w_matched and w_unmatched as given (GOLD's uld_hybrid_matched_weight / _unmatched_weight)",
}


@dataclass(frozen=True)
class HybridConfig:
    """Settings of :func:`~uld_explorer.divergences.hybrid_uld`, as in TRL GOLD.

    Attributes
    ----------
    divergence : {"jsd", "kl"}
        The matched part's divergence (:data:`HYBRID_DIVERGENCES`).
    beta : float
        In ``[0, 1]``, the generalized JSD's mixture weight (GOLD's ``beta``, default 0.5); unused
        by ``"kl"``.
    weighting : {"matched-share", "fixed"}
        :data:`HYBRID_WEIGHTINGS`.
    matched_weight, unmatched_weight : float, optional
        Both given, finite and ``>= 0``, for ``weighting="fixed"``; both None otherwise.
    clamp : float, optional
        Raise the matched masses to at least this value before the divergence, as GOLD does inside
        its logs (``clamp_min(1e-8)``): ``1e-8`` reproduces GOLD's numbers. None (default): the
        exact divergence (KL is ``inf`` where the student has 0 and the teacher not; GOLD's clamp
        turns such a term into ``P log(P / 1e-8)``, on real rows a difference of up to ~1 nat).

    Examples
    --------
    >>> HybridConfig().weights(matched_teacher_ids=25, V_t=100)
    (0.25, 0.75)
    >>> HybridConfig(weighting="fixed", matched_weight=1.0, unmatched_weight=2.0).weights(25, 100)
    (1.0, 2.0)
    """

    divergence: str = field(default="jsd", metadata={
        "help": "hybrid: the matched strings' divergence; " + "; ".join(f"{k}: {v}" for k, v in HYBRID_DIVERGENCES.items()),
        "choices": HYBRID_DIVERGENCES})
    beta: float = field(default=0.5, metadata={"help": "hybrid: the JSD's beta, in [0, 1]"})
    weighting: str = field(default="matched-share", metadata={
        "help": "hybrid: " + "; ".join(f"{k}: {v}" for k, v in HYBRID_WEIGHTINGS.items()), "choices": HYBRID_WEIGHTINGS})
    matched_weight: float | None = field(default=None, metadata={
        "help": "hybrid: the matched part's fixed weight (with --hybrid-weighting fixed)", "metavar": "W"})
    unmatched_weight: float | None = field(default=None, metadata={
        "help": "hybrid: the unmatched part's fixed weight (with --hybrid-weighting fixed)", "metavar": "W"})
    clamp: float | None = field(default=None, metadata={
        "help": "hybrid: clamp the matched masses at C inside the logs, as GOLD does (1e-8 reproduces GOLD's "
                "numbers); none: exact", "metavar": "C"})

    def __post_init__(self) -> None:
        if self.divergence not in HYBRID_DIVERGENCES:
            raise ValueError(
                f"hybrid divergence must be one of {', '.join(HYBRID_DIVERGENCES)} (got {self.divergence!r})"
            )
        beta = check_real(self.beta, "hybrid beta")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(
                f"hybrid beta must lie in [0, 1] (got {self.beta!r}): it is the teacher's weight in the "
                f"mixture m = beta p + (1 - beta) q"
            )
        if self.weighting not in HYBRID_WEIGHTINGS:
            raise ValueError(
                f"hybrid weighting must be one of {', '.join(HYBRID_WEIGHTINGS)} (got {self.weighting!r})"
            )
        given = (self.matched_weight is not None, self.unmatched_weight is not None)
        if self.weighting == "fixed":
            if not all(given):
                raise ValueError(
                    "hybrid weighting 'fixed' needs both matched_weight and unmatched_weight "
                    f"(got {self.matched_weight!r} and {self.unmatched_weight!r}); or use 'matched-share'"
                )
            for name in ("matched_weight", "unmatched_weight"):
                if check_real(getattr(self, name), f"hybrid {name}") < 0:
                    raise ValueError(f"hybrid {name} must be >= 0 (got {getattr(self, name)!r})")
        elif any(given):
            raise ValueError(
                "hybrid matched_weight / unmatched_weight are used only with weighting='fixed' "
                "(the 'matched-share' weights come from the vocabularies); set weighting='fixed' or drop them"
            )
        if self.clamp is not None and not 0.0 < check_real(self.clamp, "hybrid clamp") < 1.0:
            raise ValueError(
                f"hybrid clamp must lie in (0, 1) or be None (got {self.clamp!r}); GOLD uses 1e-8"
            )

    def weights(self, matched_teacher_ids: int, V_t: int) -> tuple[float, float]:
        """``(w_matched, w_unmatched)`` for a teacher vocabulary of ``V_t`` ids, of which
        ``matched_teacher_ids`` have a string the student vocabulary has too."""
        if self.weighting == "fixed":
            return float(self.matched_weight), float(self.unmatched_weight)
        w = matched_teacher_ids / max(1, V_t)
        return w, 1.0 - w
