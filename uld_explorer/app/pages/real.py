"""Real distributions: a teacher and a student on your text, position by position.

UI only: widgets, layout and words. Every number comes from the library (``compare_distributions``,
``next_token_distributions``, ``read_row``), every picture from ``uld_explorer.charts`` (on the
page) or ``uld_explorer.plots`` (exports), both drawn from ``uld_explorer.tidy``.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial

import numpy as np
import streamlit as st

import uld_explorer as ux
from uld_explorer import charts, plots, tidy
from uld_explorer.app.cached import comparison, distributions, model, positions_spec
from uld_explorer.app.common import (
    example_buttons,
    export_figure,
    export_table,
    run_with_progress,
    show_error,
    stop_here,
    sync_url,
    url_notes,
    view_state,
)
from uld_explorer.app.views import EXAMPLES, OTHER_MODEL, REAL
from uld_explorer.app.views import bounds as view_bounds
from uld_explorer.checks import check_text
from uld_explorer.compare import ComparisonConfig, check_memory, position_vectors, read_row
from uld_explorer.lens import base_target, lens_frame, logit_gradients_from_probs, read_lens
from uld_explorer.measures import MEASURES
from uld_explorer.text import ALIGNMENTS, MERGES, shared_strings_of

OTHER = OTHER_MODEL
PLAN_K = 12  # tokens per side in the transport-plan picture (the table's OT uses top_k)
LENS_N = 10  # student tokens in the gradient lens
SORTED_RANKS = 200  # ranks drawn in the sorted-curves picture
PARAMS = REAL  # the view: defaults, the widgets' bounds and choices (the URL is read through them)
CHOICES = {k: p.choices for k, p in PARAMS.items() if p.choices is not None}
bounds = partial(view_bounds, PARAMS)

view_state(PARAMS)
ss = st.session_state


def use_example(name: str) -> None:
    ss.prompt, ss.text = EXAMPLES[name]
    ss.position = 0


# A click on the positions chart or on a row of the table selects that position. Both are read in
# on_select callbacks, which run before the next script run, while the "position" selectbox may
# still be changed. Both widgets are keyed by the position they were drawn for: a position chosen
# any other way draws them afresh with no selection left over, so that a click on the position
# picked there before (which would not change their selection) selects it again.
def chart_pick(key: str) -> None:
    state = ss.get(key)
    points = (state.selection.get(charts.POSITION_SELECTION) or []) if state else []
    if points and points[0].get("index") is not None:
        ss.position = int(points[0]["index"])


def rank_pick(key: str) -> None:
    """Linked views: a click on a rank of the sorted curves or on a top-10 bar picks that rank."""
    state = ss.get(key)
    points = (state.selection.get(charts.RANK_SELECTION) or []) if state else []
    if points and points[0].get("rank") is not None:
        ss.rank = int(points[0]["rank"])


def clear_rank() -> None:
    ss.rank = 0


def row_pick(key: str) -> None:
    state = ss.get(key)
    rows = state.selection.rows if state else []
    if rows:
        ss.position = int(rows[0])


def fetch(name: str) -> None:
    run_with_progress(f"Fetching {name} (download, verify sha256, convert: once per machine)",
                      lambda: ux.fetch_model(name, progress=False))


def on_disk(name: str) -> bool:
    """A zoo model's folder is on this machine (a damaged one too: loading it says what is wrong)."""
    return ux.list_models([ux.MODELS[name]])[0].on_disk


def model_name(side: str) -> str | None:
    """The chosen model of a side (None while a zoo model is not on this machine)."""
    choice = ss[side]
    if choice == OTHER:
        return ss[f"{side}_other"].strip() or None
    return choice if on_disk(choice) else None


