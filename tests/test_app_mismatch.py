"""The Tokenizer mismatch page (AppTest): the numbers on the page against the library on the same
settings (zoo models and tokenizer-only entries), every main widget, the view in the URL, and
errors as messages. Real tokenizers and the zoo's default pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest import open_page
from streamlit.testing.v1 import AppTest

import uld_explorer as ux
from uld_explorer import tidy
from uld_explorer.app.views import EXAMPLES
from uld_explorer.compare import ComparisonConfig, compare_text
from uld_explorer.text import tokenization_report, vocab_bytes, vocab_overlap

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "mismatch.py"
TIMEOUT = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def on_this_machine(default_models):
    """The default models and the tokenizer-only entries on this machine before any page asks
    (downloads on a fresh cache, then a check of the cached folders): the page itself only offers
    a Fetch button for what is missing."""
    return ux.fetch_tokenizers(progress=False)


def run(**query) -> AppTest:
    return open_page(PAGE, TIMEOUT, **query)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_tokenizer_part_matches_library(at: AppTest) -> None:
    ss = at.session_state
    t, s = ux.load_tokenizer(ss["tk_teacher"], progress=False), ux.load_tokenizer(ss["tk_student"], progress=False)
    report = tokenization_report(t, s, ss["tk_text"])
    ov = vocab_overlap(vocab_bytes(t), vocab_bytes(s))
    m = metrics(at)
    assert m["common cuts"] == f"{len(report.common_boundaries) - 1:,}"
    rate = report.misalignment_rate
    assert m["misaligned pairs"] == ("undefined" if np.isnan(rate) else f"{rate:.0%}")
    assert m["byte-offset groups"] == f"{len(report.groups):,}"
    assert m["strings in both"] == f"{ov.shared:,}"
    sides = at.table[0].value
    assert sides.loc["tokens in this text"].tolist() == [f"{len(report.teacher):,}", f"{len(report.student):,}"]
    assert sides.loc["vocabulary (ids)"].tolist() == [f"{ov.teacher_size:,}", f"{ov.student_size:,}"]
    assert sides.loc["ids whose bytes the other side has"].tolist() == [
        f"{ov.teacher_index.size:,} ({ov.shared_fraction_teacher:.0%})",
        f"{ov.student_index.size:,} ({ov.shared_fraction_student:.0%})"]


def library_effects(at: AppTest) -> dict[str, float]:
    ss = at.session_state
    teacher, student = ux.load_model(ss["tk_teacher"], progress=False), ux.load_model(ss["tk_student"], progress=False)
    cfg = ComparisonConfig(top_k=500, max_tokens=256, costs=("string",), value_ot=False)
    tables = [compare_text(teacher, student, ss["tk_text"], prompt=ss["tk_prompt"],
                           config=cfg.replace(alignment=a, merge=m or "observed"))
              for a, m in tidy.ALIGNMENT_VARIANTS.values()]
    return tidy.alignment_effects_summary(tidy.alignment_effects_frame(*tables))


def fmt(x: float) -> str:
    return "undefined" if not np.isfinite(x) else f"{x:.3f}"


def test_default_view_with_two_models_matches_the_library():
    at = run()
    assert at.title[0].value.startswith("Tokenizer mismatch")
    assert not at.error
    assert_tokenizer_part_matches_library(at)
    s, m = library_effects(at), metrics(at)
    assert m["ULD, positional"] == fmt(s["uld_positional"])
    assert m["ULD, observed merge"] == fmt(s["uld_observed"])
    assert m["ULD, bayesian merge"] == fmt(s["uld_bayesian"])
    assert m["|shift|, misaligned"] == fmt(s["abs_shift_misaligned"])
    assert m["|shift|, aligned"] == fmt(s["abs_shift_aligned"])
    assert len(at.get("vega_lite_chart")) == 2  # the spans and the alignment effects


@pytest.mark.parametrize("student", ["GPT-2", "Llama-2", "Phi-3"])
def test_tokenizer_only_entries_need_no_weights(student):
    at = run()
    at.selectbox(key="tk_student").set_value(student).run()
    assert not at.exception and not at.error
    assert_tokenizer_part_matches_library(at)
    assert any("needs distributions" in i.value for i in at.info)  # no per-position part without weights
    assert "ULD, positional" not in metrics(at)


def test_every_main_widget():
    at = run()
    for name, (prompt, text) in EXAMPLES.items():
        at.button(key=f"tk_example_{name}").click().run()
        assert not at.exception, name
        assert (at.session_state["tk_prompt"], at.session_state["tk_text"]) == (prompt, text)
    assert_tokenizer_part_matches_library(at)  # the last example (code), under both tokenizers
    at.selectbox(key="tk_teacher").set_value("Llama-3").run()
    at.slider(key="line_bytes").set_value(24).run()
    assert not at.exception
    assert_tokenizer_part_matches_library(at)
    at.text_area(key="tk_text").set_value("déjà vu").run()
    assert not at.exception
    assert_tokenizer_part_matches_library(at)


def test_the_view_lives_in_the_url():
    at = run(tk_teacher="Qwen2", tk_student="StarCoder2", tk_text="x = 1", line_bytes="32")
    ss = at.session_state
    assert (ss["tk_teacher"], ss["tk_student"], ss["tk_text"], ss["line_bytes"]) == ("Qwen2", "StarCoder2", "x = 1", 32)
    assert_tokenizer_part_matches_library(at)
    at.selectbox(key="tk_student").set_value("Falcon").run()
    at.slider(key="line_bytes").set_value(64).run()
    params = {k: v if isinstance(v, str) else v[0] for k, v in at.query_params.items()}
    assert params["tk_student"] == "Falcon" and params["line_bytes"] == "64"
    again = run(**params)
    assert metrics(again) == metrics(at)


def test_bad_url_values_fall_back_to_the_defaults():
    at = run(tk_teacher="No-Such-Tokenizer", line_bytes="5000")
    assert at.session_state["tk_teacher"] == ux.DEFAULT_TEACHER and at.session_state["line_bytes"] == 48


def test_errors_are_messages_and_the_page_keeps_working(tmp_path):
    at = run()
    at.text_area(key="tk_text").set_value("   ").run()
    assert not at.exception
    assert "nothing to compare" in at.error[0].value
    at.selectbox(key="tk_student").set_value("other: a local tokenizer folder").run()
    at.text_input(key="tk_student_other").set_value(str(tmp_path / "missing")).run()
    at.text_area(key="tk_text").set_value("hello").run()
    assert not at.exception
    assert "no such tokenizer folder" in at.error[0].value
    (tmp_path / "empty").mkdir()
    at.text_input(key="tk_student_other").set_value(str(tmp_path / "empty")).run()
    assert not at.exception and at.error
    at.selectbox(key="tk_student").set_value("GPT-2").run()
    assert not at.exception and not at.error
    assert_tokenizer_part_matches_library(at)


def test_an_entry_not_on_this_machine_offers_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv(ux.zoo.CACHE_ENV, str(tmp_path / "empty-cache"))
    at = run()  # the default models are not in this cache either
    assert any("not on this machine yet" in i.value for i in at.info)
    assert [b.label for b in at.button if b.label.startswith("Fetch")] == [f"Fetch {ux.DEFAULT_TEACHER}",
                                                                           f"Fetch {ux.DEFAULT_STUDENT}"]
    at.selectbox(key="tk_student").set_value("GPT-2").run()
    assert "Fetch the tokenizer-only entries" in [b.label for b in at.button]
    assert not at.exception


def test_a_damaged_entry_is_named_with_its_rebuild_command_never_refetched(tmp_path, monkeypatch):
    """A folder under an entry's name that lost its marker is on this machine, damaged: the page
    says so (folder, what is wrong, the command that rebuilds it) instead of offering a fetch."""
    from uld_explorer.app.cached import tokenizer

    tokenizer.clear()  # the server keeps what earlier tests loaded from the real cache
    monkeypatch.setenv(ux.zoo.CACHE_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "tokenizers" / "GPT-2"
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")  # an unfinished copy: no ZOO_COMPLETE.json
    at = run(tk_teacher="GPT-2", tk_student="GPT-2")
    assert not [b.label for b in at.button if b.label.startswith("Fetch")]
    (msg,) = [e.value for e in at.error]
    assert f"the cached tokenizer GPT-2 is damaged ({folder})" in msg and "ZOO_COMPLETE.json: missing" in msg
    assert "uld-explorer tokenizers fetch GPT-2 --force" in msg
    assert [f.name for f in folder.iterdir()] == ["tokenizer.json"] and not (tmp_path / "cache" / "sources").exists()


def frame(at: AppTest, column: str):
    """The page's one dataframe with this column (st.dataframe's key is not exposed to AppTest)."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def audit_of(at: AppTest, models: bool = False) -> dict:
    """The library's audit on the page's settings."""
    from uld_explorer.app.cached import AUDIT_FORWARD_EXAMPLES
    from uld_explorer.audit import AuditConfig, run_audit

    ss = at.session_state
    return run_audit(AuditConfig(teacher=ss["tk_teacher"], student=ss["tk_student"], examples=ss["audit_examples"],
                                 alignment=ss["audit_alignment"], models=models,
                                 forward_examples=AUDIT_FORWARD_EXAMPLES)).to_dict()


