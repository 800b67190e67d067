"""The Streamlit entry point of ULD Explorer: a picture frame around the pages (router only).

Streamlit runs this file (``uld-explorer app``, or ``streamlit run app.py`` in a checkout, which
calls :func:`main`). Pages live in :data:`~uld_explorer.app.PAGES_DIR` (not a ``pages/`` folder
next to the script, which Streamlit would auto-discover); add new ones to :func:`pages`.
"""

from __future__ import annotations

import streamlit as st

from uld_explorer.app import ASSETS, PAGES_DIR


def pages() -> list:
    """The app's pages, in the sidebar's order (the first is the default)."""
    return [
        st.Page(PAGES_DIR / "learn.py", title="Learn", icon=":material/school:", default=True, url_path="learn"),
        st.Page(PAGES_DIR / "playground.py", title="Playground", icon=":material/science:", url_path="playground"),
        st.Page(PAGES_DIR / "real.py", title="Real distributions", icon=":material/compare:", url_path="real"),
        st.Page(PAGES_DIR / "mismatch.py", title="Tokenizer mismatch", icon=":material/text_select_start:",
                url_path="tokenizers"),
        st.Page(PAGES_DIR / "distill.py", title="Distillation", icon=":material/model_training:", url_path="distill"),
        st.Page(PAGES_DIR / "experiments.py", title="Experiments", icon=":material/experiment:",
                url_path="experiments"),
    ]


def main() -> None:
    st.set_page_config(page_title="ULD Explorer", page_icon=str(ASSETS / "icon.png"), layout="wide")
    st.navigation(pages()).run()


if __name__ == "__main__":
    main()
