"""Parity mode: initialise a descendant exactly as the authors' code does (``DescendantSpec(parity="authors")``).

The authors' code (BruceQFWang/NeurIPS24-Cluster-Learngene, ``train.py`` and ``models/vision_transformer.py``,
classes ``SAVisionTransformer``, ``SABlock``, ``SharedAttention``, ``PruneProj``, ``transform_mlp``) builds a
descendant of a DeiT-Ti/S/B ancestor like this, and so does this module, in its own code:

* **S_l and FFN groups are hard-coded** per ancestor (:data:`AUTHORS_SETTINGS`): the priority lists computed once
  from their (mis-normalised) statistics, and the groups DeiT-B {6,7},{9,10,11}; DeiT-S {9,10,11}; DeiT-Ti {1,2},
  {10,11}. No statistics are read.
* **qkv "heads" are chunks of the fused weight**: the ancestor's ``qkv.weight`` (3 H D x C) is reshaped to
  (H, 3 D, C) and chunk j (rows 3 D j .. 3 D (j+1)) is treated as head j. timm lays the rows out as
  (q|k|v) x heads x D, so a chunk is not a head: for DeiT-S chunk 0 holds the q rows of heads 0-2. Descendant slot
  i takes chunk S_l[i mod c_l]; the descendant's weight is the chunks stacked, read by timm's own
  (3, H_d, D) layout. :func:`authors_qkv_weight`.
* **no qkv bias**: their shared attention replaces the projection by a bare weight matrix, so the descendant has
  no qkv bias at all (built with ``qkv_bias=False``; the ancestor's biases are not used).
* **W_O**: not per head. For H_d <= H the first H_d D input columns of the ancestor's ``proj.weight``; for
  H_d > H every column repeated H_d / H times in place (``repeat_interleave``), which needs H_d a multiple of H.
  The projection bias is copied. :func:`authors_proj_weight`.
* **FFN groups**: one T per group of the full size k (Linear(1,k), ReLU, Linear(k,k), PyTorch's default init),
  applied once to the group's first layer's FFN; layer j of the group takes output j. A group the depth cuts keeps
  its full T and its first outputs (depth 10 with {9,10,11}: layer 9 gets T(FFN9)[0]).
* norms, patch embedding, class token, position embedding and final norm copied; the classifier is a fresh
  ``nn.Linear`` with PyTorch's default init (their model never calls timm's ViT init); drop path 0 (a training
  setting: ``TrainConfig.drop_path``).

Only the DeiT-Ti/S/B ancestors the lists were made for are accepted.
"""

from __future__ import annotations

import torch
from torch import nn

from learngene.ancestors import AncestorSummary
from learngene.errors import LearngeneError

# arch -> (S_l per layer, FFN groups), copied from the authors' train.py and vision_transformer.py.
AUTHORS_SETTINGS: dict[str, tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]] = {
    "deit_base_patch16_224": (
        ((1, 5, 4, 2, 8), (2, 6, 11), (6, 3, 5, 7), (3, 7, 5, 9, 1, 2), (5, 2, 1, 8, 10), (6, 7, 10, 11),
         (0, 1, 5, 3), (10, 6, 4, 11), (0, 3, 7, 9), (3,), (3, 4), (5,)),
        ((6, 7), (9, 10, 11)),
    ),
    "deit_small_patch16_224": (
        ((1, 2, 3), (0, 1, 3), (4, 2, 3), (1, 3), (4, 1, 3, 5), (4, 0, 1), (2, 0, 1, 3, 5), (4,), (5, 1, 2), (5,),
         (2,), (3,)),
        ((9, 10, 11),),
    ),
    "deit_tiny_patch16_224": (
        ((0, 1, 2), (0, 2), (0, 2), (0, 1, 2), (0, 1, 2), (1, 0), (0, 1, 2), (2, 0), (0, 1, 2), (1, 0), (1,), (0,)),
        ((1, 2), (10, 11)),
    ),
}
SUPPORTED = ", ".join(AUTHORS_SETTINGS)


def settings_for(summary: AncestorSummary) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """The authors' (S_l lists, FFN groups) for ``summary``'s architecture.

    Raises:
        LearngeneError: for any other ancestor (one line naming the supported ones).
    """
    arch = summary.arch.split(".")[0]
    if arch not in AUTHORS_SETTINGS:
        raise LearngeneError(
            f"--parity authors reproduces the authors' code, which only has settings for {SUPPORTED} "
            f"(got {summary.arch}); use one of those ancestors or drop --parity"
        )
    return AUTHORS_SETTINGS[arch]


def check_parity_spec(spec, summary: AncestorSummary) -> None:
    """Refuse a parity spec the authors' code cannot express (one line each)."""
    from learngene.descendant.spec import LAYERS_ONLY_BASELINES

    settings_for(summary)
    fixed = (("head_order", "priority"), ("centroid", "nearest"), ("train_transform", False),
             ("transform_init", "default"))
    for name, value in fixed:
        if getattr(spec, name) != value:
            raise LearngeneError(
                f"--parity authors fixes {name} to {value!r} (as their code does; got {getattr(spec, name)!r}); "
                f"drop the {name} option or --parity"
            )
    if spec.ffn_groups != "auto":
        raise LearngeneError("--parity authors uses the authors' FFN groups; drop --ffn-groups or --parity")
    if spec.init in LAYERS_ONLY_BASELINES:
        raise LearngeneError(
            f"--parity authors copies embeddings in the layer baselines (their loader does); use "
            f"{spec.init.removesuffix('-layers-only')} instead of {spec.init}"
        )


