"""Launchers: argument lists (never shell strings), torchrun and SLURM shapes, and submitit's local executor."""

from __future__ import annotations

import sys

import pytest
from conftest import fake_config, wait_for

from learngene.errors import LearngeneError
from learngene.runs import FINAL_STATES, RunManager, SlurmLauncher, TorchrunLauncher, make_launcher
from learngene.runs.launchers import LocalLauncher

# How this interpreter runs a module without the working directory on sys.path (3.10 has no -P: a bootstrap).
SAFE_PYTHON = [sys.executable, "-P"] if sys.version_info >= (3, 11) else [sys.executable, "-c"]


def test_local_command_is_an_argument_list(tmp_path):
    launcher = LocalLauncher()
    argv = launcher.command(tmp_path / "run with space", resume=True)
    assert argv[:2] == SAFE_PYTHON and "learngene.training.worker" in argv[2:4]
    assert argv[-2].endswith("run with space") and argv[-1] == "--resume"
    shown = launcher.describe(tmp_path / "run with space", resume=True)[0]
    assert shown.endswith("' --resume") and "'" + str((tmp_path / "run with space").resolve()) + "'" in shown
    assert make_launcher("local", {}).options() == {}


def test_torchrun_single_node_is_standalone(tmp_path):
    launcher = make_launcher("torchrun", {"nproc_per_node": 2})
    argv = launcher.command(tmp_path / "r1")
    if sys.version_info >= (3, 11):
        assert argv[:4] == [sys.executable, "-P", "-m", "torch.distributed.run"]
        assert argv[4:9] == ["--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
        # every rank runs the worker off the working directory's path too
        assert argv[9:] == ["--no-python", sys.executable, "-P", "-m", "learngene.training.worker",
                            str((tmp_path / "r1").resolve())]
    assert launcher.slots() == 2


def test_torchrun_several_nodes_use_the_rendezvous(tmp_path):
    launcher = TorchrunLauncher(
        nproc_per_node=4, nnodes=2, node_rank=1, rdzv_endpoint="head:29400", rdzv_id="job7"
    )
    argv = launcher.command(tmp_path / "r1")
    joined = " ".join(argv)
    assert "--standalone" not in argv
    for part in ("--nnodes 2", "--nproc-per-node 4", "--node-rank 1", "--rdzv-backend c10d",
                 "--rdzv-endpoint head:29400", "--rdzv-id job7"):  # fmt: skip
        assert part in joined
    lines = launcher.describe(tmp_path / "r1")
    assert len(lines) == 2 and "--node-rank 0" in lines[0] and "--node-rank 1" in lines[1]
    assert make_launcher("torchrun", launcher.options()).command(tmp_path / "r1") == argv
    with pytest.raises(LearngeneError, match="node-rank"):
        TorchrunLauncher(nnodes=2, node_rank=2, rdzv_endpoint="head:1")


def test_slurm_describes_its_sbatch_options(tmp_path):
    launcher = SlurmLauncher(
        partition="gpu", nodes=2, gpus_per_node=8, time_min=90, extra={"account": "proj"}
    )
    lines = launcher.describe(tmp_path / "r1")
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --nodes=2" in lines
    assert "#SBATCH --gpus-per-node=8" in lines and "#SBATCH --time=90" in lines
    assert "#SBATCH --account=proj" in lines
    assert lines[-1].startswith("srun ") and "torch.distributed.run" in lines[-1]
    assert launcher.slots() == 0 and SlurmLauncher(cluster="local").slots() == 1
    with pytest.raises(LearngeneError, match="unknown submitit cluster 'debug': use slurm or local"):
        SlurmLauncher(cluster="debug")


def test_submitit_local_executor_runs_and_stops_a_job(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=1)
    options = {"cluster": "local", "gpus_per_node": 0, "time_min": 5, "worker_module": fake_worker}
    done = manager.submit(fake_config(fake_steps=4), launcher="slurm", launcher_options=options)
    record = manager.wait(done, timeout_s=90)
    assert record["state"] == "succeeded", record
    assert record["job_id"] and record["best_top1"] == 100.0
    assert (manager.run_dir(done) / "submitit").is_dir()

    # A stop goes controller -> task -> worker as SIGTERM.
    long = manager.submit(
        fake_config(fake_steps=1000, fake_step_s=0.05), launcher="slurm", launcher_options=options
    )
    wait_for(lambda: (manager.get(long)["step"] or 0) >= 2, timeout_s=60)
    manager.stop(long)
    record = manager.wait(long, timeout_s=30)
    assert record["state"] == "stopped" and record["has_checkpoint"], record


@pytest.mark.slow
def test_torchrun_launches_and_stops_a_process_group(runs_root, fake_worker):
    manager = RunManager(runs_root, slots=2)
    options = {"nproc_per_node": 2, "worker_module": fake_worker}
    config = fake_config(fake_steps=1000, fake_step_s=0.05, fake_loader=True)
    run_id = manager.submit(config, launcher="torchrun", launcher_options=options)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 2, timeout_s=60)
    manager.stop(run_id)
    record = manager.wait(run_id, timeout_s=30)
    assert record["state"] == "stopped" and record["has_checkpoint"], record
    assert (manager.run_dir(run_id) / "rank1.stopped").is_file()  # every rank got the stop itself


