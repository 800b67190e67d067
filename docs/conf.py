"""Sphinx configuration of ULD Explorer's documentation site.

Build (warnings are errors, as in CI: ``tests/test_docs.py``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Why Sphinx: the library's docstrings are reStructuredText with Sphinx roles (``:func:``,
``:math:``, numpy-style sections), so autodoc renders them as written and resolves their
cross-references; POT, the OT library this project leans on, documents itself the same way.
The guide pages are Markdown (MyST), the notebooks are rendered with their stored outputs
(myst-nb, not executed here: the test suite executes them), the command line reference is
generated from the real parser (sphinx-argparse).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "ULD Explorer"
author = "the ULD Explorer team"
copyright = "2026, the ULD Explorer team"  # noqa: A001 - Sphinx's name

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
    "sphinxarg.ext",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "accelerate", "experiments", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks carry the outputs of their executed run (tests/test_notebooks.py)

# the API reference: one page per module, from the docstrings (numpy style)
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False, "ignore-module-all": True}
autodoc_typehints = "none"  # the docstrings state types and shapes
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# The docstrings cite their references as numbered notes (.. [1]) without always pointing at them
# from the text: rendered as a list, which is what they are. Nothing else is silenced.
suppress_warnings = ["ref.footnote"]

html_theme = "furo"
html_title = "ULD Explorer"
html_static_path: list[str] = []


def _copy_notebooks(app) -> None:
    """The notebooks live in ``notebooks/`` (executed by the tests); the site renders copies."""
    target = DOCS / "lessons"
    target.mkdir(exist_ok=True)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(nb, target / nb.name)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
