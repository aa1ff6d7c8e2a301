"""Random head subsets keep Cluster-Learngene's shape, really change the heads, and change nothing else."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learngene.evaluation.designs import (
    ROWS,
    ProbeContext,
    TableRequest,
    parse_width,
    random_head_sources,
    with_heads,
)
from learngene.head_weights import read_head

HEAD_TENSORS = ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight")


def test_random_sources_keep_the_shape_and_the_pattern_of_repeats():
    sources = [[4, 1, 4, 1], [0, 2, 5, None], [3]]
    for seed in range(20):
        drawn = random_head_sources(sources, 6, np.random.default_rng(seed))
        assert [len(row) for row in drawn] == [4, 4, 1]
        assert drawn[0][0] == drawn[0][2] and drawn[0][1] == drawn[0][3] and drawn[0][0] != drawn[0][1]
        assert len(set(drawn[1][:3])) == 3 and drawn[1][3] is None  # without replacement; random stays random
        assert all(0 <= h < 6 for row in drawn for h in row if h is not None)


def test_random_sources_are_deterministic_per_stream_and_cover_the_choices():
    sources = [[0, 1, 2]]
    first = random_head_sources(sources, 6, np.random.default_rng([0, 14, 3]))
    assert first == random_head_sources(sources, 6, np.random.default_rng([0, 14, 3]))
    seen = {tuple(random_head_sources(sources, 6, np.random.default_rng(s))[0]) for s in range(200)}
    assert len(seen) > 60  # 120 ordered triples exist; a biased or constant draw would show far fewer


def test_random_sources_refuse_more_distinct_heads_than_the_layer_has():
    with pytest.raises(ValueError):
        random_head_sources([[0, 1, 2]], 2, np.random.default_rng(0))


def _null_models(context, width, draws):
    request = TableRequest(width=width, null_draws=draws)
    return [design.make() for design in ROWS["random-heads"].designs(context, request)]


def test_null_rows_hold_the_drawn_ancestor_heads_and_everything_else_of_cluster_learngene(tiny_ancestor, tiny_mad):
    context = ProbeContext(ancestor=tiny_ancestor, depth=3, mad=tiny_mad)
    width = parse_width("1.5")  # 3 heads -> 2 per layer
    cluster = context.cluster(width)
    cluster_state = cluster.model.state_dict()
    models = _null_models(context, width, 4)
    assert len({str(facts["head_sources"]) for _, facts in models}) > 1
    for model, facts in models:
        assert facts["heads"] == [2, 2, 2]
        for layer, row in enumerate(facts["head_sources"]):
            assert len(set(row)) == 2
            for slot, head in enumerate(row):
                mine = read_head(model.blocks[layer].attn, slot)
                theirs = read_head(tiny_ancestor.model.blocks[layer].attn, head)
                assert all(torch.equal(mine[k], theirs[k]) for k in mine)
        for key, value in model.state_dict().items():
            if not key.endswith(HEAD_TENSORS):
                assert torch.equal(value, cluster_state[key]), key
    # Different head choices are different weights.
    first = models[0][0]
    other = next(m for m, facts in models[1:] if facts["head_sources"] != models[0][1]["head_sources"])
    assert any(not torch.equal(x.attn.qkv.weight, y.attn.qkv.weight) for x, y in zip(first.blocks, other.blocks, strict=True))


def test_writing_cluster_learngenes_own_sources_reproduces_it(tiny_ancestor, tiny_mad):
    """The head writer copies exactly what inheritance copies: cluster-learngene's own choice gives its model."""
    context = ProbeContext(ancestor=tiny_ancestor, depth=3, mad=tiny_mad)
    width = parse_width("1.5")
    cluster = context.cluster(width)
    model, _ = with_heads(context, width, cluster.config["head_sources"])
    reference = cluster.model.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in model.state_dict().items())


def test_null_at_more_heads_than_the_ancestor_keeps_the_repeats(tiny_ancestor, tiny_mad):
    context = ProbeContext(ancestor=tiny_ancestor, depth=2, mad=tiny_mad)
    width = parse_width("0.5")  # 6 slots from 2 centroids per layer: each used three times
    assert [row[:2] for row in context.cluster(width).config["head_sources"]] == [[0, 2], [1, 0]]
    for _, facts in _null_models(context, width, 3):
        for row in facts["head_sources"]:
            a, b = row[:2]
            assert a != b and row == [a, b] * 3
