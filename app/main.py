"""Streamlit entrypoint: ``streamlit run app/main.py``.

Streamlit puts only ``app/`` on ``sys.path``, so the repository root is added here to make ``learngene`` and the
``app`` helpers importable without installing the package. The pages live in the top-level ``pages/`` folder and are
registered explicitly with ``st.navigation`` (automatic discovery only sees a ``pages/`` folder beside this file).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

PAGES = ROOT / "pages"

st.set_page_config(page_title="learngene", page_icon=":material/genetics:", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES / "1_ancestor.py", title="Ancestor", icon=":material/account_tree:", default=True),
        st.Page(PAGES / "2_heads.py", title="Heads", icon=":material/scatter_plot:", url_path="heads"),
        st.Page(PAGES / "3_descendants.py", title="Descendants", icon=":material/park:", url_path="descendants"),
        st.Page(PAGES / "4_finetune.py", title="Fine-tune", icon=":material/model_training:", url_path="finetune"),
        st.Page(PAGES / "5_runs.py", title="Runs", icon=":material/monitoring:", url_path="runs"),
    ]
)
navigation.run()
