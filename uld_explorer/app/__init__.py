"""The Streamlit app of ULD Explorer, shipped inside the package so that any install serves it.

``streamlit run app.py`` in a checkout and ``uld-explorer app`` anywhere both run
:data:`MAIN_SCRIPT` (the router, :mod:`uld_explorer.app.main`); the pages under ``pages/`` hold
widgets and layout only, every number comes from the library. The library never imports this
package (a test checks that no module outside it imports streamlit).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "MAIN_SCRIPT", "PAGES_DIR"]

#: The folder of this package: the router script, the pages and the assets.
_HERE = Path(__file__).resolve().parent
#: The script Streamlit runs: ``streamlit run <MAIN_SCRIPT>``.
MAIN_SCRIPT = _HERE / "main.py"
#: The pages (Streamlit scripts), run by the router.
PAGES_DIR = _HERE / "pages"
#: Local assets (the page icon: no request leaves the machine).
ASSETS = _HERE / "assets"