# ---------------------------------------------------------------------------------- sidebar
with st.sidebar:
    st.header("Models")
    for side in ("teacher", "student"):
        st.selectbox(side, CHOICES[side], key=side,
                     format_func=lambda n: n if n == OTHER else f"{n} ({ux.MODELS[n].vocab_size:,} tokens)")
        if ss[side] == OTHER:
            st.text_input(f"{side}: Hugging Face id or local folder", key=f"{side}_other",
                          help="Safetensors weights only; a model that needs remote code is refused.")
        elif not on_disk(ss[side]):
            spec = ux.MODELS[ss[side]]
            st.info(f"{ss[side]} is not on this machine yet ({spec.license}).", icon=":material/download:")
            if spec.license_notice:
                st.caption(spec.license_notice)
            if st.button(f"Fetch {ss[side]}", key=f"fetch_{side}", icon=":material/download:", width="stretch"):
                fetch(ss[side])
                st.rerun()
    st.header("Comparison")
    st.radio("alignment", CHOICES["alignment"], key="alignment", horizontal=True,
             help="; ".join(f"{k}: {v.description}" for k, v in ALIGNMENTS.items()))
    st.radio("merge (byte-offset groups)", CHOICES["merge"], key="merge", horizontal=True,
             help="; ".join(f"{k}: {v}" for k, v in MERGES.items()))
    st.slider("teacher temperature", *bounds("teacher_temperature"), step=0.05, key="teacher_temperature")
    st.slider("student temperature", *bounds("student_temperature"), step=0.05, key="student_temperature")
    st.number_input("top-k (token-space OT)", *bounds("top_k"), step=50, key="top_k",
                    help="Tokens per side kept for exact token-space OT; the rest pooled in one bucket.")
    st.number_input("max tokens (text)", *bounds("max_tokens"), step=32, key="max_tokens",
                    help="A longer text is cut (the page says so). Memory grows ~0.8 MB per token.")

# ---------------------------------------------------------------------------------- header
st.title("Real distributions: teacher vs student, position by position")
url_notes()
st.markdown(
    "Both models read the prompt and the text; each **position** is a token of the text, and the two "
    "distributions compared there are the ones that **predict** it (from the logits just before it). "
    "The last position, **(next token)**, is what each model expects after the text. "
    "KL compares the strings both vocabularies share; ULD/2 and token-space OT share one scale, [0, 1]: "
    "ULD/2 is what OT would cost if token identities could be relabelled freely, so it can only be lower."
)
example_buttons(EXAMPLES, use_example, "example_")
st.text_input("prompt (read, not scored)", key="prompt")
st.text_area("text (scored, position by position)", key="text", height=80)

teacher, student = model_name("teacher"), model_name("student")
if teacher is None or student is None:
    st.info("Choose a teacher and a student that are on this machine (or fetch them in the sidebar).",
            icon=":material/arrow_back:")
    stop_here(PARAMS)

try:
    cfg = ComparisonConfig(
        alignment=ss.alignment, merge=ss.merge, teacher_temperature=ss.teacher_temperature,
        student_temperature=ss.student_temperature, top_k=int(ss.top_k), max_tokens=int(ss.max_tokens),
        costs=("string",), value_ot=False,
    )
    check_text(ss.text, "text")
    check_memory(model(teacher), model(student), ss.text, cfg, prompt=ss.prompt)
    table = ss._last_table = comparison(teacher, student, ss.text, ss.prompt, cfg, _reuse=ss.get("_last_table"))
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, "compare the two models on this text")
    stop_here(PARAMS)

for note in table.notes:
    st.caption(f":material/info: {note}")
if not len(table):
    st.warning("No position to compare: the text is too short.")
    stop_here(PARAMS)

# ---------------------------------------------------------------------------------- positions
if not 0 <= int(ss.position) < len(table):  # e.g. a shared URL's position on a shorter text: said, not guessed
    st.caption(f":material/link_off: position {ss.position} is not a row of this table (0 to {len(table) - 1}): "
               f"showing position 0")
    ss.position = 0
chart_key = f"positions_chart_{ss.position}"
spec = positions_spec(teacher, student, ss.text, ss.prompt, cfg, _table=table)  # built once per table
st.vega_lite_chart(charts.select_position(spec, ss.position), on_select=partial(chart_pick, chart_key),
                   key=chart_key, width="stretch")
labels = [f"{r.index}: {r.label!r}" if r.kind == "token" else f"{r.index}: {r.label}" for r in table]
st.selectbox("position", range(len(table)), key="position", format_func=lambda i: labels[i])

