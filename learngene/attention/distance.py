"""Mean attention distance (method.md step 1), computed from post-softmax attention maps."""

from __future__ import annotations

import torch


def _as_grid(grid_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(grid_size, int):
        return grid_size, grid_size
    rows, cols = grid_size
    return int(rows), int(cols)


def patch_distance_matrix(
    grid_size: int | tuple[int, int], patch_size: int, *, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Pixel distance between every pair of patches on the grid, shape (G, G) with G = rows * cols.

    Patches are numbered row-major, as timm flattens them; distance is ``patch_size`` times the Euclidean distance
    between grid positions.
    """
    rows, cols = _as_grid(grid_size)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    positions = torch.stack([r.flatten(), c.flatten()], dim=1).to(dtype=torch.float64)  # (G, 2)
    distance = torch.cdist(positions, positions) * float(patch_size)
    return distance.to(device=device, dtype=dtype)


def per_image_mean_attention_distance(
    attn: torch.Tensor, distance: torch.Tensor, num_prefix_tokens: int = 1
) -> torch.Tensor:
    """MAD of every head on every image: (B, H, N, N) attention -> (B, H) pixels.

    Prefix rows and columns are dropped and the remaining rows are *not* renormalised, so attention that goes to
    the prefix tokens counts as distance 0 (method.md step 1).
    """
    B, H, N, _ = attn.shape
    G = distance.shape[0]
    if N - num_prefix_tokens != G:
        raise ValueError(
            f"attention has {N} tokens but {num_prefix_tokens} prefix tokens + a grid of {G} patches were expected"
        )
    patch_attn = attn[:, :, num_prefix_tokens:, num_prefix_tokens:]  # (B, H, G, G)
    weighted = (patch_attn * distance.to(patch_attn.dtype)).sum(dim=-1)  # (B, H, G): per query patch
    return weighted.mean(dim=-1)  # (B, H)


def mean_attention_distance(
    attn: torch.Tensor,
    grid_size: int | tuple[int, int],
    patch_size: int,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Mean attention distance per head, in pixels, averaged over the batch and the query patches.

    Args:
        attn: post-softmax attention, shape (B, H, N, N), prefix tokens (CLS, registers) first.
        grid_size: patch grid as ``rows`` or ``(rows, cols)``; ``rows * cols + num_prefix_tokens == N``.
        patch_size: patch side in pixels.
        num_prefix_tokens: number of leading non-patch tokens.

    Returns:
        Tensor of shape (H,), pixels.
    """
    if attn.dim() != 4 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attn must have shape (B, H, N, N), got {tuple(attn.shape)}")
    distance = patch_distance_matrix(grid_size, patch_size, device=attn.device, dtype=torch.float32)
    return per_image_mean_attention_distance(attn.float(), distance, num_prefix_tokens).mean(dim=0)
