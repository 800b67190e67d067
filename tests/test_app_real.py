"""The Real distributions page (AppTest through the real router): every main widget changed, the
numbers on the page checked against the library on the same settings, the view in the URL, and
errors as messages. Real models (the zoo's default pair, cached once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest import assert_clean, open_page
from streamlit.testing.v1 import AppTest

import uld_explorer as ux
from uld_explorer.compare import ComparisonConfig
from uld_explorer.measures import MEASURES

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "real.py"
TIMEOUT = 300

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("default_models")]


def run(**query) -> AppTest:
    return open_page(PAGE, TIMEOUT, **query)


def library_table(at: AppTest):
    """The same comparison, computed here by the library from the page's widget values."""
    ss = at.session_state
    cfg = ComparisonConfig(alignment=ss["alignment"], merge=ss["merge"], teacher_temperature=ss["teacher_temperature"],
                           student_temperature=ss["student_temperature"], top_k=int(ss["top_k"]),
                           max_tokens=int(ss["max_tokens"]), costs=("string",), value_ot=False)
    return ux.compare_text(ux.load_model(ss["teacher"], progress=False), ux.load_model(ss["student"], progress=False),
                           ss["text"], prompt=ss["prompt"], config=cfg)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def assert_page_matches_library(at: AppTest) -> None:
    table = library_table(at)
    r = table[at.session_state["position"]]
    assert at.subheader[0].value.startswith(f"Position {r.index}: predicts")
    cards = [k for k in table.measures if MEASURES[k].shown_in("card")]
    assert {"kl_shared", "uld_half", "token_ot_string", "hybrid"} <= set(cards)
    for key in cards:  # found by the registry's title, the value from the library's row
        assert metric(at, MEASURES[key].title) == f"{r.values[key]:.4f}", key
    assert at.info[0].value == ux.read_row(r)


def test_default_view_is_the_paris_answer():
    at = run()
    assert at.title[0].value.startswith("Real distributions")
    assert "' Paris'" in at.subheader[0].value
    assert not at.error
    assert_page_matches_library(at)
    assert len(at.selectbox(key="position").options) == len(library_table(at))


def test_every_main_widget_changes_the_numbers_as_the_library_says():
    at = run()
    at.selectbox(key="position").set_value(3).run()
    assert_clean(at)
    assert_page_matches_library(at)
    at.button(key="example_Accented").click().run()
    assert_clean(at)
    assert at.session_state["text"] == " naïve résumé, le café était très bon."
    for key, value in (("alignment", "positional"), ("merge", "bayesian"), ("alignment", "byte-offset")):
        at.radio(key=key).set_value(value).run()
        assert_clean(at)
        assert_page_matches_library(at)
    at.slider(key="teacher_temperature").set_value(2.0).run()
    at.number_input(key="top_k").set_value(50).run()
    assert_clean(at)
    assert_page_matches_library(at)
    at.text_input(key="prompt").set_value("").run()
    assert_clean(at)
    assert_page_matches_library(at)


def library_lens(at: AppTest):
    """The selected position's lens, computed here by the library from the page's widget values."""
    from uld_explorer.compare import position_vectors
    from uld_explorer.lens import base_target, lens_frame, logit_gradients_from_probs, read_lens
    from uld_explorer.text import shared_strings_of

    ss = at.session_state
    table = library_table(at)
    r = table[ss["position"]]
    teacher, student = (ux.load_model(ss[side], progress=False) for side in ("teacher", "student"))
    _, t_dist = ux.next_token_distributions(teacher, ss["text"], ss["teacher_temperature"], int(ss["max_tokens"]),
                                            prompt=ss["prompt"])
    _, s_dist = ux.next_token_distributions(student, ss["text"], ss["student_temperature"], int(ss["max_tokens"]),
                                            prompt=ss["prompt"])
    vec = position_vectors(table, r.index, t_dist, s_dist)
    shared = shared_strings_of(teacher.tokenizer, student.tokenizer, t_dist.shape[1], s_dist.shape[1])
    lens = logit_gradients_from_probs(vec.p_base, vec.q_base, match=shared.match, target=base_target(r.student_ids,
                                      ss["merge"]), student_temperature=ss["student_temperature"])
    return r, lens_frame(lens, top_n=10, student_tokens=shared.student_strings), read_lens(
        lens, 0, shared.student_strings, shared.teacher_strings)