with st.expander("The whole table (click a row to select it; download it)", expanded=False):
    df = table.to_dataframe()
    shown = df[["index", "label", "teacher_top1", "student_top1", "teacher_prob", "student_prob",
                *[k for k in table.measures if MEASURES[k].shown_in("page")]]]
    rows_key = f"rows_{ss.position}"
    st.dataframe(shown, hide_index=True, on_select=partial(row_pick, rows_key), selection_mode="single-row",
                 key=rows_key)
    settings = {**asdict(cfg), "teacher": teacher, "student": student, "prompt": ss.prompt, "text": ss.text}
    export_table(df.astype({"notes": str}), settings, "uld_explorer_table", "table", records=table.to_records())

# ---------------------------------------------------------------------------------- one position
r = table[ss.position]
t_tok, t_dist = distributions(teacher, ss.text, ss.prompt, cfg.teacher_temperature, cfg.max_tokens)
s_tok, s_dist = distributions(student, ss.text, ss.prompt, cfg.student_temperature, cfg.max_tokens)
shared = shared_strings_of(model(teacher).tokenizer, model(student).tokenizer, t_dist.shape[1], s_dist.shape[1])
vec = position_vectors(table, r.index, t_dist, s_dist)
if r.kind == "next":
    what = "the token after the text"
else:
    what = f"{r.label!r} (teacher {list(r.teacher_strings)}, student {list(r.student_strings)})"

st.subheader(f"Position {r.index}: predicts {what}")
st.info(read_row(r), icon=":material/lightbulb:")
for note in r.notes:
    st.caption(note)
cards = [MEASURES[k] for k in table.measures if MEASURES[k].shown_in("card")]
fmt = lambda x: "undefined" if x is None or not np.isfinite(x) else f"{x:.4f}"  # noqa: E731
for col, m in zip(st.columns(max(1, len(cards))), cards):
    col.metric(m.title, fmt(r.values.get(m.key)), help=m.description)
if r.teacher_prob is not None:
    st.caption(f"Probability of the actual text {r.label!r}: teacher {r.teacher_prob:.4f}, student {r.student_prob:.4f}"
               f"; mass on shared strings: teacher {r.kl_teacher_coverage:.0%}, student {r.kl_student_coverage:.0%}.")

shared_ids = (set(shared.match.teacher_matched.tolist()), set(shared.match.student_matched.tolist()))
top = tidy.top_k_frame(vec.p_base, vec.q_base, shared.teacher_strings, shared.student_strings, k=10, shared=shared_ids)
# linked views: a rank picked on the top-10 bars or the sorted curves; its two tokens lit on the bars,
# the curves and the plan (not at a merged group: its curves rank groups, not tokens)
linkable = not vec.merged
rank = int(ss.rank) if linkable and 1 <= ss.rank <= max(len(vec.p_base), len(vec.q_base)) else None
lit_t, lit_s = tidy.tokens_at_rank(vec.p_base, vec.q_base, rank) if rank else (None, None)
lit_labels = (shared.teacher_strings[lit_t] if lit_t is not None else None,
              shared.student_strings[lit_s] if lit_s is not None else None)
top_key = f"top_pick_{r.index}_{rank}"
st.altair_chart(charts.chart_top_k(top, selectable=linkable, lit_rank=rank), width="content", key=top_key,
                on_select=partial(rank_pick, top_key) if linkable else "ignore", selection_mode=charts.RANK_SELECTION)
st.caption("The ten most probable tokens of each side; faded: strings the other vocabulary does not have."
           + (" Click a bar to pick its rank: its two tokens light up on the curves and the plan." if linkable else ""))
curves = tidy.sorted_frame(vec.p, vec.q, n_max=SORTED_RANKS, subprobability=vec.merged)
shown_area = float((curves["high"] - curves["low"]).sum())
curves_key = f"curves_pick_{r.index}_{rank}"
st.altair_chart(charts.chart_sorted(curves, log_x=True, selectable=linkable,
                                    selected=rank if rank and rank <= len(curves) else None),
                width="stretch", key=curves_key, on_select=partial(rank_pick, curves_key) if linkable else "ignore",
                selection_mode=charts.RANK_SELECTION)
