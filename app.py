"""ULD Explorer in a checkout: ``streamlit run app.py`` (bound to 127.0.0.1 by .streamlit/config.toml).

The app itself ships inside the package (:mod:`uld_explorer.app`), so ``uld-explorer app`` serves
the same pages from any install; this file only hands over to its router.
"""

from uld_explorer.app.main import main

main()
