"""End-to-end runs on the offline digits set: records, checkpoints, graceful stop, exact resume, clear failures."""

from __future__ import annotations

import errno
import json

import pytest
import torch
from conftest import read_metrics

from learngene.training.checkpoint import load_checkpoint
from learngene.training.runner import StopFlag
from learngene.training.worker import run_training


def test_digits_run_end_to_end(make_run):
    # 539 training images at batch 32: 16 steps per epoch; 24 steps cross one epoch boundary. Full augmentation on.
    run_dir = make_run(epochs=2, max_steps=24, val_fraction=0.7)
    records = []
    result = run_training(run_dir, progress=records.append)
    assert result["state"] == "succeeded" and result["exit_code"] == 0, result["message"]
    assert result["step"] == 24 and 0.0 <= result["best_top1"] <= 100.0
    assert json.loads((run_dir / "result.json").read_text()) == result

    lines = read_metrics(run_dir)
    assert lines == records  # the progress callback sees exactly what is written
    assert lines[0]["kind"] == "start" and lines[0]["total_steps"] == 24 and lines[0]["steps_per_epoch"] == 16
    train = [r for r in lines if r["kind"] == "train"]
    evals = [r for r in lines if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [5, 10, 15, 20, 24]
    assert all({"loss", "lr", "images_per_s", "eta_s", "epoch", "time"} <= set(r) for r in train)
    assert train[-1]["eta_s"] == 0.0 and train[0]["images_per_s"] > 0
    assert [(r["step"], r["epoch"]) for r in evals] == [(16, 0), (24, 1)]
    assert all(0 <= r["top1"] <= r["top5"] <= 100 and r["images"] == 1258 for r in evals)
    assert evals[-1]["best_top1"] == max(r["top1"] for r in evals) == result["best_top1"]

    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["step"] == 24 and last["ema"] is None and last["config"]["dataset"] == "digits"
    assert {"python", "numpy", "torch"} <= set(last["rng"])
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    repro = json.loads((run_dir / "repro.json").read_text())
    assert repro["seed"] == 0 and "torch" in repro["versions"] and repro["resolved"]["num_classes"] == 10
    assert "succeeded" in (run_dir / "train.log").read_text()


def _stop_at(stop: StopFlag, step: int):
    def progress(record):
        if record["kind"] == "train" and record["step"] >= step:
            stop.request("test stop")

    return progress


def test_a_stop_on_the_last_step_is_evaluated_when_resumed(make_run):
    run = make_run("last", epochs=1, max_steps=6, log_every=1)
    stop = StopFlag()
    result = run_training(run, progress=_stop_at(stop, 5), stop=stop)  # requested at step 5, seen at step 6
    assert result["state"] == "stopped" and result["step"] == 6
    assert not [r for r in read_metrics(run) if r["kind"] == "eval"]  # it stopped before the final evaluation
    resumed = run_training(run, resume=True)
    assert resumed["state"] == "succeeded" and resumed["step"] == 6
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "eval"] == [6]  # evaluated once, on resume
    assert load_checkpoint(run / "checkpoints" / "last.pt")["evaluated_step"] == 6
    assert run_training(run, resume=True)["state"] == "succeeded"  # a finished run resumed: nothing more to do
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "eval"] == [6]