def test_a_slurm_job_is_checkpointable_and_its_requeue_resumes(tmp_path):
    from submitit.helpers import Checkpointable

    from learngene.runs.slurm_job import WorkerJob

    job = WorkerJob(str(tmp_path), resume=False, worker_module="fake_worker")
    assert isinstance(job, Checkpointable)
    assert job.checkpoint().function.resume is False  # preempted before the first checkpoint: start over
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"saved")
    requeued = job.checkpoint().function
    assert isinstance(requeued, WorkerJob) and requeued.resume is True and requeued.run_dir == job.run_dir
    assert requeued.command()[-2:] == [str(tmp_path.resolve()), "--resume"] and job.command()[-1] != "--resume"


def test_a_preempted_local_cluster_job_requeues_and_finishes_from_its_checkpoint(runs_root, fake_worker):
    import os
    import signal

    from learngene.runs import liveness

    manager = RunManager(runs_root, slots=1)
    options = {"cluster": "local", "gpus_per_node": 0, "time_min": 5, "worker_module": fake_worker}
    run_id = manager.submit(fake_config(fake_steps=60, fake_step_s=0.05), launcher="slurm", launcher_options=options)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 4, timeout_s=60)
    (task,) = liveness.children(manager.get(run_id)["pid"])  # submitit's task process, running WorkerJob
    os.kill(task, signal.SIGUSR2)  # what SLURM sends before preempting the job or at its time limit
    record = manager.wait(run_id, timeout_s=120)
    assert record["state"] == "succeeded" and record["step"] == 60, record
    starts = [m for m in manager.read_metrics(run_id) if m["kind"] == "start"]
    assert len(starts) == 2 and starts[0]["step"] == 0 and starts[1]["step"] >= 4  # resumed, not restarted
    launches = (manager.run_dir(run_id) / "launches.txt").read_text().splitlines()
    assert len([line for line in launches if not line.startswith("end")]) == 2


