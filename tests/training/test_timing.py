"""The pre-launch estimate: a short timing of the real training step, and the run's step count."""

from __future__ import annotations

import math
import os

import pytest
from conftest import TINY

from learngene.errors import LearngeneError
from learngene.training.config import TrainConfig
from learngene.training.data import load_splits
from learngene.training.timing import estimate_run, planned_steps, time_training_steps


def test_time_training_steps_is_a_positive_finite_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.from_dict({**TINY, "img_size": 16, "batch_size": 8}).validate()
    seconds = time_training_steps(config, steps=2, warmup=1)
    assert math.isfinite(seconds) and 0 < seconds < 60
    assert os.listdir(tmp_path) == []


def test_planned_steps_counts_like_the_runner():
    config = TrainConfig.from_dict({**TINY, "batch_size": 32, "epochs": 3}).validate()
    # digits: 1,797 images, 20 % held out per class -> 1,438 to train on (rounded per class); 1,438 // 32 = 44 steps per epoch
    assert len(load_splits(config).train) == 1438
    assert planned_steps(config, 1438) == (44, 132)
    capped = TrainConfig.from_dict({**TINY, "batch_size": 32, "epochs": 3, "max_steps": 50}).validate()
    assert planned_steps(capped, 1438) == (44, 50)
    accumulated = TrainConfig.from_dict({**TINY, "batch_size": 32, "accum_steps": 2, "epochs": 1}).validate()
    assert planned_steps(accumulated, 1438) == (22, 22)


def test_planned_steps_refuses_a_batch_larger_than_the_split():
    config = TrainConfig.from_dict({**TINY, "batch_size": 2048}).validate()
    with pytest.raises(LearngeneError, match="lower the batch size"):
        planned_steps(config, 1438)


def test_estimate_run_on_digits():
    config = TrainConfig.from_dict({**TINY, "img_size": 16, "batch_size": 64, "epochs": 2}).validate()
    estimate = estimate_run(config, steps=1, warmup=0)
    assert (estimate.train_images, estimate.steps_per_epoch, estimate.total_steps) == (1438, 22, 44)
    assert estimate.device == "cpu" and estimate.seconds_per_step > 0
    assert estimate.total_seconds == pytest.approx(44 * estimate.seconds_per_step)
