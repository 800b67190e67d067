"""End to end: a real ``streamlit run app.py`` server driven by a real Chromium (Playwright), the
app as a user meets it: every page of the router opens without an error, a text typed on the Real
distributions page and a position clicked on its chart show the library's numbers, the exports
download and parse back to the library's table, and a shared URL reopens the same view.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``; never
``playwright install``; ``ULD_CHROMIUM`` names another binary). Without it the tests skip, unless
ULD_REQUIRE_BROWSER=1 (CI), where they fail. The Real page runs the zoo's default pair (cached
models), in the server and once more in this process for the expected numbers. Screenshots are
kept in ``artifacts/e2e/`` (git-ignored). The server and browser helpers live in
``tests/browser.py`` (shared with ``tools/screenshots.py``).
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import asdict
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import browser as web
import pytest

import uld_explorer as ux
from uld_explorer.measures import MEASURES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = web.ROOT / "artifacts" / "e2e"
PAGE_TIMEOUT_MS = 90_000  # the first script run imports torch and POT
REAL_TIMEOUT_S = 180  # the Real page's first run loads two models and runs both on the text
PAGES = web.router_pages()

#: The Real page's comparison settings (its sidebar's defaults; checked on the page below).
REAL_CONFIG = dict(alignment="byte-offset", merge="observed", teacher_temperature=1.0, student_temperature=1.0,
                   top_k=500, max_tokens=256, costs=("string",), value_ot=False)
TEXT_LABEL = "text (scored, position by position)"
PROMPT_LABEL = "prompt (read, not scored)"
TYPED = " Paris is the capital of France."
#: The Real page's metric cards: the registry's title of each measure it shows -> the measure's key.
METRIC_FIELDS = {m.title: m.key for m in MEASURES.values() if m.shown_in("card") and "position" in m.where}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sync_api():
    return web.playwright_api()


@pytest.fixture(scope="module")
def server(sync_api, tmp_path_factory, default_models):
    """``streamlit run app.py`` on a free local port; yields its URL; always terminated. Its
    distillation runs directory is an empty temporary one (not the checkout's ./runs)."""
    env = {"ULD_EXPLORER_RUNS": str(tmp_path_factory.mktemp("runs"))}
    with web.serve(tmp_path_factory.mktemp("streamlit") / "server.log", env=env) as url:
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


@pytest.fixture(scope="module")
def library(sync_api):
    """``compare(text, prompt, **config changes) -> (table, cfg)``: the Real page's comparison
    computed here by the library, with the page's settings (models loaded once, ~3 GB)."""
    from uld_explorer.compare import ComparisonConfig

    teacher = ux.load_model(ux.DEFAULT_TEACHER, progress=False)
    student = ux.load_model(ux.DEFAULT_STUDENT, progress=False)
    cache = {}

    def compare(text: str, prompt: str, **changes):
        cfg = ComparisonConfig(**{**REAL_CONFIG, **changes})
        key = (text, prompt, json.dumps(asdict(cfg), sort_keys=True))
        if key not in cache:
            cache[key] = ux.compare_text(teacher, student, text, prompt=prompt, config=cfg), cfg
        return cache[key]

    return compare


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
    page.goto(f"{server}/playground")
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
    web.open_page(pg, f"{server}/playground")
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


def test_playground_linked_views_a_click_on_one_view_lights_the_others(server, new_tab, artifacts):
    """A click on a token's bar picks its rank (the sorted curves mark it, the page names the two
    tokens at that rank, the plans frame them); a click on a rank of the sorted curves picks that
    rank the other way round. The tokens are checked against the library's own pair."""
    import numpy as np

    import uld_explorer as ux

    p, q = ux.PlaygroundConfig().pair()
    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/playground")
    pg.locator('[data-testid="stVegaLiteChart"] svg').first.wait_for()
    web.settle(pg)
    i = int(np.argsort(-p, kind="stable")[4])  # the teacher's 5th most probable token
    bar = pg.locator(f'[data-testid="stVegaLiteChart"] .mark-rect path[aria-label*="side: teacher; token: tok{i};"]')
    bar.first.click()
    wait_for_param(pg, "rank", "5")
    j = int(np.argsort(-q, kind="stable")[4])
    pg.get_by_text(f"Rank 5: the teacher's tok{i} ({p[i]:.4f}) meets the student's tok{j} ({q[j]:.4f})").wait_for()
    web.screenshot(pg, artifacts / "playground_linked_rank5.png")
    point = pg.locator('[data-testid="stVegaLiteChart"] .mark-symbol path'
                       '[aria-label^="rank i (largest probability first): 2;"]')
    point.last.click()
    wait_for_param(pg, "rank", "2")
    from uld_explorer.tidy import tokens_at_rank

    a, b = tokens_at_rank(p, q, 2)
    pg.get_by_text(f"Rank 2: the teacher's tok{a} ({p[a]:.4f}) meets the student's tok{b} ({q[b]:.4f})").wait_for()
    web.assert_no_error(pg, "the playground's linked views")


def test_real_page_linked_views_a_bar_picks_its_rank_on_the_curves_and_the_plan(server, new_tab):
    """On the real pair: a click on the teacher's 3rd bar of the top-10 picks rank 3; the page names
    the two tokens at that rank (the teacher's is the clicked bar's) and marks the sorted curves;
    a click on the curves' rank 1 picks it the other way round."""
    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/real", REAL_TIMEOUT_S)
    charts = pg.locator('[data-testid="stVegaLiteChart"]')
    bar = charts.locator('.mark-rect path[aria-label*="side: teacher;"][aria-label*="; rank: 3; token:"]').first
    bar.wait_for()
    web.settle(pg)
    label = bar.get_attribute("aria-label")
    token = re.search(r"token: (.*?); prob:", label).group(1)  # as the chart shows it: repr(string)
    bar.click()
    wait_for_param(pg, "rank", "3", REAL_TIMEOUT_S)
    pg.get_by_text(f"Rank 3: the teacher's {token} (", exact=False).wait_for()
    charts.locator('.mark-symbol path[aria-label^="rank i (largest probability first): 1;"]').last.click()
    wait_for_param(pg, "rank", "1", REAL_TIMEOUT_S)
    pg.get_by_text("Rank 1: the teacher's", exact=False).wait_for()
    web.assert_no_error(pg, "the real page's linked views")


# ---------------------------------------------------------------------------------- the lesson
def test_the_lesson_walked_in_a_real_browser_at_1024_px(server, new_tab, artifacts):
    """The app opens on the Learn page; Next walks the eight steps at a 1024-px window (each step's
    heading, figure and URL; no horizontal scrolling), a guess is revealed, "Show me a solution"
    solves a challenge, and the step's link reopens it in a fresh tab."""
    from uld_explorer.lesson import STEPS

    pg = new_tab(1024, 900)
    web.open_page(pg, f"{server}/")  # the default page
    for i, step in enumerate(STEPS, 1):
        pg.get_by_role("heading", name=f"{i}. {step.title}").wait_for()
        wait_for_param(pg, "step", str(i))
        pg.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for()
        web.assert_no_error(pg, f"the lesson, step {i}")
        assert pg.evaluate("document.scrollingElement.scrollWidth") <= 1024, f"step {i} scrolls sideways at 1024 px"
        if i == 5:
            web.screenshot(pg, artifacts / "learn_step5.png")
            pg.get_by_text(step.question.options[0], exact=True).click()
            pg.get_by_role("button", name="Reveal the answer").click()
            pg.get_by_text(f"{step.question.answer(step.settings())}", exact=False).first.wait_for()
            pg.get_by_role("button", name="Show me a solution").click()
            pg.get_by_text("Solved:", exact=False).wait_for()
            wait_for_param(pg, "l_upto", "8")
            shared = web.location(pg)
        if i < len(STEPS):
            pg.get_by_role("button", name="Next").click()
    again = new_tab(1024, 900)
    web.open_page(again, shared)
    again.get_by_role("heading", name=f"5. {STEPS[4].title}").wait_for()
    again.get_by_text("Solved:", exact=False).wait_for()
    web.assert_no_error(again, "the lesson from a shared link")


# ---------------------------------------------------------------------------------- real distributions
def fmt(x) -> str:
    """A number as the Real page shows it in its metrics."""
    return "undefined" if x is None or not math.isfinite(x) else f"{x:.4f}"


def shown_position(pg) -> int:
    return int(pg.get_by_role("combobox", name="position", exact=True).input_value().split(":")[0])


def settle_on_position(pg, index: int, timeout_s: float = 60.0) -> None:
    web.poll(lambda: not web.busy(pg) and shown_position(pg) == index
             and pg.get_by_role("heading", name=re.compile(rf"^Position {index}: predicts")).count() == 1,
             f"position {index} to be shown", timeout_s, pg)
    web.settle(pg)


def click_position(pg, index: int) -> None:
    """Click position ``index`` on the positions chart (the page's first Vega chart, drawn as SVG:
    each point carries an ARIA label starting with its x field, 'position (the text it
    predicts): <index>;'), then wait for the page to show that position. The last such point in
    the document is drawn on top (a layer drawn under the clickable points may have symbols too)."""
    position_points(pg, index).last.click()
    settle_on_position(pg, index)


def position_points(pg, index: int):
    """The points of position ``index`` on the positions chart (one per measure)."""
    chart = pg.locator('[data-testid="stVegaLiteChart"]').first
    return chart.locator(f'.mark-symbol path[aria-label^="position (the text it predicts): {index};"]')


def real_view(pg) -> dict:
    """What the Real page shows: its main widgets and its metrics."""
    return {
        "prompt": pg.get_by_role("textbox", name=PROMPT_LABEL, exact=True).input_value(),
        "text": pg.get_by_role("textbox", name=TEXT_LABEL, exact=True).input_value(),
        "alignment": checked(pg, "alignment"),
        "merge": checked(pg, "merge (byte-offset groups)"),
        "position": shown_position(pg),
        "metrics": web.metrics(pg),
    }


def checked(pg, group: str) -> str:
    """The label of the checked option of the radio group ``group``."""
    options = pg.get_by_role("radiogroup", name=group, exact=True).locator('[data-testid="stRadioOption"]')
    names = [o.inner_text().strip() for o in options.all() if o.locator("input").is_checked()]
    assert len(names) == 1, (group, names)
    return names[0]


def assert_real_page_matches_library(pg, library) -> tuple:
    """The metrics shown for the selected position are the library's, to the digits shown (the
    settings read from the page; the sidebar's other settings are the page's defaults)."""
    view = real_view(pg)
    assert pg.get_by_role("combobox", name="teacher", exact=True).input_value().startswith(f"{ux.DEFAULT_TEACHER} (")
    assert pg.get_by_role("combobox", name="student", exact=True).input_value().startswith(f"{ux.DEFAULT_STUDENT} (")
    assert pg.get_by_role("spinbutton", name="top-k (token-space OT)").input_value() == str(REAL_CONFIG["top_k"])
    assert pg.get_by_role("spinbutton", name="max tokens (text)").input_value() == str(REAL_CONFIG["max_tokens"])
    for side in ("teacher", "student"):
        temperature = slider(pg, f"{side} temperature").input_value()
        assert float(temperature) == REAL_CONFIG[f"{side}_temperature"]
    table, cfg = library(view["text"], view["prompt"], alignment=view["alignment"], merge=view["merge"])
    r = table[view["position"]]
    fields = {label: [f for title, f in METRIC_FIELDS.items() if label == title] for label in view["metrics"]}
    assert sorted(sum(fields.values(), [])) == sorted(METRIC_FIELDS.values()), fields  # each shown once
    assert view["metrics"] == {label: fmt(getattr(r, f)) for label, (f,) in fields.items()}, (view, r)
    assert pg.get_by_role("heading", name=re.compile(rf"^Position {r.index}: predicts")).count() == 1
    return view, table, cfg


def test_real_page_typed_text_clicked_position_and_shared_url(server, new_tab, library, artifacts):
    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/real", REAL_TIMEOUT_S)
    web.assert_no_error(pg, "real, default view")
    assert_real_page_matches_library(pg, library)

    # type a text and commit it (Ctrl+Enter), as a user does
    box = pg.get_by_role("textbox", name=TEXT_LABEL, exact=True)
    box.fill(TYPED)
    box.press("Control+Enter")
    wait_for_param(pg, "text", TYPED, REAL_TIMEOUT_S)
    web.settle(pg, REAL_TIMEOUT_S)
    view, table, _ = assert_real_page_matches_library(pg, library)
    assert view["text"] == TYPED and view["position"] == 0
    assert [position_points(pg, i).count() > 0 for i in range(len(table) + 1)] == [True] * len(table) + [False]

    # a position clicked on the chart, then one chosen in the selectbox, then the first one clicked again
    click_position(pg, 3)
    assert params(pg).get("position") == "3"
    assert_real_page_matches_library(pg, library)
    web.choose(pg, "position", f"5: {table[5].label!r}")
    settle_on_position(pg, 5)
    assert_real_page_matches_library(pg, library)
    click_position(pg, 3)  # the chart's own selection was 3 already: still selects it
    assert_real_page_matches_library(pg, library)

    # another alignment: same position, the library's numbers for it
    pg.get_by_role("radiogroup", name="alignment", exact=True).get_by_text("positional", exact=True).click()
    wait_for_param(pg, "alignment", "positional")
    settle_on_position(pg, 3)
    view, _, _ = assert_real_page_matches_library(pg, library)
    assert view["alignment"] == "positional"
    web.assert_no_error(pg, "real, typed text, position 3, positional")
    web.screenshot(pg, artifacts / "real_typed_position3.png", full=True)

    # the URL, opened by someone else (a new browser context), shows the same view
    shared = web.location(pg)
    assert {k: params(pg).get(k) for k in ("text", "alignment", "position")} == {
        "text": TYPED, "alignment": "positional", "position": "3"}
    other = new_tab(1400, 1000)
    web.open_page(other, shared, REAL_TIMEOUT_S)
    settle_on_position(other, 3)
    assert real_view(other) == view
    assert_real_page_matches_library(other, library)
    web.assert_no_error(other, "real from a shared URL")
    web.screenshot(other, artifacts / "real_shared_url.png", full=True)


def click_row(pg, index: int, header_px: int = 35, row_px: int = 35) -> None:
    """Click the selection box of row ``index`` of the (expanded) table: st.dataframe draws on a
    canvas, so at its place (the grid's default header and row heights), then wait for the page
    to show that position."""
    pg.locator('[data-testid="stDataFrame"]').first.click(position={"x": 15, "y": header_px + row_px * index + row_px // 2})
    settle_on_position(pg, index)


def download(pg, popover: str, button: str, nth: int = 0) -> tuple[str, bytes]:
    """Open the ``nth`` popover button named ``popover``, click its download ``button``; the
    downloaded file's (suggested name, bytes). The popover is closed afterwards."""
    pg.get_by_role("button", name=popover, exact=True).nth(nth).click()
    body = pg.locator('[data-testid="stPopoverBody"]')
    with pg.expect_download() as info:
        body.get_by_role("button", name=button, exact=True).click()
    dl = info.value
    data = Path(dl.path()).read_bytes()
    pg.keyboard.press("Escape")
    web.poll(lambda: body.count() == 0 or not body.first.is_visible(), "the popover to close", 10, pg)
    return dl.suggested_filename, data


def same_value(shown, expected) -> bool:
    """Equal, numbers to 1e-6 (the server and this process run the models separately); None and
    NaN both mean "no value"."""
    def missing(x):
        return x is None or (isinstance(x, float) and math.isnan(x))

    if isinstance(expected, float) or isinstance(shown, float):
        if missing(expected) or missing(shown):
            return missing(expected) and missing(shown)
        return math.isclose(float(shown), float(expected), rel_tol=1e-6, abs_tol=1e-9)
    return shown == expected


def test_real_page_exports_are_the_library_table(server, new_tab, library):
    import pandas as pd

    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/real", REAL_TIMEOUT_S)
    view, table, cfg = assert_real_page_matches_library(pg, library)
    settings = json.loads(json.dumps({**asdict(cfg), "teacher": ux.DEFAULT_TEACHER, "student": ux.DEFAULT_STUDENT,
                                      "prompt": view["prompt"], "text": view["text"]}))
    pg.get_by_text("The whole table", exact=False).click()
    rows = web.poll(lambda: web.grid_rows(pg) or None, "the table's rows", 30, pg)
    assert rows[0][0] == "0" and rows[0][1] == table[0].label

    # a row clicked in the table selects its position
    click_row(pg, 2)
    assert_real_page_matches_library(pg, library)
    web.assert_no_error(pg, "real, a table row clicked")

    # CSV: the settings in '# key: json' lines, then the table
    name, data = download(pg, "Export table", "CSV")
    assert name == "uld_explorer_table.csv"
    lines = data.decode("utf-8").splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("# ")]
    assert lines[:len(head)] == head
    assert dict((k, json.loads(v)) for k, v in (ln[2:].rstrip("\n").split(": ", 1) for ln in head)) == settings
    frame = pd.read_csv(io.StringIO("".join(lines[len(head):])), keep_default_na=False)
    expected = table.to_dataframe()
    assert list(frame.columns) == list(expected.columns)
    assert len(frame) == len(table) and frame["index"].tolist() == [r.index for r in table]
    assert frame["label"].tolist() == [r.label for r in table]
    for column in ("kl_shared", "uld", "uld_half", "token_ot_string", "hybrid", "teacher_prob", "student_prob"):
        want = [getattr(r, column) for r in table]
        got = [float(x) if x != "" else None for x in frame[column]]
        assert all(same_value(g, w) for g, w in zip(got, want)), (column, got, want)

    # JSON: {"settings": ..., "rows": the library's records}
    name, data = download(pg, "Export table", "JSON")
    assert name == "uld_explorer_table.json"
    doc = json.loads(data)
    assert doc["settings"] == settings
    records = json.loads(json.dumps(table.to_records()))
    assert len(doc["rows"]) == len(records)
    for got, want in zip(doc["rows"], records):
        assert got.keys() == want.keys()
        assert all(same_value(got[k], want[k]) for k in want), (got, want)

    # a figure: PNG bytes drawn by matplotlib on demand
    name, data = download(pg, "Export figure", "PNG")
    assert name.endswith(".png") and data[:8] == PNG_MAGIC and len(data) > 10_000
    web.assert_no_error(pg, "real, after the exports")


def test_real_page_metrics_fit_at_1024px(server, new_tab, artifacts):
    pg = new_tab(1024, 900)
    web.open_page(pg, f"{server}/real", REAL_TIMEOUT_S)
    assert pg.locator('[data-testid="stMetricValue"]').count() == 4
    cut = pg.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stMetricValue"], [data-testid="stMetricValue"] *'))
        .filter(e => e.scrollWidth > e.clientWidth)
        .map(e => [e.textContent, e.scrollWidth, e.clientWidth])""")
    assert not cut, f"metric values cut at 1024 px (text, scrollWidth, clientWidth): {cut}"
    web.screenshot(pg, artifacts / "real_1024.png", full=True)


# ---------------------------------------------------------------------------------- lens and audit
def test_the_lens_and_the_audit_in_a_real_browser(server, new_tab, artifacts):
    """The Real page's gradient lens draws its chart and its reading; the Tokenizer mismatch page's
    audit shows its verdict and findings, and its model-checks switch adds the cache budget (a real
    click, the models run in the server), all without an exception."""
    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/real", REAL_TIMEOUT_S)
    lens = pg.locator('[data-testid="stMain"] h3').filter(has_text="Gradient lens")
    assert lens.count() == 1
    text = web.main_text(pg)
    assert "pushes" in text and "ULD pushes the student's favourite token" in text
    assert pg.locator('[data-testid="stVegaLiteChart"]').count() >= 3  # positions, plan, lens (and others)
    web.assert_no_error(pg, "real: lens")

    pg = new_tab(1400, 1000)
    web.open_page(pg, f"{server}/tokenizers?audit_examples=30", REAL_TIMEOUT_S)
    heading = pg.locator('[data-testid="stMain"] h3').filter(has_text="Audit:")
    assert heading.count() == 1
    assert "Works, with caveats" in web.main_text(pg)  # the default pair: warnings (drift, CJK, ...), no error
    assert "Teacher cache budget" not in web.main_text(pg)
    pg.locator('[data-testid="stCheckbox"]').filter(has_text="model checks").locator("label").click()
    web.poll(lambda: "Teacher cache budget" in web.main_text(pg) and not web.busy(pg) or None,
             "the cache budget after the model checks", REAL_TIMEOUT_S, pg)
    web.assert_no_error(pg, "tokenizers: audit with model checks")
    assert "Suggested K" in web.main_text(pg)
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    web.settle(pg)
    web.screenshot(pg, artifacts / "audit.png")
