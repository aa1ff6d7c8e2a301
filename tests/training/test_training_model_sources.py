"""Ablation options reach a descendant built at start, so `learngene train --ancestor ...` can train T."""

import argparse

import numpy as np
import pytest

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig, add_train_arguments, config_from_args
from learngene.training.model import build_model


def test_build_at_start_keeps_a_trained_transform(tmp_path):
    stats = tmp_path / "stats.json"
    stats.write_text(str(np.random.default_rng(0).uniform(10, 100, (12, 3)).tolist()))
    config = TrainConfig(ancestor="random:deit_tiny_patch16_224", depth=4, img_size=32, stats=str(stats),
                         ffn_groups="1-3", train_transform=True, transform_init="identity", head_order="original",
                         dataset="digits").validate()
    model, _, _ = build_model(config, num_classes=10)
    assert hasattr(model, "ffn_transforms") and len(model.ffn_transforms) == 1
    assert any(name.startswith("ffn_transforms.") for name, _ in model.named_parameters())


def test_ablation_flags_parse_and_validate():
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--ancestor", "builtin", "--ffn-groups", "3-5", "--train-transform",
                              "--centroid", "average", "--dataset", "digits"])
    config = config_from_args(args)
    assert (config.ffn_groups, config.train_transform, config.centroid) == ("3-5", True, "average")
    with pytest.raises(LearngeneError, match="head_order"):
        TrainConfig(ancestor="builtin", head_order="sideways").validate()
