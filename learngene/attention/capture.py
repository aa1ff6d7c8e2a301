"""Capturing post-softmax attention from timm ViT blocks without keeping it.

timm's attention uses fused scaled-dot-product attention by default, which never forms the probabilities. The
capture context switches every attention module to its explicit path (``fused_attn = False``) and hooks its
``attn_drop`` module, whose input is exactly softmax(q k^T * scale). Each map goes straight to a callback that
reduces it; nothing is stored here. On exit every module gets back its own ``fused_attn`` value and the hooks
are removed, so the model is left as it was found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The attention module of every transformer block, in depth order."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError("model has no .blocks: not a timm VisionTransformer")
    modules = [block.attn for block in blocks]
    for index, attn in enumerate(modules):
        if not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
            raise ValueError(f"blocks[{index}].attn is not a timm Attention with an explicit softmax path")
    return modules


@contextmanager
def capture_attention(
    model: nn.Module, on_attention: Callable[[int, torch.Tensor], None], layers: set[int] | None = None
) -> Iterator[None]:
    """Within the context, every forward calls ``on_attention(layer, attn)`` with attn of shape (B, H, N, N).

    Args:
        model: a timm VisionTransformer.
        on_attention: receives the layer index and that layer's post-softmax attention.
        layers: restrict capture to these layers (others keep the fused path).
    """
    modules = attention_modules(model)
    saved = [attn.fused_attn for attn in modules]
    handles = []
    try:
        for index, attn in enumerate(modules):
            if layers is not None and index not in layers:
                continue
            attn.fused_attn = False
            handles.append(
                attn.attn_drop.register_forward_hook(
                    lambda module, inputs, output, index=index: on_attention(index, inputs[0])
                )
            )
        yield
    finally:
        for handle in handles:
            handle.remove()
        for attn, fused in zip(modules, saved, strict=True):
            attn.fused_attn = fused
