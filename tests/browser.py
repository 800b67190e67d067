"""A real ULD Explorer server and a real Chromium, shared by ``tests/test_e2e_browser.py`` and
``tools/screenshots.py``: no pytest here, plain context managers and polling helpers.

The server is ``streamlit run app.py`` from this checkout (``PYTHONPATH`` starts with it, so the
server imports this tree's ``uld_explorer``), on a free local port, and is always stopped when the
``with`` block ends. The browser is Debian's Chromium (``apt-get install -y chromium``; never
``playwright install``) driven by Playwright; ``ULD_CHROMIUM`` names another binary, e.g. a
wrapper script.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parents[1]
ROUTER = ROOT / "uld_explorer" / "app" / "main.py"
CHROMIUM = Path(os.environ.get("ULD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 90  # s, until /_stcore/health answers
#: The app is idle: connected, its script not running (Streamlit's own end-to-end tests wait on
#: these attributes of the root element) ...
IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
#: ... and no element left over from the previous run (dimmed until the run redraws or drops it).
STALE = '[data-stale="true"]'

#: Run in every page before its own scripts (:func:`new_page`): the time of the DOM's last change.
#: The app's "not running" state comes a moment before the browser has drawn everything the run
#: sent (a page's charts can take a second), so being idle also means the DOM has stopped changing.
WATCH_DOM = """(() => {
  window.__uldLastChange = performance.now();
  new MutationObserver(() => { window.__uldLastChange = performance.now(); })
    .observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();"""

T = TypeVar("T")


class BrowserError(RuntimeError):
    """The server or the page did not get where it was expected to (the message says where)."""


def router_pages(router: Path = ROUTER) -> list[dict[str, Any]]:
    """The pages of this checkout's router (its ``pages()``, :mod:`uld_explorer.app.main`) as
    ``{"url_path", "title", "default"}`` dicts, in the sidebar's order: the file is loaded by path
    and ``pages()`` called with a stand-in ``st.Page`` (a real one needs a running script), so a
    new page is picked up without editing a list."""
    import importlib.util

    import streamlit

    def fake_page(page, *, title=None, icon=None, url_path=None, default=False, **_):
        return {"url_path": url_path if url_path is not None else Path(page).stem, "title": title,
                "default": bool(default)}

    spec = importlib.util.spec_from_file_location("_uld_router", router)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    real = streamlit.Page
    streamlit.Page = fake_page
    try:
        return module.pages()
    finally:
        streamlit.Page = real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, timeout_s: float, output: Callable[[], str]) -> None:
    """Poll ``url/_stcore/health`` until it answers 200; :class:`BrowserError` with the server's
    ``output()`` when the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise BrowserError(f"streamlit exited with code {proc.returncode}:\n{output()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BrowserError(f"streamlit not healthy after {timeout_s} s:\n{output()}")
        time.sleep(0.25)


@contextlib.contextmanager
def serve(log_path: Path, timeout_s: float = SERVER_START_TIMEOUT, env: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run app.py`` on a free local port; yields its URL once ``/_stcore/health``
    answers; the server is terminated (then killed) when the block ends, whatever happens.
    ``env``: variables set for the server on top of this process's (e.g. ``ULD_EXPLORER_RUNS``)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(proc, url, timeout_s, lambda: log_path.read_text()[-3000:])
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def playwright_api() -> Any:
    """Playwright's sync API for a test, or skip it when Chromium or the package is missing (fail
    instead under ``ULD_REQUIRE_BROWSER=1``, as CI sets)."""
    import pytest

    def missing(reason: str) -> None:
        if os.environ.get("ULD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (ULD_REQUIRE_BROWSER=1 requires the browser test to run)")
        pytest.skip(f"{reason}; install it with `apt-get install -y chromium` (set ULD_REQUIRE_BROWSER=1 to fail "
                    "instead)")

    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright import sync_api
    except ImportError:
        missing("the playwright Python package is not installed (pip install playwright)")
    return sync_api


@contextlib.contextmanager
def chromium(sync_api: Any) -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``), closed when the block ends."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def poll(check: Callable[[], T | None], what: str, timeout_s: float, pg: Any = None, interval_s: float = 0.25) -> T:
    """Call ``check`` until it returns something truthy (returned) before the deadline; else
    :class:`BrowserError` naming ``what`` and the last value seen. Exceptions of ``check`` count
    as "not yet" (the page is redrawing), the last one is reported. With a page ``pg``, waits in
    between through Playwright (``pg.wait_for_timeout``), which also delivers the page's events
    (navigation, so ``pg.url``) to this process; a bare ``time.sleep`` delivers none."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as err:  # noqa: BLE001 - the page may be mid-rerun; retried until the deadline
            last = err
        if time.monotonic() > deadline:
            raise BrowserError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")
        if pg is not None:
            pg.wait_for_timeout(int(interval_s * 1000))
        else:
            time.sleep(interval_s)


def location(pg: Any) -> str:
    """The address the page is at now, asked of the page (the app rewrites its query string)."""
    return pg.evaluate("() => window.location.href")


def busy(pg: Any) -> bool:
    """Whether a script run is going (or about to start, or its output not yet all drawn)."""
    return pg.locator(IDLE).count() == 0 or pg.locator(STALE).count() > 0


def quiet_ms(pg: Any) -> float:
    """Milliseconds since the DOM last changed (infinite on a page opened without :data:`WATCH_DOM`,
    which :func:`settle` then waits on the app's state alone)."""
    ms = pg.evaluate("() => window.__uldLastChange === undefined ? null : performance.now() - window.__uldLastChange")
    return float("inf") if ms is None else ms


def settle(pg: Any, timeout_s: float = 60.0, quiet_s: float = 0.6) -> None:
    """Wait until the app is idle: no script run going, nothing stale, and the DOM unchanged for
    ``quiet_s`` (its last run drawn; a rerun that a click or a key asks for starts within that)."""
    def idle() -> bool:
        if busy(pg):
            return False
        if quiet_ms(pg) >= quiet_s * 1000:
            return True
        pg.wait_for_timeout(int(quiet_s * 1000))
        return not busy(pg) and quiet_ms(pg) >= quiet_s * 1000

    poll(idle, "the app to finish its run and the page to stop changing", timeout_s, pg)


def new_page(browser: Any, width: int = 1400, height: int = 1000) -> Any:
    """A page in a fresh browser context (a new visitor: no cookies, no storage), downloads
    accepted, watching its DOM (:data:`WATCH_DOM`). Close it with ``page.context.close()``."""
    ctx = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    ctx.add_init_script(WATCH_DOM)
    return ctx.new_page()


def screenshot(pg: Any, path: Path, full: bool = False, max_height: int = 8000) -> Path:
    """A PNG of the page as the viewport shows it, or with ``full`` the whole page: Streamlit
    scrolls inside its main element (a "full page" screenshot would stop at the viewport), so the
    viewport is made as tall as the content (at most ``max_height``) for the shot, then restored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not full:
        pg.screenshot(path=str(path))
        return path
    size = dict(pg.viewport_size)
    height = pg.evaluate("""() => Math.max(...Array.from(document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stSidebarContent"], body')).map(e => e.scrollHeight))""")
    pg.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), max_height))})
    try:
        settle(pg)
        pg.screenshot(path=str(path))
    finally:
        pg.set_viewport_size(size)
        settle(pg)
    return path


