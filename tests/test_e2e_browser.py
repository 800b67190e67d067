"""End to end: a real ``streamlit run app.py`` server driven by a real Chromium (Playwright):
every page of the router opens without an error, the Playground reacts to its controls and its
view reopens from its URL.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``; never
``playwright install``; ``ULD_CHROMIUM`` names another binary). Without it the tests skip, unless
ULD_REQUIRE_BROWSER=1 (CI), where they fail. Screenshots are kept in ``artifacts/e2e/``
(git-ignored). The server and browser helpers live in ``tests/browser.py``.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs, urlsplit

import browser as web
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = web.ROOT / "artifacts" / "e2e"
PAGE_TIMEOUT_MS = 90_000  # the first script run imports torch and POT
REAL_TIMEOUT_S = 180  # the Real page's first run loads two models and runs both on the text
PAGES = web.router_pages()
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


@pytest.fixture
def new_tab(chromium):
    """Open a page in a fresh browser context (no cookies, no storage: a new user) of the given
    size; every one is closed after the test."""
    tabs = []

    def open_tab(width: int = 1400, height: int = 1000):
        pg = web.new_page(chromium, width, height)
        pg.set_default_timeout(PAGE_TIMEOUT_MS)
        tabs.append(pg)
        return pg

    yield open_tab
    for pg in tabs:
        pg.context.close()


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# ---------------------------------------------------------------------------------- helpers
def params(pg) -> dict[str, str]:
    """The page URL's query parameters (one value each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(web.location(pg)).query).items()}


def wait_for_param(pg, key: str, value: str, timeout_s: float = 60.0) -> None:
    """Wait until the URL says ``key=value`` (the page wrote its view there) and the app is idle."""
    try:
        web.poll(lambda: params(pg).get(key) == value and not web.busy(pg), f"{key}={value!r} in the URL", timeout_s,
                 pg)
    except web.BrowserError as err:
        pytest.fail(f"{err}; the URL is {web.location(pg)}, busy: {web.busy(pg)}")


def slider(pg, label: str):
    """A slider's input (its accessible name repeats the label: matched on aria-label instead)."""
    return pg.locator(f'[data-testid="stSlider"] input[type="range"][aria-label="{label}"]')


# ---------------------------------------------------------------------------------- every page
def page_url(server: str, spec: dict) -> str:
    """Where a router page is served: the default one at the root (Streamlit ignores its
    url_path: ``/<url_path>`` answers "Page not found"), the others at ``/<url_path>``."""
    return f"{server}/" if spec["default"] else f"{server}/{spec['url_path']}"


def test_the_router_pages_are_all_found():
    """The pages read from the router (a stand-in st.Page) are the url_paths written in it."""
    written = re.findall(r'url_path\s*=\s*"([^"]+)"', web.ROUTER.read_text())
    assert [p["url_path"] for p in PAGES] == written
    assert {"playground", "real"} <= set(written)
    assert sum(p["default"] for p in PAGES) == 1


@pytest.mark.parametrize("spec", PAGES, ids=[p["url_path"] for p in PAGES])
def test_every_page_opens_without_an_error(spec, server, new_tab, artifacts):
    pg = new_tab(1400, 1000)
    web.open_page(pg, page_url(server, spec), REAL_TIMEOUT_S)
    web.assert_no_error(pg, spec["url_path"])
    # the sidebar lists every page, this one current
    nav = pg.locator('[data-testid="stSidebarNav"]')
    for other in PAGES:
        assert nav.get_by_text(other["title"], exact=True).count() == 1, other
    web.screenshot(pg, artifacts / f"{spec['url_path']}.png", full=True)


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


def test_playground_view_reopens_from_its_url(server, new_tab):
    pg = new_tab()
    web.open_page(pg, server)
    default = wait_for_table(pg, lambda t: float(t["ULD (closed form)"]) > 0, "the default values table")
    v_t = slider(pg, "teacher vocab size V_t")
    start = int(v_t.input_value())
    for step in range(1, 4):  # one key at a time: each one's rerun finishes before the next key
        v_t.press("ArrowRight")
        wait_for_param(pg, "V_t", str(start + step))
    seed = pg.get_by_role("spinbutton", name="seed")
    seed.fill("7")
    seed.press("Enter")
    wait_for_param(pg, "seed", "7")
    pg.get_by_text("permute the student (shuffle its token identities)", exact=True).click()
    wait_for_param(pg, "permute_student", "1")
    web.settle(pg)
    changed = values_table(pg)
    assert changed != default

    again = new_tab()
    web.open_page(again, web.location(pg))
    assert wait_for_table(again, lambda t: t == changed, "the same values table from the shared URL") == changed
    assert slider(again, "teacher vocab size V_t").input_value() == str(start + 3)
    assert again.get_by_role("spinbutton", name="seed").input_value() == "7"
    assert again.get_by_role("checkbox", name="permute the student (shuffle its token identities)").is_checked()
    web.assert_no_error(again, "playground from a shared URL")
