"""Running a comparison: build each job's descendant, train it through the run manager, collect the figures.

The output directory holds everything needed to resume or audit a comparison::

    OUT/plan.json                          the plan (a rerun with another shape is refused)
    OUT/stats.json                         the ancestor's head statistics, computed once for every build
    OUT/descendants/<dataset>/<row>/seedN  the saved descendant each run starts from
    OUT/jobs/<dataset>/<row>/seedN.json    the job's record: run id, state, best top-1, throughput, sizes
    OUT/results.json, OUT/results.md       the aggregated table

Every job is submitted to the :class:`~learngene.runs.RunManager`'s queue as soon as its descendant is built; the
runs root's scheduler process launches them as slots free (with ``--launcher slurm`` every job is submitted to
SLURM at once) and this function only watches the queue. A job whose record says ``succeeded`` is skipped on a
rerun; one whose run is still queued or running (the command was interrupted) is watched, not submitted twice.
Everything is validated (plan, launcher, runs root, the shape of a plan already in ``OUT``) before anything is
written.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from learngene.atomic import write_json_atomic
from learngene.compare.plan import ComparisonPlan, Job, dataset_classes
from learngene.errors import LearngeneError
from learngene.output_dir import DESCENDANT_CONFIG, DESCENDANT_WEIGHTS
from learngene.runs import rundir
from learngene.runs.registry import ACTIVE_STATES, FINAL_STATES, QUEUED, SUCCEEDED

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
STATS_FILE = "stats.json"
# Plan fields that change what every run trains: a rerun into the same directory must keep them, or the table
# would mix runs of two different experiments. Datasets, variants and seeds may grow.
SHAPE_FIELDS = ("ancestor", "arch", "depth", "width_ratio", "heads", "schedule", "recipe", "data_roots", "eps",
                "min_heads", "stats")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------------------------ records
def job_record_path(out: Path, job: Job) -> Path:
    return out / "jobs" / f"{job.key}.json"


def descendant_dir(out: Path, job: Job) -> Path:
    return out / "descendants" / job.key


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Write a comparison record atomically (creating its folder); one-line LearngeneError if it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LearngeneError(f"cannot create {path.parent}: {error.strerror or error}; choose a writable --out") from None
    write_json_atomic(path, data, indent=1)


def read_job_records(out: str | Path, plan: ComparisonPlan) -> list[dict[str, Any]]:
    """The records of the plan's jobs that exist in ``out`` (in plan order)."""
    out = Path(out)
    records = []
    for job in plan.jobs():
        record = read_json(job_record_path(out, job))
        if record is not None:
            records.append(record)
    return records


def check_plan_file(out: Path, plan: ComparisonPlan) -> None:
    """Write ``plan.json``, refusing a plan whose shape differs from the one already in ``out``.

    Raises:
        LearngeneError: when ``out`` holds a comparison of another shape (another ancestor, descendant or recipe).
    """
    write_json(Path(out) / PLAN_FILE, merged_plan(Path(out), plan))


def merged_plan(out: Path, plan: ComparisonPlan) -> dict[str, Any]:
    """The ``plan.json`` to write into ``out``: this plan, grown by what ``out`` already holds. Writes nothing.

    Raises:
        LearngeneError: when ``out`` holds a comparison of another shape (another ancestor, descendant or recipe).
    """
    path = out / PLAN_FILE
    current = plan.to_dict()
    previous = read_json(path)
    if previous is not None:
        changed = [name for name in SHAPE_FIELDS if previous.get(name) != current.get(name)]
        if changed:
            raise LearngeneError(
                f"{out} holds a comparison with different {', '.join(changed)}; its runs would not be comparable "
                "with these: choose another --out"
            )
        # Keep the union of rows, datasets and seeds so results.* cover everything this directory has trained.
        for key in ("datasets", "seeds"):
            current[key] = list(dict.fromkeys(list(previous.get(key, [])) + list(current[key])))
        labels = [v["label"] for v in current["variants"]]
        current["variants"] = [v for v in previous.get("variants", []) if v["label"] not in labels] + current["variants"]
    return current


