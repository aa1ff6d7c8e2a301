"""AdamW parameter groups and the per-step warm-up + cosine learning-rate schedule, from timm's own pieces.

timm decides which parameters decay (:func:`timm.optim.param_groups_weight_decay`), builds the optimizer
(:func:`timm.optim.create_optimizer_v2`) and computes the curve (:class:`timm.scheduler.CosineLRScheduler`); this
module only fixes the recipe's settings and a stable layout, so checkpoints written before keep resuming.
"""

from __future__ import annotations

from typing import Any

import torch
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from timm.scheduler import CosineLRScheduler
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups, always in this order: decayed weight matrices, then undecayed norms, biases and tokens.

    Decaying a LayerNorm gain or a bias pulls it toward zero for no regularisation benefit, and decaying the CLS
    token / position embedding erases what the descendant inherited; so every 1-D parameter and every name the model
    lists in ``no_weight_decay()`` (timm's convention: cls_token, pos_embed, ...) goes to the undecayed group, also
    when the model sits inside a wrapper (``*.pos_embed``). timm applies that rule; its groups come in the other
    order, are dropped when empty and merged when the decay is 0, which would change the optimizer's state layout
    between runs: they are laid out here as two fixed groups.
    """
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    patterns = sorted(skip) + [f"*.{name}" for name in sorted(skip)]
    # A non-zero decay makes timm split the parameters even when the recipe's decay is 0.
    groups = param_groups_weight_decay(model, weight_decay=1.0, no_weight_decay_list=patterns)
    decay = [p for group in groups if group["weight_decay"] != 0.0 for p in group["params"]]
    no_decay = [p for group in groups if group["weight_decay"] == 0.0 for p in group["params"]]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def adamw_kernels(model: nn.Module) -> dict[str, bool]:
    """How AdamW should step: ``fused`` (one kernel for all parameters) when every parameter is a floating-point
    CUDA tensor, else ``foreach`` (multi-tensor ops; torch's default on a CPU is the slower per-parameter loop).

    timm's ``create_optimizer_v2`` forwards ``foreach`` itself and any other keyword (``fused``) to
    ``torch.optim.AdamW``; only one of the two may be set.
    """
    params = list(model.parameters())
    if params and all(p.is_cuda and p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (betas 0.9/0.999, eps 1e-8, :func:`adamw_kernels`) over :func:`param_groups`."""
    return create_optimizer_v2(param_groups(model, weight_decay), opt="adamw", lr=lr, weight_decay=weight_decay,
                               betas=(0.9, 0.999), eps=1e-8, **adamw_kernels(model))


class WarmupCosine:
    """Per-optimizer-step schedule: linear from ``warmup_lr`` to ``peak_lr`` over ``warmup_steps``, then cosine to
    ``min_lr`` at ``total_steps`` (and ``min_lr`` after it).

    The curve is timm's ``CosineLRScheduler`` stepped per update; this class keeps the step count, so resuming only
    needs ``state_dict`` to continue on exactly the same curve (the format checkpoints have always stored).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, peak_lr: float, total_steps: int, warmup_steps: int = 0,
                 warmup_lr: float = 1e-6, min_lr: float = 1e-5) -> None:
        self.optimizer = optimizer
        self.peak_lr, self.warmup_lr, self.min_lr = float(peak_lr), float(warmup_lr), float(min(min_lr, peak_lr))
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps))
        self.step_count = 0
        self._build()

    def _build(self) -> None:
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.peak_lr  # timm's base lr for every group (an old checkpoint may lack it)
        self._curve = CosineLRScheduler(
            self.optimizer,
            t_initial=max(1, self.total_steps - self.warmup_steps),  # the cosine part, after the warm-up
            lr_min=self.min_lr,
            warmup_t=self.warmup_steps,
            warmup_lr_init=self.warmup_lr,
            warmup_prefix=True,
            t_in_epochs=False,
        )
        self._apply()

    def _apply(self) -> None:
        self._curve.step_update(self.step_count)

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
        self._build()
