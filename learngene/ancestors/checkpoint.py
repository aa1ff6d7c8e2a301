"""Reading weights files and adapting their state dicts to a timm ViT, without touching the model."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from learngene.errors import LearngeneError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# Containers used by training scripts (DeiT: "model"; Lightning: "state_dict"; EMA variants) around the weights.
_CONTAINER_KEYS = ("model", "state_dict", "model_ema", "module", "teacher", "student")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")


@dataclass
class LoadReport:
    """What a state dict adapter did: keys the model wanted but did not get, and keys it did not use."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({', '.join(self.missing[:3])}{', ...' if len(self.missing) > 3 else ''})")
        if self.unexpected:
            parts.append(
                f"{len(self.unexpected)} unexpected ({', '.join(self.unexpected[:3])}{', ...' if len(self.unexpected) > 3 else ''})"
            )
        return "; ".join(parts) or "all keys matched"


def find_weights_file(path: Path) -> Path:
    """``path`` itself if it is a weights file, else the single weights file inside the directory ``path``."""
    if not path.exists():
        raise LearngeneError(f"weights path {path} does not exist; check the path")
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise LearngeneError(f"{path} is not a weights file: expected one of {', '.join(WEIGHT_SUFFIXES)}")
        return path
    for suffix in WEIGHT_SUFFIXES:  # safetensors first: it is the safe, fast format
        candidates = sorted(path.glob(f"*{suffix}"))
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise LearngeneError(
                f"{path} holds several {suffix} files ({', '.join(c.name for c in candidates[:4])}); name one of them"
            )
    raise LearngeneError(f"no weights file ({', '.join(WEIGHT_SUFFIXES)}) in directory {path}")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a raw state dict (possibly wrapped in a training container) from ``.safetensors`` or a torch pickle."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only refuses arbitrary pickled objects, so loading a downloaded file cannot run code.
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise LearngeneError(
            f"{path} holds more than tensors (a full training checkpoint with pickled objects?); "
            "re-save only the model's state_dict, or convert it to .safetensors"
        ) from error
    except Exception as error:  # truncated, corrupt or not a weights file at all
        raise LearngeneError(f"cannot read weights from {path}: the file is corrupt or not a weights file ({error})") from error


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside common checkpoint containers, with wrapper prefixes removed."""
    seen = 0
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()) and seen < 4:
        key = next((k for k in _CONTAINER_KEYS if k in obj and isinstance(obj[k], dict)), None)
        if key is None:
            break
        obj, seen = obj[key], seen + 1
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LearngeneError("the weights file holds no tensors under any of the usual keys (model, state_dict, ...)")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in _WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def adapt_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Pure adapter: map a ViT state dict onto ``model``'s keys and shapes without mutating either.

    Uses timm's own filter for the ViT family (original DeiT/DINO layouts, position-embedding resampling to the
    model's grid), then drops a classifier whose shape does not match (a new head is expected there).
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    adapted = checkpoint_filter_fn(dict(state), model)
    target = model.state_dict()
    for key in [k for k in adapted if k.startswith("head.")]:
        if key in target and adapted[key].shape != target[key].shape:
            del adapted[key]
    return adapted


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> LoadReport:
    """Load ``state`` into ``model``; only the classifier may be missing, and shapes must match."""
    target = model.state_dict()
    wrong_shape = [k for k, v in state.items() if k in target and target[k].shape != v.shape]
    if wrong_shape:
        key = wrong_shape[0]
        raise LearngeneError(
            f"weights from {source} do not fit this architecture: {key} is {tuple(state[key].shape)} in the file "
            f"but {tuple(target[key].shape)} in the model ({len(wrong_shape)} mismatched tensors); check the "
            "architecture name"
        )
    result = model.load_state_dict(state, strict=False)
    report = LoadReport(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys))
    essential = [k for k in report.missing if not k.startswith(("head.", "fc_norm.", "head_drop."))]
    if essential:
        raise LearngeneError(
            f"weights from {source} do not match this architecture: {report.describe()}; check the architecture name"
        )
    return report