def check_row_specs(plan: ComparisonPlan) -> None:
    """Resolve every row's descendant against the ancestor's architecture (meta device: no weights, no download),
    so a shape a row cannot build (e.g. an odd depth for weight-transformation) is refused before anything is
    written, not after the first rows have been queued."""
    from learngene.descendant.arch import summary_without_weights

    summary = summary_without_weights(plan.ancestor, plan.arch)
    for variant in plan.variants:
        plan.descendant_spec(Job(plan.datasets[0], variant, plan.seeds[0]), None).resolve(summary)


# ------------------------------------------------------------------------------------------------------ statistics
def load_or_compute_distances(plan: ComparisonPlan, ancestor, out: Path, progress: Progress) -> np.ndarray:
    """The ancestor's (L, H) mean attention distances: the plan's statistics file, ``OUT/stats.json`` from an
    earlier attempt, or computed now on the built-in probe images (once for every cluster-learngene build)."""
    from learngene.attention.statistics import HeadStatistics, compute_head_statistics
    from learngene.descendant import read_distances
    from learngene.probes import load_probe_images

    summary = ancestor.summary
    shape = (summary.num_layers, summary.num_heads)
    if plan.stats:
        table, _ = read_distances(plan.stats, summary)  # refuses statistics of another ancestor
    elif (out / STATS_FILE).is_file():
        table = np.asarray(HeadStatistics.load_json(out / STATS_FILE).mean_attention_distance, dtype=np.float64)
    else:
        probes = load_probe_images("builtin", summary)
        progress(f"computing head statistics of {summary.spec} on {len(probes)} built-in probe images (once)")
        stats = compute_head_statistics(ancestor.model, probes, summary)
        stats.save_json(out / STATS_FILE)
        table = np.asarray(stats.mean_attention_distance, dtype=np.float64)
    if table.shape != shape:
        raise LearngeneError(
            f"the head statistics have shape {table.shape} but {summary.spec} has {shape[0]} layers x {shape[1]} "
            "heads; compute them on this ancestor"
        )
    return table


def statistics_plan(plan: ComparisonPlan, out: Path) -> str:
    """One line saying whether and where the head statistics come from (the slow part of a first build)."""
    if not plan.needs_statistics:
        return ("head statistics: not needed (no row clusters heads: baselines, scratch and parity=authors rows "
                "only), none computed")
    if plan.stats:
        return f"head statistics: read from {plan.stats}"
    if (Path(out) / STATS_FILE).is_file():
        return f"head statistics: reused from {Path(out) / STATS_FILE}"
    return f"head statistics: computed once on the built-in probe images into {Path(out) / STATS_FILE}"


def cluster_counts(distances: np.ndarray, eps: float, min_heads: int, depth: int) -> tuple[list[int], int]:
    """Clusters per descendant layer, and over all ancestor layers (the paper's "30 of 72" figure)."""
    from learngene.clustering import cluster_layers

    layers = cluster_layers(distances, eps=eps, min_heads=min_heads)
    counts = [len(layer.centroids) for layer in layers]
    return counts[:depth], int(sum(counts))


# ------------------------------------------------------------------------------------------------------ building
def build_job_descendant(plan: ComparisonPlan, job: Job, ancestor, distances, out: Path) -> Path:
    """Build and save the job's descendant (skipped when a complete one is already there)."""
    from learngene.descendant import build_descendant, save_descendant

    directory = descendant_dir(out, job)
    if all((directory / name).is_file() for name in (DESCENDANT_CONFIG, DESCENDANT_WEIGHTS)):
        return directory
    spec = plan.descendant_spec(job, dataset_classes(plan, job.dataset))
    descendant = build_descendant(
        ancestor, spec, distances=distances if job.variant.init == "cluster-learngene" else None,
        eps=plan.eps_for(job.variant), min_heads=plan.min_heads_for(job.variant),
        provenance={"comparison": str(out.resolve()), "job": job.key},
    )
    save_descendant(descendant, directory, force=True)
    return directory