def test_stop_then_resume_matches_an_uninterrupted_run(make_run):
    common = dict(epochs=1, max_steps=16, log_every=2, ema=True, ema_decay=0.9)
    straight = make_run("straight", **common)
    assert run_training(straight)["state"] == "succeeded"

    stopped = make_run("stopped", **common)
    stop = StopFlag()
    result = run_training(stopped, progress=_stop_at(stop, 6), stop=stop)
    assert result["state"] == "stopped" and result["exit_code"] == 3 and result["step"] == 7
    assert json.loads((stopped / "result.json").read_text())["state"] == "stopped"
    assert load_checkpoint(stopped / "checkpoints" / "last.pt")["step"] == 7

    resumed = run_training(stopped, resume=True)
    assert resumed["state"] == "succeeded" and resumed["step"] == 16
    lines = read_metrics(stopped)
    starts = [r for r in lines if r["kind"] == "start"]
    assert [s["step"] for s in starts] == [0, 7] and starts[1]["resumed"]
    after = [r for r in lines if r["kind"] == "train" and r["time"] >= starts[1]["time"]]
    assert after[0]["step"] == 8
    # Same batches, same augmentation draws, same lr curve: the weights match the uninterrupted run.
    lr_straight = {r["step"]: r["lr"] for r in read_metrics(straight) if r["kind"] == "train"}
    assert all(r["lr"] == pytest.approx(lr_straight[r["step"]]) for r in after)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(stopped / "checkpoints" / "last.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    ema_a = load_checkpoint(straight / "checkpoints" / "last.pt")["ema"]
    ema_b = load_checkpoint(stopped / "checkpoints" / "last.pt")["ema"]
    assert all(torch.allclose(ema_a[k], ema_b[k], atol=1e-5) for k in ema_a)
    assert "ema_top1" in [r for r in lines if r["kind"] == "eval"][-1]


def test_resume_without_or_with_a_corrupt_checkpoint_fails_clearly(make_run, capsys):
    run_dir = make_run(max_steps=2)
    result = run_training(run_dir, resume=True)
    assert result["state"] == "failed" and result["exit_code"] == 1
    assert "checkpoint not found" in result["message"]
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    result = run_training(run_dir, resume=True)
    assert result["state"] == "failed" and "corrupt" in result["message"]
    assert "corrupt" in (run_dir / "train.log").read_text()


def test_class_count_mismatch_fails_before_training(make_run):
    run_dir = make_run(num_classes=7)
    result = run_training(run_dir)
    assert result["state"] == "failed" and "has 10 classes" in result["message"] and "--num-classes is 7" in result["message"]
    assert result["step"] == 0


def test_out_of_memory_suggests_a_batch_size(make_run, monkeypatch):
    import learngene.training.engine as engine

    def explode(ctx, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine, "_optimizer_step", explode)
    result = run_training(make_run(max_steps=3))
    assert result["state"] == "failed"
    assert "batch size 32 does not fit" in result["message"] and "--batch-size 16" in result["message"]


def test_full_disk_fails_cleanly_and_keeps_what_was_written(make_run, monkeypatch):
    run_dir = make_run(max_steps=4, log_every=1)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    result = run_training(run_dir)
    assert result["state"] == "failed" and result["message"].startswith("disk full while writing")
    assert len([r for r in read_metrics(run_dir) if r["kind"] == "train"]) == 4  # kept
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    assert json.loads((run_dir / "result.json").read_text())["state"] == "failed"


def test_descendant_sources_train(make_run, tmp_path):
    """Built at start from an ancestor, and loaded from a directory written by save_descendant."""
    from learngene.ancestors import load_ancestor
    from learngene.descendant import DescendantSpec, build_descendant, save_descendant

    common = dict(model=None, model_kwargs={}, img_size=32, max_steps=2, log_every=1)
    built = make_run("built", ancestor="random:deit_tiny_patch16_224", init="scratch", depth=2, **common)
    result = run_training(built)
    assert result["state"] == "succeeded", result["message"]

    ancestor = load_ancestor("random:deit_tiny_patch16_224")
    spec = DescendantSpec(depth=2, width_ratio=3, img_size=32, num_classes=4, init="heuristic-learngene")
    save_descendant(build_descendant(ancestor, spec), tmp_path / "desc")
    loaded = make_run("loaded", descendant=str(tmp_path / "desc"), **common)
    result = run_training(loaded)  # 4-class head replaced by a 10-class one for digits
    assert result["state"] == "succeeded", result["message"]
    assert "new 10-class classifier head" in (loaded / "train.log").read_text()


def test_stop_requested_before_the_first_step(make_run):
    run_dir = make_run(max_steps=5)
    stop = StopFlag()
    stop.request("early")
    result = run_training(run_dir, stop=stop)
    assert result["state"] == "stopped" and result["step"] == 0 and "early" in result["message"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 0
    assert run_training(run_dir, resume=True)["step"] == 5


def test_a_checkpoint_never_recreates_a_deleted_run_directory(tmp_path):
    from learngene.errors import LearngeneError
    from learngene.training.checkpoint import save_checkpoint

    run_dir = tmp_path / "run"
    with pytest.raises(LearngeneError, match="could not write .*last.pt"):
        save_checkpoint(run_dir / "checkpoints" / "last.pt", {"model": {}, "step": 1})
    assert not run_dir.exists()
    run_dir.mkdir()
    save_checkpoint(run_dir / "checkpoints" / "last.pt", {"model": {}, "step": 1})
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == 1
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.pt"]  # no temporary file left
