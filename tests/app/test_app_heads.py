"""The Heads page on real statistics of the built-in ancestor: live reclustering and every view."""

from __future__ import annotations

import pytest
from apptest_support import MAIN, TIMEOUT, assert_clean, metric, page
from streamlit.testing.v1 import AppTest


@pytest.fixture
def heads(app):
    at = app.run()
    at.switch_page(page("2_heads.py")).run()
    assert_clean(at)
    return at


def test_moving_eps_changes_the_clusters(heads):
    at = heads
    assert at.title[0].value == "Heads"
    assert at.get("plotly_chart"), "the MAD chart is drawn"
    at10 = int(metric(at, "Clusters (inherited heads)"))
    at.slider(key="eps_slider").set_value(40.0).run()
    assert_clean(at)
    at40 = int(metric(at, "Clusters (inherited heads)"))
    assert at40 < at10, (at10, at40)
    assert at.number_input(key="eps_input").value == pytest.approx(40.0)  # the exact input follows the slider
    at.number_input(key="eps_input").set_value(0.1).run()
    assert at.slider(key="eps_slider").value == pytest.approx(0.1)  # and the slider follows the input
    assert int(metric(at, "Clusters (inherited heads)")) == 72  # 0.1 px apart: every head its own cluster


def test_min_heads_marks_noise_and_thresholds_survive_a_restart(heads):
    at = heads
    assert metric(at, "Noise heads") == "0"
    at.slider(key="min_heads_slider").set_value(3).run()
    assert_clean(at)
    assert int(metric(at, "Noise heads")) > 0
    at.slider(key="eps_slider").set_value(12.5).run()
    again = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    again.switch_page(page("2_heads.py")).run()
    assert again.slider(key="eps_slider").value == pytest.approx(12.5)
    assert again.slider(key="min_heads_slider").value == 3


def test_layers_without_any_cluster_are_named_with_what_it_means(heads):
    at = heads
    assert not at.warning, [w.value for w in at.warning]  # paper thresholds: every layer has a cluster
    at.number_input(key="eps_input").set_value(0.1).run()
    at.slider(key="min_heads_slider").set_value(2).run()  # 0.1 px: no head has a neighbour, all are noise
    assert_clean(at)
    assert int(metric(at, "Noise heads")) == 72
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and warnings[0].startswith("12 of 12 layers have no cluster"), warnings
    assert "start random" in warnings[0] and "L11" in warnings[0]


def test_cluster_grid_and_centroid_table(heads):
    table = heads.dataframe[0].value
    assert list(table.columns[:4]) == ["layer", "priority", "centroid head", "cluster"]
    assert table["size"].sum() == 72  # with MinHds 1 every head is in exactly one cluster
    first = table[table.layer == 0]["size"].tolist()
    assert first == sorted(first, reverse=True)  # priority order: largest cluster first


@pytest.mark.parametrize("view", ["Similarity", "Heads in 2-D", "Eps sweep", "Attention maps", "Downloads"])
def test_every_view_renders(heads, view):
    at = heads
    at.segmented_control(key="heads_section_widget").set_value(view).run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    if view == "Downloads":
        assert len(at.get("download_button")) == 4
    else:
        assert len(charts) >= 2, view  # the MAD chart plus the view's own
    if view == "Similarity":
        at.selectbox(key="similarity_measure").set_value("pattern-js").run()
        at.number_input(key="similarity_layer").set_value(5).run()
        assert_clean(at)
        assert len(at.get("plotly_chart")) == 3
    if view == "Heads in 2-D":  # PCA at once while UMAP warms up in its worker process (or UMAP if it is done)
        assert "Heads in 2-D (PCA" in str(charts[-1].proto.spec) or "Heads in 2-D (UMAP" in str(charts[-1].proto.spec)
        at.radio(key="embedding_colour").set_value("clusters of one layer").run()
        at.number_input(key="embedding_layer").set_value(4).run()
        assert_clean(at)
        assert "layer 4: cluster 0" in str(at.get("plotly_chart")[-1].proto.spec)
    if view == "Attention maps":
        at.number_input(key="attention_layer").set_value(11).run()
        at.selectbox(key="attention_query").set_value(5).run()
        assert_clean(at)
        spec = str(at.get("plotly_chart")[-1].proto.spec)
        assert "layer 11, head 0" in spec and '"type":"rect"' in spec.replace(" ", "")  # the query patch is outlined


def test_thresholds_out_of_the_ancestors_range_are_the_ones_shown_and_used(saved_session):
    """MinHds 9 kept from an ancestor with more heads: the slider showed 6 (the built-in ancestor's heads) while the
    clustering, the Descendants page and the probe used 9 (found in a browser: "MinHds 3" beside a slider at 2)."""
    import json
    from dataclasses import asdict

    from app.state import app_dir

    (app_dir() / "session.json").write_text(json.dumps({"choice": asdict(saved_session), "eps": 10.0,
                                                        "min_heads": 9}))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.switch_page(page("3_descendants.py")).run()  # straight to the design, the Heads page not visited
    assert_clean(at)
    assert "MinHds 6 " in at.caption[0].value, at.caption[0].value
    at.switch_page(page("2_heads.py")).run()
    assert at.slider(key="min_heads_slider").value == 6
