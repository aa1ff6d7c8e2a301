"""The worker as a real process: SIGTERM ends it as ``stopped`` with a checkpoint; torchrun with 2 gloo processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import TINY, read_metrics

from learngene.training.checkpoint import load_checkpoint
from learngene.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _wait_for_train_line(run_dir: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"worker exited early: {process.communicate()}")
        path = run_dir / "metrics.jsonl"
        if path.is_file() and '"kind": "train"' in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError("no training step within the timeout")


def test_sigterm_stops_with_a_checkpoint(make_run):
    run_dir = make_run(epochs=50, log_every=1)
    process = subprocess.Popen([sys.executable, "-m", "learngene.training.worker", str(run_dir)], cwd=REPO,
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_train_line(run_dir, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 3, stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "stopped" and result["exit_code"] == 3 and "SIGTERM" in result["message"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == result["step"] >= 1
    assert "SIGTERM received" in (run_dir / "train.log").read_text()


def _start_worker(run_dir: Path) -> tuple[subprocess.Popen, Path]:
    err = run_dir.parent / f"{run_dir.name}.stderr"  # outside the run directory, which a test may delete
    with open(err, "w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "learngene.training.worker", str(run_dir)], cwd=REPO,
                                   env=_env(), stdout=subprocess.DEVNULL, stderr=handle)
    return process, err


def _wait_until(predicate, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"condition not met (worker exit code {process.poll()})")
        time.sleep(0.1)


def _last_line(path: Path) -> str:
    return path.read_text().strip().splitlines()[-1]


# After its result is final, a failing worker must be gone within this many seconds (loader workers included).
EXIT_WITHIN_S = 10


def _image_folder(root: Path, corrupt: bool) -> Path:
    """Three classes of six 16-px images each: random pixels as JPEGs, or garbage bytes named .jpg."""
    from PIL import Image

    generator = np.random.default_rng(0)
    for label in ("cat", "dog", "eel"):
        (root / label).mkdir(parents=True)
        for index in range(6):
            path = root / label / f"{index}.jpg"
            if corrupt:
                path.write_bytes(generator.bytes(200))  # not an image at all
            else:
                Image.fromarray(generator.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return root


TINY_MODEL = {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


def test_a_dataset_of_corrupt_jpegs_fails_and_the_worker_exits(make_run, tmp_path):
    data = _image_folder(tmp_path / "corrupt", corrupt=True)
    run_dir = make_run(dataset=str(data), workers=2, batch_size=4, val_fraction=0.3, model_kwargs=TINY_MODEL)
    process, err = _start_worker(run_dir)
    try:
        _wait_until(lambda: (run_dir / "result.json").is_file(), process)
        process.wait(timeout=EXIT_WITHIN_S)  # DataLoader workers ignore SIGTERM: they used to keep it alive forever
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "failed" and "\n" not in result["message"]
    assert result["message"].startswith("UnidentifiedImageError: cannot identify image file '")
    assert str(data) in result["message"] and "remove or replace it" in result["message"]
    assert _last_line(err) == f"error: {result['message']}"


def test_a_run_directory_deleted_mid_run_fails_and_the_worker_exits(make_run, tmp_path):
    data = _image_folder(tmp_path / "images", corrupt=False)
    run_dir = make_run(dataset=str(data), epochs=1000, log_every=1, workers=2, batch_size=4, val_fraction=0.3,
                       model_kwargs=TINY_MODEL)
    process, err = _start_worker(run_dir)
    try:
        metrics = run_dir / "metrics.jsonl"
        _wait_until(lambda: metrics.is_file() and '"kind": "train"' in metrics.read_text(), process)
        shutil.rmtree(run_dir)
        process.wait(timeout=EXIT_WITHIN_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    assert _last_line(err) == f"error: run directory {run_dir} was deleted while the run was training"


def test_bad_config_fails_before_launch_with_one_line(make_run):
    run_dir = make_run()
    (run_dir / "config.yaml").write_text((run_dir / "config.yaml").read_text().replace("batch_size: 32", "batch_size: 0"))
    done = subprocess.run([sys.executable, "-m", "learngene.training.worker", str(run_dir)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "error: batch_size must be >= 1, got 0"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "failed" and result["step"] == 0
    assert not (run_dir / "metrics.jsonl").exists()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_only_rank0_writes(make_run):
    run_dir = make_run(max_steps=6, log_every=2)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "learngene.training.worker", str(run_dir)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "succeeded" and result["step"] == 6
    lines = read_metrics(run_dir)
    starts = [r for r in lines if r["kind"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2
    # 1438 training images over 2 ranks at 32 per rank: 22 steps per epoch (one process alone takes 44).
    assert starts[0]["steps_per_epoch"] == 22
    assert [r["step"] for r in lines if r["kind"] == "train"] == [2, 4, 6]  # one writer: no duplicates
    assert len([r for r in lines if r["kind"] == "eval"]) == 1
    evals = [r for r in lines if r["kind"] == "eval"]
    assert evals[0]["images"] == 359  # the whole validation split, each image once across the two ranks
    assert len(list((run_dir / "tb").glob("events.*"))) == 1
    assert json.loads((run_dir / "repro.json").read_text())["world_size"] == 2
    assert not list(run_dir.glob("*.tmp")) and sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best.pt", "last.pt"]


def _torchrun_training(run_dir: Path, monkeypatch) -> tuple[Any, dict, list[int]]:
    """Launch ``run_dir`` with the torchrun launcher (2 CPU ranks) and wait for its first training step.

    Returns the launcher, the run's process record and the two ranks' pids.
    """
    from learngene.runs import liveness
    from learngene.runs.launchers import TorchrunLauncher

    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    launcher = TorchrunLauncher(nproc_per_node=2)
    handle = launcher.launch(run_dir)
    record = {"pid": handle.pid, "pgid": handle.pgid, "proc_start": handle.proc_start}
    deadline = time.monotonic() + 180
    metrics = run_dir / "metrics.jsonl"
    try:
        while not (metrics.is_file() and '"kind": "train"' in metrics.read_text()):
            assert time.monotonic() < deadline and launcher.is_alive(record), (run_dir / "stderr.log").read_text()
            time.sleep(0.2)
    except BaseException:
        launcher.stop(record, force=True)
        raise
    ranks = liveness.children(handle.pid)
    assert len(ranks) == 2, ranks
    return launcher, record, ranks


@pytest.mark.slow
def test_a_torchrun_stop_ends_every_rank_as_stopped_with_rank0s_checkpoint(make_run, monkeypatch):
    """The launcher's stop (SIGTERM to each rank) on the real worker: both ranks stop at one step, pass the barrier
    they leave by, and rank 0's result and checkpoint agree. (The window that barrier closes, rank 1 gone while rank 0
    still writes, cannot be forced from outside; the fake worker's torchrun test models it.)"""
    from learngene.runs import liveness

    run_dir = make_run(epochs=50, log_every=1)
    launcher, record, ranks = _torchrun_training(run_dir, monkeypatch)
    deadline = time.monotonic() + 180
    try:
        assert launcher.stop(record)
        while launcher.is_alive(record):
            assert time.monotonic() < deadline, "torchrun did not end after the stop"
            time.sleep(0.2)
    finally:
        launcher.stop(record, force=True)
    assert not any(liveness.is_alive(rank) for rank in ranks)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "stopped" and result["exit_code"] == 3, result
    assert "SIGTERM received" in result["message"]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["step"] == result["step"] >= 1


