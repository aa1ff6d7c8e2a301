import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from learngene.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands_from_python_m():
    result = subprocess.run([sys.executable, "-m", "learngene", "--help"], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 0
    # Written out by hand (not read from the CLI) so that a command that vanishes fails this test.
    listed = re.findall(r"^    ([a-z][\w-]*) ", result.stdout, flags=re.M)
    assert listed == ["analyze", "cluster", "extract", "size", "build", "train", "runs", "compare", "probe"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", "vit_tiny_patch16_224", "--lr", "nan"], "argument --lr: expected a number or none"),
    (["train", "--batch-size", "abc"], "argument --batch-size"),
    (["runs", "clone", "some-run", "junk"], "expected KEY=VALUE, got 'junk'"),
    (["cluster"], "the following arguments are required: --stats"),
    (["size", "--depth", "six"], "argument --depth"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_a_bad_flag_is_one_error_line_not_the_usage_block(argv, message, capsys):
    # argparse printed the whole usage first (about 50 lines for train) and the error last, as "learngene train:
    # error: ...".
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "--help" in err


def test_a_command_module_that_cannot_be_imported_fails_loudly(monkeypatch):
    import learngene.cli

    monkeypatch.setattr(learngene.cli, "_COMMAND_MODULES", (*learngene.cli._COMMAND_MODULES, "learngene.cli.gone"))
    with pytest.raises(ModuleNotFoundError, match="learngene.cli.gone"):
        learngene.cli.build_parser()


def test_analyze_cluster_extract_round_trip(capsys, tmp_path):
    stats = tmp_path / "stats.json"
    code, _, err = run(capsys, "analyze", "--ancestor", "random:vit_tiny_patch16_224", "--img-size", "64",
                       "--num-images", "3", "--batch-size", "2", "--out", str(stats))
    assert code == 0, err
    data = json.loads(stats.read_text())
    assert np.asarray(data["mean_attention_distance"]).shape == (12, 3)
    assert np.asarray(data["entropy"]).shape == (12, 3)
    assert data["ancestor"]["arch"] == "vit_tiny_patch16_224" and "builtin" in data["probe"]

    code, out, _ = run(capsys, "cluster", "--stats", str(stats), "--eps", "0.5", "--min-heads", "1")
    report = json.loads(out)
    assert code == 0 and len(report["layers"]) == 12 and "ffn_groups" in report
    for layer in report["layers"]:
        assert sorted(h for c in layer["clusters"] for h in c) == [0, 1, 2]
        assert len(layer["centroids"]) == len(layer["clusters"]) == len(layer["mean_distance"])

    code, _, err = run(capsys, "extract", "--ancestor", "random:vit_tiny_patch16_224", "--img-size", "64",
                       "--stats", str(stats), "--ffn-groups", "10-11", "--out", str(tmp_path / "lg"))
    assert code == 0, err
    assert json.loads((tmp_path / "lg" / "learngene.json").read_text())["ffn_groups"] == [[10, 11]]


def test_cluster_accepts_a_bare_table_and_matches_the_rule(capsys, tmp_path):
    table = tmp_path / "table.json"
    table.write_text(json.dumps([[1, 2, 50, 52], [10, 40, 70, 100]]))
    code, out, _ = run(capsys, "cluster", "--stats", str(table), "--eps", "10")
    layers = json.loads(out)["layers"]
    assert layers[0]["clusters"] == [[0, 1], [2, 3]] and layers[0]["centroids"] == [0, 2]
    assert layers[1]["labels"] == [0, 1, 2, 3] and layers[1]["noise"] == []
    code, out, _ = run(capsys, "cluster", "--stats", str(table), "--eps", "5", "--min-heads", "2")
    assert json.loads(out)["layers"][1]["noise"] == [0, 1, 2, 3]


@pytest.mark.parametrize("argv, message", [
    (["cluster", "--stats", "{tmp}/missing.json"], "does not exist"),
    (["cluster", "--stats", "{tmp}/empty"], "is a folder, not a statistics file"),
    (["analyze", "--ancestor", "random:vit_tiny_patch16_224", "--images", "{tmp}/table.json", "--out",
      "{tmp}/s.json"], "is a file; give the folder that holds the probe images"),
    (["cluster", "--stats", "{tmp}/negative.json"], "negative mean attention distance (-1 px at layer 0, head 1)"),
    (["cluster", "--stats", "{tmp}/ragged.json"], "same number"),
    (["cluster", "--stats", "{tmp}/nan.json"], "NaN"),
    (["cluster", "--stats", "{tmp}/garbage.json"], "not valid JSON"),
    (["cluster", "--stats", "{tmp}/table.json", "--eps", "0"], "eps must be a positive"),
    (["cluster", "--stats", "{tmp}/table.json", "--min-heads", "0"], "min_heads"),
    (["analyze", "--ancestor", "deit_smal_patch16_224", "--out", "{tmp}/s.json"], "did you mean"),
    (["analyze", "--ancestor", "random:vit_tiny_patch16_224", "--images", "{tmp}/empty", "--out", "{tmp}/s.json"],
     "no readable images"),
    (["analyze", "--ancestor", "{tmp}/corrupt.safetensors@vit_tiny_patch16_224", "--out", "{tmp}/s.json"], "corrupt"),
    (["extract", "--ancestor", "random:vit_tiny_patch16_224", "--stats", "{tmp}/table.json", "--out", "{tmp}/lg"],
     "statistics have shape"),
])
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(capsys, tmp_path, argv, message):
    (tmp_path / "ragged.json").write_text(json.dumps([[1, 2], [3]]))
    (tmp_path / "negative.json").write_text(json.dumps([[1, -1, 3]]))
    (tmp_path / "nan.json").write_text('[[1, NaN]]')
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "table.json").write_text(json.dumps([[1, 2, 3]]))
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x01\x02")
    code, _, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in err
