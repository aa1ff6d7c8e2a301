"""The comparison plan, its variants and jobs, the aggregation into a table, and the resume guard (no training)."""

from __future__ import annotations

import json
import re
import statistics

import pytest

from learngene.compare import ComparisonPlan, Variant, aggregate, mean_std, parse_variant, write_results
from learngene.compare.execute import check_plan_file, run_figures
from learngene.compare.plan import ablation_variants, dataset_classes
from learngene.errors import LearngeneError

INITS = ("cluster-learngene", "scratch", "pretrained-prune")


def make_plan(**overrides) -> ComparisonPlan:
    fields = dict(datasets=("digits", "lfw-faces"), depth=6, width_ratio=1.0,
                  variants=tuple(Variant(i, i) for i in INITS), seeds=(0, 1, 2),
                  recipe={"img_size": 56, "max_steps": 20})
    fields.update(overrides)
    return ComparisonPlan(**fields).validate()


def test_parse_variant_reads_every_key():
    variant = parse_variant("T-trained:ffn_groups=3-5+0-1,train_transform=true,eps=20,min_heads=2")
    assert variant.label == "T-trained" and variant.init == "cluster-learngene"
    assert variant.spec_options == {"ffn_groups": ((3, 4, 5), (0, 1)), "train_transform": True}
    assert (variant.eps, variant.min_heads) == (20.0, 2)
    assert parse_variant("plain:init=scratch").init == "scratch"
    assert parse_variant("no-groups:ffn_groups=none").spec_options == {"ffn_groups": None}


@pytest.mark.parametrize(("text", "message"), [
    ("x:colour=red", "unknown key 'colour'"),
    ("x:eps", "expected KEY=VALUE"),
    ("x:eps=ten", "bad value for eps"),
    ("x:train_transform=maybe", "expected true or false"),
    ("x:init=scratch,head_order=original", "clustering options only apply to cluster-learngene"),
    ("x:init=magic", "unknown init 'magic'"),
    ("bad label:eps=5", "must start with a letter or digit"),  # the label names directories
])
def test_parse_variant_rejects_bad_text(text, message):
    with pytest.raises(LearngeneError, match=re.escape(message)):
        parse_variant(text)


def test_variant_round_trips_through_json():
    for variant in ablation_variants():
        assert Variant.from_dict(json.loads(json.dumps(variant.to_dict()))) == variant


def test_jobs_fill_every_row_before_the_next_seed():
    plan = make_plan()
    jobs = plan.jobs()
    assert len(jobs) == 2 * len(INITS) * 3
    assert len({job.key for job in jobs}) == len(jobs)
    first = jobs[: len(INITS)]
    assert {job.seed for job in first} == {0} and [job.variant.label for job in first] == list(INITS)
    assert [job.dataset for job in jobs[: len(jobs) // 2]] == ["digits"] * (len(jobs) // 2)


def test_spec_and_config_carry_the_seed_and_the_variant():
    plan = make_plan(variants=(parse_variant("avg:centroid=average"), Variant("scratch", "scratch")))
    job = next(j for j in plan.jobs() if j.variant.label == "avg" and j.seed == 2)
    spec = plan.descendant_spec(job, 10)
    assert (spec.seed, spec.centroid, spec.init, spec.img_size, spec.depth) == (2, "average", "cluster-learngene", 56, 6)
    config = plan.train_config(job, "/some/dir")
    assert (config.seed, config.dataset, config.descendant, config.max_steps) == (2, "digits", "/some/dir", 20)


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(recipe={"seed": 3}), "recipe option(s) seed are set per run"),
    (dict(recipe={"init": "scratch"}), "recipe option(s) init are set per run"),
    (dict(recipe={"no_such_option": 1}), "unknown recipe option(s): no_such_option"),
    (dict(seeds=(0, 0)), "seeds must be distinct"),
    (dict(seeds=()), "no seed given"),
    (dict(variants=(Variant("a", "scratch"), Variant("a", "cluster-learngene"))), "labels must be unique"),
    (dict(variants=()), "no initialisation given"),
    (dict(datasets=()), "no dataset given"),
    (dict(heads=(6, 6, 6, 6, 6, 6)), "give only one of width ratio, heads or schedule"),  # with width_ratio
    (dict(data_roots={"cifar100": "/data"}), "--data-root cifar100=... names no dataset"),
    (dict(eps=-1.0), "--eps: Eps must be a positive number"),
    (dict(eps=float("nan")), "Eps must be a positive number"),
    (dict(min_heads=0), "MinHds must be a whole number >= 1"),
    (dict(variants=(parse_variant("e0:eps=0"),)), "variant e0: Eps must be a positive number"),
])
def test_plan_validation_rejects(overrides, message):
    with pytest.raises(LearngeneError, match=re.escape(message)):
        make_plan(**overrides)


def test_dataset_classes_known_and_folder(tmp_path):
    plan = make_plan()
    assert dataset_classes(plan, "digits") == 10 and dataset_classes(plan, "lfw-faces") == 2
    for name in ("a", "b", "c"):
        (tmp_path / "train" / name).mkdir(parents=True)
    assert dataset_classes(plan, str(tmp_path)) == 3
    cub = make_plan(datasets=("cub200",), data_roots={"*": str(tmp_path)})
    assert dataset_classes(cub, "cub200") == 3
    assert dataset_classes(make_plan(recipe={"num_classes": 7}), "digits") == 7


def fake_record(dataset, label, seed, top1, state="succeeded"):
    return {"dataset": dataset, "init": label, "seed": seed, "state": state, "best_top1": top1,
            "final_top1": None if top1 is None else top1 - 1, "params": 1000, "inherited_params": 600,
            "images_per_s": 10.0 + seed, "wall_s": 60.0, "steps": 20, "epochs": 0.5}


