"""Learn: the guided lesson, from KL to ULD in eight steps, one idea per step.

UI only: the steps, their words, settings, questions and challenges are :mod:`uld_explorer.lesson`'s
(every number computed there from the library), each step's figure is
:func:`uld_explorer.charts.chart_lesson`. The step and the learner's settings live in the URL
(``?step=5&l_student_temperature=1.65``): a teacher hands out a link to a step with a prepared pair.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from uld_explorer import charts
from uld_explorer.app.common import show_error, url_notes, view_state
from uld_explorer.app.views import EXAMPLES, LEARN, LEARN_PREFIX
from uld_explorer.lesson import CONTROLS, STEPS, numbers, settings_for

PARAMS = LEARN
N_STEPS = len(STEPS)
ss = st.session_state


def key_of(name: str) -> str:
    """The session / URL key of a lesson setting."""
    return LEARN_PREFIX + name


def seed_from_url() -> None:
    """Once per session: the step from the URL, then each setting the URL does not give from that
    step's start (those it gives are read by :func:`view_state`, with a note when not usable)."""
    if "step" not in ss:
        view_state({"step": PARAMS["step"]})
        start = settings_for(ss.step)
        for name in CONTROLS:
            if key_of(name) not in st.query_params:
                ss[key_of(name)] = start[name]
    view_state(PARAMS)


def go(step: int) -> None:
    """Move to ``step`` with its own starting pair (the settings of the step left are dropped)."""
    ss.step = step
    start = settings_for(step)
    for name in CONTROLS:
        ss[key_of(name)] = start[name]


def jumped() -> None:
    go(ss.step_pick)


def apply(settings: dict) -> None:
    for name in STEPS[ss.step - 1].controls:
        ss[key_of(name)] = settings[name]


def reveal(step_key: str) -> None:
    ss[f"revealed_{step_key}"] = True


def sync_url() -> None:
    """The step and its settings in the URL (all of them: a link restores exactly this view)."""
    shown = {"step", *(key_of(n) for n in STEPS[ss.step - 1].controls)}
    for key in PARAMS:
        if key not in shown:
            if key in st.query_params:
                del st.query_params[key]
            continue
        value = ss[key]
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        if st.query_params.get(key) != text:
            st.query_params[key] = text


seed_from_url()
step = STEPS[ss.step - 1]

# ---------------------------------------------------------------------------------- where we are
st.title("Learn: from KL to ULD in eight steps")
url_notes()
st.progress(ss.step / N_STEPS, text=f"**Step {ss.step} of {N_STEPS}** · {step.title}")
back, pick, forward = st.columns([1, 4, 1], vertical_alignment="bottom")
back.button("Back", icon=":material/arrow_back:", on_click=go, args=(ss.step - 1,), disabled=ss.step == 1,
            width="stretch", key="back")
if ss.get("step_pick") != ss.step:
    ss.step_pick = ss.step
pick.selectbox("Go to step", range(1, N_STEPS + 1), key="step_pick", on_change=jumped,
               format_func=lambda i: f"{i}. {STEPS[i - 1].title}")
forward.button("Next", icon=":material/arrow_forward:", on_click=go, args=(ss.step + 1,),
               disabled=ss.step == N_STEPS, width="stretch", type="primary", key="next")

# ---------------------------------------------------------------------------------- the step
settings = settings_for(ss.step, {n: ss[key_of(n)] for n in CONTROLS})
try:
    n = numbers(settings)
except ValueError as err:  # a setting the pair refuses: said, never a traceback
    show_error(err, "draw this step's pair")
    st.stop()

st.header(f"{ss.step}. {step.title}")
st.markdown(step.text(n))
for col, name in zip(st.columns(len(step.controls)), step.controls):  # one or two settings, side by side
    c = CONTROLS[name]
    with col:
        if c.lo is None:
            st.toggle(c.label, key=key_of(name), help=c.help or None)
        elif isinstance(PARAMS[key_of(name)].default, int):
            st.slider(c.label, int(c.lo), int(c.hi), step=int(c.step), key=key_of(name), help=c.help or None)
        else:
            st.slider(c.label, float(c.lo), float(c.hi), step=float(c.step), key=key_of(name), help=c.help or None)
chart = charts.chart_lesson(step, n)
if step.figure == "lens":  # a faceted hconcat: given as a spec (validated in the tests)
    st.vega_lite_chart(chart.to_dict(validate=False), width="content")
else:
    st.altair_chart(chart, width="stretch" if step.figure in ("sorted", "area", "scale", "kl_terms") else "content")
shown = step.metrics(n)
for col, (label, value) in zip(st.columns(len(shown)), shown.items()):
    col.metric(label, value)

# ---------------------------------------------------------------------------------- predict, then reveal
ask, goal = st.columns(2, gap="medium")
with ask:
    st.subheader("Predict", divider="gray")
    q = step.question
    guess = st.radio(q.text, q.options, index=None, key=f"guess_{step.key}")
    st.button("Reveal the answer", key=f"reveal_{step.key}", on_click=reveal, args=(step.key,),
              disabled=guess is None, icon=":material/visibility:",
              help="Make a guess first; the answer is computed on the settings you have now.")
    if ss.get(f"revealed_{step.key}"):
        answer = q.answer(settings)
        said = f"You said **{guess}**. " if guess is not None else ""
        if guess == answer:
            st.success(f"{said}Right: **{answer}**. {q.why(settings)}", icon=":material/check_circle:")
        else:
            st.warning(f"{said}The answer: **{answer}**. {q.why(settings)}", icon=":material/lightbulb:")

# ---------------------------------------------------------------------------------- the challenge
with goal:
    st.subheader("Challenge", divider="gray")
    ch = step.challenge
    st.markdown(ch.text)
    if ch.check(n):
        st.success(f"Solved: {ch.now(n)}.", icon=":material/emoji_events:")
    else:
        st.info(f"Not yet: {ch.now(n)}.", icon=":material/flag:")
        st.button("Show me a solution", key=f"solve_{step.key}", on_click=apply, args=(ch.solution,),
                  icon=":material/tips_and_updates:")

if step.link:
    prompt, text = EXAMPLES["English fact"]
    query = urlencode({"prompt": prompt, "text": text, "position": 1})
    st.markdown(f":material/open_in_new: [{step.link['label']}](./{step.link['page']}?{query}): the real "
                "Qwen2.5-Coder teacher and SmolLM2 student on a sentence, position by position, with the same "
                "sorted curves, plans and lens.")
sync_url()
