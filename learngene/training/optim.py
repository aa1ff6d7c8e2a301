"""AdamW parameter groups and the per-step warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decayed weight matrices, and undecayed norms, biases and tokens.

    Decaying a LayerNorm gain or a bias pulls it toward zero for no regularisation benefit, and decaying the CLS
    token / position embedding erases what the descendant inherited; so every 1-D parameter and every name the model
    lists in ``no_weight_decay()`` (timm's convention: cls_token, pos_embed, ...) goes to the undecayed group.
    """
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name in skip or name.split(".")[-1] in skip:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (fused kernels where the parameters live on CUDA) over :func:`param_groups`."""
    on_cuda = any(p.is_cuda for p in model.parameters())
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             fused=True if on_cuda else None)


class WarmupCosine:
    """Per-optimizer-step schedule: linear from ``warmup_lr`` to ``peak_lr`` over ``warmup_steps``, then cosine to
    ``min_lr`` at ``total_steps``.

    The lr is a pure function of the step, so resuming only needs the step count (kept in ``state_dict``) to continue
    on exactly the same curve.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                 warmup_lr: float = 1e-6, min_lr: float = 1e-5) -> None:
        self.optimizer = optimizer
        self.peak_lr, self.warmup_lr, self.min_lr = float(peak_lr), float(warmup_lr), float(min(min_lr, peak_lr))
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr + (self.peak_lr - self.warmup_lr) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))

    def _apply(self) -> None:
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimizer step (call after ``optimizer.step()``)."""
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count, "peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "warmup_lr": self.warmup_lr, "min_lr": self.min_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("peak_lr", "total_steps", "warmup_steps", "warmup_lr", "min_lr"):
            if key in state:
                setattr(self, key, type(getattr(self, key))(state[key]))
        self.step_count = int(state["step_count"])
        self._apply()
