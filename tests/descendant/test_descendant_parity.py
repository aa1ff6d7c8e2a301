"""Parity mode against the authors' code, tensor by tensor, on perturbed random DeiT-S and DeiT-B ancestors.

The references below restate the authors' expressions (``SharedAttention``, ``PruneProj``, ``transform_mlp`` and
``SAVisionTransformer`` in their ``models/vision_transformer.py``; the S_l lists in their ``train.py``) directly,
loops and reshapes as they wrote them, independently of :mod:`learngene.descendant.parity`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from learngene.descendant import DescendantSpec, build_descendant, descendant_size

# From the authors' train.py, verbatim (``shared_head_index``).
THEIR_S = {
    "deit_base_patch16_224": [[1, 5, 4, 2, 8], [2, 6, 11], [6, 3, 5, 7], [3, 7, 5, 9, 1, 2], [5, 2, 1, 8, 10],
                              [6, 7, 10, 11], [0, 1, 5, 3], [10, 6, 4, 11], [0, 3, 7, 9], [3], [3, 4], [5]],
    "deit_small_patch16_224": [[1, 2, 3], [0, 1, 3], [4, 2, 3], [1, 3], [4, 1, 3, 5], [4, 0, 1], [2, 0, 1, 3, 5], [4],
                               [5, 1, 2], [5], [2], [3]],
    "deit_tiny_patch16_224": [[0, 1, 2], [0, 2], [0, 2], [0, 1, 2], [0, 1, 2], [1, 0], [0, 1, 2], [2, 0], [0, 1, 2],
                              [1, 0], [1], [0]],
}
# The layers their TransMlp classes give a T output: layer -> (centroid layer, output index).
THEIR_T_LAYERS = {
    "deit_base_patch16_224": {6: (6, 0), 7: (6, 1), 9: (9, 0), 10: (9, 1), 11: (9, 2)},
    "deit_small_patch16_224": {9: (9, 0), 10: (9, 1), 11: (9, 2)},
}


def _perturbed(name: str):
    from learngene.ancestors import load_ancestor

    ancestor = load_ancestor(f"random:{name}")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in ancestor.model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return ancestor


@pytest.fixture(scope="module")
def deit_small():
    return _perturbed("deit_small_patch16_224")


@pytest.fixture(scope="module")
def deit_base():
    return _perturbed("deit_base_patch16_224")


def their_qkv(weight: torch.Tensor, num_heads: int, shared_head_index: list[int], width_ratio: float) -> torch.Tensor:
    """SharedAttention with expand_method 'weight_assignment'."""
    out_dim, in_dim = weight.shape
    shared_heads = weight.reshape(num_heads, out_dim // num_heads, in_dim)[shared_head_index, :, :].clone()
    heads = int(num_heads // width_ratio)
    expand = torch.zeros(heads, int(out_dim // num_heads), in_dim)
    index = 0
    for i in range(heads):
        if i % len(shared_head_index) == 0:
            index = i % shared_heads.shape[0]
        expand[i, :, :] = shared_heads[index, :, :]
        index = (index + 1) % shared_heads.shape[0]
    return expand.reshape(int(out_dim // width_ratio), in_dim)


def their_proj(weight: torch.Tensor, width_ratio: float) -> torch.Tensor:
    """PruneProj's weight."""
    proj_in = int(weight.size(1) / width_ratio)
    if proj_in <= weight.size(1):
        return weight[:, :proj_in]
    return torch.repeat_interleave(weight, repeats=int(1.0 / width_ratio), dim=1)


def their_t_outputs(record: dict, mlp: nn.Module) -> dict[str, torch.Tensor]:
    """transform_mlp(1, k, True) with the recorded weights, applied with their transposes: key -> (k, ...)."""
    k = len(record["weights"]["net.2.bias"])
    proj = nn.Sequential(nn.Linear(1, k), nn.ReLU(), nn.Linear(k, k))
    proj.load_state_dict({name.removeprefix("net."): torch.tensor(v) for name, v in record["weights"].items()})
    with torch.no_grad():
        return {
            "fc1.weight": proj(mlp.fc1.weight.unsqueeze(0).transpose(-3, -1)).transpose(-3, -1),
            "fc1.bias": proj(mlp.fc1.bias.unsqueeze(0).transpose(-2, -1)).transpose(-2, -1),
            "fc2.weight": proj(mlp.fc2.weight.unsqueeze(0).transpose(-3, -1)).transpose(-3, -1),
            "fc2.bias": proj(mlp.fc2.bias.unsqueeze(0).transpose(-2, -1)).transpose(-2, -1),
        }


