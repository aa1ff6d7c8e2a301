"""Training throughput of the learngene engine against a minimal hand-written loop and against the model's own
ceiling, in the same process.

All sides train the same model (identical initial weights) with AdamW at the same lr and weight decay, the same
loss, AMP dtype and memory format:

- engine: ``Runner.train_segment`` (``train_one_epoch`` plus the runner's per-step callback: stop check, metrics
  lines, lr schedule), fed by the run's loader and preprocessing (``--data-pipeline pil|cached``);
- hand loop: the same loader and preprocessing, a minimal loop (goal: engine / hand >= 0.95x);
- synthetic: one preprocessed batch already on the device, reused every step: forward + backward + step only, the
  ceiling the data pipeline is measured against (issue 13's goal on an H100/H200: engine / synthetic >= 0.9).

Rounds alternate the sides so machine load drifts hit all of them; the first round is warm-up (and compilation,
with ``--compile``). Prints images/s of each and the ratios; ``--output`` also writes them as JSON.

    python benchmarks/train_throughput.py                       # CPU, tiny ViT at 32 px on digits
    python benchmarks/train_throughput.py --device cuda --amp   # GPU, ViT-S/16 at 224 px, bf16 autocast
    python benchmarks/train_throughput.py --device cuda --amp --jpegs 2048 --data-pipeline cached [--compile]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from learngene.training.config import DATA_PIPELINE_CHOICES, TrainConfig  # noqa: E402
from learngene.training.distributed import DistInfo  # noqa: E402
from learngene.training.optim import build_optimizer  # noqa: E402
from learngene.training.runner import Runner, resolve_device  # noqa: E402

log = logging.getLogger("benchmarks.train_throughput")


def _step(model: nn.Module, criterion: nn.Module, images: torch.Tensor, targets: torch.Tensor, device: torch.device,
          optimizer: torch.optim.Optimizer, amp_dtype, scaler) -> None:
    """One forward + backward + optimizer step, the same for the hand loop and the synthetic ceiling."""
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = criterion(model(images), targets)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(model: nn.Module, loader, sampler, epoch: int, steps: int, device: torch.device, lr: float,
              weight_decay: float, optimizer: torch.optim.Optimizer, amp_dtype, scaler, channels_last: bool,
              label_smoothing: float, preprocess=None) -> float:
    """The minimal loop: move, forward under autocast, cross-entropy, backward, AdamW step. Returns seconds."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    model.train()
    sampler.set_epoch(epoch)
    _sync(device)
    start = time.perf_counter()
    for images, targets in itertools.islice(loader, steps):
        images = images.to(device, non_blocking=True)
        if preprocess is not None:  # the loader yields uint8 on a GPU: normalise there, as the engine does
            images = preprocess(images, True)
        elif channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device, non_blocking=True)
        _step(model, criterion, images, targets, device, optimizer, amp_dtype, scaler)
    _sync(device)
    return time.perf_counter() - start


