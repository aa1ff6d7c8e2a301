"""The runner: sets a run up from its directory, drives epochs of training and evaluation, and records everything.

:func:`learngene.training.worker.run_training` wraps it with signal handling, error reporting and ``result.json``.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from learngene.atomic import write_json_atomic
from learngene.errors import LearngeneError
from learngene.runs import rundir
from learngene.training import checkpoint as ckpt
from learngene.training.config import TrainConfig
from learngene.training.data import build_loaders, load_splits
from learngene.training.distributed import DistInfo, any_rank, barrier, gather_objects
from learngene.training.engine import RunningMetrics, StepContext, evaluate, train_one_epoch
from learngene.training.metrics_log import MetricsLogger
from learngene.training.model import build_model
from learngene.training.optim import WarmupCosine, build_optimizer

log = logging.getLogger("learngene.training")

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class StopFlag:
    """Set by a signal handler (or a test); the runner checks it after every optimizer step."""

    requested: bool = False
    reason: str = ""

    def request(self, reason: str = "stop requested") -> None:
        self.requested, self.reason = True, reason


@dataclass
class RunOutcome:
    """How the training loop ended (``state`` is succeeded or stopped; failures raise)."""

    state: str
    step: int
    epoch: int
    best_top1: float | None
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(config: TrainConfig, dist: DistInfo) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise LearngeneError("--device cuda was asked for but no CUDA GPU is visible (use --device cpu)")
        return torch.device("cuda", dist.local_rank if dist.distributed else torch.cuda.current_device())
    return torch.device("cpu")


def resolve_amp(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """auto: bf16 on CUDA where supported, else fp16 on CUDA, full precision on CPU (CPU autocast is slower)."""
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "fp16":
        if device.type != "cuda":
            raise LearngeneError("--amp fp16 needs a CUDA GPU (use --amp bf16 or off on CPU)")
        return torch.float16
    if config.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "timm", "numpy", "learngene"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def _git_commit() -> str | None:
    """The commit of the checkout this package runs from, if it is one (never fails a run)."""
    root = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def run_dir_deleted(run_dir: Path) -> LearngeneError:
    """The failure of a run whose directory disappeared under it (whatever write noticed it first)."""
    return LearngeneError(f"run directory {run_dir} was deleted while the run was training")


def oom_message(config: TrainConfig, device: torch.device) -> str:
    smaller = max(1, config.batch_size // 2)
    if config.mixup_active and smaller % 2:
        smaller = max(2, smaller - 1)
    where = "GPU" if device.type == "cuda" else "CPU"
    return (f"batch size {config.batch_size} does not fit in {where} memory: try --batch-size {smaller} "
            f"(with --accum-steps {config.accum_steps * 2} to keep the total batch)")


class Runner:
    """Owns one run's model, data, optimizer and records; :meth:`run` trains until done, stopped or max_steps.

    Args:
        run_dir: the run directory holding ``config.yaml``.
        config: the validated configuration.
        dist: this process's place in the process group.
        resume: continue from ``checkpoints/last.pt``.
        stop: polled after each optimizer step.
        progress: called with every metrics record (start, train, eval) on rank 0.
    """

    def __init__(self, run_dir: Path, config: TrainConfig, dist: DistInfo, device: torch.device,
                 resume: bool = False, stop: StopFlag | None = None, progress: ProgressCallback | None = None) -> None:
        self.run_dir, self.config, self.dist, self.device = Path(run_dir), config, dist, device
        self.resume, self.stop, self.progress = resume, stop or StopFlag(), progress
        self.ckpt_dir = self.run_dir / rundir.CHECKPOINT_DIR
        self.metrics = MetricsLogger(self.run_dir, enabled=dist.is_main)
        self.step, self.epoch, self.best_top1 = 0, 0, None
        self.evaluated_step: int | None = None  # the step of the last evaluation (checkpointed)
        self._interval_start = time.perf_counter()
        self._interval_images = 0
        self._interval_step = 0

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg, dist, device = self.config, self.dist, self.device
        # Same seed on every rank while the model is built (its random parts, and the EMA copy taken from it, must
        # agree across ranks); a per-rank seed afterwards so each rank draws its own augmentations.
        seed_everything(cfg.seed, cfg.deterministic)
        if dist.is_main:
            splits = load_splits(cfg)  # rank 0 first: it may download, the others then find the files
            barrier()
        else:
            barrier()
            splits = load_splits(cfg)
        self.classes = splits.classes
        model, mean, std = build_model(cfg, splits.num_classes)
        seed_everything(cfg.seed + dist.rank, cfg.deterministic)
        # PIL in loader workers, or the decoded-once cache with batched augmentation on the device (issue 13)
        loaders = build_loaders(cfg, splits, mean, std, device, dist.rank, dist.world_size,
                                cfg.data_pipeline)
        self.train_sampler, self.train_loader, self.val_loader = (loaders.train_sampler, loaders.train_loader,
                                                                  loaders.val_loader)
        self.steps_per_epoch = (self.train_sampler.shard_size() // cfg.batch_size) // cfg.accum_steps
        if self.steps_per_epoch < 1:
            raise LearngeneError(
                f"the training split has {loaders.train_size} images, fewer than one step of "
                f"{cfg.batch_size} x {cfg.accum_steps} x {dist.world_size} processes: lower --batch-size"
            )
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)

        model.to(device)
        self.channels_last = cfg.channels_last and device.type == "cuda"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model  # the plain module: checkpoints and EMA read it
        self.preprocess = loaders.preprocess
        self.amp_dtype = resolve_amp(cfg, device)
        self.lr = cfg.resolved_lr(dist.world_size)
        optimizer = build_optimizer(model, self.lr, cfg.weight_decay)
        self.scheduler = WarmupCosine(optimizer, self.lr, self.total_steps,
                                      warmup_steps=round(cfg.warmup_epochs * self.steps_per_epoch),
                                      warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr)
        self.optimizer = optimizer
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ema = None
        if cfg.ema:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(model, decay=cfg.ema_decay)

        if cfg.mixup_active:
            from timm.data import Mixup
            from timm.loss import SoftTargetCrossEntropy

            mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                          num_classes=splits.num_classes)
            criterion: nn.Module = SoftTargetCrossEntropy()
        else:
            mixup = None
            criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

        if self.resume:
            self._load_last()

        net: nn.Module = model
        if cfg.compile:
            net = torch.compile(net)
        self.eval_net = net  # evaluation needs no gradient sync: skip the DDP wrapper
        if dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        self.net = net
        self.ctx = StepContext(model=net, optimizer=optimizer, scheduler=self.scheduler, criterion=criterion,
                               device=device, accum_steps=cfg.accum_steps, amp_dtype=self.amp_dtype,
                               scaler=self.scaler, mixup=mixup, clip_grad=cfg.clip_grad, ema=self.ema,
                               ema_target=model, channels_last=self.channels_last, preprocess=self.preprocess,
                               running=RunningMetrics(device))
        self.workers, self.data_pipeline = loaders.workers, loaders.pipeline
        if dist.is_main:
            self._write_repro()

    def _resolved(self) -> dict[str, Any]:
        return {"lr": self.lr, "num_classes": len(self.classes), "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "world_size": self.dist.world_size,
                "total_batch": self.config.batch_size * self.config.accum_steps * self.dist.world_size,
                "device": str(self.device), "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
                "workers": self.workers, "data_pipeline": self.data_pipeline, "channels_last": self.channels_last}

    def _write_repro(self) -> None:
        devices: list[str] = ["cpu"]
        if self.device.type == "cuda":
            devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        record = {
            "seed": self.config.seed, "versions": _package_versions(), "git_commit": _git_commit(),
            "host": socket.gethostname(), "platform": platform.platform(), "devices": devices,
            "world_size": self.dist.world_size, "argv": sys.argv, "resumed": self.resume,
            "resolved": self._resolved(), "classes": self.classes,
        }
        name = rundir.repro_file(self.step if self.resume else None)
        write_json_atomic(self.run_dir / name, record)

    # ------------------------------------------------------------------------------------------- checkpoints
    def _state(self, rank_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "step": self.step,
            "epoch": self.epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "world_size": self.dist.world_size,
            "best_top1": self.best_top1,
            "evaluated_step": self.evaluated_step,
            "config": self.config.to_dict(),
            "classes": self.classes,
            # rank 0's states under the keys checkpoints have always had, so older versions still resume them
            "rng": rank_states[0]["rng"],
            "augment_rng": rank_states[0]["augment_rng"],
            ckpt.RANK_STATES: rank_states,
        }

    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (rank 0 writes it).

        Every rank must call this at the same step: it gathers every rank's generator states to rank 0 first. The
        callers' conditions are all the same on every rank (step counts, :func:`any_rank` stops, all-reduced
        accuracies).
        """
        rank_states = gather_objects(ckpt.rank_state(self.preprocess))
        if self.dist.is_main:
            ckpt.save_checkpoint(self.ckpt_dir / f"{name}.pt", self._state(rank_states))
            log.info("saved checkpoint %s at step %d", name, self.step)

    def _load_last(self) -> None:
        path = self.run_dir / rundir.LAST_CHECKPOINT
        state = ckpt.load_checkpoint(path)
        if state.get("steps_per_epoch") != self.steps_per_epoch:
            raise LearngeneError(
                f"{path} was written with {state.get('steps_per_epoch')} steps per epoch, this run has "
                f"{self.steps_per_epoch}: resume with the same data, batch size and number of processes"
            )
        # Different process counts can give the same steps per epoch (100 images at batch 32: 1 step on 2 or 3
        # processes); checkpoints from before world_size was saved have only the check above.
        if state.get("world_size", self.dist.world_size) != self.dist.world_size:
            raise LearngeneError(
                f"{path} was written by {state['world_size']} processes, this run has {self.dist.world_size}: "
                f"resume with the same number of processes"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.module.load_state_dict(state["ema"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise LearngeneError(f"{path} does not match this run's model ({str(error).splitlines()[0][:200]})") from None
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.best_top1 = state.get("best_top1")
        self.evaluated_step = state.get("evaluated_step")
        if not ckpt.restore_rank_state(state, self.preprocess, self.dist.rank, self.dist.world_size) and self.dist.rank:
            log.info("%s holds rank 0's generator states only (an older checkpoint): rank %d re-seeded from them",
                     path, self.dist.rank)
        log.info("resumed from %s at step %d (epoch %d)", path, self.step, self.epoch)

    # ------------------------------------------------------------------------------------------------ records
    def _emit(self, record: dict[str, Any]) -> None:
        written = self.metrics.write(record)
        if self.progress is not None and self.dist.is_main:
            self.progress(written)

    def _on_step(self, step: int, loss: torch.Tensor, images: int) -> bool:
        self.step = step
        self._interval_images += images * self.dist.world_size
        if self.dist.is_main and not self.run_dir.is_dir():  # a stat per step: cheap, and nothing can be saved
            raise run_dir_deleted(self.run_dir)
        stop = any_rank(self.stop.requested, self.device) if self.dist.distributed else self.stop.requested
        if step % self.config.log_every == 0 or step == self.total_steps or stop:
            now = time.perf_counter()
            elapsed = max(now - self._interval_start, 1e-9)
            steps_in_interval = max(1, step - self._interval_step)
            # the only host-device sync of the loop: the interval's sums, read once per log line
            running = self.ctx.running.read(steps_in_interval)
            value = running["loss"]
            if not math.isfinite(value):
                raise LearngeneError(f"training loss became {value} at step {step}: lower the learning rate "
                                     f"(--lr) or enable --clip-grad")
            seconds_per_step = elapsed / steps_in_interval
            record: dict[str, Any] = {
                "kind": "train", "step": step, "epoch": self.epoch, "loss": value, "train_top1": running["top1"],
                "lr": self.scheduler.get_last_lr(), "images_per_s": self._interval_images / elapsed,
                "eta_s": seconds_per_step * (self.total_steps - step),
            }
            if self.device.type == "cuda":
                record["gpu_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            self._emit(record)
            self._interval_start, self._interval_images, self._interval_step = now, 0, step
        return stop

    def _evaluate(self) -> dict[str, Any]:
        result = evaluate(self.eval_net, self.val_loader, self.device, self.amp_dtype, self.channels_last,
                          self.preprocess)
        self.evaluated_step = self.step
        improved = self.best_top1 is None or result["top1"] > self.best_top1
        if improved and math.isfinite(result["top1"]):
            self.best_top1 = result["top1"]
        record = {"kind": "eval", "step": self.step, "epoch": self.epoch, "top1": result["top1"],
                  "top5": result["top5"], "loss": result["loss"], "best_top1": self.best_top1,
                  "images": result["images"]}
        if self.ema is not None:
            ema_result = evaluate(self.ema.module, self.val_loader, self.device, self.amp_dtype, self.channels_last,
                                  self.preprocess)
            record.update(ema_top1=ema_result["top1"], ema_top5=ema_result["top5"], ema_loss=ema_result["loss"])
        self._emit(record)
        log.info("eval step %d epoch %d: top1 %.2f top5 %.2f loss %.4f (best %.2f)", self.step, self.epoch,
                 result["top1"], result["top5"], result["loss"], self.best_top1 or float("nan"))
        if improved:
            self.save("best")
        return record

    # -------------------------------------------------------------------------------------------------- loop
    def train_segment(self, epoch: int, offset: int, num_steps: int) -> dict[str, Any]:
        """Train ``num_steps`` optimizer steps of ``epoch`` starting ``offset`` steps into it, logging as it goes.

        Returns:
            :func:`~learngene.training.engine.train_one_epoch`'s metric dict.
        """
        cfg = self.config
        self.epoch = epoch
        self.train_sampler.set_epoch(epoch, offset * cfg.accum_steps * cfg.batch_size)
        self._interval_start, self._interval_images, self._interval_step = time.perf_counter(), 0, self.step
        self.ctx.running.reset()
        result = train_one_epoch(self.ctx, self.train_loader, self.step, num_steps, on_step=self._on_step)
        self.step = result["step"]
        return result

    def run(self) -> RunOutcome:
        cfg = self.config
        spe = self.steps_per_epoch
        self._emit({"kind": "start", "step": self.step, "epoch": self.epoch, "total_steps": self.total_steps,
                    "steps_per_epoch": spe, "epochs": cfg.epochs, "resumed": self.resume,
                    "world_size": self.dist.world_size, "lr": self.lr, "classes": len(self.classes)})
        log.info("training %d steps (%d per epoch) on %s, world size %d, total batch %d, lr %.3g", self.total_steps,
                 spe, self.device, self.dist.world_size, cfg.batch_size * cfg.accum_steps * self.dist.world_size,
                 self.lr)
        while self.step < self.total_steps:
            # A stop that arrived during setup or evaluation is honoured before more steps are taken.
            if any_rank(self.stop.requested, self.device):
                self.save("last")
                return RunOutcome("stopped", self.step, self.epoch, self.best_top1,
                                  f"stopped at step {self.step} ({self.stop.reason or 'stop requested'})")
            self.epoch = self.step // spe
            offset = self.step - self.epoch * spe  # optimizer steps already taken in this epoch
            result = self.train_segment(self.epoch, offset, min(spe - offset, self.total_steps - self.step))
            if result["stopped"]:
                self.save("last")
                return RunOutcome("stopped", self.step, self.epoch, self.best_top1,
                                  f"stopped at step {self.step} ({self.stop.reason or 'stop requested'})")
            epoch_done = self.step % spe == 0
            finished = self.step >= self.total_steps
            if finished or (epoch_done and (self.epoch + 1) % cfg.eval_every_epochs == 0):
                self._evaluate()
            if finished or (epoch_done and (self.epoch + 1) % cfg.save_every_epochs == 0):
                self.save("last")
        if self.evaluated_step != self.step:
            # Every step was taken but the final evaluation was not: a stop that landed on the last step ended the
            # run as "stopped" before it, and this is its resume (it used to report "succeeded" unevaluated).
            self._evaluate()
            self.save("last")
        best = "n/a" if self.best_top1 is None else f"{self.best_top1:.2f}"
        return RunOutcome("succeeded", self.step, self.epoch, self.best_top1,
                          f"finished {self.step} steps, best top-1 {best}%")

    def close(self) -> None:
        """Stop the data-loading worker processes and close the records (on every way out, failures included)."""
        for name in ("train_loader", "val_loader"):
            shutdown_loader(getattr(self, name, None))
        self.metrics.close()


def shutdown_loader(loader: Any) -> None:
    """Stop a DataLoader's worker processes now instead of whenever its iterator is garbage-collected.

    Persistent workers live as long as the loader's iterator, and after a failure the traceback can keep that alive
    until interpreter exit, where multiprocessing waits for workers that (by design, see ``data.make_loader``) ignore
    its SIGTERM: the process would never end. torch has no public call for this; ``_shutdown_workers`` is what the
    iterator's own ``__del__`` runs.
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is None:
        return
    loader._iterator = None
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        try:
            shutdown()
        except Exception as error:  # noqa: BLE001 - the worker's exit path kills whatever is left anyway
            log.debug("shutting down loader workers failed: %s", error)
