"""Bring your own statistics: STATS.json or a bare L x H table clusters on the Heads page; another shape is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from apptest_support import assert_clean, page

from app.uploaded_stats import SESSION_KEY, accept_upload
from learngene.ancestors import load_ancestor
from learngene.clustering import cluster_layers
from learngene.errors import LearngeneError


@pytest.fixture(scope="module")
def summary():
    return load_ancestor("builtin").summary  # 12 layers x 6 heads


def _table(seed: int = 0) -> np.ndarray:
    # Two well separated groups of MADs per layer: at Eps 10 every layer has exactly 2 clusters.
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(20, 24, (12, 3)), rng.uniform(100, 104, (12, 3))], axis=1).round(3)


def test_csv_json_and_stats_files_are_read_alike(summary):
    table = _table()
    csv_text = "h0,h1,h2,h3,h4,h5\n" + "\n".join(",".join(str(v) for v in row) for row in table)
    from_csv, _ = accept_upload(csv_text.encode(), "mads.csv", summary)
    from_list, _ = accept_upload(json.dumps(table.tolist()).encode(), "mads.json", summary)
    stats_json = json.dumps({"mean_attention_distance": table.tolist(), "probe": "cluster GPU, 1000 images"})
    from_stats, _ = accept_upload(stats_json.encode(), "STATS.json", summary)
    for stats in (from_csv, from_list, from_stats):
        np.testing.assert_allclose(stats.mean_attention_distance, table)
    assert from_stats.probe == "cluster GPU, 1000 images" and from_csv.probe == "uploaded: mads.csv"


def test_another_architecture_or_a_broken_table_gets_one_line(summary):
    deit_b = {"mean_attention_distance": np.full((12, 12), 50.0).tolist(), "ancestor": {"arch": "deit_base_patch16_224"}}
    with pytest.raises(LearngeneError, match=r"12 layers x 12 heads \(deit_base_patch16_224\).*12 x 6"):
        accept_upload(json.dumps(deit_b).encode(), "deit_b.json", summary)
    with pytest.raises(LearngeneError, match="same number"):
        accept_upload(b"[[1, 2], [3]]", "ragged.json", summary)
    with pytest.raises(LearngeneError, match="not a number"):
        accept_upload(b"1,2,3,4,5,6\n1,2,x,4,5,6\n", "bad.csv", summary)
    with pytest.raises(LearngeneError, match="not a text file"):
        accept_upload(b"\xff\xfe\x00\x01", "weights.json", summary)


def test_heads_page_clusters_the_uploaded_table(app, summary):
    table = _table(1)
    _, path = accept_upload(json.dumps(table.tolist()).encode(), "mads.json", summary)
    at = app.run()
    at.session_state[SESSION_KEY] = str(path)
    at.switch_page(page("2_heads.py")).run()
    assert_clean(at)
    expected = sum(len(layer.clusters) for layer in cluster_layers(table, 10.0, 1))
    assert expected == 24
    assert next(m.value for m in at.metric if m.label == "Clusters (inherited heads)") == str(expected)
    at.button(key="stats_upload_clear").click().run()
    assert_clean(at)
    assert next(m.value for m in at.metric if m.label == "Clusters (inherited heads)") != str(expected)


def test_negative_distances_are_refused_with_their_place(summary):
    """Found in a browser: a table with negative values was clustered silently (and the Eps slider ran to 1e308)."""
    table = _table()
    table[3, 4] = -2.5
    with pytest.raises(LearngeneError, match=r"negative mean attention distance \(-2.5 px at layer 3, head 4\)"):
        accept_upload(json.dumps(table.tolist()).encode(), "logs.json", summary)
