"""Build the network a run trains: a saved descendant, a descendant built at start, or a random timm model."""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any, Callable

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


def _call_accepting(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with only the keyword arguments its signature accepts (None values dropped)."""
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in kwargs.items() if v is not None and (takes_any or k in params)}
    return function(*args, **kwargs)


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
        model = _as_module(_call_accepting(_descendant_api("load_descendant"), config.descendant))
    else:
        model = _as_module(_call_accepting(
            _descendant_api("build_descendant"), config.ancestor, init=config.init, depth=config.depth,
            width_ratio=config.width_ratio, heads=config.heads, stats=config.stats, eps=config.eps,
            min_heads=config.min_heads, num_classes=num_classes, img_size=config.img_size,
        ))
    model = _fit_head_and_size(model, num_classes, config.img_size)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return model, mean, std
