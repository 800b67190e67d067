"""Tidy data for pictures: one long-format DataFrame per kind of figure.

The matplotlib figures (:mod:`uld_explorer.plots`: exports, notebooks) and the interactive Altair
charts (:mod:`uld_explorer.charts`: the app) draw from these frames, so the ordering, padding and
labelling of a figure is decided once, here. Every frame is plain pandas; every number in it comes
from the library's math.

One job: turning the library's results into the rows a picture draws, and the orderings that link
two pictures (a rank and the tokens holding it: :func:`tokens_at_rank`, :func:`rank_of_token`,
:func:`lit_cells`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .distributions import as_float64, check_distribution, top_k_index

__all__ = [
    "ALIGNMENT_VARIANTS",
    "PlanLayout",
    "RANK_HEAD",
    "rank_bins",
    "alignment_effects_frame",
    "alignment_effects_summary",
    "groups_frame",
    "kl_terms_frame",
    "lit_cells",
    "lens_push_frame",
    "plan_frame",
    "positions_frame",
    "rank_of_token",
    "sorted_frame",
    "token_plan_layout",
    "token_spans_frame",
    "tokens_at_rank",
    "top_k_frame",
    "value_plan_layout",
]


def _vector(x: Any, name: str, subprobability: bool = False) -> np.ndarray:
    x = check_distribution(x, name, subprobability=subprobability)
    if x.ndim != 1:
        raise ValueError(f"{name} must be ONE distribution of shape (V,) (got shape {tuple(x.shape)})")
    return as_float64(x)


def top_k_frame(
    p: Any, q: Any, teacher_tokens: Sequence[str], student_tokens: Sequence[str], k: int = 10,
    shared: tuple[set, set] | None = None,
):
    """The ``k`` most probable tokens of each side, long format.

    Parameters
    ----------
    p : array, shape (V_t,);  q : array, shape (V_s,)
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s (labels)
    k : int
    shared : (set of teacher ids, set of student ids), optional
        Ids whose string both vocabularies have (marked in the ``shared`` column).

    Returns
    -------
    DataFrame
        Columns ``side`` ("teacher" | "student"), ``rank`` (1 = most probable), ``id``, ``token``,
        ``prob``, ``shared`` (bool or None when unknown).

    Examples
    --------
    >>> f = top_k_frame([0.1, 0.6, 0.3], [0.5, 0.5], ["a", "b", "c"], ["b", "x"], k=2)
    >>> f[["side", "rank", "token", "prob"]].values.tolist()
    [['teacher', 1, 'b', 0.6], ['teacher', 2, 'c', 0.3], ['student', 1, 'b', 0.5], ['student', 2, 'x', 0.5]]
    """
    import pandas as pd

    rows = []
    for side, x, toks, sh in (("teacher", _vector(p, "p"), teacher_tokens, shared and shared[0]),
                              ("student", _vector(q, "q"), student_tokens, shared and shared[1])):
        for r, i in enumerate(top_k_index(x, min(int(k), x.size)), 1):
            rows.append({"side": side, "rank": r, "id": int(i), "token": str(toks[i]), "prob": float(x[i]),
                         "shared": None if sh is None else int(i) in sh})
    return pd.DataFrame(rows, columns=["side", "rank", "id", "token", "prob", "shared"])


#: Ranks the sorted curves keep one by one; beyond, a bin holds at most 1/RANK_HEAD of its rank
#: (~1,900 bins for 151,936 ranks: finer than a pixel on a linear and on a log axis).
RANK_HEAD = 256


def rank_bins(ps: np.ndarray, qs: np.ndarray, breaks: Sequence[int] = ()):
    """Bins of ranks for drawing two sorted curves (n,) with the area between them EXACT.

    Every rank up to :data:`RANK_HEAD` is its own bin; beyond, the bins grow geometrically (each at
    most ``rank / RANK_HEAD`` wide). A bin never holds both signs of ``ps - qs`` (the curves'
    crossings, and ``breaks``, start new bins), so with each curve's MEAN over the bin,
    ``width * |mean(ps) - mean(qs)| = sum |ps - qs|`` over the bin: the shaded area between the
    drawn curves is the ULD to rounding. Neighbouring bins with equal values are then one bin
    (a zero-padded tail where both are 0, runs of ties: lossless).

    Returns
    -------
    starts, widths : ndarray of int64, shape (B,)
        First rank (0-based) and number of ranks of each bin.
    teacher, student : ndarray of float64, shape (B,)
        Each curve's mean over the bin.
    """
    n = ps.size
    starts = np.arange(min(n, RANK_HEAD), dtype=np.int64)
    if n > RANK_HEAD:
        step = np.log1p(1.0 / RANK_HEAD)
        geo = np.floor(RANK_HEAD * np.exp(step * np.arange(math.ceil(math.log(n / RANK_HEAD) / step) + 1)))
        sign = np.sign(ps - qs)
        crossings = np.flatnonzero(sign[1:] != sign[:-1]) + 1
        extra = np.asarray([b for b in breaks if 0 < b < n], dtype=np.int64)
        starts = np.unique(np.concatenate([starts, geo.astype(np.int64), crossings, extra]))
        starts = starts[starts < n]
    widths = np.diff(np.append(starts, n))
    teacher = np.add.reduceat(ps, starts) / widths
    student = np.add.reduceat(qs, starts) / widths
    new = np.ones(starts.size, dtype=bool)
    new[1:] = (teacher[1:] != teacher[:-1]) | (student[1:] != student[:-1])
    starts, teacher, student = starts[new], teacher[new], student[new]
    return starts, np.diff(np.append(starts, n)), teacher, student


def kl_terms_frame(p: Any, q: Any, tokens: Sequence[str]):
    """KL(p || q) token by token over ONE vocabulary: columns ``token``, ``teacher`` (p_i),
    ``student`` (q_i), ``term`` (:math:`p_i \\log(p_i / q_i)`, 0 where p_i = 0; its sum is KL),
    ``sign`` (``student below`` where the term is > 0, else ``student above``).

    >>> kl_terms_frame([0.5, 0.5], [0.25, 0.75], ["a", "b"])["term"].round(4).tolist()
    [0.3466, -0.2027]
    """
    import pandas as pd

    p, q = _vector(p, "p"), _vector(q, "q")
    if p.shape != q.shape or len(tokens) != p.size:
        raise ValueError(f"one vocabulary: p {p.shape}, q {q.shape} and {len(tokens)} tokens must have one length")
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(p > 0, p * np.log(p / q), 0.0)
    return pd.DataFrame({"token": list(map(str, tokens)), "teacher": p, "student": q, "term": term,
                         "sign": np.where(term > 0, "student below the teacher", "student above the teacher")})


def sorted_frame(p: Any, q: Any, n_max: int | None = None, *, subprobability: bool = False, binned: bool = False):
    """Both distributions sorted descending and zero-padded to ``n = max(V_t, V_s)``: the two
    curves the ULD closed form compares rank by rank (``subprobability``: merged groups' vectors).

    ``binned=True``: one row per BIN of ranks instead of per rank (every rank up to
    :data:`RANK_HEAD`, then geometrically wider bins, each curve's mean over its bin; no bin holds
    a crossing of the curves, so ``sum((high - low) * width)`` is still exactly the ULD over the
    kept ranks). 151,936 ranks become ~1,900 rows, which an Altair chart can embed (it refuses
    more than 5,000 rows).

    Returns
    -------
    DataFrame
        Columns ``rank`` (1..n, or 1..n_max; binned: each bin's first rank), ``teacher``,
        ``student``, ``low``, ``high`` (``min`` / ``max`` of the two: the shaded band whose area
        ``sum((high - low) * width)`` is ULD over the kept ranks), ``width`` (ranks in the row: 1
        unless binned).

    Examples
    --------
    >>> sorted_frame([0.2, 0.5, 0.3], [0.9, 0.1]).values.tolist()[0]
    [1.0, 0.5, 0.9, 0.5, 0.9, 1.0]
    """
    import pandas as pd

    from .distributions import sorted_probs

    p, q = _vector(p, "p", subprobability), _vector(q, "q", subprobability)
    ps, qs = sorted_probs(p, q, subprobability=subprobability)
    n = ps.size if n_max is None else min(int(n_max), ps.size)
    ps, qs = ps[:n], qs[:n]
    if binned:  # the zero padding starts a bin of its own
        starts, widths, ps, qs = rank_bins(ps, qs, breaks=(min(p.size, q.size),))
        rank, width = starts + 1.0, widths.astype(float)
    else:
        rank, width = np.arange(1, n + 1, dtype=float), np.ones(n)
    return pd.DataFrame({"rank": rank, "teacher": ps, "student": qs,
                         "low": np.minimum(ps, qs), "high": np.maximum(ps, qs), "width": width})


def tokens_at_rank(p: Any, q: Any, rank: int) -> tuple[int | None, int | None]:
    """The teacher's and the student's tokens (vocabulary indices) holding the ``rank``-th largest
    probability (1-based; ties by index, as :func:`top_k_frame` and ``value_plan_layout`` order
    them): the pair ULD compares at that rank of the sorted curves; None for a side whose rank
    falls in its zero padding (or beyond n = max(V_t, V_s)).

    >>> tokens_at_rank([0.1, 0.6, 0.3], [0.8, 0.2], 1), tokens_at_rank([0.1, 0.6, 0.3], [0.8, 0.2], 3)
    ((1, 0), (0, None))
    """
    p, q = _vector(p, "p"), _vector(q, "q")
    r = int(rank)
    if r < 1:
        raise ValueError(f"rank must be at least 1 (got {rank})")
    pick = lambda x: int(top_k_index(x, r)[r - 1]) if r <= x.size else None  # noqa: E731 - ties by index
    return pick(p), pick(q)


def rank_of_token(x: Any, index: int) -> int:
    """The rank (1-based) of token ``index`` in ``x`` sorted largest first (ties by index): the
    inverse of :func:`tokens_at_rank` on one side.

    >>> rank_of_token([0.1, 0.6, 0.3], 0)
    3
    """
    x = _vector(x, "x")
    if not 0 <= int(index) < x.size:
        raise ValueError(f"token index {index} is outside the vocabulary of {x.size} tokens")
    i = int(index)
    return 1 + int(np.count_nonzero(x > x[i])) + int(np.count_nonzero(x[:i] == x[i]))  # ties by index


@dataclass(frozen=True)
class PlanLayout:
    """How to draw a transport plan: which plan rows / columns, in which order, with which labels.

    Attributes
    ----------
    rows, cols : list of int
        Indices into the plan, in drawing order.
    row_labels, col_labels : list of str
    highlight : ndarray of bool, shape (len(rows), len(cols))
        Cells to mark (cost 0: the same token string).
    highlight_label : str
    """

    rows: list[int]
    cols: list[int]
    row_labels: list[str]
    col_labels: list[str]
    highlight: np.ndarray
    highlight_label: str


def token_plan_layout(
    result: Any, teacher_tokens: Sequence[str], student_tokens: Sequence[str], order: str = "vocab"
) -> PlanLayout:
    """The layout of a top-k token-space plan (:func:`~uld_explorer.token_space_ot_top_k`); the
    rest bucket last, shown only when it holds mass.

    ``order="vocab"``: the kept tokens in VOCABULARY order (with one shared vocabulary, as in the
    playground, the cost-0 cells then lie on the diagonal). ``order="matched"``, for two different
    vocabularies: first the teacher tokens whose same-string twin the student kept, by the
    teacher's probability, each twin in the same position on the other axis (the matched pairs
    on the diagonal, top left); then the teacher's other kept tokens and the student's other kept
    tokens, each by probability.

    Examples
    --------
    >>> from uld_explorer import token_space_ot_top_k
    >>> r = token_space_ot_top_k([0.1, 0.6, 0.3], [0.5, 0.5], ["a", "b", "c"], ["b", "a"], k=2)
    >>> token_plan_layout(r, ["a", "b", "c"], ["b", "a"]).row_labels
    ['b', 'c', 'rest']
    >>> token_plan_layout(r, ["a", "b", "c"], ["b", "a"], order="matched").col_labels
    ['b', 'a']
    >>> r = token_space_ot_top_k([0.5, 0.3, 0.2], [0.2, 0.3, 0.5], ["a", "b", "c"], ["x", "b", "c"], k=3)
    >>> lay = token_plan_layout(r, ["a", "b", "c"], ["x", "b", "c"], order="matched")
    >>> lay.row_labels, lay.col_labels  # 'a' has no twin: after the matched pairs
    (['b', 'c', 'a'], ['b', 'c', 'x'])
    """
    if order not in ("vocab", "matched"):
        raise ValueError(f"order must be 'vocab' or 'matched' (got {order!r})")
    t_index, s_index = np.asarray(result.teacher_index), np.asarray(result.student_index)
    cost = np.asarray(result.cost)
    if order == "vocab":
        rows = [int(i) for i in np.argsort(t_index, kind="stable")]
        cols = [int(j) for j in np.argsort(s_index, kind="stable")]
    else:  # the plan's kept tokens come most probable first already
        rows, cols, used = [], [], set()
        for i in range(t_index.size):  # each teacher token takes its most probable free twin
            free = [int(j) for j in np.flatnonzero(cost[i, : s_index.size] == 0) if int(j) not in used]
            if free:
                rows.append(i)
                cols.append(free[0])
                used.add(free[0])
        matched = set(rows)
        rows += [i for i in range(t_index.size) if i not in matched]
        cols += [j for j in range(s_index.size) if j not in used]
    if result.teacher_truncated_mass > 0:
        rows.append(t_index.size)  # the rest bucket is the last row of the plan
    if result.student_truncated_mass > 0:
        cols.append(s_index.size)
    row_names = [str(teacher_tokens[i]) for i in t_index] + ["rest"]
    col_names = [str(student_tokens[j]) for j in s_index] + ["rest"]
    marked = cost[np.ix_(rows, cols)] == 0
    return PlanLayout(rows, cols, [row_names[i] for i in rows], [col_names[j] for j in cols], marked,
                      "cost 0 (same token string)")


def value_plan_layout(result: Any, p: Any, q: Any, teacher_tokens: Sequence[str], student_tokens: Sequence[str],
                      order: str = "vocab") -> PlanLayout:
    """The layout of the value-space plan (:func:`~uld_explorer.value_space_ot`, ``n x n``).

    ``order="vocab"``: rows and columns in vocabulary order (the zero padding last, ``pad``):
    tokens are matched by probability VALUE, not identity, so the plan looks scattered.
    ``order="rank"``: rows by the teacher's probability and columns by the student's, largest
    first. The closed form's own pairing (the i-th largest with the i-th largest, the monotone
    sorted-to-sorted plan) is then the diagonal; POT's plan is AN optimal pairing of the same
    cost, which keeps part of the diagonal and swaps the rest (with the cost ``|p_i - q_j|``, two
    values moving the same way can exchange partners at no extra cost). Marked cells: the same
    token string.

    Examples
    --------
    >>> from uld_explorer import value_space_ot
    >>> r = value_space_ot([0.7, 0.3], [0.2, 0.5, 0.3])
    >>> lay = value_plan_layout(r, [0.7, 0.3], [0.2, 0.5, 0.3], ["a", "b"], ["b", "a", "c"], order="rank")
    >>> lay.row_labels, lay.col_labels
    (['a', 'b', 'pad'], ['a', 'c', 'b'])
    """
    if order not in ("vocab", "rank"):
        raise ValueError(f"order must be 'vocab' or 'rank' (got {order!r})")
    plan = np.asarray(result.plan)
    n = plan.shape[0]
    V_t, V_s = len(teacher_tokens), len(student_tokens)
    if plan.shape != (n, n) or n != max(V_t, V_s):
        raise ValueError(
            f"the value-space plan must be (n, n) with n = max(V_t, V_s) = {max(V_t, V_s)} "
            f"(got {plan.shape} for {V_t} teacher and {V_s} student tokens)"
        )
    row_names = [str(t) for t in teacher_tokens] + ["pad"] * (n - V_t)
    col_names = [str(t) for t in student_tokens] + ["pad"] * (n - V_s)
    ids: dict[str, int] = {}
    t_id = np.array([ids.setdefault(str(t), len(ids)) for t in teacher_tokens] + [-1] * (n - V_t))
    s_id = np.array([ids.setdefault(str(t), len(ids)) for t in student_tokens] + [-2] * (n - V_s))
    if order == "vocab":
        rows, cols = list(range(n)), list(range(n))
    else:
        pp = np.pad(_vector(p, "p"), (0, n - V_t))
        qq = np.pad(_vector(q, "q"), (0, n - V_s))
        rows = [int(i) for i in np.argsort(-pp, kind="stable")]
        cols = [int(j) for j in np.argsort(-qq, kind="stable")]
    same = t_id[np.asarray(rows)][:, None] == s_id[np.asarray(cols)][None, :]  # padding never matches
    return PlanLayout(rows, cols, [row_names[i] for i in rows], [col_names[j] for j in cols], same,
                      "same token string")


def lit_cells(layout: PlanLayout, teacher_token: str | None, student_token: str | None) -> tuple[int | None, int | None]:
    """Linked views: the drawing positions (row, column) of a teacher and a student token in a
    plan's layout (None: not drawn, or no token), for :func:`~uld_explorer.charts.chart_plan`'s ``lit``.

    >>> lay = PlanLayout([0, 1], [1, 0], ["a", "b"], ["y", "x"], np.zeros((2, 2), bool), "")
    >>> lit_cells(lay, "b", "x"), lit_cells(lay, None, "z")
    ((1, 1), (None, None))
    """
    def find(labels: list[str], token: str | None) -> int | None:
        return labels.index(token) if token is not None and token in labels else None

    return find(layout.row_labels, teacher_token), find(layout.col_labels, student_token)


def plan_frame(plan: Any, layout: PlanLayout):
    """A plan in long format for a heatmap: one row per drawn cell.

    Returns
    -------
    DataFrame
        Columns ``teacher`` (row label), ``student`` (column label), ``row``, ``col`` (drawing
        positions), ``mass``, ``marked`` (bool).
    """
    import pandas as pd

    P = as_float64(plan)[np.ix_(layout.rows, layout.cols)]
    r, c = np.meshgrid(np.arange(len(layout.rows)), np.arange(len(layout.cols)), indexing="ij")
    return pd.DataFrame({
        "teacher": np.asarray(layout.row_labels, dtype=object)[r.ravel()],
        "student": np.asarray(layout.col_labels, dtype=object)[c.ravel()],
        "row": r.ravel(), "col": c.ravel(), "mass": P.ravel(), "marked": layout.highlight.ravel(),
    })


def positions_frame(table: Any, measures: Sequence[str] | None = None):
    """A comparison table's per-position measures in long format, for a chart over positions.

    Parameters
    ----------
    table : ComparisonTable
    measures : sequence of str, optional
        Measure keys (:data:`~uld_explorer.measures.MEASURES`); default: those the table computed
        that the registry charts (``"chart"`` in their ``views``), in the registry's order.

    Returns
    -------
    DataFrame
        Columns ``index`` (row), ``position`` (``"12 ' Paris'"``: the row and the text it
        predicts), ``label``, ``kind``, ``measure`` (the key), ``name`` (its title), ``panel``
        (its scale group's title, :data:`~uld_explorer.measures.PANELS`), ``value`` (None where
        undefined).
    """
    import pandas as pd

    from .measures import MEASURES, PANELS

    keys = ([k for k in table.measures if MEASURES[k].shown_in("chart")] if measures is None else list(measures))
    ms = [MEASURES[k] for k in keys]
    rows = []
    for r in table:
        position = f"{r.index} {r.label!r}" if r.kind == "token" else f"{r.index} {r.label}"
        for m in ms:
            v = r.values.get(m.key)
            rows.append({"index": r.index, "position": position, "label": r.label, "kind": r.kind,
                         "measure": m.key, "name": m.title,
                         "panel": PANELS.get(m.panel, f"{m.scale_unit}: {m.short}"),
                         "value": None if v is None or not np.isfinite(v) else float(v)})
    return pd.DataFrame(rows, columns=["index", "position", "label", "kind", "measure", "name", "panel", "value"])


def lens_push_frame(frame: Any):
    """A :func:`~uld_explorer.lens.lens_frame` (one column ``push_<key>`` per loss) in long format,
    for the lens's chart and figure: one row per (student token, loss).

    Returns
    -------
    DataFrame
        Columns ``rank``, ``id``, ``token`` (``id <n>`` when the lens frame has none), ``prob``,
        ``target`` (CE's token), ``loss`` (the key), ``label`` (its name,
        :data:`~uld_explorer.lens.LENS_LOSSES`), ``push`` (:math:`-\\partial L / \\partial z`),
        ``direction`` (``"up"``, ``"down"`` or ``"none"``). Losses undefined at this row (NaN) are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"rank": [1, 2], "id": [4, 0], "token": ["a", "b"], "prob": [0.6, 0.4],
    ...                   "target": [False, True], "push_ce": [-0.6, 0.6], "push_uld": [0.1, -0.1]})
    >>> lens_push_frame(f)[["token", "loss", "push", "direction"]].values.tolist()
    [['a', 'ce', -0.6, 'down'], ['b', 'ce', 0.6, 'up'], ['a', 'uld', 0.1, 'up'], ['b', 'uld', -0.1, 'down']]
    """
    import pandas as pd

    from .lens import LENS_LOSSES

    cols = [c for c in frame.columns if c.startswith("push_")]
    keys = [c[len("push_"):] for c in cols]
    n = len(frame)
    tokens = frame["token"].astype(str).to_numpy() if "token" in frame else np.array([f"id {i}" for i in frame["id"]])
    push = frame[cols].to_numpy(dtype=float).T.reshape(-1) if cols else np.zeros(0)  # loss-major
    keep = np.isfinite(push)
    tile = lambda x: np.tile(np.asarray(x), len(cols))[keep]  # noqa: E731
    out = pd.DataFrame({
        "rank": tile(frame["rank"]), "id": tile(frame["id"]), "token": tile(tokens), "prob": tile(frame["prob"]),
        "target": tile(frame["target"]), "loss": np.repeat(np.array(keys, dtype=object), n)[keep],
        "label": np.repeat(np.array([LENS_LOSSES[k].label if k in LENS_LOSSES else k for k in keys], dtype=object),
                           n)[keep],
        "push": push[keep],
        "direction": np.where(push > 0, "up", np.where(push < 0, "down", "none"))[keep],
    })
    return out


def _shown(s: str) -> str:
    """A token's text with its whitespace made visible (space ``·``, newline ``↵``, tab ``→``)."""
    return s.replace(" ", "·").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


