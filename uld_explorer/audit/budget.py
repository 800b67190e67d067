"""The model checks: the teacher's mass on tokens the student has no token for, and the teacher
cache's top-K budget.

The runner keeps, per answer position, the teacher's K largest probabilities and the tail mass
:math:`r_K = \\sum_{i > K} p_{(i)}` (:mod:`uld_explorer.distill.teacher_cache`); ULD from that
cache (:func:`~uld_explorer.uld_top_k`) is certified to within

.. math:: |L - \\hat L| \\le \\min(Q_K, r_K) \\le r_K,

with :math:`Q_K` the student's mass outside its own K largest entries. :func:`cache_budget` runs
both models over the examples once (the full distributions) and reports, per K, the mass kept
(mean and the worst 5 % of positions), the mean certified bound for ANY student
(:math:`r_K`) and for the step-0 student (:math:`\\min(Q_K, r_K)`, on the aligned pairs the
runner trains on), each beside the mean exact ULD of those pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["BUDGET_KS", "Budget", "BudgetRow", "cache_budget", "suggest_k"]

#: The cache sizes the audit measures.
BUDGET_KS = (16, 32, 64, 128, 256, 512, 1024)
#: A K is enough when the step-0 student's mean certified bound is at most this share of the mean ULD.
ENOUGH = 0.01


@dataclass(frozen=True)
class BudgetRow:
    """One K: ``kept_mean`` / ``kept_p5`` (teacher mass in the top K: mean, 5th percentile over the
    positions), ``tail_mean`` / ``tail_max`` (:math:`r_K`), ``bound_mean`` (mean
    :math:`\\min(Q_K, r_K)` over the aligned pairs, step-0 student) and ``bound_share`` (that over the
    mean exact ULD)."""

    k: int
    kept_mean: float
    kept_p5: float
    tail_mean: float
    tail_max: float
    bound_mean: float
    bound_share: float


@dataclass
class Budget:
    """The model checks' results.

    Attributes
    ----------
    rows : list[BudgetRow]
        One per K of :data:`BUDGET_KS`.
    uld_mean : float
        Mean exact (full-vocabulary) ULD over the aligned pairs, step-0 student.
    unspellable_mean, unspellable_p95 : float
        The teacher's mass on tokens whose string is no student token (mean, 95th percentile over
        the teacher's answer positions).
    positions, pairs, examples : int
        Teacher answer positions, aligned pairs and examples measured.
    """

    rows: list[BudgetRow] = field(default_factory=list)
    uld_mean: float = float("nan")
    unspellable_mean: float = float("nan")
    unspellable_p95: float = float("nan")
    positions: int = 0
    pairs: int = 0
    examples: int = 0

    def row(self, k: int) -> BudgetRow | None:
        return next((r for r in self.rows if r.k == k), None)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"rows": [asdict(r) for r in self.rows], "uld_mean": self.uld_mean,
                "unspellable_mean": self.unspellable_mean, "unspellable_p95": self.unspellable_p95,
                "positions": self.positions, "pairs": self.pairs, "examples": self.examples,
                "suggested_k": suggest_k(self)}


def suggest_k(budget: Budget, enough: float = ENOUGH) -> int | None:
    """The smallest K whose step-0 certified bound is at most ``enough`` of the mean ULD (None: none is)."""
    return next((r.k for r in budget.rows if r.bound_share <= enough), None)


def _tails(x: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """(len(ks), N): the mass beyond rank K of each row of ``x`` (N, V): the row's sum minus its K
    largest entries (found by partition, not a full sort), in float64, clamped at 0."""
    N, V = x.shape
    kmax = min(max(ks), V)
    top = np.partition(x, V - kmax, axis=1)[:, V - kmax:] if kmax < V else x
    top = -np.sort(-top, axis=1)  # (N, kmax), descending
    head = np.cumsum(top, axis=1, dtype=np.float64)  # head[:, K - 1]: the K largest
    total = x.sum(1, dtype=np.float64)
    return np.stack([np.clip(total - head[:, min(k, kmax) - 1], 0.0, None) for k in ks])


def cache_budget(teacher: Any, student: Any, examples: Sequence[Any], *, alignment: str = "positional",
                 merge: str = "observed", teacher_temperature: float = 1.0, ks: Sequence[int] = BUDGET_KS,
                 progress: Callable[[int, int], None] | None = None) -> Budget:
    """Run both models over ``examples`` and measure the vocabulary mass and the cache budget.

    Parameters
    ----------
    teacher, student : LoadedModel
        ``.model`` and ``.tokenizer`` (:func:`uld_explorer.load`).
    examples : sequence
        Objects with ``.answer`` and the sides' :class:`~uld_explorer.text.Tokenized` as
        ``.teacher`` / ``.student`` (their ``prompt`` is the rendered prompt).
    alignment, merge : str
        How the runner pairs the tokens (:data:`~uld_explorer.text.ALIGNMENTS`): the pairs'
        base tokens (:func:`~uld_explorer.text.base_token`) are compared, as in training.
    progress : callable(done, total), optional
    """
    from ..compare.forward import next_token_distributions
    from ..divergences import uld_distance
    from ..text.align import ALIGNMENTS, base_token
    from ..text.vocab import shared_strings_of

    align = ALIGNMENTS[alignment].align
    kept, tails, bounds, ulds, unspell = [], [], [], [], []
    shared = None
    for n, ex in enumerate(examples):
        tt, pt = next_token_distributions(teacher, ex.answer, teacher_temperature, prompt=ex.teacher.prompt)
        ts, qs = next_token_distributions(student, ex.answer, 1.0, prompt=ex.student.prompt)
        if tuple(tt.ids) != tuple(ex.teacher.ids) or tuple(ts.ids) != tuple(ex.student.ids):
            raise RuntimeError(f"{ex.id}: the models tokenized the answer differently than the audit did")
        if shared is None:
            shared = shared_strings_of(teacher.tokenizer, student.tokenizer, pt.shape[1], qs.shape[1])
            spelled = shared.match.teacher_group >= 0  # (V_t,)
        f = tt.first_predicted
        r_all = _tails(pt[: len(tt)], ks)  # (K, T_t): row j predicts token j
        tails.append(r_all[:, f:])
        unspell.append(1.0 - pt[f: len(tt)][:, spelled].sum(1, dtype=np.float64))
        pairs = [(base_token(g.teacher_tokens, merge), base_token(g.student_tokens, merge)) for g in align(tt, ts)]
        if pairs:
            jt, js = map(list, zip(*pairs))
            p, q = pt[jt], qs[js]  # (P, V_t), (P, V_s)
            r = r_all[:, jt]  # (K, P)
            Q = _tails(q, ks)
            bounds.append(np.minimum(Q, r))
            ulds.append(np.asarray(uld_distance(p.astype(np.float64), q.astype(np.float64))))
        if progress is not None:
            progress(n + 1, len(examples))
    out = Budget(examples=len(examples))
    if not tails:
        return out
    tail = np.concatenate(tails, axis=1)  # (K, positions)
    bound = np.concatenate(bounds, axis=1) if bounds else np.full((len(ks), 0), np.nan)
    uld_mean = float(np.mean(np.concatenate(ulds))) if ulds else float("nan")
    out.uld_mean, out.positions, out.pairs = uld_mean, tail.shape[1], bound.shape[1]
    u = np.concatenate(unspell)
    out.unspellable_mean, out.unspellable_p95 = float(u.mean()), float(np.percentile(u, 95))
    for i, k in enumerate(ks):
        b = float(bound[i].mean()) if bound.shape[1] else float("nan")
        out.rows.append(BudgetRow(int(k), float(1 - tail[i].mean()), float(np.percentile(1 - tail[i], 5)),
                                  float(tail[i].mean()), float(tail[i].max()), b,
                                  b / uld_mean if uld_mean > 0 else float("nan")))
    return out
