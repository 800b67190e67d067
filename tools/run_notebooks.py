"""Re-execute the notebooks in place, so that they are committed WITH their outputs.

Usage (from the repository root, in the environment the tests use: ``pip install -e ".[dev]"``)::

    python tools/run_notebooks.py                                   # every notebooks/*.ipynb
    python tools/run_notebooks.py notebooks/02_real_models.ipynb    # just these

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient) with ``notebooks/`` as
its working directory, and is written back with every output, figures as PNG images, so that it
reads on a repository page without being run. A notebook is written back only if it ran without
an error and every figure came out as an image (not a bare ``<Figure size ...>`` text, which is
what a kernel without the inline backend gives); otherwise the file is left as it was and the
command exits 1. It also exits 1 when a written file is 1 MB or larger. The real-model notebooks
load the zoo models (``uld-explorer models fetch``, done on first use).

``tests/test_notebooks.py`` executes each notebook once through :func:`execute` and checks the
committed files against that run (outputs present, figures as images, size).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
#: A committed notebook must stay below this size (bytes), to render on a repository page.
MAX_BYTES = 1_000_000
#: The text a matplotlib figure leaves when it is NOT rendered as an image.
FIGURE_TEXT = re.compile(r"^<(matplotlib\.figure\.)?Figure( size| at)\b")
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


def notebooks() -> list[Path]:
    """Every notebook under ``notebooks/``, in name order."""
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))


def execute(path: Path, timeout: int = 600) -> tuple[nbformat.NotebookNode, float]:
    """Run one notebook in a fresh ``python3`` kernel; return the executed copy and the seconds.

    The file on disk is not touched. Errors are left in the outputs (``allow_errors``) so that
    the caller can report every failing cell; :func:`errors` lists them.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True, record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - t0


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def errors(nb: nbformat.NotebookNode) -> list[str]:
    """``"cell N: Name: message"`` for every error output (N counts code cells from 1)."""
    return [f"cell {n}: {o.get('ename')}: {o.get('evalue')}"
            for n, c in enumerate(code_cells(nb), 1) for o in c.get("outputs", []) if o.output_type == "error"]


def unrendered_figures(nb: nbformat.NotebookNode) -> list[str]:
    """``"cell N: <Figure ...>"`` for every figure output that carries no image."""
    bad = []
    for n, c in enumerate(code_cells(nb), 1):
        for o in c.get("outputs", []):
            data = o.get("data", {})
            text = data.get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if FIGURE_TEXT.match(text.strip()) and not any(t in data for t in IMAGE_TYPES):
                bad.append(f"cell {n}: {text.strip()}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks to run (default: every notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    paths = args.paths or notebooks()
    if not paths:
        print(f"no notebook under {NOTEBOOKS_DIR}", file=sys.stderr)
        return 1
    status = 0
    for path in paths:
        path = path.resolve()
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        nb, seconds = execute(path, args.timeout)
        problems = errors(nb) + [f"{f} (not an image)" for f in unrendered_figures(nb)]
        if problems:
            print(f"{name}: NOT written ({seconds:.1f} s):", *problems, sep="\n  ", file=sys.stderr)
            status = 1
            continue
        nbformat.write(nb, path)
        size = path.stat().st_size
        too_big = size >= MAX_BYTES
        status |= too_big
        print(f"{name}: {seconds:.1f} s, {size / 1000:.0f} kB" + ("  TOO BIG (limit 1 MB)" if too_big else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