def synthetic_loop(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, device: torch.device,
                   optimizer: torch.optim.Optimizer, amp_dtype, scaler, label_smoothing: float) -> float:
    """Forward + backward + AdamW step on one device-resident batch, ``steps`` times. Returns seconds."""
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    model.train()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        _step(model, criterion, images, targets, device, optimizer, amp_dtype, scaler)
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--amp", action="store_true", help="autocast (bf16 where supported, else fp16 + scaler)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--model", help="timm model (default: tiny ViT on CPU, vit_small_patch16_224 on CUDA)")
    parser.add_argument("--img-size", type=int, help="default 32 on CPU, 224 on CUDA")
    parser.add_argument("--batch-size", type=int, help="default 64 on CPU, 128 on CUDA")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side (plus one warm-up round)")
    parser.add_argument("--workers", type=int, help="loader workers (default: the engine's choice)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--jpegs", type=int, default=0,
                        help="train on this many synthetic 500x375 JPEGs in a temporary folder instead of --dataset "
                        "(decoding and resizing as for a real photo set)")
    parser.add_argument("--data-pipeline", default="auto", choices=DATA_PIPELINE_CHOICES)
    parser.add_argument("--output", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--no-augment", action="store_true",
                        help="RandAugment and random erasing off (shows whether data loading bounds both sides)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LEARNGENE_CACHE_DIR", str(Path(tmp) / "cache"))  # the cached pipeline's files
        dataset = args.dataset
        if args.jpegs:
            from data_pipeline import write_folder

            dataset = str(write_folder(Path(tmp) / "photos", args.jpegs, (500, 375), classes=10))
        gpu = args.device == "cuda"
        model_kwargs = {} if gpu or args.model else {"patch_size": 8, "depth": 4}
        config = TrainConfig(
            model=args.model or ("vit_small_patch16_224" if gpu else "vit_tiny_patch16_224"),
            model_kwargs=model_kwargs,
            dataset=dataset,
            img_size=args.img_size or (224 if gpu else 32),
            batch_size=args.batch_size or (128 if gpu else 64),
            epochs=1000,
            val_fraction=0.05,  # the validation split is never used here: give the training loader the images
            # Mixup/CutMix have no hand-loop counterpart in "minimal": off on both sides; the loader (with RandAugment
            # and random erasing) is shared, so it costs both the same.
            mixup=0.0,
            cutmix=0.0,
            randaugment="none" if args.no_augment else TrainConfig.randaugment,
            reprob=0.0 if args.no_augment else TrainConfig.reprob,
            drop_path=0.0,
            amp="auto" if args.amp else "off",
            compile=args.compile,
            device=args.device,
            workers=args.workers,
            log_every=10,
            data_pipeline=args.data_pipeline,
        ).validate()

        device = resolve_device(config, DistInfo())
        runner = Runner(Path(tmp), config, DistInfo(), device)
        runner.setup()
        # An identical copy of the initial weights for the hand loop, with its own plain AdamW.
        model = copy.deepcopy(runner.model)
        net = torch.compile(model) if args.compile else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=runner.lr, weight_decay=config.weight_decay,
                                      fused=True if device.type == "cuda" else None)
        scaler = torch.amp.GradScaler("cuda") if runner.amp_dtype == torch.float16 else None
        steps = min(args.steps, runner.steps_per_epoch)
        images = steps * config.batch_size
        # The ceiling: a third copy of the weights, with the engine's own optimizer (fused on CUDA), on one batch
        # that the run's own loader and preprocessing produced, kept on the device.
        ceiling = copy.deepcopy(runner.model)
        ceiling_net = torch.compile(ceiling) if args.compile else ceiling
        ceiling_optimizer = build_optimizer(ceiling, runner.lr, config.weight_decay)
        ceiling_scaler = torch.amp.GradScaler("cuda") if runner.amp_dtype == torch.float16 else None
        runner.train_sampler.set_epoch(0)
        raw, raw_targets = next(iter(runner.train_loader))
        resident = raw.to(device)
        resident = runner.preprocess(resident, True) if runner.preprocess is not None else resident
        if runner.channels_last:
            resident = resident.contiguous(memory_format=torch.channels_last)
        resident_targets = raw_targets.to(device)
        engine_s, hand_s, synthetic_s = [], [], []
        def engine_round(epoch: int) -> float:
            _sync(device)
            start = time.perf_counter()
            runner.train_segment(epoch, 0, steps)
            _sync(device)
            return time.perf_counter() - start

        def hand_round(epoch: int) -> float:
            return hand_loop(net, runner.train_loader, runner.train_sampler, epoch, steps, device, runner.lr,
                             config.weight_decay, optimizer, runner.amp_dtype, scaler, runner.channels_last,
                             config.label_smoothing, runner.preprocess)

        def synthetic_round(_epoch: int) -> float:
            return synthetic_loop(ceiling_net, resident, resident_targets, steps, device, ceiling_optimizer,
                                  runner.amp_dtype, ceiling_scaler, config.label_smoothing)

        sides = {"engine": engine_round, "hand": hand_round, "synthetic": synthetic_round}
        times: dict[str, list[float]] = {"engine": engine_s, "hand": hand_s, "synthetic": synthetic_s}
        order = list(sides)
        for round_index in range(args.rounds + 1):
            # Same epoch (same batches) for the loader sides; the order rotates so none always runs first.
            shift = round_index % len(order)
            measured = {name: sides[name](round_index) for name in order[shift:] + order[:shift]}
            if round_index:  # round 0 warms up kernels, allocator, workers and (with --compile) compilation
                for name, seconds in measured.items():
                    times[name].append(seconds)
        runner.close()

    engine_ips = images / statistics.median(engine_s)
    hand_ips = images / statistics.median(hand_s)
    # Each round times both sides back to back, so a per-round ratio cancels slow drifts in machine load; the
    # median of those is the headline figure.
    ratio = statistics.median([h / e for e, h in zip(engine_s, hand_s, strict=True)])
    synthetic_ips = images / statistics.median(synthetic_s)
    ceiling_ratio = statistics.median([s / e for e, s in zip(engine_s, synthetic_s, strict=True)])
    amp = str(runner.amp_dtype).replace("torch.", "") if runner.amp_dtype else "off"
    header = (f"device {device} ({torch.cuda.get_device_name(device) if gpu else 'cpu'}), model {config.model} "
              f"{config.model_kwargs or ''} at {config.img_size} px, batch {config.batch_size}, amp {amp}, "
              f"compile {args.compile}, workers {runner.workers}, data pipeline {runner.data_pipeline}, "
              f"{steps} steps x {args.rounds} rounds, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    print(header)
    print(f"engine     {engine_ips:10.1f} images/s  (rounds: {', '.join(f'{images / s:.1f}' for s in engine_s)})")
    print(f"hand loop  {hand_ips:10.1f} images/s  (rounds: {', '.join(f'{images / s:.1f}' for s in hand_s)})")
    print(f"synthetic  {synthetic_ips:10.1f} images/s  (rounds: {', '.join(f'{images / s:.1f}' for s in synthetic_s)})")
    print(f"ratio engine / hand loop: {ratio:.3f}x (median of per-round ratios; goal >= 0.95x)")
    print(f"ratio engine / synthetic device-resident batches: {ceiling_ratio:.3f}x (goal on an H100/H200 >= 0.9)")
    if gpu:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    record = {"engine_images_per_s": engine_ips, "hand_images_per_s": hand_ips, "ratio": ratio,
              "synthetic_images_per_s": synthetic_ips, "engine_over_synthetic": ceiling_ratio,
              "device": str(device), "device_name": torch.cuda.get_device_name(device) if gpu else "cpu",
              "amp": amp, "model": config.model, "img_size": config.img_size, "batch": config.batch_size,
              "augment": not args.no_augment, "compile": args.compile, "data_pipeline": runner.data_pipeline,
              "dataset": f"{args.jpegs} synthetic JPEGs" if args.jpegs else args.dataset, "workers": runner.workers,
              "steps": steps, "rounds": args.rounds, "load_average_1min": round(os.getloadavg()[0], 2),
              "torch": torch.__version__,
              "rounds_images_per_s": {name: [images / s for s in values] for name, values in times.items()}}
    if gpu:
        record["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if args.json:
        print(json.dumps(record))
    if args.output:
        args.output.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
