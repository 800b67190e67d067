"""uld_explorer.plots, the tidy frames behind them and the Altair charts, at realistic sizes.

(The small-figure checks live in test_app.py next to the page that shows them.)
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.patches import StepPatch

import uld_explorer as ux
from uld_explorer import charts, tidy
from uld_explorer.plots import plot_sorted_curves

V_QWEN, V_SMOL = 151_936, 49_152  # real vocabulary sizes (Qwen2.5, SmolLM2)


def dirichlet(V: int, seed: int, alpha: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(V, alpha))


def uld_area(ax) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (area,) = [a for a in ax.patches if isinstance(a, StepPatch) and a.get_gid() == "uld-area"]
    values, edges, baseline = area.get_data()
    return values, edges, baseline


@pytest.mark.parametrize("V_t, V_s", [(V_QWEN, V_SMOL), (V_SMOL, V_QWEN), (V_QWEN, V_QWEN)])
@pytest.mark.parametrize("xscale", ["linear", "log"])
def test_sorted_curves_of_real_vocabulary_sizes_keep_the_area_exact(V_t, V_s, xscale):
    """151,936 ranks are drawn as a few thousand bins (they took ~15 s as one bin per rank) and the
    shaded area is still the ULD; the head keeps one bin per rank, exactly the sorted values."""
    p, q = dirichlet(V_t, 0), dirichlet(V_s, 1)
    ps, qs = ux.sorted_probs(p, q)
    if V_t == V_s:  # two draws of the same law: the sorted curves cross many times in the tail
        assert np.count_nonzero(np.diff(np.sign(ps - qs))) > 100
    ax = plot_sorted_curves(p, q, xscale=xscale).axes[0]
    values, edges, baseline = uld_area(ax)
    area = float(np.sum((values - baseline) * np.diff(edges)))
    assert area == pytest.approx(float(ux.uld_distance(p, q)), abs=1e-9)
    assert values.size < 2_500
    assert edges[0] == 0.5 and edges[-1] == max(V_t, V_s) + 0.5
    head = tidy.RANK_HEAD
    np.testing.assert_array_equal(edges[: head + 1], np.arange(head + 1) + 0.5)
    np.testing.assert_array_equal(values[:head], np.maximum(ps, qs)[:head])
    np.testing.assert_array_equal(baseline[:head], np.minimum(ps, qs)[:head])
    # the padding starts a bin of its own (the dotted line is a bin edge)
    assert min(V_t, V_s) + 0.5 in edges
    # the data limits still come from the curves (the autoscaling walk is skipped)
    assert ax.get_ylim()[1] >= max(ps[0], qs[0])
    assert ax.get_xlim() == pytest.approx((0.5, max(V_t, V_s) + 0.5))


def test_sorted_curves_merge_only_equal_neighbours_in_the_head():
    """Ties are one bin of their run's width (lossless); the area is still the ULD."""
    p = np.array([0.4] + [0.01] * 60)
    q = np.array([0.1] * 10)
    values, edges, baseline = uld_area(plot_sorted_curves(p, q).axes[0])
    # ranks 1 | 2..10 (0.01 vs 0.1) | 11..61 (0.01 vs the padding)
    np.testing.assert_array_equal(edges, [0.5, 1.5, 10.5, 61.5])
    np.testing.assert_allclose(values, [0.4, 0.1, 0.01])
    np.testing.assert_allclose(baseline, [0.1, 0.01, 0.0])
    assert float(np.sum((values - baseline) * np.diff(edges))) == pytest.approx(float(ux.uld_distance(p, q)),
                                                                               abs=1e-12)


def test_binned_sorted_frame_keeps_the_area_and_fits_an_altair_chart():
    p, q = dirichlet(V_QWEN, 2), dirichlet(V_SMOL, 3)
    full = tidy.sorted_frame(p, q)
    assert len(full) == V_QWEN and set(full["width"]) == {1.0}
    binned = tidy.sorted_frame(p, q, binned=True)
    assert len(binned) < 2_500 and binned["width"].sum() == V_QWEN
    np.testing.assert_array_equal(binned["rank"].to_numpy(), 1 + np.cumsum([0, *binned["width"][:-1]]))
    uld = float(ux.uld_distance(p, q))
    assert float(((binned["high"] - binned["low"]) * binned["width"]).sum()) == pytest.approx(uld, abs=1e-9)
    # the head is the per-rank frame, exactly
    head = tidy.RANK_HEAD
    np.testing.assert_array_equal(binned[:head].to_numpy(), full[:head].to_numpy())
    spec = charts.chart_sorted(binned, log_x=True).to_dict()  # Altair refuses > 5,000 rows
    (data,) = [d for d in spec["datasets"].values() if "low" in d[0]]
    assert len(data) == len(binned) + 1  # the last step closed at rank + width
    assert data[-1]["rank"] == V_QWEN + 1


