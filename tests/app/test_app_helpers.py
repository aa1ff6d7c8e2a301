"""The app's pure helpers: clustering memo, Eps sweep, orders, projections, attention rows and figures."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from app import analysis, charts
from learngene.clustering import cluster_layers


@pytest.fixture
def mad():
    rng = np.random.default_rng(0)
    return rng.uniform(5, 120, size=(12, 12))


@pytest.mark.parametrize("min_heads", [1, 3])
def test_eps_sweep_matches_the_clustering(mad, min_heads):
    values = analysis.default_sweep_values(mad)
    counts = analysis.eps_sweep(mad, min_heads, values)
    assert counts.shape == (len(values), 12)
    for i in (0, 7, 20, len(values) - 1):
        expected = [len(layer.clusters) for layer in cluster_layers(mad, values[i], min_heads)]
        assert counts[i].tolist() == expected
    if min_heads == 1:
        assert (np.diff(counts, axis=0) <= 0).all()  # larger Eps never makes more clusters
        assert counts[-1].tolist() == [1] * 12


@pytest.mark.parametrize("min_heads", [1, 2, 4])
def test_memoised_clustering_equals_the_backend_at_every_eps(mad, min_heads):
    mad = mad[:4]
    values = np.concatenate([np.arange(0.5, 40, 2.1), np.arange(40, 0.5, -3.3)])  # up and back down again
    for eps in values:
        assert analysis.cluster(mad, eps, min_heads) == cluster_layers(mad, eps, min_heads), eps


def test_cluster_memo_and_tables(mad):
    layers = analysis.cluster(mad, 10.0, 1)
    assert analysis.cluster(mad, 10.0, 1)[0] is layers[0]  # memoised: moving a slider back costs nothing
    grid = analysis.centroid_grid(layers, 12)
    assert ((grid >= 0).sum(axis=1) == analysis.cluster_counts(layers)).all()
    table = analysis.centroid_table(layers)
    assert len(table) == sum(analysis.cluster_counts(layers))


def test_cluster_order_groups_members_and_puts_noise_last():
    order = analysis.cluster_order([1, -1, 0, 1, 0])
    assert order.tolist() == [2, 4, 0, 3, 1]


def test_pca_and_query_attention():
    features = np.random.default_rng(1).normal(size=(30, 8))
    assert analysis.pca_2d(features).shape == (30, 2)
    maps = np.zeros((2, 5, 5))  # 1 CLS + a 2x2 grid
    maps[1, 0, 3] = 1.0  # head 1's CLS attends to patch 2
    maps[1, 2, 4] = 1.0  # head 1's patch 1 attends to patch 3
    assert analysis.query_attention(maps, 1, None, (2, 2), 1).tolist() == [[0, 0], [1, 0]]
    assert analysis.query_attention(maps, 1, 1, (2, 2), 1).tolist() == [[0, 0], [0, 1]]


def test_figures_mark_noise_and_centroids(mad):
    layers = analysis.cluster(mad, 3.0, 3)
    labels, centroids = analysis.label_grid(layers), analysis.centroid_grid(layers, 12)
    assert (labels < 0).any()
    fig = charts.mad_scatter(mad, labels, centroids)
    noise = next(trace for trace in fig.data if trace.name == "noise")
    assert noise.marker.symbol == "x" and len(noise.x) == (labels < 0).sum()
    rings = next(trace for trace in fig.data if trace.name == "centroids")
    assert len(rings.x) == (centroids >= 0).sum()
    for built in (fig, charts.cluster_grid(labels, centroids)):
        go.Figure(built.to_dict())  # the builders skip validation for speed; a normal Figure re-validates
    grid = charts.cluster_grid(labels, centroids)
    text = np.asarray(grid.data[0].text)
    assert (text == "·").sum() == (labels < 0).sum()
    assert sum("★" in t for t in text.ravel()) == (centroids >= 0).sum()
    sweep = charts.eps_sweep_chart(np.array([1.0, 2.0]), np.array([[3] * 12, [2] * 12]), 1.5)
    assert len(sweep.data) == 12
    embedding = charts.embedding_scatter(np.zeros((144, 2)), mad, labels, "layer", "PCA")
    overlay = charts.attention_overlay(np.zeros((28, 28, 3), dtype=np.uint8), np.ones((2, 2)), "t")
    heat = charts.similarity_heatmap(np.eye(3), ["a", "b", "c"], "t")
    for fig in (sweep, embedding, overlay, heat):
        go.Figure(fig.to_dict())


@pytest.mark.slow  # numba compiles UMAP on the first fit: ~15 s quiet, minutes on a loaded 2-core machine
def test_umap_worker_embeds_in_its_process_and_reports_failures():
    """The real worker: PCA is shown while the fit runs (None), UMAP once done (shared by every caller of the same
    key), two far-apart blobs stay apart in 2-D, and bad features become a message, never a raise."""
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 0.1, size=(20, 6)), rng.normal(5, 0.1, size=(20, 6))])
    worker = analysis.UmapWorker()
    try:
        future = worker.submit("blobs", features)
        assert worker.result("blobs", features) == (None, None)  # the first fit compiles for seconds
        assert worker.submit("blobs", features) is future  # one computation per key
        bad = np.full((5, 3), np.nan)
        worker.submit("bad", bad)
        future.result(timeout=300)
        coords, problem = worker.result("blobs", features)
        assert problem is None and coords.shape == (40, 2)
        a, b = coords[:20], coords[20:]
        gap = np.linalg.norm(a.mean(0) - b.mean(0))
        assert gap > 3 * max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
        worker._futures["bad"].exception(timeout=120)
        coords, problem = worker.result("bad", bad)
        assert coords is None and problem.startswith("UMAP failed") and "showing PCA" in problem
    finally:
        worker.close()
