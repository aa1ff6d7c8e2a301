"""Weight-Transformation descendants (MiniViT-style weight multiplexing): shared blocks, identity start, sizes, I/O,
training. The references are independent: the ancestor's blocks evaluated by hand from their tensors, parameter
counts summed off the ancestor's modules, gradients of an untied copy."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learngene.descendant import (
    DescendantSpec,
    build_descendant,
    descendant_size,
    load_descendant,
    save_descendant,
)
from learngene.errors import LearngeneError

WT = "weight-transformation"


def _norm_by_hand(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.LayerNorm):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + module.eps) * module.weight + module.bias
    # timm's RmsNorm (test_vit4): x / rms(x) * weight
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.eps) * module.weight


def _gamma(block: nn.Module, name: str) -> torch.Tensor | float:
    scale = getattr(block, name)
    return scale.gamma if hasattr(scale, "gamma") else 1.0


def block_by_hand(block: nn.Module, x: torch.Tensor, mix_logits=None, mix_probs=None) -> torch.Tensor:
    """A timm ViT block from its tensors alone, head by head; ``mix_*`` (H, H) apply the MiniViT transformations
    written as sums over heads (logits'[h] = sum_j M[h, j] logits[j])."""
    attn = block.attn
    H, D = int(attn.num_heads), int(attn.head_dim)
    h = _norm_by_hand(block.norm1, x)
    qkv = h @ attn.qkv.weight.T + attn.qkv.bias  # (B, N, 3 H D): q of every head, then k, then v
    logits = [qkv[..., i * D:(i + 1) * D] @ qkv[..., H * D + i * D:H * D + (i + 1) * D].transpose(-1, -2) / D ** 0.5
              for i in range(H)]
    if mix_logits is not None:
        logits = [sum(mix_logits[g, j] * logits[j] for j in range(H)) for g in range(H)]
    probs = [torch.softmax(t, dim=-1) for t in logits]
    if mix_probs is not None:
        probs = [sum(mix_probs[g, j] * probs[j] for j in range(H)) for g in range(H)]
    heads = [probs[i] @ qkv[..., 2 * H * D + i * D:2 * H * D + (i + 1) * D] for i in range(H)]
    x = x + _gamma(block, "ls1") * (torch.cat(heads, dim=-1) @ attn.proj.weight.T + attn.proj.bias)
    h = _norm_by_hand(block.norm2, x)
    mlp = block.mlp
    hidden = F.gelu(h @ mlp.fc1.weight.T + mlp.fc1.bias)
    return x + _gamma(block, "ls2") * (hidden @ mlp.fc2.weight.T + mlp.fc2.bias)


@pytest.fixture(scope="module")
def multiplexed(tiny_ancestor):
    spec = DescendantSpec(depth=6, init=WT, num_classes=5, seed=3)
    return build_descendant(tiny_ancestor, spec)


def _tokens(ancestor, batch: int = 2, seed: int = 0) -> torch.Tensor:
    summary = ancestor.summary
    tokens = (summary.img_size // summary.patch_size) ** 2 + ancestor.model.num_prefix_tokens
    return torch.randn(batch, tokens, summary.embed_dim, generator=torch.Generator().manual_seed(seed))


def test_shared_parameters_are_one_tensor_per_group(multiplexed):
    model = multiplexed.model
    assert multiplexed.spec.share_layers == 2 and len(model.shared_blocks) == 3
    for group in range(3):
        first, second = model.blocks[2 * group], model.blocks[2 * group + 1]
        for name in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.bias"):
            a, b = first.get_parameter(name), second.get_parameter(name)
            assert a is b and a.data_ptr() == b.data_ptr()
        assert first.norm1.weight is not second.norm1.weight  # the norms are per layer
        assert first.mix_logits is not second.mix_logits
    assert model.blocks[1].attn.qkv.weight is not model.blocks[2].attn.qkv.weight  # groups do not share
    qkv = [name for name, _ in model.named_parameters() if name.endswith("attn.qkv.weight")]
    assert qkv == ["shared_blocks.0.attn.qkv.weight", "shared_blocks.1.attn.qkv.weight",
                   "shared_blocks.2.attn.qkv.weight"]


def test_each_layer_starts_as_the_ancestor_block_it_inherits(multiplexed, tiny_ancestor):
    x = _tokens(tiny_ancestor)
    ancestor_blocks = tiny_ancestor.model.blocks
    with torch.no_grad():
        for layer, block in enumerate(multiplexed.model.blocks):
            source = ancestor_blocks[2 * (layer // 2)]  # group g shares ancestor block 2 g
            expected = block_by_hand(source, x)
            torch.testing.assert_close(source(x), expected, rtol=1e-5, atol=1e-5)  # the reference is right
            torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
            assert multiplexed.config["ffn_sources"][layer]["layer"] == 2 * (layer // 2)


def test_the_transformations_mix_heads_before_and_after_the_softmax(multiplexed, tiny_ancestor):
    x = _tokens(tiny_ancestor, seed=1)
    block = multiplexed.model.blocks[3]
    generator = torch.Generator().manual_seed(5)
    pre = torch.eye(3) + 0.3 * torch.randn(3, 3, generator=generator)
    post = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]])  # head 0 reads head 1's map ...
    with torch.no_grad():
        saved = block.mix_logits.clone(), block.mix_probs.clone()
        block.mix_logits.copy_(pre)
        block.mix_probs.copy_(post)
        try:
            expected = block_by_hand(tiny_ancestor.model.blocks[2], x, mix_logits=pre, mix_probs=post)
            torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
            # ... and the layer sharing its weights is untouched by this layer's transformations.
            torch.testing.assert_close(multiplexed.model.blocks[2](x), block_by_hand(tiny_ancestor.model.blocks[2], x))
        finally:
            block.mix_logits.copy_(saved[0])
            block.mix_probs.copy_(saved[1])


def test_save_and_load_round_trip(tiny_ancestor, tmp_path):
    multiplexed = build_descendant(tiny_ancestor, DescendantSpec(depth=6, init=WT, num_classes=5))
    model = multiplexed.model.eval()
    with torch.no_grad():  # non-trivial transformations, so the round trip has something to lose
        for block in model.blocks:
            block.mix_logits.add_(0.05 * torch.randn(block.mix_logits.shape))
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    save_descendant(multiplexed, tmp_path / "desc")
    assert json.loads((tmp_path / "desc" / "config.json").read_text())["timm"]["share_layers"] == 2
    loaded = load_descendant(tmp_path / "desc").model
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert loaded.blocks[4].attn.qkv.weight is loaded.blocks[5].attn.qkv.weight  # still shared after loading
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_size_counts_shared_weights_once(multiplexed, tiny_ancestor):
    """Hand count off the ancestor's own modules: 3 groups of (attention + FFN), 6 layers of own norms and layer
    scale plus two 3 x 3 mixing matrices, the embeddings, the final norms and a 5-class classifier."""
    model = tiny_ancestor.model

    def numel(module):
        return sum(p.numel() for p in module.parameters())

    block = model.blocks[0]
    shared = numel(block.attn) + numel(block.mlp)
    own = sum(numel(getattr(block, name)) for name in ("norm1", "norm2", "ls1", "ls2"))
    outside = numel(model.patch_embed) + model.reg_token.numel() + model.pos_embed.numel() + numel(model.norm)
    outside += numel(model.fc_norm)
    classifier = 96 * 5 + 5
    params = outside + 3 * shared + 6 * (own + 2 * 3 * 3) + classifier
    slot = outside + 3 * shared + 6 * own
    distinct = outside + 3 * shared + 3 * own  # a group's second layer copies the same norms again
    size = descendant_size(tiny_ancestor.summary, DescendantSpec(depth=6, init=WT, num_classes=5))
    assert (size.params, size.inherited_params, size.inherited_distinct_params) == (params, slot, distinct)
    assert sum(p.numel() for p in multiplexed.model.parameters()) == params
    config = multiplexed.config
    assert (config["params"], config["inherited_params"], config["inherited_distinct_params"]) == (params, slot, distinct)
    tokens = size.tokens
    assert size.macs_breakdown["head_mixing"] == 6 * 2 * 3 * 3 * tokens * tokens


def test_gradient_reaches_shared_weights_from_every_layer(multiplexed, tiny_ancestor):
    """The shared qkv's gradient equals the sum of the gradients two untied copies of it get (an ordinary ViT
    with the same values: at the identity transformations the two compute the same function)."""
    from learngene.descendant.model import create_descendant_model

    summary = tiny_ancestor.summary
    model = build_descendant(tiny_ancestor, DescendantSpec(depth=4, init=WT, num_classes=5)).model
    untied = create_descendant_model(summary.arch, [3] * 4, head_dim=summary.head_dim, img_size=32, num_classes=5)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("shared_blocks."):
            group, rest = key.split(".", 2)[1:]
            for layer in (2 * int(group), 2 * int(group) + 1):
                state[f"blocks.{layer}.{rest}"] = value
        elif "mix_" not in key:
            state[key] = value
    untied.load_state_dict(state, strict=True)
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    model(images).square().sum().backward()
    untied(images).square().sum().backward()
    for group in range(2):
        first = untied.blocks[2 * group].attn.qkv.weight.grad
        second = untied.blocks[2 * group + 1].attn.qkv.weight.grad
        assert first.abs().sum() > 0 and second.abs().sum() > 0
        torch.testing.assert_close(model.shared_blocks[group].attn.qkv.weight.grad, first + second,
                                   rtol=1e-4, atol=1e-5)
        assert model.blocks[2 * group + 1].mix_probs.grad.abs().sum() > 0  # the transformations train too


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(depth=5), "multiple of 2 .*use --depth 4 or 6"),
        (dict(depth=6, width_ratio=1.5), "keeps the ancestor's 3 heads"),
        (dict(depth=6, share_layers=4), "multiple of 4 .*--depth 4 or 8"),
        (dict(depth=9, share_layers=0), "share_layers must be"),
    ],
)
def test_impossible_configurations_are_one_line(tiny_ancestor, options, message):
    with pytest.raises(LearngeneError, match=message) as caught:
        DescendantSpec(init=WT, **options).resolve(tiny_ancestor.summary)
    assert "\n" not in str(caught.value)


