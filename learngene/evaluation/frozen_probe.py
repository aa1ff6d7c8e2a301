"""``learngene probe``: score descendant designs by their frozen features, before any training.

For every width x dataset, every registered row (see :mod:`learngene.evaluation.designs`) is built at the
ancestor's native resolution, its pooled features are extracted on a fixed stratified subset (cached per design),
and scored with a linear probe and leave-one-out k-NN. The Cluster-Learngene score is placed within the random
null of same-shape head choices as a percentile. The result is one JSON document (:data:`PROBE_FORMAT`).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict

import numpy as np

from learngene.errors import LearngeneError
from learngene.evaluation.designs import CLUSTER_ROW, NULL_ROW, ROWS, ProbeContext, TableRequest
from learngene.evaluation.features import cached_features
from learngene.evaluation.probe_data import ProbeData, load_probe_data
from learngene.evaluation.scoring import LINEAR_C, percentile_within, score_features, scoring_pool
from learngene.evaluation.settings import SCORES, ProbeSettings

PROBE_FORMAT = "learngene-probe/1"


def run_probe(settings: ProbeSettings, *, ancestor=None, mad: np.ndarray | None = None, progress: bool = True,
              on_table: Callable[[dict], None] | None = None,
              on_design: Callable[[int, int], None] | None = None) -> dict:
    """Fill every width x dataset table; ``on_table(result_so_far)`` is called after each one (to save it), and
    ``on_design(done, total)`` after each design of the whole run (the app's progress bar).

    ``ancestor`` (loaded from ``settings.ancestor`` when None) and ``mad``, its (L, H) mean attention distances
    (computed on the built-in probe images and cached when None), let a caller reuse what it already has.

    Raises:
        LearngeneError: for a bad setting (unknown dataset or row, a width that leaves no head, ...), before any
            expensive work.
    """
    from learngene.ancestors import load_ancestor

    widths = settings.check()
    if ancestor is None:
        ancestor = load_ancestor(settings.ancestor)
    context = ProbeContext(ancestor=ancestor, depth=settings.depth, seed=settings.seed, device=settings.device,
                           progress=_say if progress else None, mad=mad, eps=settings.eps,
                           min_heads=settings.min_heads)
    specs = [context.spec(width) for width in widths]  # impossible widths / depths fail here, in one line
    summary = ancestor.summary
    result = {
        "format": PROBE_FORMAT,
        "settings": {**asdict(settings), "datasets": list(settings.datasets), "widths": list(settings.widths)},
        "ancestor": {"spec": summary.spec, "arch": summary.arch, "layers": summary.num_layers,
                     "heads": summary.num_heads, "img_size": summary.img_size, "params": summary.num_params},
        "scoring": {"linear": f"logistic regression, C = {LINEAR_C:g}, standardised features, stratified "
                              f"{settings.folds}-fold, pooled accuracy",
                    "knn": f"leave-one-out {settings.k}-NN, cosine similarity, majority vote",
                    "features": "forward_head(forward_features(x), pre_logits=True): CLS after the final norm",
                    "percentile": "share of null draws below Cluster-Learngene, ties counted half (0-100)"},
        "tables": [],
        "complete": False,
    }
    datasets: dict[str, ProbeData] = {}
    requests = [TableRequest(width=w, null_draws=settings.draws_for(i)) for i, w in enumerate(widths)]
    total = len(settings.datasets) * sum(len(ROWS[n].designs(context, r)) for r in requests for n in settings.rows)
    counted = [0]

    def design_done() -> None:
        counted[0] += 1
        if on_design is not None:
            on_design(counted[0], total)

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(scoring_pool(settings.jobs)) if settings.jobs > 1 else None
        for request, spec in zip(requests, specs, strict=True):
            for name in settings.datasets:
                if name not in datasets:
                    datasets[name] = load_probe_data(name, summary.img_size, settings.subset)
                table = probe_table(context, datasets[name], request, settings, progress=progress, pool=pool,
                                    on_design=design_done)
                table["heads"] = list(spec.heads)
                result["tables"].append(table)
                result["seconds"] = round(time.perf_counter() - started, 1)
                if on_table is not None:
                    on_table(result)
    result["complete"] = True
    return result


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def probe_table(context: ProbeContext, data: ProbeData, request: TableRequest, settings: ProbeSettings, *,
                progress: bool = True, pool: Executor | None = None,
                on_design: Callable[[], None] | None = None) -> dict:
    """Score every row of one width on one dataset.

    With a ``pool``, scoring runs in its worker processes while the next designs' features are extracted here
    (the scores are the same; only the wall time changes).
    """
    from tqdm import tqdm

    designs = [d for name in settings.rows for d in ROWS[name].designs(context, request)]
    rows, pending = [], []
    bar = tqdm(total=len(designs), desc=f"{data.dataset} w={request.width.name}", unit="design", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    with bar:
        for design in designs:
            bar.set_postfix_str(design.label)
            row, features = _design_features(design, context, data, settings)
            rows.append(row)
            if features is not None:
                arguments = (features, data.labels, settings.folds, settings.seed, settings.k)
                if pool is None:
                    row.update(score_features(*arguments))
                else:
                    pending.append((row, pool.submit(score_features, *arguments)))
            bar.update(1)
            if on_design is not None:
                on_design()
        for row, future in pending:
            row.update(future.result())
    return {"dataset": data.dataset, "images": data.num_images, "classes": len(data.classes),
            "data_key": data.key, "width": request.width.name, "depth": context.depth,
            "null_draws": request.null_draws, "rows": rows, **summarise(rows)}


def _design_features(design, context: ProbeContext, data: ProbeData, settings: ProbeSettings):
    """(row facts, features) of one design; features None when the row is skipped at this width."""
    summary = context.ancestor.summary
    row = {"row": design.row, "label": design.label}
    if design.draw is not None:
        row["draw"] = design.draw
    started = time.perf_counter()
    try:
        model, facts = design.make()
    except LearngeneError as error:  # a row this width cannot have (e.g. prune with more heads than the ancestor)
        return {**row, "skipped": str(error)}, None
    features, key, hit = cached_features(model, data, summary.mean, summary.std, device=context.device,
                                         batch_size=settings.batch_size, bf16=settings.bf16)
    row.update(facts)
    # Build and feature time (cache hits are fast); scoring is not included.
    row.update({"feature_key": key, "cached": hit, "seconds": round(time.perf_counter() - started, 2)})
    return row, features


def summarise(rows: list[dict]) -> dict:
    """The null's distribution and the Cluster-Learngene percentile within it (None without both)."""
    null = [r for r in rows if r["row"] == NULL_ROW and "linear" in r]
    cluster = next((r for r in rows if r["row"] == CLUSTER_ROW and "linear" in r), None)
    out = {"null": None, "cluster_percentile": None}
    if null:
        out["null"] = {"draws": len(null)}
        for score in SCORES:
            values = np.array([r[score] for r in null])
            out["null"][score] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1
                                  else 0.0, "min": float(values.min()), "max": float(values.max())}
        if cluster is not None:
            out["cluster_percentile"] = {s: percentile_within(cluster[s], [r[s] for r in null]) for s in SCORES}
    return out


def format_result(result: dict) -> str:
    """Every table as aligned text (scores in %)."""
    lines = []
    for table in result["tables"]:
        lines.append(f"{table['dataset']} ({table['images']} images, {table['classes']} classes), depth "
                     f"{table['depth']}, w = {table['width']} (heads {table['heads']})")
        lines.append(f"  {'row':<40} {'linear':>8} {'k-NN':>8}")
        for row in table["rows"]:
            if row["row"] == NULL_ROW:
                continue
            if "skipped" in row:
                lines.append(f"  {row['label']:<40} skipped: {row['skipped']}")
            else:
                lines.append(f"  {row['label']:<40} {100 * row['linear']:>7.1f}% {100 * row['knn']:>7.1f}%")
        null = table["null"]
        if null:
            cells = " ".join(f"{100 * null[s]['mean']:>5.1f}±{100 * null[s]['std']:<4.1f}" for s in SCORES)
            label = f"random heads (null, {null['draws']} draws) mean±sd"
            lines.append(f"  {label:<40} {cells}")
        pct = table["cluster_percentile"]
        if pct:
            lines.append(f"  Cluster-Learngene percentile within the null: linear {_pct(pct['linear'])}, "
                         f"k-NN {_pct(pct['knn'])}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.0f}"
