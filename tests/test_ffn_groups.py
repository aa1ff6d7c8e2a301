"""The FFN-group rule on statistics shaped like the authors' DeiT-B run, and explicit groups.

The synthetic table follows the paper's description of DeiT-B (12 layers x 12 heads): early layers mix local
(~10-40 px) and global heads, later layers are nearly all global (~100-125 px). Layers 6-7 share one structure,
layer 8 keeps a mid-range cluster, layers 9-11 share another: the authors' hard-coded groups are {6,7} and {9,10,11}.
"""

import numpy as np
import pytest

from learngene import LearngeneError, cluster_layers
from learngene.ffn_groups import AUTHOR_GROUPS, parse_groups, propose_groups, validate_groups


def layer(rng, centres_and_sizes, jitter=1.5):
    values = [c + rng.normal(0, jitter) for c, n in centres_and_sizes for _ in range(n)]
    assert len(values) == 12
    return rng.permutation(values)


def deit_b_shaped_table(seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        layer(rng, [(12, 3), (35, 2), (60, 2), (95, 3), (125, 2)]),
        layer(rng, [(20, 2), (45, 3), (80, 4), (118, 3)]),
        layer(rng, [(25, 2), (55, 4), (100, 6)]),
        layer(rng, [(30, 1), (65, 5), (105, 6)]),
        layer(rng, [(40, 2), (75, 4), (110, 6)]),
        layer(rng, [(50, 1), (85, 4), (112, 7)]),
        layer(rng, [(70, 3), (115, 9)]),  # 6  \ same structure
        layer(rng, [(72, 3), (116, 9)]),  # 7  /
        layer(rng, [(60, 2), (90, 3), (118, 7)]),  # 8: a third cluster
        layer(rng, [(120, 12)], jitter=1.0),  # 9  \
        layer(rng, [(121, 12)], jitter=1.0),  # 10  > nearly all global
        layer(rng, [(122, 12)], jitter=1.0),  # 11 /
    ]
    return np.array(rows)


@pytest.mark.parametrize("seed", range(5))
def test_rule_recovers_the_authors_deit_b_groups_on_shaped_statistics(seed):
    layers = cluster_layers(deit_b_shaped_table(seed), eps=10, min_heads=1)
    assert propose_groups(layers, eps=10) == AUTHOR_GROUPS["deit_base_patch16_224"]


def test_where_the_rule_differs_long_runs_split_into_chunks_of_three():
    # If layers 6-11 all looked alike the rule would give {6,7,8},{9,10,11}; the authors' {6,7} needs layer 8
    # to differ. Without the size cap it would be one group of six.
    table = deit_b_shaped_table(1)
    table[6:] = np.array([np.sort(row) for row in table[9:12]] * 2)
    layers = cluster_layers(table, eps=10)
    assert propose_groups(layers, eps=10) == [[6, 7, 8], [9, 10, 11]]
    assert propose_groups(layers, eps=10, max_size=None) == [[6, 7, 8, 9, 10, 11]]


def test_layers_with_only_singleton_clusters_never_group():
    table = np.array([np.arange(12) * 11.0 for _ in range(4)])  # every gap 11 > eps: all singletons
    assert propose_groups(cluster_layers(table, eps=10), eps=10) == []


def test_explicit_groups_are_validated_and_parsed():
    assert parse_groups("6-7,9-11") == [[6, 7], [9, 10, 11]]
    assert validate_groups([[10, 9, 11], [6, 7]], 12) == [[6, 7], [9, 10, 11]]
    for groups, message in [([[3]], "at least 2"), ([[3, 5]], "adjacent"), ([[11, 12]], "outside"),
                            ([[1, 2], [2, 3]], "two FFN groups")]:
        with pytest.raises(LearngeneError, match=message):
            validate_groups(groups, 12)
    with pytest.raises(LearngeneError, match="cannot read"):
        parse_groups("six-seven")


def test_a_mad_table_instead_of_clusterings_is_refused_in_one_line():
    table = np.array([[10.0, 11.0, 60.0], [10.0, 12.0, 61.0]])
    # Before: numpy's "The truth value of an array with more than one element is ambiguous".
    with pytest.raises(LearngeneError, match=r"pass learngene.cluster_layers\(mad_table, eps, min_heads\)"):
        propose_groups(table)
