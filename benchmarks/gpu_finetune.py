"""A shortened real comparison on one GPU: 6-layer descendants of the built-in ancestor at 224 px, fine-tuned with AMP.

Builds cluster-learngene and scratch descendants (``--inits`` adds others) of the built-in DINOv2 ViT-S/14 at its own
224 px resolution, fine-tunes each for a few epochs on the offline ``digits`` and ``lfw-faces`` sets with the real
training engine (in this process, one run after another), and prints one JSON line per run and one per (dataset,
init) with the mean and std over seeds. Sized to finish well under 5 minutes on one H100; ``--budget-s`` stops
starting new runs once that much time has passed.

Usage on the GPU machine (the built-in ancestor's converted weights in the cache, no internet)::

    LEARNGENE_CACHE_DIR=/path/to/cache HF_HUB_OFFLINE=1 python benchmarks/gpu_finetune.py --out "$OUT"

CPU smoke test (tiny sizes, a few steps)::

    HF_HUB_OFFLINE=1 python benchmarks/gpu_finetune.py --smoke --out /tmp/gpu_smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,lfw-faces")
    parser.add_argument("--inits", default="cluster-learngene,scratch")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run (default: 8 on digits, 30 on the 160-image lfw-faces)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--amp", default="auto", help="auto (bf16 on CUDA) | bf16 | fp16 | off")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--budget-s", type=float, default=270.0, help="start no new run after this many seconds")
    parser.add_argument("--out", default=None, help="directory for descendants, run dirs and the result files")
    parser.add_argument("--smoke", action="store_true", help="CPU check: 28 px, 3 steps, one seed, digits only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.datasets, args.seeds, args.img_size, args.batch_size = "digits", "0", 28, 16
    return args


def recipe(args: argparse.Namespace, dataset: str) -> dict:
    """The short recipe: the paper's optimiser and schedule shape, no heavy augmentation for a few epochs."""
    epochs = args.epochs or (8 if dataset == "digits" else 30)
    data = dict(img_size=args.img_size, batch_size=args.batch_size, epochs=epochs, lr=args.lr, warmup_epochs=1.0,
                randaugment="none", mixup=0.0, cutmix=0.0, reprob=0.0, drop_path=0.0, amp=args.amp,
                device=args.device, log_every=5, save_every_epochs=10_000)
    if args.smoke:
        data.update(max_steps=3, workers=0, device="cpu", amp="off", log_every=1)
    return data


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from learngene.ancestors import load_ancestor
    from learngene.attention.statistics import compute_head_statistics
    from learngene.compare.plan import ComparisonPlan, Variant
    from learngene.compare.report import aggregate
    from learngene.probes import load_probe_images

    args = parse_args(argv)
    started = time.monotonic()
    out = Path(args.out) if args.out else Path(f"/tmp/gpu_finetune_{int(time.time())}")
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() and args.device in ("auto", "cuda") and not args.smoke else "cpu"
    ancestor = load_ancestor("builtin", device=device)
    probes = load_probe_images("builtin", ancestor.summary, num_images=4 if args.smoke else None)
    stats = compute_head_statistics(ancestor.model, probes, ancestor.summary, device=device)
    ancestor.model.to("cpu")  # builds copy weights on the CPU; the runs move their own model
    distances = np.asarray(stats.mean_attention_distance)
    print(json.dumps({"event": "statistics", "images": stats.num_images, "device": device,
                      "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                      "seconds": round(time.monotonic() - started, 1)}), flush=True)

    variants = tuple(Variant(i.strip(), i.strip()) for i in args.inits.split(",") if i.strip())
    seeds = tuple(int(s) for s in args.seeds.split(","))
    records, plans = [], []
    for dataset in (d.strip() for d in args.datasets.split(",") if d.strip()):
        plan = ComparisonPlan(ancestor="builtin", datasets=(dataset,), depth=6, width_ratio=1.0, variants=variants,
                              seeds=seeds, recipe=recipe(args, dataset)).validate()
        plans.append(plan)
        for job in plan.jobs():
            if time.monotonic() - started > args.budget_s:
                print(json.dumps({"event": "skipped", "key": job.key, "reason": "budget"}), flush=True)
                continue
            records.append(train_one(plan, job, ancestor, distances, out))
            print(json.dumps(records[-1]), flush=True)
    rows = [row for plan in plans for row in aggregate(plan, records)]
    summary = [{"event": "summary", **{k: row[k] for k in ("dataset", "init", "seeds", "top1_mean", "top1_std",
                                                           "final_top1_mean", "params", "inherited_params",
                                                           "epochs", "img_size", "images_per_s", "wall_s")}}
               for row in rows]
    for line in summary:
        print(json.dumps(line), flush=True)
    total = time.monotonic() - started
    print(json.dumps({"event": "done", "seconds": round(total, 1)}), flush=True)
    (out / "gpu_finetune.json").write_text(json.dumps({"runs": records, "summary": summary, "seconds": total,
                                                       "args": vars(args)}, indent=1))
    return 0 if all(r["state"] == "succeeded" for r in records) else 1


def train_one(plan, job, ancestor, distances, out: Path) -> dict:
    """Build, save and fine-tune one job's descendant; its figures as one JSON-able record."""
    from learngene.compare.execute import run_figures
    from learngene.compare.plan import dataset_classes
    from learngene.descendant import build_descendant, save_descendant
    from learngene.training import run_training

    directory = out / "descendants" / job.key
    descendant = build_descendant(ancestor, plan.descendant_spec(job, dataset_classes(plan, job.dataset)),
                                  distances=distances if job.variant.init == "cluster-learngene" else None)
    save_descendant(descendant, directory, force=True)
    run_dir = out / "runs" / job.key
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.train_config(job, directory).validate().to_yaml(run_dir / "config.yaml")
    began = time.time()
    result = run_training(run_dir)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    figures = run_figures({**result, "started": began, "ended": time.time()}, metrics)
    repro = json.loads((run_dir / "repro.json").read_text()) if (run_dir / "repro.json").is_file() else {}
    return {"event": "run", "dataset": job.dataset, "init": job.variant.label, "seed": job.seed,
            "state": result["state"], "message": result.get("message"), **figures,
            "params": descendant.config["params"], "inherited_params": descendant.config["inherited_params"],
            "img_size": plan.img_size, "device": (repro.get("resolved") or {}).get("device"),
            "amp": (repro.get("resolved") or {}).get("amp")}


if __name__ == "__main__":
    sys.exit(main())
