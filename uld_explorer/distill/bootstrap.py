"""Intervals for an experiment's metrics: the two-stage (seeds, then prompts) percentile bootstrap.

One job: resample a table of per-prompt values ``X`` of shape ``(S, N)`` (S seeds, the same N
held-out prompts for every seed) into intervals, alone or as a paired difference. NumPy only.

A replicate ``b`` draws S seeds with replacement, then N prompts with replacement, and takes the
mean of ``X`` over the drawn (seed, prompt) cells:

.. math::

    \\hat\\mu^*_b = \\frac{1}{S N} \\sum_{j=1}^{S} \\sum_{k=1}^{N} X[s^*_{bj}, i^*_{bk}]
                 = \\frac{1}{S N}\\, c^{seed}_b \\, X \\, (c^{prompt}_b)^\\top

(``c_b``: how often each seed / prompt was drawn). The prompts are drawn ONCE per replicate and
shared by the drawn seeds: every seed is measured on the same prompts (seeds and prompts are
crossed, not nested), so a hard prompt is hard for every seed, and drawing prompts anew per seed
would average that shared noise away and give too narrow an interval. Resampling both factors of
a crossed table this way is Owen's "pigeonhole" bootstrap [1]_. The interval is the percentile
one: the ``(1 - c) / 2`` and ``(1 + c) / 2`` quantiles of the B replicates (``numpy.quantile``,
linear interpolation).

A **paired** difference (a loss against the baseline, or the final student against the same seed's
student at step 0) resamples the per-cell differences ``X_A - X_B`` with the SAME draws: the same
seeds and the same prompts for both sides, so what the two share (the prompt's difficulty, the
seed's initialisation and batch order) cancels.

With few seeds the seed stage is coarse (3 seeds give 10 distinct multisets) and percentile
intervals from few units run narrow (by about sqrt((S - 1) / S)): read 3 seeds as indicative.

References
----------
.. [1] A. B. Owen. "The pigeonhole bootstrap". The Annals of Applied Statistics 1(2), 2007.
.. [2] B. Efron, R. Tibshirani. "An Introduction to the Bootstrap", ch. 13 (percentile intervals), 1993.

Examples
--------
>>> X = np.array([[0.0, 1.0], [2.0, 4.0]])  # 2 seeds x 2 prompts
>>> every = Draws.every(2, 2)  # all 4 x 4 equally likely replicates
>>> sorted(every.means(X).tolist())
[0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.75, 1.75, 1.75, 1.75, 2.0, 2.5, 2.5, 3.0, 3.0, 4.0]
>>> interval(X, Draws.random(2, 2, 20_000, seed=0), confidence=0.5)
Interval(mean=1.75, low=1.0, high=2.5)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = ["METHOD", "Draws", "Interval", "interval", "paired", "finite_prompts"]

#: What results files say the intervals are.
METHOD = ("two-stage percentile bootstrap: seeds, then prompts, each drawn with replacement; the prompt draw "
          "shared by the drawn seeds and by every loss (crossed design, Owen 2007); differences are paired (the "
          "same draws for both sides)")


@dataclass(frozen=True)
class Draws:
    """B bootstrap replicates of a (seeds x prompts) table, as draw counts.

    Attributes
    ----------
    seeds : array, shape (B, S)
        How often each seed is drawn in each replicate (each row sums to S).
    prompts : array, shape (B, N)
        How often each prompt is drawn in each replicate (each row sums to N).
    """

    seeds: np.ndarray
    prompts: np.ndarray

    @classmethod
    def random(cls, n_seeds: int, n_prompts: int, resamples: int, seed: int) -> Draws:
        """``resamples`` replicates from ``numpy.random.default_rng(seed)``: S seed indices,
        then N prompt indices per replicate, uniform with replacement."""
        if n_seeds < 1 or n_prompts < 1 or resamples < 1:
            raise ValueError(f"need at least one seed, prompt and resample (got {n_seeds}, {n_prompts}, {resamples})")
        rng = np.random.default_rng(seed)
        s = rng.integers(0, n_seeds, size=(resamples, n_seeds))
        p = rng.integers(0, n_prompts, size=(resamples, n_prompts))
        return cls(_counts(s, n_seeds), _counts(p, n_prompts))

    @classmethod
    def every(cls, n_seeds: int, n_prompts: int) -> Draws:
        """Every ordered draw, each once: ``S**S * N**N`` equally likely replicates (the exact
        bootstrap distribution; tiny tables only)."""
        if n_seeds ** n_seeds * n_prompts ** n_prompts > 1_000_000:
            raise ValueError(f"{n_seeds} seeds x {n_prompts} prompts have too many draws to enumerate")
        s = np.array(list(itertools.product(range(n_seeds), repeat=n_seeds))).reshape(-1, n_seeds)
        p = np.array(list(itertools.product(range(n_prompts), repeat=n_prompts))).reshape(-1, n_prompts)
        s, p = np.repeat(s, len(p), axis=0), np.tile(p, (len(s), 1))
        return cls(_counts(s, n_seeds), _counts(p, n_prompts))

    @property
    def resamples(self) -> int:
        return len(self.seeds)

    def means(self, X: np.ndarray) -> np.ndarray:
        """The replicates' means of ``X`` (shape (S, N)): shape (B,)."""
        X = np.asarray(X, dtype=np.float64)
        S, N = X.shape
        if (S, N) != (self.seeds.shape[1], self.prompts.shape[1]):
            raise ValueError(f"X has shape {X.shape}, the draws are for {self.seeds.shape[1]} seeds x "
                             f"{self.prompts.shape[1]} prompts")
        return np.einsum("bs,sn,bn->b", self.seeds, X, self.prompts) / (S * N)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Rows of indices (B, n) -> rows of counts (B, n)."""
    out = np.zeros((idx.shape[0], n), dtype=np.float64)
    np.add.at(out, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate (the mean over every cell) and its percentile interval."""

    mean: float
    low: float
    high: float

    def contains(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies in ``[low, high]`` (for a difference: inside the noise)."""
        return bool(self.low <= value <= self.high)


def interval(X: np.ndarray, draws: Draws, confidence: float = 0.95) -> Interval:
    """The mean of ``X`` (S seeds x N prompts) and its ``confidence`` percentile interval over
    ``draws`` (:class:`Draws`, made for an (S, N) table)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    X = np.asarray(X, dtype=np.float64)
    reps = draws.means(X)
    lo, hi = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(X.mean()), float(lo), float(hi))


