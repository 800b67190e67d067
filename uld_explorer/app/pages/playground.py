"""Playground: synthetic teacher/student distributions, KL vs exact OT vs ULD side by side.

UI only: widgets, layout and words. All numbers come from ``uld_explorer`` (PlaygroundConfig,
divergence_summary); the charts from ``uld_explorer.charts`` and, for the PNG / SVG exports,
the figures from ``uld_explorer.plots``, both drawn from ``uld_explorer.tidy``. The numbers render
first; the interactive charts are drawn by the browser.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

import uld_explorer as ux
from uld_explorer import charts, plots, tidy
from uld_explorer.app.common import export_figure, export_table, show_error, sync_url, url_notes, view_state
from uld_explorer.app.views import PLAYGROUND
from uld_explorer.lens import lens_frame, logit_gradients_from_probs, read_lens
from uld_explorer.app.views import bounds as view_bounds
from uld_explorer.measures import MEASURES, for_pair

PLAN_MAX = 40  # rows / columns drawn of a plan (the value is computed on all of them)
LENS_N = 10  # student tokens in the gradient lens
PARAMS = PLAYGROUND  # the view: PlaygroundConfig's defaults, the widgets' bounds
DEFAULTS = {k: p.default for k, p in PARAMS.items()}
bounds = partial(view_bounds, PARAMS)
view_state(PARAMS)
ss = st.session_state


def identity_blindness_demo() -> None:
    """Same vocabulary, same shape, shuffled token identities: ULD 0, KL large."""
    ss.V_s = ss.V_t
    ss.student_temperature = ss.teacher_temperature
    ss.shift = 0
    ss.noise = 0.0
    ss.permute_student = True


def reset_defaults() -> None:
    for key, value in DEFAULTS.items():
        ss[key] = value


# Linked views: a click on a rank of the sorted curves, or on a token's bar, picks a rank (ss.rank);
# the two tokens at that rank light up on the bars, the curves and both plans. The charts are keyed
# by the rank they were drawn for, so a rank picked elsewhere draws them afresh, nothing left over.
def rank_pick(key: str) -> None:
    state = ss.get(key)
    points = (state.selection.get(charts.RANK_SELECTION) or []) if state else []
    if points and points[0].get("rank") is not None:
        ss.rank = int(points[0]["rank"])


def token_pick(key: str, p: np.ndarray, q: np.ndarray) -> None:
    state = ss.get(key)
    points = (state.selection.get(charts.TOKEN_SELECTION) or []) if state else []
    if points and points[0].get("index") is not None:
        ss.rank = tidy.rank_of_token(p if points[0].get("side") == "teacher" else q, int(points[0]["index"]))


def clear_rank() -> None:
    ss.rank = 0


@st.cache_data(show_spinner=False, max_entries=256)
def compute(V_t, V_s, teacher_temperature, student_temperature, shift, noise, permute_student, seed, top_k,
            sinkhorn_epsilon, measures=()):
    """The pair and every measure of it (cached on the widget values and the registered measures)."""
    cfg = ux.PlaygroundConfig(
        V_t=V_t, V_s=V_s, teacher_temperature=teacher_temperature, student_temperature=student_temperature,
        shift=shift, noise=noise, permute_student=permute_student, seed=seed, top_k=top_k,
        sinkhorn_epsilon=sinkhorn_epsilon,
    )
    p, q = cfg.pair()
    return p, q, ux.divergence_summary(p, q, top_k=cfg.top_k, measures=measures,
                                       sinkhorn_epsilon=cfg.sinkhorn_epsilon)


def fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


# ---------------------------------------------------------------------------------- sidebar
with st.sidebar:
    st.header("Playground controls")
    st.button(
        "Identity blindness demo", key="identity_demo", on_click=identity_blindness_demo, type="primary",
        icon=":material/visibility_off:", width="stretch",
        help="Student = teacher with its tokens shuffled: V_s = V_t, same temperature, no shift, no noise, permuted.",
    )
    st.button("Reset", key="reset", on_click=reset_defaults, width="stretch")
    st.subheader("Teacher p")
    st.slider("teacher vocab size V_t", *bounds("V_t"), key="V_t")
    st.slider("teacher temperature (low = peaked)", *bounds("teacher_temperature"), step=0.05, key="teacher_temperature")
    st.subheader("Student q")
    st.slider("student vocab size V_s", *bounds("V_s"), key="V_s")
    st.slider("student temperature (low = peaked)", *bounds("student_temperature"), step=0.05, key="student_temperature")
    st.slider("shift (moves the student's preferences along the vocabulary)", *bounds("shift"), key="shift")
    st.slider("noise on the student's scores", *bounds("noise"), step=0.05, key="noise")
    st.checkbox("permute the student (shuffle its token identities)", key="permute_student")
    st.subheader("Other")
    st.number_input("seed", *bounds("seed"), step=1, key="seed")
    st.slider("top-k per side for token-space OT", *bounds("top_k"), key="top_k",
              help="Each side keeps its k most probable tokens; the rest is pooled in one bucket.")
    st.select_slider("Sinkhorn ε (relative to the largest cost)", PARAMS["sinkhorn_epsilon"].choices,
                     key="sinkhorn_epsilon",
                     help="Entropic OT on the same tokens and cost: small ε is close to exact OT (more iterations), "
                          "large ε blurs the plan towards p q^T.")

params = {key: ss[key] for key in DEFAULTS if key not in ("value_order", "rank")}

# ---------------------------------------------------------------------------------- header
st.title("Playground: KL vs exact OT vs ULD")
url_notes()
st.markdown(
    "A teacher $p$ over $V_t$ tokens and a student $q$ over $V_s$ tokens, drawn from shared token scores "
    "(the sliders on the left). Token $i$ is the string `tok`$i$ on both sides, so the two vocabularies "
    "share their first $\\min(V_t, V_s)$ strings. **KL** compares a token with the same token; **ULD** "
    "(Boizard et al. 2024) sorts both, zero-pads the shorter to $n=\\max(V_t,V_s)$ and compares rank by rank:"
)
st.latex(r"\mathrm{ULD}(p,q)=\sum_{i=1}^{n}\left|p_{(i)}-q_{(i)}\right| = n\,W_1(\text{values})")
st.latex(r"\tfrac12\,\mathrm{ULD}(p,q) \;\le\; \mathrm{OT}_{0/1}(p,q) \;\le\; 1")
st.markdown(
    "ULD is exact optimal transport between the probability **values**; halved, it is the token-space OT "
    r"you would get if token identities could be relabelled freely, hence a lower bound of $\mathrm{OT}_{0/1}$, "
    "the exact OT between the **tokens** with cost 0 for the same string and 1 otherwise."
)

try:
    p, q, s = compute(**params, measures=tuple(m.key for m in for_pair()))
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, "compute the divergences")
    st.stop()
t_tok, s_tok = ux.synthetic_tokens(ss.V_t), ux.synthetic_tokens(ss.V_s)

demo = (ss.permute_student and ss.V_t == ss.V_s and ss.shift == 0 and ss.noise == 0
        and ss.teacher_temperature == ss.student_temperature)
if demo:
    t_top, s_top = int(np.argmax(p)), int(np.argmax(q))
    top_tokens = (f"the teacher's top token is tok{t_top}, the student's is tok{s_top}" if t_top != s_top
                  else f"here the top token tok{t_top} happens to stay in place, the others move")
    st.info(
        f"**Identity blindness.** The student is the teacher with its token identities shuffled: the same "
        f"probabilities on the wrong tokens ({top_tokens}). KL = {fmt(s.kl)} nats and token-space OT = "
        f"{s.token_ot.value:.4f} see it. **ULD = {s.uld:.4f}**: the sorted curves coincide, and the value-space "
        f"OT matches every teacher token with a student token of the same probability for free. A student that "
        f"is confident in the wrong token is a perfect ULD student — which is why the paper keeps the "
        f"cross-entropy term on the teacher's text.",
        icon=":material/visibility_off:",
    )
n = max(ss.V_t, ss.V_s)
if abs(ss.shift) >= n or (ss.shift and abs(ss.shift) % n == 0):
    st.caption(f":material/info: The shift wraps around the {n} token scores: {ss.shift} is the same as "
               f"{ss.shift % n}.")

# ---------------------------------------------------------------------------------- numbers first
c = st.columns(4)
for col, key, value in ((c[0], "kl_shared", s.kl_shared), (c[1], "uld_half", s.uld / 2),
                        (c[2], "token_ot_string", s.token_ot.value), (c[3], "uld", s.uld)):
    col.metric(MEASURES[key].title, fmt(value), help=MEASURES[key].description)
cov = s.shared_coverage
if s.kl is None:
    st.caption(
        f"Plain KL(p‖q) is undefined: the vocabularies differ ({ss.V_t} vs {ss.V_s} tokens), so token i of one side "
        f"has no partner on the other. On the {s.shared_strings} strings both have"
        + (f" (covering {cov[0]:.0%} of p and {cov[1]:.0%} of q)" if cov else "")
        + " it is defined: that is the KL above."
    )
    with st.expander("Why plain KL needs one vocabulary"):
        st.write(s.kl_undefined_reason)
else:
    st.caption(f"One vocabulary: KL = {fmt(s.kl)}, reverse KL = {fmt(s.reverse_kl)}, JS = {fmt(s.js)}, "
               f"TV = {fmt(s.tv)} (= the token-space OT when nothing is truncated).")

st.altair_chart(charts.chart_scale({"ULD / 2 (identity blind)": s.uld / 2,
                                    "token-space OT (sees identities)": s.token_ot.value}), width="stretch")
if s.token_ot_below_uld_half:
    st.warning(
        f"Token-space OT ({s.token_ot.value:.4f}) is below ULD / 2 ({s.uld / 2:.4f}): with top-{ss.top_k} the two "
        f"rest buckets move to each other for free. Raise the top-k to see the full value, which ULD / 2 bounds.",
        icon=":material/info:",
    )

# ---------------------------------------------------------------------------------- the views
rank = int(ss.rank) if 1 <= ss.rank <= n else None
lit_t, lit_s = tidy.tokens_at_rank(p, q, rank) if rank else (None, None)
lit_labels = (t_tok[lit_t] if lit_t is not None else None, s_tok[lit_s] if lit_s is not None else None)
col_kl, col_uld = st.columns(2, gap="medium")
with col_kl:
    st.subheader("KL: token by token")
    dist_key = f"dist_pick_{rank}"
    st.altair_chart(charts.chart_distributions(p, q, t_tok, s_tok, selectable=True,
                                               lit=(lit_t, lit_s) if rank else None),
                    width="stretch", key=dist_key, on_select=partial(token_pick, dist_key, p, q),
                    selection_mode=charts.TOKEN_SELECTION)
    st.caption("Bars at the same x are the same string tok_i on both sides: KL divides p_i by q_i there. "
               "Hover for the token and its probability; click a bar to find its rank on the sorted curves.")
    export_figure(lambda: plots.plot_distributions(p, q), "distributions", "dist")
with col_uld:
    st.subheader("ULD: sorted L1")
    sorted_key = f"sorted_pick_{rank}"
    st.altair_chart(charts.chart_sorted(tidy.sorted_frame(p, q), log_x=n > 60, selectable=True, selected=rank),
                    width="stretch", key=sorted_key, on_select=partial(rank_pick, sorted_key),
                    selection_mode=charts.RANK_SELECTION)
    st.caption("Both sorted, largest first, the shorter zero-padded; the shaded area between the steps is ULD. "
               "Token identities are gone: only the shapes are compared. Click a rank to light its two tokens up "
               "everywhere.")
if rank:
    pv = p[lit_t] if lit_t is not None else 0.0
    qv = q[lit_s] if lit_s is not None else 0.0
    name = lambda label: f"**{label}**" if label is not None else "a padded zero"  # noqa: E731
    st.info(f"Rank {rank}: the teacher's {name(lit_labels[0])} ({pv:.4f}) meets the student's {name(lit_labels[1])} "
            f"({qv:.4f}); ULD adds |{pv:.4f} − {qv:.4f}| = {abs(pv - qv):.4f} there. Lit on the bars, the curves "
            "and both plans.", icon=":material/ads_click:")
    st.button("Clear the rank", key="clear_rank", on_click=clear_rank, icon=":material/close:")
    export_figure(lambda: plots.plot_sorted_curves(p, q, xscale="log" if n > 60 else "linear"), "sorted_curves",
                  "sorted")

st.subheader("Gradient lens: what each loss does to the student's logits")
lens = logit_gradients_from_probs(p, q, match=ux.match_strings(t_tok, s_tok))
lens_table = lens_frame(lens, top_n=LENS_N, student_tokens=s_tok)
pushes = tidy.lens_push_frame(lens_table)
lens_top = tidy.top_k_frame(p, q, t_tok, s_tok, k=LENS_N)
st.vega_lite_chart(charts.chart_lens(pushes, lens_top).to_dict(validate=False), width="content")  # validated in tests
st.info(read_lens(lens, 0, s_tok, t_tok), icon=":material/swap_vert:")
target = f"tok{lens.target[0]}" if lens.target[0] >= 0 else "none (the student has no token of that string)"
st.caption("Each bar is the push of one loss on one logit of the student, minus its gradient: what one step of "
           "gradient descent adds to that token's score (right: up, left: down; each loss on its own scale). The "
           "student's logits here are log q (the temperature slider only shapes q). CE's target is the string of "
           f"the teacher's favourite token: {target}. Try the identity blindness demo: ULD then pushes nothing.")
with st.popover("The lens's numbers", icon=":material/table:"):
    st.dataframe(lens_table, hide_index=True)
export_figure(lambda: plots.plot_lens(pushes, lens_top), "lens", "lens")

st.subheader("Exact OT (POT): who sends mass to whom")
col_tok, col_val = st.columns(2, gap="medium")
with col_tok:
    t = s.token_ot
    layout = tidy.token_plan_layout(t, t_tok, s_tok)
    crop = tidy.PlanLayout(layout.rows[:PLAN_MAX], layout.cols[:PLAN_MAX], layout.row_labels[:PLAN_MAX],
                           layout.col_labels[:PLAN_MAX], layout.highlight[:PLAN_MAX, :PLAN_MAX], layout.highlight_label)
    st.altair_chart(charts.chart_plan(tidy.plan_frame(t.plan, crop), title=f"token space (value {t.value:.4f})",
                                      lit=tidy.lit_cells(crop, *lit_labels) if rank else None), width="content")
    rest = (" The **rest** bucket pools the mass outside the top-k; rest-to-rest costs 0 (two unknown tokens may "
            "be the same), every other move 1." if t.teacher_truncated_mass or t.student_truncated_mass else "")
    shown = f" Showing {len(crop.rows)} of {len(layout.rows)} rows." if len(layout.rows) > PLAN_MAX else ""
    st.caption(f"Outlined: the same string (cost 0).{rest}{shown}")
    export_figure(lambda: plots.plot_token_plan(t, t_tok, s_tok), "token_plan", "tplan")
with col_val:
    if s.value_ot is not None:
        vl = tidy.value_plan_layout(s.value_ot, p, q, t_tok, s_tok, order=ss.value_order)
        vcrop = tidy.PlanLayout(vl.rows[:PLAN_MAX], vl.cols[:PLAN_MAX], vl.row_labels[:PLAN_MAX],
                                vl.col_labels[:PLAN_MAX], vl.highlight[:PLAN_MAX, :PLAN_MAX], vl.highlight_label)
        st.altair_chart(charts.chart_plan(tidy.plan_frame(s.value_ot.plan, vcrop), mass_title="matched",
                                          title=f"value space (= ULD {s.value_ot.value:.4f})",
                                          lit=tidy.lit_cells(vcrop, *lit_labels) if rank else None), width="content")
        st.radio("value-space plan order", PARAMS["value_order"].choices, key="value_order", horizontal=True,
                 help="rank: both sorted by probability; ULD's own pairing (i-th largest with i-th largest) "
                      "is the diagonal, and POT's plan, equally optimal, keeps part of it and swaps the rest at "
                      "the same cost. vocab: vocabulary order, where the same plan looks scattered because "
                      "tokens are matched by value, not by identity.")
        vshown = f" Showing the first {len(vcrop.rows)} of {n}." if n > PLAN_MAX else ""
        st.caption(f"Each teacher value is matched to one student value (cell = 1): outlined where they are the "
                   f"same string.{vshown}")
        export_figure(lambda: plots.plot_value_plan(s.value_ot, p, q, t_tok, s_tok, order=ss.value_order),
                      "value_plan", "vplan")
    else:
        st.info(f"n = {n} > {ux.MAX_SUPPORT}: value-space OT skipped, the closed form gives ULD.")

# ---------------------------------------------------------------------------------- Sinkhorn
st.subheader("Entropic OT (Sinkhorn): the same plan, blurred by ε")
sk = s.sinkhorn
col_exact, col_sk = st.columns(2, gap="medium")
with col_exact:
    st.altair_chart(charts.chart_plan(tidy.plan_frame(t.plan, crop), title=f"exact (value {t.value:.4f})"),
                    width="content")
with col_sk:
    sk_value = "not converged" if not sk.converged else f"{sk.value:.4f}"
    st.altair_chart(charts.chart_plan(tidy.plan_frame(sk.plan, crop),
                                      title=f"Sinkhorn, ε = {sk.epsilon:g} (value {sk_value})"), width="content")
    export_figure(lambda: plots.plot_token_plan(sk, t_tok, s_tok, title=f"Sinkhorn plan, epsilon = {sk.epsilon:g}"),
                  "sinkhorn_plan", "skplan")
if sk.converged:
    st.caption(
        f"POT's log-domain Sinkhorn (reg = ε × the largest cost = {sk.reg:.3g}) converged in {sk.iterations:,} "
        f"iterations: the plan's marginals are off by {sk.marginal_error:.1g}. Its cost ⟨P_ε, C⟩ = {sk.value:.4f} is "
        f"{sk.value - t.value:.2g} above the exact {t.value:.4f}; the gap closes as ε → 0, and the plan's entropy "
        f"({sk.entropy:.3f} nats) grows with ε as the mass spreads over more cells."
    )
else:
    st.warning(
        f"Sinkhorn did not converge in {sk.iterations:,} iterations at ε = {sk.epsilon:g}: the plan's marginals are "
        f"off by {sk.marginal_error:.3g}, so its value is not shown. Raise ε or lower the top-k.",
        icon=":material/warning:",
    )

# ---------------------------------------------------------------------------------- one table
st.subheader("All values")
rows = pd.DataFrame(s.rows())
st.dataframe(
    rows, hide_index=True,
    column_config={
        "key": None,  # the measure's key: in the exports, not on the page
        "divergence": st.column_config.TextColumn("divergence", width="medium"),
        "value": st.column_config.NumberColumn("value", format="%.6f"),
        "scale": st.column_config.TextColumn("scale", width="small"),
        "note": st.column_config.TextColumn("note", width="large"),
    },
)
export_table(rows, {**params, "V_t": ss.V_t, "V_s": ss.V_s}, "playground_values", "values")
sync_url(PARAMS)
