"""The size preview against real models: timm's own counts, built descendants, and a FLOP counter."""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from learngene.descendant import (
    DescendantSpec,
    build_descendant,
    create_descendant_model,
    descendant_size,
    scale_table,
)
from learngene.descendant.arch import DEIT_REFERENCES, deit_facts, summary_without_weights
from learngene.descendant.size import count_params


@pytest.mark.parametrize(
    "arch, expected",
    [("deit_tiny_patch16_224", 5_717_416), ("deit_small_patch16_224", 22_050_664), ("deit_base_patch16_224", 86_567_656)],
)
def test_full_size_preview_equals_timms_count(arch, expected):
    summary = summary_without_weights(f"random:{arch}")
    assert summary.num_params == expected  # timm's own count (meta-device model)
    assert descendant_size(summary, DescendantSpec()).params == expected


def test_deit_reference_facts_match_timm():
    for (label, dim, heads, depth), arch in zip(DEIT_REFERENCES, ("deit_tiny", "deit_small", "deit_base"), strict=True):
        summary = summary_without_weights(f"random:{arch}_patch16_224")
        assert count_params(deit_facts(dim), [heads] * depth, 224, 1000) == summary.num_params, label


def test_real_random_deit_tiny_matches(tiny_ancestor):
    from learngene.ancestors import load_ancestor

    ancestor = load_ancestor("random:deit_tiny_patch16_224")
    assert descendant_size(ancestor, DescendantSpec()).params == sum(p.numel() for p in ancestor.model.parameters())


def test_preview_equals_built_model_for_every_scale_table_row(tiny_ancestor):
    summary = tiny_ancestor.summary
    rows = [r for r in scale_table(summary, num_classes=10) if r["kind"] != "reference"]
    assert len(rows) == 1 + 3 * 8  # the ancestor + depths 4/6/9 (of 9) x four ratios and four schedules
    for row in rows:
        # The real modules, minus timm's weight init (values do not matter for a count; keeps 19 builds cheap).
        model = create_descendant_model(summary.arch, row["heads_per_layer"], head_dim=summary.head_dim,
                                        img_size=summary.img_size, num_classes=10, weight_init="skip")
        assert sum(p.numel() for p in model.parameters()) == row["params"], row["label"]
        assert [b.attn.num_heads for b in model.blocks] == row["heads_per_layer"]


@pytest.mark.parametrize("init", ["cluster-learngene", "pretrained-prune", "heuristic-learngene", "auto-learngene", "scratch",
                                  "heuristic-learngene-layers-only", "auto-learngene-layers-only"])
def test_inherited_preview_equals_what_the_build_copied(tiny_ancestor, tiny_distances, init):
    spec = DescendantSpec(depth=7, heads=[1, 2, 3, 3, 2, 1, 1] if init == "pretrained-prune" else [1, 5, 3, 2, 6, 3, 4],
                          num_classes=4, init=init)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    size = descendant_size(tiny_ancestor.summary, spec)
    assert built.config["inherited_params"] == size.inherited_params
    assert sum(p.numel() for p in built.model.parameters()) == size.params
    if init != "cluster-learngene":  # nothing is written twice
        assert built.config["inherited_distinct_params"] == size.inherited_distinct_params == size.inherited_params


def test_distinct_inherited_counts_each_centroid_and_group_centroid_once(tiny_ancestor, tiny_distances, tiny_priority):
    """Slot-inherited counts every slot; distinct-inherited counts the ancestor values behind them once."""
    heads = [1, 5, 3, 2, 6, 3, 4]
    spec = DescendantSpec(depth=7, heads=heads, num_classes=4, ffn_groups=[[4, 5, 6]])
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    model = built.model
    per_head = sum(p.numel() for p in model.blocks[0].attn.parameters()) - model.blocks[0].attn.proj.bias.numel()
    ffn = sum(p.numel() for p in model.blocks[0].mlp.parameters())
    repeated_slots = sum(max(0, h - len(tiny_priority[layer])) for layer, h in enumerate(heads))
    expected = built.config["inherited_params"] - repeated_slots * per_head - 2 * ffn  # layers 5, 6 reuse FFN4
    assert built.config["inherited_distinct_params"] == expected < built.config["inherited_params"]
    assert descendant_size(tiny_ancestor.summary, spec).inherited_distinct_params is None  # clusters unknown
    from learngene.extraction import extract_learngene

    learngene = extract_learngene(tiny_ancestor, tiny_distances, ffn_groups=[[4, 5, 6]])
    assert descendant_size(tiny_ancestor.summary, spec, learngene=learngene).inherited_distinct_params == expected