#: Characters of a token's label that fit in the box of one byte (the pictures draw ~2.5).
CHARS_PER_BYTE = 2.5


def _fits(shown: str, n_bytes: int) -> str:
    """The label drawn in a token's box: its text, or ``…`` when that is wider than the box."""
    return shown if len(shown) <= CHARS_PER_BYTE * max(1, n_bytes) else "…"


def token_spans_frame(report: Any, line_bytes: int = 48):
    """Both tokenizations of one text as byte spans, long format: what the tokenizer-mismatch page
    and :func:`~uld_explorer.plots.plot_token_spans` draw.

    A byte offset is a *common boundary* when both tokenizations start (or end) a token there
    (``report.common_boundaries``). A token *agrees* when the other side has a token with exactly
    the same bytes (both its ends being common boundaries is not enough: the other side may cut
    between them). The *segment* of a token is the
    interval between two consecutive common boundaries that holds it: segments are the
    byte-offset groups of the whole text (the alignment's groups skip tokens nothing predicts).
    Lines wrap at common boundaries so a segment is never cut (one longer than ``line_bytes``
    gets a line of its own).

    Parameters
    ----------
    report : TokenizationReport
        From :func:`~uld_explorer.text.tokenization_report`.
    line_bytes : int
        Width of a line in bytes (> 0).

    Returns
    -------
    DataFrame
        One row per (side, token): ``side`` ("teacher" | "student"), ``token`` (index j),
        ``id``, ``text`` (the token's text), ``shown`` (whitespace made visible), ``label``
        (``shown``, or ``…`` where it is wider than the box: :data:`CHARS_PER_BYTE`), ``start``,
        ``end`` (half-open byte span in ``text.encode("utf-8")``), ``n_bytes``, ``agrees``,
        ``segment``, ``line``, ``x0``, ``x1`` (the span's offsets within its line).

    Examples
    --------
    >>> from uld_explorer.text import Tokenized, TokenizationReport
    >>> t = Tokenized("abcd", (0, 1, 2), ("ab", "c", "d"), ((0, 2), (2, 3), (3, 4)), None)
    >>> s = Tokenized("abcd", (0, 1, 2), ("a", "bc", "d"), ((0, 1), (1, 3), (3, 4)), None)
    >>> f = token_spans_frame(TokenizationReport(t, s, (0, 3, 4), [], 1.0))
    >>> f[["side", "text", "agrees", "segment"]].values.tolist()
    [['teacher', 'ab', False, 0], ['teacher', 'c', False, 0], ['teacher', 'd', True, 1], \
['student', 'a', False, 0], ['student', 'bc', False, 0], ['student', 'd', True, 1]]
    """
    import bisect

    import pandas as pd

    if int(line_bytes) <= 0:
        raise ValueError(f"line_bytes must be a positive number of bytes (got {line_bytes!r})")
    common = list(report.common_boundaries)
    breaks = [0]  # line starts: common boundaries, greedy, a segment never cut
    for prev, b in zip(common, common[1:]):
        if b - breaks[-1] > line_bytes and prev > breaks[-1]:
            breaks.append(prev)
    rows = []
    spans = {"teacher": set(report.student.byte_spans), "student": set(report.teacher.byte_spans)}  # the other side's
    for side, tok in (("teacher", report.teacher), ("student", report.student)):
        for j, ((a, b), i, s) in enumerate(zip(tok.byte_spans, tok.ids, tok.strings)):
            line = bisect.bisect_right(breaks, a) - 1
            segment = max(0, bisect.bisect_right(common, a) - 1)
            shown = _shown(s)
            rows.append({"side": side, "token": j, "id": int(i), "text": s, "shown": shown,
                         "label": _fits(shown, b - a), "start": a,
                         "end": b, "n_bytes": b - a, "agrees": (a, b) in spans[side], "segment": segment, "line": line,
                         "x0": a - breaks[line], "x1": b - breaks[line]})
    return pd.DataFrame(rows, columns=["side", "token", "id", "text", "shown", "label", "start", "end", "n_bytes",
                                       "agrees", "segment", "line", "x0", "x1"])


