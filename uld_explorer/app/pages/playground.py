"""Playground: synthetic teacher/student distributions, KL vs exact OT vs ULD side by side.

UI only: widgets, layout and text. All numbers come from ``uld_explorer`` (PlaygroundConfig,
divergence_summary); all pictures from ``uld_explorer.plots``.
"""

from __future__ import annotations

import io
from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

import uld_explorer as ux
from uld_explorer.plots import plot_distributions, plot_sorted_curves, plot_token_plan, plot_value_plan

# Widget keys and their defaults: the library's PlaygroundConfig (``uld-explorer playground``
# uses the same). The widgets read them from st.session_state, so the identity-blindness button
# can set them in a callback.
DEFAULTS = asdict(ux.PlaygroundConfig())
V_MAX = 300  # exact value-space OT is an n x n problem: keep the page responsive

for key, value in DEFAULTS.items():
    st.session_state.setdefault(key, value)


def identity_blindness_demo() -> None:
    """Same vocabulary, same shape, shuffled token identities: ULD 0, KL large."""
    st.session_state.V_s = st.session_state.V_t
    st.session_state.student_temperature = st.session_state.teacher_temperature
    st.session_state.shift = 0
    st.session_state.noise = 0.0
    st.session_state.permute_student = True


def reset_defaults() -> None:
    for key, value in DEFAULTS.items():
        st.session_state[key] = value


@st.cache_data(show_spinner=False, max_entries=256)
def compute(V_t, V_s, teacher_temperature, student_temperature, shift, noise, permute_student, seed, top_k):
    """The pair and every divergence of it (cached on the widget values)."""
    cfg = ux.PlaygroundConfig(
        V_t=V_t, V_s=V_s, teacher_temperature=teacher_temperature, student_temperature=student_temperature,
        shift=shift, noise=noise, permute_student=permute_student, seed=seed, top_k=top_k,
    )
    p, q = cfg.pair()
    return p, q, ux.divergence_summary(p, q, top_k=cfg.top_k)


def png(fig) -> bytes:
    """Render a figure once. The figures are ``matplotlib.figure.Figure`` objects built outside
    pyplot (never registered there, nothing to close); constrained layout already trims them, so
    no ``bbox_inches="tight"`` second draw (st.pyplot's default, and its savefig kwargs are
    deprecated)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=170)
    fig.clear()
    return buf.getvalue()


@st.cache_data(show_spinner=False, max_entries=64)
def pictures(V_t, V_s, teacher_temperature, student_temperature, shift, noise, permute_student, seed, top_k):
    """PNG bytes of the four figures (cached like the numbers: moving a slider back is instant)."""
    p, q, s = compute(V_t, V_s, teacher_temperature, student_temperature, shift, noise, permute_student,
                      seed, top_k)
    n = max(V_t, V_s)
    t_tok, s_tok = ux.synthetic_tokens(V_t), ux.synthetic_tokens(V_s)
    out = {
        "distributions": png(plot_distributions(p, q)),
        "sorted": png(plot_sorted_curves(p, q, xscale="log" if n > 60 else "linear")),
    }
    if s.value_ot is not None:
        out["value_plan"] = png(plot_value_plan(s.value_ot, p, q, t_tok, s_tok))
    out["token_plan"] = png(plot_token_plan(s.token_ot, t_tok, s_tok))
    return out


def fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


# ---------------------------------------------------------------------------------- sidebar
with st.sidebar:
    st.header("Playground controls")
    st.button(
        "Identity blindness demo", key="identity_demo", on_click=identity_blindness_demo, type="primary",
        icon=":material/visibility_off:", width="stretch",
        help="Student = teacher with its tokens shuffled: V_s = V_t, same temperature, no shift, "
             "no noise, permuted.",
    )
    st.button("Reset", key="reset", on_click=reset_defaults, width="stretch")
    st.subheader("Teacher p")
    st.slider("teacher vocab size V_t", 2, V_MAX, key="V_t")
    st.slider("teacher temperature (low = peaked)", 0.1, 5.0, step=0.05, key="teacher_temperature")
    st.subheader("Student q")
    st.slider("student vocab size V_s", 2, V_MAX, key="V_s")
    st.slider("student temperature (low = peaked)", 0.1, 5.0, step=0.05, key="student_temperature")
    st.slider("shift (moves the student's preferences along the vocabulary)", -20, 20, key="shift")
    st.slider("noise on the student's scores", 0.0, 3.0, step=0.05, key="noise")
    st.checkbox("permute the student (shuffle its token identities)", key="permute_student")
    st.subheader("Other")
    st.number_input("seed", min_value=0, max_value=1_000_000, step=1, key="seed")
    st.slider("top-k per side for token-space OT", 1, V_MAX, key="top_k",
              help="Each side keeps its k most probable tokens; the rest is pooled in one bucket.")

ss = st.session_state
params = {key: ss[key] for key in DEFAULTS}

# ---------------------------------------------------------------------------------- header
st.title("Playground: KL vs exact OT vs ULD")
st.markdown(
    r"""
A teacher $p$ over $V_t$ tokens and a student $q$ over $V_s$ tokens, drawn from shared token scores
(move the sliders on the left). **KL** compares token $i$ with token $i$, so it needs one vocabulary:
$\mathrm{KL}(p\,\|\,q)=\sum_i p_i \log \frac{p_i}{q_i}$.
**ULD** (Boizard et al. 2024) sorts both, zero-pads the shorter to $n=\max(V_t, V_s)$ and compares
rank by rank, ignoring which token is which:

