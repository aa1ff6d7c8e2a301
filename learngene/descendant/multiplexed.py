"""Weight-Transformation: the paper's Table 2 baseline, MiniViT-style weight multiplexing.

Groups of ``share_layers`` consecutive layers use *one* attention (qkv, W_O) and *one* FFN, stored once; what each
layer keeps for itself is small: its two LayerNorms, its layer scale (when the family has one), and two
*weight transformations* of its attention, as MiniViT's Mini-DeiT (and the authors' ``mini_vision_transformer.py``,
a copy of it) define them: an (H, H) matrix that mixes the heads' attention logits before the softmax and another
that mixes the heads' attention probabilities after it (their 1x1 convolutions across heads, no bias). Their file
has no transformation in the FFN (MiniViT's paper also describes a depth-wise one there), so neither has this one.

Departures from the authors' code (docs/fidelity.md): their file is never used to build from an ancestor (the one
call is commented out, builds a plain 12-layer ViT from random init and would crash with sharing on), so this
project decides the initialisation: group g shares the ancestor block ``g * share_layers`` (attention and FFN) and
each of its layers takes that block's norms and layer scale; both transformations start as the identity (theirs
start as small random matrices, which would scramble the inherited attention). With the transformations at their
initial values every layer therefore computes exactly what its source ancestor block computes.

The model stays a timm ``VisionTransformer``: ``model.shared_blocks[g]`` holds group g's attention and FFN (the only
place they are registered, so ``state_dict`` and ``parameters()`` hold each shared tensor once) and
``model.blocks[l]`` is a :class:`MultiplexedBlock` that reaches them through an unregistered reference and exposes
them as ``.attn`` and ``.mlp`` like a timm block.
"""

from __future__ import annotations

import torch
from torch import nn

from learngene.descendant.inherit import InitRecord, copy_model_tensors
from learngene.descendant.spec import DescendantSpec
from learngene.errors import LearngeneError

SHARED_ATTR = "shared_blocks"
# A layer's own tensors besides its transformations (timm names inside a block; present only when the family has
# them). Everything else of a block (attn.*, mlp.*) lives in the group's SharedWeights.
OWN_TENSORS = ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1.gamma", "ls2.gamma")


class SharedWeights(nn.Module):
    """One group's attention (a timm ``Attention``) and FFN (a timm ``Mlp``), used by every layer of the group."""

    def __init__(self, attn: nn.Module, mlp: nn.Module):
        super().__init__()
        self.attn = attn
        self.mlp = mlp


