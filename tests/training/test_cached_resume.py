"""A stopped and resumed ``cached``-pipeline run draws the same crops, flips and RandAugment ops as one that ran
straight through: the batched augmentation's generator travels in the checkpoint."""

from __future__ import annotations

import torch
from conftest import read_metrics

from learngene.training.checkpoint import load_checkpoint
from learngene.training.runner import StopFlag
from learngene.training.worker import run_training


def _stop_at(stop: StopFlag, step: int):
    def progress(record):
        if record["kind"] == "train" and record["step"] >= step:
            stop.request("test stop")

    return progress


def test_cached_pipeline_resume_matches_an_uninterrupted_run(make_run, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path / "cache"))
    # RandAugment (batched) and random erasing on, mixup off: every draw of the step comes from the generators.
    common = dict(epochs=1, max_steps=8, log_every=1, val_fraction=0.05, data_pipeline="cached", mixup=0.0, cutmix=0.0, reprob=0.25,
                  randaugment="rand-m9-mstd0.5-inc1")
    straight = make_run("straight", **common)
    assert run_training(straight)["state"] == "succeeded"

    stopped = make_run("stopped", **common)
    stop = StopFlag()
    result = run_training(stopped, progress=_stop_at(stop, 3), stop=stop)
    middle = result["step"]  # the step after the request (a loaded machine may deliver it a step later)
    assert result["state"] == "stopped" and 3 <= middle < 8
    saved = load_checkpoint(stopped / "checkpoints" / "last.pt")
    assert saved["augment_rng"]["generator"].dtype == torch.uint8
    assert run_training(stopped, resume=True)["step"] == 8

    losses = {r["step"]: r["loss"] for r in read_metrics(straight) if r["kind"] == "train"}
    resumed = {r["step"]: r["loss"] for r in read_metrics(stopped) if r["kind"] == "train"}
    after = range(middle + 1, 9)
    assert [resumed[s] for s in after] == [losses[s] for s in after]  # same batches and draws, bit for bit
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(stopped / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
