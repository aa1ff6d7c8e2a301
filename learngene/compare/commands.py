"""Dry runs of a comparison: resolve every job's descendant and training config without building anything heavy,
and write the equivalent ``learngene build`` / ``learngene train`` command lines."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path
from typing import Any

from learngene.compare.execute import STATS_FILE, descendant_dir, statistics_plan
from learngene.compare.plan import ComparisonPlan, Job, dataset_classes, dataset_key
from learngene.errors import LearngeneError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _groups_text(groups) -> str:
    if groups is None:
        return "none"
    if groups == "auto":
        return "auto"
    return ",".join(f"{g[0]}-{g[-1]}" if len(g) > 1 else str(g[0]) for g in groups)


def build_command(plan: ComparisonPlan, job: Job, out: str | Path) -> list[str]:
    """The ``learngene build`` argument list that makes the job's descendant."""
    out = Path(out)
    argv = ["learngene", "build", "--ancestor", plan.ancestor]
    if plan.arch:
        argv += ["--arch", plan.arch]
    if plan.depth is not None:
        argv += ["--depth", str(plan.depth)]
    if plan.width_ratio is not None:
        argv += ["--width-ratio", f"{plan.width_ratio:g}"]
    elif plan.schedule is not None:
        argv += ["--width-ratio", plan.schedule]
    elif plan.heads is not None:
        argv += ["--heads", ",".join(map(str, plan.heads))]
    argv += ["--img-size", str(plan.img_size)]
    classes = dataset_classes(plan, job.dataset)
    argv += ["--num-classes", str(classes) if classes else "N_CLASSES"]
    variant = job.variant
    argv += ["--init", variant.init, "--seed", str(job.seed)]
    if variant.init == "cluster-learngene":
        if variant.needs_statistics:  # a parity row uses the authors' S_l: no statistics, no clustering
            argv += ["--stats", plan.stats or str(out / STATS_FILE)]
            argv += ["--eps", f"{plan.eps_for(variant):g}", "--min-heads", str(plan.min_heads_for(variant))]
        options = variant.spec_options
        if "ffn_groups" in options:
            argv += ["--ffn-groups", _groups_text(options["ffn_groups"])]
        for name in ("head_order", "centroid", "transform_init", "parity"):
            if name in options:
                argv += [_flag(name), str(options[name])]
        if options.get("train_transform"):
            argv.append("--train-transform")
    return argv + ["--out", str(descendant_dir(out, job))]


def train_command(plan: ComparisonPlan, job: Job, out: str | Path) -> list[str]:
    """The ``learngene train`` argument list that fine-tunes the job's descendant as a tracked run (rendered by
    :func:`learngene.cli.training.run_command`, the one renderer of run settings)."""
    from learngene.cli.training import run_command

    config = plan.train_config(job, descendant_dir(Path(out), job))
    # The model, data and seed are spelled out: they are what tells one job's command from the next.
    always = ("descendant", "dataset", "seed")
    return run_command(config, name=plan.run_name(job, out), always=always) + ["--detach"]


def _validate_config(config) -> None:
    """Validate a job's TrainConfig before its descendant exists (dataset, data root, recipe values)."""
    config.validate(descendant_exists=False)


def dry_run(plan: ComparisonPlan, out: str | Path, *, check_data: bool = False) -> dict[str, Any]:
    """Resolve the whole plan without loading weights or training.

    Checks the plan, every descendant spec against the ancestor's architecture (read on the meta device, so a hub
    model needs no download), every training config, and with ``check_data`` every dataset's splits (read, never
    downloaded) and class count.

    Returns:
        ``{"plan", "datasets": {name: {...}}, "statistics", "jobs": [{"key", "heads", "params",
        "inherited_params", "inherited_distinct_params", "config", "build", "train"}...]}`` where ``statistics``
        says whether the head statistics are needed and where they come from, ``config`` is the run's TrainConfig dict and ``build`` / ``train`` are
        argument lists.

    Raises:
        LearngeneError: for the first problem found.
    """
    from learngene.descendant.arch import summary_without_weights
    from learngene.descendant.size import descendant_size

    plan.validate()
    summary = summary_without_weights(plan.ancestor, plan.arch)
    datasets: dict[str, Any] = {}
    for dataset in plan.datasets:
        classes = dataset_classes(plan, dataset)
        info: dict[str, Any] = {"num_classes": classes, "data_root": plan.data_root(dataset)}
        if check_data:
            from learngene.training.data import load_splits

            probe = Job(dataset, plan.variants[0], plan.seeds[0])
            config = dataclasses.replace(plan.train_config(probe, descendant_dir(Path(out), probe)), download=False)
            _validate_config(config)
            splits = load_splits(config)
            if classes is not None and classes != splits.num_classes:
                raise LearngeneError(
                    f"dataset {dataset} has {splits.num_classes} classes but its descendants would be built with "
                    f"{classes}; pass --num-classes or fix the data"
                )
            info.update(num_classes=splits.num_classes, train_images=len(splits.train), val_images=len(splits.val))
        datasets[dataset_key(dataset)] = info
    jobs = []
    for job in plan.jobs():
        classes = datasets[dataset_key(job.dataset)]["num_classes"]
        spec = plan.descendant_spec(job, classes).resolve(summary)
        size = descendant_size(summary, spec)
        config = plan.train_config(job, descendant_dir(Path(out), job))
        _validate_config(config)
        jobs.append({"key": job.key, "heads": list(spec.heads), "num_classes": spec.num_classes,
                     "params": size.params, "inherited_params": size.inherited_params,
                     "inherited_distinct_params": size.inherited_distinct_params, "config": config.to_dict(),
                     "build": build_command(plan, job, out), "train": train_command(plan, job, out)})
    return {"plan": plan.to_dict(), "datasets": datasets, "statistics": statistics_plan(plan, Path(out)), "jobs": jobs}


def format_dry_run(result: dict[str, Any]) -> str:
    """The dry run as text: one block per job with its size preview and its two commands."""
    plan = result["plan"]
    lines = [f"plan: {len(result['jobs'])} runs: datasets {', '.join(plan['datasets'])}; rows "
             f"{', '.join(v['label'] for v in plan['variants'])}; seeds {', '.join(map(str, plan['seeds']))}"]
    for name, info in result["datasets"].items():
        extra = f", {info['train_images']} train / {info['val_images']} val images" if "train_images" in info else ""
        lines.append(f"dataset {name}: {info['num_classes'] or 'unknown number of'} classes{extra}")
    lines.append(result["statistics"])
    for job in result["jobs"]:
        distinct = job["inherited_distinct_params"]
        distinct = "unknown before clustering" if distinct is None else f"{distinct:,}"
        lines += ["", f"# {job['key']}: heads {job['heads']}, {job['params']:,} parameters, "
                      f"{job['inherited_params']:,} inherited counting every head slot, {distinct} distinct "
                      "ancestor values (preview)",
                  shlex.join(job["build"]), shlex.join(job["train"])]
    return "\n".join(lines)
