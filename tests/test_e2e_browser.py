"""End to end: a real ``streamlit run app.py`` server driven by a real Chromium (Playwright).

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``; never
``playwright install``; ``ULD_CHROMIUM`` names another binary). Without it the tests skip, unless
ULD_REQUIRE_BROWSER=1 (CI), where they fail. Screenshots are kept in ``artifacts/e2e/``
(git-ignored). The server and browser helpers live in ``tests/browser.py``.
"""

from __future__ import annotations

import os

import browser as web
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = web.ROOT / "artifacts" / "e2e"
PAGE_TIMEOUT_MS = 90_000  # the first script run imports torch and POT
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _missing(reason: str) -> None:
    if os.environ.get("ULD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (ULD_REQUIRE_BROWSER=1 requires the browser test to run)")
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium` (set ULD_REQUIRE_BROWSER=1 to fail instead)")


@pytest.fixture(scope="module")
def sync_api():
    if not web.CHROMIUM.exists():
        _missing(f"no Chromium at {web.CHROMIUM}")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("the playwright Python package is not installed (pip install playwright)")
    return sync_api


@pytest.fixture(scope="module")
def server(sync_api, tmp_path_factory):
    """``streamlit run app.py`` on a free local port; yields its URL; always terminated."""
    with web.serve(tmp_path_factory.mktemp("streamlit") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def chromium(sync_api, server):
    with web.chromium(sync_api) as browser:
        yield browser


@pytest.fixture(scope="module")
def page(chromium):
    pg = web.new_page(chromium, 1600, 2100)
    pg.set_default_timeout(PAGE_TIMEOUT_MS)
    yield pg
    pg.context.close()


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------------- playground
def values_table(pg) -> dict[str, str]:
    """The Playground's values table as {divergence: value text}."""
    return {cells[0]: cells[1] for cells in web.grid_rows(pg) if len(cells) >= 2}


def wait_for_table(pg, predicate, what: str, timeout_s: float = 60.0) -> dict[str, str]:
    """Poll the table until ``predicate(table)`` holds and the app is idle (rerun finished)."""
    def ready():
        table = values_table(pg)
        return table if table and not web.busy(pg) and predicate(table) else None

    try:
        return web.poll(ready, what, timeout_s, pg)
    except web.BrowserError as err:
        pytest.fail(f"{err}; table was {values_table(pg)}")


def test_playground_in_a_real_browser(page, server, artifacts):
    page.goto(server)
    # the real content, not Streamlit's loading skeleton
    page.get_by_role("heading", name="Playground: KL vs exact OT vs ULD").wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    table = wait_for_table(page, lambda t: float(t["ULD (closed form)"]) > 0, "the default values table")
    text = web.main_text(page)
    assert "ULD" in text and "All values" in text
    assert "Plain KL(p‖q) is undefined" in text  # default V_t != V_s: the shared-string KL is shown
    assert table["KL(p||q)"] == ""  # undefined: empty cell
    assert set(table) >= {"KL(p||q)", "KL(p||q) on shared strings", "ULD (closed form)",
                          "n * W1 value-space OT (POT)", "token-space OT, string cost (POT)"}
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 5  # scale, bars, sorted, two plans
    shot = artifacts / "playground_default_full.png"
    page.screenshot(path=str(shot))

    page.get_by_role("button", name="Identity blindness demo").click()
    table = wait_for_table(
        page, lambda t: abs(float(t["ULD (closed form)"])) <= 1e-9 and t["KL(p||q)"] != "",
        "ULD = 0 after the identity-blindness demo",
    )
    assert float(table["KL(p||q)"]) > 0.1
    assert abs(float(table["n * W1 value-space OT (POT)"])) <= 1e-9
    assert float(table["token-space OT, string cost (POT)"]) > 0.1
    page.get_by_text("Identity blindness.").wait_for()
    web.assert_no_error(page, "playground, identity-blindness demo")

    demo_shot = artifacts / "playground_demo.png"
    page.screenshot(path=str(demo_shot))
    for path in (shot, demo_shot):
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 50_000, (path, len(data))
