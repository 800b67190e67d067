"""The measures: ONE registry of every number shown for a teacher/student pair.

One job: the registry (each built-in measure is an entry and the few lines that read its value
off the shared intermediate results of :class:`PairRows`; the math lives in the modules below).

A :class:`Measure` carries its metadata ON the measure (after torchmetrics' ``higher_is_better``
and ``plot_lower_bound``): a stable ``key`` (the column of the comparison table, the JSON and CSV
field, the chart series, the URL value), its ``label`` and ``short`` name, its ``scale`` and
``unit``, the ``formula``, a ``reference``, whether lower is better, whether it needs one shared
vocabulary, and the function that computes it. Everything that shows a measure reads it here:
:func:`~uld_explorer.divergence_summary` (its rows), the comparison table
(:mod:`uld_explorer.compare`: its columns, JSON, CSV), :mod:`~uld_explorer.tidy` and
:mod:`~uld_explorer.charts` (the per-position chart), the app's pages and the CLI.

**Adding a measure** is one entry, its function and its tests::

    from uld_explorer.measures import MEASURES, Measure, register

    register(Measure(key="top1_gap", label="top-1 probability gap", short="dTop1", scale="[0, 1]",
                     unit="", formula=r"|\\max_i p_i - \\max_j q_j|", description="how much surer one side is",
                     reference="-", compute=lambda rows: abs(rows.p_base.max(-1) - rows.q_base.max(-1))))

It then appears in the summary's rows, the table's columns (CSV, JSON), ``uld-explorer compare``
and the Real distributions page; :func:`registered` adds one for a ``with`` block (tests).

How a measure is computed
-------------------------
``compute(rows)`` receives a :class:`PairRows`: ``R`` aligned teacher/student pairs and what
the measures share, computed once and on demand (the restriction to the shared strings, the
hybrid's parts, the token-space OT of each cost, ULD), and returns an array of shape ``(R,)``
(``NaN``: undefined at that row). ``rows.p`` / ``rows.q`` are the vectors as compared (a merged
byte-offset group's chain-rule sub-probability vectors), ``rows.p_base`` / ``rows.q_base`` the
distributions they scale (the group's base token's; the same arrays for single tokens): ULD,
value-space OT and the hybrid compare the former, KL, the top-1s and token-space OT the latter
(:mod:`uld_explorer.compare.pipeline` says why). The summary of one pair is ``R = 1`` with
``rows.exact_plans`` set: the OT measures then keep POT's plans for the pictures.

Scales, so that numbers that look alike are read alike: ULD and value-space OT lie in
``[0, 2]``; ULD / 2 (= exact rank-space OT) and token-space OT in ``[0, 1]`` (``panel="unit"``),
shown next to each other since

.. math:: \\tfrac12 \\mathrm{ULD}(p, q) \\le \\mathrm{OT}\\big(p, q;\\ C_{ij} = [t_i \\ne s_j]\\big)

whenever every string appears at most once per vocabulary (a top-k truncation or pooled ids can
break it; the token-OT measure's caveat says when). KL and the hybrid are in nats.

References
----------
.. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030 (ULD).
.. [2] Flamary et al. 2021, JMLR 22(78) (POT: exact OT).
.. [3] Hugging Face TRL, ``GOLDTrainer`` (hybrid ULD).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .costs import MAX_SUPPORT
from .hybrid import HybridConfig
from .text.vocab import SharedStrings

__all__ = [
    "MEASURES", "PANELS", "VIEWS", "Measure", "MeasureSettings", "PairRows", "compute_measures", "for_pair",
    "for_positions", "measure", "register", "registered",
]

#: Where a measure is shown beyond the data (table columns, JSON, CSV, which hold every computed
#: measure): ``summary`` (a row of :meth:`DivergenceSummary.rows`), ``cli`` (a column of
#: ``uld-explorer compare``), ``page`` (a column of the Real page's table), ``card`` (a metric of
#: the selected position), ``chart`` (a series of the per-position chart).
VIEWS = ("summary", "cli", "page", "card", "chart")
#: The scale groups: measures of one panel share an axis (the chart's facet, the CLI's column group).
PANELS = {"unit": "[0, 1]: ULD/2 and token OT", "nats": "nats: KL and the hybrid", "uld": "[0, 2]: ULD"}


@dataclass(frozen=True)
class MeasureSettings:
    """What the measures read besides the vectors; :class:`~uld_explorer.compare.ComparisonConfig`
    has the same fields. ``top_k`` / ``edit_top_k``: tokens per side of the string- / edit-cost
    token-space OT; ``costs``: which costs to compute; ``hybrid``: the hybrid's settings;
    ``value_ot``: compute the (redundant) value-space OT; ``sinkhorn_epsilon``: the entropic
    token OT's regularisation relative to its cost's largest entry (None: not computed);
    ``sinkhorn_cost``: its ground cost (its support: that cost's top-k); ``mined``: compute the
    MinED mapping KL and its coverage."""

    top_k: int = 500
    edit_top_k: int = 100
    costs: tuple[str, ...] = ("string",)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    value_ot: bool = True
    sinkhorn_epsilon: float | None = None
    sinkhorn_cost: str = "string"
    mined: bool = True


class PairRows:
    """``R`` aligned teacher/student pairs and what the measures share, each computed once, on demand.

    Parameters
    ----------
    p : ndarray, shape (R, V_t);  q : ndarray, shape (R, V_s)
        The vectors as compared (validated by the caller; a merged group's are sub-probability).
    p_base, q_base : ndarray, shapes (R, V_t), (R, V_s), optional
        The distributions ``p``, ``q`` scale (default: ``p``, ``q`` themselves).
    vocab : SharedStrings
        Both vocabularies (keys, readable strings) and their matching.
    settings : MeasureSettings or ComparisonConfig
    teacher_mass, student_mass : ndarray, shape (R,), optional
        The masses of ``p`` and ``q`` (1 for single tokens, the default).
    exact_plans : bool
        One small pair (the summary): the OT measures solve with POT's network simplex and keep
        their plans (``value_ot_result``, ``rank_ot_result``, ``token_ot``).
    """

    def __init__(self, p: np.ndarray, q: np.ndarray, vocab: SharedStrings, settings: Any, *,
                 p_base: np.ndarray | None = None, q_base: np.ndarray | None = None,
                 teacher_mass: np.ndarray | None = None, student_mass: np.ndarray | None = None,
                 exact_plans: bool = False) -> None:
        self.p, self.q = p, q
        self.p_base = p if p_base is None else p_base
        self.q_base = q if q_base is None else q_base
        self.vocab, self.settings, self.exact_plans = vocab, settings, exact_plans
        self.R = p.shape[0]
        self.teacher_mass = np.ones(self.R) if teacher_mass is None else teacher_mass
        self.student_mass = np.ones(self.R) if student_mass is None else student_mass
        self._token_ot: dict[str, list] = {}

    @property
    def V_t(self) -> int:
        return self.p.shape[-1]

    @property
    def V_s(self) -> int:
        return self.q.shape[-1]

    @property
    def merged(self) -> np.ndarray:
        """Rows whose vectors are merged groups (a mass below 1 on either side), shape (R,) bool."""
        return (self.teacher_mass != 1.0) | (self.student_mass != 1.0)

    # ------------------------------------------------------------------ shared intermediate results
    @functools.cached_property
    def one_vocabulary(self) -> bool:
        """Both sides index ONE vocabulary (same size): plain KL, JS and TV are defined."""
        return self.V_t == self.V_s

    @functools.cached_property
    def shared(self) -> Any:
        """:func:`~uld_explorer.restrict_to_shared_vocab` of the base distributions (NaN rows
        where a side has no mass on the shared strings); None when no string is shared."""
        from .divergences import restrict_to_shared_vocab

        if not self.vocab.match.S:
            return None
        return restrict_to_shared_vocab(self.p_base, self.q_base, match=self.vocab.match, on_empty="nan",
                                        validate=False)

    @functools.cached_property
    def uld(self) -> np.ndarray:
        """ULD closed form of ``p`` and ``q``, shape (R,)."""
        from .divergences import uld_distance

        return np.asarray(uld_distance(self.p, self.q, validate=False), dtype=np.float64).reshape(self.R)

    @functools.cached_property
    def hybrid(self) -> Any:
        """:func:`~uld_explorer.hybrid_uld` of ``p`` and ``q`` (value, matched, unmatched; weights)."""
        from .divergences import hybrid_uld

        return hybrid_uld(self.p, self.q, match=self.vocab.match, config=self.settings.hybrid, validate=False)

    @functools.cached_property
    def small(self) -> bool:
        """The padded size fits POT's dense exact solvers (:data:`~uld_explorer.costs.MAX_SUPPORT`)."""
        return max(self.V_t, self.V_s) <= MAX_SUPPORT

    @functools.cached_property
    def value_ot_result(self) -> list:
        """Per row: :func:`~uld_explorer.value_space_ot` (POT's network simplex, with its plan) when
        ``exact_plans`` and the size fits, else None."""
        from .ot import value_space_ot

        return [value_space_ot(self.p[i], self.q[i]) if self.exact_plans and self.small else None
                for i in range(self.R)]

    @functools.cached_property
    def rank_ot_result(self) -> list:
        """Per row: :func:`~uld_explorer.rank_space_ot` (with its plan) when ``exact_plans`` and the
        size fits, else None."""
        from .ot import rank_space_ot

        return [rank_space_ot(self.p[i], self.q[i]) if self.exact_plans and self.small else None
                for i in range(self.R)]

    def cost_tokens(self, cost: str) -> tuple[np.ndarray, np.ndarray]:
        """What the ``cost`` token OT compares: the exact keys for the 0/1 cost, the readable strings else."""
        v = self.vocab
        return (v.teacher_keys, v.student_keys) if cost == "string" else (v.teacher_strings, v.student_strings)

    def cost_k(self, cost: str) -> int:
        """Tokens kept per side by the ``cost`` token OT: ``settings.top_k`` (string) or ``edit_top_k``."""
        return self.settings.top_k if cost == "string" else self.settings.edit_top_k

    def token_ot(self, cost: str) -> list:
        """Per row: :func:`~uld_explorer.token_space_ot_top_k` of the base distributions with
        ``cost`` (the 0/1 cost compares exact keys, the edit cost readable strings), on
        ``settings.top_k`` / ``edit_top_k`` tokens + a rest bucket; plans only with ``exact_plans``."""
        if cost not in self._token_ot:
            from .ot import token_space_ot_top_k

            tokens, k = self.cost_tokens(cost), self.cost_k(cost)
            self._token_ot[cost] = [
                token_space_ot_top_k(self.p_base[i], self.q_base[i], *tokens, k=k, cost=cost, validate=False,
                                     plan=self.exact_plans)
                for i in range(self.R)]
        return self._token_ot[cost]

    @functools.cached_property
    def mined(self) -> list:
        """Per row: :func:`~uld_explorer.mined_kl` of the base distributions, the teacher's
        ``settings.top_k`` tokens searched for a nearest spelling (the vocabulary pair's
        :func:`~uld_explorer.text.mined.mined_mapper`, cached across rows and tables)."""
        from .divergences import mined_kl
        from .text.mined import mined_mapper

        mapper = mined_mapper(self.vocab)
        return [mined_kl(self.p_base[i], self.q_base[i], k=self.settings.top_k, mapper=mapper, validate=False)
                for i in range(self.R)]

    @functools.cached_property
    def sinkhorn(self) -> list:
        """Per row: :func:`~uld_explorer.token_space_sinkhorn_top_k` of the base distributions on the
        support and cost of ``token_ot(settings.sinkhorn_cost)``, with ``settings.sinkhorn_epsilon``
        (an unconverged row: value NaN, with its iterations and marginal error); plans only with
        ``exact_plans``."""
        from .ot import token_space_sinkhorn_top_k

        cost, eps = self.settings.sinkhorn_cost, self.settings.sinkhorn_epsilon
        tokens, k = self.cost_tokens(cost), self.cost_k(cost)
        return [token_space_sinkhorn_top_k(self.p_base[i], self.q_base[i], *tokens, k=k, epsilon=eps, cost=cost,
                                           on_not_converged="nan", validate=False, plan=self.exact_plans)
                for i in range(self.R)]

    def token_ot_repeats(self, cost: str, i: int) -> bool:
        """Row ``i``'s kept tokens hold a key twice on one side (their mass pools; ``b''``/``''``
        marks ids without text and never counts)."""
        r = self.token_ot(cost)[i]
        keys = self.cost_tokens(cost)
        kt = [x for x in (keys[0][j] for j in r.teacher_index) if x]
        kq = [x for x in (keys[1][j] for j in r.student_index) if x]
        return len(set(kt)) < len(kt) or len(set(kq)) < len(kq)

    def plain(self, divergence: Callable[..., Any], **kw: Any) -> np.ndarray:
        """A one-vocabulary divergence of ``p`` and ``q`` (NaN rows when the vocabularies differ)."""
        if not self.one_vocabulary:
            return np.full(self.R, np.nan)
        return np.asarray(divergence(self.p, self.q, **kw), dtype=np.float64).reshape(self.R)


@dataclass(frozen=True)
class Measure:
    """One measure and everything shown with it.

    Attributes
    ----------
    key : str
        Stable identifier: the table's column, the JSON / CSV field, the chart series, URL values.
    label : str
        Human name (the summary's ``divergence`` column, legends, metric labels).
    short : str
        A column header (``uld-explorer compare``).
    scale : str
        The range its values lie in, e.g. ``"[0, 2]"``.
    unit : str
        ``"nats"``, ``"mass"`` or ``""``.
    formula : str
        LaTeX.
    description : str
        One line: what it is and what it sees (help texts, the summary's default note).
    reference : str
    compute : callable(PairRows) -> array, shape (R,)
        NaN where undefined.
    lower_is_better : bool
        True for every divergence (0 = the student matches the teacher).
    needs_shared_vocab : bool
        Defined only when both sides index ONE vocabulary (plain KL, JS, TV).
    where : tuple of {"pair", "position"}
        Computed for one pair (:func:`~uld_explorer.divergence_summary`) and / or per position
        (the comparison table).
    views : tuple of :data:`VIEWS`
        Where it is shown beyond the data (companions of another measure: none).
    companion_of : str, optional
        The measure this one is a part of (coverage of KL, the hybrid's parts, truncated masses).
    panel : str, optional
        Its scale group (:data:`PANELS`); None: a group of its own.
    color : str
        Its colour in charts (Okabe-Ito for the built-in ones).
    settings : tuple of str
        The settings fields it reads (:class:`MeasureSettings`): a table that differs from
        another only in other settings reuses its values.
    enabled : callable(settings) -> bool, optional
        Whether the settings ask for it (e.g. its cost is in ``settings.costs``).
    explain : callable(PairRows, int) -> str, optional
        The summary's note for row ``i`` (default: ``description``).
    caveat : callable(PairRows, int, dict) -> str or None, optional
        What to know about row ``i``'s value (an undefined value and why, a broken bound), given
        the row's computed values; shown in the table's ``notes`` and the summary's note.
    """

    key: str
    label: str
    short: str
    scale: str
    unit: str
    formula: str
    description: str
    reference: str
    compute: Callable[[PairRows], Any]
    lower_is_better: bool = True
    needs_shared_vocab: bool = False
    where: tuple[str, ...] = ("pair", "position")
    views: tuple[str, ...] = VIEWS
    companion_of: str | None = None
    panel: str | None = None
    color: str = "#999999"
    settings: tuple[str, ...] = ()
    enabled: Callable[[Any], bool] | None = None
    explain: Callable[[PairRows, int], str] | None = None
    caveat: Callable[[PairRows, int, dict], str | None] | None = None

    def __post_init__(self) -> None:
        if not self.key.isidentifier():
            raise ValueError(f"a measure's key must be an identifier (a table column, a JSON field): got {self.key!r}")
        bad = set(self.views) - set(VIEWS)
        if bad:
            raise ValueError(f"measure {self.key!r}: unknown views {sorted(bad)}; views are {', '.join(VIEWS)}")
        if not set(self.where) <= {"pair", "position"} or not self.where:
            raise ValueError(f"measure {self.key!r}: where must hold 'pair' and / or 'position' (got {self.where!r})")

    def is_enabled(self, settings: Any) -> bool:
        return self.enabled is None or bool(self.enabled(settings))

    def shown_in(self, view: str) -> bool:
        return view in self.views

    @property
    def scale_unit(self) -> str:
        """``"[0, inf) nats"``: the scale and the unit, as the summary's ``scale`` column shows it."""
        return f"{self.scale} {self.unit}".strip() if self.unit not in ("", "mass") else self.scale

    @property
    def title(self) -> str:
        """The label with its unit, for axes and metric cards: ``"KL(p||q) on shared strings (nats)"``."""
        return f"{self.label} ({self.unit})" if self.unit in ("nats",) else self.label


#: The registry: key -> Measure, in display order (the table's columns, the summary's rows).
MEASURES: dict[str, Measure] = {}


def register(m: Measure, *, replace: bool = False) -> Measure:
    """Add ``m`` to :data:`MEASURES` (at the end); a taken key is refused unless ``replace``."""
    if m.key in MEASURES and not replace:
        raise ValueError(f"a measure {m.key!r} is registered already: pick another key, or pass replace=True")
    MEASURES[m.key] = m
    return m


@contextlib.contextmanager
def registered(*ms: Measure) -> Iterator[None]:
    """Register ``ms`` for the ``with`` block only (tests, a notebook cell trying a measure)."""
    for m in ms:
        register(m)
    try:
        yield
    finally:
        for m in ms:
            MEASURES.pop(m.key, None)


def measure(key: str) -> Measure:
    """The measure ``key``, or a ValueError listing the keys."""
    try:
        return MEASURES[key]
    except KeyError:
        raise ValueError(f"unknown measure {key!r}; measures: {', '.join(MEASURES)}") from None


def for_pair() -> list[Measure]:
    """The measures of one pair (the summary), in registry order."""
    return [m for m in MEASURES.values() if "pair" in m.where]


def for_positions() -> list[Measure]:
    """The measures of the per-position table, in registry order."""
    return [m for m in MEASURES.values() if "position" in m.where]


def compute_measures(rows: PairRows, measures: Sequence[Measure]) -> dict[str, np.ndarray]:
    """``{key: values (R,) float64}`` of every measure of ``measures`` the settings enable; the
    others are left out (not computed: shown as None)."""
    out: dict[str, np.ndarray] = {}
    for m in measures:
        if m.is_enabled(rows.settings):
            v = np.asarray(m.compute(rows), dtype=np.float64).reshape(rows.R)
            out[m.key] = v
    return out


# ---------------------------------------------------------------------------- the built-in measures

_ULD_REF = "Boizard et al. 2024, TMLR, arXiv:2402.12030"
_POT_REF = "Flamary et al. 2021, JMLR 22(78) (POT)"
_GOLD_REF = "Hugging Face TRL, GOLDTrainer (hybrid ULD); Agarwal et al. 2024 (generalized JSD)"
_ONE_VOCAB = "undefined: different vocabularies"
_SINKHORN_SETTINGS = ("sinkhorn_epsilon", "sinkhorn_cost", "top_k", "edit_top_k")


def _kl_shared(rows: PairRows) -> np.ndarray:
    from .divergences import kl_divergence

    sv = rows.shared
    if sv is None:
        return np.full(rows.R, np.nan)
    return np.asarray(kl_divergence(sv.p, sv.q, validate=False), dtype=np.float64).reshape(rows.R)


def _coverage(side: str) -> Callable[[PairRows], np.ndarray]:
    def compute(rows: PairRows) -> np.ndarray:
        sv = rows.shared
        if sv is None:
            return np.zeros(rows.R)
        return np.minimum(np.asarray(getattr(sv, f"{side}_mass"), dtype=np.float64).reshape(rows.R), 1.0)

    return compute


def _kl_shared_explain(rows: PairRows, i: int) -> str:
    sv = rows.shared
    if sv is None or not (np.isfinite(sv.p[i]).all() and np.isfinite(sv.q[i]).all()):
        return "no shared string with mass on both sides"
    cov_t = float(np.asarray(sv.teacher_mass).reshape(rows.R)[i])
    cov_s = float(np.asarray(sv.student_mass).reshape(rows.R)[i])
    return f"{rows.vocab.match.S:,} shared strings, covering {cov_t:.0%} of p and {cov_s:.0%} of q"


def _kl_shared_caveat(rows: PairRows, i: int, values: dict) -> str | None:
    kl = values.get("kl_shared")
    if kl is None or np.isfinite(kl):
        return None
    cov_t, cov_s = values.get("kl_teacher_coverage", 1.0), values.get("kl_student_coverage", 1.0)
    if np.isnan(kl) or cov_t <= 0 or cov_s <= 0:
        who = "teacher" if cov_t <= 0 else "student"
        return f"kl_shared undefined: the {who} puts no mass on the {rows.vocab.match.S:,} shared strings here"
    return "kl_shared infinite: the student gives 0 to a shared string the teacher does not"


def _plain(name: str) -> Callable[[PairRows], np.ndarray]:
    def compute(rows: PairRows) -> np.ndarray:
        from . import divergences

        kw = {"validate": False} if name == "kl_divergence" else {}
        return rows.plain(getattr(divergences, name), **kw)

    return compute


def _plain_explain(what: str) -> Callable[[PairRows, int], str]:
    return lambda rows, i: what if rows.one_vocabulary else _ONE_VOCAB


def _value_ot(rows: PairRows) -> np.ndarray:
    if rows.exact_plans:
        return np.array([np.nan if r is None else r.value for r in rows.value_ot_result])
    from .ot import value_space_w1

    return np.array([value_space_w1(rows.p[i], rows.q[i], validate=False) for i in range(rows.R)])


def _uld_half(rows: PairRows) -> np.ndarray:
    if rows.exact_plans and rows.small:
        return np.array([r.value for r in rows.rank_ot_result])
    return rows.uld / 2


def _hybrid_part(part: str) -> Callable[[PairRows], np.ndarray]:
    return lambda rows: np.asarray(getattr(rows.hybrid, part), dtype=np.float64).reshape(rows.R)


def _hybrid_explain(rows: PairRows, i: int) -> str:
    h = rows.hybrid
    m = float(np.asarray(h.matched).reshape(rows.R)[i])
    u = float(np.asarray(h.unmatched).reshape(rows.R)[i])
    return (f"{h.matched_weight:.3g} x matched-string divergence {m:.4f} + "
            f"{h.unmatched_weight:.3g} x unmatched sorted L1 {u:.4f}")


def _token_ot(cost: str, part: str = "value") -> Callable[[PairRows], np.ndarray]:
    attr = {"value": "value", "teacher": "teacher_truncated_mass", "student": "student_truncated_mass"}[part]
    return lambda rows: np.array([getattr(r, attr) for r in rows.token_ot(cost)], dtype=np.float64)


def _k(rows: PairRows, cost: str) -> int:
    return rows.settings.top_k if cost == "string" else rows.settings.edit_top_k


def _token_ot_explain(cost: str) -> Callable[[PairRows, int], str]:
    def explain(rows: PairRows, i: int) -> str:
        r = rows.token_ot(cost)[i]
        if cost == "string":
            note = "exact, sees token identity; >= ULD/2 (without truncation or repeated strings)"
        else:
            note = "exact, sees token identity (edit-distance cost: no bound by ULD/2)"
        if r.teacher_truncated_mass or r.student_truncated_mass:
            note += (f"; top-{_k(rows, cost)} + rest, truncated mass {r.teacher_truncated_mass:.3g} / "
                     f"{r.student_truncated_mass:.3g}")
        return note

    return explain


def _token_ot_caveat(rows: PairRows, i: int, values: dict) -> str | None:
    """The string-cost OT fell below ULD / 2 (possible only through the top-k rest buckets or
    strings repeated within a vocabulary) on a row of whole distributions."""
    ot, uld = values.get("token_ot_string"), values.get("uld")
    if ot is None or uld is None or rows.merged[i] or not ot < uld / 2 - 1e-9:
        return None
    r = rows.token_ot("string")[i]
    why = []
    t_cut, s_cut = r.teacher_truncated_mass, r.student_truncated_mass
    if t_cut > 0 and s_cut > 0:
        why.append(f"the top-{rows.settings.top_k} rest buckets (mass {t_cut:.3g} / {s_cut:.3g}) move to each "
                   f"other for free")
    if rows.token_ot_repeats("string", i):
        why.append("several kept ids of one side share a string and pool their mass")
    reason = "; ".join(why) if why else "float rounding"
    return (f"token_ot_string {ot:.4g} < ULD/2 {uld / 2:.4g}: {reason} (ULD/2 bounds the full 0/1 token OT only "
            f"without either)")


def _mined(part: str) -> Callable[[PairRows], np.ndarray]:
    return lambda rows: np.array([getattr(r, part) for r in rows.mined], dtype=np.float64)


def _mined_explain(rows: PairRows, i: int) -> str:
    r = rows.mined[i]
    return (f"{r.exact_mass:.0%} of p maps to an identical spelling, {r.approx_mass:.0%} to the nearest one "
            f"(mean {r.mean_distance:.2f} byte edits over the mapped mass), {r.unmapped_mass:.0%} unmapped "
            f"(outside the top-{rows.settings.top_k} without a twin); KL of the mapped p, renormalized, against q")


def _mined_caveat(rows: PairRows, i: int, values: dict) -> str | None:
    kl = values.get("kl_mined")
    if kl is None or np.isfinite(kl):
        return None
    if np.isnan(kl):
        return "kl_mined undefined: no teacher token here has a spelling to map (ids without text)"
    return "kl_mined infinite: the student gives 0 to a token the mapped teacher puts mass on"


def _sinkhorn(part: str) -> Callable[[PairRows], np.ndarray]:
    return lambda rows: np.array([getattr(r, part) for r in rows.sinkhorn], dtype=np.float64)


def _mined_on(settings: Any) -> bool:
    return bool(settings.mined)


def _sinkhorn_on(settings: Any) -> bool:
    return settings.sinkhorn_epsilon is not None


def _sinkhorn_explain(rows: PairRows, i: int) -> str:
    r = rows.sinkhorn[i]
    cost = rows.settings.sinkhorn_cost
    return (f"entropic OT, epsilon {r.epsilon:g} x the largest cost (reg {r.reg:.3g}), {cost} cost, "
            f"top-{rows.cost_k(cost)} + rest: converged in {r.iterations:,} iterations (marginal error "
            f"{r.marginal_error:.1g}); >= the exact token OT on the same support, equal as epsilon -> 0")


def _sinkhorn_caveat(rows: PairRows, i: int, values: dict) -> str | None:
    r = rows.sinkhorn[i]
    if r.converged:
        return None
    return (f"sinkhorn_ot undefined: Sinkhorn (epsilon {r.epsilon:g}) did not converge in {r.iterations:,} "
            f"iterations (marginal error {r.marginal_error:.3g}); raise sinkhorn_epsilon or lower the top-k")


def _costs_has(cost: str) -> Callable[[Any], bool]:
    return lambda settings: cost in settings.costs


def _truncated(cost: str, side: str) -> Measure:
    """The mass a side pools in its rest bucket for the ``cost`` token OT (a companion column)."""
    p, i = ("p", "i") if side == "teacher" else ("q", "j")
    k_field, abbrev = ("top_k", "str") if cost == "string" else ("edit_top_k", cost)
    return Measure(f"{cost}_{side}_truncated", f"{side} mass in the rest bucket ({cost} cost)",
                   f"cut_{side[0]}_{abbrev}", "[0, 1]", "mass", rf"\sum_{{{i} \notin \mathrm{{top}}k}} {p}_{i}",
                   f"the {side}'s mass pooled outside its top-k", "-", _token_ot(cost, side), views=(),
                   where=("position",), companion_of=f"token_ot_{cost}", settings=(k_field, "costs"),
                   enabled=_costs_has(cost))


def _builtin() -> list[Measure]:
    cov = dict(scale="[0, 1]", unit="mass", companion_of="kl_shared", views=("cli",), where=("position",),
               lower_is_better=False, reference="-")
    return [
        Measure("kl_shared", "KL(p||q) on shared strings", "KL_shared", "[0, inf)", "nats",
                r"\sum_s \tilde p_s \log(\tilde p_s / \tilde q_s),\ \tilde p, \tilde q \text{ renormalized on the shared strings}",
                "KL on the token strings both vocabularies have (matched on exact bytes), each side renormalized "
                "there; the covered masses say how much it sees",
                "Kullback & Leibler 1951; restricted as in cross-tokenizer KD baselines", _kl_shared, panel="nats",
                color="#009E73", explain=_kl_shared_explain, caveat=_kl_shared_caveat),
        Measure("kl_teacher_coverage", "teacher mass on shared strings", "cov_t", formula=r"\sum_{i: t_i \in S} p_i",
                description="the mass the teacher puts on the strings both vocabularies have",
                compute=_coverage("teacher"), **cov),
        Measure("kl_student_coverage", "student mass on shared strings", "cov_s", formula=r"\sum_{j: s_j \in S} q_j",
                description="the mass the student puts on the strings both vocabularies have",
                compute=_coverage("student"), **cov),
        Measure("kl_mined", "KL(p||q) after MinED mapping", "KL_mined", "[0, inf)", "nats",
                r"\sum_j \tilde p_j \log(\tilde p_j / q_j),\ \tilde p_j \propto \sum_{i: m(i) = j} p_i,\ "
                r"m(i) = \arg\min_j \mathrm{lev}(t_i, s_j)",
                "FuseLLM's baseline: each teacher token mapped to the student token with the nearest spelling (byte "
                "edit distance; exact twins for the whole vocabulary, the nearest spelling for the top-k), the mapped "
                "mass summed there, then KL; the coverage says how much mapped exactly",
                "Wan et al. 2024, ICLR (FuseLLM, MinED mapping)", _mined("value"), panel="nats", color="#000000",
                views=("summary", "cli", "page", "chart"),  # no card: the Real page's four fit at 1024 px
                settings=("top_k",), enabled=_mined_on, explain=_mined_explain, caveat=_mined_caveat),
        Measure("mined_exact_coverage", "teacher mass mapped to an identical spelling (MinED)", "mined_ex",
                formula=r"\sum_{i: \mathrm{lev}(t_i, s_{m(i)}) = 0} p_i",
                description="the teacher mass MinED maps to a student token of the same bytes",
                compute=_mined("exact_mass"), settings=("top_k",), enabled=_mined_on,
                **{**cov, "companion_of": "kl_mined"}),
        Measure("mined_approx_coverage", "teacher mass mapped to a nearest, different, spelling (MinED)", "mined_ap",
                formula=r"\sum_{i \in \mathrm{top}k: \mathrm{lev}(t_i, s_{m(i)}) > 0} p_i",
                description="the teacher mass MinED maps to a student token of a different spelling",
                compute=_mined("approx_mass"), settings=("top_k",), enabled=_mined_on,
                **{**cov, "companion_of": "kl_mined"}),
        Measure("mined_mean_edit", "mean byte edits of the MinED mapping", "mined_ed", "[0, inf)", "",
                r"\sum_{i \in M} p_i \, \mathrm{lev}(t_i, s_{m(i)}) / \sum_{i \in M} p_i",
                "the byte edit distance of the mapped teacher mass, weighted by mass (exact matches count 0)", "-",
                _mined("mean_distance"), views=("cli",), where=("position",), companion_of="kl_mined",
                settings=("top_k",), enabled=_mined_on),
        Measure("kl", "KL(p||q)", "KL", "[0, inf)", "nats", r"\sum_i p_i \log(p_i / q_i)", "forward KL",
                "Kullback & Leibler 1951", _plain("kl_divergence"), needs_shared_vocab=True, where=("pair",),
                explain=_plain_explain("forward KL")),
        Measure("reverse_kl", "KL(q||p)", "KL_rev", "[0, inf)", "nats", r"\sum_i q_i \log(q_i / p_i)", "reverse KL",
                "Kullback & Leibler 1951", _plain("reverse_kl_divergence"), needs_shared_vocab=True, where=("pair",),
                explain=_plain_explain("reverse KL")),
        Measure("js", "JS(p, q)", "JS", "[0, log 2]", "nats",
                r"\tfrac12 \mathrm{KL}(p \| m) + \tfrac12 \mathrm{KL}(q \| m),\ m = \tfrac12 (p + q)", "Jensen-Shannon",
                "Lin 1991", _plain("js_divergence"), needs_shared_vocab=True, where=("pair",),
                explain=_plain_explain("Jensen-Shannon")),
        Measure("tv", "TV(p, q)", "TV", "[0, 1]", "", r"\tfrac12 \sum_i |p_i - q_i|", "total variation, same tokens",
                "-", _plain("total_variation"), needs_shared_vocab=True, where=("pair",),
                explain=_plain_explain("total variation, same tokens")),
        Measure("uld", "ULD (closed form)", "ULD", "[0, 2]", "",
                r"\sum_{i=1}^{n} |p_{(i)} - q_{(i)}|,\ n = \max(V_t, V_s), \text{ sorted descending, zero-padded}",
                "sorted L1, identity blind", _ULD_REF, lambda rows: rows.uld, panel="uld", color="#E69F00",
                views=("summary", "cli", "page")),
        Measure("value_ot", "n * W1 value-space OT (POT)", "n*W1", "[0, 2]", "",
                r"n \, W_1\big(\tfrac1n \sum_i \delta_{p_i}, \tfrac1n \sum_j \delta_{q_j}\big)",
                "exact OT between the probability values: equals ULD (an independent check of the closed form)",
                _POT_REF, _value_ot, panel="uld", views=("summary", "cli"), settings=("value_ot",),
                enabled=lambda s: bool(s.value_ot),
                explain=lambda rows, i: ("exact, equals ULD" if not rows.exact_plans or rows.small
                                         else f"n > {MAX_SUPPORT}: use the closed form")),
        Measure("hybrid", "hybrid ULD (GOLD)", "hybrid", "[0, inf)", "nats + L1",
                r"w_m D(P, Q) + w_u \sum_i |p^u_{(i)} - q^u_{(i)}|",
                "GOLD's hybrid: JSD (or KL) on the shared strings + sorted L1 on the rest", _GOLD_REF,
                _hybrid_part("value"), panel="nats", color="#CC79A7", settings=("hybrid",), explain=_hybrid_explain),
        Measure("hybrid_matched", "hybrid: matched strings' divergence", "hyb_m", "[0, inf)", "nats",
                "D(P, Q)", "the hybrid's divergence on the shared strings (unweighted)", _GOLD_REF,
                _hybrid_part("matched"), where=("position",), views=(), companion_of="hybrid", settings=("hybrid",)),
        Measure("hybrid_unmatched", "hybrid: unmatched sorted L1", "hyb_u", "[0, 2]", "",
                r"\sum_i |p^u_{(i)} - q^u_{(i)}|", "the hybrid's sorted L1 on the unmatched entries (unweighted)",
                _GOLD_REF, _hybrid_part("unmatched"), where=("position",), views=(), companion_of="hybrid",
                settings=("hybrid",)),
        Measure("uld_half", "ULD / 2", "ULD/2", "[0, 1]", "", r"\tfrac12 \mathrm{ULD}(p, q)",
                "= exact rank-space OT: the token-space OT if token identities could be relabelled freely, a "
                "lower bound of the 0/1 token OT", _ULD_REF, _uld_half, panel="unit", color="#D55E00",
                explain=lambda rows, i: (
                    "exact OT if token identities could be relabelled freely: a lower bound of the 0/1 token OT"
                    + ("" if not rows.exact_plans or rows.small else f" (n > {MAX_SUPPORT}: ULD / 2 from the closed form)"))),
        Measure("token_ot_string", "token-space OT, string cost (POT)", "OT_str", "[0, 1]", "",
                r"\min_{\gamma \in \Pi(p, q)} \sum_{ij} \gamma_{ij} [t_i \ne s_j]",
                "exact OT between the TOKENS, cost 0 for the same string, 1 otherwise (top-k + a rest bucket): "
                "the mass that cannot stay on its own token", _POT_REF, _token_ot("string"), panel="unit",
                color="#0072B2", settings=("top_k", "costs"), enabled=_costs_has("string"),
                explain=_token_ot_explain("string"), caveat=_token_ot_caveat),
        Measure("token_ot_edit", "token-space OT, edit cost (POT)", "OT_edit", "[0, 1]", "",
                r"\min_{\gamma \in \Pi(p, q)} \sum_{ij} \gamma_{ij} \, \mathrm{lev}(t_i, s_j)",
                "exact OT between the tokens with the normalized Levenshtein distance of their strings as cost "
                "(top-k + a rest bucket)", _POT_REF, _token_ot("edit"), panel="unit", color="#56B4E9",
                views=("summary", "cli"), settings=("edit_top_k", "costs"), enabled=_costs_has("edit"),
                explain=_token_ot_explain("edit")),
        *(_truncated(cost, side) for cost in ("string", "edit") for side in ("teacher", "student")),
        Measure("sinkhorn_ot", "entropic token OT (Sinkhorn, POT)", "OT_sk", "[0, 1]", "",
                r"\langle P_\varepsilon, C \rangle,\ P_\varepsilon = \arg\min_{P \in \Pi(p, q)} "
                r"\langle P, C \rangle - \varepsilon \max(C)\, H(P)",
                "the linear cost of the entropic (Sinkhorn) plan on the token OT's support and cost: above the "
                "exact token OT, equal to it as epsilon -> 0; the plan blurs as epsilon grows",
                "Cuturi 2013, NeurIPS (Sinkhorn distances); " + _POT_REF, _sinkhorn("value"), panel="unit",
                color="#F0E442", views=("summary", "cli", "page"), settings=_SINKHORN_SETTINGS,
                enabled=_sinkhorn_on, explain=_sinkhorn_explain, caveat=_sinkhorn_caveat),
        Measure("sinkhorn_iterations", "Sinkhorn iterations used", "it_sk", "[1, inf)", "",
                r"\#\{\text{Sinkhorn iterations}\}",
                "the iterations the entropic token OT used (at its limit: not converged)", "-", _sinkhorn("iterations"),
                views=(), where=("position",), companion_of="sinkhorn_ot", settings=_SINKHORN_SETTINGS,
                enabled=_sinkhorn_on),
    ]


for _m in _builtin():
    MEASURES[_m.key] = _m
del _m
