"""Training throughput of the learngene engine against a minimal hand-written loop, in the same process.

Both sides train the same model (identical initial weights), on the same loader (same dataset, transforms, workers,
batch), with AdamW at the same lr and weight decay, the same loss, AMP dtype and memory format. The engine side is
``Runner.train_segment``: ``train_one_epoch`` plus the runner's per-step callback (stop check, loss check, metrics
lines, lr schedule). Rounds alternate engine / hand loop so machine load drifts hit both; the first round is warm-up.
Prints images/s of each and the ratio (goal: >= 0.95x).

    python benchmarks/train_throughput.py                       # CPU, tiny ViT at 32 px on digits
    python benchmarks/train_throughput.py --device cuda --amp   # GPU, ViT-S/16 at 224 px, bf16 autocast
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

from learngene.training.config import TrainConfig  # noqa: E402
from learngene.training.distributed import DistInfo  # noqa: E402
from learngene.training.runner import Runner, resolve_device  # noqa: E402

log = logging.getLogger("benchmarks.train_throughput")


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
    parser.add_argument("--no-augment", action="store_true",
                        help="RandAugment and random erasing off (shows whether data loading bounds both sides)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line with the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    gpu = args.device == "cuda"
    model_kwargs = {} if gpu or args.model else {"patch_size": 8, "depth": 4}
    config = TrainConfig(
        model=args.model or ("vit_small_patch16_224" if gpu else "vit_tiny_patch16_224"),
        model_kwargs=model_kwargs,
        dataset=args.dataset,
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
    ).validate()

    with tempfile.TemporaryDirectory() as tmp:
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
        engine_s, hand_s = [], []
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

        for round_index in range(args.rounds + 1):
            # Same epoch (same batches) for both sides; the order alternates so neither always runs first.
            if round_index % 2:
                hand_time, engine_time = hand_round(round_index), engine_round(round_index)
            else:
                engine_time, hand_time = engine_round(round_index), hand_round(round_index)
            if round_index:  # round 0 warms up kernels, allocator, workers and (with --compile) compilation
                engine_s.append(engine_time)
                hand_s.append(hand_time)
        runner.close()

    engine_ips = images / statistics.median(engine_s)
    hand_ips = images / statistics.median(hand_s)
    # Each round times both sides back to back, so a per-round ratio cancels slow drifts in machine load; the
    # median of those is the headline figure.
    ratio = statistics.median([h / e for e, h in zip(engine_s, hand_s, strict=True)])
    amp = str(runner.amp_dtype).replace("torch.", "") if runner.amp_dtype else "off"
    header = (f"device {device} ({torch.cuda.get_device_name(device) if gpu else 'cpu'}), model {config.model} "
              f"{config.model_kwargs or ''} at {config.img_size} px, batch {config.batch_size}, amp {amp}, "
              f"compile {args.compile}, workers {runner.workers}, {steps} steps x {args.rounds} rounds, torch "
              f"{torch.__version__}")
    print(header)
    print(f"engine     {engine_ips:10.1f} images/s  (rounds: {', '.join(f'{images / s:.1f}' for s in engine_s)})")
    print(f"hand loop  {hand_ips:10.1f} images/s  (rounds: {', '.join(f'{images / s:.1f}' for s in hand_s)})")
    print(f"ratio engine / hand loop: {ratio:.3f}x (median of per-round ratios; goal >= 0.95x)")
    if gpu:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    if args.json:
        print(json.dumps({"engine_images_per_s": engine_ips, "hand_images_per_s": hand_ips, "ratio": ratio,
                          "device": str(device), "amp": amp, "model": config.model, "batch": config.batch_size,
                          "augment": not args.no_augment}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
