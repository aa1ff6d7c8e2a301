"""What learngene knows about an ancestor as plain values, in a torch-free module.

:class:`AncestorSummary` is read off a timm model (:func:`learngene.ancestors.loading.summarize`) or, for the
architectures :mod:`learngene.descendant.arch` knows, written out from the architecture without importing torch, so
cheap commands (``learngene size``) can describe an ancestor in milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from learngene.ancestors import builtin
from learngene.errors import LearngeneError

BUILTIN = "builtin"
RANDOM_PREFIX = "random:"


@dataclass(frozen=True)
class AncestorSummary:
    """What the rest of learngene needs to know about an ancestor, as plain JSON-able values."""

    spec: str
    arch: str
    num_layers: int
    num_heads: int  # per layer (timm ViTs are uniform)
    embed_dim: int
    head_dim: int
    mlp_hidden_dim: int
    patch_size: int
    img_size: int
    grid_size: tuple[int, int]
    num_prefix_tokens: int
    num_reg_tokens: int
    has_class_token: bool
    layer_scale: bool
    qkv_bias: bool
    num_classes: int
    num_params: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool
    # Hash of the weights (identity.weights_fingerprint); "" for random weights, which have no identity beyond
    # their name, and for summaries read off an architecture alone.
    weights_sha256: str = ""

    @property
    def heads_per_layer(self) -> list[int]:
        return [self.num_heads] * self.num_layers

    def to_dict(self) -> dict:
        data = asdict(self)
        data["grid_size"] = list(self.grid_size)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AncestorSummary:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["grid_size"] = tuple(fields["grid_size"])
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return cls(**fields)


def parse_spec(spec: str, arch: str | None = None) -> tuple[str, str | None, str | None]:
    """Split a spec into (kind, arch, path) with kind in builtin | random | file | hub."""
    spec = spec.strip()
    if spec == BUILTIN:
        return "builtin", builtin.ARCH, None
    if spec.startswith(RANDOM_PREFIX):
        return "random", spec[len(RANDOM_PREFIX) :], None
    path_part, _, arch_part = spec.rpartition("@") if "@" in spec else (spec, "", "")
    looks_like_path = "/" in path_part or os.sep in path_part or Path(path_part).suffix in (
        ".safetensors", ".pth", ".pt", ".bin"
    ) or Path(path_part).exists()
    if looks_like_path:
        file_arch = arch_part or arch
        if not file_arch:
            raise LearngeneError(
                f"a weights file needs its architecture: write {path_part}@ARCH (e.g. @deit_small_patch16_224) "
                "or pass --arch"
            )
        return "file", file_arch, path_part
    return "hub", spec, None
