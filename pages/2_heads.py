"""Step 2: cluster the ancestor's heads by mean attention distance; tune Eps and MinHds live."""

import streamlit as st

from app import analysis, ancestor_view, heads_view, resources, state, uploaded_stats
from app.text import error_markdown, markdown_text

st.title("Heads")
choice = state.current_choice()
st.caption(f"Ancestor: {markdown_text(choice.label())}")  # a typed weights file or probe folder, as typed
try:
    summary = resources.ancestor_for(choice).summary
except Exception as error:  # e.g. a saved choice whose weights file has since been deleted
    st.error(f"The saved ancestor {markdown_text(choice.spec)} cannot be loaded ({error_markdown(error)}); "
             "choose another on the Ancestor page.")
    st.stop()
uploaded_stats.upload_panel(summary)
stats = ancestor_view.ensure_statistics(choice, auto=True)
if stats is None:
    st.stop()
mad = stats.mean_attention_distance

eps, min_heads = heads_view.threshold_controls(mad)
layers = analysis.cluster(mad, eps, min_heads)
heads_view.overview(mad, layers)

section = heads_view.section_picker()
if section == "Clusters":
    heads_view.clusters_section(mad, layers)
elif section == "Similarity":
    heads_view.similarity_section(choice, stats, layers)
elif section == "Heads in 2-D":
    heads_view.embedding_section(choice, stats, layers)
elif section == "Eps sweep":
    heads_view.sweep_section(mad, eps, min_heads)
elif section == "Attention maps":
    heads_view.attention_section(choice, layers)
else:
    heads_view.downloads_section(choice, stats, layers, eps, min_heads)
