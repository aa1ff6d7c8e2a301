"""Descendants of the real built-in ancestor (DINOv2 ViT-S/14) on real photos."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from learngene.descendant import DescendantSpec, build_descendant


@pytest.fixture(scope="module")
def photos(builtin_ancestor):
    """Two built-in photos as the ancestor sees them, (2, 3, 224, 224)."""
    from learngene.probes import load_probe_images

    return load_probe_images("builtin", builtin_ancestor.summary, num_images=2).tensors


@pytest.fixture(scope="module")
def distances(builtin_ancestor, photos):
    """MADs over the two photos (far fewer than the paper's 1,000, enough for real, non-uniform clusters)."""
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    probes = load_probe_images("builtin", builtin_ancestor.summary, num_images=2)
    stats = compute_head_statistics(builtin_ancestor.model, probes, builtin_ancestor.summary, batch_size=2)
    return stats.mean_attention_distance


def test_forward_and_backward_on_real_photos(builtin_ancestor, distances, photos):
    built = build_descendant(builtin_ancestor, DescendantSpec(depth=6, width_ratio=2, num_classes=10),
                             distances=distances)
    model = built.model.train()
    assert [b.attn.num_heads for b in model.blocks] == [3] * 6
    logits = model(photos)  # (2, 10)
    loss = F.cross_entropy(logits, torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    before = loss.item()
    with torch.no_grad():
        for param in model.parameters():
            param -= 1e-3 * param.grad
    assert F.cross_entropy(model(photos), torch.tensor([1, 7])).item() < before


def _first_block_similarity(model, ancestor, photos) -> float:
    """Cosine similarity of the tokens after block 0, descendant vs ancestor, averaged over images."""
    def after_first_block(vit):
        with torch.no_grad():
            tokens = vit._pos_embed(vit.patch_embed(photos))  # (B, N, C)
            return vit.blocks[0](vit.norm_pre(tokens)).flatten(1)

    return F.cosine_similarity(after_first_block(model.eval()), after_first_block(ancestor.model)).mean().item()


def test_inherited_weights_carry_the_ancestors_features(builtin_ancestor, distances, photos):
    """Cluster-learngene's first layer (4-ish centroids shared over 6 slots) stays close to the ancestor's, a random
    layer does not; a full-width prune is the ancestor itself."""
    def similarity(init: str) -> float:
        spec = DescendantSpec(depth=1, width_ratio=1, num_classes=10, init=init)
        built = build_descendant(builtin_ancestor, spec, distances=distances)
        return _first_block_similarity(built.model, builtin_ancestor, photos)

    assert similarity("cluster-learngene") > 0.8
    assert abs(similarity("scratch")) < 0.2
    full = build_descendant(builtin_ancestor, DescendantSpec(num_classes=10, init="pretrained-prune")).model.eval()
    with torch.no_grad():
        torch.testing.assert_close(full.forward_features(photos), builtin_ancestor.model.forward_features(photos))
