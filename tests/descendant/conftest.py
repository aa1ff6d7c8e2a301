"""Fixtures for descendant tests: a tiny random ancestor whose weights differ from any fresh init, and MADs with
a clustering designed by hand (so the expected priority lists are known without running the clustering)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Per-layer MADs of a 3-head ancestor and the priority list S_l they must give with eps = 10, min_heads = 1:
# clusters are cut where sorted MADs jump by more than 10, ordered largest first (ties: lowest head first), and the
# centroid is the member nearest the cluster mean (ties: lowest head index).
DESIGNED = (
    ([10.0, 12.0, 80.0], [0, 2]),  # {0, 1} (mean 11: heads 0 and 1 tie -> 0), then {2}
    ([50.0, 20.0, 52.0], [0, 1]),  # {0, 2} (tie -> 0) is larger than {1}
    ([10.0, 40.0, 70.0], [0, 1, 2]),  # three singletons, label order
    ([30.0, 31.0, 33.0], [1]),  # one cluster, mean 31.33 -> head 1
)


@pytest.fixture(scope="session")
def tiny_ancestor():
    """timm's test_vit4 at 32 px: 9 layers x 3 heads of 32, width 96, a register token and no class token, layer
    scale, RmsNorm, average pooling with fc_norm: small, and it exercises every optional part of a timm ViT.

    Every weight is shifted away from timm's init, so a descendant tensor equal to the ancestor's can only have
    been copied (a fresh norm is all ones in both otherwise)."""
    from learngene.ancestors import load_ancestor

    ancestor = load_ancestor("random:test_vit4", img_size=32)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param in ancestor.model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return ancestor


@pytest.fixture(scope="session")
def tiny_distances(tiny_ancestor):
    """(9, 3) MAD table cycling through :data:`DESIGNED`."""
    layers = tiny_ancestor.summary.num_layers
    return np.array([DESIGNED[i % len(DESIGNED)][0] for i in range(layers)])


@pytest.fixture(scope="session")
def tiny_priority(tiny_ancestor):
    layers = tiny_ancestor.summary.num_layers
    return [DESIGNED[i % len(DESIGNED)][1] for i in range(layers)]
