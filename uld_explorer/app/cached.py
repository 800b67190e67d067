"""What the pages load and compute once, shared between them (``st.cache_resource``).

UI plumbing only: each function calls the library and keeps its result for the server's life
(models, tokenizers, vocabulary overlaps) or for the last few inputs (distributions, tables), so
that moving between the Real distributions and Tokenizer mismatch pages never runs a model twice
on the same text.
"""

from __future__ import annotations

import streamlit as st

import uld_explorer as ux
from uld_explorer import charts, tidy
from uld_explorer.compare import ComparisonConfig, compare_distributions, next_token_distributions
from uld_explorer.text import vocab_bytes, vocab_overlap

@st.cache_resource(show_spinner="Loading the model (once per server) ...", max_entries=4)
def model(name: str):
    return ux.load_model(name, progress=False)


@st.cache_resource(show_spinner="Running the model on the text ...", max_entries=8)
def distributions(name: str, text: str, prompt: str, temperature: float, max_tokens: int):
    return next_token_distributions(model(name), text, temperature, max_tokens, prompt=prompt)


@st.cache_resource(show_spinner="Comparing every position ...", max_entries=16)
def comparison(teacher: str, student: str, text: str, prompt: str, cfg: ComparisonConfig, _reuse=None):
    """The table; ``_reuse`` (not part of the cache key): the page's previous table, whose ULD,
    hybrid and KL the library takes over when only top-k changed (``compare_distributions(reuse=)``)."""
    t_tok, t_dist = distributions(teacher, text, prompt, cfg.teacher_temperature, cfg.max_tokens)
    s_tok, s_dist = distributions(student, text, prompt, cfg.student_temperature, cfg.max_tokens)
    return compare_distributions(model(teacher), model(student), t_tok, t_dist, s_tok, s_dist, config=cfg, text=text,
                                 reuse=_reuse)


@st.cache_resource(show_spinner=False, max_entries=16)
def positions_spec(teacher: str, student: str, text: str, prompt: str, cfg: ComparisonConfig, _table=None) -> dict:
    """The per-position chart's Vega-Lite spec for the table of these inputs (``_table``), no
    position selected: :func:`uld_explorer.charts.select_position` marks one per run."""
    return charts.chart_positions(tidy.positions_frame(_table), selected=None).to_dict()


@st.cache_resource(show_spinner="Loading the tokenizer ...", max_entries=16)
def tokenizer(name: str):
    """A tokenizer alone (entry, zoo model or folder): :func:`uld_explorer.load_tokenizer`."""
    return ux.load_tokenizer(name, progress=False)


@st.cache_resource(show_spinner="Comparing the two vocabularies ...", max_entries=8)
def overlap(teacher: str, student: str):
    """:func:`~uld_explorer.text.vocab_overlap` of the two tokenizers' exact token bytes."""
    return vocab_overlap(vocab_bytes(tokenizer(teacher)), vocab_bytes(tokenizer(student)))


#: Examples the app's model checks run over (a teacher and a student forward each: ~0.6 s on 2 cores).
AUDIT_FORWARD_EXAMPLES = 16


@st.cache_data(show_spinner=False, max_entries=8)
def audit_report(teacher: str, student: str, examples: int, alignment: str, models: bool) -> dict:
    """:func:`uld_explorer.audit.run_audit` of the pair on the project's prompts with the shipped
    answers (the first ``examples``), as :meth:`~uld_explorer.audit.AuditReport.to_dict`; with
    ``models``, the model checks over :data:`AUDIT_FORWARD_EXAMPLES` examples."""
    from uld_explorer.audit import AuditConfig, run_audit

    cfg = AuditConfig(teacher=teacher, student=student, examples=examples, alignment=alignment, models=models,
                      forward_examples=AUDIT_FORWARD_EXAMPLES)
    loaded = (model(teacher), model(student)) if models else None
    return run_audit(cfg, tokenizers=(tokenizer(teacher), tokenizer(student)), models=loaded).to_dict()