def check_parity_heads(heads: list[int], num_heads: int) -> None:
    """Their W_O repeats each column H_d / H times, so a layer wider than the ancestor needs a whole multiple."""
    for layer, count in enumerate(heads):
        if count > num_heads and count % num_heads:
            raise LearngeneError(
                f"--parity authors widens W_O by repeating each column H_d / H times, so layer {layer}'s {count} "
                f"heads must be a multiple of the ancestor's {num_heads} (use a width ratio of 1/2, 1/3, ...)"
            )


def authors_chunks(qkv_weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """The fused qkv weight (3 H D, C) as the authors' H chunks of (3 D, C): ``reshape(H, 3 D, C)``."""
    return qkv_weight.reshape(num_heads, qkv_weight.shape[0] // num_heads, qkv_weight.shape[1])


def authors_qkv_weight(qkv_weight: torch.Tensor, num_heads: int, priority: list[int], slots: int) -> torch.Tensor:
    """The descendant's qkv weight: chunk ``priority[i mod c]`` for slot i, stacked (slots 3 D, C)."""
    chunks = authors_chunks(qkv_weight, num_heads)
    order = [priority[i % len(priority)] for i in range(slots)]
    return chunks[order].reshape(slots * chunks.shape[1], chunks.shape[2])


def authors_proj_weight(proj_weight: torch.Tensor, num_heads: int, slots: int) -> torch.Tensor:
    """The descendant's W_O (C, slots D): the first slots D columns, or each column repeated slots / H times."""
    head_dim = proj_weight.shape[1] // num_heads
    if slots <= num_heads:
        return proj_weight[:, : slots * head_dim]
    return torch.repeat_interleave(proj_weight, slots // num_heads, dim=1)


def init_authors(model: nn.Module, spec, ancestor: nn.Module, summary: AncestorSummary):
    """Initialise ``model`` (built with ``qkv_bias=False``) as the authors' ``SAVisionTransformer`` does."""
    from learngene.descendant.inherit import InitRecord, copy_layer_tensors, copy_model_tensors
    from learngene.descendant.transform import FFN_TENSORS, FfnTransform, apply_once

    priorities, groups = settings_for(summary)
    heads = list(spec.heads)
    check_parity_heads(heads, summary.num_heads)
    record = InitRecord.empty(heads)
    state = ancestor.state_dict()
    copy_model_tensors(model, state, record)
    kept_groups = [g for g in groups if g[0] < spec.depth]
    grouped = {layer for g in kept_groups for layer in g}
    for layer in range(spec.depth):
        copy_layer_tensors(model, layer, state, f"blocks.{layer}.", record, skip_ffn=layer in grouped)
        src, dst = ancestor.blocks[layer].attn, model.blocks[layer].attn
        priority, slots = list(priorities[layer]), heads[layer]
        with torch.no_grad():
            qkv = authors_qkv_weight(src.qkv.weight, summary.num_heads, priority, slots)
            dst.qkv.weight.copy_(qkv)
            proj = authors_proj_weight(src.proj.weight, summary.num_heads, slots)
            dst.proj.weight.copy_(proj)
        chunk = qkv.numel() // slots
        column = proj.shape[0] * (proj.shape[1] // slots)
        record.inherited_params += qkv.numel() + proj.numel()
        record.duplicate_params += max(0, slots - len(priority)) * chunk + max(0, slots - summary.num_heads) * column
        record.head_sources[layer] = [priority[i % len(priority)] for i in range(slots)]
        if layer not in grouped:
            record.ffn_sources[layer] = {"layer": layer, "transform": False}
    for group in kept_groups:
        transform = FfnTransform(len(group), init="default")
        centroid = {key: state[f"blocks.{group[0]}.mlp.{key}"] for key in FFN_TENSORS}
        layers = [layer for layer in group if layer < spec.depth]
        apply_once(transform, centroid, [model.blocks[layer].mlp for layer in layers])
        size = sum(centroid[k].numel() for k in FFN_TENSORS)
        for j, layer in enumerate(layers):
            record.ffn_sources[layer] = {"layer": group[0], "transform": True, "output": j}
            record.inherited_params += size
            record.duplicate_params += size if j else 0
        record.transforms.append({
            "layers": layers, "outputs": len(group), "init": "default", "trained": False,
            "weights": {name: value.tolist() for name, value in transform.state_dict().items()},
        })
    with torch.no_grad():
        if isinstance(getattr(model, "head", None), nn.Linear):
            model.head.reset_parameters()  # a fresh nn.Linear: their model never applies timm's ViT init
    record.notes.append(
        "parity authors: head_sources hold the authors' qkv chunk indices (rows 3Dj..3D(j+1) of the fused qkv), "
        "not timm heads"
    )
    return record


def authors_distinct_and_slot_counts(facts, summary: AncestorSummary, spec) -> tuple[int, int]:
    """(slot-inherited, distinct-inherited) values of a parity build, from the architecture alone."""
    priorities, groups = settings_for(summary)
    C, D, M = facts.embed_dim, facts.head_dim, facts.mlp_hidden
    ffn = 2 * C * M + M + C
    shared = facts.embed_params + facts.pos_embed_params(spec.img_size) + facts.final_params
    slot = distinct = shared + spec.depth * facts.block_fixed_params
    for group in groups:
        inside = [layer for layer in group if layer < spec.depth]
        distinct -= ffn * max(0, len(inside) - 1)
    for layer, count in enumerate(spec.heads):
        slot += count * (3 * D * C + D * C)
        distinct += min(count, len(priorities[layer])) * 3 * D * C + min(count, summary.num_heads) * D * C
    return slot, distinct
