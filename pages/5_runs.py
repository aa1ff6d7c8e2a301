"""Step 5: every run with its state; one run live; stop, resume, clone; compare several runs."""

import streamlit as st

from app import runs_view

st.title("Runs")
records = runs_view.manager().list()
if not records:
    st.info("No runs yet: launch one from the Fine-tune page (or `learngene train`).")
    st.stop()

st.dataframe(runs_view.runs_table(records), hide_index=True, key="runs_table",
             column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})

ids = [r["run_id"] for r in records]
names = {r["run_id"]: f"{r['name']} ({r['state']})" for r in records}
default = st.session_state.get("selected_run")
selected = st.selectbox("Run", ids, index=ids.index(default) if default in ids else 0, format_func=names.get,
                        key="run_picker")
st.session_state["selected_run"] = selected
active = next(r for r in records if r["run_id"] == selected)["state"] in runs_view.ACTIVE

c = st.columns([1, 1, 1, 2])
if c[0].button("Stop", disabled=not active, key="stop_run"):
    runs_view.act("stop", selected)
if c[1].button("Resume", disabled=active, key="resume_run"):
    runs_view.act("resume", selected)
epochs = c[3].number_input("Epochs for the clone (0 = same)", 0, 10_000, 0, key="clone_epochs")
if c[2].button("Clone", key="clone_run"):
    runs_view.act("clone", selected, epochs)


@st.fragment(run_every=2 if active else None)
def live() -> None:
    state = runs_view.live_panel(st.session_state["selected_run"])
    if active and state not in runs_view.ACTIVE:
        st.rerun()  # the run just ended: redraw the table and the buttons, and stop polling


live()

st.subheader("Compare runs")
chosen = st.multiselect("Runs to overlay", ids, default=ids[: min(3, len(ids))], format_func=names.get,
                        key="compare_runs")
if chosen:
    runs_view.comparison(records, chosen)
