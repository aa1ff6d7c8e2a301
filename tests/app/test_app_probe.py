"""The Descendants page's Probe panel: a background job per setting, shared by sessions, a table and a percentile."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from apptest_support import MAIN, TIMEOUT, assert_clean, page, wait_for_job
from streamlit.testing.v1 import AppTest

from app import jobs
from app.probe_view import probe_job_key
from app.state import Choice, app_dir

# A tiny random ViT (timm's test_vit4 at 32 px: 9 layers x 3 heads of width 96): builds and features take moments.
TINY = Choice(spec="random:test_vit4", img_size=32, num_images=2)


@pytest.fixture
def tiny_session(app_dirs):
    (app_dir() / "session.json").write_text(json.dumps({"choice": asdict(TINY), "eps": 10.0, "min_heads": 1}))
    return TINY


def _descendants(tiny_session) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.switch_page(page("3_descendants.py")).run()
    assert_clean(at)
    at.number_input(key="d_depth").set_value(2).run()
    at.selectbox(key="p_dataset").set_value("digits")
    at.number_input(key="p_subset").set_value(20)
    at.number_input(key="p_draws").set_value(4).run()
    assert_clean(at)
    return at


def test_probe_panel_scores_the_design_in_one_shared_job(tiny_session):
    from learngene.evaluation.scoring import percentile_within
    from learngene.evaluation.settings import ProbeSettings

    at = _descendants(tiny_session)
    at.button(key="p_start").click().run()
    assert_clean(at)
    settings = ProbeSettings(ancestor=TINY.spec, datasets=("digits",), depth=2, widths=("1",), null_draws=(4,),
                             subset=20, rows=("cluster-learngene", "pretrained-prune", "scratch", "random-heads"))
    key = probe_job_key(TINY, settings, None)  # no statistics saved for the tiny ancestor: the probe computes them
    job = jobs.board.get(key)
    assert job is not None
    at.number_input(key="p_subset").set_value(20).run()  # a rerun while it runs joins the job, starts nothing new
    assert jobs.board.get(key) is job
    assert wait_for_job(key, 300).error is None
    assert job.done == job.total == 3 + 4  # the design, prune, scratch and four null draws

    at.run()
    assert_clean(at)
    table = at.dataframe[-1].value
    assert list(table["design"])[:3] == ["Cluster-Learngene", "prune (first H_d heads)", "scratch"]
    assert table["design"].iloc[3].startswith("random heads (4 draws)")
    scores = table[["linear probe %", "5-NN %"]].to_numpy(dtype=float)
    assert np.all((scores >= 0) & (scores <= 100))
    # The percentile shown is Cluster-Learngene's place among the four draws the job scored.
    rows = job.result["tables"][0]["rows"]
    cluster = next(r for r in rows if r["row"] == "cluster-learngene")
    null = [r["linear"] for r in rows if r["row"] == "random-heads"]
    shown = next(m.value for m in at.metric if m.label.startswith("Cluster-Learngene percentile"))
    assert shown.split(" / ")[0] == f"{percentile_within(cluster['linear'], null):.0f}"

    # Another browser session with the same design sees the finished job's table without pressing anything.
    other = _descendants(tiny_session)
    assert_clean(other)
    assert other.dataframe[-1].value.equals(table)


def test_probe_panel_clusters_with_the_heads_pages_thresholds(app_dirs):
    from learngene.evaluation.settings import ProbeSettings

    # Thresholds the Heads page saved (Eps 30 px, MinHds 2): the probe's Cluster-Learngene design must use them.
    (app_dir() / "session.json").write_text(json.dumps({"choice": asdict(TINY), "eps": 30.0, "min_heads": 2}))
    at = _descendants(TINY)
    at.number_input(key="p_draws").set_value(0).run()
    assert any("Eps 30 / MinHds 2" in c.value for c in at.caption)
    at.button(key="p_start").click().run()
    assert_clean(at)
    settings = ProbeSettings(ancestor=TINY.spec, datasets=("digits",), depth=2, widths=("1",), null_draws=(0,),
                             subset=20, eps=30.0, min_heads=2, rows=("cluster-learngene", "pretrained-prune", "scratch"))
    key = probe_job_key(TINY, settings, None)
    job = jobs.board.get(key)
    assert job is not None  # started with the page's thresholds (the paper's would give another key)
    assert wait_for_job(key, 300).error is None
    assert (job.result["settings"]["eps"], job.result["settings"]["min_heads"]) == (30.0, 2)


def test_probe_rows_score_the_design_itself():
    from app.probe_view import probe_rows
    from learngene.descendant import DescendantSpec

    cluster = DescendantSpec(depth=6, width_ratio=2.0)
    assert probe_rows(cluster, 0) == ("cluster-learngene", "pretrained-prune", "scratch")
    assert probe_rows(cluster, 3) == ("cluster-learngene", "pretrained-prune", "scratch", "random-heads")
    assert probe_rows(DescendantSpec(depth=6, width_ratio=1.0, init="weight-transformation"), 0) == (
        "weight-transformation", "cluster-learngene", "pretrained-prune", "scratch")
    assert probe_rows(DescendantSpec(depth=6, width_ratio=2.0, init="scratch"), 0) == (
        "scratch", "cluster-learngene", "pretrained-prune")
    assert probe_rows(DescendantSpec(depth=6, width_ratio=2.0, parity="authors"), 2) == (
        "authors-slicing", "pretrained-prune", "scratch", "cluster-learngene", "random-heads")
    # an init without a row of its own: its shape under Cluster-Learngene
    assert probe_rows(DescendantSpec(depth=6, width_ratio=2.0, init="ancestor"), 0)[0] == "cluster-learngene"


def test_probe_panel_scores_a_weight_transformation_design_as_itself(tiny_session):
    at = _descendants(tiny_session)
    at.number_input(key="p_draws").set_value(0)
    at.number_input(key="d_ratio").set_value(1.0)
    at.selectbox(key="d_init").set_value("weight-transformation").run()
    assert_clean(at)
    assert not any("has no row" in c.value for c in at.caption)
    at.button(key="p_start").click().run()
    assert_clean(at)
    from learngene.evaluation.settings import ProbeSettings

    settings = ProbeSettings(ancestor=TINY.spec, datasets=("digits",), depth=2, widths=("1",), null_draws=(0,),
                             subset=20, rows=("weight-transformation", "cluster-learngene", "pretrained-prune",
                                              "scratch"))
    assert wait_for_job(probe_job_key(TINY, settings, None), 300).error is None
    at.run()
    labels = list(at.dataframe[-1].value["design"])
    assert labels[:2] == ["Weight-Transformation", "Cluster-Learngene"]