def paired(X: np.ndarray, Y: np.ndarray, draws: Draws, confidence: float = 0.95) -> Interval:
    """The paired difference ``X - Y``: cell by cell (the same seed, the same prompt), resampled
    with the same draws for both sides.

    >>> X = np.array([[1.0, 2.0, 9.0], [3.0, 4.0, 7.0]])
    >>> paired(X + 0.5, X, Draws.random(2, 3, 1000, seed=0))  # a constant shift: no noise left
    Interval(mean=0.5, low=0.5, high=0.5)
    """
    return interval(np.asarray(X, dtype=np.float64) - np.asarray(Y, dtype=np.float64), draws, confidence)


def finite_prompts(*tables: np.ndarray) -> np.ndarray:
    """The prompts (columns) finite in every table: a mask of shape (N,). A per-prompt value is
    undefined (NaN) where the prompt has nothing to measure (no answer token both tokenizers cut
    alike, for top-1 agreement); such prompts are left out of that metric for every table alike.

    >>> finite_prompts(np.array([[1.0, np.nan, 2.0]]), np.array([[1.0, 1.0, np.inf]]))
    array([ True, False, False])
    """
    return np.logical_and.reduce([np.isfinite(np.asarray(t, dtype=np.float64)).all(axis=0) for t in tables])
