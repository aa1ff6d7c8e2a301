"""The Descendants page's Probe panel: the designed descendant's frozen features scored before any training.

The scoring is :func:`learngene.evaluation.frozen_probe.run_probe` (what ``learngene probe`` runs), on a background
job of :mod:`app.jobs` keyed by everything that decides the scores, so a rerun, a page switch or a second session
shows the same job and its progress instead of starting another. Features are cached on disk per design, so asking
again (or adding null draws later) re-scores what was already extracted in a moment.
"""

from __future__ import annotations

import hashlib
import json
import math

import pandas as pd
import streamlit as st

from app import jobs, resources, state
from app.text import error_markdown, markdown_text
from learngene.descendant import DescendantSpec
from learngene.errors import LearngeneError

# Rows scored beside the design: the same shape pruned from the ancestor and trained from scratch. Row names are
# those of learngene.evaluation.designs.ROWS.
COMPARISON_ROWS = ("pretrained-prune", "scratch")
PARITY_ROW = "authors-slicing"
MAX_NULL_DRAWS = 50


def probe_rows(spec: DescendantSpec, null_draws: int) -> tuple[str, ...]:
    """The probe rows for ``spec``: the design itself (the registered row of its init and parity; Cluster-Learngene
    when none has one), Cluster-Learngene beside any other design, prune and scratch of the same shape, and the
    random-heads null when draws are asked."""
    from learngene.evaluation.designs import CLUSTER_ROW, NULL_ROW, row_for_design

    first = row_for_design(spec.init, spec.parity) or CLUSTER_ROW
    reference = () if first in (CLUSTER_ROW, PARITY_ROW) else (CLUSTER_ROW,)
    rows = tuple(dict.fromkeys((first, *reference, *COMPARISON_ROWS)))  # in order, each once
    # The null copies the Cluster-Learngene descendant, so that row is scored too when draws are asked.
    if null_draws:
        rows = (*rows, CLUSTER_ROW, NULL_ROW) if CLUSTER_ROW not in rows else (*rows, NULL_ROW)
    return rows


def width_of(spec: DescendantSpec) -> str | None:
    """The probe's width text for the design (a ratio or a schedule); None for a per-layer list of heads."""
    if spec.schedule:
        return spec.schedule
    if spec.heads is not None:
        return None
    return f"{spec.width_ratio if spec.width_ratio is not None else 1.0:g}"


def probe_job_key(choice, settings, mad) -> str:
    """What decides the scores: the ancestor choice, the statistics clustered, and every probe setting."""
    from dataclasses import asdict

    data = {"choice": choice.key(), "settings": asdict(settings),
            "mad": None if mad is None else hashlib.sha1(json.dumps(mad.tolist()).encode()).hexdigest()[:16]}
    return "probe:" + hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def probe_panel(choice, spec: DescendantSpec) -> None:
    """Draw the panel: dataset, images and null draws, a button that starts (or joins) the job, and the table."""
    from learngene.evaluation.probe_data import DATASETS
    from learngene.evaluation.settings import ProbeSettings

    st.caption("Scores the design's frozen features before any training: a linear probe (5-fold logistic "
               "regression) and leave-one-out 5-NN on a fixed stratified subset of a built-in dataset, beside "
               "prune and scratch of the same shape (`learngene probe`). Random-head draws place the design within "
               "a null of same-shape head choices.")
    width = width_of(spec)
    if width is None:
        st.info("The probe scores a width ratio or a schedule: choose one of them under 'Heads per layer'.")
        return
    from learngene.evaluation.designs import row_for_design

    if row_for_design(spec.init, spec.parity) is None:
        st.caption(f"The probe has no row for --init {spec.init}; it scores this shape under Cluster-Learngene, "
                   "prune and scratch.")
    c = st.columns(3)
    dataset = c[0].selectbox("Dataset", DATASETS, key="p_dataset")
    subset = c[1].number_input("Images (stratified subset)", 20, 2000, 100, step=20, key="p_subset")
    draws = c[2].number_input("Random-head draws (null; 0 = none)", 0, MAX_NULL_DRAWS, 0, key="p_draws")
    eps, min_heads = state.thresholds()
    st.caption(f"Designs are built at the ancestor's {resources.summary_for(choice).img_size} px, clustered with "
               f"the Heads page's Eps {eps:g} / MinHds {min_heads}.")
    settings = ProbeSettings(ancestor=choice.spec, datasets=(dataset,), depth=int(spec.depth), widths=(width,),
                             null_draws=(int(draws),), subset=int(subset), seed=int(spec.seed), eps=eps,
                             min_heads=min_heads, rows=probe_rows(spec, int(draws)))
    stats = _statistics(choice)
    mad = stats.mean_attention_distance if stats is not None else None
    key = probe_job_key(choice, settings, mad)
    job = jobs.board.get(key)
    if job is None or job.failed:
        if job is not None:
            st.error(f"The probe failed: {markdown_text(job.error)}")
        if not st.button("Probe this design", key="p_start"):
            return
        try:
            settings.check()
            ancestor = resources.ancestor_for(choice)  # loaded here, through the cache: the job only computes
        except LearngeneError as error:
            st.error(error_markdown(error))
            return
        job = jobs.board.start(key, "Probe", lambda progress: _run(settings, ancestor, mad, progress))
    if job.running:
        jobs.follow(key, _draw_progress)
        return
    show_result(job.result)


