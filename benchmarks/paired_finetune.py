"""Paired fine-tuning: does choosing heads by cluster train better than other head choices of the same shape?

Issue 14's second experiment. The probe (``learngene probe``) scores frozen features; this fine-tunes. For every
seed it builds, from the built-in ancestor, one 6-layer descendant per row and fine-tunes each on ``digits`` at
56 px (4 x 4 patches of the ancestor's 14 px, so attention distance has room to act) as a tracked run:

- ``cluster-learngene``: the method (Eps 10, MinHds 1, the statistics of the built-in probe images);
- ``random-heads``: the same descendant with each layer's inherited heads replaced by as many heads drawn at random
  from that ancestor layer (draw ``seed``; the probe's null, one draw per seed) - everything else identical, so the
  difference isolates the head choice;
- ``pretrained-prune``: the ancestor's first layers with their first H_d heads;
- ``scratch``: the descendant architecture with random weights.

Runs sharing a seed share the build seed (Cluster-Learngene and its random-heads twin even share the classifier's
initial weights), the data order and the validation split, so the table pairs them by seed: per-seed differences against Cluster-Learngene and a paired t-test
(:mod:`learngene.evaluation.paired`). The primary score is the final top-1 (the last evaluation), which no choice
of checkpoint has seen; the mean over every evaluation of a run (the area under its learning curve) is the
second, less noisy one while the runs are still learning.

The runs go through the run manager's queue (``--runs-dir``, ``--slots`` at once, one CPU thread each), so they are
visible in ``learngene runs`` and the app. A rerun with the same ``--work`` keeps finished runs and trains only
what is missing. Budget on the shared 2-core machine: 4 rows x 5 seeds x 200 steps, two at a time, took 55 minutes
beside other work; docs/results.md used 10 seeds (section 0b).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/paired_finetune.py --work /tmp/lg_paired --out docs/paired_finetune.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

BENCH_FORMAT = "learngene-paired-finetune/1"
ROWS = ("cluster-learngene", "random-heads", "pretrained-prune", "scratch")
REFERENCE = "cluster-learngene"
# One CPU thread per run: two oversubscribed OpenMP pools on two cores busy-wait each other.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# Offsets the random-heads draw from every other use of the seed (the probe's null uses its own stream).
RANDOM_HEADS_STREAM = 1414


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, help="folder for the descendants, runs and job records")
    parser.add_argument("--out", required=True, help="JSON file for the table")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--img-size", type=int, default=56)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--width-ratio", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--ancestor", default="builtin")
    parser.add_argument("--results", help="also replace this table's entries (table 'paired') in this results.json "
                        "(docs/results.json; then run scripts/results_tables.py)")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; choose from {', '.join(ROWS)}")
    return args


def train_settings(args: argparse.Namespace, descendant: Path, seed: int) -> dict:
    """One run's TrainConfig fields: the CPU recipe of docs/results.md's main table at ``--img-size``."""
    return {"descendant": str(descendant), "dataset": args.dataset, "img_size": args.img_size,
            "batch_size": args.batch_size, "epochs": 100, "max_steps": args.steps, "lr": args.lr,
            "warmup_epochs": 0.5, "randaugment": None, "mixup": 0.0, "cutmix": 0.0, "reprob": 0.0,
            "drop_path": 0.0, "device": "cpu", "seed": seed, "workers": 0}


def build_designs(args: argparse.Namespace, seed: int, rows: list[str], out: Path) -> dict[str, Path]:
    """Build and save this seed's descendant of every row in ``rows``; return row -> folder."""
    import numpy as np

    from learngene.ancestors import load_ancestor
    from learngene.clustering import PAPER_EPS, PAPER_MIN_HEADS
    from learngene.descendant import Descendant, DescendantSpec, build_descendant, save_descendant
    from learngene.evaluation.designs import ProbeContext, random_head_sources, write_head_sources
    from learngene.extraction import extract_learngene

    ancestor = load_ancestor(args.ancestor)
    distances = ProbeContext(ancestor, depth=args.depth).distances()  # cached per ancestor weights
    learngene = extract_learngene(ancestor, distances, eps=PAPER_EPS, min_heads=PAPER_MIN_HEADS)

    def spec(init: str) -> DescendantSpec:
        return DescendantSpec(depth=args.depth, width_ratio=args.width_ratio, img_size=args.img_size,
                              num_classes=10 if args.dataset == "digits" else None, seed=seed, init=init)

    built = {}
    cluster = build_descendant(ancestor, spec("cluster-learngene"), learngene=learngene)
    for row in rows:
        if row == "cluster-learngene":
            descendant = cluster
        elif row == "random-heads":
            rng = np.random.default_rng([RANDOM_HEADS_STREAM, seed])
            sources = random_head_sources(cluster.config["head_sources"], ancestor.summary.num_heads, rng)
            model = copy.deepcopy(cluster.model)
            write_head_sources(model, ancestor.model, sources)
            config = copy.deepcopy(cluster.config)
            config["head_sources"] = sources
            config["provenance"]["null_control"] = f"random heads of the same shape, draw {seed}"
            descendant = Descendant(model=model, spec=cluster.spec, config=config)
        else:
            descendant = build_descendant(ancestor, spec(row))
        folder = out / row / f"seed{seed}"
        save_descendant(descendant, folder, force=True)
        built[row] = folder
    return built


