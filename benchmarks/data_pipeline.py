"""Images/s of the training data pipeline alone: PIL (timm transforms in loader workers) vs cached (decoded-once
memmap + batched augmentation on the device), same run, same dataset, same batch size and workers.

A synthetic image folder of JPEG photos-sized images (default 500 x 375, like Oxford Flowers and CUB) is written to a
temporary directory. Each side is timed over whole batches, from the loader's first item to the batch ready on the
device for the model (normalised, augmented); mixup is left out (the engine applies it to both the same way). Rounds
alternate PIL / cached so load drifts hit both; medians are reported with the load average. The cache build is timed
once, separately (it is paid on the first run only).

    python benchmarks/data_pipeline.py                          # CPU, 224 px, RandAugment on (the paper's recipe)
    python benchmarks/data_pipeline.py --randaugment none       # crop/flip/erase only
    python benchmarks/data_pipeline.py --device cuda --workers 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def write_folder(root: Path, count: int, size: tuple[int, int], classes: int = 4) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    width, height = size
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    for index in range(count):
        folder = root / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        noise = rng.normal(0, 40, (height, width, 3)).astype(np.float32)  # photo-like entropy for JPEG
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{index}.jpg", quality=90)
    return root


def rate(loaders, batches: int, device: torch.device) -> tuple[float, float]:
    """Images per wall second and per CPU second of this process (with --workers 0 all the work is here, and
    CPU time is what other processes on a shared machine do not steal) for ``batches`` training batches."""
    loaders.train_sampler.set_epoch(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, cpu_start, images = time.perf_counter(), time.process_time(), 0
    for batch, _targets in itertools.islice(loaders.train_loader, batches):
        batch = batch.to(device, non_blocking=True)
        if loaders.preprocess is not None:
            batch = loaders.preprocess(batch, True)
        images += batch.shape[0]
    sync()
    return images / (time.perf_counter() - start), images / max(time.process_time() - cpu_start, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--image-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    parser.add_argument("--img-size", type=int, default=224, help="training resolution")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="batches per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--randaugment", default="rand-m9-mstd0.5-inc1")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice); 1 on a shared machine "
                        "keeps both sides from spinning against other jobs")
    parser.add_argument("--output", type=Path, help="also write the JSON record to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from learngene.training.config import TrainConfig
    from learngene.training.data import build_loaders, load_splits

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEARNGENE_CACHE_DIR"] = str(Path(tmp) / "cache")
        folder = write_folder(Path(tmp) / "photos", args.images, tuple(args.image_size))
        cfg = TrainConfig(model="vit_tiny_patch16_224", dataset=str(folder), img_size=args.img_size,
                          batch_size=args.batch_size, workers=args.workers, randaugment=args.randaugment,
                          val_fraction=0.1, device=args.device)
        splits = load_splits(cfg)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        pil = build_loaders(cfg, splits, mean, std, device, data_pipeline="pil")
        start = time.perf_counter()
        cached = build_loaders(cfg, splits, mean, std, device, data_pipeline="cached")
        build_s = time.perf_counter() - start
        rate(pil, 1, device), rate(cached, 1, device)  # warm-up (workers, page cache)
        load_before = os.getloadavg()[0]
        pil_rates, cached_rates = [], []
        for _ in range(args.rounds):
            pil_rates.append(rate(pil, args.batches, device))
            cached_rates.append(rate(cached, args.batches, device))
        load_after = os.getloadavg()[0]
    p, c = (statistics.median(r[0] for r in rates) for rates in (pil_rates, cached_rates))
    p_cpu, c_cpu = (statistics.median(r[1] for r in rates) for rates in (pil_rates, cached_rates))
    record = {
        "device": args.device, "img_size": args.img_size, "source_image_size": list(args.image_size),
        "train_images": len(splits.train), "batch_size": args.batch_size, "workers": args.workers,
        "randaugment": args.randaugment, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "cache_build_s": round(build_s, 2),
        "pil_images_per_s": round(p, 1), "cached_images_per_s": round(c, 1), "cached_over_pil": round(c / p, 2),
        "pil_images_per_cpu_s": round(p_cpu, 1), "cached_images_per_cpu_s": round(c_cpu, 1),
        "cached_over_pil_cpu": round(c_cpu / p_cpu, 2),
        "pil_rounds": [round(r[0], 1) for r in pil_rates], "cached_rounds": [round(r[0], 1) for r in cached_rates],
    }
    print(json.dumps(record))
    if args.output:
        args.output.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
