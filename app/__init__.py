"""Thin Streamlit helpers for the learngene app: session state, cached resources, figure builders.

Pages call these; these call ``learngene``. Only ``app/`` and ``pages/`` import streamlit.
"""
