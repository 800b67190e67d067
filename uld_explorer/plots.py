"""Matplotlib pictures of one teacher/student pair (the distributions, the sorted curves, OT plans)
and of distillation runs (their curves, the probe's next tokens).

One job: drawing the static figures (exports, notebooks); its length is one function per figure,
each with its parameters and an example. The interactive twins are in :mod:`uld_explorer.charts`.

Every function takes an optional ``ax`` and returns the :class:`matplotlib.figure.Figure` it drew
on. Without ``ax`` a new figure is built from :class:`matplotlib.figure.Figure` directly (not
``pyplot``), so nothing is registered in pyplot's global state and callers in threads (Streamlit)
need no locking. The math comes from the library (:func:`~uld_explorer.uld_distance`); this
module only draws.

Colours are fixed everywhere, from the Okabe-Ito palette (readable with every common colour-vision
deficiency): the teacher ``p`` is :data:`TEACHER_COLOR` (blue, solid), the student ``q``
:data:`STUDENT_COLOR` (orange, dashed), differences :data:`DIFF_COLOR` (vermillion). The
interactive charts (:mod:`uld_explorer.charts`) use the same.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle, StepPatch
from matplotlib.ticker import MaxNLocator

from .distributions import as_float64, check_distribution, sorted_probs
from .divergences import uld_distance
from .tidy import rank_bins, token_plan_layout, value_plan_layout

__all__ = [
    "AGREE_COLOR",
    "DIFFER_COLOR",
    "DIFF_COLOR",
    "PUSH_COLORS",
    "RUN_COLORS",
    "STUDENT_COLOR",
    "TEACHER_COLOR",
    "VERDICT_COLORS",
    "plot_alignment_effects",
    "plot_distributions",
    "plot_forest",
    "plot_lens",
    "plot_probe",
    "plot_run_curves",
    "plot_sorted_curves",
    "plot_token_plan",
    "plot_token_spans",
    "plot_transport_plan",
    "plot_value_plan",
]

#: Teacher colour (Okabe-Ito blue).
TEACHER_COLOR = "#0072B2"
#: Student colour (Okabe-Ito orange).
STUDENT_COLOR = "#E69F00"
#: Colour of the shaded ``|p_(i) - q_(i)|`` area and of marked cells (Okabe-Ito vermillion).
DIFF_COLOR = "#D55E00"

#: The lens's push on a logit: up bluish green, down vermillion, none grey (Okabe-Ito).
PUSH_COLORS = {"up": "#009E73", "down": "#D55E00", "none": "#999999"}

_MAX_TICK_LABELS = 14  # more token labels than this on one axis: show every k-th
#: Fonts that draw token text where matplotlib's default font has no glyph (CJK, mostly), tried in
#: this order through matplotlib's per-glyph font fallback; only the installed ones are used.
TEXT_FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                       "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
                       "Hiragino Sans", "Microsoft YaHei", "MS Gothic", "Arial Unicode MS")
_LEGEND_MARKER = 7.0  # points: the legend's outlined-cell marker, the same for 2 cells or 40


@functools.cache
def font_families() -> tuple[str, ...]:
    """The font family list every figure's text uses: matplotlib's default sans-serif font, then
    the installed :data:`TEXT_FALLBACK_FONTS` (matplotlib falls back glyph by glyph along the
    list; Debian: ``apt-get install fonts-noto-cjk``), found even when matplotlib's font cache
    predates their install."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not installed.intersection(TEXT_FALLBACK_FONTS):
        for path in font_manager.findSystemFonts():
            if any(key in path for key in ("CJK", "DroidSansFallback", "wqy", "SourceHan")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # pragma: no cover - unreadable font file
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
    default = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    families = [font_manager.get_font(default).family_name]
    return tuple(families + [n for n in TEXT_FALLBACK_FONTS if n in installed and n not in families])


def _readable_text(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """Give every text of the returned figure :func:`font_families` (token strings may be CJK)."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        fig = draw(*args, **kwargs)
        families = list(font_families())
        if len(families) > 1:
            from matplotlib.text import Text

            for text in fig.findobj(Text):
                text.set_fontfamily(families)
        return fig

    return wrapper


def _vector(x: Any, name: str, subprobability: bool = False) -> np.ndarray:
    """One validated distribution as a float64 NumPy vector (V,)."""
    x = check_distribution(x, name, subprobability=subprobability)
    if x.ndim != 1:
        raise ValueError(f"{name} must be ONE distribution of shape (V,) to plot (got shape {tuple(x.shape)})")
    return as_float64(x)


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


@functools.lru_cache(maxsize=1)
def text_fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """:func:`font_families` and every code point one of them has a glyph for (what a token label
    can show as itself; the rest is escaped)."""
    from matplotlib import font_manager

    families = font_families()
    codes: set[int] = set()
    for name in families:
        path = font_manager.findfont(font_manager.FontProperties(family=[name]), fallback_to_default=False)
        codes.update(font_manager.get_font(path).get_charmap())
    return tuple(families), frozenset(codes)


def _drawable(text: str) -> str:
    """``text`` with every character that no font of :func:`text_fonts` can draw (or that draws
    nothing, e.g. a zero-width joiner) written as its escape (``\\u6771``, ``\\U0001f355``,
    ``\\u200d``), instead of an empty box and a warning per glyph."""
    codes = text_fonts()[1]
    escape = lambda c: f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"  # noqa: E731
    return "".join(c if c.isprintable() and ord(c) in codes else escape(c) for c in text)


def _token_text() -> dict[str, Any]:
    """Text properties for token text: the fallback fonts, and no mathtext (a ``$`` is a ``$``)."""
    return {"fontfamily": list(text_fonts()[0]), "parse_math": False}


def _sparse_ticks(axis_set_ticks, axis_set_labels, labels: Sequence[str]) -> None:
    """Label every k-th position so that at most ``_MAX_TICK_LABELS`` labels are shown."""
    stride = max(1, math.ceil(len(labels) / _MAX_TICK_LABELS))
    pos = list(range(0, len(labels), stride))
    axis_set_ticks(pos)
    axis_set_labels([labels[i] for i in pos])


def _bars(ax: Axes, x: np.ndarray, heights: np.ndarray, width: float, color: str, label: str | None = None):
    """Bars as ONE PolyCollection (hundreds of Rectangle patches draw ~10x slower)."""
    left, right = x - width / 2, x + width / 2
    zero = np.zeros_like(heights)
    verts = np.stack([np.stack([left, zero], -1), np.stack([left, heights], -1),
                      np.stack([right, heights], -1), np.stack([right, zero], -1)], axis=1)  # (V, 4, 2)
    coll = PolyCollection(verts, facecolors=color, edgecolors="none", label=label)
    ax.add_collection(coll)
    ax.update_datalim(verts.reshape(-1, 2))
    ax.autoscale_view()
    return coll


def _stairs(ax: Axes, values: np.ndarray, edges: np.ndarray, baseline: Any = 0.0, *, color: str,
            fill: bool = False, **kwargs) -> StepPatch:
    """``ax.stairs`` without its autoscaling walk: ``add_patch`` visits every path segment in
    Python (~30 us each: 150k steps took ~15 s); the data limits come from the arrays instead."""
    colors = {"facecolor": color} if fill else {"edgecolor": color}
    patch = StepPatch(values, edges, baseline=baseline, fill=fill, **colors, **kwargs)
    ax.add_artist(patch)
    low = float(np.min(baseline))
    patch.sticky_edges.y.append(low)
    ax.update_datalim([(edges[0], min(low, float(np.min(values)))), (edges[-1], float(np.max(values)))])
    ax.autoscale_view()
    return patch


@_readable_text
def plot_distributions(p: Any, q: Any, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Teacher and student probabilities as bars over their own vocabulary index.

    Token ``i`` of the teacher and token ``i`` of the student sit at the same x position, which is
    how KL compares them (token by token; only possible when ``V_t == V_s``).

    Parameters
    ----------
    p : array, shape (V_t,)
        Teacher distribution.
    q : array, shape (V_s,)
        Student distribution.
    ax : None, one Axes, or a pair of Axes
        None: a new figure with two rows (teacher on top, student below, shared axes).
        A pair ``(ax_teacher, ax_student)``: the same on those. One Axes: grouped bars, teacher
        left of student at each index.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_distributions([0.7, 0.3], [0.2, 0.5, 0.3])
    >>> [a.get_title(loc="left") for a in fig.axes]
    ['teacher p  (V_t = 2)', 'student q  (V_s = 3)']
    """
    p, q = _vector(p, "p"), _vector(q, "q")
    V_t, V_s = p.shape[0], q.shape[0]
    n = max(V_t, V_s)
    t_label, s_label = f"teacher p  (V_t = {V_t})", f"student q  (V_s = {V_s})"
    if isinstance(ax, Axes):
        fig, a = ax.figure, ax
        w = 0.4
        _bars(a, np.arange(V_t) - w / 2, p, w, TEACHER_COLOR, t_label)
        _bars(a, np.arange(V_s) + w / 2, q, w, STUDENT_COLOR, s_label)
        a.set_ylim(bottom=0)
        a.set_xlim(-0.7, n - 0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # token ids: no 0.5 ticks when V = 2
        a.set_xlabel("token index in its own vocabulary")
        a.set_ylabel("probability")
        a.legend(loc="upper right", frameon=False)
        return fig
    if ax is None:
        fig = Figure(figsize=(3.6, 3.0), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True, sharey=True)
    else:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(f"ax must be None, one Axes or a pair of Axes (got {len(axes)} axes)")
        fig = axes[0].figure
    width = 0.8 if n <= 60 else 1.0
    for a, x, color, label in ((axes[0], p, TEACHER_COLOR, t_label), (axes[1], q, STUDENT_COLOR, s_label)):
        _bars(a, np.arange(x.shape[0], dtype=np.float64), x, width, color)
        a.set_ylim(bottom=0)
        a.set_title(label, loc="left", color=color, fontweight="bold", fontsize="medium")
        a.set_ylabel("probability")
        a.set_xlim(-0.7, n - 0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # token ids: no 0.5 ticks when V = 2
        a.grid(axis="y", alpha=0.3)
    axes[1].set_xlabel("token index in its own vocabulary")
    return fig


@_readable_text
def plot_sorted_curves(
    p: Any, q: Any, ax: Axes | None = None, *, xscale: str = "linear", subprobability: bool = False
) -> Figure:
    """Both distributions sorted in descending order, zero-padded to n, as step curves.

    The shaded area between the curves is :math:`|p_{(i)} - q_{(i)}|` over the rank bins, so its
    area is the ULD value (from :func:`~uld_explorer.uld_distance`, shown in the title). Every
    rank up to :data:`~uld_explorer.tidy.RANK_HEAD` (256) is a unit-wide bin; beyond, neighbouring
    ranks are drawn as one wider bin holding each curve's mean, never across a crossing of the
    curves, so the area stays exact (151,936 ranks draw as ~1,900 bins: well under a second, a
    small SVG). Runs of exactly equal ranks (ties, a tail where both are 0) are one bin anywhere.

    .. math:: \\mathrm{ULD}(p, q) = \\sum_{i=1}^{n} | p_{(i)} - q_{(i)} |, \\quad n = \\max(V_t, V_s)

    The shaded region is one :class:`matplotlib.patches.StepPatch` with ``gid="uld-area"``;
    ``sum((values - baseline) * diff(edges))`` of its ``get_data()`` is the ULD.

    Parameters
    ----------
    p : array, shape (V_t,)
        Teacher distribution.
    q : array, shape (V_s,)
        Student distribution.
    ax : Axes, optional
        Draw on it; default a new figure.
    xscale : {"linear", "log"}
        Scale of the rank axis ("log" spreads out the head of long vocabularies).
    subprobability : bool
        Vectors of total mass at most 1 (a merged group's chain-rule vectors).

    Returns
    -------
    fig : matplotlib.figure.Figure

    References
    ----------
    .. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030.

    Examples
    --------
    >>> fig = plot_sorted_curves([0.7, 0.2, 0.1], [0.1, 0.7, 0.2])
    >>> print(fig.axes[0].get_title())
    ULD = $\\Sigma_i\\,|p_{(i)} - q_{(i)}|$ = 0.0000
    """
    p, q = _vector(p, "p", subprobability), _vector(q, "q", subprobability)
    V_t, V_s = p.shape[0], q.shape[0]
    n = max(V_t, V_s)
    uld = float(uld_distance(p, q, subprobability=subprobability))
    # display only: the two curves as the closed form sees them (descending, zero-padded), in rank
    # bins whose shaded area is still exactly the ULD (151,936 ranks: ~1,900 bins)
    ps, qs = sorted_probs(p, q, subprobability=subprobability)
    starts, _, ps, qs = rank_bins(ps, qs, breaks=(min(V_t, V_s),))
    edges = np.append(starts, n) + 0.5  # rank i occupies [i - 1/2, i + 1/2]
    fig, a = _new_axes(ax, (3.6, 3.0))
    _stairs(a, np.maximum(ps, qs), edges, baseline=np.minimum(ps, qs), fill=True, color=DIFF_COLOR, alpha=0.28,
            linewidth=0, label=rf"$|p_{{(i)}} - q_{{(i)}}|$, area = ULD = {uld:.4f}", gid="uld-area")
    _stairs(a, ps, edges, color=TEACHER_COLOR, linewidth=2.2, label=f"teacher p, sorted (V_t = {V_t})")
    _stairs(a, qs, edges, color=STUDENT_COLOR, linewidth=2.2, linestyle="--",
            label=f"student q, sorted (V_s = {V_s})")
    if V_t != V_s:
        m = min(V_t, V_s)
        who = "student" if V_s < V_t else "teacher"
        a.axvspan(m + 0.5, n + 0.5, color="0.5", alpha=0.08, linewidth=0)
        a.axvline(m + 0.5, color="0.4", linestyle=":", linewidth=1.2)
        a.annotate(f"{who} zero-padded", xy=(m + 0.5, 0.08), xycoords=("data", "axes fraction"),
                   xytext=(3, 0), textcoords="offset points", rotation=90, ha="left", va="bottom",
                   fontsize="small", color="0.3")
    a.set_xscale(xscale)
    a.set_xlim(0.5, n + 0.5)
    a.set_ylim(bottom=0)
    a.set_xlabel("rank i (largest probability first)")
    a.set_ylabel("probability")
    a.set_title(rf"ULD = $\Sigma_i\,|p_{{(i)}} - q_{{(i)}}|$ = {uld:.4f}")
    a.grid(alpha=0.3)
    a.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return fig


@_readable_text
def plot_transport_plan(
    plan: Any,
    ax: Axes | None = None,
    *,
    row_label: str = "teacher",
    col_label: str = "student",
    title: str | None = None,
    row_ticklabels: Sequence[str] | None = None,
    col_ticklabels: Sequence[str] | None = None,
    highlight: Any = None,
    highlight_label: str = "cost 0",
    cbar_label: str = "mass moved",
) -> Figure:
    """A transport plan as a heatmap (rows: teacher side, columns: student side) with a colorbar.

    Parameters
    ----------
    plan : array, shape (n_t, n_s)
        e.g. ``OTResult.plan`` from :func:`~uld_explorer.value_space_ot` or
        :func:`~uld_explorer.token_space_ot_top_k`.
    ax : Axes, optional
        Draw on it (the colorbar steals space from it); default a new figure.
    row_label, col_label : str
        Axis labels.
    title : str, optional
    row_ticklabels, col_ticklabels : sequences of str, optional
        One label per row / column (e.g. token strings); thinned out if there are many.
    highlight : bool array, shape (n_t, n_s), optional
        Cells to outline, e.g. where the ground cost is 0 (same token string).
    highlight_label : str
        Legend entry for the outlined cells.
    cbar_label : str
        Colorbar label.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_transport_plan([[0.5, 0.0], [0.1, 0.4]], title="plan")
    >>> fig.axes[0].get_title(), len(fig.axes)  # the heatmap and its colorbar
    ('plan', 2)
    """
    P = as_float64(plan)
    if P.ndim != 2 or 0 in P.shape:
        raise ValueError(f"plan must be a non-empty 2-D array (n_t, n_s) (got shape {P.shape})")
    n_t, n_s = P.shape
    for nm, labels, size in (("row_ticklabels", row_ticklabels, n_t), ("col_ticklabels", col_ticklabels, n_s)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{nm} must have one label per {'row' if nm[0] == 'r' else 'column'}: "
                             f"expected {size}, got {len(labels)}")
    fig, a = _new_axes(ax, (3.6, 3.6))
    vmax = float(P.max()) if P.max() > 0 else 1.0
    im = a.imshow(P, cmap="Blues", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    cb = fig.colorbar(im, ax=a, fraction=0.06, pad=0.02)
    cb.set_label(cbar_label)
    if highlight is not None:
        H = np.asarray(highlight, dtype=bool)
        if H.shape != P.shape:
            raise ValueError(f"highlight must have the plan's shape {P.shape} (got {H.shape})")
        if H.any():
            if max(n_t, n_s) <= 40:  # few cells: outline them, the plan's colour stays visible inside
                rows, cols = np.nonzero(H)
                size = (140.0 / max(n_t, n_s)) ** 2  # points^2, about one cell
                a.scatter(cols, rows, s=size, marker="s", facecolors="none", edgecolors=DIFF_COLOR,
                          linewidths=0.9, label=highlight_label)
                # the legend's marker: one small outlined square, whatever the cells' size (2 cells: 70 pt)
                handle = Line2D([], [], linestyle="none", marker="s", markersize=_LEGEND_MARKER,
                                markerfacecolor="none", markeredgecolor=DIFF_COLOR, markeredgewidth=0.9,
                                label=highlight_label)
            else:  # many cells: a translucent overlay, exact to the cell at any size
                a.imshow(np.ma.masked_where(~H, np.ones(H.shape)), cmap=ListedColormap([DIFF_COLOR]),
                         vmin=0, vmax=1, alpha=0.3, aspect="auto", interpolation="nearest")
                handle = Patch(facecolor=DIFF_COLOR, alpha=0.3, label=highlight_label)
            if ax is None:  # our own figure: below everything, constrained layout makes room
                fig.legend(handles=[handle], loc="outside lower center", fontsize="small", frameon=False)
            else:
                a.legend(handles=[handle], loc="upper right", fontsize="small")
    if row_ticklabels is not None:
        _sparse_ticks(a.set_yticks, a.set_yticklabels, list(row_ticklabels))
    if col_ticklabels is not None:
        _sparse_ticks(a.set_xticks, a.set_xticklabels, list(col_ticklabels))
        a.tick_params(axis="x", labelrotation=90)
    a.tick_params(labelsize="small")
    a.set_ylabel(row_label, color=TEACHER_COLOR)
    a.set_xlabel(col_label, color=STUDENT_COLOR)
    if title:
        a.set_title(title, fontsize="medium")
    return fig


def _plot_layout(plan: Any, layout: Any, ax: Axes | None, title: str, row_label: str, col_label: str,
                 cbar_label: str = "mass moved") -> Figure:
    P = as_float64(plan)[np.ix_(layout.rows, layout.cols)]
    return plot_transport_plan(
        P, ax, row_label=row_label, col_label=col_label, title=title, row_ticklabels=layout.row_labels,
        col_ticklabels=layout.col_labels, highlight=layout.highlight, highlight_label=layout.highlight_label,
        cbar_label=cbar_label,
    )


@_readable_text
def plot_token_plan(
    result: Any,
    teacher_tokens: Sequence[str],
    student_tokens: Sequence[str],
    ax: Axes | None = None,
    *,
    order: str = "vocab",
    title: str = "token space: off the outlined cells costs 1",
) -> Figure:
    """The plan of a token-space OT on top-k tokens, rows and columns in VOCABULARY order.

    :func:`~uld_explorer.token_space_ot_top_k` orders its plan by probability (most probable
    first); here the kept tokens are put back in vocabulary order
    (:func:`~uld_explorer.tidy.token_plan_layout`), so that with a shared vocabulary the cost-0
    cells (same token string) lie on the diagonal. The rest bucket (the pooled mass of the tokens
    not kept) is the last row / column, shown only when it holds mass.

    Parameters
    ----------
    result : TokenOTResult
        From :func:`~uld_explorer.token_space_ot_top_k` (plan and cost of shape
        ``(k_t + 1, k_s + 1)``, the indices of the kept tokens).
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s
        The strings of every token id (labels of the rows / columns).
    ax : Axes, optional
    order : {"vocab", "matched"}
        ``"matched"`` (two different vocabularies): the teacher tokens that have a same-string
        twin among the student's kept tokens first, by probability, each twin in the same position
        (the cost-0 pairs on the diagonal), then the unmatched tokens of each side by probability;
        see :func:`~uld_explorer.tidy.token_plan_layout`.
    title : str

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> from uld_explorer import token_space_ot_top_k
    >>> r = token_space_ot_top_k([0.1, 0.6, 0.3], [0.5, 0.5], ["a", "b", "c"], ["b", "a"], k=2)
    >>> fig = plot_token_plan(r, ["a", "b", "c"], ["b", "a"])
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]  # vocabulary order, then the rest
    ['b', 'c', 'rest']
    """
    layout = token_plan_layout(result, teacher_tokens, student_tokens, order=order)
    return _plot_layout(result.plan, layout, ax, title, "teacher token (top-k)", "student token (top-k)")


@_readable_text
def plot_value_plan(
    result: Any,
    p: Any,
    q: Any,
    teacher_tokens: Sequence[str],
    student_tokens: Sequence[str],
    ax: Axes | None = None,
    *,
    order: str = "rank",
    title: str | None = None,
) -> Figure:
    """The plan of the value-space OT (:func:`~uld_explorer.value_space_ot`, scaled by n).

    ``order="rank"`` (default): rows by the teacher's probability, columns by the student's,
    largest first. The closed form pairs the i-th largest with the i-th largest: in this order,
    the diagonal. That monotone (sorted-to-sorted) pairing is optimal but, with the cost
    :math:`|p_i - q_j|`, rarely the only optimal plan (two values moving the same way can swap
    partners at the same total cost), and POT's solver returns whichever optimal pairing it
    reaches: some matches on the diagonal, the others equal-cost swaps off it.
    ``order="vocab"``: vocabulary order, the zero padding labelled ``pad``: tokens are matched by
    VALUE, not identity, so the plan scatters. Outlined: the pairs with the same string, which the
    plan hits only by chance (:func:`~uld_explorer.tidy.value_plan_layout`).

    Parameters
    ----------
    result : OTResult
        From :func:`~uld_explorer.value_space_ot`, plan of shape ``(n, n)``, ``n = max(V_t, V_s)``.
    p : array, shape (V_t,);  q : array, shape (V_s,)
        The distributions it was computed from (for the rank order).
    teacher_tokens, student_tokens : sequences of str, lengths V_t, V_s
    ax : Axes, optional
    order : {"rank", "vocab"}
    title : str, optional

    Examples
    --------
    >>> from uld_explorer import value_space_ot
    >>> r = value_space_ot([0.7, 0.3], [0.2, 0.5, 0.3])
    >>> fig = plot_value_plan(r, [0.7, 0.3], [0.2, 0.5, 0.3], ["a", "b"], ["b", "a", "c"], order="vocab")
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['a', 'b', 'pad']
    """
    layout = value_plan_layout(result, p, q, teacher_tokens, student_tokens, order=order)
    where = "rank order" if order == "rank" else "vocabulary order"
    return _plot_layout(result.plan, layout, ax, title or f"value space (= ULD), {where}",
                        f"teacher token ({order} order)", f"student token ({order} order)", "matched (plan × n)")


#: Fill of a token whose bytes the other tokenization has as one token too, and of one it does not.
AGREE_COLOR, DIFFER_COLOR = "#009E73", "#CC79A7"  # Okabe-Ito bluish green, reddish purple


@_readable_text
def plot_token_spans(frame: Any, max_lines: int = 8) -> Figure:
    """Both tokenizations of a text as byte spans, teacher above student, one pair of rows per line.

    Each token is a box as wide as its bytes (x: byte offset within the line), labelled with its
    text (whitespace visible); green where the other side has a token with exactly the same
    bytes, purple where the two tokenizations cut the text differently. Thin vertical lines mark
    the segments (the byte-offset groups: both sides reach a common boundary).

    Parameters
    ----------
    frame : DataFrame
        :func:`~uld_explorer.tidy.token_spans_frame`.
    max_lines : int
        Lines drawn (the rest are left out, the title says so).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    lines = sorted(set(frame["line"]))
    shown = lines[:max_lines]
    width = max(8, int(frame["x1"].max()) if len(frame) else 8)
    fig = Figure(figsize=(min(16.0, 2.0 + 0.22 * width), 0.3 + 1.05 * max(1, len(shown))), layout="constrained")
    ax = fig.subplots()
    for k, line in enumerate(shown):
        part = frame[frame["line"] == line]
        for side, dy in (("teacher", 0.0), ("student", 0.45)):
            y = k * 1.1 + dy
            for r in part[part["side"] == side].itertuples():
                ax.add_patch(Rectangle((r.x0, y), r.x1 - r.x0, 0.4, facecolor=AGREE_COLOR if r.agrees else DIFFER_COLOR,
                                       alpha=0.35, edgecolor="#333", linewidth=0.8))
                ax.text((r.x0 + r.x1) / 2, y + 0.2, _drawable(r.label), ha="center", va="center", fontsize=7,
                        clip_on=True, **_token_text())
        cuts = sorted(set(part.groupby("segment")["x0"].min()) | {int(part["x1"].max())})  # common boundaries
        ax.vlines(cuts, k * 1.1 - 0.06, k * 1.1 + 0.91, colors="#333", linewidth=0.7, linestyles=":",
                  gid="segment-lines")
        ax.text(-0.5, k * 1.1 + 0.2, "teacher", ha="right", va="center", fontsize=7, color=TEACHER_COLOR)
        ax.text(-0.5, k * 1.1 + 0.65, "student", ha="right", va="center", fontsize=7, color=STUDENT_COLOR)
    ax.set_xlim(-7, width + 0.5)
    ax.set_ylim(len(shown) * 1.1, -0.1)
    ax.set_xlabel("byte offset within the line")
    ax.set_yticks([])
    for spine in ("left", "right", "top"):
        ax.spines[spine].set_visible(False)
    more = f" (first {len(shown)} of {len(lines)} lines)" if len(shown) < len(lines) else ""
    ax.set_title("the text under both tokenizers" + more, fontsize=10)
    ax.legend(handles=[Patch(facecolor=AGREE_COLOR, alpha=0.35, edgecolor="#333", label="same bytes on both sides"),
                       Patch(facecolor=DIFFER_COLOR, alpha=0.35, edgecolor="#333", label="cut differently")],
              loc="upper right", bbox_to_anchor=(1.0, 1.0 + 0.35 / max(1, len(shown))), ncols=2, fontsize=7,
              frameon=False)
    return fig


@_readable_text
def plot_alignment_effects(frame: Any) -> Figure:
    """ULD per teacher token under the three ways of aligning (positional; byte-offset with the
    observed and the bayesian merge), and each side's mass on the shared strings.

    Parameters
    ----------
    frame : DataFrame
        :func:`~uld_explorer.tidy.alignment_effects_frame`.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two axes: ULD in [0, 2] (top) and the mass on shared strings in [0, 1] (bottom); the
        positions whose positional pair covers different bytes are shaded.
    """
    n = len(frame)
    fig = Figure(figsize=(min(16.0, 3.0 + 0.28 * n), 5.0), layout="constrained")
    ax, bx = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    x = np.arange(n)
    for axis in (ax, bx):
        for i, same in enumerate(frame["same_span"]):
            if same is False:
                axis.axvspan(i - 0.5, i + 0.5, color="#999", alpha=0.15, linewidth=0)
    for col, label, color, marker in (("uld_positional", "positional", "#000000", "o"),
                                      ("uld_observed", "byte-offset, observed", TEACHER_COLOR, "s"),
                                      ("uld_bayesian", "byte-offset, bayesian", STUDENT_COLOR, "^")):
        ax.plot(x, frame[col].astype(float), marker=marker, markersize=4, linewidth=1, color=color, label=label)
    ax.set_ylim(0, 2.05)
    ax.set_ylabel("ULD, in [0, 2]")
    ax.legend(fontsize=7, ncols=3, loc="upper left")
    ax.set_title("ULD per teacher token under each alignment\n"
                 "(shaded: the positional pair covers different bytes)", fontsize=9)
    bx.plot(x, frame["teacher_shared_mass"].astype(float), marker="o", markersize=3, color=TEACHER_COLOR,
            label="teacher")
    bx.plot(x, frame["student_shared_mass"].astype(float), marker="o", markersize=3, color=STUDENT_COLOR,
            linestyle="--", label="student")
    bx.set_ylim(0, 1.02)
    bx.set_ylabel("mass on shared\nstrings")
    bx.legend(fontsize=7, ncols=2, loc="lower left")
    _sparse_ticks(bx.set_xticks, lambda ls: bx.set_xticklabels(ls, rotation=50, ha="right", fontsize=7,
                                                                **_token_text()),
                  [_drawable(repr(s)) for s in frame["label"]])
    bx.set_xlabel("teacher token (the text it predicts)")
    return fig


# ---------------------------------------------------------------------------- distillation runs

#: Colours of overlaid runs, in the order the runs come (Okabe-Ito; cycled after eight). The
#: interactive charts (:func:`uld_explorer.charts.chart_run_curves`) use the same order.
RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def run_colors(runs: Sequence[str]) -> dict[str, str]:
    """Each run name its colour, in the given order (:data:`RUN_COLORS`, cycled)."""
    return {r: RUN_COLORS[i % len(RUN_COLORS)] for i, r in enumerate(runs)}


def run_labels(frame: Any) -> dict[str, str]:
    """Each run of a :func:`~uld_explorer.distill.runs.metrics_frame` its legend label,
    ``"<run> (<loss>)"``, in the order the runs first appear."""
    pairs = dict.fromkeys(zip(frame["run"], frame["loss_name"]))
    return {run: f"{run} ({loss})" for run, loss in pairs}


def metric_title(metric: str) -> tuple[str, str]:
    """(label, unit) of a metrics.jsonl key (:data:`~uld_explorer.distill.runs.METRICS`)."""
    from .distill.runs import METRICS

    return METRICS.get(metric, (metric, ""))


@_readable_text
def plot_run_curves(frame: Any, metrics: Sequence[str] | None = None, ax: Axes | Sequence[Axes] | None = None, *,
                    columns: int = 2) -> Figure:
    """Distillation curves of one or several runs, one panel per metric, one colour per run.

    Parameters
    ----------
    frame : DataFrame
        :func:`uld_explorer.distill.runs.metrics_frame` of the runs (columns ``run``,
        ``loss_name``, ``step``, ``metric``, ``value``): e.g.
        ``metrics_frame(["runs/uld-a", "runs/ce-uld-b"], ["eval_top1", "seen_top1"])``.
    metrics : list of str, optional
        Keys of :data:`~uld_explorer.distill.runs.METRICS`, one panel each, in this order;
        default the metrics present in ``frame``, in METRICS' order. Per-step metrics (``ce``,
        ``uld``, ``loss``, ...) draw as lines, eval-step metrics (``eval_*``, ``seen_*``) as
        lines with a marker per evaluation. Top-1 agreements are drawn in percent.
    ax : None, one Axes, or a sequence of Axes
        None: a new figure with ``columns`` panels per row. One Axes: draw the one metric on it
        (``metrics`` must have one). A sequence: one Axes per metric.
    columns : int
        Panels per row of a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Each panel titled with the metric's label, its y axis with its unit; one legend
        ("<run> (<loss>)") for the figure. A metric without values yet says so in its panel.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"run": ["a", "a", "b", "b"], "loss_name": ["uld", "uld", "ce+uld", "ce+uld"],
    ...                   "step": [0, 1, 0, 1], "metric": ["uld"] * 4, "value": [1.9, 1.5, 1.9, 1.2]})
    >>> fig = plot_run_curves(f)
    >>> [a.get_title() for a in fig.axes], [t.get_text() for t in fig.legends[0].get_texts()]
    (['ULD on the batch'], ['a (uld)', 'b (ce+uld)'])
    """
    from matplotlib.ticker import PercentFormatter

    from .distill.runs import METRICS

    if metrics is None:
        present = set(frame["metric"])
        metrics = [m for m in METRICS if m in present] + sorted(present - set(METRICS))
    metrics = list(metrics)
    if not metrics:
        raise ValueError("no metric to plot: pass metrics=[...] (keys of METRICS) or a frame with values")
    own = ax is None
    if own:
        ncols = max(1, min(columns, len(metrics)))
        nrows = math.ceil(len(metrics) / ncols)
        fig = Figure(figsize=(3.8 * ncols, 2.6 * nrows + 0.6), layout="constrained")
        grid = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel())
        for extra in grid[len(metrics):]:
            extra.set_visible(False)
        axes = list(grid[: len(metrics)])
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(metrics):
            raise ValueError(f"{len(axes)} Axes for {len(metrics)} metrics: pass one Axes per metric")
        fig = axes[0].figure
    labels = run_labels(frame)
    colors = run_colors(list(labels))
    handles: dict[str, Any] = {}
    for a, metric in zip(axes, metrics):
        part = frame[frame["metric"] == metric]
        eval_metric = metric.startswith(("eval_", "seen_"))
        for run, label in labels.items():
            sub = part[part["run"] == run].sort_values("step")
            if not len(sub):
                continue
            (line,) = a.plot(sub["step"], sub["value"], color=colors[run], linewidth=1.6,
                             marker="o" if eval_metric or len(sub) == 1 else None, markersize=3.5, label=label)
            handles.setdefault(label, line)
        name, unit = metric_title(metric)
        a.set_title(name, fontsize="medium")
        a.set_ylabel("agreement" if metric.endswith("top1") else unit)
        if metric.endswith("top1"):
            top = float(part["value"].max()) if len(part) else 0.0
            a.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if top > 0.1 else 1))
            a.set_ylim(bottom=0)
        if not len(part):
            a.text(0.5, 0.5, "no values yet", transform=a.transAxes, ha="center", va="center", color="0.5")
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom = axes[-min(len(axes), columns):] if own else axes  # no panel below these
    for a in bottom:
        a.set_xlabel("step (optimizer updates)")
        a.xaxis.set_tick_params(labelbottom=True)
    shown = [label for label in labels.values() if label in handles]  # the runs' order, not the panels'
    if shown:
        if own:
            fig.legend([handles[x] for x in shown], shown, loc="outside upper center", ncols=min(3, len(shown)),
                       fontsize="small", frameon=False)
        else:
            axes[0].legend([handles[x] for x in shown], shown, fontsize="small", frameon=False)
    return fig


@_readable_text
def plot_probe(frame: Any, ax: Sequence[Axes] | None = None, *, title: str | None = None) -> Figure:
    """The probe prompt's most probable next tokens, teacher and student side by side.

    Parameters
    ----------
    frame : DataFrame
        :func:`uld_explorer.distill.runs.probe_frame` of one run at one recorded step (columns
        ``step``, ``side`` (teacher | student), ``rank``, ``token``, ``prob``).
    ax : pair of Axes, optional
        ``(ax_teacher, ax_student)``; default a new figure with the two side by side.
    title : str, optional
        Default: ``"the probe's next token, step <step>"``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Horizontal bars, rank 1 on top, each labelled with its token (quoted as Python writes it,
        whitespace visible) and its probability. Both panels share one probability axis, so a
        student that has not learnt yet shows as near-empty bars next to the teacher's.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"step": 3, "side": ["teacher", "teacher", "student", "student"], "rank": [1, 2, 1, 2],
    ...                   "token": ["The", " Paris", ".", "The"], "prob": [0.9, 0.05, 0.2, 0.1]})
    >>> [a.get_title(loc="left") for a in plot_probe(f).axes]
    ['teacher', 'student']
    """
    if not len(frame):
        raise ValueError("an empty probe frame: the run has not recorded a probe yet (one per eval step)")
    if ax is None:
        k = int(frame["rank"].max())
        fig = Figure(figsize=(7.2, 0.9 + 0.3 * k), layout="constrained")
        axes = fig.subplots(1, 2, sharex=True)
    else:
        axes = list(ax)
        if len(axes) != 2:
            raise ValueError(f"ax must be a pair of Axes (teacher, student); got {len(axes)}")
        fig = axes[0].figure
    top = float(frame["prob"].max())
    for a, side, color in ((axes[0], "teacher", TEACHER_COLOR), (axes[1], "student", STUDENT_COLOR)):
        part = frame[frame["side"] == side].sort_values("rank")
        y = np.arange(len(part))
        a.barh(y, part["prob"], color=color, height=0.7)
        a.set_yticks(y)
        a.set_yticklabels([_drawable(repr(str(t))) for t in part["token"]], **_token_text())
        a.set_ylim(len(part) - 0.5, -0.5)
        for yi, p in zip(y, part["prob"]):
            a.text(p, yi, f" {p:.3g}", va="center", ha="left", fontsize="x-small", color="0.25")
        a.set_xlim(0, max(top * 1.25, 1e-9))
        a.set_title(side, loc="left", color=color, fontweight="bold", fontsize="medium")
        a.set_xlabel("probability")
        a.grid(axis="x", alpha=0.3)
    step = int(frame["step"].iloc[0])
    fig.suptitle(title or f"the probe's next token, step {step}", fontsize="medium")
    return fig


@_readable_text
def plot_lens(frame: Any, teacher: Any, *, title: str | None = None) -> Figure:
    """The gradient lens of one position: the teacher's top tokens, then each loss's push on the
    student's top tokens (the twin of :func:`~uld_explorer.charts.chart_lens`).

    Parameters
    ----------
    frame : DataFrame
        :func:`~uld_explorer.tidy.lens_push_frame` (columns ``rank``, ``token``, ``label``, ``push``, ...).
    teacher : DataFrame
        :func:`~uld_explorer.tidy.top_k_frame` (its ``teacher`` rows are drawn) or columns ``rank``,
        ``token``, ``prob``.
    title : str, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One panel for the teacher (probabilities), one per loss (push, its own x axis; bars right,
        green: up; left, vermillion: down), rank 1 on top; CE's target token marked with a star.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"rank": [1, 1], "token": ["a", "a"], "label": ["CE", "ULD"], "push": [-0.5, 0.2],
    ...                   "target": [False, False]})
    >>> t = pd.DataFrame({"rank": [1], "token": ["b"], "prob": [0.9]})
    >>> [a.get_title(loc="left") for a in plot_lens(f, t).axes]
    ["teacher's top tokens", 'CE', 'ULD']
    """
    t = (teacher[teacher["side"] == "teacher"] if "side" in teacher else teacher).sort_values("rank")
    labels = list(dict.fromkeys(frame["label"]))
    k = max(len(t), int(frame["rank"].max()) if len(frame) else 1)
    fig = Figure(figsize=(2.2 * (1 + len(labels)) + 1.0, 1.0 + 0.28 * k), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 1 + len(labels)))
    a = axes[0]
    y = np.arange(len(t))
    a.barh(y, t["prob"], color=TEACHER_COLOR, height=0.7)
    a.set_yticks(y)
    a.set_yticklabels([_drawable(repr(str(x))) for x in t["token"]], **_token_text())
    a.set_ylim(k - 0.5, -0.5)
    a.set_xlabel("probability")
    a.set_title("teacher's top tokens", loc="left", color=TEACHER_COLOR, fontsize="medium")
    for a, label in zip(axes[1:], labels):
        part = frame[frame["label"] == label].sort_values("rank")
        y = np.arange(len(part))
        push = part["push"].to_numpy(dtype=float)
        a.barh(y, push, height=0.7, color=[PUSH_COLORS["up" if v > 0 else "down" if v < 0 else "none"] for v in push])
        a.axvline(0.0, color="0.3", linewidth=0.8)
        a.set_yticks(y)
        a.set_yticklabels([_drawable(repr(str(x))) + (" *" if tgt else "")
                           for x, tgt in zip(part["token"], part["target"])], **_token_text())
        a.set_ylim(k - 0.5, -0.5)
        a.set_xlabel("push (-gradient)")
        a.set_title(label, loc="left", fontsize="medium")
        a.grid(axis="x", alpha=0.3)
    fig.suptitle(title or "what each loss does to the student's logits (* CE's target)", fontsize="medium")
    return fig


# ---------------------------------------------------------------------------- experiments

#: Colours of a paired difference's verdict (:data:`~uld_explorer.distill.results.VERDICTS`):
#: better bluish green, worse vermillion, inside the noise grey (Okabe-Ito).
VERDICT_COLORS = {"better": "#009E73", "worse": "#D55E00", "inside the noise": "#999999"}


@_readable_text
def plot_forest(frame: Any, metrics: Sequence[str] | None = None, *, columns: int = 4) -> Figure:
    """A forest plot of an experiment: per metric, each loss's paired difference against the
    baseline (a point) with its interval (a bar), and the zero line; coloured by its verdict
    (:data:`VERDICT_COLORS`: better, worse, inside the noise).

    Parameters
    ----------
    frame : DataFrame
        :func:`uld_explorer.distill.results.results_frame` (display units).
    metrics : list of str, optional
        Metric keys, one panel each (default: every metric of the frame, in its order).
    columns : int
        Panels per row.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"loss": ["ce+uld", "uld"], "metric": "ce", "label": "CE", "unit": "nats/token",
    ...                   "vs": "ce", "diff": [0.2, 3.0], "diff_low": [-0.1, 2.0], "diff_high": [0.5, 4.0],
    ...                   "verdict": ["inside the noise", "worse"], "higher_is_better": False})
    >>> [a.get_title() for a in plot_forest(f).axes]
    ['CE (nats/token)']
    """
    part = frame[frame["verdict"].notna()] if "verdict" in frame else frame
    metrics = list(dict.fromkeys(part["metric"])) if metrics is None else list(metrics)
    if not metrics:
        raise ValueError("no paired difference to draw: the experiment compares a single loss")
    ncols = max(1, min(columns, len(metrics)))
    nrows = math.ceil(len(metrics) / ncols)
    losses = list(dict.fromkeys(part["loss"]))
    fig = Figure(figsize=(3.2 * ncols, 0.6 + (0.45 * len(losses) + 0.9) * nrows), layout="constrained")
    grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for extra in grid[len(metrics):]:
        extra.set_visible(False)
    for a, metric in zip(grid, metrics):
        rows = part[part["metric"] == metric]
        y = np.arange(len(losses))
        for yi, loss in zip(y, losses):
            r = rows[rows["loss"] == loss]
            if not len(r):
                continue
            r = r.iloc[0]
            color = VERDICT_COLORS.get(r["verdict"], "#999999")
            a.plot([r["diff_low"], r["diff_high"]], [yi, yi], color=color, linewidth=2.4, solid_capstyle="butt")
            a.plot([r["diff"]], [yi], "o", color=color, markersize=6)
        a.axvline(0.0, color="0.3", linewidth=1, linestyle=":")
        a.set_yticks(y)
        a.set_yticklabels(losses)
        a.set_ylim(len(losses) - 0.5, -0.5)
        unit = rows["unit"].iloc[0] if len(rows) else ""
        a.set_title(f"{rows['label'].iloc[0] if len(rows) else metric} ({'pp' if unit == '%' else unit})",
                    fontsize="medium")
        vs = rows["vs"].iloc[0] if len(rows) else "the baseline"
        better = "higher" if (len(rows) and rows["higher_is_better"].iloc[0]) else "lower"
        a.set_xlabel(f"minus {vs} ({better} is better)", fontsize="small")
        a.grid(axis="x", alpha=0.3)
    fig.legend(handles=[Line2D([], [], color=c, marker="o", linewidth=2.4, label=v) for v, c in VERDICT_COLORS.items()],
               loc="outside upper center", ncols=3, fontsize="small", frameon=False)
    return fig