def test_aggregate_mean_and_std_over_succeeded_seeds():
    plan = make_plan()
    values = {"cluster-learngene": [61.0, 64.5, 59.25], "scratch": [40.0, 44.0, 41.0]}
    records = [fake_record("digits", label, seed, v) for label, vs in values.items() for seed, v in enumerate(vs)]
    records += [fake_record("digits", "pretrained-prune", 0, 70.0),
                fake_record("digits", "pretrained-prune", 1, None, state="failed"),
                fake_record("digits", "pretrained-prune", 2, None, state="running")]
    rows = {(r["dataset"], r["init"]): r for r in aggregate(plan, records)}
    assert len(rows) == 2 * len(INITS)  # every row of the plan, even without records
    for label, vs in values.items():
        row = rows["digits", label]
        assert row["top1_mean"] == pytest.approx(statistics.fmean(vs))
        assert row["top1_std"] == pytest.approx(statistics.stdev(vs))
        assert row["seeds"] == [0, 1, 2] and row["top1_per_seed"] == vs
        assert row["images_per_s"] == pytest.approx(statistics.fmean([10.0, 11.0, 12.0]))
    prune = rows["digits", "pretrained-prune"]
    assert prune["top1_mean"] == 70.0 and prune["top1_std"] is None  # one seed: no deviation
    assert (prune["failed"], prune["pending"], prune["seeds"]) == (1, 1, [0])
    empty = rows["lfw-faces", "scratch"]
    assert empty["top1_mean"] is None and empty["seeds"] == []


def test_mean_std_edge_cases():
    assert mean_std([]) == (None, None)
    assert mean_std([3.0]) == (3.0, None)


def test_write_results_json_and_markdown(tmp_path):
    plan = make_plan(datasets=("digits",))
    records = [fake_record("digits", label, seed, 50.0 + 3 * seed + i)
               for i, label in enumerate(INITS) for seed in (0, 1, 2)]
    write_results(plan, records, tmp_path, command="learngene compare --dataset digits")
    data = json.loads((tmp_path / "results.json").read_text())
    assert [row["init"] for row in data] == list(INITS)
    for row in data:
        assert {"dataset", "init", "seeds", "top1_mean", "top1_std", "params", "inherited_params", "epochs",
                "img_size", "ancestor"} <= set(row)
        assert row["img_size"] == 56 and row["ancestor"] == "builtin"
    text = (tmp_path / "results.md").read_text()
    assert "learngene compare --dataset digits" in text
    for row in data:
        assert f"| {row['init']} | 3 | {row['top1_mean']:.2f} ± {row['top1_std']:.2f} |" in text


def test_plan_file_refuses_another_shape_but_grows(tmp_path):
    plan = make_plan()
    check_plan_file(tmp_path, plan)
    check_plan_file(tmp_path, make_plan(seeds=(3,)))  # more seeds of the same experiment: fine
    assert json.loads((tmp_path / "plan.json").read_text())["seeds"] == [0, 1, 2, 3]
    with pytest.raises(LearngeneError, match="recipe"):
        check_plan_file(tmp_path, make_plan(recipe={"img_size": 64, "max_steps": 20}))
    with pytest.raises(LearngeneError, match="depth"):
        check_plan_file(tmp_path, make_plan(depth=4))


def test_run_figures_from_metrics():
    metrics = [{"kind": "start", "steps_per_epoch": 10, "total_steps": 30},
               {"kind": "train", "step": 10, "images_per_s": 5.0},
               {"kind": "eval", "step": 10, "top1": 40.0},
               {"kind": "train", "step": 20, "images_per_s": 9.0},
               {"kind": "train", "step": 30, "images_per_s": 7.0},
               {"kind": "eval", "step": 30, "top1": 35.0}]
    figures = run_figures({"step": 30, "best_top1": None, "started": 100.0, "ended": 160.0}, metrics)
    assert figures["best_top1"] == 40.0 and figures["final_top1"] == 35.0
    assert figures["images_per_s"] == 7.0 and figures["epochs"] == 3.0 and figures["wall_s"] == 60.0


def test_a_trained_transform_row_is_a_valid_plan():
    plan = make_plan(variants=(parse_variant("T-trained:ffn_groups=3-5,train_transform=true"),))
    assert plan.variants[0].spec_options["train_transform"] is True


def test_a_bad_plan_writes_nothing_and_the_fixed_rerun_is_accepted(tmp_path):
    from learngene.compare import run_comparison

    out = tmp_path / "cmp"
    bad = ComparisonPlan(datasets=("digits",), variants=(Variant("scratch", "scratch"),), seeds=(0,), eps=-5.0)
    with pytest.raises(LearngeneError, match="Eps must be a positive number"):
        run_comparison(bad, out, runs_dir=tmp_path / "runs")
    assert not out.exists()
    check_plan_file(out, make_plan())  # the corrected plan is accepted in the same --out
    assert json.loads((out / "plan.json").read_text())["eps"] == 10.0


def test_unwritable_out_and_bad_eps_are_one_line_from_the_command_line(tmp_path, capsys):
    from learngene.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    base = ["compare", "--dataset", "digits", "--inits", "scratch", "--seeds", "0", "--runs-dir", str(tmp_path / "r")]
    for argv, message in [
        ([*base, "--out", str(blocker / "cmp")], "cannot create"),
        ([*base, "--out", str(tmp_path / "cmp"), "--eps", "-1"], "Eps must be a positive number"),
    ]:
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "cmp").exists()