#: The three ways :func:`alignment_effects_frame` scores a teacher token, (alignment, merge).
ALIGNMENT_VARIANTS = {"positional": ("positional", None), "observed": ("byte-offset", "observed"),
                      "bayesian": ("byte-offset", "bayesian")}


def alignment_effects_frame(positional: Any, observed: Any, bayesian: Any):
    """What the choice of alignment (and merge) does to ULD, teacher token by teacher token.

    Each predicted teacher token ``j`` is scored three ways: the positional row that holds it
    (paired with the student's ``i``-th token, whatever text that token covers), and the
    byte-offset group that holds it under each merge (the group's ULD, shared by its tokens).

    Parameters
    ----------
    positional, observed, bayesian : ComparisonTable
        :func:`~uld_explorer.compare.compare_distributions` of the same distributions with
        ``alignment="positional"``, ``("byte-offset", merge="observed")`` and
        ``("byte-offset", merge="bayesian")``.

    Returns
    -------
    DataFrame
        One row per teacher token with a distribution (the next-token rows are left out):
        ``token`` (j), ``label`` (its text), ``start``, ``end`` (bytes);
        ``student_positional`` (the student token paired positionally; None past the shorter
        side), ``same_span`` (that pair covers the same bytes), ``uld_positional``;
        ``group`` (the byte-offset row), ``group_label``, ``group_teacher_tokens``,
        ``group_student_tokens`` (token counts), ``uld_observed``, ``uld_bayesian``;
        ``teacher_shared_mass``, ``student_shared_mass`` (mass each side's distribution in the
        positional pair puts on the strings both vocabularies share); ``shift`` =
        ``uld_observed - uld_positional`` (NaN where either is missing).
    """
    import pandas as pd

    for table, (alignment, merge) in zip((positional, observed, bayesian), ALIGNMENT_VARIANTS.values()):
        if table.alignment != alignment or (merge is not None and table.merge != merge):
            raise ValueError(
                f"alignment_effects_frame needs the tables (positional, byte-offset observed, byte-offset "
                f"bayesian) in that order; got a table with alignment={table.alignment!r}, merge={table.merge!r} "
                f"where ({alignment!r}, {merge!r}) was expected"
            )
    if positional.teacher.ids != observed.teacher.ids or observed.teacher.ids != bayesian.teacher.ids:
        raise ValueError("the three tables must compare the same tokenized text")
    pos = {r.teacher_tokens[0]: r for r in positional if r.kind == "token"}
    groups = {j: (r, b) for r, b in zip(observed, bayesian) if r.kind == "token" for j in r.teacher_tokens}
    tok = positional.teacher
    nan = float("nan")
    rows = []
    for j in range(tok.first_predicted, len(tok)):
        p, (g, gb) = pos.get(j), groups.get(j, (None, None))
        u_pos = p.uld if p is not None else nan
        u_obs = g.uld if g is not None else nan
        rows.append({
            "token": j, "label": tok.strings[j], "start": tok.byte_spans[j][0], "end": tok.byte_spans[j][1],
            "student_positional": p.student_strings[0] if p is not None else None,
            "same_span": p.same_span if p is not None else None, "uld_positional": u_pos,
            "group": g.index if g is not None else None, "group_label": g.label if g is not None else None,
            "group_teacher_tokens": len(g.teacher_tokens) if g is not None else 0,
            "group_student_tokens": len(g.student_tokens) if g is not None else 0,
            "uld_observed": u_obs, "uld_bayesian": gb.uld if gb is not None else nan,
            "teacher_shared_mass": p.kl_teacher_coverage if p is not None else nan,
            "student_shared_mass": p.kl_student_coverage if p is not None else nan,
            "shift": u_obs - u_pos,
        })
    return pd.DataFrame(rows)