def test_sorted_frame_n_max_then_binned():
    p, q = dirichlet(5_000, 4), dirichlet(700, 5)
    f = tidy.sorted_frame(p, q, n_max=1_000, binned=True)
    ps, qs = ux.sorted_probs(p, q)
    assert f["width"].sum() == 1_000
    assert float(((f["high"] - f["low"]) * f["width"]).sum()) == pytest.approx(
        float(np.abs(ps - qs)[:1_000].sum()), abs=1e-12)
    assert 701.0 in set(f["rank"])  # the student's padding starts a bin


def test_value_plan_in_rank_order_is_an_optimal_pairing_not_the_diagonal():
    """What the rank-order picture may claim: ULD's own pairing is the diagonal and costs the ULD,
    POT's plan costs the same but swaps matches off it; the title does not call it the diagonal."""
    from uld_explorer.plots import plot_value_plan

    p, q = ux.synthetic_pair(40, 40, noise=0.5, seed=1)
    r = ux.value_space_ot(p, q)
    t_tok, s_tok = ux.synthetic_tokens(40), ux.synthetic_tokens(40)
    lay = tidy.value_plan_layout(r, p, q, t_tok, s_tok, order="rank")
    P = r.plan[np.ix_(lay.rows, lay.cols)]  # scaled by n: a permutation matrix
    np.testing.assert_allclose(P.sum(0), 1.0)
    np.testing.assert_allclose(P.sum(1), 1.0)
    ps, qs = ux.sorted_probs(p, q)
    C = np.abs(ps[:, None] - qs[None, :])
    uld = float(ux.uld_distance(p, q))
    assert float(np.trace(C)) == pytest.approx(uld, abs=1e-12)  # the diagonal: the closed form
    assert float((P * C).sum()) == pytest.approx(uld, abs=1e-9)  # POT's plan: the same cost ...
    assert np.trace(P) < 20  # ... but most of its matches are off the diagonal
    fig = plot_value_plan(r, p, q, t_tok, s_tok, order="rank")
    assert fig.axes[0].get_title() == "value space (= ULD), rank order"


def _legend_marker_area(legend) -> float:
    """points^2 of the (only) legend handle's marker."""
    (h,) = legend.legend_handles
    return float(h.get_markersize()) ** 2 if hasattr(h, "get_markersize") else float(np.max(h.get_sizes()))


@pytest.mark.parametrize("n", [2, 3, 12, 40])
def test_plan_legend_marker_is_small_whatever_the_cell_size(n):
    """The outlined cells of a 2 x 2 plan are ~70 pt squares; the legend's marker stays ~7 pt."""
    from matplotlib.figure import Figure

    from uld_explorer.plots import plot_transport_plan

    plan, marked = np.eye(n) / n, np.eye(n, dtype=bool)
    own = plot_transport_plan(plan, highlight=marked)
    on_ax = plot_transport_plan(plan, Figure().subplots(), highlight=marked)
    for legend in (own.legends[0], on_ax.axes[0].get_legend()):
        assert _legend_marker_area(legend) <= 10.0 ** 2
        assert legend.get_texts()[0].get_text() == "cost 0"
    cells = own.axes[0].collections[0]  # the outlines themselves keep their cell size
    assert float(cells.get_sizes()[0]) == pytest.approx((140.0 / n) ** 2)


