"""Build the network a run trains: a saved descendant, a descendant built at start, or a random timm model."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig
from learngene.training.data import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)


def _descendant_api(name: str) -> Callable[..., Any]:
    """``learngene.descendant.<name>``, or a clear error while that package is absent."""
    try:
        module = importlib.import_module("learngene.descendant")
    except ModuleNotFoundError as error:
        if error.name != "learngene.descendant":
            raise
        raise LearngeneError("descendant support (learngene.descendant) is not installed in this version") from None
    function = getattr(module, name, None)
    if function is None:
        raise LearngeneError(f"learngene.descendant has no {name}(); update learngene")
    return function


def _as_module(obj: Any) -> nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    for attr in ("model", "module"):
        candidate = getattr(obj, attr, None)
        if isinstance(candidate, nn.Module):
            return candidate
    raise LearngeneError(f"the descendant loader returned {type(obj).__name__}, not a model")


def _fit_head_and_size(model: nn.Module, num_classes: int, img_size: int) -> nn.Module:
    """Give the model a ``num_classes`` classifier and ``img_size`` input where it was built for others."""
    current = getattr(model, "num_classes", None)
    if current is not None and current != num_classes:
        if not hasattr(model, "reset_classifier"):
            raise LearngeneError(f"the model has {current} outputs, the data {num_classes} classes")
        log.info("new %d-class classifier head (the model had %d outputs)", num_classes, current)
        model.reset_classifier(num_classes)
    patch_embed = getattr(model, "patch_embed", None)
    size = getattr(patch_embed, "img_size", None)
    if size is not None and tuple(size) != (img_size, img_size):
        if not hasattr(model, "set_input_size"):
            raise LearngeneError(f"the model expects {tuple(size)} px input, the run asks for {img_size}")
        log.info("resampling position embeddings from %s to %d px", tuple(size), img_size)
        model.set_input_size(img_size=img_size)
    return model


def set_drop_path(model: nn.Module, rate: float) -> nn.Module:
    """Stochastic depth on every block, rising linearly from 0 at the first block to ``rate`` at the last.

    The same schedule as ``timm.create_model(..., drop_path_rate=rate)``; applied after the fact because a saved
    or freshly built descendant is created without it. A model without ``blocks`` of timm ViT blocks is left alone.
    """
    import torch
    from timm.layers import DropPath

    blocks = list(getattr(model, "blocks", []) or [])
    rates = [value.item() for value in torch.linspace(0, rate, len(blocks))]  # timm's own rounding
    for block, block_rate in zip(blocks, rates, strict=True):
        for attr in ("drop_path1", "drop_path2"):
            if hasattr(block, attr):
                setattr(block, attr, DropPath(block_rate) if block_rate > 0 else nn.Identity())
    return model


def _build_from_ancestor(config: TrainConfig, num_classes: int) -> nn.Module:
    """Build the descendant at start, exactly as ``learngene build`` would (statistics from ``config.stats``, else
    computed on the built-in probe images)."""
    build_descendant = _descendant_api("build_descendant")
    from learngene.ancestors import load_ancestor
    from learngene.descendant import read_distances

    spec = config.descendant_spec(num_classes)
    ancestor = load_ancestor(config.ancestor)
    spec = spec.resolve(ancestor.summary)
    distances, provenance = None, {}
    if config.stats and spec.init == "cluster-learngene":
        distances, provenance = read_distances(config.stats, ancestor.summary)  # refuses another ancestor's file
    descendant = build_descendant(ancestor, spec, distances=distances,
                                  eps=10.0 if config.eps is None else config.eps,
                                  min_heads=1 if config.min_heads is None else config.min_heads,
                                  provenance=provenance)
    log.info("built a %s descendant of %s: %d layers, heads %s", spec.init, config.ancestor, spec.depth,
             list(spec.heads))
    return _as_module(descendant)


def build_model(config: TrainConfig, num_classes: int) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """The model to train and the normalisation (mean, std) its inputs need.

    Raises:
        LearngeneError: unknown timm model, unreadable descendant, or descendant support missing.
    """
    if config.model:
        import timm

        try:
            model = timm.create_model(config.model, pretrained=False, num_classes=num_classes,
                                      img_size=config.img_size, drop_path_rate=config.drop_path,
                                      **config.model_kwargs)
        except TypeError as error:
            raise LearngeneError(f"timm model {config.model} rejected its arguments: {error}") from None
    elif config.descendant:
        model = _as_module(_descendant_api("load_descendant")(config.descendant))
    else:
        model = _build_from_ancestor(config, num_classes)
    model = _fit_head_and_size(model, num_classes, config.img_size)
    set_drop_path(model, config.drop_path)  # every source: a descendant is saved and built without it
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return model, mean, std
