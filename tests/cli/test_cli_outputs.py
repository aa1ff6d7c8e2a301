"""Output paths of analyze/extract/build: --force replaces only what learngene wrote; bad paths are one line."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from learngene.cli import main

TINY = ["--ancestor", "random:vit_tiny_patch16_224", "--img-size", "32"]
BUILD = ["build", *TINY, "--depth", "2", "--num-classes", "3", "--init", "scratch"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "table.json"
    path.write_text(json.dumps([[float(h * 7 + layer) for h in range(3)] for layer in range(12)]))
    return path


def test_force_never_touches_a_foreign_folder(tmp_path, table, capsys):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    assert main([*BUILD, "--out", str(foreign), "--force"]) == 2
    assert "did not write it" in one_error_line(capsys)
    assert main(["extract", *TINY, "--stats", str(table), "--out", str(foreign), "--force"]) == 2
    assert "did not write it" in one_error_line(capsys)
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]
    assert (foreign / "holiday.jpg").read_bytes() == b"not ours"


@pytest.mark.parametrize("out, reason", [(".", "it is the current directory"),
                                         ("..", "it contains the current directory"),
                                         ("~", "your home directory"), ("/", "the file-system root")])
def test_force_refuses_the_working_directory_its_parents_home_and_root(tmp_path, monkeypatch, capsys, out, reason):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    target = os.path.expanduser(out)
    assert main([*BUILD, "--out", target, "--force"]) == 2
    assert reason in one_error_line(capsys)
    assert (work / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]


def test_force_replaces_a_descendant_we_wrote(tmp_path, capsys):
    out = tmp_path / "desc"
    assert main([*BUILD, "--seed", "1", "--out", str(out)]) == 0
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*BUILD, "--seed", "2", "--out", str(out)]) == 2
    assert "already exists" in one_error_line(capsys)
    assert main([*BUILD, "--seed", "2", "--out", str(out), "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() != first
    assert json.loads((out / "config.json").read_text())["spec"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["desc"]  # no temporary sibling left behind


@pytest.mark.parametrize("command", ["analyze", "extract", "build"])
@pytest.mark.parametrize("out", ["/proc/learngene-out", "{tmp}/a-file/out", "/proc/self/x/y"])
def test_unwritable_outputs_are_one_line(tmp_path, table, capsys, command, out):
    (tmp_path / "a-file").write_text("a file, not a folder")
    out = out.format(tmp=tmp_path)
    argv = {"analyze": ["analyze", *TINY, "--num-images", "1"],
            "extract": ["extract", *TINY, "--stats", str(table)],
            "build": BUILD}[command]
    assert main([*argv, "--out", out]) == 2
    assert "cannot write" in one_error_line(capsys)


def test_extract_accepts_ffn_groups_none(tmp_path, table, capsys):
    out = tmp_path / "lg"
    assert main(["extract", *TINY, "--stats", str(table), "--ffn-groups", "none", "--out", str(out)]) == 0
    assert json.loads((out / "learngene.json").read_text())["ffn_groups"] == []


def test_a_closed_pipe_ends_quietly(table):
    """`learngene cluster ... | head -0`: the reader is gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([sys.executable, "-m", "learngene", "cluster", "--stats", str(table)],
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == ""


# ------------------------------------------------------------------------------------------- statistics identity
@pytest.fixture
def two_ancestors(tmp_path):
    """Two weights files of one architecture (same 12 x 3 shape), different weights."""
    import timm

    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=0)
        path = tmp_path / f"anc{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        paths.append(f"{path}@vit_tiny_patch16_224")
    return paths


