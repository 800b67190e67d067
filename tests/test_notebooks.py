"""Every notebook under notebooks/ executes top to bottom (each asserts its own numbers), once.

The committed files are checked against that one fresh execution: they carry their outputs (so
they read on a repository page), every figure is an image (not a bare ``<Figure size ...>``),
and each file stays under 1 MB. ``python tools/run_notebooks.py`` re-executes and writes them.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 1_000_000
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
REGENERATE = "re-execute and commit them with: python tools/run_notebooks.py"


def _runner():
    """tools/run_notebooks.py, the documented command (its execute() is what the test runs)."""
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "tools" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _text(output, mime):
    value = output.get("data", {}).get(mime, "")
    return "".join(value) if isinstance(value, list) else value


def _is_figure(output) -> bool:
    """A matplotlib figure output: its text form is ``<Figure size 640x480 with 1 Axes>``."""
    text = _text(output, "text/plain").strip()
    return text.startswith(("<Figure size", "<Figure at", "<matplotlib.figure.Figure"))


def _images(cell) -> int:
    return sum(any(t in o.get("data", {}) for t in IMAGE_TYPES) for o in cell.get("outputs", []))


def _figures_without_image(nb) -> list[str]:
    return [f"code cell {n}: {_text(o, 'text/plain').strip()}"
            for n, c in enumerate(_code_cells(nb), 1) for o in c.get("outputs", [])
            if _is_figure(o) and not any(t in o.get("data", {}) for t in IMAGE_TYPES)]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


def test_figure_check_catches_a_figure_that_is_not_an_image():
    """The check below is not vacuous: a figure left as text is caught, an image is not."""
    text_only = nbformat.v4.new_output("execute_result", data={"text/plain": "<Figure size 360x300 with 1 Axes>"})
    image = nbformat.v4.new_output("display_data", data={"text/plain": "<Figure size 360x300 with 1 Axes>",
                                                         "image/png": "iVBORw0KGgo="})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fig", outputs=[text_only]),
                                         nbformat.v4.new_code_cell("fig", outputs=[image])])
    assert _figures_without_image(nb) == ["code cell 1: <Figure size 360x300 with 1 Axes>"]
    assert _runner().unrendered_figures(nb) == ["cell 1: <Figure size 360x300 with 1 Axes>"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_and_is_committed_with_its_outputs(path):
    committed = nbformat.read(path, as_version=4)
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path.name} is {size:,} bytes, over 1 MB: shrink its outputs (smaller figures)"
    assert not _figures_without_image(committed), (
        f"{path.name}: committed figures that are not images: {_figures_without_image(committed)}; {REGENERATE}")

    runner = _runner()
    fresh, _ = runner.execute(path)                      # the one execution of this notebook
    errors = runner.errors(fresh)
    assert not errors, f"{path.name} fails: {errors}"
    assert not _figures_without_image(fresh), (
        f"{path.name}: figures that render as text, not as images: {_figures_without_image(fresh)} "
        f"(is '%matplotlib inline' missing?)")

    committed_cells, fresh_cells = _code_cells(committed), _code_cells(fresh)
    assert len(committed_cells) == len(fresh_cells)
    missing = [n for n, (c, f) in enumerate(zip(committed_cells, fresh_cells), 1) if f.outputs and not c.outputs]
    assert not missing, f"{path.name}: code cells {missing} have outputs when run but none committed; {REGENERATE}"
    stale = [n for n, (c, f) in enumerate(zip(committed_cells, fresh_cells), 1) if _images(c) != _images(f)]
    assert not stale, (f"{path.name}: code cells {stale} draw a different number of figures than committed; "
                       f"{REGENERATE}")
