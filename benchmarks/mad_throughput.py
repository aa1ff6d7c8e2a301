"""Attention-statistics throughput against a plain fused forward, and peak memory vs the number of probe images.

Both sides run the same model on the same pre-decoded batches in this one process, interleaved (A, B, A, B, ...),
and the ratio of medians is printed: this machine is shared and noisy, so absolute times mean little.

    python benchmarks/mad_throughput.py [--model random:deit_small_patch16_224] [--batch-size 8] [--repeats 5]
    python benchmarks/mad_throughput.py --memory       # peak RSS for 16 vs 256 probe images (fresh processes)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class _Batches:
    """A probe set of pre-decoded batches, so both sides time the model and not JPEG decoding."""

    def __init__(self, batch: torch.Tensor, count: int):
        self.batch, self.count, self.description = batch, count, "benchmark"

    def __len__(self) -> int:
        return self.batch.shape[0] * self.count

    def batches(self, batch_size: int):
        for _ in range(self.count):
            yield self.batch


def throughput(model_spec: str, batch_size: int, batches: int, repeats: int, device: str) -> dict:
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    ancestor = load_ancestor(model_spec, device=device)
    probes = load_probe_images("builtin", ancestor.summary, num_images=batch_size)
    batch = probes.tensors.to(device)
    source = _Batches(batch, batches)
    model = ancestor.model

    def plain():
        with torch.no_grad():
            for _ in range(batches):
                model(batch)

    def stats():
        compute_head_statistics(model, source, ancestor.summary, batch_size=batch_size, device=device)

    def timed(fn):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    plain(), stats()  # warm-up
    plain_times, stats_times = [], []
    for _ in range(repeats):
        plain_times.append(timed(plain))
        stats_times.append(timed(stats))
    images = batch_size * batches
    p, s = statistics.median(plain_times), statistics.median(stats_times)
    return {
        "model": model_spec, "device": device, "batch_size": batch_size, "images_per_pass": images,
        "plain_fused_images_per_s": round(images / p, 2), "statistics_images_per_s": round(images / s, 2),
        "time_ratio_statistics_over_plain": round(s / p, 3),
    }


def peak_memory_child(model_spec: str, num_images: int, batch_size: int) -> None:
    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.probes import load_probe_images

    ancestor = load_ancestor(model_spec)
    # builtin has 36 distinct views; repeat them to reach num_images, decoding lazily as a folder would
    base = load_probe_images("builtin", ancestor.summary)
    base.names = [base.names[i % len(base)] for i in range(num_images)]
    base.loaders = [base.loaders[i % len(base.loaders)] for i in range(num_images)]
    compute_head_statistics(ancestor.model, base, ancestor.summary, batch_size=batch_size, device="cpu")
    print(json.dumps({"num_images": num_images, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random:deit_small_patch16_224")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory", action="store_true", help="measure peak RSS at 16 vs 256 probe images")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.model, args.memory_child, args.batch_size)
        return
    if args.memory:
        rows = []
        for n in (16, 256):
            out = subprocess.run([sys.executable, __file__, "--model", args.model, "--batch-size",
                                  str(args.batch_size), "--memory-child", str(n)],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows))
        print(f"peak RSS ratio 256 vs 16 images: {rows[1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.3f}")
        return
    print(json.dumps(throughput(args.model, args.batch_size, args.batches, args.repeats, args.device)))


if __name__ == "__main__":
    main()