def main_text(pg: Any) -> str:
    return pg.locator('[data-testid="stMain"]').inner_text()


def assert_no_error(pg: Any, where: str) -> None:
    """No exception element, no traceback text, and no "Page not found" dialog (Streamlit's answer
    to a URL that names no page: it shows the default page under it)."""
    n = pg.locator('[data-testid="stException"]').count()
    text = main_text(pg)
    if n or "Traceback" in text:
        raise AssertionError(f"{where}: an exception is shown ({n} stException elements):\n{text[-3000:]}")
    if pg.locator('[role="dialog"]').filter(has_text="Page not found").count():
        raise AssertionError(f"{where}: Streamlit says 'Page not found' at {location(pg)}")


def open_page(pg: Any, url: str, timeout_s: float = 90.0) -> None:
    """Go to ``url`` and wait for the page's own content (a title, not the loading skeleton) and
    for the script run to finish."""
    pg.goto(url)
    pg.locator('[data-testid="stMain"] h1').first.wait_for(timeout=timeout_s * 1000)
    settle(pg, timeout_s)


def metrics(pg: Any) -> dict[str, str]:
    """The st.metric elements as {label: value text}."""
    out = {}
    for m in pg.locator('[data-testid="stMetric"]').all():
        label = m.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def grid_rows(scope: Any) -> list[list[str]]:
    """The rows of the first st.dataframe in ``scope`` (a page or a locator), read from the data
    grid's accessible table (st.dataframe draws on a canvas and mirrors its cells into an ARIA
    table; rows scrolled out of view may be missing)."""
    grid = scope.locator('[data-testid="stDataFrame"]').first
    return [row.locator("td").all_text_contents() for row in grid.locator("table tbody tr").all()]


def choose(pg: Any, label: str, option: str, timeout_s: float = 30.0) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (its list is opened again when a click
    did not open it: the first click after a rerun sometimes does not)."""
    box = pg.get_by_role("combobox", name=label, exact=True)
    item = pg.get_by_role("option", name=option, exact=True)

    def listed() -> bool:
        if not item.is_visible():
            if box.get_attribute("aria-expanded") == "true":
                box.press("Escape")
            box.click()
            item.wait_for(state="visible", timeout=3000)
        return True

    poll(listed, f"the option {option!r} of {label!r} to show", timeout_s, pg)
    item.click()


def shrink_png(path: Path, limit_bytes: int) -> int:
    """Rewrite the PNG at ``path`` smaller (optimised; then palette-quantised, 256 then fewer
    colours) until it is below ``limit_bytes``; returns its size. Needs Pillow."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB")
    rgb.save(path, optimize=True)
    for colors in (256, 128, 64, 32):
        if path.stat().st_size < limit_bytes:
            break
        rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path.stat().st_size
