"""On the real built-in ancestor, frozen features order the designs as inheritance should: the full ancestor
above the Cluster-Learngene descendant above scratch (60 digits at 224 px, w = 2)."""

from __future__ import annotations

import numpy as np
import pytest

from learngene.evaluation.frozen_probe import run_probe
from learngene.evaluation.settings import ProbeSettings


@pytest.mark.slow
def test_full_ancestor_beats_cluster_learngene_beats_scratch(builtin_ancestor, builtin_stats, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path))
    settings = ProbeSettings(datasets=("digits",), depth=6, widths=("2",), null_draws=(0,), subset=60,
                             rows=("ancestor", "cluster-learngene", "scratch"))
    result = run_probe(settings, ancestor=builtin_ancestor, mad=np.asarray(builtin_stats.mean_attention_distance),
                       progress=False)
    rows = {r["row"]: r for r in result["tables"][0]["rows"]}
    assert result["tables"][0]["images"] == 60 and result["tables"][0]["heads"] == [3] * 6
    for score in ("linear", "knn"):
        assert rows["ancestor"][score] > rows["cluster-learngene"][score] > rows["scratch"][score], (score, rows)
