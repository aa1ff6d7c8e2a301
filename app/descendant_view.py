"""Widgets, previews and building for the Descendants page (and the Fine-tune page's init comparison)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app import analysis, charts, resources, state
from app.charts import figure
from app.text import error_markdown, markdown_text
from learngene.descendant import INIT_METHODS, SCHEDULES, DescendantSpec
from learngene.errors import LearngeneError

LAST_DESCENDANT = "last_descendant"
# The design form's widgets, remembered across page switches and restarts (app/state.py restore_form).
FORM_KEYS = ("d_depth", "d_mode", "d_ratio", "d_schedule", "d_heads", "d_init", "d_img", "d_classes", "d_batch",
             "d_seed", "d_order", "d_centroid", "d_groups", "d_tinit", "d_ttrain", "d_parity", "d_folder",
             "d_folder_proposed")
KIND_COLOURS = {"descendant": "#9ecae1", "ancestor": "#d62728", "reference": "#2ca02c", "this design": "#ff7f0e"}


def spec_form(summary) -> DescendantSpec | None:
    """Draw the design inputs; return the spec, or None after an st.error naming the problem."""
    c = st.columns(4)
    depth = c[0].number_input("Depth (layers)", 1, summary.num_layers, min(6, summary.num_layers), key="d_depth")
    mode = c[1].radio("Heads per layer", ("width ratio", "schedule", "per-layer list"), key="d_mode")
    ratio = schedule = heads = None
    if mode == "width ratio":
        ratio = c[2].number_input("Width ratio w (heads = floor(H / w))", 0.05, float(summary.num_heads), 1.0,
                                  step=0.5, key="d_ratio")
    elif mode == "schedule":
        schedule = c[2].selectbox("Schedule", list(SCHEDULES), key="d_schedule",
                                  help="decreasing: w = 2, 1.5, 1 over the thirds of the depth; increasing: the reverse")
    else:
        text = c[2].text_input("Heads per layer (comma-separated)", ",".join([str(summary.num_heads)] * int(depth)),
                               key="d_heads")
        try:
            heads = [int(x) for x in text.replace(" ", "").split(",") if x]
        except ValueError:
            st.error(f"Heads per layer must be whole numbers separated by commas, e.g. 6,6,4,4 (got {markdown_text(repr(text))}).")
            return None
    init = c[3].selectbox("Initialisation", INIT_METHODS, key="d_init")
    c = st.columns(4)
    img_size = c[0].number_input(f"Resolution (multiple of {summary.patch_size})", summary.patch_size, 2048,
                                 summary.img_size, step=summary.patch_size, key="d_img")
    classes = c[1].number_input("Classes", 1, 1_000_000, 10, key="d_classes")
    batch = c[2].number_input("Batch (memory estimate)", 1, 4096, 64, key="d_batch")
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="d_seed")
    with st.expander("Learngene options"):
        c = st.columns(4)
        head_order = c[0].selectbox("Head order", ("priority", "original", "ascending-mad", "descending-mad"),
                                    key="d_order")
        centroid = c[1].selectbox("Centroid", ("nearest", "average"), key="d_centroid")
        groups = c[2].text_input("FFN groups ('auto', 'none' or e.g. 6-7,9-11)", "auto", key="d_groups")
        transform_init = c[3].selectbox("T init", ("default", "identity"), key="d_tinit")
        train_transform = st.checkbox("Train the FFN transformation T with the descendant", key="d_ttrain")
        parity = st.checkbox("Reproduce the authors' code (DeiT-Ti/S/B ancestors only)", key="d_parity",
                             help="Their priority lists and FFN groups, their qkv chunks without bias, their W_O "
                             "columns: `--parity authors`, see docs/fidelity.md")
    try:
        ffn_groups = _groups(groups)
    except LearngeneError as error:
        st.error(error_markdown(error))
        return None
    st.session_state["d_batch_value"] = int(batch)
    return DescendantSpec(depth=int(depth), width_ratio=ratio, heads=heads, schedule=schedule, img_size=int(img_size),
                          num_classes=int(classes), init=init, ffn_groups=ffn_groups, head_order=head_order,
                          centroid=centroid, train_transform=train_transform, transform_init=transform_init,
                          seed=int(seed), parity="authors" if parity else "none")


def _groups(text: str):
    from learngene.ffn_groups import parse_groups

    text = text.strip().lower()
    if text in ("", "auto"):
        return "auto"
    if text in ("none", "off", "no"):
        return None
    return parse_groups(text)


def size_preview(summary, spec: DescendantSpec):
    """Live size of the design; returns the size (None after showing the error)."""
    from learngene.descendant import descendant_size

    try:
        size = descendant_size(summary, spec, batch_size=st.session_state.get("d_batch_value", 64))
    except LearngeneError as error:
        st.error(error_markdown(error))
        return None
    c = st.columns(6)
    # The class count changes the head's size: say it, so the figure matches `learngene size --num-classes N`.
    # The deltas are shares, not changes: no arrow (an "↑ 36% of the ancestor" read as growth), and each says of what.
    c[0].metric(f"Parameters ({spec.num_classes} classes)", f"{size.params / 1e6:.2f} M",
                f"{size.params / size.ancestor_params:.0%} of the ancestor", delta_color="off", delta_arrow="off")
    c[1].metric("Inherited (every slot)", f"{size.inherited_params / 1e6:.2f} M",
                f"{size.inherited_fraction:.0%} of the descendant", delta_color="off", delta_arrow="off",
                help="every value written from the ancestor, each head slot counted; distinct "
                "ancestor values behind them: " + ("unknown before clustering" if size.inherited_distinct_params is None
                                                   else f"{size.inherited_distinct_params / 1e6:.2f} M"))
    c[2].metric("MACs", f"{size.macs / 1e9:.2f} G")
    c[3].metric("FLOPs", f"{size.flops / 1e9:.2f} G")
    c[4].metric("Train memory (fp32)", f"{size.train_memory_fp32_estimate_bytes / 2**30:.2f} GiB",
                help=f"estimate at batch {size.batch_size}")
    c[5].metric("Train memory (AMP)", f"{size.train_memory_amp_estimate_bytes / 2**30:.2f} GiB")
    st.caption(f"Heads per layer: {size.heads_per_layer}; {size.tokens} tokens. " + " ".join(size.notes))
    return size


@st.cache_data(show_spinner=False, max_entries=16)
def _scale_rows(summary_json: str, img_size: int, classes: int) -> list[dict]:
    from learngene.ancestors import AncestorSummary
    from learngene.descendant import scale_table

    return scale_table(AncestorSummary.from_dict(json.loads(summary_json)), img_size=img_size, num_classes=classes)


def scale_chart(summary, spec: DescendantSpec, size) -> None:
    """The scale table's chart with this design's star; nothing when the design's resolution or class count is one
    the table cannot be computed for (the size preview above has already said why, in one line)."""
    try:
        rows = _scale_rows(json.dumps(summary.to_dict()), int(spec.img_size or summary.img_size),
                           int(spec.num_classes or 10))
    except LearngeneError:
        return
    img_size, classes = int(spec.img_size or summary.img_size), int(spec.num_classes or 10)
    table = pd.DataFrame(rows)
    # A width column mixing ratios (2.0) and schedule names ("decreasing") is not one Arrow type: show it as text
    # (st.dataframe logged an ArrowInvalid traceback for it).
    table["width_ratio"] = table["width_ratio"].map(lambda w: "-" if w is None else str(w))
    traces = []
    for kind in ("descendant", "ancestor", "reference"):
        part = table[table.kind == kind]
        traces.append(dict(type="scatter", mode="markers+text" if kind == "reference" else "markers", name=kind,
                           x=(part.macs / 1e9).tolist(), y=(part.params / 1e6).tolist(), text=part.label.tolist(),
                           textposition="top center", marker=dict(size=10, color=KIND_COLOURS[kind]),
                           hovertemplate="%{text}: %{y:.2f} M params, %{x:.2f} GMACs<extra></extra>"))
    if size is not None:
        traces.append(dict(type="scatter", mode="markers", name="this design", x=[size.macs / 1e9],
                           y=[size.params / 1e6], marker=dict(size=16, symbol="star", color=KIND_COLOURS["this design"]),
                           hovertemplate="this design: %{y:.2f} M params, %{x:.2f} GMACs<extra></extra>"))
    st.plotly_chart(figure(traces, f"Scale table: descendants vs the ancestor and DeiT Ti/S/B ({img_size} px, "
                                   f"{classes} classes)",
                           height=440, xaxis=dict(title=dict(text="GMACs"), type="log"),
                           yaxis=dict(title=dict(text="parameters (M)"), type="log"),
                           annotations=[ancestor_label(table)]), key="scale_chart")
    with st.expander("Scale table"):
        st.dataframe(table[["kind", "label", "depth", "width_ratio", "params", "inherited_params", "macs", "flops",
                            "params_vs_ancestor"]], hide_index=True)


def ancestor_label(table: pd.DataFrame) -> dict:
    """The ancestor's label, off its point with a leader line, in the empty region below-right of the chart's
    diagonal: the ancestor sits among the descendants (depth 12 at w = 1 is the ancestor's size) and beside
    DeiT-S, so a label on the point itself always touched a neighbour."""
    row = table[table.kind == "ancestor"].iloc[0]
    # On log axes an annotation's position is given in log10 units.
    return dict(x=math.log10(row.macs / 1e9), y=math.log10(row.params / 1e6), xref="x", yref="y", text=row.label,
                showarrow=True, arrowhead=0, arrowcolor=KIND_COLOURS["ancestor"], ax=70, ay=55,
                font=dict(color=KIND_COLOURS["ancestor"]), xanchor="left", yanchor="top")


def design_name(spec: DescendantSpec) -> str:
    """A folder name that says what the design is: init, depth, heads and resolution."""
    if spec.schedule:
        width = spec.schedule
    elif spec.width_ratio:
        width = f"w{spec.width_ratio:g}"
    else:
        width = "h" + "-".join(str(h) for h in spec.heads or [])
    size = f"-{spec.img_size}px" if spec.img_size else ""
    return f"{spec.init}-L{spec.depth}-{width}{size}"


def default_folder(spec: DescendantSpec) -> str:
    return str(state.descendants_root() / design_name(spec))


def save_folder_input(spec: DescendantSpec) -> str:
    """The "Save to" field: it follows the design until the user types a folder of their own.

    A text input keeps its value across reruns, so after changing the width ratio the field still showed the old
    design's name and the new model was saved under it. The field is rewritten whenever it still holds the name the
    app proposed last time.
    """
    ss = st.session_state
    proposed = default_folder(spec)
    if ss.get("d_folder") in (None, ss.get("d_folder_proposed")):
        ss["d_folder"] = proposed
    ss["d_folder_proposed"] = proposed
    return st.text_input("Save to", key="d_folder", help="Follows the design until you type your own folder; a "
                         f"relative folder is saved under {state.descendants_root()}")


def build_and_save(choice, spec: DescendantSpec, folder: str, overwrite: bool) -> Path | None:
    """Build the descendant from the current ancestor and statistics, save it, remember it; None on error."""
    from learngene.descendant import build_descendant, save_descendant

    eps, min_heads = state.thresholds()
    if not folder.strip():
        st.error(f"Type a folder to save to, e.g. {default_folder(spec)}.")
        return None
    try:
        ancestor = resources.ancestor_for(choice)
        from app.ancestor_view import current_statistics

        stats = current_statistics(choice)
        distances = stats.mean_attention_distance if stats is not None else None
        descendant = build_descendant(ancestor, spec, distances=distances, eps=eps, min_heads=min_heads,
                                      provenance={"probe": stats.probe if stats is not None else "builtin"})
        path = save_descendant(descendant, state.descendant_folder(folder), force=overwrite)
    except LearngeneError as error:
        st.error(error_markdown(error))
        return None
    state.remember(LAST_DESCENDANT, str(path))
    return path


def inheritance_map(folder: str, mad: np.ndarray | None) -> bool:
    """Which ancestor head initialises each descendant head (colour: that head's cluster in its layer); False when
    the descendant built last is no longer there to draw."""
    from learngene.descendant.config import DescendantConfig

    try:
        config = DescendantConfig.load(folder)
    except LearngeneError as error:
        # Deleted or moved since it was built: not an error of the design above (the bare message, "... build one
        # with `learngene build`", read as one on this page).
        st.info(f"The descendant built last cannot be shown ({error_markdown(error)}). Build and save one above to see its "
                "inheritance map.")
        return False
    sources = config.head_sources or []
    width = max((len(s) for s in sources), default=0)
    eps, min_heads = state.thresholds()
    layers = analysis.cluster(mad, eps, min_heads) if mad is not None else None
    z = np.full((len(sources), width), np.nan)
    text = [[""] * width for _ in sources]
    for layer, slots in enumerate(sources):
        for slot, head in enumerate(slots):
            if head is None:
                text[layer][slot] = "rand"
                continue
            text[layer][slot] = f"h{head}"
            label = layers[layer].labels[head] if layers is not None and layer < len(layers) else 0
            z[layer, slot] = len(charts.PALETTE) if label < 0 else label % len(charts.PALETTE)
    steps = charts.PALETTE + [charts.NOISE_COLOUR]
    trace = dict(type="heatmap", z=z, text=text, texttemplate="%{text}", colorscale=charts._discrete_scale(steps),
                 zmin=-0.5, zmax=len(steps) - 0.5, showscale=False, xgap=2, ygap=2,
                 hovertemplate="descendant layer %{y}, slot %{x} ← ancestor %{text}<extra></extra>")
    st.plotly_chart(figure([trace], f"Inheritance map of {Path(folder).name}: ancestor head behind each descendant "
                                    "head (colour = its cluster; rand = random init)",
                           height=max(240, 30 * len(sources) + 90),
                           xaxis=dict(title=dict(text="descendant head slot"), dtick=1),
                           yaxis=dict(title=dict(text="layer"), dtick=1, autorange="reversed")), key="inheritance_map")
    ffn = config.ffn_sources or []
    st.caption("FFN sources per layer: " + ", ".join(
        f"{i}←{'rand' if f is None else str(f.get('layer')) + (' via T' if f.get('transform') else '')}"
        for i, f in enumerate(ffn)))
    return True


def variants(folder: str, inits: list[str], choice) -> list[str]:
    """Build the saved descendant's design once per initialisation (sibling folders); returns their paths."""
    from learngene.descendant.config import DescendantConfig

    try:
        spec = DescendantSpec.from_dict(DescendantConfig.load(folder).spec)
    except LearngeneError as error:  # deleted or damaged since the form was drawn
        st.error(error_markdown(error))
        return []
    paths = []
    for init in inits:
        target = f"{folder}-{init}" if init != spec.init else folder
        if init == spec.init:
            paths.append(folder)
            continue
        built = build_and_save(choice, replace(spec, init=init, resolved=False, heads=spec.heads), target, True)
        if built is None:
            return []
        paths.append(str(built))
    state.remember(LAST_DESCENDANT, folder)
    return paths
