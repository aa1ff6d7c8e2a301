"""How long a run will take, from a short timing of its real training step before it is launched.

The estimate builds the run's model exactly as the run would (:func:`learngene.training.model.build_model`), on
the run's device, with the run's optimizer, schedule, loss, mixing, accumulation and precision, and times a few
optimizer steps of :func:`learngene.training.engine.train_one_epoch` on random batches of the run's batch size and
resolution. It leaves out data loading and augmentation (the batches are made once, on the device), evaluation,
checkpoints and ``torch.compile``: on a CPU the model's step is most of a step's time; a slow image folder is not
measured. Nothing is written to disk.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig
from learngene.training.distributed import DistInfo
from learngene.training.engine import StepContext, train_one_epoch
from learngene.training.model import build_model
from learngene.training.optim import WarmupCosine, build_optimizer
from learngene.training.runner import resolve_amp, resolve_device


@dataclass(frozen=True)
class Estimate:
    """A measured step time and the run's length in optimizer steps.

    Attributes:
        seconds_per_step: mean wall time of one optimizer step (``accum_steps`` micro-batches).
        total_steps: the run's optimizer steps (epochs x steps per epoch, capped by ``max_steps``).
        steps_per_epoch: optimizer steps per pass over the training split.
        train_images: images in the training split.
        device: the device the steps ran on (``"cpu"``, ``"cuda:0"``).
    """

    seconds_per_step: float
    total_steps: int
    steps_per_epoch: int
    train_images: int
    device: str

    @property
    def total_seconds(self) -> float:
        return self.seconds_per_step * self.total_steps


def planned_steps(config: TrainConfig, train_images: int, world_size: int = 1) -> tuple[int, int]:
    """(steps per epoch, total steps) of a run over ``train_images`` images, counted as the runner counts them.

    Raises:
        LearngeneError: the training split is smaller than one optimizer step.
    """
    shard = math.ceil(train_images / world_size)
    steps_per_epoch = (shard // config.batch_size) // config.accum_steps
    if steps_per_epoch < 1:
        raise LearngeneError(f"the training split has {train_images} images, fewer than one step of "
                             f"{config.batch_size} x {config.accum_steps} images: lower the batch size")
    total = config.epochs * steps_per_epoch
    return steps_per_epoch, total if config.max_steps is None else min(total, config.max_steps)


def _random_batches(config: TrainConfig, num_classes: int, device: torch.device):
    """The same random batch forever: normalised-looking images and integer labels, made once on the device."""
    generator = torch.Generator().manual_seed(config.seed)
    images = torch.randn(config.batch_size, 3, config.img_size, config.img_size, generator=generator).to(device)
    targets = torch.randint(0, num_classes, (config.batch_size,), generator=generator).to(device)
    while True:
        yield images, targets


def time_training_steps(config: TrainConfig, steps: int = 3, warmup: int = 1, num_classes: int = 10) -> float:
    """Mean seconds per optimizer step of ``config``'s model on its device, after ``warmup`` untimed steps.

    Args:
        config: the run's settings (model source, img_size, batch_size, accum_steps, device, amp, mixup, ...).
        steps: optimizer steps to time (each is ``accum_steps`` forward + backward passes and one AdamW step).
        warmup: steps taken first and not timed (first-call allocations, kernel selection).
        num_classes: outputs of the classifier, as the run's dataset has them.

    Raises:
        LearngeneError: unknown model, unreadable descendant, or no such device.
    """
    if steps < 1 or warmup < 0:
        raise LearngeneError(f"time at least one step after zero or more warm-up steps (got {steps}, {warmup})")
    device = resolve_device(config, DistInfo())
    torch.manual_seed(config.seed)
    model, _, _ = build_model(config, num_classes)
    model.to(device)
    optimizer = build_optimizer(model, config.resolved_lr(), config.weight_decay)
    scheduler = WarmupCosine(optimizer, config.resolved_lr(), warmup + steps, warmup_lr=config.warmup_lr,
                             min_lr=config.min_lr)
    amp_dtype = resolve_amp(config, device)
    if config.mixup_active:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        mixup = Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.label_smoothing,
                      num_classes=num_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    else:
        mixup, criterion = None, nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    ema = None
    if config.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=config.ema_decay)
    ctx = StepContext(model=model, optimizer=optimizer, scheduler=scheduler, criterion=criterion, device=device,
                      accum_steps=config.accum_steps, amp_dtype=amp_dtype,
                      scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None, mixup=mixup,
                      clip_grad=config.clip_grad, ema=ema, ema_target=model)
    batches = _random_batches(config, num_classes, device)
    if warmup:
        train_one_epoch(ctx, batches, 0, warmup)
    _synchronize(device)
    start = time.perf_counter()
    result = train_one_epoch(ctx, batches, warmup, steps)
    _synchronize(device)  # the loop queues work on a GPU without waiting for it
    return (time.perf_counter() - start) / result["steps"]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimate_run(config: TrainConfig, steps: int = 3, warmup: int = 1) -> Estimate:
    """Count the run's steps from its dataset (loaded once, as the run loads it) and time its step.

    Raises:
        LearngeneError: as :func:`learngene.training.data.load_splits`, :func:`planned_steps` and
            :func:`time_training_steps`.
    """
    from learngene.training.data import load_splits

    splits = load_splits(config)
    steps_per_epoch, total = planned_steps(config, len(splits.train))
    seconds = time_training_steps(config, steps=steps, warmup=warmup, num_classes=splits.num_classes)
    return Estimate(seconds_per_step=seconds, total_steps=total, steps_per_epoch=steps_per_epoch,
                    train_images=len(splits.train), device=str(resolve_device(config, DistInfo())))
