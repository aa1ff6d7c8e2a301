"""What reaches a launcher is checked when the launcher is built, and a run directory never feeds sys.path."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import fake_config, wait_for

from learngene.errors import LearngeneError
from learngene.runs import RunManager, SlurmLauncher, make_launcher
from learngene.runs.launchers import (
    LAUNCHERS,
    WORKER_MODULE,
    WORKER_MODULE_ENV,
    LocalLauncher,
    _child_env,
    python_module_command,
)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("slurm", {"partition": "gpu\n#SBATCH --wrap=id"}, "--partition contains a newline or control character"),
        ("slurm", {"partition": "gpu;id"}, "invalid --partition 'gpu;id'"),
        ("slurm", {"extra": {"account": "proj\nsrun id"}}, "--sbatch account contains a newline"),
        ("slurm", {"extra": {"comment": "fine\r#SBATCH --wrap=id"}}, "--sbatch comment value contains a newline"),
        ("slurm", {"extra": {"qos": "high prio"}}, "invalid --sbatch qos 'high prio'"),
        ("slurm", {"extra": {"job-name": "a/b"}}, "invalid --sbatch job-name"),
        ("slurm", {"extra": {"Account": "proj"}}, "invalid --sbatch key 'Account'"),
        ("slurm", {"extra": {"wrap=id #": "x"}}, "invalid --sbatch key"),
        ("slurm", {"cluster": "local\n"}, "cluster contains a newline"),
        ("torchrun", {"nnodes": 2, "rdzv_endpoint": "head:29400\n--x"}, "--rdzv-endpoint contains a newline"),
        ("torchrun", {"nnodes": 2, "rdzv_endpoint": "head"}, "expected HOST:PORT"),
        ("torchrun", {"nnodes": 2, "rdzv_endpoint": "head:70000"}, "expected HOST:PORT"),
        ("torchrun", {"nnodes": 2, "rdzv_endpoint": "-h:1"}, "expected HOST:PORT"),
        ("torchrun", {"rdzv_id": "job 7"}, "invalid --rdzv-id 'job 7'"),
        ("torchrun", {"rdzv_backend": "c10d\t"}, "--rdzv-backend contains a newline"),
        ("local", {"worker_module": "os; import this"}, "invalid worker module"),
        ("slurm", {"nodes": "two"}, "invalid options for the slurm launcher"),
    ],
)
def test_injected_launcher_options_are_refused_in_one_line(name, options, message):
    with pytest.raises(LearngeneError) as caught:
        make_launcher(name, options)
    assert message in str(caught.value) and "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_valid_slurm_options_make_one_line_per_sbatch_option(tmp_path):
    launcher = SlurmLauncher(partition="gpu,debug", extra={"account": "proj-1", "qos": "high",
                                                           "mail-type": "END,FAIL", "constraint": "a100&ib"})
    lines = launcher.describe(tmp_path / "20260101-000000-abcdef")
    assert "#SBATCH --partition=gpu,debug" in lines and "#SBATCH --mail-type=END,FAIL" in lines
    assert all("\n" not in line for line in lines)
    for ok in ("head:29400", "10.0.0.1:1", "[fe80::1]:29400"):
        assert make_launcher("torchrun", {"nnodes": 2, "rdzv_endpoint": ok}).rdzv_endpoint == ok


def test_run_directories_that_would_break_a_command_are_refused(tmp_path):
    with pytest.raises(LearngeneError, match="job name .* 'a b'"):
        SlurmLauncher().sbatch_options(tmp_path / "a b")
    with pytest.raises(LearngeneError, match="run directory contains a newline"):
        LocalLauncher().command(tmp_path / "run\n#SBATCH --wrap=id")


def test_the_worker_module_comes_from_one_environment_variable(monkeypatch):
    monkeypatch.delenv(WORKER_MODULE_ENV, raising=False)
    assert LocalLauncher().worker_module == WORKER_MODULE and make_launcher("local").options() == {}
    monkeypatch.setenv(WORKER_MODULE_ENV, "tests_only.fake_worker")
    for name in LAUNCHERS:  # stored with the run, so a resume in a process without the variable uses it too
        assert make_launcher(name).options()["worker_module"] == "tests_only.fake_worker"
    assert LocalLauncher("explicit_worker").worker_module == "explicit_worker"
    monkeypatch.setenv(WORKER_MODULE_ENV, "fake worker")
    with pytest.raises(LearngeneError, match="invalid worker module 'fake worker'"):
        LocalLauncher()


def test_a_module_planted_in_the_run_directory_is_never_imported(runs_root, fake_worker, tmp_path):
    manager = RunManager(runs_root)
    options = {"worker_module": fake_worker}  # the fake worker imports yaml, as the real one does
    run_id = manager.submit(fake_config(fake_steps=10, fake_step_s=0.05), launcher_options=options)
    run_dir = manager.run_dir(run_id)
    marker = tmp_path / "planted-module-ran"
    wait_for(lambda: (manager.get(run_id)["step"] or 0) >= 2)  # a checkpoint to resume from
    (run_dir / "yaml.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")  # planted in a live run
    manager.stop(run_id)
    assert manager.wait(run_id, timeout_s=30)["state"] == "stopped"

    # Control: any Python that starts in the run directory with its path first does import the planted file.
    subprocess.run([sys.executable, "-c", "import yaml"], cwd=run_dir, check=False, timeout=60)
    assert marker.exists()
    marker.unlink()

    manager.resume(run_id)
    record = manager.wait(run_id, timeout_s=60)
    assert record["state"] == "succeeded" and record["step"] == 10, record
    assert not marker.exists()

    # Python 3.10 has no -P: the bootstrap that replaces it, run here too whatever this interpreter is.
    argv = python_module_command(fake_worker, [str(run_dir), "--resume"], safe_path_flag=False)
    done = subprocess.run(argv, cwd=run_dir, env=_child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
