"""Pooled features of a frozen model on a :class:`ProbeData`, cached on disk per design.

The feature is what the classifier would see: ``forward_head(forward_features(x), pre_logits=True)``, i.e. the
CLS token after the final norm for a class-token ViT such as the built-in ancestor (average-pooled tokens after
``fc_norm`` for pooling ViTs). The cache key is a digest of the model's architecture and every weight, the data
subset and the precision, so a design is recognised whatever row or command built it, and a code change that
alters a design's weights can never serve stale features.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from learngene.atomic import write_bytes_atomic
from learngene.evaluation.probe_data import ProbeData
from learngene.paths import cache_dir

# Bumped whenever the feature definition or preprocessing changes, so older cache files are never reused.
FEATURE_VERSION = 1
CACHE_SUBDIR = "probe-features"


def model_digest(model: nn.Module) -> str:
    """sha256 of the architecture facts and every tensor (name, shape, dtype, bytes) of ``model``."""
    digest = hashlib.sha256()
    heads = [int(b.attn.num_heads) for b in getattr(model, "blocks", [])]
    facts = (type(model).__name__, heads, getattr(model, "global_pool", None),
             getattr(model, "num_prefix_tokens", None), tuple(getattr(model.patch_embed, "img_size", ())))
    digest.update(repr(facts).encode())
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{name}|{tuple(array.shape)}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def feature_key(model: nn.Module, data: ProbeData, mean, std, precision: str) -> str:
    text = f"v{FEATURE_VERSION}|{model_digest(model)}|{data.key}|{tuple(mean)}|{tuple(std)}|{precision}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_path(key: str) -> Path:
    folder = cache_dir() / CACHE_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.npy"


def read_cached(key: str, num_images: int) -> np.ndarray | None:
    """Cached features for ``key``, or None (missing, unreadable or of the wrong length: recompute)."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return features if features.ndim == 2 and features.shape[0] == num_images else None


def write_cached(key: str, features: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, features.astype(np.float32), allow_pickle=False)
    write_bytes_atomic(cache_path(key), buffer.getvalue())


@torch.inference_mode()
def extract_features(model: nn.Module, data: ProbeData, mean, std, *, device: torch.device | str = "cpu",
                     batch_size: int = 32, bf16: bool = False,
                     progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, C) float32 pooled features of ``data`` (normalised with ``mean``/``std``) under ``model`` in eval mode.

    The model is moved to ``device`` for the pass and back to the CPU afterwards (its training flag restored).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    out = []
    try:
        for start in range(0, data.num_images, batch_size):
            batch = data.images[start:start + batch_size].to(device, non_blocking=True).float().div_(255.0)
            batch = (batch - mean_t) / std_t
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                pooled = model.forward_head(model.forward_features(batch), pre_logits=True)
            out.append(pooled.float().cpu())
            if progress is not None:
                progress(batch.shape[0])
    finally:
        model.to("cpu").train(was_training)
    return torch.cat(out).numpy()


def cached_features(model: nn.Module, data: ProbeData, mean, std, *, device="cpu", batch_size: int = 32,
                    bf16: bool = False, progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, str, bool]:
    """Features of ``model`` on ``data`` from the cache, else computed and cached; returns (features, key, hit)."""
    precision = "bf16" if bf16 else "fp32"
    key = feature_key(model, data, mean, std, precision)
    features = read_cached(key, data.num_images)
    if features is not None:
        return features, key, True
    features = extract_features(model, data, mean, std, device=device, batch_size=batch_size, bf16=bf16,
                                progress=progress)
    write_cached(key, features)
    return features, key, False
