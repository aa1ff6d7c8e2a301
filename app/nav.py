"""Links between pages (the pages live in the top-level ``pages/`` folder, outside the entrypoint's folder)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
ANCESTOR, HEADS, DESCENDANTS, FINETUNE, RUNS = (
    "1_ancestor.py", "2_heads.py", "3_descendants.py", "4_finetune.py", "5_runs.py"
)


def link(page: str, label: str, icon: str | None = None) -> None:
    st.page_link(PAGES_DIR / page, label=label, icon=icon)
