"""Architecture facts of a ViT family, for sizing descendants without building them.

Everything in a descendant's parameter count is either per model (patch embedding, tokens, final norms), per layer
(norms, layer scale, FFN, output-projection bias) or per head (a head's q/k/v rows and biases and its W_O
columns), plus the position embedding (depends on the resolution) and the classifier (depends on the classes).
:class:`ArchFacts` holds those per-part counts, read off a timm model once. The model is built on PyTorch's
``meta`` device (no memory, no initialisation), so reading facts costs well under a second once per
architecture and nothing afterwards (cached).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from learngene.ancestors.summary import AncestorSummary
from learngene.errors import LearngeneError

if TYPE_CHECKING:  # torch and timm are imported only for architectures the table below does not know
    import torch
    from torch import nn


@dataclass(frozen=True)
class ArchFacts:
    """Per-part parameter counts and shapes of a ViT family (independent of depth, heads, resolution, classes).

    Attributes:
        embed_dim: token width C.
        head_dim: per-head width D.
        mlp_hidden: FFN hidden width M.
        patch_size: patch side P in pixels.
        in_chans: input channels.
        num_prefix_tokens: class + register tokens.
        pos_embed_prefix: whether the position embedding has entries for the prefix tokens.
        has_pos_embed: whether there is a learned position embedding at all.
        embed_params: patch embedding + class token + register tokens.
        block_fixed_params: one block's parameters that do not depend on its head count.
        per_head_params: one head's q/k/v rows (and biases) plus its W_O columns.
        final_params: pre-norm, final norm and fc-norm together.
        qkv_bias_per_head: the part of ``per_head_params`` that is q/k/v bias (3 D, or 0 without qkv bias).
        layer_own_params: the part of ``block_fixed_params`` in the block's norms and layer scale, which a
            weight-transformation layer keeps for itself while it shares the attention and FFN.
    """

    embed_dim: int
    head_dim: int
    mlp_hidden: int
    patch_size: int
    in_chans: int
    num_prefix_tokens: int
    pos_embed_prefix: bool
    has_pos_embed: bool
    embed_params: int
    block_fixed_params: int
    per_head_params: int
    final_params: int
    qkv_bias_per_head: int = 0
    layer_own_params: int = 0

    def without_qkv_bias(self) -> ArchFacts:
        """The same family built with ``qkv_bias=False`` (the authors' descendants)."""
        return replace(self, per_head_params=self.per_head_params - self.qkv_bias_per_head, qkv_bias_per_head=0)

    def pos_embed_params(self, img_size: int) -> int:
        if not self.has_pos_embed:
            return 0
        grid = (img_size // self.patch_size) ** 2
        return (grid + (self.num_prefix_tokens if self.pos_embed_prefix else 0)) * self.embed_dim

    @classmethod
    def from_model(cls, model: nn.Module) -> ArchFacts:
        """Read the facts off a timm VisionTransformer (real or on the meta device)."""
        check_supported(model)
        block = model.blocks[0]
        attn = block.attn
        heads, dim = int(attn.num_heads), int(model.embed_dim)
        numel = _numel
        qkv = numel(attn.qkv.weight) + (numel(attn.qkv.bias) if attn.qkv.bias is not None else 0)
        head_dependent = qkv + numel(attn.proj.weight)
        tokens = sum(numel(t) for t in (model.cls_token, getattr(model, "reg_token", None)) if t is not None)
        patch = model.patch_embed.patch_size
        return cls(
            embed_dim=dim,
            head_dim=int(attn.head_dim),
            mlp_hidden=int(block.mlp.fc1.out_features),
            patch_size=int(patch[0]),
            in_chans=int(model.patch_embed.proj.in_channels),
            num_prefix_tokens=int(model.num_prefix_tokens),
            pos_embed_prefix=not bool(getattr(model, "no_embed_class", False)),
            has_pos_embed=model.pos_embed is not None,
            embed_params=sum(numel(p) for p in model.patch_embed.parameters()) + tokens,
            block_fixed_params=sum(numel(p) for p in block.parameters()) - head_dependent,
            per_head_params=head_dependent // heads,
            final_params=sum(numel(p) for m in (model.norm_pre, model.norm, model.fc_norm) for p in m.parameters()),
            qkv_bias_per_head=numel(attn.qkv.bias) // heads if attn.qkv.bias is not None else 0,
            layer_own_params=sum(numel(p) for name in ("norm1", "norm2", "ls1", "ls2")
                                 for p in getattr(block, name).parameters()),
        )


def _numel(tensor: torch.Tensor) -> int:
    return int(tensor.numel())


def check_supported(model: nn.Module) -> None:
    """Refuse ViT variants whose heads cannot be resized by swapping in a plain timm ``Attention``."""
    from timm.layers import Attention
    from torch import nn

    reasons = []
    for index, block in enumerate(getattr(model, "blocks", [])):
        attn = getattr(block, "attn", None)
        if type(attn) is not Attention:
            reasons.append(f"block {index} uses {type(attn).__name__}, not timm's Attention")
        elif not all(isinstance(getattr(attn, n), nn.Identity) for n in ("q_norm", "k_norm", "norm")) or attn.gate is not None:
            reasons.append(f"block {index} has q/k normalisation or gating")
        if reasons:
            break
    if getattr(model, "attn_pool", None) is not None:
        reasons.append("it pools with an attention module")
    if getattr(model, "patch_embed", None) is None or not isinstance(getattr(model.patch_embed, "proj", None), nn.Conv2d):
        reasons.append("its patch embedding is not a single convolution")
    if reasons:
        raise LearngeneError(
            f"descendants of this ancestor cannot be built: {reasons[0]}; choose a plain ViT such as "
            "deit_small_patch16_224 or vit_small_patch14_dinov2"
        )


@functools.lru_cache(maxsize=32)
def _facts_for(arch: str, img_size: int) -> ArchFacts:
    known = KNOWN_VITS.get(arch)
    if known is not None:
        return known.facts()
    import timm

    model = timm.create_model(arch, pretrained=False, img_size=img_size, num_classes=0, device="meta")
    return ArchFacts.from_model(model)


def arch_facts(ancestor: AncestorSummary) -> ArchFacts:
    """Facts of ``ancestor``'s architecture (from :data:`KNOWN_VITS`, else built once on the meta device; cached)."""
    facts = _facts_for(ancestor.arch.split(".")[0], ancestor.img_size)
    if (facts.embed_dim, facts.head_dim, facts.patch_size) != (ancestor.embed_dim, ancestor.head_dim, ancestor.patch_size):
        raise LearngeneError(  # a weights file whose architecture name does not describe it
            f"{ancestor.arch} does not match the ancestor's shapes; load the ancestor with the right architecture"
        )
    return facts


@dataclass(frozen=True)
class ViTShape:
    """A plain timm ViT written out: class token with its own position entry, FFN 4 C, head dim 64, every bias,
    LayerNorms with bias, token pooling (no fc-norm), optional layer scale. The defaults are timm's for the name."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    img_size: int
    num_classes: int
    layer_scale: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def facts(self) -> ArchFacts:
        C, P, D = self.embed_dim, self.patch_size, self.embed_dim // self.num_heads
        M = 4 * C
        own = 2 * (2 * C) + (2 * C if self.layer_scale else 0)  # norm1, norm2 and the two layer-scale vectors
        return ArchFacts(
            embed_dim=C, head_dim=D, mlp_hidden=M, patch_size=P, in_chans=3, num_prefix_tokens=1,
            pos_embed_prefix=True, has_pos_embed=True,
            embed_params=C * 3 * P * P + C + C,  # conv weight + bias, class token
            block_fixed_params=own + (C * M + M) + (M * C + C) + C,  # + fc1, fc2, proj bias
            per_head_params=3 * D * C + 3 * D + C * D,
            final_params=2 * C, qkv_bias_per_head=3 * D, layer_own_params=own,
        )


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# The architectures sized without torch, as timm builds them by default (img size, classes, the pretrained config's
# normalisation). tests/descendant/test_size_torch_free.py checks every row against timm's own model, field by
# field; any other name (or a name with a pretrained tag) is read off a timm model on the meta device instead.
KNOWN_VITS = {
    "deit_tiny_patch16_224": ViTShape(192, 12, 3, 16, 224, 1000, False, *_IMAGENET),
    "deit_small_patch16_224": ViTShape(384, 12, 6, 16, 224, 1000, False, *_IMAGENET),
    "deit_base_patch16_224": ViTShape(768, 12, 12, 16, 224, 1000, False, *_IMAGENET),
    "vit_tiny_patch16_224": ViTShape(192, 12, 3, 16, 224, 1000, False, *_HALF),
    "vit_small_patch16_224": ViTShape(384, 12, 6, 16, 224, 1000, False, *_HALF),
    "vit_base_patch16_224": ViTShape(768, 12, 12, 16, 224, 1000, False, *_HALF),
    "vit_small_patch14_dinov2": ViTShape(384, 12, 6, 14, 518, 0, True, *_IMAGENET),
    "vit_base_patch14_dinov2": ViTShape(768, 12, 12, 14, 518, 0, True, *_IMAGENET),
}


def deit_facts(embed_dim: int) -> ArchFacts:
    """Facts of a DeiT (timm ``deit_*_patch16_224``) of width ``embed_dim`` (the scale table's reference rows)."""
    return ViTShape(embed_dim, 12, embed_dim // 64, 16, 224, 1000, False, *_IMAGENET).facts()


# Reference models of the paper's scale discussion: (label, embed_dim, heads, depth).
DEIT_REFERENCES = (("DeiT-Ti", 192, 3, 12), ("DeiT-S", 384, 6, 12), ("DeiT-B", 768, 12, 12))


def summary_without_weights(spec: str, arch: str | None = None) -> AncestorSummary:
    """An ancestor's summary from its architecture alone: enough for sizing, no weights read.

    Lets ``learngene size`` answer instantly and offline even for hub models whose weights are not downloaded:
    architectures in :data:`KNOWN_VITS` are written out without importing torch or timm; others are read off a
    timm model on the meta device. ``num_classes`` is what the architecture builds by default (the built-in backbone
    has none).
    """
    from learngene.ancestors import builtin
    from learngene.ancestors.summary import parse_spec

    kind, model_arch, _ = parse_spec(spec, arch)
    known = KNOWN_VITS.get(model_arch)
    if known is not None:
        img_size = builtin.IMG_SIZE if kind == "builtin" else known.img_size
        num_classes = 0 if kind == "builtin" else known.num_classes
        return _written_out_summary(known, spec, model_arch, img_size, num_classes, pretrained=kind != "random")
    import timm

    from learngene.ancestors.loading import summarize

    if kind == "builtin":
        model = timm.create_model(builtin.ARCH, pretrained=False, img_size=builtin.IMG_SIZE, num_classes=0, device="meta")
    else:
        if not timm.is_model(model_arch.split(".")[0]):
            raise LearngeneError(f"unknown model name {model_arch!r}; see timm.list_models('*vit*')")
        model = timm.create_model(model_arch, pretrained=False, device="meta")
    return summarize(model, spec, model_arch, pretrained=kind != "random")


def _written_out_summary(
    shape: ViTShape, spec: str, arch: str, img_size: int, num_classes: int, pretrained: bool
) -> AncestorSummary:
    from learngene.descendant.size import count_params

    facts, grid = shape.facts(), img_size // shape.patch_size
    return AncestorSummary(
        spec=spec, arch=arch, num_layers=shape.depth, num_heads=shape.num_heads, embed_dim=shape.embed_dim,
        head_dim=facts.head_dim, mlp_hidden_dim=facts.mlp_hidden, patch_size=shape.patch_size, img_size=img_size,
        grid_size=(grid, grid), num_prefix_tokens=1, num_reg_tokens=0, has_class_token=True,
        layer_scale=shape.layer_scale, qkv_bias=True, num_classes=num_classes,
        num_params=count_params(facts, [shape.num_heads] * shape.depth, img_size, num_classes),
        mean=shape.mean, std=shape.std, pretrained=pretrained,
    )
