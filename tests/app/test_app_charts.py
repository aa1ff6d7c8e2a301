"""Figures read at a glance: distinct layer colours, legends that mean something, the query patch marked."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from app import analysis, charts


@pytest.fixture
def mad():
    rng = np.random.default_rng(1)
    return rng.uniform(5, 120, size=(12, 6))


def test_eps_sweep_gives_every_layer_its_own_colour():
    counts = np.array([[3] * 24, [2] * 24])
    sweep = charts.eps_sweep_chart(np.array([1.0, 2.0]), counts, 1.5)
    colours = [trace.line.color for trace in sweep.data]
    assert len(set(colours)) == 24  # plotly's default cycle has 10: layers 0/10 and 1/11 used to share a colour
    go.Figure(sweep.to_dict())


def test_embedding_by_layer_has_one_legend_entry_per_layer(mad):
    labels = analysis.label_grid(analysis.cluster(mad, 10.0, 1))
    fig = charts.embedding_scatter(np.random.default_rng(0).normal(size=(72, 2)), mad, labels, "layer", "PCA")
    assert [trace.name for trace in fig.data] == [f"layer {i}" for i in range(12)]
    assert sum(len(trace.x) for trace in fig.data) == 72
    assert len({trace.marker.color for trace in fig.data}) == 12
    go.Figure(fig.to_dict())


def test_embedding_by_mad_has_a_colour_bar(mad):
    labels = analysis.label_grid(analysis.cluster(mad, 10.0, 1))
    fig = charts.embedding_scatter(np.zeros((72, 2)), mad, labels, "MAD", "PCA")
    assert fig.data[0].marker.showscale and list(fig.data[0].marker.color) == mad.ravel().tolist()
    go.Figure(fig.to_dict())


def test_embedding_of_one_layers_clusters_greys_the_other_layers(mad):
    layers = analysis.cluster(mad, 10.0, 1)
    labels = analysis.label_grid(layers)
    fig = charts.embedding_scatter(np.zeros((72, 2)), mad, labels, "clusters of one layer", "PCA", layer=3)
    others, *clusters = fig.data
    assert others.name == "other layers" and len(others.x) == 66
    assert len(clusters) == len(layers[3].clusters)  # min_heads 1: no noise
    assert sorted(len(trace.x) for trace in clusters) == sorted(len(c) for c in layers[3].clusters)
    assert all(trace.name.startswith("layer 3: cluster ") for trace in clusters)
    with pytest.raises(ValueError, match="out of range"):
        charts.embedding_scatter(np.zeros((72, 2)), mad, labels, "clusters of one layer", "PCA", layer=12)


def test_attention_overlay_outlines_the_query_patch():
    fig = charts.attention_overlay(np.zeros((224, 224, 3), dtype=np.uint8), np.ones((16, 16)), "t", query=(2, 5))
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (70.0, 84.0, 28.0, 42.0)  # 14 px patches of a 224 px image
    assert charts.attention_overlay(np.zeros((28, 28, 3), dtype=np.uint8), np.ones((2, 2)), "t").layout.shapes == ()
    go.Figure(fig.to_dict())