class MultiplexedBlock(nn.Module):
    """A pre-norm ViT block whose attention and FFN weights belong to a :class:`SharedWeights`.

    Attributes:
        norm1, norm2, ls1, ls2, drop_path1, drop_path2: this layer's own modules (timm's names, so drop path and
            checkpoint tools treat the block like a timm ``Block``).
        mix_logits: (H, H) weight transformation of the attention logits before the softmax:
            logits'[h] = sum_j mix_logits[h, j] logits[j]. Starts as the identity.
        mix_probs: (H, H) the same across the heads' attention probabilities after the softmax. Starts as the
            identity.
    """

    def __init__(self, block: nn.Module, shared: SharedWeights):
        super().__init__()
        for name in ("norm1", "ls1", "drop_path1", "norm2", "ls2", "drop_path2"):
            setattr(self, name, getattr(block, name))
        heads = int(shared.attn.num_heads)
        like = shared.attn.qkv.weight
        self.mix_logits = nn.Parameter(torch.eye(heads, device=like.device, dtype=like.dtype))
        self.mix_probs = nn.Parameter(torch.eye(heads, device=like.device, dtype=like.dtype))
        # A tuple, not an attribute nn.Module would register: the shared weights must be stored (and counted,
        # saved, moved) once, under model.shared_blocks, however many layers use them.
        self._shared = (shared,)

    @property
    def shared(self) -> SharedWeights:
        return self._shared[0]

    @property
    def attn(self) -> nn.Module:
        return self._shared[0].attn

    @property
    def mlp(self) -> nn.Module:
        return self._shared[0].mlp

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head self-attention with the shared projections and this layer's head mixing.

        Args:
            x: (B, N, C) normalised tokens.

        Returns:
            (B, N, C) the attention branch's output before layer scale and drop path.
        """
        attn = self.attn
        B, N, _ = x.shape
        H, D = int(attn.num_heads), int(attn.head_dim)
        # timm's fused qkv layout: rows (q | k | v) x heads x head dim.
        q, k, v = attn.qkv(x).reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, N, D)
        q, k = attn.q_norm(q), attn.k_norm(k)
        logits = (q * attn.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
        # The explicit softmax path (not fused attention): the transformations act on the maps themselves.
        logits = torch.einsum("gh,bhnm->bgnm", self.mix_logits, logits)
        probs = torch.einsum("gh,bhnm->bgnm", self.mix_probs, logits.softmax(dim=-1))
        out = (attn.attn_drop(probs) @ v).transpose(1, 2).reshape(B, N, H * D)  # (B, N, H D)
        return attn.proj_drop(attn.proj(attn.norm(out)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        if attn_mask is not None:
            raise LearngeneError("a weight-transformation descendant takes no attention mask")
        x = x + self.drop_path1(self.ls1(self.attention(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def multiplex(model: nn.Module, share_layers: int) -> nn.Module:
    """Turn a plain timm ViT into a weight-transformation one, in place.

    Group g (layers g r .. g r + r - 1, r = ``share_layers``) keeps the attention and FFN modules of its first
    block as its shared weights; the other blocks' attention and FFN are dropped.

    Raises:
        LearngeneError: when the depth is not a multiple of ``share_layers``.
    """
    blocks = list(model.blocks)
    if share_layers < 1 or len(blocks) % share_layers:
        raise LearngeneError(
            f"a {len(blocks)}-layer model cannot share blocks across {share_layers} layers; use a depth that is a "
            f"multiple of {share_layers}"
        )
    shared = [SharedWeights(blocks[start].attn, blocks[start].mlp) for start in range(0, len(blocks), share_layers)]
    model.blocks = nn.Sequential(*(MultiplexedBlock(b, shared[i // share_layers]) for i, b in enumerate(blocks)))
    setattr(model, SHARED_ATTR, nn.ModuleList(shared))
    return model


def share_layers_of(model: nn.Module) -> int | None:
    """Consecutive layers per shared block of a weight-transformation model; None for a plain ViT."""
    shared = getattr(model, SHARED_ATTR, None)
    return len(model.blocks) // len(shared) if shared is not None else None


def transformation_params(depth: int, heads: int) -> int:
    """Parameters of every layer's two (H, H) head-mixing matrices."""
    return depth * 2 * heads * heads


@torch.no_grad()
def init_weight_transformation(model: nn.Module, spec: DescendantSpec, ancestor: nn.Module) -> InitRecord:
    """Fill a multiplexed descendant from the ancestor (see the module docstring for the rule).

    Inherited values are counted as the size code defines them: the shared attention and FFN are one tensor each,
    written once; every layer's norms and layer scale are written per layer, so a group's second layer repeats
    values already written (slot-inherited counts them, distinct-inherited does not). The transformations and the
    classifier are not inherited.
    """
    heads = list(spec.heads)
    record = InitRecord.empty(heads)
    state = ancestor.state_dict()
    copy_model_tensors(model, state, record)
    share = int(spec.share_layers)
    for group, shared in enumerate(getattr(model, SHARED_ATTR)):
        source = group * share
        prefix = f"blocks.{source}."
        for key, param in shared.state_dict(keep_vars=True).items():
            param.copy_(state[prefix + key])
            record.inherited_params += param.numel()
        layers = list(range(source, source + share))
        for layer in layers:
            own = model.blocks[layer].state_dict(keep_vars=True)
            for key in OWN_TENSORS:
                if key in own and prefix + key in state:
                    own[key].copy_(state[prefix + key])
                    record.inherited_params += own[key].numel()
                    record.duplicate_params += own[key].numel() if layer != source else 0
            record.head_sources[layer] = list(range(heads[layer]))
            record.ffn_sources[layer] = {"layer": source, "transform": False, "shared_with": layers}
    record.notes.append(
        f"weight-transformation: layers share blocks in groups of {share}; group g uses ancestor block g x {share} "
        "(attention, FFN, norms); the head-mixing transformations start as the identity"
    )
    return record
