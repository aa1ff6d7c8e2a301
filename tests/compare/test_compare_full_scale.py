"""Dry runs of the full-scale commands (docs/full_scale.md, one per Table 2 cell): config and dataset wiring, offline.

The DeiT-S hub ancestor is replaced by ``random:deit_small_patch16_224`` (same architecture, no download) and the
datasets by a tiny folder of generated PNGs; nothing is trained.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from learngene.cli import main
from learngene.compare.full_scale import (
    ANCESTOR,
    FULL_SCALE_COMMANDS,
    METHODS_WITHOUT_COMMAND,
    full_scale_argv,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "full_scale.md"
FAKE_CLASSES = ("ant", "bee", "cat")
FOLDER_DATASETS = ("cub200", "inaturalist")


@pytest.fixture(scope="module")
def fake_dataset(tmp_path_factory):
    """train/ and val/ folders with a few random PNGs per class."""
    root = tmp_path_factory.mktemp("fake_dataset")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for name in FAKE_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _substituted(argv: list[str], fake: Path, out: Path) -> list[str]:
    """The row with the random ancestor, the fake data and a private output directory."""
    argv = list(argv)
    argv[argv.index("--ancestor") + 1] = f"random:{ANCESTOR}"
    argv[argv.index("--out") + 1] = str(out)
    if "--data-root" in argv:
        argv[argv.index("--data-root") + 1] = str(fake)
    if _option(argv, "--dataset") not in FOLDER_DATASETS:
        argv[argv.index("--dataset") + 1] = str(fake)  # a torchvision dataset cannot be faked: use a folder
        if "--data-root" in argv:
            i = argv.index("--data-root")
            del argv[i : i + 2]
    return argv


def test_doc_shows_exactly_the_commands():
    text = DOC.read_text()
    blocks = [line for line in text.splitlines() if line.startswith("learngene compare ")]
    assert blocks == list(FULL_SCALE_COMMANDS.values())
    assert all(method in text for method in METHODS_WITHOUT_COMMAND)


# What each row of the table builds: (depth, heads per layer, spec fields the build must get).
EXPECTED_ROWS = {
    "Pretraining-Finetuning": (12, "ancestor", {}),
    "From-Scratch": (6, "scratch", {}),
    "Heuristic-Learngene": (12, "heuristic-learngene", {}),
    "Auto-Learngene": (12, "auto-learngene", {}),
    "Cluster-Learngene": (6, "cluster-learngene", {"--parity": "authors"}),
    "Weight-Transformation": (12, "weight-transformation", {}),
}


@pytest.mark.parametrize("cell", list(FULL_SCALE_COMMANDS), ids=lambda cell: f"{cell[0]}/{cell[1]}")
def test_full_scale_cell_dry_runs_with_fake_data(cell, fake_dataset, tmp_path, capsys):
    method, _ = cell
    original = full_scale_argv(*cell)
    argv = _substituted(original, fake_dataset, tmp_path / "out")
    assert main([*argv, "--dry-run", "--check-data", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (info,) = result["datasets"].values()
    assert info["num_classes"] == len(FAKE_CLASSES)
    assert (info["train_images"], info["val_images"]) == (4 * len(FAKE_CLASSES), 2 * len(FAKE_CLASSES))
    jobs = result["jobs"]
    assert len(jobs) == len(_option(original, "--seeds").split(",")) == 3
    depth, init, build_flags = EXPECTED_ROWS[method]
    for job in jobs:
        assert job["heads"] == [6] * depth and job["num_classes"] == len(FAKE_CLASSES)
        train, config, build = job["train"], job["config"], job["build"]
        assert _option(build, "--init") == init
        for flag, value in build_flags.items():
            assert _option(build, flag) == value
        # The paper's recipe travels into every run: epochs, warm-up, batch, resolution (and the Cars lr).
        for flag in ("--epochs", "--warmup-epochs", "--batch-size", "--img-size", "--base-lr"):
            if flag in original:
                assert config[flag[2:].replace("-", "_")] == float(_option(original, flag))
        assert (config["mixup"], config["cutmix"], config["randaugment"]) == (0.8, 1.0, "rand-m9-mstd0.5-inc1")
        assert config["drop_path"] == 0.0  # the authors' code never sets drop path
        assert config["descendant"] == _option(train, "--descendant")
        seed = job["key"].rsplit("seed", 1)[1]
        assert _option(train, "--seed") == seed and _option(build, "--seed") == seed
        assert _option(build, "--ancestor") == f"random:{ANCESTOR}"
        assert _option(train, "--descendant") == _option(build, "--out")
        if init == "scratch":
            assert job["inherited_params"] == 0
        else:
            assert 0 < job["inherited_params"] < job["params"]
    assert not (tmp_path / "out" / "descendants").exists()  # a dry run builds nothing


@pytest.mark.parametrize("cell", [cell for cell, command in FULL_SCALE_COMMANDS.items()
                                  if not any(f"--dataset {d}" in command for d in FOLDER_DATASETS)],
                         ids=lambda cell: f"{cell[0]}/{cell[1]}")
def test_unaltered_torchvision_cells_resolve_offline(cell, tmp_path, capsys, monkeypatch):
    """The real commands resolve without the hub weights (architecture only) and without the data."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = full_scale_argv(*cell)
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.count("learngene train --descendant") == 3
    assert f"--ancestor {ANCESTOR}" in text


def test_folder_cell_without_its_data_is_refused(tmp_path, capsys):
    argv = full_scale_argv("Cluster-Learngene", "CUB-200-2011")
    argv[argv.index("--data-root") + 1] = str(tmp_path / "missing")
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, "--dry-run"]) == 2
    assert "data-root" in capsys.readouterr().err


def test_commands_are_single_shell_lines_with_distinct_outputs():
    outs = set()
    for command in FULL_SCALE_COMMANDS.values():
        assert "\n" not in command and shlex.split(command)[:2] == ["learngene", "compare"]
        outs.add(_option(shlex.split(command), "--out"))
    assert len(outs) == len(FULL_SCALE_COMMANDS) == 6 * 7  # six methods x seven datasets (Table 2)


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--init", "scratch"], ["--descendant", "/tmp"],
                                  ["--schedule", "decreasing"]])
def test_per_run_model_flags_are_refused(flag, tmp_path, capsys):
    argv = full_scale_argv("From-Scratch", "CIFAR-10")
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, *flag, "--dry-run"]) == 2
    assert "per run" in capsys.readouterr().err
