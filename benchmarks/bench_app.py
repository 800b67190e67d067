"""How fast the Real distributions page answers, on a 128-token text (default pair, 2 threads).

Drives the page with Streamlit's AppTest (the script run on the server, which is what a click
waits for; the browser then draws the Vega charts): a first run (models loaded, two forward
passes, the table), selecting another position (median of 5), and changing what needs a new
table but no forward pass: top-k, alignment, merge (median of 3 each, alternating values so
every run is a cache miss, a new top-k set first for the alignment and the merge). Then the
Tokenizer mismatch page: its first view (the models already loaded: two forward passes on its
text and three tables), a tokenizer-only student (tokenize + vocabulary overlap) and a new text.
Then the Playground (a slider moved) and the Learn page (a step change by Next, a setting moved).

    python benchmarks/bench_app.py                 # every page
    python benchmarks/bench_app.py --pages learn playground   # just these (no models loaded)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "uld_explorer" / "app" / "pages" / "real.py"
MISMATCH = ROOT / "uld_explorer" / "app" / "pages" / "mismatch.py"
PLAYGROUND = ROOT / "uld_explorer" / "app" / "pages" / "playground.py"
LEARN = ROOT / "uld_explorer" / "app" / "pages" / "learn.py"
PAGES = ("real", "mismatch", "playground", "learn")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import PARAGRAPH  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=list(PAGES), help="the pages to time")
    pages = parser.parse_args(argv).pages
    import torch

    torch.set_num_threads(2)
    print(f"# the app's pages: {platform.processor() or platform.machine()}, torch threads 2\n")
    print("| action | seconds (server-side script run) | target |")
    print("|---|---:|---:|")
    if "real" in pages or "mismatch" in pages:
        models(pages)
    if "playground" in pages:
        playground()
    if "learn" in pages:
        learn()


def models(pages: list[str]) -> None:
    from streamlit.testing.v1 import AppTest

    import uld_explorer as ux
    from uld_explorer.text import tokenize_with_offsets

    teacher = ux.load_model(ux.DEFAULT_TEACHER, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = tokenize_with_offsets(teacher.tokenizer, PARAGRAPH * 4, max_tokens=128).text
    at = AppTest.from_file(str(PAGE), default_timeout=600)
    at.query_params["text"] = text
    at.query_params["prompt"] = ""
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    assert not at.exception, at.exception
    rows = len(at.selectbox(key="position").options)

    def timed(action) -> float:
        t = time.perf_counter()
        action()
        assert not at.exception, at.exception
        return time.perf_counter() - t

    select = [timed(lambda i=i: at.selectbox(key="position").set_value(10 + 7 * i).run()) for i in range(5)]
    top_k = [timed(lambda k=k: at.number_input(key="top_k").set_value(k).run()) for k in (200, 300, 400)]

    def flip(key: str, values: tuple[str, str], k: int) -> float:
        """A new top-k first (untimed), so the flipped table is not in the cache either."""
        at.number_input(key="top_k").set_value(k).run()
        now = at.radio(key=key).value
        return timed(lambda: at.radio(key=key).set_value(values[values[0] == now]).run())

    align = [flip("alignment", ("positional", "byte-offset"), k) for k in (210, 310, 410)]
    merge = [flip("merge", ("bayesian", "observed"), k) for k in (220, 320, 420)]
    print(f"| Real page ({rows} positions, 128 teacher tokens), first view: load models, two forward passes, the table | {first:.2f} | - |")
    print(f"| select another position (median of 5) | {statistics.median(select):.3f} | <= 0.3 |")
    print(f"| change top-k: new table, no forward pass (median of 3) | {statistics.median(top_k):.2f} | <= 1.5 |")
    print(f"| change the alignment (median of 3) | {statistics.median(align):.2f} | <= 1.5 |")
    print(f"| change the merge (median of 3) | {statistics.median(merge):.2f} | <= 1.5 |")

    if "mismatch" not in pages:
        return
    mm = AppTest.from_file(str(MISMATCH), default_timeout=600)
    first_mm = timed(lambda: mm.run())
    assert not mm.exception, mm.exception
    gpt2 = timed(lambda: mm.selectbox(key="tk_student").set_value("GPT-2").run())
    texts = [timed(lambda i=i: mm.text_area(key="tk_text").set_value(f"{text[: 200 + i]}").run()) for i in range(3)]
    assert not mm.exception, mm.exception
    print(f"| Tokenizer mismatch, first view: 2 forward passes, 3 tables | {first_mm:.2f} | - |")
    print(f"| Tokenizer mismatch, a tokenizer-only student (load, vocabulary overlap) | {gpt2:.2f} | - |")
    print(f"| Tokenizer mismatch, a new text, tokenizers only (median of 3) | {statistics.median(texts):.3f} | - |")



def timed_run(at, action) -> float:
    t = time.perf_counter()
    action()
    assert not at.exception, at.exception
    return time.perf_counter() - t


def playground() -> None:
    from streamlit.testing.v1 import AppTest

    pg = AppTest.from_file(str(PLAYGROUND), default_timeout=600)
    pg.run()
    assert not pg.exception, pg.exception

    def pg_timed(key: str, value) -> float:
        t = time.perf_counter()
        pg.slider(key=key).set_value(value).run()
        assert not pg.exception, pg.exception
        return time.perf_counter() - t

    moves = [pg_timed("noise", v) for v in (0.3, 0.6, 0.9)] + [pg_timed("shift", v) for v in (2, 4, 6)]
    moves += [pg_timed("V_t", v) for v in (120, 200, 300)]  # 300: the largest exact value-space OT
    print(f"| Playground, a slider moved: every number and chart spec (median of 9; max) | "
          f"{statistics.median(moves):.3f} (max {max(moves):.3f}) | <= 0.3 |")




def learn() -> None:
    """Next through the eight steps (each a new pair, its measures, POT's plans or the lens, the
    figure's spec), then a setting moved on each step that has a slider."""
    from streamlit.testing.v1 import AppTest

    from uld_explorer.lesson import CONTROLS, STEPS

    at = AppTest.from_file(str(LEARN), default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    nexts = [timed_run(at, lambda: at.button(key="next").click().run()) for _ in STEPS[1:]]
    at.button(key="back").click().run()  # untimed: back to step 7, then the steps' sliders
    moves = []
    for i, step in enumerate(STEPS, 1):
        at.selectbox(key="step_pick").set_value(i).run()
        sliders = [n for n in step.controls if CONTROLS[n].lo is not None]
        if sliders:
            name = sliders[0]
            c = CONTROLS[name]
            moves.append(timed_run(at, lambda: at.slider(key=f"l_{name}").set_value(type(c.lo)(c.hi)).run()))
    print(f"| Learn, a step change (Next; median of {len(nexts)}; max) | {statistics.median(nexts):.3f} "
          f"(max {max(nexts):.3f}) | <= 0.3 |")
    print(f"| Learn, a setting moved (median of {len(moves)}; max) | {statistics.median(moves):.3f} "
          f"(max {max(moves):.3f}) | <= 0.3 |")


if __name__ == "__main__":
    main()
