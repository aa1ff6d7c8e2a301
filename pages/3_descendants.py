"""Step 3: design a descendant: depth, heads, resolution, classes, initialisation; live size; build and save."""

import streamlit as st

from app import ancestor_view, nav, probe_view, resources, state, uploaded_stats
from app import descendant_view as view
from app.text import error_markdown, markdown_text

st.title("Descendants")
choice = state.current_choice()
try:
    summary = resources.ancestor_for(choice).summary
except Exception as error:
    st.error(f"The ancestor {markdown_text(choice.spec)} cannot be loaded ({error_markdown(error)}); "
             "choose another on the Ancestor page.")
    st.stop()
state.fit_min_heads(summary.num_heads)
st.caption(f"Ancestor: {summary.arch}, {summary.num_layers} layers x {summary.num_heads} heads, "
           f"{summary.num_params / 1e6:.2f} M parameters. Clustering: Eps {state.thresholds()[0]:g} px, "
           f"MinHds {state.thresholds()[1]} (set on the Heads page).")

uploaded_stats.upload_panel(summary)
state.restore_form("design", view.FORM_KEYS)
spec = view.spec_form(summary)
size = view.size_preview(summary, spec) if spec is not None else None
if spec is not None:
    view.scale_chart(summary, spec, size)
if spec is not None and size is not None:
    with st.expander("Probe this design (frozen features, before training)"):
        probe_view.probe_panel(choice, spec)

st.subheader("Build and save")
if spec is not None and size is not None and spec.init == "cluster-learngene" and ancestor_view.current_statistics(choice) is None:
    probes = "the built-in photos" if choice.probes == "builtin" else markdown_text(choice.probes)
    st.warning(f"No head statistics for this ancestor on {probes} yet. Build and save would cluster the heads on "
               "statistics computed on the fly from the built-in photos. Compute them on your probe set first:")
    ancestor_view.ensure_statistics(choice, auto=False)
if spec is not None and size is not None:
    folder = view.save_folder_input(spec)
    overwrite = st.checkbox("Overwrite if it exists", key="d_overwrite")
    if st.button("Build and save", type="primary", key="d_build"):
        with st.spinner("Building the descendant…"):
            if view.build_and_save(choice, spec, folder, overwrite):
                st.success(f"Saved to {markdown_text(state.remembered(view.LAST_DESCENDANT))}")

state.save_form("design", view.FORM_KEYS)

last = state.remembered(view.LAST_DESCENDANT)
if last:
    stats = ancestor_view.current_statistics(choice)
    if view.inheritance_map(last, stats.mean_attention_distance if stats is not None else None):
        nav.link(nav.FINETUNE, "Fine-tune it →", ":material/model_training:")