# The scores a row is compared on. final_top1: the last evaluation, which no checkpoint choice has seen (primary).
# curve_top1: the mean of every evaluation of the run (the area under its learning curve), less noisy than one
# evaluation of 359 images while the runs are still learning.
METRICS = {"final_top1": "final top-1", "curve_top1": "mean top-1 over the evaluations"}


def run_scores(metrics: list[dict]) -> dict[str, float] | None:
    """A finished run's scores (see :data:`METRICS`) from its metrics.jsonl records."""
    evals = [m["top1"] for m in metrics if m.get("kind") == "eval" and m.get("top1") is not None]
    if not evals:
        return None
    return {"final_top1": evals[-1], "curve_top1": sum(evals) / len(evals), "evals": evals}


def paired_table(args: argparse.Namespace, jobs: dict, manager) -> list[dict]:
    """Per metric and row: scores per seed, their mean, and the paired difference from Cluster-Learngene."""
    from learngene.evaluation.paired import paired_difference
    from learngene.runs.registry import SUCCEEDED

    scores: dict[str, dict[str, dict[int, float]]] = {m: {row: {} for row in args.rows} for m in METRICS}
    for job in jobs.values():
        if job["state"] != SUCCEEDED or job["row"] not in args.rows or job["seed"] not in args.seeds:
            continue
        figures = run_scores(manager.read_metrics(job["run_id"]))
        if figures is None:
            continue
        job["evals_top1"] = figures["evals"]
        for metric in METRICS:
            scores[metric][job["row"]][job["seed"]] = figures[metric]
    table = []
    for metric, by_row in scores.items():
        for row in args.rows:
            values = [by_row[row][s] for s in sorted(by_row[row])]
            entry = {"metric": metric, "metric_label": METRICS[metric], "row": row,
                     "per_seed": {str(s): v for s, v in sorted(by_row[row].items())},
                     "mean": sum(values) / len(values) if values else None}
            if row != REFERENCE and by_row[row] and by_row[REFERENCE]:
                entry["paired"] = paired_difference(row, by_row[row], REFERENCE, by_row[REFERENCE]).to_dict()
            table.append(entry)
    return table


def experiment_span(jobs: dict, manager) -> float | None:
    """Seconds from the first run's start to the last run's end (the experiment's wall time)."""
    records = [manager.get(job["run_id"]) for job in jobs.values() if job.get("run_id")]
    starts = [r["started"] for r in records if r.get("started")]
    ends = [r["ended"] for r in records if r.get("ended")]
    return max(ends) - min(starts) if starts and ends else None


