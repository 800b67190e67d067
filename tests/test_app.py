"""The Streamlit app, headless (AppTest: the real router app.py, the Playground page), and uld_explorer.plots.

The values on the page are checked against an independent recomputation with the library
(synthetic_pair + divergence_summary on the same widget values).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch
from streamlit.testing.v1 import AppTest

import uld_explorer as ux
from uld_explorer.measures import MEASURES
from uld_explorer.plots import plot_distributions, plot_sorted_curves, plot_transport_plan

ROUTER = Path(__file__).resolve().parents[1] / "app.py"
APP = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "playground.py"
TIMEOUT = 90  # the first run imports torch and POT; a loaded CI machine is slow

PARAMS = ("V_t", "V_s", "teacher_temperature", "student_temperature", "shift", "noise",
          "permute_student", "seed", "top_k", "sinkhorn_epsilon")


# ------------------------------------------------------------------------------------ helpers
def run_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def page_table(at: AppTest) -> dict[str, float | None]:
    """The page's values table as {measure key: value} (None where undefined)."""
    tables = [d.value for d in at.dataframe if "divergence" in d.value.columns]  # the lens has its own
    assert len(tables) == 1
    df = tables[0]
    assert list(df.columns) == ["key", "divergence", "value", "scale", "note"]
    return {
        row.key: (None if row.value is None or (isinstance(row.value, float) and math.isnan(row.value))
                         else float(row.value))
        for row in df.itertuples()
    }


def library_summary(at: AppTest) -> ux.DivergenceSummary:
    """Recompute, independently of the page, from the widget values the page used."""
    kw = {k: at.session_state[k] for k in PARAMS}
    p, q = ux.synthetic_pair(
        int(kw["V_t"]), int(kw["V_s"]), teacher_temperature=kw["teacher_temperature"],
        student_temperature=kw["student_temperature"], shift=int(kw["shift"]), noise=kw["noise"],
        permute_student=bool(kw["permute_student"]), seed=int(kw["seed"]),
    )
    return ux.divergence_summary(p, q, top_k=int(kw["top_k"]), sinkhorn_epsilon=kw["sinkhorn_epsilon"])


def assert_table_matches_library(at: AppTest) -> ux.DivergenceSummary:
    s = library_summary(at)
    table = page_table(at)
    expected = {r["key"]: r["value"] for r in s.rows()}
    assert table.keys() == expected.keys()
    for name, value in expected.items():
        if value is None:
            assert table[name] is None, name
        else:
            assert table[name] == pytest.approx(value, abs=1e-12), name
    return s


# ------------------------------------------------------------------------------------ app
def test_default_page_shows_table_and_kl_reason():
    at = run_app()
    assert "Playground" in at.title[0].value
    assert at.session_state["V_t"] != at.session_state["V_s"]
    s = assert_table_matches_library(at)
    assert s.kl is None
    # one story: plain KL is undefined (the library's own reason, in an expander), KL on the shared
    # strings tok0..tok13 is the number shown, with its coverage
    reason = str(ux.VocabularyMismatchError(s.V_t, s.V_s))
    assert not at.warning
    assert [e.label for e in at.expander] == ["Why plain KL needs one vocabulary"]
    assert reason in [m.value for m in at.expander[0].markdown]
    assert any(m.label == MEASURES["kl_shared"].title and m.value == f"{s.kl_shared:.4f}" for m in at.metric)
    assert s.shared_strings == 14 and s.shared_coverage[1] == pytest.approx(1.0)
    assert any(c.value.startswith("Plain KL(p‖q) is undefined") and "14 strings both have" in c.value for c in at.caption)
    assert any(m.label == MEASURES["uld_half"].title and m.value == f"{s.uld / 2:.4f}" for m in at.metric)
    assert any(m.label == MEASURES["uld"].title and m.value == f"{s.uld:.4f}" for m in at.metric)
    # the identity-blindness note only shows in the demo state (the lens's words are the other info)
    assert not [i for i in at.info if "**Identity blindness.**" in i.value]


def test_the_epsilon_slider_blurs_the_sinkhorn_plan_beside_the_exact_one():
    """The Sinkhorn row and plan follow the ε slider: the table matches the library at each ε, the
    value falls to the exact token OT as ε shrinks, and the iterations are reported in words."""
    at = run_app()
    values, entropies = [], []
    for eps in (1.0, 0.2, 0.01):
        at.select_slider(key="sinkhorn_epsilon").set_value(eps).run()
        assert_clean(at)
        s = assert_table_matches_library(at)
        assert s.sinkhorn.converged and s.sinkhorn.epsilon == eps
        assert any(f"converged in {s.sinkhorn.iterations:,} iterations" in c.value for c in at.caption)
        values.append(page_table(at)["sinkhorn_ot"])
        entropies.append(s.sinkhorn.entropy)
    exact = page_table(at)["token_ot_string"]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(exact, abs=1e-4)
    assert entropies == sorted(entropies, reverse=True)


