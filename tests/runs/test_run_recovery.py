"""Faults the run registry must survive: a damaged runs.db, a moved runs root, a run directory that vanished while
queued, a worker that lingers after its final result, and bad command-line input."""

from __future__ import annotations

import re
import shutil
import sqlite3
import textwrap
import time

import pytest
from conftest import fake_config, wait_for

from learngene.cli import main
from learngene.errors import LearngeneError
from learngene.runs import RunManager, rebuild_registry, scheduler
from learngene.runs.registry import RECOVERED_MESSAGE


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def _finished_runs(root, fake_worker) -> list[str]:
    manager = RunManager(root, slots=1)
    options = {"worker_module": fake_worker}
    done = manager.submit(fake_config(fake_steps=4), name="done", launcher_options=options)
    stopped = manager.submit(fake_config(fake_steps=200, fake_step_s=0.05), name="half", launcher_options=options)
    manager.wait(done, timeout_s=60)
    wait_for(lambda: (manager.get(stopped)["step"] or 0) >= 3, timeout_s=60)
    manager.stop(stopped)
    assert manager.wait(stopped, timeout_s=30)["state"] == "stopped"
    wait_for(lambda: not scheduler.is_running(root), timeout_s=15, poll_s=0.2)
    return [done, stopped]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
        (lambda path: path.write_bytes(b"this is not a database\n" * 100), "not an SQLite database"),
        (lambda path: path.write_bytes(path.read_bytes()[:100] + b"\0" * 4000), "damaged"),
    ],
    ids=["empty", "garbage", "truncated"],
)
def test_a_damaged_registry_is_one_line_with_the_fix_and_can_be_rebuilt(runs_root, fake_worker, capsys, damage,
                                                                       message):  # fmt: skip
    done, stopped = _finished_runs(runs_root, fake_worker)
    db = runs_root / "runs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, as after a clean exit
    for side in ("runs.db-wal", "runs.db-shm"):
        (runs_root / side).unlink(missing_ok=True)
    damage(db)
    size = db.stat().st_size

    with pytest.raises(LearngeneError, match=re.escape(message)):
        RunManager(runs_root)
    for argv in (("runs", "list"), ("runs", "show", "done"), ("runs", "resume", "half")):
        code, out, err = _cli(capsys, *argv, "--runs-dir", str(runs_root))
        _one_line_error(code, err, message, "learngene runs rebuild-registry")
        assert "no runs" not in out

    code, out, err = _cli(capsys, "runs", "rebuild-registry", "--runs-dir", str(runs_root))
    assert code == 0 and "with 2 run(s)" in out, err
    kept = [p for p in runs_root.glob("runs.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].stat().st_size == size  # the old file is kept, not deleted
    manager = RunManager(runs_root)
    records = {r["name"]: r for r in manager.list(schedule=False)}
    assert set(records) == {"done", "half"}
    assert records["done"]["run_id"] == done and records["done"]["state"] == "succeeded"
    assert records["done"]["launcher_options"] == {"worker_module": fake_worker}
    assert records["done"]["step"] == 4 and records["done"]["config"]["model_kwargs"]["fake_steps"] == 4
    assert records["half"]["state"] == "stopped" and records["half"]["has_checkpoint"]
    # The stopped run resumes from its checkpoint through the rebuilt index.
    assert manager.resume("half") == "running"
    assert manager.wait("half", timeout_s=60)["state"] == "succeeded"


def test_rebuild_puts_a_never_launched_run_back_in_the_queue_and_keeps_a_stopped_one_stopped(runs_root, fake_worker):
    # A run still queued when runs.db was lost used to come back "failed" (no checkpoint: only a clone could run
    # it). It is queued again now; one stopped while queued stays stopped.
    manager = RunManager(runs_root, slots=1)
    options = {"worker_module": fake_worker}
    waiting = manager.submit(fake_config(fake_steps=3), name="waiting", launcher_options=options, schedule=False)
    dropped = manager.submit(fake_config(), name="dropped", launcher_options=options, schedule=False)
    assert manager.stop(dropped) == "stopped"
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        (runs_root / name).unlink(missing_ok=True)
    count, kept = rebuild_registry(runs_root)
    assert (count, kept) == (2, None)
    manager = RunManager(runs_root, slots=1)
    assert manager.get(waiting, schedule=False)["state"] == "queued"
    record = manager.get(dropped, schedule=False)
    assert record["state"] == "stopped" and record["error_tail"] == "stopped before it started"
    assert manager.wait(waiting, timeout_s=60)["state"] == "succeeded"  # the scheduler launched it
    assert manager.get(dropped, schedule=False)["state"] == "stopped"


def test_a_registry_rebuilt_while_a_run_trains_keeps_tracking_it(runs_root, fake_worker, capsys):
    # Before process.json, the rebuilt index called the live run "stopped" (it had a checkpoint): its slot was free
    # for another run, `runs stop` refused it, and `runs resume` started a second worker in the same folder.
    manager = RunManager(runs_root, slots=1)
    options = {"worker_module": fake_worker}
    live = manager.submit(fake_config(fake_steps=400, fake_step_s=0.05), name="live", launcher_options=options)
    wait_for(lambda: (runs_root / live / "checkpoints" / "last.pt").exists(), timeout_s=60)
    pid = manager.get(live, schedule=False)["pid"]
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        (runs_root / name).unlink(missing_ok=True)
    code, out, err = _cli(capsys, "runs", "rebuild-registry", "--runs-dir", str(runs_root))
    assert code == 0, err

    manager = RunManager(runs_root, slots=1)
    record = manager.get(live, schedule=False)
    assert record["state"] == "running" and record["pid"] == pid and record["ended"] is None
    with pytest.raises(LearngeneError, match="is running"):
        manager.resume(live)
    queued = manager.submit(fake_config(fake_steps=2), name="next", launcher_options=options)
    assert manager.get(queued, schedule=False)["state"] == "queued"  # the live run still holds the only slot
    code, out, err = _cli(capsys, "runs", "stop", "live", "--wait", "--runs-dir", str(runs_root))
    assert code == 0 and "stopped" in out, err
    assert manager.wait(queued, timeout_s=60)["state"] == "succeeded"
    launches = (runs_root / live / "launches.txt").read_text().split()
    assert launches.count("end") == 1 and len(launches) == 4  # one worker only: "PID TIME end TIME"


def test_a_rebuilt_run_whose_process_is_gone_is_resumable(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=1)
    run_id = manager.submit(fake_config(fake_steps=400, fake_step_s=0.05), launcher_options={"worker_module": fake_worker})
    wait_for(lambda: (runs_root / run_id / "checkpoints" / "last.pt").exists(), timeout_s=60)
    manager.stop(run_id, force=True)  # SIGKILL: no result.json, a process.json that names a dead process
    wait_for(lambda: not _alive(manager.get(run_id, schedule=False)["pid"]), timeout_s=30)
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        (runs_root / name).unlink(missing_ok=True)
    rebuild_registry(runs_root)
    record = RunManager(runs_root).get(run_id, schedule=False)
    assert record["state"] == "stopped" and record["error_tail"] == RECOVERED_MESSAGE


def test_a_newer_schema_is_refused(runs_root):
    RunManager(runs_root)
    with sqlite3.connect(runs_root / "runs.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(LearngeneError, match="newer learngene"):
        RunManager(runs_root)


@pytest.mark.parametrize("stored", ["relative", "absolute"])  # absolute: a row written by an older version
def test_a_moved_runs_root_resumes_runs_in_the_new_place(runs_root, fake_worker, tmp_path, stored):
    _, stopped = _finished_runs(runs_root, fake_worker)
    with sqlite3.connect(runs_root / "runs.db") as conn:
        (value,) = conn.execute("SELECT run_dir FROM runs WHERE run_id = ?", (stopped,)).fetchone()
        assert value == stopped  # inside the root: stored relative to it
        if stored == "absolute":
            conn.execute("UPDATE runs SET run_dir = ? WHERE run_id = ?", (str(runs_root / stopped), stopped))
    moved = tmp_path / "elsewhere" / "runs"
    moved.parent.mkdir()
    shutil.move(str(runs_root), str(moved))
    manager = RunManager(moved)
    assert manager.run_dir(stopped) == moved / stopped
    assert manager.resume(stopped) == "running"
    record = manager.wait(stopped, timeout_s=60)
    assert record["state"] == "succeeded" and record["run_dir"] == str(moved / stopped)
    steps = [m["step"] for m in manager.read_metrics(stopped) if m["kind"] == "train"]
    assert steps == list(range(1, 201))  # continued from the checkpoint in the new place
    assert not runs_root.exists()  # nothing was written to the old place


def test_a_queued_run_whose_directory_vanished_fails_and_commands_keep_working(runs_root, fake_worker, capsys):
    manager = RunManager(runs_root, slots=1)
    options = {"worker_module": fake_worker}
    broken = manager.submit(fake_config(), name="broken", launcher_options=options, schedule=False)
    shutil.rmtree(runs_root / broken)
    for argv in (("runs", "list"), ("runs", "show", "broken")):
        code, out, err = _cli(capsys, *argv, "--runs-dir", str(runs_root))
        assert code == 0 and "broken" in out and not err, err
    fine = manager.submit(fake_config(fake_steps=3), name="fine", launcher_options=options)
    assert manager.wait(fine, timeout_s=60)["state"] == "succeeded"
    record = manager.get(broken)
    assert record["state"] == "failed" and "has disappeared" in record["error_tail"]
    code, out, err = _cli(capsys, "runs", "show", "broken", "--runs-dir", str(runs_root))
    assert code == 0 and "launch failed" in out and "has disappeared" in out


LINGERING_WORKER = textwrap.dedent(
    """
    import json, signal, sys, time
    from pathlib import Path

    # Writes its final result, then never exits and ignores SIGTERM (like DataLoader workers stuck on a bad file).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    run_dir = Path(sys.argv[1])
    (run_dir / "result.json").write_text(json.dumps({"state": "failed", "message": "OSError: corrupt JPEG",
                                                     "exit_code": 1}))
    time.sleep(600)
    """
)


def test_a_worker_that_lingers_after_its_result_is_killed_and_frees_its_slot(runs_root, fake_worker):
    (runs_root.parent / "fakemods" / "lingering_worker.py").write_text(LINGERING_WORKER)
    manager = RunManager(runs_root, slots=1, linger_grace_s=1.0)
    stuck = manager.submit(fake_config(), launcher_options={"worker_module": "lingering_worker"}, schedule=False)
    after = manager.submit(fake_config(fake_steps=2), launcher_options={"worker_module": fake_worker},
                           schedule=False)  # fmt: skip
    assert manager.schedule() == [stuck]  # this process schedules, with the short grace period
    pid = manager.get(stuck, schedule=False)["pid"]
    wait_for(lambda: (runs_root / stuck / "result.json").exists(), timeout_s=30)
    time.sleep(0.3)
    assert manager.schedule() == [] and manager.get(stuck, schedule=False)["state"] == "running"  # within grace
    launched = wait_for(lambda: manager.schedule(), timeout_s=15, poll_s=0.2)
    assert launched == [after]  # the slot was freed
    record = manager.get(stuck, schedule=False)
    assert record["state"] == "failed" and "corrupt JPEG" in record["error_tail"]
    assert "was killed" in record["error_tail"]
    wait_for(lambda: not _alive(pid), timeout_s=10)


def _alive(pid: int) -> bool:
    from learngene.runs import liveness

    return liveness.is_alive(pid)


def test_bad_runs_input_is_one_line(runs_root, fake_worker, capsys, tmp_path):
    RunManager(runs_root).submit(fake_config(fake_steps=2), name="tiny", launcher_options={"worker_module": fake_worker})
    code, _, err = _cli(capsys, "runs", "logs", "tiny", "-n", "-5", "--runs-dir", str(runs_root))
    _one_line_error(code, err, "-n/--lines must be 0 or more")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = _cli(capsys, "runs", "list", "--runs-dir", str(blocker / "runs"))
    _one_line_error(code, err, "runs root")


def test_a_failed_resume_shows_its_own_stderr_not_the_earlier_attempts(runs_root, fake_worker):
    # stderr.log is appended to by every attempt: the failure's tail used to show the previous attempt's traceback
    # (here "fake failure") as if it were the reason this attempt failed.
    manager = RunManager(runs_root, slots=1)
    run_id = manager.submit(fake_config(fake_fail_at=2), launcher_options={"worker_module": fake_worker},
                            schedule=False)  # fmt: skip
    assert manager.schedule() == [run_id]
    first = manager.wait(run_id, timeout_s=60)
    assert first["state"] == "failed" and "fake failure" in first["error_tail"] and first["has_checkpoint"]

    # The next attempt dies at import, before it writes anything of its own but the traceback.
    (runs_root.parent / "fakemods" / f"{fake_worker}.py").write_text("raise ImportError('second attempt broke')\n")
    manager.resume(run_id)
    second = manager.wait(run_id, timeout_s=60)
    assert second["state"] == "failed" and "second attempt broke" in second["error_tail"]
    assert "fake failure" not in second["error_tail"], second["error_tail"]
    stderr = (runs_root / run_id / "stderr.log").read_text()
    assert "fake failure" in stderr and "=== learngene: launch 2 (resume)" in stderr  # the whole history is kept


def test_a_forced_stop_before_any_checkpoint_does_not_claim_one_is_kept(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=1)
    run_id = manager.submit(fake_config(fake_steps=100, fake_step_s=1.0), launcher_options={"worker_module": fake_worker})
    wait_for(lambda: (runs_root / run_id / "launches.txt").exists(), timeout_s=30)  # running, before step 2's save
    manager.stop(run_id, force=True)
    record = manager.wait(run_id, timeout_s=30)
    assert record["state"] == "stopped" and not record["has_checkpoint"]
    assert "no checkpoint" in record["error_tail"] and "checkpoint is kept" not in record["error_tail"]