def merge_into_results(path: Path, result: dict, source: str) -> None:
    """Replace the ``paired`` entries of ``path`` (a docs/results.json list) by this run's rows."""
    from learngene.atomic import write_text_atomic

    settings = result["settings"]
    entries = [e for e in json.loads(path.read_text(encoding="utf-8")) if e.get("table") != "paired"]
    for row in result["rows"]:
        entries.append({"table": "paired", "dataset": settings["dataset"], "img_size": settings["img_size"],
                        "steps": settings["steps"], "width_ratio": settings["width_ratio"], "depth": settings["depth"],
                        **row, "source": source, "command": result["command"]})
    write_text_atomic(path, json.dumps(entries, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from learngene.compare.execute import run_figures
    from learngene.runs import RunManager
    from learngene.runs.registry import FINAL_STATES, SUCCEEDED
    from learngene.training.config import TrainConfig

    work = Path(args.work).absolute()
    jobs_file = work / "jobs.json"
    jobs = json.loads(jobs_file.read_text()) if jobs_file.is_file() else {}
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"  # inherited by the scheduler the manager starts, then by every run
    manager = RunManager(work / "runs", cpu_slots=args.slots, slots=args.slots)
    started = time.time()
    load_start = os.getloadavg()

    for seed in args.seeds:
        todo = [row for row in args.rows
                if (jobs.get(f"{row}/{seed}") or {}).get("state") != SUCCEEDED
                and not (jobs.get(f"{row}/{seed}") or {}).get("run_id")]
        if not todo:
            continue
        print(f"seed {seed}: building {', '.join(todo)}", flush=True)
        for row, folder in build_designs(args, seed, todo, work / "descendants").items():
            config = TrainConfig.from_dict(train_settings(args, folder, seed)).validate()
            run_id = manager.submit(config, name=f"paired {row} seed{seed}")
            jobs[f"{row}/{seed}"] = {"row": row, "seed": seed, "run_id": run_id, "state": "queued"}
            jobs_file.parent.mkdir(parents=True, exist_ok=True)
            jobs_file.write_text(json.dumps(jobs, indent=1))

    while True:
        pending = 0
        for key, job in jobs.items():
            if job["state"] in FINAL_STATES or job["row"] not in args.rows or job["seed"] not in args.seeds:
                continue  # finished, or outside this table (a rerun with fewer seeds reads what is done)
            record = manager.get(job["run_id"])
            if record["state"] in FINAL_STATES:
                job.update(run_figures(record, manager.read_metrics(job["run_id"])), state=record["state"])
                print(f"{key}: {record['state']}, final top-1 {job.get('final_top1')}", flush=True)
            else:
                pending += 1
        jobs_file.write_text(json.dumps(jobs, indent=1))
        if not pending:
            break
        time.sleep(5)

    table = paired_table(args, jobs, manager)
    walls = [j["wall_s"] for j in jobs.values() if j.get("wall_s")]
    span = experiment_span(jobs, manager)
    result = {
        "format": BENCH_FORMAT,
        "command": "python benchmarks/paired_finetune.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": {k: v for k, v in vars(args).items() if k not in ("work", "out")},
        "train_settings": {k: v for k, v in train_settings(args, Path("DESCENDANT"), 0).items()
                           if k not in ("descendant", "seed")},
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "load_start": load_start,
                    "load_end": os.getloadavg()},
        "wall_s": time.time() - started,  # this invocation (a rerun that only reads finished runs is short)
        "experiment_span_s": span,  # first run's start to last run's end
        "run_wall_s_median": sorted(walls)[len(walls) // 2] if walls else None,
        "rows": table,
        "runs": jobs,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.results:
        merge_into_results(Path(args.results), result, source=args.out)
    for entry in table:
        paired = entry.get("paired") or {}
        print(f"{entry['metric']:12s} {entry['row']:18s} mean {entry['mean']:.1f}  "
              f"diff {paired.get('mean', 0):+.1f} t {paired.get('t')} p {paired.get('p')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
