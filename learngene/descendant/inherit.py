"""Initialising a descendant's weights (method.md steps 5-7) and the baselines the paper compares against.

Every method starts from timm's random init of the descendant architecture and then copies exactly what it
claims, nothing else. The new classifier always stays random.

============================  ==============================================================================
method                        copied from the ancestor
============================  ==============================================================================
``cluster-learngene``         patch embedding, class/register tokens, position embedding (resampled if the
                              resolution differs), final norms; per layer l < L_d: norms, layer scale, W_O
                              bias, head slot i <- centroid S_l[i mod c_l] (q/k/v rows, their biases, W_O
                              columns), FFN: own for ungrouped layers, T(group centroid) for grouped ones
``pretrained-prune``          the same shared tensors; per layer l < L_d: the whole layer with its first H_d
                              heads (H_d <= H); no FFN groups
``ancestor``                  everything but the classifier (the upper reference; same architecture)
``heuristic-learngene``       the shared tensors; the ancestor's last 3 layers into the descendant's last 3
``auto-learngene``            the shared tensors; the ancestor's first 6 layers into the descendant's first 6
``heuristic-learngene-        only the ancestor's last 3 layers (embeddings, tokens and final norm stay
layers-only``                 random), as the paper's prose describes the baseline
``auto-learngene-layers-      only the ancestor's first 6 layers
only``
``scratch``                   nothing
============================  ==============================================================================

The plain layer baselines follow the authors' loader (``models/__init__.py::get_backbone``), which drops only the
non-inherited ``blocks.*`` keys and the classifier before loading the ancestor's weights, so patch embedding,
class token, position embedding and final norm are inherited too; the authors' models have 12 layers (pass
``depth=12``). A copied layer with more head slots than the ancestor (H_d > H) leaves slots H..H_d-1 random; with
fewer it keeps the first H_d heads. :class:`InitRecord` counts every value written, independently of the size
preview, and records each slot's source head (``head_sources``) and each layer's FFN source. Under
``parity="authors"`` cluster-learngene is initialised by :mod:`learngene.descendant.parity` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from learngene.descendant.size import descendant_groups, inherited_layers
from learngene.descendant.spec import LAYERS_ONLY_BASELINES, DescendantSpec
from learngene.descendant.transform import FFN_TENSORS, FfnTransform, apply_once, attach_trained_transforms
from learngene.head_weights import read_head, write_head

# Per-layer tensors besides the heads, as timm names them inside a block (present only when the model has them).
LAYER_TENSORS = ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1.gamma", "ls2.gamma",
                 "attn.proj.bias") + tuple(f"mlp.{k}" for k in FFN_TENSORS)
# Model-level tensors a learngene-style method inherits (the classifier is never among them).
MODEL_TENSORS = ("patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "reg_token", "pos_embed",
                 "norm_pre.weight", "norm_pre.bias", "norm.weight", "norm.bias", "fc_norm.weight", "fc_norm.bias")


@dataclass
class InitRecord:
    """What an initialisation wrote: per-slot sources, per-layer FFN sources and the number of values copied.

    ``inherited_params`` counts every value written from the ancestor (each head slot, each grouped layer);
    ``duplicate_params`` the part of those that repeats ancestor values already written elsewhere (a centroid
    in a second slot, a group centroid behind a second layer's T output), so the distinct ancestor values
    behind the descendant are ``inherited_params - duplicate_params``.
    """

    head_sources: list[list[int | None]]
    ffn_sources: list[dict | None]
    inherited_params: int = 0
    duplicate_params: int = 0
    transforms: list[dict] = field(default_factory=list)  # per FFN group: its layers and T's initial weights
    notes: list[str] = field(default_factory=list)

    @property
    def distinct_params(self) -> int:
        return self.inherited_params - self.duplicate_params

    @classmethod
    def empty(cls, heads: list[int]) -> InitRecord:
        return cls(head_sources=[[None] * h for h in heads], ffn_sources=[None] * len(heads))


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict(keep_vars=True))


@torch.no_grad()
def _copy(target: dict[str, torch.Tensor], key: str, value: torch.Tensor, record: InitRecord) -> None:
    param = target[key]
    if param.shape != value.shape:
        raise ValueError(f"{key}: descendant {tuple(param.shape)} vs source {tuple(value.shape)}")
    param.copy_(value)
    record.inherited_params += value.numel()


def _resample_pos_embed(pos: torch.Tensor, target: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """The ancestor's position embedding on the descendant's patch grid (bicubic, as timm resamples)."""
    if pos.shape == target.shape:
        return pos
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
    return resample_abs_pos_embed(pos, new_size=list(model.patch_embed.grid_size), num_prefix_tokens=prefix)


def copy_model_tensors(model: nn.Module, source: dict[str, torch.Tensor], record: InitRecord) -> None:
    """Copy the model-level tensors (embeddings, tokens, final norms) present in both ``source`` and ``model``."""
    target = _params(model)
    for key in MODEL_TENSORS:
        if key in target and key in source:
            value = source[key]
            if key == "pos_embed":
                value = _resample_pos_embed(value, target[key], model)
            _copy(target, key, value, record)


def copy_layer_tensors(
    model: nn.Module, layer: int, source: dict[str, torch.Tensor], prefix: str, record: InitRecord, skip_ffn: bool = False
) -> None:
    """Copy one block's norms, layer scale, W_O bias and (unless ``skip_ffn``) FFN from ``source[prefix + key]``."""
    target = _params(model)
    for key in LAYER_TENSORS:
        if skip_ffn and key.startswith("mlp."):
            continue
        full = f"blocks.{layer}.{key}"
        if full in target and prefix + key in source:
            _copy(target, full, source[prefix + key], record)


def write_slot(
    attn: nn.Module, slot: int, weights: dict[str, torch.Tensor], record: InitRecord, duplicate: bool = False
) -> None:
    """Write one head into slot ``slot`` (an independent copy) and count the values written.

    ``duplicate``: the same head was already written to another slot (counted once as distinct).
    """
    write_head(attn, slot, weights)
    has_bias = attn.qkv.bias is not None
    count = sum(t.numel() for k, t in weights.items() if has_bias or not k.endswith("_bias"))
    record.inherited_params += count
    if duplicate:
        record.duplicate_params += count


# --------------------------------------------------------------------------------------------- baselines


def init_scratch(model: nn.Module, spec: DescendantSpec, ancestor: nn.Module) -> InitRecord:
    return InitRecord.empty(list(spec.heads))


def init_from_layers(model: nn.Module, spec: DescendantSpec, ancestor: nn.Module) -> InitRecord:
    """pretrained-prune, ancestor and the layer baselines: copy whole ancestor layers (and shared tensors)."""
    heads = list(spec.heads)
    record = InitRecord.empty(heads)
    state = ancestor.state_dict()
    if spec.init not in LAYERS_ONLY_BASELINES:  # the authors' loader keeps every non-block key but the classifier
        copy_model_tensors(model, state, record)
    if spec.init in ("pretrained-prune", "ancestor"):
        mapping = {layer: layer for layer in range(spec.depth)}
    else:
        mapping = inherited_layers(spec.init, spec.depth, len(ancestor.blocks))
    for layer, source in mapping.items():
        copy_layer_tensors(model, layer, state, f"blocks.{source}.", record)
        record.ffn_sources[layer] = {"layer": source, "transform": False}
        src_attn = ancestor.blocks[source].attn
        for slot in range(min(heads[layer], int(src_attn.num_heads))):
            write_slot(model.blocks[layer].attn, slot, read_head(src_attn, slot), record)
            record.head_sources[layer][slot] = slot
    return record


# --------------------------------------------------------------------------------------------- cluster-learngene


def ordered_centroids(learngene, layer: int, order: str) -> list[int]:
    """Positions (into the priority list) of layer ``layer``'s centroids, in the order slots take them."""
    clusters = learngene.layers[layer]
    positions = list(range(len(clusters.centroids)))
    if order == "original":
        return sorted(positions, key=lambda k: clusters.centroids[k])
    if order == "ascending-mad":
        return sorted(positions, key=lambda k: clusters.mean_distance[k])
    if order == "descending-mad":
        return sorted(positions, key=lambda k: -clusters.mean_distance[k])
    return positions  # priority: largest cluster first, as stored


def init_cluster_learngene(model: nn.Module, spec: DescendantSpec, ancestor: nn.Module, learngene) -> InitRecord:
    """Priority weight-sharing for heads, T for grouped FFNs, copies for everything else (method.md steps 5-7)."""
    heads = list(spec.heads)
    record = InitRecord.empty(heads)
    shared = dict(learngene.shared)
    # Final norms the learngene does not store (fc_norm / norm_pre of average-pooling or CLIP-style ViTs) come
    # straight from the ancestor, like the norms the learngene does store.
    for key, value in ancestor.state_dict().items():
        if key.startswith(("fc_norm.", "norm_pre.")):
            shared.setdefault(key, value)
    copy_model_tensors(model, shared, record)
    groups = descendant_groups(learngene.ffn_groups, spec.depth)
    grouped = {layer for g in groups for layer in g if layer < spec.depth}
    for layer in range(spec.depth):
        copy_layer_tensors(model, layer, shared, f"blocks.{layer}.", record, skip_ffn=True)
        order = ordered_centroids(learngene, layer, spec.head_order)
        centroids = learngene.layers[layer].centroids
        if not order:
            record.notes.append(f"layer {layer} has no head cluster (all heads noise): its heads stay random")
        for slot in range(heads[layer] if order else 0):
            k = order[slot % len(order)]  # S_l[i mod c_l]
            write_slot(model.blocks[layer].attn, slot, learngene.heads[layer][k], record, duplicate=slot >= len(order))
            record.head_sources[layer][slot] = int(centroids[k])
        if layer not in grouped:
            target = _params(model)
            for key in FFN_TENSORS:
                _copy(target, f"blocks.{layer}.mlp.{key}", learngene.ffn[layer][key], record)
            record.ffn_sources[layer] = {"layer": _ffn_source(learngene, layer), "transform": False}
    _init_groups(model, spec, learngene, groups, record)
    return record


def _ffn_source(learngene, layer: int) -> int:
    """The ancestor layer whose FFN ``learngene.ffn[layer]`` is (a group's first layer for grouped layers)."""
    found = learngene.group_of(layer)
    return found[0][0] if found else layer


def _init_groups(model: nn.Module, spec: DescendantSpec, learngene, groups: list[list[int]], record: InitRecord) -> None:
    """One T per group with the group's full size k; the layers inside the depth take its first outputs.

    As in the authors' code, a group the depth cuts keeps its full T (depth 10 with the group {9, 10, 11}:
    layer 9 gets T(FFN9)[0] from a 3-output T).
    """
    transforms, centroids, kept = [], [], []
    for group in groups:
        transform = FfnTransform(len(group), init=spec.transform_init)
        centroid = learngene.ffn[group[0]]  # the group's centroid: its first layer's FFN
        layers = [layer for layer in group if layer < spec.depth]
        apply_once(transform, centroid, [model.blocks[layer].mlp for layer in layers])
        size = sum(centroid[k].numel() for k in FFN_TENSORS)
        for j, layer in enumerate(layers):
            record.ffn_sources[layer] = {"layer": _ffn_source(learngene, group[0]), "transform": True, "output": j}
            record.inherited_params += size
            record.duplicate_params += size if j else 0
        transforms.append(transform)
        centroids.append(centroid)
        kept.append(layers)
        record.transforms.append({
            "layers": layers, "outputs": len(group), "init": spec.transform_init, "trained": spec.train_transform,
            "weights": {name: value.tolist() for name, value in transform.state_dict().items()},
        })
    if spec.train_transform and groups:
        attach_trained_transforms(model, kept, transforms, centroids)