def assert_lens_matches_library(at: AppTest) -> None:
    r, frame, words = library_lens(at)
    # the lens's table, found by its registry columns (a dataframe without selection has no key in AppTest)
    shown = next(d.value for d in at.dataframe if "push_uld" in d.value.columns)
    assert list(shown.columns) == list(frame.columns)
    assert shown["id"].tolist() == frame["id"].tolist()
    for col in [c for c in frame.columns if c.startswith(("push_", "prob"))]:
        assert shown[col].to_numpy() == pytest.approx(frame[col].to_numpy(), rel=1e-9, abs=1e-12), col
    assert words in [i.value for i in at.info]


def test_the_gradient_lens_shows_the_library_s_pushes():
    """The selected position's lens (the chart, its words, its table) on a token row, a merged
    group and the next-token row; the default pair has two vocabularies, so no plain KL."""
    at = run()
    assert_lens_matches_library(at)
    _, frame, words = library_lens(at)
    assert {"push_ce", "push_kl_shared", "push_uld", "push_ce+uld", "push_hybrid"} <= set(frame.columns)
    assert "push_kl" not in frame.columns and "ULD pushes the student's favourite token" in words
    at.selectbox(key="position").set_value(len(at.selectbox(key="position").options) - 1).run()  # (next token)
    assert_clean(at)
    assert_lens_matches_library(at)
    at.button(key="example_Accented").click().run()
    at.radio(key="merge").set_value("bayesian").run()
    at.slider(key="student_temperature").set_value(1.5).run()
    at.selectbox(key="position").set_value(2).run()
    assert_clean(at)
    assert_lens_matches_library(at)


def test_the_view_lives_in_the_url():
    at = run(text=" Lyon is a city too.", prompt="The capital of France is Paris.", alignment="positional",
             position="2", top_k="100")
    ss = at.session_state
    assert (ss["text"], ss["alignment"], ss["position"], ss["top_k"]) == (" Lyon is a city too.", "positional", 2, 100)
    assert_page_matches_library(at)
    at.radio(key="merge").set_value("bayesian").run()
    assert at.query_params["merge"] == "bayesian" and at.query_params["text"] == " Lyon is a city too."
    # a bad value in a shared URL falls back to the default instead of breaking the page
    bad = run(alignment="diagonal", position="999")
    assert bad.session_state["alignment"] == "byte-offset" and not bad.error
    # nothing clamped silently: an alignment it does not know and a row the table does not have fall back
    # to the defaults, and the page says so
    assert bad.session_state["position"] == 0 and len(library_table(bad)) < 999
    notes = " ".join(c.value for c in bad.caption)
    assert "alignment='diagonal'" in notes and "position 999 is not a row" in notes


def test_a_damaged_model_is_named_with_its_rebuild_command_never_refetched(tmp_path, monkeypatch):
    """A model folder that lost its marker is on this machine, damaged: no Fetch button, and the
    page names the folder, what is wrong and the command that rebuilds it."""
    name = "Gemma-3-270M"  # not the default pair, which the server keeps loaded from the real cache
    monkeypatch.setenv(ux.zoo.CACHE_ENV, str(tmp_path / "cache"))
    folder = ux.zoo.model_dir(name)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")  # an unfinished copy: no ZOO_COMPLETE.json
    at = run(teacher=name, student=name)
    assert not [b.label for b in at.button if b.label.startswith("Fetch")]
    (msg,) = [e.value for e in at.error]
    assert f"the cached model {name} is damaged ({folder})" in msg and "ZOO_COMPLETE.json: missing" in msg
    assert f"uld-explorer models fetch {name} --force" in msg
    assert [f.name for f in folder.iterdir()] == ["config.json"] and not (tmp_path / "cache" / "sources").exists()


def test_errors_are_messages_never_tracebacks():
    at = run(text="   ")
    assert at.error and "empty or whitespace-only" in at.error[0].value
    at = run()
    at.selectbox(key="teacher").set_value("other: a Hugging Face id or a local folder").run()
    at.text_input(key="teacher_other").set_value("./no/such/folder").run()
    assert_clean(at)
    assert at.error and "no such model folder" in at.error[0].value
    long = run(text=" The cat sat on the mat." * 80, max_tokens="32")
    assert any("the text was cut" in c.value for c in long.caption)
