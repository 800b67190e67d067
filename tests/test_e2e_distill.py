"""End to end: the Distillation page in a real Chromium, served by a real ``streamlit run app.py``
whose runs directory ($ULD_EXPLORER_RUNS) is a fresh temporary folder. A user starts a short run
from the page's form, watches its training curve grow (more points on the chart, a later step in
the runs table) while the page polls the run directory, and stops it: the run checkpoints and
exits, and the page says "stopped".

Needs Debian's chromium at /usr/bin/chromium, like tests/test_e2e_browser.py: without it the test
skips, unless ULD_REQUIRE_BROWSER=1 (CI), where it fails. Screenshots go to ``artifacts/e2e/``.
"""

from __future__ import annotations

import re

import browser as web
import pytest

from uld_explorer.distill import runs
from uld_explorer.distill.rundir import RunDir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = web.ROOT / "artifacts" / "e2e"
PAGE_TIMEOUT_S = 120
RUN_TIMEOUT_S = 300  # the run's process: imports and data (~10 s), step 0's evaluation (~10-30 s)
NAME = "e2e-run"


@pytest.fixture(scope="module")
def sync_api():
    return web.playwright_api()


@pytest.fixture
def page(sync_api, runs_dir, tmp_path_factory):
    """The app served with ``runs_dir`` as its runs directory, and a Chromium tab on it."""
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with web.serve(log, env={runs.RUNS_ENV: str(runs_dir)}) as url, web.chromium(sync_api) as browser:
        pg = web.new_page(browser, 1400, 1400)
        pg.set_default_timeout(PAGE_TIMEOUT_S * 1000)
        pg.goto_distill = lambda: web.open_page(pg, f"{url}/distill", PAGE_TIMEOUT_S)
        yield pg
        pg.context.close()


def table_row(pg) -> dict[str, str] | None:
    """The runs table's row of the run started here, as {column: text} (None while not listed)."""
    header = pg.locator('[data-testid="stDataFrame"]').first.locator("table thead th").all_text_contents()
    for cells in web.grid_rows(pg):
        if NAME in cells:
            return dict(zip(header[-len(cells):], cells))
    return None


def training_points(pg) -> int:
    """Points drawn on the training-curves chart (the page's first Vega chart: a point per logged
    step and metric)."""
    chart = pg.locator('[data-testid="stVegaLiteChart"]').first
    return chart.locator(".mark-symbol path").count() if chart.count() else 0


def step_done(row: dict[str, str] | None) -> int:
    match = re.match(r"(\d+) / \d+", (row or {}).get("step / max", ""))
    return int(match.group(1)) if match else -1


def test_start_a_run_watch_its_curve_grow_and_stop_it(page, runs_dir):
    pg = page
    pg.goto_distill()
    web.assert_no_error(pg, "distill, no runs")
    assert "No runs in" in web.main_text(pg)

    # the form in the sidebar: 30 steps, evaluated every 5, a name; the loss stays CE + ULD
    side = pg.locator('[data-testid="stSidebar"]')
    for label, value in (("max steps", "30"), ("eval every", "5")):
        box = side.get_by_role("spinbutton", name=label, exact=True)
        box.fill(value)
        box.press("Tab")
    name = side.get_by_role("textbox", name="run name", exact=True)
    name.fill(NAME)
    name.press("Tab")
    side.get_by_role("button", name="Start", exact=True).click()
    pg.get_by_text(f"Started {NAME} (ce+uld, 30 steps)").wait_for(timeout=PAGE_TIMEOUT_S * 1000)
    web.assert_no_error(pg, "distill, run started")
    launched = RunDir(runs_dir / NAME).launch()
    assert launched["alive"] and launched["config"]["max_steps"] == 30 and launched["config"]["eval_every"] == 5

    # the page follows the run: listed, then running, then a first step on the chart ...
    row = web.poll(lambda: table_row(pg), "the run in the runs table", PAGE_TIMEOUT_S, pg)
    assert row["loss"] == "ce+uld" and row["state"] in ("starting", "running")
    web.poll(lambda: training_points(pg) > 0, "the first points on the training chart", RUN_TIMEOUT_S, pg)
    first_points, first_step = training_points(pg), step_done(table_row(pg))
    assert table_row(pg)["state"] == "running"
    web.screenshot(pg, ARTIFACTS / "distill_running.png")
    # ... and more, without anyone touching the page
    web.poll(lambda: training_points(pg) > first_points and step_done(table_row(pg)) > first_step,
             "the training curve to grow and the step shown to advance", RUN_TIMEOUT_S, pg)
    grown = training_points(pg)
    assert grown >= first_points + 2  # a step adds a point to the CE and the ULD panels
    on_disk = len(runs.read_metrics(runs_dir / NAME))
    assert step_done(table_row(pg)) <= on_disk - 1 <= 30

    # Stop: the run finishes its step, saves a checkpoint and exits; the page says so
    pg.get_by_role("button", name="Stop", exact=True).click()
    pg.get_by_text(f"Asked {NAME} to stop").wait_for()
    web.poll(lambda: (table_row(pg) or {}).get("state") == "stopped", "the state 'stopped' in the runs table",
             RUN_TIMEOUT_S, pg)
    web.settle(pg)
    web.assert_no_error(pg, "distill, run stopped")
    info = runs.run_info(runs_dir / NAME)
    assert info.state == "stopped" and not RunDir(runs_dir / NAME).launch()["alive"]
    assert RunDir(runs_dir / NAME).latest_checkpoint() is not None
    assert pg.get_by_role("button", name="Resume", exact=True).is_enabled()
    assert not pg.get_by_role("button", name="Stop", exact=True).is_enabled()
    assert training_points(pg) >= grown  # the curves stay
    web.screenshot(pg, ARTIFACTS / "distill_stopped.png", full=True)
