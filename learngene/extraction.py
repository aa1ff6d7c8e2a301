"""The learngene (method.md steps 3-4): what a descendant inherits from the ancestor, with its provenance.

A :class:`Learngene` holds, per ancestor layer, the centroid heads in priority order (their q/k/v rows with biases
and W_O columns), the FFN each layer inherits (its own, or its group's centroid: the FFN of the group's first
layer), and the shared tensors (embeddings, tokens, norms, layer scale, output-projection bias). It is saved as one
safetensors file plus a JSON description, and loads without the ancestor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from learngene.ancestors import Ancestor, AncestorSummary
from learngene.clustering import CENTROID_MODES, LayerClusters, cluster_layers, validate_distances
from learngene.errors import LearngeneError
from learngene.ffn_groups import groups_from_text, propose_groups, validate_groups
from learngene.head_weights import average_heads, read_head
from learngene.output_dir import (
    LEARNGENE,
    LEARNGENE_CONFIG,
    LEARNGENE_WEIGHTS,
    save_tensors,
    write_output_dir,
)

FFN_KEYS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
# Per-layer tensors inherited as they are (when the ancestor has them).
_LAYER_SHARED = ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1.gamma", "ls2.gamma", "attn.proj.bias")
# Model-level tensors inherited as they are.
_MODEL_SHARED = (
    "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "reg_token", "pos_embed", "norm.weight", "norm.bias",
    "norm_pre.weight", "norm_pre.bias", "fc_norm.weight", "fc_norm.bias",
)



@dataclass
class Learngene:
    """The inherited part of an ancestor.

    Attributes:
        ancestor: summary of the ancestor it came from.
        layers: clustering of every ancestor layer (``layers[l].centroids`` is the priority list S_l).
        distances: (L, H) mean attention distances the clustering used, pixels.
        ffn_groups: groups of adjacent layers sharing one FFN centroid.
        centroid: ``nearest`` (the representative head's weights) or ``average`` (members' mean).
        heads: ``heads[l][k]`` is the weights of layer l's k-th centroid in priority order (see head_weights).
        ffn: ``ffn[l]`` is the FFN inherited by ancestor layer l: its own, or its group's first layer's.
        shared: embeddings, tokens, norms, layer scale and output-projection biases under timm's state-dict keys.
        provenance: ancestor spec, probe set, eps, min_heads and anything else worth recording.
    """

    ancestor: AncestorSummary
    layers: list[LayerClusters]
    distances: np.ndarray
    ffn_groups: list[list[int]]
    centroid: str
    heads: list[list[dict[str, torch.Tensor]]]
    ffn: list[dict[str, torch.Tensor]]
    shared: dict[str, torch.Tensor]
    provenance: dict = field(default_factory=dict)

    def priority(self, layer: int) -> list[int]:
        """S_l: the ancestor head index of each centroid of ``layer``, largest cluster first."""
        return list(self.layers[layer].centroids)

    def group_of(self, layer: int) -> tuple[list[int], int] | None:
        """The FFN group holding ``layer`` and its position in it, or None for an ungrouped layer."""
        for group in self.ffn_groups:
            if layer in group:
                return group, group.index(layer)
        return None

    @property
    def num_params(self) -> int:
        """Number of inherited values stored: each centroid head and FFN once, plus the shared tensors."""
        heads = sum(t.numel() for layer in self.heads for head in layer for t in head.values())
        grouped_followers = {layer_idx for g in self.ffn_groups for layer_idx in g[1:]}
        ffn = sum(t.numel() for layer_idx, f in enumerate(self.ffn) if layer_idx not in grouped_followers for t in f.values())
        return heads + ffn + sum(t.numel() for t in self.shared.values())

    def describe(self) -> dict:
        """JSON-able description (everything but the tensors)."""
        return {
            "format": "learngene/1",
            "ancestor": self.ancestor.to_dict(),
            "distances": np.asarray(self.distances).tolist(),
            "layers": [layer.to_dict() for layer in self.layers],
            "ffn_groups": self.ffn_groups,
            "centroid": self.centroid,
            "num_params": self.num_params,
            "ancestor_params": self.ancestor.num_params,
            "provenance": self.provenance,
        }


def extract_learngene(
    ancestor: Ancestor,
    distances: Sequence[Sequence[float]] | np.ndarray,
    *,
    eps: float = 10.0,
    min_heads: int = 1,
    centroid: str = "nearest",
    ffn_groups: Sequence[Sequence[int]] | str | None = "auto",
    provenance: dict | None = None,
) -> Learngene:
    """Cluster every layer's heads and copy out the inherited tensors.

    Args:
        ancestor: the loaded ancestor.
        distances: (L, H) mean attention distances in pixels.
        eps, min_heads: clustering thresholds (method.md step 2).
        centroid: ``nearest`` or ``average`` (method.md step 3).
        ffn_groups: explicit groups (lists of layers, or text such as ``"9-11"``), ``"auto"`` for the rule in
            :mod:`learngene.ffn_groups`, or None (or ``"none"``) for none.
        provenance: extra facts to record (probe set, statistics file, ...).
    """
    if not isinstance(ancestor, Ancestor):
        raise LearngeneError(
            f"extract_learngene needs a loaded ancestor, got {type(ancestor).__name__}; pass "
            "learngene.load_ancestor(...)'s result"
        )
    summary = ancestor.summary
    table = validate_distances(distances, "statistics")
    if table.shape != (summary.num_layers, summary.num_heads):
        raise LearngeneError(
            f"statistics have shape {table.shape} but the ancestor {summary.arch} has "
            f"{summary.num_layers} layers x {summary.num_heads} heads; compute them on this ancestor"
        )
    if centroid not in CENTROID_MODES:
        raise LearngeneError(f"centroid must be one of {CENTROID_MODES} (got {centroid!r})")
    layers = cluster_layers(table, eps=eps, min_heads=min_heads)
    ffn_groups = groups_from_text(ffn_groups)
    if ffn_groups == "auto":
        groups = propose_groups(layers, eps=eps)
    else:
        groups = validate_groups(ffn_groups or [], summary.num_layers)

    model = ancestor.model
    state = model.state_dict()
    heads: list[list[dict[str, torch.Tensor]]] = []
    ffn: list[dict[str, torch.Tensor]] = []
    for index, (block, layer) in enumerate(zip(model.blocks, layers, strict=True)):
        if centroid == "nearest":
            heads.append([read_head(block.attn, h) for h in layer.centroids])
        else:
            heads.append([average_heads([read_head(block.attn, h) for h in members]) for members in layer.clusters])
        source = next((g[0] for g in groups if index in g), index)  # a group's FFN centroid is its first layer
        ffn.append({k: state[f"blocks.{source}.mlp.{k}"].detach().clone() for k in FFN_KEYS})
    shared = {k: state[k].detach().clone() for k in _MODEL_SHARED if k in state}
    for index in range(summary.num_layers):
        for key in _LAYER_SHARED:
            full = f"blocks.{index}.{key}"
            if full in state:
                shared[full] = state[full].detach().clone()
    record = {"ancestor": summary.spec, "eps": eps, "min_heads": min_heads, **(provenance or {})}
    return Learngene(
        ancestor=summary, layers=layers, distances=table, ffn_groups=groups, centroid=centroid,
        heads=heads, ffn=ffn, shared=shared, provenance=record,
    )


def save_learngene(learngene: Learngene, directory: str | Path, *, force: bool = False) -> Path:
    """Write ``learngene.safetensors`` + ``learngene.json`` into ``directory``.

    ``directory`` must be new or empty, or (with ``force``) a learngene directory we wrote before; the files go to
    a temporary sibling that is swapped in, so a failure leaves nothing half-written and the old one intact.
    """
    from learngene.atomic import write_json_atomic

    if not isinstance(learngene, Learngene):
        raise LearngeneError(f"save_learngene saves a Learngene (from extract_learngene), got {type(learngene).__name__}")
    tensors = {f"shared.{k}": v.contiguous() for k, v in learngene.shared.items()}
    for layer_idx, layer in enumerate(learngene.heads):
        for k, head in enumerate(layer):
            tensors.update({f"heads.{layer_idx}.{k}.{name}": t.contiguous() for name, t in head.items()})
    for layer_idx, f in enumerate(learngene.ffn):
        tensors.update({f"ffn.{layer_idx}.{name}": t.contiguous() for name, t in f.items()})
    description = learngene.describe()

    def write(staging: Path) -> None:
        save_tensors(tensors, staging / LEARNGENE_WEIGHTS)
        write_json_atomic(staging / LEARNGENE_CONFIG, description, indent=1)

    return write_output_dir(directory, LEARNGENE, write, force=force)


def load_learngene(directory: str | Path) -> Learngene:
    """Read a learngene written by :func:`save_learngene`."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / LEARNGENE_CONFIG, directory / LEARNGENE_WEIGHTS
    if not config_path.is_file() or not weights_path.is_file():
        raise LearngeneError(f"{directory} is not a learngene directory ({LEARNGENE_CONFIG} + {LEARNGENE_WEIGHTS})")
    try:
        config = json.loads(config_path.read_text())
        tensors = load_file(str(weights_path))
    except Exception as error:
        raise LearngeneError(f"the learngene in {directory} is corrupt ({error})") from error
    try:
        learngene = _from_saved(config, tensors)
    except (KeyError, TypeError, ValueError, AttributeError, LearngeneError) as error:
        # A hand-edited or damaged learngene.json: name the file, not the missing key deep inside.
        detail = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise LearngeneError(
            f"the learngene in {directory} is incomplete or damaged ({detail}); extract it again with "
            "`learngene extract`"
        ) from None
    return learngene