def test_equal_vocab_gives_numeric_kl_then_mismatch_gives_reason():
    at = run_app()
    at.slider(key="V_s").set_value(at.session_state["V_t"]).run()
    assert_clean(at)
    s = assert_table_matches_library(at)
    assert s.kl is not None and math.isfinite(page_table(at)["kl"])
    assert not at.warning and not at.expander  # one vocabulary: nothing to explain
    assert s.kl_shared == pytest.approx(s.kl, rel=1e-12)  # every string shared: the same KL
    assert any(m.label == MEASURES["kl_shared"].title and m.value == f"{s.kl:.4f}" for m in at.metric)
    assert any(c.value.startswith("One vocabulary: KL = ") for c in at.caption)

    at.slider(key="V_t").set_value(37)
    at.slider(key="V_s").set_value(9)
    at.run()
    assert_clean(at)
    s = assert_table_matches_library(at)
    assert page_table(at)["kl"] is None
    assert str(ux.VocabularyMismatchError(37, 9)) in [m.value for m in at.expander[0].markdown]


def test_identity_blindness_button():
    at = run_app()
    at.slider(key="teacher_temperature").set_value(0.5)
    at.button(key="identity_demo").click()  # one rerun: the new temperature, then the callback
    at.run()
    assert_clean(at)
    ss = at.session_state
    assert ss["V_s"] == ss["V_t"] and ss["permute_student"] and ss["shift"] == 0 and ss["noise"] == 0
    assert ss["student_temperature"] == ss["teacher_temperature"] == 0.5
    table = page_table(at)
    assert abs(table["uld"]) <= 1e-9
    assert abs(table["value_ot"]) <= 1e-9
    assert table["kl"] > 0.1
    assert table["token_ot_string"] > 0.1  # token-space OT sees the shuffle
    assert_table_matches_library(at)
    # the same pair built by hand, not from the page's session state
    p, q = ux.synthetic_pair(ss["V_t"], ss["V_t"], teacher_temperature=0.5, student_temperature=0.5,
                             permute_student=True, seed=ss["seed"])
    assert table["kl"] == pytest.approx(float(ux.kl_divergence(p, q)), abs=1e-12)
    demo = [i.value for i in at.info if "**Identity blindness.**" in i.value]
    assert len(demo) == 1

    at.button(key="reset").click().run()
    assert_clean(at)
    assert not [i for i in at.info if "**Identity blindness.**" in i.value] and at.session_state["V_s"] == 14


def page_lens(at: AppTest):
    """The page's lens table (found by its registry columns) and the library's lens of the same pair."""
    from uld_explorer.lens import lens_frame, logit_gradients_from_probs, read_lens

    kw = {k: at.session_state[k] for k in PARAMS}
    p, q = ux.synthetic_pair(
        int(kw["V_t"]), int(kw["V_s"]), teacher_temperature=kw["teacher_temperature"],
        student_temperature=kw["student_temperature"], shift=int(kw["shift"]), noise=kw["noise"],
        permute_student=bool(kw["permute_student"]), seed=int(kw["seed"]),
    )
    t_tok, s_tok = ux.synthetic_tokens(len(p)), ux.synthetic_tokens(len(q))
    lens = logit_gradients_from_probs(p, q, match=ux.match_strings(t_tok, s_tok))
    shown = next(d.value for d in at.dataframe if "push_uld" in d.value.columns)
    return shown, lens_frame(lens, top_n=10, student_tokens=s_tok), read_lens(lens, 0, s_tok, t_tok)


def test_the_gradient_lens_shows_the_library_s_pushes():
    at = run_app()
    shown, frame, words = page_lens(at)
    assert list(shown.columns) == list(frame.columns) and shown["id"].tolist() == frame["id"].tolist()
    for col in [c for c in frame.columns if c.startswith(("push_", "prob"))]:
        assert shown[col].to_numpy() == pytest.approx(frame[col].to_numpy(), rel=1e-9, abs=1e-12), col
    assert words in [i.value for i in at.info]
    at.button(key="identity_demo").click().run()  # a permuted student: ULD pushes nothing, CE and KL do
    assert_clean(at)
    shown, frame, words = page_lens(at)
    assert not shown["push_uld"].any() and shown["push_kl"].abs().max() > 1e-3
    assert words in [i.value for i in at.info] and "ULD pushes nothing at all" in words


