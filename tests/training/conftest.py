"""Shared helpers for the training-engine tests: a tiny ViT on the offline ``digits`` set at 32 px."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(
    model="vit_tiny_patch16_224",
    model_kwargs={"patch_size": 8, "depth": 2, "embed_dim": 64, "num_heads": 2},
    dataset="digits",
    img_size=32,
    batch_size=32,
    lr=1e-3,
    warmup_epochs=0.5,
    drop_path=0.0,
    workers=0,
    log_every=5,
    device="cpu",
)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def make_run(tmp_path):
    """``make_run(name, **overrides) -> run_dir`` with ``config.yaml`` written from TINY + overrides."""
    from learngene.training.config import TrainConfig

    def factory(name: str = "run", **overrides) -> Path:
        run_dir = tmp_path / name
        run_dir.mkdir()
        TrainConfig.from_dict({**TINY, **overrides}).to_yaml(run_dir / "config.yaml")
        return run_dir

    return factory
