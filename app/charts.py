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
# One colour per layer where layers are told apart by colour (Eps sweep lines, heads in 2-D): plotly's qualitative
# Dark24, 24 distinct hues, so a 12- or 24-layer ancestor never shows two layers in one colour (the default
# 10-colour cycle painted layers 0/10 and 1/11 alike).
LAYER_PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B", "#511CFB",
    "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7",
    "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
]
COLOUR_BY = ("layer", "MAD", "clusters of one layer")


def layer_colour(layer: int) -> str:
    return LAYER_PALETTE[layer % len(LAYER_PALETTE)]


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


def embedding_scatter(coords: np.ndarray, mad: np.ndarray, labels: np.ndarray, colour_by: str, method: str,
                      layer: int = 0) -> go.Figure:
    """Heads in 2-D with a legend; hover shows layer, head, MAD and cluster.

    Cluster numbers restart in every layer, so colouring all heads by cluster number would give one colour to
    unrelated clusters of different layers. The views are therefore: ``layer`` (one legend entry per layer),
    ``MAD`` (a continuous scale with its colour bar) and ``clusters of one layer`` (that layer's clusters in
    distinct colours, every other head grey).
    """
    L, H = mad.shape
    text = np.array(_head_text(mad, labels), dtype=object)
    layer_of = np.repeat(np.arange(L), H)
    flat = labels.ravel()
    traces: list[dict] = []

    def points(mask: np.ndarray, name: str, **marker) -> dict:
        return dict(type="scatter", x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=name,
                    hovertext=text[mask].tolist(), hoverinfo="text", marker={"size": 9, **marker})

    if colour_by == "MAD":
        marker = dict(color=mad.ravel(), colorscale="Viridis", showscale=True,
                      colorbar=dict(title=dict(text="MAD (px)")))
        traces.append(points(np.ones(L * H, dtype=bool), "heads", **marker))
    elif colour_by == "clusters of one layer":
        if not 0 <= layer < L:
            raise ValueError(f"layer {layer} is out of range 0..{L - 1}")
        others = layer_of != layer
        traces.append(points(others, "other layers", color=NOISE_COLOUR, opacity=0.5))
        mine = ~others
        for label in sorted(set(flat[mine].tolist())):
            mask = mine & (flat == label)
            name = f"layer {layer}: noise" if label < 0 else f"layer {layer}: cluster {label}"
            colour = NOISE_COLOUR if label < 0 else PALETTE[label % len(PALETTE)]
            traces.append(points(mask, name, color=colour, size=12, line=dict(color="black", width=1)))
    else:
        for index in range(L):
            traces.append(points(layer_of == index, f"layer {index}", color=layer_colour(index)))
    return figure(traces, f"Heads in 2-D ({method} of their mean attention patterns), colour = {colour_by}",
                  height=520, xaxis=dict(showticklabels=False, title=dict(text=f"{method} 1")),
                  yaxis=dict(showticklabels=False, title=dict(text=f"{method} 2")))


def eps_sweep_chart(eps_values: np.ndarray, counts: np.ndarray, current_eps: float) -> go.Figure:
    """Number of clusters per layer as Eps sweeps, one step line per layer; the current Eps is a dashed line."""
    traces = [
        dict(type="scatter", x=eps_values, y=counts[:, layer], mode="lines", name=f"layer {layer}",
             line=dict(shape="hv", width=1.5, color=layer_colour(layer)), hovertemplate=f"layer {layer}: %{{y}} clusters at Eps %{{x}}<extra></extra>")
        for layer in range(counts.shape[1])
    ]
    line = dict(type="line", x0=current_eps, x1=current_eps, y0=0, y1=1, yref="paper",
                line=dict(dash="dash", color="black"))
    return figure(traces, "Clusters per layer as Eps sweeps (dashed: current Eps)", shapes=[line],
                  xaxis=dict(title=dict(text="Eps (px)")), yaxis=dict(title=dict(text="clusters")))


def attention_overlay(image, heat: np.ndarray, title: str, opacity: float = 0.55,
                      query: tuple[int, int] | None = None) -> go.Figure:
    """A head's attention over the patch grid drawn on top of the probe image; ``query`` (row, col) is outlined."""
    array = np.asarray(image)
    size = array.shape[0]
    rows, cols = heat.shape
    traces = [
        dict(type="image", z=array, hoverinfo="skip"),
        dict(type="heatmap", z=heat, x0=size / cols / 2, dx=size / cols, y0=size / rows / 2, dy=size / rows,
             colorscale="Inferno", opacity=opacity, hovertemplate="attention %{z:.4f}<extra></extra>"),
    ]
    shapes = []
    if query is not None:
        row, col = query
        # The query patch's square, in image pixels, so the reader sees whose attention the map shows.
        shapes.append(dict(type="rect", x0=col * size / cols, x1=(col + 1) * size / cols, y0=row * size / rows,
                           y1=(row + 1) * size / rows, line=dict(color="#00e5ff", width=3)))
    return figure(traces, title, height=460, shapes=shapes, xaxis=dict(visible=False),
                  yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
