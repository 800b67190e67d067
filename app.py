"""ULD Explorer, the Streamlit entry point: a picture frame around the pages (router only).

Run with ``streamlit run app.py``. Pages live in ``app_pages/`` (not ``pages/``, which Streamlit
would auto-discover); add new ones to ``PAGES``.
"""

import streamlit as st

st.set_page_config(page_title="ULD Explorer", page_icon=":material/compare_arrows:", layout="wide")

PAGES = [
    st.Page("app_pages/playground.py", title="Playground", icon=":material/science:", default=True),
    # next: real_models.py, tokenizers.py, distill.py
]

st.navigation(PAGES).run()
