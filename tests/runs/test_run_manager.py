"""RunManager end to end with a fake worker: queue order, kill -9, graceful stop and resume, clone, bad input."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import fake_config, wait_for

from learngene.errors import LearngeneError
from learngene.runs import RunManager
from learngene.runs.manager import DIED_MESSAGE


@pytest.fixture
def manager(runs_root) -> RunManager:
    return RunManager(runs_root, slots=1)


def test_a_run_succeeds_and_reports_metrics(manager, fake_worker):
    run_id = manager.submit(fake_config(), name="first", launcher_options={"worker_module": fake_worker})
    record = manager.wait(run_id, timeout_s=30)
    assert record["state"] == "succeeded", record
    assert record["exit_code"] == 0 and record["error_tail"] is None
    assert record["step"] == 10 and record["total_steps"] == 10 and record["progress"] == 1.0
    assert record["best_top1"] == 100.0 and record["message"] == "done"
    assert record["has_checkpoint"] and record["name"] == "first"
    assert record["config"]["img_size"] == 32
    assert (manager.run_dir(run_id) / "config.yaml").is_file()
    assert manager.log_tail(run_id, 5, "stdout")[0] == "starting at step 0"
    kinds = {m["kind"] for m in manager.read_metrics(run_id)}
    assert kinds == {"start", "train", "eval"}
    listed = manager.list()
    assert [r["run_id"] for r in listed] == [run_id]
    assert manager.get(run_id[:17])["run_id"] == run_id  # a unique prefix is enough


def test_the_queue_runs_in_order_one_slot_and_survives_a_failure(manager, fake_worker):
    options = {"worker_module": fake_worker}
    first = manager.submit(fake_config(fake_fail_at=3), launcher_options=options)
    second = manager.submit(fake_config(), launcher_options=options)
    third = manager.submit(fake_config(), launcher_options=options)
    assert [manager.get(r, schedule=False)["state"] for r in (first, second, third)] == [
        "running", "queued", "queued",
    ]  # fmt: skip
    manager.wait(third, timeout_s=60)
    records = [manager.get(r) for r in (first, second, third)]
    assert [r["state"] for r in records] == ["failed", "succeeded", "succeeded"]
    assert records[0]["exit_code"] == 1
    assert "fake failure" in records[0]["error_tail"]
    assert records[0]["started"] < records[1]["started"] < records[2]["started"]
    assert records[0]["ended"] <= records[1]["started"] and records[1]["ended"] <= records[2]["started"]


def test_a_killed_run_is_failed_with_its_metrics_kept(manager, fake_worker):
    run_id = manager.submit(
        fake_config(fake_steps=1000, fake_step_s=0.05), launcher_options={"worker_module": fake_worker}
    )
    wait_for(lambda: (manager.get(run_id)["best_top1"] or 0) > 0)
    pgid = manager.get(run_id)["pgid"]
    os.killpg(pgid, signal.SIGKILL)
    record = wait_for(lambda: (r := manager.get(run_id))["state"] != "running" and r, timeout_s=5)
    assert record["state"] == "failed"
    assert DIED_MESSAGE in record["error_tail"] and "SIGKILL" in record["error_tail"]
    assert record["exit_code"] == -signal.SIGKILL
    assert record["step"] >= 2 and record["best_top1"] > 0
    assert len(manager.read_metrics(run_id)) > 2


def test_a_run_killed_while_another_process_launched_it_is_still_detected(manager, fake_worker):
    # This process launches the run and then forgets that it is the parent: liveness then comes from /proc alone,
    # where the killed child lingers as a zombie until reaped. The scheduler process, which a read starts because
    # a run is active, must still see it die.
    from learngene.runs import liveness

    run_id = manager.submit(
        fake_config(fake_steps=1000, fake_step_s=0.05), launcher_options={"worker_module": fake_worker},
        schedule=False,
    )
    assert manager.schedule() == [run_id]
    pid = manager.get(run_id)["pid"]
    process = liveness._CHILDREN.pop(pid)
    try:
        wait_for(lambda: manager.get(run_id)["step"])
        os.kill(pid, signal.SIGKILL)
        record = wait_for(lambda: (r := manager.get(run_id))["state"] != "running" and r, timeout_s=5)
        assert record["state"] == "failed" and record["exit_code"] is None
        assert DIED_MESSAGE in record["error_tail"]
    finally:
        process.wait()


def test_stop_checkpoints_and_resume_continues_at_the_right_step(manager, fake_worker):
    config = fake_config(fake_steps=40, fake_step_s=0.05, fake_loader=True)
    run_id = manager.submit(config, launcher_options={"worker_module": fake_worker})
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 3)
    assert manager.stop(run_id) == "running"  # the worker checkpoints at its next step
    record = manager.wait(run_id, timeout_s=10)
    assert record["state"] == "stopped" and record["exit_code"] == 3
    assert record["has_checkpoint"] and record["message"].startswith("stopped at step")
    stopped_at = json.loads((manager.run_dir(run_id) / "checkpoints" / "last.pt").read_text())["step"]
    with pytest.raises(LearngeneError, match="already stopped"):
        manager.stop(run_id)

    assert manager.resume(run_id) == "running"
    record = manager.wait(run_id, timeout_s=30)
    assert record["state"] == "succeeded" and record["attempts"] == 2 and record["resume"]
    starts = [m for m in manager.read_metrics(run_id) if m["kind"] == "start"]
    assert [s["step"] for s in starts] == [0, stopped_at]
    steps = [m["step"] for m in manager.read_metrics(run_id) if m["kind"] == "train"]
    assert steps == list(range(1, 41))  # no step repeated or skipped across the resume
    with pytest.raises(LearngeneError, match="already succeeded"):
        manager.resume(run_id)


def test_stopping_a_queued_run_and_resuming_without_a_checkpoint(manager, fake_worker):
    options = {"worker_module": fake_worker}
    busy = manager.submit(fake_config(fake_steps=1000, fake_step_s=0.05), launcher_options=options)
    waiting = manager.submit(fake_config(), launcher_options=options)
    assert manager.stop(waiting) == "stopped"
    assert manager.get(waiting)["error_tail"] == "stopped before it started"
    with pytest.raises(LearngeneError, match="no checkpoint"):
        manager.resume(waiting)
    with pytest.raises(LearngeneError, match="stop it before resuming"):
        manager.resume(busy)
    assert manager.stop(busy, force=True) in ("running", "stopped")
    record = manager.wait(busy, timeout_s=10)
    assert record["state"] == "stopped"  # killed, but a stop had been asked for


def test_clone_copies_the_config_with_overrides(manager, fake_worker):
    parent = manager.submit(
        fake_config(fake_steps=4), name="parent", launcher_options={"worker_module": fake_worker}
    )
    manager.wait(parent, timeout_s=30)
    child = manager.clone(parent, {"lr": 0.01, "epochs": 2}, name="child")
    record = manager.wait(child, timeout_s=30)
    assert record["state"] == "succeeded"
    assert record["parent_run_id"] == parent and record["name"] == "child"
    assert record["config"]["lr"] == 0.01 and record["config"]["epochs"] == 2
    assert record["config"]["model_kwargs"] == manager.get(parent)["config"]["model_kwargs"]
    assert record["launcher_options"] == {"worker_module": fake_worker}
    with pytest.raises(LearngeneError, match="unknown training config key"):
        manager.clone(parent, {"learning_rate": 0.1})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"dataset": "no-such-dataset"}, "unknown dataset"),
        ({"model": "not_a_timm_model"}, "unknown timm model"),
        ({"descendant": "/no/such/dir"}, "exactly one model source"),
        ({"bogus": 1}, "unknown training config key"),
    ],
)
def test_bad_configs_are_rejected_before_anything_is_written(manager, change, message):
    config = {**fake_config(), **change}
    with pytest.raises(LearngeneError, match=message):
        manager.submit(config)
    assert manager.list() == []
    assert [p.name for p in manager.root.iterdir() if p.is_dir()] == []


def test_bad_launchers_are_rejected_before_anything_is_written(manager):
    with pytest.raises(LearngeneError, match="unknown launcher"):
        manager.submit(fake_config(), launcher="kubernetes")
    with pytest.raises(LearngeneError, match="invalid options"):
        manager.submit(fake_config(), launcher="local", launcher_options={"gpus": 8})
    with pytest.raises(LearngeneError, match="rdzv-endpoint"):
        manager.submit(fake_config(), launcher="torchrun", launcher_options={"nnodes": 2})
    assert manager.list() == []


def test_a_launch_failure_fails_that_run_and_the_queue_moves_on(manager, fake_worker, monkeypatch):
    from learngene.runs import launchers

    options = {"worker_module": fake_worker}
    real_launch = launchers.LocalLauncher.launch
    calls = []

    def flaky_launch(self, run_dir, resume=False, gpus=None):
        calls.append(run_dir)
        if len(calls) == 1:
            raise OSError("no such interpreter")
        return real_launch(self, run_dir, resume, gpus)

    monkeypatch.setattr(launchers.LocalLauncher, "launch", flaky_launch)  # in this process only: schedule here
    broken = manager.submit(fake_config(), launcher_options=options, schedule=False)
    fine = manager.submit(fake_config(), launcher_options=options, schedule=False)
    assert manager.schedule() == [broken, fine]
    assert manager.get(broken)["state"] == "failed"
    assert "launch failed: no such interpreter" in manager.get(broken)["error_tail"]
    assert manager.wait(fine, timeout_s=30)["state"] == "succeeded"


def test_unknown_runs_give_a_clear_error(manager):
    with pytest.raises(LearngeneError, match="no run 'nope'"):
        manager.get("nope")
    with pytest.raises(LearngeneError, match="no run"):
        manager.stop("nope")


def test_finished_children_are_reaped(manager, fake_worker):
    run_id = manager.submit(fake_config(fake_steps=2), launcher_options={"worker_module": fake_worker})
    pid = manager.get(run_id)["pid"]
    manager.wait(run_id, timeout_s=30)
    assert not os.path.exists(f"/proc/{pid}")  # reaped, not a zombie


def test_a_worker_that_cannot_start_fails_with_its_stderr(manager):
    run_id = manager.submit(fake_config(), launcher_options={"worker_module": "no_such_worker_module"})
    record = manager.wait(run_id, timeout_s=30)
    assert record["state"] == "failed" and record["exit_code"] == 1
    assert "exited with code 1 without writing a final state" in record["error_tail"]
    assert "No module named no_such_worker_module" in record["error_tail"]


def test_a_reused_pid_does_not_keep_a_dead_run_running(manager, tmp_path):
    from learngene.runs.registry import dumps

    run_dir = tmp_path / "orphan"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(
        '{"kind": "start", "total_steps": 9, "step": 0}\n{"kind": "train", "step": 5}\n'
    )
    # Our own pid is alive, but its start time is not the one recorded at launch: someone else's process now.
    manager.registry.insert({
        "run_id": "20260101-000000-000000", "name": "orphan", "state": "running", "created": 1.0, "queued_at": 1.0,
        "started": 2.0, "pid": os.getpid(), "pgid": os.getpid(), "proc_start": "1", "host": manager.host,
        "run_dir": str(run_dir), "config_json": dumps(fake_config()),
    })  # fmt: skip
    # The read starts the scheduler process (a run is "running"), which finds the process gone.
    record = wait_for(lambda: (r := manager.get("orphan"))["state"] != "running" and r, timeout_s=10)
    assert record["state"] == "failed" and DIED_MESSAGE in record["error_tail"]
    assert record["step"] == 5 and record["total_steps"] == 9
    with pytest.raises(LearngeneError, match="already ended as failed"):
        manager.stop("orphan")


def test_each_run_gets_its_own_gpu_slot(runs_root, fake_worker, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    manager = RunManager(runs_root)
    manager._gpus = ["0", "1"]  # pretend this machine has two GPUs: two slots, one GPU each
    assert manager.slots == 2
    options = {"worker_module": fake_worker}
    runs = [
        manager.submit(fake_config(fake_steps=1000, fake_step_s=0.05), launcher_options=options, schedule=False)
        for _ in range(3)
    ]
    assert manager.schedule() == runs[:2]
    records = [manager.get(r, schedule=False) for r in runs]
    assert [r["state"] for r in records] == ["running", "running", "queued"]
    assert sorted(r["gpus"] for r in records[:2]) == ["0", "1"]
    wait_for(lambda: "CUDA_VISIBLE_DEVICES=" in "".join(manager.log_tail(runs[1], 5, "stdout")))
    assert f"CUDA_VISIBLE_DEVICES={records[1]['gpus']}" in manager.log_tail(runs[1], 5, "stdout")
    manager.stop(runs[0], force=True)
    manager.wait(runs[0], timeout_s=10)
    # The GPUs are pretended in this process only, so this process schedules (the scheduler process sees none).
    third = wait_for(lambda: manager.schedule() and (r := manager.get(runs[2]))["state"] == "running" and r)
    assert third["gpus"] == records[0]["gpus"]  # the freed GPU goes to the next run in the queue


def test_records_carry_exactly_the_documented_keys(manager, fake_worker):
    from typing import get_type_hints

    from learngene.runs import RunRecord

    run_id = manager.submit(fake_config(fake_steps=2), launcher_options={"worker_module": fake_worker})
    record = manager.wait(run_id, timeout_s=30)
    assert set(record) == set(get_type_hints(RunRecord))
    assert json.loads(json.dumps(record))["run_id"] == run_id  # still a plain, JSON-ready dict


def test_ctrl_c_as_a_followed_run_ends_reports_how_it_ended(manager, fake_worker, monkeypatch, capsys):
    """The race the CLI audit found: `learngene train` in the foreground read the run as running, the run ended,
    then Ctrl-C arrived; the stop request was refused ("already succeeded") and the command ended in that error
    (exit 2) instead of reporting the finished run."""
    from learngene.cli import training

    run_id = manager.submit(fake_config(fake_steps=15, fake_step_s=0.05),
                            launcher_options={"worker_module": fake_worker})
    wait_for(lambda: manager.get(run_id)["state"] == "running")
    real_sleep = time.sleep

    def ctrl_c_once_the_run_has_ended(seconds):
        monkeypatch.setattr(training.time, "sleep", real_sleep)
        manager.wait(run_id, timeout_s=30)
        raise KeyboardInterrupt

    monkeypatch.setattr(training.time, "sleep", ctrl_c_once_the_run_has_ended)
    assert training.follow(manager, run_id) == 0
    out = capsys.readouterr()
    assert f"run {run_id} succeeded at step 15" in out.out, out
    assert "stopping run" not in out.err
