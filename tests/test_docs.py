"""The documentation site (docs/, Sphinx) builds with warnings as errors, and holds what it promises:
every notebook rendered as a lesson with its figures, the API reference from the docstrings, the
command line reference from the real parser; and the same flags do fail on a broken link and on a
docstring that does not render (a small project of its own, built the same way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q"]

pytest.importorskip("sphinx", reason="the docs extra: pip install -e '.[docs]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([*BUILD, str(ROOT / "docs"), str(out)], capture_output=True, text=True, timeout=900,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "WARNING" not in r.stderr and "ERROR" not in r.stderr, r.stderr[-4000:]
    return out


@pytest.mark.slow
def test_every_notebook_is_a_lesson_with_its_figures(site):
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for name in notebooks:
        page = (site / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        assert page.count("<img") >= 1, f"{name}: no figure rendered"
    toc = (site / "guide" / "notebooks.html").read_text(encoding="utf-8")
    assert all(f"lessons/{name}.html" in toc for name in notebooks)


@pytest.mark.slow
def test_the_api_reference_renders_the_docstrings(site):
    page = (site / "api" / "generated" / "uld_explorer.divergences.html").read_text(encoding="utf-8")
    assert 'id="uld_explorer.divergences.uld_distance"' in page and "zero-pad" in page
    lesson = (site / "api" / "generated" / "uld_explorer.lesson.html").read_text(encoding="utf-8")
    assert 'id="uld_explorer.lesson.numbers"' in lesson
    for module in ("ot", "measures", "distill.losses", "audit.report", "zoo.registry", "text.align"):
        assert (site / "api" / "generated" / f"uld_explorer.{module}.html").is_file(), module


@pytest.mark.slow
def test_the_cli_reference_is_the_parser(site):
    from uld_explorer.cli import build_parser

    page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in commands:
        assert f">{name}<" in page, name
    assert "--max-steps" in page and "--fsdp" in page and "--report-to" in page


@pytest.mark.slow
def test_the_readme_is_a_landing_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 15_000
    import re

    for target in re.findall(r"\]\(((?:docs|notebooks)/[^)#]+)\)", readme):
        assert (ROOT / target).exists(), target


def test_the_same_flags_fail_on_a_broken_link_and_a_docstring_that_does_not_render(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "broken_module.py").write_text('def f():\n    """An ``unclosed literal."""\n')
    (src / "conf.py").write_text(
        "import sys\nsys.path.insert(0, %r)\n" % str(tmp_path)
        + "extensions = ['sphinx.ext.autodoc', 'myst_parser']\n")
    (src / "index.md").write_text("# Home\n\nSee [a page that is not there](missing.md).\n\n"
                                  "```{eval-rst}\n.. autofunction:: broken_module.f\n```\n")
    r = subprocess.run([*BUILD, str(src), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "missing.md" in r.stderr and "Inline literal start-string without end-string" in r.stderr, r.stderr
