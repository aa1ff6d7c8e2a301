"""One training epoch and one evaluation pass, each returning a metric dict; the runner decides what to do next.

Nothing here reads configuration globals: everything a step needs travels in a :class:`StepContext`. The hot loop
avoids host-device synchronisation: losses stay on the device and are read only when the runner's ``on_step``
callback asks for them (every ``log_every`` steps).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from learngene.training.distributed import all_reduce_sum
from learngene.training.optim import WarmupCosine


class RunningMetrics:
    """Training loss and top-1 summed on the device between two log lines, read with one transfer.

    The step adds to device tensors only (no ``.item()``), so the host never waits for the device inside the loop;
    the runner calls :meth:`read` every ``log_every`` steps. With mixup/CutMix the targets are soft and top-1 counts
    predictions of each mixed target's largest class.
    """

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss summed over steps, correct images
        self.images = 0  # counted on the host: a Python number needs no transfer

    def add(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """One micro-batch: its share of the step's mean loss (0-d; the loss divided by the number of micro-batches)
        and its logits and (hard or soft) targets."""
        labels = targets.argmax(dim=1) if targets.ndim == 2 else targets
        correct = (logits.detach().argmax(dim=1) == labels).sum()
        self.sums += torch.stack([loss.detach().double(), correct.double()])
        self.images += int(labels.shape[0])

    def read(self, steps: int) -> dict[str, float]:
        """``{"loss": mean step loss, "top1": percent}`` over the last ``steps`` steps, then start over."""
        loss, correct = self.sums.tolist()
        images = self.images
        self.reset()
        return {"loss": loss / max(steps, 1), "top1": 100.0 * correct / images if images else float("nan")}

    def reset(self) -> None:
        self.sums.zero_()
        self.images = 0


@dataclass
class StepContext:
    """What a training step needs.

    Attributes:
        model: the module to run (possibly DDP-wrapped and/or compiled).
        ema_target: the plain module the EMA follows (unwrapped), or None.
        amp_dtype: autocast dtype, or None for full precision.
        scaler: a GradScaler for fp16, else None.
        mixup: timm ``Mixup`` (on-device batch mixing), or None.
        preprocess: turns uint8 batches into normalised float ones on the device (``DevicePreprocess``), or None
            when the loader already normalises.
        running: where each step's loss and top-1 are summed on the device for the log lines, or None.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: WarmupCosine
    criterion: nn.Module
    device: torch.device
    accum_steps: int = 1
    amp_dtype: torch.dtype | None = None
    scaler: Any = None
    mixup: Callable | None = None
    clip_grad: float | None = None
    ema: Any = None
    ema_target: nn.Module | None = None
    channels_last: bool = False
    preprocess: Callable[[torch.Tensor, bool], torch.Tensor] | None = None  # on-device normalisation of uint8 input
    running: RunningMetrics | None = None  # device-side sums the runner reads at each log line

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _move(images, targets, self.device, self.channels_last, self.preprocess, train=True)


def _move(images: torch.Tensor, targets: torch.Tensor, device: torch.device, channels_last: bool,
          preprocess: Callable[[torch.Tensor, bool], torch.Tensor] | None, train: bool
          ) -> tuple[torch.Tensor, torch.Tensor]:
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if preprocess is not None:
        images = preprocess(images, train)
    elif channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=non_blocking)


# on_step(step, loss, images) -> True to stop after this step. ``loss`` is a 0-d device tensor (the mean loss over
# the step's micro-batches); ``images`` the number of images this process consumed in the step.
StepCallback = Callable[[int, torch.Tensor, int], bool]


def train_one_epoch(ctx: StepContext, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], start_step: int,
                    num_steps: int, on_step: StepCallback | None = None) -> dict[str, Any]:
    """Run up to ``num_steps`` optimizer steps over ``batches`` (``accum_steps`` micro-batches each).

    Args:
        batches: an iterable of (images (B, 3, H, W), int targets (B,)) already positioned at the first batch.
        start_step: global optimizer step count before this call.
        num_steps: optimizer steps to take at most (the epoch's remainder, or fewer under ``max_steps``).
        on_step: called after every optimizer step; returning True ends the epoch early (a stop request).

    Returns:
        ``{"step", "steps", "images", "loss", "seconds", "stopped"}`` where ``loss`` is the mean training loss of
        the steps taken (NaN when none were) and ``step`` the global step reached.
    """
    model = ctx.model
    model.train()
    ddp_no_sync = getattr(model, "no_sync", None)
    step, steps, images_seen = start_step, 0, 0
    step_loss = torch.zeros((), device=ctx.device)
    total_loss = torch.zeros((), device=ctx.device)
    stopped = False
    start = time.perf_counter()
    micro = 0
    for images, targets in itertools.islice(batches, num_steps * ctx.accum_steps):
        images, targets = ctx.to_device(images, targets)
        if ctx.mixup is not None:
            images, targets = ctx.mixup(images, targets)
        micro += 1
        boundary = micro % ctx.accum_steps == 0
        # Under DDP, gradients are all-reduced only on the micro-batch that completes an optimizer step.
        sync = contextlib.nullcontext() if boundary or ddp_no_sync is None else ddp_no_sync()
        with sync:
            with ctx.autocast():
                logits = model(images)
                loss = ctx.criterion(logits, targets)
            scaled = loss / ctx.accum_steps
            if ctx.running is not None:
                ctx.running.add(scaled, logits, targets)
            if ctx.scaler is not None:
                ctx.scaler.scale(scaled).backward()
            else:
                scaled.backward()
        step_loss += scaled.detach()
        images_seen += images.shape[0]
        if not boundary:
            continue
        _optimizer_step(ctx)
        step += 1
        steps += 1
        total_loss += step_loss
        if on_step is not None and on_step(step, step_loss, images.shape[0] * ctx.accum_steps):
            stopped = True
            break
        step_loss = torch.zeros((), device=ctx.device)
    seconds = time.perf_counter() - start
    return {
        "step": step,
        "steps": steps,
        "images": images_seen,
        "loss": (total_loss / steps).item() if steps else float("nan"),
        "seconds": seconds,
        "stopped": stopped,
    }


def _optimizer_step(ctx: StepContext) -> None:
    if ctx.clip_grad is not None:
        if ctx.scaler is not None:
            ctx.scaler.unscale_(ctx.optimizer)  # clip the true gradients, not the loss-scaled ones
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.clip_grad)
    if ctx.scaler is not None:
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    ctx.scheduler.step()
    if ctx.ema is not None:
        ctx.ema.update(ctx.ema_target, step=ctx.scheduler.step_count)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False,
             preprocess: Callable[[torch.Tensor, bool], torch.Tensor] | None = None) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean cross-entropy over ``batches``, summed over all ranks.

    Returns:
        ``{"top1", "top5", "loss", "images"}``; accuracies are NaN for an empty loader.
    """
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    # sums: loss, top-1 hits, top-5 hits, images, accumulated on the device to avoid a sync per batch
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    autocast = (torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    for images, targets in batches:
        images, targets = _move(images, targets, device, channels_last, preprocess, train=False)
        with autocast:
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        topk = logits.topk(k, dim=1).indices  # (B, k)
        hits = topk.eq(targets[:, None])
        sums += torch.stack([
            criterion(logits, targets).double(),
            hits[:, 0].sum().double(),
            hits.any(dim=1).sum().double(),
            torch.tensor(float(targets.shape[0]), dtype=torch.float64, device=device),
        ])
    all_reduce_sum(sums)
    loss, top1, top5, n = sums.tolist()
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "images": 0}
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n, "images": int(n)}
