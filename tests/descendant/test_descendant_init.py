"""Every initialisation copies exactly what it claims, checked tensor by tensor and head slot by head slot.

The tiny ancestor's weights are all shifted away from timm's init (see conftest), so "equal to the ancestor's
tensor" can only mean "copied" and "different" means "left random".
"""

from __future__ import annotations

import pytest
import torch

from learngene.descendant import DescendantSpec, build_descendant
from learngene.descendant.transform import FfnTransform
from learngene.head_weights import read_head

HEAD_SLICED = ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight")


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def copied_tensors(descendant, ancestor, layer_map=None) -> set[str]:
    """Descendant tensors (head-sliced ones excluded) equal to the ancestor's tensor of the same name, or of the
    layer ``layer_map`` maps to."""
    anc = ancestor.model.state_dict()
    copied = set()
    for key, value in descendant.model.state_dict().items():
        if key.endswith(HEAD_SLICED):
            continue
        source = key
        if key.startswith("blocks.") and layer_map is not None:
            layer = int(key.split(".")[1])
            source = f"blocks.{layer_map.get(layer, -1)}." + key.split(".", 2)[2]
        if source in anc and _equal(value, anc[source]):
            copied.add(key)
    return copied


def slot_sources(descendant, ancestor, layer_map) -> list[list[int | None]]:
    """For each descendant slot: the ancestor head (of the mapped layer) whose every tensor it equals, else None."""
    result = []
    for layer, block in enumerate(descendant.model.blocks):
        src = layer_map.get(layer)
        row = []
        for slot in range(block.attn.num_heads):
            mine = read_head(block.attn, slot)
            match = None
            if src is not None:
                for head in range(ancestor.model.blocks[src].attn.num_heads):
                    theirs = read_head(ancestor.model.blocks[src].attn, head)
                    if all(_equal(mine[k], theirs[k]) for k in mine):
                        match = head
                        break
            row.append(match)
        result.append(row)
    return result


MODEL_LEVEL = {"patch_embed.proj.weight", "patch_embed.proj.bias", "reg_token", "pos_embed", "fc_norm.weight"}
LAYER_LEVEL = ("norm1.weight", "norm2.weight", "ls1.gamma", "ls2.gamma", "attn.proj.bias",
               "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")


def _identity(depth: int) -> dict[int, int]:
    return {i: i for i in range(depth)}


def layer_keys(layers) -> set[str]:
    return {f"blocks.{i}.{k}" for i in layers for k in LAYER_LEVEL}


def test_cluster_learngene_slots_take_priority_centroids_mod_c(tiny_ancestor, tiny_distances, tiny_priority):
    heads = [4, 1, 5, 2, 3, 6]
    spec = DescendantSpec(depth=6, heads=heads, num_classes=6, ffn_groups=None)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    expected = [[tiny_priority[n][i % len(tiny_priority[n])] for i in range(h)] for n, h in enumerate(heads)]
    identity = _identity(6)
    assert slot_sources(built, tiny_ancestor, identity) == expected
    assert built.config["head_sources"] == expected
    # Everything else of the first six layers, and every embedding and final norm, is copied; the head is new.
    assert copied_tensors(built, tiny_ancestor, identity) == MODEL_LEVEL | layer_keys(range(6))
    assert built.model.head.weight.shape == (6, 96)


def test_qkv_bias_is_copied_with_its_head(tiny_ancestor, tiny_distances):
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=1, heads=[2], num_classes=2, ffn_groups=None),
                             distances=tiny_distances)
    qkv = built.model.blocks[0].attn.qkv.bias.detach().view(3, 2, 32)  # (q|k|v, slot, D)
    ancestor = tiny_ancestor.model.blocks[0].attn.qkv.bias.detach().view(3, 3, 32)
    assert torch.equal(qkv[:, 0], ancestor[:, 0]) and torch.equal(qkv[:, 1], ancestor[:, 2])  # S_0 = [0, 2]


@pytest.mark.parametrize("order, layer, expected", [
    ("descending-mad", 0, [2, 0, 2]),  # cluster means 11 and 80
    ("ascending-mad", 1, [1, 0, 1]),  # cluster means 51 and 20
    ("original", 3, [1, 1, 1]),
    ("priority", 1, [0, 1, 0]),
])
def test_head_orders(tiny_ancestor, tiny_distances, order, layer, expected):
    spec = DescendantSpec(depth=4, width_ratio=1, num_classes=2, head_order=order, ffn_groups=None)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    assert slot_sources(built, tiny_ancestor, _identity(4))[layer] == expected


