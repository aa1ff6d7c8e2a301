"""`learngene train --dry-run --json`: every setting survives the trip config -> command -> CLI -> config, and every
command the project renders (the app, `compare`, `runs show`) parses back to the config it was rendered from."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from learngene.cli import main
from learngene.cli.training import SUBMITIT_CLUSTERS, run_command
from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig, field_kind

BASE_MODEL = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def built_descendant(tmp_path_factory) -> Path:
    """A real saved descendant (2 layers of the tiny random test_vit4, patch 16): `train --descendant` reads it."""
    folder = tmp_path_factory.mktemp("built") / "desc"
    code = main(["build", "--ancestor", "random:test_vit4", "--img-size", "32", "--depth", "2", "--width-ratio", "1",
                 "--num-classes", "10", "--init", "scratch", "--out", str(folder)])
    assert code == 0 and (folder / "config.json").is_file()
    return folder


def dry_run(capsys, command: list[str]) -> dict:
    """Run a rendered ``learngene train ...`` command through the real CLI with --dry-run --json."""
    assert command[:2] == ["learngene", "train"]
    code = main([*command[1:], "--dry-run", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def example_value(name: str, default, tmp_path):
    """A valid non-default value for field ``name``; text fields without choices need a hand-picked example."""
    kind = field_kind(name)
    choices = [f for f in dataclasses.fields(TrainConfig) if f.name == name][0].metadata["setting"].choices
    text_examples = {
        "descendant": str(tmp_path / "desc"), "model": "test_vit4", "ancestor": "random:test_vit4",
        "stats": str(tmp_path / "stats.json"), "dataset": "lfw-faces", "data_root": str(tmp_path / "data"),
        "ffn_groups": "1-2,4", "randaugment": "rand-m7-mstd0.5",
    }
    if name in text_examples:
        return text_examples[name]
    if kind.base is bool:
        return not default
    if choices:
        return next(choice for choice in choices if choice != default)
    if kind.base is int:
        return 7 if default is None else default + 2
    if kind.base is float:
        return 0.3 if default is None else default / 3
    if kind.base is list:
        return [3, 2, 1]
    if kind.base is dict:
        return {"depth": 2, "qkv_bias": False, "mlp_ratio": 2.5, "act_layer": "gelu", "tag": "123", "tiny": 1e-5,
                "nested": [1, "a"]}
    raise AssertionError(f"add an example value for the new text field {name!r} to this test")


def source_for(name: str) -> dict:
    """The model source a case needs (the field itself may be one)."""
    return {} if name in ("descendant", "model", "ancestor") else {"model": BASE_MODEL}


def cases(tmp_path) -> list[tuple[str, TrainConfig]]:
    """One config per field with a non-default value, None for optional fields with a value by default, and one
    config with every field changed at once: generated from the dataclass, so a new field is covered."""
    defaults = TrainConfig()
    out = []
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        out.append((f.name, TrainConfig(**source_for(f.name), **{f.name: example_value(f.name, default, tmp_path)})))
        if field_kind(f.name).optional and default is not None:
            out.append((f"{f.name}=None", TrainConfig(**source_for(f.name), **{f.name: None})))
    # A timm model as the source: the build fields round-trip without forming a descendant design that
    # validation would check against an ancestor (the ancestor case above does that with the defaults).
    everything = {f.name: example_value(f.name, getattr(defaults, f.name), tmp_path)
                  for f in dataclasses.fields(TrainConfig) if f.name not in ("descendant", "ancestor")}
    out.append(("every-field", TrainConfig(**everything)))
    return out


def test_every_field_round_trips_through_the_command(tmp_path, capsys, built_descendant):
    shutil.copytree(built_descendant, tmp_path / "desc")
    for label, config in cases(tmp_path):
        config = config.validate()
        result = dry_run(capsys, run_command(config))
        assert result["config"] == config.to_dict(), label
        again = dry_run(capsys, result["command"])
        assert again == result, label
    assert len(cases(tmp_path)) > len(dataclasses.fields(TrainConfig))


def test_only_changed_settings_are_written(capsys):
    assert run_command(TrainConfig(model=BASE_MODEL)) == ["learngene", "train", "--model", BASE_MODEL]
    argv = run_command(TrainConfig(model=BASE_MODEL, train_transform=True, channels_last=False, heads=[4, 2],
                                   randaugment=None, model_kwargs={"depth": 2}))
    assert argv[2:] == ["--model", BASE_MODEL, "--model-arg", "depth=2", "--heads", "4,2", "--train-transform",
                        "--randaugment", "none", "--no-channels-last"]


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig) if field_kind(f.name).base is bool])
def test_every_boolean_has_both_flags(name, capsys):
    flag = "--" + name.replace("_", "-")
    for argv, expected in (([flag], True), (["--no-" + flag[2:]], False)):
        result = dry_run(capsys, ["learngene", "train", "--model", BASE_MODEL, *argv])
        assert result["config"][name] is expected


@pytest.mark.parametrize("launcher, flags", [
    ("torchrun", ["--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "host:29500",
                  "--rdzv-id", "job7", "--rdzv-backend", "c10d"]),
    ("slurm", ["--partition", "gpu", "--nodes", "2", "--gpus-per-node", "4", "--time-min", "30",
               "--cpus-per-task", "8", "--mem-gb", "64.5", "--cluster", "slurm", "--sbatch", "account=proj",
               "--sbatch", "qos=high"]),
])
def test_launcher_flags_round_trip(launcher, flags, capsys):
    first = dry_run(capsys, ["learngene", "train", "--model", BASE_MODEL, "--name", "n", "--launcher", launcher,
                             *flags])
    assert first["launcher"] == launcher and len(first["launcher_options"]) >= 6
    assert dry_run(capsys, first["command"]) == first


def test_dry_run_launches_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEARNGENE_RUNS_DIR", str(tmp_path / "runs"))
    dry_run(capsys, ["learngene", "train", "--model", BASE_MODEL])
    code = main(["train", "--model", BASE_MODEL, "--runs-dir", str(tmp_path / "other"), "--dry-run"])
    out, _ = capsys.readouterr()
    assert code == 0 and "# equivalent command\nlearngene train --model" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "other").exists()


@pytest.mark.parametrize("argv, message", [
    (["--launcher", "torchrun", "--nnodes", "2", "--node-rank", "5"], "node-rank"),
    (["--nproc-per-node", "2"], "add --launcher torchrun"),
    (["--model-arg", "img_size=32", "--img-size", "32"], "use|pass --img-size 32"),
    (["--epochs", "0"], "epochs must be >= 1"),
])
def test_dry_run_validates_in_one_line(argv, message, capsys):
    code = main(["train", "--model", BASE_MODEL, *argv, "--dry-run", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert any(part in err for part in message.split("|")), err


def test_slurm_clusters_offered_are_the_ones_the_launcher_accepts(capsys):
    from learngene.runs.launchers import SlurmLauncher

    for cluster in SUBMITIT_CLUSTERS:
        assert SlurmLauncher(cluster=cluster).options()["cluster"] == cluster
    with pytest.raises(LearngeneError, match="debug"):
        SlurmLauncher(cluster="debug")
    with pytest.raises(SystemExit):
        main(["train", "--model", BASE_MODEL, "--launcher", "slurm", "--cluster", "debug", "--dry-run"])
    assert "invalid choice" in capsys.readouterr().err


# --- every rendered command in the project parses back to its config -------------------------------------------
def test_app_equivalent_command_parses_back(tmp_path, capsys, built_descendant):
    from app.launch import train_argv

    shutil.copytree(built_descendant, tmp_path / "desc")
    configs = [
        TrainConfig(descendant=str(tmp_path / "desc"), train_transform=True, download=False, max_steps=4),
        TrainConfig(model=BASE_MODEL, model_kwargs={"depth": 2, "patch_size": 8}, img_size=32, lr=1e-5,
                    randaugment=None, ema=True, channels_last=False, workers=0, clip_grad=1.0),
    ]
    for config in configs:
        argv = train_argv(config, "x", "slurm", {"partition": "gpu", "cluster": "local", "extra": {"qos": "high"}})
        assert "True" not in argv and argv[-1] == "--detach"
        result = dry_run(capsys, argv)
        assert result["config"] == config.to_dict()
        assert result["launcher_options"] == {"partition": "gpu", "cluster": "local", "extra": {"qos": "high"}}


def test_compare_train_commands_parse_back(tmp_path, capsys, built_descendant):
    from learngene.compare import ComparisonPlan, Variant
    from learngene.compare.commands import train_command
    from learngene.compare.execute import descendant_dir

    out = tmp_path / "cmp"
    plan = ComparisonPlan(ancestor="random:test_vit4", datasets=("digits",), depth=2, width_ratio=1.0,
                          variants=(Variant("scratch", "scratch"),
                                    Variant("T", "cluster-learngene", options=(("train_transform", True),))),
                          seeds=(0, 1), recipe={"img_size": 32, "max_steps": 3, "ema": True, "randaugment": None,
                                                "channels_last": False}).validate()
    for job in plan.jobs():
        folder = descendant_dir(out, job)
        shutil.copytree(built_descendant, folder)  # stands in for the job's own (built when compare runs)
        argv = train_command(plan, job, out)
        assert "True" not in argv and "--name" in argv
        assert dry_run(capsys, argv)["config"] == plan.train_config(job, folder).to_dict()


def test_runs_show_json_carries_the_command(tmp_path, capsys, built_descendant):
    from learngene.runs import RunManager

    shutil.copytree(built_descendant, tmp_path / "desc")
    manager = RunManager(tmp_path / "runs")
    config = TrainConfig(descendant=str(tmp_path / "desc"), epochs=3, ema=True, heads=None)
    run_id = manager.submit(config, name="named", launcher="torchrun", launcher_options={"nproc_per_node": 2},
                            schedule=False)
    manager.stop(run_id)  # queued -> stopped: nothing is launched
    assert main(["runs", "show", run_id, "--json", "--runs-dir", str(tmp_path / "runs")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["command"][:2] == ["learngene", "train"] and "--name" in record["command"]
    result = dry_run(capsys, record["command"])
    assert result["config"] == record["config"] == config.to_dict()
    from learngene.runs.launchers import make_launcher

    # The same launcher comes back (the registry stores its options with their defaults filled in).
    assert result["launcher"] == "torchrun"
    rebuilt, stored = make_launcher("torchrun", result["launcher_options"]), make_launcher("torchrun", record["launcher_options"])
    assert rebuilt.options() == stored.options() and stored.nproc_per_node == 2


def test_readme_tour_from_a_fresh_folder_gives_absolute_paths(tmp_path, capsys, monkeypatch):
    """`build --out desc` then `train --descendant desc` (relative) from the same folder: the queued config holds
    the absolute path, so the worker (running inside its run directory) finds the descendant."""
    monkeypatch.chdir(tmp_path)
    code = main(["build", "--ancestor", "random:test_vit4", "--img-size", "32", "--depth", "2", "--width-ratio", "1",
                 "--num-classes", "10", "--init", "scratch", "--out", "desc/"])
    assert code == 0, capsys.readouterr().err
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEARNGENE_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run([sys.executable, "-m", "learngene", "train", "--descendant", "desc/", "--dataset",
                             "digits", "--dry-run", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["config"]["descendant"] == str(tmp_path / "desc")
    assert shown["command"] == ["learngene", "train", "--descendant", str(tmp_path / "desc")]
    assert not (tmp_path / "runs").exists()


def test_runs_clone_with_a_wrong_type_is_one_line_and_queues_nothing(tmp_path, capsys):
    from learngene.runs import RunManager

    manager = RunManager(tmp_path / "runs")
    run_id = manager.submit(TrainConfig(model=BASE_MODEL), schedule=False)
    manager.stop(run_id)
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    code = main(["runs", "clone", run_id, "epochs=abc", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: training config: epochs must be an integer, got 'abc'\n"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before
    assert len(manager.list(schedule=False)) == 1


def _refusal_cases(tmp_path: Path, built: Path) -> list[tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = tmp_path / "truncated"
    shutil.copytree(built, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    garbage = tmp_path / "garbage.json"
    garbage.write_text("garbage{")
    ancestor = ["--ancestor", "random:test_vit4"]
    return [
        (["--descendant", str(empty)], "is not a saved descendant (no config.json)"),
        (["--descendant", str(garbage)], "is a file; give the folder that `learngene build --out` wrote"),
        (["--descendant", str(truncated)], "is corrupt"),
        (["--descendant", str(built), "--img-size", "40"], "multiple of the descendant's patch size 16"),
        ([*ancestor, "--depth", "0"], "depth must be between 1 and the ancestor's 9 layers"),
        ([*ancestor, "--width-ratio", "-1"], "width ratio must be a positive number"),
        ([*ancestor, "--img-size", "40"], "multiple of the patch size 16"),
        ([*ancestor, "--eps", "-1"], "eps must be a positive number"),
        ([*ancestor, "--min-heads", "0"], "min_heads must be an integer >= 1"),
        ([*ancestor, "--stats", str(garbage)], "is not valid JSON"),
        ([*ancestor, "--stats", str(tmp_path / "missing.json")], "does not exist"),
    ]


def test_what_the_worker_would_refuse_is_refused_before_a_run_exists(tmp_path, capsys, built_descendant):
    # These used to be queued and launched, then failed in the worker (a failed run in the registry, exit 1, the
    # message three times), or, for a descendant whose patch does not divide --img-size, trained on a cropped image.
    runs = tmp_path / "runs"
    for argv, message in _refusal_cases(tmp_path, built_descendant):
        code = main(["train", *argv, "--dataset", "digits", "--runs-dir", str(runs), "--detach"])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
        assert message in err, (argv, err)
        assert not runs.exists(), argv  # no run directory, no registry row
