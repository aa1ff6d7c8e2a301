"""Count host-device synchronisations inside training steps (issue 13: "no host-device syncs in the step").

Builds a real run (tiny data, the chosen pipeline), takes warm-up steps, then trains more steps with
``torch.cuda.set_sync_debug_mode("warn")`` and records every synchronising CUDA call with the line of learngene code
that made it. Log lines are pushed past the measured steps, so the only sync allowed per log line is not counted.
Prints one JSON line: total syncs, syncs per step, and the distinct call sites. On a CPU there is nothing to count
(the script still runs the steps, to check the plumbing).

    python benchmarks/sync_check.py --device cuda --data-pipeline cached
    python benchmarks/sync_check.py --device cuda --data-pipeline pil
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from learngene.training.config import DATA_PIPELINE_CHOICES, TrainConfig  # noqa: E402
from learngene.training.distributed import DistInfo  # noqa: E402
from learngene.training.runner import Runner, resolve_device  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--data-pipeline", default="cached", choices=DATA_PIPELINE_CHOICES)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="measured steps (after 3 warm-up steps)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--output", type=Path, help="also write the JSON record to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    gpu = args.device == "cuda"
    warmup = 3

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LEARNGENE_CACHE_DIR", str(Path(tmp) / "cache"))
        config = TrainConfig(
            model="vit_tiny_patch16_224", model_kwargs={"depth": 2}, dataset="digits", img_size=args.img_size,
            batch_size=args.batch_size, epochs=100, val_fraction=0.05, data_pipeline=args.data_pipeline,
            amp="auto", device=args.device, workers=args.workers,
            log_every=10_000,  # no log line (the one allowed read) inside the measured steps
        ).validate()
        device = resolve_device(config, DistInfo())
        runner = Runner(Path(tmp), config, DistInfo(), device)
        runner.setup()
        runner.train_segment(0, 0, warmup)
        if gpu:
            torch.cuda.synchronize(device)
        sites: collections.Counter[str] = collections.Counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if gpu:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                # the segment's end reads its mean loss once (one sync per segment, listed at engine.py's line)
                runner.train_segment(0, warmup, args.steps)
            finally:
                if gpu:
                    torch.cuda.set_sync_debug_mode("default")
        for warning in caught:  # each names the Python line that called the synchronising op
            if "synchroniz" in str(warning.message):
                sites[f"{Path(warning.filename).name}:{warning.lineno}"] += 1
        runner.close()
    total = sum(sites.values())
    record = {"device": str(device), "data_pipeline": runner.data_pipeline, "img_size": args.img_size,
              "batch_size": args.batch_size, "steps": args.steps, "syncs": total,
              "syncs_per_step": total / max(args.steps, 1), "sites": dict(sites.most_common()),
              "torch": torch.__version__}
    print(json.dumps(record))
    if args.output:
        args.output.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
