"""Step 4: fine-tune a descendant: dataset, the paper's recipe, launcher; see the exact command, then launch."""

import streamlit as st

from app import finetune_view as view
from app import launch, nav, state

st.title("Fine-tune")
st.caption("Every launch is a separate process tracked in the run registry; this page returns at once.")
state.restore_form("finetune", view.FORM_KEYS)

model = view.model_source()
st.subheader("Data")
data = view.dataset_fields()
st.subheader("Recipe")
preset = view.preset_picker()
recipe = view.recipe_fields(view.descendant_img_size(model))
st.subheader("Launcher")
launcher, options = view.launcher_fields()
name = st.text_input("Run name (optional)", key="ft_name").strip() or None
state.save_form("finetune", view.FORM_KEYS)

config = view.make_config({**model, **data, **recipe}) if model is not None and recipe is not None else None
if config is not None:
    view.recipe_warnings(config, preset)
    view.estimate_duration(config)
    st.markdown("**Equivalent command**")
    st.code(launch.command_text(launch.train_argv(config, name, launcher, options)), language="bash")
    if view.launch_button(config, name, launcher, options, "Launch", "launch"):
        nav.link(nav.RUNS, "Watch it on the Runs page →", ":material/monitoring:")
    view.compare_initialisations(config, name, launcher, options, state.current_choice())