def test_a_killed_local_cluster_controller_takes_its_task_and_worker_with_it(runs_root, fake_worker):
    """kill -9 of submitit's local controller (the run's pid) ends the run as failed and frees its slot: the task and
    the worker below it must end too, not train on as orphans that no stop reaches."""
    import os
    import signal

    from learngene.runs import liveness

    manager = RunManager(runs_root, slots=1)
    options = {"cluster": "local", "gpus_per_node": 0, "time_min": 5, "worker_module": fake_worker}
    run_id = manager.submit(fake_config(fake_steps=1000, fake_step_s=0.05), launcher="slurm", launcher_options=options)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 2, timeout_s=60)
    controller = manager.get(run_id)["pid"]
    below = liveness.descendants(controller)  # the task running WorkerJob and the worker it started
    assert len(below) == 2
    os.kill(controller, signal.SIGKILL)
    try:
        assert manager.wait(run_id, timeout_s=30)["state"] == "failed"
        wait_for(lambda: not any(liveness.is_alive(pid) for pid in below), timeout_s=15)
    finally:  # orphans are no longer below pytest, where the teardown looks
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_requeued_local_cluster_job_is_not_taken_for_one_lingering_after_its_stop(runs_root, fake_worker):
    """Preempted, the worker writes a ``stopped`` result.json and the job requeues. Until the requeued worker starts
    and clears it (the real worker does so only once torch is imported), a live job with a final result looked like
    a process lingering after its end: past the linger grace the watchdog killed the requeued job, and the run ended
    ``stopped`` instead of resuming. A short grace stands in for a slow start."""
    import os
    import signal

    from learngene.runs import liveness

    manager = RunManager(runs_root, slots=1, linger_grace_s=1.0)
    options = {"cluster": "local", "gpus_per_node": 0, "time_min": 5, "worker_module": fake_worker}
    run_id = manager.submit(fake_config(fake_steps=80, fake_step_s=0.05), launcher="slurm", launcher_options=options)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 4, timeout_s=60)
    (task,) = liveness.children(manager.get(run_id)["pid"])
    os.kill(task, signal.SIGUSR2)

    def ended():  # the scheduler's watch, with this manager's short grace
        manager.reconcile()
        return manager.get(run_id)["state"] in FINAL_STATES

    wait_for(ended, timeout_s=120, poll_s=0.2)
    record = manager.get(run_id)
    assert record["state"] == "succeeded" and record["step"] == 80, record



def test_a_stop_while_a_preempted_local_cluster_job_winds_down_is_not_lost(runs_root, fake_worker, tmp_path):
    """Preempted, the worker writes its ``stopped`` result and takes a while to exit (the real one: seconds of
    interpreter teardown); a stop arriving then was forwarded to a worker already stopping, and the job requeued
    anyway: it trained on and ``runs stop --wait`` waited for ever. A stop now overrides the requeue."""
    import os
    import signal

    from learngene.runs import liveness

    # The fake worker, slow to exit once it has written its result.
    fakemods = tmp_path / "fakemods"  # where the fake_worker fixture wrote it (no import: two conftest modules)
    (fakemods / "slow_exit_worker.py").write_text(
        "import atexit, time\natexit.register(time.sleep, 2.0)\n" + (fakemods / f"{fake_worker}.py").read_text())
    manager = RunManager(runs_root, slots=1)
    options = {"cluster": "local", "gpus_per_node": 0, "time_min": 5, "worker_module": "slow_exit_worker"}
    run_id = manager.submit(fake_config(fake_steps=2000, fake_step_s=0.05), launcher="slurm", launcher_options=options)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 4, timeout_s=60)
    (task,) = liveness.children(manager.get(run_id)["pid"])
    os.kill(task, signal.SIGUSR2)
    result = manager.run_dir(run_id) / "result.json"
    wait_for(result.is_file, timeout_s=30, poll_s=0.01)  # stopped for the preemption, not yet exited
    manager.stop(run_id)

    def ended():  # the scheduler's watch
        manager.reconcile()
        return manager.get(run_id)["state"] in FINAL_STATES

    wait_for(ended, timeout_s=60, poll_s=0.2)
    record = manager.get(run_id)
    assert record["state"] == "stopped" and record["step"] < 2000, record
    launches = (manager.run_dir(run_id) / "launches.txt").read_text().splitlines()
    assert len([line for line in launches if not line.startswith("end")]) == 1  # not requeued