def _torchrun_worker(run_dir: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "learngene.training.worker", str(run_dir), *extra],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "result.json").read_text())


@pytest.mark.slow
def test_torchrun_resume_draws_what_an_uninterrupted_run_draws_on_every_rank(make_run, tmp_path, monkeypatch):
    """2 gloo processes, cached pipeline with RandAugment and erasing: 6 steps straight vs 3 steps, then resumed to 6.

    Each rank draws its own crops, flips, RandAugment ops and erase boxes; a resumed rank 1 that did not get its own
    generator back would draw differently, and its gradients reach the weights through DDP's average.
    """
    monkeypatch.setenv("LEARNGENE_CACHE_DIR", str(tmp_path / "cache"))  # _env() copies os.environ
    # A constant learning rate (min_lr = lr, no warm-up): raising max_steps on resume leaves the schedule alone
    # (the scheduler keeps the checkpoint's total steps), so the interruption is the only difference between runs.
    common = dict(epochs=1, log_every=1, val_fraction=0.05, data_pipeline="cached", mixup=0.0, cutmix=0.0,
                  reprob=0.25, randaugment="rand-m9-mstd0.5-inc1", warmup_epochs=0.0, min_lr=TINY["lr"])
    straight = make_run("straight", max_steps=6, **common)
    assert _torchrun_worker(straight)["step"] == 6

    split = make_run("split", max_steps=3, **common)
    assert _torchrun_worker(split)["step"] == 3
    saved = load_checkpoint(split / "checkpoints" / "last.pt")  # weights_only=True loads the per-rank states
    ranks = saved["rank_states"]
    assert saved["world_size"] == 2 and len(ranks) == 2
    assert all(r["augment_rng"]["generator"].dtype == torch.uint8 for r in ranks)
    assert not torch.equal(ranks[0]["augment_rng"]["generator"], ranks[1]["augment_rng"]["generator"])
    TrainConfig.from_dict({**TINY, **common, "max_steps": 6}).to_yaml(split / "config.yaml")
    assert _torchrun_worker(split, "--resume")["step"] == 6

    losses = {r["step"]: r["loss"] for r in read_metrics(straight) if r["kind"] == "train"}
    resumed = {r["step"]: r["loss"] for r in read_metrics(split) if r["kind"] == "train"}
    assert [resumed[s] for s in (4, 5, 6)] == [losses[s] for s in (4, 5, 6)]  # bit for bit
    a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(split / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_torchrun_ranks_end_with_a_killed_torchrun(make_run, monkeypatch):
    """kill -9 of torchrun itself (the OOM killer, a user): its ranks must end too. Orphaned, they trained on where no
    stop reaches them (the run's pid is torchrun's), while the registry had already ended the run as failed with
    exit -9 and freed its slot, and wrote checkpoints and a result into a run that might be resumed meanwhile."""
    from learngene.runs import liveness

    run_dir = make_run(epochs=50, log_every=1)
    _, record, ranks = _torchrun_training(run_dir, monkeypatch)
    try:
        os.kill(record["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while any(liveness.is_alive(rank) for rank in ranks) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(liveness.is_alive(rank) for rank in ranks), "the ranks outlived torchrun"
    finally:
        for rank in ranks:
            try:
                os.kill(rank, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.slow
def test_a_rank_whose_peer_was_killed_says_so_instead_of_quoting_gloo(make_run, monkeypatch):
    """kill -9 of rank 1: rank 0's one line said "RuntimeError: [.../gloo/transport/tcp/pair.cc:545] Read error ...
    Connection reset by peer ... GLHF!"; it now says a peer ended first and where torchrun names the first failure."""
    import psutil

    run_dir = make_run(epochs=50, log_every=1)
    launcher, record, ranks = _torchrun_training(run_dir, monkeypatch)
    try:
        rank1 = next(pid for pid in ranks if psutil.Process(pid).environ().get("RANK") == "1")
        os.kill(rank1, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while launcher.is_alive(record):
            assert time.monotonic() < deadline, "torchrun did not end after a rank was killed"
            time.sleep(0.2)
    finally:
        launcher.stop(record, force=True)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["state"] == "failed", result
    assert result["message"].startswith("another process of this distributed run ended first and rank 0 lost it ("), result
    assert '"Root Cause" in stderr.log' in result["message"] and "\n" not in result["message"]
    assert "Root Cause" in (run_dir / "stderr.log").read_text()  # where the message sends the user
