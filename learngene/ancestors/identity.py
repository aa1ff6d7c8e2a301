"""An ancestor's identity: a short hash of its weights, recorded in statistics files and checked when they are used.

Two ancestors with the same layers x heads shape (ViT-S/16 and ViT-S/14, or a model and its fine-tuned copy) give
statistics tables of the same shape; only the weights tell them apart. Hashing a few large tensors is enough to
tell any two trained models apart and costs milliseconds. The position embedding is left out on purpose: the same
weights at another resolution are the same ancestor.
"""

from __future__ import annotations

import hashlib

import torch


def _fingerprint_keys(state: dict[str, torch.Tensor]) -> list[str]:
    depth = sum(1 for key in state if key.startswith("blocks.") and key.endswith(".attn.qkv.weight"))
    wanted = ["patch_embed.proj.weight", "blocks.0.attn.qkv.weight", f"blocks.{depth - 1}.mlp.fc2.weight",
              "norm.weight"]
    keys = [key for key in wanted if key in state]
    return keys or sorted(key for key in state if key != "pos_embed")


def weights_fingerprint(model: torch.nn.Module) -> str:
    """16 hex digits of SHA-256 over a few of ``model``'s tensors (names, shapes, float32 bytes); "" on meta."""
    state = model.state_dict()
    digest = hashlib.sha256()
    for key in _fingerprint_keys(state):
        tensor = state[key]
        if tensor.is_meta:
            return ""
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