def test_size_json_gives_slot_and_distinct_inherited(capsys):
    import json

    from learngene.cli import main

    assert main(["size", "--ancestor", "random:deit_small_patch16_224", "--depth", "6", "--num-classes", "100",
                 "--parity", "authors", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inherited_slot_params"] == data["inherited_params"]
    # The authors' DeiT-S S_l for layers 0-5 have 3, 3, 3, 2, 4, 3 chunks: 18 distinct of 36 slots (3 D C each).
    assert data["inherited_params"] - data["inherited_distinct_params"] == (36 - 18) * 3 * 64 * 384


def test_transform_parameters_are_counted_when_trained(tiny_ancestor, tiny_distances):
    spec = DescendantSpec(depth=8, width_ratio=1, num_classes=3, ffn_groups=[[1, 2], [5, 6, 7, 8]], train_transform=True)
    size = descendant_size(tiny_ancestor.summary, spec)
    # [1, 2] (k = 2) and [5, 6, 7, 8] cut by the depth: its T keeps k = 4 (the authors' rule; layers 5-7 take
    # outputs 0-2). T has k^2 + 3k parameters.
    assert size.transform_params == (4 + 6) + (16 + 12)
    built = build_descendant(tiny_ancestor, spec, distances=tiny_distances)
    assert sum(p.numel() for p in built.model.parameters()) == size.trainable_params == size.params + size.transform_params


@pytest.mark.parametrize("heads, img_size, classes", [([3, 3, 3, 3], 32, 10), ([1, 5, 2], 64, 7), ([6, 1], 48, 1)])
def test_macs_match_torch_flop_counter(tiny_ancestor, heads, img_size, classes):
    summary = tiny_ancestor.summary
    spec = DescendantSpec(depth=len(heads), heads=heads, img_size=img_size, num_classes=classes)
    model = create_descendant_model(summary.arch, heads, head_dim=summary.head_dim, img_size=img_size,
                                    num_classes=classes).eval()
    for block in model.blocks:
        block.attn.fused_attn = False  # count q k^T and A v as the explicit matmuls they are
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, img_size, img_size))
    size = descendant_size(summary, spec)
    measured_macs = counter.get_total_flops() / 2
    assert abs(size.macs - measured_macs) / measured_macs < 0.01
    assert size.flops == 2 * size.macs


def test_memory_estimate_grows_with_batch_and_amp_is_smaller(tiny_ancestor):
    spec = DescendantSpec(depth=6, width_ratio=1.5)
    small, large = (descendant_size(tiny_ancestor.summary, spec, batch_size=b) for b in (8, 64))
    assert large.train_memory_fp32_estimate_bytes > small.train_memory_fp32_estimate_bytes
    assert small.train_memory_amp_estimate_bytes < small.train_memory_fp32_estimate_bytes
    assert small.train_memory_amp_estimate_bytes > 16 * small.params  # at least weights, grads and AdamW state


def test_scale_table_is_fast_enough_for_a_live_ui():
    summary = summary_without_weights("builtin")
    scale_table(summary)  # the first call reads the architecture once (cached afterwards)
    start = time.perf_counter()
    rows = scale_table(summary)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.1, f"scale table took {elapsed * 1000:.1f} ms"
    assert {r["kind"] for r in rows} == {"ancestor", "descendant", "reference"}
    ancestor = rows[0]
    assert ancestor["params"] == summary.num_params + 384 * 1000 + 1000  # backbone + a 1000-class head
    halved = next(r for r in rows if r["label"] == "L=6, w=2.0")
    assert halved["heads_per_layer"] == [3] * 6 and halved["params"] < ancestor["params"] / 2
