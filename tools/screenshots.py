"""Take the documentation's screenshots of the app (README, docs/): every page of the router, as a visitor first sees it.

Usage (from the repository root, in the environment the tests use: ``pip install -e ".[dev]"``,
with Debian's Chromium, ``apt-get install -y chromium``; the Real page needs the zoo's default
models on this machine, ``uld-explorer models fetch``)::

    python tools/screenshots.py                      # every page -> docs/screenshots/<url_path>.png
    python tools/screenshots.py real                 # just these pages (by url_path)
    python tools/screenshots.py lens audit           # sections of a page (SECTIONS): the lens, the audit
    python tools/screenshots.py --out /tmp/shots     # somewhere else
    python tools/screenshots.py distill --runs-dir runs   # the Distillation page over these runs

It starts ``streamlit run app.py`` on a free local port (stopped at the end, whatever happens),
opens each page of :func:`uld_explorer.app.main.pages` in a fresh 1400x2100 Chromium window, in
its default view (the Playground's defaults, the Real page's first example), waits for the run to
finish and the page to stop changing, and writes the window as a PNG, compressed (optimised, then
palette-quantised if needed) below 300 KB. It exits 1, writing nothing for that page, when a page
shows an error or a file stays too large. The server and browser helpers are the end-to-end
test's (``tests/browser.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's package, and the test helpers

import browser as web  # noqa: E402 - tests/ is not a package: put on the path just above

OUT = ROOT / "docs" / "screenshots"
WIDTH, HEIGHT = 1400, 2100
#: Shots of one section of a page: name -> (url_path, URL query, the section's heading starts with, viewport height).
SECTIONS = {
    "lens": ("real", "", "Gradient lens", 950),
    "audit": ("tokenizers", "?audit_models=true&audit_examples=100", "Audit:", 1500),
}
LIMIT_BYTES = 300_000
PAGE_TIMEOUT_S = 300  # the Real page's first run loads two models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="url_paths of the pages to take, or section shots "
                        f"({', '.join(SECTIONS)}) (default: every page and section)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for <url_path>.png (default: {OUT.relative_to(ROOT)})")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="the Distillation page's runs directory (default: $ULD_EXPLORER_RUNS, else ./runs)")
    args = parser.parse_args(argv)

    pages = web.router_pages()
    known = [p["url_path"] for p in pages]
    unknown = sorted(set(args.pages) - set(known) - set(SECTIONS))
    if unknown:
        parser.error(f"no such page {unknown}; the router has {known}, the sections {list(SECTIONS)}")
    chosen = [p for p in pages if not args.pages or p["url_path"] in args.pages]
    chosen += [{"url_path": name, "section": SECTIONS[name]} for name in SECTIONS if not args.pages or name in args.pages]
    if not web.CHROMIUM.exists():
        print(f"no Chromium at {web.CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    from playwright import sync_api

    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"ULD_EXPLORER_RUNS": str(args.runs_dir.resolve())} if args.runs_dir else None
        with web.serve(Path(tmp) / "server.log", env=env) as url, web.chromium(sync_api) as browser:
            for spec in chosen:
                start = time.monotonic()
                section = spec.get("section")
                pg = web.new_page(browser, WIDTH, section[3] if section else HEIGHT)
                try:
                    pg.set_default_timeout(PAGE_TIMEOUT_S * 1000)
                    if section:  # the page, scrolled so that the section's heading is at the top
                        web.open_page(pg, f"{url}/{section[0]}{section[1]}", PAGE_TIMEOUT_S)
                        heading = pg.locator('[data-testid="stMain"] h3').filter(has_text=section[2]).first
                        heading.evaluate("e => e.scrollIntoView({block: 'start'})")
                        web.settle(pg)
                    else:
                        web.open_page(pg, url + ("/" if spec["default"] else f"/{spec['url_path']}"), PAGE_TIMEOUT_S)
                    web.assert_no_error(pg, spec["url_path"])
                    shot = web.screenshot(pg, Path(tmp) / f"{spec['url_path']}.png")
                except (AssertionError, web.BrowserError) as err:
                    failed.append(spec["url_path"])
                    print(f"{spec['url_path']}: {err}", file=sys.stderr)
                    continue
                finally:
                    pg.context.close()
                size = web.shrink_png(shot, LIMIT_BYTES)
                if size >= LIMIT_BYTES:
                    failed.append(spec["url_path"])
                    print(f"{spec['url_path']}: {size:,} bytes even quantised (limit {LIMIT_BYTES:,})", file=sys.stderr)
                    continue
                args.out.mkdir(parents=True, exist_ok=True)
                target = args.out / shot.name
                target.write_bytes(shot.read_bytes())
                print(f"{target}: {size:,} bytes ({time.monotonic() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