# ------------------------------------------------------------------------------------------------------ collecting
def run_figures(record: dict[str, Any], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Best and final top-1, throughput and budget of one finished run, from its registry record and metrics."""
    evals = [m for m in metrics if m.get("kind") == "eval" and m.get("top1") is not None]
    speeds = [m["images_per_s"] for m in metrics if m.get("kind") == "train" and m.get("images_per_s")]
    start = next((m for m in metrics if m.get("kind") == "start"), {})
    steps = record.get("step") or (evals[-1]["step"] if evals else 0)
    per_epoch = start.get("steps_per_epoch")
    best = record.get("best_top1")
    if best is None and evals:
        best = max(m["top1"] for m in evals)
    wall = None
    if record.get("started") and record.get("ended"):
        wall = float(record["ended"]) - float(record["started"])
    return {
        "best_top1": best,
        "final_top1": evals[-1]["top1"] if evals else None,
        # The median: the first interval of every epoch includes the loader's start-up.
        "images_per_s": statistics.median(speeds) if speeds else None,
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "epochs": round(steps / per_epoch, 2) if per_epoch else None,
        "wall_s": wall,
    }


def _descendant_facts(directory: Path) -> dict[str, Any]:
    from learngene.descendant.config import DescendantConfig

    try:
        config = DescendantConfig.load(directory)
    except LearngeneError:
        return {key: None for key in ("params", "inherited_params", "inherited_distinct_params", "trainable_params",
                                      "heads_per_layer", "ffn_groups")}
    return {
        "params": config.params,
        # Both figures as the build recorded them (learngene.descendant.size defines them): every head slot, and
        # the distinct ancestor values behind them.
        "inherited_params": config.inherited_params,
        "inherited_distinct_params": config.inherited_distinct_params,
        "trainable_params": config.trainable_params,
        "heads_per_layer": config.heads_per_layer,
        "ffn_groups": config.provenance.get("ffn_groups"),
    }


def _base_record(plan: ComparisonPlan, job: Job, out: Path, distances: np.ndarray | None) -> dict[str, Any]:
    record = {
        "key": job.key, "dataset": job.dataset, "variant": job.variant.to_dict(), "init": job.variant.label,
        "method": job.variant.init, "seed": job.seed, "descendant": str(descendant_dir(out, job)),
        "eps": plan.eps_for(job.variant) if job.variant.init == "cluster-learngene" else None,
    }
    if distances is not None and job.variant.needs_statistics:  # parity rows use the authors' S_l, not these
        depth = plan.depth or distances.shape[0]
        per_layer, total = cluster_counts(distances, plan.eps_for(job.variant), plan.min_heads_for(job.variant), depth)
        record.update(clusters_per_layer=per_layer, clusters_total=total)
    return record


# ------------------------------------------------------------------------------------------------------ the loop
def run_comparison(
    plan: ComparisonPlan,
    out: str | Path,
    *,
    runs_dir: str | Path | None = None,
    cpu_slots: int = 1,
    slots: int | None = None,
    launcher: str = "local",
    launcher_options: dict[str, Any] | None = None,
    threads: int | None = None,
    timeout_s: float | None = None,
    prune_checkpoints: bool = False,
    poll_s: float = 2.0,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Train every job of ``plan`` that has not succeeded yet and return all job records (plan order).

    Each job's descendant is built here and its run submitted to the queue at once; the runs root's scheduler
    process launches the runs as slots free, and this function watches them (reads only) until all have ended.

    Args:
        plan: the comparison.
        out: output directory (created; reused on a rerun with the same plan shape).
        runs_dir: runs root of the :class:`~learngene.runs.RunManager` (default: the user's, which the app shows).
        cpu_slots, slots: runs at once (see :class:`~learngene.runs.RunManager`; ``slots`` becomes the runs
            root's setting).
        launcher, launcher_options: how each run is started (``local``, ``torchrun``, ``slurm``).
        threads: CPU threads per run (sets ``OMP_NUM_THREADS`` etc. in this process, which the scheduler process
            it starts passes on to the runs); None keeps the environment's. On a shared or small CPU machine one
            thread per run avoids the busy-waiting of oversubscribed OpenMP threads. A scheduler that was already
            running for the runs root keeps its own environment (a warning says so).
        timeout_s: stop waiting after this long (the runs go on; a rerun picks them up).
        prune_checkpoints: delete a succeeded run's ``checkpoints/*.pt`` once its figures are recorded.
        poll_s: seconds between looks at the active runs.
        progress: receives one line per event (default: the module logger).

    Raises:
        LearngeneError: for a bad plan, launcher, runs root or output directory, an ancestor that cannot be
            loaded, or an output directory holding another comparison; the first four before anything is written.
    """
    from learngene.runs import RunManager, make_launcher, scheduler

    say = progress or log.info
    out = Path(out).absolute()  # the runs read their descendants from inside their own run directories
    # Everything that can be checked without building is checked before anything is written.
    plan.validate()
    if threads is not None and threads < 1:
        raise LearngeneError(f"threads must be at least 1 (got {threads})")
    make_launcher(launcher, dict(launcher_options or {}))
    check_row_specs(plan)
    if out.exists() and not out.is_dir():
        raise LearngeneError(f"--out {out} is a file; choose a folder")
    plan_data = merged_plan(out, plan)
    manager = RunManager(runs_dir, cpu_slots=cpu_slots, slots=slots)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LearngeneError(f"cannot create {out}: {error.strerror or error}; choose a writable --out") from None
    write_json(out / PLAN_FILE, plan_data)
    if threads is not None:
        if scheduler.is_running(manager.root):
            say(f"the scheduler of {manager.root} is already running: --threads {threads} applies only to runs it "
                "starts after it restarts")  # fmt: skip
        for name in THREAD_VARIABLES:
            os.environ[name] = str(threads)  # inherited by the scheduler process started below, then by the runs

    jobs = plan.jobs()
    records = {job.key: read_json(job_record_path(out, job)) for job in jobs}
    todo = [job for job in jobs if (records[job.key] or {}).get("state") != SUCCEEDED]
    say(f"{len(jobs)} runs planned, {len(jobs) - len(todo)} already done, {len(todo)} to go; "
        f"{statistics_plan(plan, out)}")
    active: dict[str, tuple[Job, str]] = {}
    to_build = []
    for job in todo:
        run_id = (records[job.key] or {}).get("run_id")
        if run_id and (records[job.key] or {}).get("state") in ACTIVE_STATES:
            try:
                if manager.get(run_id)["state"] not in FINAL_STATES:
                    active[job.key] = (job, run_id)  # left queued or running by an interrupted comparison
                    continue
            except LearngeneError:
                pass  # the run was removed from the registry: train it again
        to_build.append(job)

    ancestor = distances = None
    if to_build:
        from learngene.ancestors import load_ancestor

        ancestor = load_ancestor(plan.ancestor, arch=plan.arch)
        if any(job.variant.needs_statistics for job in to_build):
            distances = load_or_compute_distances(plan, ancestor, out, say)
    for job in to_build:
        directory = build_job_descendant(plan, job, ancestor, distances, out)
        config = plan.train_config(job, directory).validate()
        name = plan.run_name(job, out)
        run_id = manager.submit(config, name=name, launcher=launcher, launcher_options=launcher_options)
        previous = records[job.key] or {}
        record = {**_base_record(plan, job, out, distances), **_descendant_facts(directory),
                  "run_id": run_id, "run_name": name, "state": QUEUED,
                  "attempts": int(previous.get("attempts") or 0) + 1}  # fmt: skip
        records[job.key] = record
        write_json(job_record_path(out, job), record)
        active[job.key] = (job, run_id)
        say(f"queued {job.key} as run {run_id}")

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while active:
        for key, (job, run_id) in list(active.items()):
            run = manager.get(run_id)
            if run["state"] not in FINAL_STATES:
                continue
            record = {**(records[key] or {}), **run_figures(run, manager.read_metrics(run_id)),
                      "state": run["state"], "error": run.get("error_tail")}  # fmt: skip
            records[key] = record
            write_json(job_record_path(out, job), record)
            del active[key]
            best = record["best_top1"]
            say(f"{key}: {run['state']}" + (f", best top-1 {best:.2f}" if best is not None else "")
                + (f" ({record['error']})" if run["state"] != SUCCEEDED and record.get("error") else ""))
            if prune_checkpoints and run["state"] == SUCCEEDED:
                for path in (Path(run["run_dir"]) / rundir.CHECKPOINT_DIR).glob("*.pt"):
                    path.unlink(missing_ok=True)
        if active and deadline is not None and time.monotonic() > deadline:
            for job, run_id in active.values():
                record = {**(records[job.key] or {}), "state": manager.get(run_id)["state"]}
                records[job.key] = record
                write_json(job_record_path(out, job), record)
            say(f"timed out with {len(active)} runs queued or running; they go on, rerun to collect them")
            break
        if active:
            time.sleep(poll_s)
    return [records[job.key] for job in jobs if records[job.key] is not None]