def test_statistics_of_another_ancestor_are_refused(tmp_path, two_ancestors, capsys):
    first, second = two_ancestors
    stats = tmp_path / "stats.json"
    assert main(["analyze", "--ancestor", first, "--img-size", "32", "--num-images", "2", "--out", str(stats)]) == 0
    assert len(json.loads(stats.read_text())["ancestor"]["weights_sha256"]) == 16
    capsys.readouterr()
    for argv in (["extract", "--out", str(tmp_path / "lg")],
                 ["build", "--depth", "2", "--num-classes", "3", "--out", str(tmp_path / "d")]):
        assert main([*argv, "--ancestor", second, "--img-size", "32", "--stats", str(stats)]) == 2
        line = one_error_line(capsys)
        assert first in line and second in line and "learngene analyze" in line and "--stats-any" in line
    assert not (tmp_path / "lg").exists() and not (tmp_path / "d").exists()
    # the same ancestor, and an explicit override, are accepted
    assert main(["extract", "--ancestor", first, "--img-size", "32", "--stats", str(stats),
                 "--out", str(tmp_path / "lg")]) == 0
    assert main(["extract", "--ancestor", second, "--img-size", "32", "--stats", str(stats), "--stats-any",
                 "--out", str(tmp_path / "lg2")]) == 0
    assert "using it anyway" in capsys.readouterr().err


def test_old_statistics_without_identity_are_accepted_with_a_warning(tmp_path, table, capsys):
    assert main(["extract", *TINY, "--stats", str(table), "--out", str(tmp_path / "lg")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "does not say which ancestor" in err


def test_analyze_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    # `analyze --out` used to replace any existing file silently (a user's notes, another tool's JSON).
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    argv = ["analyze", *TINY, "--num-images", "1", "--out", str(notes)]
    assert main(argv) == 2
    assert "already exists" in one_error_line(capsys) and notes.read_text() == '{"mine": 1}'
    assert main([*argv, "--force"]) == 2
    assert "learngene did not write it" in one_error_line(capsys) and notes.read_text() == '{"mine": 1}'

    stats = tmp_path / "stats.json"
    assert main(["analyze", *TINY, "--num-images", "1", "--out", str(stats)]) == 0
    first = stats.read_text()
    capsys.readouterr()
    assert main(["analyze", *TINY, "--num-images", "2", "--out", str(stats)]) == 2
    assert "pass --force" in one_error_line(capsys) and stats.read_text() == first
    assert main(["analyze", *TINY, "--num-images", "2", "--out", str(stats), "--force"]) == 0
    assert json.loads(stats.read_text())["num_images"] == 2  # its own file is replaced with --force
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "stats.json"]


def test_probe_force_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text("my results, not JSON")
    argv = ["probe", *TINY[:2], "--dataset", "digits", "--subset", "20", "--null-draws", "1", "--out", str(notes)]
    assert main(argv) == 2
    assert "already exists" in one_error_line(capsys)
    assert main([*argv, "--force"]) == 2
    assert "learngene did not write it" in one_error_line(capsys)
    assert notes.read_text() == "my results, not JSON"


def test_compare_never_writes_into_a_folder_it_did_not_write(tmp_path, capsys):
    # compare used to write results.md, results.json, plan.json, jobs/ and descendants/ into any existing folder,
    # replacing a user's results.md.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.md").write_text("my own results")
    base = ["compare", "--ancestor", "random:test_vit4", "--dataset", "digits", "--depth", "2", "--width-ratio", "1",
            "--inits", "scratch", "--seeds", "0", "--img-size", "32", "--max-steps", "1",
            "--runs-dir", str(tmp_path / "runs")]
    for extra in ([], ["--dry-run"]):
        assert main([*base, "--out", str(mine), *extra]) == 2
        assert "learngene compare did not write" in one_error_line(capsys)
    assert [p.name for p in mine.iterdir()] == ["results.md"] and (mine / "results.md").read_text() == "my own results"
    assert main([*base, "--out", str(mine / "results.md"), "--dry-run"]) == 2
    assert "is a file" in one_error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main([*base, "--out", str(tmp_path / "empty"), "--dry-run"]) == 0  # an empty folder is fine
    assert not (tmp_path / "runs").exists()
