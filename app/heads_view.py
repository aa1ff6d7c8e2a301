"""Widgets and sections of the Heads page. Each section draws one view of the current clustering."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from app import analysis, charts, resources, state
from app.text import error_markdown
from learngene.errors import LearngeneError

SECTIONS = ("Clusters", "Similarity", "Heads in 2-D", "Eps sweep", "Attention maps", "Downloads")


def _synced(label: str, key: str, value, lo, hi, step, on_change, help: str) -> None:
    """A slider and an exact number input bound to the same value (either one moves the other)."""
    ss = st.session_state
    for widget in (f"{key}_slider", f"{key}_input"):
        if ss.get(widget) != value:
            ss[widget] = value

    def copy(source: str, target: str) -> None:
        ss[target] = ss[source]
        on_change(ss[source])

    left, right = st.columns([4, 1])
    left.slider(label, lo, hi, step=step, key=f"{key}_slider", help=help,
                on_change=copy, args=(f"{key}_slider", f"{key}_input"))
    right.number_input(f"{label} (exact)", lo, hi, step=step, key=f"{key}_input",
                       on_change=copy, args=(f"{key}_input", f"{key}_slider"))


def threshold_controls(mad: np.ndarray) -> tuple[float, int]:
    """Eps and MinHds controls; every change reclusters. Values outlive page switches and restarts."""
    saved = state.thresholds()
    num_heads = mad.shape[1]
    hi = float(max(50.0, np.ceil(np.ptp(mad) + 5)))
    eps, min_heads = min(max(saved[0], 0.1), hi), min(max(saved[1], 1), num_heads)
    if (eps, min_heads) != saved:
        # Out of this ancestor's range (e.g. MinHds 6 kept from a 6-head ancestor, now one with 2 heads): the widgets
        # showed the clamped value while every page clustered with the saved one.
        state.set_thresholds(eps, min_heads)
    _synced("Eps (px)", "eps", round(float(eps), 1), 0.1, hi, 0.1,
            lambda v: state.set_thresholds(v, state.thresholds()[1]),
            "Heads of a layer whose MADs differ by at most Eps are neighbours (paper: 10 px).")
    _synced("MinHds", "min_heads", int(min_heads), 1, int(num_heads), 1,
            lambda v: state.set_thresholds(state.thresholds()[0], v),
            "Neighbours (itself included) a head needs to be a core head; 1 means no noise (paper: 1).")
    return state.thresholds()


def overview(mad: np.ndarray, layers) -> None:
    counts = analysis.cluster_counts(layers)
    noise = sum(len(layer.noise) for layer in layers)
    cols = st.columns(4)
    cols[0].metric("Clusters (inherited heads)", sum(counts), help="One centroid head is inherited per cluster")
    cols[1].metric("Heads", mad.size)
    cols[2].metric("Noise heads", noise)
    cols[3].metric("Largest cluster", max((len(c) for layer in layers for c in layer.clusters), default=0))
    st.caption("Clusters per layer: " + " · ".join(f"L{i} {n}" for i, n in enumerate(counts)))
    empty = [i for i, n in enumerate(counts) if n == 0]
    if empty:
        # Nothing is inherited there: the descendant's heads in those layers start random, which a count of 0 in
        # the caption alone did not say.
        st.warning(f"{len(empty)} of {len(counts)} layers have no cluster (every head is noise): "
                   f"{', '.join(f'L{i}' for i in empty)}. A descendant's heads in those layers start random; "
                   "lower MinHds or raise Eps to inherit them.")
    labels = analysis.label_grid(layers)
    centroids = analysis.centroid_grid(layers, mad.shape[1])
    st.plotly_chart(charts.mad_scatter(mad, labels, centroids), key="mad_chart")


def clusters_section(mad: np.ndarray, layers) -> None:
    labels = analysis.label_grid(layers)
    st.plotly_chart(charts.cluster_grid(labels, analysis.centroid_grid(layers, mad.shape[1])), key="cluster_grid")
    st.markdown("**Centroids in priority order** (largest cluster first: descendant head slot *i* copies "
                "centroid *i mod c*)")
    st.dataframe(analysis.centroid_table(layers), hide_index=True, height=320)


def similarity_section(choice, stats, layers) -> None:
    from learngene.attention.similarity import MEASURES

    # |cosine| of 20k-dimensional weight vectors is ~0 for every pair of distinct heads, so the "weights" measure
    # draws a bare diagonal with nothing to read: the app offers only the measures that show structure.
    measures = [measure for measure in MEASURES if measure != "weights"]
    L, H = stats.mean_attention_distance.shape
    left, right = st.columns(2)
    measure = left.selectbox("Measure", measures, key="similarity_measure",
                             help="mad: MAD gap; pattern-js / pattern-cosine: mean attention patterns")
    layer = right.number_input("Layer", 0, L - 1, 0, key="similarity_layer")
    try:
        within = resources.similarity(choice.key(), measure, int(layer), stats, None)
        across = resources.similarity(choice.key(), measure, None, stats, None)
    except LearngeneError as error:
        st.error(error_markdown(error))
        return
    labels = np.asarray(layers[int(layer)].labels)
    order = analysis.cluster_order(labels)
    ticks = [f"h{h} c{'·' if labels[h] < 0 else labels[h]}" for h in order]
    left, right = st.columns(2)
    left.plotly_chart(charts.similarity_heatmap(within[np.ix_(order, order)], ticks,
                                                f"Layer {int(layer)} ({measure}), reordered by cluster"),
                      key="similarity_layer_chart")
    right.plotly_chart(charts.similarity_heatmap(across, [f"L{ly}h{h}" for ly in range(L) for h in range(H)],
                                                 f"All heads across layers ({measure})"), key="similarity_all_chart")


def embedding_section(choice, stats, layers) -> None:
    mad = stats.mean_attention_distance
    left, right = st.columns([3, 1])
    colour_by = left.radio("Colour by", charts.COLOUR_BY, horizontal=True, key="embedding_colour",
                           help="Cluster numbers restart in every layer, so clusters are shown one layer at a time")
    layer = 0
    if colour_by == "clusters of one layer":
        layer = int(right.number_input("Layer", 0, mad.shape[0] - 1, 0, key="embedding_layer"))
    features = analysis.head_features(stats)
    warming = not analysis.umap_worker.submit(choice.key(), features).done()

    # While UMAP warms up this fragment polls on its own, so the picture switches from PCA to UMAP unprompted.
    @st.fragment(run_every=3 if warming else None)
    def draw() -> None:
        coords, problem = analysis.umap_worker.result(choice.key(), features)
        method = "UMAP"
        if coords is None:
            coords, method = analysis.pca_2d(features), "PCA"
            st.caption(problem or "UMAP is warming up in a background process (the first time takes ~30 s); "
                                  "showing PCA meanwhile.")
        st.plotly_chart(charts.embedding_scatter(coords, mad, analysis.label_grid(layers), colour_by, method,
                                                 layer=layer), key="embedding_chart")

    draw()


def sweep_section(mad: np.ndarray, eps: float, min_heads: int) -> None:
    values = analysis.default_sweep_values(mad)
    counts = analysis.eps_sweep(mad, min_heads, values)
    st.plotly_chart(charts.eps_sweep_chart(values, counts, eps), key="sweep_chart")


def attention_section(choice, layers) -> None:
    ancestor = resources.ancestor_for(choice)
    probe_set = resources.probes_for(choice)
    summary = ancestor.summary
    cols = st.columns(4)
    image = cols[0].selectbox("Probe image", range(len(probe_set)), format_func=lambda i: probe_set.names[i],
                              key="attention_image")
    layer = cols[1].number_input("Layer", 0, summary.num_layers - 1, 0, key="attention_layer")
    head = cols[2].number_input("Head", 0, summary.num_heads - 1, 0, key="attention_head")
    rows, grid_cols = summary.grid_size
    query_options = ["CLS"] + [f"patch ({r}, {c})" for r in range(rows) for c in range(grid_cols)]
    query = cols[3].selectbox("Query token", range(len(query_options)), format_func=query_options.__getitem__,
                              key="attention_query")
    maps = resources.layer_attention(choice.key(), int(image), int(layer), ancestor, probe_set)
    patch = None if query == 0 else query - 1
    heat = analysis.query_attention(maps, int(head), patch, summary.grid_size, summary.num_prefix_tokens)
    marked = None if patch is None else divmod(patch, grid_cols)
    label = layers[int(layer)].labels[int(head)]
    title = (f"{probe_set.names[image]}: layer {int(layer)}, head {int(head)} "
             f"({'noise' if label < 0 else f'cluster {label}'}), query {query_options[query]}")
    st.plotly_chart(charts.attention_overlay(resources.thumbnail(choice.key(), int(image), probe_set), heat, title,
                                             query=marked), key="attention_chart")
    if patch is not None:
        st.caption("The outlined square is the query patch.")


def downloads_section(choice, stats, layers, eps: float, min_heads: int) -> None:
    cols = st.columns(4)
    cols[0].download_button("Statistics (JSON)", json.dumps(stats.to_json()), "statistics.json", "application/json",
                            key="download_stats")
    cols[1].download_button("Clustering (JSON)", json.dumps(analysis.clustering_json(layers, eps, min_heads), indent=1),
                            "clustering.json", "application/json", key="download_clustering")
    cols[2].download_button("Centroids (CSV)", analysis.centroid_table(layers).to_csv(index=False), "centroids.csv",
                            "text/csv", key="download_centroids")

    # Built before the button is drawn (cached per thresholds): a deferred download callable was lost on its first
    # click after the other downloads ("MediaFileStorageError: Deferred file ... not found" in the server log).
    archive = _learngene_zip(choice.key(), float(eps), int(min_heads), choice, stats)
    cols[3].download_button("Learngene (zip)", archive, "learngene.zip", "application/zip", key="download_learngene")


@st.cache_data(show_spinner="Extracting the learngene…", max_entries=8)
def _learngene_zip(choice_key: str, eps: float, min_heads: int, _choice, _stats) -> bytes:
    return analysis.learngene_archive(resources.ancestor_for(_choice), _stats.mean_attention_distance, eps,
                                      min_heads, {"probe": _stats.probe})


def section_picker() -> str:
    ss = st.session_state
    if ss.get("heads_section_widget") is None:
        ss["heads_section_widget"] = ss.get("heads_section", SECTIONS[0])
    choice = st.segmented_control("View", SECTIONS, key="heads_section_widget") or SECTIONS[0]
    ss["heads_section"] = choice
    return choice
