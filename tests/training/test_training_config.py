"""TrainConfig: YAML round trip, validation before launch, and CLI flag layering."""

from __future__ import annotations

import argparse

import pytest

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig, add_train_arguments, config_from_args


def test_defaults_follow_the_paper_recipe():
    cfg = TrainConfig()
    assert (cfg.base_lr, cfg.weight_decay, cfg.label_smoothing) == (5e-4, 0.05, 0.1)
    assert (cfg.mixup, cfg.cutmix, cfg.reprob) == (0.8, 1.0, 0.25)
    assert cfg.randaugment == "rand-m9-mstd0.5-inc1"
    assert cfg.resolved_lr(world_size=2) == pytest.approx(5e-4 * 64 * 2 / 512)


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(model="vit_tiny_patch16_224", model_kwargs={"depth": 2}, heads=[3, 2], lr=None, ema=True)
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == cfg


def test_unknown_key_and_bad_yaml_are_clear(tmp_path):
    with pytest.raises(LearngeneError, match="unknown training config key.*batchsize"):
        TrainConfig.from_dict({"batchsize": 3})
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(LearngeneError, match="not valid YAML"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(LearngeneError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "exactly one model source"),
        ({"model": "vit_tiny_patch16_224", "descendant": "/nonexistent"}, "exactly one model source"),
        ({"descendant": "/nonexistent/dir"}, "descendant directory not found"),
        ({"model": "no_such_model_xyz"}, "unknown timm model"),
        ({"model": "vit_tiny_patch16_224", "dataset": "imagenet-99"}, "unknown dataset 'imagenet-99'"),
        ({"model": "vit_tiny_patch16_224", "dataset": "cub200"}, "needs --data-root"),
        ({"model": "vit_tiny_patch16_224", "batch_size": 0}, "batch_size must be >= 1"),
        ({"model": "vit_tiny_patch16_224", "batch_size": 7}, "even batch size"),
        ({"model": "vit_tiny_patch16_224", "amp": "fp8"}, "amp must be one of"),
        ({"model": "vit_tiny_patch16_224", "lr": -1.0}, "lr must be positive"),
        ({"model": "vit_tiny_patch16_224", "val_fraction": 1.5}, "val_fraction"),
        ({"model": "vit_tiny_patch16_224", "randaugment": "m9"}, "randaugment must look like"),
        ({"model": "vit_tiny_patch16_224", "num_classes": 1}, "num_classes must be >= 2"),
    ],
)
def test_validate_rejects_bad_values(overrides, message):
    with pytest.raises(LearngeneError, match=message):
        TrainConfig(**overrides).validate()


def test_switches_off():
    cfg = TrainConfig(model="vit_tiny_patch16_224", randaugment="none", mixup=0, cutmix=0, batch_size=7).validate()
    assert cfg.randaugment_policy is None and not cfg.mixup_active


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    TrainConfig(model="vit_tiny_patch16_224", epochs=7, lr=0.01, model_kwargs={"depth": 2}).to_yaml(tmp_path / "c.yaml")
    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--config", str(tmp_path / "c.yaml"), "--batch-size", "16", "--lr", "none",
                              "--model-arg", "patch_size=8", "--no-ema", "--randaugment", "none"])
    cfg = config_from_args(args)
    assert cfg.epochs == 7 and cfg.batch_size == 16 and cfg.lr is None and cfg.ema is False
    assert cfg.model_kwargs == {"depth": 2, "patch_size": 8} and cfg.randaugment_policy is None
    assert cfg.weight_decay == 0.05  # untouched default


def test_config_from_args_validates():
    parser = add_train_arguments(argparse.ArgumentParser())
    with pytest.raises(LearngeneError, match="accum_steps"):
        config_from_args(parser.parse_args(["--model", "vit_tiny_patch16_224", "--accum-steps", "0"]))


def test_workers_zero_means_the_main_process_not_automatic():
    import argparse

    from learngene.training.config import add_train_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    assert config_from_args(parser.parse_args(["--model", "vit_tiny_patch16_224", "--workers", "0"])).workers == 0
    assert config_from_args(parser.parse_args(["--model", "vit_tiny_patch16_224", "--workers", "auto"])).workers is None


