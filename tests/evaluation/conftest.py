"""A tiny random ancestor with shifted weights and a hand-made MAD table, so every probe test runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tiny_ancestor():
    """A random DeiT-Ti layout (12 layers x 3 heads, width 192, a class token) at 32 px, i.e. 2 x 2 patches: cheap
    to run, with enough heads per layer for distinct random subsets. Every weight is shifted away from timm's
    init, so a copied tensor can be told from a fresh one."""
    from learngene.ancestors import load_ancestor

    ancestor = load_ancestor("random:vit_tiny_patch16_224", img_size=32)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param in ancestor.model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return ancestor


@pytest.fixture(scope="session")
def tiny_mad(tiny_ancestor):
    """Per layer, two heads 2 px apart and one far away, rotated by the layer index: two clusters per layer, so
    Cluster-Learngene's heads differ from the first heads (layer 0: S = [0, 2]; layer 1: S = [1, 0]; ...)."""
    layers, heads = tiny_ancestor.summary.num_layers, tiny_ancestor.summary.num_heads
    base = [10.0, 12.0, 80.0]
    return np.array([[base[(h - layer) % heads] for h in range(heads)] for layer in range(layers)])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private feature cache for one test."""
    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
