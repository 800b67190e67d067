"""AppTest helpers shared by the page tests: open a page with a URL query, check it ran clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def open_page(page: Path, timeout: float, **query: Any) -> AppTest:
    """Run the page script once with ``query`` as its URL parameters; no exception allowed."""
    at = AppTest.from_file(str(page), default_timeout=timeout)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert_clean(at)
    return at