def _statistics(choice):
    from app.ancestor_view import current_statistics

    return current_statistics(choice)


def _run(settings, ancestor, mad, progress) -> dict:
    """The job's work (no ``st.*`` here: it runs on the job thread)."""
    from learngene.evaluation.frozen_probe import run_probe

    return run_probe(settings, ancestor=ancestor, mad=mad, progress=False, on_design=progress)


def _draw_progress(job) -> None:
    text = f"Probe: {job.done}/{job.total} designs scored (in the background)" if job.total else "Probe: starting…"
    st.progress(job.fraction, text=text)


def result_frame(result: dict) -> pd.DataFrame:
    """One line per scored design (the null summarised as mean ± sd), scores in %."""
    from learngene.evaluation.designs import NULL_ROW

    lines = []
    for table in result["tables"]:
        for row in table["rows"]:
            if row["row"] == NULL_ROW:
                continue
            if "skipped" in row:
                lines.append({"design": row["label"], "linear probe %": None, "5-NN %": None, "note": row["skipped"]})
            else:
                lines.append({"design": row["label"], "linear probe %": round(100 * row["linear"], 1),
                              "5-NN %": round(100 * row["knn"], 1), "note": ""})
        null = table["null"]
        if null:
            lines.append({"design": f"random heads ({null['draws']} draws), mean",
                          "linear probe %": round(100 * null["linear"]["mean"], 1),
                          "5-NN %": round(100 * null["knn"]["mean"], 1),
                          "note": f"sd {100 * null['linear']['std']:.1f} / {100 * null['knn']['std']:.1f}"})
    return pd.DataFrame(lines, columns=["design", "linear probe %", "5-NN %", "note"])


def show_result(result: dict) -> None:
    table = result["tables"][0]
    st.caption(f"{table['dataset']}: {table['images']} images, {table['classes']} classes (chance "
               f"{100 / table['classes']:.0f} %), depth {table['depth']}, heads {table['heads']}; "
               f"{result.get('seconds', 0):.0f} s.")
    st.dataframe(result_frame(result), hide_index=True)
    pct = table["cluster_percentile"]
    if pct:
        def fmt(value):
            return "n/a" if value is None or math.isnan(value) else f"{value:.0f}"

        st.metric("Cluster-Learngene percentile within random heads (linear / 5-NN)",
                  f"{fmt(pct['linear'])} / {fmt(pct['knn'])}",
                  help="share of the random same-shape head choices that score below the design, ties counted half")