# --- typed values (from_dict is the gate of YAML configs, the app and `runs clone KEY=VALUE`) ---------------------
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("epochs", "abc", "epochs must be an integer"),
        ("batch_size", 1.5, "batch_size must be an integer"),
        ("ema", "maybe", "ema must be true or false"),
        ("heads", "x", "heads must be a list of integers"),
        ("lr", "fast", "lr must be a number or none"),
        ("epochs", True, "epochs must be an integer"),  # a YAML `yes` is not a number
        ("dataset", 10, "dataset must be a string"),
        ("model_kwargs", [1, 2], "model_kwargs must be a mapping"),
        ("img_size", None, "img_size must be an integer, got None"),
    ],
)
def test_from_dict_names_the_field_and_type_in_one_line(key, value, expected):
    with pytest.raises(LearngeneError, match=expected) as error:
        TrainConfig.from_dict({key: value})
    assert "\n" not in str(error.value)


def test_wrong_type_in_a_yaml_file_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_text("model: vit_tiny_patch16_224\nepochs: abc\n")
    with pytest.raises(LearngeneError, match=r"^training config: epochs must be an integer, got 'abc'$"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_from_dict_accepts_what_each_type_allows(tmp_path):
    cfg = TrainConfig.from_dict({"lr": 1, "max_steps": "none", "heads": "6,6,4", "clip_grad": None, "ema": True,
                                 "descendant": tmp_path})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.descendant == str(tmp_path)
    assert cfg.max_steps is None and cfg.heads == [6, 6, 4] and cfg.clip_grad is None and cfg.ema is True


def test_validate_checks_types_of_a_config_built_in_python():
    with pytest.raises(LearngeneError, match="epochs must be an integer"):
        TrainConfig(model="vit_tiny_patch16_224", epochs="3").validate()


def test_model_arg_may_not_set_what_a_flag_sets():
    with pytest.raises(LearngeneError, match=r"--model-arg img_size=32 conflicts .*pass --img-size 32"):
        TrainConfig(model="vit_tiny_patch16_224", model_kwargs={"img_size": 32}).validate()
    with pytest.raises(LearngeneError, match="pass --drop-path 0.2"):
        TrainConfig(model="vit_tiny_patch16_224", model_kwargs={"drop_path_rate": 0.2}).validate()


def test_config_offers_the_spec_options_without_importing_torch():
    """The option names have one torch-free source, so validating a config stays cheap (no mirrors to drift)."""
    import subprocess
    import sys

    code = ("import sys, learngene.training.config as c, learngene.design_options as o; "
            "assert c.INIT_CHOICES is o.INIT_METHODS and c.SCHEDULE_CHOICES == tuple(o.SCHEDULES); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from learngene.descendant import spec
    from learngene.training import config

    assert spec.INIT_METHODS is config.INIT_CHOICES and "auto-learngene-layers-only" in config.INIT_CHOICES


# --- paths are absolute from submission on (the worker runs inside its run directory) ------------------------------
def test_resolved_makes_local_paths_absolute_and_leaves_names_alone(tmp_path):
    (tmp_path / "desc").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "weights.pth").write_bytes(b"")
    cfg = TrainConfig(descendant="desc/", dataset="images", data_root="data", stats="s.json")
    out = cfg.resolved(tmp_path)
    assert out.descendant == str(tmp_path / "desc") and out.dataset == str(tmp_path / "images")
    assert out.data_root == str(tmp_path / "data") and out.stats == str(tmp_path / "s.json")
    assert out.resolved(tmp_path / "elsewhere") == out  # idempotent
    assert TrainConfig(ancestor="weights.pth@deit_tiny_patch16_224").resolved(tmp_path).ancestor == (
        f"{tmp_path / 'weights.pth'}@deit_tiny_patch16_224"
    )
    for name in ("builtin", "random:vit_tiny_patch16_224", "vit_small_patch16_224.augreg_in21k"):
        assert TrainConfig(ancestor=name).resolved(tmp_path).ancestor == name
    assert TrainConfig(dataset="digits").resolved(tmp_path).dataset == "digits"


def test_config_from_args_resolves_against_the_working_directory(tmp_path, monkeypatch):
    from learngene.ancestors import load_ancestor
    from learngene.descendant import DescendantSpec, build_descendant, save_descendant

    # A real saved descendant: validation reads its config.json and weights header.
    ancestor = load_ancestor("random:test_vit4", img_size=32)
    spec = DescendantSpec(depth=1, width_ratio=1.0, img_size=32, num_classes=10, init="scratch")
    save_descendant(build_descendant(ancestor, spec), tmp_path / "desc")
    monkeypatch.chdir(tmp_path)
    parser = add_train_arguments(argparse.ArgumentParser())
    cfg = config_from_args(parser.parse_args(["--descendant", "desc/"]))
    assert cfg.descendant == str(tmp_path / "desc")
