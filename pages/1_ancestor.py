"""Step 1: choose the ancestor ViT and the probe images, see its architecture, compute its head statistics."""

import streamlit as st

from app import ancestor_view, nav, resources, state
from app.text import error_markdown, markdown_text

st.title("Ancestor")
st.caption("The pretrained ViT whose attention heads are clustered into a learngene, and the images that probe it.")

choice = state.current_choice()
# The form stays open until this choice has its statistics: a completed step collapses out of the way.
with st.expander("Choose the ancestor and the probe images", expanded=resources.saved_statistics(choice) is None):
    requested = ancestor_view.choice_form(choice)
if requested is not None and ancestor_view.apply_choice(requested):
    choice = requested

# The built-in (and random) ancestors' architecture is known without loading them, and nothing else on this page
# needs the weights until statistics are computed: torch is not even imported, so the first page of a cold start
# shows at once (a first torch import also stalls the server's replies for a second, even to the browser's requests
# for the page's scripts). Files and hub models are loaded to read their architecture (and to fail early).
quick = resources.quick_summary(choice)
if quick is None:
    try:
        summary = resources.ancestor_for(choice).summary
    except Exception as error:  # e.g. a saved choice whose file has since been deleted
        st.error(f"The saved ancestor {markdown_text(choice.spec)} cannot be loaded ({error_markdown(error)}); "
                 "choose another one above.")
        st.stop()
ancestor_view.architecture_card(quick if quick is not None else summary)
st.subheader("Head statistics")
st.caption(f"Probe images: {'built-in photos' if choice.probes == 'builtin' else markdown_text(choice.probes)}")
stats = ancestor_view.ensure_statistics(choice, auto=False)
if stats is not None:
    ancestor_view.statistics_panel(stats)
    nav.link(nav.HEADS, "Explore the heads →", ":material/scatter_plot:")
