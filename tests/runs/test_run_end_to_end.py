"""The real worker through the manager on the built-in `digits` data: a few dozen CPU steps, stopped and resumed."""

from __future__ import annotations

import json

import pytest
from conftest import wait_for

from learngene.cli import main
from learngene.runs import RunManager

pytest.importorskip("learngene.training.worker")

TRAIN = ["train", "--model", "vit_tiny_patch16_224", "--model-arg", "depth=2", "--dataset", "digits",
         "--img-size", "32", "--batch-size", "16", "--epochs", "1", "--max-steps", "60", "--log-every", "2", "--val-fraction", "0.1",
         "--workers", "0", "--device", "cpu", "--name", "digits-e2e"]  # fmt: skip


@pytest.mark.slow
def test_digits_run_stops_resumes_and_succeeds(runs_root, capsys):
    assert main([*TRAIN, "--detach", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    manager = RunManager(runs_root)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 4, timeout_s=120, poll_s=0.2)

    assert main(["runs", "stop", run_id, "--wait"]) == 0
    stopped = manager.get(run_id)
    assert stopped["state"] == "stopped" and stopped["exit_code"] == 3, stopped
    # 60 steps leave room for the stop to land mid-run even when a loaded machine is slow to deliver it
    assert stopped["has_checkpoint"] and 4 <= stopped["step"] < 60
    capsys.readouterr()

    assert main(["runs", "resume", run_id, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["state"] == "succeeded" and record["exit_code"] == 0, record
    assert record["step"] == 60 and record["total_steps"] == 60 and record["best_top1"] is not None
    assert (runs_root / run_id / "checkpoints" / "best.pt").is_file()
    metrics = manager.read_metrics(run_id)
    starts = [m for m in metrics if m["kind"] == "start"]
    assert len(starts) == 2
    steps = [m["step"] for m in metrics if m["kind"] == "train"]
    assert steps == sorted(steps) and steps[-1] == 60  # continued from the checkpoint, not from zero
    assert [m for m in metrics if m["kind"] == "eval"][-1]["step"] == 60
