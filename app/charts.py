"""Plotly figure builders: pure functions from arrays to figures, no Streamlit (unit-testable).

Figures are assembled from plain dicts with plotly's validation switched off (``_validate=False``): validating 144
per-point colours and symbols costs ~25 ms per chart, a large share of the Heads page's slider budget. The tests
re-validate every builder's output with a normal ``go.Figure(...)``, so a mistake still fails loudly.
"""

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


def figure(data: list[dict], title: str, height: int = 420, **layout) -> go.Figure:
    """A figure from trace dicts and layout keywords, without plotly's (slow) validation."""
    base = dict(title=dict(text=title), height=height, margin=dict(l=10, r=10, t=40, b=10))
    base.update(layout)
    return go.Figure(data=data, layout=base, _validate=False)


def _head_text(mad: np.ndarray, labels: np.ndarray, centroids: np.ndarray | None = None) -> list[str]:
    L, H = mad.shape
    ranks = centroids.ravel() if centroids is not None else np.full(L * H, -1)
    return [
        f"layer {i // H}, head {i % H}<br>MAD {d:.1f} px<br>{'noise' if c < 0 else f'cluster {c}'}"
        + (f"<br>centroid, priority {p}" if p >= 0 else "")
        for i, (d, c, p) in enumerate(zip(mad.ravel(), labels.ravel(), ranks, strict=True))
    ]


def mad_scatter(mad: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> go.Figure:
    """Mean attention distance per head: layer on x, one point per head, colour = cluster, centroids ringed."""
    L, H = mad.shape
    x = np.repeat(np.arange(L), H)
    y, flat, ranks = mad.ravel(), labels.ravel(), centroids.ravel()
    text = np.array(_head_text(mad, labels, centroids), dtype=object)
    colours = np.array(cluster_colours(flat), dtype=object)
    traces = []
    for name, mask, marker in (
        ("heads", (flat >= 0) & (ranks < 0), dict(size=9)),
        ("centroids", ranks >= 0, dict(size=13, line=dict(color="black", width=2))),
        ("noise", flat < 0, dict(size=9, symbol="x")),
    ):
        if mask.any():
            traces.append(dict(type="scatter", x=x[mask], y=y[mask], mode="markers", name=name,
                               hovertext=text[mask].tolist(), hoverinfo="text",
                               marker=dict(color=colours[mask].tolist(), **marker)))
    return figure(traces, "Mean attention distance per head (colour = cluster, ringed = centroid, x = noise)",
                  xaxis=dict(title=dict(text="layer"), dtick=1),
                  yaxis=dict(title=dict(text="mean attention distance (px)")),
                  legend=dict(orientation="h", y=-0.15))


def _discrete_scale(colours: list[str]) -> list[list]:
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / len(colours), colour], [(i + 1) / len(colours), colour]]
    return scale


def cluster_grid(labels: np.ndarray, centroids: np.ndarray) -> go.Figure:
    """Layer x head grid coloured by cluster; cells show the cluster label, a star marks centroids, '·' noise."""
    L, H = labels.shape
    n = len(PALETTE)
    z = np.where(labels < 0, n, labels % n).astype(float)
    text = [
        ["·" if c < 0 else (f"{c}★" if p >= 0 else str(c)) for c, p in zip(row_c, row_p, strict=True)]
        for row_c, row_p in zip(labels.tolist(), centroids.tolist(), strict=True)
    ]
    trace = dict(type="heatmap", z=z, x=list(range(H)), y=list(range(L)), text=text, texttemplate="%{text}",
                 zmin=-0.5, zmax=n + 0.5, colorscale=_discrete_scale(PALETTE + [NOISE_COLOUR]), showscale=False,
                 xgap=2, ygap=2, hovertemplate="layer %{y}, head %{x}: cluster %{text}<extra></extra>")
    return figure([trace], "Cluster of every head (★ centroid, · noise)", height=max(260, 28 * L + 80),
                  xaxis=dict(title=dict(text="head"), dtick=1, side="top"),
                  yaxis=dict(title=dict(text="layer"), dtick=1, autorange="reversed"))


def similarity_heatmap(matrix: np.ndarray, tick_labels: list[str], title: str) -> go.Figure:
    trace = dict(type="heatmap", z=matrix, x=tick_labels, y=tick_labels, colorscale="Viridis",
                 hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>")
    return figure([trace], title, height=520, xaxis=dict(type="category"),
                  yaxis=dict(type="category", autorange="reversed"))


def embedding_scatter(coords: np.ndarray, mad: np.ndarray, labels: np.ndarray, colour_by: str, method: str) -> go.Figure:
    """Heads in 2-D; hover shows layer, head, MAD and cluster."""
    L, H = mad.shape
    if colour_by == "layer":
        marker = dict(color=np.repeat(np.arange(L), H), colorscale="Viridis", showscale=True,
                      colorbar=dict(title=dict(text="layer")), size=9)
    else:
        marker = dict(color=cluster_colours(labels), size=9)
    trace = dict(type="scatter", x=coords[:, 0], y=coords[:, 1], mode="markers", marker=marker,
                 hovertext=_head_text(mad, labels), hoverinfo="text")
    return figure([trace], f"Heads in 2-D ({method} of their mean attention patterns)", height=480,
                  xaxis=dict(showticklabels=False, title=dict(text=f"{method} 1")),
                  yaxis=dict(showticklabels=False, title=dict(text=f"{method} 2")))


def eps_sweep_chart(eps_values: np.ndarray, counts: np.ndarray, current_eps: float) -> go.Figure:
    """Number of clusters per layer as Eps sweeps, one step line per layer; the current Eps is a dashed line."""
    traces = [
        dict(type="scatter", x=eps_values, y=counts[:, layer], mode="lines", name=f"layer {layer}",
             line=dict(shape="hv", width=1.5), hovertemplate=f"layer {layer}: %{{y}} clusters at Eps %{{x}}<extra></extra>")
        for layer in range(counts.shape[1])
    ]
    line = dict(type="line", x0=current_eps, x1=current_eps, y0=0, y1=1, yref="paper",
                line=dict(dash="dash", color="black"))
    return figure(traces, "Clusters per layer as Eps sweeps (dashed: current Eps)", shapes=[line],
                  xaxis=dict(title=dict(text="Eps (px)")), yaxis=dict(title=dict(text="clusters")))


def attention_overlay(image, heat: np.ndarray, title: str, opacity: float = 0.55) -> go.Figure:
    """A head's attention over the patch grid drawn on top of the probe image."""
    array = np.asarray(image)
    size = array.shape[0]
    rows, cols = heat.shape
    traces = [
        dict(type="image", z=array, hoverinfo="skip"),
        dict(type="heatmap", z=heat, x0=size / cols / 2, dx=size / cols, y0=size / rows / 2, dy=size / rows,
             colorscale="Inferno", opacity=opacity, hovertemplate="attention %{z:.4f}<extra></extra>"),
    ]
    return figure(traces, title, height=460, xaxis=dict(visible=False),
                  yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
