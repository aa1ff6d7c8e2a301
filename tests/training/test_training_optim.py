"""The recipe's optimizer and schedule (built from timm's pieces) against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from learngene.training.optim import WarmupCosine, build_optimizer, param_groups


def hand_lr(step: int, peak: float, total: int, warmup: int, warmup_lr: float, min_lr: float) -> float:
    """The recipe written out: linear warm-up, then half a cosine from peak to min_lr, then min_lr."""
    if step < warmup:
        return warmup_lr + (peak - warmup_lr) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + (peak - min_lr) * (1 + math.cos(math.pi * progress)) / 2


@pytest.mark.parametrize(("total", "warmup"), [(100, 10), (40, 0), (8, 8), (1, 0)])
def test_schedule_follows_the_recipe_step_by_step_and_after_a_resume(total, warmup):
    settings = dict(peak_lr=1e-3, total_steps=total, warmup_steps=warmup, warmup_lr=1e-6, min_lr=1e-5)
    # Two groups, like the recipe's optimizer: both must follow the curve.
    optimizer = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(2))]}, {"params": [nn.Parameter(torch.zeros(1))]}],
                                lr=1e-3)
    schedule = WarmupCosine(optimizer, **settings)
    seen = []
    for _ in range(total + 5):  # a few steps past the end stay at min_lr
        seen.append([group["lr"] for group in optimizer.param_groups])
        schedule.step()
    for step, lrs in enumerate(seen):
        expected = hand_lr(step, 1e-3, total, warmup, 1e-6, 1e-5)
        assert lrs == pytest.approx([expected, expected], rel=1e-12, abs=1e-15), step

    # A resumed run (new optimizer whose state came from a checkpoint without timm's keys) continues on the curve.
    middle = total // 2
    fresh = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(2))]}, {"params": [nn.Parameter(torch.zeros(1))]}],
                            lr=1e-3)
    resumed = WarmupCosine(fresh, **settings)
    resumed.load_state_dict({"step_count": middle, "peak_lr": 1e-3, "total_steps": total, "warmup_steps": warmup,
                             "warmup_lr": 1e-6, "min_lr": 1e-5})
    assert resumed.get_last_lr() == pytest.approx(hand_lr(middle, 1e-3, total, warmup, 1e-6, 1e-5), rel=1e-12)
    resumed.step()
    assert resumed.get_last_lr() == pytest.approx(hand_lr(middle + 1, 1e-3, total, warmup, 1e-6, 1e-5), rel=1e-12)


class Wrapped(nn.Module):
    """A ViT inside a wrapper: its tokens are named backbone.cls_token / backbone.pos_embed."""

    def __init__(self) -> None:
        super().__init__()
        import timm

        self.backbone = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=3)

    def no_weight_decay(self) -> set[str]:
        return self.backbone.no_weight_decay()


MATRICES = {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
            "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight", "head.weight"}


@pytest.mark.parametrize("weight_decay", [0.05, 0.0])
def test_only_weight_matrices_decay_even_inside_a_wrapper(weight_decay):
    model = Wrapped()
    names = {id(p): n.removeprefix("backbone.") for n, p in model.named_parameters()}
    decay, no_decay = param_groups(model, weight_decay)  # always two groups, decayed first
    assert {names[id(p)] for p in decay["params"]} == MATRICES
    assert {names[id(p)] for p in no_decay["params"]} == set(names.values()) - MATRICES
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias"} <= {names[id(p)] for p in no_decay["params"]}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (weight_decay, 0.0)


def test_the_optimizer_takes_the_same_steps_as_adamw_built_by_hand():
    torch.manual_seed(0)
    model = Wrapped()
    reference = Wrapped()
    reference.load_state_dict(model.state_dict())
    ours = build_optimizer(model, lr=1e-2, weight_decay=0.05)
    assert ours.defaults["foreach"] is True and not ours.defaults["fused"]  # multi-tensor kernels on a CPU
    named = dict(reference.named_parameters())
    matrices = [named["backbone." + n] for n in sorted(MATRICES)]
    others = [p for n, p in named.items() if n.removeprefix("backbone.") not in MATRICES]
    by_hand = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.05}, {"params": others, "weight_decay": 0.0}],
                                lr=1e-2, betas=(0.9, 0.999), eps=1e-8, foreach=False)  # the per-parameter loop
    images = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        for net, optimizer in ((model, ours), (reference, by_hand)):
            optimizer.zero_grad()
            net.backbone(images).square().mean().backward()
            optimizer.step()
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-7), name
