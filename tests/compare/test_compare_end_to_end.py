"""One tiny real comparison: two inits x one seed, a few steps at tiny resolution, trained as worker processes
through the run manager; then a rerun that must reuse everything."""

from __future__ import annotations

import json

import numpy as np
import pytest

from learngene.compare import ComparisonPlan, Variant, read_job_records, run_comparison, write_results
from learngene.runs import RunManager


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    # A random ViT-Tiny ancestor (12 layers x 3 heads) with a hand-made MAD table, so the clustering is known and
    # nothing heavy is computed: layer 0 has two clusters ({0, 1} and {2}), every other layer three singletons.
    table = [[10.0, 12.0, 80.0]] + [[10.0, 40.0, 70.0]] * 11
    stats = root / "stats.json"
    stats.write_text(json.dumps(table))
    plan = ComparisonPlan(
        ancestor="random:vit_tiny_patch16_224", datasets=("digits",), depth=2, width_ratio=1.0,
        variants=(Variant("cluster-learngene", "cluster-learngene"), Variant("scratch", "scratch")), seeds=(7,),
        recipe=dict(img_size=32, max_steps=3, batch_size=16, lr=1e-3, warmup_epochs=0, mixup=0.0, cutmix=0.0,
                    randaugment="none", reprob=0.0, drop_path=0.0, workers=0, device="cpu", log_every=1),
        stats=str(stats), name="tiny",
    ).validate()
    out, runs = root / "out", root / "runs"
    lines: list[str] = []
    records = run_comparison(plan, out, runs_dir=runs, threads=1, poll_s=0.5, timeout_s=300,
                             prune_checkpoints=True, progress=lines.append)
    return plan, out, runs, records, lines


def test_every_job_trained_through_the_run_manager(compared):
    plan, out, runs, records, _ = compared
    assert [r["state"] for r in records] == ["succeeded", "succeeded"], records
    listed = {run["name"]: run for run in RunManager(runs).list()}
    assert set(listed) == {"tiny:digits:cluster-learngene:s7", "tiny:digits:scratch:s7"}
    for record in records:
        run = listed[record["run_name"]]
        assert run["run_id"] == record["run_id"] and run["config"]["seed"] == 7
        assert run["config"]["descendant"] == record["descendant"]
        assert record["steps"] == 3 and 0.0 <= record["best_top1"] <= 100.0
        assert record["images_per_s"] > 0
        assert not list((out.parent / "runs" / record["run_id"] / "checkpoints").glob("*.pt"))  # pruned


def test_descendants_differ_only_by_init(compared):
    from learngene.descendant import load_descendant

    _, out, _, records, _ = compared
    by_init = {r["init"]: r for r in records}
    models = {k: load_descendant(r["descendant"]) for k, r in by_init.items()}
    for init, record in by_init.items():
        assert record["params"] == sum(p.numel() for p in models[init].model.parameters())
        assert models[init].spec.seed == 7
    assert by_init["scratch"]["inherited_params"] == 0 < by_init["cluster-learngene"]["inherited_params"]
    assert by_init["scratch"]["params"] == by_init["cluster-learngene"]["params"]
    # The hand-made table gives 2 clusters in layer 0 and 3 in layer 1 (of 2 + 3 x 11 in the whole ancestor).
    assert by_init["cluster-learngene"]["clusters_per_layer"] == [2, 3]
    assert by_init["cluster-learngene"]["clusters_total"] == 2 + 3 * 11
    heads = json.loads((out / "descendants/digits/cluster-learngene/seed7/config.json").read_text())["head_sources"]
    assert heads[0] == [0, 2, 0]  # priority weight-sharing: the larger cluster {0, 1} first, then wrap around


def test_results_table_and_rerun_reuses_everything(compared):
    plan, out, runs, records, _ = compared
    rows = write_results(plan, read_job_records(out, plan), out)
    data = json.loads((out / "results.json").read_text())
    assert [row["init"] for row in data] == ["cluster-learngene", "scratch"]
    for row, record in zip(data, records, strict=True):
        assert row["seeds"] == [7] and row["top1_mean"] == pytest.approx(record["best_top1"])
        assert row["top1_std"] is None and row["params"] == record["params"]
    assert rows[0]["inherited_params"] == records[0]["inherited_params"]
    before = len(RunManager(runs).list())
    lines: list[str] = []
    again = run_comparison(plan, out, runs_dir=runs, poll_s=0.5, timeout_s=60, progress=lines.append)
    assert len(RunManager(runs).list()) == before  # nothing was submitted twice
    assert [r["run_id"] for r in again] == [r["run_id"] for r in records]
    assert any("2 already done, 0 to go" in line for line in lines)
    assert np.isfinite([r["best_top1"] for r in again]).all()
