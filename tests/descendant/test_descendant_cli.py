"""``learngene size`` and ``learngene build``: output, files written, and one clear line for every bad input."""

from __future__ import annotations

import json

import pytest

from learngene.cli import main
from learngene.descendant import DescendantSpec, descendant_size, load_descendant
from learngene.descendant.arch import summary_without_weights

TINY = "random:test_vit4"


def test_size_json_matches_the_api(capsys):
    assert main(["size", "--ancestor", TINY, "--depth", "6", "--width-ratio", "1.5", "--img-size", "64",
                 "--num-classes", "10", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = descendant_size(summary_without_weights(TINY),
                               DescendantSpec(depth=6, width_ratio=1.5, img_size=64, num_classes=10))
    for key in ("params", "inherited_params", "trainable_params", "macs", "flops"):
        assert isinstance(printed[key], int) and printed[key] == getattr(expected, key)
    assert printed["heads_per_layer"] == [2] * 6


def test_size_heads_list_and_text_output(capsys):
    assert main(["size", "--ancestor", TINY, "--depth", "3", "--heads", "1,2,5"]) == 0
    out = capsys.readouterr().out
    assert "heads [1, 2, 5]" in out and "MACs/image" in out and "estimate" in out


def test_size_table(capsys):
    assert main(["size", "--ancestor", TINY, "--table", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows].count("reference") == 3
    assert {r["depth"] for r in rows if r["kind"] == "descendant"} == {4, 6, 9}  # 12 exceeds the ancestor's 9
    assert main(["size", "--ancestor", TINY, "--table"]) == 0
    assert "DeiT-B" in capsys.readouterr().out


@pytest.fixture
def stats_file(tmp_path, tiny_distances):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"mean_attention_distance": tiny_distances.tolist()}))
    return path


def test_build_writes_a_loadable_descendant(tmp_path, stats_file, capsys):
    out = tmp_path / "desc"
    assert main(["build", "--ancestor", TINY, "--stats", str(stats_file), "--depth", "4", "--width-ratio", "0.5",
                 "--img-size", "32", "--num-classes", "5", "--init", "cluster-learngene", "--out", str(out)]) == 0
    loaded = load_descendant(out)
    assert loaded.config["heads_per_layer"] == [6] * 4
    assert loaded.config["provenance"]["statistics"] == str(stats_file.resolve())
    assert "inherited" in capsys.readouterr().err


def test_build_scratch_needs_no_statistics(tmp_path):
    out = tmp_path / "scratch"
    assert main(["build", "--ancestor", TINY, "--depth", "2", "--heads", "1,3", "--img-size", "32",
                 "--num-classes", "3", "--init", "scratch", "--out", str(out)]) == 0
    assert load_descendant(out).config["head_sources"] == [[None], [None] * 3]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--depth", "10"], "depth must be between 1 and the ancestor's 9"),
        (["--depth", "0"], "depth must be between 1"),
        (["--depth", "2", "--heads", "3,0"], "at least one head"),
        (["--depth", "2", "--heads", "3,-2"], "at least one head"),
        (["--depth", "3", "--heads", "3,3"], "2 entries but the descendant has 3 layers"),
        (["--width-ratio", "4"], "leaves no head"),
        (["--width-ratio", "wide"], "--width-ratio must be a number"),
        (["--num-classes", "0"], "number of classes must be between 1"),
        (["--init", "magic"], "init must be one of"),
        (["--parity", "authors"], "only has settings for deit_base_patch16_224, deit_small_patch16_224, "
                                  "deit_tiny_patch16_224"),
    ],
)
def test_build_bad_input_is_one_line_and_writes_nothing(tmp_path, stats_file, capsys, args, words):
    out = tmp_path / "never"
    argv = ["build", "--ancestor", TINY, "--stats", str(stats_file), "--img-size", "32", "--num-classes", "4",
            "--out", str(out)] + args
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0
    assert not out.exists()


def test_build_rejects_statistics_of_another_ancestor(tmp_path, capsys):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"mean_attention_distance": [[10.0] * 6] * 12}))  # a 12 x 6 ancestor's
    out = tmp_path / "never"
    assert main(["build", "--ancestor", TINY, "--stats", str(wrong), "--depth", "2", "--img-size", "32",
                 "--num-classes", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "shape (12, 6)" in err and "9 layers x 3 heads" in err
    assert not out.exists()


def test_build_refuses_an_existing_directory_unless_forced(tmp_path, stats_file, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    argv = ["build", "--ancestor", TINY, "--stats", str(stats_file), "--depth", "2", "--img-size", "32",
            "--num-classes", "4", "--init", "scratch", "--out", str(out)]
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err and list(out.iterdir()) == []
    assert main(argv + ["--force"]) == 0
    assert (out / "model.safetensors").is_file()


def test_size_bad_input(capsys):
    assert main(["size", "--ancestor", TINY, "--depth", "99"]) == 2
    assert "depth must be between 1" in capsys.readouterr().err
    assert main(["size", "--ancestor", "random:not_a_model_xyz"]) == 2
    assert "unknown model name" in capsys.readouterr().err


def test_parity_build_saves_and_loads_without_qkv_bias(tmp_path, capsys):
    """--parity authors on DeiT-Ti: no statistics needed, a bias-free qkv, and a saved model that loads back equal."""
    import torch

    out = tmp_path / "parity"
    assert main(["build", "--ancestor", "random:deit_tiny_patch16_224", "--depth", "3", "--width-ratio", "0.5",
                 "--num-classes", "4", "--parity", "authors", "--out", str(out)]) == 0
    assert "computing head statistics" not in capsys.readouterr().err
    loaded = load_descendant(out)
    assert loaded.config["heads_per_layer"] == [6] * 3 and loaded.config["spec"]["parity"] == "authors"
    assert all(block.attn.qkv.bias is None for block in loaded.model.blocks)
    # layer 1 and 2 form the authors' DeiT-Ti group {1, 2}: one T with two outputs
    (record,) = loaded.config["ffn_transforms"]
    assert record["layers"] == [1, 2] and record["outputs"] == 2
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert loaded.model(x).shape == (1, 4)


def test_size_parity_refuses_other_ancestors_in_one_line(capsys):
    assert main(["size", "--ancestor", "random:vit_small_patch16_224", "--parity", "authors"]) == 2
    err = capsys.readouterr().err.strip()
    assert "only has settings for" in err and err.count("\n") == 0