@pytest.mark.parametrize("V_t, V_s", [(2, 2), (2, 3), (1, 2), (5, 4), (300, 200)])
def test_distribution_bars_have_integer_token_ticks(V_t, V_s):
    """Token ids are integers: a 2-token vocabulary shows ticks 0 and 1, not 0.5 steps."""
    from matplotlib.figure import Figure

    from uld_explorer.plots import plot_distributions

    p, q = dirichlet(V_t, 6, alpha=1.0), dirichlet(V_s, 7, alpha=1.0)
    grouped = Figure().subplots()
    plot_distributions(p, q, ax=grouped)
    for ax in [*plot_distributions(p, q).axes, grouped]:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        if max(V_t, V_s) <= 3:
            assert ticks == list(range(max(V_t, V_s)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matched_token_plan_puts_every_twin_pair_on_the_diagonal(seed):
    """Two vocabularies sharing some strings, the most probable teacher tokens without a twin:
    the matched pairs come first, at (i, i), then each side's unmatched tokens by probability."""
    from uld_explorer.plots import plot_token_plan

    rng = np.random.default_rng(seed)
    t_tok = [f"t{i}" for i in range(30)] + [f"s{i}" for i in range(20)]  # 20 strings both sides have
    s_tok = [f"s{i}" for i in range(20)] + [f"u{i}" for i in range(15)]
    p, q = rng.dirichlet(np.full(50, 0.3)), rng.dirichlet(np.full(35, 0.3))
    r = ux.token_space_ot_top_k(p, q, t_tok, s_tok, k=12)
    lay = tidy.token_plan_layout(r, t_tok, s_tok, order="matched")
    kept_t = {t_tok[i] for i in r.teacher_index}
    twins = [t_tok[i] for i in r.teacher_index if t_tok[i] in {s_tok[j] for j in r.student_index}]
    m = len(twins)
    by_prob = [t_tok[i] for i in r.teacher_index]
    assert 0 < m < 12 and by_prob.index(twins[-1]) >= m  # a twinless token ranks above a twin: no staircase
    assert lay.row_labels[:m] == lay.col_labels[:m] == twins  # teacher probability order, on the diagonal
    assert lay.highlight[np.arange(m), np.arange(m)].all()
    assert lay.highlight[:m].sum() == lay.highlight[:, :m].sum() == m  # the twins' only cost-0 cells
    # then the unmatched of each side, most probable first; the rest bucket last
    t_rest = [t_tok[i] for i in r.teacher_index if t_tok[i] not in twins]
    s_rest = [s_tok[j] for j in r.student_index if s_tok[j] not in kept_t]
    assert lay.row_labels[m:] == t_rest + ["rest"] and lay.col_labels[m:] == s_rest + ["rest"]
    shown = plot_token_plan(r, t_tok, s_tok, order="matched").axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, r.plan[np.ix_(lay.rows, lay.cols)])


def test_cjk_token_strings_draw_without_missing_glyphs(monkeypatch):
    """Token strings in Japanese draw with real glyphs (fonts-noto-cjk; CI installs it and sets
    ULD_REQUIRE_FONTS=1), and without the fallback list matplotlib would draw empty boxes."""
    import io
    import os
    import warnings

    import uld_explorer as ux
    from uld_explorer import plots

    if len(plots.font_families()) == 1:
        if os.environ.get("ULD_REQUIRE_FONTS") == "1":
            pytest.fail("no CJK font installed (apt-get install -y fonts-noto-cjk)")
        pytest.skip("no CJK font installed (apt-get install -y fonts-noto-cjk)")
    teacher, student = ["東京", "は", "x"], ["東", "京"]
    r = ux.token_space_ot_top_k(np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4]), teacher, student, k=3)

    def draw() -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            plots.plot_token_plan(r, teacher, student).savefig(io.BytesIO(), format="png")
        return [str(w.message) for w in seen if "missing from font" in str(w.message)]

    assert draw() == []
    monkeypatch.setattr(plots, "font_families", lambda: ("DejaVu Sans",))
    assert draw(), "without the CJK fallback the same figure misses glyphs (the check can fail)"