def test_large_vocab_with_truncated_token_ot():
    at = run_app()
    at.slider(key="V_t").set_value(300)
    at.slider(key="V_s").set_value(250)
    at.slider(key="top_k").set_value(10)
    at.run()
    assert_clean(at)
    s = assert_table_matches_library(at)
    assert s.token_ot.teacher_truncated_mass > 0
    assert any("The **rest** bucket pools the mass outside the top-k" in c.value for c in at.caption)
    assert any("Showing the first 40 of 300" in c.value for c in at.caption)  # the 300 x 300 value plan, cropped to draw


# ------------------------------------------------------------------------------------ plots
@pytest.fixture
def pair():
    return ux.synthetic_pair(12, 7, shift=2, noise=0.3, seed=3)


def test_plot_distributions_returns_figure(pair):
    p, q = pair
    fig = plot_distributions(p, q)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    # one bar per token, heights = the probabilities
    bars = [a.collections[0] for a in fig.axes]
    assert [len(b.get_paths()) for b in bars] == [12, 7]
    heights = [[path.vertices[:, 1].max() for path in b.get_paths()] for b in bars]
    np.testing.assert_allclose(heights[0], p)
    np.testing.assert_allclose(heights[1], q)
    ax = Figure().subplots()
    assert plot_distributions(p, q, ax=ax) is ax.figure
    assert sum(len(c.get_paths()) for c in ax.collections) == 19
    with pytest.raises(ValueError, match="p must sum to 1"):
        plot_distributions(p * 2, q)


@pytest.mark.parametrize("shape", [(12, 7), (5, 5), (3, 9)])
def test_plot_sorted_curves_area_is_uld(shape):
    p, q = ux.synthetic_pair(*shape, shift=1, noise=0.7, seed=1)
    uld = float(ux.uld_distance(p, q))
    fig = plot_sorted_curves(p, q)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert f"{uld:.4f}" in ax.get_title()
    (area,) = [a for a in ax.patches if isinstance(a, StepPatch) and a.get_gid() == "uld-area"]
    values, edges, baseline = area.get_data()
    assert np.all(np.diff(edges) == 1.0)
    assert float(np.sum((values - baseline) * np.diff(edges))) == pytest.approx(uld, abs=1e-12)
    ax2 = Figure().subplots()
    assert plot_sorted_curves(p, q, ax=ax2, xscale="log") is ax2.figure


def test_plot_transport_plan(pair):
    p, q = pair
    s = ux.divergence_summary(p, q)
    fig = plot_transport_plan(s.value_ot.plan, title="value plan", row_ticklabels=[str(i) for i in range(12)],
                              highlight=np.eye(12, dtype=bool))
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heatmap + colorbar
    assert fig.axes[0].get_title() == "value plan"
    assert fig.axes[0].images[0].get_array().shape == (12, 12)
    with pytest.raises(ValueError, match="row_ticklabels"):
        plot_transport_plan(s.value_ot.plan, row_ticklabels=["a"])
    with pytest.raises(ValueError, match="2-D"):
        plot_transport_plan(np.ones(3))


def test_plot_token_plan_puts_tokens_back_in_vocabulary_order(pair):
    """The plan's rows / columns in vocabulary order (rest bucket last, only when it holds mass),
    so the same-string cells of a shared vocabulary lie on the diagonal."""
    from uld_explorer.plots import plot_token_plan

    p, q = pair
    t_tok, s_tok = ux.synthetic_tokens(12), ux.synthetic_tokens(7)
    r = ux.token_space_ot_top_k(p, q, t_tok, s_tok, k=5)
    fig = plot_token_plan(r, t_tok, s_tok)
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    cols = [t.get_text() for t in ax.get_xticklabels()]
    assert rows == [t_tok[i] for i in sorted(r.teacher_index)] + ["rest"]
    assert cols == [s_tok[j] for j in sorted(r.student_index)] + ["rest"]
    shown = ax.images[0].get_array()
    order_t = list(np.argsort(r.teacher_index)) + [5]
    order_s = list(np.argsort(r.student_index)) + [5]
    np.testing.assert_allclose(shown, r.plan[np.ix_(order_t, order_s)])
    full = ux.token_space_ot_top_k(p, q, t_tok, s_tok, k=50)  # nothing truncated: no rest row / column
    labels = [t.get_text() for t in plot_token_plan(full, t_tok, s_tok).axes[0].get_yticklabels()]
    assert "rest" not in labels and labels == t_tok


