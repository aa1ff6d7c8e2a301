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
