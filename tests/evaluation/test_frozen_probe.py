"""The probe end to end on a tiny random ViT: deterministic, cached, one-line errors, a correct summary."""

from __future__ import annotations

import json

import pytest

from learngene.cli import main
from learngene.errors import LearngeneError
from learngene.evaluation.frozen_probe import format_result, run_probe, summarise
from learngene.evaluation.scoring import percentile_within
from learngene.evaluation.settings import ProbeSettings

ROWS = ("ancestor", "cluster-learngene", "pretrained-prune", "random-heads", "scratch")


def _settings(**changes):
    base = dict(datasets=("digits",), depth=2, widths=("1.5",), null_draws=(3,), subset=30, rows=ROWS)
    return ProbeSettings(**{**base, **changes})


def _scores(result):
    return [(r["row"], r.get("draw"), r.get("linear"), r.get("knn")) for t in result["tables"] for r in t["rows"]]


def test_probe_is_deterministic_and_the_second_call_reads_the_cache(tiny_ancestor, tiny_mad, cache):
    first = run_probe(_settings(), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    # The cache is keyed by the weights: within the first call, only a design identical to an earlier one (two
    # draws of the same heads, or a draw equal to prune) is a hit.
    seen = set()
    for row in first["tables"][0]["rows"]:
        assert row["cached"] == (row["feature_key"] in seen)
        seen.add(row["feature_key"])
    second = run_probe(_settings(), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    assert _scores(first) == _scores(second)
    assert all(r["cached"] for r in second["tables"][0]["rows"])
    assert len(list((cache / "probe-features").glob("*.npy"))) == len(seen)

    table = first["tables"][0]
    assert first["complete"] and table["heads"] == [2, 2] and table["images"] == 30
    null = [r for r in table["rows"] if r["row"] == "random-heads"]
    assert len(null) == 3 and len({r["feature_key"] for r in null}) == len({str(r["head_sources"]) for r in null})
    cluster = next(r for r in table["rows"] if r["row"] == "cluster-learngene")
    assert table["cluster_percentile"]["knn"] == percentile_within(cluster["knn"], [r["knn"] for r in null])
    assert "Cluster-Learngene percentile" in format_result(first)


def test_another_seed_draws_other_heads(tiny_ancestor, tiny_mad, cache):
    def sources(seed):
        result = run_probe(_settings(seed=seed, rows=("random-heads",), null_draws=(4,)), ancestor=tiny_ancestor,
                           mad=tiny_mad, progress=False)
        return [r["head_sources"] for r in result["tables"][0]["rows"]]

    assert sources(0) != sources(1)


def test_summary_against_hand_made_rows():
    rows = [{"row": "cluster-learngene", "linear": 0.7, "knn": 0.5}]
    rows += [{"row": "random-heads", "draw": i, "linear": v, "knn": 0.5} for i, v in enumerate([0.6, 0.7, 0.8, 0.5])]
    rows += [{"row": "pretrained-prune", "skipped": "not at this width"}]
    summary = summarise(rows)
    assert summary["cluster_percentile"] == {"linear": pytest.approx(62.5), "knn": pytest.approx(50.0)}
    assert summary["null"]["draws"] == 4
    assert summary["null"]["linear"]["mean"] == pytest.approx(0.65)
    assert summary["null"]["linear"]["min"] == 0.5 and summary["null"]["linear"]["max"] == 0.8
    assert summarise(rows[:1]) == {"null": None, "cluster_percentile": None}


def test_rows_a_width_cannot_have_are_skipped_with_the_reason(tiny_ancestor, tiny_mad, cache):
    result = run_probe(_settings(widths=("0.5",), rows=("pretrained-prune",)), ancestor=tiny_ancestor, mad=tiny_mad,
                       progress=False)
    (row,) = result["tables"][0]["rows"]
    assert "skipped" in row and "width ratio >= 1" in row["skipped"]


@pytest.mark.parametrize("changes, message", [
    (dict(datasets=("mnist",)), "unknown dataset 'mnist'"),
    (dict(widths=("wide",)), "a width must be a positive number"),
    (dict(rows=("cluster",)), "unknown row 'cluster'"),
    (dict(null_draws=(1, 2)), "one --null-draws for all widths"),
    (dict(subset=1), "--subset must be at least 2"),
    (dict(eps=0.0), "eps must be a positive number"),
    (dict(min_heads=0), "min_heads must be an integer >= 1"),
])
def test_bad_settings_fail_before_any_work(changes, message):
    with pytest.raises(LearngeneError, match=message):
        _settings(**changes).check()


def test_the_clustering_thresholds_decide_the_cluster_learngene_design(tiny_ancestor, tiny_mad, cache):
    """tiny_mad puts two heads 2 px apart and one 68 px away in every layer: Eps 10 keeps two clusters (a head of
    each in the design), Eps 100 merges them into one (the design's second head then comes from elsewhere)."""
    def design(**changes):
        result = run_probe(_settings(rows=("cluster-learngene",), null_draws=(0,), **changes), ancestor=tiny_ancestor,
                           mad=tiny_mad, progress=False)
        return result["tables"][0]["rows"][0]["head_sources"]

    paper = design()
    assert paper == design(eps=10.0, min_heads=1)  # the paper's thresholds are the default
    assert design(eps=100.0) != paper


def test_weight_transformation_row_scores_width_1_and_says_why_not_other_widths(tiny_ancestor, tiny_mad, cache):
    result = run_probe(_settings(rows=("weight-transformation", "pretrained-prune"), widths=("1", "1.5"),
                                 null_draws=(0,)), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    at_1, at_15 = ([r for r in t["rows"] if r["row"] == "weight-transformation"][0] for t in result["tables"])
    assert "skipped" not in at_1 and 0 <= at_1["linear"] <= 100 and 0 <= at_1["knn"] <= 100
    assert at_1["head_sources"] == [[0, 1, 2], [0, 1, 2]]  # whole ancestor blocks: every head, in order
    assert "keeps the ancestor's 3 heads" in at_15["skipped"]
    prune_1 = next(r for r in result["tables"][0]["rows"] if r["row"] == "pretrained-prune")
    assert prune_1["feature_key"] != at_1["feature_key"]  # a model of its own, not prune under another name


def test_impossible_width_is_one_line_from_the_ancestor(tiny_ancestor, tiny_mad, cache):
    with pytest.raises(LearngeneError, match="leaves no head"):
        run_probe(_settings(widths=("10",)), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist"], "error: unknown dataset 'mnist'; choose one of digits, lfw-faces"),
    (["--width-ratio", "wide"], "error: a width must be a positive number"),
    (["--null-draws", "x"], "error: --null-draws must be whole numbers"),
])
def test_cli_bad_input_is_one_line(argv, message, capsys, cache):
    assert main(["probe", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_cli_writes_json_with_a_reproducing_command_and_refuses_to_overwrite(tmp_path, capsys, cache):
    from learngene.cli import build_parser
    from learngene.cli.probe import settings_from_args

    out = tmp_path / "probe.json"
    # timm's test_vit (6 layers x 2 heads, 64 wide, 160 px) keeps the real command path cheap.
    argv = ["probe", "--ancestor", "random:test_vit", "--depth", "2", "--width-ratio", "1", "--subset", "20",
            "--rows", "cluster-learngene,random-heads", "--null-draws", "2", "--eps", "12.5", "--no-progress",
            "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["complete"]
    assert [r["row"] for r in result["tables"][0]["rows"]] == ["cluster-learngene", "random-heads", "random-heads"]
    recorded = settings_from_args(build_parser().parse_args(result["command"][1:]))
    assert recorded == settings_from_args(build_parser().parse_args(argv))
    assert (recorded.eps, recorded.min_heads) == (12.5, 1) == (result["settings"]["eps"], result["settings"]["min_heads"])
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_scoring_in_worker_processes_gives_the_same_scores(tiny_ancestor, tiny_mad, cache):
    sequential = run_probe(_settings(), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    pooled = run_probe(_settings(jobs=2), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    assert _scores(pooled) == _scores(sequential)
    assert pooled["tables"][0]["cluster_percentile"] == sequential["tables"][0]["cluster_percentile"]


def test_both_baseline_semantics_differ_and_authors_row_names_its_ancestors(tiny_ancestor, tiny_mad, cache):
    """The authors'-loader and layers-only baselines are separate rows with different features; the authors'-code
    row is skipped on an ancestor their code has no settings for, saying which ancestors it supports."""
    rows = ("auto-learngene", "auto-layers-only", "authors-slicing")
    result = run_probe(_settings(widths=("1",), rows=rows), ancestor=tiny_ancestor, mad=tiny_mad, progress=False)
    by_name = {row["row"]: row for row in result["tables"][0]["rows"]}
    assert "deit_small_patch16_224" in by_name["authors-slicing"]["skipped"]
    assert "skipped" not in by_name["auto-learngene"] and "skipped" not in by_name["auto-layers-only"]
    # feature_key hashes every weight of the design: the embeddings inherited or not make different models
    assert by_name["auto-learngene"]["feature_key"] != by_name["auto-layers-only"]["feature_key"]