def _from_saved(config: dict, tensors: dict[str, torch.Tensor]) -> Learngene:
    """The learngene of a parsed ``learngene.json`` and its tensors, checked for consistency."""
    if not isinstance(config, dict):
        raise ValueError(f"{LEARNGENE_CONFIG} is not a JSON object")
    summary = AncestorSummary.from_dict(config["ancestor"])
    layers = [LayerClusters(**layer) for layer in config["layers"]]
    if len(layers) != summary.num_layers:
        raise ValueError(f"{len(layers)} clustered layers for an ancestor of {summary.num_layers}")
    heads = []
    for layer_idx, layer in enumerate(layers):
        layer_heads = []
        for k in range(len(layer.centroids)):
            names = _head_names(tensors, layer_idx, k)
            if not names:
                raise ValueError(f"no weights for centroid {k} of layer {layer_idx}")
            layer_heads.append({name: tensors[f"heads.{layer_idx}.{k}.{name}"] for name in names})
        heads.append(layer_heads)
    ffn = [{name: tensors[f"ffn.{layer_idx}.{name}"] for name in FFN_KEYS} for layer_idx in range(len(layers))]
    shared = {k[len("shared.") :]: v for k, v in tensors.items() if k.startswith("shared.")}
    return Learngene(
        ancestor=summary, layers=layers, distances=np.asarray(config["distances"], dtype=np.float64),
        ffn_groups=validate_groups(config["ffn_groups"], summary.num_layers), centroid=config["centroid"],
        heads=heads, ffn=ffn, shared=shared, provenance=config.get("provenance", {}),
    )


def _head_names(tensors: dict, layer: int, k: int) -> list[str]:
    prefix = f"heads.{layer}.{k}."
    return [name[len(prefix) :] for name in tensors if name.startswith(prefix)]
