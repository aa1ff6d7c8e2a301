"""Plotly figure builders: pure functions from arrays to figures, no Streamlit (unit-testable)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

# 24 distinguishable colours; cluster k of a layer uses PALETTE[k % 24]; noise is grey.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#393b79", "#e6550d", "#31a354", "#756bb1", "#843c39", "#3182bd", "#fd8d3c", "#74c476", "#9e9ac8", "#e7969c",
    "#6baed6", "#fdae6b", "#a1d99b", "#ad494a",
]
NOISE_COLOUR = "#c8c8c8"


def cluster_colours(labels) -> list[str]:
    return [NOISE_COLOUR if label < 0 else PALETTE[label % len(PALETTE)] for label in np.ravel(labels)]


def _layout(fig: go.Figure, title: str, height: int = 420, **kwargs) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10), **kwargs)
    return fig


def mad_scatter(mad: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> go.Figure:
    """Mean attention distance per head: layer on x, one point per head, colour = cluster, centroids ringed."""
    L, H = mad.shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    flat_labels = labels.ravel()
    is_noise = flat_labels < 0
    is_centroid = centroids.ravel() >= 0
    text = [
        f"layer {ly}, head {h}<br>MAD {d:.1f} px<br>{'noise' if c < 0 else f'cluster {c}'}"
        + (f"<br>centroid, priority {p}" if p >= 0 else "")
        for ly, h, d, c, p in zip(layer.ravel(), head.ravel(), mad.ravel(), flat_labels, centroids.ravel(), strict=True)
    ]
    fig = go.Figure(
        go.Scatter(
            x=layer.ravel(), y=mad.ravel(), mode="markers", hovertext=text, hoverinfo="text", showlegend=False,
            marker=dict(
                color=cluster_colours(flat_labels), size=np.where(is_centroid, 13, 9),
                symbol=np.where(is_noise, "x", "circle"),
                line=dict(color="black", width=np.where(is_centroid, 2, 0)),
            ),
        )
    )
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="mean attention distance (px)")
    return _layout(fig, "Mean attention distance per head (colour = cluster, ringed = centroid, x = noise)")


def cluster_grid(labels: np.ndarray, centroids: np.ndarray) -> go.Figure:
    """Layer x head grid coloured by cluster; cells show the cluster label, a star marks centroids, '·' noise."""
    L, H = labels.shape
    n = len(PALETTE)
    z = np.where(labels < 0, n, labels % n).astype(float)
    steps = PALETTE + [NOISE_COLOUR]
    scale = []
    for i, colour in enumerate(steps):
        scale += [[i / len(steps), colour], [(i + 1) / len(steps), colour]]
    text = [
        ["·" if c < 0 else (f"{c}★" if p >= 0 else str(c)) for c, p in zip(row_c, row_p, strict=True)]
        for row_c, row_p in zip(labels, centroids, strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=list(range(H)), y=list(range(L)), text=text, texttemplate="%{text}", zmin=-0.5,
            zmax=len(steps) - 0.5, colorscale=scale, showscale=False, xgap=2, ygap=2,
            hovertemplate="layer %{y}, head %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title="head", dtick=1, side="top")
    fig.update_yaxes(title="layer", dtick=1, autorange="reversed")
    return _layout(fig, "Cluster of every head (★ centroid, · noise)", height=max(260, 28 * L + 80))


def similarity_heatmap(matrix: np.ndarray, tick_labels: list[str], title: str) -> go.Figure:
    fig = go.Figure(
        go.Heatmap(z=matrix, x=tick_labels, y=tick_labels, colorscale="Viridis",
                   hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>")
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category")
    return _layout(fig, title, height=520)


def embedding_scatter(coords: np.ndarray, mad: np.ndarray, labels: np.ndarray, colour_by: str, method: str) -> go.Figure:
    """Heads in 2-D; hover shows layer, head, MAD and cluster."""
    L, H = mad.shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    text = [
        f"layer {ly}, head {h}<br>MAD {d:.1f} px<br>{'noise' if c < 0 else f'cluster {c}'}"
        for ly, h, d, c in zip(layer.ravel(), head.ravel(), mad.ravel(), labels.ravel(), strict=True)
    ]
    if colour_by == "layer":
        marker = dict(color=layer.ravel(), colorscale="Viridis", showscale=True, colorbar=dict(title="layer"), size=9)
    else:
        marker = dict(color=cluster_colours(labels), size=9)
    fig = go.Figure(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", marker=marker,
                               hovertext=text, hoverinfo="text"))
    fig.update_xaxes(showticklabels=False, title=f"{method} 1")
    fig.update_yaxes(showticklabels=False, title=f"{method} 2")
    return _layout(fig, f"Heads in 2-D ({method} of their mean attention patterns)", height=480)


def eps_sweep_chart(eps_values: np.ndarray, counts: np.ndarray, current_eps: float) -> go.Figure:
    """Number of clusters per layer as Eps sweeps, one line per layer; the current Eps is a dashed line."""
    fig = go.Figure()
    L = counts.shape[1]
    for layer in range(L):
        fig.add_trace(go.Scatter(x=eps_values, y=counts[:, layer], mode="lines", name=f"layer {layer}",
                                 line=dict(shape="hv", width=1.5),
                                 hovertemplate=f"layer {layer}: %{{y}} clusters at Eps %{{x}}<extra></extra>"))
    fig.add_vline(x=current_eps, line_dash="dash", line_color="black")
    fig.update_xaxes(title="Eps (px)")
    fig.update_yaxes(title="clusters")
    return _layout(fig, "Clusters per layer as Eps sweeps (dashed: current Eps)", height=420)


def attention_overlay(image, heat: np.ndarray, title: str, opacity: float = 0.55) -> go.Figure:
    """A head's attention over the patch grid drawn on top of the probe image."""
    array = np.asarray(image)
    size = array.shape[0]
    rows, cols = heat.shape
    fig = go.Figure(go.Image(z=array, hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=heat, x0=size / cols / 2, dx=size / cols, y0=size / rows / 2, dy=size / rows, colorscale="Inferno",
            opacity=opacity, showscale=True, hovertemplate="attention %{z:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return _layout(fig, title, height=460)


def bar_counts(counts: list[int], total_heads: int) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(range(len(counts))), y=counts, marker_color="#1f77b4",
                           hovertemplate="layer %{x}: %{y} clusters<extra></extra>"))
    fig.update_xaxes(title="layer", dtick=1)
    fig.update_yaxes(title="clusters", range=[0, total_heads])
    return _layout(fig, "Clusters per layer", height=260)
