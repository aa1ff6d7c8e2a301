"""Similarity between heads, within a layer (H x H) or across all layers (LH x LH).

Measures (all return similarities in [0, 1], 1 on the diagonal):
- ``mad``: 1 - |MAD_a - MAD_b| / (max MAD - min MAD over the heads compared): heads that look equally far.
- ``pattern-js``: 1 - Jensen-Shannon divergence (base 2) between the heads' mean relative-offset patterns,
  each normalised to a distribution: heads that look in the same directions at the same ranges.
- ``pattern-cosine``: cosine similarity of the same patterns (non-negative, so in [0, 1]).
- ``weights``: |cosine| between the heads' flattened q, k, v rows and W_O columns (needs the model).
"""

from __future__ import annotations

import numpy as np
import torch

from learngene.errors import LearngeneError
from learngene.head_weights import head_vector

MEASURES = ("mad", "pattern-js", "pattern-cosine", "weights")


def _select(array: np.ndarray, layer: int | None) -> np.ndarray:
    """Rows for one layer (H, ...) or all layers flattened layer-major (L*H, ...)."""
    if layer is None:
        return array.reshape(array.shape[0] * array.shape[1], *array.shape[2:])
    if not 0 <= layer < array.shape[0]:
        raise LearngeneError(f"layer {layer} is out of range 0..{array.shape[0] - 1}")
    return array[layer]


def _mad_similarity(mad: np.ndarray) -> np.ndarray:
    gap = np.abs(mad[:, None] - mad[None, :])
    spread = float(np.ptp(mad)) or 1.0
    return 1.0 - gap / spread


def _distributions(patterns: np.ndarray) -> np.ndarray:
    flat = patterns.reshape(patterns.shape[0], -1).clip(min=0)
    return flat / np.maximum(flat.sum(axis=1, keepdims=True), 1e-12)


def _js_similarity(patterns: np.ndarray) -> np.ndarray:
    p = _distributions(patterns)  # (K, D)
    m = 0.5 * (p[:, None, :] + p[None, :, :])  # (K, K, D)

    def kl(a, b):
        return np.where(a > 0, a * np.log2(np.maximum(a, 1e-300) / np.maximum(b, 1e-300)), 0.0).sum(-1)

    js = 0.5 * kl(p[:, None, :], m) + 0.5 * kl(p[None, :, :], m)
    return 1.0 - np.clip(js, 0.0, 1.0)


def _cosine(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def _weight_vectors(model: torch.nn.Module, layer: int | None) -> np.ndarray:
    layers = range(len(model.blocks)) if layer is None else [layer]
    vectors = [head_vector(model.blocks[layer_idx].attn, h) for layer_idx in layers for h in range(model.blocks[layer_idx].attn.num_heads)]
    return torch.stack(vectors).double().numpy()


def head_similarity(stats, measure: str = "mad", model: torch.nn.Module | None = None,
                    layer: int | None = None) -> np.ndarray:
    """Head-by-head similarity matrix.

    Args:
        stats: :class:`~learngene.attention.statistics.HeadStatistics`.
        measure: one of :data:`MEASURES`.
        model: the ancestor's model (only for ``weights``).
        layer: one layer (H x H), or None for all layers (LH x LH, layer-major order).
    """
    if measure not in MEASURES:
        raise LearngeneError(f"unknown similarity measure {measure!r}; choose one of {', '.join(MEASURES)}")
    if measure == "mad":
        return _mad_similarity(_select(stats.mean_attention_distance, layer))
    if measure in ("pattern-js", "pattern-cosine"):
        if stats.mean_pattern.size == 0:
            raise LearngeneError("these statistics hold no attention patterns; recompute them with `learngene analyze`")
        patterns = _select(stats.mean_pattern, layer)
        return _js_similarity(patterns) if measure == "pattern-js" else _cosine(_distributions(patterns))
    if model is None:
        raise LearngeneError("the weights measure needs the ancestor model")
    return np.abs(_cosine(_weight_vectors(model, layer)))
