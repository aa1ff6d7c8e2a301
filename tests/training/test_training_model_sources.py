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


def _drop_rates(model) -> list[tuple[float, float]]:
    return [tuple(float(getattr(getattr(block, attr), "drop_prob", 0.0)) for attr in ("drop_path1", "drop_path2"))
            for block in model.blocks]


def _timm_reference_rates(depth: int, rate: float) -> list[tuple[float, float]]:
    """What timm itself builds with drop_path_rate=rate (the independent reference)."""
    import timm

    return _drop_rates(timm.create_model("test_vit4", depth=depth, img_size=32, drop_path_rate=rate))


def test_drop_path_reaches_every_model_source(tmp_path):
    """--drop-path is applied to a timm model, a saved descendant and a descendant built from an ancestor alike."""
    from learngene.ancestors import load_ancestor
    from learngene.descendant import DescendantSpec, build_descendant, save_descendant

    rate, depth = 0.3, 3
    reference = _timm_reference_rates(depth, rate)
    assert reference[0] == (0.0, 0.0) and reference[-1][0] == pytest.approx(rate)

    ancestor = load_ancestor("random:test_vit4", img_size=32)
    spec = DescendantSpec(depth=depth, width_ratio=1.0, img_size=32, num_classes=10, init="scratch")
    folder = save_descendant(build_descendant(ancestor, spec), tmp_path / "desc")
    sources = {
        "timm": TrainConfig(model="test_vit4", model_kwargs={"depth": depth}, img_size=32),
        "descendant": TrainConfig(descendant=str(folder), img_size=32),
        "ancestor": TrainConfig(ancestor="random:test_vit4", init="scratch", depth=depth, width_ratio=1.0,
                                img_size=32),
    }
    for source, config in sources.items():
        model, _, _ = build_model(TrainConfig.from_dict({**config.to_dict(), "drop_path": rate}).validate(), 10)
        assert _drop_rates(model) == reference, source
        model, _, _ = build_model(TrainConfig.from_dict({**config.to_dict(), "drop_path": 0.0}).validate(), 10)
        assert _drop_rates(model) == [(0.0, 0.0)] * depth, source
