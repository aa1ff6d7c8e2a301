"""Reading and writing one attention head's weights in timm's fused layout.

timm's ``Attention.qkv`` is ``nn.Linear(C, 3 * H * D)`` whose output is reshaped to (3, H, D): the rows of the
fused weight are q | k | v, each block ordered head by head, ``D`` rows per head. ``Attention.proj`` is
``nn.Linear(H * D, C)``: head ``h`` owns columns ``h * D : (h + 1) * D``. (The authors' code sliced the fused
weight head-major and dropped the bias; this module slices real heads and keeps the bias.)
"""

from __future__ import annotations

import torch
from torch import nn

# One head's parameters: q/k/v weights (D, C), q/k/v biases (D,) (absent without qkv bias), proj columns (C, D).
HEAD_KEYS = ("q_weight", "k_weight", "v_weight", "q_bias", "k_bias", "v_bias", "proj_weight")


def _rows(part: int, head: int, num_heads: int, head_dim: int) -> slice:
    start = (part * num_heads + head) * head_dim
    return slice(start, start + head_dim)


def read_head(attn: nn.Module, head: int) -> dict[str, torch.Tensor]:
    """Copy head ``head``'s q/k/v rows (and biases) and its output-projection columns out of a timm Attention."""
    H, D = int(attn.num_heads), int(attn.head_dim)
    if not 0 <= head < H:
        raise IndexError(f"head {head} out of range for {H} heads")
    weight = attn.qkv.weight.detach()
    out = {f"{p}_weight": weight[_rows(i, head, H, D)].clone() for i, p in enumerate("qkv")}
    if attn.qkv.bias is not None:
        bias = attn.qkv.bias.detach()
        out.update({f"{p}_bias": bias[_rows(i, head, H, D)].clone() for i, p in enumerate("qkv")})
    out["proj_weight"] = attn.proj.weight.detach()[:, head * D : (head + 1) * D].clone()
    return out


@torch.no_grad()
def write_head(attn: nn.Module, slot: int, weights: dict[str, torch.Tensor]) -> None:
    """Overwrite head slot ``slot`` of a timm Attention with ``weights`` (as returned by :func:`read_head`)."""
    H, D = int(attn.num_heads), int(attn.head_dim)
    for i, p in enumerate("qkv"):
        attn.qkv.weight[_rows(i, slot, H, D)].copy_(weights[f"{p}_weight"])
        if attn.qkv.bias is not None and f"{p}_bias" in weights:
            attn.qkv.bias[_rows(i, slot, H, D)].copy_(weights[f"{p}_bias"])
    attn.proj.weight[:, slot * D : (slot + 1) * D].copy_(weights["proj_weight"])


def average_heads(heads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of several heads' weights (the paper's "average" centroid ablation)."""
    return {key: torch.stack([h[key] for h in heads]).mean(dim=0) for key in heads[0]}


def head_vector(attn: nn.Module, head: int) -> torch.Tensor:
    """One flat vector of a head's q, k, v rows and W_O columns (for weight-space similarity), shape (4 * D * C,)."""
    w = read_head(attn, head)
    return torch.cat([w["q_weight"].flatten(), w["k_weight"].flatten(), w["v_weight"].flatten(), w["proj_weight"].t().flatten()])