def test_token_text_draws_every_glyph_or_escapes_it():
    """CJK, emoji, a zero-width joiner and '$' in token text: no empty box (matplotlib warns
    "Glyph ... missing from font(s)" per glyph it cannot draw) and no mathtext; a character
    that no installed font has is written as its escape."""
    import warnings

    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from uld_explorer.plots import text_fonts, plot_alignment_effects, plot_token_spans
    from uld_explorer.text import TokenizationReport, Tokenized

    text = "東京🍕\u200d$a$"  # bytes: 東 0-3, 京 3-6, 🍕 6-10, ZWJ 10-13, $a$ 13-16
    t = Tokenized(text, (0, 1, 2, 3, 4), ("東", "京", "🍕", "\u200d", "$a$"),
                  ((0, 3), (3, 6), (6, 10), (10, 13), (13, 16)), None)
    s = Tokenized(text, (0, 1, 2, 3), ("東京", "🍕", "\u200d", "$a$"), ((0, 6), (6, 10), (10, 13), (13, 16)), None)
    spans = tidy.token_spans_frame(TokenizationReport(t, s, (0, 6, 10, 13, 16), [], 1.0))
    effects = pd.DataFrame({"label": list(t.strings), "same_span": [None, False, True, True, True],
                            **{c: [0.5] * 5 for c in ("uld_positional", "uld_observed", "uld_bayesian",
                                                      "teacher_shared_mass", "student_shared_mass")}})
    cjk = 0x6771 in text_fonts()[1]  # 東: drawn where a CJK font is installed, else escaped
    for fig, texts in ((plot_token_spans(spans), lambda f: f.axes[0].texts),
                       (plot_alignment_effects(effects), lambda f: f.axes[1].get_xticklabels())):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            FigureCanvasAgg(fig).draw()
        assert not [w for w in caught if "missing from font" in str(w.message)]
        shown = " ".join(x.get_text() for x in texts(fig))
        assert "\\U0001f355" in shown and "🍕" not in shown      # no font draws the emoji here
        assert "\\u200d" in shown and "\u200d" not in shown     # an invisible joiner is named
        assert "$a$" in shown and all(not x.get_parse_math() for x in texts(fig) if "$" in x.get_text())
        assert ("東" in shown) == cjk and ("\\u6771" in shown) == (not cjk)


def test_token_spans_mark_the_common_boundaries_with_lines():
    """The dotted lines of plot_token_spans stand where both tokenizations cut (the segments, i.e.
    the byte-offset groups), line by line: ab|c|de|f against a|bc|d|ef cut together at 0, 3, 6."""
    from uld_explorer.plots import plot_token_spans
    from uld_explorer.text import TokenizationReport, Tokenized

    t = Tokenized("abcdef", (0, 1, 2, 3), ("ab", "c", "de", "f"), ((0, 2), (2, 3), (3, 5), (5, 6)), None)
    s = Tokenized("abcdef", (0, 1, 2, 3), ("a", "bc", "d", "ef"), ((0, 1), (1, 3), (3, 4), (4, 6)), None)
    report = TokenizationReport(t, s, (0, 3, 6), [], 1.0)
    for line_bytes, expected in ((48, [[0, 3, 6]]), (4, [[0, 3], [0, 3]])):   # one line, or two of 3 bytes
        ax = plot_token_spans(tidy.token_spans_frame(report, line_bytes=line_bytes)).axes[0]
        lines = [c for c in ax.collections if c.get_gid() == "segment-lines"]
        assert [sorted({round(seg[0][0]) for seg in c.get_segments()}) for c in lines] == expected


def test_select_position_patches_exactly_what_the_selection_changes():
    """The page builds the positions chart once per table and marks the position per click: the
    patched spec equals the chart built with that position selected."""
    import pandas as pd

    frame = pd.DataFrame({"index": [0, 0, 1, 1, 2, 2], "position": ["0 'a'"] * 2 + ["1 'b'"] * 2 + ["2 'c'"] * 2,
                          "label": list("aabbcc"), "kind": ["token"] * 6, "measure": ["uld_half", "kl_shared"] * 3,
                          "name": ["ULD / 2", "KL on shared strings (nats)"] * 3, "value": [0.1, 0.2, 0.3, None, 0.5, 0.6]})
    base = charts.chart_positions(frame, selected=None).to_dict()
    for index in (0, 2):
        assert charts.select_position(base, index) == charts.chart_positions(frame, selected=index).to_dict()
    assert base == charts.chart_positions(frame, selected=None).to_dict()  # the cached spec is not changed
    with pytest.raises(ValueError, match="not a chart_positions spec"):
        charts.select_position({"params": []}, 1)