def _check_against_their_code(built, ancestor, width_ratio: float) -> None:
    arch = ancestor.summary.arch
    num_heads = ancestor.summary.num_heads
    state = built.model.state_dict()
    anc = ancestor.model.state_dict()
    t_layers = THEIR_T_LAYERS[arch]
    records = {tuple(r["layers"]): r for r in built.config["ffn_transforms"]}
    for layer, block in enumerate(built.model.blocks):
        src = ancestor.model.blocks[layer]
        assert block.attn.qkv.bias is None  # bias-free qkv
        assert torch.equal(block.attn.qkv.weight, their_qkv(src.attn.qkv.weight.detach(), num_heads, THEIR_S[arch][layer],
                                                            width_ratio))
        assert torch.equal(block.attn.proj.weight, their_proj(src.attn.proj.weight.detach(), width_ratio))
        for key in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.proj.bias"):
            assert torch.equal(state[f"blocks.{layer}.{key}"], anc[f"blocks.{layer}.{key}"])
        if layer in t_layers:
            centroid, j = t_layers[layer]
            (record,) = [r for layers, r in records.items() if layer in layers]
            expected = their_t_outputs(record, ancestor.model.blocks[centroid].mlp)
            for key, value in expected.items():
                torch.testing.assert_close(state[f"blocks.{layer}.mlp.{key}"], value[j], rtol=0, atol=1e-6)
        else:
            for key in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
                assert torch.equal(state[f"blocks.{layer}.mlp.{key}"], anc[f"blocks.{layer}.mlp.{key}"])
    for key in ("patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "norm.weight", "norm.bias"):
        assert torch.equal(state[key], anc[key])


@pytest.mark.parametrize("width_ratio", [1, 1.5, 2, 0.5])
def test_deit_small_parity_matches_their_code_tensor_by_tensor(deit_small, width_ratio):
    # depth 10 cuts the group {9, 10, 11}: their layer 9 takes T(FFN9)[0] of a 3-output T
    built = build_descendant(deit_small, DescendantSpec(depth=10, width_ratio=width_ratio, num_classes=10,
                                                        parity="authors"))
    assert list(built.spec.heads) == [int(6 // width_ratio)] * 10
    _check_against_their_code(built, deit_small, width_ratio)
    (record,) = built.config["ffn_transforms"]
    assert record["layers"] == [9] and record["outputs"] == 3 and record["init"] == "default"
    assert built.config["provenance"]["priority_lists"] == THEIR_S["deit_small_patch16_224"]
    assert built.config["head_sources"] == [[s[i % len(s)] for i in range(built.spec.heads[layer])]
                                            for layer, s in enumerate(THEIR_S["deit_small_patch16_224"][:10])]
    size = descendant_size(deit_small.summary, built.spec)
    assert size.params == sum(p.numel() for p in built.model.parameters())
    assert size.inherited_params == built.config["inherited_params"]
    assert size.inherited_distinct_params == built.config["inherited_distinct_params"]


def test_deit_base_parity_matches_their_code_tensor_by_tensor(deit_base):
    built = build_descendant(deit_base, DescendantSpec(width_ratio=2, num_classes=10, parity="authors"))
    _check_against_their_code(built, deit_base, 2)
    assert sorted(r["layers"] for r in built.config["ffn_transforms"]) == [[6, 7], [9, 10, 11]]
    assert built.config["provenance"]["priority_lists"] == THEIR_S["deit_base_patch16_224"]


def test_parity_attention_computes_their_forward(deit_small):
    """One block's attention, timm's forward on our weights vs the authors' SharedAttention.forward."""
    width_ratio = 1.5
    built = build_descendant(deit_small, DescendantSpec(depth=1, width_ratio=width_ratio, num_classes=3,
                                                        parity="authors"))
    attn = built.model.blocks[0].attn.eval()
    src = deit_small.model.blocks[0].attn
    x = torch.randn(2, 5, 384, generator=torch.Generator().manual_seed(0))
    qkv_weight = their_qkv(src.qkv.weight.detach(), 6, THEIR_S["deit_small_patch16_224"][0], width_ratio)
    heads = int(6 // width_ratio)
    B, N, C = x.shape
    qkv = torch.matmul(x, qkv_weight.T)
    qkv = qkv.reshape(B, N, 3, heads, int(C // heads // width_ratio)).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = ((q @ k.transpose(-2, -1)) * (C // 6) ** -0.5).softmax(dim=-1)
    out = (scores @ v).transpose(1, 2).reshape(B, N, int(C // width_ratio))
    expected = out @ their_proj(src.proj.weight.detach(), width_ratio).T + src.proj.bias.detach()
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_parity_classifier_is_a_default_linear(deit_small):
    built = build_descendant(deit_small, DescendantSpec(depth=1, num_classes=200, parity="authors"))
    weight = built.model.head.weight.detach()
    bound = 1 / math.sqrt(384)  # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)), std bound / sqrt(3) ~ 0.029
    assert weight.abs().max() <= bound and 0.026 < weight.std() < 0.033


def test_default_mode_differs_from_parity_exactly_where_documented(deit_small):
    """Same shape, no FFN group inside the depth: embeddings, norms, W_O bias and FFNs agree; the qkv (real heads
    with their biases vs the authors' chunks without), W_O (per-head columns vs first columns) and the classifier
    (timm init vs nn.Linear's) differ."""
    distances = np.full((12, 6), 50.0)  # one cluster per layer: every default slot copies real head 0
    spec = dict(depth=6, width_ratio=1, num_classes=10)
    ours = build_descendant(deit_small, DescendantSpec(**spec, ffn_groups=None), distances=distances)
    theirs = build_descendant(deit_small, DescendantSpec(**spec, parity="authors"))
    mine, other = ours.model.state_dict(), theirs.model.state_dict()
    assert set(mine) - set(other) == {f"blocks.{i}.attn.qkv.bias" for i in range(6)}
    differ = {key for key in other if not torch.equal(mine[key], other[key])}
    expected = {f"blocks.{i}.attn.{name}.weight" for i in range(6) for name in ("qkv", "proj")}
    assert differ == expected | {"head.weight", "head.bias"}
    assert ours.config["head_sources"] == [[0] * 6] * 6
