"""Shared fixtures: the real built-in ancestor and its statistics are computed once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network


@pytest.fixture(scope="session")
def builtin_ancestor():
    from learngene.ancestors import load_ancestor

    return load_ancestor("builtin")


@pytest.fixture(scope="session")
def builtin_stats(builtin_ancestor):
    """Statistics of the built-in ancestor over 12 built-in photos (enough to show its structure)."""
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    probes = load_probe_images("builtin", builtin_ancestor.summary, num_images=12)
    return compute_head_statistics(builtin_ancestor.model, probes, builtin_ancestor.summary, batch_size=6)


@pytest.fixture(scope="session")
def builtin_stats_file(builtin_stats, tmp_path_factory):
    return builtin_stats.save_json(tmp_path_factory.mktemp("stats") / "stats.json")