def test_share_layers_belongs_to_weight_transformation_only(tiny_ancestor):
    with pytest.raises(LearngeneError, match="only applies to --init weight-transformation"):
        DescendantSpec(depth=4, init="scratch", share_layers=2).resolve(tiny_ancestor.summary)
    assert DescendantSpec(depth=4, init="scratch").resolve(tiny_ancestor.summary).share_layers is None


def test_build_from_the_command_line_and_train_one_step(tmp_path, capsys):
    """`learngene build --init weight-transformation`; `learngene train --descendant` accepts it; one optimizer
    step of the training engine those runs execute changes the shared weights, and the checkpoint stores them once."""
    from learngene.cli import main
    from learngene.training.config import TrainConfig
    from learngene.training.worker import run_training

    out = tmp_path / "desc"
    code = main(["build", "--ancestor", "random:test_vit4", "--img-size", "32", "--depth", "4", "--num-classes", "10",
                 "--init", WT, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    train = ["train", "--descendant", str(out), "--dataset", "digits", "--img-size", "32", "--max-steps", "1",
             "--batch-size", "8", "--workers", "0", "--device", "cpu", "--lr", "1e-2", "--warmup-epochs", "0"]
    assert main(train + ["--dry-run", "--json", "--runs-dir", str(tmp_path / "runs")]) == 0
    config = TrainConfig.from_dict(json.loads(capsys.readouterr().out)["config"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config.to_yaml(run_dir / "config.yaml")
    before = load_descendant(out).model.state_dict()
    result = run_training(run_dir)
    assert result["state"] == "succeeded" and result["step"] == 1, result
    after = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert sum(1 for key in after if key.endswith("attn.qkv.weight")) == 2  # two groups, stored once each
    assert not torch.equal(after["shared_blocks.0.attn.qkv.weight"], before["shared_blocks.0.attn.qkv.weight"])
    assert not torch.equal(after["blocks.1.mix_logits"], before["blocks.1.mix_logits"])