def test_plot_value_plan_labels_padding_and_outlines_same_strings():
    from uld_explorer.plots import plot_value_plan

    p, q = ux.synthetic_pair(5, 3, shift=1, seed=2)
    r = ux.value_space_ot(p, q)
    fig = plot_value_plan(r, p, q, ux.synthetic_tokens(5), ux.synthetic_tokens(3), order="vocab")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tok0", "tok1", "tok2", "pad", "pad"]
    np.testing.assert_allclose(ax.images[0].get_array(), r.plan)
    outlined = ax.collections[0].get_offsets()  # (col, row) of the same-string cells: tok_i with tok_i
    assert sorted(map(tuple, np.asarray(outlined).astype(int))) == [(0, 0), (1, 1), (2, 2)]
    with pytest.raises(ValueError, match="n = max"):
        plot_value_plan(r, p, q, ux.synthetic_tokens(4), ux.synthetic_tokens(3))
    # rank order: here POT's plan matches the student's 3 values with the teacher's top 3 (see test_plots.py)
    ranked = plot_value_plan(r, p, q, ux.synthetic_tokens(5), ux.synthetic_tokens(3), order="rank")
    A = np.asarray(ranked.axes[0].images[0].get_array())
    assert np.trace(A[:3, :3]) == pytest.approx(3.0)  # the student's 3 values meet the teacher's top 3
    assert A.sum() == pytest.approx(5.0)  # the rest: teacher tail vs padding zeros (ties: any matching)


def test_a_picked_rank_lights_its_two_tokens_on_every_view():
    """Linked views (the rank a click on the sorted curves or on a bar picks, here from the URL):
    the page names the two tokens at that rank, restated here with argsort, and every chart's spec
    lights them: the bars, the curves' rule, the row and column of both plans."""
    import json

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["rank"] = "3"
    at.run()
    assert_clean(at)
    p, q = ux.PlaygroundConfig().pair()
    i, j = int(np.argsort(-p, kind="stable")[2]), int(np.argsort(-q, kind="stable")[2])
    said = " ".join(x.value for x in at.info)
    assert f"Rank 3: the teacher's **tok{i}** ({p[i]:.4f}) meets the student's **tok{j}** ({q[j]:.4f})" in said
    assert f"= {abs(p[i] - q[j]):.4f} there" in said
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    text = [json.dumps(s) for s in specs]
    lit = [t for t in text if 'datum.lit' in t]
    assert lit, "the bars light the two tokens"
    assert any('"rank": 3.0' in t and "strokeDash" in t for t in text), "the curves' rule at rank 3"
    framed = [t for t in text if '"fillOpacity": 0.08' in t]
    assert len(framed) == 2, "both plans frame the row and the column"
    at.button(key="clear_rank").click().run()
    assert at.session_state["rank"] == 0 and not [x for x in at.info if x.value.startswith("Rank ")]
    import uld_explorer.tidy as tidy

    for r in range(1, max(p.size, q.size) + 1):  # a token's rank and the tokens at a rank: inverses
        a, b = tidy.tokens_at_rank(p, q, r)
        assert (a is None or tidy.rank_of_token(p, a) == r) and (b is None or tidy.rank_of_token(q, b) == r)


def test_the_router_opens_on_the_lesson_and_reaches_the_playground():
    at = AppTest.from_file(str(ROUTER), default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert at.title[0].value == "Learn: from KL to ULD in eight steps"
    at.switch_page(str(APP.relative_to(ROUTER.parent))).run()
    assert_clean(at)
    assert at.title[0].value == "Playground: KL vs exact OT vs ULD"


def test_playground_view_lives_in_the_url():
    """Reopening the URL a view wrote gives the same widgets and the same numbers; bad values fall
    back to the defaults."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in {"V_t": "40", "V_s": "25", "noise": "0.7", "seed": "3", "permute_student": "1"}.items():
        at.query_params[k] = v
    at.run()
    assert_clean(at)
    assert (at.session_state["V_t"], at.session_state["V_s"], at.session_state["noise"], at.session_state["seed"],
            at.session_state["permute_student"]) == (40, 25, 0.7, 3, True)
    first = assert_table_matches_library(at)
    at.slider(key="shift").set_value(4).run()
    assert_clean(at)
    params = {k: v if isinstance(v, str) else v[0] for k, v in at.query_params.items()}
    assert params["shift"] == "4" and params["V_t"] == "40"
    again = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in params.items():
        again.query_params[k] = v
    again.run()
    assert_clean(again)
    assert page_table(again) == page_table(at)
    assert assert_table_matches_library(again).rows() != first.rows()  # the shift changed the view
    bad = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    bad.query_params["V_t"], bad.query_params["seed"] = "999999", "-5"
    bad.run()
    assert_clean(bad)
    defaults = ux.PlaygroundConfig()
    assert (bad.session_state["V_t"], bad.session_state["seed"]) == (defaults.V_t, defaults.seed)
