"""``build_descendant``: resolve a spec, create the model, initialise it and describe what was done."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from learngene.ancestors import Ancestor
from learngene.descendant.config import CONFIG_FORMAT  # noqa: F401 - re-exported; defined torch-free
from learngene.descendant.inherit import init_cluster_learngene, init_from_layers, init_scratch
from learngene.descendant.model import create_descendant_model
from learngene.descendant.size import check_learngene_ancestor, descendant_size
from learngene.descendant.spec import DescendantSpec
from learngene.errors import LearngeneError


@dataclass
class Descendant:
    """A built (or loaded) descendant.

    Attributes:
        model: the timm VisionTransformer (with T parametrisations when ``spec.train_transform``).
        spec: the resolved spec it was built from.
        config: everything ``config.json`` records: the timm recipe, the spec, the provenance, ``head_sources``
            (per layer, per slot: the ancestor head it was initialised from, None where random), ``ffn_sources``
            (per layer: the ancestor layer its FFN came from and whether through T, None where random),
            ``inherited_params`` (values written from the ancestor, every head slot counted) and
            ``inherited_distinct_params`` (the distinct ancestor values behind them),
            ``ffn_transforms`` (each group's layers and T's initial weights) and the size figures.
    """

    model: nn.Module
    spec: DescendantSpec
    config: dict


def _on_the_fly_distances(ancestor: Ancestor) -> tuple[np.ndarray, dict]:
    """Mean attention distances from the built-in probe images (when no statistics were given)."""
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    probes = load_probe_images("builtin", ancestor.summary)
    stats = compute_head_statistics(ancestor.model, probes, ancestor.summary)
    facts = {"statistics": "computed on the fly", "probe": stats.probe, "num_images": stats.num_images}
    return np.asarray(stats.mean_attention_distance, dtype=np.float64), facts


def build_descendant(
    ancestor: Ancestor,
    spec: DescendantSpec,
    *,
    distances: Sequence[Sequence[float]] | np.ndarray | None = None,
    learngene=None,
    eps: float = 10.0,
    min_heads: int = 1,
    provenance: dict | None = None,
) -> Descendant:
    """Build a descendant of ``ancestor`` initialised as ``spec.init`` says.

    Args:
        ancestor: the loaded ancestor (its model is read, never modified).
        spec: the descendant (resolved here).
        distances: (L, H) mean attention distances for cluster-learngene; computed with the built-in probe set
            when neither these nor ``learngene`` are given.
        learngene: an already extracted :class:`~learngene.extraction.Learngene` (its centroid mode must match
            ``spec.centroid``); takes precedence over ``distances``, and its FFN groups over ``spec.ffn_groups``.
        eps, min_heads: clustering thresholds when the learngene is extracted here.
        provenance: extra facts to record (e.g. the statistics file).

    Raises:
        LearngeneError: for a spec the ancestor cannot satisfy or statistics of another ancestor.
    """
    if not isinstance(spec, DescendantSpec):
        raise LearngeneError(
            f"build_descendant needs a DescendantSpec, got {type(spec).__name__}; e.g. "
            "DescendantSpec(depth=6, width_ratio=2, num_classes=10)"
        )
    if learngene is not None and not hasattr(learngene, "heads"):
        raise LearngeneError(
            f"learngene must be a Learngene, got {type(learngene).__name__}; for a saved one pass "
            "learngene.load_learngene(folder)"
        )
    summary = ancestor.summary
    spec = spec.resolve(summary)
    record_provenance = {"ancestor": summary.spec, "arch": summary.arch, **(provenance or {})}
    parity = spec.parity == "authors" and spec.init == "cluster-learngene"
    if parity:  # the authors' hard-coded S_l and groups: no statistics, no clustering
        from learngene.descendant.parity import settings_for

        priorities, groups = settings_for(summary)
        learngene = None
        record_provenance.update({"parity": "authors", "priority_lists": [list(p) for p in priorities],
                                  "ffn_groups": [list(g) for g in groups]})
    elif spec.init == "cluster-learngene":
        learngene, facts = _learngene_for(ancestor, spec, distances, learngene, eps, min_heads)
        record_provenance.update(facts)
    else:
        learngene = None
    # A private RNG stream: the build is reproducible from the seed and leaves the caller's RNG untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        qkv_bias = False if parity else None  # the authors' shared attention has a bare qkv weight
        model = create_descendant_model(
            summary.arch, spec.heads, head_dim=summary.head_dim, img_size=spec.img_size, num_classes=spec.num_classes,
            qkv_bias=qkv_bias, share_layers=spec.share_layers,
        )
        source = ancestor.model
        if spec.share_layers is not None:  # weight-transformation: shared blocks + per-layer head mixing
            from learngene.descendant.multiplexed import init_weight_transformation

            record = init_weight_transformation(model, spec, source)
        elif parity:
            from learngene.descendant.parity import init_authors

            record = init_authors(model, spec, source, summary)
        elif spec.init == "cluster-learngene":
            record = init_cluster_learngene(model, spec, source, learngene)
        elif spec.init == "scratch":
            record = init_scratch(model, spec, source)
        else:
            record = init_from_layers(model, spec, source)
    size = descendant_size(ancestor, spec, learngene=learngene)
    config = {
        "format": CONFIG_FORMAT,
        "timm": {"arch": summary.arch, "depth": spec.depth, "img_size": spec.img_size, "num_classes": spec.num_classes,
                 **({"qkv_bias": False} if parity else {}),
                 **({"share_layers": spec.share_layers} if spec.share_layers is not None else {})},
        "heads_per_layer": list(spec.heads),
        "head_dim": summary.head_dim,
        "mean": list(summary.mean),
        "std": list(summary.std),
        "spec": spec.to_dict(),
        "provenance": record_provenance,
        "head_sources": record.head_sources,
        "ffn_sources": record.ffn_sources,
        "ffn_transforms": record.transforms,
        "params": size.params,
        "inherited_params": record.inherited_params,
        "inherited_distinct_params": record.distinct_params,
        "trainable_params": size.trainable_params,
        "macs": size.macs,
        "flops": size.flops,
        "ancestor": summary.to_dict(),
        "notes": record.notes,
    }
    return Descendant(model=model, spec=spec, config=config)


def _learngene_for(ancestor: Ancestor, spec: DescendantSpec, distances, learngene, eps: float, min_heads: int):
    """The learngene to inherit from, and the provenance facts to record about it."""
    from learngene.extraction import extract_learngene

    summary = ancestor.summary
    if learngene is not None:
        if learngene.centroid != spec.centroid:
            raise LearngeneError(
                f"the learngene was extracted with centroid={learngene.centroid!r} but the spec asks for "
                f"{spec.centroid!r}; extract it again or change the spec"
            )
        check_learngene_ancestor(learngene.ancestor, summary)
        facts = {k: learngene.provenance[k] for k in ("eps", "min_heads", "statistics") if k in learngene.provenance}
        return learngene, {**facts, "ffn_groups": learngene.ffn_groups, "centroid": learngene.centroid}
    facts = {}
    if distances is None:
        distances, facts = _on_the_fly_distances(ancestor)
    groups = spec.ffn_groups if spec.ffn_groups == "auto" or spec.ffn_groups is None else [list(g) for g in spec.ffn_groups]
    learngene = extract_learngene(ancestor, distances, eps=eps, min_heads=min_heads, centroid=spec.centroid, ffn_groups=groups)
    return learngene, {**facts, "eps": eps, "min_heads": min_heads, "ffn_groups": learngene.ffn_groups,
                       "centroid": spec.centroid, "distances": np.asarray(distances).tolist()}
