"""``load_ancestor(spec)``: any timm ViT-family model, from the built-in weights, the hub, a file, or random."""

from __future__ import annotations

import difflib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from learngene.ancestors import builtin
from learngene.ancestors.checkpoint import (
    LoadReport,
    adapt_state_dict,
    find_weights_file,
    load_into,
    read_weights,
    unwrap_state_dict,
)
from learngene.ancestors.identity import weights_fingerprint

# Re-exported: the summary and the spec prefixes live in a torch-free module (cheap commands size without torch).
from learngene.ancestors.summary import BUILTIN, RANDOM_PREFIX, AncestorSummary, parse_spec  # noqa: F401
from learngene.errors import LearngeneError
from learngene.whole_numbers import is_whole

_logger = logging.getLogger(__name__)

@dataclass
class Ancestor:
    """A loaded ancestor: the timm model in eval mode, its summary, and how its weights were loaded."""

    model: torch.nn.Module
    summary: AncestorSummary
    load_report: LoadReport | None = None


def summarize(model: torch.nn.Module, spec: str, arch: str, pretrained: bool) -> AncestorSummary:
    """Read the architecture facts off a timm VisionTransformer."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not len(blocks) or not hasattr(blocks[0], "attn") or not hasattr(blocks[0].attn, "qkv"):
        raise LearngeneError(
            f"{arch} is not a ViT with standard attention blocks (blocks[i].attn.qkv); choose a VisionTransformer "
            "such as deit_small_patch16_224 or vit_small_patch14_dinov2"
        )
    attn = blocks[0].attn
    heads = {int(b.attn.num_heads) for b in blocks}
    if len(heads) != 1:
        raise LearngeneError(f"{arch} has layers with different head counts; ancestors must be uniform")
    patch = model.patch_embed.patch_size
    img = model.patch_embed.img_size
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return AncestorSummary(
        spec=spec,
        arch=arch,
        num_layers=len(blocks),
        num_heads=heads.pop(),
        embed_dim=int(model.embed_dim),
        head_dim=int(attn.head_dim),
        mlp_hidden_dim=int(blocks[0].mlp.fc1.out_features),
        patch_size=int(patch[0]),
        img_size=int(img[0]),
        grid_size=tuple(int(g) for g in model.patch_embed.grid_size),
        num_prefix_tokens=int(model.num_prefix_tokens),
        num_reg_tokens=int(getattr(model, "num_reg_tokens", 0)),
        has_class_token=bool(getattr(model, "has_class_token", model.cls_token is not None)),
        layer_scale=not isinstance(getattr(blocks[0], "ls1", torch.nn.Identity()), torch.nn.Identity),
        qkv_bias=attn.qkv.bias is not None,
        num_classes=int(getattr(model, "num_classes", 0)),
        num_params=sum(p.numel() for p in model.parameters()),
        mean=tuple(float(x) for x in cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(x) for x in cfg.get("std", (0.229, 0.224, 0.225))),
        pretrained=pretrained,
        weights_sha256=weights_fingerprint(model) if pretrained else "",
    )


def _check_grid(model: torch.nn.Module, arch: str, img_size: int | None) -> None:
    """One line for a resolution that is not a whole number of patches (timm would silently drop the remainder)."""
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if img_size is None or not patch:
        return
    patch = int(patch[0])
    if img_size < patch or img_size % patch:
        suggestion = max(patch, round(img_size / patch) * patch)
        raise LearngeneError(f"--img-size {img_size} is not a whole number of {arch}'s {patch}-pixel patches; use "
                             f"a multiple of {patch} such as {suggestion}")


def _check_arch(arch: str) -> None:
    import timm

    if timm.is_model(arch.split(".")[0]):
        return
    names = timm.list_models()
    close = difflib.get_close_matches(arch, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models('*vit*')"
    raise LearngeneError(f"unknown model name {arch!r}{hint}")


def _create(arch: str, img_size: int | None, **kwargs) -> torch.nn.Module:
    import timm

    _check_arch(arch)
    if img_size is not None:
        kwargs["img_size"] = img_size
    try:
        model = timm.create_model(arch, **kwargs)
    except TypeError as error:  # a non-ViT model that rejects ViT keyword arguments
        raise LearngeneError(f"cannot build {arch} as a ViT ({error}); choose a VisionTransformer model") from error
    _check_grid(model, arch, img_size)
    return model


def _local_hub_file(arch: str) -> str | None:
    """Path of ``arch``'s pretrained weights in the local Hugging Face cache, or None."""
    from huggingface_hub import hf_hub_download
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            return hf_hub_download(hub_id, filename, local_files_only=True)
        except Exception:
            continue
    return None


def _hub_reachable(timeout: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_pretrained(arch: str, img_size: int | None) -> torch.nn.Module:
    _check_arch(arch)
    local = _local_hub_file(arch)
    if local is not None:
        return _create(arch, img_size, pretrained=True, pretrained_cfg_overlay={"file": local})
    if not _hub_reachable():
        raise LearngeneError(
            f"pretrained weights for {arch} are not in the local cache and the Hugging Face hub cannot be reached "
            "(offline); use --ancestor builtin, or a local file as PATH@ARCH"
        )
    return _create(arch, img_size, pretrained=True)


def load_ancestor(
    spec: str = BUILTIN, *, arch: str | None = None, img_size: int | None = None, device: str | torch.device = "cpu"
) -> Ancestor:
    """Load an ancestor ViT in eval mode.

    Args:
        spec: ``builtin`` (offline DINOv2 ViT-S/14 at 224 px), a timm model name (pretrained weights from the hub
            cache or the internet), ``random:<timm name>``, or ``PATH[@ARCH]`` for a ``.safetensors``/``.pth``/``.pt``
            file or a directory holding one.
        arch: architecture for a weights file when the spec has no ``@ARCH``.
        img_size: input resolution; position embeddings are resampled when it differs from the weights'.
        device: where to put the model.
    """
    if isinstance(spec, os.PathLike):  # a pathlib.Path to a weights file is as good as its text
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise LearngeneError(
            f"the ancestor must be given as text (got {type(spec).__name__}): 'builtin', a timm model name, "
            "'random:<timm name>' or a weights file 'PATH@ARCH'"
        )
    kind, model_arch, path = parse_spec(spec, arch)
    report = None
    if img_size is not None and (not is_whole(img_size) or img_size < 1):
        raise LearngeneError(f"--img-size must be a positive number of pixels (got {img_size!r})")
    img_size = None if img_size is None else int(img_size)
    if kind == "builtin":
        model = builtin.create_model(img_size=img_size or builtin.IMG_SIZE)
        model.load_state_dict(builtin.builtin_state_dict(img_size or builtin.IMG_SIZE))
    elif kind == "random":
        model = _create(model_arch, img_size, pretrained=False)
    elif kind == "hub":
        model = _load_pretrained(model_arch, img_size)
    else:
        weights = find_weights_file(Path(path).expanduser())
        model = _create(model_arch, img_size, pretrained=False)
        state = unwrap_state_dict(read_weights(weights))
        report = load_into(model, adapt_state_dict(state, model), str(weights))
        if report.missing or report.unexpected:
            _logger.info("loaded %s: %s", weights, report.describe())
    summary = summarize(model, spec, model_arch, pretrained=kind != "random")
    return Ancestor(model=model.eval().to(device), summary=summary, load_report=report)
