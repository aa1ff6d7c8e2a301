"""The runs root's scheduler process: the queue advances with no app, command line or test polling the registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import fake_config, wait_for

from learngene.runs import RunManager, scheduler

# Submits two runs to a one-slot root and exits at once, like `learngene train --detach` twice.
_SUBMIT_TWO = """
import json, sys
from learngene.runs import RunManager
manager = RunManager(sys.argv[1], slots=1)
config = json.loads(sys.argv[2])
ids = [manager.submit(config, name=f"run{i}", launcher_options={"worker_module": "fake_worker"}) for i in (1, 2)]
print(json.dumps(ids))
"""


def _launch_marks(run_dir) -> tuple[list[float], list[float]]:
    """(start times, end times) the fake worker wrote to launches.txt (a file, not the registry)."""
    try:
        lines = (run_dir / "launches.txt").read_text().splitlines()
    except OSError:
        return [], []
    starts = [float(line.split()[1]) for line in lines if line and not line.startswith("end")]
    ends = [float(line.split()[1]) for line in lines if line.startswith("end")]
    return starts, ends


def test_the_next_queued_run_starts_when_one_ends_with_nobody_polling(runs_root, fake_worker):
    config = fake_config(fake_steps=6, fake_step_s=0.1)
    submitted = subprocess.run([sys.executable, "-c", _SUBMIT_TWO, str(runs_root), json.dumps(config)],
                               capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    first, second = json.loads(submitted.stdout)
    # From here on this test reads only the run directories: nobody polls the registry but the scheduler.
    first_dir, second_dir = runs_root / first, runs_root / second
    assert _launch_marks(first_dir)[0], "submit returns once the first run has launched"
    wait_for(lambda: _launch_marks(second_dir)[1], timeout_s=60, poll_s=0.1)
    (first_start,), (first_end,) = _launch_marks(first_dir)
    (second_start,), _ = _launch_marks(second_dir)
    assert first_end < second_start < first_end + 5.0, second_start - first_end  # one slot, handed on in < 5 s
    # Once nothing is queued or running the scheduler exits and frees its lock.
    wait_for(lambda: not scheduler.is_running(runs_root), timeout_s=15, poll_s=0.2)
    records = {r["run_id"]: r for r in RunManager(runs_root).list(schedule=False)}
    assert records[first]["state"] == records[second]["state"] == "succeeded"
    assert records[second]["started"] >= records[first]["ended"] - 1.0


def test_slots_are_one_setting_per_runs_root(runs_root):
    RunManager(runs_root, slots=3)
    assert RunManager(runs_root).slots == 3  # another process (the app, the scheduler) sees the same count
    RunManager(runs_root).set_slots(None)
    assert RunManager(runs_root, cpu_slots=2).slots in (2, len(RunManager(runs_root).gpus))


def test_reads_never_launch(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=1)
    run_id = manager.submit(fake_config(fake_steps=40, fake_step_s=0.05), launcher_options={"worker_module": fake_worker},
                            schedule=False)  # fmt: skip
    for _ in range(3):
        assert manager.get(run_id, schedule=False)["state"] == "queued"
        assert [r["state"] for r in manager.list(schedule=False)] == ["queued"]
        time.sleep(0.2)
    assert not (runs_root / run_id / "launches.txt").exists()
    # A plain read of an active root starts the scheduler process, which launches the run (the read did not).
    manager.get(run_id)
    pid = wait_for(lambda: manager.get(run_id)["pid"], timeout_s=60)
    # The scheduler waits with its wake-up signals blocked; the runs it launches must not inherit that mask.
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    assert int(status["SigBlk"].strip(), 16) == 0
    assert manager.wait(run_id, timeout_s=60)["state"] == "succeeded"


def test_cluster_jobs_take_no_local_slot_so_all_are_submitted_in_one_pass(runs_root):
    # A real SLURM launcher on a machine without sbatch: every submission fails, but all of them are attempted in
    # the same pass although the root has one slot (SLURM queues its jobs itself; nothing waits here).
    manager = RunManager(runs_root, slots=1)
    options = {"cluster": "slurm", "partition": "gpu"}
    run_ids = [manager.submit(fake_config(), launcher="slurm", launcher_options=options, schedule=False)
               for _ in range(3)]  # fmt: skip
    assert manager.schedule() == run_ids
    for run_id in run_ids:
        record = manager.get(run_id, schedule=False)
        assert record["state"] == "failed" and record["error_tail"].startswith("launch failed"), record


def test_the_scheduler_stops_when_its_root_is_moved_away(runs_root, fake_worker, tmp_path):
    manager = RunManager(runs_root, slots=1)
    run_id = manager.submit(fake_config(fake_steps=400, fake_step_s=0.05), launcher_options={"worker_module": fake_worker})
    pid = int((runs_root / scheduler.LOCK_FILE).read_text())
    moved = tmp_path / "moved"
    runs_root.rename(moved)
    wait_for(lambda: not _alive(pid), timeout_s=15, poll_s=0.2)  # no scheduler left looping on a vanished root
    # The worker lost its directory under its feet (moving a root is for stopped runs), but the registry at the new
    # place still settles it: a read there starts a scheduler, which reconciles the run and then exits.
    record = RunManager(moved).wait(run_id, timeout_s=30)
    assert record["state"] in ("failed", "succeeded") and record["run_dir"] == str(moved / run_id)
    wait_for(lambda: not scheduler.is_running(moved), timeout_s=15, poll_s=0.5)


def _alive(pid: int) -> bool:
    from learngene.runs import liveness

    liveness.reap_children()
    return liveness.is_alive(pid)
