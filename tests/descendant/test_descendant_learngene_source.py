"""A learngene supplies every inherited tensor, so one extracted from another ancestor is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from learngene import LearngeneError, descendant_size, extract_learngene, load_ancestor
from learngene.descendant import DescendantSpec, build_descendant

SPEC = DescendantSpec(depth=2, num_classes=3)


def _weights_file(tmp_path, name: str, seed: int) -> str:
    """A test_vit4 weights file with weights of its own (a file ancestor carries a weights fingerprint)."""
    model = load_ancestor("random:test_vit4", img_size=32).model
    generator = torch.Generator().manual_seed(seed)
    state = {k: v + 0.1 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()}
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return f"{path}@test_vit4"


def _gene(ancestor):
    table = np.random.default_rng(0).uniform(10, 100, (ancestor.summary.num_layers, ancestor.summary.num_heads))
    return extract_learngene(ancestor, table)


def test_a_learngene_of_another_architecture_with_the_same_layers_and_heads_is_refused():
    gene = _gene(load_ancestor("random:vit_tiny_patch16_224", img_size=32))
    other = load_ancestor("random:deit_tiny_patch16_224", img_size=32)  # 12 x 3 heads too
    # Before: accepted silently (only layers x heads were compared), a ViT-Ti learngene standing in for DeiT-Ti.
    for call in (lambda: build_descendant(other, SPEC, learngene=gene),
                 lambda: descendant_size(other.summary, SPEC, learngene=gene)):
        with pytest.raises(LearngeneError, match=r"extracted from ancestor 'random:vit_tiny_patch16_224', not from "
                                                 r"'random:deit_tiny_patch16_224' \(arch vit_tiny_patch16_224 vs "
                                                 r"deit_tiny_patch16_224\); extract it from this ancestor"):
            call()


def test_a_learngene_of_the_same_architecture_with_other_weights_is_refused(tmp_path):
    first, second = (load_ancestor(_weights_file(tmp_path, name, seed), img_size=32)
                     for name, seed in (("a", 1), ("b", 2)))
    gene = _gene(first)
    with pytest.raises(LearngeneError, match=rf"weights {first.summary.weights_sha256} vs "
                                             rf"{second.summary.weights_sha256}"):
        build_descendant(second, SPEC, learngene=gene)
    # The same ancestor at another resolution is the same ancestor: the position embedding is resampled.
    same_at_64 = load_ancestor(first.summary.spec, img_size=64)
    descendant = build_descendant(same_at_64, SPEC, learngene=gene)
    assert torch.equal(descendant.model.blocks[0].mlp.fc1.weight, gene.ffn[0]["fc1.weight"])


@pytest.mark.parametrize("call", [
    lambda a: build_descendant(a, None),  # before: AttributeError 'NoneType' object has no attribute 'resolve'
    lambda a: build_descendant(a, SPEC, learngene="lg/"),  # before: AttributeError 'str' has no 'centroid'
    lambda a: descendant_size(a, None),
    lambda a: descendant_size(None, SPEC),  # before: AttributeError 'NoneType' object has no attribute 'summary'
])
def test_arguments_of_the_wrong_kind_are_refused_in_one_line(call):
    ancestor = load_ancestor("random:test_vit4", img_size=32)
    with pytest.raises(LearngeneError, match=r"needs a DescendantSpec|must be a Learngene|needs an Ancestor"):
        call(ancestor)
