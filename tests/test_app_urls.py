"""Every page's URL, fuzzed: whatever a shared link holds, the page runs without an exception, takes
each value its widget can show as it is, and falls back to the default for any other with a note
naming the parameter (never a silent clamp). AppTest on each page script, hypothesis over the
page's own view keys (uld_explorer.app.views) plus keys the page does not know."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from uld_explorer.app.common import Param
from uld_explorer.app.views import VIEWS

PAGES = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages"
SCRIPT = {"learn": "learn.py", "playground": "playground.py", "real": "real.py", "tokenizers": "mismatch.py", "distill": "distill.py",
          "experiments": "experiments.py"}
#: Texts kept short: a fuzzed text is run through both models on the model pages.
_JUNK = st.sampled_from(["", " ", "nan", "inf", "-inf", "-1", "0", "1e309", "99999999", "1.5", "true", "x",
                         "café 🍕", "\x00", "1" * 400, "--", "None"])


def _value(param: Param) -> st.SearchStrategy[str]:
    """Query-parameter strings for one view value: inside and outside its bounds and choices."""
    d = param.default
    options = [_JUNK]
    if isinstance(d, bool):
        options.append(st.sampled_from(["0", "1", "yes", "off", "2"]))
    elif isinstance(d, (int, float)):
        lo = -1e6 if param.lo is None else param.lo
        hi = 1e6 if param.hi is None else param.hi
        numbers = (st.integers(int(lo) - 3, int(hi) + 3) if isinstance(d, int)
                   else st.floats(lo - 1, hi + 1, allow_nan=False))
        options.append(numbers.map(str))
    elif param.choices is not None:
        options.append(st.sampled_from([*param.choices, str(param.choices[0]).upper()]))
    elif param.max_chars is not None and param.max_chars <= 500:  # a model / tokenizer named by the user:
        # local names only (an 'org/name' id would wait ~25 s for the unreachable hub)
        return st.sampled_from(["", "no-such-model", "/no/such/folder", "x" * 600])
    else:
        options.append(st.text(max_size=30))
    return st.one_of(*options)


def _queries(view: dict[str, Param]) -> st.SearchStrategy[dict[str, str]]:
    """A URL: up to five of the page's own keys, each with a value from :func:`_value`, and a key the
    page does not know."""
    keys = st.lists(st.sampled_from(sorted(view)), unique=True, max_size=5)
    return keys.flatmap(lambda ks: st.fixed_dictionaries(
        {**{k: _value(view[k]) for k in ks}, "unknown_key": st.sampled_from(["", "1"])}))


def _check(page: str, query: dict[str, str], timeout: float) -> None:
    view = VIEWS[page]
    at = AppTest.from_file(str(PAGES / SCRIPT[page]), default_timeout=timeout)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, (query, [e.value for e in at.exception])
    notes = " ".join(c.value for c in at.caption)
    for key, raw in query.items():
        if key not in view or key == "position":  # (a position is checked against the table, later)
            continue
        param, state = view[key], at.session_state[key]
        value, why = param.parse(raw)
        if why is None:
            assert state == value, (key, raw, state)  # a value the widget can show is taken as it is
        else:
            assert state == param.default, (key, raw, state)  # anything else: the default, never clamped
            assert f"{key}=" in notes, (key, raw, notes)  # ... and the page says so


def test_the_validator_takes_what_the_widget_shows_and_nothing_else():
    p = Param(1.0, 0.1, 5.0)
    assert p.parse("0.1") == (0.1, None) and p.parse("5") == (5.0, None)
    for raw in ("0.09", "5.01", "nan", "inf", "-inf", "x", "", "1e309"):
        value, why = p.parse(raw)
        assert value == 1.0 and why, raw
    assert Param(256, 8, 1024).parse("99999999")[1] == "must be between 8 and 1024"  # not silently 8
    assert Param("a", choices=("a", "b")).parse("c") == ("a", "must be one of a, b")
    assert Param(0, 0, None).parse("-1") == (0, "must be at least 0")
    assert Param("", max_chars=3).parse("abcd") == ("", "is longer than 3 characters")
    assert math.isnan(float("nan")) and Param(True).parse("maybe") == (True, "must be 1 or 0")


#: Examples per page: the model pages run both models on each URL's text.
EXAMPLES = {"learn": 25, "playground": 25, "distill": 25, "real": 12, "tokenizers": 12, "experiments": 10}


@pytest.mark.slow
@pytest.mark.parametrize("page", list(EXAMPLES))
def test_url_fuzz(page, request):
    if page in ("real", "tokenizers"):
        request.getfixturevalue("default_models")  # the pages' default pair is on this machine
    if page in ("distill", "experiments"):
        request.getfixturevalue("runs_dir")  # an empty runs directory of its own

    @settings(max_examples=EXAMPLES[page], deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(query=_queries(VIEWS[page]))
    def fuzz(query):
        _check(page, query, 300)

    fuzz()


@pytest.mark.slow
@pytest.mark.usefixtures("default_models")
def test_the_reported_urls_fall_back_with_a_note():
    """The two the sweep found: a temperature outside the slider raised a Streamlit exception and
    showed nothing; max_tokens=99999999 silently became 8."""
    _check("real", {"teacher_temperature": "9", "max_tokens": "99999999"}, 300)
