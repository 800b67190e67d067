"""End to end: a real ``streamlit run app.py`` server driven by a real Chromium (Playwright).

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``; never
``playwright install``). Without it the tests skip, unless ULD_REQUIRE_BROWSER=1 (CI), where
they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SERVER_START_TIMEOUT = 90  # s, until /_stcore/health answers
PAGE_TIMEOUT_MS = 90_000  # the first script run imports torch and POT


def _missing(reason: str) -> None:
    if os.environ.get("ULD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (ULD_REQUIRE_BROWSER=1 requires the browser test to run)")
    pytest.skip(f"{reason}; install it with `apt-get install -y chromium` (set ULD_REQUIRE_BROWSER=1 to fail instead)")


@pytest.fixture(scope="module")
def sync_api():
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright import sync_api
    except ImportError:
        _missing("the playwright Python package is not installed (pip install playwright)")
    return sync_api


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sync_api, tmp_path_factory):
    """``streamlit run app.py`` on a free local port; yields its URL; always terminated."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit not healthy after {SERVER_START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(sync_api, server):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 2100})
            pg.set_default_timeout(PAGE_TIMEOUT_MS)
            yield pg
        finally:
            browser.close()


def values_table(pg) -> dict[str, str]:
    """The values table as {divergence: value text}, read from the data grid's accessible table
    (st.dataframe draws on a canvas; the grid mirrors its cells into an ARIA table)."""
    out = {}
    for row in pg.locator('[data-testid="stDataFrame"] table tbody tr').all():
        cells = row.locator("td").all_text_contents()
        if len(cells) >= 2:
            out[cells[0]] = cells[1]
    return out


def wait_for_table(pg, predicate, what: str, timeout_s: float = 60.0) -> dict[str, str]:
    """Poll the table until ``predicate(table)`` holds and no element is stale (rerun finished)."""
    deadline = time.monotonic() + timeout_s
    table: dict[str, str] = {}
    while time.monotonic() < deadline:
        table = values_table(pg)
        stale = pg.locator('[data-stale="true"]').count()
        if table and not stale:
            try:
                if predicate(table):
                    return table
            except (KeyError, ValueError):
                pass
        pg.wait_for_timeout(250)
    pytest.fail(f"timed out waiting for {what}; table was {table}")


def test_playground_in_a_real_browser(page, server, tmp_path):
    page.goto(server)
    # the real content, not Streamlit's loading skeleton
    page.get_by_role("heading", name="Playground: KL vs exact OT vs ULD").wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    table = wait_for_table(page, lambda t: float(t["ULD (closed form)"]) > 0, "the default values table")
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "ULD" in text and "All values" in text
    assert "Plain KL(p‖q) is undefined" in text  # default V_t != V_s: the shared-string KL is shown
    assert table["KL(p||q)"] == ""  # undefined: empty cell
    assert set(table) >= {"KL(p||q)", "KL(p||q) on shared strings", "ULD (closed form)",
                          "n * W1 value-space OT (POT)", "token-space OT, string cost (POT)"}
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for()
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 5  # scale, bars, sorted, two plans
    shot = tmp_path / "playground_default.png"
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
    assert "Traceback" not in page.locator('[data-testid="stMain"]').inner_text()

    demo_shot = tmp_path / "playground_demo.png"
    page.screenshot(path=str(demo_shot))
    for path in (shot, demo_shot):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000, (path, len(data))
