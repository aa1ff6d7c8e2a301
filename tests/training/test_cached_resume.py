"""A stopped and resumed ``cached``-pipeline run draws the same crops, flips and RandAugment ops as one that ran
straight through: the batched augmentation's generator travels in the checkpoint (every rank's: see
``test_training_processes.py`` for two processes), and checkpoints from before the per-rank states still resume."""

from __future__ import annotations

import shutil

import torch
from conftest import read_metrics

from learngene.training.checkpoint import RANK_STATES, load_checkpoint, save_checkpoint
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
    assert len(saved[RANK_STATES]) == 1 and torch.equal(saved[RANK_STATES][0]["augment_rng"]["generator"],
                                                        saved["augment_rng"]["generator"])
    # The same checkpoint as an older version wrote it: rank 0's states only, no world size.
    legacy = tmp_path / "legacy"
    shutil.copytree(stopped, legacy)
    old = {k: v for k, v in saved.items() if k not in (RANK_STATES, "world_size")}
    save_checkpoint(legacy / "checkpoints" / "last.pt", old)
    assert run_training(stopped, resume=True)["step"] == 8
    assert run_training(legacy, resume=True)["step"] == 8

    losses = {r["step"]: r["loss"] for r in read_metrics(straight) if r["kind"] == "train"}
    after = range(middle + 1, 9)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    for run_dir in (stopped, legacy):
        resumed = {r["step"]: r["loss"] for r in read_metrics(run_dir) if r["kind"] == "train"}
        assert [resumed[s] for s in after] == [losses[s] for s in after]  # same batches and draws, bit for bit
        b = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_number_of_processes_is_refused(make_run):
    # 2 and 3 processes can have the same steps per epoch; the saved world size tells them apart.
    run_dir = make_run(max_steps=2)
    stop = StopFlag()
    stop.request("early")
    assert run_training(run_dir, stop=stop)["step"] == 0
    path = run_dir / "checkpoints" / "last.pt"
    save_checkpoint(path, {**load_checkpoint(path), "world_size": 3})
    result = run_training(run_dir, resume=True)
    assert result["state"] == "failed"
    assert result["message"] == (f"{path} was written by 3 processes, this run has 1: resume with the same number "
                                 f"of processes")