def test_the_audit_on_the_page_is_the_librarys():
    """The findings table is the library's, row for row; the verdict box follows the worst level; the
    settings live in the URL."""
    from uld_explorer.audit import findings_frame

    at = run(audit_examples="40", audit_alignment="positional")
    lib = audit_of(at)
    page = frame(at, "fix")
    assert page[["level", "check", "message", "fix"]].values.tolist() == \
        findings_frame(lib)[["level", "check", "message", "fix"]].values.tolist()
    assert lib["summary"]["error"] == 0 and lib["summary"]["warning"] > 0
    assert any("Works, with caveats" in w.value for w in at.warning) and not at.error
    at.radio(key="audit_alignment").set_value("byte-offset").run()
    assert not at.exception
    found = frame(at, "fix")
    assert found[found["check"] == "drift"]["level"].tolist() == ["info"]  # byte-offset pairs do not drift
    value = at.query_params["audit_alignment"]
    assert (value if isinstance(value, str) else value[0]) == "byte-offset"


def test_the_audit_of_tokenizer_only_entries_finds_the_numeral_split():
    at = run(tk_teacher="Qwen2", tk_student="Llama-3", audit_examples="100")
    found = frame(at, "fix")
    row = found[found["check"] == "tokens:numbers"].iloc[0]
    assert row["level"] == "warning" and "teacher 1|0|0, student 100" in row["examples"]
    assert at.toggle(key="audit_models").disabled  # no weights: no model checks


def test_the_model_checks_give_the_librarys_budget():
    at = run(audit_examples="20")
    at.toggle(key="audit_models").set_value(True).run()
    assert not at.exception and not at.error
    page = frame(at, "mass kept")
    lib = audit_of(at, models=True)["budget"]
    assert page["K"].tolist() == [r["k"] for r in lib["rows"]]
    assert np.allclose(page["mass kept"], [r["kept_mean"] for r in lib["rows"]], rtol=1e-6)
    assert np.allclose(page["bound, step-0 student"], [r["bound_mean"] for r in lib["rows"]], rtol=1e-5)
