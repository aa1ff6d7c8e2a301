"""Dry runs of the full-scale commands (docs/full_scale.md): config resolution and dataset wiring, offline.

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
from learngene.compare.full_scale import ANCESTOR, FULL_SCALE_COMMANDS, full_scale_argv

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


@pytest.mark.parametrize("label", list(FULL_SCALE_COMMANDS))
def test_full_scale_row_dry_runs_with_fake_data(label, fake_dataset, tmp_path, capsys):
    original = full_scale_argv(label)
    argv = _substituted(original, fake_dataset, tmp_path / "out")
    assert main([*argv, "--dry-run", "--check-data", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (info,) = result["datasets"].values()
    assert info["num_classes"] == len(FAKE_CLASSES)
    assert (info["train_images"], info["val_images"]) == (4 * len(FAKE_CLASSES), 2 * len(FAKE_CLASSES))
    jobs = result["jobs"]
    inits = _option(original, "--inits").split(",")
    seeds = _option(original, "--seeds").split(",")
    assert len(jobs) == len(inits) * len(seeds)
    assert {job["key"].split("/")[1] for job in jobs} == set(inits)
    for job in jobs:
        assert job["heads"] == [6] * 6 and job["num_classes"] == len(FAKE_CLASSES)
        train, config = job["train"], job["config"]
        # The paper's recipe travels into every run: epochs, warm-up, batch, resolution (and the Cars lr).
        for flag in ("--epochs", "--warmup-epochs", "--batch-size", "--img-size", "--base-lr"):
            if flag in original:
                assert config[flag[2:].replace("-", "_")] == float(_option(original, flag))
        assert (config["mixup"], config["cutmix"], config["randaugment"]) == (0.8, 1.0, "rand-m9-mstd0.5-inc1")
        assert config["descendant"] == _option(train, "--descendant")
        seed = job["key"].rsplit("seed", 1)[1]
        assert _option(train, "--seed") == seed and _option(job["build"], "--seed") == seed
        assert _option(job["build"], "--ancestor") == f"random:{ANCESTOR}"
        assert _option(train, "--descendant") == _option(job["build"], "--out")
    inherited = {job["key"].split("/")[1]: job["inherited_params"] for job in jobs}
    assert inherited["scratch"] == 0
    assert 0 < inherited["heuristic-learngene"] < inherited["auto-learngene"]
    assert not (tmp_path / "out" / "descendants").exists()  # a dry run builds nothing


@pytest.mark.parametrize("label", [k for k, v in FULL_SCALE_COMMANDS.items()
                                   if not any(f"--dataset {d}" in v for d in FOLDER_DATASETS)])
def test_unaltered_torchvision_rows_resolve_offline(label, tmp_path, capsys, monkeypatch):
    """The real commands resolve without the hub weights (architecture only) and without the data."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = full_scale_argv(label)
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert text.count("learngene train --descendant") == 15
    assert f"--ancestor {ANCESTOR}" in text


def test_folder_row_without_its_data_is_refused(tmp_path, capsys):
    argv = full_scale_argv("CUB-200-2011")
    argv[argv.index("--data-root") + 1] = str(tmp_path / "missing")
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, "--dry-run"]) == 2
    assert "data-root" in capsys.readouterr().err


def test_commands_are_single_shell_lines():
    for command in FULL_SCALE_COMMANDS.values():
        assert "\n" not in command and shlex.split(command)[:2] == ["learngene", "compare"]


@pytest.mark.parametrize("flag", [["--seed", "3"], ["--init", "scratch"], ["--descendant", "/tmp"],
                                  ["--schedule", "decreasing"]])
def test_per_run_model_flags_are_refused(flag, tmp_path, capsys):
    argv = full_scale_argv("CIFAR-10")
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main([*argv, *flag, "--dry-run"]) == 2
    assert "per run" in capsys.readouterr().err