def test_average_centroid_is_the_members_mean(tiny_ancestor, tiny_distances):
    spec = DescendantSpec(depth=1, heads=[2], num_classes=2, centroid="average", ffn_groups=None)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    attn = tiny_ancestor.model.blocks[0].attn
    slot0 = read_head(built.model.blocks[0].attn, 0)
    for key, value in slot0.items():  # cluster {0, 1}
        torch.testing.assert_close(value, (read_head(attn, 0)[key] + read_head(attn, 1)[key]) / 2)
    assert torch.equal(read_head(built.model.blocks[0].attn, 1)["q_weight"], read_head(attn, 2)["q_weight"])


@pytest.mark.parametrize("transform_init", ["identity", "default"])
def test_ffn_group_is_t_of_the_groups_first_layer(tiny_ancestor, tiny_distances, transform_init):
    spec = DescendantSpec(depth=5, width_ratio=1, num_classes=2, ffn_groups=[[1, 2, 3]], transform_init=transform_init)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    (record,) = built.config["ffn_transforms"]
    transform = FfnTransform(3)
    transform.load_state_dict({k: torch.tensor(v) for k, v in record["weights"].items()})
    centroid = tiny_ancestor.model.blocks[1].mlp  # the group's FFN centroid: its first layer's FFN
    for j, layer in enumerate([1, 2, 3]):
        mlp = built.model.blocks[layer].mlp
        for name in ("fc1", "fc2"):
            for part in ("weight", "bias"):
                source = getattr(getattr(centroid, name), part).detach()
                with torch.no_grad():
                    expected = transform(source)[..., j]
                torch.testing.assert_close(getattr(getattr(mlp, name), part).detach(), expected, rtol=0, atol=1e-6)
                if transform_init == "identity":
                    assert torch.equal(getattr(getattr(mlp, name), part).detach(), source)
        assert built.config["ffn_sources"][layer] == {"layer": 1, "transform": True, "output": j}
    # Ungrouped layers copy their own FFN.
    assert torch.equal(built.model.blocks[4].mlp.fc1.weight, tiny_ancestor.model.blocks[4].mlp.fc1.weight)


def test_group_cut_by_the_depth_keeps_its_full_transform(tiny_ancestor, tiny_distances):
    """The authors' rule: a group the depth cuts keeps its full-size T and its layers take T's first outputs."""
    spec = DescendantSpec(depth=6, width_ratio=1, num_classes=2, ffn_groups=[[5, 6, 7]])
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    (record,) = built.config["ffn_transforms"]
    assert record["layers"] == [5] and record["outputs"] == 3
    transform = FfnTransform(3)
    transform.load_state_dict({k: torch.tensor(v) for k, v in record["weights"].items()})
    with torch.no_grad():
        expected = transform(tiny_ancestor.model.blocks[5].mlp.fc1.weight)[..., 0]
    torch.testing.assert_close(built.model.blocks[5].mlp.fc1.weight.detach(), expected, rtol=0, atol=1e-6)
    assert built.config["ffn_sources"][5] == {"layer": 5, "transform": True, "output": 0}


def test_trained_transform_keeps_outputs_and_learns(tiny_ancestor, tiny_distances):
    base = dict(depth=4, width_ratio=1, num_classes=3, ffn_groups=[[0, 1], [2, 3]])
    once = build_descendant(tiny_ancestor, DescendantSpec(**base), distances=tiny_distances).model.eval()
    kept = build_descendant(tiny_ancestor, DescendantSpec(**base, train_transform=True), distances=tiny_distances)
    model = kept.model.eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), once(x), rtol=0, atol=1e-5)
    model(x).square().sum().backward()
    grads = [p.grad for p in model.ffn_transforms.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_no_parameter_is_shared(tiny_ancestor, tiny_distances):
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=3, heads=[6, 6, 6], num_classes=2),
                             distances=tiny_distances)
    pointers = [p.data_ptr() for p in built.model.parameters()]
    assert len(pointers) == len(set(pointers))
    ancestor_pointers = {p.data_ptr() for p in tiny_ancestor.model.parameters()}
    assert not ancestor_pointers & set(pointers)  # copies, never views of the ancestor


def test_resampled_position_embedding(tiny_ancestor, tiny_distances):
    from timm.layers import resample_abs_pos_embed

    built = build_descendant(tiny_ancestor, DescendantSpec(depth=2, img_size=64, num_classes=2),
                             distances=tiny_distances)
    expected = resample_abs_pos_embed(tiny_ancestor.model.pos_embed.detach(), new_size=[4, 4], num_prefix_tokens=1)
    assert built.model.pos_embed.shape == (1, 17, 96)
    torch.testing.assert_close(built.model.pos_embed.detach(), expected)
    assert built.model(torch.randn(1, 3, 64, 64)).shape == (1, 2)


