"""Streamlit entrypoint: ``streamlit run app/main.py`` (or ``make run``, which passes every server flag).

Streamlit puts only ``app/`` on ``sys.path``, so the repository root is added here to make ``learngene`` and the
``app`` helpers importable without installing the package. The pages live in the top-level ``pages/`` folder and are
registered explicitly with ``st.navigation`` (automatic discovery only sees a ``pages/`` folder beside this file).

Binding: ``app/.streamlit/config.toml`` (read from beside this script, whatever the working directory) binds
127.0.0.1. If the server listens anywhere else anyway (``--server.address``, an environment variable, a user
config), nothing is shown until the visitor enters the password the user set in ``LEARNGENE_APP_PASSWORD``; without
one the app refuses to show anything and says how to fix it.
"""

from __future__ import annotations

import hmac
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app import serve  # noqa: E402

PAGES = ROOT / "pages"
# A double helix drawn by the browser from an inline SVG (ASCII, no font needed): a ":material/...:" icon is fetched
# from fonts.gstatic.com (no network offline; a slow resolver holds the tab), an image file costs 0.3 s of PIL work
# and an emoji about 0.1 s of Streamlit's emoji catalogue on each server's first page (and needs an emoji font).
ICON = ("data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64' fill='none' "
        "stroke-linecap='round'><path d='M24 10h16M19 22h26M19 42h26M24 54h16' stroke='%23888' stroke-width='4'/>"
        "<path d='M18 2C18 20 46 20 46 32S18 44 18 62' stroke='%232e7d32' stroke-width='7'/>"
        "<path d='M46 2C46 20 18 20 18 32S46 44 46 62' stroke='%231976d2' stroke-width='7'/></svg>")
GRANTED = "access_granted"
# The run's own "Stop run" button is the only stop: Streamlit's running indicator offers a "Stop" (of the script
# run) after half a second of every refresh, which users took for stopping the training run.
HIDE_SCRIPT_STOP = "<style>[data-testid='stStatusWidget'] button {display: none;}</style>"
# Streamlit cuts a metric's value that is wider than its column with an ellipsis ("succee…", "3.66e…" in the Runs
# page's row of six at 1280 px): a value that does not fit wraps at its spaces instead, and is never hidden.
WRAP_METRICS = ("<style>[data-testid='stMetricValue'] > div, [data-testid='stMetricDelta'] > div "
                "{white-space: normal; text-overflow: clip;}</style>")


def _served_address() -> str | None:
    """The address the server listens on, or "127.0.0.1" when no server is involved (AppTest runs in-process)."""
    address = st.get_option("server.address")
    if not address and not st.context.headers:
        return serve.LOOPBACK  # no HTTP request behind this run: an in-process test, nothing is exposed
    return address


def access_gate() -> None:
    """Stop the script unless the app is loopback-only or the visitor has entered the user's password."""
    address = _served_address()
    if serve.is_loopback(address):
        return
    password = os.environ.get(serve.PASSWORD_ENV, "")
    problem = serve.exposure_problem(address, password)
    if problem:
        print(f"learngene app: REFUSING TO SHOW ANYTHING: {problem}", file=sys.stderr, flush=True)
        st.error(f"This app is not shown: {problem}.")
        st.stop()
    if st.session_state.get(GRANTED):
        return
    st.title("learngene")
    st.caption(f"This app is shared beyond this machine ({address or 'all interfaces'}); enter the password its "
               f"owner set in {serve.PASSWORD_ENV}.")
    with st.form("access"):
        typed = st.text_input("Password", type="password", key="access_password")
        entered = st.form_submit_button("Enter")
    if entered:
        if hmac.compare_digest(typed.encode(), password.encode()):
            st.session_state[GRANTED] = True
            st.rerun()
        st.error("Wrong password.")
    st.stop()


st.set_page_config(page_title="learngene", page_icon=ICON, layout="wide")
access_gate()
st.html(HIDE_SCRIPT_STOP + WRAP_METRICS)
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
