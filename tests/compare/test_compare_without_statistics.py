"""A comparison whose rows need no head statistics (the authors' fixed S_l, scratch, Weight-Transformation) computes
none: no statistics file appears, the printed plan says so, and every row still builds, trains and reports both
inherited counts. Also the dry run's wording and build commands for such rows."""

from __future__ import annotations

import json

import pytest

from learngene.compare import ComparisonPlan, Variant, read_job_records, run_comparison, write_results
from learngene.compare.commands import dry_run, format_dry_run
from learngene.compare.execute import STATS_FILE
from learngene.compare.report import DISTINCT_HEADER, SLOT_HEADER

RECIPE = dict(img_size=32, max_steps=1, batch_size=8, lr=1e-3, warmup_epochs=0, mixup=0.0, cutmix=0.0,
              randaugment="none", reprob=0.0, drop_path=0.0, workers=0, device="cpu", log_every=1)
# Trained rows: one worker run each, so two rows keep the test short (scratch joins them in the dry run).
ROWS = (
    Variant("authors", "cluster-learngene", options=(("parity", "authors"),)),
    Variant("weight-transformation", "weight-transformation"),
)


def make_plan(variants=ROWS) -> ComparisonPlan:
    # A random DeiT-Ti: the authors' code has S_l lists for it, so the parity row needs no statistics.
    return ComparisonPlan(ancestor="random:deit_tiny_patch16_224", datasets=("digits",), depth=2, width_ratio=1.0,
                          variants=variants, seeds=(0,), recipe=dict(RECIPE), name="nostats").validate()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("nostats")
    plan = make_plan()
    lines: list[str] = []
    records = run_comparison(plan, root / "out", runs_dir=root / "runs", threads=1, poll_s=0.5, timeout_s=300,
                             prune_checkpoints=True, progress=lines.append)
    return plan, root / "out", records, lines


def test_no_statistics_are_computed_and_the_plan_says_so(compared):
    plan, out, records, lines = compared
    assert not plan.needs_statistics
    assert [r["state"] for r in records] == ["succeeded"] * 2, records
    assert not (out / STATS_FILE).exists()
    assert not list(out.rglob("*stat*"))  # no statistics file anywhere in the comparison
    assert any("head statistics: not needed" in line for line in lines)
    assert not any("computing head statistics" in line for line in lines)
    authors = json.loads((out / "descendants/digits/authors/seed0/config.json").read_text())
    assert authors["provenance"]["parity"] == "authors" and "distances" not in authors["provenance"]
    assert all("clusters_per_layer" not in r for r in records)  # no clustering behind any row


def test_results_carry_slot_and_distinct_inherited_counts(compared):
    from learngene.descendant.config import DescendantConfig

    plan, out, records, _ = compared
    rows = write_results(plan, read_job_records(out, plan), out)
    data = {row["init"]: row for row in json.loads((out / "results.json").read_text())}
    for label, row in data.items():
        config = DescendantConfig.load(out / f"descendants/digits/{label}/seed0")
        assert (row["inherited_params"], row["inherited_distinct_params"]) == (
            config.inherited_params, config.inherited_distinct_params)
    # DeiT-Ti w = 1 with the authors' S_l: a layer with fewer centroids than heads repeats them, so the slot count
    # exceeds the distinct one; Weight-Transformation repeats each group's norms in its second layer.
    assert data["authors"]["inherited_params"] > data["authors"]["inherited_distinct_params"]
    wt = data["weight-transformation"]
    assert wt["inherited_params"] - wt["inherited_distinct_params"] == 4 * 192  # layer 1 repeats norm1, norm2 (w, b)
    text = (out / "results.md").read_text()
    assert f"| {SLOT_HEADER} | {DISTINCT_HEADER} |" in text
    line = next(line for line in text.splitlines() if line.startswith("| weight-transformation |"))
    assert f"{wt['inherited_params'] / 1e6:.2f} M | {wt['inherited_distinct_params'] / 1e6:.2f} M" in line
    assert [r["init"] for r in rows] == ["authors", "weight-transformation"]


def test_dry_run_names_the_statistics_and_omits_them_for_parity_rows(tmp_path):
    plan = make_plan(ROWS + (Variant("scratch", "scratch"), Variant("ours", "cluster-learngene")))
    result = dry_run(plan, tmp_path / "out")
    assert "computed once on the built-in probe images" in result["statistics"]
    builds = {job["key"].split("/")[1]: job["build"] for job in result["jobs"]}
    assert "--stats" in builds["ours"] and "--stats" not in builds["authors"] and "--eps" not in builds["authors"]
    assert "--parity" in builds["authors"]
    text = format_dry_run(result)
    assert "distinct ancestor values" in text
    only_fixed = dry_run(make_plan(ROWS + (Variant("scratch", "scratch"),)), tmp_path / "out2")
    assert only_fixed["statistics"].startswith("head statistics: not needed")
    assert all(job["inherited_distinct_params"] is not None for job in only_fixed["jobs"])
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_a_row_that_cannot_build_the_shape_is_refused_before_anything_is_written(tmp_path):
    from learngene.errors import LearngeneError

    plan = ComparisonPlan(ancestor="random:deit_tiny_patch16_224", datasets=("digits",), depth=3, width_ratio=1.0,
                          variants=ROWS[1:], seeds=(0,), recipe=dict(RECIPE)).validate()
    with pytest.raises(LearngeneError, match="multiple of 2 .*--depth 2 or 4"):
        run_comparison(plan, tmp_path / "out", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
