"""`learngene train` and `learngene runs ...` in-process, against the fake worker."""

from __future__ import annotations

import json
import time

import pytest
from conftest import wait_for

from learngene.cli import main
from learngene.runs import RunManager
from learngene.runs.launchers import WORKER_MODULE_ENV

FAKE_TRAIN = ["train", "--model", "vit_tiny_patch16_224", "--dataset", "digits", "--img-size", "32",
              "--batch-size", "8", "--epochs", "1", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def cli(runs_root, fake_worker, monkeypatch, capsys):
    """Run the CLI in-process with the fake worker as the default worker; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv(WORKER_MODULE_ENV, fake_worker)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_detached_train_prints_run_id_and_pid_at_once(cli, runs_root):
    import timm  # noqa: F401 - validation imports timm once per process; time only our own work

    start = time.monotonic()
    code, out, _ = cli(*FAKE_TRAIN, "--model-arg", "fake_steps=30", "--model-arg", "fake_step_s=0.05",
                       "--name", "detached", "--detach", "--json")  # fmt: skip
    assert code == 0 and time.monotonic() - start < 5
    launched = json.loads(out)
    assert set(launched) >= {"run_id", "pid"} and launched["pid"] > 0
    run_id = launched["run_id"]

    code, out, _ = cli("runs", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["run_id"] == run_id and listed["state"] == "running" and listed["pid"] == launched["pid"]
    assert {"step", "best_top1"} <= set(listed)

    code, out, _ = cli("runs", "logs", "detached", "--stream", "stdout", "--follow")
    assert code == 0 and "starting at step 0" in out
    code, out, _ = cli("runs", "show", "detached")
    assert "succeeded" in out and "30 / 30" in out and "fake_worker" in out
    code, out, _ = cli("runs", "list")
    assert "detached" in out and "succeeded" in out and "30/30" in out


def test_foreground_train_follows_the_run_to_its_end(cli):
    code, out, _ = cli(*FAKE_TRAIN, "--model-arg", "fake_steps=6")
    assert code == 0
    assert "succeeded at step 6" in out
    code, out, _ = cli(*FAKE_TRAIN, "--model-arg", "fake_fail_at=2", "--json")
    assert code == 1
    record = json.loads(out)
    assert record["state"] == "failed" and "fake failure" in record["error_tail"]


def test_stop_resume_and_clone_from_the_command_line(cli, runs_root):
    code, out, _ = cli(*FAKE_TRAIN, "--model-arg", "fake_steps=60", "--model-arg", "fake_step_s=0.05",
                       "--name", "long", "--detach", "--json")  # fmt: skip
    run_id = json.loads(out)["run_id"]
    manager = RunManager(runs_root)
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 2)
    code, out, _ = cli("runs", "stop", "long", "--wait")
    assert code == 0 and out.strip() == f"run {run_id} stopped"
    code, out, _ = cli("runs", "resume", "long", "--json")
    assert code == 0 and json.loads(out)["state"] == "succeeded"

    code, out, _ = cli("runs", "clone", "long", "lr=0.002", "--epochs", "3", "--model-arg", "fake_steps=4",
                       "--name", "copy", "--json")  # fmt: skip
    record = json.loads(out)
    assert code == 0 and record["state"] == "succeeded" and record["parent_run_id"] == run_id
    assert record["config"]["lr"] == 0.002 and record["config"]["epochs"] == 3
    assert record["config"]["model_kwargs"] == {"fake_steps": 4, "fake_step_s": 0.05}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((*FAKE_TRAIN, "--batch-size", "0"), "batch_size must be >= 1"),
        ((*FAKE_TRAIN, "--dataset", "nowhere"), "unknown dataset"),
        ((*FAKE_TRAIN, "--partition", "gpu"), "--partition is a slurm option"),
        ((*FAKE_TRAIN, "--launcher", "torchrun", "--nnodes", "2"), "rdzv-endpoint"),
        (("runs", "show", "nope"), "no run 'nope'"),
        (("runs", "clone", "nope", "lr=1"), "no run 'nope'"),
        (("runs", "stop", "nope"), "no run 'nope'"),
        ((*FAKE_TRAIN, "--launcher", "slurm", "--partition", "gpu\n#SBATCH --wrap=id"), "contains a newline"),
        ((*FAKE_TRAIN, "--launcher", "slurm", "--sbatch", "Account=x"), "invalid --sbatch key 'Account'"),
        ((*FAKE_TRAIN, "--launcher", "torchrun", "--nnodes", "2", "--rdzv-endpoint", "h:1\n"), "contains a newline"),
    ],
)
def test_bad_input_is_one_clear_line_and_launches_nothing(cli, runs_root, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert RunManager(runs_root).list() == []


def test_ctrl_c_in_the_foreground_stops_the_run_gracefully(runs_root, fake_worker, tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys

    # The real `learngene train` process, told which worker to start the one documented way (no patching).
    monkeypatch.setenv(WORKER_MODULE_ENV, fake_worker)

    argv = [*FAKE_TRAIN, "--model-arg", "fake_steps=400", "--model-arg", "fake_step_s=0.05", "--name", "fg"]
    out_path, err_path = tmp_path / "cli.out", tmp_path / "cli.err"
    with (
        open(out_path, "w") as out,
        open(err_path, "w") as err,
    ):  # files, not pipes: nothing can block on a full pipe
        cli = subprocess.Popen([sys.executable, "-m", "learngene", *argv], stdout=out, stderr=err)
    try:
        manager = RunManager(runs_root)

        def started() -> bool:
            assert cli.poll() is None, err_path.read_text()
            return bool(manager.list()) and (manager.get("fg")["step"] or 0) >= 2

        wait_for(started, timeout_s=180)  # the CLI imports timm to validate: slow on a busy machine
        cli.send_signal(signal.SIGINT)  # what Ctrl-C does; the worker has its own session and does not see it
        cli.wait(timeout=60)
    finally:
        cli.kill()
        cli.wait()
    assert cli.returncode == 3, err_path.read_text()
    assert "stopping run" in err_path.read_text() and "stopped at step" in out_path.read_text()
    record = manager.get("fg")
    assert record["state"] == "stopped" and record["has_checkpoint"]
    assert (manager.run_dir(record["run_id"]) / "launches.txt").is_file()  # the fake worker ran, not the real one


def test_a_run_that_fails_before_its_first_step_says_so_not_step_none(cli, monkeypatch):
    monkeypatch.setenv(WORKER_MODULE_ENV, "no_such_worker_module")  # the process exits at once, before any step
    code, out, err = cli(*FAKE_TRAIN)
    assert code == 1
    assert "failed before its first step" in out and "None" not in out, out
    assert "No module named" in err  # the reason, from the process's stderr


def test_a_detached_run_waiting_for_a_slot_says_so(cli):
    code, out, _ = cli(*FAKE_TRAIN, "--model-arg", "fake_steps=200", "--model-arg", "fake_step_s=0.05",
                       "--slots", "1", "--detach")  # fmt: skip
    assert code == 0 and "running (pid " in out
    code, out, _ = cli(*FAKE_TRAIN, "--detach")
    assert code == 0 and "queued (waiting for a free slot)" in out, out


def test_runs_list_refuses_an_unknown_state(cli, capsys, runs_root):
    RunManager(runs_root)  # an existing, empty runs root
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "list", "--state", "finished"])  # not a state: used to print "no runs" and exit 0
    assert exit_info.value.code == 2 and "invalid choice: 'finished'" in capsys.readouterr().err
    code, out, _ = cli("runs", "list", "--state", "failed", "--state", "stopped")
    assert code == 0 and out.strip() == "no runs"


def test_rebuild_registry_refuses_a_folder_that_is_not_a_runs_root(cli, tmp_path):
    typo = tmp_path / "typo"
    code, _, err = cli("runs", "rebuild-registry", "--runs-dir", str(typo))
    assert code == 2 and "no runs root at" in err and len(err.strip().splitlines()) == 1
    assert not typo.exists()  # not created
    foreign = tmp_path / "photos"
    (foreign / "2024").mkdir(parents=True)
    code, _, err = cli("runs", "rebuild-registry", "--runs-dir", str(foreign))
    assert code == 2 and "not a runs root" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["2024"]  # no runs.db written into it


@pytest.mark.parametrize("argv", [("runs", "list"), ("runs", "show", "x"), ("runs", "logs", "x"),
                                  ("runs", "stop", "x"), ("runs", "resume", "x"), ("runs", "clone", "x")])
def test_commands_on_existing_runs_do_not_create_a_mistyped_runs_root(cli, tmp_path, argv):
    # `runs list --runs-dir typo` created typo/ with a runs.db in it and answered "no runs".
    typo = tmp_path / "rnus"
    code, out, err = cli(*argv, "--runs-dir", str(typo))
    assert code == 2 and out == "" and f"no runs root at {typo}" in err and len(err.strip().splitlines()) == 1
    assert not typo.exists()