$$
\mathrm{ULD}(p,q)=\sum_{i=1}^{n}\left|p_{(i)}-q_{(i)}\right|
= n\cdot W_1\Big(\tfrac1n\textstyle\sum_i\delta_{p_i},\ \tfrac1n\sum_j\delta_{q_j}\Big)
= 2\,\mathrm{TV}\big(p_{\downarrow},\,q_{\downarrow}\big)\ \in [0, 2]
$$

i.e. exact optimal transport between the probability **values** (cost $|p_i-q_j|$).
Exact OT between the **tokens** (cost 0 for the same token string, 1 otherwise) is what it
approximates away.
"""
)

try:
    p, q, s = compute(**params)
    figs = pictures(**params)
except MemoryError:
    st.error("Out of memory computing these divergences: lower the vocabulary sizes or the top-k in the sidebar.")
    st.stop()
except Exception as err:  # never a traceback on the page
    st.error(f"Could not compute the divergences: {err}")
    st.stop()

demo = (
    ss.permute_student and ss.V_t == ss.V_s and ss.shift == 0 and ss.noise == 0
    and ss.teacher_temperature == ss.student_temperature
)
if demo:
    t_top, s_top = int(np.argmax(p)), int(np.argmax(q))
    top_tokens = (
        f"the teacher's top token is tok{t_top}, the student's is tok{s_top}" if t_top != s_top
        else f"here the top token tok{t_top} happens to stay in place, the others move"
    )
    st.info(
        f"**Identity blindness.** The student is the teacher with its token identities shuffled: "
        f"the same probabilities on the wrong tokens ({top_tokens}). "
        f"KL = {fmt(s.kl)} nats and token-space OT = {s.token_ot.value:.4f} see it. "
        f"**ULD = {s.uld:.4f}**: the sorted curves coincide, and the value-space OT plan matches every "
        f"teacher token with a student token of the same probability for free. A student that is "
        f"confident in the wrong token is a perfect ULD student — which is why the paper keeps the "
        f"cross-entropy term on the teacher's text.",
        icon=":material/visibility_off:",
    )

# ---------------------------------------------------------------------------------- three views
col_kl, col_ot, col_uld = st.columns(3, gap="medium")

with col_kl:
    st.subheader("KL: token by token")
    if s.kl is None:
        st.metric("KL(p‖q)", "undefined")
    else:
        st.metric("KL(p‖q), nats", fmt(s.kl))
        st.caption(f"reverse KL(q‖p) = {fmt(s.reverse_kl)}, JS = {fmt(s.js)}, TV = {fmt(s.tv)}")
    st.image(figs["distributions"], width="stretch")
    st.caption("Bars at the same x are the same token (tok0, tok1, ...): KL divides p_i by q_i there.")
    if s.kl is None:
        st.warning(s.kl_undefined_reason, icon=":material/block:")

with col_ot:
    st.subheader("Exact OT (POT)")
    m1, m2, m3 = st.columns(3)
    m1.metric("value-space OT", fmt(None if s.value_ot is None else s.value_ot.value),
              help="n · W1 between the n zero-padded probability VALUES, cost |p_i − q_j|: equals ULD, in [0, 2].")
    m2.metric("ULD / 2", f"{s.uld / 2:.4f}",
              help="Rank-space OT: the token-space OT you would get if token identities could be relabelled "
                   "freely. In [0, 1], like token-space OT, and never above it (without truncation).")
    m3.metric("token-space OT", f"{s.token_ot.value:.4f}",
              help="Exact OT between the TOKENS (top-k + rest bucket per side), cost 0 for the same "
                   "token string, 1 otherwise: the mass that cannot stay on its own token. In [0, 1].")
    if "value_plan" in figs:
        st.image(figs["value_plan"], width="stretch")
    else:
        st.info(f"n = {max(s.V_t, s.V_s)} > {ux.MAX_SUPPORT}: value-space OT skipped, the closed form gives ULD.")
    st.image(figs["token_plan"], width="stretch")
    t = s.token_ot
    if t.teacher_truncated_mass or t.student_truncated_mass:
        st.caption(
            f"top-{ss.top_k}: mass pooled in the rest bucket — teacher {t.teacher_truncated_mass:.3g}, "
            f"student {t.student_truncated_mass:.3g}."
        )
    if s.token_ot_below_uld_half:
        st.warning(
            f"Token-space OT ({t.value:.4f}) is below ULD / 2 ({s.uld / 2:.4f}): the two rest buckets move "
            f"to each other for free. Raise the top-k to see the full-vocabulary value, which ULD / 2 bounds.",
            icon=":material/info:",
        )

with col_uld:
    st.subheader("ULD: sorted L1")
    st.metric("ULD(p, q)", f"{s.uld:.4f}")
    st.image(figs["sorted"], width="stretch")
    st.caption(
        "Both distributions sorted, largest first; the shaded area between the step curves is ULD. "
        "Token identities are gone: only the shapes are compared."
    )

# ---------------------------------------------------------------------------------- one table
st.subheader("All values")
st.dataframe(
    pd.DataFrame(s.rows()),
    hide_index=True,
    column_config={
        "divergence": st.column_config.TextColumn("divergence", width="medium"),
        "value": st.column_config.NumberColumn("value", format="%.6f"),
        "scale": st.column_config.TextColumn("scale", width="small"),
        "note": st.column_config.TextColumn("note", width="large"),
    },
)
