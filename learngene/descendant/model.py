"""The descendant model: a plain timm VisionTransformer whose layers may have different head counts.

timm's ``Block`` does not pass a head dim to its attention, so a block with H_d heads of the ancestor's head dim D
(attention width H_d D, which may differ from the token width C) cannot be asked for directly. The model is
therefore created by timm with the ancestor's architecture name and the descendant's depth, resolution and
classes, and each block's ``attn`` is replaced by a timm ``Attention(C, num_heads=H_d, attn_head_dim=D)``.
Every module stays a stock timm module under timm's names (``patch_embed``, ``cls_token``, ``pos_embed``,
``blocks[i].norm1/attn.qkv/attn.proj/norm2/mlp.fc1/mlp.fc2``, ``norm``, ``head``), so the model keeps timm's
whole surface (``forward_features``, ``forward_head``, ``reset_classifier``, ``no_weight_decay``) and works with
timm's optimizer factories, EMA and checkpoint tools. Rebuilding it needs timm and PyTorch only: the function
below is the whole recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def swap_attention(block: nn.Module, num_heads: int, head_dim: int, *, init: bool = True) -> None:
    """Replace ``block.attn`` with a timm ``Attention`` of ``num_heads`` heads of ``head_dim``, same options.

    Args:
        block: a timm ViT ``Block`` whose attention is a plain timm ``Attention``.
        num_heads: heads of the new attention.
        head_dim: per-head width (the ancestor's).
        init: initialise the new projections the way timm initialises a ViT (truncated normal, std 0.02, zero
            bias); skipped on the meta device, where there are no values.
    """
    from timm.layers import Attention
    from timm.models.vision_transformer import init_weights_vit_timm

    old = block.attn
    device = old.qkv.weight.device
    new = Attention(
        old.qkv.in_features,
        num_heads=num_heads,
        attn_head_dim=head_dim,
        dim_out=old.proj.out_features,
        qkv_bias=old.qkv.bias is not None,
        proj_bias=old.proj.bias is not None,
        attn_drop=old.attn_drop.p,
        proj_drop=old.proj_drop.p,
        device=device,
        dtype=old.qkv.weight.dtype,
    )
    new.fused_attn = old.fused_attn
    if init and device.type != "meta":
        init_weights_vit_timm(new.qkv)
        init_weights_vit_timm(new.proj)
    block.attn = new


def create_descendant_model(
    arch: str,
    heads_per_layer: Sequence[int],
    *,
    head_dim: int,
    img_size: int,
    num_classes: int,
    device: str | torch.device | None = None,
    qkv_bias: bool | None = None,
    share_layers: int | None = None,
    **timm_kwargs,
) -> nn.Module:
    """Build a randomly initialised descendant (timm's own init everywhere).

    Args:
        arch: the ancestor's timm architecture name (keeps its norms, layer scale, tokens, pooling, biases).
        heads_per_layer: H_d of each layer; the depth is its length.
        head_dim: per-head width D (the ancestor's).
        img_size: input resolution in pixels.
        num_classes: classifier outputs.
        device: ``"meta"`` builds the skeleton without values (for loading weights with ``assign=True``).
        qkv_bias: None keeps the architecture's qkv bias; False builds every qkv projection without one (the
            authors' descendants, ``parity="authors"``).
        share_layers: None for a plain ViT; r for a weight-transformation descendant whose groups of r consecutive
            layers share one attention and FFN (:mod:`learngene.descendant.multiplexed`).
        timm_kwargs: further keyword arguments for ``timm.create_model`` (e.g. ``drop_path_rate``).
    """
    import timm

    from learngene.descendant.arch import check_supported

    heads = [int(h) for h in heads_per_layer]
    if qkv_bias is not None:
        timm_kwargs["qkv_bias"] = bool(qkv_bias)
    model = timm.create_model(
        arch, pretrained=False, depth=len(heads), img_size=img_size, num_classes=num_classes, device=device,
        **timm_kwargs,
    )
    check_supported(model)
    for block, count in zip(model.blocks, heads, strict=True):
        swap_attention(block, count, head_dim)
    if share_layers is not None:
        from learngene.descendant.multiplexed import multiplex

        multiplex(model, int(share_layers))
    # Data configs (timm.data.resolve_data_config) read the input size and classes from here.
    model.pretrained_cfg = {**dict(model.pretrained_cfg or {}), "input_size": (3, img_size, img_size),
                            "num_classes": num_classes, "fixed_input_size": True}
    return model


def heads_of(model: nn.Module) -> list[int]:
    """Heads per layer of a (descendant) ViT."""
    return [int(block.attn.num_heads) for block in model.blocks]