def alignment_effects_summary(frame: Any) -> dict[str, float]:
    """The page's headline numbers from :func:`alignment_effects_frame`: mean ULD per way of
    aligning (over the teacher tokens each scores), the share of positional pairs that cover
    different bytes, and the mean ``|shift|`` on those pairs vs on the pairs that agree.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"uld_positional": [0.2, 1.0], "uld_observed": [0.2, 0.4], "uld_bayesian": [0.2, 0.5],
    ...                   "same_span": [True, False], "shift": [0.0, -0.6]})
    >>> {k: round(v, 3) for k, v in alignment_effects_summary(f).items()}
    {'uld_positional': 0.6, 'uld_observed': 0.3, 'uld_bayesian': 0.35, 'misaligned': 0.5, \
'abs_shift_misaligned': 0.6, 'abs_shift_aligned': 0.0}
    """
    import numpy as np

    out = {c: float(np.nanmean(frame[c])) if frame[c].notna().any() else float("nan")
           for c in ("uld_positional", "uld_observed", "uld_bayesian")}
    paired = frame[frame["same_span"].notna()]
    same = paired["same_span"].astype(bool)
    out["misaligned"] = float((~same).mean()) if len(paired) else float("nan")
    for name, part in (("abs_shift_misaligned", paired[~same]), ("abs_shift_aligned", paired[same])):
        s = part["shift"].abs().dropna()
        out[name] = float(s.mean()) if len(s) else float("nan")
    return out


def groups_frame(report: Any):
    """The byte-offset groups of a :class:`~uld_explorer.text.TokenizationReport`, one row each.

    Returns
    -------
    DataFrame
        ``group``, ``text`` (the bytes both sides' tokens cover), ``start``, ``end``,
        ``teacher_tokens``, ``student_tokens`` (the token texts, ``" | "``-joined: only tokens
        with a distribution take part), ``n_teacher``, ``n_student``, ``one_to_one`` (a single
        token on each side: no merge needed).
    """
    import pandas as pd

    t, s = report.teacher, report.student
    rows = [{"group": g, "text": a.label, "start": a.byte_span[0], "end": a.byte_span[1],
             "teacher_tokens": " | ".join(t.strings[j] for j in a.teacher_tokens),
             "student_tokens": " | ".join(s.strings[j] for j in a.student_tokens),
             "n_teacher": len(a.teacher_tokens), "n_student": len(a.student_tokens),
             "one_to_one": len(a.teacher_tokens) == len(a.student_tokens) == 1}
            for g, a in enumerate(report.groups)]
    return pd.DataFrame(rows, columns=["group", "text", "start", "end", "teacher_tokens", "student_tokens",
                                       "n_teacher", "n_student", "one_to_one"])