# ------------------------------------------------------------------------------------------------- baselines


def test_scratch_copies_nothing_and_is_reproducible(tiny_ancestor):
    spec = DescendantSpec(depth=9, width_ratio=1, num_classes=1000, init="scratch")
    first, second = build_descendant(tiny_ancestor, spec), build_descendant(tiny_ancestor, spec)
    identity = _identity(9)
    assert copied_tensors(first, tiny_ancestor, identity) == set()
    assert all(s is None for row in slot_sources(first, tiny_ancestor, identity) for s in row)
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True))
    assert all(s is None for row in first.config["head_sources"] for s in row)


@pytest.mark.parametrize(("init", "shared"), [("heuristic-learngene", MODEL_LEVEL),
                                               ("heuristic-learngene-layers-only", set())])
def test_heuristic_learngene_copies_the_last_three_layers(tiny_ancestor, init, shared):
    """Authors' semantics (default name): the last three layers plus embeddings, tokens and final norm, as their
    loader drops only the other blocks and the classifier; ``-layers-only``: the layers alone."""
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=5, width_ratio=1, num_classes=2, init=init))
    layer_map = {0: 0, 1: 1, 2: 6, 3: 7, 4: 8}  # also compare layers 0, 1 with their namesakes: must differ
    assert copied_tensors(built, tiny_ancestor, layer_map) == shared | layer_keys([2, 3, 4])
    assert slot_sources(built, tiny_ancestor, layer_map) == [[None] * 3, [None] * 3, [0, 1, 2], [0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize(("init", "shared"), [("auto-learngene", MODEL_LEVEL), ("auto-learngene-layers-only", set())])
def test_auto_learngene_copies_the_first_six_layers(tiny_ancestor, init, shared):
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=7, heads=[5, 2, 3, 3, 3, 3, 3], num_classes=2,
                                                           init=init))
    identity = _identity(7)
    assert copied_tensors(built, tiny_ancestor, identity) == shared | layer_keys(range(6))
    sources = slot_sources(built, tiny_ancestor, identity)
    assert sources[0] == [0, 1, 2, None, None]  # slots beyond the ancestor's 3 heads stay random
    assert sources[1] == [0, 1] and sources[6] == [None] * 3
    assert built.config["head_sources"] == sources


def test_auto_learngene_at_the_ancestors_shape_starts_as_the_pruned_ancestor(tiny_ancestor):
    """With the authors' semantics a 6-layer Auto-Learngene descendant at w = 1 equals pretrained-prune's."""
    auto, prune = (build_descendant(tiny_ancestor, DescendantSpec(depth=6, width_ratio=1, num_classes=2, init=init))
                   for init in ("auto-learngene", "pretrained-prune"))
    prune_state = prune.model.state_dict()
    for key, value in auto.model.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, prune_state[key]), key


def test_pretrained_prune_keeps_the_first_heads(tiny_ancestor):
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=4, width_ratio=1.5, num_classes=2,
                                                           init="pretrained-prune"))
    identity = _identity(4)
    assert copied_tensors(built, tiny_ancestor, identity) == MODEL_LEVEL | layer_keys(range(4))
    assert slot_sources(built, tiny_ancestor, identity) == [[0, 1]] * 4


def test_ancestor_copies_everything_but_the_classifier(tiny_ancestor):
    built = build_descendant(tiny_ancestor, DescendantSpec(num_classes=2, init="ancestor"))
    state = built.model.state_dict()
    copied = copied_tensors(built, tiny_ancestor, _identity(9))
    assert copied == {k for k in state if not k.startswith("head.") and not k.endswith(HEAD_SLICED)}
    for key in (k for k in state if k.endswith(HEAD_SLICED)):
        assert torch.equal(state[key], tiny_ancestor.model.state_dict()[key])


def test_statistics_are_computed_on_the_fly_when_missing(tiny_ancestor):
    built = build_descendant(tiny_ancestor, DescendantSpec(depth=2, width_ratio=1, num_classes=2))
    provenance = built.config["provenance"]
    assert provenance["statistics"] == "computed on the fly" and provenance["num_images"] > 0
    assert len(provenance["distances"]) == 9 and len(provenance["distances"][0]) == 3
    assert all(source is not None for row in built.config["head_sources"] for source in row)