st.caption(f"Ranks 1-{len(curves)}: the shaded area is {shown_area:.4f} of ULD = {r.uld:.4f} "
           f"(the other ranks hold {max(0.0, r.uld - shown_area):.4f}).")
if rank:
    pv = float(vec.p_base[lit_t]) if lit_t is not None else 0.0
    qv = float(vec.q_base[lit_s]) if lit_s is not None else 0.0
    name = lambda label: repr(label) if label is not None else "a padded zero"  # noqa: E731
    st.info(f"Rank {rank}: the teacher's {name(lit_labels[0])} ({pv:.4f}) meets the student's "
            f"{name(lit_labels[1])} ({qv:.4f}); ULD adds |{pv:.4f} − {qv:.4f}| = {abs(pv - qv):.4f} there.",
            icon=":material/ads_click:")
    st.button("Clear the rank", key="clear_rank", on_click=clear_rank, icon=":material/close:")
export_figure(lambda: plots.plot_sorted_curves(vec.p, vec.q, xscale="log", subprobability=vec.merged),
              f"sorted_curves_{r.index}", "sorted")
plan = ux.token_space_ot_top_k(vec.p_base, vec.q_base, shared.teacher_keys, shared.student_keys, k=PLAN_K)
layout = tidy.token_plan_layout(plan, shared.teacher_strings, shared.student_strings, order="matched")
st.altair_chart(charts.chart_plan(tidy.plan_frame(plan.plan, layout),
                                  title=f"token-space transport plan, top-{PLAN_K} + rest (value {plan.value:.4f})",
                                  lit=tidy.lit_cells(layout, *lit_labels) if rank else None),
                width="content")
st.caption(f"Outlined: the same string on both sides (cost 0); every other move costs 1. The table's token OT "
           f"uses the top-{cfg.top_k}: {fmt(r.token_ot_string)}. The rest buckets move to each other for free.")
export_figure(lambda: plots.plot_token_plan(plan, shared.teacher_strings, shared.student_strings, order="matched"),
              f"token_plan_{r.index}", "plan")

st.subheader("Gradient lens: what each loss does to the student's logits here")
lens = logit_gradients_from_probs(vec.p_base, vec.q_base, match=shared.match, hybrid=cfg.hybrid,
                                  target=base_target(r.student_ids, cfg.merge),
                                  student_temperature=cfg.student_temperature)
lens_table = lens_frame(lens, top_n=LENS_N, student_tokens=shared.student_strings)
pushes = tidy.lens_push_frame(lens_table)
st.vega_lite_chart(charts.chart_lens(pushes, top).to_dict(validate=False), width="content")  # validated in tests
st.info(read_lens(lens, 0, shared.student_strings, shared.teacher_strings), icon=":material/swap_vert:")
target = (f"the student's actual token {shared.student_strings[lens.target[0]]!r}" if lens.target[0] >= 0
          else "none: the student has no token spelling the teacher's favourite")
st.caption(f"Each bar is the push of one loss on one logit of the student, minus its gradient: what one step of "
           f"gradient descent adds to that token's score (right: up, left: down; each loss on its own scale). "
           f"Every loss but CE reads the student at temperature {cfg.student_temperature:g}; CE's target: {target}. "
           + ("A merged group: the lens reads its base token's distributions. " if vec.merged else "")
           + "Closed forms, checked against autograd (`uld_explorer.lens`).")
with st.expander("The lens's numbers (the top student tokens; each loss's push)"):
    st.dataframe(lens_table, hide_index=True)
    export_table(lens_table, {"position": r.index, "student_temperature": cfg.student_temperature,
                              "uld_weight": lens.uld_weight, "values": {k: float(v[0]) for k, v in lens.values.items()}},
                 f"lens_{r.index}", "lens_table")
export_figure(lambda: plots.plot_lens(pushes, top), f"lens_{r.index}", "lens")
sync_url(PARAMS)
