"""Aggregating job records into the comparison table: ``results.json`` (one object per dataset and row) and a
readable ``results.md``."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from learngene.compare.plan import ComparisonPlan, dataset_key
from learngene.errors import LearngeneError

SUCCEEDED = "succeeded"
# The two inherited counts (learngene.descendant.size): values written from the ancestor counting every head slot
# (duplicates included), and the distinct ancestor values behind them (what the learngene stores, the paper's
# I-Params sense).
SLOT_HEADER = "inherited (every slot)"
DISTINCT_HEADER = "inherited (distinct values)"


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); the deviation is None for fewer than two values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _mean_or_none(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def aggregate(plan: ComparisonPlan, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, variant) of the plan, in plan order, from the job records.

    Only succeeded runs count towards the mean; ``failed`` counts the others, so a partial table says so.
    """
    rows = []
    for dataset in plan.datasets:
        for variant in plan.variants:
            mine = [r for r in records
                    if dataset_key(r.get("dataset", "")) == dataset_key(dataset) and r.get("init") == variant.label]
            done = sorted((r for r in mine if r.get("state") == SUCCEEDED and r.get("best_top1") is not None),
                          key=lambda r: r["seed"])
            mean, std = mean_std([float(r["best_top1"]) for r in done])
            final_mean, _ = mean_std([float(r["final_top1"]) for r in done if r.get("final_top1") is not None])
            first = (done or mine or [{}])[0]
            rows.append({
                "dataset": dataset,
                "init": variant.label,
                "method": variant.init,
                "options": variant.to_dict()["options"],
                "seeds": [r["seed"] for r in done],
                "top1_mean": mean,
                "top1_std": std,
                "top1_per_seed": [float(r["best_top1"]) for r in done],
                "final_top1_mean": final_mean,
                "params": first.get("params"),
                "inherited_params": first.get("inherited_params"),
                "inherited_distinct_params": first.get("inherited_distinct_params"),
                "trainable_params": first.get("trainable_params"),
                "images_per_s": _mean_or_none([r.get("images_per_s") for r in done]),
                "wall_s": _mean_or_none([r.get("wall_s") for r in done]),
                "steps": first.get("steps"),
                "epochs": first.get("epochs"),
                "max_steps": plan.recipe.get("max_steps"),
                "img_size": plan.img_size,
                "ancestor": plan.ancestor,
                "depth": plan.depth,
                "heads_per_layer": first.get("heads_per_layer"),
                "eps": plan.eps_for(variant) if variant.init == "cluster-learngene" else None,
                "clusters_per_layer": first.get("clusters_per_layer"),
                "clusters_total": first.get("clusters_total"),
                "ffn_groups": first.get("ffn_groups"),
                "failed": sum(1 for r in mine if r.get("state") not in (SUCCEEDED, "queued", "running")),
                "pending": sum(1 for r in mine if r.get("state") in ("queued", "running")),
            })
    return rows


def _pct(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _millions(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f} M"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown: one block per dataset, rows in plan order."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        lines += [f"### {dataset}", "",
                  f"| init | seeds | best top-1 (mean ± std) | per seed | final top-1 | params | {SLOT_HEADER} | "
                  f"{DISTINCT_HEADER} | clusters (desc. layers / all) | images/s | s/run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["dataset"] == dataset):
            clusters = "-"
            if r.get("clusters_per_layer") is not None:
                clusters = f"{sum(r['clusters_per_layer'])} / {r['clusters_total']}"
            seeds = str(len(r["seeds"])) + (f" ({r['failed']} failed)" if r["failed"] else "") + (
                f" ({r['pending']} pending)" if r["pending"] else "")
            lines.append(
                f"| {r['init']} | {seeds} | {_pct(r['top1_mean'], r['top1_std'])} | "
                f"{', '.join(f'{v:.1f}' for v in r['top1_per_seed']) or '-'} | {_pct(r['final_top1_mean'])} | "
                f"{_millions(r['params'])} | {_millions(r['inherited_params'])} | "
                f"{_millions(r.get('inherited_distinct_params'))} | {clusters} | "
                f"{_number(r['images_per_s'])} | {_number(r['wall_s'], 0)} |"
            )
        lines.append("")
    return "\n".join(lines)


def results_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of ``results.json``: the required keys first, then the extra detail."""
    required = ("dataset", "init", "seeds", "top1_mean", "top1_std", "params", "inherited_params",
                "inherited_distinct_params", "epochs", "img_size", "ancestor")
    return [{**{k: r.get(k) for k in required}, **{k: v for k, v in r.items() if k not in required}} for r in rows]


def write_results(plan: ComparisonPlan, records: list[dict[str, Any]], out: str | Path,
                  command: str | None = None, name: str = "results") -> list[dict[str, Any]]:
    """Write ``OUT/<name>.json`` and ``OUT/<name>.md``; returns the rows."""
    from learngene.atomic import write_json_atomic, write_text_atomic

    out = Path(out)
    rows = aggregate(plan, records)
    if not name or "/" in name or name.startswith("."):
        raise LearngeneError(f"the report name {name!r} must be a plain file name")
    write_json_atomic(out / f"{name}.json", results_json(rows), indent=1)
    recipe = ", ".join(f"{k}={v}" for k, v in sorted(plan.recipe.items())) or "TrainConfig defaults"
    shape = (f"width ratio {plan.width_ratio}" if plan.width_ratio is not None
             else f"heads {list(plan.heads)}" if plan.heads else f"schedule {plan.schedule}" if plan.schedule
             else "the ancestor's heads")
    header = [
        "# Initialisation comparison", "",
        f"Ancestor `{plan.ancestor}`, {plan.depth}-layer descendants ({shape}), {plan.img_size} px, seeds "
        f"{', '.join(map(str, plan.seeds))}, Eps {plan.eps:g}, MinHds {plan.min_heads}.",
        f"Recipe: {recipe}.",
        "Top-1 is the best validation top-1 over evaluations (%); std is the sample standard deviation over seeds.",
        f"{SLOT_HEADER}: values initialised from the ancestor, every head slot counted (a centroid copied into "
        f"two slots twice); {DISTINCT_HEADER}: the distinct ancestor values behind them (`inherited_params` and "
        "`inherited_distinct_params` in results.json).",
        "",
    ]
    if command:
        header += ["Command:", "", "```", command, "```", ""]
    write_text_atomic(out / f"{name}.md", "\n".join(header) + markdown_table(rows) + "\n")
    return rows
