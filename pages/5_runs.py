"""Step 5: every run with its state; one run live; stop, resume, clone; compare several runs.

Everything here is drawn inside fragments that re-read the registry on every tick, so the table, the picker, the
buttons and the panel always agree with each other and with the run (whoever launched, stopped or resumed it: this
page, another browser session, or the command line). Buttons act in callbacks, before the re-read, so the render
right after a click already shows the new state.
"""

import streamlit as st

from app import runs_view

st.title("Runs")


@st.fragment(run_every=runs_view.TICK_S)
def runs_now() -> None:
    with runs_view.registry_errors():  # one line with the fix, never a traceback on every tick
        runs_panel()


def runs_panel() -> None:
    records = runs_view.manager().list()
    if not records:
        st.info("No runs yet: launch one from the Fine-tune page (or `learngene train`).")
        return
    st.dataframe(runs_view.runs_table(records), hide_index=True, column_config=runs_view.TABLE_COLUMNS)
    runs_view.notice()
    run = runs_view.pick_run(records)
    run_id, state = run["run_id"], run["state"]
    active = state in runs_view.ACTIVE
    c = st.columns([1, 1, 1, 2])
    c[0].button("Stop run", disabled=not active, key="stop_run", on_click=runs_view.act, args=("stop", run_id),
                help="Save a checkpoint at the next step and stop (Resume continues from it)")
    c[1].button("Resume", disabled=active or state == "succeeded" or not run["has_checkpoint"], key="resume_run",
                on_click=runs_view.act, args=("resume", run_id),
                help="Continue a stopped or failed run from its last checkpoint")
    epochs = c[3].number_input("Epochs for the clone (0 = same)", 0, 10_000, 0, key="clone_epochs")
    c[2].button("Clone", key="clone_run", on_click=runs_view.act, args=("clone", run_id, int(epochs)),
                help="Queue a new run with the same settings (and the epochs on the right, if set)")
    runs_view.live_panel(run)


runs_now()


@st.fragment(run_every=runs_view.TICK_S * 4)
def compare() -> None:
    with runs_view.registry_errors(show=False):  # the panel above shows the registry's error
        compare_panel()


def compare_panel() -> None:
    records = runs_view.manager().list()
    if not records:
        return
    st.subheader("Compare runs")
    ids = [r["run_id"] for r in records]
    labels = {r["run_id"]: runs_view.run_label(r) for r in records}
    if "compare_runs" not in st.session_state:
        st.session_state["compare_runs"] = ids[: min(3, len(ids))]
    chosen = st.multiselect("Runs to overlay", ids, format_func=lambda run_id: labels.get(run_id, run_id),
                            key="compare_runs")
    if chosen:
        runs_view.comparison(records, chosen)


compare()
